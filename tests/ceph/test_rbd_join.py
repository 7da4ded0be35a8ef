#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""guest -> QEMU -> librbd -> OSD op, joined on a real one-node cluster.

One VM, two RBD disks under the blkin filter: image A with
rbd_io_scheduler=none (librbd sends one OSD op per request) and image B with
the default scheduler (librbd merges adjacent writes). The guest agent
times the guest's requests; blkin-ceph-collector reads the OSD's op tracker
and ships the ops of the VM's librbd client to blkin-hostd, which joins them.

What a user checks, against sources that do not go through BlkKin:
- the join rate: >= 99 % of the guest's reads and writes on A reach their
  OSD op, >= 95 % on B, and the rest is counted in the report;
- every request's phases sum to its total, the five RBD phases are shown,
  and the OSD clock's offset is stated with a bound (same host: microseconds);
- per op the report's counts equal QEMU's own (`query-blockstats`), and
  the ops hostd joined equal the OSD's own counters for the window (`perf
  dump`: client reads and writes, and their bytes);
- the collector raised the OSD's op history size with one log line and put
  it back when it stopped."""
import json
import os
import shutil
import subprocess
import time

import ceph
import vm
from stack import BUILD, HostStack
from tap import Tap

MIB = 1 << 20
SPAN = 16 * MIB
COUNT = 250

GUEST = """
blkin-guest-agent 2>/tmp/agent.log &
sleep 1
A=$(blkin_disk rbd-a); B=$(blkin_disk rbd-b)
echo "serial $A rbd-a" >"$BLKIN_RESULTS"
blkin-workload --seed 18 -n {count} -q 1,8 -S {span} -o "$BLKIN_RESULTS" "$A" "$B"
echo WORKLOAD-DONE >"$BLKIN_RESULTS"
sleep 600
"""


def workdir():
    d = os.path.join(BUILD, "tests", "ceph", "work", "join")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    return d


def op_counts(report_disk):
    return {o["op"]: o["count"] for o in report_disk["ops"]}


def phase_names(report_disk):
    return {p["phase"] for o in report_disk["ops"] for p in o["phases"]}


def main():
    t = Tap()
    wd = workdir()
    try:
        cluster = ceph.Cluster(wd).__enter__()
    except ceph.CephUnavailable as e:
        t.ok(False, "the Ceph packages are installed", detail=str(e))
        t.done()
    col = None
    try:
        img_a = cluster.create_image("join-a", size_mb=32, scheduler="none")
        img_b = cluster.create_image("join-b", size_mb=32)
        # librbd's default scheduler ("simple") merges adjacent writes that
        # wait behind one in flight; its window depends on latency it has
        # measured unless set: 5 ms makes the merging test deterministic.
        cluster.run("rbd", "config", "image", "set", f"{cluster.pool}/{img_b}",
                    "rbd_io_scheduler_simple_max_delay", "5")
        # Every object the workload touches exists: a read of an object
        # never written is answered by librbd alone (its object map), which
        # is right but would not exercise the join.
        for img in (img_a, img_b):
            cluster.fill(img, 0, bytes([0x5A]) * SPAN)
        hist0 = cluster.osd({"prefix": "config get", "var": "osd_op_history_size"})

        col = ceph.Collector(wd, cluster).start()
        st = HostStack(wd, events=("blkin_qemu:*", "blkin_rbd:*"),
                       hostd_args=["--ceph-collector", col.addr])
        st.start_lttng()
        st.start_hostd()
        name = "rbdvm"
        # A geometry of its own: else QEMU reads the first sector to guess one
        # when it creates the device, a read through the filter that no guest
        # issued and query-blockstats does not count.
        chs = {"cyls": 65, "heads": 16, "secs": 63}
        disks = [cluster.disk(img_a, "rbd-a", blkin={"id": f"{name}/vda", "sample": 1},
                              device_opts=chs),
                 cluster.disk(img_b, "rbd-b", blkin={"id": f"{name}/vdb", "sample": 1},
                              device_opts=chs)]
        specs = [f"vda=rbd-a={name}/vda", f"vdb=rbd-b={name}/vdb"]
        perf0 = cluster.perf()
        with vm.GuestVM(os.path.join(wd, "vm"), disks,
                        GUEST.format(count=COUNT, span=SPAN), timeout=600, cpus=2,
                        extra_files={"/bin/blkin-guest-agent": vm.agent_binary()}) as g:
            g.start()
            st.register(name, g.agent_socket, specs)
            done = ceph.wait_for(lambda: "WORKLOAD-DONE" in g.results(), timeout=400, interval=1)
            t.ok(done, "the guest's workload ran on both RBD disks", detail=g.console()[-3000:])
            w = vm.parse_workload(g.results())
            ios = [io for io in w["ios"] if io["op"] in ("read", "write")]
            devs = {"vda": disks[0], "vdb": disks[1]}
            guest_dev = {d: [io for io in ios if io["dev"] == d] for d in devs}
            t.ok(w["summary"] and w["summary"]["mismatches"] == 0 and not w["fatal"] and
                 all(guest_dev.values()), "the workload verified its data on both disks",
                 detail=(w["summary"], {d: len(v) for d, v in guest_dev.items()}))

            def settled():
                r = st.report(name, window="1h")
                for d in r["disks"]:
                    rb = d.get("rbd") or {}
                    if rb.get("guest_requests", 0) < len(guest_dev[d["disk"]]) or \
                            d["counters"]["pending"]:
                        return None
                return r
            t.ok(st.wait_until(settled, timeout=120), "hostd joined the guest's requests",
                 detail=st.report(name, window="1h"))
            blockstats = g.qmp("query-blockstats")
            perf1 = cluster.perf()
            g.kill()

        # librbd's merging, seen without a guest: adjacent writes in flight
        # together from qemu-io on image B (default scheduler).
        st.register("qio", None, ["vda=qio=qio/vda"])
        n_adj = 32
        js = json.dumps({"driver": "blkin", "id": "qio/vda",
                         "file": dict(cluster.proto_opts(img_b), **{"cache.direct": True})})
        cmds = []
        for i in range(n_adj):
            cmds += ["-c", f"aio_write -P {i % 250} {(4 + i) * 4096} 4096"]
        qio = cluster.run("timeout", "120", "qemu-io", "-t", "none", *cmds, "-c", "aio_flush",
                          f"json:{js}", check=False,
                          env_extra={"LD_PRELOAD": vm.preload_library()})
        t.ok(qio.returncode == 0, "qemu-io wrote 32 adjacent blocks at once through the filter",
             detail=qio.stderr[-2000:])

        def merged_settled():
            r = st.report("qio", window="1h")
            rb = r["disks"][0].get("rbd") or {}
            return r if rb.get("joined", 0) + rb.get("osd_op_missing", 0) >= n_adj else None
        qrep = st.wait_until(merged_settled, timeout=60)
        time.sleep(st.hold_ms / 1000 + 1)
        rep = st.report(name, window="1h")
        qrep = st.report("qio", window="1h")
        status = st.status()
        tail = json.loads(st.cli("tail", name, "--window", "1h", "--json").stdout)
        text = st.cli("report", name, "--window", "1h").stdout
        t.diag(text)
        st.close()
        col_rc = col.stop()
        hist1 = cluster.osd({"prefix": "config get", "var": "osd_op_history_size"})

        disks_rep = {d["disk"]: d for d in rep["disks"]}
        for disk, want, sched in (("vda", 0.99, "none"), ("vdb", 0.95, "simple, the default")):
            d = disks_rep[disk]
            rb = d.get("rbd") or {}
            n = len(guest_dev[disk])
            rate = rb.get("guest_joined", 0) / max(n, 1)
            t.ok(rb.get("guest_requests") == n and rate >= want,
                 f"{disk} (rbd_io_scheduler={sched}): {rate:.1%} of the guest's {n} reads and "
                 f"writes joined down to their OSD op (>= {want:.0%})",
                 detail=json.dumps({"rbd": rb, "counters": d["counters"]}))
            rest = rb.get("calls", 0) - rb.get("joined", 0)
            t.ok(rest == rb.get("no_osd_op", 0) + rb.get("osd_op_missing", 0),
                 f"{disk}: the requests not joined are counted, by reason "
                 f"({rb.get('no_osd_op')} without OSD op, {rb.get('osd_op_missing')} missing)",
                 detail=rb)
            # The guest side is either the device phases (#17, when the
            # filter sees the virtio device) or guest_to_qemu/qemu_to_guest.
            want_phases = {"librbd", "net_out", "osd_queue", "osd_exec", "net_back", "total"}
            names = phase_names(d)
            guest_side = ({"guest_to_device", "device_to_guest"} <= names
                          or {"guest_to_qemu", "qemu_to_guest"} <= names)
            t.ok(want_phases <= names and guest_side,
                 f"{disk}: the report shows the RBD phases and the guest side",
                 detail=sorted(names))
            clk = rb.get("osd_clock") or {}
            t.ok(clk.get("same_host") and 0 <= clk.get("bound_ns", -1) <= 10000,
                 f"{disk}: the OSD clock's offset is stated, bounded within 10 us "
                 f"(collector on this host): +-{clk.get('bound_ns')} ns", detail=clk)
            bs = next((b["stats"] for b in blockstats
                       if b.get("device") == devs[disk].drive_id or
                       (b.get("qdev") or "").startswith(
                           f"/machine/peripheral/{devs[disk].device_id}/")), {})
            counts = op_counts(d)
            t.eq((counts.get("read", 0), counts.get("write", 0)),
                 (bs.get("rd_operations"), bs.get("wr_operations")),
                 f"{disk}: reads and writes in the report equal QEMU's query-blockstats")

        # The OSD's own counters over the window: every client write was one
        # of the data writes hostd joined, byte for byte; the client reads
        # are the data reads joined plus librbd's own reads (header, object
        # map), which the collector saw as other ops.
        osd = [d.get("rbd", {}).get("osd_ops", {}) for d in rep["disks"]]
        w_ops = sum(o.get("writes", 0) for o in osd)
        w_bytes = sum(o.get("write_bytes", 0) for o in osd)
        r_ops = sum(o.get("reads", 0) for o in osd)
        guest_w_bytes = sum(io["bytes"] for io in ios if io["op"] == "write")
        d_w = perf1["op_w"] - perf0["op_w"]
        d_wb = perf1["op_w_in_bytes"] - perf0["op_w_in_bytes"]
        d_r = perf1["op_r"] - perf0["op_r"]
        meta = status["ceph"]["rbd"]["ops_meta"]
        t.diag(f"OSD perf over the window: op_w +{d_w} ({d_wb} bytes), op_r +{d_r}, "
               f"op_rw +{perf1['op_rw'] - perf0['op_rw']}; hostd joined {w_ops} writes "
               f"({w_bytes} bytes), {r_ops} reads; the guest wrote {guest_w_bytes} bytes; "
               f"the collector saw {meta} other ops of the clients")
        t.eq((w_ops, w_bytes), (d_w, d_wb),
             "the data writes hostd joined are the OSD's client writes (count, bytes)")
        t.eq(w_bytes, guest_w_bytes, "and the bytes the guest wrote")
        t.ok(r_ops <= d_r <= r_ops + meta,
             "the OSD's client reads are the data reads hostd joined plus librbd's own",
             detail=(r_ops, d_r, meta))

        qrb = (qrep["disks"][0].get("rbd") or {}) if qrep else {}
        t.ok(qrb.get("joined") == n_adj and qrb.get("merged", 0) >= 2,
             f"librbd merged adjacent writes: all {n_adj} joined, {qrb.get('merged')} of them "
             "to an OSD op that served others too (counted as merged)", detail=qrb)

        # Every slow request's timeline adds up to its total.
        bad = [r for r in tail["requests"] if r["has_guest"] and r["has_span"] and
               abs(sum(p["ns"] for p in r["phases"]) - r["total_ns"]) > 1]
        rbd_tail = [r for r in tail["requests"]
                    if any(p["phase"] == "osd_exec" for p in r["phases"])]
        t.ok(rbd_tail and not bad, f"each of the {len(tail['requests'])} slowest requests' "
             "phases sum to its total, the RBD ones' included", detail=bad[:3])
        t.ok("on RBD" in text and "OSD clock" in text,
             "the text report says which image and the OSD clock's bound", detail=text)

        t.ok(col.text().count("op history size") >= 2 and col_rc == 0 and hist1 == hist0,
             "the collector raised the OSD's op history size (one log line) and put it "
             "back at stop", detail=(col.text()[-1500:], col_rc, hist0, hist1))
        c0 = status["ceph"]["collectors"][0]
        t.ok(c0["connected"] and c0["same_host"] and c0["bad_lines"] == 0,
             "hostd was connected to the collector, on this host", detail=c0)
    finally:
        if col:
            col.stop()
        cluster.close()
    t.done()


if __name__ == "__main__":
    main()
