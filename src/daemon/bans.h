/* SPDX-License-Identifier: MIT */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "addr.h"
#include "ban-maps.h"
#include "bus-names.h"
#include "conf.h"
#include "rule.h" /* cidr_to_string() */

/*
 * The ban table: addresses and ranges whose packets the XDP program drops, with the allowlist
 * that no ban may cover. Three copies agree: the table in memory (an open-addressing index over
 * a dense array, so that a million bans cost about 60 bytes each), $STATE_DIRECTORY/bans.snapshot
 * (written atomically after every change) and the kernel maps shared by every guarded link,
 * pinned in <bpffs-root>/:bans. The kernel enforces the expiry on its own clock, so a ban ends
 * on time with the daemon stopped; the daemon reaps what expired and says so.
 */

/* As the kernel stores them (enum ps_ban_origin). */
typedef enum BanOrigin {
        BAN_ORIGIN_MANUAL = PS_BAN_ORIGIN_MANUAL,
        BAN_ORIGIN_AUTO = PS_BAN_ORIGIN_AUTO, /* auto:<policy> */
        BAN_ORIGIN_IMPORT = PS_BAN_ORIGIN_IMPORT,
        BAN_ORIGIN_AI = PS_BAN_ORIGIN_AI,
        _BAN_ORIGIN_MAX,
} BanOrigin;

typedef struct Ban {
        Cidr cidr;
        uint32_t id;
        uint64_t created_usec; /* CLOCK_REALTIME */
        uint64_t expires_usec; /* CLOCK_REALTIME; 0: until unbanned */
        uint32_t offenses;
        uint8_t origin; /* BanOrigin */
        uint8_t policy; /* for BAN_ORIGIN_AUTO */
        bool unseen;    /* read from the state directory, not yet found in the kernel */
        char *reason;   /* NULL when none was given */
} Ban;

/* Why a ban ended, as the Unbanned signal and the journal say it. */
typedef enum BanEnd {
        BAN_END_MANUAL,
        BAN_END_EXPIRED,
} BanEnd;

typedef struct BanStore BanStore;

/* Told of every ban made and ended; a change of more than BAN_TELL_EACH_MAX bans at once is
 * told by one batch() instead (a signal and a journal record per ban would take longer than
 * the change itself at 100,000 bans). changed() follows every change of the count. */
#define BAN_TELL_EACH_MAX 1000u
typedef struct BanCallbacks {
        void (*banned)(BanStore *s, const Ban *b, void *userdata);
        void (*unbanned)(BanStore *s, const Ban *b, BanEnd why, void *userdata);
        void (*batch)(BanStore *s, size_t n_banned, size_t n_unbanned, BanEnd why,
                      void *userdata);
        void (*changed)(BanStore *s, void *userdata);
        /* A policy banned (or, shadow, would have banned) a source; until 0 for shadow. */
        void (*policy)(BanStore *s, const char *policy, const char *address, bool shadow,
                       uint32_t value, uint32_t offenses, uint64_t until_usec, void *userdata);
        void *userdata;
} BanCallbacks;

#define BAN_REASON_MAX 256u
#define BAN_SECONDS_MAX PS_BAN_SECONDS_MAX /* ten years */
#define BAN_ALLOWLIST_MAX 1024u

/* Counters of the store itself, for GetStatistics and the bench. */
typedef struct BanStoreInfo {
        size_t n_bans, n_exact4, n_exact6, n_cidr;
        uint32_t capacity4, capacity6, capacity_cidr;
        size_t n_allowlist;
        uint64_t n_refused_full; /* bans refused since the start: their table was full */
} BanStoreInfo;

int ban_store_new(BanStore **ret);
BanStore *ban_store_free(BanStore *s);
void ban_store_set_callbacks(BanStore *s, const BanCallbacks *cb);

/*
 * Opens or creates the pinned maps, loads the snapshot and reconciles both: a ban in the file is
 * put in the maps, a ban in the maps that the file lacks is kept (an auto-ban made while the
 * daemon was down, or a change whose file write was cut short): a restart never unbans anyone.
 * Expired bans go. Borrowed: the loop, the strings and the config.
 */
int ban_store_start(BanStore *s, sd_event *event, const char *state_dir, const char *bpffs_root,
                    Config *config, char **ret_error);

/* A clean stop (SIGTERM): a journal long enough to slow the next start down is folded into
 * the snapshot now (one write of the table, bounded by its size). Logs what it did. */
void ban_store_stop(BanStore *s);

/* Writes the auto-ban policies and URL patterns of the config to the kernel. */
int ban_store_apply_policies(BanStore *s);
/* SetPolicy: one policy's mode and thresholds, for the running daemon (packetscope.conf is
 * what a restart applies). */
int ban_store_set_policy(BanStore *s, unsigned policy, const BanPolicyConf *p, char **ret_error);

/* The maps every link's program shares (LinkSetup.bans). */
BanMaps *ban_store_maps(BanStore *s);

/* A ban request, as read from the bus or an import. */
typedef struct BanRequest {
        Cidr cidr;
        uint64_t seconds; /* 0: until unbanned */
        uint64_t expires_usec; /* import: an absolute time instead of seconds (0: none) */
        const char *reason;
        BanOrigin origin;
        uint8_t policy;
        uint32_t offenses; /* 0: counted by the store */
} BanRequest;

/*
 * Errors of the changes, each with a message in *ret_error saying what is accepted:
 *   -EPERM   the ban covers an allowlisted address (Error.Allowlisted)
 *   -ENOSPC  the kernel table is full (Error.BanTableFull)
 *   -ENOENT  no such ban (Error.NoSuchBan)
 *   -EROFS   the state could not be written; the kernel is as it was (Error.StateNotWritable)
 *   -EINVAL  bad input
 */
int ban_store_ban(BanStore *s, const BanRequest *req, const Ban **ret, char **ret_error);
/* All or nothing. */
int ban_store_ban_batch(BanStore *s, const BanRequest *reqs, size_t n, char **ret_error);
int ban_store_unban(BanStore *s, const Cidr *c, char **ret_error);
int ban_store_unban_batch(BanStore *s, const Cidr *cs, size_t n, char **ret_error);

const Ban *ban_store_find(BanStore *s, const Cidr *c);
const Ban *ban_store_find_id(BanStore *s, uint32_t id);
/* The ban that decides for this address (the longest prefix), or NULL. */
const Ban *ban_store_covering(BanStore *s, uint8_t family, const uint32_t addr[4]);
/* The allowlist entry (or management address) that covers any part of c, or NULL. */
const Cidr *ban_store_allowlisted(BanStore *s, const Cidr *c);

size_t ban_store_count(BanStore *s);
/* How many bans of each BanOrigin there are: a walk over all of them. */
void ban_store_count_origins(BanStore *s, size_t ret[_BAN_ORIGIN_MAX]);
const Ban *ban_store_at(BanStore *s, size_t i);
void ban_store_info(BanStore *s, BanStoreInfo *ret);

/* Bans made and ended since the daemon started (Bans.Totals): a re-ban that extends a ban is
 * not counted again; an import that replaces the table counts what it drops as unbanned. */
typedef struct BanTotals {
        uint64_t created[_BAN_ORIGIN_MAX]; /* all but BAN_ORIGIN_AUTO */
        uint64_t created_auto[_PS_BAN_POLICY_MAX];
        uint64_t expired, unbanned;
} BanTotals;
void ban_store_totals(BanStore *s, BanTotals *ret);

/* Per-ban counters from the kernel (0 when the entry has none). */
typedef struct BanCounters {
        uint64_t packets, bytes, last_hit_usec;
} BanCounters;
int ban_store_counters(BanStore *s, const Ban *b, BanCounters *ret);

/* What the AI summary says of the bans: how many by origin, the `top` bans that dropped the
 * most packets (one pass over the kernel's tables) and the `top` newest auto-bans, each with
 * its origin, reason (64 characters at most) and offense count. NULL without memory. */
json_t *ban_store_summary(BanStore *s, size_t top);

int ban_store_allowlist_add(BanStore *s, const Cidr *c, char **ret_error);
int ban_store_allowlist_remove(BanStore *s, const Cidr *c, char **ret_error);
size_t ban_store_allowlist(BanStore *s, const Cidr **ret);

/* Reaps the bans whose time is over (the kernel already stopped enforcing them). */
int ban_store_reap(BanStore *s);

/* The export document (the format of bans.json): {"version": 1, "bans": [...]} */
json_t *ban_store_export(BanStore *s);
/* Reads an export document into requests (strings borrowed from *ret_doc). mode "merge" or
 * "replace". */
int ban_parse_import(const char *text, BanRequest **ret, size_t *ret_n, json_t **ret_doc,
                     char **ret_error);
int ban_store_replace_all(BanStore *s, const BanRequest *reqs, size_t n, char **ret_error);

/*
 * Reads ban lines (BanFile) into requests of this origin, checked as the change checks them
 * (address, duration, reason, allowlist), every line before any is applied. A line is
 *     ADDRESS[/PREFIX] [DURATION [REASON...]]
 * DURATION one word, a time span ("3600", "90s", "12h", "7d"; 0 or none: until unbanned), the
 * rest of the line the reason; blank lines and lines starting with '#' are skipped. text holds
 * size bytes and a NUL after them, and is changed in place (the reasons point into it).
 * An error names the line (from 1) and what is accepted: -EADDRNOTAVAIL a bad address, -EPERM
 * an allowlisted one, -E2BIG more than PS_BANS_BATCH_MAX bans, -EMSGSIZE more than
 * PS_BANS_FILE_MAX_BYTES bytes, -EINVAL the rest.
 */
int ban_store_parse_lines(BanStore *s, char *text, size_t size, BanOrigin origin,
                          BanRequest **ret, size_t *ret_n, char **ret_error);

const char *ban_origin_to_string(const Ban *b, char *buf, size_t size);
int ban_origin_from_string(const char *s, BanOrigin *ret_origin, uint8_t *ret_policy);
/* "connections", "syn-rate", "port-scan", "url" for enum ps_ban_policy; NULL beyond. */
const char *ban_policy_to_string(unsigned p);
