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


# blkin_qemu:batch (docs/tracepoints.md): header fields, then a u64 sequence
# of enum blkin_batch_word per request.
BATCH_META = ('event { name = "blkin_qemu:batch"; id = 0; stream_id = 0; fields := struct { '
              "int32_t vpid; int32_t tid; uint64_t seq; uint32_t count; "
              "uint32_t _data_length; uint64_t data[_data_length]; }; };")


def batch_words(v, end_ns, dev=(), dev_end_ns=0):
    """One request's words: request_values(i)-style dict @v, its filter exit,
    and for a virtio-blk request its device requests (start, offset, bytes)
    and completion."""
    m = 0xFFFFFFFF
    w = [v["trace_id"], v["span_id"], v["parent_span_id"], v["offset"], v["bytes"], v["start_ns"],
         (v["vpid"] & m) | v["disk"] << 32, v["op"] | v["flags"] << 32,
         (v["ret"] & m) | v["inflight"] << 32, v["why"], end_ns, dev_end_ns, len(dev)]
    for d in dev:
        w += list(d)
    return w


def write_batch_trace(path):
    """A trace of batch events: two threads, one of them losing batches 3 and
    4 (LTTng discarded them), a virtio-blk request with two merged device
    requests, and a malformed batch whose count claims more than its data
    holds. Returns (the spans a correct reader delivers as trace-dump prints
    them, batches, batches lost, rejected)."""
    os.makedirs(path, exist_ok=True)
    meta = _metadata().split("\n")
    meta = [line for line in meta if not line.startswith("event {")] + [BATCH_META]
    with open(os.path.join(path, "metadata"), "w") as f:
        f.write("\n".join(meta) + "\n")
    spans, events, ts = [], [], 50000
    plan = [(101, 1, [0, 1]), (101, 2, [2]), (101, 5, [3, 4]), (202, 1, [5])]
    for tid, seq, idx in plan:
        words = []
        for i in idx:
            v = request_values(i)
            v["start_ns"] = ts + i
            end = ts + 100 + i
            dev = [(ts - 50, v["offset"], 256), (ts - 40, v["offset"] + 256, 256)] if i == 2 else ()
            words += batch_words(v, end, dev, ts + 200 if dev else 0)
            spans.append(dict(v, end_ns=end, op="write", dev_end_ns=ts + 200 if dev else None,
                              dev=[list(d) for d in dev] if dev else None))
        events.append((ts + 300, tid, seq, len(idx), words))
        ts += 1000
    # Malformed: claims 2 requests, holds 1.
    v = request_values(9)
    v["start_ns"] = ts
    events.append((ts + 300, 303, 1, 2, batch_words(v, ts + 100)))
    spans.append(dict(v, end_ns=ts + 100, op="write", dev_end_ns=None, dev=None))
    body = b""
    for t, tid, seq, count, words in events:
        body += struct.pack("<IQ", 0, t) + struct.pack("<i", 4242)
        body += struct.pack("<iiQII", 4242, tid, seq, count, len(words))
        body += b"".join(struct.pack("<Q", x & 0xFFFFFFFFFFFFFFFF) for x in words)
    size = 8 + 32 + len(body)
    with open(os.path.join(path, "chan_0"), "wb") as f:
        f.write(struct.pack("<IIQQQQ", 0xC1FC1FC1, 0, 50000, ts + 400, size * 8, size * 8) + body)
    return spans, len(events), 2, 1
