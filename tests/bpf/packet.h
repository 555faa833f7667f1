/* SPDX-License-Identifier: MIT */
/*
 * Crafted frames for the XDP program's tests: a frame is built outside in (Ethernet, VLAN tags,
 * IP, extension headers, transport), and pkt_finish() fills in the length fields of the outer
 * headers. Headers appended between pkt_quote_begin() and the end are an ICMP error's quote:
 * their lengths are given explicitly (they describe the original datagram, not the quote).
 * Checksums are left zero: the program under test does not read them.
 */
#ifndef PACKETSCOPE_TEST_PACKET_H
#define PACKETSCOPE_TEST_PACKET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PKT_MAX 1500
#define PKT_MAX_FIXUPS 8

struct pkt {
        uint8_t data[PKT_MAX];
        size_t len;
        bool quoting;
        /* Length fields to fill in: where, how wide a span, from which offset. */
        struct {
                size_t field;
                size_t from;
                size_t minus;
        } fix[PKT_MAX_FIXUPS];
        size_t n_fix;
};

struct ip4_opts {
        uint8_t ttl;
        uint16_t id;
        uint16_t frag_off;      /* host order: flags << 13 | offset in 8-byte units */
        uint8_t option_bytes;   /* a multiple of 4, up to 40: NOP-filled options */
        uint16_t tot_len;       /* 0: computed by pkt_finish (quoted headers: required) */
        int8_t ihl;             /* 0: from option_bytes; otherwise forced (malformed tests) */
        uint8_t version;        /* 0: 4 */
};

#define IP4_MF 0x2000

void pkt_init(struct pkt *p);
void pkt_bytes(struct pkt *p, const void *bytes, size_t n);
void pkt_zeros(struct pkt *p, size_t n);

/* Ethernet with `n_tags` VLAN tags of the given TPIDs (802.1Q 0x8100, 802.1ad 0x88a8). */
void pkt_eth(struct pkt *p, uint16_t ethertype, size_t n_tags, const uint16_t *tpids);

void pkt_ipv4(struct pkt *p, const char *src, const char *dst, uint8_t proto,
              const struct ip4_opts *o);
void pkt_ipv6(struct pkt *p, const char *src, const char *dst, uint8_t nexthdr, uint8_t hop_limit,
              uint16_t payload_len /* 0: computed (outer) */);

/* An extension header of `len` bytes (HBH/routing/destination: multiple of 8; AH: of 4). */
void pkt_ipv6_ext(struct pkt *p, uint8_t type, uint8_t nexthdr, size_t len);
/* A fragment header: offset in 8-byte units, the M flag. */
void pkt_ipv6_frag(struct pkt *p, uint8_t nexthdr, uint16_t offset, bool more);

#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_RST 0x04
#define TCP_PSH 0x08
#define TCP_ACK 0x10

struct tcp_opts {
        uint16_t sport, dport;
        uint32_t seq, ack;
        uint8_t flags;
        uint16_t window;
        uint8_t doff;           /* 0: 5, or more with NOP options */
        size_t payload;
};

void pkt_tcp(struct pkt *p, const struct tcp_opts *t);
/* UDP with `payload` bytes; the length field is computed unless `len` is nonzero. */
void pkt_udp(struct pkt *p, uint16_t sport, uint16_t dport, size_t payload, uint16_t len);
/* The 8-byte ICMP / ICMPv6 header; the rest is the caller's (echo data or a quote). */
void pkt_icmp(struct pkt *p, uint8_t type, uint8_t code, uint32_t rest);

/* What follows is an ICMP error's quote: no automatic lengths. */
void pkt_quote_begin(struct pkt *p);

/* Fills in the outer length fields; pads with zeros to `min_len` (Ethernet padding). */
void pkt_finish(struct pkt *p, size_t min_len);

#endif
