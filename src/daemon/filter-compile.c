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

/* Ranges up to PORT_RANGE_EXACT_MAX ports always become exact ports, up to
 * PORT_RANGE_WIDE_MAX in a set whose entries stay within WIDE_ENTRIES_MAX ("wide"). */
#define PORT_RANGE_EXACT_MAX 32u
#define PORT_RANGE_WIDE_MAX 1024u
#define WIDE_ENTRIES_MAX (PS_FILTER_MAX_ENTRIES / 2)

typedef struct PortBlocks {
        size_t n;
        uint16_t v[PORT_RANGE_WIDE_MAX], m[PORT_RANGE_WIDE_MAX];
} PortBlocks;

/* Ranges up to `exact_max` ports become exact ports: more entries, but every block size of a
 * split range is a shape of its own, and shapes are what each packet pays for. */
static void blocks_of(PortRange r, uint32_t exact_max, PortBlocks *b) {
        uint32_t span = (uint32_t) r.hi - r.lo + 1;

        if (span > 1 && span <= exact_max) {
                for (uint32_t i = 0; i < span; i++) {
                        b->v[i] = (uint16_t) (r.lo + i);
                        b->m[i] = 0xffff;
                }
                b->n = span;
                return;
        }
        b->n = port_range_blocks(r, b->v, b->m, ELEMENTSOF(b->v));
}

/* Ranks: sparse, so that one rule can be put between two others (filter_index_add()) without
 * renumbering the set. A compiled set of n rules ranks them RANK_BASE + (n - i) * RANK_GAP;
 * below the last one RANK_BASE is left, above the first one the rest of 64 bits. */
#define RANK_GAP (UINT64_C(1) << 32)
#define RANK_BASE (UINT64_C(1) << 56)

/* Appends a growing array's next element. */
static void *grow(void **p, size_t *alloc, size_t n, size_t size) {
        if (n == *alloc) {
                size_t a = *alloc ? *alloc * 2 : 1024;
                void *np = realloc(*p, a * size);

                if (!np)
                        return NULL;
                *p = np;
                *alloc = a;
        }
        return (char *) *p + n * size;
}

/* The (shape, key) entries of one rule, appended to *entries: shapes it needs that `masks`
 * lacks are added to it. */
static int rule_compile(const Filter *f, bool wide, uint64_t rank, uint32_t *n_shapes,
                        struct ps_match *masks, FilterEntry **entries, size_t *n_entries,
                        size_t *alloc, char **ret_error) {
        struct ps_match key, mask;
        PortBlocks sp, dp, isp, idp;
        size_t product = 0;

        rule_base(f, &key, &mask);
        /* Wide: ranges up to PORT_RANGE_WIDE_MAX ports exact, as long as the rule stays within
         * PORT_RANGE_WIDE_MAX entries; the same rule always gives the same entries in a set of
         * one kind, which is what lets filter_index_remove() find them. */
        for (int pass = wide ? 0 : 1; pass < 2; pass++) {
                uint32_t exact = pass == 0 ? PORT_RANGE_WIDE_MAX : PORT_RANGE_EXACT_MAX;

                blocks_of(f->src_port, exact, &sp);
                blocks_of(f->dst_port, exact, &dp);
                blocks_of(f->inner_src_port, exact, &isp);
                blocks_of(f->inner_dst_port, exact, &idp);
                product = sp.n * dp.n * isp.n * idp.n;
                if (pass == 0 && product <= PORT_RANGE_WIDE_MAX)
                        break;
        }
        if (product > FILTER_ENTRIES_PER_RULE_MAX)
                return error_setf(ret_error, -E2BIG,
                                  "rule %u: its port ranges split into %zu entries; "
                                  "accepted: at most %u (narrow or align the ranges)", f->id,
                                  product, FILTER_ENTRIES_PER_RULE_MAX);
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

                for (shape = 0; shape < *n_shapes; shape++)
                        if (memcmp(&masks[shape], &m, sizeof m) == 0)
                                break;
                if (shape == *n_shapes) {
                        if (*n_shapes == PS_FILTER_MAX_SHAPES)
                                return error_setf(ret_error, -E2BIG,
                                                  "rule %u needs one more distinct rule "
                                                  "shape (a combination of prefix lengths, wildcard "
                                                  "fields and port blocks) than the %u a rule set "
                                                  "may have", f->id, PS_FILTER_MAX_SHAPES);
                        masks[(*n_shapes)++] = m;
                }
                e = grow((void **) entries, alloc, *n_entries, sizeof(FilterEntry));
                if (!e)
                        return -ENOMEM;
                (*n_entries)++;
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
        return 0;
}

/* Folds what b holds into a, for two contributions of the same (shape, key). */
static void value_merge(struct ps_filter_value *a, const struct ps_filter_value *b) {
        if (b->rank > a->rank) {
                a->rank = b->rank;
                a->slot = b->slot;
                a->action = b->action;
        }
        if (b->count_rank > a->count_rank) {
                a->count_rank = b->count_rank;
                a->count_slot = b->count_slot;
        }
}

static uint64_t entry_rank(const FilterEntry *e) {
        return e->value.rank | e->value.count_rank; /* one of them is 0 in a contribution */
}

/* Contributions: by key, then best first. */
static int cmp_contrib(const FilterEntry *a, const FilterEntry *b) {
        int c = memcmp(&a->key, &b->key, sizeof a->key);

        if (c)
                return c;
        return entry_rank(a) > entry_rank(b) ? -1 : entry_rank(a) < entry_rank(b);
}

static int cmp_contrib_qsort(const void *x, const void *y) {
        return cmp_contrib(x, y);
}

int filter_compile_indexed(Filter *const *rules, size_t n, FilterSet *ret, FilterIndex *ret_index,
                           char **ret_error) {
        _cleanup_free_ const Filter **order = NULL;
        FilterSet s = {};
        FilterEntry *raw = NULL;
        size_t n_enabled = 0, n_raw = 0, alloc = 0;
        bool wide = true;
        int r = 0;

        assert(rules || n == 0);
        assert(ret);
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

        /* Wide port ranges first; a set they would take more than half the entries for
         * (room left for single changes) splits its ranges into blocks instead. */
        for (int pass = 0; pass < 2; pass++) {
                wide = pass == 0;
                if (pass > 0) {
                        filter_set_done(&s);
                        s = (FilterSet) {};
                        n_raw = 0;
                }
                for (size_t i = 0; i < n_enabled; i++) {
                        /* The first in order ranks highest. */
                        r = rule_compile(order[i], wide,
                                         RANK_BASE + (uint64_t) (n_enabled - i) * RANK_GAP,
                                         &s.n_shapes, s.masks, &raw, &n_raw, &alloc, ret_error);
                        if (r < 0)
                                goto fail;
                }

                /* Rules that share a (shape, key) become one entry holding the best of each
                 * kind. */
                if (n_raw > 0)
                        qsort(raw, n_raw, sizeof(FilterEntry), cmp_contrib_qsort);
                s.entries = malloc((n_raw ? n_raw : 1) * sizeof(FilterEntry));
                if (!s.entries) {
                        r = -ENOMEM;
                        goto fail;
                }
                for (size_t i = 0; i < n_raw; i++) {
                        if (s.n_entries > 0 && memcmp(&s.entries[s.n_entries - 1].key,
                                                      &raw[i].key, sizeof raw[i].key) == 0) {
                                value_merge(&s.entries[s.n_entries - 1].value, &raw[i].value);
                                continue;
                        }
                        s.entries[s.n_entries++] = raw[i];
                }
                if (s.n_entries <= WIDE_ENTRIES_MAX)
                        break;
        }
        if (s.n_entries > PS_FILTER_MAX_ENTRIES) {
                (void) error_setf(ret_error, 0,
                                  "the rule set compiles to %zu classifier entries; accepted: at "
                                  "most %u (fewer port ranges help)", s.n_entries, PS_FILTER_MAX_ENTRIES);
                r = -E2BIG;
                goto fail;
        }
        s.n_rules = n_enabled;
        if (ret_index) {
                FilterIndex ix = {
                        .wide = wide,
                        .n_shapes = s.n_shapes,
                        .pool = raw,
                        .n_pool = n_raw,
                        .alloc_pool = alloc,
                        .n_entries = s.n_entries,
                };

                memcpy(ix.masks, s.masks, sizeof ix.masks);
                ix.sorted = malloc((n_raw ? n_raw : 1) * sizeof(uint32_t));
                ix.order = malloc((n_enabled ? n_enabled : 1) * sizeof(FilterRank));
                if (!ix.sorted || !ix.order) {
                        free(ix.sorted);
                        free(ix.order);
                        r = -ENOMEM;
                        goto fail;
                }
                ix.alloc_sorted = n_raw ? n_raw : 1;
                ix.alloc_order = n_enabled ? n_enabled : 1;
                for (size_t i = 0; i < n_raw; i++)
                        ix.sorted[i] = (uint32_t) i;
                ix.n_sorted = n_raw;
                for (size_t i = 0; i < n_enabled; i++)
                        ix.order[i] = (FilterRank) {
                                .rank = RANK_BASE + (uint64_t) (n_enabled - i) * RANK_GAP,
                                .created_usec = order[i]->created_usec,
                                .priority = order[i]->priority,
                                .id = order[i]->id,
                        };
                ix.n_order = n_enabled;
                raw = NULL;
                *ret_index = ix;
        }
        free(raw);
        *ret = s;
        return 0;
fail:
        free(raw);
        filter_set_done(&s);
        return r;
}

int filter_compile(Filter *const *rules, size_t n, FilterSet *ret, char **ret_error) {
        return filter_compile_indexed(rules, n, ret, NULL, ret_error);
}

/* ---- one rule at a time ---- */

void filter_index_done(FilterIndex *ix) {
        free(ix->pool);
        free(ix->sorted);
        free(ix->order);
        free(ix->free_ids);
        *ix = (FilterIndex) {};
}

void filter_delta_done(FilterDelta *d) {
        free(d->keys);
        *d = (FilterDelta) {};
}

/* Rule order as filter_beats(), on what the index keeps of a rule. */
static bool rank_beats(const FilterRank *a, const FilterRank *b) {
        if (a->priority != b->priority)
                return a->priority > b->priority;
        if (a->created_usec != b->created_usec)
                return a->created_usec < b->created_usec;
        return a->id < b->id;
}

static FilterRank rank_of(const Filter *f) {
        return (FilterRank) { .created_usec = f->created_usec, .priority = f->priority, .id = f->id };
}

/* The first position in ix->order whose rule `r` beats (the order is best first). */
static size_t order_position(const FilterIndex *ix, const FilterRank *r) {
        size_t lo = 0, hi = ix->n_order;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;

                if (rank_beats(&ix->order[mid], r))
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return lo;
}

/* The first position in ix->sorted not before e (by key, then best first). */
static size_t sorted_position(const FilterIndex *ix, const FilterEntry *e) {
        size_t lo = 0, hi = ix->n_sorted;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;

                if (cmp_contrib(&ix->pool[ix->sorted[mid]], e) < 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return lo;
}

bool filter_index_value(const FilterIndex *ix, const struct ps_filter_key *key,
                        struct ps_filter_value *ret) {
        FilterEntry probe = { .key = *key, .value.rank = UINT64_MAX };
        size_t i = sorted_position(ix, &probe);
        bool found = false;

        *ret = (struct ps_filter_value) {};
        for (; i < ix->n_sorted; i++) {
                const FilterEntry *e = &ix->pool[ix->sorted[i]];

                if (memcmp(&e->key, key, sizeof *key) != 0)
                        break;
                value_merge(ret, &e->value);
                found = true;
        }
        return found;
}

int filter_delta_push(FilterDelta *d, const struct ps_filter_key *k) {
        struct ps_filter_key *slot;

        for (size_t i = 0; i < d->n_keys; i++)
                if (memcmp(&d->keys[i], k, sizeof *k) == 0)
                        return 0;
        slot = grow((void **) &d->keys, &d->alloc_keys, d->n_keys, sizeof *k);
        if (!slot)
                return -ENOMEM;
        *slot = *k;
        d->n_keys++;
        return 0;
}

static bool key_present(const FilterIndex *ix, const struct ps_filter_key *k) {
        struct ps_filter_value v;

        return filter_index_value(ix, k, &v);
}

/* A delta remembers the shape count before its first change; a disabled rule has no entries:
 * false, nothing to do. */
static bool delta_begin(const FilterIndex *ix, const Filter *f, FilterDelta *d) {
        assert(ix);
        assert(f);
        assert(d);
        if (!d->n_keys && !d->shapes_grown)
                d->n_shapes_before = ix->n_shapes;
        return f->enabled;
}

int filter_index_add(FilterIndex *ix, const Filter *f, FilterDelta *d, char **ret_error) {
        _cleanup_free_ FilterEntry *mine = NULL;
        size_t n_mine = 0, alloc = 0, pos, new_keys = 0;
        struct ps_match masks[PS_FILTER_MAX_SHAPES];
        uint32_t n_shapes = ix->n_shapes;
        FilterRank rank = rank_of(f);
        uint64_t above, below;
        int r;

        if (!delta_begin(ix, f, d))
                return 0;
        if (ix->n_order >= PS_FILTER_MAX_RULES)
                return error_setf(ret_error, -E2BIG, "%zu enabled rules; accepted: at most %u",
                                  ix->n_order + 1, PS_FILTER_MAX_RULES);

        /* A rank between the neighbours', close to the one above: rules added in a row at
         * the same place (the newest of a priority) then use the gap up slowly. */
        pos = order_position(ix, &rank);
        above = pos > 0 ? ix->order[pos - 1].rank : UINT64_MAX;
        below = pos < ix->n_order ? ix->order[pos].rank : 0;
        if (above - below < 2)
                return -ERANGE; /* no room: the caller compiles the whole set again */
        rank.rank = above - MAX((above - below) / 1024, (uint64_t) 1);

        memcpy(masks, ix->masks, sizeof masks);
        r = rule_compile(f, ix->wide, rank.rank, &n_shapes, masks, &mine, &n_mine, &alloc,
                         ret_error);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n_mine; i++)
                if (!key_present(ix, &mine[i].key))
                        new_keys++;
        if (ix->wide && ix->n_entries + new_keys > WIDE_ENTRIES_MAX)
                return -ERANGE; /* the whole set again, with its ranges in blocks */
        if (ix->n_entries + new_keys > PS_FILTER_MAX_ENTRIES)
                return error_setf(ret_error, -E2BIG,
                                  "the rule set would compile to %zu classifier entries; "
                                  "accepted: at most %u (fewer port ranges help)",
                                  ix->n_entries + new_keys, PS_FILTER_MAX_ENTRIES);

        /* Room first, so that nothing below fails half way. */
        if (!grow((void **) &ix->order, &ix->alloc_order, ix->n_order, sizeof(FilterRank)))
                return -ENOMEM;
        for (size_t i = 0; i < n_mine; i++) {
                if (!grow((void **) &ix->pool, &ix->alloc_pool, ix->n_pool + i, sizeof(FilterEntry)) ||
                    !grow((void **) &ix->sorted, &ix->alloc_sorted, ix->n_sorted + i, sizeof(uint32_t)))
                        return -ENOMEM;
                r = filter_delta_push(d, &mine[i].key);
                if (r < 0)
                        return r;
        }

        for (size_t i = 0; i < n_mine; i++) {
                uint32_t id;
                size_t at;

                if (!key_present(ix, &mine[i].key))
                        ix->n_entries++;
                if (ix->n_free > 0)
                        id = ix->free_ids[--ix->n_free];
                else
                        id = (uint32_t) ix->n_pool++;
                ix->pool[id] = mine[i];
                at = sorted_position(ix, &mine[i]);
                memmove(ix->sorted + at + 1, ix->sorted + at,
                        (ix->n_sorted - at) * sizeof(uint32_t));
                ix->sorted[at] = id;
                ix->n_sorted++;
        }
        memmove(ix->order + pos + 1, ix->order + pos, (ix->n_order - pos) * sizeof(FilterRank));
        ix->order[pos] = rank;
        ix->n_order++;
        if (n_shapes > ix->n_shapes) {
                memcpy(ix->masks, masks, sizeof masks);
                ix->n_shapes = n_shapes;
                d->shapes_grown = true;
        }
        return 0;
}

int filter_index_remove(FilterIndex *ix, const Filter *f, FilterDelta *d) {
        _cleanup_free_ FilterEntry *mine = NULL;
        size_t n_mine = 0, alloc = 0, pos;
        struct ps_match masks[PS_FILTER_MAX_SHAPES];
        uint32_t n_shapes = ix->n_shapes;
        FilterRank rank = rank_of(f);
        int r;

        if (!delta_begin(ix, f, d))
                return 0;
        pos = order_position(ix, &rank);
        if (pos >= ix->n_order || rank_beats(&ix->order[pos], &rank) ||
            rank_beats(&rank, &ix->order[pos]))
                return -ENOENT;
        rank.rank = ix->order[pos].rank;
        memcpy(masks, ix->masks, sizeof masks);
        r = rule_compile(f, ix->wide, rank.rank, &n_shapes, masks, &mine, &n_mine, &alloc, NULL);
        if (r < 0)
                return r;
        if (n_shapes != ix->n_shapes)
                return -ENOENT; /* not the rule that was added */
        for (size_t i = 0; i < n_mine; i++) {
                r = filter_delta_push(d, &mine[i].key);
                if (r < 0)
                        return r;
        }
        for (size_t i = 0; i < n_mine; i++) {
                size_t at = sorted_position(ix, &mine[i]);
                uint32_t id;

                /* Equal (key, rank) means this very rule: ranks are unique. */
                if (at >= ix->n_sorted || cmp_contrib(&ix->pool[ix->sorted[at]], &mine[i]) != 0)
                        return -ENOENT;
                id = ix->sorted[at];
                memmove(ix->sorted + at, ix->sorted + at + 1,
                        (ix->n_sorted - at - 1) * sizeof(uint32_t));
                ix->n_sorted--;
                if (grow((void **) &ix->free_ids, &ix->alloc_free, ix->n_free, sizeof(uint32_t)))
                        ix->free_ids[ix->n_free++] = id;
                if (!key_present(ix, &mine[i].key))
                        ix->n_entries--;
        }
        memmove(ix->order + pos, ix->order + pos + 1, (ix->n_order - pos - 1) * sizeof(FilterRank));
        ix->n_order--;
        return 0;
}

bool filter_index_cacheable(const FilterIndex *ix) {
        for (uint32_t i = 0; i < ix->n_shapes; i++)
                if (ix->masks[i].tcp_flags)
                        return false;
        return true;
}

bool filter_mask_key4(const struct ps_match *mask) {
        assert(mask);
        for (int i = 1; i < 4; i++)
                if (mask->src[i] | mask->dst[i] | mask->inner_src[i] | mask->inner_dst[i])
                        return false;
        return true;
}

void filter_key4_of(const struct ps_filter_key *k, struct ps_filter_key4 *ret) {
        const struct ps_match *m = &k->match;

        assert(k);
        assert(ret);
        *ret = (struct ps_filter_key4) {
                .shape = k->shape,
                .match = {
                        .family = m->family,
                        .proto = m->proto,
                        .icmp_type = m->icmp_type,
                        .icmp_code = m->icmp_code,
                        .tcp_flags = m->tcp_flags,
                        .inner_proto = m->inner_proto,
                        .pad = m->pad,
                        .sport = m->sport,
                        .dport = m->dport,
                        .inner_sport = m->inner_sport,
                        .inner_dport = m->inner_dport,
                        .src = m->src[0],
                        .dst = m->dst[0],
                        .inner_src = m->inner_src[0],
                        .inner_dst = m->inner_dst[0],
                },
        };
}

uint8_t filter_shape_flags(const struct ps_match *mask) {
        uint8_t flags = 0;

        assert(mask);
        if (filter_mask_key4(mask))
                flags |= PS_SHAPE_KEY4;
        if (mask->dport == 0xffff)
                flags |= PS_SHAPE_GATE_DPORT;
        if (mask->icmp_type == 0xff)
                flags |= PS_SHAPE_GATE_TYPE;
        if (mask->src[0] == UINT32_MAX && mask->src[1] == UINT32_MAX)
                flags |= PS_SHAPE_GATE_SRC64;
        else if ((ntohl(mask->src[0]) & 0xffffff00u) == 0xffffff00u)
                flags |= PS_SHAPE_GATE_SRC24;
        return flags;
}

size_t filter_gate_words(uint8_t flags, uint32_t shape, const struct ps_match *m,
                         FilterGateWord ret[static FILTER_GATE_WORDS_MAX]) {
        size_t n = 0;
        uint32_t key, bucket;

        assert(m);
        assert(shape < PS_FILTER_MAX_SHAPES);
        if (flags & PS_SHAPE_GATE_DPORT)
                ret[n++] = (FilterGateWord) { m->dport, UINT32_C(1) << shape };
        if (flags & PS_SHAPE_GATE_TYPE)
                ret[n++] = (FilterGateWord) { PS_GATE_TYPE_OFF + m->icmp_type,
                                              UINT32_C(1) << shape };
        if (flags & (PS_SHAPE_GATE_SRC24 | PS_SHAPE_GATE_SRC64)) {
                key = (flags & PS_SHAPE_GATE_SRC64) ? ps_gate_key64(m->src[0], m->src[1]) :
                                                       ps_gate_key24(m->src[0]);
                bucket = ps_gate_bucket(key);
                ret[n++] = (FilterGateWord) { PS_GATE_KEYS_OFF + (key >> 6),
                                              UINT64_C(1) << (key & 63) };
                ret[n++] = (FilterGateWord) { PS_GATE_BUCKETS_OFF + (bucket >> 1),
                                              UINT64_C(1) << ((bucket & 1) * 32 + shape) };
        }
        return n;
}

bool filter_gates_pass(uint8_t flags, uint32_t shape, const uint64_t *region,
                       const struct ps_match *pkt) {
        FilterGateWord w[FILTER_GATE_WORDS_MAX];
        size_t n = filter_gate_words(flags, shape, pkt, w);

        for (size_t i = 0; i < n; i++)
                if (!(region[w[i].index] & w[i].bits))
                        return false;
        return true;
}

void filter_bank_derive(struct ps_filter_bank *b) {
        static const uint8_t kinds[] = {
                [PS_GATE_KIND_DPORT] = PS_SHAPE_GATE_DPORT,
                [PS_GATE_KIND_TYPE] = PS_SHAPE_GATE_TYPE,
                [PS_GATE_KIND_SRC24] = PS_SHAPE_GATE_SRC24,
                [PS_GATE_KIND_SRC64] = PS_SHAPE_GATE_SRC64,
        };

        assert(b);
        memset(b->class_shapes, 0, sizeof b->class_shapes);
        memset(b->gate_shapes, 0, sizeof b->gate_shapes);
        /* Every shape, also those past n_shapes: a single change writes new shapes there
         * before it raises the count, and the program masks the count in. */
        for (uint32_t i = 0; i < PS_FILTER_MAX_SHAPES; i++) {
                for (unsigned k = 0; k < 8; k++)
                        if (b->classes[i] & (1u << k))
                                b->class_shapes[k] |= UINT32_C(1) << i;
                for (unsigned k = 0; k < ELEMENTSOF(kinds); k++)
                        if (b->flags[i] & kinds[k])
                                b->gate_shapes[k] |= UINT32_C(1) << i;
        }
}

uint8_t filter_entry_classes(const struct ps_match *mask, const struct ps_match *key) {
        static const uint8_t families[] = { PS_FAMILY_IPV4, PS_FAMILY_IPV6 };
        uint8_t classes = 0;

        assert(mask);
        assert(key);
        /* Every (family, protocol) a packet can have under the mask and key; a partly masked
         * field (none is, today) counts as a wildcard, which only costs a lookup. */
        for (size_t f = 0; f < ELEMENTSOF(families); f++) {
                if (mask->family == 0xff && key->family != families[f])
                        continue;
                if (mask->proto == 0xff)
                        classes |= ps_filter_class(families[f], key->proto);
                else
                        classes |= families[f] == PS_FAMILY_IPV4 ? PS_CLASS_V4 : PS_CLASS_V6;
        }
        return classes;
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
        assert(f);
        assert(p);
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
