#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""A VM whose disk is an RBD image on a real one-node Ceph cluster, under
the blkin filter in Debian's stock QEMU (rbd -> raw -> blkin -> virtio-blk).

What a user checks: the guest boots and its I/O is right -- data the host
wrote through librbd reads back the same in the guest, data the guest
wrote is in the image when the host exports it, and the workload's own
verified reads find no mismatch. And what BlkKin adds: every request the
filter recorded has its librbd call recorded by the interposer (same op,
offset and length, inside the filter's span), and the image event gives
the keys the OSDs know the client by (its gid and address nonce, the
image's object-name prefix, as `rbd info` and the OSD's own op tracker
say). A QEMU without RBD disks never loads the tracepoint provider."""
import hashlib
import json
import os
import random
import shutil

import ceph
import vm
from lttng import Session
from stack import BUILD
from tap import Tap

MIB = 1 << 20

GUEST = """
D=$(blkin_disk rbd-a)
echo "host-data $(dd if=$D bs=65536 skip=128 count=16 2>/dev/null | sha256sum | cut -d' ' -f1)" >"$BLKIN_RESULTS"
dd if=/dev/urandom of=/tmp/r bs=65536 count=16 2>/dev/null
dd if=/tmp/r of=$D bs=65536 seek=256 conv=fsync 2>/dev/null
echo "guest-data $(sha256sum /tmp/r | cut -d' ' -f1)" >"$BLKIN_RESULTS"
blkin-workload --seed 7 -n 150 -q 1,8 -S 4M -o "$BLKIN_RESULTS" "$D"
"""


def workdir():
    d = os.path.join(BUILD, "tests", "ceph", "work", "smoke")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    return d


def maps_of(pid):
    try:
        with open(f"/proc/{pid}/maps") as f:
            return f.read()
    except OSError:
        return ""


def main():
    t = Tap()
    wd = workdir()
    try:
        cluster = ceph.Cluster(wd).__enter__()
    except ceph.CephUnavailable as e:
        t.ok(False, "the Ceph packages are installed", detail=str(e))
        t.done()
    try:
        # The OSD keeps 20 ops by default; enough to find this VM's among them.
        cluster.osd({"prefix": "config set", "var": "osd_op_history_size", "val": ["2000"]})
        image = cluster.create_image("smoke", size_mb=64)
        host_data = random.Random(18).randbytes(MIB)
        cluster.fill(image, 8 * MIB, host_data)
        info = json.loads(cluster.run("rbd", "info", "--format", "json",
                                      f"{cluster.pool}/{image}").stdout)

        disk = cluster.disk(image, "rbd-a", blkin={"id": "smoke/vda", "sample": 1})
        with Session(events=("blkin_qemu:*", "blkin_rbd:*")) as sess:
            with vm.GuestVM(os.path.join(wd, "vm"), [disk], GUEST, timeout=300) as g:
                g.start()
                maps = ceph.wait_for(lambda: "blkin-rbd-tp.so" in maps_of(g.qemu_pid) and
                                     maps_of(g.qemu_pid), timeout=60)
                res = g.wait()
        t.ok(res.ok, "the guest ran on its RBD disk under the blkin filter",
             detail=res.console[-3000:])
        t.ok(maps and "blkin-rbd.so" in maps and "blkin-rbd-tp.so" in maps,
             "QEMU loaded the librbd interposer and, once it opened an image, its provider")
        out = g.results()
        lines = dict(line.split(" ", 1) for line in out.splitlines()
                     if line.startswith(("host-data ", "guest-data ")))
        t.eq(lines.get("host-data"), hashlib.sha256(host_data).hexdigest(),
             "the guest reads what the host wrote through librbd")
        exported = os.path.join(wd, "export.img")
        cluster.export(image, exported)
        with open(exported, "rb") as f:
            f.seek(16 * MIB)
            in_image = hashlib.sha256(f.read(MIB)).hexdigest()
        os.unlink(exported)
        t.eq(in_image, lines.get("guest-data"), "what the guest wrote is in the RBD image")
        w = vm.parse_workload(out)
        s = w["summary"] or {}
        t.ok(w["end"] and not w["fatal"] and s.get("mismatches") == 0 and
             s.get("verified_blocks", 0) > 0,
             "the workload's reads verified the data it wrote, no mismatch", detail=s)

        spans = [e for e in sess.for_disk("smoke/vda") if e["vpid"] == g.qemu_pid]
        images = [e for e in sess.events(vpid=g.qemu_pid, name="blkin_rbd:image")]
        calls = sess.events(vpid=g.qemu_pid, name="blkin_rbd:request")
        opened = [e for e in images if e["state"] == 0]
        t.ok(len(opened) == 1 and opened[0]["image_name"] == image and
             opened[0]["prefix"] == info["block_name_prefix"] and
             opened[0]["object_size"] == info["size"] // info["objects"] and
             opened[0]["gid"] > 0 and opened[0]["nonce"] > 0 and
             opened[0]["addr"].endswith("/%d" % opened[0]["nonce"]),
             "the image event names the image, its object prefix and size, the client's "
             "gid and nonce", detail=(opened, info))
        t.ok(any(e["state"] == 2 for e in images), "the image's close is recorded")

        # Every filter span of an I/O has its librbd call, inside it.
        def key(op, off, n):
            return (op, off, n)
        by_key = {}
        for c in calls:
            by_key.setdefault(key(c["op"], c["offset"], c["length"]), []).append(
                (c["start_ns"], c["end_ns"]))
        missing = []
        n_io = 0
        for s_ in spans:
            if s_["op"] == 5 and s_["bytes"] == 0:
                continue  # flushes: QEMU skips librbd when nothing was written
            n_io += 1
            cands = by_key.get(key(s_["op"], s_["offset"], s_["bytes"]), [])
            if not any(s_["start_ns"] <= a and b <= s_["end_ns"] for a, b in cands):
                missing.append(s_)
        t.ok(n_io >= 300 and not missing,
             f"each of the filter's {n_io} I/O spans has its librbd call inside it",
             detail=missing[:5])
        t.ok(calls and all(c["ret"] == 0 for c in calls), "every librbd call succeeded",
             detail=[c for c in calls if c["ret"] != 0][:5])

        # The client the OSD saw is the one the image event named.
        hist = cluster.osd({"prefix": "dump_historic_ops", "format": "json",
                            "filterstr": ["any:" + opened[0]["addr"]]} if opened else {})
        clients = {o["type_data"]["client_info"]["client"] for o in hist.get("ops", [])}
        t.ok(opened and clients == {"client.%d" % opened[0]["gid"]},
             "the OSD's op tracker knows the client by that gid and address",
             detail=clients)

        # No RBD, no provider: a QEMU with a file disk only.
        plain = vm.Disk(os.path.join(wd, "plain.img"), "plain", size="8M",
                        blkin={"id": "smoke/plain"})
        with vm.GuestVM(os.path.join(wd, "vm2"), [plain], "sleep 2", timeout=120) as g2:
            g2.start()
            m2 = ceph.wait_for(lambda: "blkin-filter.so" in maps_of(g2.qemu_pid) and
                               maps_of(g2.qemu_pid), timeout=30)
            res2 = g2.wait()
        t.ok(res2.ok and m2 and "blkin-rbd.so" in m2 and "blkin-rbd-tp.so" not in m2,
             "a QEMU without RBD disks never loads the provider (nothing recorded, nothing "
             "mapped beyond the interposer's code)")
    finally:
        cluster.close()
    t.done()


if __name__ == "__main__":
    main()
