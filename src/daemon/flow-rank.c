/* SPDX-License-Identifier: MIT */
#include "flow-rank.h"
#include "util.h"

static const QuerySort rank_to_query[_FLOW_RANK_MAX] = {
        [FLOW_RANK_BYTES] = QUERY_SORT_BYTES,
        [FLOW_RANK_PACKETS] = QUERY_SORT_PACKETS,
        [FLOW_RANK_RATE] = QUERY_SORT_RATE,
};

int flow_rank_init(FlowRank *r) {
        *r = (FlowRank) {};
        for (size_t i = 0; i < _FLOW_RANK_MAX; i++)
                if (topn_init(&r->building[i], FLOW_RANK_DEPTH) < 0 ||
                    topn_init(&r->ready[i], FLOW_RANK_DEPTH) < 0) {
                        flow_rank_done(r);
                        return -ENOMEM;
                }
        return 0;
}

void flow_rank_done(FlowRank *r) {
        for (size_t i = 0; i < _FLOW_RANK_MAX; i++) {
                topn_done(&r->building[i]);
                topn_done(&r->ready[i]);
        }
}

void flow_rank_offer(FlowRank *r, const struct ps_flow_key *k, const struct ps_flow_value *v,
                     uint64_t now_ns) {
        if (!r->building[0].heap)
                return;
        /* Every entry of the table passes here once a pass, and few are kept (about
         * depth x ln(entries / depth) per ranking over a pass): the metric is computed and
         * tested first, the entry (zeroed, so that ties sort by its bytes alone) built only
         * for those kept. */
        for (size_t i = 0; i < _FLOW_RANK_MAX; i++) {
                uint64_t metric = query_sort_flow_metric(rank_to_query[i], v, now_ns);
                TopEntry e;

                if (!topn_wants(&r->building[i], metric))
                        continue;
                e = (TopEntry) { .metric = metric };
                e.flow.key = *k;
                e.flow.value = *v;
                topn_push(&r->building[i], &e);
        }
}

void flow_rank_pass_begin(FlowRank *r, uint64_t now_ns) {
        r->building_since_ns = now_ns;
}

void flow_rank_pass_done(FlowRank *r) {
        if (!r->building[0].heap)
                return;
        for (size_t i = 0; i < _FLOW_RANK_MAX; i++) {
                TopN t = r->ready[i];

                r->ready[i] = r->building[i];
                r->building[i] = t;
                r->building[i].size = 0;
                /* Once a pass, so that a query can take the best few (the building side is
                 * refilled from empty, so its heap order is not needed after the swap). */
                topn_sort(&r->ready[i]);
        }
        r->ready_since_ns = r->building_since_ns;
        r->have_ready = true;
}

bool flow_rank_answers(const FlowRank *r, const Query *q, uint64_t flows, uint32_t min_flows,
                       FlowRankSort *ret_sort) {
        if (!r->have_ready || min_flows == 0 || flows < min_flows || q->kind != QUERY_FLOWS || q->fresh || q->has_protocol ||
            q->has_family || q->has_address || q->has_port || q->has_state ||
            (uint64_t) q->offset + q->limit > FLOW_RANK_DEPTH)
                return false;
        for (size_t i = 0; i < _FLOW_RANK_MAX; i++)
                if (rank_to_query[i] == q->sort) {
                        *ret_sort = (FlowRankSort) i;
                        return true;
                }
        return false;
}

size_t flow_rank_reads(const FlowRank *r, FlowRankSort sort, const Query *q) {
        uint64_t want = ((uint64_t) q->offset + q->limit) * FLOW_RANK_READ_FACTOR;

        want = MAX(want, (uint64_t) FLOW_RANK_READ_MIN);
        return (size_t) MIN(want, (uint64_t) r->ready[sort].size);
}
