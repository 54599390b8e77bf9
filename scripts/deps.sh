#!/bin/sh
# Install the Debian packages that building and testing rpctls need, only
# those that are missing. Idempotent; every make target that needs a package
# calls it (through the stamp in build/). Run as root, or with sudo available.
#
#   scripts/deps.sh            install what is missing
#   scripts/deps.sh --list     print the package list and exit
#   scripts/deps.sh --check    exit 1 (and name them) if any are missing
set -eu

# Build: compiler, BPF toolchain, libraries.
BUILD_PKGS="make gcc clang llvm libbpf-dev bpftool libelf-dev zlib1g-dev libssl-dev pkg-config"
# VM tier: kernel fetch and boot, initramfs.
VM_PKGS="qemu-system-x86 busybox-static cpio xz-utils zstd kmod apt-utils"
# Tests: real peers and tools that this project did not write.
TEST_PKGS="iproute2 rpcbind libtirpc-dev openssl gnutls-bin libgnutls28-dev nfs-ganesha nfs-ganesha-vfs libnfs-utils tshark stunnel4 procps psmisc python3 gnuplot-nox"

ALL="$BUILD_PKGS $VM_PKGS $TEST_PKGS"

case "${1:-}" in
--list) echo $ALL; exit 0 ;;
esac

missing=""
for p in $ALL; do
	st=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)
	case "$st" in
	ii*) ;;
	*) missing="$missing $p" ;;
	esac
done

[ -z "$missing" ] && exit 0

if [ "${1:-}" = "--check" ]; then
	echo "rpctls: missing packages:$missing" >&2
	exit 1
fi

SUDO=""
if [ "$(id -u)" != 0 ]; then
	command -v sudo >/dev/null 2>&1 || {
		echo "rpctls: error: need root to install:$missing" >&2
		exit 1
	}
	SUDO=sudo
fi

echo "rpctls: installing:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
# tshark asks whether non-root users may capture; the answer does not matter here.
echo "wireshark-common wireshark-common/install-setuid boolean false" | $SUDO debconf-set-selections 2>/dev/null || true
# The package lists of a fresh machine may be empty or stale: refresh once, retry once.
if ! $SUDO apt-get install -y --no-install-recommends $missing >/dev/null; then
	$SUDO apt-get update >/dev/null
	$SUDO apt-get install -y --no-install-recommends $missing >/dev/null
fi
# Debian starts the services of packages it installs where it can; the tests
# start their own instances in the VM and on the host, never these.
for s in rpcbind nfs-ganesha stunnel4; do
	if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
		$SUDO systemctl disable --now "$s" >/dev/null 2>&1 || true
	fi
done
exit 0
