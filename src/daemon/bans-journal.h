/* SPDX-License-Identifier: MIT */
#pragma once

#include "bans.h"

/*
 * The journal side of bans: one record per ban, unban, expiry and policy trigger, each with
 * its MESSAGE_ID (systemd/packetscope.catalog) and the fields ADDRESS=, ORIGIN=, REASON=,
 * UNTIL=, POLICY=, OFFENSES=; and Bans.History, which reads them back with sd-journal.
 */

void bans_log_banned(const Ban *b, bool extended);
void bans_log_unbanned(const Ban *b, BanEnd why);
void bans_log_policy(const char *policy, const char *address, bool shadow, uint32_t value,
                     uint32_t offenses, uint64_t until_usec);

typedef struct BanHistoryQuery {
        const char *address; /* only this ADDRESS= (as written), NULL for all */
        uint64_t since_usec; /* CLOCK_REALTIME; 0 for all */
        uint32_t limit;
} BanHistoryQuery;

typedef struct BanHistoryEntry {
        uint64_t time_usec;
        char *event; /* ban, unban, expiry, policy */
        char *address, *origin, *reason, *until, *policy, *message;
        uint32_t offenses;
} BanHistoryEntry;

/* Newest first. -ENOMEDIUM when the daemon does not log to a journal. */
int bans_history(const BanHistoryQuery *q, BanHistoryEntry **ret, size_t *ret_n,
                 char **ret_error);
void bans_history_free(BanHistoryEntry *e, size_t n);
void bans_history_free_one(BanHistoryEntry *e);
