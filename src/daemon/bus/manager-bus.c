/* SPDX-License-Identifier: MIT */
#include "ai-bus.h"
#include "bans-bus.h"
#include "bus-util.h"
#include "connections-bus.h"
#include "filters-bus.h"
#include "health-bus.h"
#include "link-bus.h"
#include "manager-bus.h"
#include "log.h"
#include "manager.h"
#include "util.h"

static int property_get_links(sd_bus *bus, const char *path, const char *interface,
                              const char *property, sd_bus_message *reply, void *userdata,
                              sd_bus_error *error) {
        Manager *m = userdata;
        int r;

        r = sd_bus_message_open_container(reply, 'a', "o");
        if (r < 0)
                return r;
        for (size_t i = 0; i < m->n_links; i++) {
                r = sd_bus_message_append(reply, "o", m->links[i]->object_path);
                if (r < 0)
                        return r;
        }
        return sd_bus_message_close_container(reply);
}

static int property_get_version(sd_bus *bus, const char *path, const char *interface,
                                const char *property, sd_bus_message *reply, void *userdata,
                                sd_bus_error *error) {
        return sd_bus_message_append(reply, "s", PACKETSCOPE_VERSION);
}

static int property_get_panic(sd_bus *bus, const char *path, const char *interface,
                              const char *property, sd_bus_message *reply, void *userdata,
                              sd_bus_error *error) {
        Manager *m = userdata;

        return sd_bus_message_append(reply, "b", (int) m->panic.on);
}

static int method_set_panic(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        BusCaller caller;
        int enable, r;

        r = sd_bus_message_read(msg, "b", &enable);
        if (r < 0)
                return r;
        r = polkit_verify(msg, PS_POLKIT_PANIC, &m->polkit, error);
        if (r <= 0)
                return r < 0 ? r : 1; /* denied, or asked polkit: the call comes back */
        bus_caller_get(msg, NULL, &caller);
        r = manager_set_panic(m, enable, caller.who, caller.fields, error);
        if (r < 0)
                return r;
        if (r > 0)
                (void) sd_bus_emit_properties_changed(m->bus, PS_OBJECT_ROOT, PS_IFACE_MANAGER,
                                                      "Panic", NULL);
        return sd_bus_reply_method_return(msg, NULL);
}

static int method_attach_link(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        const char *ifname, *mode_s;
        BusCaller caller;
        LinkMode mode;
        Link *l;
        int r;

        r = sd_bus_message_read(msg, "ss", &ifname, &mode_s);
        if (r < 0)
                return r;
        if (!ifname_valid(ifname))
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "invalid interface name '%.32s'; accepted: 1-15 "
                                         "bytes, not '.' or '..', without '/', ':', blanks "
                                         "or control characters", ifname);
        if (link_mode_from_string(mode_s, &mode) < 0)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "invalid mode '%.32s'; accepted: auto, native, generic "
                                         "(or an empty string for auto)", mode_s);
        r = polkit_verify(msg, PS_POLKIT_MANAGE_LINKS, &m->polkit, error);
        if (r <= 0)
                return r < 0 ? r : 1; /* denied, or asked polkit: the call comes back */
        bus_caller_get(msg, NULL, &caller);
        r = manager_attach(m, ifname, mode, caller.who, caller.fields, &l, error);
        if (r < 0)
                return r;
        return sd_bus_reply_method_return(msg, "o", l->object_path);
}

static int method_detach_link(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        const char *ifname;
        BusCaller caller;
        Link *l;
        int r;

        r = sd_bus_message_read(msg, "s", &ifname);
        if (r < 0)
                return r;
        if (!manager_find_link(m, ifname))
                return sd_bus_error_setf(error, PS_ERROR_NO_SUCH_LINK,
                                         "'%.32s' is not guarded; guarded links are listed in the "
                                         "Links property", ifname);
        r = polkit_verify(msg, PS_POLKIT_MANAGE_LINKS, &m->polkit, error);
        if (r <= 0)
                return r < 0 ? r : 1;
        /* Looked up again: the link may have gone while polkit was answering. */
        l = manager_find_link(m, ifname);
        if (!l)
                return sd_bus_error_setf(error, PS_ERROR_NO_SUCH_LINK, "'%.32s' is not guarded",
                                         ifname);
        bus_caller_get(msg, NULL, &caller);
        r = manager_detach(m, l, caller.who, caller.fields, error);
        if (r < 0)
                return r;
        return sd_bus_reply_method_return(msg, NULL);
}

static int method_get_statistics(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        Manager *m = userdata;
        struct ps_stats total;
        StatsView v = { .stats = &total, .links = (uint32_t) m->n_links, .have_run_stats = 1 };
        int r;

        manager_totals(m, &total, &v.pps, &v.bps, &v.flows, &v.icmp_entries);
        for (size_t i = 0; i < m->n_links; i++) {
                uint64_t t, c;

                if (link_program_stats(m->links[i], &t, &c) < 0) {
                        v.have_run_stats = 0;
                        break;
                }
                v.run_time_ns += t;
                v.run_count += c;
        }
        if ((r = bus_reply_open(msg, 'a', "{sv}", &reply)) < 0 ||
            (r = bus_append_stats(reply, &v)) < 0)
                return r;
        return bus_reply_close_send(reply);
}

static int method_describe(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        _cleanup_free_ char *json = NULL;
        Manager *m = userdata;
        int r;

        r = manager_describe_json(m, &json);
        if (r < 0)
                return r;
        return sd_bus_reply_method_return(msg, "s", json);
}

/* "a=1, b=2" as an array of "a=1", "b=2" (no value holds ", "). */
static int append_list(sd_bus_message *reply, const char *list) {
        int r;

        r = sd_bus_message_open_container(reply, 'a', "s");
        if (r < 0)
                return r;
        for (const char *p = list; p && *p;) {
                const char *end = strstr(p, ", ");
                _cleanup_free_ char *item = strndup(p, end ? (size_t) (end - p) : strlen(p));

                if (!item)
                        return -ENOMEM;
                r = sd_bus_message_append(reply, "s", item);
                if (r < 0)
                        return r;
                p = end ? end + 2 : NULL;
        }
        return sd_bus_message_close_container(reply);
}

static int method_reload(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        _cleanup_free_ char *applied = NULL, *pending = NULL, *err = NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        Manager *m = userdata;
        int r;

        BusCaller caller;

        /* What the configuration says is what configure guards (it guards the health
         * thresholds, the other part of the configuration that changes live). */
        r = polkit_verify(msg, PS_POLKIT_CONFIGURE, &m->polkit, error);
        if (r <= 0)
                return r < 0 ? r : 1;
        bus_caller_get(msg, NULL, &caller);
        r = manager_reload(m, caller.who, caller.fields, &applied, &pending, &err);
        if (r == -EINVAL)
                return sd_bus_error_setf(error, PS_ERROR_INVALID_CONFIG,
                                         "the configuration has problems and was not applied; "
                                         "the running one stays:\n%s", err ? err : "");
        if (r < 0)
                return sd_bus_error_set_errnof(error, r, "%s", err ? err : strerror(-r));
        (void) sd_bus_emit_properties_changed(m->bus, PS_OBJECT_ROOT, PS_IFACE_MANAGER,
                                              "FlowTableSize", "PollIntervalUSec", NULL);
        if ((r = sd_bus_message_new_method_return(msg, &reply)) < 0 ||
            (r = append_list(reply, applied)) < 0 ||
            (r = append_list(reply, pending)) < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

static const sd_bus_vtable manager_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Version", "s", property_get_version, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Links", "ao", property_get_links, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("FlowTableSize", "u", NULL, offsetof(Manager, config.flow_table_size),
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("PollIntervalUSec", "t", NULL, offsetof(Manager, config.poll_interval_usec),
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Panic", "b", property_get_panic, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_METHOD_WITH_ARGS("AttachLink", SD_BUS_ARGS("s", ifname, "s", mode),
                                SD_BUS_RESULT("o", link), method_attach_link,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("DetachLink", SD_BUS_ARGS("s", ifname), SD_BUS_NO_RESULT,
                                method_detach_link, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("GetStatistics", SD_BUS_NO_ARGS, SD_BUS_RESULT("a{sv}", statistics),
                                method_get_statistics, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Describe", SD_BUS_NO_ARGS, SD_BUS_RESULT("s", json),
                                method_describe, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Reload", SD_BUS_NO_ARGS,
                                SD_BUS_RESULT("as", applied, "as", pending), method_reload,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("SetPanic", SD_BUS_ARGS("b", enable), SD_BUS_NO_RESULT,
                                method_set_panic, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};

int manager_emit_links_changed(Manager *m) {
        return sd_bus_emit_properties_changed(m->bus, PS_OBJECT_ROOT,
                                              PS_IFACE_MANAGER, "Links", NULL);
}

static void on_link(Manager *m, Link *l, LinkEvent event) {
        switch (event) {
        case LINK_ADDED:
                (void) sd_bus_emit_object_added(m->bus, l->object_path);
                (void) manager_emit_links_changed(m);
                break;
        case LINK_REMOVING:
                (void) sd_bus_emit_object_removed(m->bus, l->object_path);
                break;
        case LINK_REMOVED:
                (void) manager_emit_links_changed(m);
                break;
        }
}

int manager_bus_register(Manager *m) {
        int r;

        m->on_link = on_link;
        r = sd_bus_add_object_manager(m->bus, NULL, PS_OBJECT_ROOT);
        if (r < 0)
                return r;
        r = sd_bus_add_object_vtable(m->bus, NULL, PS_OBJECT_ROOT,
                                     PS_IFACE_MANAGER, manager_vtable, m);
        if (r < 0)
                return r;
        r = link_bus_register(m);
        if (r < 0)
                return r;
        r = filters_bus_register(m);
        if (r < 0)
                return r;
        r = ai_bus_register(m);
        if (r < 0)
                return r;
        r = health_bus_register(m);
        if (r < 0)
                return r;
        r = bans_bus_register(m);
        if (r < 0)
                return r;
        return connections_bus_register(m);
}
