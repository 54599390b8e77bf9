/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * Wire constants of ONC RPC (RFC 5531), RPC-with-TLS (RFC 9289) and TLS 1.3
 * (RFC 8446). Shared by the BPF programs and userland; no includes, so that it
 * compiles against vmlinux.h as well as the C library.
 */
#ifndef RPCTLS_WIRE_H
#define RPCTLS_WIRE_H

/* RFC 5531 section 11: record marking. */
#define RPC_MARK_LEN		4u
#define RPC_MARK_LAST		0x80000000u
#define RPC_MARK_LEN_MASK	0x7fffffffu

/* RFC 5531 section 9. */
#define RPC_CALL		0u
#define RPC_REPLY		1u
#define RPC_VERSION		2u
#define RPC_MSG_ACCEPTED	0u
#define RPC_MSG_DENIED		1u
#define RPC_SUCCESS		0u	/* accept_stat */
#define RPC_AUTH_ERROR		1u	/* reject_stat */
#define RPC_NULLPROC		0u

/* Authentication flavors and auth_stat. */
#define AUTH_NONE		0u
#define AUTH_SYS		1u
#define AUTH_TLS		7u	/* RFC 9289 section 4.1 */
#define AUTH_BADCRED		1u
#define AUTH_REJECTEDCRED	2u
#define RPC_MAX_AUTH_BYTES	400u	/* RFC 5531: opaque_auth body limit */

/* The AUTH_TLS probe: a NULL call with an empty AUTH_TLS credential and an
 * empty AUTH_NONE verifier. Body after the record mark:
 * xid, mtype, rpcvers, prog, vers, proc, cred{flavor,len}, verf{flavor,len}. */
#define RPC_CALL_HDR_LEN	40u
#define RPC_PROBE_LEN		(RPC_MARK_LEN + RPC_CALL_HDR_LEN)
/* Bytes needed from the start of a connection to tell a probe from a plain
 * call: the record mark and the call header up to the credential flavor. */
#define RPC_CLASSIFY_LEN	(RPC_MARK_LEN + 28u)

/* The STARTTLS verifier body (RFC 9289 section 4.1), 8 bytes, no NUL. */
#define RPC_STARTTLS		"STARTTLS"
#define RPC_STARTTLS_LEN	8u

/* TLS record layer (RFC 8446 section 5). */
#define TLS_HDR_LEN		5u
#define TLS_CT_CHANGE_CIPHER	20u
#define TLS_CT_ALERT		21u
#define TLS_CT_HANDSHAKE	22u
#define TLS_CT_APPDATA		23u
#define TLS_MAX_PLAINTEXT	16384u
/* TLSCiphertext.length may be at most 2^14 + 256. */
#define TLS_MAX_CIPHERTEXT	(TLS_MAX_PLAINTEXT + 256u)
#define TLS_MAX_RECORD		(TLS_HDR_LEN + TLS_MAX_CIPHERTEXT)
#define TLS_HS_CLIENT_HELLO	1u

/* ALPN protocol id of RPC-with-TLS (RFC 9289 section 7.2). */
#define RPCTLS_ALPN		"sunrpc"
#define RPCTLS_ALPN_LEN		6u

#endif
