/* SPDX-License-Identifier: MIT */
/*
 * health, health history, health set: the Health object's figures, its anomalies and the
 * thresholds that open them.
 */
#include <assert.h>
#include <inttypes.h>
#include <math.h>

#include "packetscopectl.h"

typedef struct PressureInfo {
        uint64_t seen;
        double v[3][2]; /* cpu, memory, io × some avg10, full avg10 */
} PressureInfo;

#define PRESSURE_FIELD(key, r, k) { key, BUS_FIELD_DOUBLE, offsetof(PressureInfo, v[r][k]), NULL }
static const BusField pressure_fields[] = {
        PRESSURE_FIELD("cpu.some.avg10", 0, 0),
        PRESSURE_FIELD("cpu.full.avg10", 0, 1),
        PRESSURE_FIELD("memory.some.avg10", 1, 0),
        PRESSURE_FIELD("memory.full.avg10", 1, 1),
        PRESSURE_FIELD("io.some.avg10", 2, 0),
        PRESSURE_FIELD("io.full.avg10", 2, 1),
};
static const BusDict pressure_dict = BUS_DICT(pressure_fields, PressureInfo);

typedef struct ThresholdInfo {
        uint64_t seen;
        double cpu, memory, disk, pressure;
        uint64_t min_duration_usec;
} ThresholdInfo;

static const BusField threshold_fields[] = {
        { "cpu_percent", BUS_FIELD_DOUBLE, offsetof(ThresholdInfo, cpu), NULL },
        { "memory_percent", BUS_FIELD_DOUBLE, offsetof(ThresholdInfo, memory), NULL },
        { "disk_mbps", BUS_FIELD_DOUBLE, offsetof(ThresholdInfo, disk), NULL },
        { "pressure_percent", BUS_FIELD_DOUBLE, offsetof(ThresholdInfo, pressure), NULL },
        { "min_duration_usec", BUS_FIELD_U64, offsetof(ThresholdInfo, min_duration_usec), NULL },
};
static const BusDict threshold_dict = BUS_DICT(threshold_fields, ThresholdInfo);

/* A nested a{sv} into field, through dict; another type is skipped. */
static int read_nested(sd_bus_message *m, const char *contents, void *field, const BusDict *dict) {
        int r;

        if (!streq(contents, "a{sv}")) {
                r = sd_bus_message_skip(m, contents);
                return r < 0 ? r : 0;
        }
        r = bus_read_dict(m, dict, field, NULL, NULL);
        return r < 0 ? r : 1;
}

static int read_pressure(sd_bus_message *m, const char *contents, void *field) {
        return read_nested(m, contents, field, &pressure_dict);
}

static int read_thresholds(sd_bus_message *m, const char *contents, void *field) {
        return read_nested(m, contents, field, &threshold_dict);
}

typedef struct HealthInfo {
        uint64_t seen;
        double cpu, memory, disk_read, disk_write;
        PressureInfo pressure;
        ThresholdInfo thresholds;
        const char *pressure_source;
        uint64_t open, interval_usec;
} HealthInfo;

static const BusField health_fields[] = {
        { "CPUPercent", BUS_FIELD_DOUBLE, offsetof(HealthInfo, cpu), NULL },
        { "MemoryPercent", BUS_FIELD_DOUBLE, offsetof(HealthInfo, memory), NULL },
        { "DiskReadMBps", BUS_FIELD_DOUBLE, offsetof(HealthInfo, disk_read), NULL },
        { "DiskWriteMBps", BUS_FIELD_DOUBLE, offsetof(HealthInfo, disk_write), NULL },
        { "Pressure", BUS_FIELD_CUSTOM, offsetof(HealthInfo, pressure), read_pressure },
        { "Thresholds", BUS_FIELD_CUSTOM, offsetof(HealthInfo, thresholds), read_thresholds },
        { "PressureSource", BUS_FIELD_STRING, offsetof(HealthInfo, pressure_source), NULL },
        { "OpenAnomalies", BUS_FIELD_U64, offsetof(HealthInfo, open), NULL },
        { "IntervalUSec", BUS_FIELD_U64, offsetof(HealthInfo, interval_usec), NULL },
};
static const BusDict health_dict = BUS_DICT(health_fields, HealthInfo);

/* The first row of an aa{sv} of consumers: its name and what ranks it. */
typedef struct TopConsumer {
        uint64_t seen;
        const char *name; /* comm or unit */
        uint64_t pid;
} TopConsumer;

static const BusField top_fields[] = {
        { "comm", BUS_FIELD_STRING, offsetof(TopConsumer, name), NULL },
        { "unit", BUS_FIELD_STRING, offsetof(TopConsumer, name), NULL },
        { "pid", BUS_FIELD_U64, offsetof(TopConsumer, pid), NULL },
};
static const BusDict top_dict = BUS_DICT(top_fields, TopConsumer);

static int read_top(sd_bus_message *m, const char *contents, void *field) {
        bool first = true;
        int r;

        r = bus_enter_array(m, contents, "aa{sv}");
        if (r <= 0)
                return r;
        while ((r = sd_bus_message_at_end(m, false)) == 0) {
                if (first)
                        r = bus_read_dict(m, &top_dict, field, NULL, NULL);
                else
                        r = sd_bus_message_skip(m, "a{sv}");
                if (r < 0)
                        return r;
                first = false;
        }
        if (r < 0)
                return r;
        r = sd_bus_message_exit_container(m);
        return r < 0 ? r : 1;
}

typedef struct AnomalyRow {
        uint64_t seen;
        uint64_t id, started, ended;
        const char *kind;
        bool open;
        double value, peak, threshold;
        TopConsumer process, unit;
} AnomalyRow;

static const BusField anomaly_fields[] = {
        { "id", BUS_FIELD_U64, offsetof(AnomalyRow, id), NULL },
        { "kind", BUS_FIELD_STRING, offsetof(AnomalyRow, kind), NULL },
        { "open", BUS_FIELD_BOOL, offsetof(AnomalyRow, open), NULL },
        { "value", BUS_FIELD_DOUBLE, offsetof(AnomalyRow, value), NULL },
        { "peak", BUS_FIELD_DOUBLE, offsetof(AnomalyRow, peak), NULL },
        { "threshold", BUS_FIELD_DOUBLE, offsetof(AnomalyRow, threshold), NULL },
        { "started", BUS_FIELD_U64, offsetof(AnomalyRow, started), NULL },
        { "ended", BUS_FIELD_U64, offsetof(AnomalyRow, ended), NULL },
        { "processes", BUS_FIELD_CUSTOM, offsetof(AnomalyRow, process), read_top },
        { "units", BUS_FIELD_CUSTOM, offsetof(AnomalyRow, unit), read_top },
};
static const BusDict anomaly_dict = BUS_DICT(anomaly_fields, AnomalyRow);

/* The second value of ListAnomalies: whether the journal was read, and how far. */
typedef struct HistoryInfo {
        uint64_t seen;
        const char *journal, *reason;
        uint64_t entries;
        bool complete;
} HistoryInfo;

static const BusField history_fields[] = {
        { "journal", BUS_FIELD_STRING, offsetof(HistoryInfo, journal), NULL },
        { "journal_entries", BUS_FIELD_U64, offsetof(HistoryInfo, entries), NULL },
        { "complete", BUS_FIELD_BOOL, offsetof(HistoryInfo, complete), NULL },
        { "reason", BUS_FIELD_STRING, offsetof(HistoryInfo, reason), NULL },
};
static const BusDict history_dict = BUS_DICT(history_fields, HistoryInfo);

/* Health.ListAnomalies with state "open" or "all". */
static int call_list_anomalies(sd_bus *bus, const char *state, sd_bus_message **ret) {
        return bus_call(bus, PS_OBJECT_HEALTH, PS_IFACE_HEALTH, "ListAnomalies", NULL, ret,
                        "a{sv}", 2, "state", "s", state, "limit", "u", PS_ANOMALIES_LIST_MAX);
}

static int render_anomalies(sd_bus_message *reply, bool history) {
        _cleanup_free_ AnomalyRow *rows = NULL;
        _cleanup_table_ Table *t = NULL;
        uint64_t now = now_usec(CLOCK_REALTIME);
        size_t n = 0;
        int r;

        r = bus_read_rows(reply, &anomaly_dict, sizeof(AnomalyRow), &(AnomalyRow) {},
                          (void **) &rows, &n);
        if (r < 0)
                return r;
        t = table_new("ID", "KIND", "STARTED", "ENDED", "PEAK", "THRESHOLD", "TOP PROCESS",
                      "TOP UNIT", NULL);
        if (!t)
                return -ENOMEM;
        table_align_right(t, 1u << 0 | 1u << 4 | 1u << 5);
        for (size_t i = 0; i < n; i++) {
                const AnomalyRow *a = &rows[i];
                char started[FORMAT_RELATIVE_MAX], ended[FORMAT_RELATIVE_MAX];

                if ((r = table_add_cellf(t, "%" PRIu64, a->id)) < 0 ||
                    (r = table_add_cell(t, a->kind)) < 0 ||
                    (r = table_add_cell(t, format_relative_time(started, sizeof started, now,
                                                                a->started))) < 0 ||
                    (r = table_add_cell(t, a->open ? "open"
                                        : format_relative_time(ended, sizeof ended, now,
                                                               a->ended))) < 0 ||
                    (r = table_add_cellf(t, "%.1f", a->peak)) < 0 ||
                    (r = table_add_cellf(t, "%.1f", a->threshold)) < 0)
                        return r;
                if (a->process.name)
                        r = table_add_cellf(t, "%s[%" PRIu64 "]", a->process.name, a->process.pid);
                else
                        r = table_add_cell(t, NULL);
                if (r < 0 || (r = table_add_cell(t, a->unit.name)) < 0)
                        return r;
        }
        if (n > 0 && table_print(t, stdout, arg.legend) < 0)
                return -EIO;
        print_count_legend(n, history ? "No anomalies recorded." : "No open anomalies.",
                           "anomaly", "anomalies", history ? "recorded" : "open");
        if (history) {
                HistoryInfo info = { .complete = true };

                r = bus_read_dict(reply, &history_dict, &info, NULL, NULL);
                if (r < 0)
                        return r;
                /* To stderr, so that a script reading the table is not misled by it. */
                if (streq_ptr(info.journal, "unavailable"))
                        fprintf(stderr, "Only the anomalies the daemon holds: %s\n",
                                strna(info.reason));
                else if (!info.complete)
                        fprintf(stderr, "Older anomalies may be in the journal: this reply read "
                                "its newest %" PRIu64 " anomaly records.\n", info.entries);
        }
        return 0;
}

static int verb_health_show(sd_bus *bus) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *props = NULL, *list = NULL;
        _cleanup_table_ Table *fields = NULL;
        static const char *const res[] = { "cpu", "memory", "io" };
        HealthInfo h = {};
        int r;

        r = call_get_all(bus, PS_OBJECT_HEALTH, PS_IFACE_HEALTH, false, &props);
        if (r < 0)
                return r;
        r = call_list_anomalies(bus, "open", &list);
        if (r < 0)
                return r;
        if (arg.json != JSON_OFF) {
                _cleanup_(json_decrefp) json_t *o = json_object(), *p = NULL, *a = NULL;

                if (!o || json_from_reply(props, "GetAll", &p) < 0 ||
                    json_from_reply(list, "ListAnomalies", &a) < 0)
                        return -ENOMEM;
                /* json_object_set steals nothing: o keeps its own references. */
                if (json_object_set(o, "properties", p) < 0 ||
                    json_object_set(o, "open_anomalies", a) < 0)
                        return -ENOMEM;
                return print_json(o);
        }
        r = bus_read_dict(props, &health_dict, &h, NULL, NULL);
        if (r < 0)
                return r;
        fields = fields_new();
        if (!fields)
                return -ENOMEM;
        if ((r = field_add(fields, "CPU", "%.1f %% (threshold %.0f %%)", h.cpu,
                           h.thresholds.cpu)) < 0 ||
            (r = field_add(fields, "Memory", "%.1f %% (threshold %.0f %%)", h.memory,
                           h.thresholds.memory)) < 0 ||
            (r = field_add(fields, "Disk", "%.1f MB/s read, %.1f MB/s write (threshold %g MB/s)",
                           h.disk_read, h.disk_write, h.thresholds.disk)) < 0)
                return r;
        for (size_t i = 0; i < ELEMENTSOF(res); i++) {
                char label[32];

                if (!BUS_SEEN(&h.pressure, 2 * i))
                        continue;
                snprintf(label, sizeof label, "Pressure %s", res[i]);
                r = field_add(fields, label, "some %.2f %%, full %.2f %% (avg10; threshold %.0f %%)",
                              h.pressure.v[i][0], h.pressure.v[i][1], h.thresholds.pressure);
                if (r < 0)
                        return r;
        }
        if ((r = field_add(fields, "Pressure from", "%s", strna(h.pressure_source))) < 0 ||
            (r = field_add(fields, "Sampled every", "%.1f s",
                           (double) h.interval_usec / USEC_PER_SEC)) < 0 ||
            (r = field_add(fields, "Minimum duration", "%.1f s",
                           (double) h.thresholds.min_duration_usec / USEC_PER_SEC)) < 0)
                return r;
        if (table_print(fields, stdout, false) < 0)
                return -EIO;
        putchar('\n');
        return render_anomalies(list, false);
}

static int verb_health_history(sd_bus *bus) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *list = NULL;
        int r;

        r = call_list_anomalies(bus, "all", &list);
        if (r < 0)
                return r;
        if (arg.json != JSON_OFF)
                return print_reply_json(list, "ListAnomalies");
        return render_anomalies(list, true);
}

/* One KEY=VALUE of "health set": the bus key and its value (a number, or for min_duration a
 * time span in µs). */
static int parse_threshold(const char *word, char **ret_key, double *ret_number, uint64_t *ret_usec,
                           bool *ret_is_span) {
        static const char *const keys[] = { "cpu_percent", "memory_percent", "disk_mbps",
                                            "pressure_percent" };
        _cleanup_free_ char *key = NULL;
        const char *eq = strchr(word, '='), *value;
        bool known = false;
        char *end = NULL;
        double d;

        if (!eq)
                return usage_error("'%s' is not KEY=VALUE", word);
        key = strndup(word, (size_t) (eq - word));
        if (!key)
                return -ENOMEM;
        value = eq + 1;
        if (streq(key, "min_duration")) {
                if (parse_time_span(value, ret_usec) < 0)
                        return usage_error("invalid min_duration '%s'; accepted: a time span, "
                                           "e.g. 30s, 2min (plain: seconds)", value);
                *ret_is_span = true;
                *ret_key = TAKE_PTR(key);
                return 0;
        }
        for (size_t k = 0; k < ELEMENTSOF(keys); k++)
                known = known || streq(key, keys[k]);
        if (!known)
                return usage_error("unknown threshold '%s'; accepted: cpu_percent, memory_percent, "
                                   "disk_mbps, pressure_percent, min_duration", key);
        errno = 0;
        d = strtod(value, &end);
        if (!*value || errno != 0 || *end != '\0' || !isfinite(d))
                return usage_error("invalid %s '%s'; accepted: a number", key, value);
        *ret_number = d;
        *ret_is_span = false;
        *ret_key = TAKE_PTR(key);
        return 0;
}

int health_check_args(char **args, int n_args) {
        if (n_args == 0)
                return 0;
        if (streq(args[0], "history")) {
                if (n_args > 1)
                        return usage_error("'health history' takes no arguments, got '%s'",
                                           args[1]);
                return 0;
        }
        if (!streq(args[0], "set"))
                return usage_error("unknown command 'health %s'; accepted: health, health history, "
                                   "health set KEY=VALUE...", args[0]);
        if (n_args == 1)
                return usage_error("'health set' needs KEY=VALUE: cpu_percent, memory_percent, "
                                   "disk_mbps, pressure_percent (numbers) or min_duration (a "
                                   "time span, e.g. 30s)");
        for (int i = 1; i < n_args; i++) {
                _cleanup_free_ char *key = NULL;
                uint64_t usec;
                double d;
                bool span;
                int r;

                r = parse_threshold(args[i], &key, &d, &usec, &span);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* KEY=VALUE words (checked already) into SetThresholds' a{sv}. */
static int verb_health_set(sd_bus *bus, char **args, int n_args) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        int r;

        r = sd_bus_message_new_method_call(bus, &m, PS_BUS_NAME, PS_OBJECT_HEALTH, PS_IFACE_HEALTH,
                                           "SetThresholds");
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(m, 'a', "{sv}");
        if (r < 0)
                return r;
        for (int i = 0; i < n_args; i++) {
                _cleanup_free_ char *key = NULL;
                uint64_t usec = 0;
                double d = 0;
                bool span;

                r = parse_threshold(args[i], &key, &d, &usec, &span);
                if (r < 0)
                        return r;
                if (span)
                        r = sd_bus_message_append(m, "{sv}", "min_duration_usec", "t", usec);
                else
                        r = sd_bus_message_append(m, "{sv}", key, "d", d);
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_close_container(m);
        if (r < 0)
                return r;
        r = sd_bus_call(bus, m, 0, &error, NULL);
        if (r < 0)
                return bus_error("SetThresholds", &error, r);
        return 0;
}

int verb_health(sd_bus *bus, char **args, int n_args) {
        /* The words were checked by health_check_args() before the bus was opened. */
        if (n_args == 0)
                return verb_health_show(bus);
        if (streq(args[0], "history"))
                return verb_health_history(bus);
        return verb_health_set(bus, args + 1, n_args - 1);
}
