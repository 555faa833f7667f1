/* SPDX-License-Identifier: MIT */
/*
 * No rule is skipped because of how a packet is cut: tiny first fragments, later fragments,
 * long IPv6 extension chains and deep VLAN stacks, in the real compiled program under
 * BPF_PROG_TEST_RUN, with rule sets compiled and loaded as the daemon does. Every verdict and
 * every counter is checked against values worked out by hand from the manual
 * (packetscoped(8), "Packets the parser cannot classify"). Needs root.
 */
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <criterion/criterion.h>
#include <linux/bpf.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "filter-compile.h"
#include "filters.h"
#include "guard.skel.h"
#include "packet.h"

#define REMOTE4 "192.0.2.1"
#define LOCAL4 "198.51.100.2"
#define REMOTE6 "2001:db8::1"
#define LOCAL6 "2001:db8::2"

static struct guard_bpf *skel;
static uint32_t state;
static Filter *rules[4];
static size_t n_rules;

static void setup(void) {
        skel = guard_bpf__open();
        cr_assert_not_null(skel);
        bpf_map__set_max_entries(skel->maps.flows, 1024);
        bpf_map__set_max_entries(skel->maps.icmp_flows, 256);
        bpf_map__set_max_entries(skel->maps.icmp4_flows, 256);
        cr_assert_eq(guard_bpf__load(skel), 0, "the program does not load");
        state = 0;
        n_rules = 0;
}

static void teardown(void) {
        for (size_t i = 0; i < n_rules; i++)
                filter_free(rules[i]);
        guard_bpf__destroy(skel);
}

TestSuite(fragments, .init = setup, .fini = teardown, .timeout = 120);

/* Adds a rule (slot = its index) and loads the whole set. */
static void add_rule(const char *json) {
        Filter *f = calloc(1, sizeof(Filter));
        json_error_t je;
        json_t *o = json_loads(json, 0, &je);
        FilterSet set;
        char *err = NULL;

        cr_assert_not_null(f);
        cr_assert_not_null(o, "%s", je.text);
        cr_assert_lt(n_rules, sizeof(rules) / sizeof(rules[0]));
        filter_init(f);
        cr_assert_eq(filter_from_json(f, o, 0, &err), 0, "%s: %s", json, err ? err : "");
        json_decref(o);
        f->id = (uint32_t) n_rules;
        f->slot = (uint32_t) n_rules;
        f->created_usec = n_rules + 1;
        rules[n_rules++] = f;
        cr_assert_eq(filter_compile(rules, n_rules, &set, &err), 0, "%s", err ? err : "");
        cr_assert_eq(filter_kernel_load(bpf_map__fd(skel->maps.filter_state),
                                        bpf_map__fd(skel->maps.filter_banks),
                                        bpf_map__fd(skel->maps.filter_rules),
                                        bpf_map__fd(skel->maps.filter_rules4),
                                        bpf_map__fd(skel->maps.filter_gates), &state, &set), 0);
        filter_set_done(&set);
}

/* What the daemon writes from TinyFragments= and LongHeaderChains=. */
static void set_policy(uint32_t policy) {
        struct ps_meta m = { .abi_version = PS_ABI_VERSION, .policy = policy };
        uint32_t zero = 0;

        cr_assert_eq(bpf_map_update_elem(bpf_map__fd(skel->maps.meta), &zero, &m, BPF_ANY), 0);
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

/* Runs the program on p: its verdict. */
static int run(const struct pkt *p) {
        static uint8_t out[PKT_MAX + 256];
        LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = p->data, .data_size_in = (uint32_t) p->len,
                    .data_out = out, .data_size_out = sizeof(out), .repeat = 1);

        cr_assert_eq(bpf_prog_test_run_opts(bpf_program__fd(skel->progs.xdp_guard), &o), 0);
        cr_assert_eq(o.data_size_out, p->len);
        cr_assert(memcmp(out, p->data, p->len) == 0, "the program modified the frame");
        return (int) o.retval;
}

static void expect_verdict(const struct pkt *p, int verdict, const char *what) {
        int r = run(p);

        cr_assert_eq(r, verdict, "%s: verdict %s, expected %s", what,
                     r == XDP_DROP ? "XDP_DROP" : r == XDP_PASS ? "XDP_PASS" : "other",
                     verdict == XDP_DROP ? "XDP_DROP" : "XDP_PASS");
}

static void stats_read(struct ps_stats *sum) {
        int n = libbpf_num_possible_cpus();
        struct ps_stats *per = calloc((size_t) n, sizeof(*per));
        uint32_t zero = 0;

        cr_assert_not_null(per);
        cr_assert_eq(bpf_map_lookup_elem(bpf_map__fd(skel->maps.stats), &zero, per), 0);
        memset(sum, 0, sizeof(*sum));
        for (int c = 0; c < n; c++)
                for (size_t w = 0; w < PS_STATS_MAP_SIZE / 8; w++)
                        ((uint64_t *) sum)[w] +=
                                ((uint64_t *) ((uint8_t *) per + c * PS_STATS_MAP_SIZE))[w];
        free(per);
}

/* The counters this file is about, and the ones they must add up with. */
static void stats_expect(const struct ps_stats *e) {
        static const struct {
                const char *name;
                size_t offset;
        } fields[] = {
#define F(x) { #x, offsetof(struct ps_stats, x) }
                F(packets), F(passed), F(dropped), F(dropped_filter), F(malformed),
                F(fragments), F(ipv4), F(ipv6), F(non_ip), F(vlan), F(tiny_fragments),
                F(long_chains), F(deep_vlan), F(fragments_followed), F(fragments_orphan),
                F(dropped_tiny_fragments), F(dropped_long_chains), F(dropped_deep_vlan),
#undef F
        };
        struct ps_stats got;

        stats_read(&got);
        for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
                uint64_t g = *(uint64_t *) ((uint8_t *) &got + fields[i].offset);
                uint64_t x = *(uint64_t *) ((uint8_t *) e + fields[i].offset);

                cr_assert_eq(g, x, "stats.%s is %llu, expected %llu", fields[i].name,
                             (unsigned long long) g, (unsigned long long) x);
        }
        cr_assert_eq(got.dropped, got.dropped_filter + got.dropped_tiny_fragments +
                                  got.dropped_long_chains + got.dropped_deep_vlan,
                     "every drop has exactly one reason");
        cr_assert_eq(got.packets, got.passed + got.dropped);
}

/* The bytes of a TCP SYN to `dport` with `doff` words of header and `payload` bytes. */
static size_t syn_bytes(uint8_t *out, uint16_t dport, uint8_t doff, size_t payload) {
        struct pkt t;

        pkt_init(&t);
        pkt_tcp(&t, &(struct tcp_opts) { .sport = 40000, .dport = dport, .seq = 1000,
                                         .flags = TCP_SYN, .window = 1024, .doff = doff,
                                         .payload = payload });
        memcpy(out, t.data, t.len);
        return t.len;
}

/* One IPv4 fragment of a datagram whose transport bytes are `l4`: [from, to). */
static void frag4(struct pkt *p, uint8_t proto, uint16_t id, const uint8_t *l4, size_t from,
                  size_t to, bool more) {
        pkt_init(p);
        pkt_eth(p, 0x0800, 0, NULL);
        pkt_ipv4(p, REMOTE4, LOCAL4, proto,
                 &(struct ip4_opts) { .ttl = 64, .id = id,
                                      .frag_off = (uint16_t) ((more ? IP4_MF : 0) | from / 8) });
        pkt_bytes(p, l4 + from, to - from);
        pkt_finish(p, 0);
}

/* One IPv6 fragment (identification `id`) of a datagram whose transport bytes are `l4`. */
static void frag6(struct pkt *p, uint8_t proto, uint32_t id, const uint8_t *l4, size_t from,
                  size_t to, bool more) {
        size_t at;

        pkt_init(p);
        pkt_eth(p, 0x86dd, 0, NULL);
        pkt_ipv6(p, REMOTE6, LOCAL6, 44, 64, 0);
        at = p->len;
        pkt_ipv6_frag(p, proto, (uint16_t) (from / 8), more);
        p->data[at + 4] = (uint8_t) (id >> 24);
        p->data[at + 5] = (uint8_t) (id >> 16);
        p->data[at + 6] = (uint8_t) (id >> 8);
        p->data[at + 7] = (uint8_t) id;
        pkt_bytes(p, l4 + from, to - from);
        pkt_finish(p, 0);
}

static const char *const rule_tcp23 = "{\"rule_type\": \"tcp\", \"dst_port\": 23}";

/*
 * The tiny-fragment attack: a SYN to tcp/23 whose first fragment holds only 8, 16 or 24 of the
 * 40 bytes of its TCP header (cut inside the options). Both fragments are dropped.
 */
Test(fragments, tiny_ipv4_syn_dropped) {
        static const size_t cuts[] = { 8, 16, 24 };
        struct ps_stats e = {};
        uint8_t l4[128];
        size_t n = syn_bytes(l4, 23, 10, 16);
        struct pkt p;

        add_rule(rule_tcp23);
        for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
                uint16_t id = (uint16_t) (100 + i);

                frag4(&p, IPPROTO_TCP, id, l4, 0, cuts[i], true);
                expect_verdict(&p, XDP_DROP, "tiny first fragment");
                frag4(&p, IPPROTO_TCP, id, l4, cuts[i], n, false);
                expect_verdict(&p, XDP_DROP, "the rest of a tiny fragment's datagram");
                e.packets += 2;
                e.ipv4 += 2;
                e.dropped += 2;
                e.tiny_fragments++;
                e.dropped_tiny_fragments += 2;
                e.fragments++;
                e.fragments_followed++;
                stats_expect(&e);
        }
        /* The whole TCP header in the first fragment: the rule decides, for both. */
        frag4(&p, IPPROTO_TCP, 200, l4, 0, 48, true);
        expect_verdict(&p, XDP_DROP, "a first fragment with the whole header");
        frag4(&p, IPPROTO_TCP, 200, l4, 48, n, false);
        expect_verdict(&p, XDP_DROP, "a later fragment of a dropped first");
        e.packets += 2;
        e.ipv4 += 2;
        e.dropped += 2;
        e.dropped_filter += 2;
        e.fragments++;
        e.fragments_followed++;
        stats_expect(&e);
        cr_assert_eq(hits(0), 2, "the rule took both fragments");

        /* The same to tcp/80: both pass. */
        n = syn_bytes(l4, 80, 10, 16);
        frag4(&p, IPPROTO_TCP, 201, l4, 0, 48, true);
        expect_verdict(&p, XDP_PASS, "a first fragment to another port");
        frag4(&p, IPPROTO_TCP, 201, l4, 48, n, false);
        expect_verdict(&p, XDP_PASS, "a later fragment of a passed first");
        e.packets += 2;
        e.ipv4 += 2;
        e.passed += 2;
        e.fragments++;
        e.fragments_followed++;
        stats_expect(&e);
        cr_assert_eq(hits(0), 2);
}

/* Even with no rule at all: TinyFragments=drop is the default. */
Test(fragments, tiny_dropped_without_rules) {
        struct ps_stats e = {};
        uint8_t l4[128];
        struct pkt p;

        syn_bytes(l4, 80, 5, 0);
        frag4(&p, IPPROTO_TCP, 7, l4, 0, 8, true);
        expect_verdict(&p, XDP_DROP, "tiny first fragment");
        /* UDP: a first fragment needs its 8 header bytes; ICMP its 8 too. */
        memset(l4, 0, sizeof(l4));
        pkt_init(&p);
        pkt_eth(&p, 0x0800, 0, NULL);
        pkt_ipv4(&p, REMOTE4, LOCAL4, IPPROTO_UDP,
                 &(struct ip4_opts) { .ttl = 64, .id = 8, .frag_off = IP4_MF });
        pkt_zeros(&p, 4);
        pkt_finish(&p, 0);
        expect_verdict(&p, XDP_DROP, "a UDP first fragment of 4 bytes");
        pkt_init(&p);
        pkt_eth(&p, 0x0800, 0, NULL);
        pkt_ipv4(&p, REMOTE4, LOCAL4, IPPROTO_ICMP,
                 &(struct ip4_opts) { .ttl = 64, .id = 9, .frag_off = IP4_MF });
        pkt_zeros(&p, 4);
        pkt_finish(&p, 0);
        expect_verdict(&p, XDP_DROP, "an ICMP first fragment of 4 bytes");
        e.packets = e.ipv4 = e.dropped = e.tiny_fragments = e.dropped_tiny_fragments = 3;
        stats_expect(&e);

        /* Not a fragment, cut the same way: truncated, the kernel drops it; counted and
         * passed as before. */
        pkt_init(&p);
        pkt_eth(&p, 0x0800, 0, NULL);
        pkt_ipv4(&p, REMOTE4, LOCAL4, IPPROTO_TCP, &(struct ip4_opts) { .ttl = 64 });
        pkt_bytes(&p, l4, 8);
        pkt_finish(&p, 0);
        expect_verdict(&p, XDP_PASS, "a truncated datagram");
        e.packets++;
        e.ipv4++;
        e.passed++;
        e.malformed++;
        stats_expect(&e);
}

/* TinyFragments=pass: the first fragment is classified without ports, so a port rule cannot
 * take it, but a rule on addresses still does. */
Test(fragments, tiny_policy_pass) {
        struct ps_stats e = {};
        uint8_t l4[128];
        size_t n = syn_bytes(l4, 23, 10, 16);
        struct pkt p;

        set_policy(PS_POLICY_PASS_TINY_FRAGMENTS);
        add_rule(rule_tcp23);
        frag4(&p, IPPROTO_TCP, 300, l4, 0, 16, true);
        expect_verdict(&p, XDP_PASS, "tiny first fragment, policy pass");
        frag4(&p, IPPROTO_TCP, 300, l4, 16, n, false);
        expect_verdict(&p, XDP_PASS, "its later fragment");
        e.packets = e.ipv4 = e.passed = 2;
        e.tiny_fragments = 1;
        e.fragments = e.fragments_followed = 1;
        stats_expect(&e);
        cr_assert_eq(hits(0), 0);

        add_rule("{\"src_ip\": \"192.0.2.0/24\"}");
        frag4(&p, IPPROTO_TCP, 301, l4, 0, 16, true);
        expect_verdict(&p, XDP_DROP, "tiny first fragment from a dropped network");
        frag4(&p, IPPROTO_TCP, 301, l4, 16, n, false);
        expect_verdict(&p, XDP_DROP, "its later fragment");
        e.packets += 2;
        e.ipv4 += 2;
        e.dropped += 2;
        e.dropped_filter += 2;
        e.tiny_fragments++;
        e.fragments++;
        e.fragments_followed++;
        stats_expect(&e);
        cr_assert_eq(hits(1), 2);
}

/*
 * A drop rule on udp 0-1023 and a 1,000-byte datagram to 5000 in two fragments: both pass.
 * A later fragment whose first was never seen is not "port 0" either.
 */
Test(fragments, port_rule_never_matches_later_fragments) {
        struct ps_stats e = {};
        uint8_t l4[1008];
        struct pkt p;

        add_rule("{\"rule_type\": \"udp\", \"dst_port\": \"0-1023\"}");
        memset(l4, 'u', sizeof(l4));
        l4[0] = 40000 >> 8, l4[1] = 40000 & 0xff;
        l4[2] = 5000 >> 8, l4[3] = 5000 & 0xff;
        l4[4] = 1008 >> 8, l4[5] = 1008 & 0xff;
        l4[6] = l4[7] = 0;

        frag4(&p, IPPROTO_UDP, 400, l4, 0, 504, true);
        expect_verdict(&p, XDP_PASS, "first fragment to 5000");
        frag4(&p, IPPROTO_UDP, 400, l4, 504, 1008, false);
        expect_verdict(&p, XDP_PASS, "second fragment to 5000");
        e.packets = e.ipv4 = e.passed = 2;
        e.fragments = e.fragments_followed = 1;
        stats_expect(&e);

        /* Its second fragment alone (the first lost or late): classified without ports. */
        frag4(&p, IPPROTO_UDP, 401, l4, 504, 1008, false);
        expect_verdict(&p, XDP_PASS, "a later fragment whose first was not seen");
        e.packets++;
        e.ipv4++;
        e.passed++;
        e.fragments++;
        e.fragments_orphan++;
        stats_expect(&e);

        /* To port 53: the first is dropped by the rule, the second follows it. */
        l4[2] = 0, l4[3] = 53;
        frag4(&p, IPPROTO_UDP, 402, l4, 0, 504, true);
        expect_verdict(&p, XDP_DROP, "first fragment to 53");
        frag4(&p, IPPROTO_UDP, 402, l4, 504, 1008, false);
        expect_verdict(&p, XDP_DROP, "second fragment to 53");
        e.packets += 2;
        e.ipv4 += 2;
        e.dropped += 2;
        e.dropped_filter += 2;
        e.fragments++;
        e.fragments_followed++;
        stats_expect(&e);
        cr_assert_eq(hits(0), 2);

        /* The same identification from another source is another datagram. */
        pkt_init(&p);
        pkt_eth(&p, 0x0800, 0, NULL);
        pkt_ipv4(&p, "192.0.2.99", LOCAL4, IPPROTO_UDP,
                 &(struct ip4_opts) { .ttl = 64, .id = 402, .frag_off = 63 });
        pkt_bytes(&p, l4 + 504, 504);
        pkt_finish(&p, 0);
        expect_verdict(&p, XDP_PASS, "same id, other source");
        e.packets++;
        e.ipv4++;
        e.passed++;
        e.fragments++;
        e.fragments_orphan++;
        stats_expect(&e);
}

/* A pass rule for udp/53 above a drop of all UDP: the later fragments of a datagram to 53
 * follow the pass; an orphan only has the rules without ports. */
Test(fragments, later_fragments_follow_a_pass) {
        struct ps_stats e = {};
        uint8_t l4[1008];
        struct pkt p;

        add_rule("{\"rule_type\": \"udp\"}");
        add_rule("{\"rule_type\": \"udp\", \"dst_port\": 53, \"action\": \"pass\", "
                 "\"priority\": 10}");
        memset(l4, 'u', sizeof(l4));
        l4[0] = 40000 >> 8, l4[1] = 40000 & 0xff;
        l4[2] = 0, l4[3] = 53;
        l4[4] = 1008 >> 8, l4[5] = 1008 & 0xff;
        frag6(&p, IPPROTO_UDP, 0xabcd0001, l4, 0, 504, true);
        expect_verdict(&p, XDP_PASS, "first fragment to 53");
        frag6(&p, IPPROTO_UDP, 0xabcd0001, l4, 504, 1008, false);
        expect_verdict(&p, XDP_PASS, "second fragment follows the pass");
        frag6(&p, IPPROTO_UDP, 0xabcd0002, l4, 504, 1008, false);
        expect_verdict(&p, XDP_DROP, "an orphan: only the port-less rule applies");
        e.packets = e.ipv6 = 3;
        e.passed = 2;
        e.dropped = e.dropped_filter = 1;
        e.fragments = 2;
        e.fragments_followed = 1;
        e.fragments_orphan = 1;
        stats_expect(&e);
        cr_assert_eq(hits(1), 2);
        cr_assert_eq(hits(0), 1);
}

/* IPv6: a header behind the fragment header is in the first fragment only; its later
 * fragments name that header, not UDP, and still follow it. */
Test(fragments, ipv6_header_behind_the_fragment_header) {
        struct ps_stats e = {};
        uint8_t l4[64];
        struct pkt p;

        add_rule("{\"rule_type\": \"udp\", \"dst_port\": 53}");
        pkt_init(&p);
        pkt_eth(&p, 0x86dd, 0, NULL);
        pkt_ipv6(&p, REMOTE6, LOCAL6, 44, 64, 0);
        pkt_ipv6_frag(&p, 60, 0, true);
        pkt_ipv6_ext(&p, 60, IPPROTO_UDP, 8);
        pkt_udp(&p, 40000, 53, 32, 200);
        pkt_finish(&p, 0);
        expect_verdict(&p, XDP_DROP, "first fragment to udp/53");
        memset(l4, 'u', sizeof(l4));
        frag6(&p, 60, 0x12345678, l4, 48, 112, false);
        expect_verdict(&p, XDP_DROP, "its later fragment, next header 60");
        e.packets = e.ipv6 = e.dropped = e.dropped_filter = 2;
        e.fragments = e.fragments_followed = 1;
        stats_expect(&e);
        cr_assert_eq(hits(0), 2);
}

/* RFC 7112: an IPv6 first fragment must hold the whole header chain and the transport header. */
Test(fragments, tiny_ipv6) {
        struct ps_stats e = {};
        uint8_t l4[128];
        size_t n = syn_bytes(l4, 23, 5, 0);
        struct pkt p;

        add_rule(rule_tcp23);
        /* 8 bytes of TCP. */
        frag6(&p, IPPROTO_TCP, 1, l4, 0, 8, true);
        expect_verdict(&p, XDP_DROP, "tiny IPv6 first fragment");
        frag6(&p, IPPROTO_TCP, 1, l4, 8, n, false);
        expect_verdict(&p, XDP_DROP, "its later fragment");
        e.packets = e.ipv6 = e.dropped = e.dropped_tiny_fragments = 2;
        e.tiny_fragments = 1;
        e.fragments = e.fragments_followed = 1;
        stats_expect(&e);

        /* The chain goes on past the first fragment: a Destination Options header of 16
         * bytes of which 8 are here. */
        pkt_init(&p);
        pkt_eth(&p, 0x86dd, 0, NULL);
        pkt_ipv6(&p, REMOTE6, LOCAL6, 44, 64, 0);
        pkt_ipv6_frag(&p, 60, 0, true);
        pkt_ipv6_ext(&p, 60, IPPROTO_TCP, 16);
        p.len -= 8;
        pkt_finish(&p, 0);
        expect_verdict(&p, XDP_DROP, "an IPv6 first fragment cut inside its header chain");
        e.packets++;
        e.ipv6++;
        e.dropped++;
        e.dropped_tiny_fragments++;
        e.tiny_fragments++;
        stats_expect(&e);
}

static void dst_chain(struct pkt *p, bool hbh, size_t n, uint16_t dport) {
        uint8_t l4[64];
        size_t len = syn_bytes(l4, dport, 5, 0);

        pkt_init(p);
        pkt_eth(p, 0x86dd, 0, NULL);
        pkt_ipv6(p, REMOTE6, LOCAL6, hbh ? 0 : 60, 64, 0);
        if (hbh)
                pkt_ipv6_ext(p, 0, 60, 8);
        for (size_t i = 0; i < n; i++)
                pkt_ipv6_ext(p, 60, i + 1 < n ? 60 : IPPROTO_TCP, 8);
        pkt_bytes(p, l4, len);
        pkt_finish(p, 0);
}

/* A SYN to tcp/23 behind 7, 1 + 7, 12 and 16 headers is classified and dropped by the rule;
 * behind 17 or more it is dropped by LongHeaderChains=drop. */
Test(fragments, long_ipv6_chains) {
        static const struct {
                bool hbh;
                size_t n;
        } walked[] = { { false, 7 }, { true, 7 }, { false, 12 }, { true, 15 } };
        struct ps_stats e = {};
        struct pkt p;

        add_rule(rule_tcp23);
        for (size_t i = 0; i < sizeof(walked) / sizeof(walked[0]); i++) {
                dst_chain(&p, walked[i].hbh, walked[i].n, 23);
                expect_verdict(&p, XDP_DROP, "SYN behind a chain the parser walks");
                dst_chain(&p, walked[i].hbh, walked[i].n, 80);
                expect_verdict(&p, XDP_PASS, "SYN to 80 behind a chain the parser walks");
        }
        e.packets = e.ipv6 = 8;
        e.dropped = e.dropped_filter = 4;
        e.passed = 4;
        stats_expect(&e);
        cr_assert_eq(hits(0), 4);

        dst_chain(&p, false, 17, 80);
        expect_verdict(&p, XDP_DROP, "17 headers");
        dst_chain(&p, true, 16, 80);
        expect_verdict(&p, XDP_DROP, "1 + 16 headers");
        dst_chain(&p, false, 40, 23);
        expect_verdict(&p, XDP_DROP, "40 headers");
        e.packets += 3;
        e.ipv6 += 3;
        e.dropped += 3;
        e.long_chains = e.dropped_long_chains = 3;
        stats_expect(&e);
        cr_assert_eq(hits(0), 4, "not the rule: the policy");
}

/* LongHeaderChains=pass: classified on the addresses and the header where the walk stopped. */
Test(fragments, long_chain_policy_pass) {
        struct ps_stats e = {};
        struct pkt p;

        set_policy(PS_POLICY_PASS_LONG_CHAINS);
        add_rule(rule_tcp23);
        dst_chain(&p, false, 20, 23);
        expect_verdict(&p, XDP_PASS, "20 headers, policy pass: the port rule cannot see it");
        add_rule("{\"src_ip\": \"2001:db8::1/128\"}");
        dst_chain(&p, false, 20, 23);
        expect_verdict(&p, XDP_DROP, "20 headers from a dropped address");
        e.packets = e.ipv6 = 2;
        e.passed = 1;
        e.dropped = e.dropped_filter = 1;
        e.long_chains = 2;
        stats_expect(&e);
        cr_assert_eq(hits(1), 1);
}

static void vlan_syn(struct pkt *p, size_t tags, uint16_t dport) {
        uint16_t tpids[16];
        uint8_t l4[64];
        size_t len = syn_bytes(l4, dport, 5, 0);

        for (size_t i = 0; i < tags; i++)
                tpids[i] = i == 0 ? 0x88a8 : 0x8100;
        pkt_init(p);
        pkt_eth(p, 0x0800, tags, tpids);
        pkt_ipv4(p, REMOTE4, LOCAL4, IPPROTO_TCP, &(struct ip4_opts) { .ttl = 64 });
        pkt_bytes(p, l4, len);
        pkt_finish(p, 0);
}

/* Linux strips any number of priority tags: up to PS_VLAN_MAX (8) tags are walked and the
 * rule decides; a deeper stack is dropped by LongHeaderChains=drop, or passed with =pass. */
Test(fragments, deep_vlan_stacks) {
        struct ps_stats e = {};
        struct pkt p;

        add_rule(rule_tcp23);
        for (size_t tags = 3; tags <= 8; tags++) {
                vlan_syn(&p, tags, 23);
                expect_verdict(&p, XDP_DROP, "SYN to 23 behind a walked VLAN stack");
        }
        e.packets = e.ipv4 = e.vlan = 6;
        e.dropped = e.dropped_filter = 6;
        stats_expect(&e);
        vlan_syn(&p, 9, 80);
        expect_verdict(&p, XDP_DROP, "9 tags");
        vlan_syn(&p, 16, 23);
        expect_verdict(&p, XDP_DROP, "16 tags");
        e.packets += 2;
        e.vlan += 2;
        e.non_ip += 2;
        e.dropped += 2;
        e.deep_vlan = e.dropped_deep_vlan = 2;
        stats_expect(&e);

        set_policy(PS_POLICY_PASS_LONG_CHAINS);
        vlan_syn(&p, 9, 23);
        expect_verdict(&p, XDP_PASS, "9 tags, policy pass");
        e.packets++;
        e.vlan++;
        e.non_ip++;
        e.passed++;
        e.deep_vlan++;
        stats_expect(&e);
        /* The policy bits are separate. */
        set_policy(PS_POLICY_PASS_TINY_FRAGMENTS);
        vlan_syn(&p, 9, 23);
        expect_verdict(&p, XDP_DROP, "9 tags, only tiny fragments pass");
        cr_assert_eq(hits(0), 6);
}

/* SCTP and UDP-Lite rules name ports: the program reads them. */
Test(fragments, sctp_ports) {
        struct pkt p;
        uint8_t sctp[12] = { 0x9c, 0x40, 0, 23 };

        add_rule("{\"protocol\": \"sctp\", \"dst_port\": 23}");
        pkt_init(&p);
        pkt_eth(&p, 0x0800, 0, NULL);
        pkt_ipv4(&p, REMOTE4, LOCAL4, IPPROTO_SCTP, &(struct ip4_opts) { .ttl = 64 });
        pkt_bytes(&p, sctp, sizeof(sctp));
        pkt_finish(&p, 0);
        expect_verdict(&p, XDP_DROP, "SCTP to 23");
        p.data[14 + 20 + 3] = 24;
        expect_verdict(&p, XDP_PASS, "SCTP to 24");
        cr_assert_eq(hits(0), 1);
}
