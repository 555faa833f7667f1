/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <string.h>

#include "ban-record.h"

/* Fast enough that a start pays no more than the pass over bytes it reads anyway. */
uint64_t ban_fold(uint64_t h, const void *p, size_t n) {
        const uint8_t *q = p;

        for (; n >= 8; n -= 8, q += 8) {
                uint64_t w;

                memcpy(&w, q, 8);
                h = (h ^ w) * UINT64_C(0x100000001b3);
                h ^= h >> 29;
        }
        for (; n > 0; n--, q++)
                h = (h ^ *q) * UINT64_C(0x100000001b3);
        return h;
}

bool ban_record_cidr_valid(uint8_t family, uint8_t prefixlen) {
        return (family == ADDR_FAMILY_IPV4 && prefixlen <= 32) ||
               (family == ADDR_FAMILY_IPV6 && prefixlen <= 128);
}

void ban_log_header_init(struct ban_log_header *ret) {
        *ret = (struct ban_log_header) {
                .version = BAN_LOG_VERSION,
                .head_size = sizeof(struct ban_record_head),
        };
        memcpy(ret->magic, BAN_LOG_MAGIC, sizeof ret->magic);
}

int ban_log_header_check(const void *p, size_t n) {
        struct ban_log_header want;

        ban_log_header_init(&want);
        if (memcmp(p, &want, n < sizeof want ? n : sizeof want) != 0)
                return -EBADMSG;
        return n < sizeof want ? -EAGAIN : 0;
}

static uint64_t record_checksum(const uint8_t *p, size_t size) {
        return ban_fold(BAN_FOLD_SEED, p + sizeof(uint64_t), size - sizeof(uint64_t));
}

size_t ban_record_encode(void *p, BanRecordType type, const Ban *b, const Cidr *c) {
        size_t len = b && b->reason ? strnlen(b->reason, BAN_REASON_MAX) : 0;
        struct ban_record_head h = {
                .type = (uint8_t) type,
                .reason_len = (uint16_t) len,
        };
        uint8_t *q = p;

        if (b) {
                c = &b->cidr;
                h.origin = b->origin;
                h.policy = b->policy;
                h.id = b->id;
                h.offenses = b->offenses;
                h.created_usec = b->created_usec;
                h.expires_usec = b->expires_usec;
        }
        h.family = c->family;
        h.prefixlen = c->prefixlen;
        memcpy(h.addr, c->addr, sizeof h.addr);
        memcpy(q, &h, sizeof h);
        if (len > 0)
                memcpy(q + sizeof h, b->reason, len);
        q[sizeof h + len] = '\0';
        h.checksum = record_checksum(q, ban_record_size(len));
        memcpy(q, &h.checksum, sizeof h.checksum);
        return ban_record_size(len);
}

size_t ban_record_read(const void *p, BanRecord *ret) {
        const uint8_t *q = p;
        struct ban_record_head h;

        memcpy(&h, q, sizeof h);
        *ret = (BanRecord) {
                .type = (BanRecordType) h.type,
                .ban = {
                        .cidr = { .family = h.family, .prefixlen = h.prefixlen },
                        .id = h.id,
                        .created_usec = h.created_usec,
                        .expires_usec = h.expires_usec,
                        .offenses = h.offenses,
                        .origin = h.origin,
                        .policy = h.policy,
                        .reason = h.reason_len > 0 ? (char *) q + sizeof h : NULL,
                },
                .reason_len = h.reason_len,
        };
        memcpy(ret->ban.cidr.addr, h.addr, sizeof h.addr);
        return ban_record_size(h.reason_len);
}

int ban_record_decode(const void *p, size_t n, BanRecord *ret, size_t *ret_size) {
        const uint8_t *q = p;
        struct ban_record_head h;
        size_t size;

        if (n < sizeof h)
                return -EAGAIN;
        memcpy(&h, q, sizeof h);
        size = ban_record_size(h.reason_len);
        if (size > n)
                return -EAGAIN;
        if (record_checksum(q, size) != h.checksum)
                return -EBADMSG;
        /* A whole record that does not make sense was not written by this code. */
        if (h.type == 0 || h.type >= _BAN_RECORD_MAX || h.reason_len > BAN_REASON_MAX ||
            q[size - 1] != '\0' || memchr(q + sizeof h, '\0', h.reason_len) ||
            !ban_record_cidr_valid(h.family, h.prefixlen) ||
            (h.type == BAN_RECORD_BAN && (h.id == 0 || h.origin == 0 ||
                                          h.origin >= _BAN_ORIGIN_MAX)))
                return -EBADMSG;
        *ret_size = ban_record_read(p, ret);
        return 0;
}
