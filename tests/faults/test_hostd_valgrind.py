#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""blkin-hostd under valgrind memcheck while guests talk to it: one good
agent and four hostile ones (garbage, a record flood, malformed maps, too
many devices), control requests of every kind, then a clean SIGTERM. Any
invalid read or write, use of uninitialised memory or bad free is an error
(leaks are not: GLib keeps its caches to the end)."""
import os
import re
import shutil
import time

from fakeagent import FakeAgent
from faultlib import BUILD, Hostd
from tap import Tap

VALGRIND = ["valgrind", "--tool=memcheck", "--error-exitcode=99", "--leak-check=no",
            "--track-origins=yes", "--num-callers=30"]


def main():
    t = Tap()
    if not shutil.which("valgrind"):
        t.skip("hostd under valgrind", "valgrind is not installed")
        t.done()
    wd = os.path.join(BUILD, "tests", "faults", "work", "valgrind")
    shutil.rmtree(wd, ignore_errors=True)
    os.makedirs(wd)
    vlog = os.path.join(wd, "valgrind.log")
    agents = []
    h = Hostd(wd, wrapper=VALGRIND + [f"--log-file={vlog}"]).start()
    try:
        good = FakeAgent(os.path.join(wd, "good.sock"), "good", serial="vg-a", rate=200).start()
        agents.append(good)
        h.register("good", good.path, ["vda=vg-a=good/vda"])
        for i, mode in enumerate(("garbage", "records", "malformed", "devices")):
            fa = FakeAgent(os.path.join(wd, f"bad{i}.sock"), mode, serial=f"vb{i}").start()
            agents.append(fa)
            h.register(f"bad{i}", fa.path, [f"vda=vb{i}={mode}/vda"])
        time.sleep(15)
        for args in (["status"], ["report", "--json"], ["report", "good", "--window", "1s", "--json"],
                     ["tail", "good", "--json"], ["trace", "1"], ["unregister", "bad0"]):
            h.cli(*args, check=False)
        time.sleep(2)
        rep = h.report("good")
        t.ok(rep["disks"][0]["counters"]["guest_records"] > 0,
             "the good guest's records are counted under valgrind")
    finally:
        for fa in agents:
            fa.stop()
        rc = h.stop()
    text = open(vlog, errors="replace").read() if os.path.exists(vlog) else ""
    m = re.search(r"ERROR SUMMARY: (\d+) errors", text)
    t.ok(m is not None and m.group(1) == "0", "valgrind memcheck: no errors in hostd",
         detail=text[-4000:])
    t.eq(rc, 0, "hostd exits cleanly on SIGTERM under valgrind")
    t.done()


if __name__ == "__main__":
    main()
