/* SPDX-License-Identifier: MIT */
#include <ctype.h>
#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <strings.h>

#include "conf.h"
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
                .management_ports = { 22 },
                .n_management_ports = 1,
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
static int set_management(Config *c, const char *v) {
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
        memcpy(c->management, tmp, n * sizeof(Cidr));
        c->n_management = n;
        return 0;
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
        c->management_ports_set = true;
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
};

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
                                PROBLEM("%s:%u: malformed section header '%s'; expected [Guard] "
                                        "or [Filters]", filename, lineno, l);
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
                                PROBLEM("%s:%u: unknown section [%s]; known: [Guard], [Filters]",
                                        filename, lineno, section);
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
                        PROBLEM("%s:%u: unknown key '%s' in [%s]; known keys: %s",
                                filename, lineno, key, section,
                                streq(section, "Filters")
                                ? "ManagementAddresses, ManagementPorts, "
                                  "TinyFragments, LongHeaderChains"
                                : "FlowTableSize, IcmpTableSize, PollIntervalSec, "
                                  "IdleTimeoutSec, ClosedTimeoutSec, SweepPeriodSec, "
                                  "MaxLinks");
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
