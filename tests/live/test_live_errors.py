#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""blkin-live on paused QEMUs (no guest): enable/disable round trip on a
-drive disk, and the refusals: QMP socket missing, QEMU without the preload
object, QEMU whose preload could not load the filter, unknown device, no
disk identity (QEMU without -name, a VM name the rule refuses). A refusal
changes nothing in the block graph."""
import os
import subprocess

import vm
from qemutools import ld_preload
from tap import Tap

import livelib


def env_with(preload):
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    if preload:
        env["LD_PRELOAD"] = ld_preload(preload)  # (a sanitizer build's shim needs its runtime)
    return env


def start(work, name, preload, extra=()):
    sd = livelib.sockdir()
    sock = os.path.join(sd, "qmp.sock")
    img = os.path.join(work, f"{name}.img")
    subprocess.run(["qemu-img", "create", "-f", "raw", img, "16M"], check=True,
                   capture_output=True, timeout=60)
    q = livelib.PausedQemu(livelib.paused_qemu_argv(sock, img, extra), env=env_with(preload),
                           log=os.path.join(work, f"{name}.log"))
    livelib.wait_socket(sock)
    return q, sock


def test_round_trip(t, work):
    q, sock = start(work, "roundtrip", vm.preload_library(), ("-name", "vm1"))
    with q:
        before = livelib.block_state(sock)
        # What an enable interrupted before the switch leaves: its drive.
        with livelib.Qmp(sock) as m:
            m.cmd("human-monitor-command", **{
                "command-line": "drive_add 0 if=none,id=blkinlive-drive-disk0,driver=null-co"})
        # The disk identity (docs/hostd.md): QEMU's -name and the target.
        r = livelib.live("enable", "--qmp", sock, "--device", "disk0", "--target", "vda",
                         "--sample", "1")
        t.ok(r.returncode == 0, "enable on a paused QEMU (over a leftover drive of an "
             "interrupted enable)", detail=r.stdout + r.stderr)
        t.ok("(id vm1/vda)" in r.stdout, "the filter id is <QEMU's -name>/<--target>",
             detail=r.stdout)
        dev, nodes = livelib.block_state(sock)
        t.eq([v[2] for k, v in dev.items() if k and "disk0" in k], ["blkin"],
             "the device's node runs the blkin driver")
        t.eq(sorted(dev), sorted(before[0]),
             "no drive left besides the device's own (a hot-unplug frees the disk)")
        r = livelib.live("enable", "--qmp", sock, "--device", "disk0")
        t.ok(r.returncode == 0 and "already" in r.stdout, "enable again: says so, exit 0",
             detail=r.stdout + r.stderr)
        r = livelib.live("status", "--qmp", sock)
        t.ok(r.returncode == 0 and "blkin over" in r.stdout, "status shows the filter",
             detail=r.stdout + r.stderr)
        r = livelib.live("disable", "--qmp", sock, "--device", "drv0")
        t.ok(r.returncode == 0, "disable (device named by its drive id)", detail=r.stdout + r.stderr)
        t.eq(livelib.block_state(sock), before,
             "after disable: same backend, same node, no leftover nodes")


def refused(t, sock, args, want, what):
    before = livelib.block_state(sock)
    r = livelib.live(*args)
    t.ok(r.returncode == 1 and want in r.stderr, f"{what}: exit 1 and says '{want}'",
         detail=r.stdout + r.stderr)
    t.eq(livelib.block_state(sock), before, f"{what}: block graph unchanged")


def test_errors(t, work):
    sd = livelib.sockdir()
    r = livelib.live("enable", "--qmp", os.path.join(sd, "nope.qmp"), "--device", "disk0")
    t.ok(r.returncode == 1 and "does not exist" in r.stderr,
         "QMP socket missing: exit 1, says the socket does not exist", detail=r.stderr)

    q, sock = start(work, "nopreload", None)
    with q:
        refused(t, sock, ["enable", "--qmp", sock, "--device", "disk0"],
                "without the blkin preload object", "QEMU without the preload")
    wrong = os.path.join(vm.build_root(), "qemu-filter", "libblkin-preload-wrongstamp.so")
    if os.path.exists(wrong):
        q, sock = start(work, "wrongstamp", wrong)
        with q:
            refused(t, sock, ["enable", "--qmp", sock, "--device", "disk0"],
                    "not the QEMU build", "QEMU whose preload refused the build")
    else:
        t.skip("QEMU whose preload refused the build", "wrong-stamp preload not built")
    q, sock = start(work, "unknown", vm.preload_library())
    with q:
        refused(t, sock, ["enable", "--qmp", sock, "--device", "nosuchdisk"],
                "no block device nosuchdisk", "unknown device")
        refused(t, sock, ["disable", "--qmp", sock, "--device", "nosuchdisk"],
                "no block device nosuchdisk", "unknown device (disable)")
        # No -name: no VM name for the disk identity, unless --vm or --id.
        refused(t, sock, ["enable", "--qmp", sock, "--device", "disk0"],
                "QEMU has no name", "QEMU without -name")
        refused(t, sock, ["enable", "--qmp", sock, "--device", "disk0", "--vm", "web,1"],
                "VM name 'web,1' cannot be part of blkin's disk identity",
                "a VM name the identity rule refuses")
        r = livelib.live("enable", "--qmp", sock, "--device", "disk0", "--vm", "web1")
        t.ok(r.returncode == 0 and "(id web1/disk0)" in r.stdout,
             "--vm: the filter id is <vm>/<device id>", detail=r.stdout + r.stderr)
        r = livelib.live("disable", "--qmp", sock, "--device", "disk0")
        t.ok(r.returncode == 0, "disable again", detail=r.stdout + r.stderr)


def main():
    t = Tap()
    if not vm.preload_library() or not os.path.exists(livelib.LIVE):
        t.skip("blkin-live", "preload object or blkin-live not built")
        t.done()
        return
    work = livelib.workdir("live", "errors")
    t.run(test_round_trip, work)
    t.run(test_errors, work)
    t.done()


if __name__ == "__main__":
    main()
