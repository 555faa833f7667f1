/* SPDX-License-Identifier: MIT */
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <time.h>

#include "bus-util.h"
#include "filter-transaction.h"
#include "filter-bus.h"
#include "filters-bus.h"
#include "flow-table.h"
#include "log.h"
#include "polkit.h"
#include "transaction-bus.h"
#include "util.h"

/*
 * Decoded, then authorized, then the lock-out guard: its message names a management address
 * and port, which only an authorized caller may learn. 1 to go on, 0 when polkit answers later
 * (the call is re-run). `what` names the list in the guard's message ("batch", "import"), NULL
 * for a single rule.
 */
static int authorize_change(Manager *m, sd_bus_message *msg, const FilterList *add,
                            const char *what, sd_bus_error *error) {
        int r;

        r = filters_bus_refuse_if_pending(m, error);
        if (r < 0)
                return r;
        r = polkit_verify(msg, PS_POLKIT_MANAGE_FILTERS, &m->polkit, error);
        if (r <= 0)
                return r;
        return filters_bus_check_lockout(m, add, what, error);
}

static int method_add(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        _cleanup_filter_list_ FilterList add = {};
        _cleanup_free_ char *err = NULL, *path = NULL, *summary = NULL;
        Manager *m = userdata;
        Filter *f = NULL;
        FilterVerdict verdict;
        uint32_t id;
        int r;

        r = bus_read_rule(msg, &f, error);
        if (r < 0)
                return r;
        r = filter_list_push(&add, f);
        if (r < 0) {
                filter_free(f);
                return r;
        }
        verdict = f->action;
        r = authorize_change(m, msg, &add, NULL, error);
        if (r <= 0)
                return r < 0 ? r : 1;
        r = filter_summary(f, &summary); /* f is the store's after the commit */
        if (r < 0)
                return r;
        r = filter_store_commit(m->filters, &add, false, true, &id, &err);
        if (r < 0)
                return filters_bus_error(error, r, err);
        {
                char extra[32];
                BusCaller caller;

                snprintf(extra, sizeof extra, "FILTER_ID=%u", id);
                bus_caller_get(msg, extra, &caller);
                log_struct_fields(LOG_INFO, 0, PS_MESSAGE_FILTERS_CHANGED, NULL, caller.fields,
                                  "Filter %u added (%s) by %s: %s", id,
                                  filter_verdict_to_string(verdict), caller.who, summary);
        }
        path = filter_bus_path(id);
        if (!path)
                return -ENOMEM;
        return sd_bus_reply_method_return(msg, "uo", id, path);
}

/* Reads aa{sv} into new rules; the first bad one names its index. */
static int read_rules(sd_bus_message *msg, FilterList *ret, sd_bus_error *error) {
        _cleanup_filter_list_ FilterList list = {};
        int r;

        r = sd_bus_message_enter_container(msg, 'a', "a{sv}");
        if (r < 0)
                return r;
        for (;;) {
                Filter *f = NULL;

                r = sd_bus_message_at_end(msg, false);
                if (r < 0)
                        return r;
                if (r > 0)
                        break;
                if (list.n >= PS_FILTER_MAX_RULES)
                        return sd_bus_error_setf(error, PS_ERROR_LIMIT_EXCEEDED,
                                                 "more than %u rules in one call",
                                                 PS_FILTER_MAX_RULES);
                r = bus_read_rule(msg, &f, error);
                if (r < 0) {
                        if (sd_bus_error_is_set(error)) {
                                /* Say which rule of the batch was wrong. The name and text are
                                 * copied first: freeing the error frees them. */
                                _cleanup_free_ char *text = strdup(error->message ? error->message : "");
                                _cleanup_free_ char *name = strdup(error->name);

                                sd_bus_error_free(error);
                                r = sd_bus_error_setf(error, name ? name : SD_BUS_ERROR_INVALID_ARGS,
                                                      "rule #%zu of the batch: %s", list.n,
                                                      text ? text : "");
                        }
                        return r;
                }
                r = filter_list_push(&list, f);
                if (r < 0) {
                        filter_free(f);
                        return r;
                }
        }
        r = sd_bus_message_exit_container(msg);
        if (r < 0)
                return r;
        *ret = list;
        list = (FilterList) {};
        return 0;
}

static int reply_ids(sd_bus_message *msg, const uint32_t *ids, size_t n) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        r = sd_bus_message_new_method_return(msg, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_append_array(reply, 'u', ids, n * sizeof(uint32_t));
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

/* Commits rules read and authorized, and answers with their ids. */
static int commit_and_reply_ids(Manager *m, sd_bus_message *msg, FilterList *add, bool replace,
                                const char *what, sd_bus_error *error) {
        _cleanup_free_ uint32_t *ids = NULL;
        _cleanup_free_ char *err = NULL;
        size_t n = add->n;
        int r;

        ids = calloc(n + 1, sizeof(uint32_t));
        if (!ids)
                return -ENOMEM;
        r = filter_store_commit(m->filters, add, replace, true, ids, &err);
        if (r < 0)
                return filters_bus_error(error, r, err);
        {
                BusCaller caller;

                bus_caller_get(msg, NULL, &caller);
                if (what)
                        log_struct_fields(LOG_INFO, 0, PS_MESSAGE_FILTERS_CHANGED, NULL,
                                          caller.fields, "Imported %zu filter%s (%s) by %s", n,
                                          n == 1 ? "" : "s", what, caller.who);
                else
                        log_struct_fields(LOG_INFO, 0, PS_MESSAGE_FILTERS_CHANGED, NULL,
                                          caller.fields, "%zu filter%s added in one batch by %s",
                                          n, n == 1 ? "" : "s", caller.who);
        }
        return reply_ids(msg, ids, n);
}

static int method_add_batch(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        _cleanup_filter_list_ FilterList add = {};
        Manager *m = userdata;
        int r;

        r = read_rules(msg, &add, error);
        if (r < 0)
                return r;
        r = authorize_change(m, msg, &add, "batch", error);
        if (r <= 0)
                return r < 0 ? r : 1;
        return commit_and_reply_ids(m, msg, &add, false, NULL, error);
}

/* The rules [offset, offset + limit) with their counters read from the kernel now: as rule
 * dictionaries (List), or as columns (ListRange: a page of 10,000 rules in one container per
 * field, not one per value). */
static int list_range(sd_bus_message *msg, Manager *m, uint32_t offset, uint32_t limit,
                      bool columns) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        size_t end = MIN((size_t) offset + limit, m->filters->n_rules);
        size_t start = MIN((size_t) offset, end);
        Filter **rules = m->filters->rules + start;
        int r;

        if (end > start)
                (void) filter_store_read_counters_of(m->filters, rules, end - start);
        if (columns) {
                r = sd_bus_message_new_method_return(msg, &reply);
                if (r < 0)
                        return r;
                r = filters_append_bus_columns(reply, rules, end - start);
                if (r < 0)
                        return r;
                return sd_bus_send(NULL, reply, NULL);
        }
        r = bus_reply_open(msg, 'a', "a{sv}", &reply);
        if (r < 0)
                return r;
        for (size_t i = 0; i < end - start; i++) {
                /* What filter_bus_path() gives, without an allocation per rule. */
                char path[sizeof(PS_OBJECT_FILTERS "/") + 10];

                snprintf(path, sizeof path, PS_OBJECT_FILTERS "/%" PRIu32, rules[i]->id);
                r = filter_append_bus_dict(reply, rules[i], path);
                if (r < 0)
                        return r;
        }
        return bus_reply_close_send(reply);
}

/* One reply holds at most PS_FILTERS_LIST_MAX rules: a bus message has a size limit (32 MiB on
 * the system bus), and a peer that sends more is disconnected by the bus. */
static int method_list(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;

        if (m->filters->n_rules > PS_FILTERS_LIST_MAX)
                return sd_bus_error_setf(error, PS_ERROR_LIMIT_EXCEEDED,
                                         "the set has %zu rules and List() answers up to %u; use "
                                         "ListRange(offset, limit) or ListFd()",
                                         m->filters->n_rules, PS_FILTERS_LIST_MAX);
        return list_range(msg, m, 0, PS_FILTERS_LIST_MAX, false);
}

static int method_list_range(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        uint32_t offset, limit;
        int r;

        r = sd_bus_message_read(msg, "uu", &offset, &limit);
        if (r < 0)
                return r;
        if (limit < 1 || limit > PS_FILTERS_LIST_MAX)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "limit is %u; accepted: 1 to %u", limit,
                                         PS_FILTERS_LIST_MAX);
        return list_range(msg, m, offset, limit, true);
}

static int method_export(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        _cleanup_free_ char *text = NULL;
        _cleanup_json_ json_t *a = NULL;
        Manager *m = userdata;

        (void) filter_store_read_counters(m->filters);
        a = filter_store_export(m->filters);
        if (!a)
                return -ENOMEM;
        /* Small sets indented for people; big ones compact, one rule a line's worth. */
        text = json_dumps(a, m->filters->n_rules <= PS_SMALL_SET_MAX ? JSON_INDENT(2)
                                                                     : JSON_COMPACT);
        if (!text)
                return -ENOMEM;
        /* Well under the bus's own limit (32 MiB). */
        if (strlen(text) > PS_EXPORT_MAX_BYTES)
                return sd_bus_error_setf(error, PS_ERROR_LIMIT_EXCEEDED,
                                         "the export would be %zu bytes; one bus message carries "
                                         "at most %u: use ListRange(offset, limit)",
                                         strlen(text), PS_EXPORT_MAX_BYTES);
        return sd_bus_reply_method_return(msg, "s", text);
}

static int parse_mode(const char *mode, bool *ret_replace, sd_bus_error *error) {
        if (streq(mode, "merge") || streq(mode, ""))
                *ret_replace = false;
        else if (streq(mode, "replace"))
                *ret_replace = true;
        else
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "invalid mode '%.32s'; accepted: merge, replace", mode);
        return 0;
}

/*
 * Import, off the loop: authorized, then the text is read in a thread, then (on the loop) checked
 * by the lock-out guard, then compiled, loaded and stored in a thread again; meanwhile the loop
 * answers every other call, and other set changes get ChangeInProgress. The reply comes when
 * the set is in the kernel and in filters.json.
 */
typedef struct ImportCall {
        Manager *m;
        sd_bus_message *msg;
        const char *text; /* in msg; NULL when the document comes from fd */
        int fd;           /* in msg, ImportFd's; -1 for Import */
        bool replace;
        FilterList add;
        uint32_t *ids;
        size_t n;
        int r;
        char *error;
} ImportCall;

static void import_call_free(ImportCall *c) {
        if (!c)
                return;
        sd_bus_message_unref(c->msg);
        filter_list_done(&c->add);
        free(c->ids);
        free(c->error);
        free(c);
}

static void import_reply_error(ImportCall *c, int r, const char *err) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;

        r = filters_bus_error(&error, r, err);
        if (!sd_bus_error_is_set(&error))
                (void) sd_bus_error_set_errno(&error, r);
        (void) sd_bus_reply_method_error(c->msg, &error);
}

static void import_committed(FilterStore *s, int r, const char *err, void *userdata) {
        ImportCall *c = userdata;

        if (r < 0) {
                import_reply_error(c, r, err);
                import_call_free(c);
                return;
        }
        {
                BusCaller caller;

                bus_caller_get(c->msg, NULL, &caller);
                log_struct_fields(LOG_INFO, 0, PS_MESSAGE_FILTERS_CHANGED, NULL, caller.fields,
                                  "Imported %zu filter%s (%s) by %s", c->n, c->n == 1 ? "" : "s",
                                  c->replace ? "replace" : "merge", caller.who);
        }
        (void) reply_ids(c->msg, c->ids, c->n);
        import_call_free(c);
}

static void import_parse_work(void *data) {
        ImportCall *c = data;

        /* The file is read here too: a slow file system holds up the thread, not the loop. */
        c->r = c->text ? filter_parse_import(c->text, c->replace, &c->add, &c->error)
                       : filter_parse_import_fd(c->fd, c->replace, &c->add, &c->error);
}

static void import_parsed(void *data, bool cancelled) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_free_ char *err = NULL, *what = NULL;
        ImportCall *c = data;
        Manager *m = c->m;
        int r;

        m->filters->busy = mfree(m->filters->busy);
        if (cancelled || c->r < 0) {
                if (!cancelled)
                        import_reply_error(c, c->r, c->error);
                import_call_free(c);
                return;
        }
        /* Authorized already (method_import()): polkit's answer is used up once the call
         * has run, so it cannot be asked here. */
        r = filters_bus_check_lockout(m, &c->add, "import", &error);
        if (r >= 0) {
                c->n = c->add.n;
                c->ids = calloc(c->n + 1, sizeof(uint32_t));
                if (asprintf(&what, "an import of %zu rules", c->n) < 0)
                        what = NULL;
                r = c->ids && what ? filter_store_commit_async(m->filters, &c->add, c->replace,
                                                               what, c->ids, import_committed,
                                                               c, &err)
                                   : -ENOMEM;
                if (r >= 0)
                        return; /* import_committed() answers */
                r = filters_bus_error(&error, r, err);
        }
        if (!sd_bus_error_is_set(&error))
                (void) sd_bus_error_set_errno(&error, r);
        (void) sd_bus_reply_method_error(c->msg, &error);
        import_call_free(c);
}

/* Import and ImportFd: the document is `text`, or read from `fd` (both in msg). */
static int import_begin(Manager *m, sd_bus_message *msg, const char *text, int fd,
                        const char *mode, sd_bus_error *error) {
        ImportCall *c;
        bool replace;
        int r;

        r = parse_mode(mode, &replace, error);
        if (r < 0)
                return r;
        if (!text) {
                _cleanup_free_ char *err = NULL;

                /* What the file is can be told at once; its contents only in the thread. */
                r = filter_import_fd_check(fd, &err);
                if (r < 0)
                        return filters_bus_error(error, r, err);
        }
        r = filters_bus_refuse_if_pending(m, error);
        if (r < 0)
                return r;
        /* Authorized before the document is read: the answer of an asynchronous check is
         * only there while the requeued call runs, not when the thread is done. */
        r = polkit_verify(msg, PS_POLKIT_MANAGE_FILTERS, &m->polkit, error);
        if (r <= 0)
                return r < 0 ? r : 1;
        c = calloc(1, sizeof *c);
        if (!c)
                return -ENOMEM;
        *c = (ImportCall) { .m = m, .msg = sd_bus_message_ref(msg), .text = text, .fd = fd,
                            .replace = replace };
        /* Set while the text is read too: one large change at a time. */
        m->filters->busy = strdup("an import");
        r = m->filters->busy ? filter_store_offload(m->filters, import_parse_work, import_parsed, c)
                             : -ENOMEM;
        if (r < 0) {
                m->filters->busy = mfree(m->filters->busy);
                import_call_free(c);
                return r;
        }
        return 1;
}

static int method_import(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        const char *text, *mode;
        int r;

        r = sd_bus_message_read(msg, "ss", &text, &mode);
        if (r < 0)
                return r;
        return import_begin(userdata, msg, text, -1, mode, error);
}

static int method_import_fd(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        const char *mode;
        int fd, r;

        /* The fd belongs to msg, which the call holds until it has answered. */
        r = sd_bus_message_read(msg, "hs", &fd, &mode);
        if (r < 0)
                return r;
        return import_begin(userdata, msg, NULL, fd, mode, error);
}

static void list_fd_done(FilterStore *s, int r, int fd, void *userdata) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *msg = userdata;
        _cleanup_close_ int owned = fd;

        if (r == -ECANCELED) /* the daemon is stopping: no answer */
                return;
        if (r < 0) {
                _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;

                (void) sd_bus_error_set_errnof(&error, r, "cannot write the rule set to a memfd: "
                                               "%s", strerror(-r));
                (void) sd_bus_reply_method_error(msg, &error);
                return;
        }
        (void) sd_bus_reply_method_return(msg, "h", owned); /* the reply holds a copy */
}

/* The whole set with its counters in a sealed memfd, one document: no bus message to fit,
 * and no key repeated 100,000 times. The loop only copies the rules; the document is written
 * in a thread. Open to every caller, as List is. */
static int method_list_fd(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        int r;

        r = filter_store_list_memfd(m->filters, list_fd_done, sd_bus_message_ref(msg));
        if (r < 0)
                sd_bus_message_unref(msg);
        if (r == -EBUSY)
                return sd_bus_error_setf(error, PS_ERROR_LIMIT_EXCEEDED,
                                         "%u ListFd calls are being answered; accepted: at most "
                                         "%u at once, call again when one is done",
                                         FILTER_LIST_JOBS_MAX, FILTER_LIST_JOBS_MAX);
        if (r < 0)
                return sd_bus_error_set_errnof(error, r, "cannot list the rule set: %s",
                                               strerror(-r));
        return 1;
}

/* Test(): which current flows and ICMP entries would this rule match? Nothing is changed. */
struct test_ctx {
        const Filter *f;
        sd_bus_message *reply;
        uint64_t now_ns;
        unsigned rows;
};

static int test_flow(Link *l, const void *key, const void *value, void *userdata) {
        struct test_ctx *c = userdata;
        struct ps_match p;

        if (c->rows >= PS_TEST_ROWS_MAX)
                return -ENOBUFS;
        flow_entry_to_match(key, value, &p);
        if (!filter_match(c->f, &p))
                return 0;
        c->rows++;
        return bus_append_flow_row(c->reply, l->name, key, value, c->now_ns);
}

static int test_icmp(Link *l, const void *key, const void *value, void *userdata) {
        struct test_ctx *c = userdata;
        struct ps_match p;

        if (c->rows >= PS_TEST_ROWS_MAX)
                return -ENOBUFS;
        icmp_entry_to_match(key, value, &p);
        if (!filter_match(c->f, &p))
                return 0;
        c->rows++;
        return bus_append_icmp_row(c->reply, l->name, key, value);
}

static int method_test(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        Manager *m = userdata;
        _cleanup_filter_ Filter *f = NULL;
        struct test_ctx c = { .now_ns = now_nsec(CLOCK_MONOTONIC) };
        int r;

        r = bus_read_rule(msg, &f, error);
        if (r < 0)
                return r;
        f->enabled = true; /* a dry run of a disabled rule still shows what it would match */
        c.f = f;
        r = bus_reply_open(msg, 'a', "a{sv}", &reply);
        if (r < 0)
                return r;
        c.reply = reply;
        for (size_t i = 0; i < m->n_links && r >= 0; i++) {
                r = flow_table_foreach(m->links[i], FLOW_TABLE_CONNECTIONS, test_flow, &c);
                if (r >= 0)
                        r = flow_table_foreach(m->links[i], FLOW_TABLE_ICMP, test_icmp, &c);
        }
        if (r == -ENOBUFS) /* the first PS_TEST_ROWS_MAX matches are enough to judge a rule */
                r = 0;
        if (r < 0)
                return r;
        return bus_reply_close_send(reply);
}

static int method_apply(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        _cleanup_filter_list_ FilterList add = {};
        Manager *m = userdata;
        const char *mode;
        uint32_t seconds;
        bool replace;
        int r;

        r = read_rules(msg, &add, error);
        if (r < 0)
                return r;
        r = sd_bus_message_read(msg, "su", &mode, &seconds);
        if (r < 0)
                return r;
        r = parse_mode(mode, &replace, error);
        if (r < 0)
                return r;
        if (seconds < 1 || seconds > PS_CONFIRM_MAX_SEC)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "confirm_seconds is %u; accepted: 1 to %u", seconds,
                                         PS_CONFIRM_MAX_SEC);
        r = authorize_change(m, msg, &add, "batch", error);
        if (r <= 0)
                return r < 0 ? r : 1;
        return transaction_bus_begin(m, msg, &add, replace, seconds, error);
}

static int property_get_store_u32(sd_bus *bus, const char *path, const char *interface,
                                  const char *property, sd_bus_message *reply, void *userdata,
                                  sd_bus_error *error) {
        Manager *m = userdata;
        uint32_t v = streq(property, "Count") ? (uint32_t) m->filters->n_rules :
                     streq(property, "Shapes") ? (uint32_t) m->filters->n_shapes :
                     streq(property, "Entries") ? (uint32_t) m->filters->n_entries :
                     streq(property, "MaxShapes") ? PS_FILTER_MAX_SHAPES : PS_FILTER_MAX_RULES;

        return sd_bus_message_append(reply, "u", v);
}

static int property_get_degraded(sd_bus *bus, const char *path, const char *interface,
                                 const char *property, sd_bus_message *reply, void *userdata,
                                 sd_bus_error *error) {
        Manager *m = userdata;

        return sd_bus_message_append(reply, "s", m->filters->degraded ? m->filters->degraded : "");
}

static const sd_bus_vtable filters_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Count", "u", property_get_store_u32, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Shapes", "u", property_get_store_u32, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Entries", "u", property_get_store_u32, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("MaxRules", "u", property_get_store_u32, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("MaxShapes", "u", property_get_store_u32, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Degraded", "s", property_get_degraded, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_METHOD_WITH_ARGS("Add", SD_BUS_ARGS("a{sv}", rule), SD_BUS_RESULT("u", id, "o", path),
                                method_add, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("AddBatch", SD_BUS_ARGS("aa{sv}", rules), SD_BUS_RESULT("au", ids),
                                method_add_batch, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("List", SD_BUS_NO_ARGS, SD_BUS_RESULT("aa{sv}", rules),
                                method_list, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ListRange", SD_BUS_ARGS("u", offset, "u", limit),
                                SD_BUS_RESULT("a{sv}", columns), method_list_range,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Import", SD_BUS_ARGS("s", json, "s", mode), SD_BUS_RESULT("au", ids),
                                method_import, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Export", SD_BUS_NO_ARGS, SD_BUS_RESULT("s", json),
                                method_export, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ListFd", SD_BUS_NO_ARGS, SD_BUS_RESULT("h", rules),
                                method_list_fd, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ImportFd", SD_BUS_ARGS("h", fd, "s", mode),
                                SD_BUS_RESULT("au", ids), method_import_fd,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Test", SD_BUS_ARGS("a{sv}", rule), SD_BUS_RESULT("aa{sv}", matches),
                                method_test, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Apply", SD_BUS_ARGS("aa{sv}", rules, "s", mode, "u", confirm_seconds),
                                SD_BUS_RESULT("o", transaction), method_apply,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_SIGNAL_WITH_ARGS("FilterAdded", SD_BUS_ARGS("u", id, "o", path), 0),
        SD_BUS_SIGNAL_WITH_ARGS("FilterRemoved", SD_BUS_ARGS("u", id, "o", path), 0),
        SD_BUS_SIGNAL_WITH_ARGS("FilterChanged", SD_BUS_ARGS("u", id, "o", path), 0),
        SD_BUS_SIGNAL_WITH_ARGS("Reloaded", SD_BUS_ARGS("u", added, "u", removed), 0),
        SD_BUS_SIGNAL_WITH_ARGS("Dropped", SD_BUS_ARGS("u", rule_id, "s", link, "s", protocol,
                                                       "s", src, "s", dst, "q", sport, "q", dport), 0),
        SD_BUS_VTABLE_END,
};

static int cmp_id(const void *a, const void *b) {
        uint32_t x = *(const uint32_t *) a, y = *(const uint32_t *) b;

        return x < y ? -1 : x > y;
}

/* Ids below this are looked up in a bitmap (2 MiB at most), built in one pass over a list;
 * a set whose ids reach higher is sorted and searched instead. */
#define ID_BITMAP_LIMIT (16u * 1024 * 1024)

typedef struct IdSet {
        uint32_t *ids; /* sorted, when no bitmap */
        size_t n;
        uint8_t *bits;
} IdSet;

static void id_set_done(IdSet *set) {
        free(set->ids);
        free(set->bits);
}

static int id_set_init(IdSet *set, const uint32_t *ids, size_t n, uint32_t limit) {
        *set = (IdSet) { .n = n };
        if (limit <= ID_BITMAP_LIMIT) {
                set->bits = calloc(limit / 8 + 1, 1);
                if (!set->bits)
                        return -ENOMEM;
                for (size_t i = 0; i < n; i++)
                        set->bits[ids[i] / 8] |= (uint8_t) (1u << (ids[i] % 8));
                return 0;
        }
        set->ids = malloc((n + 1) * sizeof(uint32_t));
        if (!set->ids)
                return -ENOMEM;
        memcpy(set->ids, ids, n * sizeof(uint32_t));
        qsort(set->ids, n, sizeof(uint32_t), cmp_id);
        return 0;
}

static bool id_set_has(const IdSet *set, uint32_t id) {
        if (set->bits)
                return set->bits[id / 8] & (1u << (id % 8));
        return bsearch(&id, set->ids, set->n, sizeof(uint32_t), cmp_id);
}

/* A rule object came (added) or went: the object manager's signal and ours. */
static void emit_filter_presence(Manager *m, uint32_t id, bool added) {
        _cleanup_free_ char *path = filter_bus_path(id);

        if (!path)
                return;
        if (added)
                (void) sd_bus_emit_interfaces_added(m->bus, path, PS_IFACE_FILTER, NULL);
        else
                (void) sd_bus_emit_interfaces_removed(m->bus, path, PS_IFACE_FILTER, NULL);
        (void) sd_bus_emit_signal(m->bus, PS_OBJECT_FILTERS, PS_IFACE_FILTERS,
                                  added ? "FilterAdded" : "FilterRemoved", "uo", id, path);
}

static void emit_counts_changed(Manager *m) {
        (void) sd_bus_emit_properties_changed(m->bus, PS_OBJECT_FILTERS, PS_IFACE_FILTERS, "Count",
                                              "Shapes", "Entries", "Degraded", NULL);
}

/* Turns a change of the set into signals: per rule for a small change, one Reloaded for a big
 * one (PS_SMALL_SET_MAX). A change of one rule names it: no walk of the set. */
static void on_filters_changed(FilterStore *s, const FilterStoreChange *c, void *userdata) {
        Manager *m = userdata;
        _cleanup_free_ uint32_t *new_ids = NULL;
        const uint32_t *old_ids = c->old_ids;
        size_t n_old = c->n_old;
        IdSet old_set = {}, new_set = {};
        size_t n_added = 0, n_removed = 0;
        uint32_t limit = 0;

        if (!m->bus)
                return;
        if (!old_ids) {
                if (c->removed != UINT32_MAX)
                        emit_filter_presence(m, c->removed, false);
                if (c->added != UINT32_MAX)
                        emit_filter_presence(m, c->added, true);
                emit_counts_changed(m);
                return;
        }
        new_ids = malloc((s->n_rules + 1) * sizeof(uint32_t));
        if (!new_ids)
                return;
        for (size_t i = 0; i < s->n_rules; i++) {
                new_ids[i] = s->rules[i]->id;
                limit = MAX(limit, new_ids[i]);
        }
        for (size_t i = 0; i < n_old; i++)
                limit = MAX(limit, old_ids[i]);
        if (id_set_init(&old_set, old_ids, n_old, limit) < 0 ||
            id_set_init(&new_set, new_ids, s->n_rules, limit) < 0) {
                id_set_done(&old_set);
                id_set_done(&new_set);
                return;
        }
        for (size_t i = 0; i < n_old; i++)
                if (!id_set_has(&new_set, old_ids[i]))
                        n_removed++;
        for (size_t i = 0; i < s->n_rules; i++)
                if (!id_set_has(&old_set, new_ids[i]))
                        n_added++;

        if (n_added + n_removed > PS_SMALL_SET_MAX) {
                (void) sd_bus_emit_signal(m->bus, PS_OBJECT_FILTERS, PS_IFACE_FILTERS, "Reloaded",
                                          "uu", (uint32_t) n_added, (uint32_t) n_removed);
        } else {
                for (size_t i = 0; i < n_old; i++)
                        if (!id_set_has(&new_set, old_ids[i]))
                                emit_filter_presence(m, old_ids[i], false);
                for (size_t i = 0; i < s->n_rules; i++)
                        if (!id_set_has(&old_set, s->rules[i]->id))
                                emit_filter_presence(m, s->rules[i]->id, true);
        }
        emit_counts_changed(m);
        id_set_done(&old_set);
        id_set_done(&new_set);
}

/* Filters and Filter share the node /filters, and sd-bus wants all vtables of one node to be
 * of one kind: so Filters is a fallback too, found only on the node itself. */
static int filters_find(sd_bus *bus, const char *path, const char *interface, void *userdata,
                        void **found, sd_bus_error *error) {
        if (!streq(path, PS_OBJECT_FILTERS))
                return 0;
        *found = userdata;
        return 1;
}

static void on_drop(const DropEvent *e, void *userdata) {
        Manager *m = userdata;

        if (m->bus)
                (void) sd_bus_emit_signal(m->bus, PS_OBJECT_FILTERS, PS_IFACE_FILTERS, "Dropped",
                                          "ussssqq", e->rule_id, e->link, e->protocol, e->src,
                                          e->dst, e->sport, e->dport);
}

int filters_bus_register(Manager *m) {
        int r;

        filter_store_set_change_callback(m->filters, on_filters_changed, m);
        m->on_drop = on_drop;
        m->on_drop_userdata = m;
        r = sd_bus_add_fallback_vtable(m->bus, NULL, PS_OBJECT_FILTERS, PS_IFACE_FILTERS,
                                       filters_vtable, filters_find, m);
        if (r < 0)
                return r;
        r = transaction_bus_register(m);
        if (r < 0)
                return r;
        return filter_bus_register(m);
}
