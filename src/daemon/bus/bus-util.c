/* SPDX-License-Identifier: MIT */
#include <stdio.h>

#include "addr.h"
#include "bus-util.h"
#include "filter-transaction.h"
#include "util.h"

#define DICT_APPEND(m, key, sig, v) \
        sd_bus_message_append((m), "{sv}", (key), (sig), (v))

int bus_dict_u64(sd_bus_message *m, const char *key, uint64_t v) {
        return DICT_APPEND(m, key, "t", v);
}
int bus_dict_u32(sd_bus_message *m, const char *key, uint32_t v) {
        return DICT_APPEND(m, key, "u", v);
}
int bus_dict_u16(sd_bus_message *m, const char *key, uint16_t v) {
        return DICT_APPEND(m, key, "q", v);
}
int bus_dict_u8(sd_bus_message *m, const char *key, uint8_t v) {
        return DICT_APPEND(m, key, "y", v);
}
int bus_dict_double(sd_bus_message *m, const char *key, double v) {
        return DICT_APPEND(m, key, "d", v);
}
int bus_dict_bool(sd_bus_message *m, const char *key, int v) {
        return DICT_APPEND(m, key, "b", v);
}
int bus_dict_string(sd_bus_message *m, const char *key, const char *v) {
        return DICT_APPEND(m, key, "s", v);
}

/* a{yt} of the nonzero per-type counters. */
static int append_type_counts(sd_bus_message *m, const char *key, const __u64 *counts) {
        int r;

        r = sd_bus_message_open_container(m, 'e', "sv");
        if (r < 0)
                return r;
        r = sd_bus_message_append(m, "s", key);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(m, 'v', "a{yt}");
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(m, 'a', "{yt}");
        if (r < 0)
                return r;
        for (unsigned t = 0; t < PS_ICMP_TYPES; t++) {
                if (counts[t] == 0)
                        continue;
                r = sd_bus_message_append(m, "{yt}", (uint8_t) t, (uint64_t) counts[t]);
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
                { "flows", v->flows },         { "icmp_entries", v->icmp_entries },
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
                r = bus_dict_u64(m, key, s->proto_packets[p]);
                if (r < 0)
                        return r;
                snprintf(key, sizeof key, "%s_bytes", proto_names[p]);
                r = bus_dict_u64(m, key, s->proto_bytes[p]);
                if (r < 0)
                        return r;
        }
        r = append_type_counts(m, "icmp_types", s->icmp_type);
        if (r < 0)
                return r;
        r = append_type_counts(m, "icmpv6_types", s->icmpv6_type);
        if (r < 0)
                return r;
        r = bus_dict_double(m, "pps", v->pps);
        if (r < 0)
                return r;
        r = bus_dict_double(m, "bps", v->bps);
        if (r < 0)
                return r;
        r = bus_dict_u32(m, "links", v->links);
        if (r < 0)
                return r;
        if (v->have_run_stats) {
                r = bus_dict_u64(m, "run_time_ns", v->run_time_ns);
                if (r < 0)
                        return r;
                r = bus_dict_u64(m, "run_count", v->run_count);
                if (r < 0)
                        return r;
        }
        return 0;
}

int bus_read_query(sd_bus_message *m, Query *q, sd_bus_error *error) {
        int r;

        r = sd_bus_message_enter_container(m, 'a', "{sv}");
        if (r < 0)
                return r;
        for (;;) {
                _cleanup_free_ char *err = NULL;
                const char *key, *contents;
                QueryValue v = {};
                char type;

                r = sd_bus_message_enter_container(m, 'e', "sv");
                if (r < 0)
                        return r;
                if (r == 0)
                        break;
                r = sd_bus_message_read(m, "s", &key);
                if (r < 0)
                        return r;
                r = sd_bus_message_peek_type(m, &type, &contents);
                if (r < 0)
                        return r;
                if (strlen(contents) != 1 || !strchr("ybnqiuxtsd", contents[0]))
                        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                                 "query key '%.64s' has D-Bus type '%.16s'; "
                                                 "expected a string or an integer", key, contents);
                r = sd_bus_message_enter_container(m, 'v', contents);
                if (r < 0)
                        return r;
                v.type = contents[0];
                switch (v.type) {
                case 'y': { uint8_t x; r = sd_bus_message_read_basic(m, 'y', &x); v.u = x; break; }
                case 'q': { uint16_t x; r = sd_bus_message_read_basic(m, 'q', &x); v.u = x; break; }
                case 'u': { uint32_t x; r = sd_bus_message_read_basic(m, 'u', &x); v.u = x; break; }
                case 't': { uint64_t x; r = sd_bus_message_read_basic(m, 't', &x); v.u = x; break; }
                case 'n': { int16_t x; r = sd_bus_message_read_basic(m, 'n', &x); v.i = x; break; }
                case 'i': { int32_t x; r = sd_bus_message_read_basic(m, 'i', &x); v.i = x; break; }
                case 'x': { int64_t x; r = sd_bus_message_read_basic(m, 'x', &x); v.i = x; break; }
                case 'b': { int x; r = sd_bus_message_read_basic(m, 'b', &x); v.u = (uint64_t) x; break; }
                case 'd': { double x; r = sd_bus_message_read_basic(m, 'd', &x); break; }
                case 's': r = sd_bus_message_read_basic(m, 's', &v.s); break;
                default: r = -EINVAL;
                }
                if (r < 0)
                        return r;
                r = query_set(q, key, &v, &err);
                if (r == -ENOMEM)
                        return r;
                if (r < 0)
                        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "%s",
                                                 err ? err : "invalid query");
                r = sd_bus_message_exit_container(m); /* v */
                if (r < 0)
                        return r;
                r = sd_bus_message_exit_container(m); /* e */
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_exit_container(m);
        if (r < 0)
                return r;
        {
                _cleanup_free_ char *err = NULL;

                r = query_finish(q, &err);
                if (r < 0)
                        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "%s",
                                                 err ? err : "invalid query");
        }
        return 0;
}

int bus_append_flow_row(sd_bus_message *m, const char *link, const struct ps_flow_key *k,
                        const struct ps_flow_value *v, uint64_t now_ns) {
        char src[ADDR_STRLEN], dst[ADDR_STRLEN], pbuf[4];
        int r;

        r = sd_bus_message_open_container(m, 'a', "{sv}");
        if (r < 0)
                return r;
        if ((r = bus_dict_string(m, "family", family_to_string(k->family))) < 0 ||
            (r = bus_dict_string(m, "protocol", protocol_to_string(k->proto, pbuf))) < 0 ||
            (r = bus_dict_u8(m, "ip_protocol", k->proto)) < 0 ||
            (r = bus_dict_string(m, "src", addr_to_string(k->family, k->src, src))) < 0 ||
            (r = bus_dict_string(m, "dst", addr_to_string(k->family, k->dst, dst))) < 0 ||
            (r = bus_dict_u16(m, "sport", k->sport)) < 0 ||
            (r = bus_dict_u16(m, "dport", k->dport)) < 0 ||
            (r = bus_dict_u64(m, "packets", v->packets)) < 0 ||
            (r = bus_dict_u64(m, "bytes", v->bytes)) < 0 ||
            (r = bus_dict_u64(m, "first_seen", mono_to_realtime_usec(v->first_seen))) < 0 ||
            (r = bus_dict_u64(m, "last_seen", mono_to_realtime_usec(v->last_seen))) < 0 ||
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
            (r = bus_dict_u64(m, "packets", v->packets)) < 0 ||
            (r = bus_dict_u64(m, "bytes", v->bytes)) < 0 ||
            (r = bus_dict_u64(m, "first_seen", mono_to_realtime_usec(v->first_seen))) < 0 ||
            (r = bus_dict_u64(m, "last_seen", mono_to_realtime_usec(v->last_seen))) < 0 ||
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

int bus_read_dict_json(sd_bus_message *m, json_t **ret, sd_bus_error *error) {
        json_t *o = json_object();
        int r;

        if (!o)
                return -ENOMEM;
        r = sd_bus_message_enter_container(m, 'a', "{sv}");
        if (r < 0)
                goto fail;
        for (;;) {
                const char *key, *contents;
                json_t *v = NULL;
                char type;

                r = sd_bus_message_enter_container(m, 'e', "sv");
                if (r < 0)
                        goto fail;
                if (r == 0)
                        break;
                r = sd_bus_message_read(m, "s", &key);
                if (r < 0)
                        goto fail;
                r = sd_bus_message_peek_type(m, &type, &contents);
                if (r < 0)
                        goto fail;
                if (strlen(contents) != 1 || !strchr("ybnqiuxtsdo", contents[0])) {
                        r = sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                              "field '%.64s' has D-Bus type '%.16s'; accepted: a "
                                              "string, a boolean or an integer", key, contents);
                        goto fail;
                }
                r = sd_bus_message_enter_container(m, 'v', contents);
                if (r < 0)
                        goto fail;
                switch (contents[0]) {
                case 'y': { uint8_t x; r = sd_bus_message_read_basic(m, 'y', &x); v = json_integer(x); break; }
                case 'q': { uint16_t x; r = sd_bus_message_read_basic(m, 'q', &x); v = json_integer(x); break; }
                case 'n': { int16_t x; r = sd_bus_message_read_basic(m, 'n', &x); v = json_integer(x); break; }
                case 'u': { uint32_t x; r = sd_bus_message_read_basic(m, 'u', &x); v = json_integer(x); break; }
                case 'i': { int32_t x; r = sd_bus_message_read_basic(m, 'i', &x); v = json_integer(x); break; }
                case 'x': { int64_t x; r = sd_bus_message_read_basic(m, 'x', &x); v = json_integer(x); break; }
                case 't': {
                        uint64_t x;
                        r = sd_bus_message_read_basic(m, 't', &x);
                        /* Past INT64_MAX nothing is in range anyway: let the validator say so. */
                        v = json_integer(x > INT64_MAX ? INT64_MAX : (json_int_t) x);
                        break;
                }
                case 'b': { int x; r = sd_bus_message_read_basic(m, 'b', &x); v = json_boolean(x); break; }
                case 'd': { double x; r = sd_bus_message_read_basic(m, 'd', &x); v = json_real(x); break; }
                default: {
                        const char *x;
                        r = sd_bus_message_read_basic(m, contents[0], &x);
                        v = r >= 0 ? json_string(x) : NULL;
                }
                }
                if (r < 0)
                        goto fail;
                if (!v || json_object_set_new(o, key, v) < 0) { /* steals v */
                        r = -ENOMEM;
                        goto fail;
                }
                r = sd_bus_message_exit_container(m);
                if (r >= 0)
                        r = sd_bus_message_exit_container(m);
                if (r < 0)
                        goto fail;
        }
        r = sd_bus_message_exit_container(m);
        if (r < 0)
                goto fail;
        *ret = o;
        return 0;
fail:
        json_decref(o);
        return r;
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
                return sd_bus_error_setf(error, PS_ERROR_LIMIT_EXCEEDED, "%s",
                                         err ? err : strerror(-r));
        case -EMSGSIZE:
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "%s",
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
