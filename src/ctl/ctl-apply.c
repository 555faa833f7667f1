/* SPDX-License-Identifier: MIT */
/*
 * filter apply: the rules of a file as one transaction that rolls back unless confirmed, on the
 * terminal (or at once with --yes); the daemon rolls back by itself when nobody answers.
 */
#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <signal.h>
#include <strings.h>
#include <unistd.h>
#include <systemd/sd-event.h>

#include "packetscopectl.h"

typedef struct Confirmation {
        sd_event *event;
        sd_bus *bus;
        const char *path;        /* the transaction */
        sd_bus_slot *call;       /* Confirm or Rollback in flight */
        sd_event_source *input;
        bool confirming;         /* which of the two */
        uint64_t deadline;       /* CLOCK_MONOTONIC, for the countdown */
        bool done;
        int result;              /* 0 kept, -ECANCELED rolled back, else the failure */
} Confirmation;

static void confirmation_done(Confirmation *c, int result, const char *message) {
        if (c->done)
                return; /* the signal and the reply of our own call both tell it */
        c->done = true;
        if (message && arg.json == JSON_OFF)
                puts(message);
        c->result = result;
        (void) sd_event_exit(c->event, 0);
}

static int on_transaction_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        Confirmation *c = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(reply);

        c->call = sd_bus_slot_unref(c->call);
        if (!e) {
                confirmation_done(c, c->confirming ? 0 : -ECANCELED,
                                  c->confirming ? "Confirmed: the new rules are kept."
                                                : "Rolled back: the previous rules are back.");
                return 0;
        }
        /* Over before our call got there: the deadline passed, so the rules rolled back. Once
         * it is over its object is gone too, which the bus reports as UnknownObject. */
        if (sd_bus_error_has_name(e, PS_ERROR_NO_SUCH_TRANSACTION) ||
            sd_bus_error_has_name(e, SD_BUS_ERROR_UNKNOWN_OBJECT)) {
                confirmation_done(c, -ECANCELED, c->confirming
                                  ? "Too late: the transaction had already rolled back."
                                  : "Rolled back: the previous rules are back.");
                return 0;
        }
        bus_error(c->confirming ? "Confirm" : "Rollback", e, -sd_bus_message_get_errno(reply));
        confirmation_done(c, -EIO, c->confirming
                          ? "Not confirmed: the rules roll back at the deadline." : NULL);
        return 0;
}

static void transaction_call(Confirmation *c, bool confirm) {
        int r;

        if (c->call)
                return;
        c->input = sd_event_source_disable_unref(c->input);
        c->confirming = confirm;
        r = sd_bus_call_method_async(c->bus, &c->call, PS_BUS_NAME, c->path, PS_IFACE_TRANSACTION,
                                     confirm ? "Confirm" : "Rollback", on_transaction_reply, c,
                                     NULL);
        if (r < 0) {
                fprintf(stderr, "packetscopectl: cannot call %s: %s\n",
                        confirm ? "Confirm" : "Rollback", strerror(-r));
                confirmation_done(c, r, NULL);
        }
}

/* "y" or "yes", in any case; anything else is a no. */
static bool answer_is_yes(const char *s) {
        size_t n;

        s += strspn(s, " \t");
        n = strcspn(s, " \t\r\n");
        return (n == 1 && strncasecmp(s, "y", 1) == 0) || (n == 3 && strncasecmp(s, "yes", 3) == 0);
}

static int on_answer(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Confirmation *c = userdata;
        char line[256];
        ssize_t n;

        n = read(fd, line, sizeof line - 1);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
                return 0;
        line[n > 0 ? n : 0] = '\0';
        if (n <= 0)
                fputc('\n', stderr); /* the end of input: the prompt's line still needs ending */
        transaction_call(c, n > 0 && answer_is_yes(line));
        return 0;
}

/* "Keep the new rules? [y/N] (rolling back in 19s) ", redrawn in place on a terminal. */
static void print_prompt(const Confirmation *c, bool redraw) {
        uint64_t now = now_usec(CLOCK_MONOTONIC), left;
        char span[FORMAT_RELATIVE_MAX];

        /* Rounded up: the first prompt shows the whole time given. */
        left = c->deadline > now ? (c->deadline - now + USEC_PER_SEC - 1) / USEC_PER_SEC : 0;
        fprintf(stderr, "%sKeep the new rules? [y/N] (rolling back in %s) ",
                redraw ? "\r\033[K" : "", format_timespan(span, sizeof span, left * USEC_PER_SEC));
        fflush(stderr);
}

static int on_tick(sd_event_source *s, uint64_t usec, void *userdata) {
        Confirmation *c = userdata;
        int r;

        if (c->call || c->done)
                return 0;
        print_prompt(c, true);
        r = sd_event_source_set_time(s, usec + USEC_PER_SEC);
        if (r >= 0)
                r = sd_event_source_set_enabled(s, SD_EVENT_ON);
        return r < 0 ? r : 0;
}

static int on_deadline(sd_event_source *s, uint64_t usec, void *userdata) {
        Confirmation *c = userdata;

        fputs("\nNo answer in time: rolling back.\n", stderr);
        transaction_call(c, false);
        return 0;
}

static int on_finished(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Confirmation *c = userdata;
        int confirmed;

        if (!c->path || !streq_ptr(sd_bus_message_get_path(m), c->path))
                return 0; /* another transaction */
        if (sd_bus_message_read(m, "b", &confirmed) < 0)
                return 0;
        /* Ended by our own call (its reply follows), by the daemon's timer or by someone else:
         * the signal is what happened. */
        if (confirmed)
                confirmation_done(c, 0, c->call && c->confirming
                                  ? "Confirmed: the new rules are kept."
                                  : "The transaction was confirmed.");
        else
                confirmation_done(c, -ECANCELED, c->call
                                  ? "Rolled back: the previous rules are back."
                                  : "The transaction rolled back: the previous rules are back.");
        return 0;
}

static int on_interrupt(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        Confirmation *c = userdata;

        fputs("\nInterrupted: rolling back.\n", stderr);
        transaction_call(c, false);
        return 0;
}

/* A file as for import (one rule, an array, or {"filters": [...]}) into Apply's aa{sv}. */
static int read_rules_file(const char *name, json_t **ret_doc, json_t **ret_list) {
        _cleanup_free_ char *text = NULL;
        _cleanup_json_ json_t *doc = NULL;
        const char *shown = streq(name, "-") ? "standard input" : name;
        json_error_t jerr;
        json_t *list;
        size_t i;
        json_t *rule;
        int r;

        r = read_input(name, &text);
        if (r < 0)
                return r;
        doc = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
        if (!doc) {
                fprintf(stderr, "packetscopectl: %s is not valid JSON: line %d column %d: %s\n",
                        shown, jerr.line, jerr.column, jerr.text);
                return -EBADMSG;
        }
        list = json_is_object(doc) && json_object_get(doc, "filters") ? json_object_get(doc, "filters")
                                                                       : doc; /* borrowed */
        if (!json_is_array(list) && !json_is_object(list)) {
                fprintf(stderr, "packetscopectl: %s holds %s; accepted: a rule object, an array "
                        "of rules or {\"filters\": [...]}\n", shown, json_type_name(list));
                return -EBADMSG;
        }
        if (json_is_array(list)) {
                json_array_foreach(list, i, rule) {
                        _cleanup_free_ char *err = NULL;

                        r = rule_check(rule, &err);
                        if (r < 0) {
                                fprintf(stderr, "packetscopectl: rule #%zu of %s: %s\n", i, shown,
                                        err ? err : strerror(-r));
                                return r;
                        }
                }
        } else {
                _cleanup_free_ char *err = NULL;

                r = rule_check(list, &err);
                if (r < 0) {
                        fprintf(stderr, "packetscopectl: %s: %s\n", shown, err ? err : strerror(-r));
                        return r;
                }
        }
        *ret_list = list;
        *ret_doc = TAKE_PTR(doc);
        return 0;
}

static int apply_result_json(const char *path, uint64_t deadline, int result) {
        _cleanup_json_ json_t *o = json_pack("{s:s,s:I,s:o}", "transaction", path,
                                             "deadline_usec", (json_int_t) deadline,
                                             "confirmed", result == 1 ? json_null()
                                                                      : json_boolean(result == 0));

        return o ? print_json(o) : -ENOMEM;
}

int verb_filter_apply(sd_bus *bus, char **args, int n_args) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        _cleanup_(sd_bus_slot_unrefp) sd_bus_slot *match = NULL;
        _cleanup_json_ json_t *doc = NULL;
        _cleanup_free_ char *path = NULL;
        const char *mode = (arg.given & OPT_REPLACE) ? "replace" : "merge", *p;
        Confirmation c = { .bus = bus, .result = -EIO };
        char when[64], span[FORMAT_RELATIVE_MAX];
        uint64_t deadline, now, left, left_sec;
        json_t *list, *rule;
        size_t n = 0, i;
        sigset_t mask;
        int r;

        assert(bus);
        assert(args);

        r = read_rules_file(args[0], &doc, &list);
        if (r < 0)
                return r;

        /* Listen before the transaction exists: a short one may end before we could look. */
        r = sd_event_default(&c.event);
        if (r >= 0)
                r = sd_bus_attach_event(bus, c.event, SD_EVENT_PRIORITY_NORMAL);
        if (r >= 0)
                r = sd_bus_match_signal(bus, &match, PS_BUS_NAME, NULL, PS_IFACE_TRANSACTION,
                                        "Finished", on_finished, &c);
        if (r < 0) {
                fprintf(stderr, "packetscopectl: cannot watch the transaction: %s\n", strerror(-r));
                goto finish;
        }

        r = sd_bus_message_new_method_call(bus, &m, PS_BUS_NAME, PS_OBJECT_FILTERS,
                                           PS_IFACE_FILTERS, "Apply");
        if (r >= 0)
                r = sd_bus_message_open_container(m, 'a', "a{sv}");
        if (json_is_array(list)) {
                json_array_foreach(list, i, rule) {
                        if (r >= 0)
                                r = append_rule(m, rule, true);
                        n++;
                }
        } else {
                if (r >= 0)
                        r = append_rule(m, list, true);
                n = 1;
        }
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        if (r >= 0)
                r = sd_bus_message_append(m, "su", mode, (uint32_t) arg.confirm_sec);
        if (r < 0) {
                r = bus_error("building the rules", NULL, r);
                goto finish;
        }
        r = sd_bus_call(bus, m, 0, &error, &reply);
        if (r < 0) {
                r = bus_error("Apply", &error, r);
                goto finish;
        }
        r = sd_bus_message_read(reply, "o", &p);
        if (r >= 0 && !(path = strdup(p)))
                r = -ENOMEM;
        if (r < 0) {
                r = bus_error("reading the Apply reply", NULL, r);
                goto finish;
        }
        c.path = path;

        now = now_usec(CLOCK_REALTIME);
        sd_bus_error_free(&error);
        if (sd_bus_get_property_trivial(bus, PS_BUS_NAME, path, PS_IFACE_TRANSACTION, "Deadline",
                                        &error, 't', &deadline) < 0)
                deadline = now + arg.confirm_sec * USEC_PER_SEC; /* ended already, or so close */
        left = deadline > now ? deadline - now : 0;
        left_sec = (left + USEC_PER_SEC / 2) / USEC_PER_SEC;
        format_timestamp(when, sizeof when, deadline);
        if (arg.json == JSON_OFF)
                printf("Applied %zu rule%s (%s) as %s.\nThey roll back at %s (in %s) unless "
                       "confirmed.\n", n, n == 1 ? "" : "s", mode, path, when,
                       format_timespan(span, sizeof span, left_sec * USEC_PER_SEC));
        fflush(stdout);

        if (arg.given & OPT_YES) {
                /* The caller checked what it needed to: keep them now. */
                transaction_call(&c, true);
        } else if (!isatty(STDIN_FILENO)) {
                fprintf(stderr, "Standard input is not a terminal and --yes was not given: not "
                        "confirming.\nThe rules roll back at %s unless confirmed with:\n"
                        "  packetscopectl filter confirm %s\n", when, strrchr(path, '/') + 1);
                r = arg.json != JSON_OFF ? apply_result_json(path, deadline, 1) : 0;
                goto finish;
        } else {
                c.deadline = now_usec(CLOCK_MONOTONIC) + left;
                print_prompt(&c, false);
                sigemptyset(&mask);
                sigaddset(&mask, SIGINT);
                sigaddset(&mask, SIGTERM);
                /* sd-event takes signals through a signalfd, which needs them blocked first. */
                if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0) {
                        r = -errno;
                        goto finish;
                }
                r = sd_event_add_io(c.event, &c.input, STDIN_FILENO, EPOLLIN, on_answer, &c);
                if (r >= 0)
                        r = sd_event_add_time_relative(c.event, NULL, CLOCK_MONOTONIC, left, 0,
                                                       on_deadline, &c);
                /* The countdown, once a second, where it can be redrawn in place. */
                if (r >= 0 && isatty(STDERR_FILENO))
                        r = sd_event_add_time(c.event, NULL, CLOCK_MONOTONIC,
                                              now_usec(CLOCK_MONOTONIC) + USEC_PER_SEC, 0,
                                              on_tick, &c);
                if (r >= 0)
                        r = sd_event_add_signal(c.event, NULL, SIGINT, on_interrupt, &c);
                if (r >= 0)
                        r = sd_event_add_signal(c.event, NULL, SIGTERM, on_interrupt, &c);
                if (r < 0) {
                        fprintf(stderr, "packetscopectl: cannot wait for the answer: %s\n",
                                strerror(-r));
                        transaction_call(&c, false);
                }
        }
        r = sd_event_loop(c.event);
        if (r < 0) {
                fprintf(stderr, "packetscopectl: waiting for the transaction failed: %s\n",
                        strerror(-r));
                goto finish;
        }
        r = c.result;
        if (arg.json != JSON_OFF && (r == 0 || r == -ECANCELED))
                (void) apply_result_json(path, deadline, r);

finish:
        c.call = sd_bus_slot_unref(c.call);
        c.input = sd_event_source_disable_unref(c.input);
        match = sd_bus_slot_unref(match);
        if (c.event) {
                sd_bus_detach_event(bus);
                c.event = sd_event_unref(c.event);
        }
        return r;
}


/* The pending transaction: the child node under the transactions' path (one at a time). */
static int pending_transaction(sd_bus *bus, char **ret) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *xml, *node;
        uint32_t n;
        int r;

        r = bus_call(bus, PS_OBJECT_TRANSACTIONS, "org.freedesktop.DBus.Introspectable",
                     "Introspect", &error, &reply, NULL);
        if (r < 0)
                return bus_error("looking for the pending transaction", &error, r);
        r = sd_bus_message_read(reply, "s", &xml);
        if (r < 0)
                return bus_error("reading the transactions", NULL, r);
        node = strstr(xml, "<node name=\"");
        if (!node || sscanf(node, "<node name=\"%" SCNu32 "\"", &n) != 1) {
                fputs("packetscopectl: no transaction is pending; see packetscopectl filter "
                      "apply\n", stderr);
                return -ENOENT;
        }
        if (asprintf(ret, PS_OBJECT_TRANSACTIONS "/%" PRIu32, n) < 0)
                return -ENOMEM;
        return 0;
}

/* filter confirm / filter rollback [ID]: ends a transaction of filter apply from anywhere. */
static int transaction_end(sd_bus *bus, char **args, int n_args, bool confirm) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_free_ char *path = NULL;
        uint32_t id;
        int r;

        assert(bus);

        if (n_args > 0) {
                if (safe_atou32(args[0], &id) < 0)
                        return usage_error("invalid transaction id '%s'; accepted: the number "
                                           "filter apply printed", args[0]);
                if (asprintf(&path, PS_OBJECT_TRANSACTIONS "/%" PRIu32, id) < 0)
                        return -ENOMEM;
        } else {
                r = pending_transaction(bus, &path);
                if (r < 0)
                        return r;
        }
        r = bus_call(bus, path, PS_IFACE_TRANSACTION, confirm ? "Confirm" : "Rollback", &error,
                     NULL, NULL);
        if (r < 0 && sd_bus_error_has_names(&error, PS_ERROR_NO_SUCH_TRANSACTION,
                                            SD_BUS_ERROR_UNKNOWN_OBJECT)) {
                fprintf(stderr, "packetscopectl: transaction %s is not pending (it was confirmed "
                        "or rolled back already)\n", strrchr(path, '/') + 1);
                return -ENOENT;
        }
        if (r < 0)
                return bus_error(confirm ? "Confirm" : "Rollback", &error, r);
        if (arg.json != JSON_OFF) {
                _cleanup_json_ json_t *o = json_pack("{s:s,s:b}", "transaction", path,
                                                     "confirmed", confirm);

                return o ? print_json(o) : -ENOMEM;
        }
        puts(confirm ? "Confirmed: the new rules are kept."
                     : "Rolled back: the previous rules are back.");
        return 0;
}

int verb_filter_confirm(sd_bus *bus, char **args, int n_args) {
        return transaction_end(bus, args, n_args, true);
}

int verb_filter_rollback(sd_bus *bus, char **args, int n_args) {
        return transaction_end(bus, args, n_args, false);
}
