/* SPDX-License-Identifier: MIT */
/*
 * stats and monitor: Manager.GetStatistics read into a Statistics, shown whole (stats) or as a
 * live view with the fastest flows (monitor: one sd-event loop, a timer, asynchronous calls).
 */
#include <assert.h>
#include <ctype.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>
#include <systemd/sd-event.h>

#include "packetscopectl.h"

/* a{st}: packets per ICMP type, the type number in decimal as the key. */
static int read_icmp_types(sd_bus_message *m, const char *contents, void *field) {
        IcmpTypeCounts *c = field;
        const char *key;
        uint64_t packets;
        uint32_t type;
        int r;

        r = bus_enter_array(m, contents, "a{st}");
        if (r <= 0)
                return r;
        c->n = 0;
        while ((r = sd_bus_message_read(m, "{st}", &key, &packets)) > 0) {
                if (safe_atou32(key, &type) < 0 || type > UINT8_MAX)
                        return -EBADMSG;
                if (c->n < ELEMENTSOF(c->type)) {
                        c->type[c->n] = (uint8_t) type;
                        c->packets[c->n++] = packets;
                }
        }
        if (r < 0)
                return r;
        r = sd_bus_message_exit_container(m);
        return r < 0 ? r : 1;
}

/* The keys of GetStatistics are the names of the members they land in. */
#define STAT(name, member, kind) \
        [STAT_##name] = { #member, BUS_FIELD_##kind, offsetof(Statistics, member), NULL }
#define STAT_PROTOCOL(i, name)                                                                  \
        [STAT_PROTOCOL_PACKETS + 2 * (i)] = { name "_packets", BUS_FIELD_U64,                  \
                                              offsetof(Statistics, protocol_packets[i]), NULL }, \
        [STAT_PROTOCOL_PACKETS + 2 * (i) + 1] = { name "_bytes", BUS_FIELD_U64,                \
                                                  offsetof(Statistics, protocol_bytes[i]), NULL }

static const BusField statistics_fields[_STAT_MAX] = {
        STAT(PACKETS, packets, U64),
        STAT(BYTES, bytes, U64),
        STAT(PASSED, passed, U64),
        STAT(DROPPED, dropped, U64),
        STAT(MALFORMED, malformed, U64),
        STAT(FRAGMENTS, fragments, U64),
        STAT(VLAN, vlan, U64),
        STAT(IPV4, ipv4, U64),
        STAT(IPV6, ipv6, U64),
        STAT(NON_IP, non_ip, U64),
        STAT(ICMP_ERRORS, icmp_errors, U64),
        STAT(FLOW_UPDATE_FAILURES, flow_update_failures, U64),
        STAT(FLOWS, flows, U64),
        STAT(ICMP_ENTRIES, icmp_entries, U64),
        STAT(LINKS, links, U64),
        STAT(RUN_TIME_NS, run_time_ns, U64),
        STAT(RUN_COUNT, run_count, U64),
        STAT(PPS, pps, DOUBLE),
        STAT(BPS, bps, DOUBLE),
        STAT_PROTOCOL(0, "tcp"),
        STAT_PROTOCOL(1, "udp"),
        STAT_PROTOCOL(2, "icmp"),
        STAT_PROTOCOL(3, "icmpv6"),
        STAT_PROTOCOL(4, "other"),
        [STAT_ICMP_TYPES] = { "icmp_types", BUS_FIELD_CUSTOM, offsetof(Statistics, icmp_types),
                              read_icmp_types },
        [STAT_ICMPV6_TYPES] = { "icmpv6_types", BUS_FIELD_CUSTOM, offsetof(Statistics, icmpv6_types),
                                read_icmp_types },
};

Statistics *statistics_free(Statistics *s) {
        if (!s)
                return NULL;
        for (size_t i = 0; i < 2 * s->n_unknown; i++)
                free(s->unknown[i]);
        free(s->unknown);
        free(s);
        return NULL;
}

/* Whatever a newer daemon adds: kept as its JSON text, to be shown as it comes. */
static int statistics_add_unknown(sd_bus_message *m, const char *key, void *userdata) {
        Statistics *s = userdata;
        _cleanup_json_ json_t *value = NULL;
        _cleanup_free_ char *k = NULL, *text = NULL;
        char **n;
        int r;

        r = json_from_bus(m, &value);
        if (r < 0)
                return r;
        k = strdup(key);
        text = json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY);
        n = reallocarray(s->unknown, 2 * (s->n_unknown + 1), sizeof(char *));
        if (!k || !text || !n)
                return -ENOMEM;
        s->unknown = n;
        s->unknown[2 * s->n_unknown] = TAKE_PTR(k);
        s->unknown[2 * s->n_unknown + 1] = TAKE_PTR(text);
        s->n_unknown++;
        return 0;
}

int statistics_read(sd_bus_message *reply, Statistics **ret) {
        static const BusDict dict = BUS_DICT(statistics_fields, Statistics);
        _cleanup_(statistics_freep) Statistics *s = NULL;
        int r;

        assert(reply);
        assert(ret);

        s = calloc(1, sizeof *s);
        if (!s)
                return -ENOMEM;
        /* A rate the daemon does not report reads "n/a", not 0. */
        s->pps = s->bps = NAN;
        r = bus_read_dict(reply, &dict, s, statistics_add_unknown, s);
        if (r < 0) {
                fprintf(stderr, "packetscopectl: cannot parse the statistics: %s\n", strerror(-r));
                return r;
        }
        *ret = TAKE_PTR(s);
        return 0;
}

int call_get_statistics(sd_bus *bus, sd_bus_message **ret) {
        assert(bus);
        assert(ret);

        return bus_call(bus, PS_OBJECT_ROOT, PS_IFACE_MANAGER, "GetStatistics", NULL, ret, NULL);
}

int fields_add_traffic(Table *t, const Statistics *s) {
        char bytes[FORMAT_BYTES_MAX], pps[FORMAT_RATE_MAX], bps[FORMAT_RATE_MAX];
        int r;

        assert(t);
        assert(s);

        r = field_add(t, "Packets", "%" PRIu64 " (%s)", s->packets,
                      format_rate_pps(pps, sizeof pps, s->pps));
        if (r < 0)
                return r;
        return field_add(t, "Bytes", "%s (%s)", format_bytes(bytes, sizeof bytes, s->bytes),
                         format_rate_bits(bps, sizeof bps, s->bps));
}

/* Packets and bytes per protocol (and rates, given the previous statistics); preceded by an
 * empty line, and nothing at all when the daemon reports no per-protocol counters. */
static int render_protocols(FILE *f, const Statistics *s, const Statistics *previous,
                            double elapsed_sec, bool header) {
        _cleanup_table_ Table *t = NULL;
        bool rates = previous && elapsed_sec > 0;
        int r;

        t = rates ? table_new("PROTOCOL", "PACKETS", "BYTES", "PPS", "RATE", NULL)
                  : table_new("PROTOCOL", "PACKETS", "BYTES", NULL);
        if (!t)
                return -ENOMEM;
        table_align_right(t, rates ? 1u << 1 | 1u << 2 | 1u << 3 | 1u << 4 : 1u << 1 | 1u << 2);
        for (size_t i = 0; i < N_PROTOCOL_COUNTERS; i++) {
                /* The protocol's name is its key's: "tcp" of "tcp_packets". */
                const char *key = statistics_fields[STAT_PROTOCOL_PACKETS + 2 * i].key;
                int name_len = (int) (strlen(key) - strlen("_packets"));
                char bytes[FORMAT_BYTES_MAX];
                uint64_t packets = s->protocol_packets[i], nbytes = s->protocol_bytes[i];

                if (!BUS_SEEN(s, STAT_PROTOCOL_PACKETS + 2 * i))
                        continue;
                if ((r = table_add_cellf(t, "%.*s", name_len, key)) < 0 ||
                    (r = table_add_cellf(t, "%" PRIu64, packets)) < 0 ||
                    (r = table_add_cell(t, format_bytes(bytes, sizeof bytes, nbytes))) < 0)
                        return r;
                if (rates) {
                        char pps[FORMAT_RATE_MAX], bps[FORMAT_RATE_MAX];
                        uint64_t p0 = previous->protocol_packets[i], b0 = previous->protocol_bytes[i];
                        /* Counters only grow; a daemon restart resets them: show 0, not garbage. */
                        double dp = packets >= p0 ? (double) (packets - p0) : 0;
                        double db = nbytes >= b0 ? (double) (nbytes - b0) : 0;

                        if ((r = table_add_cell(t, format_rate_pps(pps, sizeof pps,
                                                                   dp / elapsed_sec))) < 0 ||
                            (r = table_add_cell(t, format_rate_bits(bps, sizeof bps,
                                                                    8 * db / elapsed_sec))) < 0)
                                return r;
                }
        }
        if (table_rows(t) == 0)
                return 0;
        fputc('\n', f);
        return table_print(t, f, header);
}

static int render_icmp_types(FILE *f, const IcmpTypeCounts *c, bool ipv6, const char *title,
                             bool header) {
        _cleanup_table_ Table *t = table_new(title, "PACKETS", NULL);
        int r;

        if (!t)
                return -ENOMEM;
        if (c->n == 0)
                return 0;
        table_align_right(t, 1u << 1);
        for (size_t i = 0; i < c->n; i++) {
                char name[48];

                format_icmp_type(name, sizeof name, ipv6, c->type[i]);
                if ((r = table_add_cell(t, name)) < 0 ||
                    (r = table_add_cellf(t, "%" PRIu64, c->packets[i])) < 0)
                        return r;
        }
        fputc('\n', f);
        return table_print(t, f, header);
}

static int render_stats(FILE *f, const Statistics *s) {
        _cleanup_table_ Table *t = fields_new();
        int r;

        if (!t)
                return -ENOMEM;
        if ((r = field_add_u64(t, BUS_SEEN(s, STAT_LINKS), "Links", s->links)) < 0 ||
            (r = fields_add_traffic(t, s)) < 0 ||
            (r = field_add_u64(t, BUS_SEEN(s, STAT_PASSED), "Passed", s->passed)) < 0 ||
            (r = field_add_u64(t, BUS_SEEN(s, STAT_DROPPED), "Dropped", s->dropped)) < 0 ||
            (r = field_add_u64(t, BUS_SEEN(s, STAT_MALFORMED), "Malformed", s->malformed)) < 0 ||
            (r = field_add_u64(t, BUS_SEEN(s, STAT_FRAGMENTS), "Fragments", s->fragments)) < 0 ||
            (r = field_add_u64(t, BUS_SEEN(s, STAT_VLAN), "VLAN tagged", s->vlan)) < 0 ||
            (r = field_add_u64(t, BUS_SEEN(s, STAT_IPV4), "IPv4", s->ipv4)) < 0 ||
            (r = field_add_u64(t, BUS_SEEN(s, STAT_IPV6), "IPv6", s->ipv6)) < 0 ||
            (r = field_add_u64(t, BUS_SEEN(s, STAT_NON_IP), "Non-IP", s->non_ip)) < 0 ||
            (r = field_add_u64(t, BUS_SEEN(s, STAT_ICMP_ERRORS), "ICMP errors", s->icmp_errors)) < 0 ||
            (r = field_add_u64(t, BUS_SEEN(s, STAT_FLOWS), "Flows", s->flows)) < 0 ||
            (r = field_add_u64(t, BUS_SEEN(s, STAT_ICMP_ENTRIES), "ICMP entries",
                               s->icmp_entries)) < 0 ||
            (r = field_add_u64(t, BUS_SEEN(s, STAT_FLOW_UPDATE_FAILURES), "Flow update failures",
                               s->flow_update_failures)) < 0)
                return r;
        if (s->run_count > 0) {
                r = field_add(t, "XDP run time", "%.0f ns per packet (%" PRIu64 " runs)",
                              (double) s->run_time_ns / (double) s->run_count, s->run_count);
                if (r < 0)
                        return r;
        }
        /* Whatever a newer daemon adds: shown rather than dropped, its key made a label
         * ("kernel_memory_bytes" reads "Kernel memory bytes"). */
        for (size_t i = 0; i < s->n_unknown; i++) {
                _cleanup_free_ char *label = strdup(s->unknown[2 * i]);

                if (!label)
                        return -ENOMEM;
                for (char *c = label; *c; c++)
                        if (*c == '_')
                                *c = ' ';
                label[0] = (char) toupper((unsigned char) label[0]);
                r = field_add(t, label, "%s", s->unknown[2 * i + 1]);
                if (r < 0)
                        return r;
        }
        r = table_print(t, f, false);
        if (r < 0)
                return r;
        r = render_protocols(f, s, NULL, 0, arg.legend);
        if (r < 0)
                return r;
        r = render_icmp_types(f, &s->icmp_types, false, "ICMP TYPE", arg.legend);
        if (r < 0)
                return r;
        return render_icmp_types(f, &s->icmpv6_types, true, "ICMPV6 TYPE", arg.legend);
}

int verb_stats(sd_bus *bus, char **args, int n_args) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_(statistics_freep) Statistics *s = NULL;
        int r;

        r = call_get_statistics(bus, &reply);
        if (r < 0)
                return r;
        if (arg.json != JSON_OFF)
                return print_reply_json(reply, "GetStatistics");
        r = statistics_read(reply, &s);
        if (r < 0)
                return r;
        return render_stats(stdout, s);
}

/* ---- monitor ---- */

typedef struct Monitor {
        sd_bus *bus;
        sd_event *event;
        sd_event_source *timer;
        sd_bus_slot *pending;       /* the call in flight, if any */
        bool tty;
        uint64_t frames;
        uint64_t max_frames;        /* 0: unlimited */
        sd_bus_message *stats;      /* this frame's statistics, waiting for the flow list */
        Statistics *previous;       /* the last frame's, for per-protocol rates */
        uint64_t stats_at;          /* CLOCK_MONOTONIC µs of each */
        uint64_t previous_at;
} Monitor;

/* The call in flight has its answer: an error ends the monitor. */
static bool monitor_call_failed(Monitor *m, sd_bus_message *reply, const char *what) {
        m->pending = sd_bus_slot_unref(m->pending);
        if (!sd_bus_message_is_method_error(reply, NULL))
                return false;
        bus_error(what, sd_bus_message_get_error(reply), -sd_bus_message_get_errno(reply));
        sd_event_exit(m->event, EXIT_FAILURE);
        return true;
}

static int monitor_render(Monitor *m, sd_bus_message *flows) {
        _cleanup_(statistics_freep) Statistics *s = NULL;
        _cleanup_free_ ConnectionRow *rows = NULL;
        _cleanup_free_ char *text = NULL;
        _cleanup_table_ Table *fields = fields_new();
        size_t size = 0, n;
        FILE *f;
        char clock[32];
        time_t t = time(NULL);
        struct tm tm;
        double elapsed = m->previous ? (double) (m->stats_at - m->previous_at) / USEC_PER_SEC : 0;
        int r;

        if (!fields)
                return -ENOMEM;
        r = statistics_read(m->stats, &s);
        if (r < 0)
                return r;
        r = connection_rows_read(flows, &rows, &n);
        if (r < 0)
                return r;
        /* The totals' rates over the same window as the per-protocol ones below (this frame and
         * the last), so that they add up; the daemon's own rates cover its last poll. */
        if (m->previous && elapsed > 0) {
                const Statistics *p = m->previous;

                s->pps = s->packets >= p->packets ? (double) (s->packets - p->packets) / elapsed : 0;
                s->bps = s->bytes >= p->bytes ? 8.0 * (double) (s->bytes - p->bytes) / elapsed : 0;
        }
        if ((r = field_add_u64(fields, BUS_SEEN(s, STAT_LINKS), "Links", s->links)) < 0 ||
            (r = fields_add_traffic(fields, s)) < 0 ||
            (r = field_add_u64(fields, BUS_SEEN(s, STAT_DROPPED), "Dropped", s->dropped)) < 0 ||
            (r = field_add_u64(fields, BUS_SEEN(s, STAT_MALFORMED), "Malformed", s->malformed)) < 0 ||
            (r = field_add_u64(fields, BUS_SEEN(s, STAT_FLOWS), "Flows", s->flows)) < 0 ||
            (r = field_add_u64(fields, BUS_SEEN(s, STAT_ICMP_ENTRIES), "ICMP entries",
                               s->icmp_entries)) < 0)
                return r;

        /* Built whole, then written at once: no half-drawn screen. */
        f = open_memstream(&text, &size);
        if (!f)
                return -ENOMEM;
        strftime(clock, sizeof clock, "%H:%M:%S", localtime_r(&t, &tm));
        fprintf(f, "packetscope monitor, every %.1fs, at %s\n\n",
                (double) arg.interval_usec / USEC_PER_SEC, clock);
        r = table_print(fields, f, false);
        if (r >= 0)
                r = render_protocols(f, s, m->previous, elapsed, true);
        if (r >= 0) {
                fprintf(f, "\nTop %zu flows by rate\n", n);
                if (n > 0)
                        r = render_connections(f, rows, n, now_usec(CLOCK_REALTIME), true);
        }
        if (fclose(f) != 0 && r >= 0)
                r = -EIO;
        if (r < 0)
                return r;

        if (m->tty)
                fputs("\033[H\033[2J", stdout); /* home, clear screen */
        else if (m->frames > 0)
                fputc('\n', stdout);
        fwrite(text, 1, size, stdout);
        fflush(stdout);
        statistics_free(m->previous);
        m->previous = TAKE_PTR(s);
        return 0;
}

static int monitor_frame_json(Monitor *m, sd_bus_message *flows) {
        _cleanup_json_ json_t *stats = NULL, *rows = NULL, *frame = NULL;
        int r;

        r = json_from_reply(m->stats, "GetStatistics", &stats);
        if (r < 0)
                return r;
        r = json_from_reply(flows, "List", &rows);
        if (r < 0)
                return r;
        frame = json_pack("{s:I,s:O,s:O}", "time_usec", (json_int_t) now_usec(CLOCK_REALTIME),
                          "statistics", stats, "flows", rows);
        if (!frame)
                return -ENOMEM;
        r = print_json(frame);
        fflush(stdout);
        return r;
}

static int on_flows(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        Monitor *m = userdata;
        int r;

        if (monitor_call_failed(m, reply, "List"))
                return 0;
        r = arg.json != JSON_OFF ? monitor_frame_json(m, reply) : monitor_render(m, reply);
        if (r < 0) {
                fprintf(stderr, "packetscopectl: cannot show the frame: %s\n", strerror(-r));
                sd_event_exit(m->event, EXIT_FAILURE);
                return 0;
        }
        m->stats = sd_bus_message_unref(m->stats);
        m->previous_at = m->stats_at;
        m->frames++;
        if (m->max_frames > 0 && m->frames >= m->max_frames)
                sd_event_exit(m->event, EXIT_SUCCESS);
        return 0;
}

static int on_stats(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *call = NULL;
        Monitor *m = userdata;
        int r;

        if (monitor_call_failed(m, reply, "GetStatistics"))
                return 0;
        sd_bus_message_unref(m->stats);
        m->stats = sd_bus_message_ref(reply);
        m->stats_at = now_usec(CLOCK_MONOTONIC);
        /* The query for this view is fixed: the fastest flows first. */
        r = new_list_call(m->bus, false, MONITOR_TOP_DEFAULT, &call);
        if (r >= 0)
                r = sd_bus_call_async(m->bus, &m->pending, call, on_flows, m, 0);
        if (r < 0) {
                fprintf(stderr, "packetscopectl: cannot ask for the flows: %s\n", strerror(-r));
                sd_event_exit(m->event, EXIT_FAILURE);
        }
        return 0;
}

static int on_tick(sd_event_source *s, uint64_t usec, void *userdata) {
        Monitor *m = userdata;
        int r;

        /* Keep the cadence from the planned time, not from when the handler ran. */
        r = sd_event_source_set_time(s, usec + arg.interval_usec);
        if (r >= 0)
                r = sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
        if (r < 0) {
                sd_event_exit(m->event, EXIT_FAILURE);
                return 0;
        }
        if (m->pending)
                return 0; /* the daemon is slower than the interval: skip a frame */
        r = sd_bus_call_method_async(m->bus, &m->pending, PS_BUS_NAME, PS_OBJECT_ROOT,
                                     PS_IFACE_MANAGER, "GetStatistics", on_stats, m, NULL);
        if (r < 0) {
                fprintf(stderr, "packetscopectl: cannot call GetStatistics: %s\n", strerror(-r));
                sd_event_exit(m->event, EXIT_FAILURE);
        }
        return 0;
}

static int on_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        return sd_event_exit(sd_event_source_get_event(s), EXIT_SUCCESS);
}

int verb_monitor(sd_bus *bus, char **args, int n_args) {
        Monitor m = {
                .bus = bus,
                .tty = isatty(STDOUT_FILENO) && arg.json == JSON_OFF,
                .max_frames = (arg.given & OPT_COUNT) ? arg.count : 0,
        };
        sigset_t mask;
        int r, code = EXIT_FAILURE;

        assert(bus);

        /* The verb's query is built by new_list_call(): the fastest flows, top N. */
        if (!(arg.given & OPT_SORT)) {
                arg.sort = "rate";
                arg.given |= OPT_SORT;
        }
        sigemptyset(&mask);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGTERM);
        /* sd-event takes signals through a signalfd, which needs them blocked first. */
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return -errno;

        r = sd_event_default(&m.event);
        if (r >= 0)
                r = sd_event_add_signal(m.event, NULL, SIGINT, on_signal, NULL);
        if (r >= 0)
                r = sd_event_add_signal(m.event, NULL, SIGTERM, on_signal, NULL);
        if (r >= 0)
                r = sd_bus_attach_event(bus, m.event, SD_EVENT_PRIORITY_NORMAL);
        if (r >= 0)
                r = sd_event_add_time_relative(m.event, &m.timer, CLOCK_MONOTONIC, 0, 0, on_tick, &m);
        if (r >= 0)
                r = sd_event_loop(m.event);
        if (r >= 0)
                code = r;
        else
                fprintf(stderr, "packetscopectl: monitor failed: %s\n", strerror(-r));

        m.pending = sd_bus_slot_unref(m.pending);
        m.timer = sd_event_source_unref(m.timer);
        sd_bus_detach_event(bus);
        m.event = sd_event_unref(m.event);
        sd_bus_message_unref(m.stats);
        statistics_free(m.previous);
        return code == EXIT_SUCCESS ? 0 : -EIO;
}
