# SPDX-License-Identifier: GPL-2.0-or-later
"""Shared bits of the guest agent's end-to-end tests (tests/agent).

The host side is tools/blkin-agent-dump (the reference host end of the
channel, built on common/blkin-channel); the guest runs the static agent from
the build next to tests/workload/blkin-workload under tests/lib/vm.py.
"""
import collections
import json
import os
import shutil
import subprocess
import time

import vm

# Guest shell helpers, prepended to each test's guest script.
GUEST_LIB = r"""
# wait_log PATTERN [COUNT] [TENTHS]: until the agent log has COUNT lines
# matching PATTERN (default 1), at most TENTHS tenths of a second.
wait_log() {
    n=0
    while [ $n -lt ${3:-300} ]; do
        [ "$(grep -c "$1" /tmp/agent.log 2>/dev/null)" -ge "${2:-1}" ] && return 0
        sleep 0.1
        n=$((n + 1))
    done
    echo "wait_log: timed out waiting for '$1'"
    return 1
}
mark() { echo "mark $1 $(cut -d' ' -f1 /proc/uptime)" >"$BLKIN_RESULTS"; }
start_agent() {
    # An earlier agent's log would satisfy the wait before this one is up.
    rm -f /tmp/agent.log
    blkin-guest-agent -v "$@" 2>/tmp/agent.log &
    AGENT=$!
    wait_log watching 1 100
}
stop_agent() {
    kill -TERM $AGENT
    wait $AGENT
    echo "agent-exit $?" >"$BLKIN_RESULTS"
    sed 's/^/agent-log /' /tmp/agent.log >"$BLKIN_RESULTS"
}
"""


def build_file(*parts):
    return os.path.join(vm.build_root(), *parts)


def agent_binary():
    # BLKIN_GUEST_AGENT first: a sanitizer build cannot build the static agent.
    return vm.agent_binary() or build_file("guest-agent", "blkin-guest-agent")


def dump_binary():
    return build_file("tools", "blkin-agent-dump")


def workdir(name):
    d = build_file("tests", "agent", "work", name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    return d


def guest_vm(work, disks, script, timeout):
    return vm.GuestVM(work, disks, GUEST_LIB + script,
                      extra_files={"bin/blkin-guest-agent": agent_binary()},
                      timeout=timeout)


class Dump:
    """One blkin-agent-dump process writing JSON lines to a file."""

    def __init__(self, sock, path, probe_ms=100, once=False, requests=True):
        self.path = path
        args = [dump_binary(), "-i", str(probe_ms), "-o", path]
        if once:
            args.append("--once")
        if not requests:
            args.append("--no-requests")
        self.proc = subprocess.Popen(args + [sock], stdin=subprocess.DEVNULL)

    def events(self):
        out = []
        try:
            with open(self.path) as f:
                for line in f:
                    line = line.strip()
                    if line.endswith("}"):
                        out.append(json.loads(line))
        except FileNotFoundError:
            pass
        return out

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.events()


def elf_is_static(path):
    """True when a 64-bit little-endian ELF has no PT_INTERP and no
    PT_DYNAMIC program header (i.e. needs no loader or libraries)."""
    import struct
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        return False
    phoff, = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    types = [struct.unpack_from("<I", data, phoff + i * phentsize)[0] for i in range(phnum)]
    return 3 not in types and 2 not in types


def wait_for(cond, timeout, step=0.05):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(step)
    return cond()


def of_type(events, kind):
    return [e for e in events if e.get("type") == kind]


def split_marks(text):
    """Results text cut at 'mark NAME' lines: {NAME: text before it}."""
    parts, cur = {}, []
    for line in text.splitlines():
        if line.startswith("mark "):
            parts[line.split()[1]] = "\n".join(cur)
            cur = []
        else:
            cur.append(line)
    parts["_rest"] = "\n".join(cur)
    return parts


def agent_exit(text):
    for line in text.splitlines():
        if line.startswith("agent-exit "):
            return int(line.split()[1])
    return None


def agent_stats(text):
    """The agent's final 'stats:' log line as a dict."""
    for line in text.splitlines():
        if "stats:" in line:
            return {k: int(v) for k, v in
                    (w.split("=", 1) for w in line.split("stats:", 1)[1].split())}
    return None


def match_requests(ios, reqs):
    """Pairs workload records with agent records by (disk, op, sector,
    bytes), in time order within each key. Returns (pairs, missing, extra)."""
    want = collections.defaultdict(list)
    for io in sorted(ios, key=lambda r: r["start"]):
        want[(io["dev"], io["op"], io["offset"] // 512, io["bytes"])].append(io)
    got = collections.defaultdict(list)
    for r in sorted(reqs, key=lambda r: r["issue_ns"]):
        got[(r["dev"], r["op"], r["sector"], r["bytes"])].append(r)
    pairs, missing, extra = [], [], []
    for k in set(want) | set(got):
        w, g = want.get(k, []), got.get(k, [])
        pairs += list(zip(w, g))
        missing += w[len(g):]
        extra += g[len(w):]
    return pairs, missing, extra
