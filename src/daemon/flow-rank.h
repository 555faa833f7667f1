/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "guard-abi.h"
#include "query.h"

/*
 * A link's ranked view of its connections: the flows that ranked highest by bytes, packets and
 * rate when the idle sweep last walked the whole table. Reading a million entries from the
 * kernel costs about a third of a second, so a top-N query does not: it takes the best of these
 * candidates, reads each one's current counters (one lookup apiece) and ranks them again. The
 * values shown are live; which flows are candidates is as old as the last complete sweep pass
 * (a flow that became heavy since then is missing until the next pass). FLOW_RANK_DEPTH bounds
 * the offset + limit such a query may ask for.
 *
 * A lookup costs 1-3 us, so a query re-reads only the best FLOW_RANK_READ_FACTOR times
 * offset + limit candidates of the pass (at least FLOW_RANK_READ_MIN): a flow further down
 * that overtook them since is missing until the next pass, like one that was no candidate.
 */

#define FLOW_RANK_DEPTH 1024u
#define FLOW_RANK_READ_FACTOR 4u
#define FLOW_RANK_READ_MIN 64u

typedef enum FlowRankSort {
        FLOW_RANK_BYTES,
        FLOW_RANK_PACKETS,
        FLOW_RANK_RATE,
        _FLOW_RANK_MAX,
} FlowRankSort;

typedef struct FlowRank {
        TopN building[_FLOW_RANK_MAX]; /* the pass under way */
        TopN ready[_FLOW_RANK_MAX];    /* the last complete pass */
        uint64_t building_since_ns;    /* CLOCK_MONOTONIC start of the pass under way */
        uint64_t ready_since_ns;       /* start of the pass `ready` holds */
        bool have_ready;
} FlowRank;

int flow_rank_init(FlowRank *r);
void flow_rank_done(FlowRank *r);

/* The sweep starts a new pass over the table. */
void flow_rank_pass_begin(FlowRank *r, uint64_t now_ns);
/* One live entry seen by the sweep at now_ns. */
void flow_rank_offer(FlowRank *r, const struct ps_flow_key *k, const struct ps_flow_value *v,
                     uint64_t now_ns);
/* The sweep reached the end of the table: what was built becomes the ranked view, sorted best
 * first. */
void flow_rank_pass_done(FlowRank *r);

/* Whether the ranked view can answer q for a link holding `flows` entries: connections, no
 * filter but the link, sorted by bytes, packets or rate, offset + limit within FLOW_RANK_DEPTH,
 * a complete pass made, and at least min_flows in the table (below that a whole read is cheap
 * and exact; 0 turns the view off). Sets the sort to read. */
bool flow_rank_answers(const FlowRank *r, const Query *q, uint64_t flows, uint32_t min_flows,
                       FlowRankSort *ret_sort);
/* The candidates q re-reads, best first as of the pass: how many, at most FLOW_RANK_DEPTH. */
size_t flow_rank_reads(const FlowRank *r, FlowRankSort sort, const Query *q);
