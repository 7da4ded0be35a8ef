#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""A real guest with two disks (raw and qcow2) runs the workload at queue
depth 1 and 16: its records come back complete through the results port,
its data verification passes, it saw both disks under the right serials,
and the agent port works both ways with a host side that connects late."""
import os
import time

import vm
import vmtestlib
from tap import Tap

WL_ARGS = ["--seed", "42", "--count", "200", "--qd", "1,16", "--span", "8M"]
FD_ARGS = ["--seed", "5", "--count", "60", "--qd", "4", "--flush-pct", "10",
           "--discard-pct", "10"]
MARK = "=== flush-discard run ==="

GUEST = r"""
for d in /sys/block/vd*; do echo "disk ${d##*/} $(cat $d/serial) $(cat $d/size)"; done >"$BLKIN_RESULTS"
blkin-workload @ARGS@ -o "$BLKIN_RESULTS" "$(blkin_disk blkin-disk-a)" "$(blkin_disk blkin-disk-b)"
rc=$?
blkin-workload @FDARGS@ -o /tmp/fd.out "$(blkin_disk blkin-disk-a)" || rc=$?
{ echo "@MARK@"; cat /tmp/fd.out; } >"$BLKIN_RESULTS"
# Agent port: write() blocks until the host connects; then read its reply.
exec 3<>"$BLKIN_AGENT_PORT"
echo hello-from-guest >&3
read -r reply <&3
echo "agent-reply $reply" >"$BLKIN_RESULTS"
exit $rc
"""


def test_workload_in_guest(t):
    work = vmtestlib.workdir("vm-workload")
    # Disk a passes discards down to its image file (options on both nodes).
    disks = [vm.Disk(os.path.join(work, "a.img"), "blkin-disk-a", size="64M",
                     proto_opts={"discard": "unmap"}, fmt_opts={"discard": "unmap"}),
             vm.Disk(os.path.join(work, "b.qcow2"), "blkin-disk-b", fmt="qcow2", size="64M")]
    script = (GUEST.replace("@ARGS@", " ".join(WL_ARGS))
              .replace("@FDARGS@", " ".join(FD_ARGS)).replace("@MARK@", MARK))
    with vm.GuestVM(work, disks, script, timeout=90, cpus=2) as g:
        t0 = time.monotonic()
        g.start()
        t.ok(g.qemu_pid and vmtestlib.alive(g.qemu_pid), "QEMU started", detail=g.qemu_log_path)
        # Connect late: the guest is mid-boot or mid-workload by now.
        time.sleep(1.0)
        s = g.connect_agent(timeout=30)
        s.settimeout(60)
        f = s.makefile("rwb")
        line = f.readline().decode().strip()
        t.eq(line, "hello-from-guest", "host reads from the agent port (connected late)")
        f.write(b"ping-from-host\n")
        f.flush()
        res = g.wait()
        s.close()
        wall = time.monotonic() - t0
        t.diag(f"accel={g.accel} guest /init at {g.boot_time()} s uptime, "
               f"VM run {res.elapsed:.2f} s, wall {wall:.2f} s")
        t.ok(res.ok, "guest script exited 0 before the timeout",
             detail=f"{res}\n{res.console[-3000:]}")
        t.ok(not vmtestlib.alive(g.qemu_pid), "QEMU has exited")
        full = g.results()
        text, _, fd_text = full.partition(MARK)

    seen = vmtestlib.disks_seen(text)
    t.eq({k: v for k, v in seen.items()}, {"vda": "blkin-disk-a", "vdb": "blkin-disk-b"},
         "guest sees both disks with their serials")
    t.ok("agent-reply ping-from-host" in full, "guest reads what the host sent on the agent port")

    w = vm.parse_workload(text)
    t.ok(w["header"] and w["end"], "workload output complete (header to end line)",
         detail=text[-2000:])
    t.eq(list(w["devs"]), ["vda", "vdb"], "workload ran on both disks")
    plan = vm.workload_plan(WL_ARGS, ["/dev/" + d for d in w["devs"]] or ["/dev/vda", "/dev/vdb"])
    got = sorted(({k: r[k] for k in ("seq", "qd", "dev", "op", "offset", "bytes")}
                  for r in w["ios"]), key=lambda r: r["seq"])
    t.eq(len(got), 400, "one record per request (200 per queue depth)")
    t.ok(got == plan, "records are exactly the planned requests")
    s = w["summary"] or {}
    t.eq((s.get("errors"), s.get("mismatches")), (0, 0), "no I/O errors, data verified")
    t.ok(s.get("verified_blocks", 0) > 100, "reads checked data written earlier", detail=str(s))
    t.ok(all(r["result"] == r["bytes"] and r["end"] > r["start"] for r in w["ios"]),
         "every request completed in full, positive latency")
    qd1 = [r for r in w["ios"] if r["qd"] == 1]
    qd16 = [r for r in w["ios"] if r["qd"] == 16]
    t.eq(vmtestlib.max_in_flight(qd1), 1, "queue depth 1: one request at a time")
    m16 = vmtestlib.max_in_flight(qd16)
    t.ok(1 < m16 <= 16, f"queue depth 16: requests overlap (max {m16} in flight)")
    for ph in w["phases"]:
        iops = ph["requests"] / (ph["elapsed_ns"] / 1e9)
        t.diag(f"phase qd={ph['qd']}: {ph['requests']} requests, {iops:.0f} IOPS under {g.accel}")

    fd = vm.parse_workload(fd_text)
    fplan = vm.workload_plan(FD_ARGS, ["/dev/vda"])
    fgot = sorted(({k: r[k] for k in ("seq", "qd", "dev", "op", "offset", "bytes")}
                   for r in fd["ios"]), key=lambda r: r["seq"])
    ops = {r["op"] for r in fd["ios"]}
    t.ok(fd["end"] and fgot == fplan and ops == {"read", "write", "flush", "discard"},
         "flushes and discards issued as planned", detail=fd_text[-1500:])
    t.ok(all(r["result"] == (r["bytes"] if r["op"] in ("read", "write") else 0) for r in fd["ios"])
         and fd["summary"]["mismatches"] == 0,
         "flush (fdatasync) and discard (BLKDISCARD) succeed, reads after them verify")


def main():
    t = Tap()
    t.run(test_workload_in_guest)
    t.done()


if __name__ == "__main__":
    main()
