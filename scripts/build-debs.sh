#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Builds BlkKin's Debian packages from this tree, as an operator or a CI
# would: a copy of the tree (tracked and untracked, not ignored, files) in
# OUT/src, `dpkg-buildpackage -us -uc -b` there, then lintian on the result.
#
#   scripts/build-debs.sh [OUT]          (default OUT: ./build-deb)
#
# Needs what scripts/setup.sh installs (debhelper, lintian, the QEMU headers
# of the installed QEMU). Packages, the static guest agent's tarball, the
# .changes and lintian's report (OUT/lintian.txt) end up in OUT.
#
# A tree already built is not built again: OUT/stamp holds a hash of every
# file of the tree and the QEMU version the filter is built against, so the
# package test of a CI run builds once and later runs reuse it (seconds).
# BLKIN_DEB_FORCE=1 rebuilds anyway. DEB_BUILD_OPTIONS defaults to "nocheck"
# (the CI runs the suite itself); set it to run the unit tests in the build.
#
# Exit status: 0 built (or reused) and lintian found no error, 1 the build
# failed (the end of OUT/build.log is printed), 3 lintian reported errors.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
out=$(mkdir -p "${1:-$top/build-deb}" && cd "${1:-$top/build-deb}" && pwd)
log() { printf 'build-debs: %s\n' "$*" >&2; }

files() {
    if git -C "$top" rev-parse --git-dir >/dev/null 2>&1; then
        git -C "$top" ls-files -co --exclude-standard -z
    else
        (cd "$top" && find . -path ./build\* -prune -o -type f -print0 | sed -z 's|^\./||')
    fi
}

qemu=$(dpkg-query -W -f='${Version}' qemu-system-x86)
stamp=$( (cd "$top" && files | grep -zv '^build' | sort -z | xargs -0 sha256sum; echo "qemu $qemu") |
    sha256sum | cut -d' ' -f1)
if [ -z "${BLKIN_DEB_FORCE:-}" ] && [ "$(cat "$out/stamp" 2>/dev/null)" = "$stamp" ]; then
    log "reusing the packages in $out (same tree, QEMU $qemu)"
    exit 0
fi

version=$(dpkg-parsechangelog -l "$top/debian/changelog" -SVersion)
rm -rf "$out/src" "$out"/*.deb "$out"/*.changes "$out"/*.buildinfo "$out"/*.tar.gz "$out/stamp"
mkdir -p "$out/src/blkin-$version"
(cd "$top" && files | grep -zv '^build' | tar --null -T - -cf -) | tar -C "$out/src/blkin-$version" -xf -

log "building blkin $version for QEMU $qemu in $out/src"
t0=$(date +%s)
if ! (cd "$out/src/blkin-$version" &&
    DEB_BUILD_OPTIONS=${DEB_BUILD_OPTIONS-nocheck} dpkg-buildpackage -us -uc -b) \
    >"$out/build.log" 2>&1; then
    tail -40 "$out/build.log" >&2
    log "dpkg-buildpackage failed (log: $out/build.log)"
    exit 1
fi
mv "$out/src"/*.deb "$out/src"/*.changes "$out/src"/*.buildinfo "$out/src"/*.tar.gz "$out/"
t1=$(date +%s)
lintian --info --display-info "$out/blkin_${version}_$(dpkg --print-architecture).changes" \
    >"$out/lintian.txt" 2>&1 || true
t2=$(date +%s)
echo "build $((t1 - t0)) s, lintian $((t2 - t1)) s" >"$out/times"
log "built in $((t1 - t0)) s, lintian $((t2 - t1)) s: $(cd "$out" && ls ./*.deb | grep -vc dbgsym) packages"
if grep -q '^E: ' "$out/lintian.txt"; then
    grep '^E: ' "$out/lintian.txt" >&2
    log "lintian reported errors ($out/lintian.txt)"
    exit 3
fi
grep -E '^W: ' "$out/lintian.txt" >&2 || true
echo "$stamp" >"$out/stamp"
