/* SPDX-License-Identifier: MIT */
/*
 * The classifier in the real compiled program, under BPF_PROG_TEST_RUN: rule sets compiled by
 * the daemon's own compiler, loaded into the program's maps the way the daemon does, and
 * crafted frames; compared with the plain reference matcher in C.
 */
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <criterion/criterion.h>
#include <linux/bpf.h>
#include <stdio.h>

#include "filter-compile.h"
#include "filter-pkt.h"
#include "filters.h"
#include "guard.skel.h"

static struct guard_bpf *skel;
static uint32_t state;

static void setup(void) {
        skel = guard_bpf__open();
        cr_assert_not_null(skel);
        bpf_map__set_max_entries(skel->maps.flows, 4096);
        bpf_map__set_max_entries(skel->maps.icmp_flows, 1024);
        cr_assert_eq(guard_bpf__load(skel), 0, "the program does not load");
        state = 0;
}

static void teardown(void) {
        guard_bpf__destroy(skel);
}

static void load_rules(Filter **rules, size_t n) {
        FilterSet set;
        char *err = NULL;

        cr_assert_eq(filter_compile(rules, n, &set, &err), 0, "%s", err ? err : "");
        cr_assert_eq(filter_kernel_load(bpf_map__fd(skel->maps.filter_state),
                                        bpf_map__fd(skel->maps.filter_banks),
                                        bpf_map__fd(skel->maps.filter_rules), &state, &set), 0);
        filter_set_done(&set);
}

static int run(const struct ps_match *m) {
        uint8_t buf[256];
        LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = buf, .repeat = 1);

        opts.data_size_in = (uint32_t) build_frame(buf, m);
        cr_assert_eq(bpf_prog_test_run_opts(bpf_program__fd(skel->progs.xdp_guard), &opts), 0);
        return (int) opts.retval;
}

static uint64_t hits(uint32_t slot) {
        int ncpus = libbpf_num_possible_cpus();
        struct ps_filter_counter c[ncpus];
        uint64_t h = 0;

        cr_assert_eq(bpf_map_lookup_elem(bpf_map__fd(skel->maps.filter_counters), &slot, c), 0);
        for (int i = 0; i < ncpus; i++)
                h += c[i].hits;
        return h;
}

static Filter *rule(const char *json, uint32_t id) {
        Filter *f = calloc(1, sizeof(Filter));
        json_error_t je;
        json_t *o = json_loads(json, 0, &je);
        char *err = NULL;

        cr_assert_not_null(o, "%s", je.text);
        filter_init(f);
        cr_assert_eq(filter_from_json(f, o, 0, &err), 0, "%s: %s", json, err ? err : "");
        json_decref(o);
        f->id = id;
        f->slot = id;
        f->created_usec = id + 1;
        return f;
}

static struct ps_match v4(uint8_t proto, const char *src, uint16_t sport, uint16_t dport) {
        struct ps_match m = { .family = PS_FAMILY_IPV4, .proto = proto, .sport = sport, .dport = dport };

        inet_pton(AF_INET, src, m.src);
        inet_pton(AF_INET, "10.213.0.1", m.dst);
        if (proto == IPPROTO_TCP)
                m.tcp_flags = 0x02;
        return m;
}

TestSuite(bpf_filter, .init = setup, .fini = teardown);

Test(bpf_filter, empty_set_passes_everything) {
        struct ps_match m = v4(IPPROTO_TCP, "192.0.2.1", 40000, 23);

        cr_assert_eq(run(&m), XDP_PASS);
        load_rules(NULL, 0);
        cr_assert_eq(run(&m), XDP_PASS);
}

Test(bpf_filter, port_drop_and_pass_exception) {
        Filter *r[3] = {
                rule("{\"rule_type\": \"tcp\", \"dst_port\": 23}", 0),
                rule("{\"rule_type\": \"tcp\", \"dst_port\": 23, \"src_ip\": \"192.0.2.0/24\", "
                     "\"action\": \"pass\", \"priority\": 10}", 1),
                rule("{\"rule_type\": \"udp\", \"dst_port\": \"8000-8999\"}", 2),
        };
        struct ps_match a = v4(IPPROTO_TCP, "198.51.100.7", 40000, 23);
        struct ps_match b = v4(IPPROTO_TCP, "192.0.2.9", 40000, 23);
        struct ps_match c = v4(IPPROTO_UDP, "198.51.100.7", 5000, 8500);
        struct ps_match d = v4(IPPROTO_UDP, "198.51.100.7", 5000, 9000);

        load_rules(r, 3);
        cr_assert_eq(run(&a), XDP_DROP);
        cr_assert_eq(run(&b), XDP_PASS, "pass with higher priority beats drop");
        cr_assert_eq(run(&c), XDP_DROP);
        cr_assert_eq(run(&d), XDP_PASS);
        cr_assert_eq(hits(0), 1);
        cr_assert_eq(hits(1), 1);
        cr_assert_eq(hits(2), 1);
        for (int i = 0; i < 3; i++)
                filter_free(r[i]);
}

Test(bpf_filter, count_is_shadow) {
        Filter *r[2] = {
                rule("{\"rule_type\": \"tcp\", \"dst_port\": 22, \"action\": \"count\"}", 0),
                rule("{\"rule_type\": \"tcp\", \"dst_port\": 22, \"src_ip\": \"192.0.2.0/24\", "
                     "\"priority\": 5}", 1),
        };
        struct ps_match a = v4(IPPROTO_TCP, "198.51.100.7", 40000, 22);
        struct ps_match b = v4(IPPROTO_TCP, "192.0.2.9", 40000, 22);

        load_rules(r, 2);
        cr_assert_eq(run(&a), XDP_PASS, "count never drops");
        cr_assert_eq(hits(0), 1);
        cr_assert_eq(run(&b), XDP_DROP);
        cr_assert_eq(hits(0), 1, "a better drop took the packet: not counted by the shadow");
        cr_assert_eq(hits(1), 1);
        for (int i = 0; i < 2; i++)
                filter_free(r[i]);
}

Test(bpf_filter, ipv6_and_icmp_inner) {
        Filter *r[2] = {
                rule("{\"protocol\": \"udp\", \"src_ip\": \"2001:db8:1::/48\", \"dst_port\": 53}", 0),
                rule("{\"rule_type\": \"icmp\", \"icmp_type\": 3, \"inner_protocol\": \"udp\", "
                     "\"inner_dst_port\": 53}", 1),
        };
        struct ps_match a = { .family = PS_FAMILY_IPV6, .proto = IPPROTO_UDP, .sport = 5353, .dport = 53 };
        struct ps_match e = v4(IPPROTO_ICMP, "192.0.2.1", 0, 0);

        inet_pton(AF_INET6, "2001:db8:1:2::5", a.src);
        inet_pton(AF_INET6, "2001:db8:ffff::1", a.dst);
        load_rules(r, 2);
        cr_assert_eq(run(&a), XDP_DROP);
        inet_pton(AF_INET6, "2001:db8:2::5", a.src);
        cr_assert_eq(run(&a), XDP_PASS);

        e.icmp_type = 3;
        e.icmp_code = 3;
        e.inner_proto = IPPROTO_UDP;
        e.inner_sport = 40000;
        e.inner_dport = 53;
        inet_pton(AF_INET, "10.213.0.1", e.inner_src);
        inet_pton(AF_INET, "192.0.2.1", e.inner_dst);
        cr_assert_eq(run(&e), XDP_DROP);
        e.inner_dport = 123;
        cr_assert_eq(run(&e), XDP_PASS);
        for (int i = 0; i < 2; i++)
                filter_free(r[i]);
}

/* The same random generator shape as the unit test, now through the kernel. */
static uint32_t rnd(uint32_t n) {
        return (uint32_t) rand() % n;
}

static Filter *random_rule(uint32_t id) {
        static const int protos[] = { PROTO_ANY, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMP };
        Filter *f = calloc(1, sizeof(Filter));

        filter_init(f);
        f->id = f->slot = id;
        f->created_usec = rnd(4);
        f->priority = (int32_t) rnd(5);
        f->action = (FilterVerdict) (1 + rnd(3));
        f->protocol = protos[rnd(4)];
        if (rnd(2)) {
                uint8_t plen = (uint8_t) (rnd(3) == 0 ? 32 : 24 + rnd(9));

                f->has_src = true;
                f->src.family = PS_FAMILY_IPV4;
                f->src.prefixlen = plen;
                f->src.addr[0] = htonl((0x0a000000u | (rnd(4) << 8) | rnd(4)) &
                                       (plen ? ~0u << (32 - plen) : 0));
        }
        if (f->protocol == IPPROTO_TCP || f->protocol == IPPROTO_UDP) {
                if (rnd(2)) {
                        uint16_t lo = (uint16_t) (20 + rnd(10));

                        f->dst_port = (PortRange) { lo, (uint16_t) (lo + (rnd(2) ? 0 : rnd(6))) };
                }
                if (f->protocol == IPPROTO_TCP && rnd(3) == 0) {
                        f->tcp_flags_mask = 0x12;
                        f->tcp_flags = rnd(2) ? 0x02 : 0x12;
                }
        }
        if (f->protocol == IPPROTO_ICMP) {
                f->icmp_type = rnd(2) ? ICMP_ANY : (uint8_t) (rnd(2) ? 3 : 8);
                if (f->icmp_type != 8 && rnd(2)) {
                        f->inner_protocol = IPPROTO_UDP;
                        if (rnd(2))
                                f->inner_dst_port = (PortRange) { 53, 53 };
                }
        }
        return f;
}

static void random_packet(struct ps_match *p) {
        static const uint8_t protos[] = { IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMP };

        memset(p, 0, sizeof *p);
        p->family = PS_FAMILY_IPV4;
        p->proto = protos[rnd(3)];
        p->src[0] = htonl(0x0a000000u | (rnd(4) << 8) | rnd(4));
        p->dst[0] = htonl(0xc0000201u);
        if (p->proto == IPPROTO_TCP || p->proto == IPPROTO_UDP) {
                p->sport = (uint16_t) (1024 + rnd(4));
                p->dport = (uint16_t) (18 + rnd(20));
                if (p->proto == IPPROTO_TCP)
                        p->tcp_flags = (uint8_t) (rnd(2) ? 0x02 : rnd(2) ? 0x12 : 0x10);
        } else {
                p->icmp_type = (uint8_t) (rnd(2) ? 3 : rnd(2) ? 8 : 0);
                if (p->icmp_type == 3) {
                        p->inner_proto = rnd(2) ? IPPROTO_UDP : IPPROTO_TCP;
                        p->inner_sport = 33000;
                        p->inner_dport = (uint16_t) (rnd(2) ? 53 : 80);
                        p->inner_src[0] = p->dst[0];
                        p->inner_dst[0] = p->src[0];
                }
        }
}

Test(bpf_filter, random_sets_agree_with_reference, .timeout = 240) {
        unsigned cases = 0, disagreements = 0;

        srand(4242);
        for (int round = 0; round < 60; round++) {
                size_t n = 1 + rnd(30);
                Filter *rules[32];

                for (size_t i = 0; i < n; i++)
                        rules[i] = random_rule((uint32_t) i);
                load_rules(rules, n);
                for (int k = 0; k < 60; k++) {
                        struct ps_match p;
                        const Filter *d, *c;
                        int want, got;

                        random_packet(&p);
                        filter_classify_reference(rules, n, &p, &d, &c);
                        want = d && d->action == FILTER_DROP ? XDP_DROP : XDP_PASS;
                        got = run(&p);
                        cases++;
                        if (want != got) {
                                disagreements++;
                                if (disagreements < 5)
                                        cr_log_error("round %d case %d: want %d got %d (rule %d)",
                                                     round, k, want, got, d ? (int) d->id : -1);
                        }
                }
                for (size_t i = 0; i < n; i++)
                        filter_free(rules[i]);
        }
        cr_assert_eq(cases, 3600);
        cr_assert_eq(disagreements, 0, "%u of %u disagree", disagreements, cases);
}

Test(bpf_filter, bank_flip_is_whole) {
        Filter *a = rule("{\"rule_type\": \"tcp\", \"dst_port\": 23}", 0);
        Filter *b = rule("{\"rule_type\": \"tcp\", \"dst_port\": 24}", 1);
        struct ps_match p23 = v4(IPPROTO_TCP, "198.51.100.7", 40000, 23);
        struct ps_match p24 = v4(IPPROTO_TCP, "198.51.100.7", 40000, 24);

        /* Alternate between two sets many times: each packet sees exactly one of them. */
        for (int i = 0; i < 50; i++) {
                load_rules(i % 2 ? &b : &a, 1);
                cr_assert_eq(run(&p23), i % 2 ? XDP_PASS : XDP_DROP);
                cr_assert_eq(run(&p24), i % 2 ? XDP_DROP : XDP_PASS);
        }
        filter_free(a);
        filter_free(b);
}

/* The verdict kept in a flow entry: reused while the set is unchanged, dropped when it
 * changes, never used when the set looks at TCP flags (they vary within a flow). */
Test(bpf_filter, flow_verdict_cache) {
        Filter *drop23 = rule("{\"rule_type\": \"tcp\", \"dst_port\": 23}", 0);
        Filter *syn = rule("{\"rule_type\": \"tcp\", \"tcp_flags\": 2, \"tcp_flags_mask\": 2}", 1);
        Filter *other = rule("{\"rule_type\": \"udp\", \"dst_port\": 53}", 2);
        struct ps_match p = v4(IPPROTO_TCP, "198.51.100.7", 40000, 23);
        uint32_t zero = 0, st;

        load_rules(&drop23, 1);
        cr_assert_eq(bpf_map_lookup_elem(bpf_map__fd(skel->maps.filter_state), &zero, &st), 0);
        cr_assert(st & PS_FILTER_STATE_CACHEABLE, "a set without TCP flags is flow-cacheable");
        for (int i = 0; i < 5; i++)
                cr_assert_eq(run(&p), XDP_DROP);
        cr_assert_eq(hits(0), 5, "cached verdicts still count their rule");

        load_rules(&other, 1);
        cr_assert_eq(run(&p), XDP_PASS, "a new set makes the cached drop stale");

        load_rules(&syn, 1);
        cr_assert_eq(bpf_map_lookup_elem(bpf_map__fd(skel->maps.filter_state), &zero, &st), 0);
        cr_assert_not(st & PS_FILTER_STATE_CACHEABLE, "a set with TCP flags is not cacheable");
        p.tcp_flags = 0x02;
        cr_assert_eq(run(&p), XDP_DROP);
        p.tcp_flags = 0x10;
        cr_assert_eq(run(&p), XDP_PASS, "the ACK of the same flow is judged on its own flags");
        p.tcp_flags = 0x02;
        cr_assert_eq(run(&p), XDP_DROP);
        filter_free(drop23);
        filter_free(syn);
        filter_free(other);
}
