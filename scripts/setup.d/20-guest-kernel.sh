#!/usr/bin/env bash
# Fetches the test guest's kernel: Debian 12's 6.1 cloud kernel (the smallest
# flavour that still has virtio as modules), downloaded once with apt-get
# download and unpacked with dpkg -x. Keeps only what tests/lib/vm.py boots:
#
#   $BLKIN_CACHE/kernel/<release>/vmlinuz          the bzImage
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
if [ -L "$cache/current" ] && [ -f "$cache/current/.blkin-kernel-ok" ]; then
    exit 0
fi

# Prefer the release the meta package names; fall back to the newest 6.1
# package apt knows (cloud flavour first, then generic amd64).
pkg=
dep=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null |
    sed -n 's/^ *Depends: \(linux-image-6\.1\.[^ ]*-cloud-amd64\)$/\1/p' | head -n1)
if [ -n "$dep" ]; then
    pkg=$dep
else
    for flavour in cloud-amd64 amd64; do
        pkg=$(apt-cache search --names-only "^linux-image-6\.1\.[0-9]+-[0-9]+-$flavour\$" |
            awk '{print $1}' | sort -V | tail -n1)
        [ -n "$pkg" ] && break
    done
fi
if [ -z "$pkg" ]; then
    log "no linux-image-6.1.*-(cloud-)amd64 package known to apt (run apt-get update?)"
    exit 1
fi
release=${pkg#linux-image-}

deb=$(ls "$cache"/"${pkg}"_*.deb 2>/dev/null | sort -V | tail -n1 || true)
if [ -z "$deb" ]; then
    log "downloading $pkg"
    # apt-get download writes into the current directory; _apt needs to be able
    # to write there when apt drops privileges.
    tmp=$(mktemp -d "$cache/dl.XXXXXX")
    chmod 777 "$tmp"
    (cd "$tmp" && apt-get download -qq "$pkg" >/dev/null) || {
        rm -rf "$tmp"
        log "apt-get download $pkg failed"
        exit 1
    }
    mv "$tmp"/*.deb "$cache"/
    rm -rf "$tmp"
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
echo "$pkg" >"$dir/.blkin-kernel-ok"
ln -sfn "$release" "$cache/current"
log "guest kernel $release ready in $dir"
