// SPDX-License-Identifier: GPL-2.0
/*
 * Kernel TLS keys from an OpenSSL TLS 1.3 session.
 *
 * OpenSSL 3.0 turns kTLS on for sending only with TLS 1.3, and not at all on
 * a socket it did not create the BIO for in the way it wants; rpctls installs
 * both directions itself: the traffic secrets come from the key-log callback
 * (CLIENT_/SERVER_TRAFFIC_SECRET_0), key and IV from HKDF-Expand-Label
 * (RFC 8446 section 7.3), and the record sequence numbers from the caller,
 * who knows how many records went each way under those keys. One code path
 * for TX and RX. The secrets never leave this file in any log, and are wiped
 * once installed.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>

#include <linux/tls.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/ssl.h>

#include "ktls.h"

#ifndef SOL_TLS
#define SOL_TLS 282
#endif
#ifndef TCP_ULP
#define TCP_ULP 31
#endif

static int secrets_idx = -1;

struct tls_secrets {
	uint8_t client[EVP_MAX_MD_SIZE];
	uint8_t server[EVP_MAX_MD_SIZE];
	size_t client_len, server_len;
};

static void secrets_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
	if (ptr) {
		OPENSSL_cleanse(ptr, sizeof(struct tls_secrets));
		OPENSSL_free(ptr);
	}
}

static int unhex(const char *s, size_t n, uint8_t *out, size_t max)
{
	size_t i;

	if (n % 2 || n / 2 > max)
		return -1;
	for (i = 0; i < n / 2; i++) {
		int hi = OPENSSL_hexchar2int((unsigned char)s[2 * i]);
		int lo = OPENSSL_hexchar2int((unsigned char)s[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -1;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return (int)i;
}

/* "LABEL <client_random> <secret>": keep the two application secrets. */
static void keylog_cb(const SSL *ssl, const char *line)
{
	struct tls_secrets *s = SSL_get_ex_data(ssl, secrets_idx);
	const char *sp1, *sp2;
	uint8_t *dst;
	size_t *len;
	int n;

	if (!s)
		return;
	if (!strncmp(line, "CLIENT_TRAFFIC_SECRET_0 ", 24)) {
		dst = s->client;
		len = &s->client_len;
	} else if (!strncmp(line, "SERVER_TRAFFIC_SECRET_0 ", 24)) {
		dst = s->server;
		len = &s->server_len;
	} else {
		return;
	}
	sp1 = strchr(line, ' ');
	sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
	if (!sp2)
		return;
	n = unhex(sp2 + 1, strlen(sp2 + 1), dst, EVP_MAX_MD_SIZE);
	*len = n > 0 ? (size_t)n : 0;
}

int ktls_ctx_prepare(SSL_CTX *ctx)
{
	if (secrets_idx < 0) {
		secrets_idx = SSL_get_ex_new_index(0, "rpctls secrets", NULL, NULL, secrets_free);
		if (secrets_idx < 0)
			return -1;
	}
	SSL_CTX_set_keylog_callback(ctx, keylog_cb);
	return 0;
}

int ktls_ssl_prepare(SSL *ssl)
{
	struct tls_secrets *s = OPENSSL_zalloc(sizeof(*s));

	if (!s || !SSL_set_ex_data(ssl, secrets_idx, s)) {
		OPENSSL_free(s);
		return -1;
	}
	return 0;
}

/* HKDF-Expand-Label(secret, label, "", len) with the suite's hash. */
static int expand_label(const EVP_MD *md, const uint8_t *secret, size_t slen, const char *label,
			uint8_t *out, size_t olen)
{
	uint8_t info[2 + 1 + 255 + 1];
	size_t ll = 6 + strlen(label), n = 0;
	EVP_KDF *kdf;
	EVP_KDF_CTX *kctx;
	OSSL_PARAM params[5], *p = params;
	int mode = EVP_KDF_HKDF_MODE_EXPAND_ONLY, ok;

	info[n++] = (uint8_t)(olen >> 8);
	info[n++] = (uint8_t)olen;
	info[n++] = (uint8_t)ll;
	memcpy(info + n, "tls13 ", 6);
	memcpy(info + n + 6, label, strlen(label));
	n += ll;
	info[n++] = 0;	/* empty context */

	kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
	if (!kdf)
		return -1;
	kctx = EVP_KDF_CTX_new(kdf);
	EVP_KDF_free(kdf);
	if (!kctx)
		return -1;
	*p++ = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)EVP_MD_get0_name(md), 0);
	*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)secret, slen);
	*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info, n);
	*p++ = OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode);
	*p = OSSL_PARAM_construct_end();
	ok = EVP_KDF_derive(kctx, out, olen, params);
	EVP_KDF_CTX_free(kctx);
	return ok == 1 ? 0 : -1;
}

union ktls_info {
	struct tls_crypto_info info;
	struct tls12_crypto_info_aes_gcm_128 gcm128;
	struct tls12_crypto_info_aes_gcm_256 gcm256;
	struct tls12_crypto_info_chacha20_poly1305 chacha;
};

/* Fill @ci for one direction; returns its size, or -1. */
static int build_info(uint16_t suite, const uint8_t *secret, size_t slen, uint64_t seq, union ktls_info *ci)
{
	uint8_t key[32], iv[12], be_seq[8];
	const EVP_MD *md = suite == TLS13_AES_256_GCM_SHA384 ? EVP_sha384() : EVP_sha256();
	size_t klen;
	int size;

	switch (suite) {
	case TLS13_AES_128_GCM_SHA256:
		klen = 16;
		break;
	case TLS13_AES_256_GCM_SHA384:
	case TLS13_CHACHA20_POLY1305_SHA256:
		klen = 32;
		break;
	default:
		return -1;
	}
	if (slen != (size_t)EVP_MD_get_size(md) || expand_label(md, secret, slen, "key", key, klen) ||
	    expand_label(md, secret, slen, "iv", iv, sizeof(iv)))
		return -1;
	for (int i = 0; i < 8; i++)
		be_seq[i] = (uint8_t)(seq >> (56 - 8 * i));

	memset(ci, 0, sizeof(*ci));
	ci->info.version = TLS_1_3_VERSION;
	switch (suite) {
	case TLS13_AES_128_GCM_SHA256:
		ci->info.cipher_type = TLS_CIPHER_AES_GCM_128;
		memcpy(ci->gcm128.key, key, 16);
		memcpy(ci->gcm128.salt, iv, 4);
		memcpy(ci->gcm128.iv, iv + 4, 8);
		memcpy(ci->gcm128.rec_seq, be_seq, 8);
		size = sizeof(ci->gcm128);
		break;
	case TLS13_AES_256_GCM_SHA384:
		ci->info.cipher_type = TLS_CIPHER_AES_GCM_256;
		memcpy(ci->gcm256.key, key, 32);
		memcpy(ci->gcm256.salt, iv, 4);
		memcpy(ci->gcm256.iv, iv + 4, 8);
		memcpy(ci->gcm256.rec_seq, be_seq, 8);
		size = sizeof(ci->gcm256);
		break;
	default:
		ci->info.cipher_type = TLS_CIPHER_CHACHA20_POLY1305;
		memcpy(ci->chacha.key, key, 32);
		memcpy(ci->chacha.iv, iv, 12);
		memcpy(ci->chacha.rec_seq, be_seq, 8);
		size = sizeof(ci->chacha);
		break;
	}
	OPENSSL_cleanse(key, sizeof(key));
	OPENSSL_cleanse(iv, sizeof(iv));
	return size;
}

int ktls_set_ulp(int fd)
{
	if (setsockopt(fd, IPPROTO_TCP, TCP_ULP, "tls", sizeof("tls")) && errno != EEXIST)
		return -1;
	return 0;
}

int ktls_install_one(SSL *ssl, int fd, bool is_server, int dir, uint64_t seq, const char **why)
{
	struct tls_secrets *s = SSL_get_ex_data(ssl, secrets_idx);
	const SSL_CIPHER *c = SSL_get_current_cipher(ssl);
	uint16_t suite = c ? (uint16_t)SSL_CIPHER_get_protocol_id(c) : 0;
	bool mine = (dir == TLS_TX) == is_server;	/* the server's secret? */
	union ktls_info ci;
	int size, ret = -1;

	*why = NULL;
	if (!s || !s->client_len || !s->server_len) {
		*why = "no traffic secrets from the handshake";
		return -1;
	}
	if (SSL_version(ssl) != TLS1_3_VERSION) {
		*why = "not TLS 1.3";
		return -1;
	}
	if (ktls_set_ulp(fd)) {
		*why = errno == ENOENT ? "the tls kernel module is not available" : "TCP_ULP tls refused";
		return -1;
	}
	size = build_info(suite, mine ? s->server : s->client, mine ? s->server_len : s->client_len, seq, &ci);
	if (size < 0)
		*why = "a cipher suite kernel TLS cannot carry";
	else if (setsockopt(fd, SOL_TLS, dir, &ci, (socklen_t)size))
		*why = dir == TLS_TX ? "TLS_TX refused" : "TLS_RX refused";
	else
		ret = 0;
	OPENSSL_cleanse(&ci, sizeof(ci));
	return ret;
}

void ktls_forget(SSL *ssl)
{
	struct tls_secrets *s = SSL_get_ex_data(ssl, secrets_idx);

	if (s)
		OPENSSL_cleanse(s, sizeof(*s));
}

int ktls_install(SSL *ssl, int fd, bool is_server, uint64_t tx_seq, uint64_t rx_seq, const char **why)
{
	int ret = ktls_install_one(ssl, fd, is_server, TLS_TX, tx_seq, why);

	if (!ret)
		ret = ktls_install_one(ssl, fd, is_server, TLS_RX, rx_seq, why);
	ktls_forget(ssl);
	return ret;
}

int ktls_send_alert(int fd, uint8_t level, uint8_t desc)
{
	uint8_t data[2] = { level, desc };
	char cbuf[CMSG_SPACE(sizeof(unsigned char))] = { 0 };
	struct iovec iov = { data, sizeof(data) };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *cm = CMSG_FIRSTHDR(&m);

	cm->cmsg_level = SOL_TLS;
	cm->cmsg_type = TLS_SET_RECORD_TYPE;
	cm->cmsg_len = CMSG_LEN(sizeof(unsigned char));
	*CMSG_DATA(cm) = 21;	/* alert */
	return sendmsg(fd, &m, MSG_DONTWAIT | MSG_NOSIGNAL) == (ssize_t)sizeof(data) ? 0 : -1;
}

int ktls_next_record(int fd, uint8_t *type, uint8_t *buf, size_t len, bool peek)
{
	char cbuf[CMSG_SPACE(sizeof(unsigned char))] = { 0 };
	struct iovec iov = { buf, len };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *cm;
	ssize_t n = recvmsg(fd, &m, MSG_DONTWAIT | (peek ? MSG_PEEK : 0));

	if (n < 0)
		return -1;
	*type = 23;
	for (cm = CMSG_FIRSTHDR(&m); cm; cm = CMSG_NXTHDR(&m, cm))
		if (cm->cmsg_level == SOL_TLS && cm->cmsg_type == TLS_GET_RECORD_TYPE)
			*type = *CMSG_DATA(cm);
	return (int)n;
}
