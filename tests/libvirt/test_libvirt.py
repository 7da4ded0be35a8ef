#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""blkin-libvirt against a real libvirtd (private instance, qemu driver, TCG)
and real QEMU: a domain with a raw disk, a qcow2 disk over a backing file and
a cdrom. Refusals change nothing; enable is idempotent; the guest's agent and
workload run with both virtio disks behind the filter (LTTng shows both, the
hook registers the domain with hostd, `blkin report` has every phase);
disable gives back the original definition byte for byte and the guest finds
its data without the filter."""
import os
import re
import shutil
import subprocess
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import libvirtd  # noqa: E402
import vm  # noqa: E402
from lttng import Session  # noqa: E402
from tap import Tap  # noqa: E402

BUILD = vm.build_root()
TOOL = os.path.join(BUILD, "libvirt-hooks", "blkin-libvirt")
CLI = os.path.join(BUILD, "cli", "blkin")
HOSTD = os.path.join(BUILD, "hostd", "blkin-hostd")
NAME = "blkin-lv-test"
UUID = str(uuid.UUID("5b1e4f0c-8a7d-4c3e-9f21-0a1b2c3d4e5f"))
# The disk identity (docs/hostd.md): <domain name>/<target>, the same string
# blkin-live --libvirt gives the domain's vda (tests/live/test_live_libvirt.py).
FILTER_ID = NAME + "/{}"
VDA_SERIAL = "bk" + UUID.replace("-", "")[:8] + "-vda"  # what enable gives vda
MARK_BLOCK = 15000  # 4 KiB block past the workload's data, for the data check

DOMAIN = """<domain type='qemu'>
  <name>{name}</name>
  <uuid>{uuid}</uuid>
  <memory unit='MiB'>256</memory>
  <vcpu>2</vcpu>
  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
    <kernel>{kernel}</kernel>
    <initrd>{initrd}</initrd>
    <cmdline>console=ttyS0 panic=-1 rdinit=/init loglevel=4 tsc=reliable no_timer_check</cmdline>
  </os>
  <cpu mode='maximum'/>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='{w}/a.raw'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='{w}/b.qcow2'/>
      <target dev='vdb' bus='virtio'/>
      <serial>disk-b</serial>
    </disk>
    <disk type='file' device='cdrom'>
      <driver name='qemu' type='raw'/>
      <source file='{w}/cd.iso'/>
      <target dev='sda' bus='sata'/>
      <readonly/>
    </disk>
    <serial type='file'><source path='{w}/console.log'/><target port='0'/></serial>
    <channel type='file'>
      <source path='{w}/results.out'/>
      <target type='virtio' name='{results}'/>
    </channel>
    <memballoon model='none'/>
  </devices>
</domain>
"""

TRANSIENT = """<domain type='qemu'>
  <name>{name}-transient</name>
  <memory unit='MiB'>64</memory>
  <os><type arch='x86_64' machine='q35'>hvm</type></os>
  <devices><emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'><driver name='qemu' type='raw'/>
      <source file='{w}/t.raw'/><target dev='vda' bus='virtio'/></disk>
  </devices>
</domain>
"""

FIRST_BOOT = f"""
vda=$(blkin_disk {VDA_SERIAL}); vdb=$(blkin_disk disk-b)
blkin-guest-agent --port org.blkin.agent.0 2>/tmp/agent.log &
AGENT=$!
sleep 1
echo "serial $vda {VDA_SERIAL}" >"$BLKIN_RESULTS"; echo "serial $vdb disk-b" >"$BLKIN_RESULTS"
blkin-workload --seed 11 -n 300 -q 4 -o "$BLKIN_RESULTS" "$vda" "$vdb"
rc=$?
for d in $vda $vdb; do
    printf 'blkin-mark-%s' "${{d##*/}}" | dd of=$d bs=4096 seek={MARK_BLOCK} conv=fsync 2>/dev/null
done
echo guest-workload-done >"$BLKIN_RESULTS"
# hostd forgets the domain when it stops: stay up while the test reads the
# report (hostd joins after --hold-ms).
sleep 20
kill -TERM $AGENT; wait $AGENT
echo "--- agent log"; cat /tmp/agent.log
exit $rc
"""

SECOND_BOOT = f"""
for d in /sys/block/vd*; do
    n=${{d##*/}}
    echo "mark $n $(dd if=/dev/$n bs=4096 skip={MARK_BLOCK} count=1 2>/dev/null | head -c 16)" >"$BLKIN_RESULTS"
    echo "serial $n $(cat $d/serial)" >"$BLKIN_RESULTS"
done
"""


def hook_script(log, hostd_socket):
    return f"""#!/bin/sh
echo "$*" >>{log}
{TOOL} hook --cli {CLI} --hostd-socket {hostd_socket} "$@" 2>>{log}
exit 0
"""


class Case:
    def __init__(self, t, lv, w):
        self.t, self.lv, self.w = t, lv, w

    def tool(self, *args, uri=None):
        return subprocess.run([TOOL, "--connect", uri or self.lv.uri, *args], capture_output=True,
                              text=True, timeout=300)

    def inactive(self):
        return self.lv.virsh("dumpxml", "--inactive", NAME, check=True).stdout

    def wait_off(self, timeout):
        end = time.time() + timeout
        while time.time() < end:
            st = self.lv.virsh("domstate", NAME).stdout.strip()
            if st == "shut off":
                return True
            time.sleep(0.5)
        self.lv.virsh("destroy", NAME)
        return False


def refusals(c, before):
    t = c.t
    cases = [
        (("enable", "no-such-domain"), None, "no domain named 'no-such-domain'", "unknown domain"),
        (("enable", NAME, "--disk", "vdz"), None, "no disk 'vdz'", "unknown disk"),
        (("enable", NAME, "--disk", "sda"), None, "cdrom, not a virtio-blk disk", "a cdrom"),
        (("disable", NAME, "--disk", "vdz"), None, None, "disable of a disk that is not traced"),
        (("enable", NAME), "qemu:///system?socket=/nonexistent/libvirt-sock", "cannot connect to libvirt",
         "libvirtd unreachable"),
    ]
    for args, uri, msg, what in cases:
        r = c.tool(*args, uri=uri)
        if msg:
            t.ok(r.returncode != 0 and msg in r.stderr, f"refused clearly: {what}",
                 detail=f"rc {r.returncode}\nstdout {r.stdout}\nstderr {r.stderr}")
        else:
            t.ok(r.returncode == 0 and "nothing to do" in r.stdout + r.stderr or
                 "nothing changed" in r.stdout + r.stderr,
                 f"nothing happens: {what}", detail=r.stdout + r.stderr)
        t.eq(c.inactive(), before, f"definition unchanged after: {what}")

    # A transient domain: the one place enable must not touch.
    subprocess.run(["qemu-img", "create", "-q", "-f", "raw", f"{c.w}/t.raw", "1M"], check=True)
    xml = os.path.join(c.w, "transient.xml")
    with open(xml, "w") as f:
        f.write(TRANSIENT.format(name=NAME, w=c.w))
    cr = c.lv.virsh("create", xml, "--paused")
    if cr.returncode == 0:
        r = c.tool("enable", f"{NAME}-transient")
        t.ok(r.returncode != 0 and "transient" in r.stderr, "refused clearly: a transient domain",
             detail=r.stderr)
        c.lv.virsh("destroy", f"{NAME}-transient")
    else:
        t.ok(False, "a transient domain could be created", detail=cr.stderr)


def enable_checks(c, before):
    t = c.t
    pre = ["--preload", vm.preload_library(), "--agent-socket", f"{c.lv.root}/agent.sock",
           "--state-dir", c.w]
    r = c.tool("enable", NAME, "--dry-run", *pre)
    t.ok(r.returncode == 0 and "+  <qemu:commandline>" in r.stdout and "dry run" in r.stdout,
         "--dry-run prints the change", detail=r.stdout + r.stderr)
    t.eq(c.inactive(), before, "--dry-run changes nothing")

    r = c.tool("enable", NAME, *pre)
    t.ok(r.returncode == 0 and "next start" in r.stdout, "enable succeeds and says when it takes effect",
         detail=r.stdout + r.stderr)
    after = c.inactive()
    t.diag(r.stdout)
    for what, want in [
        ("the filter on vda's format node (libvirt-3-format)", '&quot;file&quot;:&quot;libvirt-3-format&quot;'),
        ("the filter on vdb's format node (libvirt-2-format)", '&quot;file&quot;:&quot;libvirt-2-format&quot;'),
        ("the filter id is <domain>/<target>",
         '&quot;id&quot;:&quot;' + FILTER_ID.format("vda") + '&quot;'),
        ("the preload object", f"<qemu:env name='LD_PRELOAD' value='{vm.preload_library()}'/>"),
        ("the device override", "<qemu:property name='drive' type='string' value='blkin-vdb'/>"),
        ("a serial for vda", f"<serial>{VDA_SERIAL}</serial>"),
        ("the agent channel", "name='org.blkin.agent.0'"),
    ]:
        t.ok(want in after, f"enabled definition has {what}", detail=after[-3000:])
    t.ok("blkin-sda" not in after, "the cdrom is left alone")
    r = c.tool("enable", NAME, *pre)
    t.ok(r.returncode == 0 and "already enabled" in r.stdout, "enable twice = once",
         detail=r.stdout + r.stderr)
    t.eq(c.inactive(), after, "the second enable changes nothing")
    state = os.path.join(c.w, "libvirt", NAME + ".vm")
    t.ok(os.path.exists(state) and f"vda={VDA_SERIAL}={FILTER_ID.format('vda')}" in open(state).read(),
         "the state file for hostd names the traced disks")
    return after


# virtio-blk disks: QEMU's own device times frame its part (docs/hostd.md).
PHASES = {"guest-queue", "guest-to-device", "device", "qemu", "device-completion",
          "device-to-guest", "total"}


def phases_of(d):
    return {p["phase"].replace("_", "-") for o in (d or {}).get("ops", []) for p in o["phases"]}


def settled(stack):
    """The report once both disks have joined requests with every phase."""
    try:
        rep = stack.report(NAME, window="1h")
    except RuntimeError:
        return None
    by = {d["serial"]: d for d in rep.get("disks", [])}
    ok = all(s in by and by[s]["counters"]["matched"] > 0 and PHASES <= phases_of(by[s])
             for s in (VDA_SERIAL, "disk-b"))
    return rep if ok else None


def traced_run(c, stack):
    t = c.t
    with Session() as s:
        r = c.lv.virsh("start", NAME, timeout=120)
        t.ok(r.returncode == 0, "virsh start of the enabled domain", detail=r.stderr)
        # Node names derived from the definition match the running QEMU's.
        st = c.tool("status", NAME)
        t.diag(st.stdout)
        chk = c.tool("enable", NAME)
        t.ok(chk.returncode == 0 and "already enabled" in chk.stdout and
             "libvirt-3-format checked in the running domain" in chk.stdout,
             "enable while running checks the node names against QEMU and changes nothing",
             detail=chk.stdout + chk.stderr)
        rep, spans = None, {}
        if stack is not None:
            results = os.path.join(c.w, "results.out")
            end = time.time() + 240
            while time.time() < end and "guest-workload-done" not in \
                    open(results, errors="replace").read():
                time.sleep(0.5)
            rep = stack.wait_until(lambda: settled(stack), timeout=18)
            try:
                spans = stack.report(NAME, window="1h")
            except RuntimeError as e:
                spans = {"error": str(e)}
            if rep is None:
                t.diag("last report: " + str(spans)[-3000:])
        off = c.wait_off(240)
        t.ok(off, "the guest ran its workload and powered off")
    console = open(os.path.join(c.w, "console.log"), errors="replace").read()
    shutil.copy(os.path.join(c.w, "console.log"), os.path.join(c.w, "console-traced.log"))
    t.ok("BLKIN-GUEST-STATUS=0" in console, "the guest's agent and workload succeeded",
         detail=console[-3000:])
    text = open(os.path.join(c.w, "results.out"), errors="replace").read()
    rec = vm.parse_workload(text)
    t.ok(len(rec["ios"]) > 0 and not rec["mismatches"], "the workload's data verified",
         detail=text[-2000:])
    for tgt in ("vda", "vdb"):
        ev = s.for_disk(FILTER_ID.format(tgt))
        t.ok(len(ev) > 50, f"LTTng shows the requests of {tgt} under its filter id ({len(ev)})")
    s.cleanup()
    qlog = open(os.path.join(c.lv.root, "log", "qemu", NAME + ".log"), errors="replace").read()
    t.ok("is not the QEMU build" not in qlog, "the filter loaded in libvirt's QEMU", detail=qlog[-2000:])

    hooklog = open(os.path.join(c.w, "hook.log")).read()
    t.ok(f"{NAME} started begin" in hooklog and f"{NAME} stopped end" in hooklog,
         "libvirt ran blkin's hook at start and stop", detail=hooklog)
    if stack is None:
        t.skip("blkin report shows every phase for both traced disks", "blkin-hostd not built")
        return
    t.ok("could not register" not in hooklog, "the hook registered the domain with hostd",
         detail=hooklog)

    by = {d["serial"]: d for d in spans.get("disks", [])}
    t.ok(all(by.get(sr, {}).get("counters", {}).get("spans", 0) > 0 for sr in (VDA_SERIAL, "disk-b")),
         "hostd attributes both traced disks' filter spans to the domain by target and serial",
         detail=str(spans)[-3000:])
    agent_stats = [l for l in console.splitlines() if "blkin-guest-agent: stats" in l]
    if rep is None and agent_stats and " connects=0 " in agent_stats[-1]:
        # The agent never saw a host on its port; the same happens with the
        # plain tests/lib harness on this machine, so it is not libvirt's.
        t.skip("blkin report DOMAIN shows every phase for both traced disks",
               "the guest agent never saw the host connected: " + agent_stats[-1])
        return
    t.ok(rep is not None, "blkin report DOMAIN has both disks with joined requests",
         detail=open(os.path.join(c.w, "hostd.log"), errors="replace").read()[-3000:])
    if rep:
        by = {d["serial"]: d for d in rep["disks"]}
        for serial in (VDA_SERIAL, "disk-b"):
            d = by.get(serial)
            phases = phases_of(d)
            t.ok(PHASES <= phases,
                 f"blkin report shows every phase for {serial}", detail=sorted(phases))


def disable_checks(c, before):
    t = c.t
    r = c.tool("disable", NAME, "--dry-run", "--state-dir", c.w)
    t.ok(r.returncode == 0 and "-  <qemu:commandline>" in r.stdout, "disable --dry-run prints the change",
         detail=r.stdout + r.stderr)
    r = c.tool("disable", NAME, "--state-dir", c.w)
    t.ok(r.returncode == 0 and "original again" in r.stdout, "disable succeeds",
         detail=r.stdout + r.stderr)
    t.eq(c.inactive(), before, "disable restores the original definition byte for byte")
    t.ok(not os.path.exists(os.path.join(c.w, "libvirt", NAME + ".vm")), "the state file is gone")
    r = c.tool("disable", NAME)
    t.ok(r.returncode == 0 and "not enabled" in r.stdout, "disable twice = once")

    # The guest starts without the filter and finds what it wrote.
    vm.build_initramfs(os.path.join(c.w, "initramfs.cpio"), SECOND_BOOT,
                       env={"BLKIN_DISK_SERIALS": "disk-b",
                            "BLKIN_PORT_NAMES": vm.RESULTS_PORT})
    os.unlink(os.path.join(c.w, "results.out"))
    r = c.lv.virsh("start", NAME, timeout=120)
    t.ok(r.returncode == 0, "the domain starts after disable", detail=r.stderr)
    # As long as the first boot may take (traced_run): TCG guests on a
    # machine busy with the suite's other VMs boot in tens of seconds to
    # minutes.
    off = c.wait_off(240)
    text = open(os.path.join(c.w, "results.out"), errors="replace").read()
    qlog = open(os.path.join(c.lv.root, "log", "qemu", NAME + ".log"), errors="replace").read()
    console = open(os.path.join(c.w, "console.log"), errors="replace").read()
    t.ok(off, "the second guest powered off",
         detail=f"console: {console[-1500:]!r}\nresults: {text[-500:]!r}\nQEMU log: {qlog[-1500:]}")
    marks = dict(re.findall(r"^mark (\w+) (\S+)", text, re.M))
    t.eq(marks, {"vda": "blkin-mark-vda", "vdb": "blkin-mark-vdb"},
         "the guest's data is intact after disable")
    last = qlog[qlog.rfind("starting up"):]
    t.ok('"driver":"blkin"' not in last and "LD_PRELOAD" not in last,
         "QEMU runs without the filter after disable", detail=last[-2000:])


def main():
    t = Tap()
    if os.geteuid() != 0 or not libvirtd.available() or not os.path.exists(TOOL):
        t.skip("blkin-libvirt against libvirtd", "needs root, libvirtd, virsh and blkin-libvirt")
        t.done()
    if not vm.preload_library() or not vm.agent_binary():
        t.skip("blkin-libvirt against libvirtd", "filter or agent not built")
        t.done()
    w = os.path.join(BUILD, "tests", "libvirt", "work")
    shutil.rmtree(w, ignore_errors=True)
    os.makedirs(w)
    for args in (["-f", "raw", f"{w}/a.raw", "64M"], ["-f", "qcow2", f"{w}/base.qcow2", "64M"],
                 ["-f", "qcow2", "-b", f"{w}/base.qcow2", "-F", "qcow2", f"{w}/b.qcow2"],
                 ["-f", "raw", f"{w}/cd.iso", "1M"]):
        subprocess.run(["qemu-img", "create", "-q", *args], check=True)
    vm.build_initramfs(os.path.join(w, "initramfs.cpio"), FIRST_BOOT,
                       extra_files={"/bin/blkin-guest-agent": vm.agent_binary()},
                       env={"BLKIN_DISK_SERIALS": f"{VDA_SERIAL} disk-b",
                            "BLKIN_PORT_NAMES": f"{vm.RESULTS_PORT} {vm.AGENT_PORT}"})
    kdir = vm.kernel_dir()
    xml = DOMAIN.format(name=NAME, uuid=UUID, kernel=vm.kernel_image(kdir),
                        initrd=os.path.join(w, "initramfs.cpio"), w=w, results=vm.RESULTS_PORT)
    with open(os.path.join(w, "domain.xml"), "w") as f:
        f.write(xml)

    stack = None
    have_hostd = os.path.exists(HOSTD) and os.path.exists(CLI)
    if have_hostd:
        from stack import HostStack
        stack = HostStack(w, hold_ms=2000)
    hostd_socket = stack.socket if stack else os.path.join(w, "no-hostd.sock")
    lv = libvirtd.Libvirtd(hooks={"blkin": hook_script(os.path.join(w, "hook.log"), hostd_socket)})
    try:
        with lv:
            c = Case(t, lv, w)
            r = lv.virsh("define", os.path.join(w, "domain.xml"))
            if not t.ok(r.returncode == 0, "the test domain is defined", detail=r.stderr):
                t.done()
            # libvirt 9.0 re-orders the controllers it added on the first
            # re-definition of its own output (virtio-serial moves after
            # the PCI root ports): start from its steady-state print, as any
            # domain that was ever edited is.
            with open(os.path.join(w, "printed.xml"), "w") as f:
                f.write(c.inactive())
            lv.virsh("define", os.path.join(w, "printed.xml"), check=True)
            before = c.inactive()
            t.run(lambda _t: refusals(c, before))
            t.run(lambda _t: enable_checks(c, before))
            if stack:
                stack.__enter__()
            try:
                t.run(lambda _t: traced_run(c, stack))
            finally:
                if stack:
                    stack.close()
            t.run(lambda _t: disable_checks(c, before))
            lv.virsh("undefine", NAME)
    finally:
        lv.stop()
        left = [p for p in lv.qemu_pids() if os.path.exists(f"/proc/{p}")]
        t.ok(not left, "no QEMU left running", detail=left)
        lv.cleanup()
    t.done()


if __name__ == "__main__":
    main()
