#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Which collector ran, and that both collect the same requests.

One guest (Debian's 6.1 kernel, which has BPF and BTF) runs the same
deterministic workload (reads, writes and flushes, queue depth 1 then 16, two
disks) twice: under the agent's BPF collector (--mechanism bpf), then under
its perf collector (--mechanism perf). The host end sees two agent sessions:
the first says BPF in its HELLO (feature bit 2) and the second does not; each
delivers exactly the workload's reads and writes (disk, op, sector, size)
with times inside the workload's own, nothing dropped or unmatched, and the
two deliver the same requests with the same flags, flushes included.

Then the guest hides its kernel's BTF (a tmpfs over /sys/kernel/btf): forced
BPF now fails with a clear message and exit status 1, and the default (auto)
falls back to perf, says so in its log and its HELLO, and still delivers
every request."""
import collections
import os
import time

import agenttest as at
import vm
from tap import Tap

WL = "--seed 21 --count 250 --qd 1,16 --span 16M --flush-pct 4"
WL_SMALL = "--seed 22 --count 100 --qd 4 --span 16M"

GUEST = r"""
A="$(blkin_disk mech-disk-a)"; B="$(blkin_disk mech-disk-b)"
start_agent --mechanism bpf || exit 1
blkin-workload @WL@ -o "$BLKIN_RESULTS" "$A" "$B" || exit 2
mark bpf-workload
sleep 0.3
stop_agent
mark bpf-agent
start_agent --mechanism perf || exit 3
blkin-workload @WL@ -o "$BLKIN_RESULTS" "$A" "$B" || exit 4
mark perf-workload
sleep 0.3
stop_agent
mark perf-agent
# A kernel without BTF, as libbpf sees it.
mount -t tmpfs none /sys/kernel/btf || exit 5
blkin-guest-agent --mechanism bpf --port-path /dev/null 2>/tmp/forced.log
echo "forced-exit $?" >"$BLKIN_RESULTS"
sed 's/^/forced-log /' /tmp/forced.log >"$BLKIN_RESULTS"
mark forced
start_agent || exit 6
blkin-workload @WLS@ -o "$BLKIN_RESULTS" "$A" || exit 7
mark auto-workload
sleep 0.3
stop_agent
mark auto-agent
"""

FEAT_BPF = 1 << 2


def sessions(events):
    """The dump's events split by agent session, in order of appearance."""
    out, cur = [], None
    for e in events:
        if e.get("type") == "hello":
            if cur is None or cur["session"] != e["session"]:
                cur = {"session": e["session"], "hello": e, "requests": [], "drops": []}
                out.append(cur)
        elif cur is not None and e.get("type") == "request":
            cur["requests"].append(e)
        elif cur is not None and e.get("type") == "drops":
            cur["drops"].append(e)
    return out


def key(r):
    return (r["dev"], r["op"], r["sector"], r["bytes"], tuple(r["flags"]))


def check_session(t, name, sess, wl_text, agent_text, collector):
    wl = vm.parse_workload(wl_text)
    ios = wl["ios"]
    t.ok(wl["summary"] and wl["summary"]["errors"] == 0 and ios,
         f"{name}: workload ran {len(ios)} requests without errors", detail=wl["summary"])
    t.ok(f"with the {collector} collector" in agent_text,
         f"{name}: the agent's log names the {collector} collector",
         detail=[l for l in agent_text.splitlines() if "watching" in l or "BPF" in l])
    t.eq(at.agent_exit(agent_text), 0, f"{name}: agent exits 0")
    if sess is None:
        t.ok(False, f"{name}: the host saw the agent's session")
        return []
    has_bpf = bool(sess["hello"]["features"] & FEAT_BPF)
    t.eq(has_bpf, collector == "bpf",
         f"{name}: HELLO feature bit 2 (BPF) is {'set' if collector == 'bpf' else 'clear'}")
    reqs = sess["requests"]
    data = [r for r in reqs if r["op"] in ("read", "write")]
    pairs, missing, extra = at.match_requests([i for i in ios if i["op"] in ("read", "write")],
                                              data)
    t.ok(not missing and not extra and pairs,
         f"{name}: exactly the workload's {len(pairs)} reads and writes arrived",
         detail=f"missing {missing[:3]}, extra {extra[:3]}")
    outside = [(w, h) for w, h in pairs
               if not (w["start"] <= (h["queue_ns"] or h["issue_ns"])
                       and h["issue_ns"] < h["complete_ns"] <= w["end"])]
    t.ok(not outside, f"{name}: every time lies inside the workload's own [start, end]",
         detail=outside[:2])
    st = at.agent_stats(agent_text)
    t.ok(st and st["dropped"] == 0 and st["lost"] == 0 and st["unmatched"] == 0
         and st["evicted"] == 0, f"{name}: nothing dropped, lost, unmatched or evicted",
         detail=st)
    return reqs


def test_mechanisms(t):
    work = at.workdir("mechanism")
    disks = [vm.Disk(os.path.join(work, "a.img"), "mech-disk-a", size="64M"),
             vm.Disk(os.path.join(work, "b.img"), "mech-disk-b", size="64M")]
    script = GUEST.replace("@WL@", WL).replace("@WLS@", WL_SMALL)
    with at.guest_vm(work, disks, script, timeout=160) as g:
        g.start()
        dump = at.Dump(g.agent_socket, os.path.join(work, "dump.jsonl"), probe_ms=100)
        res = g.wait()
        time.sleep(0.3)
        ev = dump.stop()
        text = g.results()
    t.ok(res.ok, "guest script exited 0", detail=f"{res}\n{res.console[-3000:]}")
    parts = at.split_marks(text)
    ss = sessions(ev)
    t.eq(len(ss), 3, "the host saw three agent sessions (bpf, perf, auto without BTF)")
    ss += [None] * (3 - len(ss))
    t.eq(at.of_type(ev, "invalid"), [], "nothing the agents sent was refused")

    bpf = check_session(t, "bpf", ss[0], parts.get("bpf-workload", ""),
                        parts.get("bpf-agent", ""), "bpf")
    perf = check_session(t, "perf", ss[1], parts.get("perf-workload", ""),
                         parts.get("perf-agent", ""), "perf")
    # The same workload, so the same requests, flushes and flags included.
    # (Reading a disk's serial sends it a request of op "other"; each agent
    # reads them before it starts collecting, so neither sees those.)
    kb = collections.Counter(key(r) for r in bpf)
    kp = collections.Counter(key(r) for r in perf)
    t.ok(kb == kp and kb, f"bpf and perf delivered the same {sum(kb.values())} requests "
         f"(op, disk, sector, size, flags)",
         detail=f"only bpf: {list((kb - kp).items())[:4]}, only perf: {list((kp - kb).items())[:4]}")
    for op in ("flush", "write"):
        t.diag(f"{op}: bpf {sum(1 for r in bpf if r['op'] == op)}, "
               f"perf {sum(1 for r in perf if r['op'] == op)}")
    t.ok(sum(1 for r in bpf if r["op"] == "flush") > 0, "flushes were among them")
    lat = {}
    for name, reqs in (("bpf", bpf), ("perf", perf)):
        v = sorted(r["complete_ns"] - r["issue_ns"] for r in reqs if r["op"] in ("read", "write"))
        lat[name] = v[len(v) // 2] if v else 0
    t.diag(f"median issue->complete: bpf {lat['bpf'] / 1000:.0f} us, perf {lat['perf'] / 1000:.0f} us")

    forced = parts.get("forced", "")
    t.ok("forced-exit 1" in forced and "BPF collector" in forced,
         "without BTF, --mechanism bpf fails with exit status 1 and says why",
         detail=forced[-600:])
    auto_log = parts.get("auto-agent", "")
    t.ok("BPF collector unavailable" in auto_log,
         "without BTF, the default (auto) logs that BPF is unavailable",
         detail=auto_log[-800:])
    check_session(t, "auto without BTF", ss[2], parts.get("auto-workload", ""), auto_log,
                  "perf")


def main():
    t = Tap()
    t.run(test_mechanisms)
    t.done()


if __name__ == "__main__":
    main()
