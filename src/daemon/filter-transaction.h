/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "filters.h"

/* Told when a transaction ends (confirmed, or rolled back), before it is freed. */
typedef void (*filter_transaction_finished_t)(FilterTransaction *t, bool confirmed,
                                              void *userdata);

/*
 * A confirm-or-rollback change of the rule set (Filters.Apply): the new set is enforced at once
 * but not saved; unless confirmed before the deadline, the set it replaced comes back. At most
 * one is pending, in FilterStore.transaction.
 */
struct FilterTransaction {
        FilterStore *store;
        char *path;           /* its name: the bus object path */
        FilterList rollback;  /* the set before it */
        uint64_t deadline_usec; /* CLOCK_MONOTONIC */
        sd_event_source *timer;
        filter_transaction_finished_t on_finished;
        void *userdata;
};

/*
 * Applies `add` (merged or replacing) without saving it and arms the rollback timer. On success
 * the rules belong to the store and s->transaction is the new transaction; on failure `add` is
 * unchanged. `path` names it.
 */
int filter_transaction_begin(FilterStore *s, sd_event *event, FilterList *add, bool replace,
                             uint32_t seconds, const char *path, filter_transaction_finished_t cb,
                             void *userdata, char **ret_error);
/* Confirmed: saves the set; when it cannot be written the transaction stays open and -EROFS
 * comes back with *ret_error saying why. Not: brings the old set back. `why` is for the
 * journal. */
int filter_transaction_finish(FilterStore *s, bool confirmed, const char *why, char **ret_error);
/* The seconds left, as a CLOCK_REALTIME deadline. */
uint64_t filter_transaction_deadline_realtime(const FilterTransaction *t);
FilterTransaction *filter_transaction_free(FilterTransaction *t);
