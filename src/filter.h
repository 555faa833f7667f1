/* SPDX-License-Identifier: MIT */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "addr.h"

/*
 * A filter rule, with the Guarder's field names so that its JSON translates one to one.
 * Validation goes through JSON in every case (a bus a{sv} is turned into a JSON object first),
 * so the bus, Import and the rule files share one set of checks and one set of messages.
 */

typedef enum RuleType {
        RULE_BASIC,
        RULE_TCP,
        RULE_UDP,
        RULE_ICMP,
} RuleType;

typedef enum FilterAction {
        FILTER_DROP = 1, /* same values as enum ps_filter_action */
        FILTER_PASS = 2,
        FILTER_COUNT = 3,
} FilterAction;

typedef struct PortRange {
        uint16_t lo, hi; /* 0-65535 is "any" */
} PortRange;

#define PROTO_ANY (-1)
#define ICMP_ANY 255

typedef struct Filter {
        uint32_t id;
        RuleType rule_type;
        int protocol; /* PROTO_ANY or 0-255 */
        bool has_src, has_dst;
        Cidr src, dst;
        PortRange src_port, dst_port;
        uint8_t tcp_flags, tcp_flags_mask;
        uint8_t icmp_type, icmp_code; /* ICMP_ANY = any */
        bool has_inner_src, has_inner_dst;
        Cidr inner_src, inner_dst;
        int inner_protocol; /* PROTO_ANY or 0-255 */
        PortRange inner_src_port, inner_dst_port;
        FilterAction action;
        bool enabled;
        bool force; /* asked to override the lock-out guard; not stored */
        char *comment;
        int32_t priority;
        uint64_t timeout_sec;   /* 0: permanent */
        uint64_t expires_usec;  /* CLOCK_REALTIME; 0: permanent */
        uint64_t created_usec;  /* CLOCK_REALTIME */
        uint32_t slot;          /* kernel counter slot */
        struct FilterStore *store; /* the store holding it, for the counters; not owned */
        /* read from the kernel */
        uint64_t hits, bytes, last_hit_usec;
} Filter;

#define FILTER_COMMENT_MAX 1024
#define FILTER_PRIORITY_MIN (-1000000)
#define FILTER_PRIORITY_MAX 1000000
#define FILTER_TIMEOUT_MAX (366u * 86400u)

typedef enum FilterParseFlags {
        FILTER_PARSE_UPDATE = 1 << 0,   /* only the given fields change; `id` must match */
        FILTER_PARSE_IMPORT = 1 << 1,   /* accept `id` and the read-only fields of an export */
} FilterParseFlags;

void filter_init(Filter *f);
void filter_done(Filter *f);
Filter *filter_free(Filter *f);
int filter_copy(Filter *dst, const Filter *src);

/*
 * Reads fields from a JSON object into f (which holds the defaults, or the current rule for an
 * update). Unknown keys, wrong types and bad values are errors naming the field, the value and
 * what is accepted; on error f is unchanged.
 */
int filter_from_json(Filter *f, json_t *obj, FilterParseFlags flags, char **ret_error);
/* Every field, including the read-only ones. */
json_t *filter_to_json(const Filter *f);

const char *filter_action_to_string(FilterAction a);
const char *rule_type_to_string(RuleType t);
/* "23", "8000-8999" or "any" into buf. */
const char *port_range_to_string(PortRange r, char buf[static 16]);
int port_range_parse(const char *s, PortRange *ret);
static inline bool port_range_is_any(PortRange r) {
        return r.lo == 0 && r.hi == 65535;
}
