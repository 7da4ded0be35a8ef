# SPDX-License-Identifier: GPL-2.0-or-later
"""The guest agent run on this machine's own kernel (no VM), for tests: a
loop device over a tmpfs file as its disk and a UNIX socket as its port
(--socket). The host end, waits and the agent's stats line are
agenttest's."""
import os
import shutil
import subprocess
import tempfile
from contextlib import contextmanager

import agenttest as at

WORKLOAD = at.build_file("tests", "workload", "blkin-workload")


def text(path):
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return ""


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
        ["timeout", "-k", "5", "300", at.agent_binary(), "-v", "--disks",
         os.path.basename(loop), "--socket", sock, *args],
        stderr=open(alog, "w"), stdin=subprocess.DEVNULL)
    ok = at.wait_for(lambda: "listening" in text(alog) or agent.poll() is not None, 30)
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
