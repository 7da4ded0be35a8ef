#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""libblkin's zipkin:* events, as a real LTTng session records them.

Runs libblkin-record (a fixed set of annotations) under a session enabling
zipkin:* and checks every field of every event, the schema in the trace's
metadata (ceph/blkin's field names, types and order), that unsampled spans
record nothing, and that over-long strings are recorded truncated.
"""
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lttng  # noqa: E402
import zipkin_events  # noqa: E402
from tap import Tap  # noqa: E402

BUILD = os.environ.get("BLKIN_BUILD_ROOT", "build")
RECORD = os.path.join(BUILD, "tests", "libblkin", "libblkin-record")

# ceph/blkin blkin-lib/zipkin_trace.h: ctf_string / ctf_integer(int) /
# ctf_integer(long) on LP64 / ctf_integer(int64_t), in this order.
SPAN = [("trace_name", "string"), ("service_name", "string"), ("port_no", "s32"),
        ("ip", "string"), ("trace_id", "s64"), ("span_id", "s64"),
        ("parent_span_id", "s64")]
SCHEMA = {
    "zipkin:timestamp": SPAN + [("event", "string")],
    "zipkin:keyval_string": SPAN + [("key", "string"), ("val", "string")],
    "zipkin:keyval_integer": SPAN + [("key", "string"), ("val", "s64")],
}
FIELDS = [f for f, _ in SPAN]


def s64(u):
    return u - (1 << 64) if u >= 1 << 63 else u


def main():
    t = Tap()
    with lttng.Session(events=("zipkin:*",), contexts=("vpid",)) as s:
        before = time.monotonic_ns()
        proc = subprocess.Popen([RECORD], stdout=subprocess.PIPE, text=True)
        out, _ = proc.communicate(timeout=60)
        after = time.monotonic_ns()
    try:
        t.eq(proc.returncode, 0, "libblkin-record ran; every libblkin call succeeded")
        ids = {}
        for line in out.splitlines():
            what, trace, span, parent = line.split()
            ids[what] = (int(trace), int(span), int(parent))
        t.eq(sorted(ids), ["local", "remote", "root"], "it printed its spans' ids")
        events = [e for e in zipkin_events.read(s.dir) if e.get("vpid") == proc.pid]

        root, remote, local = ids["root"], ids["remote"], ids["local"]
        t.ok(root[0] != 0 and root[1] != 0 and root[2] == 0, "root: fresh trace and span, no parent")
        t.eq(remote[0], 0x0102030405060708, "remote child keeps the packed trace id")
        t.eq(remote[2], 0xfedcba9876543210, "remote child's parent is the packed span id")
        t.ok(remote[1] not in (0, 0xfedcba9876543210, 0x1111), "remote child has a fresh span id")
        t.eq(local[0], root[0], "local child is in the root's trace")
        t.eq(local[2], root[1], "local child's parent is the root span")

        a = ("root-op", "svc-a", 8080, "192.0.2.1")
        b = ("remote-op", "svc-b", 6800, "2001:db8::1")
        la = ("local-op", "svc-a", 8080, "192.0.2.1")

        def span(ep, ids_):
            return ep + tuple(s64(i) for i in ids_)

        want = [
            ("zipkin:timestamp", span(a, root), {"event": "cs"}),
            ("zipkin:keyval_string", span(a, root), {"key": "path", "val": "/vol/1"}),
            ("zipkin:keyval_integer", span(a, root), {"key": "bytes", "val": -4096}),
            ("zipkin:keyval_integer", span(a, root), {"key": "min", "val": -(1 << 63)}),
            ("zipkin:timestamp", span(b, remote), {"event": "sr"}),
            ("zipkin:keyval_string", span(b, remote), {"key": "long", "val": "x" * 1024}),
            ("zipkin:timestamp", span(b, remote), {"event": "ss"}),
            ("zipkin:timestamp", span(la, local), {"event": "local"}),
        ]
        if not t.eq(len(events), len(want),
                    "one event per sampled annotation, none for unsampled spans"):
            t.diag("\n".join(str(e) for e in events))
        for i, (w, e) in enumerate(zip(want, events)):
            name, sp, rest = w
            got = {k: e.get(k) for k in ["name"] + FIELDS + list(rest)}
            exp = dict(zip(["name"] + FIELDS, (name,) + sp), **rest)
            t.eq(got, exp, f"event {i}: {name} {rest.get('event', rest.get('key'))}: every field")
        t.ok(all("hidden" not in str(e) for e in events), "nothing of the unsampled spans")
        t.eq([e["u_trace_id"] for e in events[:4]], [root[0]] * 4,
             "ids read back as unsigned equal the API's")
        ts = [e["ts"] for e in events]
        t.ok(ts == sorted(ts), "annotation timestamps follow the order they were made",
             detail=ts)
        t.ok(ts and before <= ts[0] and ts[-1] <= after,
             "timestamps are CLOCK_MONOTONIC ns within the program's run",
             detail=(before, ts, after))

        sch = zipkin_events.schema(s.dir)
        for name, fields in SCHEMA.items():
            t.eq(sch.get(name), fields, f"{name}: ceph/blkin's field names, types and order")
    finally:
        s.cleanup()
    t.done()


if __name__ == "__main__":
    main()
