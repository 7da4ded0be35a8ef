#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""tests/lib/node.py keeps its promises: a session created in a node's
private lttng-sessiond is not seen by `lttng list` outside it (neither in
the isolate()d test process nor on the machine), killing a node's LTTng
daemons leaves the others running, and two linked nodes reach each other."""
import signal
import subprocess
import uuid

import node
from lttng import ensure_sessiond
from tap import Tap


def sessions(run):
    r = run(["lttng", "list"], capture_output=True, text=True, timeout=60)
    return r.returncode, r.stdout


def main():
    t = Tap()
    me = node.isolate()
    ensure_sessiond()  # the isolated process's own private sessiond
    outer, inner = "outer-" + uuid.uuid4().hex[:8], "inner-" + uuid.uuid4().hex[:8]
    subprocess.run(["lttng", "create", outer, "--output=/tmp/" + outer], check=True,
                   capture_output=True, timeout=60)
    with node.Node("a") as a, node.Node("b") as b:
        a.start_sessiond()
        b.start_sessiond()
        a.run(["lttng", "create", inner, "--output=/tmp/" + inner], check=True, capture_output=True)
        rc, here = sessions(subprocess.run)
        t.ok(rc == 0 and outer in here and inner not in here,
             "the isolated process's `lttng list` shows its session, not the node's", detail=here)
        rc, in_a = sessions(a.run)
        t.ok(rc == 0 and inner in in_a and outer not in in_a,
             "node a's `lttng list` shows its session only", detail=in_a)
        rc, in_b = sessions(b.run)
        t.ok(rc == 0 and inner not in in_b and outer not in in_b,
             "node b's sessiond sees neither", detail=in_b)
        rc, host = sessions(lambda argv, **kw: subprocess.run(node.host_cmd(argv), **kw))
        t.ok(inner not in host and outer not in host,
             "the machine's own `lttng list` sees neither", detail=host)
        t.ok(len(a.sessiond_pids()) == 1 and len(b.sessiond_pids()) == 1
             and set(a.sessiond_pids()).isdisjoint(b.sessiond_pids()),
             "each node has its own lttng-sessiond", detail=(a.sessiond_pids(), b.sessiond_pids()))

        killed = a.kill_lttng(signal.SIGKILL)
        t.ok(killed and not a.sessiond_pids() and a.run(["lttng", "list"], capture_output=True).returncode != 0,
             "kill_lttng stops node a's sessiond", detail=killed)
        t.ok(b.sessiond_running() and me.sessiond_running(),
             "node b's and the isolated process's sessiond survive it")

        node.link(a, b, "10.77.0.1/24", "10.77.0.2/24")
        r = a.run(["ping", "-c", "2", "-W", "2", "10.77.0.2"], capture_output=True, text=True)
        t.ok(r.returncode == 0, "node a pings node b over the link", detail=r.stdout + r.stderr)
        r = subprocess.run(["ping", "-c", "1", "-W", "1", "10.77.0.2"], capture_output=True, text=True,
                           timeout=30)
        t.ok(r.returncode != 0, "the link is not reachable from outside the nodes", detail=r.stdout)
        netns = (a.netns, b.netns)
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    t.ok(all(n not in listed for n in netns), "closing the nodes removes their network namespaces",
         detail=listed)
    subprocess.run(["lttng", "destroy", outer], capture_output=True, timeout=60)
    t.done()


if __name__ == "__main__":
    main()
