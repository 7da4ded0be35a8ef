#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""`meson install` ships a man page for every program it installs for an
operator, and each page documents what the program's --help lists: every
long option, and its version.

Installs the build into a scratch DESTDIR (nothing outside it is touched)."""
import glob
import os
import re
import subprocess

from destdir import installed_tree
from tap import Tap

PROJECT_VERSION = re.search(r"version: '([^']+)'",
                            open(os.path.join(os.environ.get("BLKIN_SOURCE_ROOT", "."),
                                              "meson.build")).read()).group(1)
# Programs an operator runs (tests' and Ganeti's helper scripts aside).
PROGRAMS = ["blkin-hostd", "blkin", "blkin-guest-agent", "blkin-agent-dump",
            "blkin-libvirt", "blkin-live"]


def long_options(help_text):
    return sorted(set(re.findall(r"(?<![\w-])--([a-z][a-z0-9-]+)", help_text)))


def main():
    t = Tap()
    with installed_tree(t, "blkin-man-") as dest:
        installed = {os.path.basename(p): p for p in
                     glob.glob(os.path.join(dest, "**", "bin", "blkin*"), recursive=True) +
                     glob.glob(os.path.join(dest, "**", "sbin", "blkin*"), recursive=True)}
        pages = {os.path.basename(p): p for p in
                 glob.glob(os.path.join(dest, "**", "man", "man[18]", "*.[18]"), recursive=True)}
        for prog in PROGRAMS:
            if prog not in installed:
                t.skip(f"{prog}: man page", "not installed by this build")
                continue
            page = [p for n, p in pages.items() if n.rsplit(".", 1)[0] == prog]
            if not t.eq(len(page), 1, f"{prog}: one man page installed"):
                continue
            with open(page[0]) as f:
                text = f.read().replace("\\-", "-")
            h = subprocess.run([installed[prog], "--help"], capture_output=True, text=True,
                               timeout=30)
            opts = long_options(h.stdout + h.stderr)
            missing = [o for o in opts if f"--{o}" not in text]
            t.ok(len(opts) >= 3 and not missing,
                 f"{prog}: the page documents all {len(opts)} long options of --help",
                 detail=f"missing: {missing}")
            v = subprocess.run([installed[prog], "--version"], capture_output=True, text=True,
                               timeout=30)
            t.ok(v.returncode == 0 and v.stdout.strip() == f"{prog} {PROJECT_VERSION}"
                 and PROJECT_VERSION in text,
                 f"{prog}: --version prints '{prog} {PROJECT_VERSION}', as the page does",
                 detail=f"rc {v.returncode}, {v.stdout!r}")
    t.done()


if __name__ == "__main__":
    main()
