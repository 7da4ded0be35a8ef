#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# One idempotent set-up step for a Debian 12 machine: installs every Debian
# package the project lists under deps/, runs the steps under scripts/setup.d/
# (QEMU headers from the installed QEMU's source package, the test guest's
# kernel, ...), then configures and builds the project in ./build.
# A second run finds everything in place and takes seconds.
#
# Environment:
#   BLKIN_CACHE   where downloaded and generated inputs are kept
#                 (default /var/cache/blkin)
#   BLKIN_BUILD   the meson build directory (default ./build)
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
export BLKIN_CACHE=${BLKIN_CACHE:-/var/cache/blkin}
build=${BLKIN_BUILD:-$top/build}

log() { printf 'setup: %s\n' "$*" >&2; }

if [ "$(id -u)" != 0 ]; then
    log "must run as root (it installs Debian packages and starts LTTng)"
    exit 1
fi

# Every package named in deps/*.list (comments and blank lines ignored).
mapfile -t pkgs < <(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$top"/deps/*.list | sort -u)
missing=()
for p in "${pkgs[@]}"; do
    st=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
    [ "$st" = installed ] || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

mkdir -p "$BLKIN_CACHE"
for step in "$top"/scripts/setup.d/*.sh; do
    [ -e "$step" ] || continue
    log "running $(basename "$step")"
    bash "$step"
done

if [ ! -f "$build/build.ninja" ]; then
    meson setup "$build" "$top" --buildtype=debugoptimized >/dev/null
else
    # Picks up a QEMU header cache that a Debian update made setup.d refresh.
    meson setup --reconfigure "$build" "$top" >/dev/null
fi
ninja -C "$build" >/dev/null
log "ready: build in $build"
