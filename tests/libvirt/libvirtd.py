# SPDX-License-Identifier: GPL-2.0-or-later
"""A private libvirtd for tests: the Debian binary, its own configuration,
state, cache, logs, hooks and sockets, so it never meets a system libvirtd.

libvirtd reads fixed paths (/etc/libvirt, /run/libvirt, /var/lib/libvirt,
...) when it runs as root, so it runs in a mount namespace of its own where
test directories are bind-mounted over those paths. Its sockets are in the
test's run directory, which clients reach from outside as
qemu:///system?socket=RUN/libvirt-sock.

Its qemu.conf runs QEMU as root: /dev/kvm is root-only on these machines,
and with libvirt's QEMU user libvirt sees KVM in its probe but not for that
user, throws its capabilities cache away and probes QEMU again on every API
call (~4 s each).
"""
import glob
import os
import shutil
import signal
import subprocess
import tempfile
import time

QEMU_CONF = """# Written by tests/libvirt/libvirtd.py
user = "root"
group = "root"
security_driver = "none"
stdio_handler = "file"
"""

LIBVIRTD_CONF = """# Written by tests/libvirt/libvirtd.py
auth_unix_ro = "none"
auth_unix_rw = "none"
unix_sock_rw_perms = "0700"
log_outputs = "3:file:/var/log/libvirt/libvirtd.log"
"""

MOUNTS = [("etc", "/etc/libvirt"), ("run", "/run/libvirt"), ("lib", "/var/lib/libvirt"),
          ("cache", "/var/cache/libvirt"), ("log", "/var/log/libvirt")]


def available():
    return all(shutil.which(p) for p in ("libvirtd", "virsh", "unshare"))


class Libvirtd:
    def __init__(self, hooks=None):
        """hooks: {name: script text} placed in etc/hooks/qemu.d/ (libvirt
        only looks for hooks when it starts)."""
        self.root = tempfile.mkdtemp(prefix="blkin-lv-")
        self.hooks = dict(hooks or {})
        self.proc = None

    @property
    def uri(self):
        return f"qemu:///system?socket={self.root}/run/libvirt-sock"

    def path(self, *p):
        return os.path.join(self.root, *p)

    def virsh(self, *args, check=False, timeout=120, input=None):
        return subprocess.run(["virsh", "-c", self.uri, *args], capture_output=True, text=True,
                              timeout=timeout, check=check, input=input)

    def start(self, timeout=90):
        if self.proc and self.proc.poll() is None:
            return self
        etc = self.path("etc")
        shutil.rmtree(etc, ignore_errors=True)
        shutil.copytree("/etc/libvirt", etc, symlinks=True)
        with open(os.path.join(etc, "qemu.conf"), "w") as f:
            f.write(QEMU_CONF)
        with open(os.path.join(etc, "libvirtd.conf"), "w") as f:
            f.write(LIBVIRTD_CONF)
        shutil.rmtree(os.path.join(etc, "qemu"), ignore_errors=True)  # no system domains
        hookdir = os.path.join(etc, "hooks", "qemu.d")
        shutil.rmtree(os.path.join(etc, "hooks"), ignore_errors=True)
        os.makedirs(hookdir)
        for name, text in self.hooks.items():
            p = os.path.join(hookdir, name)
            with open(p, "w") as f:
                f.write(text)
            os.chmod(p, 0o755)
        script = []
        for sub, target in MOUNTS:
            os.makedirs(self.path(sub), exist_ok=True)
            os.makedirs(target, exist_ok=True)
            script.append(f"mount --bind {self.path(sub)} {target}")
        # The default pid file, /run/libvirtd.pid, is outside the private
        # directories: two private daemons would refuse each other.
        script.append("exec libvirtd --config /etc/libvirt/libvirtd.conf "
                      "--pid-file /run/libvirt/libvirtd.pid")
        self.log = open(self.path("libvirtd.stderr"), "w")
        self.proc = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "sh", "-ec", " && ".join(script)],
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        end = time.time() + timeout
        while time.time() < end:
            if self.proc.poll() is not None:
                raise RuntimeError("libvirtd exited: " + open(self.path("libvirtd.stderr")).read())
            if os.path.exists(self.path("run", "libvirt-sock")) and \
                    self.virsh("version", timeout=60).returncode == 0:
                return self
            time.sleep(0.3)
        raise RuntimeError("libvirtd did not answer")

    def qemu_pids(self):
        pids = []
        for p in glob.glob(self.path("run", "qemu", "*.pid")):
            try:
                pids.append(int(open(p).read().strip()))
            except (OSError, ValueError):
                pass
        return pids

    def stop(self):
        if self.proc and self.proc.poll() is None:
            for name in self.virsh("list", "--name", timeout=30).stdout.split():
                self.virsh("destroy", name, timeout=60)
        # QEMU outlives libvirtd by design: end any the test left.
        for pid in self.qemu_pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def cleanup(self):
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc):
        self.stop()
