#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Storage services instrumented with libblkin join the trace by ids.

1. A client and a service built on libblkin (tests/libblkin) under a live
   session read by blkin-hostd: `blkin trace` shows each client span with
   the service's span under it (same trace id, parent = the client's span),
   timed by the Zipkin core annotations, and `blkin status` counts both
   services.
2. The same service below a filter span: a write through the blkin filter
   (qemu-io) is held inside QEMU (blkdebug breakpoint) while the client,
   given that request's trace context -- from hostd's list of hung
   requests, as a peer receiving a propagated context would have it --
   sends its requests. hostd makes the client's span a lower span of
   the filter's: the disk's report puts exactly its time under "backend".
"""
import json
import os
import shutil
import socket
import subprocess
import time

import qemutools
import vm
from stack import BUILD, HostStack
from tap import Tap

LIB = os.path.join(BUILD, "tests", "libblkin")
SERVICE = os.path.join(LIB, "blkin-test-service")
CLIENT = os.path.join(LIB, "blkin-test-client")


def workdir():
    d = os.path.join(BUILD, "tests", "hostd-e2e", "work", "backend-spans")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    return d


def client(sock, *args):
    r = subprocess.run([CLIENT, "--socket", sock, *args], capture_output=True, text=True,
                       timeout=60)
    lines = [dict(kv.split("=", 1) for kv in line.split()) for line in r.stdout.splitlines()
             if line.startswith("op=")]
    return r, lines


def start_service(wd):
    img = os.path.join(wd, "service.img")
    with open(img, "wb") as f:
        f.truncate(16 << 20)
    sock = os.path.join(wd, "service.sock")
    p = subprocess.Popen([SERVICE, "--socket", sock, "--file", img], stdout=subprocess.PIPE,
                         stderr=open(os.path.join(wd, "service.log"), "w"), text=True)
    if not p.stdout.readline().startswith("ready"):
        raise RuntimeError("blkin-test-service did not start")
    return p, sock


def status(st):
    return json.loads(st.cli("status", "--json").stdout)


def hexid(v):
    return "%016x" % (int(v, 16) & (2**64 - 1))


def services_part(t, st, sock):
    # A live viewer sees what is recorded after it attached: wait for hostd.
    t.ok(st.wait_until(lambda: all(i["state"] == "reading"
                                   for i in status(st).get("trace_inputs", [])), timeout=20),
         "hostd reads the live session")
    r, lines = client(sock, "--op", "rw", "--count", "5")
    t.ok(r.returncode == 0 and len(lines) == 10, "the client's 10 requests succeeded",
         detail=r.stdout + r.stderr)
    want_spans = len(lines)

    def seen():
        s = status(st)
        sv = {x["service"]: x for x in s.get("services", [])}
        ok = all(sv.get(n, {}).get("spans", 0) >= want_spans
                 for n in ("blkin-test-client", "blkin-test-service"))
        return s if ok else None
    s = st.wait_until(seen, timeout=20) or status(st)
    sv = {x["service"]: x for x in s.get("services", [])}
    t.eq({n: sv.get(n, {}).get("spans") for n in ("blkin-test-client", "blkin-test-service")},
         {"blkin-test-client": want_spans, "blkin-test-service": want_spans},
         "blkin status counts every span of both services")
    t.ok(all(sv.get(n, {}).get("p50_ns", 0) > 0 for n in sv), "with their latencies", detail=sv)

    bad = []
    for line in lines:
        tr = json.loads(st.cli("trace", hexid(line["trace_id"]), "--json").stdout)
        spans = tr.get("backend_spans", [])
        cl = [z for z in spans if z["service"] == "blkin-test-client"]
        sv_ = [z for z in spans if z["service"] == "blkin-test-service"]
        ok = (len(cl) == 1 and len(sv_) == 1 and cl[0]["span_id"] == hexid(line["span_id"])
              and sv_[0]["parent_span_id"] == cl[0]["span_id"]
              and cl[0]["cs_ns"] < sv_[0]["sr_ns"] < sv_[0]["ss_ns"] < cl[0]["cr_ns"]
              and cl[0]["complete"] and sv_[0]["complete"])
        if not ok:
            bad.append((line, spans))
    t.ok(not bad, "each trace: the service's span under the client's, cs < sr < ss < cr",
         detail=bad[:2])


def filter_part(t, st, sock, wd):
    img = os.path.join(wd, "disk.raw")
    qemutools.create(img, "16M")
    st.register("io", None, ["vda=io-serial=io/vda"])
    spec = {"driver": "blkin", "id": "io/vda", "hung-ms": 200,
            "file": {"driver": "raw",
                     "file": {"driver": "blkdebug",
                              "image": {"driver": "file", "filename": img}}}}
    found = {}
    io = subprocess.Popen(
        ["env", "LD_PRELOAD=" + vm.preload_library(), "timeout", "60", "qemu-io",
         "-c", "break write_aio A", "-c", "aio_write -P 0x5a 64k 4k", "-c", "wait_break A",
         "-c", "sleep 8000", "-c", "resume A", "-c", "aio_flush",
         "json:" + json.dumps(spec)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # hostd lists the held request with its ids once the filter reports it.
    end = time.time() + 7
    while not found and time.time() < end:
        disks = st.report("io", window="1h")["disks"]
        hung = disks[0].get("hung", []) if disks else []
        if hung:
            found.update(trace=hung[0]["trace_id"], span=hung[0]["span_id"])
        time.sleep(0.1)
    t.ok(found, "hostd lists the held request, with its trace context, while it hangs")
    lines = []
    if found:
        r, lines = client(sock, "--op", "write", "--count", "3", "--parent",
                          f"{found['trace']}:{found['span']}")
        t.ok(r.returncode == 0 and len(lines) == 3,
             "the service served 3 requests as children of the held request",
             detail=r.stdout + r.stderr)
    out, err = io.communicate(timeout=90)
    t.ok(io.returncode == 0 and "wrote 4096/4096" in out, "the held write completed, unharmed",
         detail=out + err)
    if not found or not lines:
        return
    trace_hex = hexid(found["trace"])
    t.ok(all(hexid(x["trace_id"]) == trace_hex and hexid(x["parent_span_id"]) ==
             hexid(found["span"]) for x in lines),
         "the client's spans carry the filter span's trace and span ids", detail=lines)

    def joined():
        try:
            tr = json.loads(st.cli("trace", trace_hex, "--json").stdout)
        except RuntimeError:
            return None
        return tr if tr.get("request") else None
    tr = st.wait_until(joined, timeout=20)
    t.ok(tr is not None, "blkin trace finds the filter's request and the services' spans")
    if not tr:
        return
    spans = tr["backend_spans"]
    clients = [z for z in spans if z["service"] == "blkin-test-client"]
    services = [z for z in spans if z["service"] == "blkin-test-service"]
    t.ok(len(clients) == 3 and len(services) == 3 and
         all(z["parent_span_id"] == hexid(found["span"]) for z in clients) and
         {z["parent_span_id"] for z in services} == {z["span_id"] for z in clients},
         "one trace: filter span -> 3 client spans -> 3 service spans", detail=spans)
    req = tr["request"]
    ph = {p["phase"]: p["ns"] for p in req["phases"]}
    # The client's spans do not overlap (one request at a time): the
    # union of their intervals is the sum of their durations.
    want = sum(z["duration_ns"] for z in clients)
    t.ok(abs(ph.get("backend", 0) - want) <= 1000,
         "the disk's report counts exactly the services' time as backend",
         detail=f"backend {ph.get('backend')} ns, client spans {want} ns; {req}")
    t.ok(ph.get("qemu", 0) >= 7_000_000_000,
         "the rest of the held request is QEMU's own (the breakpoint)", detail=ph)


def main():
    t = Tap()
    wd = workdir()
    svc, sock = start_service(wd)
    try:
        with HostStack(wd, events=("blkin_qemu:*", "zipkin:*")) as st:
            t.run(services_part, st, sock)
            t.run(filter_part, st, sock, wd)
    finally:
        svc.terminate()
        svc.wait(timeout=10)
    t.done()


if __name__ == "__main__":
    main()
