// SPDX-License-Identifier: GPL-2.0
/*
 * rpctls's programs that need BPF LSM or tracing: apart from rpctls.bpf.o
 * because some kernels refuse those (BPF not among the active LSMs, or a
 * policy); rpctls then works without them, and says so. Loaded onto the maps
 * rpctls.bpf.o pinned (conns, sk_cookie, ctl, events).
 *
 *   recv_guard    no application read while the controller handshakes on
 *                 the socket (lsm_cgroup, per cgroup)
 *   close_watch   the application closed a descriptor of a kTLS socket the
 *                 controller holds: time to send close_notify
 *   rx_watch      the application's read met a non-data TLS record (an alert,
 *                 a KeyUpdate): the controller takes it out and acts
 *   rd_enter      a read entered the sockhash's recvmsg (sk_readers): before
 *                 the probe is answered, only an application that reads
 *                 without waiting for readiness does that
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "rpctls/shared.h"
#include "maps.h"

#define EAGAIN 11
#define EIO 5

static __always_inline bool is_controller(void)
{
	__u32 zero = 0;
	struct ctl_state *cs = bpf_map_lookup_elem(&ctl, &zero);

	return cs && (__u32)(bpf_get_current_pid_tgid() >> 32) == cs->ctl_tgid;
}

static __always_inline void emit(__u32 type, __u64 cookie)
{
	struct rpctls_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);

	if (!e)
		return;
	__builtin_memset(e, 0, sizeof(*e));
	e->type = type;
	e->cookie = cookie;
	bpf_ringbuf_submit(e, 0);
}

/* The cookie of a kTLS socket the controller holds, or 0. Not through
 * sk_storage: on 6.1, the verifier's check of bpf_sk_storage_get() in a
 * program attached to a module's function (tls_sw_recvmsg) dereferences a
 * NULL BTF type and oopses. */
static __always_inline __u64 held_ktls(struct sock *sk)
{
	__u64 cookie = bpf_get_socket_cookie(sk);
	struct conn *c = bpf_map_lookup_elem(&conns, &cookie);

	if (!c || c->phase != PH_KTLS || !(c->flags & CONN_F_HELD))
		return 0;
	return cookie;
}

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

/* close(), dup2() over it, or exit: a descriptor of the socket went away.
 * The controller asks the socket iterator whether the application has any
 * left. */
SEC("fentry/filp_close")
int BPF_PROG(close_watch, struct file *filp, void *id)
{
	struct socket *sock = bpf_sock_from_file(filp);
	__u64 cookie;

	if (!sock || !sock->sk || is_controller())
		return 0;
	cookie = held_ktls(sock->sk);
	if (cookie)
		emit(EV_APP_CLOSE, cookie);
	return 0;
}

/* kTLS answers EIO to a read that meets a non-data record. */
SEC("fexit/tls_sw_recvmsg")
int BPF_PROG(rx_watch, struct sock *sk, struct msghdr *msg, size_t len, int flags, int *addr_len, int ret)
{
	__u64 cookie;

	if (ret != -EIO || is_controller())
		return 0;
	cookie = held_ktls(sk);
	if (cookie)
		emit(EV_RX_RECORD, cookie);
	return 0;
}

/*
 * Reads that entered the sockhash's recvmsg, per tracked socket. The probe is
 * diverted, so an application that waits for readiness (libtirpc, ntirpc)
 * never reads before the probe is answered; one that does reads blindly, and
 * a blocking one sleeps in there, loops on the spurious EAGAIN the psock gives
 * it, and on 6.1 finds copied_seq stale once the verdict consumed the probe
 * under it: its socket cannot be handed to kTLS. The mark is kept, not undone
 * on the way out: the thread is back in a moment, and a look at the wrong
 * moment would miss it. The controller asks before the handshake.
 */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, __u64);
} sk_readers SEC(".maps");

static __always_inline void read_entered(struct sock *sk)
{
	__u64 *n;

	if (!bpf_sk_storage_get(&sk_cookie, sk, 0, 0))
		return;
	n = bpf_sk_storage_get(&sk_readers, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (n)
		__sync_fetch_and_add(n, 1);
}

/* 6.1 takes the _parser one for sockets with a verdict program; both are
 * watched, for kernels that choose otherwise. */
SEC("fentry/tcp_bpf_recvmsg_parser")
int BPF_PROG(rd_enter_parser, struct sock *sk)
{
	read_entered(sk);
	return 0;
}

SEC("fentry/tcp_bpf_recvmsg")
int BPF_PROG(rd_enter, struct sock *sk)
{
	read_entered(sk);
	return 0;
}
