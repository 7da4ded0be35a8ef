#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Writes the seed corpus (tests/fuzz/corpus/NAME/*): valid and nearly valid
inputs that get each fuzzer past the first checks at once. Run it again
after a protocol change; the files are in the tree so CI needs no step."""
import os
import struct
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "faults"))
import fakeagent as fa  # noqa: E402

TOP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
T0 = 1_000_000_000


def put(name, fname, data):
    d = os.path.join(HERE, name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, fname), "wb") as f:
        f.write(data)


def stream(n_req=4, dev=(252, 0), bad=None):
    recs = []
    for i in range(n_req):
        q, s, c = T0 + i * 1000, T0 + i * 1000 + 100, T0 + i * 1000 + 5000
        recs.append(fa.record(dev[0], dev[1], i * 8, 4096, i % 6, s, c, q))
    if bad == "order":
        recs.append(fa.record(dev[0], dev[1], 0, 4096, 0, T0 + 10, T0, 0))
    if bad == "end":
        recs.append(fa.record(dev[0], dev[1], (1 << 21) - 1, 1 << 20, 1, T0, T0 + 9, 0))
    return (fa.hello(42) + fa.devmap([("vda", 252, 0, "ser-a", 1 << 30),
                                      ("vdb", 252, 16, "ser-b", 1 << 20)])
            + fa.drops(0) + fa.requests(0, recs))


def reply(pid):
    return fa.frame(fa.REPLY, struct.pack("<QQQQIIqQ", pid, T0, T0 + 500, T0 + 600, 0, 0, 0, 0))


def pieces(data, n):
    """@data cut into pieces of @n bytes, each after its length byte (odd
    lengths: read into the reader's own buffer; even: copied in)."""
    out = b""
    for i in range(0, len(data), n):
        p = data[i:i + n]
        out += bytes([len(p)]) + p
    return out


def main():
    s = stream()
    for name in ("proto", "channel"):
        put(name, "session", b"\x00" + s + reply(1) + reply(2))
        put(name, "session-split-7", b"\x07" + s)
        put(name, "bad-order", b"\x00" + stream(bad="order"))
        put(name, "past-end", b"\x00" + stream(bad="end"))
        put(name, "garbage-then-frames", b"\x00" + b"BLKN\x02junk" * 3 + s)
        put(name, "unknown-type", b"\x00" + fa.frame(99, b"hello") + s)
        put(name, "gap", b"\x00" + s + fa.requests(100, [fa.record(252, 0, 0, 512, 0, T0, T0 + 9)]))
        put(name, "restart", b"\x83" + s + fa.hello(43) + s)
        put(name, "devmap-max", b"\x00" + fa.devmap(
            [(f"vd{i}", 252, i, f"s{i}", 1 << 30) for i in range(256)]))
        put(name, "long-records", b"\x00" + fa.hello(1) + fa.frame(
            fa.REQUESTS, struct.pack("<IIQ", 2, 64, 0)
            + (fa.record(252, 0, 0, 512, 0, T0, T0 + 1) + b"\0" * 8) * 2))
    # hostd's end: the stream as the guest sends it (hostd sends probe 1 when
    # the stream's HELLO arrives).
    put("agent-conn", "session", s + reply(1))
    put("agent-conn", "session-noclock", s)
    put("agent-conn", "restart", s + reply(1) + fa.hello(43) + s)
    put("agent-conn", "bad-order", stream(bad="order") + reply(1))
    put("agent-conn", "too-many-devices", fa.devmap(
        [(f"vd{i}", 252, i, f"s{i}", 1 << 30) for i in range(100)]))
    put("channel", "replies", b"\x00" + fa.hello(7) + b"".join(reply(i) for i in range(1, 20)))

    with open(os.path.join(TOP, "hostd", "hostd.conf.example"), "rb") as f:
        put("config", "example", f.read())
    put("config", "minimal", b"[hostd]\nsocket = /run/blkin/hostd.sock\n")
    put("config", "vms", b"[hostd]\nhold-ms = 100\nretention-days = 1\n[vm a]\n"
        b"agent-socket = /run/a.sock\ndisks = vda=S1=a/vda;vdb=S2=a/vdb\n[vm b]\ndisks = vda=S3=b\n")
    put("config", "bad-int", b"[hostd]\nhold-ms = -5\n")
    put("config", "no-disks", b"[vm x]\nagent-socket = /x\n")
    put("config", "limits", b"[hostd]\nmax-clients = 40\nmax-control-clients = 8\n"
        b"max-metrics-clients = 0\ncontrol-idle-s = 5\ncontrol-queue-kib = 64\n")

    ctl = [
        b'{"cmd":"status"}',
        b'{"cmd":"report"}',
        b'{"cmd":"report","vm":"a","disk":"vda","window":"1s"}',
        b'{"cmd":"report","vm":"a","window":"1h"}',
        b'{"cmd":"tail","vm":"b","window":"1m"}',
        b'{"cmd":"trace","id":"deadbeef"}',
        b'{"cmd":"history","vm":"a","minutes":5}',
        b'{"cmd":"register","vm":"c","agent_socket":"/x","disks":["vda=ser-z=c/vda"]}',
        b'{"cmd":"unregister","vm":"a"}\n{"cmd":"report","vm":"a"}',
        b'{"cmd":"register","vm":"a","disks":["vda=ser-c=b/vda"]}\n{"cmd":"report"}',
        b'{"cmd":"nope"}\n[1,2]\n{"cmd":7}',
        b'{"cmd":"view","vm":"a","window":"1h"}\n{"cmd":"view","window":"1m"}',
        b'{"cmd":"view","vm":"b","disk":"vda","window":"1s"}\n{"cmd":"view","disk":"vda"}',
    ]
    for i, c in enumerate(ctl):
        put("control", f"req-{i:02d}", c + b"\n")

    # metrics-http: the first byte picks the read size (hostd reads what
    # the socket has; 0x06: 64 bytes at a time, 0x00: one by one).
    http = {
        "prometheus": b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:9477\r\nUser-Agent: Prometheus/2.42.0\r\n"
                      b"Accept: application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5\r\n"
                      b"Accept-Encoding: gzip\r\nX-Prometheus-Scrape-Timeout-Seconds: 10\r\n\r\n",
        "curl": b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n",
        "query": b"GET /metrics?name[]=blkin_requests_total HTTP/1.0\n\n",
        "other-path": b"GET / HTTP/1.0\r\n\r\n",
        "post": b"POST /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
        "http09": b"GET /metrics\r\n\r\n",
        "bad-version": b"GET /metrics HTTP/2.0\r\n\r\n",
        "lowercase": b"get /metrics HTTP/1.1\r\n\r\n",
        "nul": b"GET /metrics\x00 HTTP/1.1\r\n\r\n",
        "unfinished": b"GET /metrics HTTP/1.1\r\nHost: x\r\n",
        "mixed-ends": b"GET /metrics HTTP/1.1\nHost: x\r\n\n",
        "too-long": b"GET /metrics HTTP/1.1\r\nX-Pad: " + b"a" * 8200 + b"\r\n\r\n",
    }
    for i, (name, req) in enumerate(sorted(http.items())):
        put("metrics-http", name, bytes([0x06 if i % 2 else 0x00]) + req)
    # http-reader: the same requests cut into pieces (a length byte, then
    # that many bytes; an odd length byte: read into the reader's buffer).
    for name, req in sorted(http.items()):
        put("http-reader", name + "-7", pieces(req, 7))
        put("http-reader", name + "-bytewise", pieces(req, 1))
    put("http-reader", "curl-whole", pieces(http["curl"], 255))

    # line-reader: a limit byte (bit 7: the real 64 KiB, else 1..128),
    # then pieces as above.
    reqs = b"".join(c + b"\n" for c in ctl[:6])
    put("line-reader", "requests-64k-whole", b"\x80" + pieces(reqs, 255))
    put("line-reader", "requests-64k-bytewise", b"\x80" + pieces(reqs[:200], 1))
    put("line-reader", "requests-64k-13", b"\x80" + pieces(reqs, 13))
    put("line-reader", "limit-40-one-too-long", bytes([39]) + pieces(
        b'{"cmd":"status"}\n' + b"x" * 41 + b"\n", 6))
    put("line-reader", "limit-16-exact", bytes([15]) + pieces(b"a" * 16 + b"\n" + b"b" * 16, 5))
    put("line-reader", "limit-1-blank-lines", bytes([0]) + pieces(b"\n\n\na\n\nbb", 2))
    put("line-reader", "many-short-lines", bytes([127]) + pieces(b"{}\n" * 300, 254))

    # out-queue: a bound byte (64 + 64 * it), then operation pairs: (odd op:
    # push an answer of 1 + arg bytes, times 64 with bit 1; even op: flush
    # into a socket taking arg bytes a call (times 37 with bit 1) for
    # 1 + op >> 4 calls, or failing when op & 0x0e is 0x0e).
    put("out-queue", "answers-drained", bytes([15]) + bytes([0x01, 200, 0x22, 255, 0x01, 50, 0xf2, 255]))
    put("out-queue", "deaf-client", bytes([3]) + bytes([0x03, 10] * 20))
    put("out-queue", "one-large-answer", bytes([0]) + bytes([0x03, 255, 0x00, 0, 0x42, 3, 0x03, 1]))
    put("out-queue", "partial-writes", bytes([40]) + bytes([0x01, 255, 0x00, 7, 0x10, 7, 0x01, 9, 0x32, 1, 0xf0, 255]))
    put("out-queue", "peer-gone", bytes([8]) + bytes([0x01, 100, 0x0e, 0, 0x01, 1]))


if __name__ == "__main__":
    main()
