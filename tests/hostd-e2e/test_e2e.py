#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""End to end: a real guest (agent + workload) on two disks behind the blkin
filter, a real lttng-sessiond/relayd live session, blkin-hostd joining both,
and `blkin report` checked against what the workload itself issued and
measured. Then the same trace read offline must give the same report."""
import collections
import json
import os
import shutil
import statistics
import subprocess
import time

import vm
from stack import BUILD, HOSTD, HostStack, StackedDisk
from tap import Tap



def guest_script(qd, count):
    return f"""
blkin-guest-agent 2>/tmp/agent.log &
AGENT=$!
sleep 1
for s in e2e-a e2e-b; do echo "serial $(blkin_disk $s) $s" >"$BLKIN_RESULTS"; done
blkin-workload --seed 7 -n {count} -q {qd} -f 3 -d 3 -o "$BLKIN_RESULTS" \
    "$(blkin_disk e2e-a)" "$(blkin_disk e2e-b)"
rc=$?
sleep 1
kill -TERM $AGENT
wait $AGENT
exit $rc
"""


# With QEMU's default discard=ignore a guest's discard never reaches the
# filter (it is then, correctly, an unmatched guest request); pass them.
UNMAP = {"discard": "unmap"}


def workdir(name):
    d = os.path.join(BUILD, "tests", "hostd-e2e", "work", name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    return d


def issued(text, records):
    """Per (serial, op): the latencies of the requests the workload completed."""
    serial = dict(line.split()[1:3] for line in text.splitlines() if line.startswith("serial "))
    by = collections.defaultdict(list)
    for io in records["ios"]:
        by[(serial.get(io["dev"], io["dev"]), io["op"])].append(io["end"] - io["start"])
    return by


def run_case(t, qd, count):
    wd = workdir(f"qd{qd}")
    vm_name = f"e2e-qd{qd}"
    disks = [vm.Disk(os.path.join(wd, "a.raw"), "e2e-a", size="64M",
                     blkin={"id": f"{vm_name}/vda"}, filter_json=UNMAP,
                     proto_opts=UNMAP, fmt_opts=UNMAP),
             # blkin -> qcow2 -> blkin -> file: the lower node's spans are vdb's backend
             StackedDisk(os.path.join(wd, "b.qcow2"), "e2e-b", fmt="qcow2", size="64M",
                         blkin={"id": f"{vm_name}/vdb", **UNMAP})]
    capture = os.path.join(wd, "guest.capture")
    with HostStack(wd, hold_ms=2000, hostd_args=["--capture", capture]) as st, \
            vm.GuestVM(wd, disks, guest_script(qd, count), timeout=180, cpus=2,
                       extra_files={"/bin/blkin-guest-agent": vm.agent_binary()}) as g:
        specs = [f"vda=e2e-a={vm_name}/vda", f"vdb=e2e-b={vm_name}/vdb"]
        g.start()  # the agent socket's path is known from here on
        st.register(vm_name, g.agent_socket, specs)
        res = g.wait()
        t.ok(res.ok, f"QD{qd}: the guest's workload and agent ran", detail=res.console[-3000:])
        text = g.results()
        records = vm.parse_workload(text)
        want = issued(text, records)
        n_guest = sum(len(v) for (s, op), v in want.items() if op in ("read", "write"))

        def settled():
            r = st.report(vm_name, window="1h")
            c = sum(d["counters"]["matched"] + d["counters"]["unmatched_guest"] for d in r["disks"])
            return r if c >= n_guest else None
        st.wait_until(settled, timeout=30)
        # The windows are read hold-time late and end on a whole second:
        # wait until the trailing requests (final flushes) are inside.
        time.sleep(st.hold_ms / 1000 + 2.5)
        rep = st.report(vm_name, window="1h")
        tail = json.loads(st.cli("tail", vm_name, "--window", "1h", "--json").stdout)
        live_counts = per_op_counts(rep)

    by_disk = {d["serial"]: d for d in rep["disks"]}
    for serial in ("e2e-a", "e2e-b"):
        d = by_disk.get(serial)
        t.ok(d is not None, f"QD{qd}: the report has disk {serial}")
        if not d:
            continue
        c = d["counters"]
        guest_total = c["matched"] + c["unmatched_guest"]
        joined = c["matched"] / max(1, guest_total)
        t.ok(joined >= 0.99, f"QD{qd} {serial}: at least 99% of the guest's requests joined to filter spans",
             detail=f"matched {c['matched']} of {guest_total}; counters {c}")
        ops = {o["op"]: o for o in d["ops"]}
        for (s, op), lats in sorted(want.items()):
            if s != serial:
                continue
            got = ops.get(op, {}).get("count", 0)
            if op in ("read", "write"):
                t.eq(got, len(lats), f"QD{qd} {serial}: {op} count equals what the workload issued")
            else:  # one fdatasync or BLKDISCARD may become several requests
                t.ok(got >= 1, f"QD{qd} {serial}: {op} requests reported ({got}; workload issued {len(lats)})")
            if op in ("read", "write") and op in ops:
                total = {p["phase"]: p for p in ops[op]["phases"]}.get("total")
                mine = statistics.median(lats)
                t.ok(total and 0.2 * mine <= total["p50_ns"] <= mine * 1.05 + 200000,
                     f"QD{qd} {serial}: {op} median total agrees with the workload's own measurement",
                     detail=f"report p50 {total and total['p50_ns']} ns, workload p50 {mine} ns")
        phases = {p["phase"] for o in d["ops"] for p in o["phases"]}
        # virtio-blk: QEMU's own device entry and completion frame QEMU's
        # part (docs/hostd.md, "Phases").
        t.ok({"guest_queue", "guest_to_device", "device", "qemu", "device_completion",
              "device_to_guest", "in_qemu", "total"} <= phases,
             f"QD{qd} {serial}: the report shows every phase", detail=sorted(phases))
        t.ok("bound_ns" in (d.get("clock") or {}), f"QD{qd} {serial}: the report states the clock error bound")
        if serial == "e2e-a":
            t.ok("backend" not in phases,
                 f"QD{qd} {serial}: no blkin node below the filter, so no backend time is claimed "
                 "(the storage's time is in qemu)", detail=sorted(phases))
        else:
            back = {o["op"]: p for o in d["ops"] for p in o["phases"] if p["phase"] == "backend"}
            w = back.get("write", {})
            t.ok(w.get("count") == ops.get("write", {}).get("count") and w.get("p50_ns", 0) > 0,
                 f"QD{qd} {serial}: with a blkin node under qcow2, every write has its backend time",
                 detail=f"backend {w}, writes {ops.get('write', {}).get('count')}")

    reqs = tail["requests"]
    t.ok(len(reqs) > 0, f"QD{qd}: the slowest requests are kept whole")
    bad = [r for r in reqs if r.get("has_guest") and r.get("has_span")
           and sum(p["ns"] for p in r["phases"] if p["phase"] != "total") != r["total_ns"]]
    t.ok(not bad, f"QD{qd}: phases add up to the total for every captured request", detail=bad[:3])

    # The same trace and guest requests, read offline, give the same counts.
    relay = os.path.join(wd, "relayd")
    off = subprocess.run([HOSTD, "--offline", relay, "--replay", capture, "--report", "--no-history",
                          "--vm", f"{vm_name}::" + ",".join(specs)],
                         capture_output=True, text=True, timeout=300)
    t.ok(off.returncode == 0, f"QD{qd}: offline hostd reads the recorded trace", detail=off.stderr[-2000:])
    if off.returncode == 0:
        t.eq(per_op_counts(json.loads(off.stdout)), live_counts,
             f"QD{qd}: offline report has the same per-disk, per-op and join counts as live")


def per_op_counts(rep):
    out = {}
    for d in rep["disks"]:
        c = d["counters"]
        out[d["serial"]] = {"ops": {o["op"]: o["count"] for o in d["ops"]},
                            "matched": c["matched"], "unmatched_guest": c["unmatched_guest"]}
    return out


def main():
    t = Tap()
    t.run(run_case, 1, 200)
    t.run(run_case, 32, 400)
    t.done()


if __name__ == "__main__":
    main()
