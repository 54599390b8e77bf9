// SPDX-License-Identifier: GPL-2.0
/*
 * libFuzzer target for include/rpctls/parse.h: no input may read out of
 * bounds (ASan, UBSan), consume more than it was given, or frame a stream
 * differently when it arrives in other pieces.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rpctls/parse.h"

#define MAX_ENDS 4096

struct frames {
	__u32 ends[MAX_ENDS];
	int n;
	int err;
	__u32 err_at;
};

static void rm_frames(const __u8 *d, __u32 len, __u32 step, struct frames *f)
{
	struct rm_parser p;
	__u32 pos = 0;

	rm_init(&p, 1 << 16);
	f->n = 0;
	f->err = 0;
	while (pos < len) {
		__u32 lim = step && pos + step < len ? pos + step : len, used = 0, rl = 0;
		int r = rm_feed(&p, d + pos, lim - pos, &used, &rl);

		if (used > lim - pos || (r == RM_NEED_MORE && used != lim - pos))
			abort();
		pos += used;
		if (r == RM_RECORD) {
			if (rl > (1u << 16))
				abort();
			if (f->n < MAX_ENDS)
				f->ends[f->n++] = pos;
		} else if (r != RM_NEED_MORE) {
			f->err = r;
			f->err_at = pos;
			return;
		}
	}
}

static void tls_frames(const __u8 *d, __u32 len, __u32 step, struct frames *f)
{
	struct tls_framer t;
	__u32 pos = 0;
	int st;

	tls_framer_init(&t);
	f->n = 0;
	f->err = 0;
	while (pos < len) {
		__u32 lim = step && pos + step < len ? pos + step : len, used = 0;
		int r = tls_framer_feed(&t, d + pos, lim - pos, &used, &st);

		if (used > lim - pos || (r == TLS_FRAME_NEED_MORE && used != lim - pos))
			abort();
		pos += used;
		if (r == TLS_FRAME_RECORD) {
			if (f->n < MAX_ENDS)
				f->ends[f->n++] = pos;
		} else if (r == TLS_FRAME_ERROR) {
			f->err = st;
			f->err_at = pos;
			return;
		}
	}
}

static void same(const struct frames *a, const struct frames *b)
{
	if (a->n != b->n || a->err != b->err || memcmp(a->ends, b->ends, (size_t)a->n * 4))
		abort();
	if (a->err && a->err_at != b->err_at)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct frames whole, split, bytes;
	struct rpc_call_hdr h;
	struct rpc_reply_hdr r;
	__u32 len = size > 65536 ? 65536 : (__u32)size;
	__u32 step = len ? 1 + data[0] % 97 : 1;

	/* Header parsers: anything goes, nothing may be read past len. */
	{
		__u8 *copy = malloc(len ? len : 1);

		memcpy(copy, data, len);
		(void)rpc_classify_first(copy, len, 1 << 20);
		if (len >= 4) {
			(void)rpc_probe_judge(copy + 4, len - 4, &h);
			if (rpc_parse_reply(copy + 4, len - 4, &r) == RPC_PARSE_OK)
				(void)rpc_reply_is_starttls(copy + 4, len - 4, &r);
		}
		(void)tls_is_client_hello(copy, len);
		free(copy);
	}
	/* Framing must not depend on how the bytes are cut. */
	rm_frames(data, len, 0, &whole);
	rm_frames(data, len, step, &split);
	same(&whole, &split);
	if (len < 2048) {
		rm_frames(data, len, 1, &bytes);
		same(&whole, &bytes);
	}
	tls_frames(data, len, 0, &whole);
	tls_frames(data, len, step, &split);
	same(&whole, &split);
	return 0;
}
