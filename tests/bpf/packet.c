/* SPDX-License-Identifier: MIT */
#include <arpa/inet.h>
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "packet.h"

/* Test inputs are literals: a typo is a bug in the test, so stop right there. */
static void addr(int family, const char *text, uint8_t *at) {
        if (inet_pton(family, text, at) != 1) {
                fprintf(stderr, "bad address literal '%s'\n", text);
                abort();
        }
}

static uint8_t *grow(struct pkt *p, size_t n) {
        uint8_t *at;

        assert(p->len + n <= PKT_MAX);
        at = p->data + p->len;
        memset(at, 0, n);
        p->len += n;
        return at;
}

static void put16(uint8_t *at, uint16_t v) {
        at[0] = (uint8_t) (v >> 8);
        at[1] = (uint8_t) v;
}

static void put32(uint8_t *at, uint32_t v) {
        put16(at, (uint16_t) (v >> 16));
        put16(at + 2, (uint16_t) v);
}

/* Remembers a 16-bit length field at `field` that pkt_finish() sets to end - from - minus. */
static void fixup(struct pkt *p, size_t field, size_t from, size_t minus) {
        if (p->quoting)
                return;
        assert(p->n_fix < PKT_MAX_FIXUPS);
        p->fix[p->n_fix].field = field;
        p->fix[p->n_fix].from = from;
        p->fix[p->n_fix].minus = minus;
        p->n_fix++;
}

void pkt_init(struct pkt *p) {
        memset(p, 0, sizeof(*p));
}

void pkt_bytes(struct pkt *p, const void *bytes, size_t n) {
        memcpy(grow(p, n), bytes, n);
}

void pkt_zeros(struct pkt *p, size_t n) {
        (void) grow(p, n);
}

void pkt_eth(struct pkt *p, uint16_t ethertype, size_t n_tags, const uint16_t *tpids) {
        static const uint8_t macs[12] = { 0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0x02 };
        uint8_t *at = grow(p, 14);

        memcpy(at, macs, sizeof(macs));
        put16(at + 12, n_tags ? tpids[0] : ethertype);
        for (size_t i = 0; i < n_tags; i++) {
                at = grow(p, 4);
                put16(at, (uint16_t) (100 + i)); /* VLAN id */
                put16(at + 2, i + 1 < n_tags ? tpids[i + 1] : ethertype);
        }
}

void pkt_ipv4(struct pkt *p, const char *src, const char *dst, uint8_t proto,
              const struct ip4_opts *o) {
        static const struct ip4_opts defaults = { .ttl = 64 };
        size_t start = p->len, hlen;
        uint8_t *at;
        int ihl;

        if (!o)
                o = &defaults;
        assert(o->option_bytes % 4 == 0 && o->option_bytes <= 40);
        hlen = 20 + o->option_bytes;
        ihl = o->ihl ? o->ihl : (int) (hlen / 4);
        at = grow(p, hlen);
        at[0] = (uint8_t) ((o->version ? o->version : 4) << 4 | (ihl & 0xf));
        put16(at + 4, o->id);
        put16(at + 6, o->frag_off);
        at[8] = o->ttl;
        at[9] = proto;
        addr(AF_INET, src, at + 12);
        addr(AF_INET, dst, at + 16);
        memset(at + 20, 1, o->option_bytes); /* IPOPT_NOOP */
        if (o->tot_len)
                put16(at + 2, o->tot_len);
        else {
                assert(!p->quoting);
                fixup(p, start + 2, start, 0);
        }
}

void pkt_ipv6(struct pkt *p, const char *src, const char *dst, uint8_t nexthdr, uint8_t hop_limit,
              uint16_t payload_len) {
        size_t start = p->len;
        uint8_t *at = grow(p, 40);

        at[0] = 6 << 4;
        at[6] = nexthdr;
        at[7] = hop_limit;
        addr(AF_INET6, src, at + 8);
        addr(AF_INET6, dst, at + 24);
        if (payload_len)
                put16(at + 4, payload_len);
        else {
                assert(!p->quoting);
                fixup(p, start + 4, start, 40);
        }
}

void pkt_ipv6_ext(struct pkt *p, uint8_t type, uint8_t nexthdr, size_t len) {
        uint8_t *at;

        if (type == 51) {
                assert(len >= 12 && len % 4 == 0);
                at = grow(p, len);
                at[1] = (uint8_t) (len / 4 - 2);
        } else {
                assert(len >= 8 && len % 8 == 0);
                at = grow(p, len);
                at[1] = (uint8_t) (len / 8 - 1);
                if (type == 0 || type == 60) {
                        /* One PadN option filling the rest. */
                        at[2] = 1;
                        at[3] = (uint8_t) (len - 4);
                } else if (type == 43) {
                        at[2] = 0; /* routing type 0, segments left 0 */
                }
        }
        at[0] = nexthdr;
}

void pkt_ipv6_frag(struct pkt *p, uint8_t nexthdr, uint16_t offset, bool more) {
        uint8_t *at = grow(p, 8);

        at[0] = nexthdr;
        put16(at + 2, (uint16_t) (offset << 3 | (more ? 1 : 0)));
        put32(at + 4, 0x12345678);
}

void pkt_tcp(struct pkt *p, const struct tcp_opts *t) {
        size_t doff = t->doff ? t->doff : 5;
        uint8_t *at = grow(p, doff * 4);

        put16(at, t->sport);
        put16(at + 2, t->dport);
        put32(at + 4, t->seq);
        put32(at + 8, t->ack);
        at[12] = (uint8_t) (doff << 4);
        at[13] = t->flags;
        put16(at + 14, t->window);
        memset(at + 20, 1, doff * 4 - 20); /* TCPOPT_NOP */
        memset(grow(p, t->payload), 'x', t->payload);
}

void pkt_udp(struct pkt *p, uint16_t sport, uint16_t dport, size_t payload, uint16_t len) {
        size_t start = p->len;
        uint8_t *at = grow(p, 8);

        put16(at, sport);
        put16(at + 2, dport);
        if (len)
                put16(at + 4, len);
        else if (p->quoting)
                put16(at + 4, (uint16_t) (8 + payload));
        else
                fixup(p, start + 4, start, 0);
        memset(grow(p, payload), 'u', payload);
}

void pkt_icmp(struct pkt *p, uint8_t type, uint8_t code, uint32_t rest) {
        uint8_t *at = grow(p, 8);

        at[0] = type;
        at[1] = code;
        put32(at + 4, rest);
}

void pkt_quote_begin(struct pkt *p) {
        p->quoting = true;
}

void pkt_finish(struct pkt *p, size_t min_len) {
        for (size_t i = 0; i < p->n_fix; i++)
                put16(p->data + p->fix[i].field,
                      (uint16_t) (p->len - p->fix[i].from - p->fix[i].minus));
        if (p->len < min_len)
                pkt_zeros(p, min_len - p->len);
}
