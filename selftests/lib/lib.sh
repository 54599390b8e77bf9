# Shell helpers of the tests: sourced, never run.
# A test prints "PASS: name" / "FAIL: name: why" lines through pass/fail/check.

: "${RPCTLS_TOP:?}" "${RPCTLS_BUILD:?}"
# Debian's python3: a pyenv shim on PATH costs half a second a call.
PY=/usr/bin/python3
RPCTLS=${RPCTLS:-$RPCTLS_BUILD/rpctls}
failures=0

pass() { echo "PASS: $1"; }
fail() { echo "FAIL: $1: $2"; failures=$((failures + 1)); }

# check NAME CONDITION-COMMAND... : pass when the command succeeds.
check() {
	local name=$1
	shift
	if "$@"; then pass "$name"; else fail "$name" "failed: $*"; fi
}

# expect_fail NAME PATTERN COMMAND...: the command must exit non-zero and
# print a line matching PATTERN (grep -E) on stderr or stdout.
expect_fail() {
	local name=$1 pat=$2 out rc
	shift 2
	out=$("$@" 2>&1)
	rc=$?
	if [ $rc = 0 ]; then
		fail "$name" "exit status 0 for: $*"
	elif ! grep -qE -- "$pat" <<<"$out"; then
		fail "$name" "no line matching '$pat' in: $(head -c 400 <<<"$out")"
	else
		pass "$name"
	fi
}

# JSON field from stdin: jget 'd["controller"]["running"]'
jget() { "$PY" -c 'import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))' "$1"; }

# The cgroup v2 mount point (the VM mounts cgroup2 on /sys/fs/cgroup; hybrid
# hosts have it on /sys/fs/cgroup/unified).
cgroup2_root() {
	awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts
}

# mk_cgroup NAME: a fresh cgroup under the v2 root, path on stdout.
mk_cgroup() {
	local root p
	root=$(cgroup2_root)
	[ -n "$root" ] || { echo "no cgroup2 mount" >&2; return 1; }
	p=$root/rpctls-test-$1-$$
	mkdir -p "$p" && echo "$p"
}

# rm_cgroup PATH: kill what is left inside and remove it.
rm_cgroup() {
	local p=$1
	[ -d "$p" ] || return 0
	if [ -f "$p/cgroup.kill" ]; then
		echo 1 > "$p/cgroup.kill" 2>/dev/null
	else
		xargs -r kill -9 < "$p/cgroup.procs" 2>/dev/null
	fi
	for _ in 1 2 3 4 5 6 7 8 9 10; do rmdir "$p" 2>/dev/null && return 0; sleep 0.1; done
	return 1
}

# in_cgroup PATH COMMAND...: run COMMAND inside the cgroup. Replaces the
# calling (sub)shell, so that "in_cgroup ... &" leaves $! = COMMAND's pid.
in_cgroup() {
	local p=$1
	shift
	exec sh -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "$p" "$@"
}

# Leave nothing attached or pinned behind, whatever a test did.
rpctls_reset() {
	local cg
	if [ -d /sys/fs/bpf/rpctls ]; then
		for cg in $("$RPCTLS" -j status 2>/dev/null | jget '" ".join(c["path"] for c in d.get("cgroups", []))' 2>/dev/null); do
			"$RPCTLS" detach "$cg" >/dev/null 2>&1
		done
		rm -rf /sys/fs/bpf/rpctls
	fi
}

# wait_for SECONDS COMMAND...: poll until the command succeeds.
wait_for() {
	local t=$1 i
	shift
	for ((i = 0; i < t * 20; i++)); do
		"$@" && return 0
		sleep 0.05
	done
	return 1
}

finish() { [ "$failures" = 0 ]; }
