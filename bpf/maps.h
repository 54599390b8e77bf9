/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The maps that more than one BPF object uses: rpctls.bpf.o creates them,
 * guard.bpf.o is loaded onto the pinned ones. Include after vmlinux.h,
 * bpf_helpers.h and rpctls/shared.h.
 */
#ifndef RPCTLS_BPF_MAPS_H
#define RPCTLS_BPF_MAPS_H

/* Every connection rpctls tracks, by socket cookie. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, RPCTLS_MAX_CONNS);
	__type(key, __u64);
	__type(value, struct conn);
} conns SEC(".maps");

/* sk_msg cannot ask for a socket's cookie: it finds it here. */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, __u64);
} sk_cookie SEC(".maps");

/* Events to the controller. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, RPCTLS_RINGBUF_BYTES);
} events SEC(".maps");

/* The controller's presence. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ctl_state);
} ctl SEC(".maps");

#endif
