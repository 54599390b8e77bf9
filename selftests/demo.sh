#!/bin/bash
# make demo: the main job end to end, inside the VM. A server host and a
# client host (network namespaces); the unmodified Debian rpcbind in an
# attached cgroup on the server host, under the rpctls controller; from the
# client host, rpctls probe does the AUTH_TLS probe, the TLS 1.3 handshake and
# an rpcbind DUMP inside TLS; then the unmodified Debian rpcinfo, in a cgroup
# attached with the client role, queries that rpcbind with both ends under
# rpctls; a capture of the wire shows that everything after the STARTTLS
# answer is TLS. Ends with one line: "demo: PASS" or "demo: FAIL: why".
set -u
build=${1:-build}
export RPCTLS_TOP=$(cd "$(dirname "$0")/.." && pwd)
export RPCTLS_BUILD=$(cd "$build" && pwd)
export RPCTLS=$RPCTLS_BUILD/rpctls T=$RPCTLS_BUILD/tests
. "$RPCTLS_TOP/selftests/lib/lib.sh"
. "$RPCTLS_TOP/selftests/lib/env.sh"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
why=""
demo_fail() { [ -n "$why" ] || why=$1; }
cleanup() { env_down; rm_cgroup "${cg:-}"; rm_cgroup "${ccg:-}"; }
trap cleanup EXIT

step "Setting up: a test CA, a server host ($S4, $S6) and a client host ($C4), joined by veth"
"$RPCTLS_TOP/selftests/lib/mkcerts.sh" "$PKI"
rpctls_reset
netns_down
netns_up || { echo "demo: FAIL: cannot create the network namespaces"; exit 1; }
cg=$(mk_cgroup demo-rpcbind)
ccg=$(mk_cgroup demo-rpcinfo)
cat > "$WORK/rpctls.conf" <<EOF
[server]
ports = 111
policy = required
certificate = $PKI/server.pem
key = $PKI/server.key

[client]
ca = $PKI/ca.pem

[destination $S4]
ports = 111
policy = required
EOF
echo "configuration ($WORK/rpctls.conf):"
sed 's/^/    /' "$WORK/rpctls.conf"

step "rpctls attach: rpcbind's cgroup with the server role, rpcinfo's with the client role"
"$RPCTLS" attach "$cg" --role server -c "$WORK/rpctls.conf" || demo_fail "attach failed"
"$RPCTLS" attach "$ccg" --role client -c "$WORK/rpctls.conf" || demo_fail "attach failed"

step "The unmodified Debian rpcbind, in that cgroup, on the server host"
start_rpcbind "$cg" || demo_fail "rpcbind did not start"
echo "rpcbind pid $(pgrep -x rpcbind), $(dpkg-query -W -f '${Package} ${Version}' rpcbind)"

sysctl -qw kernel.bpf_stats_enabled=1
step "rpctls run (the controller)"
start_ctl "$WORK/rpctls.conf" || demo_fail "the controller did not start"
grep -v debug "$WORK/ctl.log" | sed 's/^/    /'

step "Capturing the wire on the client host"
capture_start $NS_C veth-c "$WORK/demo.pcap"

step "From the client host: rpctls probe $S4:111 --ca ca.pem --dump"
ip netns exec $NS_C "$RPCTLS" probe $S4:111 --ca "$PKI/ca.pem" --calls 1 --dump || demo_fail "rpctls probe over IPv4 failed"

step "Again over IPv6, holding the connection while we look at it"
ip netns exec $NS_C "$T/rpcc" --tls --ca "$PKI/ca.pem" --call pmap-dump --hold 3 $S6 111 > /dev/null &
held=$!
wait_for 15 sh -c "'$RPCTLS' conns | grep -q ' ktls '"
echo "rpctls conns:"
"$RPCTLS" conns | sed 's/^/    /'
echo "the kernel's own view (ss -ti, server host):"
ip netns exec $NS_S ss -tni state established '( sport = :111 )' | sed 's/^/    /'
wait $held || demo_fail "the IPv6 connection failed"

step "The unmodified Debian rpcinfo on the client host, in the client cgroup: rpcinfo -T tcp $S4"
if (in_ns_cg $NS_C "$ccg" rpcinfo -T tcp $S4) > "$WORK/rpcinfo-tls.out" 2>&1; then
	sed 's/^/    /' "$WORK/rpcinfo-tls.out"
	echo "    the controller logged, for both ends:"
	grep "(rpcinfo)\|(rpcbind)" "$WORK/ctl.log" | grep -v debug | tail -n 2 | sed 's/^/    /'
else
	sed 's/^/    /' "$WORK/rpcinfo-tls.out"
	demo_fail "rpcinfo through rpctls failed"
fi

step "A plain RPC client (rpcinfo outside the client cgroup, no TLS) against policy required"
if ip netns exec $NS_C rpcinfo -T tcp $S4 100000 4 > "$WORK/rpcinfo.out" 2>&1; then
	sed 's/^/    /' "$WORK/rpcinfo.out"
	demo_fail "a plain client got an answer where TLS is required"
else
	sed 's/^/    /' "$WORK/rpcinfo.out"
	echo "    refused, as required; the controller logged:"
	grep "plain RPC where TLS is required" "$WORK/ctl.log" | tail -n 1 | sed 's/^/    /'
fi

capture_stop
step "What went over the wire (tshark capture, every record in order)"
"$PY" "$RPCTLS_TOP/selftests/lib/capcheck.py" "$WORK/demo.pcap" 111 --expect-tls 3 --expect-plain 1 \
	--transcript > "$WORK/capcheck.out"
rc=$?
sed 's/^/    /' "$WORK/capcheck.out"
[ $rc = 0 ] || demo_fail "the capture shows bytes that are not TLS after STARTTLS, or unexpected connections"

step "rpctls status"
"$RPCTLS" status | sed 's/^/    /'
step "The controller's log"
grep -v debug "$WORK/ctl.log" | sed 's/^/    /'

echo
if [ -z "$why" ]; then
	echo "demo: PASS"
	exit 0
fi
echo "demo: FAIL: $why"
exit 1
