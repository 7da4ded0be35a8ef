#!/usr/bin/env python3
"""Summarises a recorded blkin trace: per disk and op, request counts and
latency percentiles, and for stacked filters how much of the upper span the
lower spans account for (the rest is QEMU's format layer between them).

    scripts/trace-summary.py TRACE_DIR
"""
import collections
import os
import statistics
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "lib"))
from lttng import read_trace  # noqa: E402

OPS = {1: "read", 2: "write", 3: "write-zeroes", 4: "discard", 5: "flush"}


def pct(sorted_us, p):
    return sorted_us[min(len(sorted_us) - 1, int(p / 100 * len(sorted_us)))]


def main():
    events = read_trace(sys.argv[1])
    names = {}
    for e in events:
        if e["name"] == "blkin_qemu:disk":
            names[(e["vpid"], e["disk"])] = e["id"]
    reqs = [e for e in events if e["name"] == "blkin_qemu:request"]
    by_span = {e["span_id"]: e for e in reqs}
    lat = collections.defaultdict(list)
    below = collections.defaultdict(int)
    for e in reqs:
        if e["parent_span_id"] in by_span:
            below[e["parent_span_id"]] += e["end_ns"] - e["start_ns"]
    own = collections.defaultdict(list)
    for e in reqs:
        key = (names.get((e["vpid"], e["disk"]), "?"), OPS.get(e["op"], str(e["op"])))
        lat[key].append((e["end_ns"] - e["start_ns"]) / 1000)
        if e["span_id"] in below:
            own[key].append(max(0, e["end_ns"] - e["start_ns"] - below[e["span_id"]]) / 1000)
    print(f"{'disk':<16} {'op':<13} {'count':>7} {'p50 us':>9} {'p90 us':>9} {'p99 us':>9} {'max us':>9}"
          f" {'layer p50 us':>13}")
    for key in sorted(lat):
        v = sorted(lat[key])
        layer = f"{statistics.median(own[key]):13.1f}" if own.get(key) else f"{'-':>13}"
        print(f"{key[0]:<16} {key[1]:<13} {len(v):>7} {pct(v, 50):9.1f} {pct(v, 90):9.1f} {pct(v, 99):9.1f}"
              f" {v[-1]:9.1f} {layer}")
    errors = sum(1 for e in reqs if e["ret"])
    print(f"\n{len(reqs)} requests recorded, {errors} failed; 'layer' is the time a request spent in QEMU "
          "between this filter and the blkin filter below it (the qcow2 format layer here).")


if __name__ == "__main__":
    main()
