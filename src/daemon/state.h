/* SPDX-License-Identifier: MIT */
#pragma once

#include <stddef.h>

#include "link.h"

/*
 * What the daemon keeps in $STATE_DIRECTORY/links.json: the links an admin asked to guard and
 * in which mode. The pins in bpffs are what enforces; this file is what lets a daemon tell a
 * link that should be guarded but lost its pins (a reboot, bpffs unmounted) from one that was
 * never asked for. Written atomically and durably (temp file, fsync, rename, directory fsync).
 */

typedef struct StateLink {
        char *name;
        LinkMode mode;
} StateLink;

typedef struct State {
        StateLink *links;
        size_t n_links;
} State;

/*
 * Writes <dir>/<file> atomically and durably (write_file_atomic). The directory is not created:
 * it is made at start, and one that vanished later is an error to report, not to paper over.
 * On failure the journal gets one PS_MESSAGE_STATE_NOT_WRITABLE entry, *ret_error says which
 * file and why, and the return value is -EROFS whatever the cause (the cause is in the message
 * and in ERRNO=), so that callers can tell "the change could not be made durable" from every
 * other failure.
 */
int state_write_file(const char *dir, const char *file, const char *text, char **ret_error);

/* -ENOENT: no file (a first start). -EBADMSG: the file is corrupt; it was moved to
 * links.json.corrupt and *ret_error says why. */
int state_load(const char *dir, State *ret, char **ret_error);
int state_save(const char *dir, const State *s, char **ret_error);
void state_done(State *s);
int state_add(State *s, const char *name, LinkMode mode);
void state_remove(State *s, const char *name);
const StateLink *state_find(const State *s, const char *name);
const char *link_mode_request_to_string(LinkMode mode);
