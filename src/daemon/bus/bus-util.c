/* SPDX-License-Identifier: MIT */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>

#include "addr.h"
#include "bans.h"
#include "bus-util.h"
#include "filter-transaction.h"
#include "util.h"

/* One {sv} entry of an a{sv} under construction, per value type: the C type decides the bus
 * signature, so a caller cannot pair a value with the wrong one. */
#define DEFINE_BUS_DICT(name, ctype, sig)                                                 \
        int bus_dict_##name(sd_bus_message *m, const char *key, ctype v) {                \
                return sd_bus_message_append(m, "{sv}", key, sig, v);                       \
        }
DEFINE_BUS_DICT(u64, uint64_t, "t")
DEFINE_BUS_DICT(u32, uint32_t, "u")
DEFINE_BUS_DICT(u16, uint16_t, "q")
DEFINE_BUS_DICT(u8, uint8_t, "y")
DEFINE_BUS_DICT(double, double, "d")
DEFINE_BUS_DICT(bool, int, "b")
DEFINE_BUS_DICT(string, const char *, "s")

int bus_dict_rows_open(sd_bus_message *m, const char *key) {
        int r;

        if ((r = sd_bus_message_open_container(m, 'e', "sv")) < 0 ||
            (r = sd_bus_message_append(m, "s", key)) < 0 ||
            (r = sd_bus_message_open_container(m, 'v', "aa{sv}")) < 0)
                return r;
        return sd_bus_message_open_container(m, 'a', "a{sv}");
}

int bus_dict_rows_close(sd_bus_message *m) {
        int r;

        /* the array, the variant, the entry */
        for (int i = 0; i < 3; i++)
                if ((r = sd_bus_message_close_container(m)) < 0)
                        return r;
        return 0;
}

int bus_add_object_family(sd_bus *bus, const char *prefix, const char *interface,
                          const sd_bus_vtable *vtable, sd_bus_object_find_t find,
                          sd_bus_node_enumerator_t enumerate, void *userdata) {
        int r;

        r = sd_bus_add_fallback_vtable(bus, NULL, prefix, interface, vtable, find, userdata);
        if (r < 0)
                return r;
        return sd_bus_add_node_enumerator(bus, NULL, prefix, enumerate, userdata);
}

/* a{st} of the nonzero per-type counters, keyed by the type number in decimal: dictionaries
 * on the bus have string keys, so that busctl --json and every JSON mapping can show them. */
static int append_type_counts(sd_bus_message *m, const char *key, const __u64 *counts) {
        int r;

        r = sd_bus_message_open_container(m, 'e', "sv");
        if (r < 0)
                return r;
        r = sd_bus_message_append(m, "s", key);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(m, 'v', "a{st}");
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(m, 'a', "{st}");
        if (r < 0)
                return r;
        for (unsigned t = 0; t < PS_ICMP_TYPES; t++) {
                char key[4];

                if (counts[t] == 0)
                        continue;
                (void) snprintf(key, sizeof key, "%u", t);
                r = sd_bus_message_append(m, "{st}", key, (uint64_t) counts[t]);
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_close_container(m);
        if (r < 0)
                return r;
        r = sd_bus_message_close_container(m);
        if (r < 0)
                return r;
        return sd_bus_message_close_container(m);
}

int bus_append_stats(sd_bus_message *m, const StatsView *v) {
        static const char *const proto_names[_PS_PROTO_MAX] = {
                [PS_PROTO_TCP] = "tcp", [PS_PROTO_UDP] = "udp", [PS_PROTO_ICMP] = "icmp",
                [PS_PROTO_ICMPV6] = "icmpv6", [PS_PROTO_OTHER] = "other",
        };
        const struct ps_stats *s = v->stats;
        const struct {
                const char *key;
                uint64_t value;
        } plain[] = {
                { "packets", s->packets },     { "bytes", s->bytes },
                { "passed", s->passed },       { "dropped", s->dropped },
                { "malformed", s->malformed }, { "fragments", s->fragments },
                { "vlan", s->vlan },           { "ipv4", s->ipv4 },
                { "ipv6", s->ipv6 },           { "non_ip", s->non_ip },
                { "icmp_errors", s->icmp_errors },
                { "flow_update_failures", s->flow_update_fail },
                { "dropped_filter", s->dropped_filter },
                { "drop_events_lost", s->drop_events_lost },
                { "tiny_fragments", s->tiny_fragments },
                { "long_chains", s->long_chains },
                { "deep_vlan", s->deep_vlan },
                { "fragments_followed", s->fragments_followed },
                { "fragments_orphan", s->fragments_orphan },
                { "dropped_tiny_fragments", s->dropped_tiny_fragments },
                { "dropped_long_chains", s->dropped_long_chains },
                { "dropped_deep_vlan", s->dropped_deep_vlan },
                { "dropped_panic", s->dropped_panic },
                { "flows", v->flows },         { "icmp_entries", v->icmp_entries },
                { "dropped_ban", s->dropped_ban },
                { "dropped_autoban", s->dropped_autoban },
                { "ban_allowlisted", s->ban_allowlisted },
                { "bans_full", s->bans_full },
        };
        int r;

        for (size_t i = 0; i < ELEMENTSOF(plain); i++) {
                r = bus_dict_u64(m, plain[i].key, plain[i].value);
                if (r < 0)
                        return r;
        }
        for (int p = 0; p < _PS_PROTO_MAX; p++) {
                char key[32];

                snprintf(key, sizeof key, "%s_packets", proto_names[p]);
                if ((r = bus_dict_u64(m, key, s->proto_packets[p])) < 0)
                        return r;
                snprintf(key, sizeof key, "%s_bytes", proto_names[p]);
                if ((r = bus_dict_u64(m, key, s->proto_bytes[p])) < 0)
                        return r;
        }
        /* Per policy: bans made (enforce) and would-be bans (mode count). */
        for (unsigned p = 0; p < ELEMENTSOF(s->policy_triggers) && ban_policy_to_string(p); p++) {
                char key[48];

                snprintf(key, sizeof key, "policy_triggers.%s", ban_policy_to_string(p));
                if ((r = bus_dict_u64(m, key, s->policy_triggers[p])) < 0)
                        return r;
                snprintf(key, sizeof key, "policy_shadow.%s", ban_policy_to_string(p));
                if ((r = bus_dict_u64(m, key, s->policy_shadow[p])) < 0)
                        return r;
        }
        if ((r = append_type_counts(m, "icmp_types", s->icmp.icmp_type)) < 0 ||
            (r = append_type_counts(m, "icmpv6_types", s->icmp.icmpv6_type)) < 0 ||
            (r = bus_dict_double(m, "pps", v->pps)) < 0 ||
            (r = bus_dict_double(m, "bps", v->bps)) < 0 ||
            (r = bus_dict_u32(m, "links", v->links)) < 0)
                return r;
        if (v->have_run_stats &&
            ((r = bus_dict_u64(m, "run_time_ns", v->run_time_ns)) < 0 ||
             (r = bus_dict_u64(m, "run_count", v->run_count)) < 0))
                return r;
        return 0;
}

/* " (value X)" for a variant of a basic type the reader refuses, so that the message shows what
 * was sent: unsigned values as unsigned, doubles with %g and NaN and the infinities by name,
 * strings quoted and cut short. Containers and fds show no value. */
static void bus_describe_value(sd_bus_message *m, const char *contents, char *buf, size_t n) {
        union {
                uint64_t u;
                int64_t i;
                double d;
                const char *s;
        } v;
        char type = contents[0];

        buf[0] = '\0';
        if (strlen(contents) != 1 || !strchr("dtxsog", type))
                return;
        if (sd_bus_message_enter_container(m, 'v', contents) < 0)
                return;
        if (sd_bus_message_read_basic(m, type, &v) < 0)
                return;
        switch (type) {
        case 'd':
                if (isnan(v.d))
                        snprintf(buf, n, " (value NaN)");
                else if (isinf(v.d))
                        snprintf(buf, n, " (value %sinfinity)", v.d < 0 ? "-" : "+");
                else
                        snprintf(buf, n, " (value %g)", v.d);
                break;
        case 't':
                snprintf(buf, n, " (value %" PRIu64 ")", v.u);
                break;
        case 'x':
                snprintf(buf, n, " (value %" PRId64 ")", v.i);
                break;
        default:
                snprintf(buf, n, " (value '%.64s')", v.s);
        }
}

int bus_read_dict(sd_bus_message *m, const BusDictSpec *spec, bus_dict_visit_t visit,
                  void *userdata, sd_bus_error *error) {
        int r;

        assert(m);
        assert(spec);
        assert(visit);
        r = sd_bus_message_enter_container(m, 'a', "{sv}");
        if (r < 0)
                return r;
        for (;;) {
                const char *key, *contents;
                BusValue v = {};
                char type;

                r = sd_bus_message_enter_container(m, 'e', "sv");
                if (r <= 0) {
                        if (r < 0)
                                return r;
                        break;
                }
                r = sd_bus_message_read(m, "s", &key);
                if (r < 0)
                        return r;
                r = sd_bus_message_peek_type(m, &type, &contents);
                if (r < 0)
                        return r;
                if (strlen(contents) != 1 || !strchr(spec->types, contents[0])) {
                        char value[96] = "";

                        bus_describe_value(m, contents, value, sizeof value);
                        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                                 "%s '%.64s' has D-Bus type '%.16s'%s; %s",
                                                 spec->what, key, contents, value,
                                                 spec->expected);
                }
                r = sd_bus_message_enter_container(m, 'v', contents);
                if (r < 0)
                        return r;
                v.type = contents[0];
                switch (v.type) {
                case 'y': { uint8_t x; r = sd_bus_message_read_basic(m, 'y', &x); v.u = x; break; }
                case 'q': { uint16_t x; r = sd_bus_message_read_basic(m, 'q', &x); v.u = x; break; }
                case 'u': { uint32_t x; r = sd_bus_message_read_basic(m, 'u', &x); v.u = x; break; }
                case 't': r = sd_bus_message_read_basic(m, 't', &v.u); break;
                case 'n': { int16_t x; r = sd_bus_message_read_basic(m, 'n', &x); v.i = x; break; }
                case 'i': { int32_t x; r = sd_bus_message_read_basic(m, 'i', &x); v.i = x; break; }
                case 'x': r = sd_bus_message_read_basic(m, 'x', &v.i); break;
                case 'b': { int x; r = sd_bus_message_read_basic(m, 'b', &x); v.u = (uint64_t) x; break; }
                case 'd': r = sd_bus_message_read_basic(m, 'd', &v.d); break;
                default: r = sd_bus_message_read_basic(m, v.type, &v.s); /* s, o */
                }
                if (r < 0)
                        return r;
                r = visit(key, &v, userdata, error);
                if (r < 0)
                        return r;
                r = sd_bus_message_exit_container(m); /* v */
                if (r < 0)
                        return r;
                r = sd_bus_message_exit_container(m); /* e */
                if (r < 0)
                        return r;
        }
        return sd_bus_message_exit_container(m);
}

static int query_visit(const char *key, const BusValue *v, void *userdata, sd_bus_error *error) {
        _cleanup_free_ char *err = NULL;
        QueryValue qv = { .type = v->type, .s = v->s, .u = v->u, .i = v->i };
        int r;

        r = query_set(userdata, key, &qv, &err);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "%s",
                                         err ? err : "invalid query");
        return 0;
}

int bus_read_query(sd_bus_message *m, Query *q, sd_bus_error *error) {
        static const BusDictSpec spec = {
                .types = "ybnqiuxtsd",
                .what = "query key",
                .expected = "expected a string or an integer",
        };
        _cleanup_free_ char *err = NULL;
        int r;

        r = bus_read_dict(m, &spec, query_visit, q, error);
        if (r < 0)
                return r;
        r = query_finish(q, &err);
        if (r < 0)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "%s",
                                         err ? err : "invalid query");
        return 0;
}

/* The counters both tables keep, in both rows: totals and the first and last packet's time
 * (realtime, microseconds). */
static int append_counts(sd_bus_message *m, uint64_t packets, uint64_t bytes,
                         uint64_t first_seen_ns, uint64_t last_seen_ns) {
        int r;

        if ((r = bus_dict_u64(m, "packets", packets)) < 0 ||
            (r = bus_dict_u64(m, "bytes", bytes)) < 0 ||
            (r = bus_dict_u64(m, "first_seen", mono_to_realtime_usec(first_seen_ns))) < 0)
                return r;
        return bus_dict_u64(m, "last_seen", mono_to_realtime_usec(last_seen_ns));
}

int bus_append_flow_fields(sd_bus_message *m, const char *link, const struct ps_flow_key *k,
                           const struct ps_flow_value *v, uint64_t now_ns) {
        char src[ADDR_STRLEN], dst[ADDR_STRLEN], pbuf[4];
        int r;

        if ((r = bus_dict_string(m, "family", family_to_string(k->family))) < 0 ||
            (r = bus_dict_string(m, "protocol", protocol_to_string(k->proto, pbuf))) < 0 ||
            (r = bus_dict_u8(m, "ip_protocol", k->proto)) < 0 ||
            (r = bus_dict_string(m, "src", addr_to_string(k->family, k->src, src))) < 0 ||
            (r = bus_dict_string(m, "dst", addr_to_string(k->family, k->dst, dst))) < 0 ||
            (r = bus_dict_u16(m, "sport", k->sport)) < 0 ||
            (r = bus_dict_u16(m, "dport", k->dport)) < 0 ||
            (r = append_counts(m, v->packets, v->bytes, v->first_seen, v->last_seen)) < 0 ||
            (r = bus_dict_u8(m, "tcp_flags", v->tcp_flags)) < 0 ||
            (r = bus_dict_u8(m, "last_tcp_flags", v->last_flags)) < 0 ||
            (r = bus_dict_string(m, "state", flow_state_to_string(v->state))) < 0 ||
            (r = bus_dict_u32(m, "seq", v->seq)) < 0 ||
            (r = bus_dict_u32(m, "ack", v->ack)) < 0 ||
            (r = bus_dict_u16(m, "window", v->window)) < 0 ||
            (r = bus_dict_u16(m, "ip_id", v->ip_id)) < 0 ||
            (r = bus_dict_u8(m, "ttl", v->ttl)) < 0 ||
            (r = bus_dict_u64(m, "retransmits", v->retransmits)) < 0 ||
            (r = bus_dict_double(m, "pps", rate_per_sec(v->packets, v->first_seen, now_ns))) < 0 ||
            (r = bus_dict_double(m, "bps", 8.0 * rate_per_sec(v->bytes, v->first_seen, now_ns))) < 0 ||
            (r = bus_dict_string(m, "link", link)) < 0)
                return r;
        return 0;
}

int bus_append_flow_row(sd_bus_message *m, const char *link, const struct ps_flow_key *k,
                        const struct ps_flow_value *v, uint64_t now_ns) {
        int r;

        r = sd_bus_message_open_container(m, 'a', "{sv}");
        if (r < 0)
                return r;
        r = bus_append_flow_fields(m, link, k, v, now_ns);
        if (r < 0)
                return r;
        return sd_bus_message_close_container(m);
}

int bus_append_icmp_row(sd_bus_message *m, const char *link, const struct ps_icmp_key *k,
                        const struct ps_icmp_value *v) {
        char src[ADDR_STRLEN], dst[ADDR_STRLEN], pbuf[4];
        int r;

        r = sd_bus_message_open_container(m, 'a', "{sv}");
        if (r < 0)
                return r;
        if ((r = bus_dict_string(m, "family", family_to_string(k->family))) < 0 ||
            (r = bus_dict_string(m, "src", addr_to_string(k->family, k->src, src))) < 0 ||
            (r = bus_dict_string(m, "dst", addr_to_string(k->family, k->dst, dst))) < 0 ||
            (r = bus_dict_u8(m, "type", k->type)) < 0 ||
            (r = bus_dict_u8(m, "code", k->code)) < 0 ||
            (r = append_counts(m, v->packets, v->bytes, v->first_seen, v->last_seen)) < 0 ||
            (r = bus_dict_string(m, "link", link)) < 0 ||
            (r = bus_dict_bool(m, "error", v->is_error)) < 0)
                return r;
        if (v->is_error && v->inner_family) {
                if ((r = bus_dict_string(m, "inner_family", family_to_string(v->inner_family))) < 0 ||
                    (r = bus_dict_string(m, "inner_protocol",
                                         protocol_to_string(v->inner_proto, pbuf))) < 0 ||
                    (r = bus_dict_u8(m, "inner_ip_protocol", v->inner_proto)) < 0 ||
                    (r = bus_dict_string(m, "inner_src",
                                         addr_to_string(v->inner_family, v->inner_src, src))) < 0 ||
                    (r = bus_dict_string(m, "inner_dst",
                                         addr_to_string(v->inner_family, v->inner_dst, dst))) < 0 ||
                    (r = bus_dict_u16(m, "inner_sport", v->inner_sport)) < 0 ||
                    (r = bus_dict_u16(m, "inner_dport", v->inner_dport)) < 0)
                        return r;
        }
        return sd_bus_message_close_container(m);
}

int bus_node_list(size_t n, char *(*path_at)(void *userdata, size_t i), void *userdata,
                  char ***ret) {
        char **l = calloc(n + 1, sizeof(char *));

        if (!l)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                l[i] = path_at(userdata, i);
                if (!l[i]) {
                        for (size_t j = 0; j < i; j++)
                                free(l[j]);
                        free(l);
                        return -ENOMEM;
                }
        }
        *ret = l;
        return 1;
}

/* --- a{sv} → JSON, so that one validator serves the bus, Import and the state file --- */

/* A 't' past INT64_MAX, which JSON cannot hold. Every integer field's range ends far below it,
 * so the validator's own message for INT64_MAX is the message for this value: asked for that,
 * and given back with the value as it was sent (not as a signed number). */
static int rule_error_u64(const char *key, uint64_t value, sd_bus_error *error) {
        _cleanup_json_ json_t *probe = json_pack("{s:I}", key, (json_int_t) INT64_MAX);
        _cleanup_filter_ Filter *f = filter_new();
        _cleanup_free_ char *err = NULL, *msg = NULL;
        char big[32];
        const char *at;

        if (!probe || !f)
                return -ENOMEM;
        snprintf(big, sizeof big, "%" PRId64, INT64_MAX);
        if (filter_from_json(f, probe, 0, &err) != -EINVAL || !err)
                return sd_bus_error_setf(error, PS_ERROR_INVALID_FILTER,
                                         "field '%.64s': %" PRIu64 " is out of range", key, value);
        at = strstr(err, big);
        if (!at) /* a message about the type (a string field), not the value */
                return sd_bus_error_setf(error, PS_ERROR_INVALID_FILTER, "%s", err);
        if (asprintf(&msg, "%.*s%" PRIu64 "%s", (int) (at - err), err, value,
                     at + strlen(big)) < 0)
                return -ENOMEM;
        return sd_bus_error_setf(error, PS_ERROR_INVALID_FILTER, "%s", msg);
}

static int json_visit(const char *key, const BusValue *v, void *userdata, sd_bus_error *error) {
        json_t *o = userdata, *j;

        switch (v->type) {
        case 'y': case 'q': case 'u':
                j = json_integer((json_int_t) v->u);
                break;
        case 't':
                if (v->u > INT64_MAX)
                        return rule_error_u64(key, v->u, error);
                j = json_integer((json_int_t) v->u);
                break;
        case 'n': case 'i': case 'x':
                j = json_integer(v->i);
                break;
        case 'b':
                j = json_boolean(v->u);
                break;
        case 'd':
                /* Only settings take a double (bus_read_settings_json); JSON has no NaN or
                 * infinity, and no setting means one. */
                if (!isfinite(v->d))
                        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                                 "setting '%.64s' is %s; accepted: a finite number",
                                                 key, isnan(v->d) ? "NaN" : "infinite");
                j = json_real(v->d);
                break;
        default:
                j = json_string(v->s);
        }
        /* json_object_set_new steals j, and fails on NULL. */
        return !j || json_object_set_new(o, key, j) < 0 ? -ENOMEM : 0;
}

static int read_dict_json(sd_bus_message *m, const BusDictSpec *spec, json_t **ret,
                          sd_bus_error *error) {
        _cleanup_json_ json_t *o = json_object();
        int r;

        assert(ret);
        if (!o)
                return -ENOMEM;
        r = bus_read_dict(m, spec, json_visit, o, error);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(o);
        return 0;
}

int bus_read_dict_json(sd_bus_message *m, json_t **ret, sd_bus_error *error) {
        static const BusDictSpec spec = {
                /* As documented: the integers, a boolean, a string or an object path; a
                 * double (NaN and the infinities included) or any other type is InvalidArgs,
                 * whatever the field. */
                .types = "ybnqiuxtso",
                .what = "field",
                .expected = "accepted: a string, a boolean or an integer",
        };

        return read_dict_json(m, &spec, ret, error);
}

int bus_read_settings_json(sd_bus_message *m, json_t **ret, sd_bus_error *error) {
        static const BusDictSpec spec = {
                .types = "ybnqiuxtsod",
                .what = "setting",
                .expected = "accepted: a string, a boolean, an integer or a double",
        };

        return read_dict_json(m, &spec, ret, error);
}

int bus_reply_open(sd_bus_message *call, char type, const char *contents, sd_bus_message **ret) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        assert(call);
        assert(ret);
        r = sd_bus_message_new_method_return(call, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(reply, type, contents);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(reply);
        return 0;
}

int bus_reply_close_send(sd_bus_message *reply) {
        int r;

        assert(reply);
        r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

/* --- shared by the Filters, Filter and Transaction interfaces --- */

char *filter_bus_path(uint32_t id) {
        char *p;

        if (asprintf(&p, PS_OBJECT_FILTERS "/%u", id) < 0)
                return NULL;
        return p;
}

int filters_bus_error(sd_bus_error *error, int r, const char *err) {
        switch (r) {
        case -EINVAL:
        case -EEXIST:
                return sd_bus_error_setf(error, PS_ERROR_INVALID_FILTER, "%s",
                                         err ? err : strerror(-r));
        case -EPERM:
                return sd_bus_error_setf(error, PS_ERROR_LOCKOUT, "%s", err ? err : strerror(-r));
        case -ENOENT:
                return sd_bus_error_setf(error, PS_ERROR_NO_SUCH_FILTER, "%s",
                                         err ? err : strerror(-r));
        case -E2BIG:
        case -ENOSPC:
        case -EFBIG: /* an import file past its bound */
                return sd_bus_error_setf(error, PS_ERROR_LIMIT_EXCEEDED, "%s",
                                         err ? err : strerror(-r));
        case -EMSGSIZE:
        case -EBADF: /* an import's file descriptor that cannot be read */
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "%s",
                                         err ? err : strerror(-r));
        case -EBUSY: /* a large change of the set is being applied off the loop */
                return sd_bus_error_setf(error, PS_ERROR_CHANGE_IN_PROGRESS, "%s",
                                         err ? err : strerror(-r));
        case -EROFS: /* the store's "cannot write filters.json", whatever the cause */
                return sd_bus_error_setf(error, PS_ERROR_STATE_NOT_WRITABLE, "%s",
                                         err ? err : strerror(-r));
        default:
                if (err)
                        return sd_bus_error_setf(error, PS_ERROR_FILTER_FAILED, "%s", err);
                return r;
        }
}

int filters_bus_refuse_if_pending(Manager *m, sd_bus_error *error) {
        if (m->filters->transaction)
                return sd_bus_error_setf(error, PS_ERROR_TRANSACTION_PENDING,
                                         "a confirm-or-rollback transaction (%s) is pending; "
                                         "confirm it or let it roll back first",
                                         m->filters->transaction->path);
        if (m->filters->busy)
                return sd_bus_error_setf(error, PS_ERROR_CHANGE_IN_PROGRESS,
                                         "%s is being applied; set changes are taken one at a "
                                         "time: try again when it is done", m->filters->busy);
        return 0;
}

int bus_read_rule(sd_bus_message *msg, Filter **ret, sd_bus_error *error) {
        _cleanup_json_ json_t *o = NULL;
        _cleanup_filter_ Filter *f = NULL;
        _cleanup_free_ char *err = NULL;
        int r;

        assert(msg);
        assert(ret);
        r = bus_read_dict_json(msg, &o, error);
        if (r < 0)
                return r;
        f = filter_new();
        if (!f)
                return -ENOMEM;
        r = filter_from_json(f, o, 0, &err);
        if (r == -EINVAL)
                return sd_bus_error_setf(error, PS_ERROR_INVALID_FILTER, "%s",
                                         err ? err : "invalid rule");
        if (r < 0)
                return r;
        *ret = TAKE_PTR(f);
        return 0;
}

int filters_bus_check_lockout(Manager *m, const FilterList *list, const char *what,
                              sd_bus_error *error) {
        assert(m);
        assert(list);
        for (size_t i = 0; i < list->n; i++) {
                _cleanup_free_ char *err = NULL;
                int r;

                r = filter_check_lockout(&m->config, list->rules[i], &err);
                if (r >= 0)
                        continue;
                if (r != -EPERM || !what)
                        return filters_bus_error(error, r, err);
                return sd_bus_error_setf(error, PS_ERROR_LOCKOUT, "rule #%zu of the %s: %s", i,
                                         what, err ? err : "");
        }
        return 1;
}

void bus_caller_get(sd_bus_message *call, const char *extra, BusCaller *ret) {
        _cleanup_(sd_bus_creds_unrefp) sd_bus_creds *creds = NULL;
        const char *unit = NULL;
        uid_t uid = (uid_t) -1;
        pid_t pid = 0;
        size_t n = 0;

        assert(call);
        assert(ret);
        *ret = (BusCaller) {};
        if (extra) {
                snprintf(ret->extra, sizeof ret->extra, "%s", extra);
                ret->fields[n++] = ret->extra;
        }
        /* The bus daemon's own record of the sender (augmented from /proc where it lacks). */
        if (sd_bus_query_sender_creds(call, SD_BUS_CREDS_EUID | SD_BUS_CREDS_PID |
                                      SD_BUS_CREDS_UNIT | SD_BUS_CREDS_AUGMENT, &creds) >= 0) {
                (void) sd_bus_creds_get_euid(creds, &uid);
                (void) sd_bus_creds_get_pid(creds, &pid);
                (void) sd_bus_creds_get_unit(creds, &unit);
        }
        if (uid != (uid_t) -1) {
                snprintf(ret->uid, sizeof ret->uid, "CALLER_UID=%u", (unsigned) uid);
                ret->fields[n++] = ret->uid;
        }
        if (pid > 0) {
                snprintf(ret->pid, sizeof ret->pid, "CALLER_PID=%d", (int) pid);
                ret->fields[n++] = ret->pid;
        }
        if (unit) {
                snprintf(ret->unit, sizeof ret->unit, "CALLER_UNIT=%s", unit);
                ret->fields[n++] = ret->unit;
        }
        ret->fields[n] = NULL;
        if (uid == (uid_t) -1)
                snprintf(ret->who, sizeof ret->who, "an unknown caller");
        else
                snprintf(ret->who, sizeof ret->who, "uid %u (pid %d%s%s)", (unsigned) uid,
                         (int) pid, unit ? ", unit " : "", unit ? unit : "");
}
