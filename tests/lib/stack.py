# SPDX-License-Identifier: GPL-2.0-or-later
"""The host side of BlkKin, started for real: lttng-sessiond, an
lttng-relayd on loopback ports, a live session with the shipped channel, and
blkin-hostd reading it. Used by hostd's end-to-end tests and by the demo.

    with HostStack(workdir) as st:
        st.register("vm1", g.agent_socket, ["vda=disk-a=vm1/vda"])
        ...
        report = st.report("vm1")          # `blkin report --json`
"""
import json
import os
import signal
import socket
import subprocess
import time

import vm
from lttng import ensure_sessiond

SRC = os.environ.get("BLKIN_SOURCE_ROOT", os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("BLKIN_BUILD_ROOT", os.path.join(SRC, "build"))
HOSTD = os.path.join(BUILD, "hostd", "blkin-hostd")
CLI = os.path.join(BUILD, "cli", "blkin")


def free_ports(n):
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


class HostStack:
    def __init__(self, workdir, hold_ms=2000, live_timer_us=100000, session=None, hostd_args=(),
                 relayd_addr="127.0.0.1", events=("blkin_qemu:*",), hostd_wrapper=(),
                 node_cmd=(), hostname=None):
        self.workdir = workdir
        # Another node's stack (tests/ganeti: a node in namespaces): the
        # prefix that runs a command there (nsenter ...), and the node's host
        # name, which names its sessions on the relay daemon. The node runs
        # its own lttng-sessiond.
        self.node_cmd = list(node_cmd)
        self.hostname = hostname or socket.gethostname()
        self.hold_ms = hold_ms
        self.live_timer_us = live_timer_us
        self.session = session or "blkin-%d-%d" % (os.getpid(), int(time.time() * 1000) % 100000)
        self.hostd_args = list(hostd_args)
        # What runs hostd, e.g. valgrind and its options: everything it
        # does then takes ~20x longer.
        self.hostd_wrapper = list(hostd_wrapper)
        # Where the relay daemon takes traces: other nodes stream to it too.
        self.relayd_addr = relayd_addr
        self.events = list(events)  # e.g. + "zipkin:*" for storage services
        self.socket = os.path.join(workdir, "hostd.sock")
        self.relayd = None
        self.hostd = None
        self.session_created = False

    # -- LTTng ---------------------------------------------------------
    def _lttng(self, *args, check=True):
        return subprocess.run([*self.node_cmd, "lttng", *args], capture_output=True, text=True,
                              timeout=60, check=check)

    def _live_port_open(self, port):
        if self.node_cmd:
            return subprocess.run([*self.node_cmd, "bash", "-c", f"exec 3<>/dev/tcp/127.0.0.1/{port}"],
                                  capture_output=True, timeout=30).returncode == 0
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            return False

    def start_lttng(self):
        if not self.node_cmd:
            ensure_sessiond()
        ctrl, data, live = free_ports(3)
        self.live_port = live
        self.ctrl_port, self.data_port = ctrl, data
        self.relayd = subprocess.Popen(
            [*self.node_cmd, "lttng-relayd", "-C", f"tcp://{self.relayd_addr}:{ctrl}",
             "-D", f"tcp://{self.relayd_addr}:{data}",
             "-L", f"tcp://127.0.0.1:{live}", "-o", os.path.join(self.workdir, "relayd")],
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(self.workdir, "relayd.log"), "w"),
            start_new_session=True)
        for _ in range(100):
            if self._live_port_open(live):
                break
            time.sleep(0.05)
        self._ctrl_data = (ctrl, data)
        self._create_session()

    def _create_session(self):
        ctrl, data = self._ctrl_data
        self._lttng("create", self.session, f"--live={self.live_timer_us}",
                    f"--set-url=net://{self.relayd_addr}:{ctrl}:{data}")
        self.session_created = True
        subprocess.run([*self.node_cmd, os.path.join(SRC, "scripts", "blkin-lttng-channel"),
                        self.session], check=True, capture_output=True, timeout=60)
        for ev in self.events:
            self._lttng("enable-event", "--session=" + self.session, "-u", "-c", "blkin", ev)
        self._lttng("start", self.session)

    def recreate_session(self):
        """After the session daemon died (and took the session with it):
        starts a session daemon again if none answers and creates the same
        live session on the same relay daemon, so hostd's URL finds it."""
        if not self.node_cmd:
            ensure_sessiond()
        if self.session_created:
            self._lttng("destroy", self.session, check=False)
        self._create_session()

    @property
    def live_url(self):
        return f"net://127.0.0.1:{self.live_port}/host/{self.hostname}/{self.session}"

    # -- hostd ---------------------------------------------------------
    def start_hostd(self):
        self.hostd_log = os.path.join(self.workdir, "hostd.log")
        # A killed hostd leaves its socket file behind: wait for the new one.
        if os.path.exists(self.socket):
            os.unlink(self.socket)
        self.hostd = subprocess.Popen(
            [*self.node_cmd, *self.hostd_wrapper, HOSTD, "--live", self.live_url, "--socket", self.socket,
             "--state-dir", self.workdir, "--hold-ms", str(self.hold_ms), *self.hostd_args],
            stdout=subprocess.DEVNULL, stderr=open(self.hostd_log, "a"),
            env=dict(os.environ, G_MESSAGES_DEBUG=os.environ.get("G_MESSAGES_DEBUG", "")))
        for _ in range(100 * (12 if self.hostd_wrapper else 1)):
            if os.path.exists(self.socket):
                return
            if self.hostd.poll() is not None:
                raise RuntimeError("blkin-hostd exited: " + open(self.hostd_log).read()[-2000:])
            time.sleep(0.05)
        raise RuntimeError("blkin-hostd did not create its socket")

    def stop_hostd(self, sig=signal.SIGTERM):
        if self.hostd and self.hostd.poll() is None:
            self.hostd.send_signal(sig)
            try:
                self.hostd.wait(timeout=120 if self.hostd_wrapper else 20)
            except subprocess.TimeoutExpired:
                self.hostd.kill()
                self.hostd.wait()
        rc = self.hostd.returncode if self.hostd else None
        self.hostd = None
        return rc

    def cli(self, *args, check=True):
        r = subprocess.run([CLI, "--socket", self.socket, *args], capture_output=True, text=True,
                           timeout=60)
        if check and r.returncode != 0:
            raise RuntimeError(f"blkin {' '.join(args)}: {r.stderr}")
        return r

    def register(self, vm_name, agent_socket, disks):
        args = ["register", vm_name]
        if agent_socket:
            args += ["--agent-socket", agent_socket]
        for d in disks:
            args += ["--disk", d]
        return self.cli(*args)

    def report(self, vm_name=None, disk=None, window="1m"):
        args = ["report"] + [a for a in (vm_name, disk) if a] + ["--window", window, "--json"]
        return json.loads(self.cli(*args).stdout)

    def status(self):
        """`blkin status --json`: hostd's trace input state among others."""
        return json.loads(self.cli("status", "--json").stdout)

    def wait_until(self, pred, timeout=30, interval=0.5):
        end = time.time() + timeout
        while time.time() < end:
            v = pred()
            if v:
                return v
            time.sleep(interval)
        return pred()

    # -- lifecycle -----------------------------------------------------
    def __enter__(self):
        try:
            self.start_lttng()
            self.start_hostd()
        except BaseException:
            self.close()
            raise
        return self

    def close(self):
        self.stop_hostd()
        if self.session_created:
            self._lttng("destroy", self.session, check=False)
            self.session_created = False
        if self.relayd and self.relayd.poll() is None:
            self.relayd.terminate()
            try:
                self.relayd.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.relayd.kill()
                self.relayd.wait()
        self.relayd = None

    def __exit__(self, *exc):
        self.close()


class StackedDisk(vm.Disk):
    """A disk whose format layer sits between two blkin nodes: the top one
    (options `blkin`, seen by the guest's device) and one over the image
    file (id: the top id + "/file"), so the report can tell QEMU's format
    layer ("qemu") from the storage below it ("backend"). The whole chain is
    one -drive: -blockdev cannot name the out-of-tree driver."""

    def qemu_args(self):
        # A guest's discards reach the storage only when every node on the
        # way passes them (QEMU's default is discard=ignore, per node).
        unmap = {"discard": "unmap"} if self.blkin.get("discard") == "unmap" else {}
        low = dict({"driver": "blkin", "id": self.blkin["id"] + "/file",
                    "file": dict({"driver": "file", "filename": self.path}, **unmap,
                                 **self.proto_opts)}, **unmap)
        top = dict({"driver": "blkin"}, **self.blkin)
        top["file"] = dict({"driver": self.fmt, "file": low}, **unmap, **self.fmt_opts)
        js = json.dumps(top, separators=(",", ":"))
        args = ["-drive", f"if=none,id={self.drive_id},node-name={self.filter_node},"
                          f"file=json:{js.replace(',', ',,')}"]
        dev = {"id": self.device_id, "serial": self.serial, "drive": self.drive_id}
        dev.update(self.device_opts)
        return args + ["-device", "virtio-blk-pci," + ",".join(
            f"{k}={str(v).replace(',', ',,')}" for k, v in dev.items())]
