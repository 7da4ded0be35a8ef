#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""hostd's end-to-end path under valgrind memcheck: a real guest (agent and
workload) on a disk behind the filter, a real LTTng live session, and
blkin-hostd run by valgrind joining both. The report must be complete, and
memcheck must find no error in hostd or the libraries it drives
(libbabeltrace2, json-glib, SQLite); leaks are not checked (GLib's caches)."""
import os
import re
import shutil
import time

import vm
from stack import BUILD, HostStack
from tap import Tap

VALGRIND = ["valgrind", "--tool=memcheck", "--error-exitcode=99", "--leak-check=no",
            "--num-callers=30"]
N = 200
GUEST = f"""
blkin-guest-agent 2>/tmp/agent.log &
AGENT=$!
sleep 2
blkin-workload --seed 5 -n {N} -q 1,8 -o "$BLKIN_RESULTS" "$(blkin_disk vg-a)"
rc=$?
sleep 1
kill -TERM $AGENT
wait $AGENT
exit $rc
"""


def main():
    t = Tap()
    if not shutil.which("valgrind"):
        t.skip("hostd end to end under valgrind", "valgrind is not installed")
        t.done()
    wd = os.path.join(BUILD, "tests", "faults", "work", "e2e-valgrind")
    shutil.rmtree(wd, ignore_errors=True)
    os.makedirs(wd)
    disks = [vm.Disk(os.path.join(wd, "a.raw"), "vg-a", size="64M", blkin={"id": "vg/vda"})]
    vlog = os.path.join(wd, "valgrind.log")
    with HostStack(wd, hold_ms=3000, hostd_wrapper=[*VALGRIND, f"--log-file={vlog}"]) as st, \
            vm.GuestVM(wd, disks, GUEST, timeout=300, cpus=2, accel="tcg",
                       extra_files={"/bin/blkin-guest-agent": vm.agent_binary()}) as g:
        # Under valgrind, attaching to the live session takes a while;
        # the guest's requests are traced from when it has.
        t.ok(st.wait_until(lambda: st.status().get("trace_connected"), timeout=120),
             "hostd under valgrind attached to the LTTng live session")
        time.sleep(2)
        g.start()
        st.register("vg", g.agent_socket, ["vda=vg-a=vg/vda"])
        res = g.wait()
        t.ok(res.ok, "the guest's workload and agent ran", detail=res.console[-3000:])
        want = sum(1 for i in vm.parse_workload(g.results())["ios"] if i["op"] in ("read", "write"))

        def joined():
            d = st.report("vg", window="1h")["disks"][0]
            ops = {o["op"]: o["count"] for o in d["ops"]}
            return d if ops.get("read", 0) + ops.get("write", 0) >= want else None
        d = st.wait_until(joined, timeout=90, interval=1) or st.report("vg", window="1h")["disks"][0]
        c = d["counters"]
        t.diag(f"counters {c}")
        t.ok(c["matched"] >= 0.95 * want,
             "hostd under valgrind joined the guest's requests to the filter's spans",
             detail=f"matched {c['matched']} of {want}")
        st.cli("tail", "vg", "--json", check=False)
        st.cli("status", check=False)
        rc = st.stop_hostd()
    text = open(vlog, errors="replace").read() if os.path.exists(vlog) else ""
    m = re.search(r"ERROR SUMMARY: (\d+) errors", text)
    t.ok(m is not None and m.group(1) == "0", "valgrind memcheck: no errors", detail=text[-5000:])
    t.eq(rc, 0, "hostd exits cleanly under valgrind")
    t.done()


if __name__ == "__main__":
    main()
