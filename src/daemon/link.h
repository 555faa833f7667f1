/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "ban-maps.h"
#include "bpf-maps.h"
#include "conf.h"
#include "filters.h"
#include "flow-rank.h"
#include "bus-names.h"
#include "guard-abi.h"
#include "panic.h"

/* What a link takes from the daemon: where to pin, the table sizes and the parse policy, and
 * the rule and ban maps every link's program shares. Borrowed. */
typedef struct LinkSetup {
        const char *bpffs_root;
        const Config *config;
        FilterStore *filters;
        BanMaps *bans; /* the pinned ban maps; NULL: the program gets private, empty ones */
        const Panic *panic; /* the pinned panic maps; NULL: private ones (panic mode off) */
} LinkSetup;

typedef enum LinkMode {
        LINK_MODE_AUTO,    /* native when the driver supports it, else generic */
        LINK_MODE_NATIVE,  /* driver mode (XDP_FLAGS_DRV_MODE) */
        LINK_MODE_GENERIC, /* skb mode (XDP_FLAGS_SKB_MODE) */
} LinkMode;

/*
 * One guarded interface: its own instance of the XDP program with its own maps, pinned under
 * <bpffs-root>/<ifname>/ so that the program stays attached and counting when the daemon exits.
 */
typedef struct Link {
        LinkSetup setup;
        char *name;
        int ifindex;
        uint32_t mode; /* PS_MODE_NATIVE or PS_MODE_GENERIC: what the kernel reports */
        uint64_t attached_since_usec; /* CLOCK_REALTIME */
        uint32_t prog_id;
        char *pin_dir;
        char *object_path;

        /* icmp_fd: the ICMPv6 table (icmp_flows); icmp4_fd: the ICMP one (icmp4_flows). */
        int link_fd, prog_fd, flows_fd, icmp_fd, icmp4_fd, stats_fd, icmp_stats_fd, meta_fd;
        uint32_t flow_table_size, icmp_table_size;
        uint64_t kernel_memory; /* bytes the kernel charges for the maps pinned for it */
        bool upgraded; /* adoption swapped in this build's program */

        struct ps_stats stats; /* summed over CPUs at the last poll */
        struct ps_stats prev;
        uint64_t stats_time_ns, prev_time_ns; /* CLOCK_MONOTONIC */
        double pps, bps;

        BpfMapSweeper flow_sweeper, icmp_sweeper, icmp4_sweeper;
        FlowRank flow_rank; /* the top flows as of the last complete sweep pass */
        uint64_t flow_count, icmp_count; /* as of the last full read of each table */
        uint64_t icmp6_count, icmp4_count; /* icmp_count's two tables, apart */
} Link;

int link_mode_from_string(const char *s, LinkMode *ret);
const char *link_mode_to_string(uint32_t ps_mode);

/* Errors: -ENODEV no such interface, -EEXIST pins already there, -EBUSY another XDP program,
 * -EOPNOTSUPP native mode unsupported; *ret_error says it in words. */
int link_attach(const LinkSetup *setup, const char *ifname, LinkMode mode, Link **ret, char **ret_error);
/* Takes over what a previous daemon pinned in <bpffs-root>/<ifname>/. -ESTALE: the pins are
 * stale (interface gone or ABI changed) and were removed. */
int link_adopt(const LinkSetup *setup, const char *ifname, Link **ret, char **ret_error);
/* Removes the pins and closes everything: the kernel detaches the program. */
void link_detach(Link *l);
Link *link_free(Link *l);

/* Reads the per-CPU counters, updates rates; returns -ENOLINK if the interface went away. */
int link_poll(Link *l, uint64_t now_ns);
int link_read_stats(Link *l, struct ps_stats *ret);
int link_program_stats(Link *l, uint64_t *ret_run_time_ns, uint64_t *ret_run_count);

void ps_stats_add(struct ps_stats *sum, const struct ps_stats *s);

/* The kernel's own figure for a BPF object: "memlock" in /proc/self/fdinfo/FD. */
int bpf_fd_memlock(int fd, uint64_t *ret);
