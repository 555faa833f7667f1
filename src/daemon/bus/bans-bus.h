/* SPDX-License-Identifier: MIT */
#pragma once

#include "manager.h"

/* org.packetscope.Guarder1.Bans at /org/packetscope/Guarder1/bans, and the Ban objects below
 * it (resolved on demand, never enumerated). */
int bans_bus_register(Manager *m);
