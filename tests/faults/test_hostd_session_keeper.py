#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""The packaged service sets up its own LTTng live session
(`manage-session = true`, hostd/lttng-keeper.h, scripts/blkin-lttng-session):

1. hostd starts before lttng-sessiond: it says so once and keeps trying;
2. lttng-sessiond comes: hostd creates the session (shipped channel,
   blkin_qemu:* and zipkin:*, live, started) and reads QEMU's spans;
3. the helper run by hand (as a unit's ExecStartPre would) finds it in place
   and changes nothing;
4. lttng-sessiond restarted (its sessions are gone): hostd creates the
   session again and reads new spans;
5. the relay daemon restarted (the session lives on in lttng-sessiond, the
   relay no longer serves it): hostd has it re-created and reads new spans;
6. one log line per change, never one per retry.

Runs in a private mount namespace with its own lttng-sessiond (tests/lib/
node.py), and its own relay daemon on free ports."""
import json
import os
import signal
import subprocess
import tempfile
import time

import node

ME = node.isolate()  # before anything starts LTTng or threads

from faultlib import Hostd  # noqa: E402
import threading  # noqa: E402

from qemutools import blkin_json, create, run  # noqa: E402
from vm import preload_library  # noqa: E402

# BLKIN_PRELOAD (scripts/test.sh's sanitizer stage: an uninstrumented one).
PRELOAD = preload_library()
from stack import free_ports  # noqa: E402
from tap import Tap  # noqa: E402

SRC = os.environ.get("BLKIN_SOURCE_ROOT", ".")
HELPER = os.path.join(SRC, "scripts", "blkin-lttng-session")
SESSION = "blkin"


class Relayd:
    def __init__(self, wd, ctrl, data, live):
        self.argv = ["timeout", "600", "lttng-relayd", "-C", f"tcp://127.0.0.1:{ctrl}",
                     "-D", f"tcp://127.0.0.1:{data}", "-L", f"tcp://127.0.0.1:{live}",
                     "-o", os.path.join(wd, "relayd")]
        self.log = os.path.join(wd, "relayd.log")
        self.live = live
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.DEVNULL, stderr=open(self.log, "a"))
        import socket
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", self.live), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("lttng-relayd did not listen")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)


def status(h):
    return json.loads(h.cli("status").stdout)


def wait_until(fn, timeout, interval=0.5):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = fn()
        if v:
            return v
        time.sleep(interval)
    return None


class Ticker:
    """A QEMU process (qemu-io under the preload) reading one sector every
    0.2 s through the filter, for the whole test: a traced application that
    registers with whichever lttng-sessiond runs, so that a live session
    has something to deliver."""

    def __init__(self, wd):
        img = os.path.join(wd, "tick.raw")
        create(img, 1 << 20)
        disk = {"driver": "raw", "file": {"driver": "file", "filename": img}}
        self.proc = subprocess.Popen(
            ["timeout", "600", "qemu-io", blkin_json(disk, id="keeper/tick")],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env=dict(os.environ, LD_PRELOAD=PRELOAD), text=True)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop.wait(0.2):
            try:
                self.proc.stdin.write("read 0 512\n")
                self.proc.stdin.flush()
            except (BrokenPipeError, ValueError):
                return

    def close(self):
        self.stop.set()
        self.thread.join()
        try:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.close()
        except (BrokenPipeError, ValueError):
            pass
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def io(wd, n=200):
    """QEMU I/O through the filter (recorded by this namespace's sessiond)."""
    img = os.path.join(wd, "d.raw")
    if not os.path.exists(img):
        create(img, 16 << 20)
    disk = {"driver": "raw", "file": {"driver": "file", "filename": img}}
    return run(["qemu-img", "bench", "-c", str(n), "-d", "4", blkin_json(disk, id="keeper/vda")],
               preload=PRELOAD, timeout=120)


def events(h):
    return status(h)["trace_inputs"][0].get("events", 0)


def reads_new_spans(t, h, wd, what):
    before = events(h)
    r = io(wd)
    got = wait_until(lambda: events(h) > before, 30)
    t.ok(r.returncode == 0 and got, f"{what}: hostd reads QEMU's new events",
         detail=f"events {before} -> {events(h)}; {r.stderr[-500:]}")


def lttng_lines(h):
    return [line for line in h.log_text().splitlines() if "lttng:" in line]


def main():
    t = Tap()
    os.environ["BLKIN_LTTNG_SESSION"] = HELPER
    with tempfile.TemporaryDirectory(prefix="blkin-keeper-") as wd:
        ctrl, data, live = free_ports(3)
        relay = Relayd(wd, ctrl, data, live)
        relay.start()
        ticker = Ticker(wd)
        url = f"net://127.0.0.1:{live}/host/%H/{SESSION}"
        args = ["--manage-session", "--lttng-relay", f"net://127.0.0.1:{ctrl}:{data}"]
        try:
            with Hostd(wd, live=url, args=args) as h:
                # 1. No session daemon yet.
                time.sleep(8)
                lines = lttng_lines(h)
                t.ok(len(lines) == 1 and "lttng-sessiond is not running" in lines[0],
                     "without lttng-sessiond: one log line in 8 s of retries", detail=lines)
                st = status(h)
                t.eq(st["session"]["last_outcome"], "sessiond-down", "blkin status: the session's state")
                # 2. It comes.
                ME.start_sessiond()
                ok = wait_until(lambda: status(h)["trace"]["state"] == "connected", 60)
                t.ok(ok, "lttng-sessiond started: hostd sets the session up and reads it",
                     detail=status(h).get("session"))
                listing = ME.run(["lttng", "list", SESSION], capture_output=True, text=True).stdout
                t.ok("[active]" in listing and "- blkin: [enabled]" in listing
                     and "blkin_qemu:*" in listing and "zipkin:*" in listing
                     and "Trace file count: 4 per stream" in listing,
                     "the session: active, the shipped channel with bounded trace files, both providers",
                     detail=listing)
                reads_new_spans(t, h, wd, "created")
                # 3. By hand: nothing to do.
                r = ME.run([HELPER, "ensure", "--session", SESSION, "--relay",
                            f"net://127.0.0.1:{ctrl}:{data}"], capture_output=True, text=True)
                t.ok(r.returncode == 0 and r.stdout.strip() == "ok", "the helper again: 'ok', nothing changed",
                     detail=r.stdout + r.stderr)
                # 4. lttng-sessiond restarted.
                n0 = len(lttng_lines(h))
                ME.kill_lttng(signal.SIGTERM)
                ME.start_sessiond()
                lost = wait_until(lambda: status(h)["trace"]["losses"] >= 1, 30)
                back = wait_until(lambda: status(h)["trace"]["state"] == "connected"
                                  and status(h)["trace"]["reconnects"] >= 1, 60)
                t.ok(lost and back, "lttng-sessiond restarted: hostd creates the session again and reads it",
                     detail=(status(h)["trace"], status(h)["session"]))
                reads_new_spans(t, h, wd, "after lttng-sessiond's restart")
                # 5. The relay daemon restarted.
                relay.stop()
                relay.start()
                back = wait_until(lambda: status(h)["trace"]["reconnects"] >= 2
                                  and status(h)["trace"]["state"] == "connected", 90)
                t.ok(back, "the relay daemon restarted: hostd has the session re-created and reads it",
                     detail=(status(h)["trace"], status(h)["session"]))
                reads_new_spans(t, h, wd, "after the relay's restart")
                lines = lttng_lines(h)
                t.diag("\n".join(lines))
                new = lines[n0:]
                t.ok(sum("created the live session" in l for l in new) == 1
                     and sum("re-created it" in l for l in new) == 1 and len(new) <= 4,
                     "one log line per change: created, re-created (and at most a passing "
                     "'not running' / 'in place')", detail=new)
                log = h.log_text().splitlines()
                t.ok(len(log) <= 16, "hostd's whole log stays a few lines through it all",
                     detail="\n".join(log))
        finally:
            ticker.close()
            relay.stop()
    t.done()


if __name__ == "__main__":
    main()
