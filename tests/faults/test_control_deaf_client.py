#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""A control client that sends requests and never reads the answers
(docs/security.md, "Host-side surfaces"):

- `blkin status` and a scrape of /metrics keep answering promptly;
- hostd closes the deaf client once its unread answers go beyond the
  output bound (1 MiB, serve-limits.h): what the client can read back is
  bounded by that plus the socket buffers;
- hostd's resident size stays bounded, it does not spin, and its log grows
  by a few lines.

Before, hostd wrote answers with a blocking call on its only thread: once
the socket buffer was full, every other client, scrape and agent channel
stopped."""
import socket
import threading
import time

from clientlib import (Watch, answers_within, check_after, log_lines, scrape, start_hostd, status)
from stack import free_ports
from tap import Tap

REQUESTS = 200_000  # 3.4 MB of requests; each status answer is ~400 bytes
RSS_BOUND_KIB = 64 * 1024
CPU_BOUND = 0.5  # answering the requests is real work; a blocked or
                 # spinning hostd is not measured here but by the answers
LOG_BOUND = 6
PROMPT_S = 5


class Deaf(threading.Thread):
    """Sends status requests until hostd closes the connection (or all
    are sent); reads nothing."""

    def __init__(self, path):
        super().__init__(daemon=True)
        self.s = socket.socket(socket.AF_UNIX)
        self.s.connect(path)
        self.sent = 0
        self.closed_by_hostd = False

    def run(self):
        chunk = b'{"cmd":"status"}\n' * 1000
        try:
            for _ in range(REQUESTS // 1000):
                self.s.sendall(chunk)
                self.sent += len(chunk)
        except OSError:
            self.closed_by_hostd = True


def read_back(s, seconds):
    """What the deaf client could still read, and whether it then met EOF."""
    got, eof = 0, False
    s.settimeout(1)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            b = s.recv(1 << 20)
        except socket.timeout:
            break
        except OSError:
            eof = True
            break
        if not b:
            eof = True
            break
        got += len(b)
    return got, eof


def main():
    t = Tap()
    port = free_ports(1)[0]
    h = start_hostd("control-deaf", metrics_port=port)
    try:
        ok, _ = status(h)
        t.ok(ok, "before: blkin status answers")
        rss0, log0 = h.rss_kib(), len(log_lines(h))
        w = Watch(h)
        deaf = Deaf(h.socket)
        deaf.start()
        # Give it time to fill its socket and hostd's queue for it.
        w.hold(3)
        ok, took = status(h, timeout=PROMPT_S)
        t.ok(ok, f"blkin status answers within {PROMPT_S} s while a client does not read its answers",
             detail=f"{took:.1f} s")
        t.diag(f"status took {took:.2f} s")
        ok, took = scrape(port, timeout=PROMPT_S)
        t.ok(ok, f"a scrape of /metrics answers within {PROMPT_S} s meanwhile",
             detail=f"{took:.1f} s")
        deaf.join(timeout=60)
        t.ok(not deaf.is_alive(), "the deaf client's sending ended (hostd closed it or it sent all)")
        w.hold(1)
        cpu = w.cpu_per_s()
        got, eof = read_back(deaf.s, 30)
        t.diag(f"the deaf client sent {deaf.sent} bytes, could read back {got} bytes, "
               f"then {'EOF' if eof else 'nothing'}; hostd: peak {w.rss} KiB resident, "
               f"{cpu:.3f} CPU-s/s")
        t.ok(deaf.closed_by_hostd or eof, "hostd closed the client that does not read")
        t.ok(got < 4 << 20, "what it could read back is bounded (1 MiB queue plus socket buffers)",
             detail=f"{got} bytes")
        if h.sanitized():
            t.skip("hostd's resident size stays bounded", "ASan build")
        else:
            t.ok(w.rss - rss0 < RSS_BOUND_KIB, "hostd's resident size stays bounded",
                 detail=f"{rss0} -> {w.rss} KiB")
        t.ok(cpu < CPU_BOUND, f"hostd's CPU stays bounded (< {CPU_BOUND} CPU-s/s)",
             detail=f"{cpu:.3f}")
        deaf.s.close()
        check_after(t, h, log0, LOG_BOUND)
    finally:
        t.ok(h.proc.poll() is None, "hostd is still running")
        h.stop()
    t.done()


if __name__ == "__main__":
    main()
