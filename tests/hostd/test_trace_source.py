#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""hostd's trace source (hostd/ingest/trace-source.c) through tests/hostd/trace-dump:
offline reads of real sessions give exactly the requests QEMU issued through
the filter (checked field by field against babeltrace2's own decode), live
reads through an lttng-relayd started here see them while the session runs
and end when it is destroyed, LTTng's discarded events are reported, hung
requests decoded, and broken trace directories give an error, not a crash."""
import json
import os
import queue
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid

import ctfgen
import lttng
from lttng import Session
from qemutools import blkin_json, create, file_node, qemu_io, run
from tap import Tap

BUILD = os.environ.get("BLKIN_BUILD_ROOT", os.path.join(os.path.dirname(__file__), "..", "..", "build"))
SRC = os.environ.get("BLKIN_SOURCE_ROOT", os.path.join(os.path.dirname(__file__), "..", ".."))
DUMP = os.path.join(BUILD, "tests", "hostd", "trace-dump")
GEN = os.path.join(BUILD, "tests", "hostd", "blkin-gen")
KiB = 1024
MiB = 1024 * KiB

SPAN_KEYS = ("vpid", "disk", "trace_id", "span_id", "parent_span_id", "op", "flags", "offset",
             "bytes", "start_ns", "end_ns", "ret", "inflight", "why")


def dump(path, *extra, timeout=120):
    """Runs trace-dump on a trace directory: (returncode, JSON objects, stderr)."""
    p = subprocess.run([DUMP, *extra, path], capture_output=True, text=True, timeout=timeout)
    return p.returncode, [json.loads(line) for line in p.stdout.splitlines() if line.strip()], p.stderr


def of(objs, ev):
    return [o for o in objs if o["ev"] == ev]


def disk_keys(objs, disk_id):
    return {(o["vpid"], o["disk"]) for o in of(objs, "disk") if o["id"] == disk_id}


def spans_for(objs, disk_id, ev="span"):
    keys = disk_keys(objs, disk_id)
    return [o for o in of(objs, ev) if (o["vpid"], o["disk"]) in keys]


# The tracepoint schema's op numbers (docs/tracepoints.md); hostd names ops
# by common/blkin-schema.h's table from the moment it decodes an event.
SCHEMA_OPS = {1: "read", 2: "write", 3: "write_zeroes", 4: "discard", 5: "flush"}


def as_tuple(e):
    """A span's fields; a raw event's schema op number becomes the op's name."""
    return tuple(SCHEMA_OPS.get(e[k], e[k]) if k == "op" and isinstance(e[k], int) else e[k]
                 for k in SPAN_KEYS)


def test_offline_exact(t):
    with tempfile.TemporaryDirectory() as d:
        img = os.path.join(d, "o.raw")
        create(img, 1 * MiB)
        top = {"driver": "raw", "file": file_node(img, None)}
        with Session() as s:
            r = qemu_io(blkin_json(top, id="hd-off"), "read 0 4k", "write -P 1 8k 16k",
                        "write -z 64k 8k", "discard 128k 64k", "flush")
            b = run(["qemu-img", "bench", "-c", "300", "-d", "4", "-s", "4096",
                     blkin_json({"driver": "null-co", "size": 64 * MiB}, id="hd-bench", sample=1)])
    t.ok(r.returncode == 0 and b.returncode == 0, "qemu-io and qemu-img bench run through the filter",
         detail=r.stderr + b.stderr)
    rc, objs, err = dump(s.dir)
    t.eq(rc, 0, "trace-dump reads the session's output directory (ust/uid/... tree) to its end")
    end = of(objs, "end")[-1] if of(objs, "end") else {}
    t.ok(end and end["rejected"] == 0 and end["ignored"] == 0, "no event rejected or ignored", detail=end)

    spans = spans_for(objs, "hd-off")
    # qemu-io flushes after each write command: flushes are counted apart.
    got = [(o["op"], o["offset"], o["bytes"], o["ret"]) for o in spans if o["op"] != "flush"]
    want = [("read", 0, 4096, 0), ("write", 8 * KiB, 16 * KiB, 0), ("write_zeroes", 64 * KiB, 8 * KiB, 0),
            ("discard", 128 * KiB, 64 * KiB, 0)]
    t.eq(got, want, "qemu-io: read, write, write-zeroes, discard in order with offsets and lengths")
    flushes = [o for o in spans if o["op"] == "flush"]
    t.ok(flushes and all(o["offset"] == 0 and o["bytes"] == 0 for o in flushes) and spans[-1]["op"] == "flush",
         "flushes decoded (no range), the explicit one last", detail=flushes)

    bench = spans_for(objs, "hd-bench")
    t.eq(sorted(o["offset"] for o in bench if o["op"] == "read"), [i * 4096 for i in range(300)],
         "qemu-img bench: each of the 300 reads exactly once")

    maps = [o for o in of(objs, "disk") if o["id"] in ("hd-off", "hd-bench")]
    t.ok({o["state"] for o in maps} >= {0, 2} and all(o["node"] and o["child"] for o in maps)
         and all(o["sample"] == 1 for o in maps), "disk map: open and close, node, child, sample",
         detail=maps)
    t.eq(len({o["vpid"] for o in maps}), 2, "the two QEMU processes have distinct vpids")
    # qemu-io and qemu-img have no device behind their BlockBackend: the
    # filter says so once it has seen a request, and keeps its own times.
    t.ok(all(o.get("device") in ("", "none") for o in maps) and
         any(o.get("device") == "none" for o in maps),
         "disk map: no device behind qemu-io/qemu-img ('none'), so no device timing", detail=maps)

    # Every field of every request equals babeltrace2's own decode.
    # (a virtio-blk request of another QEMU recording meanwhile comes as a
    # device_request: trace-dump delivers it as a span too)
    ref = [e for e in s.events() if e["name"] in ("blkin_qemu:request", "blkin_qemu:device_request")]
    t.eq(sorted(as_tuple(o) for o in of(objs, "span")), sorted(as_tuple(e) for e in ref),
         "every request's fields equal babeltrace2's decode (vpid, ids, times, in-flight, why)")
    refmap = sorted((e["vpid"], e["disk"], e["state"], e["id"], e["node"], e["child"], e["sample"])
                    for e in s.events(name="blkin_qemu:disk"))
    t.eq(sorted((o["vpid"], o["disk"], o["state"], o["id"], o["node"], o["child"], o["sample"])
                for o in of(objs, "disk")), refmap, "disk map events equal babeltrace2's decode")
    s.cleanup()


def test_stacked_and_hung(t):
    # Two blkin nodes around a raw format layer; the lower one's spans name
    # the upper one's as parent. null-co's latency makes the request hang.
    lower = {"driver": "blkin", "id": "hd-low", "file": {"driver": "null-co", "size": 16 * MiB,
                                                         "latency-ns": 700 * 1000 * 1000}}
    top = blkin_json({"driver": "raw", "file": lower}, id="hd-top", hung_ms=200)
    with Session() as s:
        # aio + sleep: the hung check runs from QEMU's main loop.
        r = qemu_io(top, "aio_read 0 4k", "sleep 1000", "aio_flush")
    t.ok(r.returncode == 0, "a 700 ms read through two stacked filters", detail=r.stderr)
    rc, objs, _ = dump(s.dir)
    tops = [o for o in spans_for(objs, "hd-top") if o["op"] == "read"]
    lows = [o for o in spans_for(objs, "hd-low") if o["op"] == "read"]
    t.ok(len(tops) == 1 and len(lows) == 1, "one span per node", detail=objs)
    if tops and lows:
        t.ok(lows[0]["trace_id"] == tops[0]["trace_id"] and lows[0]["parent_span_id"] == tops[0]["span_id"]
             and tops[0]["parent_span_id"] == 0, "lower span: same trace, parent = upper span")
    hung = spans_for(objs, "hd-top", ev="hung")
    t.ok(len(hung) >= 1 and all(h["age_ns"] >= 200e6 and h["offset"] == 0 and h["op"] == "read" for h in hung),
         "hung events decoded with the request's fields and an age past hung-ms", detail=hung)
    if hung and tops:
        h = hung[0]
        t.ok(h["span_id"] == tops[0]["span_id"] and h["start_ns"] == tops[0]["start_ns"],
             "the hung report names the request that later completes")
        # end_ns is the event's own CLOCK_MONOTONIC time: start + age, give
        # or take the time between the filter's clock read and LTTng's.
        t.ok(abs(h["end_ns"] - (h["start_ns"] + h["age_ns"])) < 50e6,
             "a hung span's end is its event time (start + age)", detail=h)
    s.cleanup()


def test_discarded(t):
    # Tiny sub-buffers and an unpaced generator: the tracer must discard.
    name = "hd-disc-" + uuid.uuid4().hex[:8]
    d = tempfile.mkdtemp(prefix="blkin-hd-disc-")
    n, disks = 200000, 2
    lttng.ensure_sessiond()
    subprocess.run(["lttng", "create", name, "--output=" + d], check=True, capture_output=True)
    try:
        env = dict(os.environ, BLKIN_SUBBUF_SIZE="4k", BLKIN_NUM_SUBBUF="2")
        subprocess.run([os.path.join(SRC, "scripts", "blkin-lttng-channel"), name], env=env,
                       check=True, capture_output=True)
        subprocess.run(["lttng", "enable-event", "-s", name, "-u", "-c", "blkin", "blkin_qemu:*"],
                       check=True, capture_output=True)
        # Only the generator's events: other processes of this user that
        # record blkin events meanwhile (a test beside this one) would
        # count as received and fill the tiny buffers.
        gen = subprocess.Popen([GEN, "-n", str(n), "-d", str(disks), "-w"], stdin=subprocess.PIPE,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        subprocess.run(["lttng", "untrack", "-s", name, "-u", "--all", "--vpid"], check=True,
                       capture_output=True)
        subprocess.run(["lttng", "track", "-s", name, "-u", f"--vpid={gen.pid}"], check=True,
                       capture_output=True)
        subprocess.run(["lttng", "start", name], check=True, capture_output=True)
        gen.communicate(b"go\n", timeout=60)
        if gen.returncode:
            raise RuntimeError(f"blkin-gen failed ({gen.returncode})")
    finally:
        subprocess.run(["lttng", "destroy", name], capture_output=True)
    rc, objs, _ = dump(d)
    end = of(objs, "end")[-1] if of(objs, "end") else {}
    reported = sum(o["count"] for o in of(objs, "discarded"))
    t.ok(rc == 0 and reported > 0, "LTTng's discarded events reach sink->discarded", detail=end)
    out = subprocess.run(["babeltrace2", d], capture_output=True, text=True, timeout=120)
    bt = sum(int(m) for m in re.findall(r"Tracer discarded (\d+) event", out.stderr))
    t.eq(reported, bt, "the discarded count equals what babeltrace2 reports")
    t.eq(end.get("spans", 0) + end.get("disks", 0) + reported, n + 2 * disks,
         "received + discarded = what the generator emitted")
    shutil.rmtree(d, ignore_errors=True)


def free_port():
    with socket.socket() as so:
        so.bind(("127.0.0.1", 0))
        return so.getsockname()[1]


class Relayd:
    """An lttng-relayd of this test's own, on loopback ports it picked."""

    def __init__(self):
        self.ctrl, self.data, self.live = free_port(), free_port(), free_port()
        self.out = tempfile.mkdtemp(prefix="blkin-relayd-")
        self.proc = subprocess.Popen(
            ["lttng-relayd", "-C", f"tcp://127.0.0.1:{self.ctrl}", "-D", f"tcp://127.0.0.1:{self.data}",
             "-L", f"tcp://127.0.0.1:{self.live}", "-o", self.out],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", self.live), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("lttng-relayd did not start")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Reader:
    """trace-dump --live in the background; lines arrive on a queue."""

    def __init__(self, url):
        self.proc = subprocess.Popen([DUMP, "--timeout", "120", "--live", url], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.q = queue.Queue()
        self.objs = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            if line.strip():
                self.q.put((time.monotonic(), json.loads(line)))
        self.q.put(None)

    def wait_for(self, cond, timeout):
        """Collects objects until cond(all objects) or timeout; returns cond's value."""
        end = time.monotonic() + timeout
        while not cond(self.objs):
            try:
                item = self.q.get(timeout=max(0.01, end - time.monotonic()))
            except queue.Empty:
                return False
            if item is None:
                return cond(self.objs)
            self.objs.append(item[1])
            if time.monotonic() > end:
                return cond(self.objs)
        return True

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def test_live(t):
    lttng.ensure_sessiond()
    relayd = Relayd()
    name = "hd-live-" + uuid.uuid4().hex[:8]
    reader = None
    created = False
    try:
        subprocess.run(["lttng", "create", name, "--live=200000",
                        f"--set-url=net://127.0.0.1:{relayd.ctrl}:{relayd.data}"],
                       check=True, capture_output=True, timeout=60)
        created = True
        subprocess.run([os.path.join(SRC, "scripts", "blkin-lttng-channel"), name], check=True,
                       capture_output=True, timeout=60)
        subprocess.run(["lttng", "enable-event", "-s", name, "-u", "-c", "blkin", "blkin_qemu:*"],
                       check=True, capture_output=True, timeout=60)
        subprocess.run(["lttng", "start", name], check=True, capture_output=True, timeout=60)
        url = f"net://127.0.0.1:{relayd.live}/host/{socket.gethostname()}/{name}"
        p = subprocess.run([DUMP, "--timeout", "30", "--live", url + "-nosuch"], capture_output=True,
                           text=True, timeout=60)
        t.ok(p.returncode == 0 and '"ev":"end"' in p.stdout,
             "live: a session the relay daemon does not have ends the source at once (not-found action end)",
             detail=p.stdout + p.stderr)
        reader = Reader(url)
        time.sleep(0.5)
        t.ok(reader.proc.poll() is None, "the live reader attaches to the running session",
             detail=reader.proc.poll() is not None and reader.proc.stderr.read())

        n = 200
        t0 = time.monotonic()
        b = run(["qemu-img", "bench", "-c", str(n), "-d", "2", "-s", "4096",
                 blkin_json({"driver": "null-co", "size": 16 * MiB}, id="hd-live-1")])
        done = time.monotonic()
        got = reader.wait_for(lambda objs: len(spans_for(objs, "hd-live-1")) >= n, timeout=10)
        lag = time.monotonic() - done
        t.ok(b.returncode == 0 and got, f"live: all {n} requests arrive while the session runs",
             detail=f"{len(spans_for(reader.objs, 'hd-live-1'))} spans; {b.stderr}")
        t.ok(got and lag < 5, "within a few seconds of the I/O ending", detail=f"lag {lag:.2f} s")
        t.diag(f"live delay after the last request: {lag:.2f} s (bench took {done - t0:.2f} s)")

        # A second process while the reader stays attached.
        b2 = run(["qemu-img", "bench", "-c", "50", "-w", "-s", "8192",
                  blkin_json({"driver": "null-co", "size": 16 * MiB}, id="hd-live-2")])
        got2 = reader.wait_for(lambda objs: len(spans_for(objs, "hd-live-2")) >= 50, timeout=10)
        t.ok(b2.returncode == 0 and got2, "a later QEMU process's requests arrive too")

        # Idle session: the source's time keeps advancing past the last
        # event (lttng-live inactivity beacons), so a joiner can decide.
        last_end = max(o["end_ns"] for o in of(reader.objs, "span"))
        advanced = reader.wait_for(
            lambda objs: any(o["ns"] > last_end + 500e6 for o in of(objs, "time")), timeout=10)
        t.ok(advanced, "idle live session: the source's time advances past the last event",
             detail=f"last end {last_end}, times {[o['ns'] for o in of(reader.objs, 'time')][-5:]}")

        subprocess.run(["lttng", "destroy", name], capture_output=True, timeout=60)
        created = False
        t1 = time.monotonic()
        ended = reader.wait_for(lambda objs: bool(of(objs, "end") or of(objs, "error")), timeout=20)
        try:
            rc = reader.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            rc = None
        t.ok(ended and rc == 0 and of(reader.objs, "end"),
             "the live source ends cleanly once the session is destroyed",
             detail=f"rc {rc}, last {reader.objs[-1:]}, stderr {reader.proc.stderr.read() if rc is not None else ''}")
        t.diag(f"ended {time.monotonic() - t1:.2f} s after destroy")

        # What relayd wrote is the same trace: offline gives the same spans.
        rc2, off, _ = dump(relayd.out)
        live_spans = sorted(as_tuple(o) for o in of(reader.objs, "span"))
        t.eq(rc2, 0, "relayd's copy of the session reads offline")
        t.eq(sorted(as_tuple(o) for o in of(off, "span")), live_spans,
             "live and offline deliver the same spans")
        ids = {o["id"] for o in of(reader.objs, "disk")}
        t.ok({"hd-live-1", "hd-live-2"} <= ids, "live delivers the disk map", detail=ids)
    finally:
        if reader:
            reader.stop()
        if created:
            subprocess.run(["lttng", "destroy", name], capture_output=True, timeout=60)
        relayd.stop()
        shutil.rmtree(relayd.out, ignore_errors=True)


def test_live_relayd_lost(t):
    # The relay daemon goes away under an attached reader: an error the
    # daemon can act on (reconnect), promptly, not a hang.
    lttng.ensure_sessiond()
    relayd = Relayd()
    name = "hd-lost-" + uuid.uuid4().hex[:8]
    reader = None
    try:
        subprocess.run(["lttng", "create", name, "--live=200000",
                        f"--set-url=net://127.0.0.1:{relayd.ctrl}:{relayd.data}"],
                       check=True, capture_output=True, timeout=60)
        subprocess.run([os.path.join(SRC, "scripts", "blkin-lttng-channel"), name], check=True,
                       capture_output=True, timeout=60)
        subprocess.run(["lttng", "enable-event", "-s", name, "-u", "-c", "blkin", "blkin_qemu:*"],
                       check=True, capture_output=True, timeout=60)
        subprocess.run(["lttng", "start", name], check=True, capture_output=True, timeout=60)
        reader = Reader(f"net://127.0.0.1:{relayd.live}/host/{socket.gethostname()}/{name}")
        time.sleep(1)
        relayd.stop()
        try:
            rc = reader.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            rc = None
        err = reader.proc.stderr.read() if rc is not None else ""
        t.ok(rc == 1 and "reading the trace failed" in err, "live: losing the relay daemon is an error, not a hang",
             detail=f"rc {rc}: {err[-1000:]}")
    finally:
        if reader:
            reader.stop()
        subprocess.run(["lttng", "destroy", name], capture_output=True, timeout=60)
        relayd.stop()
        shutil.rmtree(relayd.out, ignore_errors=True)


def test_live_errors(t):
    # Nothing listens on this port: a clear error at the first poll.
    port = free_port()
    p = subprocess.run([DUMP, "--timeout", "30", "--live", f"net://127.0.0.1:{port}/host/x/none"],
                       capture_output=True, text=True, timeout=60)
    t.ok(p.returncode == 1 and "error" in p.stdout, "live: no relay daemon gives an error, not a hang",
         detail=p.stdout + p.stderr)
    p = subprocess.run([DUMP, "--live", "bogus://url"], capture_output=True, text=True, timeout=60)
    t.ok(p.returncode == 1 and p.stderr.strip(), "live: a malformed URL is refused with a message",
         detail=p.stdout + p.stderr)


def test_schema(t):
    # Events named blkin_qemu:* that do not fit the schema are counted and
    # skipped; other providers' events are ignored; the rest is decoded.
    with tempfile.TemporaryDirectory() as d:
        good_spans, good_disks, good_hung, rejected, ignored = ctfgen.write_trace(d)
        rc, objs, err = dump(d)
    t.eq(rc, 0, "a trace mixing good and off-schema events reads to its end")
    t.eq([as_tuple(o) for o in of(objs, "span")], [as_tuple(e) for e in good_spans],
         "only schema-conforming requests are delivered, fields exact (negative ret, vpid from the "
         "payload, end = event time, with or without a vpid context)")
    t.eq([(o["vpid"], o["disk"], o["span_id"], o["start_ns"], o["age_ns"], o["end_ns"]) for o in of(objs, "hung")],
         [(e["vpid"], e["disk"], e["span_id"], e["start_ns"], e["age_ns"], e["end_ns"]) for e in good_hung],
         "a hung event is decoded with the vpid of its payload")
    t.eq([(o["vpid"], o["disk"], o["state"], o["id"], o["node"], o["child"], o["sample"]) for o in of(objs, "disk")],
         [(e["vpid"], e["disk"], e["state"], e["id"], e["node"], e["child"], e["sample"]) for e in good_disks],
         "only the complete disk map event is delivered")
    end = of(objs, "end")[-1] if of(objs, "end") else {}
    t.eq((end.get("rejected"), end.get("ignored")), (rejected, ignored),
         "wrong types, a short ids array, unsigned req, the old named-field request, a missing field, "
         "an unknown blkin_qemu event: "
         "rejected and counted; another provider's events: ignored")


def test_broken_dirs(t):
    with tempfile.TemporaryDirectory() as d:
        rc, objs, err = dump(os.path.join(d, "missing"))
        t.ok(rc == 1 and "does not exist" in err, "a missing directory: clear error", detail=err)
        rc, objs, err = dump(d)
        t.ok(rc == 1 and "no CTF trace" in err, "a directory without a trace: clear error", detail=err)

        garbage = os.path.join(d, "garbage")
        os.makedirs(garbage)
        with open(os.path.join(garbage, "metadata"), "wb") as f:
            f.write(os.urandom(4096))
        with open(os.path.join(garbage, "chan_0"), "wb") as f:
            f.write(os.urandom(65536))
        rc, objs, err = dump(garbage)
        msg = objs[-1].get("message", "") if objs else ""
        t.ok(rc == 1 and "garbage" in msg and "not a readable CTF trace" in msg,
             "garbage metadata: an error naming the trace, not a crash", detail=f"rc {rc}: {err[-1500:]}")
        t.diag(f"garbage metadata: {msg[:300]}")

        # A real trace whose stream data was overwritten: decoding fails
        # with an error (or stops), never a crash.
        real = os.path.join(d, "real")
        with Session() as s:
            run(["qemu-img", "bench", "-c", "2000", "-s", "4096",
                 blkin_json({"driver": "null-co", "size": 16 * MiB}, id="hd-corrupt")])
        shutil.copytree(s.dir, real)
        s.cleanup()
        streams = [os.path.join(r, f) for r, _, fs in os.walk(real) for f in fs
                   if f.startswith("blkin_") and "index" not in r]
        for path in streams:
            size = os.path.getsize(path)
            with open(path, "r+b") as f:
                f.seek(size // 3)
                f.write(os.urandom(min(8192, max(0, size - size // 3))))
        rc, objs, err = dump(real)
        t.ok(rc in (0, 1) and (rc == 0 or err.strip()), "corrupted stream data: error or clean end, no crash",
             detail=f"rc {rc}: {err[-1500:]}")
        t.diag(f"corrupted trace: rc {rc}, {err.strip().splitlines()[-1][:300] if err.strip() else ''}")
        for path in streams:
            with open(path, "r+b") as f:
                f.write(os.urandom(4096))
        rc, objs, err = dump(real)
        t.ok(rc == 1 and bool(objs) and objs[-1]["ev"] == "error" and err.strip(),
             "corrupted packet headers: an error with a message", detail=f"rc {rc}: {err[-1500:]}")


def test_batches(t):
    # blkin_qemu:batch (docs/tracepoints.md): every request of every batch,
    # exactly; a virtio-blk request's device requests; a thread's missing
    # batch numbers counted as lost; a batch whose count claims more than its
    # data holds rejected after what it does hold.
    with tempfile.TemporaryDirectory() as d:
        want, batches, lost, rejected = ctfgen.write_batch_trace(d)
        rc, objs, err = dump(d)
    t.eq(rc, 0, "a trace of batches reads to its end")
    keys = ("trace_id", "span_id", "parent_span_id", "op", "flags", "offset", "bytes", "start_ns",
            "end_ns", "ret", "inflight", "why", "vpid", "disk")
    got = [tuple(o[k] for k in keys) + (o.get("dev_end_ns"), o.get("dev")) for o in of(objs, "span")]
    t.eq(got, [tuple(w[k] for k in keys) + (w["dev_end_ns"], w["dev"]) for w in want],
         "every request of every batch, fields exact, a virtio-blk request with its device requests")
    end = of(objs, "end")[-1] if of(objs, "end") else {}
    t.eq((end.get("batches"), end.get("batches_lost"), end.get("rejected")), (batches, lost, rejected),
         "batches counted, the two a thread's numbering skips counted as lost, the malformed one rejected")


def main():
    t = Tap()
    for fn in (test_offline_exact, test_stacked_and_hung, test_discarded, test_live, test_live_relayd_lost, test_live_errors,
               test_schema, test_batches, test_broken_dirs):
        t.run(fn)
    t.done()


if __name__ == "__main__":
    main()
