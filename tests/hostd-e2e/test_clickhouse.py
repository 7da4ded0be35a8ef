#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""ClickHouse as the scale-out store: two blkin-hostd instances (two "nodes")
write joined requests to one real ClickHouse server (Debian's 18.16), as a
user with a password (hostd.conf's [store clickhouse], the password from a
file); `blkin report --store` over it is the union of the two hostds' own
reports by the same definitions (cli/report-store.c, docs/clickhouse.md):
counts and phase counts, max and mean equal; percentiles the exact
nearest-rank values of the stored samples, which hostd's are within 0.8 %
of; IOPS the window's requests over the window's duration, clamped to when
the disk's statistics began, so taken around hostd's report they bracket
it."""
import base64
import json
import math
import os
import re
import shutil
import subprocess
import time
import urllib.request

from qemutools import blkin_json, create, run
from stack import BUILD, CLI, HostStack, free_ports
from tap import Tap


USER, PASSWORD = "blkin", "ch-s3cret"
AUTH = {"Authorization": "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}


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
    users = open("/etc/clickhouse-server/users.xml").read()
    # A user with a password; the default user cannot log in from here.
    head, _, rest = users.partition("<users>")
    rest = re.sub(r"(<default>.*?<networks[^>]*>).*?(</networks>)", r"\1<ip>192.0.2.1</ip>\2",
                  rest, count=1, flags=re.S)
    users = head + f"""<users>
        <{USER}><password>{PASSWORD}</password><networks><ip>::/0</ip></networks>
            <profile>default</profile><quota>default</quota></{USER}>""" + rest
    with open(wd + "/users.xml", "w") as f:
        f.write(users)
    p = subprocess.Popen(["/usr/sbin/clickhouse-server", "--config-file=" + wd + "/config.xml"],
                         stdout=subprocess.DEVNULL, stderr=open(wd + "/server.log", "w"), cwd=wd)
    url = f"http://127.0.0.1:{http}/"
    for _ in range(300):
        try:
            with urllib.request.urlopen(urllib.request.Request(url + "?query=SELECT%201", headers=AUTH),
                                        timeout=1) as r:
                if r.read().strip() == b"1":
                    return p, url
        except OSError:
            time.sleep(0.1)
    p.kill()
    raise RuntimeError("clickhouse-server did not start")


def sample_column(url, vm_name, disk, op, phase):
    q = (f"SELECT {phase}_ns FROM blkin.requests WHERE domain = '{vm_name}' AND disk = '{disk}' "
         f"AND op = '{op}' AND {phase}_ns >= 0 FORMAT TabSeparated")
    with urllib.request.urlopen(urllib.request.Request(url, data=q.encode(), headers=AUTH), timeout=30) as r:
        return [int(x) for x in r.read().split()]


def nearest_rank(vals, q):
    """latency-hist.h's definition: the value of rank ceil(q * n)."""
    return vals[max(1, min(len(vals), math.ceil(q * len(vals)))) - 1]


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
    pw = os.path.join(wd, "clickhouse.password")
    with open(pw, "w") as f:
        f.write(PASSWORD + "\n")
    os.chmod(pw, 0o600)
    conf = os.path.join(wd, "hostd.conf")
    with open(conf, "w") as f:
        f.write(f"[store clickhouse]\nurl = {url}\nauth = basic\nuser = {USER}\npassword-file = {pw}\n"
                "gzip = true\n")
    try:
        a_dir, b_dir = os.path.join(wd, "node-a"), os.path.join(wd, "node-b")
        os.makedirs(a_dir)
        os.makedirs(b_dir)
        with HostStack(a_dir, hold_ms=800, hostd_args=["--config", conf]) as a, \
                HostStack(b_dir, hold_ms=800, hostd_args=["--config", conf]) as b:
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

            def local(window="1h"):
                u = {}
                u.update(by_disk(a.report("n1", window=window)))
                u.update(by_disk(b.report("n2", window=window)))
                return u

            def counts(u):
                return {k: {op: o["count"] for op, o in v.items()} for k, v in u.items()}

            def stored(window="1h", raw=False):
                r = subprocess.run([CLI, "report", "--store", url, "--config", conf, "--window", window, "--json"],
                                   capture_output=True, text=True, timeout=60)
                if r.returncode != 0:
                    t.diag(r.stderr)
                    return {}
                return json.loads(r.stdout) if raw else by_disk(json.loads(r.stdout))

            a.wait_until(lambda: sum(sum(c.values()) for c in counts(local()).values()) >= 5000, timeout=60)
            mine = local()
            a.wait_until(lambda: counts(stored()) == counts(mine), timeout=60)
            theirs = stored()
            t.eq(counts(theirs), counts(mine),
                 "authenticated with the password from its file, the store's report counts exactly what "
                 "both hostds counted, per disk and op")
            # Percentiles: the store's are exactly the nearest rank of the
            # stored samples; hostd's lie within its histograms' 1/128.
            bad_store, bad_live, same = [], [], []
            for k, ops in mine.items():
                vm_name, disk = k.split("/")
                for op, o in ops.items():
                    mp = {p["phase"]: p for p in o["phases"]}
                    sp = {p["phase"]: p for p in theirs.get(k, {}).get(op, {}).get("phases", [])}
                    same.append((k, op, sorted(mp), sorted(sp)))
                    for ph in mp:
                        vals = sorted(sample_column(url, vm_name, disk, op, ph))
                        for q, key in ((0.5, "p50_ns"), (0.9, "p90_ns"), (0.99, "p99_ns"),
                                       (0.999, "p999_ns")):
                            want = nearest_rank(vals, q)
                            if sp[ph][key] != want:
                                bad_store.append((k, op, ph, key, sp[ph][key], want))
                            if abs(mp[ph][key] - want) > want / 128 + 1:
                                bad_live.append((k, op, ph, key, mp[ph][key], want))
                        for key in ("count", "max_ns", "mean_ns"):
                            if sp[ph][key] != mp[ph][key]:
                                bad_store.append((k, op, ph, key, sp[ph][key], mp[ph][key]))
            t.ok(all(m == s_ for _, _, m, s_ in same), "the same phases in both reports", detail=same)
            t.ok(not bad_store, "the store: p50..p99.9 are the nearest-rank values of the stored samples; "
                 "count, max and mean equal hostd's", detail=bad_store[:5])
            t.ok(not bad_live, "hostd's percentiles are within 1/128 of the store's exact ones",
                 detail=bad_live[:5])
            # IOPS by one definition: taken just before and just after
            # hostd's report, the store's bracket it (nothing new arrives
            # meanwhile, and a window only grows). To the double's rounding:
            # both divide the same count by the same duration, whose start
            # (when the disk's statistics began) hostd exports to the ns.
            for window in ("1h", "1m"):
                # Only a bracket with nothing arriving in between compares:
                # on a loaded machine the last requests may still be on
                # their way to the store; take it again until none was.
                for _ in range(30):
                    before = stored(window, raw=True)
                    live = local(window)
                    after = stored(window, raw=True)
                    bb, aa = by_disk(before), by_disk(after)
                    if all(k in bb and k in aa and
                           counts({k: bb[k]}) == counts({k: aa[k]}) == counts({k: live[k]})
                           for k in live):
                        break
                    time.sleep(1)
                rows = []
                for rep in (before, after):
                    for d in rep.get("disks", []):
                        span = (d["window_end_unix_ns"] - d["window_start_unix_ns"]) / 1e9
                        for o in d["ops"]:
                            rows.append(abs(o["iops"] - o["count"] / span) <= 1e-9 * o["iops"])
                bb, aa = by_disk(before), by_disk(after)
                brackets = [(k, op, bb[k][op]["iops"], o["iops"], aa[k][op]["iops"])
                            for k, ops in live.items() for op, o in ops.items()
                            if counts({k: bb[k]}) == counts({k: aa[k]}) == counts({k: live[k]})]
                t.ok(rows and all(rows), f"{window}: the store's iops is the window's requests over its "
                     "duration (window_start/end_unix_ns)")
                t.ok(len(brackets) == len(counts(live)["n1/vda"]) + len(counts(live)["n2/vda"])
                     and all(x >= y * (1 - 1e-12) and y >= z * (1 - 1e-12) for _, _, x, y, z in brackets),
                     f"{window}: hostd's iops lies between the store's taken just before and just after "
                     "(same definition and window)", detail=brackets)
            txt = subprocess.run([CLI, "report", "--store", url, "--config", conf, "n2", "--window", "1h"],
                                 capture_output=True, text=True, timeout=60)
            t.ok(txt.returncode == 0 and "n2" in txt.stdout and "n1" not in txt.stdout,
                 "the store's report can be narrowed to one VM", detail=txt.stdout + txt.stderr)
            r = subprocess.run([CLI, "report", "--store", url, "--config", "", "--window", "1h"],
                               capture_output=True, text=True, timeout=60)
            t.ok(r.returncode == 1 and "ClickHouse" in r.stderr,
                 "without the credentials the store refuses the report, and blkin says so",
                 detail=r.stderr)
    finally:
        ch.terminate()
        ch.wait(timeout=60)
    t.done()


if __name__ == "__main__":
    main()
