/* SPDX-License-Identifier: MIT */
#pragma once

#include <bpf/bpf.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * The map operations the daemon needs, each in one place: reading a hash table in batches
 * (BPF_MAP_LOOKUP_BATCH: one syscall per few thousand entries instead of two per entry) as a
 * whole walk or as a bounded slice per poll tick resumed where the last one stopped; reading
 * and summing a per-CPU value; opening a pinned map or creating and pinning it.
 */

#define BPF_MAP_BATCH 4096u

typedef int (*bpf_map_visit_t)(const void *key, const void *value, void *userdata);

/* Walks the whole map; the callback returning < 0 stops the walk with that error. */
int bpf_map_walk(int map_fd, size_t key_size, size_t value_size, bpf_map_visit_t visit,
                 void *userdata, uint64_t *ret_count);
/* The same, a batch (at most BPF_MAP_BATCH entries, keys and values packed) per call. */
typedef int (*bpf_map_batch_visit_t)(const void *keys, const void *values, size_t n,
                                     void *userdata);
int bpf_map_walk_batches(int map_fd, size_t key_size, size_t value_size,
                         bpf_map_batch_visit_t visit, void *userdata, uint64_t *ret_count);

typedef struct BpfMapSweeper {
        uint64_t cursor;   /* opaque batch token of the next slice */
        bool started;      /* cursor is valid */
        uint64_t seen;     /* entries seen in the current pass */
        uint64_t last_count; /* entries seen in the last complete pass */
        bool have_count;
        uint64_t expired_total;
        void *keys, *values; /* BPF_MAP_BATCH-sized buffers */
        size_t key_size, value_size;
        /* The last batch read: entries [batch_next, batch_n) are still to be examined (a step
         * that reached its deletion bound left them), batch_more: the table goes on after it. */
        uint32_t batch_n, batch_next;
        bool batch_more;
} BpfMapSweeper;

/* The most entries one step deletes: each is read again and deleted, two system calls (1-3 us
 * each on a small VM, more under load), so a step that finds a table's worth of entries expired
 * at once keeps the loop for tens of milliseconds at most and goes on at the next step. */
#define BPF_MAP_SWEEP_DELETES_MAX 2048u

int bpf_map_sweeper_init(BpfMapSweeper *s, size_t key_size, size_t value_size);
void bpf_map_sweeper_done(BpfMapSweeper *s);

/*
 * Examines up to `budget` entries from where the last call stopped and deletes those idle for
 * longer than their timeout, at most BPF_MAP_SWEEP_DELETES_MAX of them (the entries after the
 * last one deleted wait for the next call). `is_expired` decides per entry. Returns the number
 * deleted; sets *ret_pass_done when the end of the table was reached (the next call starts
 * over).
 */
typedef bool (*bpf_map_expired_t)(const void *key, const void *value, uint64_t now_ns,
                                  void *userdata);
int bpf_map_sweeper_step(BpfMapSweeper *s, int map_fd, size_t budget, uint64_t now_ns,
                         bpf_map_expired_t is_expired, void *userdata, bool *ret_pass_done);

/* Visits up to `budget` entries (whole batches) from where the last call stopped; sets
 * *ret_pass_done at the end of the table (the next call starts over). */
int bpf_map_walk_step(BpfMapSweeper *s, int map_fd, size_t budget, bpf_map_batch_visit_t visit,
                      void *userdata, bool *ret_pass_done);

/* The number of possible CPUs: the length of a per-CPU value. */
int bpf_possible_cpus(void);
/* Reads the per-CPU values of `key` and adds each CPU's into *sum with `add`. */
int bpf_map_sum_percpu(int map_fd, const void *key, size_t value_size,
                       void (*add)(void *sum, const void *cpu_value), void *sum);
/* Sets the per-CPU values of `key` to zero on every CPU. */
int bpf_map_zero_percpu(int map_fd, const void *key, size_t value_size);
/* The same for n u32 keys, in batches where the kernel has them: a new set of 100,000 rules
 * zeroes 100,000 counter slots. Returns the first error; the other keys are still zeroed. */
int bpf_map_zero_percpu_keys(int map_fd, const uint32_t *keys, size_t n, size_t value_size);

typedef struct BpfMapSpec {
        const char *name;
        enum bpf_map_type type;
        uint32_t key_size, value_size, max_entries, flags;
} BpfMapSpec;

/* Opens <dir>/<name> if it is a map of this shape; else (absent, or an older layout) creates
 * the map and pins it there. Returns the fd. */
int bpf_map_pin_or_create(const char *dir, const BpfMapSpec *spec);
