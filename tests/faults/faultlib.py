# SPDX-License-Identifier: GPL-2.0-or-later
"""Shared by the fault tests: a blkin-hostd started on its own (no LTTng
needed when only agent channels matter), its log, and its memory."""
import json
import os
import signal
import subprocess
import time

SRC = os.environ.get("BLKIN_SOURCE_ROOT", os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("BLKIN_BUILD_ROOT", os.path.join(SRC, "build"))
HOSTD = os.path.join(BUILD, "hostd", "blkin-hostd")
CLI = os.path.join(BUILD, "cli", "blkin")


class Hostd:
    """blkin-hostd with a live URL nobody serves: it keeps retrying LTTng
    once a second and serves its agent channels and control socket."""

    def __init__(self, workdir, hold_ms=500, live=None, args=(), wrapper=(), history=False):
        self.workdir = workdir
        self.socket = os.path.join(workdir, "hostd.sock")
        self.log = os.path.join(workdir, "hostd.log")
        self.live = live or "net://127.0.0.1:9/host/nohost/nosession"
        self.hold_ms = hold_ms
        self.args = list(args)
        self.wrapper = list(wrapper)  # e.g. valgrind and its options
        self.history = history  # keep a history in workdir (else --no-history)
        self.proc = None

    def start(self):
        if os.path.exists(self.socket):
            os.unlink(self.socket)
        self.proc = subprocess.Popen(
            [*self.wrapper, HOSTD, "--live", self.live, "--socket", self.socket, "--state-dir", self.workdir,
             "--hold-ms", str(self.hold_ms), *([] if self.history else ["--no-history"]), *self.args],
            stdout=subprocess.DEVNULL, stderr=open(self.log, "a"))
        for _ in range(200 * (20 if self.wrapper else 1)):
            if os.path.exists(self.socket):
                return self
            if self.proc.poll() is not None:
                raise RuntimeError("blkin-hostd exited: " + self.log_text()[-2000:])
            time.sleep(0.05)
        raise RuntimeError("blkin-hostd did not create its socket")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=120 if self.wrapper else 20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode if self.proc else None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def cli(self, *args, check=True):
        r = subprocess.run([CLI, "--socket", self.socket, *args], capture_output=True,
                           text=True, timeout=60)
        if check and r.returncode != 0:
            raise RuntimeError(f"blkin {' '.join(args)}: {r.stderr}")
        return r

    def register(self, vm_name, agent_socket, disks):
        args = ["register", vm_name, "--agent-socket", agent_socket]
        for d in disks:
            args += ["--disk", d]
        return self.cli(*args)

    def report(self, vm_name=None, window="1m"):
        args = ["report"] + ([vm_name] if vm_name else []) + ["--window", window, "--json"]
        return json.loads(self.cli(*args).stdout)

    def rss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def sanitized(self):
        """True when hostd runs with ASan, whose quarantine and shadow
        memory make its resident size meaningless."""
        try:
            with open(f"/proc/{self.proc.pid}/maps") as f:
                return "libasan" in f.read()
        except OSError:
            return False

    def log_text(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""
