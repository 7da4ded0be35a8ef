#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Starts a KVM instance with the Debian ganeti package's own KVM hypervisor
code (ganeti.hypervisor.hv_kvm.KVMHypervisor.StartInstance): the command
line, the -drive/-device layout, the QMP sockets, the pid and runtime files
are Ganeti 3.0's. What differs from a real node, and why:
- the hypervisor's state directory (normally /var/run/ganeti/kvm-hypervisor)
  is ROOT, so that tests do not touch a real node's;
- ganeti-kvmd is not started (it needs a cluster; it only watches shutdowns);
- QEMU's log (-D) goes to ROOT/log instead of /var/log/ganeti/kvm;
- the disk is a plain file (as for Ganeti's `file` disk template) instead of
  a DRBD/LVM device.

    ganeti_start.py ROOT NAME KVM_PATH DISK_IMAGE DISK_UUID KERNEL INITRD ARGS

Prints the instance's runtime file path on success."""
import os
import sys
import uuid

sys.path.insert(0, "/usr/share/ganeti/3.0")

from ganeti import constants, objects, pathutils  # noqa: E402
from ganeti.hypervisor import hv_kvm  # noqa: E402


def main():
    root, name, kvm_path, image, disk_uuid, kernel, initrd, args = sys.argv[1:9]
    K = hv_kvm.KVMHypervisor
    K._ROOT_DIR = root
    for attr, sub in (("_PIDS_DIR", "pid"), ("_UIDS_DIR", "uid"), ("_CTRL_DIR", "ctrl"),
                      ("_CONF_DIR", "conf"), ("_NICS_DIR", "nic"), ("_CHROOT_DIR", "chroot"),
                      ("_CHROOT_QUARANTINE_DIR", "chroot-quarantine")):
        setattr(K, attr, f"{root}/{sub}")
    K._DIRS = [root] + [f"{root}/{s}" for s in ("pid", "uid", "ctrl", "conf", "nic", "chroot",
                                                 "chroot-quarantine")]
    K._StartKvmd = lambda self, hvparams: None
    pathutils.LOG_KVM_DIR = f"{root}/log"

    hvp = dict(constants.HVC_DEFAULTS[constants.HT_KVM])
    hvp.update({
        "kvm_path": kvm_path,
        "kernel_path": kernel,
        "initrd_path": initrd,
        "kernel_args": args,
        "root_path": "",
        "serial_console": True,
        "vnc_bind_address": "",
        "machine_version": "pc",
        "acpi": True,
        "reboot_behavior": "exit",
    })
    disk = objects.Disk(dev_type=constants.DT_FILE, size=64, mode=constants.DISK_RDWR,
                        uuid=disk_uuid, logical_id=("loop", image), params={},
                        name="", iv_name="disk/0")
    inst = objects.Instance(name=name, primary_node="node1-uuid", uuid=str(uuid.uuid4()),
                            os="debootstrap", hypervisor=constants.HT_KVM,
                            hvparams=hvp, beparams={"maxmem": 256, "minmem": 256, "vcpus": 1,
                                                    "spindle_use": 1, "auto_balance": True,
                                                    "always_failover": False},
                            osparams={}, nics=[], disks=[disk.uuid],
                            disk_template=constants.DT_FILE, admin_state="up",
                            disks_active=True, network_port=None)
    os.makedirs(f"{root}/log", exist_ok=True)
    hv = K()
    hv.StartInstance(inst, [(disk, image, None)], False)
    print(K._InstanceKVMRuntime(name))


if __name__ == "__main__":
    main()
