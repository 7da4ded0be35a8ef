# SPDX-License-Identifier: GPL-2.0-or-later
"""Hand-written CTF 1.8 traces with blkin_qemu events that do and do not match
the schema (docs/tracepoints.md), for the trace source's rejection paths:
a real LTTng session cannot record an event named blkin_qemu:* with other
fields than the provider's.

write_trace(dir) writes one trace (metadata + two stream files) and returns
what a correct reader must deliver and count.
"""
import os
import struct

U8, U32, U64, S32, U64X, STR = "uint8_t", "uint32_t", "uint64_t", "int32_t", "uint64_t", "string"
PACK = {U8: "<B", U32: "<I", U64: "<Q", S32: "<i"}

# An array field: (name, (element type, names of the elements' values)).
IDS = ("ids", (U64, ("trace_id", "span_id", "parent_span_id")))
IO = ("io", (U64, ("offset", "bytes", "start_ns")))
REQ = ("req", (S32, ("vpid", "disk", "op", "flags", "ret", "inflight", "why")))
REQUEST = [IDS, IO, REQ]
# The schema before the request event became three arrays: rejected now.
REQUEST_V1 = [("trace_id", U64), ("span_id", U64), ("parent_span_id", U64), ("disk", U32), ("op", U8),
              ("flags", U32), ("offset", U64), ("bytes", U64), ("start_ns", U64), ("end_ns", U64),
              ("ret", S32), ("inflight", U32), ("why", U8)]
HUNG = REQUEST_V1[:3] + [("vpid", S32)] + REQUEST_V1[3:9] + [("age_ns", U64)]
DISK = [("vpid", S32), ("disk", U32), ("state", U8), ("id", STR), ("node", STR), ("child", STR),
        ("sample", U32)]

# (id, name, stream, fields): the event classes of the trace.
CLASSES = [
    (0, "blkin_qemu:request", 0, REQUEST),
    (1, "blkin_qemu:disk", 0, DISK),
    # ids with two elements: no parent span
    (2, "blkin_qemu:request", 0, [("ids", (U64, ("trace_id", "span_id"))), IO, REQ]),
    # disk as a string
    (3, "blkin_qemu:hung", 0, [(n, STR if n == "disk" else t) for n, t in HUNG]),
    (4, "blkin_qemu:disk", 0, [f for f in DISK if f[0] != "child"]),  # missing field
    (5, "otherprov:timestamp", 0, [("trace_id", U64), ("what", STR)]),  # another provider
    (6, "blkin_qemu:future", 0, [("x", U32)]),  # an event this schema does not know
    # A stream class without the vpid context: vpid is in the payload, so fine.
    (7, "blkin_qemu:request", 1, REQUEST),
    (8, "blkin_qemu:request", 0, REQUEST_V1),  # the old schema
    (9, "blkin_qemu:request", 0, [IDS, IO, ("req", (U32, REQ[1][1]))]),  # unsigned req
    (10, "blkin_qemu:hung", 0, HUNG),
]


def _metadata():
    out = ["/* CTF 1.8 */",
           'clock { name = "monotonic"; freq = 1000000000; offset = 0; };',
           "typealias integer { size = 8; align = 8; signed = false; } := uint8_t;",
           "typealias integer { size = 32; align = 8; signed = false; } := uint32_t;",
           "typealias integer { size = 64; align = 8; signed = false; } := uint64_t;",
           "typealias integer { size = 32; align = 8; signed = true; } := int32_t;",
           "typealias integer { size = 64; align = 8; signed = false; map = clock.monotonic.value; } := clk_t;",
           "trace { major = 1; minor = 8; byte_order = le;",
           "  packet.header := struct { uint32_t magic; uint32_t stream_id; }; };"]
    for sid in (0, 1):
        ctx = " event.context := struct { int32_t _vpid; };" if sid == 0 else ""
        out.append(f"stream {{ id = {sid};"
                   " packet.context := struct { clk_t timestamp_begin; clk_t timestamp_end;"
                   " uint64_t content_size; uint64_t packet_size; };"
                   f" event.header := struct {{ uint32_t id; clk_t timestamp; }};{ctx} }};")
    for cid, name, sid, fields in CLASSES:
        body = " ".join(f"{t[0]} {n}[{len(t[1])}];" if isinstance(t, tuple) else f"{t} {n};"
                        for n, t in fields)
        out.append(f'event {{ name = "{name}"; id = {cid}; stream_id = {sid}; fields := struct {{ {body} }}; }};')
    return "\n".join(out) + "\n"


def _fields(cid):
    for c, _, _, fields in CLASSES:
        if c == cid:
            return fields
    raise KeyError(cid)


def _encode(fields, values):
    b = b""
    for n, t in fields:
        v = values.get(n, 0)
        if isinstance(t, tuple):
            b += b"".join(struct.pack(PACK[t[0]], values.get(e, 0) & 0xFFFFFFFF if t[0] == U32
                                      else values.get(e, 0)) for e in t[1])
        elif t == STR:
            b += str(v).encode() + b"\0"
        else:
            b += struct.pack(PACK[t], v)
    return b


def _stream(sid, events, t0, t1):
    body = b""
    for cid, ts, vpid, values in events:
        body += struct.pack("<IQ", cid, ts)
        if sid == 0:
            body += struct.pack("<i", vpid)
        body += _encode(_fields(cid), values)
    header_len = 8 + 32
    size = header_len + len(body)
    return struct.pack("<IIQQQQ", 0xC1FC1FC1, sid, t0, t1, size * 8, size * 8) + body


def request_values(i):
    return {"trace_id": 0x1000 + i, "span_id": 0x2000 + i, "parent_span_id": i, "vpid": 4242, "disk": 3,
            "op": 2, "flags": 0x10, "offset": 4096 * i, "bytes": 512, "start_ns": 1000 + i,
            "end_ns": 2000 + i, "ret": -5, "inflight": 7, "why": 1, "id": "vm/vdb", "node": "n",
            "child": "c", "sample": 9, "state": 1, "age_ns": 5, "what": "x", "x": 1}


def write_trace(path):
    """Writes the trace; returns (good spans, good disk maps, good hung reports, rejected,
    ignored)."""
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "metadata"), "w") as f:
        f.write(_metadata())
    ev0 = []
    ts = 10000
    for cid in (1, 0, 2, 3, 4, 5, 6, 8, 9, 10, 0):
        ev0.append((cid, ts, 4242, request_values(len(ev0))))
        ts += 10
    ev1 = [(7, ts + 5, 0, request_values(99))]
    with open(os.path.join(path, "chan_0"), "wb") as f:
        f.write(_stream(0, ev0, 10000, ts))
    with open(os.path.join(path, "chan_1"), "wb") as f:
        f.write(_stream(1, ev1, ts, ts + 10))
    # A request's end is its event's timestamp, not a field.
    good_spans = [dict(e[3], end_ns=e[1]) for e in ev0 + ev1 if e[0] in (0, 7)]
    good_disks = [e[3] for e in ev0 if e[0] == 1]
    good_hung = [dict(e[3], end_ns=e[1]) for e in ev0 if e[0] == 10]
    rejected = sum(1 for e in ev0 + ev1 if e[0] in (2, 3, 4, 6, 8, 9))
    ignored = sum(1 for e in ev0 if e[0] == 5)
    return good_spans, good_disks, good_hung, rejected, ignored
