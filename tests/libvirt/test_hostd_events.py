#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""blkin-hostd --libvirt: a blkin-enabled domain is registered while it runs
and unregistered when it stops, with no hook and no `blkin register`."""
import os
import shutil
import subprocess
import sys
import time

LINGER_S = 5  # a stopped domain's report stays this long (--linger)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import libvirtd  # noqa: E402
import test_libvirt as tl  # noqa: E402
import vm  # noqa: E402
from tap import Tap  # noqa: E402

NAME = "blkin-lv-events"
GUEST = f"""
vda=$(blkin_disk {tl.VDA_SERIAL})
blkin-guest-agent --port org.blkin.agent.0 2>/tmp/agent.log &
dd if=$vda of=/dev/null bs=4096 count=64 2>/dev/null
sleep 8
"""


def reported_targets(stack):
    r = subprocess.run([tl.CLI, "--socket", stack.socket, "report", NAME, "--window", "1h", "--json"],
                       capture_output=True, text=True, timeout=30)
    return r.returncode, r.stdout + r.stderr


def main():
    t = Tap()
    if os.geteuid() != 0 or not libvirtd.available() or not os.path.exists(tl.TOOL) \
            or not os.path.exists(tl.HOSTD):
        t.skip("hostd follows libvirt domains", "needs root, libvirtd, blkin-libvirt and hostd")
        t.done()
    if not vm.preload_library() or not vm.agent_binary():
        t.skip("hostd follows libvirt domains", "filter or agent not built")
        t.done()
    w = os.path.join(tl.BUILD, "tests", "libvirt", "work-events")
    shutil.rmtree(w, ignore_errors=True)
    os.makedirs(w)
    for args in (["-f", "raw", f"{w}/a.raw", "16M"], ["-f", "qcow2", f"{w}/base.qcow2", "16M"],
                 ["-f", "qcow2", "-b", f"{w}/base.qcow2", "-F", "qcow2", f"{w}/b.qcow2"],
                 ["-f", "raw", f"{w}/cd.iso", "1M"]):
        subprocess.run(["qemu-img", "create", "-q", *args], check=True)
    vm.build_initramfs(os.path.join(w, "initramfs.cpio"), GUEST,
                       extra_files={"/bin/blkin-guest-agent": vm.agent_binary()},
                       env={"BLKIN_DISK_SERIALS": tl.VDA_SERIAL,
                            "BLKIN_PORT_NAMES": f"{vm.RESULTS_PORT} {vm.AGENT_PORT}"})
    xml = tl.DOMAIN.format(name=NAME, uuid=tl.UUID, kernel=vm.kernel_image(vm.kernel_dir()),
                           initrd=os.path.join(w, "initramfs.cpio"), w=w, results=vm.RESULTS_PORT)
    with open(os.path.join(w, "domain.xml"), "w") as f:
        f.write(xml)

    from stack import HostStack
    lv = libvirtd.Libvirtd()
    try:
        with lv:
            lv.virsh("define", os.path.join(w, "domain.xml"), check=True)
            r = subprocess.run([tl.TOOL, "--connect", lv.uri, "enable", NAME, "--disk", "vda",
                                "--preload", vm.preload_library(), "--agent-socket", f"{lv.root}/agent.sock"],
                               capture_output=True, text=True, timeout=300)
            t.ok(r.returncode == 0, "blkin-libvirt enable", detail=r.stderr)
            with HostStack(w, hold_ms=1000,
                           hostd_args=["--libvirt", lv.uri, "--linger", str(LINGER_S)]) as stack:
                rc, out = reported_targets(stack)
                t.ok(rc != 0, "a stopped domain is not registered", detail=out)
                r = lv.virsh("start", NAME)
                t.ok(r.returncode == 0, "virsh start", detail=r.stderr)
                end, out = time.time() + 10, ""
                while time.time() < end:
                    rc, out = reported_targets(stack)
                    if rc == 0 and "vda" in out:
                        break
                    time.sleep(0.5)
                t.ok(rc == 0 and "vda" in out, "blkin report DOMAIN lists vda without a register",
                     detail=out[-2000:])
                lv.virsh("destroy", NAME)
                stopped_at = time.time()
                # Unregistered at once, it lingers: its report says so...
                end = time.time() + 10
                while time.time() < end:
                    rep = stack.cli("report", NAME, "--json", check=False)
                    if rep.returncode == 0 and '"vm_state" : "stopped"' in rep.stdout:
                        break
                    time.sleep(0.5)
                t.ok(rep.returncode == 0 and '"vm_state" : "stopped"' in rep.stdout,
                     "hostd marks the domain stopped once it stops", detail=rep.stdout[-2000:])
                # ...and it is forgotten after --linger.
                end = stopped_at + LINGER_S + 15
                while time.time() < end:
                    rc, out = reported_targets(stack)
                    if rc != 0:
                        break
                    time.sleep(0.5)
                t.ok(rc != 0, "hostd forgets the stopped domain after --linger", detail=out[-2000:])
            lv.virsh("undefine", NAME)
    finally:
        lv.stop()
        lv.cleanup()
    t.done()


if __name__ == "__main__":
    main()
