// SPDX-License-Identifier: GPL-2.0
/*
 * rpcsrv: an RFC 9289 server for the tests, which can misbehave on purpose.
 * It answers the AUTH_TLS probe, runs TLS 1.3 (OpenSSL, or GnuTLS), then
 * answers every RPC call as a successful NULL call (same xid), in order.
 *
 *   rpcsrv [options] PORT
 *     --cert F --key F      server certificate (required for TLS)
 *     --gnutls              GnuTLS instead of OpenSSL (it sends session tickets)
 *     --tickets N           OpenSSL: session tickets after the handshake (default 2)
 *     --mode MODE           normal | no-starttls (AUTH_ERROR, then plain RPC) |
 *                           empty-verifier (accepted, no STARTTLS, then plain) |
 *                           bad-xid | truncated-reply | oversized-reply |
 *                           close-mid-handshake | stall-mid-handshake
 *     --log FILE            append every RPC call received, in hex, one per line
 *     --ready FILE          write our pid there once listening
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "rpctls/parse.h"

static const char *mode = "normal", *cert, *key, *logpath;
static bool use_gnutls;
static int tickets = 2;
static SSL_CTX *octx;
static gnutls_certificate_credentials_t gcred;
static pthread_mutex_t logmu = PTHREAD_MUTEX_INITIALIZER;

struct conn {
	int fd;
	SSL *ssl;
	gnutls_session_t gs;
	uint8_t buf[1 << 16];
	uint32_t have;
};

static int c_read(struct conn *c, void *b, size_t n)
{
	if (c->ssl)
		return SSL_read(c->ssl, b, (int)n);
	if (c->gs) {
		ssize_t r;

		do
			r = gnutls_record_recv(c->gs, b, n);
		while (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED);
		return (int)r;
	}
	return (int)recv(c->fd, b, n, 0);
}

static int c_write(struct conn *c, const void *b, size_t n)
{
	if (c->ssl)
		return SSL_write(c->ssl, b, (int)n) == (int)n ? 0 : -1;
	if (c->gs)
		return gnutls_record_send(c->gs, b, n) == (ssize_t)n ? 0 : -1;
	return send(c->fd, b, n, MSG_NOSIGNAL) == (ssize_t)n ? 0 : -1;
}

/* Next record, marks and all, into out; returns its total length or -1. */
static int next_record(struct conn *c, uint8_t *out, uint32_t cap)
{
	for (;;) {
		struct rm_parser rm;
		uint32_t used = 0, rec = 0;

		rm_init(&rm, cap);
		if (c->have && rm_feed(&rm, c->buf, c->have, &used, &rec) == RM_RECORD) {
			memcpy(out, c->buf, used);
			memmove(c->buf, c->buf + used, c->have - used);
			c->have -= used;
			return (int)used;
		}
		{
			int r = c_read(c, c->buf + c->have, sizeof(c->buf) - c->have);

			if (r <= 0)
				return -1;
			c->have += (uint32_t)r;
		}
	}
}

static void log_call(const uint8_t *b, int n)
{
	FILE *f;

	if (!logpath)
		return;
	pthread_mutex_lock(&logmu);
	f = fopen(logpath, "a");
	if (f) {
		for (int i = 0; i < n; i++)
			fprintf(f, "%02x", b[i]);
		fputc('\n', f);
		fclose(f);
	}
	pthread_mutex_unlock(&logmu);
}

/* Answer every call with a successful, empty NULL reply. */
static void serve_calls(struct conn *c)
{
	static __thread uint8_t rec[1 << 16];
	int n;

	while ((n = next_record(c, rec, sizeof(rec))) > 0) {
		uint8_t rep[RPC_PROBE_REPLY_MAX];
		uint32_t len;

		log_call(rec, n);
		if (n < 16)
			break;
		len = rpc_build_probe_reply(rep, get_be32(rec + 4), RPC_ANSWER_NO_TLS);
		if (c_write(c, rep, len))
			break;
	}
	/* How the client ended: "END close_notify" or "END eof" in the log. */
	if (logpath) {
		bool notify = c->ssl ? (SSL_get_shutdown(c->ssl) & SSL_RECEIVED_SHUTDOWN) != 0 : false;
		char line[64];

		snprintf(line, sizeof(line), "END %s", notify ? "close_notify" : "eof");
		pthread_mutex_lock(&logmu);
		{
			FILE *f = fopen(logpath, "a");

			if (f) {
				fprintf(f, "%s\n", line);
				fclose(f);
			}
		}
		pthread_mutex_unlock(&logmu);
	}
}

static bool tls_accept(struct conn *c)
{
	if (use_gnutls) {
		int r;

		gnutls_init(&c->gs, GNUTLS_SERVER);
		gnutls_priority_set_direct(c->gs, "NORMAL:-VERS-ALL:+VERS-TLS1.3", NULL);
		gnutls_credentials_set(c->gs, GNUTLS_CRD_CERTIFICATE, gcred);
		{
			gnutls_datum_t alpn = { (unsigned char *)"sunrpc", 6 };

			gnutls_alpn_set_protocols(c->gs, &alpn, 1, GNUTLS_ALPN_SERVER_PRECEDENCE);
		}
		gnutls_transport_set_int(c->gs, c->fd);
		do
			r = gnutls_handshake(c->gs);
		while (r < 0 && !gnutls_error_is_fatal(r));
		return r == 0;
	}
	c->ssl = SSL_new(octx);
	SSL_set_fd(c->ssl, c->fd);
	return SSL_accept(c->ssl) == 1;
}

static void *conn_main(void *arg)
{
	struct conn *c = arg;
	uint8_t probe[512], rep[RPC_PROBE_REPLY_MAX + 8];
	struct rpc_call_hdr h;
	uint32_t xid, len;
	int n = next_record(c, probe, sizeof(probe));

	if (n <= 0 || rpc_parse_call(probe + 4, (uint32_t)n - 4, &h) != RPC_PARSE_OK)
		goto out;
	xid = h.xid;
	if (h.cred_flavor != AUTH_TLS) {	/* a plain client */
		log_call(probe, n);
		len = rpc_build_probe_reply(rep, xid, RPC_ANSWER_NO_TLS);
		c_write(c, rep, len);
		serve_calls(c);
		goto out;
	}
	if (!strcmp(mode, "no-starttls") || !strcmp(mode, "empty-verifier")) {
		len = rpc_build_probe_reply(rep, xid, mode[0] == 'n' ? RPC_ANSWER_REJECTEDCRED : RPC_ANSWER_NO_TLS);
		c_write(c, rep, len);
		serve_calls(c);
		goto out;
	}
	len = rpc_build_probe_reply(rep, !strcmp(mode, "bad-xid") ? xid ^ 0x5555 : xid, RPC_ANSWER_STARTTLS);
	if (!strcmp(mode, "truncated-reply")) {
		send(c->fd, rep, len / 2, MSG_NOSIGNAL);
		sleep(2);
		goto out;
	}
	if (!strcmp(mode, "oversized-reply"))
		put_be32(rep, RPC_MARK_LAST | 0x7ffffff0);
	send(c->fd, rep, len, MSG_NOSIGNAL);
	if (!strcmp(mode, "close-mid-handshake") || !strcmp(mode, "stall-mid-handshake")) {
		uint8_t hello[2048];

		recv(c->fd, hello, sizeof(hello), 0);	/* the ClientHello */
		if (mode[0] == 's')
			sleep(60);
		goto out;
	}
	if (strcmp(mode, "normal") || !tls_accept(c))
		goto out;
	serve_calls(c);
out:
	if (c->ssl) {
		SSL_shutdown(c->ssl);
		SSL_free(c->ssl);
	}
	if (c->gs) {
		gnutls_bye(c->gs, GNUTLS_SHUT_WR);
		gnutls_deinit(c->gs);
	}
	close(c->fd);
	free(c);
	return NULL;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "cert", required_argument, NULL, 'c' }, { "key", required_argument, NULL, 'k' },
		{ "gnutls", no_argument, NULL, 'g' }, { "tickets", required_argument, NULL, 't' },
		{ "mode", required_argument, NULL, 'm' }, { "log", required_argument, NULL, 'l' },
		{ "ready", required_argument, NULL, 'r' }, {}
	};
	struct sockaddr_in6 sa = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_ANY_INIT };
	const char *ready = NULL;
	int l, one = 1, zero = 0, o;

	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 'c': cert = optarg; break;
		case 'k': key = optarg; break;
		case 'g': use_gnutls = true; break;
		case 't': tickets = atoi(optarg); break;
		case 'm': mode = optarg; break;
		case 'l': logpath = optarg; break;
		case 'r': ready = optarg; break;
		default: return 2;
		}
	}
	if (optind != argc - 1)
		return fprintf(stderr, "usage: rpcsrv [options] PORT\n"), 2;
	signal(SIGPIPE, SIG_IGN);
	if (cert) {
		octx = SSL_CTX_new(TLS_server_method());
		SSL_CTX_set_min_proto_version(octx, TLS1_3_VERSION);
		SSL_CTX_use_certificate_chain_file(octx, cert);
		SSL_CTX_use_PrivateKey_file(octx, key, SSL_FILETYPE_PEM);
		SSL_CTX_set_num_tickets(octx, (size_t)tickets);
		gnutls_global_init();
		gnutls_certificate_allocate_credentials(&gcred);
		gnutls_certificate_set_x509_key_file(gcred, cert, key, GNUTLS_X509_FMT_PEM);
	}
	sa.sin6_port = htons((uint16_t)atoi(argv[optind]));
	l = socket(AF_INET6, SOCK_STREAM, 0);
	setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	setsockopt(l, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
	if (bind(l, (struct sockaddr *)&sa, sizeof(sa)) || listen(l, 128))
		return perror("rpcsrv: bind/listen"), 1;
	if (ready) {
		FILE *f = fopen(ready, "w");

		if (f) {
			fprintf(f, "%d\n", getpid());
			fclose(f);
		}
	}
	for (;;) {
		struct conn *c = calloc(1, sizeof(*c));
		pthread_t t;

		c->fd = accept(l, NULL, NULL);
		if (c->fd < 0) {
			free(c);
			continue;
		}
		pthread_create(&t, NULL, conn_main, c);
		pthread_detach(t);
	}
}
