#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""What blkin-ceph-collector costs (docs/backend-ceph.md, "Costs").

Two measurements, each the collector's own CPU time (utime + stime from
/proc) over a window, divided by the window:

1. synthetic: an emulated OSD admin socket that keeps an op history the way
   Ceph 16 does (ops of the last --history-duration seconds, as the
   collector sets it) filled at exactly RATE client ops/s, each op's JSON as
   a real OSD writes it (taken from tests/fuzz/corpus/optracker). This
   isolates the collector: parsing, deduplicating, shipping lines.
2. real (with --ceph DIR, a cluster from scripts/ceph-node.sh): `rados
   bench` 4 KiB writes against the one OSD, the collector reading its op
   tracker with --print (every client: no filter, the worst case). The rate
   is what this machine's OSD manages; the cost per op is what matters.

    bench/ceph-collector-bench.py [--rate 5000] [--seconds 20] [--ceph DIR]

Not a test: it prints numbers (and ratios to the budget of 5 % of one core
at 5,000 ops/s).
"""
import argparse
import json
import os
import random
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

SRC = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("BLKIN_BUILD_ROOT", os.path.join(SRC, "build"))
COLLECTOR = os.path.join(BUILD, "ceph", "blkin-ceph-collector")
CORPUS = os.path.join(SRC, "tests", "fuzz", "corpus", "optracker", "historic-compact")
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def stamp(t):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%06d+0000" % (
        int(t * 1e6) % 1000000)


class FakeOsd:
    """An admin socket with a history of @rate ops/s over @duration s."""

    def __init__(self, path, rate, duration):
        self.path, self.rate, self.duration = path, rate, duration
        tmpl = [o for o in json.load(open(CORPUS))["ops"]
                if "rbd_data" in o["description"] and "write" in o["description"]][0]
        self.tmpl = json.dumps(tmpl, separators=(",", ":"))
        self.t0 = time.time()
        self.count = 0
        self.ops = []  # (initiated, json)
        self.lock = threading.Lock()
        self.stop = False

    def make(self, tid, t):
        s = self.tmpl
        d = json.loads(s)
        d["description"] = d["description"].replace(
            d["description"].split(" ")[0], f"osd_op(client.4711.0:{tid}", 1)
        d["initiated_at"] = stamp(t)
        for i, e in enumerate(d["type_data"]["events"]):
            e["time"] = stamp(t + i * 1e-5)
        return json.dumps(d, separators=(",", ":"))

    def generate(self):
        tid = 0
        next_t = time.time()
        while not self.stop:
            now = time.time()
            batch = []
            while next_t < now:
                tid += 1
                batch.append((next_t, self.make(tid, next_t)))
                next_t += 1.0 / self.rate
            with self.lock:
                self.ops.extend(batch)
                self.count += len(batch)
                cut = now - self.duration
                while self.ops and self.ops[0][0] < cut:
                    self.ops.pop(0)
            time.sleep(0.02)

    def answer(self, cmd):
        prefix = cmd.get("prefix")
        if prefix == "config get":
            v = cmd["var"]
            return json.dumps({v: "600" if "duration" in v else "20"})
        if prefix == "config set":
            return '{"success":""}'
        if prefix == "perf dump":
            return json.dumps({"osd": {"op": self.count}})
        if prefix == "dump_historic_ops":
            with self.lock:
                body = ",".join(j for _, j in self.ops)
            return '{"size":100000,"duration":%d,"ops":[%s]}' % (self.duration, body)
        if prefix == "dump_historic_slow_ops":
            return '{"num to keep":1000,"threshold to keep":2,"Ops":[]}'
        return '{"ops":[],"num_ops":0}'

    def serve(self):
        s = socket.socket(socket.AF_UNIX)
        s.bind(self.path)
        s.listen(8)
        threading.Thread(target=self.generate, daemon=True).start()
        while not self.stop:
            c, _ = s.accept()
            buf = b""
            while not buf.endswith(b"\0"):
                chunk = c.recv(4096)
                if not chunk:
                    break
                buf += chunk
            try:
                data = self.answer(json.loads(buf[:-1])).encode()
                c.sendall(struct.pack(">I", len(data)) + data)
            except (ValueError, OSError):
                pass
            c.close()


def run_collector(asok_glob, seconds, port):
    p = subprocess.Popen(["timeout", "-s", "INT", str(seconds + 60), COLLECTOR, "--asok",
                          asok_glob, "--print", "--listen", f"127.0.0.1:{port}"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(3)  # it finds the socket and settles (history size, keys)
    # timeout's child is the collector.
    pid = int(subprocess.run(["pgrep", "-P", str(p.pid)], capture_output=True,
                             text=True).stdout.split()[0])
    return p, pid


def peak_rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def measure(pid, seconds, count_fn):
    c0, n0, t0 = cpu_seconds(pid), count_fn(), time.time()
    time.sleep(seconds)
    c1, n1, t1 = cpu_seconds(pid), count_fn(), time.time()
    return (c1 - c0) / (t1 - t0), (n1 - n0) / (t1 - t0), peak_rss_mib(pid)


def report(name, cpu, rate, rss):
    per_op = cpu / rate * 1e6 if rate else float("nan")
    at5k = per_op * 5000 / 1e6
    print(f"{name}: {rate:.0f} ops/s, collector {100 * cpu:.2f} % of one core, "
          f"{per_op:.1f} us per op -> {100 * at5k:.2f} % of a core at 5,000 ops/s "
          f"(budget 5 %: {'within' if at5k <= 0.05 else 'OVER'}); peak RSS {rss:.1f} MiB")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=int, default=5000)
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--ceph", help="a running scripts/ceph-node.sh cluster's directory")
    a = ap.parse_args()

    d = tempfile.mkdtemp(prefix="blkin-collector-bench-")
    fake = FakeOsd(os.path.join(d, "osd.0.asok"), a.rate, 2)
    threading.Thread(target=fake.serve, daemon=True).start()
    while not os.path.exists(fake.path):
        time.sleep(0.05)
    p, pid = run_collector(os.path.join(d, "osd.*.asok"), a.seconds, free_port())
    cpu, rate, rss = measure(pid, a.seconds, lambda: fake.count)
    p.send_signal(2)
    p.wait()
    fake.stop = True
    report(f"synthetic ({a.rate} ops/s asked)", cpu, rate, rss)

    if a.ceph:
        env = dict(os.environ, CEPH_CONF=os.path.join(a.ceph, "ceph.conf"))
        asok = os.path.join(a.ceph, "run", "osd.0.asok")

        sys.path.insert(0, os.path.join(SRC, "tests", "lib"))
        import ceph

        def osd_ops():
            return json.loads(ceph.admin_socket(asok, {"prefix": "perf dump", "logger": "osd",
                                                       "counter": "op"}))["osd"]["op"]
        # A pool of its own, deleted after: the one-node OSD is small.
        subprocess.run(["timeout", "60", "ceph", "osd", "pool", "create", "blkin-bench", "8"],
                       env=env, capture_output=True, check=True)
        bench = subprocess.Popen(["timeout", str(a.seconds + 60), "rados", "bench", "-p",
                                  "blkin-bench",
                                  str(a.seconds + 10), "write", "-b", "4096", "-t", "32",
                                  "--no-cleanup"], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL, env=env)
        time.sleep(3)
        p, pid = run_collector(os.path.join(a.ceph, "run", "osd.*.asok"), a.seconds,
                               free_port())
        cpu, rate, rss = measure(pid, a.seconds, osd_ops)
        p.send_signal(2)
        p.wait()
        bench.wait()
        subprocess.run(["timeout", "120", "ceph", "osd", "pool", "delete", "blkin-bench",
                        "blkin-bench", "--yes-i-really-really-mean-it"], env=env,
                       capture_output=True)
        report("real OSD, rados bench 4 KiB writes", cpu, rate, rss)


if __name__ == "__main__":
    sys.exit(main())
