#!/usr/bin/env python3
"""Benchmark of the blkin filter's per-request cost (not a test).

qemu-img bench on null-co (4 KiB reads, queue depth 64 and 1), interleaving
in one run, repetition by repetition:
  none       null-co alone
  raw        QEMU's raw driver as a peer layer (the baseline)
  blkin-off  the blkin filter, no session recording
  blkin-rec  the blkin filter, every request recorded by an LTTng session
             with the project's shipped channel (scripts/blkin-lttng-channel)
Reports the median ns/request of each, ns added over raw and the ratio to
raw, and the events the channel discarded. Markdown on stdout.

    sudo bench/filter-bench.py [--count N] [--reps R] [--build DIR]
"""
import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(SRC, "tests", "lib"))
from lttng import ensure_sessiond  # noqa: E402

NULL = {"driver": "null-co", "size": 1 << 40}
CONFIGS = {
    "none": NULL,
    "raw": {"driver": "raw", "file": NULL},
    "blkin-off": {"driver": "blkin", "id": "bench", "file": NULL},
    "blkin-rec": {"driver": "blkin", "id": "bench", "file": NULL},
}


def lttng(*args):
    return subprocess.run(["lttng", *args], check=True, capture_output=True, text=True, timeout=120).stdout


def bench_once(preload, image, count, depth):
    env = dict(os.environ, LD_PRELOAD=preload)
    out = subprocess.run(["timeout", "600", "qemu-img", "bench", "-c", str(count), "-d", str(depth),
                          "-s", "4096", "json:" + json.dumps(image)],
                         env=env, capture_output=True, text=True, check=True).stdout
    secs = float(re.search(r"Run completed in ([0-9.]+) seconds", out).group(1))
    return secs * 1e9 / count


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=1_000_000)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--build", default=os.path.join(SRC, "build"))
    a = ap.parse_args()
    preload = os.path.join(a.build, "qemu-filter", "libblkin-preload.so")

    ensure_sessiond()
    tracedir = tempfile.mkdtemp(prefix="blkin-bench-")
    session = "blkin-bench-%d" % os.getpid()
    lttng("create", session, "--output=" + tracedir)
    subprocess.run([os.path.join(SRC, "scripts", "blkin-lttng-channel"), session], check=True)
    lttng("enable-event", "--session=" + session, "-u", "-c", "blkin", "blkin_qemu:*")

    results = {}
    try:
        for depth in (64, 1):
            samples = {k: [] for k in CONFIGS}
            for _ in range(a.reps):
                for name, image in CONFIGS.items():
                    if name == "blkin-rec":
                        lttng("start", session)
                    samples[name].append(bench_once(preload, image, a.count, depth))
                    if name == "blkin-rec":
                        lttng("stop", session)
            results[depth] = {k: statistics.median(v) for k, v in samples.items()}
        listing = lttng("list", session)
        discarded = sum(int(x) for x in re.findall(r"Discarded events: (\d+)", listing))
        lost = sum(int(x) for x in re.findall(r"Lost packets: (\d+)", listing))
    finally:
        subprocess.run(["lttng", "destroy", session], capture_output=True)
        shutil.rmtree(tracedir, ignore_errors=True)

    print(f"qemu-img bench, null-co, 4 KiB reads, {a.count} requests x {a.reps} interleaved repetitions, "
          f"median ns/request")
    print()
    print("| depth | config | ns/request | ns over raw | ratio to raw |")
    print("|---|---|---|---|---|")
    for depth, r in results.items():
        for name in CONFIGS:
            print(f"| {depth} | {name} | {r[name]:.0f} | {r[name] - r['raw']:+.0f} | {r[name] / r['raw']:.3f} |")
    print()
    print(f"LTTng channel: {discarded} events discarded, {lost} packets lost "
          f"(blkin-rec: {2 * a.reps * a.count} requests recorded in all)")


if __name__ == "__main__":
    main()
