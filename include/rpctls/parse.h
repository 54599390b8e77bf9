/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * Parsers of the bytes rpctls looks at: RPC record marking (RFC 5531 section
 * 11), the RPC call and reply headers, the AUTH_TLS probe (RFC 9289 section
 * 4.1) and the TLS record header (RFC 8446 section 5.1).
 *
 * Written once, as static inline C, for two compilers: clang -target bpf (the
 * BPF programs and a BPF copy of the unit tests) and the host compiler (the
 * controller, the unit tests and the fuzzers). Hence the rules: no libc, no
 * unbounded loops, every read of b[i] guarded by a length check with a
 * constant offset, lengths are __u32, and a caller's buffer is never written
 * past the size it names.
 *
 * The stream parsers (struct rm_parser, struct tls_framer) are incremental:
 * they take bytes in any split, even one at a time, and give the same answer
 * as if all bytes had come at once.
 */
#ifndef RPCTLS_PARSE_H
#define RPCTLS_PARSE_H

#include "types.h"
#include "wire.h"

/*
 * In BPF, variable offsets into a buffer are masked so that the verifier can
 * bound them (the 6.1 verifier does not narrow a register by comparing it
 * with another register): a BPF caller's buffer must hold RPCTLS_PARSE_BUF +
 * 8 bytes and len must be at most RPCTLS_PARSE_BUF. The mask never changes an
 * offset that the length checks let through, so both builds agree.
 */
#define RPCTLS_PARSE_BUF 512u
#ifdef __bpf__
#define PIDX(i) ((i) & (RPCTLS_PARSE_BUF - 1))
/* Keep clang from dropping a mask it can prove useless: the verifier cannot. */
#define PHIDE(v) asm volatile("" : "+r"(v))
#else
#define PIDX(i) (i)
#define PHIDE(v) ((void)0)
#endif

RPCTLS_INLINE __u32 get_be32(const __u8 *p)
{
	return ((__u32)p[0] << 24) | ((__u32)p[1] << 16) | ((__u32)p[2] << 8) | (__u32)p[3];
}

RPCTLS_INLINE void put_be32(__u8 *p, __u32 v)
{
	p[0] = (__u8)(v >> 24);
	p[1] = (__u8)(v >> 16);
	p[2] = (__u8)(v >> 8);
	p[3] = (__u8)v;
}

/* ------------------------------------------------------------------------ */
/* First bytes of a connection: probe, plain call, or not RPC at all.        */

enum rpc_first_class {
	RPC_FIRST_NEED_MORE = 0,	/* fewer than RPC_CLASSIFY_LEN bytes */
	RPC_FIRST_AUTH_TLS,		/* a call whose credential is AUTH_TLS */
	RPC_FIRST_PLAIN,		/* an RPC call with another credential */
	RPC_FIRST_NOT_RPC,		/* no RPC call could begin like this */
};

/*
 * Classify the first bytes of a connection. Looks at the record mark and the
 * call header up to the credential flavor (RPC_CLASSIFY_LEN bytes). A call
 * with rpcvers != 2 is still "plain": the application answers RPC_MISMATCH.
 * @max_frag bounds the fragment length (0: no bound).
 */
RPCTLS_INLINE int rpc_classify_first(const __u8 *b, __u32 len, __u32 max_frag)
{
	__u32 mark, frag;

	if (len < RPC_CLASSIFY_LEN)
		return RPC_FIRST_NEED_MORE;
	mark = get_be32(b);
	frag = mark & RPC_MARK_LEN_MASK;
	/* A call header needs 40 bytes in the first fragment. */
	if (frag < RPC_CALL_HDR_LEN || (max_frag && frag > max_frag))
		return RPC_FIRST_NOT_RPC;
	if (get_be32(b + 8) != RPC_CALL)
		return RPC_FIRST_NOT_RPC;
	if (get_be32(b + 28) == AUTH_TLS)
		return RPC_FIRST_AUTH_TLS;
	return RPC_FIRST_PLAIN;
}

/* ------------------------------------------------------------------------ */
/* RPC call header.                                                          */

struct rpc_call_hdr {
	__u32 xid;
	__u32 rpcvers;
	__u32 prog;
	__u32 vers;
	__u32 proc;
	__u32 cred_flavor;
	__u32 cred_len;
	__u32 verf_flavor;
	__u32 verf_len;
	__u32 hdr_len;		/* bytes up to the end of the verifier */
};

enum rpc_parse_status {
	RPC_PARSE_OK = 0,
	RPC_PARSE_SHORT,	/* need more bytes */
	RPC_PARSE_NOT_CALL,	/* msg_type is not CALL */
	RPC_PARSE_NOT_REPLY,	/* msg_type is not REPLY */
	RPC_PARSE_BAD,		/* malformed: an opaque_auth over 400 bytes, ... */
};

/* Round an XDR opaque length up to a multiple of 4, without overflow for
 * lengths the callers accept (at most RPC_MAX_AUTH_BYTES). */
RPCTLS_INLINE __u32 xdr_pad4(__u32 n)
{
	return (n + 3u) & ~3u;
}

/*
 * Parse the call header at the start of a record body @b (after the mark).
 * The credential body is skipped, not copied. Returns an rpc_parse_status.
 */
RPCTLS_INLINE int rpc_parse_call(const __u8 *b, __u32 len, struct rpc_call_hdr *h)
{
	__u32 off;

	if (len < 8)
		return RPC_PARSE_SHORT;
	if (get_be32(b + 4) != RPC_CALL)
		return RPC_PARSE_NOT_CALL;
	if (len < 32)
		return RPC_PARSE_SHORT;
	h->xid = get_be32(b);
	h->rpcvers = get_be32(b + 8);
	h->prog = get_be32(b + 12);
	h->vers = get_be32(b + 16);
	h->proc = get_be32(b + 20);
	h->cred_flavor = get_be32(b + 24);
	h->cred_len = get_be32(b + 28);
	if (h->cred_len > RPC_MAX_AUTH_BYTES)
		return RPC_PARSE_BAD;
	off = 32 + xdr_pad4(h->cred_len);
	if (len < off + 8)
		return RPC_PARSE_SHORT;
	h->verf_flavor = get_be32(b + PIDX(off));
	h->verf_len = get_be32(b + PIDX(off) + 4);
	if (h->verf_len > RPC_MAX_AUTH_BYTES)
		return RPC_PARSE_BAD;
	h->hdr_len = off + 8 + xdr_pad4(h->verf_len);
	return RPC_PARSE_OK;
}

/* ------------------------------------------------------------------------ */
/* The AUTH_TLS probe, judged as strictly as FreeBSD does.                   */

enum rpc_probe_verdict {
	RPC_PROBE_OK = 0,		/* answer STARTTLS */
	RPC_PROBE_NOT_PROBE,		/* not an AUTH_TLS call at all */
	RPC_PROBE_BADCRED,		/* AUTH_TLS, but credential or verifier not empty */
	RPC_PROBE_REJECTEDCRED,		/* AUTH_TLS on a procedure other than NULL */
	RPC_PROBE_MALFORMED,		/* not a well-formed call: close, no answer */
};

/*
 * Judge a complete first record (body @b of @len bytes, one fragment, marked
 * last). A probe is exactly 40 bytes: NULL procedure, AUTH_TLS credential of
 * length 0, AUTH_NONE verifier of length 0 (RFC 9289 section 4.1). Fills @h
 * so that an error reply can carry the xid.
 */
RPCTLS_INLINE int rpc_probe_judge(const __u8 *b, __u32 len, struct rpc_call_hdr *h)
{
	int st = rpc_parse_call(b, len, h);

	if (st != RPC_PARSE_OK)
		return RPC_PROBE_MALFORMED;
	if (h->cred_flavor != AUTH_TLS)
		return RPC_PROBE_NOT_PROBE;
	if (h->rpcvers != RPC_VERSION || h->hdr_len > len)
		return RPC_PROBE_MALFORMED;
	if (h->proc != RPC_NULLPROC)
		return RPC_PROBE_REJECTEDCRED;
	if (h->cred_len != 0 || h->verf_flavor != AUTH_NONE || h->verf_len != 0 ||
	    len != RPC_CALL_HDR_LEN)
		return RPC_PROBE_BADCRED;
	return RPC_PROBE_OK;
}

/* Build the probe a client sends: record mark plus 40 bytes. @out holds at
 * least RPC_PROBE_LEN bytes. Returns the length. */
RPCTLS_INLINE __u32 rpc_build_probe(__u8 *out, __u32 xid, __u32 prog, __u32 vers)
{
	put_be32(out, RPC_MARK_LAST | RPC_CALL_HDR_LEN);
	put_be32(out + 4, xid);
	put_be32(out + 8, RPC_CALL);
	put_be32(out + 12, RPC_VERSION);
	put_be32(out + 16, prog);
	put_be32(out + 20, vers);
	put_be32(out + 24, RPC_NULLPROC);
	put_be32(out + 28, AUTH_TLS);
	put_be32(out + 32, 0);
	put_be32(out + 36, AUTH_NONE);
	put_be32(out + 40, 0);
	return RPC_PROBE_LEN;
}

enum rpc_probe_answer {
	RPC_ANSWER_STARTTLS = 0,	/* MSG_ACCEPTED, verifier "STARTTLS", SUCCESS */
	RPC_ANSWER_NO_TLS,		/* MSG_ACCEPTED, empty AUTH_NONE verifier, SUCCESS */
	RPC_ANSWER_BADCRED,		/* MSG_DENIED, AUTH_ERROR, AUTH_BADCRED */
	RPC_ANSWER_REJECTEDCRED,	/* MSG_DENIED, AUTH_ERROR, AUTH_REJECTEDCRED */
};

#define RPC_PROBE_REPLY_MAX	(RPC_MARK_LEN + 32u)

/* Build a server's answer to a probe, record mark included. @out holds at
 * least RPC_PROBE_REPLY_MAX bytes. Returns the length. */
RPCTLS_INLINE __u32 rpc_build_probe_reply(__u8 *out, __u32 xid, int answer)
{
	__u32 n;

	put_be32(out + 4, xid);
	put_be32(out + 8, RPC_REPLY);
	if (answer == RPC_ANSWER_BADCRED || answer == RPC_ANSWER_REJECTEDCRED) {
		put_be32(out + 12, RPC_MSG_DENIED);
		put_be32(out + 16, RPC_AUTH_ERROR);
		put_be32(out + 20, answer == RPC_ANSWER_BADCRED ? AUTH_BADCRED : AUTH_REJECTEDCRED);
		n = 20;
	} else if (answer == RPC_ANSWER_STARTTLS) {
		put_be32(out + 12, RPC_MSG_ACCEPTED);
		put_be32(out + 16, AUTH_NONE);
		put_be32(out + 20, RPC_STARTTLS_LEN);
		out[24] = 'S'; out[25] = 'T'; out[26] = 'A'; out[27] = 'R';
		out[28] = 'T'; out[29] = 'T'; out[30] = 'L'; out[31] = 'S';
		put_be32(out + 32, RPC_SUCCESS);
		n = 32;
	} else {
		put_be32(out + 12, RPC_MSG_ACCEPTED);
		put_be32(out + 16, AUTH_NONE);
		put_be32(out + 20, 0);
		put_be32(out + 24, RPC_SUCCESS);
		n = 24;
	}
	put_be32(out, RPC_MARK_LAST | n);
	return RPC_MARK_LEN + n;
}

/* ------------------------------------------------------------------------ */
/* RPC reply header (what a client reads back from its probe).              */

struct rpc_reply_hdr {
	__u32 xid;
	__u32 reply_stat;	/* MSG_ACCEPTED or MSG_DENIED */
	__u32 verf_flavor;	/* accepted replies */
	__u32 verf_len;
	__u32 verf_off;		/* offset of the verifier body in the record body */
	__u32 stat;		/* accept_stat, or reject_stat when denied */
	__u32 auth_stat;	/* when denied with AUTH_ERROR */
	__u32 hdr_len;
};

/* Parse the header of a reply record body. Returns an rpc_parse_status. */
RPCTLS_INLINE int rpc_parse_reply(const __u8 *b, __u32 len, struct rpc_reply_hdr *r)
{
	__u32 off;

	if (len < 12)
		return RPC_PARSE_SHORT;
	r->xid = get_be32(b);
	if (get_be32(b + 4) != RPC_REPLY)
		return RPC_PARSE_NOT_REPLY;
	r->reply_stat = get_be32(b + 8);
	r->verf_flavor = r->verf_len = r->verf_off = r->auth_stat = r->stat = r->hdr_len = 0;
	if (r->reply_stat == RPC_MSG_DENIED) {
		if (len < 16)
			return RPC_PARSE_SHORT;
		r->stat = get_be32(b + 12);
		r->hdr_len = 16;
		if (r->stat == RPC_AUTH_ERROR) {
			if (len < 20)
				return RPC_PARSE_SHORT;
			r->auth_stat = get_be32(b + 16);
			r->hdr_len = 20;
		}
		return RPC_PARSE_OK;
	}
	if (r->reply_stat != RPC_MSG_ACCEPTED)
		return RPC_PARSE_BAD;
	if (len < 20)
		return RPC_PARSE_SHORT;
	r->verf_flavor = get_be32(b + 12);
	r->verf_len = get_be32(b + 16);
	if (r->verf_len > RPC_MAX_AUTH_BYTES)
		return RPC_PARSE_BAD;
	r->verf_off = 20;
	off = 20 + xdr_pad4(r->verf_len);
	if (len < off + 4)
		return RPC_PARSE_SHORT;
	r->stat = get_be32(b + PIDX(off));
	r->hdr_len = off + 4;
	return RPC_PARSE_OK;
}

/* True when a parsed reply is the STARTTLS answer of RFC 9289 section 4.1. */
RPCTLS_INLINE bool rpc_reply_is_starttls(const __u8 *b, __u32 len, const struct rpc_reply_hdr *r)
{
	const __u8 *v;

	if (r->reply_stat != RPC_MSG_ACCEPTED || r->stat != RPC_SUCCESS ||
	    r->verf_flavor != AUTH_NONE || r->verf_len != RPC_STARTTLS_LEN ||
	    r->verf_off + RPC_STARTTLS_LEN > len)
		return false;
	v = b + PIDX(r->verf_off);
	return v[0] == 'S' && v[1] == 'T' && v[2] == 'A' && v[3] == 'R' &&
	       v[4] == 'T' && v[5] == 'T' && v[6] == 'L' && v[7] == 'S';
}

/* ------------------------------------------------------------------------ */
/* Record-marking stream parser.                                             */

enum rm_result {
	RM_NEED_MORE = 0,	/* every byte given was consumed, no record ended */
	RM_RECORD,		/* a record ended; *used says where */
	RM_ERR_OVERSIZE,	/* a fragment or record over the limit */
	RM_ERR_FRAGMENTS,	/* too many fragments in one record */
};

#define RM_MAX_FRAGMENTS	1024u

struct rm_parser {
	__u32 max_record;	/* limit on a record's total body length */
	__u32 mark;		/* mark bytes gathered so far, big endian */
	__u32 mark_have;	/* 0..4: bytes of the current mark seen */
	__u32 frag_left;	/* body bytes left in the current fragment */
	__u32 rec_len;		/* body bytes of the current record so far */
	__u32 nfrags;		/* fragments of the current record so far */
	__u8 last;		/* the current fragment is the record's last */
	__u8 in_body;		/* between a mark and the end of its fragment */
};

RPCTLS_INLINE void rm_init(struct rm_parser *p, __u32 max_record)
{
	p->max_record = max_record;
	p->mark = p->mark_have = p->frag_left = p->rec_len = p->nfrags = 0;
	p->last = p->in_body = 0;
}

/*
 * Consume bytes of @b[0..len) until the end of a record or of the input.
 * *used is set to the number of bytes consumed. On RM_RECORD, @rec_len
 * (optional) gets the body length of the finished record, and the parser is
 * ready for the next one. Errors are final: stop feeding.
 *
 * RM_NEED_MORE consumes everything, except in the BPF build, whose loop is
 * bounded to RM_FEED_STEPS steps (a mark byte or a run of body bytes each):
 * there RM_NEED_MORE with *used < len means "call again with the rest".
 */
#ifdef __bpf__
#ifndef RM_FEED_STEPS
#define RM_FEED_STEPS 64
#endif
#else
#define RM_FEED_STEPS 0xffffffffu
#endif
RPCTLS_INLINE int rm_feed(struct rm_parser *p, const __u8 *b, __u32 len, __u32 *used, __u32 *rec_len)
{
	__u32 off = 0, i;

	for (i = 0; i < RM_FEED_STEPS; i++) {
		if (off >= len)
			break;
		if (!p->in_body) {
			p->mark = (p->mark << 8) | b[PIDX(off)];
			off++;
			p->mark_have++;
			if (p->mark_have < RPC_MARK_LEN)
				continue;
			p->mark_have = 0;
			p->last = (p->mark & RPC_MARK_LAST) != 0;
			p->frag_left = p->mark & RPC_MARK_LEN_MASK;
			p->mark = 0;
			if (p->frag_left > p->max_record ||
			    p->rec_len > p->max_record - p->frag_left) {
				*used = off;
				return RM_ERR_OVERSIZE;
			}
			if (++p->nfrags > RM_MAX_FRAGMENTS) {
				*used = off;
				return RM_ERR_FRAGMENTS;
			}
			p->rec_len += p->frag_left;
			p->in_body = 1;
		} else {
			__u32 n = len - off;

			if (n > p->frag_left)
				n = p->frag_left;
			p->frag_left -= n;
			off += n;
		}
		if (p->in_body && p->frag_left == 0) {
			p->in_body = 0;
			if (p->last) {
				if (rec_len)
					*rec_len = p->rec_len;
				p->rec_len = 0;
				p->nfrags = 0;
				p->last = 0;
				*used = off;
				return RM_RECORD;
			}
		}
	}
	*used = off;
	return RM_NEED_MORE;
}

/* ------------------------------------------------------------------------ */
/* TLS record header and framer.                                             */

struct tls_hdr {
	__u8 type;
	__u16 version;
	__u32 len;	/* length of the record body */
};

enum tls_hdr_status {
	TLS_HDR_OK = 0,
	TLS_HDR_SHORT,		/* fewer than 5 bytes */
	TLS_HDR_BAD_TYPE,	/* not 20..23 */
	TLS_HDR_BAD_VERSION,	/* legacy_record_version not 0x03xx */
	TLS_HDR_BAD_LENGTH,	/* 0, or over 2^14 + 256 */
};

RPCTLS_INLINE int tls_parse_hdr(const __u8 *b, __u32 len, struct tls_hdr *h)
{
	if (len < TLS_HDR_LEN)
		return TLS_HDR_SHORT;
	h->type = b[0];
	h->version = (__u16)((b[1] << 8) | b[2]);
	h->len = ((__u32)b[3] << 8) | b[4];
	if (h->type < TLS_CT_CHANGE_CIPHER || h->type > TLS_CT_APPDATA)
		return TLS_HDR_BAD_TYPE;
	if (b[1] != 3)
		return TLS_HDR_BAD_VERSION;
	if (h->len == 0 || h->len > TLS_MAX_CIPHERTEXT)
		return TLS_HDR_BAD_LENGTH;
	return TLS_HDR_OK;
}

/* True when @b starts a TLS handshake record holding a ClientHello (what a
 * client must send first after STARTTLS). TLS_HDR_SHORT-like cases (fewer
 * than 6 bytes) answer false; callers wait for more first. */
RPCTLS_INLINE bool tls_is_client_hello(const __u8 *b, __u32 len)
{
	struct tls_hdr h;

	if (len < TLS_HDR_LEN + 1 || tls_parse_hdr(b, len, &h) != TLS_HDR_OK)
		return false;
	return h.type == TLS_CT_HANDSHAKE && b[5] == TLS_HS_CLIENT_HELLO;
}

/*
 * Where does the next TLS record end in a stream? Fed the bytes that follow
 * the previous record; answers with the total length of the next record once
 * its header is complete. Header bytes may arrive one at a time.
 */
struct tls_framer {
	__u8 hdr[8];		/* TLS_HDR_LEN used; 8 for a maskable index */
	__u32 have;		/* header bytes gathered */
	__u32 body_left;	/* body bytes still to pass */
	struct tls_hdr cur;	/* header of the record being passed */
};

enum tls_frame_result {
	TLS_FRAME_NEED_MORE = 0,	/* all input consumed inside a record */
	TLS_FRAME_RECORD,		/* a record ended at *used */
	TLS_FRAME_ERROR,		/* bad header; status in framer->cur.type = 0 */
};

RPCTLS_INLINE void tls_framer_init(struct tls_framer *f)
{
	f->have = 0;
	f->body_left = 0;
	f->cur.type = 0;
	f->cur.version = 0;
	f->cur.len = 0;
}

RPCTLS_INLINE int tls_framer_feed(struct tls_framer *f, const __u8 *b, __u32 len, __u32 *used, int *hdr_status)
{
	__u32 off = 0;
	int i;

	*hdr_status = TLS_HDR_OK;
	for (i = 0; i < (int)TLS_HDR_LEN + 1; i++) {
		__u32 have = f->have;

		if (have < TLS_HDR_LEN) {
			if (off >= len)
				break;
			PHIDE(have);
			f->hdr[have & 7] = b[PIDX(off)];
			f->have = ++have;
			off++;
			if (have == TLS_HDR_LEN) {
				*hdr_status = tls_parse_hdr(f->hdr, TLS_HDR_LEN, &f->cur);
				if (*hdr_status != TLS_HDR_OK) {
					*used = off;
					return TLS_FRAME_ERROR;
				}
				f->body_left = f->cur.len;
			}
			continue;
		}
		{
			__u32 n = len - off;

			if (n > f->body_left)
				n = f->body_left;
			f->body_left -= n;
			off += n;
			if (f->body_left == 0) {
				f->have = 0;
				*used = off;
				return TLS_FRAME_RECORD;
			}
			break;
		}
	}
	*used = off;
	return TLS_FRAME_NEED_MORE;
}

#endif
