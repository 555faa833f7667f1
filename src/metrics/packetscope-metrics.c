/* SPDX-License-Identifier: MIT */
/*
 * packetscope-metrics: the daemon's counters and health in the Prometheus text format, read over
 * the system bus (reads are open, so it runs unprivileged). It serves /metrics on the listening
 * socket systemd passes it (packetscope-metrics.socket), with libmicrohttpd; the daemon itself
 * opens no TCP port. With --textfile DIR it writes the same text atomically into DIR for
 * node_exporter's textfile collector and exits.
 */
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <microhttpd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-daemon.h>

#include "bus-names.h"
#include "util.h"

/* Per-rule series: at most this many rules (the lowest ids), so that a set of 100,000 rules does
 * not make 200,000 series; packetscope_filter_rules says how many there are. */
#define METRICS_FILTERS_MAX 1000u
#define METRICS_LINKS_MAX 64u
#define TEXTFILE_NAME "packetscope.prom"

/* AIJob.State values, as org.packetscope.Guarder1(5) lists them. */
static const char *const ai_states[] = { "queued", "running", "done", "failed", "cancelled" };

/* A family: its HELP and TYPE once, then its samples. */
typedef struct Family {
        const char *name, *type, *help;
} Family;

static const Family F_UP = { "packetscope_up", "gauge",
        "1 when the daemon answered on the bus for this scrape, else 0" };
static const Family F_BUILD = { "packetscope_build_info", "gauge",
        "The exporter's version, as a label; always 1" };
static const Family F_PACKETS = { "packetscope_packets_total", "counter",
        "Frames the guard saw on a link" };
static const Family F_BYTES = { "packetscope_bytes_total", "counter",
        "Bytes of the frames the guard saw on a link" };
static const Family F_PASSED = { "packetscope_packets_passed_total", "counter",
        "Frames the guard passed on to the network stack" };
static const Family F_DROPPED = { "packetscope_packets_dropped_total", "counter",
        "Frames the guard dropped, by reason (filter, tiny_fragment, long_chain, deep_vlan)" };
static const Family F_MALFORMED = { "packetscope_packets_malformed_total", "counter",
        "Frames with truncated or inconsistent headers (counted and passed)" };
static const Family F_PROTO_PACKETS = { "packetscope_protocol_packets_total", "counter",
        "Frames the guard saw, by IP protocol (tcp, udp, icmp, icmpv6, other)" };
static const Family F_PROTO_BYTES = { "packetscope_protocol_bytes_total", "counter",
        "Bytes of the frames the guard saw, by IP protocol" };
static const Family F_FLOWS = { "packetscope_flow_entries", "gauge",
        "Connections in a link's flow table" };
static const Family F_FLOWS_CAP = { "packetscope_flow_entries_capacity", "gauge",
        "Size of each link's flow table (FlowTableSize=)" };
static const Family F_ICMP = { "packetscope_icmp_entries", "gauge",
        "Entries in a link's ICMP and ICMPv6 tables" };
static const Family F_ICMP_CAP = { "packetscope_icmp_entries_capacity", "gauge",
        "Entries a link's ICMP and ICMPv6 tables hold at most (IcmpTableSize= each)" };
static const Family F_RULES = { "packetscope_filter_rules", "gauge",
        "Filter rules in the rule set (per-rule series cover at most the 1000 lowest ids)" };
static const Family F_RULE_HITS = { "packetscope_filter_hits_total", "counter",
        "Packets a filter rule matched" };
static const Family F_RULE_BYTES = { "packetscope_filter_bytes_total", "counter",
        "Bytes of the packets a filter rule matched" };
static const Family F_CPU = { "packetscope_health_cpu_usage_ratio", "gauge",
        "Share of the machine's CPU time in use, 0-1, as of the last health sample" };
static const Family F_MEMORY = { "packetscope_health_memory_usage_ratio", "gauge",
        "Share of the machine's memory in use (1 - MemAvailable/MemTotal), 0-1" };
static const Family F_DISK = { "packetscope_health_disk_bytes_per_second", "gauge",
        "Bytes per second read or written on the physical disks, by direction" };
static const Family F_PRESSURE = { "packetscope_health_pressure_ratio", "gauge",
        "Pressure stall information: share of time some or all tasks stalled on a resource" };
static const Family F_ANOMALIES = { "packetscope_health_anomalies_open", "gauge",
        "Health anomalies open now" };
static const Family F_DAEMON_CPU = { "packetscope_daemon_cpu_seconds_total", "counter",
        "CPU time the daemon packetscoped used" };
static const Family F_DAEMON_RSS = { "packetscope_daemon_resident_memory_bytes", "gauge",
        "Resident memory of the daemon packetscoped" };
/* The daemon keeps only the last MaxJobs= finished jobs and no running totals, so both AI
 * families are gauges over the kept jobs: they fall when an old job is dropped. */
static const Family F_AI_JOBS = { "packetscope_ai_jobs", "gauge",
        "AI jobs the daemon keeps (at most MaxJobs= finished ones), by state" };
static const Family F_AI_TOKENS = { "packetscope_ai_tokens_used", "gauge",
        "Tokens used, summed over the AI jobs the daemon keeps (falls when one is dropped)" };

static const Family F_BANS = { "packetscope_bans", "gauge",
        "Bans held now, by origin (manual, auto, import, ai)" };
static const Family F_BAN_CAPACITY = { "packetscope_ban_capacity", "gauge",
        "Size of each ban table (ipv4 and ipv6 exact addresses: MaxBansIPv4=, MaxBansIPv6=; cidr)" };
static const Family F_BAN_FULL = { "packetscope_ban_table_full_total", "counter",
        "Bans refused because their table was full: asked for over the bus since the daemon "
        "started (origin request), or made by a policy in the kernel on a link (origin auto)" };
static const Family F_BAN_TRIGGERS = { "packetscope_ban_policy_triggers_total", "counter",
        "Bans an auto-ban policy made on a link (mode enforce), or would have made (mode count)" };

/* The auto-ban policies, as Bans.Policies names them. */
static const char *const ban_policies[] = { "connections", "syn-rate", "port-scan", "url" };
static const Family F_BANS_CREATED = { "packetscope_bans_created_total", "counter",
        "Bans made since the daemon started, by origin (manual, import, ai, auto with its policy)" };
static const Family F_BANS_REMOVED = { "packetscope_bans_removed_total", "counter",
        "Bans ended since the daemon started, by why (expired, unbanned)" };
static const char *const ban_origins[] = { "manual", "auto", "import", "ai" };

typedef struct Output {
        FILE *f;
        const Family *current;
} Output;

/* A label value as the format wants it: backslash, double quote and newline escaped. */
static void put_label_value(FILE *f, const char *v) {
        for (const char *p = v; *p; p++) {
                if (*p == '\\' || *p == '"')
                        fputc('\\', f);
                if (*p == '\n') {
                        fputs("\\n", f);
                        continue;
                }
                fputc(*p, f);
        }
}

/* One sample; labels as "name", "value" pairs, NULL-terminated. */
static void sample(Output *o, const Family *fam, double value, ...) {
        const char *name;
        bool first = true;
        va_list ap;

        if (o->current != fam) {
                fprintf(o->f, "# HELP %s %s\n# TYPE %s %s\n", fam->name, fam->help, fam->name,
                        fam->type);
                o->current = fam;
        }
        fputs(fam->name, o->f);
        va_start(ap, value);
        while ((name = va_arg(ap, const char *))) {
                const char *v = va_arg(ap, const char *);

                fprintf(o->f, "%s%s=\"", first ? "{" : ",", name);
                put_label_value(o->f, v);
                fputc('"', o->f);
                first = false;
        }
        va_end(ap);
        if (!first)
                fputc('}', o->f);
        /* Integers exactly (counters up to 2^53 are exact in a double; %.17g keeps the rest). */
        if (value == (double) (int64_t) value && value < 9007199254740992.0 &&
            value > -9007199254740992.0)
                fprintf(o->f, " %" PRId64 "\n", (int64_t) value);
        else
                fprintf(o->f, " %.17g\n", value);
}

/* --- reading the daemon --- */

/* The numbers of an a{sv} (t, u, d; others skipped): key → value. */
typedef struct Numbers {
        char **keys;
        double *values;
        size_t n;
} Numbers;

static void numbers_done(Numbers *n) {
        for (size_t i = 0; i < n->n; i++)
                free(n->keys[i]);
        free(n->keys);
        free(n->values);
        *n = (Numbers) {};
}

static bool numbers_get(const Numbers *n, const char *key, double *ret) {
        for (size_t i = 0; i < n->n; i++)
                if (streq(n->keys[i], key)) {
                        *ret = n->values[i];
                        return true;
                }
        return false;
}

static int numbers_add(Numbers *ret, const char *key, double v) {
        char **k;
        double *vals;

        k = reallocarray(ret->keys, ret->n + 1, sizeof(char *));
        if (!k)
                return -ENOMEM;
        ret->keys = k;
        vals = reallocarray(ret->values, ret->n + 1, sizeof(double));
        if (!vals)
                return -ENOMEM;
        ret->values = vals;
        ret->keys[ret->n] = strdup(key);
        if (!ret->keys[ret->n])
                return -ENOMEM;
        ret->values[ret->n++] = v;
        return 0;
}

static int numbers_read(sd_bus_message *m, Numbers *ret) {
        int r;

        r = sd_bus_message_enter_container(m, 'a', "{sv}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
                const char *key, *contents;
                char type;
                double v;

                if ((r = sd_bus_message_read(m, "s", &key)) < 0 ||
                    (r = sd_bus_message_peek_type(m, &type, &contents)) < 0)
                        return r;
                if (streq(contents, "t") || streq(contents, "u") || streq(contents, "d")) {
                        if ((r = sd_bus_message_enter_container(m, 'v', contents)) < 0)
                                return r;
                        if (contents[0] == 't') {
                                uint64_t x;
                                r = sd_bus_message_read_basic(m, 't', &x);
                                v = (double) x;
                        } else if (contents[0] == 'u') {
                                uint32_t x;
                                r = sd_bus_message_read_basic(m, 'u', &x);
                                v = x;
                        } else
                                r = sd_bus_message_read_basic(m, 'd', &v);
                        if (r < 0 || (r = sd_bus_message_exit_container(m)) < 0)
                                return r;
                        r = numbers_add(ret, key, v);
                        if (r < 0)
                                return r;
                } else if ((r = sd_bus_message_skip(m, "v")) < 0)
                        return r;
                if ((r = sd_bus_message_exit_container(m)) < 0)
                        return r;
        }
        if (r < 0)
                return r;
        return sd_bus_message_exit_container(m);
}

static int call_numbers(sd_bus *bus, const char *path, const char *iface, const char *method,
                        Numbers *ret) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        r = sd_bus_call_method(bus, PS_BUS_NAME, path, iface, method, NULL, &reply, NULL);
        if (r < 0)
                return r;
        return numbers_read(reply, ret);
}

static int get_all_numbers(sd_bus *bus, const char *path, const char *iface, Numbers *ret) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        r = sd_bus_call_method(bus, PS_BUS_NAME, path, PS_IFACE_PROPERTIES, "GetAll", NULL, &reply,
                               "s", iface);
        if (r < 0)
                return r;
        return numbers_read(reply, ret);
}

/* Every family, each with all its samples together, as the format requires. */
typedef struct Scrape {
        bool up;
        size_t n_links;
        char *link_names[METRICS_LINKS_MAX];
        Numbers link_stats[METRICS_LINKS_MAX];
        double flow_capacity, icmp_capacity;
        bool have_flow_capacity, have_icmp_capacity;
        double rules;
        bool have_rules;
        uint32_t *rule_ids;
        double *rule_hits, *rule_bytes;
        size_t n_rules;
        Numbers health;
        Numbers pressure;
        Numbers bans, ban_origins, ban_totals;
        bool have_ai;
        double ai_jobs[ELEMENTSOF(ai_states)];
        double ai_tokens;
} Scrape;

static void scrape_done(Scrape *s) {
        for (size_t i = 0; i < s->n_links; i++) {
                free(s->link_names[i]);
                numbers_done(&s->link_stats[i]);
        }
        free(s->rule_ids);
        free(s->rule_hits);
        free(s->rule_bytes);
        numbers_done(&s->health);
        numbers_done(&s->pressure);
        numbers_done(&s->bans);
        numbers_done(&s->ban_origins);
        numbers_done(&s->ban_totals);
}

static int read_links(sd_bus *bus, Scrape *s) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *path;
        int r;

        r = sd_bus_get_property(bus, PS_BUS_NAME, PS_OBJECT_ROOT, PS_IFACE_MANAGER, "Links", NULL,
                                &reply, "ao");
        if (r < 0)
                return r;
        r = sd_bus_message_enter_container(reply, 'a', "o");
        if (r < 0)
                return r;
        while (s->n_links < METRICS_LINKS_MAX &&
               (r = sd_bus_message_read_basic(reply, 'o', &path)) > 0) {
                _cleanup_free_ char *name = NULL;
                Numbers stats = {};

                if (sd_bus_get_property_string(bus, PS_BUS_NAME, path, PS_IFACE_LINK, "Name", NULL,
                                               &name) < 0)
                        continue; /* gone meanwhile */
                if (call_numbers(bus, path, PS_IFACE_LINK, "GetStatistics", &stats) < 0) {
                        numbers_done(&stats);
                        continue;
                }
                s->link_names[s->n_links] = TAKE_PTR(name);
                s->link_stats[s->n_links++] = stats;
        }
        return r < 0 ? r : 0;
}

static int read_capacities(sd_bus *bus, Scrape *s) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *text;
        json_t *j, *v;
        uint32_t flow;
        int r;

        if (sd_bus_get_property_trivial(bus, PS_BUS_NAME, PS_OBJECT_ROOT, PS_IFACE_MANAGER,
                                        "FlowTableSize", NULL, 'u', &flow) >= 0) {
                s->flow_capacity = flow;
                s->have_flow_capacity = true;
        }
        /* The ICMP table's size is only in the description. */
        r = sd_bus_call_method(bus, PS_BUS_NAME, PS_OBJECT_ROOT, PS_IFACE_MANAGER, "Describe", NULL,
                               &reply, NULL);
        if (r < 0 || sd_bus_message_read(reply, "s", &text) < 0)
                return 0;
        j = json_loads(text, 0, NULL);
        v = json_object_get(json_object_get(j, "config"), "icmp_table_size");
        if (json_is_integer(v)) {
                /* One table per family, each of IcmpTableSize= entries. */
                s->icmp_capacity = 2.0 * (double) json_integer_value(v);
                s->have_icmp_capacity = true;
        }
        json_decref(j);
        return 0;
}

/* The first METRICS_FILTERS_MAX rules' ids and counters: three columns of ListRange's page. */
static int read_rules(sd_bus *bus, Scrape *s) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const uint32_t *ids = NULL;
        const uint64_t *hits = NULL, *bytes = NULL;
        size_t n_ids = 0, n_hits = 0, n_bytes = 0;
        uint32_t count;
        int r;

        if (sd_bus_get_property_trivial(bus, PS_BUS_NAME, PS_OBJECT_FILTERS, PS_IFACE_FILTERS,
                                        "Count", NULL, 'u', &count) >= 0) {
                s->rules = count;
                s->have_rules = true;
        }
        r = sd_bus_call_method(bus, PS_BUS_NAME, PS_OBJECT_FILTERS, PS_IFACE_FILTERS, "ListRange",
                               NULL, &reply, "uu", 0, METRICS_FILTERS_MAX);
        if (r < 0)
                return r;
        r = sd_bus_message_enter_container(reply, 'a', "{sv}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(reply, 'e', "sv")) > 0) {
                const char *key;

                r = sd_bus_message_read_basic(reply, 's', &key);
                if (r < 0)
                        return r;
                if (streq(key, "id") || streq(key, "hits") || streq(key, "bytes")) {
                        const void *p;
                        size_t size;
                        char t = key[0] == 'i' ? 'u' : 't';
                        char sig[3] = { 'a', t, '\0' };

                        if ((r = sd_bus_message_enter_container(reply, 'v', sig)) < 0 ||
                            (r = sd_bus_message_read_array(reply, t, &p, &size)) < 0 ||
                            (r = sd_bus_message_exit_container(reply)) < 0)
                                return r;
                        if (t == 'u') {
                                ids = p;
                                n_ids = size / sizeof(uint32_t);
                        } else if (key[0] == 'h') {
                                hits = p;
                                n_hits = size / sizeof(uint64_t);
                        } else {
                                bytes = p;
                                n_bytes = size / sizeof(uint64_t);
                        }
                } else if ((r = sd_bus_message_skip(reply, "v")) < 0)
                        return r;
                r = sd_bus_message_exit_container(reply);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        if (!ids || n_hits != n_ids || n_bytes != n_ids)
                return -EBADMSG;
        n_ids = MIN(n_ids, (size_t) METRICS_FILTERS_MAX);
        s->rule_ids = malloc(MAX(n_ids, (size_t) 1) * sizeof(uint32_t));
        s->rule_hits = calloc(MAX(n_ids, (size_t) 1), sizeof(double));
        s->rule_bytes = calloc(MAX(n_ids, (size_t) 1), sizeof(double));
        if (!s->rule_ids || !s->rule_hits || !s->rule_bytes)
                return -ENOMEM;
        for (size_t i = 0; i < n_ids; i++) {
                s->rule_ids[i] = ids[i];
                s->rule_hits[i] = (double) hits[i];
                s->rule_bytes[i] = (double) bytes[i];
        }
        s->n_rules = n_ids;
        return 0;
}

static int read_health(sd_bus *bus, Scrape *s) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        r = get_all_numbers(bus, PS_OBJECT_HEALTH, PS_IFACE_HEALTH, &s->health);
        if (r < 0)
                return r;
        r = sd_bus_get_property(bus, PS_BUS_NAME, PS_OBJECT_HEALTH, PS_IFACE_HEALTH, "Pressure",
                                NULL, &reply, "a{sv}");
        if (r < 0)
                return r;
        return numbers_read(reply, &s->pressure);
}

static int read_bans(sd_bus *bus, Scrape *s) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        r = get_all_numbers(bus, PS_OBJECT_BANS, PS_IFACE_BANS, &s->bans);
        if (r < 0)
                return r;
        r = sd_bus_get_property(bus, PS_BUS_NAME, PS_OBJECT_BANS, PS_IFACE_BANS, "CountByOrigin",
                                NULL, &reply, "a{sv}");
        if (r < 0)
                return r;
        r = numbers_read(reply, &s->ban_origins);
        if (r < 0)
                return r;
        reply = sd_bus_message_unref(reply);
        r = sd_bus_get_property(bus, PS_BUS_NAME, PS_OBJECT_BANS, PS_IFACE_BANS, "Totals", NULL,
                                &reply, "a{st}");
        if (r < 0)
                return r;
        r = sd_bus_message_enter_container(reply, 'a', "{st}");
        if (r < 0)
                return r;
        for (;;) {
                const char *key;
                uint64_t v;

                r = sd_bus_message_read(reply, "{st}", &key, &v);
                if (r <= 0)
                        return r;
                r = numbers_add(&s->ban_totals, key, (double) v);
                if (r < 0)
                        return r;
        }
}

static int read_ai(sd_bus *bus, Scrape *s) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *path;
        int r;

        r = sd_bus_get_property(bus, PS_BUS_NAME, PS_OBJECT_AI, PS_IFACE_AI, "Jobs", NULL, &reply,
                                "ao");
        if (r < 0)
                return r;
        r = sd_bus_message_enter_container(reply, 'a', "o");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_read_basic(reply, 'o', &path)) > 0) {
                _cleanup_free_ char *state = NULL;
                uint64_t tokens;

                if (sd_bus_get_property_string(bus, PS_BUS_NAME, path, PS_IFACE_AI_JOB, "State",
                                               NULL, &state) < 0 ||
                    sd_bus_get_property_trivial(bus, PS_BUS_NAME, path, PS_IFACE_AI_JOB,
                                                "TokensUsed", NULL, 't', &tokens) < 0)
                        continue; /* dropped meanwhile */
                for (size_t i = 0; i < ELEMENTSOF(ai_states); i++)
                        if (streq(state, ai_states[i]))
                                s->ai_jobs[i]++;
                s->ai_tokens += (double) tokens;
        }
        if (r < 0)
                return r;
        s->have_ai = true;
        return 0;
}

static void emit_per_link(Output *o, const Scrape *s, const Family *fam, const char *key) {
        double v;

        for (size_t i = 0; i < s->n_links; i++)
                if (numbers_get(&s->link_stats[i], key, &v))
                        sample(o, fam, v, "link", s->link_names[i], NULL);
}

static void emit(Output *o, const Scrape *s) {
        static const char *const protos[] = { "tcp", "udp", "icmp", "icmpv6", "other" };
        static const struct { const char *key, *reason; } drops[] = {
                { "dropped_filter", "filter" },
                { "dropped_tiny_fragments", "tiny_fragment" },
                { "dropped_long_chains", "long_chain" },
                { "dropped_deep_vlan", "deep_vlan" },
                { "dropped_panic", "panic" },
                { "dropped_ban", "ban" },
                { "dropped_autoban", "autoban" },
        };
        static const struct { const char *key, *label; } ban_tables[] = {
                { "CapacityIPv4", "ipv4" }, { "CapacityIPv6", "ipv6" }, { "CapacityCidr", "cidr" },
        };
        static const char *const res[] = { "cpu", "memory", "io" };
        double v;

        sample(o, &F_UP, s->up ? 1 : 0, NULL);
        sample(o, &F_BUILD, 1, "version", PACKETSCOPE_VERSION, NULL);
        if (!s->up)
                return;
        emit_per_link(o, s, &F_PACKETS, "packets");
        emit_per_link(o, s, &F_BYTES, "bytes");
        emit_per_link(o, s, &F_PASSED, "passed");
        for (size_t i = 0; i < s->n_links; i++)
                for (size_t d = 0; d < ELEMENTSOF(drops); d++)
                        if (numbers_get(&s->link_stats[i], drops[d].key, &v))
                                sample(o, &F_DROPPED, v, "link", s->link_names[i], "reason",
                                       drops[d].reason, NULL);
        emit_per_link(o, s, &F_MALFORMED, "malformed");
        for (int bytes = 0; bytes < 2; bytes++)
                for (size_t i = 0; i < s->n_links; i++)
                        for (size_t p = 0; p < ELEMENTSOF(protos); p++) {
                                char key[32];

                                snprintf(key, sizeof key, "%s_%s", protos[p],
                                         bytes ? "bytes" : "packets");
                                if (numbers_get(&s->link_stats[i], key, &v))
                                        sample(o, bytes ? &F_PROTO_BYTES : &F_PROTO_PACKETS, v,
                                               "link", s->link_names[i], "protocol", protos[p],
                                               NULL);
                        }
        emit_per_link(o, s, &F_FLOWS, "flows");
        for (size_t i = 0; i < s->n_links && s->have_flow_capacity; i++)
                sample(o, &F_FLOWS_CAP, s->flow_capacity, "link", s->link_names[i], NULL);
        emit_per_link(o, s, &F_ICMP, "icmp_entries");
        for (size_t i = 0; i < s->n_links && s->have_icmp_capacity; i++)
                sample(o, &F_ICMP_CAP, s->icmp_capacity, "link", s->link_names[i], NULL);

        if (s->have_rules)
                sample(o, &F_RULES, s->rules, NULL);
        for (int bytes = 0; bytes < 2; bytes++)
                for (size_t i = 0; i < s->n_rules; i++) {
                        char id[16];

                        snprintf(id, sizeof id, "%" PRIu32, s->rule_ids[i]);
                        sample(o, bytes ? &F_RULE_BYTES : &F_RULE_HITS,
                               bytes ? s->rule_bytes[i] : s->rule_hits[i], "filter_id", id, NULL);
                }

        for (size_t i = 0; i < ELEMENTSOF(ban_origins); i++)
                if (numbers_get(&s->ban_origins, ban_origins[i], &v))
                        sample(o, &F_BANS, v, "origin", ban_origins[i], NULL);
        for (size_t i = 0; i < ELEMENTSOF(ban_origins); i++) {
                char key[48];

                if (streq(ban_origins[i], "auto"))
                        continue;
                snprintf(key, sizeof key, "created.%s", ban_origins[i]);
                if (numbers_get(&s->ban_totals, key, &v))
                        sample(o, &F_BANS_CREATED, v, "origin", ban_origins[i], NULL);
        }
        for (size_t p = 0; p < ELEMENTSOF(ban_policies); p++) {
                char key[48];

                snprintf(key, sizeof key, "created.auto:%s", ban_policies[p]);
                if (numbers_get(&s->ban_totals, key, &v))
                        sample(o, &F_BANS_CREATED, v, "origin", "auto", "policy",
                               ban_policies[p], NULL);
        }
        if (numbers_get(&s->ban_totals, "expired", &v))
                sample(o, &F_BANS_REMOVED, v, "why", "expired", NULL);
        if (numbers_get(&s->ban_totals, "unbanned", &v))
                sample(o, &F_BANS_REMOVED, v, "why", "unbanned", NULL);
        for (size_t i = 0; i < ELEMENTSOF(ban_tables); i++)
                if (numbers_get(&s->bans, ban_tables[i].key, &v))
                        sample(o, &F_BAN_CAPACITY, v, "table", ban_tables[i].label, NULL);
        if (numbers_get(&s->bans, "RefusedTableFull", &v))
                sample(o, &F_BAN_FULL, v, "origin", "request", NULL);
        for (size_t i = 0; i < s->n_links; i++)
                if (numbers_get(&s->link_stats[i], "bans_full", &v))
                        sample(o, &F_BAN_FULL, v, "origin", "auto", "link", s->link_names[i], NULL);
        for (size_t i = 0; i < s->n_links; i++)
                for (size_t p = 0; p < ELEMENTSOF(ban_policies); p++)
                        for (int shadow = 0; shadow < 2; shadow++) {
                                char key[48];

                                snprintf(key, sizeof key, "policy_%s.%s",
                                         shadow ? "shadow" : "triggers", ban_policies[p]);
                                if (numbers_get(&s->link_stats[i], key, &v))
                                        sample(o, &F_BAN_TRIGGERS, v, "link", s->link_names[i],
                                               "policy", ban_policies[p], "mode",
                                               shadow ? "count" : "enforce", NULL);
                        }

        if (numbers_get(&s->health, "CPUPercent", &v))
                sample(o, &F_CPU, v / 100, NULL);
        if (numbers_get(&s->health, "MemoryPercent", &v))
                sample(o, &F_MEMORY, v / 100, NULL);
        if (numbers_get(&s->health, "DiskReadMBps", &v))
                sample(o, &F_DISK, v * 1e6, "direction", "read", NULL);
        if (numbers_get(&s->health, "DiskWriteMBps", &v))
                sample(o, &F_DISK, v * 1e6, "direction", "write", NULL);
        for (size_t r = 0; r < ELEMENTSOF(res); r++)
                for (int full = 0; full < 2; full++)
                        for (int w = 0; w < 2; w++) {
                                char key[32];

                                snprintf(key, sizeof key, "%s.%s.avg%s", res[r],
                                         full ? "full" : "some", w ? "60" : "10");
                                if (numbers_get(&s->pressure, key, &v))
                                        sample(o, &F_PRESSURE, v / 100, "resource", res[r],
                                               "kind", full ? "full" : "some", "window",
                                               w ? "60s" : "10s", NULL);
                        }
        if (numbers_get(&s->health, "OpenAnomalies", &v))
                sample(o, &F_ANOMALIES, v, NULL);
        if (numbers_get(&s->health, "DaemonCPUUSec", &v))
                sample(o, &F_DAEMON_CPU, v / 1e6, NULL);
        if (numbers_get(&s->health, "DaemonMemoryBytes", &v))
                sample(o, &F_DAEMON_RSS, v, NULL);
        for (size_t i = 0; i < ELEMENTSOF(ai_states) && s->have_ai; i++)
                sample(o, &F_AI_JOBS, s->ai_jobs[i], "state", ai_states[i], NULL);
        if (s->have_ai)
                sample(o, &F_AI_TOKENS, s->ai_tokens, NULL);
}

/* One scrape: a bus connection of its own (the HTTP thread owns it), the text in *ret. */
static int metrics_collect(char **ret, size_t *ret_size) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        Scrape s = {};
        char *buf = NULL;
        size_t size = 0;
        Output o = {};
        int r;

        r = sd_bus_open_system(&bus);
        if (r < 0)
                fprintf(stderr, "packetscope-metrics: cannot connect to the system bus: %s\n",
                        strerror(-r));
        else {
                /* The Manager first: without it nothing else is worth asking. */
                r = read_links(bus, &s);
                if (r < 0)
                        fprintf(stderr, "packetscope-metrics: cannot read the daemon's links: "
                                "%s\n", strerror(-r));
                s.up = r >= 0;
                if (s.up) {
                        (void) read_capacities(bus, &s);
                        (void) read_rules(bus, &s);
                        (void) read_health(bus, &s);
                        (void) read_bans(bus, &s);
                        (void) read_ai(bus, &s);
                }
        }
        o.f = open_memstream(&buf, &size);
        if (!o.f) {
                scrape_done(&s);
                return -ENOMEM;
        }
        emit(&o, &s);
        scrape_done(&s);
        if (fclose(o.f) != 0) {
                free(buf);
                return -ENOMEM;
        }
        *ret = buf;
        *ret_size = size;
        return 0;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **req_cls) {
        static const char not_found[] = "Not found; the metrics are at /metrics\n";
        static const char not_allowed[] = "Only GET and HEAD\n";
        struct MHD_Response *response;
        enum MHD_Result ret;
        unsigned status = MHD_HTTP_OK;
        char *text = NULL;
        size_t size = 0;

        if (!streq(method, "GET") && !streq(method, "HEAD")) {
                status = MHD_HTTP_METHOD_NOT_ALLOWED;
                response = MHD_create_response_from_buffer(sizeof(not_allowed) - 1,
                                                           (void *) not_allowed,
                                                           MHD_RESPMEM_PERSISTENT);
        } else if (!streq(url, "/metrics")) {
                status = MHD_HTTP_NOT_FOUND;
                response = MHD_create_response_from_buffer(sizeof(not_found) - 1,
                                                           (void *) not_found,
                                                           MHD_RESPMEM_PERSISTENT);
        } else if (metrics_collect(&text, &size) < 0) {
                status = MHD_HTTP_INTERNAL_SERVER_ERROR;
                response = MHD_create_response_from_buffer(0, (void *) "", MHD_RESPMEM_PERSISTENT);
        } else
                response = MHD_create_response_from_buffer(size, text, MHD_RESPMEM_MUST_FREE);
        if (!response) {
                free(text);
                return MHD_NO;
        }
        if (status == MHD_HTTP_OK)
                (void) MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE,
                                               "text/plain; version=0.0.4; charset=utf-8");
        ret = MHD_queue_response(c, status, response);
        MHD_destroy_response(response);
        return ret;
}

static int write_textfile(const char *dir) {
        _cleanup_free_ char *text = NULL, *path = NULL;
        size_t size;
        int r;

        r = metrics_collect(&text, &size);
        if (r < 0)
                return r;
        path = strjoin_path(dir, TEXTFILE_NAME);
        if (!path)
                return -ENOMEM;
        /* A temporary file beside it, renamed over it: the collector never reads half a file,
         * and it ignores the temporary one (its name does not end in .prom). */
        r = write_file_atomic(path, text, size, 0644);
        if (r < 0)
                fprintf(stderr, "packetscope-metrics: cannot write %s: %s\n", path, strerror(-r));
        return r;
}

static int serve(void) {
        struct MHD_Daemon *d;
        sigset_t mask;
        int n, sig;

        n = sd_listen_fds(true);
        if (n < 0) {
                fprintf(stderr, "packetscope-metrics: reading the passed sockets failed: %s\n",
                        strerror(-n));
                return n;
        }
        if (n != 1) {
                fprintf(stderr, "packetscope-metrics: expected one listening socket from systemd "
                        "(packetscope-metrics.socket), got %d; or use --textfile DIR\n", n);
                return -EINVAL;
        }
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigprocmask(SIG_BLOCK, &mask, NULL); /* before the thread starts: it inherits the mask */

        /* One thread polls the listener and answers; a scrape reads the bus in that thread. */
        d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0, NULL, NULL,
                             on_request, NULL,
                             MHD_OPTION_LISTEN_SOCKET, (MHD_socket) SD_LISTEN_FDS_START,
                             MHD_OPTION_CONNECTION_LIMIT, (unsigned) 64,
                             MHD_OPTION_CONNECTION_TIMEOUT, (unsigned) 30,
                             MHD_OPTION_END);
        if (!d) {
                fprintf(stderr, "packetscope-metrics: cannot serve HTTP on the passed socket\n");
                return -EIO;
        }
        (void) sd_notify(false, "READY=1\nSTATUS=Serving /metrics");
        while (sigwait(&mask, &sig) != 0)
                ;
        (void) sd_notify(false, "STOPPING=1");
        MHD_stop_daemon(d);
        return 0;
}

static void help(void) {
        printf("packetscope-metrics [OPTIONS...]\n\n"
               "Serve the packetscope daemon's counters and health as Prometheus metrics on the\n"
               "listening socket systemd passes (packetscope-metrics.socket).\n\n"
               "  -h --help              Show this help\n"
               "     --version           Show the version\n"
               "     --textfile DIR      Write DIR/" TEXTFILE_NAME " atomically once, for\n"
               "                         node_exporter's textfile collector, and exit\n"
               "     --stdout            Print the metrics once and exit\n"
               "\nSee packetscope-metrics(8).\n");
}

int main(int argc, char *argv[]) {
        enum { ARG_VERSION = 0x100, ARG_TEXTFILE, ARG_STDOUT };
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                { "textfile", required_argument, NULL, ARG_TEXTFILE },
                { "stdout", no_argument, NULL, ARG_STDOUT },
                {}
        };
        const char *textfile = NULL;
        bool to_stdout = false;
        int c, r;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        help();
                        return EXIT_SUCCESS;
                case ARG_VERSION:
                        printf("packetscope-metrics %s\n", PACKETSCOPE_VERSION);
                        return EXIT_SUCCESS;
                case ARG_TEXTFILE:
                        textfile = optarg;
                        break;
                case ARG_STDOUT:
                        to_stdout = true;
                        break;
                default:
                        return 2;
                }
        if (optind < argc) {
                fprintf(stderr, "packetscope-metrics: unexpected argument '%s'; see --help\n",
                        argv[optind]);
                return 2;
        }
        if (to_stdout) {
                _cleanup_free_ char *text = NULL;
                size_t size;

                r = metrics_collect(&text, &size);
                if (r >= 0 && fwrite(text, 1, size, stdout) != size)
                        r = -EIO;
        } else if (textfile)
                r = write_textfile(textfile);
        else
                r = serve();
        return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
