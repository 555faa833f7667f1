/* SPDX-License-Identifier: MIT */
/*
 * A second, deliberately plain reading of "How rules decide" in org.packetscope.Guarder1(5),
 * written from the manual's words and sharing nothing with the daemon: its own rule and packet
 * types, its own matcher and order, and its own rendering of a rule as the documented JSON.
 * The tests check the daemon's parser, compiler and the kernel classifier against it.
 */
#pragma once

#include <arpa/inet.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REF_ANY (-1)      /* protocol or inner protocol: any */
#define REF_ICMP_ANY 255  /* icmp_type / icmp_code: any */

enum ref_action { REF_DROP = 1, REF_PASS = 2, REF_COUNT = 3 };

struct ref_prefix {
        bool set;
        int family;      /* 4 or 6 */
        uint8_t b[16];   /* network order; IPv4 in the first 4 bytes */
        int len;
};

struct ref_ports {
        int lo, hi;      /* 0-65535: any */
};

struct ref_rule {
        uint32_t id;
        uint64_t created; /* microseconds; smaller is older */
        int priority;
        enum ref_action action;
        bool enabled;
        int protocol;     /* REF_ANY or 0-255 */
        struct ref_prefix src, dst;
        struct ref_ports sport, dport;
        int tcp_flags, tcp_mask;
        int icmp_type, icmp_code;
        int inner_protocol;
        struct ref_prefix inner_src, inner_dst;
        struct ref_ports inner_sport, inner_dport;
        const char *rule_type; /* NULL: leave it out of the JSON */
};

struct ref_pkt {
        int family;       /* 4 or 6 */
        uint8_t src[16], dst[16];
        int proto;
        int sport, dport; /* TCP, UDP, SCTP, UDP-Lite */
        int tcp_flags;
        int icmp_type, icmp_code;
        bool quotes;      /* an ICMP error with a quoted datagram */
        int inner_proto;
        uint8_t inner_src[16], inner_dst[16];
        int inner_sport, inner_dport;
};

/*
 * The matcher. Every test of the classifier compares with this; each comment quotes the
 * sentence of the manual it implements.
 */
static inline void ref_rule_init(struct ref_rule *r, uint32_t id) {
        memset(r, 0, sizeof *r);
        r->id = id;
        r->action = REF_DROP;
        r->enabled = true;
        r->protocol = REF_ANY;
        r->sport = r->dport = r->inner_sport = r->inner_dport = (struct ref_ports) { 0, 65535 };
        r->icmp_type = r->icmp_code = REF_ICMP_ANY;
        r->inner_protocol = REF_ANY;
}

static inline void ref_addr(int family, uint8_t out[16], const char *s) {
        memset(out, 0, 16);
        if (inet_pton(family == 4 ? AF_INET : AF_INET6, s, out) != 1)
                abort();
}

static inline void ref_prefix(struct ref_prefix *p, const char *s) {
        char a[64];
        const char *slash = strchr(s, '/');
        size_t n = slash ? (size_t) (slash - s) : strlen(s);

        if (n >= sizeof a)
                abort();
        memcpy(a, s, n);
        a[n] = 0;
        p->set = true;
        p->family = strchr(a, ':') ? 6 : 4;
        ref_addr(p->family, p->b, a);
        p->len = slash ? atoi(slash + 1) : (p->family == 4 ? 32 : 128);
}

/* "every field it sets matches": a prefix matches the addresses whose first len bits are its. */
static inline bool ref_prefix_has(const struct ref_prefix *p, int family, const uint8_t a[16]) {
        if (!p->set)
                return true;
        if (p->family != family)
                return false;
        for (int bit = 0; bit < p->len; bit++) {
                int m = 0x80 >> (bit % 8);

                if ((p->b[bit / 8] & m) != (a[bit / 8] & m))
                        return false;
        }
        return true;
}

static inline bool ref_ports_any(struct ref_ports r) {
        return r.lo == 0 && r.hi == 65535;
}

static inline bool ref_ports_have(struct ref_ports r, int port) {
        return port >= r.lo && port <= r.hi;
}

static inline bool ref_has_ports(int proto) {
        return proto == 6 || proto == 17 || proto == 132 || proto == 136;
}

static inline bool ref_sets_inner(const struct ref_rule *r) {
        return r->inner_protocol != REF_ANY || r->inner_src.set || r->inner_dst.set ||
               !ref_ports_any(r->inner_sport) || !ref_ports_any(r->inner_dport);
}

static inline bool ref_match(const struct ref_rule *r, const struct ref_pkt *p) {
        /* "icmp implies IPv4 and icmpv6 IPv6" */
        if (r->protocol == 1 && p->family != 4)
                return false;
        if (r->protocol == 58 && p->family != 6)
                return false;
        if (r->protocol != REF_ANY && r->protocol != p->proto)
                return false;
        /* "Both must be of one family, which the rule then matches only." */
        if (!ref_prefix_has(&r->src, p->family, p->src) || !ref_prefix_has(&r->dst, p->family, p->dst))
                return false;
        if (!ref_ports_any(r->sport) || !ref_ports_any(r->dport)) {
                if (!ref_has_ports(p->proto) || !ref_ports_have(r->sport, p->sport) ||
                    !ref_ports_have(r->dport, p->dport))
                        return false;
        }
        if (r->tcp_mask) {
                if (p->proto != 6 || (p->tcp_flags & r->tcp_mask) != r->tcp_flags)
                        return false;
        }
        if (r->icmp_type != REF_ICMP_ANY || r->icmp_code != REF_ICMP_ANY) {
                bool icmp = (p->family == 4 && p->proto == 1) || (p->family == 6 && p->proto == 58);

                if (!icmp)
                        return false;
                if (r->icmp_type != REF_ICMP_ANY && r->icmp_type != p->icmp_type)
                        return false;
                if (r->icmp_code != REF_ICMP_ANY && r->icmp_code != p->icmp_code)
                        return false;
        }
        /* The inner fields describe "the datagram an ICMP error quotes": a message that
         * quotes nothing has no such datagram, so a rule that sets one does not match it. */
        if (ref_sets_inner(r)) {
                if (!p->quotes)
                        return false;
                if (r->inner_protocol != REF_ANY && r->inner_protocol != p->inner_proto)
                        return false;
                if (!ref_prefix_has(&r->inner_src, p->family, p->inner_src) ||
                    !ref_prefix_has(&r->inner_dst, p->family, p->inner_dst))
                        return false;
                if (!ref_ports_any(r->inner_sport) || !ref_ports_any(r->inner_dport)) {
                        if (!ref_has_ports(p->inner_proto) || !ref_ports_have(r->inner_sport, p->inner_sport) ||
                            !ref_ports_have(r->inner_dport, p->inner_dport))
                                return false;
                }
        }
        return true;
}

static inline bool ref_beats(const struct ref_rule *a, const struct ref_rule *b) {
        if (a->priority != b->priority)
                return a->priority > b->priority;
        if (a->created != b->created)
                return a->created < b->created;
        return a->id < b->id;
}

static inline void ref_classify(const struct ref_rule *rules, size_t n, const struct ref_pkt *p,
                  const struct ref_rule **ret_decider, const struct ref_rule **ret_count) {
        const struct ref_rule *d = NULL, *c = NULL;

        for (size_t i = 0; i < n; i++) {
                const struct ref_rule *r = &rules[i];

                if (!r->enabled || !ref_match(r, p))
                        continue;
                if (r->action == REF_COUNT) {
                        if (!c || ref_beats(r, c))
                                c = r;
                } else if (!d || ref_beats(r, d))
                        d = r;
        }
        /* "it counts the packets it would have decided, those that no better deciding rule
         * took" */
        if (c && d && ref_beats(d, c))
                c = NULL;
        *ret_decider = d;
        *ret_count = c;
}

static inline bool ref_drops(const struct ref_rule *rules, size_t n, const struct ref_pkt *p) {
        const struct ref_rule *d, *c;

        ref_classify(rules, n, p, &d, &c);
        return d && d->action == REF_DROP;
}

static inline const char *ref_proto_text(int proto, char buf[16]) {
        switch (proto) {
        case REF_ANY: return "\"any\"";
        case 6: return "\"tcp\"";
        case 17: return "\"udp\"";
        case 1: return "\"icmp\"";
        case 58: return "\"icmpv6\"";
        case 132: return "\"sctp\"";
        case 136: return "\"udplite\"";
        case 47: return "\"gre\"";
        default:
                snprintf(buf, 16, "%d", proto);
                return buf;
        }
}

static inline const char *ref_prefix_text(const struct ref_prefix *p, char buf[80]) {
        char a[64];

        if (!p->set)
                return "\"\"";
        inet_ntop(p->family == 4 ? AF_INET : AF_INET6, p->b, a, sizeof a);
        snprintf(buf, 80, "\"%s/%d\"", a, p->len);
        return buf;
}

static inline const char *ref_ports_text(struct ref_ports r, char buf[24]) {
        if (ref_ports_any(r))
                return "\"any\"";
        if (r.lo == r.hi)
                snprintf(buf, 24, "%d", r.lo);
        else
                snprintf(buf, 24, "\"%d-%d\"", r.lo, r.hi);
        return buf;
}

static inline size_t ref_rule_json(const struct ref_rule *r, char *buf, size_t size) {
        static const char *const actions[] = { "", "drop", "pass", "count" };
        char p1[16], p2[16], a1[80], a2[80], a3[80], a4[80], s1[24], s2[24], s3[24], s4[24];
        char rt[40] = "";
        int n;

        if (r->rule_type)
                snprintf(rt, sizeof rt, "\"rule_type\": \"%s\", ", r->rule_type);
        n = snprintf(buf, size,
                     "{%s\"id\": %u, \"created\": %llu, \"priority\": %d, \"action\": \"%s\", "
                     "\"enabled\": %s, \"protocol\": %s, \"src_ip\": %s, \"dst_ip\": %s, "
                     "\"src_port\": %s, \"dst_port\": %s, \"tcp_flags\": %d, "
                     "\"tcp_flags_mask\": %d, \"icmp_type\": %d, \"icmp_code\": %d, "
                     "\"inner_protocol\": %s, \"inner_src_ip\": %s, \"inner_dst_ip\": %s, "
                     "\"inner_src_port\": %s, \"inner_dst_port\": %s}",
                     rt, r->id, (unsigned long long) r->created, r->priority, actions[r->action],
                     r->enabled ? "true" : "false", ref_proto_text(r->protocol, p1),
                     ref_prefix_text(&r->src, a1), ref_prefix_text(&r->dst, a2),
                     ref_ports_text(r->sport, s1), ref_ports_text(r->dport, s2), r->tcp_flags,
                     r->tcp_mask, r->icmp_type, r->icmp_code,
                     ref_proto_text(r->inner_protocol, p2), ref_prefix_text(&r->inner_src, a3),
                     ref_prefix_text(&r->inner_dst, a4), ref_ports_text(r->inner_sport, s3),
                     ref_ports_text(r->inner_dport, s4));
        if (n < 0 || (size_t) n >= size)
                abort();
        return (size_t) n;
}
