#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""ClickHouse as the scale-out store: two blkin-hostd instances (two "nodes")
write joined requests to one real ClickHouse server; `blkin report --store`
over it equals the union of the two hostds' own reports (counts exact,
percentiles within hostd's histogram resolution)."""
import json
import os
import re
import shutil
import subprocess
import time
import urllib.request

from qemutools import blkin_json, create, run
from stack import BUILD, CLI, HostStack, free_ports
from tap import Tap


def start_clickhouse(wd):
    http, tcp, inter = free_ports(3)
    conf = open("/etc/clickhouse-server/config.xml").read()
    conf = conf.replace("/var/log/clickhouse-server/", wd + "/log/")
    conf = conf.replace("/var/lib/clickhouse/", wd + "/data/")
    conf = re.sub(r"<http_port>\d+</http_port>", f"<http_port>{http}</http_port>", conf)
    conf = re.sub(r"<tcp_port>\d+</tcp_port>", f"<tcp_port>{tcp}</tcp_port>", conf)
    conf = re.sub(r"<interserver_http_port>\d+</interserver_http_port>",
                  f"<interserver_http_port>{inter}</interserver_http_port>", conf)
    conf = conf.replace("<listen_host>::1</listen_host>", "")
    os.makedirs(wd + "/log")
    os.makedirs(wd + "/data")
    with open(wd + "/config.xml", "w") as f:
        f.write(conf)
    shutil.copy("/etc/clickhouse-server/users.xml", wd + "/users.xml")
    p = subprocess.Popen(["/usr/sbin/clickhouse-server", "--config-file=" + wd + "/config.xml"],
                         stdout=subprocess.DEVNULL, stderr=open(wd + "/server.log", "w"), cwd=wd)
    url = f"http://127.0.0.1:{http}/"
    for _ in range(300):
        try:
            with urllib.request.urlopen(url + "?query=SELECT%201", timeout=1) as r:
                if r.read().strip() == b"1":
                    return p, url
        except OSError:
            time.sleep(0.1)
    p.kill()
    raise RuntimeError("clickhouse-server did not start")


def sample_column(url, vm_name, disk, op, phase):
    q = (f"SELECT {phase}_ns FROM blkin.requests WHERE domain = '{vm_name}' AND disk = '{disk}' "
         f"AND op = '{op}' AND {phase}_ns >= 0 FORMAT TabSeparated")
    with urllib.request.urlopen(urllib.request.Request(url, data=q.encode()), timeout=30) as r:
        return [int(x) for x in r.read().split()]


def by_disk(rep):
    out = {}
    for d in rep["disks"]:
        out[f"{d['vm']}/{d['disk']}"] = {o["op"]: o for o in d["ops"]}
    return out


def main():
    t = Tap()
    wd = os.path.join(BUILD, "tests", "hostd-e2e", "work", "clickhouse")
    shutil.rmtree(wd, ignore_errors=True)
    os.makedirs(wd)
    ch, url = start_clickhouse(os.path.join(wd, "ch"))
    try:
        a_dir, b_dir = os.path.join(wd, "node-a"), os.path.join(wd, "node-b")
        os.makedirs(a_dir)
        os.makedirs(b_dir)
        with HostStack(a_dir, hold_ms=800, hostd_args=["--store", url]) as a, \
                HostStack(b_dir, hold_ms=800, hostd_args=["--store", url]) as b:
            a.register("n1", None, ["vda=n1-a=n1/vda"])
            b.register("n2", None, ["vda=n2-a=n2/vda"])
            for node, n, extra in (("n1", 2000, []), ("n2", 3000, ["-w"])):
                img = os.path.join(wd, node + ".raw")
                create(img, 64 << 20)
                disk = {"driver": "raw", "file": {"driver": "file", "filename": img, "aio": "threads",
                                                  "cache": {"direct": True}}}
                r = run(["qemu-img", "bench", "-c", str(n), "-d", "4", *extra,
                         blkin_json(disk, id=f"{node}/vda")], timeout=300)
                t.ok(r.returncode == 0, f"{node}: QEMU I/O through the filter", detail=r.stderr)

            def local():
                u = {}
                u.update(by_disk(a.report("n1", window="1h")))
                u.update(by_disk(b.report("n2", window="1h")))
                return u

            def counts(u):
                return {k: {op: o["count"] for op, o in v.items()} for k, v in u.items()}

            a.wait_until(lambda: sum(sum(c.values()) for c in counts(local()).values()) >= 5000, timeout=60)
            mine = local()

            def stored():
                r = subprocess.run([CLI, "report", "--store", url, "--window", "1h", "--json"],
                                   capture_output=True, text=True, timeout=60)
                return by_disk(json.loads(r.stdout)) if r.returncode == 0 else {}

            a.wait_until(lambda: counts(stored()) == counts(mine), timeout=60)
            theirs = stored()
            t.eq(counts(theirs), counts(mine),
                 "the store's report counts exactly what both hostds counted, per disk and op")
            # Quantile definitions differ by a rank between implementations;
            # hostd's answer must lie, within its 0.8 % resolution, between
            # the stored samples one rank either side of the exact rank.
            bad = []
            for k, ops in mine.items():
                vm_name, disk = k.split("/")
                for op, o in ops.items():
                    mp = {p["phase"]: p for p in o["phases"]}
                    sp = {p["phase"]: p for p in theirs.get(k, {}).get(op, {}).get("phases", [])}
                    for ph in ("total", "qemu"):
                        vals = sorted(sample_column(url, vm_name, disk, op, ph))
                        for q, key in ((0.5, "p50_ns"), (0.9, "p90_ns"), (0.99, "p99_ns"), (1.0, "max_ns")):
                            r = q * (len(vals) - 1)
                            lo = vals[max(0, int(r) - 1)] * 0.99
                            hi = vals[min(len(vals) - 1, int(r) + 2)] * 1.01
                            if not (lo <= mp[ph][key] <= hi and lo <= sp[ph][key] <= hi):
                                bad.append((k, op, ph, key, mp[ph][key], sp[ph][key], lo, hi))
            t.ok(not bad, "percentiles agree with the stored samples within the histograms' resolution",
                 detail=bad[:5])
            txt = subprocess.run([CLI, "report", "--store", url, "n2", "--window", "1h"],
                                 capture_output=True, text=True, timeout=60)
            t.ok(txt.returncode == 0 and "n2" in txt.stdout and "n1" not in txt.stdout,
                 "the store's report can be narrowed to one VM", detail=txt.stdout + txt.stderr)
    finally:
        ch.terminate()
        ch.wait(timeout=60)
    t.done()


if __name__ == "__main__":
    main()
