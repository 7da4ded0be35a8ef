# SPDX-License-Identifier: GPL-2.0-or-later
"""Minimal TAP producer for the project's Python tests (meson test, protocol: 'tap').

Usage:
    t = Tap()
    t.ok(cond, "what a user would check", detail="shown on failure")
    t.eq(got, want, "name")
    t.done()            # prints the plan, exits 1 if anything failed

Diagnostics go to stdout as '# ...' lines so they land in meson's test log.
A failure and its detail also go to stderr, which 'meson test
--print-errorlogs' shows (it does not show a TAP test's stdout).
"""
import signal
import sys
import traceback

# A test stopped from outside (meson's timeout or an interrupted run sends
# SIGTERM) unwinds like an exception: its `finally` blocks and context
# managers stop the daemons and VMs it started instead of leaving them.
if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


class Tap:
    def __init__(self):
        self.n = 0
        self.failed = 0
        sys.stdout.reconfigure(line_buffering=True)

    def diag(self, msg):
        for line in str(msg).splitlines() or [""]:
            print("# " + line)

    def ok(self, cond, name, detail=None):
        self.n += 1
        if cond:
            print(f"ok {self.n} - {name}")
        else:
            self.failed += 1
            print(f"not ok {self.n} - {name}")
            print(f"not ok {self.n} - {name}", file=sys.stderr)
            if detail is not None:
                self.diag(detail)
                print(detail, file=sys.stderr)
        return bool(cond)

    def eq(self, got, want, name):
        return self.ok(got == want, name, detail=f"got:  {got!r}\nwant: {want!r}")

    def skip(self, name, why):
        self.n += 1
        print(f"ok {self.n} - {name} # SKIP {why}")

    def run(self, fn, *args):
        """Runs one test function; an exception fails it instead of the file."""
        try:
            fn(self, *args)
        except Exception:  # noqa: BLE001 - report every failure as TAP
            self.ok(False, f"{fn.__name__} raised", detail=traceback.format_exc())

    def done(self):
        print(f"1..{self.n}")
        sys.exit(1 if self.failed or self.n == 0 else 0)
