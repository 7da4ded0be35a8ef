#!/usr/bin/env bash
# README command 1: set up (idempotent), then trace a demo VM end to end and
# print its per-disk latency report (scripts/demo.py). Leaves nothing running.
# Extra arguments go to demo.py (--json, --html FILE, --count N, --keep DIR).
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
bash "$top/scripts/setup.sh"

started_sessiond=
if ! lttng list >/dev/null 2>&1; then
    started_sessiond=1
fi
stop_sessiond() {
    # Only a session daemon this script caused to start is stopped.
    if [ -n "$started_sessiond" ]; then
        pkill -x lttng-sessiond 2>/dev/null || true
    fi
}
trap stop_sessiond EXIT
BLKIN_SOURCE_ROOT=$top BLKIN_BUILD_ROOT=${BLKIN_BUILD:-$top/build} \
    python3 "$top/scripts/demo.py" "$@"
