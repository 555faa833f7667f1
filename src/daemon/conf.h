/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "addr.h"
#include "guard-abi.h"

#define CONFIG_MANAGEMENT_MAX 64

/* One auto-ban policy as [Bans] sets it (the kernel's struct ps_ban_policy_conf, in µs). */
typedef struct BanPolicyConf {
        uint32_t mode;        /* enum ps_ban_mode */
        uint32_t threshold;
        uint32_t burst;
        uint64_t window_usec;
} BanPolicyConf;

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
        /* [Bans] the auto-ban policies (enum ps_ban_policy), and what they share. */
        BanPolicyConf ban_policy[_PS_BAN_POLICY_MAX];
        uint64_t ban_duration_usec;  /* BanDurationSec= */
        uint8_t ban_prefix4, ban_prefix6; /* SourcePrefixIPv4=, SourcePrefixIPv6= */
        uint32_t ban_repeat_factor;  /* RepeatFactor= */
        uint64_t ban_repeat_max_usec; /* RepeatMaxSec= */
        uint16_t http_ports[PS_BAN_HTTP_PORTS_MAX]; /* HttpPorts= */
        uint32_t n_http_ports;
        char url_patterns[PS_URL_PATTERNS_MAX][PS_URL_PATTERN_MAX + 1]; /* UrlPatterns= */
        uint32_t n_url_patterns;
} Config;

/* Whether a URL pattern can be matched: 1-64 bytes that may appear in a request-target
 * (RFC 3986 unreserved, sub-delims, ':', '@', '/', '?', '%'), starting with '/'. */
bool url_pattern_valid(const char *s);
int ban_mode_from_string(const char *s, uint32_t *ret);
const char *ban_mode_to_string(uint32_t mode);

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
