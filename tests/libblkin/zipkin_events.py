# SPDX-License-Identifier: GPL-2.0-or-later
"""zipkin:* events of a CTF trace, for libblkin's tests.

read(path): every event as a dict: name, ts (LTTng's clock in ns: the
CLOCK_MONOTONIC an annotation was made at), vpid, and each payload field;
ids (trace_id, span_id, parent_span_id) as recorded (signed, as blkin
records them) and again as unsigned 64-bit under u_trace_id etc., which is
what blkin_qemu events and libblkin's own API use.

schema(path): {event name: [(field, type)]} from the trace's metadata, type
being "string" or e.g. "s64" / "u32" (signedness and size, base 10 only).
"""
import glob
import os
import re
import subprocess

_LINE = re.compile(r"^\[(?P<ts>\d+)\] \([^)]*\) \S+ (?P<name>[\w:]+): (?P<body>.*)$")
_FIELD = re.compile(r'(\w+) = ("(?:[^"\\]|\\.)*"|[^,}\s]+)')
MASK = (1 << 64) - 1


def _value(v):
    if v.startswith('"'):
        return v[1:-1]
    try:
        return int(v, 0)
    except ValueError:
        return v


def read(path):
    out = subprocess.run(["babeltrace2", "--clock-cycles", path],
                         capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise RuntimeError("babeltrace2 failed: " + out.stderr[-2000:])
    events = []
    for line in out.stdout.splitlines():
        m = _LINE.match(line)
        if not m or not m.group("name").startswith("zipkin:"):
            continue
        ev = {"name": m.group("name"), "ts": int(m.group("ts"))}
        for k, v in _FIELD.findall(m.group("body")):
            ev[k] = _value(v)
        for k in ("trace_id", "span_id", "parent_span_id"):
            if isinstance(ev.get(k), int):
                ev["u_" + k] = ev[k] & MASK
        events.append(ev)
    return events


_EVENT = re.compile(r'name = "(?P<name>zipkin:\w+)";.*?fields := struct \{(?P<fields>.*?)\};',
                    re.S)
_DECL = re.compile(r'^\s*(?P<type>string|integer \{[^}]*\})\s+_?(?P<name>\w+);', re.M)


def schema(path):
    result = {}
    for d in glob.glob(os.path.join(path, "ust", "uid", "*", "*-bit")):
        out = subprocess.run(["babeltrace2", "-o", "ctf-metadata", d],
                             capture_output=True, text=True, timeout=60, check=True)
        for m in _EVENT.finditer(out.stdout):
            fields = []
            for f in _DECL.finditer(m.group("fields")):
                t = f.group("type")
                if t != "string":
                    size = re.search(r"size = (\d+)", t).group(1)
                    signed = re.search(r"signed = (\w+)", t).group(1) in ("1", "true")
                    base = re.search(r"base = (\d+)", t)
                    t = ("s" if signed else "u") + size
                    if base and base.group(1) != "10":
                        t += "/base" + base.group(1)
                fields.append((f.group("name"), t))
            result[m.group("name")] = fields
    return result
