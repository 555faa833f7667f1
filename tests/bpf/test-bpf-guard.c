/* SPDX-License-Identifier: MIT */
/*
 * The XDP program as built for the daemon (the same skeleton), loaded into this kernel and run
 * with BPF_PROG_TEST_RUN on crafted frames. Every test checks the tables and every counter
 * against exact values: what the program must count, and that it counts nothing else.
 * Needs root.
 */
#include <arpa/inet.h>
#include <pthread.h>
#include <sched.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "guard.h"
#include "guard.skel.h"
#include "packet.h"

#define XDP_PASS_CODE 2 /* enum xdp_action XDP_PASS */
#define ETH_HEADER 14
#define REMOTE4 "192.0.2.1"
#define LOCAL4 "198.51.100.2"
#define OTHER4 "203.0.113.5"
#define REMOTE6 "2001:db8::1"
#define LOCAL6 "2001:db8::2"
#define OTHER6 "2001:db8:ffff::5"

static struct guard_bpf *skel;

static void setup(void) {
        int r;

        skel = guard_bpf__open();
        cr_assert_not_null(skel, "cannot open the skeleton: %s", strerror(errno));
        /* Small tables: the tests create a handful of entries. */
        bpf_map__set_max_entries(skel->maps.flows, 1024);
        bpf_map__set_max_entries(skel->maps.icmp_flows, 256);
        bpf_map__set_max_entries(skel->maps.icmp4_flows, 256);
        r = guard_bpf__load(skel);
        cr_assert_eq(r, 0, "cannot load the program (verifier log above): %s", strerror(-r));
}

static void teardown(void) {
        guard_bpf__destroy(skel);
}

TestSuite(guard, .init = setup, .fini = teardown, .timeout = 120);

static uint64_t coarse_now(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
        return (uint64_t) ts.tv_sec * 1000000000ull + (uint64_t) ts.tv_nsec;
}

/* Runs the program once on the first `len` bytes of `p`: its verdict, or -errno when the kernel
 * refuses the run. The program only reads: the frame must come back unchanged. */
static int run_len(const struct pkt *p, size_t len) {
        static uint8_t out[PKT_MAX + 256];
        LIBBPF_OPTS(bpf_test_run_opts, o,
                    .data_in = p->data,
                    .data_size_in = (uint32_t) len,
                    .data_out = out,
                    .data_size_out = sizeof(out),
                    .repeat = 1);
        int r;

        r = bpf_prog_test_run_opts(bpf_program__fd(skel->progs.xdp_guard), &o);
        if (r < 0)
                return r;
        cr_assert_eq(o.data_size_out, len, "the frame came back %u bytes long, not %zu",
                     o.data_size_out, len);
        cr_assert(memcmp(out, p->data, len) == 0, "the program modified the frame");
        return (int) o.retval;
}

static void run(const struct pkt *p) {
        int r = run_len(p, p->len);

        cr_assert_eq(r, XDP_PASS_CODE, "verdict %d, expected XDP_PASS", r);
}

/* ---- counters ---- */

static void stats_read(struct ps_stats *sum) {
        int n = libbpf_num_possible_cpus();
        struct ps_stats *per;
        struct ps_icmp_stats *icmp;
        uint32_t zero = 0;

        cr_assert_gt(n, 0);
        per = calloc((size_t) n, sizeof(*per));
        cr_assert_not_null(per);
        cr_assert_eq(bpf_map_lookup_elem(bpf_map__fd(skel->maps.stats), &zero, per), 0);
        memset(sum, 0, sizeof(*sum));
        /* struct ps_stats is made of __u64 only: sum it word by word. The stats map holds it
         * up to icmp, and icmp_stats holds icmp. */
        for (int c = 0; c < n; c++)
                for (size_t w = 0; w < PS_STATS_MAP_SIZE / 8; w++)
                        ((uint64_t *) sum)[w] +=
                                ((uint64_t *) ((uint8_t *) per + c * PS_STATS_MAP_SIZE))[w];
        free(per);
        icmp = calloc((size_t) n, sizeof(*icmp));
        cr_assert_not_null(icmp);
        cr_assert_eq(bpf_map_lookup_elem(bpf_map__fd(skel->maps.icmp_stats), &zero, icmp), 0);
        for (int c = 0; c < n; c++)
                for (size_t w = 0; w < sizeof(*icmp) / 8; w++)
                        ((uint64_t *) &sum->icmp)[w] += ((uint64_t *) &icmp[c])[w];
        free(icmp);
}

static const struct {
        const char *name;
        size_t offset;
} stat_fields[] = {
#define F(x) { #x, offsetof(struct ps_stats, x) }
        F(packets), F(bytes), F(passed), F(dropped), F(malformed), F(fragments), F(vlan),
        F(ipv4), F(ipv6), F(non_ip), F(icmp_errors), F(flow_update_fail), F(dropped_filter),
        F(drop_events_lost), F(tiny_fragments), F(long_chains), F(deep_vlan),
        F(fragments_followed), F(fragments_orphan), F(dropped_tiny_fragments),
        F(dropped_long_chains), F(dropped_deep_vlan),
#undef F
};

static const char *const bucket_names[_PS_PROTO_MAX] = { "tcp", "udp", "icmp", "icmpv6", "other" };

static void stats_expect(const struct ps_stats *exp) {
        struct ps_stats got;

        stats_read(&got);
        for (size_t i = 0; i < sizeof(stat_fields) / sizeof(stat_fields[0]); i++) {
                uint64_t g = *(uint64_t *) ((uint8_t *) &got + stat_fields[i].offset);
                uint64_t e = *(uint64_t *) ((uint8_t *) exp + stat_fields[i].offset);

                cr_assert_eq(g, e, "stats.%s is %llu, expected %llu", stat_fields[i].name,
                             (unsigned long long) g, (unsigned long long) e);
        }
        for (int b = 0; b < _PS_PROTO_MAX; b++) {
                cr_assert_eq(got.proto_packets[b], exp->proto_packets[b],
                             "stats.proto_packets[%s] is %llu, expected %llu", bucket_names[b],
                             (unsigned long long) got.proto_packets[b],
                             (unsigned long long) exp->proto_packets[b]);
                cr_assert_eq(got.proto_bytes[b], exp->proto_bytes[b],
                             "stats.proto_bytes[%s] is %llu, expected %llu", bucket_names[b],
                             (unsigned long long) got.proto_bytes[b],
                             (unsigned long long) exp->proto_bytes[b]);
        }
        for (int t = 0; t < PS_ICMP_TYPES; t++) {
                cr_assert_eq(got.icmp.icmp_type[t], exp->icmp.icmp_type[t],
                             "stats.icmp.icmp_type[%d] is %llu, expected %llu", t,
                             (unsigned long long) got.icmp.icmp_type[t],
                             (unsigned long long) exp->icmp.icmp_type[t]);
                cr_assert_eq(got.icmp.icmpv6_type[t], exp->icmp.icmpv6_type[t],
                             "stats.icmp.icmpv6_type[%d] is %llu, expected %llu", t,
                             (unsigned long long) got.icmp.icmpv6_type[t],
                             (unsigned long long) exp->icmp.icmpv6_type[t]);
        }
}

/* A frame the program saw and passed, in protocol bucket `bucket`. */
static void exp_frame(struct ps_stats *e, int bucket, size_t len) {
        e->packets++;
        e->bytes += len;
        e->passed++;
        e->proto_packets[bucket]++;
        e->proto_bytes[bucket] += len;
}

/* ---- tables ---- */

static void addr_words(int family, const char *text, uint32_t out[4]) {
        memset(out, 0, 16);
        cr_assert_eq(inet_pton(family == PS_FAMILY_IPV4 ? AF_INET : AF_INET6, text, out), 1);
}

static struct ps_flow_key flow_key(int family, uint8_t proto, const char *src, uint16_t sport,
                                   const char *dst, uint16_t dport) {
        struct ps_flow_key k;

        memset(&k, 0, sizeof(k));
        k.family = (uint8_t) family;
        k.proto = proto;
        k.sport = sport;
        k.dport = dport;
        addr_words(family, src, k.src);
        addr_words(family, dst, k.dst);
        return k;
}

static struct ps_flow_value flow_get(const struct ps_flow_key *k) {
        struct ps_flow_value v;
        char s[INET6_ADDRSTRLEN], d[INET6_ADDRSTRLEN];
        int af = k->family == PS_FAMILY_IPV4 ? AF_INET : AF_INET6;

        memset(&v, 0, sizeof(v));
        inet_ntop(af, k->src, s, sizeof(s));
        inet_ntop(af, k->dst, d, sizeof(d));
        cr_assert_eq(bpf_map_lookup_elem(bpf_map__fd(skel->maps.flows), k, &v), 0,
                     "no flow entry proto %u %s:%u -> %s:%u", k->proto, s, k->sport, d, k->dport);
        return v;
}

static struct ps_flow_value flow_at(int family, uint8_t proto, const char *src, uint16_t sport,
                                    const char *dst, uint16_t dport) {
        struct ps_flow_key k = flow_key(family, proto, src, sport, dst, dport);

        return flow_get(&k);
}

static struct ps_icmp_key icmp_key(int family, uint8_t type, uint8_t code, const char *src,
                                   const char *dst) {
        struct ps_icmp_key k;

        memset(&k, 0, sizeof(k));
        k.family = (uint8_t) family;
        k.type = type;
        k.code = code;
        addr_words(family, src, k.src);
        addr_words(family, dst, k.dst);
        return k;
}

/* An IPv4 message's entry is in icmp4_flows under the 12-byte key, and only there; an ICMPv6
 * message's in icmp_flows. */
static struct ps_icmp_value icmp_get(const struct ps_icmp_key *k) {
        struct ps_icmp_value v;
        int fd = bpf_map__fd(skel->maps.icmp_flows), fd4 = bpf_map__fd(skel->maps.icmp4_flows);

        memset(&v, 0, sizeof(v));
        if (k->family == PS_FAMILY_IPV4) {
                struct ps_icmp4_key k4 = { .type = k->type, .code = k->code, .src = k->src[0],
                                           .dst = k->dst[0] };

                cr_assert_eq(bpf_map_lookup_elem(fd4, &k4, &v), 0,
                             "no ICMP entry type %u code %u", k->type, k->code);
                cr_assert_neq(bpf_map_lookup_elem(fd, k, &(struct ps_icmp_value) {}), 0,
                              "an ICMP (IPv4) message in the ICMPv6 table");
                return v;
        }
        cr_assert_eq(bpf_map_lookup_elem(fd, k, &v), 0,
                     "no ICMPv6 entry type %u code %u", k->type, k->code);
        return v;
}

static struct ps_icmp_value icmp_at(int family, uint8_t type, uint8_t code, const char *src,
                                    const char *dst) {
        struct ps_icmp_key k = icmp_key(family, type, code, src, dst);

        return icmp_get(&k);
}

static unsigned map_count(struct bpf_map *map) {
        uint8_t key[64], next[64];
        unsigned n = 0;
        int fd = bpf_map__fd(map);

        cr_assert_leq(bpf_map__key_size(map), sizeof(key));
        if (bpf_map_get_next_key(fd, NULL, next) < 0)
                return 0;
        do {
                n++;
                memcpy(key, next, sizeof(key));
        } while (bpf_map_get_next_key(fd, key, next) == 0);
        return n;
}

static void map_clear(struct bpf_map *map) {
        uint8_t key[64];
        int fd = bpf_map__fd(map);

        while (bpf_map_get_next_key(fd, NULL, key) == 0)
                cr_assert_eq(bpf_map_delete_elem(fd, key), 0);
}

static void expect_tables(unsigned flows, unsigned icmp) {
        unsigned f = map_count(skel->maps.flows),
                 i = map_count(skel->maps.icmp_flows) + map_count(skel->maps.icmp4_flows);

        cr_assert_eq(f, flows, "%u flow entries, expected %u", f, flows);
        cr_assert_eq(i, icmp, "%u ICMP entries, expected %u", i, icmp);
}

/* ---- frames ---- */

static const uint16_t tag_q[] = { 0x8100 };
static const uint16_t tag_ad[] = { 0x88a8 };
static const uint16_t tags_qinq[] = { 0x88a8, 0x8100 };
static const uint16_t tags_three[] = { 0x88a8, 0x8100, 0x8100 };
static const uint16_t tags_eight[] = { 0x88a8, 0x88a8, 0x8100, 0x8100, 0x8100, 0x8100, 0x8100,
                                       0x8100 };

static void tcp4(struct pkt *p, const char *src, const char *dst, const struct ip4_opts *ip,
                 const struct tcp_opts *t) {
        pkt_init(p);
        pkt_eth(p, 0x0800, 0, NULL);
        pkt_ipv4(p, src, dst, IPPROTO_TCP, ip);
        pkt_tcp(p, t);
        pkt_finish(p, 0);
}

static void udp4(struct pkt *p, const char *src, uint16_t sport, const char *dst, uint16_t dport,
                 const struct ip4_opts *ip, size_t payload) {
        pkt_init(p);
        pkt_eth(p, 0x0800, 0, NULL);
        pkt_ipv4(p, src, dst, IPPROTO_UDP, ip);
        pkt_udp(p, sport, dport, payload, 0);
        pkt_finish(p, 0);
}

static void udp6(struct pkt *p, uint16_t sport, uint16_t dport, size_t payload) {
        pkt_init(p);
        pkt_eth(p, 0x86dd, 0, NULL);
        pkt_ipv6(p, REMOTE6, LOCAL6, IPPROTO_UDP, 64, 0);
        pkt_udp(p, sport, dport, payload, 0);
        pkt_finish(p, 0);
}

/* An ICMPv4 error from REMOTE4 to LOCAL4 quoting a datagram LOCAL4 sent to OTHER4. */
static void icmp4_error(struct pkt *p, uint8_t type, uint8_t code, uint8_t inner_proto,
                        uint8_t inner_options, size_t quote_l4) {
        struct ip4_opts inner = { .ttl = 1, .id = 99, .option_bytes = inner_options,
                                  .tot_len = 1000 };

        pkt_init(p);
        pkt_eth(p, 0x0800, 0, NULL);
        pkt_ipv4(p, REMOTE4, LOCAL4, IPPROTO_ICMP, &(struct ip4_opts) { .ttl = 250 });
        pkt_icmp(p, type, code, 0);
        pkt_quote_begin(p);
        pkt_ipv4(p, LOCAL4, OTHER4, inner_proto, &inner);
        if (inner_proto == IPPROTO_UDP && quote_l4 >= 8)
                pkt_udp(p, 40001, 33434, quote_l4 - 8, 980);
        else if (inner_proto == IPPROTO_TCP && quote_l4 >= 20)
                pkt_tcp(p, &(struct tcp_opts) { .sport = 40002, .dport = 443, .seq = 7,
                                                .flags = TCP_SYN, .payload = quote_l4 - 20 });
        else {
                /* A quote cut inside the transport header: only its first bytes. */
                static const uint8_t ports[8] = { 0x9c, 0x42, 0x01, 0xbb, 0, 0, 0, 7 };

                pkt_bytes(p, ports, quote_l4 < sizeof(ports) ? quote_l4 : sizeof(ports));
        }
        pkt_finish(p, 0);
}

/* An ICMPv6 error from REMOTE6 to LOCAL6 quoting a UDP datagram LOCAL6 sent to OTHER6,
 * optionally behind a hop-by-hop header. */
static void icmp6_error(struct pkt *p, uint8_t type, uint8_t code, bool inner_hbh) {
        pkt_init(p);
        pkt_eth(p, 0x86dd, 0, NULL);
        pkt_ipv6(p, REMOTE6, LOCAL6, IPPROTO_ICMPV6, 255, 0);
        pkt_icmp(p, type, code, type == 2 ? 1280 : 0);
        pkt_quote_begin(p);
        if (inner_hbh) {
                pkt_ipv6(p, LOCAL6, OTHER6, 0, 1, 48);
                pkt_ipv6_ext(p, 0, IPPROTO_UDP, 8);
        } else
                pkt_ipv6(p, LOCAL6, OTHER6, IPPROTO_UDP, 1, 40);
        pkt_udp(p, 40003, 33435, 32, 0);
        pkt_finish(p, 0);
}

/* The program reads the coarse clock once per jiffy and CPU, and a read that races the tick
 * keeps the tick before's time for that jiffy (coarse_now() in guard.bpf.c): a stamp may lie
 * one tick (at most 10 ms, HZ >= 100) before a coarse reading taken earlier. */
#define ONE_TICK_NS 10000000ull

static void check_times(uint64_t first, uint64_t last, uint64_t t0, uint64_t t1) {
        cr_assert(first + ONE_TICK_NS >= t0 && first <= t1,
                  "first_seen %llu outside [%llu - one tick, %llu]",
                  (unsigned long long) first, (unsigned long long) t0,
                  (unsigned long long) t1);
        cr_assert(last >= first && last <= t1, "last_seen %llu outside [%llu, %llu]",
                  (unsigned long long) last, (unsigned long long) first,
                  (unsigned long long) t1);
}

/* ---- tests ---- */

Test(guard, short_frames) {
        struct pkt p;
        struct ps_stats e = {};

        /* This kernel refuses an XDP test run on fewer bytes than an Ethernet header: the
         * program never sees such a frame. */
        pkt_init(&p);
        pkt_zeros(&p, 64);
        for (size_t len = 0; len < ETH_HEADER; len++)
                cr_assert_eq(run_len(&p, len), -EINVAL, "a %zu-byte run was not refused", len);
        stats_expect(&e);

        /* 14 bytes of EtherType 0: not IP. */
        run_len(&p, ETH_HEADER);
        exp_frame(&e, PS_PROTO_OTHER, ETH_HEADER);
        e.non_ip = 1;
        stats_expect(&e);
        expect_tables(0, 0);
}

Test(guard, tcp4_flow) {
        struct ps_flow_key k = flow_key(PS_FAMILY_IPV4, IPPROTO_TCP, REMOTE4, 40000, LOCAL4, 80);
        struct ps_flow_value v;
        struct ps_stats e = {};
        struct pkt p;
        uint64_t t0, t1, bytes = 0, first;
        struct tcp_opts t = { .sport = 40000, .dport = 80, .window = 64240 };
        struct ip4_opts ip = { .ttl = 61, .id = 0x1234 };

        /* SYN: the flow is created, the retransmission mark starts after the SYN. */
        t.seq = 1000;
        t.flags = TCP_SYN;
        tcp4(&p, REMOTE4, LOCAL4, &ip, &t);
        cr_assert_eq(p.len, 54);
        t0 = coarse_now();
        run(&p);
        t1 = coarse_now();
        bytes += p.len;
        exp_frame(&e, PS_PROTO_TCP, p.len);
        e.ipv4++;
        v = flow_get(&k);
        cr_assert_eq(v.packets, 1);
        cr_assert_eq(v.bytes, 54);
        cr_assert_eq(v.seq, 1000);
        cr_assert_eq(v.ack, 0);
        cr_assert_eq(v.window, 64240);
        cr_assert_eq(v.ip_id, 0x1234);
        cr_assert_eq(v.ttl, 61);
        cr_assert_eq(v.tcp_flags, TCP_SYN);
        cr_assert_eq(v.last_flags, TCP_SYN);
        cr_assert_eq(v.state, PS_STATE_SYN);
        cr_assert_eq(v.max_seq_end, 1001);
        cr_assert_eq(v.retransmits, 0);
        cr_assert_eq(v.first_seen, v.last_seen);
        check_times(v.first_seen, v.last_seen, t0, t1);
        first = v.first_seen;
        stats_expect(&e);

        /* 100 bytes of data: established, flags accumulate, the mark moves to 1101. */
        t.seq = 1001;
        t.ack = 5001;
        t.window = 500;
        t.flags = TCP_ACK | TCP_PSH;
        t.payload = 100;
        ip.id = 0x1235;
        ip.ttl = 60;
        tcp4(&p, REMOTE4, LOCAL4, &ip, &t);
        run(&p);
        t1 = coarse_now();
        bytes += p.len;
        exp_frame(&e, PS_PROTO_TCP, p.len);
        e.ipv4++;
        v = flow_get(&k);
        cr_assert_eq(v.packets, 2);
        cr_assert_eq(v.bytes, bytes);
        cr_assert_eq(v.seq, 1001);
        cr_assert_eq(v.ack, 5001);
        cr_assert_eq(v.window, 500);
        cr_assert_eq(v.ip_id, 0x1235);
        cr_assert_eq(v.ttl, 60);
        cr_assert_eq(v.tcp_flags, TCP_SYN | TCP_ACK | TCP_PSH);
        cr_assert_eq(v.last_flags, TCP_ACK | TCP_PSH);
        cr_assert_eq(v.state, PS_STATE_ESTABLISHED);
        cr_assert_eq(v.max_seq_end, 1101);
        cr_assert_eq(v.retransmits, 0);
        cr_assert_eq(v.first_seen, first);
        check_times(v.first_seen, v.last_seen, t0, t1);

        /* The same segment again, then a tail of it: two retransmissions. */
        run(&p);
        bytes += p.len;
        exp_frame(&e, PS_PROTO_TCP, p.len);
        e.ipv4++;
        t.seq = 1051;
        t.payload = 50;
        tcp4(&p, REMOTE4, LOCAL4, &ip, &t);
        run(&p);
        bytes += p.len;
        exp_frame(&e, PS_PROTO_TCP, p.len);
        e.ipv4++;
        v = flow_get(&k);
        cr_assert_eq(v.retransmits, 2);
        cr_assert_eq(v.max_seq_end, 1101);
        cr_assert_eq(v.seq, 1051);

        /* A pure ACK at the mark neither counts nor moves it; new data moves it. */
        t.seq = 1101;
        t.payload = 0;
        t.flags = TCP_ACK;
        tcp4(&p, REMOTE4, LOCAL4, &ip, &t);
        run(&p);
        bytes += p.len;
        exp_frame(&e, PS_PROTO_TCP, p.len);
        e.ipv4++;
        t.payload = 10;
        tcp4(&p, REMOTE4, LOCAL4, &ip, &t);
        run(&p);
        bytes += p.len;
        exp_frame(&e, PS_PROTO_TCP, p.len);
        e.ipv4++;
        v = flow_get(&k);
        cr_assert_eq(v.retransmits, 2);
        cr_assert_eq(v.max_seq_end, 1111);
        cr_assert_eq(v.state, PS_STATE_ESTABLISHED);

        /* FIN occupies one sequence number; its repetition is a retransmission. */
        t.seq = 1111;
        t.payload = 0;
        t.flags = TCP_FIN | TCP_ACK;
        tcp4(&p, REMOTE4, LOCAL4, &ip, &t);
        run(&p);
        bytes += p.len;
        exp_frame(&e, PS_PROTO_TCP, p.len);
        e.ipv4++;
        v = flow_get(&k);
        cr_assert_eq(v.state, PS_STATE_FIN);
        cr_assert_eq(v.max_seq_end, 1112);
        cr_assert_eq(v.retransmits, 2);
        run(&p);
        bytes += p.len;
        exp_frame(&e, PS_PROTO_TCP, p.len);
        e.ipv4++;
        v = flow_get(&k);
        cr_assert_eq(v.retransmits, 3);

        /* After FIN an ACK keeps FIN; RST replaces it; nothing replaces RST. */
        t.seq = 1112;
        t.flags = TCP_ACK;
        tcp4(&p, REMOTE4, LOCAL4, &ip, &t);
        run(&p);
        bytes += p.len;
        exp_frame(&e, PS_PROTO_TCP, p.len);
        e.ipv4++;
        cr_assert_eq(flow_get(&k).state, PS_STATE_FIN);
        t.flags = TCP_RST;
        tcp4(&p, REMOTE4, LOCAL4, &ip, &t);
        run(&p);
        bytes += p.len;
        exp_frame(&e, PS_PROTO_TCP, p.len);
        e.ipv4++;
        cr_assert_eq(flow_get(&k).state, PS_STATE_RST);
        t.flags = TCP_SYN;
        t.seq = 1112;
        tcp4(&p, REMOTE4, LOCAL4, &ip, &t);
        run(&p);
        bytes += p.len;
        exp_frame(&e, PS_PROTO_TCP, p.len);
        e.ipv4++;
        v = flow_get(&k);
        cr_assert_eq(v.state, PS_STATE_RST);
        cr_assert_eq(v.max_seq_end, 1113);
        cr_assert_eq(v.tcp_flags, TCP_SYN | TCP_ACK | TCP_PSH | TCP_FIN | TCP_RST);
        cr_assert_eq(v.last_flags, TCP_SYN);
        cr_assert_eq(v.packets, 11);
        cr_assert_eq(v.bytes, bytes);
        cr_assert_eq(v.retransmits, 3);

        /* One direction, one entry: the reply direction was never seen. */
        expect_tables(1, 0);
        stats_expect(&e);
}

Test(guard, tcp4_states) {
        static const struct {
                uint8_t flags[3];
                size_t n;
                uint8_t state;
        } cases[] = {
                { { TCP_SYN | TCP_ACK }, 1, PS_STATE_SYN },
                { { TCP_ACK }, 1, PS_STATE_ESTABLISHED },
                { { TCP_SYN, TCP_ACK, TCP_SYN }, 3, PS_STATE_SYN },
                { { TCP_FIN | TCP_ACK, TCP_ACK }, 2, PS_STATE_FIN },
                { { TCP_FIN, TCP_RST }, 2, PS_STATE_RST },
                { { TCP_RST, TCP_FIN }, 2, PS_STATE_RST },
                { { TCP_RST, TCP_ACK, TCP_SYN }, 3, PS_STATE_RST },
                { { TCP_RST | TCP_ACK }, 1, PS_STATE_RST },
                { { TCP_SYN | TCP_FIN }, 1, PS_STATE_FIN },
                { { 0 }, 1, PS_STATE_NONE },
                { { TCP_PSH, 0 }, 2, PS_STATE_NONE },
        };
        struct ps_stats e = {};

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                uint16_t sport = (uint16_t) (20000 + i);
                struct ps_flow_key k = flow_key(PS_FAMILY_IPV4, IPPROTO_TCP, REMOTE4, sport,
                                                LOCAL4, 22);
                uint8_t all = 0;

                for (size_t j = 0; j < cases[i].n; j++) {
                        struct pkt p;

                        tcp4(&p, REMOTE4, LOCAL4, NULL,
                             &(struct tcp_opts) { .sport = sport, .dport = 22,
                                                  .seq = (uint32_t) (100 * j),
                                                  .flags = cases[i].flags[j] });
                        run(&p);
                        exp_frame(&e, PS_PROTO_TCP, p.len);
                        e.ipv4++;
                        all |= cases[i].flags[j];
                }
                cr_assert_eq(flow_get(&k).state, cases[i].state, "case %zu: state %u, expected %u",
                             i, flow_get(&k).state, cases[i].state);
                cr_assert_eq(flow_get(&k).tcp_flags, all, "case %zu", i);
                cr_assert_eq(flow_get(&k).last_flags, cases[i].flags[cases[i].n - 1], "case %zu",
                             i);
        }
        expect_tables(sizeof(cases) / sizeof(cases[0]), 0);
        stats_expect(&e);
}

Test(guard, tcp4_retransmit_wraps) {
        struct ps_flow_key k = flow_key(PS_FAMILY_IPV4, IPPROTO_TCP, REMOTE4, 40000, LOCAL4, 80);
        struct tcp_opts t = { .sport = 40000, .dport = 80, .flags = TCP_ACK };
        struct pkt p;
        struct ps_flow_value v;

        /* 512 bytes from 0xffffff00: the segment ends past the wrap, at 0x100. */
        t.seq = 0xffffff00u;
        t.payload = 0x200;
        tcp4(&p, REMOTE4, LOCAL4, NULL, &t);
        run(&p);
        cr_assert_eq(flow_get(&k).max_seq_end, 0x100);

        /* 0x100 + 16 is ahead of 0x100 in serial arithmetic, though smaller than 0xffffff00. */
        t.seq = 0x100;
        t.payload = 16;
        tcp4(&p, REMOTE4, LOCAL4, NULL, &t);
        run(&p);
        v = flow_get(&k);
        cr_assert_eq(v.max_seq_end, 0x110);
        cr_assert_eq(v.retransmits, 0);

        /* The segment before the wrap, again: behind the mark. */
        t.seq = 0xffffff00u;
        t.payload = 0x200;
        tcp4(&p, REMOTE4, LOCAL4, NULL, &t);
        run(&p);
        v = flow_get(&k);
        cr_assert_eq(v.max_seq_end, 0x110);
        cr_assert_eq(v.retransmits, 1);
        cr_assert_eq(v.packets, 3);
}

Test(guard, tcp4_padding_is_not_payload) {
        struct ps_flow_key k = flow_key(PS_FAMILY_IPV4, IPPROTO_TCP, REMOTE4, 40000, LOCAL4, 80);
        struct ps_flow_value v;
        struct pkt p;
        struct ps_stats e = {};

        /* Minimum-size Ethernet frames carry 6 bytes of padding after a 54-byte pure ACK; the IP
         * total length says they are not TCP payload, so repeated ACKs are no retransmission. */
        for (int i = 0; i < 3; i++) {
                pkt_init(&p);
                pkt_eth(&p, 0x0800, 0, NULL);
                pkt_ipv4(&p, REMOTE4, LOCAL4, IPPROTO_TCP, NULL);
                pkt_tcp(&p, &(struct tcp_opts) { .sport = 40000, .dport = 80, .seq = 101,
                                                 .ack = 1, .flags = TCP_ACK });
                pkt_finish(&p, 60);
                cr_assert_eq(p.len, 60);
                run(&p);
                exp_frame(&e, PS_PROTO_TCP, 60);
                e.ipv4++;
        }
        v = flow_get(&k);
        cr_assert_eq(v.retransmits, 0);
        cr_assert_eq(v.max_seq_end, 101);
        cr_assert_eq(v.bytes, 180);
        stats_expect(&e);
}

Test(guard, tcp4_malformed) {
        struct ps_stats e = {};
        struct pkt p;

        /* Data offset 4: shorter than the fixed header. */
        tcp4(&p, REMOTE4, LOCAL4, NULL, &(struct tcp_opts) { .sport = 1, .dport = 2 });
        p.data[14 + 20 + 12] = 4 << 4;
        run(&p);
        exp_frame(&e, PS_PROTO_TCP, p.len);
        e.ipv4++;
        e.malformed++;

        /* Data offset 15 (60 bytes) in a 50-byte datagram. */
        tcp4(&p, REMOTE4, LOCAL4, NULL,
             &(struct tcp_opts) { .sport = 1, .dport = 2, .payload = 10 });
        p.data[14 + 20 + 12] = 15 << 4;
        run(&p);
        exp_frame(&e, PS_PROTO_TCP, p.len);
        e.ipv4++;
        e.malformed++;

        /* The IP total length ends the datagram inside the TCP header (the frame goes on). */
        tcp4(&p, REMOTE4, LOCAL4, NULL, &(struct tcp_opts) { .sport = 1, .dport = 2 });
        p.data[14 + 3] = 20 + 19;
        run(&p);
        exp_frame(&e, PS_PROTO_TCP, p.len);
        e.ipv4++;
        e.malformed++;

        /* Options within the datagram are fine: doff 8 with 12 bytes of options. */
        tcp4(&p, REMOTE4, LOCAL4, NULL,
             &(struct tcp_opts) { .sport = 1, .dport = 2, .doff = 8, .flags = TCP_SYN });
        run(&p);
        exp_frame(&e, PS_PROTO_TCP, p.len);
        e.ipv4++;
        cr_assert_eq(flow_at(PS_FAMILY_IPV4, IPPROTO_TCP, REMOTE4, 1, LOCAL4, 2).max_seq_end,
                     1);

        expect_tables(1, 0);
        stats_expect(&e);
}

Test(guard, udp4_flow) {
        struct ps_flow_key k = flow_key(PS_FAMILY_IPV4, IPPROTO_UDP, REMOTE4, 5353, LOCAL4, 53);
        struct ps_flow_key r = flow_key(PS_FAMILY_IPV4, IPPROTO_UDP, LOCAL4, 53, REMOTE4, 5353);
        struct ps_flow_value v;
        struct ps_stats e = {};
        struct pkt p;
        uint64_t t0, t1;

        udp4(&p, REMOTE4, 5353, LOCAL4, 53, &(struct ip4_opts) { .ttl = 50, .id = 7 }, 32);
        cr_assert_eq(p.len, 74);
        t0 = coarse_now();
        run(&p);
        run(&p);
        t1 = coarse_now();
        exp_frame(&e, PS_PROTO_UDP, 74);
        exp_frame(&e, PS_PROTO_UDP, 74);
        e.ipv4 += 2;

        /* The other direction is another entry, keyed as it arrived. */
        udp4(&p, LOCAL4, 53, REMOTE4, 5353, &(struct ip4_opts) { .ttl = 64, .id = 9 }, 100);
        run(&p);
        exp_frame(&e, PS_PROTO_UDP, p.len);
        e.ipv4++;

        v = flow_get(&k);
        cr_assert_eq(v.packets, 2);
        cr_assert_eq(v.bytes, 148);
        cr_assert_eq(v.ttl, 50);
        cr_assert_eq(v.ip_id, 7);
        cr_assert_eq(v.seq, 0);
        cr_assert_eq(v.ack, 0);
        cr_assert_eq(v.window, 0);
        cr_assert_eq(v.tcp_flags, 0);
        cr_assert_eq(v.last_flags, 0);
        cr_assert_eq(v.state, PS_STATE_NONE);
        cr_assert_eq(v.retransmits, 0);
        cr_assert_eq(v.max_seq_end, 0);
        check_times(v.first_seen, v.last_seen, t0, t1);
        v = flow_get(&r);
        cr_assert_eq(v.packets, 1);
        cr_assert_eq(v.bytes, 142);
        cr_assert_eq(v.ip_id, 9);
        expect_tables(2, 0);
        stats_expect(&e);
}

/* The clock read once per jiffy still moves: a packet 30 ms after the first (several ticks at
 * any HZ) is stamped later, within a tick of the coarse clock; one right after it in the same
 * stamp or a later one. */
Test(guard, clock_moves_with_the_tick) {
        struct ps_flow_key k = flow_key(PS_FAMILY_IPV4, IPPROTO_UDP, REMOTE4, 5354, LOCAL4, 53);
        struct ps_flow_value v;
        struct pkt p;
        uint64_t t0, t1, first;

        udp4(&p, REMOTE4, 5354, LOCAL4, 53, NULL, 32);
        run(&p);
        first = flow_get(&k).first_seen;
        usleep(30000);
        t0 = coarse_now();
        run(&p);
        t1 = coarse_now();
        v = flow_get(&k);
        cr_assert_eq(v.first_seen, first);
        cr_assert_geq(t0, first + 30000000ull - ONE_TICK_NS, "the coarse clock did not move");
        cr_assert(v.last_seen + ONE_TICK_NS >= t0 && v.last_seen <= t1,
                  "last_seen %llu outside [%llu - one tick, %llu]: the stamp did not move",
                  (unsigned long long) v.last_seen, (unsigned long long) t0,
                  (unsigned long long) t1);
        cr_assert_gt(v.last_seen, first);
        run(&p);
        cr_assert_geq(flow_get(&k).last_seen, v.last_seen);
}

Test(guard, udp_malformed) {
        struct ps_stats e = {};
        struct pkt p;

        /* UDP length 7: shorter than its own header. */
        udp4(&p, REMOTE4, 1, LOCAL4, 2, NULL, 10);
        p.data[14 + 20 + 4] = 0;
        p.data[14 + 20 + 5] = 7;
        run(&p);
        exp_frame(&e, PS_PROTO_UDP, p.len);
        e.ipv4++;
        e.malformed++;

        /* UDP length beyond the datagram. */
        udp4(&p, REMOTE4, 1, LOCAL4, 2, NULL, 10);
        p.data[14 + 20 + 5] = 19;
        run(&p);
        exp_frame(&e, PS_PROTO_UDP, p.len);
        e.ipv4++;
        e.malformed++;

        /* The datagram ends 4 bytes into the UDP header. */
        udp4(&p, REMOTE4, 1, LOCAL4, 2, NULL, 10);
        p.data[14 + 3] = 24;
        run(&p);
        exp_frame(&e, PS_PROTO_UDP, p.len);
        e.ipv4++;
        e.malformed++;

        /* IPv6: payload length 4. */
        udp6(&p, 1, 2, 10);
        p.data[14 + 5] = 4;
        run(&p);
        exp_frame(&e, PS_PROTO_UDP, p.len);
        e.ipv6++;
        e.malformed++;

        expect_tables(0, 0);
        stats_expect(&e);
}

Test(guard, ipv4_options) {
        struct ps_stats e = {};
        struct pkt p;
        struct ps_flow_value v;

        /* 12 and 40 bytes of options (IHL 8 and 15): the transport header follows them. */
        tcp4(&p, REMOTE4, LOCAL4, &(struct ip4_opts) { .ttl = 9, .id = 3, .option_bytes = 12 },
             &(struct tcp_opts) { .sport = 1111, .dport = 2222, .seq = 77, .window = 9,
                                  .flags = TCP_SYN });
        run(&p);
        exp_frame(&e, PS_PROTO_TCP, p.len);
        e.ipv4++;
        v = flow_at(PS_FAMILY_IPV4, IPPROTO_TCP, REMOTE4, 1111, LOCAL4, 2222);
        cr_assert_eq(v.seq, 77);
        cr_assert_eq(v.window, 9);
        cr_assert_eq(v.ttl, 9);
        cr_assert_eq(v.ip_id, 3);
        cr_assert_eq(v.tcp_flags, TCP_SYN);

        udp4(&p, REMOTE4, 3333, LOCAL4, 4444, &(struct ip4_opts) { .ttl = 1, .option_bytes = 40 },
             5);
        cr_assert_eq(p.data[14] & 0xf, 15);
        run(&p);
        exp_frame(&e, PS_PROTO_UDP, p.len);
        e.ipv4++;
        v = flow_at(PS_FAMILY_IPV4, IPPROTO_UDP, REMOTE4, 3333, LOCAL4, 4444);
        cr_assert_eq(v.bytes, 14 + 60 + 8 + 5);

        expect_tables(2, 0);
        stats_expect(&e);
}

Test(guard, ipv4_malformed_header) {
        struct {
                struct ip4_opts ip;
                int tot_len_delta; /* added to the computed total length */
        } cases[] = {
                { { .ttl = 1, .ihl = 4 }, 0 },                    /* IHL below 5 */
                { { .ttl = 1, .version = 5 }, 0 },                /* not version 4 */
                { { .ttl = 1, .tot_len = 19 }, 0 },               /* total length < header */
                { { .ttl = 1, .option_bytes = 8, .tot_len = 24 }, 0 }, /* < header with options */
                { { .ttl = 1 }, 1 },                              /* beyond the frame */
                { { .ttl = 1, .ihl = 15 }, 0 },                   /* IHL 15 in a 28-byte datagram */
        };
        struct ps_stats e = {};

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                struct pkt p;

                udp4(&p, REMOTE4, 1, LOCAL4, 2, &cases[i].ip, 0);
                if (cases[i].tot_len_delta)
                        p.data[14 + 3] = (uint8_t) (p.data[14 + 3] + cases[i].tot_len_delta);
                run(&p);
                /* Nothing of the IP header is trusted: the frame stays in bucket "other". */
                exp_frame(&e, PS_PROTO_OTHER, p.len);
                e.ipv4++;
                e.malformed++;
                stats_expect(&e);
        }
        expect_tables(0, 0);
}

Test(guard, ipv4_fragments) {
        struct ps_flow_key k = flow_key(PS_FAMILY_IPV4, IPPROTO_UDP, REMOTE4, 7000, LOCAL4, 7001);
        struct ps_stats e = {};
        struct pkt p;

        /* First fragment: offset 0, MF; the UDP length covers the whole datagram (1008), more
         * than this fragment holds, and that is no error for a fragment. */
        pkt_init(&p);
        pkt_eth(&p, 0x0800, 0, NULL);
        pkt_ipv4(&p, REMOTE4, LOCAL4, IPPROTO_UDP, &(struct ip4_opts) { .ttl = 5, .id = 4242,
                                                                        .frag_off = IP4_MF });
        pkt_udp(&p, 7000, 7001, 96, 1008);
        pkt_finish(&p, 0);
        run(&p);
        exp_frame(&e, PS_PROTO_UDP, p.len);
        e.ipv4++;
        cr_assert_eq(flow_get(&k).packets, 1);
        cr_assert_eq(flow_get(&k).ip_id, 4242);

        /* Middle and last fragments: counted, no ports, no entry; they follow the first. */
        pkt_init(&p);
        pkt_eth(&p, 0x0800, 0, NULL);
        pkt_ipv4(&p, REMOTE4, LOCAL4, IPPROTO_UDP, &(struct ip4_opts) { .ttl = 5, .id = 4242,
                                                                        .frag_off = IP4_MF | 13 });
        pkt_zeros(&p, 104);
        pkt_finish(&p, 0);
        run(&p);
        exp_frame(&e, PS_PROTO_UDP, p.len);
        e.ipv4++;
        e.fragments++;
        e.fragments_followed++;
        pkt_init(&p);
        pkt_eth(&p, 0x0800, 0, NULL);
        pkt_ipv4(&p, REMOTE4, LOCAL4, IPPROTO_UDP, &(struct ip4_opts) { .ttl = 5, .id = 4242,
                                                                        .frag_off = 26 });
        pkt_zeros(&p, 50);
        pkt_finish(&p, 0);
        run(&p);
        exp_frame(&e, PS_PROTO_UDP, p.len);
        e.ipv4++;
        e.fragments++;
        e.fragments_followed++;

        /* Non-first fragments of TCP and ICMP: their buckets, and nothing read past IP (an
         * ICMP fragment's first bytes are not a type). */
        pkt_init(&p);
        pkt_eth(&p, 0x0800, 0, NULL);
        pkt_ipv4(&p, REMOTE4, LOCAL4, IPPROTO_TCP, &(struct ip4_opts) { .ttl = 5,
                                                                        .frag_off = 100 });
        pkt_zeros(&p, 40);
        pkt_finish(&p, 0);
        run(&p);
        exp_frame(&e, PS_PROTO_TCP, p.len);
        e.ipv4++;
        e.fragments++;
        e.fragments_orphan++;
        pkt_init(&p);
        pkt_eth(&p, 0x0800, 0, NULL);
        pkt_ipv4(&p, REMOTE4, LOCAL4, IPPROTO_ICMP, &(struct ip4_opts) { .ttl = 5,
                                                                         .frag_off = 185 });
        pkt_icmp(&p, 3, 3, 0);
        pkt_finish(&p, 0);
        run(&p);
        exp_frame(&e, PS_PROTO_ICMP, p.len);
        e.ipv4++;
        e.fragments++;
        e.fragments_orphan++;

        cr_assert_eq(flow_get(&k).packets, 1);
        expect_tables(1, 0);
        stats_expect(&e);
}

Test(guard, ipv6_udp_tcp) {
        struct ps_stats e = {};
        struct pkt p;
        struct ps_flow_value v;

        udp6(&p, 5000, 53, 20);
        cr_assert_eq(p.len, 14 + 40 + 8 + 20);
        run(&p);
        exp_frame(&e, PS_PROTO_UDP, p.len);
        e.ipv6++;
        v = flow_at(PS_FAMILY_IPV6, IPPROTO_UDP, REMOTE6, 5000, LOCAL6, 53);
        cr_assert_eq(v.packets, 1);
        cr_assert_eq(v.bytes, 82);
        cr_assert_eq(v.ttl, 64);
        cr_assert_eq(v.ip_id, 0);

        pkt_init(&p);
        pkt_eth(&p, 0x86dd, 0, NULL);
        pkt_ipv6(&p, REMOTE6, LOCAL6, IPPROTO_TCP, 33, 0);
        pkt_tcp(&p, &(struct tcp_opts) { .sport = 50000, .dport = 443, .seq = 0x80000000u,
                                         .ack = 12, .window = 1024,
                                         .flags = TCP_ACK | TCP_PSH, .payload = 30 });
        pkt_finish(&p, 0);
        run(&p);
        exp_frame(&e, PS_PROTO_TCP, p.len);
        e.ipv6++;
        v = flow_at(PS_FAMILY_IPV6, IPPROTO_TCP, REMOTE6, 50000, LOCAL6, 443);
        cr_assert_eq(v.seq, 0x80000000u);
        cr_assert_eq(v.ack, 12);
        cr_assert_eq(v.window, 1024);
        cr_assert_eq(v.ttl, 33);
        cr_assert_eq(v.max_seq_end, 0x80000000u + 30);
        cr_assert_eq(v.state, PS_STATE_ESTABLISHED);

        expect_tables(2, 0);
        stats_expect(&e);
}

Test(guard, ipv6_each_extension_header) {
        static const struct {
                uint8_t type;
                size_t len;
        } ext[] = {
                { 0, 8 }, { 0, 24 }, { 43, 24 }, { 44, 8 }, { 60, 16 }, { 51, 12 }, { 51, 24 },
        };
        struct ps_stats e = {};

        for (size_t i = 0; i < sizeof(ext) / sizeof(ext[0]); i++) {
                uint16_t sport = (uint16_t) (6000 + i);
                struct pkt p;

                pkt_init(&p);
                pkt_eth(&p, 0x86dd, 0, NULL);
                pkt_ipv6(&p, REMOTE6, LOCAL6, ext[i].type, 64, 0);
                if (ext[i].type == 44)
                        pkt_ipv6_frag(&p, IPPROTO_UDP, 0, true); /* first fragment */
                else
                        pkt_ipv6_ext(&p, ext[i].type, IPPROTO_UDP, ext[i].len);
                pkt_udp(&p, sport, 53, 12, ext[i].type == 44 ? 500 : 0);
                pkt_finish(&p, 0);
                run(&p);
                exp_frame(&e, PS_PROTO_UDP, p.len);
                e.ipv6++;
                cr_assert_eq(flow_at(PS_FAMILY_IPV6, IPPROTO_UDP, REMOTE6, sport, LOCAL6, 53).bytes,
                             p.len, "header %u", ext[i].type);
                stats_expect(&e);
        }
        expect_tables(sizeof(ext) / sizeof(ext[0]), 0);
}

static void ipv6_chain(struct pkt *p, const uint8_t *types, size_t n, uint8_t last,
                       uint16_t sport) {
        pkt_init(p);
        pkt_eth(p, 0x86dd, 0, NULL);
        pkt_ipv6(p, REMOTE6, LOCAL6, n ? types[0] : last, 64, 0);
        for (size_t i = 0; i < n; i++) {
                uint8_t next = i + 1 < n ? types[i + 1] : last;

                if (types[i] == 44)
                        pkt_ipv6_frag(p, next, 0, false); /* an atomic fragment */
                else
                        pkt_ipv6_ext(p, types[i], next, types[i] == 51 ? 16 : 8 * (i + 1));
        }
        if (last == IPPROTO_TCP)
                pkt_tcp(p, &(struct tcp_opts) { .sport = sport, .dport = 80, .seq = 5,
                                                .flags = TCP_SYN });
        else
                pkt_udp(p, sport, 53, 4, 0);
        pkt_finish(p, 0);
}

Test(guard, ipv6_extension_chain) {
        static const uint8_t six[] = { 0, 60, 43, 44, 51, 60 };
        static const uint8_t seven[] = { 0, 60, 43, 44, 51, 60, 60 };
        struct ps_stats e = {};
        struct pkt p;
        struct ps_flow_value v;

        /* Six headers, the most the program walks; fragment header (offset 0) included. */
        ipv6_chain(&p, six, 6, IPPROTO_TCP, 8000);
        run(&p);
        exp_frame(&e, PS_PROTO_TCP, p.len);
        e.ipv6++;
        v = flow_at(PS_FAMILY_IPV6, IPPROTO_TCP, REMOTE6, 8000, LOCAL6, 80);
        cr_assert_eq(v.state, PS_STATE_SYN);
        cr_assert_eq(v.max_seq_end, 6);

        /* Seven: walked to the end as well (the walk goes to PS_IPV6_MAX_EXT, 16). */
        ipv6_chain(&p, seven, 7, IPPROTO_UDP, 8001);
        run(&p);
        exp_frame(&e, PS_PROTO_UDP, p.len);
        e.ipv6++;
        flow_at(PS_FAMILY_IPV6, IPPROTO_UDP, REMOTE6, 8001, LOCAL6, 53);

        /* A header longer than the payload: it claims 24 bytes, 20 remain (8 + UDP 12). */
        ipv6_chain(&p, six, 1, IPPROTO_UDP, 8002);
        p.data[14 + 40 + 1] = 2;
        run(&p);
        exp_frame(&e, PS_PROTO_OTHER, p.len);
        e.ipv6++;
        e.malformed++;

        /* The payload length ends the datagram in the middle of the first extension header. */
        ipv6_chain(&p, six, 2, IPPROTO_UDP, 8003);
        p.data[14 + 4] = 0;
        p.data[14 + 5] = 1;
        run(&p);
        exp_frame(&e, PS_PROTO_OTHER, p.len);
        e.ipv6++;
        e.malformed++;

        expect_tables(2, 0);
        stats_expect(&e);
}

Test(guard, ipv6_fragments) {
        struct ps_stats e = {};
        struct pkt p;

        /* Non-first fragments of UDP and TCP: counted in their buckets, no entry. */
        pkt_init(&p);
        pkt_eth(&p, 0x86dd, 0, NULL);
        pkt_ipv6(&p, REMOTE6, LOCAL6, 44, 64, 0);
        pkt_ipv6_frag(&p, IPPROTO_UDP, 100, true);
        pkt_zeros(&p, 64);
        pkt_finish(&p, 0);
        run(&p);
        exp_frame(&e, PS_PROTO_UDP, p.len);
        e.ipv6++;
        e.fragments++;
        e.fragments_orphan++;

        pkt_init(&p);
        pkt_eth(&p, 0x86dd, 0, NULL);
        pkt_ipv6(&p, REMOTE6, LOCAL6, 0, 64, 0);
        pkt_ipv6_ext(&p, 0, 44, 8);
        pkt_ipv6_frag(&p, IPPROTO_TCP, 1, false);
        pkt_zeros(&p, 20);
        pkt_finish(&p, 0);
        run(&p);
        exp_frame(&e, PS_PROTO_TCP, p.len);
        e.ipv6++;
        e.fragments++;
        e.fragments_orphan++;

        /* The first fragment has the ports. */
        pkt_init(&p);
        pkt_eth(&p, 0x86dd, 0, NULL);
        pkt_ipv6(&p, REMOTE6, LOCAL6, 44, 64, 0);
        pkt_ipv6_frag(&p, IPPROTO_UDP, 0, true);
        pkt_udp(&p, 9000, 9001, 200, 1400);
        pkt_finish(&p, 0);
        run(&p);
        exp_frame(&e, PS_PROTO_UDP, p.len);
        e.ipv6++;
        cr_assert_eq(flow_at(PS_FAMILY_IPV6, IPPROTO_UDP, REMOTE6, 9000, LOCAL6, 9001).packets,
                     1);

        expect_tables(1, 0);
        stats_expect(&e);
}

Test(guard, other_ip_protocols) {
        struct ps_stats e = {};
        struct pkt p;

        /* GRE over IPv4, "no next header" over IPv6, and ICMP numbers under the wrong IP
         * version: one entry per address pair and protocol, ports 0, bucket "other". */
        pkt_init(&p);
        pkt_eth(&p, 0x0800, 0, NULL);
        pkt_ipv4(&p, REMOTE4, LOCAL4, 47, &(struct ip4_opts) { .ttl = 64, .id = 5 });
        pkt_zeros(&p, 24);
        pkt_finish(&p, 0);
        run(&p);
        run(&p);
        exp_frame(&e, PS_PROTO_OTHER, p.len);
        exp_frame(&e, PS_PROTO_OTHER, p.len);
        e.ipv4 += 2;
        cr_assert_eq(flow_at(PS_FAMILY_IPV4, 47, REMOTE4, 0, LOCAL4, 0).packets,
                     2);

        pkt_init(&p);
        pkt_eth(&p, 0x0800, 0, NULL);
        pkt_ipv4(&p, REMOTE4, LOCAL4, IPPROTO_ICMPV6, NULL);
        pkt_icmp(&p, 128, 0, 0);
        pkt_finish(&p, 0);
        run(&p);
        exp_frame(&e, PS_PROTO_OTHER, p.len);
        e.ipv4++;
        flow_at(PS_FAMILY_IPV4, IPPROTO_ICMPV6, REMOTE4, 0, LOCAL4, 0);

        pkt_init(&p);
        pkt_eth(&p, 0x86dd, 0, NULL);
        pkt_ipv6(&p, REMOTE6, LOCAL6, 59, 64, 0);
        pkt_finish(&p, 0);
        run(&p);
        exp_frame(&e, PS_PROTO_OTHER, p.len);
        e.ipv6++;
        flow_at(PS_FAMILY_IPV6, 59, REMOTE6, 0, LOCAL6, 0);

        pkt_init(&p);
        pkt_eth(&p, 0x86dd, 0, NULL);
        pkt_ipv6(&p, REMOTE6, LOCAL6, IPPROTO_ICMP, 64, 0);
        pkt_icmp(&p, 8, 0, 0);
        pkt_finish(&p, 0);
        run(&p);
        exp_frame(&e, PS_PROTO_OTHER, p.len);
        e.ipv6++;
        flow_at(PS_FAMILY_IPV6, IPPROTO_ICMP, REMOTE6, 0, LOCAL6, 0);

        expect_tables(4, 0);
        stats_expect(&e);
}

Test(guard, vlan) {
        struct {
                const uint16_t *tags;
                size_t n;
                bool ip;
        } cases[] = {
                { tag_q, 1, true },       /* 802.1Q */
                { tag_ad, 1, true },      /* 802.1ad alone */
                { tags_qinq, 2, true },   /* 802.1ad + 802.1Q */
                { tags_three, 3, true },  /* deeper stacks are walked too */
                { tags_eight, 8, true },  /* up to PS_VLAN_MAX tags */
        };
        struct ps_stats e = {};

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                uint16_t sport = (uint16_t) (100 + i);
                struct pkt p;

                pkt_init(&p);
                pkt_eth(&p, 0x0800, cases[i].n, cases[i].tags);
                pkt_ipv4(&p, REMOTE4, LOCAL4, IPPROTO_UDP, NULL);
                pkt_udp(&p, sport, 53, 10, 0);
                pkt_finish(&p, 0);
                cr_assert_eq(p.len, 14 + 4 * cases[i].n + 20 + 8 + 10);
                run(&p);
                e.vlan++;
                if (cases[i].ip) {
                        exp_frame(&e, PS_PROTO_UDP, p.len);
                        e.ipv4++;
                        cr_assert_eq(flow_at(PS_FAMILY_IPV4, IPPROTO_UDP, REMOTE4, sport, LOCAL4,
                                             53).bytes,
                                     p.len);
                } else {
                        exp_frame(&e, PS_PROTO_OTHER, p.len);
                        e.non_ip++;
                }
                stats_expect(&e);
        }

        /* IPv6 in QinQ. */
        {
                struct pkt p;

                pkt_init(&p);
                pkt_eth(&p, 0x86dd, 2, tags_qinq);
                pkt_ipv6(&p, REMOTE6, LOCAL6, IPPROTO_TCP, 64, 0);
                pkt_tcp(&p, &(struct tcp_opts) { .sport = 1, .dport = 2, .flags = TCP_SYN });
                pkt_finish(&p, 0);
                run(&p);
                exp_frame(&e, PS_PROTO_TCP, p.len);
                e.vlan++;
                e.ipv6++;
                flow_at(PS_FAMILY_IPV6, IPPROTO_TCP, REMOTE6, 1, LOCAL6, 2);
        }
        expect_tables(6, 0);
        stats_expect(&e);
}

Test(guard, non_ip) {
        static const uint8_t arp[28] = { 0, 1, 8, 0, 6, 4, 0, 1 };
        struct ps_stats e = {};
        struct pkt p;

        pkt_init(&p);
        pkt_eth(&p, 0x0806, 0, NULL);
        pkt_bytes(&p, arp, sizeof(arp));
        pkt_finish(&p, 60);
        run(&p);
        exp_frame(&e, PS_PROTO_OTHER, 60);
        e.non_ip++;

        /* LLDP, tagged. */
        pkt_init(&p);
        pkt_eth(&p, 0x88cc, 1, tag_q);
        pkt_zeros(&p, 30);
        pkt_finish(&p, 0);
        run(&p);
        exp_frame(&e, PS_PROTO_OTHER, p.len);
        e.non_ip++;
        e.vlan++;

        expect_tables(0, 0);
        stats_expect(&e);
}

Test(guard, icmp_echo) {
        struct ps_icmp_key k = icmp_key(PS_FAMILY_IPV4, 8, 0, REMOTE4, LOCAL4);
        struct ps_icmp_key r = icmp_key(PS_FAMILY_IPV4, 0, 0, LOCAL4, REMOTE4);
        struct ps_icmp_value v, zero;
        struct ps_stats e = {};
        struct pkt p;
        uint64_t t0, t1;

        pkt_init(&p);
        pkt_eth(&p, 0x0800, 0, NULL);
        pkt_ipv4(&p, REMOTE4, LOCAL4, IPPROTO_ICMP, NULL);
        pkt_icmp(&p, 8, 0, 0x00010001);
        pkt_zeros(&p, 56);
        pkt_finish(&p, 0);
        cr_assert_eq(p.len, 98);
        t0 = coarse_now();
        run(&p);
        run(&p);
        t1 = coarse_now();
        exp_frame(&e, PS_PROTO_ICMP, 98);
        exp_frame(&e, PS_PROTO_ICMP, 98);
        e.ipv4 += 2;
        e.icmp.icmp_type[8] = 2;

        pkt_init(&p);
        pkt_eth(&p, 0x0800, 0, NULL);
        pkt_ipv4(&p, LOCAL4, REMOTE4, IPPROTO_ICMP, NULL);
        pkt_icmp(&p, 0, 0, 0x00010001);
        pkt_finish(&p, 0);
        run(&p);
        exp_frame(&e, PS_PROTO_ICMP, p.len);
        e.ipv4++;
        e.icmp.icmp_type[0] = 1;

        v = icmp_get(&k);
        cr_assert_eq(v.packets, 2);
        cr_assert_eq(v.bytes, 196);
        check_times(v.first_seen, v.last_seen, t0, t1);
        /* Not an error: no quote. */
        memset(&zero, 0, sizeof(zero));
        cr_assert_eq(v.is_error, 0);
        cr_assert(memcmp(&v.inner_family, &zero.inner_family,
                         sizeof(v) - offsetof(struct ps_icmp_value, inner_family)) == 0);
        cr_assert_eq(icmp_get(&r).packets, 1);

        /* ICMP goes to its own table only. */
        expect_tables(0, 2);
        stats_expect(&e);
}

static void check_inner(const struct ps_icmp_value *v, int family, uint8_t proto,
                        const char *src, const char *dst, uint16_t sport, uint16_t dport) {
        uint32_t s[4], d[4];

        addr_words(family, src, s);
        addr_words(family, dst, d);
        cr_assert_eq(v->is_error, 1);
        cr_assert_eq(v->inner_family, family);
        cr_assert_eq(v->inner_proto, proto);
        cr_assert(memcmp(v->inner_src, s, 16) == 0, "inner source differs");
        cr_assert(memcmp(v->inner_dst, d, 16) == 0, "inner destination differs");
        cr_assert_eq(v->inner_sport, sport, "inner sport %u, expected %u", v->inner_sport, sport);
        cr_assert_eq(v->inner_dport, dport, "inner dport %u, expected %u", v->inner_dport, dport);
}

Test(guard, icmp_errors) {
        struct ps_stats e = {};
        struct pkt p;
        struct ps_icmp_value v;

        /* Port unreachable quoting UDP: the 8 bytes RFC 792 guarantees. */
        icmp4_error(&p, 3, 3, IPPROTO_UDP, 0, 8);
        run(&p);
        exp_frame(&e, PS_PROTO_ICMP, p.len);
        e.ipv4++;
        e.icmp.icmp_type[3]++;
        e.icmp_errors++;
        v = icmp_at(PS_FAMILY_IPV4, 3, 3, REMOTE4, LOCAL4);
        cr_assert_eq(v.packets, 1);
        cr_assert_eq(v.bytes, p.len);
        check_inner(&v, PS_FAMILY_IPV4, IPPROTO_UDP, LOCAL4, OTHER4, 40001, 33434);

        /* Time exceeded quoting a whole TCP header. */
        icmp4_error(&p, 11, 0, IPPROTO_TCP, 0, 20);
        run(&p);
        exp_frame(&e, PS_PROTO_ICMP, p.len);
        e.ipv4++;
        e.icmp.icmp_type[11]++;
        e.icmp_errors++;
        v = icmp_at(PS_FAMILY_IPV4, 11, 0, REMOTE4, LOCAL4);
        check_inner(&v, PS_FAMILY_IPV4, IPPROTO_TCP, LOCAL4, OTHER4, 40002, 443);

        /* Time exceeded quoting TCP with only its first 8 bytes. */
        icmp4_error(&p, 11, 1, IPPROTO_TCP, 0, 8);
        run(&p);
        exp_frame(&e, PS_PROTO_ICMP, p.len);
        e.ipv4++;
        e.icmp.icmp_type[11]++;
        e.icmp_errors++;
        v = icmp_at(PS_FAMILY_IPV4, 11, 1, REMOTE4, LOCAL4);
        check_inner(&v, PS_FAMILY_IPV4, IPPROTO_TCP, LOCAL4, OTHER4, 0x9c42, 443);

        /* The quoted header has 12 bytes of options (NOPs, 0x0101): the ports follow them.
         * Reading at a fixed offset of 20 would give 257. */
        icmp4_error(&p, 3, 1, IPPROTO_UDP, 12, 8);
        run(&p);
        exp_frame(&e, PS_PROTO_ICMP, p.len);
        e.ipv4++;
        e.icmp.icmp_type[3]++;
        e.icmp_errors++;
        v = icmp_at(PS_FAMILY_IPV4, 3, 1, REMOTE4, LOCAL4);
        check_inner(&v, PS_FAMILY_IPV4, IPPROTO_UDP, LOCAL4, OTHER4, 40001, 33434);

        /* The quoted datagram is a non-first fragment: its first bytes are no ports. */
        icmp4_error(&p, 11, 1, IPPROTO_UDP, 0, 8);
        p.data[42 + 6] = 0x00;
        p.data[42 + 7] = 0x10;
        run(&p);
        exp_frame(&e, PS_PROTO_ICMP, p.len);
        e.ipv4++;
        e.icmp.icmp_type[11]++;
        e.icmp_errors++;
        v = icmp_at(PS_FAMILY_IPV4, 11, 1, REMOTE4, LOCAL4);
        cr_assert_eq(v.packets, 2);
        check_inner(&v, PS_FAMILY_IPV4, IPPROTO_UDP, LOCAL4, OTHER4, 0, 0);

        /* Source quench, redirect, parameter problem are errors too; timestamp is not. */
        icmp4_error(&p, 4, 0, IPPROTO_UDP, 0, 8);
        run(&p);
        exp_frame(&e, PS_PROTO_ICMP, p.len);
        icmp4_error(&p, 5, 1, IPPROTO_UDP, 0, 8);
        run(&p);
        exp_frame(&e, PS_PROTO_ICMP, p.len);
        icmp4_error(&p, 12, 0, IPPROTO_TCP, 0, 8);
        run(&p);
        exp_frame(&e, PS_PROTO_ICMP, p.len);
        e.ipv4 += 3;
        e.icmp.icmp_type[4]++;
        e.icmp.icmp_type[5]++;
        e.icmp.icmp_type[12]++;
        e.icmp_errors += 3;
        v = icmp_at(PS_FAMILY_IPV4, 12, 0, REMOTE4, LOCAL4);
        check_inner(&v, PS_FAMILY_IPV4, IPPROTO_TCP, LOCAL4, OTHER4, 0x9c42, 443);
        icmp4_error(&p, 13, 0, IPPROTO_UDP, 0, 8);
        run(&p);
        exp_frame(&e, PS_PROTO_ICMP, p.len);
        e.ipv4++;
        e.icmp.icmp_type[13]++;
        v = icmp_at(PS_FAMILY_IPV4, 13, 0, REMOTE4, LOCAL4);
        cr_assert_eq(v.is_error, 0);
        cr_assert_eq(v.inner_family, 0);
        cr_assert_eq(v.inner_sport, 0);

        expect_tables(0, 8);
        stats_expect(&e);
}

Test(guard, icmp_error_short_quotes) {
        struct ps_icmp_key k = icmp_key(PS_FAMILY_IPV4, 3, 3, REMOTE4, LOCAL4);
        struct ps_stats e = {};
        struct pkt p;
        struct ps_icmp_value v;

        /* A full inner IP header but no transport bytes: addresses yes, ports 0, not
         * malformed; two bytes of ports are no better. */
        icmp4_error(&p, 3, 3, IPPROTO_UDP, 0, 0);
        run(&p);
        exp_frame(&e, PS_PROTO_ICMP, p.len);
        e.ipv4++;
        e.icmp.icmp_type[3]++;
        e.icmp_errors++;
        v = icmp_get(&k);
        check_inner(&v, PS_FAMILY_IPV4, IPPROTO_UDP, LOCAL4,
                    OTHER4, 0, 0);
        icmp4_error(&p, 3, 3, IPPROTO_UDP, 0, 2);
        run(&p);
        exp_frame(&e, PS_PROTO_ICMP, p.len);
        e.ipv4++;
        e.icmp.icmp_type[3]++;
        e.icmp_errors++;
        v = icmp_get(&k);
        check_inner(&v, PS_FAMILY_IPV4, IPPROTO_UDP, LOCAL4,
                    OTHER4, 0, 0);

        /* Inner options beyond the quote: the header (IHL 7) does not fit. */
        icmp4_error(&p, 3, 3, IPPROTO_UDP, 8, 0);
        p.len -= 4;
        p.data[14 + 3] = (uint8_t) (p.data[14 + 3] - 4);
        run(&p);
        exp_frame(&e, PS_PROTO_ICMP, p.len);
        e.ipv4++;
        e.icmp.icmp_type[3]++;
        e.icmp_errors++;
        e.malformed++;
        stats_expect(&e);

        /* A good quote, then one of 12 bytes: malformed, still accounted, and the entry
         * keeps the last error's quote, which is none. */
        icmp4_error(&p, 3, 3, IPPROTO_UDP, 0, 8);
        run(&p);
        exp_frame(&e, PS_PROTO_ICMP, p.len);
        e.ipv4++;
        e.icmp.icmp_type[3]++;
        e.icmp_errors++;
        v = icmp_get(&k);
        check_inner(&v, PS_FAMILY_IPV4, IPPROTO_UDP, LOCAL4,
                    OTHER4, 40001, 33434);
        pkt_init(&p);
        pkt_eth(&p, 0x0800, 0, NULL);
        pkt_ipv4(&p, REMOTE4, LOCAL4, IPPROTO_ICMP, NULL);
        pkt_icmp(&p, 3, 3, 0);
        pkt_zeros(&p, 12);
        p.data[14 + 28] = 0x45;
        pkt_finish(&p, 0);
        run(&p);
        exp_frame(&e, PS_PROTO_ICMP, p.len);
        e.ipv4++;
        e.icmp.icmp_type[3]++;
        e.icmp_errors++;
        e.malformed++;
        v = icmp_get(&k);
        cr_assert_eq(v.packets, 5);
        cr_assert_eq(v.is_error, 1);
        cr_assert_eq(v.inner_family, 0);
        cr_assert_eq(v.inner_proto, 0);
        cr_assert_eq(v.inner_sport, 0);
        cr_assert_eq(v.inner_dport, 0);
        cr_assert_eq(v.inner_src[0], 0);
        cr_assert_eq(v.inner_dst[0], 0);

        /* An ICMP header of 4 bytes: malformed, not accounted at all; also when Ethernet
         * padding makes the frame long enough (the datagram ends where IP says). */
        for (int pad = 0; pad <= 1; pad++) {
                pkt_init(&p);
                pkt_eth(&p, 0x0800, 0, NULL);
                pkt_ipv4(&p, REMOTE4, LOCAL4, IPPROTO_ICMP, NULL);
                pkt_zeros(&p, 4);
                p.data[34] = 8;
                pkt_finish(&p, pad ? 60 : 0);
                run(&p);
                exp_frame(&e, PS_PROTO_ICMP, p.len);
                e.ipv4++;
                e.malformed++;
        }

        expect_tables(0, 1);
        stats_expect(&e);
}

Test(guard, icmpv6) {
        struct ps_stats e = {};
        struct pkt p;
        struct ps_icmp_value v;

        /* Echo request. */
        pkt_init(&p);
        pkt_eth(&p, 0x86dd, 0, NULL);
        pkt_ipv6(&p, REMOTE6, LOCAL6, IPPROTO_ICMPV6, 64, 0);
        pkt_icmp(&p, 128, 0, 0x00010001);
        pkt_zeros(&p, 56);
        pkt_finish(&p, 0);
        run(&p);
        exp_frame(&e, PS_PROTO_ICMPV6, p.len);
        e.ipv6++;
        e.icmp.icmpv6_type[128]++;
        v = icmp_at(PS_FAMILY_IPV6, 128, 0, REMOTE6, LOCAL6);
        cr_assert_eq(v.packets, 1);
        cr_assert_eq(v.bytes, p.len);
        cr_assert_eq(v.is_error, 0);

        /* The four error types, quoting UDP. */
        for (uint8_t type = 1; type <= 4; type++) {
                icmp6_error(&p, type, type == 1 ? 4 : 0, false);
                run(&p);
                exp_frame(&e, PS_PROTO_ICMPV6, p.len);
                e.ipv6++;
                e.icmp.icmpv6_type[type]++;
                e.icmp_errors++;
                v = icmp_at(PS_FAMILY_IPV6, type, type == 1 ? 4 : 0, REMOTE6, LOCAL6);
                check_inner(&v, PS_FAMILY_IPV6, IPPROTO_UDP, LOCAL6, OTHER6, 40003, 33435);
        }

        /* The quote carries a hop-by-hop header: walked to the UDP header. */
        icmp6_error(&p, 3, 1, true);
        run(&p);
        exp_frame(&e, PS_PROTO_ICMPV6, p.len);
        e.ipv6++;
        e.icmp.icmpv6_type[3]++;
        e.icmp_errors++;
        v = icmp_at(PS_FAMILY_IPV6, 3, 1, REMOTE6, LOCAL6);
        check_inner(&v, PS_FAMILY_IPV6, IPPROTO_UDP, LOCAL6, OTHER6, 40003, 33435);

        /* The quote is a non-first fragment of UDP: protocol known, no ports. */
        pkt_init(&p);
        pkt_eth(&p, 0x86dd, 0, NULL);
        pkt_ipv6(&p, REMOTE6, LOCAL6, IPPROTO_ICMPV6, 255, 0);
        pkt_icmp(&p, 3, 1, 0);
        pkt_quote_begin(&p);
        pkt_ipv6(&p, LOCAL6, OTHER6, 44, 1, 1240);
        pkt_ipv6_frag(&p, IPPROTO_UDP, 150, true);
        pkt_udp(&p, 40003, 33435, 8, 0);
        pkt_finish(&p, 0);
        run(&p);
        exp_frame(&e, PS_PROTO_ICMPV6, p.len);
        e.ipv6++;
        e.icmp.icmpv6_type[3]++;
        e.icmp_errors++;
        v = icmp_at(PS_FAMILY_IPV6, 3, 1, REMOTE6, LOCAL6);
        cr_assert_eq(v.packets, 2);
        check_inner(&v, PS_FAMILY_IPV6, IPPROTO_UDP, LOCAL6, OTHER6, 0, 0);

        /* A quote of 20 bytes holds no IPv6 header: malformed, accounted with no quote. */
        pkt_init(&p);
        pkt_eth(&p, 0x86dd, 0, NULL);
        pkt_ipv6(&p, REMOTE6, LOCAL6, IPPROTO_ICMPV6, 64, 0);
        pkt_icmp(&p, 1, 0, 0);
        pkt_zeros(&p, 20);
        p.data[14 + 40 + 8] = 0x60;
        pkt_finish(&p, 0);
        run(&p);
        exp_frame(&e, PS_PROTO_ICMPV6, p.len);
        e.ipv6++;
        e.icmp.icmpv6_type[1]++;
        e.icmp_errors++;
        e.malformed++;
        v = icmp_at(PS_FAMILY_IPV6, 1, 0, REMOTE6, LOCAL6);
        cr_assert_eq(v.is_error, 1);
        cr_assert_eq(v.inner_family, 0);

        /* Neighbour solicitation: not an error. */
        pkt_init(&p);
        pkt_eth(&p, 0x86dd, 0, NULL);
        pkt_ipv6(&p, REMOTE6, "ff02::1:ff00:2", IPPROTO_ICMPV6, 255, 0);
        pkt_icmp(&p, 135, 0, 0);
        pkt_zeros(&p, 16);
        pkt_finish(&p, 0);
        run(&p);
        exp_frame(&e, PS_PROTO_ICMPV6, p.len);
        e.ipv6++;
        e.icmp.icmpv6_type[135]++;

        expect_tables(0, 8);
        stats_expect(&e);
}

/*
 * Every frame kind, cut at every length short of its full size: the kernel refuses runs below
 * 14 bytes; from 14 bytes on, every cut IP frame is malformed (its IP length says more than
 * the frame holds, or a header does not fit) and must leave both tables empty. Non-IP frames
 * are not parsed past the EtherType, so a cut one is just non-IP. Then the full frame counts
 * once, cleanly.
 */
typedef void (*build_fn)(struct pkt *p);

static void k_tcp4(struct pkt *p) {
        tcp4(p, REMOTE4, LOCAL4, &(struct ip4_opts) { .ttl = 64, .option_bytes = 8 },
             &(struct tcp_opts) { .sport = 1, .dport = 2, .doff = 7, .flags = TCP_SYN,
                                  .payload = 3 });
}
static void k_udp4(struct pkt *p) {
        udp4(p, REMOTE4, 1, LOCAL4, 2, NULL, 4);
}
static void k_udp4_qinq(struct pkt *p) {
        pkt_init(p);
        pkt_eth(p, 0x0800, 2, tags_qinq);
        pkt_ipv4(p, REMOTE4, LOCAL4, IPPROTO_UDP, NULL);
        pkt_udp(p, 1, 2, 4, 0);
        pkt_finish(p, 0);
}
static void k_frag4(struct pkt *p) {
        pkt_init(p);
        pkt_eth(p, 0x0800, 1, tag_q);
        pkt_ipv4(p, REMOTE4, LOCAL4, IPPROTO_UDP, &(struct ip4_opts) { .ttl = 1, .frag_off = 3 });
        pkt_zeros(p, 16);
        pkt_finish(p, 0);
}
static void k_gre4(struct pkt *p) {
        pkt_init(p);
        pkt_eth(p, 0x0800, 0, NULL);
        pkt_ipv4(p, REMOTE4, LOCAL4, 47, NULL);
        pkt_zeros(p, 4);
        pkt_finish(p, 0);
}
static void k_udp6(struct pkt *p) {
        udp6(p, 1, 2, 4);
}
static void k_chain6(struct pkt *p) {
        static const uint8_t six[] = { 0, 60, 43, 44, 51, 60 };

        ipv6_chain(p, six, 6, IPPROTO_TCP, 1);
}
static void k_frag6(struct pkt *p) {
        pkt_init(p);
        pkt_eth(p, 0x86dd, 0, NULL);
        pkt_ipv6(p, REMOTE6, LOCAL6, 44, 64, 0);
        pkt_ipv6_frag(p, IPPROTO_UDP, 7, false);
        pkt_zeros(p, 8);
        pkt_finish(p, 0);
}
static void k_echo4(struct pkt *p) {
        pkt_init(p);
        pkt_eth(p, 0x0800, 0, NULL);
        pkt_ipv4(p, REMOTE4, LOCAL4, IPPROTO_ICMP, NULL);
        pkt_icmp(p, 8, 0, 1);
        pkt_zeros(p, 4);
        pkt_finish(p, 0);
}
static void k_err4_udp(struct pkt *p) {
        icmp4_error(p, 3, 3, IPPROTO_UDP, 0, 8);
}
static void k_err4_tcp_opts(struct pkt *p) {
        icmp4_error(p, 11, 0, IPPROTO_TCP, 12, 8);
}
static void k_echo6(struct pkt *p) {
        pkt_init(p);
        pkt_eth(p, 0x86dd, 1, tag_ad);
        pkt_ipv6(p, REMOTE6, LOCAL6, IPPROTO_ICMPV6, 64, 0);
        pkt_icmp(p, 128, 0, 1);
        pkt_finish(p, 0);
}
static void k_err6(struct pkt *p) {
        icmp6_error(p, 1, 4, true);
}
static void k_arp(struct pkt *p) {
        pkt_init(p);
        pkt_eth(p, 0x0806, 0, NULL);
        pkt_zeros(p, 28);
        pkt_finish(p, 0);
}

Test(guard, every_truncation, .timeout = 240) {
        static const struct {
                const char *name;
                build_fn build;
                bool ip;
                unsigned flows, icmp; /* entries the full frame makes */
        } kinds[] = {
                { "tcp4 with IP and TCP options", k_tcp4, true, 1, 0 },
                { "udp4", k_udp4, true, 1, 0 },
                { "udp4 in QinQ", k_udp4_qinq, true, 1, 0 },
                { "ipv4 non-first fragment in 802.1Q", k_frag4, true, 0, 0 },
                { "gre4", k_gre4, true, 1, 0 },
                { "udp6", k_udp6, true, 1, 0 },
                { "tcp6 behind six extension headers", k_chain6, true, 1, 0 },
                { "ipv6 non-first fragment", k_frag6, true, 0, 0 },
                { "icmp echo", k_echo4, true, 0, 1 },
                { "icmp unreachable quoting udp", k_err4_udp, true, 0, 1 },
                { "icmp time exceeded quoting tcp with options", k_err4_tcp_opts, true, 0, 1 },
                { "icmpv6 echo in 802.1ad", k_echo6, true, 0, 1 },
                { "icmpv6 unreachable quoting hop-by-hop + udp", k_err6, true, 0, 1 },
                { "arp", k_arp, false, 0, 0 },
        };
        unsigned runs = 0;

        for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
                struct ps_stats before, after;
                struct pkt p;

                kinds[i].build(&p);
                stats_read(&before);
                for (size_t len = 0; len < p.len; len++) {
                        int r = run_len(&p, len);

                        if (len < ETH_HEADER) {
                                cr_assert_eq(r, -EINVAL, "%s: a %zu-byte run was not refused",
                                             kinds[i].name, len);
                                continue;
                        }
                        cr_assert_eq(r, XDP_PASS_CODE, "%s cut at %zu: verdict %d",
                                     kinds[i].name, len, r);
                        runs++;
                        stats_read(&after);
                        cr_assert_eq(after.packets - before.packets, len - ETH_HEADER + 1);
                        cr_assert_eq(after.passed - before.passed, len - ETH_HEADER + 1);
                        cr_assert_eq(after.malformed - before.malformed,
                                     kinds[i].ip ? len - ETH_HEADER + 1 : 0,
                                     "%s cut at %zu bytes of %zu: not counted as malformed",
                                     kinds[i].name, len, p.len);
                        cr_assert_eq(after.fragments, before.fragments, "%s cut at %zu",
                                     kinds[i].name, len);
                        cr_assert_eq(after.icmp_errors, before.icmp_errors, "%s cut at %zu",
                                     kinds[i].name, len);
                        expect_tables(0, 0);
                }

                /* The full frame: clean. */
                run(&p);
                stats_read(&after);
                cr_assert_eq(after.malformed - before.malformed,
                             kinds[i].ip ? p.len - ETH_HEADER : 0, "%s, full frame",
                             kinds[i].name);
                expect_tables(kinds[i].flows, kinds[i].icmp);
                map_clear(skel->maps.flows);
                map_clear(skel->maps.icmp_flows);
                map_clear(skel->maps.icmp4_flows);
        }
        cr_log_info("%u truncated runs", runs);
}

/* ---- two CPUs at once ---- */

struct cpu_run {
        int cpu;
        const struct pkt *p;
        int repeat;
        int err;
};

/* Runs the frame `repeat` times in one BPF_PROG_TEST_RUN on one CPU (the thread pinned there:
 * the kernel runs the program where the caller is). */
static void *run_on_cpu(void *arg) {
        struct cpu_run *c = arg;
        LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = c->p->data,
                    .data_size_in = (uint32_t) c->p->len, .repeat = c->repeat);
        cpu_set_t set;

        CPU_ZERO(&set);
        CPU_SET(c->cpu, &set);
        c->err = pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
        if (c->err == 0 && bpf_prog_test_run_opts(bpf_program__fd(skel->progs.xdp_guard), &o) < 0)
                c->err = errno;
        if (c->err == 0 && o.retval != XDP_PASS_CODE)
                c->err = EPROTO;
        return NULL;
}

/* Both CPUs run the same flow's packet at the same time. The per-CPU counters stay exact; the
 * flow's counters are plain additions (guard.h, struct ps_flow_value): never more than was
 * sent, whole packets only, at least what one CPU sent (a lost update loses one of the two
 * CPUs' increments, never both). A flow only one CPU sees is exact. */
Test(guard, two_cpus_at_once) {
        enum { N = 200000 };
        struct pkt shared, alone;
        struct cpu_run runs[2], solo;
        pthread_t t[2];
        struct ps_flow_value v;
        struct ps_stats s;

        if (libbpf_num_possible_cpus() < 2 || sysconf(_SC_NPROCESSORS_ONLN) < 2)
                cr_assert_fail("this test needs two online CPUs");
        udp4(&shared, REMOTE4, 4000, LOCAL4, 53, &(struct ip4_opts) { .ttl = 64, .id = 1 }, 18);
        udp4(&alone, OTHER4, 4001, LOCAL4, 53, &(struct ip4_opts) { .ttl = 64, .id = 1 }, 18);
        cr_assert_eq(shared.len, 60);
        for (int i = 0; i < 2; i++) {
                runs[i] = (struct cpu_run) { .cpu = i, .p = &shared, .repeat = N };
                cr_assert_eq(pthread_create(&t[i], NULL, run_on_cpu, &runs[i]), 0);
        }
        for (int i = 0; i < 2; i++) {
                cr_assert_eq(pthread_join(t[i], NULL), 0);
                cr_assert_eq(runs[i].err, 0, "CPU %d: %s", i, strerror(runs[i].err));
        }
        solo = (struct cpu_run) { .cpu = 1, .p = &alone, .repeat = N };
        run_on_cpu(&solo);
        cr_assert_eq(solo.err, 0, "%s", strerror(solo.err));

        stats_read(&s);
        cr_assert_eq(s.packets, 3 * N);
        cr_assert_eq(s.passed, 3 * N);
        cr_assert_eq(s.bytes, 3 * N * 60);
        cr_assert_eq(s.proto_packets[PS_PROTO_UDP], 3 * N);
        cr_assert_eq(s.proto_bytes[PS_PROTO_UDP], 3 * N * 60);

        v = flow_at(PS_FAMILY_IPV4, IPPROTO_UDP, REMOTE4, 4000, LOCAL4, 53);
        cr_log_info("shared flow: %llu of %d packets counted, %llu of %d bytes",
                    (unsigned long long) v.packets, 2 * N, (unsigned long long) v.bytes,
                    2 * N * 60);
        cr_assert_leq(v.packets, 2 * N);
        cr_assert_geq(v.packets, N);
        cr_assert_leq(v.bytes, 2 * N * 60);
        cr_assert_geq(v.bytes, N * 60);
        cr_assert_eq(v.bytes % 60, 0);
        v = flow_at(PS_FAMILY_IPV4, IPPROTO_UDP, OTHER4, 4001, LOCAL4, 53);
        cr_assert_eq(v.packets, N);
        cr_assert_eq(v.bytes, N * 60);
}
