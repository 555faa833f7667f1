/* SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <inttypes.h>
#include <net/if.h>
#include <stdio.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <time.h>

#include <bpf/bpf.h>

#include "ai.h"
#include "log.h"
#include "filter-transaction.h"
#include "flow-table.h"
#include "manager.h"
#include "util.h"

int manager_new(Manager **ret) {
        Manager *m = calloc(1, sizeof(Manager));

        assert(ret);
        if (!m)
                return -ENOMEM;
        config_init(&m->config);
        m->panic = PANIC_INIT;
        m->started_usec = now_usec(CLOCK_REALTIME);
        if (filter_store_new(&m->filters) < 0 || ban_store_new(&m->bans) < 0) {
                m->filters = filter_store_free(m->filters);
                free(m);
                return -ENOMEM;
        }
        if (ai_new(m, &m->ai) < 0) {
                filter_store_free(m->filters);
                free(m);
                return -ENOMEM;
        }
        *ret = m;
        return 0;
}

Manager *manager_free(Manager *m) {
        if (!m)
                return NULL;
        /* Links are closed, not detached: the pinned programs go on enforcing and counting. */
        for (size_t i = 0; i < m->n_links; i++)
                link_free(m->links[i]);
        free(m->links);
        manager_stop_drop_events(m);
        /* Before the rules: a shadow in progress takes its rules out again. */
        m->ai = ai_free(m->ai);
        if (m->filters)
                filter_transaction_free(TAKE_PTR(m->filters->transaction));
        m->filters = filter_store_free(m->filters);
        m->health = health_free(m->health);
        m->bans = ban_store_free(m->bans);
        panic_done(&m->panic);
        state_done(&m->state);
        m->polkit = polkit_registry_free(m->polkit);
        sd_event_source_unref(m->poll_timer);
        sd_bus_flush_close_unref(m->bus);
        sd_event_unref(m->event);
        free(m->status_text);
        free(m->bpffs_root);
        free(m->state_dir);
        free(m->config_dir);
        free(m);
        return NULL;
}

/* Drops per second over the last poll interval of every link. */
static uint64_t manager_drop_rate(Manager *m) {
        double rate = 0;

        for (size_t i = 0; i < m->n_links; i++) {
                const Link *l = m->links[i];

                if (l->prev_time_ns > 0 && l->stats_time_ns > l->prev_time_ns &&
                    l->stats.dropped >= l->prev.dropped)
                        rate += (double) (l->stats.dropped - l->prev.dropped) * 1e9 /
                                (double) (l->stats_time_ns - l->prev_time_ns);
        }
        return (uint64_t) (rate + 0.5);
}

void manager_update_status(Manager *m, bool force) {
        _cleanup_free_ char *names = NULL, *text = NULL;
        size_t n_rules = m->filters ? m->filters->n_rules : 0, len = 0;
        uint64_t now = now_usec(CLOCK_MONOTONIC), drops = manager_drop_rate(m);
        FILE *f;
        bool same_shape;

        assert(m);
        /* The names of the first few links: STATUS= is one line of systemctl status. */
        f = open_memstream(&names, &len);
        if (!f)
                return;
        for (size_t i = 0; i < m->n_links && i < 4; i++)
                fprintf(f, "%s%s", i > 0 ? ", " : "", m->links[i]->name);
        if (m->n_links > 4)
                fputs(", …", f);
        if (fclose(f) != 0)
                return;
        if (asprintf(&text, "%s%sGuarding %zu link%s%s%s%s, %zu rule%s, %" PRIu64 " drop%s/s",
                     m->panic.on ? "PANIC MODE (only management traffic passes): " : "",
                     m->filters && m->filters->degraded ?
                     "Degraded (rules enforced that no file lists; see Describe): " : "",
                     m->n_links, m->n_links == 1 ? "" : "s", m->n_links > 0 ? " (" : "", names,
                     m->n_links > 0 ? ")" : "", n_rules, n_rules == 1 ? "" : "s", drops,
                     drops == 1 ? "" : "s") < 0)
                return;
        if (streq_ptr(text, m->status_text))
                return;
        /* Links and rules are what comes before the rate: a change there is sent at once, and
         * so is the rate starting or ending (a dropping spell shorter than the interval would
         * otherwise never show); only a rate that changes while it runs waits its turn. */
        same_shape = m->status_text &&
                     strncmp(text, m->status_text, strrchr(text, ',') - text + 1) == 0 &&
                     endswith(text, " 0 drops/s") == endswith(m->status_text, " 0 drops/s");
        if (!force && same_shape && now - m->status_sent_usec < MANAGER_STATUS_INTERVAL_USEC)
                return;
        (void) sd_notifyf(false, "STATUS=%s", text);
        free(m->status_text);
        m->status_text = TAKE_PTR(text);
        m->status_sent_usec = now;
}

/* Appends "key=value" to a ", "-separated list. */
static int list_add(char **list, const char *key, const char *value) {
        char *n;

        if (asprintf(&n, "%s%s%s=%s", *list ? *list : "", *list ? ", " : "", key, value) < 0)
                return -ENOMEM;
        free(*list);
        *list = n;
        return 0;
}

static char *ports_to_string(const Config *c) {
        char *s = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&s, &len);

        if (!f)
                return NULL;
        for (uint32_t i = 0; i < c->n_management_ports; i++)
                fprintf(f, "%s%u", i > 0 ? " " : "", c->management_ports[i]);
        if (fclose(f) != 0)
                return mfree(s);
        return s;
}

static char *addresses_to_string(const Config *c) {
        char *s = NULL, buf[ADDR_STRLEN];
        size_t len = 0;
        FILE *f = open_memstream(&s, &len);

        if (!f)
                return NULL;
        for (uint32_t i = 0; i < c->n_management; i++)
                fprintf(f, "%s%s/%u", i > 0 ? " " : "",
                        addr_to_string(c->management[i].family, c->management[i].addr, buf),
                        c->management[i].prefixlen);
        if (fclose(f) != 0)
                return mfree(s);
        return s;
}

static int manager_apply_policy(Manager *m) {
        uint32_t zero = 0;

        for (size_t i = 0; i < m->n_links; i++) {
                struct ps_meta meta;

                if (bpf_map_lookup_elem(m->links[i]->meta_fd, &zero, &meta) < 0)
                        return -errno;
                meta.policy = m->config.parse_policy;
                if (bpf_map_update_elem(m->links[i]->meta_fd, &zero, &meta, BPF_ANY) < 0)
                        return -errno;
        }
        return 0;
}

int manager_reload(Manager *m, const char *who, const char *const *log_fields,
                   char **ret_applied, char **ret_pending, char **ret_error) {
        _cleanup_free_ char *applied = NULL, *pending = NULL, *old_s = NULL, *new_s = NULL;
        Config n;
        char v[32];
        int r;

        assert(m);
        assert(ret_applied);
        assert(ret_pending);
        config_init(&n);
        r = config_load(&n, m->config_dir, ret_error);
        if (r < 0) {
                log_struct_internal(LOG_WARNING, r, PS_MESSAGE_CONFIG_ERROR, NULL,
                                    "Not reloading; the running configuration stays: %s",
                                    ret_error && *ret_error ? *ret_error : strerror(-r));
                return r;
        }
        if (m->ssh_config_dir)
                (void) config_ssh_ports(&n, m->ssh_config_dir);

#define CHANGED_U(field, key, list)                                                     \
        if (n.field != m->config.field) {                                               \
                snprintf(v, sizeof v, "%llu", (unsigned long long) n.field);             \
                if (list_add(&list, key, v) < 0)                                        \
                        return -ENOMEM;                                                 \
        }
        CHANGED_U(flow_table_size, "FlowTableSize", pending);
        CHANGED_U(icmp_table_size, "IcmpTableSize", pending);
        CHANGED_U(max_links, "MaxLinks", applied);
#undef CHANGED_U
#define CHANGED_SPAN(field, key)                                                        \
        if (n.field != m->config.field) {                                               \
                snprintf(v, sizeof v, "%gs", (double) n.field / USEC_PER_SEC);            \
                if (list_add(&applied, key, v) < 0)                                     \
                        return -ENOMEM;                                                 \
        }
        CHANGED_SPAN(poll_interval_usec, "PollIntervalSec");
        CHANGED_SPAN(idle_timeout_usec, "IdleTimeoutSec");
        CHANGED_SPAN(closed_timeout_usec, "ClosedTimeoutSec");
        CHANGED_SPAN(sweep_period_usec, "SweepPeriodSec");
#undef CHANGED_SPAN
        if (n.parse_policy != m->config.parse_policy) {
                if ((n.parse_policy ^ m->config.parse_policy) & PS_POLICY_PASS_TINY_FRAGMENTS &&
                    list_add(&applied, "TinyFragments", n.parse_policy &
                             PS_POLICY_PASS_TINY_FRAGMENTS ? "pass" : "drop") < 0)
                        return -ENOMEM;
                if ((n.parse_policy ^ m->config.parse_policy) & PS_POLICY_PASS_LONG_CHAINS &&
                    list_add(&applied, "LongHeaderChains", n.parse_policy &
                             PS_POLICY_PASS_LONG_CHAINS ? "pass" : "drop") < 0)
                        return -ENOMEM;
        }
        old_s = ports_to_string(&m->config);
        new_s = ports_to_string(&n);
        if (!old_s || !new_s)
                return -ENOMEM;
        if (!streq(old_s, new_s) && list_add(&applied, "ManagementPorts", new_s) < 0)
                return -ENOMEM;
        free(old_s);
        free(new_s);
        old_s = addresses_to_string(&m->config);
        new_s = addresses_to_string(&n);
        if (!old_s || !new_s)
                return -ENOMEM;
        if (!streq(old_s, new_s) && list_add(&applied, "ManagementAddresses", new_s) < 0)
                return -ENOMEM;

        /* The table sizes stay those of the running links' maps; new links get the new ones. */
        m->config = n;
        if (m->poll_timer)
                (void) sd_event_source_set_time_relative(m->poll_timer, m->config.poll_interval_usec);
        r = manager_apply_policy(m);
        if (r < 0)
                return error_setf(ret_error, r, "cannot write the parse policy into the guarded "
                                  "interfaces' maps: %s", strerror(-r));
        if (m->panic.conf_fd >= 0) {
                r = panic_apply_config(&m->panic, &m->config);
                if (r < 0)
                        return error_setf(ret_error, r, "cannot write the management ports and "
                                          "addresses into the panic maps: %s", strerror(-r));
        }
        if (applied || !pending)
                log_struct_fields(LOG_INFO, 0, PS_MESSAGE_RELOADED, NULL, log_fields,
                                  "Reloaded the configuration from %s: %s%s%s%s", m->config_dir,
                                  applied ? "applied " : "no changes", applied ? applied : "",
                                  who ? "; asked by " : "", who ? who : "");
        if (pending)
                log_struct_fields(LOG_NOTICE, 0, PS_MESSAGE_RELOADED, NULL, log_fields,
                                  "Reloaded the configuration: %s applies to interfaces "
                                  "attached from now on; %s until detached and attached "
                                  "again%s%s", pending,
                                  m->n_links == 1 ? "the guarded interface keeps its tables"
                                                  : "the guarded interfaces keep their tables",
                                  who ? "; asked by " : "", who ? who : "");
        manager_update_status(m, true);
        *ret_applied = TAKE_PTR(applied);
        *ret_pending = TAKE_PTR(pending);
        return 0;
}

int manager_set_panic(Manager *m, bool on, const char *who, const char *const *log_fields,
                      sd_bus_error *error) {
        _cleanup_free_ char *err = NULL;
        const char *fields[8] = { on ? "PANIC=1" : "PANIC=0" };
        size_t n = 1;
        int r;

        assert(m);
        if (m->panic.conf_fd < 0)
                return sd_bus_error_setf(error, SD_BUS_ERROR_FAILED,
                                         "panic mode is not available: its maps could not be "
                                         "set up at start (see the journal)");
        if (m->panic.on == on)
                return 0;
        r = panic_set(&m->panic, on, &err);
        if (r == -EROFS)
                return sd_bus_error_setf(error, PS_ERROR_STATE_NOT_WRITABLE, "%s", err);
        if (r < 0)
                return sd_bus_error_set_errnof(error, r, "%s", err ? err : strerror(-r));
        for (size_t i = 0; log_fields && log_fields[i] && n < ELEMENTSOF(fields) - 1; i++)
                fields[n++] = log_fields[i];
        if (on)
                log_struct_fields(LOG_WARNING, 0, PS_MESSAGE_PANIC, NULL, fields,
                                  "Panic mode on: every guarded link (%zu) now drops all "
                                  "received traffic but management traffic%s%s", m->n_links,
                                  who ? "; asked by " : "", who ? who : "");
        else
                log_struct_fields(LOG_NOTICE, 0, PS_MESSAGE_PANIC, NULL, fields,
                                  "Panic mode off: the guarded links pass and drop by their bans "
                                  "and rules again%s%s", who ? "; asked by " : "",
                                  who ? who : "");
        manager_update_status(m, true);
        return 1;
}

void manager_rollback_pending(Manager *m) {
        assert(m);
        (void) filter_transaction_finish(m->filters, false,
                                         "was still pending when the daemon stopped", NULL);
}

void manager_stop(Manager *m) {
        assert(m);
        manager_rollback_pending(m);
        ban_store_stop(m->bans);
}

Link *manager_find_link(Manager *m, const char *name) {
        assert(m);
        assert(name);
        for (size_t i = 0; i < m->n_links; i++)
                if (streq(m->links[i]->name, name))
                        return m->links[i];
        return NULL;
}

static int manager_add_link(Manager *m, Link *l) {
        Link **n = realloc(m->links, (m->n_links + 1) * sizeof(Link *));

        if (!n)
                return -ENOMEM;
        m->links = n;
        m->links[m->n_links++] = l;
        (void) link_poll(l, now_nsec(CLOCK_MONOTONIC));
        return 0;
}

/* links.json after a change of m->state; a bus error (StateNotWritable) when it cannot be
 * written, the caller then puts m->state and the kernel back. */
static int manager_save_state(Manager *m, sd_bus_error *error) {
        _cleanup_free_ char *err = NULL;
        int r;

        r = state_save(m->state_dir, &m->state, &err);
        if (r == -EROFS)
                return sd_bus_error_setf(error, PS_ERROR_STATE_NOT_WRITABLE, "%s", err);
        if (r < 0)
                return sd_bus_error_set_errno(error, r);
        return 0;
}

/* A copy of the link state, to put back when a change of it cannot be stored. */
static int state_copy(const State *from, State *ret) {
        State c = {};
        int r;

        for (size_t i = 0; i < from->n_links; i++) {
                r = state_add(&c, from->links[i].name, from->links[i].mode);
                if (r < 0) {
                        state_done(&c);
                        return r;
                }
        }
        *ret = c;
        return 0;
}

static void manager_remove_link(Manager *m, Link *l) {
        for (size_t i = 0; i < m->n_links; i++)
                if (m->links[i] == l) {
                        memmove(m->links + i, m->links + i + 1,
                                (m->n_links - i - 1) * sizeof(Link *));
                        m->n_links--;
                        return;
                }
}

/* What every link shares: the pin root, the configuration, the rule and ban maps. */
static LinkSetup manager_link_setup(Manager *m) {
        return (LinkSetup) { m->bpffs_root, &m->config, m->filters, ban_store_maps(m->bans),
                             m->panic.conf_fd >= 0 ? &m->panic : NULL };
}

static void manager_notify_link(Manager *m, Link *l, LinkEvent event) {
        if (m->bus && m->on_link)
                m->on_link(m, l, event);
        if (event != LINK_REMOVING)
                manager_update_status(m, false);
}

static int manager_attach_full(Manager *m, const char *ifname, LinkMode mode, bool persist,
                               const char *who, const char *const *log_fields, Link **ret,
                               sd_bus_error *error) {
        _cleanup_free_ char *msg = NULL;
        LinkSetup setup = manager_link_setup(m);
        Link *l = NULL;
        State before = {};
        int r;

        assert(m);
        assert(ifname);
        if (manager_find_link(m, ifname))
                return sd_bus_error_setf(error, PS_ERROR_ALREADY_GUARDED,
                                         "'%s' is already guarded by this daemon", ifname);
        if (m->n_links >= m->config.max_links)
                return sd_bus_error_setf(error, PS_ERROR_LIMIT_EXCEEDED,
                                         "already guarding %zu links, the MaxLinks= limit",
                                         m->n_links);

        r = link_attach(&setup, ifname, mode, &l, &msg);
        if (r < 0) {
                const char *name = r == -ENODEV ? PS_ERROR_NO_SUCH_INTERFACE :
                                   r == -EEXIST ? PS_ERROR_ALREADY_GUARDED : PS_ERROR_ATTACH_FAILED;

                log_struct_internal(LOG_WARNING, r, PS_MESSAGE_ATTACH_FAILED, ifname,
                                    "Attaching to %s failed: %s", ifname, msg ? msg : strerror(-r));
                return sd_bus_error_setf(error, name, "%s", msg ? msg : strerror(-r));
        }
        /* Acknowledged means stored: the link is guarded only if links.json says so, else the
         * program comes off again and the state is what it was. */
        if (persist) {
                r = state_copy(&m->state, &before);
                if (r >= 0)
                        r = state_add(&m->state, ifname, mode);
                if (r >= 0)
                        r = manager_save_state(m, error);
                if (r < 0) {
                        state_done(&m->state);
                        m->state = before;
                        link_detach(l);
                        link_free(l);
                        return r == -ENOMEM ? sd_bus_error_set_errno(error, r) : r;
                }
                state_done(&before);
        }
        r = manager_add_link(m, l);
        if (r < 0) {
                link_detach(l);
                link_free(l);
                return sd_bus_error_set_errno(error, r);
        }
        log_struct_fields(LOG_INFO, 0, PS_MESSAGE_ATTACHED, ifname, log_fields,
                          "Guarding %s (ifindex %d, %s mode, program id %u)%s%s", ifname,
                          l->ifindex, link_mode_to_string(l->mode), l->prog_id,
                          who ? ", asked by " : "", who ? who : "");
        manager_notify_link(m, l, LINK_ADDED);
        if (ret)
                *ret = l;
        return 0;
}

int manager_attach(Manager *m, const char *ifname, LinkMode mode, const char *who,
                   const char *const *log_fields, Link **ret, sd_bus_error *error) {
        return manager_attach_full(m, ifname, mode, true, who, log_fields, ret, error);
}

/* The interface went away under us: the kernel detached the program. Drop the pins and the
 * object, but keep the link in the state so that it is guarded again when it comes back. */
static void manager_link_gone(Manager *m, Link *l) {
        manager_notify_link(m, l, LINK_REMOVING);
        link_detach(l);
        manager_remove_link(m, l);
        link_free(l);
        manager_notify_link(m, NULL, LINK_REMOVED);
}

int manager_detach(Manager *m, Link *l, const char *who, const char *const *log_fields,
                   sd_bus_error *error) {
        State before = {};
        int r;

        assert(m);
        assert(l);
        /* The file first: a detach that cannot be stored is not made, so the guard a restart
         * would bring back is the guard that is there. */
        r = state_copy(&m->state, &before);
        if (r < 0)
                return sd_bus_error_set_errno(error, r);
        state_remove(&m->state, l->name);
        r = manager_save_state(m, error);
        if (r < 0) {
                state_done(&m->state);
                m->state = before;
                return r;
        }
        state_done(&before);
        /* Told while the object still exists, so InterfacesRemoved can list its interfaces. */
        manager_notify_link(m, l, LINK_REMOVING);
        link_detach(l);
        log_struct_fields(LOG_INFO, 0, PS_MESSAGE_DETACHED, l->name, log_fields,
                          "Stopped guarding %s; program detached and pins removed%s%s", l->name,
                          who ? "; asked by " : "", who ? who : "");
        manager_remove_link(m, l);
        link_free(l);
        manager_notify_link(m, NULL, LINK_REMOVED);
        return 0;
}

void manager_totals(Manager *m, struct ps_stats *ret, double *ret_pps, double *ret_bps,
                    uint64_t *ret_flows, uint64_t *ret_icmp) {
        struct ps_stats sum = {};
        double pps = 0, bps = 0;
        uint64_t flows = 0, icmp = 0;

        for (size_t i = 0; i < m->n_links; i++) {
                ps_stats_add(&sum, &m->links[i]->stats);
                pps += m->links[i]->pps;
                bps += m->links[i]->bps;
                flows += m->links[i]->flow_count;
                icmp += m->links[i]->icmp_count;
        }
        *ret = sum;
        if (ret_pps)
                *ret_pps = pps;
        if (ret_bps)
                *ret_bps = bps;
        if (ret_flows)
                *ret_flows = flows;
        if (ret_icmp)
                *ret_icmp = icmp;
}

/* Each tick examines a slice of every table, sized so that a whole table is covered once per
 * SweepPeriodSec=: the idle cost stays flat instead of copying a million entries a second. */
static size_t sweep_budget(uint32_t table_size, const Config *c) {
        uint64_t ticks = c->sweep_period_usec / MAX(c->poll_interval_usec, (uint64_t) 1);

        ticks = MAX(ticks, (uint64_t) 1);
        return (size_t) MAX((table_size + ticks - 1) / ticks, (uint64_t) 256);
}

static void manager_reconcile(Manager *m);

static int on_poll(sd_event_source *s, uint64_t usec, void *userdata) {
        Manager *m = userdata;
        uint64_t now = now_nsec(CLOCK_MONOTONIC);
        int r;

        realtime_offset_update(); /* follows clock steps within a tick */
        for (size_t i = 0; i < m->n_links;) {
                Link *l = m->links[i];

                r = link_poll(l, now);
                if (r == -ENOLINK) {
                        log_struct_internal(LOG_WARNING, 0, PS_MESSAGE_LINK_GONE, l->name,
                                            "Interface %s went away; the kernel detached the "
                                            "program. Its pins are removed; it is guarded again "
                                            "if it comes back", l->name);
                        manager_link_gone(m, l);
                        continue;
                }
                if (r < 0)
                        log_struct_internal(LOG_WARNING, r, NULL, l->name,
                                            "Reading the counters of %s failed: %m", l->name);
                r = flow_table_sweep(l, now, m->config.idle_timeout_usec * NSEC_PER_USEC,
                                     m->config.closed_timeout_usec * NSEC_PER_USEC,
                                     sweep_budget(l->flow_table_size, &m->config),
                                     sweep_budget(l->icmp_table_size, &m->config));
                if (r < 0)
                        log_struct_internal(LOG_WARNING, r, NULL, l->name,
                                            "Expiring idle flows on %s failed: %m", l->name);
                else if (r > 0)
                        log_debug("%s: expired %d idle entries", l->name, r);
                i++;
        }
        /* Interfaces in the state that are not guarded (gone, or not there yet at start):
         * guard them as soon as they exist. One ioctl per missing link per tick. */
        if (m->n_links < m->state.n_links)
                manager_reconcile(m);
        manager_update_status(m, false);

        r = sd_event_source_set_time_relative(s, m->config.poll_interval_usec);
        if (r < 0)
                return r;
        return sd_event_source_set_enabled(s, SD_EVENT_ON);
}

/* The interface a pin directory belongs to. The first layout named the directories after the
 * interface as it is; names that differ in the escaped layout of today (a '%' or bytes outside
 * ASCII: a '.' never got that far) are moved to their new name first. */
static int manager_pin_dir_ifname(Manager *m, const char *dir_name, char **ret) {
        _cleanup_free_ char *ifname = NULL, *pin_name = NULL, *from = NULL, *to = NULL;
        int r;

        r = pin_name_to_ifname(dir_name, &ifname);
        if (r == 0) {
                *ret = TAKE_PTR(ifname);
                return 0;
        }
        if (r != -EINVAL)
                return r;
        if (!ifname_valid(dir_name)) {
                log_warning("%s/%s is not a pin directory of this daemon (not an escaped "
                            "interface name); leaving it alone", m->bpffs_root, dir_name);
                return -EINVAL;
        }
        ifname = strdup(dir_name);
        r = ifname ? ifname_to_pin_name(ifname, &pin_name) : -ENOMEM;
        if (r < 0)
                return r;
        from = strjoin_path(m->bpffs_root, dir_name);
        to = strjoin_path(m->bpffs_root, pin_name);
        if (!from || !to)
                return -ENOMEM;
        if (rename(from, to) < 0) {
                r = -errno;
                log_warning_errno(r, "Cannot move the pins of %s from %s to %s: %m; leaving them "
                                  "alone", ifname, from, to);
                return r;
        }
        log_info("Moved the pins of %s from %s to %s (the escaped layout of this version)",
                 ifname, from, to);
        *ret = TAKE_PTR(ifname);
        return 0;
}

static int manager_adopt_all(Manager *m) {
        _cleanup_(closedirp) DIR *d = NULL;
        struct dirent *de;

        d = opendir(m->bpffs_root);
        if (!d)
                return errno == ENOENT ? 0 : -errno;
        while ((de = readdir(d))) {
                _cleanup_free_ char *msg = NULL, *ifname = NULL;
                LinkSetup setup = manager_link_setup(m);
                Link *l = NULL;
                int r;

                /* ':filters' holds the shared rule maps; no interface name has a ':'. */
                if (de->d_name[0] == '.' || de->d_name[0] == ':' || de->d_type != DT_DIR)
                        continue;
                if (m->n_links >= m->config.max_links) {
                        log_warning("More pinned links than MaxLinks=%u; leaving %s alone",
                                    m->config.max_links, de->d_name);
                        continue;
                }
                r = manager_pin_dir_ifname(m, de->d_name, &ifname);
                /* A directory moved to its new name may be read a second time. */
                if (r < 0 || manager_find_link(m, ifname))
                        continue;
                r = link_adopt(&setup, ifname,
                               &l, &msg);
                if (r < 0) {
                        log_struct_internal(LOG_WARNING, r,
                                            r == -ESTALE || r == -ENOLINK ? PS_MESSAGE_LINK_GONE
                                                                          : PS_MESSAGE_ATTACH_FAILED,
                                            ifname, "Not adopting %s: %s", ifname,
                                            msg ? msg : strerror(-r));
                        continue;
                }
                r = manager_add_link(m, l);
                if (r < 0) {
                        link_free(l);
                        return r;
                }
                log_struct_internal(LOG_INFO, 0, PS_MESSAGE_ADOPTED, l->name,
                                    "Adopted the pinned guard of %s (ifindex %d, %s mode, "
                                    "program id %u, attached since %llu): counters continue%s",
                                    l->name, l->ifindex, link_mode_to_string(l->mode), l->prog_id,
                                    (unsigned long long) l->attached_since_usec,
                                    l->upgraded ? "; the program of an older build was replaced "
                                                  "in place by this one" : "");
        }
        return 0;
}

/* Links the state file lists but nothing is pinned for (a reboot cleared bpffs): guard them
 * again if their interface exists. Pinned links the file does not list are recorded. */
static void manager_reconcile(Manager *m) {
        bool dirty = false;

        for (size_t i = 0; i < m->n_links; i++)
                if (!state_find(&m->state, m->links[i]->name)) {
                        (void) state_add(&m->state, m->links[i]->name,
                                         m->links[i]->mode == PS_MODE_NATIVE ? LINK_MODE_NATIVE
                                                                            : LINK_MODE_GENERIC);
                        dirty = true;
                }
        for (size_t i = 0; i < m->state.n_links; i++) {
                const StateLink *sl = &m->state.links[i];
                sd_bus_error error = SD_BUS_ERROR_NULL;
                _cleanup_free_ char *name = NULL;

                if (manager_find_link(m, sl->name))
                        continue;
                if (if_nametoindex(sl->name) == 0)
                        continue; /* not there (yet): tried again every tick */
                name = strdup(sl->name);
                if (!name)
                        break;
                /* Already in the state: nothing to write. */
                if (manager_attach_full(m, name, sl->mode, false, NULL, NULL, NULL, &error) < 0)
                        log_struct_internal(LOG_WARNING, 0, PS_MESSAGE_ATTACH_FAILED, name,
                                            "%s is in the link state but could not be guarded "
                                            "again: %s", name, error.message);
                else
                        log_struct_internal(LOG_NOTICE, 0, PS_MESSAGE_ATTACHED, name,
                                            "%s is in the link state and present but had no "
                                            "guard (reboot, or the interface came back); "
                                            "guarding it again", name);
                sd_bus_error_free(&error);
        }
        if (dirty) {
                sd_bus_error error = SD_BUS_ERROR_NULL;

                /* Only a record of what is pinned anyway: a failure is logged, and the next
                 * start records them again. */
                (void) manager_save_state(m, &error);
                sd_bus_error_free(&error);
        }
}

static void manager_load_state(Manager *m) {
        _cleanup_free_ char *err = NULL;
        int r;

        r = state_load(m->state_dir, &m->state, &err);
        if (r == -EBADMSG)
                log_struct_internal(LOG_ERR, r, PS_MESSAGE_STATE_CORRUPT, NULL,
                                    "%s; starting from the pinned guards alone", err ? err : "");
        else if (r < 0 && r != -ENOENT)
                log_warning_errno(r, "Cannot read the link state in %s: %m; starting from the "
                                  "pinned guards alone", m->state_dir);
}

/* The guarded links as the health sampler records them: the guard's packet and drop rates
 * (ingress, from the last poll) and the interface's own byte counters, both directions. */
static unsigned manager_health_links(HealthLinkRate *rates, unsigned max, void *userdata) {
        Manager *m = userdata;
        unsigned n = 0;

        for (size_t i = 0; i < m->n_links && n < max; i++) {
                Link *l = m->links[i];
                HealthLinkRate *r = &rates[n++];
                uint64_t dt = l->stats_time_ns - l->prev_time_ns;
                const char *dir[2] = { "rx_bytes", "tx_bytes" };
                uint64_t *dst[2] = { &r->rx_bytes, &r->tx_bytes };

                *r = (HealthLinkRate) { .pps = l->pps };
                snprintf(r->name, sizeof(r->name), "%s", l->name);
                if (l->prev_time_ns != 0 && dt > 0 && l->stats.dropped >= l->prev.dropped)
                        r->dropped_pps = (double) (l->stats.dropped - l->prev.dropped) *
                                         NSEC_PER_SEC / (double) dt;
                for (int d = 0; d < 2; d++) {
                        _cleanup_free_ char *text = NULL, *path = NULL;

                        if (asprintf(&path, "/sys/class/net/%s/statistics/%s", l->name, dir[d]) < 0)
                                continue;
                        if (read_file_full(path, 64, &text, NULL) >= 0)
                                (void) safe_atou64(strtok(text, "\n") ?: "", dst[d]);
                }
        }
        return n;
}

static void manager_on_health(Health *h, HealthEvent event, const Anomaly *a, void *userdata) {
        Manager *m = userdata;

        if (m->bus && m->on_health)
                m->on_health(m, event, a);
}

static void log_removed_temp_file(const char *name, void *userdata) {
        log_notice("Removed %s/%s, left by a write that did not finish (the file it was to "
                   "replace is as it was)", (const char *) userdata, name);
}

int manager_start(Manager *m) {
        int r;

        assert(m);
        r = sd_event_default(&m->event);
        if (r < 0)
                return log_error_errno(r, "Failed to allocate the event loop: %m");
        /* WATCHDOG=1 is sent by sd-event itself when WatchdogSec= is set. */
        (void) sd_event_set_watchdog(m->event, true);

        /* The name first: a second daemon must find out it is not wanted before it touches
         * any pin, map or rule. Calls that arrive meanwhile wait in the queue. */
        r = sd_bus_open_system(&m->bus);
        if (r < 0)
                return log_error_errno(r, "Failed to connect to the system bus: %m");
        r = m->bus_register ? m->bus_register(m) : 0;
        if (r < 0)
                return log_error_errno(r, "Failed to register the bus objects: %m");
        r = sd_bus_request_name(m->bus, PS_BUS_NAME, 0);
        if (r == -EACCES || r == -EPERM)
                /* The bus refuses the name when no policy file allows root to own it: the
                 * usual cause is an install whose policy dbus-daemon does not read. */
                return log_error_errno(r, "Failed to acquire the bus name %s: %m. The bus policy "
                                       "%s.conf must be installed in /usr/share/dbus-1/system.d "
                                       "(or /etc/dbus-1/system.d) and dbus reloaded "
                                       "(systemctl reload dbus)", PS_BUS_NAME, PS_BUS_NAME);
        if (r < 0)
                return log_error_errno(r, "Failed to acquire the bus name %s: %m", PS_BUS_NAME);

        /* StateDirectory= makes it under systemd; elsewhere here, once. A directory that goes
         * away later is not made again: changes are refused until it is back. */
        r = mkdir_p(m->state_dir, 0755);
        if (r < 0)
                log_warning_errno(r, "Cannot create the state directory %s: %m; changes will be "
                                  "refused until it can be written", m->state_dir);
        /* A write cut short (a crash, a power cut) leaves its temporary file: the file it would
         * have replaced is intact, so the leftover is only clutter. No writer runs yet, and no
         * other daemon can: the bus name is ours. */
        (void) remove_atomic_temp_files(m->state_dir, log_removed_temp_file, m->state_dir);
        manager_load_state(m);
        {
                _cleanup_free_ char *err = NULL;

                /* The rule set first: every program attached from here on shares its maps. */
                r = filter_store_start(m->filters, m->event, m->state_dir, m->bpffs_root, &err);
                if (r < 0)
                        return log_error_errno(r, "Failed to set up the filter rules: %s",
                                               err ? err : strerror(-r));
        }
        {
                _cleanup_free_ char *err = NULL;

                /* The bans too, before any link: the programs share their maps. */
                r = ban_store_start(m->bans, m->event, m->state_dir, m->bpffs_root, &m->config,
                                    &err);
                if (r < 0)
                        return log_error_errno(r, "Failed to set up the bans: %s",
                                               err ? err : strerror(-r));
        }
        {
                _cleanup_free_ char *err = NULL;

                /* Panic mode too: the programs share its maps, and the flag must hold from the
                 * first packet a program sees. */
                r = panic_start(&m->panic, m->state_dir, m->bpffs_root, &m->config, &err);
                if (r < 0)
                        return log_error_errno(r, "Failed to set up panic mode: %s",
                                               err ? err : strerror(-r));
                if (m->panic.on)
                        log_struct_internal(LOG_WARNING, 0, PS_MESSAGE_PANIC, NULL,
                                            "Panic mode is on (kept from before this start): "
                                            "the guarded links drop all received traffic but "
                                            "management traffic; 'packetscopectl panic off' "
                                            "ends it");
        }
        r = manager_adopt_all(m);
        if (r < 0)
                return log_error_errno(r, "Failed to adopt pinned links in %s: %m",
                                       m->bpffs_root);
        r = ai_start(m->ai);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the AI client: %m");
        manager_reconcile(m);

        r = manager_start_drop_events(m);
        if (r < 0)
                log_warning_errno(r, "Cannot read drop events: %m; drops are still counted, only "
                                  "the journal samples and the Dropped signal are missing");

        r = sd_bus_attach_event(m->bus, m->event, SD_EVENT_PRIORITY_NORMAL);
        if (r < 0)
                return log_error_errno(r, "Failed to attach the bus to the event loop: %m");
        r = sd_event_add_time_relative(m->event, &m->poll_timer, CLOCK_MONOTONIC,
                                       m->config.poll_interval_usec, 10 * 1000, on_poll, m);
        if (r < 0)
                return log_error_errno(r, "Failed to start the poll timer: %m");
        /* The guard does not depend on it: without the health monitor it guards all the same. */
        r = health_new(&m->health, m->event, &m->config.health, manager_health_links,
                       manager_on_health, m);
        if (r < 0)
                log_warning_errno(r, "Cannot start the health monitor: %m; the guard runs "
                                  "without it");
        else
                log_info("Health monitor: every %llu ms, pressure from %s",
                         (unsigned long long) (m->config.health.interval_usec / 1000),
                         pressure_source_to_string(health_pressure_source(m->health)));
        return 0;
}
