// SPDX-License-Identifier: GPL-2.0
/*
 * An rpctls object the verifier must reject: rpctls attach, pointed at it
 * with RPCTLS_BPF_OBJECT, has to say so and leave nothing pinned.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, 16);
	__type(key, __u64);
	__type(value, __u64);
} sockets SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} ctl SEC(".maps");

SEC("sk_skb")
int skb_verdict(struct __sk_buff *skb)
{
	__u32 k = 0;
	__u64 *v = bpf_map_lookup_elem(&ctl, &k);

	/* No NULL check, and an index the verifier cannot bound. */
	return (int)v[skb->len];
}

SEC("sk_msg")
int msg_verdict(struct sk_msg_md *msg)
{
	return SK_PASS;
}
