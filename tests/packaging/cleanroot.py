# SPDX-License-Identifier: GPL-2.0-or-later
"""A clean Debian 12 root with BlkKin's packages installed, for tests of what
the packages ship.

    pkgs = build_packages(t, out)       # scripts/build-debs.sh, reused per tree
    base = base_root(t, debs)           # mmdebstrap tarball, cached per deps
    with CleanRoot(base, out) as root:  # unpacked, its own /proc, /dev, /run
        root.install(debs)
        root.run(["blkin", "--version"])

The base root is Debian 12 minbase plus exactly the packages ours depend on
(read from the built .debs, with the exact QEMU version), systemd (for
systemd-analyze) and man-db (systemd-analyze verify checks the units'
Documentation= man pages). It is made once per dependency set with
mmdebstrap from the host's own apt sources and kept as a tarball under
/var/cache/blkin/clean-root; each test unpacks it afresh. Our packages are
then installed with apt from the .deb files, without network access to any
archive: apt fails if a dependency is not satisfied.

Commands run in the root with chroot(8) inside private mount, network (only
loopback, up) and PID namespaces, with /proc, /dev and a tmpfs /run and
/dev/shm, so nothing in it meets the host's daemons or ports (an LTTng
session daemon started in the root is its own), and every process a command
started ends with it.
"""
import glob
import hashlib
import os
import re
import shutil
import subprocess
import time

SRC = os.environ.get("BLKIN_SOURCE_ROOT", os.path.join(os.path.dirname(__file__), "..", ".."))
CACHE = os.path.join(os.environ.get("BLKIN_CACHE", "/var/cache/blkin"), "clean-root")
OURS = ("blkin-hostd", "blkin-qemu-filter", "blkin-guest-agent", "blkin-libvirt", "blkin-ganeti",
        "libblkin0", "libblkin-dev")
# Besides our dependencies: what the checks themselves run.
EXTRA = ("systemd", "man-db")


def build_packages(t, out):
    """scripts/build-debs.sh into out; returns {package: .deb path} or None."""
    t0 = time.monotonic()
    r = subprocess.run([os.path.join(SRC, "scripts", "build-debs.sh"), out], capture_output=True,
                       text=True, timeout=1200)
    t.diag(f"scripts/build-debs.sh: {time.monotonic() - t0:.1f} s ({r.stderr.strip().splitlines()[-1:]})")
    if not t.ok(r.returncode == 0, "dpkg-buildpackage -us -uc -b builds, lintian reports no error",
                detail=r.stderr[-4000:]):
        return None
    debs = {}
    for p in glob.glob(os.path.join(out, "*.deb")):
        name = os.path.basename(p).split("_")[0]
        if not name.endswith("-dbgsym"):
            debs[name] = p
    return debs


def deb_field(deb, field):
    return subprocess.run(["dpkg-deb", "-f", deb, field], capture_output=True, text=True,
                          check=True).stdout.strip()


def dependencies(debs):
    """What apt must find installed for our packages: each Depends and
    Pre-Depends entry (the first of alternatives) that is not ours, an exact
    version pinned as pkg=version."""
    need = set()
    for deb in debs.values():
        for field in ("Pre-Depends", "Depends"):
            for entry in filter(None, (e.strip() for e in deb_field(deb, field).split(","))):
                first = entry.split("|")[0].strip()
                m = re.match(r"^([a-z0-9][a-z0-9+.:-]*)\s*(?:\((\S+)\s+([^)]+)\))?$", first)
                if not m or m.group(1) in OURS:
                    continue
                name = m.group(1).split(":")[0]
                need.add(f"{name}={m.group(3)}" if m.group(2) == "=" else name)
    return sorted(need | set(EXTRA))


def _sources():
    """The host's Debian apt sources (deb822 if it has them), for mmdebstrap."""
    for f in ("/etc/apt/sources.list.d/debian.sources", "/etc/apt/sources.list"):
        if os.path.exists(f) and os.path.getsize(f):
            return [f]
    return []


def base_root(t, debs):
    """The cached base tarball for these dependencies (made if missing)."""
    need = dependencies(debs)
    key = hashlib.sha256("\n".join(need).encode()).hexdigest()[:16]
    tar = os.path.join(CACHE, f"bookworm-{key}.tar")
    if os.path.exists(tar):
        t.diag(f"clean root: reusing {tar}")
        return tar
    os.makedirs(CACHE, exist_ok=True)
    t0 = time.monotonic()
    r = subprocess.run(["mmdebstrap", "--variant=minbase", "--format=tar", "--include=" + ",".join(need),
                        "bookworm", tar + ".part", *_sources()],
                       capture_output=True, text=True, timeout=1200)
    t.diag(f"mmdebstrap (minbase + {len(need)} packages): {time.monotonic() - t0:.1f} s")
    if not t.ok(r.returncode == 0, "mmdebstrap makes a clean Debian 12 root with our dependencies",
                detail=r.stderr[-3000:]):
        return None
    os.rename(tar + ".part", tar)
    # Keep only the newest few bases.
    for old in sorted(glob.glob(os.path.join(CACHE, "bookworm-*.tar")), key=os.path.getmtime)[:-3]:
        os.unlink(old)
    return tar


class CleanRoot:
    """The base tarball unpacked under @parent/root; removed at the end."""

    def __init__(self, tar, parent):
        self.tar = tar
        self.dir = os.path.join(parent, "root")

    def __enter__(self):
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(self.dir)
        subprocess.run(["tar", "-C", self.dir, "-xf", self.tar], check=True, timeout=600)
        # No daemon is started by a maintainer script in here.
        with open(os.path.join(self.dir, "usr/sbin/policy-rc.d"), "w") as f:
            f.write("#!/bin/sh\nexit 101\n")
        os.chmod(os.path.join(self.dir, "usr/sbin/policy-rc.d"), 0o755)
        return self

    def __exit__(self, *exc):
        shutil.rmtree(self.dir, ignore_errors=True)

    def run(self, argv, timeout=300, env=None, input=None):
        """Runs argv (a list, or a shell string) in the root; a CompletedProcess."""
        script = argv if isinstance(argv, str) else " ".join(_quote(a) for a in argv)
        d = self.dir
        setup = (f"ip link set lo up && "
                 f"mount -t proc proc {d}/proc && mount --rbind /dev {d}/dev && "
                 f"mount -t tmpfs tmpfs {d}/dev/shm && mount -t tmpfs tmpfs {d}/run && "
                 f"mkdir -p {d}/run/lock && mount -t tmpfs tmpfs {d}/tmp && "
                 f"exec chroot {d} /bin/sh -c {_quote(script)}")
        e = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
             "LANG": "C.UTF-8", "HOME": "/root", "DEBIAN_FRONTEND": "noninteractive"}
        e.update(env or {})
        return subprocess.run(["unshare", "-m", "-n", "-p", "-f", "--kill-child",
                               "--propagation", "private", "sh", "-c", setup],
                              capture_output=True, text=True, timeout=timeout, env=e, input=input)

    def install(self, debs):
        """apt-get install of the .debs, offline: our dependencies must
        already be there."""
        dest = os.path.join(self.dir, "var", "cache", "blkin-debs")
        os.makedirs(dest, exist_ok=True)
        for p in debs.values():
            shutil.copy(p, dest)
        names = " ".join("/var/cache/blkin-debs/" + os.path.basename(p) for p in debs.values())
        return self.run("apt-get install -y --no-install-recommends "
                        "-o Debug::NoLocking=1 " + names, timeout=600)


def _quote(s):
    return "'" + str(s).replace("'", "'\\''") + "'"
