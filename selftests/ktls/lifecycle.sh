#!/bin/bash
# A connection after its handshake, and the controller's own life: records
# after the hand-over, closure, controller restarts (SIGTERM and kill -9),
# a reconnect storm, SIGHUP with a CRL that revokes a live peer, detach.
# See issue "Connection lifecycle" and docs/design.md, "What the application
# sees".
. "$RPCTLS_TOP/selftests/lib/lib.sh"
. "$RPCTLS_TOP/selftests/lib/env.sh"
set -o pipefail
hosts_up
scg=$(mk_cgroup srv)
ccg=$(mk_cgroup cli)
trap 'env_down; rm_cgroup "$scg"; rm_cgroup "$ccg"' EXIT
# A PKI of our own: this test revokes a certificate.
pki=$WORK/pki
cp -r "$PKI" "$pki"
conf() { # SERVER-POLICY
	cat > "$WORK/rpctls.conf" <<-EOF
		[server]
		ports = 111, 5000
		policy = $1
		certificate = $pki/server.pem
		key = $pki/server.key
		ca = $pki/ca.pem
		crl = $pki/ca-crl.pem
		client_certificate = request
		handshake_timeout = 30s
		queue_timeout = 600s
		max_handshakes = 16

		[client]
		ca = $pki/ca.pem

		[destination 10.99.0.3]
	EOF
}
conf required
ip -n $NS_S addr add 10.99.0.3/24 dev veth-s
check attach-server "$RPCTLS" attach "$scg" --role server -c "$WORK/rpctls.conf"
check attach-client "$RPCTLS" attach "$ccg" --role client -c "$WORK/rpctls.conf"
start_rpcbind "$scg" || fail rpcbind "did not start"
bg echo in_ns_cg $NS_S "$scg" "$PY" "$RPCTLS_TOP/selftests/lib/tcpeer.py" echo 5000 \
	--ready "$WORK/echo.ready" --log "$WORK/echo.seen" > /dev/null
wait_for 20 test -s "$WORK/echo.ready"
bg rpcsrv in_ns_cg $NS_S - "$T/rpcsrv" --cert "$pki/server.pem" --key "$pki/server.key" \
	--ready "$WORK/rpcsrv.ready" --log "$WORK/rpcsrv.calls" 7001 > /dev/null
wait_for 10 test -s "$WORK/rpcsrv.ready"
start_ctl "$WORK/rpctls.conf" || fail controller "did not start"

C() { ip netns exec $NS_C "$@"; }
rpcc() { C "$T/rpcc" "$@"; }
A() { (in_ns_cg $NS_C "$ccg" "$@"); }	# a subshell: in_ns_cg execs
tls=(--tls --ca "$pki/ca.pem")
logged_after() { # N PATTERN: a line matching after line N of the log
	tail -n +"$(($1 + 1))" "$WORK/ctl.log" | grep -E -- "$2" >/dev/null	# not -q: pipefail, SIGPIPE
}
mark() { wc -l < "$WORK/ctl.log"; }

# ---- records after the hand-over ----
m=$(mark)
out=$(rpcc "${tls[@]}" --marker CLOSE-NOW --no-reply --end wait $S4 5000)
check app-close-sends-close-notify grep -q "server ended with close_notify" <<<"$out"
check app-close-logged wait_for 5 logged_after "$m" "the application closed it: close_notify sent"
m=$(mark)
out=$(rpcc "${tls[@]}" --call pmap-dump --end close-notify $S4 111)
check peer-close-notify-answered grep -q "server answered close_notify" <<<"$out"
check peer-close-notify-logged logged_after "$m" "the peer sent close_notify: answered, the application reads end of file"
m=$(mark)
out=$(rpcc "${tls[@]}" --call pmap-dump --end keyupdate $S4 111)
check keyupdate-closes grep -qE "after KeyUpdate: (EOF|RST)" <<<"$out"
check keyupdate-logged wait_for 5 logged_after "$m" "refused \(KeyUpdate the kernel cannot follow\)"
m=$(mark)
out=$(rpcc "${tls[@]}" --call pmap-dump --end alert $S4 111)
check fatal-alert-closes grep -qE "after our fatal alert: (EOF|RST)" <<<"$out"
check fatal-alert-logged wait_for 5 logged_after "$m" "refused \(fatal alert from the peer\).*alert 80"
check rpcbind-serves-on rpcc "${tls[@]}" --call pmap-dump $S4 111
# The client role: the application's close is the server's close_notify.
: > "$WORK/rpcsrv.calls"
check client-app-works A "$T/rpcc" --count 2 10.99.0.3 7001
check client-app-close-notify wait_for 5 grep -q "END close_notify" "$WORK/rpcsrv.calls"

# ---- controller restarts: SIGTERM, then kill -9 ----
for how in TERM KILL; do
	# A long-running client on kTLS across the restart, a client caught in
	# the handshake, a new plain connection while no controller runs.
	rpcc "${tls[@]}" --call pmap-dump --count 30 --gap 300 $S4 111 > "$WORK/long-$how.out" &
	long=$!
	rpcc --after-probe stall $S4 5000 > "$WORK/stall-$how.out" &
	stalled=$!
	sleep 2
	m=$(mark)
	kill -$how "$ctl_pid"
	wait "$ctl_pid" 2>/dev/null
	if [ $how = TERM ]; then
		check "sigterm-closes-handshake" wait_for 10 grep -qE "^(EOF|RST) after" "$WORK/stall-$how.out"
	fi
	: > "$WORK/echo.seen"
	out=$(rpcc --timeout 3 --marker DOWNTIME-PLAIN $S4 5000)
	check "$how-downtime-plain-refused" grep -q "no reply" <<<"$out"
	start_ctl "$WORK/rpctls.conf"
	check "$how-downtime-plain-closed-after-restart" wait_for 10 logged_after "$m" "refused \((plain RPC where TLS is required|no controller running)\)"
	check "$how-downtime-app-never-saw-it" test ! -s "$WORK/echo.seen"
	wait "$stalled"
	check "$how-bpf-phase-closed" grep -qE "^(EOF|RST) after" "$WORK/stall-$how.out"
	wait "$long"
	check "$how-ktls-client-across-restart" grep -q "^ok 1 30" "$WORK/long-$how.out"
	check "$how-works-after-restart" rpcc "${tls[@]}" --call pmap-dump $S4 111
done
check restart-adopted logged_after 0 "found [1-9][0-9]* kTLS connection\(s\) to adopt"

# ---- a reconnect storm: 1000 clients at once after the server restarts ----
# rpcbind needs a descriptor per client, and libtirpc sizes its tables from
# the limit it starts with: beyond 1024 it ignores new connections, and short
# of descriptors it closes the ones that look idle (one in its handshake does).
pkill -x rpcbind
ulimit -Hn 8192 && ulimit -Sn 8192
start_rpcbind "$scg"
out=$(rpcc "${tls[@]}" --call pmap-dump --conns 1000 --timeout 600 --latency $S4 111)
echo "$out" | grep -v "^conn " | sed 's/^/# storm: /'
# Why connections failed, most frequent first.
echo "$out" | sed -n 's/^conn [0-9]*: //p' | sed 's/[0-9][0-9.]*/N/g' | sort | uniq -c | sort -rn | head -5 |
	sed 's/^/# storm failure: /'
peak=$(awk '/VmHWM/ {print $2, $3}' "/proc/$ctl_pid/status")
echo "# storm: controller peak memory (VmHWM) $peak"
if grep -q "^ok 1000 " <<<"$out"; then
	served=1000 failed=0
else
	failed=$(sed -n 's/^failed \([0-9]*\) of 1000 connections.*/\1/p' <<<"$out")
	served=$((1000 - ${failed:-1000}))
fi
check "storm-every-failure-has-a-reason ($served served, ${failed:-?} failed; $(grep latency <<<"$out" | cut -d: -f2); peak $peak)" \
	test "$(grep -c "^conn [0-9]*: " <<<"$out")" = "${failed:-x}"
check storm-no-garbage eval '! grep -q "malformed\|unexpected\|mismatch" <<<"$out"'
check storm-most-served test "$served" -ge 990

# ---- SIGHUP: a new certificate; a CRL that revokes a connected peer ----
rpcc "${tls[@]}" --cert "$pki/client.pem" --key "$pki/client.key" --call pmap-dump --count 40 --gap 250 \
	$S4 111 > "$WORK/revoked.out" &
victim=$!
rpcc "${tls[@]}" --call pmap-dump --count 30 --gap 250 $S4 111 > "$WORK/bystander.out" &
bystander=$!
sleep 3
(cd "$pki" && openssl ca -config ca.cnf -revoke client.pem -keyfile ca.key -cert ca.pem 2>/dev/null &&
	openssl ca -config ca.cnf -gencrl -keyfile ca.key -cert ca.pem -out ca-crl.pem 2>/dev/null)
m=$(mark)
kill -HUP "$ctl_pid"
check sighup-logged wait_for 10 logged_after "$m" "SIGHUP: .* reloaded.* 1 connection\(s\) closed for a revoked certificate"
check revoked-peer-closed-logged logged_after "$m" "refused \(peer certificate revoked\)"
wait "$victim"
check revoked-peer-cut-off eval '! grep -q "^ok 1 40" "$WORK/revoked.out"'
wait "$bystander"
check others-untouched-by-reload grep -q "^ok 1 30" "$WORK/bystander.out"
out=$(rpcc "${tls[@]}" --cert "$pki/client.pem" --key "$pki/client.key" --call pmap-dump $S4 111)
check revoked-cert-refused-after grep -q "failed\|no reply" <<<"$out"
check sighup-bad-config-keeps-running sh -c "echo 'bogus line' >> '$WORK/rpctls.conf'; kill -HUP $ctl_pid; sleep 1; kill -0 $ctl_pid"
check sighup-bad-config-logged wait_for 5 grep -q "SIGHUP: .* has an error" "$WORK/ctl.log"
conf required

# ---- detach with live connections ----
rpcc "${tls[@]}" --call pmap-dump --count 20 --gap 250 $S4 111 > "$WORK/detach-ktls.out" &
live=$!
rpcc --after-probe stall $S4 5000 > "$WORK/detach-stall.out" &
stalled=$!
sleep 2
check detach-server "$RPCTLS" detach "$scg"
wait "$stalled"
check detach-bpf-phase-closed grep -qE "^(EOF|RST) after" "$WORK/detach-stall.out"
wait "$live"
check detach-ktls-goes-on grep -q "^ok 1 20" "$WORK/detach-ktls.out"
finish
