/* SPDX-License-Identifier: MIT */
/*
 * Writes the seed frames of fuzz-xdp into a directory, one file per frame: the kinds of frame the
 * XDP program's tests craft (tests/bpf, with the same builder), each a good frame the fuzzer can
 * cut and bend. Run by hand when the builder or the parser learns something new:
 *   build-fuzz/tests/fuzz/gen-frames tests/fuzz/corpus/fuzz-xdp
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "packet.h"

#define R4 "192.0.2.1"
#define R4_PASS "192.0.2.200"   /* inside the pass exception of tcp/23 */
#define BAD4 "203.0.113.5"      /* dropped whatever the protocol */
#define L4 "198.51.100.2"
#define R6 "2001:db8::1"
#define BAD6 "2001:db8:bad::7"  /* dropped whatever the protocol */
#define L6 "2001:db8::2"

#define FRAME_SEPARATOR "-PS-" /* as in fuzz-xdp.c */

static const char *dir;

static void write_file(const char *name, const uint8_t *data, size_t len, bool append) {
        char path[512];
        FILE *f;

        snprintf(path, sizeof path, "%s/%s", dir, name);
        f = fopen(path, append ? "ae" : "we");
        if (!f || fwrite(data, 1, len, f) != len || fclose(f) != 0) {
                perror(path);
                exit(1);
        }
}

static void save(const char *name, const struct pkt *p) {
        write_file(name, p->data, p->len, false);
}

/* A sequence: the frames of files `a` and `b` (already written) in one input, in that order. */
static void save_pair(const char *name, const char *a, const char *b) {
        const char *parts[2] = { a, b };

        write_file(name, NULL, 0, false);
        for (size_t i = 0; i < 2; i++) {
                char path[512];
                uint8_t buf[PKT_MAX];
                size_t n;
                FILE *f;

                snprintf(path, sizeof path, "%s/%s", dir, parts[i]);
                f = fopen(path, "re");
                if (!f) {
                        perror(path);
                        exit(1);
                }
                n = fread(buf, 1, sizeof buf, f);
                fclose(f);
                if (i > 0)
                        write_file(name, (const uint8_t *) FRAME_SEPARATOR,
                                   strlen(FRAME_SEPARATOR), true);
                write_file(name, buf, n, true);
        }
}

static void tcp4(const char *name, const char *src, uint16_t dport, uint8_t flags,
                 const struct ip4_opts *o, uint8_t doff, size_t payload) {
        struct pkt p;

        pkt_init(&p);
        pkt_eth(&p, 0x0800, 0, NULL);
        pkt_ipv4(&p, src, L4, 6, o ? o : &(struct ip4_opts) { .ttl = 64, .id = 1 });
        pkt_tcp(&p, &(struct tcp_opts) { .sport = 40000, .dport = dport, .seq = 1000,
                                         .flags = flags, .window = 512, .doff = doff,
                                         .payload = payload });
        pkt_finish(&p, 60);
        save(name, &p);
}

static void udp4(const char *name, const char *src, uint16_t dport, size_t payload,
                 const struct ip4_opts *o) {
        struct pkt p;

        pkt_init(&p);
        pkt_eth(&p, 0x0800, 0, NULL);
        pkt_ipv4(&p, src, L4, 17, o ? o : &(struct ip4_opts) { .ttl = 64, .id = 2 });
        pkt_udp(&p, 5000, dport, payload, 0);
        pkt_finish(&p, 60);
        save(name, &p);
}

/* An IPv6 TCP SYN behind the extension headers listed (types), the last one's next header TCP. */
static void chain6(const char *name, const uint8_t *types, size_t n, uint16_t dport) {
        struct pkt p;

        pkt_init(&p);
        pkt_eth(&p, 0x86dd, 0, NULL);
        pkt_ipv6(&p, R6, L6, n ? types[0] : 6, 64, 0);
        for (size_t i = 0; i < n; i++) {
                uint8_t next = i + 1 < n ? types[i + 1] : 6;

                if (types[i] == 44)
                        pkt_ipv6_frag(&p, next, 0, false);
                else
                        pkt_ipv6_ext(&p, types[i], next, types[i] == 51 ? 12 : 8);
        }
        pkt_tcp(&p, &(struct tcp_opts) { .sport = 40000, .dport = dport, .flags = TCP_SYN });
        pkt_finish(&p, 0);
        save(name, &p);
}

static void icmp4_error(const char *name, uint8_t type, uint8_t code, uint8_t inner,
                        size_t quoted) {
        struct pkt p;

        pkt_init(&p);
        pkt_eth(&p, 0x0800, 0, NULL);
        pkt_ipv4(&p, R4, L4, 1, &(struct ip4_opts) { .ttl = 64 });
        pkt_icmp(&p, type, code, 0);
        pkt_quote_begin(&p);
        pkt_ipv4(&p, L4, BAD4, inner, &(struct ip4_opts) { .ttl = 1, .tot_len = 60 });
        if (inner == 17)
                pkt_udp(&p, 40001, 33434, 32, 40);
        else
                pkt_tcp(&p, &(struct tcp_opts) { .sport = 40001, .dport = 23, .flags = TCP_SYN });
        p.len -= (inner == 17 ? 40 : 20) - quoted; /* the quote holds `quoted` bytes of it */
        pkt_finish(&p, 0);
        save(name, &p);
}

static void icmp6(const char *name, const char *src, uint8_t type, uint8_t code, bool quote) {
        struct pkt p;

        pkt_init(&p);
        pkt_eth(&p, 0x86dd, 0, NULL);
        pkt_ipv6(&p, src, L6, 58, 64, 0);
        pkt_icmp(&p, type, code, 0);
        if (quote) {
                pkt_quote_begin(&p);
                pkt_ipv6(&p, L6, R6, 17, 1, 16);
                pkt_udp(&p, 40001, 53, 8, 16);
        } else {
                pkt_zeros(&p, 16);
        }
        pkt_finish(&p, 0);
        save(name, &p);
}

int main(int argc, char **argv) {
        static const uint8_t six[] = { 0, 60, 43, 44, 51, 60 };
        static const uint8_t seven[] = { 0, 60, 60, 60, 60, 60, 60 };
        static const uint8_t twelve[] = { 60, 60, 60, 60, 60, 60, 60, 60, 60, 60, 60, 60 };
        static const uint16_t q[] = { 0x8100 }, qinq[] = { 0x88a8, 0x8100 };
        static const uint16_t eight[] = { 0x8100, 0x8100, 0x8100, 0x8100, 0x8100, 0x8100,
                                          0x8100, 0x8100, 0x8100 };
        struct pkt p;

        if (argc != 2) {
                fprintf(stderr, "usage: %s DIR\n", argv[0]);
                return 2;
        }
        dir = argv[1];

        /* TCP: a port rule's drop, its pass exception, a count shadow, flags, options. */
        tcp4("tcp4-syn-23", R4, 23, TCP_SYN, NULL, 0, 0);
        tcp4("tcp4-syn-23-excepted", R4_PASS, 23, TCP_SYN, NULL, 0, 0);
        tcp4("tcp4-ack-22-counted", R4, 22, TCP_ACK, NULL, 0, 100);
        tcp4("tcp4-syn-25", R4, 25, TCP_SYN, NULL, 0, 0);
        tcp4("tcp4-synack-25", R4, 25, TCP_SYN | TCP_ACK, NULL, 0, 0);
        tcp4("tcp4-fin-80-options", R4, 80, TCP_FIN | TCP_ACK, NULL, 15, 10);
        tcp4("tcp4-rst-443", R4, 443, TCP_RST, NULL, 0, 0);
        tcp4("tcp4-ip-options", R4, 23, TCP_SYN,
             &(struct ip4_opts) { .ttl = 64, .option_bytes = 40 }, 0, 0);
        tcp4("tcp4-bad-ihl", R4, 23, TCP_SYN, &(struct ip4_opts) { .ttl = 64, .ihl = 4 }, 0, 0);
        tcp4("tcp4-bad-version", R4, 23, TCP_SYN, &(struct ip4_opts) { .ttl = 64, .version = 6 }, 0, 0);
        tcp4("tcp4-from-banned", BAD4, 80, TCP_SYN, NULL, 0, 0);

        /* IPv4 fragments: a whole first fragment, a tiny one cut in the TCP header, later ones. */
        tcp4("frag4-first-tcp-23", R4, 23, TCP_SYN,
             &(struct ip4_opts) { .ttl = 64, .id = 77, .frag_off = IP4_MF }, 0, 0);
        {
                pkt_init(&p);
                pkt_eth(&p, 0x0800, 0, NULL);
                pkt_ipv4(&p, R4, L4, 6, &(struct ip4_opts) { .ttl = 64, .id = 78, .frag_off = IP4_MF });
                pkt_bytes(&p, "\x9c\x40\x00\x17\x00\x00\x03\xe8", 8); /* ports and seq only */
                pkt_finish(&p, 0);
                save("frag4-tiny-first-8", &p);

                pkt_init(&p);
                pkt_eth(&p, 0x0800, 0, NULL);
                pkt_ipv4(&p, R4, L4, 6, &(struct ip4_opts) { .ttl = 64, .id = 78, .frag_off = 1 });
                pkt_zeros(&p, 32);
                pkt_finish(&p, 0);
                save("frag4-tiny-rest", &p);
        }
        udp4("frag4-first-udp-8500", R4, 8500, 96,
             &(struct ip4_opts) { .ttl = 64, .id = 90, .frag_off = IP4_MF });
        {
                pkt_init(&p);
                pkt_eth(&p, 0x0800, 0, NULL);
                pkt_ipv4(&p, R4, L4, 17, &(struct ip4_opts) { .ttl = 64, .id = 90, .frag_off = 13 });
                pkt_zeros(&p, 104);
                pkt_finish(&p, 0);
                save("frag4-last-udp", &p);
        }

        /* UDP: a range drop, DNS, a bad length. */
        udp4("udp4-8500", R4, 8500, 20, NULL);
        udp4("udp4-53", R4, 53, 30, NULL);
        {
                pkt_init(&p);
                pkt_eth(&p, 0x0800, 0, NULL);
                pkt_ipv4(&p, R4, L4, 17, &(struct ip4_opts) { .ttl = 64 });
                pkt_udp(&p, 5000, 8500, 20, 4);
                pkt_finish(&p, 0);
                save("udp4-bad-length", &p);
        }

        /* Other protocols: GRE (a protocol rule), SCTP, ESP. */
        {
                static const uint8_t protos[] = { 47, 132, 50 };
                static const char *const names[] = { "gre4", "sctp4", "esp4" };

                for (size_t i = 0; i < 3; i++) {
                        pkt_init(&p);
                        pkt_eth(&p, 0x0800, 0, NULL);
                        pkt_ipv4(&p, R4, L4, protos[i], &(struct ip4_opts) { .ttl = 64 });
                        pkt_zeros(&p, 24);
                        pkt_finish(&p, 0);
                        save(names[i], &p);
                }
        }

        /* VLAN stacks. */
        {
                const struct { const char *name; const uint16_t *tags; size_t n; } v[] = {
                        { "vlan1-tcp-23", q, 1 }, { "qinq-tcp-23", qinq, 2 },
                        { "vlan8-tcp-23", eight, 8 }, { "vlan9-tcp-23", eight, 9 },
                };

                for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
                        pkt_init(&p);
                        pkt_eth(&p, 0x0800, v[i].n, v[i].tags);
                        pkt_ipv4(&p, R4, L4, 6, &(struct ip4_opts) { .ttl = 64 });
                        pkt_tcp(&p, &(struct tcp_opts) { .sport = 1, .dport = 23, .flags = TCP_SYN });
                        pkt_finish(&p, 60);
                        save(v[i].name, &p);
                }
        }

        /* ICMP: echo (counted), errors quoting UDP (dropped) and TCP, short quotes. */
        {
                pkt_init(&p);
                pkt_eth(&p, 0x0800, 0, NULL);
                pkt_ipv4(&p, R4, L4, 1, &(struct ip4_opts) { .ttl = 64 });
                pkt_icmp(&p, 8, 0, 0x00010001);
                pkt_zeros(&p, 56);
                pkt_finish(&p, 0);
                save("icmp4-echo", &p);
        }
        icmp4_error("icmp4-unreach-udp", 3, 3, 17, 8);
        icmp4_error("icmp4-ttl-tcp", 11, 0, 6, 20);
        icmp4_error("icmp4-unreach-short-quote", 3, 1, 17, 0);

        /* IPv6: UDP to the DNS rule, the banned /64, extension chains, fragments, ICMPv6. */
        {
                pkt_init(&p);
                pkt_eth(&p, 0x86dd, 0, NULL);
                pkt_ipv6(&p, R6, L6, 17, 64, 0);
                pkt_udp(&p, 5000, 53, 24, 0);
                pkt_finish(&p, 0);
                save("udp6-53", &p);

                pkt_init(&p);
                pkt_eth(&p, 0x86dd, 0, NULL);
                pkt_ipv6(&p, BAD6, L6, 6, 64, 0);
                pkt_tcp(&p, &(struct tcp_opts) { .sport = 1, .dport = 443, .flags = TCP_SYN });
                pkt_finish(&p, 0);
                save("tcp6-from-banned", &p);

                pkt_init(&p);
                pkt_eth(&p, 0x86dd, 0, NULL);
                pkt_ipv6(&p, R6, L6, 44, 64, 0);
                pkt_ipv6_frag(&p, 6, 0, true);
                pkt_bytes(&p, "\x9c\x40\x00\x17\x00\x00\x03\xe8", 8);
                pkt_finish(&p, 0);
                save("frag6-tiny-first", &p);

                pkt_init(&p);
                pkt_eth(&p, 0x86dd, 0, NULL);
                pkt_ipv6(&p, R6, L6, 44, 64, 0);
                pkt_ipv6_frag(&p, 17, 10, false);
                pkt_zeros(&p, 40);
                pkt_finish(&p, 0);
                save("frag6-later", &p);
        }
        chain6("ext6-none-23", NULL, 0, 23);
        chain6("ext6-six", six, 6, 23);
        chain6("ext6-seven", seven, 7, 23);
        chain6("ext6-twelve", twelve, 12, 23);
        icmp6("icmp6-echo", R6, 128, 0, false);
        icmp6("icmp6-echo-from-banned", BAD6, 129, 0, false);
        icmp6("icmp6-unreach-udp", R6, 1, 4, true);
        icmp6("icmp6-too-big", R6, 2, 0, true);

        /* Sequences: what the program remembers from one frame for the next. */
        save_pair("seq-frag4-tiny", "frag4-tiny-first-8", "frag4-tiny-rest");
        save_pair("seq-frag4-tiny-rest-first", "frag4-tiny-rest", "frag4-tiny-first-8");
        save_pair("seq-frag4-udp", "frag4-first-udp-8500", "frag4-last-udp");
        save_pair("seq-frag4-tcp-23", "frag4-first-tcp-23", "frag4-tiny-rest");
        save_pair("seq-frag6-tiny", "frag6-tiny-first", "frag6-later");
        save_pair("seq-tcp4-23-twice", "tcp4-syn-23", "tcp4-syn-23");
        save_pair("seq-tcp4-22-flow", "tcp4-ack-22-counted", "tcp4-ack-22-counted");

        /* Not IP: ARP, LLDP; a bare Ethernet header. */
        {
                pkt_init(&p);
                pkt_eth(&p, 0x0806, 0, NULL);
                pkt_zeros(&p, 28);
                pkt_finish(&p, 60);
                save("arp", &p);

                pkt_init(&p);
                pkt_eth(&p, 0x88cc, 0, NULL);
                pkt_zeros(&p, 30);
                pkt_finish(&p, 0);
                save("lldp", &p);

                pkt_init(&p);
                pkt_eth(&p, 0x0800, 0, NULL);
                pkt_finish(&p, 0);
                save("eth-only-ipv4", &p);
        }
        return 0;
}
