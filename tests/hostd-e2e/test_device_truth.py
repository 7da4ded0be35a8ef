#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""The time BlkKin puts inside QEMU is QEMU's own.

A guest does mixed reads, writes and flushes at QD1, then adjacent 4 KiB
reads and writes at QD16 that virtio-blk merges, on a raw disk and on qcow2
over a second blkin node. Over the same window, per disk and op, BlkKin's
in-QEMU time (the device's entry -> the device's completion, `in_qemu`) is
compared with QEMU's own accounting of the device: `query-blockstats`
counts (equal), `*_total_time_ns` (sums within 5 %), and the bins of
`block-latency-histogram-set` (each within 2 % of the op's requests). The
report says the device is virtio-blk, shows the device phases, and names
merged requests; the phases of every request still add up."""
import os
import shutil
import time

import vm
from stack import BUILD, HostStack, StackedDisk
from tap import Tap

UNMAP = {"discard": "unmap"}
GUEST = """
blkin-guest-agent 2>/tmp/agent.log &
AGENT=$!
sleep 1
for s in tr-a tr-b; do
    d=$(blkin_disk $s)
    echo "serial $d $s" >"$BLKIN_RESULTS"
    # The guest's own merging off: adjacent requests reach virtio-blk
    # apart, and virtio-blk merges them.
    echo 2 >/sys/block/${d#/dev/}/queue/nomerges
done
echo "ready" >"$BLKIN_RESULTS"
sleep 20
echo "phase-go" >"$BLKIN_RESULTS"
blkin-workload --seed 31 -n 300 -q 1 -w 50 -f 10 -o "$BLKIN_RESULTS" \\
    "$(blkin_disk tr-a)" "$(blkin_disk tr-b)" || exit 1
blkin-workload --seed 32 -n 1200 -q 16 -w 50 -Z -o "$BLKIN_RESULTS" \\
    "$(blkin_disk tr-a)" "$(blkin_disk tr-b)" || exit 1
echo "workload-done" >"$BLKIN_RESULTS"
sleep 20
kill -TERM $AGENT
wait $AGENT
exit 0
"""
HOLD_MS = 1500
# QEMU's histogram boundaries (ns), the same for every op.
BOUNDS = [10_000, 20_000, 50_000, 100_000, 200_000, 500_000, 1_000_000, 2_000_000,
          5_000_000, 10_000_000, 20_000_000, 50_000_000, 100_000_000]
QEMU_OPS = {"read": "rd", "write": "wr", "flush": "flush"}


def blkin_side(st, vm_name):
    """Per disk target, per op: BlkKin's in_qemu (count, sum_ns, buckets)."""
    rep = st.cli("report", vm_name, "--window", "1h", "--json", "--buckets")
    import json
    out = {}
    for d in json.loads(rep.stdout)["disks"]:
        ops = {}
        for o in d["ops"]:
            ph = {p["phase"]: p for p in o["phases"]}
            iq = ph.get("in_qemu", {"count": 0, "sum_ns": 0, "buckets": []})
            ops[o["op"]] = {"count": iq["count"], "sum_ns": iq["sum_ns"],
                            "buckets": [tuple(b) for b in iq.get("buckets", [])],
                            "phases": ph, "requests": o["count"]}
        out[d["disk"]] = {"ops": ops, "device": d.get("device"), "counters": d["counters"]}
    return out


def qemu_side(g, devices):
    """Per device id: QEMU's accounting (operations, total time, histograms)."""
    out = {}
    for s in g.qmp("query-blockstats"):
        dev = s.get("qdev", "")
        name = next((k for k in devices if dev.endswith(f"/{k}/virtio-backend") or dev == k), None)
        if name:
            out[name] = s["stats"]
    return out


def hist_bins(buckets, bounds):
    """BlkKin's buckets [(upper_ns, count)] into QEMU's bins: bin i holds
    values in [bounds[i-1], bounds[i]) (first from 0, last to infinity)."""
    bins = [0] * (len(bounds) + 1)
    for upper, count in buckets:
        i = 0
        while i < len(bounds) and upper >= bounds[i]:
            i += 1
        bins[i] += count
    return bins


def straddling(buckets, bounds):
    """BlkKin's buckets that hold values on both sides of one of QEMU's
    boundaries (hostd's histograms: 64 buckets per power of two, upper
    inclusive): their requests may be in either bin."""
    out = []
    for upper, count in buckets:
        e = upper.bit_length() - 1
        width = 1 << max(e - 6, 0)
        lower = upper - width + 1
        if any(lower < b <= upper for b in bounds):
            out.append((lower, upper, count))
    return out


def sub_buckets(after, before):
    b = dict(before)
    return [(u, c - b.get(u, 0)) for u, c in after if c - b.get(u, 0)]


def main():
    t = Tap()
    wd = os.path.join(BUILD, "tests", "hostd-e2e", "work", "truth")
    shutil.rmtree(wd, ignore_errors=True)
    os.makedirs(wd)
    name = "truth"
    disks = [vm.Disk(os.path.join(wd, "a.raw"), "tr-a", size="64M",
                     blkin={"id": f"{name}/vda"}, filter_json=UNMAP,
                     proto_opts=UNMAP, fmt_opts=UNMAP),
             StackedDisk(os.path.join(wd, "b.qcow2"), "tr-b", fmt="qcow2", size="64M",
                         blkin={"id": f"{name}/vdb", **UNMAP})]
    targets = {"disk0": "vda", "disk1": "vdb"}
    with HostStack(wd, hold_ms=HOLD_MS) as st, \
            vm.GuestVM(wd, disks, GUEST, timeout=400, cpus=2,
                       extra_files={"/bin/blkin-guest-agent": vm.agent_binary()}) as g:
        g.start()
        st.register(name, g.agent_socket, [f"vda=tr-a={name}/vda", f"vdb=tr-b={name}/vdb"])
        t.ok(st.wait_until(lambda: "ready" in g.results(), timeout=180, interval=0.2),
             "the guest is up, its agent running")

        # Window start: the disks are idle (the guest sleeps) and both sides
        # agree on what has been done so far.
        def agree():
            q = qemu_side(g, targets)
            b = blkin_side(st, name)
            for dev, tgt in targets.items():
                for op, pre in QEMU_OPS.items():
                    if q[dev][f"{pre}_operations"] != b[tgt]["ops"].get(op, {}).get("count", 0):
                        return None
            return q, b
        start = st.wait_until(agree, timeout=15, interval=0.5)
        t.ok(start is not None and "phase-go" not in g.results(),
             "before the workload, BlkKin and QEMU agree on every device request so far")
        for dev in targets:
            g.qmp("block-latency-histogram-set", id=f"/machine/peripheral/{dev}/virtio-backend",
                  boundaries=BOUNDS)
        q0, b0 = start if start else (qemu_side(g, targets), blkin_side(st, name))

        t.ok(st.wait_until(lambda: "workload-done" in g.results(), timeout=300, interval=0.5),
             "the guest's workloads ran")
        end = st.wait_until(agree, timeout=HOLD_MS / 1000 + 15, interval=0.5)
        t.ok(end is not None, "after the workload, both sides counted the same requests")
        q1, b1 = end if end else (qemu_side(g, targets), blkin_side(st, name))
        res = g.wait()
        t.ok(res.ok, "the guest's workloads verified their data", detail=res.console[-2000:])

        for dev, tgt in targets.items():
            t.eq(b1[tgt]["device"], "virtio-blk", f"{tgt}: the report says the device is virtio-blk")
            merged_qemu = (q1[dev]["rd_merged"] - q0[dev]["rd_merged"] +
                           q1[dev]["wr_merged"] - q0[dev]["wr_merged"])
            t.ok(merged_qemu > 0 and b1[tgt]["counters"]["merged"] > b0[tgt]["counters"]["merged"],
                 f"{tgt}: QEMU merged requests ({merged_qemu}) and BlkKin names them merged",
                 detail=b1[tgt]["counters"])
            for op, pre in QEMU_OPS.items():
                qn = q1[dev][f"{pre}_operations"] - q0[dev][f"{pre}_operations"]
                qt = q1[dev][f"{pre}_total_time_ns"] - q0[dev][f"{pre}_total_time_ns"]
                a = b1[tgt]["ops"].get(op, {"count": 0, "sum_ns": 0, "buckets": [], "phases": {}})
                z = b0[tgt]["ops"].get(op, {"count": 0, "sum_ns": 0, "buckets": []})
                bn, bt = a["count"] - z["count"], a["sum_ns"] - z["sum_ns"]
                t.diag(f"{tgt} {op}: QEMU {qn} requests {qt / 1e6:.1f} ms, BlkKin {bn} {bt / 1e6:.1f} ms")
                t.ok(qn > 0 and bn == qn, f"{tgt} {op}: as many requests as QEMU accounted ({qn})",
                     detail=f"BlkKin {bn}")
                t.ok(qt > 0 and abs(bt - qt) <= 0.05 * qt,
                     f"{tgt} {op}: in-QEMU time within 5 % of QEMU's total_time_ns",
                     detail=f"BlkKin {bt}, QEMU {qt} ({(bt - qt) / max(qt, 1) * 100:+.2f} %)")
                qh = q1[dev].get(f"{pre}_latency_histogram", {}).get("bins", [])
                bh = hist_bins(sub_buckets(a["buckets"], z["buckets"]), BOUNDS)
                # Beyond 2 %: the requests of hostd's buckets that hold values
                # on both sides of a bin's edge could be in either bin.
                bb = sub_buckets(a["buckets"], z["buckets"])
                edge = {}
                for lo, hi, c in straddling(bb, BOUNDS):
                    for k, b in enumerate(BOUNDS):
                        if lo < b <= hi:
                            edge[k] = edge.get(k, 0) + c
                slack = [edge.get(i - 1, 0) + edge.get(i, 0) for i in range(len(BOUNDS) + 1)]
                over = [abs(x - y) - sl for x, y, sl in zip(qh, bh, slack)]
                worst = max((abs(x - y) for x, y in zip(qh, bh)), default=None)
                t.diag(f"{tgt} {op}: total time {bt - qt:+d} ns off QEMU's, "
                       f"histogram bins at most {worst} apart (QEMU {qh}, BlkKin {bh}, "
                       f"straddling {straddling(sub_buckets(a['buckets'], z['buckets']), BOUNDS)})")
                t.ok(qh and len(qh) == len(bh) and max(over) <= max(1, 0.02 * qn),
                     f"{tgt} {op}: each latency-histogram bin within 2 % of the requests "
                     "(beyond those hostd's buckets cannot place)",
                     detail=f"QEMU {qh}\nBlkKin {bh}\nslack {slack}")
                ph = a["phases"]
                t.ok(all(p in ph for p in ("device", "qemu", "device_completion")) and
                     "guest_to_qemu" not in ph and "qemu_to_guest" not in ph,
                     f"{tgt} {op}: device phases, not the filter-level ones", detail=sorted(ph))
        # vdb has a blkin node under qcow2: its writes pass the storage, and
        # only requests that did have a backend time (none counted as 0).
        w = b1["vdb"]["ops"]["write"]
        t.ok(w["phases"].get("backend", {}).get("count", 0) > 0, "vdb: writes have a backend phase")
        r = b1["vdb"]["ops"]["read"]
        bk = r["phases"].get("backend", {"count": 0, "p50_ns": 0})
        t.ok(bk["count"] == 0 or bk["p50_ns"] > 0,
             "vdb: reads' backend phase counts only reads that reached the storage, none as 0 ns",
             detail=bk)
    t.done()


if __name__ == "__main__":
    main()
