/* SPDX-License-Identifier: MIT */
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <endian.h>
#include <stdio.h>
#include <sys/stat.h>

#include "ban-maps.h"
#include "bpf-maps.h"
#include "util.h"

enum {
        MAP_V4, MAP_V6, MAP_CIDR4, MAP_CIDR6, MAP_ALLOW4, MAP_ALLOW6, MAP_PRESENCE, MAP_CONFIG,
        MAP_OFFENDERS, MAP_SOURCES, MAP_PATTERNS, MAP_EVENTS, _MAP_MAX,
};

/* In the order of the enum; the exact tables' sizes are filled in at open. The names are the
 * program's map names and the pin names. */
static const BpfMapSpec ban_map_specs[_MAP_MAX] = {
        [MAP_V4] = { "ban_v4", BPF_MAP_TYPE_HASH, 4, sizeof(struct ps_ban), 0,
                     BPF_F_NO_PREALLOC },
        [MAP_V6] = { "ban_v6", BPF_MAP_TYPE_HASH, sizeof(struct ps_ban6_key),
                     sizeof(struct ps_ban), 0, BPF_F_NO_PREALLOC },
        [MAP_CIDR4] = { "ban_cidr4", BPF_MAP_TYPE_LPM_TRIE, sizeof(struct ps_lpm4_key),
                        sizeof(struct ps_ban), PS_BANS_CIDR_MAX, BPF_F_NO_PREALLOC },
        [MAP_CIDR6] = { "ban_cidr6", BPF_MAP_TYPE_LPM_TRIE, sizeof(struct ps_lpm6_key),
                        sizeof(struct ps_ban), PS_BANS_CIDR_MAX, BPF_F_NO_PREALLOC },
        [MAP_ALLOW4] = { "ban_allow4", BPF_MAP_TYPE_LPM_TRIE, sizeof(struct ps_lpm4_key),
                         sizeof(struct ps_allow), PS_BANS_ALLOW_MAX, BPF_F_NO_PREALLOC },
        [MAP_ALLOW6] = { "ban_allow6", BPF_MAP_TYPE_LPM_TRIE, sizeof(struct ps_lpm6_key),
                         sizeof(struct ps_allow), PS_BANS_ALLOW_MAX, BPF_F_NO_PREALLOC },
        [MAP_PRESENCE] = { "ban_presence", BPF_MAP_TYPE_ARRAY, 4,
                           sizeof(struct ps_ban_presence), 2, 0 },
        [MAP_CONFIG] = { "ban_config", BPF_MAP_TYPE_ARRAY, 4, sizeof(struct ps_ban_config), 1,
                         0 },
        [MAP_OFFENDERS] = { "ban_offenders", BPF_MAP_TYPE_LRU_HASH,
                            sizeof(struct ps_ban_src_key), sizeof(struct ps_ban_offender),
                            PS_BANS_OFFENDERS, 0 },
        [MAP_SOURCES] = { "ban_sources", BPF_MAP_TYPE_LRU_HASH, sizeof(struct ps_ban_src_key),
                          sizeof(struct ps_ban_src_state), PS_BANS_SOURCES, 0 },
        [MAP_PATTERNS] = { "ban_url_patterns", BPF_MAP_TYPE_HASH, sizeof(struct ps_url_key),
                           sizeof(struct ps_url_pattern), PS_URL_PATTERNS_MAX, 0 },
        [MAP_EVENTS] = { "ban_events", BPF_MAP_TYPE_RINGBUF, 0, 0, PS_BANS_EVENTS_RING, 0 },
};

static int *map_fd(BanMaps *m, size_t i) {
        int *fds[_MAP_MAX] = {
                &m->v4_fd, &m->v6_fd, &m->cidr4_fd, &m->cidr6_fd, &m->allow4_fd,
                &m->allow6_fd, &m->presence_fd, &m->config_fd, &m->offenders_fd,
                &m->sources_fd, &m->patterns_fd, &m->events_fd,
        };

        return fds[i];
}

static bool map_pinned(const char *dir, const BpfMapSpec *spec) {
        _cleanup_free_ char *path = strjoin_path(dir, spec->name);
        struct bpf_map_info info = {};
        uint32_t len = sizeof info;
        _cleanup_close_ int fd = -1;

        if (!path)
                return false;
        fd = bpf_obj_get(path);
        return fd >= 0 && bpf_obj_get_info_by_fd(fd, &info, &len) == 0 &&
               info.type == (uint32_t) spec->type && info.key_size == spec->key_size &&
               info.value_size == spec->value_size && info.max_entries == spec->max_entries;
}

int ban_maps_open(BanMaps *m, const char *bpffs_root, uint32_t max_v4, uint32_t max_v6,
                  char **ret_error) {
        _cleanup_free_ char *dir = NULL;
        int r;

        assert(m);
        assert(bpffs_root);
        *m = BAN_MAPS_INIT;
        m->max_v4 = max_v4 ? max_v4 : PS_BANS_V4_DEFAULT;
        m->max_v6 = max_v6 ? max_v6 : PS_BANS_V6_DEFAULT;
        dir = strjoin_path(bpffs_root, PS_BANS_PIN_DIR);
        if (!dir)
                return -ENOMEM;
        r = mkdir_p(dir, 0700);
        if (r < 0)
                return error_setf(ret_error, r, "cannot create %s: %s (is bpffs mounted?)", dir,
                                  strerror(-r));
        for (size_t i = 0; i < _MAP_MAX; i++) {
                BpfMapSpec spec = ban_map_specs[i];
                int fd;

                if (i == MAP_V4)
                        spec.max_entries = m->max_v4;
                else if (i == MAP_V6)
                        spec.max_entries = m->max_v6;
                /* A map of another shape or size is replaced by an empty one: the daemon
                 * puts its bans back from its state. */
                if (!map_pinned(dir, &spec))
                        m->created = true;
                fd = bpf_map_pin_or_create(dir, &spec);
                if (fd < 0) {
                        r = fd;
                        (void) error_setf(ret_error, 0,
                                          "cannot open or create the map %s/%s: %s", dir,
                                          spec.name, strerror(-r));
                        ban_maps_close(m);
                        return r;
                }
                *map_fd(m, i) = fd;
        }
        return 0;
}

void ban_maps_close(BanMaps *m) {
        if (!m)
                return;
        for (size_t i = 0; i < _MAP_MAX; i++)
                *map_fd(m, i) = safe_close(*map_fd(m, i));
}

int ban_maps_unpin(const char *bpffs_root) {
        _cleanup_free_ char *dir = strjoin_path(bpffs_root, PS_BANS_PIN_DIR);

        if (!dir)
                return -ENOMEM;
        for (size_t i = 0; i < _MAP_MAX; i++) {
                _cleanup_free_ char *p = strjoin_path(dir, ban_map_specs[i].name);

                if (p)
                        (void) unlink(p);
        }
        return rmdir(dir) < 0 && errno != ENOENT ? -errno : 0;
}

void ban_addr_mask(uint8_t family, uint32_t addr[4], uint8_t prefixlen) {
        unsigned words = family == PS_FAMILY_IPV4 ? 1 : 4;

        for (unsigned i = 0; i < 4; i++) {
                unsigned bits = i >= words ? 0 : prefixlen >= (i + 1) * 32 ? 32 :
                                prefixlen <= i * 32 ? 0 : prefixlen - i * 32;
                uint32_t mask = bits == 0 ? 0 : bits == 32 ? UINT32_MAX :
                                ~(UINT32_MAX >> bits);

                /* The mask is built in host order and the address is in network order. */
                addr[i] = htobe32(be32toh(addr[i]) & mask);
        }
}

/* The table and the key of an entry: the exact hash for a full-length prefix, the trie for
 * the rest. Returns the fd, or -EINVAL for a bad family or prefix. */
static int entry_of(BanMaps *m, bool allow, uint8_t family, const uint32_t addr[4],
                    uint8_t prefixlen, void *key) {
        uint32_t a[4];

        if (family != PS_FAMILY_IPV4 && family != PS_FAMILY_IPV6)
                return -EINVAL;
        if (prefixlen > (family == PS_FAMILY_IPV4 ? 32 : 128))
                return -EINVAL;
        memcpy(a, addr, sizeof a);
        ban_addr_mask(family, a, prefixlen);
        if (family == PS_FAMILY_IPV4) {
                if (!allow && prefixlen == 32) {
                        memcpy(key, &a[0], 4);
                        return m->v4_fd;
                }
                *(struct ps_lpm4_key *) key = (struct ps_lpm4_key) { prefixlen, a[0] };
                return allow ? m->allow4_fd : m->cidr4_fd;
        }
        if (!allow && prefixlen == 128) {
                memcpy(key, a, 16);
                return m->v6_fd;
        }
        *(struct ps_lpm6_key *) key = (struct ps_lpm6_key) { .prefixlen = prefixlen };
        memcpy(((struct ps_lpm6_key *) key)->addr, a, sizeof a);
        return allow ? m->allow6_fd : m->cidr6_fd;
}

/* The daemon's count of the table behind fd in ban_presence, or NULL for another map. */
static uint32_t *presence_count(BanMaps *m, int fd, struct ps_ban_presence *p) {
        return fd == m->v4_fd ? &p->exact4 : fd == m->v6_fd ? &p->exact6 :
               fd == m->cidr4_fd ? &p->cidr4 : fd == m->cidr6_fd ? &p->cidr6 :
               fd == m->allow4_fd ? &p->allow4 : fd == m->allow6_fd ? &p->allow6 : NULL;
}

/* Makes the program look up the table behind fd before an entry goes in: an entry is never
 * in a table the program skips. Only the daemon writes its own entry of ban_presence, so
 * reading and writing it back loses nothing. */
static int presence_raise(BanMaps *m, int fd) {
        struct ps_ban_presence p;
        uint32_t key = PS_BAN_PRESENCE_DAEMON, *count;

        if (bpf_map_lookup_elem(m->presence_fd, &key, &p) < 0)
                return -errno;
        count = presence_count(m, fd, &p);
        if (!count || *count)
                return 0;
        *count = 1;
        return bpf_map_update_elem(m->presence_fd, &key, &p, BPF_ANY) < 0 ? -errno : 0;
}

int ban_maps_presence_raise_exact(BanMaps *m, uint8_t family) {
        assert(m);
        return presence_raise(m, family == PS_FAMILY_IPV4 ? m->v4_fd : m->v6_fd);
}

int ban_maps_insert(BanMaps *m, uint8_t family, const uint32_t addr[4], uint8_t prefixlen,
                    const struct ps_ban *v, uint64_t flags) {
        uint8_t key[sizeof(struct ps_lpm6_key)];
        struct ps_ban val;
        int fd, r;

        assert(m);
        assert(addr);
        assert(v);
        fd = entry_of(m, false, family, addr, prefixlen, key);
        if (fd < 0)
                return fd;
        r = presence_raise(m, fd);
        if (r < 0)
                return r;
        val = *v;
        val.family = family;
        val.prefixlen = prefixlen;
        return bpf_map_update_elem(fd, key, &val, flags) < 0 ? -errno : 0;
}

int ban_maps_lookup(BanMaps *m, uint8_t family, const uint32_t addr[4], uint8_t prefixlen,
                    struct ps_ban *ret) {
        uint8_t key[sizeof(struct ps_lpm6_key)];
        struct ps_ban val;
        int fd;

        assert(m);
        assert(addr);
        fd = entry_of(m, false, family, addr, prefixlen, key);
        if (fd < 0)
                return fd;
        if (bpf_map_lookup_elem(fd, key, &val) < 0)
                return -errno;
        /* A trie answers with the longest prefix covering the key: only that entry counts. */
        if (val.prefixlen != prefixlen)
                return -ENOENT;
        if (ret)
                *ret = val;
        return 0;
}

int ban_maps_delete(BanMaps *m, uint8_t family, const uint32_t addr[4], uint8_t prefixlen) {
        uint8_t key[sizeof(struct ps_lpm6_key)];
        int fd;

        assert(m);
        assert(addr);
        fd = entry_of(m, false, family, addr, prefixlen, key);
        if (fd < 0)
                return fd;
        return bpf_map_delete_elem(fd, key) < 0 ? -errno : 0;
}

int ban_maps_allow_add(BanMaps *m, uint8_t family, const uint32_t addr[4], uint8_t prefixlen,
                       uint32_t id) {
        uint8_t key[sizeof(struct ps_lpm6_key)];
        struct ps_allow val = { .id = id, .prefixlen = prefixlen };
        int fd, r;

        assert(m);
        assert(addr);
        fd = entry_of(m, true, family, addr, prefixlen, key);
        if (fd < 0)
                return fd;
        r = presence_raise(m, fd);
        if (r < 0)
                return r;
        return bpf_map_update_elem(fd, key, &val, BPF_ANY) < 0 ? -errno : 0;
}

int ban_maps_allow_remove(BanMaps *m, uint8_t family, const uint32_t addr[4],
                          uint8_t prefixlen) {
        uint8_t key[sizeof(struct ps_lpm6_key)];
        int fd;

        assert(m);
        assert(addr);
        fd = entry_of(m, true, family, addr, prefixlen, key);
        if (fd < 0)
                return fd;
        return bpf_map_delete_elem(fd, key) < 0 ? -errno : 0;
}

/* Entries of a table, counted up to `enough` (presence needs only zero or not). */
static int count_keys(int fd, size_t key_size, uint32_t enough, uint32_t *ret) {
        uint8_t key[sizeof(struct ps_lpm6_key)], next[sizeof(struct ps_lpm6_key)];
        uint32_t n = 0;
        void *prev = NULL;

        assert(key_size <= sizeof key);
        while (n < enough && bpf_map_get_next_key(fd, prev, next) == 0) {
                memcpy(key, next, key_size);
                prev = key;
                n++;
        }
        if (n < enough && errno != ENOENT)
                return -errno;
        *ret = n;
        return 0;
}

int ban_maps_update_presence(BanMaps *m) {
        struct ps_ban_presence p = {}, k = {};
        uint32_t key = PS_BAN_PRESENCE_KERNEL;
        int r;

        assert(m);
        /* The program's counts first, then the tables: a ban the program inserts after its
         * table was counted raised its count after this read, so the program keeps looking
         * that table up whatever the count below says (guard.h, struct ps_ban_presence). */
        if (bpf_map_lookup_elem(m->presence_fd, &key, &k) < 0)
                return -errno;
        p.kernel_cidr4 = k.cidr4;
        p.kernel_cidr6 = k.cidr6;
        p.kernel_exact4 = k.exact4;
        p.kernel_exact6 = k.exact6;
        /* Any non-zero value makes the program look the table up; exact counts are not
         * needed, and stopping at one keeps this cheap at any size. */
        if ((r = count_keys(m->v4_fd, sizeof(uint32_t), 1, &p.exact4)) < 0 ||
            (r = count_keys(m->v6_fd, sizeof(struct ps_ban6_key), 1, &p.exact6)) < 0 ||
            (r = count_keys(m->cidr4_fd, sizeof(struct ps_lpm4_key), 1, &p.cidr4)) < 0 ||
            (r = count_keys(m->cidr6_fd, sizeof(struct ps_lpm6_key), 1, &p.cidr6)) < 0 ||
            (r = count_keys(m->allow4_fd, sizeof(struct ps_lpm4_key), 1, &p.allow4)) < 0 ||
            (r = count_keys(m->allow6_fd, sizeof(struct ps_lpm6_key), 1, &p.allow6)) < 0)
                return r;
        key = PS_BAN_PRESENCE_DAEMON;
        return bpf_map_update_elem(m->presence_fd, &key, &p, BPF_ANY) < 0 ? -errno : 0;
}

int ban_maps_set_config(BanMaps *m, const struct ps_ban_config *c) {
        uint32_t zero = 0;

        assert(m);
        assert(c);
        return bpf_map_update_elem(m->config_fd, &zero, c, BPF_ANY) < 0 ? -errno : 0;
}

int ban_maps_get_config(BanMaps *m, struct ps_ban_config *ret) {
        uint32_t zero = 0;

        assert(m);
        assert(ret);
        return bpf_map_lookup_elem(m->config_fd, &zero, ret) < 0 ? -errno : 0;
}

static int url_key(const char *bytes, size_t len, struct ps_url_key *ret) {
        if (len == 0 || len > PS_URL_PATTERN_MAX)
                return -EINVAL;
        *ret = (struct ps_url_key) { .len = (uint32_t) len };
        memcpy(ret->bytes, bytes, len);
        return 0;
}

int ban_maps_pattern_add(BanMaps *m, const char *bytes, size_t len, uint32_t id) {
        struct ps_url_pattern v = { .id = id };
        struct ps_url_key k;
        int r;

        assert(m);
        assert(bytes);
        r = url_key(bytes, len, &k);
        if (r < 0)
                return r;
        return bpf_map_update_elem(m->patterns_fd, &k, &v, BPF_ANY) < 0 ? -errno : 0;
}

int ban_maps_pattern_remove(BanMaps *m, const char *bytes, size_t len) {
        struct ps_url_key k;
        int r;

        assert(m);
        assert(bytes);
        r = url_key(bytes, len, &k);
        if (r < 0)
                return r;
        return bpf_map_delete_elem(m->patterns_fd, &k) < 0 ? -errno : 0;
}

int ban_maps_url_lengths(BanMaps *m, uint64_t *ret) {
        struct ps_url_key key, next;
        uint64_t bits = 0;
        void *prev = NULL;

        assert(m);
        assert(ret);
        while (bpf_map_get_next_key(m->patterns_fd, prev, &next) == 0) {
                if (next.len >= 1 && next.len <= PS_URL_PATTERN_MAX)
                        bits |= UINT64_C(1) << (next.len - 1);
                key = next;
                prev = &key;
        }
        if (errno != ENOENT)
                return -errno;
        *ret = bits;
        return 0;
}

int ban_maps_offender_set(BanMaps *m, const struct ps_ban_src_key *k,
                          const struct ps_ban_offender *v) {
        assert(m);
        assert(k);
        assert(v);
        return bpf_map_update_elem(m->offenders_fd, k, v, BPF_ANY) < 0 ? -errno : 0;
}
