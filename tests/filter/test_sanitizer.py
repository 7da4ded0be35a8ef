#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Sanitizer builds only (./build-asan, scripts/test.sh stage 2): the filter
tests there really run the filter under AddressSanitizer. Debian's QEMU is
not instrumented; the shim and the filter are, and qemutools puts the ASan
runtime first in LD_PRELOAD. Checked in a running qemu-io: the runtime is
mapped and initialised (its shadow memory is there), and the blkin-filter.so
mapped is this build's instrumented one."""
import os
import subprocess
import tempfile
import time

from qemutools import (FILTER, PRELOAD, blkin_json, create, file_node, ld_preload, needed,
                       sanitizer_runtime)
from tap import Tap
# x86-64 ASan's shadow memory: the low shadow covers the shadow offset,
# the high shadow ends at 0x10007fff8000 (asan_mapping.h).
SHADOW_OFFSET = 0x7FFF8000
HIGH_SHADOW_END = 0x10007FFF8000


def maps_of(pid):
    try:
        with open(f"/proc/{pid}/maps") as f:
            return f.read()
    except OSError:
        return ""


def main():
    t = Tap()
    rt = sanitizer_runtime(PRELOAD)
    t.ok(rt and os.path.isfile(rt), "the preload shim is ASan-instrumented; runtime found", detail=rt)
    undef = subprocess.run(["nm", "-D", "--undefined-only", FILTER], capture_output=True, text=True,
                           timeout=60).stdout
    t.ok(any(n.startswith("libasan.so") for n in needed(FILTER)) and "__asan_report_" in undef,
         "blkin-filter.so is ASan-instrumented (it calls __asan_report_*)")

    work = tempfile.TemporaryDirectory()
    img = os.path.join(work.name, "san.raw")
    create(img, 1 << 20)
    env = dict(os.environ, LD_PRELOAD=ld_preload(PRELOAD))
    p = subprocess.Popen(["timeout", "60", "qemu-io", blkin_json(file_node(img), id="san")], env=env,
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    try:
        # timeout(1) is the child; qemu-io is its child.
        deadline = time.monotonic() + 30
        qpid = None
        while time.monotonic() < deadline and qpid is None:
            try:
                with open(f"/proc/{p.pid}/task/{p.pid}/children") as f:
                    kids = f.read().split()
                qpid = int(kids[0]) if kids else None
            except OSError:
                pass
            if qpid is None:
                time.sleep(0.05)
        maps = ""
        while qpid and time.monotonic() < deadline:
            maps = maps_of(qpid)
            if os.path.realpath(FILTER) in maps:
                break
            time.sleep(0.05)
        t.ok(os.path.realpath(FILTER) in maps, "qemu-io has this build's blkin-filter.so loaded",
             detail=maps[-3000:])
        t.ok(rt and rt in maps, "and the ASan runtime")
        ranges = [tuple(int(x, 16) for x in line.split()[0].split("-"))
                  for line in maps.splitlines() if line.strip()]
        t.ok(any(a <= SHADOW_OFFSET < b for a, b in ranges)
             and any(b == HIGH_SHADOW_END for a, b in ranges),
             "ASan initialised in it: its shadow memory is mapped")
        out, err = p.communicate("write -P 0x5a 0 64k\nread -P 0x5a 0 64k\nflush\n"
                                 "discard 0 4k\nquit\n", timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        work.cleanup()
    t.ok(p.returncode == 0 and "read 65536/65536" in out and "Pattern verification failed" not in out,
         "requests through the instrumented filter complete, data verified", detail=out + err)
    t.ok("ERROR: AddressSanitizer" not in err and "runtime error" not in err,
         "without an ASan or UBSan report", detail=err[-2000:])
    t.done()


if __name__ == "__main__":
    main()
