#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""What the filter records: one event per request with the right fields,
sampling, parent/child spans across stacked nodes, hung requests, the disk
map for late viewers."""
import json
import os
import subprocess
import tempfile
import time

from lttng import Session
from qemutools import PRELOAD, blkin_json, create, file_node, ld_preload, qemu_io, run
from tap import Tap

KiB = 1024
MiB = 1024 * KiB


def null_disk(size=256 * MiB, latency_ns=0):
    # With a latency, null-co yields, so requests overlap at depth > 1.
    return {"driver": "null-co", "size": size, "latency-ns": latency_ns}


def bench(image, count, depth=1, size=4096, write=False):
    argv = ["qemu-img", "bench", "-c", str(count), "-d", str(depth), "-s", str(size)]
    if write:
        argv.append("-w")
    return run(argv + [image], timeout=120)


def test_exact_events(t):
    n = 1000
    with Session() as s:
        r = bench(blkin_json(null_disk(), id="ev-exact"), n)
    t.ok(r.returncode == 0, "qemu-img bench runs through the filter", detail=r.stderr)
    ev = s.for_disk("ev-exact")
    reads = [e for e in ev if e["op"] == 1]
    t.eq(len(reads), n, "sample=1: N reads give exactly N request events")
    t.eq(sorted(e["offset"] for e in reads), [i * 4096 for i in range(n)],
         "each event carries its request's offset")
    t.ok(all(e["bytes"] == 4096 and e["ret"] == 0 and e["flags"] == 0 for e in reads),
         "bytes, return code and flags are the request's")
    t.ok(all(0 < e["start_ns"] <= e["end_ns"] for e in reads), "start <= end, both set")
    t.eq(len({e["trace_id"] for e in reads}), n, "every request has its own trace id")
    t.eq(len({e["span_id"] for e in reads} | {e["trace_id"] for e in reads}), 2 * n,
         "span ids are distinct from each other and from trace ids")
    t.ok(all(e["parent_span_id"] == 0 and e["why"] == 1 for e in reads),
         "top-level spans have no parent and were recorded because sampled")
    maps = [e for e in s.events(name="blkin_qemu:disk") if e["id"] == "ev-exact"]
    t.ok(maps and maps[0]["state"] == 0 and maps[0]["child"] and maps[0]["node"],
         "a disk event maps the index to the id and node names at open", detail=maps)
    t.ok(any(e["state"] == 2 for e in maps), "a disk event marks the close")
    s.cleanup()


def test_inflight(t):
    with Session() as s:
        bench(blkin_json(null_disk(latency_ns=20000), id="ev-depth"), 2000, depth=16)
    reads = [e for e in s.for_disk("ev-depth") if e["op"] == 1]
    t.eq(len(reads), 2000, "depth 16: every request recorded")
    top = max(e["inflight"] for e in reads)
    t.ok(1 <= top <= 15, "in-flight count at entry reflects the queue depth",
         detail=f"max inflight {top}")
    s.cleanup()


def test_sampling(t):
    n = 3000
    with Session() as s:
        bench(blkin_json(null_disk(), id="ev-s10", sample=10), n)
        bench(blkin_json(null_disk(), id="ev-s0", sample=0), 500)
    got = len([e for e in s.for_disk("ev-s10") if e["op"] == 1])
    # Binomial(3000, 0.1): mean 300, sd 16.4; +-5 sd.
    t.ok(218 <= got <= 382, "sample=10 records about one request in ten", detail=f"{got} of {n}")
    t.eq(len(s.for_disk("ev-s0")), 0, "sample=0 records no request")
    t.ok(any(e["id"] == "ev-s0" for e in s.events(name="blkin_qemu:disk")),
         "sample=0 still announces the disk")
    s.cleanup()


def test_stacked(t):
    with tempfile.TemporaryDirectory() as d:
        img = os.path.join(d, "s.qcow2")
        create(img, 1 * MiB, "qcow2", "-o", "cluster_size=4096")
        # Allocate clusters 3,2,1,0 in that order: guest-contiguous data is
        # host-discontiguous, so one 16 KiB read becomes four lower reads.
        plain = "json:" + json.dumps(file_node(img, "qcow2"))
        r = qemu_io(plain, *[f"write -P {0x10 + c} {c * 4096} 4k" for c in (3, 2, 1, 0)], preload=None)
        t.ok(r.returncode == 0, "qcow2 prepared", detail=r.stderr)
        m = subprocess.run(["qemu-img", "map", "--output=json", img], capture_output=True, text=True,
                           timeout=60, check=True)
        data_offsets = sorted(x["offset"] for x in json.loads(m.stdout) if x.get("data"))
        low = {"driver": "blkin", "id": "ev-low", "file": file_node(img, None)}
        top = blkin_json({"driver": "qcow2", "file": low}, id="ev-top")
        with Session() as s:
            r = qemu_io(top, "read 0 16k", "write -P 0x77 64k 64k")
        t.ok(r.returncode == 0, "stacked I/O succeeds", detail=r.stderr)
    tops = s.for_disk("ev-top")
    lows = s.for_disk("ev-low")
    rd = [e for e in tops if e["op"] == 1 and e["offset"] == 0 and e["bytes"] == 16384]
    t.eq(len(rd), 1, "the upper node records the 16 KiB read once")
    if rd:
        kids = [e for e in lows if e["parent_span_id"] == rd[0]["span_id"]]
        data = sorted(e["offset"] for e in kids if e["op"] == 1 and e["offset"] in data_offsets)
        t.eq(data, data_offsets, "the split read shows as one parent with four lower data reads as children")
        t.ok(all(e["trace_id"] == rd[0]["trace_id"] for e in kids), "children carry the parent's trace id")
        t.ok(all(rd[0]["start_ns"] <= e["start_ns"] <= e["end_ns"] <= rd[0]["end_ns"] for e in kids),
             "children lie inside their parent's time")
    wr = [e for e in tops if e["op"] == 2]
    t.ok(wr and any(e["parent_span_id"] == wr[0]["span_id"] for e in lows),
         "the upper write has lower children")
    s.cleanup()


def test_hung(t):
    with tempfile.TemporaryDirectory() as d:
        img = os.path.join(d, "h.raw")
        create(img, 1 * MiB)
        # blkdebug's write_aio breakpoint is triggered by the raw driver above it.
        dbg = {"driver": "raw", "file": {"driver": "blkdebug", "image": file_node(img, None)}}
        image = blkin_json(dbg, id="ev-hung", **{"hung_ms": 500, "sample": 0, "slow_ms": 1000})
        with Session() as s:
            r = qemu_io(image, "write 0 4k", "break write_aio A", "aio_write -P 0x1 8k 4k",
                        "wait_break A", "sleep 2300", "resume A", "aio_flush", "write 12k 4k")
        t.ok(r.returncode == 0 and "failed" not in r.stdout, "the held request completes after resume",
             detail=r.stdout + r.stderr)
    hung = s.for_disk("ev-hung", name="blkin_qemu:hung")
    t.ok(len(hung) >= 3, "a request held 2.3 s is reported repeatedly while it hangs (hung-ms=500)",
         detail=hung)
    t.ok(all(e["offset"] == 8192 and e["op"] == 2 for e in hung), "the hung reports name the held request")
    ages = [e["age_ns"] for e in hung]
    t.ok(ages == sorted(ages) and ages and ages[0] >= 500e6, "hung reports come at or after hung-ms, ages growing",
         detail=ages)
    reqs = s.for_disk("ev-hung")
    t.eq([(e["offset"], e["why"]) for e in reqs], [(8192, 2)],
         "sample=0 with slow-ms: only the slow request is recorded, marked slow")
    if reqs and hung:
        t.eq(reqs[0]["span_id"], hung[0]["span_id"], "the completion event has the hung request's span id")
        t.ok(reqs[0]["end_ns"] - reqs[0]["start_ns"] >= 2.3e9, "its latency includes the hang")
    s.cleanup()


def other_sessions_recording():
    """Whether another session enables blkin events right now (other tests,
    a running hostd): then a new session cannot flip their enabled state."""
    out = subprocess.run(["lttng", "list"], capture_output=True, text=True, timeout=30).stdout
    return "[active]" in out


def late_viewer(interval, duration_ms):
    with tempfile.TemporaryDirectory() as d:
        img = os.path.join(d, "l.raw")
        create(img, 1 * MiB)
        env = dict(os.environ, LD_PRELOAD=ld_preload(PRELOAD))
        p = subprocess.Popen(["timeout", "60", "qemu-io", "-c", "write 0 4k", "-c", f"sleep {duration_ms}",
                              "-c", "write 4k 4k", blkin_json(file_node(img), id=f"ev-late-{interval}",
                                                              map_interval=interval)],
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(1.0)
        with Session() as s:       # starts after the disk was opened
            p.communicate(timeout=60)
    return s


def test_late_viewer(t):
    # Periodic re-emission: works whatever other sessions do.
    s = late_viewer(1, 3000)
    maps = [e for e in s.events(name="blkin_qemu:disk") if e["id"] == "ev-late-1"]
    t.ok(any(e["state"] == 1 for e in maps), "a session started late receives the disk map (periodic refresh)",
         detail=maps)
    reqs = s.for_disk("ev-late-1")
    t.eq([e["offset"] for e in reqs if e["op"] == 2], [4096], "and can attribute the later request to the disk")
    s.cleanup()
    # On demand: a session that starts recording blkin_qemu:disk makes the
    # filter re-emit at once -- observable only when no other session
    # already had the event enabled.
    if other_sessions_recording():
        t.skip("a session starting to record the map gets it at once", "another session records blkin events")
        return
    s = late_viewer(0, 2500)
    maps = [e for e in s.events(name="blkin_qemu:disk") if e["id"] == "ev-late-0"]
    t.ok(any(e["state"] == 1 for e in maps), "a session starting to record the map gets it at once (on demand)",
         detail=maps)
    s.cleanup()


def main():
    t = Tap()
    for fn in (test_exact_events, test_inflight, test_sampling, test_stacked, test_hung, test_late_viewer):
        t.run(fn)
    t.done()


if __name__ == "__main__":
    main()
