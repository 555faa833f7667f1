/* SPDX-License-Identifier: MIT */
#pragma once

#include "manager.h"

/* org.packetscope.Guarder1.Link: one object per guarded link. */
int link_bus_register(Manager *m);
