/* SPDX-License-Identifier: MIT */
#pragma once

#include "manager.h"

/* org.packetscope.Guarder1.Connections at /org/packetscope/Guarder1/connections. */
int connections_bus_register(Manager *m);
