#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Span export: a real guest's joined requests reach a local Zipkin v2 and an
OTLP/HTTP receiver as JSON that follows the published formats (field names,
types, id encodings, parent links); with the receivers down hostd keeps
running, its export queue stays bounded and drops are counted."""
import http.server
import json
import os
import re
import shutil
import threading
import time

import vm
from qemutools import blkin_json, create, run
from stack import BUILD, HostStack, free_ports
from tap import Tap

HEX16 = re.compile(r"^[0-9a-f]{16}$")
HEX16_32 = re.compile(r"^([0-9a-f]{16}|[0-9a-f]{32})$")
HEX32 = re.compile(r"^[0-9a-f]{32}$")
KINDS = {"CLIENT", "SERVER", "PRODUCER", "CONSUMER"}

GUEST = """
blkin-guest-agent 2>/tmp/agent.log &
AGENT=$!
sleep 1
blkin-workload --seed 5 -n 40 -q 1,8 -o "$BLKIN_RESULTS" "$(blkin_disk ex-a)"
rc=$?
sleep 1
kill -TERM $AGENT
wait $AGENT
exit $rc
"""


class Receiver:
    """A local HTTP endpoint that keeps every POSTed JSON body."""

    def __init__(self, port, path):
        self.bodies = []
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length", 0))
                data = self.rfile.read(n)
                ok = self.path == path
                if ok:
                    outer.bodies.append(json.loads(data))
                self.send_response(202 if ok else 404)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), H)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def check_zipkin(t, bodies):
    spans = [s for b in bodies for s in b]
    errors = []
    now_us = time.time() * 1e6
    for s in spans:
        if not HEX16_32.match(s.get("traceId", "")) or not HEX16.match(s.get("id", "")):
            errors.append(("ids", s))
        if "parentId" in s and not HEX16.match(s["parentId"]):
            errors.append(("parentId", s))
        if s.get("kind") not in KINDS or not isinstance(s.get("name"), str):
            errors.append(("kind/name", s))
        if not isinstance(s.get("timestamp"), int) or abs(s["timestamp"] - now_us) > 3600e6:
            errors.append(("timestamp", s))
        if "duration" in s and (not isinstance(s["duration"], int) or s["duration"] < 1):
            errors.append(("duration", s))
        if not isinstance(s.get("localEndpoint", {}).get("serviceName"), str):
            errors.append(("endpoint", s))
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in s.get("tags", {}).items()):
            errors.append(("tags", s))
    t.ok(spans and not errors, f"{len(spans)} Zipkin spans follow the v2 format", detail=errors[:3])
    guest = {(s["traceId"], s["id"]) for s in spans if s["localEndpoint"]["serviceName"] == "guest"}
    qemu = [s for s in spans if s["localEndpoint"]["serviceName"] == "qemu"]
    # QEMU spans no guest request was joined to (the kernel's boot-time
    # reads, before the agent runs) are roots of their own.
    with_parent = [s for s in qemu if "parentId" in s]
    linked = [s for s in with_parent if (s["traceId"], s["parentId"]) in guest]
    t.ok(len(with_parent) >= 40 and len(linked) == len(with_parent),
         "every joined QEMU span's parent is its guest span, in the same trace",
         detail=f"{len(linked)} of {len(with_parent)} ({len(qemu)} QEMU spans)")
    t.ok(all(s["tags"].get("blkin.domain") == "ex" and s["tags"].get("blkin.disk") == "vda" for s in spans),
         "spans name the domain and disk")


def check_otlp(t, bodies):
    errors, spans = [], []
    for b in bodies:
        for rs in b.get("resourceSpans", []):
            attrs = {a["key"]: a["value"].get("stringValue") for a in rs["resource"]["attributes"]}
            if not {"service.name", "host.name", "blkin.domain", "blkin.disk"} <= set(attrs):
                errors.append(("resource", attrs))
            for ss in rs["scopeSpans"]:
                for s in ss["spans"]:
                    spans.append(s)
                    if not HEX32.match(s["traceId"]) or set(s["traceId"]) == {"0"}:
                        errors.append(("traceId", s))
                    if not HEX16.match(s["spanId"]) or ("parentSpanId" in s and not HEX16.match(s["parentSpanId"])):
                        errors.append(("spanId", s))
                    if int(s["endTimeUnixNano"]) < int(s["startTimeUnixNano"]) or s["kind"] not in range(6):
                        errors.append(("times/kind", s))
                    if not all({"key", "value"} <= set(a) for a in s["attributes"]):
                        errors.append(("attributes", s))
    t.ok(spans and not errors, f"{len(spans)} OTLP spans follow the OTLP/HTTP JSON format", detail=errors[:3])
    ids = {(s["traceId"], s["spanId"]) for s in spans}
    kids = [s for s in spans if "parentSpanId" in s]
    t.ok(kids and all((s["traceId"], s["parentSpanId"]) in ids for s in kids),
         "OTLP parent span ids point at exported spans of the same trace")


def main():
    t = Tap()
    wd = os.path.join(BUILD, "tests", "hostd-e2e", "work", "export")
    shutil.rmtree(wd, ignore_errors=True)
    os.makedirs(wd)
    zport, oport = free_ports(2)
    zipkin = Receiver(zport, "/api/v2/spans")
    otlp = Receiver(oport, "/v1/traces")
    args = ["--export-zipkin", f"http://127.0.0.1:{zport}/api/v2/spans",
            "--export-otlp", f"http://127.0.0.1:{oport}/v1/traces",
            "--export-sample", "1", "--export-queue", "50"]
    disks = [vm.Disk(os.path.join(wd, "a.raw"), "ex-a", size="64M", blkin={"id": "ex/vda"})]
    with HostStack(wd, hold_ms=800, hostd_args=args) as st:
        with vm.GuestVM(wd, disks, GUEST, timeout=180, cpus=2,
                        extra_files={"/bin/blkin-guest-agent": vm.agent_binary()}) as g:
            g.start()
            st.register("ex", g.agent_socket, ["vda=ex-a=ex/vda"])
            res = g.wait()
            t.ok(res.ok, "the guest's workload ran", detail=res.console[-2000:])
        st.wait_until(lambda: zipkin.bodies and otlp.bodies and all(
            e["pending"] == 0 for e in json.loads(st.cli("status").stdout)["export"]), timeout=30)
        check_zipkin(t, zipkin.bodies)
        check_otlp(t, otlp.bodies)

        # Receivers gone: hostd goes on, the queue stays bounded, drops count.
        zipkin.stop()
        otlp.stop()
        st.register("nb", None, ["vda=nb-a=nb/vda"])
        img = os.path.join(wd, "n.raw")
        create(img, 16 << 20)
        run(["qemu-img", "bench", "-c", "3000", "-d", "4",
             blkin_json({"driver": "raw", "file": {"driver": "file", "filename": img}}, id="nb/vda")],
            timeout=120)
        time.sleep(4)
        status = json.loads(st.cli("status").stdout)
        ex = status["export"]
        t.ok(status["ok"] and st.hostd.poll() is None, "hostd keeps running with the receivers down")
        t.ok(all(e["pending"] <= 50 for e in ex), "the export queue stays within its bound", detail=ex)
        t.ok(all(e["dropped"] > 0 and e["failures"] > 0 for e in ex), "drops and failed posts are counted",
             detail=ex)
        rep = st.report("nb", window="1m")
        t.ok(sum(o["count"] for o in rep["disks"][0]["ops"]) >= 3000,
             "reports are unaffected by the failing export")
    t.done()


if __name__ == "__main__":
    main()
