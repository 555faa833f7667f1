/* SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <net/if.h>
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>

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
        m->started_usec = now_usec(CLOCK_REALTIME);
        if (filter_store_new(&m->filters) < 0 || ban_store_new(&m->bans) < 0) {
                m->filters = filter_store_free(m->filters);
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
        if (m->filters)
                filter_transaction_free(TAKE_PTR(m->filters->transaction));
        m->filters = filter_store_free(m->filters);
        m->bans = ban_store_free(m->bans);
        state_done(&m->state);
        m->polkit = polkit_registry_free(m->polkit);
        sd_event_source_unref(m->poll_timer);
        sd_bus_flush_close_unref(m->bus);
        sd_event_unref(m->event);
        free(m->bpffs_root);
        free(m->state_dir);
        free(m->config_dir);
        free(m);
        return NULL;
}

void manager_rollback_pending(Manager *m) {
        assert(m);
        filter_transaction_finish(m->filters, false, "was still pending when the daemon stopped");
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

static void manager_save_state(Manager *m) {
        int r = state_save(m->state_dir, &m->state);

        if (r < 0)
                log_warning_errno(r, "Cannot write the link state to %s: %m; the pinned guards "
                                  "keep working, but a restart after a reboot may not restore them",
                                  m->state_dir);
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
        return (LinkSetup) { m->bpffs_root, &m->config, m->filters, ban_store_maps(m->bans) };
}

static void manager_notify_link(Manager *m, Link *l, LinkEvent event) {
        if (m->bus && m->on_link)
                m->on_link(m, l, event);
}

int manager_attach(Manager *m, const char *ifname, LinkMode mode, Link **ret,
                   sd_bus_error *error) {
        _cleanup_free_ char *msg = NULL;
        LinkSetup setup = manager_link_setup(m);
        Link *l = NULL;
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
        r = manager_add_link(m, l);
        if (r < 0) {
                link_detach(l);
                link_free(l);
                return sd_bus_error_set_errno(error, r);
        }
        log_struct_internal(LOG_INFO, 0, PS_MESSAGE_ATTACHED, ifname,
                            "Guarding %s (ifindex %d, %s mode, program id %u)", ifname,
                            l->ifindex, link_mode_to_string(l->mode), l->prog_id);
        if (state_add(&m->state, ifname, mode) >= 0)
                manager_save_state(m);
        manager_notify_link(m, l, LINK_ADDED);
        if (ret)
                *ret = l;
        return 0;
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

int manager_detach(Manager *m, Link *l) {
        assert(m);
        assert(l);
        /* Told while the object still exists, so InterfacesRemoved can list its interfaces. */
        manager_notify_link(m, l, LINK_REMOVING);
        link_detach(l);
        log_struct_internal(LOG_INFO, 0, PS_MESSAGE_DETACHED, l->name,
                            "Stopped guarding %s; program detached and pins removed", l->name);
        state_remove(&m->state, l->name);
        manager_save_state(m);
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

        r = sd_event_source_set_time_relative(s, m->config.poll_interval_usec);
        if (r < 0)
                return r;
        return sd_event_source_set_enabled(s, SD_EVENT_ON);
}

static int manager_adopt_all(Manager *m) {
        _cleanup_(closedirp) DIR *d = NULL;
        struct dirent *de;

        d = opendir(m->bpffs_root);
        if (!d)
                return errno == ENOENT ? 0 : -errno;
        while ((de = readdir(d))) {
                _cleanup_free_ char *msg = NULL;
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
                r = link_adopt(&setup, de->d_name,
                               &l, &msg);
                if (r < 0) {
                        log_struct_internal(LOG_WARNING, r,
                                            r == -ESTALE || r == -ENOLINK ? PS_MESSAGE_LINK_GONE
                                                                          : PS_MESSAGE_ATTACH_FAILED,
                                            de->d_name, "Not adopting %s: %s", de->d_name,
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
                if (manager_attach(m, name, sl->mode, NULL, &error) < 0)
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
        if (dirty)
                manager_save_state(m);
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
        r = manager_adopt_all(m);
        if (r < 0)
                return log_error_errno(r, "Failed to adopt pinned links in %s: %m",
                                       m->bpffs_root);
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
        return 0;
}
