# SPDX-License-Identifier: GPL-2.0-or-later
"""The guest of the fault tests that break something during I/O: the same
workload three times (phases a, b, c) on one traced disk, with the agent
running, and the host breaking or repairing something between phases.
The guest's data is checked by the workload itself (it verifies what it
reads back; mismatches fail it)."""
import vm


def guest_script(serial, seed, n, pauses):
    """The guest's script. `pauses` are the seconds the guest waits before
    phases b and c, the time the host needs to act between phases."""
    waits = "\n".join(f'    [ "$p" = {p} ] && sleep {s}' for p, s in sorted(pauses.items()))
    return f"""
blkin-guest-agent 2>/tmp/agent.log &
AGENT=$!
sleep 1
for p in a b c; do
{waits}
    echo "phase-$p-start" >"$BLKIN_RESULTS"
    blkin-workload --seed {seed} -n {n} -q 1,8 -o "$BLKIN_RESULTS" "$(blkin_disk {serial})" || exit 1
    echo "phase-$p-done" >"$BLKIN_RESULTS"
done
sleep 1
kill -TERM $AGENT
wait $AGENT
exit 0
"""


def phase_records(text, p):
    """What the workload of phase `p` measured, from the guest's results."""
    a = text.find(f"phase-{p}-start")
    b = text.find(f"phase-{p}-done")
    return vm.parse_workload(text[a:b] if a >= 0 and b > a else "")


def elapsed_ns(records):
    ios = records["ios"]
    return max(i["end"] for i in ios) - min(i["start"] for i in ios) if ios else 0


def rw_count(rep):
    """Reads and writes hostd reported for the VM's first disk."""
    d = rep["disks"][0]
    return sum(o["count"] for o in d["ops"] if o["op"] in ("read", "write"))
