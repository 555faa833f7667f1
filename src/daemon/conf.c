/* SPDX-License-Identifier: MIT */
#include <ctype.h>
#include <dirent.h>
#include <stdio.h>

#include "conf.h"
#include "bus-names.h"
#include "guard-abi.h"
#include "util.h"

void config_init(Config *c) {
        *c = (Config) {
                .flow_table_size = 1048576,
                .icmp_table_size = 65536,
                .poll_interval_usec = 1 * USEC_PER_SEC,
                .idle_timeout_usec = 300 * USEC_PER_SEC,
                .closed_timeout_usec = 30 * USEC_PER_SEC,
                .sweep_period_usec = 120 * USEC_PER_SEC,
                .max_links = 64,
                .management_ports = { 22 },
                .n_management_ports = 1,
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

static int set_management_ports(Config *c, const char *v) {
        _cleanup_free_ char *copy = strdup(v);
        char *save = NULL, *w;
        uint32_t n = 0, p;
        uint16_t tmp[CONFIG_MANAGEMENT_MAX];

        if (!copy)
                return -ENOMEM;
        for (w = strtok_r(copy, " \t", &save); w; w = strtok_r(NULL, " \t", &save)) {
                if (n == CONFIG_MANAGEMENT_MAX || safe_atou32(w, &p) < 0 || p == 0 || p > 65535)
                        return -EINVAL;
                tmp[n++] = (uint16_t) p;
        }
        memcpy(c->management_ports, tmp, n * sizeof(uint16_t));
        c->n_management_ports = n;
        return 0;
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
static int set_repeat_max(Config *c, const char *v) {
        if (streq(v, "infinity")) {
                c->ban_repeat_max_usec = 0;
                return 0;
        }
        return set_span_range(&c->ban_repeat_max_usec, v, USEC_PER_SEC,
                              PS_BAN_SECONDS_MAX * USEC_PER_SEC);
}
static int set_http_ports(Config *c, const char *v) {
        _cleanup_free_ char *copy = strdup(v);
        char *save = NULL, *w;
        uint32_t n = 0, p;
        uint16_t tmp[PS_BAN_HTTP_PORTS_MAX];

        if (!copy)
                return -ENOMEM;
        for (w = strtok_r(copy, " \t", &save); w; w = strtok_r(NULL, " \t", &save)) {
                if (n == PS_BAN_HTTP_PORTS_MAX || safe_atou32(w, &p) < 0 || p == 0 || p > 65535)
                        return -EINVAL;
                tmp[n++] = (uint16_t) p;
        }
        memcpy(c->http_ports, tmp, n * sizeof(uint16_t));
        c->n_http_ports = n;
        return 0;
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
        { "Filters", "ManagementAddresses", set_management,
          "up to 64 space-separated addresses or CIDRs, e.g. 192.0.2.10 2001:db8::/64" },
        { "Filters", "ManagementPorts", set_management_ports,
          "up to 64 space-separated TCP ports 1-65535 (default 22)" },
        { "Filters", "TinyFragments", set_tiny_fragments, "drop or pass (default drop)" },
        { "Filters", "LongHeaderChains", set_long_chains, "drop or pass (default drop)" },
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
};

int config_parse(Config *c, const char *text, const char *filename, char **ret_error) {
        _cleanup_free_ char *copy = NULL, *section = NULL;
        char *line, *next;
        unsigned lineno = 0;
        Config n = *c; /* applied only if the whole file parses */

        assert(c);
        copy = strdup(text);
        if (!copy)
                return -ENOMEM;

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

                        if (len < 3 || l[len - 1] != ']') {
                                return error_setf(ret_error, -EINVAL,
                                                  "%s:%u: malformed section header '%s'; "
                                                  "expected [Guard], [Filters] or [Bans]", filename, lineno, l);
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
                                return error_setf(ret_error, -EINVAL,
                                                  "%s:%u: unknown section [%s]; known: [Guard], [Filters], [Bans]",
                                                  filename, lineno, section);
                        }
                        continue;
                }
                eq = strchr(l, '=');
                if (!eq) {
                        return error_setf(ret_error, -EINVAL, "%s:%u: expected Key=Value, got '%s'",
                                          filename, lineno, l);
                }
                *eq = '\0';
                key = strip(l);
                value = strip(eq + 1);
                if (!section) {
                        return error_setf(ret_error, -EINVAL,
                                          "%s:%u: '%s' outside of a section; put it under "
                                          "[Guard]", filename, lineno, key);
                }
                for (k = 0; k < ELEMENTSOF(config_keys); k++)
                        if (streq(config_keys[k].section, section) &&
                            streq(config_keys[k].key, key))
                                break;
                if (k == ELEMENTSOF(config_keys)) {
                        return error_setf(ret_error, -EINVAL,
                                          "%s:%u: unknown key '%s' in [%s]; known keys: %s",
                                          filename, lineno, key, section,
                                          streq(section, "Filters")
                                          ? "ManagementAddresses, ManagementPorts, "
                                            "TinyFragments, LongHeaderChains"
                                          : streq(section, "Bans")
                                          ? "MaxBansIPv4, MaxBansIPv6, Allowlist, "
                                            "ConnectionsMode, MaxConnectionsPerSource, "
                                            "ConnectionsWindowSec, SynRateMode, SynRate, "
                                            "SynBurst, PortScanMode, PortScanWeight, "
                                            "PortScanWindowSec, UrlMode, UrlPatterns, HttpPorts, "
                                            "BanDurationSec, SourcePrefixIPv4, SourcePrefixIPv6, "
                                            "RepeatFactor, RepeatMaxSec"
                                          : "FlowTableSize, IcmpTableSize, PollIntervalSec, "
                                            "IdleTimeoutSec, ClosedTimeoutSec, SweepPeriodSec, "
                                            "MaxLinks");
                }
                if (config_keys[k].set(&n, value) < 0) {
                        return error_setf(ret_error, -EINVAL,
                                          "%s:%u: invalid %s='%s'; accepted: %s",
                                          filename, lineno, key, value, config_keys[k].accepted);
                }
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
        _cleanup_free_ char *main_path = NULL, *dropin = NULL;
        struct dirent **list = NULL;
        int n, r;

        assert(c);
        assert(dir);
        main_path = strjoin_path(dir, "packetscope.conf");
        dropin = strjoin_path(dir, "packetscope.conf.d");
        if (!main_path || !dropin)
                return -ENOMEM;

        r = config_load_file(c, main_path, ret_error);
        if (r < 0)
                return r;

        n = scandir(dropin, &list, filter_conf, alphasort);
        if (n < 0)
                return errno == ENOENT || errno == ENOTDIR ? 0 : -errno;
        r = 0;
        for (int i = 0; i < n; i++) {
                if (r >= 0) {
                        _cleanup_free_ char *p = strjoin_path(dropin, list[i]->d_name);

                        r = p ? config_load_file(c, p, ret_error) : -ENOMEM;
                }
                free(list[i]);
        }
        free(list);
        return r;
}
