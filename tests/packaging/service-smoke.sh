#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Run inside the clean root with the packages installed (test_packages.py),
# in private namespaces: what systemd would start, started by hand the way
# the units say, with the packaged configuration:
#   lttng-sessiond (lttng-tools' unit), lttng-relayd (the command line of
#   blkin-lttng-relayd.service), blkin-hostd (blkin-hostd.service's), then a
#   QEMU with a disk behind the packaged filter doing I/O.
# Prints "key value" lines the test checks; every daemon ends with the
# namespace.
set -u
unit() { sed -n "s/^$2=//p" "/lib/systemd/system/$1"; }
wait_for() { # seconds, command...
    local n=$(($1 * 10)); shift
    while [ $n -gt 0 ]; do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; n=$((n - 1)); done
    return 1
}

lttng-sessiond --daemonize >/dev/null 2>&1
wait_for 20 lttng list && echo "sessiond up"

# blkin-lttng-relayd.service: its Environment and ExecStart, as systemd
# would expand them (STATE_DIRECTORY from StateDirectory=).
eval "$(unit blkin-lttng-relayd.service Environment | grep '^"BLKIN_RELAYD_ARGS=' | sed 's/^"\(.*\)"$/export \1/; s/=\(.*\)$/="\1"/')"
export STATE_DIRECTORY=/var/lib/$(unit blkin-lttng-relayd.service StateDirectory)
mkdir -p "$STATE_DIRECTORY"
relayd=$(unit blkin-lttng-relayd.service ExecStart)
relayd=${relayd//\$\{STATE_DIRECTORY\}/$STATE_DIRECTORY}
relayd=${relayd//\$BLKIN_RELAYD_ARGS/$BLKIN_RELAYD_ARGS}
echo "relayd-cmd $relayd"
LTTNG_HOME=/run/blkin-relayd-home $relayd >/tmp/relayd.log 2>&1 &
wait_for 20 bash -c 'exec 3<>/dev/tcp/127.0.0.1/5344' && echo "relayd up"

# blkin-hostd.service: RuntimeDirectory= and StateDirectory= first.
mkdir -p /run/$(unit blkin-hostd.service RuntimeDirectory) /var/lib/$(unit blkin-hostd.service StateDirectory)
hostd=$(unit blkin-hostd.service ExecStart)
echo "hostd-cmd $hostd"
$hostd >/tmp/hostd.log 2>&1 &
wait_for 20 blkin status && echo "hostd up"

# A traced QEMU: the filter on a null disk, reading through HMP's qemu-io.
preload=$(ls /usr/lib/*/blkin/libblkin-preload.so)
mkfifo /tmp/qmon
(for i in $(seq 1 150); do echo "qemu-io d0 \"read 0 4k\""; sleep 0.2; done; echo quit) >/tmp/qmon &
LD_PRELOAD=$preload qemu-system-x86_64 -machine none -nodefaults -display none -monitor stdio \
    -drive 'if=none,id=d0,file=json:{"driver":"blkin",,"id":"smoke/vda",,"file":{"driver":"null-co",,"size":1048576}}' \
    </tmp/qmon >/tmp/qemu.log 2>&1 &

connected() { blkin status --json 2>/dev/null | grep -q '"state" *: *"connected"'; }
events() { blkin status --json 2>/dev/null | grep -qE '"events" *: *[1-9]'; }
wait_for 30 connected && echo "trace connected"
wait_for 30 events
echo "status $(blkin status --json | tr -d '\n')"
echo "session $(blkin-lttng-session status)"
echo "lttng-list $(lttng list blkin | tr '\n' ' ')"
echo "log-lines $(grep -c . /tmp/hostd.log)"
sed 's/^/hostd-log /' /tmp/hostd.log
