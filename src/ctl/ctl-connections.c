/* SPDX-License-Identifier: MIT */
/*
 * connections and icmp: Connections.List and ListIcmp with the query of the command line, and
 * the tables of their rows (also used by monitor and filter test).
 */
#include <assert.h>
#include <inttypes.h>
#include <math.h>

#include "packetscopectl.h"
#include "proto.h"

typedef enum ConnectionKey {
        CONN_FAMILY,
        CONN_PROTOCOL,
        CONN_IP_PROTOCOL,
        CONN_SRC,
        CONN_DST,
        CONN_SPORT,
        CONN_DPORT,
        CONN_PACKETS,
        CONN_BYTES,
        CONN_LAST_SEEN,
        CONN_TCP_FLAGS,
        CONN_STATE,
        CONN_PPS,
        CONN_BPS,
        CONN_LINK,
        CONN_TYPE,
        CONN_CODE,
        CONN_ERROR,
        CONN_INNER_PROTOCOL,
        CONN_INNER_IP_PROTOCOL,
        CONN_INNER_SRC,
        CONN_INNER_DST,
        CONN_INNER_SPORT,
        CONN_INNER_DPORT,
        CONN_RANK_AGE,
        _CONN_MAX,
} ConnectionKey;

#define ROW_FIELD(key, kind, member) { key, kind, offsetof(ConnectionRow, member), NULL }

static const BusField connection_fields[_CONN_MAX] = {
        [CONN_FAMILY]            = ROW_FIELD("family", BUS_FIELD_STRING, family),
        [CONN_PROTOCOL]          = ROW_FIELD("protocol", BUS_FIELD_STRING, protocol),
        [CONN_IP_PROTOCOL]       = ROW_FIELD("ip_protocol", BUS_FIELD_U64, ip_protocol),
        [CONN_SRC]               = ROW_FIELD("src", BUS_FIELD_STRING, src),
        [CONN_DST]               = ROW_FIELD("dst", BUS_FIELD_STRING, dst),
        [CONN_SPORT]             = ROW_FIELD("sport", BUS_FIELD_U64, sport),
        [CONN_DPORT]             = ROW_FIELD("dport", BUS_FIELD_U64, dport),
        [CONN_PACKETS]           = ROW_FIELD("packets", BUS_FIELD_U64, packets),
        [CONN_BYTES]             = ROW_FIELD("bytes", BUS_FIELD_U64, bytes),
        [CONN_LAST_SEEN]         = ROW_FIELD("last_seen", BUS_FIELD_U64, last_seen),
        [CONN_TCP_FLAGS]         = ROW_FIELD("tcp_flags", BUS_FIELD_U64, tcp_flags),
        [CONN_STATE]             = ROW_FIELD("state", BUS_FIELD_STRING, state),
        [CONN_PPS]               = ROW_FIELD("pps", BUS_FIELD_DOUBLE, pps),
        [CONN_BPS]               = ROW_FIELD("bps", BUS_FIELD_DOUBLE, bps),
        [CONN_LINK]              = ROW_FIELD("link", BUS_FIELD_STRING, link),
        [CONN_TYPE]              = ROW_FIELD("type", BUS_FIELD_U64, type),
        [CONN_CODE]              = ROW_FIELD("code", BUS_FIELD_U64, code),
        [CONN_ERROR]             = ROW_FIELD("error", BUS_FIELD_BOOL, error),
        [CONN_INNER_PROTOCOL]    = ROW_FIELD("inner_protocol", BUS_FIELD_STRING, inner_protocol),
        [CONN_INNER_IP_PROTOCOL] = ROW_FIELD("inner_ip_protocol", BUS_FIELD_U64, inner_ip_protocol),
        [CONN_INNER_SRC]         = ROW_FIELD("inner_src", BUS_FIELD_STRING, inner_src),
        [CONN_INNER_DST]         = ROW_FIELD("inner_dst", BUS_FIELD_STRING, inner_dst),
        [CONN_INNER_SPORT]       = ROW_FIELD("inner_sport", BUS_FIELD_U64, inner_sport),
        [CONN_INNER_DPORT]       = ROW_FIELD("inner_dport", BUS_FIELD_U64, inner_dport),
        [CONN_RANK_AGE]          = ROW_FIELD("rank_age_usec", BUS_FIELD_U64, rank_age_usec),
};

int connection_rows_read(sd_bus_message *reply, ConnectionRow **ret, size_t *ret_n) {
        static const BusDict dict = BUS_DICT(connection_fields, ConnectionRow);
        /* A rate the daemon does not report reads "n/a", not 0. */
        static const ConnectionRow initial = { .pps = NAN, .bps = NAN };
        void *rows = NULL;
        int r;

        assert(reply);
        assert(ret);
        assert(ret_n);

        r = bus_read_rows(reply, &dict, sizeof(ConnectionRow), &initial, &rows, ret_n);
        if (r < 0) {
                fprintf(stderr, "packetscopectl: cannot parse the reply: %s\n", strerror(-r));
                return r;
        }
        *ret = rows;
        return 0;
}

/* The two kinds come in one list from Filters.Test: ICMP rows are the ones with a type. */
bool connection_row_is_icmp(const ConnectionRow *row) {
        assert(row);
        return BUS_SEEN(row, CONN_TYPE);
}

/* Only the keys the user gave, plus the limit; List and ListIcmp each take some of them. */
static int append_query(sd_bus_message *m, bool icmp, uint32_t default_limit) {
        const struct {
                uint64_t option;
                const char *key;
                char type;      /* 's', or the integer type of u */
                bool flows, icmp;
                const char *s;
                uint64_t u;
        } keys[] = {
                { OPT_OFFSET, "offset", 'u', true, true, .u = arg.offset },
                { OPT_SORT, "sort", 's', true, true, .s = arg.sort },
                { OPT_PROTOCOL, "protocol", 's', true, false, .s = arg.protocol },
                { OPT_ADDRESS, "address", 's', true, true, .s = arg.address },
                { OPT_PORT, "port", 'q', true, false, .u = arg.port },
                { OPT_LINK, "link", 's', true, true, .s = arg.link },
                { OPT_FAMILY, "family", 's', true, true, .s = arg.family },
                { OPT_STATE, "state", 's', true, false, .s = arg.state },
                { OPT_TYPE, "type", 'y', false, true, .u = arg.icmp_type },
        };
        int r;

        r = sd_bus_message_open_container(m, 'a', "{sv}");
        if (r < 0)
                return r;
        r = sd_bus_message_append(m, "{sv}", "limit", "u",
                                  (uint32_t) ((arg.given & OPT_TOP) ? arg.top : default_limit));
        for (size_t i = 0; r >= 0 && i < ELEMENTSOF(keys); i++) {
                if (!(arg.given & keys[i].option) || !(icmp ? keys[i].icmp : keys[i].flows))
                        continue;
                switch (keys[i].type) {
                case 's':
                        r = sd_bus_message_append(m, "{sv}", keys[i].key, "s", keys[i].s);
                        break;
                case 'u':
                        r = sd_bus_message_append(m, "{sv}", keys[i].key, "u", (uint32_t) keys[i].u);
                        break;
                case 'q':
                        r = sd_bus_message_append(m, "{sv}", keys[i].key, "q", (uint16_t) keys[i].u);
                        break;
                default:
                        r = sd_bus_message_append(m, "{sv}", keys[i].key, "y", (uint8_t) keys[i].u);
                }
        }
        if (r >= 0 && !icmp && (arg.given & OPT_FRESH))
                r = sd_bus_message_append(m, "{sv}", "fresh", "b", 1);
        if (r < 0)
                return r;
        return sd_bus_message_close_container(m);
}

int new_list_call(sd_bus *bus, bool icmp, uint32_t default_limit, sd_bus_message **ret) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        int r;

        assert(bus);
        assert(ret);

        r = sd_bus_message_new_method_call(bus, &m, PS_BUS_NAME, PS_OBJECT_CONNECTIONS,
                                           PS_IFACE_CONNECTIONS, icmp ? "ListIcmp" : "List");
        if (r < 0)
                return r;
        r = append_query(m, icmp, default_limit);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(m);
        return 0;
}

static int call_list(sd_bus *bus, bool icmp, sd_bus_message **ret) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        int r;

        r = new_list_call(bus, icmp, TOP_DEFAULT, &m);
        if (r < 0)
                return bus_error("building the query", &error, r);
        r = sd_bus_call(bus, m, 0, &error, ret);
        if (r < 0)
                return bus_error(icmp ? "ListIcmp" : "List", &error, r);
        return 0;
}

/* Ports only mean something for some protocols; the others show bare addresses. */
static void format_flow_endpoint(char *buf, size_t size, const char *addr, uint16_t port,
                                 unsigned ip_protocol) {
        if (protocol_has_ports(ip_protocol))
                format_endpoint(buf, size, addr, port);
        else
                snprintf(buf, size, "%s", strna(addr));
}

int render_connections(FILE *f, const ConnectionRow *rows, size_t n, uint64_t now, bool header) {
        _cleanup_table_ Table *t = table_new("PROTO", "SOURCE", "DESTINATION", "STATE", "FLAGS",
                                             "PACKETS", "BYTES", "PPS", "RATE", "LAST", "LINK",
                                             NULL);
        int r = 0;

        assert(f);
        assert(rows || n == 0);

        if (!t)
                return -ENOMEM;
        table_align_right(t, 1u << 5 | 1u << 6 | 1u << 7 | 1u << 8);
        /* Narrower than the table: the flags go first, then the packet rate, the bit rate, the
         * last-seen time and the link. */
        (void) table_set_priority(t, 4, 5);
        (void) table_set_priority(t, 7, 4);
        (void) table_set_priority(t, 8, 3);
        (void) table_set_priority(t, 9, 2);
        (void) table_set_priority(t, 10, 1);
        table_fit(t);
        for (size_t i = 0; i < n; i++) {
                const ConnectionRow *row = &rows[i];
                char src[FORMAT_ENDPOINT_MAX], dst[FORMAT_ENDPOINT_MAX], flags[FORMAT_TCP_FLAGS_MAX];
                char bytes[FORMAT_BYTES_MAX], pps[FORMAT_RATE_MAX], bps[FORMAT_RATE_MAX];
                char last[FORMAT_RELATIVE_MAX];
                unsigned proto = (unsigned) row->ip_protocol;
                bool tcp = proto == 6;

                format_flow_endpoint(src, sizeof src, row->src, (uint16_t) row->sport, proto);
                format_flow_endpoint(dst, sizeof dst, row->dst, (uint16_t) row->dport, proto);
                if ((r = table_add_cell(t, row->protocol)) < 0 ||
                    (r = table_add_cell(t, src)) < 0 ||
                    (r = table_add_cell(t, dst)) < 0 ||
                    (r = tcp && streq_ptr(row->state, "established")
                                ? table_add_colored(t, COLOR_GREEN, row->state)
                                : tcp && streq_ptr(row->state, "rst")
                                ? table_add_colored(t, COLOR_RED, row->state)
                                : table_add_cell(t, tcp ? row->state : "-")) < 0 ||
                    (r = table_add_cell(t, tcp ? format_tcp_flags(flags, sizeof flags,
                                                                  (uint8_t) row->tcp_flags)
                                               : "-")) < 0 ||
                    (r = table_add_cellf(t, "%" PRIu64, row->packets)) < 0 ||
                    (r = table_add_cell(t, format_bytes(bytes, sizeof bytes, row->bytes))) < 0 ||
                    (r = table_add_cell(t, format_rate_pps(pps, sizeof pps, row->pps))) < 0 ||
                    (r = table_add_cell(t, format_rate_bits(bps, sizeof bps, row->bps))) < 0 ||
                    (r = table_add_cell(t, format_relative_time(last, sizeof last, now,
                                                                row->last_seen))) < 0 ||
                    (r = table_add_cell(t, row->link)) < 0)
                        return r;
        }
        if (n == 0 && !header)
                return 0;
        return table_print(t, f, header);
}

int render_icmp(FILE *f, const ConnectionRow *rows, size_t n, uint64_t now, bool header) {
        _cleanup_table_ Table *t = table_new("TYPE", "CODE", "SOURCE", "DESTINATION", "PACKETS",
                                             "BYTES", "LAST", "LINK", "QUOTED", NULL);
        int r;

        assert(f);
        assert(rows || n == 0);

        if (!t)
                return -ENOMEM;
        table_align_right(t, 1u << 1 | 1u << 4 | 1u << 5);
        /* Narrower than the table: the link goes first, then the time, then the bytes. */
        (void) table_set_priority(t, 7, 3);
        (void) table_set_priority(t, 6, 2);
        (void) table_set_priority(t, 5, 1);
        table_fit(t);
        for (size_t i = 0; i < n; i++) {
                const ConnectionRow *row = &rows[i];
                char type[48], bytes[FORMAT_BYTES_MAX], last[FORMAT_RELATIVE_MAX];
                _cleanup_free_ char *quoted = NULL;

                format_icmp_type(type, sizeof type, streq_ptr(row->family, "ipv6"),
                                 (unsigned) row->type);
                /* An error quotes the header of the packet that caused it: show that flow. */
                if (row->error && row->inner_src) {
                        char isrc[FORMAT_ENDPOINT_MAX], idst[FORMAT_ENDPOINT_MAX];
                        unsigned iproto = (unsigned) row->inner_ip_protocol;

                        format_flow_endpoint(isrc, sizeof isrc, row->inner_src,
                                             (uint16_t) row->inner_sport, iproto);
                        format_flow_endpoint(idst, sizeof idst, row->inner_dst,
                                             (uint16_t) row->inner_dport, iproto);
                        r = error_setf(&quoted, 0, "%s %s -> %s", strna(row->inner_protocol), isrc,
                                       idst);
                        if (r < 0)
                                return r;
                }
                if ((r = table_add_cell(t, type)) < 0 ||
                    (r = table_add_cellf(t, "%" PRIu64, row->code)) < 0 ||
                    (r = table_add_cell(t, row->src)) < 0 ||
                    (r = table_add_cell(t, row->dst)) < 0 ||
                    (r = table_add_cellf(t, "%" PRIu64, row->packets)) < 0 ||
                    (r = table_add_cell(t, format_bytes(bytes, sizeof bytes, row->bytes))) < 0 ||
                    (r = table_add_cell(t, format_relative_time(last, sizeof last, now,
                                                                row->last_seen))) < 0 ||
                    (r = table_add_cell(t, row->link)) < 0 ||
                    (r = table_add_cell(t, quoted)) < 0)
                        return r;
        }
        if (n == 0 && !header)
                return 0;
        return table_print(t, f, header);
}

static int print_list_legend(sd_bus *bus, size_t shown, const char *singular,
                             const char *plural, const char *count_prop) {
        _cleanup_free_ char *none = NULL, *tail = NULL;
        uint64_t total;
        bool counted;

        if (!arg.legend)
                return 0;
        /* The total is a courtesy; an older daemon without the property just doesn't get it. An
         * empty page (filters, --offset past the end) says it too: "none" of how many. */
        counted = sd_bus_get_property_trivial(bus, PS_BUS_NAME, PS_OBJECT_CONNECTIONS,
                                              PS_IFACE_CONNECTIONS, count_prop, NULL, 't',
                                              &total) >= 0;
        if (counted) {
                (void) error_setf(&tail, 0, "listed (%" PRIu64 " tracked)", total);
                (void) error_setf(&none, 0, "No %s listed (%" PRIu64 " tracked).", plural, total);
        } else {
                tail = strdup("listed");
                (void) error_setf(&none, 0, "No %s.", plural);
        }
        if (!none || !tail)
                return -ENOMEM;
        print_count_legend(shown, none, singular, plural, tail);
        return 0;
}

/* ListIcmp as JSON, each row with the name of its type as the table shows it ("type_name",
 * null for a type without one). */
static int print_icmp_json(sd_bus_message *reply) {
        _cleanup_json_ json_t *rows = NULL;
        size_t i;
        json_t *row;
        int r;

        r = json_from_reply(reply, "ListIcmp", &rows);
        if (r < 0)
                return r;
        json_array_foreach(rows, i, row) {
                json_t *type = json_object_get(row, "type");
                const char *name;

                if (!json_is_integer(type))
                        continue;
                name = icmp_type_name(streq_ptr(json_string_value(json_object_get(row, "family")),
                                                "ipv6"),
                                      (unsigned) json_integer_value(type));
                if (json_object_set_new(row, "type_name", name ? json_string(name)
                                                               : json_null()) < 0)
                        return -ENOMEM;
        }
        return print_json(rows);
}

/* connections and icmp: the same call, query and legend; only the table differs. */
static int list_verb(sd_bus *bus, bool icmp) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_free_ ConnectionRow *rows = NULL;
        size_t n;
        int r;

        r = call_list(bus, icmp, &reply);
        if (r < 0)
                return r;
        if (arg.json != JSON_OFF)
                return icmp ? print_icmp_json(reply) : print_reply_json(reply, "List");
        r = connection_rows_read(reply, &rows, &n);
        if (r < 0)
                return r;
        if (n > 0) {
                uint64_t now = now_usec(CLOCK_REALTIME);

                r = icmp ? render_icmp(stdout, rows, n, now, arg.legend)
                         : render_connections(stdout, rows, n, now, arg.legend);
                if (r < 0)
                        return r;
        }
        if (icmp)
                return print_list_legend(bus, n, "ICMP entry", "ICMP entries", "IcmpCount");
        r = print_list_legend(bus, n, "connection", "connections", "Count");
        if (r >= 0 && arg.legend && n > 0 && BUS_SEEN(&rows[0], CONN_RANK_AGE)) {
                char age[FORMAT_RELATIVE_MAX];

                /* The daemon chose these rows from its ranked view: say how old the choice is. */
                printf("Ranked by the sweep %s, counters live; --fresh reads the whole table.\n",
                       format_relative_time(age, sizeof age, rows[0].rank_age_usec + 1, 1));
        }
        return r;
}

int verb_connections(sd_bus *bus, char **args, int n_args) {
        return list_verb(bus, false);
}

int verb_icmp(sd_bus *bus, char **args, int n_args) {
        return list_verb(bus, true);
}
