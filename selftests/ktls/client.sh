#!/bin/bash
# The client role: unmodified RPC clients (rpcinfo, libnfs's nfs-ls and
# nfs-cat, and rpcc in its plain mode, which knows nothing of TLS) in an
# attached client cgroup reach servers through RFC 9289. On the server host:
# rpcbind and NFS-Ganesha under rpctls (server role), and rpcsrv, a test
# server that can be another TLS library or misbehave. See issue "Client role".
. "$RPCTLS_TOP/selftests/lib/lib.sh"
. "$RPCTLS_TOP/selftests/lib/env.sh"
set -o pipefail
hosts_up
scg=$(mk_cgroup srv)
ccg=$(mk_cgroup cli)
trap 'env_down; rm_cgroup "$scg"; rm_cgroup "$ccg"' EXIT
# More addresses on the server host, one per client policy to try:
#  .1 real servers (required)   .3 misbehaving servers (required)
#  .4 a server without TLS, optional   .5 a server that is not "wrong.test"
for a in 10.99.0.3 10.99.0.4 10.99.0.5; do ip -n $NS_S addr add $a/24 dev veth-s; done
MIS=10.99.0.3 OPT=10.99.0.4 NAMED=10.99.0.5

# The server side here runs its handshakes in the event loop itself (no
# worker threads): the other suites run them on threads.
cat > "$WORK/rpctls.conf" <<EOF
[global]
handshake_threads = 0

[server]
ports = 111, 2049
policy = optional
certificate = $PKI/server.pem
key = $PKI/server.key

[client]
ca = $PKI/ca.pem
policy = required

[destination $S4]
ports = 111, 2049
[destination $S6]
[destination $MIS]
[destination $OPT]
policy = optional
[destination $NAMED]
name = wrong.test
EOF
check attach-server "$RPCTLS" attach "$scg" --role server -c "$WORK/rpctls.conf"
check attach-client "$RPCTLS" attach "$ccg" --role client -c "$WORK/rpctls.conf"
start_rpcbind "$scg" || fail rpcbind "did not start"
start_ganesha "$scg" || fail ganesha "did not start"
srv() { # PORT NAME ARGS...: an rpcsrv on the server host, outside rpctls
	local port=$1 name=$2
	shift 2
	bg "rpcsrv-$name" in_ns_cg $NS_S - "$T/rpcsrv" --cert "$PKI/server.pem" --key "$PKI/server.key" \
		--ready "$WORK/rpcsrv-$name.ready" --log "$WORK/rpcsrv-$name.calls" "$@" "$port" > /dev/null
	wait_for 10 test -s "$WORK/rpcsrv-$name.ready"
}
srv 7001 tickets --tickets 2
srv 7002 gnutls --gnutls
srv 7003 nostarttls --mode no-starttls
srv 7004 emptyverf --mode empty-verifier
srv 7005 badxid --mode bad-xid
srv 7006 truncated --mode truncated-reply
srv 7007 oversized --mode oversized-reply
srv 7008 close --mode close-mid-handshake
srv 7009 stall --mode stall-mid-handshake
srv 7010 otherca --cert "$PKI/other-server.pem" --key "$PKI/other-server.key"
start_ctl "$WORK/rpctls.conf" || fail controller "did not start"
capture_start $NS_C veth-c "$WORK/client.pcap"

A() { in_ns_cg $NS_C "$ccg" "$@"; }	# an application on the client host
app() { (A "$T/rpcc" "$@"); }		# rpcc, plain: rpctls adds the TLS

# ---- unmodified clients to unmodified servers, both under rpctls ----
# out_has PATTERN COMMAND...: the command's output matches.
out_has() { local p=$1; shift; grep -q -- "$p" <<<"$("$@" 2>&1)"; }
check rpcinfo-v4-null out_has 'ready and waiting' A rpcinfo -T tcp $S4 100000 4
check rpcinfo-v4-dump out_has portmapper A rpcinfo -T tcp $S4
check rpcinfo-v6-null out_has 'ready and waiting' A rpcinfo -T tcp6 $S6 100000 4
check nfs-ls out_has hello.txt A nfs-ls "nfs://$S4/export?version=4"
check nfs-cat out_has 'hello from ganesha' A nfs-cat "nfs://$S4/export/hello.txt?version=4"
check client-logged ctl_logged "pid [0-9]+ \(rpcinfo\): TLSv1.3 .* server /CN=server.test \(verified\), .* on kernel TLS"
check nfs-ls-logged ctl_logged "pid [0-9]+ \(nfs-ls\): TLSv1.3 .* on kernel TLS"
# A client that stays: rpctls conns shows both ends.
app --call pmap-dump --hold 4 $S4 111 > /dev/null &
held=$!
wait_for 15 sh -c "'$RPCTLS' -j conns | grep -q '\"role\":\"client\",[^}]*\"phase\":\"ktls\"'"
conns=$("$RPCTLS" -j conns)
check conns-client-identity test "$(jget '[(c["peer_certificate"], c["flags"]["verified"]) for c in d if c["role"] == "client" and c["phase"] == "ktls"][0]' <<<"$conns")" = "('/CN=server.test', True)"
wait $held

# ---- the application's bytes before the handshake: held, in order ----
check pipelined-before-tls app --pipeline --count 16 --marker RPCTLS-CLIENT-SECRET $S4 111
check pipelined-before-tls-ganesha app --pipeline --any-order --count 12 --call nfs4-getattr-root $S4 2049
check big-first-call app --bytes 60000 --count 3 $MIS 7001

# ---- other servers ----
check gnutls-server app --count 3 --marker RPCTLS-CLIENT-SECRET $MIS 7002
check openssl-server-with-tickets app --count 3 --marker RPCTLS-CLIENT-SECRET $MIS 7001
check tickets-server-got-the-calls test "$(grep -c . "$WORK/rpcsrv-tickets.calls")" -ge 3

# ---- refused: not one byte of the application's on the wire ----
out=$(app --marker NEVER-ON-THE-WIRE $MIS 7010)
check wrong-ca-refused grep -q "no reply\|failed" <<<"$out"
check wrong-ca-logged ctl_logged "refused \(server certificate refused\).*(unable to get local issuer|self.signed|certificate)"
out=$(app --marker NEVER-ON-THE-WIRE $NAMED 7001)
check name-mismatch-refused grep -q "no reply\|failed" <<<"$out"
check name-mismatch-logged ctl_logged "refused \(server certificate refused\).*(hostname mismatch|host)"
out=$(app --marker NEVER-ON-THE-WIRE $MIS 7003)
check no-tls-required-refused grep -q "no reply\|failed" <<<"$out"
check no-tls-required-logged ctl_logged "refused \(server refused STARTTLS\).*TLS is required"
check no-tls-server-saw-nothing sh -c "! grep -qi '$(printf NEVER-ON-THE-WIRE | xxd -p)' '$WORK/rpcsrv-nostarttls.calls'"
# ---- optional: clear text where the server has no TLS ----
check no-tls-optional-plain app --count 2 $OPT 7004
check no-tls-optional-logged ctl_logged "clear text \(policy optional\)"

# ---- bad replies: a clean close, a logged reason, never garbage ----
bad() { # NAME PORT PATTERN
	local out
	out=$(app --count 1 $MIS "$2")
	check "$1-closed" grep -q "no reply\|failed" <<<"$out"
	check "$1-logged" ctl_logged "$3"
	check "$1-no-garbage" eval '! grep -q "malformed reply\|unexpected" <<<"$out"'
}
bad probe-reply-wrong-xid 7005 "refused \(server refused STARTTLS\).*xid"
bad probe-reply-truncated 7006 "refused \(peer reset\).*closed the connection during the probe"
bad probe-reply-oversized 7007 "refused \(server refused STARTTLS\).*oversized"
bad server-closes-mid-handshake 7008 "refused \(peer reset\).*closed the connection during the handshake"
bad server-stalls-mid-handshake 7009 "refused \(timeout\).*TLS handshake"

capture_stop
for port in 111 2049 7001 7002; do
	out=$("$PY" "$RPCTLS_TOP/selftests/lib/capcheck.py" "$WORK/client.pcap" $port --forbid RPCTLS-CLIENT-SECRET)
	rc=$?
	echo "$out" | tail -n 1 | sed "s/^/# capture port $port: /"
	check "capture-$port-tls-after-probe" test $rc = 0
done
out=$("$PY" "$RPCTLS_TOP/selftests/lib/capcheck.py" "$WORK/client.pcap" 7010 --forbid NEVER-ON-THE-WIRE)
check capture-refused-never-on-wire test $? = 0
for port in 7003 7001; do
	out=$("$PY" "$RPCTLS_TOP/selftests/lib/capcheck.py" "$WORK/client.pcap" $port --forbid NEVER-ON-THE-WIRE)
	check "capture-$port-refused-never-on-wire" test $? = 0
done
finish
