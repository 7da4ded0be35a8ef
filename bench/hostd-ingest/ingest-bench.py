#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Benchmark of hostd's trace input (not a test).

Records a large synthetic blkin_qemu trace with a real LTTng session and the
shipped channel (scripts/blkin-lttng-channel): blkin-gen emits REQUESTS
request events through the filter's own tracepoint provider over DISKS
disks, plus disk map and hung events. Then, in the same run, alternating
REPS times on the same CPU:

  babeltrace2   babeltrace2 --output-format=dummy TRACE  (CTF decode, dummy sink)
  hostd         tests/hostd/trace-dump --count TRACE     (HostdTraceSource, decode
                                                          every field into HostdSpan,
                                                          a counting sink)

and reports the median wall time, events/s and the ratio hostd/babeltrace2
(issue 4's target: >= 0.6). Markdown on stdout.

  bench/hostd-ingest/ingest-bench.py [--requests N] [--disks D] [--reps R]
      [--rate EV_PER_S] [--cpu C] [--build DIR] [--keep DIR]

Needs the build (meson) and root (lttng-sessiond). A session daemon this
script starts is stopped at the end; a running one is used as is.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def lttng(*args, check=True):
    return subprocess.run(["lttng", *args], capture_output=True, text=True, check=check, timeout=120)


def record(gen, out, requests, disks, rate, batch):
    name = "blkin-ingest-" + uuid.uuid4().hex[:8]
    lttng("create", name, "--output=" + out)
    try:
        subprocess.run([os.path.join(TOP, "scripts", "blkin-lttng-channel"), name], check=True,
                       capture_output=True)
        lttng("enable-event", "-s", name, "-u", "-c", "blkin", "blkin_qemu:*")
        lttng("start", name)
        g = subprocess.run([gen, "-n", str(requests), "-d", str(disks), "-H", "10000", "-r", str(rate),
                            "-b", str(batch)],
                           check=True, capture_output=True, text=True)
        lttng("stop", name)
    finally:
        lttng("destroy", name, check=False)
    return json.loads(g.stdout)


def timed(argv, cpu):
    """Wall and user+sys CPU seconds of one run, and its stdout."""
    if cpu is not None:
        argv = ["taskset", "-c", str(cpu), *argv]
    r0 = os.times()
    t0 = time.monotonic()
    p = subprocess.run(argv, capture_output=True, text=True)
    wall = time.monotonic() - t0
    r1 = os.times()
    if p.returncode != 0:
        sys.exit(f"{argv} failed: {p.stderr[-2000:]}")
    cpu_s = (r1.children_user - r0.children_user) + (r1.children_system - r0.children_system)
    return wall, cpu_s, p.stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=5_000_000)
    ap.add_argument("--disks", type=int, default=16)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--rate", type=int, default=1_500_000,
                    help="generator events/s; the consumer daemon must keep up (discard mode)")
    ap.add_argument("--cpu", type=int, default=1, help="CPU both readers run on (-1: any)")
    ap.add_argument("--batch", type=int, default=64,
                    help="requests per event, as the filter batches them (1: an event each)")
    ap.add_argument("--build", default=os.environ.get("BLKIN_BUILD", os.path.join(TOP, "build")))
    ap.add_argument("--keep", help="record into (or reuse) this directory and keep it")
    a = ap.parse_args()
    cpu = None if a.cpu < 0 else a.cpu
    gen = os.path.join(a.build, "tests", "hostd", "blkin-gen")
    dump = os.path.join(a.build, "tests", "hostd", "trace-dump")
    for p in (gen, dump):
        if not os.access(p, os.X_OK):
            sys.exit(f"{p} missing: build first (bash scripts/setup.sh)")

    started = None
    if lttng("list", check=False).returncode != 0:
        started = subprocess.Popen(["lttng-sessiond"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            if lttng("list", check=False).returncode == 0:
                break
            time.sleep(0.1)
    tmp = None
    try:
        if a.keep and os.path.isdir(a.keep) and os.listdir(a.keep):
            trace, gen_info = a.keep, None
        else:
            trace = a.keep or tempfile.mkdtemp(prefix="blkin-ingest-")
            tmp = None if a.keep else trace
            gen_info = record(gen, trace, a.requests, a.disks, a.rate, a.batch)
        size = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(trace) for f in fs)

        runs = {"babeltrace2": [], "hostd": []}
        stats = None
        # Warm the page cache once, then alternate so drift hits both alike.
        timed(["babeltrace2", "--output-format=dummy", trace], cpu)
        for _ in range(a.reps):
            w, c, _ = timed(["babeltrace2", "--output-format=dummy", trace], cpu)
            runs["babeltrace2"].append((w, c))
            w, c, out = timed([dump, "--count", trace], cpu)
            runs["hostd"].append((w, c))
            stats = json.loads(out.splitlines()[-1])
        events = stats["events"]

        print(f"## hostd ingest vs babeltrace2 ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})\n")
        if gen_info:
            print(f"Generated: {gen_info['requests']:,} request events over {gen_info['disks']} disks, "
                  f"{gen_info['hung']:,} hung, {2 * gen_info['disks']} disk events, "
                  f"at {gen_info['requests'] / gen_info['seconds']:,.0f} events/s.  ")
        print(f"Trace: {events:,} events, {size / 2**20:,.0f} MiB, {stats['discarded']:,} discarded by LTTng, "
              f"{stats['rejected']} rejected.  ")
        print(f"Runs: {a.reps} of each, alternating, pinned to CPU {cpu}, median.\n")
        print("| reader | wall s | CPU s | events/s (wall) | events/s (CPU) |")
        print("|---|---|---|---|---|")
        med = {}
        for k, v in runs.items():
            w = statistics.median(x[0] for x in v)
            c = statistics.median(x[1] for x in v)
            med[k] = (w, c)
            print(f"| {k} | {w:.3f} | {c:.3f} | {events / w:,.0f} | {events / c:,.0f} |")
        print(f"\nRatio hostd / babeltrace2 (events/s, wall): **{med['babeltrace2'][0] / med['hostd'][0]:.2f}x** "
              f"(CPU: {med['babeltrace2'][1] / med['hostd'][1]:.2f}x)")
        spans = stats["spans"]
        print(f"\nRequests in the trace: {spans:,} ({a.batch} per event). hostd decoded requests/s "
              f"{spans / med['hostd'][0]:,.0f} (wall) against babeltrace2's dummy-sink events/s "
              f"{events / med['babeltrace2'][0]:,.0f}: "
              f"**{(spans / med['hostd'][0]) / (events / med['babeltrace2'][0]):.1f}x** (target >= 3x)")
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
        if started:
            started.terminate()
            started.wait(timeout=30)


if __name__ == "__main__":
    main()
