/* SPDX-License-Identifier: GPL-2.0 */
/* Kernel TLS keys from an OpenSSL TLS 1.3 session (ktls.c). */
#ifndef RPCTLS_KTLS_H
#define RPCTLS_KTLS_H

#include <stdbool.h>
#include <stdint.h>
#include <openssl/ssl.h>

#define TLS13_AES_128_GCM_SHA256	0x1301
#define TLS13_AES_256_GCM_SHA384	0x1302
#define TLS13_CHACHA20_POLY1305_SHA256	0x1303

/* Make a context capture the traffic secrets of its sessions. */
int ktls_ctx_prepare(SSL_CTX *ctx);
/* Give a session room for its secrets; before the handshake. */
int ktls_ssl_prepare(SSL *ssl);
/* TCP_ULP "tls" on @fd (harmless when already set). */
int ktls_set_ulp(int fd);
/*
 * Install one direction (TLS_TX or TLS_RX) of the session's keys on @fd,
 * whose next record in that direction has sequence number @seq. On error,
 * *why says what failed (no secret in it) and errno is the kernel's.
 */
int ktls_install_one(SSL *ssl, int fd, bool is_server, int dir, uint64_t seq, const char **why);
/* Wipe the session's secrets. */
void ktls_forget(SSL *ssl);
/* Both directions, then wipe. */
int ktls_install(SSL *ssl, int fd, bool is_server, uint64_t tx_seq, uint64_t rx_seq, const char **why);

/* Send a TLS alert record through kTLS TX (close_notify: 1, 0). */
int ktls_send_alert(int fd, uint8_t level, uint8_t desc);
/* Read (or peek at) the next record of a kTLS RX socket, without blocking:
 * its content type in *type, its bytes in @buf. Returns the length, or -1. */
int ktls_next_record(int fd, uint8_t *type, uint8_t *buf, size_t len, bool peek);

#endif
