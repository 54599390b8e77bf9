// SPDX-License-Identifier: GPL-2.0
/*
 * TLS 1.3 with real OpenSSL on both ends of a real TCP connection, then kernel
 * TLS installed by rpctls's own key code (ctl/ktls.c): plain read()/write()
 * must carry data both ways, for every cipher suite kTLS carries, with
 * record sequence numbers other than zero, against a peer still in OpenSSL,
 * and what goes on the wire must be TLS records, not the data.
 *
 * Usage: test_ktls PKI_DIR   (made by selftests/lib/mkcerts.sh)
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <linux/tls.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "ktls.h"
#include "../lib/check.h"

static const char *pki;
static char path_buf[4][512];

static const char *pki_file(int slot, const char *name)
{
	snprintf(path_buf[slot], sizeof(path_buf[slot]), "%s/%s", pki, name);
	return path_buf[slot];
}

static int alpn_select(SSL *s, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
		       unsigned int inlen, void *arg)
{
	static const unsigned char want[] = "\x06sunrpc";

	return SSL_select_next_proto((unsigned char **)out, outlen, want, sizeof(want) - 1, in, inlen) ==
			       OPENSSL_NPN_NEGOTIATED
		       ? SSL_TLSEXT_ERR_OK
		       : SSL_TLSEXT_ERR_ALERT_FATAL;
}

static SSL_CTX *mkctx(bool server, const char *suite)
{
	SSL_CTX *ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());

	SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
	SSL_CTX_set_ciphersuites(ctx, suite);
	if (server) {
		SSL_CTX_use_certificate_chain_file(ctx, pki_file(0, "server.pem"));
		SSL_CTX_use_PrivateKey_file(ctx, pki_file(1, "server.key"), SSL_FILETYPE_PEM);
		SSL_CTX_set_num_tickets(ctx, 0);
		SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
	} else {
		SSL_CTX_load_verify_locations(ctx, pki_file(2, "ca.pem"), NULL);
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
		SSL_CTX_set_alpn_protos(ctx, (const unsigned char *)"\x06sunrpc", 7);
	}
	ktls_ctx_prepare(ctx);
	return ctx;
}

/* A connected pair of TCP sockets on loopback. */
static void tcp_pair(int *a, int *b)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	int l = socket(AF_INET, SOCK_STREAM, 0), one = 1;

	bind(l, (struct sockaddr *)&sa, sizeof(sa));
	listen(l, 1);
	getsockname(l, (struct sockaddr *)&sa, &len);
	*b = socket(AF_INET, SOCK_STREAM, 0);
	connect(*b, (struct sockaddr *)&sa, sizeof(sa));
	*a = accept(l, NULL, NULL);
	close(l);
	setsockopt(*a, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(*b, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

struct end {
	SSL_CTX *ctx;
	SSL *ssl;
	int fd;
	bool server;
	int ok;
};

static void *handshake(void *arg)
{
	struct end *e = arg;

	e->ssl = SSL_new(e->ctx);
	ktls_ssl_prepare(e->ssl);
	SSL_set_fd(e->ssl, e->fd);
	if (!e->server)
		SSL_set_tlsext_host_name(e->ssl, "server.test"), SSL_set1_host(e->ssl, "server.test");
	e->ok = (e->server ? SSL_accept(e->ssl) : SSL_connect(e->ssl)) == 1;
	return NULL;
}

static bool pair_handshake(const char *suite, struct end *s, struct end *c)
{
	pthread_t t;

	memset(s, 0, sizeof(*s));
	memset(c, 0, sizeof(*c));
	s->server = true;
	s->ctx = mkctx(true, suite);
	c->ctx = mkctx(false, suite);
	tcp_pair(&s->fd, &c->fd);
	pthread_create(&t, NULL, handshake, s);
	handshake(c);
	pthread_join(t, NULL);
	return s->ok && c->ok;
}

static void end_free(struct end *e)
{
	SSL_free(e->ssl);
	SSL_CTX_free(e->ctx);
	close(e->fd);
}

static ssize_t read_full(int fd, void *buf, size_t n)
{
	size_t got = 0;

	while (got < n) {
		ssize_t r = read(fd, (char *)buf + got, n - got);

		if (r <= 0)
			return r < 0 ? r : (ssize_t)got;
		got += (size_t)r;
	}
	return (ssize_t)got;
}

static void handshake_openssl(void)
{
	struct end s, c;
	const unsigned char *alpn;
	unsigned int alen;

	CHECK(pair_handshake("TLS_AES_128_GCM_SHA256", &s, &c), "handshake failed: %s",
	      ERR_error_string(ERR_get_error(), NULL));
	CHECK(SSL_version(c.ssl) == TLS1_3_VERSION, "not TLS 1.3");
	SSL_get0_alpn_selected(c.ssl, &alpn, &alen);
	CHECK(alen == 6 && !memcmp(alpn, "sunrpc", 6), "ALPN sunrpc not negotiated");
	CHECK(SSL_get_verify_result(c.ssl) == X509_V_OK, "server certificate not verified");
	end_free(&s);
	end_free(&c);
}

/* Server on kTLS (our keys), client in OpenSSL: both directions. */
static void one_suite(const char *suite)
{
	struct end s, c;
	const char *why;
	char buf[64];

	if (!pair_handshake(suite, &s, &c)) {
		CHECK(0, "%s: handshake failed", suite);
		return;
	}
	CHECK(ktls_install(s.ssl, s.fd, true, 0, 0, &why) == 0, "%s: install: %s: %s", suite, why,
	      strerror(errno));
	CHECK(SSL_write(c.ssl, "hello, kernel", 13) == 13, "%s: client SSL_write", suite);
	CHECK(read_full(s.fd, buf, 13) == 13 && !memcmp(buf, "hello, kernel", 13), "%s: server read()", suite);
	CHECK(write(s.fd, "hello, openssl", 14) == 14, "%s: server write(): %s", suite, strerror(errno));
	CHECK(SSL_read(c.ssl, buf, sizeof(buf)) == 14 && !memcmp(buf, "hello, openssl", 14), "%s: client SSL_read",
	      suite);
	end_free(&s);
	end_free(&c);
}

static void ktls_aes128(void) { one_suite("TLS_AES_128_GCM_SHA256"); }
static void ktls_aes256(void) { one_suite("TLS_AES_256_GCM_SHA384"); }
static void ktls_chacha20(void) { one_suite("TLS_CHACHA20_POLY1305_SHA256"); }

/* Three records each way in OpenSSL first: kTLS must take over at 3/3. */
static void ktls_nonzero_seq(void)
{
	struct end s, c;
	const char *why;
	char buf[16];

	if (!pair_handshake("TLS_AES_256_GCM_SHA384", &s, &c)) {
		CHECK(0, "handshake failed");
		return;
	}
	for (int i = 0; i < 3; i++) {
		SSL_write(c.ssl, "c", 1);
		SSL_read(s.ssl, buf, 1);
		SSL_write(s.ssl, "s", 1);
		SSL_read(c.ssl, buf, 1);
	}
	CHECK(ktls_install(s.ssl, s.fd, true, 3, 3, &why) == 0, "install: %s", why);
	CHECK(SSL_write(c.ssl, "four", 4) == 4 && read_full(s.fd, buf, 4) == 4 && !memcmp(buf, "four", 4),
	      "record 4 client to server");
	CHECK(write(s.fd, "FOUR", 4) == 4 && SSL_read(c.ssl, buf, sizeof(buf)) == 4 && !memcmp(buf, "FOUR", 4),
	      "record 4 server to client");
	end_free(&s);
	end_free(&c);
}

struct pump {
	int fd;
	size_t n;
	unsigned char seed;
	int ok;
};

static void *pump_write(void *arg)
{
	struct pump *p = arg;
	static __thread unsigned char buf[65536];
	size_t done = 0;

	p->ok = 1;
	while (done < p->n) {
		size_t k = p->n - done > sizeof(buf) ? sizeof(buf) : p->n - done;

		for (size_t i = 0; i < k; i++)
			buf[i] = (unsigned char)(p->seed + done + i);
		if (write(p->fd, buf, k) != (ssize_t)k) {
			p->ok = 0;
			break;
		}
		done += k;
	}
	return NULL;
}

static int pump_check(int fd, size_t n, unsigned char seed)
{
	static unsigned char buf[65536];
	size_t done = 0;

	while (done < n) {
		ssize_t r = read(fd, buf, sizeof(buf));

		if (r <= 0)
			return -1;
		for (ssize_t i = 0; i < r; i++)
			if (buf[i] != (unsigned char)(seed + done + (size_t)i))
				return -2;
		done += (size_t)r;
	}
	return 0;
}

/* Both ends on kTLS, 4 MiB each way at once, every byte checked. */
static void ktls_both_ends_bulk(void)
{
	struct end s, c;
	struct pump ps, pc;
	pthread_t ts, tc;
	const char *why;
	const size_t n = 4u << 20;

	if (!pair_handshake("TLS_AES_128_GCM_SHA256", &s, &c)) {
		CHECK(0, "handshake failed");
		return;
	}
	CHECK(ktls_install(s.ssl, s.fd, true, 0, 0, &why) == 0, "server install: %s", why);
	CHECK(ktls_install(c.ssl, c.fd, false, 0, 0, &why) == 0, "client install: %s", why);
	ps = (struct pump){ .fd = s.fd, .n = n, .seed = 7 };
	pc = (struct pump){ .fd = c.fd, .n = n, .seed = 99 };
	pthread_create(&ts, NULL, pump_write, &ps);
	pthread_create(&tc, NULL, pump_write, &pc);
	CHECK(pump_check(c.fd, n, 7) == 0, "client read back differs");
	CHECK(pump_check(s.fd, n, 99) == 0, "server read back differs");
	pthread_join(ts, NULL);
	pthread_join(tc, NULL);
	CHECK(ps.ok && pc.ok, "a write failed");
	end_free(&s);
	end_free(&c);
}

/* What kTLS sends is a TLS record, and not the plaintext. */
static void ktls_wire_is_ciphertext(void)
{
	struct end s, c;
	const char *why;
	unsigned char raw[256];
	static const char secret[] = "THIS-MUST-NOT-BE-SEEN-ON-THE-WIRE";
	ssize_t r;

	if (!pair_handshake("TLS_CHACHA20_POLY1305_SHA256", &s, &c)) {
		CHECK(0, "handshake failed");
		return;
	}
	CHECK(ktls_install(s.ssl, s.fd, true, 0, 0, &why) == 0, "install: %s", why);
	CHECK(write(s.fd, secret, sizeof(secret)) == (ssize_t)sizeof(secret), "write");
	r = read_full(c.fd, raw, 5 + sizeof(secret) + 1 + 16);	/* header, data, type, tag */
	CHECK(r == (ssize_t)(5 + sizeof(secret) + 17), "record of %zd bytes", r);
	CHECK(raw[0] == 23 && raw[1] == 3 && raw[2] == 3, "not an application_data record: %02x %02x %02x", raw[0],
	      raw[1], raw[2]);
	CHECK(!memmem(raw, (size_t)(r > 0 ? r : 0), "MUST-NOT", 8), "plaintext on the wire");
	end_free(&s);
	end_free(&c);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s PKI_DIR\n", argv[0]);
		return 2;
	}
	pki = argv[1];
	RUN(handshake_openssl);
	RUN(ktls_aes128);
	RUN(ktls_aes256);
	RUN(ktls_chacha20);
	RUN(ktls_nonzero_seq);
	RUN(ktls_both_ends_bulk);
	RUN(ktls_wire_is_ciphertext);
	return check_exit();
}
