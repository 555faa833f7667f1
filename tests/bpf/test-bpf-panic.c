/* SPDX-License-Identifier: MIT */
/*
 * Panic mode in the real compiled program, under BPF_PROG_TEST_RUN: the management ports and
 * addresses written through the daemon's own code (panic.c), crafted frames, and the exact
 * verdict and counters of each, worked out from what guard.h says passes in panic mode.
 * Needs root.
 */
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <criterion/criterion.h>
#include <linux/bpf.h>

#include "conf.h"
#include "guard.skel.h"
#include "packet.h"
#include "panic.h"
#include "util.h"

#define DROP 1 /* XDP_DROP */
#define PASS 2 /* XDP_PASS */
#define LOCAL4 "198.51.100.2"
#define LOCAL6 "2001:db8::2"
#define REMOTE4 "203.0.113.5"
#define REMOTE6 "2001:db8:b::5"
#define MGMT4 "192.0.2.10"         /* ManagementAddresses=192.0.2.10 */
#define MGMT6 "2001:db8:a:1::7"    /* inside ManagementAddresses=2001:db8:a::/48 */
#define MGMT_PORT 22
#define MGMT_PORT2 2222

#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_RST 0x04
#define TCP_PSH 0x08
#define TCP_ACK 0x10

static struct guard_bpf *skel;
static Panic pn;

static void setup(void) {
        Config c;

        skel = guard_bpf__open();
        cr_assert_not_null(skel);
        bpf_map__set_max_entries(skel->maps.flows, 4096);
        bpf_map__set_max_entries(skel->maps.icmp_flows, 256);
        bpf_map__set_max_entries(skel->maps.icmp4_flows, 256);
        cr_assert_eq(guard_bpf__load(skel), 0, "the program does not load (verifier log above)");
        pn = PANIC_INIT;
        pn.conf_fd = bpf_map__fd(skel->maps.panic);
        pn.addr4_fd = bpf_map__fd(skel->maps.panic_addr4);
        pn.addr6_fd = bpf_map__fd(skel->maps.panic_addr6);
        config_init(&c);
        c.management_ports[0] = MGMT_PORT;
        c.management_ports[1] = MGMT_PORT2;
        c.n_management_ports = 2;
        cr_assert_eq(cidr_parse(MGMT4, true, &c.management[0]), 0);
        cr_assert_eq(cidr_parse("2001:db8:a::/48", true, &c.management[1]), 0);
        c.n_management = 2;
        cr_assert_eq(panic_apply_config(&pn, &c), 0);
}

static void teardown(void) {
        guard_bpf__destroy(skel);
}

TestSuite(panic, .init = setup, .fini = teardown, .timeout = 120);

/* The kernel flag alone, as panic_set() writes it (the state file is the daemon's). */
static void panic_flag(bool on) {
        struct ps_panic v;
        uint32_t zero = 0;

        cr_assert_eq(bpf_map_lookup_elem(pn.conf_fd, &zero, &v), 0);
        v.on = on;
        cr_assert_eq(bpf_map_update_elem(pn.conf_fd, &zero, &v, BPF_ANY), 0);
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

static int run(const struct pkt *p) {
        LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = p->data, .data_size_in = (uint32_t) p->len,
                    .repeat = 1);

        cr_assert_eq(bpf_prog_test_run_opts(bpf_program__fd(skel->progs.xdp_guard), &o), 0);
        return (int) o.retval;
}

static bool is_v6(const char *addr) {
        return strchr(addr, ':') != NULL;
}

static void ip(struct pkt *p, const char *src, uint8_t proto, uint8_t ttl) {
        pkt_init(p);
        if (is_v6(src)) {
                pkt_eth(p, 0x86dd, 0, NULL);
                pkt_ipv6(p, src, LOCAL6, proto, ttl, 0);
        } else {
                pkt_eth(p, 0x0800, 0, NULL);
                pkt_ipv4(p, src, LOCAL4, proto, &(struct ip4_opts) { .ttl = ttl });
        }
}

static int tcp(const char *src, uint16_t sport, uint16_t dport, uint8_t flags) {
        struct pkt p;

        ip(&p, src, IPPROTO_TCP, 64);
        pkt_tcp(&p, &(struct tcp_opts) { .sport = sport, .dport = dport, .seq = 1000,
                                        .ack = flags & TCP_ACK ? 5000 : 0, .flags = flags,
                                        .window = 1000 });
        pkt_finish(&p, 60);
        return run(&p);
}

static int udp(const char *src, uint16_t sport, uint16_t dport) {
        struct pkt p;

        ip(&p, src, IPPROTO_UDP, 64);
        pkt_udp(&p, sport, dport, 16, 0);
        pkt_finish(&p, 60);
        return run(&p);
}

/* An echo request (ICMP type 8, ICMPv6 type 128). */
static int ping(const char *src) {
        struct pkt p;

        ip(&p, src, is_v6(src) ? IPPROTO_ICMPV6 : IPPROTO_ICMP, 64);
        pkt_icmp(&p, is_v6(src) ? 128 : 8, 0, 0x00010001);
        pkt_zeros(&p, 16);
        pkt_finish(&p, 60);
        return run(&p);
}

/* An ICMPv6 message with this type and hop limit, e.g. a neighbour solicitation (135). */
static int icmp6(uint8_t type, uint8_t hop_limit) {
        struct pkt p;

        ip(&p, REMOTE6, IPPROTO_ICMPV6, hop_limit);
        pkt_icmp(&p, type, 0, 0);
        pkt_zeros(&p, 16);
        pkt_finish(&p, 60);
        return run(&p);
}

/* Destination unreachable (fragmentation needed) quoting a TCP segment this host sent from
 * sport to dport. */
static int icmp_error_tcp(uint16_t sport, uint16_t dport) {
        struct pkt p;

        ip(&p, REMOTE4, IPPROTO_ICMP, 64);
        pkt_icmp(&p, 3, 4, 1400);
        pkt_quote_begin(&p);
        pkt_ipv4(&p, LOCAL4, REMOTE4, IPPROTO_TCP, &(struct ip4_opts) { .ttl = 64,
                                                                         .tot_len = 1500 });
        pkt_tcp(&p, &(struct tcp_opts) { .sport = sport, .dport = dport, .seq = 7,
                                        .flags = TCP_ACK });
        pkt_finish(&p, 0);
        return run(&p);
}

/* A frame of another EtherType with 46 bytes of zeros (ARP 0x0806, LLDP 0x88cc...). */
static int ether(uint16_t ethertype) {
        struct pkt p;

        pkt_init(&p);
        pkt_eth(&p, ethertype, 0, NULL);
        pkt_zeros(&p, 46);
        pkt_finish(&p, 60);
        return run(&p);
}

/* An IPv4 frame whose header is cut: version 0, the rest zeros. */
static int malformed_ipv4(void) {
        return ether(0x0800);
}

/* A TCP segment to the management port whose header ends after 12 bytes (not a fragment). */
static int truncated_tcp(const char *src) {
        struct pkt p;

        ip(&p, src, IPPROTO_TCP, 64);
        pkt_bytes(&p, (const uint8_t[]) { 0x9c, 0x40, 0x00, MGMT_PORT, 0, 0, 0, 1, 0, 0, 0, 0 },
                  12);
        pkt_finish(&p, 0);
        return run(&p);
}

/* A non-first IPv4 fragment of a TCP datagram: no ports. */
static int later_fragment(const char *src) {
        struct pkt p;

        pkt_init(&p);
        pkt_eth(&p, 0x0800, 0, NULL);
        pkt_ipv4(&p, src, LOCAL4, IPPROTO_TCP, &(struct ip4_opts) { .ttl = 64, .id = 77,
                                                                      .frag_off = 185 });
        pkt_zeros(&p, 40);
        pkt_finish(&p, 60);
        return run(&p);
}

Test(panic, off_passes_everything) {
        panic_flag(false);
        cr_assert_eq(udp(REMOTE4, 40000, 53), PASS);
        cr_assert_eq(tcp(REMOTE4, 40000, 80, TCP_SYN), PASS);
        cr_assert_eq(ping(REMOTE4), PASS);
        cr_assert_eq(ping(REMOTE6), PASS);
        cr_assert_eq(tcp(REMOTE4, MGMT_PORT, 3306, TCP_SYN), PASS);
        cr_assert_eq(ether(0x88cc), PASS);
        cr_assert_eq(malformed_ipv4(), PASS);
        cr_assert_eq(stats().dropped, 0);
        cr_assert_eq(stats().dropped_panic, 0);
}

Test(panic, on_drops_udp_tcp_icmp) {
        struct ps_stats s;

        panic_flag(true);
        cr_assert_eq(udp(REMOTE4, 40000, 53), DROP);
        cr_assert_eq(tcp(REMOTE4, 40000, 80, TCP_SYN), DROP);
        cr_assert_eq(tcp(REMOTE4, 40000, 80, TCP_ACK), DROP);
        cr_assert_eq(ping(REMOTE4), DROP);
        cr_assert_eq(udp(REMOTE6, 40000, 53), DROP);
        cr_assert_eq(ping(REMOTE6), DROP);
        /* The management port is a TCP port: UDP to it is not management traffic. */
        cr_assert_eq(udp(REMOTE4, 40000, MGMT_PORT), DROP);
        s = stats();
        cr_assert_eq(s.dropped_panic, 7);
        cr_assert_eq(s.dropped, 7);
        cr_assert_eq(s.dropped_filter, 0);
        cr_assert_eq(s.passed, 0);
        /* Dropped before any table: no flow and no ICMP entry was made. */
        cr_assert_lt(bpf_map_get_next_key(bpf_map__fd(skel->maps.flows), NULL,
                                          &(struct ps_flow_key) {}), 0);
        cr_assert_lt(bpf_map_get_next_key(bpf_map__fd(skel->maps.icmp_flows), NULL,
                                          &(struct ps_icmp_key) {}), 0);
        cr_assert_lt(bpf_map_get_next_key(bpf_map__fd(skel->maps.icmp4_flows), NULL,
                                          &(struct ps_icmp4_key) {}), 0);
}

Test(panic, management_ports_pass) {
        panic_flag(true);
        /* New connections to either management port, from anywhere, and their segments. */
        cr_assert_eq(tcp(REMOTE4, 40000, MGMT_PORT, TCP_SYN), PASS);
        cr_assert_eq(tcp(REMOTE4, 40000, MGMT_PORT, TCP_ACK | TCP_PSH), PASS);
        cr_assert_eq(tcp(REMOTE6, 40001, MGMT_PORT2, TCP_SYN), PASS);
        cr_assert_eq(tcp(REMOTE4, 40000, MGMT_PORT + 1, TCP_SYN), DROP);
        cr_assert_eq(stats().dropped_panic, 1);
        cr_assert_eq(stats().passed, 3);
}

Test(panic, replies_from_management_port_pass) {
        panic_flag(true);
        /* This host's own SSH session elsewhere: SYN-ACK, data, FIN and RST from port 22. */
        cr_assert_eq(tcp(REMOTE4, MGMT_PORT, 45678, TCP_SYN | TCP_ACK), PASS);
        cr_assert_eq(tcp(REMOTE4, MGMT_PORT, 45678, TCP_ACK | TCP_PSH), PASS);
        cr_assert_eq(tcp(REMOTE6, MGMT_PORT, 45678, TCP_FIN | TCP_ACK), PASS);
        cr_assert_eq(tcp(REMOTE4, MGMT_PORT, 45678, TCP_RST), PASS);
        /* A SYN from port 22 opens a connection to whatever it is sent to: not a reply. */
        cr_assert_eq(tcp(REMOTE4, MGMT_PORT, 3306, TCP_SYN), DROP);
        cr_assert_eq(tcp(REMOTE6, MGMT_PORT2, 80, TCP_SYN), DROP);
        /* UDP from port 22 is no reply of a TCP session. */
        cr_assert_eq(udp(REMOTE4, MGMT_PORT, 45678), DROP);
        cr_assert_eq(stats().dropped_panic, 3);
        cr_assert_eq(stats().passed, 4);
}

Test(panic, management_addresses_pass) {
        panic_flag(true);
        cr_assert_eq(udp(MGMT4, 40000, 53), PASS);
        cr_assert_eq(ping(MGMT4), PASS);
        cr_assert_eq(tcp(MGMT4, 40000, 80, TCP_SYN), PASS);
        cr_assert_eq(ping(MGMT6), PASS);
        cr_assert_eq(udp(MGMT6, 40000, 5353), PASS);
        /* Next to them, not in them. */
        cr_assert_eq(udp("192.0.2.11", 40000, 53), DROP);
        cr_assert_eq(ping("2001:db8:b:1::7"), DROP);
        /* A later fragment has no ports: only its source can let it through. */
        cr_assert_eq(later_fragment(MGMT4), PASS);
        cr_assert_eq(later_fragment(REMOTE4), DROP);
        cr_assert_eq(stats().dropped_panic, 3);
}

Test(panic, what_the_parser_gives_up_on_is_dropped) {
        panic_flag(true);
        cr_assert_eq(malformed_ipv4(), DROP);
        cr_assert_eq(truncated_tcp(REMOTE4), DROP);
        /* Frames that are not IP: ARP passes (without it the neighbours are lost), others
         * do not. */
        cr_assert_eq(ether(0x0806), PASS);
        cr_assert_eq(ether(0x88cc), DROP);
        cr_assert_eq(stats().dropped_panic, 3);
        cr_assert_eq(stats().malformed, 2);
        /* Off again: the same malformed frames pass, as they always did (the kernel drops
         * them itself). */
        panic_flag(false);
        cr_assert_eq(malformed_ipv4(), PASS);
        cr_assert_eq(truncated_tcp(REMOTE4), PASS);
        cr_assert_eq(ether(0x88cc), PASS);
        cr_assert_eq(stats().dropped_panic, 3);
}

Test(panic, neighbour_discovery_and_quoted_sessions) {
        panic_flag(true);
        /* Neighbour solicitation and advertisement, router advertisement: on-link only. */
        cr_assert_eq(icmp6(135, 255), PASS);
        cr_assert_eq(icmp6(136, 255), PASS);
        cr_assert_eq(icmp6(134, 255), PASS);
        cr_assert_eq(icmp6(135, 64), DROP);
        cr_assert_eq(icmp6(137, 255), DROP); /* redirect */
        /* Path MTU of the management sessions: an error quoting port 22 either way. */
        cr_assert_eq(icmp_error_tcp(45678, MGMT_PORT), PASS);
        cr_assert_eq(icmp_error_tcp(MGMT_PORT, 45678), PASS);
        cr_assert_eq(icmp_error_tcp(45678, 443), DROP);
        cr_assert_eq(stats().dropped_panic, 3);
}

Test(panic, off_restores) {
        panic_flag(true);
        cr_assert_eq(udp(REMOTE4, 40000, 53), DROP);
        cr_assert_eq(tcp(REMOTE4, 40000, 80, TCP_SYN), DROP);
        cr_assert_eq(ping(REMOTE4), DROP);
        panic_flag(false);
        cr_assert_eq(udp(REMOTE4, 40000, 53), PASS);
        cr_assert_eq(tcp(REMOTE4, 40000, 80, TCP_SYN), PASS);
        cr_assert_eq(ping(REMOTE4), PASS);
        cr_assert_eq(stats().dropped_panic, 3);
        cr_assert_eq(stats().passed, 3);
}

Test(panic, reconfigured_ports_and_addresses) {
        Config c;

        panic_flag(true);
        config_init(&c);
        c.management_ports[0] = 2022;
        c.n_management_ports = 1;
        c.n_management = 0;
        cr_assert_eq(panic_apply_config(&pn, &c), 0);
        /* The old port and address no longer pass; the new port does; the flag stayed. */
        cr_assert_eq(tcp(REMOTE4, 40000, MGMT_PORT, TCP_SYN), DROP);
        cr_assert_eq(udp(MGMT4, 40000, 53), DROP);
        cr_assert_eq(tcp(REMOTE4, 40000, 2022, TCP_SYN), PASS);
        cr_assert_eq(stats().dropped_panic, 2);
}
