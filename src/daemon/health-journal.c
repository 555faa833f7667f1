/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <string.h>

#include "health.h"
#include "journal-query.h"
#include "log.h"
#include "util.h"

/* What names one anomaly in every run of the daemon: its start time and its id. */
typedef struct AnomalyKey {
        uint64_t started_usec;
        uint32_t id;
} AnomalyKey;

static bool key_in(const AnomalyKey *keys, size_t n, AnomalyKey k) {
        for (size_t i = 0; i < n; i++)
                if (keys[i].started_usec == k.started_usec && keys[i].id == k.id)
                        return true;
        return false;
}

static bool key_known(const AnomalyJournalQuery *q, AnomalyKey k) {
        for (size_t i = 0; i < q->n_known; i++)
                if (q->known[i]->started_usec == k.started_usec && q->known[i]->id == k.id)
                        return true;
        return false;
}

static int field_u64(sd_journal *j, const char *name, uint64_t *ret) {
        _cleanup_free_ char *v = NULL;
        int r;

        r = journal_query_field(j, name, &v);
        return r < 0 ? r : safe_atou64(v, ret);
}

static int field_double(sd_journal *j, const char *name, double *ret) {
        _cleanup_free_ char *v = NULL;
        char *end;
        int r;

        r = journal_query_field(j, name, &v);
        if (r < 0)
                return r;
        errno = 0;
        *ret = strtod(v, &end);
        return errno != 0 || end == v || *end != '\0' ? -EINVAL : 0;
}

/* TOP_PROCESS=comm[pid] and TOP_UNIT=name as the first consumers of their lists. */
static void read_top(sd_journal *j, Anomaly *a) {
        _cleanup_free_ char *p = NULL, *u = NULL;
        char *bracket;
        uint32_t pid;

        if (journal_query_field(j, "TOP_PROCESS", &p) >= 0 && (bracket = strrchr(p, '[')) &&
            endswith(bracket, "]")) {
                bracket[strlen(bracket) - 1] = '\0';
                *bracket = '\0';
                if (safe_atou32(bracket + 1, &pid) >= 0 && *p) {
                        a->processes[0] = (HealthProcess) { .pid = (int) pid };
                        snprintf(a->processes[0].comm, sizeof(a->processes[0].comm), "%s", p);
                        a->n_processes = 1;
                }
        }
        if (journal_query_field(j, "TOP_UNIT", &u) >= 0 && *u) {
                snprintf(a->units[0].name, sizeof(a->units[0].name), "%s", u);
                a->n_units = 1;
        }
}

int health_journal_history(const AnomalyJournalQuery *q, Anomaly **ret, size_t *ret_n,
                           AnomalyJournalInfo *ret_info, char **ret_error) {
        static const char *const ids[] = { PS_MESSAGE_ANOMALY_STARTED, PS_MESSAGE_ANOMALY_ENDED };
        _cleanup_(journal_query_closep) sd_journal *j = NULL;
        _cleanup_free_ Anomaly *out = NULL;
        _cleanup_free_ AnomalyKey *ended = NULL;
        _cleanup_free_ char *also = NULL;
        AnomalyJournalInfo info = { .complete = true };
        size_t n = 0, n_ended = 0;
        uint64_t t;
        int r;

        assert(q);
        assert(ret);
        assert(ret_n);
        if (q->kind >= 0 &&
            asprintf(&also, "HEALTH_KIND=%s", health_kind_to_string(q->kind)) < 0) {
                also = NULL; /* asprintf() leaves it undefined, and the cleanup frees it */
                return -ENOMEM;
        }
        r = journal_query_open(ids, ELEMENTSOF(ids), also, &j, ret_error);
        if (r < 0)
                return r;
        out = calloc(MAX(q->limit, 1u), sizeof(Anomaly));
        ended = calloc(HEALTH_JOURNAL_SCAN_MAX, sizeof(AnomalyKey));
        if (!out || !ended)
                return -ENOMEM;

        /* Newest first, so an anomaly's end record comes before its start record: the end
         * alone makes a closed anomaly; a start is only reported when no end was seen. */
        while (n < q->limit && (r = journal_query_previous(j, &t)) > 0) {
                _cleanup_free_ char *mid = NULL, *kind = NULL;
                Anomaly a = {};
                AnomalyKey k;
                uint32_t id;
                bool is_end;
                int kd = -1;

                if (q->since_usec && t < q->since_usec)
                        break;
                if (info.entries >= HEALTH_JOURNAL_SCAN_MAX) {
                        info.complete = false;
                        break;
                }
                info.entries++;
                if (journal_query_field(j, "MESSAGE_ID", &mid) < 0)
                        continue;
                is_end = streq(mid, PS_MESSAGE_ANOMALY_ENDED);
                /* Records of an older daemon, without the start time, cannot be matched. */
                if (field_u64(j, "ANOMALY_STARTED_USEC", &k.started_usec) < 0 ||
                    journal_query_field(j, "ANOMALY_ID", &kind) < 0 ||
                    safe_atou32(kind, &id) < 0)
                        continue;
                k.id = id;
                kind = mfree(kind);
                if (journal_query_field(j, "HEALTH_KIND", &kind) < 0)
                        continue;
                for (int i = 0; i < _HEALTH_KIND_MAX; i++)
                        if (streq(kind, health_kind_to_string(i)))
                                kd = i;
                if (kd < 0)
                        continue;
                if (is_end) {
                        if (key_in(ended, n_ended, k))
                                continue;
                        ended[n_ended++] = k;
                } else if (key_in(ended, n_ended, k))
                        continue;
                if (key_known(q, k) || (q->kind >= 0 && kd != q->kind))
                        continue;

                a.id = k.id;
                a.kind = kd;
                a.started_usec = k.started_usec;
                (void) field_double(j, "HEALTH_THRESHOLD", &a.threshold);
                if (is_end) {
                        if (field_u64(j, "ANOMALY_ENDED_USEC", &a.ended_usec) < 0)
                                a.ended_usec = t;
                        (void) field_double(j, "HEALTH_VALUE", &a.peak);
                        if (field_double(j, "HEALTH_LAST_VALUE", &a.value) < 0)
                                a.value = a.peak;
                } else {
                        (void) field_double(j, "HEALTH_VALUE", &a.value);
                        a.peak = a.value;
                }
                read_top(j, &a);
                out[n++] = a;
        }
        if (r < 0)
                return error_setf(ret_error, r, "reading the journal failed: %s", strerror(-r));
        *ret = TAKE_PTR(out);
        *ret_n = n;
        if (ret_info)
                *ret_info = info;
        return 0;
}
