#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Benchmark of the guest agent's cost (not a test).
#
# Boots one test guest (tests/lib/vm.py) and runs the same O_DIRECT workload
# (blkin-workload, two disks, queue depth 1 then 16) repeatedly, interleaving
#   none       no agent
#   agent      blkin-guest-agent with default options (queue events on; the
#              BPF collector where the guest kernel allows it)
#   agent-perf blkin-guest-agent --mechanism perf
#   agent-noq  blkin-guest-agent --no-queue-events (not run by default)
#   events-only  the agent's BPF programs recording while the agent itself is
#              stopped: the kernel-side share of the cost
#   events-only-perf  the same for its perf events
# while blkin-agent-dump is connected on the host, so records really flow.
# Reports per mode the median IOPS, the IOPS ratio to "none", the agent's CPU
# time per request (getrusage of the agent over the run / requests it saw),
# its peak RSS and its configured memory bound. Markdown on stdout.
# The host end validates every record but prints none (--no-requests) unless
# --print-requests: on a 2-core host its JSON output competes with QEMU.
#
#   bench/agent-bench.sh [--reps R] [--count N] [--cpus C] [--build DIR]
#                        [--modes none,agent,...] [--print-requests]
#   bench/agent-bench.sh --micro    # native ns/request of decode+match+encode
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
reps=5
count=1000
cpus=1
build=${BLKIN_BUILD:-$top/build}
print_requests=0
modes=none,agent,agent-perf,events-only,events-only-perf
while [ $# -gt 0 ]; do
    case $1 in
    --reps) reps=$2; shift 2 ;;
    --count) count=$2; shift 2 ;;
    --cpus) cpus=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    --print-requests) print_requests=1; shift ;;
    --modes) modes=$2; shift 2 ;;
    --micro)
        # The agent's user-space pipeline alone, natively on this host.
        for qd in 1 16; do "$build/tests/agent/agent-pipeline-bench" 2000000 $qd; done
        exit 0 ;;
    -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done

export BLKIN_BUILD_ROOT=$build BLKIN_SOURCE_ROOT=$top
export PYTHONPATH=$top/tests/lib:$top/tests/agent
exec python3 - "$reps" "$count" "$cpus" "$print_requests" "$modes" <<'PY'
import os
import statistics
import subprocess
import sys
import tempfile
import time

import agenttest as at
import vm

reps, count, cpus, print_requests = (int(x) for x in sys.argv[1:5])
modes = sys.argv[5].split(",")
if "none" not in modes:
    modes.insert(0, "none")
wl = f"--seed 11 --count {count} --qd 1,16 --span 32M"

# A first, unmeasured pass allocates the sparse images' blocks on the host
# and warms the guest, so no mode pays for it.
script = ['blkin-workload ' + wl + ' -o /dev/null "$(blkin_disk bench-a)" "$(blkin_disk bench-b)"']
for r in range(reps):
    # Rotate the order each repetition so drift in the guest does not favour one.
    k = r % len(modes)
    for m in modes[k:] + modes[:k]:
        script.append(f'echo "run {r} {m}" >"$BLKIN_RESULTS"')
        if m == "agent":
            script.append("start_agent || exit 1")
        elif m == "agent-noq":
            script.append("start_agent --no-queue-events || exit 1")
        elif m == "agent-perf":
            script.append("start_agent --mechanism perf || exit 1")
        elif m.startswith("events-only"):
            # The kernel side alone: events recorded into rings big enough
            # for the whole run while the agent is stopped.
            mech = "perf" if m == "events-only-perf" else "auto"
            script.append(f"start_agent --mechanism {mech} --ring-pages 4096 || exit 1")
            script.append("kill -STOP $AGENT")
        script.append(f'blkin-workload {wl} -o "$BLKIN_RESULTS" '
                      '"$(blkin_disk bench-a)" "$(blkin_disk bench-b)" || exit 2')
        if m.startswith("events-only"):
            script.append("kill -CONT $AGENT")
        if m != "none":
            script.append("sleep 0.2; stop_agent")
        script.append('echo "endrun" >"$BLKIN_RESULTS"')

work = tempfile.mkdtemp(prefix="blkin-agent-bench-")
disks = [vm.Disk(os.path.join(work, "a.img"), "bench-a", size="64M"),
         vm.Disk(os.path.join(work, "b.img"), "bench-b", size="64M")]
g = vm.GuestVM(work, disks, at.GUEST_LIB + "\n".join(script) + "\n",
               extra_files={"bin/blkin-guest-agent": at.agent_binary()},
               timeout=60 + reps * 60, cpus=cpus)
with g:
    g.start()
    dump = at.Dump(g.agent_socket, os.path.join(work, "dump.jsonl"), probe_ms=200,
                   requests=bool(print_requests))
    res = g.wait()
    dump.stop()
    text = g.results()
if not res.ok:
    sys.exit(f"guest failed: {res}\n{res.console[-2000:]}")

runs = []
cur = None
for line in text.splitlines():
    if line.startswith("run "):
        _, r, m = line.split()
        cur = {"mode": m, "rep": int(r), "lines": []}
    elif line == "endrun" and cur:
        runs.append(cur)
        cur = None
    elif cur is not None:
        cur["lines"].append(line)

per = {m: {"iops": [], "cpu_ns_per_req": [], "rss_kb": [], "paired": [], "setup_us": []}
       for m in modes}
rep_iops = {}
for r in runs:
    body = "\n".join(r["lines"])
    w = vm.parse_workload(body)
    ios = w["ios"]
    span = max(i["end"] for i in ios) - min(i["start"] for i in ios)
    per[r["mode"]]["iops"].append(len(ios) / (span / 1e9))
    rep_iops.setdefault(r["rep"], {})[r["mode"]] = len(ios) / (span / 1e9)
    body_log = body.replace("agent-log ", "")
    st = at.agent_stats(body_log)
    if "with the bpf collector" in body_log:
        per[r["mode"]]["collector"] = "bpf"
    elif "with the perf collector" in body_log:
        per[r["mode"]]["collector"] = "perf"
    if st and r["mode"].startswith("events-only"):
        per[r["mode"]].setdefault("lost", []).append(st["lost"])
    elif st:
        # Start-up (loading the BPF programs: libbpf reads the kernel's BTF)
        # is paid once, not per request.
        cpu = st["cpu_user_us"] + st["cpu_sys_us"] - st.get("setup_cpu_us", 0)
        per[r["mode"]]["cpu_ns_per_req"].append(cpu * 1000 / max(1, st["records"]))
        per[r["mode"]]["rss_kb"].append(st["maxrss_kb"])
        per[r["mode"]]["setup_us"].append(st.get("setup_cpu_us", 0))

# Runs next to each other share the host's state (TCG speed drifts with it):
# the ratio within each repetition is the steadier figure.
for rep, d in rep_iops.items():
    for m in modes:
        if m in d and "none" in d:
            per[m]["paired"].append(d[m] / d["none"])

bound = int(subprocess.run([at.agent_binary(), "--memory-bound"], capture_output=True,
                           text=True, check=True).stdout)
base = statistics.median(per["none"]["iops"])
print(f"Agent benchmark: {reps} repetitions x {2 * count} O_DIRECT requests "
      f"(blkin-workload {wl}, 2 disks), accel={g.accel}, {cpus} vCPU, host end "
      f"{'printing' if print_requests else 'validating, not printing'} requests\n")
print("| mode | collector | median IOPS | ratio of medians | median paired ratio | agent CPU / request | agent start-up CPU | agent peak RSS |")
print("|---|---|---|---|---|---|---|---|")
for m in modes:
    d = per[m]
    med = statistics.median(d["iops"])
    cpu = f"{statistics.median(d['cpu_ns_per_req']) / 1000:.1f} us" if d["cpu_ns_per_req"] else "-"
    rss = f"{max(d['rss_kb'])} KiB" if d["rss_kb"] else "-"
    paired = statistics.median(d["paired"])
    setup = f"{statistics.median(d['setup_us']) / 1000:.0f} ms" if d["setup_us"] else "-"
    print(f"| {m} | {d.get('collector', '-')} | {med:.0f} | {med / base:.3f} | {paired:.3f} | "
          f"{cpu} | {setup} | {rss} |")
print()
for m in modes:
    if m.startswith("events-only"):
        lost = per[m].get("lost", [])
        print(f"- {m}: the agent was stopped (SIGSTOP) during the run, so only the "
              f"kernel side's cost remains (lost: {sum(lost)})")
for m in modes:
    print(f"- {m}: IOPS per repetition " + ", ".join(f"{x:.0f}" for x in per[m]["iops"])
          + "; paired ratios " + ", ".join(f"{x:.3f}" for x in per[m]["paired"]))
ncpu = os.cpu_count()
print(f"- agent memory bound with default options: {bound >> 10} KiB for {ncpu} CPUs "
      "(`blkin-guest-agent --memory-bound`; the perf rings scale with the CPU count)")
PY
