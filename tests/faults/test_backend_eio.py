#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""The storage under a traced disk fails (blkdebug returns EIO for one
sector, once) and recovers: the guest sees exactly that read fail, the same
read succeeds right after, I/O elsewhere on the disk is untouched, and
hostd joins the failed request like any other (the filter passes errors
through unchanged and records them)."""
import json
import os
import shutil

import vm
from stack import BUILD, HostStack
from tap import Tap

BAD_SECTOR = 2048  # 1 MiB into the disk


class FailingDisk(vm.Disk):
    """blkin -> raw -> blkdebug (EIO on reads of BAD_SECTOR, once) -> file."""

    def qemu_args(self):
        dbg = {"driver": "blkdebug",
               "inject-error": [{"event": "read_aio", "errno": 5, "sector": BAD_SECTOR,
                                 "once": True}],
               "image": {"driver": "file", "filename": self.path}}
        top = dict({"driver": "blkin"}, **self.blkin)
        top["file"] = {"driver": "raw", "file": dbg}
        js = json.dumps(top, separators=(",", ":"))
        dev = {"id": self.device_id, "serial": self.serial, "drive": self.drive_id}
        return ["-drive", f"if=none,id={self.drive_id},node-name={self.filter_node},"
                          f"file=json:{js.replace(',', ',,')}",
                "-device", "virtio-blk-pci," + ",".join(f"{k}={v}" for k, v in dev.items())]


GUEST = f"""
blkin-guest-agent 2>/tmp/agent.log &
AGENT=$!
sleep 2
D=$(blkin_disk eio-a)
rd() {{ dd if=$D of=/dev/null bs=4096 count=1 skip=$1 iflag=direct 2>/dev/null && echo "read $1 ok" || echo "read $1 failed"; }}
rd 0 >"$BLKIN_RESULTS"
rd {BAD_SECTOR // 8} >"$BLKIN_RESULTS"
rd {BAD_SECTOR // 8} >"$BLKIN_RESULTS"
rd 512 >"$BLKIN_RESULTS"
dd if=/dev/zero of=$D bs=4096 count=4 seek=100 oflag=direct 2>/dev/null && echo "write ok" >"$BLKIN_RESULTS"
sleep 1
kill -TERM $AGENT
wait $AGENT
exit 0
"""


def main():
    t = Tap()
    wd = os.path.join(BUILD, "tests", "faults", "work", "eio")
    shutil.rmtree(wd, ignore_errors=True)
    os.makedirs(wd)
    disks = [FailingDisk(os.path.join(wd, "a.raw"), "eio-a", size="16M", blkin={"id": "eio/vda"})]
    with HostStack(wd, hold_ms=1500) as st, \
            vm.GuestVM(wd, disks, GUEST, timeout=180, cpus=1, accel="tcg",
                       extra_files={"/bin/blkin-guest-agent": vm.agent_binary()}) as g:
        g.start()
        st.register("eio", g.agent_socket, ["vda=eio-a=eio/vda"])
        res = g.wait()
        t.ok(res.ok, "the guest's script ran", detail=res.console[-3000:])
        lines = [l for l in g.results().splitlines() if l.startswith(("read", "write"))]
        t.eq(lines, ["read 0 ok", f"read {BAD_SECTOR // 8} failed", f"read {BAD_SECTOR // 8} ok",
                     "read 512 ok", "write ok"],
             "the guest sees exactly the injected read fail, then the backend recovers")
        c = st.wait_until(lambda: (lambda d: d["counters"] if d["counters"]["matched"] >= 5 else None)(
            st.report("eio", window="1h")["disks"][0]), timeout=30)
        # Windows are read hold-time late and end on a whole second.
        def counted():
            d = st.report("eio", window="1h")["disks"][0]
            ops = {o["op"]: o["count"] for o in d["ops"]}
            return d if ops.get("read", 0) >= 4 and ops.get("write", 0) >= 1 else None
        rep = st.wait_until(counted, timeout=20) or st.report("eio", window="1h")["disks"][0]
        t.diag(f"counters {rep['counters']}")
        t.ok(c, "hostd joined the guest's requests, the failed one included",
             detail=rep["counters"])
        ops = {o["op"]: o["count"] for o in rep["ops"]}
        t.ok(ops.get("read", 0) >= 4 and ops.get("write", 0) >= 1,
             "the report counts the reads (failed one included) and the write", detail=ops)
        t.ok(st.hostd.poll() is None, "hostd runs on")
    t.done()


if __name__ == "__main__":
    main()
