#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Block-layer operations other than plain reads and writes work through the
blkin filter as through QEMU's own filters: compressed writes (qemu-io
write -c, qemu-img convert -c onto a blkin node) and reopening the chain
read-only and back (what snapshots, block-stream and commit do)."""
import os
import re
import subprocess
import tempfile

from qemutools import blkin_json, create, file_node, qemu_io, run
from tap import Tap

MiB = 1024 * 1024


def clean(r):
    return r.returncode == 0 and "failed" not in r.stdout + r.stderr


def compressed_share(img):
    out = subprocess.run(["qemu-img", "check", img], capture_output=True, text=True,
                         timeout=60).stdout
    m = re.search(r"([\d.]+)% compressed clusters", out)
    return float(m.group(1)) if m else 0.0


def main():
    t = Tap()
    with tempfile.TemporaryDirectory() as d:
        img = os.path.join(d, "c.qcow2")
        create(img, 8 * MiB, "qcow2")
        # blkin -> qcow2 -> blkin -> file: the compressed write crosses both.
        low = {"driver": "blkin", "id": "ops-low", "file": file_node(img, None)}
        stacked = blkin_json({"driver": "qcow2", "file": low}, id="ops-top")
        w = qemu_io(blkin_json(file_node(img, "qcow2"), id="ops-c"),
                    "write -c -P 0x77 0 64k", "write -c -P 0x78 64k 64k")
        t.ok(clean(w), "a compressed write succeeds through the filter", detail=w.stdout + w.stderr)
        r = qemu_io(stacked, "read -P 0x77 0 64k", "read -P 0x78 64k 64k")
        t.ok(clean(r), "and reads back through two stacked filters", detail=r.stdout + r.stderr)
        t.ok(compressed_share(img) > 0, "the clusters really are stored compressed",
             detail=f"{compressed_share(img)}%")

        src = os.path.join(d, "src.raw")
        create(src, 4 * MiB, "raw")
        qemu_io(src, "write -P 0x5c 0 4M", preload=None)
        dst = os.path.join(d, "dst.qcow2")
        create(dst, 4 * MiB, "qcow2")
        target = (f"driver=blkin,id=ops-dst,file.driver=qcow2,file.file.driver=file,"
                  f"file.file.filename={dst}")
        c = run(["qemu-img", "convert", "-c", "-n", "-f", "raw", src, "--target-image-opts",
                 target])
        t.ok(c.returncode == 0, "qemu-img convert -c onto a blkin node succeeds",
             detail=c.stderr[-2000:])
        cmp = subprocess.run(["qemu-img", "compare", "-f", "raw", "-F", "qcow2", src, dst],
                             capture_output=True, text=True, timeout=60)
        t.ok(cmp.returncode == 0 and compressed_share(dst) > 0,
             "the converted image is identical and compressed",
             detail=cmp.stdout + cmp.stderr + f" {compressed_share(dst)}%")

        r = qemu_io(stacked, "reopen -r", "write -P 0x11 0 4k", "reopen -w",
                    "write -P 0x22 4k 4k", "read -P 0x22 4k 4k", "read -P 0x77 0 4k")
        out = r.stdout + r.stderr
        t.ok("does not support reopening" not in out,
             "the chain with two blkin nodes reopens read-only and read-write", detail=out)
        t.ok(re.search(r"(permission|read-only|Operation not permitted)", out, re.I) is not None,
             "while read-only a write is refused", detail=out)
        t.ok("read 4096/4096 bytes" in out and out.count("Pattern verification failed") == 0,
             "read-write again: a write lands, and the first (refused) one changed nothing",
             detail=out)
    t.done()


if __name__ == "__main__":
    main()
