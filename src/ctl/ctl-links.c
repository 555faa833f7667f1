/* SPDX-License-Identifier: MIT */
/*
 * status, attach and detach: the Manager's properties, one Link object per guarded interface,
 * and the calls that create and remove them.
 */
#include <assert.h>
#include <inttypes.h>
#include <math.h>

#include "packetscopectl.h"

typedef struct ManagerInfo {
        uint64_t seen;
        const char *version;
        char **links;           /* object paths, owned */
        uint64_t flow_table_size;
        uint64_t poll_interval_usec;
        bool panic;
} ManagerInfo;

typedef enum ManagerKey {
        MANAGER_VERSION,
        MANAGER_LINKS,
        MANAGER_FLOW_TABLE_SIZE,
        MANAGER_POLL_INTERVAL_USEC,
        MANAGER_PANIC,
        _MANAGER_MAX,
} ManagerKey;

static char **strv_free(char **l) {
        for (char **p = l; p && *p; p++)
                free(*p);
        free(l);
        return NULL;
}

static size_t strv_length(char **l) {
        size_t n = 0;

        while (l && l[n])
                n++;
        return n;
}

/* ao, as a NULL-terminated list of copies. */
static int read_object_paths(sd_bus_message *m, const char *contents, void *field) {
        char ***ret = field;
        char **l = NULL;
        size_t n = 0;
        const char *path;
        int r;

        r = bus_enter_array(m, contents, "ao");
        if (r <= 0)
                return r;
        while ((r = sd_bus_message_read_basic(m, 'o', &path)) > 0) {
                char **nl = reallocarray(l, n + 2, sizeof(char *));

                if (!nl) {
                        r = -ENOMEM;
                        break;
                }
                l = nl;
                l[n] = strdup(path);
                if (!l[n]) {
                        r = -ENOMEM;
                        break;
                }
                l[++n] = NULL;
        }
        if (r >= 0)
                r = sd_bus_message_exit_container(m);
        if (r < 0) {
                strv_free(l);
                return r;
        }
        strv_free(*ret);
        *ret = l;
        return 1;
}

static const BusField manager_fields[_MANAGER_MAX] = {
        [MANAGER_VERSION] = { "Version", BUS_FIELD_STRING, offsetof(ManagerInfo, version), NULL },
        [MANAGER_LINKS] = { "Links", BUS_FIELD_CUSTOM, offsetof(ManagerInfo, links),
                            read_object_paths },
        [MANAGER_FLOW_TABLE_SIZE] = { "FlowTableSize", BUS_FIELD_U64,
                                      offsetof(ManagerInfo, flow_table_size), NULL },
        [MANAGER_POLL_INTERVAL_USEC] = { "PollIntervalUSec", BUS_FIELD_U64,
                                         offsetof(ManagerInfo, poll_interval_usec), NULL },
        [MANAGER_PANIC] = { "Panic", BUS_FIELD_BOOL, offsetof(ManagerInfo, panic), NULL },
};

typedef struct LinkInfo {
        uint64_t seen;
        const char *name, *mode;
        uint64_t ifindex, attached_since, program_id, packets, dropped, flows, kernel_memory;
        double bits_per_second;
} LinkInfo;

/* A property of the Link interface and the member it lands in. */
#define LINK_FIELD(property, kind, member) \
        { #property, BUS_FIELD_##kind, offsetof(LinkInfo, member), NULL }

static const BusField link_fields[] = {
        LINK_FIELD(Name, STRING, name),
        LINK_FIELD(Ifindex, U64, ifindex),
        LINK_FIELD(Mode, STRING, mode),
        LINK_FIELD(AttachedSince, U64, attached_since),
        LINK_FIELD(ProgramId, U64, program_id),
        LINK_FIELD(Packets, U64, packets),
        LINK_FIELD(Dropped, U64, dropped),
        LINK_FIELD(BitsPerSecond, DOUBLE, bits_per_second),
        LINK_FIELD(Flows, U64, flows),
        LINK_FIELD(KernelMemory, U64, kernel_memory),
};

/* The GetAll replies of the guarded links, with their paths. */
typedef struct LinkReplies {
        BusReplies props;
        const char **paths;     /* borrowed from ManagerInfo.links */
} LinkReplies;

static void link_replies_done(LinkReplies *l) {
        bus_replies_done(&l->props);
        free(l->paths);
}

static int get_links(sd_bus *bus, char **paths, LinkReplies *ret) {
        size_t n = strv_length(paths);
        int r;

        ret->paths = calloc(n + 1, sizeof(char *));
        if (!ret->paths)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                _cleanup_(sd_bus_message_unrefp) sd_bus_message *props = NULL;

                r = call_get_all(bus, paths[i], PS_IFACE_LINK, true, &props);
                if (r == -ENOENT)
                        continue; /* detached meanwhile */
                if (r < 0)
                        return r;
                ret->paths[ret->props.n] = paths[i];
                r = bus_replies_push(&ret->props, props);
                if (r < 0)
                        return r;
                TAKE_PTR(props);
        }
        return 0;
}

/* Link property names as JSON keys: "AttachedSince" -> "attached_since". */
static char *snake_case(const char *s) {
        size_t n = strlen(s);
        char *out = malloc(2 * n + 1), *p = out;

        if (!out)
                return NULL;
        for (size_t i = 0; i < n; i++) {
                if (s[i] >= 'A' && s[i] <= 'Z') {
                        if (i > 0)
                                *p++ = '_';
                        *p++ = (char) (s[i] - 'A' + 'a');
                } else
                        *p++ = s[i];
        }
        *p = '\0';
        return out;
}

/* A link's properties under snake_case keys, and its object path. */
static int link_json(sd_bus_message *reply, const char *path, json_t **ret) {
        _cleanup_json_ json_t *props = NULL, *obj = json_object();
        const char *key;
        json_t *value;
        int r;

        if (!obj)
                return -ENOMEM;
        r = json_from_reply(reply, "GetAll", &props);
        if (r < 0)
                return r;
        json_object_foreach(props, key, value) {
                _cleanup_free_ char *k = snake_case(key);
                const char *name = k ? json_key_with_unit(k) : NULL;

                /* One key for a thing in all the JSON: rates as in the statistics. */
                if (k && streq(k, "packets_per_second"))
                        name = "pps";
                else if (k && streq(k, "bits_per_second"))
                        name = "bps";
                if (!k || json_object_set(obj, name, value) < 0) /* borrows value: adds a ref */
                        return -ENOMEM;
        }
        if (json_object_set_new(obj, "path", json_string(path)) < 0)
                return -ENOMEM;
        *ret = TAKE_PTR(obj);
        return 0;
}

static int status_json(const ManagerInfo *info, const LinkReplies *links,
                       sd_bus_message *stats_reply, const char *degraded) {
        _cleanup_json_ json_t *out = NULL, *array = json_array(), *stats = NULL;
        int r;

        if (!array)
                return -ENOMEM;
        for (size_t i = 0; i < links->props.n; i++) {
                json_t *link = NULL;

                r = link_json(links->props.replies[i], links->paths[i], &link);
                if (r < 0)
                        return r;
                if (json_array_append_new(array, link) < 0)
                        return -ENOMEM;
        }
        r = json_from_reply(stats_reply, "GetStatistics", &stats);
        if (r < 0)
                return r;
        /* "o" hands a reference over, "O" adds one: array and stats keep theirs. */
        out = json_pack("{s:o,s:O,s:O}", "version",
                        BUS_SEEN(info, MANAGER_VERSION) ? json_string(info->version) : json_null(),
                        "links", array, "statistics", stats);
        if (!out)
                return -ENOMEM;
        if (BUS_SEEN(info, MANAGER_FLOW_TABLE_SIZE) &&
            json_object_set_new(out, "flow_table_size",
                                json_integer((json_int_t) info->flow_table_size)) < 0)
                return -ENOMEM;
        if (BUS_SEEN(info, MANAGER_POLL_INTERVAL_USEC) &&
            json_object_set_new(out, "poll_interval_usec",
                                json_integer((json_int_t) info->poll_interval_usec)) < 0)
                return -ENOMEM;
        if (json_object_set_new(out, "degraded",
                                degraded && *degraded ? json_string(degraded) : json_null()) < 0)
                return -ENOMEM;
        if (BUS_SEEN(info, MANAGER_PANIC) &&
            json_object_set_new(out, "panic", json_boolean(info->panic)) < 0)
                return -ENOMEM;
        return print_json(out);
}

static int render_links(const LinkReplies *links, uint64_t now) {
        static const BusDict dict = BUS_DICT(link_fields, LinkInfo);
        _cleanup_table_ Table *t = table_new("LINK", "IFINDEX", "MODE", "ATTACHED", "PROGRAM",
                                             "PACKETS", "DROPPED", "RATE", "FLOWS", "MEMORY",
                                             NULL);
        int r;

        if (!t)
                return -ENOMEM;
        table_align_right(t, 1u << 1 | 1u << 4 | 1u << 5 | 1u << 6 | 1u << 7 | 1u << 8 | 1u << 9);
        /* Narrower than the table: the program id goes first, then the ifindex and the time. */
        (void) table_set_priority(t, 4, 3);
        (void) table_set_priority(t, 1, 2);
        (void) table_set_priority(t, 3, 1);
        table_fit(t);
        for (size_t i = 0; i < links->props.n; i++) {
                char since[FORMAT_RELATIVE_MAX], bps[FORMAT_RATE_MAX], mem[FORMAT_BYTES_MAX];
                LinkInfo l = { .bits_per_second = NAN };

                r = bus_read_dict(links->props.replies[i], &dict, &l, NULL, NULL);
                if (r < 0) {
                        fprintf(stderr, "packetscopectl: cannot parse the properties of %s: %s\n",
                                links->paths[i], strerror(-r));
                        return r;
                }
                if ((r = table_add_cell(t, l.name)) < 0 ||
                    (r = table_add_cellf(t, "%" PRIu64, l.ifindex)) < 0 ||
                    (r = table_add_cell(t, l.mode)) < 0 ||
                    (r = table_add_cell(t, format_relative_time(since, sizeof since, now,
                                                                l.attached_since))) < 0 ||
                    (r = table_add_cellf(t, "%" PRIu64, l.program_id)) < 0 ||
                    (r = table_add_cellf(t, "%" PRIu64, l.packets)) < 0 ||
                    (r = table_add_cellf(t, "%s%" PRIu64 "%s", l.dropped > 0 ? color_on(COLOR_RED) : "",
                                         l.dropped, l.dropped > 0 ? color_off() : "")) < 0 ||
                    (r = table_add_cell(t, format_rate_bits(bps, sizeof bps,
                                                            l.bits_per_second))) < 0 ||
                    (r = table_add_cellf(t, "%" PRIu64, l.flows)) < 0 ||
                    /* What its maps hold in the kernel (Link.KernelMemory). */
                    (r = table_add_cell(t, format_bytes(mem, sizeof mem, l.kernel_memory))) < 0)
                        return r;
        }
        fputc('\n', stdout);
        return table_print(t, stdout, arg.legend);
}

static int status_text(const ManagerInfo *info, const LinkReplies *links,
                       sd_bus_message *stats_reply, const char *degraded) {
        _cleanup_(statistics_freep) Statistics *s = NULL;
        _cleanup_table_ Table *fields = fields_new();
        int r;

        if (!fields)
                return -ENOMEM;
        r = statistics_read(stats_reply, &s);
        if (r < 0)
                return r;
        if ((r = field_add(fields, "Version", "%s", strna(info->version))) < 0)
                return r;
        /* First after the version: the list does not show everything the kernel enforces. */
        if (degraded && *degraded && (r = field_add(fields, "Degraded", "%s", degraded)) < 0)
                return r;
        if (info->panic && (r = field_add(fields, "Panic mode", "on: only management traffic "
                                          "passes (packetscopectl panic off ends it)")) < 0)
                return r;
        if ((r = field_add(fields, "Links", "%zu", links->props.n)) < 0 ||
            (r = fields_add_traffic(fields, s)) < 0 ||
            (r = field_add_u64(fields, BUS_SEEN(s, STAT_DROPPED), "Dropped", s->dropped)) < 0 ||
            (r = field_add_u64(fields, BUS_SEEN(s, STAT_MALFORMED), "Malformed", s->malformed)) < 0 ||
            (r = field_add_u64(fields, BUS_SEEN(s, STAT_FRAGMENTS), "Fragments", s->fragments)) < 0)
                return r;
        if (BUS_SEEN(info, MANAGER_FLOW_TABLE_SIZE))
                r = field_add(fields, "Flows", "%" PRIu64 " (table size %" PRIu64 ")", s->flows,
                              info->flow_table_size);
        else
                r = field_add(fields, "Flows", "%" PRIu64, s->flows);
        if (r < 0)
                return r;
        r = table_print(fields, stdout, false);
        if (r < 0)
                return r;
        if (links->props.n == 0)
                return 0;
        return render_links(links, now_usec(CLOCK_REALTIME));
}

int verb_status(sd_bus *bus, char **args, int n_args) {
        static const BusDict dict = BUS_DICT(manager_fields, ManagerInfo);
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *manager = NULL, *stats = NULL;
        _cleanup_(link_replies_done) LinkReplies links = {};
        ManagerInfo info = {};
        char *degraded = NULL;
        int r;

        assert(bus);

        r = call_get_all(bus, PS_OBJECT_ROOT, PS_IFACE_MANAGER, false, &manager);
        if (r < 0)
                return r;
        r = bus_read_dict(manager, &dict, &info, NULL, NULL);
        if (r < 0) {
                fprintf(stderr, "packetscopectl: cannot parse the properties of %s: %s\n",
                        PS_OBJECT_ROOT, strerror(-r));
                goto finish;
        }
        r = get_links(bus, info.links, &links);
        if (r >= 0)
                r = call_get_statistics(bus, &stats);
        /* Not there on a daemon that predates it: then nothing is shown. */
        if (r >= 0)
                (void) sd_bus_get_property_string(bus, PS_BUS_NAME, PS_OBJECT_FILTERS,
                                                  PS_IFACE_FILTERS, "Degraded", NULL, &degraded);
        if (r >= 0)
                r = arg.json != JSON_OFF ? status_json(&info, &links, stats, degraded)
                                         : status_text(&info, &links, stats, degraded);
finish:
        strv_free(info.links);
        free(degraded);
        return r;
}

/* Whether the daemon itself guards ifname (and not some other XDP program): its Link object. */
static int guarded_link_path(sd_bus *bus, const char *ifname, char **ret) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *props = NULL;
        _cleanup_free_ char *path = NULL;
        int r;

        r = sd_bus_path_encode(PS_OBJECT_LINKS, ifname, &path);
        if (r < 0)
                return r;
        r = call_get_all(bus, path, PS_IFACE_LINK, true, &props);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(path);
        return 0;
}

static int print_link_path(const char *ifname, const char *path) {
        if (arg.json != JSON_OFF) {
                _cleanup_json_ json_t *o = json_pack("{s:s,s:s}", "link", ifname, "path", path);

                return o ? print_json(o) : -ENOMEM;
        }
        puts(path);
        return 0;
}

int verb_attach(sd_bus *bus, char **args, int n_args) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *path;
        int r;

        assert(bus);
        assert(args);

        r = bus_call(bus, PS_OBJECT_ROOT, PS_IFACE_MANAGER, "AttachLink", &error, &reply, "ss",
                     args[0], arg.mode);
        if (r < 0 && (arg.given & OPT_ENSURE) &&
            sd_bus_error_has_name(&error, PS_ERROR_ALREADY_GUARDED)) {
                _cleanup_free_ char *existing = NULL;

                /* AlreadyGuarded also covers another program's XDP attachment: only our own
                 * guard (a Link object) makes --ensure succeed. */
                if (guarded_link_path(bus, args[0], &existing) >= 0)
                        return print_link_path(args[0], existing);
        }
        if (r < 0)
                return bus_error("AttachLink", &error, r);
        r = sd_bus_message_read(reply, "o", &path);
        if (r < 0)
                return bus_error("reading the AttachLink reply", NULL, r);
        return print_link_path(args[0], path);
}

int verb_detach(sd_bus *bus, char **args, int n_args) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        int r;

        assert(bus);
        assert(args);

        r = bus_call(bus, PS_OBJECT_ROOT, PS_IFACE_MANAGER, "DetachLink", &error, NULL, "s",
                     args[0]);
        if (r < 0 && (arg.given & OPT_ENSURE) &&
            sd_bus_error_has_name(&error, PS_ERROR_NO_SUCH_LINK))
                return 0; /* not guarded: that is what was wanted */
        if (r < 0)
                return bus_error("DetachLink", &error, r);
        return 0;
}
