#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""blkin-hostd killed (SIGKILL) and restarted in the middle of a guest's run:
the history written before the kill is kept, the live join resumes for what
the guest does afterwards, and the history counts every request exactly once.

The restarted hostd reads the live session from its end (lttng-live), so it
has not seen the filter's disk map, emitted when QEMU opened the disk: it
learns it from the map's next periodic re-emission (map-interval, 10 s) or
the disk's closing event, and the spans that come before wait for it
instead of being dropped (hostd/model.c, `unmapped`)."""
import json
import os
import signal
import shutil
import time

import vm
from stack import BUILD, HostStack
from tap import Tap

GUEST = """
blkin-guest-agent 2>/tmp/agent.log &
AGENT=$!
sleep 1
echo "serial $(blkin_disk rs-a) rs-a" >"$BLKIN_RESULTS"
blkin-workload --seed 11 -n 120 -q 1,16 -o "$BLKIN_RESULTS" "$(blkin_disk rs-a)"
echo "phase-a-done" >"$BLKIN_RESULTS"
sleep 30
echo "phase-b-start" >"$BLKIN_RESULTS"
blkin-workload --seed 12 -n 120 -q 1,16 -o "$BLKIN_RESULTS" "$(blkin_disk rs-a)"
rc=$?
sleep 1
kill -TERM $AGENT
wait $AGENT
exit $rc
"""


def counts(report, disk="vda"):
    for d in report["disks"]:
        if d["disk"] == disk:
            return {o["op"]: o["count"] for o in d["ops"]}
    return {}



def main():
    t = Tap()
    wd = os.path.join(BUILD, "tests", "hostd-e2e", "work", "restart")
    shutil.rmtree(wd, ignore_errors=True)
    os.makedirs(wd)
    spec = ["vda=rs-a=rs/vda"]
    disks = [vm.Disk(os.path.join(wd, "a.raw"), "rs-a", size="64M", blkin={"id": "rs/vda"})]
    with HostStack(wd, hold_ms=1500) as st, \
            vm.GuestVM(wd, disks, GUEST, timeout=240, cpus=2,
                       extra_files={"/bin/blkin-guest-agent": vm.agent_binary()}) as g:
        g.start()
        st.register("rs", g.agent_socket, spec)
        ok = st.wait_until(lambda: "phase-a-done" in g.results(), timeout=120, interval=0.2)
        t.ok(ok, "the guest finished its first workload")
        first = vm.reads_writes(g.results())

        def rw(c):
            return sum(c.get(k, 0) for k in ("read", "write"))

        def accounted():
            # (the guest kernel's boot reads, below, are accounted too)
            rep = st.report("rs", window="1h")
            want = sum(first.values()) + rep["disks"][0]["window_counters"]["unmatched_spans"]
            hist = json.loads(st.cli("history", "rs", "--minutes", "10", "--json").stdout)
            return rw(counts(rep)) >= want and rw(counts(hist)) >= want

        # Joined within the hold time, then checkpointed to history (every
        # 10 s): the kill must not lose what hostd had accounted.
        t.ok(st.wait_until(accounted, timeout=40, interval=0.5),
             "the first workload was joined and reached the history before the kill")

        # A span without a guest record is counted only once the hold time
        # has passed; the kill is made when the report has stopped changing
        # for longer than that and the history holds exactly what the report
        # does, so the count taken here is the one the kill keeps.
        last = {}

        def settled():
            rep = st.report("rs", window="1h")
            hist = json.loads(st.cli("history", "rs", "--minutes", "10", "--json").stdout)
            now = (counts(rep), rep["disks"][0]["window_counters"]["unmatched_spans"])
            if now != last.get("state"):
                last.update(state=now, since=time.monotonic())
            last["report"] = rep
            return (time.monotonic() - last["since"] > st.hold_ms / 1000 + 1.5
                    and counts(hist) == now[0])

        t.ok(st.wait_until(settled, timeout=60, interval=0.5),
             "before the kill, the report stood still and the history held the same counts")
        before = last["report"]
        st.stop_hostd(signal.SIGKILL)
        st.start_hostd()
        st.register("rs", g.agent_socket, spec)
        # What the guest does before hostd reads the session again is not
        # hostd's to see (lttng-live starts a reader at the end): the guest
        # waits 30 s (for the settling above and the restart) before its
        # second workload; check that hostd was back.
        back = st.wait_until(lambda: st.status().get("trace", {}).get("state") == "connected",
                             timeout=30, interval=0.1)
        t.ok(back and "phase-b-start" not in g.results(),
             "the restarted hostd read the live session before the second workload began",
             detail=st.status().get("trace"))
        res = g.wait()
        t.ok(res.ok, "the guest's I/O went on while hostd was gone", detail=res.console[-2000:])
        both = vm.reads_writes(g.results())
        second = {k: both[k] - first[k] for k in both}
        st.wait_until(lambda: sum(counts(st.report("rs", window="1h")).get(k, 0)
                                  for k in ("read", "write")) >= sum(second.values()), timeout=30)
        time.sleep(st.hold_ms / 1000 + 2.5)
        after = st.report("rs", window="1h")
        d = after["disks"][0]
        t.eq({k: counts(after).get(k, 0) for k in second}, second,
             "after the restart the live join resumes: the second workload is reported, exactly")
        t.ok(d["counters"]["matched"] >= 0.99 * sum(second.values()),
             "and joined to filter spans", detail=d["counters"])
        # The guest kernel's own boot-time reads (partition scan) come before
        # the agent runs: QEMU-side only, counted as unmatched spans.
        boot = before["disks"][0]["window_counters"]["unmatched_spans"]
        first_seen = dict(first, read=first["read"] + boot)
        t.eq({k: counts(before).get(k, 0) for k in first}, first_seen,
             "before the kill, the first workload was reported (plus boot reads)")
        # A clean stop writes the minute in progress; a new hostd reads all.
        st.stop_hostd()
        st.start_hostd()
        hist = json.loads(st.cli("history", "rs", "--minutes", "10", "--json").stdout)
        got = counts(hist)
        t.eq({k: got.get(k, 0) for k in both}, dict(both, read=both["read"] + boot),
             "history across the kill counts every request of both workloads exactly once")
    t.done()


if __name__ == "__main__":
    main()
