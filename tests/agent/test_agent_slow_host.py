#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""A host end that stops reading (connected but stuck) must not slow the guest.

The host end is stopped (SIGSTOP) right after the agent's greeting, while
the guest runs a long workload. The agent's writes back up (QEMU throttles the
port, the guest's queue fills, writes return EAGAIN). It keeps buffering
within its bound, then drops and counts. The workload completes without
errors or stalls. After the host end resumes, everything the agent kept
arrives, and the drop count matches exactly the sequence numbers the host
never saw."""
import os
import signal
import time

import agenttest as at
import vm
from tap import Tap

GUEST = r"""
start_agent --buffer-records 256 --flush-ms 2 || exit 1
wait_log "host connected" 1 300 || exit 3
mark connected
# Give the host time to stop its reader.
sleep 0.5
blkin-workload --seed 5 --count 40000 --qd 16 -o "$BLKIN_RESULTS" "$(blkin_disk slow-a)" || exit 2
mark workload
# After the host end resumes: a few more requests, so the host sees the gap.
sleep 1.5
blkin-workload --seed 6 --count 50 --qd 1 -o /dev/null "$(blkin_disk slow-a)" || exit 4
sleep 1
stop_agent
"""


def test_slow_host(t):
    work = at.workdir("slow-host")
    disks = [vm.Disk(os.path.join(work, "a.img"), "slow-a", size="64M")]
    with at.guest_vm(work, disks, GUEST, timeout=150) as g:
        g.start()
        d = at.Dump(g.agent_socket, os.path.join(work, "dump.jsonl"), probe_ms=0,
                    requests=True)
        ok = at.wait_for(lambda: at.of_type(d.events(), "devmap"), 60)
        t.ok(ok, "agent greeted the host")
        d.proc.send_signal(signal.SIGSTOP)
        stopped_at = time.monotonic()
        t.ok(at.wait_for(lambda: "mark workload" in g.results(), 100),
             "workload finished while the host end was stopped")
        stuck = time.monotonic() - stopped_at
        d.proc.send_signal(signal.SIGCONT)
        res = g.wait()
        time.sleep(0.3)
        ev = d.stop()
        text = g.results()
    t.diag(f"host end stopped for {stuck:.1f} s")
    t.ok(res.ok, "guest script exited 0", detail=f"{res}\n{res.console[-3000:]}")
    t.eq(at.agent_exit(text), 0, "agent exits 0 on SIGTERM")
    wl = vm.parse_workload(at.split_marks(text).get("workload", ""))
    s = wl["summary"] or {}
    t.ok(s.get("errors") == 0 and len(wl["ios"]) == 40000,
         "workload completed its 40000 requests without errors", detail=s)
    if wl["ios"]:
        worst = max(i["end"] - i["start"] for i in wl["ios"]) / 1e6
        t.ok(worst < 1000, f"no request stalled (slowest {worst:.1f} ms)")
    stats = at.agent_stats(text)
    t.diag(f"agent stats: {stats}")
    reqs = at.of_type(ev, "request")
    drops = at.of_type(ev, "drops")
    seqs = {r["seq"] for r in reqs}
    t.ok(stats and stats["dropped"] > 0,
         "the agent dropped (rather than blocked) once its buffer was full", detail=stats)
    t.ok(drops and drops[-1]["dropped_records"] == stats["dropped"],
         "the drop count reached the host", detail=drops[-1:])
    gaps = sum(x["got"] - x["expected"] for x in at.of_type(ev, "gap"))
    t.eq(gaps, stats["dropped"] if stats else None,
         "the host's sequence gaps are exactly the reported drops")
    t.eq(len(seqs) + (stats["dropped"] if stats else 0), stats["records"] if stats else None,
         "every request was delivered or counted as dropped")
    t.eq(at.of_type(ev, "invalid"), [], "nothing the agent sent was refused")


def main():
    t = Tap()
    t.run(test_slow_host)
    t.done()


if __name__ == "__main__":
    main()
