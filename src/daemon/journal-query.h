/* SPDX-License-Identifier: MIT */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-journal.h>

/*
 * Reading the daemon's own records back from the journal (Bans.History, the anomalies past
 * what Health keeps in memory): the records with any of the given MESSAGE_IDs that packetscoped
 * wrote, newest first. Callers bound their own walk (a count of entries, a time).
 */

/* Opens the local system journal matched to `ids` (any of them), SYSLOG_IDENTIFIER=
 * packetscoped and, unless NULL, the field `also` ("NAME=value"), positioned after the newest
 * record. Filtering there, by the journal's own index, costs nothing per record skipped.
 * -ENOMEDIUM, with a message saying why, when the daemon does not log to a journal. */
int journal_query_open(const char *const *ids, size_t n_ids, const char *also, sd_journal **ret,
                       char **ret_error);

/* The next older matching record: 1 with its CLOCK_REALTIME time, 0 when there is none. */
int journal_query_previous(sd_journal *j, uint64_t *ret_time_usec);

/* The value of field `name` of the current record, newly allocated. -ENOENT when absent. */
int journal_query_field(sd_journal *j, const char *name, char **ret);

static inline void journal_query_closep(sd_journal **j) {
        sd_journal_close(*j);
}
