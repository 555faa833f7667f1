/* SPDX-License-Identifier: MIT */
#pragma once

#include <stddef.h>

#include "rule.h"
#include "guard-abi.h"
#include "filter-abi.h"

/* The rule set in the classifier's form (bpf/classify.h): shapes and (shape, key) entries. */
typedef struct FilterEntry {
        struct ps_filter_key key; /* key.shape: the shape index, the bank is added on load */
        struct ps_filter_value value;
} FilterEntry;

typedef struct FilterSet {
        uint32_t n_shapes;
        struct ps_match masks[PS_FILTER_MAX_SHAPES];
        FilterEntry *entries;
        size_t n_entries;
        size_t n_rules; /* enabled rules compiled */
} FilterSet;

#define FILTER_ENTRIES_PER_RULE_MAX 4096

/* Compiles the enabled rules. Errors name the rule and the limit it hits. */
int filter_compile(Filter *const *rules, size_t n, FilterSet *ret, char **ret_error);
void filter_set_done(FilterSet *s);

/* What the index keeps of a rule: its rank and what orders it (filter_beats()). */
typedef struct FilterRank {
        uint64_t rank;
        uint64_t created_usec;
        int32_t priority;
        uint32_t id;
} FilterRank;

/*
 * The compiled set as the daemon keeps it, so that one rule can be added or removed without
 * compiling the others again: every rule's (shape, key) contributions, sorted by key then best
 * first (a kernel entry is the best of a run of equal keys), and the rules by rank.
 */
typedef struct FilterIndex {
        bool wide; /* port ranges up to 1,024 ports as exact ports (filter-compile.c) */
        uint32_t n_shapes;
        struct ps_match masks[PS_FILTER_MAX_SHAPES];
        FilterEntry *pool; /* contributions; value: one rule's half (rank or count_rank) */
        size_t n_pool, alloc_pool;
        uint32_t *free_ids; /* pool entries removed, for reuse */
        size_t n_free, alloc_free;
        uint32_t *sorted; /* pool indices by key, then best first */
        size_t n_sorted, alloc_sorted;
        FilterRank *order; /* enabled rules, best first */
        size_t n_order, alloc_order;
        size_t n_entries; /* distinct keys: entries in the kernel */
} FilterIndex;

/* The kernel entries one or more single-rule changes touched, in the order they must be
 * written, and whether shapes were added (from n_shapes_before up). */
typedef struct FilterDelta {
        struct ps_filter_key *keys;
        size_t n_keys, alloc_keys;
        uint32_t n_shapes_before;
        bool shapes_grown;
} FilterDelta;

/* filter_compile() that also returns the index of the set. */
int filter_compile_indexed(Filter *const *rules, size_t n, FilterSet *ret, FilterIndex *ret_index,
                           char **ret_error);
void filter_index_done(FilterIndex *ix);
void filter_delta_done(FilterDelta *d);
/* Appends a key to the delta unless it is there already. */
int filter_delta_push(FilterDelta *d, const struct ps_filter_key *k);
/* Adds one rule (its id, slot, priority and creation time set). -ERANGE: no rank is left
 * between its neighbours; compile the whole set instead. On any error the index may be
 * partly changed only for -ENOMEM; the caller then compiles the whole set again. */
int filter_index_add(FilterIndex *ix, const Filter *f, FilterDelta *d, char **ret_error);
/* Removes a rule that filter_index_add() or the compiler put in, as it was then. */
int filter_index_remove(FilterIndex *ix, const Filter *f, FilterDelta *d);
/* The kernel value of a key: false when no rule is left there (the entry goes). */
bool filter_index_value(const FilterIndex *ix, const struct ps_filter_key *key,
                        struct ps_filter_value *ret);
bool filter_index_cacheable(const FilterIndex *ix);

/* Whether a shape's entries go into filter_rules4 (PS_SHAPE_KEY4): its mask looks at no
 * address word but the first. */
bool filter_mask_key4(const struct ps_match *mask);
/* The filter_rules4 key of a key of such a shape (its address words 1-3 are zero). */
void filter_key4_of(const struct ps_filter_key *k, struct ps_filter_key4 *ret);
/* PS_SHAPE_* of a shape: its key map and its gates (classify.h), from its mask alone. */
uint8_t filter_shape_flags(const struct ps_match *mask);
/* The gate words (index in a bank's region of filter_gates) and the bits of each that an
 * entry of a shape with these flags needs set; and, for a packet, whether the gates let it
 * reach the shape (the classifier's test, for the benches and the tests). */
typedef struct FilterGateWord {
        uint32_t index;
        uint64_t bits;
} FilterGateWord;
#define FILTER_GATE_WORDS_MAX 4
size_t filter_gate_words(uint8_t flags, uint32_t shape, const struct ps_match *key,
                         FilterGateWord ret[static FILTER_GATE_WORDS_MAX]);
bool filter_gates_pass(uint8_t flags, uint32_t shape, const uint64_t *region,
                       const struct ps_match *pkt);
/* Fills a bank's class_shapes and gate_shapes from its classes and flags. */
void filter_bank_derive(struct ps_filter_bank *b);
/* The PS_CLASS_* bits of the packets an entry (its shape's mask, its key) can match. */
uint8_t filter_entry_classes(const struct ps_match *mask, const struct ps_match *key);

/* Splits a port range into aligned power-of-two blocks (value, mask); returns the count. */
size_t port_range_blocks(PortRange r, uint16_t *values, uint16_t *masks, size_t max);

/* The plain matcher: does this rule match this packet tuple? Used for Test() over the flow
 * table and as the reference the kernel classifier is checked against. */
bool filter_match(const Filter *f, const struct ps_match *pkt);
/* Rule order: true if a beats b (higher priority, then older, then lower id). */
bool filter_beats(const Filter *a, const Filter *b);
/* The reference classification: the best deciding rule and the best count rule that beats it. */
void filter_classify_reference(Filter *const *rules, size_t n, const struct ps_match *pkt,
                               const Filter **ret_decider, const Filter **ret_count);
