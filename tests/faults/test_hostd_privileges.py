#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""blkin-hostd gives up what it does not need once it is set up
(hostd/privileges.c, docs/security.md): in /proc/PID/status it runs with
no_new_privs and only CAP_DAC_OVERRIDE in its effective, permitted and
bounding sets (nothing inheritable or ambient), in every thread, and with just that it still
serves its control socket and /metrics, and connects to an agent socket of
another user laid out as libvirt does (channel/target/domain-N-NAME/, 0700
directories, a 0600 socket, all libvirt-qemu's). --keep-privileges keeps
them all."""
import grp
import json
import os
import pwd
import shutil
import tempfile
import time
import urllib.request

from fakeagent import FakeAgent
from faultlib import BUILD, Hostd
from stack import free_ports
from tap import Tap

CAP_DAC_OVERRIDE = 1


def status_of(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return out


def owner():
    """libvirt's QEMU user where it exists, else nobody: not root."""
    for user, group in (("libvirt-qemu", "kvm"), ("nobody", "nogroup")):
        try:
            return pwd.getpwnam(user).pw_uid, grp.getgrnam(group).gr_gid
        except KeyError:
            continue
    return 65534, 65534


def main():
    t = Tap()
    wd = os.path.join(BUILD, "tests", "faults", "work", "privileges")
    shutil.rmtree(wd, ignore_errors=True)
    os.makedirs(wd)
    uid, gid = owner()
    # A UNIX socket path has 108 bytes; libvirt's channel layout under a
    # build tree that may itself be deep does not fit, so it lives in /tmp.
    chan = tempfile.mkdtemp(prefix="blkin-priv-")
    os.chmod(chan, 0o755)
    target = os.path.join(chan, "qemu", "channel", "target")
    dom = os.path.join(target, "domain-1-priv")
    os.makedirs(dom)
    sock = os.path.join(dom, "org.blkin.agent.0")
    agent = FakeAgent(sock, "good", serial="priv-a", rate=100)
    for p, mode in ((sock, 0o600), (dom, 0o700), (target, 0o700)):
        os.chown(p, uid, gid)
        os.chmod(p, mode)
    agent.start()
    port = free_ports(1)[0]
    try:
        with Hostd(wd, args=["--metrics", f"127.0.0.1:{port}",
                             "--export-zipkin", f"http://127.0.0.1:{port}/nowhere"]) as h:
            # The drop follows the set-up that created the socket.
            st = {}
            for _ in range(100):
                st = status_of(h.proc.pid)
                if st.get("NoNewPrivs") == "1":
                    break
                time.sleep(0.05)
            t.diag({k: st.get(k) for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb",
                                           "NoNewPrivs")})
            t.eq(st.get("NoNewPrivs"), "1", "hostd runs with no_new_privs")
            want = f"{1 << CAP_DAC_OVERRIDE:016x}"
            for k in ("CapEff", "CapPrm", "CapBnd"):
                t.eq(st.get(k), want, f"{k}: CAP_DAC_OVERRIDE only")
            for k in ("CapInh", "CapAmb"):
                t.eq(st.get(k), "0" * 16, f"{k}: empty")
            t.eq(st.get("Uid", "").split()[0], "0", "hostd is still uid 0 (its files are root's)")
            # Capabilities are per thread: GLib's worker and the export
            # thread must not have kept root's.
            # Keyed by thread id: a thread GLib has just started still has
            # the process's name until it names itself.
            def threads_now():
                threads = {}
                for tid in os.listdir(f"/proc/{h.proc.pid}/task"):
                    ts = status_of(f"{h.proc.pid}/task/{tid}")
                    threads[f"{tid} {ts['Name']}"] = tuple(
                        ts[k] for k in ("CapEff", "CapPrm", "CapBnd", "NoNewPrivs"))
                return threads
            h_wait(lambda: len(threads_now()) >= 3)
            threads = threads_now()
            t.diag(threads)
            t.ok(len(threads) >= 3 and all(v == (want, want, want, "1") for v in threads.values()),
                 "every thread (GLib's worker and the export thread too) has the same", detail=threads)

            h.register("priv", sock, ["vda=priv-a=priv/vda"])
            ok = h_wait(lambda: json.loads(h.cli("status").stdout)["agents_connected"] == 1)
            t.ok(ok and agent.accepts,
                 "with only those, hostd connects to another user's 0600 agent socket in 0700 dirs",
                 detail=h.cli("status").stdout)
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as r:
                body = r.read().decode()
            t.ok("blkin_lttng_discarded_events_total" in body, "/metrics is still served")
            t.ok(h.proc.poll() is None, "hostd runs on")
        with Hostd(wd, args=["--keep-privileges"]) as h:
            time.sleep(0.5)
            st = status_of(h.proc.pid)
            t.ok(st.get("NoNewPrivs") == "0" and int(st.get("CapEff", "0"), 16) > 1 << CAP_DAC_OVERRIDE,
                 "--keep-privileges keeps root's capabilities",
                 detail={k: st.get(k) for k in ("CapEff", "NoNewPrivs")})
    finally:
        agent.stop()
        shutil.rmtree(chan, ignore_errors=True)
    t.done()


def h_wait(pred, timeout=20):
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return True
        time.sleep(0.2)
    return pred()


if __name__ == "__main__":
    main()
