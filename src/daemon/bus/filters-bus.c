/* SPDX-License-Identifier: MIT */
#include <netinet/in.h>
#include <stdio.h>
#include <time.h>

#include "bus-util.h"
#include "filters.h"
#include "flows.h"
#include "log.h"
#include "manager.h"
#include "util.h"




#define IMPORT_MAX_BYTES (8u * 1024 * 1024)
#define TEST_ROWS_MAX 1000u

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

/* --- typed a{sv} of a rule --- */

static char *filter_path(uint32_t id) {
        char *p;

        if (asprintf(&p, PS_OBJECT_FILTERS "/%u", id) < 0)
                return NULL;
        return p;
}

static const char *cidr_str(bool has, const Cidr *c, char buf[static ADDR_STRLEN + 8]) {
        char a[ADDR_STRLEN];

        if (!has)
                return "";
        addr_to_string(c->family, c->addr, a);
        if (c->prefixlen == (c->family == ADDR_FAMILY_IPV4 ? 32 : 128))
                snprintf(buf, ADDR_STRLEN + 8, "%s", a);
        else
                snprintf(buf, ADDR_STRLEN + 8, "%s/%u", a, c->prefixlen);
        return buf;
}

static const char *proto_str(int p, char buf[static 4]) {
        return p == PROTO_ANY ? "any" : protocol_to_string((uint8_t) p, buf);
}

static int append_filter(sd_bus_message *m, const Filter *f) {
        char b1[ADDR_STRLEN + 8], b2[ADDR_STRLEN + 8], b3[ADDR_STRLEN + 8], b4[ADDR_STRLEN + 8];
        char p1[4], p2[4], r1[16], r2[16], r3[16], r4[16];
        _cleanup_free_ char *path = filter_path(f->id);
        int r;

        if (!path)
                return -ENOMEM;
        r = sd_bus_message_open_container(m, 'a', "{sv}");
        if (r < 0)
                return r;
        if ((r = bus_dict_u32(m, "id", f->id)) < 0 ||
            (r = sd_bus_message_append(m, "{sv}", "path", "o", path)) < 0 ||
            (r = bus_dict_string(m, "rule_type", rule_type_to_string(f->rule_type))) < 0 ||
            (r = bus_dict_string(m, "protocol", proto_str(f->protocol, p1))) < 0 ||
            (r = bus_dict_string(m, "src_ip", cidr_str(f->has_src, &f->src, b1))) < 0 ||
            (r = bus_dict_string(m, "dst_ip", cidr_str(f->has_dst, &f->dst, b2))) < 0 ||
            (r = bus_dict_string(m, "src_port", port_range_to_string(f->src_port, r1))) < 0 ||
            (r = bus_dict_string(m, "dst_port", port_range_to_string(f->dst_port, r2))) < 0 ||
            (r = bus_dict_u8(m, "tcp_flags", f->tcp_flags)) < 0 ||
            (r = bus_dict_u8(m, "tcp_flags_mask", f->tcp_flags_mask)) < 0 ||
            (r = bus_dict_u8(m, "icmp_type", f->icmp_type)) < 0 ||
            (r = bus_dict_u8(m, "icmp_code", f->icmp_code)) < 0 ||
            (r = bus_dict_string(m, "inner_src_ip", cidr_str(f->has_inner_src, &f->inner_src, b3))) < 0 ||
            (r = bus_dict_string(m, "inner_dst_ip", cidr_str(f->has_inner_dst, &f->inner_dst, b4))) < 0 ||
            (r = bus_dict_string(m, "inner_protocol", proto_str(f->inner_protocol, p2))) < 0 ||
            (r = bus_dict_string(m, "inner_src_port", port_range_to_string(f->inner_src_port, r3))) < 0 ||
            (r = bus_dict_string(m, "inner_dst_port", port_range_to_string(f->inner_dst_port, r4))) < 0 ||
            (r = bus_dict_string(m, "action", filter_verdict_to_string(f->action))) < 0 ||
            (r = bus_dict_bool(m, "enabled", f->enabled)) < 0 ||
            (r = bus_dict_string(m, "comment", f->comment ? f->comment : "")) < 0 ||
            (r = sd_bus_message_append(m, "{sv}", "priority", "i", f->priority)) < 0 ||
            (r = bus_dict_u64(m, "timeout", f->timeout_sec)) < 0 ||
            (r = bus_dict_u64(m, "expires", f->expires_usec)) < 0 ||
            (r = bus_dict_u64(m, "created", f->created_usec)) < 0 ||
            (r = bus_dict_u64(m, "hits", f->hits)) < 0 ||
            (r = bus_dict_u64(m, "bytes", f->bytes)) < 0 ||
            (r = bus_dict_u64(m, "last_hit", f->last_hit_usec)) < 0)
                return r;
        return sd_bus_message_close_container(m);
}

/* --- the lock-out guard --- */

/* A drop rule must not cut off a management address from its management ports (ssh by
 * default), unless the caller says `force`. Checked against a new connection (SYN) and an
 * established one (ACK) from that address to each port. */
static int check_lockout(Manager *m, const Filter *f, sd_bus_error *error) {
        const Config *c = &m->config;

        if (f->force || !f->enabled || f->action != FILTER_DROP)
                return 0;
        for (uint32_t a = 0; a < c->n_management; a++)
                for (uint32_t p = 0; p < c->n_management_ports; p++)
                        for (int k = 0; k < 2; k++) {
                                struct ps_match pkt = {
                                        .family = c->management[a].family,
                                        .proto = IPPROTO_TCP,
                                        .sport = 50000,
                                        .dport = c->management_ports[p],
                                        .tcp_flags = k == 0 ? 0x02 : 0x10,
                                };
                                char buf[ADDR_STRLEN];
                                Filter probe = *f;

                                memcpy(pkt.src, c->management[a].addr, sizeof pkt.src);
                                /* The local address is unknown here: assume the rule's own. */
                                if (f->has_dst)
                                        memcpy(pkt.dst, f->dst.addr, sizeof pkt.dst);
                                probe.comment = NULL;
                                if (!filter_match(&probe, &pkt))
                                        continue;
                                return sd_bus_error_setf(error, PS_ERROR_LOCKOUT,
                                        "rule %s would drop %s traffic from the management "
                                        "address %s to port %u (ManagementAddresses= in "
                                        "packetscope.conf); add \"force\": true to apply it anyway",
                                        f->id == UINT32_MAX ? "(new)" : "", k == 0 ? "new TCP" : "TCP",
                                        addr_to_string(c->management[a].family,
                                                       c->management[a].addr, buf),
                                        c->management_ports[p]);
                        }
        return 0;
}

/* Parses one rule from the bus, with the lock-out guard. */
static int read_rule(Manager *m, sd_bus_message *msg, Filter **ret, sd_bus_error *error) {
        _cleanup_free_ char *err = NULL;
        json_t *o = NULL;
        Filter *f;
        int r;

        r = bus_read_dict_json(msg, &o, error);
        if (r < 0)
                return r;
        f = calloc(1, sizeof(Filter));
        if (!f) {
                json_decref(o);
                return -ENOMEM;
        }
        filter_init(f);
        r = filter_from_json(f, o, 0, &err);
        json_decref(o);
        if (r == -EINVAL) {
                filter_free(f);
                return sd_bus_error_setf(error, PS_ERROR_INVALID_FILTER, "%s", err ? err : "invalid rule");
        }
        if (r < 0) {
                filter_free(f);
                return r;
        }
        r = check_lockout(m, f, error);
        if (r < 0) {
                filter_free(f);
                return r;
        }
        *ret = f;
        return 0;
}

static int store_error(sd_bus_error *error, int r, const char *err) {
        if (r == -E2BIG || r == -EEXIST || r == -ENOSPC)
                return sd_bus_error_setf(error, r == -EEXIST ? PS_ERROR_INVALID_FILTER
                                                            : PS_ERROR_LIMIT_EXCEEDED,
                                         "%s", err ? err : strerror(-r));
        if (err)
                return sd_bus_error_setf(error, PS_ERROR_FILTER_FAILED, "%s", err);
        return r;
}

static int refuse_if_pending(Manager *m, sd_bus_error *error) {
        if (m->transaction)
                return sd_bus_error_setf(error, PS_ERROR_TRANSACTION_PENDING,
                                         "a confirm-or-rollback transaction (%s) is pending; "
                                         "confirm it or let it roll back first",
                                         m->transaction->path);
        return 0;
}

static int build_list(Manager *m, Filter **add, size_t n_add, bool replace, Filter ***ret,
                      size_t *ret_n);

/* Appends rules to a snapshot of the store and commits; on success returns the new ids. */
static int commit_added(Manager *m, Filter **add, size_t n_add, uint32_t *ret_ids,
                        sd_bus_error *error) {
        _cleanup_free_ char *err = NULL;
        Filter **list = NULL;
        size_t n = 0;
        int copies, r;

        copies = build_list(m, add, n_add, false, &list, &n);
        if (copies < 0)
                return copies;
        r = filter_store_replace(m->filters, list, n, true, &err);
        if (r < 0) {
                /* The added rules stay the caller's; only the snapshot copies are ours. */
                filter_list_free(list, (size_t) copies);
                return store_error(error, r, err);
        }
        for (size_t i = 0; i < n_add; i++)
                ret_ids[i] = add[i]->id;
        return 0;
}

static int method_add(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        _cleanup_free_ char *path = NULL;
        Filter *f = NULL;
        uint32_t id;
        int r;

        r = read_rule(m, msg, &f, error);
        if (r < 0)
                return r;
        r = refuse_if_pending(m, error);
        if (r >= 0)
                r = polkit_verify(msg, PS_POLKIT_MANAGE_FILTERS, &m->polkit, error);
        if (r <= 0) {
                filter_free(f);
                return r < 0 ? r : 1;
        }
        r = commit_added(m, &f, 1, &id, error);
        if (r < 0) {
                filter_free(f);
                return r;
        }
        log_filter(LOG_INFO, PS_MESSAGE_FILTERS_CHANGED, id, "Filter %u added (%s)", id,
                   filter_verdict_to_string(f->action));
        path = filter_path(id);
        return sd_bus_reply_method_return(msg, "uo", id, path);
}

/* Reads aa{sv} into new rules; the first bad one names its index. */
static int read_rules(Manager *m, sd_bus_message *msg, Filter ***ret, size_t *ret_n,
                      sd_bus_error *error) {
        Filter **list = NULL;
        size_t n = 0, alloc = 0;
        int r;

        r = sd_bus_message_enter_container(msg, 'a', "a{sv}");
        if (r < 0)
                return r;
        for (;;) {
                Filter *f = NULL;

                r = sd_bus_message_at_end(msg, false);
                if (r < 0)
                        goto fail;
                if (r > 0)
                        break;
                if (n >= PS_FILTER_MAX_RULES) {
                        r = sd_bus_error_setf(error, PS_ERROR_LIMIT_EXCEEDED,
                                              "more than %u rules in one call", PS_FILTER_MAX_RULES);
                        goto fail;
                }
                r = read_rule(m, msg, &f, error);
                if (r < 0) {
                        if (sd_bus_error_is_set(error)) {
                                /* Say which rule of the batch was wrong. The name and text are
                                 * copied first: freeing the error frees them. */
                                _cleanup_free_ char *text = strdup(error->message ? error->message : "");
                                _cleanup_free_ char *name = strdup(error->name);

                                sd_bus_error_free(error);
                                r = sd_bus_error_setf(error, name ? name : SD_BUS_ERROR_INVALID_ARGS,
                                                      "rule #%zu of the batch: %s", n,
                                                      text ? text : "");
                        }
                        goto fail;
                }
                if (n == alloc) {
                        Filter **nl;

                        alloc = alloc ? alloc * 2 : 64;
                        nl = realloc(list, alloc * sizeof(Filter *));
                        if (!nl) {
                                filter_free(f);
                                r = -ENOMEM;
                                goto fail;
                        }
                        list = nl;
                }
                list[n++] = f;
        }
        r = sd_bus_message_exit_container(msg);
        if (r < 0)
                goto fail;
        *ret = list;
        *ret_n = n;
        return 0;
fail:
        filter_list_free(list, n);
        return r;
}

static int reply_ids(sd_bus_message *msg, const uint32_t *ids, size_t n) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        r = sd_bus_message_new_method_return(msg, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_append_array(reply, 'u', ids, n * sizeof(uint32_t));
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

static int method_add_batch(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        _cleanup_free_ uint32_t *ids = NULL;
        Filter **add = NULL;
        size_t n = 0;
        int r;

        r = read_rules(m, msg, &add, &n, error);
        if (r < 0)
                return r;
        r = refuse_if_pending(m, error);
        if (r >= 0)
                r = polkit_verify(msg, PS_POLKIT_MANAGE_FILTERS, &m->polkit, error);
        if (r <= 0) {
                filter_list_free(add, n);
                return r < 0 ? r : 1;
        }
        ids = calloc(n + 1, sizeof(uint32_t));
        if (!ids) {
                filter_list_free(add, n);
                return -ENOMEM;
        }
        r = commit_added(m, add, n, ids, error);
        if (r < 0) {
                filter_list_free(add, n);
                return r;
        }
        free(add); /* the rules now belong to the store */
        log_struct_internal(LOG_INFO, 0, PS_MESSAGE_FILTERS_CHANGED, NULL,
                            "%zu filters added in one batch", n);
        return reply_ids(msg, ids, n);
}

/* One reply holds at most this many rules: a bus message has a size limit (32 MiB on the
 * system bus), and a peer that sends more is disconnected by the bus. */
#define FILTERS_LIST_MAX 10000u

static int list_range(sd_bus_message *msg, Manager *m, uint32_t offset, uint32_t limit) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        size_t end = MIN((size_t) offset + limit, m->filters->n_rules);
        int r;

        r = sd_bus_message_new_method_return(msg, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(reply, 'a', "a{sv}");
        if (r < 0)
                return r;
        for (size_t i = offset; i < end; i++) {
                (void) filter_store_read_counter(m->filters, m->filters->rules[i]);
                r = append_filter(reply, m->filters->rules[i]);
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

static int method_list(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;

        if (m->filters->n_rules > FILTERS_LIST_MAX)
                return sd_bus_error_setf(error, PS_ERROR_LIMIT_EXCEEDED,
                                         "the set has %zu rules and List() answers up to %u; use "
                                         "ListRange(offset, limit) or Export()",
                                         m->filters->n_rules, FILTERS_LIST_MAX);
        return list_range(msg, m, 0, FILTERS_LIST_MAX);
}

static int method_list_range(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        uint32_t offset, limit;
        int r;

        r = sd_bus_message_read(msg, "uu", &offset, &limit);
        if (r < 0)
                return r;
        if (limit < 1 || limit > FILTERS_LIST_MAX)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "limit is %u; accepted: 1 to %u", limit, FILTERS_LIST_MAX);
        return list_range(msg, m, offset, limit);
}

/* Export's size limit: well under the bus's own (32 MiB). */
#define EXPORT_MAX_BYTES (24u * 1024 * 1024)

static int method_export(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        _cleanup_free_ char *text = NULL;
        Manager *m = userdata;
        json_t *a;

        (void) filter_store_read_counters(m->filters);
        a = filter_store_export(m->filters);
        if (!a)
                return -ENOMEM;
        /* Small sets indented for people; big ones compact, one rule a line's worth. */
        text = json_dumps(a, m->filters->n_rules <= 1000 ? JSON_INDENT(2) : JSON_COMPACT);
        json_decref(a);
        if (!text)
                return -ENOMEM;
        if (strlen(text) > EXPORT_MAX_BYTES)
                return sd_bus_error_setf(error, PS_ERROR_LIMIT_EXCEEDED,
                                         "the export would be %zu bytes; one bus message carries "
                                         "at most %u: use ListRange(offset, limit)",
                                         strlen(text), EXPORT_MAX_BYTES);
        return sd_bus_reply_method_return(msg, "s", text);
}

/* Parses an import document: one rule object, an array of them, or {"filters": [...]}. */
static int parse_import(Manager *m, const char *text, bool keep_ids, Filter ***ret, size_t *ret_n,
                        sd_bus_error *error) {
        json_error_t jerr;
        json_t *root, *list;
        Filter **rules = NULL;
        size_t n = 0, count;
        int r = 0;

        if (strlen(text) > IMPORT_MAX_BYTES)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "the import is %zu bytes; accepted: at most %u (split it, "
                                         "or use AddBatch)", strlen(text), IMPORT_MAX_BYTES);
        root = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
        if (!root)
                return sd_bus_error_setf(error, PS_ERROR_INVALID_FILTER,
                                         "the import is not valid JSON: line %d column %d: %s",
                                         jerr.line, jerr.column, jerr.text);
        list = json_is_object(root) && json_object_get(root, "filters") ?
               json_object_get(root, "filters") : root;
        count = json_is_array(list) ? json_array_size(list) : 1;
        if (!json_is_array(list) && !json_is_object(list)) {
                json_decref(root);
                return sd_bus_error_setf(error, PS_ERROR_INVALID_FILTER,
                                         "the import must be a rule object, an array of rules or "
                                         "{\"filters\": [...]}");
        }
        if (count > PS_FILTER_MAX_RULES) {
                json_decref(root);
                return sd_bus_error_setf(error, PS_ERROR_LIMIT_EXCEEDED,
                                         "the import holds %zu rules; accepted: at most %u", count,
                                         PS_FILTER_MAX_RULES);
        }
        rules = calloc(count + 1, sizeof(Filter *));
        if (!rules) {
                json_decref(root);
                return -ENOMEM;
        }
        for (size_t i = 0; i < count; i++) {
                json_t *o = json_is_array(list) ? json_array_get(list, i) : list; /* borrowed */
                _cleanup_free_ char *err = NULL;
                Filter *f = calloc(1, sizeof(Filter));

                if (!f) {
                        r = -ENOMEM;
                        break;
                }
                filter_init(f);
                r = filter_from_json(f, o, FILTER_PARSE_IMPORT, &err);
                if (r == 0 && !keep_ids)
                        f->id = UINT32_MAX;
                if (r == 0 && f->expires_usec && f->expires_usec <= now_usec(CLOCK_REALTIME)) {
                        /* Its time is over: importing it would only make it live again. */
                        filter_free(f);
                        continue;
                }
                if (r == 0)
                        r = check_lockout(m, f, error);
                if (r < 0) {
                        filter_free(f);
                        if (!sd_bus_error_is_set(error))
                                r = sd_bus_error_setf(error, PS_ERROR_INVALID_FILTER,
                                                      "rule #%zu of the import: %s", i,
                                                      err ? err : strerror(-r));
                        break;
                }
                rules[n++] = f;
        }
        json_decref(root);
        if (r < 0) {
                filter_list_free(rules, n);
                return r;
        }
        *ret = rules;
        *ret_n = n;
        return 0;
}

static int parse_mode(const char *mode, bool *ret_replace, sd_bus_error *error) {
        if (streq(mode, "merge") || streq(mode, ""))
                *ret_replace = false;
        else if (streq(mode, "replace"))
                *ret_replace = true;
        else
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "invalid mode '%.32s'; accepted: merge, replace", mode);
        return 0;
}

/* The list a merge or replace leads to: for a merge, a snapshot plus the new rules. */
static int build_list(Manager *m, Filter **add, size_t n_add, bool replace, Filter ***ret,
                      size_t *ret_n) {
        Filter **list = NULL, **grown;
        size_t n = 0;
        int r;

        if (replace) {
                list = calloc(n_add + 1, sizeof(Filter *));
                if (!list)
                        return -ENOMEM;
        } else {
                r = filter_store_snapshot(m->filters, &list, &n);
                if (r < 0)
                        return r;
                grown = realloc(list, (n + n_add + 1) * sizeof(Filter *));
                if (!grown) {
                        filter_list_free(list, n);
                        return -ENOMEM;
                }
                list = grown;
        }
        for (size_t i = 0; i < n_add; i++)
                list[n + i] = add[i];
        *ret = list;
        *ret_n = n + n_add;
        return (int) n; /* how many of the list are snapshot copies */
}

static int method_import(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        _cleanup_free_ char *err = NULL;
        _cleanup_free_ uint32_t *ids = NULL;
        Manager *m = userdata;
        const char *text, *mode;
        Filter **add = NULL, **list = NULL;
        size_t n_add = 0, n = 0;
        bool replace;
        int r, copies;

        r = sd_bus_message_read(msg, "ss", &text, &mode);
        if (r < 0)
                return r;
        r = parse_mode(mode, &replace, error);
        if (r < 0)
                return r;
        r = parse_import(m, text, replace, &add, &n_add, error);
        if (r < 0)
                return r;
        r = refuse_if_pending(m, error);
        if (r >= 0)
                r = polkit_verify(msg, PS_POLKIT_MANAGE_FILTERS, &m->polkit, error);
        if (r <= 0) {
                filter_list_free(add, n_add);
                return r < 0 ? r : 1;
        }
        copies = build_list(m, add, n_add, replace, &list, &n);
        if (copies < 0) {
                filter_list_free(add, n_add);
                return copies;
        }
        r = filter_store_replace(m->filters, list, n, true, &err);
        if (r < 0) {
                filter_list_free(list, n); /* frees the snapshot copies and the new rules */
                free(add);
                return store_error(error, r, err);
        }
        ids = calloc(n_add + 1, sizeof(uint32_t));
        for (size_t i = 0; ids && i < n_add; i++)
                ids[i] = add[i]->id;
        free(add);
        log_struct_internal(LOG_INFO, 0, PS_MESSAGE_FILTERS_CHANGED, NULL,
                            "Imported %zu filters (%s)", n_add, replace ? "replace" : "merge");
        if (!ids)
                return -ENOMEM;
        return reply_ids(msg, ids, n_add);
}

/* Test(): which current flows and ICMP entries would this rule match? Nothing is changed. */
struct test_ctx {
        const Filter *f;
        sd_bus_message *reply;
        const char *link;
        uint64_t now_ns;
        unsigned rows;
        int error;
};

static int test_flow(const void *key, const void *value, void *userdata) {
        struct test_ctx *c = userdata;
        const struct ps_flow_key *k = key;
        const struct ps_flow_value *v = value;
        struct ps_match p = {
                .family = k->family, .proto = k->proto, .sport = k->sport, .dport = k->dport,
                .tcp_flags = v->last_flags,
        };

        if (c->rows >= TEST_ROWS_MAX)
                return -ENOBUFS;
        memcpy(p.src, k->src, sizeof p.src);
        memcpy(p.dst, k->dst, sizeof p.dst);
        if (!filter_match(c->f, &p))
                return 0;
        c->rows++;
        return bus_append_flow_row(c->reply, c->link, k, v, c->now_ns);
}

static int test_icmp(const void *key, const void *value, void *userdata) {
        struct test_ctx *c = userdata;
        const struct ps_icmp_key *k = key;
        const struct ps_icmp_value *v = value;
        struct ps_match p = {
                .family = k->family,
                .proto = k->family == PS_FAMILY_IPV6 ? IPPROTO_ICMPV6 : IPPROTO_ICMP,
                .icmp_type = k->type, .icmp_code = k->code,
        };

        if (c->rows >= TEST_ROWS_MAX)
                return -ENOBUFS;
        memcpy(p.src, k->src, sizeof p.src);
        memcpy(p.dst, k->dst, sizeof p.dst);
        if (v->is_error) {
                p.inner_proto = v->inner_proto;
                p.inner_sport = v->inner_sport;
                p.inner_dport = v->inner_dport;
                memcpy(p.inner_src, v->inner_src, sizeof p.inner_src);
                memcpy(p.inner_dst, v->inner_dst, sizeof p.inner_dst);
        }
        if (!filter_match(c->f, &p))
                return 0;
        c->rows++;
        return bus_append_icmp_row(c->reply, c->link, k, v);
}

static int method_test(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        Manager *m = userdata;
        Filter *f = NULL;
        struct test_ctx c = { .now_ns = now_nsec(CLOCK_MONOTONIC) };
        int r;

        r = read_rule(m, msg, &f, error);
        if (r < 0)
                return r;
        f->enabled = true; /* a dry run of a disabled rule still shows what it would match */
        c.f = f;
        r = sd_bus_message_new_method_return(msg, &reply);
        if (r < 0)
                goto finish;
        c.reply = reply;
        r = sd_bus_message_open_container(reply, 'a', "a{sv}");
        if (r < 0)
                goto finish;
        for (size_t i = 0; i < m->n_links && r >= 0; i++) {
                c.link = m->links[i]->name;
                r = flows_foreach(m->links[i]->flows_fd, sizeof(struct ps_flow_key),
                                  sizeof(struct ps_flow_value), test_flow, &c, NULL);
                if (r >= 0)
                        r = flows_foreach(m->links[i]->icmp_fd, sizeof(struct ps_icmp_key),
                                          sizeof(struct ps_icmp_value), test_icmp, &c, NULL);
        }
        if (r == -ENOBUFS) /* the first TEST_ROWS_MAX matches are enough to judge a rule */
                r = 0;
        if (r < 0)
                goto finish;
        r = sd_bus_message_close_container(reply);
        if (r >= 0)
                r = sd_bus_send(NULL, reply, NULL);
finish:
        filter_free(f);
        return r;
}

/* --- confirm-or-rollback --- */

static Transaction *transaction_free(Transaction *t) {
        if (!t)
                return NULL;
        sd_event_source_unref(t->timer);
        filter_list_free(t->rollback, t->n_rollback);
        free(t->path);
        free(t);
        return NULL;
}

static void transaction_finish(Manager *m, bool confirmed, const char *why) {
        Transaction *t = m->transaction;
        _cleanup_free_ char *err = NULL;
        int r;

        if (!t)
                return;
        m->transaction = NULL;
        if (confirmed) {
                r = filter_store_save(m->filters);
                if (r < 0)
                        log_warning_errno(r, "Cannot save the confirmed rule set: %m");
                log_struct_internal(LOG_INFO, 0, PS_MESSAGE_FILTERS_CHANGED, NULL,
                                    "Transaction %s confirmed; the new rule set is kept", t->path);
        } else {
                r = filter_store_replace(m->filters, t->rollback, t->n_rollback, true, &err);
                if (r < 0)
                        log_struct_internal(LOG_ERR, r, PS_MESSAGE_ROLLBACK, NULL,
                                            "Rolling back transaction %s failed: %s", t->path,
                                            err ? err : strerror(-r));
                else {
                        t->rollback = NULL; /* the store owns them now */
                        t->n_rollback = 0;
                        log_struct_internal(LOG_WARNING, 0, PS_MESSAGE_ROLLBACK, NULL,
                                            "Transaction %s %s; the previous rule set is back",
                                            t->path, why);
                }
        }
        if (m->bus) {
                (void) sd_bus_emit_signal(m->bus, t->path, PS_IFACE_TRANSACTION, "Finished", "b",
                                          confirmed);
                (void) sd_bus_emit_object_removed(m->bus, t->path);
        }
        transaction_free(t);
}

static int on_transaction_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        transaction_finish(userdata, false, "was not confirmed in time");
        return 0;
}

static int method_apply(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        _cleanup_free_ char *err = NULL;
        Manager *m = userdata;
        Filter **add = NULL, **list = NULL, **rollback = NULL;
        size_t n_add = 0, n = 0, n_rollback = 0;
        const char *mode;
        uint32_t seconds;
        bool replace;
        Transaction *t = NULL;
        int r, copies;

        r = read_rules(m, msg, &add, &n_add, error);
        if (r < 0)
                return r;
        r = sd_bus_message_read(msg, "su", &mode, &seconds);
        if (r >= 0)
                r = parse_mode(mode, &replace, error);
        if (r >= 0 && (seconds < 1 || seconds > 3600))
                r = sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                      "confirm_seconds is %u; accepted: 1 to 3600", seconds);
        if (r >= 0)
                r = refuse_if_pending(m, error);
        if (r >= 0)
                r = polkit_verify(msg, PS_POLKIT_MANAGE_FILTERS, &m->polkit, error);
        if (r <= 0) {
                filter_list_free(add, n_add);
                return r < 0 ? r : 1;
        }
        r = filter_store_snapshot(m->filters, &rollback, &n_rollback);
        if (r < 0) {
                filter_list_free(add, n_add);
                return r;
        }
        copies = build_list(m, add, n_add, replace, &list, &n);
        if (copies < 0) {
                filter_list_free(add, n_add);
                filter_list_free(rollback, n_rollback);
                return copies;
        }
        /* Not persisted: until confirmed, filters.json keeps the old set, so a daemon that dies
         * meanwhile comes back with the old set. */
        r = filter_store_replace(m->filters, list, n, false, &err);
        if (r < 0) {
                filter_list_free(list, n);
                free(add);
                filter_list_free(rollback, n_rollback);
                return store_error(error, r, err);
        }
        free(add);
        t = calloc(1, sizeof(Transaction));
        if (!t || asprintf(&t->path, PS_OBJECT_FILTERS "/transaction/%u", ++m->transaction_counter) < 0) {
                free(t);
                filter_list_free(rollback, n_rollback);
                return -ENOMEM;
        }
        t->rollback = rollback;
        t->n_rollback = n_rollback;
        t->deadline_usec = now_usec(CLOCK_MONOTONIC) + (uint64_t) seconds * USEC_PER_SEC;
        r = sd_event_add_time(m->event, &t->timer, CLOCK_MONOTONIC, t->deadline_usec, 0,
                              on_transaction_timeout, m);
        m->transaction = t;
        if (r < 0) {
                transaction_finish(m, false, "could not arm its timer");
                return r;
        }
        log_struct_internal(LOG_NOTICE, 0, PS_MESSAGE_FILTERS_CHANGED, NULL,
                            "Applied %zu rules (%s) as transaction %s: rolls back in %u s unless "
                            "confirmed", n_add, replace ? "replace" : "merge", t->path, seconds);
        (void) sd_bus_emit_object_added(m->bus, t->path);
        return sd_bus_reply_method_return(msg, "o", t->path);
}

static int transaction_find(sd_bus *bus, const char *path, const char *interface, void *userdata,
                            void **found, sd_bus_error *error) {
        Manager *m = userdata;

        if (!m->transaction || !streq(path, m->transaction->path))
                return 0;
        *found = m;
        return 1;
}

static int transaction_enumerate(sd_bus *bus, const char *path, void *userdata, char ***nodes,
                                 sd_bus_error *error) {
        Manager *m = userdata;
        char **l = calloc(2, sizeof(char *));

        if (!l)
                return -ENOMEM;
        if (m->transaction && !(l[0] = strdup(m->transaction->path))) {
                free(l);
                return -ENOMEM;
        }
        *nodes = l;
        return 1;
}

/* Confirm() and Rollback(): authorized, and only for the transaction of the called path. */
static int transaction_end(sd_bus_message *msg, Manager *m, bool confirm, sd_bus_error *error) {
        int r;

        r = polkit_verify(msg, PS_POLKIT_MANAGE_FILTERS, &m->polkit, error);
        if (r <= 0)
                return r < 0 ? r : 1;
        /* It may have ended (and another begun) while polkit was answering. */
        if (!m->transaction || !streq(m->transaction->path, sd_bus_message_get_path(msg)))
                return sd_bus_error_setf(error, PS_ERROR_NO_SUCH_TRANSACTION,
                                         "transaction %s has already ended",
                                         sd_bus_message_get_path(msg));
        transaction_finish(m, confirm, confirm ? "confirmed" : "was rolled back on request");
        return sd_bus_reply_method_return(msg, NULL);
}

static int method_confirm(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        return transaction_end(msg, userdata, true, error);
}

static int method_rollback(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        return transaction_end(msg, userdata, false, error);
}

static int property_get_deadline(sd_bus *bus, const char *path, const char *interface,
                                 const char *property, sd_bus_message *reply, void *userdata,
                                 sd_bus_error *error) {
        Manager *m = userdata;
        uint64_t now = now_usec(CLOCK_MONOTONIC), d = m->transaction->deadline_usec;

        /* Seconds left, as a realtime deadline is what a client can show. */
        return sd_bus_message_append(reply, "t", now_usec(CLOCK_REALTIME) + (d > now ? d - now : 0));
}

/* --- Filter objects --- */

static int filter_find(sd_bus *bus, const char *path, const char *interface, void *userdata,
                       void **found, sd_bus_error *error) {
        Manager *m = userdata;
        const char *e = path + strlen(PS_OBJECT_FILTERS "/");
        uint32_t id;
        Filter *f;

        if (strncmp(path, PS_OBJECT_FILTERS "/", strlen(PS_OBJECT_FILTERS "/")) != 0 ||
            safe_atou32(e, &id) < 0)
                return 0;
        f = filter_store_find(m->filters, id);
        if (!f)
                return 0;
        *found = f;
        return 1;
}

static char *filter_path_at(void *userdata, size_t i) {
        Manager *m = userdata;

        return filter_path(m->filters->rules[i]->id);
}

static int filter_enumerate(sd_bus *bus, const char *path, void *userdata, char ***nodes,
                            sd_bus_error *error) {
        Manager *m = userdata;

        return bus_node_list(m->filters->n_rules, filter_path_at, m, nodes);
}

/* Every property is served from one a{sv}-style table so that the names follow the fields. */
static int filter_property_get(sd_bus *bus, const char *path, const char *interface,
                               const char *property, sd_bus_message *reply, void *userdata,
                               sd_bus_error *error) {
        Filter *f = userdata;
        char b[ADDR_STRLEN + 8], p[4], rr[16];

        if (streq(property, "Id"))
                return sd_bus_message_append(reply, "u", f->id);
        if (streq(property, "RuleType"))
                return sd_bus_message_append(reply, "s", rule_type_to_string(f->rule_type));
        if (streq(property, "Protocol"))
                return sd_bus_message_append(reply, "s", proto_str(f->protocol, p));
        if (streq(property, "SrcIp"))
                return sd_bus_message_append(reply, "s", cidr_str(f->has_src, &f->src, b));
        if (streq(property, "DstIp"))
                return sd_bus_message_append(reply, "s", cidr_str(f->has_dst, &f->dst, b));
        if (streq(property, "SrcPort"))
                return sd_bus_message_append(reply, "s", port_range_to_string(f->src_port, rr));
        if (streq(property, "DstPort"))
                return sd_bus_message_append(reply, "s", port_range_to_string(f->dst_port, rr));
        if (streq(property, "TcpFlags"))
                return sd_bus_message_append(reply, "y", f->tcp_flags);
        if (streq(property, "TcpFlagsMask"))
                return sd_bus_message_append(reply, "y", f->tcp_flags_mask);
        if (streq(property, "IcmpType"))
                return sd_bus_message_append(reply, "y", f->icmp_type);
        if (streq(property, "IcmpCode"))
                return sd_bus_message_append(reply, "y", f->icmp_code);
        if (streq(property, "InnerSrcIp"))
                return sd_bus_message_append(reply, "s", cidr_str(f->has_inner_src, &f->inner_src, b));
        if (streq(property, "InnerDstIp"))
                return sd_bus_message_append(reply, "s", cidr_str(f->has_inner_dst, &f->inner_dst, b));
        if (streq(property, "InnerProtocol"))
                return sd_bus_message_append(reply, "s", proto_str(f->inner_protocol, p));
        if (streq(property, "InnerSrcPort"))
                return sd_bus_message_append(reply, "s", port_range_to_string(f->inner_src_port, rr));
        if (streq(property, "InnerDstPort"))
                return sd_bus_message_append(reply, "s", port_range_to_string(f->inner_dst_port, rr));
        if (streq(property, "Action"))
                return sd_bus_message_append(reply, "s", filter_verdict_to_string(f->action));
        if (streq(property, "Enabled"))
                return sd_bus_message_append(reply, "b", f->enabled);
        if (streq(property, "Comment"))
                return sd_bus_message_append(reply, "s", f->comment ? f->comment : "");
        if (streq(property, "Priority"))
                return sd_bus_message_append(reply, "i", f->priority);
        if (streq(property, "Timeout"))
                return sd_bus_message_append(reply, "t", f->timeout_sec);
        if (streq(property, "Expires"))
                return sd_bus_message_append(reply, "t", f->expires_usec);
        if (streq(property, "Created"))
                return sd_bus_message_append(reply, "t", f->created_usec);
        return -ENOENT;
}

static int filter_counter_get(sd_bus *bus, const char *path, const char *interface,
                              const char *property, sd_bus_message *reply, void *userdata,
                              sd_bus_error *error) {
        Filter *f = userdata;

        /* The counters live in the kernel: read them now. */
        if (f->store)
                (void) filter_store_read_counter(f->store, f);
        if (streq(property, "Hits"))
                return sd_bus_message_append(reply, "t", f->hits);
        if (streq(property, "Bytes"))
                return sd_bus_message_append(reply, "t", f->bytes);
        return sd_bus_message_append(reply, "t", f->last_hit_usec);
}

/* Update/Enable/Disable/Delete: a new list where one rule is changed or gone. */
static int change_one(Manager *m, sd_bus_message *msg, Filter *target, json_t *update,
                      bool delete, sd_bus_error *error) {
        _cleanup_free_ char *err = NULL;
        Filter **list = NULL;
        size_t n = 0, idx = SIZE_MAX;
        uint32_t id = target->id;
        int r;

        r = filter_store_snapshot(m->filters, &list, &n);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++)
                if (list[i]->id == id)
                        idx = i;
        if (idx == SIZE_MAX) {
                filter_list_free(list, n);
                return sd_bus_error_setf(error, PS_ERROR_NO_SUCH_FILTER, "no filter %u", id);
        }
        if (delete) {
                filter_free(list[idx]);
                memmove(list + idx, list + idx + 1, (n - idx - 1) * sizeof(Filter *));
                n--;
        } else {
                r = filter_from_json(list[idx], update, FILTER_PARSE_UPDATE, &err);
                if (r == -EINVAL) {
                        filter_list_free(list, n);
                        return sd_bus_error_setf(error, PS_ERROR_INVALID_FILTER, "%s",
                                                 err ? err : "invalid update");
                }
                if (r < 0) {
                        filter_list_free(list, n);
                        return r;
                }
                if (json_object_get(update, "timeout"))
                        list[idx]->expires_usec = 0; /* counts again from now */
                r = check_lockout(m, list[idx], error);
                list[idx]->force = false;
                if (r < 0) {
                        filter_list_free(list, n);
                        return r;
                }
        }
        r = refuse_if_pending(m, error);
        if (r >= 0)
                r = polkit_verify(msg, PS_POLKIT_MANAGE_FILTERS, &m->polkit, error);
        if (r <= 0) {
                filter_list_free(list, n);
                return r < 0 ? r : 1;
        }
        r = filter_store_replace(m->filters, list, n, true, &err);
        if (r < 0) {
                filter_list_free(list, n);
                return store_error(error, r, err);
        }
        if (!delete && m->bus) {
                _cleanup_free_ char *path = filter_path(id);

                if (path) {
                        (void) sd_bus_emit_properties_changed(m->bus, path, PS_IFACE_FILTER,
                                "RuleType", "Protocol", "SrcIp", "DstIp", "SrcPort", "DstPort",
                                "TcpFlags", "TcpFlagsMask", "IcmpType", "IcmpCode", "InnerSrcIp",
                                "InnerDstIp", "InnerProtocol", "InnerSrcPort", "InnerDstPort",
                                "Action", "Enabled", "Comment", "Priority", "Timeout", "Expires",
                                NULL);
                        (void) sd_bus_emit_signal(m->bus, PS_OBJECT_FILTERS, PS_IFACE_FILTERS,
                                                  "FilterChanged", "uo", id, path);
                }
        }
        log_filter(LOG_INFO, PS_MESSAGE_FILTERS_CHANGED, id, "Filter %u %s", id,
                   delete ? "deleted" : "changed");
        return sd_bus_reply_method_return(msg, NULL);
}

static int method_update(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Filter *f = userdata;
        json_t *o = NULL;
        int r;

        r = bus_read_dict_json(msg, &o, error);
        if (r < 0)
                return r;
        r = change_one(f->store->manager, msg, f, o, false, error);
        json_decref(o);
        return r;
}

static int method_set_enabled(sd_bus_message *msg, Filter *f, bool enabled, sd_bus_error *error) {
        json_t *o = json_pack("{s:b}", "enabled", enabled);
        int r;

        if (!o)
                return -ENOMEM;
        r = change_one(f->store->manager, msg, f, o, false, error);
        json_decref(o);
        return r;
}

static int method_enable(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        return method_set_enabled(msg, userdata, true, error);
}

static int method_disable(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        return method_set_enabled(msg, userdata, false, error);
}

static int method_delete(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Filter *f = userdata;

        return change_one(f->store->manager, msg, f, NULL, true, error);
}

static int property_get_store_u32(sd_bus *bus, const char *path, const char *interface,
                                  const char *property, sd_bus_message *reply, void *userdata,
                                  sd_bus_error *error) {
        Manager *m = userdata;
        uint32_t v = streq(property, "Count") ? (uint32_t) m->filters->n_rules :
                     streq(property, "Shapes") ? (uint32_t) m->filters->n_shapes :
                     streq(property, "Entries") ? (uint32_t) m->filters->n_entries :
                     streq(property, "MaxShapes") ? PS_FILTER_MAX_SHAPES : PS_FILTER_MAX_RULES;

        return sd_bus_message_append(reply, "u", v);
}

static const sd_bus_vtable filters_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Count", "u", property_get_store_u32, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Shapes", "u", property_get_store_u32, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Entries", "u", property_get_store_u32, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("MaxRules", "u", property_get_store_u32, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("MaxShapes", "u", property_get_store_u32, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_METHOD_WITH_ARGS("Add", SD_BUS_ARGS("a{sv}", rule), SD_BUS_RESULT("u", id, "o", path),
                                method_add, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("AddBatch", SD_BUS_ARGS("aa{sv}", rules), SD_BUS_RESULT("au", ids),
                                method_add_batch, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("List", SD_BUS_NO_ARGS, SD_BUS_RESULT("aa{sv}", rules),
                                method_list, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ListRange", SD_BUS_ARGS("u", offset, "u", limit),
                                SD_BUS_RESULT("aa{sv}", rules), method_list_range,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Import", SD_BUS_ARGS("s", json, "s", mode), SD_BUS_RESULT("au", ids),
                                method_import, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Export", SD_BUS_NO_ARGS, SD_BUS_RESULT("s", json),
                                method_export, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Test", SD_BUS_ARGS("a{sv}", rule), SD_BUS_RESULT("aa{sv}", matches),
                                method_test, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Apply", SD_BUS_ARGS("aa{sv}", rules, "s", mode, "u", confirm_seconds),
                                SD_BUS_RESULT("o", transaction), method_apply,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_SIGNAL_WITH_ARGS("FilterAdded", SD_BUS_ARGS("u", id, "o", path), 0),
        SD_BUS_SIGNAL_WITH_ARGS("FilterRemoved", SD_BUS_ARGS("u", id, "o", path), 0),
        SD_BUS_SIGNAL_WITH_ARGS("FilterChanged", SD_BUS_ARGS("u", id, "o", path), 0),
        SD_BUS_SIGNAL_WITH_ARGS("Reloaded", SD_BUS_ARGS("u", added, "u", removed), 0),
        SD_BUS_SIGNAL_WITH_ARGS("Dropped", SD_BUS_ARGS("u", rule_id, "s", link, "s", protocol,
                                                       "s", src, "s", dst, "q", sport, "q", dport), 0),
        SD_BUS_VTABLE_END,
};

#define FILTER_PROP(name, sig) \
        SD_BUS_PROPERTY(name, sig, filter_property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE)

static const sd_bus_vtable filter_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Id", "u", filter_property_get, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        FILTER_PROP("RuleType", "s"),
        FILTER_PROP("Protocol", "s"),
        FILTER_PROP("SrcIp", "s"),
        FILTER_PROP("DstIp", "s"),
        FILTER_PROP("SrcPort", "s"),
        FILTER_PROP("DstPort", "s"),
        FILTER_PROP("TcpFlags", "y"),
        FILTER_PROP("TcpFlagsMask", "y"),
        FILTER_PROP("IcmpType", "y"),
        FILTER_PROP("IcmpCode", "y"),
        FILTER_PROP("InnerSrcIp", "s"),
        FILTER_PROP("InnerDstIp", "s"),
        FILTER_PROP("InnerProtocol", "s"),
        FILTER_PROP("InnerSrcPort", "s"),
        FILTER_PROP("InnerDstPort", "s"),
        FILTER_PROP("Action", "s"),
        FILTER_PROP("Enabled", "b"),
        FILTER_PROP("Comment", "s"),
        FILTER_PROP("Priority", "i"),
        FILTER_PROP("Timeout", "t"),
        FILTER_PROP("Expires", "t"),
        SD_BUS_PROPERTY("Created", "t", filter_property_get, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Hits", "t", filter_counter_get, 0, 0),
        SD_BUS_PROPERTY("Bytes", "t", filter_counter_get, 0, 0),
        SD_BUS_PROPERTY("LastHit", "t", filter_counter_get, 0, 0),
        SD_BUS_METHOD_WITH_ARGS("Update", SD_BUS_ARGS("a{sv}", fields), SD_BUS_NO_RESULT,
                                method_update, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("Enable", NULL, NULL, method_enable, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("Disable", NULL, NULL, method_disable, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("Delete", NULL, NULL, method_delete, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};

static const sd_bus_vtable transaction_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Deadline", "t", property_get_deadline, 0, 0),
        SD_BUS_METHOD("Confirm", NULL, NULL, method_confirm, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("Rollback", NULL, NULL, method_rollback, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_SIGNAL_WITH_ARGS("Finished", SD_BUS_ARGS("b", confirmed), 0),
        SD_BUS_VTABLE_END,
};

static int cmp_id(const void *a, const void *b) {
        uint32_t x = *(const uint32_t *) a, y = *(const uint32_t *) b;

        return x < y ? -1 : x > y;
}

/* Beyond this many rules added or removed at once, one Reloaded signal replaces the
 * per-object signals: 100,000 InterfacesAdded would flood the bus for minutes. */
#define FILTER_SIGNALS_MAX 1000

void manager_filters_changed(Manager *m, const uint32_t *old_ids, size_t n_old) {
        FilterStore *s = m->filters;
        _cleanup_free_ uint32_t *old_sorted = NULL, *new_sorted = NULL;
        size_t n_added = 0, n_removed = 0;

        if (!m->bus)
                return;
        old_sorted = malloc((n_old + 1) * sizeof(uint32_t));
        new_sorted = malloc((s->n_rules + 1) * sizeof(uint32_t));
        if (!old_sorted || !new_sorted)
                return;
        memcpy(old_sorted, old_ids, n_old * sizeof(uint32_t));
        for (size_t i = 0; i < s->n_rules; i++)
                new_sorted[i] = s->rules[i]->id;
        qsort(old_sorted, n_old, sizeof(uint32_t), cmp_id);
        qsort(new_sorted, s->n_rules, sizeof(uint32_t), cmp_id);
        for (size_t i = 0; i < n_old; i++)
                if (!bsearch(&old_sorted[i], new_sorted, s->n_rules, sizeof(uint32_t), cmp_id))
                        n_removed++;
        for (size_t i = 0; i < s->n_rules; i++)
                if (!bsearch(&new_sorted[i], old_sorted, n_old, sizeof(uint32_t), cmp_id))
                        n_added++;

        if (n_added + n_removed > FILTER_SIGNALS_MAX) {
                (void) sd_bus_emit_signal(m->bus, PS_OBJECT_FILTERS, PS_IFACE_FILTERS, "Reloaded",
                                          "uu", (uint32_t) n_added, (uint32_t) n_removed);
        } else {
                for (size_t i = 0; i < n_old; i++) {
                        _cleanup_free_ char *path = NULL;

                        if (bsearch(&old_sorted[i], new_sorted, s->n_rules, sizeof(uint32_t), cmp_id))
                                continue;
                        path = filter_path(old_sorted[i]);
                        if (!path)
                                continue;
                        (void) sd_bus_emit_interfaces_removed(m->bus, path, PS_IFACE_FILTER, NULL);
                        (void) sd_bus_emit_signal(m->bus, PS_OBJECT_FILTERS, PS_IFACE_FILTERS,
                                                  "FilterRemoved", "uo", old_sorted[i], path);
                }
                for (size_t i = 0; i < s->n_rules; i++) {
                        uint32_t id = s->rules[i]->id;
                        _cleanup_free_ char *path = NULL;

                        if (bsearch(&id, old_sorted, n_old, sizeof(uint32_t), cmp_id))
                                continue;
                        path = filter_path(id);
                        if (!path)
                                continue;
                        (void) sd_bus_emit_interfaces_added(m->bus, path, PS_IFACE_FILTER, NULL);
                        (void) sd_bus_emit_signal(m->bus, PS_OBJECT_FILTERS, PS_IFACE_FILTERS,
                                                  "FilterAdded", "uo", id, path);
                }
        }
        (void) sd_bus_emit_properties_changed(m->bus, PS_OBJECT_FILTERS, PS_IFACE_FILTERS, "Count",
                                              "Shapes", "Entries", NULL);
}

void manager_transaction_free(Manager *m) {
        m->transaction = transaction_free(m->transaction);
}

/* On a clean exit an unconfirmed change is undone, as if its time had run out. */
void manager_transaction_rollback(Manager *m) {
        if (m->transaction)
                transaction_finish(m, false, "was still pending when the daemon stopped");
}

/* Filters and Filter share the node /filters, and sd-bus wants all vtables of one node to be
 * of one kind: so Filters is a fallback too, found only on the node itself. */
static int filters_find(sd_bus *bus, const char *path, const char *interface, void *userdata,
                        void **found, sd_bus_error *error) {
        if (!streq(path, PS_OBJECT_FILTERS))
                return 0;
        *found = userdata;
        return 1;
}

int filters_bus_register(Manager *m) {
        int r;

        r = sd_bus_add_fallback_vtable(m->bus, NULL, PS_OBJECT_FILTERS, PS_IFACE_FILTERS,
                                       filters_vtable, filters_find, m);
        if (r < 0)
                return r;
        r = sd_bus_add_fallback_vtable(m->bus, NULL, PS_OBJECT_FILTERS "/transaction",
                                       PS_IFACE_TRANSACTION, transaction_vtable, transaction_find, m);
        if (r < 0)
                return r;
        r = sd_bus_add_node_enumerator(m->bus, NULL, PS_OBJECT_FILTERS "/transaction",
                                       transaction_enumerate, m);
        if (r < 0)
                return r;
        r = sd_bus_add_fallback_vtable(m->bus, NULL, PS_OBJECT_FILTERS, PS_IFACE_FILTER, filter_vtable,
                                       filter_find, m);
        if (r < 0)
                return r;
        return sd_bus_add_node_enumerator(m->bus, NULL, PS_OBJECT_FILTERS, filter_enumerate, m);
}
