#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Faults around a VM on RBD, on the real one-node cluster:

- the OSD is killed (SIGKILL) and started again while the guest writes and
  reads: the guest's I/O resumes and its data verifies, the OSD's outage is
  shown (`blkin status`: the OSD down, then up; the disk's report counts the
  requests it overlapped), and what is joined before and after still joins;
- beside the real OSD, the collector finds three admin sockets that are
  not one: one whose OSD is gone (the socket file is left, nobody listens),
  one that never answers, one that answers garbage (not the admin-socket
  protocol), and one that speaks it but answers the op-tracker dumps with
  broken JSON. Each gets a clear error in the collector's log and in
  hostd's status, nothing crashes, the real OSD's ops still join, and the
  VM does not notice.
Every wait polls a condition with a deadline."""
import json
import os
import shutil
import socket
import subprocess
import sys
import time

import ceph
import vm
from stack import BUILD, HostStack
from tap import Tap

MIB = 1 << 20
SPAN = 16 * MIB
ITERS = 12  # of 200 requests each; the OSD is killed during the second
HERE = os.path.dirname(os.path.abspath(__file__))

GUEST = """
blkin-guest-agent 2>/tmp/agent.log &
sleep 1
blkin-workload --seed 5 -n 150 -q 4 -S {span} -o "$BLKIN_RESULTS" "$(blkin_disk rbd-a)"
echo PART1-DONE >"$BLKIN_RESULTS"
for i in $(seq 1 {iters}); do
    echo "ITER $i" >"$BLKIN_RESULTS"
    blkin-workload --seed $((100 + i)) -n 200 -q 4 -S {span} -o "$BLKIN_RESULTS" "$(blkin_disk rbd-a)"
done
echo WORKLOAD-DONE >"$BLKIN_RESULTS"
sleep 600
"""


def workdir():
    d = os.path.join(BUILD, "tests", "ceph", "work", "faults")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    return d


def main():
    t = Tap()
    wd = workdir()
    fakes = []
    try:
        cluster = ceph.Cluster(wd).__enter__()
    except ceph.CephUnavailable as e:
        t.ok(False, "the Ceph packages are installed", detail=str(e))
        t.done()
    col = st = None
    try:
        img = cluster.create_image("faults", size_mb=32, scheduler="none")
        cluster.fill(img, 0, bytes([0x33]) * SPAN)

        # The admin sockets that are not an OSD's.
        fake_dir = os.path.join(wd, "fake-asok")
        os.makedirs(fake_dir)
        gone = os.path.join(fake_dir, "ceph-osd.9.asok")
        s = socket.socket(socket.AF_UNIX)
        s.bind(gone)
        s.close()  # the file stays; connecting is refused
        for osd, mode in ((7, "silent"), (8, "bytes"), (6, "badjson")):
            p = subprocess.Popen(["timeout", "600", sys.executable,
                                  os.path.join(HERE, "fake_asok.py"),
                                  os.path.join(fake_dir, f"ceph-osd.{osd}.asok"), mode],
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                 text=True)
            fakes.append(p)
            t.ok(p.stdout.readline().strip() == "ready", f"a fake admin socket ({mode}) listens")

        col = ceph.Collector(wd, cluster, asok=[
            os.path.join(os.path.dirname(cluster.osd_asok), "osd.*.asok"),
            os.path.join(fake_dir, "*osd.*.asok")]).start()
        st = HostStack(wd, events=("blkin_qemu:*", "blkin_rbd:*"),
                       hostd_args=["--ceph-collector", col.addr])
        st.start_lttng()
        st.start_hostd()
        name = "faultvm"
        disk = cluster.disk(img, "rbd-a", blkin={"id": f"{name}/vda", "sample": 1},
                            device_opts={"cyls": 65, "heads": 16, "secs": 63})
        with vm.GuestVM(os.path.join(wd, "vm"), [disk], GUEST.format(span=SPAN, iters=ITERS), timeout=600,
                        cpus=2, extra_files={"/bin/blkin-guest-agent": vm.agent_binary()}) as g:
            g.start()
            st.register(name, g.agent_socket, [f"vda=rbd-a={name}/vda"])

            def osds():
                c = st.status()["ceph"]["collectors"]
                return {o["id"]: o for o in c[0]["osds"]} if c else {}

            # The three bad sockets are down, each with its reason.
            bad = ceph.wait_for(lambda: all(i in osds() and not osds()[i]["up"]
                                            for i in (6, 7, 8, 9)) and osds(), timeout=60)
            t.ok(bad, "hostd's status shows the four bad admin sockets down", detail=osds())
            reasons = {i: (bad or {}).get(i, {}).get("reason") or "" for i in (6, 7, 8, 9)}
            t.ok("refused" in reasons[9].lower(), "the OSD that is gone: connection refused",
                 detail=reasons[9])
            t.ok("no answer within" in reasons[7], "the silent one: no answer in time",
                 detail=reasons[7])
            t.ok("not a Ceph admin socket" in reasons[8], "the garbage one: not an admin socket",
                 detail=reasons[8])
            t.ok("not an op tracker" in reasons[6] and "at byte" in reasons[6],
                 "the broken JSON: where the op tracker's answer broke", detail=reasons[6])

            t.ok(ceph.wait_for(lambda: "PART1-DONE" in g.results(), timeout=300, interval=1),
                 "the guest's first part ran", detail=g.console()[-2000:])
            # Kill the OSD while the second part writes and reads.
            t.ok(ceph.wait_for(lambda: "ITER 2\n" in g.results(), timeout=300, interval=0.05),
                 "the second part runs")
            t0 = time.time()
            cluster.osd_kill()
            down = ceph.wait_for(lambda: not osds().get(0, {}).get("up", True), timeout=30)
            t.ok(down, "hostd's status shows the real OSD down once it is killed",
                 detail=osds().get(0))
            time.sleep(2)  # an outage of a few seconds, I/O in flight held
            cluster.osd_start()
            outage = time.time() - t0
            up = ceph.wait_for(lambda: osds().get(0, {}).get("up") and
                               osds()[0]["outages"] >= 1, timeout=60)
            t.ok(up, f"and up again after the restart ({outage:.1f} s outage)",
                 detail=osds().get(0))
            done = ceph.wait_for(lambda: "WORKLOAD-DONE" in g.results(), timeout=300,
                                 interval=1)
            t.ok(done, "the guest's I/O resumed after the OSD came back, the workload ended",
                 detail=g.console()[-2000:])
            w = vm.parse_workload(g.results())
            n = sum(1 for io in w["ios"] if io["op"] in ("read", "write"))
            t.ok(n == 150 + 200 * ITERS and not w["fatal"] and not w["mismatches"] and
                 "ITER 3" in g.results(),
                 f"all {n} guest requests completed, the data verified",
                 detail=(w["summary"], w["fatal"][:3]))

            def settled():
                r = st.report(name, window="1h")["disks"][0]
                rb = r.get("rbd") or {}
                return r if rb.get("guest_requests", 0) >= n and not r["counters"]["pending"] \
                    else None
            d = st.wait_until(settled, timeout=120) or st.report(name, window="1h")["disks"][0]
            g.kill()
        status = st.status()
        text = st.cli("report", name, "--window", "1h").stdout
        t.diag(text)
        rb = d.get("rbd") or {}
        t.ok(rb.get("during_osd_gap", 0) > 0,
             f"the report admits the outage: {rb.get('during_osd_gap')} requests overlapped it",
             detail=rb)
        t.ok("while an OSD was down" in text, "and says so in the text report", detail=text)
        rate = rb.get("guest_joined", 0) / max(rb.get("guest_requests", 1), 1)
        # What the OSD finished after the collector's last read before the
        # crash went with it (one read interval's worth): those requests,
        # and only those, are not joined, and are counted as missing in the
        # gap, not as answered by librbd.
        t.ok(rb.get("no_osd_op") == 0 and
             0 < rb.get("during_osd_gap", 0) < rb.get("calls", 0) / 2 and
             rb.get("osd_op_missing", 0) <= rb.get("during_osd_gap", 0) and
             rb.get("joined", 0) + rb.get("osd_op_missing", 0) == rb.get("calls", 0),
             f"{rate:.1%} of the guest's requests joined down to their OSD op all the "
             f"same; the {rb.get('osd_op_missing')} others all during the outage, counted "
             "as missing (not as answered by librbd)", detail=rb)
        tot = max((p["max_ns"] for o in d["ops"] for p in o["phases"] if p["phase"] == "total"),
                  default=0)
        t.ok(tot >= 1e9, f"the slowest request waited out the outage ({tot / 1e9:.1f} s)",
             detail=d["ops"])
        t.ok(st.hostd.poll() is None and col.proc.poll() is None,
             "hostd and the collector are still running")
        st.close()
        st = None
        rc = col.stop()
        log = col.text()
        t.ok(rc == 0, "the collector stops cleanly", detail=log[-2000:])
        for osd, words in ((9, "refused"), (7, "no answer within"), (8, "not a Ceph admin"),
                           (6, "not an op tracker")):
            lines = [ln for ln in log.splitlines() if f"osd.{osd}:" in ln and words in ln]
            t.ok(len(lines) == 1, f"osd.{osd}: one clear log line for its outage",
                 detail=[ln for ln in log.splitlines() if f"osd.{osd}:" in ln][:5])
        t.ok("osd.0: answers again" in log, "the collector logged the OSD answering again",
             detail=log[-2000:])
        c0 = status["ceph"]["collectors"][0]
        t.ok(c0["bad_lines"] == 0 and c0["connected"], "hostd read the collector throughout",
             detail=c0)
    finally:
        if st:
            st.close()
        if col:
            col.stop()
        for p in fakes:
            p.terminate()  # timeout passes SIGTERM on to the fake
            p.wait()
        cluster.close()
    t.done()


if __name__ == "__main__":
    main()
