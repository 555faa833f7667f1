/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * What the auto-ban policies keep in the state directory beside the ban snapshot:
 *   policies.json  the settings of the policies SetPolicy changed; they override [Bans]
 *                  for those policies (the file names each one it holds; removing it goes
 *                  back to [Bans]);
 *   offenders.json the repeat offenders (a source cut to its policy prefix, how many times it
 *                  was banned, when last), at most MaxRememberedOffenders=, the oldest
 *                  forgotten first; restored into the kernel's ban_offenders at start, so a
 *                  restart does not reset the growth of ban lengths.
 * Both are written atomically (write_file_atomic).
 */

#include <stddef.h>
#include <stdint.h>

#include "addr.h"
#include "conf.h"

#define BAN_POLICIES_FILE "policies.json"
#define BAN_OFFENDERS_FILE "offenders.json"

typedef struct BanOffender {
        Cidr source;
        uint32_t offenses;
        uint64_t last_usec; /* CLOCK_REALTIME of its last ban */
} BanOffender;

typedef struct BanOffenders {
        BanOffender *v; /* oldest first */
        size_t n, n_alloc;
} BanOffenders;

/* Writes the settings of the policies in mask (bit: enum ps_ban_policy) to policies.json. */
int ban_policies_save(const char *dir, const Config *c, unsigned mask);
/* Puts the settings stored in policies.json into c and their bits into *ret_mask; a missing
 * file changes nothing. A file that is not JSON is set aside (*.corrupt); one with a policy
 * this daemon would not write changes nothing; ret_error says why. */
int ban_policies_load(const char *dir, Config *c, unsigned *ret_mask, char **ret_error);

/* Records a ban of `source` (the offense count the kernel gave it), at `usec`; keeps at most
 * max offenders, forgetting the oldest first. */
int ban_offenders_note(BanOffenders *o, const Cidr *source, uint32_t offenses, uint64_t usec,
                       size_t max);
/* Forgets the offenders last banned before `usec`; returns how many. */
size_t ban_offenders_forget(BanOffenders *o, uint64_t usec);
int ban_offenders_save(const char *dir, const BanOffenders *o);
/* Reads offenders.json (the newest max of it); a missing file is an empty list. */
int ban_offenders_load(const char *dir, BanOffenders *o, size_t max, char **ret_error);
void ban_offenders_done(BanOffenders *o);
