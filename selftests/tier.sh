#!/bin/bash
# One tier of tests: "host" (the running kernel: parsers, verifier, attach)
# or "vm" (inside the VM: the host tier on 6.1, then the kernel TLS tests).
# Prints "PASS: tier/name" and "FAIL: tier/name: why" lines; the log of each
# test goes to $RPCTLS_BUILD/tests/results/<tier>/<name>.log.
set -u
tier=${1:?usage: tier.sh host|vm}
top=${RPCTLS_TOP:-$(cd "$(dirname "$0")/.." && pwd)}
build=${RPCTLS_BUILD:-$top/build}
export RPCTLS_TOP=$top RPCTLS_BUILD=$build
export RPCTLS=$build/rpctls T=$build/tests
logs=$build/tests/results/$tier
mkdir -p "$logs"
filter=${RPCTLS_FILTER:-}

# run NAME COMMAND...: a test that prints PASS:/FAIL: lines of its own, or
# none (then its exit status decides). Each line gets the tier/ prefix.
run() {
	local name=$1 log rc
	shift
	[ -n "$filter" ] && ! [[ "$tier/$name" =~ $filter ]] && return 0
	log=$logs/${name//\//_}.log
	"$@" > "$log" 2>&1
	rc=$?
	if grep -q '^\(PASS\|FAIL\): ' "$log"; then
		grep '^\(PASS\|FAIL\|SKIP\): ' "$log" | sed -E "s#^(PASS|FAIL|SKIP): #\1: $tier/$name/#"
		if [ $rc != 0 ] && ! grep -q '^FAIL: ' "$log"; then
			echo "FAIL: $tier/$name: exit status $rc without a failing check (log: $log)"
		fi
	elif [ $rc = 0 ]; then
		echo "PASS: $tier/$name"
	else
		echo "FAIL: $tier/$name: exit status $rc (log: $log)"
		tail -n 15 "$log" | sed 's/^/    /'
	fi
}

host_tier() {
	run parsers "$T/test_parse"
	run parsers-bpf "$T/test_parse_bpf" "$T/parse_test.bpf.o"
	run fuzz-parsers "$top/selftests/host/fuzz.sh"
	run verifier "$top/selftests/host/verifier.sh"
	run cli "$top/selftests/host/cli.sh"
	run attach "$top/selftests/host/attach.sh"
}

vm_tier() {
	host_tier
	for t in "$top"/selftests/ktls/*.sh; do
		[ -x "$t" ] && run "$(basename "$t" .sh)" "$t"
	done
}

case $tier in
host) host_tier ;;
vm) vm_tier ;;
*) echo "tier.sh: unknown tier $tier" >&2; exit 2 ;;
esac
exit 0
