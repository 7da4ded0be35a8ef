# SPDX-License-Identifier: GPL-2.0-or-later
"""A real one-node Ceph cluster for the tests (scripts/ceph-node.sh).

ONE cluster serves a whole test run: scripts/test.sh starts it before the
suite and exports BLKIN_CEPH_DIR; every Ceph test then uses it, each with
images of its own names. A test run alone (`meson test -C build NAME`)
starts a cluster of its own in its work directory and stops it at the end.

    with ceph.Cluster(workdir) as c:
        img = c.create_image("smoke", size_mb=64, scheduler="none")
        disk = c.disk(img, workdir, "rbd-a", blkin={"id": "vm/vda"})
"""
import json
import os
import shutil
import socket
import struct
import subprocess
import time
import uuid

import vm

SRC = os.environ.get("BLKIN_SOURCE_ROOT", os.path.join(os.path.dirname(__file__), "..", ".."))
NODE_SH = os.path.join(SRC, "scripts", "ceph-node.sh")


class CephUnavailable(Exception):
    """The Ceph packages are not installed (the message says which)."""


def _env_file(d):
    env = {}
    try:
        with open(os.path.join(d, "node.env")) as f:
            for line in f:
                k, _, v = line.strip().partition("=")
                env[k] = v.strip('"')
    except OSError:
        return None
    return env


def admin_socket(path, command, timeout=10):
    """One admin-socket command (the protocol ceph daemon speaks): the JSON
    command NUL-terminated, a 4-byte big-endian length, the answer."""
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(timeout)
    try:
        s.connect(path)
        s.sendall(json.dumps(command).encode() + b"\0")
        hdr = b""
        while len(hdr) < 4:
            chunk = s.recv(4 - len(hdr))
            if not chunk:
                raise OSError("admin socket closed")
            hdr += chunk
        n = struct.unpack(">I", hdr)[0]
        data = b""
        while len(data) < n:
            chunk = s.recv(n - len(data))
            if not chunk:
                raise OSError("admin socket closed")
            data += chunk
        return data
    finally:
        s.close()


class Cluster:
    def __init__(self, workdir):
        shared = os.environ.get("BLKIN_CEPH_DIR")
        self.owned = not (shared and _env_file(shared))
        self.dir = os.path.join(workdir, "ceph") if self.owned else shared
        self.images = []

    def __enter__(self):
        if self.owned:
            r = subprocess.run(["bash", NODE_SH, "start", self.dir], capture_output=True, text=True,
                               timeout=300)
            if r.returncode != 0:
                if "missing Debian packages" in r.stderr:
                    raise CephUnavailable(r.stderr.strip())
                raise RuntimeError("ceph-node.sh start failed: " + r.stderr[-3000:])
        env = _env_file(self.dir)
        self.conf = env["CEPH_CONF"]
        self.pool = env["POOL"]
        self.osd_asok = env["OSD_ASOK"]
        return self

    def close(self):
        for name in self.images:
            self.run("rbd", "rm", "--no-progress", f"{self.pool}/{name}", check=False)
        self.images = []
        if self.owned:
            subprocess.run(["bash", NODE_SH, "stop", self.dir], timeout=120, check=False)

    def __exit__(self, *exc):
        self.close()

    def run(self, *argv, check=True, timeout=120, env_extra=None, **kw):
        env = dict(os.environ, CEPH_CONF=self.conf, **(env_extra or {}))
        r = subprocess.run(list(argv), capture_output=True, text=kw.pop("text", True),
                           timeout=timeout, env=env, **kw)
        if check and r.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)}: {r.stderr[-2000:]}")
        return r

    def create_image(self, base, size_mb=64, scheduler=None):
        """A new image (a unique name from @base); @scheduler sets the image's
        rbd_io_scheduler ("none": one OSD op per request)."""
        name = f"{base}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.run("rbd", "create", "--size", str(size_mb), f"{self.pool}/{name}")
        self.images.append(name)
        if scheduler:
            self.run("rbd", "config", "image", "set", f"{self.pool}/{name}", "rbd_io_scheduler",
                     scheduler)
        return name

    def fill(self, image, offset, data):
        """Writes @data at @offset through librbd (qemu-io, no filter)."""
        path = os.path.join("/tmp", f"blkin-fill-{uuid.uuid4().hex}")
        with open(path, "wb") as f:
            f.write(data)
        try:
            self.run("qemu-io", "-f", "raw", "-c", f"write -s {path} {offset} {len(data)}",
                     self.rbd_uri(image))
        finally:
            os.unlink(path)

    def export(self, image, path):
        self.run("rbd", "export", "--no-progress", f"{self.pool}/{image}", path)

    def rbd_uri(self, image):
        return f"rbd:{self.pool}/{image}:conf={self.conf}"

    def proto_opts(self, image):
        """The rbd protocol node's -blockdev options. cache.direct: no librbd
        cache (rbd_cache=false), so a write completes when the OSD did."""
        return {"driver": "rbd", "pool": self.pool, "image": image, "conf": self.conf,
                "cache.direct": True}

    def disk(self, image, serial, blkin=None, **kw):
        """A vm.Disk of @image: rbd -> raw -> (blkin) -> virtio-blk."""
        return vm.Disk(os.path.join("/nonexistent", image), serial, fmt="raw", blkin=blkin,
                       proto_opts=self.proto_opts(image), **kw)

    def osd(self, command, timeout=10):
        return json.loads(admin_socket(self.osd_asok, command, timeout=timeout) or b"{}")

    def perf(self):
        """The OSD's own counters (`perf dump`), its section `osd`."""
        return self.osd({"prefix": "perf dump"})["osd"]

    def osd_kill(self):
        subprocess.run(["bash", NODE_SH, "osd-kill", self.dir], check=True, timeout=60,
                       capture_output=True)

    def osd_start(self):
        r = subprocess.run(["bash", NODE_SH, "osd-start", self.dir], timeout=120,
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError("osd-start: " + r.stderr[-2000:])


def tools_available():
    return all(shutil.which(t) for t in ("ceph-mon", "ceph-osd", "ceph", "rbd"))


def wait_for(pred, timeout, interval=0.2):
    end = time.time() + timeout
    while time.time() < end:
        v = pred()
        if v:
            return v
        time.sleep(interval)
    return pred()


COLLECTOR = os.path.join(os.environ.get("BLKIN_BUILD_ROOT", os.path.join(SRC, "build")),
                         "ceph", "blkin-ceph-collector")


class Collector:
    """blkin-ceph-collector on the cluster's OSD admin sockets (or on the
    sockets @asok names), under timeout, on a free loopback port."""

    def __init__(self, workdir, cluster=None, asok=None, extra=(), lifetime=900):
        import stack
        self.port = stack.free_ports(1)[0]
        self.addr = f"127.0.0.1:{self.port}"
        globs = list(asok or []) or [os.path.join(os.path.dirname(cluster.osd_asok), "osd.*.asok")]
        self.log_path = os.path.join(workdir, f"collector-{self.port}.log")
        argv = ["timeout", "-s", "INT", "-k", "10", str(lifetime), COLLECTOR,
                "--listen", self.addr]
        for g in globs:
            argv += ["--asok", g]
        self.argv = argv + list(extra)
        self.proc = None

    def start(self):
        self.log = open(self.log_path, "a")
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.DEVNULL, stderr=self.log,
                                     env=dict(os.environ, G_MESSAGES_DEBUG="blkin-ceph"))
        ok = wait_for(lambda: "listening on" in self.text() or self.proc.poll() is not None, 30)
        if not ok or self.proc.poll() is not None:
            raise RuntimeError("blkin-ceph-collector did not start: " + self.text()[-2000:])
        return self

    def text(self):
        try:
            with open(self.log_path) as f:
                return f.read()
        except OSError:
            return ""

    def stop(self):
        """SIGINT (it puts the OSDs' history size back), then its exit code."""
        if not self.proc:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(2)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        rc = self.proc.returncode
        self.proc = None
        self.log.close()
        return rc

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
