#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""lttng-sessiond and its consumerd killed (SIGKILL) while a guest does I/O
on a traced disk, then brought back:

1. baseline: the workload with everything running;
2. the session daemon and its consumer daemon(s) killed just before the
   same workload: the guest's I/O goes on at the same rate (the tracer
   never waits for LTTng) and without errors; hostd loses its live input
   and says so (`blkin status`: state "lost");
3. sessiond started again and the live session recreated: hostd reads it
   again by itself, joins the new requests, and `blkin status` reports the
   loss, the reconnection and how long it was without the trace.

The machine's own sessiond is never touched: the whole test runs in a
private mount namespace (tests/lib/node.py) with its own sessiond.
The guest's data is checked by the workload itself (it verifies what it
reads back)."""
import os
import shutil
import signal
import time
import urllib.request

import node

ME = node.isolate()  # before anything starts LTTng or threads

import phases  # noqa: E402
import vm  # noqa: E402
from stack import BUILD, HostStack, free_ports  # noqa: E402
from tap import Tap  # noqa: E402

N = 1500
# The host acts between phases: kills LTTng before b, brings it back and
# waits for hostd to read it again before c.
GUEST = phases.guest_script("lk-a", seed=5, n=N, pauses={"b": 4, "c": 25})


def counters(st):
    return st.report("lk", window="1h")["disks"][0]["counters"]


def main():
    t = Tap()
    wd = os.path.join(BUILD, "tests", "faults", "work", "lttng-killed")
    shutil.rmtree(wd, ignore_errors=True)
    os.makedirs(wd)
    disks = [vm.Disk(os.path.join(wd, "a.raw"), "lk-a", size="64M", blkin={"id": "lk/vda"})]
    port = free_ports(1)[0]
    with HostStack(wd, hold_ms=1500, hostd_args=["--metrics", f"127.0.0.1:{port}"]) as st, \
            vm.GuestVM(wd, disks, GUEST, timeout=480, cpus=2, accel="tcg",
                       extra_files={"/bin/blkin-guest-agent": vm.agent_binary()}) as g:
        g.start()
        st.register("lk", g.agent_socket, ["vda=lk-a=lk/vda"])

        def wait_marker(m, timeout=240):
            return st.wait_until(lambda: m in g.results(), timeout=timeout, interval=0.1)

        t.ok(wait_marker("phase-a-done"), "baseline workload done")
        a_ios = [i for i in phases.phase_records(g.results(), "a")["ios"]
                 if i["op"] in ("read", "write")]
        got_a = st.wait_until(lambda: phases.rw_count(st.report("lk", window="1h")) >= len(a_ios),
                              timeout=60) and phases.rw_count(st.report("lk", window="1h"))
        t.ok(got_a, "baseline: hostd joins the guest's requests",
             detail=f"reported {phases.rw_count(st.report('lk', window='1h'))} of {len(a_ios)}")
        c_a = counters(st)
        s0 = st.status()
        t.eq(s0.get("trace", {}).get("state"), "connected", "status: the trace input is connected")

        # Phase b: LTTng's daemons die before the guest starts (it sleeps 4 s).
        sessiond = ME.sessiond_pids()
        consumerd = ME.consumerd_pids()
        t.ok(sessiond and consumerd, "a private sessiond and consumerd record the session",
             detail=(sessiond, consumerd))
        killed_at = time.monotonic()
        ME.kill_lttng(signal.SIGKILL)
        t.ok(not ME.sessiond_pids() and not ME.consumerd_pids(),
             "sessiond and consumerd are gone", detail=(ME.sessiond_pids(), ME.consumerd_pids()))
        lost = st.wait_until(lambda: st.status()["trace"]["state"] == "lost", timeout=30)
        t.ok(lost, "status: hostd reports the trace input lost", detail=st.status().get("trace"))
        t.ok(wait_marker("phase-b-done"), "the guest's workload finished without LTTng")
        b_ios = sum(1 for i in phases.phase_records(g.results(), "b")["ios"]
                    if i["op"] in ("read", "write"))
        # The agent's records of the gap arrive; their spans never will.
        c_b = st.wait_until(lambda: (lambda c: c if c["unmatched_guest"] - c_a["unmatched_guest"]
                                     >= b_ios else None)(counters(st)), timeout=30) or counters(st)
        t.diag(f"counters after the gap {c_b}")
        t.ok(c_b["unmatched_guest"] - c_a["unmatched_guest"] >= b_ios
             and c_b["matched"] - c_a["matched"] < b_ios // 2,
             "the report shows the gap: the requests made without LTTng have no span",
             detail=f"unmatched +{c_b['unmatched_guest'] - c_a['unmatched_guest']}, "
                    f"matched +{c_b['matched'] - c_a['matched']}, {b_ios} issued")

        # Phase c: LTTng is back (the guest sleeps 25 s before it).
        down_for = time.monotonic() - killed_at
        st.recreate_session()
        back = st.wait_until(lambda: st.status()["trace"]["state"] == "connected", timeout=40)
        s1 = st.status()
        t.ok(back, "status: hostd reads the recreated session again by itself", detail=s1.get("trace"))
        tr = s1["trace"]
        t.diag(f"trace {tr}; LTTng was down {down_for:.1f} s")
        t.ok(tr["losses"] >= 1 and tr["reconnects"] >= 1,
             "status: the loss and the reconnection are counted", detail=tr)
        t.ok(down_for * 0.5 <= tr["down_s"] <= down_for + 10,
             "status: the time without the trace is about how long LTTng was away",
             detail=f"down_s {tr['down_s']} vs {down_for:.1f} s")
        m = _metrics(port)
        t.ok("blkin_trace_input_up 1" in m and "blkin_trace_input_losses_total 1" in m
             and "blkin_trace_input_reconnects_total 1" in m,
             "/metrics: the trace input is up, lost once, reconnected once",
             detail="\n".join(l for l in m.splitlines() if "trace_input" in l))
        t.ok(wait_marker("phase-c-done"), "the guest's workload finished after LTTng came back")
        res = g.wait()
        t.ok(res.ok, "the guest's script succeeded (workload verified its data)",
             detail=res.console[-3000:])
        text = g.results()
        rec = {p: phases.phase_records(text, p) for p in "abc"}
        for p in "abc":
            t.ok(not rec[p]["mismatches"] and not rec[p]["fatal"] and len(rec[p]["ios"]) > 0,
                 f"phase {p}: the workload completed and read back what it wrote",
                 detail=(rec[p]["mismatches"][:3], rec[p]["fatal"]))
        base = phases.elapsed_ns(rec["a"])
        e = phases.elapsed_ns(rec["b"])
        t.diag(f"phase b: {e / 1e6:.0f} ms vs baseline {base / 1e6:.0f} ms")
        # TCG timing is noisy; waiting on a dead consumer would be a stall.
        t.ok(e <= base * 1.5 + 500e6, "LTTng killed: the guest's I/O rate is unaffected",
             detail=f"{e / 1e6:.0f} ms vs {base / 1e6:.0f} ms")
        c_ios = sum(1 for i in rec["c"]["ios"] if i["op"] in ("read", "write"))
        got_c = st.wait_until(lambda: counters(st)["matched"] - c_b["matched"] >= c_ios, timeout=60)
        t.ok(got_c, "hostd joins the requests made after LTTng came back (guest record + span)",
             detail=f"matched +{counters(st)['matched'] - c_b['matched']}, {c_ios} issued")
        t.ok(st.hostd.poll() is None, "hostd ran on through it all")
    t.done()


def _metrics(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as r:
        return r.read().decode()


if __name__ == "__main__":
    main()
