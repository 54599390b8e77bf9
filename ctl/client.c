// SPDX-License-Identifier: GPL-2.0
/*
 * The client role: an unmodified RPC client in an attached cgroup connects
 * to a protected destination.
 *
 *  1. sockops took a free sink slot for the connection; from its first send,
 *     the sk_msg program redirects what the application sends into that sink
 *     (one of our sockets), so not one byte leaves in clear text.
 *  2. We take the first call's program and version, send the AUTH_TLS probe
 *     through a duplicate of the application's socket (sk_msg lets our own
 *     sends pass), and read the answer from the ring buffer: BPF diverts
 *     everything the server sends.
 *  3. STARTTLS: the TLS 1.3 client handshake, OpenSSL on memory BIOs, the
 *     server's records fed to it one at a time so that we know the record
 *     sequence numbers. No STARTTLS: policy optional releases the held bytes
 *     in clear text, policy required closes.
 *  4. A quiet point: we make one NULL call of our own inside TLS and read
 *     its reply; everything the server sent after its Finished (session
 *     tickets) came before that reply, and with its reply out, the server
 *     has nothing more to say until the application's calls arrive.
 *  5. Hand-over, with the application's cgroup frozen: drain the sink, take
 *     the socket out of the sockhash, install kTLS TX and RX, write the held
 *     bytes through kTLS, thaw. The application's first call leaves
 *     encrypted, in order, and its reply comes back through kTLS.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "daemon.h"
#include "ktls.h"

#define FIRST_CALL_WAIT_NS	100000000ull	/* 100 ms for the application's first call */
#define SINKS_AT_START		64
#define SINKS_LOW_WATER		16

/* ---- buffers ---- */

static int buf_add(struct buf *b, const void *p, size_t n, size_t max)
{
	if (b->len + n > max)
		return -1;
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		uint8_t *q;

		while (cap < b->len + n)
			cap *= 2;
		q = realloc(b->p, cap);
		if (!q)
			return -1;
		b->p = q;
		b->cap = cap;
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
	return 0;
}

static void buf_drop(struct buf *b, size_t n)
{
	memmove(b->p, b->p + n, b->len - n);
	b->len -= n;
}

static void buf_free(struct buf *b)
{
	if (b->p)
		OPENSSL_cleanse(b->p, b->cap);
	free(b->p);
	memset(b, 0, sizeof(*b));
}

/* ---- sinks ---- */

static int sink_add(struct daemon *d)
{
	uint32_t slot = d->n_sinks;
	struct epoll_event ev = { .events = EPOLLIN };
	int sv[2];
	__u64 fd64;

	if (slot >= d->conf.hold_slots || slot >= RPCTLS_MAX_SLOTS)
		return -1;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv))
		return error("socketpair: %s", strerror(errno));
	fd64 = (__u64)sv[0];
	if (bpf_map_update_elem(d->fds.sinks, &slot, &fd64, BPF_ANY)) {
		close(sv[0]);
		close(sv[1]);
		return error("cannot put a sink in the sinks map: %s", strerror(errno));
	}
	d->sinks[slot] = (struct sink){ .fd = sv[0], .peer = sv[1] };
	ev.data.u32 = EPOLL_SINK_BASE + slot;
	epoll_ctl(d->epfd, EPOLL_CTL_ADD, sv[0], &ev);
	d->n_sinks++;
	if (bpf_map_update_elem(d->fds.free_slots, NULL, &slot, BPF_ANY))
		return error("cannot free slot %u: %s", slot, strerror(errno));
	d->n_free++;
	return 0;
}

int cli_init(struct daemon *d)
{
	__u32 stale;

	d->sinks = calloc(RPCTLS_MAX_SLOTS, sizeof(*d->sinks));
	if (!d->sinks)
		return error("out of memory");
	/* Slots of a controller before us name sockets that died with it. */
	while (bpf_map_lookup_and_delete_elem(d->fds.free_slots, NULL, &stale) == 0)
		;
	for (int i = 0; i < SINKS_AT_START; i++)
		if (sink_add(d) && d->n_sinks == 0)
			return -1;
	return 0;
}

void cli_fini(struct daemon *d)
{
	__u32 stale;

	while (d->fds.free_slots >= 0 && bpf_map_lookup_and_delete_elem(d->fds.free_slots, NULL, &stale) == 0)
		;
	for (uint32_t i = 0; d->sinks && i < d->n_sinks; i++) {
		close(d->sinks[i].fd);
		close(d->sinks[i].peer);
	}
	free(d->sinks);
	d->sinks = NULL;
}

/* Give the connection's slot back, once its sink is empty. */
void cli_release(struct daemon *d, struct cx *c)
{
	struct ccx *k = c->cli;
	uint8_t junk[4096];

	if (!k)
		return;
	if (k->slot < d->n_sinks && d->sinks[k->slot].owner == c) {
		while (recv(d->sinks[k->slot].fd, junk, sizeof(junk), MSG_DONTWAIT) > 0)
			;
		d->sinks[k->slot].owner = NULL;
		if (bpf_map_update_elem(d->fds.free_slots, NULL, &k->slot, BPF_ANY) == 0)
			d->n_free++;
	}
	if (k->rbio)
		BIO_free(k->rbio);
	if (k->wbio)
		BIO_free(k->wbio);
	buf_free(&k->hold);
	buf_free(&k->in);
	buf_free(&k->plain);
	free(k);
	c->cli = NULL;
}

static uint64_t hs_deadline(struct daemon *d)
{
	return now_mono_ns() + (uint64_t)d->conf.hs_timeout_ms * 1000000ull;
}

void cli_on_new(struct daemon *d, struct cx *c)
{
	struct conn info;
	struct ccx *k;

	if (bpf_map_lookup_elem(d->fds.conns, &c->cookie, &info))
		return;
	if (info.phase == PH_REFUSED) {
		log_warn("%s: refused (%s): the application's data is held shut", c->name, reason_names[info.reason]);
		cx_close(d, c);
		return;
	}
	k = calloc(1, sizeof(*k));
	if (!k || info.slot >= d->n_sinks) {
		free(k);
		cx_refuse(d, c, RS_NO_SLOT, "no sink for slot %u", info.slot);
		return;
	}
	c->cli = k;
	k->slot = info.slot;
	k->dest_id = info.dest_id;
	d->sinks[k->slot].owner = c;
	d->n_free--;
	/* Keep spare sinks ahead of demand. */
	while (d->n_free < SINKS_LOW_WATER && sink_add(d) == 0)
		;
	k->step = CS_WAIT_CALL;
	c->state = CX_LOOKUP;
	c->deadline = hs_deadline(d);
	d->lookup_pending = true;
	log_debug("%s: new client connection, slot %u, policy %s", c->name, k->slot,
		  c->policy == RPCTLS_POLICY_REQUIRED ? "required" : "optional");
}

static const struct conf_dest *dest_of(struct daemon *d, struct cx *c)
{
	return c->cli->dest_id < (uint32_t)d->conf.n_dests ? &d->conf.dests[c->cli->dest_id] : NULL;
}

static int send_all(int fd, const uint8_t *p, size_t n)
{
	while (n) {
		ssize_t r = send(fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL);

		if (r < 0 && errno == EAGAIN) {
			struct pollfd pf = { .fd = fd, .events = POLLOUT };

			if (poll(&pf, 1, 5000) <= 0)
				return -1;
			continue;
		}
		if (r <= 0)
			return -1;
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

/* Send what OpenSSL wrote, counting the records under the application keys. */
static int flush_tls(struct cx *c)
{
	struct ccx *k = c->cli;
	uint8_t out[16384];
	int n;

	while ((n = BIO_read(k->wbio, out, sizeof(out))) > 0) {
		if (k->hs_done) {
			/* Records are written whole by SSL_write into the BIO. */
			for (int i = 0; i + 5 <= n; i += 5 + ((out[i + 3] << 8) | out[i + 4]))
				k->tx_recs++;
		}
		if (send_all(c->fd, out, (size_t)n))
			return -1;
	}
	return 0;
}

static void send_probe(struct daemon *d, struct cx *c)
{
	struct ccx *k = c->cli;
	uint8_t p[RPC_PROBE_LEN];

	RAND_bytes((unsigned char *)&k->probe_xid, sizeof(k->probe_xid));
	rpc_build_probe(p, k->probe_xid, k->prog, k->vers);
	if (send_all(c->fd, p, sizeof(p))) {
		cx_refuse(d, c, RS_PEER_RESET, "cannot send the probe: %s", strerror(errno));
		return;
	}
	stat_bump(ST_PROBES_SENT, 1);
	k->step = CS_PROBE_SENT;
	c->state = CX_HANDSHAKE;
	c->t_start = now_mono_ns();
	c->deadline = hs_deadline(d);
	log_debug("%s: probe sent for program %u version %u", c->name, k->prog, k->vers);
}

/* The first call says which program the probe is for; else the config. */
static void maybe_probe(struct daemon *d, struct cx *c, bool timeout)
{
	struct ccx *k = c->cli;
	struct rpc_call_hdr h;

	if (k->step != CS_WAIT_CALL || c->fd < 0)
		return;
	if (k->hold.len >= RPC_MARK_LEN + 24 &&
	    rpc_parse_call(k->hold.p + RPC_MARK_LEN, (uint32_t)k->hold.len - RPC_MARK_LEN, &h) != RPC_PARSE_NOT_CALL &&
	    get_be32(k->hold.p + RPC_MARK_LEN + 4) == RPC_CALL) {
		k->prog = get_be32(k->hold.p + RPC_MARK_LEN + 12);
		k->vers = get_be32(k->hold.p + RPC_MARK_LEN + 16);
	} else if (timeout || k->hold.len >= RPC_MARK_LEN + 24) {
		const struct conf_dest *dd = dest_of(d, c);

		k->prog = dd ? dd->prog : 100000;
		k->vers = dd ? dd->vers : 4;
	} else {
		return;
	}
	send_probe(d, c);
}

void cli_on_fd(struct daemon *d, struct cx *c)
{
	c->state = CX_NEW;
	c->deadline = now_mono_ns() + FIRST_CALL_WAIT_NS;
	maybe_probe(d, c, false);
}

void cli_on_sink(struct daemon *d, uint32_t slot)
{
	struct sink *s = slot < d->n_sinks ? &d->sinks[slot] : NULL;
	uint8_t buf[65536];
	struct cx *c;
	ssize_t n;

	if (!s)
		return;
	c = s->owner;
	while ((n = recv(s->fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0) {
		if (!c || !c->cli)
			continue;	/* a closed connection's leftovers */
		if (buf_add(&c->cli->hold, buf, (size_t)n, d->conf.hold_max)) {
			cx_refuse(d, c, RS_HOLD_LIMIT, "the application sent over %u bytes before TLS was up",
				  d->conf.hold_max);
			return;
		}
	}
	if (c && c->cli)
		maybe_probe(d, c, false);
}

/* ---- hand-over ---- */

/* With the application frozen: drain the sink, leave the sockhash, apply
 * @phase (kTLS installed first when PH_KTLS), write the held bytes. */
static int release_held(struct daemon *d, struct cx *c, int phase, const char **why)
{
	struct ccx *k = c->cli;
	struct conn info;
	char cg[512];
	bool frozen = false;
	int ret = -1;

	*why = NULL;
	if (cg_dir_of(c->pid, cg, sizeof(cg))) {
		*why = "cannot read the application's cgroup (gone, or the root cgroup)";
		return -1;
	}
	if (cg_freeze(cg, true, 500)) {
		log_warn("%s: cannot freeze %s (pid %d): %s", c->name, cg, c->pid, strerror(errno));
		*why = "cannot freeze the application's cgroup";
		return -1;
	}
	frozen = true;
	cli_on_sink(d, k->slot);	/* the last bytes sent before the freeze */
	if (!c->cli) {
		*why = "too many bytes held";
		goto out;
	}
	if (phase == PH_KTLS) {
		if (bpf_map_delete_elem(d->fds.sockets, &c->cookie) && errno != ENOENT) {
			*why = "cannot take the socket out of the sockhash";
			goto out;
		}
		/* The server is quiet: BPF diverted nothing we did not see
		 * (a late event for it makes cli_on_data close it). */
		if (bpf_map_lookup_elem(d->fds.conns, &c->cookie, &info) || info.bytes_in != k->in_seq ||
		    k->in.len) {
			*why = "the server sent before the application's first call";
			goto out;
		}
		if (ktls_install(c->ssl, c->fd, false, k->tx_recs, k->rx_recs, why))
			goto out;
	}
	cx_set_phase(d, c, phase);
	if (k->hold.len && send_all(c->fd, k->hold.p, k->hold.len)) {
		*why = "cannot send the held bytes";
		goto out;
	}
	k->hold.len = 0;
	ret = 0;
out:
	if (frozen)
		cg_freeze(cg, false, 0);
	return ret;
}

static void handover(struct daemon *d, struct cx *c)
{
	struct ccx *k = c->cli;
	char subject[96];
	uint32_t flags = tls_peer_info(c->ssl, subject, sizeof(subject));
	const SSL_CIPHER *ciph = SSL_get_current_cipher(c->ssl);
	uint64_t took = now_mono_ns() - c->t_start;
	size_t held = k->hold.len;
	const char *why;
	char t[32];

	if (release_held(d, c, PH_KTLS, &why)) {
		stat_bump(ST_HANDOVER_CLOSED, 1);
		cx_refuse(d, c, RS_HANDOVER, "hand-over to kernel TLS failed: %s%s%s", why,
			  errno ? ": " : "", errno ? strerror(errno) : "");
		return;
	}
	stat_bump(ST_HS_DONE, 1);
	stat_bump(ST_HANDOVERS, 1);
	cx_record_tls(d, c, -1, flags, subject, took);
	fmt_duration(t, sizeof(t), took);
	log_info("%s: pid %d (%s): TLSv1.3 %s, ALPN %s, server %s (verified), probe and handshake %s, "
		 "%zu held bytes sent; on kernel TLS",
		 c->name, c->pid, c->comm, ciph ? SSL_CIPHER_get_name(ciph) : "?",
		 flags & CONN_F_ALPN ? "sunrpc" : "none", subject, t, held);
	cli_release(d, c);
	ktls_hold(d, c);	/* takes the peer certificate: SIGHUP checks it against a new CRL */
	SSL_free(c->ssl);
	c->ssl = NULL;
	c->state = CX_DONE;
	c->deadline = 0;
}

static void go_plain(struct daemon *d, struct cx *c, const char *answer)
{
	const char *why;

	if (c->policy == RPCTLS_POLICY_REQUIRED) {
		cx_refuse(d, c, RS_STARTTLS_REFUSED, "pid %d (%s): the server answered the probe with %s; TLS is "
			  "required, nothing of the application's was sent", c->pid, c->comm, answer);
		return;
	}
	if (release_held(d, c, PH_PLAIN, &why)) {
		cx_refuse(d, c, RS_HANDOVER, "cannot go on in clear text: %s", why);
		return;
	}
	stat_bump(ST_PLAIN, 1);
	log_info("%s: pid %d (%s): the server answered the probe with %s: clear text (policy optional)", c->name,
		 c->pid, c->comm, answer);
	cli_release(d, c);
	close(c->fd);
	c->fd = -1;
	c->state = CX_DONE;
	c->deadline = 0;
}

/* ---- what the server sends ---- */

static void start_tls(struct daemon *d, struct cx *c)
{
	struct ccx *k = c->cli;
	const struct conf_dest *dd = dest_of(d, c);
	struct conn info;

	if (!d->cli_ctx) {
		cx_refuse(d, c, RS_HANDSHAKE, "no [client] ca configured");
		return;
	}
	c->ssl = SSL_new(d->cli_ctx);
	k->rbio = BIO_new(BIO_s_mem());
	k->wbio = BIO_new(BIO_s_mem());
	if (!c->ssl || !k->rbio || !k->wbio || ktls_ssl_prepare(c->ssl)) {
		cx_refuse(d, c, RS_HANDSHAKE, "SSL_new: %s", tls_err_string());
		return;
	}
	BIO_up_ref(k->rbio);
	BIO_up_ref(k->wbio);
	SSL_set_bio(c->ssl, k->rbio, k->wbio);
	SSL_set_connect_state(c->ssl);
	/* Who the server must be: the configured name, else its address. */
	if (dd && dd->name[0]) {
		SSL_set_tlsext_host_name(c->ssl, dd->name);
		SSL_set1_host(c->ssl, dd->name);
	} else if (bpf_map_lookup_elem(d->fds.conns, &c->cookie, &info) == 0) {
		bool v4 = !info.raddr[0] && !info.raddr[1] && info.raddr[2] == htonl(0xffff);

		X509_VERIFY_PARAM_set1_ip(SSL_get0_param(c->ssl),
					  (const unsigned char *)(v4 ? &info.raddr[3] : info.raddr), v4 ? 4 : 16);
	}
	cx_set_phase(d, c, PH_HANDSHAKE);
	k->step = CS_TLS;
	tls_framer_init(&k->tf);
}

static void barrier_call(struct daemon *d, struct cx *c)
{
	struct ccx *k = c->cli;
	uint8_t call[RPC_PROBE_LEN];

	RAND_bytes((unsigned char *)&k->barrier_xid, sizeof(k->barrier_xid));
	rpc_build_probe(call, k->barrier_xid, k->prog, k->vers);
	put_be32(call + 28, AUTH_NONE);	/* a plain NULL call, inside TLS */
	if (SSL_write(c->ssl, call, sizeof(call)) != (int)sizeof(call) || flush_tls(c)) {
		cx_refuse(d, c, RS_PEER_RESET, "cannot send the quiet-point call");
		return;
	}
	k->step = CS_BARRIER;
	cx_set_phase(d, c, PH_USERSPACE_TLS);
}

/* The handshake is done: check the server, then find the quiet point. */
static void tls_done(struct daemon *d, struct cx *c)
{
	struct ccx *k = c->cli;
	const unsigned char *alpn;
	unsigned int alen = 0;

	k->hs_done = true;
	SSL_get0_alpn_selected(c->ssl, &alpn, &alen);
	if (d->conf.require_server_alpn && !(alen == RPCTLS_ALPN_LEN && !memcmp(alpn, RPCTLS_ALPN, alen))) {
		cx_refuse(d, c, RS_NO_ALPN, "the server did not answer ALPN sunrpc (require_server_alpn)");
		return;
	}
	barrier_call(d, c);
}

static void tls_failed(struct daemon *d, struct cx *c, int r)
{
	long v = SSL_get_verify_result(c->ssl);
	int e = SSL_get_error(c->ssl, r);

	stat_bump(ST_HS_FAILED, 1);
	flush_tls(c);	/* our alert, if OpenSSL wrote one */
	if (v != X509_V_OK)
		cx_refuse(d, c, RS_CERT, "pid %d (%s): server certificate refused: %s", c->pid, c->comm,
			  X509_verify_cert_error_string(v));
	else
		cx_refuse(d, c, RS_HANDSHAKE, "pid %d (%s): %s", c->pid, c->comm,
			  e == SSL_ERROR_SSL ? tls_err_string() : "handshake failed");
}

/* Our NULL call's reply, decrypted: the server is quiet now. */
static int barrier_reply(struct daemon *d, struct cx *c)
{
	struct ccx *k = c->cli;
	struct rm_parser rm;
	struct rpc_reply_hdr r;
	uint32_t used = 0, rec = 0;

	rm_init(&rm, 4096);
	if (rm_feed(&rm, k->plain.p, (uint32_t)k->plain.len, &used, &rec) != RM_RECORD)
		return 0;	/* not whole yet */
	if (used != k->plain.len || get_be32(k->plain.p) != (RPC_MARK_LAST | rec) ||
	    rpc_parse_reply(k->plain.p + 4, rec, &r) != RPC_PARSE_OK || r.xid != k->barrier_xid) {
		cx_refuse(d, c, RS_HANDSHAKE, "the server sent something else than the reply to our NULL call");
		return -1;
	}
	handover(d, c);
	return -1;
}

/* Feed the server's records to OpenSSL, one at a time. */
static void tls_input(struct daemon *d, struct cx *c)
{
	struct ccx *k = c->cli;

	for (;;) {
		uint32_t used = 0;
		int st, fr, r;
		uint8_t pt[16384];

		if (!k->in.len)
			break;
		fr = tls_framer_feed(&k->tf, k->in.p, (uint32_t)k->in.len, &used, &st);
		if (fr == TLS_FRAME_ERROR) {
			cx_refuse(d, c, RS_HANDSHAKE, "the server sent something that is not TLS");
			return;
		}
		BIO_write(k->rbio, k->in.p, (int)used);
		buf_drop(&k->in, used);
		if (fr != TLS_FRAME_RECORD)
			break;
		if (k->hs_done)
			k->rx_recs++;
		if (!k->hs_done) {
			r = SSL_do_handshake(c->ssl);
			if (flush_tls(c)) {
				cx_refuse(d, c, RS_PEER_RESET, "send: %s", strerror(errno));
				return;
			}
			if (r == 1) {
				tls_done(d, c);
				if (!c->cli || k->step != CS_BARRIER)
					return;
			} else if (SSL_get_error(c->ssl, r) != SSL_ERROR_WANT_READ) {
				tls_failed(d, c, r);
				return;
			}
			continue;
		}
		/* After the handshake: tickets (consumed), and our reply. */
		while ((r = SSL_read(c->ssl, pt, sizeof(pt))) > 0)
			if (buf_add(&k->plain, pt, (size_t)r, 1 << 20)) {
				cx_refuse(d, c, RS_HANDSHAKE, "the server sent too much before the first call");
				return;
			}
		if (r <= 0 && SSL_get_error(c->ssl, r) != SSL_ERROR_WANT_READ) {
			tls_failed(d, c, r);
			return;
		}
		if (k->plain.len && barrier_reply(d, c))
			return;
	}
}

static void probe_answer(struct daemon *d, struct cx *c)
{
	struct ccx *k = c->cli;
	struct rm_parser rm;
	struct rpc_reply_hdr r;
	uint32_t used = 0, rec = 0;

	rm_init(&rm, RPC_PROBE_REPLY_MAX + 64);
	switch (rm_feed(&rm, k->in.p, (uint32_t)k->in.len, &used, &rec)) {
	case RM_NEED_MORE:
		return;
	case RM_RECORD:
		break;
	default:
		cx_refuse(d, c, RS_STARTTLS_REFUSED, "the answer to the probe is oversized or malformed");
		return;
	}
	if (get_be32(k->in.p) != (RPC_MARK_LAST | rec) || rpc_parse_reply(k->in.p + 4, rec, &r) != RPC_PARSE_OK) {
		cx_refuse(d, c, RS_STARTTLS_REFUSED, "the answer to the probe is not an RPC reply");
		return;
	}
	if (r.xid != k->probe_xid) {
		cx_refuse(d, c, RS_STARTTLS_REFUSED, "the answer to the probe has xid %#x, not %#x", r.xid,
			  k->probe_xid);
		return;
	}
	if (rpc_reply_is_starttls(k->in.p + 4, rec, &r)) {
		buf_drop(&k->in, used);
		if (k->in.len) {	/* the server may not speak first in TLS */
			cx_refuse(d, c, RS_HANDSHAKE, "%zu bytes behind the STARTTLS answer", k->in.len);
			return;
		}
		start_tls(d, c);
		if (c->cli && c->ssl) {
			int x = SSL_do_handshake(c->ssl);

			if (flush_tls(c) || (x != 1 && SSL_get_error(c->ssl, x) != SSL_ERROR_WANT_READ))
				tls_failed(d, c, x);
		}
		return;
	}
	buf_drop(&k->in, used);
	go_plain(d, c, r.reply_stat == RPC_MSG_DENIED ? "AUTH_ERROR (no RPC-with-TLS)"
			: r.verf_len == 0 ? "an empty verifier (no TLS)" : "no STARTTLS");
}

void cli_on_data(struct daemon *d, struct cx *c, const uint8_t *data, uint32_t len, uint64_t seq)
{
	struct ccx *k = c->cli;

	if (!k) {
		if (c->state == CX_DONE && c->role == RPCTLS_ROLE_CLIENT)
			cx_refuse(d, c, RS_HANDOVER, "%u bytes of the server's were taken during the hand-over", len);
		return;
	}
	if (seq != k->in_seq) {
		cx_refuse(d, c, RS_HANDOVER, "lost %llu bytes of the server's (events dropped)",
			  (unsigned long long)(seq - k->in_seq));
		return;
	}
	k->in_seq += len;
	if (buf_add(&k->in, data, len, 1 << 20)) {
		cx_refuse(d, c, RS_HANDSHAKE, "the server sent too much");
		return;
	}
	switch (k->step) {
	case CS_PROBE_SENT:
		probe_answer(d, c);
		break;
	case CS_TLS:
	case CS_BARRIER:
		tls_input(d, c);
		break;
	default:
		cx_refuse(d, c, RS_SPURIOUS, "the server sent %u bytes before the probe", len);
	}
}

void cli_on_timeout(struct daemon *d, struct cx *c)
{
	struct ccx *k = c->cli;

	if (k && k->step == CS_WAIT_CALL && c->fd >= 0) {
		maybe_probe(d, c, true);	/* no first call: probe with the configured program */
		return;
	}
	if (c->state == CX_HANDSHAKE)
		stat_bump(ST_HS_FAILED, 1);
	cx_refuse(d, c, RS_TIMEOUT, "no progress in %u ms (%s)", d->conf.hs_timeout_ms,
		  !k ? "?" : k->step == CS_PROBE_SENT ? "no answer to the probe" :
		  k->step == CS_WAIT_CALL ? "the application's descriptor was not found" : "TLS handshake");
}
