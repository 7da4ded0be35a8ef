# SPDX-License-Identifier: GPL-2.0-or-later
"""LTTng for tests: a real lttng-sessiond, real sessions, traces read back.

Every test that records uses its own uniquely named session on the one root
lttng-sessiond of the machine (started here if it is not running), so tests
may run in parallel; events are told apart by the vpid every blkin_qemu event
carries in its payload.

The channel settings are the project's shipped ones (scripts/blkin-lttng-channel),
so tests exercise what operators run.
"""
import os
import re
import shutil
import subprocess
import tempfile
import time
import uuid

SRC = os.environ.get("BLKIN_SOURCE_ROOT", os.path.join(os.path.dirname(__file__), "..", ".."))


def _lttng(*args, check=True):
    return subprocess.run(["lttng", *args], capture_output=True, text=True, check=check, timeout=60)


def sessiond_running():
    return _lttng("list", check=False).returncode == 0


# Every session a test makes is named after the test process: blkin-PID-N
# (tests/lib/stack.py) or blkin-test-PID-HEX (Session).
_OWNED = re.compile(r"^\s*\d+\) (blkin-(?:test-)?(\d+)-[0-9a-f]+) ", re.M)


def reap_orphan_sessions(node_cmd=()):
    """Destroys the sessions of test processes that are gone (killed before
    they could destroy them: a timeout, SIGKILL). Left in place, an active
    one records every later test's events too (per-UID buffers) and makes
    benchmarks wait. Only sessions named after a process that no longer
    exists are touched; returns their names."""
    out = subprocess.run([*node_cmd, "lttng", "list"], capture_output=True, text=True,
                         timeout=60).stdout
    gone = [name for name, pid in _OWNED.findall(out) if not os.path.exists(f"/proc/{pid}")]
    for name in gone:
        subprocess.run([*node_cmd, "lttng", "destroy", name], capture_output=True, timeout=60)
    return gone


def ensure_sessiond():
    """Starts the root session daemon if none answers; returns when it does.
    Sessions that dead test processes left are destroyed."""
    if sessiond_running():
        reap_orphan_sessions()
        return
    subprocess.run(["lttng-sessiond", "--daemonize"], check=False, timeout=60,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        if sessiond_running():
            return
        time.sleep(0.1)
    raise RuntimeError("lttng-sessiond did not start")


class Session:
    """A recording session for the blkin_qemu events (context manager).

    with Session() as s:
        ... run QEMU ...
    events = s.events(vpid=pid)   # after the with block (session destroyed)
    """

    def __init__(self, events=("blkin_qemu:*",), name=None, contexts=()):
        self.name = name or f"blkin-test-{os.getpid()}-{uuid.uuid4().hex[:12]}"
        self.dir = tempfile.mkdtemp(prefix="blkin-trace-")
        self.event_names = events
        # e.g. ("vpid",): blkin's zipkin events do not say which process
        # recorded them; the shipped channel adds no context.
        self.contexts = contexts
        self._events = None

    def __enter__(self):
        ensure_sessiond()
        _lttng("create", self.name, "--output=" + self.dir)
        subprocess.run([os.path.join(SRC, "scripts", "blkin-lttng-channel"), self.name],
                       check=True, timeout=60, capture_output=True)
        for ctx in self.contexts:
            _lttng("add-context", "--session=" + self.name, "-u", "-c", "blkin", "-t", ctx)
        for ev in self.event_names:
            _lttng("enable-event", "--session=" + self.name, "-u", "-c", "blkin", ev)
        _lttng("start", self.name)
        return self

    def stop(self):
        if self.name:
            _lttng("stop", self.name, check=False)
            _lttng("destroy", self.name, check=False)
            self.name = None

    def __exit__(self, *exc):
        self.stop()

    def events(self, vpid=None, name=None):
        if self._events is None:
            self._events = read_trace(self.dir)
        return [e for e in self._events
                if (vpid is None or e.get("vpid") == vpid) and (name is None or e["name"] == name)]

    def for_disk(self, disk_id, name=None):
        """Events of one disk, found the way a reader must: through the disk
        map events that name it (vpid + process-local disk index, both in
        every event's payload). By default its requests: `request` and, on
        a virtio-blk device, `device_request` (also from batches)."""
        keys = {(e.get("vpid"), e["disk"]) for e in self.events(name="blkin_qemu:disk")
                if e["id"] == disk_id}
        names = (name,) if name else ("blkin_qemu:request", "blkin_qemu:device_request")
        return [e for e in self.events() if e["name"] in names and
                (e.get("vpid"), e.get("disk")) in keys]

    def discarded(self):
        """Counts of events the tracer discarded, as babeltrace2 reports them."""
        out = subprocess.run(["babeltrace2", self.dir], capture_output=True, text=True, timeout=600)
        return sum(int(m) for m in re.findall(r"Tracer discarded (\d+) event", out.stderr))

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


_LINE = re.compile(r"^\[(?P<ts>\d+)\] \([^)]*\) \S+ (?P<name>[\w:]+): (?P<body>.*)$")
_ARRAY = re.compile(r"(\w+) = \[ ((?:\[\d+\] = [^,\]\s]+(?:, )?)*) \]")
_ELEM = re.compile(r"\[\d+\] = ([^,\]\s]+)")
_FIELD = re.compile(r'(\w+) = ("(?:[^"\\]|\\.)*"|[^,}\s\[]+)')

# blkin_qemu:request's arrays (docs/tracepoints.md), element by element.
REQUEST_ARRAYS = {
    "ids": ("trace_id", "span_id", "parent_span_id"),
    "io": ("offset", "bytes", "start_ns"),
    "req": ("vpid", "disk", "op", "flags", "ret", "inflight", "why"),
}
# blkin_rbd:request's (docs/tracepoints.md, "Provider blkin_rbd").
RBD_REQUEST_ARRAYS = {
    "io": ("offset", "length", "start_ns"),
    "req": ("vpid", "image", "op", "ret"),
}


def _value(v):
    if v.startswith('"'):
        return v[1:-1]
    try:
        return int(v, 0)
    except ValueError:
        return v


# blkin_qemu:batch's data, per request (common/blkin-schema.h, enum
# blkin_batch_word): 13 words, then 3 per device request.
BATCH_HEAD = 13


def _s32(v):
    v &= 0xffffffff
    return v - (1 << 32) if v & 0x80000000 else v


def expand_batch(ev):
    """The requests of a blkin_qemu:batch event, each as the event it stands
    for: `request` (end_ns its filter exit, time_ns = end_ns), or, for a
    virtio-blk request, `device_request` (exit_ns, dev, time_ns its device
    completion), with the arrays and named fields of those events."""
    w, at, out = ev.get("data", []), 0, []
    for _ in range(ev.get("count", 0)):
        h = w[at:at + BATCH_HEAD]
        ndev = h[12] & 0xffffffff
        req = [_s32(h[6]), h[6] >> 32, h[7] & 0xffffffff, h[7] >> 32, _s32(h[8]), h[8] >> 32,
               h[9] & 0xffffffff]
        r = {"ids": h[0:3], "io": h[3:6], "req": req, "batch_seq": ev.get("seq"),
             "batch_tid": ev.get("tid")}
        for arr, names in REQUEST_ARRAYS.items():
            r.update(zip(names, r[arr]))
        if h[11]:
            r.update(name="blkin_qemu:device_request", exit_ns=h[10], end_ns=h[10],
                     time_ns=h[11], dev=w[at + BATCH_HEAD:at + BATCH_HEAD + 3 * ndev])
        else:
            r.update(name="blkin_qemu:request", time_ns=h[10], end_ns=h[10])
        out.append(r)
        at += BATCH_HEAD + 3 * ndev
    return out


def read_trace(path):
    """All events of a CTF trace as dicts: name, time_ns (the event's
    CLOCK_MONOTONIC timestamp), every context and payload field. A request
    event's arrays are also given as named fields, with end_ns = time_ns.
    A batch event is given as the request events it stands for (besides
    itself), in its place."""
    out = subprocess.run(["babeltrace2", "--clock-cycles", path], capture_output=True, text=True,
                         timeout=600)
    if out.returncode != 0:
        raise RuntimeError("babeltrace2 failed: " + out.stderr[-2000:])
    events = []
    for line in out.stdout.splitlines():
        m = _LINE.match(line)
        if not m:
            continue
        ev = {"name": m.group("name"), "time_ns": int(m.group("ts"))}
        body = m.group("body")
        for k, elems in _ARRAY.findall(body):
            ev[k] = [_value(v) for v in _ELEM.findall(elems)]
        for k, v in _FIELD.findall(_ARRAY.sub("", body)):
            ev[k] = _value(v)
        if ev["name"] in ("blkin_qemu:request", "blkin_qemu:device_request"):
            for arr, names in REQUEST_ARRAYS.items():
                ev.update(zip(names, ev.get(arr, ())))
            ev["end_ns"] = ev.get("exit_ns", ev["time_ns"])
        elif ev["name"] == "blkin_rbd:request":
            for arr, names in RBD_REQUEST_ARRAYS.items():
                ev.update(zip(names, ev.get(arr, ())))
            ev["end_ns"] = ev["time_ns"]
        events.append(ev)
        if ev["name"] == "blkin_qemu:batch":
            events.extend(expand_batch(ev))
    return events
