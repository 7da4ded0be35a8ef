#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""A test killed before it could destroy its LTTng session (a timeout,
SIGKILL) leaves it active on the machine's lttng-sessiond, where it records
every later test's events too (per-UID buffers) and hides what a late
session sees (filter-events). The test library destroys such sessions, and
only those: named after a test process that no longer exists."""
import re
import subprocess

import lttng
from tap import Tap


def sessions():
    out = subprocess.run(["lttng", "list"], capture_output=True, text=True, timeout=60).stdout
    return set(re.findall(r"^\s*\d+\) (\S+) ", out, re.M))


def main():
    t = Tap()
    lttng.ensure_sessiond()
    dead = subprocess.Popen(["true"])
    dead.wait()
    # Named as tests/lib/stack.py and lttng.Session name theirs.
    orphans = [f"blkin-{dead.pid}-4242", f"blkin-test-{dead.pid}-0a1b2c3d4e5f"]
    # pid 1 always exists.
    mine = [lttng.Session().name, "blkin-1-4242", "someone-else-blkin-7-1"]
    created = []
    try:
        for name in orphans + mine:
            subprocess.run(["lttng", "create", name, "--no-output"], check=True,
                           capture_output=True, timeout=60)
            created.append(name)
        subprocess.run(["lttng", "enable-event", "--session=" + orphans[0], "-u",
                        "blkin_qemu:*"], check=True, capture_output=True, timeout=60)
        subprocess.run(["lttng", "start", orphans[0]], check=True, capture_output=True,
                       timeout=60)
        before = sessions()
        t.ok(set(orphans + mine) <= before, "sessions of a dead test process, of living ones "
             "and someone else's are there", detail=before)
        lttng.ensure_sessiond()
        after = sessions()
        t.ok(not set(orphans) & after, "the dead process's sessions (one of them active) are "
             "destroyed when a test next uses the session daemon", detail=after)
        t.ok(set(mine) <= after, "sessions of living processes and sessions not named after a "
             "test process are left alone", detail=after)
    finally:
        for name in created:
            subprocess.run(["lttng", "destroy", name], capture_output=True, timeout=60)
    t.done()


if __name__ == "__main__":
    main()
