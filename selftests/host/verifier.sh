#!/bin/bash
# Every program of rpctls.bpf.o passes the running kernel's verifier
# (loaded with bpftool alone, as the README shows for users without the CLI).
. "$RPCTLS_TOP/selftests/lib/lib.sh"
pin=/sys/fs/bpf/rpctls-verifier-$$
mount | grep -q ' /sys/fs/bpf type bpf' || mount -t bpf bpf /sys/fs/bpf
if bpftool prog loadall "$RPCTLS_BUILD/bpf/rpctls.bpf.o" "$pin" pinmaps "$pin.maps" > "$RPCTLS_BUILD/tests/verifier.log" 2>&1; then
	for p in sockops_srv sockops_cli sockops_both skb_verdict msg_verdict iter_sockfd rx_notify; do
		if [ -e "$pin/$p" ]; then
			insns=$(bpftool -j prog show pinned "$pin/$p" | jget 'd.get("bytes_xlated", 0) // 8')
			pass "$p ($insns instructions, kernel $(uname -r))"
		else
			fail "$p" "not loaded"
		fi
	done
else
	fail load "the kernel refused rpctls.bpf.o: $(grep -v '^;' "$RPCTLS_BUILD/tests/verifier.log" | tail -n 5 | tr '\n' ' ')"
fi
rm -rf "$pin" "$pin.maps"
finish
