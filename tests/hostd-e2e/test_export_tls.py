#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""The exporters as production collectors want them (libcurl,
serve/http-client.h), against local HTTPS receivers with a CA made here:

1. OTLP/HTTP in protobuf, gzip-compressed, bearer token, custom headers (one
   of them secret, from a file), verified with a CA file; Zipkin JSON with
   basic auth: every span arrives, decodes by the OTLP specification's field
   numbers, and no secret is on hostd's command line;
2. the wrong CA: nothing is sent, one log line, failures counted, the queue
   stays bounded with drops counted; a wrong password: the collector's 401
   drops the batches (counted as rejected), one log line;
3. a collector that comes up late: retried with backoff, everything
   delivered, one line when it fails and one when it works again;
4. a URL with a password in it is refused (secrets come from files only)."""
import json
import os
import shutil
import subprocess
import time

from otlp_wire import decode_request
from qemutools import blkin_json, create, run
from receiver import Receiver, TestCA
from stack import BUILD, HOSTD, HostStack, free_ports
from tap import Tap

TOKEN = "t0k3n-for-otlp"
PASSWORD = "pa55-for-zipkin"
API_KEY = "s3cr3t-api-key"


def secret(wd, name, text):
    p = os.path.join(wd, name)
    with open(p, "w") as f:
        f.write(text + "\n")
    os.chmod(p, 0o600)
    return p


def write_config(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


def io(wd, st, n, name):
    img = os.path.join(wd, name + ".raw")
    if not os.path.exists(img):
        create(img, 32 << 20)
    disk = {"driver": "raw", "file": {"driver": "file", "filename": img, "aio": "threads",
                                      "cache": {"direct": True}}}
    return run(["qemu-img", "bench", "-c", str(n), "-d", "4", blkin_json(disk, id="tl/vda")], timeout=300)


def exports(st):
    """The exporters' counters by format."""
    return {e["format"]: e for e in st.status()["export"]}


def otlp_spans(reqs):
    spans = []
    for r in reqs:
        for rs in decode_request(r.body)["resource_spans"]:
            for ss in rs["scope_spans"]:
                for s in ss["spans"]:
                    spans.append((rs["resource"], ss["scope"], s))
    return spans


def restart(st):
    """Restarts hostd (new config); the offset of its log's new part."""
    st.stop_hostd()
    off = os.path.getsize(st.hostd_log) if os.path.exists(st.hostd_log) else 0
    st.start_hostd()
    st.register("tl", None, ["vda=tl-a=tl/vda"])
    return off


def hostd_log(st, off):
    with open(st.hostd_log, errors="replace") as f:
        f.seek(off)
        return f.read()


def main():
    t = Tap()
    wd = os.path.join(BUILD, "tests", "hostd-e2e", "work", "export-tls")
    shutil.rmtree(wd, ignore_errors=True)
    os.makedirs(wd)
    ca, other_ca = TestCA(wd, "ca"), TestCA(wd, "other-ca")
    tok = secret(wd, "otlp.token", TOKEN)
    pw = secret(wd, "zipkin.password", PASSWORD)
    hdrs = secret(wd, "otlp.headers", "X-Api-Key: " + API_KEY)
    p_otlp, p_zipkin, p_late = free_ports(3)
    cfg = os.path.join(wd, "hostd.conf")
    n = 300
    write_config(cfg, "[hostd]\n")
    with HostStack(wd, hold_ms=800, hostd_args=["--config", cfg, "--export-sample", "1",
                                                "--export-slow-ms", "0"]) as st:
        # -- 1. TLS, auth, headers, gzip, protobuf --------------------------
        write_config(cfg, f"""[export otlp]
url = https://127.0.0.1:{p_otlp}/v1/traces
ca-file = {ca.ca}
auth = bearer
token-file = {tok}
headers = X-Scope-OrgID: tenant-a;X-Blkin-Test: 1
headers-file = {hdrs}
gzip = true
encoding = protobuf

[export zipkin]
url = https://127.0.0.1:{p_zipkin}/api/v2/spans
ca-file = {ca.ca}
auth = basic
user = blkin
password-file = {pw}
""")
        with Receiver(p_otlp, tls=ca, auth=("bearer", TOKEN)) as otlp, \
                Receiver(p_zipkin, tls=ca, auth=("basic", "blkin", PASSWORD)) as zipkin:
            restart(st)
            r = io(wd, st, n, "a")
            t.ok(r.returncode == 0, "QEMU I/O through the filter", detail=r.stderr)
            got = st.wait_until(lambda: len(otlp_spans(otlp.snapshot()[0])) >= n
                                and sum(len(json.loads(q.body)) for q in zipkin.snapshot()[0]) >= n,
                                timeout=60)
            reqs, refused = otlp.snapshot()
            spans = otlp_spans(reqs)
            t.ok(got and not refused, "OTLP over TLS with the bearer token: every span arrives",
                 detail=f"{len(spans)} spans, {len(refused)} refused")
            h = reqs[0].headers if reqs else {}
            t.ok(all(q.path == "/v1/traces" and q.headers.get("content-type") == "application/x-protobuf"
                     and q.headers.get("content-encoding") == "gzip" and q.raw_len < len(q.body)
                     for q in reqs),
                 "POST /v1/traces, application/x-protobuf, gzip-compressed", detail=h)
            t.ok(h.get("x-scope-orgid") == "tenant-a" and h.get("x-blkin-test") == "1"
                 and h.get("x-api-key") == API_KEY,
                 "the configured headers, and the secret one from its file", detail=h)
            qemu = [s for res, scope, s in spans if s.get("name") == "qemu read"]
            res, scope, s0 = spans[0]
            t.ok(len(qemu) >= n and all(len(s["trace_id"]) == 16 and s["trace_id"][:8] == bytes(8)
                                        and len(s["span_id"]) == 8 and s["kind"] == 2
                                        and s["start_time_unix_nano"] < s["end_time_unix_nano"]
                                        for s in qemu),
                 "spans decode by the OTLP specification: 16-byte trace ids (BlkKin's in the low half), "
                 "8-byte span ids, kind SERVER, start before end", detail=s0)
            now = time.time_ns()
            t.ok(all(now - 3600e9 < s["start_time_unix_nano"] < now + 60e9 for s in qemu),
                 "times are Unix nanoseconds of now", detail=s0.get("start_time_unix_nano"))
            t.ok(res.get("blkin.domain") == "tl" and res.get("blkin.disk") == "vda"
                 and res.get("service.name") == "blkin" and scope == "blkin-hostd"
                 and s0["attributes"].get("blkin.layer") == "qemu"
                 and isinstance(s0["attributes"].get("blkin.offset"), int)
                 and isinstance(s0["attributes"].get("blkin.qemu_ns"), int),
                 "resource and span attributes: domain, disk, layer, offset, phases as integers",
                 detail=(res, scope, s0["attributes"]))
            zreqs, zrefused = zipkin.snapshot()
            zspans = [s for q in zreqs for s in json.loads(q.body)]
            t.ok(len(zspans) >= n and not zrefused
                 and all(s["localEndpoint"]["serviceName"] == "qemu" for s in zspans),
                 "Zipkin over TLS with basic auth: every span arrives", detail=len(zspans))
            ex = exports(st)
            t.ok(len(ex) == 2 and all(e["failures"] == 0 and e["dropped"] == 0 and e["rejected"] == 0
                                      and e["sent"] == e["queued"] for e in ex.values()),
                 "blkin status: all sent, no failure, drop or rejection", detail=ex)
            cmdline = open(f"/proc/{st.hostd.pid}/cmdline", "rb").read().decode(errors="replace")
            t.ok(TOKEN not in cmdline and PASSWORD not in cmdline and API_KEY not in cmdline,
                 "no secret on hostd's command line", detail=cmdline)

        # -- 2. the wrong CA; the wrong password ---------------------------
        pw_bad = secret(wd, "zipkin.bad", "not-the-password")
        write_config(cfg, f"""[export otlp]
url = https://127.0.0.1:{p_otlp}/v1/traces
ca-file = {other_ca.ca}
auth = bearer
token-file = {tok}

[export zipkin]
url = https://127.0.0.1:{p_zipkin}/api/v2/spans
ca-file = {ca.ca}
auth = basic
user = blkin
password-file = {pw_bad}
""")
        with Receiver(p_otlp, tls=ca, auth=("bearer", TOKEN)) as otlp, \
                Receiver(p_zipkin, tls=ca, auth=("basic", "blkin", PASSWORD)) as zipkin:
            st.hostd_args += ["--export-queue", "50"]
            off = restart(st)
            r = io(wd, st, n, "a")
            ok = st.wait_until(lambda: exports(st)["otlp"]["failures"] >= 2
                               and exports(st)["zipkin"]["rejected"] > 0
                               and exports(st)["otlp"]["dropped"] > 0, timeout=60)
            ex = exports(st)
            log = hostd_log(st, off)
            otlp_lines = [line for line in log.splitlines() if "export otlp" in line]
            zipkin_lines = [line for line in log.splitlines() if "export zipkin" in line]
            t.ok(ok and not otlp.snapshot()[0] and not otlp.snapshot()[1],
                 "a server the CA file does not vouch for gets nothing", detail=ex)
            t.ok(ex["otlp"]["pending"] <= 50 and ex["otlp"]["queued"] + ex["otlp"]["dropped"] >= n,
                 "the queue stays bounded, drops counted", detail=ex["otlp"])
            t.ok(len(otlp_lines) == 1 and ("SSL" in otlp_lines[0] or "certificate" in otlp_lines[0]),
                 "one log line about the certificate, however many retries", detail=otlp_lines)
            zreqs, zrefused = zipkin.snapshot()
            t.ok(not zreqs and zrefused and ex["zipkin"]["rejected"] > 0 and ex["zipkin"]["failures"] == 0,
                 "the wrong password: the collector's 401 drops the batch, counted as rejected",
                 detail=ex["zipkin"])
            t.ok(len(zipkin_lines) == 1 and "401" in zipkin_lines[0],
                 "one log line about the refusal", detail=zipkin_lines)

        # -- 3. a collector that comes late --------------------------------
        write_config(cfg, f"""[export otlp]
url = http://127.0.0.1:{p_late}/v1/traces
gzip = true
""")
        st.hostd_args = [a for a in st.hostd_args if a not in ("--export-queue", "50")]
        off = restart(st)
        m = 200
        r = io(wd, st, m, "b")
        st.wait_until(lambda: exports(st)["otlp"]["failures"] >= 2, timeout=30)
        t0 = time.monotonic()
        with Receiver(p_late) as late:
            got = st.wait_until(lambda: exports(st)["otlp"]["sent"] >= m, timeout=60)
            took = time.monotonic() - t0
            ex = exports(st)["otlp"]
            spans = [s for q in late.snapshot()[0]
                     for rs in json.loads(q.body)["resourceSpans"]
                     for ss in rs["scopeSpans"] for s in ss["spans"]]
            t.ok(got and len(spans) == ex["sent"] and ex["dropped"] == 0 and ex["failures"] >= 2,
                 "retried with backoff: everything arrives once the collector is up, nothing dropped",
                 detail=(ex, len(spans), f"{took:.1f} s after it came up"))
            t.ok(took <= 35, "the next retry comes within the backoff's bound (30 s)", detail=f"{took:.1f} s")
            lines = [line for line in hostd_log(st, off).splitlines() if "export otlp" in line]
            t.ok(len(lines) == 2 and "retrying with backoff" in lines[0] and "delivering again" in lines[1],
                 "one line when delivery fails, one when it works again", detail=lines)
        st.stop_hostd()

    # -- 4. a password in a URL ----------------------------------------------
    r = subprocess.run([HOSTD, "--live", "net://127.0.0.1:9/host/x/y", "--socket",
                        os.path.join(wd, "pw.sock"), "--no-history", "--keep-privileges", "--export-zipkin",
                        "https://blkin:hunter2@127.0.0.1:1/api/v2/spans"],
                       capture_output=True, text=True, timeout=60)
    t.ok(r.returncode == 2 and "password-file" in r.stderr and "hunter2" not in r.stderr,
         "a URL with a password is refused, pointing at password-file (and not echoed)",
         detail=r.stderr)
    t.done()


if __name__ == "__main__":
    main()
