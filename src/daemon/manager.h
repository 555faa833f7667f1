/* SPDX-License-Identifier: MIT */
#pragma once

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "bans.h"
#include "bus-names.h"
#include "conf.h"
#include "filters.h"
#include "health.h"
#include "link.h"
#include "panic.h"
#include "polkit.h"
#include "state.h"

/* A sampled drop of the kernel (drop-events.c), for whoever shows them. */
typedef struct DropEvent {
        uint32_t rule_id; /* UINT32_MAX: the rule is gone */
        const char *link, *protocol, *src, *dst;
        uint16_t sport, dport;
} DropEvent;

typedef void (*drop_event_handler_t)(const DropEvent *e, void *userdata);

typedef enum LinkEvent {
        LINK_ADDED,    /* guarded now */
        LINK_REMOVING, /* about to go (the object still exists) */
        LINK_REMOVED,  /* gone; l is NULL */
} LinkEvent;

typedef struct Manager Manager;
typedef struct Ai Ai;

struct Manager {
        sd_event *event;
        sd_bus *bus;
        Config config;
        char *bpffs_root;
        char *state_dir;
        char *config_dir;
        const char *ssh_config_dir; /* where sshd's Port lines are read (config_ssh_ports) */

        Link **links;
        size_t n_links;

        State state;              /* links.json: what an admin asked to guard */
        PolkitRegistry *polkit;   /* authorization checks in flight */
        FilterStore *filters;
        Ai *ai;                   /* the AI client and its jobs (ai.c) */
        BanStore *bans;           /* shares its maps with every link's program */
        Panic panic;              /* panic mode: its maps too */
        unsigned transaction_counter; /* names the transactions */

        sd_event_source *poll_timer;
        struct ring_buffer *drop_ring; /* sampled drop events of every link */
        sd_event_source *drop_source;
        drop_event_handler_t on_drop; /* besides the journal */
        void *on_drop_userdata;
        uint64_t started_usec; /* CLOCK_REALTIME */
        Health *health;        /* the machine's health: pressure, sampler, anomalies */
        char *status_text;        /* the last STATUS= sent to the service manager */
        uint64_t status_sent_usec; /* CLOCK_MONOTONIC */

        /* The bus side, which the domain does not know: set by the process (packetscoped.c)
         * to register every object once connected; it sets on_link to hear of links. */
        int (*bus_register)(Manager *m);
        void (*on_link)(Manager *m, Link *l, LinkEvent event);
        /* Set by the bus side to hear of health figures, thresholds and anomalies. */
        void (*on_health)(Manager *m, HealthEvent event, const Anomaly *a);
};

int manager_new(Manager **ret);
Manager *manager_free(Manager *m);

/* Adopts what earlier daemons pinned, connects to the bus, starts the poll timer. */
int manager_start(Manager *m);

Link *manager_find_link(Manager *m, const char *name);
/* who and log_fields (NULL-terminated, or NULL) say for the journal who asked for it. */
int manager_attach(Manager *m, const char *ifname, LinkMode mode, const char *who,
                   const char *const *log_fields, Link **ret, sd_bus_error *error);
int manager_detach(Manager *m, Link *l, const char *who, const char *const *log_fields,
                   sd_bus_error *error);

/* Sums every link's counters (as of the last poll) and rates. */
void manager_totals(Manager *m, struct ps_stats *ret, double *ret_pps, double *ret_bps,
                    uint64_t *ret_flows, uint64_t *ret_icmp);


/* Re-reads the configuration (as at start: the files, then sshd's ports) and applies what can
 * change in a running daemon: everything but the table sizes, which each guarded interface
 * keeps until it is attached anew. On a problem nothing changes and -EINVAL comes with every
 * problem in *ret_error, one per line. On success *ret_applied and *ret_pending (NULL when
 * empty) name the changed keys, "Key=value" separated by ", ", that took effect and that
 * wait for the next attach. */
int manager_reload(Manager *m, const char *who, const char *const *log_fields,
                   char **ret_applied, char **ret_pending, char **ret_error);

/* Turns panic mode on or off on every guarded link (panic.h); logged with who asked. A change
 * that cannot be stored is not made (StateNotWritable). Returns 1 when it changed, 0 when it
 * was so already. */
int manager_set_panic(Manager *m, bool on, const char *who, const char *const *log_fields,
                      sd_bus_error *error);

/* Sends STATUS= (links, rules, drops per second) to the service manager when the links or
 * rules changed, or at most every MANAGER_STATUS_INTERVAL_USEC when only the rate did. */
#define MANAGER_STATUS_INTERVAL_USEC (5 * USEC_PER_SEC)
void manager_update_status(Manager *m, bool force);

/* Ends a pending confirm-or-rollback change as if its time had run out: on a clean exit an
 * unconfirmed change is undone. */
void manager_rollback_pending(Manager *m);

/* A clean stop, once the loop has ended: manager_rollback_pending(), then the ban journal folded
 * into its snapshot when it is long (ban_store_stop()), so that the next start is quick. */
void manager_stop(Manager *m);

/* drop-events.c: the sampled drops of every link to the journal and to on_drop. */
int manager_start_drop_events(Manager *m);
void manager_stop_drop_events(Manager *m);

/* describe.c: the daemon's state as JSON (Manager.Describe). */
int manager_describe_json(Manager *m, char **ret);
