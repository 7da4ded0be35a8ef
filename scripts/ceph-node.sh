#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# A one-node Ceph cluster for BlkKin's tests and demo (docs/backend-ceph.md):
# one monitor and one OSD (BlueStore on a file, so the data outlives an OSD
# restart), no manager, no authentication, everything on 127.0.0.1 and every
# bit of state in one directory. Debian 12's Ceph 16.2 (pacific), started
# without systemd.
#
#   ceph-node.sh start DIR      a fresh cluster in DIR (anything there goes),
#                               with pool $POOL and image $IMAGE ($SIZE_MB MiB);
#                               prints `export CEPH_CONF=DIR/ceph.conf`
#   ceph-node.sh stop DIR       stops its daemons, waits until they are gone
#                               and removes the cluster's state (logs stay
#                               in DIR/log)
#   ceph-node.sh osd-kill DIR   SIGKILL the OSD (a crash; fault tests)
#   ceph-node.sh osd-start DIR  start the OSD again on the same store
#
# Environment: POOL (rbd), IMAGE (vm0), SIZE_MB (256), STORE (bluestore or
# memstore), LIFETIME (seconds each daemon may live at most, under
# `timeout`; 3600). Ports: the monitor takes two free loopback ports; the OSD
# binds free ones itself. DIR/node.env records them and the admin sockets.
#
# Every daemon runs under `timeout` in its own session; pid files are in
# DIR/run (*.pid: the daemon, *.wrap: its timeout). `stop` signals those pids
# only and fails if one survives SIGKILL.
set -euo pipefail

usage() {
    echo "usage: $0 start|stop|osd-kill|osd-start DIR" >&2
    exit 2
}
[ $# -eq 2 ] || usage
cmd=$1
D=$(realpath -m "$2")
POOL=${POOL:-rbd}
IMAGE=${IMAGE:-vm0}
SIZE_MB=${SIZE_MB:-256}
STORE=${STORE:-bluestore}
LIFETIME=${LIFETIME:-3600}
export CEPH_CONF=$D/ceph.conf

log() { printf 'ceph-node: %s\n' "$*" >&2; }
die() {
    log "$*"
    exit 1
}

need_packages() {
    local missing=() tool pkg
    for tool in ceph-mon:ceph-mon ceph-osd:ceph-osd ceph:ceph-common rados:ceph-common \
        rbd:ceph-common monmaptool:ceph-base; do
        pkg=${tool#*:}
        command -v "${tool%%:*}" >/dev/null 2>&1 || missing+=("$pkg")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
        die "missing Debian packages: ${missing[*]}. Install them with" \
            "'apt-get install --no-install-recommends ceph-mon ceph-osd ceph-common'" \
            "(scripts/setup.sh does, from deps/75-ceph.list)."
    fi
}

# Two free loopback TCP ports, held until the monitor binds them.
free_ports() {
    python3 - <<'PY'
import socket
ss = []
for _ in range(2):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    ss.append(s)
print(*(s.getsockname()[1] for s in ss))
PY
}

alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null; }

# Starts ceph daemon NAME (mon.a, osd.0) in the foreground under timeout, in
# a session of its own, and records the wrapper's pid.
spawn() {
    local name=$1
    shift
    rm -f "$D/run/$name.pid"
    setsid timeout -k 10 "$LIFETIME" "$@" -f </dev/null >>"$D/log/$name.out" 2>&1 &
    echo $! >"$D/run/$name.wrap"
}

# The daemon's own pid (its pid file), waiting for it up to 10 s.
daemon_pid() {
    local name=$1 i
    for i in $(seq 100); do
        if [ -s "$D/run/$name.pid" ]; then
            cat "$D/run/$name.pid"
            return 0
        fi
        alive "$(cat "$D/run/$name.wrap" 2>/dev/null)" || break
        sleep 0.1
    done
    return 1
}

# Stops daemon NAME: SIGTERM (timeout passes it on), then SIGKILL after
# @grace seconds. Fails when something survives.
stop_daemon() {
    local name=$1 grace=${2:-10} pid wrap i
    pid=$(cat "$D/run/$name.pid" 2>/dev/null || true)
    wrap=$(cat "$D/run/$name.wrap" 2>/dev/null || true)
    for p in $pid $wrap; do alive "$p" && kill -TERM "$p" 2>/dev/null || true; done
    for i in $(seq $((grace * 10))); do
        alive "$pid" || alive "$wrap" || break
        sleep 0.1
    done
    for p in $pid $wrap; do alive "$p" && kill -KILL "$p" 2>/dev/null || true; done
    for i in $(seq 50); do
        alive "$pid" || alive "$wrap" || break
        sleep 0.1
    done
    if alive "$pid" || alive "$wrap"; then
        log "$name (pid $pid, wrapper $wrap) survived SIGKILL"
        return 1
    fi
    rm -f "$D/run/$name.pid" "$D/run/$name.wrap" "$D/run/$name.asok"
}

wait_for() { # wait_for SECONDS DESCRIPTION COMMAND...
    local secs=$1 what=$2 end
    shift 2
    end=$((SECONDS + secs))
    until "$@" >/dev/null 2>&1; do
        [ $SECONDS -lt $end ] || die "$what: not within $secs s (logs in $D/log)"
        sleep 0.2
    done
}

# The epoch osd.0 last came up in (0: down or not there).
osd_up_from() {
    timeout 10 ceph osd dump -f json 2>/dev/null | python3 -c '
import json, sys
o = [o for o in json.load(sys.stdin)["osds"] if o["osd"] == 0]
print(o[0]["up_from"] if o and o[0]["up"] else 0)' 2>/dev/null || echo 0
}

# Up in a map after @1: this process booted (a killed OSD stays "up" in the
# map until the monitor hears otherwise).
osd_up_after() { [ "$(osd_up_from)" -gt "$1" ]; }

start_osd() {
    local before
    before=$(osd_up_from)
    spawn osd.0 ceph-osd -i 0
    daemon_pid osd.0 >/dev/null || die "ceph-osd did not start (see $D/log/osd.0.log, osd.0.out)"
    wait_for 120 "the OSD comes up" osd_up_after "$before"
}

cmd_start() {
    local t0 ports v2 v1 fsid uuid id
    need_packages
    t0=$(date +%s.%N)
    [ -e "$D" ] && [ -n "$(ls -A "$D" 2>/dev/null)" ] && cmd_stop >/dev/null 2>&1 || true
    rm -rf "$D"
    mkdir -p "$D"/{run,log,mon.a,osd.0}
    read -r v2 v1 < <(free_ports)
    fsid=$(cat /proc/sys/kernel/random/uuid)

    # auth none: no keyrings anywhere; pools of size 1; loopback only.
    cat >"$CEPH_CONF" <<EOF
[global]
fsid = $fsid
mon_host = [v2:127.0.0.1:$v2,v1:127.0.0.1:$v1]
public_addr = 127.0.0.1
auth_cluster_required = none
auth_service_required = none
auth_client_required = none
ms_bind_ipv6 = false
osd_pool_default_size = 1
osd_pool_default_min_size = 1
osd_pool_default_pg_num = 8
osd_pool_default_pgp_num = 8
osd_pool_default_pg_autoscale_mode = off
osd_crush_chooseleaf_type = 0
mon_allow_pool_size_one = true
mon_allow_pool_delete = true
mon_warn_on_pool_no_redundancy = false
mon_warn_on_insecure_global_id_reclaim_allowed = false
run_dir = $D/run
pid_file = $D/run/\$name.pid
log_file = $D/log/\$name.log
mon_data = $D/mon.\$id
osd_data = $D/osd.\$id
# Clients (rbd, rados, QEMU's librbd) keep no admin socket of their own.
admin_socket =
[mon]
admin_socket = $D/run/\$name.asok
mon_data_avail_warn = 1
mon_data_avail_crit = 0
[osd]
admin_socket = $D/run/\$name.asok
osd_objectstore = $STORE
memstore_device_bytes = 1073741824
bluestore_block_size = 8589934592
bluestore_block_create = true
bluestore_fsck_on_mkfs = false
osd_memory_target = 939524096
bluestore_cache_autotune = false
bluestore_cache_size = 134217728
osd_op_num_shards = 1
osd_op_num_threads_per_shard = 2
EOF
    cat >"$D/node.env" <<EOF
CEPH_CONF=$CEPH_CONF
MON_PORTS="$v2 $v1"
POOL=$POOL
IMAGE=$IMAGE
OSD_ASOK=$D/run/osd.0.asok
EOF

    monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$v2,v1:127.0.0.1:$v1]" \
        "$D/monmap" >/dev/null
    ceph-mon --mkfs -i a --monmap "$D/monmap" >>"$D/log/mkfs.log" 2>&1 ||
        die "ceph-mon --mkfs failed (see $D/log/mkfs.log)"
    spawn mon.a ceph-mon -i a
    daemon_pid mon.a >/dev/null || die "ceph-mon did not start (see $D/log/mon.a.log)"
    wait_for 30 "the monitor answers" timeout 5 ceph -s --connect-timeout 2

    uuid=$(cat /proc/sys/kernel/random/uuid)
    id=$(timeout 30 ceph osd new "$uuid")
    [ "$id" = 0 ] || die "ceph osd new gave id '$id', expected 0"
    timeout 120 ceph-osd -i 0 --mkfs --osd-uuid "$uuid" >>"$D/log/mkfs.log" 2>&1 ||
        die "ceph-osd --mkfs failed (see $D/log/mkfs.log)"
    start_osd

    timeout 30 ceph osd pool create "$POOL" 8 8 >/dev/null 2>&1 || die "cannot create pool $POOL"
    timeout 30 rbd pool init "$POOL" || die "rbd pool init $POOL failed"
    # Without a manager PG states are never reported: a real write tells
    # when the pool serves I/O.
    wait_for 60 "the pool serves I/O" timeout 5 rados -p "$POOL" put probe "$CEPH_CONF"
    timeout 30 rados -p "$POOL" rm probe
    timeout 30 rbd create --size "$SIZE_MB" "$POOL/$IMAGE" || die "rbd create $POOL/$IMAGE failed"
    log "up in $(python3 -c "import sys,time; print(f'{time.time()-float(sys.argv[1]):.1f}')" "$t0") s:" \
        "mon 127.0.0.1:$v2, osd.0 ($STORE), image $POOL/$IMAGE (${SIZE_MB} MiB)"
    echo "export CEPH_CONF=$CEPH_CONF"
}

cmd_stop() {
    local rc=0 name
    [ -d "$D/run" ] || return 0
    # The OSD first, so that it does not wait for a monitor that is gone.
    for name in osd.0 mon.a; do
        stop_daemon "$name" 10 || rc=1
    done
    rm -rf "$D/mon.a" "$D/osd.0" "$D/monmap" "$D/run"
    return $rc
}

case $cmd in
start) cmd_start ;;
stop) cmd_stop ;;
osd-kill)
    pid=$(cat "$D/run/osd.0.pid" 2>/dev/null) || die "no OSD pid file in $D/run"
    kill -KILL "$pid"
    for _ in $(seq 50); do alive "$pid" || break; sleep 0.1; done
    stop_daemon osd.0 2
    ;;
osd-start)
    [ -f "$CEPH_CONF" ] || die "no cluster in $D"
    start_osd
    ;;
*) usage ;;
esac
