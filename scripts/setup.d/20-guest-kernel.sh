#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Fetches the test guest's kernel: Debian 12's 6.1 cloud kernel (the smallest
# flavour that still has virtio as modules), downloaded once with apt-get
# download and unpacked with dpkg -x. Keeps only what tests/lib/vm.py boots:
#
#   $BLKIN_CACHE/kernel/<release>/vmlinuz          the bzImage
#   $BLKIN_CACHE/kernel/<release>/vmlinux          its payload, decompressed,
#                                                  only if it has a PVH entry
#                                                  note (QEMU boots it directly,
#                                                  ~0.6 s faster under TCG)
#   $BLKIN_CACHE/kernel/<release>/modules/*.ko     virtio modules, uncompressed
#   $BLKIN_CACHE/kernel/<release>/modules.order    insmod order (one name a line)
#   $BLKIN_CACHE/kernel/current -> <release>
#
# The .deb stays in $BLKIN_CACHE/kernel/ so a re-run never touches the network.
# The release is the one linux-image-cloud-amd64 points at when first run; it
# is then pinned by the 'current' link (delete it to move to a newer kernel).
set -euo pipefail

cache=${BLKIN_CACHE:-/var/cache/blkin}/kernel
log() { printf 'guest-kernel: %s\n' "$*" >&2; }

# Dependency order: each module's symbols come from the ones before it.
modules=(virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev
    virtio_pci virtio_mmio virtio_blk virtio_console)

mkdir -p "$cache"
# Bump when the layout above changes, so that old caches are redone.
layout=2
if [ -L "$cache/current" ] &&
    [ "$(head -c2 "$cache/current/.blkin-kernel-ok" 2>/dev/null)" = "$layout " ]; then
    exit 0
fi

# Prefer the release the meta package names; fall back to the newest 6.1
# package apt knows (cloud flavour first, then generic amd64).
pick_package() {
    local dep flavour p
    dep=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null |
        sed -n 's/^ *Depends: \(linux-image-6\.1\.[^ ]*-cloud-amd64\)$/\1/p' | head -n1)
    if [ -n "$dep" ]; then
        echo "$dep"
        return
    fi
    for flavour in cloud-amd64 amd64; do
        p=$(apt-cache search --names-only "^linux-image-6\.1\.[0-9]+-[0-9]+-$flavour\$" |
            awk '{print $1}' | sort -V | tail -n1)
        if [ -n "$p" ]; then
            echo "$p"
            return
        fi
    done
}

download() {
    local tmp
    # apt-get download writes into the current directory; _apt must be able
    # to write there when apt drops privileges.
    tmp=$(mktemp -d "$cache/dl.XXXXXX")
    chmod 777 "$tmp"
    if (cd "$tmp" && apt-get download -qq "$1" >/dev/null); then
        mv "$tmp"/*.deb "$cache"/
        rm -rf "$tmp"
        return 0
    fi
    rm -rf "$tmp"
    return 1
}

# A machine whose package lists are missing or stale gets them refreshed once.
pkg=$(pick_package)
if [ -z "$pkg" ]; then
    apt-get update -qq
    pkg=$(pick_package)
fi
if [ -z "$pkg" ]; then
    log "no linux-image-6.1.*-(cloud-)amd64 package known to apt"
    exit 1
fi
release=${pkg#linux-image-}

deb=$(ls "$cache"/"${pkg}"_*.deb 2>/dev/null | sort -V | tail -n1 || true)
if [ -z "$deb" ]; then
    log "downloading $pkg"
    if ! download "$pkg"; then
        apt-get update -qq
        pkg=$(pick_package)
        release=${pkg#linux-image-}
        download "$pkg" || {
            log "apt-get download $pkg failed"
            exit 1
        }
    fi
    deb=$(ls "$cache"/"${pkg}"_*.deb | sort -V | tail -n1)
fi

dir=$cache/$release
rm -rf "$dir" "$cache/x"
mkdir -p "$dir/modules" "$cache/x"
log "unpacking $(basename "$deb")"
dpkg -x "$deb" "$cache/x"
cp "$cache/x/boot/vmlinuz-$release" "$dir/vmlinuz"
: >"$dir/modules.order"
for m in "${modules[@]}"; do
    f=$(find "$cache/x/lib/modules/$release" -name "$m.ko*" | head -n1)
    if [ -z "$f" ]; then
        # Built into this kernel: nothing to load.
        continue
    fi
    case $f in
    *.ko) cp "$f" "$dir/modules/$m.ko" ;;
    *.ko.xz) xz -dc "$f" >"$dir/modules/$m.ko" ;;
    *.ko.zst) zstd -qdc "$f" >"$dir/modules/$m.ko" ;;
    *.ko.gz) gzip -dc "$f" >"$dir/modules/$m.ko" ;;
    esac
    echo "$m" >>"$dir/modules.order"
done
rm -rf "$cache/x"

# The bzImage's payload (offsets from its boot header) is the compressed ELF
# vmlinux. Debian 6.1 compresses it with LZ4 (legacy frames); the others are
# handled in case a later kernel differs. Without a PVH note, vm.py keeps
# using the bzImage.
python3 - "$dir/vmlinuz" "$dir/payload" <<'PY'
import struct, sys
d = open(sys.argv[1], "rb").read()
setup_sects = d[0x1f1] or 4
off, length = struct.unpack_from("<II", d, 0x248)
base = (setup_sects + 1) * 512
open(sys.argv[2], "wb").write(d[base + off:base + off + length])
PY
magic=$(od -An -tx1 -N6 "$dir/payload" | tr -d ' \n')
case $magic in
02214c18*) dec=(lz4 -dcq) ;;
fd377a585a00) dec=(xz -dcq) ;;
28b52ffd*) dec=(zstd -dcq) ;;
1f8b*) dec=(gzip -dcq) ;;
*) dec=() ;;
esac
# lz4 and gzip complain about the size trailer after the stream: check the ELF.
if [ ${#dec[@]} -gt 0 ] && command -v "${dec[0]}" >/dev/null; then
    "${dec[@]}" "$dir/payload" >"$dir/vmlinux.tmp" 2>/dev/null || true
    if python3 - "$dir/vmlinux.tmp" <<'PY'; then
import struct, sys
# Exit 0 only for an x86-64 ELF with a Xen ELF note of type 18
# (XEN_ELFNOTE_PHYS32_ENTRY): the PVH entry point QEMU's -kernel uses.
d = open(sys.argv[1], "rb").read()
if d[:4] != b"\x7fELF" or d[4] != 2:
    sys.exit(1)
phoff, = struct.unpack_from("<Q", d, 0x20)
phentsize, phnum = struct.unpack_from("<HH", d, 0x36)
for i in range(phnum):
    ptype, _, off, _, _, filesz = struct.unpack_from("<IIQQQQ", d, phoff + i * phentsize)
    if ptype != 4:  # PT_NOTE
        continue
    p, end = off, off + filesz
    while p + 12 <= end:
        namesz, descsz, ntype = struct.unpack_from("<III", d, p)
        name = d[p + 12:p + 12 + namesz].rstrip(b"\0")
        if name == b"Xen" and ntype == 18:
            sys.exit(0)
        p += 12 + (namesz + 3) // 4 * 4 + (descsz + 3) // 4 * 4
sys.exit(1)
PY
        mv "$dir/vmlinux.tmp" "$dir/vmlinux"
    else
        log "no PVH entry in the decompressed kernel; the bzImage will be booted"
    fi
    rm -f "$dir/vmlinux.tmp"
fi
rm -f "$dir/payload"

echo "$layout $pkg" >"$dir/.blkin-kernel-ok"
ln -sfn "$release" "$cache/current"
log "guest kernel $release ready in $dir"
