# SPDX-License-Identifier: GPL-2.0-or-later
"""Test VMs for BlkKin's end-to-end tests and demo (Python stdlib only).

A GuestVM boots Debian's kernel (cached by scripts/setup.d/20-guest-kernel.sh)
with an initramfs made here: busybox-static, the virtio modules, the workload
program, any extra files the caller names, and /init, which runs the caller's
guest script and powers off. The stock /usr/bin/qemu-system-x86_64 runs it,
always under a hard timeout, with any number of virtio-blk disks (optionally
behind the project's `blkin` filter node), the guest agent's virtio-serial
port as a UNIX socket on the host, and a results port whose data lands in a
file. See tests/lib/README.md for the API and docs/vm-harness.md for details.

    with GuestVM(workdir, [Disk(img, "disk-a", size="64M")],
                 guest_script='blkin-workload -o "$BLKIN_RESULTS" "$(blkin_disk disk-a)"',
                 timeout=60) as vm:
        res = vm.run()          # start + wait
        print(res.status, vm.results())
"""
import atexit
import ctypes
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time

QEMU = "/usr/bin/qemu-system-x86_64"
AGENT_PORT = "org.blkin.agent.0"
RESULTS_PORT = "org.blkin.test.results"
STATUS_MARK = "BLKIN-GUEST-STATUS="
BOOT_MARK = "BLKIN-GUEST-INIT"


class VMError(Exception):
    """The VM could not be prepared or started."""


class FilterUnavailable(VMError):
    """A disk asks for the blkin filter but its preload library is not built."""


# ---------------------------------------------------------------- locations


def source_root():
    env = os.environ.get("BLKIN_SOURCE_ROOT")
    if env:
        return env
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def build_root():
    env = os.environ.get("BLKIN_BUILD_ROOT") or os.environ.get("BLKIN_BUILD")
    if env:
        return env
    return os.path.join(source_root(), "build")


def cache_dir():
    return os.environ.get("BLKIN_CACHE", "/var/cache/blkin")


def kernel_dir():
    """The guest kernel set-up made: vmlinuz, modules/, modules.order."""
    d = os.environ.get("BLKIN_GUEST_KERNEL_DIR") or os.path.join(cache_dir(), "kernel", "current")
    if not os.path.isfile(os.path.join(d, "vmlinuz")):
        raise VMError(f"no guest kernel in {d}: run scripts/setup.sh "
                      "(scripts/setup.d/20-guest-kernel.sh)")
    return os.path.realpath(d)


def kernel_image(kdir):
    """The image QEMU boots: the decompressed vmlinux with its PVH entry when
    set-up could make one (boots ~0.6 s faster under TCG), else the bzImage.
    BLKIN_VM_KERNEL=bzimage forces the bzImage."""
    pvh = os.path.join(kdir, "vmlinux")
    if os.environ.get("BLKIN_VM_KERNEL") != "bzimage" and os.path.isfile(pvh):
        return pvh
    return os.path.join(kdir, "vmlinuz")


def _first_existing(paths):
    for p in paths:
        if p and os.path.isfile(p):
            return p
    return None


def workload_binary():
    """The statically linked workload program from the meson build."""
    b = build_root()
    p = _first_existing([os.environ.get("BLKIN_WORKLOAD"),
                         os.path.join(b, "tests", "workload", "blkin-workload"),
                         os.path.join(b, "tests", "vm", "blkin-workload")])
    if not p:
        raise VMError(f"blkin-workload not built under {b} (run scripts/setup.sh)")
    return p


def agent_binary():
    """The guest agent if it is built, else None."""
    return _first_existing([os.environ.get("BLKIN_GUEST_AGENT"),
                            os.path.join(build_root(), "guest-agent", "blkin-guest-agent")])


def preload_library():
    """The LD_PRELOAD object that registers the blkin block driver, or None."""
    return _first_existing([os.environ.get("BLKIN_PRELOAD"),
                            os.path.join(build_root(), "qemu-filter", "libblkin-preload.so")])


# ---------------------------------------------------------------- initramfs


class Cpio:
    """A newc ("070701") archive writer: the format the kernel unpacks.

    Written here rather than with `busybox cpio -o -H newc` so that the
    archive can hold /dev/console (the kernel opens it for /init's stdio
    before devtmpfs is mounted) without mknod, i.e. without root.
    """

    def __init__(self):
        self.parts = []
        self.ino = 1000
        self.names = set()

    def _add(self, name, mode, data=b"", rdev=(0, 0)):
        name = name.lstrip("/")
        if name in self.names:
            return
        self.names.add(name)
        self.ino += 1
        nb = name.encode() + b"\0"
        fields = [self.ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(nb), 0]
        hdr = b"070701" + b"".join(b"%08X" % f for f in fields)
        self.parts.append(hdr + nb)
        self.parts.append(b"\0" * (-(110 + len(nb)) % 4))
        self.parts.append(data)
        self.parts.append(b"\0" * (-len(data) % 4))

    def dir(self, name):
        name = name.strip("/")
        if name in ("", "."):
            return
        parts = name.split("/")
        for i in range(1, len(parts) + 1):
            self._add("/".join(parts[:i]), stat.S_IFDIR | 0o755)

    def file(self, name, data, mode=0o644):
        self.dir(os.path.dirname(name.strip("/")))
        self._add(name, stat.S_IFREG | mode, data)

    def host_file(self, name, path):
        with open(path, "rb") as f:
            data = f.read()
        mode = 0o755 if os.stat(path).st_mode & 0o111 else 0o644
        self.file(name, data, mode)

    def symlink(self, name, target):
        self.dir(os.path.dirname(name.strip("/")))
        self._add(name, stat.S_IFLNK | 0o777, target.encode())

    def chardev(self, name, major, minor, mode=0o600):
        self._add(name, stat.S_IFCHR | mode, rdev=(major, minor))

    def bytes(self):
        trailer = Cpio()
        trailer.ino = 0
        trailer._add("TRAILER!!!", 0)
        return b"".join(self.parts + trailer.parts)


INIT_SCRIPT = r"""#!/bin/sh
# Generated by tests/lib/vm.py: mount, load virtio, run the test's script,
# report its exit status on the console, power off (QEMU runs -no-reboot).
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
exec </dev/console >/dev/console 2>&1
echo "@BOOT_MARK@ $(cut -d' ' -f1 /proc/uptime)"
for m in $(cat /lib/blkin/modules.order); do
    insmod /lib/blkin/modules/$m.ko || echo "blkin-init: insmod $m failed"
done
. /lib/blkin/lib.sh
# Disks and ports appear as their drivers probe; wait for all, boundedly.
i=0
while [ $i -lt 100 ]; do
    ok=1
    for s in $BLKIN_DISK_SERIALS; do [ -n "$(blkin_disk $s)" ] || ok=0; done
    for p in $BLKIN_PORT_NAMES; do [ -n "$(blkin_port $p)" ] || ok=0; done
    [ $ok = 1 ] && break
    sleep 0.05
    i=$((i + 1))
done
export BLKIN_RESULTS=$(blkin_port @RESULTS_PORT@)
export BLKIN_AGENT_PORT=$(blkin_port @AGENT_PORT@)
echo "blkin-init: ready at $(cut -d' ' -f1 /proc/uptime)s disks:$(for d in /sys/block/vd*; do [ -e $d ] && printf ' %s=%s' ${d##*/} "$(cat $d/serial 2>/dev/null)"; done)"
cd /tmp
sh /blkin/guest.sh
rc=$?
sync
echo "@STATUS_MARK@$rc"
reboot -f
sleep 5
echo o >/proc/sysrq-trigger
"""

LIB_SH = r"""# Helpers for guest scripts: /init and /blkin/guest.sh source this file.
# blkin_port NAME: the /dev/vportNpM of the virtio-serial port named NAME
# (no udev here, so no /dev/virtio-ports/NAME links).
blkin_port() {
    for f in /sys/class/virtio-ports/*/name; do
        [ -e "$f" ] || continue
        if [ "$(cat "$f")" = "$1" ]; then
            d=${f%/name}
            echo /dev/${d##*/}
            return 0
        fi
    done
    return 1
}
# blkin_disk SERIAL: the /dev/vdX whose virtio-blk serial is SERIAL.
blkin_disk() {
    for f in /sys/block/vd*/serial; do
        [ -e "$f" ] || continue
        if [ "$(cat "$f")" = "$1" ]; then
            d=${f%/serial}
            echo /dev/${d##*/}
            return 0
        fi
    done
    return 1
}
"""


def build_initramfs(path, guest_script, extra_files=None, env=None, kdir=None,
                    workload=None, busybox="/bin/busybox"):
    """Writes the guest's initramfs (uncompressed newc cpio) to path.

    extra_files: {guest_path: host_path or bytes}. env: exported to /init
    and hence to the guest script.
    """
    kdir = kdir or kernel_dir()
    a = Cpio()
    for d in ("bin", "sbin", "usr/bin", "usr/sbin", "dev", "proc", "sys", "tmp",
              "etc", "lib/blkin/modules", "blkin", "root"):
        a.dir(d)
    a.chardev("dev/console", 5, 1)
    a.chardev("dev/null", 1, 3, 0o666)
    if not os.path.isfile(busybox):
        busybox = shutil.which("busybox") or busybox
    a.host_file("bin/busybox", busybox)
    applets = subprocess.run([busybox, "--list-full"], check=True, capture_output=True,
                             text=True).stdout.split()
    for ap in applets:
        # The busybox applet would replace the binary itself with a link.
        if os.path.basename(ap) == "busybox":
            continue
        a.symlink(ap, "/bin/busybox")
    with open(os.path.join(kdir, "modules.order")) as f:
        order = [m for m in f.read().split() if m]
    for m in order:
        a.host_file(f"lib/blkin/modules/{m}.ko", os.path.join(kdir, "modules", m + ".ko"))
    a.file("lib/blkin/modules.order", ("\n".join(order) + "\n").encode())
    a.file("lib/blkin/lib.sh", LIB_SH.encode())
    a.host_file("bin/blkin-workload", workload or workload_binary())
    for gpath, src in (extra_files or {}).items():
        if isinstance(src, (bytes, bytearray)):
            a.file(gpath, bytes(src), 0o755)
        else:
            a.host_file(gpath, src)
    exports = "".join(f"export {k}={_sh_quote(v)}\n" for k, v in (env or {}).items())
    init = (INIT_SCRIPT.replace("@BOOT_MARK@", BOOT_MARK)
            .replace("@STATUS_MARK@", STATUS_MARK)
            .replace("@RESULTS_PORT@", RESULTS_PORT)
            .replace("@AGENT_PORT@", AGENT_PORT))
    init = init.replace("export PATH=", exports + "export PATH=", 1)
    a.file("init", init.encode(), 0o755)
    a.file("blkin/guest.sh", (". /lib/blkin/lib.sh\n" + guest_script + "\n").encode(), 0o755)
    with open(path, "wb") as f:
        f.write(a.bytes())


def _sh_quote(v):
    return "'" + str(v).replace("'", "'\\''") + "'"


# ---------------------------------------------------------------- disks


class Disk:
    """One virtio-blk disk and the block graph behind it.

    Graph: file (protocol) node `proto<i>` -> format node `fmt<i>` (raw or
    qcow2, ...) -> optionally the blkin filter node `filt<i>` -> the
    virtio-blk-pci device with the given serial.

    path:        image file (created with qemu-img when size is given and it
                 does not exist)
    serial:      virtio-blk serial the guest sees in /sys/block/vdX/serial
    fmt:         format driver of the format node ('raw', 'qcow2', ...)
    blkin:       None, or the filter's options, e.g. {"id": "d0", "sample": 1}
    proto_opts, fmt_opts, device_opts: extra key=value options for the
                 protocol node, the format node and the device
    filter_json: extra keys merged into the filter's json: options
    """

    def __init__(self, path, serial, fmt="raw", blkin=None, size=None,
                 proto_opts=None, fmt_opts=None, device_opts=None, filter_json=None):
        self.path = os.path.abspath(path)
        self.serial = serial
        self.fmt = fmt
        self.blkin = blkin
        self.size = size
        self.proto_opts = dict(proto_opts or {})
        self.fmt_opts = dict(fmt_opts or {})
        self.device_opts = dict(device_opts or {})
        self.filter_json = dict(filter_json or {})
        self.index = None
        self.runtime_stack = []  # (drive id, node) of filters inserted at run time

    def create(self):
        if self.size is not None and not os.path.exists(self.path):
            subprocess.run(["qemu-img", "create", "-q", "-f", self.fmt, self.path, str(self.size)],
                           check=True)

    @property
    def proto_node(self):
        return f"proto{self.index}"

    @property
    def fmt_node(self):
        return f"fmt{self.index}"

    @property
    def filter_node(self):
        return f"filt{self.index}"

    @property
    def top_node(self):
        """The node the device is attached to (now, counting run-time inserts)."""
        if self.runtime_stack:
            return self.runtime_stack[-1][1]
        return self.filter_node if self.blkin is not None else self.fmt_node

    @property
    def drive_id(self):
        return f"blkin{self.index}"

    @property
    def device_id(self):
        return f"disk{self.index}"

    def filter_options(self):
        opts = {"driver": "blkin", "file": self.fmt_node}
        opts.update(self.blkin or {})
        opts.update(self.filter_json)
        return opts

    def qemu_args(self):
        if self.index is None:
            raise VMError("Disk.qemu_args: the disk is not part of a GuestVM yet")
        proto = {"driver": "file", "filename": self.path, "node-name": self.proto_node}
        proto.update(self.proto_opts)
        if proto["driver"] != "file":  # e.g. nbd: no file behind it here
            del proto["filename"]
        fmt = {"driver": self.fmt, "file": self.proto_node, "node-name": self.fmt_node}
        fmt.update(self.fmt_opts)
        args = ["-blockdev", _kv(proto), "-blockdev", _kv(fmt)]
        dev = {"driver": "virtio-blk-pci", "id": self.device_id, "serial": self.serial}
        if self.blkin is not None:
            js = json.dumps(self.filter_options(), separators=(",", ":"))
            # -drive splits on commas: the json's own commas are doubled.
            args += ["-drive", f"if=none,id={self.drive_id},node-name={self.filter_node},"
                               f"file=json:{js.replace(',', ',,')}"]
            dev["drive"] = self.drive_id
        else:
            dev["drive"] = self.fmt_node
        dev.update(self.device_opts)
        d = dev.pop("driver")
        args += ["-device", d + "," + _kv(dev)]
        return args


def _esc(v):
    """A value inside a QEMU key=value option list: commas doubled."""
    return str(v).replace(",", ",,")


def _kv(d):
    out = []
    for k, v in d.items():
        if isinstance(v, bool):
            v = "on" if v else "off"
        out.append(f"{k}={str(v).replace(',', ',,')}")
    return ",".join(out)


# ---------------------------------------------------------------- KVM probe


def _libc():
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


def _child_setup_pdeathsig():
    # Dies with the harness (even on SIGKILL of the test), so no QEMU is left.
    libc = _libc()
    if libc is not None:
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    os.setsid()


def _child_setup_plain():
    os.setsid()


def choose_accel(kdir=None):
    """'kvm' only when a short probe boot under KVM reached /init, else 'tcg'.

    BLKIN_VM_ACCEL=tcg|kvm forces a choice. The probe result is cached in
    $BLKIN_CACHE/vm/accel-probe.json, keyed by kernel, QEMU and /dev/kvm.
    """
    forced = os.environ.get("BLKIN_VM_ACCEL", "auto")
    if forced in ("tcg", "kvm"):
        return forced
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "tcg"
    kdir = kdir or kernel_dir()
    st = os.stat(QEMU)
    key = f"{kernel_image(kdir)}|{st.st_size}|{int(st.st_mtime)}|{os.stat('/dev/kvm').st_rdev}"
    cache = os.path.join(cache_dir(), "vm", "accel-probe.json")
    try:
        with open(cache) as f:
            c = json.load(f)
        if c.get("key") == key:
            return c["accel"]
    except (OSError, ValueError, KeyError):
        pass
    accel = "kvm" if _probe_kvm(kdir) else "tcg"
    try:
        os.makedirs(os.path.dirname(cache), exist_ok=True)
        tmp = cache + f".{os.getpid()}"
        with open(tmp, "w") as f:
            json.dump({"key": key, "accel": accel, "when": time.time()}, f)
        os.replace(tmp, cache)
    except OSError:
        pass
    return accel


def _probe_kvm(kdir, timeout=15):
    work = tempfile.mkdtemp(prefix="blkin-kvm-probe-")
    try:
        vm = GuestVM(work, [], "echo probe-ok", timeout=timeout, accel="kvm",
                     kdir=kdir, agent_port=False, with_workload=False)
        with vm:
            res = vm.run(boot_retries=0)
        return res.status == 0
    except VMError:
        return False
    finally:
        shutil.rmtree(work, ignore_errors=True)


# ---------------------------------------------------------------- the VM


class Result:
    """What one VM run ended with."""

    def __init__(self, status, qemu_rc, timed_out, console, elapsed, boot_hung=False):
        self.status = status        # guest script's exit status, None if not reported
        self.qemu_rc = qemu_rc      # QEMU's exit code (negative: signal)
        self.timed_out = timed_out  # the harness killed QEMU at the timeout
        self.console = console      # serial console text
        self.elapsed = elapsed      # seconds from start to QEMU's exit
        self.boot_hung = boot_hung  # killed because /init never started in time

    @property
    def ok(self):
        return self.status == 0 and not self.timed_out

    def __repr__(self):
        return (f"Result(status={self.status}, qemu_rc={self.qemu_rc}, "
                f"timed_out={self.timed_out}, boot_hung={self.boot_hung}, "
                f"elapsed={self.elapsed:.2f})")


_live = set()


def _kill_live():
    for vm in list(_live):
        vm.kill()
        vm._remove_sockdir()


atexit.register(_kill_live)


class GuestVM:
    """A test guest. Use as a context manager: leaving it always kills QEMU.

    workdir:       where the initramfs, console log, results file go (created)
    disks:         list of Disk
    guest_script:  shell (busybox sh) run by /init; sees BLKIN_RESULTS (the
                   results port's /dev path), BLKIN_AGENT_PORT, and the helpers
                   blkin_disk SERIAL / blkin_port NAME; blkin-workload on PATH
    extra_files:   {guest_path: host_path or bytes} added to the initramfs
    timeout:       hard limit in seconds from start(); QEMU is killed then
    accel:         'tcg', 'kvm' or None (= choose_accel(): KVM only if probed)
    memory, cpus:  guest size
    machine:       QEMU machine type
    preload:       LD_PRELOAD object for disks with blkin (default: the build's)
    load_filter:   preload it even when no disk starts with the filter (for
                   inserting it at run time, insert_filter())
    qemu_args:     extra QEMU arguments appended as they are
    agent_port:    expose org.blkin.agent.0 as a UNIX socket (agent_socket)
    guest_env:     extra environment for the guest script
    append:        extra kernel command line
    """

    def __init__(self, workdir, disks=(), guest_script="", extra_files=None, timeout=60,
                 accel=None, memory=256, cpus=1, machine="q35", preload=None, qemu_args=(),
                 agent_port=True, guest_env=None, append="", kdir=None, qemu=QEMU,
                 with_workload=True, env=None, boot_timeout=30, load_filter=False):
        self.workdir = os.path.abspath(workdir)
        os.makedirs(self.workdir, exist_ok=True)
        self.disks = list(disks)
        for i, d in enumerate(self.disks):
            d.index = i
        self.guest_script = guest_script
        self.extra_files = dict(extra_files or {})
        self.timeout = timeout
        self.boot_timeout = boot_timeout
        self.load_filter = load_filter
        self.accel = accel
        self.memory = memory
        self.cpus = cpus
        self.machine = machine
        self.preload = preload
        self.extra_qemu_args = list(qemu_args)
        self.agent_port = agent_port
        self.guest_env = dict(guest_env or {})
        self.append = append
        self.kdir = kdir
        self.qemu = qemu
        self.with_workload = with_workload
        self.env = env

        self.console_path = os.path.join(self.workdir, "console.log")
        self.results_path = os.path.join(self.workdir, "results.out")
        self.initramfs_path = os.path.join(self.workdir, "initramfs.cpio")
        self.qemu_log_path = os.path.join(self.workdir, "qemu.log")
        # UNIX socket paths must fit sun_path (108 bytes): keep them short.
        # Made by start(), removed when QEMU is gone.
        self._sockdir = None
        self.agent_socket = None
        self.qmp_socket = None

        self.proc = None
        self.argv = None
        self.started_at = None
        self.deadline = None
        self.result = None
        self._qmp = None
        self._watchdog = None
        self._stop_watch = None
        self._deadline_hit = False
        self.boot_hung = False

    # -- set-up

    @property
    def qemu_pid(self):
        return self.proc.pid if self.proc else None

    def build_argv(self):
        kdir = self.kdir or kernel_dir()
        accel = self.accel or choose_accel(kdir)
        self.accel = accel
        cmdline = ("console=ttyS0 panic=-1 rdinit=/init loglevel=4 "
                   "tsc=reliable no_timer_check " + self.append).strip()
        argv = [self.qemu, "-machine", f"{self.machine},accel={accel}",
                "-cpu", "host" if accel == "kvm" else "max",
                "-m", str(self.memory), "-smp", str(self.cpus),
                "-nodefaults", "-no-user-config", "-no-reboot",
                "-display", "none", "-vga", "none",
                "-chardev", f"file,id=con0,path={_esc(self.console_path)}",
                "-serial", "chardev:con0",
                "-kernel", kernel_image(kdir),
                "-initrd", self.initramfs_path,
                "-append", cmdline,
                "-qmp", f"unix:{_esc(self.qmp_socket)},server=on,wait=off",
                "-device", "virtio-serial-pci,id=vser0",
                "-chardev", f"file,id=results0,path={_esc(self.results_path)}",
                "-device", f"virtserialport,bus=vser0.0,chardev=results0,name={RESULTS_PORT}"]
        if self.agent_socket:
            argv += ["-chardev", f"socket,id=agent0,path={_esc(self.agent_socket)},"
                             "server=on,wait=off",
                     "-device", f"virtserialport,bus=vser0.0,chardev=agent0,name={AGENT_PORT}"]
        for d in self.disks:
            argv += d.qemu_args()
        argv += self.extra_qemu_args
        return argv

    def _qemu_env(self):
        env = dict(os.environ if self.env is None else self.env)
        if self.load_filter or any(d.blkin is not None for d in self.disks):
            lib = self.preload or preload_library()
            if not lib or not os.path.isfile(lib):
                raise FilterUnavailable(
                    "a disk uses the blkin filter but libblkin-preload.so is not built "
                    f"(looked for {lib or os.path.join(build_root(), 'qemu-filter', 'libblkin-preload.so')})")
            env["LD_PRELOAD"] = lib
        return env

    def prepare(self):
        """Creates missing disk images and writes the initramfs."""
        for d in self.disks:
            d.create()
        genv = {"BLKIN_DISK_SERIALS": " ".join(d.serial for d in self.disks),
                "BLKIN_PORT_NAMES": " ".join([RESULTS_PORT] + ([AGENT_PORT] if self.agent_port else []))}
        genv.update(self.guest_env)
        build_initramfs(self.initramfs_path, self.guest_script, self.extra_files, genv,
                        kdir=self.kdir,
                        workload=None if self.with_workload else _placeholder(self.workdir))

    # -- running

    def start(self):
        if self.proc:
            raise VMError("already started")
        self.prepare()
        self._make_sockdir()
        env = self._qemu_env()
        self.argv = self.build_argv()
        for p in (self.console_path, self.results_path):
            if os.path.exists(p):
                os.unlink(p)
        with open(os.path.join(self.workdir, "qemu.cmdline"), "w") as f:
            f.write(" ".join(_sh_quote(a) for a in self.argv) + "\n")
            if "LD_PRELOAD" in env:
                f.write(f"# LD_PRELOAD={env['LD_PRELOAD']}\n")
        log = open(self.qemu_log_path, "wb")
        self.started_at = time.monotonic()
        self.deadline = self.started_at + self.timeout
        # PR_SET_PDEATHSIG fires when the *thread* that forked exits, so it is
        # only safe from the main thread; the watchdog and atexit cover the rest.
        main = threading.current_thread() is threading.main_thread()
        try:
            self.proc = subprocess.Popen(
                self.argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env=env, preexec_fn=_child_setup_pdeathsig if main else _child_setup_plain)
        finally:
            log.close()
        _live.add(self)
        # The deadline holds even while the test is blocked elsewhere (a socket
        # read, a hung QMP call): a separate thread enforces it.
        self._stop_watch = threading.Event()
        self._watchdog = threading.Thread(target=self._watch, daemon=True)
        self._watchdog.start()
        return self

    def _watch(self):
        boot_deadline = self.started_at + self.boot_timeout if self.boot_timeout else None
        while not self._stop_watch.wait(0.2):
            if self.proc.poll() is not None:
                return
            now = time.monotonic()
            if now >= self.deadline:
                self._deadline_hit = True
                self.kill()
                return
            if boot_deadline and now >= boot_deadline:
                if BOOT_MARK in self.console():
                    boot_deadline = None
                else:
                    # A boot that never reached /init (seen about once in
                    # twenty boots on these machines): give up early.
                    self.boot_hung = True
                    self._deadline_hit = True
                    self.kill()
                    return

    def remaining(self):
        return max(0.0, self.deadline - time.monotonic()) if self.deadline else self.timeout

    def wait(self, timeout=None):
        """Waits for QEMU to exit (at most until the hard deadline, or the
        shorter timeout given); kills it at the deadline. Returns a Result,
        or None when only the shorter timeout passed."""
        if self.result:
            return self.result
        if not self.proc:
            raise VMError("not started")
        limit = self.remaining() if timeout is None else min(timeout, self.remaining())
        try:
            self.proc.wait(limit)
        except subprocess.TimeoutExpired:
            if timeout is not None and self.remaining() > 0:
                return None
            self._deadline_hit = True
            self.kill()
        return self._finish(timed_out=self._deadline_hit)

    def run(self, boot_retries=1):
        """start() and wait(); a boot that hung before /init is retried
        (boot_retries times) with a fresh QEMU, as nothing ran yet."""
        if not self.proc:
            self.start()
        res = self.wait()
        while res.boot_hung and boot_retries > 0:
            boot_retries -= 1
            self.restart()
            res = self.wait()
        return res

    def restart(self):
        """Kills QEMU if it runs and starts a fresh one (same disks, files)."""
        self.kill()
        if self.proc and not self.result:
            self._finish(timed_out=self._deadline_hit)
        if os.path.exists(self.console_path):
            # Kept for the post-mortem of the hung boot.
            os.replace(self.console_path, self.console_path + ".hung")
        self.proc = None
        self.result = None
        self._deadline_hit = False
        self.boot_hung = False
        return self.start()

    def _finish(self, timed_out):
        _live.discard(self)
        self._remove_sockdir()
        if self._stop_watch:
            self._stop_watch.set()
        self._close_qmp()
        console = self.console()
        status = None
        for line in console.splitlines():
            if line.startswith(STATUS_MARK):
                try:
                    status = int(line[len(STATUS_MARK):].strip())
                except ValueError:
                    pass
        self.result = Result(status, self.proc.returncode, timed_out, console,
                             time.monotonic() - self.started_at, self.boot_hung)
        return self.result

    def kill(self):
        """Ends QEMU now (SIGTERM, then SIGKILL); safe to call at any time."""
        p = self.proc
        if p is None or p.poll() is not None:
            _live.discard(self)
            return
        for sig, grace in ((signal.SIGTERM, 2.0), (signal.SIGKILL, 10.0)):
            try:
                os.killpg(p.pid, sig)
            except ProcessLookupError:
                break
            try:
                p.wait(grace)
                break
            except subprocess.TimeoutExpired:
                continue
        _live.discard(self)

    def close(self):
        if self.proc and self.proc.poll() is None:
            self.kill()
        if self.proc and not self.result:
            self._finish(timed_out=self._deadline_hit)
        self._close_qmp()
        self._remove_sockdir()

    def _make_sockdir(self):
        if not self._sockdir or not os.path.isdir(self._sockdir):
            self._sockdir = tempfile.mkdtemp(prefix="blkin-vm-")
        self.agent_socket = (os.path.join(self._sockdir, "agent.sock")
                             if self.agent_port else None)
        self.qmp_socket = os.path.join(self._sockdir, "qmp.sock")

    def _remove_sockdir(self):
        if self._sockdir:
            shutil.rmtree(self._sockdir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    # -- outputs

    def console(self):
        try:
            with open(self.console_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def results(self):
        """Everything the guest wrote to the results port so far (text)."""
        try:
            with open(self.results_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def boot_time(self):
        """Guest uptime (s) when /init started, from the console, or None."""
        for line in self.console().splitlines():
            if line.startswith(BOOT_MARK):
                try:
                    return float(line.split()[1])
                except (IndexError, ValueError):
                    return None
        return None

    # -- host-side channels

    def connect_agent(self, timeout=10.0):
        """A connected socket to the agent port (the host side is a client;
        it may connect at any time, QEMU listens from start). The socket's
        own timeout is set to the VM's remaining time, so a read can never
        outlive the VM; change it with settimeout() as needed."""
        if not self.agent_socket:
            raise VMError("agent port not enabled")
        s = _connect_unix(self.agent_socket, min(timeout, self.remaining()) if self.deadline
                          else timeout)
        s.settimeout(max(1.0, self.remaining()))
        return s

    def qmp(self, command, **arguments):
        """Runs one QMP command; returns its 'return' value (raises on error)."""
        if self._qmp is None:
            s = _connect_unix(self.qmp_socket, 10.0)
            s.settimeout(30.0)
            f = s.makefile("rwb")
            json.loads(f.readline())  # greeting
            self._qmp = (s, f)
            self.qmp("qmp_capabilities")
        s, f = self._qmp
        msg = {"execute": command}
        if arguments:
            msg["arguments"] = arguments
        f.write(json.dumps(msg).encode() + b"\n")
        f.flush()
        while True:
            line = f.readline()
            if not line:
                raise VMError("QMP connection closed")
            r = json.loads(line)
            if "event" in r:
                continue
            if "error" in r:
                raise VMError(f"QMP {command}: {r['error']}")
            return r.get("return")

    def hmp(self, command_line):
        """Runs one human-monitor command (e.g. drive_add) through QMP."""
        return self.qmp("human-monitor-command", **{"command-line": command_line})

    # -- block graph changes at run time

    def insert_filter(self, disk, options=None):
        """Puts a blkin filter node on top of the disk's current top node in
        the running QEMU and moves the device onto it, without a restart:
        HMP drive_add with a json: filename (QMP blockdev-add refuses
        out-of-tree drivers), then qom-set of the device's drive property.
        QEMU must have the filter loaded (a disk with blkin, or
        load_filter=True). Returns the new node's name."""
        disk.runtime_serial = getattr(disk, "runtime_serial", 0) + 1
        n = disk.runtime_serial
        top = disk.top_node
        drive_id = f"blkinrt{disk.index}x{n}"
        node = f"filtrt{disk.index}x{n}"
        opts = {"driver": "blkin", "file": top}
        opts.update(options or {})
        js = json.dumps(opts, separators=(",", ":")).replace(",", ",,")
        out = self.hmp(f"drive_add 0 if=none,id={drive_id},node-name={node},file=json:{js}")
        if out.strip() != "OK":
            raise VMError(f"drive_add of the filter failed: {out.strip()}")
        self.qmp("qom-set", path=f"/machine/peripheral/{disk.device_id}", property="drive",
                 value=node)
        disk.runtime_stack.append((drive_id, node))
        return node

    def remove_filter(self, disk):
        """Undoes the last insert_filter(): the device goes back to the node
        below, and the filter's drive is deleted."""
        if not disk.runtime_stack:
            raise VMError("no filter inserted at run time on this disk")
        drive_id, _ = disk.runtime_stack.pop()
        self.qmp("qom-set", path=f"/machine/peripheral/{disk.device_id}", property="drive",
                 value=disk.top_node)
        out = self.hmp(f"drive_del {drive_id}")
        if out.strip():
            raise VMError(f"drive_del {drive_id}: {out.strip()}")

    def device_node(self, disk):
        """Name of the node the disk's device is attached to now (QMP)."""
        for b in self.qmp("query-block"):
            if b.get("qdev", "").startswith(f"/machine/peripheral/{disk.device_id}/"):
                return b.get("inserted", {}).get("node-name")
        return None

    def _close_qmp(self):
        if self._qmp:
            try:
                self._qmp[1].close()
                self._qmp[0].close()
            except OSError:
                pass
            self._qmp = None


def _placeholder(workdir):
    p = os.path.join(workdir, "no-workload")
    with open(p, "w") as f:
        f.write("#!/bin/sh\necho 'blkin-workload not included' >&2\nexit 127\n")
    os.chmod(p, 0o755)
    return p


def _connect_unix(path, timeout):
    end = time.monotonic() + timeout
    last = None
    while True:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.settimeout(max(0.1, end - time.monotonic()))
            s.connect(path)
            return s
        except OSError as e:
            s.close()
            last = e
        if time.monotonic() >= end:
            raise VMError(f"could not connect to {path}: {last}")
        time.sleep(0.05)


# ---------------------------------------------------------------- results


def reads_writes(text):
    """Reads and writes the workload output in `text` says it did: {op: n}."""
    n = {"read": 0, "write": 0}
    for io in parse_workload(text)["ios"]:
        if io["op"] in n:
            n[io["op"]] += 1
    return n


def parse_workload(text):
    """Parses blkin-workload output (see docs/vm-harness.md).

    Returns dict(header=str, devs={name: size}, ios=[dict], plan=[dict],
    phases=[dict], summary=dict, mismatches=[dict], fatal=[str], end=bool).
    """
    out = {"header": None, "devs": {}, "ios": [], "plan": [], "phases": [], "summary": None,
           "mismatches": [], "fatal": [], "end": False}
    for line in text.splitlines():
        f = line.split()
        if not f:
            continue
        k = f[0]
        try:
            if k == "#" and out["header"] is None and len(f) > 1 and f[1] == "blkin-workload":
                out["header"] = line
            elif k == "dev":
                out["devs"][f[1]] = int(f[2])
            elif k == "io":
                out["ios"].append({"seq": int(f[1]), "qd": int(f[2]), "dev": f[3], "op": f[4],
                                   "offset": int(f[5]), "bytes": int(f[6]), "start": int(f[7]),
                                   "end": int(f[8]), "result": int(f[9])})
            elif k == "plan":
                out["plan"].append({"seq": int(f[1]), "qd": int(f[2]), "dev": f[3], "op": f[4],
                                    "offset": int(f[5]), "bytes": int(f[6])})
            elif k == "phase":
                d = {"phase": int(f[1])}
                d.update((a, int(b)) for a, b in (x.split("=", 1) for x in f[2:]))
                out["phases"].append(d)
            elif k == "summary":
                out["summary"] = {a: int(b) for a, b in (x.split("=", 1) for x in f[1:])}
            elif k == "mismatch":
                out["mismatches"].append({"seq": int(f[1]), "dev": f[2], "offset": int(f[3]),
                                          "writer": int(f[4])})
            elif k == "fatal":
                out["fatal"].append(line)
            elif k == "end":
                out["end"] = True
        except (IndexError, ValueError):
            out["fatal"].append("unparsed: " + line)
    return out


def workload_plan(args, devices, workload=None):
    """The request list blkin-workload would issue with these arguments,
    computed on the host by the same binary (--plan)."""
    p = subprocess.run([workload or workload_binary(), "--plan", *args, *devices],
                       check=True, capture_output=True, text=True)
    return parse_workload(p.stdout)["plan"]


# ---------------------------------------------------------------- CLI


def main(argv=None):
    import argparse

    ap = argparse.ArgumentParser(
        description="Boot a BlkKin test guest, run a guest script, print what it sent back.")
    ap.add_argument("--workdir", help="kept work directory (default: a temporary one)")
    ap.add_argument("--disk", action="append", default=[], metavar="PATH:SERIAL[:FMT[:SIZE]]",
                    help="a virtio-blk disk; the image is created when SIZE is given and it is missing")
    ap.add_argument("--blkin", action="append", default=[], metavar="SERIAL[:JSON]",
                    help="put the blkin filter on that disk; JSON = extra filter options")
    ap.add_argument("--script", help="guest script file (default: --run)")
    ap.add_argument("--run", default="", help="guest script text")
    ap.add_argument("--extra", action="append", default=[], metavar="GUEST=HOST",
                    help="extra file in the initramfs")
    ap.add_argument("--agent", action="store_true",
                    help="include the built guest agent as /bin/blkin-guest-agent")
    ap.add_argument("--timeout", type=float, default=120)
    ap.add_argument("--accel", choices=["tcg", "kvm"])
    ap.add_argument("--memory", type=int, default=256)
    ap.add_argument("--cpus", type=int, default=1)
    ap.add_argument("--console", action="store_true", help="print the console on stderr")
    ap.add_argument("--print-argv", action="store_true", help="print the QEMU command line and exit")
    a = ap.parse_args(argv)

    filters = {}
    for b in a.blkin:
        serial, _, js = b.partition(":")
        filters[serial] = json.loads(js) if js else {"id": serial}
    disks = []
    for spec in a.disk:
        parts = spec.split(":")
        path, serial = parts[0], parts[1]
        fmt = parts[2] if len(parts) > 2 and parts[2] else "raw"
        size = parts[3] if len(parts) > 3 else None
        disks.append(Disk(path, serial, fmt=fmt, size=size, blkin=filters.get(serial)))
    script = a.run
    if a.script:
        with open(a.script) as f:
            script = f.read()
    extra = dict(e.split("=", 1) for e in a.extra)
    if a.agent:
        ag = agent_binary()
        if not ag:
            ap.error("the guest agent is not built")
        extra["/bin/blkin-guest-agent"] = ag
    work = a.workdir or tempfile.mkdtemp(prefix="blkin-vm-run-")
    vm = GuestVM(work, disks, script, extra, timeout=a.timeout, accel=a.accel,
                 memory=a.memory, cpus=a.cpus)
    if a.print_argv:
        vm.prepare()
        vm._make_sockdir()
        print(" ".join(_sh_quote(x) for x in vm.build_argv()))
        vm.close()
        return 0
    with vm:
        res = vm.run()
    if a.console:
        sys.stderr.write(res.console)
    sys.stdout.write(vm.results())
    sys.stderr.write(f"vm: {res} accel={vm.accel} workdir={work}\n")
    return res.status if res.status is not None else 125


if __name__ == "__main__":
    sys.exit(main())
