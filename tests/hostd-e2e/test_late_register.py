#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""A VM registered with hostd seconds after its guest did I/O (a migration's
destination, a registration hook or a discovery scan that came late): the
filter's spans of those requests wait in hostd for their disk (`early`),
the agent's records of them wait in the agent's queue for a host end. Once
registered, the agent's backlog comes first; the join must hold those spans
until it has come (hostd/ingest/agent-conn.c, catching up), not give them up
as hold + keep time old. Every request of the workload is joined."""
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
echo "serial $(blkin_disk lr-a) lr-a" >"$BLKIN_RESULTS"
echo "wl-start" >"$BLKIN_RESULTS"
blkin-workload --seed 31 -n 150 -q 1,8 -o "$BLKIN_RESULTS" "$(blkin_disk lr-a)"
rc=$?
echo "wl-done" >"$BLKIN_RESULTS"
# The guest goes on with I/O on its other disk (so the trace's time moves
# on, as on a busy host); the agent sends its backlog once a host end
# connects.
i=0
while [ $i -lt 400 ]; do
    blkin-workload --seed $((40 + i)) -n 40 -q 4 -o /dev/null "$(blkin_disk lr-b)" || break
    i=$((i + 1))
done
kill -TERM $AGENT
wait $AGENT
exit $rc
"""
# hostd keeps spans of an unregistered disk this long (HOSTD_EARLY_KEEP_NS).
EARLY_KEEP_S = 10


def main():
    t = Tap()
    wd = os.path.join(BUILD, "tests", "hostd-e2e", "work", "late-register")
    shutil.rmtree(wd, ignore_errors=True)
    os.makedirs(wd)
    disks = [vm.Disk(os.path.join(wd, "a.raw"), "lr-a", size="32M", blkin={"id": "lr/vda"}),
             vm.Disk(os.path.join(wd, "b.raw"), "lr-b", size="32M", blkin={"id": "lr/vdb"})]
    hold_s = 1.5
    with HostStack(wd, hold_ms=int(hold_s * 1000)) as st, \
            vm.GuestVM(wd, disks, GUEST, timeout=240, cpus=2,
                       extra_files={"/bin/blkin-guest-agent": vm.agent_binary()}) as g:
        g.start()
        started = st.wait_until(lambda: "wl-start" in g.results(), timeout=150, interval=0.1)
        t0 = time.monotonic()
        done = st.wait_until(lambda: "wl-done" in g.results(), timeout=60, interval=0.1)
        t1 = time.monotonic()
        t.ok(started and done, f"the guest ran its workload before any registration "
             f"({t1 - t0:.1f} s)")
        # Registered when the newest of those requests is older than the
        # hold and the time a span waits for its guest record (2 s) together,
        # while the oldest are still kept as early spans.
        reg_at = t1 + hold_s + 2 + 0.5
        if reg_at - t0 > EARLY_KEEP_S + hold_s - 1.5:
            t.skip("late-register", f"the workload took {t1 - t0:.1f} s: its first spans "
                   "would leave hostd's early spans before the registration")
            t.done()
            return
        time.sleep(max(0, reg_at - time.monotonic()))
        # QEMU gets no CPU across the registration (SIGSTOP: the guest's
        # clock goes on, unlike a VM paused by QMP `stop`, whose guest time
        # stands still): the agent answers the new host end only a second
        # later, while hostd already holds the early spans.
        os.kill(g.qemu_pid, signal.SIGSTOP)
        try:
            st.register("lr", g.agent_socket, ["vda=lr-a=lr/vda", "vdb=lr-b=lr/vdb"])
            time.sleep(1)
        finally:
            os.kill(g.qemu_pid, signal.SIGCONT)
        want = vm.reads_writes(g.results())
        total = sum(want.values())

        def disk():
            rep = st.report("lr", window="1h")
            return next((d for d in (rep or {}).get("disks", []) if d["disk"] == "vda"), None)

        def joined():
            d = disk()
            return d and d["counters"]["matched"] >= total and d
        d = st.wait_until(joined, timeout=60, interval=0.5)
        d = d or disk()
        c = d["counters"] if d else {}
        t.ok(d and c["matched"] >= total,
             f"all {total} requests, done {reg_at - t1:.1f} s or more before the registration, "
             "are joined: the agent's backlog met the early spans",
             detail=c)
        t.ok(d and c.get("unmatched_guest", 1) == 0,
             "no guest record of them is left without its span", detail=c)
        t.ok(d and d["agent"]["connected"] and d["agent"]["waiting_for_clock"] == 0,
             "the agent's channel is up, nothing waits for the clock", detail=d and d["agent"])
    t.done()


if __name__ == "__main__":
    main()
