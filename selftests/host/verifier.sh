#!/bin/bash
# Every program of rpctls.bpf.o passes the running kernel's verifier, loaded
# with bpftool alone (as the README shows for users without the CLI); and the
# read guard, guard.bpf.o, on the maps rpctls.bpf.o pinned. Kernels that
# refuse BPF LSM programs get a SKIP for the guard, never a silent pass.
. "$RPCTLS_TOP/selftests/lib/lib.sh"
pin=/sys/fs/bpf/rpctls-verifier-$$
mount | grep -q ' /sys/fs/bpf type bpf' || mount -t bpf bpf /sys/fs/bpf
log=$RPCTLS_BUILD/tests/verifier.log
if bpftool prog loadall "$RPCTLS_BUILD/bpf/rpctls.bpf.o" "$pin" pinmaps "$pin-maps" > "$log" 2>&1; then
	for p in sockops_srv sockops_cli sockops_both skb_verdict msg_verdict iter_sockfd rx_notify; do
		if [ -e "$pin/$p" ]; then
			insns=$(bpftool -j prog show pinned "$pin/$p" | jget 'd.get("bytes_xlated", 0) // 8')
			pass "$p ($insns instructions, kernel $(uname -r))"
		else
			fail "$p" "not loaded"
		fi
	done
	if bpftool prog load "$RPCTLS_BUILD/bpf/guard.bpf.o" "$pin/recv_guard" \
		map name conns pinned "$pin-maps/conns" map name sk_cookie pinned "$pin-maps/sk_cookie" \
		map name ctl pinned "$pin-maps/ctl" >> "$log" 2>&1; then
		pass "recv_guard (kernel $(uname -r))"
	elif grep -q "Operation not permitted" "$log"; then
		echo "SKIP: recv_guard: this kernel refuses BPF LSM programs (EPERM); the VM tier loads it"
	else
		fail recv_guard "the verifier refused guard.bpf.o: $(grep -v '^;' "$log" | tail -n 3 | tr '\n' ' ')"
	fi
else
	fail load "the kernel refused rpctls.bpf.o: $(grep -v '^;' "$log" | tail -n 5 | tr '\n' ' ')"
fi
rm -rf "$pin" "$pin-maps"
finish
