/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "addr.h"

#define CONFIG_MANAGEMENT_MAX 64

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
        HealthConfig health;
} Config;

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
