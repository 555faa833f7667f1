/* SPDX-License-Identifier: MIT */
/*
 * The records of the ban journal: what is written reads back the same, a record cut short or
 * changed by one bit is told apart from a good one, and the layout on disk stays put (a
 * journal written by one version is replayed by the next).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "ban-record.h"

static bool same_cidr(const Cidr *a, const Cidr *b) {
        return a->family == b->family && a->prefixlen == b->prefixlen &&
               memcmp(a->addr, b->addr, sizeof a->addr) == 0;
}

static Cidr cidr(const char *s) {
        Cidr c;

        cr_assert_eq(cidr_parse(s, true, &c), 0, "%s", s);
        return c;
}

Test(ban_record, layout) {
        /* Changing these breaks every journal on disk: a new version instead. */
        cr_assert_eq(sizeof(struct ban_record_head), 56);
        cr_assert_eq(sizeof(struct ban_log_header), 16);
        cr_assert_eq(ban_record_size(0), 57);
        cr_assert_eq(ban_record_size(5), 62);
}

Test(ban_record, ban_round_trip) {
        char reason[] = "ssh brute force";
        Ban b = {
                .cidr = cidr("2001:db8::/48"),
                .id = 77,
                .created_usec = 1700000000123456,
                .expires_usec = 1700003600000000,
                .offenses = 3,
                .origin = BAN_ORIGIN_AUTO,
                .policy = 2,
                .reason = reason,
        };
        uint8_t buf[512];
        BanRecord r;
        size_t n, used = 0;

        n = ban_record_encode(buf, BAN_RECORD_BAN, &b, NULL);
        cr_assert_eq(n, 56 + 15 + 1);
        cr_assert_eq(ban_record_decode(buf, n, &r, &used), 0);
        cr_assert_eq(used, n);
        cr_assert_eq(r.type, BAN_RECORD_BAN);
        cr_assert(same_cidr(&r.ban.cidr, &b.cidr));
        cr_assert_eq(r.ban.id, 77);
        cr_assert_eq(r.ban.created_usec, 1700000000123456);
        cr_assert_eq(r.ban.expires_usec, 1700003600000000);
        cr_assert_eq(r.ban.offenses, 3);
        cr_assert_eq(r.ban.origin, BAN_ORIGIN_AUTO);
        cr_assert_eq(r.ban.policy, 2);
        cr_assert_eq(r.reason_len, 15);
        /* The reason is read in place, NUL-terminated. */
        cr_assert_str_eq(r.ban.reason, "ssh brute force");
        cr_assert_eq((uint8_t *) r.ban.reason, buf + 56);

        /* The replay's second pass reads it again without the checks: the same record. */
        {
                BanRecord again;

                cr_assert_eq(ban_record_read(buf, &again), n);
                cr_assert_eq(memcmp(&again, &r, sizeof r), 0);
        }
}

Test(ban_record, cidr_records_and_no_reason) {
        static const BanRecordType types[] = { BAN_RECORD_UNBAN, BAN_RECORD_EXPIRE,
                                               BAN_RECORD_ALLOW_ADD, BAN_RECORD_ALLOW_REMOVE };
        Cidr c = cidr("192.0.2.0/24");
        uint8_t buf[4 * 57];
        size_t off = 0, used;
        BanRecord r;

        for (size_t i = 0; i < 4; i++)
                off += ban_record_encode(buf + off, types[i], NULL, &c);
        cr_assert_eq(off, 4 * 57);
        off = 0;
        for (size_t i = 0; i < 4; i++, off += used) {
                cr_assert_eq(ban_record_decode(buf + off, sizeof buf - off, &r, &used), 0);
                cr_assert_eq(r.type, types[i]);
                cr_assert_eq(r.ban.cidr.family, ADDR_FAMILY_IPV4);
                cr_assert_eq(r.ban.cidr.prefixlen, 24);
                cr_assert(same_cidr(&r.ban.cidr, &c));
                cr_assert_null(r.ban.reason);
                cr_assert_eq(used, 57);
        }
}

Test(ban_record, cut_short_and_flipped_bits) {
        char reason[] = "scan";
        Ban b = { .cidr = cidr("198.51.100.7"), .id = 1, .origin = BAN_ORIGIN_MANUAL,
                  .reason = reason };
        uint8_t buf[128];
        size_t n = ban_record_encode(buf, BAN_RECORD_BAN, &b, NULL), used;
        BanRecord r;

        /* Every length short of the whole record: cut short, never read as a record. */
        for (size_t k = 0; k < n; k++)
                cr_assert_eq(ban_record_decode(buf, k, &r, &used), -EAGAIN, "length %zu", k);
        /* Any single bit changed after the checksum: refused. */
        for (size_t i = 8; i < n; i++) {
                uint8_t copy[128];

                memcpy(copy, buf, n);
                copy[i] ^= 0x10;
                int e = ban_record_decode(copy, n, &r, &used);
                /* The reason's length changed may make it reach past the end instead. */
                cr_assert(e == -EBADMSG || e == -EAGAIN, "byte %zu: %d", i, e);
                if (i != offsetof(struct ban_record_head, reason_len) &&
                    i != offsetof(struct ban_record_head, reason_len) + 1)
                        cr_assert_eq(e, -EBADMSG, "byte %zu", i);
        }
        /* And in the checksum itself. */
        buf[0] ^= 1;
        cr_assert_eq(ban_record_decode(buf, n, &r, &used), -EBADMSG);
}

Test(ban_record, nonsense_with_a_good_checksum) {
        Cidr c = cidr("10.0.0.0/8");
        uint8_t buf[64];

        ban_record_encode(buf, BAN_RECORD_UNBAN, NULL, &c);
        /* A ban record without an id or origin was not written by the daemon. */
        Ban zero = { .cidr = c };
        size_t n = ban_record_encode(buf, BAN_RECORD_BAN, &zero, NULL), used;
        BanRecord r;

        cr_assert_eq(ban_record_decode(buf, n, &r, &used), -EBADMSG);
}

Test(ban_record, header) {
        struct ban_log_header h;

        ban_log_header_init(&h);
        cr_assert_eq(memcmp(h.magic, "PSBANLG\n", 8), 0);
        cr_assert_eq(h.version, 1);
        cr_assert_eq(ban_log_header_check(&h, sizeof h), 0);
        cr_assert_eq(ban_log_header_check(&h, 5), -EAGAIN);
        cr_assert_eq(ban_log_header_check("+{\"address\"", 11), -EBADMSG);
        h.version = 2;
        cr_assert_eq(ban_log_header_check(&h, sizeof h), -EBADMSG);
}
