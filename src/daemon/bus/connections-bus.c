/* SPDX-License-Identifier: MIT */
#include <bpf/bpf.h>
#include <time.h>

#include "bus-util.h"
#include "connections-bus.h"
#include "flow-table.h"
#include "manager.h"
#include "util.h"

struct collect_ctx {
        const Query *q;
        TopN *top;
        uint32_t link_index;
        uint64_t now_ns;
};

/* One table entry: kept in the heap if the query matches it and its metric ranks high
 * enough. q->kind says which table the key and value come from. */
static int collect(Link *l, const void *key, const void *value, void *userdata) {
        struct collect_ctx *c = userdata;
        bool flows = c->q->kind == QUERY_FLOWS;
        TopEntry e;

        if (flows ? !query_match_flow(c->q, key, value) : !query_match_icmp(c->q, key))
                return 0;
        e.metric = flows ? query_flow_metric(c->q, value, c->now_ns) :
                           query_icmp_metric(c->q, value, c->now_ns);
        if (!topn_wants(c->top, e.metric))
                return 0;
        e.link_index = c->link_index;
        if (flows) {
                e.flow.key = *(const struct ps_flow_key *) key;
                e.flow.value = *(const struct ps_flow_value *) value;
        } else {
                e.icmp.key = *(const struct ps_icmp_key *) key;
                e.icmp.value = *(const struct ps_icmp_value *) value;
        }
        topn_push(c->top, &e);
        return 0;
}

/* A row the ranked view chose: live counters, and how old the choice is
 * (rank_age_usec: since the start of the sweep pass that ranked it). */
static int append_ranked_row(sd_bus_message *reply, const char *link, const TopEntry *e,
                             uint64_t now_ns, uint64_t since_ns) {
        int r;

        r = sd_bus_message_open_container(reply, 'a', "{sv}");
        if (r < 0)
                return r;
        r = bus_append_flow_fields(reply, link, &e->flow.key, &e->flow.value, now_ns);
        if (r < 0)
                return r;
        r = bus_dict_u64(reply, "rank_age_usec",
                         (now_ns - MIN(now_ns, since_ns)) / NSEC_PER_USEC);
        if (r < 0)
                return r;
        return sd_bus_message_close_container(reply);
}

/* The best of the ranked view's candidates of one link (flow_rank_reads()), each read again
 * from the kernel so the counters are live; a flow that expired since the pass is gone from the
 * map and skipped. */
static int collect_ranked(Link *l, FlowRankSort sort, struct collect_ctx *c) {
        const TopN *cand = &l->flow_rank.ready[sort];
        size_t n = flow_rank_reads(&l->flow_rank, sort, c->q);

        for (size_t i = 0; i < n; i++) {
                const struct ps_flow_key *k = &cand->heap[i].flow.key;
                struct ps_flow_value v;

                if (bpf_map_lookup_elem(l->flows_fd, k, &v) < 0) {
                        if (errno == ENOENT)
                                continue;
                        return -errno;
                }
                (void) collect(l, k, &v, c);
        }
        return 0;
}

/*
 * Both List methods: read each link's table once in batches, keep only the best offset+limit
 * rows in a bounded heap, and send just those. Nothing proportional to the table size is ever
 * put on the bus or kept in memory.
 */
static int method_list_common(sd_bus_message *msg, Manager *m, QueryKind kind,
                              sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        Query q;
        TopN top = {};
        uint64_t now = now_nsec(CLOCK_MONOTONIC);
        _cleanup_free_ bool *ranked = NULL;
        int r;

        query_init(&q, kind);
        r = bus_read_query(msg, &q, error);
        if (r < 0)
                goto finish;
        if (q.link && !manager_find_link(m, q.link)) {
                r = sd_bus_error_setf(error, PS_ERROR_NO_SUCH_LINK,
                                      "query key 'link': '%.32s' is not guarded", q.link);
                goto finish;
        }
        r = topn_init(&top, (size_t) q.offset + q.limit);
        if (r < 0)
                goto finish;

        ranked = calloc(MAX(m->n_links, (size_t) 1), sizeof(bool));
        if (!ranked) {
                r = -ENOMEM;
                goto finish;
        }
        for (size_t i = 0; i < m->n_links; i++) {
                Link *l = m->links[i];
                struct collect_ctx c = { .q = &q, .top = &top, .link_index = (uint32_t) i,
                                         .now_ns = now };
                FlowRankSort sort;

                if (q.link && !streq(q.link, l->name))
                        continue;
                /* A big table answers from its ranked view, a small one is read whole. */
                if (kind == QUERY_FLOWS &&
                    flow_rank_answers(&l->flow_rank, &q, l->flow_count,
                                      m->config.ranked_view_min_flows, &sort)) {
                        ranked[i] = true;
                        r = collect_ranked(l, sort, &c);
                } else
                        r = flow_table_foreach(l, kind == QUERY_FLOWS ? FLOW_TABLE_CONNECTIONS :
                                                                        FLOW_TABLE_ICMP,
                                               collect, &c);
                if (r < 0) {
                        r = sd_bus_error_set_errnof(error, -r, "reading the table of %s failed: %s",
                                                    l->name, strerror(-r));
                        goto finish;
                }
        }
        topn_sort(&top);

        r = bus_reply_open(msg, 'a', "a{sv}", &reply);
        if (r < 0)
                goto finish;
        for (size_t i = q.offset; i < top.size; i++) {
                const TopEntry *e = &top.heap[i];
                const char *link = m->links[e->link_index]->name;

                if (ranked[e->link_index])
                        r = append_ranked_row(reply, link, e, now,
                                              m->links[e->link_index]->flow_rank.ready_since_ns);
                else
                        r = kind == QUERY_FLOWS ? bus_append_flow_row(reply, link, &e->flow.key,
                                                                      &e->flow.value, now)
                                                : bus_append_icmp_row(reply, link, &e->icmp.key,
                                                                      &e->icmp.value);
                if (r < 0)
                        goto finish;
        }
        r = bus_reply_close_send(reply);
finish:
        topn_done(&top);
        query_done(&q);
        return r;
}

static int method_list(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        return method_list_common(msg, userdata, QUERY_FLOWS, error);
}

static int method_list_icmp(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        return method_list_common(msg, userdata, QUERY_ICMP, error);
}

static int property_get_count(sd_bus *bus, const char *path, const char *interface,
                              const char *property, sd_bus_message *reply, void *userdata,
                              sd_bus_error *error) {
        Manager *m = userdata;
        struct ps_stats s;
        uint64_t flows, icmp;

        manager_totals(m, &s, NULL, NULL, &flows, &icmp);
        return sd_bus_message_append(reply, "t", streq(property, "Count") ? flows : icmp);
}

static const sd_bus_vtable connections_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Count", "t", property_get_count, 0, 0),
        SD_BUS_PROPERTY("IcmpCount", "t", property_get_count, 0, 0),
        SD_BUS_METHOD_WITH_ARGS("List", SD_BUS_ARGS("a{sv}", query),
                                SD_BUS_RESULT("aa{sv}", connections), method_list,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ListIcmp", SD_BUS_ARGS("a{sv}", query),
                                SD_BUS_RESULT("aa{sv}", entries), method_list_icmp,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};

int connections_bus_register(Manager *m) {
        return sd_bus_add_object_vtable(m->bus, NULL, PS_OBJECT_CONNECTIONS,
                                        PS_IFACE_CONNECTIONS,
                                        connections_vtable, m);
}
