/* SPDX-License-Identifier: MIT */
#include "bus-util.h"
#include "filter-bus.h"
#include "log.h"
#include "polkit.h"
#include "util.h"

static int filter_find(sd_bus *bus, const char *path, const char *interface, void *userdata,
                       void **found, sd_bus_error *error) {
        const char *prefix = PS_OBJECT_FILTERS "/";
        Manager *m = userdata;
        uint32_t id;
        Filter *f;

        if (strncmp(path, prefix, strlen(prefix)) != 0 || safe_atou32(path + strlen(prefix), &id) < 0)
                return 0;
        f = filter_store_find(m->filters, id);
        if (!f)
                return 0;
        *found = f;
        return 1;
}

static char *filter_path_at(void *userdata, size_t i) {
        Manager *m = userdata;

        return filter_bus_path(m->filters->rules[i]->id);
}

static int filter_enumerate(sd_bus *bus, const char *path, void *userdata, char ***nodes,
                            sd_bus_error *error) {
        Manager *m = userdata;

        return bus_node_list(m->filters->n_rules, filter_path_at, m, nodes);
}

/* Every property comes from the rule's field table, so the names follow the fields. */
static int filter_property_get(sd_bus *bus, const char *path, const char *interface,
                               const char *property, sd_bus_message *reply, void *userdata,
                               sd_bus_error *error) {
        const RuleField *d = rule_field_by_property(property);
        Filter *f = userdata;

        if (!d)
                return -ENOENT;
        /* The counters live in the kernel: read them now. */
        if ((d->flags & RULE_FIELD_COUNTER) && f->store)
                (void) filter_store_read_counter(f->store, f);
        return rule_field_append(reply, d, f);
}

/* Update/Enable/Disable/Delete: a new list where one rule is changed or gone. */
static int change_one(Manager *m, sd_bus_message *msg, Filter *target, json_t *update,
                      sd_bus_error *error) {
        _cleanup_filter_ Filter *changed = NULL;
        _cleanup_free_ char *err = NULL, *summary = NULL;
        uint32_t id = target->id;
        int r;

        /* One rule changes: the store changes it alone, without a copy of the others. */
        if (update) {
                r = filter_store_prepare_one(m->filters, id, update, &changed, &err);
                if (r < 0)
                        return filters_bus_error(error, r, err);
        }
        /* What the rule matches: as changed, or as it was when it goes. */
        r = filter_summary(changed ? changed : target, &summary);
        if (r < 0)
                return r;
        r = filters_bus_refuse_if_pending(m, error);
        if (r >= 0)
                r = polkit_verify(msg, PS_POLKIT_MANAGE_FILTERS, &m->polkit, error);
        /* After polkit: the guard's message is for authorized callers only. */
        if (r > 0 && changed) {
                r = filters_bus_check_lockout(m, &(FilterList) { &changed, 1 }, NULL, error);
                changed->force = false; /* asked for this change only; not stored */
        }
        if (r <= 0)
                return r < 0 ? r : 1;
        r = filter_store_change_one(m->filters, id, changed, true, &err);
        if (r < 0)
                return filters_bus_error(error, r, err);
        changed = NULL; /* the store's now */
        if (update && m->bus) {
                _cleanup_free_ char *path = filter_bus_path(id);

                if (path) {
                        (void) sd_bus_emit_properties_changed_strv(m->bus, path, PS_IFACE_FILTER,
                                                                   rule_changing_properties());
                        (void) sd_bus_emit_signal(m->bus, PS_OBJECT_FILTERS, PS_IFACE_FILTERS,
                                                  "FilterChanged", "uo", id, path);
                }
        }
        {
                char extra[32];
                BusCaller caller;

                snprintf(extra, sizeof extra, "FILTER_ID=%u", id);
                bus_caller_get(msg, extra, &caller);
                log_struct_fields(LOG_INFO, 0, PS_MESSAGE_FILTERS_CHANGED, NULL, caller.fields,
                                  "Filter %u %s by %s: %s", id, update ? "changed" : "deleted",
                                  caller.who, summary ? summary : "");
        }
        return sd_bus_reply_method_return(msg, NULL);
}

static int method_update(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        _cleanup_json_ json_t *o = NULL;
        Filter *f = userdata;
        int r;

        r = bus_read_dict_json(msg, &o, error);
        if (r < 0)
                return r;
        return change_one(f->store->userdata, msg, f, o, error);
}

static int method_set_enabled(sd_bus_message *msg, Filter *f, bool enabled, sd_bus_error *error) {
        _cleanup_json_ json_t *o = json_pack("{s:b}", "enabled", enabled);

        if (!o)
                return -ENOMEM;
        return change_one(f->store->userdata, msg, f, o, error);
}

static int method_enable(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        return method_set_enabled(msg, userdata, true, error);
}

static int method_disable(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        return method_set_enabled(msg, userdata, false, error);
}

static int method_delete(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Filter *f = userdata;

        return change_one(f->store->userdata, msg, f, NULL, error);
}

static const sd_bus_vtable filter_methods[] = {
        SD_BUS_METHOD_WITH_ARGS("Update", SD_BUS_ARGS("a{sv}", fields), SD_BUS_NO_RESULT,
                                method_update, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("Enable", NULL, NULL, method_enable, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("Disable", NULL, NULL, method_disable, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("Delete", NULL, NULL, method_delete, SD_BUS_VTABLE_UNPRIVILEGED),
};

/* START, a property per field that has one, the methods, END. */
static sd_bus_vtable filter_vtable[1 + 64 + ELEMENTSOF(filter_methods) + 1];

/* The vtable follows the field table: a new field with a property needs nothing here. */
static const sd_bus_vtable *filter_vtable_build(void) {
        size_t n = 0;

        if (filter_vtable[0].type != 0)
                return filter_vtable;
        assert(rule_fields_n <= 64);
        filter_vtable[n++] = (sd_bus_vtable) SD_BUS_VTABLE_START(0);
        for (size_t i = 0; i < rule_fields_n; i++) {
                const RuleField *d = &rule_fields[i];
                static char sigs[64][2];
                uint64_t flags;

                if (!d->property)
                        continue;
                sigs[i][0] = d->bus_type;
                flags = d->flags & RULE_FIELD_CHANGES ? SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE :
                        d->flags & RULE_FIELD_COUNTER ? 0 : SD_BUS_VTABLE_PROPERTY_CONST;
                filter_vtable[n++] = (sd_bus_vtable) SD_BUS_PROPERTY(d->property, sigs[i],
                                                                     filter_property_get, 0, flags);
        }
        for (size_t i = 0; i < ELEMENTSOF(filter_methods); i++)
                filter_vtable[n++] = filter_methods[i];
        filter_vtable[n++] = (sd_bus_vtable) SD_BUS_VTABLE_END;
        return filter_vtable;
}

int filter_bus_register(Manager *m) {
        return bus_add_object_family(m->bus, PS_OBJECT_FILTERS, PS_IFACE_FILTER,
                                     filter_vtable_build(), filter_find, filter_enumerate, m);
}
