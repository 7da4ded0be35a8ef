#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""A local client opens 2,000 TCP connections to hostd's metrics port and
holds them without sending anything (docs/security.md, "Host-side
surfaces"). hostd starts as under systemd, with a soft limit of 1,024 open
files. Meanwhile, and after:

- `blkin status` and a scrape of /metrics answer (each within a generous
  20 s, polled);
- hostd holds a bounded number of descriptors (its connection limits,
  far below 1,024) and resident memory;
- it does not spin: its CPU time over the hold stays well below one core;
- its log grows by a few lines (a summary per 10 s), not one per refusal.

Before the limits, the connections took all 1,024 descriptors, each held
to its 10 s deadline; the accept loop then spun on EMFILE at most of a CPU
and logged hundreds of KB/s, and control clients were refused."""
import time

from clientlib import (Watch, answers_within, fds, log_lines, open_idle, raise_own_nofile, scrape,
                       start_hostd, status)
from stack import free_ports
from tap import Tap

FLOOD = 2000
HOLD_S = 12  # past the metrics deadline (10 s)
FD_BOUND = 400  # limits: 160 clients in all; hostd itself uses ~30
RSS_BOUND_KIB = 64 * 1024
CPU_BOUND = 0.2  # CPU-seconds per second while held (a spin: 0.4-1)
LOG_BOUND = 6
# "Promptly", generously: an answer takes milliseconds; on a loaded
# machine a second or two.
PROMPT_S = 5



def main():
    t = Tap()
    t.diag(f"own fd limit {raise_own_nofile(FLOOD * 2 + 200)}")
    port = free_ports(1)[0]
    h = start_hostd("metrics-flood", metrics_port=port)
    socks = []
    try:
        ok, took = status(h)
        t.ok(ok, "before: blkin status answers")
        ok, took = scrape(port)
        t.ok(ok, "before: /metrics answers")
        fds0, rss0, log0 = fds(h), h.rss_kib(), len(log_lines(h))
        t.diag(f"before: {fds0} fds, {rss0} KiB resident, {log0} log lines")

        w = Watch(h)
        socks, failed = open_idle(port, FLOOD)
        t.diag(f"{len(socks)} idle connections opened ({failed} connects failed at once)")
        w.sample()
        # While they are held (within the 10 s deadline they would get).
        ok, took = status(h, timeout=PROMPT_S)
        t.ok(ok, f"blkin status answers within {PROMPT_S} s while {FLOOD} idle metrics "
             "connections are held", detail=f"{took:.1f} s")
        t.diag(f"status took {took:.2f} s")
        ok, took = scrape(port, timeout=PROMPT_S)
        t.ok(ok, f"a scrape of /metrics answers within {PROMPT_S} s meanwhile",
             detail=f"{took:.1f} s")
        t.diag(f"scrape took {took:.2f} s")
        w.hold(6)
        cpu = w.cpu_per_s()
        w.hold(HOLD_S - 6)
        t.diag(f"during: peak {w.fds} fds, peak {w.rss} KiB resident, {cpu:.3f} CPU-s/s")
        t.ok(w.fds < FD_BOUND, f"hostd's descriptors stay bounded (< {FD_BOUND})",
             detail=f"peak {w.fds}")
        if h.sanitized():
            t.skip("hostd's resident size stays bounded", "ASan build")
        else:
            t.ok(w.rss - rss0 < RSS_BOUND_KIB, "hostd's resident size stays bounded",
                 detail=f"{rss0} -> {w.rss} KiB")
        t.ok(cpu < CPU_BOUND, f"hostd does not spin (< {CPU_BOUND} CPU-s/s while they are held)",
             detail=f"{cpu:.3f}")
        ok, _ = answers_within(status, 30, h)
        t.ok(ok, "blkin status still answers after the hold")
        ok, _ = answers_within(scrape, 30, port)
        t.ok(ok, "a scrape still answers after the hold")
        new = log_lines(h)[log0:]
        t.diag(f"log: {len(new)} new lines")
        for line in new[:10]:
            t.diag("  " + line[:300])
        t.ok(len(new) <= LOG_BOUND, f"the log grew by a few lines (<= {LOG_BOUND}), not one a client",
             detail=f"{len(new)} lines")
        t.ok(any("refused at the connection limit" in l or "closed to make room" in l for l in new),
             "the log says connections were refused or closed at the limit, with a count")
    finally:
        for s in socks:
            s.close()
        t.ok(h.proc.poll() is None, "hostd is still running")
        h.stop()
    t.done()


if __name__ == "__main__":
    main()
