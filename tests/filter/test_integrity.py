#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Data passes through the blkin filter untouched, for every request type,
over raw and qcow2, and through two stacked blkin nodes; with and without an
LTTng session recording."""
import os
import subprocess
import tempfile

from lttng import Session
from qemutools import PRELOAD, blkin_json, create, file_node, ld_preload, qemu_io
from tap import Tap

MiB = 1024 * 1024
WRITES = [
    "write -P 0x5a 0 1M",
    "write -f -P 0x33 1M 64k",          # FUA
    "writev -P 0x44 2M 4k 8k 4k",       # vectored
    "write -z 3M 64k",                  # write-zeroes
    "write -z -u 4M 64k",               # write-zeroes, may unmap
    "discard 5M 64k",
    "aio_write -P 0x66 6M 4k",
    "aio_flush",
    "flush",
]
CHECKS = [
    "read -P 0x5a 0 1M",
    "read -P 0x33 1M 64k",
    "read -P 0x44 2M 16k",
    "read -P 0 3M 64k",
    "read -P 0 4M 64k",
    "read -P 0x66 6M 4k",
    "read -P 0 7M 1M",                  # never written
]


def graph(kind, img):
    if kind == "raw":
        return blkin_json(file_node(img, "raw"), id="integrity-raw")
    if kind == "qcow2":
        return blkin_json(file_node(img, "qcow2"), id="integrity-qcow2")
    # blkin -> qcow2 -> blkin -> file
    low = {"driver": "blkin", "id": "integrity-low", "file": file_node(img, None)}
    return blkin_json({"driver": "qcow2", "file": low}, id="integrity-top")


def plain(kind, img):
    return "json:" + __import__("json").dumps(file_node(img, "raw" if kind == "raw" else "qcow2"))


def clean(r):
    return r.returncode == 0 and "failed" not in r.stdout + r.stderr


def check_variant(t, kind, recording):
    with tempfile.TemporaryDirectory() as d:
        img = os.path.join(d, "disk." + ("raw" if kind == "raw" else "qcow2"))
        create(img, 8 * MiB, "raw" if kind == "raw" else "qcow2")
        label = f"{kind}{' (recording)' if recording else ''}"
        session = Session() if recording else None
        if session:
            session.__enter__()
        try:
            w = qemu_io(graph(kind, img), *WRITES)
            t.ok(clean(w), f"{label}: every request type succeeds through the filter",
                 detail=w.stdout + w.stderr)
            r = qemu_io(graph(kind, img), *CHECKS)
            t.ok(clean(r), f"{label}: patterns read back identically through the filter",
                 detail=r.stdout + r.stderr)
        finally:
            if session:
                session.stop()
        r = qemu_io(plain(kind, img), *CHECKS, preload=None)
        t.ok(clean(r), f"{label}: patterns read back identically without the filter",
             detail=r.stdout + r.stderr)
        # The whole disk, byte for byte, with and without the filter.
        c = subprocess.run(["timeout", "120", "qemu-img", "compare", graph(kind, img), plain(kind, img)],
                           env=dict(os.environ, LD_PRELOAD=ld_preload(PRELOAD)),
                           capture_output=True, text=True)
        t.ok(c.returncode == 0 and "identical" in c.stdout,
             f"{label}: qemu-img compare finds the filtered and unfiltered disk identical",
             detail=c.stdout + c.stderr)
        if session:
            ids = {"raw": ["integrity-raw"], "qcow2": ["integrity-qcow2"],
                   "stacked": ["integrity-top", "integrity-low"]}[kind]
            for i in ids:
                t.ok(len(session.for_disk(i)) > 0, f"{label}: requests recorded for disk {i}")
            session.cleanup()


def main():
    t = Tap()
    for kind in ("raw", "qcow2", "stacked"):
        for recording in (False, True):
            t.run(check_variant, kind, recording)
    t.done()


if __name__ == "__main__":
    main()
