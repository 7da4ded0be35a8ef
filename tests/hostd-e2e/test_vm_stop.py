#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""A short-lived VM (an 8 s guest) stops and is unregistered at once, as the
libvirt hook and the watchers do: its report stays readable for --linger,
marked stopped, with every request the guest made; every one of them reaches
`blkin history`; after --linger the VM is forgotten, and its history stays."""
import json
import os
import shutil
import signal
import time

import vm
from stack import BUILD, HostStack
from tap import Tap

GUEST = """
blkin-guest-agent 2>/tmp/agent.log &
AGENT=$!
sleep 1
blkin-workload --seed 21 -n 300 -q 1,16 -o "$BLKIN_RESULTS" "$(blkin_disk vs-a)"
rc=$?
sleep 1
kill -TERM $AGENT
wait $AGENT
exit $rc
"""
# The second guest: hostd is stopped (SIGSTOP) while it does far more I/O
# than the channel's buffers hold, and it powers off before hostd reads on:
# the records still in the agent are lost with QEMU.
GUEST_LOST = """
blkin-guest-agent 2>/tmp/agent.log &
sleep 2
echo "agent-up" >"$BLKIN_RESULTS"
sleep 4
blkin-workload --seed 22 -n 8000 -q 32 -o "$BLKIN_RESULTS" "$(blkin_disk vz-a)"
"""
LINGER_S = 60
HOLD_MS = 1500


def counts(report):
    d = report["disks"][0] if report.get("disks") else {}
    return {o["op"]: o["count"] for o in d.get("ops", [])}


def main():
    t = Tap()
    wd = os.path.join(BUILD, "tests", "hostd-e2e", "work", "vmstop")
    shutil.rmtree(wd, ignore_errors=True)
    os.makedirs(wd)
    disks = [vm.Disk(os.path.join(wd, "a.raw"), "vs-a", size="64M", blkin={"id": "vs/vda"})]
    with HostStack(wd, hold_ms=HOLD_MS, hostd_args=["--linger", str(LINGER_S)]) as st, \
            vm.GuestVM(wd, disks, GUEST, timeout=240, cpus=2,
                       extra_files={"/bin/blkin-guest-agent": vm.agent_binary()}) as g:
        g.start()
        st.register("vs", g.agent_socket, ["vda=vs-a=vs/vda"])
        res = g.wait()
        t.ok(res.ok, "the guest ran its workload and powered off", detail=res.console[-2000:])
        ios = vm.parse_workload(g.results())["ios"]
        issued = {op: sum(1 for io in ios if io["op"] == op) for op in ("read", "write")}
        stopped_at = time.monotonic()
        # QEMU is gone: unregistered at once, as a hook or a watcher does.
        st.cli("unregister", "vs")
        r = st.cli("report", "vs", "--window", "1h", check=False)
        t.ok(r.returncode == 0 and "stopped" in r.stdout,
             "right after the stop, `blkin report VM` answers and says the VM stopped",
             detail=r.stdout + r.stderr)

        # Settled: every issued request is in, and nothing more comes for a
        # while: 12 s, longer than the filter re-emits its disk map, whose
        # spans that waited for it come late.
        seen = []

        def settled():
            rep = st.report("vs", window="1h")
            got = counts(rep)
            seen.append(got)
            done = all(got.get(k, 0) >= v for k, v in issued.items())
            return rep if done and len(seen) >= 12 and all(x == got for x in seen[-12:]) else None
        rep = st.wait_until(settled, timeout=HOLD_MS / 1000 + 40, interval=1) or \
            st.report("vs", window="1h")
        d = rep["disks"][0]
        boot = d["window_counters"]["unmatched_spans"]
        t.eq(d["vm_state"], "stopped", "the report marks the VM stopped")
        got = counts(rep)
        t.eq({k: got.get(k, 0) for k in issued}, dict(issued, read=issued["read"] + boot),
             "every request of the stopped VM is in its report (and the boot reads)")
        t.ok(d["counters"]["matched"] >= 0.99 * sum(issued.values()),
             "its last requests were joined although it had stopped", detail=d["counters"])

        # The history gets the last minute at the next checkpoint (10 s).
        # Reads and writes: the guest's power-off flushes may come later.
        def rw(c):
            return {k: c.get(k, 0) for k in ("read", "write")}

        def in_history():
            h = json.loads(st.cli("history", "vs", "--minutes", "10", "--json").stdout)
            return h if rw(counts(h)) == rw(got) else None
        hist = st.wait_until(in_history, timeout=30, interval=1)
        t.ok(hist is not None, "every request of the stopped VM reached `blkin history`",
             detail=f"history {counts(json.loads(st.cli('history', 'vs', '--minutes', '10', '--json').stdout))}"
                    f", report {got}")

        # After --linger it is forgotten; its history stays.
        left = LINGER_S - (time.monotonic() - stopped_at)
        gone = st.wait_until(lambda: st.cli("report", "vs", check=False).returncode != 0,
                             timeout=max(left, 0) + 15, interval=1)
        r = st.cli("report", "vs", check=False)
        t.ok(gone and "no VM" in r.stderr and time.monotonic() - stopped_at >= LINGER_S - 1,
             f"after --linger ({LINGER_S} s) the VM is forgotten", detail=r.stderr)
        h = counts(json.loads(st.cli("history", "vs", "--minutes", "10", "--json").stdout))
        # (plus the flushes of the guest's power-off, which came later)
        t.eq(rw(h), rw(got), "and its history stays")

    # QEMU exits while hostd is stopped: the agent's unsent records are
    # lost, and the report shows them as agent gaps, not unmatched spans.
    wd2 = os.path.join(wd, "lost")
    os.makedirs(wd2)
    disks = [vm.Disk(os.path.join(wd2, "a.raw"), "vz-a", size="64M", blkin={"id": "vz/vda"})]
    with HostStack(wd2, hold_ms=HOLD_MS) as st, \
            vm.GuestVM(wd2, disks, GUEST_LOST, timeout=400, cpus=2,
                       extra_files={"/bin/blkin-guest-agent": vm.agent_binary()}) as g:
        g.start()
        st.register("vz", g.agent_socket, ["vda=vz-a=vz/vda"])
        up = st.wait_until(lambda: "agent-up" in g.results(), timeout=120, interval=0.2)
        t.ok(up and st.wait_until(lambda: st.report("vz")["disks"][0]["agent"]["connected"],
                                  timeout=30), "the second guest's agent is connected")
        time.sleep(1)
        st.hostd.send_signal(signal.SIGSTOP)
        try:
            res = g.wait()
        finally:
            st.hostd.send_signal(signal.SIGCONT)
        t.ok(res.ok, "the guest's I/O went on while hostd was stopped, and it powered off",
             detail=res.console[-2000:])
        ios = vm.parse_workload(g.results())["ios"]
        n_ios = sum(1 for io in ios if io["op"] in ("read", "write"))
        st.cli("unregister", "vz")

        def settled():
            d = st.report("vz", window="1h")["disks"][0]
            return d if sum(o["count"] for o in d["ops"] if o["op"] in ("read", "write")) >= n_ios \
                else None
        d = st.wait_until(settled, timeout=HOLD_MS / 1000 + 60)
        time.sleep(HOLD_MS / 1000 + 3)
        d = st.report("vz", window="1h")["disks"][0]
        c = d["counters"]
        t.diag(f"issued {n_ios}, counters {c}")
        t.ok(c["agent_lost_at_close"] > 0 and c["guest_records"] < n_ios,
             "records were lost with QEMU (the scenario happened)", detail=c)
        t.ok(c["agent_gap"] >= c["agent_lost_at_close"],
             "they are counted as gaps in the agent's stream", detail=c)
        t.ok(c["unmatched_span"] <= 64,
             "not as spans the guest never issued (only the kernel's own boot reads)", detail=c)
        t.ok(c["guest_records"] + c["agent_lost_at_close"] >= n_ios,
             "every request is either joined or a counted gap", detail=c)
    t.done()


if __name__ == "__main__":
    main()
