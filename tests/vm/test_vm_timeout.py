#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""The harness never leaves QEMU behind: a guest that hangs is killed at the
timeout, a QEMU that ignores SIGTERM (stopped) is SIGKILLed, an exception in
the with-block tears it down, and so does the death of the harness itself."""
import os
import shutil
import signal
import subprocess
import sys
import time

import vm
import vmtestlib
from tap import Tap

HANG = "echo guest-hangs-now; sleep 600"


def test_timeout_kills(t):
    work = vmtestlib.workdir("vm-timeout")
    with vm.GuestVM(work, [], HANG, timeout=6) as g:
        t0 = time.monotonic()
        res = g.run()
        took = time.monotonic() - t0
        pid = g.qemu_pid
    t.ok(res.timed_out, "a hanging guest is reported as timed out", detail=str(res))
    t.ok(res.status is None, "no guest status for a guest that never finished")
    t.ok(6 <= took < 13, f"killed at the timeout ({took:.1f} s for 6 s)")
    t.ok("guest-hangs-now" in res.console, "console captured up to the hang",
         detail=res.console[-1000:])
    t.ok(not vmtestlib.alive(pid), "QEMU process is gone")
    t.eq(vmtestlib.qemu_processes_under(work), [], "no QEMU left for this work dir")


def test_stopped_qemu_is_sigkilled(t):
    work = vmtestlib.workdir("vm-timeout-stopped")
    with vm.GuestVM(work, [], HANG, timeout=5) as g:
        g.start()
        time.sleep(0.5)
        os.kill(g.qemu_pid, signal.SIGSTOP)  # a QEMU that can no longer react
        t0 = time.monotonic()
        res = g.wait()
        took = time.monotonic() - t0
        pid = g.qemu_pid
    t.ok(res.timed_out, "stopped QEMU times out")
    t.ok(not vmtestlib.alive(pid), f"and is SIGKILLed ({took:.1f} s after stop)")


def test_exception_tears_down(t):
    work = vmtestlib.workdir("vm-timeout-exc")
    pid = None
    try:
        with vm.GuestVM(work, [], HANG, timeout=60) as g:
            g.start()
            pid = g.qemu_pid
            raise RuntimeError("test failed mid-VM")
    except RuntimeError:
        pass
    t.ok(pid and not vmtestlib.alive(pid), "an exception in the with-block kills QEMU")


def test_watchdog_releases_blocked_reader(t):
    # The test itself is stuck in a blocking read; the deadline still holds.
    work = vmtestlib.workdir("vm-timeout-watchdog")
    with vm.GuestVM(work, [], HANG, timeout=5) as g:
        g.start()
        s = g.connect_agent(timeout=5)
        s.settimeout(None)
        t0 = time.monotonic()
        data = s.recv(1)  # the guest never writes: only QEMU's death ends this
        took = time.monotonic() - t0
        s.close()
        res = g.wait()
        pid = g.qemu_pid
    t.eq(data, b"", "a blocking read on the agent socket ends with EOF at the deadline")
    t.ok(took < 12, f"within the deadline plus kill grace ({took:.1f} s)")
    t.ok(res.timed_out and not vmtestlib.alive(pid), "reported as timed out, QEMU gone")


def test_boot_hang_retried(t):
    # '-S' keeps the CPU stopped: a boot that never reaches /init.
    work = vmtestlib.workdir("vm-timeout-boot")
    with vm.GuestVM(work, [], "true", timeout=30, boot_timeout=3, qemu_args=["-S"]) as g:
        t0 = time.monotonic()
        res = g.run(boot_retries=1)
        took = time.monotonic() - t0
        pid = g.qemu_pid
    t.ok(res.boot_hung and res.timed_out, "a boot that never reaches /init is reported as hung",
         detail=str(res))
    t.ok(os.path.exists(os.path.join(work, "console.log.hung")), "it was retried once, "
         "the hung boot's console kept")
    t.ok(6 <= took < 15, f"each attempt given up after boot_timeout ({took:.1f} s for 2 x 3 s)")
    t.ok(not vmtestlib.alive(pid), "QEMU gone")


CHILD = r"""
import sys, time
sys.path.insert(0, sys.argv[1])
import vm
g = vm.GuestVM(sys.argv[2], [], "sleep 600", timeout=300)
g.start()
print(g.qemu_pid, g._sockdir, flush=True)
time.sleep(600)
"""


def test_harness_death_kills_qemu(t):
    work = vmtestlib.workdir("vm-timeout-orphan")
    lib = os.path.dirname(os.path.abspath(vm.__file__))
    p = subprocess.Popen([sys.executable, "-c", CHILD, lib, work], stdout=subprocess.PIPE,
                         text=True)
    try:
        pid_s, sockdir = p.stdout.readline().split()
        pid = int(pid_s)
        t.ok(vmtestlib.alive(pid), "QEMU runs under a harness process")
        p.kill()  # SIGKILL: no Python clean-up runs
        p.wait()
        end = time.monotonic() + 10
        while vmtestlib.alive(pid) and time.monotonic() < end:
            time.sleep(0.1)
        t.ok(not vmtestlib.alive(pid), "QEMU dies with its harness (PR_SET_PDEATHSIG)")
        shutil.rmtree(sockdir, ignore_errors=True)  # the killed harness could not
    finally:
        if p.poll() is None:
            p.kill()
        for q in vmtestlib.qemu_processes_under(work):
            os.kill(q, signal.SIGKILL)


def main():
    t = Tap()
    t.run(test_timeout_kills)
    t.run(test_stopped_qemu_is_sigkilled)
    t.run(test_exception_tears_down)
    t.run(test_watchdog_releases_blocked_reader)
    t.run(test_boot_hang_retried)
    t.run(test_harness_death_kills_qemu)
    t.done()


if __name__ == "__main__":
    main()
