/* SPDX-License-Identifier: MIT */
#include <netinet/in.h>

#include "bpf-maps.h"
#include "flow-table.h"
#include "util.h"

struct walk_ctx {
        Link *link;
        flow_table_visit_t visit;
        void *userdata;
};

static int walk_one(const void *key, const void *value, void *userdata) {
        struct walk_ctx *c = userdata;

        return c->visit(c->link, key, value, c->userdata);
}

/* An entry of the ICMP (IPv4) table, handed on under the key both ICMP tables share here. */
static int walk_icmp4(const void *key, const void *value, void *userdata) {
        const struct ps_icmp4_key *k4 = key;
        struct ps_icmp_key k = {
                .family = PS_FAMILY_IPV4, .type = k4->type, .code = k4->code,
                .src = { k4->src }, .dst = { k4->dst },
        };

        return walk_one(&k, value, userdata);
}

int flow_table_foreach(Link *l, FlowTableKind kind, flow_table_visit_t visit, void *userdata) {
        struct walk_ctx c = { .link = l, .visit = visit, .userdata = userdata };
        uint64_t count;
        int r;

        assert(l);
        assert(visit);
        if (kind == FLOW_TABLE_CONNECTIONS) {
                r = bpf_map_walk(l->flows_fd, sizeof(struct ps_flow_key),
                                 sizeof(struct ps_flow_value), walk_one, &c, &count);
                if (r >= 0)
                        l->flow_count = count;
        } else {
                uint64_t count4;

                r = bpf_map_walk(l->icmp4_fd, sizeof(struct ps_icmp4_key),
                                 sizeof(struct ps_icmp_value), walk_icmp4, &c, &count4);
                if (r < 0)
                        return r;
                r = bpf_map_walk(l->icmp_fd, sizeof(struct ps_icmp_key),
                                 sizeof(struct ps_icmp_value), walk_one, &c, &count);
                if (r >= 0) {
                        l->icmp4_count = count4;
                        l->icmp6_count = count;
                        l->icmp_count = count4 + count;
                }
        }
        return r;
}

void flow_entry_to_match(const struct ps_flow_key *k, const struct ps_flow_value *v,
                         struct ps_match *ret) {
        assert(k);
        assert(v);
        assert(ret);
        *ret = (struct ps_match) {
                .family = k->family, .proto = k->proto, .sport = k->sport, .dport = k->dport,
                .tcp_flags = v->last_flags,
        };
        memcpy(ret->src, k->src, sizeof ret->src);
        memcpy(ret->dst, k->dst, sizeof ret->dst);
}

void icmp_entry_to_match(const struct ps_icmp_key *k, const struct ps_icmp_value *v,
                         struct ps_match *ret) {
        assert(k);
        assert(v);
        assert(ret);
        *ret = (struct ps_match) {
                .family = k->family,
                .proto = k->family == PS_FAMILY_IPV6 ? IPPROTO_ICMPV6 : IPPROTO_ICMP,
                .icmp_type = k->type, .icmp_code = k->code,
        };
        memcpy(ret->src, k->src, sizeof ret->src);
        memcpy(ret->dst, k->dst, sizeof ret->dst);
        if (v->is_error) {
                ret->inner_proto = v->inner_proto;
                ret->inner_sport = v->inner_sport;
                ret->inner_dport = v->inner_dport;
                memcpy(ret->inner_src, v->inner_src, sizeof ret->inner_src);
                memcpy(ret->inner_dst, v->inner_dst, sizeof ret->inner_dst);
        }
}

bool flow_is_expired(const struct ps_flow_key *k, const struct ps_flow_value *v, uint64_t now_ns,
                     uint64_t idle_ns, uint64_t closed_ns) {
        uint64_t timeout = idle_ns;

        if (k->proto == IPPROTO_TCP && (v->state == PS_STATE_FIN || v->state == PS_STATE_RST))
                timeout = MIN(idle_ns, closed_ns);
        return v->last_seen < now_ns && now_ns - v->last_seen > timeout;
}

struct expiry_ctx {
        uint64_t idle_ns, closed_ns;
        FlowRank *rank;
};

/* Every entry of the connections table passes here once a sweep pass: the live ones are
 * offered to the ranked view on the way, so ranking costs no read of its own. */
static bool flow_expired_cb(const void *k, const void *v, uint64_t now_ns, void *userdata) {
        struct expiry_ctx *c = userdata;

        if (flow_is_expired(k, v, now_ns, c->idle_ns, c->closed_ns))
                return true;
        if (c->rank)
                flow_rank_offer(c->rank, k, v, now_ns);
        return false;
}

static bool icmp_expired_cb(const void *k, const void *v, uint64_t now_ns, void *userdata) {
        const struct ps_icmp_value *iv = v;
        struct expiry_ctx *c = userdata;

        return iv->last_seen < now_ns && now_ns - iv->last_seen > c->idle_ns;
}

/* One slice of an ICMP table's sweep; *count: its entries after a pass that ended here. */
static int icmp_sweep_step(BpfMapSweeper *s, int fd, size_t budget, uint64_t now_ns,
                           struct expiry_ctx *c, uint64_t *count) {
        bool done;
        int r = bpf_map_sweeper_step(s, fd, budget, now_ns, icmp_expired_cb, c, &done);

        if (r >= 0 && done)
                *count = s->last_count - MIN(s->last_count, (uint64_t) r);
        return r;
}

int flow_table_sweep(Link *l, uint64_t now_ns, uint64_t idle_ns, uint64_t closed_ns,
                     size_t flow_budget, size_t icmp_budget) {
        struct expiry_ctx c = { .idle_ns = idle_ns, .closed_ns = closed_ns,
                                .rank = &l->flow_rank };
        bool done;
        int r, total = 0;

        assert(l);
        if (!l->flow_sweeper.started)
                flow_rank_pass_begin(&l->flow_rank, now_ns);
        r = bpf_map_sweeper_step(&l->flow_sweeper, l->flows_fd, flow_budget, now_ns,
                                 flow_expired_cb, &c, &done);
        if (r < 0)
                return r;
        total += r;
        if (done)
                flow_rank_pass_done(&l->flow_rank);
        if (done)
                l->flow_count = l->flow_sweeper.last_count -
                                MIN(l->flow_sweeper.last_count, (uint64_t) r);
        c.rank = NULL;
        /* Each ICMP table gets the whole ICMP budget: each may hold IcmpTableSize= entries. */
        r = icmp_sweep_step(&l->icmp_sweeper, l->icmp_fd, icmp_budget, now_ns, &c,
                            &l->icmp6_count);
        if (r < 0)
                return r;
        total += r;
        r = icmp_sweep_step(&l->icmp4_sweeper, l->icmp4_fd, icmp_budget, now_ns, &c,
                            &l->icmp4_count);
        if (r < 0)
                return r;
        total += r;
        l->icmp_count = l->icmp4_count + l->icmp6_count;
        return total;
}
