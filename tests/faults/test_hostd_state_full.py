#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""hostd's state directory is full: hostd starts anyway and traces on without
history (one log line, `blkin status` and `blkin_history_up` say so), and takes
the history up again by itself once there is room; the operator's view of it
does not depend on how long the outage lasted.

The full directory is a small tmpfs mounted in a private mount namespace
(unshare -m), filled to the last byte, so nothing outside the test sees it."""
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request

from faultlib import Hostd
from stack import free_ports
from tap import Tap


def status(h):
    return json.loads(h.cli("status").stdout)


def metric(port, name):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    return None


def wait_for(cond, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.5)
    return cond()


def main():
    t = Tap()
    if os.geteuid() != 0:
        t.skip("a full state directory", "needs root to mount a tmpfs")
        t.done()
    # Re-run this script inside a private mount namespace, once.
    if os.environ.get("BLKIN_IN_MOUNT_NS") != "1":
        env = dict(os.environ, BLKIN_IN_MOUNT_NS="1")
        r = subprocess.run(["unshare", "-m", "--propagation", "private", sys.executable, __file__],
                           env=env, timeout=600)
        sys.exit(r.returncode)

    with tempfile.TemporaryDirectory(prefix="blkin-statefull-") as wd:
        state = os.path.join(wd, "state")
        os.makedirs(state)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", state], check=True)
        filler = os.path.join(state, "filler")
        try:
            fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                while os.write(fd, b"\0" * 4096) > 0:
                    pass
            except OSError:
                pass  # ENOSPC: full to the last page
            finally:
                os.close(fd)
            port = free_ports(1)[0]
            h = Hostd(wd, history=True, args=["--state-dir", state, "--metrics", f"127.0.0.1:{port}"])
            try:
                h.start()
                t.ok(h.proc.poll() is None, "hostd starts although its state directory is full")
                st = status(h)
                hist = st.get("history", {})
                t.ok(hist.get("state") == "down" and "full" in hist.get("error", ""),
                     "blkin status: history down, saying why", detail=hist)
                t.eq(metric(port, "blkin_history_up"), 0.0, "blkin_history_up is 0")
                h.register("vm1", os.path.join(wd, "nothing.sock"), ["vda=s1=vm1/vda"])
                rep = h.report("vm1")
                t.eq([d["disk"] for d in rep["disks"]], ["vda"], "tracing goes on: VMs register and report")
                r = h.cli("history", "vm1", check=False)
                t.ok(r.returncode != 0 and "cannot be written" in r.stderr,
                     "blkin history says why there is none", detail=r.stderr)
                # Three retry periods (10 s each) pass: still one line.
                time.sleep(25)
                lines = [l for l in h.log_text().splitlines() if "without history" in l]
                t.ok(len(lines) == 1, "one log line for the whole outage", detail=lines)

                os.unlink(filler)
                back = wait_for(lambda: status(h).get("history", {}).get("state") == "ok", 60)
                t.ok(back, "with room again, hostd takes the history up by itself",
                     detail=status(h).get("history"))
                t.eq(metric(port, "blkin_history_up"), 1.0, "blkin_history_up is 1 again")
                t.ok("writable again" in h.log_text(), "one log line when it is back")
                r = h.cli("history", "vm1", check=False)
                t.ok(r.returncode == 0, "blkin history answers again", detail=r.stderr)
            finally:
                t.eq(h.stop(), 0, "hostd stops cleanly")
        finally:
            subprocess.run(["umount", state], check=False)
    t.done()


if __name__ == "__main__":
    main()
