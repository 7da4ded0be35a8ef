#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""A control client sends 256 MiB without a line feed (docs/security.md,
"Host-side surfaces"):

- hostd answers a JSON error saying the request is too long and closes the
  connection as soon as the limit (64 KiB) is passed, long before the
  256 MiB are sent;
- its resident size stays bounded (it never holds more than the limit);
- `blkin status` and a scrape of /metrics answer promptly meanwhile;
- its log grows by a few lines.

Before, the limit was checked once the whole line was in memory: 256 MiB
took hostd's resident size from 16 to 367 MiB."""
import json
import socket
import threading
import time

from clientlib import Watch, answers_within, check_after, log_lines, scrape, start_hostd, status
from stack import free_ports
from tap import Tap

TOTAL = 256 << 20
RSS_BOUND_KIB = 32 * 1024
LOG_BOUND = 6
PROMPT_S = 5


class Sender(threading.Thread):
    def __init__(self, s):
        super().__init__(daemon=True)
        self.s = s
        self.sent = 0
        self.error = None

    def run(self):
        chunk = b"x" * (1 << 20)
        try:
            while self.sent < TOTAL:
                self.sent += self.s.send(chunk)
        except OSError as e:
            self.error = e


def main():
    t = Tap()
    port = free_ports(1)[0]
    h = start_hostd("control-long-line", metrics_port=port)
    try:
        ok, _ = status(h)
        t.ok(ok, "before: blkin status answers")
        rss0, log0 = h.rss_kib(), len(log_lines(h))
        w = Watch(h)
        s = socket.socket(socket.AF_UNIX)
        s.connect(h.socket)
        sender = Sender(s)
        sender.start()
        # The answer, read while the bytes go out.
        s.settimeout(0.2)
        answer, eof = b"", False
        end = time.monotonic() + 120
        while time.monotonic() < end and not eof:
            w.sample()
            try:
                b = s.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                eof = True
                break
            if not b:
                eof = True
            answer += b
        ok, took = status(h, timeout=PROMPT_S)
        t.ok(ok, f"blkin status answers within {PROMPT_S} s", detail=f"{took:.1f} s")
        ok, took = scrape(port, timeout=PROMPT_S)
        t.ok(ok, f"a scrape of /metrics answers within {PROMPT_S} s", detail=f"{took:.1f} s")
        sender.join(timeout=60)
        w.sample()
        t.diag(f"sent {sender.sent} bytes ({sender.error}); answer {answer[:200]!r}; "
               f"hostd: {rss0} -> peak {w.rss} KiB resident")
        try:
            resp = json.loads(answer.split(b"\n")[0])
        except ValueError:
            resp = {}
        t.ok(resp.get("ok") is False and "too long" in resp.get("error", ""),
             "hostd answers a JSON error saying the request is too long", detail=answer[:300])
        t.ok(eof, "and closes the connection")
        t.ok(sender.sent < TOTAL, "long before the 256 MiB were sent", detail=f"{sender.sent} bytes")
        if h.sanitized():
            t.skip("hostd's resident size stays bounded", "ASan build")
        else:
            t.ok(w.rss - rss0 < RSS_BOUND_KIB,
                 f"hostd's resident size grew by less than {RSS_BOUND_KIB // 1024} MiB",
                 detail=f"{rss0} -> {w.rss} KiB")
        s.close()
        check_after(t, h, log0, LOG_BOUND)
    finally:
        t.ok(h.proc.poll() is None, "hostd is still running")
        h.stop()
    t.done()


if __name__ == "__main__":
    main()
