#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Errors from below pass through the filter unchanged, and are recorded."""
import os
import tempfile

from lttng import Session
from qemutools import blkin_json, create, file_node, qemu_io
from tap import Tap


def failing(img, event, errno):
    # raw emits the read_aio/write_aio events that arm blkdebug's rule.
    dbg = {"driver": "blkdebug", "image": file_node(img, None),
           "inject-error": [{"event": event, "errno": errno, "once": False}]}
    return {"driver": "raw", "file": dbg}


def test_eio(t):
    with tempfile.TemporaryDirectory() as d:
        img = os.path.join(d, "e.raw")
        create(img, 1024 * 1024)
        with Session() as s:
            r = qemu_io(blkin_json(failing(img, "read_aio", 5), id="err-read"), "read 0 4k")
            w = qemu_io(blkin_json(failing(img, "read_aio", 5), id="err-write"), "write -P 0x11 0 4k",
                        "read -P 0x11 0 4k")
            n = qemu_io(blkin_json(failing(img, "write_aio", 28), id="err-nospc"), "write 4k 4k")
    t.ok("read failed: Input/output error" in r.stdout + r.stderr,
         "an EIO injected below reaches the caller as EIO", detail=r.stdout + r.stderr)
    ev = s.for_disk("err-read")
    t.eq([(e["op"], e["ret"]) for e in ev if e["op"] == 1], [(1, -5)], "the event records ret = -EIO")
    t.ok("wrote 4096/4096" in w.stdout and "read failed" in w.stdout,
         "a rule on reads leaves writes alone", detail=w.stdout + w.stderr)
    t.ok("No space left on device" in n.stdout + n.stderr, "ENOSPC passes through too",
         detail=n.stdout + n.stderr)
    t.eq([e["ret"] for e in s.for_disk("err-nospc") if e["op"] == 2], [-28], "and is recorded as -ENOSPC")
    s.cleanup()


def main():
    t = Tap()
    t.run(test_eio)
    t.done()


if __name__ == "__main__":
    main()
