// SPDX-License-Identifier: GPL-2.0
/*
 * rpcc: an RPC client for the tests that can misbehave on purpose. Speaks
 * RFC 9289 with OpenSSL or GnuTLS, or plain RPC, and checks every reply.
 *
 *   rpcc [options] HOST PORT
 *     --tls                 probe, STARTTLS, TLS 1.3 (ALPN sunrpc) before the calls
 *     --gnutls              ... with GnuTLS instead of OpenSSL
 *     --ca F --name N       verify the server (name or IP address)
 *     --cert F --key F      client certificate
 *     --prog P --vers V     of the probe and of null calls (100000 4)
 *     --call KIND           null | pmap-dump | rpcb-getaddr | nfs3-null | nfs4-null |
 *                           nfs4-getattr-root
 *     --tls12               offer TLS 1.2 only (the server must refuse)
 *     --count N             calls per connection (1)
 *     --pipeline            send all N calls before reading any reply
 *     --any-order           replies may come in any order (a multi-threaded
 *                           server), each exactly once; default: in order
 *     --coalesce            the first call leaves in the same segment as the
 *                           client's Finished (OpenSSL only)
 *     --conns N             N connections at once, one thread each (1)
 *     --bytes N             make each null call N bytes long (padding in the
 *                           credential-less arguments; servers ignore them)
 *     --marker TEXT         put TEXT in each null call's arguments (to look for
 *                           it in a capture)
 *     --hold SECS           keep each connection open SECS after its calls
 *     --gap MS              wait MS between calls
 *     --no-reply            do not wait for replies
 *     --timeout SECS        for each read (default 30)
 *     --latency             print p50, p99 and max of connect-to-first-reply
 *     --end HOW             wait | close-notify | keyupdate | alert: see
 *                           end_connection()
 * Prints "ok CONNS CALLS" and exits 0 when every call of every connection got
 * its reply, in order; otherwise prints what failed and exits 1.
 * Special modes (bad input for the server, each connection on its own):
 *     --raw-first HEX       send these bytes first (instead of a probe) and
 *                           print what comes back (hex) or EOF/RST
 *     --after-probe MODE    after STARTTLS send garbage, stall inside a
 *                           ClientHello, or reset (rst) in its middle; prints
 *                           what the server did (EOF, RST, DATA, TIMEOUT)
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <linux/tls.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "rpctls/parse.h"
#include "ktls.h"

enum kind { K_NULL, K_PMAP_DUMP, K_RPCB_GETADDR, K_NFS3_NULL, K_NFS4_NULL, K_NFS4_GETATTR };

static struct {
	const char *host, *port, *ca, *name, *cert, *key, *raw_first, *after_probe, *marker;
	bool tls, gnutls, pipeline, coalesce, tls12, any_order, no_reply;
	uint32_t prog, vers, count, conns, bytes, hold, gap_ms, timeout_s;
	bool latency;
	const char *end_how;	/* --end: how to finish the connection */
	enum kind kind;
} o = { .prog = 100000, .vers = 4, .count = 1, .conns = 1, .timeout_s = 30 };
static double *lat_ms;	/* connect to first reply, per connection */

static SSL_CTX *octx;
static gnutls_certificate_credentials_t gcred;
static int failures;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

static void fail(int id, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(int id, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&mu);
	failures++;
	fprintf(stdout, "conn %d: ", id);
	va_start(ap, fmt);
	vfprintf(stdout, fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
	fflush(stdout);
	pthread_mutex_unlock(&mu);
}

/* A transport: plain fd, OpenSSL or GnuTLS. */
struct tp {
	int fd;
	SSL *ssl;
	gnutls_session_t gs;
	uint8_t buf[1 << 17];
	uint32_t have;
};

static int tp_write(struct tp *t, const void *b, size_t n)
{
	if (t->ssl)
		return SSL_write(t->ssl, b, (int)n) == (int)n ? 0 : -1;
	if (t->gs) {
		while (n) {
			ssize_t r = gnutls_record_send(t->gs, b, n);

			if (r <= 0)
				return -1;
			b = (const char *)b + r;
			n -= (size_t)r;
		}
		return 0;
	}
	return send(t->fd, b, n, MSG_NOSIGNAL) == (ssize_t)n ? 0 : -1;
}

static int tp_read(struct tp *t, void *b, size_t n)
{
	if (t->ssl)
		return SSL_read(t->ssl, b, (int)n);
	if (t->gs) {
		ssize_t r;

		do
			r = gnutls_record_recv(t->gs, b, n);
		while (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED);
		return (int)r;
	}
	/* Wait for readiness before reading, as libtirpc and libnfs do: a
	 * reader asleep in recv() on a socket in a sockhash meets 6.1's
	 * tcp_bpf (see docs/design.md). */
	{
		struct pollfd pf = { .fd = t->fd, .events = POLLIN };

		if (poll(&pf, 1, (int)o.timeout_s * 1000) <= 0)
			return -1;
	}
	return (int)recv(t->fd, b, n, 0);
}

/* Next whole record, marks stripped, into @out. */
static int tp_record(struct tp *t, uint8_t *out, uint32_t cap, uint32_t *len)
{
	for (;;) {
		struct rm_parser rm;
		uint32_t used = 0, rec = 0;

		rm_init(&rm, cap);
		if (t->have && rm_feed(&rm, t->buf, t->have, &used, &rec) == RM_RECORD) {
			uint32_t in = 0, o2 = 0;

			while (in < used) {
				uint32_t fl = get_be32(t->buf + in) & RPC_MARK_LEN_MASK;

				memcpy(out + o2, t->buf + in + 4, fl);
				in += 4 + fl;
				o2 += fl;
			}
			memmove(t->buf, t->buf + used, t->have - used);
			t->have -= used;
			*len = o2;
			return 0;
		}
		if (t->have == sizeof(t->buf))
			return -1;
		{
			int r = tp_read(t, t->buf + t->have, sizeof(t->buf) - t->have);

			if (r <= 0)
				return -1;
			t->have += (uint32_t)r;
		}
	}
}

static uint32_t put_call_hdr(uint8_t *b, uint32_t xid, uint32_t prog, uint32_t vers, uint32_t proc, bool sys)
{
	uint32_t off = 4;

	put_be32(b + off, xid), off += 4;
	put_be32(b + off, RPC_CALL), off += 4;
	put_be32(b + off, RPC_VERSION), off += 4;
	put_be32(b + off, prog), off += 4;
	put_be32(b + off, vers), off += 4;
	put_be32(b + off, proc), off += 4;
	if (sys) {	/* AUTH_SYS: stamp, "rpcc", uid 0, gid 0, no gids */
		put_be32(b + off, AUTH_SYS), off += 4;
		put_be32(b + off, 24), off += 4;
		put_be32(b + off, 0), off += 4;
		put_be32(b + off, 4), off += 4;
		memcpy(b + off, "rpcc", 4), off += 4;
		put_be32(b + off, 0), off += 4;
		put_be32(b + off, 0), off += 4;
		put_be32(b + off, 0), off += 4;
	} else {
		put_be32(b + off, AUTH_NONE), off += 4;
		put_be32(b + off, 0), off += 4;
	}
	put_be32(b + off, AUTH_NONE), off += 4;
	put_be32(b + off, 0), off += 4;
	return off;
}

/* A call record for @kind; returns its length. */
static uint32_t build_call(uint8_t *b, uint32_t xid)
{
	uint32_t n;

	switch (o.kind) {
	case K_PMAP_DUMP:
		n = put_call_hdr(b, xid, 100000, 2, 4, false);
		break;
	case K_RPCB_GETADDR:
		/* RPCBPROC_GETADDR { 100000, 4, "tcp", "", "" } */
		n = put_call_hdr(b, xid, 100000, 4, 3, false);
		put_be32(b + n, 100000), n += 4;
		put_be32(b + n, 4), n += 4;
		put_be32(b + n, 3), n += 4;
		memcpy(b + n, "tcp\0", 4), n += 4;
		put_be32(b + n, 0), n += 4;
		put_be32(b + n, 0), n += 4;
		break;
	case K_NFS3_NULL:
		n = put_call_hdr(b, xid, 100003, 3, 0, true);
		break;
	case K_NFS4_NULL:
		n = put_call_hdr(b, xid, 100003, 4, 0, true);
		break;
	case K_NFS4_GETATTR:
		/* COMPOUND { PUTROOTFH; GETATTR(type) } */
		n = put_call_hdr(b, xid, 100003, 4, 1, true);
		put_be32(b + n, 0), n += 4;	/* tag */
		put_be32(b + n, 0), n += 4;	/* minorversion */
		put_be32(b + n, 2), n += 4;	/* two operations */
		put_be32(b + n, 24), n += 4;	/* OP_PUTROOTFH */
		put_be32(b + n, 9), n += 4;	/* OP_GETATTR */
		put_be32(b + n, 1), n += 4;	/* bitmap, one word */
		put_be32(b + n, 1u << 1), n += 4;	/* FATTR4_TYPE */
		break;
	default:
		n = put_call_hdr(b, xid, o.prog, o.vers, 0, false);
		if (o.marker) {	/* arguments a NULL procedure ignores */
			memcpy(b + n, o.marker, strlen(o.marker));
			n += (uint32_t)strlen(o.marker);
		}
		if (o.bytes > n) {
			memset(b + n, 0, o.bytes - n);
			n = o.bytes;
		}
	}
	put_be32(b, RPC_MARK_LAST | (n - 4));
	return n;
}

/* Check a reply: xid, accepted, success, and for COMPOUND the statuses. */
static int check_reply(int id, const uint8_t *r, uint32_t len, uint32_t xid)
{
	struct rpc_reply_hdr h;

	if (rpc_parse_reply(r, len, &h) != RPC_PARSE_OK)
		return fail(id, "malformed reply (%u bytes)", len), -1;
	if (h.xid != xid)
		return fail(id, "reply xid %#x, expected %#x (out of order or lost)", h.xid, xid), -1;
	if (h.reply_stat != RPC_MSG_ACCEPTED || h.stat != RPC_SUCCESS)
		return fail(id, "call %#x: %s, status %u", xid, h.reply_stat ? "denied" : "accepted", h.stat), -1;
	if (o.kind == K_NFS4_GETATTR) {
		uint32_t off = h.hdr_len;

		if (off + 4 > len || get_be32(r + off) != 0)
			return fail(id, "COMPOUND status %u", off + 4 <= len ? get_be32(r + off) : 0xffff), -1;
	}
	if (o.kind == K_PMAP_DUMP && (h.hdr_len + 4 > len || get_be32(r + h.hdr_len) != 1))
		return fail(id, "rpcbind DUMP: no mapping"), -1;
	if (o.kind == K_RPCB_GETADDR && (h.hdr_len + 4 > len || get_be32(r + h.hdr_len) == 0))
		return fail(id, "rpcbind GETADDR: empty address"), -1;
	return 0;
}

static int dial(int id)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res;
	int fd, one = 1;
	struct timeval tv = { o.timeout_s, 0 };

	if (getaddrinfo(o.host, o.port, &hints, &res))
		return fail(id, "cannot resolve %s", o.host), -1;
	fd = socket(res->ai_family, SOCK_STREAM, 0);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, res->ai_addr, res->ai_addrlen)) {
		fail(id, "connect: %s", strerror(errno));
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	return fd;
}

static int probe(int id, struct tp *t)
{
	uint8_t p[RPC_PROBE_LEN], r[512];
	struct rpc_reply_hdr h;
	uint32_t len, xid = 0x7e570000u + (uint32_t)id;

	rpc_build_probe(p, xid, o.prog, o.vers);
	if (tp_write(t, p, sizeof(p)) || tp_record(t, r, sizeof(r), &len))
		return fail(id, "no answer to the probe"), -1;
	if (t->have)
		return fail(id, "%u bytes after the probe answer", t->have), -1;
	if (rpc_parse_reply(r, len, &h) != RPC_PARSE_OK || h.xid != xid || !rpc_reply_is_starttls(r, len, &h))
		return fail(id, "no STARTTLS in the answer to the probe"), -1;
	return 0;
}

static void set_verify_name(SSL *ssl)
{
	const char *name = o.name ? o.name : o.host;
	unsigned char a[16];

	if (inet_pton(AF_INET, name, a) == 1 || inet_pton(AF_INET6, name, a) == 1) {
		X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name);
	} else {
		SSL_set_tlsext_host_name(ssl, name);
		SSL_set1_host(ssl, name);
	}
}

/* OpenSSL over memory BIOs: we decide what leaves in which send(). */
static int openssl_coalesced(int id, struct tp *t, const uint8_t *first, uint32_t flen)
{
	BIO *rb = BIO_new(BIO_s_mem()), *wb = BIO_new(BIO_s_mem());
	uint8_t io[16384];
	int r;

	SSL_set_bio(t->ssl, rb, wb);
	for (;;) {
		r = SSL_connect(t->ssl);
		if (r == 1)
			break;
		if (SSL_get_error(t->ssl, r) != SSL_ERROR_WANT_READ)
			return fail(id, "TLS handshake: %s", ERR_error_string(ERR_get_error(), NULL)), -1;
		while ((r = BIO_read(wb, io, sizeof(io))) > 0)
			if (send(t->fd, io, (size_t)r, MSG_NOSIGNAL) != r)
				return fail(id, "send"), -1;
		r = (int)recv(t->fd, io, sizeof(io), 0);
		if (r <= 0)
			return fail(id, "handshake: connection closed"), -1;
		BIO_write(rb, io, r);
	}
	/* Finished is in wb: add the first call behind it, one send(). */
	if (SSL_write(t->ssl, first, (int)flen) != (int)flen)
		return fail(id, "SSL_write"), -1;
	r = BIO_read(wb, io, sizeof(io));
	if (r <= 0 || send(t->fd, io, (size_t)r, MSG_NOSIGNAL) != r)
		return fail(id, "send of Finished and the first call"), -1;
	/* From here on, the socket. */
	{
		BIO *sb = BIO_new_socket(t->fd, BIO_NOCLOSE);
		uint8_t left[16384];
		int nleft = BIO_read(rb, left, sizeof(left));

		if (nleft > 0) {	/* bytes read past the handshake: keep them */
			BIO *mem = BIO_new(BIO_s_mem());

			BIO_write(mem, left, nleft);
			fail(id, "server bytes already read past the handshake (%d)", nleft);
			BIO_free(mem);
		}
		BIO_up_ref(sb);
		SSL_set_bio(t->ssl, sb, sb);
	}
	return 0;
}

static int start_tls(int id, struct tp *t, const uint8_t *first, uint32_t flen, bool *first_sent)
{
	*first_sent = false;
	if (o.gnutls) {
		int r;

		gnutls_init(&t->gs, GNUTLS_CLIENT);
		gnutls_priority_set_direct(t->gs, "NORMAL:-VERS-ALL:+VERS-TLS1.3", NULL);
		gnutls_credentials_set(t->gs, GNUTLS_CRD_CERTIFICATE, gcred);
		{
			gnutls_datum_t alpn = { (unsigned char *)"sunrpc", 6 };

			gnutls_alpn_set_protocols(t->gs, &alpn, 1, 0);
		}
		if (o.name)
			gnutls_server_name_set(t->gs, GNUTLS_NAME_DNS, o.name, strlen(o.name));
		if (o.ca)
			gnutls_session_set_verify_cert(t->gs, o.name ? o.name : NULL, 0);
		gnutls_transport_set_int(t->gs, t->fd);
		do
			r = gnutls_handshake(t->gs);
		while (r < 0 && !gnutls_error_is_fatal(r));
		if (r < 0)
			return fail(id, "GnuTLS handshake: %s", gnutls_strerror(r)), -1;
		return 0;
	}
	t->ssl = SSL_new(octx);
	ktls_ssl_prepare(t->ssl);
	set_verify_name(t->ssl);
	if (o.coalesce) {
		*first_sent = true;
		return openssl_coalesced(id, t, first, flen);
	}
	SSL_set_fd(t->ssl, t->fd);
	if (SSL_connect(t->ssl) != 1)
		return fail(id, "TLS handshake: %s (verify: %s)", ERR_error_string(ERR_get_error(), NULL),
			    X509_verify_cert_error_string(SSL_get_verify_result(t->ssl))), -1;
	return 0;
}

/* How the peer ended the connection: "close_notify" then EOF, or "EOF"
 * (no close_notify), or "RST", or "TIMEOUT" (nothing in 10 s). */
static const char *peer_end(struct tp *t)
{
	struct pollfd pf = { .fd = t->fd, .events = POLLIN };
	uint8_t b[4096];
	int r;

	for (;;) {
		if (poll(&pf, 1, 10000) <= 0)
			return "TIMEOUT";
		if (t->ssl) {
			r = SSL_read(t->ssl, b, sizeof(b));
			if (r > 0)
				continue;
			if (SSL_get_shutdown(t->ssl) & SSL_RECEIVED_SHUTDOWN)
				return "close_notify";
			return errno == ECONNRESET ? "RST" : "EOF";
		}
		r = (int)recv(t->fd, b, sizeof(b), 0);
		if (r > 0)
			continue;
		return r == 0 ? "EOF" : errno == ECONNRESET ? "RST" : "error";
	}
}

/*
 * --end HOW, once the calls are done:
 *   wait         wait for the server to end it; print how (its application
 *                closes when it reads "CLOSE-NOW", see tcpeer.py)
 *   close-notify send close_notify, print how the server answered
 *   keyupdate    send a KeyUpdate and one more call; print what happened
 *   alert        send a fatal alert (internal_error) through kTLS
 */
static void end_connection(int id, struct tp *t)
{
	if (!t->ssl) {
		fail(id, "--end needs --tls");
		return;
	}
	if (!strcmp(o.end_how, "wait")) {
		printf("server ended with %s\n", peer_end(t));
	} else if (!strcmp(o.end_how, "close-notify")) {
		SSL_shutdown(t->ssl);
		printf("server answered %s\n", peer_end(t));
	} else if (!strcmp(o.end_how, "keyupdate")) {
		uint8_t call[RPC_PROBE_LEN];

		SSL_key_update(t->ssl, SSL_KEY_UPDATE_NOT_REQUESTED);
		rpc_build_probe(call, 0x4b55, o.prog, o.vers);
		put_be32(call + 28, AUTH_NONE);
		SSL_write(t->ssl, call, sizeof(call));
		printf("after KeyUpdate: %s\n", peer_end(t));
	} else if (!strcmp(o.end_how, "alert")) {
		const char *why;

		/* TX only: our records so far are the calls. */
		if (ktls_install_one(t->ssl, t->fd, false, TLS_TX, o.count, &why)) {
			fail(id, "kTLS on the client: %s", why);
			return;
		}
		SSL_set_quiet_shutdown(t->ssl, 1);
		ktls_send_alert(t->fd, 2, 80);	/* fatal, internal_error */
		{
			uint8_t b[64];
			struct pollfd pf = { .fd = t->fd, .events = POLLIN };
			int r = poll(&pf, 1, 10000) > 0 ? (int)recv(t->fd, b, sizeof(b), 0) : -2;

			printf("after our fatal alert: %s\n", r == 0 ? "EOF" : r == -2 ? "TIMEOUT" :
			       r < 0 && errno == ECONNRESET ? "RST" : r < 0 ? strerror(errno) : "DATA");
		}
		SSL_free(t->ssl);
		t->ssl = NULL;
	} else {
		fail(id, "unknown --end %s", o.end_how);
	}
}

/* After STARTTLS, misbehave: "garbage" instead of a ClientHello, "stall"
 * inside one, or "rst" in the middle of one. Prints what the server did. */
static int after_probe(int id, struct tp *t)
{
	static const uint8_t hello_start[] = { 0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03 };
	uint8_t b[256];
	struct timespec t0, t1;
	ssize_t r;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (!strcmp(o.after_probe, "garbage")) {
		send(t->fd, "GET / HTTP/1.0\r\n\r\n", 18, MSG_NOSIGNAL);
	} else if (!strcmp(o.after_probe, "stall")) {
		send(t->fd, hello_start, sizeof(hello_start), MSG_NOSIGNAL);
	} else if (!strcmp(o.after_probe, "rst")) {
		struct linger lg = { 1, 0 };

		send(t->fd, hello_start, sizeof(hello_start), MSG_NOSIGNAL);
		setsockopt(t->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		close(t->fd);
		t->fd = -1;
		printf("sent RST\n");
		return 0;
	} else {
		return fail(id, "unknown --after-probe %s", o.after_probe), -1;
	}
	r = recv(t->fd, b, sizeof(b), 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	printf("%s after %.1f s\n", r > 0 ? "DATA" : r == 0 ? "EOF" : errno == ECONNRESET ? "RST" : "TIMEOUT",
	       (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9);
	return 0;
}

static void *conn_main(void *arg)
{
	int id = (int)(intptr_t)arg;
	struct tp *t = calloc(1, sizeof(*t));
	static __thread uint8_t call[1 << 16], rep[1 << 16];
	uint32_t base = 0x10000000u + (uint32_t)id * 0x10000u, len, n;
	static __thread uint8_t seen[4096];
	struct timespec t0, t1;
	bool first_sent = false;

	clock_gettime(CLOCK_MONOTONIC, &t0);

	memset(seen, 0, sizeof(seen));

	t->fd = dial(id);
	if (t->fd < 0)
		goto out;
	n = build_call(call, base);
	if (o.after_probe) {
		if (!probe(id, t))
			after_probe(id, t);
		goto out;
	}
	if (o.tls && (probe(id, t) || start_tls(id, t, call, n, &first_sent)))
		goto out;
	for (uint32_t i = 0; i < o.count; i++) {
		/* With --coalesce, call 0 left with the Finished. */
		n = build_call(call, base + i);
		if (!(i == 0 && first_sent) && tp_write(t, call, n)) {
			fail(id, "send of call %u failed", i);
			goto out;
		}
		if ((o.pipeline && i + 1 < o.count) || o.no_reply)
			continue;
		if (o.gap_ms)
			usleep(o.gap_ms * 1000);
		for (uint32_t j = o.pipeline ? 0 : i; j <= i; j++) {
			uint32_t want = base + j;

			if (tp_record(t, rep, sizeof(rep), &len)) {
				fail(id, "no reply to call %u of %u", j, o.count);
				goto out;
			}
			if (o.any_order && len >= 4) {
				/* Take the reply's own xid, once each. */
				uint32_t x = get_be32(rep) - base;

				if (x >= o.count || x >= 4096 || seen[x]++) {
					fail(id, "reply xid %#x unexpected or repeated", get_be32(rep));
					goto out;
				}
				want = base + x;
			}
			if (check_reply(id, rep, len, want))
				goto out;
			if (i == 0 && j == 0 && lat_ms) {
				clock_gettime(CLOCK_MONOTONIC, &t1);
				lat_ms[id] = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6;
			}
		}
	}
	if (o.hold)
		sleep(o.hold);
	if (o.end_how)
		end_connection(id, t);
out:
	if (t->ssl) {
		SSL_shutdown(t->ssl);
		SSL_free(t->ssl);
	}
	if (t->gs) {
		gnutls_bye(t->gs, GNUTLS_SHUT_WR);
		gnutls_deinit(t->gs);
	}
	if (t->fd >= 0)
		close(t->fd);
	free(t);
	return NULL;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Send raw bytes first; print what the server does about it. */
static int raw_first(void)
{
	uint8_t b[4096];
	size_t n = strlen(o.raw_first) / 2;
	int fd = dial(0);
	ssize_t r;

	if (fd < 0)
		return 1;
	for (size_t i = 0; i < n && i < sizeof(b); i++)
		sscanf(o.raw_first + 2 * i, "%2hhx", &b[i]);
	send(fd, b, n, MSG_NOSIGNAL);
	r = recv(fd, b, sizeof(b), 0);
	if (r > 0) {
		for (ssize_t i = 0; i < r; i++)
			printf("%02x", b[i]);
		printf("\n");
	} else {
		printf("%s\n", r == 0 ? "EOF" : errno == ECONNRESET ? "RST" : errno == EAGAIN ? "TIMEOUT" : strerror(errno));
	}
	close(fd);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "tls", no_argument, NULL, 't' }, { "gnutls", no_argument, NULL, 'g' },
		{ "ca", required_argument, NULL, 'a' }, { "name", required_argument, NULL, 'n' },
		{ "cert", required_argument, NULL, 'c' }, { "key", required_argument, NULL, 'k' },
		{ "prog", required_argument, NULL, 'P' }, { "vers", required_argument, NULL, 'V' },
		{ "call", required_argument, NULL, 'C' }, { "count", required_argument, NULL, 'N' },
		{ "pipeline", no_argument, NULL, 'p' }, { "coalesce", no_argument, NULL, 'F' },
		{ "conns", required_argument, NULL, 'M' }, { "bytes", required_argument, NULL, 'B' },
		{ "raw-first", required_argument, NULL, 'R' }, { "tls12", no_argument, NULL, '2' },
		{ "after-probe", required_argument, NULL, 'A' }, { "marker", required_argument, NULL, 'm' },
		{ "hold", required_argument, NULL, 'H' }, { "any-order", no_argument, NULL, 'O' },
		{ "end", required_argument, NULL, 'E' }, { "gap", required_argument, NULL, 'G' },
		{ "no-reply", no_argument, NULL, 'Z' }, { "timeout", required_argument, NULL, 'T' },
		{ "latency", no_argument, NULL, 'L' }, {}
	};
	pthread_t *th;
	int c;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 't': o.tls = true; break;
		case 'g': o.gnutls = o.tls = true; break;
		case 'a': o.ca = optarg; break;
		case 'n': o.name = optarg; break;
		case 'c': o.cert = optarg; break;
		case 'k': o.key = optarg; break;
		case 'P': o.prog = (uint32_t)strtoul(optarg, NULL, 0); break;
		case 'V': o.vers = (uint32_t)strtoul(optarg, NULL, 0); break;
		case 'N': o.count = (uint32_t)strtoul(optarg, NULL, 0); break;
		case 'p': o.pipeline = true; break;
		case 'F': o.coalesce = o.tls = true; break;
		case 'M': o.conns = (uint32_t)strtoul(optarg, NULL, 0); break;
		case 'B': o.bytes = (uint32_t)strtoul(optarg, NULL, 0); break;
		case 'R': o.raw_first = optarg; break;
		case '2': o.tls12 = o.tls = true; break;
		case 'A': o.after_probe = optarg; break;
		case 'm': o.marker = optarg; break;
		case 'H': o.hold = (uint32_t)strtoul(optarg, NULL, 0); break;
		case 'O': o.any_order = true; break;
		case 'E': o.end_how = optarg; break;
		case 'Z': o.no_reply = true; break;
		case 'T': o.timeout_s = (uint32_t)strtoul(optarg, NULL, 0); break;
		case 'L': o.latency = true; break;
		case 'G': o.gap_ms = (uint32_t)strtoul(optarg, NULL, 0); break;
		case 'C':
			if (!strcmp(optarg, "null")) o.kind = K_NULL;
			else if (!strcmp(optarg, "pmap-dump")) o.kind = K_PMAP_DUMP;
			else if (!strcmp(optarg, "rpcb-getaddr")) o.kind = K_RPCB_GETADDR;
			else if (!strcmp(optarg, "nfs3-null")) o.kind = K_NFS3_NULL;
			else if (!strcmp(optarg, "nfs4-null")) o.kind = K_NFS4_NULL;
			else if (!strcmp(optarg, "nfs4-getattr-root")) o.kind = K_NFS4_GETATTR;
			else return fprintf(stderr, "rpcc: unknown call %s\n", optarg), 2;
			break;
		default:
			return 2;
		}
	}
	signal(SIGPIPE, SIG_IGN);
	if (o.conns > 500) {
		struct rlimit rl;

		/* A socket per connection, and then some. */
		if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur < rl.rlim_max) {
			rl.rlim_cur = rl.rlim_max;
			setrlimit(RLIMIT_NOFILE, &rl);
		}
	}
	if (optind != argc - 2 || o.bytes > 60000 || (o.marker && strlen(o.marker) > 1000))
		return fprintf(stderr, "usage: rpcc [options] HOST PORT (see the source)\n"), 2;
	o.host = argv[optind];
	o.port = argv[optind + 1];
	if (o.raw_first)
		return raw_first();
	if (o.kind == K_NFS3_NULL || o.kind == K_NFS4_NULL || o.kind == K_NFS4_GETATTR) {
		o.prog = 100003;
		o.vers = o.kind == K_NFS3_NULL ? 3 : 4;
	}
	octx = SSL_CTX_new(TLS_client_method());
	SSL_CTX_set_min_proto_version(octx, o.tls12 ? TLS1_2_VERSION : TLS1_3_VERSION);
	if (o.tls12)
		SSL_CTX_set_max_proto_version(octx, TLS1_2_VERSION);
	SSL_CTX_set_alpn_protos(octx, (const unsigned char *)"\x06sunrpc", 7);
	if (o.ca) {
		SSL_CTX_load_verify_locations(octx, o.ca, NULL);
		SSL_CTX_set_verify(octx, SSL_VERIFY_PEER, NULL);
	}
	ktls_ctx_prepare(octx);
	if (o.cert) {
		SSL_CTX_use_certificate_chain_file(octx, o.cert);
		SSL_CTX_use_PrivateKey_file(octx, o.key, SSL_FILETYPE_PEM);
	}
	gnutls_global_init();
	gnutls_certificate_allocate_credentials(&gcred);
	if (o.ca)
		gnutls_certificate_set_x509_trust_file(gcred, o.ca, GNUTLS_X509_FMT_PEM);
	if (o.cert)
		gnutls_certificate_set_x509_key_file(gcred, o.cert, o.key, GNUTLS_X509_FMT_PEM);
	th = calloc(o.conns, sizeof(*th));
	if (o.latency)
		lat_ms = calloc(o.conns, sizeof(*lat_ms));
	for (uint32_t i = 0; i < o.conns; i++)
		pthread_create(&th[i], NULL, conn_main, (void *)(intptr_t)i);
	for (uint32_t i = 0; i < o.conns; i++)
		pthread_join(th[i], NULL);
	if (lat_ms) {
		double v[o.conns];
		uint32_t n = 0;

		for (uint32_t i = 0; i < o.conns; i++)
			if (lat_ms[i] > 0)
				v[n++] = lat_ms[i];
		qsort(v, n, sizeof(double), cmp_double);
		if (n)
			printf("latency ms: p50 %.1f p99 %.1f max %.1f (%u connections)\n", v[n / 2],
			       v[(n * 99) / 100 < n ? (n * 99) / 100 : n - 1], v[n - 1], n);
	}
	if (failures) {
		printf("failed %d of %u connections (%u served)\n", failures, o.conns, o.conns - (uint32_t)failures);
		return 1;
	}
	printf("ok %u %u\n", o.conns, o.conns * o.count);
	return 0;
}
