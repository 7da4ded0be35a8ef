#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Sort the AddressSanitizer reports of the sanitizer stage into ours and
babeltrace2's known one; exit 1 when any report is ours.

The stage runs every process with halt_on_error=0 and log_path, so a report
no longer kills the program that made it: this scan is what fails the stage.
That is needed for one report only: babeltrace2 2.0.x's src.ctf.lttng-live
writes past its stored_values array when metadata grows during a live session
(upstream 839df1da87b7, in 2.1, never in 2.0.x; docs/security.md), and ASan
sees the damage as a bad free inside the ctf plugin, at the end of a live
source or whenever a stream hangs up. Killing hostd there fails tests for a
bug that is not BlkKin's; any other report still fails the stage.
"""
import pathlib
import re
import sys

KNOWN = [
    ("babeltrace2 2.0 stored_values overflow (docs/security.md)",
     "attempting free on address which was not malloc()-ed",
     "babeltrace-plugin-ctf.so"),
]


def reports(text):
    parts = re.split(r"(?m)^(?===\d+==ERROR: )", text)
    return [p for p in parts if re.match(r"==\d+==ERROR: ", p)]


def classify(report):
    first_stack = report.split("\n\n", 1)[0]
    for name, error, module in KNOWN:
        if error in report.splitlines()[0] and module in first_stack:
            return name
    return None


def main():
    root = pathlib.Path(sys.argv[1])
    ours = 0
    known = {}
    for path in sorted(root.glob("asan.*")):
        for report in reports(path.read_text(errors="replace")):
            name = classify(report)
            if name:
                known[name] = known.get(name, 0) + 1
                continue
            ours += 1
            print(f"--- {path}")
            print(report[:6000])
    for name, n in known.items():
        print(f"asan: {n} known report(s): {name}")
    if ours:
        print(f"asan: {ours} report(s) in BlkKin's programs")
    return 1 if ours else 0


if __name__ == "__main__":
    sys.exit(main())
