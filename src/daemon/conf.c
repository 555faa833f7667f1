/* SPDX-License-Identifier: MIT */
#include <assert.h>
#include <ctype.h>
#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

#include "conf.h"
#include "bus-names.h"
#include "guard-abi.h"
#include "util.h"

void config_init(Config *c) {
        *c = (Config) {
                .flow_table_size = 131072,
                .icmp_table_size = 65536,
                .poll_interval_usec = 1 * USEC_PER_SEC,
                .idle_timeout_usec = 300 * USEC_PER_SEC,
                .closed_timeout_usec = 30 * USEC_PER_SEC,
                .sweep_period_usec = 120 * USEC_PER_SEC,
                .max_links = 64,
                .ranked_view_min_flows = 65536,
                .management_ports = { 22 },
                .n_management_ports = 1,
                .ai = {
                        .endpoint = "https://api.openai.com/v1/chat/completions",
                        .model = "gpt-3.5-turbo",
                        .temperature = 0.7,
                        .max_tokens = 2000,
                        .timeout_usec = 120 * USEC_PER_SEC,
                        .format = AI_FORMAT_AUTO,
                        .max_jobs = 20,
                        .max_running = 1,
                        .max_queued = 8,
                        .max_rules = 20,
                        .max_retries = 2,
                        .max_response_bytes = 1024 * 1024,
                },
                .health = {
                        .interval_usec = 10 * USEC_PER_SEC,
                        .min_duration_usec = 20 * USEC_PER_SEC,
                        .cpu_percent = 80,
                        .memory_percent = 85,
                        .disk_mbps = 100,
                        .pressure_percent = 20,
                        .pressure_triggers = true,
                },
                .bans_max_v4 = PS_BANS_V4_DEFAULT,
                .bans_max_v6 = PS_BANS_V6_DEFAULT,
                /* The Guarder's defaults: more than 100 connections from one source, or a
                 * request for one of its four URL prefixes, bans for an hour. The rate and
                 * scan policies report only until tuned. */
                .ban_policy = {
                        [PS_BAN_POLICY_CONNECTIONS] = { PS_BAN_MODE_ENFORCE, 100, 0,
                                                        60 * USEC_PER_SEC },
                        [PS_BAN_POLICY_SYN_RATE] = { PS_BAN_MODE_COUNT, 50, 100, 0 },
                        [PS_BAN_POLICY_PORT_SCAN] = { PS_BAN_MODE_COUNT, 21, 0,
                                                      3 * USEC_PER_SEC },
                        [PS_BAN_POLICY_URL] = { PS_BAN_MODE_ENFORCE, 0, 0, 0 },
                },
                .ban_duration_usec = 3600 * USEC_PER_SEC,
                .ban_prefix4 = 32,
                .ban_prefix6 = 64,
                .ban_repeat_factor = 2,
                .ban_repeat_max_usec = 7 * 86400 * USEC_PER_SEC,
                .ban_offenders_max = PS_BANS_OFFENDERS,
                .ban_offenders_keep_usec = 7 * 86400 * USEC_PER_SEC,
                .http_ports = { 80, 8080 },
                .n_http_ports = 2,
                .url_patterns = { "/admin", "/wp-admin", "/.env", "/config" },
                .n_url_patterns = 4,
        };
}

static char *strip(char *s) {
        char *e;

        while (isspace((unsigned char) *s))
                s++;
        e = s + strlen(s);
        while (e > s && isspace((unsigned char) e[-1]))
                *--e = '\0';
        return s;
}

typedef int (*setter_t)(Config *c, const char *value);

static int set_u32_range(uint32_t *dst, const char *v, uint32_t min, uint32_t max) {
        uint32_t n;

        if (safe_atou32(v, &n) < 0 || n < min || n > max)
                return -EINVAL;
        *dst = n;
        return 0;
}

static int set_span_range(uint64_t *dst, const char *v, uint64_t min, uint64_t max) {
        uint64_t n;

        if (parse_time_span(v, &n) < 0 || n < min || n > max)
                return -EINVAL;
        *dst = n;
        return 0;
}

static int set_flow_table(Config *c, const char *v) {
        return set_u32_range(&c->flow_table_size, v, CONFIG_FLOW_TABLE_MIN, CONFIG_FLOW_TABLE_MAX);
}
static int set_icmp_table(Config *c, const char *v) {
        return set_u32_range(&c->icmp_table_size, v, CONFIG_ICMP_TABLE_MIN, CONFIG_ICMP_TABLE_MAX);
}
static int set_poll(Config *c, const char *v) {
        return set_span_range(&c->poll_interval_usec, v, 100 * 1000, 3600 * USEC_PER_SEC);
}
static int set_idle(Config *c, const char *v) {
        return set_span_range(&c->idle_timeout_usec, v, USEC_PER_SEC, 30 * 86400 * USEC_PER_SEC);
}
static int set_closed(Config *c, const char *v) {
        return set_span_range(&c->closed_timeout_usec, v, USEC_PER_SEC, 30 * 86400 * USEC_PER_SEC);
}
static int set_sweep(Config *c, const char *v) {
        return set_span_range(&c->sweep_period_usec, v, USEC_PER_SEC, 86400 * USEC_PER_SEC);
}
static int set_max_links(Config *c, const char *v) {
        return set_u32_range(&c->max_links, v, 1, 4096);
}

static int set_ranked_view(Config *c, const char *v) {
        return set_u32_range(&c->ranked_view_min_flows, v, 0, CONFIG_FLOW_TABLE_MAX);
}

/* Space-separated lists; an empty value resets the list (as in systemd). */
static int set_cidr_list(Cidr list[static CONFIG_MANAGEMENT_MAX], uint32_t *n_list,
                         const char *v) {
        _cleanup_free_ char *copy = strdup(v);
        char *save = NULL, *w;
        uint32_t n = 0;
        Cidr tmp[CONFIG_MANAGEMENT_MAX];

        if (!copy)
                return -ENOMEM;
        for (w = strtok_r(copy, " \t", &save); w; w = strtok_r(NULL, " \t", &save)) {
                if (n == CONFIG_MANAGEMENT_MAX || cidr_parse(w, false, &tmp[n]) < 0)
                        return -EINVAL;
                n++;
        }
        memcpy(list, tmp, n * sizeof(Cidr));
        *n_list = n;
        return 0;
}

static int set_management(Config *c, const char *v) {
        return set_cidr_list(c->management, &c->n_management, v);
}
static int set_bans_allowlist(Config *c, const char *v) {
        return set_cidr_list(c->bans_allowlist, &c->n_bans_allowlist, v);
}
static int set_bans_v4(Config *c, const char *v) {
        return set_u32_range(&c->bans_max_v4, v, CONFIG_BANS_MIN, CONFIG_BANS_MAX);
}
static int set_bans_v6(Config *c, const char *v) {
        return set_u32_range(&c->bans_max_v6, v, CONFIG_BANS_MIN, CONFIG_BANS_MAX);
}

/* A list of ports (1-65535) separated by blanks, at most max of them; out is left as it was
 * when the list is refused. */
static int set_port_list(uint16_t *out, uint32_t *ret_n, uint32_t max, const char *v) {
        _cleanup_free_ char *copy = strdup(v);
        char *save = NULL, *w;
        uint32_t n = 0, p;
        uint16_t tmp[MAX(CONFIG_MANAGEMENT_MAX, PS_BAN_HTTP_PORTS_MAX)];

        assert(max <= ELEMENTSOF(tmp));
        if (!copy)
                return -ENOMEM;
        for (w = strtok_r(copy, " \t", &save); w; w = strtok_r(NULL, " \t", &save)) {
                if (n == max || safe_atou32(w, &p) < 0 || p == 0 || p > 65535)
                        return -EINVAL;
                tmp[n++] = (uint16_t) p;
        }
        memcpy(out, tmp, n * sizeof(uint16_t));
        *ret_n = n;
        return 0;
}

static int set_management_ports(Config *c, const char *v) {
        int r = set_port_list(c->management_ports, &c->n_management_ports,
                              CONFIG_MANAGEMENT_MAX, v);

        if (r >= 0)
                c->management_ports_set = true;
        return r;
}

/* drop|pass for one PS_POLICY_* bit. */
static int set_policy_bit(Config *c, const char *v, uint32_t bit) {
        if (streq(v, "drop"))
                c->parse_policy &= ~bit;
        else if (streq(v, "pass"))
                c->parse_policy |= bit;
        else
                return -EINVAL;
        return 0;
}
static int set_tiny_fragments(Config *c, const char *v) {
        return set_policy_bit(c, v, PS_POLICY_PASS_TINY_FRAGMENTS);
}
static int set_long_chains(Config *c, const char *v) {
        return set_policy_bit(c, v, PS_POLICY_PASS_LONG_CHAINS);
}

/* [AI] */
static int set_bounded_string(char *dst, size_t max, const char *v) {
        size_t l = strlen(v);

        if (l > max || !string_is_valid_utf8(v, max))
                return -EINVAL;
        for (size_t i = 0; i < l; i++)
                if ((unsigned char) v[i] < ' ' || v[i] == 0x7f)
                        return -EINVAL;
        memcpy(dst, v, l + 1);
        return 0;
}

int ai_config_set_endpoint(AiConfig *c, const char *v) {
        /* An http(s) URL only: libcurl speaks many more protocols (file://, gopher://...). */
        if (strncmp(v, "http://", 7) != 0 && strncmp(v, "https://", 8) != 0)
                return -EINVAL;
        if (strchr(v, ' '))
                return -EINVAL;
        return set_bounded_string(c->endpoint, AI_ENDPOINT_MAX, v);
}

int ai_config_set_model(AiConfig *c, const char *v) {
        if (!*v)
                return -EINVAL;
        return set_bounded_string(c->model, AI_MODEL_MAX, v);
}

int ai_config_set_temperature(AiConfig *c, double v) {
        if (!(v >= 0.0 && v <= AI_TEMPERATURE_MAX))
                return -EINVAL;
        c->temperature = v;
        return 0;
}

int ai_config_set_max_tokens(AiConfig *c, uint64_t v) {
        if (v < 16 || v > AI_MAX_TOKENS_MAX)
                return -EINVAL;
        c->max_tokens = (uint32_t) v;
        return 0;
}

int ai_config_set_timeout(AiConfig *c, uint64_t usec) {
        if (usec < AI_TIMEOUT_MIN_USEC || usec > AI_TIMEOUT_MAX_USEC)
                return -EINVAL;
        c->timeout_usec = usec;
        return 0;
}

static const char *const ai_format_names[] = {
        [AI_FORMAT_AUTO] = "auto",
        [AI_FORMAT_JSON_SCHEMA] = "json_schema",
        [AI_FORMAT_JSON_OBJECT] = "json_object",
        [AI_FORMAT_NONE] = "none",
};

const char *ai_format_to_string(AiFormat f) {
        return f < ELEMENTSOF(ai_format_names) ? ai_format_names[f] : NULL;
}

int ai_format_from_string(const char *s, AiFormat *ret) {
        for (size_t i = 0; i < ELEMENTSOF(ai_format_names); i++)
                if (streq(s, ai_format_names[i])) {
                        *ret = (AiFormat) i;
                        return 0;
                }
        return -EINVAL;
}

static int set_ai_endpoint(Config *c, const char *v) {
        return ai_config_set_endpoint(&c->ai, v);
}
static int set_ai_model(Config *c, const char *v) {
        return ai_config_set_model(&c->ai, v);
}
static int set_ai_key_file(Config *c, const char *v) {
        if (*v && *v != '/')
                return -EINVAL;
        return set_bounded_string(c->ai.key_file, AI_PATH_MAX, v);
}
static int set_ai_temperature(Config *c, const char *v) {
        char *end = NULL;
        double d;

        errno = 0;
        d = strtod(v, &end);
        if (errno != 0 || end == v || *end != '\0')
                return -EINVAL;
        return ai_config_set_temperature(&c->ai, d);
}
static int set_ai_max_tokens(Config *c, const char *v) {
        uint64_t n;

        if (safe_atou64(v, &n) < 0)
                return -EINVAL;
        return ai_config_set_max_tokens(&c->ai, n);
}
static int set_ai_timeout(Config *c, const char *v) {
        uint64_t n;

        if (parse_time_span(v, &n) < 0)
                return -EINVAL;
        return ai_config_set_timeout(&c->ai, n);
}
const HealthThreshold health_thresholds[] = {
        { "CPUThresholdPercent", "cpu_percent", offsetof(HealthConfig, cpu_percent), 1, 100 },
        { "MemoryThresholdPercent", "memory_percent", offsetof(HealthConfig, memory_percent), 1, 100 },
        { "DiskIOThresholdMBps", "disk_mbps", offsetof(HealthConfig, disk_mbps), 0.001, 1000000 },
        { "PressureThresholdPercent", "pressure_percent", offsetof(HealthConfig, pressure_percent),
          1, 99 },
};
const size_t health_thresholds_count = ELEMENTSOF(health_thresholds);

/* A plain decimal number, whole string, within [min, max]. */
static int set_double_range(double *dst, const char *v, double min, double max) {
        char *end = NULL;
        double d;

        if (!*v || isspace((unsigned char) *v))
                return -EINVAL;
        errno = 0;
        d = strtod(v, &end);
        if (errno != 0 || !end || *end != '\0' || !(d >= min && d <= max))
                return -EINVAL;
        *dst = d;
        return 0;
}

static int set_health_threshold(Config *c, const char *key, const char *v) {
        for (size_t i = 0; i < health_thresholds_count; i++)
                if (streq(health_thresholds[i].conf_key, key))
                        return set_double_range(health_threshold_field(&c->health,
                                                                       &health_thresholds[i]),
                                                v, health_thresholds[i].min,
                                                health_thresholds[i].max);
        return -EINVAL;
}
static int set_cpu_threshold(Config *c, const char *v) {
        return set_health_threshold(c, "CPUThresholdPercent", v);
}
static int set_memory_threshold(Config *c, const char *v) {
        return set_health_threshold(c, "MemoryThresholdPercent", v);
}
static int set_disk_threshold(Config *c, const char *v) {
        return set_health_threshold(c, "DiskIOThresholdMBps", v);
}
static int set_pressure_threshold(Config *c, const char *v) {
        return set_health_threshold(c, "PressureThresholdPercent", v);
}
static int set_health_interval(Config *c, const char *v) {
        return set_span_range(&c->health.interval_usec, v, 500 * 1000, 3600 * USEC_PER_SEC);
}
static int set_min_duration(Config *c, const char *v) {
        return set_span_range(&c->health.min_duration_usec, v, 0, HEALTH_MIN_DURATION_MAX_USEC);
}
static int set_ai_debug(Config *c, const char *v) {
        int b = parse_boolean(v);

        if (b < 0)
                return -EINVAL;
        c->ai.debug = b;
        return 0;
}
static int set_ai_format(Config *c, const char *v) {
        return ai_format_from_string(v, &c->ai.format);
}
static int set_ai_max_jobs(Config *c, const char *v) {
        return set_u32_range(&c->ai.max_jobs, v, 1, 1000);
}
static int set_ai_max_running(Config *c, const char *v) {
        return set_u32_range(&c->ai.max_running, v, 1, 16);
}
static int set_ai_max_queued(Config *c, const char *v) {
        return set_u32_range(&c->ai.max_queued, v, 0, 256);
}
static int set_ai_max_rules(Config *c, const char *v) {
        return set_u32_range(&c->ai.max_rules, v, 1, 500);
}
static int set_ai_max_retries(Config *c, const char *v) {
        return set_u32_range(&c->ai.max_retries, v, 0, 10);
}
static int set_ai_max_response(Config *c, const char *v) {
        uint64_t n;

        if (safe_atou64(v, &n) < 0 || n < 4096 || n > 64 * 1024 * 1024)
                return -EINVAL;
        c->ai.max_response_bytes = n;
        return 0;
}
static int set_pressure_triggers(Config *c, const char *v) {
        int b = parse_boolean(v);

        if (b < 0)
                return -EINVAL;
        c->health.pressure_triggers = b;
        return 0;
}

bool url_pattern_valid(const char *s) {
        size_t n = strlen(s);

        if (n < 1 || n > PS_URL_PATTERN_MAX || s[0] != '/')
                return false;
        for (; *s; s++)
                if (!isalnum((unsigned char) *s) && !strchr("-._~!$&'()*+,;=:@/?%", *s))
                        return false;
        return true;
}

static const char *const ban_modes[] = {
        [PS_BAN_MODE_OFF] = "off",
        [PS_BAN_MODE_COUNT] = "count",
        [PS_BAN_MODE_ENFORCE] = "enforce",
};

int ban_mode_from_string(const char *s, uint32_t *ret) {
        for (uint32_t i = 0; i < ELEMENTSOF(ban_modes); i++)
                if (streq(s, ban_modes[i])) {
                        *ret = i;
                        return 0;
                }
        /* "shadow" is what the documentation calls count. */
        if (streq(s, "shadow")) {
                *ret = PS_BAN_MODE_COUNT;
                return 0;
        }
        return -EINVAL;
}

const char *ban_mode_to_string(uint32_t mode) {
        return mode < ELEMENTSOF(ban_modes) ? ban_modes[mode] : "unknown";
}

static int set_mode(Config *c, const char *v, unsigned policy) {
        return ban_mode_from_string(v, &c->ban_policy[policy].mode);
}
static int set_conn_mode(Config *c, const char *v) {
        return set_mode(c, v, PS_BAN_POLICY_CONNECTIONS);
}
static int set_syn_mode(Config *c, const char *v) {
        return set_mode(c, v, PS_BAN_POLICY_SYN_RATE);
}
static int set_scan_mode(Config *c, const char *v) {
        return set_mode(c, v, PS_BAN_POLICY_PORT_SCAN);
}
static int set_url_mode(Config *c, const char *v) {
        return set_mode(c, v, PS_BAN_POLICY_URL);
}
static int set_max_conns(Config *c, const char *v) {
        return set_u32_range(&c->ban_policy[PS_BAN_POLICY_CONNECTIONS].threshold, v, 1, 1000000);
}
static int set_syn_rate(Config *c, const char *v) {
        return set_u32_range(&c->ban_policy[PS_BAN_POLICY_SYN_RATE].threshold, v, 1, 1000000);
}
static int set_syn_burst(Config *c, const char *v) {
        return set_u32_range(&c->ban_policy[PS_BAN_POLICY_SYN_RATE].burst, v, 1, 1000000);
}
static int set_scan_weight(Config *c, const char *v) {
        return set_u32_range(&c->ban_policy[PS_BAN_POLICY_PORT_SCAN].threshold, v, 1, 65535 * 3);
}
static int set_scan_window(Config *c, const char *v) {
        return set_span_range(&c->ban_policy[PS_BAN_POLICY_PORT_SCAN].window_usec, v,
                              1000, 3600 * USEC_PER_SEC);
}
static int set_conn_window(Config *c, const char *v) {
        return set_span_range(&c->ban_policy[PS_BAN_POLICY_CONNECTIONS].window_usec, v,
                              USEC_PER_SEC, 86400 * USEC_PER_SEC);
}
static int set_ban_duration(Config *c, const char *v) {
        if (streq(v, "infinity")) {
                c->ban_duration_usec = 0;
                return 0;
        }
        return set_span_range(&c->ban_duration_usec, v, USEC_PER_SEC,
                              PS_BAN_SECONDS_MAX * USEC_PER_SEC);
}
static int set_prefix4(Config *c, const char *v) {
        uint32_t n;

        if (set_u32_range(&n, v, 1, 32) < 0)
                return -EINVAL;
        c->ban_prefix4 = (uint8_t) n;
        return 0;
}
static int set_prefix6(Config *c, const char *v) {
        uint32_t n;

        if (set_u32_range(&n, v, 1, 128) < 0)
                return -EINVAL;
        c->ban_prefix6 = (uint8_t) n;
        return 0;
}
static int set_repeat_factor(Config *c, const char *v) {
        return set_u32_range(&c->ban_repeat_factor, v, 1, 1000);
}
static int set_max_offenders(Config *c, const char *v) {
        return set_u32_range(&c->ban_offenders_max, v, 0, 1000000);
}
static int set_offenders_keep(Config *c, const char *v) {
        if (streq(v, "infinity")) {
                c->ban_offenders_keep_usec = 0;
                return 0;
        }
        return set_span_range(&c->ban_offenders_keep_usec, v, USEC_PER_SEC,
                              PS_BAN_SECONDS_MAX * USEC_PER_SEC);
}
static int set_repeat_max(Config *c, const char *v) {
        if (streq(v, "infinity")) {
                c->ban_repeat_max_usec = 0;
                return 0;
        }
        return set_span_range(&c->ban_repeat_max_usec, v, USEC_PER_SEC,
                              PS_BAN_SECONDS_MAX * USEC_PER_SEC);
}
static int set_http_ports(Config *c, const char *v) {
        return set_port_list(c->http_ports, &c->n_http_ports, PS_BAN_HTTP_PORTS_MAX, v);
}
static int set_url_patterns(Config *c, const char *v) {
        _cleanup_free_ char *copy = strdup(v);
        char *save = NULL, *w;
        uint32_t n = 0;

        if (!copy)
                return -ENOMEM;
        /* Checked whole first: a bad list leaves the old one. */
        for (w = strtok_r(copy, " \t", &save); w; w = strtok_r(NULL, " \t", &save))
                if (n++ == PS_URL_PATTERNS_MAX || !url_pattern_valid(w))
                        return -EINVAL;
        free(copy);
        copy = strdup(v);
        if (!copy)
                return -ENOMEM;
        n = 0;
        for (w = strtok_r(copy, " \t", &save); w; w = strtok_r(NULL, " \t", &save))
                snprintf(c->url_patterns[n++], PS_URL_PATTERN_MAX + 1, "%s", w);
        c->n_url_patterns = n;
        return 0;
}

static const struct {
        const char *section;
        const char *key;
        setter_t set;
        const char *accepted;
} config_keys[] = {
        { "Guard", "FlowTableSize", set_flow_table, "an integer from 1024 to 67108864" },
        { "Guard", "IcmpTableSize", set_icmp_table, "an integer from 256 to 4194304" },
        { "Guard", "PollIntervalSec", set_poll, "a time span from 100ms to 1h, e.g. 1s or 500ms" },
        { "Guard", "IdleTimeoutSec", set_idle, "a time span from 1s to 30d, e.g. 5min" },
        { "Guard", "ClosedTimeoutSec", set_closed, "a time span from 1s to 30d, e.g. 30s" },
        { "Guard", "SweepPeriodSec", set_sweep, "a time span from 1s to 1d, e.g. 60s" },
        { "Guard", "MaxLinks", set_max_links, "an integer from 1 to 4096" },
        { "Guard", "RankedViewMinFlows", set_ranked_view,
          "an integer from 0 (never) to 67108864 (default 65536)" },
        { "Filters", "ManagementAddresses", set_management,
          "up to 64 space-separated addresses or CIDRs, e.g. 192.0.2.10 2001:db8::/64" },
        { "Filters", "ManagementPorts", set_management_ports,
          "up to 64 space-separated TCP ports 1-65535 (default 22)" },
        { "Filters", "TinyFragments", set_tiny_fragments, "drop or pass (default drop)" },
        { "Filters", "LongHeaderChains", set_long_chains, "drop or pass (default drop)" },
        { "AI", "Endpoint", set_ai_endpoint,
          "an http:// or https:// chat-completions URL of at most 2048 characters" },
        { "AI", "Model", set_ai_model, "a model name of 1-256 printable characters" },
        { "AI", "ApiKeyFile", set_ai_key_file, "an absolute path, or empty" },
        { "AI", "Temperature", set_ai_temperature, "a number from 0 to 2, e.g. 0.7" },
        { "AI", "MaxTokens", set_ai_max_tokens, "an integer from 16 to 131072" },
        { "AI", "TimeoutSec", set_ai_timeout, "a time span from 1s to 1h, e.g. 120s" },
        { "AI", "Debug", set_ai_debug, "a boolean (yes or no)" },
        { "AI", "ResponseFormat", set_ai_format, "auto, json_schema, json_object or none" },
        { "AI", "MaxJobs", set_ai_max_jobs, "an integer from 1 to 1000" },
        { "AI", "MaxRunning", set_ai_max_running, "an integer from 1 to 16" },
        { "AI", "MaxQueued", set_ai_max_queued, "an integer from 0 to 256" },
        { "AI", "MaxRules", set_ai_max_rules, "an integer from 1 to 500" },
        { "AI", "MaxRetries", set_ai_max_retries, "an integer from 0 to 10" },
        { "AI", "MaxResponseBytes", set_ai_max_response, "an integer from 4096 to 67108864" },
        { "Health", "HealthIntervalSec", set_health_interval,
          "a time span from 500ms to 1h (default 10s)" },
        { "Health", "MinimumDurationSec", set_min_duration,
          "a time span from 0 to 1h (default 20s)" },
        { "Health", "CPUThresholdPercent", set_cpu_threshold, "a number from 1 to 100 (default 80)" },
        { "Health", "MemoryThresholdPercent", set_memory_threshold,
          "a number from 1 to 100 (default 85)" },
        { "Health", "DiskIOThresholdMBps", set_disk_threshold,
          "a number of MB/s from 0.001 to 1000000 (default 100)" },
        { "Health", "PressureThresholdPercent", set_pressure_threshold,
          "a number from 1 to 99 (default 20)" },
        { "Health", "PressureTriggers", set_pressure_triggers, "yes or no (default yes)" },
        { "Bans", "MaxBansIPv4", set_bans_v4, "an integer from 1024 to 16777216 (default 1000000)" },
        { "Bans", "MaxBansIPv6", set_bans_v6, "an integer from 1024 to 16777216 (default 262144)" },
        { "Bans", "Allowlist", set_bans_allowlist,
          "up to 64 space-separated addresses or CIDRs, e.g. 192.0.2.10 2001:db8::/64" },
        { "Bans", "ConnectionsMode", set_conn_mode, "off, count (shadow) or enforce" },
        { "Bans", "MaxConnectionsPerSource", set_max_conns, "an integer from 1 to 1000000" },
        { "Bans", "ConnectionsWindowSec", set_conn_window, "a time span from 1s to 1d" },
        { "Bans", "SynRateMode", set_syn_mode, "off, count (shadow) or enforce" },
        { "Bans", "SynRate", set_syn_rate, "new connections per second, 1 to 1000000" },
        { "Bans", "SynBurst", set_syn_burst, "an integer from 1 to 1000000" },
        { "Bans", "PortScanMode", set_scan_mode, "off, count (shadow) or enforce" },
        { "Bans", "PortScanWeight", set_scan_weight,
          "an integer from 1 to 196605 (ports below 1024 weigh 3, others 1)" },
        { "Bans", "PortScanWindowSec", set_scan_window, "a time span from 1ms to 1h, e.g. 3s" },
        { "Bans", "UrlMode", set_url_mode, "off, count (shadow) or enforce" },
        { "Bans", "UrlPatterns", set_url_patterns,
          "up to 256 space-separated prefixes of 1-64 bytes starting with '/', of the bytes a "
          "request-target may hold (letters, digits, -._~!$&'()*+,;=:@/?%)" },
        { "Bans", "HttpPorts", set_http_ports, "up to 8 space-separated TCP ports 1-65535" },
        { "Bans", "BanDurationSec", set_ban_duration,
          "a time span from 1s to ten years, e.g. 1h, or infinity" },
        { "Bans", "SourcePrefixIPv4", set_prefix4, "a prefix length from 1 to 32" },
        { "Bans", "SourcePrefixIPv6", set_prefix6, "a prefix length from 1 to 128" },
        { "Bans", "RepeatFactor", set_repeat_factor, "an integer from 1 (no growth) to 1000" },
        { "Bans", "RepeatMaxSec", set_repeat_max,
          "a time span from 1s to ten years, or infinity" },
        { "Bans", "MaxRememberedOffenders", set_max_offenders,
          "an integer from 0 (none kept across restarts) to 1000000 (default 65536)" },
        { "Bans", "RememberOffendersSec", set_offenders_keep,
          "a time span from 1s to ten years, e.g. 7d, or infinity" },
};

/* "[Guard], [Filters], ...": the sections of config_keys, in their order. */
static const char *sections_known(void) {
        static char buf[256];

        if (buf[0])
                return buf;
        for (size_t k = 0; k < ELEMENTSOF(config_keys); k++) {
                char name[40];

                if (k > 0 && streq(config_keys[k].section, config_keys[k - 1].section))
                        continue;
                snprintf(name, sizeof name, "%s[%s]", buf[0] ? ", " : "", config_keys[k].section);
                strncat(buf, name, sizeof buf - strlen(buf) - 1);
        }
        return buf;
}

/* "Key1, Key2, ...": the keys of one section. */
static char *section_keys(const char *section) {
        char *l = NULL;

        for (size_t k = 0; k < ELEMENTSOF(config_keys); k++) {
                char *n;

                if (!streq(config_keys[k].section, section))
                        continue;
                if (asprintf(&n, "%s%s%s", strempty(l), l ? ", " : "", config_keys[k].key) < 0) {
                        free(l);
                        return NULL;
                }
                free(l);
                l = n;
        }
        return l;
}

/* Appends one line to a list of problems (NULL: none yet); false when out of memory. */
static bool problem_add(char **list, const char *fmt, ...) _printf_(2, 3);
static bool problem_add(char **list, const char *fmt, ...) {
        _cleanup_free_ char *line = NULL;
        char *joined;
        va_list ap;
        int k;

        va_start(ap, fmt);
        k = vasprintf(&line, fmt, ap);
        va_end(ap);
        if (k < 0)
                return false;
        if (!*list) {
                *list = TAKE_PTR(line);
                return true;
        }
        if (asprintf(&joined, "%s\n%s", *list, line) < 0)
                return false;
        free(*list);
        *list = joined;
        return true;
}

#define PROBLEM(...)                                             \
        do {                                                     \
                if (!problem_add(&problems, __VA_ARGS__))        \
                        return -ENOMEM;                          \
        } while (0)

int config_parse(Config *c, const char *text, const char *filename, char **ret_error) {
        _cleanup_free_ char *copy = NULL, *section = NULL, *problems = NULL;
        char *line, *next;
        unsigned lineno = 0;
        bool skip_section = false;
        Config n = *c; /* applied only if the whole file parses */

        assert(c);
        copy = strdup(text);
        if (!copy)
                return -ENOMEM;

        /* Every problem of the file is reported, one line each, not only the first. */
        for (line = copy; line; line = next) {
                char *eq, *key, *value, *l;
                bool known_section = false;
                size_t k;

                next = strchr(line, '\n');
                if (next)
                        *next++ = '\0';
                lineno++;
                l = strip(line);
                if (*l == '\0' || *l == '#' || *l == ';')
                        continue;
                if (*l == '[') {
                        size_t len = strlen(l);

                        skip_section = true; /* its keys would only repeat the problem */
                        if (len < 3 || l[len - 1] != ']') {
                                PROBLEM("%s:%u: malformed section header '%s'; expected one of %s",
                                        filename, lineno, l, sections_known());
                                continue;
                        }
                        l[len - 1] = '\0';
                        free(section);
                        section = strdup(l + 1);
                        if (!section)
                                return -ENOMEM;
                        for (k = 0; k < ELEMENTSOF(config_keys); k++)
                                if (streq(config_keys[k].section, section))
                                        known_section = true;
                        if (!known_section) {
                                PROBLEM("%s:%u: unknown section [%s]; known: %s",
                                        filename, lineno, section, sections_known());
                                continue;
                        }
                        skip_section = false;
                        continue;
                }
                eq = strchr(l, '=');
                if (!eq) {
                        PROBLEM("%s:%u: expected Key=Value, got '%s'", filename, lineno, l);
                        continue;
                }
                *eq = '\0';
                key = strip(l);
                value = strip(eq + 1);
                if (!section && !skip_section) {
                        PROBLEM("%s:%u: '%s' outside of a section; put it under [Guard]",
                                filename, lineno, key);
                        continue;
                }
                if (skip_section)
                        continue;
                for (k = 0; k < ELEMENTSOF(config_keys); k++)
                        if (streq(config_keys[k].section, section) &&
                            streq(config_keys[k].key, key))
                                break;
                if (k == ELEMENTSOF(config_keys)) {
                        _cleanup_free_ char *keys = section_keys(section);

                        PROBLEM("%s:%u: unknown key '%s' in [%s]; known keys: %s",
                                filename, lineno, key, section, strempty(keys));
                        continue;
                }
                if (config_keys[k].set(&n, value) < 0)
                        PROBLEM("%s:%u: invalid %s='%s'; accepted: %s", filename, lineno, key,
                                value, config_keys[k].accepted);
        }
        if (problems) {
                if (ret_error) {
                        free(*ret_error);
                        *ret_error = TAKE_PTR(problems);
                }
                return -EINVAL;
        }
        *c = n;
        return 0;
}

static int config_load_file(Config *c, const char *path, char **ret_error) {
        _cleanup_free_ char *text = NULL;
        int r;

        r = read_file_full(path, 1024 * 1024, &text, NULL);
        if (r == -ENOENT)
                return 0;
        if (r < 0) {
                return error_setf(ret_error, r, "%s: cannot read: %s", path, strerror(-r));
        }
        return config_parse(c, text, path, ret_error);
}

static int filter_conf(const struct dirent *de) {
        size_t l = strlen(de->d_name);

        return de->d_name[0] != '.' && l > 5 && streq(de->d_name + l - 5, ".conf");
}

int config_load(Config *c, const char *dir, char **ret_error) {
        _cleanup_free_ char *main_path = NULL, *dropin = NULL, *problems = NULL;
        struct dirent **list = NULL;
        int n, r, first = 0;

        assert(c);
        assert(dir);
        main_path = strjoin_path(dir, "packetscope.conf");
        dropin = strjoin_path(dir, "packetscope.conf.d");
        if (!main_path || !dropin)
                return -ENOMEM;

        /* Every file is read, so that all their problems are reported at once; a file with a
         * problem is not applied, and the first error is returned. */
        n = scandir(dropin, &list, filter_conf, alphasort);
        if (n < 0 && errno != ENOENT && errno != ENOTDIR)
                return -errno;
        for (int i = -1; i < MAX(n, 0); i++) {
                _cleanup_free_ char *p = i < 0 ? strdup(main_path) : strjoin_path(dropin, list[i]->d_name);
                _cleanup_free_ char *err = NULL;

                r = p ? config_load_file(c, p, &err) : -ENOMEM;
                if (r == -ENOMEM) {
                        first = r;
                        break;
                }
                if (r < 0) {
                        if (first == 0)
                                first = r;
                        if (!problem_add(&problems, "%s", err ? err : strerror(-r))) {
                                first = -ENOMEM;
                                break;
                        }
                }
        }
        for (int i = 0; i < n; i++)
                free(list[i]);
        free(list);
        if (first < 0 && problems && ret_error) {
                free(*ret_error);
                *ret_error = TAKE_PTR(problems);
        }
        return first;
}

/* Adds the ports of the Port lines of one sshd_config(5) file to ports[]. */
static void ssh_ports_of_file(const char *path, uint16_t *ports, uint32_t *n) {
        _cleanup_free_ char *text = NULL;
        char *line, *next;

        if (read_file_full(path, 1024 * 1024, &text, NULL) < 0)
                return;
        for (line = text; line; line = next) {
                char *l, *v, *end;
                uint32_t p;
                bool dup = false;

                next = strchr(line, '\n');
                if (next)
                        *next++ = '\0';
                l = strip(line);
                /* "Port 2222" or "Port=2222"; keywords are case-insensitive. */
                if (strncasecmp(l, "Port", 4) != 0 || !(isspace((unsigned char) l[4]) || l[4] == '='))
                        continue;
                v = l + 4;
                while (isspace((unsigned char) *v) || *v == '=')
                        v++;
                end = v + strcspn(v, " \t#");
                *end = '\0';
                if (safe_atou32(v, &p) < 0 || p == 0 || p > 65535)
                        continue;
                for (uint32_t i = 0; i < *n; i++)
                        dup = dup || ports[i] == p;
                if (!dup && *n < CONFIG_MANAGEMENT_MAX)
                        ports[(*n)++] = (uint16_t) p;
        }
}

int config_ssh_ports(Config *c, const char *ssh_dir) {
        _cleanup_free_ char *main_path = NULL, *dropin = NULL;
        uint16_t ports[CONFIG_MANAGEMENT_MAX];
        struct dirent **list = NULL;
        uint32_t n = 0;
        int k;

        assert(c);
        assert(ssh_dir);
        if (c->management_ports_set)
                return 0;
        main_path = strjoin_path(ssh_dir, "sshd_config");
        dropin = strjoin_path(ssh_dir, "sshd_config.d");
        if (!main_path || !dropin)
                return -ENOMEM;
        ssh_ports_of_file(main_path, ports, &n);
        k = scandir(dropin, &list, filter_conf, alphasort);
        for (int i = 0; i < k; i++) {
                _cleanup_free_ char *p = strjoin_path(dropin, list[i]->d_name);

                if (p)
                        ssh_ports_of_file(p, ports, &n);
                free(list[i]);
        }
        free(list);
        if (n == 0)
                return 0;
        memcpy(c->management_ports, ports, n * sizeof(uint16_t));
        c->n_management_ports = n;
        return (int) n;
}
