/* SPDX-License-Identifier: MIT */
#include <jansson.h>
#include <time.h>

#include "addr.h"
#include "bpf-maps.h"
#include "filter-transaction.h"
#include "manager.h"
#include "query.h"
#include "util.h"

/*
 * Manager.Describe(): one JSON document of everything, for scripts that prefer jq to D-Bus
 * types. The keys are those of the bus dictionaries, so one schema serves both.
 */

static json_t *stats_json(const struct ps_stats *s, double pps, double bps, uint64_t flows,
                          uint64_t icmp) {
        static const char *const proto_names[_PS_PROTO_MAX] = {
                "tcp", "udp", "icmp", "icmpv6", "other",
        };
        json_t *o = json_object(), *types = json_object(), *types6 = json_object();

        if (!o || !types || !types6) {
                json_decref(o);
                json_decref(types);
                json_decref(types6);
                return NULL;
        }
        /* json_object_set_new steals the new value: no decref of the temporaries below. */
        json_object_set_new(o, "packets", json_integer((json_int_t) s->packets));
        json_object_set_new(o, "bytes", json_integer((json_int_t) s->bytes));
        json_object_set_new(o, "passed", json_integer((json_int_t) s->passed));
        json_object_set_new(o, "dropped", json_integer((json_int_t) s->dropped));
        json_object_set_new(o, "malformed", json_integer((json_int_t) s->malformed));
        json_object_set_new(o, "fragments", json_integer((json_int_t) s->fragments));
        json_object_set_new(o, "vlan", json_integer((json_int_t) s->vlan));
        json_object_set_new(o, "ipv4", json_integer((json_int_t) s->ipv4));
        json_object_set_new(o, "ipv6", json_integer((json_int_t) s->ipv6));
        json_object_set_new(o, "non_ip", json_integer((json_int_t) s->non_ip));
        json_object_set_new(o, "icmp_errors", json_integer((json_int_t) s->icmp_errors));
        json_object_set_new(o, "flow_update_failures", json_integer((json_int_t) s->flow_update_fail));
        json_object_set_new(o, "dropped_filter", json_integer((json_int_t) s->dropped_filter));
        json_object_set_new(o, "drop_events_lost", json_integer((json_int_t) s->drop_events_lost));
        json_object_set_new(o, "tiny_fragments", json_integer((json_int_t) s->tiny_fragments));
        json_object_set_new(o, "long_chains", json_integer((json_int_t) s->long_chains));
        json_object_set_new(o, "deep_vlan", json_integer((json_int_t) s->deep_vlan));
        json_object_set_new(o, "fragments_followed", json_integer((json_int_t) s->fragments_followed));
        json_object_set_new(o, "fragments_orphan", json_integer((json_int_t) s->fragments_orphan));
        json_object_set_new(o, "dropped_tiny_fragments",
                            json_integer((json_int_t) s->dropped_tiny_fragments));
        json_object_set_new(o, "dropped_long_chains",
                            json_integer((json_int_t) s->dropped_long_chains));
        json_object_set_new(o, "dropped_deep_vlan", json_integer((json_int_t) s->dropped_deep_vlan));
        json_object_set_new(o, "dropped_panic", json_integer((json_int_t) s->dropped_panic));
        for (int p = 0; p < _PS_PROTO_MAX; p++) {
                char key[32];

                snprintf(key, sizeof key, "%s_packets", proto_names[p]);
                json_object_set_new(o, key, json_integer((json_int_t) s->proto_packets[p]));
                snprintf(key, sizeof key, "%s_bytes", proto_names[p]);
                json_object_set_new(o, key, json_integer((json_int_t) s->proto_bytes[p]));
        }
        for (unsigned t = 0; t < PS_ICMP_TYPES; t++) {
                char key[8];

                snprintf(key, sizeof key, "%u", t);
                if (s->icmp.icmp_type[t])
                        json_object_set_new(types, key,
                                            json_integer((json_int_t) s->icmp.icmp_type[t]));
                if (s->icmp.icmpv6_type[t])
                        json_object_set_new(types6, key,
                                            json_integer((json_int_t) s->icmp.icmpv6_type[t]));
        }
        json_object_set_new(o, "icmp_types", types);
        json_object_set_new(o, "icmpv6_types", types6);
        json_object_set_new(o, "pps", json_real(pps));
        json_object_set_new(o, "bps", json_real(bps));
        json_object_set_new(o, "flows", json_integer((json_int_t) flows));
        json_object_set_new(o, "icmp_entries", json_integer((json_int_t) icmp));
        return o;
}

int manager_describe_json(Manager *m, char **ret) {
        json_t *root = json_object(), *links = json_array(), *config = json_object();
        struct ps_stats total;
        double pps, bps;
        uint64_t flows, icmp;
        char *s;

        assert(m);
        assert(ret);
        if (!root || !links || !config) {
                json_decref(root);
                json_decref(links);
                json_decref(config);
                return -ENOMEM;
        }
        json_object_set_new(root, "version", json_string(PACKETSCOPE_VERSION));
        json_object_set_new(root, "started", json_integer((json_int_t) m->started_usec));
        json_object_set_new(root, "panic", json_boolean(m->panic.on));

        json_object_set_new(config, "flow_table_size", json_integer(m->config.flow_table_size));
        json_object_set_new(config, "icmp_table_size", json_integer(m->config.icmp_table_size));
        json_object_set_new(config, "poll_interval_usec",
                            json_integer((json_int_t) m->config.poll_interval_usec));
        json_object_set_new(config, "idle_timeout_usec",
                            json_integer((json_int_t) m->config.idle_timeout_usec));
        json_object_set_new(config, "closed_timeout_usec",
                            json_integer((json_int_t) m->config.closed_timeout_usec));
        json_object_set_new(config, "tiny_fragments", json_string(
                m->config.parse_policy & PS_POLICY_PASS_TINY_FRAGMENTS ? "pass" : "drop"));
        json_object_set_new(config, "long_header_chains", json_string(
                m->config.parse_policy & PS_POLICY_PASS_LONG_CHAINS ? "pass" : "drop"));
        json_object_set_new(config, "bpffs_root", json_string(m->bpffs_root));
        json_object_set_new(root, "config", config);

        for (size_t i = 0; i < m->n_links; i++) {
                Link *l = m->links[i];
                json_t *o = json_object();

                if (!o)
                        continue;
                json_object_set_new(o, "name", json_string(l->name));
                json_object_set_new(o, "ifindex", json_integer(l->ifindex));
                json_object_set_new(o, "mode", json_string(link_mode_to_string(l->mode)));
                json_object_set_new(o, "attached_since",
                                    json_integer((json_int_t) l->attached_since_usec));
                json_object_set_new(o, "program_id", json_integer(l->prog_id));
                json_object_set_new(o, "path", json_string(l->object_path));
                json_object_set_new(o, "flow_table_size", json_integer(l->flow_table_size));
                json_object_set_new(o, "icmp_table_size", json_integer(l->icmp_table_size));
                json_object_set_new(o, "kernel_memory_bytes",
                                    json_integer((json_int_t) l->kernel_memory));
                json_object_set_new(o, "statistics", stats_json(&l->stats, l->pps, l->bps,
                                                                l->flow_count, l->icmp_count));
                json_array_append_new(links, o);
        }
        json_object_set_new(root, "links", links);

        manager_totals(m, &total, &pps, &bps, &flows, &icmp);
        json_object_set_new(root, "statistics", stats_json(&total, pps, bps, flows, icmp));

        /* The rule set, with counters read now: Export's format, so jq scripts can share. */
        (void) filter_store_read_counters(m->filters);
        {
                json_t *f = json_object();

                if (f) {
                        json_object_set_new(f, "count", json_integer((json_int_t) m->filters->n_rules));
                        json_object_set_new(f, "shapes", json_integer((json_int_t) m->filters->n_shapes));
                        json_object_set_new(f, "entries", json_integer((json_int_t) m->filters->n_entries));
                        json_object_set_new(f, "last_apply_usec",
                                            json_integer((json_int_t) m->filters->last_apply_usec));
                        json_object_set_new(f, "pending_transaction",
                                            m->filters->transaction ? json_string(m->filters->transaction->path)
                                                           : json_null());
                        /* Rules the kernel enforces but no readable file lists: shown as
                         * the kernel has them, so that nothing enforced is invisible. */
                        json_object_set_new(f, "degraded", m->filters->degraded
                                            ? json_string(m->filters->degraded) : json_null());
                        if (m->filters->degraded) {
                                json_t *k = NULL;
                                size_t total = 0;

                                if (filter_store_kernel_rules(m->filters, 1000, &k, &total) >= 0) {
                                        json_object_set_new(f, "kernel_rules", k);
                                        json_object_set_new(f, "kernel_rules_count",
                                                            json_integer((json_int_t) total));
                                }
                        }
                        /* A big set would not fit one bus message: ListRange() pages it. */
                        json_object_set_new(f, "rules", m->filters->n_rules <= 1000
                                            ? filter_store_export(m->filters) : json_null());
                        json_object_set_new(root, "filters", f);
                }
        }

        s = json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS);
        json_decref(root);
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}
