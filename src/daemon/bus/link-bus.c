/* SPDX-License-Identifier: MIT */
#include "bus-util.h"
#include "link-bus.h"
#include "manager.h"
#include "util.h"

static int link_object_find(sd_bus *bus, const char *path, const char *interface,
                            void *userdata, void **found, sd_bus_error *error) {
        _cleanup_free_ char *name = NULL;
        Manager *m = userdata;
        Link *l;
        int r;

        r = sd_bus_path_decode(path, PS_OBJECT_LINKS, &name);
        if (r <= 0)
                return 0;
        l = manager_find_link(m, name);
        if (!l)
                return 0;
        *found = l;
        return 1;
}

static char *link_path_at(void *userdata, size_t i) {
        Manager *m = userdata;

        return strdup(m->links[i]->object_path);
}

static int link_node_enumerator(sd_bus *bus, const char *path, void *userdata, char ***nodes,
                                sd_bus_error *error) {
        Manager *m = userdata;

        return bus_node_list(m->n_links, link_path_at, m, nodes);
}

static int property_get_mode(sd_bus *bus, const char *path, const char *interface,
                             const char *property, sd_bus_message *reply, void *userdata,
                             sd_bus_error *error) {
        Link *l = userdata;

        return sd_bus_message_append(reply, "s", link_mode_to_string(l->mode));
}

#define STAT_GETTER(fn, field)                                                               \
        static int fn(sd_bus *bus, const char *path, const char *interface,                  \
                      const char *property, sd_bus_message *reply, void *userdata,           \
                      sd_bus_error *error) {                                                 \
                Link *l = userdata;                                                          \
                return sd_bus_message_append(reply, "t", (uint64_t) l->stats.field);         \
        }
STAT_GETTER(property_get_packets, packets)
STAT_GETTER(property_get_bytes, bytes)
STAT_GETTER(property_get_dropped, dropped)
STAT_GETTER(property_get_malformed, malformed)

static int method_link_get_statistics(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        Link *l = userdata;
        StatsView v = {
                .stats = &l->stats, .pps = l->pps, .bps = l->bps, .flows = l->flow_count,
                .icmp_entries = l->icmp_count, .links = 1,
        };
        int r;

        v.have_run_stats = link_program_stats(l, &v.run_time_ns, &v.run_count) >= 0;
        if ((r = bus_reply_open(msg, 'a', "{sv}", &reply)) < 0 ||
            (r = bus_append_stats(reply, &v)) < 0 ||
            (r = bus_dict_u64(reply, "attached_since", l->attached_since_usec)) < 0)
                return r;
        return bus_reply_close_send(reply);
}

static const sd_bus_vtable link_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Name", "s", NULL, offsetof(Link, name), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Ifindex", "i", NULL, offsetof(Link, ifindex), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Mode", "s", property_get_mode, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("AttachedSince", "t", NULL, offsetof(Link, attached_since_usec),
                        SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("ProgramId", "u", NULL, offsetof(Link, prog_id), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Packets", "t", property_get_packets, 0, 0),
        SD_BUS_PROPERTY("Bytes", "t", property_get_bytes, 0, 0),
        SD_BUS_PROPERTY("Dropped", "t", property_get_dropped, 0, 0),
        SD_BUS_PROPERTY("Malformed", "t", property_get_malformed, 0, 0),
        SD_BUS_PROPERTY("PacketsPerSecond", "d", NULL, offsetof(Link, pps), 0),
        SD_BUS_PROPERTY("BitsPerSecond", "d", NULL, offsetof(Link, bps), 0),
        SD_BUS_PROPERTY("Flows", "t", NULL, offsetof(Link, flow_count), 0),
        SD_BUS_PROPERTY("FlowTableSize", "u", NULL, offsetof(Link, flow_table_size),
                        SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("IcmpTableSize", "u", NULL, offsetof(Link, icmp_table_size),
                        SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("KernelMemory", "t", NULL, offsetof(Link, kernel_memory),
                        SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_METHOD_WITH_ARGS("GetStatistics", SD_BUS_NO_ARGS, SD_BUS_RESULT("a{sv}", statistics),
                                method_link_get_statistics, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};

int link_bus_register(Manager *m) {
        return bus_add_object_family(m->bus, PS_OBJECT_LINKS, PS_IFACE_LINK, link_vtable,
                                     link_object_find, link_node_enumerator, m);
}
