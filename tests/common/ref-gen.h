/* SPDX-License-Identifier: MIT */
/*
 * Random rule sets and packets for the classifier tests, built on the plain reference types.
 * The values come from small pools so that rules and packets meet often: remote addresses
 * 10.0.X.Y and 2001:db8:X::Y, local ones 192.0.2.1-2 and 2001:db8:ff::1-2, ports near 20
 * and 1024. Every field of a rule is drawn: both families, prefixes of many lengths, port
 * ranges narrow and wide, protocols by name and number, TCP flags and masks, ICMP and ICMPv6
 * types and codes, the quoted datagram's fields, the three actions, priorities and ties.
 */
#pragma once

#include "ref-match.h"

struct ref_rng {
        uint64_t s;
};

static inline uint32_t ref_rnd(struct ref_rng *g, uint32_t n) {
        /* xorshift64*: fixed across libcs, so a failing seed reproduces anywhere */
        g->s ^= g->s >> 12;
        g->s ^= g->s << 25;
        g->s ^= g->s >> 27;
        return (uint32_t) ((g->s * 2685821657736338717ull) >> 33) % n;
}

static inline void ref_remote(struct ref_rng *g, int family, uint8_t a[16]) {
        memset(a, 0, 16);
        if (family == 4) {
                a[0] = 10;
                a[2] = (uint8_t) ref_rnd(g, 4);
                a[3] = (uint8_t) ref_rnd(g, 4);
        } else {
                a[0] = 0x20, a[1] = 0x01, a[2] = 0x0d, a[3] = 0xb8;
                a[5] = (uint8_t) ref_rnd(g, 4);
                a[15] = (uint8_t) ref_rnd(g, 4);
        }
}

static inline void ref_local(struct ref_rng *g, int family, uint8_t a[16]) {
        memset(a, 0, 16);
        if (family == 4) {
                a[0] = 192, a[2] = 2, a[3] = (uint8_t) (1 + ref_rnd(g, 2));
        } else {
                a[0] = 0x20, a[1] = 0x01, a[2] = 0x0d, a[3] = 0xb8, a[5] = 0xff;
                a[15] = (uint8_t) (1 + ref_rnd(g, 2));
        }
}

static inline void ref_mask_prefix(struct ref_prefix *p) {
        for (int bit = p->len; bit < 128; bit++)
                p->b[bit / 8] &= (uint8_t) ~(0x80 >> (bit % 8));
}

static inline void ref_random_prefix(struct ref_rng *g, struct ref_prefix *p, int family,
                                     bool remote) {
        static const int v4_remote[] = { 8, 16, 24, 28, 30, 31, 32 };
        static const int v6_remote[] = { 32, 40, 48, 64, 120, 126, 127, 128 };
        static const int v4_local[] = { 24, 31, 32 };
        static const int v6_local[] = { 64, 127, 128 };

        p->set = true;
        p->family = family;
        if (remote) {
                ref_remote(g, family, p->b);
                p->len = family == 4 ? v4_remote[ref_rnd(g, 7)] : v6_remote[ref_rnd(g, 8)];
        } else {
                ref_local(g, family, p->b);
                p->len = family == 4 ? v4_local[ref_rnd(g, 3)] : v6_local[ref_rnd(g, 3)];
        }
        ref_mask_prefix(p);
}

static inline struct ref_ports ref_random_ports(struct ref_rng *g, int base, int spread) {
        int lo = base + (int) ref_rnd(g, (uint32_t) spread);

        switch (ref_rnd(g, 6)) {
        case 0: /* a range wider than 32 ports: split into aligned blocks */
                return (struct ref_ports) { lo, lo + 33 + (int) ref_rnd(g, 100) };
        case 1:
        case 2:
                return (struct ref_ports) { lo, lo + (int) ref_rnd(g, 6) };
        default:
                return (struct ref_ports) { lo, lo };
        }
}

static inline bool ref_icmp_error(int family, int type) {
        return family == 4 ? (type == 3 || type == 4 || type == 5 || type == 11 || type == 12)
                           : (type >= 1 && type <= 4);
}

static inline void ref_random_rule(struct ref_rng *g, struct ref_rule *r, uint32_t id) {
        static const int protos[] = { REF_ANY, REF_ANY, 6, 6, 17, 17, 1, 58, 132, 136, 47 };
        static const int v4_types[] = { 3, 8, 0, 11 }, v6_types[] = { 1, 128, 129, 3 };
        static const int masks[] = { 0x02, 0x12, 0x10, 0x05 };
        int family = (int) ref_rnd(g, 3); /* 0: no address */

        ref_rule_init(r, id);
        family = family == 0 ? 0 : family == 1 ? 4 : 6;
        r->created = 1000 * (1 + ref_rnd(g, 3)); /* equal ages are common: the id breaks ties */
        r->priority = (int) ref_rnd(g, 4) - 1;
        r->action = (enum ref_action) (1 + ref_rnd(g, 3));
        r->enabled = ref_rnd(g, 10) != 0;
        r->protocol = protos[ref_rnd(g, 11)];
        if (r->protocol == 1)
                family = family ? 4 : 0;
        if (r->protocol == 58)
                family = family ? 6 : 0;
        if (family && ref_rnd(g, 4) != 0)
                ref_random_prefix(g, &r->src, family, true);
        if (family && (!r->src.set || ref_rnd(g, 3) == 0))
                ref_random_prefix(g, &r->dst, family, false);
        if (ref_has_ports(r->protocol)) {
                if (ref_rnd(g, 3) == 0)
                        r->sport = ref_random_ports(g, 1020, 8);
                if (ref_rnd(g, 2) == 0)
                        r->dport = ref_random_ports(g, 18, 20);
        }
        if (r->protocol == 6 && ref_rnd(g, 3) == 0) {
                r->tcp_mask = masks[ref_rnd(g, 4)];
                r->tcp_flags = r->tcp_mask & (int) ref_rnd(g, 256);
        }
        if (r->protocol == 1 || r->protocol == 58) {
                int fam = r->protocol == 1 ? 4 : 6;

                if (ref_rnd(g, 2))
                        r->icmp_type = fam == 4 ? v4_types[ref_rnd(g, 4)] : v6_types[ref_rnd(g, 4)];
                if (ref_rnd(g, 3) == 0)
                        r->icmp_code = (int) ref_rnd(g, 4);
                if ((r->icmp_type == REF_ICMP_ANY || ref_icmp_error(fam, r->icmp_type)) &&
                    ref_rnd(g, 2)) {
                        if (ref_rnd(g, 3) != 0)
                                r->inner_protocol = ref_rnd(g, 2) ? 6 : 17;
                        /* the quoted datagram went out: from a local address to a remote one */
                        if (ref_rnd(g, 3) == 0)
                                ref_random_prefix(g, &r->inner_src, fam, false);
                        if (ref_rnd(g, 3) == 0)
                                ref_random_prefix(g, &r->inner_dst, fam, true);
                        if (r->inner_protocol != REF_ANY && ref_rnd(g, 2))
                                r->inner_dport = ref_random_ports(g, 50, 10);
                        if (r->inner_protocol != REF_ANY && ref_rnd(g, 4) == 0)
                                r->inner_sport = (struct ref_ports) { 33000, 33000 };
                        if (!ref_sets_inner(r))
                                r->inner_protocol = 17;
                }
        }
        if (r->protocol == 6 && ref_rnd(g, 2))
                r->rule_type = "tcp";
        else if (r->protocol == 17 && ref_rnd(g, 2))
                r->rule_type = "udp";
        else if ((r->protocol == 1 || r->protocol == 58) && ref_rnd(g, 2))
                r->rule_type = "icmp";
        else if (ref_rnd(g, 4) == 0)
                r->rule_type = "basic";
}

static inline void ref_random_pkt(struct ref_rng *g, struct ref_pkt *p) {
        static const int protos[] = { 6, 6, 17, 17, 1, 1, 132, 136, 47 };
        static const int v4_types[] = { 3, 8, 0, 11 }, v6_types[] = { 1, 128, 129, 3 };
        static const int flags[] = { 0x02, 0x12, 0x10, 0x11, 0x04, 0x18, 0x05 };

        memset(p, 0, sizeof *p);
        p->family = ref_rnd(g, 2) ? 4 : 6;
        ref_remote(g, p->family, p->src);
        ref_local(g, p->family, p->dst);
        p->proto = protos[ref_rnd(g, 9)];
        if (p->proto == 1 && p->family == 6)
                p->proto = 58;
        if (ref_has_ports(p->proto)) {
                p->sport = 1016 + (int) ref_rnd(g, 16);
                p->dport = ref_rnd(g, 4) ? 16 + (int) ref_rnd(g, 26) : (int) ref_rnd(g, 200) + 1;
        }
        if (p->proto == 6)
                p->tcp_flags = flags[ref_rnd(g, 7)];
        if (p->proto == 1 || p->proto == 58) {
                p->icmp_type = p->family == 4 ? v4_types[ref_rnd(g, 4)] : v6_types[ref_rnd(g, 4)];
                p->icmp_code = (int) ref_rnd(g, 4);
                if (ref_icmp_error(p->family, p->icmp_type)) {
                        p->quotes = true;
                        p->inner_proto = ref_rnd(g, 2) ? 6 : 17;
                        memcpy(p->inner_src, p->dst, 16);
                        memcpy(p->inner_dst, p->src, 16);
                        if (ref_rnd(g, 3) == 0)
                                ref_remote(g, p->family, p->inner_dst);
                        p->inner_sport = ref_rnd(g, 2) ? 33000 : 33001;
                        p->inner_dport = 48 + (int) ref_rnd(g, 16);
                }
        }
}
