# SPDX-License-Identifier: GPL-2.0-or-later
"""Shared bits of the tests/vm tests (imported from the test scripts' folder)."""
import os
import shutil

import vm


def workdir(name):
    """A fresh work directory under the build tree, kept after the test so
    that its console log and QEMU command line can be read on failure."""
    d = os.path.join(vm.build_root(), "tests", "vm", "work", name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    return d


def qemu_processes_under(path):
    """PIDs of live processes whose command line mentions path."""
    pids = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open(f"/proc/{p}/cmdline", "rb") as f:
                cmd = f.read().decode("utf-8", "replace")
            with open(f"/proc/{p}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if path in cmd and "qemu" in cmd and state != "Z":
            pids.append(int(p))
    return pids


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def max_in_flight(ios):
    """Largest number of requests whose [start, end] intervals overlap."""
    ev = []
    for r in ios:
        ev.append((r["start"], 1))
        ev.append((r["end"], -1))
    # At equal times count completions first: touching is not overlapping.
    ev.sort(key=lambda e: (e[0], e[1]))
    cur = best = 0
    for _, d in ev:
        cur += d
        best = max(best, cur)
    return best


def disks_seen(text):
    """{vdX: serial} from 'disk NAME SERIAL' lines a guest script printed."""
    out = {}
    for line in text.splitlines():
        f = line.split()
        if len(f) >= 3 and f[0] == "disk":
            out[f[1]] = f[2]
    return out
