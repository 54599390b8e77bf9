// SPDX-License-Identifier: GPL-2.0
/*
 * rpctls BPF phase.
 *
 * sockops puts the RPC connections of attached cgroups into the "sockets"
 * sockhash at establishment; the sk_skb verdict looks at what the peer sends
 * while the connection is in the BPF phase: it recognises the AUTH_TLS probe
 * at the start of a server connection and diverts it to the controller
 * (ring buffer "events"), passes plain RPC where policy allows, and diverts
 * handshake bytes on client connections; the sk_msg program holds what a
 * client application sends before TLS is up. The controller then takes the
 * socket out of the sockhash and installs kernel TLS on it.
 *
 * See docs/design.md for the life of a connection.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_core_read.h>

#include "rpctls/parse.h"
#include "rpctls/shared.h"
#include "maps.h"

#define AF_INET		2
#define AF_INET6	10
#define SOL_SOCKET	1
#define SO_RCVLOWAT	18

char LICENSE[] SEC("license") = "GPL";

/* ---- maps ------------------------------------------------------------- */

struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, RPCTLS_MAX_CONNS);
	__type(key, __u64);
	__type(value, __u64);
} sockets SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, RPCTLS_MAX_PORTS);
	__type(key, __u16);
	__type(value, struct port_policy);
} srv_ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, RPCTLS_MAX_DESTS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct dest_key);
	__type(value, struct dest_policy);
} cli_dests SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, RPCTLS_MAX_CGROUPS);
	__type(key, __u64);
	__type(value, struct cg_attach);
} attached SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, ST__MAX);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

/* The controller's sink sockets, by slot, and the slots free for a new
 * client connection. */
struct {
	__uint(type, BPF_MAP_TYPE_SOCKMAP);
	__uint(max_entries, RPCTLS_MAX_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} sinks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_QUEUE);
	__uint(max_entries, RPCTLS_MAX_SLOTS);
	__type(value, __u32);
} free_slots SEC(".maps");


/* ---- helpers ---------------------------------------------------------- */

static __always_inline void stat_add(__u32 idx, __u64 n)
{
	__u64 *v = bpf_map_lookup_elem(&stats, &idx);

	if (v)
		__sync_fetch_and_add(v, n);
}

static __always_inline bool controller_alive(void)
{
	__u32 zero = 0;
	struct ctl_state *c = bpf_map_lookup_elem(&ctl, &zero);

	if (!c || !c->ctl_tgid)
		return false;
	return bpf_ktime_get_ns() - c->heartbeat_ns < RPCTLS_HEARTBEAT_NS;
}

static __always_inline void emit(__u32 type, __u64 cookie, __u32 arg)
{
	struct rpctls_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);

	if (!e) {
		stat_add(ST_EV_LOST, 1);
		return;
	}
	e->type = type;
	e->len = 0;
	e->cookie = cookie;
	e->seq = 0;
	e->arg = arg;
	e->pad = 0;
	bpf_ringbuf_submit(e, 0);
}

/* ---- sockops: establishment and close ---------------------------------- */

/* A sockops context field, read where it is written: the verifier refuses a
 * load through a context pointer that clang computed once for two fields. */
#define CTX_READ(f) (*(volatile __u32 *)&skops->f)

/* Both addresses, IPv4 as ::ffff:a.b.c.d. Every context field is read once,
 * before any branch, and volatile so that clang cannot sink it into one:
 * the verifier refuses a load through a computed context
 * pointer, which is what clang makes of field reads in merged branches. */
static __always_inline void addrs_of(struct bpf_sock_ops *skops, struct conn *c)
{
	__u32 family = CTX_READ(family);
	__u32 l4 = CTX_READ(local_ip4), r4 = CTX_READ(remote_ip4);
	__u32 l0 = CTX_READ(local_ip6[0]), l1 = CTX_READ(local_ip6[1]);
	__u32 l2 = CTX_READ(local_ip6[2]), l3 = CTX_READ(local_ip6[3]);
	__u32 r0 = CTX_READ(remote_ip6[0]), r1 = CTX_READ(remote_ip6[1]);
	__u32 r2 = CTX_READ(remote_ip6[2]), r3 = CTX_READ(remote_ip6[3]);

	if (family == AF_INET) {
		l0 = l1 = r0 = r1 = 0;
		l2 = r2 = bpf_htonl(0xffff);
		l3 = l4;
		r3 = r4;
	}
	c->laddr[0] = l0;
	c->laddr[1] = l1;
	c->laddr[2] = l2;
	c->laddr[3] = l3;
	c->raddr[0] = r0;
	c->raddr[1] = r1;
	c->raddr[2] = r2;
	c->raddr[3] = r3;
}

/* Policy for a passively established connection on local port @port. */
static __always_inline __u8 server_policy(__u16 port)
{
	struct port_policy *pp = bpf_map_lookup_elem(&srv_ports, &port);

	return pp ? pp->policy : RPCTLS_POLICY_NONE;
}

/* Policy for an actively established connection to @raddr:@port. */
static __always_inline __u8 client_policy(const __u32 raddr[4], __u16 port, __u32 *dest_id)
{
	struct dest_key k = { .prefixlen = 128 };
	struct dest_policy *d;
	int i;

	__builtin_memcpy(k.addr, raddr, 16);
	d = bpf_map_lookup_elem(&cli_dests, &k);
	if (!d)
		return RPCTLS_POLICY_NONE;
	*dest_id = d->dest_id;
	if (d->nports == 0)
		return d->policy;
	for (i = 0; i < DEST_MAX_PORTS; i++) {
		if (i >= d->nports)
			break;
		if (d->ports[i] == port)
			return d->port_policy[i];
	}
	return RPCTLS_POLICY_NONE;
}

/* The cgroup of the socket (sockops has no helper for it, and runs in
 * softirq for established sockets, so the current task says nothing). */
static __always_inline __u64 sk_cgroup_id(struct bpf_sock_ops *skops)
{
	struct bpf_sock *bsk = skops->sk;
	struct tcp_sock *tp;

	if (!bsk)
		return 0;
	tp = bpf_skc_to_tcp_sock(bsk);
	if (!tp)
		return 0;
	return BPF_CORE_READ(tp, inet_conn.icsk_inet.sk.sk_cgrp_data.cgroup, kn, id);
}

static __always_inline void track(struct bpf_sock_ops *skops, __u8 role)
{
	__u32 family = CTX_READ(family);
	struct conn c = {};
	struct bpf_sock *sk;
	__u64 cookie;
	__u64 *skc;

	if (family != AF_INET && family != AF_INET6)
		return;
	addrs_of(skops, &c);
	c.lport = (__u16)CTX_READ(local_port);
	c.rport = (__u16)bpf_ntohl(CTX_READ(remote_port));
	if (role == RPCTLS_ROLE_SERVER) {
		c.policy = server_policy(c.lport);
		c.phase = PH_AWAIT_PROBE;
		/*
		 * Blind the socket until the controller has seen the
		 * application accept it: bytes that arrive before accept()
		 * wait in the TCP queue (the verdict cannot run without a
		 * struct socket), and if the application's own recv() made
		 * the verdict consume them, 6.1's tcp_bpf_recvmsg_parser would
		 * put copied_seq back and wedge the stream. With SO_RCVLOWAT
		 * at its maximum nobody reads and nothing runs; the controller
		 * lowers it after accept(), which runs the verdict on what
		 * waited. Without a controller nobody would lower it: blind
		 * only where TLS is required (then nothing may pass anyway).
		 */
		if (c.policy != RPCTLS_POLICY_NONE &&
		    (controller_alive() || c.policy == RPCTLS_POLICY_REQUIRED)) {
			int max = 0x7fffffff;

			if (!bpf_setsockopt(skops, SOL_SOCKET, SO_RCVLOWAT, &max, sizeof(max)))
				c.flags |= CONN_F_BLIND;
		}
	} else {
		c.policy = client_policy(c.raddr, c.rport, &c.dest_id);
		c.phase = PH_HOLD;
		/* No controller to send the probe, or no sink to hold the
		 * application's data in: a connection that may go in clear
		 * text is left alone; one that must not is held shut, so that
		 * not one byte of it leaves unencrypted. */
		if (c.policy != RPCTLS_POLICY_NONE &&
		    (!controller_alive() || bpf_map_pop_elem(&free_slots, &c.slot))) {
			if (c.policy == RPCTLS_POLICY_OPTIONAL)
				return;
			c.phase = PH_REFUSED;
			c.reason = controller_alive() ? RS_NO_SLOT : RS_NO_CONTROLLER;
			c.slot = ~0u;
		}
	}
	if (c.policy == RPCTLS_POLICY_NONE)
		return;

	cookie = bpf_get_socket_cookie(skops);
	c.cookie = cookie;
	c.est_ns = bpf_ktime_get_ns();
	c.cgroup_id = sk_cgroup_id(skops);
	c.role = role;
	if (family == AF_INET6)
		c.flags |= CONN_F_IPV6;
	if (bpf_map_update_elem(&conns, &cookie, &c, BPF_ANY))
		return;
	sk = skops->sk;
	if (!sk)
		return;
	skc = bpf_sk_storage_get(&sk_cookie, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (skc)
		*skc = cookie;
	/* Before any data can arrive: a socket added with data already
	 * queued makes a blocking recv() return EAGAIN once. */
	if (bpf_sock_hash_update(skops, &sockets, &cookie, BPF_NOEXIST)) {
		bpf_map_delete_elem(&conns, &cookie);
		return;
	}
	/* Tell us when it closes, also after it has left the sockhash. */
	bpf_sock_ops_cb_flags_set(skops, CTX_READ(bpf_sock_ops_cb_flags) | BPF_SOCK_OPS_STATE_CB_FLAG);
	stat_add(ST_CONNS, 1);
	stat_add(role == RPCTLS_ROLE_SERVER ? ST_CONNS_SERVER : ST_CONNS_CLIENT, 1);
	emit(EV_NEW, cookie, role);
}

static __always_inline int sockops(struct bpf_sock_ops *skops, __u8 roles)
{
	__u32 state;
	__u64 cookie;
	struct conn *c;

	switch (CTX_READ(op)) {
	case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
		if (roles & RPCTLS_ROLE_SERVER)
			track(skops, RPCTLS_ROLE_SERVER);
		break;
	case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
		if (roles & RPCTLS_ROLE_CLIENT)
			track(skops, RPCTLS_ROLE_CLIENT);
		break;
	case BPF_SOCK_OPS_STATE_CB:
		cookie = bpf_get_socket_cookie(skops);
		c = bpf_map_lookup_elem(&conns, &cookie);
		if (!c)
			break;
		state = CTX_READ(args[1]);
		if (state == BPF_TCP_CLOSE) {
			bpf_map_delete_elem(&conns, &cookie);
			stat_add(ST_CLOSED, 1);
		}
		emit(EV_STATE, cookie, state);
		break;
	}
	return 1;
}

/* One program per role, so that each cgroup gets the role it was attached
 * with (sockops cannot tell which cgroup it runs for). */
SEC("sockops")
int sockops_srv(struct bpf_sock_ops *skops)
{
	return sockops(skops, RPCTLS_ROLE_SERVER);
}

SEC("sockops")
int sockops_cli(struct bpf_sock_ops *skops)
{
	return sockops(skops, RPCTLS_ROLE_CLIENT);
}

SEC("sockops")
int sockops_both(struct bpf_sock_ops *skops)
{
	return sockops(skops, RPCTLS_ROLE_BOTH);
}

/* ---- sk_skb verdict: what the peer sends during the BPF phase --------- */

/* Per-CPU room to build a data event: the ring buffer takes a reservation of
 * constant size only, and a probe should not cost a whole chunk of it. */
struct ev_scratch {
	struct rpctls_event ev;
	__u8 data[RPCTLS_EV_CHUNK];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ev_scratch);
} scratch SEC(".maps");

/* Copy the skb to the controller, in pieces of at most RPCTLS_EV_CHUNK. */
static __always_inline bool divert(struct __sk_buff *skb, struct conn *c, __u64 cookie)
{
	__u32 len = skb->len;
	__u32 zero = 0, off = 0;
	struct ev_scratch *s;
	int i;

	s = bpf_map_lookup_elem(&scratch, &zero);
	if (!s)
		return false;
	for (i = 0; i < RPCTLS_EV_MAX_CHUNKS; i++) {
		__u32 n;

		if (off >= len)
			break;
		n = len - off;
		if (n > RPCTLS_EV_CHUNK)
			n = RPCTLS_EV_CHUNK;
		/* The verifier wants the length masked, not range checked. */
		n = ((n - 1) & (RPCTLS_EV_CHUNK - 1)) + 1;
		if (bpf_skb_load_bytes(skb, off, s->data, n))
			return false;
		s->ev.type = EV_DATA;
		s->ev.len = n;
		s->ev.cookie = cookie;
		s->ev.seq = c->bytes_in;
		s->ev.arg = 0;
		s->ev.pad = 0;
		if (bpf_ringbuf_output(&events, s, sizeof(s->ev) + n, 0)) {
			stat_add(ST_EV_LOST, 1);
			return false;
		}
		c->bytes_in += n;
		off += n;
	}
	if (off < len)
		return false;
	stat_add(ST_BYTES_DIVERTED, len);
	return true;
}

static __always_inline int refuse(struct conn *c, __u64 cookie, __u8 reason)
{
	c->phase = PH_REFUSED;
	c->reason = reason;
	stat_add(ST_REFUSED, 1);
	emit(EV_REFUSE, cookie, reason);
	return SK_DROP;
}

/* Server connection, nothing seen yet: probe, plain call, or refuse. */
static __always_inline int first_bytes(struct __sk_buff *skb, struct conn *c, __u64 cookie)
{
	__u8 b[RPC_CLASSIFY_LEN];
	int cls = RPC_FIRST_NEED_MORE;

	if (skb->len >= RPC_CLASSIFY_LEN &&
	    !bpf_skb_load_bytes(skb, 0, b, sizeof(b)))
		cls = rpc_classify_first(b, sizeof(b), 0);

	switch (cls) {
	case RPC_FIRST_AUTH_TLS:
		stat_add(ST_PROBES, 1);
		if (!controller_alive()) {
			if (c->policy == RPCTLS_POLICY_REQUIRED)
				return refuse(c, cookie, RS_NO_CONTROLLER);
			/* The application answers: AUTH_ERROR, "no TLS here"
			 * (RFC 9289 section 4.1). Passing is the one verdict
			 * that is safe here: see "pre-accept" in docs/design.md. */
			c->phase = PH_PLAIN;
			stat_add(ST_PLAIN, 1);
			return SK_PASS;
		}
		c->phase = PH_PROBE;
		return divert(skb, c, cookie) ? SK_DROP : refuse(c, cookie, RS_PROBE_MALFORMED);
	case RPC_FIRST_PLAIN:
		if (c->policy == RPCTLS_POLICY_REQUIRED)
			return refuse(c, cookie, RS_PLAIN_REQUIRED);
		c->phase = PH_PLAIN;
		stat_add(ST_PLAIN, 1);
		return SK_PASS;
	case RPC_FIRST_NOT_RPC:
		if (c->policy == RPCTLS_POLICY_REQUIRED)
			return refuse(c, cookie, RS_NOT_RPC);
		c->phase = PH_PLAIN;
		stat_add(ST_PLAIN, 1);
		return SK_PASS;
	default:
		/* A first segment under RPC_CLASSIFY_LEN bytes: no RPC client
		 * sends its first call like that. Under "optional" the
		 * application gets it (an AUTH_TLS probe split like this gets
		 * the application's AUTH_ERROR: "no TLS here"). */
		if (c->policy == RPCTLS_POLICY_REQUIRED)
			return refuse(c, cookie, RS_SHORT_FIRST);
		c->phase = PH_PLAIN;
		stat_add(ST_PLAIN, 1);
		return SK_PASS;
	}
}

SEC("sk_skb")
int skb_verdict(struct __sk_buff *skb)
{
	__u64 cookie = bpf_get_socket_cookie(skb);
	struct conn *c = bpf_map_lookup_elem(&conns, &cookie);

	if (!c)
		return SK_PASS;
	switch (c->phase) {
	case PH_AWAIT_PROBE:
		return first_bytes(skb, c, cookie);
	case PH_PLAIN:
		return SK_PASS;
	case PH_PROBE:
	case PH_HANDSHAKE:
	case PH_USERSPACE_TLS:
	case PH_HOLD:
		/* Everything the peer sends now is the controller's: the rest
		 * of the probe (or bytes that should not be there, which the
		 * controller refuses), the probe reply, handshake records. */
		return divert(skb, c, cookie) ? SK_DROP : refuse(c, cookie, RS_HANDOVER);
	default:
		return SK_DROP;
	}
}

/* ---- sk_msg: what the application sends during the BPF phase ---------- */

SEC("sk_msg")
int msg_verdict(struct sk_msg_md *msg)
{
	struct ctl_state *cs;
	__u32 zero = 0, slot;
	__u64 *cookie;
	struct conn *c;

	if (!msg->sk)
		return SK_PASS;
	cookie = bpf_sk_storage_get(&sk_cookie, msg->sk, 0, 0);
	if (!cookie)
		return SK_PASS;
	c = bpf_map_lookup_elem(&conns, cookie);
	if (!c)
		return SK_PASS;
	/* A refused connection sends nothing more. */
	if (c->phase == PH_REFUSED)
		return SK_DROP;
	if (c->role != RPCTLS_ROLE_CLIENT ||
	    (c->phase != PH_HOLD && c->phase != PH_HANDSHAKE && c->phase != PH_USERSPACE_TLS))
		return SK_PASS;
	/* The controller's own probe and handshake records go out. */
	cs = bpf_map_lookup_elem(&ctl, &zero);
	if (cs && (__u32)(bpf_get_current_pid_tgid() >> 32) == cs->ctl_tgid)
		return SK_PASS;
	/* The application's: to its sink, until TLS is up. */
	slot = c->slot;
	c->bytes_held += msg->size;
	stat_add(ST_BYTES_HELD, msg->size);
	return bpf_msg_redirect_map(msg, &sinks, slot, BPF_F_INGRESS);
}

/* ---- the controller's wake-up on sockets out of the sockhash ---------- */

/*
 * Attached with SO_ATTACH_BPF to a socket whose handshake the controller
 * runs on the socket itself, while SO_RCVLOWAT hides the bytes from the
 * application (and so from every poll, the controller's included). Says
 * "bytes arrived" and keeps the packet whole.
 */
SEC("socket")
int rx_notify(struct __sk_buff *skb)
{
	__u8 th[14];

	if (bpf_skb_load_bytes(skb, 0, th, sizeof(th)))
		return skb->len;
	/* Payload, FIN or RST: something the controller must look at. */
	if (skb->len > (__u32)(th[12] >> 4) * 4 || (th[13] & 0x05))
		emit(EV_WAKE, bpf_get_socket_cookie(skb), 0);
	return skb->len;
}

/* ---- finding the application's descriptor of a socket ----------------- */

SEC("iter/task_file")
int iter_sockfd(struct bpf_iter__task_file *ctx)
{
	struct file *file = ctx->file;
	struct task_struct *task = ctx->task;
	struct sockfd_rec r = {};
	struct socket *sock;
	struct sock *sk;

	if (!file || !task)
		return 0;
	sock = bpf_sock_from_file(file);
	if (!sock)
		return 0;
	sk = sock->sk;
	if (!sk)
		return 0;
	r.cookie = bpf_get_socket_cookie(sk);
	if (!bpf_map_lookup_elem(&conns, &r.cookie))
		return 0;
	r.tgid = task->tgid;
	r.fd = ctx->fd;
	bpf_probe_read_kernel_str(r.comm, sizeof(r.comm), task->comm);
	bpf_seq_write(ctx->meta->seq, &r, sizeof(r));
	return 0;
}
