/* SPDX-License-Identifier: MIT */
#pragma once

#include "manager.h"

/* org.packetscope.Guarder1.Filter: one object per rule, /org/packetscope/Guarder1/filters/<id>. */
int filter_bus_register(Manager *m);
