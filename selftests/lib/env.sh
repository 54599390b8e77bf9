# Hosts and services for the VM tests: sourced after lib.sh.
#
# Two network namespaces joined by a veth pair make a server host and a
# client host:
#   rpctls-srv: 10.99.0.1/24, fd99::1/64 on veth-s
#   rpctls-cli: 10.99.0.2/24, fd99::2/64 on veth-c
# Programs run inside a namespace and inside a cgroup (in_ns_cg). The
# controller runs in the root namespace: it reaches sockets by pidfd, not by
# address. Everything started here is stopped by env_down.

NS_S=rpctls-srv
NS_C=rpctls-cli
S4=10.99.0.1
C4=10.99.0.2
S6=fd99::1
C6=fd99::2
WORK=${WORK:-$RPCTLS_BUILD/tests/work/$(basename "$0" .sh)}
rm -rf "$WORK" && mkdir -p "$WORK"
PKI=$RPCTLS_BUILD/tests/pki
env_pids=()

netns_up() {
	ip netns add $NS_S && ip netns add $NS_C || return 1
	ip link add veth-s netns $NS_S type veth peer name veth-c netns $NS_C || return 1
	ip -n $NS_S addr add $S4/24 dev veth-s
	ip -n $NS_C addr add $C4/24 dev veth-c
	ip -n $NS_S addr add $S6/64 dev veth-s nodad
	ip -n $NS_C addr add $C6/64 dev veth-c nodad
	for ns in $NS_S $NS_C; do
		ip -n $ns link set lo up
	done
	ip -n $NS_S link set veth-s up
	ip -n $NS_C link set veth-c up
	ip -n $NS_C route get $S4 >/dev/null
}

netns_down() {
	ip netns del $NS_S 2>/dev/null
	ip netns del $NS_C 2>/dev/null
}

# in_ns_cg NS CGROUP COMMAND...: exec COMMAND in the namespace and cgroup
# (CGROUP may be "-" for none).
in_ns_cg() {
	local ns=$1 cg=$2
	shift 2
	if [ "$cg" = - ]; then
		exec ip netns exec "$ns" "$@"
	fi
	# Join the cgroup first: ip netns exec mounts a sysfs of the namespace,
	# without /sys/fs/cgroup.
	exec sh -c 'echo $$ > "$0/cgroup.procs" && exec ip netns exec "$@"' "$cg" "$ns" "$@"
}

# bg NAME COMMAND...: start in the background, output to $WORK/NAME.log.
bg() {
	local name=$1
	shift
	"$@" >> "$WORK/$name.log" 2>&1 &
	env_pids+=($!)
	echo $!
}

# A suite's two hosts: the test PKI, nothing of rpctls left from before,
# fresh network namespaces (the suite stops if they cannot be made).
hosts_up() {
	"$RPCTLS_TOP/selftests/lib/mkcerts.sh" "$PKI"
	rpctls_reset
	netns_down
	netns_up || { fail setup "cannot make the network namespaces"; exit 1; }
}

# The server host's rpcbind, in cgroup $1.
start_rpcbind() {
	mkdir -p /run/rpcbind
	rm -f /run/rpcbind.sock /run/rpcbind/rpcbind.lock
	bg rpcbind in_ns_cg $NS_S "$1" /usr/sbin/rpcbind -f -w > /dev/null
	# Ready when it answers over UDP: TCP may be where TLS is required.
	wait_for 20 timeout 5 ip netns exec $NS_S rpcinfo -T udp 127.0.0.1 100000 4 >/dev/null 2>&1
}

# NFS-Ganesha (VFS FSAL) exporting $EXPORT as /export, in cgroup $1. The
# export lives on tmpfs: the VFS FSAL needs file handles, which 9p lacks.
EXPORT=/tmp/rpctls-export
start_ganesha() {
	mkdir -p "$EXPORT" /run/ganesha /var/lib/nfs/ganesha
	echo "hello from ganesha" > "$EXPORT/hello.txt"
	cat > "$WORK/ganesha.conf" <<-EOF
		NFS_CORE_PARAM { Protocols = 3, 4; Enable_NLM = false; Enable_RQUOTA = false; NFS_Port = 2049; }
		NFSV4 { Graceless = true; }
		EXPORT {
			Export_Id = 1; Path = $EXPORT; Pseudo = /export; Protocols = 3, 4;
			Access_Type = RW; Squash = No_Root_Squash; SecType = sys, none;
			FSAL { Name = VFS; }
		}
		LOG { Default_Log_Level = WARN; }
	EOF
	bg ganesha in_ns_cg $NS_S "$1" /usr/bin/ganesha.nfsd -F -L "$WORK/ganesha-own.log" \
		-f "$WORK/ganesha.conf" -p "$WORK/ganesha.pid" > /dev/null
	wait_for 60 timeout 5 ip netns exec $NS_S rpcinfo -T udp 127.0.0.1 100003 3 >/dev/null 2>&1
}

# The controller with configuration file $1; log in $WORK/ctl.log.
# Ready when this controller, not an earlier one in the same log, says so.
ctl_starts() { cat "$WORK/ctl.log" 2>/dev/null | grep -c "controller started"; }
start_ctl() {
	local n0
	n0=$(ctl_starts)
	bg ctl "$RPCTLS" run -c "$1" ${CTL_VERBOSE--v} > /dev/null
	ctl_pid=${env_pids[-1]}
	wait_for 20 eval '[ "$(ctl_starts)" -gt "'"$n0"'" ]'
}

stop_ctl() {
	[ -n "${ctl_pid:-}" ] && kill "$ctl_pid" 2>/dev/null && wait "$ctl_pid" 2>/dev/null
	ctl_pid=
}

# capture_start NS IFACE FILE; capture_stop
capture_start() {
	bg tshark ip netns exec "$1" tshark -q -i "$2" -w "$3" -f tcp > /dev/null
	cap_pid=${env_pids[-1]}
	wait_for 20 grep -q "Capturing on" "$WORK/tshark.log"
}

capture_stop() {
	sleep 0.5
	kill -INT "$cap_pid" 2>/dev/null
	wait "$cap_pid" 2>/dev/null
}

env_down() {
	local p
	for p in "${env_pids[@]}"; do
		kill "$p" 2>/dev/null
	done
	for p in "${env_pids[@]}"; do
		wait "$p" 2>/dev/null
	done
	env_pids=()
	netns_down
	rpctls_reset
}

# Lines the controller logged that match a pattern (grep -E).
ctl_logged() { grep -qE -- "$1" "$WORK/ctl.log"; }
