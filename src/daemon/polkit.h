/* SPDX-License-Identifier: MIT */
#pragma once

#include <systemd/sd-bus.h>

#include "bus-names.h"

/*
 * Asynchronous polkit checks for mutating bus methods, in one place so that every method uses
 * it the same way:
 *
 *     r = validate(...);                         // 1. validate
 *     r = polkit_verify(msg, ACTION, &m->polkit, error);   // 2. authorize
 *     if (r < 0) return r;                       //    denied or failed: error is set
 *     if (r == 0) return 1;                      //    asked polkit; the call comes back later
 *     apply(...); signal(...); reply(...);       // 3-5
 *
 * The first pass sends CheckAuthorization without blocking the loop and keeps the call; when
 * polkit answers, the call is put back in the bus's read queue and the method runs again from
 * the start, now finding the answer. A caller that is gone by then simply gets no reply.
 */

#define POLKIT_PENDING_MAX 64 /* authorization checks in flight; more are refused */

typedef struct PolkitRegistry PolkitRegistry;

int polkit_verify(sd_bus_message *call, const char *action, PolkitRegistry **registry,
                  sd_bus_error *error);
PolkitRegistry *polkit_registry_free(PolkitRegistry *r);
unsigned polkit_registry_pending(const PolkitRegistry *r);

