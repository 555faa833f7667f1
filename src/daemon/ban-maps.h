/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "guard-abi.h"

/*
 * The kernel side of bans: the maps every link's program shares (guard.h, "Bans"), opened
 * from <bpffs-root>/:bans/ or created and pinned there. The pins outlive the daemon, so the
 * bans keep being enforced while it is down and after it restarts. Only map work lives here;
 * what a ban means to the daemon (ids, reasons, persistence, signals) lives in bans.c.
 */
typedef struct BanMaps {
        int v4_fd, v6_fd;         /* exact bans: hash __u32 / struct ps_ban6_key -> ps_ban */
        int cidr4_fd, cidr6_fd;   /* LPM tries ps_lpm4_key / ps_lpm6_key -> ps_ban */
        int allow4_fd, allow6_fd; /* LPM tries -> struct ps_allow */
        int presence_fd;          /* array[2] struct ps_ban_presence */
        int config_fd;            /* array[1] struct ps_ban_config */
        int offenders_fd;         /* LRU struct ps_ban_src_key -> struct ps_ban_offender */
        int sources_fd;           /* LRU struct ps_ban_src_key -> struct ps_ban_src_state */
        int patterns_fd;          /* hash struct ps_url_key -> struct ps_url_pattern */
        int events_fd;            /* ring buffer of struct ps_ban_event */
        uint32_t max_v4, max_v6;  /* capacities of the exact tables */
        bool created;             /* some map was created anew (none pinned, or another
                                   * layout or size): the daemon must put its bans back */
} BanMaps;

#define BAN_MAPS_INIT                                                                        \
        ((BanMaps) { .v4_fd = -1, .v6_fd = -1, .cidr4_fd = -1, .cidr6_fd = -1,                 \
                     .allow4_fd = -1, .allow6_fd = -1, .presence_fd = -1, .config_fd = -1,     \
                     .offenders_fd = -1, .sources_fd = -1, .patterns_fd = -1,                  \
                     .events_fd = -1 })

/* Opens or creates the maps in <bpffs_root>/:bans; max_v4/max_v6 size the exact tables
 * (0: the defaults). A pinned table of another size is replaced by an empty one (created). */
int ban_maps_open(BanMaps *m, const char *bpffs_root, uint32_t max_v4, uint32_t max_v6,
                  char **ret_error);
void ban_maps_close(BanMaps *m);
/* Removes the pins (the maps live on while a program or fd holds them). */
int ban_maps_unpin(const char *bpffs_root);

/*
 * One ban in the kernel: family PS_FAMILY_IPV4/6, addr in network order (IPv4 in word 0),
 * prefixlen 0..32/128; a full-length prefix goes to the exact hash, others to the trie (bits
 * past the prefix are cleared). v->family and v->prefixlen are set from the arguments.
 * flags: BPF_ANY / BPF_NOEXIST / BPF_EXIST. -E2BIG or -ENOSPC when the table is full.
 */
int ban_maps_insert(BanMaps *m, uint8_t family, const uint32_t addr[4], uint8_t prefixlen,
                    const struct ps_ban *v, uint64_t flags);
/* Exactly that entry (not what covers it). -ENOENT if absent. */
int ban_maps_lookup(BanMaps *m, uint8_t family, const uint32_t addr[4], uint8_t prefixlen,
                    struct ps_ban *ret);
int ban_maps_delete(BanMaps *m, uint8_t family, const uint32_t addr[4], uint8_t prefixlen);

/* The allowlist, same conventions. */
int ban_maps_allow_add(BanMaps *m, uint8_t family, const uint32_t addr[4], uint8_t prefixlen,
                       uint32_t id);
int ban_maps_allow_remove(BanMaps *m, uint8_t family, const uint32_t addr[4],
                          uint8_t prefixlen);

/* Counts the entries of every ban table and writes the daemon's entry of ban_presence (call
 * after removing entries, and after recording a kernel-made CIDR ban): an empty table is no
 * longer looked up per packet. Inserting through ban_maps_insert() / ban_maps_allow_add()
 * raises the table's count first by itself. */
int ban_maps_update_presence(BanMaps *m);
/* Raises the count of an exact table in ban_presence: call before inserting into it other
 * than through ban_maps_insert() (a batch update of m->v4_fd / m->v6_fd). */
int ban_maps_presence_raise_exact(BanMaps *m, uint8_t family);

/* The policy configuration (whole struct). */
int ban_maps_set_config(BanMaps *m, const struct ps_ban_config *c);
int ban_maps_get_config(BanMaps *m, struct ps_ban_config *ret);

/* URL patterns: bytes of length 1..PS_URL_PATTERN_MAX. ban_maps_set_config() must then carry
 * the url_lengths bits; ban_maps_url_lengths() computes them from the table. */
int ban_maps_pattern_add(BanMaps *m, const char *bytes, size_t len, uint32_t id);
int ban_maps_pattern_remove(BanMaps *m, const char *bytes, size_t len);
int ban_maps_url_lengths(BanMaps *m, uint64_t *ret);

/* Repeat offenders the kernel sees. */
int ban_maps_offender_set(BanMaps *m, const struct ps_ban_src_key *k,
                          const struct ps_ban_offender *v);

/* Cuts an address to prefixlen bits (network order words, IPv4 in word 0). */
void ban_addr_mask(uint8_t family, uint32_t addr[4], uint8_t prefixlen);
