/* SPDX-License-Identifier: MIT */
#pragma once

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "bus-names.h"
#include "conf.h"
#include "filters.h"
#include "link.h"
#include "polkit.h"
#include "state.h"

/* A confirm-or-rollback change of the rule set (Filters.Apply). */
typedef struct Transaction {
        char *path;
        Filter **rollback;
        size_t n_rollback;
        uint64_t deadline_usec; /* CLOCK_MONOTONIC */
        sd_event_source *timer;
} Transaction;

typedef struct Manager {
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
        Transaction *transaction; /* at most one pending */
        unsigned transaction_counter;

        sd_event_source *poll_timer;
        struct ring_buffer *drop_ring; /* sampled drop events of every link */
        sd_event_source *drop_source;
        uint64_t started_usec; /* CLOCK_REALTIME */
} Manager;

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

/* Converts a CLOCK_MONOTONIC ns stamp from the maps into CLOCK_REALTIME µs. */
uint64_t manager_mono_to_realtime_usec(uint64_t mono_ns);

/* Bus object registration (manager-bus.c, link-bus.c, connections-bus.c). */
int manager_bus_register(Manager *m);
int link_bus_register(Manager *m);
int connections_bus_register(Manager *m);
int filters_bus_register(Manager *m);
void manager_transaction_free(Manager *m);
void manager_transaction_rollback(Manager *m);
int bus_read_dict_json(sd_bus_message *m, json_t **ret, sd_bus_error *error);
int manager_emit_links_changed(Manager *m);

/* filters-bus.c: emits the signals of a rule-set change (ids before it, for the diff). */
void manager_filters_changed(Manager *m, const uint32_t *old_ids, size_t n_old);

/* drop-events.c */
int manager_start_drop_events(Manager *m);
void manager_stop_drop_events(Manager *m);

/* describe.c */
int manager_describe_json(Manager *m, char **ret);
