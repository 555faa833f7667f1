/* SPDX-License-Identifier: MIT */
#pragma once

#include "manager.h"

/* org.packetscope.Guarder1.AI and the AIJob objects under it. */
int ai_bus_register(Manager *m);
