#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Fetches the source of the *installed* Debian qemu package, configures it the
# way Debian's build does (same version and pkgversion, hence the same module
# stamp) and generates only the headers the blkin filter compiles against.
# Result: $BLKIN_CACHE/qemu/<installed version>/{src,build}, and the symlink
# $BLKIN_CACHE/qemu/current pointing at it. Does nothing when already done.
set -euo pipefail

cache=${BLKIN_CACHE:-/var/cache/blkin}/qemu
log() { printf 'qemu-headers: %s\n' "$*" >&2; }

binver=$(dpkg-query -W -f='${Version}' qemu-utils)
srcver=$(dpkg-query -W -f='${source:Version}' qemu-utils)
sysver=$(dpkg-query -W -f='${Version}' qemu-system-x86)
if [ "$binver" != "$sysver" ]; then
    log "qemu-utils ($binver) and qemu-system-x86 ($sysver) differ; upgrade both to one version"
    exit 1
fi

# QEMU's configure refuses paths with colons (Debian epochs have one).
slot=${binver//:/_}
dir=$cache/$slot
if [ -f "$dir/build/.blkin-headers-ok" ]; then
    ln -sfn "$slot" "$cache/current"
    exit 0
fi

# Debian ships source entries disabled; add deb-src twins of the deb entries.
if ! grep -rqsE '^(deb-src|Types:.*deb-src)' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    log "enabling Debian source packages (/etc/apt/sources.list.d/blkin-deb-src.*)"
    if [ -f /etc/apt/sources.list.d/debian.sources ]; then
        sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources \
            >/etc/apt/sources.list.d/blkin-deb-src.sources
    else
        grep -hE '^deb ' /etc/apt/sources.list | sed 's/^deb /deb-src /' \
            >/etc/apt/sources.list.d/blkin-deb-src.list
    fi
    apt-get update -qq
fi

rm -rf "$dir"
mkdir -p "$dir/fetch"
log "fetching qemu source $srcver"
(cd "$dir/fetch" && apt-get source -qq "qemu=$srcver" >/dev/null 2>"$dir/fetch.log") || {
    cat "$dir/fetch.log" >&2
    log "could not fetch the source of qemu $srcver (is a deb-src entry reachable?)"
    exit 1
}
mv "$dir"/fetch/qemu-*/ "$dir/src"
rm -rf "$dir/fetch"

log "configuring with pkgversion 'Debian $binver'"
mkdir -p "$dir/build"
(cd "$dir/build" && ../src/configure --disable-system --enable-tools \
    --without-default-features --enable-modules \
    --with-pkgversion="Debian $binver" >"$dir/configure.log" 2>&1) || {
    tail -20 "$dir/configure.log" >&2
    exit 1
}
targets=$(cd "$dir/build" && ninja -t targets all |
    grep -E '^(qapi/[^:]*\.h|trace/[^:]*\.h|block/[^:]*\.h|qemu-version\.h|config-poison\.h):' |
    cut -d: -f1)
# shellcheck disable=SC2086
ninja -C "$dir/build" $targets >"$dir/ninja.log"

stamp=$(sed -n 's/^#define CONFIG_STAMP \(.*\)$/qemu_stamp\1/p' "$dir/build/config-host.h")
for b in /usr/bin/qemu-img /usr/bin/qemu-system-x86_64; do
    if ! grep -qF "$stamp" "$b"; then
        log "$b does not carry $stamp: the installed QEMU was not built from this source"
        exit 1
    fi
done
touch "$dir/build/.blkin-headers-ok"
ln -sfn "$slot" "$cache/current"
log "headers ready in $dir"
