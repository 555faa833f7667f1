/* SPDX-License-Identifier: GPL-2.0-only OR MIT */
/*
 * The classifier of guard.bpf.c: tuple-space search over the rule set the daemon compiled
 * (see classify.h for the layout and the reasoning). Included once, by guard.bpf.c.
 */
#ifndef PACKETSCOPE_CLASSIFY_BPF_H
#define PACKETSCOPE_CLASSIFY_BPF_H

#include "classify.h"

/* These maps are shared by the programs of every guarded link: one rule set, one set of
 * per-rule counters. The daemon creates and pins them and hands them to each program. */
struct {
        __uint(type, BPF_MAP_TYPE_ARRAY);
        __uint(max_entries, 1);
        __type(key, __u32);
        __type(value, __u32); /* generation << 1 | active bank */
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

struct {
        __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
        __uint(max_entries, PS_FILTER_SLOTS);
        __type(key, __u32);
        __type(value, struct ps_filter_counter);
} filter_counters SEC(".maps");

struct ps_verdict {
        __u32 action; /* enum ps_filter_action; NONE when no rule decided */
        __u32 slot;
        __u32 count_slot;
        __u32 has_count;
};

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

static __always_inline void classify(const struct ps_match *pkt, struct ps_verdict *v)
{
        __u32 zero = 0, *state, bank, best = 0, cbest = 0;
        struct ps_filter_bank *b;
        struct ps_filter_key key;

        v->action = PS_ACTION_NONE;
        v->has_count = 0;
        state = bpf_map_lookup_elem(&filter_state, &zero);
        if (!state)
                return;
        bank = *state & 1;
        b = bpf_map_lookup_elem(&filter_banks, &bank);
        if (!b)
                return;
        key.pad = 0;
        for (__u32 i = 0; i < PS_FILTER_MAX_SHAPES; i++) {
                struct ps_filter_value *e;

                if (i >= b->n_shapes)
                        break;
                key.shape = bank * PS_FILTER_MAX_SHAPES + i;
                mask_match(&key.match, pkt, &b->masks[i]);
                e = bpf_map_lookup_elem(&filter_rules, &key);
                if (!e)
                        continue;
                if (e->rank > best) {
                        best = e->rank;
                        v->action = e->action;
                        v->slot = e->slot;
                }
                if (e->count_rank > cbest) {
                        cbest = e->count_rank;
                        v->count_slot = e->count_slot;
                }
        }
        /* A count rule counts the packets it would have decided: those no better rule took. */
        v->has_count = cbest > best;
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

#endif
