/* SPDX-License-Identifier: GPL-2.0-only OR MIT */
/* The flow floor's key and value (bench/flowmin.bpf.c), shared with bench-xdp which fills it. */
#ifndef FLOWMIN_H
#define FLOWMIN_H

#include <linux/types.h>

#define FLOWMIN_IPV4 4
#define FLOWMIN_IPV6 6

/* Addresses in network order, ports in host order, as the guard keeps them. */
struct flowmin_key {
        __u8 family;
        __u8 proto;
        __u16 sport;
        __u16 dport;
        __u16 pad;
        __u32 src[4];
        __u32 dst[4];
};

struct flowmin_value {
        __u64 packets;
        __u64 bytes;
        __u64 first_seen;
        __u64 last_seen;
};

#endif
