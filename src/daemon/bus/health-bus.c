/* SPDX-License-Identifier: MIT */
#include <math.h>
#include <stdio.h>
#include <sys/resource.h>

#include "bus-util.h"
#include "health-bus.h"
#include "health.h"
#include "manager.h"
#include "util.h"

#define FIGURE_GETTER(fn, field)                                                             \
        static int fn(sd_bus *bus, const char *path, const char *interface,                  \
                      const char *property, sd_bus_message *reply, void *userdata,           \
                      sd_bus_error *error) {                                                 \
                Manager *m = userdata;                                                       \
                return sd_bus_message_append(reply, "d", m->health ?                         \
                                             health_figures(m->health)->field : 0.0);        \
        }
FIGURE_GETTER(property_get_cpu, cpu_percent)
FIGURE_GETTER(property_get_memory, memory_percent)
FIGURE_GETTER(property_get_disk_read, disk_read_mbps)
FIGURE_GETTER(property_get_disk_write, disk_write_mbps)

static int property_get_pressure(sd_bus *bus, const char *path, const char *interface,
                                 const char *property, sd_bus_message *reply, void *userdata,
                                 sd_bus_error *error) {
        Manager *m = userdata;
        int r;

        r = sd_bus_message_open_container(reply, 'a', "{sv}");
        if (r < 0)
                return r;
        for (unsigned i = 0; m->health && i < _PRESSURE_MAX; i++) {
                const PressureValues *v = &health_figures(m->health)->pressure[i];
                const char *res = pressure_resource_to_string(i);
                const struct { const char *name; double value; } e[] = {
                        { "some.avg10", v->some_avg10 }, { "some.avg60", v->some_avg60 },
                        { "full.avg10", v->full_avg10 }, { "full.avg60", v->full_avg60 },
                };

                if (!v->present)
                        continue;
                for (size_t k = 0; k < ELEMENTSOF(e); k++) {
                        char key[32];

                        snprintf(key, sizeof(key), "%s.%s", res, e[k].name);
                        r = bus_dict_double(reply, key, e[k].value);
                        if (r < 0)
                                return r;
                }
        }
        return sd_bus_message_close_container(reply);
}

static int append_thresholds(sd_bus_message *reply, const HealthConfig *c) {
        HealthConfig copy = *c;
        int r;

        r = sd_bus_message_open_container(reply, 'a', "{sv}");
        if (r < 0)
                return r;
        for (size_t i = 0; i < health_thresholds_count; i++) {
                r = bus_dict_double(reply, health_thresholds[i].bus_key,
                                    *health_threshold_field(&copy, &health_thresholds[i]));
                if (r < 0)
                        return r;
        }
        r = bus_dict_u64(reply, "min_duration_usec", c->min_duration_usec);
        if (r < 0)
                return r;
        return sd_bus_message_close_container(reply);
}

static int property_get_thresholds(sd_bus *bus, const char *path, const char *interface,
                                   const char *property, sd_bus_message *reply, void *userdata,
                                   sd_bus_error *error) {
        Manager *m = userdata;

        return append_thresholds(reply, m->health ? health_config(m->health) : &m->config.health);
}

static int property_get_source(sd_bus *bus, const char *path, const char *interface,
                               const char *property, sd_bus_message *reply, void *userdata,
                               sd_bus_error *error) {
        Manager *m = userdata;

        return sd_bus_message_append(reply, "s", m->health
                                     ? pressure_source_to_string(health_pressure_source(m->health))
                                     : "none");
}

static int property_get_open(sd_bus *bus, const char *path, const char *interface,
                             const char *property, sd_bus_message *reply, void *userdata,
                             sd_bus_error *error) {
        Manager *m = userdata;
        uint32_t n = 0;

        for (unsigned i = 0; m->health && i < health_n_anomalies(m->health); i++) {
                if (health_anomaly_at(m->health, i)->ended_usec != 0)
                        break;
                n++;
        }
        return sd_bus_message_append(reply, "u", n);
}

/* The daemon's own cost, for the exporter (which may not see this process in /proc). */
static int property_get_own_cpu(sd_bus *bus, const char *path, const char *interface,
                                const char *property, sd_bus_message *reply, void *userdata,
                                sd_bus_error *error) {
        struct rusage ru = {};
        uint64_t usec;

        (void) getrusage(RUSAGE_SELF, &ru);
        usec = (uint64_t) ru.ru_utime.tv_sec * USEC_PER_SEC + (uint64_t) ru.ru_utime.tv_usec +
               (uint64_t) ru.ru_stime.tv_sec * USEC_PER_SEC + (uint64_t) ru.ru_stime.tv_usec;
        return sd_bus_message_append(reply, "t", usec);
}

static int property_get_own_memory(sd_bus *bus, const char *path, const char *interface,
                                   const char *property, sd_bus_message *reply, void *userdata,
                                   sd_bus_error *error) {
        _cleanup_free_ char *text = NULL;
        unsigned long long size, resident = 0;

        if (read_file_full("/proc/self/statm", 256, &text, NULL) >= 0 &&
            sscanf(text, "%llu %llu", &size, &resident) != 2)
                resident = 0;
        return sd_bus_message_append(reply, "t", (uint64_t) resident * (uint64_t) sysconf(_SC_PAGESIZE));
}

/* SetThresholds: every key checked against its range before any is applied. */
static int threshold_visit(const char *key, const BusValue *v, void *userdata,
                           sd_bus_error *error) {
        HealthConfig *c = userdata;
        double d;

        if (streq(key, "min_duration_usec")) {
                if (v->type != 't' && v->type != 'u')
                        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                                 "'min_duration_usec' must be an unsigned "
                                                 "integer (t or u) of microseconds");
                if (v->u > HEALTH_MIN_DURATION_MAX_USEC)
                        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                                 "'min_duration_usec' %llu is over one hour "
                                                 "(3600000000)", (unsigned long long) v->u);
                c->min_duration_usec = v->u;
                return 0;
        }
        for (size_t i = 0; i < health_thresholds_count; i++) {
                const HealthThreshold *t = &health_thresholds[i];

                if (!streq(t->bus_key, key))
                        continue;
                d = v->type == 'd' ? v->d : v->type == 'x' || v->type == 'i' || v->type == 'n'
                                                ? (double) v->i : (double) v->u;
                if (!(d >= t->min && d <= t->max) || isnan(d))
                        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                                 "'%s' %g is out of range; accepted: %g to %g",
                                                 key, d, t->min, t->max);
                *health_threshold_field(c, t) = d;
                return 0;
        }
        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                 "unknown threshold '%.64s'; known: cpu_percent, memory_percent, "
                                 "disk_mbps, pressure_percent, min_duration_usec", key);
}

static int method_set_thresholds(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        static const BusDictSpec spec = {
                .types = "dyqutnix",
                .what = "threshold",
                .expected = "expected a number (d, or an integer type)",
        };
        Manager *m = userdata;
        HealthConfig c;
        int r;

        if (!m->health)
                return sd_bus_error_setf(error, SD_BUS_ERROR_NOT_SUPPORTED,
                                         "the health monitor is not running");
        c = *health_config(m->health);
        r = bus_read_dict(msg, &spec, threshold_visit, &c, error);
        if (r < 0)
                return r;
        r = polkit_verify(msg, PS_POLKIT_CONFIGURE, &m->polkit, error);
        if (r <= 0)
                return r < 0 ? r : 1;
        r = health_set_config(m->health, &c);
        if (r < 0)
                return r;
        return sd_bus_reply_method_return(msg, NULL);
}

typedef struct AnomalyQuery {
        int state; /* -1 all, 0 closed, 1 open */
        int kind;  /* -1 any */
        uint32_t limit;
        uint64_t since_usec;
} AnomalyQuery;

static int anomaly_query_visit(const char *key, const BusValue *v, void *userdata,
                               sd_bus_error *error) {
        AnomalyQuery *q = userdata;

        if (streq(key, "state") && v->type == 's') {
                if (streq(v->s, "all"))
                        q->state = -1;
                else if (streq(v->s, "open"))
                        q->state = 1;
                else if (streq(v->s, "closed"))
                        q->state = 0;
                else
                        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                                 "invalid state '%.32s'; accepted: all, open, "
                                                 "closed", v->s);
                return 0;
        }
        if (streq(key, "kind") && v->type == 's') {
                for (int k = 0; k < _HEALTH_KIND_MAX; k++)
                        if (streq(v->s, health_kind_to_string(k))) {
                                q->kind = k;
                                return 0;
                        }
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "invalid kind '%.32s'; accepted: cpu, memory, disk, "
                                         "cpu-pressure, memory-pressure, io-pressure", v->s);
        }
        if (streq(key, "limit") && (v->type == 'u' || v->type == 't')) {
                if (v->u == 0 || v->u > PS_ANOMALIES_LIST_MAX)
                        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                                 "limit %llu is out of range; accepted: 1 to %u",
                                                 (unsigned long long) v->u, PS_ANOMALIES_LIST_MAX);
                q->limit = (uint32_t) v->u;
                return 0;
        }
        if (streq(key, "since") && v->type == 't') {
                q->since_usec = v->u;
                return 0;
        }
        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                 "unknown query key '%.64s' or wrong type; accepted: state (s), "
                                 "kind (s), limit (u), since (t, µs since the epoch)", key);
}

static int append_anomaly(sd_bus_message *reply, const Anomaly *a, const char *source) {
        int r;

        if ((r = sd_bus_message_open_container(reply, 'a', "{sv}")) < 0 ||
            (r = bus_dict_u32(reply, "id", a->id)) < 0 ||
            (r = bus_dict_string(reply, "kind", health_kind_to_string(a->kind))) < 0 ||
            (r = bus_dict_bool(reply, "open", a->ended_usec == 0)) < 0 ||
            (r = bus_dict_double(reply, "value", a->value)) < 0 ||
            (r = bus_dict_double(reply, "peak", a->peak)) < 0 ||
            (r = bus_dict_double(reply, "threshold", a->threshold)) < 0 ||
            (r = bus_dict_u64(reply, "started", a->started_usec)) < 0 ||
            (r = bus_dict_u64(reply, "ended", a->ended_usec)) < 0 ||
            (r = bus_dict_string(reply, "source", source)) < 0)
                return r;

        if ((r = bus_dict_rows_open(reply, "processes")) < 0)
                return r;
        for (unsigned i = 0; i < a->n_processes; i++) {
                const HealthProcess *p = &a->processes[i];

                if ((r = sd_bus_message_open_container(reply, 'a', "{sv}")) < 0 ||
                    (r = bus_dict_u32(reply, "pid", (uint32_t) p->pid)) < 0 ||
                    (r = bus_dict_string(reply, "comm", p->comm)) < 0 ||
                    (r = bus_dict_double(reply, "cpu_percent", p->cpu_percent)) < 0 ||
                    (r = bus_dict_u64(reply, "rss_bytes", p->rss_bytes)) < 0 ||
                    (r = bus_dict_double(reply, "read_bytes_per_sec", p->read_bps)) < 0 ||
                    (r = bus_dict_double(reply, "write_bytes_per_sec", p->write_bps)) < 0 ||
                    (r = sd_bus_message_close_container(reply)) < 0)
                        return r;
        }
        if ((r = bus_dict_rows_close(reply)) < 0)
                return r;

        if ((r = bus_dict_rows_open(reply, "units")) < 0)
                return r;
        for (unsigned i = 0; i < a->n_units; i++) {
                const HealthUnit *u = &a->units[i];

                if ((r = sd_bus_message_open_container(reply, 'a', "{sv}")) < 0 ||
                    (r = bus_dict_string(reply, "unit", u->name)) < 0 ||
                    (r = bus_dict_double(reply, "cpu_percent", u->cpu_percent)) < 0 ||
                    (r = bus_dict_u64(reply, "memory_bytes", u->memory_bytes)) < 0 ||
                    (r = bus_dict_double(reply, "read_bytes_per_sec", u->read_bps)) < 0 ||
                    (r = bus_dict_double(reply, "write_bytes_per_sec", u->write_bps)) < 0 ||
                    (r = sd_bus_message_close_container(reply)) < 0)
                        return r;
        }
        if ((r = bus_dict_rows_close(reply)) < 0)
                return r;

        if ((r = bus_dict_rows_open(reply, "links")) < 0)
                return r;
        for (unsigned i = 0; i < a->n_links; i++) {
                const HealthLinkRate *l = &a->links[i];

                if ((r = sd_bus_message_open_container(reply, 'a', "{sv}")) < 0 ||
                    (r = bus_dict_string(reply, "link", l->name)) < 0 ||
                    (r = bus_dict_double(reply, "packets_per_sec", l->pps)) < 0 ||
                    (r = bus_dict_double(reply, "dropped_per_sec", l->dropped_pps)) < 0 ||
                    (r = bus_dict_double(reply, "rx_bits_per_sec", l->rx_bps)) < 0 ||
                    (r = bus_dict_double(reply, "tx_bits_per_sec", l->tx_bps)) < 0 ||
                    (r = sd_bus_message_close_container(reply)) < 0)
                        return r;
        }
        if ((r = bus_dict_rows_close(reply)) < 0)
                return r;
        return sd_bus_message_close_container(reply);
}

/* The second value of the reply: where the anomalies came from and whether more are older. */
static int append_history_info(sd_bus_message *reply, const char *journal,
                               const AnomalyJournalInfo *info, const char *reason) {
        int r;

        if ((r = sd_bus_message_open_container(reply, 'a', "{sv}")) < 0 ||
            (r = bus_dict_string(reply, "journal", journal)) < 0 ||
            (r = bus_dict_u32(reply, "journal_entries", info->entries)) < 0 ||
            (r = bus_dict_bool(reply, "complete", info->complete)) < 0 ||
            (r = bus_dict_string(reply, "reason", reason ? reason : "")) < 0)
                return r;
        return sd_bus_message_close_container(reply);
}

static int method_list_anomalies(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        static const BusDictSpec spec = {
                .types = "sut",
                .what = "query key",
                .expected = "accepted: state (s), kind (s), limit (u), since (t)",
        };
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        AnomalyQuery q = { .state = -1, .kind = -1, .limit = PS_ANOMALIES_LIST_DEFAULT };
        AnomalyJournalInfo info = { .complete = true };
        _cleanup_free_ const Anomaly **known = NULL;
        _cleanup_free_ Anomaly *old = NULL;
        _cleanup_free_ char *reason = NULL;
        const char *journal = "not-needed";
        Manager *m = userdata;
        unsigned n_mem = m->health ? health_n_anomalies(m->health) : 0;
        size_t n_old = 0;
        uint32_t n = 0;
        int r;

        r = bus_read_dict(msg, &spec, anomaly_query_visit, &q, error);
        if (r < 0)
                return r;
        r = bus_reply_open(msg, 'a', "a{sv}", &reply);
        if (r < 0)
                return r;
        for (unsigned i = 0; i < n_mem && n < q.limit; i++) {
                const Anomaly *a = health_anomaly_at(m->health, i);

                if ((q.state == 1 && a->ended_usec != 0) || (q.state == 0 && a->ended_usec == 0) ||
                    (q.kind >= 0 && a->kind != (HealthKind) q.kind) ||
                    (a->ended_usec != 0 && a->ended_usec < q.since_usec))
                        continue;
                r = append_anomaly(reply, a, "daemon");
                if (r < 0)
                        return r;
                n++;
        }
        /* What the daemon no longer holds (or never held: an earlier run) is in the journal,
         * older than all it holds; read only as far as the limit needs. */
        if (q.state != 1 && n < q.limit) {
                AnomalyJournalQuery jq = {
                        .kind = q.kind, .since_usec = q.since_usec, .limit = q.limit - n,
                        .n_known = n_mem,
                };

                known = calloc(MAX(n_mem, 1u), sizeof(Anomaly *));
                if (!known)
                        return -ENOMEM;
                for (unsigned i = 0; i < n_mem; i++)
                        known[i] = health_anomaly_at(m->health, i);
                jq.known = known;
                r = health_journal_history(&jq, &old, &n_old, &info, &reason);
                if (r == -ENOMEM)
                        return r;
                journal = r < 0 ? "unavailable" : "read";
                if (r < 0)
                        info = (AnomalyJournalInfo) { .complete = false };
        }
        for (size_t i = 0; i < n_old; i++) {
                r = append_anomaly(reply, &old[i], "journal");
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        r = append_history_info(reply, journal, &info, reason);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

static const sd_bus_vtable health_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("CPUPercent", "d", property_get_cpu, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("MemoryPercent", "d", property_get_memory, 0,
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("DiskReadMBps", "d", property_get_disk_read, 0,
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("DiskWriteMBps", "d", property_get_disk_write, 0,
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Pressure", "a{sv}", property_get_pressure, 0,
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Thresholds", "a{sv}", property_get_thresholds, 0,
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("OpenAnomalies", "u", property_get_open, 0,
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("PressureSource", "s", property_get_source, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("IntervalUSec", "t", NULL, offsetof(Manager, config.health.interval_usec),
                        SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("DaemonCPUUSec", "t", property_get_own_cpu, 0, 0),
        SD_BUS_PROPERTY("DaemonMemoryBytes", "t", property_get_own_memory, 0, 0),
        SD_BUS_METHOD_WITH_ARGS("SetThresholds", SD_BUS_ARGS("a{sv}", thresholds), SD_BUS_NO_RESULT,
                                method_set_thresholds, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ListAnomalies", SD_BUS_ARGS("a{sv}", query),
                                SD_BUS_RESULT("aa{sv}", anomalies, "a{sv}", history),
                                method_list_anomalies,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_SIGNAL_WITH_ARGS("AnomalyStarted",
                                SD_BUS_ARGS("u", id, "s", kind, "d", value, "d", threshold), 0),
        SD_BUS_SIGNAL_WITH_ARGS("AnomalyEnded",
                                SD_BUS_ARGS("u", id, "s", kind, "d", peak, "t", duration_usec), 0),
        SD_BUS_VTABLE_END,
};

static void on_health(Manager *m, HealthEvent event, const Anomaly *a) {
        switch (event) {
        case HEALTH_SAMPLED:
                (void) sd_bus_emit_properties_changed(m->bus, PS_OBJECT_HEALTH, PS_IFACE_HEALTH,
                                                      "CPUPercent", "MemoryPercent",
                                                      "DiskReadMBps", "DiskWriteMBps", "Pressure",
                                                      "OpenAnomalies", NULL);
                break;
        case HEALTH_THRESHOLDS_CHANGED:
                (void) sd_bus_emit_properties_changed(m->bus, PS_OBJECT_HEALTH, PS_IFACE_HEALTH,
                                                      "Thresholds", NULL);
                break;
        case HEALTH_ANOMALY_STARTED:
                (void) sd_bus_emit_signal(m->bus, PS_OBJECT_HEALTH, PS_IFACE_HEALTH,
                                          "AnomalyStarted", "usdd", a->id,
                                          health_kind_to_string(a->kind), a->value, a->threshold);
                break;
        case HEALTH_ANOMALY_ENDED:
                (void) sd_bus_emit_signal(m->bus, PS_OBJECT_HEALTH, PS_IFACE_HEALTH,
                                          "AnomalyEnded", "usdt", a->id,
                                          health_kind_to_string(a->kind), a->peak,
                                          a->ended_usec - a->started_usec);
                break;
        }
}

int health_bus_register(Manager *m) {
        m->on_health = on_health;
        return sd_bus_add_object_vtable(m->bus, NULL, PS_OBJECT_HEALTH, PS_IFACE_HEALTH,
                                        health_vtable, m);
}
