#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""The guest agent's command line, run on the host (no VM needed for it):
a bad value is refused with exit status 2 and one line naming the option and
the value; the backlog cannot be set larger than the host accepts before its
first clock exchange (BLKIN_BACKLOG_MAX, docs/protocol.md); --memory-bound
grows with --buffer-records."""
import os
import re
import subprocess

from tap import Tap

BUILD = os.environ.get("BLKIN_BUILD_ROOT", os.path.join(os.path.dirname(__file__), "..", "..", "build"))
AGENT = os.environ.get("BLKIN_GUEST_AGENT", os.path.join(BUILD, "guest-agent", "blkin-guest-agent"))
BACKLOG_MAX = 16384


def run(*args):
    return subprocess.run([AGENT, *args], capture_output=True, text=True, timeout=30)


def main():
    t = Tap()
    for args, option, value in ((["--buffer-records", "0"], "buffer-records", "0"),
                                (["--ring-pages=3"], "ring-pages", "3"),
                                (["--inflight", "many"], "inflight", "many"),
                                (["-v", "--flush-ms", "-5"], "flush-ms", "-5")):
        p = run(*args)
        t.ok(p.returncode == 2 and p.stderr.strip() ==
             f"blkin-guest-agent: bad value for --{option}: '{value}'",
             f"{' '.join(args)}: refused, naming --{option} and its value",
             detail=f"rc {p.returncode}, stderr {p.stderr!r}")

    p = run("--buffer-records", str(BACKLOG_MAX + 1))
    t.ok(p.returncode == 2 and f"at most {BACKLOG_MAX}" in p.stderr and
         p.stderr.count("\n") == 1,
         "a backlog larger than the host accepts before its clock exchange is refused",
         detail=f"rc {p.returncode}, stderr {p.stderr!r}")
    p = run("--help")
    t.ok(p.returncode == 0 and re.search(rf"--buffer-records N .*at most {BACKLOG_MAX}", p.stdout),
         "--help states the backlog's limit", detail=p.stdout)

    bounds = {}
    for n in (64, BACKLOG_MAX):
        p = run("--buffer-records", str(n), "--memory-bound")
        bounds[n] = int(p.stdout) if p.returncode == 0 and p.stdout.strip().isdigit() else None
    t.ok(None not in bounds.values() and bounds[BACKLOG_MAX] > bounds[64],
         "--memory-bound accepts the largest backlog and grows with it", detail=bounds)
    t.done()


if __name__ == "__main__":
    main()
