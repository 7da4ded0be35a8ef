#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Benchmark of blkin-hostd beyond ingest speed (not a test).

1. Memory: hostd's resident size with no VM, with 100 VMs x 4 disks
   registered, and while one of those disks takes a stream of requests at
   full speed (the in-flight window: the join's pending requests and spans).
2. Report delay: from a request's completion (its span's end, CLOCK_MONOTONIC)
   to the moment `blkin report` first counts it, over real LTTng live.

Markdown on stdout. Runs as root after scripts/setup.sh:
    bench/hostd-scale.py [--samples N]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "lib"))
os.environ.setdefault("BLKIN_SOURCE_ROOT", os.path.join(HERE, ".."))
os.environ.setdefault("BLKIN_BUILD_ROOT", os.path.join(HERE, "..", "build"))

from qemutools import PRELOAD, blkin_json  # noqa: E402
from stack import HostStack  # noqa: E402


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def disk_state(st, vm, disk):
    for d in st.report(vm, disk, window="1m")["disks"]:
        return d
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=20)
    a = ap.parse_args()
    wd = tempfile.mkdtemp(prefix="blkin-scale-")
    env = dict(os.environ, LD_PRELOAD=PRELOAD)
    out = []
    with HostStack(wd, hold_ms=800) as st:
        time.sleep(1)
        base = rss_kib(st.hostd.pid)
        for v in range(100):
            st.register(f"vm{v}", None, [f"vd{c}=s{v}{c}=vm{v}/vd{c}" for c in "abcd"])
        time.sleep(1)
        registered = rss_kib(st.hostd.pid)

        # One disk at full speed for 10 s (null-co: QEMU's fastest path).
        bench = subprocess.Popen(["timeout", "60", "qemu-img", "bench", "-c", "2000000000", "-d", "16",
                                  blkin_json({"driver": "null-co", "size": 1 << 30}, id="vm0/vda")],
                                 env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        peak = registered
        t_end = time.time() + 10
        while time.time() < t_end:
            peak = max(peak, rss_kib(st.hostd.pid))
            time.sleep(0.2)
        bench.terminate()
        bench.wait()
        loaded = disk_state(st, "vm0", "vda")
        rate = sum(o["iops"] for o in loaded["ops"]) if loaded else 0
        time.sleep(2)
        after = rss_kib(st.hostd.pid)

        # Report delay: one write at a time, watched through `blkin report`,
        # once hostd has caught up with the stream above.
        st.wait_until(lambda: st.report("vm0", "vda", window="1s")["disks"][0]["ops"] == [],
                      timeout=120)
        delays = []
        img = os.path.join(wd, "d.raw")
        subprocess.run(["qemu-img", "create", "-q", "-f", "raw", img, "16M"], check=True)
        cmds = []
        for i in range(a.samples):
            cmds += ["-c", f"write {i * 4096} 4k", "-c", "sleep 1500"]
        io = subprocess.Popen(["timeout", "300", "qemu-io", *cmds,
                               blkin_json({"driver": "raw", "file": {"driver": "file", "filename": img}},
                                          id="vm1/vda")],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        seen = 0
        io_done = float("inf")
        while io.poll() is None or seen < a.samples:
            if io.poll() is not None and io_done == float("inf"):
                io_done = time.time()
            d = disk_state(st, "vm1", "vda")
            n = sum(o["count"] for o in d["ops"] if o["op"] == "write") if d else 0
            if n > seen:
                delays.append((time.monotonic_ns() - d["latest_ns"]) / 1e9)
                seen = n
            if io.poll() is not None and time.time() > io_done + 10:
                break
            time.sleep(0.02)

    out.append("| what | value |")
    out.append("|---|---|")
    out.append(f"| hostd RSS, no VM | {base / 1024:.1f} MiB |")
    out.append(f"| with 100 VMs x 4 disks registered | {registered / 1024:.1f} MiB "
               f"({(registered - base) / 400:.1f} KiB per idle disk) |")
    out.append(f"| peak while one disk took {rate:,.0f} requests/s (1 min average) | {peak / 1024:.1f} MiB |")
    out.append(f"| 2 s after that stream stopped | {after / 1024:.1f} MiB |")
    if delays:
        out.append(f"| completion -> `blkin report`, {len(delays)} requests | median {statistics.median(delays):.2f} s, "
                   f"max {max(delays):.2f} s |")
    print("\n".join(out))


if __name__ == "__main__":
    main()
