/* SPDX-License-Identifier: MIT */
#pragma once

#include "manager.h"

/* org.packetscope.Guarder1.Manager at the root, the object manager, and every other interface. */
int manager_bus_register(Manager *m);
/* PropertiesChanged of Manager.Links. */
int manager_emit_links_changed(Manager *m);
