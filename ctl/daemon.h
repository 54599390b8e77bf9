/* SPDX-License-Identifier: GPL-2.0 */
/* The controller daemon (rpctls run): its state and the parts of it. */
#ifndef RPCTLS_DAEMON_H
#define RPCTLS_DAEMON_H

#include <openssl/ssl.h>

#include "rpctls.h"
#include "rpctls/parse.h"

/* What the controller does with a connection right now. */
enum cx_state {
	CX_NEW = 0,	/* known; BPF is watching it */
	CX_PROBE,	/* server: gathering the AUTH_TLS probe */
	CX_LOOKUP,	/* waiting to find the application's descriptor */
	CX_QUEUED,	/* waiting for a handshake slot */
	CX_HANDSHAKE,	/* TLS handshake running */
	CX_DONE,	/* on kTLS, or left in clear text: nothing more to do */
};

struct cx {
	uint64_t cookie;
	struct cx *next;		/* hash chain */
	uint8_t role, policy;
	int state;
	char name[128];			/* "peer -> local" for logs */
	uint64_t t_new, t_start, deadline;
	uint64_t retry_at;		/* next SSL_accept attempt */
	uint32_t retry_ms;
	/* server: the probe */
	uint8_t probe[RPC_MARK_LEN + RPC_CALL_HDR_LEN + RPC_MAX_AUTH_BYTES * 2 + 16];
	uint32_t probe_len;
	int probe_verdict;
	struct rpc_call_hdr call;
	/* the application's socket */
	pid_t pid;
	int app_fd;
	char comm[16];
	int fd;				/* our duplicate, -1 when none */
	int saved_lowat;
	bool lowat_raised, filter_on, in_slot;
	bool closing;			/* refused: close once the descriptor is found */
	bool kick;			/* blind: lower SO_RCVLOWAT once accepted */
	bool held;			/* on kTLS, our duplicate kept (lifecycle.c) */
	bool notified;			/* our close_notify went out */
	X509 *peer_cert;		/* kTLS: the peer's certificate, for CRLs */
	bool adopt;			/* left on kTLS by a controller before us */
	SSL *ssl;
	struct ccx *cli;		/* client role */
	/* server: a handshake step on a worker thread (hspool.c) */
	bool busy;			/* a worker has it: the loop leaves its SSL alone */
	bool doomed;			/* freed while busy: released when it comes back */
	bool wake_again;		/* bytes arrived while busy */
	struct cx *pool_next;
	struct {
		int r, e, err_no;
		unsigned long err;
		char errstr[256];
	} hs;				/* the step's outcome */
};

/* The client side of a connection (client.c). */
enum cli_step { CS_WAIT_CALL = 1, CS_PROBE_SENT, CS_TLS, CS_BARRIER };

struct buf {
	uint8_t *p;
	size_t len, cap;
};

struct ccx {
	int step;
	uint32_t slot, dest_id;
	struct buf hold;		/* the application's bytes, held */
	struct buf in;			/* the server's bytes, diverted by BPF */
	uint64_t in_seq;		/* stream offset expected next from BPF */
	uint32_t prog, vers, probe_xid, barrier_xid;
	BIO *rbio, *wbio;
	struct tls_framer tf;
	uint32_t rx_recs, tx_recs;	/* records under the application keys */
	bool hs_done;
	struct buf plain;		/* decrypted bytes before the hand-over */
};

/* A sink: the controller's end of a socket pair in the "sinks" sockmap. */
struct sink {
	int fd, peer;
	struct cx *owner;
};

struct daemon {
	struct conf conf;
	struct rpctls_fds fds;
	struct ring_buffer *rb;
	int epfd, sigfd;
	SSL_CTX *srv_ctx, *cli_ctx;
	struct sink *sinks;
	uint32_t n_sinks;		/* made so far: slots 0 .. n_sinks-1 */
	uint32_t n_free;		/* of those, in the free_slots queue */
	struct cx *tab[4096];
	int n_cx;
	int n_handshakes;		/* in a slot */
	bool stopping;
	bool lookup_pending;		/* some cx waits for its descriptor */
	bool dequeue;			/* a handshake slot was freed */
	int n_held;			/* kTLS connections whose duplicate we keep */
	bool held_check;		/* an application closed something: look */
	uint64_t last_held_scan;
	uint64_t last_scan;
	uint64_t scan_gap;		/* ns between descriptor scans (cx_lookup_all) */
	int readers_fd;			/* sk_readers (guard.bpf.c), -1 if not there */
};

/* cx table (run.c) */
struct cx *cx_find(struct daemon *d, uint64_t cookie);
struct cx *cx_add(struct daemon *d, uint64_t cookie);
void cx_free(struct daemon *d, struct cx *c);	/* deferred while c->busy */
void cx_release(struct cx *c);			/* the memory, once unlinked */
void cx_set_phase(struct daemon *d, struct cx *c, int phase);
void cx_close(struct daemon *d, struct cx *c);
/* The handshake's outcome into "conns" (@phase < 0: leave it). */
void cx_record_tls(struct daemon *d, struct cx *c, int phase, uint32_t flags, const char *subject, uint64_t took);
/* End a connection with a logged reason; counts it. */
void cx_refuse(struct daemon *d, struct cx *c, int reason, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* Find the descriptors of every connection waiting in CX_LOOKUP. */
void cx_lookup_all(struct daemon *d);

/* server role (server.c) */
void srv_on_new(struct daemon *d, struct cx *c);
void srv_kick(struct daemon *d, struct cx *c);		/* accepted: let BPF see the bytes */
void srv_on_data(struct daemon *d, struct cx *c, const uint8_t *data, uint32_t len);
void srv_on_fd(struct daemon *d, struct cx *c);		/* descriptor found */
void srv_on_wake(struct daemon *d, struct cx *c);	/* bytes arrived, or a retry is due */
void srv_accept_result(struct daemon *d, struct cx *c);	/* after an SSL_accept step (c->hs) */
void srv_on_timeout(struct daemon *d, struct cx *c);
void srv_slot_freed(struct daemon *d);

/* client role (client.c) */
int cli_init(struct daemon *d);				/* sinks; after the maps are open */
void cli_fini(struct daemon *d);
void cli_on_new(struct daemon *d, struct cx *c);
void cli_on_fd(struct daemon *d, struct cx *c);
void cli_on_data(struct daemon *d, struct cx *c, const uint8_t *data, uint32_t len, uint64_t seq);
void cli_on_sink(struct daemon *d, uint32_t slot);	/* the application sent */
void cli_on_timeout(struct daemon *d, struct cx *c);
void cli_release(struct daemon *d, struct cx *c);	/* give its slot back */
#define EPOLL_SINK_BASE 16				/* epoll data.u32 of slot 0 */

/* server handshakes on worker threads (hspool.c) */
#define EPOLL_POOL 3					/* epoll data.u32 of its eventfd */
int hs_pool_start(struct daemon *d, int n);		/* n < 0: one per CPU; 0: none */
bool hs_pool_on(void);
void hs_pool_submit(struct cx *c);
void hs_step(struct cx *c);				/* one SSL_accept() step, in c->hs */
void hs_pool_collect(struct daemon *d);
void hs_pool_stop(struct daemon *d);

/* after the hand-over (lifecycle.c) */
bool held_supported(void);
void ktls_hold(struct daemon *d, struct cx *c);		/* keep the duplicate of a kTLS socket */
void held_scan(struct daemon *d);
void on_app_close(struct daemon *d, struct cx *c);
void on_rx_record(struct daemon *d, struct cx *c);
void adopt_existing(struct daemon *d);
void on_adopt(struct daemon *d, struct cx *c);
void reload(struct daemon *d);				/* SIGHUP */

/* TLS contexts (tlsctx.c) */
SSL_CTX *tls_server_ctx(const struct conf *c);	/* NULL: reported as FILE:LINE */
SSL_CTX *tls_client_ctx(const struct conf *c);
BIO *fd_bio_new(int fd);			/* nonblocking send/recv, never read()/write() */
/* Peer certificate: CONN_F_* flags and a printable subject. */
uint32_t tls_peer_info(SSL *ssl, char *subject, size_t len);
const char *tls_err_string(void);

/* sockets (sock.c, with sock_take and sock_close_clean in rpctls.h) */
bool sock_blocked_reader(pid_t pid, const int *fds, int nfds);
int cg_dir_of(pid_t pid, char *buf, size_t len);
int cg_freeze(const char *dir, bool on, int timeout_ms);

#endif
