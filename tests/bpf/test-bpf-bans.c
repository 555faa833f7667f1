/* SPDX-License-Identifier: MIT */
/*
 * Bans and the auto-ban policies in the real compiled program, under BPF_PROG_TEST_RUN: bans
 * put into the program's maps through the daemon's own map code (ban-maps.c), crafted frames,
 * and exact verdicts, counters, ban entries and ban events, each expected value worked out by
 * hand from the rules in guard.h. Needs root.
 */
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <criterion/criterion.h>
#include <linux/bpf.h>
#include <stdio.h>
#include <time.h>

#include "ban-maps.h"
#include "guard.skel.h"
#include "packet.h"
#include "util.h"

#define DROP 1 /* XDP_DROP */
#define PASS 2 /* XDP_PASS */
#define SEC_NS UINT64_C(1000000000)
#define LOCAL4 "198.51.100.2"
#define LOCAL6 "2001:db8::2"

static struct guard_bpf *skel;
static BanMaps bm;

/* The events the program sent, collected by on_event(). */
static struct ps_ban_event events[64];
static size_t n_events;
static struct ring_buffer *ring;

static int on_event(void *ctx, void *data, size_t size) {
        cr_assert_eq(size, sizeof(struct ps_ban_event));
        cr_assert_lt(n_events, ELEMENTSOF(events));
        memcpy(&events[n_events++], data, sizeof(struct ps_ban_event));
        return 0;
}

static void setup(void) {
        skel = guard_bpf__open();
        cr_assert_not_null(skel);
        bpf_map__set_max_entries(skel->maps.flows, 4096);
        bpf_map__set_max_entries(skel->maps.icmp_flows, 256);
        bpf_map__set_max_entries(skel->maps.icmp4_flows, 256);
        /* A small exact table, so that "full" can be reached. */
        bpf_map__set_max_entries(skel->maps.ban_v4, 1024);
        cr_assert_eq(guard_bpf__load(skel), 0, "the program does not load (verifier log above)");
        bm = BAN_MAPS_INIT;
        bm.v4_fd = bpf_map__fd(skel->maps.ban_v4);
        bm.v6_fd = bpf_map__fd(skel->maps.ban_v6);
        bm.cidr4_fd = bpf_map__fd(skel->maps.ban_cidr4);
        bm.cidr6_fd = bpf_map__fd(skel->maps.ban_cidr6);
        bm.allow4_fd = bpf_map__fd(skel->maps.ban_allow4);
        bm.allow6_fd = bpf_map__fd(skel->maps.ban_allow6);
        bm.presence_fd = bpf_map__fd(skel->maps.ban_presence);
        bm.config_fd = bpf_map__fd(skel->maps.ban_config);
        bm.offenders_fd = bpf_map__fd(skel->maps.ban_offenders);
        bm.sources_fd = bpf_map__fd(skel->maps.ban_sources);
        bm.patterns_fd = bpf_map__fd(skel->maps.ban_url_patterns);
        bm.events_fd = bpf_map__fd(skel->maps.ban_events);
        n_events = 0;
        ring = ring_buffer__new(bm.events_fd, on_event, NULL, NULL);
        cr_assert_not_null(ring);
}

static void teardown(void) {
        ring_buffer__free(ring);
        guard_bpf__destroy(skel);
}

TestSuite(bans, .init = setup, .fini = teardown, .timeout = 120);

static uint64_t mono_ns(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * SEC_NS + (uint64_t) ts.tv_nsec;
}

/* ---- frames ---- */

static bool is_v6(const char *addr) {
        return strchr(addr, ':') != NULL;
}

static void ip(struct pkt *p, const char *src, uint8_t proto) {
        pkt_init(p);
        if (is_v6(src)) {
                pkt_eth(p, 0x86dd, 0, NULL);
                pkt_ipv6(p, src, LOCAL6, proto, 64, 0);
        } else {
                pkt_eth(p, 0x0800, 0, NULL);
                pkt_ipv4(p, src, LOCAL4, proto, &(struct ip4_opts) { .ttl = 64 });
        }
}

static int run(const struct pkt *p) {
        LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = p->data, .data_size_in = (uint32_t) p->len,
                    .repeat = 1);

        cr_assert_eq(bpf_prog_test_run_opts(bpf_program__fd(skel->progs.xdp_guard), &o), 0);
        return (int) o.retval;
}

/* A TCP segment from src:sport to dport, with `payload` as its data. */
static int tcp(const char *src, uint16_t sport, uint16_t dport, uint8_t flags, uint32_t seq,
               const char *payload, size_t payload_len) {
        struct pkt p;

        ip(&p, src, 6);
        pkt_tcp(&p, &(struct tcp_opts) { .sport = sport, .dport = dport, .seq = seq,
                                        .flags = flags, .window = 1000 });
        if (payload_len)
                pkt_bytes(&p, payload, payload_len);
        pkt_finish(&p, 60);
        return run(&p);
}

static int syn(const char *src, uint16_t sport, uint16_t dport) {
        return tcp(src, sport, dport, TCP_SYN, 1000, NULL, 0);
}

static int udp(const char *src, uint16_t sport, uint16_t dport) {
        struct pkt p;

        ip(&p, src, 17);
        pkt_udp(&p, sport, dport, 8, 0);
        pkt_finish(&p, 60);
        return run(&p);
}

/* ---- bans, through the daemon's map code ---- */

static void addr_of(const char *s, uint8_t *family, uint32_t a[4]) {
        memset(a, 0, 16);
        *family = is_v6(s) ? PS_FAMILY_IPV6 : PS_FAMILY_IPV4;
        cr_assert_eq(inet_pton(is_v6(s) ? AF_INET6 : AF_INET, s, a), 1, "%s", s);
}

static void ban(const char *addr, uint8_t prefixlen, uint64_t expires) {
        struct ps_ban v = { .expires = expires, .origin = PS_BAN_ORIGIN_MANUAL, .id = 7 };
        uint32_t a[4];
        uint8_t family;

        addr_of(addr, &family, a);
        cr_assert_eq(ban_maps_insert(&bm, family, a, prefixlen, &v, BPF_ANY), 0);
        cr_assert_eq(ban_maps_update_presence(&bm), 0);
}

static void unban(const char *addr, uint8_t prefixlen) {
        uint32_t a[4];
        uint8_t family;

        addr_of(addr, &family, a);
        cr_assert_eq(ban_maps_delete(&bm, family, a, prefixlen), 0);
        cr_assert_eq(ban_maps_update_presence(&bm), 0);
}

static void allow(const char *addr, uint8_t prefixlen) {
        uint32_t a[4];
        uint8_t family;

        addr_of(addr, &family, a);
        cr_assert_eq(ban_maps_allow_add(&bm, family, a, prefixlen, 1), 0);
        cr_assert_eq(ban_maps_update_presence(&bm), 0);
}

static bool get_ban(const char *addr, uint8_t prefixlen, struct ps_ban *ret) {
        uint32_t a[4];
        uint8_t family;

        addr_of(addr, &family, a);
        return ban_maps_lookup(&bm, family, a, prefixlen, ret) == 0;
}

static struct ps_stats stats(void) {
        int n = libbpf_num_possible_cpus();
        struct ps_stats per[n], sum = {};
        uint32_t zero = 0;

        cr_assert_eq(bpf_map_lookup_elem(bpf_map__fd(skel->maps.stats), &zero, per), 0);
        for (int c = 0; c < n; c++)
                for (size_t w = 0; w < PS_STATS_MAP_SIZE / 8; w++)
                        ((uint64_t *) &sum)[w] +=
                                ((uint64_t *) ((uint8_t *) per + c * PS_STATS_MAP_SIZE))[w];
        return sum;
}

/* ---- manual bans ---- */

Test(bans, exact_v4_drops_that_address_only) {
        struct ps_ban b;
        struct ps_stats s;

        ban("192.0.2.1", 32, 0);
        /* A /32 lives in the exact table, not the trie. */
        uint32_t key = htonl(0xc0000201);
        struct ps_ban direct;
        cr_assert_eq(bpf_map_lookup_elem(bm.v4_fd, &key, &direct), 0);
        cr_assert_eq(direct.prefixlen, 32);

        cr_assert_eq(syn("192.0.2.1", 40000, 22), DROP);
        cr_assert_eq(udp("192.0.2.1", 40000, 53), DROP);
        cr_assert_eq(syn("192.0.2.2", 40000, 22), PASS);
        cr_assert(get_ban("192.0.2.1", 32, &b));
        cr_assert_eq(b.packets, 2);
        cr_assert_eq(b.bytes, 2 * 60);
        cr_assert_gt(b.last_hit, 0);
        s = stats();
        cr_assert_eq(s.dropped_ban, 2);
        cr_assert_eq(s.dropped, 2);
        cr_assert_eq(s.dropped_filter, 0);
        cr_assert_eq(s.passed, 1);
        /* Banned packets never reach the connection table: only 192.0.2.2's flow is there. */
        {
                struct ps_flow_key k, next;
                void *prev = NULL;
                int n = 0;

                while (bpf_map_get_next_key(bpf_map__fd(skel->maps.flows), prev, &next) == 0) {
                        k = next;
                        prev = &k;
                        n++;
                }
                cr_assert_eq(n, 1);
        }
}

Test(bans, exact_v6) {
        ban("2001:db8::1", 128, 0);
        cr_assert_eq(syn("2001:db8::1", 40000, 443), DROP);
        cr_assert_eq(syn("2001:db8::3", 40000, 443), PASS);
        cr_assert_eq(stats().dropped_ban, 1);
}

Test(bans, cidr_v4_blocks_the_whole_range) {
        ban("192.0.2.0", 24, 0);
        cr_assert_eq(syn("192.0.2.0", 1, 80), DROP);
        cr_assert_eq(syn("192.0.2.77", 1, 80), DROP);
        cr_assert_eq(syn("192.0.2.255", 1, 80), DROP);
        cr_assert_eq(syn("192.0.3.0", 1, 80), PASS);
        cr_assert_eq(syn("192.0.1.255", 1, 80), PASS);
        cr_assert_eq(stats().dropped_ban, 3);
}

Test(bans, cidr_v6_and_odd_prefix_lengths) {
        ban("2001:db8:aa00::", 40, 0);
        ban("10.0.0.0", 9, 0);
        cr_assert_eq(syn("2001:db8:aaff:1::9", 1, 80), DROP);
        cr_assert_eq(syn("2001:db8:ab00::1", 1, 80), PASS);
        cr_assert_eq(syn("10.127.255.255", 1, 80), DROP);
        cr_assert_eq(syn("10.128.0.0", 1, 80), PASS);
}

Test(bans, tries_are_skipped_while_presence_says_empty) {
        struct ps_ban v = { .origin = PS_BAN_ORIGIN_MANUAL };
        struct ps_ban_presence none = {};
        uint32_t a[4] = { htonl(0xc0000200) }, zero = 0;

        cr_assert_eq(ban_maps_insert(&bm, PS_FAMILY_IPV4, a, 24, &v, BPF_ANY), 0);
        cr_assert_eq(bpf_map_update_elem(bm.presence_fd, &zero, &none, BPF_ANY), 0);
        cr_assert_eq(syn("192.0.2.9", 1, 80), PASS);
        cr_assert_eq(ban_maps_update_presence(&bm), 0);
        cr_assert_eq(syn("192.0.2.9", 2, 80), DROP);
}

static struct ps_ban_presence presence(uint32_t which) {
        struct ps_ban_presence p;

        cr_assert_eq(bpf_map_lookup_elem(bm.presence_fd, &which, &p), 0);
        return p;
}

/* Puts a ban into ban_v4 behind the daemon's map code, as nothing but the program's own
 * insert does: whether the program looks it up tells whether it looks the table up at all. */
static void ban_v4_behind(const char *addr) {
        struct ps_ban v = { .origin = PS_BAN_ORIGIN_MANUAL, .prefixlen = 32,
                            .family = PS_FAMILY_IPV4 };
        uint32_t a = inet_addr(addr);

        cr_assert_eq(bpf_map_update_elem(bm.v4_fd, &a, &v, BPF_NOEXIST), 0);
}

Test(bans, the_exact_tables_are_skipped_while_presence_says_empty) {
        uint32_t a[4] = { htonl(0xc0000209) };

        cr_assert_eq(ban_maps_update_presence(&bm), 0);
        cr_assert_eq(presence(PS_BAN_PRESENCE_DAEMON).exact4, 0);
        ban_v4_behind("192.0.2.9");
        cr_assert_eq(syn("192.0.2.9", 1, 80), PASS);
        cr_assert_eq(ban_maps_update_presence(&bm), 0);
        cr_assert_eq(presence(PS_BAN_PRESENCE_DAEMON).exact4, 1);
        cr_assert_eq(syn("192.0.2.9", 2, 80), DROP);
        /* The last ban gone: counted empty, skipped again. */
        cr_assert_eq(ban_maps_delete(&bm, PS_FAMILY_IPV4, a, 32), 0);
        cr_assert_eq(ban_maps_update_presence(&bm), 0);
        cr_assert_eq(presence(PS_BAN_PRESENCE_DAEMON).exact4, 0);
        ban_v4_behind("192.0.2.10");
        cr_assert_eq(syn("192.0.2.10", 1, 80), PASS);
        /* The daemon's own insert raises the count before the entry goes in. */
        cr_assert_eq(ban_maps_insert(&bm, PS_FAMILY_IPV4, a, 32,
                                     &(struct ps_ban) { .origin = PS_BAN_ORIGIN_MANUAL },
                                     BPF_ANY), 0);
        cr_assert_eq(presence(PS_BAN_PRESENCE_DAEMON).exact4, 1);
        cr_assert_eq(syn("192.0.2.9", 3, 80), DROP);
        cr_assert_eq(syn("192.0.2.10", 2, 80), DROP);
        cr_assert_eq(stats().dropped_ban, 3);
}

Test(bans, expired_bans_no_longer_drop) {
        uint64_t now = mono_ns();

        ban("192.0.2.1", 32, now - 1);
        ban("192.0.2.64", 26, now - 1);
        cr_assert_eq(syn("192.0.2.1", 1, 80), PASS);
        cr_assert_eq(syn("192.0.2.65", 1, 80), PASS);
        cr_assert_eq(stats().ban_expired_seen, 1); /* the exact one */
        cr_assert_eq(stats().dropped_ban, 0);

        /* One that ends 300 ms from now: drops until then, not after. */
        ban("192.0.2.2", 32, mono_ns() + 300 * 1000000);
        cr_assert_eq(syn("192.0.2.2", 1, 80), DROP);
        while (mono_ns() < now + 400 * 1000000)
                usleep(20000);
        cr_assert_eq(syn("192.0.2.2", 2, 80), PASS);
}

Test(bans, the_longer_prefix_wins_and_removing_the_shorter_does_not_unban) {
        ban("192.0.2.0", 24, 0);
        ban("192.0.0.0", 16, 0);
        cr_assert_eq(syn("192.0.2.5", 1, 80), DROP);
        unban("192.0.0.0", 16);
        cr_assert_eq(syn("192.0.2.5", 2, 80), DROP);
        cr_assert_eq(syn("192.0.3.5", 2, 80), PASS);

        /* The /24 dropped both, so its counters say 2 and nothing went to the /16. */
        struct ps_ban b;
        cr_assert(get_ban("192.0.2.0", 24, &b));
        cr_assert_eq(b.packets, 2);
}

Test(bans, an_expired_longer_prefix_falls_back_to_the_shorter_one) {
        uint64_t past = mono_ns() - 1;

        ban("192.0.0.0", 16, 0);
        ban("192.0.2.0", 24, past);
        ban("192.0.2.7", 32, past);
        cr_assert_eq(syn("192.0.2.7", 1, 80), DROP);
        cr_assert_eq(syn("192.0.2.8", 1, 80), DROP);
        ban("2001:db8::", 32, 0);
        ban("2001:db8:1::", 48, past);
        cr_assert_eq(syn("2001:db8:1::5", 1, 80), DROP);

        struct ps_ban b;
        cr_assert(get_ban("192.0.0.0", 16, &b));
        cr_assert_eq(b.packets, 2);
}

Test(bans, the_allowlist_beats_every_ban) {
        ban("192.0.2.0", 24, 0);
        ban("192.0.2.1", 32, 0);
        allow("192.0.2.1", 32);
        allow("2001:db8::", 32);
        ban("2001:db8::1", 128, 0);
        cr_assert_eq(syn("192.0.2.1", 1, 80), PASS);
        cr_assert_eq(syn("192.0.2.2", 1, 80), DROP);
        cr_assert_eq(syn("2001:db8::1", 1, 80), PASS);
        struct ps_stats s = stats();
        cr_assert_eq(s.ban_allowlisted, 2);
        cr_assert_eq(s.dropped_ban, 1);
}

/* ---- auto-ban policies ---- */

static void drain(void) {
        cr_assert_geq(ring_buffer__consume(ring), 0);
}

#define MODE_COUNT PS_BAN_MODE_COUNT
#define MODE_ENFORCE PS_BAN_MODE_ENFORCE

/* The configuration with one policy on (every other off), HTTP on ports 80 and 8080, and the
 * URL patterns the daemon ships with. */
static void only(enum ps_ban_policy which, uint32_t mode, uint32_t threshold, uint32_t burst,
                 uint64_t window_ns, uint64_t ban_ns) {
        static const char *patterns[] = { "/admin", "/wp-admin", "/.env", "/config" };
        struct ps_ban_config c = { .http_ports = { 80, 8080 }, .n_http_ports = 2 };
        struct ps_ban_policy_conf *pc = &c.policy[which];
        uint64_t lengths;

        for (size_t i = 0; i < ELEMENTSOF(patterns); i++)
                cr_assert_eq(ban_maps_pattern_add(&bm, patterns[i], strlen(patterns[i]),
                                                  (uint32_t) i + 1), 0);
        cr_assert_eq(ban_maps_url_lengths(&bm, &lengths), 0);
        /* "/admin" 6, "/.env" 5, "/config" 7, "/wp-admin" 9 */
        c.url_lengths = lengths;
        cr_assert_eq(lengths, (1u << 4) | (1u << 5) | (1u << 6) | (1u << 8));
        pc->mode = mode;
        pc->threshold = threshold;
        pc->burst = burst;
        pc->prefix4 = 32;
        pc->prefix6 = 128;
        pc->window_ns = window_ns;
        pc->ban_ns = ban_ns;
        cr_assert_eq(ban_maps_set_config(&bm, &c), 0);
}

/* Tunes the policy that only() turned on. */
static void tune(enum ps_ban_policy which, uint8_t prefix4, uint32_t factor, uint64_t max_ns) {
        struct ps_ban_config c;

        cr_assert_eq(ban_maps_get_config(&bm, &c), 0);
        c.policy[which].prefix4 = prefix4;
        c.policy[which].repeat_factor = factor;
        c.policy[which].repeat_max_ns = max_ns;
        cr_assert_eq(ban_maps_set_config(&bm, &c), 0);
}

/* The one event the program sent since the last call, checked against what is expected. */
static struct ps_ban_event one_event(uint8_t policy, uint8_t kind, uint32_t value, uint16_t dport) {
        drain();
        cr_assert_eq(n_events, 1, "%zu events", n_events);
        n_events = 0;
        cr_assert_eq(events[0].policy, policy);
        cr_assert_eq(events[0].kind, kind);
        cr_assert_eq(events[0].value, value);
        cr_assert_eq(events[0].dport, dport);
        return events[0];
}

static void no_event(void) {
        drain();
        cr_assert_eq(n_events, 0, "%zu events, policy %u kind %u", n_events,
                     n_events ? events[0].policy : 0, n_events ? events[0].kind : 0);
}

/* An HTTP request line (or a piece of one) from src:sport to dport, sequence number seq. */
static int http(const char *src, uint16_t sport, uint16_t dport, uint32_t seq, const char *data,
                size_t len) {
        return tcp(src, sport, dport, TCP_ACK | TCP_PSH, seq, data, len);
}

static int get(const char *src, uint16_t sport, const char *line) {
        return http(src, sport, 80, 1, line, strlen(line));
}

/* The auto-ban of addr: exact, origin auto, the policy, the offense count and its length. */
static void auto_banned(const char *addr, uint8_t prefixlen, uint8_t policy, uint32_t offenses,
                        uint64_t length_ns) {
        struct ps_ban b;

        cr_assert(get_ban(addr, prefixlen, &b), "%s/%u is not banned", addr, prefixlen);
        cr_assert_eq(b.origin, PS_BAN_ORIGIN_AUTO);
        cr_assert_eq(b.policy, policy);
        cr_assert_eq(b.offenses, offenses);
        cr_assert_eq(b.prefixlen, prefixlen);
        cr_assert_eq(b.expires - b.created, length_ns, "%llu ns",
                     (unsigned long long) (b.expires - b.created));
}

Test(bans, an_auto_ban_is_enforced_while_the_daemon_counts_the_table_empty) {
        uint32_t a[4] = { htonl(0xc0000232) };
        struct ps_ban_presence d, k;

        cr_assert_eq(ban_maps_update_presence(&bm), 0);
        only(PS_BAN_POLICY_SYN_RATE, MODE_ENFORCE, 1, 1, 0, 0);
        cr_assert_eq(syn("192.0.2.50", 1000, 443), PASS);
        cr_assert_eq(syn("192.0.2.50", 1001, 443), DROP);
        d = presence(PS_BAN_PRESENCE_DAEMON);
        k = presence(PS_BAN_PRESENCE_KERNEL);
        cr_assert_eq(d.exact4, 0);
        cr_assert_eq(d.kernel_exact4, 0);
        cr_assert_eq(k.exact4, 1);
        /* The next packet of the source, before the daemon has counted anything: dropped by
         * the ban, not by the policy. */
        cr_assert_eq(udp("192.0.2.50", 1000, 53), DROP);
        cr_assert_eq(stats().dropped_ban, 1);
        cr_assert_eq(stats().dropped_autoban, 1);
        /* The daemon counts: the table holds the ban. */
        cr_assert_eq(ban_maps_update_presence(&bm), 0);
        d = presence(PS_BAN_PRESENCE_DAEMON);
        cr_assert_eq(d.exact4, 1);
        cr_assert_eq(d.kernel_exact4, 1);
        cr_assert_eq(udp("192.0.2.50", 1001, 53), DROP);
        /* Reaped: the daemon's count and its copy of the program's say skip. */
        cr_assert_eq(ban_maps_delete(&bm, PS_FAMILY_IPV4, a, 32), 0);
        cr_assert_eq(ban_maps_update_presence(&bm), 0);
        d = presence(PS_BAN_PRESENCE_DAEMON);
        cr_assert_eq(d.exact4, 0);
        cr_assert_eq(d.kernel_exact4, 1);
        ban_v4_behind("192.0.2.51");
        cr_assert_eq(udp("192.0.2.51", 1000, 53), PASS);
        cr_assert_eq(stats().dropped_ban, 2);
}

Test(bans, connections_ban_the_syn_past_the_threshold) {
        struct ps_ban b;
        struct ps_stats s;

        only(PS_BAN_POLICY_CONNECTIONS, MODE_ENFORCE, 5, 0, 0, 60 * SEC_NS);
        for (uint16_t i = 0; i < 5; i++)
                cr_assert_eq(syn("192.0.2.10", 1000 + i, 22), PASS, "SYN %u", i + 1);
        /* A retransmitted SYN of an open connection is not a new one. */
        cr_assert_eq(syn("192.0.2.10", 1001, 22), PASS);
        /* A FIN from the source closes one: room for one more. */
        cr_assert_eq(tcp("192.0.2.10", 1000, 22, TCP_FIN | TCP_ACK, 2000, NULL, 0), PASS);
        cr_assert_eq(syn("192.0.2.10", 1005, 22), PASS);
        no_event();
        cr_assert(!get_ban("192.0.2.10", 32, &b));
        /* Another source has a count of its own. */
        cr_assert_eq(syn("192.0.2.11", 1000, 22), PASS);

        /* The sixth open connection. */
        cr_assert_eq(syn("192.0.2.10", 1006, 22), DROP);
        struct ps_ban_event e = one_event(PS_BAN_POLICY_CONNECTIONS, PS_BAN_EVENT_BANNED, 6, 22);
        cr_assert_eq(e.offenses, 1);
        cr_assert_eq(e.family, PS_FAMILY_IPV4);
        cr_assert_eq(e.prefixlen, 32);
        cr_assert_eq(e.addr[0], htonl(0xc000020a));
        cr_assert_eq(e.expires - e.time, 60 * SEC_NS);
        auto_banned("192.0.2.10", 32, PS_BAN_POLICY_CONNECTIONS, 1, 60 * SEC_NS);
        /* Its next packet is the ban's. */
        cr_assert_eq(syn("192.0.2.10", 1007, 22), DROP);
        cr_assert_eq(syn("192.0.2.11", 1001, 22), PASS);
        s = stats();
        cr_assert_eq(s.dropped_autoban, 1);
        cr_assert_eq(s.dropped_ban, 1);
        cr_assert_eq(s.policy_triggers[PS_BAN_POLICY_CONNECTIONS], 1);
        cr_assert_eq(s.policy_shadow[PS_BAN_POLICY_CONNECTIONS], 0);
}

/* A known flow's SYN skips the policies unless it opens a connection: only on a tuple closed
 * by a FIN or an RST does it count again; a retransmitted SYN or a SYN-ACK never does. */
Test(bans, a_syn_counts_again_only_on_a_closed_tuple) {
        struct ps_ban b;

        only(PS_BAN_POLICY_CONNECTIONS, MODE_ENFORCE, 1, 0, 0, 60 * SEC_NS);
        cr_assert_eq(syn("192.0.2.12", 1000, 22), PASS);
        cr_assert_eq(syn("192.0.2.12", 1000, 22), PASS);
        cr_assert_eq(tcp("192.0.2.12", 1000, 22, TCP_SYN | TCP_ACK, 1000, NULL, 0), PASS);
        /* Closed by a FIN, reopened by a SYN: counted, still one open. */
        cr_assert_eq(tcp("192.0.2.12", 1000, 22, TCP_FIN | TCP_ACK, 2000, NULL, 0), PASS);
        cr_assert_eq(syn("192.0.2.12", 1000, 22), PASS);
        /* Closed by an RST, reopened: counted again. */
        cr_assert_eq(tcp("192.0.2.12", 1000, 22, TCP_RST, 2000, NULL, 0), PASS);
        cr_assert_eq(syn("192.0.2.12", 1000, 22), PASS);
        no_event();
        cr_assert(!get_ban("192.0.2.12", 32, &b));
        /* Had a reopening SYN gone uncounted, the count would be 0 here and this one pass. */
        cr_assert_eq(syn("192.0.2.12", 1001, 22), DROP);
        one_event(PS_BAN_POLICY_CONNECTIONS, PS_BAN_EVENT_BANNED, 2, 22);
}

Test(bans, syn_rate_bans_the_syn_past_the_burst) {
        /* One per second sustained, four at once: SYNs 1-4 conform, the fifth bans (the five
         * are sent within a second: a token comes back only after one). */
        only(PS_BAN_POLICY_SYN_RATE, MODE_ENFORCE, 1, 4, 0, 30 * SEC_NS);
        for (uint16_t i = 0; i < 4; i++)
                cr_assert_eq(syn("2001:db8::10", 1000 + i, 443), PASS, "SYN %u", i + 1);
        /* UDP is not a connection. */
        cr_assert_eq(udp("2001:db8::10", 1000, 53), PASS);
        no_event();
        cr_assert_eq(syn("2001:db8::10", 1004, 443), DROP);
        struct ps_ban_event e = one_event(PS_BAN_POLICY_SYN_RATE, PS_BAN_EVENT_BANNED, 5, 443);
        cr_assert_eq(e.family, PS_FAMILY_IPV6);
        cr_assert_eq(e.prefixlen, 128);
        auto_banned("2001:db8::10", 128, PS_BAN_POLICY_SYN_RATE, 1, 30 * SEC_NS);
        cr_assert_eq(syn("2001:db8::11", 1000, 443), PASS);
}

Test(bans, port_scan_weighs_low_ports_three_and_others_one) {
        /* scanlogd: 21 bans. Ports 2000-2020 and the seven low ones below have distinct bits
         * in the 256-bit set, so each counts. */
        static const uint16_t low[] = { 22, 23, 25, 80, 110, 143, 443 };

        only(PS_BAN_POLICY_PORT_SCAN, MODE_ENFORCE, 21, 0, 3 * SEC_NS, 60 * SEC_NS);
        for (uint16_t i = 0; i < 20; i++)
                cr_assert_eq(syn("192.0.2.20", 5000 + i, 2000 + i), PASS, "port %u", 2000 + i);
        /* A port seen already weighs nothing. */
        cr_assert_eq(syn("192.0.2.20", 5100, 2005), PASS);
        no_event();
        cr_assert_eq(syn("192.0.2.20", 5101, 2020), DROP);
        one_event(PS_BAN_POLICY_PORT_SCAN, PS_BAN_EVENT_BANNED, 21, 2020);
        auto_banned("192.0.2.20", 32, PS_BAN_POLICY_PORT_SCAN, 1, 60 * SEC_NS);

        /* Six low ports weigh 18, the seventh 21. */
        for (size_t i = 0; i < 6; i++)
                cr_assert_eq(syn("192.0.2.21", 5000 + i, low[i]), PASS, "port %u", low[i]);
        no_event();
        cr_assert_eq(syn("192.0.2.21", 5006, low[6]), DROP);
        one_event(PS_BAN_POLICY_PORT_SCAN, PS_BAN_EVENT_BANNED, 21, 443);

        /* The first datagram of each UDP flow counts too. */
        for (uint16_t i = 0; i < 20; i++)
                cr_assert_eq(udp("192.0.2.22", 5000, 2000 + i), PASS, "port %u", 2000 + i);
        cr_assert_eq(udp("192.0.2.22", 5000, 2003), PASS);
        no_event();
        cr_assert_eq(udp("192.0.2.22", 5000, 2020), DROP);
        one_event(PS_BAN_POLICY_PORT_SCAN, PS_BAN_EVENT_BANNED, 21, 2020);
}

Test(bans, url_patterns_match_the_request_target_prefix) {
        only(PS_BAN_POLICY_URL, MODE_ENFORCE, 0, 0, 0, 60 * SEC_NS);
        cr_assert_eq(get("192.0.2.30", 1, "GET /index.html HTTP/1.1\r\nHost: a\r\n\r\n"), PASS);
        /* Case-sensitive, as URLs are. */
        cr_assert_eq(get("192.0.2.30", 2, "GET /WP-ADMIN/ HTTP/1.1\r\n"), PASS);
        /* A target that ends before the pattern does. */
        cr_assert_eq(get("192.0.2.30", 3, "GET /adm HTTP/1.1\r\n"), PASS);
        cr_assert_eq(get("192.0.2.30", 4, "GET /x/admin HTTP/1.1\r\n"), PASS);
        /* Not a method: lower case, or no target after it. */
        cr_assert_eq(get("192.0.2.30", 5, "get /admin HTTP/1.1\r\n"), PASS);
        cr_assert_eq(get("192.0.2.30", 6, " /admin HTTP/1.1\r\n"), PASS);
        /* Not an HTTP port. */
        cr_assert_eq(http("192.0.2.30", 7, 8081, 1, "GET /admin", 10), PASS);
        no_event();

        cr_assert_eq(get("192.0.2.31", 1, "GET /wp-admin/ HTTP/1.1\r\nHost: a\r\n\r\n"), DROP);
        one_event(PS_BAN_POLICY_URL, PS_BAN_EVENT_BANNED, 9, 80);
        auto_banned("192.0.2.31", 32, PS_BAN_POLICY_URL, 1, 60 * SEC_NS);
        cr_assert_eq(http("192.0.2.32", 1, 8080, 1, "POST /.env HTTP/1.0\r\n", 21), DROP);
        one_event(PS_BAN_POLICY_URL, PS_BAN_EVENT_BANNED, 5, 8080);
        /* A prefix: /administrator starts with /admin. */
        cr_assert_eq(get("192.0.2.33", 1, "OPTIONS /administrator HTTP/1.1\r\n"), DROP);
        one_event(PS_BAN_POLICY_URL, PS_BAN_EVENT_BANNED, 6, 80);
        cr_assert_eq(get("192.0.2.34", 1, "GET /config"), DROP);
        one_event(PS_BAN_POLICY_URL, PS_BAN_EVENT_BANNED, 7, 80);
        cr_assert_eq(stats().dropped_autoban, 4);
}

/* Every cut of a request line: the first piece alone, then the rest in sequence. */
static void every_cut(const char *line, size_t decided_at, bool bad) {
        size_t len = strlen(line);

        for (size_t k = 1; k < len; k++) {
                char src[32];
                int first, rest = -1;

                snprintf(src, sizeof(src), "10.%u.%zu.1", bad ? 1 : 2, k);
                first = http(src, 4000, 80, 7000, line, k);
                if (first == PASS)
                        rest = http(src, 4000, 80, (uint32_t) (7000 + k), line + k, len - k);
                if (!bad) {
                        cr_assert_eq(first, PASS, "cut at %zu", k);
                        cr_assert_eq(rest, PASS, "cut at %zu", k);
                        continue;
                }
                /* The first piece bans once it holds the whole pattern. */
                cr_assert_eq(first, k >= decided_at ? DROP : PASS, "cut at %zu", k);
                if (k < decided_at)
                        cr_assert_eq(rest, DROP, "rest after a cut at %zu", k);
                one_event(PS_BAN_POLICY_URL, PS_BAN_EVENT_BANNED, 9, 80);
                auto_banned(src, 32, PS_BAN_POLICY_URL, 1, 60 * SEC_NS);
        }
        if (!bad)
                no_event();
}

Test(bans, url_every_cut_of_a_request_line_and_its_continuation) {
        only(PS_BAN_POLICY_URL, MODE_ENFORCE, 0, 0, 0, 60 * SEC_NS);
        /* "GET /wp-admin" is 13 bytes. */
        every_cut("GET /wp-admin/ HTTP/1.1\r\nHost: a\r\n\r\n", 13, true);
        every_cut("GET /index.html HTTP/1.1\r\nHost: a\r\n\r\n", 0, false);

        /* A continuation out of sequence is a segment of its own. */
        cr_assert_eq(http("192.0.2.40", 1, 80, 100, "GET /wp", 7), PASS);
        cr_assert_eq(http("192.0.2.40", 1, 80, 108, "-admin/ HTTP/1.1\r\n", 18), PASS);
        /* A long method token cut short is kept; a token longer than any method is not one. */
        cr_assert_eq(http("192.0.2.41", 1, 80, 100, "PROPFIND", 8), PASS);
        cr_assert_eq(http("192.0.2.41", 1, 80, 108, " /admin", 7), DROP);
        one_event(PS_BAN_POLICY_URL, PS_BAN_EVENT_BANNED, 6, 80);
        cr_assert_eq(get("192.0.2.42", 1, "ABCDEFGHIJKLMNOPQ /admin"), PASS);
        no_event();
}

Test(bans, shadow_mode_reports_without_banning) {
        struct ps_ban b;

        only(PS_BAN_POLICY_URL, MODE_COUNT, 0, 0, 0, 60 * SEC_NS);
        cr_assert_eq(get("192.0.2.50", 1, "GET /admin HTTP/1.1\r\n"), PASS);
        struct ps_ban_event e = one_event(PS_BAN_POLICY_URL, PS_BAN_EVENT_SHADOW, 6, 80);
        cr_assert_eq(e.offenses, 1);
        cr_assert(!get_ban("192.0.2.50", 32, &b));
        /* Once per ban length per source. */
        cr_assert_eq(get("192.0.2.50", 2, "GET /admin HTTP/1.1\r\n"), PASS);
        no_event();
        cr_assert_eq(stats().policy_shadow[PS_BAN_POLICY_URL], 1);
        cr_assert_eq(stats().policy_triggers[PS_BAN_POLICY_URL], 0);

        only(PS_BAN_POLICY_CONNECTIONS, MODE_COUNT, 2, 0, 0, 60 * SEC_NS);
        for (uint16_t i = 0; i < 4; i++)
                cr_assert_eq(syn("192.0.2.51", 1000 + i, 22), PASS);
        one_event(PS_BAN_POLICY_CONNECTIONS, PS_BAN_EVENT_SHADOW, 3, 22);
        cr_assert(!get_ban("192.0.2.51", 32, &b));
        cr_assert_eq(stats().dropped, 0);
}

Test(bans, an_allowlisted_source_is_never_auto_banned) {
        struct ps_ban b;

        allow("192.0.2.60", 32);
        only(PS_BAN_POLICY_CONNECTIONS, MODE_ENFORCE, 2, 0, 0, 60 * SEC_NS);
        for (uint16_t i = 0; i < 5; i++)
                cr_assert_eq(syn("192.0.2.60", 1000 + i, 22), PASS);
        only(PS_BAN_POLICY_URL, MODE_ENFORCE, 0, 0, 0, 60 * SEC_NS);
        cr_assert_eq(get("192.0.2.60", 1, "GET /wp-admin/ HTTP/1.1\r\n"), PASS);
        only(PS_BAN_POLICY_PORT_SCAN, MODE_ENFORCE, 3, 0, 3 * SEC_NS, 60 * SEC_NS);
        cr_assert_eq(syn("192.0.2.60", 2000, 23), PASS);
        cr_assert_eq(syn("192.0.2.60", 2001, 25), PASS);
        no_event();
        cr_assert(!get_ban("192.0.2.60", 32, &b));
        /* The neighbour is not on the list. */
        cr_assert_eq(syn("192.0.2.61", 2000, 23), DROP);
        one_event(PS_BAN_POLICY_PORT_SCAN, PS_BAN_EVENT_BANNED, 3, 23);
}

Test(bans, repeat_offenders_are_banned_longer_each_time) {
        /* 10 s, then times 3, at most 60 s: 10, 30, 60 (not 90), 60. */
        static const uint64_t lengths[] = { 10, 30, 60, 60 };

        only(PS_BAN_POLICY_URL, MODE_ENFORCE, 0, 0, 0, 10 * SEC_NS);
        tune(PS_BAN_POLICY_URL, 32, 3, 60 * SEC_NS);
        for (uint32_t n = 1; n <= 4; n++) {
                cr_assert_eq(get("192.0.2.70", (uint16_t) n, "GET /.env HTTP/1.1\r\n"), DROP);
                struct ps_ban_event e = one_event(PS_BAN_POLICY_URL, PS_BAN_EVENT_BANNED, 5, 80);
                cr_assert_eq(e.offenses, n);
                auto_banned("192.0.2.70", 32, PS_BAN_POLICY_URL, n, lengths[n - 1] * SEC_NS);
                unban("192.0.2.70", 32);
        }
        /* Offenses the daemon restores count as the kernel's own. */
        struct ps_ban_src_key k = { .family = PS_FAMILY_IPV4, .prefixlen = 32,
                                    .addr = { htonl(0xc0000247) } };
        struct ps_ban_offender o = { .last_ban = 1, .offenses = 1 };
        cr_assert_eq(ban_maps_offender_set(&bm, &k, &o), 0);
        cr_assert_eq(get("192.0.2.71", 1, "GET /.env HTTP/1.1\r\n"), DROP);
        cr_assert_eq(one_event(PS_BAN_POLICY_URL, PS_BAN_EVENT_BANNED, 5, 80).offenses, 2);
        auto_banned("192.0.2.71", 32, PS_BAN_POLICY_URL, 2, 30 * SEC_NS);
}

Test(bans, a_policy_prefix_bans_the_whole_network) {
        only(PS_BAN_POLICY_CONNECTIONS, MODE_ENFORCE, 1, 0, 0, 60 * SEC_NS);
        tune(PS_BAN_POLICY_CONNECTIONS, 24, 0, 0);
        cr_assert_eq(syn("203.0.113.1", 1000, 22), PASS);
        /* A second address of the same /24: two open connections from the network. */
        cr_assert_eq(syn("203.0.113.2", 1000, 22), DROP);
        struct ps_ban_event e = one_event(PS_BAN_POLICY_CONNECTIONS, PS_BAN_EVENT_BANNED, 2, 22);
        cr_assert_eq(e.prefixlen, 24);
        cr_assert_eq(e.addr[0], htonl(0xcb007100));
        auto_banned("203.0.113.0", 24, PS_BAN_POLICY_CONNECTIONS, 1, 60 * SEC_NS);
        cr_assert_eq(syn("203.0.113.200", 1000, 80), DROP);
        cr_assert_eq(syn("203.0.114.1", 1000, 80), PASS);
}
