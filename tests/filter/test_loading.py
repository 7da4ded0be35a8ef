#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Loading: every stock QEMU binary gets the driver through LD_PRELOAD; the
wrong QEMU build is refused; other programs are untouched; QEMU's own child
processes do not inherit the preload."""
import os
import socket
import subprocess
import tempfile
import time

from qemutools import (PRELOAD, PRELOAD_WRONG, blkin_json, create, file_node, ld_preload, qemu_io, run,
                       sanitizer_runtime)
from tap import Tap

NULL = {"driver": "null-co", "size": 1 << 20}


def test_wrong_build(t):
    r = qemu_io(blkin_json(NULL), "read 0 512", preload=PRELOAD_WRONG)
    err = r.stdout + r.stderr
    t.ok("is not the QEMU build blkin was compiled for" in err and err.count("blkin:") == 1,
         "a QEMU build the filter was not compiled for is refused in one clear line", detail=err)
    t.ok(r.returncode != 0 and "Unknown driver 'blkin'" in err, "and the driver is not registered there")
    have = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "qemu-utils"], capture_output=True,
                          text=True).stdout.strip()
    t.ok(f"(Debian {have})" in err and "(Debian 0:0.0-test, qemu_stamp_0000" in err
         and "blkin-qemu-filter" in err,
         "the refusal names the running QEMU's package version and the one blkin was built for",
         detail=err)
    r = qemu_io("json:" + '{"driver":"null-co"}', "read 0 512", preload=PRELOAD_WRONG)
    t.ok(r.returncode == 0 and "read 512/512" in r.stdout, "that QEMU still runs normally otherwise",
         detail=r.stdout + r.stderr)


def test_other_programs(t):
    env = dict(os.environ, LD_PRELOAD=ld_preload(PRELOAD))
    r = subprocess.run(["sh", "-c", 'echo "$LD_PRELOAD"; cat /proc/self/maps'], env=env,
                       capture_output=True, text=True, timeout=30)
    t.ok(r.returncode == 0 and r.stdout.splitlines()[0] == ld_preload(PRELOAD) and not r.stderr,
         "a shell runs normally and keeps LD_PRELOAD for the programs it starts", detail=r.stderr)
    t.ok("libblkin-preload.so" in r.stdout and "lttng" not in r.stdout and "blkin-filter.so" not in r.stdout,
         "outside QEMU only the small shim is mapped: no filter, no LTTng threads")
    r = subprocess.run(["python3", "-c", "import sys; print(sum(range(10)))"], env=env,
                       capture_output=True, text=True, timeout=30)
    t.ok(r.returncode == 0 and r.stdout.strip() == "45" and not r.stderr, "python runs normally")


def test_qemu_children(t):
    with tempfile.TemporaryDirectory() as d:
        script = os.path.join(d, "child.sh")
        with open(script, "w") as f:
            f.write(f"#!/bin/sh\nenv > {d}/child.env\ncat > /dev/null\n")
        os.chmod(script, 0o755)
        drive = 'if=none,id=d0,file=' + blkin_json(NULL, id="load-sys").replace(",", ",,")
        p = subprocess.run(["timeout", "60", "qemu-system-x86_64", "-M", "none", "-nodefaults",
                            "-display", "none", "-monitor", "stdio", "-drive", drive],
                           input=f'info block\nmigrate "exec:{script}"\nquit\n', capture_output=True,
                           text=True, env=dict(os.environ, LD_PRELOAD=ld_preload(PRELOAD)))
        t.ok("(blkin)" in p.stdout, "qemu-system-x86_64 opens a -drive with the blkin driver",
             detail=p.stdout[-1500:] + p.stderr)
        try:
            with open(os.path.join(d, "child.env")) as f:
                child_env = f.read()
        except FileNotFoundError:
            child_env = None
        # (a sanitizer build's ASan runtime, preloaded ahead of the shim, stays)
        rt = sanitizer_runtime(PRELOAD)
        left = [v for v in (child_env or "").splitlines() if v.startswith("LD_PRELOAD=")]
        t.ok(child_env is not None and left == ([f"LD_PRELOAD={rt}"] if rt else []),
             "a process QEMU starts (migrate exec:) does not inherit the preload", detail=child_env)


def test_img_and_nbd(t):
    with tempfile.TemporaryDirectory() as d:
        img = os.path.join(d, "n.raw")
        create(img, 4 << 20)
        r = run(["qemu-img", "info", blkin_json(file_node(img))])
        t.ok(r.returncode == 0 and "file format: blkin" in r.stdout, "qemu-img opens it",
             detail=r.stdout + r.stderr)
        sock = os.path.join(d, "nbd.sock")
        env = dict(os.environ, LD_PRELOAD=ld_preload(PRELOAD))
        nbd = subprocess.Popen(["timeout", "60", "qemu-nbd", "-t", "-k", sock,
                                blkin_json(file_node(img), id="load-nbd")],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            for _ in range(100):
                if os.path.exists(sock):
                    break
                time.sleep(0.05)
            url = f"nbd+unix:///?socket={sock}"
            w = qemu_io(url, "write -P 0x42 0 64k", "read -P 0x42 0 64k", preload=None, extra=["-f", "raw"])
            t.ok(w.returncode == 0 and "failed" not in w.stdout and "read 65536/65536" in w.stdout,
                 "qemu-nbd exports through the filter; data round-trips over NBD", detail=w.stdout + w.stderr)
        finally:
            nbd.terminate()
            nbd.wait(timeout=10)
        r = qemu_io("json:" + '{"driver":"raw","file":{"driver":"file","filename":"%s"}}' % img,
                    "read -P 0x42 0 64k", preload=None)
        t.ok("failed" not in r.stdout and r.returncode == 0, "the data landed on the image unchanged")


def test_check_tool(t):
    """blkin-qemu-check (run by the package's dpkg trigger): the installed
    QEMU passes; another binary is named with its package and version."""
    from qemutools import BUILD
    tool = os.path.join(BUILD, "qemu-filter", "blkin-qemu-check")
    env = dict(os.environ, BLKIN_QEMU_BUILD=os.path.join(BUILD, "qemu-filter", "qemu-build"))
    r = subprocess.run([tool], env=env, capture_output=True, text=True, timeout=60)
    t.ok(r.returncode == 0 and "qemu-img" in r.stdout, "blkin-qemu-check: the installed QEMU is the build",
         detail=r.stdout + r.stderr)
    r = subprocess.run([tool, "--quiet", "/usr/bin/qemu-img", "/bin/true"], env=env, capture_output=True,
                       text=True, timeout=60)
    t.ok(r.returncode == 1 and r.stdout == "" and r.stderr.count("\n") == 1
         and "/bin/true (coreutils " in r.stderr and "Debian 1:" in r.stderr,
         "another binary: exit 1, one line naming its package version and the one blkin was built for",
         detail=r.stdout + r.stderr)


def main():
    t = Tap()
    for fn in (test_wrong_build, test_check_tool, test_other_programs, test_qemu_children, test_img_and_nbd):
        t.run(fn)
    t.done()


if __name__ == "__main__":
    main()
