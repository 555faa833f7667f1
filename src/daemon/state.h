/* SPDX-License-Identifier: MIT */
#pragma once

#include <stddef.h>

#include "link.h"

/*
 * What the daemon keeps in $STATE_DIRECTORY/links.json: the links an admin asked to guard and
 * in which mode. The pins in bpffs are what enforces; this file is what lets a daemon tell a
 * link that should be guarded but lost its pins (a reboot, bpffs unmounted) from one that was
 * never asked for. Written atomically (temp file, fsync, rename).
 */

typedef struct StateLink {
        char *name;
        LinkMode mode;
} StateLink;

typedef struct State {
        StateLink *links;
        size_t n_links;
} State;

/* -ENOENT: no file (a first start). -EBADMSG: the file is corrupt; it was moved to
 * links.json.corrupt and *ret_error says why. */
int state_load(const char *dir, State *ret, char **ret_error);
int state_save(const char *dir, const State *s);
void state_done(State *s);
int state_add(State *s, const char *name, LinkMode mode);
void state_remove(State *s, const char *name);
const StateLink *state_find(const State *s, const char *name);
const char *link_mode_request_to_string(LinkMode mode);
