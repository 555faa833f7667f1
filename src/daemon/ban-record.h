/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bans.h"

/*
 * The records of bans.log, binary and in the host's byte order (the file never leaves the
 * machine; Export() gives the portable form). The file starts with a header naming the format;
 * each record is a fixed head, the same fields as a ban of the snapshot, followed by the bytes
 * of the reason and its NUL. A checksum over the record catches one cut short by a crash
 * (only the last can be: a failed append is cut off again) and one changed on disk.
 */

#define BAN_LOG_MAGIC "PSBANLG\n"
#define BAN_LOG_VERSION 1u

typedef enum BanRecordType {
        BAN_RECORD_BAN = 1,          /* the ban as it is now (made, extended or taken over) */
        BAN_RECORD_UNBAN = 2,        /* removed over the bus */
        BAN_RECORD_EXPIRE = 3,       /* reaped at its expiry */
        BAN_RECORD_ALLOW_ADD = 4,    /* allowlist entry added */
        BAN_RECORD_ALLOW_REMOVE = 5, /* allowlist entry removed */
        _BAN_RECORD_MAX,
} BanRecordType;

struct ban_log_header {
        char magic[8]; /* BAN_LOG_MAGIC, without a NUL */
        uint32_t version;
        uint32_t head_size; /* sizeof(struct ban_record_head) */
};

struct ban_record_head {
        uint64_t checksum; /* ban_fold() from BAN_FOLD_SEED over the rest of the record */
        uint8_t type;      /* BanRecordType */
        uint8_t family, prefixlen, origin;
        uint8_t policy;
        uint8_t pad;
        uint16_t reason_len; /* the bytes of the reason that follow, then a NUL */
        uint32_t id;
        uint32_t offenses;
        uint32_t addr[4];
        uint64_t created_usec, expires_usec;
};

_Static_assert(sizeof(struct ban_log_header) == 16, "ban log header layout");
_Static_assert(sizeof(struct ban_record_head) == 56, "ban record layout");

/* A 64-bit checksum folded eight bytes at a step (the snapshot uses it too). */
#define BAN_FOLD_SEED UINT64_C(0xcbf29ce484222325)
uint64_t ban_fold(uint64_t h, const void *p, size_t n);

/* The bytes of one record with a reason of reason_len bytes. */
static inline size_t ban_record_size(size_t reason_len) {
        return sizeof(struct ban_record_head) + reason_len + 1;
}

/* An address family and prefix length a ban or an allowlist entry can have. */
bool ban_record_cidr_valid(uint8_t family, uint8_t prefixlen);

void ban_log_header_init(struct ban_log_header *ret);
/* 0 when p holds the header of this version; -EAGAIN when n is too short to tell but what
 * there is matches; -EBADMSG otherwise. */
int ban_log_header_check(const void *p, size_t n);

/* Writes the record of type about b (a ban record) or c (the others; b NULL) at p, which has
 * ban_record_size() of the reason's length (at most BAN_REASON_MAX) bytes. Returns its size. */
size_t ban_record_encode(void *p, BanRecordType type, const Ban *b, const Cidr *c);

typedef struct BanRecord {
        BanRecordType type;
        Ban ban;            /* cidr alone for the others; reason points into the record */
        size_t reason_len;
} BanRecord;

/* Reads the record at the start of p[0..n). 0 with *ret_size its bytes; -EAGAIN when it
 * reaches past n (cut short); -EBADMSG when its checksum or a field is wrong. */
int ban_record_decode(const void *p, size_t n, BanRecord *ret, size_t *ret_size);
/* A record that ban_record_decode() accepted, read again without its checks (the checksum
 * is the most of a replay's second pass). Returns its size. */
size_t ban_record_read(const void *p, BanRecord *ret);
