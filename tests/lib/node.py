# SPDX-License-Identifier: GPL-2.0-or-later
"""Simulated nodes for tests: Linux namespaces instead of machines.

LTTng keeps all its rendezvous points in a few machine-wide places: the root
session daemon's sockets and pid files under /run/lttng (= /var/run/lttng),
the per-user ones under $HOME/.lttng, and the lttng-ust "wait" shared memory
in /dev/shm. A test that needs its own lttng-sessiond (to kill it, or to play
a second storage node) therefore needs private copies of exactly those, which
a mount namespace with tmpfs over them gives; a network namespace adds its
own addresses and links.

    import node
    me = node.isolate()            # this process and its future children
    with node.Node("a") as a, node.Node("b") as b:
        node.link(a, b, "10.77.0.1/24", "10.77.0.2/24")
        b.start_sessiond()
        b.run(["lttng", "list"])
        b.kill_lttng(signal.SIGKILL)

isolate() moves the calling process itself (Python 3.11 has no os.unshare,
so unshare(2)/setns(2) go through ctypes); it must be called before the
process starts threads. A Node is a network namespace plus a "holder"
process (sleep) that owns a private mount namespace; commands enter both
with nsenter.
"""
import atexit
import ctypes
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time

CLONE_NEWNS = 0x00020000
CLONE_NEWNET = 0x40000000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18

# What a node gets privately: LTTng's root run directory (/var/run is a
# symlink to /run on Debian) and the shm where lttng-ust waits for sessiond.
PRIVATE_TMPFS = ("/run/lttng", "/dev/shm")
LTTNG_COMMS = ("lttng-sessiond", "lttng-consumerd", "lttng-relayd")

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                        ctypes.c_void_p]


def _check(rc, what):
    if rc != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"{what}: {os.strerror(e)}")


def _mount(src, target, fstype, flags, data=None):
    _check(_libc.mount(src and src.encode(), target.encode(), fstype and fstype.encode(), flags,
                       data and ctypes.c_char_p(data.encode())), f"mount {target}")


def _ns_id(pid, kind):
    try:
        return os.readlink(f"/proc/{pid}/ns/{kind}")
    except OSError:
        return None


def _comm(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return None


def pids_in(kind, ns_id, comms=None):
    """Processes whose namespace of that kind ("mnt", "net") is ns_id,
    optionally only those whose comm is in comms."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == os.getpid():
            continue
        if _ns_id(d, kind) != ns_id:
            continue
        if comms is not None and (_comm(d) or "") not in comms:
            continue
        out.append(int(d))
    return out


def _kill_wait(pids, sig, timeout=5.0):
    for p in pids:
        try:
            os.kill(p, sig)
        except ProcessLookupError:
            pass
    end = time.time() + timeout
    while time.time() < end:
        # Children of ours stay zombies until reaped; do not wait on those.
        alive = [p for p in pids if os.path.exists(f"/proc/{p}") and not _is_zombie(p)]
        if not alive:
            return []
        time.sleep(0.05)
    return alive


def _is_zombie(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def _lttng_kill(kind, ns_id, sig):
    """Kills the LTTng daemons in a namespace: sessiond first (so it cannot
    respawn a consumerd), then consumerds and relayds. Returns what it
    signalled."""
    sessiond = pids_in(kind, ns_id, ("lttng-sessiond",))
    _kill_wait(sessiond, sig)
    rest = pids_in(kind, ns_id, ("lttng-consumerd", "lttng-relayd"))
    left = _kill_wait(rest, sig)
    if left and sig != signal.SIGKILL:
        _kill_wait(left, signal.SIGKILL)
    return sessiond + rest


class Node:
    """A network namespace plus a private mount namespace (see module doc).

    Node(name) creates them; Node.current() describes the running process."""

    def __init__(self, name, _current=False):
        self.name = name
        self.home = tempfile.mkdtemp(prefix=f"blkin-node-{name}-home-")
        self.holder = None
        self.netns = None
        if _current:
            self.pid = os.getpid()
            self.mnt_ns = _ns_id("self", "mnt")
            self.net_ns = _ns_id("self", "net")
            return
        self.netns = f"blkin-{name}-{secrets.token_hex(3)}"
        subprocess.run(["ip", "netns", "add", self.netns], check=True, timeout=30)
        try:
            subprocess.run(["ip", "-n", self.netns, "link", "set", "lo", "up"], check=True,
                           timeout=30)
            mounts = " && ".join(f"mkdir -p {p} && mount -t tmpfs -o mode=1777 tmpfs {p}"
                                 for p in PRIVATE_TMPFS)
            # ip netns exec already gives a new mount namespace (slave of
            # the host's); unshare makes the holder's own, private one.
            self.holder = subprocess.Popen(
                ["ip", "netns", "exec", self.netns, "unshare", "--mount", "--propagation",
                 "private", "sh", "-c", f"{mounts} && echo ready && exec sleep infinity"],
                stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
                start_new_session=True)
            if self.holder.stdout.readline().strip() != "ready":
                raise RuntimeError(f"node {name}: namespace holder failed")
            self.holder.stdout.close()
            # The pid that owns the namespaces is sleep (sh exec'd it).
            self.pid = self.holder.pid
            self.mnt_ns = _ns_id(self.pid, "mnt")
            self.net_ns = _ns_id(self.pid, "net")
        except BaseException:
            self.close()
            raise

    @classmethod
    def current(cls, name="self"):
        return cls(name, _current=True)

    # -- running things in the node --------------------------------------
    def cmd(self, argv, cwd=None):
        """argv prefixed so that it runs in this node's namespaces, with
        the node's HOME."""
        if self.holder is None:
            return ["env", f"HOME={self.home}", *argv]
        return ["nsenter", f"--target={self.pid}", "--net", "--mount",
                f"--wd={cwd or os.getcwd()}", "--", "env", f"HOME={self.home}", *argv]

    def run(self, argv, **kw):
        kw.setdefault("timeout", 60)
        return subprocess.run(self.cmd(argv, kw.pop("cwd", None)), **kw)

    def popen(self, argv, **kw):
        return subprocess.Popen(self.cmd(argv, kw.pop("cwd", None)), **kw)

    # -- LTTng in the node -------------------------------------------------
    def sessiond_running(self):
        return self.run(["lttng", "list"], capture_output=True).returncode == 0

    def start_sessiond(self, timeout=20):
        """Starts this node's lttng-sessiond (if none answers) and returns
        once `lttng list` in the node answers."""
        if self.sessiond_running():
            return
        self.run(["lttng-sessiond", "--daemonize"], stdout=subprocess.DEVNULL,
                 stderr=subprocess.DEVNULL)
        end = time.time() + timeout
        while time.time() < end:
            if self.sessiond_running():
                return
            time.sleep(0.1)
        raise RuntimeError(f"node {self.name}: lttng-sessiond did not start")

    def sessiond_pids(self):
        return pids_in("mnt", self.mnt_ns, ("lttng-sessiond",))

    def consumerd_pids(self):
        return pids_in("mnt", self.mnt_ns, ("lttng-consumerd",))

    def kill_lttng(self, sig=signal.SIGKILL, relayd=False):
        """Kills this node's sessiond and its consumerd(s) (and relayd(s) if
        asked); returns the pids signalled. Kill and wait: once it returns,
        they are gone (or zombies of this process)."""
        if self.mnt_ns == _HOST_MNT_NS:
            raise RuntimeError("refusing to kill the machine's own LTTng daemons")
        sessiond = pids_in("mnt", self.mnt_ns, ("lttng-sessiond",))
        _kill_wait(sessiond, sig)
        comms = ("lttng-consumerd", "lttng-relayd") if relayd else ("lttng-consumerd",)
        rest = pids_in("mnt", self.mnt_ns, comms)
        _kill_wait(rest, sig)
        return sessiond + rest

    # -- lifecycle ---------------------------------------------------------
    def close(self):
        """Kills every process in the node (holder included) and removes
        its network namespace."""
        if self.holder is not None:
            if self.mnt_ns:
                _lttng_kill("mnt", self.mnt_ns, signal.SIGTERM)
            for kind, ns in (("mnt", self.mnt_ns), ("net", self.net_ns)):
                if ns:
                    _kill_wait(pids_in(kind, ns), signal.SIGKILL)
            try:
                self.holder.kill()
            except ProcessLookupError:
                pass
            self.holder.wait()
            self.holder = None
        if self.netns:
            subprocess.run(["ip", "netns", "del", self.netns], timeout=30,
                           stderr=subprocess.DEVNULL)
            self.netns = None
        shutil.rmtree(self.home, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return f"Node({self.name!r}, pid={self.pid}, netns={self.netns!r})"


_HOST_MNT_NS = _ns_id("self", "mnt")  # as this module was imported
_host_mnt_fd = None
_isolated = None


def host_cmd(argv):
    """argv prefixed to run in the mount namespace this process had before
    isolate() (the machine's LTTng), e.g. to check that something is not
    visible there."""
    if _host_mnt_fd is None:
        return list(argv)
    return ["nsenter", f"--mount=/proc/{os.getpid()}/fd/{_host_mnt_fd}", "--", *argv]


def isolate(netns=None):
    """Moves this process into a new mount namespace with private tmpfs on
    /run/lttng and /dev/shm and a private HOME, and into network namespace
    `netns` (a name under /run/netns, or a Node) if given. Children started
    afterwards inherit all of it; an atexit hook kills the LTTng daemons
    left in the namespace. Returns the Node describing this process.
    Calling it again returns the same Node."""
    global _isolated, _host_mnt_fd
    if _isolated is not None:
        return _isolated
    _host_mnt_fd = os.open("/proc/self/ns/mnt", os.O_RDONLY)  # kept for host_cmd (inherited)
    os.set_inheritable(_host_mnt_fd, True)
    if netns is not None:
        path = (f"/proc/{netns.pid}/ns/net" if isinstance(netns, Node)
                else netns if netns.startswith("/") else f"/run/netns/{netns}")
        fd = os.open(path, os.O_RDONLY)
        try:
            _check(_libc.setns(fd, CLONE_NEWNET), f"setns {path}")
        finally:
            os.close(fd)
    _check(_libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    # Nothing mounted here may leak back to the machine's namespace.
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    for p in PRIVATE_TMPFS:
        os.makedirs(p, exist_ok=True)
        _mount("tmpfs", p, "tmpfs", 0, "mode=1777")
    me = Node.current("self")
    os.environ["HOME"] = me.home
    os.environ.pop("LTTNG_HOME", None)
    _isolated = me
    atexit.register(_teardown, me)
    return me


def _teardown(me):
    if me.mnt_ns != _HOST_MNT_NS:
        _lttng_kill("mnt", me.mnt_ns, signal.SIGTERM)
    shutil.rmtree(me.home, ignore_errors=True)


def link(a, b, addr_a, addr_b):
    """A veth pair between nodes a and b (Node objects; one may be the
    isolate()d current process), addresses "ip/prefix" set, links up.
    Returns the two interface names (in a, in b)."""
    tag = secrets.token_hex(3)
    ia, ib = f"bka{tag}", f"bkb{tag}"  # <= 15 characters
    subprocess.run(["ip", "link", "add", ia, "type", "veth", "peer", "name", ib], check=True,
                   timeout=30)
    for n, ifname, addr in ((a, ia, addr_a), (b, ib, addr_b)):
        subprocess.run(["ip", "link", "set", ifname, "netns", str(n.pid)], check=True, timeout=30)
        n.run(["ip", "addr", "add", addr, "dev", ifname], check=True)
        n.run(["ip", "link", "set", ifname, "up"], check=True)
    return ia, ib
