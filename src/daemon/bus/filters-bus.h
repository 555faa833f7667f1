/* SPDX-License-Identifier: MIT */
#pragma once

#include <systemd/sd-bus.h>

#include "manager.h"

/* org.packetscope.Guarder1.Filters at /org/packetscope/Guarder1/filters, and the Filter and
 * Transaction objects below it. */
int filters_bus_register(Manager *m);

/* The bus error of a failed store call: r and the store's message to an error name. */
int filters_bus_error(sd_bus_error *error, int r, const char *err);
/* Refuses a change while a confirm-or-rollback transaction is pending. */
int filters_bus_refuse_if_pending(Manager *m, sd_bus_error *error);
/* /org/packetscope/Guarder1/filters/<id>, malloc'd. */
char *filter_bus_path(uint32_t id);
/* The lock-out guard over rules an authorized caller is about to add: 1 when all pass. `what`
 * names the list in the message ("batch", "import"), NULL for a single rule. */
int filters_bus_check_lockout(Manager *m, const FilterList *list, const char *what,
                              sd_bus_error *error);
/* Reads a rule's a{sv} into a new rule, through the same validation as JSON. */
int bus_read_rule(sd_bus_message *msg, Filter **ret, sd_bus_error *error);
