// SPDX-License-Identifier: GPL-2.0
/* Unit tests of include/rpctls/parse.h on the host. */
#include <stdint.h>
#include <stdlib.h>

#include "rpctls/parse.h"
#include "../lib/check.h"

/* A call: mark + header with a credential body of @cred_len bytes. */
static __u32 make_call(__u8 *out, __u32 xid, __u32 prog, __u32 vers, __u32 proc, __u32 flavor,
		       __u32 cred_len, __u32 verf_flavor, __u32 verf_len, __u32 args)
{
	__u32 off = 4;

	put_be32(out + off, xid), off += 4;
	put_be32(out + off, RPC_CALL), off += 4;
	put_be32(out + off, RPC_VERSION), off += 4;
	put_be32(out + off, prog), off += 4;
	put_be32(out + off, vers), off += 4;
	put_be32(out + off, proc), off += 4;
	put_be32(out + off, flavor), off += 4;
	put_be32(out + off, cred_len), off += 4;
	memset(out + off, 0xab, xdr_pad4(cred_len)), off += xdr_pad4(cred_len);
	put_be32(out + off, verf_flavor), off += 4;
	put_be32(out + off, verf_len), off += 4;
	memset(out + off, 0xcd, xdr_pad4(verf_len)), off += xdr_pad4(verf_len);
	memset(out + off, 0x11, args), off += args;
	put_be32(out, RPC_MARK_LAST | (off - 4));
	return off;
}

static void classify_probe_and_plain(void)
{
	__u8 b[128];
	__u32 n;

	n = rpc_build_probe(b, 0x1234, 100000, 4);
	CHECK(n == 44, "probe length %u", n);
	CHECK(rpc_classify_first(b, n, 0) == RPC_FIRST_AUTH_TLS, "probe not AUTH_TLS");
	CHECK(rpc_classify_first(b, RPC_CLASSIFY_LEN, 0) == RPC_FIRST_AUTH_TLS, "probe prefix");
	for (__u32 i = 0; i < RPC_CLASSIFY_LEN; i++)
		CHECK(rpc_classify_first(b, i, 0) == RPC_FIRST_NEED_MORE, "prefix %u classified", i);

	n = make_call(b, 7, 100000, 4, 0, AUTH_SYS, 20, AUTH_NONE, 0, 8);
	CHECK(rpc_classify_first(b, n, 0) == RPC_FIRST_PLAIN, "AUTH_SYS call not plain");
	n = make_call(b, 7, 100000, 4, 0, AUTH_NONE, 0, AUTH_NONE, 0, 0);
	CHECK(rpc_classify_first(b, n, 0) == RPC_FIRST_PLAIN, "AUTH_NONE call not plain");
}

static void classify_not_rpc(void)
{
	__u8 b[64];

	/* A reply is no call. */
	rpc_build_probe_reply(b, 1, RPC_ANSWER_STARTTLS);
	CHECK(rpc_classify_first(b, 36, 0) == RPC_FIRST_NOT_RPC, "reply classified as a call");
	/* A fragment too short to hold a call header. */
	rpc_build_probe(b, 1, 2, 3);
	put_be32(b, RPC_MARK_LAST | 39);
	CHECK(rpc_classify_first(b, 44, 0) == RPC_FIRST_NOT_RPC, "39-byte fragment");
	/* Oversized with a limit, fine without. */
	put_be32(b, RPC_MARK_LAST | 0x7fffffff);
	CHECK(rpc_classify_first(b, 44, 1 << 20) == RPC_FIRST_NOT_RPC, "oversized fragment");
	CHECK(rpc_classify_first(b, 44, 0) == RPC_FIRST_AUTH_TLS, "no limit");
	/* A TLS ClientHello where the probe should be. */
	memset(b, 0, sizeof(b));
	b[0] = 0x16, b[1] = 3, b[2] = 1, b[3] = 0x02, b[4] = 0x00, b[5] = 1;
	CHECK(rpc_classify_first(b, 64, 1 << 20) == RPC_FIRST_NOT_RPC, "ClientHello as RPC");
	/* Garbage. */
	memset(b, 'A', sizeof(b));
	CHECK(rpc_classify_first(b, 64, 1 << 20) == RPC_FIRST_NOT_RPC, "garbage as RPC");
}

static void probe_judge(void)
{
	struct rpc_call_hdr h;
	__u8 b[1024];
	__u32 n;

	n = rpc_build_probe(b, 0xdeadbeef, 100003, 3);
	CHECK(rpc_probe_judge(b + 4, n - 4, &h) == RPC_PROBE_OK, "good probe");
	CHECK(h.xid == 0xdeadbeef && h.prog == 100003 && h.vers == 3 && h.hdr_len == 40, "fields");

	n = make_call(b, 1, 100003, 3, 0, AUTH_TLS, 8, AUTH_NONE, 0, 0);
	CHECK(rpc_probe_judge(b + 4, n - 4, &h) == RPC_PROBE_BADCRED, "credential body");
	n = make_call(b, 1, 100003, 3, 0, AUTH_TLS, 0, AUTH_SYS, 0, 0);
	CHECK(rpc_probe_judge(b + 4, n - 4, &h) == RPC_PROBE_BADCRED, "verifier flavor");
	n = make_call(b, 1, 100003, 3, 0, AUTH_TLS, 0, AUTH_NONE, 4, 0);
	CHECK(rpc_probe_judge(b + 4, n - 4, &h) == RPC_PROBE_BADCRED, "verifier body");
	n = make_call(b, 1, 100003, 3, 0, AUTH_TLS, 0, AUTH_NONE, 0, 4);
	CHECK(rpc_probe_judge(b + 4, n - 4, &h) == RPC_PROBE_BADCRED, "arguments after the probe");
	n = make_call(b, 9, 100003, 3, 1, AUTH_TLS, 0, AUTH_NONE, 0, 0);
	CHECK(rpc_probe_judge(b + 4, n - 4, &h) == RPC_PROBE_REJECTEDCRED, "procedure 1");
	CHECK(h.xid == 9, "xid of rejected call");
	n = make_call(b, 1, 100003, 3, 0, AUTH_SYS, 0, AUTH_NONE, 0, 0);
	CHECK(rpc_probe_judge(b + 4, n - 4, &h) == RPC_PROBE_NOT_PROBE, "AUTH_SYS");
	n = make_call(b, 1, 100003, 3, 0, AUTH_TLS, 500, AUTH_NONE, 0, 0);
	CHECK(rpc_probe_judge(b + 4, n - 4, &h) == RPC_PROBE_MALFORMED, "500-byte credential");
	n = rpc_build_probe(b, 1, 2, 3);
	put_be32(b + 12, 3);	/* rpcvers */
	CHECK(rpc_probe_judge(b + 4, n - 4, &h) == RPC_PROBE_MALFORMED, "rpcvers 3");
	/* Truncated at every length. */
	n = rpc_build_probe(b, 1, 2, 3);
	for (__u32 i = 0; i < n - 4; i++)
		CHECK(rpc_probe_judge(b + 4, i, &h) == RPC_PROBE_MALFORMED, "truncated to %u judged", i);
}

static void replies(void)
{
	static const int answers[] = { RPC_ANSWER_STARTTLS, RPC_ANSWER_NO_TLS, RPC_ANSWER_BADCRED,
				       RPC_ANSWER_REJECTEDCRED };
	struct rpc_reply_hdr r = { 0 };
	__u8 b[RPC_PROBE_REPLY_MAX + 8];

	for (size_t i = 0; i < 4; i++) {
		__u32 n = rpc_build_probe_reply(b, 0x55aa + (__u32)i, answers[i]);
		__u32 mark = get_be32(b);

		CHECK(n <= RPC_PROBE_REPLY_MAX, "reply %zu too long", i);
		CHECK(mark == (RPC_MARK_LAST | (n - 4)), "mark of reply %zu", i);
		CHECK(rpc_parse_reply(b + 4, n - 4, &r) == RPC_PARSE_OK, "parse reply %zu", i);
		CHECK(r.xid == 0x55aa + i, "xid of reply %zu", i);
		CHECK(rpc_reply_is_starttls(b + 4, n - 4, &r) == (answers[i] == RPC_ANSWER_STARTTLS),
		      "starttls of reply %zu", i);
		for (__u32 j = 0; j < n - 4; j++) {
			int st = rpc_parse_reply(b + 4, j, &r);

			CHECK(st == RPC_PARSE_SHORT || (st == RPC_PARSE_OK && !rpc_reply_is_starttls(b + 4, j, &r)) ||
				      (st == RPC_PARSE_OK && answers[i] != RPC_ANSWER_STARTTLS),
			      "truncated reply %zu at %u: %d", i, j, st);
		}
	}
	/* The exact bytes of RFC 9289's STARTTLS reply. */
	rpc_build_probe_reply(b, 0x01020304, RPC_ANSWER_STARTTLS);
	static const __u8 want[36] = { 0x80, 0, 0, 32, 1, 2, 3, 4, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0,
				       0, 0, 0, 8, 'S', 'T', 'A', 'R', 'T', 'T', 'L', 'S', 0, 0, 0, 0 };
	CHECK(!memcmp(b, want, sizeof(want)), "STARTTLS reply bytes");
	/* A wrong verifier string is no STARTTLS. */
	b[4 + 20 + 7] = 'X';
	rpc_parse_reply(b + 4, 32, &r);
	CHECK(!rpc_reply_is_starttls(b + 4, 32, &r), "STARTTLX accepted");
}

/* Feed @buf in pieces cut at @cuts (sorted offsets), collect record ends. */
static int rm_run(const __u8 *buf, __u32 len, const __u32 *cuts, int ncuts, __u32 max, __u32 *ends,
		  __u32 *lens, int maxends, int *err)
{
	struct rm_parser p;
	__u32 start = 0, abs = 0;
	int n = 0;

	rm_init(&p, max);
	*err = RM_NEED_MORE;
	for (int c = 0; c <= ncuts; c++) {
		__u32 end = c < ncuts ? cuts[c] : len;

		abs = start;
		while (abs < end) {
			__u32 used = 0, rl = 0;
			int r = rm_feed(&p, buf + abs, end - abs, &used, &rl);

			abs += used;
			if (r == RM_RECORD) {
				if (n < maxends) {
					ends[n] = abs;
					lens[n] = rl;
				}
				n++;
			} else if (r != RM_NEED_MORE) {
				*err = r;
				return n;
			} else if (used == 0) {
				break;
			}
		}
		start = end;
	}
	return n;
}

static void record_marking_splits(void)
{
	/* Three records: one fragment; two fragments (10 + 6); a zero-length
	 * non-last fragment followed by a 4-byte last one. */
	__u8 buf[256];
	__u32 off = 0, ends[8], lens[8], cuts[2];
	int err, n;

	put_be32(buf + off, RPC_MARK_LAST | 12), off += 4;
	memset(buf + off, 1, 12), off += 12;
	__u32 end1 = off;
	put_be32(buf + off, 10), off += 4;
	memset(buf + off, 2, 10), off += 10;
	put_be32(buf + off, RPC_MARK_LAST | 6), off += 4;
	memset(buf + off, 3, 6), off += 6;
	__u32 end2 = off;
	put_be32(buf + off, 0), off += 4;
	put_be32(buf + off, RPC_MARK_LAST | 4), off += 4;
	memset(buf + off, 4, 4), off += 4;
	__u32 end3 = off;

	n = rm_run(buf, off, NULL, 0, 1 << 20, ends, lens, 8, &err);
	CHECK(n == 3 && err == RM_NEED_MORE, "whole: %d records, err %d", n, err);
	CHECK(ends[0] == end1 && ends[1] == end2 && ends[2] == end3, "whole: ends");
	CHECK(lens[0] == 12 && lens[1] == 16 && lens[2] == 4, "whole: lengths %u %u %u", lens[0], lens[1], lens[2]);

	/* Split at every byte, and at every pair of bytes. */
	for (__u32 i = 1; i < off; i++) {
		cuts[0] = i;
		n = rm_run(buf, off, cuts, 1, 1 << 20, ends, lens, 8, &err);
		CHECK(n == 3 && ends[0] == end1 && ends[1] == end2 && ends[2] == end3 && lens[1] == 16,
		      "split at %u", i);
		for (__u32 j = i + 1; j < off; j++) {
			cuts[1] = j;
			n = rm_run(buf, off, cuts, 2, 1 << 20, ends, lens, 8, &err);
			CHECK(n == 3 && ends[2] == end3 && lens[2] == 4, "split at %u and %u", i, j);
		}
	}
	/* One byte at a time. */
	{
		__u32 all[256];

		for (__u32 i = 0; i < off - 1; i++)
			all[i] = i + 1;
		n = rm_run(buf, off, all, (int)off - 1, 1 << 20, ends, lens, 8, &err);
		CHECK(n == 3 && ends[0] == end1 && ends[1] == end2 && ends[2] == end3, "byte by byte");
	}
	/* Truncated: no record may end early. */
	for (__u32 i = 0; i < end1; i++) {
		n = rm_run(buf, i, NULL, 0, 1 << 20, ends, lens, 8, &err);
		CHECK(n == 0 && err == RM_NEED_MORE, "truncated to %u: %d records", i, n);
	}
}

static void record_marking_limits(void)
{
	__u8 buf[64];
	__u32 ends[4], lens[4];
	int err, n;

	/* A fragment over the limit. */
	put_be32(buf, RPC_MARK_LAST | 1000);
	n = rm_run(buf, 4, NULL, 0, 999, ends, lens, 4, &err);
	CHECK(n == 0 && err == RM_ERR_OVERSIZE, "oversized fragment: n %d err %d", n, err);
	n = rm_run(buf, 4, NULL, 0, 1000, ends, lens, 4, &err);
	CHECK(n == 0 && err == RM_NEED_MORE, "fragment at the limit refused");
	/* Fragments adding up over the limit. */
	put_be32(buf, 600);
	memset(buf + 4, 0, 8);
	{
		struct rm_parser p;
		__u8 body[600] = { 0 };
		__u32 used;
		int r;

		rm_init(&p, 1000);
		r = rm_feed(&p, buf, 4, &used, NULL);
		CHECK(r == RM_NEED_MORE && used == 4, "first fragment header");
		r = rm_feed(&p, body, 600, &used, NULL);
		CHECK(r == RM_NEED_MORE && used == 600, "first fragment body");
		put_be32(buf, RPC_MARK_LAST | 401);
		r = rm_feed(&p, buf, 4, &used, NULL);
		CHECK(r == RM_ERR_OVERSIZE, "record over the limit in two fragments: %d", r);
	}
	/* The largest possible mark does not overflow. */
	put_be32(buf, RPC_MARK_LAST | RPC_MARK_LEN_MASK);
	n = rm_run(buf, 4, NULL, 0, 0x7fffffff, ends, lens, 4, &err);
	CHECK(n == 0 && err == RM_NEED_MORE, "2^31-1 fragment");
	/* Endless empty fragments. */
	{
		struct rm_parser p;
		__u8 z[4] = { 0 };
		__u32 used;
		int r = RM_NEED_MORE;

		rm_init(&p, 1 << 20);
		for (int i = 0; i <= (int)RM_MAX_FRAGMENTS && r == RM_NEED_MORE; i++)
			r = rm_feed(&p, z, 4, &used, NULL);
		CHECK(r == RM_ERR_FRAGMENTS, "fragment flood: %d", r);
	}
}

/* Random records, random cuts, compared with feeding all at once. */
static void record_marking_random(void)
{
	static __u8 buf[1 << 16];
	__u32 ends_a[512], lens_a[512], ends_b[512], lens_b[512], cuts[64];
	unsigned seed = 1;

	for (int round = 0; round < 300; round++) {
		__u32 off = 0;
		int nrec = 0, err_a, err_b, na, nb, ncuts;

		while (off < sizeof(buf) - 2048 && nrec < 100) {
			int frags = 1 + rand_r(&seed) % 3;

			for (int f = 0; f < frags; f++) {
				__u32 len = (__u32)(rand_r(&seed) % 300);

				put_be32(buf + off, (f == frags - 1 ? RPC_MARK_LAST : 0) | len);
				off += 4;
				memset(buf + off, f, len);
				off += len;
			}
			nrec++;
		}
		ncuts = rand_r(&seed) % 64;
		for (int i = 0; i < ncuts; i++)
			cuts[i] = 1 + (__u32)rand_r(&seed) % (off - 1);
		/* sort the cuts */
		for (int i = 1; i < ncuts; i++)
			for (int j = i; j > 0 && cuts[j - 1] > cuts[j]; j--) {
				__u32 t = cuts[j];
				cuts[j] = cuts[j - 1];
				cuts[j - 1] = t;
			}
		na = rm_run(buf, off, NULL, 0, 1 << 20, ends_a, lens_a, 512, &err_a);
		nb = rm_run(buf, off, cuts, ncuts, 1 << 20, ends_b, lens_b, 512, &err_b);
		CHECK(na == nrec && nb == nrec, "round %d: %d/%d records of %d", round, na, nb, nrec);
		CHECK(!memcmp(ends_a, ends_b, (size_t)nrec * 4) && !memcmp(lens_a, lens_b, (size_t)nrec * 4),
		      "round %d: boundaries differ", round);
	}
}

static void tls_headers(void)
{
	struct tls_hdr h;
	__u8 b[8] = { 0x17, 3, 3, 0x40, 0x11 };

	CHECK(tls_parse_hdr(b, 5, &h) == TLS_HDR_OK && h.type == 23 && h.len == 0x4011, "appdata 16401");
	b[3] = 0x41, b[4] = 0x01;	/* 16641 = 2^14 + 257 */
	CHECK(tls_parse_hdr(b, 5, &h) == TLS_HDR_BAD_LENGTH, "2^14+257 accepted");
	b[3] = 0x41, b[4] = 0x00;	/* 2^14 + 256 */
	CHECK(tls_parse_hdr(b, 5, &h) == TLS_HDR_OK, "2^14+256 refused");
	b[3] = 0, b[4] = 0;
	CHECK(tls_parse_hdr(b, 5, &h) == TLS_HDR_BAD_LENGTH, "empty record accepted");
	b[0] = 24, b[4] = 1;
	CHECK(tls_parse_hdr(b, 5, &h) == TLS_HDR_BAD_TYPE, "heartbeat accepted");
	b[0] = 0x16, b[1] = 2;
	CHECK(tls_parse_hdr(b, 5, &h) == TLS_HDR_BAD_VERSION, "SSLv2 accepted");
	for (__u32 i = 0; i < 5; i++)
		CHECK(tls_parse_hdr(b, i, &h) == TLS_HDR_SHORT, "short %u", i);

	__u8 ch[6] = { 0x16, 3, 1, 0, 0x80, 1 };
	CHECK(tls_is_client_hello(ch, 6), "ClientHello");
	ch[5] = 2;
	CHECK(!tls_is_client_hello(ch, 6), "ServerHello as ClientHello");
	CHECK(!tls_is_client_hello(ch, 5), "5 bytes as ClientHello");
}

static void tls_framing(void)
{
	/* handshake(3) + ccs(1) + appdata(20) */
	__u8 s[64];
	__u32 n = 0, want[3];
	int st;

	s[n++] = 22, s[n++] = 3, s[n++] = 1, s[n++] = 0, s[n++] = 3, s[n++] = 1, s[n++] = 2, s[n++] = 3;
	want[0] = n;
	s[n++] = 20, s[n++] = 3, s[n++] = 3, s[n++] = 0, s[n++] = 1, s[n++] = 1;
	want[1] = n;
	s[n++] = 23, s[n++] = 3, s[n++] = 3, s[n++] = 0, s[n++] = 20;
	memset(s + n, 9, 20), n += 20;
	want[2] = n;

	for (__u32 step = 1; step <= n; step++) {
		struct tls_framer f;
		__u32 pos = 0, got = 0;

		tls_framer_init(&f);
		while (pos < n) {
			__u32 lim = pos + step > n ? n : pos + step, used;
			int r = tls_framer_feed(&f, s + pos, lim - pos, &used, &st);

			CHECK(r != TLS_FRAME_ERROR, "step %u: error", step);
			pos += used;
			if (r == TLS_FRAME_RECORD) {
				CHECK(got < 3 && pos == want[got], "step %u: record %u ends at %u", step, got, pos);
				got++;
			}
			if (r == TLS_FRAME_ERROR)
				break;
		}
		CHECK(got == 3, "step %u: %u records", step, got);
	}
	{
		struct tls_framer f;
		__u8 bad[5] = { 'G', 'E', 'T', ' ', '/' };
		__u32 used;

		tls_framer_init(&f);
		CHECK(tls_framer_feed(&f, bad, 5, &used, &st) == TLS_FRAME_ERROR && st == TLS_HDR_BAD_TYPE,
		      "HTTP as TLS");
	}
}

int main(void)
{
	RUN(classify_probe_and_plain);
	RUN(classify_not_rpc);
	RUN(probe_judge);
	RUN(replies);
	RUN(record_marking_splits);
	RUN(record_marking_limits);
	RUN(record_marking_random);
	RUN(tls_headers);
	RUN(tls_framing);
	return check_exit();
}
