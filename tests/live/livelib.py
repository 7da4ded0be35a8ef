# SPDX-License-Identifier: GPL-2.0-or-later
"""Helpers for the blkin-live and Ganeti tests: a one-shot QMP client, a
paused QEMU without a guest, and running blkin-live."""
import atexit
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time

import vm

BUILD = vm.build_root()
LIVE = os.path.join(BUILD, "live", "blkin-live")
QEMU = "/usr/bin/qemu-system-x86_64"


def workdir(area, name):
    d = os.path.join(BUILD, "tests", area, "work", name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    return d


def sockdir():
    """Short directory for UNIX sockets (108-byte path limit), removed when
    the test exits."""
    d = tempfile.mkdtemp(prefix="blkin-live-", dir="/tmp")
    atexit.register(shutil.rmtree, d, ignore_errors=True)
    return d


class Qmp:
    """One QMP connection; QEMU serves one client per monitor at a time, so
    close it before another client (blkin-live) talks to the same socket."""

    def __init__(self, path, timeout=10):
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX)
                self.sock.settimeout(timeout)
                self.sock.connect(path)
                break
            except OSError:
                self.sock.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        self.f = self.sock.makefile("rwb")
        self._read()
        self.cmd("qmp_capabilities")

    def _read(self):
        while True:
            line = self.f.readline()
            if not line:
                raise OSError("QMP connection closed")
            msg = json.loads(line)
            if "event" not in msg:
                return msg

    def cmd(self, name, **args):
        req = {"execute": name}
        if args:
            req["arguments"] = args
        self.f.write(json.dumps(req).encode() + b"\n")
        self.f.flush()
        msg = self._read()
        if "error" in msg:
            raise RuntimeError(f"{name}: {msg['error'].get('desc')}")
        return msg["return"]

    def close(self):
        try:
            self.f.close()
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def block_state(path):
    """What enable/disable may change: device -> (backend, node, driver),
    and the set of named nodes."""
    with Qmp(path) as q:
        blocks = q.cmd("query-block")
        nodes = q.cmd("query-named-block-nodes")
    dev = {b.get("qdev"): (b.get("device"), b.get("inserted", {}).get("node-name"),
                           b.get("inserted", {}).get("drv")) for b in blocks}
    return dev, sorted(n["node-name"] for n in nodes)


def live(*args, timeout=60):
    return subprocess.run([LIVE, *args], capture_output=True, text=True, timeout=timeout)


class PausedQemu:
    """A q35 QEMU stopped before the guest runs (-S): enough block graph and
    devices for QMP, no kernel, no CPU time. argv and env are the caller's."""

    def __init__(self, argv, env=None, log=None):
        self.proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL,
                                     stderr=open(log, "w") if log else subprocess.DEVNULL)

    def close(self):
        # SIGTERM: timeout(1) passes it on to QEMU (SIGKILL would orphan it).
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=30)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def paused_qemu_argv(qmp_path, image, extra=()):
    return ["timeout", "120", QEMU, "-M", "q35", "-accel", "tcg", "-S", "-nodefaults",
            "-display", "none", "-qmp", f"unix:{qmp_path},server=on,wait=off",
            "-drive", f"file={image},format=raw,if=none,id=drv0",
            "-device", "virtio-blk-pci,id=disk0,drive=drv0,serial=s0", *extra]


def wait_socket(path, timeout=30):
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(path)
        time.sleep(0.05)
