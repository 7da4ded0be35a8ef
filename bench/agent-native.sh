#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Benchmark of the guest agent's cost where its code runs natively (not a
# test): the agent's collectors on this machine's own kernel, against a loop
# device over a file in a tmpfs, with blkin-workload doing 4 KiB random
# reads and writes (O_DIRECT, 50 % writes) at queue depth 1 and 32.
#
# Each repetition runs every mode back to back, in an order rotated from one
# repetition to the next:
#   off    no agent
#   bpf    blkin-guest-agent --mechanism bpf  (BPF programs, ring buffer)
#   perf   blkin-guest-agent --mechanism perf (perf sampling, matching)
# with the agent listening on a local UNIX socket (--socket) and a host end
# connected to it, so records really flow as they would to the host: by
# default a reader that discards the bytes (--sink null: in a VM the host end
# runs outside the guest, so it must not compete for the CPUs measured
# here), or blkin-agent-dump validating every record (--sink dump). The
# agent's CPU time per request is its scheduler run time
# (/proc/PID/schedstat) over the workload's requests. IOPS comes from the
# workload's own phase lines. The paired ratio is a mode's IOPS over the
# "off" run of the same repetition; the medians of those are reported, and
# the last line is
#   ratio qd1 X qd32 Y
# for the agent's default collector on this kernel (auto: bpf where it
# loads). With --bpf-stats, the kernel's own accounting of the BPF programs
# (kernel.bpf_stats_enabled) gives their run time per invocation.
#
#   bench/agent-native.sh [--reps R] [--count1 N] [--count32 N] [--modes off,bpf,perf]
#                         [--agent-args "..."] [--sink null|dump] [--bpf-stats]
#                         [--build DIR]
# Needs root (losetup, mount, perf_event_open, bpf).
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
build=${BLKIN_BUILD:-$top/build}
reps=7
count1=20000
count32=60000
modes=off,bpf,perf
agent_args=
sink=null
bpf_stats=0
while [ $# -gt 0 ]; do
    case $1 in
    --reps) reps=$2; shift 2 ;;
    --count1) count1=$2; shift 2 ;;
    --count32) count32=$2; shift 2 ;;
    --modes) modes=$2; shift 2 ;;
    --agent-args) agent_args=$2; shift 2 ;;
    --sink) sink=$2; shift 2 ;;
    --bpf-stats) bpf_stats=1; shift ;;
    --build) build=$2; shift 2 ;;
    -h|--help) sed -n '2,35p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done

work=$(mktemp -d /tmp/blkin-agent-native.XXXXXX)
loop=
stats_was=
cleanup() {
    [ -n "$stats_was" ] && sysctl -qw kernel.bpf_stats_enabled="$stats_was"
    [ -n "$loop" ] && losetup -d "$loop" 2>/dev/null
    mountpoint -q "$work/fs" && umount "$work/fs"
    rm -rf "$work"
}
trap cleanup EXIT

mkdir "$work/fs"
mount -t tmpfs -o size=600m tmpfs "$work/fs"
# Written once, so reads find pages and no run pays for allocating them.
dd if=/dev/zero of="$work/fs/disk.img" bs=1M count=512 status=none
loop=$(losetup --find --show "$work/fs/disk.img")
if [ "$bpf_stats" = 1 ]; then
    stats_was=$(sysctl -n kernel.bpf_stats_enabled)
    sysctl -qw kernel.bpf_stats_enabled=1
fi

python3 - "$build" "$work" "$loop" "$reps" "$count1" "$count32" "$modes" "$agent_args" "$bpf_stats" "$sink" <<'PY'
import json
import os
import shlex
import socket
import statistics
import subprocess
import sys
import threading
import time

build, work, loop, reps, count1, count32, modes, agent_args, bpf_stats, sink = sys.argv[1:]
reps, count1, count32 = int(reps), int(count1), int(count32)
modes = modes.split(",")
bpf_stats = bpf_stats == "1"
agent = os.path.join(build, "guest-agent", "blkin-guest-agent")
dump = os.path.join(build, "tools", "blkin-agent-dump")
workload = os.path.join(build, "tests", "workload", "blkin-workload")
disk = os.path.basename(loop)
sock = os.path.join(work, "agent.sock")


def wait_for(cond, timeout):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.02)
    return cond()


def log_text(path):
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return ""


def bpf_prog_stats():
    """run_time_ns and run_cnt of the agent's programs, by name."""
    try:
        out = subprocess.run(["bpftool", "-j", "prog", "show"], capture_output=True,
                             text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return {}
    return {p["name"]: (p.get("run_time_ns", 0), p.get("run_cnt", 0),
                        p.get("recursion_misses", 0))
            for p in json.loads(out) if p.get("name", "").startswith("on_")}


def workload_iops(qd, count, seed):
    out = os.path.join(work, "wl.out")
    p = subprocess.run([workload, "-s", str(seed), "-n", str(count), "-q", str(qd),
                        "-b", "4K", "-S", "256M", "-w", "50", "-Q", "-o", out, loop],
                       capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"workload failed ({p.returncode}): {p.stderr}")
    for line in open(out):
        if line.startswith("phase "):
            f = dict(w.split("=", 1) for w in line.split()[2:])
            return int(f["requests"]) / (int(f["elapsed_ns"]) / 1e9)
    sys.exit("workload printed no phase line")


def run_ns(pid):
    """Time the process has run on a CPU, in ns (sched_info)."""
    try:
        with open(f"/proc/{pid}/schedstat") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


class NullSink:
    """A host end that reads whatever the agent sends and discards it."""

    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.connect(path)
        self.bytes = 0
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        # Into one buffer: recv(1 MiB) allocates and frees a megabyte per
        # call, which cost ~100 ns per record on the CPUs being measured.
        buf = bytearray(1 << 20)
        while True:
            try:
                n = self.s.recv_into(buf)
            except OSError:
                return
            if not n:
                return
            self.bytes += n

    def terminate(self):
        try:
            self.s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.t.join(5)
        self.s.close()

    def wait(self, timeout=None):
        return 0

    def kill(self):
        pass


class Agent:
    def __init__(self, mechanism):
        self.log = os.path.join(work, f"agent-{mechanism}.log")
        args = [agent, "-v", "--disks", disk, "--socket", sock,
                "--mechanism", mechanism] + shlex.split(agent_args)
        self.proc = subprocess.Popen(args, stderr=open(self.log, "w"),
                                     stdin=subprocess.DEVNULL)
        if not wait_for(lambda: os.path.exists(sock) and "listening" in log_text(self.log), 10):
            self.stop()
            sys.exit(f"agent did not start:\n{log_text(self.log)}")
        if sink == "dump":
            self.dump = subprocess.Popen([dump, "--no-requests", "-i", "200", "-o",
                                          os.path.join(work, f"dump-{mechanism}.jsonl"), sock],
                                         stdin=subprocess.DEVNULL)
        else:
            self.dump = NullSink(sock)
        if not wait_for(lambda: "host connected" in log_text(self.log), 10):
            self.stop()
            sys.exit(f"host end did not connect:\n{log_text(self.log)}")
        first = log_text(self.log)
        self.mechanism = "bpf" if "bpf collector" in first else "perf"

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.dump.terminate()
        try:
            self.dump.wait(5)
        except subprocess.TimeoutExpired:
            self.dump.kill()
            self.dump.wait()
        stats = {}
        for line in log_text(self.log).splitlines():
            if "stats:" in line:
                stats = {k: int(v) for k, v in
                         (w.split("=", 1) for w in line.split("stats:", 1)[1].split())}
        return stats


# Warm-up, not measured: the loop device, page cache of the workload binary.
workload_iops(32, 5000, 99)

iops = {(m, qd): [] for m in modes for qd in (1, 32)}
paired = {(m, qd): [] for m in modes for qd in (1, 32)}
agent_ns = {m: [] for m in modes}
ran_as = {}
losses = {m: [0, 0, 0] for m in modes}
prog_ns = {}
for r in range(reps):
    k = r % len(modes)
    this = {}
    for m in modes[k:] + modes[:k]:
        a = Agent(m) if m != "off" else None
        before = bpf_prog_stats() if a and bpf_stats else {}
        cpu0 = run_ns(a.proc.pid) if a else 0
        t1 = workload_iops(1, count1, 1000 + r)
        t32 = workload_iops(32, count32, 2000 + r)
        if a:
            agent_ns[m].append((run_ns(a.proc.pid) - cpu0) / (count1 + count32))
        after = bpf_prog_stats() if a and bpf_stats else {}
        if a:
            ran_as[m] = a.mechanism
            time.sleep(0.15)  # the last records reach the host end
            st = a.stop()
            losses[m][0] += st.get("lost", 0)
            losses[m][1] += st.get("dropped", 0)
            losses[m][2] += st.get("unmatched", 0) + st.get("evicted", 0)
            for name, (t, c, miss) in after.items():
                t0, c0, miss0 = before.get(name, (0, 0, 0))
                acc = prog_ns.setdefault(name, [0, 0, 0])
                acc[0] += t - t0
                acc[1] += c - c0
                acc[2] += miss - miss0
        this[m] = (t1, t32)
        iops[(m, 1)].append(t1)
        iops[(m, 32)].append(t32)
    for m in modes:
        for i, qd in enumerate((1, 32)):
            paired[(m, qd)].append(this[m][i] / this["off"][i])

med = statistics.median
print(f"Agent cost natively: {os.uname().release}, {os.cpu_count()} CPUs, loop device over tmpfs, "
      f"blkin-workload 4 KiB random, 50 % writes, O_DIRECT; {reps} repetitions of "
      f"{count1} requests at QD1 and {count32} at QD32 per mode; host end: "
      f"{'blkin-agent-dump validating' if sink == 'dump' else 'a reader discarding the bytes'}\n")
print("| mode | collector | QD1 median IOPS | QD1 paired ratio | QD32 median IOPS | "
      "QD32 paired ratio | agent CPU / request | lost / dropped / unmatched |")
print("|---|---|---|---|---|---|---|---|")
for m in modes:
    cpu = f"{med(agent_ns[m]):.0f} ns" if agent_ns[m] else "-"
    print(f"| {m} | {ran_as.get(m, '-')} | {med(iops[(m, 1)]):.0f} | {med(paired[(m, 1)]):.3f} | "
          f"{med(iops[(m, 32)]):.0f} | {med(paired[(m, 32)]):.3f} | {cpu} | "
          f"{' / '.join(map(str, losses[m])) if m != 'off' else '-'} |")
print()
for m in modes:
    if m != "off":
        print(f"- {m}: paired ratios QD1 " + ", ".join(f"{x:.3f}" for x in paired[(m, 1)])
              + "; QD32 " + ", ".join(f"{x:.3f}" for x in paired[(m, 32)]))
if prog_ns:
    print("- BPF programs, kernel-measured (kernel.bpf_stats_enabled, which adds its own two "
          "clock reads to each run): " + ", ".join(
              f"{n} {t / c:.0f} ns x {c} ({miss} not run: nested on one CPU)"
              for n, (t, c, miss) in sorted(prog_ns.items()) if c))
print("- lost: ring overruns (kernel side); dropped: the agent's queue full (host end "
      "slow); unmatched: completions whose issue the agent never saw, plus evicted issues")
# The agent's default collector on this kernel: bpf when it loads.
default = "bpf" if "bpf" in modes and ran_as.get("bpf") == "bpf" else \
    next((m for m in modes if m != "off"), None)
if default:
    print(f"- the last line is the {default} mode's")
    print(f"ratio qd1 {med(paired[(default, 1)]):.3f} qd32 {med(paired[(default, 32)]):.3f}")
PY
