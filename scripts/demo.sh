#!/usr/bin/env bash
# README command 1 (until hostd lands): set up, then trace real QEMU I/O through
# two stacked blkin filters (above and below qcow2) with a real LTTng session,
# and print per-disk, per-op latencies and where the time went (QEMU's qcow2
# layer versus the file below). Leaves nothing running that it started.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
build=${BLKIN_BUILD:-$top/build}
bash "$top/scripts/setup.sh"

work=$(mktemp -d /tmp/blkin-demo.XXXXXX)
session=blkin-demo-$$
started_sessiond=
cleanup() {
    lttng destroy "$session" >/dev/null 2>&1 || true
    if [ -n "$started_sessiond" ]; then
        pkill -x lttng-sessiond 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

if ! lttng list >/dev/null 2>&1; then
    lttng-sessiond --daemonize
    started_sessiond=1
fi
lttng create "$session" --output="$work/trace" >/dev/null
"$top/scripts/blkin-lttng-channel" "$session"
lttng enable-event --session="$session" -u -c blkin 'blkin_qemu:*' >/dev/null
lttng start "$session" >/dev/null

qemu-img create -q -f qcow2 "$work/disk.qcow2" 256M
disk() { # $1 = id of the top filter
    printf 'json:{"driver":"blkin","id":"%s","file":{"driver":"qcow2","file":{"driver":"blkin","id":"%s/file","file":{"driver":"file","filename":"%s","aio":"threads","cache":{"direct":true}}}}}' \
        "$1" "$1" "$work/disk.qcow2"
}
export LD_PRELOAD=$build/qemu-filter/libblkin-preload.so
echo "demo: writing and reading a qcow2 disk through blkin (queue depth 16) ..." >&2
timeout 300 qemu-img bench -w -c 20000 -d 16 -s 65536 -S 131072 "$(disk demo/vda)" >/dev/null
timeout 300 qemu-img bench -c 40000 -d 16 -s 4096 -S 12288 "$(disk demo/vda)" >/dev/null
timeout 300 qemu-io -c 'write -P 0x5a 0 1M' -c 'flush' -c 'read -P 0x5a 0 1M' -c 'discard 0 1M' \
    "$(disk demo/vda)" >/dev/null
unset LD_PRELOAD
lttng stop "$session" >/dev/null

python3 "$top/scripts/trace-summary.py" "$work/trace"
