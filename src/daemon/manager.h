/* SPDX-License-Identifier: MIT */
#pragma once

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "bans.h"
#include "bus-names.h"
#include "conf.h"
#include "filters.h"
#include "link.h"
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

struct Manager {
        sd_event *event;
        sd_bus *bus;
        Config config;
        char *bpffs_root;
        char *state_dir;
        char *config_dir;

        Link **links;
        size_t n_links;

        State state;              /* links.json: what an admin asked to guard */
        PolkitRegistry *polkit;   /* authorization checks in flight */
        FilterStore *filters;
        BanStore *bans;           /* shares its maps with every link's program */
        unsigned transaction_counter; /* names the transactions */

        sd_event_source *poll_timer;
        struct ring_buffer *drop_ring; /* sampled drop events of every link */
        sd_event_source *drop_source;
        drop_event_handler_t on_drop; /* besides the journal */
        void *on_drop_userdata;
        uint64_t started_usec; /* CLOCK_REALTIME */

        /* The bus side, which the domain does not know: set by the process (packetscoped.c)
         * to register every object once connected; it sets on_link to hear of links. */
        int (*bus_register)(Manager *m);
        void (*on_link)(Manager *m, Link *l, LinkEvent event);
};

int manager_new(Manager **ret);
Manager *manager_free(Manager *m);

/* Adopts what earlier daemons pinned, connects to the bus, starts the poll timer. */
int manager_start(Manager *m);

Link *manager_find_link(Manager *m, const char *name);
int manager_attach(Manager *m, const char *ifname, LinkMode mode, Link **ret,
                   sd_bus_error *error);
int manager_detach(Manager *m, Link *l);

/* Sums every link's counters (as of the last poll) and rates. */
void manager_totals(Manager *m, struct ps_stats *ret, double *ret_pps, double *ret_bps,
                    uint64_t *ret_flows, uint64_t *ret_icmp);


/* Ends a pending confirm-or-rollback change as if its time had run out: on a clean exit an
 * unconfirmed change is undone. */
void manager_rollback_pending(Manager *m);

/* drop-events.c: the sampled drops of every link to the journal and to on_drop. */
int manager_start_drop_events(Manager *m);
void manager_stop_drop_events(Manager *m);

/* describe.c: the daemon's state as JSON (Manager.Describe). */
int manager_describe_json(Manager *m, char **ret);
