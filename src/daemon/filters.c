/* SPDX-License-Identifier: MIT */
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <time.h>

#include "bpf-maps.h"
#include "filters.h"
#include "log.h"
#include "state.h"
#include "util.h"

#define FILTERS_FILE "filters.json"
/* The generation before the current one: what a corrupt filters.json is recovered from. */
#define FILTERS_PREV_FILE "filters.json.prev"
/* What the store accepts must read back: 100,000 rules with 1 KiB comments and every field. */
#define FILTERS_FILE_MAX (256u * 1024 * 1024)
/* The changes of one rule since filters.json, one record a line; filters.log.new takes them
 * while a compaction writes filters.json, and replaces filters.log once it is. */
#define FILTERS_LOG "filters.log"
#define FILTERS_LOG_NEW "filters.log.new"
/* Compacted once the journal is half the snapshot's size, and at least this. */
#define FILTERS_LOG_COMPACT_MIN (64u * 1024)
/* Present while the daemon is degraded (why, as text): the state outlives a restart, since the
 * kernel keeps enforcing the rules no file lists. */
#define FILTERS_DEGRADED_FILE "filters.degraded"
#define SLOT_NONE UINT32_MAX
/* The niceness of the thread that applies a large change (see offload_thread()). */
#define OFFLOAD_NICE 10

static const BpfMapSpec filter_maps[] = {
        { "filter_state", BPF_MAP_TYPE_ARRAY, 4, 4, 1, 0 },
        { "filter_banks", BPF_MAP_TYPE_ARRAY, 4, sizeof(struct ps_filter_bank), 2, 0 },
        { "filter_rules", BPF_MAP_TYPE_HASH, sizeof(struct ps_filter_key),
          sizeof(struct ps_filter_value), 2 * PS_FILTER_MAX_ENTRIES, BPF_F_NO_PREALLOC },
        { "filter_rules4", BPF_MAP_TYPE_HASH, sizeof(struct ps_filter_key4),
          sizeof(struct ps_filter_value), 2 * PS_FILTER_MAX_ENTRIES, BPF_F_NO_PREALLOC },
        { "filter_counters", BPF_MAP_TYPE_PERCPU_ARRAY, 4, sizeof(struct ps_filter_counter),
          PS_FILTER_SLOTS, 0 },
        { "drop_events", BPF_MAP_TYPE_RINGBUF, 0, 0, PS_DROP_EVENTS_RING, 0 },
        { "filter_gates", BPF_MAP_TYPE_ARRAY, 4, 8, 2 * PS_GATE_BANK_WORDS, BPF_F_MMAPABLE },
};

int filter_store_new(FilterStore **ret) {
        FilterStore *s;

        assert(ret);
        s = calloc(1, sizeof(FilterStore));
        if (!s)
                return -ENOMEM;
        s->state_fd = s->banks_fd = s->rules_fd = s->rules4_fd = s->counters_fd = s->events_fd = -1;
        s->gates_fd = -1;
        s->clean_bank = -1;
        state_journal_init(&s->journal);
        s->slot_used = calloc(PS_FILTER_SLOTS, 1);
        if (!s->slot_used) {
                free(s);
                return -ENOMEM;
        }
        *ret = s;
        return 0;
}

static void offload_end(FilterStore *s, bool cancelled);
static void ids_drop(FilterStore *s);
static void list_job_end(struct FilterListJob *j, bool cancelled);

FilterStore *filter_store_free(FilterStore *s) {
        if (!s)
                return NULL;
        filter_list_free(s->rules, s->n_rules);
        safe_close(s->state_fd);
        safe_close(s->banks_fd);
        safe_close(s->rules_fd);
        safe_close(s->rules4_fd);
        safe_close(s->counters_fd);
        safe_close(s->events_fd);
        safe_close(s->gates_fd);
        /* A change still in its thread: waited for, then ended as cancelled (its caller hears
         * -ECANCELED, the kernel keeps whatever it got: the next start loads filters.json). */
        if (s->offload)
                offload_end(s, true);
        /* Rule lists being written: waited for (they touch only their copies), then ended. */
        while (s->list_jobs)
                list_job_end(s->list_jobs, true);
        /* Stopped, the journals a compaction would have replaced are replayed at the next
         * start. */
        state_journal_stop(&s->journal);
        sd_event_source_unref(s->expiry_timer);
        ids_drop(s);
        free(s->slot_used);
        free(s->busy);
        free(s->degraded);
        filter_index_done(&s->index);
        free(s);
        return NULL;
}

int filter_store_fds(FilterStore *s, int *state, int *banks, int *rules, int *rules4,
                     int *gates, int *counters, int *events) {
        assert(s);
        assert(state);
        assert(banks);
        assert(rules);
        assert(rules4);
        assert(gates);
        assert(counters);
        assert(events);
        if (s->state_fd < 0)
                return -EBADF;
        *events = s->events_fd;
        *state = s->state_fd;
        *banks = s->banks_fd;
        *rules = s->rules_fd;
        *rules4 = s->rules4_fd;
        *gates = s->gates_fd;
        *counters = s->counters_fd;
        return 0;
}

/* The id index (s->by_id). Every change of the whole list drops it (ids_drop()); a change of
 * one rule puts, replaces or deletes that rule's entry; filter_store_find() builds it again
 * from the list when it is not there. */
static size_t ids_home(const FilterStore *s, uint32_t id) {
        return (size_t) (((uint64_t) id * UINT64_C(0x9E3779B97F4A7C15)) >> (64 - s->by_id_bits));
}

static void ids_drop(FilterStore *s) {
        s->by_id = mfree(s->by_id);
        s->by_id_bits = 0;
        s->by_id_n = 0;
}

/* The entry of `id`, or the empty one where it would go. */
static size_t ids_probe(const FilterStore *s, uint32_t id) {
        size_t mask = ((size_t) 1 << s->by_id_bits) - 1, i = ids_home(s, id);

        while (s->by_id[i] && s->by_id[i]->id != id)
                i = (i + 1) & mask;
        return i;
}

/* Puts f in the index, or replaces the rule of its id there. At most half full: past that the
 * index is dropped and built again, larger, when next needed. */
static void ids_put(FilterStore *s, Filter *f) {
        size_t i;

        if (!s->by_id)
                return;
        i = ids_probe(s, f->id);
        if (!s->by_id[i]) {
                if ((s->by_id_n + 1) * 2 > (size_t) 1 << s->by_id_bits) {
                        ids_drop(s);
                        return;
                }
                s->by_id_n++;
        }
        s->by_id[i] = f;
}

static void ids_delete(FilterStore *s, uint32_t id) {
        size_t mask, i, j;

        if (!s->by_id)
                return;
        mask = ((size_t) 1 << s->by_id_bits) - 1;
        i = ids_probe(s, id);
        if (!s->by_id[i])
                return;
        /* Linear probing without tombstones: every later entry of the run whose home is not
         * between the hole and itself moves back into the hole. */
        for (j = (i + 1) & mask; s->by_id[j]; j = (j + 1) & mask) {
                size_t k = ids_home(s, s->by_id[j]->id);

                if (i <= j ? (i < k && k <= j) : (i < k || k <= j))
                        continue;
                s->by_id[i] = s->by_id[j];
                i = j;
        }
        s->by_id[i] = NULL;
        s->by_id_n--;
}

static int ids_build(FilterStore *s) {
        unsigned bits = 4;

        ids_drop(s);
        while (((size_t) 1 << bits) < 2 * s->n_rules + 16)
                bits++;
        s->by_id = calloc((size_t) 1 << bits, sizeof(Filter *));
        if (!s->by_id)
                return -ENOMEM;
        s->by_id_bits = bits;
        for (size_t i = 0; i < s->n_rules; i++) {
                size_t k = ids_probe(s, s->rules[i]->id);

                s->by_id_n += !s->by_id[k];
                s->by_id[k] = s->rules[i];
        }
        return 0;
}

Filter *filter_store_find(FilterStore *s, uint32_t id) {
        Filter *f;

        assert(s);
        if (!s->by_id && ids_build(s) < 0) {
                /* No memory for the index: the list, walked. */
                for (size_t i = 0; i < s->n_rules; i++)
                        if (s->rules[i]->id == id)
                                return s->rules[i];
                return NULL;
        }
        f = s->by_id[ids_probe(s, id)];
        return f;
}

static int zero_counter(FilterStore *s, uint32_t slot) {
        return bpf_map_zero_percpu(s->counters_fd, &slot, sizeof(struct ps_filter_counter));
}

static int alloc_slot(FilterStore *s, uint32_t *ret) {
        static uint32_t hint = 0;

        for (uint32_t k = 0; k < PS_FILTER_SLOTS; k++) {
                uint32_t slot = (hint + k) % PS_FILTER_SLOTS;

                if (!s->slot_used[slot]) {
                        s->slot_used[slot] = 1;
                        hint = slot + 1;
                        *ret = slot;
                        return 0;
                }
        }
        return -ENOSPC;
}

/* The shape of a key of filter_rules or filter_rules4: the first word of both. */
static uint32_t key_shape(const void *key) {
        uint32_t shape;

        memcpy(&shape, key, sizeof shape);
        return shape;
}

struct doomed {
        uint32_t bank;
        size_t key_size;
        uint8_t *keys;
        size_t n, alloc;
};

static int collect_bank(const void *key, const void *value, void *userdata) {
        struct doomed *d = userdata;

        if (key_shape(key) / PS_FILTER_MAX_SHAPES != d->bank)
                return 0;
        if (d->n == d->alloc) {
                size_t alloc = d->alloc ? d->alloc * 2 : 4096;
                uint8_t *nd = reallocarray(d->keys, alloc, d->key_size);

                if (!nd)
                        return -ENOMEM;
                d->keys = nd;
                d->alloc = alloc;
        }
        memcpy(d->keys + d->n++ * d->key_size, key, d->key_size);
        return 0;
}

/* Deletes every entry of one bank (the inactive one: the set before last) from one map. */
static int clear_bank_of(int rules_fd, size_t key_size, uint32_t bank) {
        struct doomed d = { .bank = bank, .key_size = key_size };
        _cleanup_free_ uint8_t *keys = NULL;
        int r;

        r = bpf_map_walk(rules_fd, key_size, sizeof(struct ps_filter_value), collect_bank, &d,
                         NULL);
        keys = d.keys;
        if (r < 0)
                return r;
        for (size_t done = 0; done < d.n;) {
                LIBBPF_OPTS(bpf_map_batch_opts, opts);
                uint32_t n = (uint32_t) MIN(d.n - done, (size_t) 65536);

                if (bpf_map_delete_batch(rules_fd, keys + done * key_size, &n, &opts) < 0 &&
                    errno != ENOENT)
                        return -errno;
                done += n ? n : 1;
        }
        return 0;
}

static int clear_bank(int rules_fd, int rules4_fd, uint32_t bank) {
        int r;

        r = clear_bank_of(rules_fd, sizeof(struct ps_filter_key), bank);
        if (r < 0)
                return r;
        return clear_bank_of(rules4_fd, sizeof(struct ps_filter_key4), bank);
}

/* Batches of entries for one of the two maps. */
struct load_batch {
        int fd;
        uint32_t n;
        union {
                struct ps_filter_key keys[256];
                struct ps_filter_key4 keys4[256];
        };
        struct ps_filter_value values[256];
};

static int load_batch_flush(struct load_batch *b) {
        LIBBPF_OPTS(bpf_map_batch_opts, opts);
        uint32_t n = b->n;

        if (n == 0)
                return 0;
        /* keys and keys4 start at the same address: the map's key size says which. */
        if (bpf_map_update_batch(b->fd, b->keys, b->values, &n, &opts) < 0)
                return -errno;
        b->n = 0;
        return 0;
}

/* The whole filter_gates array, mapped (both banks: a mapping starts at the first value). */
#define GATES_MAP_BYTES ((size_t) 2 * PS_GATE_BANK_WORDS * sizeof(uint64_t))

/* Clears the inactive bank (of `state`) unless the caller did (`cleared`) and fills it with
 * the set; nothing reads it until the flip, whose value goes to *ret_next. */
static int kernel_fill(int banks_fd, int rules_fd, int rules4_fd, int gates_fd, uint32_t state,
                       bool cleared, const FilterSet *set, uint32_t *ret_next) {
        uint32_t bank = (state & PS_FILTER_STATE_BANK) ^ 1;
        uint64_t *gates;
        _cleanup_free_ struct load_batch *wide = NULL, *narrow = NULL;
        _cleanup_free_ struct ps_filter_bank *b = NULL;
        bool cacheable = true;
        void *map;
        int r;

        if (!cleared) {
                r = clear_bank(rules_fd, rules4_fd, bank);
                if (r < 0)
                        return r;
        }
        b = calloc(1, sizeof *b);
        wide = calloc(1, sizeof *wide);
        narrow = calloc(1, sizeof *narrow);
        if (!b || !wide || !narrow)
                return -ENOMEM;
        wide->fd = rules_fd;
        narrow->fd = rules4_fd;
        b->n_shapes = set->n_shapes;
        memcpy(b->masks, set->masks, sizeof(struct ps_match) * set->n_shapes);
        for (uint32_t i = 0; i < set->n_shapes; i++)
                b->flags[i] = filter_shape_flags(&set->masks[i]);

        /* The gates of the inactive bank, computed afresh: no packet reads them before the
         * flip. */
        map = mmap(NULL, GATES_MAP_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, gates_fd, 0);
        if (map == MAP_FAILED)
                return -errno;
        gates = (uint64_t *) map + (size_t) bank * PS_GATE_BANK_WORDS;
        memset(gates, 0, PS_GATE_BANK_WORDS * sizeof(uint64_t));
        for (size_t i = 0; i < set->n_entries; i++) {
                const FilterEntry *e = &set->entries[i];
                FilterGateWord w[FILTER_GATE_WORDS_MAX];
                size_t n = filter_gate_words(b->flags[e->key.shape], e->key.shape,
                                             &e->key.match, w);

                for (size_t j = 0; j < n; j++)
                        gates[w[j].index] |= w[j].bits;
        }
        (void) munmap(map, GATES_MAP_BYTES);

        /* The entries first, then the bank that says where they are and which packets look:
         * nothing reads this bank before the flip anyway. */
        for (size_t i = 0; i < set->n_entries; i++) {
                const FilterEntry *e = &set->entries[i];
                uint32_t shape = e->key.shape;
                struct load_batch *to;

                assert(shape < set->n_shapes);
                b->classes[shape] |= filter_entry_classes(&set->masks[shape], &e->key.match);
                if (b->flags[shape] & PS_SHAPE_KEY4) {
                        to = narrow;
                        filter_key4_of(&e->key, &to->keys4[to->n]);
                        to->keys4[to->n].shape += bank * PS_FILTER_MAX_SHAPES;
                } else {
                        to = wide;
                        to->keys[to->n] = e->key;
                        to->keys[to->n].shape += bank * PS_FILTER_MAX_SHAPES;
                }
                to->values[to->n++] = e->value;
                if (to->n == ELEMENTSOF(to->values)) {
                        r = load_batch_flush(to);
                        if (r < 0)
                                return r;
                }
        }
        r = load_batch_flush(wide);
        if (r >= 0)
                r = load_batch_flush(narrow);
        if (r < 0)
                return r;
        filter_bank_derive(b);
        if (bpf_map_update_elem(banks_fd, &bank, b, BPF_ANY) < 0)
                return -errno;

        /* A set that looks at TCP flags decides packet by packet, not flow by flow. */
        for (uint32_t i = 0; i < set->n_shapes; i++)
                if (set->masks[i].tcp_flags)
                        cacheable = false;

        /* A new generation also makes every verdict cached in a flow entry stale. */
        *ret_next = (((state >> PS_FILTER_STATE_GEN_SHIFT) + 1) << PS_FILTER_STATE_GEN_SHIFT) |
                    (cacheable ? PS_FILTER_STATE_CACHEABLE : 0) | bank;
        return 0;
}

/* The flip: one 4-byte value, read once per packet. */
static int kernel_flip(int state_fd, uint32_t *state, uint32_t next) {
        uint32_t zero = 0;

        if (bpf_map_update_elem(state_fd, &zero, &next, BPF_ANY) < 0)
                return -errno;
        *state = next;
        return 0;
}

/* ORs bits into one word of the gates of a bank (a single change: the daemon is the only
 * writer, packets only read). */
static int gate_word_or(int gates_fd, uint32_t bank, const FilterGateWord *w) {
        uint32_t idx = bank * PS_GATE_BANK_WORDS + w->index;
        uint64_t v;

        if (bpf_map_lookup_elem(gates_fd, &idx, &v) < 0)
                return -errno;
        if ((v | w->bits) == v)
                return 0;
        v |= w->bits;
        if (bpf_map_update_elem(gates_fd, &idx, &v, BPF_ANY) < 0)
                return -errno;
        return 0;
}

int filter_kernel_load(int state_fd, int banks_fd, int rules_fd, int rules4_fd, int gates_fd,
                       uint32_t *state, const FilterSet *set) {
        uint32_t next;
        int r;

        r = kernel_fill(banks_fd, rules_fd, rules4_fd, gates_fd, *state, false, set, &next);
        if (r < 0)
                return r;
        return kernel_flip(state_fd, state, next);
}

int filter_kernel_apply(int state_fd, int banks_fd, int rules_fd, int rules4_fd, int gates_fd,
                        uint32_t *state, const FilterIndex *ix, const FilterDelta *d) {
        uint32_t bank = *state & PS_FILTER_STATE_BANK, zero = 0, next;
        _cleanup_free_ struct ps_filter_bank *b = NULL;
        bool bank_changed;

        assert(state);
        assert(ix);
        assert(d);
        b = calloc(1, sizeof *b);
        if (!b)
                return -ENOMEM;
        if (bpf_map_lookup_elem(banks_fd, &bank, b) < 0)
                return -errno;
        bank_changed = d->shapes_grown;
        if (d->shapes_grown) {
                /* New shapes: their masks and flags first, under the old count, so no packet
                 * reads them yet; the count goes up only once their entries are in. */
                b->n_shapes = d->n_shapes_before;
                memcpy(b->masks, ix->masks, sizeof(struct ps_match) * ix->n_shapes);
                for (uint32_t i = d->n_shapes_before; i < ix->n_shapes; i++)
                        b->flags[i] = filter_shape_flags(&ix->masks[i]);
        }
        /* The classes of the entries to be written join their shapes' before the entries do
         * (a class with no entry costs a packet one lookup, an entry without its class would
         * go unseen). Classes are not taken away here: the next whole load recomputes them. */
        for (size_t i = 0; i < d->n_keys; i++) {
                uint32_t shape = d->keys[i].shape;
                struct ps_filter_value v;
                uint8_t classes;

                if (shape >= ix->n_shapes || !filter_index_value(ix, &d->keys[i], &v))
                        continue;
                classes = filter_entry_classes(&ix->masks[shape], &d->keys[i].match);
                if ((b->classes[shape] | classes) != b->classes[shape]) {
                        b->classes[shape] |= classes;
                        bank_changed = true;
                }
                /* The same for the gates: the entry's bits are set before it is written. */
                {
                        FilterGateWord w[FILTER_GATE_WORDS_MAX];
                        size_t n = filter_gate_words(b->flags[shape], shape, &d->keys[i].match, w);
                        int r;

                        for (size_t j = 0; j < n; j++) {
                                r = gate_word_or(gates_fd, bank, &w[j]);
                                if (r < 0)
                                        return r;
                        }
                }
        }
        if (bank_changed) {
                filter_bank_derive(b);
                if (bpf_map_update_elem(banks_fd, &bank, b, BPF_ANY) < 0)
                        return -errno;
        }
        /* One entry at a time, each replaced whole (a hash map update swaps the element under
         * RCU); the keys come in the order the delta lists them: a changed rule's new entries
         * before its old ones go. */
        for (size_t i = 0; i < d->n_keys; i++) {
                struct ps_filter_key k = d->keys[i];
                struct ps_filter_key4 k4;
                struct ps_filter_value v;
                const void *key = &k;
                int fd = rules_fd;

                if (k.shape >= PS_FILTER_MAX_SHAPES)
                        return -EINVAL;
                k.shape += bank * PS_FILTER_MAX_SHAPES;
                if (b->flags[d->keys[i].shape] & PS_SHAPE_KEY4) {
                        filter_key4_of(&k, &k4);
                        key = &k4;
                        fd = rules4_fd;
                }
                if (filter_index_value(ix, &d->keys[i], &v)) {
                        if (bpf_map_update_elem(fd, key, &v, BPF_ANY) < 0)
                                return -errno;
                } else if (bpf_map_delete_elem(fd, key) < 0 && errno != ENOENT)
                        return -errno;
        }
        if (d->shapes_grown) {
                b->n_shapes = ix->n_shapes;
                if (bpf_map_update_elem(banks_fd, &bank, b, BPF_ANY) < 0)
                        return -errno;
        }
        /* Same bank, a new generation: verdicts cached in flow entries are stale now. */
        next = (((*state >> PS_FILTER_STATE_GEN_SHIFT) + 1) << PS_FILTER_STATE_GEN_SHIFT) |
               (filter_index_cacheable(ix) ? PS_FILTER_STATE_CACHEABLE : 0) | bank;
        if (bpf_map_update_elem(state_fd, &zero, &next, BPF_ANY) < 0)
                return -errno;
        *state = next;
        return 0;
}

static int kernel_load(FilterStore *s, const FilterSet *set) {
        uint64_t t0 = now_usec(CLOCK_MONOTONIC);
        int r;

        s->clean_bank = -1; /* whichever it was, it is filled now or half cleared */
        r = filter_kernel_load(s->state_fd, s->banks_fd, s->rules_fd, s->rules4_fd, s->gates_fd,
                               &s->state, set);
        if (r < 0)
                return r;
        s->n_shapes = set->n_shapes;
        s->n_entries = set->n_entries;
        s->last_apply_usec = now_usec(CLOCK_MONOTONIC) - t0;
        return 0;
}

static uint64_t store_next_expiry(FilterStore *s) {
        uint64_t e = UINT64_MAX;

        for (size_t i = 0; i < s->n_rules; i++)
                if (s->rules[i]->expires_usec)
                        e = MIN(e, s->rules[i]->expires_usec);
        return e;
}

static int on_expiry(sd_event_source *es, uint64_t usec, void *userdata);

static void store_schedule_expiry(FilterStore *s) {
        uint64_t e = store_next_expiry(s);

        if (!s->event)
                return;
        if (e == UINT64_MAX) {
                if (s->expiry_timer)
                        (void) sd_event_source_set_enabled(s->expiry_timer, SD_EVENT_OFF);
                return;
        }
        if (!s->expiry_timer) {
                if (sd_event_add_time(s->event, &s->expiry_timer, CLOCK_REALTIME, e, 100 * 1000,
                                      on_expiry, s) < 0)
                        log_warning("Cannot arm the timer of timed rules: they expire at the next "
                                    "change");
                return;
        }
        (void) sd_event_source_set_time(s->expiry_timer, e);
        (void) sd_event_source_set_enabled(s->expiry_timer, SD_EVENT_ONESHOT);
}

/* After a change of one rule: the timer is brought forward to f's time if that comes first;
 * never put back (that would take a walk of the set), so a rule deleted or changed before its
 * time leaves a timer that may go off with nothing due, and on_expiry() then sets it anew. */
static void store_schedule_expiry_one(FilterStore *s, const Filter *f) {
        uint64_t t;
        int enabled;

        if (!s->event || !f || !f->expires_usec)
                return;
        if (s->expiry_timer && sd_event_source_get_enabled(s->expiry_timer, &enabled) >= 0 &&
            enabled != SD_EVENT_OFF && sd_event_source_get_time(s->expiry_timer, &t) >= 0 &&
            t <= f->expires_usec)
                return;
        if (!s->expiry_timer) {
                if (sd_event_add_time(s->event, &s->expiry_timer, CLOCK_REALTIME, f->expires_usec,
                                      100 * 1000, on_expiry, s) < 0)
                        log_warning("Cannot arm the timer of timed rules: they expire at the next "
                                    "change");
                return;
        }
        (void) sd_event_source_set_time(s->expiry_timer, f->expires_usec);
        (void) sd_event_source_set_enabled(s->expiry_timer, SD_EVENT_ONESHOT);
}

static int on_expiry(sd_event_source *es, uint64_t usec, void *userdata) {
        FilterStore *s = userdata;
        _cleanup_free_ char *err = NULL;
        Filter **keep = NULL;
        size_t n_keep = 0;
        uint64_t now = now_usec(CLOCK_REALTIME);
        bool due = false;
        int r;

        /* Not while a confirm-or-rollback change is open (its outcome decides what is stored)
         * nor while a large change is applied off the loop: try again in a second. */
        if (s->transaction || s->busy) {
                (void) sd_event_source_set_time(es, now + USEC_PER_SEC);
                (void) sd_event_source_set_enabled(es, SD_EVENT_ONESHOT);
                return 0;
        }
        /* Early (the rule it was set for went first): nothing to remove, only the next time. */
        for (size_t i = 0; i < s->n_rules && !due; i++)
                due = s->rules[i]->expires_usec && s->rules[i]->expires_usec <= now;
        if (!due) {
                store_schedule_expiry(s);
                return 0;
        }
        r = filter_store_snapshot(s, &keep, &n_keep);
        if (r < 0)
                return 0;
        for (size_t i = 0; i < n_keep;) {
                if (keep[i]->expires_usec && keep[i]->expires_usec <= now) {
                        log_filter(LOG_INFO, PS_MESSAGE_FILTER_EXPIRED, keep[i]->id,
                                   "Filter %u reached its timeout of %llu s and was removed",
                                   keep[i]->id, (unsigned long long) keep[i]->timeout_sec);
                        filter_free(keep[i]);
                        keep[i] = keep[--n_keep];
                        continue;
                }
                i++;
        }
        r = filter_store_replace(s, keep, n_keep, true, &err);
        if (r < 0) {
                log_warning_errno(r, "Removing expired filters failed: %s; trying again in 10 s",
                                  err ? err : "");
                filter_list_free(keep, n_keep);
                /* Not at once: a state directory that cannot be written would make it spin. */
                (void) sd_event_source_set_time(es, now + 10 * USEC_PER_SEC);
                (void) sd_event_source_set_enabled(es, SD_EVENT_ONESHOT);
                return 0;
        }
        store_schedule_expiry(s);
        return 0;
}

int filter_store_snapshot(FilterStore *s, Filter ***ret, size_t *ret_n) {
        Filter **l;

        assert(s);
        assert(ret);
        assert(ret_n);
        l = calloc(s->n_rules + 1, sizeof(Filter *));
        if (!l)
                return -ENOMEM;
        for (size_t i = 0; i < s->n_rules; i++) {
                l[i] = malloc(sizeof(Filter));
                if (!l[i] || filter_copy(l[i], s->rules[i]) < 0) {
                        free(l[i]);
                        filter_list_free(l, i);
                        return -ENOMEM;
                }
        }
        *ret = l;
        *ret_n = s->n_rules;
        return 0;
}

static int cmp_u32(const void *a, const void *b) {
        uint32_t x = *(const uint32_t *) a, y = *(const uint32_t *) b;

        return x < y ? -1 : x > y;
}

/* A value (id, or slot when `slots`) that two rules share: sorted, so 100,000 rules cost
 * milliseconds. Unassigned slots do not count. Returns 1 and the value, or 0. */
static int find_duplicate(Filter **rules, size_t n, bool slots, uint32_t *ret) {
        _cleanup_free_ uint32_t *v = malloc((n + 1) * sizeof(uint32_t));
        size_t k = 0;

        if (!v)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                if (!slots || rules[i]->slot != SLOT_NONE)
                        v[k++] = slots ? rules[i]->slot : rules[i]->id;
        qsort(v, k, sizeof(uint32_t), cmp_u32);
        for (size_t i = 1; i < k; i++)
                if (v[i] == v[i - 1]) {
                        *ret = v[i];
                        return 1;
                }
        return 0;
}

/* Slots of the set being replaced that the new list does not keep, handed to new rules when
 * no free slot is left: that is what lets MaxRules rules replace MaxRules others (or
 * themselves) within PS_FILTER_SLOTS, which is less than two sets' worth. `taken` marks the
 * slots of the new list. */
static int reuse_slot(FilterStore *s, uint8_t *taken, uint32_t *cursor, uint32_t *ret) {
        for (; *cursor < PS_FILTER_SLOTS; (*cursor)++)
                if (s->slot_used[*cursor] && !taken[*cursor]) {
                        taken[*cursor] = 1;
                        *ret = (*cursor)++;
                        return 0;
                }
        return -ENOSPC;
}

/* Puts the bank that was active before the change's kernel load back (it is left intact until
 * the next load clears it), with a new generation so that no cached verdict of the undone set
 * survives. */
static int kernel_flip_back(int state_fd, uint32_t *state, uint32_t old_state) {
        uint32_t zero = 0, next;

        next = (((*state >> PS_FILTER_STATE_GEN_SHIFT) + 1) << PS_FILTER_STATE_GEN_SHIFT) |
               (old_state & (PS_FILTER_STATE_CACHEABLE | PS_FILTER_STATE_BANK));
        if (bpf_map_update_elem(state_fd, &zero, &next, BPF_ANY) < 0)
                return -errno;
        *state = next;
        return 0;
}

static int store_save_list(FilterStore *s, Filter **rules, size_t n, uint32_t next_id,
                           char **ret_error);

/*
 * The whole set written in two steps, so that a change can load the kernel while its file is
 * written: stage (the text into a temporary file beside filters.json, flushed to disk; reads
 * only the rules and the state directory, so it may run in a thread of its own), then commit
 * (renamed over filters.json, the directory flushed, the journal it replaces gone). A change
 * flips the kernel to its set only once the staged file is on disk, and commits after the
 * flip: what cannot be stored is never enforced, and a failed commit flips back.
 */
typedef struct StoreWrite {
        FilterStore *s;
        Filter *const *rules;
        size_t n;
        uint32_t next_id;
        uint64_t gen;
        char *path, *tmp; /* tmp: the staged file, NULL when there is none */
        size_t size;
        int r;
        char *error;
} StoreWrite;

static int store_write_stage(StoreWrite *w);
static int store_write_commit(StoreWrite *w);
static void store_write_done(StoreWrite *w);

/* A rule's creation time if it has none, and its expiry from its timeout (now: realtime). */
static void rule_times(Filter *f, uint64_t now) {
        if (f->created_usec == 0)
                f->created_usec = now;
        if (f->timeout_sec && f->expires_usec == 0)
                f->expires_usec = now + f->timeout_sec * USEC_PER_SEC;
        if (!f->timeout_sec)
                f->expires_usec = 0;
}

/*
 * One change of the set in three steps: prepare (ids, slots: on the loop), work (counters of
 * fresh slots, compile, kernel load, filters.json: touches nothing the loop reads, so it may
 * run in a thread) and finish (the list, the slots, the callbacks: on the loop again).
 */
typedef struct FilterChange {
        FilterStore *s;
        Filter **rules;
        size_t n;
        bool persist;
        uint32_t next_id, old_state, state;
        size_t n_shapes, n_entries;
        uint64_t apply_usec;
        size_t *new_idx, n_new;
        uint8_t *reused;
        size_t n_reused;
        FilterIndex index; /* of the new set, for later changes of one rule */
        int r;
        char *error;
} FilterChange;

static void change_free(FilterChange *c) {
        if (!c)
                return;
        free(c->new_idx);
        free(c->reused);
        free(c->error);
        filter_index_done(&c->index);
        free(c);
}

/* Fresh slots go back to the free pool; reused ones still belong to the old rules. */
static void change_undo_slots(FilterChange *c) {
        for (size_t k = 0; k < c->n_new; k++) {
                uint32_t slot = c->rules[c->new_idx[k]]->slot;

                if (!c->reused || !c->reused[slot])
                        c->s->slot_used[slot] = 0;
                c->rules[c->new_idx[k]]->slot = SLOT_NONE;
        }
}

static int change_prepare(FilterStore *s, Filter **rules, size_t n, bool persist,
                          FilterChange **ret, char **ret_error) {
        _cleanup_free_ uint8_t *taken = NULL;
        FilterChange *c;
        uint32_t cursor = 0, dup;
        uint64_t now = now_usec(CLOCK_REALTIME);
        int r;

        assert(s);
        assert(rules || n == 0);
        /* The set is written whole (maybe off the loop): a compaction's older snapshot must not
         * land over it. */
        if (persist)
                state_journal_stop(&s->journal);
        if (n > PS_FILTER_MAX_RULES) {
                (void) error_setf(ret_error, 0,
                                  "the rule set would hold %zu rules; accepted: at most %u", n,
                                  PS_FILTER_MAX_RULES);
                return -E2BIG;
        }
        c = calloc(1, sizeof *c);
        if (!c)
                return -ENOMEM;
        *c = (FilterChange) { .s = s, .rules = rules, .n = n, .persist = persist,
                              .next_id = s->next_id, .old_state = s->state, .state = s->state };
        c->new_idx = calloc(n + 1, sizeof(size_t));
        if (!c->new_idx) {
                change_free(c);
                return -ENOMEM;
        }

        /* ids: new rules get the next free one; imported ids must be unique. */
        for (size_t i = 0; i < n; i++) {
                Filter *f = rules[i];

                if (f->slot == SLOT_NONE && f->id == UINT32_MAX)
                        f->id = c->next_id++;
                else if (f->id >= c->next_id)
                        c->next_id = f->id + 1;
                rule_times(f, now);
        }
        r = find_duplicate(rules, n, false, &dup);
        if (r > 0)
                r = error_setf(ret_error, -EEXIST, "duplicate rule id %u; every id must be unique",
                               dup);
        if (r < 0) {
                change_free(c);
                return r;
        }

        /* Counter slots: kept by surviving rules, fresh (zeroed by the work) for new ones;
         * when the free ones run out, those of removed rules (zeroed after the flip). */
        r = find_duplicate(rules, n, true, &dup);
        if (r > 0)
                r = error_setf(ret_error, -EEXIST, "two rules share counter slot %u", dup);
        if (r < 0) {
                change_free(c);
                return r;
        }
        for (size_t i = 0; i < n; i++) {
                if (rules[i]->slot != SLOT_NONE)
                        continue;
                r = taken ? -ENOSPC : alloc_slot(s, &rules[i]->slot);
                if (r < 0) {
                        if (!taken) {
                                taken = calloc(PS_FILTER_SLOTS, 1);
                                c->reused = calloc(PS_FILTER_SLOTS, 1);
                                if (!taken || !c->reused) {
                                        r = -ENOMEM;
                                        goto undo;
                                }
                                for (size_t k = 0; k < n; k++)
                                        if (rules[k]->slot != SLOT_NONE)
                                                taken[rules[k]->slot] = 1;
                        }
                        r = reuse_slot(s, taken, &cursor, &rules[i]->slot);
                        if (r < 0) {
                                (void) error_setf(ret_error, 0, "no free counter slot left (%u)",
                                                  PS_FILTER_SLOTS);
                                goto undo;
                        }
                        c->reused[rules[i]->slot] = 1;
                        c->n_reused++;
                } else if (taken)
                        taken[rules[i]->slot] = 1;
                c->new_idx[c->n_new++] = i;
        }
        *ret = c;
        return 0;

undo:
        change_undo_slots(c);
        change_free(c);
        return r;
}

static void *store_write_thread(void *p) {
        StoreWrite *w = p;

        w->r = store_write_stage(w);
        return NULL;
}

/* The inactive bank emptied (of the set before last) while the new set is compiled. */
typedef struct BankClear {
        int rules_fd, rules4_fd;
        uint32_t bank;
        int r;
} BankClear;

static void *bank_clear_thread(void *p) {
        BankClear *k = p;

        k->r = clear_bank(k->rules_fd, k->rules4_fd, k->bank);
        return NULL;
}

/* Counter slots to zero are gathered in buf and zeroed in one batch by zero_slots_flush();
 * without buf (out of memory) each is zeroed at once. */
static void zero_slot_add(FilterStore *s, uint32_t *buf, size_t *n, uint32_t slot) {
        if (buf)
                buf[(*n)++] = slot;
        else
                (void) zero_counter(s, slot);
}

static void zero_slots_flush(FilterStore *s, const uint32_t *buf, size_t *n) {
        (void) bpf_map_zero_percpu_keys(s->counters_fd, buf, *n, sizeof(struct ps_filter_counter));
        *n = 0;
}

/* Reads and writes only the change, the kernel maps and the state directory. */
static void change_work(FilterChange *c) {
        FilterStore *s = c->s;
        _cleanup_free_ uint32_t *zero = NULL;
        StoreWrite w = { .s = s, .rules = c->rules, .n = c->n, .next_id = c->next_id,
                         .gen = s->journal_gen + 1 };
        BankClear clear = { .rules_fd = s->rules_fd, .rules4_fd = s->rules4_fd,
                            .bank = (c->state & PS_FILTER_STATE_BANK) ^ 1 };
        pthread_t writer, clearer;
        bool writing = false, clearing = false, cleared;
        FilterSet set = {};
        size_t n_zero = 0;
        uint32_t next;
        uint64_t t0, fill_usec;
        int r;

        /* filters.json is written in a thread of its own while this one compiles and fills
         * the kernel's inactive bank: both only read the rules. (Without a thread, first.) The
         * bank is emptied meanwhile in a third: nothing reads it, and the compile does not
         * need it. */
        if (c->persist) {
                writing = pthread_create(&writer, NULL, store_write_thread, &w) == 0;
                if (!writing)
                        w.r = store_write_stage(&w);
        }
        /* Emptied already while an import was read (filter_store_offload()); taken once. */
        cleared = s->clean_bank == (int) clear.bank;
        s->clean_bank = -1;
        if (!cleared)
                clearing = pthread_create(&clearer, NULL, bank_clear_thread, &clear) == 0;
        zero = calloc(MAX(c->n_new, c->n_reused) + 1, sizeof(uint32_t));
        for (size_t k = 0; k < c->n_new; k++) {
                uint32_t slot = c->rules[c->new_idx[k]]->slot;

                if (!c->reused || !c->reused[slot])
                        zero_slot_add(s, zero, &n_zero, slot);
        }
        zero_slots_flush(s, zero, &n_zero);
        r = filter_compile_indexed(c->rules, c->n, &set, &c->index, &c->error);
        if (r < 0)
                goto fail;
        t0 = now_usec(CLOCK_MONOTONIC);
        if (clearing) {
                (void) pthread_join(clearer, NULL);
                clearing = false;
        } else if (!cleared)
                clear.r = clear_bank(s->rules_fd, s->rules4_fd, clear.bank);
        r = clear.r;
        if (r >= 0)
                r = kernel_fill(s->banks_fd, s->rules_fd, s->rules4_fd, s->gates_fd, c->state,
                                true, &set, &next);
        fill_usec = now_usec(CLOCK_MONOTONIC) - t0;
        c->n_shapes = set.n_shapes;
        c->n_entries = set.n_entries;
        filter_set_done(&set);
        if (r < 0) {
                (void) error_setf(&c->error, 0,
                                  "loading the rule set into the kernel failed: %s", strerror(-r));
                goto fail;
        }

        /* Acknowledged means stored: the kernel takes the set only once its file is on disk
         * (the inactive bank filled meanwhile is read by nothing and cleared by the next
         * load). */
        if (writing) {
                (void) pthread_join(writer, NULL);
                writing = false;
        }
        if (c->persist && w.r < 0) {
                r = w.r;
                c->error = TAKE_PTR(w.error);
                goto fail;
        }
        t0 = now_usec(CLOCK_MONOTONIC);
        r = kernel_flip(s->state_fd, &c->state, next);
        if (r < 0) {
                (void) error_setf(&c->error, 0,
                                  "loading the rule set into the kernel failed: %s", strerror(-r));
                goto fail;
        }
        c->apply_usec = fill_usec + now_usec(CLOCK_MONOTONIC) - t0;

        /* The removed rules these slots counted for are out of the kernel now. */
        for (uint32_t k = 0; c->n_reused > 0 && k < PS_FILTER_SLOTS; k++)
                if (c->reused[k])
                        zero_slot_add(s, zero, &n_zero, k);
        zero_slots_flush(s, zero, &n_zero);

        /* If the file cannot take its name, the kernel goes back to the old set and nothing
         * of the change remains. */
        if (c->persist) {
                r = store_write_commit(&w);
                if (r < 0) {
                        int k = kernel_flip_back(s->state_fd, &c->state, c->old_state);

                        if (k < 0)
                                log_struct_internal(LOG_CRIT, k, PS_MESSAGE_STATE_NOT_WRITABLE,
                                                    NULL, "Cannot put the previous rule set "
                                                    "back into the kernel: %s; the kernel "
                                                    "enforces a set that is not stored",
                                                    strerror(-k));
                        c->error = TAKE_PTR(w.error);
                        goto fail;
                }
        }
        store_write_done(&w);
        c->r = 0;
        return;
fail:
        if (clearing)
                (void) pthread_join(clearer, NULL);
        if (writing)
                (void) pthread_join(writer, NULL);
        store_write_done(&w);
        c->r = r;
}

/* Ends the change: on success the store owns the rules and the old list is freed; on failure
 * the caller keeps them. Frees the change; returns its result. */
static int change_finish(FilterChange *c, char **ret_error) {
        FilterStore *s = c->s;
        Filter **old = s->rules;
        size_t n_old = s->n_rules;
        _cleanup_free_ uint32_t *old_ids = NULL;
        int r = c->r;

        /* The kernel enforces what c->state says, whatever the outcome. */
        if (c->state != s->state) {
                s->state = c->state;
                if (r >= 0) {
                        s->n_shapes = c->n_shapes;
                        s->n_entries = c->n_entries;
                        s->last_apply_usec = c->apply_usec;
                }
        }
        if (r < 0) {
                /* A kernel that did not go back to the old set no longer matches the index. */
                if (c->state != c->old_state)
                        s->index_valid = false;
                if (ret_error && c->error)
                        *ret_error = TAKE_PTR(c->error);
                change_undo_slots(c);
                change_free(c);
                return r;
        }
        old_ids = calloc(n_old + 1, sizeof(uint32_t));
        for (size_t i = 0; old_ids && i < n_old; i++)
                old_ids[i] = old[i]->id;

        /* Committed: exactly the slots of the new list are in use (a rollback brings back
         * rules whose slots the transaction had released). */
        memset(s->slot_used, 0, PS_FILTER_SLOTS);
        for (size_t i = 0; i < c->n; i++)
                s->slot_used[c->rules[i]->slot] = 1;
        filter_index_done(&s->index);
        s->index = c->index;
        c->index = (FilterIndex) {};
        s->index_valid = true;
        ids_drop(s); /* holds the old rules */
        s->rules = c->rules;
        s->n_rules = c->n;
        s->next_id = c->next_id;
        for (size_t i = 0; i < c->n; i++)
                c->rules[i]->store = s;
        change_free(c);
        if (s->degraded) {
                log_struct_internal(LOG_NOTICE, 0, PS_MESSAGE_DEGRADED, NULL,
                                    "The kernel's unlisted rule set was replaced by %zu listed "
                                    "rule(s); no longer degraded", s->n_rules);
                s->degraded = mfree(s->degraded);
                /* The service status said "Degraded" since the start. */
                (void) sd_notify(false, "STATUS=Rule set replaced; no longer degraded");
                {
                        /* A start would also see filters.json newer than the mark. */
                        _cleanup_free_ char *marker =
                                strjoin_path(s->state_dir, FILTERS_DEGRADED_FILE);

                        if (marker && unlink(marker) < 0 && errno != ENOENT)
                                log_warning_errno(-errno, "Cannot remove %s: %m", marker);
                }
        }
        filter_list_free(old, n_old);
        store_schedule_expiry(s);
        if (s->on_change)
                s->on_change(s, &(FilterStoreChange) {
                                     .old_ids = old_ids ? old_ids : (const uint32_t[]) { 0 },
                                     .n_old = old_ids ? n_old : 0,
                                     .added = UINT32_MAX, .removed = UINT32_MAX },
                             s->userdata);
        return 0;
}

static int refuse_if_busy(FilterStore *s, char **ret_error) {
        if (!s->busy)
                return 0;
        return error_setf(ret_error, -EBUSY,
                          "%s is being applied; set changes are taken one at a time: try again "
                          "when it is done", s->busy);
}

int filter_store_replace(FilterStore *s, Filter **rules, size_t n, bool persist,
                         char **ret_error) {
        FilterChange *c;
        int r;

        assert(s);
        r = refuse_if_busy(s, ret_error);
        if (r < 0)
                return r;
        r = change_prepare(s, rules, n, persist, &c, ret_error);
        if (r < 0)
                return r;
        change_work(c);
        return change_finish(c, ret_error);
}

/* Off the loop: a thread does the work, an eventfd brings the loop back to the rest. */
struct FilterOffload {
        FilterStore *s;
        BankClear clear; /* bank UINT32_MAX: none to empty */
        filter_offload_work_t work;
        filter_offload_done_t done;
        void *data;
        pthread_t thread;
        int efd;
        sd_event_source *source;
};

/* Puts the calling thread behind the loop for the CPU: on a busy machine the loop's calls come
 * first, the thread's work a little later; threads it starts inherit it. Counted from the
 * thread's (the loop's) own niceness: a daemon started with Nice=15 (or under nice(1)) must not
 * get threads ahead of its loop. (Per thread on Linux; failing it only costs the loop some
 * latency.) */
static void thread_behind_loop(void) {
        int prio;

        errno = 0;
        prio = getpriority(PRIO_PROCESS, (id_t) gettid());
        if (prio != -1 || errno == 0)
                (void) setpriority(PRIO_PROCESS, (id_t) gettid(), MIN(prio + OFFLOAD_NICE, 19));
}

static void *offload_thread(void *p) {
        struct FilterOffload *o = p;
        pthread_t clearer;
        bool clearing = false;
        uint64_t one = 1;

        thread_behind_loop();
        /* The work prepares a change of the set (an import's document read): the kernel's
         * inactive bank, which that change will fill, is emptied meanwhile. Nothing else
         * touches it while the store is busy. */
        if (o->clear.bank != UINT32_MAX)
                clearing = pthread_create(&clearer, NULL, bank_clear_thread, &o->clear) == 0;
        o->work(o->data);
        if (clearing) {
                (void) pthread_join(clearer, NULL);
                if (o->clear.r >= 0)
                        o->s->clean_bank = (int) o->clear.bank;
        }
        /* An eventfd write of 8 bytes does not fail short; if it failed at all the loop would
         * never finish the change, so say so loudly. */
        if (write(o->efd, &one, sizeof one) != sizeof one)
                log_error_errno(-errno, "Cannot wake the loop after a rule set change");
        return NULL;
}

static void offload_end(FilterStore *s, bool cancelled) {
        struct FilterOffload *o = TAKE_PTR(s->offload);

        (void) pthread_join(o->thread, NULL);
        sd_event_source_unref(o->source);
        safe_close(o->efd);
        o->done(o->data, cancelled);
        free(o);
}

static int on_offload_done(sd_event_source *es, int fd, uint32_t revents, void *userdata) {
        offload_end(userdata, false);
        return 0;
}

static int offload_start(FilterStore *s, filter_offload_work_t work, filter_offload_done_t done,
                         void *data, bool clear) {
        struct FilterOffload *o;
        int r;

        assert(s);
        assert(work);
        assert(done);
        if (s->offload || !s->event)
                return -EBUSY;
        o = calloc(1, sizeof *o);
        if (!o)
                return -ENOMEM;
        *o = (struct FilterOffload) { .s = s, .work = work, .done = done, .data = data,
                                      .clear.bank = UINT32_MAX };
        if (clear) {
                o->clear = (BankClear) { .rules_fd = s->rules_fd, .rules4_fd = s->rules4_fd,
                                         .bank = (s->state & PS_FILTER_STATE_BANK) ^ 1 };
                s->clean_bank = -1;
        }
        o->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (o->efd < 0) {
                free(o);
                return -errno;
        }
        r = sd_event_add_io(s->event, &o->source, o->efd, EPOLLIN, on_offload_done, s);
        if (r >= 0) {
                r = -pthread_create(&o->thread, NULL, offload_thread, o);
                if (r < 0)
                        o->source = sd_event_source_unref(o->source);
        }
        if (r < 0) {
                safe_close(o->efd);
                free(o);
                return r;
        }
        s->offload = o;
        return 0;
}

int filter_store_offload(FilterStore *s, filter_offload_work_t work, filter_offload_done_t done,
                         void *data) {
        assert(s);
        /* Busy keeps every other change of the set, and so every writer of the bank being
         * emptied, away meanwhile. */
        assert(s->busy);
        return offload_start(s, work, done, data, true);
}

static int commit_list(FilterStore *s, FilterList *add, bool replace, FilterList *ret,
                       size_t *ret_copies);

struct async_commit {
        FilterChange *c;
        FilterList list;  /* what the change holds: copies of the old rules, then the new */
        size_t copies;
        filter_change_done_t done;
        void *userdata;
};

static void async_commit_work(void *data) {
        struct async_commit *a = data;

        change_work(a->c);
}

static void async_commit_done(void *data, bool cancelled) {
        struct async_commit *a = data;
        FilterStore *s = a->c->s;
        _cleanup_free_ char *err = NULL;
        int r;

        if (cancelled)
                a->c->r = -ECANCELED;
        s->busy = mfree(s->busy);
        r = change_finish(a->c, &err);
        if (r >= 0)
                a->list = (FilterList) {}; /* the store owns them now */
        a->done(s, r, err, a->userdata);
        filter_list_done(&a->list);
        free(a);
}

int filter_store_commit_async(FilterStore *s, FilterList *add, bool replace, const char *what,
                              uint32_t *ret_ids, filter_change_done_t done, void *userdata,
                              char **ret_error) {
        struct async_commit *a;
        int r;

        assert(s);
        assert(add);
        assert(what);
        assert(done);
        r = refuse_if_busy(s, ret_error);
        if (r < 0)
                return r;
        if (!replace && s->degraded)
                return error_setf(ret_error, -ESTALE,
                                  "the rule set is degraded (%s): the kernel enforces rules no "
                                  "readable file lists; Import a whole set with mode 'replace' "
                                  "(an empty one, '[]', clears them) before adding rules",
                                  s->degraded);
        a = calloc(1, sizeof *a);
        if (!a)
                return -ENOMEM;
        *a = (struct async_commit) { .done = done, .userdata = userdata };
        r = commit_list(s, add, replace, &a->list, &a->copies);
        if (r >= 0)
                r = change_prepare(s, a->list.rules, a->list.n, true, &a->c, ret_error);
        if (r >= 0) {
                s->busy = strdup(what);
                r = s->busy ? offload_start(s, async_commit_work, async_commit_done, a, false)
                            : -ENOMEM;
                if (r < 0) {
                        s->busy = mfree(s->busy);
                        change_undo_slots(a->c);
                        change_free(a->c);
                }
        }
        if (r < 0) {
                a->list.n = a->copies; /* the added rules stay the caller's */
                filter_list_done(&a->list);
                free(a);
                return r;
        }
        for (size_t i = 0; ret_ids && i < add->n; i++)
                ret_ids[i] = add->rules[i]->id;
        free(add->rules);
        *add = (FilterList) {};
        return 0;
}

/* The fields' defaults as Export and filters.json leave them out (an import restores them), so
 * that a 100,000-rule set fits one bus message; id, rule_type, action, enabled and created
 * stay. */
static const struct {
        const char *key;
        const char *s;
        long long i;
} defaults[] = {
        { "src_ip", "", 0 }, { "dst_ip", "", 0 }, { "inner_src_ip", "", 0 },
        { "inner_dst_ip", "", 0 }, { "inner_protocol", "any", 0 }, { "comment", "", 0 },
        { "src_port", NULL, 0 }, { "dst_port", NULL, 0 }, { "inner_src_port", NULL, 0 },
        { "inner_dst_port", NULL, 0 }, { "tcp_flags", NULL, 0 },
        { "tcp_flags_mask", NULL, 0 }, { "icmp_type", NULL, 255 },
        { "icmp_code", NULL, 255 }, { "priority", NULL, 0 }, { "timeout_sec", NULL, 0 },
        { "expires_usec", NULL, 0 }, { "hits", NULL, 0 }, { "bytes", NULL, 0 },
        { "last_hit_usec", NULL, 0 },
};

static void drop_defaults(json_t *o) {
        for (size_t i = 0; i < ELEMENTSOF(defaults); i++) {
                json_t *v = json_object_get(o, defaults[i].key);

                if (defaults[i].s ? (json_is_string(v) && streq(json_string_value(v), defaults[i].s))
                                  : (json_is_integer(v) && json_integer_value(v) == defaults[i].i))
                        json_object_del(o, defaults[i].key);
        }
}

json_t *filter_store_export(FilterStore *s) {
        json_t *a = json_array();

        if (!a)
                return NULL;
        for (size_t i = 0; i < s->n_rules; i++) {
                json_t *o = filter_to_json(s->rules[i]);

                if (!o)
                        continue;
                if (s->n_rules > 1000)
                        drop_defaults(o);
                json_array_append_new(a, o);
        }
        return a;
}

/*
 * A ListFd document written off the loop. The thread touches only what the job owns: the
 * copies of the rules (their comments in one buffer), its own duplicate of the counters map's
 * fd, and the memfd; the loop may change or free the set meanwhile.
 */
typedef struct FilterListJob {
        FilterStore *s;
        Filter *rules; /* copies: no `text`, `comment` pointing into comments */
        size_t n;
        char *comments;
        size_t comments_size;
        int counters_fd;
        int efd;
        sd_event_source *source;
        pthread_t thread;
        int r, fd;
        /* CLOCK_REALTIME - CLOCK_MONOTONIC in µs, taken on the loop: the thread must not read
         * the offset the loop updates (mono_to_realtime_usec()). */
        int64_t realtime_offset_usec;
        filter_list_done_t done;
        void *userdata;
        struct FilterListJob *next;
} FilterListJob;

static void list_job_free(FilterListJob *j) {
        free(j->rules);
        free(j->comments);
        safe_close(j->counters_fd);
        safe_close(j->efd);
        safe_close(j->fd);
        sd_event_source_unref(j->source);
        free(j);
}

static int counters_sum_all(int counters_fd, struct ps_filter_counter **ret_sum);

static int list_write(FilterListJob *j) {
        _cleanup_free_ struct ps_filter_counter *sum = NULL;
        _cleanup_(text_buf_done) TextBuf b = {};
        const char *sep = "";
        int fd;

        /* Without counters (a kernel without batch lookups) the rows say 0. */
        (void) counters_sum_all(j->counters_fd, &sum);
        /* Room for the rows as the fields usually print (about 140 bytes a rule), taken once
         * rather than grown by doubling copies of a 14 MB document; grown if they print more. */
        b.allocated = 4096 + j->n * 160 + j->comments_size;
        b.data = malloc(b.allocated);
        if (!b.data)
                b.allocated = 0;
        text_buf_puts(&b, "{\"columns\":[");
        for (size_t i = 0; i < rule_fields_n; i++) {
                if (!(rule_fields[i].flags & RULE_FIELD_OUTPUT))
                        continue;
                text_buf_puts(&b, sep);
                text_buf_put_json_string(&b, rule_fields[i].key);
                sep = ",";
        }
        text_buf_puts(&b, "],\"rows\":[");
        for (size_t k = 0; k < j->n; k++) {
                Filter *f = &j->rules[k];

                if (sum && f->slot < PS_FILTER_SLOTS) {
                        int64_t last = sum[f->slot].last_hit == 0 ? 0 :
                                       (int64_t) (sum[f->slot].last_hit / NSEC_PER_USEC) +
                                       j->realtime_offset_usec;

                        f->hits = sum[f->slot].hits;
                        f->bytes = sum[f->slot].bytes;
                        f->last_hit_usec = last > 0 ? (uint64_t) last : 0;
                }
                text_buf_puts(&b, k > 0 ? ",[" : "[");
                sep = "";
                for (size_t i = 0; i < rule_fields_n; i++) {
                        if (!(rule_fields[i].flags & RULE_FIELD_OUTPUT))
                                continue;
                        text_buf_puts(&b, sep);
                        rule_field_put_json(&b, &rule_fields[i], f);
                        sep = ",";
                }
                text_buf_puts(&b, "]");
        }
        text_buf_puts(&b, "]}\n");
        if (b.oom)
                return -ENOMEM;
        fd = memfd_new_sealed("packetscope-filters", b.data, b.size);
        if (fd < 0)
                return fd;
        j->fd = fd;
        return 0;
}

static void *list_thread(void *p) {
        FilterListJob *j = p;
        uint64_t one = 1;

        thread_behind_loop();
        j->r = list_write(j);
        if (write(j->efd, &one, sizeof one) != sizeof one)
                log_error_errno(-errno, "Cannot wake the loop after writing a rule list");
        return NULL;
}

/* Joins the job's thread, tells its caller and frees it. */
static void list_job_end(FilterListJob *j, bool cancelled) {
        FilterStore *s = j->s;
        int fd;

        (void) pthread_join(j->thread, NULL);
        for (FilterListJob **p = &s->list_jobs; *p; p = &(*p)->next)
                if (*p == j) {
                        *p = j->next;
                        s->n_list_jobs--;
                        break;
                }
        fd = cancelled || j->r < 0 ? -1 : TAKE_FD(j->fd);
        j->done(s, cancelled ? -ECANCELED : j->r, fd, j->userdata);
        list_job_free(j);
}

static int on_list_done(sd_event_source *es, int fd, uint32_t revents, void *userdata) {
        list_job_end(userdata, false);
        return 0;
}

int filter_store_list_memfd(FilterStore *s, filter_list_done_t done, void *userdata) {
        FilterListJob *j;
        size_t comments = 0, at = 0;
        int r;

        assert(s);
        assert(done);
        if (!s->event)
                return -ENXIO;
        if (s->n_list_jobs >= FILTER_LIST_JOBS_MAX)
                return -EBUSY;
        j = calloc(1, sizeof *j);
        if (!j)
                return -ENOMEM;
        *j = (FilterListJob) { .s = s, .n = s->n_rules, .counters_fd = -EBADF, .efd = -EBADF,
                               .fd = -EBADF, .done = done, .userdata = userdata };
        for (size_t k = 0; k < s->n_rules; k++)
                comments += s->rules[k]->comment ? strlen(s->rules[k]->comment) + 1 : 0;
        j->rules = malloc((s->n_rules + 1) * sizeof(Filter));
        j->comments = malloc(comments + 1);
        j->comments_size = comments;
        if (!j->rules || !j->comments) {
                list_job_free(j);
                return -ENOMEM;
        }
        /* The set as it is now, in two copies of plain memory: no allocation per rule. */
        for (size_t k = 0; k < s->n_rules; k++) {
                const Filter *f = s->rules[k];
                Filter *c = &j->rules[k];

                memcpy(c, f, sizeof(Filter));
                c->text = NULL;
                c->store = NULL;
                if (f->comment) {
                        size_t len = strlen(f->comment) + 1;

                        c->comment = memcpy(j->comments + at, f->comment, len);
                        at += len;
                }
        }
        j->counters_fd = s->counters_fd >= 0 ? fcntl(s->counters_fd, F_DUPFD_CLOEXEC, 3) : -EBADF;
        j->realtime_offset_usec = (int64_t) mono_to_realtime_usec(NSEC_PER_USEC) - 1;
        j->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (j->efd < 0) {
                r = -errno;
                list_job_free(j);
                return r;
        }
        r = sd_event_add_io(s->event, &j->source, j->efd, EPOLLIN, on_list_done, j);
        if (r >= 0)
                r = -pthread_create(&j->thread, NULL, list_thread, j);
        if (r < 0) {
                list_job_free(j);
                return r;
        }
        j->next = s->list_jobs;
        s->list_jobs = j;
        s->n_list_jobs++;
        return 0;
}

/* The current filters.json, hard-linked as filters.json.prev.tmp before it is replaced: once
 * the new file is in place this becomes filters.json.prev, the generation before; if the write
 * fails it goes and the old filters.json.prev stays (replacing that first would free its space,
 * so that a full file system takes the write after all). Nothing to keep on a first write.
 * Returns the temporary name, or NULL. */
static char *prev_generation_begin(FilterStore *s) {
        _cleanup_free_ char *cur = strjoin_path(s->state_dir, FILTERS_FILE);
        char *tmp = NULL;

        if (!cur || asprintf(&tmp, "%s/%s.tmp", s->state_dir, FILTERS_PREV_FILE) < 0)
                return NULL;
        (void) unlink(tmp);
        if (link(cur, tmp) < 0)
                return mfree(tmp);
        return tmp;
}

static void prev_generation_end(FilterStore *s, char *tmp, bool written) {
        _cleanup_free_ char *prev = strjoin_path(s->state_dir, FILTERS_PREV_FILE);

        if (!tmp)
                return;
        if (!written || !prev || rename(tmp, prev) < 0)
                (void) unlink(tmp);
        free(tmp);
}

/* One rule as it is stored: its fields but those at their default (the loader restores them,
 * as Import does) and, internal, the counter slot that keeps its counters across restarts; the
 * counters themselves stay in the kernel. Written straight into the buffer, keys in the order
 * of json_dumps(JSON_SORT_KEYS), which wrote it before: the bytes are the same, without a tree
 * of JSON objects built, dumped and freed per rule (most of an import's write of 100,000). */
typedef struct StoredKey {
        const char *key;
        size_t field;     /* in rule_fields, or SIZE_MAX: "slot" */
        char def[24];     /* the default's JSON text: a field holding it is left out; "" none */
        size_t def_len;
        char name[40];    /* "KEY": as JSON text, written in one piece */
        size_t name_len;
} StoredKey;

static StoredKey stored_keys[64];
static size_t stored_keys_n;
static pthread_once_t stored_keys_once = PTHREAD_ONCE_INIT;

static int cmp_stored_key(const void *a, const void *b) {
        return strcmp(((const StoredKey *) a)->key, ((const StoredKey *) b)->key);
}

static void stored_keys_init(void) {
        size_t n = 0;

        for (size_t i = 0; i < rule_fields_n; i++) {
                const RuleField *d = &rule_fields[i];
                StoredKey *k = &stored_keys[n];

                /* The counters stay in the kernel. */
                if (!(d->flags & RULE_FIELD_OUTPUT) || (d->flags & RULE_FIELD_COUNTER))
                        continue;
                *k = (StoredKey) { .key = rule_field_json_key(d), .field = i };
                for (size_t j = 0; j < ELEMENTSOF(defaults); j++)
                        if (streq(defaults[j].key, k->key)) {
                                if (defaults[j].s)
                                        (void) snprintf(k->def, sizeof k->def, "\"%s\"",
                                                        defaults[j].s);
                                else
                                        (void) snprintf(k->def, sizeof k->def, "%lld",
                                                        defaults[j].i);
                        }
                n++;
        }
        stored_keys[n++] = (StoredKey) { .key = "slot", .field = SIZE_MAX };
        assert(n <= ELEMENTSOF(stored_keys));
        qsort(stored_keys, n, sizeof(StoredKey), cmp_stored_key);
        for (size_t i = 0; i < n; i++) {
                StoredKey *k = &stored_keys[i];
                _cleanup_(text_buf_done) TextBuf b = {};

                text_buf_put_json_string(&b, k->key);
                text_buf_put(&b, ":", 1);
                assert(!b.oom && b.size < sizeof k->name);
                memcpy(k->name, b.data, b.size + 1);
                k->name_len = b.size;
                k->def_len = strlen(k->def);
        }
        stored_keys_n = n;
}

static void stored_rule_put(TextBuf *b, const Filter *f) {
        bool first = true;

        (void) pthread_once(&stored_keys_once, stored_keys_init);
        for (size_t i = 0; i < stored_keys_n; i++) {
                const StoredKey *k = &stored_keys[i];
                size_t mark = b->size, at;

                if (k->field != SIZE_MAX && rule_field_is_wildcard(&rule_fields[k->field], f))
                        continue;
                text_buf_put(b, first ? "{" : ",", 1);
                text_buf_put(b, k->name, k->name_len);
                at = b->size;
                if (k->field == SIZE_MAX) {
                        text_buf_put_u64(b, f->slot);
                } else {
                        rule_field_put_json_typed(b, &rule_fields[k->field], f);
                        /* At its default: taken back. */
                        if (k->def_len && !b->oom && b->size - at == k->def_len &&
                            memcmp(b->data + at, k->def, k->def_len) == 0) {
                                b->size = mark;
                                b->data[mark] = '\0';
                                continue;
                        }
                }
                first = false;
        }
        text_buf_put(b, first ? "{}" : "}", first ? 2 : 1);
}

/* Kept with the rule (a journal record of one rule): the next change of the set writes it
 * again as it is. */
static const char *stored_rule_text(Filter *f) {
        const char *cached = filter_text_get(f);
        _cleanup_(text_buf_done) TextBuf b = {};

        if (cached)
                return cached;
        stored_rule_put(&b, f);
        if (b.oom || filter_text_set(f, b.data) < 0)
                return NULL;
        return filter_text_get(f);
}

/* {"filters":[...],"journal":G,"next_id":N,"version":1}, written rule by rule into one buffer
 * (a rule's kept text when it has one): no tree of 100,000 JSON objects is built and freed.
 * Reads the rules only. */
static int store_list_text(TextBuf *b, Filter *const *rules, size_t n, uint32_t next_id,
                           uint64_t gen) {
        char tail[96];
        int r;

        r = snprintf(tail, sizeof tail, "],\"journal\":%" PRIu64 ",\"next_id\":%" PRIu32
                     ",\"version\":1}", gen, next_id);
        assert(r > 0 && (size_t) r < sizeof tail);
        text_buf_puts(b, "{\"filters\":[");
        for (size_t i = 0; i < n; i++) {
                const char *cached = filter_text_get(rules[i]);

                if (i > 0)
                        text_buf_put(b, ",", 1);
                if (cached)
                        text_buf_puts(b, cached);
                else
                        stored_rule_put(b, rules[i]);
        }
        text_buf_puts(b, tail);
        return b->oom ? -ENOMEM : 0;
}

/* Written whole with gen = journal_gen + 1 (the journals of the one before no longer
 * apply), and by a compaction with gen = journal_gen (its journals still do). */
static int store_write_list(FilterStore *s, Filter **rules, size_t n, uint32_t next_id,
                            uint64_t gen, uint64_t *ret_size, char **ret_error) {
        _cleanup_(text_buf_done) TextBuf b = {};
        char *prev;
        int r;

        assert(s);
        r = store_list_text(&b, rules, n, next_id, gen);
        if (r < 0)
                return r;
        prev = prev_generation_begin(s);
        r = state_write_file(s->state_dir, FILTERS_FILE, b.data, ret_error);
        prev_generation_end(s, prev, r >= 0);
        if (r >= 0 && ret_size)
                *ret_size = b.size;
        return r;
}

static void journal_set_gen(FilterStore *s, uint64_t gen) {
        int k = snprintf((char *) s->journal.header, sizeof s->journal.header,
                         "{\"journal\":%" PRIu64 "}\n", gen);

        s->journal_gen = gen;
        s->journal.header_len = k > 0 ? (size_t) k : 0;
}

/* What state_write_file() says and logs when it cannot write: the same for both steps. */
static int store_write_failed(StoreWrite *w, int r) {
        log_struct_internal(LOG_ERR, r, PS_MESSAGE_STATE_NOT_WRITABLE, NULL,
                            "Cannot write %s: %s", w->path, strerror(-r));
        return error_setf(&w->error, -EROFS, "cannot write %s: %s; the change was not made",
                          w->path, strerror(-r));
}

static void store_write_abort(StoreWrite *w) {
        if (w->tmp)
                (void) unlink(w->tmp);
        w->tmp = mfree(w->tmp);
}

static void store_write_done(StoreWrite *w) {
        store_write_abort(w);
        w->path = mfree(w->path);
        w->error = mfree(w->error);
}

static int store_write_stage(StoreWrite *w) {
        _cleanup_(text_buf_done) TextBuf b = {};
        _cleanup_close_ int fd = -1;
        int r;

        assert(!w->tmp);
        r = store_list_text(&b, w->rules, w->n, w->next_id, w->gen);
        if (r < 0)
                return r;
        w->path = strjoin_path(w->s->state_dir, FILTERS_FILE);
        if (!w->path || asprintf(&w->tmp, "%s.tmpXXXXXX", w->path) < 0) {
                w->tmp = NULL;
                return -ENOMEM;
        }
        fd = mkostemp(w->tmp, O_CLOEXEC);
        if (fd < 0) {
                r = -errno;
                w->tmp = mfree(w->tmp);
                return store_write_failed(w, r);
        }
        if (fchmod(fd, 0644) < 0)
                r = -errno;
        else
                r = write_all(fd, b.data, b.size);
        if (r >= 0 && fsync(fd) < 0)
                r = -errno;
        if (r < 0) {
                store_write_abort(w);
                return store_write_failed(w, r);
        }
        w->size = b.size;
        return 0;
}

static int store_write_commit(StoreWrite *w) {
        FilterStore *s = w->s;
        char *prev;
        int r;

        assert(w->tmp);
        prev = prev_generation_begin(s);
        r = rename(w->tmp, w->path) < 0 ? -errno : 0;
        if (r >= 0)
                w->tmp = mfree(w->tmp);
        else
                store_write_abort(w);
        /* The rename is durable only once the directory that holds the name is. */
        if (r >= 0)
                r = fsync_parent_dir(w->path);
        prev_generation_end(s, prev, r >= 0);
        if (r < 0)
                return store_write_failed(w, r);
        journal_set_gen(s, w->gen);
        s->journal.snapshot_bytes = w->size;
        r = state_journal_reset(&s->journal);
        /* A journal left behind names the snapshot before and is ignored at the next start;
         * records appended to it would be too, so the changes of one rule write the whole
         * set until one can remove it. */
        s->journal_stale = r < 0;
        if (r < 0)
                log_warning_errno(r, "Cannot remove the rule journal in %s: %m; changes of one "
                                  "rule write %s whole until it can be", s->state_dir,
                                  FILTERS_FILE);
        return 0;
}

/* The whole set; the journal it replaces goes. The caller stopped any compaction on the loop
 * (this may run in the offload thread). */
static int store_save_list(FilterStore *s, Filter **rules, size_t n, uint32_t next_id,
                           char **ret_error) {
        StoreWrite w = { .s = s, .rules = rules, .n = n, .next_id = next_id,
                         .gen = s->journal_gen + 1 };
        int r;

        r = store_write_stage(&w);
        if (r >= 0)
                r = store_write_commit(&w);
        if (r < 0 && ret_error && w.error)
                *ret_error = TAKE_PTR(w.error);
        store_write_done(&w);
        return r;
}

/* The compacting child's snapshot: the set as the loop holds it, same journal number. */
static int store_write_compacted(void *userdata, uint64_t *ret_size) {
        FilterStore *s = userdata;

        return store_write_list(s, s->rules, s->n_rules, s->next_id, s->journal_gen, ret_size,
                                NULL);
}

int filter_store_save(FilterStore *s, char **ret_error) {
        state_journal_stop(&s->journal);
        return store_save_list(s, s->rules, s->n_rules, s->next_id, ret_error);
}

/* ------------------------------------------------------------------------------------------ */
/* filters.log: after a header {"journal":G} naming the snapshot it belongs to, one record a
 * line, appended and fdatasync'd before the change is acknowledged:
 *   {"add":RULE}      a rule added at the end of the list (RULE as filters.json holds it)
 *   {"change":RULE}   the rule with RULE's id replaced in its place
 *   {"remove":ID}     the rule with that id removed
 * Each replays idempotently: a compaction that crashed half way replays records the snapshot
 * already holds. */

static int journal_append(FilterStore *s, const char *op, const Filter *f, uint32_t id,
                          char **ret_error) {
        _cleanup_free_ char *rec = NULL;
        const char *text = NULL;
        int r;

        if (f) {
                text = stored_rule_text((Filter *) f);
                if (!text)
                        return -ENOMEM;
                r = asprintf(&rec, "{\"%s\":%s}\n", op, text);
        } else
                r = asprintf(&rec, "{\"remove\":%" PRIu32 "}\n", id);
        if (r < 0)
                return -ENOMEM;
        r = state_journal_append(&s->journal, rec, (size_t) r);
        if (r >= 0)
                return 0;
        log_struct_internal(LOG_ERR, r, PS_MESSAGE_STATE_NOT_WRITABLE, NULL,
                            "Cannot write %s/%s: %s", s->state_dir,
                            s->journal.to_new ? FILTERS_LOG_NEW : FILTERS_LOG, strerror(-r));
        return error_setf(ret_error, -EROFS, "cannot write %s/%s: %s; the change was not made",
                          s->state_dir, s->journal.to_new ? FILTERS_LOG_NEW : FILTERS_LOG,
                          strerror(-r));
}

/* One change of one rule made durable: a record, or, without a snapshot to append to, the
 * whole list (rules[0..n)) as the snapshot. */
static int store_save_one(FilterStore *s, const char *op, const Filter *f, uint32_t id,
                          Filter **rules, size_t n, uint32_t next_id, char **ret_error) {
        _cleanup_free_ char *path = strjoin_path(s->state_dir, FILTERS_FILE);

        if (!path)
                return -ENOMEM;
        if (s->journal_stale || (access(path, F_OK) < 0 && errno == ENOENT)) {
                state_journal_stop(&s->journal);
                return store_save_list(s, rules, n, next_id, ret_error);
        }
        return journal_append(s, op, f, id, ret_error);
}

/* One rule as filters.json and its journal hold it; *why says what is wrong with one that is
 * not. Its slot is the caller's to check against the others. */
static int rule_from_stored(json_t *stored, Filter **ret, char why[static 256]) {
        json_t *o = json_deep_copy(stored);
        json_t *slot = o ? json_object_get(o, "slot") : NULL;
        _cleanup_free_ char *err = NULL;
        Filter *f;
        int r;

        if (!o)
                return -ENOMEM;
        if (!json_is_integer(slot) || json_integer_value(slot) < 0 ||
            json_integer_value(slot) >= PS_FILTER_SLOTS) {
                json_decref(o);
                snprintf(why, 256, "a rule lacks a valid slot");
                return -EINVAL;
        }
        f = calloc(1, sizeof(Filter));
        if (!f) {
                json_decref(o);
                return -ENOMEM;
        }
        filter_init(f);
        f->slot = (uint32_t) json_integer_value(slot);
        json_object_del(o, "slot");
        r = filter_from_json(f, o, FILTER_PARSE_IMPORT, &err);
        json_decref(o);
        if (r < 0) {
                snprintf(why, 256, "%s", err ? err : "invalid");
                filter_free(f);
                return r == -ENOMEM ? r : -EINVAL;
        }
        *ret = f;
        return 0;
}

/* Reads filters.json (or its previous generation) into a fresh list. */
static int store_load_file(FilterStore *s, const char *file, Filter ***ret, size_t *ret_n,
                           uint32_t *ret_next, char **ret_error) {
        _cleanup_free_ char *path = strjoin_path(s->state_dir, file);
        json_t *root, *list, *nid, *gen;
        Filter **rules = NULL;
        size_t n = 0, i;
        int r;

        if (!path)
                return -ENOMEM;
        r = json_read_file(path, FILTERS_FILE_MAX, "too large", &root, ret_error);
        if (r < 0)
                return r;
        list = json_object_get(root, "filters");
        nid = json_object_get(root, "next_id");
        gen = json_object_get(root, "journal");
        if (!json_is_array(list) || !json_is_integer(nid)) {
                json_decref(root);
                return file_set_aside(path, "no \"filters\" array or \"next_id\"", ret_error);
        }
        rules = calloc(json_array_size(list) + 1, sizeof(Filter *));
        if (!rules) {
                json_decref(root);
                return -ENOMEM;
        }
        for (i = 0; i < json_array_size(list); i++) {
                char why[256], what[300];
                Filter *f = NULL;

                r = rule_from_stored(json_array_get(list, i), &f, why);
                if (r >= 0 && s->slot_used[f->slot]) {
                        snprintf(why, sizeof why, "slot used twice");
                        filter_free(TAKE_PTR(f));
                        r = -EINVAL;
                }
                if (r < 0) {
                        filter_list_free(rules, n);
                        memset(s->slot_used, 0, PS_FILTER_SLOTS);
                        json_decref(root);
                        if (r == -ENOMEM)
                                return r;
                        snprintf(what, sizeof what, "rule %zu: %s", i, why);
                        return file_set_aside(path, what, ret_error);
                }
                s->slot_used[f->slot] = 1;
                rules[n++] = f;
        }
        *ret_next = (uint32_t) json_integer_value(nid);
        journal_set_gen(s, json_is_integer(gen) ? (uint64_t) json_integer_value(gen) : 0);
        json_decref(root);
        *ret = rules;
        *ret_n = n;
        return 0;
}

/* The list being restored, and the journal being replayed over it. */
typedef struct FilterReplay {
        FilterStore *s;
        Filter **rules;
        size_t n, alloc;
        uint32_t next;
        bool skip;          /* the records of a journal of an earlier snapshot */
        size_t ignored;     /* ... how many */
        char why[256];      /* what is wrong with the first record refused */
} FilterReplay;

static ssize_t replay_find(FilterReplay *c, uint32_t id) {
        for (size_t i = c->n; i > 0; i--)
                if (c->rules[i - 1]->id == id)
                        return (ssize_t) (i - 1);
        return -1;
}

static int replay_record(void *userdata, char *line) {
        FilterReplay *c = userdata;
        json_t *root = json_loads(line, 0, NULL), *v;
        Filter *f = NULL;
        ssize_t at;
        int r = 0;

        if (!json_is_object(root)) {
                json_decref(root);
                snprintf(c->why, sizeof c->why, "not a JSON object");
                return -EINVAL;
        }
        if ((v = json_object_get(root, "journal"))) {
                c->skip = !json_is_integer(v) ||
                          (uint64_t) json_integer_value(v) != c->s->journal_gen;
                goto out;
        }
        if (c->skip) {
                c->ignored++;
                goto out;
        }
        if ((v = json_object_get(root, "remove"))) {
                if (!json_is_integer(v) || json_integer_value(v) < 0 ||
                    json_integer_value(v) > UINT32_MAX) {
                        snprintf(c->why, sizeof c->why, "a removal without a rule id");
                        r = -EINVAL;
                        goto out;
                }
                at = replay_find(c, (uint32_t) json_integer_value(v));
                if (at >= 0) {
                        c->s->slot_used[c->rules[at]->slot] = 0;
                        filter_free(c->rules[at]);
                        memmove(c->rules + at, c->rules + at + 1,
                                (c->n - (size_t) at - 1) * sizeof(Filter *));
                        c->n--;
                }
                goto out;
        }
        v = json_object_get(root, "add");
        if (!v)
                v = json_object_get(root, "change");
        if (!json_is_object(v)) {
                snprintf(c->why, sizeof c->why, "no add, change or remove");
                r = -EINVAL;
                goto out;
        }
        r = rule_from_stored(v, &f, c->why);
        if (r < 0)
                goto out;
        /* Replayed again (after a compaction that did not finish), or a change: in its place. */
        at = replay_find(c, f->id);
        if (at >= 0)
                c->s->slot_used[c->rules[at]->slot] = 0;
        if (c->s->slot_used[f->slot]) {
                if (at >= 0)
                        c->s->slot_used[c->rules[at]->slot] = 1;
                snprintf(c->why, sizeof c->why, "rule %" PRIu32 ": slot used twice", f->id);
                filter_free(f);
                r = -EINVAL;
                goto out;
        }
        c->s->slot_used[f->slot] = 1;
        if (f->id >= c->next)
                c->next = f->id + 1;
        if (at >= 0) {
                filter_free(c->rules[at]);
                c->rules[at] = f;
                goto out;
        }
        if (c->n + 1 >= c->alloc) {
                Filter **grown = realloc(c->rules, (c->alloc * 2 + 16) * sizeof(Filter *));

                if (!grown) {
                        c->s->slot_used[f->slot] = 0;
                        filter_free(f);
                        r = -ENOMEM;
                        goto out;
                }
                c->rules = grown;
                c->alloc = c->alloc * 2 + 16;
        }
        c->rules[c->n++] = f;
out:
        json_decref(root);
        return r;
}

int filter_store_replay_text(FilterStore *s, Filter ***rules, size_t *n, uint32_t *next,
                             char *text, size_t *size, size_t *ret_records, size_t *ret_bad,
                             size_t *ret_first_bad) {
        FilterReplay c = { .s = s, .rules = *rules, .n = *n, .alloc = *n + 1, .next = *next,
                           .skip = true };
        int r;

        r = state_journal_replay_text(text, size, replay_record, &c, ret_records, ret_bad,
                                      ret_first_bad);
        *rules = c.rules;
        *n = c.n;
        *next = c.next;
        return r;
}

/* filters.log, then filters.log.new, over the list read from the snapshot. A record that cannot
 * be read in the middle of a journal leaves the set after it unknown: the journal is set aside
 * (-EBADMSG, *ret_error names it) and the caller degrades as for a corrupt filters.json. */
static int store_replay(FilterStore *s, FilterReplay *c, size_t *ret_records,
                        char **ret_error) {
        static const char *const files[] = { FILTERS_LOG, FILTERS_LOG_NEW };
        int r;

        for (size_t i = 0; i < ELEMENTSOF(files); i++) {
                size_t bad = 0, first_bad = 0;

                c->skip = true; /* until the header says whose journal it is */
                r = state_journal_replay(&s->journal, files[i], FILTERS_FILE_MAX, replay_record,
                                         c, ret_records, &bad, &first_bad);
                if (r < 0)
                        return error_setf(ret_error, r, "cannot read %s/%s: %s", s->state_dir,
                                          files[i], strerror(-r));
                if (bad > 0) {
                        _cleanup_free_ char *path = strjoin_path(s->state_dir, files[i]);
                        char what[320];

                        if (!path)
                                return -ENOMEM;
                        snprintf(what, sizeof what, "record %zu: %s", first_bad, c->why);
                        return file_set_aside(path, what, ret_error);
                }
        }
        return 0;
}

struct kernel_rule {
        uint32_t slot, action, entries;
};

struct kernel_walk {
        uint32_t bank;
        struct kernel_rule *rules; /* by slot, entries == 0 where none */
        size_t n;                  /* slots with entries */
};

static int kernel_visit(const void *key, const void *value, void *userdata) {
        const struct ps_filter_value *v = value;
        struct kernel_walk *w = userdata;

        if (key_shape(key) / PS_FILTER_MAX_SHAPES != w->bank || v->rank == 0 ||
            v->slot >= PS_FILTER_SLOTS)
                return 0;
        if (w->rules[v->slot].entries++ == 0)
                w->n++;
        w->rules[v->slot].slot = v->slot;
        w->rules[v->slot].action = v->action;
        return 0;
}

/* The deciding rules of the active bank, one per counter slot: all the kernel knows of them. */
static int kernel_rules_walk(FilterStore *s, struct kernel_walk *w) {
        int r;

        *w = (struct kernel_walk) { .bank = s->state & PS_FILTER_STATE_BANK };
        w->rules = calloc(PS_FILTER_SLOTS, sizeof(struct kernel_rule));
        if (!w->rules)
                return -ENOMEM;
        r = bpf_map_walk(s->rules_fd, sizeof(struct ps_filter_key),
                         sizeof(struct ps_filter_value), kernel_visit, w, NULL);
        if (r < 0)
                return r;
        return bpf_map_walk(s->rules4_fd, sizeof(struct ps_filter_key4),
                            sizeof(struct ps_filter_value), kernel_visit, w, NULL);
}

int filter_store_kernel_rules(FilterStore *s, size_t max, json_t **ret, size_t *ret_total) {
        struct kernel_walk w;
        json_t *a;
        int r;

        assert(s);
        assert(ret);
        r = kernel_rules_walk(s, &w);
        if (r < 0) {
                free(w.rules);
                return r;
        }
        a = json_array();
        for (uint32_t slot = 0; a && slot < PS_FILTER_SLOTS && json_array_size(a) < max; slot++) {
                Filter f = { .slot = slot };

                if (w.rules[slot].entries == 0)
                        continue;
                (void) filter_store_read_counter(s, &f);
                json_array_append_new(a, json_pack("{s:I, s:s, s:I, s:I, s:I, s:I}",
                        "slot", (json_int_t) slot,
                        "action", w.rules[slot].action == PS_ACTION_PASS ? "pass" : "drop",
                        "entries", (json_int_t) w.rules[slot].entries,
                        "hits", (json_int_t) f.hits, "bytes", (json_int_t) f.bytes,
                        "last_hit", (json_int_t) f.last_hit_usec));
        }
        if (ret_total)
                *ret_total = w.n;
        free(w.rules);
        if (!a)
                return -ENOMEM;
        *ret = a;
        return 0;
}

/* No readable rule file: if the kernel still enforces a set, the list is empty while rules
 * are enforced, and the daemon says so instead of pretending there are none. */
static int store_degrade_mark(FilterStore *s, const char *why, bool mark) {
        struct kernel_walk w;
        int r;

        r = kernel_rules_walk(s, &w);
        /* Their counter slots stay taken until a new set replaces them (and may reuse them). */
        for (uint32_t slot = 0; r >= 0 && slot < PS_FILTER_SLOTS; slot++)
                if (w.rules[slot].entries > 0)
                        s->slot_used[slot] = 1;
        free(w.rules);
        if (r < 0 || w.n == 0) {
                log_struct_internal(LOG_ERR, 0, PS_MESSAGE_STATE_CORRUPT, NULL,
                                    "%s; no earlier generation is readable and the kernel "
                                    "enforces no rules: starting with none", why);
                return 0;
        }
        if (asprintf(&s->degraded, "%s; no earlier generation is readable, and the kernel "
                     "enforces %zu rule(s) no file lists", why, w.n) < 0) {
                s->degraded = NULL;
                return -ENOMEM;
        }
        if (mark) {
                _cleanup_free_ char *marker = strjoin_path(s->state_dir, FILTERS_DEGRADED_FILE);

                r = marker ? write_file_atomic(marker, why, strlen(why), 0600) : -ENOMEM;
                if (r < 0)
                        log_warning_errno(r, "Cannot write %s/" FILTERS_DEGRADED_FILE
                                          " (a restart would not know it is degraded): %m",
                                          s->state_dir);
        }
        log_struct_internal(LOG_CRIT, 0, PS_MESSAGE_DEGRADED, NULL,
                            "Degraded: %s. They stay enforced; Describe() lists them by counter "
                            "slot, and Import with mode 'replace' (of a saved set, or '[]' to "
                            "clear them) ends this", s->degraded);
        return 0;
}

static int store_degrade(FilterStore *s, const char *why) {
        return store_degrade_mark(s, why, true);
}

/*
 * Degraded before the restart: what the kernel enforces is still what no file lists, unless
 * the kernel lost it (a reboot) or a set replaced it since (filters.json newer than the mark).
 * 1 when still degraded; 0 to read the files as usual.
 */
static int store_degraded_before(FilterStore *s) {
        _cleanup_free_ char *marker = strjoin_path(s->state_dir, FILTERS_DEGRADED_FILE);
        _cleanup_free_ char *snap = strjoin_path(s->state_dir, FILTERS_FILE);
        _cleanup_free_ char *why = NULL, *text = NULL;
        struct stat m, f;
        size_t size = 0;
        int r;

        if (!marker || !snap)
                return -ENOMEM;
        r = read_file_full(marker, 4096, &text, &size);
        if (r == -ENOENT)
                return 0;
        if (r >= 0 && stat(marker, &m) >= 0 && stat(snap, &f) >= 0 &&
            (f.st_mtim.tv_sec > m.st_mtim.tv_sec ||
             (f.st_mtim.tv_sec == m.st_mtim.tv_sec && f.st_mtim.tv_nsec > m.st_mtim.tv_nsec)))
                r = -ESTALE;
        if (r >= 0) {
                struct kernel_walk w;
                size_t enforced;

                r = kernel_rules_walk(s, &w);
                enforced = w.n;
                free(w.rules);
                if (r >= 0 && enforced > 0) {
                        if (asprintf(&why, "degraded since an earlier start: %.*s", (int) size,
                                     text) < 0)
                                return -ENOMEM;
                        r = store_degrade_mark(s, why, false);
                        return r < 0 ? r : 1;
                }
        }
        /* Nothing of it is left to keep: the files say what is enforced. */
        if (unlink(marker) < 0 && errno != ENOENT)
                log_warning_errno(-errno, "Cannot remove %s: %m", marker);
        return 0;
}

int filter_store_start(FilterStore *s, sd_event *event, const char *state_dir,
                       const char *bpffs_root, char **ret_error) {
        _cleanup_free_ char *dir = NULL;
        _cleanup_free_ char *err = NULL;
        Filter **rules = NULL;
        size_t n = 0, expired = 0, replayed = 0;
        uint32_t next = 0, zero = 0;
        bool recovered = false, stamped = false;
        int fds[ELEMENTSOF(filter_maps)], r;

        assert(s);
        assert(state_dir);
        assert(bpffs_root);
        s->event = event;
        s->state_dir = state_dir;
        s->bpffs_root = bpffs_root;
        s->journal.event = event;
        s->journal.state_dir = state_dir;
        s->journal.snapshot = FILTERS_FILE;
        s->journal.log = FILTERS_LOG;
        s->journal.log_new = FILTERS_LOG_NEW;
        s->journal.what = "rule journal";
        s->journal.compact_min = FILTERS_LOG_COMPACT_MIN;
        s->journal.write_snapshot = store_write_compacted;
        s->journal.userdata = s;
        dir = strjoin_path(bpffs_root, FILTERS_PIN_DIR);
        if (!dir)
                return -ENOMEM;
        r = mkdir_p(dir, 0700);
        if (r < 0) {
                return error_setf(ret_error, r,
                                  "cannot create %s: %s (is bpffs mounted?)", dir, strerror(-r));
        }
        for (size_t i = 0; i < ELEMENTSOF(filter_maps); i++) {
                fds[i] = bpf_map_pin_or_create(dir, &filter_maps[i]);
                if (fds[i] < 0) {
                        r = fds[i];
                        (void) error_setf(ret_error, 0,
                                          "cannot open or create the map %s/%s: %s", dir,
                                          filter_maps[i].name, strerror(-r));
                        while (i > 0)
                                close(fds[--i]);
                        return r;
                }
        }
        s->state_fd = fds[0];
        s->banks_fd = fds[1];
        s->rules_fd = fds[2];
        s->rules4_fd = fds[3];
        s->counters_fd = fds[4];
        s->events_fd = fds[5];
        s->gates_fd = fds[6];
        (void) bpf_map_lookup_elem(s->state_fd, &zero, &s->state);

        r = store_degraded_before(s);
        if (r != 0)
                return r < 0 ? r : 0;

        r = store_load_file(s, FILTERS_FILE, &rules, &n, &next, &err);
        if (r == -EBADMSG || r == -ENOENT) {
                _cleanup_free_ char *perr = NULL;
                int k;

                /* The generation before: a set once acknowledged, and one the list can show. */
                k = store_load_file(s, FILTERS_PREV_FILE, &rules, &n, &next, &perr);
                if (k >= 0) {
                        log_struct_internal(LOG_WARNING, r, PS_MESSAGE_STATE_CORRUPT, NULL,
                                            "%s; recovered %zu rule(s) from %s/%s, the "
                                            "generation before it",
                                            r == -EBADMSG ? err : "filters.json is missing", n,
                                            s->state_dir, FILTERS_PREV_FILE);
                        recovered = true;
                        r = 0;
                } else if (k != -ENOENT) {
                        log_struct_internal(LOG_ERR, k, PS_MESSAGE_STATE_CORRUPT, NULL, "%s",
                                            perr ? perr : strerror(-k));
                        if (r == -ENOENT)
                                r = -EBADMSG; /* nothing readable is left either way */
                }
        }
        if (r == -ENOENT)
                return 0; /* a first start: no rules */
        if (r == -EBADMSG)
                return store_degrade(s, err ? err : "filters.json is corrupt");
        if (r < 0) {
                return error_setf(ret_error, r, "cannot read the stored filters: %s", strerror(-r));
        }
        {
                _cleanup_free_ char *snap = strjoin_path(state_dir, FILTERS_FILE);
                _cleanup_free_ char *log_new = strjoin_path(state_dir, FILTERS_LOG_NEW);
                FilterReplay c = { .s = s, .rules = rules, .n = n, .alloc = n + 1, .next = next };
                struct stat st;

                if (!snap || !log_new) {
                        filter_list_free(rules, n);
                        return -ENOMEM;
                }
                if (stat(snap, &st) >= 0)
                        s->journal.snapshot_bytes = (uint64_t) st.st_size;
                /* The changes of one rule since the snapshot, in the order they were made. */
                r = store_replay(s, &c, &replayed, &err);
                rules = c.rules;
                n = c.n;
                next = c.next;
                if (r == -EBADMSG) {
                        filter_list_free(rules, n);
                        memset(s->slot_used, 0, PS_FILTER_SLOTS);
                        return store_degrade(s, err);
                }
                if (r < 0) {
                        filter_list_free(rules, n);
                        return r == -ENOMEM ? r : error_setf(ret_error, r, "%s", err);
                }
                if (c.ignored > 0) {
                        /* Left by a crash before the journal of the snapshot before this one
                         * was removed: the snapshot holds what it said. */
                        log_info("Ignored %zu record(s) of a rule journal of an earlier "
                                 "snapshot in %s", c.ignored, state_dir);
                        stamped = true; /* the snapshot is written again, the journal goes */
                }
                s->journal.to_new = access(log_new, F_OK) >= 0;
        }
        s->next_id = next;
        /* Rules that timed out while the daemon was away go now. */
        {
                uint64_t now = now_usec(CLOCK_REALTIME);

                for (size_t i = 0; i < n;)
                        if (rules[i]->expires_usec && rules[i]->expires_usec <= now) {
                                s->slot_used[rules[i]->slot] = 0;
                                filter_free(rules[i]);
                                rules[i] = rules[--n];
                                expired++;
                        } else
                                i++;
        }
        /* Times the file leaves out are given now, and must then be stored, or every start
         * would give new ones. */
        for (size_t i = 0; i < n; i++)
                if (rules[i]->created_usec == 0 ||
                    (rules[i]->timeout_sec && rules[i]->expires_usec == 0))
                        stamped = true;
        /* Not written back otherwise: the file holds this set already, and a read-only state
         * directory must not keep the stored set out of the kernel. */
        r = filter_store_replace(s, rules, n, false, ret_error);
        if (r < 0) {
                filter_list_free(rules, n);
                return r;
        }
        if (expired > 0 || recovered || stamped) {
                _cleanup_free_ char *werr = NULL;

                /* Logged by the writer. The kernel has the set either way; the expired rules
                 * expire again, and missing times are given again, at the next start. */
                (void) filter_store_save(s, &werr);
        }
        log_info("Restored %zu filter rule(s) from %s (%zu journal record(s) replayed; %zu "
                 "shape(s), %zu classifier entries)", n, s->state_dir, replayed, s->n_shapes,
                 s->n_entries);
        return 0;
}

static void counter_add(void *sum, const void *cpu_value) {
        struct ps_filter_counter *a = sum;
        const struct ps_filter_counter *c = cpu_value;

        a->hits += c->hits;
        a->bytes += c->bytes;
        a->last_hit = MAX(a->last_hit, c->last_hit);
}

int filter_store_read_counter(FilterStore *s, Filter *f) {
        struct ps_filter_counter sum = {};
        int r;

        assert(s);
        assert(f);
        r = bpf_map_sum_percpu(s->counters_fd, &f->slot, sizeof sum, counter_add, &sum);
        if (r < 0)
                return r;
        f->hits = sum.hits;
        f->bytes = sum.bytes;
        f->last_hit_usec = mono_to_realtime_usec(sum.last_hit);
        return 0;
}

/* From this many rules on, the counters are read in batches of the whole map rather than
 * one lookup per rule: a quarter of the slots in use costs about the same either way, and at
 * 100,000 rules the lookups took most of ListFd's time on the loop. */
#define COUNTERS_BATCH_MIN (PS_FILTER_SLOTS / 4)

struct counter_sums {
        struct ps_filter_counter *sum; /* PS_FILTER_SLOTS */
        int ncpus;
};

static int counters_visit(const void *keys, const void *values, size_t n, void *userdata) {
        struct counter_sums *c = userdata;
        size_t stride = (size_t) c->ncpus * sizeof(struct ps_filter_counter);

        for (size_t i = 0; i < n; i++) {
                uint32_t slot = ((const uint32_t *) keys)[i];

                if (slot >= PS_FILTER_SLOTS)
                        continue;
                for (int cpu = 0; cpu < c->ncpus; cpu++)
                        counter_add(&c->sum[slot], (const uint8_t *) values + i * stride +
                                                   (size_t) cpu * sizeof(struct ps_filter_counter));
        }
        return 0;
}

/* Every slot's counters summed over the CPUs, by batch lookups: PS_FILTER_SLOTS of them. */
static int counters_sum_all(int counters_fd, struct ps_filter_counter **ret_sum) {
        _cleanup_free_ struct ps_filter_counter *sum = NULL;
        struct counter_sums c = { .ncpus = libbpf_num_possible_cpus() };
        int r;

        if (counters_fd < 0)
                return -EBADF;
        if (c.ncpus <= 0)
                return c.ncpus < 0 ? c.ncpus : -EINVAL;
        sum = calloc(PS_FILTER_SLOTS, sizeof *sum);
        if (!sum)
                return -ENOMEM;
        c.sum = sum;
        r = bpf_map_walk_batches(counters_fd, sizeof(uint32_t),
                                 (size_t) c.ncpus * sizeof(struct ps_filter_counter),
                                 counters_visit, &c, NULL);
        if (r < 0)
                return r;
        *ret_sum = TAKE_PTR(sum);
        return 0;
}

static int read_counters_batched(FilterStore *s) {
        _cleanup_free_ struct ps_filter_counter *sum = NULL;
        int r;

        r = counters_sum_all(s->counters_fd, &sum);
        if (r < 0)
                return r;
        for (size_t i = 0; i < s->n_rules; i++) {
                Filter *f = s->rules[i];

                if (f->slot >= PS_FILTER_SLOTS)
                        continue;
                f->hits = sum[f->slot].hits;
                f->bytes = sum[f->slot].bytes;
                f->last_hit_usec = mono_to_realtime_usec(sum[f->slot].last_hit);
        }
        return 0;
}

/* Slots lo..hi, summed over the CPUs, in one batch lookup (an array's batch starts after the
 * key given: lo - 1). */
static int counters_sum_range(int counters_fd, uint32_t lo, uint32_t hi,
                              struct ps_filter_counter **ret_sum) {
        _cleanup_free_ struct ps_filter_counter *sum = NULL;
        _cleanup_free_ uint32_t *keys = NULL;
        _cleanup_free_ uint8_t *values = NULL;
        LIBBPF_OPTS(bpf_map_batch_opts, opts);
        int ncpus = libbpf_num_possible_cpus();
        uint32_t n = hi - lo + 1, got = n, before = lo - 1, out;
        size_t stride;

        if (ncpus <= 0)
                return ncpus < 0 ? ncpus : -EINVAL;
        stride = (size_t) ncpus * sizeof(struct ps_filter_counter);
        sum = calloc(n, sizeof *sum);
        keys = calloc(n, sizeof *keys);
        values = calloc(n, stride);
        if (!sum || !keys || !values)
                return -ENOMEM;
        if (bpf_map_lookup_batch(counters_fd, lo > 0 ? &before : NULL, &out, keys, values, &got,
                                 &opts) < 0 && errno != ENOENT)
                return -errno;
        if (got != n)
                return -EIO;
        for (uint32_t i = 0; i < n; i++) {
                if (keys[i] != lo + i)
                        return -EIO;
                for (int cpu = 0; cpu < ncpus; cpu++)
                        counter_add(&sum[i], values + i * stride +
                                             (size_t) cpu * sizeof(struct ps_filter_counter));
        }
        *ret_sum = TAKE_PTR(sum);
        return 0;
}

/* A page of rules batched when their slots lie this close together (as an import or a run of
 * Adds gives them): at most this many slots read per rule of the page. */
#define COUNTERS_PAGE_SPREAD 4
#define COUNTERS_PAGE_MIN 64

int filter_store_read_counters_of(FilterStore *s, Filter **rules, size_t n) {
        _cleanup_free_ struct ps_filter_counter *sum = NULL;
        uint32_t lo = UINT32_MAX, hi = 0;
        int r;

        assert(s);
        assert(rules || n == 0);
        for (size_t i = 0; i < n; i++)
                if (rules[i]->slot < PS_FILTER_SLOTS) {
                        lo = MIN(lo, rules[i]->slot);
                        hi = MAX(hi, rules[i]->slot);
                }
        if (n >= COUNTERS_PAGE_MIN && lo <= hi &&
            (size_t) (hi - lo) < COUNTERS_PAGE_SPREAD * n &&
            counters_sum_range(s->counters_fd, lo, hi, &sum) >= 0) {
                for (size_t i = 0; i < n; i++) {
                        Filter *f = rules[i];

                        if (f->slot >= PS_FILTER_SLOTS)
                                continue;
                        f->hits = sum[f->slot - lo].hits;
                        f->bytes = sum[f->slot - lo].bytes;
                        f->last_hit_usec = mono_to_realtime_usec(sum[f->slot - lo].last_hit);
                }
                return 0;
        }
        /* Scattered, few, or no batch lookup in this kernel: one lookup per rule. */
        for (size_t i = 0; i < n; i++) {
                r = filter_store_read_counter(s, rules[i]);
                if (r < 0)
                        return r;
        }
        return 0;
}

int filter_store_read_counters(FilterStore *s) {
        int r;

        if (s->n_rules >= COUNTERS_BATCH_MIN && read_counters_batched(s) >= 0)
                return 0;
        /* One lookup per rule: cheaper than copying every slot of every CPU when few are used
         * (and what is left when the kernel has no batch lookup for the map). */
        for (size_t i = 0; i < s->n_rules; i++) {
                r = filter_store_read_counter(s, s->rules[i]);
                if (r < 0)
                        return r;
        }
        return 0;
}

void filter_store_set_change_callback(FilterStore *s, filter_store_changed_t cb, void *userdata) {
        assert(s);
        s->on_change = cb;
        s->userdata = userdata;
}

/* The kernel and the index again from the list, after a single change failed half way. */
static int store_resync(FilterStore *s) {
        _cleanup_(filter_index_done) FilterIndex index = {};
        FilterSet set = {};
        int r;

        s->index_valid = false;
        r = filter_compile_indexed(s->rules, s->n_rules, &set, &index, NULL);
        if (r < 0)
                return r;
        r = kernel_load(s, &set);
        filter_set_done(&set);
        if (r < 0)
                return r;
        filter_index_done(&s->index);
        s->index = index;
        index = (FilterIndex) {};
        s->index_valid = true;
        return 0;
}

/* Writes a single change's delta into the kernel; on failure puts the kernel and the index
 * back in line with the list (the change is then not made). */
static int store_apply(FilterStore *s, const FilterDelta *d, char **ret_error) {
        uint64_t t0 = now_usec(CLOCK_MONOTONIC);
        int r;

        r = filter_kernel_apply(s->state_fd, s->banks_fd, s->rules_fd, s->rules4_fd, s->gates_fd,
                                &s->state, &s->index, d);
        if (r < 0) {
                (void) error_setf(ret_error, 0, "writing the change into the kernel failed: %s",
                                  strerror(-r));
                if (store_resync(s) < 0)
                        log_struct_internal(LOG_CRIT, r, PS_MESSAGE_STATE_NOT_WRITABLE, NULL,
                                            "Cannot load the rule set into the kernel again "
                                            "after a failed change");
                return r;
        }
        s->n_shapes = s->index.n_shapes;
        s->n_entries = s->index.n_entries;
        s->last_apply_usec = now_usec(CLOCK_MONOTONIC) - t0;
        return 0;
}

/* Tells the owner which rule came or went in a change of one rule. */
static void store_changed_one(FilterStore *s, uint32_t added, uint32_t removed) {
        if (s->on_change)
                s->on_change(s, &(FilterStoreChange) { .added = added, .removed = removed },
                             s->userdata);
}

static int store_commit_whole(FilterStore *s, FilterList *add, bool replace, bool persist,
                              uint32_t *ret_ids, char **ret_error);

int filter_store_add_one(FilterStore *s, Filter *f, bool persist, uint32_t *ret_id,
                         char **ret_error) {
        _cleanup_(filter_delta_done) FilterDelta d = {};
        uint32_t next_id = s->next_id, id = f->id;
        uint64_t now = now_usec(CLOCK_REALTIME);
        Filter **grown;
        int r;

        assert(s);
        assert(f);
        r = refuse_if_busy(s, ret_error);
        if (r < 0)
                return r;
        /* What the whole-set path does better: a degraded set, a rule that brings its own
         * counter slot (a rollback), a full set or no free slot (it reuses removed ones). */
        if (!s->index_valid || s->degraded || f->slot != SLOT_NONE ||
            s->n_rules >= PS_FILTER_MAX_RULES)
                goto whole;
        if (id != UINT32_MAX && filter_store_find(s, id))
                return error_setf(ret_error, -EEXIST,
                                  "duplicate rule id %u; every id must be unique", id);
        grown = realloc(s->rules, (s->n_rules + 2) * sizeof(Filter *));
        if (!grown)
                return -ENOMEM;
        s->rules = grown;
        if (alloc_slot(s, &f->slot) < 0)
                goto whole;
        /* As filter_store_replace() assigns them. */
        if (id == UINT32_MAX)
                f->id = next_id++;
        else if (id >= next_id)
                next_id = id + 1;
        rule_times(f, now);
        (void) zero_counter(s, f->slot);

        r = filter_index_add(&s->index, f, &d, ret_error);
        if (r == -ERANGE) {
                s->slot_used[f->slot] = 0;
                f->slot = SLOT_NONE;
                f->id = id;
                goto whole;
        }
        if (r < 0)
                goto fail;
        r = store_apply(s, &d, ret_error);
        if (r < 0)
                goto fail;
        if (persist) {
                s->rules[s->n_rules] = f;
                r = store_save_one(s, "add", f, 0, s->rules, s->n_rules + 1, next_id,
                                   ret_error);
                if (r < 0) {
                        _cleanup_(filter_delta_done) FilterDelta undo = {};

                        if (filter_index_remove(&s->index, f, &undo) < 0 ||
                            store_apply(s, &undo, NULL) < 0)
                                (void) store_resync(s);
                        goto fail;
                }
        }
        s->rules[s->n_rules++] = f;
        s->next_id = next_id;
        f->store = s;
        ids_put(s, f);
        /* Only now: the compacting child copies the list with this rule in it. */
        if (persist)
                state_journal_compact_maybe(&s->journal);
        store_schedule_expiry_one(s, f);
        if (ret_id)
                *ret_id = f->id;
        store_changed_one(s, f->id, UINT32_MAX);
        return 0;
fail:
        s->slot_used[f->slot] = 0;
        f->slot = SLOT_NONE;
        f->id = id;
        return r;
whole: {
                FilterList add = {};

                add.rules = malloc(2 * sizeof(Filter *));
                if (!add.rules)
                        return -ENOMEM;
                add.rules[0] = f;
                add.n = 1;
                r = store_commit_whole(s, &add, false, persist, ret_id, ret_error);
                if (r < 0)
                        free(add.rules); /* f stays the caller's */
                return r;
        }
}

/* filter_store_change_one() through filter_store_replace(): a new list, compiled whole. */
static int store_change_whole(FilterStore *s, size_t idx, Filter *changed, bool persist,
                              char **ret_error) {
        _cleanup_filter_list_ FilterList whole = {};
        int r;

        r = filter_store_snapshot(s, &whole.rules, &whole.n);
        if (r < 0)
                return r;
        filter_free(whole.rules[idx]);
        if (changed)
                whole.rules[idx] = changed;
        else {
                memmove(whole.rules + idx, whole.rules + idx + 1,
                        (whole.n - idx - 1) * sizeof(Filter *));
                whole.n--;
        }
        r = filter_store_replace(s, whole.rules, whole.n, persist, ret_error);
        if (r < 0) {
                if (changed) { /* stays the caller's */
                        memmove(whole.rules + idx, whole.rules + idx + 1,
                                (whole.n - idx - 1) * sizeof(Filter *));
                        whole.n--;
                }
                return r;
        }
        whole = (FilterList) {};
        return 0;
}

/* The list with `changed` in place of rules[idx], or without it (changed NULL); and back. */
static void list_change_at(FilterStore *s, size_t idx, Filter *changed) {
        if (changed) {
                s->rules[idx] = changed;
                return;
        }
        memmove(s->rules + idx, s->rules + idx + 1, (s->n_rules - idx - 1) * sizeof(Filter *));
        s->n_rules--;
}

static void list_restore_at(FilterStore *s, size_t idx, Filter *old, bool removed) {
        if (removed) {
                memmove(s->rules + idx + 1, s->rules + idx, (s->n_rules - idx) * sizeof(Filter *));
                s->n_rules++;
        }
        s->rules[idx] = old;
}

int filter_store_change_one(FilterStore *s, uint32_t id, Filter *changed, bool persist,
                            char **ret_error) {
        _cleanup_(filter_delta_done) FilterDelta d = {}, gone = {};
        size_t idx = SIZE_MAX;
        Filter *old;
        int r;

        assert(s);
        r = refuse_if_busy(s, ret_error);
        if (r < 0)
                return r;
        old = filter_store_find(s, id);
        if (!old)
                return error_setf(ret_error, -ENOENT, "no filter %u", id);
        /* Its place in the list: pointers compared, no rule read. */
        for (size_t i = 0; i < s->n_rules && idx == SIZE_MAX; i++)
                if (s->rules[i] == old)
                        idx = i;
        assert(idx != SIZE_MAX);
        assert(!changed || (changed->id == id && changed->slot == old->slot));
        if (changed)
                rule_times(changed, now_usec(CLOCK_REALTIME));
        if (!s->index_valid || s->degraded)
                return store_change_whole(s, idx, changed, persist, ret_error);

        /* In the index the old rule goes first (the new one is ranked in its place), but the
         * kernel gets the new rule's entries first and only then loses the old one's. */
        r = filter_index_remove(&s->index, old, &gone);
        if (r < 0) {
                (void) store_resync(s);
                return r;
        }
        if (changed) {
                r = filter_index_add(&s->index, changed, &d, ret_error);
                if (r < 0) {
                        _cleanup_(filter_delta_done) FilterDelta back = {};

                        /* Refused (a limit): the old rule back into the index, ranked between
                         * the same neighbours, so the kernel, never touched, still agrees. */
                        if (filter_index_add(&s->index, old, &back, NULL) < 0)
                                (void) store_resync(s);
                        if (r == -ERANGE) /* no rank left there: the whole set again */
                                return store_change_whole(s, idx, changed, persist, ret_error);
                        return r;
                }
        }
        for (size_t i = 0; i < gone.n_keys && r >= 0; i++)
                r = filter_delta_push(&d, &gone.keys[i]);
        if (r >= 0)
                r = store_apply(s, &d, ret_error);
        if (r < 0)
                return r;
        /* The list changed in place, no copy of it: put back as it was if the change cannot be
         * stored (store_save_one() writes it whole when there is no snapshot to append to). */
        list_change_at(s, idx, changed);
        if (persist) {
                r = store_save_one(s, changed ? "change" : "remove", changed, id, s->rules,
                                   s->n_rules, s->next_id, ret_error);
                if (r < 0) {
                        _cleanup_(filter_delta_done) FilterDelta undo = {};

                        list_restore_at(s, idx, old, !changed);
                        if ((changed && filter_index_remove(&s->index, changed, &undo) < 0) ||
                            filter_index_add(&s->index, old, &undo, NULL) < 0 ||
                            store_apply(s, &undo, NULL) < 0)
                                (void) store_resync(s);
                        return r;
                }
        }
        if (changed) {
                changed->store = s;
                ids_put(s, changed);
        } else {
                ids_delete(s, id);
                s->slot_used[old->slot] = 0; /* rests until the allocator comes round again */
        }
        filter_free(old);
        if (persist)
                state_journal_compact_maybe(&s->journal);
        store_schedule_expiry_one(s, changed);
        store_changed_one(s, UINT32_MAX, changed ? UINT32_MAX : id);
        return 0;
}

int filter_store_commit(FilterStore *s, FilterList *add, bool replace, bool persist,
                        uint32_t *ret_ids, char **ret_error) {
        int r;

        assert(s);
        assert(add);
        if (replace || add->n != 1 || s->degraded)
                return store_commit_whole(s, add, replace, persist, ret_ids, ret_error);
        r = filter_store_add_one(s, add->rules[0], persist, ret_ids, ret_error);
        if (r < 0)
                return r;
        free(add->rules);
        *add = (FilterList) {};
        return 0;
}

/* The list a change leads to: copies of the old rules (unless `replace`), then those of
 * `add`, which stay the caller's until the change is committed. */
static int commit_list(FilterStore *s, FilterList *add, bool replace, FilterList *ret,
                       size_t *ret_copies) {
        _cleanup_filter_list_ FilterList list = {};
        size_t copies = 0;
        Filter **grown;
        int r;

        if (!replace) {
                r = filter_store_snapshot(s, &list.rules, &list.n);
                if (r < 0)
                        return r;
                copies = list.n;
        }
        grown = realloc(list.rules, (copies + add->n + 1) * sizeof(Filter *));
        if (!grown)
                return -ENOMEM;
        list.rules = grown;
        memcpy(list.rules + copies, add->rules, add->n * sizeof(Filter *));
        list.n = copies + add->n;
        *ret = list;
        *ret_copies = copies;
        list = (FilterList) {};
        return 0;
}

static int store_commit_whole(FilterStore *s, FilterList *add, bool replace, bool persist,
                              uint32_t *ret_ids, char **ret_error) {
        _cleanup_filter_list_ FilterList list = {};
        size_t copies = 0;
        int r;

        assert(s);
        assert(add);
        /* Merging into the list would replace the kernel's opaque set with the few rules
         * given, silently: only a whole new set (or an empty one, to clear) may replace it. */
        if (!replace && s->degraded)
                return error_setf(ret_error, -ESTALE,
                                  "the rule set is degraded (%s): the kernel enforces rules no "
                                  "readable file lists; Import a whole set with mode 'replace' "
                                  "(an empty one, '[]', clears them) before adding rules",
                                  s->degraded);
        r = refuse_if_busy(s, ret_error);
        if (r < 0)
                return r;
        r = commit_list(s, add, replace, &list, &copies);
        if (r < 0)
                return r;
        r = filter_store_replace(s, list.rules, list.n, persist, ret_error);
        if (r < 0) {
                list.n = copies; /* the added rules stay the caller's */
                return r;
        }
        list = (FilterList) {}; /* the store owns the array and every rule now */
        for (size_t i = 0; ret_ids && i < add->n; i++)
                ret_ids[i] = add->rules[i]->id;
        free(add->rules);
        *add = (FilterList) {};
        return 0;
}

int filter_store_prepare_one(FilterStore *s, uint32_t id, json_t *update, Filter **ret,
                             char **ret_error) {
        _cleanup_filter_ Filter *f = NULL;
        Filter *target;
        int r;

        assert(s);
        assert(ret);
        target = filter_store_find(s, id);
        if (!target)
                return error_setf(ret_error, -ENOENT, "no filter %u", id);
        f = malloc(sizeof(Filter));
        if (!f)
                return -ENOMEM;
        r = filter_copy(f, target);
        if (r < 0) {
                free(TAKE_PTR(f));
                return r;
        }
        r = filter_from_json(f, update, FILTER_PARSE_UPDATE, ret_error);
        if (r < 0)
                return r;
        if (json_object_get(update, "timeout"))
                f->expires_usec = 0; /* counts again from now */
        f->store = NULL;
        *ret = TAKE_PTR(f);
        return 0;
}

int filter_store_prepare_change(FilterStore *s, uint32_t id, json_t *update, FilterList *ret,
                                Filter **ret_changed, char **ret_error) {
        _cleanup_filter_list_ FilterList list = {};
        size_t idx = SIZE_MAX;
        int r;

        assert(s);
        assert(ret);
        assert(ret_changed);
        r = filter_store_snapshot(s, &list.rules, &list.n);
        if (r < 0)
                return r;
        for (size_t i = 0; i < list.n; i++)
                if (list.rules[i]->id == id)
                        idx = i;
        if (idx == SIZE_MAX)
                return error_setf(ret_error, -ENOENT, "no filter %u", id);
        if (!update) {
                filter_free(list.rules[idx]);
                memmove(list.rules + idx, list.rules + idx + 1,
                        (list.n - idx - 1) * sizeof(Filter *));
                list.n--;
                *ret_changed = NULL;
        } else {
                r = filter_from_json(list.rules[idx], update, FILTER_PARSE_UPDATE, ret_error);
                if (r < 0)
                        return r;
                if (json_object_get(update, "timeout"))
                        list.rules[idx]->expires_usec = 0; /* counts again from now */
                *ret_changed = list.rules[idx];
        }
        *ret = list;
        list = (FilterList) {};
        return 0;
}
