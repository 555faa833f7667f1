/* SPDX-License-Identifier: GPL-2.0-only OR MIT */
/*
 * The classifier of guard.bpf.c: tuple-space search over the rule set the daemon compiled
 * (see classify.h for the layout and the reasoning). Included once, by guard.bpf.c.
 */
#ifndef PACKETSCOPE_CLASSIFY_BPF_H
#define PACKETSCOPE_CLASSIFY_BPF_H

#include "classify.h"

/*
 * After a lookup in one of two maps that a branch chooses: keeps the compiler from merging the
 * two calls into one call whose map depends on the branch. The verifier cannot tell such a
 * call's map, and leaves it the generic helper, an indirect call through the map's operations
 * (a retpoline here), where a call site that sees one map becomes a direct call, inlined for a
 * hash map: about 20 ns a lookup on the benchmark's CPUs. One branch's barrier is enough.
 */
#define ps_own_call_site(ptr) barrier_var(ptr)

/* These maps are shared by the programs of every guarded link: one rule set, one set of
 * per-rule counters. The daemon creates and pins them and hands them to each program. */
struct {
        __uint(type, BPF_MAP_TYPE_ARRAY);
        __uint(max_entries, 1);
        __type(key, __u32);
        __type(value, __u32); /* generation << 2 | cacheable << 1 | active bank */
} filter_state SEC(".maps");

struct {
        __uint(type, BPF_MAP_TYPE_ARRAY);
        __uint(max_entries, 2);
        __type(key, __u32);
        __type(value, struct ps_filter_bank);
} filter_banks SEC(".maps");

struct {
        __uint(type, BPF_MAP_TYPE_HASH);
        __uint(max_entries, 2 * PS_FILTER_MAX_ENTRIES);
        __uint(map_flags, BPF_F_NO_PREALLOC);
        __type(key, struct ps_filter_key);
        __type(value, struct ps_filter_value);
} filter_rules SEC(".maps");

/* The entries of the shapes with PS_SHAPE_KEY4 (classify.h, struct ps_match4). */
struct {
        __uint(type, BPF_MAP_TYPE_HASH);
        __uint(max_entries, 2 * PS_FILTER_MAX_ENTRIES);
        __uint(map_flags, BPF_F_NO_PREALLOC);
        __type(key, struct ps_filter_key4);
        __type(value, struct ps_filter_value);
} filter_rules4 SEC(".maps");

/* The gates of both banks (classify.h, PS_GATE_*); the daemon writes a whole load's through a
 * mapping of the array. */
struct {
        __uint(type, BPF_MAP_TYPE_ARRAY);
        __uint(max_entries, 2 * PS_GATE_BANK_WORDS);
        __uint(map_flags, BPF_F_MMAPABLE);
        __type(key, __u32);
        __type(value, __u64);
} filter_gates SEC(".maps");

struct {
        __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
        __uint(max_entries, PS_FILTER_SLOTS);
        __type(key, __u32);
        __type(value, struct ps_filter_counter);
} filter_counters SEC(".maps");

struct {
        __uint(type, BPF_MAP_TYPE_RINGBUF);
        __uint(max_entries, PS_DROP_EVENTS_RING);
} drop_events SEC(".maps");

struct {
        __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
        __uint(max_entries, 1);
        __type(key, __u32);
        __type(value, struct ps_drop_budget);
} drop_budget SEC(".maps");

struct ps_verdict {
        __u32 action; /* enum ps_filter_action; NONE when no rule decided */
        __u32 slot;
        __u32 count_slot;
        __u32 has_count;
        __u32 state;  /* filter_state this verdict was reached under */
        __u32 pad;
};

static __always_inline __u32 filter_state_now(void)
{
        __u32 zero = 0, *state = bpf_map_lookup_elem(&filter_state, &zero);

        return state ? *state : 0;
}

static __always_inline void mask_match(struct ps_match *out, const struct ps_match *in,
                                       const struct ps_match *mask)
{
        const __u64 *a = (const __u64 *) in, *m = (const __u64 *) mask;
        __u64 *o = (__u64 *) out;

        /* struct ps_match is 80 bytes: ten words. */
#pragma unroll
        for (int i = 0; i < (int) (sizeof(struct ps_match) / 8); i++)
                o[i] = a[i] & m[i];
}

/* The same for a PS_SHAPE_KEY4 shape: its mask has nothing in address words 1-3. In 32-bit
 * words, since the key sits at offset 4 (the stack is only read and written aligned). */
static __always_inline void mask_match4(struct ps_match4 *out, const struct ps_match *in,
                                        const struct ps_match *mask)
{
        const __u32 *a = (const __u32 *) in, *m = (const __u32 *) mask;
        __u32 *o = (__u32 *) out;

        /* family .. inner_dport: the first 16 bytes of both. */
#pragma unroll
        for (int i = 0; i < 4; i++)
                o[i] = a[i] & m[i];
        out->src = in->src[0] & mask->src[0];
        out->dst = in->dst[0] & mask->dst[0];
        out->inner_src = in->inner_src[0] & mask->inner_src[0];
        out->inner_dst = in->inner_dst[0] & mask->inner_dst[0];
}

/* State of one classification, shared with the per-shape callback. */
struct classify_ctx {
        const struct ps_match *pkt;
        struct ps_filter_bank *bank;
        __u64 best;
        __u64 cbest;
        __u32 slot;
        __u32 count_slot;
        __u32 cand; /* the shapes still to look up (bit i: shape i) */
        /* Narrow: the frame stays at the size it had with 32-bit ranks, and the key's match
         * 8-byte aligned (mask_match() writes it in 64-bit words). */
        __u8 bank_index;
        __u8 action;
        __u8 lacks; /* PS_CLS_* */
        __u8 pad;
        union {
                struct ps_filter_key key;
                struct ps_filter_key4 key4;
        };
};

/* What the packet lacks, for classify(): a shape that looks at a field the packet does not
 * have never matches it (the zeroes parsing left there are not port 0 or protocol 0). */
#define PS_CLS_NO_L4 1     /* no transport header (a non-first fragment, or one cut short) */
#define PS_CLS_NO_QUOTE 2  /* no quoted header read (not an ICMP error, or a short quote) */
#define PS_CLS_NO_QPORTS 4 /* a quoted header without ports */

static __always_inline int mask_has_inner(const struct ps_match *m)
{
        return m->inner_proto | m->inner_sport | m->inner_dport | m->inner_src[0] |
               m->inner_src[1] | m->inner_src[2] | m->inner_src[3] | m->inner_dst[0] |
               m->inner_dst[1] | m->inner_dst[2] | m->inner_dst[3];
}

/* Whether a shape looks at anything past the IP header. */
static __always_inline int mask_has_l4(const struct ps_match *m)
{
        return m->icmp_type | m->icmp_code | m->tcp_flags | m->sport | m->dport |
               mask_has_inner(m);
}

/* The index of the lowest set bit of a non-zero word: the bits below it counted, without a
 * branch (the instruction set has no count of trailing zeros, and branches would multiply
 * what the verifier walks). */
static __always_inline __u32 lowest_bit(__u32 x)
{
        __u32 v = (x & -x) - 1;

        v = v - ((v >> 1) & 0x55555555u);
        v = (v & 0x33333333u) + ((v >> 2) & 0x33333333u);
        return (((v + (v >> 4)) & 0x0f0f0f0fu) * 0x01010101u) >> 24;
}

/* One word of the gates of a bank (a lookup the verifier inlines: an array of plain words).
 * NULL only for an index past the array, which the offsets rule out. */
static __always_inline __u64 *gate_word(__u32 bank, __u32 off)
{
        __u32 idx = (bank ? PS_GATE_BANK_WORDS : 0) + off;

        return bpf_map_lookup_elem(&filter_gates, &idx);
}

/* The shapes of a gate kind the gate lets through: those of the word (or its half) the
 * packet's value picks, and every shape without that gate. A word that cannot be read lets
 * every shape through (the lookups are done, the verdict stays exact). */
static __always_inline __u32 gate_pass(__u32 kind_shapes, const __u64 *w, __u32 shift)
{
        return w ? (__u32) (*w >> shift) | ~kind_shapes : ~0u;
}

/* The same for a source key: none of the kind's shapes when the key's bit is clear, else
 * those of its bucket. */
static __always_inline __u32 gate_src(__u32 kind_shapes, __u32 bank, __u32 key)
{
        __u64 *w = gate_word(bank, PS_GATE_KEYS_OFF + (key >> 6));
        __u32 bucket;

        if (w && !((*w >> (key & 63)) & 1))
                return ~kind_shapes;
        bucket = ps_gate_bucket(key);
        return gate_pass(kind_shapes, gate_word(bank, PS_GATE_BUCKETS_OFF + (bucket >> 1)),
                         (bucket & 1) * 32);
}

/* The shapes a packet looks up: those of its class (all, for a family the classifier does
 * not know) that the gates let through, below n_shapes. A global function: the verifier
 * checks it once, on its own, in a frame of its own. */
__attribute__((noinline)) __u32 ps_filter_candidates(const struct ps_filter_bank *b, __u32 bank,
                                                     const struct ps_match *pkt)
{
        __u8 class;
        __u32 n, cand, k;

        if (!b || !pkt)
                return ~0u;
        class = ps_filter_class(pkt->family, pkt->proto);
        n = b->n_shapes;

        cand = n >= PS_FILTER_MAX_SHAPES ? ~0u : (1u << n) - 1;
        if (class) {
                k = lowest_bit(class);
                cand &= b->class_shapes[k & 7];
        }
        if (cand & b->gate_shapes[PS_GATE_KIND_DPORT])
                cand &= gate_pass(b->gate_shapes[PS_GATE_KIND_DPORT],
                                  gate_word(bank, pkt->dport), 0);
        if (cand & b->gate_shapes[PS_GATE_KIND_TYPE])
                cand &= gate_pass(b->gate_shapes[PS_GATE_KIND_TYPE],
                                  gate_word(bank, PS_GATE_TYPE_OFF + pkt->icmp_type), 0);
        if (cand & b->gate_shapes[PS_GATE_KIND_SRC24])
                cand &= gate_src(b->gate_shapes[PS_GATE_KIND_SRC24], bank,
                                 ps_gate_key24(pkt->src[0]));
        if (cand & b->gate_shapes[PS_GATE_KIND_SRC64])
                cand &= gate_src(b->gate_shapes[PS_GATE_KIND_SRC64], bank,
                                 ps_gate_key64(pkt->src[0], pkt->src[1]));
        return cand;
}

/* One candidate shape: the next one of c->cand; mask the tuple, one hash lookup. Run through
 * bpf_loop() so that the verifier checks this body once instead of once per shape. */
static long classify_shape(__u32 n, struct classify_ctx *c)
{
        const struct ps_match *m;
        struct ps_filter_value *e;
        __u32 i;

        if (!c->cand)
                return 1;
        i = lowest_bit(c->cand);
        c->cand &= c->cand - 1;
        /* A power of two: the mask keeps the index provably inside the array. The empty asm
         * stops the compiler from reusing its unmasked copy of i. */
        asm volatile("" : "+r"(i));
        i &= PS_FILTER_MAX_SHAPES - 1;
        m = &c->bank->masks[i];
        if (c->lacks) {
                if ((c->lacks & PS_CLS_NO_L4) && mask_has_l4(m))
                        return 0;
                if ((c->lacks & PS_CLS_NO_QUOTE) && mask_has_inner(m))
                        return 0;
                if ((c->lacks & PS_CLS_NO_QPORTS) && (m->inner_sport | m->inner_dport))
                        return 0;
        }
        if (c->bank->flags[i] & PS_SHAPE_KEY4) {
                c->key4.shape = c->bank_index * PS_FILTER_MAX_SHAPES + i;
                mask_match4(&c->key4.match, c->pkt, m);
                e = bpf_map_lookup_elem(&filter_rules4, &c->key4);
                ps_own_call_site(e);
        } else {
                c->key.shape = c->bank_index * PS_FILTER_MAX_SHAPES + i;
                c->key.pad = 0; /* key4 shares these bytes */
                mask_match(&c->key.match, c->pkt, m);
                e = bpf_map_lookup_elem(&filter_rules, &c->key);
        }
        if (!e)
                return 0;
        if (e->rank > c->best) {
                c->best = e->rank;
                c->action = (__u8) e->action;
                c->slot = e->slot;
        }
        if (e->count_rank > c->cbest) {
                c->cbest = e->count_rank;
                c->count_slot = e->count_slot;
        }
        return 0;
}

/* `lacks`: PS_CLS_* bits, what the packet does not have. */
static __always_inline void classify(const struct ps_match *pkt, __u32 lacks, struct ps_verdict *v)
{
        __u32 zero = 0, *state;
        struct classify_ctx c;

        v->action = PS_ACTION_NONE;
        v->slot = 0;
        v->count_slot = 0;
        v->has_count = 0;
        v->state = 0;
        state = bpf_map_lookup_elem(&filter_state, &zero);
        if (!state)
                return;
        v->state = *state;
        __builtin_memset(&c, 0, sizeof(c));
        c.pkt = pkt;
        c.lacks = (__u8) lacks;
        /* c.cand is the lookup's key here (no other slot of the stack is spared for it). */
        c.cand = v->state & PS_FILTER_STATE_BANK;
        c.bank_index = (__u8) c.cand;
        c.bank = bpf_map_lookup_elem(&filter_banks, &c.cand);
        if (!c.bank || c.bank->n_shapes == 0)
                return;
        c.cand = ps_filter_candidates(c.bank, c.bank_index, pkt);
        if (!c.cand)
                return;
        bpf_loop(PS_FILTER_MAX_SHAPES, classify_shape, &c, 0);
        v->action = c.action;
        v->slot = c.slot;
        v->count_slot = c.count_slot;
        /* A count rule counts the packets it would have decided: those no better rule took. */
        v->has_count = c.cbest > c.best;
}

static __always_inline void rule_account(__u32 slot, __u64 bytes, __u64 now)
{
        struct ps_filter_counter *c = bpf_map_lookup_elem(&filter_counters, &slot);

        if (c) {
                c->hits++;
                c->bytes += bytes;
                c->last_hit = now;
        }
}

/* A sample of a drop for the daemon: rate-limited per CPU so that a flood costs the ring
 * buffer (and the journal) nothing more than PS_DROP_EVENTS_PER_SEC a second. */
static __always_inline void drop_event(struct xdp_md *ctx, const struct ps_match *m, __u32 slot,
                                       __u64 now, __u64 *lost)
{
        __u32 zero = 0;
        struct ps_drop_budget *b = bpf_map_lookup_elem(&drop_budget, &zero);
        struct ps_drop_event *e;
        __u64 window = now / 1000000000ULL;

        if (!b)
                return;
        if (b->window != window) {
                b->window = window;
                b->count = 0;
        }
        if (b->count >= PS_DROP_EVENTS_PER_SEC)
                return;
        b->count++;
        e = bpf_ringbuf_reserve(&drop_events, sizeof(*e), 0);
        if (!e) {
                (*lost)++;
                return;
        }
        e->time = now;
        e->slot = slot;
        e->ifindex = ctx->ingress_ifindex;
        __builtin_memcpy(&e->match, m, sizeof(e->match));
        bpf_ringbuf_submit(e, 0);
}

#endif
