// SPDX-License-Identifier: GPL-2.0
/*
 * The parsers of include/rpctls/parse.h as the kernel runs them: loads
 * parse_test.bpf.o (so the running kernel's verifier must accept them), runs
 * it with BPF_PROG_TEST_RUN on inputs that the host build also parses, and
 * checks that both give the same answers.
 *
 * Usage: test_parse_bpf PARSE_TEST_BPF_O
 */
#include <errno.h>
#include <stdlib.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "../bpf/parse_ctx.h"
#include "../lib/check.h"

static int prog_fd = -1;
static unsigned seed = 42;

static int bpf_run(struct parse_ctx *c)
{
	/* A syscall program's context is copied back to ctx_in. */
	LIBBPF_OPTS(bpf_test_run_opts, o, .ctx_in = c, .ctx_size_in = sizeof(*c));

	return bpf_prog_test_run_opts(prog_fd, &o);
}

/* Run one stateless op both ways; 0 when they agree. */
static int both(int op, const __u8 *in, __u32 len, __u32 arg)
{
	struct parse_ctx h = { .op = (__u32)op, .len = len, .arg = arg }, k;

	memcpy(h.in, in, len);
	k = h;
	parse_ctx_run(&h, h.in, len);
	if (bpf_run(&k))
		return -2;
	/* The input is not copied back; compare what the parsers produced. */
	if (h.ret != k.ret || h.flag != k.flag)
		return -1;
	switch (op) {
	case PT_JUDGE:
		if (h.ret != RPC_PROBE_MALFORMED && memcmp(&h.call, &k.call, sizeof(h.call)))
			return -1;
		break;
	case PT_REPLY:
		if (h.ret == RPC_PARSE_OK && memcmp(&h.reply, &k.reply, sizeof(h.reply)))
			return -1;
		break;
	case PT_TLS_HDR:
		if (h.ret == TLS_HDR_OK && memcmp(&h.hdr, &k.hdr, sizeof(h.hdr)))
			return -1;
		break;
	}
	return 0;
}

static void loads_and_runs(void)
{
	__u8 b[64];
	int r;

	rpc_build_probe(b, 1, 100000, 4);
	r = both(PT_CLASSIFY, b, 44, 0);
	CHECK(r != -2, "BPF_PROG_TEST_RUN: %s", strerror(errno));
	CHECK(r == 0, "probe classified differently");
}

static void headers_agree(void)
{
	__u8 b[PT_MAX_IN];
	static const int answers[] = { RPC_ANSWER_STARTTLS, RPC_ANSWER_NO_TLS, RPC_ANSWER_BADCRED,
				       RPC_ANSWER_REJECTEDCRED };
	int bad = 0, runs = 0;

	/* Probes and replies, every truncation. */
	__u32 n = rpc_build_probe(b, 77, 100003, 4);
	for (__u32 i = 0; i <= n; i++) {
		bad += both(PT_CLASSIFY, b, i, 0) != 0;
		bad += both(PT_JUDGE, b + 4, i > 4 ? i - 4 : 0, 0) != 0;
		runs += 2;
	}
	for (size_t a = 0; a < 4; a++) {
		n = rpc_build_probe_reply(b, 5, answers[a]);
		for (__u32 i = 0; i <= n - 4; i++, runs++)
			bad += both(PT_REPLY, b + 4, i, 0) != 0;
	}
	/* Random bytes, and random bytes under a plausible header. */
	for (int i = 0; i < 3000; i++, runs += 4) {
		__u32 len = (__u32)rand_r(&seed) % PT_MAX_IN;

		for (__u32 j = 0; j < len; j++)
			b[j] = (__u8)rand_r(&seed);
		if (i % 3 == 0 && len >= 44) {
			rpc_build_probe(b, 1, 2, 3);
			put_be32(b + 28 + 4 * (rand_r(&seed) % 4), (__u32)rand_r(&seed) % 600);
		}
		bad += both(PT_CLASSIFY, b, len, i % 2 ? 1 << 20 : 0) != 0;
		bad += both(PT_JUDGE, b, len, 0) != 0;
		bad += both(PT_REPLY, b, len, 0) != 0;
		bad += both(PT_TLS_HDR, b, len, 0) != 0;
	}
	CHECK(bad == 0, "%d of %d runs disagree", bad, runs);
}

/* Record ends of a stream fed in the given pieces; BPF or host. */
static int frame(bool bpf, int op, const __u8 *s, __u32 len, const __u32 *piece, int npieces,
		 __u32 *ends, int max)
{
	struct parse_ctx c = { .op = (__u32)op };
	__u32 pos = 0;
	int n = 0;

	rm_init(&c.rm, 1 << 16);
	tls_framer_init(&c.tf);
	for (int p = 0; p < npieces && pos < len; p++) {
		__u32 lim = pos + piece[p] > len ? len : pos + piece[p];

		while (pos < lim) {
			c.len = lim - pos > PT_MAX_IN ? PT_MAX_IN : lim - pos;
			memcpy(c.in, s + pos, c.len);
			if (bpf) {
				if (bpf_run(&c))
					return -2;
			} else {
				parse_ctx_run(&c, c.in, c.len);
			}
			pos += c.used;
			if ((op == PT_RM_FEED && c.ret == RM_RECORD) || (op == PT_TLS_FEED && c.ret == TLS_FRAME_RECORD)) {
				if (n < max)
					ends[n] = pos;
				n++;
			} else if ((op == PT_RM_FEED && c.ret != RM_NEED_MORE) ||
				   (op == PT_TLS_FEED && c.ret == TLS_FRAME_ERROR)) {
				return -1000 - n;
			}
		}
	}
	return n;
}

static void streams_agree(void)
{
	static __u8 s[1 << 14];
	__u32 ends_h[512], ends_k[512], piece[256];
	int bad = 0;

	for (int round = 0; round < 150; round++) {
		int op = round % 2 ? PT_TLS_FEED : PT_RM_FEED;
		__u32 len = 0;
		int np = 0, nh, nk;

		while (len < sizeof(s) - 600) {
			__u32 body = (__u32)rand_r(&seed) % 300 + (op == PT_TLS_FEED);

			if (op == PT_RM_FEED) {
				put_be32(s + len, (rand_r(&seed) % 3 ? RPC_MARK_LAST : 0) | body);
				len += 4;
			} else {
				s[len] = (__u8)(20 + rand_r(&seed) % 4), s[len + 1] = 3, s[len + 2] = 3;
				s[len + 3] = (__u8)(body >> 8), s[len + 4] = (__u8)body;
				len += 5;
			}
			memset(s + len, 0x5a, body);
			len += body;
		}
		/* Now and then a bad header in the middle. */
		if (round % 10 == 9)
			memset(s + len / 2, 0xff, 8);
		for (__u32 pos = 0; pos < len && np < 256; np++) {
			piece[np] = 1 + (__u32)rand_r(&seed) % (round % 3 ? 700 : 7);
			pos += piece[np];
		}
		nh = frame(false, op, s, len, piece, np, ends_h, 512);
		nk = frame(true, op, s, len, piece, np, ends_k, 512);
		if (nk == -2) {
			CHECK(0, "BPF_PROG_TEST_RUN: %s", strerror(errno));
			return;
		}
		if (nh != nk || (nh > 0 && memcmp(ends_h, ends_k, (size_t)(nh < 512 ? nh : 512) * 4)))
			bad++;
	}
	CHECK(bad == 0, "%d of 150 streams framed differently", bad);
}

int main(int argc, char **argv)
{
	struct bpf_object *obj;
	struct bpf_program *prog;

	if (argc != 2) {
		fprintf(stderr, "usage: %s parse_test.bpf.o\n", argv[0]);
		return 2;
	}
	test_begin("verifier_accepts_parsers");
	obj = bpf_object__open_file(argv[1], NULL);
	CHECK(obj != NULL, "open %s: %s", argv[1], strerror(errno));
	if (obj) {
		int err = bpf_object__load(obj);

		CHECK(!err, "the verifier refused the parsers: %s", strerror(-err));
		prog = bpf_object__find_program_by_name(obj, "parse_test");
		if (!err && prog)
			prog_fd = bpf_program__fd(prog);
	}
	test_end();
	if (prog_fd < 0)
		return 1;
	RUN(loads_and_runs);
	RUN(headers_agree);
	RUN(streams_agree);
	bpf_object__close(obj);
	return check_exit();
}
