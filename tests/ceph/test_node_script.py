#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""scripts/ceph-node.sh as the tests and the demo use it: `start DIR` brings up
a one-node cluster whose state is all in DIR, on free loopback ports, every
daemon with a pid file; a real write goes through; `stop DIR` leaves nothing
running (the pids are gone, the ports free); and without the Ceph packages it
says which to install instead of failing somewhere inside."""
import os
import shutil
import socket
import subprocess
import tempfile

import ceph
from stack import BUILD
from tap import Tap


def alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def port_free(port):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def main():
    t = Tap()
    wd = os.path.join(BUILD, "tests", "ceph", "work", "node-script")
    shutil.rmtree(wd, ignore_errors=True)
    os.makedirs(wd)

    # No Ceph on PATH: a clear error naming the packages.
    bare = tempfile.mkdtemp(prefix="blkin-nopath-")
    for tool in ("bash", "python3", "realpath", "mkdir", "cat", "sort", "printf", "dirname"):
        p = shutil.which(tool)
        if p:
            os.symlink(p, os.path.join(bare, tool))
    r = subprocess.run([shutil.which("bash"), ceph.NODE_SH, "start", os.path.join(wd, "none")],
                       capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, PATH=bare))
    shutil.rmtree(bare)
    t.ok(r.returncode != 0 and "missing Debian packages" in r.stderr and
         "ceph-mon" in r.stderr and "ceph-osd" in r.stderr and "ceph-common" in r.stderr and
         "apt-get install --no-install-recommends" in r.stderr,
         "without the Ceph packages: one clear error naming them and how to install them",
         detail=r.stderr)

    d = os.path.join(wd, "cluster")
    r = subprocess.run(["bash", ceph.NODE_SH, "start", d], capture_output=True, text=True,
                       timeout=300)
    t.ok(r.returncode == 0 and f"export CEPH_CONF={d}/ceph.conf" in r.stdout,
         "start: a cluster in the directory given", detail=r.stderr[-2000:])
    env = ceph._env_file(d) or {}
    ports = [int(p) for p in env.get("MON_PORTS", "").split()]
    pids = {}
    for name in ("mon.a", "osd.0"):
        for kind in ("pid", "wrap"):
            try:
                with open(os.path.join(d, "run", f"{name}.{kind}")) as f:
                    pids[f"{name}.{kind}"] = int(f.read())
            except (OSError, ValueError):
                pass
    t.ok(len(pids) == 4 and all(alive(p) for p in pids.values()),
         "a pid file for each daemon and its timeout, all running", detail=pids)
    t.ok(len(ports) == 2 and all(not port_free(p) for p in ports),
         "the monitor is on the two free loopback ports the script picked", detail=ports)
    w = subprocess.run(["timeout", "30", "rados", "-p", "rbd", "put", "hello", ceph.NODE_SH],
                       capture_output=True, text=True,
                       env=dict(os.environ, CEPH_CONF=os.path.join(d, "ceph.conf")))
    t.ok(w.returncode == 0, "a real write goes through", detail=w.stderr)
    t.ok(all(not p.startswith("/") or p.startswith(d)
             for p in open(os.path.join(d, "ceph.conf")).read().split() if p.startswith("/")),
         "every path of its state is in the directory")

    r = subprocess.run(["bash", ceph.NODE_SH, "stop", d], capture_output=True, text=True,
                       timeout=120)
    t.ok(r.returncode == 0 and not any(alive(p) for p in pids.values()),
         "stop: every daemon and its timeout gone", detail=(r.stderr, pids))
    t.ok(all(port_free(p) for p in ports), "and the ports free again")
    t.ok(not os.path.exists(os.path.join(d, "osd.0")) and os.path.isdir(os.path.join(d, "log")),
         "its state removed, its logs kept")
    t.done()


if __name__ == "__main__":
    main()
