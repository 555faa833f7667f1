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
                for (size_t w = 0; w < sizeof(sum) / 8; w++)
                        ((uint64_t *) &sum)[w] += ((uint64_t *) &per[c])[w];
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
