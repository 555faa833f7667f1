/* SPDX-License-Identifier: MIT */
/* Builds the frame that carries a given classifier tuple, for the filter tests and the bench. */
#pragma once

#include <arpa/inet.h>
#include <linux/icmp.h>
#include <linux/icmpv6.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <netinet/in.h>
#include <string.h>

#include "guard-abi.h"
#include "filter-abi.h"
#include "../common/ref-match.h"

static inline size_t put_l4(uint8_t *p, uint8_t proto, uint16_t sport, uint16_t dport,
                            uint8_t tcp_flags) {
        if (proto == IPPROTO_TCP) {
                struct tcphdr *t = (struct tcphdr *) p;

                memset(t, 0, sizeof *t);
                t->source = htons(sport);
                t->dest = htons(dport);
                t->doff = 5;
                p[13] = tcp_flags;
                t->window = htons(1024);
                return sizeof *t;
        }
        if (proto == IPPROTO_UDP) {
                struct udphdr *u = (struct udphdr *) p;

                u->source = htons(sport);
                u->dest = htons(dport);
                u->len = htons(8 + 8);
                u->check = 0;
                memset(p + 8, 0, 8);
                return 16;
        }
        if (proto == IPPROTO_SCTP || proto == IPPROTO_UDPLITE) {
                /* both start with the two ports, as UDP does */
                memset(p, 0, 16);
                p[0] = (uint8_t) (sport >> 8), p[1] = (uint8_t) sport;
                p[2] = (uint8_t) (dport >> 8), p[3] = (uint8_t) dport;
                if (proto == IPPROTO_UDPLITE)
                        p[5] = 8; /* checksum coverage: the header */
                return 16;
        }
        memset(p, 0, 8); /* other protocols: some payload */
        return 8;
}

static inline size_t put_ip(uint8_t *p, uint8_t family, uint8_t proto, const __u32 *src,
                            const __u32 *dst, size_t l4_len) {
        if (family == PS_FAMILY_IPV4) {
                struct iphdr *ip = (struct iphdr *) p;

                memset(ip, 0, sizeof *ip);
                ip->version = 4;
                ip->ihl = 5;
                ip->ttl = 64;
                ip->protocol = proto;
                ip->tot_len = htons((uint16_t) (sizeof *ip + l4_len));
                ip->saddr = src[0];
                ip->daddr = dst[0];
                return sizeof *ip;
        } else {
                struct ipv6hdr *ip6 = (struct ipv6hdr *) p;

                memset(ip6, 0, sizeof *ip6);
                ip6->version = 6;
                ip6->nexthdr = proto;
                ip6->hop_limit = 64;
                ip6->payload_len = htons((uint16_t) l4_len);
                memcpy(&ip6->saddr, src, 16);
                memcpy(&ip6->daddr, dst, 16);
                return sizeof *ip6;
        }
}

/* Returns the frame length. buf needs 256 bytes. */
static inline size_t build_frame(uint8_t *buf, const struct ps_match *m) {
        struct ethhdr *eth = (struct ethhdr *) buf;
        uint8_t l4[160];
        size_t l4_len, off = sizeof *eth;

        memset(eth, 0, sizeof *eth);
        eth->h_dest[0] = 0x02;
        eth->h_source[0] = 0x02;
        eth->h_source[5] = 1;
        eth->h_proto = htons(m->family == PS_FAMILY_IPV4 ? ETH_P_IP : ETH_P_IPV6);

        if (m->proto == IPPROTO_ICMP || m->proto == IPPROTO_ICMPV6) {
                size_t inner = 0;

                memset(l4, 0, sizeof l4);
                l4[0] = m->icmp_type;
                l4[1] = m->icmp_code;
                if (m->inner_proto) {
                        /* The quoted packet: an IP header and the first bytes of its L4. */
                        uint8_t q[64];
                        size_t ql4 = put_l4(q, m->inner_proto, m->inner_sport, m->inner_dport, 0x02);

                        inner = put_ip(l4 + 8, m->family, m->inner_proto, m->inner_src,
                                       m->inner_dst, ql4);
                        memcpy(l4 + 8 + inner, q, 8);
                        inner += 8;
                }
                l4_len = 8 + (inner ? inner : 8);
        } else
                l4_len = put_l4(l4, m->proto, m->sport, m->dport, m->tcp_flags);

        off += put_ip(buf + off, m->family, m->proto, m->src, m->dst, l4_len);
        memcpy(buf + off, l4, l4_len);
        return off + l4_len;
}

/* The reference packet as the tuple build_frame() puts on the wire. */
static inline struct ps_match ref_to_match(const struct ref_pkt *p) {
        struct ps_match m;

        memset(&m, 0, sizeof m);
        m.family = p->family == 4 ? PS_FAMILY_IPV4 : PS_FAMILY_IPV6;
        m.proto = (uint8_t) p->proto;
        memcpy(m.src, p->src, 16);
        memcpy(m.dst, p->dst, 16);
        m.sport = (uint16_t) p->sport;
        m.dport = (uint16_t) p->dport;
        m.tcp_flags = (uint8_t) p->tcp_flags;
        m.icmp_type = (uint8_t) p->icmp_type;
        m.icmp_code = (uint8_t) p->icmp_code;
        if (p->quotes) {
                m.inner_proto = (uint8_t) p->inner_proto;
                memcpy(m.inner_src, p->inner_src, 16);
                memcpy(m.inner_dst, p->inner_dst, 16);
                m.inner_sport = (uint16_t) p->inner_sport;
                m.inner_dport = (uint16_t) p->inner_dport;
        }
        return m;
}
