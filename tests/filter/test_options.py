#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Bad options give a clear error and open nothing; good ones are accepted."""
import json

from qemutools import qemu_io
from tap import Tap

NULL = {"driver": "null-co"}


def opened(opts):
    return qemu_io("json:" + json.dumps(dict({"driver": "blkin"}, **opts)), "read 0 512")


def main():
    t = Tap()
    bad = [
        ({"file": NULL, "sample": -1}, "'sample' must be a whole number from 0 to 2147483647, not '-1'"),
        ({"file": NULL, "sample": "ten"}, "'sample' must be a whole number"),
        ({"file": NULL, "sample": 2**31}, "'sample' must be a whole number"),
        ({"file": NULL, "hung-ms": "1s"}, "'hung-ms' must be a whole number"),
        ({"file": NULL, "slow-ms": ""}, "'slow-ms' must be a whole number"),
        ({"file": NULL, "id": ""}, "'id' must be a non-empty string"),
        ({"file": NULL, "id": 5}, "'id' must be a non-empty string"),
        ({}, "A block device must be specified for \"file\""),
        ({"file": NULL, "frobnicate": 1}, "does not support the option 'frobnicate'"),
    ]
    for opts, msg in bad:
        r = opened(opts)
        t.ok(r.returncode != 0 and msg in r.stderr + r.stdout and "read 512/512" not in r.stdout,
             f"{json.dumps(opts)} is refused: {msg}", detail=r.stdout + r.stderr)
    good = [{"file": NULL, "sample": 0}, {"file": NULL, "sample": "100", "hung-ms": 0, "slow-ms": 50,
                                          "map-interval": 0, "id": "vm-1/vda"}]
    for opts in good:
        r = opened(opts)
        t.ok(r.returncode == 0 and "read 512/512" in r.stdout, f"{json.dumps(opts)} is accepted",
             detail=r.stdout + r.stderr)
    t.done()


if __name__ == "__main__":
    main()
