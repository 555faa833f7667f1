/* SPDX-License-Identifier: MIT */
#include <arpa/inet.h>
#include <stdio.h>
#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "ban-maps.h"
#include "ban-record.h"
#include "ban-policies.h"
#include "bans.h"
#include "bpf-maps.h"
#include "log.h"
#include "state-journal.h"
#include "util.h"

/* The snapshot (see store_format_snapshot()); bans.json was its text form before: read once
 * at start and replaced by it. */
#define BANS_FILE "bans.snapshot"
#define BANS_FILE_JSON "bans.json"
/* The changes since the snapshot, appended per call; bans.log.new takes them while a
 * compaction writes the snapshot (and after one failed), and replaces bans.log once it is. */
#define BANS_LOG "bans.log"
#define BANS_LOG_NEW "bans.log.new"
#define BANS_LOG_COMPACT_MIN (4u * 1024 * 1024)
/* A clean stop folds a journal of at least this much into the snapshot: the next start then
 * reads the snapshot alone. The start is what a restart waits for (the write at the stop costs
 * about what the replay would, but nobody waits for the stop but the service manager); 1 MiB
 * is about 18,000 records. */
#define BANS_LOG_STOP_MIN (1u * 1024 * 1024)
#define BANS_FILE_MAX_BYTES (512u * 1024 * 1024)
#define BAN_IMPORT_MAX (2u * 1024 * 1024)

struct BanStore {
        sd_event *event;        /* not owned */
        const char *state_dir;  /* not owned */
        Config *config;         /* not owned; SetPolicy changes its [Bans] policies */
        BanMaps maps;

        Ban *bans; /* dense; the index points into it */
        size_t n_bans, n_alloc;
        uint32_t *index; /* open addressing, linear probing: 0 empty, else position + 1 */
        size_t index_size; /* a power of two, at least twice n_bans */
        uint32_t prefix_count[2][129]; /* bans per (family, prefix length), for covering() */
        uint32_t next_id;

        Cidr *allow;
        size_t n_allow;
        uint64_t n_refused_full; /* see BanStoreInfo */
        BanTotals totals;

        /* The snapshot and the journal of the changes since (bans.log, bans.log.new). */
        StateJournal journal;

        sd_event_source *reap_timer;
        uint64_t next_expiry; /* the earliest expiry, or earlier (a ban that ended since); 0 none */
        struct ring_buffer *events;
        sd_event_source *events_source;
        BanCallbacks cb;

        bool convert_json; /* read from bans.json: the snapshot replaces it after the start */
        /* A journal not to append to (of the text format, or unreadable past a point) was read:
         * a snapshot of the table replaces it after the start. */
        bool log_rewrite;
        size_t replay_room; /* at most as many bans as the journals hold records */
        /* The reasons of the bans read from bans.log and bans.log.new, one block each. */
        char *log_reasons[2];
        size_t log_reasons_size[2];
        /* The reasons of the bans read from the snapshot, in one block (a ban repeating the
         * reason of the one before shares its string); reason_free() leaves them be. */
        char *reasons;
        size_t reasons_size;
        BanOffenders offenders; /* what offenders.json holds */
        sd_event_source *offenders_timer; /* forgets them after RememberOffendersSec= */
        /* The reconciliation of the exact tables after the start (reconcile_start()). */
        sd_event_source *reconcile_source;
        /* Gives freed memory back once a large change's call is answered and its message
         * freed (store_trim_soon()). */
        sd_event_source *trim_source;
        BpfMapSweeper reconcile_walk;
        struct walk_ctx *reconcile_ctx;
        uint64_t reconcile_usec, reconcile_cpu_usec;
        size_t reconcile_adopted;
        unsigned policies_set;  /* the policies SetPolicy changed (policies.json), by bit */
};

static const char *const origin_names[_BAN_ORIGIN_MAX] = {
        [0] = NULL,
        [BAN_ORIGIN_MANUAL] = "manual",
        [BAN_ORIGIN_AUTO] = "auto",
        [BAN_ORIGIN_IMPORT] = "import",
        [BAN_ORIGIN_AI] = "ai",
};

/* The auto-ban policies by their number in the kernel's events. */
static const char *const policy_names[_PS_BAN_POLICY_MAX] = {
        [PS_BAN_POLICY_CONNECTIONS] = "connections",
        [PS_BAN_POLICY_SYN_RATE] = "syn-rate",
        [PS_BAN_POLICY_PORT_SCAN] = "port-scan",
        [PS_BAN_POLICY_URL] = "url",
};

const char *ban_policy_to_string(unsigned p) {
        return p < ELEMENTSOF(policy_names) ? policy_names[p] : NULL;
}

const char *ban_origin_to_string(const Ban *b, char *buf, size_t size) {
        if (b->origin == BAN_ORIGIN_AUTO) {
                snprintf(buf, size, "auto:%s", b->policy < ELEMENTSOF(policy_names)
                                               ? policy_names[b->policy] : "unknown");
                return buf;
        }
        return b->origin >= BAN_ORIGIN_MANUAL && b->origin < _BAN_ORIGIN_MAX
               ? origin_names[b->origin] : "unknown";
}

int ban_origin_from_string(const char *s, BanOrigin *ret_origin, uint8_t *ret_policy) {
        if (strncmp(s, "auto:", 5) == 0) {
                for (size_t i = 0; i < ELEMENTSOF(policy_names); i++)
                        if (streq(s + 5, policy_names[i])) {
                                *ret_origin = BAN_ORIGIN_AUTO;
                                *ret_policy = (uint8_t) i;
                                return 0;
                        }
                return -EINVAL;
        }
        for (size_t i = BAN_ORIGIN_MANUAL; i < _BAN_ORIGIN_MAX; i++)
                if (i != BAN_ORIGIN_AUTO && streq(s, origin_names[i])) {
                        *ret_origin = (BanOrigin) i;
                        *ret_policy = 0;
                        return 0;
                }
        return -EINVAL;
}

static unsigned fam_idx(uint8_t family) {
        return family == ADDR_FAMILY_IPV6;
}

static bool cidr_is_exact(const Cidr *c) {
        return c->prefixlen == (c->family == ADDR_FAMILY_IPV4 ? 32 : 128);
}

/* ------------------------------------------------------------------------------------------ */
/* The index */

static bool in_block(const char *p, const char *block, size_t size) {
        return block && p >= block && p < block + size;
}

static void reason_free(BanStore *s, char *p) {
        if (p && !in_block(p, s->reasons, s->reasons_size) &&
            !in_block(p, s->log_reasons[0], s->log_reasons_size[0]) &&
            !in_block(p, s->log_reasons[1], s->log_reasons_size[1]))
                free(p);
}

static uint64_t cidr_hash(const Cidr *c) {
        /* FNV-1a over what makes a key: family, length, the address words in use. */
        uint64_t h = UINT64_C(1469598103934665603);
        const uint8_t *p = (const uint8_t *) c->addr;
        size_t n = c->family == ADDR_FAMILY_IPV4 ? 4 : 16;

        h = (h ^ c->family) * UINT64_C(1099511628211);
        h = (h ^ c->prefixlen) * UINT64_C(1099511628211);
        for (size_t i = 0; i < n; i++)
                h = (h ^ p[i]) * UINT64_C(1099511628211);
        /* FNV's low bits (the ones the mask keeps) follow the input's low bits: mix them all
         * in, or neighbouring addresses fill neighbouring slots and probing goes quadratic. */
        h ^= h >> 33;
        h *= UINT64_C(0xff51afd7ed558ccd);
        h ^= h >> 33;
        h *= UINT64_C(0xc4ceb9fe1a85ec53);
        return h ^ (h >> 33);
}

static bool cidr_equal(const Cidr *a, const Cidr *b) {
        return a->family == b->family && a->prefixlen == b->prefixlen &&
               memcmp(a->addr, b->addr, sizeof a->addr) == 0;
}

static size_t index_slot(BanStore *s, const Cidr *c, bool *ret_found) {
        size_t mask = s->index_size - 1, i = cidr_hash(c) & mask;

        for (;; i = (i + 1) & mask) {
                uint32_t v = s->index[i];

                if (v == 0) {
                        *ret_found = false;
                        return i;
                }
                if (cidr_equal(&s->bans[v - 1].cidr, c)) {
                        *ret_found = true;
                        return i;
                }
        }
}

static int index_build(BanStore *s);

static int index_rebuild(BanStore *s, size_t size) {
        uint32_t *n = calloc(size, sizeof(uint32_t));

        if (!n)
                return -ENOMEM;
        free(s->index);
        s->index = n;
        s->index_size = size;
        /* The bans are distinct: index_build() finds no pair. */
        return index_build(s);
}

/* How many bans ahead the bulk loops fetch the memory they will touch: a million random
 * accesses into a 16 MB index are otherwise a million waits for memory. */
#define INDEX_AHEAD 8

/* The index over the bans put in the array without it (the snapshot's, all at once; or all
 * of them into a larger index), the array read in order. -EEXIST when two of them have the
 * same address. */
static int index_build(BanStore *s) {
        size_t mask = s->index_size - 1;

        for (size_t k = 0; k < s->n_bans; k++) {
                size_t i = cidr_hash(&s->bans[k].cidr) & mask;

                if (k + INDEX_AHEAD < s->n_bans)
                        __builtin_prefetch(&s->index[cidr_hash(&s->bans[k + INDEX_AHEAD].cidr) &
                                                     mask], 1);
                for (;; i = (i + 1) & mask) {
                        uint32_t v = s->index[i];

                        if (v == 0)
                                break;
                        if (cidr_equal(&s->bans[v - 1].cidr, &s->bans[k].cidr))
                                return -EEXIST;
                }
                s->index[i] = (uint32_t) k + 1;
        }
        return 0;
}

/* Room for n more bans in the array and the index. */
static int store_reserve(BanStore *s, size_t more) {
        size_t want = s->n_bans + more;

        if (want > s->n_alloc) {
                size_t a = MAX(want, MAX(s->n_alloc * 2, (size_t) 64));
                Ban *n = realloc(s->bans, a * sizeof(Ban));

                if (!n)
                        return -ENOMEM;
                s->bans = n;
                s->n_alloc = a;
        }
        if (want * 2 > s->index_size) {
                size_t size = MAX(s->index_size, (size_t) 128);

                while (want * 2 > size)
                        size *= 2;
                return index_rebuild(s, size);
        }
        return 0;
}

static Ban *store_find(BanStore *s, const Cidr *c) {
        bool found;
        size_t i;

        if (s->n_bans == 0)
                return NULL;
        i = index_slot(s, c, &found);
        return found ? &s->bans[s->index[i] - 1] : NULL;
}

/* Appends b at the free index slot i that index_slot() gave for it (its reason is taken over);
 * store_reserve() was called before that. */
static Ban *store_insert_at(BanStore *s, size_t i, const Ban *b) {
        s->bans[s->n_bans] = *b;
        s->index[i] = (uint32_t) ++s->n_bans;
        s->prefix_count[fam_idx(b->cidr.family)][b->cidr.prefixlen]++;
        return &s->bans[s->n_bans - 1];
}

/* Appends b (its reason is taken over); store_reserve() was called. */
static Ban *store_insert(BanStore *s, const Ban *b) {
        bool found;
        size_t i = index_slot(s, &b->cidr, &found);

        assert(!found);
        s->bans[s->n_bans] = *b;
        s->index[i] = (uint32_t) ++s->n_bans;
        s->prefix_count[fam_idx(b->cidr.family)][b->cidr.prefixlen]++;
        return &s->bans[s->n_bans - 1];
}

/* Removes the entry at index slot i (backward-shift deletion keeps probe chains whole) and
 * moves the last ban into its place. The reason is freed. */
static void store_remove(BanStore *s, const Cidr *c) {
        size_t mask = s->index_size - 1, i, j, pos, last;
        bool found;

        i = index_slot(s, c, &found);
        if (!found)
                return;
        pos = s->index[i] - 1;
        s->prefix_count[fam_idx(c->family)][c->prefixlen]--;
        reason_free(s, s->bans[pos].reason);

        /* Close the hole in the probe chain. */
        j = i;
        for (;;) {
                size_t home;

                j = (j + 1) & mask;
                if (s->index[j] == 0)
                        break;
                home = cidr_hash(&s->bans[s->index[j] - 1].cidr) & mask;
                /* Move j back to i unless its home lies cyclically in (i, j]. */
                if ((i <= j) ? (i < home && home <= j) : (i < home || home <= j))
                        continue;
                s->index[i] = s->index[j];
                i = j;
        }
        s->index[i] = 0;

        /* Fill the array's hole with the last ban. */
        last = --s->n_bans;
        if (pos != last) {
                size_t k;

                s->bans[pos] = s->bans[last];
                k = index_slot(s, &s->bans[pos].cidr, &found);
                assert(found);
                s->index[k] = (uint32_t) pos + 1;
        }
}

/* ------------------------------------------------------------------------------------------ */

int ban_store_new(BanStore **ret) {
        BanStore *s = calloc(1, sizeof(BanStore));

        assert(ret);
        if (!s)
                return -ENOMEM;
        s->maps = BAN_MAPS_INIT;
        s->next_id = 1;
        state_journal_init(&s->journal);
        *ret = s;
        return 0;
}

BanStore *ban_store_free(BanStore *s) {
        if (!s)
                return NULL;
        for (size_t i = 0; i < s->n_bans; i++)
                reason_free(s, s->bans[i].reason);
        free(s->reasons);
        free(s->log_reasons[0]);
        free(s->log_reasons[1]);
        free(s->bans);
        free(s->index);
        free(s->allow);
        /* A compaction under way is stopped: left running, its snapshot could land after
         * the one of the next daemon's first compaction and take records back out. Stopped,
         * the journals it would have replaced are replayed on the next start. */
        state_journal_stop(&s->journal);
        sd_event_source_unref(s->reap_timer);
        sd_event_source_unref(s->offenders_timer);
        sd_event_source_disable_unref(s->reconcile_source);
        sd_event_source_disable_unref(s->trim_source);
        bpf_map_sweeper_done(&s->reconcile_walk);
        free(s->reconcile_ctx);
        sd_event_source_unref(s->events_source);
        ring_buffer__free(s->events);
        ban_offenders_done(&s->offenders);
        ban_maps_close(&s->maps);
        free(s);
        return NULL;
}

void ban_store_set_callbacks(BanStore *s, const BanCallbacks *cb) {
        s->cb = *cb;
}

BanMaps *ban_store_maps(BanStore *s) {
        return &s->maps;
}

size_t ban_store_count(BanStore *s) {
        return s->n_bans;
}

const Ban *ban_store_at(BanStore *s, size_t i) {
        return i < s->n_bans ? &s->bans[i] : NULL;
}

const Ban *ban_store_find(BanStore *s, const Cidr *c) {
        return store_find(s, c);
}

const Ban *ban_store_find_id(BanStore *s, uint32_t id) {
        for (size_t i = 0; i < s->n_bans; i++)
                if (s->bans[i].id == id)
                        return &s->bans[i];
        return NULL;
}

const Ban *ban_store_covering(BanStore *s, uint8_t family, const uint32_t addr[4]) {
        unsigned full = family == ADDR_FAMILY_IPV4 ? 32 : 128;

        /* Longest prefix first, skipping lengths no ban has: at most 33 or 129 lookups. */
        for (int len = (int) full; len >= 0; len--) {
                Cidr c = { .family = family, .prefixlen = (uint8_t) len };
                const Ban *b;

                if (s->prefix_count[fam_idx(family)][len] == 0)
                        continue;
                memcpy(c.addr, addr, sizeof c.addr);
                if (family == ADDR_FAMILY_IPV4)
                        c.addr[1] = c.addr[2] = c.addr[3] = 0;
                {
                        uint8_t *p = (uint8_t *) c.addr;

                        for (unsigned b = 0; b < 16; b++) {
                                unsigned bits = (unsigned) len > b * 8 ? MIN((unsigned) len - b * 8, 8u) : 0;

                                p[b] &= bits == 0 ? 0 : (uint8_t) (0xff << (8 - bits));
                        }
                }
                b = store_find(s, &c);
                if (b)
                        return b;
        }
        return NULL;
}

/* Two prefixes overlap when the shorter contains the longer's network address. */
static bool cidr_overlaps(const Cidr *a, const Cidr *b) {
        if (a->family != b->family)
                return false;
        return a->prefixlen <= b->prefixlen ? cidr_contains(a, b->family, b->addr)
                                            : cidr_contains(b, a->family, a->addr);
}

const Cidr *ban_store_allowlisted(BanStore *s, const Cidr *c) {
        for (size_t i = 0; i < s->n_allow; i++)
                if (cidr_overlaps(&s->allow[i], c))
                        return &s->allow[i];
        if (s->config) {
                for (uint32_t i = 0; i < s->config->n_management; i++)
                        if (cidr_overlaps(&s->config->management[i], c))
                                return &s->config->management[i];
                for (uint32_t i = 0; i < s->config->n_bans_allowlist; i++)
                        if (cidr_overlaps(&s->config->bans_allowlist[i], c))
                                return &s->config->bans_allowlist[i];
        }
        return NULL;
}

void ban_store_info(BanStore *s, BanStoreInfo *ret) {
        *ret = (BanStoreInfo) {
                .n_bans = s->n_bans,
                .n_exact4 = s->prefix_count[0][32],
                .n_exact6 = s->prefix_count[1][128],
                .capacity4 = s->maps.max_v4,
                .capacity6 = s->maps.max_v6,
                .capacity_cidr = PS_BANS_CIDR_MAX,
                .n_allowlist = s->n_allow,
                .n_refused_full = s->n_refused_full,
        };
        ret->n_cidr = s->n_bans - ret->n_exact4 - ret->n_exact6;
}

void ban_store_totals(BanStore *s, BanTotals *ret) {
        *ret = s->totals;
}

static void totals_created(BanStore *s, const Ban *b) {
        if (b->origin == BAN_ORIGIN_AUTO) {
                if (b->policy < _PS_BAN_POLICY_MAX)
                        s->totals.created_auto[b->policy]++;
        } else if (b->origin < _BAN_ORIGIN_MAX)
                s->totals.created[b->origin]++;
}

void ban_store_count_origins(BanStore *s, size_t ret[_BAN_ORIGIN_MAX]) {
        memset(ret, 0, _BAN_ORIGIN_MAX * sizeof(size_t));
        for (size_t i = 0; i < ban_store_count(s); i++) {
                const Ban *b = ban_store_at(s, i);

                if (b && b->origin < _BAN_ORIGIN_MAX)
                        ret[b->origin]++;
        }
}

/* ------------------------------------------------------------------------------------------ */
/* Time */

/* The kernel's expiry (CLOCK_MONOTONIC ns) of a CLOCK_REALTIME µs time; 0 stays 0, and a time
 * already over gives 1 (long past). */
static uint64_t expiry_to_mono_ns(uint64_t expires_usec) {
        uint64_t now_rt, now_mono;

        if (expires_usec == 0)
                return 0;
        now_rt = now_usec(CLOCK_REALTIME);
        now_mono = now_nsec(CLOCK_MONOTONIC);
        if (expires_usec <= now_rt)
                return 1;
        return now_mono + (expires_usec - now_rt) * NSEC_PER_USEC;
}

/* The kernel's entry of a ban; with keep, its counters are kept from the entry it replaces (a
 * new ban has none to keep: one syscall instead of two). */
/* The kernel's entry for b; its counters as in *v. */
static void ban_to_kernel(const Ban *b, struct ps_ban *v) {
        uint64_t now_rt = now_usec(CLOCK_REALTIME), now_mono = now_nsec(CLOCK_MONOTONIC);

        v->expires = expiry_to_mono_ns(b->expires_usec);
        v->created = b->created_usec < now_rt
                     ? now_mono - MIN((now_rt - b->created_usec) * NSEC_PER_USEC, now_mono)
                     : now_mono;
        v->id = b->id;
        v->offenses = b->offenses;
        v->origin = b->origin;
        v->policy = b->policy;
        v->prefixlen = b->cidr.prefixlen;
        v->family = b->cidr.family;
}

static int kernel_put_full(BanStore *s, const Ban *b, bool keep) {
        struct ps_ban v = {};

        if (keep)
                (void) ban_maps_lookup(&s->maps, b->cidr.family, b->cidr.addr, b->cidr.prefixlen,
                                       &v);
        ban_to_kernel(b, &v);
        return ban_maps_insert(&s->maps, b->cidr.family, b->cidr.addr, b->cidr.prefixlen, &v,
                               BPF_ANY);
}

/* New exact bans of one family, put in the kernel BPF_MAP_BATCH at a time: one system call
 * per batch rather than one per ban. */
typedef struct KernelBatch {
        uint8_t *keys;
        struct ps_ban *values;
        size_t *which; /* the position of each entry in the caller's list */
        uint32_t n;
        uint8_t family;
} KernelBatch;

static void kbatch_done(KernelBatch *kb) {
        free(kb->keys);
        free(kb->values);
        free(kb->which);
}

static int kbatch_flush(BanStore *s, KernelBatch *kb, size_t *ret_failed) {
        LIBBPF_OPTS(bpf_map_batch_opts, opts, .elem_flags = BPF_ANY);
        uint32_t count = kb->n;
        int fd = kb->family == ADDR_FAMILY_IPV4 ? s->maps.v4_fd : s->maps.v6_fd;
        int r = 0;

        if (kb->n == 0)
                return 0;
        r = ban_maps_presence_raise_exact(&s->maps, kb->family == ADDR_FAMILY_IPV4 ?
                                                            PS_FAMILY_IPV4 : PS_FAMILY_IPV6);
        if (r < 0) {
                *ret_failed = kb->which[0];
                kb->n = 0;
                return r;
        }
        if (bpf_map_update_batch(fd, kb->keys, kb->values, &count, &opts) < 0) {
                r = -errno;
                *ret_failed = kb->which[MIN(count, kb->n - 1)];
        }
        kb->n = 0;
        return r;
}

/* Adds b (exact) as entry `which`; flushes first when the family changes. */
static int kbatch_add(BanStore *s, KernelBatch *kb, const Ban *b, size_t which,
                      size_t *ret_failed) {
        size_t ksize = b->cidr.family == ADDR_FAMILY_IPV4 ? sizeof(uint32_t)
                                                          : sizeof(struct ps_ban6_key);
        int r;

        if (!kb->keys) {
                kb->keys = calloc(BPF_MAP_BATCH, sizeof(struct ps_ban6_key));
                kb->values = calloc(BPF_MAP_BATCH, sizeof(struct ps_ban));
                kb->which = calloc(BPF_MAP_BATCH, sizeof(size_t));
                if (!kb->keys || !kb->values || !kb->which)
                        return -ENOMEM;
        }
        if (kb->n > 0 && kb->family != b->cidr.family) {
                r = kbatch_flush(s, kb, ret_failed);
                if (r < 0)
                        return r;
        }
        kb->family = b->cidr.family;
        memcpy(kb->keys + kb->n * ksize, b->cidr.addr, ksize);
        kb->values[kb->n] = (struct ps_ban) {};
        ban_to_kernel(b, &kb->values[kb->n]);
        kb->which[kb->n++] = which;
        return 0;
}

static int kernel_put(BanStore *s, const Ban *b) {
        return kernel_put_full(s, b, true);
}

static int kernel_del(BanStore *s, const Cidr *c) {
        return ban_maps_delete(&s->maps, c->family, c->addr, c->prefixlen);
}

typedef int (*kernel_visit_t)(const Cidr *c, const struct ps_ban *v, void *userdata);

struct walk_ctx {
        uint8_t family, prefixlen; /* prefixlen 0: from the key (a trie) */
        kernel_visit_t visit;
        void *userdata;
        BanStore *store;
        uint32_t slots[BPF_MAP_BATCH];
};

/* A batch of an exact table. The visitor looks each entry up in the table: the index slots
 * of the whole batch, then the bans they point to, are fetched first, so that the lookups
 * wait for memory once per batch instead of once per entry. */
static int walk_exact(const void *keys, const void *values, size_t n, void *userdata) {
        struct walk_ctx *w = userdata;
        size_t ksize = w->family == ADDR_FAMILY_IPV4 ? 4 : 16;
        BanStore *s = w->store;
        int r;

        if (s->index_size > 0) {
                size_t mask = s->index_size - 1;

                for (size_t i = 0; i < n; i++) {
                        Cidr c = { .family = w->family, .prefixlen = w->prefixlen };

                        memcpy(c.addr, (const uint8_t *) keys + i * ksize, ksize);
                        w->slots[i] = (uint32_t) (cidr_hash(&c) & mask);
                        __builtin_prefetch(&s->index[w->slots[i]]);
                }
                for (size_t i = 0; i < n; i++) {
                        uint32_t v = s->index[w->slots[i]];

                        if (v > 0)
                                __builtin_prefetch(&s->bans[v - 1]);
                }
        }
        for (size_t i = 0; i < n; i++) {
                Cidr c = { .family = w->family, .prefixlen = w->prefixlen };

                memcpy(c.addr, (const uint8_t *) keys + i * ksize, ksize);
                r = w->visit(&c, (const struct ps_ban *) values + i, w->userdata);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* The tries have no batch lookup: key by key. */
static int walk_trie(int fd, uint8_t family, kernel_visit_t visit, void *userdata) {
        struct ps_lpm6_key key6, next6;
        struct ps_lpm4_key key4, next4;
        void *key = family == ADDR_FAMILY_IPV4 ? (void *) &key4 : (void *) &key6;
        void *next = family == ADDR_FAMILY_IPV4 ? (void *) &next4 : (void *) &next6;
        size_t ksize = family == ADDR_FAMILY_IPV4 ? sizeof key4 : sizeof key6;
        bool first = true;
        int r;

        for (;;) {
                struct ps_ban v;
                Cidr c = { .family = family };

                if (bpf_map_get_next_key(fd, first ? NULL : key, next) < 0)
                        return errno == ENOENT ? 0 : -errno;
                first = false;
                memcpy(key, next, ksize);
                if (bpf_map_lookup_elem(fd, key, &v) < 0)
                        continue; /* gone meanwhile */
                if (family == ADDR_FAMILY_IPV4) {
                        c.prefixlen = (uint8_t) key4.prefixlen;
                        c.addr[0] = key4.addr;
                } else {
                        c.prefixlen = (uint8_t) key6.prefixlen;
                        memcpy(c.addr, key6.addr, sizeof c.addr);
                }
                r = visit(&c, &v, userdata);
                if (r < 0)
                        return r;
        }
}

static int kernel_walk(BanStore *s, kernel_visit_t visit, void *userdata) {
        _cleanup_free_ struct walk_ctx *w = malloc(sizeof *w);
        int r;

        if (!w)
                return -ENOMEM;
        *w = (struct walk_ctx) { ADDR_FAMILY_IPV4, 32, visit, userdata, s };
        r = bpf_map_walk_batches(s->maps.v4_fd, sizeof(uint32_t), sizeof(struct ps_ban),
                                 walk_exact, w, NULL);
        if (r >= 0) {
                *w = (struct walk_ctx) { ADDR_FAMILY_IPV6, 128, visit, userdata, s };
                r = bpf_map_walk_batches(s->maps.v6_fd, sizeof(struct ps_ban6_key),
                                         sizeof(struct ps_ban), walk_exact, w, NULL);
        }
        if (r >= 0)
                r = walk_trie(s->maps.cidr4_fd, ADDR_FAMILY_IPV4, visit, userdata);
        if (r >= 0)
                r = walk_trie(s->maps.cidr6_fd, ADDR_FAMILY_IPV6, visit, userdata);
        return r;
}

static int allow_clear_one(int fd, size_t ksize) {
        uint8_t key[sizeof(struct ps_lpm6_key)], next[sizeof(struct ps_lpm6_key)];

        /* Always the first key: each is deleted before the next is asked for. */
        while (bpf_map_get_next_key(fd, NULL, next) == 0) {
                memcpy(key, next, ksize);
                if (bpf_map_delete_elem(fd, key) < 0)
                        return -errno;
        }
        return errno == ENOENT ? 0 : -errno;
}

static int kernel_allow_clear(BanStore *s) {
        int r = allow_clear_one(s->maps.allow4_fd, sizeof(struct ps_lpm4_key));

        return r < 0 ? r : allow_clear_one(s->maps.allow6_fd, sizeof(struct ps_lpm6_key));
}

static int kernel_allow_put(BanStore *s, const Cidr *c) {
        return ban_maps_allow_add(&s->maps, c->family, c->addr, c->prefixlen, 0);
}

/* ------------------------------------------------------------------------------------------ */
/* The snapshot, the journal and the export (bans.json's format) */

typedef struct Buf {
        char *p;
        size_t n, alloc;
        bool oom;
} Buf;

static void buf_grow(Buf *b, size_t more) {
        if (b->oom || b->n + more + 1 <= b->alloc)
                return;
        size_t a = MAX(b->alloc * 2, b->n + more + 4096);
        char *n = realloc(b->p, a);

        if (!n) {
                b->oom = true;
                return;
        }
        b->p = n;
        b->alloc = a;
}

static void buf_add(Buf *b, const char *s, size_t len) {
        buf_grow(b, len);
        if (b->oom)
                return;
        memcpy(b->p + b->n, s, len);
        b->n += len;
        b->p[b->n] = '\0';
}

static void buf_printf(Buf *b, const char *fmt, ...) _printf_(2, 3);
static void buf_printf(Buf *b, const char *fmt, ...) {
        va_list ap;
        int k;

        buf_grow(b, 128);
        if (b->oom)
                return;
        va_start(ap, fmt);
        k = vsnprintf(b->p + b->n, b->alloc - b->n, fmt, ap);
        va_end(ap);
        if (k < 0) {
                b->oom = true;
                return;
        }
        if ((size_t) k >= b->alloc - b->n) {
                buf_grow(b, (size_t) k);
                if (b->oom)
                        return;
                va_start(ap, fmt);
                (void) vsnprintf(b->p + b->n, b->alloc - b->n, fmt, ap);
                va_end(ap);
        }
        b->n += (size_t) k;
}

/* A reason holds no control characters (ban_reason_valid()): only '"' and '\' need escaping. */
static void buf_add_json_string(Buf *b, const char *s) {
        buf_add(b, "\"", 1);
        for (const char *p = s; *p; p++) {
                if (*p == '"' || *p == '\\')
                        buf_add(b, "\\", 1);
                buf_add(b, p, 1);
        }
        buf_add(b, "\"", 1);
}

static void buf_add_str(Buf *b, const char *s) {
        buf_add(b, s, strlen(s));
}

static void buf_add_u64(Buf *b, uint64_t v) {
        char t[20];
        size_t k = sizeof t;

        do
                t[--k] = (char) ('0' + v % 10);
        while ((v /= 10) > 0);
        buf_add(b, t + k, sizeof t - k);
}

/* One ban as a line of an export (the format bans.json had), without separators. Put together
 * piece by piece: printf's formatting was most of the cost of a large batch. */
static void format_ban(Buf *b, const Ban *ban) {
        char a[CIDR_STRING_MAX], o[32];

        buf_add_str(b, "{\"address\": \"");
        buf_add_str(b, cidr_to_string(true, &ban->cidr, a));
        buf_add_str(b, "\", \"id\": ");
        buf_add_u64(b, ban->id);
        buf_add_str(b, ", \"origin\": \"");
        buf_add_str(b, ban_origin_to_string(ban, o, sizeof o));
        buf_add_str(b, "\", \"created\": ");
        buf_add_u64(b, ban->created_usec);
        buf_add_str(b, ", \"expires\": ");
        buf_add_u64(b, ban->expires_usec);
        buf_add_str(b, ", \"offenses\": ");
        buf_add_u64(b, ban->offenses);
        buf_add_str(b, ", \"reason\": ");
        buf_add_json_string(b, ban->reason ? ban->reason : "");
        buf_add(b, "}", 1);
}

/*
 * The document is written by hand rather than through jansson: a million bans as jansson
 * objects take several times the memory and time of the text itself. One ban per line, so
 * that a large file stays readable with grep.
 */
static int store_format(BanStore *s, Buf *b) {
        char a[CIDR_STRING_MAX];

        buf_add(b, "{\"version\": 1, \"allowlist\": [", 29);
        for (size_t i = 0; i < s->n_allow; i++)
                buf_printf(b, "%s\"%s\"", i ? ", " : "", cidr_to_string(true, &s->allow[i], a));
        buf_add(b, "],\n\"bans\": [", 12);
        for (size_t i = 0; i < s->n_bans; i++) {
                buf_add(b, i ? ",\n" : "\n", i ? 2 : 1);
                format_ban(b, &s->bans[i]);
        }
        buf_add(b, "\n]}\n", 4);
        return b->oom ? -ENOMEM : 0;
}

/*
 * The snapshot on disk, bans.snapshot: binary, in the host's byte order (it never leaves the
 * machine; Export() gives the portable JSON). A header, the allowlist, then per ban a
 * fixed-size head followed by the bytes of its reason. A start reads it front to back through
 * a small buffer, so that neither the file nor a parsed form of it is ever held whole: a
 * million bans are read in about the time it takes to put them in the index.
 */
#define BANS_SNAPSHOT_MAGIC "PSBANS\n"
#define BANS_SNAPSHOT_VERSION 1u
#define BANS_SNAPSHOT_MAX (16u * 1024 * 1024) /* bans; the tables hold far fewer */

struct snapshot_header {
        char magic[8]; /* BANS_SNAPSHOT_MAGIC with its NUL */
        uint32_t version;
        uint32_t ban_size; /* sizeof(struct snapshot_ban) */
        uint64_t n_bans;
        uint32_t n_allow;
        uint32_t next_id;
        uint64_t checksum; /* ban_fold() over the items after the header, in order */
        uint64_t reason_bytes; /* the reasons' lengths summed */
        uint64_t reserved[2];
};

struct snapshot_cidr {
        uint8_t family, prefixlen;
        uint16_t pad;
        uint32_t addr[4];
};

struct snapshot_ban {
        uint8_t family, prefixlen, origin, policy;
        uint32_t id;
        uint32_t addr[4];
        uint64_t created_usec, expires_usec;
        uint32_t offenses;
        uint16_t reason_len; /* the bytes that follow, without a NUL */
        uint16_t pad;
};

_Static_assert(sizeof(struct snapshot_header) == 64, "snapshot header layout");
_Static_assert(sizeof(struct snapshot_ban) == 48, "snapshot ban layout");

static void snapshot_add(Buf *b, uint64_t *h, const void *p, size_t n) {
        buf_add(b, p, n);
        *h = ban_fold(*h, p, n);
}

static int store_format_snapshot(BanStore *s, Buf *b) {
        struct snapshot_header hd = {
                .magic = BANS_SNAPSHOT_MAGIC,
                .version = BANS_SNAPSHOT_VERSION,
                .ban_size = sizeof(struct snapshot_ban),
                .n_bans = s->n_bans,
                .n_allow = (uint32_t) s->n_allow,
                .next_id = s->next_id,
        };
        uint64_t h = BAN_FOLD_SEED;

        /* Once, for the heads and a guess at the reasons: no doubling through 60 MB. */
        buf_grow(b, sizeof hd + s->n_allow * sizeof(struct snapshot_cidr) +
                    s->n_bans * (sizeof(struct snapshot_ban) + 16));
        buf_add(b, (const char *) &hd, sizeof hd);
        for (size_t i = 0; i < s->n_allow; i++) {
                struct snapshot_cidr c = { .family = s->allow[i].family,
                                           .prefixlen = s->allow[i].prefixlen };

                memcpy(c.addr, s->allow[i].addr, sizeof c.addr);
                snapshot_add(b, &h, &c, sizeof c);
        }
        for (size_t i = 0; i < s->n_bans; i++) {
                const Ban *ban = &s->bans[i];
                size_t len = ban->reason ? strlen(ban->reason) : 0;
                struct snapshot_ban r = {
                        .family = ban->cidr.family,
                        .prefixlen = ban->cidr.prefixlen,
                        .origin = ban->origin,
                        .policy = ban->policy,
                        .id = ban->id,
                        .created_usec = ban->created_usec,
                        .expires_usec = ban->expires_usec,
                        .offenses = ban->offenses,
                        .reason_len = (uint16_t) MIN(len, (size_t) BAN_REASON_MAX),
                };

                memcpy(r.addr, ban->cidr.addr, sizeof r.addr);
                snapshot_add(b, &h, &r, sizeof r);
                if (r.reason_len > 0)
                        snapshot_add(b, &h, ban->reason, r.reason_len);
                hd.reason_bytes += r.reason_len;
        }
        if (b->oom)
                return -ENOMEM;
        hd.checksum = h;
        memcpy(b->p, &hd, sizeof hd);
        return 0;
}

static char *state_path(BanStore *s, const char *file) {
        return strjoin_path(s->state_dir, file);
}

void ban_store_stop(BanStore *s) {
        uint64_t t0 = now_usec(CLOCK_MONOTONIC), bytes;
        int r;

        if (!s || !s->state_dir)
                return;
        bytes = s->journal.log_bytes;
        r = state_journal_flush(&s->journal, BANS_LOG_STOP_MIN);
        if (r < 0)
                log_warning_errno(r, "Cannot write the ban snapshot at the stop: %m; the journal "
                                  "(%llu bytes) is replayed at the next start",
                                  (unsigned long long) bytes);
        else if (r > 0) {
                s->log_rewrite = false;
                log_info("Wrote %zu ban(s) to %s/" BANS_FILE " at the stop in %llu ms, the "
                         "journal of %llu bytes folded in: the next start replays none",
                         s->n_bans, s->state_dir,
                         (unsigned long long) (now_usec(CLOCK_MONOTONIC) - t0) / 1000,
                         (unsigned long long) bytes);
        }
}

/* The whole table written as the snapshot; in the compacting child too. */
static int store_write_snapshot(void *userdata, uint64_t *ret_size) {
        BanStore *s = userdata;
        _cleanup_free_ char *path = state_path(s, BANS_FILE);
        Buf b = {};
        int r;

        if (!path)
                return -ENOMEM;
        r = store_format_snapshot(s, &b);
        if (r >= 0)
                r = write_file_atomic(path, b.p, b.n, 0600);
        if (r >= 0)
                *ret_size = b.n;
        free(b.p);
        return r;
}

/*
 * The whole table as the snapshot, at once; the journal it contains goes. For the rare changes
 * that need it (a snapshot removed under the daemon); the rest append to the journal.
 */
static int store_save(BanStore *s) {
        uint64_t size = 0;
        int r;

        /* A child writing an older snapshot must not rename it over this one. */
        state_journal_stop(&s->journal);
        r = store_write_snapshot(s, &size);
        if (r < 0)
                return r;
        s->journal.snapshot_bytes = size;
        r = state_journal_reset(&s->journal);
        if (r >= 0)
                s->log_rewrite = false;
        return r;
}

/* ------------------------------------------------------------------------------------------ */
/* bans.log: binary records (ban-record.h) after a header, each batch appended with one write
 * and fdatasync'd before it is acknowledged: a ban as it is now (made, extended or taken over),
 * an unban, an expiry, an allowlist entry added or removed. bans.log of the versions before
 * held one text record a line ("+{ban}", "-ADDRESS", "AADDRESS", "RADDRESS"): it is read once
 * and replaced by a snapshot.
 * Replaying it over the snapshot gives the table; a record replayed twice changes nothing.
 * Compacted by state_journal_compact_maybe() (see state-journal.h). */

static int log_append(BanStore *s, const Buf *b) {
        int r;

        if (b->oom)
                return -ENOMEM;
        if (b->n == 0)
                return 0;
        /* The journal read at the start is not one to append to and could not be replaced
         * then: the table goes whole into a snapshot, which replaces it. */
        if (s->log_rewrite)
                return store_save(s);
        r = state_journal_append(&s->journal, b->p, b->n);
        if (r == -ENOENT)
                return store_save(s);
        if (r >= 0)
                state_journal_compact_maybe(&s->journal);
        return r;
}

static void log_add(Buf *b, BanRecordType type, const Ban *ban, const Cidr *c) {
        buf_grow(b, ban_record_size(BAN_REASON_MAX));
        if (b->oom)
                return;
        b->n += ban_record_encode(b->p + b->n, type, ban, c);
}

static void log_add_ban(Buf *b, const Ban *ban) {
        log_add(b, BAN_RECORD_BAN, ban, NULL);
}

static void log_add_cidr(Buf *b, BanRecordType type, const Cidr *c) {
        log_add(b, type, NULL, c);
}

static int log_append_cidr(BanStore *s, BanRecordType type, const Cidr *c) {
        Buf rec = {};
        int r;

        log_add_cidr(&rec, type, c);
        r = log_append(s, &rec);
        free(rec.p);
        return r;
}

static int log_append_ban(BanStore *s, const Ban *b) {
        Buf rec = {};
        int r;

        log_add_ban(&rec, b);
        r = log_append(s, &rec);
        free(rec.p);
        return r;
}

json_t *ban_store_export(BanStore *s) {
        Buf b = {};
        json_t *j;

        if (store_format(s, &b) < 0) {
                free(b.p);
                return NULL;
        }
        j = json_loadb(b.p, b.n, 0, NULL);
        free(b.p);
        return j;
}

bool ban_reason_valid(const char *r);
bool ban_reason_valid(const char *r) {
        if (strlen(r) > BAN_REASON_MAX || !string_is_valid_utf8(r, BAN_REASON_MAX))
                return false;
        for (const unsigned char *p = (const unsigned char *) r; *p; p++)
                if (*p < 0x20 || *p == 0x7f)
                        return false;
        return true;
}

/* One entry of an import document (or bans.json). */
static int parse_ban(json_t *o, size_t idx, BanRequest *ret, char **ret_error) {
        const char *addr = NULL, *origin = "import", *reason = "";
        json_int_t expires = 0, offenses = 0, seconds = 0;
        json_t *v;
        int r;

        if (!json_is_object(o))
                return error_setf(ret_error, -EINVAL, "ban #%zu is not an object", idx);
        v = json_object_get(o, "address");
        addr = json_string_value(v);
        if (!addr)
                return error_setf(ret_error, -EINVAL, "ban #%zu has no \"address\" string", idx);
        *ret = (BanRequest) { .origin = BAN_ORIGIN_IMPORT };
        r = cidr_parse(addr, true, &ret->cidr);
        if (r < 0)
                return error_setf(ret_error, -EINVAL,
                                  "ban #%zu: '%.64s' is not an address or CIDR with its host bits "
                                  "zero (e.g. 192.0.2.1, 198.51.100.0/24, 2001:db8::/48)", idx,
                                  addr);
        if ((v = json_object_get(o, "origin"))) {
                origin = json_string_value(v);
                if (!origin || ban_origin_from_string(origin, &ret->origin, &ret->policy) < 0)
                        return error_setf(ret_error, -EINVAL,
                                          "ban #%zu: invalid origin; accepted: manual, import, ai, "
                                          "auto:connections, auto:syn-rate, auto:port-scan, "
                                          "auto:url", idx);
        }
        if ((v = json_object_get(o, "reason"))) {
                reason = json_string_value(v);
                if (!reason || !ban_reason_valid(reason))
                        return error_setf(ret_error, -EINVAL,
                                          "ban #%zu: the reason must be a string of at most %u "
                                          "bytes of UTF-8 without control characters", idx,
                                          BAN_REASON_MAX);
        }
        if ((v = json_object_get(o, "expires"))) {
                if (!json_is_integer(v) || (expires = json_integer_value(v)) < 0)
                        return error_setf(ret_error, -EINVAL,
                                          "ban #%zu: \"expires\" must be a CLOCK_REALTIME time in "
                                          "µs, 0 for never", idx);
        }
        if ((v = json_object_get(o, "seconds"))) {
                if (!json_is_integer(v) || (seconds = json_integer_value(v)) < 0 ||
                    (uint64_t) seconds > BAN_SECONDS_MAX)
                        return error_setf(ret_error, -EINVAL,
                                          "ban #%zu: \"seconds\" must be 0 (until unbanned) to "
                                          "%llu", idx, (unsigned long long) BAN_SECONDS_MAX);
        }
        if ((v = json_object_get(o, "offenses"))) {
                if (!json_is_integer(v) || (offenses = json_integer_value(v)) < 0 ||
                    offenses > UINT32_MAX)
                        return error_setf(ret_error, -EINVAL,
                                          "ban #%zu: \"offenses\" must be a count", idx);
        }
        ret->reason = reason;
        ret->expires_usec = (uint64_t) expires;
        ret->seconds = (uint64_t) seconds;
        ret->offenses = (uint32_t) offenses;
        return 0;
}

int ban_parse_import(const char *text, BanRequest **ret, size_t *ret_n, json_t **ret_doc,
                     char **ret_error) {
        _cleanup_free_ BanRequest *reqs = NULL;
        json_t *doc, *bans;
        json_error_t e;
        size_t n;
        int r;

        if (strlen(text) > BANS_FILE_MAX_BYTES)
                return error_setf(ret_error, -EMSGSIZE, "the document is larger than %u bytes",
                                  BANS_FILE_MAX_BYTES);
        doc = json_loads(text, 0, &e);
        if (!doc)
                return error_setf(ret_error, -EINVAL, "not JSON: %s (line %d)", e.text, e.line);
        bans = json_is_array(doc) ? doc : json_object_get(doc, "bans");
        if (!json_is_array(bans)) {
                json_decref(doc);
                return error_setf(ret_error, -EINVAL,
                                  "expected an array of bans or {\"bans\": [...]}");
        }
        n = json_array_size(bans);
        if (n > BAN_IMPORT_MAX) {
                json_decref(doc);
                return error_setf(ret_error, -E2BIG, "%zu bans; at most %u in one document", n,
                                  BAN_IMPORT_MAX);
        }
        reqs = calloc(n + 1, sizeof(BanRequest));
        if (!reqs) {
                json_decref(doc);
                return -ENOMEM;
        }
        for (size_t i = 0; i < n; i++) {
                r = parse_ban(json_array_get(bans, i), i, &reqs[i], ret_error);
                if (r < 0) {
                        json_decref(doc);
                        return r;
                }
        }
        *ret = TAKE_PTR(reqs);
        *ret_n = n;
        *ret_doc = doc;
        return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Ban lines (BanFile) */

static bool line_space(char c) {
        return c == ' ' || c == '\t' || c == '\r';
}

/* The next word of a line at *p (spaces before it skipped), NUL-terminated in place; NULL at
 * the line's end. */
static char *line_word(char **p, char *end) {
        char *w = *p, *e;

        while (w < end && line_space(*w))
                w++;
        if (w == end)
                return NULL;
        for (e = w; e < end && !line_space(*e); e++)
                ;
        *e = '\0';
        *p = e < end ? e + 1 : end;
        return w;
}

static int line_request(BanStore *s, char *line, char *end, size_t lineno, BanOrigin origin,
                        BanRequest *ret, bool *ret_empty, char **ret_error) {
        char a[CIDR_STRING_MAX], w[CIDR_STRING_MAX];
        char *p = line, *address, *span, *reason;
        const Cidr *allowed;
        uint64_t usec;
        int r;

        while (p < end && line_space(*p))
                p++;
        if (p == end || *p == '#') {
                *ret_empty = true;
                return 0;
        }
        *ret_empty = false;
        *ret = (BanRequest) { .origin = origin };
        address = line_word(&p, end);
        r = cidr_parse(address, true, &ret->cidr);
        if (r == -ERANGE)
                return error_setf(ret_error, -EADDRNOTAVAIL,
                                  "line %zu: '%.64s' has a prefix length too long; accepted: "
                                  "0-32 for IPv4, 0-128 for IPv6", lineno, address);
        if (r == -EADDRNOTAVAIL)
                return error_setf(ret_error, -EADDRNOTAVAIL,
                                  "line %zu: '%.64s' has bits set past its prefix; write the "
                                  "network address (e.g. 198.51.100.0/24)", lineno, address);
        if (r < 0)
                return error_setf(ret_error, -EADDRNOTAVAIL,
                                  "line %zu: '%.64s' is not an address or CIDR; accepted: "
                                  "ADDRESS[/PREFIX] [DURATION [REASON]], e.g. '192.0.2.1', "
                                  "'198.51.100.0/24 12h', '2001:db8::/48 0 scanner'", lineno,
                                  address);
        span = line_word(&p, end);
        if (span) {
                r = parse_time_span(span, &usec);
                if (r < 0 || usec / USEC_PER_SEC > BAN_SECONDS_MAX)
                        return error_setf(ret_error, -EINVAL,
                                          "line %zu: '%.32s' is not a ban duration; accepted: one "
                                          "word, a time span of at most ten years (3600, 90s, "
                                          "30min, 12h, 7d) or 0 for until unbanned", lineno,
                                          span);
                /* A span under a second would be "until unbanned": round it up. */
                ret->seconds = usec / USEC_PER_SEC + (usec % USEC_PER_SEC != 0);
                if (ret->seconds > BAN_SECONDS_MAX)
                        ret->seconds = BAN_SECONDS_MAX;
        }
        /* The rest of the line, without the spaces around it. */
        while (p < end && line_space(*p))
                p++;
        while (end > p && line_space(end[-1]))
                end--;
        *end = '\0';
        reason = p;
        if (*reason && !ban_reason_valid(reason))
                return error_setf(ret_error, -EINVAL,
                                  "line %zu: the reason must be at most %u bytes of UTF-8 "
                                  "without control characters", lineno, BAN_REASON_MAX);
        ret->reason = *reason ? reason : NULL;
        allowed = ban_store_allowlisted(s, &ret->cidr);
        if (allowed)
                return error_setf(ret_error, -EPERM,
                                  "line %zu: %s is not banned: it overlaps %s, which is on the "
                                  "allowlist (remove it from the allowlist first, or ban a range "
                                  "without it); nothing was banned", lineno,
                                  cidr_to_string(true, &ret->cidr, a),
                                  cidr_to_string(true, allowed, w));
        return 0;
}

int ban_store_parse_lines(BanStore *s, char *text, size_t size, BanOrigin origin,
                          BanRequest **ret, size_t *ret_n, char **ret_error) {
        _cleanup_free_ BanRequest *reqs = NULL;
        size_t n = 0, alloc = 0, lineno = 0;
        char *line, *next;
        int r;

        assert(s);
        assert(text);
        assert(ret);
        assert(ret_n);
        if (size > PS_BANS_FILE_MAX_BYTES)
                return error_setf(ret_error, -EMSGSIZE,
                                  "the file has %zu bytes; at most %u are read", size,
                                  PS_BANS_FILE_MAX_BYTES);
        for (line = text; line < text + size; line = next) {
                char *end = memchr(line, '\n', (size_t) (text + size - line));
                BanRequest req;
                bool empty;

                if (!end)
                        end = text + size;
                next = end + 1;
                lineno++;
                if (memchr(line, '\0', (size_t) (end - line)))
                        return error_setf(ret_error, -EINVAL,
                                          "line %zu holds a NUL byte; accepted: text, one ban a "
                                          "line", lineno);
                r = line_request(s, line, end, lineno, origin, &req, &empty, ret_error);
                if (r < 0)
                        return r;
                if (empty)
                        continue;
                if (n == alloc) {
                        BanRequest *nr;

                        if (n >= PS_BANS_BATCH_MAX)
                                return error_setf(ret_error, -E2BIG,
                                                  "line %zu: more than %u bans in one file",
                                                  lineno, PS_BANS_BATCH_MAX);
                        alloc = MIN(MAX(alloc * 2, (size_t) 256), (size_t) PS_BANS_BATCH_MAX);
                        nr = realloc(reqs, alloc * sizeof(BanRequest));
                        if (!nr)
                                return -ENOMEM;
                        reqs = nr;
                }
                reqs[n++] = req;
        }
        *ret = TAKE_PTR(reqs);
        *ret_n = n;
        return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Changes */

/* Checks a request and fills in the ban it makes (the reason not yet copied). */
static int request_check(BanStore *s, const BanRequest *req, uint64_t now, Ban *ret,
                         char **ret_error) {
        char a[CIDR_STRING_MAX], w[CIDR_STRING_MAX];
        const Cidr *allowed;

        if (req->seconds > BAN_SECONDS_MAX)
                return error_setf(ret_error, -EINVAL,
                                  "%llu seconds is too long; accepted: 0 (until unbanned) to "
                                  "%llu (ten years)", (unsigned long long) req->seconds,
                                  (unsigned long long) BAN_SECONDS_MAX);
        if (req->reason && !ban_reason_valid(req->reason))
                return error_setf(ret_error, -EINVAL,
                                  "the reason must be at most %u bytes of UTF-8 without control "
                                  "characters", BAN_REASON_MAX);
        allowed = ban_store_allowlisted(s, &req->cidr);
        if (allowed)
                return error_setf(ret_error, -EPERM,
                                  "%s is not banned: it overlaps %s, which is on the allowlist "
                                  "(remove it from the allowlist first, or ban a range without "
                                  "it)",
                                  cidr_to_string(true, &req->cidr, a), cidr_to_string(true, allowed, w));
        *ret = (Ban) {
                .cidr = req->cidr,
                .created_usec = now,
                .expires_usec = req->seconds ? now + req->seconds * USEC_PER_SEC
                                             : req->expires_usec,
                .origin = (uint8_t) req->origin,
                .policy = req->policy,
                .offenses = req->offenses ? req->offenses : 1,
        };
        return 0;
}

static int capacity_error(BanStore *s, const Cidr *c, char **ret_error) {
        char a[CIDR_STRING_MAX];
        uint32_t cap = !cidr_is_exact(c) ? PS_BANS_CIDR_MAX :
                       c->family == ADDR_FAMILY_IPV4 ? s->maps.max_v4 : s->maps.max_v6;

        s->n_refused_full++;
        return error_setf(ret_error, -ENOSPC,
                          "%s is not banned: the %s ban table is full (%u entries); raise %s= "
                          "in [Bans] of packetscope.conf, or unban or let bans expire",
                          cidr_to_string(true, c, a),
                          !cidr_is_exact(c) ? "CIDR" : c->family == ADDR_FAMILY_IPV4 ? "IPv4" : "IPv6",
                          cap,
                          !cidr_is_exact(c) ? "MaxCidrBans" :
                          c->family == ADDR_FAMILY_IPV4 ? "MaxBansIPv4" : "MaxBansIPv6");
}

static size_t store_count_kind(BanStore *s, const Cidr *c) {
        if (cidr_is_exact(c))
                return s->prefix_count[fam_idx(c->family)][c->prefixlen];
        return s->n_bans - s->prefix_count[0][32] - s->prefix_count[1][128];
}

static uint32_t store_capacity_kind(BanStore *s, const Cidr *c) {
        return !cidr_is_exact(c) ? PS_BANS_CIDR_MAX :
               c->family == ADDR_FAMILY_IPV4 ? s->maps.max_v4 : s->maps.max_v6;
}

static void warn_if_filling(BanStore *s, const Cidr *c, size_t before) {
        uint32_t cap = store_capacity_kind(s, c);
        size_t now = store_count_kind(s, c), mark = (size_t) cap * 4 / 5;

        if (before < mark && now >= mark)
                log_struct_internal(LOG_WARNING, 0, PS_MESSAGE_BANS_FILLING, NULL,
                                    "The %s ban table is 80%% full (%zu of %u entries); at %u new "
                                    "bans are refused",
                                    !cidr_is_exact(c) ? "CIDR" :
                                    c->family == ADDR_FAMILY_IPV4 ? "IPv4" : "IPv6",
                                    now, cap, cap);
}

static int store_update_cidr_count(BanStore *s) {
        uint32_t n = (uint32_t) (s->n_bans - s->prefix_count[0][32] - s->prefix_count[1][128]);

        (void) n;
        return ban_maps_update_presence(&s->maps);
}

static void schedule_reap(BanStore *s);
static void expiry_note(BanStore *s, uint64_t expires_usec);
static void expiry_recompute(BanStore *s);

/*
 * Applies n requests as one change: the kernel first (so enforcement starts before the reply),
 * then the file; on any failure everything is put back as it was. For a ban that exists, the
 * new one replaces it when it lasts longer (re-banning extends; a shorter request does not cut
 * a longer ban short) and its offense count grows.
 */
static int on_trim(sd_event_source *src, void *userdata) {
        (void) malloc_trim(0);
        return 0;
}

/* A large batch went through megabytes of request, message and record that malloc would
 * otherwise keep. Most of it (the bus message, the parsed requests) is freed only after the
 * call is answered: the trim runs then, from the loop, once. */
static void store_trim_soon(BanStore *s) {
        int r;

        if (!s->event) {
                (void) malloc_trim(0);
                return;
        }
        if (!s->trim_source) {
                r = sd_event_add_defer(s->event, &s->trim_source, on_trim, s);
                if (r < 0) {
                        (void) malloc_trim(0);
                        return;
                }
                (void) sd_event_source_set_description(s->trim_source, "bans-trim");
        }
        (void) sd_event_source_set_enabled(s->trim_source, SD_EVENT_ONESHOT);
}

static int store_apply(BanStore *s, const BanRequest *reqs, size_t n, const Ban **ret,
                       char **ret_error) {
        _cleanup_free_ Ban *old = NULL;    /* the previous ban of each request, if any */
        _cleanup_free_ uint8_t *had = NULL;
        _cleanup_free_ Ban *made = NULL;
        _cleanup_(kbatch_done) KernelBatch kb = {};
        size_t failed = 0;
        uint64_t now = now_usec(CLOCK_REALTIME), t_start = now_usec(CLOCK_MONOTONIC), t_kernel;
        size_t done = 0, before4 = s->prefix_count[0][32], before6 = s->prefix_count[1][128];
        size_t before_cidr = s->n_bans - before4 - before6;
        int r;

        old = calloc(n + 1, sizeof(Ban));
        had = calloc(n + 1, 1);
        made = calloc(n + 1, sizeof(Ban));
        if (!old || !had || !made)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                r = request_check(s, &reqs[i], now, &made[i], ret_error);
                if (r < 0)
                        return n > 1 ? error_setf(ret_error, r, "ban #%zu of the batch: %s", i,
                                                  ret_error && *ret_error ? *ret_error : "")
                                     : r;
        }
        r = store_reserve(s, n);
        if (r < 0)
                return r;

        for (done = 0; done < n; done++) {
                Ban *cur, *b;

                /* The index slot a ban a few ahead will look up, fetched now: a batch of
                 * random addresses otherwise waits for memory at every one. The index is not
                 * rebuilt within the loop (reserved above). */
                if (done + INDEX_AHEAD < n)
                        __builtin_prefetch(&s->index[cidr_hash(&made[done + INDEX_AHEAD].cidr) &
                                                     (s->index_size - 1)]);
                cur = store_find(s, &made[done].cidr);

                /* A ban of this change that is not new, or a prefix, goes in by itself: what
                 * the batch holds goes in first, so that it finds the kernel as it would have
                 * one by one. */
                if ((cur || !cidr_is_exact(&made[done].cidr)) && kb.n > 0) {
                        r = kbatch_flush(s, &kb, &failed);
                        if (r < 0)
                                goto undo_batch;
                }
                if (cur) {
                        had[done] = 1;
                        old[done] = *cur;
                        old[done].reason = NULL; /* the Ban keeps its own until committed */
                        made[done].id = cur->id;
                        made[done].created_usec = cur->created_usec;
                        made[done].offenses = cur->offenses + 1;
                        if (cur->expires_usec == 0 ||
                            (made[done].expires_usec != 0 &&
                             made[done].expires_usec < cur->expires_usec))
                                made[done].expires_usec = cur->expires_usec;
                } else
                        made[done].id = s->next_id++;
                if (!cur && cidr_is_exact(&made[done].cidr))
                        r = kbatch_add(s, &kb, &made[done], done, &failed);
                else
                        r = kernel_put_full(s, &made[done], cur != NULL);
                if (r < 0 && failed != done) {
                        /* The family changed and the flush of the earlier ones failed. */
                        goto undo_batch;
                }
                if (r == -ENOSPC || r == -E2BIG) {
                        r = capacity_error(s, &made[done].cidr, ret_error);
                        goto undo;
                }
                if (r < 0) {
                        char a[CIDR_STRING_MAX];

                        (void) error_setf(ret_error, r, "cannot put %s in the kernel map: %s",
                                          cidr_to_string(true, &made[done].cidr, a), strerror(-r));
                        goto undo;
                }
                if (cur) {
                        cur->unseen = false; /* the kernel has it now */
                        cur->expires_usec = made[done].expires_usec;
                        cur->offenses = made[done].offenses;
                        cur->origin = made[done].origin;
                        cur->policy = made[done].policy;
                        b = cur;
                } else
                        b = store_insert(s, &made[done]);
                if (reqs[done].reason && *reqs[done].reason) {
                        /* A new reason replaces the old one; none keeps it. */
                        if (cur) {
                                had[done] = 2;
                                old[done].reason = cur->reason;
                                cur->reason = NULL;
                        }
                        b->reason = strdup(reqs[done].reason);
                        if (!b->reason) {
                                r = -ENOMEM;
                                done++;
                                goto undo;
                        }
                }
                if (kb.n == BPF_MAP_BATCH) {
                        r = kbatch_flush(s, &kb, &failed);
                        if (r < 0) {
                                done++;
                                goto undo_batch;
                        }
                }
        }
        r = kbatch_flush(s, &kb, &failed);
        if (r < 0)
                goto undo_batch;
        t_kernel = now_usec(CLOCK_MONOTONIC);
        r = store_update_cidr_count(s);
        if (r >= 0) {
                Buf rec = {};

                /* One buffer for the batch, reasons of about 16 bytes foreseen. */
                buf_grow(&rec, n * ban_record_size(16));
                for (size_t i = 0; i < n; i++)
                        log_add_ban(&rec, store_find(s, &made[i].cidr));
                r = log_append(s, &rec);
                free(rec.p);
        }
        log_debug("%zu bans: checked and put in the kernel in %llu ms, written in %llu ms", n,
                  (unsigned long long) (t_kernel - t_start) / 1000,
                  (unsigned long long) (now_usec(CLOCK_MONOTONIC) - t_kernel) / 1000);
        if (r < 0) {
                (void) error_setf(ret_error, -EROFS,
                                  "the bans cannot be written to %s/" BANS_FILE ": %s; nothing "
                                  "was banned", s->state_dir, strerror(-r));
                r = -EROFS;
                goto undo;
        }
        for (size_t i = 0; i < n; i++) {
                reason_free(s, old[i].reason);
                expiry_note(s, made[i].expires_usec);
                if (!had[i])
                        totals_created(s, &made[i]);
        }
        {
                Cidr probe4 = { .family = ADDR_FAMILY_IPV4, .prefixlen = 32 };
                Cidr probe6 = { .family = ADDR_FAMILY_IPV6, .prefixlen = 128 };
                Cidr probec = { .family = ADDR_FAMILY_IPV4, .prefixlen = 8 };

                warn_if_filling(s, &probe4, before4);
                warn_if_filling(s, &probe6, before6);
                warn_if_filling(s, &probec, before_cidr);
        }
        schedule_reap(s);
        if (ret)
                *ret = store_find(s, &made[n - 1].cidr);
        if (n > BAN_TELL_EACH_MAX) {
                if (s->cb.batch)
                        s->cb.batch(s, n, 0, BAN_END_MANUAL, s->cb.userdata);
                store_trim_soon(s);
        } else if (s->cb.banned)
                for (size_t i = 0; i < n; i++) {
                        const Ban *b = store_find(s, &made[i].cidr);

                        if (b)
                                s->cb.banned(s, b, s->cb.userdata);
                }
        if (s->cb.changed)
                s->cb.changed(s, s->cb.userdata);
        return 0;

undo_batch:
        /* A batch of new bans did not go into the kernel; the first that did not names it. */
        if (r == -ENOSPC || r == -E2BIG)
                r = capacity_error(s, &made[failed].cidr, ret_error);
        else {
                char a[CIDR_STRING_MAX];

                (void) error_setf(ret_error, r, "cannot put %s in the kernel map: %s",
                                  cidr_to_string(true, &made[failed].cidr, a), strerror(-r));
        }
undo:
        /* Back to what was, latest first (a batch may name one address twice). */
        while (done > 0) {
                Ban *cur;

                done--;
                cur = store_find(s, &made[done].cidr);
                if (had[done]) {
                        if (cur) {
                                char *keep = had[done] == 2 ? NULL : TAKE_PTR(cur->reason);

                                reason_free(s, cur->reason);
                                *cur = old[done];
                                if (had[done] != 2)
                                        cur->reason = keep;
                                old[done].reason = NULL;
                                (void) kernel_put(s, cur);
                        }
                } else if (cur) {
                        (void) kernel_del(s, &cur->cidr);
                        store_remove(s, &cur->cidr);
                }
        }
        (void) store_update_cidr_count(s);
        return r;
}

int ban_store_ban(BanStore *s, const BanRequest *req, const Ban **ret, char **ret_error) {
        assert(s);
        assert(req);
        return store_apply(s, req, 1, ret, ret_error);
}

int ban_store_ban_batch(BanStore *s, const BanRequest *reqs, size_t n, char **ret_error) {
        assert(s);
        if (n == 0)
                return 0;
        return store_apply(s, reqs, n, NULL, ret_error);
}

/* Removes bans (all present: checked by the caller) and tells. */
static int store_remove_many(BanStore *s, const Cidr *cs, size_t n, BanEnd why,
                             char **ret_error) {
        _cleanup_free_ Ban *gone = NULL;
        size_t k = 0;
        int r;

        gone = calloc(n + 1, sizeof(Ban));
        if (!gone)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                Ban *b = store_find(s, &cs[i]);

                if (!b)
                        continue; /* named twice */
                r = kernel_del(s, &b->cidr);
                if (r < 0 && r != -ENOENT) {
                        char a[CIDR_STRING_MAX];

                        (void) error_setf(ret_error, r, "cannot remove %s from the kernel map: %s",
                                          cidr_to_string(true, &b->cidr, a), strerror(-r));
                        goto undo;
                }
                gone[k] = *b;
                b->reason = NULL; /* moved to gone[k] */
                store_remove(s, &b->cidr);
                k++;
        }
        (void) store_update_cidr_count(s);
        {
                Buf rec = {};

                /* One buffer for the batch: no doubling through megabytes. */
                buf_grow(&rec, k * ban_record_size(0));
                for (size_t i = 0; i < k; i++)
                        log_add_cidr(&rec, why == BAN_END_EXPIRED ? BAN_RECORD_EXPIRE
                                                                  : BAN_RECORD_UNBAN,
                                     &gone[i].cidr);
                r = log_append(s, &rec);
                free(rec.p);
        }
        if (r < 0) {
                (void) error_setf(ret_error, -EROFS,
                                  "the bans cannot be written to %s/" BANS_FILE ": %s; nothing "
                                  "was unbanned", s->state_dir, strerror(-r));
                r = -EROFS;
                goto undo;
        }
        for (size_t i = 0; i < k; i++) {
                if (s->cb.unbanned && k <= BAN_TELL_EACH_MAX)
                        s->cb.unbanned(s, &gone[i], why, s->cb.userdata);
                reason_free(s, gone[i].reason);
        }
        if (why == BAN_END_EXPIRED)
                s->totals.expired += k;
        else
                s->totals.unbanned += k;
        if (k > BAN_TELL_EACH_MAX && s->cb.batch)
                s->cb.batch(s, 0, k, why, s->cb.userdata);
        if (k > 0 && s->cb.changed)
                s->cb.changed(s, s->cb.userdata);
        return 0;

undo:
        (void) store_reserve(s, k);
        while (k > 0) {
                k--;
                (void) kernel_put(s, &gone[k]);
                (void) store_insert(s, &gone[k]);
        }
        (void) store_update_cidr_count(s);
        return r;
}

static int unban_check(BanStore *s, const Cidr *c, size_t idx, size_t n, char **ret_error) {
        char a[CIDR_STRING_MAX];
        const Ban *cover;

        if (store_find(s, c))
                return 0;
        cover = ban_store_covering(s, c->family, c->addr);
        if (cover && cover->cidr.prefixlen < c->prefixlen) {
                char w[CIDR_STRING_MAX];

                return error_setf(ret_error, -ENOENT,
                                  "%s%s is not banned by itself but by the range %s; unban that "
                                  "range (or ban the rest of it)", n > 1 ? "" : "",
                                  cidr_to_string(true, c, a), cidr_to_string(true, &cover->cidr, w));
        }
        if (n > 1)
                return error_setf(ret_error, -ENOENT, "address #%zu of the batch, %s, is not "
                                  "banned", idx, cidr_to_string(true, c, a));
        return error_setf(ret_error, -ENOENT, "%s is not banned", cidr_to_string(true, c, a));
}

int ban_store_unban(BanStore *s, const Cidr *c, char **ret_error) {
        int r = unban_check(s, c, 0, 1, ret_error);

        if (r < 0)
                return r;
        return store_remove_many(s, c, 1, BAN_END_MANUAL, ret_error);
}

int ban_store_unban_batch(BanStore *s, const Cidr *cs, size_t n, char **ret_error) {
        for (size_t i = 0; i < n; i++) {
                int r = unban_check(s, &cs[i], i, n, ret_error);

                if (r < 0)
                        return r;
        }
        return store_remove_many(s, cs, n, BAN_END_MANUAL, ret_error);
}

int ban_store_replace_all(BanStore *s, const BanRequest *reqs, size_t n, char **ret_error) {
        _cleanup_free_ Cidr *drop = NULL;
        size_t k = 0;
        int r;

        /* Checked first so that a bad document leaves the table as it is. */
        for (size_t i = 0; i < n; i++) {
                Ban tmp;

                r = request_check(s, &reqs[i], now_usec(CLOCK_REALTIME), &tmp, ret_error);
                if (r < 0)
                        return error_setf(ret_error, r, "ban #%zu: %s", i,
                                          ret_error && *ret_error ? *ret_error : "");
        }
        drop = calloc(s->n_bans + 1, sizeof(Cidr));
        if (!drop)
                return -ENOMEM;
        /* Bans the document does not list go; then the document's bans are applied. */
        for (size_t i = 0; i < s->n_bans; i++) {
                bool listed = false;

                for (size_t j = 0; j < n && !listed; j++)
                        listed = cidr_equal(&reqs[j].cidr, &s->bans[i].cidr);
                if (!listed)
                        drop[k++] = s->bans[i].cidr;
        }
        if (k > 0) {
                r = store_remove_many(s, drop, k, BAN_END_MANUAL, ret_error);
                if (r < 0)
                        return r;
        }
        return n > 0 ? store_apply(s, reqs, n, NULL, ret_error) : 0;
}

int ban_store_counters(BanStore *s, const Ban *b, BanCounters *ret) {
        struct ps_ban v;
        int r;

        *ret = (BanCounters) {};
        r = ban_maps_lookup(&s->maps, b->cidr.family, b->cidr.addr, b->cidr.prefixlen, &v);
        if (r < 0)
                return r;
        ret->packets = v.packets;
        ret->bytes = v.bytes;
        ret->last_hit_usec = v.last_hit ? mono_to_realtime_usec(v.last_hit) : 0;
        return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* The allowlist */

static int allowlist_sync(BanStore *s) {
        int r;

        r = kernel_allow_clear(s);
        if (r < 0)
                return r;
        for (size_t i = 0; i < s->n_allow; i++) {
                r = kernel_allow_put(s, &s->allow[i]);
                if (r < 0)
                        return r;
        }
        if (s->config) {
                for (uint32_t i = 0; i < s->config->n_management; i++) {
                        r = kernel_allow_put(s, &s->config->management[i]);
                        if (r < 0)
                                return r;
                }
                for (uint32_t i = 0; i < s->config->n_bans_allowlist; i++) {
                        r = kernel_allow_put(s, &s->config->bans_allowlist[i]);
                        if (r < 0)
                                return r;
                }
        }
        return ban_maps_update_presence(&s->maps);
}

int ban_store_allowlist_add(BanStore *s, const Cidr *c, char **ret_error) {
        char a[CIDR_STRING_MAX], w[CIDR_STRING_MAX];
        Cidr *n;
        int r;

        for (size_t i = 0; i < s->n_allow; i++)
                if (cidr_equal(&s->allow[i], c))
                        return 0;
        if (s->n_allow >= BAN_ALLOWLIST_MAX)
                return error_setf(ret_error, -ENOSPC, "the allowlist holds %u entries, its limit",
                                  BAN_ALLOWLIST_MAX);
        for (size_t i = 0; i < s->n_bans; i++)
                if (cidr_overlaps(&s->bans[i].cidr, c))
                        return error_setf(ret_error, -EEXIST,
                                          "%s overlaps the ban of %s; unban it first",
                                          cidr_to_string(true, c, a),
                                          cidr_to_string(true, &s->bans[i].cidr, w));
        n = realloc(s->allow, (s->n_allow + 1) * sizeof(Cidr));
        if (!n)
                return -ENOMEM;
        s->allow = n;
        s->allow[s->n_allow++] = *c;
        r = kernel_allow_put(s, c);
        if (r >= 0)
                r = ban_maps_update_presence(&s->maps);
        if (r >= 0)
                r = log_append_cidr(s, BAN_RECORD_ALLOW_ADD, c);
        if (r < 0) {
                s->n_allow--;
                (void) allowlist_sync(s);
                return error_setf(ret_error, -EROFS,
                                  "the allowlist cannot be written to %s/" BANS_FILE ": %s",
                                  s->state_dir, strerror(-r));
        }
        return 0;
}

int ban_store_allowlist_remove(BanStore *s, const Cidr *c, char **ret_error) {
        char a[CIDR_STRING_MAX];
        size_t i;
        Cidr saved;
        int r;

        for (i = 0; i < s->n_allow; i++)
                if (cidr_equal(&s->allow[i], c))
                        break;
        if (i == s->n_allow)
                return error_setf(ret_error, -ENOENT, "%s is not on the allowlist%s",
                                  cidr_to_string(true, c, a),
                                  ban_store_allowlisted(s, c)
                                  ? " (an entry of ManagementAddresses= or [Bans] Allowlist= in "
                                    "packetscope.conf covers it, which is always allowlisted)"
                                  : "");
        saved = s->allow[i];
        memmove(s->allow + i, s->allow + i + 1, (s->n_allow - i - 1) * sizeof(Cidr));
        s->n_allow--;
        r = allowlist_sync(s);
        if (r >= 0)
                r = log_append_cidr(s, BAN_RECORD_ALLOW_REMOVE, &saved);
        if (r < 0) {
                memmove(s->allow + i + 1, s->allow + i, (s->n_allow - i) * sizeof(Cidr));
                s->allow[i] = saved;
                s->n_allow++;
                (void) allowlist_sync(s);
                return error_setf(ret_error, -EROFS,
                                  "the allowlist cannot be written to %s/" BANS_FILE ": %s",
                                  s->state_dir, strerror(-r));
        }
        return 0;
}

size_t ban_store_allowlist(BanStore *s, const Cidr **ret) {
        *ret = s->allow;
        return s->n_allow;
}

/* ------------------------------------------------------------------------------------------ */
/* Expiry */

int ban_store_reap(BanStore *s) {
        _cleanup_free_ Cidr *gone = NULL;
        uint64_t now = now_usec(CLOCK_REALTIME);
        size_t k = 0;
        int r;

        for (size_t i = 0; i < s->n_bans; i++)
                if (s->bans[i].expires_usec && s->bans[i].expires_usec <= now)
                        k++;
        if (k == 0)
                return 0;
        gone = calloc(k, sizeof(Cidr));
        if (!gone)
                return -ENOMEM;
        k = 0;
        for (size_t i = 0; i < s->n_bans; i++)
                if (s->bans[i].expires_usec && s->bans[i].expires_usec <= now)
                        gone[k++] = s->bans[i].cidr;
        r = store_remove_many(s, gone, k, BAN_END_EXPIRED, NULL);
        return r < 0 ? r : (int) MIN(k, (size_t) INT32_MAX);
}

static int on_reap(sd_event_source *src, uint64_t usec, void *userdata) {
        BanStore *s = userdata;
        int r = ban_store_reap(s);

        if (r < 0)
                log_warning_errno(r, "Reaping expired bans failed: %m; the kernel stopped "
                                  "enforcing them already, trying again");
        expiry_recompute(s);
        schedule_reap(s);
        return 0;
}

/* The earliest expiry of the table, found by going through it: at the start and after a
 * reap. In between the bans made lower it; the ones that end leave it early, which costs one
 * early wake-up. */
static void expiry_recompute(BanStore *s) {
        uint64_t next = 0;

        for (size_t i = 0; i < s->n_bans; i++)
                if (s->bans[i].expires_usec && (next == 0 || s->bans[i].expires_usec < next))
                        next = s->bans[i].expires_usec;
        s->next_expiry = next;
}

static void expiry_note(BanStore *s, uint64_t expires_usec) {
        if (expires_usec && (s->next_expiry == 0 || expires_usec < s->next_expiry))
                s->next_expiry = expires_usec;
}

/* The timer goes off at the next expiry (at most once a second, at least every minute while
 * something expires: the realtime clock may be stepped). Constant time: a Ban() with a million
 * bans held does not go through them. */
static void schedule_reap(BanStore *s) {
        uint64_t next = s->next_expiry, now = now_usec(CLOCK_REALTIME), delay;

        if (!s->event)
                return;
        if (next == 0) {
                if (s->reap_timer)
                        (void) sd_event_source_set_enabled(s->reap_timer, SD_EVENT_OFF);
                return;
        }
        delay = next > now ? next - now : 0;
        delay = MIN(MAX(delay, (uint64_t) 200 * 1000), 60 * USEC_PER_SEC);
        if (!s->reap_timer) {
                if (sd_event_add_time_relative(s->event, &s->reap_timer, CLOCK_MONOTONIC, delay,
                                               50 * 1000, on_reap, s) < 0)
                        return;
        } else
                (void) sd_event_source_set_time_relative(s->reap_timer, delay);
        (void) sd_event_source_set_enabled(s->reap_timer, SD_EVENT_ONESHOT);
}

/* ------------------------------------------------------------------------------------------ */
/* Start */

/* The bans read from the state directory that were not found in the kernel, of one kind
 * (exact or prefixes), go in: exact ones in batches of BPF_MAP_BATCH (one syscall each),
 * prefixes one by one. */
static int kernel_put_unseen(BanStore *s, bool exact, size_t *ret_put) {
        _cleanup_free_ struct ps_ban *values = NULL;
        _cleanup_free_ uint8_t *keys = NULL;
        size_t put = 0, n = s->n_bans;
        int r;

        if (!exact) {
                for (size_t i = 0; i < n; i++) {
                        Ban *b = &s->bans[i];

                        if (!b->unseen || cidr_is_exact(&b->cidr))
                                continue;
                        b->unseen = false;
                        r = kernel_put(s, b);
                        if (r < 0)
                                return r;
                        put++;
                }
                *ret_put += put;
                return 0;
        }
        values = calloc(BPF_MAP_BATCH, sizeof(struct ps_ban));
        keys = calloc(BPF_MAP_BATCH, sizeof(struct ps_ban6_key));
        if (!values || !keys)
                return -ENOMEM;
        for (uint8_t family = ADDR_FAMILY_IPV4; family <= ADDR_FAMILY_IPV6; family += 2) {
                size_t ksize = family == ADDR_FAMILY_IPV4 ? sizeof(uint32_t) : sizeof(struct ps_ban6_key);
                int fd = family == ADDR_FAMILY_IPV4 ? s->maps.v4_fd : s->maps.v6_fd;
                uint32_t k = 0;

                for (size_t i = 0; i <= n; i++) {
                        Ban *b = i < n ? &s->bans[i] : NULL;

                        if (b && b->unseen && b->cidr.family == family && cidr_is_exact(&b->cidr)) {
                                b->unseen = false;
                                memcpy(keys + k * ksize, b->cidr.addr, ksize);
                                values[k] = (struct ps_ban) {};
                                ban_to_kernel(b, &values[k]);
                                k++;
                        }
                        if (k > 0 && (k == BPF_MAP_BATCH || !b)) {
                                /* BPF_ANY: a batch update takes no other flag. A ban made or
                                 * changed since the start is no longer unseen. */
                                LIBBPF_OPTS(bpf_map_batch_opts, opts, .elem_flags = BPF_ANY);
                                uint32_t count = k;

                                /* the program looks at the exact table only once told it
                                 * may hold something: say so before the entries land */
                                r = ban_maps_presence_raise_exact(&s->maps,
                                                                  family == ADDR_FAMILY_IPV4 ?
                                                                  PS_FAMILY_IPV4 : PS_FAMILY_IPV6);
                                if (r < 0)
                                        return r;
                                r = bpf_map_update_batch(fd, keys, values, &count, &opts);
                                if (r < 0)
                                        return -errno;
                                put += k;
                                k = 0;
                        }
                }
        }
        *ret_put += put;
        return 0;
}

struct adopt_ctx {
        BanStore *s;
        size_t adopted;
        uint64_t now_mono; /* ns */
        Buf rec;           /* the journal records of the bans taken over */
};

/* A kernel entry: found in the table, or else taken over as the kernel has it. */
static int adopt_entry(const Cidr *c, const struct ps_ban *e, void *userdata) {
        struct adopt_ctx *a = userdata;
        uint64_t now_mono = a->now_mono;
        Ban b, *found;
        int r;

        found = store_find(a->s, c);
        if (found) {
                found->unseen = false;
                return 0;
        }
        if (e->expires && e->expires <= now_mono) {
                (void) kernel_del(a->s, c);
                return 0;
        }
        r = store_reserve(a->s, 1);
        if (r < 0)
                return r;
        b = (Ban) {
                .cidr = *c,
                .id = a->s->next_id++,
                .created_usec = now_usec(CLOCK_REALTIME),
                .expires_usec = e->expires ? mono_to_realtime_usec(e->expires) : 0,
                .offenses = MAX(e->offenses, 1u),
                .origin = e->origin >= BAN_ORIGIN_MANUAL && e->origin < _BAN_ORIGIN_MAX
                          ? e->origin : BAN_ORIGIN_MANUAL,
                .policy = e->policy,
        };
        log_add_ban(&a->rec, store_insert(a->s, &b));
        a->adopted++;
        return 0;
}

/* Records what a step of the reconciliation took over from the kernel, like any other
 * change (the expired ones are left to the next compaction, which does not write them). */
static void adopt_record(BanStore *s, struct adopt_ctx *a) {
        int r = log_append(s, &a->rec);

        if (r < 0)
                log_warning_errno(r, "Cannot write %s/" BANS_LOG ": %m", s->state_dir);
        a->rec.p = mfree(a->rec.p);
        a->rec.n = a->rec.alloc = 0;
        a->rec.oom = false;
}

/*
 * The exact tables (up to millions of entries) are reconciled after the start, in steps of
 * RECONCILE_STEP entries from the event loop at idle priority, so that the bus answers as soon
 * as the state directory is read: nothing is lifted meanwhile (the kernel enforces what it
 * holds), a ban the kernel holds alone is taken over when its step comes, and the bans only
 * the state directory had go in at the end.
 */
#define RECONCILE_STEP (16u * BPF_MAP_BATCH)

static void reconcile_finish(BanStore *s) {
        uint64_t cpu0 = now_usec(CLOCK_PROCESS_CPUTIME_ID);
        size_t put = 0;
        int r;

        r = kernel_put_unseen(s, true, &put);
        if (r < 0)
                log_warning_errno(r, "Cannot put the stored bans in the kernel: %m");
        s->reconcile_cpu_usec += now_usec(CLOCK_PROCESS_CPUTIME_ID) - cpu0;
        log_info("Reconciled %zu ban(s) with the kernel's exact tables in %llu ms (%llu ms of "
                 "CPU): %zu put in the kernel, the rest pinned already; %zu found only in the "
                 "kernel, taken over", s->n_bans,
                 (unsigned long long) ((now_usec(CLOCK_MONOTONIC) - s->reconcile_usec) / 1000),
                 (unsigned long long) (s->reconcile_cpu_usec / 1000), put, s->reconcile_adopted);
        s->reconcile_source = sd_event_source_disable_unref(s->reconcile_source);
        bpf_map_sweeper_done(&s->reconcile_walk);
        s->reconcile_ctx = mfree(s->reconcile_ctx);
        if (s->cb.changed)
                s->cb.changed(s, s->cb.userdata);
}

/* One step; true once both exact tables were walked. */
static bool reconcile_step(BanStore *s) {
        struct adopt_ctx a = { .s = s, .now_mono = now_nsec(CLOCK_MONOTONIC) };
        struct walk_ctx *w = s->reconcile_ctx;
        uint64_t cpu0 = now_usec(CLOCK_PROCESS_CPUTIME_ID);
        bool v4 = w->family == ADDR_FAMILY_IPV4, done = false;
        int r;

        w->visit = adopt_entry;
        w->userdata = &a;
        r = bpf_map_walk_step(&s->reconcile_walk, v4 ? s->maps.v4_fd : s->maps.v6_fd,
                              RECONCILE_STEP, walk_exact, w, &done);
        if (r < 0) {
                log_warning_errno(r, "Cannot read the pinned ban maps: %m");
                done = true;
        }
        adopt_record(s, &a);
        s->reconcile_adopted += a.adopted;
        s->reconcile_cpu_usec += now_usec(CLOCK_PROCESS_CPUTIME_ID) - cpu0;
        if (!done)
                return false;
        if (!v4)
                return true;
        bpf_map_sweeper_done(&s->reconcile_walk);
        if (bpf_map_sweeper_init(&s->reconcile_walk, sizeof(struct ps_ban6_key),
                                 sizeof(struct ps_ban)) < 0)
                return true;
        w->family = ADDR_FAMILY_IPV6;
        w->prefixlen = 128;
        return false;
}

static int on_reconcile(sd_event_source *src, void *userdata) {
        BanStore *s = userdata;

        if (reconcile_step(s))
                reconcile_finish(s);
        return 0;
}

static int reconcile_start(BanStore *s) {
        int r;

        s->reconcile_ctx = calloc(1, sizeof(struct walk_ctx));
        if (!s->reconcile_ctx)
                return -ENOMEM;
        *s->reconcile_ctx = (struct walk_ctx) { .family = ADDR_FAMILY_IPV4, .prefixlen = 32,
                                                .store = s };
        r = bpf_map_sweeper_init(&s->reconcile_walk, sizeof(uint32_t), sizeof(struct ps_ban));
        if (r < 0)
                return r;
        s->reconcile_usec = now_usec(CLOCK_MONOTONIC);
        if (!s->event) {
                while (!reconcile_step(s))
                        ;
                reconcile_finish(s);
                return 0;
        }
        r = sd_event_add_defer(s->event, &s->reconcile_source, on_reconcile, s);
        if (r >= 0)
                r = sd_event_source_set_priority(s->reconcile_source, SD_EVENT_PRIORITY_IDLE);
        if (r >= 0)
                r = sd_event_source_set_enabled(s->reconcile_source, SD_EVENT_ON);
        return r;
}

/* The value of "key": in a line of bans.json as store_format() writes it: a number (ret_u) or
 * a string (ret_s, unescaped into buf). 0 when found. */
static int line_field(const char *line, const char *key, uint64_t *ret_u, char *buf,
                      size_t size) {
        const char *p = strstr(line, key);
        size_t k = 0;

        if (!p)
                return -ENOENT;
        p += strlen(key);
        if (ret_u) {
                char *end;

                errno = 0;
                *ret_u = strtoull(p, &end, 10);
                return end == p || errno != 0 ? -EINVAL : 0;
        }
        if (*p++ != '"')
                return -EINVAL;
        for (; *p && *p != '"'; p++) {
                if (*p == '\\') {
                        p++;
                        if (*p != '"' && *p != '\\')
                                return -EINVAL; /* not written by us: the slow path reads it */
                }
                if (k + 1 >= size)
                        return -E2BIG;
                buf[k++] = *p;
        }
        if (*p != '"')
                return -EINVAL;
        buf[k] = '\0';
        return 0;
}

/* One line as format_ban() writes it; the reason into reason (BAN_REASON_MAX + 1 bytes). */
static int parse_ban_line(BanStore *s, const char *line, Ban *ret, char *reason) {
        char a[CIDR_STRING_MAX], o[32];
        uint64_t id, created, expires, offenses;
        BanOrigin origin;
        uint8_t policy;

        if (line_field(line, "\"id\": ", &id, NULL, 0) < 0)
                id = s->next_id; /* a document without ids: numbered in order */
        if (line_field(line, "\"address\": ", NULL, a, sizeof a) < 0 ||
            line_field(line, "\"origin\": ", NULL, o, sizeof o) < 0 ||
            line_field(line, "\"created\": ", &created, NULL, 0) < 0 ||
            line_field(line, "\"expires\": ", &expires, NULL, 0) < 0 ||
            line_field(line, "\"offenses\": ", &offenses, NULL, 0) < 0 ||
            line_field(line, "\"reason\": ", NULL, reason, BAN_REASON_MAX + 1) < 0 ||
            ban_origin_from_string(o, &origin, &policy) < 0 || id == 0 ||
            id > UINT32_MAX || offenses > UINT32_MAX)
                return -EINVAL;
        *ret = (Ban) {
                .id = (uint32_t) id,
                .created_usec = created,
                .expires_usec = expires,
                .offenses = MAX((uint32_t) offenses, 1u),
                .origin = (uint8_t) origin,
                .policy = policy,
        };
        return cidr_parse(a, true, &ret->cidr) < 0 ? -EINVAL : 0;
}

/*
 * bans.json as this daemon writes it, one ban per line, read without building a JSON tree: a
 * million bans in a few hundred milliseconds instead of seconds and a gigabyte. Anything
 * unexpected (an edited file) gives -EINVAL, and the caller reads it with jansson instead.
 */
static int load_fast(BanStore *s, char *text, uint64_t now, size_t *ret_expired) {
        char *line, *next;
        size_t expired = 0, lines = 0;
        int r;

        if (strncmp(text, "{\"version\": 1, \"allowlist\": [", 29) != 0)
                return -EINVAL;
        for (line = text; line; line = next) {
                char reason[BAN_REASON_MAX + 1];
                Ban b;

                next = strchr(line, '\n');
                if (next)
                        *next++ = '\0';
                if (lines++ == 0) { /* the allowlist */
                        char *q = strchr(line, '[');

                        while (q && (q = strchr(q, '"'))) {
                                char *e = strchr(q + 1, '"');
                                Cidr c, *na;

                                if (!e)
                                        return -EINVAL;
                                *e = '\0';
                                if (cidr_parse(q + 1, true, &c) < 0 || s->n_allow >= BAN_ALLOWLIST_MAX)
                                        return -EINVAL;
                                na = realloc(s->allow, (s->n_allow + 1) * sizeof(Cidr));
                                if (!na)
                                        return -ENOMEM;
                                s->allow = na;
                                s->allow[s->n_allow++] = c;
                                q = e + 1;
                        }
                        continue;
                }
                if (line[0] != '{')
                        continue; /* "\"bans\": [", "]}" */
                r = parse_ban_line(s, line, &b, reason);
                if (r < 0)
                        return r;
                if (b.expires_usec && b.expires_usec <= now) {
                        expired++;
                        continue;
                }
                r = store_reserve(s, 1);
                if (r < 0)
                        return r;
                if (store_find(s, &b.cidr))
                        continue;
                if (*reason) {
                        b.reason = strdup(reason);
                        if (!b.reason)
                                return -ENOMEM;
                }
                (void) store_insert(s, &b);
                s->next_id = MAX(s->next_id, b.id + 1);
        }
        *ret_expired = expired;
        return 0;
}

/* One record of the journal applied to the table; a ban's reason is the table's from here on. */
/* One record over the table, with one probe of the index for a ban (the journal of a bulk
 * change is as many records as bans: a second probe per record was a good part of a start). */
static int replay_apply(BanStore *s, BanRecordType type, Ban *b, uint64_t now) {
        bool found;
        size_t i;
        int r;

        switch (type) {
        case BAN_RECORD_BAN:
                s->next_id = MAX(s->next_id, b->id + 1);
                b->unseen = false;
                if (b->expires_usec && b->expires_usec <= now) {
                        reason_free(s, b->reason);
                        store_remove(s, &b->cidr);
                        return 0;
                }
                /* Room first (the start reserved for every record, so this is no rebuild), so
                 * that the slot found stays the slot. */
                r = store_reserve(s, 1);
                if (r < 0) {
                        reason_free(s, b->reason);
                        return r;
                }
                i = index_slot(s, &b->cidr, &found);
                if (found) {
                        Ban *cur = &s->bans[s->index[i] - 1];

                        reason_free(s, cur->reason);
                        *cur = *b;
                } else
                        (void) store_insert_at(s, i, b);
                return 0;
        case BAN_RECORD_UNBAN:
        case BAN_RECORD_EXPIRE:
                store_remove(s, &b->cidr); /* frees the reason */
                return 0;
        case BAN_RECORD_ALLOW_ADD:
        case BAN_RECORD_ALLOW_REMOVE:
                for (i = 0; i < s->n_allow; i++)
                        if (cidr_equal(&s->allow[i], &b->cidr))
                                break;
                if (type == BAN_RECORD_ALLOW_REMOVE && i < s->n_allow) {
                        memmove(s->allow + i, s->allow + i + 1,
                                (s->n_allow - i - 1) * sizeof(Cidr));
                        s->n_allow--;
                } else if (type == BAN_RECORD_ALLOW_ADD && i == s->n_allow &&
                           s->n_allow < BAN_ALLOWLIST_MAX) {
                        Cidr *na = realloc(s->allow, (s->n_allow + 1) * sizeof(Cidr));

                        if (!na)
                                return -ENOMEM;
                        s->allow = na;
                        s->allow[s->n_allow++] = b->cidr;
                }
                return 0;
        default:
                return -EINVAL;
        }
}

/* One line of a journal of the text format (before the binary records) applied. */
static int replay_text_record(BanStore *s, char *line, uint64_t now) {
        char reason[BAN_REASON_MAX + 1];
        BanRecordType type;
        Ban b = {};
        int r;

        switch (line[0]) {
        case '+':
                r = parse_ban_line(s, line + 1, &b, reason);
                if (r < 0)
                        return r;
                if (*reason) {
                        b.reason = strdup(reason);
                        if (!b.reason)
                                return -ENOMEM;
                }
                return replay_apply(s, BAN_RECORD_BAN, &b, now);
        case '-':
                type = BAN_RECORD_UNBAN;
                break;
        case 'A':
                type = BAN_RECORD_ALLOW_ADD;
                break;
        case 'R':
                type = BAN_RECORD_ALLOW_REMOVE;
                break;
        default:
                return -EINVAL;
        }
        if (cidr_parse(line + 1, true, &b.cidr) < 0)
                return -EINVAL;
        return replay_apply(s, type, &b, now);
}

/* A journal of the text format. A last record without its newline was cut short by a crash
 * before it was acknowledged: it is ignored. A record that cannot be read is skipped with a
 * warning. The snapshot written after the start replaces the file. */
static int replay_text(BanStore *s, const char *path, char *text, size_t size,
                       uint64_t now, size_t *ret_records) {
        size_t records = 0, bad = 0;
        char *line, *next;
        int r;

        for (line = text; line < text + size; line = next) {
                next = memchr(line, '\n', (size_t) (text + size - line));
                if (!next) {
                        log_warning("%s ends in a record cut short (%zu bytes, no newline), "
                                    "written by a change that was never acknowledged; ignored",
                                    path, (size_t) (text + size - line));
                        break;
                }
                *next++ = '\0';
                r = replay_text_record(s, line, now);
                if (r == -ENOMEM)
                        return r;
                if (r < 0)
                        bad++;
                else
                        records++;
        }
        if (bad > 0)
                log_warning("%s: %zu record(s) could not be read and were skipped", path, bad);
        s->log_rewrite = true;
        *ret_records += records;
        return 0;
}

static bool all_zero(const uint8_t *p, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (p[i])
                        return false;
        return true;
}

/* Cuts a journal back to its first size bytes; one without even its header goes, so that
 * the next record starts a new file with one. */
static void log_cut(const char *path, size_t size) {
        if (size == 0 ? unlink(path) < 0 : truncate(path, (off_t) size) < 0)
                log_warning_errno(-errno, "Cannot cut %s short: %m", path);
}

/*
 * A journal of binary records, read whole into one buffer. A first pass checks the records and
 * sums their reasons, which then go into one block (a ban repeating the reason of the record
 * before shares its string): no allocation per record. A record cut short at the end (or
 * followed by nothing but zeros: a crash before the size was synced) was never acknowledged:
 * it is cut off. A bad record before the end stops the replay there; the file is kept beside
 * as FILE.corrupt and the snapshot written after the start takes the table as it was read.
 */
static int replay_binary(BanStore *s, const char *path, const uint8_t *p, size_t size,
                         unsigned which, uint64_t now, size_t *ret_records) {
        size_t off = sizeof(struct ban_log_header), end, rsize = 0, reason_bytes = 0;
        size_t records = 0, used = 0, ahead, ahead_n = 0;
        const char *last = NULL;
        BanRecord rec;
        int r = 0;

        r = ban_log_header_check(p, size);
        if (r == -EAGAIN) {
                log_warning("%s ends in its header cut short (%zu bytes); the file is empty",
                            path, size);
                log_cut(path, 0);
                return 0;
        }
        if (r < 0)
                off = 0; /* nothing of it is read */
        else
                for (; off < size; off += rsize) {
                        r = ban_record_decode(p + off, size - off, &rec, &rsize);
                        if (r < 0)
                                break;
                        if (rec.type == BAN_RECORD_BAN)
                                reason_bytes += rec.reason_len + 1;
                }
        end = off;
        if (end < size) {
                if (r == -EAGAIN ||
                    (r == -EBADMSG && (end + rsize >= size || all_zero(p + end, size - end)))) {
                        log_warning("%s ends in a record cut short (%zu bytes), written by a "
                                    "change that was never acknowledged; ignored", path,
                                    size - end);
                        log_cut(path, end);
                } else {
                        _cleanup_free_ char *aside =
                                state_path(s, which ? BANS_LOG_NEW ".corrupt" : BANS_LOG ".corrupt");

                        log_struct_internal(LOG_ERR, 0, PS_MESSAGE_STATE_CORRUPT, NULL,
                                            "%s cannot be read from byte %zu on (of %zu); the "
                                            "bans before are restored, the file is kept as "
                                            "%s.corrupt", path, end, size, path);
                        if (!aside || rename(path, aside) < 0)
                                log_warning_errno(aside ? -errno : -ENOMEM,
                                                  "Cannot keep %s aside: %m", path);
                        s->log_rewrite = true;
                }
        }
        if (reason_bytes > 0) {
                s->log_reasons[which] = malloc(reason_bytes);
                if (!s->log_reasons[which])
                        return -ENOMEM;
                s->log_reasons_size[which] = reason_bytes;
        }
        ahead = sizeof(struct ban_log_header);
        for (off = sizeof(struct ban_log_header); off < end; off += rsize) {
                /* The index slot of the record INDEX_AHEAD on, fetched now (as the snapshot's
                 * load does): the records checked above, their heads are read as they are. */
                for (; ahead < end && ahead_n < INDEX_AHEAD; ahead_n++) {
                        struct ban_record_head h;
                        Cidr c = {};

                        memcpy(&h, p + ahead, sizeof h);
                        c.family = h.family;
                        c.prefixlen = h.prefixlen;
                        memcpy(c.addr, h.addr, sizeof c.addr);
                        if (s->index_size > 0)
                                __builtin_prefetch(&s->index[cidr_hash(&c) &
                                                             (s->index_size - 1)]);
                        ahead += ban_record_size(h.reason_len);
                }
                ahead_n--;
                rsize = ban_record_read(p + off, &rec);
                if (rec.ban.reason) {
                        if (last && strcmp(last, rec.ban.reason) == 0)
                                rec.ban.reason = (char *) last;
                        else {
                                char *q = s->log_reasons[which] + used;

                                memcpy(q, rec.ban.reason, rec.reason_len + 1);
                                used += rec.reason_len + 1;
                                rec.ban.reason = q;
                                last = q;
                        }
                }
                r = replay_apply(s, rec.type, &rec.ban, now);
                if (r < 0)
                        return r;
                records++;
        }
        s->journal.log_bytes += end;
        *ret_records += records;
        return 0;
}

/* Replays one journal (which: 0 bans.log, 1 bans.log.new) over the table. */
static int replay_log(BanStore *s, const char *file, unsigned which, uint64_t now,
                      size_t *ret_records) {
        _cleanup_free_ char *path = state_path(s, file), *text = NULL;
        size_t size = 0;
        int r;

        if (!path)
                return -ENOMEM;
        r = read_file_full(path, BANS_FILE_MAX_BYTES, &text, &size);
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return r;
        if (size == 0)
                return 0;
        if (text[0] && strchr("+-AR", text[0]))
                return replay_text(s, path, text, size, now, ret_records);
        return replay_binary(s, path, (const uint8_t *) text, size, which, now, ret_records);
}

/* Forgets what a failed fast read left. */
static void store_clear(BanStore *s) {
        for (size_t i = 0; i < s->n_bans; i++)
                reason_free(s, s->bans[i].reason);
        s->reasons = mfree(s->reasons);
        s->reasons_size = 0;
        for (size_t i = 0; i < ELEMENTSOF(s->log_reasons); i++) {
                s->log_reasons[i] = mfree(s->log_reasons[i]);
                s->log_reasons_size[i] = 0;
        }
        s->n_bans = 0;
        memset(s->prefix_count, 0, sizeof s->prefix_count);
        if (s->index)
                memset(s->index, 0, s->index_size * sizeof(uint32_t));
        s->n_allow = 0;
}

/* The snapshot read front to back through a buffer of SNAPSHOT_READ_BUF bytes. */
#define SNAPSHOT_READ_BUF (1u << 20)

typedef struct SnapshotReader {
        int fd;
        char *buf;
        size_t pos, len;
        uint64_t h;
} SnapshotReader;

/* The next n bytes (at most SNAPSHOT_READ_BUF), folded into the checksum; NULL with errno set
 * when the file ends before them (EBADMSG) or cannot be read. */
static const void *snapshot_take(SnapshotReader *rd, size_t n) {
        const char *p;

        if (rd->len - rd->pos < n) {
                memmove(rd->buf, rd->buf + rd->pos, rd->len - rd->pos);
                rd->len -= rd->pos;
                rd->pos = 0;
                while (rd->len < n) {
                        ssize_t k = read(rd->fd, rd->buf + rd->len, SNAPSHOT_READ_BUF - rd->len);

                        if (k < 0 && errno == EINTR)
                                continue;
                        if (k <= 0) {
                                if (k == 0)
                                        errno = EBADMSG;
                                return NULL;
                        }
                        rd->len += (size_t) k;
                }
        }
        p = rd->buf + rd->pos;
        rd->pos += n;
        rd->h = ban_fold(rd->h, p, n);
        return p;
}

/* Reads the snapshot into the (empty) table: its bans at once into one array and one index.
 * -EBADMSG with *ret_why when the file is not a whole snapshot of this version. */
static int load_snapshot(BanStore *s, int fd, uint64_t size, uint64_t now, size_t *ret_expired,
                         const char **ret_why) {
        _cleanup_free_ char *buf = malloc(SNAPSHOT_READ_BUF);
        SnapshotReader rd = { .fd = fd, .buf = buf };
        struct snapshot_header hd;
        uint64_t used = 0, arena_nuls = 0; /* reason bytes and strings put in the block */
        char *last = NULL;                  /* the last reason put there */
        size_t last_len = 0;
        const void *p;
        size_t expired = 0;
        char tail;
        int r;

        if (!buf)
                return -ENOMEM;
        p = snapshot_take(&rd, sizeof hd);
        if (!p)
                goto short_read;
        memcpy(&hd, p, sizeof hd);
        rd.h = BAN_FOLD_SEED;
        if (memcmp(hd.magic, BANS_SNAPSHOT_MAGIC, sizeof hd.magic) != 0 ||
            hd.version != BANS_SNAPSHOT_VERSION || hd.ban_size != sizeof(struct snapshot_ban)) {
                *ret_why = "not a ban snapshot of this version";
                return -EBADMSG;
        }
        /* The header's counts give the file's size: a header that does not match is not
         * trusted with an allocation. */
        if (hd.n_bans > BANS_SNAPSHOT_MAX || hd.n_allow > BAN_ALLOWLIST_MAX ||
            hd.reason_bytes > hd.n_bans * BAN_REASON_MAX ||
            size != sizeof hd + hd.n_allow * sizeof(struct snapshot_cidr) +
                    hd.n_bans * sizeof(struct snapshot_ban) + hd.reason_bytes) {
                *ret_why = "its header does not match its size";
                return -EBADMSG;
        }
        if (hd.n_allow > 0) {
                Cidr *na = reallocarray(s->allow, hd.n_allow, sizeof(Cidr));

                if (!na)
                        return -ENOMEM;
                s->allow = na;
        }
        for (uint32_t i = 0; i < hd.n_allow; i++) {
                struct snapshot_cidr c;

                p = snapshot_take(&rd, sizeof c);
                if (!p)
                        goto short_read;
                memcpy(&c, p, sizeof c);
                if (!ban_record_cidr_valid(c.family, c.prefixlen))
                        goto bad_entry;
                s->allow[s->n_allow] = (Cidr) { .family = c.family, .prefixlen = c.prefixlen };
                memcpy(s->allow[s->n_allow++].addr, c.addr, sizeof c.addr);
        }
        /* With room for the bans the journals may add: grown during the replay, the array of
         * a million bans was copied into fresh memory, most of the replay's time. */
        r = store_reserve(s, (size_t) hd.n_bans + s->replay_room);
        if (r < 0)
                return r;
        /* Room for every reason with its NUL; what the sharing leaves unused is never
         * touched, so it takes address space, not memory. */
        if (hd.reason_bytes > 0) {
                s->reasons_size = (size_t) (hd.reason_bytes + hd.n_bans);
                s->reasons = malloc(s->reasons_size);
                if (!s->reasons)
                        return -ENOMEM;
        }
        for (uint64_t i = 0; i < hd.n_bans; i++) {
                struct snapshot_ban e;
                const char *reason = NULL;
                Ban b;

                p = snapshot_take(&rd, sizeof e);
                if (!p)
                        goto short_read;
                memcpy(&e, p, sizeof e);
                if (!ban_record_cidr_valid(e.family, e.prefixlen) || e.id == 0 ||
                    e.origin < BAN_ORIGIN_MANUAL || e.origin >= _BAN_ORIGIN_MAX ||
                    e.reason_len > BAN_REASON_MAX)
                        goto bad_entry;
                if (e.reason_len > 0) {
                        reason = snapshot_take(&rd, e.reason_len);
                        if (!reason)
                                goto short_read;
                }
                if (e.expires_usec && e.expires_usec <= now) {
                        expired++;
                        continue;
                }
                b = (Ban) {
                        .cidr = { .family = e.family, .prefixlen = e.prefixlen },
                        .id = e.id,
                        .created_usec = e.created_usec,
                        .expires_usec = e.expires_usec,
                        .offenses = MAX(e.offenses, 1u),
                        .origin = e.origin,
                        .policy = e.policy,
                };
                memcpy(b.cidr.addr, e.addr, sizeof e.addr);
                if (reason) {
                        if (e.reason_len > hd.reason_bytes - used) {
                                *ret_why = "reasons longer than the header says";
                                return -EBADMSG;
                        }
                        if (last && last_len == e.reason_len &&
                            memcmp(last, reason, e.reason_len) == 0)
                                b.reason = last;
                        else {
                                b.reason = last = s->reasons + used + arena_nuls;
                                memcpy(b.reason, reason, e.reason_len);
                                b.reason[e.reason_len] = '\0';
                                used += e.reason_len;
                                arena_nuls++;
                                last_len = e.reason_len;
                        }
                }
                /* Into the array only; the index follows at once, below. */
                s->bans[s->n_bans++] = b;
                s->prefix_count[fam_idx(b.cidr.family)][b.cidr.prefixlen]++;
                s->next_id = MAX(s->next_id, b.id + 1);
        }
        if (rd.pos != rd.len || read(fd, &tail, 1) != 0) {
                *ret_why = "bytes past its last ban";
                return -EBADMSG;
        }
        if (rd.h != hd.checksum) {
                *ret_why = "checksum mismatch";
                return -EBADMSG;
        }
        if (index_build(s) < 0) {
                *ret_why = "an address listed twice";
                return -EBADMSG;
        }
        s->next_id = MAX(s->next_id, hd.next_id);
        *ret_expired = expired;
        return 0;

short_read:
        if (errno != EBADMSG)
                return -errno;
        *ret_why = "cut short";
        return -EBADMSG;
bad_entry:
        *ret_why = "an entry out of range";
        return -EBADMSG;
}

static int load_json_file(BanStore *s, size_t *ret_loaded, size_t *ret_expired, char **ret_error) {
        _cleanup_free_ char *path = NULL, *text = NULL, *err = NULL;
        _cleanup_free_ BanRequest *reqs = NULL;
        json_t *doc = NULL, *allow;
        uint64_t now = now_usec(CLOCK_REALTIME);
        size_t n = 0, expired = 0, size = 0;
        int r;

        path = strjoin_path(s->state_dir, BANS_FILE_JSON);
        if (!path)
                return -ENOMEM;
        r = read_file_full(path, BANS_FILE_MAX_BYTES, &text, &size);
        if (r < 0)
                return r;
        s->journal.snapshot_bytes = size;
        /* The fast reader cuts the text into lines: a document it cannot read is read again
         * for jansson. */
        r = load_fast(s, text, now, &expired);
        if (r == -ENOMEM)
                return r;
        if (r >= 0) {
                *ret_loaded = s->n_bans;
                *ret_expired = expired;
                return 0;
        }
        store_clear(s);
        expired = 0;
        text = mfree(text);
        r = read_file_full(path, BANS_FILE_MAX_BYTES, &text, NULL);
        if (r < 0)
                return r;
        r = ban_parse_import(text, &reqs, &n, &doc, &err);
        if (r < 0)
                return file_set_aside(path, err ? err : "unreadable", ret_error);
        allow = json_object_get(doc, "allowlist");
        for (size_t i = 0; i < json_array_size(allow); i++) {
                const char *t = json_string_value(json_array_get(allow, i));
                Cidr c, *na;

                if (!t || cidr_parse(t, true, &c) < 0 || s->n_allow >= BAN_ALLOWLIST_MAX)
                        continue;
                na = realloc(s->allow, (s->n_allow + 1) * sizeof(Cidr));
                if (!na) {
                        json_decref(doc);
                        return -ENOMEM;
                }
                s->allow = na;
                s->allow[s->n_allow++] = c;
        }
        r = store_reserve(s, n);
        if (r < 0) {
                json_decref(doc);
                return r;
        }
        for (size_t i = 0; i < n; i++) {
                json_t *o = json_array_get(json_object_get(doc, "bans"), i);
                json_t *created = json_object_get(o, "created");
                Ban b;

                if (reqs[i].expires_usec && reqs[i].expires_usec <= now) {
                        expired++;
                        continue;
                }
                if (store_find(s, &reqs[i].cidr))
                        continue;
                b = (Ban) {
                        .cidr = reqs[i].cidr,
                        .id = s->next_id++,
                        .created_usec = json_is_integer(created)
                                        ? (uint64_t) json_integer_value(created) : now,
                        .expires_usec = reqs[i].expires_usec,
                        .offenses = MAX(reqs[i].offenses, 1u),
                        .origin = (uint8_t) reqs[i].origin,
                        .policy = reqs[i].policy,
                        .reason = reqs[i].reason && *reqs[i].reason ? strdup(reqs[i].reason) : NULL,
                };
                (void) store_insert(s, &b);
        }
        json_decref(doc);
        *ret_loaded = s->n_bans;
        *ret_expired = expired;
        return 0;
}

/* The snapshot, or else the bans.json an older version wrote (converted once the start is
 * done: see ban_store_start()). */
static int load_file(BanStore *s, size_t *ret_loaded, size_t *ret_expired, char **ret_error) {
        _cleanup_free_ char *path = state_path(s, BANS_FILE);
        _cleanup_close_ int fd = -1;
        const char *why = NULL;
        struct stat st;
        int r;

        if (!path)
                return -ENOMEM;
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0 && errno == ENOENT) {
                r = load_json_file(s, ret_loaded, ret_expired, ret_error);
                if (r >= 0)
                        s->convert_json = true;
                return r;
        }
        if (fd < 0 || fstat(fd, &st) < 0)
                return -errno;
        s->journal.snapshot_bytes = (uint64_t) st.st_size;
        r = load_snapshot(s, fd, (uint64_t) st.st_size, now_usec(CLOCK_REALTIME), ret_expired,
                          &why);
        if (r == -EBADMSG) {
                store_clear(s);
                return file_set_aside(path, why, ret_error);
        }
        if (r < 0)
                return r;
        *ret_loaded = s->n_bans;
        return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Policies */

/* The kernel's configuration from the [Bans] settings (and what SetPolicy changed since). */
static void policies_to_kernel(const Config *c, uint64_t url_lengths, struct ps_ban_config *ret) {
        *ret = (struct ps_ban_config) { .n_http_ports = c->n_http_ports,
                                        .url_lengths = url_lengths };
        for (unsigned i = 0; i < _PS_BAN_POLICY_MAX; i++)
                ret->policy[i] = (struct ps_ban_policy_conf) {
                        .mode = c->ban_policy[i].mode,
                        .threshold = c->ban_policy[i].threshold,
                        .burst = c->ban_policy[i].burst,
                        .prefix4 = c->ban_prefix4,
                        .prefix6 = c->ban_prefix6,
                        .window_ns = c->ban_policy[i].window_usec * NSEC_PER_USEC,
                        .ban_ns = c->ban_duration_usec * NSEC_PER_USEC,
                        .repeat_factor = c->ban_repeat_factor,
                        .repeat_max_ns = c->ban_repeat_max_usec * NSEC_PER_USEC,
                };
        memcpy(ret->http_ports, c->http_ports, sizeof ret->http_ports);
}

/* The URL patterns of the map made equal to the configured ones, then the configuration. */
int ban_store_apply_policies(BanStore *s) {
        struct ps_url_key key, next;
        struct ps_ban_config k;
        uint64_t lengths = 0;
        void *prev = NULL;
        int r;

        for (uint32_t i = 0; i < s->config->n_url_patterns; i++) {
                const char *p = s->config->url_patterns[i];

                r = ban_maps_pattern_add(&s->maps, p, strlen(p), i + 1);
                if (r < 0)
                        return r;
                lengths |= UINT64_C(1) << (strlen(p) - 1);
        }
        /* Patterns no longer configured go; the walk starts over after each delete. */
        while (bpf_map_get_next_key(s->maps.patterns_fd, prev, &next) == 0) {
                bool keep = false;

                for (uint32_t i = 0; i < s->config->n_url_patterns && !keep; i++)
                        keep = strlen(s->config->url_patterns[i]) == next.len &&
                               memcmp(s->config->url_patterns[i], next.bytes, next.len) == 0;
                if (keep) {
                        key = next;
                        prev = &key;
                        continue;
                }
                if (bpf_map_delete_elem(s->maps.patterns_fd, &next) < 0)
                        return -errno;
                prev = NULL;
        }
        policies_to_kernel(s->config, lengths, &k);
        return ban_maps_set_config(&s->maps, &k);
}

int ban_store_set_policy(BanStore *s, unsigned policy, const BanPolicyConf *p,
                         char **ret_error) {
        BanPolicyConf old;
        int r;

        if (policy >= _PS_BAN_POLICY_MAX)
                return error_setf(ret_error, -EINVAL, "no such policy");
        old = s->config->ban_policy[policy];
        s->config->ban_policy[policy] = *p;
        r = ban_store_apply_policies(s);
        if (r < 0) {
                s->config->ban_policy[policy] = old;
                (void) ban_store_apply_policies(s);
                return error_setf(ret_error, r, "cannot write the policy to the kernel: %s",
                                  strerror(-r));
        }
        /* A setting that would not survive a restart is not made. */
        r = ban_policies_save(s->state_dir, s->config, s->policies_set | (1u << policy));
        if (r < 0) {
                s->config->ban_policy[policy] = old;
                (void) ban_store_apply_policies(s);
                return error_setf(ret_error, -EROFS, "the policy cannot be written to %s/"
                                  BAN_POLICIES_FILE ": %s; nothing was changed", s->state_dir,
                                  strerror(-r));
        }
        s->policies_set |= 1u << policy;
        return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* What the policies did (the kernel's ban events) */

/* A source the kernel banned, for the growth of its next ban after a restart. */
static void offender_remember(BanStore *s, const Cidr *source, uint32_t offenses) {
        int r;

        if (s->config->ban_offenders_max == 0)
                return;
        r = ban_offenders_note(&s->offenders, source, offenses, now_usec(CLOCK_REALTIME),
                               s->config->ban_offenders_max);
        if (r >= 0)
                r = ban_offenders_save(s->state_dir, &s->offenders);
        if (r < 0)
                log_warning_errno(r, "Cannot write %s/" BAN_OFFENDERS_FILE ": %m; the kernel "
                                  "remembers the offense until the daemon restarts",
                                  s->state_dir);
}

static void offenders_forget(BanStore *s);

/* The stored offenders back into the kernel (its own LRU may have lost them, or they were
 * never there: a reboot empties the pinned maps). The kernel keeps the higher count. */
static void offenders_restore(BanStore *s) {
        _cleanup_free_ char *err = NULL;
        uint64_t now_real = now_usec(CLOCK_REALTIME), now_mono = now_usec(CLOCK_MONOTONIC);
        size_t put = 0;
        int r;

        r = ban_offenders_load(s->state_dir, &s->offenders, s->config->ban_offenders_max, &err);
        if (r < 0 || err)
                log_warning_errno(r < 0 ? r : -EBADMSG, "Cannot read all of %s/"
                                  BAN_OFFENDERS_FILE ": %s", s->state_dir,
                                  err ? err : strerror(-r));
        /* Those past RememberOffendersSec= go before they reach the kernel. */
        offenders_forget(s);
        for (size_t i = 0; i < s->offenders.n; i++) {
                const BanOffender *o = &s->offenders.v[i];
                struct ps_ban_src_key k = { .family = o->source.family,
                                            .prefixlen = o->source.prefixlen };
                struct ps_ban_offender v = { .offenses = o->offenses }, cur;
                uint64_t ago = now_real > o->last_usec ? now_real - o->last_usec : 0;

                memcpy(k.addr, o->source.addr, sizeof k.addr);
                v.last_ban = (ago < now_mono ? now_mono - ago : 0) * NSEC_PER_USEC;
                if (bpf_map_lookup_elem(s->maps.offenders_fd, &k, &cur) == 0 &&
                    cur.offenses >= v.offenses)
                        continue;
                if (ban_maps_offender_set(&s->maps, &k, &v) == 0)
                        put++;
        }
        if (s->offenders.n > 0)
                log_debug("%zu repeat offender(s) restored from %s/" BAN_OFFENDERS_FILE, put,
                          s->state_dir);
}

static bool offender_stale(const void *key, const void *value, uint64_t now_ns, void *userdata) {
        const struct ps_ban_offender *o = value;
        uint64_t keep_ns = *(const uint64_t *) userdata;

        return now_ns > keep_ns && o->last_ban < now_ns - keep_ns;
}

/* Forgets the offenders last banned longer than RememberOffendersSec= ago, in offenders.json
 * and in the kernel's table (which bumps whatever it finds, however old). */
static void offenders_forget(BanStore *s) {
        uint64_t keep = s->config->ban_offenders_keep_usec, now = now_usec(CLOCK_REALTIME);
        uint64_t keep_ns = keep * NSEC_PER_USEC;
        BpfMapSweeper sw;
        size_t gone = 0;
        bool done;
        int r;

        if (keep == 0)
                return;
        if (now > keep && ban_offenders_forget(&s->offenders, now - keep) > 0) {
                r = ban_offenders_save(s->state_dir, &s->offenders);
                if (r < 0)
                        log_warning_errno(r, "Cannot write %s/" BAN_OFFENDERS_FILE ": %m",
                                          s->state_dir);
        }
        if (s->maps.offenders_fd < 0 ||
            bpf_map_sweeper_init(&sw, sizeof(struct ps_ban_src_key),
                                 sizeof(struct ps_ban_offender)) < 0)
                return;
        r = bpf_map_sweeper_step(&sw, s->maps.offenders_fd, SIZE_MAX, now_nsec(CLOCK_MONOTONIC),
                                 offender_stale, &keep_ns, &done);
        bpf_map_sweeper_done(&sw);
        if (r < 0)
                log_debug_errno(r, "Cannot sweep the kernel's repeat offenders: %m");
        else
                gone = (size_t) r;
        if (gone > 0)
                log_debug("%zu repeat offender(s) forgotten in the kernel, last banned more than "
                          "RememberOffendersSec= ago", gone);
}

/* An eighth of RememberOffendersSec=, between 1 s and 10 min: how late an offender may be
 * forgotten. */
static uint64_t offenders_period(const Config *c) {
        return MIN(MAX(c->ban_offenders_keep_usec / 8, USEC_PER_SEC), 600 * USEC_PER_SEC);
}

static int on_offenders_timer(sd_event_source *src, uint64_t usec, void *userdata) {
        BanStore *s = userdata;

        offenders_forget(s);
        (void) sd_event_source_set_time_relative(src, offenders_period(s->config));
        (void) sd_event_source_set_enabled(src, SD_EVENT_ONESHOT);
        return 0;
}

static int on_ban_event(void *ctx, void *data, size_t size) {
        BanStore *s = ctx;
        const struct ps_ban_event *e = data;
        const char *policy;
        char a[CIDR_STRING_MAX];
        Cidr c;

        if (size < sizeof *e || (e->family != ADDR_FAMILY_IPV4 && e->family != ADDR_FAMILY_IPV6))
                return 0;
        c = (Cidr) { .family = e->family, .prefixlen = e->prefixlen };
        memcpy(c.addr, e->addr, sizeof c.addr);
        policy = ban_policy_to_string(e->policy);
        if (!policy)
                return 0;
        cidr_to_string(true, &c, a);

        switch (e->kind) {
        case PS_BAN_EVENT_SHADOW:
                if (s->cb.policy)
                        s->cb.policy(s, policy, a, true, e->value, e->offenses, 0, s->cb.userdata);
                return 0;
        case PS_BAN_EVENT_FULL:
                log_struct_internal(LOG_WARNING, 0, PS_MESSAGE_BANS_FILLING, NULL,
                                    "Policy %s would have banned %s but the ban table is full",
                                    policy, a);
                return 0;
        case PS_BAN_EVENT_BANNED:
        case PS_BAN_EVENT_EXTENDED: {
                struct ps_ban v;
                Ban *b;

                /* The kernel made the ban; record it as the kernel has it. */
                if (ban_maps_lookup(&s->maps, c.family, c.addr, c.prefixlen, &v) < 0)
                        return 0; /* unbanned or reaped meanwhile */
                b = store_find(s, &c);
                if (!b) {
                        Ban nb = {
                                .cidr = c,
                                .id = s->next_id++,
                                .created_usec = now_usec(CLOCK_REALTIME),
                        };

                        if (store_reserve(s, 1) < 0)
                                return 0;
                        b = store_insert(s, &nb);
                        s->totals.created_auto[e->policy]++;
                }
                b->unseen = false;
                b->expires_usec = v.expires ? mono_to_realtime_usec(v.expires) : 0;
                b->offenses = MAX(v.offenses, 1u);
                b->origin = BAN_ORIGIN_AUTO;
                b->policy = e->policy;
                if (!b->reason) {
                        char r[96];

                        snprintf(r, sizeof r, "%s: %u", policy, e->value);
                        b->reason = strdup(r);
                }
                v.id = b->id;
                (void) ban_maps_insert(&s->maps, c.family, c.addr, c.prefixlen, &v, BPF_EXIST);
                if (!cidr_is_exact(&c))
                        (void) ban_maps_update_presence(&s->maps);
                if (log_append_ban(s, b) < 0)
                        log_warning("Cannot write the auto-ban of %s to %s/" BANS_FILE "; the "
                                    "kernel enforces it, and the next start takes it over", a,
                                    s->state_dir);
                offender_remember(s, &c, b->offenses);
                if (s->cb.policy)
                        s->cb.policy(s, policy, a, false, e->value, b->offenses, b->expires_usec,
                                     s->cb.userdata);
                if (s->cb.banned)
                        s->cb.banned(s, b, s->cb.userdata);
                if (s->cb.changed)
                        s->cb.changed(s, s->cb.userdata);
                expiry_note(s, b->expires_usec);
                schedule_reap(s);
                return 0;
        }
        default:
                return 0;
        }
}

static int on_ban_events_ready(sd_event_source *src, int fd, uint32_t revents, void *userdata) {
        BanStore *s = userdata;
        int r = ring_buffer__consume(s->events);

        if (r < 0)
                log_debug_errno(r, "Reading ban events failed: %m");
        return 0;
}

static int start_events(BanStore *s) {
        s->events = ring_buffer__new(s->maps.events_fd, on_ban_event, s, NULL);
        if (!s->events)
                return -errno;
        return sd_event_add_io(s->event, &s->events_source, ring_buffer__epoll_fd(s->events),
                               EPOLLIN, on_ban_events_ready, s);
}

int ban_store_start(BanStore *s, sd_event *event, const char *state_dir, const char *bpffs_root,
                    Config *config, char **ret_error) {
        _cleanup_free_ char *err = NULL;
        struct adopt_ctx a = { .s = s };
        size_t loaded = 0, expired = 0, put = 0, replayed = 0;
        uint64_t t0 = now_usec(CLOCK_MONOTONIC), t_read, t_replay, t_kernel;
        uint64_t cpu0 = now_usec(CLOCK_PROCESS_CPUTIME_ID);
        int r;

        assert(s);
        s->event = event;
        s->state_dir = state_dir;
        s->journal.event = event;
        s->journal.state_dir = state_dir;
        s->journal.snapshot = BANS_FILE;
        s->journal.log = BANS_LOG;
        s->journal.log_new = BANS_LOG_NEW;
        s->journal.what = "ban journal";
        s->journal.compact_min = BANS_LOG_COMPACT_MIN;
        s->journal.write_snapshot = store_write_snapshot;
        s->journal.userdata = s;
        {
                struct ban_log_header hd;

                _Static_assert(sizeof hd <= sizeof s->journal.header, "journal header size");
                ban_log_header_init(&hd);
                memcpy(s->journal.header, &hd, sizeof hd);
                s->journal.header_len = sizeof hd;
        }
        s->config = config;
        r = ban_maps_open(&s->maps, bpffs_root, config->bans_max_v4, config->bans_max_v6,
                          ret_error);
        if (r < 0)
                return r;

        {
                static const char *const logs[] = { BANS_LOG, BANS_LOG_NEW };

                for (size_t i = 0; i < ELEMENTSOF(logs); i++) {
                        _cleanup_free_ char *p = state_path(s, logs[i]);
                        struct stat st;

                        if (p && stat(p, &st) >= 0)
                                s->replay_room += (size_t) st.st_size / ban_record_size(0);
                }
        }
        r = load_file(s, &loaded, &expired, &err);
        if (r == -EBADMSG)
                log_struct_internal(LOG_ERR, r, PS_MESSAGE_STATE_CORRUPT, NULL,
                                    "%s; the kernel keeps enforcing the bans it holds, which are "
                                    "taken over", err ? err : "");
        else if (r < 0 && r != -ENOENT)
                return error_setf(ret_error, r, "cannot read the stored bans: %s", strerror(-r));
        t_read = now_usec(CLOCK_MONOTONIC);
        {
                _cleanup_free_ char *log_new = state_path(s, BANS_LOG_NEW);
                uint64_t now = now_usec(CLOCK_REALTIME);

                if (!log_new)
                        return -ENOMEM;
                /* The changes since the snapshot, in the order they were made. */
                r = replay_log(s, BANS_LOG, 0, now, &replayed);
                if (r >= 0)
                        r = replay_log(s, BANS_LOG_NEW, 1, now, &replayed);
                if (r < 0)
                        return error_setf(ret_error, r, "cannot read the ban journal in %s: %s",
                                          state_dir, strerror(-r));
                s->journal.to_new = access(log_new, F_OK) >= 0;
                loaded = s->n_bans;
        }

        /* The kernel first: what it holds stays as it is (no window opens, and a restart
         * with a million pinned bans writes nothing), what only it holds is taken over; then
         * what only the file holds goes into the kernel. The prefix tries (small) now, the
         * exact tables from the event loop once the bus answers (reconcile_start()). */
        t_replay = now_usec(CLOCK_MONOTONIC);
        for (size_t i = 0; i < s->n_bans; i++)
                s->bans[i].unseen = true;
        a.now_mono = now_nsec(CLOCK_MONOTONIC);
        r = walk_trie(s->maps.cidr4_fd, ADDR_FAMILY_IPV4, adopt_entry, &a);
        if (r >= 0)
                r = walk_trie(s->maps.cidr6_fd, ADDR_FAMILY_IPV6, adopt_entry, &a);
        if (r < 0)
                log_warning_errno(r, "Cannot read the pinned ban maps: %m");
        r = kernel_put_unseen(s, false, &put);
        if (r < 0)
                log_warning_errno(r, "Cannot put the stored bans in the kernel: %m");
        t_kernel = now_usec(CLOCK_MONOTONIC);
        (void) store_update_cidr_count(s);
        r = allowlist_sync(s);
        if (r < 0)
                log_warning_errno(r, "Cannot load the allowlist into the kernel: %m");
        if (s->convert_json) {
                /* The table as an older version stored it (with its journal, and what was
                 * taken over) becomes a snapshot; bans.json goes once that is in place. */
                _cleanup_free_ char *json = state_path(s, BANS_FILE_JSON);

                r = json ? store_save(s) : -ENOMEM;
                if (r >= 0 && unlink(json) < 0)
                        r = -errno;
                if (r < 0)
                        log_warning_errno(r, "Cannot replace %s/" BANS_FILE_JSON " by "
                                          BANS_FILE ": %m; it is read again at the next start",
                                          state_dir);
                else
                        log_info("Converted %s/" BANS_FILE_JSON " into " BANS_FILE, state_dir);
                s->convert_json = false;
        }
        if (s->log_rewrite) {
                /* The journal read was of the text format (or unreadable past a point): the
                 * table as read goes into a snapshot, which replaces it. */
                r = store_save(s);
                if (r < 0)
                        log_warning_errno(r, "Cannot replace the ban journal in %s by a "
                                          "snapshot: %m; tried again at the next change",
                                          state_dir);
                else
                        log_info("Replaced the ban journal in %s by %s/" BANS_FILE
                                 " (%zu ban(s))", state_dir, state_dir, s->n_bans);
        }
        adopt_record(s, &a);
        if (s->n_bans > 0 || a.adopted > 0)
                log_info("Restored %zu ban(s) from %s in %llu ms (snapshot read in %llu ms, %zu "
                         "journal record(s) replayed in %llu ms, prefix tables reconciled in %llu "
                         "ms, %llu ms of CPU in all: %zu prefix ban(s) put in the kernel; %zu "
                         "found only in the kernel, kept; %zu expired meanwhile; the exact tables "
                         "are reconciled next, while the bus is served)", loaded,
                         state_dir,
                         (unsigned long long) ((now_usec(CLOCK_MONOTONIC) - t0) / 1000),
                         (unsigned long long) ((t_read - t0) / 1000), replayed,
                         (unsigned long long) ((t_replay - t_read) / 1000),
                         (unsigned long long) ((t_kernel - t_replay) / 1000),
                         (unsigned long long) ((now_usec(CLOCK_PROCESS_CPUTIME_ID) - cpu0) / 1000),
                         put, a.adopted,
                         expired);
        err = mfree(err);
        r = ban_policies_load(state_dir, config, &s->policies_set, &err);
        if (r < 0)
                log_warning_errno(r, "Cannot read the policy settings made over the bus: %s",
                                  err ? err : strerror(-r));
        offenders_restore(s);
        r = ban_store_apply_policies(s);
        if (r < 0)
                log_warning_errno(r, "Cannot configure the auto-ban policies in the kernel: %m; "
                                  "manual bans work, the policies keep their last settings");
        if (event) {
                r = start_events(s);
                if (r < 0)
                        log_warning_errno(r, "Cannot read the auto-ban events: %m; the kernel "
                                          "still bans, the daemon records them at its next start");
        }
        if (event && config->ban_offenders_keep_usec > 0) {
                r = sd_event_add_time_relative(event, &s->offenders_timer, CLOCK_MONOTONIC,
                                               offenders_period(config), USEC_PER_SEC,
                                               on_offenders_timer, s);
                if (r < 0)
                        log_warning_errno(r, "Cannot schedule forgetting the repeat offenders: %m");
        }
        expiry_recompute(s);
        schedule_reap(s);
        r = reconcile_start(s);
        if (r < 0)
                log_warning_errno(r, "Cannot reconcile the stored bans with the kernel's: %m; "
                                  "the kernel keeps enforcing what it holds");
        /* The snapshot's text and the reading's garbage go back to the system. */
        (void) malloc_trim(0);
        return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* The bans as the AI summary gives them */

typedef struct SummaryHit {
        Cidr cidr;
        uint64_t packets, bytes;
} SummaryHit;

struct summary_ctx {
        SummaryHit *top;
        size_t n, max;
};

/* Keeps the max bans with the most packets dropped, most first. */
static int summary_visit(const Cidr *c, const struct ps_ban *v, void *userdata) {
        struct summary_ctx *x = userdata;
        size_t i;

        if (v->packets == 0 || (x->n == x->max && v->packets <= x->top[x->n - 1].packets))
                return 0;
        i = x->n < x->max ? x->n++ : x->n - 1;
        for (; i > 0 && x->top[i - 1].packets < v->packets; i--)
                x->top[i] = x->top[i - 1];
        x->top[i] = (SummaryHit) { .cidr = *c, .packets = v->packets, .bytes = v->bytes };
        return 0;
}

static json_t *summary_ban(const Ban *b, const char *a) {
        char o[32];

        return json_pack("{s:s, s:s, s:s%, s:I}", "address", a,
                         "origin", ban_origin_to_string(b, o, sizeof o),
                         "reason", b->reason ? b->reason : "",
                         (size_t) MIN(b->reason ? strlen(b->reason) : 0, (size_t) 64),
                         "offenses", (json_int_t) b->offenses);
}

json_t *ban_store_summary(BanStore *s, size_t top) {
        _cleanup_free_ SummaryHit *hits = calloc(top + 1, sizeof(SummaryHit));
        _cleanup_free_ const Ban **recent = calloc(top + 1, sizeof(Ban *));
        struct summary_ctx x = { .top = hits, .max = top };
        size_t origins[_BAN_ORIGIN_MAX], n_recent = 0;
        uint64_t now = now_usec(CLOCK_REALTIME);
        json_t *o, *by_origin, *dropping, *auto_bans;

        if (!hits || !recent)
                return NULL;
        ban_store_count_origins(s, origins);
        /* The most recent auto-bans: one pass over the table, the newest kept in order. */
        for (size_t k = 0; k < s->n_bans && top > 0; k++) {
                const Ban *b = &s->bans[k];
                size_t i;

                if (b->origin != BAN_ORIGIN_AUTO ||
                    (n_recent == top && b->created_usec <= recent[n_recent - 1]->created_usec))
                        continue;
                i = n_recent < top ? n_recent++ : n_recent - 1;
                for (; i > 0 && recent[i - 1]->created_usec < b->created_usec; i--)
                        recent[i] = recent[i - 1];
                recent[i] = b;
        }
        if (top > 0)
                (void) kernel_walk(s, summary_visit, &x);

        by_origin = json_object();
        dropping = json_array();
        auto_bans = json_array();
        o = json_pack("{s:I, s:o, s:o, s:o}", "total", (json_int_t) s->n_bans,
                      "by_origin", by_origin, "top_by_drops", dropping,
                      "recent_auto_bans", auto_bans);
        if (!o)
                return NULL;
        for (unsigned i = BAN_ORIGIN_MANUAL; i < _BAN_ORIGIN_MAX; i++)
                json_object_set_new(by_origin, origin_names[i], json_integer((json_int_t) origins[i]));
        for (size_t i = 0; i < x.n; i++) {
                const Ban *b = store_find(s, &hits[i].cidr);
                char a[CIDR_STRING_MAX];
                json_t *e;

                if (!b)
                        continue; /* in the kernel only, not yet recorded */
                e = summary_ban(b, cidr_to_string(true, &b->cidr, a));
                if (!e)
                        continue;
                json_object_set_new(e, "packets_dropped", json_integer((json_int_t) hits[i].packets));
                json_object_set_new(e, "bytes_dropped", json_integer((json_int_t) hits[i].bytes));
                json_array_append_new(dropping, e);
        }
        for (size_t i = 0; i < n_recent; i++) {
                const Ban *b = recent[i];
                char a[CIDR_STRING_MAX];
                json_t *e = summary_ban(b, cidr_to_string(true, &b->cidr, a));

                if (!e)
                        continue;
                json_object_set_new(e, "seconds_ago",
                                    json_integer((json_int_t) (now > b->created_usec
                                                               ? (now - b->created_usec) / USEC_PER_SEC
                                                               : 0)));
                json_array_append_new(auto_bans, e);
        }
        return o;
}
