#!/usr/bin/env bash
# README command 2: set up (idempotent) and run the whole test suite.
# Ends with the line 'N passed, N failed[, N skipped]'.
# Extra arguments go to 'meson test' (e.g. a test name to run one alone).
set -uo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
build=${BLKIN_BUILD:-$top/build}

bash "$top/scripts/setup.sh" || { echo "0 passed, 1 failed"; exit 1; }

# meson runs tests in parallel; the heavy ones (VM boots) declare is_parallel:false.
meson test -C "$build" --print-errorlogs --num-processes 2 "$@"
rc=$?

python3 - "$build/meson-logs/testlog.json" <<'PY'
import json, sys
passed = failed = skipped = 0
try:
    with open(sys.argv[1]) as f:
        for line in f:
            r = json.loads(line).get("result")
            if r in ("OK", "EXPECTEDFAIL"):
                passed += 1
            elif r == "SKIP":
                skipped += 1
            else:
                failed += 1
except FileNotFoundError:
    failed = 1
print(f"{passed} passed, {failed} failed" + (f", {skipped} skipped" if skipped else ""))
PY
exit $rc
