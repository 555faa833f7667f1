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
