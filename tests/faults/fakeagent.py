# SPDX-License-Identifier: GPL-2.0-or-later
"""A stand-in for a guest agent behind QEMU's chardev: a UNIX socket server
that blkin-hostd connects to as if it were the VM's agent port, and that
speaks wire protocol v1 (docs/protocol.md), well or badly.

    fa = FakeAgent(path, mode="good", serial="disk-a")
    fa.start()          # accepts hostd's connections in a thread
    ...
    fa.stop()
    fa.accepts          # host times of each connection hostd made
"""
import os
import random
import socket
import struct
import threading
import time

MAGIC = 0x4E4B4C42
HELLO, DEVMAP, REQUESTS, PROBE, REPLY, DROPS = 1, 2, 3, 4, 5, 6


def frame(ftype, payload):
    return struct.pack("<IBBHI", MAGIC, 1, ftype, 0, len(payload)) + payload


def hello(session, name=b"fake-agent"):
    return frame(HELLO, struct.pack("<IIIIQQHH", 1, 1, 1, 65536, session,
                                    time.monotonic_ns(), len(name), 0) + name)


def devmap(devices, generation=1):
    """devices: [(name, major, minor, serial, size_bytes)]"""
    body = b"".join(struct.pack("<IIQIBBH", ma, mi, size, 512, len(n), len(s), 0) + n + s
                    for n, ma, mi, s, size in
                    ((n.encode(), ma, mi, s.encode(), size) for n, ma, mi, s, size in devices))
    return frame(DEVMAP, struct.pack("<II", generation, len(devices)) + body)


def record(major, minor, sector, nbytes, op, issue_ns, complete_ns, queue_ns=0):
    return struct.pack("<IIQIBBHiIQQQ", major, minor, sector, nbytes, op, 0, 0, 0, 0,
                       queue_ns, issue_ns, complete_ns)


def requests(first_seq, records):
    return frame(REQUESTS, struct.pack("<IIQ", len(records), 56, first_seq) + b"".join(records))


def drops(next_seq):
    return frame(DROPS, struct.pack("<QQQQQ", 0, 0, 0, 0, next_seq))


def reply(probe_id, host_send):
    now = time.monotonic_ns()
    return frame(REPLY, struct.pack("<QQQQIIqQ", probe_id, host_send, now, now, 0, 0, 0, 0))


class FakeAgent:
    """mode: how this 'guest' behaves on each connection hostd makes:
    good        HELLO, DEVMAP, answers probes, @rate records/s on its disk
    garbage     random bytes, as fast as hostd takes them
    unknown     a flood of tiny frames of an unknown type
    devices     a device map of 100 disks, re-sent
    noclock     valid records for its disk, never answering a probe
    records     valid records as fast as possible, probes answered
    invalid     records for a device not in its map
    malformed   device maps that do not parse
    foreign     claims another VM's disk serial, then floods records
    deaf        HELLO and its map, then never reads again (a guest that
                stopped taking data from its port: QEMU stops reading)
    """

    def __init__(self, path, mode, serial="disk", rate=500):
        self.path = path
        self.mode = mode
        self.serial = serial
        self.rate = rate
        self.accepts = []
        self.sent_records = 0
        self.stopping = False
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if os.path.exists(path):
            os.unlink(path)
        self.srv.bind(path)
        self.srv.listen(4)
        self.srv.settimeout(0.2)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.session = random.getrandbits(63)
        self.seq = 0

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.stopping = True
        self.thread.join(timeout=10)
        self.srv.close()

    def _serve(self):
        while not self.stopping:
            try:
                conn, _ = self.srv.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.accepts.append(time.monotonic())
            conn.settimeout(0.5)
            try:
                self._talk(conn)
            except (OSError, BrokenPipeError, ConnectionResetError):
                pass
            finally:
                conn.close()

    # The host's probes, answered from a reader thread when the mode wants.
    # @send is the connection's locked sendall: a reply must never land in
    # the middle of a frame the talking thread is sending.
    def _reader(self, conn, send, answer, done, answered):
        buf = b""
        while not done.is_set() and not self.stopping:
            try:
                d = conn.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                break
            if not d:
                break
            buf += d
            while len(buf) >= 12:
                magic, _ver, ftype, _fl, ln = struct.unpack_from("<IBBHI", buf)
                if magic != MAGIC:
                    buf = buf[1:]
                    continue
                if len(buf) < 12 + ln:
                    break
                payload, buf = buf[12:12 + ln], buf[12 + ln:]
                if ftype == PROBE and answer:
                    pid, hsend = struct.unpack_from("<QQ", payload)
                    try:
                        send(reply(pid, hsend))
                    except OSError:
                        return
                    answered.set()
        done.set()

    def _disk(self):
        return [("vda", 252, 0, self.serial, 1 << 30)]

    def _records(self, n, dev=(252, 0)):
        now = time.monotonic_ns()
        return [record(dev[0], dev[1], (self.seq + i) * 8 % (1 << 20), 4096, 0,
                       now - 200000, now - 100000, now - 300000) for i in range(n)]

    def _batch(self, n, dev=(252, 0)):
        fr = requests(self.seq, self._records(n, dev))
        self.seq += n
        return fr

    def _talk(self, conn):
        mode = self.mode
        done = threading.Event()
        answered = threading.Event()
        answer = mode in ("good", "records", "foreign", "invalid")
        lock = threading.Lock()

        def send(data):
            with lock:
                conn.sendall(data)
        if mode != "deaf":
            threading.Thread(target=self._reader, args=(conn, send, answer, done, answered),
                             daemon=True).start()
        try:
            if mode == "garbage":
                junk = bytes(random.getrandbits(8) for _ in range(1 << 16))
                while not done.is_set() and not self.stopping:
                    send(junk)
                return
            send(hello(self.session))
            if mode == "devices":
                m = devmap([(f"vd{i:03d}", 252, i, f"s{i}", 1 << 30) for i in range(100)])
                while not done.is_set() and not self.stopping:
                    send(m)
                    time.sleep(0.05)
                return
            if mode == "malformed":
                bad = frame(DEVMAP, struct.pack("<II", 1, 200))
                while not done.is_set() and not self.stopping:
                    send(bad * 64)
                return
            if mode == "unknown":
                small = frame(99, b"x") * 4096
                while not done.is_set() and not self.stopping:
                    send(small)
                return
            send(devmap(self._disk()))
            send(drops(self.seq))
            if mode == "deaf":
                # Smallest receive buffer: hostd's frames pile up sooner.
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)
                while not self.stopping:
                    time.sleep(0.2)
                return
            if mode == "good":
                per = max(1, self.rate // 10)
                while not done.is_set() and not self.stopping:
                    time.sleep(0.1)
                    send(self._batch(per))
                    self.sent_records += per
                return
            # The flood must outrun hostd's records limit however busy the
            # host is, so its records are built once: only the sequence
            # number changes from batch to batch. A flood that answers probes
            # starts after its first answer, as a real agent's backlog goes
            # out within a probe's round trip; otherwise it would first breach
            # the limit on records sent before any clock estimate.
            if answer:
                answered.wait(5)
            dev = (252, 7) if mode == "invalid" else (252, 0)
            recs = self._records(1000, dev)
            while not done.is_set() and not self.stopping:
                send(requests(self.seq, recs))
                self.seq += len(recs)
        finally:
            done.set()
