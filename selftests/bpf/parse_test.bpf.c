// SPDX-License-Identifier: GPL-2.0
/*
 * The parsers of include/rpctls/parse.h, run by the kernel's BPF
 * interpreter/JIT after its verifier accepted them: test_parse_bpf feeds
 * this program and the host build the same inputs and compares.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#define RM_FEED_STEPS 4
#include "parse_ctx.h"

char LICENSE[] SEC("license") = "GPL";

/* The parsers work on a copy in map memory: a context pointer moved by an
 * offset may not be dereferenced, and the stack is too small. */
struct parse_ctx work;

SEC("syscall")
int parse_test(struct parse_ctx *ctx)
{
	__u32 len;

	__builtin_memcpy(&work, ctx, sizeof(work));
	len = work.len;
	if (len > PT_MAX_IN)
		len = PT_MAX_IN;
	parse_ctx_run(&work, work.in, len);
	__builtin_memcpy(ctx, &work, offsetof(struct parse_ctx, in));
	return 0;
}
