/* SPDX-License-Identifier: MIT */
#include <bpf/bpf.h>
#include <netinet/in.h>

#include "flows.h"
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

int flows_foreach(int map_fd, size_t key_size, size_t value_size, flows_visit_t visit,
                  void *userdata, uint64_t *ret_count) {
        _cleanup_free_ void *keys = NULL, *values = NULL;
        uint64_t cursor = 0, total = 0;
        bool first = true;
        int r;

        keys = malloc(FLOWS_BATCH * key_size);
        values = malloc(FLOWS_BATCH * value_size);
        if (!keys || !values)
                return -ENOMEM;

        for (;;) {
                uint32_t n = FLOWS_BATCH;
                int more;

                more = lookup_batch(map_fd, first, &cursor, keys, values, &n);
                if (more < 0)
                        return more;
                first = false;
                for (uint32_t i = 0; i < n; i++) {
                        r = visit((uint8_t *) keys + i * key_size,
                                  (uint8_t *) values + i * value_size, userdata);
                        if (r < 0)
                                return r;
                }
                total += n;
                if (!more)
                        break;
        }
        if (ret_count)
                *ret_count = total;
        return 0;
}

int flow_sweeper_init(FlowSweeper *s, size_t key_size, size_t value_size) {
        *s = (FlowSweeper) { .key_size = key_size, .value_size = value_size };
        s->keys = malloc(FLOWS_BATCH * key_size);
        s->values = malloc(FLOWS_BATCH * value_size);
        if (!s->keys || !s->values) {
                flow_sweeper_done(s);
                return -ENOMEM;
        }
        return 0;
}

void flow_sweeper_done(FlowSweeper *s) {
        s->keys = mfree(s->keys);
        s->values = mfree(s->values);
}

int flow_sweeper_step(FlowSweeper *s, int map_fd, size_t budget, uint64_t now_ns,
                      flows_expired_t is_expired, void *userdata, bool *ret_pass_done) {
        _cleanup_free_ void *check = malloc(s->value_size);
        size_t examined = 0;
        int deleted = 0;

        if (!check)
                return -ENOMEM;
        *ret_pass_done = false;
        while (examined < budget) {
                uint32_t n = (uint32_t) MIN((size_t) FLOWS_BATCH, budget - examined);
                int more;

                /* A bucket larger than the slice would give ENOSPC: never ask for fewer than
                 * a reasonable bucket. */
                n = MAX(n, 256u);
                more = lookup_batch(map_fd, !s->started, &s->cursor, s->keys, s->values, &n);
                if (more < 0)
                        return more;
                s->started = true;
                for (uint32_t i = 0; i < n; i++) {
                        const void *k = (uint8_t *) s->keys + i * s->key_size;
                        const void *v = (uint8_t *) s->values + i * s->value_size;

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
                examined += n;
                s->seen += n;
                if (!more) {
                        s->started = false;
                        s->last_count = s->seen >= (uint64_t) deleted ? s->seen : 0;
                        s->have_count = true;
                        s->seen = 0;
                        *ret_pass_done = true;
                        break;
                }
        }
        s->expired_total += (uint64_t) deleted;
        return deleted;
}

bool flow_is_expired(const struct ps_flow_key *k, const struct ps_flow_value *v, uint64_t now_ns,
                     uint64_t idle_ns, uint64_t closed_ns) {
        uint64_t timeout = idle_ns;

        if (k->proto == IPPROTO_TCP && (v->state == PS_STATE_FIN || v->state == PS_STATE_RST))
                timeout = MIN(idle_ns, closed_ns);
        return v->last_seen < now_ns && now_ns - v->last_seen > timeout;
}
