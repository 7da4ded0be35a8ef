#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""The node-wide budget of guest requests waiting to be joined
(--pending-budget, docs/security.md): three guests that flood records no
span will ever claim, next to a quiet one, cannot make hostd hold more than
the budget across all VMs; the channels cut are the floods' (for "pending on
the node"), never the quiet guest's; once the floods stop, nothing stays
pending."""
import os
import re
import shutil
import time

from fakeagent import FakeAgent
from faultlib import BUILD, Hostd
from tap import Tap

BUDGET = 30000
HOLD_MS = 8000  # records wait this long for their spans: they pile up
FLOOD_RATE = 8000  # per flood; 3 x 8,000/s x 8 s = 192,000 if nothing cut
# What a VM can add between two checks: one read of its channel (64 KiB,
# ~1,170 records) and one batch.
SLACK = 4 * (1170 + FLOOD_RATE // 10)


def pending_total(h):
    return sum(d["counters"]["pending"] for d in h.report(window="1m")["disks"])


def main():
    t = Tap()
    wd = os.path.join(BUILD, "tests", "faults", "work", "budget")
    shutil.rmtree(wd, ignore_errors=True)
    os.makedirs(wd)
    agents = []
    with Hostd(wd, hold_ms=HOLD_MS, args=["--pending-budget", str(BUDGET)]) as h:
        try:
            quiet = FakeAgent(os.path.join(wd, "quiet.sock"), "good", serial="quiet-a",
                              rate=100).start()
            agents.append(quiet)
            h.register("quiet", quiet.path, ["vda=quiet-a=quiet/vda"])
            floods = []
            for i in range(3):
                fa = FakeAgent(os.path.join(wd, f"flood{i}.sock"), "good", serial=f"flood{i}-a",
                               rate=FLOOD_RATE).start()
                agents.append(fa)
                floods.append(fa)
                h.register(f"flood{i}", fa.path, [f"vda=flood{i}-a=flood{i}/vda"])
            peak = 0
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                peak = max(peak, pending_total(h))
                time.sleep(0.3)
            t.diag(f"peak pending across VMs: {peak} (budget {BUDGET})")
            t.ok(peak <= BUDGET + SLACK, f"requests pending across all VMs stay within the budget "
                 f"({peak} <= {BUDGET} + {SLACK})")
            t.ok(peak >= BUDGET // 2, "the floods did reach the budget", detail=peak)

            log = h.log_text()
            cut = {m.group(1) for m in re.finditer(
                r"agent (\S+): too many requests pending on the node: channel closed", log)}
            t.ok(cut >= {"flood0", "flood1", "flood2"} or len(cut) >= 2,
                 "the floods' channels are the ones closed", detail=sorted(cut))
            t.ok("quiet" not in cut and not re.search(r"agent quiet: .*channel closed", log),
                 "the quiet guest's channel is never closed", detail=log[-2000:])
            for fa in floods:
                fa.stop()
            quiet.stop()
            drained = 0
            deadline = time.monotonic() + HOLD_MS / 1000 + 30
            while time.monotonic() < deadline:
                drained = pending_total(h)
                if drained == 0:
                    break
                time.sleep(0.5)
            t.eq(drained, 0, "once the floods stop, nothing stays pending")
            rep = h.report("quiet", window="1h")["disks"][0]
            t.eq(rep["counters"]["guest_records"], quiet.sent_records,
                 "every record of the quiet guest was taken")
            t.ok(h.cli("status", check=False).returncode == 0, "hostd still answers")
        finally:
            for fa in agents:
                fa.stop()
    t.done()


if __name__ == "__main__":
    main()
