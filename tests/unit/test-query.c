/* SPDX-License-Identifier: MIT */
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <criterion/criterion.h>
#include <netinet/in.h>

#include "bpf-maps.h"
#include "flow-rank.h"
#include "flow-table.h"
#include "query.h"
#include "util.h"

static QueryValue S(const char *s) {
        return (QueryValue) { .type = 's', .s = s };
}
static QueryValue U(char type, uint64_t u) {
        return (QueryValue) { .type = type, .u = u };
}

static void expect_error(QueryKind kind, const char *key, QueryValue v, const char *needle) {
        Query q;
        char *err = NULL;

        query_init(&q, kind);
        cr_assert_eq(query_set(&q, key, &v, &err), -EINVAL, "key %s accepted", key);
        cr_assert_not_null(err);
        cr_assert(strstr(err, needle), "error '%s' lacks '%s'", err, needle);
        free(err);
        query_done(&q);
}

Test(query, defaults) {
        Query q;

        query_init(&q, QUERY_FLOWS);
        cr_assert_eq(q.limit, QUERY_LIMIT_DEFAULT);
        cr_assert_eq(q.sort, QUERY_SORT_BYTES);
        query_init(&q, QUERY_ICMP);
        cr_assert_eq(q.sort, QUERY_SORT_PACKETS);
}

Test(query, good_keys) {
        Query q;
        char *err = NULL;
        QueryValue v;

        query_init(&q, QUERY_FLOWS);
        v = U('u', 20);
        cr_assert_eq(query_set(&q, "limit", &v, &err), 0);
        v = U('u', 40);
        cr_assert_eq(query_set(&q, "offset", &v, &err), 0);
        v = S("rate");
        cr_assert_eq(query_set(&q, "sort", &v, &err), 0);
        v = S("udp");
        cr_assert_eq(query_set(&q, "protocol", &v, &err), 0);
        v = U('q', 53);
        cr_assert_eq(query_set(&q, "port", &v, &err), 0);
        v = S("10.0.0.0/8");
        cr_assert_eq(query_set(&q, "address", &v, &err), 0);
        v = S("ps0");
        cr_assert_eq(query_set(&q, "link", &v, &err), 0);
        v = S("ipv4");
        cr_assert_eq(query_set(&q, "family", &v, &err), 0);
        v = S("established");
        cr_assert_eq(query_set(&q, "state", &v, &err), 0);
        cr_assert_eq(query_finish(&q, &err), 0);
        cr_assert_eq(q.limit, 20);
        cr_assert_eq(q.offset, 40);
        cr_assert_eq(q.sort, QUERY_SORT_RATE);
        cr_assert_eq(q.protocol, IPPROTO_UDP);
        cr_assert_eq(q.port, 53);
        cr_assert_str_eq(q.link, "ps0");
        cr_assert_eq(q.state, PS_STATE_ESTABLISHED);
        query_done(&q);
}

Test(query, bad_values_are_named) {
        expect_error(QUERY_FLOWS, "limit", U('u', 0), "'limit' out of range; accepted: 1 to 10000");
        expect_error(QUERY_FLOWS, "limit", U('u', 1000000000), "accepted: 1 to 10000");
        expect_error(QUERY_FLOWS, "limit", S("20"), "expected an unsigned integer");
        expect_error(QUERY_FLOWS, "offset", U('u', 100000), "'offset' out of range");
        expect_error(QUERY_FLOWS, "sort", S("size"), "accepted: bytes, packets, last_seen");
        expect_error(QUERY_FLOWS, "sort", U('u', 1), "expected a string");
        expect_error(QUERY_FLOWS, "protocol", S("tcpx"), "accepted: tcp, udp");
        expect_error(QUERY_FLOWS, "protocol", U('u', 300), "protocol number 0-255");
        expect_error(QUERY_FLOWS, "address", S("10.0.0.0/33"), "bad prefix length");
        expect_error(QUERY_FLOWS, "address", S("not-an-ip"), "not an address or CIDR");
        expect_error(QUERY_FLOWS, "port", U('u', 70000), "'port' out of range; accepted: 0-65535");
        expect_error(QUERY_FLOWS, "port", S("80"), "port number");
        expect_error(QUERY_FLOWS, "family", S("ipx"), "accepted: ipv4, ipv6");
        expect_error(QUERY_FLOWS, "state", S("open"), "accepted: none, syn");
        expect_error(QUERY_FLOWS, "colour", S("red"), "unknown query key 'colour'; accepted:");
        expect_error(QUERY_ICMP, "port", U('q', 1), "unknown query key 'port'");
        expect_error(QUERY_ICMP, "type", U('u', 256), "out of range; accepted: ICMP type 0-255");
}

Test(query, negative_signed_limit) {
        expect_error(QUERY_FLOWS, "limit", ((QueryValue) { .type = 'i', .i = -5 }), "out of range");
}

Test(query, window_bound) {
        Query q;
        char *err = NULL;
        QueryValue v = U('u', 99999);

        query_init(&q, QUERY_FLOWS);
        cr_assert_eq(query_set(&q, "offset", &v, &err), 0);
        v = U('u', 5000);
        cr_assert_eq(query_set(&q, "limit", &v, &err), 0);
        cr_assert_eq(query_finish(&q, &err), -EINVAL);
        cr_assert(strstr(err, "offset + limit"));
        free(err);
        query_done(&q);
}

static struct ps_flow_key flow4(const char *src, const char *dst, uint8_t proto, uint16_t sp,
                                uint16_t dp) {
        struct ps_flow_key k = { .family = PS_FAMILY_IPV4, .proto = proto, .sport = sp, .dport = dp };

        inet_pton(AF_INET, src, k.src);
        inet_pton(AF_INET, dst, k.dst);
        return k;
}

Test(query, match_flow) {
        Query q;
        char *err = NULL;
        QueryValue v;
        struct ps_flow_key a = flow4("192.0.2.1", "10.0.0.5", IPPROTO_TCP, 40000, 22);
        struct ps_flow_key b = flow4("198.51.100.9", "10.0.0.5", IPPROTO_UDP, 5353, 53);
        struct ps_flow_value none = {}, est = { .state = PS_STATE_ESTABLISHED };

        query_init(&q, QUERY_FLOWS);
        cr_assert(query_match_flow(&q, &a, &none));
        v = S("192.0.2.0/24");
        cr_assert_eq(query_set(&q, "address", &v, &err), 0);
        cr_assert(query_match_flow(&q, &a, &none));
        cr_assert_not(query_match_flow(&q, &b, &none));
        query_done(&q);

        /* address matches either end */
        query_init(&q, QUERY_FLOWS);
        v = S("10.0.0.5");
        cr_assert_eq(query_set(&q, "address", &v, &err), 0);
        cr_assert(query_match_flow(&q, &a, &none) && query_match_flow(&q, &b, &none));
        /* port matches either end */
        v = U('q', 5353);
        cr_assert_eq(query_set(&q, "port", &v, &err), 0);
        cr_assert_not(query_match_flow(&q, &a, &none));
        cr_assert(query_match_flow(&q, &b, &none));
        v = S("tcp");
        cr_assert_eq(query_set(&q, "protocol", &v, &err), 0);
        cr_assert_not(query_match_flow(&q, &b, &none));
        query_done(&q);

        query_init(&q, QUERY_FLOWS);
        v = S("established");
        cr_assert_eq(query_set(&q, "state", &v, &err), 0);
        cr_assert_not(query_match_flow(&q, &a, &none));
        cr_assert(query_match_flow(&q, &a, &est));
        query_done(&q);

        query_init(&q, QUERY_FLOWS);
        v = S("ipv6");
        cr_assert_eq(query_set(&q, "family", &v, &err), 0);
        cr_assert_not(query_match_flow(&q, &a, &none));
        query_done(&q);
}

Test(query, topn_keeps_the_best_in_order) {
        TopN t;
        TopEntry e = {};
        uint64_t expect = 1000;

        cr_assert_eq(topn_init(&t, 10), 0);
        /* 1000 entries with distinct metrics, offered in a scrambled order. */
        for (uint64_t i = 0; i < 1000; i++) {
                e.metric = (i * 7919) % 1000 + 1;
                e.flow.value.bytes = e.metric; /* payload travels with its metric */
                if (topn_wants(&t, e.metric))
                        topn_push(&t, &e);
        }
        topn_sort(&t);
        cr_assert_eq(t.size, 10);
        for (size_t i = 0; i < t.size; i++) {
                cr_assert_eq(t.heap[i].metric, expect - i);
                cr_assert_eq(t.heap[i].flow.value.bytes, expect - i);
        }
        topn_done(&t);
}

Test(query, topn_equal_metrics_keep_their_payloads) {
        TopN t;
        TopEntry e = {};

        cr_assert_eq(topn_init(&t, 3), 0);
        for (uint16_t i = 0; i < 6; i++) {
                e.metric = 5;
                e.flow.key.sport = i;
                topn_push(&t, &e);
        }
        cr_assert_eq(t.size, 3);
        topn_sort(&t);
        /* The first three with metric 5 stay (equal metrics do not displace), each intact. */
        for (size_t i = 0; i < t.size; i++)
                cr_assert_lt(t.heap[i].flow.key.sport, 3);
        cr_assert_neq(t.heap[0].flow.key.sport, t.heap[1].flow.key.sport);
        topn_done(&t);
}

Test(query, metrics_and_rates) {
        Query q;
        struct ps_flow_value v = { .packets = 10, .bytes = 1000, .first_seen = 1 * NSEC_PER_SEC,
                                   .last_seen = 3 * NSEC_PER_SEC };

        query_init(&q, QUERY_FLOWS);
        cr_assert_eq(query_flow_metric(&q, &v, 5 * NSEC_PER_SEC), 1000);
        q.sort = QUERY_SORT_PACKETS;
        cr_assert_eq(query_flow_metric(&q, &v, 5 * NSEC_PER_SEC), 10);
        q.sort = QUERY_SORT_LAST_SEEN;
        cr_assert_eq(query_flow_metric(&q, &v, 5 * NSEC_PER_SEC), 3 * NSEC_PER_SEC);
        /* 1000 bytes over 4 s = 250 B/s = 2000 bit/s */
        q.sort = QUERY_SORT_RATE;
        cr_assert_eq(query_flow_metric(&q, &v, 5 * NSEC_PER_SEC), 2000);
        cr_assert_float_eq(rate_per_sec(10, 1 * NSEC_PER_SEC, 5 * NSEC_PER_SEC), 2.5, 1e-9);
        /* under one second of history the count stands for itself */
        cr_assert_float_eq(rate_per_sec(7, 0, NSEC_PER_SEC / 2), 7.0, 1e-9);
}

Test(query, rate_past_uint64_sorts_as_the_largest) {
        Query q;
        /* 2^62 bytes within its first second: 2^65 bit/s, more than uint64_t holds. */
        struct ps_flow_value v = { .packets = 1, .bytes = UINT64_C(1) << 62,
                                   .first_seen = NSEC_PER_SEC, .last_seen = NSEC_PER_SEC };

        query_init(&q, QUERY_FLOWS);
        q.sort = QUERY_SORT_RATE;
        cr_assert_eq(query_flow_metric(&q, &v, NSEC_PER_SEC + 1), UINT64_MAX);
        /* just below the limit the figure is kept as it is */
        v.bytes = UINT64_C(1) << 60;
        cr_assert_eq(query_flow_metric(&q, &v, NSEC_PER_SEC + 1), UINT64_C(1) << 63);
}

Test(query, protocol_names) {
        char buf[4];
        uint8_t p;

        cr_assert_str_eq(protocol_to_string(IPPROTO_TCP, buf), "tcp");
        cr_assert_str_eq(protocol_to_string(143, buf), "143");
        cr_assert_eq(protocol_from_string("UDP", &p), 0);
        cr_assert_eq(p, IPPROTO_UDP);
        cr_assert_eq(protocol_from_string("47", &p), 0);
        cr_assert_eq(p, 47);
        cr_assert_eq(protocol_from_string("256", &p), -EINVAL);
}

Test(flows, expiry_rule) {
        struct ps_flow_key tcp = { .proto = IPPROTO_TCP }, udp = { .proto = IPPROTO_UDP };
        struct ps_flow_value v = { .last_seen = 100 * NSEC_PER_SEC, .state = PS_STATE_ESTABLISHED };
        uint64_t idle = 300 * NSEC_PER_SEC, closed = 30 * NSEC_PER_SEC;

        cr_assert_not(flow_is_expired(&tcp, &v, 200 * NSEC_PER_SEC, idle, closed));
        cr_assert(flow_is_expired(&tcp, &v, 401 * NSEC_PER_SEC, idle, closed));
        v.state = PS_STATE_FIN;
        cr_assert(flow_is_expired(&tcp, &v, 131 * NSEC_PER_SEC, idle, closed));
        cr_assert_not(flow_is_expired(&tcp, &v, 129 * NSEC_PER_SEC, idle, closed));
        /* FIN state only shortens TCP */
        v.state = PS_STATE_FIN;
        cr_assert_not(flow_is_expired(&udp, &v, 131 * NSEC_PER_SEC, idle, closed));
        /* a last_seen in the future (clock skew between reads) never expires */
        cr_assert_not(flow_is_expired(&udp, &v, 50 * NSEC_PER_SEC, idle, closed));
}

/* The ranked view: what a sweep pass offers becomes the candidates at the end of the pass. */
static void offer_flow(FlowRank *r, uint16_t sport, uint64_t packets, uint64_t bytes) {
        struct ps_flow_key k = { .family = PS_FAMILY_IPV4, .proto = IPPROTO_UDP,
                                 .sport = htons(sport), .dport = htons(53) };
        struct ps_flow_value v = { .packets = packets, .bytes = bytes, .first_seen = 1,
                                   .last_seen = 2 };

        flow_rank_offer(r, &k, &v, 1000000000);
}

static bool rank_holds(const TopN *t, uint16_t sport) {
        for (size_t i = 0; i < t->size; i++)
                if (t->heap[i].flow.key.sport == htons(sport))
                        return true;
        return false;
}

Test(flow_rank, keeps_the_best_of_a_pass_per_sort) {
        FlowRank r;
        FlowRankSort sort;
        Query q;

        cr_assert_eq(flow_rank_init(&r), 0);
        query_init(&q, QUERY_FLOWS);
        flow_rank_pass_begin(&r, 5);
        /* 5000 flows: bytes rise with the port, packets fall with it. */
        for (uint16_t p = 1; p <= 5000; p++)
                offer_flow(&r, p, 5001 - p, p);
        cr_assert_not(flow_rank_answers(&r, &q, 5000, 1, &sort), "answered before a pass ended");
        flow_rank_pass_done(&r);
        cr_assert_eq(r.ready_since_ns, 5);
        cr_assert_eq(r.ready[FLOW_RANK_BYTES].size, FLOW_RANK_DEPTH);
        cr_assert(rank_holds(&r.ready[FLOW_RANK_BYTES], 5000));
        cr_assert(rank_holds(&r.ready[FLOW_RANK_BYTES], 5000 - FLOW_RANK_DEPTH + 1));
        cr_assert_not(rank_holds(&r.ready[FLOW_RANK_BYTES], 5000 - FLOW_RANK_DEPTH));
        cr_assert(rank_holds(&r.ready[FLOW_RANK_PACKETS], 1));
        cr_assert(rank_holds(&r.ready[FLOW_RANK_PACKETS], FLOW_RANK_DEPTH));
        cr_assert_not(rank_holds(&r.ready[FLOW_RANK_PACKETS], FLOW_RANK_DEPTH + 1));
        cr_assert(flow_rank_answers(&r, &q, 5000, 1, &sort));
        cr_assert_eq(sort, FLOW_RANK_BYTES);

        /* The next pass replaces the view whole: a flow it did not see is no candidate. */
        flow_rank_pass_begin(&r, 9);
        offer_flow(&r, 7, 1, 1);
        flow_rank_pass_done(&r);
        cr_assert_eq(r.ready[FLOW_RANK_BYTES].size, 1);
        cr_assert(rank_holds(&r.ready[FLOW_RANK_BYTES], 7));
        cr_assert_eq(r.ready_since_ns, 9);
        flow_rank_done(&r);
}

/* A query re-reads the best 4 x (offset + limit) candidates of the pass, at least 64. */
Test(flow_rank, a_query_reads_the_best_few_candidates) {
        FlowRank r;
        Query q;

        cr_assert_eq(flow_rank_init(&r), 0);
        query_init(&q, QUERY_FLOWS);
        flow_rank_pass_begin(&r, 1);
        for (uint16_t p = 1; p <= 3000; p++)
                offer_flow(&r, p, 3001 - p, p);
        flow_rank_pass_done(&r);
        /* Sorted best first by bytes: ports 3000, 2999, ... */
        for (size_t i = 0; i < 300; i++)
                cr_assert_eq(r.ready[FLOW_RANK_BYTES].heap[i].flow.key.sport, htons(3000 - i),
                             "bytes rank %zu", i);
        for (size_t i = 0; i < 300; i++)
                cr_assert_eq(r.ready[FLOW_RANK_PACKETS].heap[i].flow.key.sport, htons(1 + i),
                             "packets rank %zu", i);
        q.limit = 20;
        cr_assert_eq(flow_rank_reads(&r, FLOW_RANK_BYTES, &q), 80);
        q.limit = 5;
        cr_assert_eq(flow_rank_reads(&r, FLOW_RANK_BYTES, &q), 64, "at least 64");
        q.limit = 100;
        q.offset = 50;
        cr_assert_eq(flow_rank_reads(&r, FLOW_RANK_BYTES, &q), 600);
        q.limit = 1000;
        q.offset = 24;
        cr_assert_eq(flow_rank_reads(&r, FLOW_RANK_BYTES, &q), 1024, "at most the depth");

        /* A pass that saw fewer flows than that: all of them. */
        flow_rank_pass_begin(&r, 2);
        for (uint16_t p = 1; p <= 10; p++)
                offer_flow(&r, p, p, p);
        flow_rank_pass_done(&r);
        q.limit = 20;
        q.offset = 0;
        cr_assert_eq(flow_rank_reads(&r, FLOW_RANK_PACKETS, &q), 10);
        cr_assert_eq(r.ready[FLOW_RANK_PACKETS].heap[0].flow.key.sport, htons(10));
        cr_assert_eq(r.ready[FLOW_RANK_PACKETS].heap[9].flow.key.sport, htons(1));
        flow_rank_done(&r);
}

Test(flow_rank, answers_only_what_it_can) {
        FlowRank r;
        FlowRankSort sort;
        Query q;
        char *err = NULL;
        QueryValue v;

        cr_assert_eq(flow_rank_init(&r), 0);
        flow_rank_pass_begin(&r, 1);
        offer_flow(&r, 1, 1, 1);
        flow_rank_pass_done(&r);

        query_init(&q, QUERY_FLOWS);
        cr_assert(flow_rank_answers(&r, &q, 100, 100, &sort), "at the threshold");
        cr_assert_not(flow_rank_answers(&r, &q, 99, 100, &sort), "below RankedViewMinFlows=");
        cr_assert_not(flow_rank_answers(&r, &q, 100, 0, &sort), "RankedViewMinFlows=0");

        q.sort = QUERY_SORT_RATE;
        cr_assert(flow_rank_answers(&r, &q, 100, 1, &sort));
        cr_assert_eq(sort, FLOW_RANK_RATE);
        q.sort = QUERY_SORT_LAST_SEEN;
        cr_assert_not(flow_rank_answers(&r, &q, 100, 1, &sort), "last_seen has no view");
        q.sort = QUERY_SORT_PACKETS;
        q.limit = 1000;
        q.offset = FLOW_RANK_DEPTH - 1000;
        cr_assert(flow_rank_answers(&r, &q, 100, 1, &sort), "offset + limit == depth");
        q.offset++;
        cr_assert_not(flow_rank_answers(&r, &q, 100, 1, &sort), "offset + limit > depth");
        q.offset = 0;

        v = (QueryValue) { .type = 'b', .u = 1 };
        cr_assert_eq(query_set(&q, "fresh", &v, &err), 0);
        cr_assert_not(flow_rank_answers(&r, &q, 100, 1, &sort), "fresh");
        q.fresh = false;
        v = S("udp");
        cr_assert_eq(query_set(&q, "protocol", &v, &err), 0);
        cr_assert_not(flow_rank_answers(&r, &q, 100, 1, &sort), "a filter");
        query_done(&q);

        query_init(&q, QUERY_ICMP);
        cr_assert_not(flow_rank_answers(&r, &q, 100, 1, &sort), "ICMP");
        query_done(&q);
        flow_rank_done(&r);
}

Test(query, fresh_needs_a_boolean) {
        expect_error(QUERY_FLOWS, "fresh", S("yes"), "expected a boolean (b)");
        expect_error(QUERY_ICMP, "fresh", U('b', 1), "unknown query key 'fresh'");
}

/* A real hash map whose values are a last-seen time: 5000 entries, all expired. */
static bool value_expired(const void *key, const void *value, uint64_t now_ns, void *userdata) {
        return *(const uint64_t *) value < now_ns;
}

Test(sweeper, deletes_at_most_the_bound_per_step_and_resumes_in_the_batch) {
        LIBBPF_OPTS(bpf_map_create_opts, opts);
        BpfMapSweeper s;
        bool done;
        int fd, r;
        uint32_t k, left = 0;
        uint64_t v = 1;

        fd = bpf_map_create(BPF_MAP_TYPE_HASH, "sweeptest", sizeof k, sizeof v, 8192, &opts);
        cr_assert_geq(fd, 0, "bpf_map_create: %s (the unit tests run as root)", strerror(errno));
        for (k = 0; k < 5000; k++)
                cr_assert_eq(bpf_map_update_elem(fd, &k, &v, BPF_ANY), 0);
        cr_assert_eq(bpf_map_sweeper_init(&s, sizeof k, sizeof v), 0);

        /* A budget of the whole table: the bound stops the step, not the budget. */
        r = bpf_map_sweeper_step(&s, fd, 10000, 100, value_expired, NULL, &done);
        cr_assert_eq(r, 2048);
        cr_assert_not(done);
        r = bpf_map_sweeper_step(&s, fd, 10000, 100, value_expired, NULL, &done);
        cr_assert_eq(r, 2048);
        cr_assert_not(done);
        r = bpf_map_sweeper_step(&s, fd, 10000, 100, value_expired, NULL, &done);
        cr_assert_eq(r, 5000 - 2 * 2048, "the rest, those left in a batch included");
        cr_assert(done);
        for (k = 0; k < 5000; k++)
                left += bpf_map_lookup_elem(fd, &k, &v) == 0;
        cr_assert_eq(left, 0, "every entry deleted once the pass is done");
        cr_assert_eq(s.expired_total, 5000);
        bpf_map_sweeper_done(&s);
        close(fd);
}

/* A new set's counter slots are zeroed in batches: every key given must read 0 on every CPU
 * afterwards, across more than one chunk (1 MiB of zeroes), and no other key may change. */
Test(bpf_maps, zero_percpu_keys_zeroes_exactly_the_keys_given) {
        LIBBPF_OPTS(bpf_map_create_opts, opts);
        const uint32_t entries = 65536, value_size = 24;
        int ncpus = bpf_possible_cpus(), fd;
        uint32_t *keys, n = 0;
        bool *given;
        uint8_t *v;

        cr_assert_gt(ncpus, 0);
        fd = bpf_map_create(BPF_MAP_TYPE_PERCPU_ARRAY, "zerotest", sizeof(uint32_t), value_size,
                            entries, &opts);
        cr_assert_geq(fd, 0, "bpf_map_create: %s (the unit tests run as root)", strerror(errno));
        v = malloc((size_t) ncpus * value_size);
        keys = calloc(entries, sizeof(uint32_t));
        given = calloc(entries, sizeof(bool));
        cr_assert(v && keys && given);
        memset(v, 0xab, (size_t) ncpus * value_size);
        /* Two keys in three, from the top down (not in map order). */
        for (uint32_t k = 0; k < entries; k++) {
                cr_assert_eq(bpf_map_update_elem(fd, &k, v, BPF_ANY), 0);
                if (k % 3 != 1) {
                        keys[n++] = entries - 1 - k;
                        given[entries - 1 - k] = true;
                }
        }
        cr_assert_eq(bpf_map_zero_percpu_keys(fd, keys, n, value_size), 0);
        for (uint32_t k = 0; k < entries; k++) {
                cr_assert_eq(bpf_map_lookup_elem(fd, &k, v), 0);
                for (size_t b = 0; b < (size_t) ncpus * value_size; b++)
                        cr_assert_eq(v[b], given[k] ? 0 : 0xab, "key %u (%s), byte %zu: %u", k,
                                     given[k] ? "given" : "not given", b, v[b]);
        }
        free(given);
        free(keys);
        free(v);
        close(fd);
}
