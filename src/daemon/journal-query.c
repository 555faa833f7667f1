/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <string.h>

#include "journal-query.h"
#include "log.h"
#include "util.h"

int journal_query_open(const char *const *ids, size_t n_ids, const char *also, sd_journal **ret,
                       char **ret_error) {
        sd_journal *j = NULL;
        int r;

        assert(ids);
        assert(ret);
        if (!log_to_journal())
                return error_setf(ret_error, -ENOMEDIUM,
                                  "this daemon logs to stderr, not to a journal (none runs here, "
                                  "or --log-target=stderr): there is no history to read back");
        r = sd_journal_open(&j, SD_JOURNAL_LOCAL_ONLY | SD_JOURNAL_SYSTEM);
        if (r < 0)
                return error_setf(ret_error, r, "cannot open the journal: %s", strerror(-r));
        for (size_t i = 0; i < n_ids && r >= 0; i++) {
                char m[64];

                snprintf(m, sizeof m, "MESSAGE_ID=%s", ids[i]);
                r = sd_journal_add_match(j, m, 0);
        }
        /* Only ours: another program may log with the same ids, by mistake or on purpose. */
        if (r >= 0)
                r = sd_journal_add_conjunction(j);
        if (r >= 0)
                r = sd_journal_add_match(j, "SYSLOG_IDENTIFIER=packetscoped", 0);
        if (r >= 0 && also)
                r = sd_journal_add_match(j, also, 0);
        if (r >= 0)
                r = sd_journal_seek_tail(j);
        if (r < 0) {
                sd_journal_close(j);
                return error_setf(ret_error, r, "cannot query the journal: %s", strerror(-r));
        }
        *ret = j;
        return 0;
}

int journal_query_previous(sd_journal *j, uint64_t *ret_time_usec) {
        int r;

        assert(j);
        assert(ret_time_usec);
        for (;;) {
                r = sd_journal_previous(j);
                if (r <= 0)
                        return r;
                /* A record without a time (a corrupt file) is skipped, not an error. */
                if (sd_journal_get_realtime_usec(j, ret_time_usec) >= 0)
                        return 1;
        }
}

int journal_query_field(sd_journal *j, const char *name, char **ret) {
        const void *data;
        size_t len, n = strlen(name);
        int r;

        assert(j);
        assert(name);
        assert(ret);
        r = sd_journal_get_data(j, name, &data, &len);
        if (r < 0)
                return r;
        if (len <= n || ((const char *) data)[n] != '=')
                return -ENODATA;
        *ret = strndup((const char *) data + n + 1, len - n - 1);
        return *ret ? 0 : -ENOMEM;
}
