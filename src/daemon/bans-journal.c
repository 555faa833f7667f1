/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <time.h>

#include "bans-journal.h"
#include "journal-query.h"
#include "log.h"
#include "util.h"

/* UNTIL= as the journal keeps it: an ISO 8601 UTC time, or "never". */
static void format_until(uint64_t usec, char buf[static 32]) {
        time_t t = (time_t) (usec / USEC_PER_SEC);
        struct tm tm;

        if (usec == 0 || !gmtime_r(&t, &tm) || strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
                snprintf(buf, 32, "never");
}

void bans_log_banned(const Ban *b, bool extended) {
        char a[CIDR_STRING_MAX], o[32], until[32];
        char f_addr[CIDR_STRING_MAX + 16], f_origin[48], f_until[48], f_off[32], f_policy[32];
        _cleanup_free_ char *f_reason = NULL;
        const char *policy = b->origin == BAN_ORIGIN_AUTO ? ban_policy_to_string(b->policy) : NULL;

        const char *origin = ban_origin_to_string(b, o, sizeof o);

        cidr_to_string(true, &b->cidr, a);
        format_until(b->expires_usec, until);
        snprintf(f_addr, sizeof f_addr, "ADDRESS=%s", a);
        snprintf(f_origin, sizeof f_origin, "ORIGIN=%s", origin);
        snprintf(f_until, sizeof f_until, "UNTIL=%s", until);
        snprintf(f_off, sizeof f_off, "OFFENSES=%u", b->offenses);
        snprintf(f_policy, sizeof f_policy, "POLICY=%s", policy ? policy : "");
        if (asprintf(&f_reason, "REASON=%s", b->reason ? b->reason : "") < 0)
                f_reason = NULL;
        {
                const char *fields[] = { f_addr, f_origin, f_until, f_off, f_reason, NULL, NULL };

                if (!f_reason)
                        fields[4] = NULL;
                else if (policy)
                        fields[5] = f_policy;
                log_struct_fields(LOG_NOTICE, 0, PS_MESSAGE_BAN, NULL, fields,
                                  "%s %s (%s) until %s%s%s; offense %u", a,
                                  extended ? "banned again" : "banned", origin, until,
                                  b->reason ? ": " : "", b->reason ? b->reason : "", b->offenses);
        }
}

void bans_log_unbanned(const Ban *b, BanEnd why) {
        char a[CIDR_STRING_MAX], o[32], until[32];
        char f_addr[CIDR_STRING_MAX + 16], f_origin[48], f_until[48], f_off[32];
        const char *const fields[] = { f_addr, f_origin, f_until, f_off, NULL };

        const char *origin = ban_origin_to_string(b, o, sizeof o);

        cidr_to_string(true, &b->cidr, a);
        format_until(b->expires_usec, until);
        snprintf(f_addr, sizeof f_addr, "ADDRESS=%s", a);
        snprintf(f_origin, sizeof f_origin, "ORIGIN=%s", origin);
        snprintf(f_until, sizeof f_until, "UNTIL=%s", until);
        snprintf(f_off, sizeof f_off, "OFFENSES=%u", b->offenses);
        if (why == BAN_END_EXPIRED)
                log_struct_fields(LOG_INFO, 0, PS_MESSAGE_BAN_EXPIRED, NULL, fields,
                                  "The ban of %s (%s) expired at %s", a, origin, until);
        else
                log_struct_fields(LOG_NOTICE, 0, PS_MESSAGE_UNBAN, NULL, fields,
                                  "%s unbanned (was %s, until %s)", a, origin, until);
}

void bans_log_policy(const char *policy, const char *address, bool shadow, uint32_t value,
                     uint32_t offenses, uint64_t until_usec) {
        char until[32], f_addr[CIDR_STRING_MAX + 16], f_policy[48], f_off[32], f_until[48];
        char f_origin[64];
        const char *const fields[] = { f_addr, f_policy, f_off, f_until, f_origin, NULL };

        format_until(until_usec, until);
        snprintf(f_addr, sizeof f_addr, "ADDRESS=%s", address);
        snprintf(f_policy, sizeof f_policy, "POLICY=%s", policy);
        snprintf(f_off, sizeof f_off, "OFFENSES=%u", offenses);
        snprintf(f_until, sizeof f_until, "UNTIL=%s", shadow ? "" : until);
        snprintf(f_origin, sizeof f_origin, "ORIGIN=auto:%s", policy);
        log_struct_fields(LOG_NOTICE, 0, PS_MESSAGE_BAN_POLICY, NULL, fields,
                          "Policy %s %s %s (value %u, offense %u)", policy,
                          shadow ? "would have banned (shadow mode)" : "banned", address, value,
                          offenses);
}

/* ------------------------------------------------------------------------------------------ */
/* History */

static const struct {
        const char *id, *event;
} history_ids[] = {
        { PS_MESSAGE_BAN, "ban" },
        { PS_MESSAGE_UNBAN, "unban" },
        { PS_MESSAGE_BAN_EXPIRED, "expiry" },
        { PS_MESSAGE_BAN_POLICY, "policy" },
};

void bans_history_free(BanHistoryEntry *e, size_t n) {
        if (!e)
                return;
        for (size_t i = 0; i < n; i++)
                bans_history_free_one(&e[i]);
        free(e);
}

int bans_history(const BanHistoryQuery *q, BanHistoryEntry **ret, size_t *ret_n,
                 char **ret_error) {
        const char *ids[ELEMENTSOF(history_ids)];
        _cleanup_(journal_query_closep) sd_journal *j = NULL;
        _cleanup_free_ char *also = NULL;
        BanHistoryEntry *out = NULL;
        size_t n = 0;
        uint64_t t;
        int r;

        for (size_t i = 0; i < ELEMENTSOF(history_ids); i++)
                ids[i] = history_ids[i].id;
        if (q->address && asprintf(&also, "ADDRESS=%s", q->address) < 0)
                return -ENOMEM;
        r = journal_query_open(ids, ELEMENTSOF(ids), also, &j, ret_error);
        if (r < 0)
                return r;
        out = calloc(q->limit + 1, sizeof(BanHistoryEntry));
        if (!out)
                return -ENOMEM;
        /* Newest first: what an admin asks first is what happened last. */
        while (n < q->limit && (r = journal_query_previous(j, &t)) > 0) {
                BanHistoryEntry e = {};
                _cleanup_free_ char *mid = NULL, *off = NULL;

                if (q->since_usec && t < q->since_usec)
                        break;
                if (journal_query_field(j, "MESSAGE_ID", &mid) < 0)
                        continue;
                for (size_t i = 0; i < ELEMENTSOF(history_ids); i++)
                        if (streq(mid, history_ids[i].id))
                                e.event = strdup(history_ids[i].event);
                if (!e.event)
                        continue;
                e.time_usec = t;
                (void) journal_query_field(j, "ADDRESS", &e.address);
                if (q->address && !streq_ptr(q->address, e.address)) {
                        bans_history_free_one(&e);
                        continue;
                }
                (void) journal_query_field(j, "ORIGIN", &e.origin);
                (void) journal_query_field(j, "REASON", &e.reason);
                (void) journal_query_field(j, "UNTIL", &e.until);
                (void) journal_query_field(j, "POLICY", &e.policy);
                (void) journal_query_field(j, "MESSAGE", &e.message);
                if (journal_query_field(j, "OFFENSES", &off) >= 0)
                        (void) safe_atou32(off, &e.offenses);
                out[n++] = e;
        }
        if (r < 0) {
                bans_history_free(out, n);
                return error_setf(ret_error, r, "reading the journal failed: %s", strerror(-r));
        }
        *ret = out;
        *ret_n = n;
        return 0;
}

void bans_history_free_one(BanHistoryEntry *e) {
        free(e->event);
        free(e->address);
        free(e->origin);
        free(e->reason);
        free(e->until);
        free(e->policy);
        free(e->message);
        *e = (BanHistoryEntry) {};
}
