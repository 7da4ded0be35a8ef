#!/usr/bin/env python3
"""The harness puts the project's blkin filter node on top of a disk (stock
QEMU + LD_PRELOAD, -drive json: filter on the format node) and the guest's
workload runs through it. Skipped while libblkin-preload.so is not built."""
import json
import os

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


def main():
    t = Tap()
    t.run(test_filter_graph)
    t.done()


if __name__ == "__main__":
    main()
