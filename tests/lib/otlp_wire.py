# SPDX-License-Identifier: GPL-2.0-or-later
"""OTLP/HTTP protobuf bodies decoded the way a receiver does, from the
protobuf wire format and the OpenTelemetry protocol's field numbers
(opentelemetry-proto v1), independently of hostd's otlp-trace.proto: a
wrong number or type there fails here.

    req = decode_request(body)   # {"resource_spans": [...]} of plain dicts
"""
import struct


def _varint(b, i):
    v = shift = 0
    while True:
        c = b[i]
        i += 1
        v |= (c & 0x7F) << shift
        shift += 7
        if not c & 0x80:
            return v, i


def fields(b):
    """(number, wire type, value) of each field of a message."""
    i, out = 0, []
    while i < len(b):
        key, i = _varint(b, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = _varint(b, i)
        elif wt == 1:
            v = struct.unpack_from("<Q", b, i)[0]
            i += 8
        elif wt == 2:
            n, i = _varint(b, i)
            v = bytes(b[i:i + n])
            i += n
        elif wt == 5:
            v = struct.unpack_from("<I", b, i)[0]
            i += 4
        else:
            raise ValueError(f"wire type {wt} of field {num}")
        out.append((num, wt, v))
    if i != len(b):
        raise ValueError("truncated message")
    return out


def _expect(wt, want, what):
    if wt != want:
        raise ValueError(f"{what}: wire type {wt}, the specification says {want}")


def any_value(b):
    for num, wt, v in fields(b):
        if num == 1:
            _expect(wt, 2, "AnyValue.string_value")
            return v.decode()
        if num == 2:
            _expect(wt, 0, "AnyValue.bool_value")
            return bool(v)
        if num == 3:
            _expect(wt, 0, "AnyValue.int_value")
            return v - (1 << 64) if v >= 1 << 63 else v
        if num == 4:
            _expect(wt, 1, "AnyValue.double_value")
            return struct.unpack("<d", struct.pack("<Q", v))[0]
    return None


def key_values(items):
    out = {}
    for b in items:
        k = v = None
        for num, wt, val in fields(b):
            if num == 1:
                _expect(wt, 2, "KeyValue.key")
                k = val.decode()
            elif num == 2:
                _expect(wt, 2, "KeyValue.value")
                v = any_value(val)
        out[k] = v
    return out


# opentelemetry.proto.trace.v1.Span: number -> (name, wire type)
SPAN = {1: ("trace_id", 2), 2: ("span_id", 2), 3: ("trace_state", 2), 4: ("parent_span_id", 2),
        5: ("name", 2), 6: ("kind", 0), 7: ("start_time_unix_nano", 1), 8: ("end_time_unix_nano", 1),
        9: ("attributes", 2), 15: ("status", 2), 16: ("flags", 5)}


def span(b):
    s = {"attributes": []}
    for num, wt, v in fields(b):
        if num not in SPAN:
            raise ValueError(f"Span field {num} is not one hostd should send")
        name, want = SPAN[num]
        _expect(wt, want, "Span." + name)
        if name == "attributes":
            s["attributes"].append(v)
        elif name == "status":
            s["status"] = {n: val for n, w, val in fields(v) if n == 3}.get(3, 0)
        elif name == "name":
            s[name] = v.decode()
        else:
            s[name] = v
    s["attributes"] = key_values(s["attributes"])
    return s


def decode_request(b):
    """ExportTraceServiceRequest: resource_spans (1) -> resource (1:
    attributes 1), scope_spans (2) -> scope (1: name 1), spans (2)."""
    out = []
    for num, wt, rs in fields(b):
        _expect(wt, 2, "ExportTraceServiceRequest.resource_spans")
        if num != 1:
            raise ValueError(f"ExportTraceServiceRequest field {num}")
        r = {"resource": {}, "scope_spans": []}
        for n2, w2, v2 in fields(rs):
            if n2 == 1:
                r["resource"] = key_values([v for n3, w3, v in fields(v2) if n3 == 1])
            elif n2 == 2:
                ss = {"scope": None, "spans": []}
                for n3, w3, v3 in fields(v2):
                    if n3 == 1:
                        ss["scope"] = {n: val.decode() for n, w, val in fields(v3) if n in (1, 2)}.get(1)
                    elif n3 == 2:
                        ss["spans"].append(span(v3))
                r["scope_spans"].append(ss)
        out.append(r)
    return {"resource_spans": out}
