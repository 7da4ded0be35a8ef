#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""`meson install` ships libblkin whole: the library, blkin.h and libblkin.pc,
enough for a service outside this tree to build against it with pkg-config
and run.

Installs the build into a scratch DESTDIR (nothing outside it is touched),
then compiles a small program with `pkg-config --cflags --libs libblkin`.
"""
import glob
import os
import subprocess
import sys

from destdir import installed_tree
from tap import Tap


PROGRAM = r"""
#include <blkin.h>
#include <stdio.h>

int main(void)
{
    struct blkin_endpoint ep;
    struct blkin_trace t, child;
    unsigned char ctx[BLKIN_TRACE_INFO_PACKED_SIZE];

    if (blkin_endpoint_init(&ep, "127.0.0.1", 6800, "outside") < 0 ||
        blkin_trace_init_root(&t, "op", &ep, true) < 0 ||
        blkin_annotate_event(&t, BLKIN_CLIENT_SEND) < 0 ||
        blkin_trace_pack(&t, ctx, sizeof(ctx)) != BLKIN_TRACE_INFO_PACKED_SIZE ||
        blkin_trace_init_packed(&child, ctx, sizeof(ctx), "peer", &ep) < 0)
        return 1;
    printf("%d\n", child.info.trace_id == t.info.trace_id &&
                   child.info.parent_span_id == t.info.span_id);
    return 0;
}
"""


def main():
    t = Tap()
    with installed_tree(t, "blkin-install-") as dest:
        pcs = glob.glob(os.path.join(dest, "**", "pkgconfig", "libblkin.pc"), recursive=True)
        libs = glob.glob(os.path.join(dest, "**", "libblkin.so*"), recursive=True)
        hdrs = glob.glob(os.path.join(dest, "**", "include", "blkin.h"), recursive=True)
        t.eq(len(pcs), 1, "libblkin.pc is installed")
        t.eq(sorted(os.path.basename(p) for p in libs),
             ["libblkin.so", "libblkin.so.0", "libblkin.so.0.1.0"],
             "the library with its soname links")
        t.eq(len(hdrs), 1, "blkin.h is installed")
        if not (pcs and libs and hdrs):
            t.done()

        env = dict(os.environ, PKG_CONFIG_SYSROOT_DIR=dest,
                   PKG_CONFIG_PATH=os.path.dirname(pcs[0]))
        flags = subprocess.run(["pkg-config", "--cflags", "--libs", "libblkin"], env=env,
                               capture_output=True, text=True, timeout=60)
        t.eq(flags.returncode, 0, "pkg-config knows libblkin") or t.diag(flags.stderr)
        src = os.path.join(dest, "user.c")
        exe = os.path.join(dest, "user")
        with open(src, "w") as f:
            f.write(PROGRAM)
        cc = subprocess.run(["cc", "-std=gnu11", "-Wall", "-Werror", "-o", exe, src,
                             *flags.stdout.split()], capture_output=True, text=True,
                            timeout=120)
        t.eq(cc.returncode, 0, "a program builds with pkg-config's flags alone") \
            or t.diag(cc.stderr)
        run = subprocess.run([exe], capture_output=True, text=True, timeout=60,
                             env=dict(os.environ,
                                      LD_LIBRARY_PATH=os.path.dirname(sorted(libs)[0])))
        t.eq((run.returncode, run.stdout.strip()), (0, "1"),
             "and runs against the installed library: a packed context makes a child")
    t.done()


if __name__ == "__main__":
    sys.exit(main())
