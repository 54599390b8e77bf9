/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* Fixed-width types and the inline marker, the same in BPF and userland. */
#ifndef RPCTLS_TYPES_H
#define RPCTLS_TYPES_H

#if defined(__bpf__)
/* vmlinux.h and bpf_helpers.h are included by the BPF source first. */
#define RPCTLS_INLINE static __always_inline
#else
#include <linux/types.h>
#include <stdbool.h>
#define RPCTLS_INLINE static inline __attribute__((always_inline))
#endif

#endif
