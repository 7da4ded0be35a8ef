# SPDX-License-Identifier: GPL-2.0-or-later
"""The guest agent run on this machine's own kernel (no VM), for tests: a
loop device over a tmpfs file as its disk, a UNIX socket as its port
(--socket), and helpers to start, read and stop it."""
import os
import shutil
import subprocess
import tempfile
import time
from contextlib import contextmanager

BUILD = os.environ.get("BLKIN_BUILD_ROOT",
                       os.path.join(os.path.dirname(__file__), "..", "..", "build"))
AGENT = os.path.join(BUILD, "guest-agent", "blkin-guest-agent")
DUMP = os.path.join(BUILD, "tools", "blkin-agent-dump")
WORKLOAD = os.path.join(BUILD, "tests", "workload", "blkin-workload")


def text(path):
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return ""


def wait_for(cond, timeout):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


def stop(p, sig_timeout=20):
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(sig_timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


@contextmanager
def loop_disk(prefix, size_mb=256):
    """(work directory, /dev/loopN) over a tmpfs file; all undone after."""
    work = tempfile.mkdtemp(prefix=prefix)
    fs = os.path.join(work, "fs")
    os.mkdir(fs)
    loop = None
    try:
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb + 44}m", "tmpfs", fs],
                       check=True)
        img = os.path.join(fs, "disk.img")
        subprocess.run(["dd", "if=/dev/zero", f"of={img}", "bs=1M", f"count={size_mb}",
                        "status=none"], check=True)
        loop = subprocess.run(["losetup", "--find", "--show", img], check=True,
                              capture_output=True, text=True).stdout.strip()
        yield work, loop
    finally:
        if loop:
            subprocess.run(["losetup", "-d", loop], check=False)
        subprocess.run(["umount", fs], check=False, stderr=subprocess.DEVNULL)
        shutil.rmtree(work, ignore_errors=True)


def start_agent(work, loop, *args):
    """The agent on @loop listening on work/agent.sock, logging to
    work/agent.log; returns (process, socket, log) once it listens, or
    (process, None, log) if it did not start."""
    sock = os.path.join(work, "agent.sock")
    alog = os.path.join(work, "agent.log")
    agent = subprocess.Popen(
        ["timeout", "-k", "5", "300", AGENT, "-v", "--disks", os.path.basename(loop),
         "--socket", sock, *args],
        stderr=open(alog, "w"), stdin=subprocess.DEVNULL)
    ok = wait_for(lambda: "listening" in text(alog) or agent.poll() is not None, 30)
    return agent, (sock if ok and agent.poll() is None else None), alog


def workload(work, loop, n, *args):
    """blkin-workload on @loop; (returncode, requests done, stderr)."""
    out = os.path.join(work, "wl.out")
    w = subprocess.run(["timeout", "-k", "5", "240", WORKLOAD, "-n", str(n), *args,
                        "-o", out, loop], capture_output=True, text=True)
    done = 0
    for line in text(out).splitlines():
        if line.startswith("phase "):
            f = dict(x.split("=", 1) for x in line.split()[2:])
            done += int(f["requests"])
    return w.returncode, done, w.stderr


def stats(alog):
    """The agent's final 'stats:' line as a dict."""
    for line in text(alog).splitlines():
        if "stats:" in line:
            return {k: int(v) for k, v in
                    (x.split("=", 1) for x in line.split("stats:", 1)[1].split())}
    return {}
