/* SPDX-License-Identifier: GPL-2.0 */
/* The context of parse_test.bpf.c: one parser call, its input and output. */
#ifndef PARSE_CTX_H
#define PARSE_CTX_H

#include "rpctls/parse.h"

#define PT_MAX_IN RPCTLS_PARSE_BUF

enum pt_op {
	PT_CLASSIFY = 1,	/* rpc_classify_first(in, len, arg) */
	PT_JUDGE,		/* rpc_probe_judge(in, len, &call) */
	PT_REPLY,		/* rpc_parse_reply(in, len, &reply) + is_starttls -> flag */
	PT_TLS_HDR,		/* tls_parse_hdr(in, len, &hdr); tls_is_client_hello -> flag */
	PT_RM_FEED,		/* rm_feed(&rm, in, len, &used, &rec_len) */
	PT_TLS_FEED,		/* tls_framer_feed(&tf, in, len, &used, &hdr_status) */
};

struct parse_ctx {
	__u32 op;
	__u32 len;
	__u32 arg;
	__s32 ret;
	__u32 used;
	__u32 rec_len;
	__s32 hdr_status;
	__u32 flag;
	struct rm_parser rm;
	struct tls_framer tf;
	struct rpc_call_hdr call;
	struct rpc_reply_hdr reply;
	struct tls_hdr hdr;
	__u8 in[PT_MAX_IN + 8];	/* see PIDX() */
};

/* The same dispatch, compiled for BPF and for the host. */
RPCTLS_INLINE void parse_ctx_run(struct parse_ctx *c, const __u8 *in, __u32 len)
{
	switch (c->op) {
	case PT_CLASSIFY:
		c->ret = rpc_classify_first(in, len, c->arg);
		break;
	case PT_JUDGE:
		c->ret = rpc_probe_judge(in, len, &c->call);
		break;
	case PT_REPLY:
		c->ret = rpc_parse_reply(in, len, &c->reply);
		c->flag = c->ret == RPC_PARSE_OK && rpc_reply_is_starttls(in, len, &c->reply);
		break;
	case PT_TLS_HDR:
		c->ret = tls_parse_hdr(in, len, &c->hdr);
		c->flag = tls_is_client_hello(in, len);
		break;
	case PT_RM_FEED:
		c->ret = rm_feed(&c->rm, in, len, &c->used, &c->rec_len);
		break;
	case PT_TLS_FEED:
		c->ret = tls_framer_feed(&c->tf, in, len, &c->used, &c->hdr_status);
		break;
	}
}

#endif
