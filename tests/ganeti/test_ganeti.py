#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""A KVM instance started by the Debian ganeti package's own KVM hypervisor
code (ganeti_start.py: Ganeti's command line, -drive/-device ids, QMP
sockets, pid and runtime files), with kvm_path = blkin's wrapper. Then:
blkin-ganeti discovers it (disk name, drive id, serial, agent channel);
blkin-hostd --ganeti-runtime registers it by itself; the instance-start
hook enables the filter through QMP while the guest's workload runs; the
report names the instance and Ganeti's disk, with every phase; the data the
workload verified is intact."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid

import vm
from stack import HostStack
from tap import Tap

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "live"))
import livelib  # noqa: E402

BUILD = vm.build_root()
WRAPPER = os.path.join(BUILD, "ganeti", "blkin-kvm")
HOOK = os.path.join(BUILD, "ganeti", "blkin-ganeti-hook")
TOOL = os.path.join(BUILD, "ganeti", "blkin-ganeti")
START = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ganeti_start.py")
GANETI_PY = "/usr/bin/python3"  # the interpreter Debian's ganeti is installed for
INSTANCE = "inst1.example.org"

GUEST = r"""
blkin-guest-agent 2>/tmp/agent.log &
while true; do
    blkin-workload -Q --seed 11 --count 150 "$(blkin_disk $GNT_SERIAL)" >/tmp/wl.out 2>&1 || echo WLFAILED
    grep '^summary' /tmp/wl.out
done
"""


class Console(threading.Thread):
    """Reads the instance's serial console (Ganeti's ctrl/<name>.serial)."""

    def __init__(self, path):
        super().__init__(daemon=True)
        self.path = path
        self.text = ""
        self.stop = False

    def run(self):
        end = time.monotonic() + 30
        while time.monotonic() < end and not self.stop:
            try:
                s = socket.socket(socket.AF_UNIX)
                s.connect(self.path)
                break
            except OSError:
                time.sleep(0.1)
        else:
            return
        s.settimeout(0.5)
        while not self.stop:
            try:
                b = s.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                break
            if not b:
                break
            self.text += b.decode("utf-8", "replace")
        s.close()


def ganeti_available():
    return subprocess.run([GANETI_PY, "-c", "import sys; sys.path.insert(0, '/usr/share/ganeti/3.0');"
                           "from ganeti.hypervisor import hv_kvm"],
                          capture_output=True, timeout=60).returncode == 0


def summaries_ok(text):
    sums = [line for line in text.splitlines() if line.startswith("summary ")]
    bad = [line for line in sums if " errors=0 " not in line or not line.rstrip().endswith(" mismatches=0")]
    return sums, bad


def test_ganeti(t):
    work = livelib.workdir("ganeti", "instance")
    root = tempfile.mkdtemp(prefix="gnt-", dir="/tmp")  # sockets: short paths
    disk_uuid = str(uuid.uuid4())
    serial = disk_uuid.rsplit("-", 2)[0]
    image = os.path.join(work, "disk0.img")
    subprocess.run(["qemu-img", "create", "-f", "raw", image, "64M"], check=True,
                   capture_output=True, timeout=60)
    initrd = os.path.join(work, "initramfs.cpio")
    vm.build_initramfs(initrd, GUEST, extra_files={"/bin/blkin-guest-agent": vm.agent_binary()},
                       env={"GNT_SERIAL": serial, "BLKIN_DISK_SERIALS": serial,
                            "BLKIN_PORT_NAMES": vm.AGENT_PORT})
    conf = os.path.join(work, "ganeti.conf")
    with open(conf, "w") as f:
        # qemu-system-x86_64, not kvm: that name defaults to TCG (tests run
        # guests under TCG only).
        f.write(f"BLKIN_KVM={livelib.QEMU}\n"
                f"BLKIN_PRELOAD={vm.preload_library()}\n"
                f"BLKIN_AGENT_DIR={root}/agents\n"
                f"BLKIN_INSTANCES=\"{INSTANCE}\"\n"
                f"BLKIN_GANETI_ROOT={root}\n"
                f"BLKIN_LIVE={livelib.LIVE}\n"
                f"BLKIN_GANETI_TOOL={TOOL}\n")
    env = dict(os.environ, BLKIN_GANETI_CONF=conf)
    env.pop("LD_PRELOAD", None)
    pid = None
    console = None
    try:
        # A stopped instance lingers (--linger): this test waits it out.
        with HostStack(work, hold_ms=2000,
                       hostd_args=["--ganeti-runtime", root, "--linger", "3"]) as st:
            r = subprocess.run(["timeout", "120", GANETI_PY, START, root, INSTANCE, WRAPPER, image,
                                disk_uuid, vm.kernel_image(vm.kernel_dir()), initrd,
                                "console=ttyS0 panic=-1 rdinit=/init loglevel=4"],
                               env=env, capture_output=True, text=True, timeout=180)
            t.ok(r.returncode == 0, "Ganeti's KVMHypervisor.StartInstance starts the instance "
                 "through the blkin-kvm wrapper", detail=r.stdout + r.stderr)
            if r.returncode != 0:
                return
            with open(os.path.join(root, "pid", INSTANCE)) as f:
                pid = int(f.read().strip())
            console = Console(os.path.join(root, "ctrl", INSTANCE + ".serial"))
            console.start()
            with open(os.path.join(root, "conf", INSTANCE + ".runtime")) as f:
                runtime = json.load(f)
            t.ok(runtime[0][0] == WRAPPER and "-daemonize" in runtime[0],
                 "runtime file: Ganeti's kvm_cmd, with kvm_path and -daemonize")
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
            t.diag(b" ".join(argv).decode()[:1500])

            lst = subprocess.run([TOOL, "list", "--root", root], capture_output=True, text=True,
                                 timeout=30)
            rows = [line.split("\t") for line in lst.stdout.splitlines()]
            want = [INSTANCE, "disk/0", "disk-" + serial, serial, f"{INSTANCE}/disk/0",
                    os.path.join(root, "ctrl", INSTANCE + ".qmp"),
                    os.path.join(root, "agents", INSTANCE + ".agent"), "preload"]
            t.eq(rows, [want], "discovery: instance, Ganeti disk name, drive id, serial, filter id, "
                 "QMP and agent sockets, blkin's preload in QEMU")

            def registered():
                s = json.loads(st.cli("status", "--json", check=False).stdout or "{}")
                r = st.cli("report", INSTANCE, "--json", check=False)
                return r.returncode == 0 and s
            t.ok(st.wait_until(registered, timeout=20), "hostd registered the instance by itself",
                 detail=open(st.hostd_log).read()[-2000:])

            # The guest boots and its workload runs before tracing starts.
            t.ok(st.wait_until(lambda: console.text.count("summary ") >= 1, timeout=120),
                 "workload running in the instance", detail=console.text[-2000:])
            qmp = os.path.join(root, "ctrl", INSTANCE + ".qmp")
            before = livelib.block_state(qmp)

            def run_hook(name, phase="post"):
                return subprocess.run([HOOK], env=dict(env, GANETI_HOOKS_PHASE=phase,
                                                       GANETI_INSTANCE_NAME=name,
                                                       GANETI_OP_CODE="OP_INSTANCE_STARTUP"),
                                      capture_output=True, text=True, timeout=120)
            quiet = [run_hook(INSTANCE, "pre"), run_hook("other.example.org")]
            t.ok(all(h.returncode == 0 and not h.stdout for h in quiet)
                 and livelib.block_state(qmp) == before,
                 "the hook does nothing in the pre phase or for instances not configured",
                 detail="\n".join(h.stdout + h.stderr for h in quiet))
            hook = run_hook(INSTANCE)
            t.ok(hook.returncode == 0 and "enabled" in hook.stdout,
                 "the instance-start post hook enables blkin on disk/0",
                 detail=hook.stdout + hook.stderr)
            dev, _ = livelib.block_state(os.path.join(root, "ctrl", INSTANCE + ".qmp"))
            t.ok([v for v in dev.values() if v[2] == "blkin"],
                 "the disk's device is on a blkin node", detail=f"before {before}\nafter {dev}")

            def traced():
                rep = json.loads(st.cli("report", INSTANCE, "--window", "1h", "--json",
                                        check=False).stdout or "{}")
                # Joined requests reach the windows a hold time after they
                # complete: wait for their phases, not just the join count.
                for d in rep.get("disks", []):
                    phases = {p["phase"] for o in d.get("ops", []) for p in o["phases"]}
                    if d.get("counters", {}).get("matched", 0) > 100 and \
                            {"guest_to_device", "guest_to_qemu"} & phases:
                        return rep
                return None
            rep = st.wait_until(traced, timeout=90, interval=1)
            t.ok(rep, "hostd joins the instance's guest requests with the filter's spans",
                 detail=json.dumps(st.report(INSTANCE, window="1h"))[:3000])
            if rep:
                text = st.cli("report", INSTANCE, "--window", "1h").stdout
                t.diag(text[:3000])
                d = rep["disks"][0]
                t.ok(INSTANCE in text and "disk/0" in text,
                     "the report names the instance and Ganeti's disk (disk/0)")
                phases = {p["phase"] for o in d["ops"] for p in o["phases"]}
                # A virtio-blk disk: QEMU's own device times frame its part.
                t.ok({"guest_queue", "guest_to_device", "device", "qemu", "device_completion",
                      "device_to_guest", "total"} <= phases,
                     "the report shows every phase", detail=sorted(phases))
            r = livelib.live("disable", "--qmp", qmp, "--device", "disk-" + serial)
            t.ok(r.returncode == 0, "blkin-live disable on Ganeti's QMP socket",
                 detail=r.stdout + r.stderr)
            t.eq(livelib.block_state(qmp), before,
                 "disk/0 back on the node Ganeti's -drive made, nothing left over")
            # blkin-live by hand, without discovery's --id: QEMU's -name (the
            # instance) and Ganeti's disk name give the same disk identity.
            r = livelib.live("enable", "--qmp", qmp, "--device", "disk-" + serial,
                             "--target", "disk/0")
            t.ok(r.returncode == 0 and f"(id {want[4]})" in r.stdout,
                 f"blkin-live's own id for the disk is discovery's ({want[4]})",
                 detail=r.stdout + r.stderr)
            r = livelib.live("disable", "--qmp", qmp, "--device", "disk-" + serial)
            t.ok(r.returncode == 0 and livelib.block_state(qmp) == before,
                 "and off again, nothing left over", detail=r.stdout + r.stderr)
            time.sleep(2)
            console.stop = True
            os.kill(pid, signal.SIGTERM)
            gone = st.wait_until(lambda: not os.path.exists(f"/proc/{pid}/cmdline") or
                                 not open(f"/proc/{pid}/cmdline").read(), timeout=20)
            if gone:
                pid = None

            def unregistered():
                return st.cli("report", INSTANCE, "--json", check=False).returncode != 0
            t.ok(gone and st.wait_until(unregistered, timeout=25),
                 "hostd unregisters the instance once its QEMU is gone (after --linger)",
                 detail=open(st.hostd_log).read()[-1500:])
            sums, bad = summaries_ok(console.text)
            t.ok(len(sums) >= 2 and not bad and "WLFAILED" not in console.text,
                 f"{len(sums)} workload rounds before and after enabling: no errors, data verified",
                 detail=console.text[-2000:])
    finally:
        if console:
            console.stop = True
        if pid:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(root, ignore_errors=True)


def test_wrapper_passthrough(t):
    """Ganeti's probes (kvm --help, -M ?) go through the wrapper untouched."""
    r = subprocess.run([WRAPPER, "--version"], capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, BLKIN_GANETI_CONF="/nonexistent"))
    t.ok(r.returncode == 0 and "QEMU emulator version" in r.stdout,
         "wrapper passes probe runs through", detail=r.stdout + r.stderr)


def procs_named(name):
    """Pids of the processes whose command line has the argument name."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if name.encode() in argv:
            out.append(int(d))
    return out


def gone(pid, timeout=20):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return True
        except OSError:
            return True
        time.sleep(0.05)
    return False


def wrapper_env(tmp, **conf):
    path = os.path.join(tmp, "ganeti.conf")
    base = {"BLKIN_KVM": livelib.QEMU, "BLKIN_AGENT_DIR": os.path.join(tmp, "agents"),
            "BLKIN_INSTANCES": "all"}
    base.update(conf)
    with open(path, "w") as f:
        f.write("".join(f"{k}={v}\n" for k, v in base.items()))
    env = dict(os.environ, BLKIN_GANETI_CONF=path)
    env.pop("LD_PRELOAD", None)
    return env


def wrapper_argv(tmp, name, daemonize=True):
    """What Ganeti passes, cut down: a named instance, paused (-S), no guest."""
    argv = [WRAPPER, "-name", name, "-M", "pc", "-m", "64", "-display", "none", "-nodefaults",
            "-S", "-D", os.path.join(tmp, "qemu.log")]
    if daemonize:
        argv += ["-daemonize", "-pidfile", os.path.join(tmp, "qemu.pid")]
    return argv


def test_wrapper_preload_missing(t):
    """The preload object is missing: the instance starts without blkin, the
    wrapper says so where Ganeti's operators look, and the one process left
    is the QEMU Ganeti asked for (-daemonize, its pid file)."""
    tmp = tempfile.mkdtemp(prefix="blkin-kvm-", dir="/tmp")
    name = f"nopreload-{uuid.uuid4().hex[:8]}.example.org"
    missing = os.path.join(tmp, "lib", "libblkin-preload.so")
    try:
        r = subprocess.run(wrapper_argv(tmp, name), env=wrapper_env(tmp, BLKIN_PRELOAD=missing),
                           capture_output=True, text=True, timeout=60)
        t.ok(r.returncode == 0 and f"{name} starts WITHOUT blkin tracing" in r.stderr
             and missing in r.stderr,
             "preload missing: the wrapper says on stderr that the instance runs without blkin, "
             "and why", detail=r.stderr)
        pid = int(open(os.path.join(tmp, "qemu.pid")).read()) if os.path.exists(
            os.path.join(tmp, "qemu.pid")) else None
        with open(f"/proc/{pid}/environ", "rb") as f:
            environ = f.read()
        t.eq(procs_named(name), [pid], "one process runs: the QEMU in Ganeti's pid file")
        t.ok(b"libblkin-preload" not in environ and b"BLKIN_KVM_WRAPPED" in environ,
             "it is the wrapper's exec of QEMU, without the preload")
        os.kill(pid, signal.SIGTERM)
        t.ok(gone(pid) and procs_named(name) == [], "stopped by its pid, nothing is left")
    finally:
        for p in procs_named(name):
            os.kill(p, signal.SIGKILL)
        shutil.rmtree(tmp, ignore_errors=True)


def test_wrapper_refuses(t):
    """BLKIN_IF_MISSING=refuse: no QEMU at all, and the reason."""
    tmp = tempfile.mkdtemp(prefix="blkin-kvm-", dir="/tmp")
    name = f"refused-{uuid.uuid4().hex[:8]}.example.org"
    try:
        r = subprocess.run(wrapper_argv(tmp, name),
                           env=wrapper_env(tmp, BLKIN_PRELOAD=os.path.join(tmp, "none.so"),
                                           BLKIN_IF_MISSING="refuse"),
                           capture_output=True, text=True, timeout=60)
        t.ok(r.returncode == 1 and f"{name} NOT started" in r.stderr and "refuse" in r.stderr,
             "BLKIN_IF_MISSING=refuse: exit 1 with the reason (what Ganeti reports as the "
             "start's error)", detail=r.stderr)
        t.ok(procs_named(name) == [] and not os.path.exists(os.path.join(tmp, "qemu.pid")),
             "and no QEMU was started")
        # kvm_path's real QEMU pointing back at the wrapper would exec it forever.
        r = subprocess.run(wrapper_argv(tmp, name, daemonize=False),
                           env=wrapper_env(tmp, BLKIN_KVM=WRAPPER,
                                           BLKIN_PRELOAD=vm.preload_library()),
                           capture_output=True, text=True, timeout=60)
        t.ok(r.returncode == 1 and "runs blkin-kvm again" in r.stderr and
             procs_named(name) == [], "BLKIN_KVM naming the wrapper itself: refused, nothing runs",
             detail=r.stderr)
    finally:
        for p in procs_named(name):
            os.kill(p, signal.SIGKILL)
        shutil.rmtree(tmp, ignore_errors=True)


def test_wrapper_one_process(t):
    """The wrapper becomes QEMU (exec): whoever waits for it or kills it
    waits for or kills QEMU, and no other process is ever started."""
    tmp = tempfile.mkdtemp(prefix="blkin-kvm-", dir="/tmp")
    name = f"oneproc-{uuid.uuid4().hex[:8]}.example.org"
    p = None
    try:
        p = subprocess.Popen(wrapper_argv(tmp, name, daemonize=False),
                             env=wrapper_env(tmp, BLKIN_PRELOAD=vm.preload_library()),
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, start_new_session=True)

        def qemu():
            try:
                return os.path.realpath(f"/proc/{p.pid}/exe") == os.path.realpath(livelib.QEMU)
            except OSError:
                return False
        end = time.monotonic() + 30
        while not qemu() and time.monotonic() < end and p.poll() is None:
            time.sleep(0.05)
        with open(f"/proc/{p.pid}/environ", "rb") as f:
            environ = f.read()
        t.ok(qemu() and procs_named(name) == [p.pid] and b"libblkin-preload" in environ,
             "the wrapper's own pid is QEMU, with the preload; no other process has the "
             "instance's name", detail=f"{procs_named(name)} vs {p.pid}")
        p.terminate()
        p.wait(timeout=30)
        t.ok(procs_named(name) == [], "terminating the wrapper's pid leaves nothing behind")
    finally:
        if p and p.poll() is None:
            p.kill()
            p.wait()
        for q in procs_named(name):
            os.kill(q, signal.SIGKILL)
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    t = Tap()
    if not vm.preload_library() or not os.path.exists(livelib.LIVE) or not os.path.exists(TOOL):
        t.skip("Ganeti", "preload object, blkin-live or blkin-ganeti not built")
    else:
        # The wrapper needs no Ganeti.
        t.run(test_wrapper_passthrough)
        t.run(test_wrapper_preload_missing)
        t.run(test_wrapper_refuses)
        t.run(test_wrapper_one_process)
        if not ganeti_available():
            t.skip("Ganeti", "Debian's ganeti package is not installed (deps/80-live.list)")
        else:
            t.run(test_ganeti)
    t.done()


if __name__ == "__main__":
    main()
