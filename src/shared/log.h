/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <syslog.h>

/*
 * Logging for the daemon: structured records to the journal (MESSAGE_ID=, INTERFACE=, ERRNO=),
 * or plain lines to stderr when there is no journal. Only the boundary logs above debug.
 */

/* MESSAGE_IDs, explained in systemd/packetscope.catalog. */
#define PS_MESSAGE_STARTED      "8a1f2d6c4b7e4e0f9a35c2d1e6b70a01"
#define PS_MESSAGE_STOPPED      "8a1f2d6c4b7e4e0f9a35c2d1e6b70a02"
#define PS_MESSAGE_ATTACHED     "8a1f2d6c4b7e4e0f9a35c2d1e6b70a03"
#define PS_MESSAGE_DETACHED     "8a1f2d6c4b7e4e0f9a35c2d1e6b70a04"
#define PS_MESSAGE_ADOPTED      "8a1f2d6c4b7e4e0f9a35c2d1e6b70a05"
#define PS_MESSAGE_CONFIG_ERROR "8a1f2d6c4b7e4e0f9a35c2d1e6b70a06"
#define PS_MESSAGE_ATTACH_FAILED "8a1f2d6c4b7e4e0f9a35c2d1e6b70a07"
#define PS_MESSAGE_LINK_GONE    "8a1f2d6c4b7e4e0f9a35c2d1e6b70a08"
#define PS_MESSAGE_STATE_CORRUPT "8a1f2d6c4b7e4e0f9a35c2d1e6b70a09"
#define PS_MESSAGE_POLKIT_DENIED "8a1f2d6c4b7e4e0f9a35c2d1e6b70a0a"
#define PS_MESSAGE_FILTER_EXPIRED "8a1f2d6c4b7e4e0f9a35c2d1e6b70a0b"
#define PS_MESSAGE_FILTERS_CHANGED "8a1f2d6c4b7e4e0f9a35c2d1e6b70a0c"
#define PS_MESSAGE_PACKET_DROPPED "8a1f2d6c4b7e4e0f9a35c2d1e6b70a0d"
#define PS_MESSAGE_ROLLBACK "8a1f2d6c4b7e4e0f9a35c2d1e6b70a0e"
#define PS_MESSAGE_STATE_NOT_WRITABLE "8a1f2d6c4b7e4e0f9a35c2d1e6b70a40"
#define PS_MESSAGE_DEGRADED "8a1f2d6c4b7e4e0f9a35c2d1e6b70a41"
#define PS_MESSAGE_AI_JOB "8a1f2d6c4b7e4e0f9a35c2d1e6b70a1a"
#define PS_MESSAGE_ANOMALY_STARTED "8a1f2d6c4b7e4e0f9a35c2d1e6b70a50"
#define PS_MESSAGE_ANOMALY_ENDED "8a1f2d6c4b7e4e0f9a35c2d1e6b70a51"
#define PS_MESSAGE_RELOADED "8a1f2d6c4b7e4e0f9a35c2d1e6b70a20"
/* Panic mode turned on or off (PANIC=1/0), or found on at start. */
#define PS_MESSAGE_PANIC "8a1f2d6c4b7e4e0f9a35c2d1e6b70c01"
/* Bans: one per kind of event, with ADDRESS=, ORIGIN=, REASON=, UNTIL=, POLICY=, OFFENSES=. */
#define PS_MESSAGE_BAN          "8a1f2d6c4b7e4e0f9a35c2d1e6b70b01"
#define PS_MESSAGE_UNBAN        "8a1f2d6c4b7e4e0f9a35c2d1e6b70b02"
#define PS_MESSAGE_BAN_EXPIRED  "8a1f2d6c4b7e4e0f9a35c2d1e6b70b03"
#define PS_MESSAGE_BAN_POLICY   "8a1f2d6c4b7e4e0f9a35c2d1e6b70b04"
#define PS_MESSAGE_BANS_FILLING "8a1f2d6c4b7e4e0f9a35c2d1e6b70b05"

typedef enum LogTarget {
        LOG_TARGET_AUTO,
        LOG_TARGET_JOURNAL,
        LOG_TARGET_STDERR,
} LogTarget;

int log_parse_target(const char *s, LogTarget *ret);
int log_parse_level(const char *s, int *ret);
void log_setup(LogTarget target, int max_level);
int log_get_max_level(void);
/* Whether records go to the journal (where they can be read back), not to stderr. */
bool log_to_journal(void);

/* A journal entry with MESSAGE_ID= and INTERFACE= where given, and more journal fields:
 * `fields` is a NULL-terminated list of "KEY=value" (or NULL). Returns -abs(error) (or 0), so
 * that callers can `return log_..._errno(r, ...)`. */
int log_struct_fields(int level, int error, const char *message_id, const char *ifname,
                      const char *const *fields, const char *format, ...)
        __attribute__((format(printf, 6, 7)));

/* The same without more fields. */
#define log_struct_internal(level, error, message_id, ifname, ...) \
        log_struct_fields(level, error, message_id, ifname, NULL, __VA_ARGS__)

/* A journal entry about one filter rule: MESSAGE_ID=, FILTER_ID= and the message. */
int log_filter(int level, const char *message_id, uint32_t filter_id, const char *format, ...)
        __attribute__((format(printf, 4, 5)));

#define log_full(level, ...) log_struct_internal(level, 0, NULL, NULL, __VA_ARGS__)
#define log_debug(...)   log_full(LOG_DEBUG, __VA_ARGS__)
#define log_info(...)    log_full(LOG_INFO, __VA_ARGS__)
#define log_notice(...)  log_full(LOG_NOTICE, __VA_ARGS__)
#define log_warning(...) log_full(LOG_WARNING, __VA_ARGS__)
#define log_error(...)   log_full(LOG_ERR, __VA_ARGS__)
#define log_error_errno(e, ...)   log_struct_internal(LOG_ERR, e, NULL, NULL, __VA_ARGS__)
#define log_warning_errno(e, ...) log_struct_internal(LOG_WARNING, e, NULL, NULL, __VA_ARGS__)
#define log_debug_errno(e, ...)   log_struct_internal(LOG_DEBUG, e, NULL, NULL, __VA_ARGS__)
