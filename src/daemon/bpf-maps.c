/* SPDX-License-Identifier: MIT */
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "bpf-maps.h"
#include "util.h"

/*
 * One BPF_MAP_LOOKUP_BATCH call. A hash bucket that holds more entries than the buffer makes
 * the kernel answer ENOSPC; our buffers are far larger than any sane bucket, but a degenerate
 * table is handled by reporting the error rather than looping.
 */
static int lookup_batch(int fd, bool first, uint64_t *cursor, void *keys, void *values,
                        uint32_t *count) {
        LIBBPF_OPTS(bpf_map_batch_opts, opts);
        int r;

        r = bpf_map_lookup_batch(fd, first ? NULL : cursor, cursor, keys, values, count, &opts);
        if (r < 0) {
                r = -errno;
                if (r == -ENOENT) /* end of table; *count holds the last entries */
                        return 0;
                return r;
        }
        return 1;
}

struct walk_each {
        size_t key_size, value_size;
        bpf_map_visit_t visit;
        void *userdata;
};

static int visit_each(const void *keys, const void *values, size_t n, void *userdata) {
        struct walk_each *w = userdata;

        for (size_t i = 0; i < n; i++) {
                int r = w->visit((const uint8_t *) keys + i * w->key_size,
                                 (const uint8_t *) values + i * w->value_size, w->userdata);

                if (r < 0)
                        return r;
        }
        return 0;
}

int bpf_map_walk(int map_fd, size_t key_size, size_t value_size, bpf_map_visit_t visit,
                 void *userdata, uint64_t *ret_count) {
        struct walk_each w = { key_size, value_size, visit, userdata };

        return bpf_map_walk_batches(map_fd, key_size, value_size, visit_each, &w, ret_count);
}

int bpf_map_walk_batches(int map_fd, size_t key_size, size_t value_size,
                         bpf_map_batch_visit_t visit, void *userdata, uint64_t *ret_count) {
        _cleanup_free_ void *keys = NULL, *values = NULL;
        uint64_t cursor = 0, total = 0;
        bool first = true;
        int r;

        keys = malloc(BPF_MAP_BATCH * key_size);
        values = malloc(BPF_MAP_BATCH * value_size);
        if (!keys || !values)
                return -ENOMEM;

        for (;;) {
                uint32_t n = BPF_MAP_BATCH;
                int more;

                more = lookup_batch(map_fd, first, &cursor, keys, values, &n);
                if (more < 0)
                        return more;
                first = false;
                r = visit(keys, values, n, userdata);
                if (r < 0)
                        return r;
                total += n;
                if (!more)
                        break;
        }
        if (ret_count)
                *ret_count = total;
        return 0;
}

int bpf_map_sweeper_init(BpfMapSweeper *s, size_t key_size, size_t value_size) {
        *s = (BpfMapSweeper) { .key_size = key_size, .value_size = value_size };
        s->keys = malloc(BPF_MAP_BATCH * key_size);
        s->values = malloc(BPF_MAP_BATCH * value_size);
        if (!s->keys || !s->values) {
                bpf_map_sweeper_done(s);
                return -ENOMEM;
        }
        return 0;
}

void bpf_map_sweeper_done(BpfMapSweeper *s) {
        s->keys = mfree(s->keys);
        s->values = mfree(s->values);
}

int bpf_map_walk_step(BpfMapSweeper *s, int map_fd, size_t budget, bpf_map_batch_visit_t visit,
                      void *userdata, bool *ret_pass_done) {
        size_t examined = 0;

        *ret_pass_done = false;
        while (examined < budget) {
                uint32_t n = BPF_MAP_BATCH;
                int more, r;

                more = lookup_batch(map_fd, !s->started, &s->cursor, s->keys, s->values, &n);
                if (more < 0)
                        return more;
                s->started = true;
                r = visit(s->keys, s->values, n, userdata);
                if (r < 0)
                        return r;
                examined += n;
                if (!more) {
                        s->started = false;
                        *ret_pass_done = true;
                        break;
                }
        }
        return 0;
}

int bpf_map_sweeper_step(BpfMapSweeper *s, int map_fd, size_t budget, uint64_t now_ns,
                         bpf_map_expired_t is_expired, void *userdata, bool *ret_pass_done) {
        _cleanup_free_ void *check = malloc(s->value_size);
        size_t examined = 0;
        int deleted = 0;

        if (!check)
                return -ENOMEM;
        *ret_pass_done = false;
        while (examined < budget) {
                if (s->batch_next >= s->batch_n) {
                        uint32_t n = (uint32_t) MIN((size_t) BPF_MAP_BATCH, budget - examined);
                        int more;

                        /* A bucket larger than the slice would give ENOSPC: never ask for fewer
                         * than a reasonable bucket. */
                        n = MAX(n, 256u);
                        more = lookup_batch(map_fd, !s->started, &s->cursor, s->keys, s->values,
                                            &n);
                        if (more < 0)
                                return more;
                        s->started = true;
                        s->batch_n = n;
                        s->batch_next = 0;
                        s->batch_more = more;
                }
                for (; s->batch_next < s->batch_n; s->batch_next++) {
                        const void *k = (uint8_t *) s->keys + s->batch_next * s->key_size;
                        const void *v = (uint8_t *) s->values + s->batch_next * s->value_size;

                        if (deleted >= (int) BPF_MAP_SWEEP_DELETES_MAX)
                                goto out;
                        examined++;
                        s->seen++;
                        if (!is_expired(k, v, now_ns, userdata))
                                continue;
                        /* Re-read right before deleting: a packet may have refreshed the entry
                         * since the batch was copied. */
                        if (bpf_map_lookup_elem(map_fd, k, check) < 0 ||
                            !is_expired(k, check, now_ns, userdata))
                                continue;
                        if (bpf_map_delete_elem(map_fd, k) == 0)
                                deleted++;
                }
                if (!s->batch_more) {
                        s->started = false;
                        s->batch_n = s->batch_next = 0;
                        s->last_count = s->seen >= (uint64_t) deleted ? s->seen : 0;
                        s->have_count = true;
                        s->seen = 0;
                        *ret_pass_done = true;
                        break;
                }
        }
out:
        s->expired_total += (uint64_t) deleted;
        return deleted;
}

int bpf_possible_cpus(void) {
        static int ncpus = 0;

        if (ncpus <= 0)
                ncpus = libbpf_num_possible_cpus();
        return ncpus > 0 ? ncpus : -EINVAL;
}

int bpf_map_sum_percpu(int map_fd, const void *key, size_t value_size,
                       void (*add)(void *sum, const void *cpu_value), void *sum) {
        _cleanup_free_ void *v = NULL;
        int ncpus = bpf_possible_cpus();

        assert(key);
        assert(add);
        assert(sum);
        if (ncpus < 0)
                return ncpus;
        if (map_fd < 0)
                return -EBADF;
        v = calloc((size_t) ncpus, value_size);
        if (!v)
                return -ENOMEM;
        if (bpf_map_lookup_elem(map_fd, key, v) < 0)
                return -errno;
        for (int c = 0; c < ncpus; c++)
                add(sum, (const uint8_t *) v + (size_t) c * value_size);
        return 0;
}

int bpf_map_zero_percpu(int map_fd, const void *key, size_t value_size) {
        _cleanup_free_ void *z = NULL;
        int ncpus = bpf_possible_cpus();

        assert(key);
        if (ncpus < 0)
                return ncpus;
        z = calloc((size_t) ncpus, value_size);
        if (!z)
                return -ENOMEM;
        return bpf_map_update_elem(map_fd, key, z, BPF_ANY) < 0 ? -errno : 0;
}

int bpf_map_zero_percpu_keys(int map_fd, const uint32_t *keys, size_t n, size_t value_size) {
        _cleanup_free_ void *z = NULL;
        int ncpus = bpf_possible_cpus(), r = 0;
        size_t chunk;

        assert(keys || n == 0);
        if (ncpus < 0)
                return ncpus;
        if (n == 0)
                return 0;
        /* Zeroes for a chunk of keys, at most 1 MiB of them. */
        chunk = MAX((size_t) 1, ((size_t) 1 << 20) / ((size_t) ncpus * value_size));
        chunk = MIN(chunk, n);
        z = calloc(chunk * (size_t) ncpus, value_size);
        if (!z)
                return -ENOMEM;
        for (size_t done = 0; done < n;) {
                LIBBPF_OPTS(bpf_map_batch_opts, opts, .elem_flags = BPF_ANY);
                size_t len = MIN(chunk, n - done);
                uint32_t count = (uint32_t) len;

                /* A kernel without batch updates, or one that stopped part way (what `count`
                 * then says is not reliable on every kernel): the chunk again, key by key;
                 * zeroing twice does no harm. */
                if (bpf_map_update_batch(map_fd, keys + done, z, &count, &opts) < 0)
                        for (size_t k = done; k < done + len; k++)
                                if (bpf_map_update_elem(map_fd, &keys[k], z, BPF_ANY) < 0 &&
                                    r == 0)
                                        r = -errno;
                done += len;
        }
        return r;
}

int bpf_map_pin_or_create(const char *dir, const BpfMapSpec *spec) {
        _cleanup_free_ char *path = NULL;
        struct bpf_map_info info = {};
        uint32_t len = sizeof info;
        int fd;

        assert(dir);
        assert(spec);
        LIBBPF_OPTS(bpf_map_create_opts, opts, .map_flags = spec->flags);
        path = strjoin_path(dir, spec->name);
        if (!path)
                return -ENOMEM;
        fd = bpf_obj_get(path);
        if (fd >= 0) {
                if (bpf_obj_get_info_by_fd(fd, &info, &len) == 0 &&
                    info.type == (uint32_t) spec->type && info.key_size == spec->key_size &&
                    info.value_size == spec->value_size && info.max_entries == spec->max_entries)
                        return fd;
                /* Another layout (an older ABI): start a fresh map; programs get it on load. */
                close(fd);
                (void) unlink(path);
        }
        fd = bpf_map_create(spec->type, spec->name, spec->key_size, spec->value_size,
                            spec->max_entries, &opts);
        if (fd < 0)
                return -errno;
        if (bpf_obj_pin(fd, path) < 0) {
                int r = -errno;

                close(fd);
                return r;
        }
        return fd;
}
