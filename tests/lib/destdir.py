# SPDX-License-Identifier: GPL-2.0-or-later
"""`meson install` of the build into a scratch DESTDIR, for tests of what an
install ships (nothing outside the directory is touched).

    with installed_tree(t, "blkin-man-") as dest:
        ...   # dest: the DESTDIR, removed afterwards
"""
import contextlib
import os
import shutil
import subprocess
import tempfile

BUILD = os.environ.get("BLKIN_BUILD_ROOT", "build")


@contextlib.contextmanager
def installed_tree(t, prefix):
    dest = tempfile.mkdtemp(prefix=prefix)
    try:
        r = subprocess.run(["meson", "install", "-C", BUILD, "--destdir", dest,
                            "--no-rebuild", "--quiet"],
                           capture_output=True, text=True, timeout=120)
        if not t.eq(r.returncode, 0, "meson install into a DESTDIR"):
            t.diag(r.stdout + r.stderr)
        yield dest
    finally:
        shutil.rmtree(dest, ignore_errors=True)
