/* SPDX-License-Identifier: MIT */
#include <netinet/in.h>
#include <stdio.h>

#include "filter-compile.h"
#include "util.h"

void filter_set_done(FilterSet *s) {
        s->entries = mfree(s->entries);
        s->n_entries = 0;
        s->n_shapes = 0;
}

size_t port_range_blocks(PortRange r, uint16_t *values, uint16_t *masks, size_t max) {
        uint32_t lo = r.lo, hi = r.hi;
        size_t n = 0;

        while (lo <= hi) {
                uint32_t size = 1;

                /* The largest aligned block that starts at lo and stays within hi. */
                while (size < 65536 && (lo & (size * 2 - 1)) == 0 && lo + size * 2 - 1 <= hi)
                        size *= 2;
                if (n < max) {
                        values[n] = (uint16_t) lo;
                        masks[n] = (uint16_t) (0xffffu & ~(size - 1));
                }
                n++;
                lo += size;
        }
        return n;
}

static void prefix_mask(uint32_t out[4], unsigned prefixlen) {
        uint8_t *o = (uint8_t *) out;

        memset(out, 0, 16);
        for (unsigned b = 0; b < 16 && prefixlen > b * 8; b++) {
                unsigned bits = MIN(prefixlen - b * 8, 8u);

                o[b] = (uint8_t) (0xff << (8 - bits));
        }
}

static uint8_t rule_family(const Filter *f) {
        if (f->has_src)
                return f->src.family;
        if (f->has_dst)
                return f->dst.family;
        if (f->protocol == IPPROTO_ICMP)
                return PS_FAMILY_IPV4;
        if (f->protocol == IPPROTO_ICMPV6)
                return PS_FAMILY_IPV6;
        return 0;
}

static void set_cidr(bool has, const Cidr *c, __u32 key[4], __u32 mask[4]) {
        if (!has)
                return;
        prefix_mask(mask, c->prefixlen);
        for (int i = 0; i < 4; i++)
                key[i] = c->addr[i] & mask[i];
}

/* The mask and key of a rule without its ports. */
static void rule_base(const Filter *f, struct ps_match *key, struct ps_match *mask) {
        uint8_t fam = rule_family(f);

        memset(key, 0, sizeof *key);
        memset(mask, 0, sizeof *mask);
        if (fam) {
                key->family = fam;
                mask->family = 0xff;
        }
        if (f->protocol != PROTO_ANY) {
                key->proto = (uint8_t) f->protocol;
                mask->proto = 0xff;
        }
        if (f->icmp_type != ICMP_ANY) {
                key->icmp_type = f->icmp_type;
                mask->icmp_type = 0xff;
        }
        if (f->icmp_code != ICMP_ANY) {
                key->icmp_code = f->icmp_code;
                mask->icmp_code = 0xff;
        }
        key->tcp_flags = f->tcp_flags & f->tcp_flags_mask;
        mask->tcp_flags = f->tcp_flags_mask;
        if (f->inner_protocol != PROTO_ANY) {
                key->inner_proto = (uint8_t) f->inner_protocol;
                mask->inner_proto = 0xff;
        }
        set_cidr(f->has_src, &f->src, key->src, mask->src);
        set_cidr(f->has_dst, &f->dst, key->dst, mask->dst);
        set_cidr(f->has_inner_src, &f->inner_src, key->inner_src, mask->inner_src);
        set_cidr(f->has_inner_dst, &f->inner_dst, key->inner_dst, mask->inner_dst);
}

bool filter_beats(const Filter *a, const Filter *b) {
        if (a->priority != b->priority)
                return a->priority > b->priority;
        if (a->created_usec != b->created_usec)
                return a->created_usec < b->created_usec;
        return a->id < b->id;
}

static int cmp_rules(const void *x, const void *y) {
        const Filter *a = *(const Filter *const *) x, *b = *(const Filter *const *) y;

        if (a == b)
                return 0;
        return filter_beats(a, b) ? -1 : 1;
}

static int cmp_entries(const void *x, const void *y) {
        const FilterEntry *a = x, *b = y;

        return memcmp(&a->key, &b->key, sizeof a->key);
}

typedef struct PortBlocks {
        size_t n;
        uint16_t v[34], m[34];
} PortBlocks;

/* Ranges up to this many ports become exact ports: a few more entries, but every block size
 * of a split range is a shape of its own, and shapes are what each packet pays for. */
#define PORT_RANGE_EXACT_MAX 32u

static void blocks_of(PortRange r, PortBlocks *b) {
        uint32_t span = (uint32_t) r.hi - r.lo + 1;

        if (span > 1 && span <= PORT_RANGE_EXACT_MAX) {
                for (uint32_t i = 0; i < span; i++) {
                        b->v[i] = (uint16_t) (r.lo + i);
                        b->m[i] = 0xffff;
                }
                b->n = span;
                return;
        }
        b->n = port_range_blocks(r, b->v, b->m, ELEMENTSOF(b->v));
}

int filter_compile(Filter *const *rules, size_t n, FilterSet *ret, char **ret_error) {
        _cleanup_free_ const Filter **order = NULL;
        FilterSet s = {};
        size_t n_enabled = 0, alloc = 0;
        int r = 0;

        order = calloc(n ? n : 1, sizeof(Filter *));
        if (!order)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                if (rules[i]->enabled)
                        order[n_enabled++] = rules[i];
        if (n_enabled > PS_FILTER_MAX_RULES) {
                (void) error_setf(ret_error, 0,
                                  "%zu enabled rules; accepted: at most %u", n_enabled,
                                  PS_FILTER_MAX_RULES);
                return -E2BIG;
        }
        if (n_enabled > 0) /* order may be NULL then, which qsort() must not be given */
                qsort(order, n_enabled, sizeof(Filter *), cmp_rules);

        for (size_t i = 0; i < n_enabled; i++) {
                const Filter *f = order[i];
                uint32_t rank = (uint32_t) (n_enabled - i); /* the first in order ranks highest */
                struct ps_match key, mask;
                PortBlocks sp, dp, isp, idp;
                size_t product;

                rule_base(f, &key, &mask);
                blocks_of(f->src_port, &sp);
                blocks_of(f->dst_port, &dp);
                blocks_of(f->inner_src_port, &isp);
                blocks_of(f->inner_dst_port, &idp);
                product = sp.n * dp.n * isp.n * idp.n;
                if (product > FILTER_ENTRIES_PER_RULE_MAX) {
                        (void) error_setf(ret_error, 0,
                                          "rule %u: its port ranges split into %zu entries; "
                                          "accepted: at most %u (narrow or align the ranges)", f->id,
                                          product, FILTER_ENTRIES_PER_RULE_MAX);
                        r = -E2BIG;
                        goto fail;
                }
                for (size_t a = 0; a < sp.n; a++)
                for (size_t b = 0; b < dp.n; b++)
                for (size_t c = 0; c < isp.n; c++)
                for (size_t d = 0; d < idp.n; d++) {
                        struct ps_match k = key, m = mask;
                        uint32_t shape;
                        FilterEntry *e;

                        m.sport = sp.m[a];
                        k.sport = sp.v[a] & sp.m[a];
                        m.dport = dp.m[b];
                        k.dport = dp.v[b] & dp.m[b];
                        m.inner_sport = isp.m[c];
                        k.inner_sport = isp.v[c] & isp.m[c];
                        m.inner_dport = idp.m[d];
                        k.inner_dport = idp.v[d] & idp.m[d];

                        for (shape = 0; shape < s.n_shapes; shape++)
                                if (memcmp(&s.masks[shape], &m, sizeof m) == 0)
                                        break;
                        if (shape == s.n_shapes) {
                                if (s.n_shapes == PS_FILTER_MAX_SHAPES) {
                                        (void) error_setf(ret_error, 0,
                                                          "rule %u needs one more distinct rule "
                                                          "shape (a combination of prefix lengths, wildcard "
                                                          "fields and port blocks) than the %u a rule set "
                                                          "may have", f->id, PS_FILTER_MAX_SHAPES);
                                        r = -E2BIG;
                                        goto fail;
                                }
                                s.masks[s.n_shapes++] = m;
                        }
                        if (s.n_entries == alloc) {
                                FilterEntry *ne;

                                alloc = alloc ? alloc * 2 : 1024;
                                ne = realloc(s.entries, alloc * sizeof(FilterEntry));
                                if (!ne) {
                                        r = -ENOMEM;
                                        goto fail;
                                }
                                s.entries = ne;
                        }
                        e = &s.entries[s.n_entries++];
                        memset(e, 0, sizeof *e);
                        e->key.shape = shape;
                        e->key.match = k;
                        if (f->action == FILTER_COUNT) {
                                e->value.count_rank = rank;
                                e->value.count_slot = f->slot;
                        } else {
                                e->value.rank = rank;
                                e->value.slot = f->slot;
                                e->value.action = f->action;
                        }
                }
        }

        /* Rules that share a (shape, key) become one entry holding the best of each kind. */
        if (s.n_entries > 0)
                qsort(s.entries, s.n_entries, sizeof(FilterEntry), cmp_entries);
        {
                size_t out = 0;

                for (size_t i = 0; i < s.n_entries; i++) {
                        FilterEntry *e = &s.entries[i];

                        if (out > 0 && cmp_entries(&s.entries[out - 1], e) == 0) {
                                FilterEntry *t = &s.entries[out - 1];

                                if (e->value.rank > t->value.rank) {
                                        t->value.rank = e->value.rank;
                                        t->value.slot = e->value.slot;
                                        t->value.action = e->value.action;
                                }
                                if (e->value.count_rank > t->value.count_rank) {
                                        t->value.count_rank = e->value.count_rank;
                                        t->value.count_slot = e->value.count_slot;
                                }
                                continue;
                        }
                        s.entries[out++] = *e;
                }
                s.n_entries = out;
        }
        if (s.n_entries > PS_FILTER_MAX_ENTRIES) {
                (void) error_setf(ret_error, 0,
                                  "the rule set compiles to %zu classifier entries; accepted: at "
                                  "most %u (fewer port ranges help)", s.n_entries, PS_FILTER_MAX_ENTRIES);
                r = -E2BIG;
                goto fail;
        }
        s.n_rules = n_enabled;
        *ret = s;
        return 0;
fail:
        filter_set_done(&s);
        return r;
}

static bool in_range(PortRange r, uint16_t p) {
        return p >= r.lo && p <= r.hi;
}

static bool cidr_ok(bool has, const Cidr *c, uint8_t family, const __u32 addr[4]) {
        uint32_t a[4];

        if (!has)
                return true;
        memcpy(a, addr, sizeof a);
        return cidr_contains(c, family, a);
}

bool filter_match(const Filter *f, const struct ps_match *p) {
        uint8_t fam = rule_family(f);

        if (!f->enabled)
                return false;
        if (fam && p->family != fam)
                return false;
        if (f->protocol != PROTO_ANY && p->proto != f->protocol)
                return false;
        if (!cidr_ok(f->has_src, &f->src, p->family, p->src) ||
            !cidr_ok(f->has_dst, &f->dst, p->family, p->dst))
                return false;
        if (!in_range(f->src_port, p->sport) || !in_range(f->dst_port, p->dport))
                return false;
        if ((p->tcp_flags & f->tcp_flags_mask) != (f->tcp_flags & f->tcp_flags_mask))
                return false;
        if (f->icmp_type != ICMP_ANY && p->icmp_type != f->icmp_type)
                return false;
        if (f->icmp_code != ICMP_ANY && p->icmp_code != f->icmp_code)
                return false;
        if (f->inner_protocol != PROTO_ANY && p->inner_proto != f->inner_protocol)
                return false;
        /* The inner addresses are of the quoted packet's family, which is the outer one. */
        if (!cidr_ok(f->has_inner_src, &f->inner_src, p->family, p->inner_src) ||
            !cidr_ok(f->has_inner_dst, &f->inner_dst, p->family, p->inner_dst))
                return false;
        if (!in_range(f->inner_src_port, p->inner_sport) || !in_range(f->inner_dst_port, p->inner_dport))
                return false;
        return true;
}

void filter_classify_reference(Filter *const *rules, size_t n, const struct ps_match *pkt,
                               const Filter **ret_decider, const Filter **ret_count) {
        const Filter *best = NULL, *count = NULL;

        for (size_t i = 0; i < n; i++) {
                const Filter *f = rules[i];

                if (!filter_match(f, pkt))
                        continue;
                if (f->action == FILTER_COUNT) {
                        if (!count || filter_beats(f, count))
                                count = f;
                } else if (!best || filter_beats(f, best))
                        best = f;
        }
        /* A count rule only counts the packets it would have decided. */
        if (count && best && filter_beats(best, count))
                count = NULL;
        *ret_decider = best;
        *ret_count = count;
}
