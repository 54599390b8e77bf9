#!/bin/bash
# rpctls attach/status/conns/detach on the running kernel, with real TCP
# connections made by processes inside the attached cgroup; the bad inputs;
# and the bpftool-only way the README shows.
. "$RPCTLS_TOP/selftests/lib/lib.sh"
peer=$RPCTLS_TOP/selftests/lib/tcpeer.py
tmp=$(mktemp -d)
port=$((20000 + $$ % 10000))
cg=$(mk_cgroup attach)
cleanup() {
	[ -n "${srv:-}" ] && kill "$srv" 2>/dev/null
	rpctls_reset
	rm_cgroup "$cg"
	rm -rf "$tmp"
}
trap cleanup EXIT
rpctls_reset
mount | grep -q ' /sys/fs/bpf type bpf' || mount -t bpf bpf /sys/fs/bpf
printf '[server]\nports = %s\npolicy = optional\n' "$port" > "$tmp/rpctls.conf"
nothing_pinned() { test ! -e /sys/fs/bpf/rpctls; }
sockops_attached() { bpftool cgroup show "$cg" 2>/dev/null | grep -q sock_ops; }
conn_count() { "$RPCTLS" -j conns | jget 'len(d)'; }
sockets_fill() { "$RPCTLS" -j status | jget '[m for m in d["maps"] if m["name"]=="sockets"][0]["entries"]'; }

# ---- bad inputs: one clear line, non-zero exit, nothing left behind ----
expect_fail attach-not-cgroup "^rpctls: error: $tmp: not a cgroup v2 directory" "$RPCTLS" attach "$tmp"
check attach-not-cgroup-nothing-pinned nothing_pinned
expect_fail attach-missing "^rpctls: error: /nonexistent/cg: No such file" "$RPCTLS" attach /nonexistent/cg
expect_fail attach-file "not a directory" "$RPCTLS" attach /etc/hostname
v1=$(awk '$3 == "cgroup" { print $2; exit }' /proc/mounts)
if [ -n "$v1" ]; then
	expect_fail attach-cgroup-v1 "not a cgroup v2 directory" "$RPCTLS" attach "$v1"
fi
expect_fail detach-nothing-loaded "^rpctls: error: $cg is not attached" "$RPCTLS" detach "$cg"
expect_fail attach-bad-role "unknown role 'boss'" "$RPCTLS" attach "$cg" --role boss
expect_fail attach-not-root "^rpctls: error: attach needs root" \
	setpriv --reuid=65534 --regid=65534 --clear-groups "$RPCTLS" attach "$cg" -c "$tmp/rpctls.conf"
# Root of a user namespace: uid 0 without the right to use BPF.
expect_fail attach-no-bpf-privilege "^rpctls: error: " unshare -Ur "$RPCTLS" attach "$cg" -c "$tmp/rpctls.conf"
check attach-no-bpf-privilege-nothing-pinned nothing_pinned
check attach-no-bpf-privilege-not-attached eval '! sockops_attached'
# A BPF object the kernel's verifier refuses.
RPCTLS_BPF_OBJECT=$T/bad.bpf.o expect_fail attach-rejected-program \
	"^rpctls: error: the kernel rejected the BPF programs" "$RPCTLS" attach "$cg" -c "$tmp/rpctls.conf"
check attach-rejected-nothing-pinned nothing_pinned
check attach-rejected-not-attached eval '! sockops_attached'

# ---- attach, again, role change ----
check attach "$RPCTLS" attach "$cg" -c "$tmp/rpctls.conf"
check attach-pins test -e /sys/fs/bpf/rpctls/maps/sockets -a -e /sys/fs/bpf/rpctls/progs/sockops_srv \
	-a -n "$(ls /sys/fs/bpf/rpctls/links)"
check attach-sockops-on-cgroup sockops_attached
check attach-twice-harmless "$RPCTLS" attach "$cg" -c "$tmp/rpctls.conf"
check attach-twice-one-link test "$(bpftool cgroup show "$cg" | grep -c sock_ops)" = 1
check role-change "$RPCTLS" attach "$cg" --role both -c "$tmp/rpctls.conf"
check role-change-status test "$("$RPCTLS" -j status | jget 'd["cgroups"][0]["role"]')" = both
check role-back "$RPCTLS" attach "$cg" --role server -c "$tmp/rpctls.conf"
check status-json-cgroup test "$("$RPCTLS" -j status | jget 'd["cgroups"][0]["path"]')" = "$(realpath "$cg")"

# ---- a real connection of a process inside the cgroup ----
in_cgroup "$cg" "$PY" "$peer" echo "$port" --ready "$tmp/ready" &
srv=$!
wait_for 5 test -s "$tmp/ready"
"$PY" "$peer" talk 127.0.0.1 "$port" 00 --hold 10 > "$tmp/talk1" &
talker=$!
wait_for 5 eval 'test "$(sockets_fill)" -ge 1'
status=$("$RPCTLS" -j status)
check connection-in-sockhash test "$(sockets_fill)" = 1
check connection-counted test "$(jget 'd["counters"]["connections_server"]' <<<"$status")" -ge 1
conns=$("$RPCTLS" -j conns)
check conns-owner test "$(jget 'd[0]["pid"]' <<<"$conns")" = "$srv"
check conns-comm test "$(jget 'd[0]["comm"]' <<<"$conns")" = "$(basename "$PY")"
check conns-port test "$(jget 'd[0]["local"]' <<<"$conns")" = "127.0.0.1:$port"
check conns-cgroup test "$(jget 'd[0]["cgroup_id"]' <<<"$conns")" = "$(jget 'd["cgroups"][0]["cgroup_id"]' <<<"$status")"
check conns-table grep -q "^127.0.0.1:$port .* server " <("$RPCTLS" conns)
kill "$talker" 2>/dev/null
wait "$talker"
# The one byte (not RPC, policy optional) reached the application and came back.
check plain-passes test "$(cat "$tmp/talk1")" = 00
# A plain RPC call passes too, whole and in order: in one segment, and cut
# in two (a first segment too short to classify is plain under "optional").
call=80000028000000010000000000000002000186a0000000040000000000000000000000000000000000000000
check plain-call-passes test "$("$PY" "$peer" talk 127.0.0.1 "$port" "$call")" = "$call"
out=$("$PY" "$peer" talk 127.0.0.1 "$port" "${call:0:40}" "${call:40}" | tr -d '\n')
check plain-call-split-passes test "$out" = "$call"
check closed-leaves-conns wait_for 5 eval 'test "$(conn_count)" = 0'

# A probe with no controller running (policy optional): the application gets
# it and answers for itself (an RPC server says AUTH_ERROR, "no TLS here";
# this echo server echoes it), and the connection goes on in clear text.
reply=$("$PY" "$peer" probe 127.0.0.1 "$port" --xid 0x01020304 | head -n 1)
check probe-no-controller-to-application test "$reply" = 80000028010203040000000000000002000186a0000000040000000000000007000000000000000000000000
check probe-no-controller-counted test "$("$RPCTLS" -j status | jget 'd["counters"]["probes_received"]')" -ge 1

# ---- detach: links and pins go, the connection goes on in clear text ----
"$PY" "$peer" talk 127.0.0.1 "$port" 0102 --hold 2 --gap 1 > "$tmp/talk2" &
talker=$!
sleep 0.5
check detach "$RPCTLS" detach "$cg"
check detach-nothing-pinned nothing_pinned
check detach-not-attached eval '! sockops_attached'
wait "$talker"
check detach-connection-goes-on test "$(cat "$tmp/talk2")" = 0102
expect_fail detach-twice "^rpctls: error: $cg is not attached" "$RPCTLS" detach "$cg"
# After detach the cgroup's new connections are plain TCP, untouched.
check after-detach-untracked test "$("$PY" "$peer" talk 127.0.0.1 "$port" abcd)" = abcd

# ---- bpftool alone, as the README shows; rpctls finds the pinned maps ----
P=/sys/fs/bpf/rpctls
mkdir -p $P
if bpftool prog loadall "$RPCTLS_BUILD/bpf/rpctls.bpf.o" $P/progs pinmaps $P/maps &&
	bpftool prog attach pinned $P/progs/skb_verdict sk_skb_verdict pinned $P/maps/sockets &&
	bpftool prog attach pinned $P/progs/msg_verdict sk_msg_verdict pinned $P/maps/sockets &&
	bpftool map update pinned $P/maps/srv_ports key $((port & 255)) $((port >> 8)) value 1 0 0 0 &&
	bpftool cgroup attach "$cg" sock_ops pinned $P/progs/sockops_srv multi; then
	pass bpftool-load-attach
else
	fail bpftool-load-attach "bpftool could not load or attach"
fi
"$PY" "$peer" talk 127.0.0.1 "$port" 00 --hold 2 > /dev/null &
talker=$!
check bpftool-connection-seen wait_for 5 eval 'test "$(conn_count)" = 1'
check bpftool-status-loaded test "$("$RPCTLS" -j status | jget 'd["loaded"]')" = True
wait "$talker"
check bpftool-detach-by-rpctls "$RPCTLS" detach "$cg"
check bpftool-detached eval '! sockops_attached'
check bpftool-nothing-pinned nothing_pinned
finish
