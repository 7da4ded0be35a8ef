# SPDX-License-Identifier: GPL-2.0-or-later
"""Shared by the tests of hostd's host-side surfaces (the control socket,
/metrics) against hostile local clients: a hostd started as systemd would
(soft fd limit 1,024), and what an operator looks at while a client
misbehaves -- does `blkin status` answer, does a scrape answer, and
hostd's fds (/proc/PID/fd), resident size (VmRSS), CPU time
(/proc/PID/stat) and log (docs/security.md, "Host-side surfaces")."""
import errno
import os
import socket
import re
import resource
import shutil
import subprocess
import sys
import time
import urllib.request

from faultlib import BUILD, CLI, Hostd

# systemd's default for services (and most shells'): soft 1,024, with a
# hard limit far above; hostd is expected to raise the soft one itself.
SOFT_NOFILE = 1024

# Lines of hostd's log that have nothing to do with clients: the trace
# input it retries every second (nobody serves its live URL here).
_NOISE = re.compile(r"PLUGIN/|trace input|^\s*$")


def start_hostd(name, metrics_port=None, config=None):
    """A hostd in its own work dir under a soft fd limit of 1,024 (the
    hard limit stays the test's own)."""
    wd = os.path.join(BUILD, "tests", "faults", "work", name)
    shutil.rmtree(wd, ignore_errors=True)
    os.makedirs(wd)
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    # The wrapper execs hostd: the pid stays hostd's.
    wrapper = [sys.executable, "-c",
               "import os, resource, sys; "
               f"resource.setrlimit(resource.RLIMIT_NOFILE, ({SOFT_NOFILE}, {hard})); "
               "os.execv(sys.argv[1], sys.argv[1:])"]
    args = []
    if metrics_port:
        args += ["--metrics", f"127.0.0.1:{metrics_port}"]
    if config:
        path = os.path.join(wd, "hostd.conf")
        with open(path, "w") as f:
            f.write(config)
        args += ["--config", path]
    h = Hostd(wd, args=args)
    h.wrapper = wrapper
    h.start()
    # Let its first trace-input retry and start-up lines pass.
    time.sleep(1)
    return h


def fds(h):
    try:
        return len(os.listdir(f"/proc/{h.proc.pid}/fd"))
    except OSError:
        return -1


def cpu_s(h):
    """User plus system CPU time of hostd, in seconds."""
    with open(f"/proc/{h.proc.pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def log_lines(h):
    """hostd's log lines that are not the trace input's retries."""
    return [l for l in h.log_text().splitlines() if not _NOISE.search(l)]


def status(h, timeout=20):
    """`blkin status` as an operator runs it: (answered, seconds taken)."""
    t0 = time.monotonic()
    try:
        r = subprocess.run([CLI, "--socket", h.socket, "status"], capture_output=True,
                           text=True, timeout=timeout)
        ok = r.returncode == 0 and '"ok"' in r.stdout
    except subprocess.TimeoutExpired:
        ok = False
    return ok, time.monotonic() - t0


def scrape(port, timeout=20):
    """GET /metrics: (answered, seconds taken)."""
    t0 = time.monotonic()
    try:
        # No proxy from the environment: this is loopback.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(f"http://127.0.0.1:{port}/metrics", timeout=timeout) as r:
            ok = r.status == 200 and b"blkin_lttng_discarded_events_total" in r.read()
    except OSError:
        ok = False
    return ok, time.monotonic() - t0


def answers_within(fn, deadline_s, *args):
    """Polls @fn until it answers, up to @deadline_s; (ok, seconds)."""
    t0 = time.monotonic()
    while True:
        ok, _ = fn(*args, timeout=max(1, deadline_s - (time.monotonic() - t0)))
        if ok or time.monotonic() - t0 >= deadline_s:
            return ok, time.monotonic() - t0
        time.sleep(0.5)


class Watch:
    """Peaks of hostd's fds and RSS, and its CPU time, over a window."""

    def __init__(self, h):
        self.h = h
        self.cpu0 = cpu_s(h)
        self.t0 = time.monotonic()
        self.fds = fds(h)
        self.rss = h.rss_kib()

    def sample(self):
        self.fds = max(self.fds, fds(self.h))
        self.rss = max(self.rss, self.h.rss_kib())

    def cpu_per_s(self):
        return (cpu_s(self.h) - self.cpu0) / max(1e-3, time.monotonic() - self.t0)

    def hold(self, seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.sample()
            time.sleep(0.2)


def raise_own_nofile(n=8192):
    """The test's own client sockets need more than 1,024 descriptors."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(n, hard), hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def open_idle(addr, n):
    """@n non-blocking connects to @addr (a UNIX socket path, or a TCP port
    on 127.0.0.1), kept open and silent; hostd's accept (or its refusal)
    decides what becomes of them. Paced, so that the listen backlog keeps
    up (a TCP backlog that overflows leaves them to the kernel's SYN
    retries): each reaches hostd within the flood. (sockets, failures)"""
    socks, failed = [], 0
    for i in range(n):
        if i % 10 == 9:
            time.sleep(0.01)
        unix = isinstance(addr, str)
        s = socket.socket(socket.AF_UNIX) if unix else socket.socket()
        s.setblocking(False)
        r = s.connect_ex(addr if unix else ("127.0.0.1", addr))
        if r not in (0, errno.EINPROGRESS):
            failed += 1
            s.close()
            continue
        socks.append(s)
    return socks, failed


def check_after(t, h, log0, log_bound):
    """After a hostile client: hostd still answers, and its log grew by a
    few lines at most (what it logged is shown)."""
    ok, _ = answers_within(status, 30, h)
    t.ok(ok, "blkin status still answers afterwards")
    new = log_lines(h)[log0:]
    t.diag(f"log: {len(new)} new lines")
    for line in new[:10]:
        t.diag("  " + line[:300])
    t.ok(len(new) <= log_bound, f"the log grew by a few lines (<= {log_bound})",
         detail=f"{len(new)} lines")
