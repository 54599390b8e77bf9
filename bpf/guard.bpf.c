// SPDX-License-Identifier: GPL-2.0
/*
 * rpctls read guard: a BPF LSM program, apart from rpctls.bpf.o because some
 * kernels refuse BPF LSM programs (BPF not among the active LSMs, or a
 * policy); rpctls then works without it, and says so. Loaded onto the maps
 * rpctls.bpf.o pinned (conns, sk_cookie, ctl).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "rpctls/shared.h"
#include "maps.h"

#define EAGAIN 11

char LICENSE[] SEC("license") = "GPL";

/*
 * While the controller runs a server handshake on the application's socket
 * (out of the sockhash, SO_RCVLOWAT raised), the application could still
 * read: woken before, by the probe BPF dropped, it may call recv() late, and a
 * read takes whatever is queued. It gets EAGAIN instead, as a non-blocking
 * reader does when nothing is there; the controller's own reads pass.
 * Attached per cgroup (BPF_LSM_CGROUP): runs for the sockets of that cgroup.
 */
SEC("lsm_cgroup/socket_recvmsg")
int BPF_PROG(recv_guard, struct socket *sock, struct msghdr *msg, int size, int flags)
{
	struct sock *sk = sock->sk;
	struct ctl_state *cs;
	struct conn *c;
	__u64 *cookie;
	__u32 zero = 0;

	if (!sk)
		return 1;
	cookie = bpf_sk_storage_get(&sk_cookie, sk, 0, 0);
	if (!cookie)
		return 1;
	c = bpf_map_lookup_elem(&conns, cookie);
	if (!c || c->phase != PH_HANDSHAKE)
		return 1;
	cs = bpf_map_lookup_elem(&ctl, &zero);
	if (cs && (__u32)(bpf_get_current_pid_tgid() >> 32) == cs->ctl_tgid)
		return 1;
	bpf_set_retval(-EAGAIN);
	return 0;
}
