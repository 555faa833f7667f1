/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "addr.h"
#include "bus-names.h"
#include "guard-abi.h"
#include "proto.h"

#define QUERY_LIMIT_DEFAULT PS_QUERY_LIMIT_DEFAULT
#define QUERY_LIMIT_MAX PS_QUERY_LIMIT_MAX
#define QUERY_WINDOW_MAX PS_QUERY_WINDOW_MAX

typedef enum QuerySort {
        QUERY_SORT_BYTES,
        QUERY_SORT_PACKETS,
        QUERY_SORT_LAST_SEEN,
        QUERY_SORT_FIRST_SEEN,
        QUERY_SORT_RATE,
} QuerySort;

typedef enum QueryKind {
        QUERY_FLOWS,
        QUERY_ICMP,
} QueryKind;

/* One value of an a{sv} query entry, as read from the bus. */
typedef struct QueryValue {
        char type; /* D-Bus type char: 's', 'u', 'q', 'y', 't', 'i', 'b', ... */
        const char *s;
        uint64_t u;
        int64_t i;
} QueryValue;

typedef struct Query {
        QueryKind kind;
        uint32_t limit;
        uint32_t offset;
        QuerySort sort;
        bool has_protocol;
        uint8_t protocol;
        bool has_family;
        uint8_t family;
        bool has_address;
        Cidr address;
        bool has_port;
        uint16_t port;
        bool has_state;
        uint8_t state;
        bool has_type;
        uint8_t icmp_type;
        char *link;
        bool fresh; /* read the whole table even where the ranked view could answer */
} Query;

void query_init(Query *q, QueryKind kind);
void query_done(Query *q);

/* Applies one key. On a bad key, type or value: -EINVAL and a message naming what was wrong
 * and what is accepted. */
int query_set(Query *q, const char *key, const QueryValue *v, char **ret_error);
/* Checks the combination once every key is in (offset + limit bound). */
int query_finish(Query *q, char **ret_error);

bool query_match_flow(const Query *q, const struct ps_flow_key *k, const struct ps_flow_value *v);
bool query_match_icmp(const Query *q, const struct ps_icmp_key *k);

/* Sort metrics; bigger is "more". now_ns is CLOCK_MONOTONIC. */
uint64_t query_flow_metric(const Query *q, const struct ps_flow_value *v, uint64_t now_ns);
/* The same for a sort alone: what the ranked view computes for every entry of a sweep. */
uint64_t query_sort_flow_metric(QuerySort sort, const struct ps_flow_value *v, uint64_t now_ns);
uint64_t query_icmp_metric(const Query *q, const struct ps_icmp_value *v, uint64_t now_ns);

/* Average rate since the flow was first seen, per second. */
double rate_per_sec(uint64_t count, uint64_t first_seen_ns, uint64_t now_ns);


/*
 * Keeps the `capacity` best entries offered (a min-heap on the metric), so that a top-N query
 * over a million flows costs O(flows · log N) time and O(N) memory. Entries carry a copy of the
 * row payload and the index of the link it came from.
 */
typedef struct TopEntry {
        uint64_t metric;
        uint32_t link_index;
        union {
                struct {
                        struct ps_flow_key key;
                        struct ps_flow_value value;
                } flow;
                struct {
                        struct ps_icmp_key key;
                        struct ps_icmp_value value;
                } icmp;
        };
} TopEntry;

typedef struct TopN {
        TopEntry *heap;
        size_t size;
        size_t capacity;
} TopN;

int topn_init(TopN *t, size_t capacity);
void topn_done(TopN *t);
/* Whether an entry with this metric would be kept: test before building the entry. */
bool topn_wants(const TopN *t, uint64_t metric);
void topn_push(TopN *t, const TopEntry *e);
/* Sorts the kept entries, best first (ties: stable by payload bytes, so output is deterministic). */
void topn_sort(TopN *t);
