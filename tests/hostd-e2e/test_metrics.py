#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""A real Prometheus scrapes blkin-hostd's /metrics while QEMU does I/O through
the filter; PromQL's histogram_quantile over the scraped histogram agrees with
`blkin report`'s percentiles within the buckets' resolution, and the counters
agree exactly."""
import json
import os
import shutil
import subprocess
import time
import urllib.parse
import urllib.request

from qemutools import blkin_json, create, run
from stack import BUILD, HostStack, free_ports
from tap import Tap

# Adjacent Prometheus bucket bounds are 2^(1/4) apart (19 %); quantiles are
# interpolated inside a bucket, and the report's own are within 0.8 %.
TOLERANCE = 0.20


def promql(port, q):
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": q})
    with urllib.request.urlopen(url, timeout=10) as r:
        res = json.load(r)["data"]["result"]
    return float(res[0]["value"][1]) if res else None


def main():
    t = Tap()
    wd = os.path.join(BUILD, "tests", "hostd-e2e", "work", "metrics")
    shutil.rmtree(wd, ignore_errors=True)
    os.makedirs(wd)
    mport, pport = free_ports(2)
    with open(os.path.join(wd, "prometheus.yml"), "w") as f:
        f.write(f"""global:
  scrape_interval: 1s
scrape_configs:
  - job_name: blkin
    static_configs:
      - targets: ['127.0.0.1:{mport}']
""")
    prom = None
    try:
        with HostStack(wd, hold_ms=800, hostd_args=["--metrics", f"127.0.0.1:{mport}"]) as st:
            prom = subprocess.Popen(
                ["prometheus", "--config.file=" + os.path.join(wd, "prometheus.yml"),
                 "--storage.tsdb.path=" + os.path.join(wd, "tsdb"),
                 f"--web.listen-address=127.0.0.1:{pport}"],
                stdout=subprocess.DEVNULL, stderr=open(os.path.join(wd, "prometheus.log"), "w"))
            st.register("pm", None, ["vda=pm-a=pm/vda"])
            img = os.path.join(wd, "d.raw")
            create(img, 64 << 20)
            n = 4000
            disk = {"driver": "raw", "file": {"driver": "file", "filename": img, "aio": "threads",
                                              "cache": {"direct": True}}}
            r = run(["qemu-img", "bench", "-c", str(n), "-d", "8", "-s", "4096", "-S", "8192",
                     blkin_json(disk, id="pm/vda")], timeout=300)
            t.ok(r.returncode == 0, "QEMU did its I/O through the filter", detail=r.stderr)

            def counted():
                d = st.report("pm", "vda", window="1h")["disks"][0]
                return d if sum(o["count"] for o in d["ops"] if o["op"] == "read") >= n else None

            d = st.wait_until(counted, timeout=30)
            t.ok(d is not None, "hostd counted every request")
            got = st.wait_until(lambda: promql(pport, 'blkin_requests_total{domain="pm",disk="vda",op="read"}') == n,
                                timeout=60)
            t.ok(got, "Prometheus scraped the request counter, exactly",
                 detail=promql(pport, 'blkin_requests_total{domain="pm",disk="vda",op="read"}'))
            report = {p["phase"]: p for o in d["ops"] if o["op"] == "read" for p in o["phases"]}
            for q, key in ((0.5, "p50_ns"), (0.9, "p90_ns"), (0.99, "p99_ns")):
                for phase in ("total", "qemu"):
                    v = promql(pport, f'histogram_quantile({q}, blkin_request_phase_seconds_bucket'
                                      f'{{domain="pm",disk="vda",op="read",phase="{phase}"}})')
                    want = report[phase][key] / 1e9
                    t.ok(v is not None and abs(v - want) <= TOLERANCE * want,
                         f"histogram_quantile({q}) of {phase} agrees with blkin report",
                         detail=f"prometheus {v}, report {want}")
            st.register("pm", None, ["vda=pm-a=pm/vda"])
            again = st.report("pm", "vda", window="1h")["disks"][0]
            t.eq(sum(o["count"] for o in again["ops"] if o["op"] == "read"), n,
                 "registering the same VM again keeps its statistics")
            # A peer that connects and says nothing must not stall hostd.
            import socket
            idle = [socket.create_connection(("127.0.0.1", mport), timeout=5) for _ in range(4)]
            idle[0].sendall(b"GET /metr")
            t0 = time.monotonic()
            st.cli("status")
            t.ok(time.monotonic() - t0 < 1.0, "silent or trickling metrics peers do not stall hostd",
                 detail=f"{time.monotonic() - t0:.2f} s")
            for c_ in idle:
                c_.close()
            c = promql(pport, 'blkin_request_phase_seconds_count{domain="pm",disk="vda",op="read",phase="total"}')
            t.eq(c, float(n), "the histogram's count equals the requests")
            s = promql(pport, 'blkin_unmatched_guest_requests_total{domain="pm",disk="vda"}')
            t.eq(s, 0.0, "unmatched and dropped counters are exported")
            with urllib.request.urlopen(f"http://127.0.0.1:{mport}/other", timeout=5) as r2:
                pass
    except urllib.error.HTTPError as e:
        t.eq(e.code, 404, "anything but /metrics is 404")
    finally:
        if prom:
            prom.terminate()
            prom.wait(timeout=30)
    t.done()


if __name__ == "__main__":
    main()
