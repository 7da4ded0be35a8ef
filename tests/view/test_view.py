#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""The view in a real browser (Debian's chromium, headless, over the
DevTools protocol), fed by a real hostd reading a real guest's requests
through the filter, LTTng live and the guest agent; and the Grafana
dashboard against the same hostd's /metrics and a real Prometheus.

One hostd, one VM (two disks: a raw file, and qcow2 between two blkin nodes
so that it has backend time), two workloads: the first before the pages are
looked at, the second once the live page is open, started by the test
through a virtio-serial port the guest waits on.

- `blkin report --html FILE`: loaded with the network off, no console
  error, nothing fetched; it shows the disks, the ops and the phases the
  report has (and the workload's exact read and write counts); every
  heatmap's cells add up, row by row, to the report's histogram buckets of
  the same window; the slowest requests are waterfalls with the guest
  clock's error bound; a screenshot is kept (work dir: report.png).
- hostd's live page: no console error; it updates (without a reload) at
  least every 2 s and shows the second workload's requests once they are
  joined; a screenshot is kept (live.png).
- hostile requests to the view's paths get 404 or 400 with the reason, and
  hostd answers meanwhile.
- grafana/blkin-dashboard.json follows Grafana's dashboard model, every
  metric its PromQL names is in /metrics with the labels it uses, and
  Prometheus evaluates every expression without error (the main ones
  non-empty).
"""
import json
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request

import browser
import vm
from stack import BUILD, CLI, SRC, HostStack, StackedDisk, free_ports
from tap import Tap

VM_NAME = "view1"
GO_PORT = "org.blkin.test.go"
UNMAP = {"discard": "unmap"}
WORK = os.path.join(BUILD, "tests", "view", "work")

GUEST = """
blkin-guest-agent 2>/tmp/agent.log &
AGENT=$!
sleep 1
for s in view-a view-b; do echo "serial $(blkin_disk $s) $s" >"$BLKIN_RESULTS"; done
blkin-workload --seed 11 -n 150 -q 1,8 -f 3 -d 3 -o "$BLKIN_RESULTS" "$(blkin_disk view-a)" "$(blkin_disk view-b)"
rc=$?
echo "phase-a-done $rc" >"$BLKIN_RESULTS"
# Until the host says so (a read is at its end while nobody is connected).
go=
while [ "$go" != go ]; do read go <"$(blkin_port %s)" || sleep 0.2; done
blkin-workload --seed 12 -n 120 -q 4 -Q "$(blkin_disk view-a)" "$(blkin_disk view-b)" >/tmp/b.out
rc2=$?
echo "phase-b-done $rc2" >"$BLKIN_RESULTS"
sleep 1
kill -TERM $AGENT
wait $AGENT
exit $((rc + rc2))
""" % GO_PORT

# What the page shows, read from its elements.
READ_PAGE = r"""(function () {
  var out = {};
  document.querySelectorAll('section.disk').forEach(function (sec) {
    var d = {vm: sec.getAttribute('data-vm'), ops: {}, counters: {}, clock_errors: [], waterfalls: 0};
    sec.querySelectorAll('div.op').forEach(function (op) {
      var cells = {}, n = 0;
      op.querySelectorAll('svg.heatmap rect.cell').forEach(function (c) {
        var r = c.getAttribute('data-row');
        cells[r] = (cells[r] || 0) + Number(c.getAttribute('data-count'));
        n++;
      });
      d.ops[op.getAttribute('data-op')] = {
        count: Number(op.querySelector('h3 .num').getAttribute('data-count')),
        cells: cells, rects: n,
        phases: Array.prototype.map.call(op.querySelectorAll('table.phases tr.phase-row'),
                                         function (tr) { return tr.getAttribute('data-phase'); }),
        stack: op.querySelectorAll('svg.stack rect[data-phase]').length,
        totals: Number(op.querySelector("tr.phase-row[data-phase='total'] td:nth-child(2)").textContent.split(' ')[0]),
        lines: op.querySelectorAll('svg.percentiles path.line').length};
    });
    sec.querySelectorAll('[data-counter]').forEach(function (e) {
      d.counters[e.getAttribute('data-counter')] = Number(e.textContent.replace(/.* /, ''));
    });
    sec.querySelectorAll('.req').forEach(function (r) {
      var e = r.querySelector('.clock-error');
      d.clock_errors.push([Number(e.getAttribute('data-ns')), e.textContent,
                           r.querySelectorAll('rect.clock-band').length,
                           r.querySelectorAll('g.phase-row').length, r.querySelectorAll('g.layer-row').length,
                           r.getAttribute('data-guest') === 'true']);
      d.waterfalls++;
    });
    out[sec.getAttribute('data-disk')] = d;
  });
  return out;
})()"""


def row_of(ns):
    """stats/timeline.h's rows: four per power of two from 2^10 ns."""
    if ns < 1024:
        return 0
    e = ns.bit_length() - 1
    if e >= 34:
        return 97
    return 1 + (e - 10) * 4 + ((ns >> (e - 2)) & 3)


def report_rows(op):
    rows = {}
    for p in op["phases"]:
        if p["phase"] == "total":
            for upper, count in p.get("buckets", []):
                rows[str(row_of(upper))] = rows.get(str(row_of(upper)), 0) + count
    return rows


def http(port, target, method="GET", headers=None, raw=None):
    """(status, body) of one request, by hand so that anything can be sent."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        if raw is None:
            hdrs = "".join(f"{k}: {v}\r\n" for k, v in (headers or {"Host": f"127.0.0.1:{port}"}).items())
            raw = f"{method} {target} HTTP/1.1\r\n{hdrs}\r\n".encode()
        s.sendall(raw)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body.decode(errors="replace")


def workload_counts(text):
    serial = {os.path.basename(line.split()[1]): line.split()[2]
              for line in text.splitlines() if line.startswith("serial ")}
    counts = {}
    for io in vm.parse_workload(text)["ios"]:
        k = (serial.get(io["dev"], io["dev"]), io["op"])
        counts[k] = counts.get(k, 0) + 1
    return counts


def check_report_page(t, st, wd, b, counts):
    """`blkin report --html` against `blkin report --json --buckets`."""
    path = os.path.join(wd, "report.html")
    page = None
    deadline = time.monotonic() + 60
    while True:
        r = st.cli("report", VM_NAME, "--html", path)
        rep = json.loads(st.cli("report", VM_NAME, "--window", "1h", "--json", "--buckets").stdout)
        data = json.loads(re.search(r'<script id="blkin-data" type="application/json">(.*?)</script>',
                                    open(path).read(), re.S).group(1))
        same = [(d["report"]["disk"], [(o["op"], o["count"]) for o in d["report"]["ops"]]) for d in data["disks"]] == \
               [(d["disk"], [(o["op"], o["count"]) for o in d["ops"]]) for d in rep["disks"]]
        if same or time.monotonic() > deadline:
            break
        time.sleep(1)
    t.ok(same, "the page's data and a report taken beside it count the same requests")
    size = os.path.getsize(path)
    t.ok(r.returncode == 0 and size < 400 * 1024, f"blkin report --html wrote the page ({size} bytes)",
         detail=r.stdout + r.stderr)
    page = b.new_page()
    page.offline(True)
    page.navigate("file://" + path)
    shown = page.wait_for("document.querySelectorAll('section.disk').length && " + READ_PAGE, timeout=20)
    t.eq(page.errors(), [], "the report page loads with no console error")
    t.eq([u for u in page.requests() if not u.startswith("file://")], [],
         "the report page fetches nothing: it is self-contained")
    t.eq(sorted(shown or {}), ["vda", "vdb"], "the page shows both disks")
    by_disk = {d["disk"]: d for d in rep["disks"]}
    serial = {"vda": "view-a", "vdb": "view-b"}
    for disk in ("vda", "vdb"):
        got, want = (shown or {}).get(disk, {"ops": {}}), by_disk[disk]
        want_ops = {o["op"]: o for o in want["ops"]}
        t.eq(sorted(got["ops"]), sorted(want_ops), f"{disk}: the page shows the report's ops")
        for op in ("read", "write"):
            # (all requests, the guest kernel's own partition reads too; the
            # total phase is the guest's requests)
            t.eq(got["ops"].get(op, {}).get("count"), want_ops.get(op, {}).get("count"),
                 f"{disk}: the page's {op} count is the report's")
            t.eq(got["ops"].get(op, {}).get("totals"), counts.get((serial[disk], op)),
                 f"{disk}: the page's {op} requests with a total are the workload's")
        t.ok({"flush", "discard"} <= set(got["ops"]), f"{disk}: flushes and discards are shown")
        for name, o in want_ops.items():
            g = got["ops"].get(name, {})
            t.eq(g.get("phases"), [p["phase"] for p in o["phases"] if p["phase"] not in ("total", "in_qemu", "span_alone")]
                 + [p for p in ("total", "in_qemu", "span_alone") if p in {x["phase"] for x in o["phases"]}],
                 f"{disk} {name}: every phase of the report is in the page's table, in order")
            t.ok(g.get("cells") == report_rows(o) and g.get("rects"),
                 f"{disk} {name}: the heatmap's cells add up to the report's buckets, row by row",
                 detail=f"page {g.get('cells')} ({g.get('rects')} cells), report {report_rows(o)}")
        phases = set(got["ops"].get("read", {}).get("phases", []))
        # (guest_queue only where the guest's block layer queued: not always)
        need = {"guest_to_device", "device", "qemu", "device_completion", "device_to_guest", "total", "in_qemu"}
        t.ok(need <= phases, f"{disk}: reads show the phases of a virtio-blk disk", detail=sorted(phases))
        t.eq("backend" in {p for o in got["ops"].values() for p in o["phases"]}, disk == "vdb",
             f"{disk}: backend time only where a blkin node is under qcow2")
        t.ok(got["ops"].get("read", {}).get("stack", 0) >= 2 * 5,
             f"{disk}: where the time goes, as bars of phases at p50 and p99")
        t.ok(got["ops"].get("read", {}).get("lines") == 4, f"{disk}: p50, p90, p99 and max over time")
        errs = [e for e in got["clock_errors"] if e[5]]
        wrong = [e for e in errs if not (e[0] > 0 and "\u00b1" in e[1] and e[2] == 2 and e[3] >= 3 and e[4] >= 2)]
        t.ok(errs and not wrong,
             f"{disk}: the slowest requests are waterfalls, a row per layer and phase, with the guest clock's "
             "error bound", detail=wrong or errs)
    # Kept as artifacts; docs/img has copies of the small ones.
    page.screenshot(os.path.join(wd, "report.png"))
    page.screenshot(os.path.join(wd, "report-disk.png"), selector="section.disk[data-disk='vdb']")
    page.screenshot(os.path.join(wd, "report-op.png"), selector="section.disk[data-disk='vdb'] div.op[data-op='read']")
    page.screenshot(os.path.join(wd, "waterfall.png"), selector="section.disk[data-disk='vdb'] .req")
    return path


def check_hostile(t, st, port):
    cases = [
        ("/view.json?vm=nosuchvm", None, 404, "no VM"),
        ("/view.json?window=5m", None, 400, "window"),
        ("/view.json?vm=%zz", None, 400, "percent"),
        ("/view.json?vm=" + "a" * 300, None, 400, "255"),
        ("/view.json?color=red", None, 400, "unknown parameter"),
        ("/view.json?vm=a&vm=b", None, 400, "twice"),
        ("/?vm=%00", None, 400, "printable"),
        ("/view.json", {"Host": "blkin.example.org"}, 400, "DNS rebinding"),
        ("/view.json", {"Host": "127.0.0.1", "host": "127.0.0.2"}, 400, "more than one Host"),
        ("/nothing-here", None, 404, "not found"),
        ("/view.json/../metrics", None, 404, "not found"),
    ]
    for target, headers, code, why in cases:
        st_, body = http(port, target, headers=headers)
        t.ok(st_ == code and why in body, f"GET {target[:40]} {headers or ''}: {code}, saying why",
             detail=f"{st_} {body[:200]}")
    st_, body = http(port, "/view.json", method="POST")
    t.ok(st_ == 400 and "only GET" in body, "POST to the view: 400", detail=f"{st_} {body}")
    # (exactly the 8 KiB hostd reads: nothing left unread to reset the answer)
    st_, body = http(port, None, raw=b"GET /view.json?" + b"x" * (8192 - 15))
    t.eq(st_, 400, "a request head over 8 KiB: 400")
    # Idle and trickling peers on the view's port cannot stall hostd.
    idle = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(8)]
    idle[0].sendall(b"GET /view.js")
    t0 = time.monotonic()
    st.cli("status")
    code, _ = http(port, f"/view.json?vm={VM_NAME}")
    dt = time.monotonic() - t0
    t.ok(code == 200 and dt < 2.0, "with idle and trickling peers, status and the view still answer at once",
         detail=f"{dt:.2f} s")
    for c in idle:
        c.close()


def check_live_page(t, st, wd, b, port, go, g_results):
    url = f"http://127.0.0.1:{port}/?vm={VM_NAME}&window=1m"
    page = b.new_page()
    page.navigate(url)
    ok = page.wait_for("Number(document.body.getAttribute('data-updates')) >= 1", timeout=20)
    t.ok(ok, "the live page draws the view it fetched")
    before = page.evaluate(READ_PAGE)
    page.evaluate("window.__notReloaded = true")
    u0 = int(page.evaluate("document.body.getAttribute('data-updates')"))
    t0 = time.monotonic()
    page.wait_for("Number(document.body.getAttribute('data-updates')) >= %d" % (u0 + 4), timeout=30)
    u1 = int(page.evaluate("document.body.getAttribute('data-updates')"))
    dt = time.monotonic() - t0
    t.ok(u1 - u0 >= 4 and dt / (u1 - u0) <= 2.0,
         "the live page updates at least every 2 s", detail=f"{u1 - u0} updates in {dt:.1f} s")
    # The second workload, now that the page is open.
    go.sendall(b"go\n")
    joined0 = {d: v["counters"].get("matched", 0) for d, v in before.items()}
    finished = st.wait_until(lambda: "phase-b-done" in g_results(), timeout=180, interval=1)
    t.ok(finished, "the guest ran its second workload")

    def changed():
        # Everything joined: the page shows what the report says, and more
        # than before the second workload.
        rep = {d["disk"]: d["counters"] for d in st.report(VM_NAME, window="1h")["disks"]}
        if any(c["pending"] for c in rep.values()):
            return None
        now = page.evaluate(READ_PAGE)
        grown = all(now[d]["counters"].get("matched", 0) > joined0[d] and
                    now[d]["counters"].get("matched") == rep[d]["matched"] for d in ("vda", "vdb"))
        cells = sum(o["rects"] for d in now.values() for o in d["ops"].values())
        return now if grown and cells else None

    after = None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not after:
        after = changed()
        if not after:
            b.pump(1)
    t.ok(after, "the live page shows the second workload's requests as they are joined",
         detail={d: v["counters"] for d, v in (after or page.evaluate(READ_PAGE)).items()})
    t.ok(page.evaluate("window.__notReloaded === true"), "... without reloading")
    t.eq(page.errors(), [], "the live page has no console error")
    page.screenshot(os.path.join(wd, "live.png"))
    page.screenshot(os.path.join(wd, "live-op.png"), selector="section.disk[data-disk='vda'] div.op")
    return after


# ---- Grafana -------------------------------------------------------------

# Grafana's dashboard JSON model (docs: "JSON model" of a dashboard, schema
# version 39): the members a dashboard, a panel, a target and a template
# variable have, and their types.
DASHBOARD_KEYS = {"id": (type(None), int), "uid": str, "title": str, "tags": list, "timezone": str,
                  "editable": bool, "graphTooltip": int, "time": dict, "timepicker": dict,
                  "templating": dict, "annotations": dict, "refresh": str, "schemaVersion": int,
                  "version": int, "panels": list, "links": list}
PANEL_TYPES = {"timeseries", "heatmap", "stat", "bargauge", "gauge", "table", "text", "row",
               "barchart", "piechart", "state-timeline", "status-history", "histogram", "logs"}
VARIABLE_TYPES = {"query", "custom", "constant", "datasource", "interval", "textbox", "adhoc"}
SUBSTITUTE = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "5m", "$domain": ".*",
              "$disk": ".*", "$op": ".*"}


def check_dashboard_model(t, dash):
    bad = [f"{k}: {type(dash.get(k)).__name__}" for k, ty in DASHBOARD_KEYS.items()
           if not isinstance(dash.get(k), ty)]
    t.eq(bad, [], "the dashboard has the model's members, of the model's types")
    t.ok(dash["uid"] and len(dash["uid"]) <= 40 and re.fullmatch(r"[A-Za-z0-9_-]+", dash["uid"]),
         "its uid is at most 40 characters of [A-Za-z0-9_-]")
    t.ok(0 <= dash["graphTooltip"] <= 2 and dash["time"].get("from") and dash["time"].get("to"),
         "graphTooltip and time are valid")
    names = set()
    problems = []
    for v in dash["templating"]["list"]:
        if v.get("type") not in VARIABLE_TYPES or not isinstance(v.get("name"), str):
            problems.append(v)
        names.add(v["name"])
        if v["type"] == "query" and not (v.get("datasource") and v.get("definition")):
            problems.append(v["name"])
    t.eq(problems, [], "template variables are of Grafana's types, query variables with their datasource")
    rects, ids, problems, targets = [], set(), [], []
    for p in dash["panels"]:
        gp = p.get("gridPos", {})
        if not all(isinstance(gp.get(k), int) for k in "xywh") or gp["x"] < 0 or gp["w"] < 1 or \
                gp["x"] + gp["w"] > 24 or gp["h"] < 1 or gp["y"] < 0:
            problems.append(f"{p.get('title')}: gridPos {gp}")
        if p.get("type") not in PANEL_TYPES or not isinstance(p.get("title"), str):
            problems.append(f"{p.get('title')}: type {p.get('type')}")
        if p.get("id") in ids or not isinstance(p.get("id"), int):
            problems.append(f"{p.get('title')}: id {p.get('id')}")
        ids.add(p.get("id"))
        for r in rects:
            if gp and r[0] < gp["x"] + gp["w"] and gp["x"] < r[0] + r[2] and \
                    r[1] < gp["y"] + gp["h"] and gp["y"] < r[1] + r[3]:
                problems.append(f"{p.get('title')} overlaps another panel")
        rects.append((gp.get("x", 0), gp.get("y", 0), gp.get("w", 0), gp.get("h", 0)))
        if p["type"] == "row":
            if not isinstance(p.get("panels"), list) or not isinstance(p.get("collapsed"), bool):
                problems.append(f"{p['title']}: a row needs panels and collapsed")
            continue
        ds = p.get("datasource", {})
        if ds.get("type") != "prometheus" or ds.get("uid") != "${datasource}":
            problems.append(f"{p['title']}: datasource {ds}")
        if not isinstance(p.get("fieldConfig", {}).get("defaults"), dict) or \
                not isinstance(p.get("fieldConfig", {}).get("overrides"), list) or \
                not isinstance(p.get("options"), dict):
            problems.append(f"{p['title']}: fieldConfig/options")
        refs = [x.get("refId") for x in p.get("targets", [])]
        if not refs or len(set(refs)) != len(refs) or not all(isinstance(x.get("expr"), str) for x in p["targets"]):
            problems.append(f"{p['title']}: targets {refs}")
        for x in p.get("targets", []):
            for var in re.findall(r"\$\{?(\w+)", x["expr"]):
                if not var.startswith("__") and var not in names:
                    problems.append(f"{p['title']}: ${var} is no variable")
            targets.append((p["title"], x["expr"]))
    t.eq(problems, [], "panels follow the model: gridPos on the 24-column grid without overlaps, unique ids, "
         "known types, a Prometheus datasource, targets with unique refIds")
    for v in dash["templating"]["list"]:
        if v["type"] == "query":
            targets.append(("variable " + v["name"], v["definition"]))
    return targets


def scrape(port):
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    labels = {}
    for line in text.splitlines():
        m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? ", line)
        if m and not line.startswith("#"):
            labels.setdefault(m.group(1), set()).update(re.findall(r'(\w+)="', m.group(3) or ""))
    return labels


def promql(pport, q):
    url = f"http://127.0.0.1:{pport}/api/v1/query?" + urllib.parse.urlencode({"query": q})
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return json.load(r)
    except urllib.error.HTTPError as e:
        return json.load(e)


def check_grafana(t, wd, mport):
    dash = json.load(open(os.path.join(SRC, "grafana", "blkin-dashboard.json")))
    targets = check_dashboard_model(t, dash)
    exported = scrape(mport)
    missing = []
    for title, expr in targets:
        e = expr
        for k, v in SUBSTITUTE.items():
            e = e.replace(k, v)
        for name in set(re.findall(r"\bblkin_[a-z0-9_]+", e)):
            if name not in exported:
                missing.append(f"{title}: {name}")
                continue
            for sel in re.findall(name + r"\{([^}]*)\}", e):
                for label in re.findall(r'(\w+)\s*(?:=~|!~|!=|=)', sel):
                    if label not in exported[name]:
                        missing.append(f"{title}: {name} has no label {label}")
            for by in re.findall(r"by \(([^)]*)\)", e):
                for label in (x.strip() for x in by.split(",")):
                    if label and label != "le" and label not in exported[name]:
                        missing.append(f"{title}: {name} has no label {label} to sum by")
    t.eq(missing, [], f"every metric the dashboard's {len(targets)} expressions name is in a real hostd's "
         "/metrics, with the labels they use")
    # A real Prometheus evaluates each of them.
    pport, = free_ports(1)
    with open(os.path.join(wd, "prometheus.yml"), "w") as f:
        f.write(f"global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: blkin\n"
                f"    static_configs:\n      - targets: ['127.0.0.1:{mport}']\n")
    prom = subprocess.Popen(["timeout", "-k", "5", "300", "prometheus",
                             "--config.file=" + os.path.join(wd, "prometheus.yml"),
                             "--storage.tsdb.path=" + os.path.join(wd, "tsdb"),
                             f"--web.listen-address=127.0.0.1:{pport}"],
                            stdout=subprocess.DEVNULL, stderr=open(os.path.join(wd, "prometheus.log"), "w"))
    try:
        def scraped():
            try:
                r = promql(pport, "count(blkin_requests_total)")
                return r.get("data", {}).get("result")
            except OSError:
                return None
        end = time.monotonic() + 60
        while not scraped() and time.monotonic() < end:
            time.sleep(0.5)
        time.sleep(4)  # a few samples, so rates have two points
        errors, empty = [], []
        for title, expr in targets:
            e = expr
            for k, v in SUBSTITUTE.items():
                e = e.replace(k, v)
            if title.startswith("variable "):
                m = re.match(r"label_values\((.*), (\w+)\)$", e)
                e = f"count by ({m.group(2)}) ({m.group(1)})" if m else e
            r = promql(pport, e)
            if r.get("status") != "success":
                errors.append(f"{title}: {r.get('error')}")
            elif not r["data"]["result"]:
                empty.append(f"{title}: {e}")
        t.eq(errors, [], "Prometheus evaluates every expression of the dashboard without error")
        t.eq(empty, [], "and every one has data from this hostd")
    finally:
        prom.terminate()
        try:
            prom.wait(timeout=30)
        except subprocess.TimeoutExpired:
            prom.kill()
            prom.wait()


def main():
    t = Tap()
    if not t.ok(browser.available(), f"chromium is at {browser.CHROMIUM} (scripts/setup.sh installs it)"):
        t.done()
    shutil.rmtree(WORK, ignore_errors=True)
    os.makedirs(WORK)
    wd = WORK
    mport, = free_ports(1)
    go_sock = os.path.join(wd, "go.sock")
    disks = [vm.Disk(os.path.join(wd, "a.raw"), "view-a", size="64M", blkin={"id": f"{VM_NAME}/vda"},
                     filter_json=UNMAP, proto_opts=UNMAP, fmt_opts=UNMAP),
             StackedDisk(os.path.join(wd, "b.qcow2"), "view-b", fmt="qcow2", size="64M",
                         blkin={"id": f"{VM_NAME}/vdb", **UNMAP})]
    extra = ["-chardev", f"socket,id=go0,path={go_sock},server=on,wait=off",
             "-device", f"virtserialport,bus=vser0.0,chardev=go0,name={GO_PORT}"]
    ports = " ".join([vm.RESULTS_PORT, vm.AGENT_PORT, GO_PORT])
    with HostStack(wd, hold_ms=1500, hostd_args=["--metrics", f"127.0.0.1:{mport}"]) as st, \
            vm.GuestVM(wd, disks, GUEST, timeout=500, cpus=2, qemu_args=extra,
                       guest_env={"BLKIN_PORT_NAMES": ports},
                       extra_files={"/bin/blkin-guest-agent": vm.agent_binary()}) as g, \
            browser.Browser(wd) as b:
        g.start()
        st.register(VM_NAME, g.agent_socket, [f"vda=view-a={VM_NAME}/vda", f"vdb=view-b={VM_NAME}/vdb"])
        done = st.wait_until(lambda: "phase-a-done" in g.results(), timeout=300, interval=1)
        t.ok(done and "phase-a-done 0" in g.results(), "the guest ran its first workload",
             detail=g.console()[-2000:] if not done else "")
        if not done:
            t.done()
            return
        counts = workload_counts(g.results())
        want = sum(v for (s, op), v in counts.items() if op in ("read", "write"))

        def settled():
            r = st.report(VM_NAME, window="1h")
            n = sum(o["count"] for d in r["disks"] for o in d["ops"] if o["op"] in ("read", "write"))
            return n >= want and all(d["counters"]["pending"] == 0 for d in r["disks"])
        t.ok(st.wait_until(settled, timeout=60), "hostd joined the first workload's requests")
        go = socket.socket(socket.AF_UNIX)
        go.connect(go_sock)

        t.run(check_report_page, st, wd, b, counts)
        t.run(check_hostile, st, mport)
        t.run(check_live_page, st, wd, b, mport, go, g.results)
        t.run(check_grafana, wd, mport)
        res = g.wait(timeout=120)
        t.ok(res is not None and res.ok, "the guest's workloads and agent ran to the end",
             detail=res.console[-2000:] if res else "")
        go.close()
    print(f"# screenshots in {wd}: report.png, report-disk.png, report-op.png, waterfall.png, live.png, live-op.png")
    t.done()


if __name__ == "__main__":
    main()
