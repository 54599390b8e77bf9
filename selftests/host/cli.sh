#!/bin/bash
# The command line: help at every level, prefixes, one error style, JSON that
# parses, and every bad configuration value refused with FILE:LINE.
. "$RPCTLS_TOP/selftests/lib/lib.sh"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"; rm_cgroup "$cg"' EXIT
rpctls_reset

check help "$RPCTLS" help >/dev/null 2>&1
for c in attach detach status conns version; do
	check "help-$c" sh -c "'$RPCTLS' $c help 2>&1 | grep -qE 'Usage|^rpctls '"
done
check version-json sh -c "'$RPCTLS' -j version | $PY -m json.tool >/dev/null"
check prefix sh -c "'$RPCTLS' ver | grep -q '^rpctls '"
expect_fail unknown-command "^rpctls: error: unknown command 'frobnicate'" "$RPCTLS" frobnicate
expect_fail no-command "Usage" "$RPCTLS"
check status-json-not-loaded sh -c "'$RPCTLS' status -j | $PY -c 'import json,sys; assert json.load(sys.stdin)[\"loaded\"] is False'"
expect_fail conns-not-loaded "^rpctls: error: rpctls is not loaded" "$RPCTLS" conns

# Bad configurations: each one FILE:LINE and a non-zero exit, nothing attached.
cg=$(mk_cgroup cli)
printf 'dummy\n' > "$tmp/cert.pem"
bad() {
	local name=$1 line=$2 pat=$3
	cat > "$tmp/$name.conf"
	expect_fail "config-$name" "^$tmp/$name.conf:$line: .*$pat" "$RPCTLS" attach "$cg" -c "$tmp/$name.conf"
}
printf '[server]\nports = 111\nfrobs = 3\n' | bad unknown-key 3 "unknown key 'frobs'"
printf '[server]\npolicy = maybe\n' | bad policy 2 "policy 'maybe'"
printf '[server]\nports = 111, 70000\n' | bad port 2 "port '70000'"
printf '[server]\nports = 111 111\n' | bad port-twice 2 "listed twice"
printf '[server]\ncertificate = /nonexistent/cert.pem\n' | bad missing-cert 2 "No such file"
printf '[server]\ncipher_suites = TLS_AES_128_CCM_SHA256\n' | bad cipher 2 "not a TLS 1.3 suite kernel TLS can carry"
printf "[server]\ncertificate = $tmp/cert.pem\n" | bad cert-no-key 2 "both certificate and key"
printf '[client]\nca = /etc/hostname\n[destination 300.1.2.3]\n' | bad dest-addr 3 "not an IPv4 or IPv6 address"
printf '[client]\nca = /etc/hostname\n[destination 10.0.0.0/33]\n' | bad dest-prefix 3 "prefix length"
printf '[server]\nports = 1\nports = 2\n' | bad twice 3 "set twice"
printf '[server]\nthis is not a line\n' | bad garbage 2 "expected 'key = value'"
printf '[serverr]\n' | bad section 1 "unknown section"
printf 'ports = 1\n' | bad outside 1 "outside a section"
printf '[server]\nhandshake_timeout = 10 parsecs\n' | bad timeout 2 "handshake_timeout"
printf '[server]\nmax_handshakes = 0\n' | bad max-hs 2 "max_handshakes"
printf '[destination 10.0.0.1]\nports = 111\n' | bad dest-no-ca 1 "need \\[client\\] ca"
printf '[global]\nlog_level = loud\n' | bad log-level 2 "log_level"
printf '[global]\nhandshake_threads = 65\n' | bad hs-threads 2 "handshake_threads"
check config-errors-attach-nothing test ! -e /sys/fs/bpf/rpctls
expect_fail config-missing-file "/nonexistent.conf: No such file" "$RPCTLS" attach "$cg" -c /nonexistent.conf
# The man pages render without a warning, and the example configuration is valid.
for m in "$RPCTLS_TOP/docs/rpctls.8" "$RPCTLS_TOP/docs/rpctls.conf.5"; do
	check "man-$(basename "$m")" sh -c "out=\$(groff -man -Tutf8 -ww -z '$m' 2>&1) && [ -z \"\$out\" ]"
done
pki=$RPCTLS_BUILD/tests/pki
"$RPCTLS_TOP/selftests/lib/mkcerts.sh" "$pki"
sed -e "s|/etc/rpctls/server.pem|$pki/server.pem|; s|/etc/rpctls/server.key|$pki/server.key|" \
	"$RPCTLS_TOP/docs/rpctls.conf.example" > "$tmp/example.conf"
check example-config-valid sh -c "'$RPCTLS' run --check -c '$tmp/example.conf' | grep -q 'configuration OK'"
# Certificates and keys are checked for what they hold, with the line.
printf '[server]\ncertificate = %s\nkey = %s\n' "$tmp/cert.pem" "$pki/server.key" > "$tmp/badcert.conf"
expect_fail config-cert-not-pem "^$tmp/badcert.conf:2: certificate $tmp/cert.pem: " "$RPCTLS" run --check -c "$tmp/badcert.conf"
printf '[server]\ncertificate = %s\nkey = %s\n' "$pki/server.pem" "$pki/client.key" > "$tmp/mismatch.conf"
expect_fail config-key-mismatch "^$tmp/mismatch.conf:3: key .*: " "$RPCTLS" run --check -c "$tmp/mismatch.conf"
finish
