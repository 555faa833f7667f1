/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdint.h>

#include "addr.h"

#define CONFIG_MANAGEMENT_MAX 64

/* Settings from packetscope.conf(5). */
typedef struct Config {
        uint32_t flow_table_size;     /* [Guard] FlowTableSize= */
        uint32_t icmp_table_size;     /* [Guard] IcmpTableSize= */
        uint64_t poll_interval_usec;  /* [Guard] PollIntervalSec= */
        uint64_t idle_timeout_usec;   /* [Guard] IdleTimeoutSec= */
        uint64_t closed_timeout_usec; /* [Guard] ClosedTimeoutSec= */
        uint64_t sweep_period_usec;   /* [Guard] SweepPeriodSec= */
        uint32_t max_links;           /* [Guard] MaxLinks= */
        /* [Filters] ManagementAddresses=, ManagementPorts=: drop rules that would cut these
         * off are refused unless forced. */
        Cidr management[CONFIG_MANAGEMENT_MAX];
        uint32_t n_management;
        uint16_t management_ports[CONFIG_MANAGEMENT_MAX];
        uint32_t n_management_ports;
        /* [Filters] TinyFragments=, LongHeaderChains=: PS_POLICY_* bits for the XDP program
         * (guard.h); 0, the default, drops what the parser cannot classify whole. */
        uint32_t parse_policy;
        /* [Bans] MaxBansIPv4=, MaxBansIPv6=: the exact ban tables' capacities. */
        uint32_t bans_max_v4;
        uint32_t bans_max_v6;
        /* [Bans] Allowlist=: never banned, besides ManagementAddresses= and the list kept
         * over the bus (AllowlistAdd). */
        Cidr bans_allowlist[CONFIG_MANAGEMENT_MAX];
        uint32_t n_bans_allowlist;
} Config;

#define CONFIG_BANS_MIN 1024u
#define CONFIG_BANS_MAX (16u * 1024 * 1024)

#define CONFIG_FLOW_TABLE_MIN 1024u
#define CONFIG_FLOW_TABLE_MAX (64u * 1024 * 1024)
#define CONFIG_ICMP_TABLE_MIN 256u
#define CONFIG_ICMP_TABLE_MAX (4u * 1024 * 1024)

void config_init(Config *c);

/* Parses one file's text into c. On error returns -EINVAL and a message "file:line: what is
 * wrong; what is accepted" in *ret_error (malloc'd). */
int config_parse(Config *c, const char *text, const char *filename, char **ret_error);

/* Loads dir/packetscope.conf, then dir/packetscope.conf.d/ *.conf in lexical order; missing files
 * are fine. */
int config_load(Config *c, const char *dir, char **ret_error);
