/* SPDX-License-Identifier: MIT */
#pragma once

#include <systemd/sd-bus.h>

#include "manager.h"

/* org.packetscope.Guarder1.Filters at /org/packetscope/Guarder1/filters, and the Filter and
 * Transaction objects below it. */
int filters_bus_register(Manager *m);
