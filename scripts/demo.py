#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""The main job: trace a demo VM end to end and print its per-disk report.

Two simulated nodes (network namespaces joined by a veth pair, each with its
own LTTng): node B serves a disk image over NBD with qemu-nbd and the blkin
filter, streaming its trace to node A's lttng-relayd; node A boots a small
guest (Debian's kernel, busybox, the BlkKin guest agent and a workload) with
three virtio disks behind the blkin filter -- node B's NBD export, a raw
file, and a qcow2 image with a second blkin node below qcow2 so QEMU's format
layer and the backend are told apart -- and blkin-hostd reads both nodes'
sessions and the agent. A fourth disk is an image on a one-node Ceph
cluster (scripts/ceph-node.sh) through QEMU's rbd driver, joined down to the
OSD ops that served it (blkin-ceph-collector reads the OSD's op tracker;
docs/backend-ceph.md). A mixed read/write/flush/discard workload runs at
queue depth 1 and 16, then `blkin report` prints every disk's phases (for the
NBD disk: network, node B's service and node B's storage I/O, with node B's
clock offset; for the RBD disk: librbd, network out, OSD queue, OSD execution,
network back, with the OSD clock's bound). `--html FILE` also writes that
report as an HTML page (heatmaps over time, where the time goes, the slowest
requests as waterfalls). Everything it started is stopped at the end. Run
through scripts/demo.sh, which sets the machine up first.
"""
import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "lib"))
os.environ.setdefault("BLKIN_SOURCE_ROOT", os.path.join(HERE, ".."))
os.environ.setdefault("BLKIN_BUILD_ROOT", os.path.join(HERE, "..", "build"))

import ceph  # noqa: E402
import node  # noqa: E402
import vm  # noqa: E402
from stack import CLI, HostStack, StackedDisk  # noqa: E402
from storage_node import NbdServer  # noqa: E402

ADDR_A, ADDR_B = "10.77.0.1", "10.77.0.2"

GUEST = """
blkin-guest-agent 2>/tmp/agent.log &
AGENT=$!
sleep 1
blkin-workload --seed {seed} -n {count} -q 1,16 -w 40 -f 2 -d 2 -Q -o "$BLKIN_RESULTS" \\
    "$(blkin_disk demo-remote)" "$(blkin_disk demo-data)" "$(blkin_disk demo-root)" {rbd}
rc=$?
sleep 1
kill -TERM $AGENT
wait $AGENT
exit $rc
"""


# Pass the guest's discards down (QEMU's default, discard=ignore, completes
# them before they reach the filter; hostd then counts them unmatched).
UNMAP = {"discard": "unmap"}


def main():
    # A SIGTERM (timeout(1), a CI job cancelled) unwinds like Ctrl-C, so the
    # finally blocks and node.isolate's atexit hook stop what was started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=400, help="requests per disk and queue depth")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", action="store_true", help="print the report as JSON")
    ap.add_argument("--keep", help="keep the work directory here")
    ap.add_argument("--no-ceph", action="store_true",
                    help="no RBD disk (no one-node Ceph cluster, ~15 s less)")
    ap.add_argument("--html", metavar="FILE",
                    help="also write the report as an HTML page (heatmaps, phases, waterfalls) to FILE")
    opts = ap.parse_args()

    wd = opts.keep or tempfile.mkdtemp(prefix="blkin-demo-")
    os.makedirs(wd, exist_ok=True)
    name = "demo"
    print(f"demo: two nodes, node B serving a disk over NBD (work dir {wd}) ...", file=sys.stderr)
    a, b = node.Node("a"), node.Node("b")
    srv = cluster = col = None
    try:
        node.link(a, b, ADDR_A + "/24", ADDR_B + "/24")
        node.isolate(netns=a)  # this process, and all it starts, is node A
        rbd = None
        if not opts.no_ceph:
            cluster, col, rbd = start_ceph(wd)
        st = HostStack(wd, hold_ms=1500, relayd_addr=ADDR_A,
                       events=("blkin_qemu:*", "blkin_rbd:*"))
        try:
            st.start_lttng()
            srv = NbdServer(b, st, wd, ADDR_A, ADDR_B).__enter__()
            st.hostd_args = ["--remote-live", srv.live_url]
            if col:
                st.hostd_args += ["--ceph-collector", col.addr]
            st.start_hostd()
            time.sleep(2)  # hostd reads node B's session before qemu-nbd opens
            srv.start_nbd()
            return run_vm(opts, wd, name, st, srv, cluster, rbd)
        finally:
            st.close()
    finally:
        if col:
            col.stop()
        if cluster:
            cluster.close()
        if srv:
            srv.close()
        b.close()
        a.close()


def start_ceph(wd):
    """A one-node cluster on node A's loopback, an image for the guest (its
    first 8 MiB written, so that reads have objects to read), and a collector
    on the OSD's admin socket. (None, None, None) when Ceph is missing."""
    print("demo: a one-node Ceph cluster for the RBD disk ...", file=sys.stderr)
    try:
        cluster = ceph.Cluster(wd).__enter__()
    except ceph.CephUnavailable as e:
        print(f"demo: no RBD disk: {e}", file=sys.stderr)
        return None, None, None
    img = cluster.create_image("demo", size_mb=128)
    cluster.fill(img, 0, bytes(8 << 20))
    col = ceph.Collector(wd, cluster).start()
    return cluster, col, img


def run_vm(opts, wd, name, st, srv, cluster=None, rbd=None):
    # vda: node B's export over NBD; vdb: a raw file;
    # vdc: blkin -> qcow2 -> blkin -> file, so "backend" is the file's time.
    disks = [srv.client_disk(name, "demo-remote", "vda", blkin_opts=UNMAP),
             vm.Disk(os.path.join(wd, "data.raw"), "demo-data", size="128M",
                     blkin={"id": "demo/vdb"}, filter_json=UNMAP,
                     proto_opts=UNMAP, fmt_opts=UNMAP),
             StackedDisk(os.path.join(wd, "root.qcow2"), "demo-root", fmt="qcow2", size="128M",
                         blkin={"id": "demo/vdc", **UNMAP})]
    specs = [srv.register_spec("vda", "demo-remote", name), "vdb=demo-data=demo/vdb",
             "vdc=demo-root=demo/vdc"]
    # vdd: an RBD image, rbd -> raw -> blkin (docs/backend-ceph.md).
    if rbd:
        disks.append(cluster.disk(rbd, "demo-rbd", blkin={"id": "demo/vdd", **UNMAP}))
        specs.append("vdd=demo-rbd=demo/vdd")

    print(f"demo: booting a guest with {len(disks)} traced disks ...", file=sys.stderr)
    script = GUEST.format(seed=opts.seed, count=opts.count,
                          rbd='"$(blkin_disk demo-rbd)"' if rbd else "")
    with vm.GuestVM(wd, disks, script, timeout=300, cpus=2,
                    extra_files={"/bin/blkin-guest-agent": vm.agent_binary()}) as g:
        g.start()  # the agent socket's path is known from here on
        st.register(name, g.agent_socket, specs)
        res = g.wait()
    if not res.ok:
        print(res.console[-3000:], file=sys.stderr)
        print("demo: the guest's workload failed", file=sys.stderr)
        return 1
    print("demo: workload done; waiting for the last requests to be joined ...", file=sys.stderr)

    def settled():
        r = st.report(name, window="1h")
        return all(d["counters"]["pending"] == 0 for d in r["disks"]) and r

    st.wait_until(settled, timeout=20)
    args = [CLI, "--socket", st.socket, "report", name, "--window", "1h"]
    if opts.json:
        args.append("--json")
    subprocess.run(args, check=True)
    if opts.html:
        # The same report as a page that needs no network (docs/hostd.md,
        # "The view"); its line goes to stderr, the report alone to stdout.
        r = subprocess.run([CLI, "--socket", st.socket, "report", name, "--window", "1h",
                            "--html", os.path.abspath(opts.html)],
                           check=True, capture_output=True, text=True)
        print("demo: " + r.stdout.strip(), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
