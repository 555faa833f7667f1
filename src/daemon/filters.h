/* SPDX-License-Identifier: MIT */
#pragma once

#include <systemd/sd-event.h>

#include "filter-compile.h"
#include "rule.h"

typedef struct Manager Manager;

/*
 * The rule set: the rules in memory, their copy in $STATE_DIRECTORY/filters.json and the
 * compiled form in the kernel maps shared by every guarded link (pinned in
 * <bpffs-root>/:filters/). Every change builds a whole new list, compiles it into the inactive
 * bank, flips the bank, and only then replaces the list and the file: a change that fails at
 * any step leaves the kernel, the memory and the file as they were.
 */
typedef struct FilterStore {
        Manager *manager;
        Filter **rules;
        size_t n_rules;
        uint32_t next_id;

        int state_fd, banks_fd, rules_fd, counters_fd, events_fd;
        uint32_t state; /* generation << 1 | active bank, as written to filter_state */
        uint8_t *slot_used; /* PS_FILTER_SLOTS bytes */

        size_t n_shapes, n_entries; /* of the active set */
        uint64_t last_apply_usec;   /* how long the last kernel update took */

        sd_event_source *expiry_timer;
} FilterStore;

#define FILTERS_PIN_DIR ":filters" /* ':' never appears in an interface name */

int filter_store_new(Manager *m, FilterStore **ret);
FilterStore *filter_store_free(FilterStore *s);

/* Opens the pinned maps or creates and pins them; then loads filters.json and puts the set in
 * the kernel. A corrupt file is kept as filters.json.corrupt and the set starts empty. */
int filter_store_start(FilterStore *s, char **ret_error);

/* The map fds a link's program must share (bpf_map__reuse_fd). */
int filter_store_fds(FilterStore *s, int *state, int *banks, int *rules, int *counters,
                     int *events);

Filter *filter_store_find(FilterStore *s, uint32_t id);

/*
 * Replaces the whole list with `rules` (ownership of the array and the rules passes to the
 * store on success; on failure the caller keeps it). Assigns ids, slots and times to new
 * rules, compiles, loads the kernel, persists unless `persist` is false.
 */
int filter_store_replace(FilterStore *s, Filter **rules, size_t n, bool persist,
                         char **ret_error);

/* Reads the per-rule counters from the kernel into hits/bytes/last_hit of every rule. */
int filter_store_read_counters(FilterStore *s);
int filter_store_read_counter(FilterStore *s, Filter *f);

/* A copy of the list (rules duplicated), the starting point of a change. */
int filter_store_snapshot(FilterStore *s, Filter ***ret, size_t *ret_n);

int filter_store_save(FilterStore *s);

/* Fills the inactive bank of these maps with the set and flips to it; *state is the value of
 * filter_state before, and after on success. Used by the store, the tests and the bench. */
int filter_kernel_load(int state_fd, int banks_fd, int rules_fd, uint32_t *state,
                       const FilterSet *set);
json_t *filter_store_export(FilterStore *s);
