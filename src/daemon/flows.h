/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "guard-abi.h"

/*
 * Reading the kernel's hash tables in batches (BPF_MAP_LOOKUP_BATCH: one syscall per few
 * thousand entries instead of two per entry), for queries (a full walk) and for idle expiry
 * (a bounded slice per poll tick, resumed where the last one stopped).
 */

#define FLOWS_BATCH 4096u

typedef int (*flows_visit_t)(const void *key, const void *value, void *userdata);

/* Walks the whole map; the callback returning < 0 stops the walk with that error. */
int flows_foreach(int map_fd, size_t key_size, size_t value_size, flows_visit_t visit,
                  void *userdata, uint64_t *ret_count);

typedef struct FlowSweeper {
        uint64_t cursor;   /* opaque batch token of the next slice */
        bool started;      /* cursor is valid */
        uint64_t seen;     /* entries seen in the current pass */
        uint64_t last_count; /* entries seen in the last complete pass */
        bool have_count;
        uint64_t expired_total;
        void *keys, *values; /* FLOWS_BATCH-sized buffers */
        size_t key_size, value_size;
} FlowSweeper;

int flow_sweeper_init(FlowSweeper *s, size_t key_size, size_t value_size);
void flow_sweeper_done(FlowSweeper *s);

/*
 * Examines up to `budget` entries from where the last call stopped and deletes those idle for
 * longer than their timeout. `is_expired` decides per entry. Returns the number deleted; sets
 * *ret_pass_done when the end of the table was reached (the next call starts over).
 */
typedef bool (*flows_expired_t)(const void *key, const void *value, uint64_t now_ns,
                                void *userdata);
int flow_sweeper_step(FlowSweeper *s, int map_fd, size_t budget, uint64_t now_ns,
                      flows_expired_t is_expired, void *userdata, bool *ret_pass_done);

/* The expiry rule of the flow table: TCP that saw FIN or RST expires after closed_ns. */
bool flow_is_expired(const struct ps_flow_key *k, const struct ps_flow_value *v, uint64_t now_ns,
                     uint64_t idle_ns, uint64_t closed_ns);
