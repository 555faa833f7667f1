/* SPDX-License-Identifier: MIT */
#include <stdio.h>

#include "bus-util.h"
#include "filter-transaction.h"
#include "log.h"
#include "polkit.h"
#include "transaction-bus.h"
#include "util.h"

static int transaction_find(sd_bus *bus, const char *path, const char *interface, void *userdata,
                            void **found, sd_bus_error *error) {
        Manager *m = userdata;
        FilterTransaction *t = m->filters->transaction;

        if (!t || !streq(path, t->path))
                return 0;
        *found = m;
        return 1;
}

static int transaction_enumerate(sd_bus *bus, const char *path, void *userdata, char ***nodes,
                                 sd_bus_error *error) {
        Manager *m = userdata;
        FilterTransaction *t = m->filters->transaction;
        char **l = calloc(2, sizeof(char *));

        if (!l)
                return -ENOMEM;
        if (t && !(l[0] = strdup(t->path))) {
                free(l);
                return -ENOMEM;
        }
        *nodes = l;
        return 1;
}

/* Confirm() and Rollback(): authorized, and only for the transaction of the called path. */
static int transaction_end(sd_bus_message *msg, Manager *m, bool confirm, sd_bus_error *error) {
        _cleanup_free_ char *err = NULL;
        FilterTransaction *t;
        int r;

        r = polkit_verify(msg, PS_POLKIT_MANAGE_FILTERS, &m->polkit, error);
        if (r <= 0)
                return r < 0 ? r : 1;
        /* It may have ended (and another begun) while polkit was answering. */
        t = m->filters->transaction;
        if (!t || !streq(t->path, sd_bus_message_get_path(msg)))
                return sd_bus_error_setf(error, PS_ERROR_NO_SUCH_TRANSACTION,
                                         "transaction %s has already ended",
                                         sd_bus_message_get_path(msg));
        {
                char why[sizeof(((BusCaller *) NULL)->who) + 64];
                BusCaller caller;

                bus_caller_get(msg, NULL, &caller);
                snprintf(why, sizeof why, "%s by %s",
                         confirm ? "confirmed" : "was rolled back on request", caller.who);
                r = filter_transaction_finish(m->filters, confirm, why, &err);
                if (r < 0)
                        return filters_bus_error(error, r, err);
        }
        return sd_bus_reply_method_return(msg, NULL);
}

static int method_confirm(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        return transaction_end(msg, userdata, true, error);
}

static int method_rollback(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        return transaction_end(msg, userdata, false, error);
}

static int property_get_deadline(sd_bus *bus, const char *path, const char *interface,
                                 const char *property, sd_bus_message *reply, void *userdata,
                                 sd_bus_error *error) {
        Manager *m = userdata;

        /* The seconds left as a realtime deadline: what a client can show. */
        return sd_bus_message_append(reply, "t",
                                     filter_transaction_deadline_realtime(m->filters->transaction));
}

static const sd_bus_vtable transaction_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Deadline", "t", property_get_deadline, 0, 0),
        SD_BUS_METHOD("Confirm", NULL, NULL, method_confirm, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("Rollback", NULL, NULL, method_rollback, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_SIGNAL_WITH_ARGS("Finished", SD_BUS_ARGS("b", confirmed), 0),
        SD_BUS_VTABLE_END,
};

static void on_finished(FilterTransaction *t, bool confirmed, void *userdata) {
        Manager *m = userdata;

        if (!m->bus)
                return;
        (void) sd_bus_emit_signal(m->bus, t->path, PS_IFACE_TRANSACTION, "Finished", "b",
                                  confirmed);
        (void) sd_bus_emit_object_removed(m->bus, t->path);
}

int transaction_bus_begin(Manager *m, sd_bus_message *msg, FilterList *add, bool replace,
                          uint32_t seconds, sd_bus_error *error) {
        _cleanup_free_ char *err = NULL;
        char path[sizeof(PS_OBJECT_TRANSACTIONS) + 16];
        size_t n_add = add->n;
        int r;

        assert(m);
        assert(msg);
        assert(add);
        snprintf(path, sizeof path, PS_OBJECT_TRANSACTIONS "/%u", m->transaction_counter + 1);
        r = filter_transaction_begin(m->filters, m->event, add, replace, seconds, path,
                                     on_finished, m, &err);
        if (r < 0)
                return filters_bus_error(error, r, err);
        m->transaction_counter++;
        {
                BusCaller caller;

                bus_caller_get(msg, NULL, &caller);
                log_struct_fields(LOG_NOTICE, 0, PS_MESSAGE_FILTERS_CHANGED, NULL, caller.fields,
                                  "Applied %zu rule%s (%s) as transaction %s by %s: rolls back "
                                  "in %u s unless confirmed", n_add, n_add == 1 ? "" : "s",
                                  replace ? "replace" : "merge", path, caller.who, seconds);
        }
        (void) sd_bus_emit_object_added(m->bus, path);
        return sd_bus_reply_method_return(msg, "o", path);
}

int transaction_bus_register(Manager *m) {
        return bus_add_object_family(m->bus, PS_OBJECT_TRANSACTIONS, PS_IFACE_TRANSACTION,
                                     transaction_vtable, transaction_find, transaction_enumerate,
                                     m);
}
