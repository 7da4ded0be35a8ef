#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# ganeti-node.sh: a Ganeti 3.0 cluster (Debian 12's ganeti) of one node, or
# two, on one machine without systemd or KVM, for BlkKin's tests and for
# trying BlkKin on Ganeti by hand (docs/ganeti.md, "The test cluster").
#
#   ganeti-node.sh start DIR [--nodes 1|2] [--kernel FILE --initrd FILE]
#   ganeti-node.sh exec DIR [--node N] COMMAND...   COMMAND on node N (1: master)
#   ganeti-node.sh stop DIR
#
# Each node is a set of namespaces held by one process (DIR/nodeN/holder.pid):
# - network: the node's address 10.213.0.N/24 on gnt0, one end of a veth pair
#   (this machine's kernel has no dummy interfaces): with one node its peer
#   stays in the node, with two it is the other node's gnt0. The node name
#   then resolves to an address that is not loopback, as `gnt-cluster init`
#   requires; the cluster's master IP (10.213.0.100) goes on the master's
#   gnt0;
# - UTS: the node's host name (nodeN.blkin.test);
# - mount: the node's own copies of what Ganeti, ssh and LTTng keep at fixed
#   paths, so nothing of the machine's is changed: DIR/nodeN/etc on /etc (a
#   copy of the machine's, with the node's /etc/hosts, ssh host keys,
#   /etc/ganeti and /etc/blkin), DIR/nodeN/run on /run (Ganeti's, sshd's and
#   LTTng's run directories, and no /run/systemd: daemon-util then starts the
#   daemons itself), DIR/nodeN/lib-ganeti on /var/lib/ganeti,
#   DIR/nodeN/log-ganeti on /var/log/ganeti, DIR/nodeN/ssh on /root/.ssh
#   (root's keys: the cluster's ssh keys), a tmpfs on /dev/shm, and DIR/srv on
#   /srv, the same for every node: the OS definition and the file storage
#   directories (for the sharedfile template, storage both nodes see).
# In there it starts each node's sshd (on the node's address) and
# lttng-sessiond, runs `gnt-cluster init` on node 1 with the kvm hypervisor
# (kvm_path = BlkKin's wrapper, TCG) and the sharedfile and file disk
# templates, and `gnt-node add` for node 2; Ganeti starts its daemons with
# its own daemon-util. The OS definition blkin-test (tests/ganeti/os/) boots
# the project's test guest (tests/ganeti/guest_image.py, or --kernel/--initrd).
#
# `stop` stops the instances' QEMUs (Ganeti's pid files), Ganeti's daemons
# (daemon-util stop-all, by pid file), sshd and lttng-sessiond (pid files),
# then kills by pid whatever else still runs in a node's namespaces (and says
# so: nothing should), and last the holders; the mounts go with the
# namespaces. DIR stays (logs, configuration, keys) for the caller to read or
# remove.
#
# Environment: BLKIN_BUILD (default ./build), BLKIN_CACHE.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
build=${BLKIN_BUILD:-$top/build}

NET=10.213.0
CLUSTER=cluster.blkin.test
CLUSTER_IP=$NET.100
NETDEV=gnt0
OS_NAME=blkin-test
# A node's daemons and commands see a plain root environment, as under init.
NODE_ENV=(env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
    HOME=/root LANG=C.UTF-8 LC_ALL=C.UTF-8 TERM=dumb)

log() { printf 'ganeti-node: %s\n' "$*" >&2; }
die() {
    log "$*"
    exit 1
}

usage() {
    sed -n 's/^#   //p' "$0" >&2
    exit 2
}

node_name() { echo "node$1.blkin.test"; }
node_ip() { echo "$NET.$1"; }

# holder NODEDIR: the pid holding a node's namespaces, if it is alive.
holder() {
    local pid
    pid=$(cat "$1/holder.pid" 2>/dev/null) || return 1
    [ -n "$pid" ] && [ -e "/proc/$pid" ] || return 1
    # A reused pid is not ours: the holder's mount namespace is not ours.
    [ "$(readlink "/proc/$pid/ns/mnt")" != "$(readlink /proc/self/ns/mnt)" ] || return 1
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = sleep ] || return 1
    echo "$pid"
}

# in_node NODEDIR COMMAND...: COMMAND in the node, with a plain environment.
in_node() {
    local nd=$1 pid
    shift
    pid=$(holder "$nd") || die "no node running in $nd"
    nsenter --target="$pid" --net --mount --uts --wd=/ -- "${NODE_ENV[@]}" "$@"
}

# pids_in_node HOLDER: every process (but the holder) in its mount or
# network namespace, except this script and its ancestors.
pids_in_node() {
    local holder=$1 mnt net p skip
    mnt=$(readlink "/proc/$holder/ns/mnt")
    net=$(readlink "/proc/$holder/ns/net")
    skip=" $holder "
    p=$$
    while [ "$p" -gt 1 ]; do
        skip="$skip$p "
        p=$(awk '{print $4}' "/proc/$p/stat" 2>/dev/null) || break
    done
    for d in /proc/[0-9]*; do
        p=${d#/proc/}
        case "$skip" in *" $p "*) continue ;; esac
        if [ "$(readlink "$d/ns/mnt" 2>/dev/null)" = "$mnt" ] ||
            [ "$(readlink "$d/ns/net" 2>/dev/null)" = "$net" ]; then
            # Zombies are their parent's to reap.
            [ "$(awk '{print $3}' "$d/stat" 2>/dev/null)" = Z ] && continue
            echo "$p"
        fi
    done
}

# kill_pids SECONDS PID...: SIGTERM, then SIGKILL to those left after SECONDS.
kill_pids() {
    local wait=$1 p i left
    shift
    [ $# -gt 0 ] || return 0
    kill -TERM "$@" 2>/dev/null || true
    for ((i = 0; i < wait * 10; i++)); do
        left=()
        for p in "$@"; do
            if [ -e "/proc/$p" ] && [ "$(awk '{print $3}' "/proc/$p/stat" 2>/dev/null)" != Z ]; then
                left+=("$p")
            fi
        done
        [ ${#left[@]} -gt 0 ] || return 0
        sleep 0.1
    done
    log "SIGKILL to ${left[*]} (still there after ${wait}s)"
    kill -KILL "${left[@]}" 2>/dev/null || true
}

nodes_of() { # DIR: the node numbers set up in DIR
    local nd
    for nd in "$1"/node[0-9]; do
        [ -d "$nd" ] && echo "${nd##*/node}"
    done
}

# -- start -----------------------------------------------------------------

# The storage and OS definition every node shares (DIR/srv).
prepare_srv() {
    local dir=$1 kernel=$2 initrd=$3 osdir
    mkdir -p "$dir/srv/ganeti/file-storage" "$dir/srv/ganeti/shared-file-storage"
    osdir=$dir/srv/ganeti/os/$OS_NAME
    mkdir -p "$osdir/image"
    for s in create export import rename verify; do
        install -m 755 "$top/tests/ganeti/os/blkin-test-os.sh" "$osdir/$s"
    done
    echo 20 >"$osdir/ganeti_api_version"
    : >"$osdir/parameters.list"
    if [ -n "$kernel" ]; then
        ln -s "$(readlink -f "$kernel")" "$osdir/image/vmlinux"
        cp "$initrd" "$osdir/image/initramfs.cpio"
    else
        BLKIN_BUILD_ROOT=$build PYTHONDONTWRITEBYTECODE=1 \
            python3 "$top/tests/ganeti/guest_image.py" "$osdir/image" >/dev/null
    fi
}

# A node's own files, before its namespaces exist.
prepare_node() {
    local nd=$1 n=$2 nodes=$3 i h
    mkdir "$nd"
    # /etc: the machine's, then the node's own names, keys and settings.
    mkdir "$nd/etc"
    cp -a /etc/. "$nd/etc/"
    {
        echo "127.0.0.1 localhost"
        for ((i = 1; i <= nodes; i++)); do
            echo "$(node_ip "$i") $(node_name "$i") node$i"
        done
        echo "$CLUSTER_IP $CLUSTER ${CLUSTER%%.*}"
    } >"$nd/etc/hosts"
    node_name "$n" >"$nd/etc/hostname"
    # The node's own ssh host keys, not copies of the machine's (Ganeti
    # replaces them with the master's when a node joins).
    rm -f "$nd"/etc/ssh/ssh_host_*
    ssh-keygen -q -A -f "$nd" >/dev/null
    # Ganeti: the file storage directories it may use, and blkin's hook
    # after every operation that (re)starts an instance's QEMU.
    printf '/srv/ganeti/file-storage\n/srv/ganeti/shared-file-storage\n' \
        >"$nd/etc/ganeti/file-storage-paths"
    for h in instance-start instance-reboot instance-add instance-migrate instance-failover \
        instance-move; do
        mkdir -p "$nd/etc/ganeti/hooks/$h-post.d"
        ln -s "$build/ganeti/blkin-ganeti-hook" "$nd/etc/ganeti/hooks/$h-post.d/50-blkin"
    done
    # blkin's Ganeti settings (ganeti/ganeti.conf.example), pointing at the
    # build tree instead of an installation.
    mkdir -p "$nd/etc/blkin"
    cat >"$nd/etc/blkin/ganeti.conf" <<EOF
# Written by scripts/ganeti-node.sh for its test nodes: the build tree's
# programs instead of installed ones.
BLKIN_INSTANCES=all
BLKIN_SAMPLE=
BLKIN_KVM=/usr/bin/kvm
BLKIN_PRELOAD=$build/qemu-filter/libblkin-preload.so
BLKIN_AGENT_DIR=/run/blkin-ganeti
BLKIN_LIVE=$build/live/blkin-live
BLKIN_GANETI_TOOL=$build/ganeti/blkin-ganeti
EOF
    mkdir -p "$nd/run/lock" "$nd/run/sshd" "$nd/lib-ganeti" "$nd/log-ganeti"
    chmod 1777 "$nd/run/lock"
    chmod 755 "$nd/run/sshd"
    install -d -m 700 "$nd/ssh"
}

# A node's namespaces and mounts; waits until its holder is up.
start_holder() {
    local dir=$1 n=$2 nd=$1/node$2 i
    # The mount points: a fresh machine may have no /root/.ssh (nothing has
    # run ssh-keygen there); an empty directory where it belongs is all
    # this leaves on the machine itself.
    [ -d /root/.ssh ] || install -d -m 700 /root/.ssh
    mkdir -p /var/lib/ganeti /var/log/ganeti /srv
    # unshare without --fork becomes the sh that becomes sleep: one pid
    # throughout, in a session of its own (away from the caller's signals).
    setsid -f unshare --net --mount --uts --propagation private -- sh -c '
        set -e
        mount --bind "$1/etc" /etc
        mount --bind "$1/run" /run
        mount --bind "$1/lib-ganeti" /var/lib/ganeti
        mount --bind "$1/log-ganeti" /var/log/ganeti
        mount --bind "$1/ssh" /root/.ssh
        mount --bind "$2" /srv
        mount -t tmpfs -o mode=1777 tmpfs /dev/shm
        hostname "$3"
        ip link set lo up
        echo $$ >"$1/holder.pid"
        exec sleep infinity
    ' sh "$nd" "$dir/srv" "$(node_name "$n")" </dev/null >"$nd/holder.log" 2>&1
    for ((i = 0; i < 100; i++)); do
        holder "$nd" >/dev/null && return 0
        sleep 0.1
    done
    cat "$nd/holder.log" >&2
    die "node $n's namespaces did not come up"
}

# The nodes' network: gnt0 in each, linked to the other node's (or, alone,
# to a peer in its own namespace).
link_nodes() {
    local dir=$1 nodes=$2 n
    if [ "$nodes" = 1 ]; then
        in_node "$dir/node1" ip link add "$NETDEV" type veth peer name "$NETDEV-peer"
        in_node "$dir/node1" ip link set "$NETDEV-peer" up
    else
        in_node "$dir/node1" ip link add "$NETDEV" type veth peer name "$NETDEV" \
            netns "$(holder "$dir/node2")"
    fi
    for ((n = 1; n <= nodes; n++)); do
        in_node "$dir/node$n" ip addr add "$(node_ip "$n")/24" dev "$NETDEV"
        in_node "$dir/node$n" ip link set "$NETDEV" up
    done
}

# A node's own daemons, before Ganeti's: sshd and LTTng's session daemon.
start_node_daemons() {
    local nd=$1 n=$2
    in_node "$nd" /usr/sbin/sshd -o "ListenAddress=$(node_ip "$n")" -o PidFile=/run/sshd.pid
    in_node "$nd" lttng-sessiond --daemonize >/dev/null 2>&1
}

cluster_init() {
    local dir=$1 osdir=/srv/ganeti/os/$OS_NAME/image i
    # The kvm hypervisor's parameters for TCG and the test guest
    # (docs/ganeti.md, "The test cluster"): with kvm_flag=disabled Ganeti 3.0
    # adds nothing when QEMU has -machine, and QEMU named kvm defaults to KVM,
    # so kvm_extra asks for TCG; root_path must be set when kernel_path is
    # (the initramfs runs /init and never mounts it); under TCG a live
    # migration at Ganeti's default 32 MiB/s left the guest hung on the
    # destination in most runs (QEMU 7.2, with or without blkin), one at
    # full speed never did, hence migration_bandwidth.
    local hv=(
        "kvm_path=$build/ganeti/blkin-kvm"
        "kvm_flag=disabled"
        "kvm_extra=-accel tcg"
        "kernel_path=$osdir/vmlinux"
        "initrd_path=$osdir/initramfs.cpio"
        "kernel_args=console=ttyS0 panic=-1 rdinit=/init loglevel=4 tsc=reliable no_timer_check"
        "root_path=/dev/vda"
        "serial_console=true"
        "vnc_bind_address="
        "migration_bandwidth=10000"
    )
    local hvparams
    hvparams=$(
        IFS=,
        echo "${hv[*]}"
    )
    log "gnt-cluster init $CLUSTER (master $(node_name 1), $(node_ip 1))"
    # The instance policy's default bounds want NICs and 1 GiB disks; the test
    # guest has no network and small disks.
    if ! in_node "$dir/node1" timeout 300 gnt-cluster init \
        --enabled-hypervisors=kvm \
        --hypervisor-parameters="kvm:$hvparams" \
        --backend-parameters=maxmem=256M,minmem=256M,vcpus=1 \
        --enabled-disk-templates=sharedfile,file \
        --file-storage-dir=/srv/ganeti/file-storage \
        --shared-file-storage-dir=/srv/ganeti/shared-file-storage \
        --ipolicy-bounds-specs=min:cpu-count=1,disk-count=1,disk-size=16,memory-size=128,nic-count=0,spindle-use=1/max:cpu-count=8,disk-count=16,disk-size=1048576,memory-size=32768,nic-count=8,spindle-use=12 \
        --ipolicy-std-specs=cpu-count=1,disk-count=1,disk-size=64,memory-size=256,nic-count=0,spindle-use=1 \
        --master-netdev="$NETDEV" \
        --nic-parameters=mode=routed,link="$NETDEV" \
        "$CLUSTER" >"$dir/cluster-init.log" 2>&1; then
        cat "$dir/cluster-init.log" >&2
        return 1
    fi
    for ((i = 0; i < 600; i++)); do
        in_node "$dir/node1" timeout 30 gnt-node list --no-headers -o name >/dev/null 2>&1 && break
        sleep 0.1
    done
}

node_add() {
    local dir=$1 n=$2
    # What an administrator does before `gnt-node add`: the master's root
    # key authorized on the new node.
    cat "$dir"/node1/ssh/id_*.pub >>"$dir/node$n/ssh/authorized_keys"
    chmod 600 "$dir/node$n/ssh/authorized_keys"
    log "gnt-node add $(node_name "$n")"
    if ! in_node "$dir/node1" timeout 300 gnt-node add --no-ssh-key-check "$(node_name "$n")" \
        >"$dir/node-add-$n.log" 2>&1; then
        cat "$dir/node-add-$n.log" >&2
        return 1
    fi
}

start() {
    local dir=$1 nodes=$2 kernel=$3 initrd=$4 n
    [ "$(id -u)" = 0 ] || die "must run as root (namespaces, mounts)"
    command -v gnt-cluster >/dev/null || die "Debian's ganeti is not installed (deps/80-live.list)"
    case "$nodes" in 1 | 2) ;; *) die "--nodes: 1 or 2" ;; esac
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    case "$dir/" in
    /etc/* | /run/* | /var/run/* | /srv/* | /var/lib/ganeti/* | /var/log/ganeti/* | /root/.ssh/* | /dev/shm/*)
        die "$dir is under one of the paths a node mounts over; use another directory"
        ;;
    esac
    [ -z "$(ls -A "$dir")" ] || die "$dir is not empty"
    [ -x "$build/ganeti/blkin-kvm" ] || die "$build/ganeti/blkin-kvm not built (scripts/setup.sh)"

    prepare_srv "$dir" "$kernel" "$initrd"
    for ((n = 1; n <= nodes; n++)); do
        prepare_node "$dir/node$n" "$n" "$nodes"
    done
    # Any failure from here on tears the nodes down again.
    teardown_dir=$dir
    trap 'if [ $? -ne 0 ]; then log "start failed; stopping the nodes"; stop "$teardown_dir"; fi' EXIT
    for ((n = 1; n <= nodes; n++)); do
        start_holder "$dir" "$n"
        log "node $(node_name "$n") in the namespaces of pid $(holder "$dir/node$n")"
    done
    link_nodes "$dir" "$nodes"
    for ((n = 1; n <= nodes; n++)); do
        start_node_daemons "$dir/node$n" "$n"
    done
    cluster_init "$dir"
    for ((n = 2; n <= nodes; n++)); do
        node_add "$dir" "$n"
    done
    in_node "$dir/node1" timeout 60 gnt-os list --no-headers | grep -qx "$OS_NAME" ||
        die "Ganeti does not see the $OS_NAME OS: $(in_node "$dir/node1" gnt-os diagnose 2>&1)"
    trap - EXIT
    log "cluster $CLUSTER up ($nodes node(s)): ${0##*/} exec $dir gnt-instance add ..."
}

# -- stop ------------------------------------------------------------------

# pid_from FILE COMM: the pid in FILE if that process is alive (and named
# COMM, unless COMM is empty).
pid_from() {
    local p
    p=$(cat "$1" 2>/dev/null) || return 1
    p=${p//[^0-9]/}
    [ -n "$p" ] && [ -e "/proc/$p" ] || return 1
    [ -z "$2" ] || [ "$(cat "/proc/$p/comm" 2>/dev/null)" = "$2" ] || return 1
    echo "$p"
}

# The QEMUs of a node's instances, by Ganeti's pid files: each only if its
# command line names its instance, as Ganeti checks.
instance_pids() {
    local f p
    for f in "$1"/run/ganeti/kvm-hypervisor/pid/*; do
        [ -e "$f" ] || continue
        p=$(pid_from "$f" "") || continue
        if tr '\0' '\n' <"/proc/$p/cmdline" | grep -qxF -- "${f##*/}"; then
            echo "$p"
        fi
    done
}

stop() {
    local dir=$1 n nd h pids p left nodes
    dir=$(cd "$dir" && pwd)
    mapfile -t nodes < <(nodes_of "$dir" | sort -rn)
    pids=()
    for n in "${nodes[@]}"; do
        mapfile -t -O ${#pids[@]} pids < <(instance_pids "$dir/node$n")
    done
    [ ${#pids[@]} -eq 0 ] || log "stopping instance QEMUs ${pids[*]}"
    kill_pids 10 "${pids[@]}"
    for n in "${nodes[@]}"; do
        nd=$dir/node$n
        h=$(holder "$nd") || continue
        # Ganeti's daemons, by their pid files.
        in_node "$nd" timeout 120 /usr/lib/ganeti/daemon-util stop-all >>"$dir/stop.log" 2>&1 ||
            log "node $n: daemon-util stop-all failed (see $dir/stop.log)"
        pids=()
        p=$(pid_from "$nd/run/sshd.pid" sshd) && pids+=("$p")
        p=$(pid_from "$nd/run/lttng/lttng-sessiond.pid" lttng-sessiond) && pids+=("$p")
        kill_pids 10 "${pids[@]}"
        # Whatever else runs in the node (consumerd goes with sessiond):
        # anything still here was left behind by something.
        mapfile -t left < <(pids_in_node "$h")
        if [ ${#left[@]} -gt 0 ]; then
            for p in "${left[@]}"; do
                log "node $n: left behind: $p $(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null |
                    cut -c1-200)"
            done
            kill_pids 10 "${left[@]}"
        fi
        kill_pids 5 "$h"
        rm -f "$nd/holder.pid"
    done
    log "nodes in $dir stopped"
}

# -- main ------------------------------------------------------------------

[ $# -ge 2 ] || usage
cmd=$1
dir=$2
shift 2
case "$cmd" in
start)
    nodes=1
    kernel=
    initrd=
    while [ $# -gt 0 ]; do
        [ $# -ge 2 ] || usage
        case "$1" in
        --nodes) nodes=$2 ;;
        --kernel) kernel=$2 ;;
        --initrd) initrd=$2 ;;
        *) usage ;;
        esac
        shift 2
    done
    if { [ -n "$kernel" ] && [ -z "$initrd" ]; } || { [ -z "$kernel" ] && [ -n "$initrd" ]; }; then
        die "--kernel and --initrd go together"
    fi
    start "$dir" "$nodes" "$kernel" "$initrd"
    ;;
stop) stop "$dir" ;;
exec)
    node=1
    if [ "${1:-}" = --node ]; then
        node=${2:-}
        shift 2
    fi
    [ $# -gt 0 ] || usage
    in_node "$dir/node$node" "$@"
    ;;
*) usage ;;
esac
