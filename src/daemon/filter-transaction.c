/* SPDX-License-Identifier: MIT */
#include <time.h>

#include "filter-transaction.h"
#include "log.h"
#include "util.h"

FilterTransaction *filter_transaction_free(FilterTransaction *t) {
        if (!t)
                return NULL;
        sd_event_source_unref(t->timer);
        filter_list_done(&t->rollback);
        free(t->path);
        free(t);
        return NULL;
}

int filter_transaction_finish(FilterStore *s, bool confirmed, const char *why,
                              char **ret_error) {
        FilterTransaction *t;
        _cleanup_free_ char *err = NULL;
        int r;

        assert(s);
        assert(why);
        if (!s->transaction)
                return 0;
        if (confirmed) {
                /* Confirmed means stored: if filters.json cannot take the set, the transaction
                 * stays open (and rolls back at its deadline unless a later Confirm works). */
                r = filter_store_save(s, ret_error);
                if (r < 0)
                        return r;
        }
        t = TAKE_PTR(s->transaction);
        if (confirmed) {
                log_struct_internal(LOG_INFO, 0, PS_MESSAGE_FILTERS_CHANGED, NULL,
                                    "Transaction %s confirmed; the new rule set is kept", t->path);
        } else {
                /* filters.json still holds this set (an open transaction is never written and
                 * blocks every other change), so a state directory that cannot be written does
                 * not stand in the way of the rollback. */
                r = filter_store_replace(s, t->rollback.rules, t->rollback.n, false, &err);
                if (r < 0)
                        log_struct_internal(LOG_ERR, r, PS_MESSAGE_ROLLBACK, NULL,
                                            "Rolling back transaction %s failed: %s", t->path,
                                            err ? err : strerror(-r));
                else {
                        t->rollback = (FilterList) {}; /* the store owns them now */
                        log_struct_internal(LOG_WARNING, 0, PS_MESSAGE_ROLLBACK, NULL,
                                            "Transaction %s %s; the previous rule set is back",
                                            t->path, why);
                }
        }
        if (t->on_finished)
                t->on_finished(t, confirmed, t->userdata);
        filter_transaction_free(t);
        return 0;
}

static int on_timeout(sd_event_source *es, uint64_t usec, void *userdata) {
        (void) filter_transaction_finish(userdata, false, "was not confirmed in time", NULL);
        return 0;
}

int filter_transaction_begin(FilterStore *s, sd_event *event, FilterList *add, bool replace,
                             uint32_t seconds, const char *path, filter_transaction_finished_t cb,
                             void *userdata, char **ret_error) {
        FilterTransaction *t;
        int r;

        assert(s);
        assert(event);
        assert(add);
        assert(path);
        assert(!s->transaction);
        t = calloc(1, sizeof(FilterTransaction));
        if (!t)
                return -ENOMEM;
        *t = (FilterTransaction) {
                .store = s,
                .path = strdup(path),
                .on_finished = cb,
                .userdata = userdata,
        };
        if (!t->path) {
                filter_transaction_free(t);
                return -ENOMEM;
        }
        r = filter_store_snapshot(s, &t->rollback.rules, &t->rollback.n);
        if (r < 0) {
                filter_transaction_free(t);
                return r;
        }
        /* Not persisted: until confirmed, filters.json keeps the old set, so a daemon that dies
         * meanwhile comes back with the old set. */
        r = filter_store_commit(s, add, replace, false, NULL, ret_error);
        if (r < 0) {
                filter_transaction_free(t);
                return r;
        }
        t->deadline_usec = now_usec(CLOCK_MONOTONIC) + (uint64_t) seconds * USEC_PER_SEC;
        s->transaction = t;
        r = sd_event_add_time(event, &t->timer, CLOCK_MONOTONIC, t->deadline_usec, 0, on_timeout,
                              s);
        if (r < 0) {
                (void) filter_transaction_finish(s, false, "could not arm its timer", NULL);
                return r;
        }
        return 0;
}

uint64_t filter_transaction_deadline_realtime(const FilterTransaction *t) {
        uint64_t now = now_usec(CLOCK_MONOTONIC);

        assert(t);
        return now_usec(CLOCK_REALTIME) + (t->deadline_usec > now ? t->deadline_usec - now : 0);
}
