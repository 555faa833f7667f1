/* SPDX-License-Identifier: MIT */
/*
 * The classifier in the real compiled program, under BPF_PROG_TEST_RUN: rule sets compiled by
 * the daemon's own compiler, loaded into the program's maps the way the daemon does, and
 * crafted frames; compared with the reference matcher of tests/common/ref-match.h, written
 * from the manual and sharing nothing with the daemon, and with verdicts computed by hand.
 */
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <criterion/criterion.h>
#include <linux/bpf.h>
#include <stdio.h>

#include "filter-compile.h"
#include "../common/ref-gen.h"
#include "../common/ref-filter.h"
#include "filter-pkt.h"
#include "filters.h"
#include "util.h"
#include "guard.skel.h"

static struct guard_bpf *skel;
static uint32_t state;

static void setup(void) {
        skel = guard_bpf__open();
        cr_assert_not_null(skel);
        bpf_map__set_max_entries(skel->maps.flows, 4096);
        bpf_map__set_max_entries(skel->maps.icmp_flows, 1024);
        bpf_map__set_max_entries(skel->maps.icmp4_flows, 1024);
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
                                        bpf_map__fd(skel->maps.filter_rules),
                                        bpf_map__fd(skel->maps.filter_rules4),
                                        bpf_map__fd(skel->maps.filter_gates), &state, &set), 0);
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

/* --- against the reference matcher --- */

/* The rules go to the daemon the documented way, as JSON (Import's form, which takes id and
 * created, so that ages can tie); the slot is the id. A set over the shape limit loses its
 * last rules until it compiles: the random sets test matching, not the limits. */
static size_t load_ref(const struct ref_rule *rr, size_t n) {
        Filter *rules[64];
        FilterSet set;
        char *err = NULL;
        int r;

        cr_assert_leq(n, 64);
        for (size_t i = 0; i < n; i++)
                rules[i] = ref_filter(&rr[i]);
        for (;;) {
                r = filter_compile(rules, n, &set, &err);
                if (r != -E2BIG || n == 1)
                        break;
                free(err);
                err = NULL;
                filter_free(rules[--n]);
        }
        cr_assert_eq(r, 0, "%s", err ? err : "");
        cr_assert_eq(filter_kernel_load(bpf_map__fd(skel->maps.filter_state),
                                        bpf_map__fd(skel->maps.filter_banks),
                                        bpf_map__fd(skel->maps.filter_rules),
                                        bpf_map__fd(skel->maps.filter_rules4),
                                        bpf_map__fd(skel->maps.filter_gates), &state, &set), 0);
        filter_set_done(&set);
        for (size_t i = 0; i < n; i++)
                filter_free(rules[i]);
        return n;
}

/* Entries of the active bank in one of the two rule maps (filter_rules: struct ps_filter_key,
 * filter_rules4: struct ps_filter_key4), of one family (0: of any, or of none). */
static size_t bank_entries(int fd, size_t key_size, int family) {
        uint8_t key[sizeof(struct ps_filter_key)], next[sizeof(struct ps_filter_key)];
        size_t family_at = key_size == sizeof(struct ps_filter_key) ?
                offsetof(struct ps_filter_key, match.family) :
                offsetof(struct ps_filter_key4, match.family);
        void *prev = NULL;
        size_t n = 0;

        while (bpf_map_get_next_key(fd, prev, next) == 0) {
                uint32_t shape;

                memcpy(&shape, next, sizeof shape);
                if (shape / PS_FILTER_MAX_SHAPES == (state & PS_FILTER_STATE_BANK) &&
                    (family == 0 || next[family_at] == family))
                        n++;
                memcpy(key, next, key_size);
                prev = key;
        }
        return n;
}

static size_t wide_entries(int family) {
        return bank_entries(bpf_map__fd(skel->maps.filter_rules), sizeof(struct ps_filter_key),
                            family);
}

static size_t short_entries(int family) {
        return bank_entries(bpf_map__fd(skel->maps.filter_rules4),
                            sizeof(struct ps_filter_key4), family);
}

/* Shapes of the active bank with an entry of the packet's class that the gates make it skip
 * (read from the kernel's bank and gate words, tested as the program tests them). */
static unsigned gated_skips(const struct ps_match *m) {
        uint32_t bank = state & PS_FILTER_STATE_BANK;
        struct ps_filter_bank b;
        uint8_t class = ps_filter_class(m->family, m->proto);
        unsigned n = 0;

        cr_assert_eq(bpf_map_lookup_elem(bpf_map__fd(skel->maps.filter_banks), &bank, &b), 0);
        for (uint32_t i = 0; i < b.n_shapes; i++) {
                FilterGateWord w[FILTER_GATE_WORDS_MAX];
                size_t k = filter_gate_words(b.flags[i], i, m, w);

                if (class && !(b.classes[i] & class))
                        continue;
                for (size_t j = 0; j < k; j++) {
                        uint32_t idx = bank * PS_GATE_BANK_WORDS + w[j].index;
                        uint64_t v;

                        cr_assert_eq(bpf_map_lookup_elem(bpf_map__fd(skel->maps.filter_gates),
                                                         &idx, &v), 0);
                        if (!(v & w[j].bits)) {
                                n++;
                                break;
                        }
                }
        }
        return n;
}

static int run_ref(const struct ref_pkt *p) {
        struct ps_match m = ref_to_match(p);

        return run(&m);
}

static void describe(const struct ref_pkt *p, char *buf, size_t size) {
        char s[64], d[64], is[64], id[64];
        int af = p->family == 4 ? AF_INET : AF_INET6;

        inet_ntop(af, p->src, s, sizeof s);
        inet_ntop(af, p->dst, d, sizeof d);
        inet_ntop(af, p->inner_src, is, sizeof is);
        inet_ntop(af, p->inner_dst, id, sizeof id);
        snprintf(buf, size, "proto %d %s:%d -> %s:%d flags 0x%x icmp %d/%d quotes %d inner %d "
                 "%s:%d -> %s:%d", p->proto, s, p->sport, d, p->dport, p->tcp_flags,
                 p->icmp_type, p->icmp_code, p->quotes, p->inner_proto, is, p->inner_sport, id,
                 p->inner_dport);
}

/* Rounds whose set kept entries in both maps, and IPv6 entries (prefixes up to /32) in the
 * short-key map: what the comparison covers of the two maps; and the cases where the gates
 * made the packet skip a shape of its class: what it covers of them. */
static unsigned rounds_both_maps, rounds_short_v6, cases_gated;

static void random_rounds(uint64_t seed, int rounds, int packets, unsigned *ret_cases,
                          unsigned *ret_bad, unsigned *ret_drops, unsigned *ret_counted) {
        struct ref_rng g = { seed };

        for (int round = 0; round < rounds; round++) {
                struct ref_rule rr[40];
                uint64_t want_hits[40] = { 0 }, before[40];
                size_t n = 1 + ref_rnd(&g, 40);

                for (size_t i = 0; i < n; i++)
                        ref_random_rule(&g, &rr[i], (uint32_t) i);
                n = load_ref(rr, n);
                rounds_both_maps += wide_entries(0) > 0 && short_entries(0) > 0;
                rounds_short_v6 += short_entries(PS_FAMILY_IPV6) > 0;
                for (size_t i = 0; i < n; i++)
                        before[i] = hits((uint32_t) i);
                for (int k = 0; k < packets; k++) {
                        const struct ref_rule *d, *c;
                        struct ref_pkt p;
                        int want, got;

                        ref_random_pkt(&g, &p);
                        ref_classify(rr, n, &p, &d, &c);
                        want = d && d->action == REF_DROP ? XDP_DROP : XDP_PASS;
                        if (d)
                                want_hits[d->id]++;
                        if (c) {
                                want_hits[c->id]++;
                                (*ret_counted)++;
                        }
                        got = run_ref(&p);
                        {
                                struct ps_match m = ref_to_match(&p);

                                cases_gated += gated_skips(&m) > 0;
                        }
                        (*ret_cases)++;
                        *ret_drops += want == XDP_DROP;
                        if (want != got) {
                                char text[1024], desc[512];

                                (*ret_bad)++;
                                if (*ret_bad > 3)
                                        continue;
                                describe(&p, desc, sizeof desc);
                                cr_log_error("seed %llu round %d: %s: want %s (rule %d) got %s",
                                             (unsigned long long) seed, round, desc,
                                             want == XDP_DROP ? "drop" : "pass",
                                             d ? (int) d->id : -1,
                                             got == XDP_DROP ? "drop" : "pass");
                                for (size_t i = 0; i < n; i++) {
                                        ref_rule_json(&rr[i], text, sizeof text);
                                        cr_log_error("  %s", text);
                                }
                        }
                }
                for (size_t i = 0; i < n; i++) {
                        uint64_t h = hits((uint32_t) i) - before[i];

                        if (h != want_hits[i]) {
                                char text[1024];

                                (*ret_bad)++;
                                ref_rule_json(&rr[i], text, sizeof text);
                                cr_log_error("seed %llu round %d: rule %zu counted %llu, want "
                                             "%llu: %s", (unsigned long long) seed, round, i,
                                             (unsigned long long) h,
                                             (unsigned long long) want_hits[i], text);
                        }
                }
        }
}

Test(bpf_filter, random_sets_agree_with_reference, .timeout = 280) {
        unsigned cases = 0, bad = 0, drops = 0, counted = 0;

        random_rounds(4242, 60, 80, &cases, &bad, &drops, &counted);
        random_rounds(77, 60, 80, &cases, &bad, &drops, &counted);
        cr_log_info("%u cases, %u dropped, %u counted by a count rule", cases, drops, counted);
        cr_assert_eq(cases, 9600);
        /* The sets must decide both ways often, or the comparison says little. */
        cr_assert_gt(drops, 1000, "only %u of %u cases drop", drops, cases);
        cr_assert_gt(cases - drops, 1000);
        cr_assert_gt(counted, 300);
        /* Both rule maps in one set, and IPv6 under the short key, must be common too. */
        cr_log_info("%u rounds with both maps, %u with IPv6 short keys", rounds_both_maps,
                    rounds_short_v6);
        cr_assert_gt(rounds_both_maps, 30, "only %u of 120 sets use both maps", rounds_both_maps);
        cr_assert_gt(rounds_short_v6, 30, "only %u of 120 sets have IPv6 short keys",
                     rounds_short_v6);
        /* And packets that skip shapes of their class by the gates, often. */
        cr_log_info("%u cases skipped a shape by its gates", cases_gated);
        cr_assert_gt(cases_gated, 1000, "only %u of %u cases skipped a shape by its gates",
                     cases_gated, cases);
        cr_assert_eq(bad, 0, "%u of %u cases or counters disagree", bad, cases);
}

/* --- one rule at a time (what Add, Update and Delete do), against the reference matcher --- */

#define CHANGE_RULES_MAX 40
#define CHANGE_PACKETS 30

/* A random set loaded whole, then changed one rule at a time into the active bank
 * (filter_index_*, filter_kernel_apply); after each change the same packets again (their flows'
 * cached verdicts must not outlive the change) and new ones, each against the reference matcher
 * over the list as it then is. */
Test(bpf_filter, single_changes_agree_with_reference, .timeout = 200) {
        struct ref_rng g = { 9001 };
        unsigned cases = 0, bad = 0, drops = 0, changes = 0, grown = 0;
        int fds[5] = { bpf_map__fd(skel->maps.filter_state), bpf_map__fd(skel->maps.filter_banks),
                       bpf_map__fd(skel->maps.filter_rules),
                       bpf_map__fd(skel->maps.filter_rules4),
                       bpf_map__fd(skel->maps.filter_gates) };

        for (int round = 0; round < 16; round++) {
                struct ref_rule rr[CHANGE_RULES_MAX];
                Filter *ptrs[CHANGE_RULES_MAX];
                struct ref_pkt pkts[CHANGE_PACKETS];
                size_t n = ref_rnd(&g, 20);
                uint32_t next_id = 0;
                FilterIndex ix;
                FilterSet set;
                char *err = NULL;
                int r;

                n = ref_random_indexed(&g, rr, ptrs, n, &next_id, &set, &ix);
                cr_assert_eq(filter_kernel_load(fds[0], fds[1], fds[2], fds[3], fds[4], &state, &set), 0);
                filter_set_done(&set);
                for (int k = 0; k < CHANGE_PACKETS; k++)
                        ref_random_pkt(&g, &pkts[k]);

                for (int op = 0; op < 10; op++) {
                        int kind = (int) ref_rnd(&g, 3);
                        size_t i = n ? ref_rnd(&g, (uint32_t) n) : 0;
                        FilterDelta d = {}, gone = {};
                        Filter *nf = NULL;
                        struct ref_rule nr;

                        if (kind == 1 && n > 0) { /* delete */
                                cr_assert_eq(filter_index_remove(&ix, ptrs[i], &d), 0);
                                filter_free(ptrs[i]);
                                memmove(ptrs + i, ptrs + i + 1, (n - i - 1) * sizeof(Filter *));
                                memmove(rr + i, rr + i + 1, (n - i - 1) * sizeof(rr[0]));
                                n--;
                        } else if (kind == 2 && n > 0) { /* update: same id, age and slot */
                                ref_random_rule(&g, &nr, rr[i].id);
                                nr.created = rr[i].created;
                                nf = ref_filter(&nr);
                                cr_assert_eq(filter_index_remove(&ix, ptrs[i], &gone), 0);
                                r = filter_index_add(&ix, nf, &d, &err);
                                if (r == -E2BIG) { /* one shape too many: refused */
                                        free(err);
                                        err = NULL;
                                        filter_free(nf);
                                        cr_assert_eq(filter_index_add(&ix, ptrs[i], &d, NULL), 0);
                                        nf = ptrs[i];
                                        nr = rr[i];
                                } else {
                                        cr_assert_eq(r, 0, "%s", err ? err : "");
                                        filter_free(ptrs[i]);
                                }
                                /* As the store orders them: the new entries first. */
                                for (size_t k = 0; k < gone.n_keys; k++)
                                        cr_assert_eq(filter_delta_push(&d, &gone.keys[k]), 0);
                                ptrs[i] = nf;
                                rr[i] = nr;
                        } else if (n < CHANGE_RULES_MAX) { /* add */
                                ref_random_rule(&g, &rr[n], next_id++);
                                ptrs[n] = ref_filter(&rr[n]);
                                r = filter_index_add(&ix, ptrs[n], &d, &err);
                                if (r == -E2BIG) {
                                        free(err);
                                        err = NULL;
                                        filter_free(ptrs[n]);
                                } else {
                                        cr_assert_eq(r, 0, "%s", err ? err : "");
                                        n++;
                                }
                        }
                        grown += d.shapes_grown;
                        cr_assert_eq(filter_kernel_apply(fds[0], fds[1], fds[2], fds[3], fds[4], &state,
                                                         &ix, &d), 0);
                        filter_delta_done(&d);
                        filter_delta_done(&gone);
                        changes++;

                        for (int k = 0; k < 2 * CHANGE_PACKETS; k++) {
                                const struct ref_rule *dr, *cr;
                                struct ref_pkt p;
                                int want, got;

                                /* The round's packets again, then new ones. */
                                if (k < CHANGE_PACKETS)
                                        p = pkts[k];
                                else
                                        ref_random_pkt(&g, &p);
                                ref_classify(rr, n, &p, &dr, &cr);
                                want = dr && dr->action == REF_DROP ? XDP_DROP : XDP_PASS;
                                got = run_ref(&p);
                                cases++;
                                drops += want == XDP_DROP;
                                if (want != got && ++bad <= 3) {
                                        char desc[512];

                                        describe(&p, desc, sizeof desc);
                                        cr_log_error("round %d change %d: %s: want %s (rule %d)",
                                                     round, op, desc,
                                                     want == XDP_DROP ? "drop" : "pass",
                                                     dr ? (int) dr->id : -1);
                                }
                        }
                }
                filter_index_done(&ix);
                for (size_t i = 0; i < n; i++)
                        filter_free(ptrs[i]);
        }
        cr_log_info("%u changes (%u added shapes), %u cases, %u dropped", changes, grown, cases,
                    drops);
        cr_assert_eq(changes, 160);
        cr_assert_gt(grown, 20, "only %u changes added a shape", grown);
        cr_assert_gt(drops, cases / 10, "only %u of %u cases drop", drops, cases);
        cr_assert_gt(cases - drops, cases / 10);
        cr_assert_eq(bad, 0, "%u of %u cases disagree", bad, cases);
}

/* --- verdicts computed by hand from the manual, not by any matcher --- */

static struct ref_pkt pkt(int proto, const char *src, int sport, const char *dst, int dport) {
        struct ref_pkt p;

        memset(&p, 0, sizeof p);
        p.family = strchr(src, ':') ? 6 : 4;
        p.proto = proto;
        ref_addr(p.family, p.src, src);
        ref_addr(p.family, p.dst, dst);
        p.sport = sport;
        p.dport = dport;
        if (proto == IPPROTO_TCP)
                p.tcp_flags = 0x02;
        return p;
}

static struct ref_pkt icmp(const char *src, int type, int code) {
        struct ref_pkt p = pkt(strchr(src, ':') ? IPPROTO_ICMPV6 : IPPROTO_ICMP, src, 0,
                               strchr(src, ':') ? "2001:db8:ff::1" : "192.0.2.1", 0);

        p.icmp_type = type;
        p.icmp_code = code;
        return p;
}

static struct ref_pkt quoting(struct ref_pkt p, int proto, const char *isrc, int isport,
                              const char *idst, int idport) {
        p.quotes = true;
        p.inner_proto = proto;
        ref_addr(p.family, p.inner_src, isrc);
        ref_addr(p.family, p.inner_dst, idst);
        p.inner_sport = isport;
        p.inner_dport = idport;
        return p;
}

/* Loads rules given as the JSON a user writes (ids 0.. in order, created as given in the
 * text when it matters); each packet's verdict is written literally; the reference matcher
 * must say the same, so that the random comparison rests on a checked reference. */
struct hand_case {
        struct ref_pkt p;
        int verdict;
        const char *why;
};

static void check_cases(const char *const *json, size_t n, const struct ref_rule *ref,
                        const struct hand_case *cases, size_t m) {
        Filter *rules[16];

        cr_assert_leq(n, 16);
        for (size_t i = 0; i < n; i++) {
                json_error_t je;
                json_t *o = json_loads(json[i], 0, &je);
                char *err = NULL;

                cr_assert_not_null(o, "%s: %s", json[i], je.text);
                rules[i] = calloc(1, sizeof(Filter));
                filter_init(rules[i]);
                cr_assert_eq(filter_from_json(rules[i], o, FILTER_PARSE_IMPORT, &err), 0,
                             "%s: %s", json[i], err ? err : "");
                if (!json_object_get(o, "id"))
                        rules[i]->id = (uint32_t) i;
                if (!json_object_get(o, "created"))
                        rules[i]->created_usec = 1000 + i;
                json_decref(o);
                rules[i]->slot = rules[i]->id;
        }
        load_rules(rules, n);
        for (size_t k = 0; k < m; k++) {
                int got = run_ref(&cases[k].p);

                cr_expect_eq(got, cases[k].verdict, "%s: the kernel says %s", cases[k].why,
                             got == XDP_DROP ? "drop" : "pass");
                if (ref)
                        cr_expect_eq(ref_drops(ref, n, &cases[k].p) ? XDP_DROP : XDP_PASS,
                                     cases[k].verdict, "%s: the reference disagrees", cases[k].why);
        }
        for (size_t i = 0; i < n; i++)
                filter_free(rules[i]);
}

Test(bpf_filter, hand_priority_age_id) {
        /* Priority first; then age, whatever the action; then the id. */
        const char *json[] = {
                "{\"protocol\": \"tcp\", \"dst_port\": 22, \"created\": 5000}",
                "{\"protocol\": \"tcp\", \"dst_port\": 22, \"src_ip\": \"10.0.1.0/24\", "
                "\"action\": \"pass\", \"priority\": 5, \"created\": 6000}",
                "{\"protocol\": \"udp\", \"dst_port\": 53, \"action\": \"pass\", \"created\": 2000}",
                "{\"protocol\": \"udp\", \"dst_port\": 53, \"created\": 1000}",
                "{\"protocol\": \"udp\", \"dst_port\": 54, \"created\": 1000}",
                "{\"protocol\": \"udp\", \"dst_port\": 54, \"action\": \"pass\", \"created\": 1000}",
                "{\"protocol\": \"udp\", \"dst_port\": 55, \"action\": \"pass\", \"priority\": -1}",
                "{\"protocol\": \"udp\", \"dst_port\": 55, \"priority\": -2}",
                "{\"protocol\": \"udp\", \"dst_port\": 56, \"enabled\": false, \"priority\": 9}",
                "{\"protocol\": \"udp\", \"dst_port\": \"56-57\", \"action\": \"pass\", \"priority\": 1}",
                "{\"protocol\": \"udp\", \"dst_port\": 56}",
        };
        struct ref_rule ref[11];
        const struct hand_case cases[] = {
                { pkt(6, "10.0.1.3", 40000, "192.0.2.1", 22), XDP_PASS, "pass at priority 5 over drop at 0" },
                { pkt(6, "10.0.2.3", 40000, "192.0.2.1", 22), XDP_DROP, "outside the pass rule's /24" },
                { pkt(6, "10.0.1.3", 40000, "192.0.2.1", 23), XDP_PASS, "no rule: passed" },
                { pkt(17, "10.0.2.3", 40000, "192.0.2.1", 53), XDP_DROP, "equal priority: the older drop" },
                { pkt(17, "10.0.2.3", 40000, "192.0.2.1", 54), XDP_DROP, "equal priority and age: id 4 < 5" },
                { pkt(17, "10.0.2.3", 40000, "192.0.2.1", 55), XDP_PASS, "priority -1 beats -2" },
                { pkt(17, "10.0.2.3", 40000, "192.0.2.1", 56), XDP_PASS, "disabled rule takes no part; pass at 1 beats drop at 0" },
                { pkt(17, "10.0.2.3", 40000, "192.0.2.1", 57), XDP_PASS, "pass rule alone" },
        };

        for (int i = 0; i < 11; i++)
                ref_rule_init(&ref[i], (uint32_t) i);
        ref[0].protocol = 6, ref[0].dport = (struct ref_ports) { 22, 22 }, ref[0].created = 5000;
        ref[1] = ref[0], ref[1].id = 1, ref_prefix(&ref[1].src, "10.0.1.0/24");
        ref[1].action = REF_PASS, ref[1].priority = 5, ref[1].created = 6000;
        for (int i = 2; i < 11; i++)
                ref[i].protocol = 17, ref[i].created = 1000 + (uint64_t) i;
        ref[2].dport = (struct ref_ports) { 53, 53 }, ref[2].action = REF_PASS, ref[2].created = 2000;
        ref[3].dport = (struct ref_ports) { 53, 53 }, ref[3].created = 1000;
        ref[4].dport = (struct ref_ports) { 54, 54 }, ref[4].created = 1000;
        ref[5].dport = (struct ref_ports) { 54, 54 }, ref[5].created = 1000, ref[5].action = REF_PASS;
        ref[6].dport = (struct ref_ports) { 55, 55 }, ref[6].action = REF_PASS, ref[6].priority = -1;
        ref[7].dport = (struct ref_ports) { 55, 55 }, ref[7].priority = -2;
        ref[8].dport = (struct ref_ports) { 56, 56 }, ref[8].enabled = false, ref[8].priority = 9;
        ref[9].dport = (struct ref_ports) { 56, 57 }, ref[9].action = REF_PASS, ref[9].priority = 1;
        ref[10].dport = (struct ref_ports) { 56, 56 };
        check_cases(json, 11, ref, cases, ELEMENTSOF(cases));
}

Test(bpf_filter, hand_addresses_ports_flags) {
        const char *json[] = {
                "{\"src_ip\": \"2001:db8:1::2/127\"}",
                "{\"src_ip\": \"::/0\", \"protocol\": \"udp\", \"dst_port\": 7}",
                "{\"dst_ip\": \"192.0.2.2\", \"protocol\": \"tcp\"}",
                "{\"protocol\": \"udp\", \"dst_port\": \"1000-1100\", \"src_port\": \"5000-5063\"}",
                "{\"rule_type\": \"tcp\", \"dst_port\": 80, \"tcp_flags\": 2, \"tcp_flags_mask\": 18}",
                "{\"rule_type\": \"tcp\", \"dst_port\": 81, \"tcp_flags\": 2}",
                "{\"protocol\": 47, \"src_ip\": \"10.0.0.0/8\"}",
                "{\"protocol\": \"udp\", \"src_ip\": \"10.0.3.0/30\", \"dst_ip\": \"192.0.2.0/31\"}",
        };
        struct ref_pkt syn_ack = pkt(6, "10.0.0.1", 40000, "192.0.2.1", 80);
        struct ref_pkt ack = syn_ack, syn_ack81 = syn_ack;
        const struct hand_case *c;

        syn_ack.tcp_flags = 0x12;
        ack.tcp_flags = 0x10;
        syn_ack81.dport = 81;
        syn_ack81.tcp_flags = 0x12;
        {
                const struct hand_case cases[] = {
                        { pkt(6, "2001:db8:1::3", 1, "2001:db8:ff::1", 2), XDP_DROP, "::3 is in ::2/127" },
                        { pkt(6, "2001:db8:1::4", 1, "2001:db8:ff::1", 2), XDP_PASS, "::4 is not in ::2/127" },
                        { pkt(17, "2001:db8:9::1", 1, "2001:db8:ff::1", 7), XDP_DROP, "::/0 holds every IPv6 address" },
                        { pkt(17, "10.0.0.1", 1, "192.0.2.1", 7), XDP_PASS, "an IPv6 rule matches IPv6 only" },
                        { pkt(6, "10.0.0.1", 1, "192.0.2.2", 7), XDP_DROP, "dst_ip is the local address" },
                        { pkt(6, "192.0.2.2", 1, "192.0.2.1", 7), XDP_PASS, "dst_ip is not the source" },
                        { pkt(17, "10.0.0.1", 5000, "192.0.2.1", 999), XDP_PASS, "below the range" },
                        { pkt(17, "10.0.0.1", 5000, "192.0.2.1", 1000), XDP_DROP, "range start" },
                        { pkt(17, "10.0.0.1", 5063, "192.0.2.1", 1100), XDP_DROP, "range ends" },
                        { pkt(17, "10.0.0.1", 5064, "192.0.2.1", 1050), XDP_PASS, "source port above its range" },
                        { pkt(17, "10.0.0.1", 5000, "192.0.2.1", 1101), XDP_PASS, "above the range" },
                        { pkt(6, "10.0.0.1", 40000, "192.0.2.1", 80), XDP_DROP, "SYN without ACK" },
                        { syn_ack, XDP_PASS, "SYN+ACK: ACK is in the mask" },
                        { ack, XDP_PASS, "ACK" },
                        { syn_ack81, XDP_DROP, "flags without a mask: these flags set" },
                        { pkt(47, "10.9.9.9", 0, "192.0.2.1", 0), XDP_DROP, "protocol by number" },
                        { pkt(47, "11.0.0.1", 0, "192.0.2.1", 0), XDP_PASS, "outside 10/8" },
                        { pkt(17, "10.0.3.3", 9, "192.0.2.1", 9), XDP_DROP, "both prefixes" },
                        { pkt(17, "10.0.3.4", 9, "192.0.2.1", 9), XDP_PASS, "source outside /30" },
                        { pkt(17, "10.0.3.3", 9, "192.0.2.2", 9), XDP_PASS, "local address outside /31" },
                };

                c = cases;
                check_cases(json, ELEMENTSOF(json), NULL, c, ELEMENTSOF(cases));
        }
}

Test(bpf_filter, hand_icmp_and_quoted) {
        const char *json[] = {
                "{\"rule_type\": \"icmp\", \"icmp_type\": 3, \"icmp_code\": 3, "
                "\"inner_protocol\": \"udp\", \"inner_dst_port\": 53, \"inner_dst_ip\": \"10.0.2.0/24\"}",
                "{\"protocol\": \"icmpv6\", \"icmp_type\": 128}",
                "{\"rule_type\": \"icmp\", \"icmp_type\": 11, \"icmp_code\": 0}",
                "{\"protocol\": \"icmpv6\", \"icmp_type\": 1, \"inner_protocol\": \"tcp\", "
                "\"inner_src_port\": \"33000-33001\"}",
        };
        struct ref_pkt unreach = icmp("10.0.2.9", 3, 3), unreach6 = icmp("2001:db8:1::1", 1, 4);
        const struct hand_case cases[] = {
                { quoting(unreach, 17, "192.0.2.1", 40000, "10.0.2.9", 53), XDP_DROP, "port unreachable quoting DNS" },
                { quoting(unreach, 17, "192.0.2.1", 40000, "10.0.2.9", 54), XDP_PASS, "quoted port 54" },
                { quoting(unreach, 6, "192.0.2.1", 40000, "10.0.2.9", 53), XDP_PASS, "quoted TCP" },
                { quoting(unreach, 17, "192.0.2.1", 40000, "10.0.3.9", 53), XDP_PASS, "quoted destination outside /24" },
                { icmp("2001:db8:1::1", 128, 0), XDP_DROP, "ICMPv6 echo request" },
                { icmp("10.0.0.1", 8, 0), XDP_PASS, "ICMPv4 echo: an icmpv6 rule is IPv6 only" },
                { icmp("10.0.0.1", 11, 0), XDP_DROP, "time exceeded code 0" },
                { icmp("10.0.0.1", 11, 1), XDP_PASS, "time exceeded code 1" },
                { quoting(unreach6, 6, "2001:db8:ff::1", 33001, "2001:db8:1::1", 80), XDP_DROP, "ICMPv6 unreachable quoting TCP from 33001" },
                { quoting(unreach6, 6, "2001:db8:ff::1", 33002, "2001:db8:1::1", 80), XDP_PASS, "quoted source port 33002" },
                { quoting(unreach6, 17, "2001:db8:ff::1", 33001, "2001:db8:1::1", 80), XDP_PASS, "quoted UDP" },
        };

        check_cases(json, ELEMENTSOF(json), NULL, cases, ELEMENTSOF(cases));
}

/* Shapes that look at address word 0 at most (IPv4, IPv6 up to /32, no address) are kept under
 * the short key of filter_rules4, whatever their family; the others under the full key. Both
 * kinds in one set, packets of both families through both. */
Test(bpf_filter, hand_short_and_full_keys) {
        const char *json[] = {
                /* 0: IPv6 /32: short key, matched by IPv6 packets */
                "{\"protocol\": \"udp\", \"src_ip\": \"2001:db8::/32\", \"dst_port\": 53}",
                /* 1: IPv6 /48: full key, beats 0 */
                "{\"protocol\": \"udp\", \"src_ip\": \"2001:db8:1::/48\", \"dst_port\": 53, "
                "\"action\": \"pass\", \"priority\": 5}",
                /* 2: no family: short key, both families */
                "{\"rule_type\": \"tcp\", \"dst_port\": 22}",
                /* 3: IPv4 quoted destination: short key */
                "{\"rule_type\": \"icmp\", \"icmp_type\": 3, \"inner_protocol\": \"udp\", "
                "\"inner_dst_ip\": \"198.51.100.0/24\"}",
                /* 4: IPv6 quoted destination /64: full key */
                "{\"protocol\": \"icmpv6\", \"icmp_type\": 1, \"inner_protocol\": \"udp\", "
                "\"inner_dst_ip\": \"2001:db8:ff::/64\"}",
                /* 5: ICMP, no address: IPv4 (the protocol gives it its family), short key */
                "{\"protocol\": \"icmp\", \"icmp_type\": 8, \"action\": \"pass\", \"priority\": 9}",
        };
        struct ref_pkt unreach = icmp("192.0.2.7", 3, 3), unreach6 = icmp("2001:db8:1::1", 1, 4);
        const struct hand_case cases[] = {
                { pkt(17, "2001:db8:2::5", 4000, "2001:db8:ff::1", 53), XDP_DROP, "IPv6 in the /32" },
                { pkt(17, "2001:db8:1::5", 4000, "2001:db8:ff::1", 53), XDP_PASS, "the /48 beats it" },
                { pkt(17, "2001:db9::5", 4000, "2001:db8:ff::1", 53), XDP_PASS, "outside the /32" },
                { pkt(17, "32.1.13.184", 4000, "192.0.2.1", 53), XDP_PASS, "IPv4 with the /32's first word" },
                { pkt(6, "2001:db9::5", 4000, "2001:db8:ff::1", 22), XDP_DROP, "IPv6 TCP 22" },
                { pkt(6, "198.51.100.1", 4000, "192.0.2.1", 22), XDP_DROP, "IPv4 TCP 22" },
                { pkt(17, "198.51.100.1", 4000, "192.0.2.1", 22), XDP_PASS, "UDP 22" },
                { quoting(unreach, 17, "192.0.2.1", 40000, "198.51.100.9", 53), XDP_DROP, "quoting UDP to the /24" },
                { quoting(unreach, 17, "192.0.2.1", 40000, "198.51.101.9", 53), XDP_PASS, "quoting UDP elsewhere" },
                { quoting(unreach6, 17, "2001:db8:1::1", 40000, "2001:db8:ff::9", 53), XDP_DROP, "ICMPv6 quoting UDP to the /64" },
                { quoting(unreach6, 17, "2001:db8:1::1", 40000, "2001:db8:fe::9", 53), XDP_PASS, "ICMPv6 quoting UDP elsewhere" },
                { icmp("192.0.2.7", 8, 0), XDP_PASS, "ICMP echo" },
        };

        check_cases(json, ELEMENTSOF(json), NULL, cases, ELEMENTSOF(cases));
        cr_assert_eq(short_entries(PS_FAMILY_IPV6), 1, "rule 0 has the short key");
        cr_assert_eq(short_entries(PS_FAMILY_IPV4), 2, "rules 3 and 5 have the short key");
        cr_assert_eq(short_entries(0), 4, "rules 0, 2, 3 and 5 have the short key");
        cr_assert_eq(wide_entries(0), 2, "rules 1 and 4 have the full key");
}

/* The gates (classify.h): a packet skips a shape when its destination port, ICMP type or
 * source has no entry there, and still finds every rule it matches. (Single changes, which set
 * the bits of an entry before writing it: single_changes_agree_with_reference.) */
Test(bpf_filter, hand_gates) {
        const char *json[] = {
                /* 0: exact port: GATE_DPORT */
                "{\"rule_type\": \"tcp\", \"dst_port\": 22}",
                /* 1: ICMP type: GATE_TYPE */
                "{\"rule_type\": \"icmp\", \"icmp_type\": 13}",
                /* 2, 3: an IPv4 /32 and a /24 elsewhere: GATE_SRC24, two shapes */
                "{\"src_ip\": \"198.51.100.7\"}",
                "{\"src_ip\": \"203.0.113.0/24\"}",
                /* 4: an IPv6 /64: GATE_SRC64 */
                "{\"src_ip\": \"2001:db8:5::/64\"}",
        };
        const struct hand_case cases[] = {
                { pkt(6, "192.0.2.9", 4000, "192.0.2.1", 22), XDP_DROP, "TCP 22" },
                { pkt(6, "192.0.2.9", 4000, "192.0.2.1", 23), XDP_PASS, "TCP 23" },
                { icmp("192.0.2.9", 13, 0), XDP_DROP, "ICMP timestamp" },
                { icmp("192.0.2.9", 8, 0), XDP_PASS, "ICMP echo" },
                { pkt(17, "198.51.100.7", 4000, "192.0.2.1", 53), XDP_DROP, "the /32" },
                { pkt(17, "198.51.100.8", 4000, "192.0.2.1", 53), XDP_PASS, "the /32's /24" },
                { pkt(17, "203.0.113.200", 4000, "192.0.2.1", 53), XDP_DROP, "the /24" },
                { pkt(17, "203.0.114.1", 4000, "192.0.2.1", 53), XDP_PASS, "past the /24" },
                { pkt(17, "2001:db8:5::77", 4000, "2001:db8:ff::1", 53), XDP_DROP, "the /64" },
                { pkt(17, "2001:db8:6::77", 4000, "2001:db8:ff::1", 53), XDP_PASS, "past the /64" },
        };
        struct ps_match other = v4(IPPROTO_UDP, "192.0.2.77", 4000, 53);
        struct ps_match port = v4(IPPROTO_TCP, "192.0.2.9", 4000, 23);
        struct ps_match src = v4(IPPROTO_UDP, "198.51.100.8", 4000, 53);
        struct ps_match hit = v4(IPPROTO_UDP, "198.51.100.7", 4000, 53);

        check_cases(json, ELEMENTSOF(json), NULL, cases, ELEMENTSOF(cases));
        /* No entry has the source, the port or the type: every shape of the class skipped. */
        cr_assert_eq(gated_skips(&other), 2, "both IPv4 source shapes skipped");
        cr_assert_eq(gated_skips(&port), 3, "the port shape and both source shapes skipped");
        /* A /24 with a /32 rule in it: the key bit is set, the bucket tells the shapes apart. */
        cr_assert_eq(gated_skips(&src), 1, "the /24 shape skipped, the /32 one looked up");
        cr_assert_eq(gated_skips(&hit), 1, "the /24 shape skipped");
}

Test(bpf_filter, hand_count_rules) {
        /* A count rule counts what it would have decided: above the drop rule it counts (and the
         * drop still drops); below it, the drop took the packet and it counts nothing. */
        const char *json[] = {
                "{\"protocol\": \"tcp\", \"dst_port\": 25, \"action\": \"count\", \"priority\": 3}",
                "{\"protocol\": \"tcp\", \"dst_port\": \"20-29\"}",
                "{\"protocol\": \"tcp\", \"dst_port\": 26, \"action\": \"count\", \"priority\": -3}",
                "{\"protocol\": \"tcp\", \"dst_port\": 30, \"action\": \"count\"}",
        };
        const struct hand_case cases[] = {
                { pkt(6, "10.0.0.1", 1, "192.0.2.1", 25), XDP_DROP, "counted, still dropped" },
                { pkt(6, "10.0.0.1", 1, "192.0.2.1", 26), XDP_DROP, "dropped, not counted" },
                { pkt(6, "10.0.0.1", 1, "192.0.2.1", 30), XDP_PASS, "count never drops" },
                { pkt(6, "10.0.0.1", 1, "192.0.2.1", 30), XDP_PASS, "count never drops" },
        };

        check_cases(json, ELEMENTSOF(json), NULL, cases, ELEMENTSOF(cases));
        cr_assert_eq(hits(0), 1);
        cr_assert_eq(hits(1), 2);
        cr_assert_eq(hits(2), 0);
        cr_assert_eq(hits(3), 2);
}

/* The manual: "src_port, dst_port ... Needs protocol tcp, udp, sctp or udplite". */
Test(bpf_filter, hand_sctp_and_udplite_ports) {
        const char *json[] = {
                "{\"protocol\": \"sctp\", \"dst_port\": 9}",
                "{\"protocol\": \"udplite\", \"src_port\": \"5000-5001\"}",
        };
        const struct hand_case cases[] = {
                { pkt(132, "10.0.0.1", 1, "192.0.2.1", 9), XDP_DROP, "SCTP to port 9" },
                { pkt(132, "10.0.0.1", 1, "192.0.2.1", 10), XDP_PASS, "SCTP to port 10" },
                { pkt(136, "10.0.0.1", 5001, "192.0.2.1", 10), XDP_DROP, "UDP-Lite from port 5001" },
                { pkt(136, "10.0.0.1", 5002, "192.0.2.1", 10), XDP_PASS, "UDP-Lite from port 5002" },
        };

        check_cases(json, ELEMENTSOF(json), NULL, cases, ELEMENTSOF(cases));
}

/* The inner fields describe "the datagram an ICMP error quotes": a message that quotes
 * nothing (an echo) has no inner source address and no inner protocol to match. */
Test(bpf_filter, hand_inner_fields_need_a_quote) {
        const char *json[] = {
                "{\"rule_type\": \"icmp\", \"inner_src_ip\": \"0.0.0.0/8\"}",
                "{\"protocol\": \"icmpv6\", \"inner_protocol\": 0}",
        };
        const struct hand_case cases[] = {
                { icmp("10.0.0.1", 8, 0), XDP_PASS, "an echo request quotes nothing" },
                { icmp("2001:db8:1::1", 128, 0), XDP_PASS, "an ICMPv6 echo request quotes nothing" },
        };

        check_cases(json, ELEMENTSOF(json), NULL, cases, ELEMENTSOF(cases));
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
