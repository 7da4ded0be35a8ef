#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Sixteen misbehaving 'guests' flood blkin-hostd at once, each in its own
way, next to one well-behaved guest (docs/security.md):

- each bad channel is closed for the limit it broke, with one log line per
  breach, and retried later with a growing delay;
- the good guest's channel is never closed and every record it sent is
  counted on its own disk, none of anyone else's;
- a guest naming another VM's disk serial lands nothing on that disk;
- hostd's resident memory stays bounded through the flood and after it;
- a guest that stops reading its port (hostd's frames to it pile up in the
  socket) never makes hostd wait: it answers throughout, and the frames
  that did not fit are counted.

The guests are UNIX socket servers speaking the wire protocol (fakeagent.py),
which hostd connects to as if they were QEMU's chardev for the agent port."""
import os
import re
import shutil
import time

from fakeagent import FakeAgent
from faultlib import BUILD, Hostd
from tap import Tap

MODES = {
    # mode: the limit its breach must name
    "garbage": "bytes that are not frames",
    "unknown": "frames per second",
    "devices": "too many devices",
    "noclock": "without answering clock probes",
    "records": "records per second",
    "invalid": "invalid frames or records",
    "malformed": "invalid frames or records",
    "foreign": "records per second",
}
FLOOD_S = 25
# Resident growth allowed through the flood. What one bad channel can make
# hostd hold is its fixed channel state (~200 KiB), at most 32,768 records
# waiting for a clock (2.3 MiB) or a burst of 65,536 records in its join
# (~3 MiB, ~6 with the arrays' doubling); measured: about 14 MiB for all 16.
RSS_BOUND_KIB = 64 * 1024


def main():
    t = Tap()
    wd = os.path.join(BUILD, "tests", "faults", "work", "flood")
    shutil.rmtree(wd, ignore_errors=True)
    os.makedirs(wd)
    bad = []
    good = deaf = None
    with Hostd(wd) as h:
        try:
            good = FakeAgent(os.path.join(wd, "good.sock"), "good", serial="good-a",
                             rate=500).start()
            h.register("good", good.path, ["vda=good-a=good/vda"])
            deaf = FakeAgent(os.path.join(wd, "deaf.sock"), "deaf", serial="deaf-a").start()
            h.register("deaf", deaf.path, ["vda=deaf-a=deaf/vda"])
            time.sleep(3)
            rss_before = h.rss_kib()

            modes = list(MODES) * 2
            for i, mode in enumerate(modes):
                serial = "good-a" if mode == "foreign" else f"bad{i}-a"
                fa = FakeAgent(os.path.join(wd, f"bad{i}.sock"), mode, serial=serial).start()
                bad.append(fa)
                h.register(f"bad{i}", fa.path, [f"vda=bad{i}-a=bad{i}/vda"])
            peak = rss_before
            end = time.time() + FLOOD_S
            while time.time() < end:
                peak = max(peak, h.rss_kib())
                time.sleep(0.5)
            for fa in bad:
                fa.stop()
            # hostd probes 5 times a second; the socket's buffer holds a few
            # hundred probes. Until they stop fitting, and after, hostd must
            # answer at once.
            slow = []

            def unsent():
                t0 = time.time()
                n = h.report("deaf")["disks"][0]["counters"]["agent_unsent"]
                slow.append(time.time() - t0)
                return n
            end = time.time() + 150
            while not (n_unsent := unsent()) and time.time() < end:
                time.sleep(1)
            t.ok(n_unsent, "a guest that does not read its port: hostd's frames that did not fit are "
                 "lost and counted, hostd does not wait", detail=f"agent_unsent {n_unsent}")
            t.ok(max(slow) < 10, "hostd answered every request meanwhile",
                 detail=f"slowest answer {max(slow):.1f} s")
            deaf.stop()
            time.sleep(3)
            rss_after = h.rss_kib()
            good.stop()
            time.sleep(2)

            log = h.log_text()
            breaches = {}
            for m in re.finditer(r"agent (\S+): (.*): channel closed \(breach (\d+)\)", log):
                breaches.setdefault(m.group(1), []).append(m.group(2))
            t.diag("breaches: " + ", ".join(f"{k}={len(v)}" for k, v in sorted(breaches.items())))
            t.ok(h.proc.poll() is None, "hostd is still running after the flood")

            for i, fa in enumerate(bad):
                name = f"bad{i}"
                got = breaches.get(name, [])
                t.ok(got and all(MODES[fa.mode] in r for r in got),
                     f"{name} ({fa.mode}): closed for '{MODES[fa.mode]}'",
                     detail=f"breaches: {got}")
                # One line per breach: every connection but possibly the
                # last (cut when the test stopped it) ended in one.
                t.ok(len(fa.accepts) - 1 <= len(got) <= len(fa.accepts),
                     f"{name}: one log line per closed connection",
                     detail=f"{len(got)} lines, {len(fa.accepts)} connections")
                gaps = [b - a for a, b in zip(fa.accepts, fa.accepts[1:])]
                t.ok(len(fa.accepts) >= 2 and gaps[0] >= 1.8 and
                     all(b > a * 1.5 for a, b in zip(gaps, gaps[1:])),
                     f"{name}: reconnected after a growing delay",
                     detail=f"gaps between connections: {[round(g, 2) for g in gaps]}")

            t.ok("good" not in breaches, "the good guest's channel was never closed",
                 detail=breaches.get("good"))
            rep = h.report("good")
            d = rep["disks"][0]
            c = d["counters"]
            t.diag(f"good: sent {good.sent_records}, counters {c}, agent {d['agent']}")
            t.eq(d["agent"]["reconnects"], 1, "the good guest stayed on its first connection")
            t.eq(c["guest_records"], good.sent_records,
                 "every record of the good guest counted on its own disk, nothing else")
            t.eq(c["agent_invalid"], 0, "nothing of the good guest refused")
            foreign = [h.report(f"bad{i}")["disks"][0]["counters"]
                       for i, fa in enumerate(bad) if fa.mode == "foreign"]
            t.ok(all(f["foreign_records"] > 0 and f["guest_records"] == 0 for f in foreign),
                 "records naming another VM's disk counted as foreign, landing nowhere",
                 detail=foreign)

            t.diag(f"hostd RSS: before {rss_before} KiB, peak {peak} KiB, after {rss_after} KiB")
            what = (f"hostd's memory stays bounded (+{peak - rss_before} KiB at the peak, "
                    f"bound {RSS_BOUND_KIB} KiB)")
            if h.sanitized():
                t.skip(what, "hostd runs under ASan")
            else:
                t.ok(peak - rss_before < RSS_BOUND_KIB, what)
            t.ok(h.cli("status", check=False).returncode == 0, "hostd still answers")
        finally:
            for fa in bad:
                fa.stop()
            if good:
                good.stop()
            if deaf:
                deaf.stop()
    t.done()


if __name__ == "__main__":
    main()
