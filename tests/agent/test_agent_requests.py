#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""A guest runs a known workload (mixed reads and writes of mixed sizes, O_DIRECT,
queue depth 1 then 16, two disks) under blkin-guest-agent while the host end
(blkin-agent-dump) is connected: the host receives exactly those requests,
per disk and op with the same sectors and sizes, with positive latencies that
lie inside what the workload measured around each request; the device map
carries the serials; clock sync gives an offset whose bound is at most half
the best round trip and which is consistent with when records arrived; a
disk that grows makes the agent re-send the device map; the agent exits 0 on
SIGTERM and runs as a daemon."""
import os
import subprocess
import time

import agenttest as at
import vm
from tap import Tap

WL = "--seed 7 --count 300 --qd 1,16 --span 16M"

GUEST = r"""
start_agent || exit 1
blkin-workload @WL@ -o "$BLKIN_RESULTS" "$(blkin_disk agent-disk-a)" "$(blkin_disk agent-disk-b)"
rc=$?
mark workload-done
# The host grows disk b (QMP block_resize): the agent's rescan must notice.
i=0
while [ "$(cat /sys/block/vdb/size)" != 262144 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
echo "resized-size $(cat /sys/block/vdb/size)" >"$BLKIN_RESULTS"
# Let a rescan (every 2 s), the last batch and a few probes go out.
sleep 2.5
stop_agent
# Daemon mode: detaches, writes its pid, exits on SIGTERM (on a dummy port,
# so that the host end only ever sees the first agent).
blkin-guest-agent -d --pidfile /tmp/agent.pid --port-path /dev/null
sleep 0.5
pid=$(cat /tmp/agent.pid 2>/dev/null)
[ -n "$pid" ] && kill -0 "$pid" && echo "daemon-running" >"$BLKIN_RESULTS"
kill -TERM "$pid"
i=0
while kill -0 "$pid" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
kill -0 "$pid" 2>/dev/null || echo "daemon-stopped" >"$BLKIN_RESULTS"
exit $rc
"""


def test_static_binary(t):
    p = subprocess.run([at.agent_binary(), "--help"], capture_output=True, text=True)
    t.ok(p.returncode == 0 and "--port" in p.stdout, "blkin-guest-agent --help",
         detail=p.stderr)
    t.ok(at.elf_is_static(at.agent_binary()),
         "the agent is linked statically (no ELF interpreter, no DT_NEEDED)")
    p = subprocess.run([at.agent_binary(), "--memory-bound"], capture_output=True, text=True)
    t.ok(p.returncode == 0 and int(p.stdout) < 16 << 20,
         f"memory bound with defaults is {int(p.stdout or 0) >> 10} KiB (< 16 MiB)")


def test_requests(t):
    work = at.workdir("requests")
    disks = [vm.Disk(os.path.join(work, "a.img"), "agent-disk-a", size="64M"),
             vm.Disk(os.path.join(work, "b.img"), "agent-disk-b", size="64M")]
    with at.guest_vm(work, disks, GUEST.replace("@WL@", WL), timeout=100) as g:
        g.start()
        dump = at.Dump(g.agent_socket, os.path.join(work, "dump.jsonl"), probe_ms=50)
        if at.wait_for(lambda: "mark workload-done" in g.results(), 80):
            g.qmp("block_resize", **{"node-name": disks[1].fmt_node, "size": 128 << 20})
        res = g.wait()
        time.sleep(0.2)
        ev = dump.stop()
        text = g.results()
    t.ok(res.ok, "guest script exited 0", detail=f"{res}\n{res.console[-3000:]}")
    t.eq(at.agent_exit(text), 0, "agent exits 0 on SIGTERM")
    wl = vm.parse_workload(at.split_marks(text)["workload-done"])
    t.ok(wl["summary"] and wl["summary"]["errors"] == 0 and len(wl["ios"]) == 600,
         "workload ran its 600 requests without errors", detail=wl["summary"])

    # Device map: both disks with serials and sizes.
    maps = at.of_type(ev, "devmap")
    t.ok(maps, "host received a device map")
    if maps:
        devs = {d["name"]: d for d in maps[0]["devices"]}
        t.eq({n: (d["serial"], d["size_bytes"]) for n, d in devs.items()},
             {"vda": ("agent-disk-a", 64 << 20), "vdb": ("agent-disk-b", 64 << 20)},
             "device map: names, serials, sizes")
    if len(maps) >= 2:
        t.ok(maps[-1]["generation"] > maps[0]["generation"] and
             {d["name"]: d["size_bytes"] for d in maps[-1]["devices"]}
             == {"vda": 64 << 20, "vdb": 128 << 20},
             "device map re-sent with a new generation after a disk grew",
             detail=maps[-1])
    else:
        t.ok(False, "device map re-sent after a disk grew",
             detail=[l for l in text.splitlines() if "resized" in l])
    t.ok(at.of_type(ev, "hello"), "host received the agent's hello")
    t.eq(at.of_type(ev, "invalid"), [], "nothing the agent sent was refused")
    t.eq(at.of_type(ev, "gap"), [], "no sequence gaps")

    reqs = at.of_type(ev, "request")
    data = [r for r in reqs if r["op"] in ("read", "write")]
    pairs, missing, extra = at.match_requests(wl["ios"], data)
    t.eq(len(missing), 0, "every workload request reached the host",
         ) or t.diag(f"missing (first 5): {missing[:5]}")
    t.eq(len(extra), 0, "no read/write the workload did not issue") or \
        t.diag(f"extra (first 5): {extra[:5]}")
    for disk in ("vda", "vdb"):
        for op in ("read", "write"):
            w = sorted((i["offset"] // 512, i["bytes"]) for i in wl["ios"]
                       if i["dev"] == disk and i["op"] == op)
            h = sorted((r["sector"], r["bytes"]) for r in data
                       if r["dev"] == disk and r["op"] == op)
            t.ok(w == h and w, f"{disk} {op}: same {len(w)} sectors and sizes")
    others = [r for r in reqs if r["op"] not in ("read", "write")]
    t.diag(f"{len(reqs)} records, {len(others)} other ops: "
           f"{sorted(set(r['op'] for r in others))}")

    bad_lat = [r for r in reqs if not r["complete_ns"] > r["issue_ns"] > 0]
    t.eq(bad_lat, [], "every latency is positive")
    bad_q = [r for r in reqs if r["queue_ns"] and r["queue_ns"] > r["issue_ns"]]
    t.eq(bad_q, [], "queue time never after issue time")
    outside = [(w, h) for w, h in pairs
               if not (w["start"] <= (h["queue_ns"] or h["issue_ns"])
                       and h["complete_ns"] <= w["end"])]
    t.ok(not outside, "agent times lie inside the workload's own [start, end]",
         detail=f"{len(outside)} of {len(pairs)}; first: {outside[:2]}")
    if pairs:
        ratios = sorted((h["complete_ns"] - h["issue_ns"]) / (w["end"] - w["start"])
                        for w, h in pairs)
        med = ratios[len(ratios) // 2]
        t.ok(0.2 < med <= 1.0,
             f"agent latency / workload latency: median {med:.2f}, "
             f"min {ratios[0]:.2f}, max {ratios[-1]:.2f}")
        for qd in (1, 16):
            sub = [(h["complete_ns"] - h["issue_ns"]) / 1000 for w, h in pairs if w["qd"] == qd]
            wsub = [(w["end"] - w["start"]) / 1000 for w, h in pairs if w["qd"] == qd]
            sub.sort()
            wsub.sort()
            if sub:
                t.diag(f"qd {qd}: agent median {sub[len(sub) // 2]:.0f} us, "
                       f"workload median {wsub[len(wsub) // 2]:.0f} us")

    # Clock sync.
    clocks = at.of_type(ev, "clock")
    t.ok(len(clocks) >= 10, f"{len(clocks)} clock probes answered")
    if clocks:
        last = clocks[-1]
        t.diag(f"offset {last['offset_ns']} ns, bound {last['bound_ns']} ns, best rtt "
               f"{last['best_rtt_ns']} ns, drift {last['drift_ppb']} ppb")
        t.ok(0 < last["bound_ns"] and 2 * last["bound_ns"] <= last["best_rtt_ns"] + 1,
             "bound is positive and at most half the best round trip")
        window = [c["rtt_ns"] for c in clocks[-16:]]
        t.ok(last["best_rtt_ns"] == min(window),
             "best round trip is the smallest one observed recently")
        off, bound = last["offset_ns"], last["bound_ns"]
        # A record cannot reach the host before the request completed.
        early = [r for r in reqs if r["complete_ns"] - off - bound > r["t"]]
        t.eq(early, [], "no record arrives before its completion (in host time)")
        hello = at.of_type(ev, "hello")[-1]
        t.ok(hello["guest_mono_ns"] - off - bound <= hello["t"],
             "hello arrives after it was sent (in host time)")
    t.ok("daemon-running" in text and "daemon-stopped" in text,
         "daemon mode: detaches with a pid file and stops on SIGTERM")
    stats = at.agent_stats(text)
    t.ok(stats and stats["dropped"] == 0 and stats["lost"] == 0,
         "agent dropped and lost nothing", detail=stats)
    t.diag(f"agent stats: {stats}")


def main():
    t = Tap()
    t.run(test_static_binary)
    t.run(test_requests)
    t.done()


if __name__ == "__main__":
    main()
