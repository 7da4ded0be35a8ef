#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""The `blkin` command's errors and hand-overs, as an operator meets them:
no daemon, bad requests refused with a reason and nothing changed, and
`blkin enable|disable` handing over to blkin-libvirt / blkin-live."""
import json
import os
import shutil
import socket
import threading
import time
import subprocess

from stack import BUILD, CLI, HostStack
from tap import Tap


def blkin(*args, sock=None):
    argv = [CLI] + (["--socket", sock] if sock else []) + list(args)
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


def control(sock_path, req):
    """One request over the control socket, as any local client may send it."""
    with socket.socket(socket.AF_UNIX) as c:
        c.settimeout(30)
        c.connect(sock_path)
        c.sendall((json.dumps(req) + "\n").encode())
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = c.recv(65536)
            if not chunk:
                break
            buf += chunk
    return json.loads(buf)


def fake_hostd(path, answer):
    """A control socket that reads one request and answers @answer (bytes),
    or never answers (None): what a stuck or broken hostd looks like."""
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(path)
    srv.listen(4)
    held = []

    def serve():
        while True:
            try:
                c, _ = srv.accept()
            except OSError:
                return
            held.append(c)
            try:
                c.recv(65536)
                if answer is not None:
                    c.sendall(answer)
            except OSError:
                pass
    threading.Thread(target=serve, daemon=True).start()
    return srv


def main():
    t = Tap()
    wd = os.path.join(BUILD, "tests", "hostd-e2e", "work", "cli")
    shutil.rmtree(wd, ignore_errors=True)
    os.makedirs(wd)
    r = blkin("report", sock=os.path.join(wd, "nothing.sock"))
    t.ok(r.returncode == 1 and "cannot reach blkin-hostd" in r.stderr, "no daemon: a clear error",
         detail=r.stderr)
    r = blkin("enable", "--live", "--qmp", os.path.join(wd, "no-qmp.sock"), "--device", "disk0")
    t.ok(r.returncode != 0 and "qmp" in r.stderr.lower(), "blkin enable --live hands over to blkin-live",
         detail=r.stderr)
    r = blkin("disable", "no-such-domain", "--connect", "test:///default")
    t.ok(r.returncode != 0 and "no-such-domain" in r.stderr, "blkin disable hands over to blkin-libvirt",
         detail=r.stderr)
    # A hostd that never answers: the CLI gives up after --timeout, saying so.
    stuck = fake_hostd(os.path.join(wd, "stuck.sock"), None)
    t0 = time.monotonic()
    r = blkin("--timeout", "2", "status", sock=os.path.join(wd, "stuck.sock"))
    took = time.monotonic() - t0
    t.ok(r.returncode == 1 and "did not answer within 2 s" in r.stderr and took < 30,
         f"a stuck hostd: blkin gives up after --timeout with a clear error ({took:.1f} s)",
         detail=r.stderr)
    stuck.close()
    # Answers that are not hostd's: non-zero, one clear line, no GLib noise.
    for name, answer in (("garbage", b"this is not json\n"),
                         ("shape", b'{"ok":true,"disks":[{"vm":1}]}\n')):
        path = os.path.join(wd, f"{name}.sock")
        srv = fake_hostd(path, answer)
        r = blkin("report", sock=path)
        t.ok(r.returncode == 1 and "malformed answer" in r.stderr and "CRITICAL" not in r.stderr,
             f"a malformed answer ({name}): exit 1 and a clear error", detail=r.stderr)
        srv.close()
    with HostStack(wd) as st:
        s = st.socket
        r = blkin("register", "vm1", "--disk", "vda-without-serial", sock=s)
        t.ok(r.returncode == 2 and "TARGET=SERIAL=FILTER-ID" in r.stderr,
             "a malformed disk spec is refused by the CLI, naming the form", detail=r.stderr)
        # The control protocol takes disks as objects only: a client that
        # sends the text form (or a part that is not printable) is told so.
        for disk, want in (("vda=s1=vm1/vda", "each disk is an object"),
                           ({"target": "vda", "serial": "s 1", "filter_id": "vm1/vda"}, "invalid serial"),
                           ({"target": "vda", "serial": "s1"}, "invalid filter id")):
            ans = control(s, {"cmd": "register", "vm": "vm1", "disks": [disk]})
            t.ok(ans.get("ok") is False and want in ans.get("error", ""),
                 f"control protocol: register with disk {disk!r} refused ({want})", detail=ans)
        r = blkin("register", "vm1", "--disk", "vda=s1=vm1/vda", sock=s)
        t.ok(r.returncode == 0, "a good registration is accepted", detail=r.stderr)
        r = blkin("register", "vm2", "--disk", "vda=s2=vm1/vda", sock=s)
        t.ok(r.returncode == 1 and "already belongs to VM 'vm1'" in r.stderr,
             "another VM cannot claim a filter id that is not its own", detail=r.stderr)
        r = blkin("report", "vm9", sock=s)
        t.ok(r.returncode == 1 and "no VM 'vm9'" in r.stderr, "unknown VM: a clear error", detail=r.stderr)
        r = blkin("report", "vm1", "vdz", sock=s)
        t.ok(r.returncode == 1 and "has no disk 'vdz'" in r.stderr, "unknown disk: a clear error", detail=r.stderr)
        r = blkin("report", "--window", "5m", sock=s)
        t.ok(r.returncode == 1 and "unknown window" in r.stderr, "unknown window: a clear error", detail=r.stderr)
        r = blkin("trace", "zz", sock=s)
        t.ok(r.returncode == 1 and "not hex" in r.stderr, "a bad trace id: a clear error", detail=r.stderr)
        rep = json.loads(blkin("report", "--json", sock=s).stdout)
        t.eq([(d["vm"], d["disk"]) for d in rep["disks"]], [("vm1", "vda")],
             "after the refusals only the good registration exists")
        r = blkin("report", sock=s)
        t.ok(r.returncode == 0 and "VM vm1  disk vda" in r.stdout, "the readable report names VM and disk",
             detail=r.stdout)
        r = blkin("unregister", "vm1", sock=s)
        t.ok(r.returncode == 0, "unregister")
        st.cli("status")
    t.done()


if __name__ == "__main__":
    main()
