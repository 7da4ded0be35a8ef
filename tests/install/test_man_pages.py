#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""`meson install` ships a real man page for every program it installs for an
operator (docs/man, written by hand): each page has the sections an operator
looks for (description, options, files, exit status, examples), documents
every long option the program's --help lists and every command (verb) it
takes, and carries the version the program prints.

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
# Programs an operator runs, and the commands each takes (Ganeti's wrapper
# and hook are not run by hand: blkin-ganeti(8) documents them).
PROGRAMS = {
    "blkin-hostd": [],
    "blkin": ["report", "top", "tail", "trace", "history", "status", "register", "unregister"],
    "blkin-guest-agent": [],
    "blkin-agent-dump": [],
    "blkin-libvirt": ["enable", "prepare", "disable", "status", "hook"],
    "blkin-live": ["enable", "disable", "status"],
    "blkin-ganeti": ["list"],
    "blkin-qemu-check": [],
    "blkin-lttng-session": ["ensure", "status", "destroy"],
}
SECTIONS = ["NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "FILES", "EXIT STATUS", "EXAMPLES", "SEE ALSO"]


def long_options(help_text):
    return sorted(set(re.findall(r"(?<![\w-])--([a-z][a-z0-9-]+)", help_text)))


def sections(roff):
    return [s.strip('"') for s in re.findall(r"^\.SH (.+)$", roff, re.M)]


def commands(roff):
    """The commands a COMMANDS section describes: the first word of each
    .TP entry's tag."""
    m = re.search(r"^\.SH COMMANDS\n(.*?)(?=^\.SH )", roff, re.M | re.S)
    if not m:
        return []
    return re.findall(r"^\.TP\n\.B[IR]? \"?([a-z][a-z-]*)", m.group(1), re.M)


def main():
    t = Tap()
    with installed_tree(t, "blkin-man-") as dest:
        installed = {os.path.basename(p): p for p in
                     glob.glob(os.path.join(dest, "**", "bin", "blkin*"), recursive=True) +
                     glob.glob(os.path.join(dest, "**", "sbin", "blkin*"), recursive=True)}
        pages = {os.path.basename(p): p for p in
                 glob.glob(os.path.join(dest, "**", "man", "man[18]", "*.[18]"), recursive=True)}
        t.eq(sorted(p for p in installed if p in PROGRAMS), sorted(p for p in PROGRAMS if p in installed),
             "every installed program is one the test knows")
        for prog, verbs in PROGRAMS.items():
            if prog not in installed:
                t.skip(f"{prog}: man page", "not installed by this build")
                continue
            page = [p for n, p in pages.items() if n.rsplit(".", 1)[0] == prog]
            if not t.eq(len(page), 1, f"{prog}: one man page installed"):
                continue
            with open(page[0]) as f:
                roff = f.read()
            text = roff.replace("\\-", "-").replace("\\fB", "").replace("\\fR", "").replace("\\fI", "")
            have = sections(roff)
            want = SECTIONS + (["COMMANDS"] if verbs else [])
            t.ok(all(s in have for s in want), f"{prog}: the page has {', '.join(want)}",
                 detail=f"has {have}")
            h = subprocess.run([installed[prog], "--help"], capture_output=True, text=True, timeout=30)
            help_text = h.stdout + h.stderr
            opts = long_options(help_text)
            missing = [o for o in opts if f"--{o}" not in text]
            t.ok(len(opts) >= 3 and not missing,
                 f"{prog}: the page documents all {len(opts)} long options of --help",
                 detail=f"missing: {missing}")
            if verbs:
                usage = set(w for grp in re.findall(r"\b[a-z]+(?:\|[a-z]+)+\b", help_text)
                            for w in grp.split("|"))
                t.ok(usage <= set(verbs) and all(v in help_text for v in verbs),
                     f"{prog}: --help names the commands {verbs}", detail=help_text[:400])
                t.eq(sorted(set(commands(roff))), sorted(verbs),
                     f"{prog}: the page describes each command")
            v = subprocess.run([installed[prog], "--version"], capture_output=True, text=True,
                               timeout=30)
            t.ok(v.returncode == 0 and v.stdout.strip() == f"{prog} {PROJECT_VERSION}"
                 and f"blkin {PROJECT_VERSION}" in roff,
                 f"{prog}: --version prints '{prog} {PROJECT_VERSION}', as the page does",
                 detail=f"rc {v.returncode}, {v.stdout!r}")
            r = subprocess.run(["man", "--warnings", "-l", page[0]], capture_output=True, text=True,
                               timeout=60, env=dict(os.environ, MANWIDTH="80", LC_ALL="C.UTF-8"))
            t.ok(r.returncode == 0 and not r.stderr.strip(), f"{prog}: man renders the page without warnings",
                 detail=r.stderr)
    t.done()


if __name__ == "__main__":
    main()
