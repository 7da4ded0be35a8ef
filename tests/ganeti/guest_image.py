#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""The test guest of BlkKin's Ganeti cluster (scripts/ganeti-node.sh), as
a kernel and an initramfs for the kvm hypervisor's kernel_path/initrd_path:

    guest_image.py OUTDIR      writes OUTDIR/vmlinux (a link to the cached
                               test kernel) and OUTDIR/initramfs.cpio

The initramfs is tests/lib/vm.py's (busybox, the virtio modules, the guest
agent, blkin-workload). Its script reads the label the blkin-test OS
definition's `create` wrote at the end of each disk (tests/ganeti/os/),
waits until the guest has every disk the label counts, prints one
`BLKIN-DISK <dev> serial=<serial> label=<label>` line per disk on the serial
console (the agent started first, when the wrapper gave the instance its
channel), and runs workload rounds on all disks, each verifying its data, until the
instance stops: `round=<n> summary ...` lines on the console."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import vm  # noqa: E402

GUEST = r"""
label_of() {  # the blkin-test OS label at the end of /dev/$1
    s=$(cat /sys/block/$1/size)
    dd if=/dev/$1 bs=4096 skip=$((s / 8 - 1)) count=1 2>/dev/null | head -n 1 | tr -d '\000'
}
i=0
while [ ! -e /sys/block/vda ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
want=$(label_of vda | sed -n 's/.* of \([0-9]*\)$/\1/p')
i=0
while [ "$(ls -d /sys/block/vd* 2>/dev/null | wc -l)" -lt "${want:-1}" ] && [ $i -lt 200 ]; do
    sleep 0.05
    i=$((i + 1))
done
# The agent first, so that it sees the guest's reads of the labels too.
if [ -n "$BLKIN_AGENT_PORT" ]; then
    blkin-guest-agent 2>/tmp/agent.log &
else
    echo "BLKIN-NO-AGENT-CHANNEL"
fi
devs=
for d in /sys/block/vd*; do
    n=${d##*/}
    echo "BLKIN-DISK $n serial=$(cat $d/serial 2>/dev/null) label=$(label_of $n)"
    devs="$devs /dev/$n"
done
round=0
while true; do
    blkin-workload -Q --seed $((round + 1)) --count 100 --qd 1,4 $devs >/tmp/wl.out 2>&1 ||
        echo "WLFAILED round=$round"
    grep '^summary' /tmp/wl.out | sed "s/^/round=$round /"
    round=$((round + 1))
    sleep 0.2
done
"""


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: guest_image.py OUTDIR")
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    kdir = vm.kernel_dir()
    kernel = os.path.realpath(vm.kernel_image(kdir))
    link = os.path.join(out, "vmlinux")
    if os.path.lexists(link):
        os.unlink(link)
    os.symlink(kernel, link)
    vm.build_initramfs(os.path.join(out, "initramfs.cpio"), GUEST,
                       extra_files={"/bin/blkin-guest-agent": vm.agent_binary()},
                       env={"BLKIN_PORT_NAMES": vm.AGENT_PORT}, kdir=kdir)
    print(out)


if __name__ == "__main__":
    main()
