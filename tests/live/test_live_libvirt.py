#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""blkin-live --libvirt: the same enable/disable through libvirtd
(virDomainQemuMonitorCommand) on a running libvirt domain, under a private
libvirtd (tests/libvirt/libvirtd.py). The domain boots no OS (SeaBIOS
under TCG): the block graph is what is checked.

Also the documented way to define a domain ready for it: `blkin-libvirt
prepare` (the preload, serials and the agent channel, no filter at start),
then the domain started, then `blkin-live enable` without a restart, with the
filter id the metadata records; `blkin-libvirt disable` gives the original
definition back."""
import os
import re
import subprocess
import sys
import time

import vm
from tap import Tap

import livelib

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "libvirt"))
try:
    import libvirtd  # noqa: E402
except ImportError:
    libvirtd = None

DOMAIN = """<domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
  <name>{name}</name>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='q35'>hvm</type></os>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='{image}'/>
      <target dev='vda' bus='virtio'/>
      <serial>lv-disk</serial>
    </disk>
  </devices>
  {env}
</domain>
"""


def start_domain(lv, work, name, preload):
    image = os.path.join(work, f"{name}.img")
    subprocess.run(["qemu-img", "create", "-f", "raw", image, "16M"], check=True,
                   capture_output=True, timeout=60)
    env = (f"<qemu:commandline><qemu:env name='LD_PRELOAD' value='{preload}'/></qemu:commandline>"
           if preload else "")
    xml = os.path.join(work, f"{name}.xml")
    with open(xml, "w") as f:
        f.write(DOMAIN.format(name=name, image=image, env=env))
    return lv.virsh("create", xml, timeout=120)


TOOL = os.path.join(os.environ.get("BLKIN_BUILD_ROOT", "build"), "libvirt-hooks", "blkin-libvirt")


def status(lv, name):
    r = livelib.live("status", "--libvirt", name, "--connect", lv.uri)
    return r.stdout


def tool(lv, *args):
    return subprocess.run([TOOL, *args, "--connect", lv.uri], capture_output=True, text=True, timeout=120)


def test_prepared(t, lv, work):
    """A persistent domain prepared by blkin-libvirt: traced live later."""
    name = "blkinlive3"
    image = os.path.join(work, f"{name}.img")
    subprocess.run(["qemu-img", "create", "-f", "raw", image, "16M"], check=True,
                   capture_output=True, timeout=60)
    xml = os.path.join(work, f"{name}.xml")
    with open(xml, "w") as f:
        f.write(DOMAIN.format(name=name, image=image, env=""))
    r = lv.virsh("define", xml)
    t.ok(r.returncode == 0, "a persistent domain defined", detail=r.stderr)
    original = lv.virsh("dumpxml", "--inactive", name).stdout
    sock = os.path.join(work, "agents", f"{name}.sock")
    r = tool(lv, "prepare", name, "--preload", vm.preload_library(), "--agent-socket", sock,
             "--state-dir", work)
    t.ok(r.returncode == 0 and "blkin is prepared on vda" in r.stdout,
         "blkin-libvirt prepare: the domain is made ready for blkin-live", detail=r.stdout + r.stderr)
    defined = lv.virsh("dumpxml", "--inactive", name).stdout
    t.ok("LD_PRELOAD" in defined and "org.blkin.agent.0" in defined and "-drive" not in defined
         and "qemu:override" not in defined,
         "the definition has the preload and the agent channel, and no filter", detail=defined)
    st = tool(lv, "status", name)
    t.ok("ready for blkin-live as blkinlive3/vda" in st.stdout, "blkin-libvirt status says so",
         detail=st.stdout + st.stderr)
    r = lv.virsh("start", name)
    t.ok(r.returncode == 0, "the prepared domain starts", detail=r.stderr)
    before = status(lv, name)
    t.ok("virtio-disk0" in before and " blkin " not in before,
         "it runs with no disk behind the filter", detail=before)
    r = livelib.live("enable", "--libvirt", name, "--connect", lv.uri, "--device", "virtio-disk0")
    t.ok(r.returncode == 0 and "(id blkinlive3/vda)" in r.stdout,
         "blkin-live enable traces its disk without a restart, with the id the metadata records",
         detail=r.stdout + r.stderr)
    after = status(lv, name)
    t.ok(re.search(r"virtio-disk0.* blkin over libvirt-1-format", after),
         "the device is on a blkin node", detail=after)
    r = livelib.live("disable", "--libvirt", name, "--connect", lv.uri, "--device", "virtio-disk0")
    t.ok(r.returncode == 0 and status(lv, name) == before, "blkin-live disable takes it off again",
         detail=r.stdout + r.stderr)
    lv.virsh("destroy", name)
    r = tool(lv, "disable", name, "--state-dir", work)
    t.ok(r.returncode == 0 and "the original again" in r.stdout, "blkin-libvirt disable",
         detail=r.stdout + r.stderr)
    t.eq(lv.virsh("dumpxml", "--inactive", name).stdout, original,
         "the definition is the original, byte for byte")
    lv.virsh("undefine", name)


def start_libvirtd(t):
    """libvirtd keeps a pid file outside the private mounts, so a second one
    (another test's) makes it exit at once: wait for that one to finish."""
    end = time.monotonic() + 120
    while True:
        lv = libvirtd.Libvirtd()
        try:
            return lv.start()
        except RuntimeError as e:
            lv.stop()
            lv.cleanup()
            if time.monotonic() > end:
                t.diag(f"libvirtd did not start: {e}")
                return None
            time.sleep(3)


def test_libvirt(t):
    work = livelib.workdir("live", "libvirt")
    lv = start_libvirtd(t)
    if lv is None:
        t.skip("blkin-live --libvirt", "no private libvirtd could start (another one running?)")
        return
    try:
        r = start_domain(lv, work, "blkinlive1", vm.preload_library())
        t.ok(r.returncode == 0, "domain with the preload object started", detail=r.stderr)
        before = status(lv, "blkinlive1")
        t.ok("virtio-disk0" in before, "status lists the domain's disk", detail=before)
        r = livelib.live("enable", "--libvirt", "blkinlive1", "--connect", lv.uri,
                         "--device", "virtio-disk0")
        t.ok(r.returncode == 0, "enable through libvirtd", detail=r.stdout + r.stderr)
        # The disk identity <domain name>/<target dev>: the string
        # blkin-libvirt gives the same disk (tests/libvirt/test_libvirt.py).
        t.ok("(id blkinlive1/vda)" in r.stdout,
             "the filter id is <domain>/<target>, as blkin-libvirt makes it",
             detail=r.stdout)
        after = status(lv, "blkinlive1")
        t.ok(re.search(r"virtio-disk0.* blkin over libvirt-1-format", after),
             "the device is on a blkin node over libvirt-1-format", detail=after)
        r = livelib.live("disable", "--libvirt", "blkinlive1", "--connect", lv.uri,
                         "--device", "virtio-disk0")
        t.ok(r.returncode == 0, "disable through libvirtd", detail=r.stdout + r.stderr)
        t.eq(status(lv, "blkinlive1"), before, "back on libvirt's own node")

        r = start_domain(lv, work, "blkinlive2", None)
        t.ok(r.returncode == 0, "domain without the preload object started", detail=r.stderr)
        before = status(lv, "blkinlive2")
        r = livelib.live("enable", "--libvirt", "blkinlive2", "--connect", lv.uri,
                         "--device", "virtio-disk0")
        t.ok(r.returncode == 1 and "blkin" in r.stderr and "Nothing was changed" in r.stderr,
             "without the preload: refused, says so", detail=r.stderr)
        t.eq(status(lv, "blkinlive2"), before, "without the preload: nothing changed")
        r = livelib.live("enable", "--libvirt", "nosuchdomain", "--connect", lv.uri,
                         "--device", "virtio-disk0")
        t.ok(r.returncode == 1 and "no libvirt domain nosuchdomain" in r.stderr,
             "unknown domain: clear error", detail=r.stderr)
        test_prepared(t, lv, work)
    finally:
        lv.stop()
        lv.cleanup()


def main():
    t = Tap()
    if not vm.preload_library() or not os.path.exists(livelib.LIVE):
        t.skip("blkin-live --libvirt", "preload object or blkin-live not built")
    elif libvirtd is None or not libvirtd.available():
        t.skip("blkin-live --libvirt", "libvirtd or tests/libvirt/libvirtd.py not available")
    elif "--libvirt" not in livelib.live("--help").stdout:
        t.skip("blkin-live --libvirt", "blkin-live built without libvirt")
    else:
        t.run(test_libvirt)
    t.done()


if __name__ == "__main__":
    main()
