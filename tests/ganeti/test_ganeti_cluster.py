#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""A real Ganeti 3.0 cluster (scripts/ganeti-node.sh: two nodes in
namespaces, TCG) starting instances through blkin's kvm_path wrapper, with
blkin's hook, and one blkin-hostd per node (--ganeti-runtime, each with its
own LTTng). What a user would check, in order:

- `gnt-instance add` of an instance with two disks: Ganeti creates the disks
  (sharedfile), runs the blkin-test OS's create script, starts QEMU through
  the wrapper (preload, agent channel, serials), the hook puts the filter on
  both disks; the guest sees the disks in Ganeti's order;
- hostd on that node registers the instance by itself, and `blkin report`
  shows the guest's workload per disk under the instance's name, with every
  phase of a virtio-blk disk;
- `gnt-instance reboot` (a new QEMU) and `gnt-instance migrate` to the other
  node and back keep the reports right: the node running the instance
  reports it, with all phases, counts that only grow, the node it left says
  it stopped and keeps its numbers;
- tracing off for one instance with the documented knob (the instance's
  kvm_path hypervisor parameter, docs/ganeti.md) stops its records while
  the other instance's go on; the default kvm_path brings them back;
- `gnt-instance remove` leaves the history intact (`blkin history`);
- every workload round in the guests verified its data; tearing the cluster
  down leaves no process behind.
The cluster is set up once for the whole file."""
import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

import vm
from stack import HostStack
from tap import Tap

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "live"))
import livelib  # noqa: E402

SRC = vm.source_root()
BUILD = vm.build_root()
NODE_SH = os.path.join(SRC, "scripts", "ganeti-node.sh")
WRAPPER = os.path.join(BUILD, "ganeti", "blkin-kvm")
TOOL = os.path.join(BUILD, "ganeti", "blkin-ganeti")
INST1 = "inst1.blkin.test"
INST2 = "inst2.blkin.test"
RUNTIME = "/run/ganeti/kvm-hypervisor"  # = /var/run/ganeti/kvm-hypervisor
# The phases of a joined request on a virtio-blk disk (docs/hostd.md).
PHASES = {"guest_queue", "guest_to_device", "device", "qemu", "device_completion",
          "device_to_guest", "total"}
PLAIN_ENV = ["env", "-i", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
             "HOME=/root", "LANG=C.UTF-8", "LC_ALL=C.UTF-8"]
ROUND = re.compile(r"^round=(\d+) summary .*$", re.M)


class Cluster:
    """The nodes ganeti-node.sh made in DIR: commands in a node, and where a
    node's files are seen from here."""

    def __init__(self, root, nodes):
        self.root = root
        self.nodes = nodes

    def name(self, n):
        return f"node{n}.blkin.test"

    def start(self):
        return subprocess.run(["nice", "bash", NODE_SH, "start", self.root, "--nodes",
                               str(self.nodes)], capture_output=True, text=True, timeout=900,
                              env=dict(os.environ, BLKIN_BUILD=BUILD))

    def stop(self):
        return subprocess.run(["bash", NODE_SH, "stop", self.root], capture_output=True,
                              text=True, timeout=900, env=dict(os.environ, BLKIN_BUILD=BUILD))

    def prefix(self, n):
        with open(os.path.join(self.root, f"node{n}", "holder.pid")) as f:
            pid = f.read().strip()
        return ["nsenter", f"--target={pid}", "--net", "--mount", "--uts", "--"]

    def run(self, n, argv, timeout=300):
        """argv on node n, in the plain environment Ganeti's daemons have."""
        return subprocess.run([*self.prefix(n), *PLAIN_ENV, *argv], capture_output=True,
                              text=True, timeout=timeout)

    def gnt(self, *argv, timeout=300):
        """A Ganeti command on the master (node 1)."""
        return self.run(1, list(argv), timeout=timeout)

    def path(self, n, p):
        """Node n's path p (under /run) as seen from here."""
        assert p.startswith("/run/")
        return os.path.join(self.root, f"node{n}", "run", p[len("/run/"):])

    def qemu_pid(self, n, inst):
        """The instance's QEMU on node n, as Ganeti's pid file and the
        process's command line say (Ganeti's own check), or None."""
        try:
            with open(self.path(n, f"{RUNTIME}/pid/{inst}")) as f:
                pid = int(f.read().strip())
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except (OSError, ValueError):
            return None
        return pid if inst.encode() in argv else None

    def where(self, inst):
        """(node, pid) running the instance, or (None, None)."""
        for n in range(1, self.nodes + 1):
            pid = self.qemu_pid(n, inst)
            if pid:
                return n, pid
        return None, None


class Console(threading.Thread):
    """The instance's serial console (Ganeti's ctrl/<instance>.serial) on
    whichever node runs it; reconnects when its QEMU restarts or moves."""

    def __init__(self, cluster, inst):
        super().__init__(daemon=True)
        self.cluster = cluster
        self.inst = inst
        self.text = ""
        self.stop = False
        self.lock = threading.Lock()

    def run(self):
        while not self.stop:
            n, _ = self.cluster.where(self.inst)
            if not n:
                time.sleep(0.2)
                continue
            s = socket.socket(socket.AF_UNIX)
            try:
                s.connect(self.cluster.path(n, f"{RUNTIME}/ctrl/{self.inst}.serial"))
            except OSError:
                s.close()
                time.sleep(0.2)
                continue
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
                with self.lock:
                    self.text += b.decode("utf-8", "replace")
            s.close()

    def mark(self):
        with self.lock:
            return len(self.text)

    def since(self, mark):
        with self.lock:
            return self.text[mark:]

    def rounds(self, mark=0):
        return ROUND.findall(self.since(mark))


def wait_until(pred, timeout, interval=1.0):
    end = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() > end:
            return v
        time.sleep(interval)


def report(st, inst):
    """`blkin report INSTANCE --window 1h --json`, or None."""
    r = st.cli("report", inst, "--window", "1h", "--json", check=False)
    if r.returncode != 0:
        return None
    try:
        return json.loads(r.stdout)
    except ValueError:
        return None


def disk_map(rep):
    return {d["disk"]: d for d in (rep or {}).get("disks", [])}


def traced(rep, disks, min_matched):
    """Every disk of the report joined at least min_matched requests (the
    counters since hostd started), and its reads and writes have every
    phase. Returns the reason it is not so, or ''."""
    dm = disk_map(rep)
    if sorted(dm) != sorted(disks):
        return f"disks {sorted(dm)}, want {sorted(disks)}"
    for name, want in disks.items():
        d = dm[name]
        if d["counters"]["matched"] < min_matched.get(name, 0):
            return f"{name}: matched {d['counters']['matched']} < {min_matched.get(name, 0)}"
        for op in d["ops"]:
            if op["op"] in ("read", "write"):
                missing = PHASES - {p["phase"] for p in op["phases"]}
                if missing:
                    return f"{name} {op['op']}: no {sorted(missing)}"
        if {o["op"] for o in d["ops"]} < {"read", "write"}:
            return f"{name}: ops {[o['op'] for o in d['ops']]}"
        for k, v in want.items():
            if d.get(k) != v:
                return f"{name}: {k} is {d.get(k)!r}, want {v!r}"
    return ""


def matched(rep):
    return {n: d["counters"]["matched"] for n, d in disk_map(rep).items()}


def counters(rep, *names):
    return {n: {k: d["counters"][k] for k in names} for n, d in disk_map(rep).items()}


def state(rep):
    """What to look at when a report is not as expected."""
    return json.dumps({n: {k: d.get(k) for k in ("vm_state", "device", "serial", "filter_id",
                                                 "agent", "clock", "counters")}
                       for n, d in disk_map(rep).items()}, indent=1)


def few_lost(before, after, seconds):
    """Between two reports of one hostd, `seconds` apart: what it could not
    join (unmatched on either side) or counts as missing from the agent is
    at most one second's worth of what it joined meanwhile (plus 20). When
    the VM moves to another QEMU the requests in flight then, and those
    whose records the agent had not sent yet (it sends every 100 ms), join
    on neither node. '' or the reason."""
    for disk, a in after.items():
        b = before.get(disk, {})
        joined = a["matched"] - b.get("matched", 0)
        for k in ("unmatched_guest", "unmatched_span", "agent_gap", "agent_drops"):
            lost = a[k] - b.get(k, 0)
            if lost > joined / max(seconds, 1.0) + 20:
                return (f"{disk}: {lost} more {k} for {joined} more joined in "
                        f"{seconds:.0f} s")
    return ""


LOSS = ("matched", "unmatched_guest", "unmatched_span", "agent_gap", "agent_drops")


def verified(console, mark=0):
    """The workload's rounds since mark: how many, and those that failed."""
    text = console.since(mark)
    rounds = ROUND.findall(text)
    bad = [line for line in re.findall(r"^round=\d+ summary .*$", text, re.M)
           if " errors=0 " not in line or not line.rstrip().endswith(" mismatches=0")]
    bad += re.findall(r"^WLFAILED.*$", text, re.M)
    return len(rounds), bad


def maps_of(pid):
    try:
        with open(f"/proc/{pid}/maps") as f:
            return f.read()
    except OSError:
        return ""


def ganeti_disks(cl, n, inst):
    """blkin-ganeti list on node n: {disk/N: (drive id, serial, filter id,
    preload)}."""
    r = cl.run(n, [TOOL, "list", inst], timeout=60)
    rows = [line.split("\t") for line in r.stdout.splitlines()]
    return {row[1]: (row[2], row[3], row[4], row[7]) for row in rows if len(row) >= 8}


def test_cluster(t, cl, work):
    t0 = time.monotonic()
    r = cl.start()
    t.ok(r.returncode == 0, f"ganeti-node.sh start: a {cl.nodes}-node Ganeti cluster "
         f"({time.monotonic() - t0:.0f} s)", detail=r.stdout + r.stderr)
    if r.returncode != 0:
        return
    t.diag(cl.gnt("gnt-node", "list").stdout)
    hv = cl.gnt("gnt-cluster", "info").stdout
    t.diag("\n".join(line for line in hv.splitlines()
                     if re.search(r"kvm_path|kvm_flag|kvm_extra|kernel_path|initrd_path|"
                                  r"root_path|Enabled disk|Master node", line)))

    with contextlib.ExitStack() as es:
        stacks = {}
        for n in range(1, cl.nodes + 1):
            d = os.path.join(work, f"node{n}")
            os.makedirs(d, exist_ok=True)
            stacks[n] = es.enter_context(HostStack(
                d, hold_ms=2000, node_cmd=cl.prefix(n), hostname=cl.name(n),
                # --capture: every guest record, so that a run whose joins
                # look wrong can be re-joined offline with the relay's trace.
                hostd_args=["--ganeti-runtime", RUNTIME, "--capture",
                            os.path.join(d, "guest-records.txt")]))
        consoles = {}

        def console(inst):
            if inst not in consoles:
                consoles[inst] = Console(cl, inst)
                consoles[inst].start()
                es.callback(setattr, consoles[inst], "stop", True)
            return consoles[inst]

        run_instance_lifecycle(t, cl, stacks, console)
        disable_one_instance(t, cl, stacks, console)
        remove_and_history(t, cl, stacks, console)


def run_instance_lifecycle(t, cl, stacks, console):
    st1 = stacks[1]
    r = cl.gnt("gnt-instance", "add", "-t", "sharedfile", "--disk", "0:size=64M",
               "--disk", "1:size=64M", "-o", "blkin-test", "--no-nics", "--no-name-check",
               "--no-ip-check", "-n", cl.name(1), INST1)
    t.ok(r.returncode == 0, "gnt-instance add: Ganeti creates the two disks, runs the OS "
         "definition and starts the instance", detail=r.stdout + r.stderr)
    if r.returncode != 0:
        return
    c1 = console(INST1)
    n, pid = cl.where(INST1)
    t.eq(n, 1, "the instance runs on node 1")
    with open(cl.path(1, f"{RUNTIME}/conf/{INST1}.runtime")) as f:
        runtime = json.load(f)
    with open(f"/proc/{pid}/environ", "rb") as f:
        environ = f.read().split(b"\0")
    preload = [e for e in environ if e.startswith(b"LD_PRELOAD=")]
    t.ok(runtime[0][0] == WRAPPER and preload and b"libblkin-preload.so" in preload[0],
         "Ganeti ran QEMU through blkin's wrapper (kvm_path), with blkin's preload",
         detail=f"{runtime[0][:3]} {preload}")
    gd = ganeti_disks(cl, 1, INST1)
    t.eq(sorted(gd), ["disk/0", "disk/1"], "blkin-ganeti list: the instance's two disks")
    t.ok({v[3] for v in gd.values()} == {"preload"}, "which can be traced (preload)", detail=gd)

    # The guest prints each disk's serial and the label the OS's create
    # script wrote on it: Ganeti's disk order, the wrapper's serials.
    def seen_disks():
        got = dict(re.findall(r"^BLKIN-DISK (vd\w) (serial=\S* label=.*?)\r?$", c1.text, re.M))
        return got if len(got) >= 2 else None
    got = wait_until(seen_disks, 120)
    want = {f"vd{'ab'[i]}": f"serial={gd[f'disk/{i}'][1]} label=BLKIN-TEST-OS {INST1} "
            f"disk/{i} of 2" for i in range(2) if f"disk/{i}" in gd}
    t.eq(got, want, "the guest sees disk/0 and disk/1 in order, with the wrapper's serials and "
         "the OS definition's labels")

    def registered():
        return report(st1, INST1)
    t.ok(wait_until(registered, 30), "hostd on node 1 registered the instance by itself "
         "(--ganeti-runtime, no blkin register)",
         detail=open(st1.hostd_log).read()[-2000:])
    qmp = cl.path(1, f"{RUNTIME}/ctrl/{INST1}.qmp")
    dev, _ = livelib.block_state(qmp)
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        filters = re.findall(rb'"driver":"blkin",,"id":"([^"]+)"', f.read())
    t.ok(len([v for v in dev.values() if v[2] == "blkin"]) == 2 and
         sorted(filters) == [f"{INST1}/disk/{i}".encode() for i in range(2)],
         "the blkin filter is on both disks from QEMU's start (the wrapper's -drive), with "
         "discovery's filter ids", detail=f"{dev} {filters}")

    want_disks = {f"disk/{i}": {"filter_id": f"{INST1}/disk/{i}", "serial": gd[f"disk/{i}"][1],
                                "device": "virtio-blk", "vm_state": "running"}
                  for i in range(2)}
    rep = wait_until(lambda: (not traced(report(st1, INST1), want_disks,
                                         {k: 200 for k in want_disks}))
                     and report(st1, INST1), 120, interval=2)
    t.ok(rep, "node 1's report: both disks under the instance's name, every phase on reads "
         "and writes", detail=traced(report(st1, INST1), want_disks, {}))
    text = st1.cli("report", INST1, "--window", "1h").stdout
    t.diag(text[:2500])
    t.ok(f"VM {INST1}" in text and "disk/0" in text and "disk/1" in text,
         "`blkin report` text names the instance and Ganeti's disks")
    if not rep:
        return

    # -- reboot: Ganeti stops QEMU and starts it again from its runtime.
    before = matched(rep)
    loss0 = counters(rep, *LOSS)
    mark = c1.mark()
    t_reboot = time.monotonic()
    r = cl.gnt("gnt-instance", "reboot", "--shutdown-timeout=0", INST1)
    n, pid2 = cl.where(INST1)
    t.ok(r.returncode == 0 and n == 1 and pid2 and pid2 != pid,
         "gnt-instance reboot: a new QEMU on node 1", detail=r.stdout + r.stderr)
    t.ok(wait_until(lambda: len(c1.rounds(mark)) >= 2, 120),
         "the guest boots again and runs its workload", detail=c1.since(mark)[-1500:])
    rep = wait_until(lambda: (not traced(report(st1, INST1), want_disks,
                                         {k: v + 200 for k, v in before.items()}))
                     and report(st1, INST1), 90, interval=2)
    t.ok(rep, "after the reboot node 1's report goes on: counts from before kept and growing, "
         "every phase", detail=traced(report(st1, INST1), want_disks, before))
    wait_until(lambda: len(c1.rounds(mark)) >= 10, 120)
    loss1 = counters(report(st1, INST1), *LOSS)
    lost = few_lost(loss0, loss1, time.monotonic() - t_reboot)
    t.ok(not lost, "the new QEMU's requests are traced from the first: nothing unmatched or "
         "missing beyond a second's worth", detail=f"{lost}: {loss0} -> {loss1}")

    # -- migrate to node 2, and back.
    for src, dst in ((1, 2), (2, 1)):
        st_src, st_dst = stacks[src], stacks[dst]
        rep_src = report(st_src, INST1)
        on_src = matched(rep_src)
        dst_before = matched(report(st_dst, INST1))
        dst_loss = counters(report(st_dst, INST1), *LOSS)
        mark = c1.mark()
        t0 = time.monotonic()
        r = cl.gnt("gnt-instance", "migrate", "-f", "-n", cl.name(dst), INST1)
        t_switch = time.monotonic()
        n, _ = cl.where(INST1)
        t.ok(r.returncode == 0 and n == dst,
             f"gnt-instance migrate: live to node {dst} ({time.monotonic() - t0:.0f} s)",
             detail=r.stdout + r.stderr)
        if n != dst:
            return
        t.ok(wait_until(lambda: len(c1.rounds(mark)) >= 3, 90),
             f"the guest runs on on node {dst}", detail=c1.since(mark)[-1500:])
        want_dst = {k: dict(v) for k, v in want_disks.items()}
        rep = wait_until(lambda: (not traced(report(st_dst, INST1), want_dst,
                                             {k: dst_before.get(k, 0) + 200 for k in want_dst}))
                         and report(st_dst, INST1), 90, interval=2)
        t.ok(rep, f"hostd on node {dst} takes the instance up by itself: both disks, growing, "
             "every phase", detail=f"{traced(report(st_dst, INST1), want_dst, {})}; before "
             f"{dst_before}; now {state(report(st_dst, INST1))}; hostd status "
             f"{st_dst.cli('status', check=False).stdout[:3000]}")
        wait_until(lambda: len(c1.rounds(mark)) >= 10, 120)
        loss = counters(report(st_dst, INST1), *LOSS)
        lost = few_lost(dst_loss, loss, time.monotonic() - t_switch)
        t.ok(not lost, f"node {dst} traces the instance from its first request there: "
             "nothing unmatched or missing beyond a second's worth",
             detail=f"{lost}: {dst_loss} -> {loss}; now {state(report(st_dst, INST1))}")
        want_src = {k: dict(v, vm_state="stopped") for k, v in want_disks.items()}
        t.ok(wait_until(lambda: not traced(report(st_src, INST1), want_src, on_src), 30),
             f"node {src}'s hostd says the instance stopped there and keeps its numbers",
             detail=traced(report(st_src, INST1), want_src, on_src))
        t.diag(f"node {dst} after the migration: {json.dumps(loss)}")
    n_rounds, bad = verified(c1)
    t.ok(n_rounds >= 8 and not bad, f"{n_rounds} workload rounds through boot, reboot and two "
         "migrations: no errors, all data verified", detail="\n".join(bad[:10]))
    logs = "".join(open(s.hostd_log).read() for s in stacks.values())
    t.ok(f"{INST1}: no spans will come" not in logs,
         "no hostd took any of its QEMUs for one without blkin", detail=logs[-1500:])


def disable_one_instance(t, cl, stacks, console):
    """The knob docs/ganeti.md gives: the instance's kvm_path."""
    st1 = stacks[1]
    r = cl.gnt("gnt-instance", "add", "-t", "sharedfile", "--disk", "0:size=32M",
               "-o", "blkin-test", "--no-nics", "--no-name-check", "--no-ip-check",
               "-n", cl.name(1), INST2)
    t.ok(r.returncode == 0, "a second instance (one disk) on node 1", detail=r.stdout + r.stderr)
    if r.returncode != 0:
        return
    c2 = console(INST2)
    want = {"disk/0": {"vm_state": "running"}}
    t.ok(wait_until(lambda: not traced(report(st1, INST2), want, {"disk/0": 100}), 120,
                    interval=2),
         "it is traced: every phase", detail=traced(report(st1, INST2), want, {}))

    def off_and_on(kvm_path, what):
        r = cl.gnt("gnt-instance", "modify", "-H", f"kvm_path={kvm_path}", INST2)
        ok = r.returncode == 0
        # A hard reboot restarts Ganeti's saved command line; a full one
        # (stop, start) builds it again from the instance's parameters.
        r2 = cl.gnt("gnt-instance", "reboot", "--type=full", "--shutdown-timeout=0", INST2)
        t.ok(ok and r2.returncode == 0, f"gnt-instance modify -H kvm_path={kvm_path}; "
             f"gnt-instance reboot --type=full ({what})",
             detail=r.stdout + r.stderr + r2.stdout + r2.stderr)
        return cl.where(INST2)[1]

    pid = off_and_on("/usr/bin/kvm", "tracing off")
    if not t.ok(pid and "libblkin-preload" not in maps_of(pid),
                "its QEMU runs without blkin's preload"):
        return
    t.ok(wait_until(lambda: f"{INST2}: no spans will come from its QEMU (pid {pid}): its QEMU "
                    "was not started through blkin-kvm" in open(st1.hostd_log).read(), 30) and
         {v[3] for v in ganeti_disks(cl, 1, INST2).values()} == {"no-preload"},
         "hostd and blkin-ganeti list say that it runs without blkin",
         detail=open(st1.hostd_log).read()[-1500:])
    mark = c2.mark()
    t.ok(wait_until(lambda: len(c2.rounds(mark)) >= 2, 120),
         "its guest runs its workload, untraced", detail=c2.since(mark)[-1500:])
    # Let anything recorded before the restart come in, then watch.
    time.sleep(3)
    frozen = {k: (d["counters"]["spans"], d["counters"]["guest_records"])
              for k, d in disk_map(report(st1, INST2)).items()}
    other = matched(report(stacks[cl.where(INST1)[0]], INST1))
    mark = c2.mark()
    wait_until(lambda: len(c2.rounds(mark)) >= 5, 120)
    after = {k: (d["counters"]["spans"], d["counters"]["guest_records"])
             for k, d in disk_map(report(st1, INST2)).items()}
    t.ok(len(c2.rounds(mark)) >= 5 and after == frozen,
         f"{len(c2.rounds(mark))} workload rounds later it has no new records (spans, guest "
         "requests)", detail=f"before {frozen} after {after}")
    now = matched(report(stacks[cl.where(INST1)[0]], INST1))
    t.ok(all(now.get(k, 0) > v for k, v in other.items()),
         "while the other instance's records go on", detail=f"{other} -> {now}")

    before = matched(report(st1, INST2))
    pid = off_and_on("default", "back to the cluster's blkin-kvm")
    t.ok(pid and "libblkin-preload" in maps_of(pid) and
         wait_until(lambda: not traced(report(st1, INST2), want,
                                       {k: v + 100 for k, v in before.items()}), 120, interval=2),
         "traced again", detail=traced(report(st1, INST2), want, {}))
    n_rounds, bad = verified(c2)
    t.ok(n_rounds >= 8 and not bad, f"{n_rounds} rounds in the second instance, data verified",
         detail="\n".join(bad[:10]))
    r = cl.gnt("gnt-instance", "remove", "-f", "--shutdown-timeout=0", INST2)
    t.ok(r.returncode == 0, "gnt-instance remove of the second instance",
         detail=r.stdout + r.stderr)


def remove_and_history(t, cl, stacks, console):
    n, _ = cl.where(INST1)
    if not n:
        t.ok(False, "the first instance runs somewhere to remove")
        return
    st = stacks[n]
    r = cl.gnt("gnt-instance", "remove", "-f", "--shutdown-timeout=0", INST1)
    t.ok(r.returncode == 0 and cl.where(INST1) == (None, None),
         "gnt-instance remove: the instance and its QEMU are gone", detail=r.stdout + r.stderr)
    t.ok(not os.listdir(os.path.join(cl.root, "srv", "ganeti", "shared-file-storage")),
         "and Ganeti removed its disks from the shared storage")
    t.ok(wait_until(lambda: disk_map(report(st, INST1)) and
                    all(d["vm_state"] == "stopped" for d in disk_map(report(st, INST1)).values()),
                    30),
         "hostd says it stopped (it lingers)")

    def ops(disks):
        return {d["disk"]: {o["op"]: o["count"] for o in d["ops"]} for d in disks}
    # Every node it ran on has its share of the history; the report (still
    # there while it lingers) and the history agree once the last minute
    # reached the store (checkpoints every 10 s).
    for m, s in stacks.items():
        def both():
            h = s.cli("history", INST1, "--json", check=False)
            try:
                return ops(json.loads(h.stdout)["disks"]), ops(report(s, INST1)["disks"])
            except (ValueError, KeyError, TypeError):
                return None, None
        got = wait_until(lambda: both()[0] and both()[0] == both()[1] and both()[0], 40,
                         interval=2)
        t.ok(got and sorted(got) == ["disk/0", "disk/1"] and
             all(sum(v.values()) > 0 for v in got.values()),
             f"`blkin history` on node {m}: both disks, the same requests per op as its "
             "report", detail="history {} report {}".format(*both()))
    t.diag(stacks[1].cli("history", INST1).stdout[:2000])


def main():
    t = Tap()
    if os.geteuid() != 0:
        t.skip("ganeti-cluster", "needs root (namespaces, mounts)")
    elif not vm.preload_library() or not os.path.exists(livelib.LIVE) or \
            not os.path.exists(TOOL):
        t.skip("ganeti-cluster", "preload object, blkin-live or blkin-ganeti not built")
    elif not shutil.which("gnt-cluster"):
        t.skip("ganeti-cluster", "Debian's ganeti package is not installed (deps/80-live.list)")
    else:
        work = livelib.workdir("ganeti", "cluster")
        root = tempfile.mkdtemp(prefix="blkin-gnt-", dir="/tmp")
        cl = Cluster(root, nodes=2)
        t0 = time.monotonic()
        try:
            t.run(test_cluster, cl, work)
        finally:
            r = cl.stop()
            t.diag(r.stderr)
            t.ok(r.returncode == 0 and "left behind" not in r.stderr,
                 "ganeti-node.sh stop: every process it and Ganeti started is gone, nothing "
                 "was left behind", detail=r.stdout + r.stderr)
            for n in range(1, cl.nodes + 1):
                src = os.path.join(root, f"node{n}", "log-ganeti")
                if os.path.isdir(src):
                    shutil.copytree(src, os.path.join(work, f"node{n}", "ganeti-log"),
                                    dirs_exist_ok=True, symlinks=True)
            for f in os.listdir(root):
                if f.endswith(".log"):
                    shutil.copy(os.path.join(root, f), work)
            if "left behind" not in r.stderr and r.returncode == 0:
                shutil.rmtree(root, ignore_errors=True)
            t.diag(f"wall time {time.monotonic() - t0:.0f} s")
    t.done()


if __name__ == "__main__":
    main()
