/* SPDX-License-Identifier: MIT */
/*
 * packetscopectl: the command-line client of packetscoped. It only ever talks to the daemon over
 * the system bus (org.packetscope.Guarder1), so every mutating call goes through the daemon's
 * polkit checks; it never opens the pinned BPF maps itself.
 */
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <time.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "addr.h"
#include "format.h"
#include "util.h"

#define BUS_NAME          "org.packetscope.Guarder1"
#define PATH_ROOT         "/org/packetscope/Guarder1"
#define PATH_CONNECTIONS  PATH_ROOT "/connections"
#define PATH_FILTERS      PATH_ROOT "/filters"
#define IFACE_MANAGER     BUS_NAME ".Manager"
#define IFACE_LINK        BUS_NAME ".Link"
#define IFACE_CONNECTIONS BUS_NAME ".Connections"
#define IFACE_FILTERS     BUS_NAME ".Filters"
#define IFACE_FILTER      BUS_NAME ".Filter"
#define IFACE_TRANSACTION BUS_NAME ".Transaction"
#define IFACE_PROPERTIES  "org.freedesktop.DBus.Properties"

/* Exit codes: 0 success, 1 the operation failed (bus error, daemon refused), 2 bad usage. */
#define EXIT_USAGE 2

#define TOP_DEFAULT         20u
#define TOP_MAX             10000u  /* the daemon's own bound on 'limit' */
#define OFFSET_MAX          99999u  /* the daemon bounds offset + limit by 100000 */
#define MONITOR_TOP_DEFAULT 10u
#define INTERVAL_DEFAULT    (1 * USEC_PER_SEC)
#define INTERVAL_MIN        (100 * UINT64_C(1000))
#define INTERVAL_MAX        (3600 * USEC_PER_SEC)
/* A rule file or import document; the daemon itself takes at most 8 MiB of it. */
#define INPUT_MAX           (16u * 1024 * 1024)
#define CONFIRM_MAX         3600u          /* the daemon's bound on confirm_seconds */
#define PRIORITY_MAX        1000000        /* rule priorities are -PRIORITY_MAX..PRIORITY_MAX */
#define RULE_TIMEOUT_MAX    (366 * 86400u) /* seconds */
#define COMMENT_WIDTH_MIN   16u            /* what the filter table keeps of a comment at least */

typedef enum JsonMode {
        JSON_OFF,
        JSON_PRETTY,
        JSON_SHORT,
} JsonMode;

/* Verb-specific options, as bits, so that each verb states which ones it accepts. */
#define OPT_BIT(n) (UINT64_C(1) << (n))
#define OPT_TOP            OPT_BIT(0)
#define OPT_OFFSET         OPT_BIT(1)
#define OPT_SORT           OPT_BIT(2)
#define OPT_PROTOCOL       OPT_BIT(3)
#define OPT_ADDRESS        OPT_BIT(4)
#define OPT_PORT           OPT_BIT(5)
#define OPT_LINK           OPT_BIT(6)
#define OPT_FAMILY         OPT_BIT(7)
#define OPT_STATE          OPT_BIT(8)
#define OPT_TYPE           OPT_BIT(9)
#define OPT_MODE           OPT_BIT(10)
#define OPT_INTERVAL       OPT_BIT(11)
#define OPT_COUNT          OPT_BIT(12)
#define OPT_ENSURE         OPT_BIT(13)
/* Rule fields, named after the rule's keys (--src-ip sets src_ip); --protocol is one too. */
#define OPT_RULE_TYPE      OPT_BIT(14)
#define OPT_SRC_IP         OPT_BIT(15)
#define OPT_DST_IP         OPT_BIT(16)
#define OPT_SRC_PORT       OPT_BIT(17)
#define OPT_DST_PORT       OPT_BIT(18)
#define OPT_TCP_FLAGS      OPT_BIT(19)
#define OPT_TCP_FLAGS_MASK OPT_BIT(20)
#define OPT_ICMP_TYPE      OPT_BIT(21)
#define OPT_ICMP_CODE      OPT_BIT(22)
#define OPT_INNER_SRC_IP   OPT_BIT(23)
#define OPT_INNER_DST_IP   OPT_BIT(24)
#define OPT_INNER_PROTOCOL OPT_BIT(25)
#define OPT_INNER_SRC_PORT OPT_BIT(26)
#define OPT_INNER_DST_PORT OPT_BIT(27)
#define OPT_ACTION         OPT_BIT(28)
#define OPT_ENABLED        OPT_BIT(29)
#define OPT_COMMENT        OPT_BIT(30)
#define OPT_PRIORITY       OPT_BIT(31)
#define OPT_TIMEOUT        OPT_BIT(32)
#define OPT_FORCE          OPT_BIT(33)
#define OPT_REPLACE        OPT_BIT(34)
#define OPT_CONFIRM        OPT_BIT(35)
#define OPT_YES            OPT_BIT(36)
#define OPT_JSON_OUTPUT    OPT_BIT(37)

#define OPT_RULE_FIELDS                                                                          \
        (OPT_RULE_TYPE | OPT_PROTOCOL | OPT_SRC_IP | OPT_DST_IP | OPT_SRC_PORT | OPT_DST_PORT |  \
         OPT_TCP_FLAGS | OPT_TCP_FLAGS_MASK | OPT_ICMP_TYPE | OPT_ICMP_CODE | OPT_INNER_SRC_IP |  \
         OPT_INNER_DST_IP | OPT_INNER_PROTOCOL | OPT_INNER_SRC_PORT | OPT_INNER_DST_PORT |        \
         OPT_ACTION | OPT_ENABLED | OPT_COMMENT | OPT_PRIORITY | OPT_TIMEOUT | OPT_FORCE)

static const char *const option_names[] = {
        "top", "offset", "sort", "protocol", "address", "port", "link", "family", "state", "type",
        "mode", "interval", "count", "ensure",
        "rule-type", "src-ip", "dst-ip", "src-port", "dst-port", "tcp-flags", "tcp-flags-mask",
        "icmp-type", "icmp-code", "inner-src-ip", "inner-dst-ip", "inner-protocol",
        "inner-src-port", "inner-dst-port", "action", "enabled", "comment", "priority", "timeout",
        "force", "replace", "confirm", "yes", "json-output",
};

static struct {
        JsonMode json;
        bool json_explicit;     /* --json=MODE: the output mode, whatever else --json means */
        const char *json_next;  /* the word after a bare --json: the rule, for the rule verbs */
        bool legend;
        bool ask_password;
        uint64_t given; /* OPT_* bits seen on the command line */
        uint32_t top;
        uint32_t offset;
        const char *sort;
        char protocol[16];
        const char *address;
        uint16_t port;
        const char *link;
        const char *family;
        const char *state;
        uint8_t icmp_type;
        const char *mode;
        uint64_t interval_usec;
        uint64_t count;
        json_t *fields;         /* the rule field options, as rule keys and JSON values */
        json_t *rule;           /* the rule of add/update/test: --json JSON with the fields on top */
        uint32_t filter_id;
        uint32_t confirm_sec;
} arg = {
        .legend = true,
        .ask_password = true,
        .mode = "auto",
        .interval_usec = INTERVAL_DEFAULT,
};

/* json_decrefp() comes with jansson (>= 2.9). */
#define _cleanup_json_ _cleanup_(json_decrefp)

static int usage_error(const char *format, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *format, ...) {
        va_list ap;

        fputs("packetscopectl: ", stderr);
        va_start(ap, format);
        vfprintf(stderr, format, ap);
        va_end(ap);
        fputs("\nTry 'packetscopectl --help' for more information.\n", stderr);
        return -EINVAL;
}

/* A failed bus call: the daemon's own error name and text, which say what was wrong. */
static int bus_error(const char *what, const sd_bus_error *error, int r) {
        if (sd_bus_error_is_set(error))
                fprintf(stderr, "packetscopectl: %s: %s\n", error->name,
                        error->message ? error->message : what);
        else
                fprintf(stderr, "packetscopectl: %s: %s\n", what, strerror(r < 0 ? -r : r));
        return r < 0 ? r : -EIO;
}

/* ---- a{sv} (and anything else) from the bus to JSON ---- */

static int json_from_bus(sd_bus_message *m, json_t **ret);

static int read_basic_as_string(sd_bus_message *m, char type, char **ret) {
        union {
                uint8_t y;
                int b;
                int16_t n;
                uint16_t q;
                int32_t i;
                uint32_t u;
                int64_t x;
                uint64_t t;
                double d;
                const char *s;
                int h;
        } v;
        int r;

        r = sd_bus_message_read_basic(m, type, &v);
        if (r < 0)
                return r;
        switch (type) {
        case 'y': r = asprintf(ret, "%u", (unsigned) v.y); break;
        case 'b': r = asprintf(ret, "%s", v.b ? "true" : "false"); break;
        case 'n': r = asprintf(ret, "%d", (int) v.n); break;
        case 'q': r = asprintf(ret, "%u", (unsigned) v.q); break;
        case 'i': r = asprintf(ret, "%" PRIi32, v.i); break;
        case 'u': r = asprintf(ret, "%" PRIu32, v.u); break;
        case 'x': r = asprintf(ret, "%" PRIi64, v.x); break;
        case 't': r = asprintf(ret, "%" PRIu64, v.t); break;
        case 'd': r = asprintf(ret, "%g", v.d); break;
        case 's': case 'o': case 'g': r = asprintf(ret, "%s", v.s); break;
        case 'h': r = asprintf(ret, "%d", v.h); break;
        default: return -EINVAL;
        }
        return r < 0 ? -ENOMEM : 0;
}

static int json_from_basic(sd_bus_message *m, char type, json_t **ret) {
        union {
                uint8_t y;
                int b;
                int16_t n;
                uint16_t q;
                int32_t i;
                uint32_t u;
                int64_t x;
                uint64_t t;
                double d;
                const char *s;
                int h;
        } v;
        json_t *j;
        int r;

        r = sd_bus_message_read_basic(m, type, &v);
        if (r < 0)
                return r;
        switch (type) {
        case 'y': j = json_integer(v.y); break;
        case 'b': j = json_boolean(v.b); break;
        case 'n': j = json_integer(v.n); break;
        case 'q': j = json_integer(v.q); break;
        case 'i': j = json_integer(v.i); break;
        case 'u': j = json_integer(v.u); break;
        case 'x': j = json_integer(v.x); break;
        /* jansson integers are signed 64 bits: the (unreachable in practice) top half of a
         * counter becomes a real rather than a wrong negative number. */
        case 't': j = v.t > INT64_MAX ? json_real((double) v.t) : json_integer((json_int_t) v.t); break;
        /* JSON has no NaN or infinity. */
        case 'd': j = isfinite(v.d) ? json_real(v.d) : json_null(); break;
        case 's': case 'o': case 'g': j = json_string(v.s); break;
        default: j = json_null(); break; /* file descriptors mean nothing in JSON */
        }
        if (!j)
                return -ENOMEM;
        *ret = j;
        return 0;
}

/* Dictionaries become objects (keys as text), other arrays and structs arrays, variants their
 * content: so a newer daemon's extra keys of any type come through unharmed. */
static int json_from_dict(sd_bus_message *m, const char *contents, json_t **ret) {
        _cleanup_json_ json_t *obj = json_object();
        _cleanup_free_ char *entry = NULL;
        int r;

        if (!obj)
                return -ENOMEM;
        /* contents is "{KV}"; the entry container takes "KV". */
        entry = strndup(contents + 1, strlen(contents) - 2);
        if (!entry)
                return -ENOMEM;
        r = sd_bus_message_enter_container(m, 'a', contents);
        if (r < 0)
                return r;
        for (;;) {
                _cleanup_free_ char *key = NULL;
                json_t *value = NULL;

                r = sd_bus_message_enter_container(m, 'e', entry);
                if (r < 0)
                        return r;
                if (r == 0)
                        break;
                r = read_basic_as_string(m, entry[0], &key);
                if (r < 0)
                        return r;
                r = json_from_bus(m, &value);
                if (r < 0)
                        return r;
                if (json_object_set_new(obj, key, value) < 0) /* steals value, even on failure */
                        return -ENOMEM;
                r = sd_bus_message_exit_container(m);
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_exit_container(m);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(obj);
        return 0;
}

static int json_from_sequence(sd_bus_message *m, char type, const char *contents, json_t **ret) {
        _cleanup_json_ json_t *array = json_array();
        int r;

        if (!array)
                return -ENOMEM;
        r = sd_bus_message_enter_container(m, type, contents);
        if (r < 0)
                return r;
        for (;;) {
                json_t *value = NULL;

                r = sd_bus_message_peek_type(m, NULL, NULL);
                if (r < 0)
                        return r;
                if (r == 0)
                        break;
                r = json_from_bus(m, &value);
                if (r < 0)
                        return r;
                if (json_array_append_new(array, value) < 0)
                        return -ENOMEM;
        }
        r = sd_bus_message_exit_container(m);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(array);
        return 0;
}

static int json_from_bus(sd_bus_message *m, json_t **ret) {
        const char *contents;
        char type;
        int r;

        r = sd_bus_message_peek_type(m, &type, &contents);
        if (r < 0)
                return r;
        if (r == 0)
                return -ENXIO;
        switch (type) {
        case 'v':
                r = sd_bus_message_enter_container(m, 'v', contents);
                if (r < 0)
                        return r;
                r = json_from_bus(m, ret);
                if (r < 0)
                        return r;
                return sd_bus_message_exit_container(m);
        case 'a':
                if (contents[0] == '{')
                        return json_from_dict(m, contents, ret);
                return json_from_sequence(m, 'a', contents, ret);
        case 'r':
                return json_from_sequence(m, 'r', contents, ret);
        default:
                return json_from_basic(m, type, ret);
        }
}

/* ---- reading values back out of the decoded objects ---- */

static uint64_t jget_u64(const json_t *o, const char *key) {
        json_t *v = json_object_get(o, key);

        if (json_is_integer(v))
                return json_integer_value(v) < 0 ? 0 : (uint64_t) json_integer_value(v);
        if (json_is_real(v) && json_real_value(v) > 0)
                return json_real_value(v) >= 18446744073709551615.0 ? UINT64_MAX
                                                                    : (uint64_t) json_real_value(v);
        return 0;
}

static double jget_double(const json_t *o, const char *key) {
        json_t *v = json_object_get(o, key);

        return json_is_number(v) ? json_number_value(v) : NAN;
}

static const char *jget_str(const json_t *o, const char *key) {
        return json_string_value(json_object_get(o, key));
}

static bool jget_bool(const json_t *o, const char *key) {
        return json_is_true(json_object_get(o, key));
}

static int print_json(const json_t *j) {
        size_t flags = arg.json == JSON_SHORT ? JSON_COMPACT : JSON_INDENT(2);

        if (json_dumpf(j, stdout, flags | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY) < 0)
                return -EIO;
        fputc('\n', stdout);
        return 0;
}

/* ---- bus calls ---- */

static int call_get_all(sd_bus *bus, const char *path, const char *interface, bool missing_ok,
                        json_t **ret) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        r = sd_bus_call_method(bus, BUS_NAME, path, IFACE_PROPERTIES, "GetAll", &error, &reply,
                               "s", interface);
        if (r < 0) {
                /* A link may go away between reading Links and asking about it. */
                if (missing_ok && (sd_bus_error_has_name(&error, SD_BUS_ERROR_UNKNOWN_OBJECT) ||
                                   sd_bus_error_has_name(&error, SD_BUS_ERROR_UNKNOWN_INTERFACE)))
                        return -ENOENT;
                return bus_error("reading properties", &error, r);
        }
        r = json_from_bus(reply, ret);
        if (r < 0)
                fprintf(stderr, "packetscopectl: cannot parse the properties of %s: %s\n", path,
                        strerror(-r));
        return r;
}

static int call_get_statistics(sd_bus *bus, json_t **ret) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        r = sd_bus_call_method(bus, BUS_NAME, PATH_ROOT, IFACE_MANAGER, "GetStatistics", &error,
                               &reply, NULL);
        if (r < 0)
                return bus_error("GetStatistics", &error, r);
        r = json_from_bus(reply, ret);
        if (r < 0)
                fprintf(stderr, "packetscopectl: cannot parse the statistics: %s\n", strerror(-r));
        return r;
}

/* Only the keys the user gave, plus the limit. */
static int append_query(sd_bus_message *m, bool icmp, uint32_t default_limit) {
        int r;

        r = sd_bus_message_open_container(m, 'a', "{sv}");
        if (r < 0)
                return r;
        r = sd_bus_message_append(m, "{sv}", "limit", "u",
                                  (arg.given & OPT_TOP) ? arg.top : default_limit);
        if (r >= 0 && (arg.given & OPT_OFFSET))
                r = sd_bus_message_append(m, "{sv}", "offset", "u", arg.offset);
        if (r >= 0 && (arg.given & OPT_SORT))
                r = sd_bus_message_append(m, "{sv}", "sort", "s", arg.sort);
        if (r >= 0 && !icmp && (arg.given & OPT_PROTOCOL))
                r = sd_bus_message_append(m, "{sv}", "protocol", "s", arg.protocol);
        if (r >= 0 && (arg.given & OPT_ADDRESS))
                r = sd_bus_message_append(m, "{sv}", "address", "s", arg.address);
        if (r >= 0 && !icmp && (arg.given & OPT_PORT))
                r = sd_bus_message_append(m, "{sv}", "port", "q", arg.port);
        if (r >= 0 && (arg.given & OPT_LINK))
                r = sd_bus_message_append(m, "{sv}", "link", "s", arg.link);
        if (r >= 0 && (arg.given & OPT_FAMILY))
                r = sd_bus_message_append(m, "{sv}", "family", "s", arg.family);
        if (r >= 0 && !icmp && (arg.given & OPT_STATE))
                r = sd_bus_message_append(m, "{sv}", "state", "s", arg.state);
        if (r >= 0 && icmp && (arg.given & OPT_TYPE))
                r = sd_bus_message_append(m, "{sv}", "type", "y", arg.icmp_type);
        if (r < 0)
                return r;
        return sd_bus_message_close_container(m);
}

static int new_list_call(sd_bus *bus, bool icmp, uint32_t default_limit, sd_bus_message **ret) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        int r;

        r = sd_bus_message_new_method_call(bus, &m, BUS_NAME, PATH_CONNECTIONS, IFACE_CONNECTIONS,
                                           icmp ? "ListIcmp" : "List");
        if (r < 0)
                return r;
        r = append_query(m, icmp, default_limit);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(m);
        return 0;
}

static int call_list(sd_bus *bus, bool icmp, uint32_t default_limit, json_t **ret) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        int r;

        r = new_list_call(bus, icmp, default_limit, &m);
        if (r < 0)
                return bus_error("building the query", &error, r);
        r = sd_bus_call(bus, m, 0, &error, &reply);
        if (r < 0)
                return bus_error(icmp ? "ListIcmp" : "List", &error, r);
        r = json_from_bus(reply, ret);
        if (r < 0)
                fprintf(stderr, "packetscopectl: cannot parse the reply: %s\n", strerror(-r));
        return r;
}

/* ---- human output ---- */

static const char *icmp_type_name(const char *family, unsigned type) {
        static const char *const v4[] = {
                [0] = "echo-reply", [3] = "dest-unreachable", [4] = "source-quench",
                [5] = "redirect", [8] = "echo-request", [9] = "router-advert",
                [10] = "router-solicit", [11] = "time-exceeded", [12] = "parameter-problem",
                [13] = "timestamp", [14] = "timestamp-reply",
        };
        static const char *const v6[] = {
                [1] = "dest-unreachable", [2] = "packet-too-big", [3] = "time-exceeded",
                [4] = "parameter-problem", [128] = "echo-request", [129] = "echo-reply",
                [130] = "mld-query", [131] = "mld-report", [132] = "mld-done",
                [133] = "router-solicit", [134] = "router-advert", [135] = "neighbor-solicit",
                [136] = "neighbor-advert", [137] = "redirect", [143] = "mld2-report",
        };

        if (streq_ptr(family, "ipv6"))
                return type < ELEMENTSOF(v6) ? v6[type] : NULL;
        return type < ELEMENTSOF(v4) ? v4[type] : NULL;
}

static void format_icmp_type(char *buf, size_t size, const char *family, unsigned type) {
        const char *name = icmp_type_name(family, type);

        if (name)
                snprintf(buf, size, "%s (%u)", name, type);
        else
                snprintf(buf, size, "%u", type);
}

/* Ports only mean something for these; other protocols show bare addresses. */
static bool protocol_has_ports(unsigned ip_protocol) {
        return ip_protocol == 6 || ip_protocol == 17 || ip_protocol == 132 || ip_protocol == 136;
}

static void format_flow_endpoint(char *buf, size_t size, const char *addr, uint16_t port,
                                 unsigned ip_protocol) {
        if (protocol_has_ports(ip_protocol))
                format_endpoint(buf, size, addr, port);
        else
                snprintf(buf, size, "%s", strna(addr));
}

static int render_connections(FILE *f, const json_t *rows, uint64_t now, bool header) {
        _cleanup_table_ Table *t = table_new("PROTO", "SOURCE", "DESTINATION", "STATE", "FLAGS",
                                             "PACKETS", "BYTES", "PPS", "RATE", "LAST", "LINK",
                                             NULL);
        size_t i;
        json_t *row;
        int r = 0;

        if (!t)
                return -ENOMEM;
        for (size_t c = 5; c <= 8; c++)
                table_set_align(t, c, TABLE_ALIGN_RIGHT);
        json_array_foreach(rows, i, row) {
                char src[FORMAT_ENDPOINT_MAX], dst[FORMAT_ENDPOINT_MAX], flags[FORMAT_TCP_FLAGS_MAX];
                char bytes[FORMAT_BYTES_MAX], pps[FORMAT_RATE_MAX], bps[FORMAT_RATE_MAX];
                char last[FORMAT_RELATIVE_MAX];
                unsigned proto = (unsigned) jget_u64(row, "ip_protocol");
                bool tcp = proto == 6;

                format_flow_endpoint(src, sizeof src, jget_str(row, "src"),
                                     (uint16_t) jget_u64(row, "sport"), proto);
                format_flow_endpoint(dst, sizeof dst, jget_str(row, "dst"),
                                     (uint16_t) jget_u64(row, "dport"), proto);
                if ((r = table_add_cell(t, jget_str(row, "protocol"))) < 0 ||
                    (r = table_add_cell(t, src)) < 0 ||
                    (r = table_add_cell(t, dst)) < 0 ||
                    (r = table_add_cell(t, tcp ? jget_str(row, "state") : "-")) < 0 ||
                    (r = table_add_cell(t, tcp ? format_tcp_flags(flags, sizeof flags,
                                                                  (uint8_t) jget_u64(row, "tcp_flags"))
                                               : "-")) < 0 ||
                    (r = table_add_cellf(t, "%" PRIu64, jget_u64(row, "packets"))) < 0 ||
                    (r = table_add_cell(t, format_bytes(bytes, sizeof bytes,
                                                        jget_u64(row, "bytes")))) < 0 ||
                    (r = table_add_cell(t, format_rate_pps(pps, sizeof pps,
                                                           jget_double(row, "pps")))) < 0 ||
                    (r = table_add_cell(t, format_rate_bits(bps, sizeof bps,
                                                            jget_double(row, "bps")))) < 0 ||
                    (r = table_add_cell(t, format_relative_time(last, sizeof last, now,
                                                                jget_u64(row, "last_seen")))) < 0 ||
                    (r = table_add_cell(t, jget_str(row, "link"))) < 0)
                        return r;
        }
        if (json_array_size(rows) == 0 && !header)
                return 0;
        return table_print(t, f, header);
}

static int render_icmp(FILE *f, const json_t *rows, uint64_t now, bool header) {
        _cleanup_table_ Table *t = table_new("TYPE", "CODE", "SOURCE", "DESTINATION", "PACKETS",
                                             "BYTES", "LAST", "LINK", "QUOTED", NULL);
        size_t i;
        json_t *row;
        int r;

        if (!t)
                return -ENOMEM;
        table_set_align(t, 1, TABLE_ALIGN_RIGHT);
        table_set_align(t, 4, TABLE_ALIGN_RIGHT);
        table_set_align(t, 5, TABLE_ALIGN_RIGHT);
        json_array_foreach(rows, i, row) {
                char type[48], bytes[FORMAT_BYTES_MAX], last[FORMAT_RELATIVE_MAX];
                _cleanup_free_ char *quoted = NULL;
                const char *family = jget_str(row, "family");

                format_icmp_type(type, sizeof type, family, (unsigned) jget_u64(row, "type"));
                /* An error quotes the header of the packet that caused it: show that flow. */
                if (jget_bool(row, "error") && jget_str(row, "inner_src")) {
                        char isrc[FORMAT_ENDPOINT_MAX], idst[FORMAT_ENDPOINT_MAX];
                        unsigned iproto = (unsigned) jget_u64(row, "inner_ip_protocol");

                        format_flow_endpoint(isrc, sizeof isrc, jget_str(row, "inner_src"),
                                             (uint16_t) jget_u64(row, "inner_sport"), iproto);
                        format_flow_endpoint(idst, sizeof idst, jget_str(row, "inner_dst"),
                                             (uint16_t) jget_u64(row, "inner_dport"), iproto);
                        if (asprintf(&quoted, "%s %s -> %s", strna(jget_str(row, "inner_protocol")),
                                     isrc, idst) < 0)
                                return -ENOMEM;
                }
                if ((r = table_add_cell(t, type)) < 0 ||
                    (r = table_add_cellf(t, "%" PRIu64, jget_u64(row, "code"))) < 0 ||
                    (r = table_add_cell(t, jget_str(row, "src"))) < 0 ||
                    (r = table_add_cell(t, jget_str(row, "dst"))) < 0 ||
                    (r = table_add_cellf(t, "%" PRIu64, jget_u64(row, "packets"))) < 0 ||
                    (r = table_add_cell(t, format_bytes(bytes, sizeof bytes,
                                                        jget_u64(row, "bytes")))) < 0 ||
                    (r = table_add_cell(t, format_relative_time(last, sizeof last, now,
                                                                jget_u64(row, "last_seen")))) < 0 ||
                    (r = table_add_cell(t, jget_str(row, "link"))) < 0 ||
                    (r = table_add_cell(t, quoted)) < 0)
                        return r;
        }
        if (json_array_size(rows) == 0 && !header)
                return 0;
        return table_print(t, f, header);
}

/* "Label: value" lines with the labels right-aligned, as hostnamectl prints them. */
static Table *fields_new(void) {
        Table *t = table_new("FIELD", "VALUE", NULL);

        if (t)
                table_set_align(t, 0, TABLE_ALIGN_RIGHT);
        return t;
}

static int field_add(Table *t, const char *label, const char *format, ...)
        __attribute__((format(printf, 3, 4)));
static int field_add(Table *t, const char *label, const char *format, ...) {
        _cleanup_free_ char *value = NULL;
        va_list ap;
        int r;

        va_start(ap, format);
        r = vasprintf(&value, format, ap);
        va_end(ap);
        if (r < 0)
                return -ENOMEM;
        r = table_add_cellf(t, "%s:", label);
        if (r < 0)
                return r;
        return table_add_cell(t, value);
}

static int field_add_u64(Table *t, const json_t *o, const char *label, const char *key) {
        if (!json_object_get(o, key))
                return 0; /* an older daemon: leave out what it doesn't report */
        return field_add(t, label, "%" PRIu64, jget_u64(o, key));
}

static int fields_add_traffic(Table *t, const json_t *stats) {
        char bytes[FORMAT_BYTES_MAX], pps[FORMAT_RATE_MAX], bps[FORMAT_RATE_MAX];
        int r;

        r = field_add(t, "Packets", "%" PRIu64 " (%s)", jget_u64(stats, "packets"),
                      format_rate_pps(pps, sizeof pps, jget_double(stats, "pps")));
        if (r < 0)
                return r;
        return field_add(t, "Bytes", "%s (%s)", format_bytes(bytes, sizeof bytes,
                                                             jget_u64(stats, "bytes")),
                         format_rate_bits(bps, sizeof bps, jget_double(stats, "bps")));
}

static const char *const protocol_keys[] = { "tcp", "udp", "icmp", "icmpv6", "other" };

/* Keys of GetStatistics this client knows how to show; anything else is listed as it comes. */
static bool stats_key_known(const char *key) {
        static const char *const known[] = {
                "packets", "bytes", "passed", "dropped", "malformed", "fragments", "vlan", "ipv4",
                "ipv6", "non_ip", "icmp_errors", "flow_update_failures", "pps", "bps", "flows",
                "icmp_entries", "links", "run_time_ns", "run_count", "icmp_types", "icmpv6_types",
        };

        for (size_t i = 0; i < ELEMENTSOF(known); i++)
                if (streq(key, known[i]))
                        return true;
        for (size_t i = 0; i < ELEMENTSOF(protocol_keys); i++) {
                size_t l = strlen(protocol_keys[i]);

                if (strncmp(key, protocol_keys[i], l) == 0 &&
                    (streq(key + l, "_packets") || streq(key + l, "_bytes")))
                        return true;
        }
        return false;
}

/* Packets and bytes per protocol (and rates, given the previous statistics); preceded by an
 * empty line, and nothing at all when the daemon reports no per-protocol counters. */
static int render_protocols(FILE *f, const json_t *stats, const json_t *previous,
                            double elapsed_sec, bool header) {
        _cleanup_table_ Table *t = NULL;
        bool rates = previous && elapsed_sec > 0;
        int r;

        t = rates ? table_new("PROTOCOL", "PACKETS", "BYTES", "PPS", "RATE", NULL)
                  : table_new("PROTOCOL", "PACKETS", "BYTES", NULL);
        if (!t)
                return -ENOMEM;
        for (size_t c = 1; c <= (rates ? 4u : 2u); c++)
                table_set_align(t, c, TABLE_ALIGN_RIGHT);
        for (size_t i = 0; i < ELEMENTSOF(protocol_keys); i++) {
                char pk[32], bk[32], bytes[FORMAT_BYTES_MAX];
                uint64_t packets, nbytes;

                snprintf(pk, sizeof pk, "%s_packets", protocol_keys[i]);
                snprintf(bk, sizeof bk, "%s_bytes", protocol_keys[i]);
                if (!json_object_get(stats, pk))
                        continue;
                packets = jget_u64(stats, pk);
                nbytes = jget_u64(stats, bk);
                if ((r = table_add_cell(t, protocol_keys[i])) < 0 ||
                    (r = table_add_cellf(t, "%" PRIu64, packets)) < 0 ||
                    (r = table_add_cell(t, format_bytes(bytes, sizeof bytes, nbytes))) < 0)
                        return r;
                if (rates) {
                        char pps[FORMAT_RATE_MAX], bps[FORMAT_RATE_MAX];
                        uint64_t p0 = jget_u64(previous, pk), b0 = jget_u64(previous, bk);
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

static int render_icmp_types(FILE *f, const json_t *types, const char *family, const char *title,
                             bool header) {
        _cleanup_table_ Table *t = table_new(title, "PACKETS", NULL);
        const char *key;
        json_t *value;
        int r;

        if (!t)
                return -ENOMEM;
        if (!json_is_object(types) || json_object_size(types) == 0)
                return 0;
        table_set_align(t, 1, TABLE_ALIGN_RIGHT);
        json_object_foreach((json_t *) types, key, value) {
                char name[48];
                uint32_t type;

                if (safe_atou32(key, &type) < 0 || type > 255)
                        continue;
                format_icmp_type(name, sizeof name, family, type);
                if ((r = table_add_cell(t, name)) < 0 ||
                    (r = table_add_cellf(t, "%" PRIu64,
                                         json_is_integer(value) ? (uint64_t) json_integer_value(value)
                                                                : 0)) < 0)
                        return r;
        }
        fputc('\n', f);
        return table_print(t, f, header);
}

static int render_stats(FILE *f, const json_t *stats) {
        _cleanup_table_ Table *t = fields_new();
        const char *key;
        json_t *value;
        int r;

        if (!t)
                return -ENOMEM;
        if ((r = field_add_u64(t, stats, "Links", "links")) < 0 ||
            (r = fields_add_traffic(t, stats)) < 0 ||
            (r = field_add_u64(t, stats, "Passed", "passed")) < 0 ||
            (r = field_add_u64(t, stats, "Dropped", "dropped")) < 0 ||
            (r = field_add_u64(t, stats, "Malformed", "malformed")) < 0 ||
            (r = field_add_u64(t, stats, "Fragments", "fragments")) < 0 ||
            (r = field_add_u64(t, stats, "VLAN tagged", "vlan")) < 0 ||
            (r = field_add_u64(t, stats, "IPv4", "ipv4")) < 0 ||
            (r = field_add_u64(t, stats, "IPv6", "ipv6")) < 0 ||
            (r = field_add_u64(t, stats, "Non-IP", "non_ip")) < 0 ||
            (r = field_add_u64(t, stats, "ICMP errors", "icmp_errors")) < 0 ||
            (r = field_add_u64(t, stats, "Flows", "flows")) < 0 ||
            (r = field_add_u64(t, stats, "ICMP entries", "icmp_entries")) < 0 ||
            (r = field_add_u64(t, stats, "Flow update failures", "flow_update_failures")) < 0)
                return r;
        if (jget_u64(stats, "run_count") > 0) {
                uint64_t runs = jget_u64(stats, "run_count");

                r = field_add(t, "XDP run time", "%.0f ns per packet (%" PRIu64 " runs)",
                              (double) jget_u64(stats, "run_time_ns") / (double) runs, runs);
                if (r < 0)
                        return r;
        }
        /* Whatever a newer daemon adds: shown as it comes rather than dropped. */
        json_object_foreach((json_t *) stats, key, value) {
                _cleanup_free_ char *text = NULL;

                if (stats_key_known(key))
                        continue;
                text = json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY);
                if (!text)
                        return -ENOMEM;
                r = field_add(t, key, "%s", text);
                if (r < 0)
                        return r;
        }
        r = table_print(t, f, false);
        if (r < 0)
                return r;
        r = render_protocols(f, stats, NULL, 0, arg.legend);
        if (r < 0)
                return r;
        r = render_icmp_types(f, json_object_get(stats, "icmp_types"), "ipv4", "ICMP TYPE",
                              arg.legend);
        if (r < 0)
                return r;
        return render_icmp_types(f, json_object_get(stats, "icmpv6_types"), "ipv6", "ICMPV6 TYPE",
                                 arg.legend);
}

/* ---- verbs ---- */

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

static int link_object(sd_bus *bus, const char *path, json_t **ret) {
        _cleanup_json_ json_t *props = NULL, *obj = json_object();
        const char *key;
        json_t *value;
        int r;

        if (!obj)
                return -ENOMEM;
        r = call_get_all(bus, path, IFACE_LINK, true, &props);
        if (r < 0)
                return r;
        json_object_foreach(props, key, value) {
                _cleanup_free_ char *k = snake_case(key);

                if (!k || json_object_set(obj, k, value) < 0) /* borrows value: adds a ref */
                        return -ENOMEM;
        }
        if (json_object_set_new(obj, "object_path", json_string(path)) < 0)
                return -ENOMEM;
        *ret = TAKE_PTR(obj);
        return 0;
}

static int verb_status(sd_bus *bus, char **args, int n_args) {
        _cleanup_json_ json_t *manager = NULL, *stats = NULL, *links = json_array(), *out = NULL;
        _cleanup_table_ Table *fields = fields_new(), *lt = NULL;
        json_t *paths, *p;
        uint64_t now = now_usec(CLOCK_REALTIME);
        size_t i;
        int r;

        if (!links || !fields)
                return -ENOMEM;
        r = call_get_all(bus, PATH_ROOT, IFACE_MANAGER, false, &manager);
        if (r < 0)
                return r;
        paths = json_object_get(manager, "Links");
        json_array_foreach(paths, i, p) {
                json_t *link = NULL;

                if (!json_is_string(p))
                        continue;
                r = link_object(bus, json_string_value(p), &link);
                if (r == -ENOENT)
                        continue; /* detached meanwhile */
                if (r < 0)
                        return r;
                if (json_array_append_new(links, link) < 0)
                        return -ENOMEM;
        }
        r = call_get_statistics(bus, &stats);
        if (r < 0)
                return r;

        if (arg.json != JSON_OFF) {
                json_t *version = json_object_get(manager, "Version");

                /* json_pack's "O" adds a reference: manager, links and stats keep theirs. */
                out = json_pack("{s:O,s:O,s:O}", "version", version ? version : json_null(),
                                "links", links, "statistics", stats);
                if (!out)
                        return -ENOMEM;
                if (json_object_get(manager, "FlowTableSize") &&
                    json_object_set(out, "flow_table_size",
                                    json_object_get(manager, "FlowTableSize")) < 0)
                        return -ENOMEM;
                if (json_object_get(manager, "PollIntervalUSec") &&
                    json_object_set(out, "poll_interval_usec",
                                    json_object_get(manager, "PollIntervalUSec")) < 0)
                        return -ENOMEM;
                return print_json(out);
        }

        if ((r = field_add(fields, "Version", "%s", strna(jget_str(manager, "Version")))) < 0 ||
            (r = field_add(fields, "Links", "%zu", json_array_size(links))) < 0 ||
            (r = fields_add_traffic(fields, stats)) < 0 ||
            (r = field_add_u64(fields, stats, "Dropped", "dropped")) < 0 ||
            (r = field_add_u64(fields, stats, "Malformed", "malformed")) < 0 ||
            (r = field_add_u64(fields, stats, "Fragments", "fragments")) < 0)
                return r;
        if (json_object_get(manager, "FlowTableSize"))
                r = field_add(fields, "Flows", "%" PRIu64 " (table size %" PRIu64 ")",
                              jget_u64(stats, "flows"), jget_u64(manager, "FlowTableSize"));
        else
                r = field_add(fields, "Flows", "%" PRIu64, jget_u64(stats, "flows"));
        if (r < 0)
                return r;
        r = table_print(fields, stdout, false);
        if (r < 0)
                return r;
        if (json_array_size(links) == 0)
                return 0;

        lt = table_new("LINK", "IFINDEX", "MODE", "ATTACHED", "PROGRAM", "PACKETS", "DROPPED",
                       "RATE", "FLOWS", NULL);
        if (!lt)
                return -ENOMEM;
        for (size_t c = 0; c < 9; c++)
                if (c == 1 || c >= 4)
                        table_set_align(lt, c, TABLE_ALIGN_RIGHT);
        json_array_foreach(links, i, p) {
                char since[FORMAT_RELATIVE_MAX], bps[FORMAT_RATE_MAX];

                if ((r = table_add_cell(lt, jget_str(p, "name"))) < 0 ||
                    (r = table_add_cellf(lt, "%" PRIu64, jget_u64(p, "ifindex"))) < 0 ||
                    (r = table_add_cell(lt, jget_str(p, "mode"))) < 0 ||
                    (r = table_add_cell(lt, format_relative_time(since, sizeof since, now,
                                                                 jget_u64(p, "attached_since")))) < 0 ||
                    (r = table_add_cellf(lt, "%" PRIu64, jget_u64(p, "program_id"))) < 0 ||
                    (r = table_add_cellf(lt, "%" PRIu64, jget_u64(p, "packets"))) < 0 ||
                    (r = table_add_cellf(lt, "%" PRIu64, jget_u64(p, "dropped"))) < 0 ||
                    (r = table_add_cell(lt, format_rate_bits(bps, sizeof bps,
                                                             jget_double(p, "bits_per_second")))) < 0 ||
                    (r = table_add_cellf(lt, "%" PRIu64, jget_u64(p, "flows"))) < 0)
                        return r;
        }
        fputc('\n', stdout);
        return table_print(lt, stdout, arg.legend);
}

/* Whether the daemon itself guards ifname (and not some other XDP program): its Link object. */
static int guarded_link_path(sd_bus *bus, const char *ifname, char **ret) {
        _cleanup_free_ char *path = NULL;
        _cleanup_json_ json_t *props = NULL;
        int r;

        r = sd_bus_path_encode(PATH_ROOT "/link", ifname, &path);
        if (r < 0)
                return r;
        r = call_get_all(bus, path, IFACE_LINK, true, &props);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(path);
        return 0;
}

static int print_link_path(const char *ifname, const char *path) {
        if (arg.json != JSON_OFF) {
                _cleanup_json_ json_t *o = json_pack("{s:s,s:s}", "link", ifname,
                                                     "object_path", path);

                return o ? print_json(o) : -ENOMEM;
        }
        puts(path);
        return 0;
}

static int verb_attach(sd_bus *bus, char **args, int n_args) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *path;
        int r;

        r = sd_bus_call_method(bus, BUS_NAME, PATH_ROOT, IFACE_MANAGER, "AttachLink", &error,
                               &reply, "ss", args[0], arg.mode);
        if (r < 0 && (arg.given & OPT_ENSURE) &&
            sd_bus_error_has_name(&error, BUS_NAME ".Error.AlreadyGuarded")) {
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

static int verb_detach(sd_bus *bus, char **args, int n_args) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        int r;

        r = sd_bus_call_method(bus, BUS_NAME, PATH_ROOT, IFACE_MANAGER, "DetachLink", &error, NULL,
                               "s", args[0]);
        if (r < 0 && (arg.given & OPT_ENSURE) &&
            sd_bus_error_has_name(&error, BUS_NAME ".Error.NoSuchLink"))
                return 0; /* not guarded: that is what was wanted */
        if (r < 0)
                return bus_error("DetachLink", &error, r);
        return 0;
}

static void print_list_legend(sd_bus *bus, size_t shown, const char *singular,
                              const char *plural, const char *count_prop) {
        uint64_t total;

        if (!arg.legend)
                return;
        if (shown == 0) {
                printf("No %s.\n", plural);
                return;
        }
        /* The total is a courtesy; an older daemon without the property just doesn't get it. */
        if (sd_bus_get_property_trivial(bus, BUS_NAME, PATH_CONNECTIONS, IFACE_CONNECTIONS,
                                        count_prop, NULL, 't', &total) >= 0)
                printf("\n%zu %s listed (%" PRIu64 " tracked).\n", shown,
                       shown == 1 ? singular : plural, total);
        else
                printf("\n%zu %s listed.\n", shown, shown == 1 ? singular : plural);
}

static int verb_connections(sd_bus *bus, char **args, int n_args) {
        _cleanup_json_ json_t *rows = NULL;
        int r;

        r = call_list(bus, false, TOP_DEFAULT, &rows);
        if (r < 0)
                return r;
        if (arg.json != JSON_OFF)
                return print_json(rows);
        if (json_array_size(rows) > 0) {
                r = render_connections(stdout, rows, now_usec(CLOCK_REALTIME), arg.legend);
                if (r < 0)
                        return r;
        }
        print_list_legend(bus, json_array_size(rows), "connection", "connections", "Count");
        return 0;
}

static int verb_icmp(sd_bus *bus, char **args, int n_args) {
        _cleanup_json_ json_t *rows = NULL;
        int r;

        r = call_list(bus, true, TOP_DEFAULT, &rows);
        if (r < 0)
                return r;
        if (arg.json != JSON_OFF)
                return print_json(rows);
        if (json_array_size(rows) > 0) {
                r = render_icmp(stdout, rows, now_usec(CLOCK_REALTIME), arg.legend);
                if (r < 0)
                        return r;
        }
        print_list_legend(bus, json_array_size(rows), "ICMP entry", "ICMP entries", "IcmpCount");
        return 0;
}

static int verb_stats(sd_bus *bus, char **args, int n_args) {
        _cleanup_json_ json_t *stats = NULL;
        int r;

        r = call_get_statistics(bus, &stats);
        if (r < 0)
                return r;
        if (arg.json != JSON_OFF)
                return print_json(stats);
        return render_stats(stdout, stats);
}

/* ---- monitor: one sd-event loop, a timer and asynchronous calls ---- */

typedef struct Monitor {
        sd_bus *bus;
        sd_event *event;
        sd_event_source *timer;
        sd_bus_slot *pending; /* the call in flight, if any */
        bool tty;
        uint64_t frames;
        uint64_t max_frames; /* 0: unlimited */
        json_t *stats;       /* this frame's statistics, waiting for the flow list */
        json_t *previous;    /* the last frame's statistics, for per-protocol rates */
        uint64_t stats_at;   /* CLOCK_MONOTONIC µs of each */
        uint64_t previous_at;
} Monitor;

static void monitor_fail(Monitor *m, sd_bus_message *reply, const char *what) {
        const sd_bus_error *e = sd_bus_message_get_error(reply);

        bus_error(what, e, -sd_bus_message_get_errno(reply));
        sd_event_exit(m->event, EXIT_FAILURE);
}

static int monitor_render(Monitor *m, const json_t *flows) {
        _cleanup_free_ char *text = NULL;
        _cleanup_table_ Table *fields = fields_new();
        size_t size = 0;
        FILE *f;
        char clock[32];
        time_t t = time(NULL);
        struct tm tm;
        double elapsed = m->previous ? (double) (m->stats_at - m->previous_at) / USEC_PER_SEC : 0;
        int r;

        if (!fields)
                return -ENOMEM;
        if ((r = field_add_u64(fields, m->stats, "Links", "links")) < 0 ||
            (r = fields_add_traffic(fields, m->stats)) < 0 ||
            (r = field_add_u64(fields, m->stats, "Dropped", "dropped")) < 0 ||
            (r = field_add_u64(fields, m->stats, "Malformed", "malformed")) < 0 ||
            (r = field_add_u64(fields, m->stats, "Flows", "flows")) < 0 ||
            (r = field_add_u64(fields, m->stats, "ICMP entries", "icmp_entries")) < 0)
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
                r = render_protocols(f, m->stats, m->previous, elapsed, true);
        if (r >= 0) {
                fprintf(f, "\nTop %zu flows by rate\n", json_array_size(flows));
                if (json_array_size(flows) > 0)
                        r = render_connections(f, flows, now_usec(CLOCK_REALTIME), true);
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
        return 0;
}

static int monitor_frame_json(Monitor *m, json_t *flows) {
        _cleanup_json_ json_t *frame = json_pack("{s:I,s:O,s:O}", "time",
                                                 (json_int_t) now_usec(CLOCK_REALTIME),
                                                 "statistics", m->stats, "flows", flows);
        int r;

        if (!frame)
                return -ENOMEM;
        r = print_json(frame);
        fflush(stdout);
        return r;
}

static int on_flows(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        _cleanup_json_ json_t *flows = NULL;
        Monitor *m = userdata;
        int r;

        m->pending = sd_bus_slot_unref(m->pending);
        if (sd_bus_message_is_method_error(reply, NULL)) {
                monitor_fail(m, reply, "List");
                return 0;
        }
        r = json_from_bus(reply, &flows);
        if (r >= 0)
                r = arg.json != JSON_OFF ? monitor_frame_json(m, flows) : monitor_render(m, flows);
        if (r < 0) {
                fprintf(stderr, "packetscopectl: cannot show the frame: %s\n", strerror(-r));
                sd_event_exit(m->event, EXIT_FAILURE);
                return 0;
        }
        json_decref(m->previous);
        m->previous = TAKE_PTR(m->stats);
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

        m->pending = sd_bus_slot_unref(m->pending);
        if (sd_bus_message_is_method_error(reply, NULL)) {
                monitor_fail(m, reply, "GetStatistics");
                return 0;
        }
        json_decref(m->stats);
        m->stats = NULL;
        r = json_from_bus(reply, &m->stats);
        if (r >= 0) {
                m->stats_at = now_usec(CLOCK_MONOTONIC);
                r = new_list_call(m->bus, false, MONITOR_TOP_DEFAULT, &call);
        }
        if (r >= 0) {
                /* The query for this view is fixed: the fastest flows first. */
                r = sd_bus_call_async(m->bus, &m->pending, call, on_flows, m, 0);
        }
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
        r = sd_bus_call_method_async(m->bus, &m->pending, BUS_NAME, PATH_ROOT, IFACE_MANAGER,
                                     "GetStatistics", on_stats, m, NULL);
        if (r < 0) {
                fprintf(stderr, "packetscopectl: cannot call GetStatistics: %s\n", strerror(-r));
                sd_event_exit(m->event, EXIT_FAILURE);
        }
        return 0;
}

static int on_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        return sd_event_exit(sd_event_source_get_event(s), EXIT_SUCCESS);
}

static int verb_monitor(sd_bus *bus, char **args, int n_args) {
        Monitor m = {
                .bus = bus,
                .tty = isatty(STDOUT_FILENO) && arg.json == JSON_OFF,
                .max_frames = (arg.given & OPT_COUNT) ? arg.count : 0,
        };
        sigset_t mask;
        int r, code = EXIT_FAILURE;

        /* The verb's query is built by append_query(): the fastest flows, top N. */
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
        json_decref(m.stats);
        json_decref(m.previous);
        return code == EXIT_SUCCESS ? 0 : -EIO;
}

/* ---- filters: rules from JSON and options to a{sv}, and back for people ---- */

/* What an export adds to a rule and only Import understands: the id and what the daemon keeps
 * or counts. Apply takes rules to add, so these are left out of a file given to it. */
static bool rule_key_read_only(const char *key) {
        static const char *const keys[] = {
                "id", "path", "created", "expires", "hits", "bytes", "last_hit",
        };

        for (size_t i = 0; i < ELEMENTSOF(keys); i++)
                if (streq(key, keys[i]))
                        return true;
        return false;
}

static const char *strempty(const char *s) {
        return s ? s : "";
}

/* A rule's empty address (or a missing value) reads "any". */
static const char *strany(const char *s) {
        return s && *s ? s : "any";
}

static const char *json_kind(const json_t *v) {
        switch (json_typeof(v)) {
        case JSON_OBJECT: return "an object";
        case JSON_ARRAY: return "an array";
        case JSON_STRING: return "a string";
        case JSON_INTEGER: return "an integer";
        case JSON_REAL: return "a number with a fraction";
        case JSON_TRUE: case JSON_FALSE: return "a boolean";
        default: return "null";
        }
}

/* A rule goes to the bus as a flat a{sv}: every value must be a string, a number, a boolean or
 * null (left out, as the Guarder left a null field alone). On failure *ret_error says why. */
static int rule_check(const json_t *rule, char **ret_error) {
        const char *key;
        json_t *v;

        if (!json_is_object(rule))
                return asprintf(ret_error, "a rule must be a JSON object, got %s",
                                json_kind(rule)) < 0 ? -ENOMEM : -EINVAL;
        json_object_foreach((json_t *) rule, key, v) {
                if (json_is_object(v) || json_is_array(v))
                        return asprintf(ret_error, "field '%s' is %s; accepted: a string, a number "
                                        "or true/false", key, json_kind(v)) < 0 ? -ENOMEM : -EINVAL;
                /* sd-bus strings end at the first NUL: refuse rather than cut. */
                if (json_is_string(v) && strlen(json_string_value(v)) != json_string_length(v))
                        return asprintf(ret_error, "field '%s' contains a NUL character",
                                        key) < 0 ? -ENOMEM : -EINVAL;
        }
        return 0;
}

/* The JSON types map one to one: string s, integer x, boolean b, fraction d (which the daemon
 * refuses with its own message); the daemon takes any integer type for a number field. */
static int append_rule(sd_bus_message *m, const json_t *rule, bool skip_read_only) {
        const char *key;
        json_t *v;
        int r;

        r = sd_bus_message_open_container(m, 'a', "{sv}");
        if (r < 0)
                return r;
        json_object_foreach((json_t *) rule, key, v) {
                if (skip_read_only && rule_key_read_only(key))
                        continue;
                switch (json_typeof(v)) {
                case JSON_STRING:
                        r = sd_bus_message_append(m, "{sv}", key, "s", json_string_value(v));
                        break;
                case JSON_INTEGER:
                        r = sd_bus_message_append(m, "{sv}", key, "x",
                                                  (int64_t) json_integer_value(v));
                        break;
                case JSON_REAL:
                        r = sd_bus_message_append(m, "{sv}", key, "d", json_real_value(v));
                        break;
                case JSON_TRUE:
                case JSON_FALSE:
                        r = sd_bus_message_append(m, "{sv}", key, "b", json_is_true(v));
                        break;
                case JSON_NULL:
                        r = 0;
                        break;
                default:
                        r = -EINVAL; /* rule_check() came first */
                }
                if (r < 0)
                        return r;
        }
        return sd_bus_message_close_container(m);
}

/* FILE, or "-" for standard input: at most INPUT_MAX bytes of UTF-8 text. Says what went
 * wrong itself. */
static int read_input(const char *name, char **ret) {
        _cleanup_close_ int fd = -1;
        _cleanup_free_ char *buf = NULL;
        const char *shown = streq(name, "-") ? "standard input" : name;
        size_t used = 0, alloc = 0;
        int in = STDIN_FILENO, r;

        if (!streq(name, "-")) {
                fd = open(name, O_RDONLY | O_CLOEXEC | O_NOCTTY);
                if (fd < 0) {
                        r = -errno;
                        fprintf(stderr, "packetscopectl: cannot open '%s': %s\n", name,
                                strerror(-r));
                        return r;
                }
                in = fd;
        }
        for (;;) {
                ssize_t n;

                if (alloc - used < 4096) {
                        size_t na = alloc ? MIN(alloc * 2, (size_t) INPUT_MAX + 4096) : 65536;
                        char *nb = realloc(buf, na);

                        if (!nb)
                                return -ENOMEM;
                        buf = nb;
                        alloc = na;
                }
                n = read(in, buf + used, alloc - used - 1);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        r = -errno;
                        fprintf(stderr, "packetscopectl: cannot read %s%s%s: %s\n",
                                fd >= 0 ? "'" : "", shown, fd >= 0 ? "'" : "", strerror(-r));
                        return r;
                }
                if (n == 0)
                        break;
                used += (size_t) n;
                if (used > INPUT_MAX) {
                        fprintf(stderr, "packetscopectl: %s%s%s is larger than %u MiB\n",
                                fd >= 0 ? "'" : "", shown, fd >= 0 ? "'" : "",
                                INPUT_MAX / (1024 * 1024));
                        return -EFBIG;
                }
        }
        buf[used] = '\0';
        /* The text goes to the bus as a string: no NUL bytes, valid UTF-8. */
        if (strlen(buf) != used || !string_is_valid_utf8(buf, SIZE_MAX)) {
                fprintf(stderr, "packetscopectl: %s%s%s is not UTF-8 text\n", fd >= 0 ? "'" : "",
                        shown, fd >= 0 ? "'" : "");
                return -EBADMSG;
        }
        *ret = TAKE_PTR(buf);
        return 0;
}

static char *filter_path(uint32_t id) {
        char *p;

        if (asprintf(&p, PATH_FILTERS "/%" PRIu32, id) < 0)
                return NULL;
        return p;
}

/* A call on one rule's object; a rule that is not there says so by its id. */
static int call_filter_method(sd_bus *bus, uint32_t id, const char *method, sd_bus_message *m) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        int r;

        r = sd_bus_call(bus, m, 0, &error, NULL);
        if (r < 0 && (sd_bus_error_has_name(&error, SD_BUS_ERROR_UNKNOWN_OBJECT) ||
                      sd_bus_error_has_name(&error, SD_BUS_ERROR_UNKNOWN_INTERFACE) ||
                      sd_bus_error_has_name(&error, BUS_NAME ".Error.NoSuchFilter"))) {
                fprintf(stderr, "packetscopectl: %s: no filter %" PRIu32 "\n", error.name, id);
                return -ENOENT;
        }
        if (r < 0)
                return bus_error(method, &error, r);
        return 0;
}

/* Every rule, page by page (ListRange): List() alone is refused for big sets, whose answer
 * would not fit one bus message. */
#define FILTERS_PAGE 10000u

static int list_all_filters(sd_bus *bus, json_t **ret) {
        _cleanup_json_ json_t *all = json_array();
        uint32_t offset = 0;
        int r;

        if (!all)
                return -ENOMEM;
        for (;;) {
                _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
                _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
                _cleanup_json_ json_t *page = NULL;
                size_t n;

                r = sd_bus_call_method(bus, BUS_NAME, PATH_FILTERS, IFACE_FILTERS, "ListRange",
                                       &error, &reply, "uu", offset, FILTERS_PAGE);
                if (r < 0)
                        return bus_error("ListRange", &error, r);
                r = json_from_bus(reply, &page);
                if (r < 0) {
                        fprintf(stderr, "packetscopectl: cannot parse the reply of ListRange: %s\n",
                                strerror(-r));
                        return r;
                }
                n = json_array_size(page);
                if (json_array_extend(all, page) < 0)
                        return -ENOMEM;
                if (n < FILTERS_PAGE)
                        break;
                offset += FILTERS_PAGE;
        }
        *ret = TAKE_PTR(all);
        return 0;
}

/* "10.0.0.0/8:22", "[2001:db8::1]:80-90", "*" for any address and no port for any port. */
static void format_rule_endpoint(char *buf, size_t size, const char *ip, const char *port) {
        const char *a = ip && *ip ? ip : "*";

        if (!port || streq(port, "any") || streq(port, ""))
                snprintf(buf, size, "%s", a);
        else if (strchr(a, ':'))
                snprintf(buf, size, "[%s]:%s", a, port);
        else
                snprintf(buf, size, "%s:%s", a, port);
}

#define RULE_ENDPOINT_MAX (FORMAT_ENDPOINT_MAX + 16)

static bool rule_is_icmpv6(const json_t *row) {
        return streq_ptr(jget_str(row, "protocol"), "icmpv6");
}

/* What the rule matches besides addresses and ports: TCP flags (as flags/mask), the ICMP type
 * and code, the quoted datagram of an ICMP error. "-" when nothing. */
static int format_rule_match(const json_t *row, char **ret) {
        _cleanup_free_ char *text = NULL;
        unsigned type = (unsigned) jget_u64(row, "icmp_type"), code = (unsigned) jget_u64(row, "icmp_code");
        unsigned flags = (unsigned) jget_u64(row, "tcp_flags"), mask = (unsigned) jget_u64(row, "tcp_flags_mask");
        const char *iproto = jget_str(row, "inner_protocol");
        const char *isrc = jget_str(row, "inner_src_ip"), *idst = jget_str(row, "inner_dst_ip");
        const char *isport = jget_str(row, "inner_src_port"), *idport = jget_str(row, "inner_dst_port");
        bool inner = (iproto && !streq(iproto, "any")) || (isrc && *isrc) || (idst && *idst) ||
                     (isport && !streq(isport, "any")) || (idport && !streq(idport, "any"));
        const char *sep = "";
        size_t size = 0;
        FILE *f;

        f = open_memstream(&text, &size);
        if (!f)
                return -ENOMEM;
        if (mask) {
                char fl[FORMAT_TCP_FLAGS_MAX], ms[FORMAT_TCP_FLAGS_MAX];

                fprintf(f, "flags %s/%s", format_tcp_flags(fl, sizeof fl, (uint8_t) flags),
                        format_tcp_flags(ms, sizeof ms, (uint8_t) mask));
                sep = ", ";
        }
        if (type != 255) {
                char t[48];

                format_icmp_type(t, sizeof t, rule_is_icmpv6(row) ? "ipv6" : "ipv4", type);
                fprintf(f, "%s%s", sep, t);
                sep = ", ";
        }
        if (code != 255) {
                fprintf(f, "%scode %u", sep, code);
                sep = ", ";
        }
        if (inner) {
                char s[RULE_ENDPOINT_MAX], d[RULE_ENDPOINT_MAX];

                fprintf(f, "%sinner %s", sep, iproto ? iproto : "any");
                format_rule_endpoint(s, sizeof s, isrc, isport);
                format_rule_endpoint(d, sizeof d, idst, idport);
                if (!streq(s, "*") || !streq(d, "*"))
                        fprintf(f, " %s -> %s", s, d);
        }
        if (fclose(f) != 0)
                return -ENOMEM;
        if (size == 0) {
                free(text);
                text = strdup("-");
                if (!text)
                        return -ENOMEM;
        }
        *ret = TAKE_PTR(text);
        return 0;
}

/* The width of the terminal, or 0 (no limit) when the output goes elsewhere and $COLUMNS
 * says nothing. */
static size_t output_columns(void) {
        struct winsize ws = {};
        const char *e = getenv("COLUMNS");
        uint32_t c;

        if (e && safe_atou32(e, &c) == 0 && c > 0)
                return c;
        if (isatty(STDOUT_FILENO) && ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
                return ws.ws_col;
        return 0;
}

/* At most width code points of s, the last of them "…" when it was cut. */
static char *truncate_text(const char *s, size_t width) {
        size_t n = 0, cut = 0;
        char *out;

        for (size_t i = 0; s[i]; i++)
                if (((unsigned char) s[i] & 0xc0) != 0x80 && n++ == width - 1)
                        cut = i; /* where the code point that the ellipsis replaces starts */
        if (n <= width || width < 1)
                return strdup(s);
        out = malloc(cut + 4);
        if (!out)
                return NULL;
        memcpy(out, s, cut);
        memcpy(out + cut, "\xe2\x80\xa6", 4); /* U+2026, one column, and the NUL */
        return out;
}

/* One table for the rules; comment_width 0 leaves the comments whole, SIZE_MAX leaves them out
 * (to measure the other columns). */
static int filters_table(const json_t *rows, uint64_t now, size_t comment_width, Table **ret) {
        _cleanup_table_ Table *t = table_new("ID", "ACTION", "PROTO", "SOURCE", "DESTINATION",
                                             "MATCH", "HITS", "BYTES", "LAST HIT", "EN", "COMMENT",
                                             NULL);
        size_t i;
        json_t *row;
        int r;

        if (!t)
                return -ENOMEM;
        table_set_align(t, 0, TABLE_ALIGN_RIGHT);
        table_set_align(t, 6, TABLE_ALIGN_RIGHT);
        table_set_align(t, 7, TABLE_ALIGN_RIGHT);
        json_array_foreach(rows, i, row) {
                char src[RULE_ENDPOINT_MAX], dst[RULE_ENDPOINT_MAX], bytes[FORMAT_BYTES_MAX];
                char last[FORMAT_RELATIVE_MAX];
                _cleanup_free_ char *match = NULL, *comment = NULL;

                format_rule_endpoint(src, sizeof src, jget_str(row, "src_ip"),
                                     jget_str(row, "src_port"));
                format_rule_endpoint(dst, sizeof dst, jget_str(row, "dst_ip"),
                                     jget_str(row, "dst_port"));
                r = format_rule_match(row, &match);
                if (r < 0)
                        return r;
                comment = comment_width > 0 ? truncate_text(strempty(jget_str(row, "comment")),
                                                            comment_width)
                                            : strdup(strempty(jget_str(row, "comment")));
                if (!comment)
                        return -ENOMEM;
                if ((r = table_add_cellf(t, "%" PRIu64, jget_u64(row, "id"))) < 0 ||
                    (r = table_add_cell(t, jget_str(row, "action"))) < 0 ||
                    (r = table_add_cell(t, jget_str(row, "protocol"))) < 0 ||
                    (r = table_add_cell(t, src)) < 0 ||
                    (r = table_add_cell(t, dst)) < 0 ||
                    (r = table_add_cell(t, match)) < 0 ||
                    (r = table_add_cellf(t, "%" PRIu64, jget_u64(row, "hits"))) < 0 ||
                    (r = table_add_cell(t, format_bytes(bytes, sizeof bytes,
                                                        jget_u64(row, "bytes")))) < 0 ||
                    (r = table_add_cell(t, format_relative_time(last, sizeof last, now,
                                                                jget_u64(row, "last_hit")))) < 0 ||
                    (r = table_add_cell(t, jget_bool(row, "enabled") ? "yes" : "no")) < 0 ||
                    (r = table_add_cell(t, comment_width == SIZE_MAX ? "" : comment)) < 0)
                        return r;
        }
        *ret = TAKE_PTR(t);
        return 0;
}

static int render_filters(FILE *f, const json_t *rows, uint64_t now, bool header) {
        _cleanup_table_ Table *t = NULL;
        size_t columns = output_columns(), width = 0;
        int r;

        if (columns > 0) {
                _cleanup_table_ Table *probe = NULL;
                _cleanup_free_ char *text = NULL;
                size_t size = 0, rest;
                FILE *m;

                /* Everything but the comments, printed with the header: its line is as wide as
                 * the other columns plus the gap and "COMMENT". What is left is the comment's. */
                r = filters_table(rows, now, SIZE_MAX, &probe);
                if (r < 0)
                        return r;
                m = open_memstream(&text, &size);
                if (!m)
                        return -ENOMEM;
                r = table_print(probe, m, true);
                if (fclose(m) != 0 && r >= 0)
                        r = -ENOMEM;
                if (r < 0)
                        return r;
                rest = strcspn(text, "\n") - strlen("COMMENT");
                width = columns > rest ? columns - rest : 0;
                width = MAX(width, COMMENT_WIDTH_MIN);
        }
        r = filters_table(rows, now, width, &t);
        if (r < 0)
                return r;
        return table_print(t, f, header);
}

static void format_timestamp(char *buf, size_t size, uint64_t usec) {
        time_t t = (time_t) (usec / USEC_PER_SEC);
        struct tm tm;

        if (usec == 0 || !localtime_r(&t, &tm) || strftime(buf, size, "%Y-%m-%d %H:%M:%S %Z", &tm) == 0)
                snprintf(buf, size, "n/a");
}

static int render_filter(FILE *f, const json_t *row, uint64_t now) {
        _cleanup_table_ Table *t = fields_new();
        _cleanup_free_ char *match = NULL;
        char when[64], rel[FORMAT_RELATIVE_MAX], bytes[FORMAT_BYTES_MAX], flags[FORMAT_TCP_FLAGS_MAX];
        char mask[FORMAT_TCP_FLAGS_MAX], type[48];
        unsigned icmp_type = (unsigned) jget_u64(row, "icmp_type");
        unsigned icmp_code = (unsigned) jget_u64(row, "icmp_code");
        uint64_t timeout = jget_u64(row, "timeout");
        int r;

        if (!t)
                return -ENOMEM;
        format_icmp_type(type, sizeof type, rule_is_icmpv6(row) ? "ipv6" : "ipv4", icmp_type);
        if ((r = field_add(t, "Id", "%" PRIu64, jget_u64(row, "id"))) < 0 ||
            (r = field_add(t, "Object path", "%s", strna(jget_str(row, "path")))) < 0 ||
            (r = field_add(t, "Action", "%s", strna(jget_str(row, "action")))) < 0 ||
            (r = field_add(t, "Enabled", "%s", jget_bool(row, "enabled") ? "yes" : "no")) < 0 ||
            (r = field_add(t, "Priority", "%" JSON_INTEGER_FORMAT,
                           json_integer_value(json_object_get(row, "priority")))) < 0 ||
            (r = field_add(t, "Comment", "%s", strempty(jget_str(row, "comment")))) < 0 ||
            (r = field_add(t, "Rule type", "%s", strna(jget_str(row, "rule_type")))) < 0 ||
            (r = field_add(t, "Protocol", "%s", strna(jget_str(row, "protocol")))) < 0 ||
            (r = field_add(t, "Source address", "%s", strany(jget_str(row, "src_ip")))) < 0 ||
            (r = field_add(t, "Source port", "%s", strany(jget_str(row, "src_port")))) < 0 ||
            (r = field_add(t, "Destination address", "%s", strany(jget_str(row, "dst_ip")))) < 0 ||
            (r = field_add(t, "Destination port", "%s", strany(jget_str(row, "dst_port")))) < 0)
                return r;
        if (jget_u64(row, "tcp_flags_mask") == 0)
                r = field_add(t, "TCP flags", "any");
        else
                r = field_add(t, "TCP flags", "%s/%s (flags %" PRIu64 ", mask %" PRIu64 ")",
                              format_tcp_flags(flags, sizeof flags, (uint8_t) jget_u64(row, "tcp_flags")),
                              format_tcp_flags(mask, sizeof mask, (uint8_t) jget_u64(row, "tcp_flags_mask")),
                              jget_u64(row, "tcp_flags"), jget_u64(row, "tcp_flags_mask"));
        if (r < 0)
                return r;
        if ((r = field_add(t, "ICMP type", "%s", icmp_type == 255 ? "any" : type)) < 0 ||
            (r = icmp_code == 255 ? field_add(t, "ICMP code", "any")
                                  : field_add(t, "ICMP code", "%u", icmp_code)) < 0 ||
            (r = field_add(t, "Inner protocol", "%s", strany(jget_str(row, "inner_protocol")))) < 0 ||
            (r = field_add(t, "Inner source", "%s", strany(jget_str(row, "inner_src_ip")))) < 0 ||
            (r = field_add(t, "Inner source port", "%s", strany(jget_str(row, "inner_src_port")))) < 0 ||
            (r = field_add(t, "Inner destination", "%s", strany(jget_str(row, "inner_dst_ip")))) < 0 ||
            (r = field_add(t, "Inner dest. port", "%s", strany(jget_str(row, "inner_dst_port")))) < 0)
                return r;
        if (timeout == 0)
                r = field_add(t, "Timeout", "none (permanent)");
        else {
                format_timestamp(when, sizeof when, jget_u64(row, "expires"));
                r = field_add(t, "Timeout", "%" PRIu64 "s, expires %s (%s)", timeout, when,
                              format_relative_time(rel, sizeof rel, now, jget_u64(row, "expires")));
        }
        if (r < 0)
                return r;
        format_timestamp(when, sizeof when, jget_u64(row, "created"));
        if ((r = field_add(t, "Created", "%s (%s)", when,
                           format_relative_time(rel, sizeof rel, now, jget_u64(row, "created")))) < 0 ||
            (r = field_add(t, "Hits", "%" PRIu64, jget_u64(row, "hits"))) < 0 ||
            (r = field_add(t, "Bytes", "%s", format_bytes(bytes, sizeof bytes,
                                                          jget_u64(row, "bytes")))) < 0)
                return r;
        if (jget_u64(row, "last_hit") == 0)
                r = field_add(t, "Last hit", "never");
        else {
                format_timestamp(when, sizeof when, jget_u64(row, "last_hit"));
                r = field_add(t, "Last hit", "%s (%s)", when,
                              format_relative_time(rel, sizeof rel, now, jget_u64(row, "last_hit")));
        }
        if (r < 0)
                return r;
        return table_print(t, f, false);
}

static int verb_filter_list(sd_bus *bus, char **args, int n_args) {
        _cleanup_json_ json_t *rows = NULL;
        int r;

        r = list_all_filters(bus, &rows);
        if (r < 0)
                return r;
        if (arg.json != JSON_OFF)
                return print_json(rows);
        if (json_array_size(rows) > 0) {
                r = render_filters(stdout, rows, now_usec(CLOCK_REALTIME), arg.legend);
                if (r < 0)
                        return r;
        }
        if (arg.legend) {
                if (json_array_size(rows) == 0)
                        puts("No filters.");
                else
                        printf("\n%zu filter%s listed.\n", json_array_size(rows),
                               json_array_size(rows) == 1 ? "" : "s");
        }
        return 0;
}

static int verb_filter_show(sd_bus *bus, char **args, int n_args) {
        _cleanup_json_ json_t *rows = NULL;
        size_t i;
        json_t *row;
        int r;

        /* List carries every field, the path and the counters in one reply. */
        r = list_all_filters(bus, &rows);
        if (r < 0)
                return r;
        json_array_foreach(rows, i, row) {
                if (jget_u64(row, "id") != arg.filter_id || !json_is_integer(json_object_get(row, "id")))
                        continue;
                if (arg.json != JSON_OFF)
                        return print_json(row);
                return render_filter(stdout, row, now_usec(CLOCK_REALTIME));
        }
        fprintf(stderr, "packetscopectl: no filter %" PRIu32 "\n", arg.filter_id);
        return -ENOENT;
}

static bool json_output(void) {
        return (arg.given & OPT_JSON_OUTPUT) || arg.json != JSON_OFF;
}

static int verb_filter_add(sd_bus *bus, char **args, int n_args) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        const char *path;
        uint32_t id;
        int r;

        r = sd_bus_message_new_method_call(bus, &m, BUS_NAME, PATH_FILTERS, IFACE_FILTERS, "Add");
        if (r >= 0)
                r = append_rule(m, arg.rule, false);
        if (r < 0)
                return bus_error("building the rule", NULL, r);
        r = sd_bus_call(bus, m, 0, &error, &reply);
        if (r < 0)
                return bus_error("Add", &error, r);
        r = sd_bus_message_read(reply, "uo", &id, &path);
        if (r < 0)
                return bus_error("reading the Add reply", NULL, r);
        if (json_output()) {
                _cleanup_json_ json_t *o = json_pack("{s:I,s:s}", "id", (json_int_t) id, "path", path);

                if (arg.json == JSON_OFF)
                        arg.json = JSON_PRETTY;
                return o ? print_json(o) : -ENOMEM;
        }
        printf("Added filter %" PRIu32 " (%s)\n", id, path);
        return 0;
}

static int verb_filter_update(sd_bus *bus, char **args, int n_args) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        _cleanup_free_ char *path = filter_path(arg.filter_id);
        int r;

        if (!path)
                return -ENOMEM;
        r = sd_bus_message_new_method_call(bus, &m, BUS_NAME, path, IFACE_FILTER, "Update");
        if (r >= 0)
                r = append_rule(m, arg.rule, false);
        if (r < 0)
                return bus_error("building the rule", NULL, r);
        return call_filter_method(bus, arg.filter_id, "Update", m);
}

/* Enable, Disable and Delete: no arguments, nothing printed. */
static int filter_simple_call(sd_bus *bus, const char *method) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        _cleanup_free_ char *path = filter_path(arg.filter_id);
        int r;

        if (!path)
                return -ENOMEM;
        r = sd_bus_message_new_method_call(bus, &m, BUS_NAME, path, IFACE_FILTER, method);
        if (r < 0)
                return bus_error(method, NULL, r);
        return call_filter_method(bus, arg.filter_id, method, m);
}

static int verb_filter_delete(sd_bus *bus, char **args, int n_args) {
        return filter_simple_call(bus, "Delete");
}

static int verb_filter_enable(sd_bus *bus, char **args, int n_args) {
        return filter_simple_call(bus, "Enable");
}

static int verb_filter_disable(sd_bus *bus, char **args, int n_args) {
        return filter_simple_call(bus, "Disable");
}

static int print_ids(sd_bus_message *reply) {
        _cleanup_json_ json_t *ids = NULL;
        size_t i;
        json_t *id;
        int r;

        r = json_from_bus(reply, &ids);
        if (r < 0)
                return bus_error("reading the ids", NULL, r);
        if (arg.json != JSON_OFF)
                return print_json(ids);
        json_array_foreach(ids, i, id)
                printf("%" JSON_INTEGER_FORMAT "\n", json_integer_value(id));
        return 0;
}

static int verb_filter_import(sd_bus *bus, char **args, int n_args) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_free_ char *text = NULL;
        int r;

        r = read_input(args[0], &text);
        if (r < 0)
                return r;
        /* As it is: the daemon parses it, with line and column in its errors. */
        r = sd_bus_call_method(bus, BUS_NAME, PATH_FILTERS, IFACE_FILTERS, "Import", &error,
                               &reply, "ss", text, (arg.given & OPT_REPLACE) ? "replace" : "merge");
        if (r < 0)
                return bus_error("Import", &error, r);
        return print_ids(reply);
}

static int verb_filter_export(sd_bus *bus, char **args, int n_args) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *text;
        int r;

        r = sd_bus_call_method(bus, BUS_NAME, PATH_FILTERS, IFACE_FILTERS, "Export", &error,
                               &reply, NULL);
        if (r < 0)
                return bus_error("Export", &error, r);
        r = sd_bus_message_read(reply, "s", &text);
        if (r < 0)
                return bus_error("reading the Export reply", NULL, r);
        if (arg.json == JSON_SHORT) {
                _cleanup_json_ json_t *doc = json_loads(text, 0, NULL);

                if (doc)
                        return print_json(doc);
        }
        fputs(text, stdout);
        if (!*text || text[strlen(text) - 1] != '\n')
                fputc('\n', stdout);
        return 0;
}

static int verb_filter_test(sd_bus *bus, char **args, int n_args) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        _cleanup_json_ json_t *rows = NULL, *flows = json_array(), *icmp = json_array();
        uint64_t now = now_usec(CLOCK_REALTIME);
        size_t i;
        json_t *row;
        int r;

        if (!flows || !icmp)
                return -ENOMEM;
        r = sd_bus_message_new_method_call(bus, &m, BUS_NAME, PATH_FILTERS, IFACE_FILTERS, "Test");
        if (r >= 0)
                r = append_rule(m, arg.rule, false);
        if (r < 0)
                return bus_error("building the rule", NULL, r);
        r = sd_bus_call(bus, m, 0, &error, &reply);
        if (r < 0)
                return bus_error("Test", &error, r);
        r = json_from_bus(reply, &rows);
        if (r < 0)
                return bus_error("reading the Test reply", NULL, r);
        if (json_output()) {
                if (arg.json == JSON_OFF)
                        arg.json = JSON_PRETTY;
                return print_json(rows);
        }
        /* One list of both kinds: ICMP rows are the ones with a type. */
        json_array_foreach(rows, i, row)
                if (json_array_append(json_object_get(row, "type") ? icmp : flows, row) < 0)
                        return -ENOMEM;
        if (json_array_size(flows) > 0) {
                r = render_connections(stdout, flows, now, arg.legend);
                if (r < 0)
                        return r;
        }
        if (json_array_size(icmp) > 0) {
                if (json_array_size(flows) > 0)
                        fputc('\n', stdout);
                r = render_icmp(stdout, icmp, now, arg.legend);
                if (r < 0)
                        return r;
        }
        if (arg.legend) {
                if (json_array_size(rows) == 0)
                        puts("No tracked connection or ICMP entry matches the rule.");
                else
                        printf("\n%zu %s the rule.\n", json_array_size(rows),
                               json_array_size(rows) == 1 ? "entry matches" : "entries match");
        }
        return 0;
}

/* ---- filter apply: confirm on the terminal, or let the daemon roll back ---- */

typedef struct Confirmation {
        sd_event *event;
        sd_bus *bus;
        const char *path;        /* the transaction */
        sd_bus_slot *call;       /* Confirm or Rollback in flight */
        sd_event_source *input;
        bool confirming;         /* which of the two */
        bool done;
        int result;              /* 0 kept, -ECANCELED rolled back, else the failure */
} Confirmation;

static void confirmation_done(Confirmation *c, int result, const char *message) {
        if (c->done)
                return; /* the signal and the reply of our own call both tell it */
        c->done = true;
        if (message && arg.json == JSON_OFF)
                puts(message);
        c->result = result;
        (void) sd_event_exit(c->event, 0);
}

static int on_transaction_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        Confirmation *c = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(reply);

        c->call = sd_bus_slot_unref(c->call);
        if (!e) {
                confirmation_done(c, c->confirming ? 0 : -ECANCELED,
                                  c->confirming ? "Confirmed: the new rules are kept."
                                                : "Rolled back: the previous rules are back.");
                return 0;
        }
        /* Over before our call got there: the deadline passed, so the rules rolled back. Once
         * it is over its object is gone too, which the bus reports as UnknownObject. */
        if (sd_bus_error_has_name(e, BUS_NAME ".Error.NoSuchTransaction") ||
            sd_bus_error_has_name(e, SD_BUS_ERROR_UNKNOWN_OBJECT)) {
                confirmation_done(c, -ECANCELED, c->confirming
                                  ? "Too late: the transaction had already rolled back."
                                  : "Rolled back: the previous rules are back.");
                return 0;
        }
        bus_error(c->confirming ? "Confirm" : "Rollback", e, -sd_bus_message_get_errno(reply));
        confirmation_done(c, -EIO, c->confirming
                          ? "Not confirmed: the rules roll back at the deadline." : NULL);
        return 0;
}

static void transaction_call(Confirmation *c, bool confirm) {
        int r;

        if (c->call)
                return;
        c->input = sd_event_source_disable_unref(c->input);
        c->confirming = confirm;
        r = sd_bus_call_method_async(c->bus, &c->call, BUS_NAME, c->path, IFACE_TRANSACTION,
                                     confirm ? "Confirm" : "Rollback", on_transaction_reply, c,
                                     NULL);
        if (r < 0) {
                fprintf(stderr, "packetscopectl: cannot call %s: %s\n",
                        confirm ? "Confirm" : "Rollback", strerror(-r));
                confirmation_done(c, r, NULL);
        }
}

/* "y" or "yes", in any case; anything else is a no. */
static bool answer_is_yes(const char *s) {
        size_t n;

        s += strspn(s, " \t");
        n = strcspn(s, " \t\r\n");
        return (n == 1 && strncasecmp(s, "y", 1) == 0) || (n == 3 && strncasecmp(s, "yes", 3) == 0);
}

static int on_answer(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Confirmation *c = userdata;
        char line[256];
        ssize_t n;

        n = read(fd, line, sizeof line - 1);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
                return 0;
        line[n > 0 ? n : 0] = '\0';
        if (n <= 0)
                fputc('\n', stderr); /* the end of input: the prompt's line still needs ending */
        transaction_call(c, n > 0 && answer_is_yes(line));
        return 0;
}

static int on_deadline(sd_event_source *s, uint64_t usec, void *userdata) {
        Confirmation *c = userdata;

        fputs("\nNo answer in time: rolling back.\n", stderr);
        transaction_call(c, false);
        return 0;
}

static int on_finished(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Confirmation *c = userdata;
        int confirmed;

        if (!c->path || !streq_ptr(sd_bus_message_get_path(m), c->path))
                return 0; /* another transaction */
        if (sd_bus_message_read(m, "b", &confirmed) < 0)
                return 0;
        /* Ended by our own call (its reply follows), by the daemon's timer or by someone else:
         * the signal is what happened. */
        if (confirmed)
                confirmation_done(c, 0, c->call && c->confirming ? "Confirmed: the new rules are kept."
                                                                 : "The transaction was confirmed.");
        else
                confirmation_done(c, -ECANCELED, c->call ? "Rolled back: the previous rules are back."
                                                         : "The transaction rolled back: the previous rules are back.");
        return 0;
}

static int on_interrupt(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        Confirmation *c = userdata;

        fputs("\nInterrupted: rolling back.\n", stderr);
        transaction_call(c, false);
        return 0;
}

/* A file as for import (one rule, an array, or {"filters": [...]}) into Apply's aa{sv}. */
static int read_rules_file(const char *name, json_t **ret_doc, json_t **ret_list) {
        _cleanup_free_ char *text = NULL;
        _cleanup_json_ json_t *doc = NULL;
        const char *shown = streq(name, "-") ? "standard input" : name;
        json_error_t jerr;
        json_t *list;
        size_t i;
        json_t *rule;
        int r;

        r = read_input(name, &text);
        if (r < 0)
                return r;
        doc = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
        if (!doc) {
                fprintf(stderr, "packetscopectl: %s is not valid JSON: line %d column %d: %s\n",
                        shown, jerr.line, jerr.column, jerr.text);
                return -EBADMSG;
        }
        list = json_is_object(doc) && json_object_get(doc, "filters") ? json_object_get(doc, "filters")
                                                                       : doc; /* borrowed */
        if (!json_is_array(list) && !json_is_object(list)) {
                fprintf(stderr, "packetscopectl: %s holds %s; accepted: a rule object, an array "
                        "of rules or {\"filters\": [...]}\n", shown, json_kind(list));
                return -EBADMSG;
        }
        if (json_is_array(list)) {
                json_array_foreach(list, i, rule) {
                        _cleanup_free_ char *err = NULL;

                        r = rule_check(rule, &err);
                        if (r < 0) {
                                fprintf(stderr, "packetscopectl: rule #%zu of %s: %s\n", i, shown,
                                        err ? err : strerror(-r));
                                return r;
                        }
                }
        } else {
                _cleanup_free_ char *err = NULL;

                r = rule_check(list, &err);
                if (r < 0) {
                        fprintf(stderr, "packetscopectl: %s: %s\n", shown, err ? err : strerror(-r));
                        return r;
                }
        }
        *ret_list = list;
        *ret_doc = TAKE_PTR(doc);
        return 0;
}

static int apply_result_json(const char *path, uint64_t deadline, int result) {
        _cleanup_json_ json_t *o = json_pack("{s:s,s:I,s:o}", "transaction", path,
                                             "deadline", (json_int_t) deadline,
                                             "confirmed", result == 1 ? json_null()
                                                                      : json_boolean(result == 0));

        return o ? print_json(o) : -ENOMEM;
}

static int verb_filter_apply(sd_bus *bus, char **args, int n_args) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        _cleanup_(sd_bus_slot_unrefp) sd_bus_slot *match = NULL;
        _cleanup_json_ json_t *doc = NULL;
        _cleanup_free_ char *path = NULL;
        const char *mode = (arg.given & OPT_REPLACE) ? "replace" : "merge", *p;
        Confirmation c = { .bus = bus, .result = -EIO };
        char when[64];
        uint64_t deadline, now, left, left_sec;
        json_t *list, *rule;
        size_t n = 0, i;
        sigset_t mask;
        int r;

        r = read_rules_file(args[0], &doc, &list);
        if (r < 0)
                return r;

        /* Listen before the transaction exists: a short one may end before we could look. */
        r = sd_event_default(&c.event);
        if (r >= 0)
                r = sd_bus_attach_event(bus, c.event, SD_EVENT_PRIORITY_NORMAL);
        if (r >= 0)
                r = sd_bus_match_signal(bus, &match, BUS_NAME, NULL, IFACE_TRANSACTION, "Finished",
                                        on_finished, &c);
        if (r < 0) {
                fprintf(stderr, "packetscopectl: cannot watch the transaction: %s\n", strerror(-r));
                goto finish;
        }

        r = sd_bus_message_new_method_call(bus, &m, BUS_NAME, PATH_FILTERS, IFACE_FILTERS, "Apply");
        if (r >= 0)
                r = sd_bus_message_open_container(m, 'a', "a{sv}");
        if (json_is_array(list)) {
                json_array_foreach(list, i, rule) {
                        if (r >= 0)
                                r = append_rule(m, rule, true);
                        n++;
                }
        } else {
                if (r >= 0)
                        r = append_rule(m, list, true);
                n = 1;
        }
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        if (r >= 0)
                r = sd_bus_message_append(m, "su", mode, arg.confirm_sec);
        if (r < 0) {
                r = bus_error("building the rules", NULL, r);
                goto finish;
        }
        r = sd_bus_call(bus, m, 0, &error, &reply);
        if (r < 0) {
                r = bus_error("Apply", &error, r);
                goto finish;
        }
        r = sd_bus_message_read(reply, "o", &p);
        if (r >= 0 && !(path = strdup(p)))
                r = -ENOMEM;
        if (r < 0) {
                r = bus_error("reading the Apply reply", NULL, r);
                goto finish;
        }
        c.path = path;

        now = now_usec(CLOCK_REALTIME);
        sd_bus_error_free(&error);
        if (sd_bus_get_property_trivial(bus, BUS_NAME, path, IFACE_TRANSACTION, "Deadline", &error,
                                        't', &deadline) < 0)
                deadline = now + arg.confirm_sec * USEC_PER_SEC; /* ended already, or so close */
        left = deadline > now ? deadline - now : 0;
        left_sec = (left + USEC_PER_SEC / 2) / USEC_PER_SEC;
        format_timestamp(when, sizeof when, deadline);
        if (arg.json == JSON_OFF)
                printf("Applied %zu rule%s (%s) as %s.\nThey roll back at %s (in %" PRIu64 " s) "
                       "unless confirmed.\n", n, n == 1 ? "" : "s", mode, path, when, left_sec);
        fflush(stdout);

        if (arg.given & OPT_YES) {
                /* The caller checked what it needed to: keep them now. */
                transaction_call(&c, true);
        } else if (!isatty(STDIN_FILENO)) {
                fprintf(stderr, "Standard input is not a terminal and --yes was not given: not "
                        "confirming.\nThe rules roll back at %s unless confirmed with:\n"
                        "  busctl call %s %s %s Confirm\n", when, BUS_NAME, path,
                        IFACE_TRANSACTION);
                r = arg.json != JSON_OFF ? apply_result_json(path, deadline, 1) : 0;
                goto finish;
        } else {
                fprintf(stderr, "Keep the new rules? [y/N] (rolling back in %" PRIu64 " s) ",
                        left_sec);
                fflush(stderr);
                sigemptyset(&mask);
                sigaddset(&mask, SIGINT);
                sigaddset(&mask, SIGTERM);
                /* sd-event takes signals through a signalfd, which needs them blocked first. */
                if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0) {
                        r = -errno;
                        goto finish;
                }
                r = sd_event_add_io(c.event, &c.input, STDIN_FILENO, EPOLLIN, on_answer, &c);
                if (r >= 0)
                        r = sd_event_add_time_relative(c.event, NULL, CLOCK_MONOTONIC, left, 0,
                                                       on_deadline, &c);
                if (r >= 0)
                        r = sd_event_add_signal(c.event, NULL, SIGINT, on_interrupt, &c);
                if (r >= 0)
                        r = sd_event_add_signal(c.event, NULL, SIGTERM, on_interrupt, &c);
                if (r < 0) {
                        fprintf(stderr, "packetscopectl: cannot wait for the answer: %s\n",
                                strerror(-r));
                        transaction_call(&c, false);
                }
        }
        r = sd_event_loop(c.event);
        if (r < 0) {
                fprintf(stderr, "packetscopectl: waiting for the transaction failed: %s\n",
                        strerror(-r));
                goto finish;
        }
        r = c.result;
        if (arg.json != JSON_OFF && (r == 0 || r == -ECANCELED))
                (void) apply_result_json(path, deadline, r);

finish:
        c.call = sd_bus_slot_unref(c.call);
        c.input = sd_event_source_disable_unref(c.input);
        match = sd_bus_slot_unref(match);
        if (c.event) {
                sd_bus_detach_event(bus);
                c.event = sd_event_unref(c.event);
        }
        return r;
}

/* ---- command line ---- */

/* What a verb's arguments are, for checking them before anything is sent. */
typedef enum VerbArg {
        VERB_ARG_NONE,
        VERB_ARG_IFACE,
        VERB_ARG_FILTER_ID,
        VERB_ARG_FILE,
} VerbArg;

typedef struct Verb {
        const char *name;
        int min_args;
        int max_args;
        uint64_t options;
        VerbArg args;
        bool rule; /* takes a rule: --json JSON and the field options */
        int (*run)(sd_bus *bus, char **args, int n_args);
} Verb;

#define QUERY_COMMON (OPT_TOP | OPT_OFFSET | OPT_SORT | OPT_ADDRESS | OPT_LINK | OPT_FAMILY)

static const Verb verbs[] = {
        { "status", 0, 0, 0, VERB_ARG_NONE, false, verb_status },
        { "attach", 1, 1, OPT_MODE | OPT_ENSURE, VERB_ARG_IFACE, false, verb_attach },
        { "detach", 1, 1, OPT_ENSURE, VERB_ARG_IFACE, false, verb_detach },
        { "connections", 0, 0, QUERY_COMMON | OPT_PROTOCOL | OPT_PORT | OPT_STATE, VERB_ARG_NONE,
          false, verb_connections },
        { "icmp", 0, 0, QUERY_COMMON | OPT_TYPE, VERB_ARG_NONE, false, verb_icmp },
        { "stats", 0, 0, 0, VERB_ARG_NONE, false, verb_stats },
        { "monitor", 0, 0, OPT_INTERVAL | OPT_COUNT | OPT_TOP, VERB_ARG_NONE, false, verb_monitor },
        { "filter", 0, 0, 0, VERB_ARG_NONE, false, NULL }, /* one of filter_verbs */
};

/* "filter COMMAND": the word after "filter " is what the command line says. */
static const Verb filter_verbs[] = {
        { "filter list", 0, 0, 0, VERB_ARG_NONE, false, verb_filter_list },
        { "filter show", 1, 1, 0, VERB_ARG_FILTER_ID, false, verb_filter_show },
        { "filter add", 0, 0, OPT_RULE_FIELDS | OPT_JSON_OUTPUT, VERB_ARG_NONE, true,
          verb_filter_add },
        { "filter update", 1, 1, OPT_RULE_FIELDS, VERB_ARG_FILTER_ID, true, verb_filter_update },
        { "filter delete", 1, 1, 0, VERB_ARG_FILTER_ID, false, verb_filter_delete },
        { "filter enable", 1, 1, 0, VERB_ARG_FILTER_ID, false, verb_filter_enable },
        { "filter disable", 1, 1, 0, VERB_ARG_FILTER_ID, false, verb_filter_disable },
        { "filter import", 1, 1, OPT_REPLACE, VERB_ARG_FILE, false, verb_filter_import },
        { "filter export", 0, 0, 0, VERB_ARG_NONE, false, verb_filter_export },
        { "filter test", 0, 0, OPT_RULE_FIELDS | OPT_JSON_OUTPUT, VERB_ARG_NONE, true,
          verb_filter_test },
        { "filter apply", 1, 1, OPT_REPLACE | OPT_CONFIRM | OPT_YES, VERB_ARG_FILE, false,
          verb_filter_apply },
};

#define FILTER_PREFIX "filter "

static void help(void) {
        printf("packetscopectl [OPTIONS...] COMMAND ...\n\n"
               "Query and control the packetscope network guard.\n\n"
               "Commands:\n"
               "  status                   Show the daemon, its links and traffic totals (default)\n"
               "  attach IFACE             Guard an interface\n"
               "  detach IFACE             Stop guarding an interface\n"
               "  connections              List tracked TCP/UDP/other flows\n"
               "  icmp                     List tracked ICMP/ICMPv6 traffic\n"
               "  stats                    Show all counters\n"
               "  monitor                  Show live totals and the fastest flows\n\n"
               "Filter commands:\n"
               "  filter list              List the filter rules (default)\n"
               "  filter show ID           Show every field of one rule\n"
               "  filter add RULE          Add a rule\n"
               "  filter update ID RULE    Change the given fields of a rule\n"
               "  filter delete ID         Remove a rule\n"
               "  filter enable ID         Let a rule take part again\n"
               "  filter disable ID        Keep a rule, but let it match nothing\n"
               "  filter import FILE       Add (or with --replace, set) the rules of a JSON file\n"
               "  filter export            Print every rule as JSON\n"
               "  filter test RULE         Show the tracked traffic a rule would match\n"
               "  filter apply FILE --confirm=SECONDS\n"
               "                           Apply rules that roll back unless confirmed\n"
               "  RULE is --json JSON (- reads it from standard input) and/or field options\n\n"
               "Options:\n"
               "  -h --help                Show this help\n"
               "     --version             Show the version\n"
               "     --json[=pretty|short|off]\n"
               "                           Print JSON (pretty unless 'short')\n"
               "     --no-legend           Leave out column headers and footers\n"
               "     --no-ask-password     Don't ask for authentication\n"
               "     --mode=auto|native|generic\n"
               "                           XDP mode for attach (default: auto)\n"
               "     --ensure              attach: already guarded is success;\n"
               "                           detach: not guarded is success\n"
               "     --top=N               Rows to show, 1-%u (default: %u; monitor: %u)\n"
               "     --offset=N            Skip the first N rows\n"
               "     --sort=bytes|packets|last_seen|first_seen|rate\n"
               "                           Order of the rows\n"
               "     --protocol=PROTO      tcp, udp, icmp, icmpv6, sctp, gre, esp, ah, udplite\n"
               "                           or a number 0-255 (filters: also 'any')\n"
               "     --address=ADDR[/LEN]  Either end in this address or prefix\n"
               "     --port=N              Either port equal to N\n"
               "     --link=IFACE          Only this guarded interface\n"
               "     --family=ipv4|ipv6    Only this address family\n"
               "     --state=STATE         TCP state: none, syn, established, fin, rst\n"
               "     --type=N              ICMP type 0-255 (icmp)\n"
               "     --interval=SPAN       Monitor refresh, e.g. 1, 2s, 500ms (default: 1s)\n"
               "     --count=N             Monitor frames to show, then exit\n\n"
               "Rule field options (filter add, update, test), as the rule's JSON fields:\n"
               "     --rule-type=basic|tcp|udp|icmp\n"
               "     --src-ip=, --dst-ip=ADDR[/LEN]|any\n"
               "     --src-port=, --dst-port=N|LO-HI|any\n"
               "     --tcp-flags=, --tcp-flags-mask=N|FLAG,...  (fin, syn, rst, psh, ack, urg,\n"
               "                           ece, cwr)\n"
               "     --icmp-type=, --icmp-code=N|any\n"
               "     --inner-src-ip=, --inner-dst-ip=, --inner-protocol=,\n"
               "     --inner-src-port=, --inner-dst-port=   The datagram an ICMP error quotes\n"
               "     --action=drop|pass|count\n"
               "     --enabled=yes|no\n"
               "     --comment=TEXT\n"
               "     --priority=N          -%d to %d\n"
               "     --timeout=SPAN        Remove the rule after this long (plain: seconds)\n"
               "     --force               Pass the lock-out guard\n"
               "     --json-output         Print JSON (filter add, test)\n"
               "     --replace             import, apply: the rules become the whole set\n"
               "     --confirm=SECONDS     apply: roll back unless confirmed in time (1-%u)\n"
               "     --yes                 apply: confirm at once\n\n"
               "See the packetscopectl(1) man page for details.\n",
               TOP_MAX, TOP_DEFAULT, MONITOR_TOP_DEFAULT, PRIORITY_MAX, PRIORITY_MAX, CONFIRM_MAX);
}

static int parse_uint_option(const char *name, const char *value, uint64_t min, uint64_t max,
                             uint64_t *ret) {
        uint64_t v;

        if (safe_atou64(value, &v) < 0 || v < min || v > max)
                return usage_error("invalid value '%s' for --%s; accepted: an integer from %" PRIu64
                                   " to %" PRIu64, value, name, min, max);
        *ret = v;
        return 0;
}

static int parse_choice(const char *name, const char *value, const char *const *choices,
                        const char **ret) {
        _cleanup_free_ char *list = NULL;
        size_t len = 0;

        for (size_t i = 0; choices[i]; i++) {
                if (streq(value, choices[i])) {
                        *ret = choices[i];
                        return 0;
                }
                len += strlen(choices[i]) + 2;
        }
        list = calloc(1, len + 1);
        if (!list)
                return -ENOMEM;
        for (size_t i = 0, at = 0; choices[i]; i++) {
                /* Sized above: every choice plus ", ". */
                int n = snprintf(list + at, len + 1 - at, "%s%s", i > 0 ? ", " : "", choices[i]);

                if (n < 0)
                        return -EINVAL;
                at += (size_t) n;
        }
        return usage_error("invalid value '%s' for --%s; accepted: %s", value, name, list);
}

static int parse_protocol(const char *value) {
        static const char *const names[] = {
                "tcp", "udp", "icmp", "icmpv6", "sctp", "gre", "esp", "ah", "udplite",
        };
        uint32_t n;

        for (size_t i = 0; i < ELEMENTSOF(names); i++)
                if (strcasecmp(value, names[i]) == 0) {
                        snprintf(arg.protocol, sizeof arg.protocol, "%s", names[i]);
                        return 0;
                }
        if (safe_atou32(value, &n) == 0 && n <= 255) {
                snprintf(arg.protocol, sizeof arg.protocol, "%u", (unsigned) n);
                return 0;
        }
        /* A rule may match any protocol; whether the verb takes "any" is checked with it. */
        if (strcasecmp(value, "any") == 0) {
                snprintf(arg.protocol, sizeof arg.protocol, "any");
                return 0;
        }
        return usage_error("invalid value '%s' for --protocol; accepted: tcp, udp, icmp, icmpv6, "
                           "sctp, gre, esp, ah, udplite or an IP protocol number 0-255", value);
}

/* What the kernel takes as an interface name: 1-15 bytes, no '/', ':' or blanks. */
static bool ifname_valid(const char *s) {
        size_t l = strlen(s);

        if (l == 0 || l > 15 || streq(s, ".") || streq(s, ".."))
                return false;
        for (; *s; s++)
                if (*s == '/' || *s == ':' || (unsigned char) *s <= ' ' || (unsigned char) *s >= 0x7f)
                        return false;
        return true;
}

/* ---- rule field options: each becomes the rule key of its name, '-' read as '_' ---- */

static int rule_field_set(const char *option, json_t *value) {
        char key[32];
        size_t i;

        if (!value)
                return -ENOMEM;
        if (!arg.fields && !(arg.fields = json_object())) {
                json_decref(value);
                return -ENOMEM;
        }
        for (i = 0; option[i] && i < sizeof key - 1; i++)
                key[i] = option[i] == '-' ? '_' : option[i];
        key[i] = '\0';
        return json_object_set_new(arg.fields, key, value) < 0 ? -ENOMEM : 0; /* steals value */
}

static int parse_rule_address(const char *name, const char *value) {
        Cidr cidr;
        int r;

        if (!streq(value, "any") && !streq(value, "")) {
                r = cidr_parse(value, true, &cidr);
                if (r == -EADDRNOTAVAIL)
                        return usage_error("invalid value '%s' for --%s: bits are set beyond the "
                                           "prefix length; accepted: a network address such as "
                                           "10.0.0.0/8", value, name);
                if (r < 0)
                        return usage_error("invalid value '%s' for --%s; accepted: an IPv4 or IPv6 "
                                           "address or prefix (e.g. 192.0.2.7, 10.0.0.0/8, "
                                           "2001:db8::/32) or 'any'", value, name);
        }
        return rule_field_set(name, json_string(value));
}

/* A single port goes as a number, as in the Guarder's JSON; a range as its text. */
static int parse_rule_port(const char *name, const char *value) {
        const char *dash = strchr(value, '-');
        uint32_t lo, hi;

        if (streq(value, "any"))
                return rule_field_set(name, json_string(value));
        if (!dash && safe_atou32(value, &lo) == 0 && lo <= 65535)
                return rule_field_set(name, json_integer(lo));
        if (dash && dash > value) {
                _cleanup_free_ char *first = strndup(value, (size_t) (dash - value));

                if (!first)
                        return -ENOMEM;
                if (safe_atou32(first, &lo) == 0 && safe_atou32(dash + 1, &hi) == 0 && lo <= hi &&
                    hi <= 65535)
                        return rule_field_set(name, json_string(value));
        }
        return usage_error("invalid value '%s' for --%s; accepted: a port 0-65535 (0 = any), a "
                           "range LO-HI with LO <= HI, or 'any'", value, name);
}

static int parse_rule_tcp_flags(const char *name, const char *value) {
        static const char *const flag_names[] = { "fin", "syn", "rst", "psh", "ack", "urg", "ece", "cwr" };
        const char *p = value;
        unsigned flags = 0;
        uint32_t n;

        if (safe_atou32(value, &n) == 0 && n <= 255)
                return rule_field_set(name, json_integer(n));
        while (*p) {
                size_t l = strcspn(p, ",|+"), k;

                for (k = 0; k < ELEMENTSOF(flag_names); k++)
                        if (l == strlen(flag_names[k]) && strncasecmp(p, flag_names[k], l) == 0)
                                break;
                if (k == ELEMENTSOF(flag_names))
                        break;
                flags |= 1u << k;
                p += l;
                if (*p && *++p == '\0')
                        break; /* a trailing separator */
        }
        if (*value && !*p && p[-1] != ',' && p[-1] != '|' && p[-1] != '+')
                return rule_field_set(name, json_integer(flags));
        return usage_error("invalid value '%s' for --%s; accepted: a number 0-255 or flag names "
                           "joined by ',' (fin, syn, rst, psh, ack, urg, ece, cwr), e.g. syn,ack",
                           value, name);
}

static int parse_rule_icmp(const char *name, const char *value) {
        uint32_t n;

        if (streq(value, "any"))
                return rule_field_set(name, json_integer(255));
        if (safe_atou32(value, &n) == 0 && n <= 255)
                return rule_field_set(name, json_integer(n));
        return usage_error("invalid value '%s' for --%s; accepted: a number 0-255, or 255 or "
                           "'any' for any", value, name);
}

static int parse_rule_priority(const char *name, const char *value) {
        bool negative = value[0] == '-';
        uint64_t u;

        if (safe_atou64(negative ? value + 1 : value, &u) < 0 || u > PRIORITY_MAX)
                return usage_error("invalid value '%s' for --%s; accepted: an integer from -%d to "
                                   "%d", value, name, PRIORITY_MAX, PRIORITY_MAX);
        return rule_field_set(name, json_integer(negative ? -(json_int_t) u : (json_int_t) u));
}

static int parse_rule_timeout(const char *name, const char *value) {
        uint64_t usec;

        if (parse_time_span(value, &usec) < 0 || usec % USEC_PER_SEC != 0 ||
            usec / USEC_PER_SEC > RULE_TIMEOUT_MAX)
                return usage_error("invalid value '%s' for --%s; accepted: whole seconds from 0 "
                                   "(permanent) to %u (366 days), e.g. 300, 5min, 2h", value, name,
                                   RULE_TIMEOUT_MAX);
        return rule_field_set(name, json_integer((json_int_t) (usec / USEC_PER_SEC)));
}

static int parse_rule_field(uint64_t bit, const char *name, const char *value) {
        static const char *const rule_types[] = { "basic", "tcp", "udp", "icmp", NULL };
        static const char *const actions[] = { "drop", "pass", "count", NULL };
        const char *choice;
        int r;

        if (value && !string_is_valid_utf8(value, SIZE_MAX))
                return usage_error("the value of --%s is not UTF-8 text", name);
        if (bit == OPT_RULE_TYPE || bit == OPT_ACTION) {
                r = parse_choice(name, value, bit == OPT_ACTION ? actions : rule_types, &choice);
                return r < 0 ? r : rule_field_set(name, json_string(choice));
        }
        if (bit == OPT_SRC_IP || bit == OPT_DST_IP || bit == OPT_INNER_SRC_IP ||
            bit == OPT_INNER_DST_IP)
                return parse_rule_address(name, value);
        if (bit == OPT_SRC_PORT || bit == OPT_DST_PORT || bit == OPT_INNER_SRC_PORT ||
            bit == OPT_INNER_DST_PORT)
                return parse_rule_port(name, value);
        if (bit == OPT_TCP_FLAGS || bit == OPT_TCP_FLAGS_MASK)
                return parse_rule_tcp_flags(name, value);
        if (bit == OPT_ICMP_TYPE || bit == OPT_ICMP_CODE)
                return parse_rule_icmp(name, value);
        if (bit == OPT_INNER_PROTOCOL) {
                /* The same names as --protocol, kept apart from it. */
                char saved[sizeof arg.protocol];

                memcpy(saved, arg.protocol, sizeof saved);
                r = parse_protocol(value);
                if (r >= 0)
                        r = rule_field_set(name, json_string(arg.protocol));
                memcpy(arg.protocol, saved, sizeof saved);
                return r;
        }
        if (bit == OPT_ENABLED) {
                r = parse_boolean(value);
                if (r < 0)
                        return usage_error("invalid value '%s' for --%s; accepted: yes or no (also "
                                           "true/false, on/off, 1/0)", value, name);
                return rule_field_set(name, json_boolean(r));
        }
        if (bit == OPT_COMMENT)
                return rule_field_set(name, json_string(value));
        if (bit == OPT_PRIORITY)
                return parse_rule_priority(name, value);
        if (bit == OPT_TIMEOUT)
                return parse_rule_timeout(name, value);
        if (bit == OPT_FORCE)
                return rule_field_set(name, json_true());
        return -EINVAL;
}

static int parse_argv(int argc, char *argv[]) {
        enum {
                ARG_VERSION = 0x100,
                ARG_JSON,
                ARG_NO_LEGEND,
                ARG_NO_ASK_PASSWORD,
                ARG_FIRST_VERB_OPTION, /* then one per OPT_* bit, in option_names order */
        };
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                { "json", optional_argument, NULL, ARG_JSON },
                { "no-legend", no_argument, NULL, ARG_NO_LEGEND },
                { "no-ask-password", no_argument, NULL, ARG_NO_ASK_PASSWORD },
                { "top", required_argument, NULL, ARG_FIRST_VERB_OPTION + 0 },
                { "offset", required_argument, NULL, ARG_FIRST_VERB_OPTION + 1 },
                { "sort", required_argument, NULL, ARG_FIRST_VERB_OPTION + 2 },
                { "protocol", required_argument, NULL, ARG_FIRST_VERB_OPTION + 3 },
                { "address", required_argument, NULL, ARG_FIRST_VERB_OPTION + 4 },
                { "port", required_argument, NULL, ARG_FIRST_VERB_OPTION + 5 },
                { "link", required_argument, NULL, ARG_FIRST_VERB_OPTION + 6 },
                { "family", required_argument, NULL, ARG_FIRST_VERB_OPTION + 7 },
                { "state", required_argument, NULL, ARG_FIRST_VERB_OPTION + 8 },
                { "type", required_argument, NULL, ARG_FIRST_VERB_OPTION + 9 },
                { "mode", required_argument, NULL, ARG_FIRST_VERB_OPTION + 10 },
                { "interval", required_argument, NULL, ARG_FIRST_VERB_OPTION + 11 },
                { "count", required_argument, NULL, ARG_FIRST_VERB_OPTION + 12 },
                { "ensure", no_argument, NULL, ARG_FIRST_VERB_OPTION + 13 },
                { "rule-type", required_argument, NULL, ARG_FIRST_VERB_OPTION + 14 },
                { "src-ip", required_argument, NULL, ARG_FIRST_VERB_OPTION + 15 },
                { "dst-ip", required_argument, NULL, ARG_FIRST_VERB_OPTION + 16 },
                { "src-port", required_argument, NULL, ARG_FIRST_VERB_OPTION + 17 },
                { "dst-port", required_argument, NULL, ARG_FIRST_VERB_OPTION + 18 },
                { "tcp-flags", required_argument, NULL, ARG_FIRST_VERB_OPTION + 19 },
                { "tcp-flags-mask", required_argument, NULL, ARG_FIRST_VERB_OPTION + 20 },
                { "icmp-type", required_argument, NULL, ARG_FIRST_VERB_OPTION + 21 },
                { "icmp-code", required_argument, NULL, ARG_FIRST_VERB_OPTION + 22 },
                { "inner-src-ip", required_argument, NULL, ARG_FIRST_VERB_OPTION + 23 },
                { "inner-dst-ip", required_argument, NULL, ARG_FIRST_VERB_OPTION + 24 },
                { "inner-protocol", required_argument, NULL, ARG_FIRST_VERB_OPTION + 25 },
                { "inner-src-port", required_argument, NULL, ARG_FIRST_VERB_OPTION + 26 },
                { "inner-dst-port", required_argument, NULL, ARG_FIRST_VERB_OPTION + 27 },
                { "action", required_argument, NULL, ARG_FIRST_VERB_OPTION + 28 },
                { "enabled", required_argument, NULL, ARG_FIRST_VERB_OPTION + 29 },
                { "comment", required_argument, NULL, ARG_FIRST_VERB_OPTION + 30 },
                { "priority", required_argument, NULL, ARG_FIRST_VERB_OPTION + 31 },
                { "timeout", required_argument, NULL, ARG_FIRST_VERB_OPTION + 32 },
                { "force", no_argument, NULL, ARG_FIRST_VERB_OPTION + 33 },
                { "replace", no_argument, NULL, ARG_FIRST_VERB_OPTION + 34 },
                { "confirm", required_argument, NULL, ARG_FIRST_VERB_OPTION + 35 },
                { "yes", no_argument, NULL, ARG_FIRST_VERB_OPTION + 36 },
                { "json-output", no_argument, NULL, ARG_FIRST_VERB_OPTION + 37 },
                {}
        };
        static const char *const sorts[] = { "bytes", "packets", "last_seen", "first_seen", "rate", NULL };
        static const char *const families[] = { "ipv4", "ipv6", NULL };
        static const char *const states[] = { "none", "syn", "established", "fin", "rst", NULL };
        static const char *const modes[] = { "auto", "native", "generic", "drv", "skb", NULL };
        static const char *const json_modes[] = { "pretty", "short", "off", NULL };
        uint64_t v;
        int c, r;

        /* "+" would stop at the verb; options may follow it (connections --top 5), so permute. */
        opterr = 0;
        while ((c = getopt_long(argc, argv, ":h", options, NULL)) >= 0) {
                switch (c) {
                case 'h':
                        help();
                        return 0;
                case ARG_VERSION:
                        printf("packetscopectl %s\n", PACKETSCOPE_VERSION);
                        return 0;
                case ARG_JSON: {
                        const char *mode = "pretty";

                        if (optarg) {
                                r = parse_choice("json", optarg, json_modes, &mode);
                                if (r < 0)
                                        return r;
                                arg.json_explicit = true;
                        } else {
                                /* "--json JSON" gives the rule of filter add/update/test: which
                                 * word follows is remembered, main() decides once the verb is
                                 * known (options and words may come in any order). */
                                arg.json_next = optind < argc ? argv[optind] : NULL;
                                if (arg.json_explicit)
                                        break;
                        }
                        arg.json = streq(mode, "short") ? JSON_SHORT
                                 : streq(mode, "off") ? JSON_OFF : JSON_PRETTY;
                        break;
                }
                case ARG_NO_LEGEND:
                        arg.legend = false;
                        break;
                case ARG_NO_ASK_PASSWORD:
                        arg.ask_password = false;
                        break;
                case ':':
                        return usage_error("option '%s' needs a value", argv[optind - 1]);
                case '?':
                        if (optopt)
                                return usage_error("unknown option '-%c'", optopt);
                        return usage_error("unknown option '%s'", argv[optind - 1]);
                default: {
                        unsigned bit = (unsigned) (c - ARG_FIRST_VERB_OPTION);

                        if (c < ARG_FIRST_VERB_OPTION || bit >= ELEMENTSOF(option_names))
                                return -EINVAL;
                        arg.given |= OPT_BIT(bit);
                        switch (OPT_BIT(bit)) {
                        case OPT_TOP:
                                r = parse_uint_option("top", optarg, 1, TOP_MAX, &v);
                                arg.top = (uint32_t) v;
                                break;
                        case OPT_OFFSET:
                                r = parse_uint_option("offset", optarg, 0, OFFSET_MAX, &v);
                                arg.offset = (uint32_t) v;
                                break;
                        case OPT_SORT:
                                r = parse_choice("sort", optarg, sorts, &arg.sort);
                                break;
                        case OPT_PROTOCOL:
                                r = parse_protocol(optarg);
                                break;
                        case OPT_ADDRESS: {
                                Cidr cidr;

                                r = cidr_parse(optarg, false, &cidr);
                                if (r < 0)
                                        r = usage_error("invalid value '%s' for --address; accepted: "
                                                        "an IPv4 or IPv6 address or prefix, e.g. "
                                                        "192.0.2.7, 10.0.0.0/8, 2001:db8::/32",
                                                        optarg);
                                arg.address = optarg;
                                break;
                        }
                        case OPT_PORT:
                                r = parse_uint_option("port", optarg, 0, 65535, &v);
                                arg.port = (uint16_t) v;
                                break;
                        case OPT_LINK:
                                r = ifname_valid(optarg) ? 0
                                  : usage_error("invalid value '%s' for --link; accepted: an "
                                                "interface name of 1-15 characters", optarg);
                                arg.link = optarg;
                                break;
                        case OPT_FAMILY:
                                r = parse_choice("family", optarg, families, &arg.family);
                                break;
                        case OPT_STATE:
                                r = parse_choice("state", optarg, states, &arg.state);
                                break;
                        case OPT_TYPE:
                                r = parse_uint_option("type", optarg, 0, 255, &v);
                                arg.icmp_type = (uint8_t) v;
                                break;
                        case OPT_MODE:
                                r = parse_choice("mode", optarg, modes, &arg.mode);
                                break;
                        case OPT_INTERVAL:
                                r = parse_time_span(optarg, &v);
                                if (r < 0 || v < INTERVAL_MIN || v > INTERVAL_MAX)
                                        r = usage_error("invalid value '%s' for --interval; "
                                                        "accepted: a time span from 100ms to 1h, "
                                                        "e.g. 1, 2s, 500ms", optarg);
                                else
                                        arg.interval_usec = v;
                                break;
                        case OPT_COUNT:
                                r = parse_uint_option("count", optarg, 1, UINT64_MAX, &v);
                                arg.count = v;
                                break;
                        case OPT_CONFIRM:
                                r = parse_uint_option("confirm", optarg, 1, CONFIRM_MAX, &v);
                                arg.confirm_sec = (uint32_t) v;
                                break;
                        case OPT_ENSURE:
                        case OPT_REPLACE:
                        case OPT_YES:
                        case OPT_JSON_OUTPUT:
                                r = 0; /* arg.given says it all */
                                break;
                        default:
                                if (OPT_BIT(bit) & OPT_RULE_FIELDS)
                                        r = parse_rule_field(OPT_BIT(bit), option_names[bit], optarg);
                                else
                                        r = -EINVAL;
                        }
                        if (r < 0)
                                return r;
                }
                }
        }
        return 1;
}

static int check_verb_options(const Verb *verb) {
        uint64_t extra = arg.given & ~verb->options;

        for (size_t i = 0; i < ELEMENTSOF(option_names); i++) {
                char accepted[256] = "";

                if (!(extra & OPT_BIT(i)))
                        continue;
                for (size_t k = 0; k < ELEMENTSOF(verbs) + ELEMENTSOF(filter_verbs); k++) {
                        const Verb *v = k < ELEMENTSOF(verbs) ? &verbs[k]
                                                              : &filter_verbs[k - ELEMENTSOF(verbs)];

                        if (v->options & OPT_BIT(i)) {
                                if (accepted[0])
                                        strncat(accepted, ", ", sizeof accepted - strlen(accepted) - 1);
                                strncat(accepted, v->name, sizeof accepted - strlen(accepted) - 1);
                        }
                }
                return usage_error("option --%s does not apply to '%s'; it is accepted by: %s",
                                   option_names[i], verb->name, accepted);
        }
        /* "any" is a rule's wildcard, not something a query can ask for. */
        if ((arg.given & OPT_PROTOCOL) && streq(arg.protocol, "any") && !verb->rule)
                return usage_error("invalid value 'any' for --protocol with '%s'; accepted: tcp, "
                                   "udp, icmp, icmpv6, sctp, gre, esp, ah, udplite or an IP "
                                   "protocol number 0-255", verb->name);
        return 0;
}

/* The rule of filter add/update/test: the --json text (or standard input for "-"), then the
 * field options on top of it, so that "--json '{...}' --force" works as it reads. */
static int build_rule(const Verb *verb, const char *text) {
        _cleanup_free_ char *input = NULL, *err = NULL;
        _cleanup_json_ json_t *rule = NULL;
        const char *key;
        json_t *value;
        int r;

        if (text && streq(text, "-")) {
                r = read_input("-", &input);
                if (r < 0)
                        return r;
                text = input;
        }
        if (text) {
                json_error_t jerr;

                rule = json_loads(text, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
                if (!rule)
                        return usage_error("the rule given with --json is not valid JSON: line %d "
                                           "column %d: %s", jerr.line, jerr.column, jerr.text);
                r = rule_check(rule, &err);
                if (r == -ENOMEM)
                        return r;
                if (r < 0)
                        return usage_error("the rule given with --json: %s", err);
        } else {
                if (!arg.fields)
                        return usage_error("'%s' needs a rule: --json JSON, or field options such "
                                           "as --rule-type=tcp --dst-port=23 (see --help)",
                                           verb->name);
                rule = json_object();
                if (!rule)
                        return -ENOMEM;
        }
        if ((arg.given & OPT_PROTOCOL) && rule_field_set("protocol", json_string(arg.protocol)) < 0)
                return -ENOMEM;
        if (arg.fields)
                json_object_foreach(arg.fields, key, value)
                        if (json_object_set(rule, key, value) < 0) /* adds a reference */
                                return -ENOMEM;
        arg.rule = TAKE_PTR(rule);
        return 0;
}

static const Verb *verb_find(const Verb *table, size_t n, const char *name, size_t skip) {
        for (size_t i = 0; i < n; i++)
                if (streq(name, table[i].name + skip))
                        return &table[i];
        return NULL;
}

static const char *verb_arg_name(VerbArg a) {
        switch (a) {
        case VERB_ARG_IFACE: return "an interface name";
        case VERB_ARG_FILTER_ID: return "a filter id";
        case VERB_ARG_FILE: return "a file name (or - for standard input)";
        default: return "nothing";
        }
}

/* Checks the words after the verb; the JSON of a rule verb is taken out of them first. */
static int check_verb_args(const Verb *verb, char **args, int *n_args, const char **ret_rule) {
        const char *rule = NULL;
        uint32_t id;

        if (verb->rule && arg.json_next)
                for (int i = 0; i < *n_args; i++)
                        if (args[i] == arg.json_next) {
                                rule = args[i];
                                memmove(args + i, args + i + 1, (size_t) (*n_args - i - 1) * sizeof(char *));
                                (*n_args)--;
                                /* Unless a mode was given with "=", a bare --json that brought
                                 * the rule says nothing about the output. */
                                if (!arg.json_explicit)
                                        arg.json = JSON_OFF;
                                break;
                        }
        if (*n_args < verb->min_args || *n_args > verb->max_args) {
                if (verb->max_args == 0)
                        return usage_error("'%s' takes no arguments, got '%s'", verb->name, args[0]);
                if (*n_args < verb->min_args)
                        return usage_error("'%s' needs %s", verb->name, verb_arg_name(verb->args));
                return usage_error("'%s' takes %s, got %d arguments", verb->name,
                                   verb_arg_name(verb->args), *n_args);
        }
        switch (verb->args) {
        case VERB_ARG_IFACE:
                if (!ifname_valid(args[0]))
                        return usage_error("invalid interface name '%s'; accepted: 1-15 characters "
                                           "without '/', ':' or blanks", args[0]);
                break;
        case VERB_ARG_FILTER_ID:
                if (safe_atou32(args[0], &id) < 0)
                        return usage_error("invalid filter id '%s'; accepted: a number 0-%" PRIu32
                                           " (see 'filter list')", args[0], UINT32_MAX);
                arg.filter_id = id;
                break;
        default:
                break;
        }
        if ((verb->options & OPT_CONFIRM) && !(arg.given & OPT_CONFIRM))
                return usage_error("'%s' needs --confirm=SECONDS (1-%u): how long until the rules "
                                   "roll back unless confirmed", verb->name, CONFIRM_MAX);
        *ret_rule = rule;
        return 0;
}

int main(int argc, char *argv[]) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        const Verb *verb = NULL;
        const char *name, *rule_text = NULL;
        char **args;
        int n_args, r;

        r = parse_argv(argc, argv);
        if (r <= 0) {
                json_decref(arg.fields);
                return r < 0 ? EXIT_USAGE : EXIT_SUCCESS;
        }

        name = optind < argc ? argv[optind] : "status";
        args = optind < argc ? argv + optind + 1 : argv + argc;
        n_args = optind < argc ? argc - optind - 1 : 0;
        verb = verb_find(verbs, ELEMENTSOF(verbs), name, 0);
        if (!verb) {
                usage_error("unknown command '%s'; accepted: status, attach, detach, connections, "
                            "icmp, stats, monitor, filter", name);
                r = -EINVAL;
                goto finish;
        }
        if (!verb->run) {
                /* "filter" alone lists the rules. */
                name = n_args > 0 ? args[0] : "list";
                verb = verb_find(filter_verbs, ELEMENTSOF(filter_verbs), name, strlen(FILTER_PREFIX));
                if (!verb) {
                        usage_error("unknown command 'filter %s'; accepted: filter list, show, add, "
                                    "update, delete, enable, disable, import, export, test, apply",
                                    name);
                        r = -EINVAL;
                        goto finish;
                }
                if (n_args > 0) {
                        args++;
                        n_args--;
                }
        }
        r = check_verb_args(verb, args, &n_args, &rule_text);
        if (r >= 0)
                r = check_verb_options(verb);
        if (r >= 0 && verb->rule)
                r = build_rule(verb, rule_text);
        if (r < 0)
                goto finish;

        r = sd_bus_open_system(&bus);
        if (r < 0) {
                fprintf(stderr, "packetscopectl: cannot connect to the system bus: %s\n",
                        strerror(-r));
                r = -EIO;
                goto finish;
        }
        /* polkit may ask the user (through an agent) for the mutating calls. */
        (void) sd_bus_set_allow_interactive_authorization(bus, arg.ask_password);

        r = verb->run(bus, args, n_args);
        if (r == -ENOMEM)
                fputs("packetscopectl: out of memory\n", stderr);
        else if (r == -EIO && ferror(stdout))
                fputs("packetscopectl: cannot write the output\n", stderr);
        if (fflush(stdout) != 0 && r >= 0) {
                fprintf(stderr, "packetscopectl: cannot write the output: %s\n", strerror(errno));
                r = -EIO;
        }
        json_decref(arg.fields);
        json_decref(arg.rule);
        return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;

finish:
        /* Only what was wrong on the command line is a usage error. */
        json_decref(arg.fields);
        json_decref(arg.rule);
        if (r == -ENOMEM)
                fputs("packetscopectl: out of memory\n", stderr);
        return r == -EINVAL ? EXIT_USAGE : EXIT_FAILURE;
}
