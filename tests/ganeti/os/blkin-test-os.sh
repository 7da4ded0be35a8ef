#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
# blkin-test: a minimal Ganeti OS definition (OS API 20) for BlkKin's test
# cluster (scripts/ganeti-node.sh installs it as /srv/ganeti/os/blkin-test).
# The guest boots from the cluster's kvm kernel_path/initrd_path: the
# project's test guest (the Debian cloud kernel and a busybox initramfs with
# the guest agent and blkin-workload, tests/ganeti/guest_image.py), which
# ganeti-node.sh puts in this OS's image/ directory. What "create" puts on
# the instance's disks is a label in each disk's last 4 KiB,
#     BLKIN-TEST-OS <instance> disk/<N> of <count>
# which the guest reads at boot: it learns how many disks to wait for, and a
# test sees that the disks Ganeti created are the ones the guest got, in
# Ganeti's order. Nothing is fetched: no network is needed.
# One script, installed under each name Ganeti runs: create, export, import,
# rename, verify (Ganeti passes its state in the environment, API 20).
set -eu

# disk_size PATH: bytes of a file or block device.
disk_size() {
    if [ -b "$1" ]; then
        blockdev --getsize64 "$1"
    else
        stat -L -c %s "$1"
    fi
}

create() {
    n=0
    while [ "$n" -lt "${DISK_COUNT:-0}" ]; do
        eval path=\$DISK_${n}_PATH
        size=$(disk_size "$path")
        if [ "$size" -lt 16777216 ]; then
            echo "blkin-test: disk/$n is $size bytes; the test guest needs 16 MiB" >&2
            exit 1
        fi
        # conv=sync pads the label to a whole 4 KiB block with zeros.
        printf 'BLKIN-TEST-OS %s disk/%s of %s\n' "$INSTANCE_NAME" "$n" "$DISK_COUNT" |
            dd of="$path" bs=4096 seek=$((size / 4096 - 1)) conv=notrunc,sync status=none
        echo "blkin-test: labelled disk/$n ($path, $size bytes) of $INSTANCE_NAME"
        n=$((n + 1))
    done
}

case "${0##*/}" in
create) create ;;
export) exec cat "$EXPORT_DEVICE" ;;
import) exec cat >"$IMPORT_DEVICE" ;;
rename) echo "blkin-test: $OLD_INSTANCE_NAME is now $INSTANCE_NAME" ;;
verify) exit 0 ;;
*)
    echo "blkin-test: run as create, export, import, rename or verify, not ${0##*/}" >&2
    exit 1
    ;;
esac
