/* SPDX-License-Identifier: MIT */
#pragma once

#include "manager.h"

int health_bus_register(Manager *m);
