// SPDX-License-Identifier: GPL-2.0-only OR MIT
/*
 * The floor of a connection-tracking guard: the least an XDP program can do to keep one entry
 * per flow. It parses Ethernet, IPv4 or IPv6 (no options, no extension headers, no VLAN) and the
 * TCP/UDP ports, and does one update of a per-CPU LRU hash keyed like the guard's flows: packets,
 * bytes and the last-seen time from the coarse clock, read once per jiffy as the guard reads it
 * (bpf/clock.bpf.h), with plain additions (the per-CPU values need no atomics). No classification, no counters, no ICMP table. bench-xdp measures it in the
 * same run as the guard: "guard ÷ flow floor" is what the guard's extra work costs.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "clock.bpf.h"
#include "flowmin.h"

struct {
        __uint(type, BPF_MAP_TYPE_LRU_PERCPU_HASH);
        __uint(max_entries, 1048576);
        __type(key, struct flowmin_key);
        __type(value, struct flowmin_value);
} flowmin_flows SEC(".maps");

SEC("xdp")
int xdp_flowmin(struct xdp_md *ctx)
{
        void *data = (void *) (long) ctx->data;
        void *end = (void *) (long) ctx->data_end;
        struct ethhdr *eth = data;
        struct flowmin_key key = {};
        struct flowmin_value *v;
        void *l4;

        if ((void *) (eth + 1) > end)
                return XDP_PASS;
        if (eth->h_proto == bpf_htons(ETH_P_IP)) {
                struct iphdr *ip = (void *) (eth + 1);

                if ((void *) (ip + 1) > end)
                        return XDP_PASS;
                key.family = FLOWMIN_IPV4;
                key.proto = ip->protocol;
                key.src[0] = ip->saddr;
                key.dst[0] = ip->daddr;
                l4 = ip + 1;
        } else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
                struct ipv6hdr *ip6 = (void *) (eth + 1);

                if ((void *) (ip6 + 1) > end)
                        return XDP_PASS;
                key.family = FLOWMIN_IPV6;
                key.proto = ip6->nexthdr;
                __builtin_memcpy(key.src, &ip6->saddr, 16);
                __builtin_memcpy(key.dst, &ip6->daddr, 16);
                l4 = ip6 + 1;
        } else
                return XDP_PASS;
        if (key.proto == IPPROTO_TCP || key.proto == IPPROTO_UDP) {
                /* Both headers start with the two ports. */
                struct udphdr *ports = l4;

                if ((void *) (ports + 1) > end)
                        return XDP_PASS;
                key.sport = bpf_ntohs(ports->source);
                key.dport = bpf_ntohs(ports->dest);
        }

        v = bpf_map_lookup_elem(&flowmin_flows, &key);
        if (v) {
                v->packets++;
                v->bytes += (__u64) (end - data);
                v->last_seen = coarse_now();
        } else {
                struct flowmin_value nv = {
                        .packets = 1,
                        .bytes = (__u64) (end - data),
                };

                nv.first_seen = nv.last_seen = coarse_now();
                bpf_map_update_elem(&flowmin_flows, &key, &nv, BPF_ANY);
        }
        return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
