#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Idle clients of hostd's control socket (docs/security.md, "Host-side
surfaces"); hostd starts with a soft limit of 1,024 open files, as under
systemd, and `control-idle-s = 3` in its config file:

- a client that connects and sends nothing is closed after about 3 s;
- a client that sends half a request line and stops is closed after the
  line deadline (10 s);
- a local client opening 2,000 connections and holding them: meanwhile
  `blkin status` and a scrape of /metrics answer promptly, hostd's
  descriptors and memory stay bounded, it does not spin, and its log grows
  by a few lines.

Before the limits, control clients had no idle timeout and no cap: 1,027
of them took all of hostd's descriptors, and the control and metrics
accept loops then spun and logged a line per failed accept."""
import socket
import time

from clientlib import (Watch, answers_within, fds, log_lines, open_idle, raise_own_nofile, scrape,
                       start_hostd, status)
from stack import free_ports
from tap import Tap

FLOOD = 2000
IDLE_S = 3
LINE_S = 10  # serve-limits.h HOSTD_SERVE_CONTROL_LINE_S
FD_BOUND = 400
RSS_BOUND_KIB = 64 * 1024
CPU_BOUND = 0.2
LOG_BOUND = 6
PROMPT_S = 5


def closed_within(s, seconds):
    """Seconds until hostd closed @s (EOF or reset), or None."""
    t0 = time.monotonic()
    s.settimeout(0.5)
    while time.monotonic() - t0 < seconds:
        try:
            if s.recv(4096) == b"":
                return time.monotonic() - t0
        except socket.timeout:
            continue
        except OSError:
            return time.monotonic() - t0
    return None



def main():
    t = Tap()
    t.diag(f"own fd limit {raise_own_nofile(FLOOD * 2 + 200)}")
    port = free_ports(1)[0]
    h = start_hostd("control-flood", metrics_port=port,
                    config=f"[hostd]\ncontrol-idle-s = {IDLE_S}\n")
    socks = []
    try:
        ok, _ = status(h)
        t.ok(ok, "before: blkin status answers")

        # Idle timeouts, one client at a time.
        s = socket.socket(socket.AF_UNIX)
        s.connect(h.socket)
        took = closed_within(s, IDLE_S + 20)
        s.close()
        t.ok(took is not None, f"a client that sends nothing is closed (control-idle-s = {IDLE_S})",
             detail="still open after 23 s")
        t.diag(f"idle client closed after {took} s")
        s = socket.socket(socket.AF_UNIX)
        s.connect(h.socket)
        s.sendall(b'{"cmd":"sta')
        # It keeps sending bytes of the line, so only the line deadline
        # can end it.
        t0 = time.monotonic()
        took = None
        while time.monotonic() - t0 < LINE_S + 20:
            try:
                s.sendall(b" ")
            except OSError:
                took = time.monotonic() - t0
                break
            c = closed_within(s, 1)
            if c is not None:
                took = time.monotonic() - t0
                break
        s.close()
        t.ok(took is not None, f"a client holding a half-written line is closed (line deadline {LINE_S} s)",
             detail=f"still open after {LINE_S + 20} s")
        t.diag(f"half-line client closed after {took} s")

        fds0, rss0, log0 = fds(h), h.rss_kib(), len(log_lines(h))
        t.diag(f"before the flood: {fds0} fds, {rss0} KiB resident, {log0} log lines")
        w = Watch(h)
        socks, failed = open_idle(h.socket, FLOOD)
        t.diag(f"{len(socks)} idle connections opened ({failed} connects failed at once)")
        w.sample()
        ok, took = status(h, timeout=PROMPT_S)
        t.ok(ok, f"blkin status answers within {PROMPT_S} s while {FLOOD} idle control "
             "connections are held", detail=f"{took:.1f} s")
        t.diag(f"status took {took:.2f} s")
        ok, took = scrape(port, timeout=PROMPT_S)
        t.ok(ok, f"a scrape of /metrics answers within {PROMPT_S} s meanwhile",
             detail=f"{took:.1f} s")
        t.diag(f"scrape took {took:.2f} s")
        w.hold(6)
        cpu = w.cpu_per_s()
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
        # Every one of them is gone by now: refused, pushed out, timed out.
        w.hold(IDLE_S + 2)
        t.ok(fds(h) <= fds0 + 2, "once idle past control-idle-s, none of them holds a descriptor",
             detail=f"{fds0} -> {fds(h)}")
        ok, _ = answers_within(status, 30, h)
        t.ok(ok, "blkin status still answers after the flood")
        new = log_lines(h)[log0:]
        t.diag(f"log: {len(new)} new lines")
        for line in new[:10]:
            t.diag("  " + line[:300])
        t.ok(len(new) <= LOG_BOUND, f"the log grew by a few lines (<= {LOG_BOUND}), not one a client",
             detail=f"{len(new)} lines")
    finally:
        for s in socks:
            s.close()
        t.ok(h.proc.poll() is None, "hostd is still running")
        h.stop()
    t.done()


if __name__ == "__main__":
    main()
