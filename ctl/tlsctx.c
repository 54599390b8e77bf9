// SPDX-License-Identifier: GPL-2.0
/* OpenSSL contexts from the configuration, and the socket BIO of handshakes. */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "daemon.h"
#include "ktls.h"

const char *tls_err_string(void)
{
	static char buf[256];
	unsigned long e = ERR_peek_last_error();

	if (!e)
		return "no OpenSSL error";
	ERR_error_string_n(e, buf, sizeof(buf));
	ERR_clear_error();
	return buf;
}

/* ALPN: answer exactly "sunrpc" when offered (RFC 9289 section 5.2). A client
 * that offers protocols but not sunrpc gets no_application_protocol. */
static int alpn_select(SSL *s, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
		       unsigned int inlen, void *arg)
{
	static const unsigned char want[] = "\x06" RPCTLS_ALPN;

	if (SSL_select_next_proto((unsigned char **)out, outlen, want, sizeof(want) - 1, in, inlen) ==
	    OPENSSL_NPN_NEGOTIATED)
		return SSL_TLSEXT_ERR_OK;
	return SSL_TLSEXT_ERR_ALERT_FATAL;
}

static int conf_err(const struct conf *c, const struct conf_path *p, const char *what)
{
	fprintf(stderr, "%s:%d: %s %s: %s\n", c->path, p->line, what, p->path, tls_err_string());
	return -1;
}

static int load_ca(const struct conf *c, SSL_CTX *ctx, const struct conf_path *ca, const struct conf_path *crl)
{
	struct stat st;
	int ok;

	if (!ca->path[0])
		return 0;
	if (stat(ca->path, &st) == 0 && S_ISDIR(st.st_mode))
		ok = SSL_CTX_load_verify_locations(ctx, NULL, ca->path);
	else
		ok = SSL_CTX_load_verify_locations(ctx, ca->path, NULL);
	if (ok != 1)
		return conf_err(c, ca, "ca");
	if (crl->path[0]) {
		X509_STORE *store = SSL_CTX_get_cert_store(ctx);

		if (X509_load_crl_file(X509_STORE_add_lookup(store, X509_LOOKUP_file()), crl->path,
				       X509_FILETYPE_PEM) <= 0)
			return conf_err(c, crl, "crl");
		X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL);
	}
	return 0;
}

/* TLS 1.3 only (RFC 9289 section 5.1), kTLS-capable suites only. */
static SSL_CTX *ctx_new(const struct conf *c, const SSL_METHOD *m)
{
	SSL_CTX *ctx = SSL_CTX_new(m);

	if (!ctx) {
		fprintf(stderr, "rpctls: error: cannot create a TLS context: %s\n", tls_err_string());
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
	/* No resumption either way; the traffic secrets are kept for kTLS. */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	if (SSL_CTX_set_ciphersuites(ctx, c->ciphersuites) != 1) {
		fprintf(stderr, "%s: cipher_suites: %s\n", c->path, tls_err_string());
		SSL_CTX_free(ctx);
		return NULL;
	}
	if (ktls_ctx_prepare(ctx)) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

/* Our certificate chain and its key. */
static int load_identity(const struct conf *c, SSL_CTX *ctx, const struct conf_path *cert,
			 const struct conf_path *key)
{
	if (SSL_CTX_use_certificate_chain_file(ctx, cert->path) != 1)
		return conf_err(c, cert, "certificate");
	if (SSL_CTX_use_PrivateKey_file(ctx, key->path, SSL_FILETYPE_PEM) != 1)
		return conf_err(c, key, "key");
	if (SSL_CTX_check_private_key(ctx) != 1)
		return conf_err(c, key, "key does not match the certificate");
	return 0;
}

SSL_CTX *tls_server_ctx(const struct conf *c)
{
	SSL_CTX *ctx;

	if (!c->srv_cert.path[0])
		return NULL;
	ctx = ctx_new(c, TLS_server_method());
	if (!ctx)
		return NULL;
	if (load_identity(c, ctx, &c->srv_cert, &c->srv_key))
		goto fail;
	if (load_ca(c, ctx, &c->srv_ca, &c->srv_crl))
		goto fail;
	switch (c->client_cert) {
	case CC_REQUEST:
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
		break;
	case CC_REQUIRE:
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
		break;
	default:
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	}
	/* No session tickets: a client's kTLS must never meet one. */
	SSL_CTX_set_num_tickets(ctx, 0);
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
	SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
	/* Exactly the bytes of each record, so that what follows the client's
	 * Finished stays in the socket for kTLS. */
	SSL_CTX_set_read_ahead(ctx, 0);
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

SSL_CTX *tls_client_ctx(const struct conf *c)
{
	SSL_CTX *ctx;

	if (!c->cli_ca.path[0])
		return NULL;
	ctx = ctx_new(c, TLS_client_method());
	if (!ctx)
		return NULL;
	if (load_ca(c, ctx, &c->cli_ca, &c->cli_crl))
		goto fail;
	if (c->cli_cert.path[0] && load_identity(c, ctx, &c->cli_cert, &c->cli_key))
		goto fail;
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	/* ALPN "sunrpc" always offered (RFC 9289 section 5.2). */
	SSL_CTX_set_alpn_protos(ctx, (const unsigned char *)"\x06" RPCTLS_ALPN, RPCTLS_ALPN_LEN + 1);
	/* Tickets a server sends are read and dropped (no session cache). */
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

uint32_t tls_peer_info(SSL *ssl, char *subject, size_t len)
{
	X509 *cert = SSL_get1_peer_certificate(ssl);
	const unsigned char *alpn;
	unsigned int alen = 0;
	uint32_t f = CONN_F_HANDSHAKE;

	subject[0] = 0;
	SSL_get0_alpn_selected(ssl, &alpn, &alen);
	if (alen == RPCTLS_ALPN_LEN && !memcmp(alpn, RPCTLS_ALPN, RPCTLS_ALPN_LEN))
		f |= CONN_F_ALPN;
	if (!cert)
		return f;
	f |= CONN_F_GOTCERT;
	if (X509_check_issued(cert, cert) == X509_V_OK)
		f |= CONN_F_SELFSIGNED;
	if (SSL_get_verify_result(ssl) == X509_V_OK && SSL_get_verify_mode(ssl) != SSL_VERIFY_NONE)
		f |= CONN_F_VERIFIED;
	X509_NAME_oneline(X509_get_subject_name(cert), subject, (int)len);
	X509_free(cert);
	return f;
}

/* ---- a BIO on the application's socket ----
 * Never read()/write(): those follow the file's O_NONBLOCK, which is the
 * application's; recv()/send() with MSG_DONTWAIT never block. */

static int fdb_write(BIO *b, const char *buf, int len)
{
	ssize_t r = send(BIO_get_fd(b, NULL), buf, (size_t)len, MSG_DONTWAIT | MSG_NOSIGNAL);

	BIO_clear_retry_flags(b);
	if (r < 0 && (errno == EAGAIN || errno == EINTR))
		BIO_set_retry_write(b);
	return (int)r;
}

static int fdb_read(BIO *b, char *buf, int len)
{
	ssize_t r = recv(BIO_get_fd(b, NULL), buf, (size_t)len, MSG_DONTWAIT);

	BIO_clear_retry_flags(b);
	if (r < 0 && (errno == EAGAIN || errno == EINTR))
		BIO_set_retry_read(b);
	return (int)r;
}

static long fdb_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	switch (cmd) {
	case BIO_C_SET_FD:
		BIO_set_data(b, (void *)(intptr_t)*(int *)ptr);
		BIO_set_init(b, 1);
		return 1;
	case BIO_C_GET_FD:
		if (ptr)
			*(int *)ptr = (int)(intptr_t)BIO_get_data(b);
		return (long)(intptr_t)BIO_get_data(b);
	case BIO_CTRL_FLUSH:
		return 1;
	default:
		return 0;
	}
}

static BIO_METHOD *fdb_method;

BIO *fd_bio_new(int fd)
{
	BIO *b;

	if (!fdb_method) {
		fdb_method = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK | BIO_TYPE_DESCRIPTOR,
					  "rpctls socket");
		BIO_meth_set_write(fdb_method, fdb_write);
		BIO_meth_set_read(fdb_method, fdb_read);
		BIO_meth_set_ctrl(fdb_method, fdb_ctrl);
	}
	b = BIO_new(fdb_method);
	if (b)
		BIO_set_fd(b, fd, BIO_NOCLOSE);
	return b;
}
