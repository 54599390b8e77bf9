// SPDX-License-Identifier: GPL-2.0
/*
 * The server role: an unmodified RPC server in an attached cgroup, an RFC
 * 9289 client on the other end.
 *
 *  1. BPF saw an AUTH_TLS call open the connection and diverted it here
 *     (EV_DATA); the application never sees it. We gather the record and
 *     judge it as strictly as FreeBSD does.
 *  2. We find the application's descriptor (iter/task_file) and take a
 *     duplicate (pidfd_getfd).
 *  3. The client waits for our answer, so the stream is quiet: we raise
 *     SO_RCVLOWAT (the application's poll stays blind to what comes next),
 *     attach rx_notify (our own wake-up, since poll is blind for us too),
 *     take the socket out of the sockhash, and send STARTTLS.
 *  4. SSL_accept runs on the socket itself, reading exactly up to the
 *     client's Finished; whatever the client sends behind it stays in the
 *     TCP queue.
 *  5. TLS_TX, then TLS_RX and SO_RCVLOWAT back (with the application's
 *     cgroup frozen for that instant when its socket is blocking, so that no
 *     reader enters read() between the two), and the kernel decrypts what
 *     waited in the queue for the application. Nothing is copied, nothing is
 *     lost, and no byte of the handshake reaches the application.
 * See docs/design.md for why this way and not through the ring buffer.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <linux/tls.h>
#include <openssl/err.h>

#include "daemon.h"
#include "ktls.h"

/* Bytes the application cannot see while we handshake on its socket (the
 * kernel caps this at tcp_rmem[2]/2). */
#define HIDE_LOWAT (1 << 20)

static uint64_t hs_timeout_ns(struct daemon *d)
{
	return (uint64_t)d->conf.hs_timeout_ms * 1000000ull;
}

void srv_on_new(struct daemon *d, struct cx *c)
{
	struct conn info;

	log_debug("%s: new server connection, policy %s", c->name,
		  c->policy == RPCTLS_POLICY_REQUIRED ? "required" : "optional");
	if (bpf_map_lookup_elem(d->fds.conns, &c->cookie, &info) || !(info.flags & CONN_F_BLIND))
		return;
	/* BPF blinded it at establishment (see sockops): once the
	 * application has accepted it, lower SO_RCVLOWAT. */
	c->kick = true;
	c->state = CX_LOOKUP;
	c->deadline = now_mono_ns() + (uint64_t)d->conf.queue_timeout_ms * 1000000ull;
	d->lookup_pending = true;
}

/*
 * The application has accepted the connection (we hold its descriptor): put
 * SO_RCVLOWAT back where the application had it. tcp_set_rcvlowat() then
 * runs the verdict on the bytes that waited, now that the socket has its
 * struct socket: a probe comes to us (EV_DATA), a plain call goes to the
 * application, a refused connection is closed here.
 */
void srv_kick(struct daemon *d, struct cx *c)
{
	struct conn info;
	socklen_t len = sizeof(int);
	int cur = 1;

	c->kick = false;
	getsockopt(c->fd, SOL_SOCKET, SO_RCVLOWAT, &cur, &len);
	if (cur >= HIDE_LOWAT || cur < 1)	/* ours, not one the application set */
		cur = 1;
	if (bpf_map_lookup_elem(d->fds.conns, &c->cookie, &info) == 0) {
		info.flags &= ~CONN_F_BLIND;
		info.pid = (uint32_t)c->pid;
		bpf_map_update_elem(d->fds.conns, &c->cookie, &info, BPF_EXIST);
	}
	setsockopt(c->fd, SOL_SOCKET, SO_RCVLOWAT, &cur, sizeof(cur));
	if (bpf_map_lookup_elem(d->fds.conns, &c->cookie, &info)) {
		cx_close(d, c);		/* closed meanwhile */
		return;
	}
	log_debug("%s: accepted by pid %d (%s), %s", c->name, c->pid, c->comm, phase_names[info.phase]);
	switch (info.phase) {
	case PH_REFUSED:
		cx_refuse(d, c, info.reason, "pid %d (%s): the application never saw its data", c->pid, c->comm);
		return;
	case PH_PROBE:
		/* The probe is on its way to us: keep the descriptor. */
		c->state = CX_PROBE;
		c->deadline = now_mono_ns() + hs_timeout_ns(d);
		return;
	default:
		close(c->fd);
		c->fd = -1;
		c->deadline = 0;
		c->state = info.phase == PH_AWAIT_PROBE ? CX_NEW : CX_DONE;
	}
}

/* Gather the probe record; judge it when it is whole. */
void srv_on_data(struct daemon *d, struct cx *c, const uint8_t *data, uint32_t len)
{
	struct rm_parser rm;
	uint32_t used = 0, rec = 0;

	if (c->state != CX_NEW && c->state != CX_PROBE) {
		/* The client may not send between its probe and our answer
		 * (RFC 9289 section 4.1): drop the connection. */
		cx_refuse(d, c, RS_SPURIOUS, "%u bytes before the STARTTLS answer", len);
		return;
	}
	if (c->state == CX_NEW) {
		c->state = CX_PROBE;
		c->deadline = now_mono_ns() + hs_timeout_ns(d);
	}
	if (len > sizeof(c->probe) - c->probe_len) {
		cx_refuse(d, c, RS_PROBE_MALFORMED, "AUTH_TLS call longer than %zu bytes", sizeof(c->probe));
		return;
	}
	memcpy(c->probe + c->probe_len, data, len);
	c->probe_len += len;

	rm_init(&rm, sizeof(c->probe) - RPC_MARK_LEN);
	switch (rm_feed(&rm, c->probe, c->probe_len, &used, &rec)) {
	case RM_NEED_MORE:
		log_debug("%s: %u bytes of the probe so far", c->name, c->probe_len);
		return;
	case RM_RECORD:
		break;
	default:
		cx_refuse(d, c, RS_PROBE_MALFORMED, "record marking of the AUTH_TLS call is invalid");
		return;
	}
	if (used != c->probe_len) {
		cx_refuse(d, c, RS_SPURIOUS, "%u bytes behind the probe, before the STARTTLS answer",
			  c->probe_len - used);
		return;
	}
	if (get_be32(c->probe) != (RPC_MARK_LAST | rec)) {
		/* Several fragments: a probe is one record of one fragment. */
		c->probe_verdict = RPC_PROBE_MALFORMED;
	} else {
		c->probe_verdict = rpc_probe_judge(c->probe + RPC_MARK_LEN, rec, &c->call);
	}
	if (c->probe_verdict == RPC_PROBE_MALFORMED || c->probe_verdict == RPC_PROBE_NOT_PROBE) {
		cx_refuse(d, c, RS_PROBE_MALFORMED, "malformed AUTH_TLS call (%u bytes)", rec);
		return;
	}
	log_debug("%s: AUTH_TLS probe xid %#x prog %u vers %u: %s", c->name, c->call.xid, c->call.prog,
		  c->call.vers, c->probe_verdict == RPC_PROBE_OK ? "valid" : "refused");
	if (c->fd >= 0) {	/* still held since the kick */
		srv_on_fd(d, c);
		return;
	}
	c->state = CX_LOOKUP;
	c->deadline = now_mono_ns() + (uint64_t)d->conf.queue_timeout_ms * 1000000ull;
	d->lookup_pending = true;
	cx_lookup_all(d);
}

static int send_all(int fd, const uint8_t *b, size_t n)
{
	while (n) {
		ssize_t r = send(fd, b, n, MSG_DONTWAIT | MSG_NOSIGNAL);

		if (r <= 0)
			return -1;
		b += r;
		n -= (size_t)r;
	}
	return 0;
}

static int answer(struct cx *c, int kind)
{
	uint8_t r[RPC_PROBE_REPLY_MAX];
	uint32_t n = rpc_build_probe_reply(r, c->call.xid, kind);

	return send_all(c->fd, r, n);
}

/* Answer without TLS and let the connection go on in clear text: the
 * socket stays in the sockhash, BPF passes what follows. */
static void go_plain(struct daemon *d, struct cx *c, int kind, const char *why)
{
	if (answer(c, kind)) {
		cx_refuse(d, c, RS_PEER_RESET, "cannot send the answer: %s", strerror(errno));
		return;
	}
	cx_set_phase(d, c, kind == RPC_ANSWER_NO_TLS ? PH_PLAIN : PH_AWAIT_PROBE);
	if (kind == RPC_ANSWER_NO_TLS)
		stat_bump(ST_PLAIN, 1);
	log_info("%s: pid %d (%s): %s", c->name, c->pid, c->comm, why);
	close(c->fd);
	c->fd = -1;
	c->deadline = 0;
	/* After a refused probe the client may try again, or go on plain. */
	c->state = kind == RPC_ANSWER_NO_TLS ? CX_DONE : CX_NEW;
	c->probe_len = 0;
}

static void start_handshake(struct daemon *d, struct cx *c);

void srv_on_fd(struct daemon *d, struct cx *c)
{
	if (c->probe_verdict == RPC_PROBE_BADCRED) {
		go_plain(d, c, RPC_ANSWER_BADCRED, "AUTH_TLS probe with a credential or verifier: AUTH_BADCRED");
		return;
	}
	if (c->probe_verdict == RPC_PROBE_REJECTEDCRED) {
		go_plain(d, c, RPC_ANSWER_REJECTEDCRED, "AUTH_TLS on a procedure other than NULL: AUTH_REJECTEDCRED");
		return;
	}
	if (!d->srv_ctx) {
		if (c->policy == RPCTLS_POLICY_REQUIRED)
			cx_refuse(d, c, RS_HANDSHAKE, "no server certificate configured, and TLS is required");
		else
			go_plain(d, c, RPC_ANSWER_NO_TLS, "no server certificate configured: answered no-TLS, clear text");
		return;
	}
	if (d->n_handshakes >= (int)d->conf.max_handshakes) {
		c->state = CX_QUEUED;
		c->deadline = now_mono_ns() + (uint64_t)d->conf.queue_timeout_ms * 1000000ull;
		log_debug("%s: queued, %d handshakes running", c->name, d->n_handshakes);
		return;
	}
	start_handshake(d, c);
}

void srv_slot_freed(struct daemon *d)
{
	for (int i = 0; i < 4096 && d->n_handshakes < (int)d->conf.max_handshakes; i++)
		for (struct cx *c = d->tab[i]; c; c = c->next)
			if (c->state == CX_QUEUED) {
				start_handshake(d, c);
				if (d->n_handshakes >= (int)d->conf.max_handshakes)
					return;
			}
}

/* A thread that reads a blocking socket without waiting for readiness (a
 * non-blocking one never sleeps in there). BPF marks a socket whose recvmsg
 * was entered before the probe was answered (sk_readers, guard.bpf.c); where
 * the kernel has no such mark, /proc tells, thread by thread. */
static bool blocked_reader(struct daemon *d, struct cx *c)
{
	int fds[1] = { c->app_fd }, fl = fcntl(c->fd, F_GETFL), key = c->fd;
	__u64 reads = 0;

	if (fl < 0 || (fl & O_NONBLOCK))
		return false;
	if (d->readers_fd >= 0) {
		if (bpf_map_lookup_elem(d->readers_fd, &key, &reads) == 0)
			return reads > 0;
		if (errno == ENOENT)
			return false;
	}
	return sock_blocked_reader(c->pid, fds, 1);
}

static void start_handshake(struct daemon *d, struct cx *c)
{
	socklen_t len = sizeof(c->saved_lowat);
	int lowat = HIDE_LOWAT, prog = d->fds.prog_rx_notify;

	c->state = CX_HANDSHAKE;
	c->in_slot = true;
	d->n_handshakes++;
	c->t_start = now_mono_ns();
	c->deadline = c->t_start + hs_timeout_ns(d);

	/* A thread asleep in read() on the socket would keep the psock alive
	 * (TLS setup then fails) and could take the ClientHello when woken. */
	if (blocked_reader(d, c)) {
		if (c->policy == RPCTLS_POLICY_REQUIRED)
			cx_refuse(d, c, RS_HANDOVER, "pid %d (%s) has a thread blocked in read() on the socket",
				  c->pid, c->comm);
		else
			go_plain(d, c, RPC_ANSWER_NO_TLS,
				 "a thread is blocked in read() on the socket: answered no-TLS, clear text");
		return;
	}
	if (getsockopt(c->fd, SOL_SOCKET, SO_RCVLOWAT, &c->saved_lowat, &len) || c->saved_lowat < 1)
		c->saved_lowat = 1;
	if (setsockopt(c->fd, SOL_SOCKET, SO_RCVLOWAT, &lowat, sizeof(lowat))) {
		cx_refuse(d, c, RS_HANDOVER, "SO_RCVLOWAT: %s", strerror(errno));
		return;
	}
	c->lowat_raised = true;
	if (setsockopt(c->fd, SOL_SOCKET, SO_ATTACH_BPF, &prog, sizeof(prog))) {
		cx_refuse(d, c, RS_HANDOVER, "SO_ATTACH_BPF: %s", strerror(errno));
		return;
	}
	c->filter_on = true;
	/* Bytes BPF sees from now on are spurious: it diverts them to us, and
	 * we refuse the connection (srv_on_data). */
	cx_set_phase(d, c, PH_HANDSHAKE);
	if (bpf_map_delete_elem(d->fds.sockets, &c->cookie) && errno != ENOENT) {
		cx_refuse(d, c, RS_HANDOVER, "cannot take the socket out of the sockhash: %s", strerror(errno));
		return;
	}
	c->ssl = SSL_new(d->srv_ctx);
	if (!c->ssl || ktls_ssl_prepare(c->ssl)) {
		cx_refuse(d, c, RS_HANDSHAKE, "SSL_new: %s", tls_err_string());
		return;
	}
	{
		BIO *b = fd_bio_new(c->fd);

		SSL_set_bio(c->ssl, b, b);
	}
	if (answer(c, RPC_ANSWER_STARTTLS)) {
		cx_refuse(d, c, RS_PEER_RESET, "cannot send STARTTLS: %s", strerror(errno));
		return;
	}
	log_debug("%s: STARTTLS sent, handshake with pid %d (%s)", c->name, c->pid, c->comm);
	c->retry_ms = 0;
	c->retry_at = 0;
	srv_on_wake(d, c);
}

/* Hand the socket to kernel TLS. */
static int handover(struct daemon *d, struct cx *c, const char **why)
{
	int fl = fcntl(c->fd, F_GETFL);
	char cg[512];
	bool frozen = false;

	*why = NULL;
	if (SSL_pending(c->ssl) > 0) {
		*why = "OpenSSL holds data past the handshake";
		return -1;
	}
	if (ktls_install_one(c->ssl, c->fd, true, TLS_TX, 0, why))
		return -1;
	/*
	 * A blocking reader that enters read() after TLS_RX and before the
	 * lowat restore would wait for SO_RCVLOWAT bytes that never come: with
	 * a blocking socket, freeze the application across the two steps (its
	 * read() or poll() restart unseen). A non-blocking reader only gets
	 * a shorter read.
	 */
	if (fl >= 0 && !(fl & O_NONBLOCK) && cg_dir_of(c->pid, cg, sizeof(cg)) == 0) {
		if (cg_freeze(cg, true, 200) == 0)
			frozen = true;
		else
			log_debug("%s: cannot freeze %s: %s", c->name, cg, strerror(errno));
	}
	if (ktls_install_one(c->ssl, c->fd, true, TLS_RX, 0, why)) {
		if (frozen)
			cg_freeze(cg, false, 0);
		return -1;
	}
	ktls_forget(c->ssl);
	/* The guard lets the application read again: through kTLS now. Then
	 * SO_RCVLOWAT back, which wakes it for what waited in the queue. */
	cx_set_phase(d, c, PH_KTLS);
	setsockopt(c->fd, SOL_SOCKET, SO_RCVLOWAT, &c->saved_lowat, sizeof(c->saved_lowat));
	c->lowat_raised = false;
	if (frozen)
		cg_freeze(cg, false, 0);
	/* Else it would wake us for every record the application receives. */
	if (sock_filter_detach(c->fd))
		log_warn("%s: cannot take the wake-up filter off: %s", c->name, strerror(errno));
	c->filter_on = false;
	return 0;
}

static void finished(struct daemon *d, struct cx *c)
{
	char subject[96] = "";
	uint32_t flags = tls_peer_info(c->ssl, subject, sizeof(subject));
	const SSL_CIPHER *ciph = SSL_get_current_cipher(c->ssl);
	uint64_t took = now_mono_ns() - c->t_start;
	const char *why;
	char t[32];

	if (handover(d, c, &why)) {
		stat_bump(ST_HANDOVER_CLOSED, 1);
		cx_refuse(d, c, RS_HANDOVER, "hand-over to kernel TLS failed: %s: %s", why, strerror(errno));
		return;
	}
	stat_bump(ST_HS_DONE, 1);
	stat_bump(ST_HANDOVERS, 1);
	cx_record_tls(d, c, PH_KTLS, flags, subject, took);
	fmt_duration(t, sizeof(t), took);
	log_info("%s: pid %d (%s): TLSv1.3 %s, ALPN %s, peer %s%s, handshake %s; on kernel TLS", c->name, c->pid,
		 c->comm, ciph ? SSL_CIPHER_get_name(ciph) : "?", flags & CONN_F_ALPN ? "sunrpc" : "none",
		 subject[0] ? subject : "without certificate",
		 flags & CONN_F_VERIFIED ? " (verified)" : "", t);
	ktls_hold(d, c);	/* takes the peer certificate: SIGHUP checks it against a new CRL */
	SSL_free(c->ssl);
	c->ssl = NULL;
	c->state = CX_DONE;
	c->deadline = 0;
	c->in_slot = false;
	d->n_handshakes--;
	d->dequeue = true;
}

void srv_on_wake(struct daemon *d, struct cx *c)
{
	if (c->busy) {
		c->wake_again = true;
		return;
	}
	if (c->state != CX_HANDSHAKE || !c->ssl)
		return;
	c->retry_at = 0;
	if (hs_pool_on()) {	/* the result comes back through hs_pool_collect() */
		hs_pool_submit(c);
		return;
	}
	hs_step(c);
	srv_accept_result(d, c);
}

void srv_accept_result(struct daemon *d, struct cx *c)
{
	int e = c->hs.e;

	if (c->state != CX_HANDSHAKE || !c->ssl)
		return;
	if (c->hs.r == 1) {
		finished(d, c);
		return;
	}
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
		/* rx_notify runs before the bytes are queued: look again soon,
		 * backing off; its next event wakes us anyway. */
		c->retry_ms = c->retry_ms ? (c->retry_ms < 64 ? c->retry_ms * 2 : 100) : 1;
		c->retry_at = now_mono_ns() + (uint64_t)c->retry_ms * 1000000ull;
		return;
	}
	stat_bump(ST_HS_FAILED, 1);
	if (e == SSL_ERROR_SYSCALL || (e == SSL_ERROR_SSL && !c->hs.err && c->hs.err_no))
		cx_refuse(d, c, RS_HANDSHAKE, "pid %d (%s): connection %s during the handshake", c->pid, c->comm,
			  c->hs.err_no ? strerror(c->hs.err_no) : "closed by the client");
	else
		cx_refuse(d, c, RS_HANDSHAKE, "pid %d (%s): %s", c->pid, c->comm, c->hs.errstr);
}

void srv_on_timeout(struct daemon *d, struct cx *c)
{
	if (c->state == CX_HANDSHAKE)
		stat_bump(ST_HS_FAILED, 1);
	cx_refuse(d, c, RS_TIMEOUT, "no progress in %u ms (%s)",
		  c->state == CX_LOOKUP || c->state == CX_QUEUED ? d->conf.queue_timeout_ms : d->conf.hs_timeout_ms,
		  c->state == CX_PROBE ? "probe incomplete" :
		  c->state == CX_LOOKUP ? "application never accepted the connection" :
		  c->state == CX_QUEUED ? "waiting for a handshake slot" : "handshake");
}
