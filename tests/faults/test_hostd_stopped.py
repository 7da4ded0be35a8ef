#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Faults on the host side while a real guest does I/O behind the filter:

1. baseline: a workload with hostd, LTTng and the agent all running;
2. hostd SIGSTOPped for the whole of the same workload: the guest's I/O rate
   is unaffected (tracing never waits for hostd) and, once hostd continues,
   it catches up from LTTng live and the agent channel: every request of
   both phases is reported;
3. the agent channel's socket file removed under QEMU and hostd restarted
   (SIGKILL), so that it must find the socket again and cannot: the guest's
   I/O goes on at the same rate, hostd keeps retrying without a crash, and
   the filter's spans are still counted.

The guest's data is checked by the workload itself (it verifies what it
reads back; mismatches fail it)."""
import os
import shutil
import signal
import time

import phases
import vm
from stack import BUILD, HostStack
from tap import Tap

N = 1500
# The host acts between phases: 3 s to stop hostd, 12 s to let it catch up,
# remove the socket and restart it.
GUEST = phases.guest_script("st-a", seed=3, n=N, pauses={"b": 3, "c": 12})


def main():
    t = Tap()
    wd = os.path.join(BUILD, "tests", "faults", "work", "stopped")
    shutil.rmtree(wd, ignore_errors=True)
    os.makedirs(wd)
    disks = [vm.Disk(os.path.join(wd, "a.raw"), "st-a", size="64M",
                     blkin={"id": "st/vda"})]
    with HostStack(wd, hold_ms=1500) as st, \
            vm.GuestVM(wd, disks, GUEST, timeout=400, cpus=2, accel="tcg",
                       extra_files={"/bin/blkin-guest-agent": vm.agent_binary()}) as g:
        g.start()
        st.register("st", g.agent_socket, ["vda=st-a=st/vda"])

        def wait_marker(m, timeout=200):
            return st.wait_until(lambda: m in g.results(), timeout=timeout, interval=0.1)

        t.ok(wait_marker("phase-a-done"), "baseline workload done")
        # Phase b: hostd is stopped before the guest starts (it sleeps 3 s).
        st.hostd.send_signal(signal.SIGSTOP)
        ok_b = wait_marker("phase-b-done")
        st.hostd.send_signal(signal.SIGCONT)
        t.ok(ok_b, "the guest's workload finished while hostd was stopped")
        text = g.results()
        want = sum(1 for p in "ab" for i in phases.phase_records(text, p)["ios"]
                   if i["op"] in ("read", "write"))
        got = st.wait_until(lambda: phases.rw_count(st.report("st", window="1h")) >= want,
                            timeout=60) and phases.rw_count(st.report("st", window="1h"))
        # (>=: the guest kernel's own few requests on the disk count too)
        t.ok(got and got >= want, "hostd, continued, caught up: every read and write of both phases reported",
             detail=f"reported {got}, issued {want}")
        # Phase c: the agent socket's file is gone; hostd is restarted so it
        # must find the socket again, and cannot.
        os.unlink(g.agent_socket)
        st.stop_hostd(signal.SIGKILL)
        st.start_hostd()
        st.register("st", g.agent_socket, ["vda=st-a=st/vda"])
        t.ok(wait_marker("phase-c-done"), "the guest's workload finished with its agent socket removed")
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
        for p, what in (("b", "hostd stopped"), ("c", "agent socket removed")):
            e = phases.elapsed_ns(rec[p])
            t.diag(f"phase {p}: {e / 1e6:.0f} ms vs baseline {base / 1e6:.0f} ms")
            # TCG timing is noisy; a stall on hostd would be seconds.
            t.ok(e <= base * 1.5 + 500e6, f"{what}: the guest's I/O rate is unaffected",
                 detail=f"{e / 1e6:.0f} ms vs {base / 1e6:.0f} ms")

        rep = st.report("st", window="1h")
        d = rep["disks"][0]
        t.diag(f"counters {d['counters']}, agent {d['agent']}")
        t.ok(st.hostd.poll() is None, "hostd runs on with the agent socket gone")
        t.ok(not d["agent"]["connected"], "the report says the agent is not connected")
        t.ok(d["counters"]["spans"] > 0, "the filter's spans are still counted without the agent")
    t.done()


if __name__ == "__main__":
    main()
