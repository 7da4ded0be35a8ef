#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# README command 1: set up (idempotent), then trace a demo VM end to end and
# print its per-disk latency report (scripts/demo.py). Leaves nothing running.
# Extra arguments go to demo.py (--json, --html FILE, --count N, --keep DIR).
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
bash "$top/scripts/setup.sh"

# The demo starts no LTTng daemon here. demo.py moves itself into a private
# mount namespace (tests/lib/node.py: isolate) before it starts any, so its
# lttng-sessiond, consumerd and relayd are its own, invisible to the
# machine's; they are stopped by pid when it ends (the namespace's processes,
# HostStack.relayd), never by name, so a session daemon someone else runs on
# this machine is not touched.
BLKIN_SOURCE_ROOT=$top BLKIN_BUILD_ROOT=${BLKIN_BUILD:-$top/build} \
    python3 "$top/scripts/demo.py" "$@"
