#!/bin/bash
# The server role with unmodified Debian programs: rpcbind and NFS-Ganesha in
# an attached cgroup on the server host, RFC 9289 clients on the client host,
# the wire captured in between. See issue "Server role".
. "$RPCTLS_TOP/selftests/lib/lib.sh"
. "$RPCTLS_TOP/selftests/lib/env.sh"
set -o pipefail
trap env_down EXIT
hosts_up
cg=$(mk_cgroup srv)
trap 'env_down; rm_cgroup "$cg"' EXIT
echo_port=5000
sleepy_port=5001	# its server reads without waiting for readiness

conf() { # POLICY [extra lines]
	cat > "$WORK/rpctls.conf" <<-EOF
		[server]
		ports = 111, 2049, $echo_port, $sleepy_port
		policy = $1
		certificate = $PKI/server.pem
		key = $PKI/server.key
		handshake_timeout = 3s
		queue_timeout = 60s
		max_handshakes = 8
		$2
	EOF
}
conf optional
check attach "$RPCTLS" attach "$cg" --role server -c "$WORK/rpctls.conf"
start_rpcbind "$cg" || fail rpcbind "rpcbind did not come up"
start_ganesha "$cg" || fail ganesha "NFS-Ganesha did not come up"
bg echo in_ns_cg $NS_S "$cg" "$PY" "$RPCTLS_TOP/selftests/lib/tcpeer.py" echo $echo_port \
	--ready "$WORK/echo.ready" --log "$WORK/echo.seen" > /dev/null
wait_for 20 test -s "$WORK/echo.ready"
bg sleepy in_ns_cg $NS_S "$cg" "$PY" "$RPCTLS_TOP/selftests/lib/tcpeer.py" echo $sleepy_port \
	--blocking-read --ready "$WORK/sleepy.ready" > /dev/null
wait_for 20 test -s "$WORK/sleepy.ready"
start_ctl "$WORK/rpctls.conf" || fail controller "did not start"
capture_start $NS_C veth-c "$WORK/server.pcap"

C() { ip netns exec $NS_C "$@"; }
rpcc() { C "$T/rpcc" "$@"; }
tls=(--tls --ca "$PKI/ca.pem")
stat_of() { "$RPCTLS" -j status | jget "d['counters']['$1']"; }

# ---- RPC-with-TLS to unmodified rpcbind and NFS-Ganesha, IPv4 and IPv6 ----
for a in $S4 $S6; do
	v=$([ $a = $S4 ] && echo v4 || echo v6)
	check "rpcbind-$v-dump" rpcc "${tls[@]}" --call pmap-dump $a 111
	check "rpcbind-$v-getaddr" rpcc "${tls[@]}" --call rpcb-getaddr $a 111
	check "ganesha-$v-nfs3-null" rpcc "${tls[@]}" --call nfs3-null $a 2049
	check "ganesha-$v-nfs4-null" rpcc "${tls[@]}" --call nfs4-null $a 2049
	check "ganesha-$v-nfs4-compound" rpcc "${tls[@]}" --call nfs4-getattr-root $a 2049
done
check rpctls-probe-dump C "$RPCTLS" probe $S4:111 --ca "$PKI/ca.pem" --calls 2 --dump
check rpctls-probe-v6 C "$RPCTLS" probe "[$S6]:2049" --prog 100003 --vers 4 --ca "$PKI/ca.pem" --calls 1
check logged-outcome ctl_logged "pid [0-9]+ \(rpcbind\): TLSv1.3 TLS_AES_[0-9]+_GCM_SHA[0-9]+, ALPN sunrpc, .* on kernel TLS"
# After the hand-over the controller's wake-up filter is off the socket: 200
# calls on kernel TLS do not run it 200 times (the handshake takes a few).
notify_runs() { bpftool -j prog show pinned /sys/fs/bpf/rpctls/progs/rx_notify | jget "d.get('run_cnt', 0)"; }
sysctl -qw kernel.bpf_stats_enabled=1
n0=$(notify_runs)
check ktls-200-calls rpcc "${tls[@]}" --count 200 $S4 2049 --call nfs4-null
check wake-filter-off-after-handover eval '[ $(( $(notify_runs) - n0 )) -lt 30 ]'
sysctl -qw kernel.bpf_stats_enabled=0
# A thread asleep in read() when the probe comes: BPF marks the socket's
# recvmsg as entered before the probe was answered, and under "optional" the
# probe gets the no-TLS answer (kTLS cannot be set up under such a reader;
# on 6.1 it would also meet a stale copied_seq: the kernel-log check).
sleepy=$(C "$PY" "$RPCTLS_TOP/selftests/lib/tcpeer.py" probe $S4 $sleepy_port --wait 1)
# An accepted reply (MSG_ACCEPTED, SUCCESS) without the STARTTLS verifier.
check sleepy-reader-probe-no-tls eval '[[ $sleepy == 8000* && $sleepy != *5354415254544c53* ]]'

check reader-count-pinned test -e /sys/fs/bpf/rpctls/maps/sk_readers
check sleepy-reader-logged wait_for 5 ctl_logged "blocked in read\(\) on the socket: answered no-TLS"
# A connection that stays: rpctls conns and the kernel's own view of it.
rpcc "${tls[@]}" --call pmap-dump --hold 4 $S4 111 > /dev/null &
held=$!
wait_for 10 sh -c "'$RPCTLS' conns | grep -q ' ktls '"
conns=$("$RPCTLS" -j conns)
check conns-shows-ktls test "$(jget '[c["phase"] for c in d if c["comm"] == "rpcbind"][0]' <<<"$conns")" = ktls
check conns-tls-details test "$(jget '[(c["tls_version"], c["alpn_sunrpc"], c["flags"]["handshake"]) for c in d if c["phase"] == "ktls"][0]' <<<"$conns")" = "('TLSv1.3', True, True)"
check ktls-by-the-kernel sh -c "ip netns exec $NS_S ss -tni state established '( sport = :111 )' | grep -qi 'tls'"
wait $held

# Secrets in the calls never appear on the wire.
check marker-call rpcc "${tls[@]}" --marker RPCTLS-SECRET-MARKER --count 3 $S4 111

# ---- the races of the hand-over ----
check first-call-with-finished rpcc "${tls[@]}" --coalesce --count 1 $S4 111
check first-call-with-finished-then-more rpcc "${tls[@]}" --coalesce --count 8 $S4 2049 --call nfs4-null
check pipelined-16 rpcc "${tls[@]}" --pipeline --count 16 $S4 111
# NFS-Ganesha answers from several threads: replies may leave in any order
# (RPC allows it); every one must come, and each exactly once.
check pipelined-with-finished rpcc "${tls[@]}" --coalesce --pipeline --any-order --count 12 $S4 2049 --call nfs4-getattr-root
h0=$(stat_of handovers_ktls)
c0=$(stat_of handover_closed)
out=$(rpcc "${tls[@]}" --conns 100 --count 3 --call pmap-dump $S4 111)
h1=$(stat_of handovers_ktls)
c1=$(stat_of handover_closed)
echo "# 100 concurrent connections: $out; $((h1 - h0)) reached kTLS, $((c1 - c0)) closed at hand-over"
check "concurrent-100 ($((h1 - h0)) on kTLS, $((c1 - c0)) closed at hand-over)" test "$out" = "ok 100 300"
check concurrent-all-ktls test $((h1 - h0)) = 100

# ---- another TLS library as the client ----
check gnutls-client rpcc --gnutls --ca "$PKI/ca.pem" --count 3 --call pmap-dump $S4 111
check gnutls-client-v6 rpcc --gnutls --ca "$PKI/ca.pem" --call nfs4-getattr-root $S6 2049

# ---- policy optional: plain clients still work ----
check optional-rpcinfo C rpcinfo -T tcp $S4 100000 4
check optional-nfs-ls sh -c "ip netns exec $NS_C nfs-ls 'nfs://$S4/export?version=4' | grep -q hello.txt"
check optional-plain-call rpcc --count 2 $S4 111

capture_stop
out=$("$PY" "$RPCTLS_TOP/selftests/lib/capcheck.py" "$WORK/server.pcap" 111 --forbid RPCTLS-SECRET-MARKER)
rc=$?
echo "$out" | tail -n 1 | sed 's/^/# capture port 111: /'
check capture-111-tls-after-probe test $rc = 0
out=$("$PY" "$RPCTLS_TOP/selftests/lib/capcheck.py" "$WORK/server.pcap" 2049)
rc=$?
echo "$out" | tail -n 1 | sed 's/^/# capture port 2049: /'
check capture-2049-tls-after-probe test $rc = 0

# ---- bad input: the RFC's answer or a clean close with a reason ----
probe=80000028000000010000000000000002000186a000000004000000000000000700000000000000000000000000000000
# A credential body: AUTH_BADCRED (MSG_DENIED, AUTH_ERROR, AUTH_BADCRED).
call_hdr() { printf '%s00000000000000020001%s%s%s' "$1" "86a0" "$2" "$3"; }	# xid prog.. vers proc
badcred=80000030$(call_hdr 00000002 00000004 00000000)00000007000000080101010101010101$(printf '0%.0s' {1..16})
out=$(rpcc --raw-first "$badcred" $S4 111)
check probe-credential-badcred test "$out" = 800000140000000200000001000000010000000100000001
# Procedure 1 with AUTH_TLS: AUTH_REJECTEDCRED.
rejected=80000028$(call_hdr 00000003 00000004 00000001)0000000700000000$(printf '0%.0s' {1..16})
out=$(rpcc --raw-first "$rejected" $S4 111)
check probe-procedure-rejectedcred test "$out" = 800000140000000300000001000000010000000100000002
# A probe cut short: closed when the handshake timeout runs out.
out=$(rpcc --raw-first "${probe:0:80}" $S4 111)
check probe-truncated-closed test "$out" = EOF -o "$out" = RST
check probe-truncated-logged ctl_logged "refused \(timeout\).*probe incomplete"
# An oversized record mark on an AUTH_TLS call.
out=$(rpcc --raw-first "ffffffff${probe:8}" $S4 111)
check probe-oversized-closed test "$out" = EOF -o "$out" = RST
check probe-oversized-logged ctl_logged "refused \(malformed AUTH_TLS probe\)"
# Garbage instead of a ClientHello.
out=$(rpcc --after-probe garbage $S4 111)
check garbage-for-clienthello-closed grep -qE '^(EOF|RST)' <<<"$out"
check garbage-logged ctl_logged "refused \(TLS handshake failed\).*(http request|wrong version|unknown protocol|record|packet)"
# A TLS 1.2-only client.
out=$(rpcc --tls12 $S4 111)
check tls12-refused grep -q "TLS handshake" <<<"$out"
check tls12-logged ctl_logged "refused \(TLS handshake failed\).*(protocol|version)"
# A client that does not trust the server's CA.
out=$(rpcc --tls --ca "$PKI/other-ca.pem" $S4 111)
check untrusting-client-fails grep -q "certificate verify failed\|verify" <<<"$out"
check untrusting-client-logged ctl_logged "refused \(TLS handshake failed\).*(unknown ca|alert|certificate)"
# A client that stalls inside its ClientHello: the handshake timeout.
out=$(rpcc --after-probe stall $S4 111)
check stall-closed-on-timeout grep -qE '^(EOF|RST) after [2-9]' <<<"$out"
check stall-logged ctl_logged "refused \(timeout\).*handshake"
# A reset in the middle of the handshake.
refusals() { grep -cE "refused \((TLS handshake failed|peer reset)\)" "$WORK/ctl.log"; }
n0=$(refusals)
check rst-midhandshake rpcc --after-probe rst $S4 111
check rst-logged wait_for 5 eval '[ "$(refusals)" -gt "$n0" ]'
# After all of it, the servers still serve.
check rpcbind-still-serves rpcc "${tls[@]}" --call pmap-dump $S4 111
check ganesha-still-serves rpcc "${tls[@]}" --call nfs4-getattr-root $S4 2049
check rpcbind-alive kill -0 "$(pgrep -x rpcbind)"

# ---- policy required: a plain call never reaches the application ----
stop_ctl
conf required
start_ctl "$WORK/rpctls.conf"
: > "$WORK/echo.seen"
out=$(rpcc --marker PLAIN-CALL-MUST-NOT-ARRIVE $S4 $echo_port)
check required-plain-refused grep -q "no reply" <<<"$out"
check required-app-never-saw-it test ! -s "$WORK/echo.seen"
check required-logged ctl_logged "refused \(plain RPC where TLS is required\)"
check required-rpcinfo-refused eval "! C rpcinfo -T tcp $S4 100000 4 >/dev/null 2>&1"
check required-tls-works rpcc "${tls[@]}" --call pmap-dump $S4 111
finish
