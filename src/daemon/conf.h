/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "addr.h"
#include "guard-abi.h"

#define CONFIG_MANAGEMENT_MAX 64

/* [AI]: the strings are bounded arrays so that a Config stays a plain value (config_parse()
 * builds a copy and keeps it only when the whole file parses); longer values are refused. */
#define AI_ENDPOINT_MAX 2048
#define AI_MODEL_MAX 256
#define AI_PATH_MAX 1024

typedef enum AiFormat {
        AI_FORMAT_AUTO,        /* json_schema, then json_object, then plain, as the server takes */
        AI_FORMAT_JSON_SCHEMA,
        AI_FORMAT_JSON_OBJECT,
        AI_FORMAT_NONE,
} AiFormat;

typedef struct AiConfig {
        char endpoint[AI_ENDPOINT_MAX + 1]; /* Endpoint= */
        char model[AI_MODEL_MAX + 1];       /* Model= */
        char key_file[AI_PATH_MAX + 1];     /* ApiKeyFile= */
        double temperature;                 /* Temperature= */
        uint32_t max_tokens;                /* MaxTokens= */
        uint64_t timeout_usec;              /* TimeoutSec= */
        bool debug;                         /* Debug= */
        AiFormat format;                    /* ResponseFormat= */
        uint32_t max_jobs;                  /* MaxJobs=: finished jobs kept */
        uint32_t max_running;               /* MaxRunning=: jobs in flight at once */
        uint32_t max_queued;                /* MaxQueued= */
        uint32_t max_rules;                 /* MaxRules=: rules accepted per job */
        uint32_t max_retries;               /* MaxRetries= */
        uint64_t max_response_bytes;        /* MaxResponseBytes= */
} AiConfig;
/* [Health]: the sampler and the thresholds of an anomaly. */
typedef struct HealthConfig {
        uint64_t interval_usec;     /* HealthIntervalSec= */
        uint64_t min_duration_usec; /* MinimumDurationSec= */
        double cpu_percent;         /* CPUThresholdPercent= */
        double memory_percent;      /* MemoryThresholdPercent= */
        double disk_mbps;           /* DiskIOThresholdMBps=: read + write */
        double pressure_percent;    /* PressureThresholdPercent=: "some" stall share */
        bool pressure_triggers;     /* PressureTriggers=: no forces the sampler alone */
} HealthConfig;

/* The thresholds, described once for packetscope.conf(5) and Health.SetThresholds/Thresholds. */
typedef struct HealthThreshold {
        const char *conf_key; /* [Health] key */
        const char *bus_key;  /* Thresholds/SetThresholds key */
        size_t offset;        /* of a double in HealthConfig */
        double min, max;
} HealthThreshold;
extern const HealthThreshold health_thresholds[];
extern const size_t health_thresholds_count;
static inline double *health_threshold_field(HealthConfig *c, const HealthThreshold *t) {
        return (double *) (void *) ((char *) c + t->offset);
}
#define HEALTH_MIN_DURATION_MAX_USEC (3600 * UINT64_C(1000000))
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
        uint32_t ranked_view_min_flows; /* [Guard] RankedViewMinFlows=; 0: never */
        /* [Filters] ManagementAddresses=, ManagementPorts=: drop rules that would cut these
         * off are refused unless forced. */
        Cidr management[CONFIG_MANAGEMENT_MAX];
        uint32_t n_management;
        uint16_t management_ports[CONFIG_MANAGEMENT_MAX];
        uint32_t n_management_ports;
        bool management_ports_set; /* by a file; else config_ssh_ports() may fill them in */
        /* [Filters] TinyFragments=, LongHeaderChains=: PS_POLICY_* bits for the XDP program
         * (guard.h); 0, the default, drops what the parser cannot classify whole. */
        uint32_t parse_policy;
        AiConfig ai; /* [AI] */
        HealthConfig health;
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
        uint32_t ban_offenders_max;  /* MaxRememberedOffenders= (in the state directory) */
        uint64_t ban_offenders_keep_usec; /* RememberOffendersSec=; 0: for ever */
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

/* [AI] value checks, shared with AI.SetConfig so that both accept the same values. */
int ai_config_set_endpoint(AiConfig *c, const char *v);
int ai_config_set_model(AiConfig *c, const char *v);
int ai_config_set_temperature(AiConfig *c, double v);
int ai_config_set_max_tokens(AiConfig *c, uint64_t v);
int ai_config_set_timeout(AiConfig *c, uint64_t usec);
const char *ai_format_to_string(AiFormat f);
int ai_format_from_string(const char *s, AiFormat *ret);

#define AI_TEMPERATURE_MAX 2.0
#define AI_MAX_TOKENS_MAX 131072u
#define AI_TIMEOUT_MIN_USEC UINT64_C(1000000)         /* 1 s */
#define AI_TIMEOUT_MAX_USEC UINT64_C(3600000000)      /* 1 h */
/* The SSH server's ports as the default ManagementPorts=: the Port lines of
 * ssh_dir/sshd_config and ssh_dir/sshd_config.d/ *.conf (what Debian's sshd_config includes).
 * Files that are missing or unreadable are skipped. Returns how many ports were found and sets
 * them (none: the default, 22, stays); does nothing when a file set ManagementPorts=. */
int config_ssh_ports(Config *c, const char *ssh_dir);
