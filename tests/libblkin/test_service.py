#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""A traced client and a traced storage service join one trace.

blkin-test-service serves a backing file over a UNIX socket; blkin-test-client
sends requests carrying its span's packed context. Under a real LTTng session
(zipkin:*), each client request must yield a client span (cs, cr) and one
service span in the same trace whose parent is the client span (sr, its
key/values, ss), with cs < sr < ss < cr. Also: a client continuing a trace
given on its command line, two clients at once, and unsampled requests that
record nothing on either side.
"""
import os
import signal
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lttng  # noqa: E402
import zipkin_events  # noqa: E402
from tap import Tap  # noqa: E402

BUILD = os.environ.get("BLKIN_BUILD_ROOT", "build")
BIN = os.path.join(BUILD, "tests", "libblkin")
SERVICE = os.path.join(BIN, "blkin-test-service")
CLIENT = os.path.join(BIN, "blkin-test-client")


def parse_client(out):
    reqs = []
    for line in out.splitlines():
        r = dict(kv.split("=", 1) for kv in line.split())
        for k in ("offset", "length", "status", "trace_id", "span_id", "parent_span_id"):
            r[k] = int(r[k], 0)
        reqs.append(r)
    return reqs


def start_client(sock, *args):
    return subprocess.Popen([CLIENT, "--socket", sock, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finish(proc):
    out, err = proc.communicate(timeout=60)
    return proc.returncode, parse_client(out), err


def check_request(t, req, client_events, service_events, label):
    """One client request: its own span and the service's child span."""
    mine = [e for e in client_events if e["u_span_id"] == req["span_id"]]
    t.eq([(e["name"], e.get("event")) for e in mine],
         [("zipkin:timestamp", "cs"), ("zipkin:timestamp", "cr")],
         f"{label}: client span records cs then cr")
    t.ok(all(e["u_trace_id"] == req["trace_id"] and
             e["u_parent_span_id"] == req["parent_span_id"] and
             e["service_name"] == "blkin-test-client" and e["trace_name"] == req["op"] and
             e["ip"] == "127.0.0.1" and e["port_no"] == 0 for e in mine),
         f"{label}: client events carry the printed ids and the client's endpoint",
         detail=mine)

    child = [e for e in service_events if e["u_parent_span_id"] == req["span_id"]]
    spans = {e["u_span_id"] for e in child}
    t.eq(len(spans), 1, f"{label}: exactly one service span is a child of the client span")
    t.ok(all(e["u_trace_id"] == req["trace_id"] for e in child),
         f"{label}: the service span is in the client's trace", detail=child)
    t.ok(spans and req["span_id"] not in spans and 0 not in spans,
         f"{label}: the service span has its own span id")
    t.ok(all(e["service_name"] == "blkin-test-service" and e["trace_name"] == req["op"] and
             e["ip"] == "127.0.0.1" and e["port_no"] == 0 for e in child),
         f"{label}: service events carry the service's endpoint and the op")
    kv = {e["key"]: e["val"] for e in child if "key" in e}
    t.eq(kv, {"op": req["op"], "offset": req["offset"], "length": req["length"],
              "status": req["status"]}, f"{label}: service key/values")
    ts = {}
    for e in mine + child:
        if e["name"] == "zipkin:timestamp":
            ts[e["event"]] = e["ts"]
    t.ok(sorted(ts) == ["cr", "cs", "sr", "ss"] and ts["cs"] < ts["sr"] < ts["ss"] < ts["cr"],
         f"{label}: cs < sr < ss < cr", detail=ts)


def main():
    t = Tap()
    work = tempfile.mkdtemp(prefix="blkin-libblkin-")
    sock = os.path.join(work, "service.sock")
    backing = os.path.join(work, "backing.img")
    with open(backing, "wb") as f:
        f.truncate(1 << 20)

    given = (0x0123456789abcdef, 0xfedcba9876543210)
    with lttng.Session(events=("zipkin:*",), contexts=("vpid",)) as s:
        svc = subprocess.Popen([SERVICE, "--socket", sock, "--file", backing],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            ready = svc.stdout.readline().split()
            t.eq(ready, ["ready", str(svc.pid)], "the service listens and says so")

            # Two clients at once (a thread each in the service), then a
            # client continuing a given trace, then unsampled requests.
            c1 = start_client(sock, "--op", "rw", "--count", "4", "--size", "4096")
            c2 = start_client(sock, "--op", "rw", "--count", "4", "--size", "8192",
                              "--offset", str(256 << 10))
            rc1, reqs1, err1 = finish(c1)
            rc2, reqs2, err2 = finish(c2)
            t.ok(rc1 == rc2 == 0, "two concurrent clients wrote and read back their data",
                 detail=err1 + err2)
            c3 = start_client(sock, "--op", "read", "--count", "2", "--offset", "4096",
                              "--parent", "%x:%x" % given)
            rc3, reqs3, err3 = finish(c3)
            t.eq(rc3, 0, "a client continuing a given trace ran") or t.diag(err3)
            c4 = start_client(sock, "--op", "rw", "--count", "2", "--unsampled")
            rc4, reqs4, err4 = finish(c4)
            t.eq(rc4, 0, "an unsampled client ran") or t.diag(err4)
        finally:
            svc.send_signal(signal.SIGTERM)
            try:
                svc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                svc.kill()
                svc.wait()
        t.eq(svc.returncode, 0, "SIGTERM ends the service cleanly")
        t.ok(not os.path.exists(sock), "and it removed its socket")

    try:
        events = zipkin_events.read(s.dir)
        service_events = [e for e in events if e["vpid"] == svc.pid]
        by_client = {p.pid: [e for e in events if e["vpid"] == p.pid] for p in (c1, c2, c3, c4)}

        t.eq(len(reqs1) + len(reqs2), 16, "the clients printed one line per request")
        t.eq([r["op"] for r in reqs1], ["write", "read"] * 4, "--op rw writes then reads back")
        t.ok(all(r["status"] == r["length"] for r in reqs1 + reqs2 + reqs3 + reqs4),
             "every request completed whole")
        for i, r in enumerate(reqs1):
            check_request(t, r, by_client[c1.pid], service_events, f"client 1 #{i} {r['op']}")
        for i, r in enumerate(reqs2):
            check_request(t, r, by_client[c2.pid], service_events, f"client 2 #{i} {r['op']}")
        t.ok(all(r["parent_span_id"] == 0 and r["trace_id"] != 0 for r in reqs1 + reqs2),
             "without --parent every request is a new root trace")
        t.eq(len({r["trace_id"] for r in reqs1 + reqs2}), 16, "and each its own trace")

        t.eq(len(reqs3), 2, "the continuing client made two requests")
        t.ok(all((r["trace_id"], r["parent_span_id"]) == given for r in reqs3),
             "its spans are children of the span given on its command line", detail=reqs3)
        for i, r in enumerate(reqs3):
            check_request(t, r, by_client[c3.pid], service_events, f"client 3 #{i}")

        t.ok(len(reqs4) == 4 and all(r["trace_id"] == r["span_id"] == 0 for r in reqs4),
             "unsampled requests have no ids", detail=reqs4)
        t.eq(by_client[c4.pid], [], "an unsampled client records nothing")
        served = {e["u_span_id"] for e in service_events}
        t.eq(len(served), 16 + 2, "the service recorded spans for sampled requests only")
    finally:
        s.cleanup()
    t.done()


if __name__ == "__main__":
    main()
