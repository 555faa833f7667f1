// SPDX-License-Identifier: GPL-2.0-only OR MIT
/*
 * The floor of the XDP benchmark: the least a program that keeps a counter can do per packet.
 * bench-xdp measures it in the same run as the guard, so the guard's figures read as "so many
 * times the floor" on the machine at hand rather than against numbers from elsewhere.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
        __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
        __uint(max_entries, 1);
        __type(key, __u32);
        __type(value, __u64);
} bare_packets SEC(".maps");

SEC("xdp")
int xdp_bare(struct xdp_md *ctx)
{
        __u32 zero = 0;
        __u64 *n = bpf_map_lookup_elem(&bare_packets, &zero);

        if (n)
                (*n)++;
        return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
