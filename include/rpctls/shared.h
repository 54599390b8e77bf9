/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * What the BPF programs and the controller share: map layouts, the
 * per-connection record, the ring-buffer events and the counters. A change
 * here changes the ABI between bpf/rpctls.bpf.o and the controller: bump
 * RPCTLS_ABI, which the controller checks in the pinned "ctl" map.
 */
#ifndef RPCTLS_SHARED_H
#define RPCTLS_SHARED_H

#include "types.h"

#define RPCTLS_ABI		1u

/* Where everything is pinned; bpftool users pass the same paths. */
#define RPCTLS_PIN_DIR		"/sys/fs/bpf/rpctls"
#define RPCTLS_PIN_MAPS		RPCTLS_PIN_DIR "/maps"
#define RPCTLS_PIN_PROGS	RPCTLS_PIN_DIR "/progs"
#define RPCTLS_PIN_LINKS	RPCTLS_PIN_DIR "/links"

/* Map sizes. */
#define RPCTLS_MAX_CONNS	65536u	/* sockhash and conns */
#define RPCTLS_MAX_PORTS	256u
#define RPCTLS_MAX_DESTS	1024u
#define RPCTLS_RINGBUF_BYTES	(8u << 20)

/* How much of one skb an event carries; larger skbs take several events,
 * up to RPCTLS_EV_MAX_CHUNKS (a bigger skb during the BPF phase is refused). */
#define RPCTLS_EV_MAX_CHUNKS	8
#define RPCTLS_EV_CHUNK		16384u

/* Roles a cgroup is attached with. */
enum rpctls_role {
	RPCTLS_ROLE_SERVER = 1,
	RPCTLS_ROLE_CLIENT = 2,
	RPCTLS_ROLE_BOTH = 3,
};

/* Policy of a served port or a protected destination. */
enum rpctls_policy {
	RPCTLS_POLICY_NONE = 0,		/* not ours: leave the connection alone */
	RPCTLS_POLICY_OPTIONAL = 1,	/* TLS when the peer can, plain otherwise */
	RPCTLS_POLICY_REQUIRED = 2,	/* TLS or nothing */
};

/*
 * Phase of a connection. BPF moves it forward as bytes arrive; the
 * controller moves it at the probe, the handshake and the hand-over.
 */
enum rpctls_phase {
	PH_NONE = 0,
	PH_AWAIT_PROBE,		/* server: nothing received yet */
	PH_PROBE,		/* server: AUTH_TLS call arriving, diverted */
	PH_HANDSHAKE,		/* TLS handshake in progress */
	PH_USERSPACE_TLS,	/* handshake done, not yet on kTLS */
	PH_KTLS,		/* on kernel TLS, left the sockhash */
	PH_PLAIN,		/* clear text, by policy */
	PH_HOLD,		/* client: application data held until TLS */
	PH_REFUSED,		/* being closed by the controller */
	PH_CLOSED,
	PH__MAX,
};

/* conn.flags, in the manner of FreeBSD's RPCTLS_FLAGS_*. */
#define CONN_F_HANDSHAKE	(1u << 0)	/* TLS handshake completed */
#define CONN_F_GOTCERT		(1u << 1)	/* peer presented a certificate */
#define CONN_F_SELFSIGNED	(1u << 2)
#define CONN_F_VERIFIED		(1u << 3)	/* peer certificate verified */
#define CONN_F_ALPN		(1u << 4)	/* "sunrpc" negotiated */
#define CONN_F_CTL_SEEN		(1u << 5)	/* the controller knows this one */
#define CONN_F_IPV6		(1u << 6)
#define CONN_F_BLIND		(1u << 7)	/* SO_RCVLOWAT raised at establishment */
#define CONN_F_HELD		(1u << 8)	/* kTLS: the controller holds a duplicate */

/* Key of the sockhash and of conns: the socket cookie. */
struct conn {
	__u64 cookie;
	__u64 est_ns;		/* bpf_ktime_get_ns() at establishment */
	__u32 laddr[4];		/* IPv4 as ::ffff:a.b.c.d, network order */
	__u32 raddr[4];
	__u16 lport;		/* host order */
	__u16 rport;
	__u8 role;		/* RPCTLS_ROLE_SERVER or _CLIENT for this socket */
	__u8 policy;
	__u8 phase;		/* enum rpctls_phase */
	__u8 reason;		/* enum rpctls_reason when refused */
	__u32 flags;		/* CONN_F_* */
	__u32 pid;		/* owning process, once the controller found it */
	__u16 cipher;		/* TLS cipher suite id, once known */
	__u16 tls_version;
	__u64 bytes_in;		/* bytes diverted from the peer to the controller */
	__u64 bytes_held;	/* client: application bytes held */
	__u64 hs_ns;		/* handshake time */
	__u64 cgroup_id;	/* cgroup v2 id of the socket */
	__u32 slot;		/* client: the sink its held data goes to */
	__u32 dest_id;		/* client: index of its [destination] */
	char peer[96];		/* peer certificate subject (or SAN), NUL terminated */
};

/* Why a connection was refused or closed by rpctls. */
enum rpctls_reason {
	RS_NONE = 0,
	RS_PLAIN_REQUIRED,	/* plain RPC where TLS is required */
	RS_NOT_RPC,		/* first bytes are not an RPC call */
	RS_SHORT_FIRST,		/* first segment too short to classify */
	RS_SPURIOUS,		/* bytes after the probe, before STARTTLS */
	RS_PROBE_MALFORMED,
	RS_NO_CONTROLLER,	/* no controller to do the handshake */
	RS_HANDSHAKE,		/* TLS handshake failed */
	RS_TIMEOUT,
	RS_HANDOVER,		/* no safe hand-over point */
	RS_NO_SLOT,		/* client: no hold slot free */
	RS_STARTTLS_REFUSED,	/* client: server did not answer STARTTLS */
	RS_PEER_RESET,
	RS_CERT,		/* client: server certificate refused */
	RS_NO_ALPN,		/* client: server did not answer ALPN sunrpc */
	RS_HOLD_LIMIT,		/* client: the application sent too much before TLS */
	RS_PEER_ALERT,		/* kTLS: a fatal alert from the peer */
	RS_KEYUPDATE,		/* kTLS: a KeyUpdate this kernel cannot follow */
	RS_REVOKED,		/* the peer's certificate was revoked (new CRL) */
	RS__MAX,
};

/* Served ports (server role): key __u16 port, host order. */
struct port_policy {
	__u8 policy;
	__u8 pad[3];
};

/* Protected destinations (client role): LPM trie on the IPv6 (or mapped
 * IPv4) address; the value lists ports. */
struct dest_key {
	__u32 prefixlen;
	__u8 addr[16];
};

#define DEST_MAX_PORTS 8
struct dest_policy {
	__u8 policy;		/* for every port, when nports == 0 */
	__u8 nports;
	__u16 ports[DEST_MAX_PORTS];
	__u8 port_policy[DEST_MAX_PORTS];
	__u32 dest_id;		/* index of the destination in the config */
};

/* "attached": cgroups attached by the rpctls CLI, keyed by cgroup id. The
 * programs do not read it; it tells status and detach what is where. */
struct cg_attach {
	__u32 role;		/* enum rpctls_role */
	__u32 pad;
	__u64 attached_ns;	/* CLOCK_REALTIME, ns */
	char path[256];
};
#define RPCTLS_MAX_CGROUPS	64u

/* Client connections hold what the application sends before TLS is up in a
 * sink socket of the controller's, one per connection ("slot"). */
#define RPCTLS_MAX_SLOTS	4096u

/* The "ctl" array, one entry: the controller's presence and switches. */
struct ctl_state {
	__u32 abi;		/* RPCTLS_ABI of whoever filled it */
	__u32 ctl_tgid;		/* controller process, 0 when none */
	__u64 heartbeat_ns;	/* bpf_ktime_get_ns() domain, CLOCK_MONOTONIC */
	__u64 start_ns;		/* controller start */
	__u8 default_policy;	/* for bpftool-only use: policy of unlisted ports */
	__u8 pad[7];
};

/* A controller whose heartbeat is older than this is gone. */
#define RPCTLS_HEARTBEAT_NS	(3ull * 1000000000ull)

/* Counters, in the mmap-able "stats" array, one __u64 each. */
enum rpctls_stat {
	ST_CONNS = 0,		/* connections put in the sockhash */
	ST_CONNS_SERVER,
	ST_CONNS_CLIENT,
	ST_PROBES,		/* AUTH_TLS probes received (server) */
	ST_PROBES_SENT,		/* probes sent (client) */
	ST_PLAIN,		/* connections left in clear text by policy */
	ST_REFUSED,		/* connections refused */
	ST_HS_DONE,
	ST_HS_FAILED,
	ST_HANDOVERS,		/* connections handed to kTLS */
	ST_HANDOVER_CLOSED,	/* closed because no safe hand-over point */
	ST_BYTES_DIVERTED,	/* bytes BPF passed to the controller */
	ST_BYTES_HELD,		/* application bytes held (client) */
	ST_EV_LOST,		/* events the ring buffer had no room for */
	ST_CLOSED,		/* connections that ended */
	ST__MAX,
};

/* Ring-buffer events. */
enum rpctls_ev_type {
	EV_NEW = 1,		/* a socket entered the sockhash */
	EV_DATA,		/* bytes from the peer, diverted */
	EV_REFUSE,		/* BPF refused the connection: reason in conn */
	EV_STATE,		/* TCP state change of a known connection */
	EV_WAKE,		/* data arrived on a socket the controller watches */
	EV_APP_CLOSE,		/* the application closed a descriptor of a held kTLS socket */
	EV_RX_RECORD,		/* the application's read of a kTLS socket met a non-data record */
};

/* An event; EV_DATA events are followed by len bytes of data. */
struct rpctls_event {
	__u32 type;		/* enum rpctls_ev_type */
	__u32 len;		/* EV_DATA: bytes that follow */
	__u64 cookie;
	__u64 seq;		/* EV_DATA: stream offset of data[0] */
	__u32 arg;		/* EV_STATE: new TCP state; EV_REFUSE: reason */
	__u32 pad;
};

/* What the iter/task_file program writes for each descriptor of a socket
 * in "conns": the controller reads these records from the iterator. */
struct sockfd_rec {
	__u64 cookie;
	__u32 tgid;
	__u32 fd;
	char comm[16];
};

#endif
