/* SPDX-License-Identifier: MIT */
#pragma once

#include <systemd/sd-bus.h>

#include "manager.h"

/* org.packetscope.Guarder1.Transaction: the pending confirm-or-rollback change, if any. */
int transaction_bus_register(Manager *m);
/* Filters.Apply: the rules have been read and the caller authorized. */
int transaction_bus_begin(Manager *m, sd_bus_message *msg, FilterList *add, bool replace,
                          uint32_t seconds, sd_bus_error *error);
