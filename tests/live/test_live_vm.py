#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""blkin-live on a running guest with I/O in flight: the workload loops
(every round writes patterns and reads them back) before, during and after
enable and disable; LTTng records the disk's requests only while enabled;
disable puts the device back on its original node."""
import os
import time

import vm
from lttng import Session
from tap import Tap

import livelib

GUEST = r"""
exec 3<>"$BLKIN_AGENT_PORT"
(while [ ! -e /tmp/stop ]; do
    blkin-workload -Q --seed 7 --count 200 "$(blkin_disk live)" >>/tmp/wl.out || echo FAILED >>/tmp/wl.out
done) &
echo ready >&3
read -r stop <&3
touch /tmp/stop
wait
cat /tmp/wl.out >"$BLKIN_RESULTS"
"""


def rounds(text):
    return text.count("summary ")


def test_live_vm(t):
    work = livelib.workdir("live", "vm")
    sd = livelib.sockdir()
    sock = os.path.join(sd, "live.qmp")
    disk = vm.Disk(os.path.join(work, "live.img"), "live", fmt="qcow2", size="64M")
    with Session() as sess, vm.GuestVM(
            work, [disk], GUEST, timeout=240, load_filter=True, accel="tcg",
            qemu_args=["-qmp", f"unix:{sock},server=on,wait=off"]) as g:
        g.start()
        s = g.connect_agent(timeout=60)
        f = s.makefile("rwb")
        t.eq(f.readline().strip(), b"ready", "guest workload loop running")
        orig = g.device_node(disk)
        g._close_qmp()  # blkin-live uses its own monitor; keep ours quiet meanwhile
        time.sleep(2)   # rounds before enable

        r = livelib.live("enable", "--qmp", sock, "--device", disk.device_id,
                         "--id", "livevm/vda")
        t.ok(r.returncode == 0, "blkin-live enable under I/O", detail=r.stdout + r.stderr)
        t.diag(r.stdout.strip())
        node = g.device_node(disk)
        drv = {n["node-name"]: n["drv"] for n in g.qmp("query-named-block-nodes")}
        t.ok(node != orig and drv.get(node) == "blkin",
             f"device moved from {orig} onto blkin node {node}")
        g._close_qmp()
        t_on = time.monotonic()
        time.sleep(4)  # rounds while traced

        r = livelib.live("disable", "--qmp", sock, "--device", disk.device_id)
        t.ok(r.returncode == 0, "blkin-live disable under I/O", detail=r.stdout + r.stderr)
        t.eq(g.device_node(disk), orig, "device back on its original node")
        names = [n["node-name"] for n in g.qmp("query-named-block-nodes")]
        t.ok(not [n for n in names if n.startswith("blkinlive")],
             "no filter node left", detail=str(names))
        g._close_qmp()
        time.sleep(2)  # rounds after disable
        f.write(b"stop\n")
        f.flush()
        res = g.wait()
        s.close()
        text = g.results()
        pid = g.qemu_pid
    t.ok(res.ok, "guest finished cleanly", detail=f"{res}\n{res.console[-2000:]}")
    sums = [line for line in text.splitlines() if line.startswith("summary ")]
    bad = [line for line in sums if " errors=0 " not in line or not line.endswith(" mismatches=0")]
    t.ok(len(sums) >= 3 and not bad and "FAILED" not in text,
         f"{len(sums)} workload rounds before, during and after: no errors, data verified",
         detail=text[-1500:])
    reqs = sess.for_disk("livevm/vda")
    t.ok(len(reqs) > 0, f"LTTng recorded {len(reqs)} requests of the disk while enabled")
    sess.cleanup()


def main():
    t = Tap()
    if not vm.preload_library() or not os.path.exists(livelib.LIVE):
        t.skip("blkin-live on a running guest", "preload object or blkin-live not built")
    else:
        t.run(test_live_vm)
    t.done()


if __name__ == "__main__":
    main()
