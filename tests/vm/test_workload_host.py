#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""blkin-workload on host image files (no VM): the plan is deterministic,
is exactly what it issues, and its data verification works."""
import os
import subprocess

import vm
import vmtestlib
from tap import Tap

ARGS = ["--seed", "7", "--count", "150", "--qd", "1,16", "--span", "8M"]


def run_workload(args, devs, out):
    return subprocess.run([vm.workload_binary(), *args, "-o", out, *devs],
                          capture_output=True, text=True)


def images(work, n, size=16 << 20):
    paths = []
    for i in range(n):
        p = os.path.join(work, f"img{i}")
        with open(p, "wb") as f:
            f.truncate(size)
        paths.append(p)
    return paths


def test_plan_is_what_runs(t):
    work = vmtestlib.workdir("workload-host")
    devs = images(work, 2)
    out = os.path.join(work, "out")
    p = run_workload(ARGS, devs, out)
    t.eq(p.returncode, 0, "workload exits 0 on two image files")
    with open(out) as f:
        w = vm.parse_workload(f.read())
    plan = vm.workload_plan(ARGS, devs)
    t.eq(len(plan), 300, "plan has count x phases requests")
    got = sorted(({k: r[k] for k in ("seq", "qd", "dev", "op", "offset", "bytes")}
                  for r in w["ios"]), key=lambda r: r["seq"])
    t.ok(got == plan, "issued requests equal the --plan output, request by request")
    t.ok(w["end"] and w["summary"] is not None, "output complete (summary and end lines)")
    s = w["summary"] or {}
    t.eq((s.get("errors"), s.get("mismatches")), (0, 0), "no errors, no mismatches")
    t.ok(s.get("verified_blocks", 0) > 100, "reads verified blocks written earlier",
         detail=str(s))
    t.ok(all(r["result"] == r["bytes"] and r["end"] >= r["start"] > 0 for r in w["ios"]),
         "every request completed in full with end >= start")
    t.eq([(ph["qd"], ph["requests"]) for ph in w["phases"]], [(1, 150), (16, 150)],
         "one phase per queue depth")
    t.eq(vmtestlib.max_in_flight([r for r in w["ios"] if r["qd"] == 1]), 1,
         "queue depth 1 never overlaps requests")
    sizes = {r["bytes"] for r in plan}
    t.eq(sizes, {4096 << k for k in range(7)}, "sizes cover 4K..256K")
    t.ok({r["op"] for r in plan} == {"read", "write"}, "reads and writes, nothing else by default")


def test_determinism(t):
    a = vm.workload_plan(ARGS, ["/dev/vda", "/dev/vdb"])
    b = vm.workload_plan(ARGS, ["/dev/vda", "/dev/vdb"])
    c = vm.workload_plan(["--seed", "8"] + ARGS[2:], ["/dev/vda", "/dev/vdb"])
    t.ok(a == b, "same seed, same plan")
    t.ok(a != c, "other seed, other plan")
    t.eq({r["dev"] for r in a}, {"vda", "vdb"}, "device names are the paths' basenames")
    fd = vm.workload_plan(ARGS + ["--flush-pct", "5", "--discard-pct", "5"], ["/dev/vda"])
    ops = {r["op"] for r in fd}
    t.eq(ops, {"read", "write", "flush", "discard"}, "flush and discard when asked")
    t.ok(all(r["offset"] % (256 << 10) == 0 and r["bytes"] == 256 << 10
             for r in fd if r["op"] == "discard"), "discards cover whole 256K slots")
    t.ok(all(r["bytes"] == 0 for r in fd if r["op"] == "flush"), "flushes carry no range")


def test_flush_on_files(t):
    work = vmtestlib.workdir("workload-host-flush")
    devs = images(work, 1)
    out = os.path.join(work, "out")
    p = run_workload(["--count", "100", "--flush-pct", "10"], devs, out)
    with open(out) as f:
        w = vm.parse_workload(f.read())
    fl = [r for r in w["ios"] if r["op"] == "flush"]
    t.ok(p.returncode == 0 and fl and all(r["result"] == 0 for r in fl),
         "fdatasync flushes are issued, timed and succeed", detail=p.stderr)


def test_detects_foreign_data(t):
    # The same file twice: writes as "device 1" carry device 1's pattern, so
    # reads as "device 0" of those blocks must fail verification.
    work = vmtestlib.workdir("workload-host-mismatch")
    (img,) = images(work, 1)
    out = os.path.join(work, "out")
    p = run_workload(["--count", "300", "--qd", "1"], [img, img], out)
    with open(out) as f:
        w = vm.parse_workload(f.read())
    t.ok(w["summary"] and w["summary"]["mismatches"] > 0 and w["mismatches"],
         "verification reports blocks overwritten behind its back", detail=str(w["summary"]))
    t.eq(p.returncode, 1, "and exits 1")


def main():
    t = Tap()
    t.run(test_plan_is_what_runs)
    t.run(test_determinism)
    t.run(test_flush_on_files)
    t.run(test_detects_foreign_data)
    t.done()


if __name__ == "__main__":
    main()
