#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Real Prometheus servers scrape blkin-hostd's /metrics while QEMU does I/O
through the filter:

- one with native histograms (--enable-feature=native-histograms: it asks
  for the protobuf format and hostd answers with native histograms, 9 %
  buckets): PromQL's histogram_quantile over them is within 10 % of `blkin
  report`'s p50, p90 and p99;
- one reading the text format: the classic histograms have the coarse
  default ladder (at most 20 buckets, +Inf included), and histogram_quantile
  lands in the ladder bucket that holds the report's value (what a coarse
  ladder can promise);
- counters agree exactly; --metrics-buckets sets another ladder."""
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request

from qemutools import blkin_json, create, run
from stack import BUILD, HostStack, free_ports
from tap import Tap

NATIVE_TOLERANCE = 0.10
LADDER = [10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3,
          100e-3, 250e-3, 500e-3, 1, 2.5, 5, 10]
SERIES = 'domain="pm",disk="vda",op="read"'


def promql(port, q):
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": q})
    with urllib.request.urlopen(url, timeout=10) as r:
        res = json.load(r)["data"]["result"]
    return float(res[0]["value"][1]) if res else None


def start_prometheus(wd, name, mport, pport, native):
    d = os.path.join(wd, name)
    os.makedirs(d)
    with open(os.path.join(d, "prometheus.yml"), "w") as f:
        f.write(f"""global:
  scrape_interval: 1s
scrape_configs:
  - job_name: blkin
    static_configs:
      - targets: ['127.0.0.1:{mport}']
""")
    return subprocess.Popen(
        ["timeout", "600", "prometheus", "--config.file=" + os.path.join(d, "prometheus.yml"),
         "--storage.tsdb.path=" + os.path.join(d, "tsdb"), f"--web.listen-address=127.0.0.1:{pport}",
         *(["--enable-feature=native-histograms"] if native else [])],
        stdout=subprocess.DEVNULL, stderr=open(os.path.join(d, "prometheus.log"), "w"))


def scrape_text(mport):
    with urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics", timeout=10) as r:
        return r.read().decode()


def io(wd, n, name):
    img = os.path.join(wd, name + ".raw")
    create(img, 64 << 20)
    disk = {"driver": "raw", "file": {"driver": "file", "filename": img, "aio": "threads",
                                      "cache": {"direct": True}}}
    return run(["qemu-img", "bench", "-c", str(n), "-d", "8", "-s", "4096", "-S", "8192",
                blkin_json(disk, id="pm/vda")], timeout=300)


def main():
    t = Tap()
    wd = os.path.join(BUILD, "tests", "hostd-e2e", "work", "metrics")
    shutil.rmtree(wd, ignore_errors=True)
    os.makedirs(wd)
    mport, pclassic, pnative = free_ports(3)
    proms = []
    try:
        with HostStack(wd, hold_ms=800, hostd_args=["--metrics", f"127.0.0.1:{mport}"]) as st:
            proms.append(start_prometheus(wd, "classic", mport, pclassic, native=False))
            proms.append(start_prometheus(wd, "native", mport, pnative, native=True))
            st.register("pm", None, ["vda=pm-a=pm/vda"])
            n = 4000
            r = io(wd, n, "d")
            t.ok(r.returncode == 0, "QEMU did its I/O through the filter", detail=r.stderr)

            def counted():
                d = st.report("pm", "vda", window="1h")["disks"][0]
                return d if sum(o["count"] for o in d["ops"] if o["op"] == "read") >= n else None

            d = st.wait_until(counted, timeout=30)
            t.ok(d is not None, "hostd counted every request")
            report = {p["phase"]: p for o in d["ops"] if o["op"] == "read" for p in o["phases"]}

            # -- classic, text format -------------------------------------
            text = scrape_text(mport)
            les = [line.split('le="')[1].split('"')[0] for line in text.splitlines()
                   if line.startswith("blkin_request_phase_seconds_bucket{") and SERIES in line
                   and 'phase="total"' in line]
            t.ok(len(les) <= 20 and [float(x) for x in les[:-1]] == LADDER and les[-1] == "+Inf",
                 "the classic histogram has the coarse default ladder: at most 20 buckets, +Inf included",
                 detail=les)
            pc = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True,
                                timeout=60)
            t.ok(pc.returncode == 0, "promtool check metrics: the text exposition passes",
                 detail=pc.stdout + pc.stderr)
            series = sum(1 for line in text.splitlines()
                         if line.startswith("blkin_request_phase_seconds") and 'domain="pm"' in line)
            t.diag(f"histogram series of the disk: {series} ({len(report)} read phases)")
            got = st.wait_until(lambda: promql(pclassic, f"blkin_requests_total{{{SERIES}}}") == n,
                                timeout=60)
            t.ok(got, "Prometheus scraped the request counter, exactly",
                 detail=promql(pclassic, f"blkin_requests_total{{{SERIES}}}"))
            for q, key in ((0.5, "p50_ns"), (0.9, "p90_ns"), (0.99, "p99_ns")):
                for phase in ("total", "qemu"):
                    v = promql(pclassic, f'histogram_quantile({q}, blkin_request_phase_seconds_bucket'
                                         f'{{{SERIES},phase="{phase}"}})')
                    want = report[phase][key] / 1e9
                    lo = max([0] + [b for b in LADDER if b < want])
                    hi = min([b for b in LADDER if b >= want] + [float("inf")])
                    t.ok(v is not None and lo * 0.999 <= v <= hi * 1.001,
                         f"classic: histogram_quantile({q}) of {phase} lands in the report's ladder bucket",
                         detail=f"prometheus {v}, report {want}, bucket ({lo}, {hi}]")

            # -- native histograms, protobuf format -----------------------
            got = st.wait_until(
                lambda: promql(pnative, f'histogram_count(blkin_request_phase_seconds{{{SERIES},'
                                        'phase="total"})') == n, timeout=60)
            t.ok(got, "native: Prometheus scraped the native histogram (protobuf format), count exact",
                 detail=promql(pnative, f'histogram_count(blkin_request_phase_seconds{{{SERIES},'
                                        'phase="total"})'))
            t.ok(promql(pnative, f'count(blkin_request_phase_seconds_bucket{{{SERIES}}})') is None,
                 "native: one series per histogram, no bucket series")
            for q, key in ((0.5, "p50_ns"), (0.9, "p90_ns"), (0.99, "p99_ns")):
                for phase in ("total", "qemu"):
                    v = promql(pnative, f'histogram_quantile({q}, blkin_request_phase_seconds'
                                        f'{{{SERIES},phase="{phase}"}})')
                    want = report[phase][key] / 1e9
                    t.diag(f"native {phase} p{q * 100:g}: prometheus {v}, report {want} "
                           f"({(v or 0) / want - 1:+.2%})")
                    t.ok(v is not None and abs(v - want) <= NATIVE_TOLERANCE * want,
                         f"native: histogram_quantile({q}) of {phase} within 10 % of blkin report",
                         detail=f"prometheus {v}, report {want} ({(v or 0) / want - 1:+.1%})")
            t.eq(promql(pnative, f"blkin_requests_total{{{SERIES}}}"), float(n),
                 "native: the counters come through the protobuf format too")

            st.register("pm", None, ["vda=pm-a=pm/vda"])
            again = st.report("pm", "vda", window="1h")["disks"][0]
            t.eq(sum(o["count"] for o in again["ops"] if o["op"] == "read"), n,
                 "registering the same VM again keeps its statistics")
            # A peer that connects and says nothing must not stall hostd.
            idle = [socket.create_connection(("127.0.0.1", mport), timeout=5) for _ in range(4)]
            idle[0].sendall(b"GET /metr")
            t0 = time.monotonic()
            st.cli("status")
            t.ok(time.monotonic() - t0 < 1.0, "silent or trickling metrics peers do not stall hostd",
                 detail=f"{time.monotonic() - t0:.2f} s")
            for c_ in idle:
                c_.close()
            c = promql(pclassic, f'blkin_request_phase_seconds_count{{{SERIES},phase="total"}}')
            t.eq(c, float(n), "the histogram's count equals the requests")
            s = promql(pclassic, 'blkin_unmatched_guest_requests_total{domain="pm",disk="vda"}')
            t.eq(s, 0.0, "unmatched and dropped counters are exported")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{mport}/other", timeout=5):
                    t.ok(False, "anything but /metrics is 404")
            except urllib.error.HTTPError as e:
                t.eq(e.code, 404, "anything but /metrics is 404")

            # -- another ladder --------------------------------------------
            st.stop_hostd()
            st.hostd_args += ["--metrics-buckets", "0.0001,0.001,0.01"]
            st.start_hostd()
            st.register("pm", None, ["vda=pm-a=pm/vda"])
            io(wd, 200, "e")
            st.wait_until(lambda: f'blkin_requests_total{{{SERIES}}} 200' in scrape_text(mport), timeout=30)
            text = scrape_text(mport)
            les = [line.split('le="')[1].split('"')[0] for line in text.splitlines()
                   if line.startswith("blkin_request_phase_seconds_bucket{") and SERIES in line
                   and 'phase="total"' in line]
            t.eq(les, ["0.0001", "0.001", "0.01", "+Inf"], "--metrics-buckets sets the classic ladder")
            st.stop_hostd()
            r = subprocess.run([st_hostd(), "--live", "net://127.0.0.1:9/host/x/y", "--socket",
                                os.path.join(wd, "x.sock"), "--no-history", "--metrics", "127.0.0.1:0",
                                "--metrics-buckets", "0.01,0.001"], capture_output=True, text=True, timeout=30)
            t.ok(r.returncode == 2 and "metrics buckets" in r.stderr, "a ladder out of order is refused",
                 detail=r.stderr)
    finally:
        for p in proms:
            p.terminate()
            p.wait(timeout=30)
    t.done()


def st_hostd():
    from stack import HOSTD
    return HOSTD


if __name__ == "__main__":
    main()
