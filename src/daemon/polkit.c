/* SPDX-License-Identifier: MIT */
#include <stdio.h>

#include <time.h>

#include "log.h"
#include "polkit.h"
#include "util.h"

typedef struct PolkitQuery {
        PolkitRegistry *registry;
        sd_bus_message *call; /* the method call waiting for the answer (a reference) */
        char *action;
        sd_bus_slot *slot;    /* the pending CheckAuthorization */
        bool done;
        bool dispatched;      /* the requeued call went through the bus again */
        uint64_t done_usec;   /* CLOCK_MONOTONIC, when polkit answered */
        bool authorized;
        bool challenge;
        sd_bus_error error;   /* polkit could not answer */
} PolkitQuery;

struct PolkitRegistry {
        PolkitQuery *queries[POLKIT_PENDING_MAX];
        unsigned n;
        sd_bus_slot *filter; /* sees requeued calls go by */
};

static PolkitQuery *polkit_query_free(PolkitQuery *q) {
        if (!q)
                return NULL;
        sd_bus_slot_unref(q->slot);
        sd_bus_message_unref(q->call);
        sd_bus_error_free(&q->error);
        free(q->action);
        free(q);
        return NULL;
}

static void registry_remove(PolkitRegistry *r, PolkitQuery *q) {
        for (unsigned i = 0; i < r->n; i++)
                if (r->queries[i] == q) {
                        r->queries[i] = r->queries[--r->n];
                        return;
                }
}

PolkitRegistry *polkit_registry_free(PolkitRegistry *r) {
        if (!r)
                return NULL;
        for (unsigned i = 0; i < r->n; i++)
                polkit_query_free(r->queries[i]);
        sd_bus_slot_unref(r->filter);
        free(r);
        return NULL;
}

unsigned polkit_registry_pending(const PolkitRegistry *r) {
        return r ? r->n : 0;
}

static int on_check_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        PolkitQuery *q = userdata;
        const sd_bus_error *e;
        int authorized = 0, challenge = 0, r;

        q->slot = sd_bus_slot_unref(q->slot);
        q->done = true;
        q->done_usec = now_usec(CLOCK_MONOTONIC);

        e = sd_bus_message_get_error(reply);
        if (e) {
                /* polkit absent, timed out or refused to answer: the caller is told, not let in. */
                sd_bus_error_setf(&q->error, PS_ERROR_AUTH_FAILED,
                                  "cannot check authorization for '%s' with polkit: %s: %s",
                                  q->action, e->name, e->message ? e->message : "");
        } else {
                r = sd_bus_message_enter_container(reply, 'r', "bba{ss}");
                if (r >= 0)
                        r = sd_bus_message_read(reply, "bb", &authorized, &challenge);
                if (r < 0)
                        sd_bus_error_setf(&q->error, PS_ERROR_AUTH_FAILED,
                                          "cannot parse polkit's answer for '%s': %s", q->action,
                                          strerror(-r));
                q->authorized = authorized;
                q->challenge = challenge;
        }

        /* Run the method again from its first argument; it finds this answer now. */
        r = sd_bus_message_rewind(q->call, true);
        if (r >= 0)
                r = sd_bus_enqueue_for_read(sd_bus_message_get_bus(reply), q->call);
        if (r < 0) {
                log_warning_errno(r, "Cannot requeue a call after its authorization: %m");
                registry_remove(q->registry, q);
                polkit_query_free(q);
        }
        return 1;
}

/*
 * An answered check whose call never asked again (the method refused it for another reason on
 * its second run, or its object was gone so sd-bus answered without running it) would hold
 * a slot for good: answers not collected within a few seconds are dropped.
 */
#define POLKIT_ANSWER_TTL_USEC (5 * USEC_PER_SEC)

static void registry_prune(PolkitRegistry *r) {
        uint64_t now = now_usec(CLOCK_MONOTONIC);

        if (!r)
                return;
        for (unsigned i = 0; i < r->n;) {
                PolkitQuery *q = r->queries[i];

                if (q->done && now - q->done_usec > POLKIT_ANSWER_TTL_USEC) {
                        r->queries[i] = r->queries[--r->n];
                        polkit_query_free(q);
                        continue;
                }
                i++;
        }
}

static PolkitQuery *registry_find(PolkitRegistry *r, sd_bus_message *call) {
        if (!r)
                return NULL;
        for (unsigned i = 0; i < r->n; i++)
                if (r->queries[i]->call == call)
                        return r->queries[i];
        return NULL;
}

/* Runs on the next loop iteration after a requeued call was dispatched: whatever the method
 * did with it (asked again, refused it early, or its object was gone), the answer is used up. */
static int on_dispatched(sd_event_source *s, void *userdata) {
        PolkitRegistry *r = userdata;

        for (unsigned i = 0; i < r->n;) {
                PolkitQuery *q = r->queries[i];

                if (q->dispatched) {
                        r->queries[i] = r->queries[--r->n];
                        polkit_query_free(q);
                        continue;
                }
                i++;
        }
        sd_event_source_disable_unref(s);
        return 0;
}

/* A bus filter sees every message before its method runs, requeued ones included. */
static int on_bus_message(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        PolkitRegistry *r = userdata;
        PolkitQuery *q = registry_find(r, m);
        sd_event *e = sd_bus_get_event(sd_bus_message_get_bus(m));

        if (q && q->done && !q->dispatched) {
                q->dispatched = true;
                if (e)
                        (void) sd_event_add_defer(e, NULL, on_dispatched, r);
        }
        return 0;
}

int polkit_verify(sd_bus_message *call, const char *action, PolkitRegistry **registry,
                  sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *req = NULL;
        _cleanup_(sd_bus_creds_unrefp) sd_bus_creds *creds = NULL;
        PolkitQuery *q;
        const char *sender;
        uid_t uid;
        int r;

        registry_prune(*registry);
        q = registry_find(*registry, call);
        if (q) {
                if (!q->done)
                        return 0; /* still waiting; should not be dispatched twice */
                registry_remove(*registry, q);
                if (sd_bus_error_is_set(&q->error)) {
                        r = sd_bus_error_copy(error, &q->error);
                        polkit_query_free(q);
                        return r;
                }
                if (q->authorized) {
                        polkit_query_free(q);
                        return 1;
                }
                if (q->challenge)
                        r = sd_bus_error_setf(error, SD_BUS_ERROR_INTERACTIVE_AUTHORIZATION_REQUIRED,
                                              "'%s' needs interactive authentication%s", action,
                                              sd_bus_message_get_allow_interactive_authorization(call)
                                              ? ", and no authentication agent answered"
                                              : "; call again allowing interactive authorization");
                else
                        r = sd_bus_error_setf(error, SD_BUS_ERROR_ACCESS_DENIED,
                                              "polkit denies '%s' to this caller", action);
                log_struct_internal(LOG_NOTICE, 0, PS_MESSAGE_POLKIT_DENIED, NULL,
                                    "Refused %s.%s from %s: polkit did not authorize %s",
                                    strna(sd_bus_message_get_interface(call)),
                                    strna(sd_bus_message_get_member(call)),
                                    strna(sd_bus_message_get_sender(call)), action);
                polkit_query_free(q);
                return r;
        }

        /* root may do anything anyway; polkit itself grants uid 0 without rules. */
        r = sd_bus_query_sender_creds(call, SD_BUS_CREDS_EUID, &creds);
        if (r >= 0 && sd_bus_creds_get_euid(creds, &uid) >= 0 && uid == 0)
                return 1;

        sender = sd_bus_message_get_sender(call);
        if (!sender)
                return sd_bus_error_setf(error, SD_BUS_ERROR_ACCESS_DENIED,
                                         "the caller of '%s' has no bus name to check", action);

        if (!*registry) {
                *registry = calloc(1, sizeof(PolkitRegistry));
                if (!*registry)
                        return -ENOMEM;
                r = sd_bus_add_filter(sd_bus_message_get_bus(call), &(*registry)->filter,
                                      on_bus_message, *registry);
                if (r < 0) {
                        *registry = mfree(*registry);
                        return r;
                }
        }
        if ((*registry)->n >= POLKIT_PENDING_MAX)
                return sd_bus_error_setf(error, SD_BUS_ERROR_LIMITS_EXCEEDED,
                                         "%u authorization checks are already in progress; try "
                                         "again shortly", POLKIT_PENDING_MAX);

        r = sd_bus_message_new_method_call(sd_bus_message_get_bus(call), &req,
                                           "org.freedesktop.PolicyKit1",
                                           "/org/freedesktop/PolicyKit1/Authority",
                                           "org.freedesktop.PolicyKit1.Authority",
                                           "CheckAuthorization");
        if (r < 0)
                return r;
        r = sd_bus_message_append(req, "(sa{sv})sa{ss}us", "system-bus-name", 1, "name", "s",
                                  sender, action, 0,
                                  (uint32_t) (sd_bus_message_get_allow_interactive_authorization(call) ? 1 : 0),
                                  "");
        if (r < 0)
                return r;

        q = calloc(1, sizeof(PolkitQuery));
        if (!q)
                return -ENOMEM;
        q->registry = *registry;
        q->call = sd_bus_message_ref(call);
        q->action = strdup(action);
        if (!q->action) {
                polkit_query_free(q);
                return -ENOMEM;
        }
        /* Within the caller's own default timeout, so it hears from us before giving up. */
        r = sd_bus_call_async(sd_bus_message_get_bus(call), &q->slot, req, on_check_reply, q,
                              20 * 1000 * 1000);
        if (r < 0) {
                polkit_query_free(q);
                return r;
        }
        (*registry)->queries[(*registry)->n++] = q;
        return 0;
}
