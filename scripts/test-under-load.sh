#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# The test suite under load: runs scripts/test.sh N times in a row (default
# 3) while stress-ng keeps every core busy (one CPU hog per core, at the
# suite's own priority), to find tests whose timing assumptions fail on a
# loaded machine. Not part of .ci/run (it takes N times the suite).
#
#   scripts/test-under-load.sh [-n N] [ARGS...]
#
# ARGS go to scripts/test.sh (test names: stage 1 only, those tests);
# BLKIN_TEST_STAGES picks stages as there. Prints each run's
# 'N passed, N failed' and a summary; exits non-zero if any run failed.
# Each run's full output is kept in $BLKIN_LOAD_LOGS (default
# ./build/load-runs/). The hog is started and stopped by its pid here;
# stress-ng is installed with apt-get if missing.
set -uo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
runs=${BLKIN_LOAD_RUNS:-3}
if [ "${1:-}" = -n ]; then
    runs=${2:?-n needs a number}
    shift 2
fi
case $runs in '' | *[!0-9]* | 0)
    echo "test-under-load: -n wants a positive number, not '$runs'" >&2
    exit 2
    ;;
esac
logs=${BLKIN_LOAD_LOGS:-${BLKIN_BUILD:-$top/build}/load-runs}
mkdir -p "$logs"

if ! command -v stress-ng >/dev/null; then
    echo "test-under-load: installing stress-ng" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends stress-ng \
        >/dev/null || { echo "test-under-load: cannot install stress-ng" >&2; exit 1; }
fi

cpus=$(nproc)
hog=
stop_hog() {
    [ -n "$hog" ] || return 0
    # Its own process group (setsid): the workers go with it.
    kill -TERM -- "-$hog" 2>/dev/null
    for _ in $(seq 50); do
        kill -0 "$hog" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL -- "-$hog" 2>/dev/null
    wait "$hog" 2>/dev/null
    hog=
}
trap stop_hog EXIT
trap 'exit 130' INT TERM

# The suite itself sets the machine up first (scripts/setup.sh); do it
# before the hog starts so that a first build does not count as a run.
bash "$top/scripts/setup.sh" || exit 1

# --timeout: should this script die without its trap, the hog still ends.
setsid stress-ng --cpu "$cpus" --cpu-method all --timeout 12h >"$logs/stress-ng.log" 2>&1 &
hog=$!
sleep 1
if ! kill -0 "$hog" 2>/dev/null; then
    echo "test-under-load: stress-ng did not start: $(cat "$logs/stress-ng.log")" >&2
    exit 1
fi
echo "test-under-load: $runs run(s) of scripts/test.sh${*:+ $*} with stress-ng --cpu $cpus (pid $hog)"

failed_runs=0 total_p=0 total_f=0 total_s=0
for i in $(seq "$runs"); do
    t0=$(date +%s)
    log=$logs/run-$i.log
    bash "$top/scripts/test.sh" "$@" >"$log" 2>&1
    rc=$?
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -1)
    [ -n "$line" ] || line="0 passed, 1 failed"
    read -r p f s < <(sed -E 's/^([0-9]+) passed, ([0-9]+) failed(, ([0-9]+) skipped)?.*/\1 \2 \4/' <<<"$line")
    s=${s:-0}
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        f=1 line="$line (but scripts/test.sh exited $rc)"
    fi
    total_p=$((total_p + p)) total_f=$((total_f + f)) total_s=$((total_s + s))
    [ "$f" -eq 0 ] || failed_runs=$((failed_runs + 1))
    echo "run $i/$runs: $line ($(($(date +%s) - t0)) s, log $log)"
    # Which tests failed, from the log's meson summary lines.
    grep -E '^ *[0-9]+/[0-9]+ .* (FAIL|ERROR|TIMEOUT) ' "$log" | sort -u | sed 's/^/    /'
    grep -E '^fuzz-.*: (FAILED|build failed)' "$log" | sed 's/^/    /'
done
stop_hog

skipped=
[ "$total_s" -eq 0 ] || skipped=", $total_s skipped"
echo "test-under-load: $runs run(s), $failed_runs with failures; in all: $total_p passed, $total_f failed$skipped"
[ "$failed_runs" -eq 0 ]
