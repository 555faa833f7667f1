/* SPDX-License-Identifier: MIT */
#pragma once

#include <systemd/sd-event.h>

#include "conf.h"
#include "filter-compile.h"
#include "rule.h"
#include "state-journal.h"

typedef struct FilterStore FilterStore;
typedef struct FilterTransaction FilterTransaction;

/* What a change of the set was, for whoever tells the bus. A change of one rule names the id
 * that came or went (UINT32_MAX for none: a rule changed in place), so that nobody walks the
 * set for it; a change of the whole set gives the ids it held before, for a diff. */
typedef struct FilterStoreChange {
        const uint32_t *old_ids; /* NULL for a change of one rule */
        size_t n_old;
        uint32_t added, removed;
} FilterStoreChange;

/* Told after every change of the set. */
typedef void (*filter_store_changed_t)(FilterStore *s, const FilterStoreChange *c, void *userdata);

/*
 * The rule set: the rules in memory, their copy in $STATE_DIRECTORY/filters.json and the
 * compiled form in the kernel maps shared by every guarded link (pinned in
 * <bpffs-root>/:filters/). A whole new set is compiled into the inactive bank, the bank is
 * flipped, and only then the list and the file are replaced; a change of one rule writes only
 * that rule's entries into the active bank (filter_store_add_one(), filter_store_change_one()).
 * A change that fails at any step leaves the kernel, the memory and the file as they were.
 */
struct FilterStore {
        sd_event *event;        /* not owned */
        const char *state_dir;  /* not owned */
        const char *bpffs_root; /* not owned */
        Filter **rules;
        size_t n_rules;
        uint32_t next_id;
        /* id -> rule (open addressing, linear probing), so that finding a rule does not walk
         * the list: built from the list when first needed after a change of the whole set,
         * kept up to date by a change of one rule. NULL when not built. */
        Filter **by_id;
        unsigned by_id_bits; /* 1 << by_id_bits entries */
        size_t by_id_n;

        int state_fd, banks_fd, rules_fd, rules4_fd, counters_fd, events_fd, gates_fd;
        uint32_t state; /* filter_state: generation << 2 | cacheable << 1 | active bank */
        uint8_t *slot_used; /* PS_FILTER_SLOTS bytes */

        size_t n_shapes, n_entries; /* of the active set */
        FilterIndex index;          /* the active set, for changes of one rule */
        bool index_valid;
        uint64_t last_apply_usec;   /* how long the last kernel update took */

        sd_event_source *expiry_timer;
        FilterTransaction *transaction; /* a pending confirm-or-rollback change, at most one */

        /* Why the list is not what the kernel enforces: no readable filters.json nor previous
         * generation while the kernel's pinned set has rules. NULL when all is well; the next
         * replacing change ends it. */
        char *degraded;

        /* A set change applied off the loop (filter_store_commit_async), and what it is, for
         * the error every other change gets meanwhile; NULL when none. */
        struct FilterOffload *offload;
        char *busy;
        /* The kernel's inactive bank when it is known to be empty (emptied while an import
         * was read, for that import's load), or -1. */
        int clean_bank;

        /* ListFd documents being written in their threads (filter_store_list_memfd()). */
        struct FilterListJob *list_jobs;
        size_t n_list_jobs;

        /* filters.json is the snapshot; a change of one rule appends a record to filters.log
         * instead of writing it whole (see state-journal.h). journal_gen numbers the snapshots
         * written whole: a journal belongs to the snapshot whose number its header names. */
        StateJournal journal;
        uint64_t journal_gen;
        bool journal_stale; /* the last whole write could not remove the journal */

        filter_store_changed_t on_change;
        void *userdata; /* the owner's, for the callback and whoever finds a rule */
};

#define FILTERS_PIN_DIR ":filters" /* ':' never appears in an interface name */

int filter_store_new(FilterStore **ret);
FilterStore *filter_store_free(FilterStore *s);
void filter_store_set_change_callback(FilterStore *s, filter_store_changed_t cb, void *userdata);

/* Opens the pinned maps in <bpffs_root>/:filters or creates and pins them; then loads
 * <state_dir>/filters.json and puts the set in the kernel. A corrupt file is kept as
 * filters.json.corrupt and the previous generation, filters.json.prev, is loaded instead; when
 * neither is readable the list starts empty and, if the kernel still enforces rules, the store
 * is degraded (s->degraded says why). The strings and the loop are borrowed. */
int filter_store_start(FilterStore *s, sd_event *event, const char *state_dir,
                       const char *bpffs_root, char **ret_error);

/* The map fds a link's program must share (bpf_map__reuse_fd). */
int filter_store_fds(FilterStore *s, int *state, int *banks, int *rules, int *rules4, int *gates,
                     int *counters, int *events);

Filter *filter_store_find(FilterStore *s, uint32_t id);

/*
 * Replaces the whole list with `rules` (ownership of the array and the rules passes to the
 * store on success; on failure the caller keeps it). Assigns ids, slots and times to new
 * rules, compiles, loads the kernel, persists unless `persist` is false. When filters.json
 * cannot be written the kernel is put back to the old set and -EROFS returned (see
 * state_write_file()). -EBUSY while a change of filter_store_commit_async() is applied.
 */
int filter_store_replace(FilterStore *s, Filter **rules, size_t n, bool persist,
                         char **ret_error);

/* Reads the per-rule counters from the kernel into hits/bytes/last_hit of every rule. */
int filter_store_read_counters(FilterStore *s);
int filter_store_read_counter(FilterStore *s, Filter *f);
/* The same for rules[0..n) of the list (a page of it): one batch lookup when their counter
 * slots lie close together, else one lookup per rule. */
int filter_store_read_counters_of(FilterStore *s, Filter **rules, size_t n);

/* A copy of the list (rules duplicated), the starting point of a change. */
int filter_store_snapshot(FilterStore *s, Filter ***ret, size_t *ret_n);

/*
 * Adds the rules of `add` to the set (or, with `replace`, makes them the set) and commits. On
 * success the rules belong to the store, `add` is empty and ret_ids (if not NULL, add->n long)
 * holds their ids; on failure `add` is unchanged.
 */
int filter_store_commit(FilterStore *s, FilterList *add, bool replace, bool persist,
                        uint32_t *ret_ids, char **ret_error);

/*
 * The list an Update (update != NULL) or a Delete (update == NULL) of rule `id` leads to, not
 * yet committed: -ENOENT when there is no such rule, -EINVAL for a bad update. *ret_changed
 * points at the updated rule inside the list (NULL for a delete).
 */
int filter_store_prepare_change(FilterStore *s, uint32_t id, json_t *update, FilterList *ret,
                                Filter **ret_changed, char **ret_error);

/*
 * Work off the loop: `work(data)` runs in a thread, then `done(data, cancelled)` on the loop
 * (cancelled when the store is freed first, after the thread ended). One at a time: -EBUSY
 * while another runs. The work must touch nothing the loop reads or writes meanwhile. It
 * prepares a change of the set (an import's document read): the caller has set s->busy, and
 * the kernel's inactive bank, which that change fills, is emptied meanwhile in another thread.
 */
typedef void (*filter_offload_work_t)(void *data);
typedef void (*filter_offload_done_t)(void *data, bool cancelled);
int filter_store_offload(FilterStore *s, filter_offload_work_t work, filter_offload_done_t done,
                         void *data);

/* Told on the loop when a change of filter_store_commit_async() is done: r < 0 and (maybe) a
 * message when it failed, and then nothing of it remains. */
typedef void (*filter_change_done_t)(FilterStore *s, int r, const char *error, void *userdata);

/*
 * filter_store_commit() (persisted) without blocking the loop: ids and counter slots are given
 * at once (ret_ids, add->n long), the compile, the kernel load and filters.json are done in a
 * thread, and until `done` is told, the list, the kernel and the file stay the old set, and
 * every other change of the set (this, filter_store_commit(), filter_store_replace()) fails
 * with -EBUSY naming `what`. On success the rules belong to the change and `add` is empty; on
 * failure (-EBUSY, -ESTALE, preparation errors) `add` is unchanged.
 */
int filter_store_commit_async(FilterStore *s, FilterList *add, bool replace, const char *what,
                              uint32_t *ret_ids, filter_change_done_t done, void *userdata,
                              char **ret_error);

/*
 * The lock-out guard: an enabled drop rule must not cut a management address off from a
 * management port (Config), unless the rule says `force`. -EPERM with a message naming the
 * rule, the address and the port.
 */
int filter_check_lockout(const Config *c, const Filter *f, char **ret_error);

/*
 * Reads an import document: one rule object, an array of them, or {"filters": [...]}. Rules
 * whose time is over are left out. Errors: -EMSGSIZE the text is too long, -EINVAL bad JSON or
 * a bad rule (the message names its index), -E2BIG too many rules.
 */
int filter_parse_import(const char *text, bool keep_ids, FilterList *ret, char **ret_error);

/* Writes the set in memory to filters.json: -EROFS (logged, *ret_error saying which file and
 * why) when it cannot be written. */
int filter_store_save(FilterStore *s, char **ret_error);

/* Replays the text of a rule journal (filters.log) over rules[0..n) (allocated, at least n + 1
 * long; grown as needed) as the start does, marking the slots in s->slot_used; what
 * state_journal_replay_text() returns. For the tests. */
int filter_store_replay_text(FilterStore *s, Filter ***rules, size_t *n, uint32_t *next,
                             char *text, size_t *size, size_t *ret_records, size_t *ret_bad,
                             size_t *ret_first_bad);

/* Fills the inactive bank of these maps with the set and flips to it; *state is the value of
 * filter_state before, and after on success. Used by the store, the tests and the bench. */
int filter_kernel_load(int state_fd, int banks_fd, int rules_fd, int rules4_fd, int gates_fd,
                       uint32_t *state, const FilterSet *set);
/* Writes what changed in the index (d) into the active bank, in an order that lets every
 * packet see the set before or the set after (bpf/README.md, "Changing one rule"), and starts
 * a new generation. Used by the store, the tests and the bench. */
int filter_kernel_apply(int state_fd, int banks_fd, int rules_fd, int rules4_fd, int gates_fd,
                        uint32_t *state, const FilterIndex *ix, const FilterDelta *d);

/*
 * Adds one rule without compiling or loading the others again: the kernel gets its entries
 * in the active bank (falls back to filter_store_commit()'s whole-set path when the rule
 * cannot be ranked in place). Ownership of f passes to the store on success; *ret_id its id.
 */
int filter_store_add_one(FilterStore *s, Filter *f, bool persist, uint32_t *ret_id,
                         char **ret_error);
/* Removes one rule the same way (id), or replaces it by `changed` (same id and slot; owned
 * by the store on success). */
int filter_store_change_one(FilterStore *s, uint32_t id, Filter *changed, bool persist,
                            char **ret_error);
/* A copy of rule `id` with `update` (Filter.Update's fields) applied, for
 * filter_store_change_one(). */
int filter_store_prepare_one(FilterStore *s, uint32_t id, json_t *update, Filter **ret,
                             char **ret_error);
json_t *filter_store_export(FilterStore *s);

/* Told on the loop when filter_store_list_memfd() is done: the memfd (the callee's to close)
 * or r < 0; r == -ECANCELED when the store is freed first (fd -1). */
typedef void (*filter_list_done_t)(FilterStore *s, int r, int fd, void *userdata);

/* ListFd documents being written at once, at most; each holds a copy of the set meanwhile. */
#define FILTER_LIST_JOBS_MAX 4

/*
 * The set with its counters as one compact JSON document in a sealed memfd (F_SEAL_WRITE,
 * SHRINK, GROW and SEAL, offset 0): {"columns": [KEY, ...], "rows": [[VALUE, ...], ...]}, the
 * columns the keys of List()'s a{sv} but "path", the values what List() carries for them.
 * What Filters.ListFd() sends. The loop only copies the rules (the set as it is now); the
 * counters are read and the document written in a thread, and `done` is told on the loop.
 * -EBUSY when FILTER_LIST_JOBS_MAX are running.
 */
int filter_store_list_memfd(FilterStore *s, filter_list_done_t done, void *userdata);

/* Checks that fd can be an import document before anyone waits for it: a regular file or a
 * memfd (-EBADF otherwise), at most PS_IMPORT_FD_MAX_BYTES long (-EFBIG); with a message. */
int filter_import_fd_check(int fd, char **ret_error);
/* Reads the import document of fd from offset 0 (a file that grew meanwhile gets -EFBIG, one
 * that holds a NUL byte -EINVAL) and parses it as filter_parse_import() does. */
int filter_parse_import_fd(int fd, bool keep_ids, FilterList *ret, char **ret_error);

/* The deciding rules of the kernel's active set as opaque entries (counter slot, action,
 * classifier entries, hits, bytes, last_hit), at most `max`; *ret_total counts them all. What a
 * degraded store can show of the rules it enforces but cannot list. */
int filter_store_kernel_rules(FilterStore *s, size_t max, json_t **ret, size_t *ret_total);
