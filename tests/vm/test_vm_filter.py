#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""The harness puts the project's blkin filter node on top of a disk (stock
QEMU + LD_PRELOAD, -drive json: filter on the format node) and the guest's
workload runs through it; it also inserts and removes the filter in a running
guest under I/O. Skipped while libblkin-preload.so is not built."""
import json
import os
import time

import vm
import vmtestlib
from tap import Tap

WL_ARGS = ["--seed", "3", "--count", "100", "--qd", "1,16", "--span", "8M"]

GUEST = r"""
exec 3<>"$BLKIN_AGENT_PORT"
echo ready >&3
read -r go <&3
blkin-workload @ARGS@ -o "$BLKIN_RESULTS" "$(blkin_disk filtered)" "$(blkin_disk plain)"
"""


def test_filter_graph(t):
    lib = vm.preload_library()
    if not lib:
        t.skip("blkin filter in the guest's block graph", "libblkin-preload.so not built")
        return
    work = vmtestlib.workdir("vm-filter")
    disks = [vm.Disk(os.path.join(work, "f.qcow2"), "filtered", fmt="qcow2", size="64M",
                     blkin={"id": "filtered", "sample": 1}),
             vm.Disk(os.path.join(work, "p.img"), "plain", size="64M")]
    with vm.GuestVM(work, disks, GUEST.replace("@ARGS@", " ".join(WL_ARGS)), timeout=90) as g:
        argv_ok = any(a.startswith("if=none,id=blkin0,node-name=filt0,file=json:{")
                      and ',,"file":"fmt0"' in a for a in disks[0].qemu_args())
        t.ok(argv_ok, "-drive json: filter node on the format node, commas doubled",
             detail=json.dumps(disks[0].qemu_args()))
        g.start()
        s = g.connect_agent(timeout=30)
        s.settimeout(60)
        f = s.makefile("rwb")
        t.eq(f.readline().strip(), b"ready", "guest up")
        nodes = {n["node-name"]: n for n in g.qmp("query-named-block-nodes")}
        t.ok(nodes.get("filt0", {}).get("drv") == "blkin", "node filt0 runs the blkin driver",
             detail=json.dumps(sorted(nodes)))
        blk = {b["device"] or b.get("qdev"): b for b in g.qmp("query-block")}
        t.diag("block backends: " + ", ".join(sorted(blk)))
        f.write(b"go\n")
        f.flush()
        res = g.wait()
        s.close()
        text = g.results()
    t.ok(res.ok, "workload through the filter exits 0", detail=f"{res}\n{res.console[-3000:]}")
    w = vm.parse_workload(text)
    s = w["summary"] or {}
    t.eq((s.get("requests"), s.get("errors"), s.get("mismatches")), (200, 0, 0),
         "all requests complete, data verified through the filter")


RUNTIME_GUEST = r"""
exec 3<>"$BLKIN_AGENT_PORT"
# Workload rounds back to back until the host says stop, so that the graph
# changes happen under I/O.
(while [ ! -e /tmp/stop ]; do
    blkin-workload -Q --seed 9 --count 200 "$(blkin_disk live)" >>/tmp/wl.out || echo FAILED >>/tmp/wl.out
done) &
echo ready >&3
read -r stop <&3
touch /tmp/stop
wait
cat /tmp/wl.out >"$BLKIN_RESULTS"
"""


def test_runtime_insert(t):
    if not vm.preload_library():
        t.skip("filter inserted into a running guest's disk", "libblkin-preload.so not built")
        return
    work = vmtestlib.workdir("vm-filter-runtime")
    disk = vm.Disk(os.path.join(work, "live.img"), "live", size="64M")
    with vm.GuestVM(work, [disk], RUNTIME_GUEST, timeout=90, load_filter=True) as g:
        g.start()
        s = g.connect_agent(timeout=30)
        f = s.makefile("rwb")
        t.eq(f.readline().strip(), b"ready", "guest workload loop running")
        t.eq(g.device_node(disk), "fmt0", "device starts on the format node")
        node = g.insert_filter(disk, {"id": "live"})
        t.eq(g.device_node(disk), node, "after insert_filter the device is on the filter node")
        drv = {n["node-name"]: n["drv"] for n in g.qmp("query-named-block-nodes")}
        t.eq(drv.get(node), "blkin", "that node runs the blkin driver")
        time.sleep(0.5)
        g.remove_filter(disk)
        t.eq(g.device_node(disk), "fmt0", "remove_filter puts the device back on the format node")
        node2 = g.insert_filter(disk, {"id": "live"})
        t.eq(g.device_node(disk), node2, "and the filter can be inserted again")
        time.sleep(0.5)
        f.write(b"stop\n")
        f.flush()
        res = g.wait()
        s.close()
        text = g.results()
    t.ok(res.ok, "guest finished cleanly", detail=f"{res}\n{res.console[-2000:]}")
    sums = [line for line in text.splitlines() if line.startswith("summary ")]
    bad = [line for line in sums if " errors=0 " not in line or not line.endswith(" mismatches=0")]
    t.ok(sums and not bad and "FAILED" not in text,
         f"{len(sums)} workload rounds across the graph changes: no errors, data verified",
         detail=text[-1500:])


def main():
    t = Tap()
    t.run(test_filter_graph)
    t.run(test_runtime_insert)
    t.done()


if __name__ == "__main__":
    main()
