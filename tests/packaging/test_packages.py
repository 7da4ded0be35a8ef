#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""BlkKin's Debian packages, as an operator gets them: `dpkg-buildpackage -us
-uc -b` builds every package (scripts/build-debs.sh; reused while the tree is
unchanged), lintian reports no error, and in a clean Debian 12 root (minbase
plus our dependencies only, made by mmdebstrap) apt installs them from the
.deb files alone. There every program answers --version, every unit passes
`systemd-analyze verify`, the configuration is a conffile, the packaged
filter loads into the packaged QEMU, and the static guest agent of the
tarball for other distributions runs."""
import os
import re
import subprocess
import tarfile
import tempfile
import time

from cleanroot import CleanRoot, base_root, build_packages, deb_field
from tap import Tap

BUILD = os.environ.get("BLKIN_BUILD_ROOT", "build")
SRC = os.environ.get("BLKIN_SOURCE_ROOT", ".")
VERSION = re.search(r"version: '([^']+)'", open(os.path.join(SRC, "meson.build")).read()).group(1)

# Every program an operator or a guest runs, by package.
PROGRAMS = {
    "blkin-hostd": ["blkin-hostd", "blkin", "blkin-agent-dump"],
    "blkin-qemu-filter": ["blkin-live", "blkin-qemu-check"],
    "blkin-guest-agent": ["blkin-guest-agent"],
    "blkin-libvirt": ["blkin-libvirt"],
    "blkin-ganeti": ["blkin-ganeti"],
    "blkin-ceph-collector": ["blkin-ceph-collector"],
}


def check_static_agent(t, out):
    """The tarball for guests of other distributions: a static binary."""
    tars = [f for f in os.listdir(out) if f.startswith("blkin-guest-agent-") and f.endswith(".tar.gz")]
    if not t.eq(len(tars), 1, "the build makes the static guest agent's tarball"):
        return
    with tempfile.TemporaryDirectory() as d, tarfile.open(os.path.join(out, tars[0])) as tf:
        tf.extractall(d)
        top = os.path.join(d, tars[0][:-len(".tar.gz")])
        names = sorted(os.listdir(top))
        t.eq(names, ["README", "blkin-guest-agent", "blkin-guest-agent.8", "blkin-guest-agent.service"],
             "the tarball has the agent, its unit, its man page and a README")
        exe = os.path.join(top, "blkin-guest-agent")
        h = subprocess.run(["readelf", "-lW", exe], capture_output=True, text=True).stdout
        t.ok("INTERP" not in h and "DYNAMIC" not in h, "its agent is statically linked (no interpreter)")
        v = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30)
        t.eq(v.stdout.strip(), f"blkin-guest-agent {VERSION}", "and runs")


def check_installed(t, root, debs):
    for pkg, progs in PROGRAMS.items():
        for prog in progs:
            r = root.run([prog, "--version"], timeout=60)
            t.ok(r.returncode == 0 and r.stdout.strip() == f"{prog} {VERSION}",
                 f"{pkg}: {prog} --version", detail=f"rc {r.returncode}: {r.stdout}{r.stderr}")
    units = root.run("ls /lib/systemd/system/blkin*").stdout.split()
    t.ok(len(units) >= 2, "the packages install their systemd units", detail=units)
    for u in units:
        r = root.run(["systemd-analyze", "verify", u], timeout=120)
        t.ok(r.returncode == 0 and not r.stderr.strip(), f"systemd-analyze verify {os.path.basename(u)}",
             detail=r.stdout + r.stderr)
    conf = root.run(["dpkg-query", "-W", "-f=${Conffiles}\\n", "blkin-hostd"]).stdout
    t.ok("/etc/blkin/hostd.conf" in conf, "/etc/blkin/hostd.conf is a conffile of blkin-hostd", detail=conf)
    r = root.run(["getent", "group", "blkin"])
    t.ok(r.returncode == 0, "the group blkin (the control socket's) exists", detail=r.stderr)
    for pkg in ("blkin-hostd", "blkin-qemu-filter", "blkin-guest-agent", "blkin-libvirt", "blkin-ganeti",
                "blkin-ceph-collector"):
        r = root.run(f"dpkg -L {pkg} | grep -E '/man[18]/'")
        t.ok(r.returncode == 0, f"{pkg} ships man pages", detail=r.stdout)
    # The filter of the package in the QEMU of the root: same build.
    r = root.run(["blkin-qemu-check"])
    t.ok(r.returncode == 0 and "qemu-system-x86_64" in r.stdout,
         "blkin-qemu-check: the packaged filter was built for the packaged QEMU", detail=r.stdout + r.stderr)
    dep = deb_field(debs["blkin-qemu-filter"], "Depends")
    have = root.run(["dpkg-query", "-W", "-f=${Version}", "qemu-system-x86"]).stdout
    t.ok(f"qemu-system-x86 (= {have})" in dep, "blkin-qemu-filter depends on exactly that QEMU version",
         detail=dep)
    preload = root.run("ls /usr/lib/*/blkin/libblkin-preload.so").stdout.strip()
    r = root.run(["env", f"LD_PRELOAD={preload}", "qemu-system-x86_64", "-machine", "none", "-nodefaults",
                  "-display", "none", "-monitor", "stdio", "-drive",
                  'if=none,id=d0,node-name=top,file=json:{"driver":"blkin",,"id":"pkg/vda",,'
                  '"file":{"driver":"null-co",,"size":1048576}}'],
                 input="info block\nquit\n", timeout=120)
    t.ok("d0 (top): json:" in r.stdout and "(blkin)" in r.stdout and "blkin:" not in r.stderr,
         "the packaged filter loads into the packaged QEMU (a blkin node opens)",
         detail=r.stdout[-2000:] + r.stderr[-2000:])
    # The static tarball's agent is the package's agent.
    r = root.run(["readelf", "-lW", "/usr/sbin/blkin-guest-agent"])
    t.ok(r.returncode != 0 or "INTERP" not in r.stdout, "the packaged guest agent is static too")


def fake_qemu(root, version):
    """A qemu-system-x86 of another version (a QEMU binary without the
    module stamp), as a .deb in the root."""
    d = tempfile.mkdtemp(prefix="fake-qemu-", dir=os.path.join(root.dir, "tmp"))
    os.makedirs(os.path.join(d, "DEBIAN"))
    os.makedirs(os.path.join(d, "usr", "bin"))
    with open(os.path.join(d, "DEBIAN", "control"), "w") as f:
        f.write(f"Package: qemu-system-x86\nVersion: {version}\nArchitecture: amd64\n"
                "Maintainer: test <test@example.org>\nDescription: a QEMU update, as the test makes it\n")
    exe = os.path.join(d, "usr", "bin", "qemu-system-x86_64")
    with open(exe, "w") as f:
        f.write(f"#!/bin/sh\necho 'QEMU emulator version 7.2.99 (Debian {version})'\n")
    os.chmod(exe, 0o755)
    deb = os.path.join(root.dir, "var", "cache", "blkin-debs", "qemu-update.deb")
    subprocess.run(["dpkg-deb", "--root-owner-group", "-b", d, deb], check=True, capture_output=True)
    return "/var/cache/blkin-debs/qemu-update.deb"


def check_qemu_update(t, root):
    """QEMU upgraded under the filter: apt says the filter must go first;
    done with dpkg anyway, apt-get check names the broken dependency, and
    blkin-qemu-check (run at boot by blkin-qemu-check.service) names both
    versions."""
    have = root.run(["dpkg-query", "-W", "-f=${Version}", "qemu-system-x86"]).stdout
    newer = have + "+blkintest1"
    deb = fake_qemu(root, newer)
    r = root.run(["apt-get", "-s", "install", deb])
    t.ok(re.search(r"^Remv blkin-qemu-filter", r.stdout, re.M) is not None,
         "apt: a QEMU update would remove blkin-qemu-filter (it depends on the exact version), "
         "so apt says so before anything happens", detail=r.stdout[-2000:] + r.stderr[-1000:])
    root.run(["dpkg", "-i", deb])
    r = root.run(["apt-get", "check"])
    out = r.stdout + r.stderr
    t.ok(r.returncode != 0 and "blkin-qemu-filter" in out and f"qemu-system-x86 (= {have})" in out,
         "installed with dpkg anyway: apt-get check names the filter package's dependency",
         detail=out[-2000:])
    r = root.run(["blkin-qemu-check", "--quiet"])
    line = [l for l in r.stderr.splitlines() if l.startswith("blkin-qemu-check:")]
    t.ok(r.returncode == 1 and line and f"(qemu-system-x86 {newer})" in line[0]
         and f"(Debian {have})" in line[0] and "blkin-qemu-filter" in line[0],
         "forced anyway: blkin-qemu-check (its unit runs it at boot) names the new QEMU package "
         "version and the one the filter was built for", detail=r.stdout + r.stderr)


def check_service(t, root):
    """The service out of the box: the daemons started the way the units
    say, with the packaged configuration and nothing else; hostd sets up
    the live session itself and reads a traced QEMU."""
    import json
    import shutil
    shutil.copy(os.path.join(SRC, "tests", "packaging", "service-smoke.sh"),
                os.path.join(root.dir, "usr", "local", "bin", "service-smoke"))
    r = root.run(["service-smoke"], timeout=240)
    out = {}
    for line in r.stdout.splitlines():
        k, _, v = line.partition(" ")
        out.setdefault(k, []).append(v)
    log = "\n".join(out.get("hostd-log", []))
    t.diag(f"hostd's log:\n{log}")
    t.ok("sessiond up" in r.stdout and "relayd up" in r.stdout,
         "lttng-sessiond, and lttng-relayd by blkin-lttng-relayd.service's command line, run",
         detail=r.stdout[-3000:] + r.stderr[-2000:])
    t.ok("hostd up" in r.stdout, "blkin-hostd runs from its unit's command line and the packaged hostd.conf",
         detail=log + r.stderr[-2000:])
    t.ok("trace connected" in r.stdout,
         "hostd sets up the live session itself and reads the packaged filter's spans from QEMU",
         detail=r.stdout[-3000:])
    st = json.loads(out["status"][0]) if out.get("status") else {}
    t.ok(st.get("session", {}).get("last_outcome") == "created"
         and st.get("trace_inputs", [{}])[0].get("events", 0) > 0,
         "blkin status: the session hostd created, and events read", detail=(st.get("session"), st.get("trace_inputs")))
    t.eq(out.get("session"), ["active"], "blkin-lttng-session status: the session is active")
    lines = log.splitlines()
    t.ok(sum("created the live session blkin" in l for l in lines) == 1 and len(lines) <= 4,
         "hostd's log: one line for the session it created, a few lines in all", detail=log)


def main():
    t = Tap()
    out = os.path.join(BUILD, "deb")
    t0 = time.monotonic()
    debs = build_packages(t, out)
    if not debs:
        t.done()
    t.eq(sorted(debs), sorted(["blkin-hostd", "blkin-qemu-filter", "blkin-guest-agent", "blkin-libvirt",
                               "blkin-ganeti", "blkin-ceph-collector", "libblkin0", "libblkin-dev"]),
         "the packages an operator needs are built")
    lint = open(os.path.join(out, "lintian.txt")).read()
    t.ok(not re.search(r"^E: ", lint, re.M), "lintian: no errors",
         detail="\n".join(line for line in lint.splitlines() if line.startswith(("E:", "W:"))))
    check_static_agent(t, out)
    t1 = time.monotonic()
    base = base_root(t, debs)
    if not base:
        t.done()
    t2 = time.monotonic()
    with CleanRoot(base, out) as root:
        t3 = time.monotonic()
        r = root.install(debs)
        t4 = time.monotonic()
        if t.ok(r.returncode == 0, "apt installs every package into the clean root, offline (dependencies met)",
                detail=r.stdout[-3000:] + r.stderr[-3000:]):
            check_installed(t, root, debs)
            check_service(t, root)
            check_qemu_update(t, root)
        t5 = time.monotonic()
    t.diag(f"times: packages {t1 - t0:.1f} s, base root {t2 - t1:.1f} s, unpack {t3 - t2:.1f} s, "
           f"install {t4 - t3:.1f} s, checks {t5 - t4:.1f} s, total {time.monotonic() - t0:.1f} s")
    t.done()


if __name__ == "__main__":
    main()
