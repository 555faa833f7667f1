/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "conf.h"

/*
 * Panic mode (packetscoped(8), PANIC MODE): one flag that makes the program of every guarded
 * link drop everything but management traffic (guard.h, "Panic mode"). The flag and the
 * management ports and addresses live in maps every link's program shares, pinned under
 * <bpffs-root>/:panic/, so that panic mode holds while the daemon is down; the flag is also
 * kept in $STATE_DIRECTORY/panic.json, so that it survives a reboot. On start the file wins
 * over the pinned flag; without a file the pinned flag stays and is recorded.
 */
typedef struct Panic {
        int conf_fd;           /* array[1] struct ps_panic */
        int addr4_fd, addr6_fd; /* LPM tries of ManagementAddresses= */
        bool on;
        char *state_dir;
} Panic;

#define PANIC_INIT ((Panic) { .conf_fd = -1, .addr4_fd = -1, .addr6_fd = -1 })

/* Opens or creates the maps, reads panic.json, writes the management ports and addresses of
 * `c` and the flag into the maps. *ret_error says what failed. */
int panic_start(Panic *p, const char *state_dir, const char *bpffs_root, const Config *c,
                char **ret_error);
void panic_done(Panic *p);

/* The flag into the kernel, then into panic.json. When the file cannot be written the kernel
 * flag is put back and -EROFS returned (*ret_error says why), as other changes do. */
int panic_set(Panic *p, bool on, char **ret_error);

/* The management ports and addresses of `c` into the maps (at start and on reload). */
int panic_apply_config(Panic *p, const Config *c);
