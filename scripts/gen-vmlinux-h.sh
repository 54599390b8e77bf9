#!/bin/sh
# Regenerate vmlinux.h from the BTF of the oldest kernel rpctls supports:
# Debian 12's 6.1 kernel, the one the VM tier boots (the package that the
# linux-image-amd64 metapackage depends on). Usage: gen-vmlinux-h.sh OUT CACHEDIR
set -eu
out=$1
cache=$2
mkdir -p "$cache"
cd "$cache"
pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
[ -n "$pkg" ] || { apt-get update >/dev/null; pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}'); }
[ -n "$pkg" ] || { echo "gen-vmlinux-h: cannot find the kernel package of linux-image-amd64" >&2; exit 1; }
ls "$pkg"_*.deb >/dev/null 2>&1 || apt-get download "$pkg" >/dev/null 2>&1
deb=$(ls "$pkg"_*.deb | head -n 1)
rm -rf vmlinuz.x && mkdir vmlinuz.x
dpkg-deb --fsys-tarfile "$deb" | tar -x -C vmlinuz.x --wildcards './boot/vmlinuz-*'
img=$(ls vmlinuz.x/boot/vmlinuz-*)
# The bzImage carries the kernel as an xz stream (CONFIG_KERNEL_XZ): find
# the xz magic and decompress from there; xz complains about the trailing
# bytes after the stream, which is expected.
off=$(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$img" | head -n 1 | cut -d: -f1)
[ -n "$off" ] || { echo "gen-vmlinux-h: no xz stream in $img" >&2; exit 1; }
tail -c +$((off + 1)) "$img" | xz -dc > vmlinux.elf 2>/dev/null || true
bpftool btf dump file vmlinux.elf format c > "$out.tmp"
mv "$out.tmp" "$out"
rm -rf vmlinuz.x vmlinux.elf
echo "vmlinux.h: BTF of $pkg ($(basename "$deb"))" >&2
