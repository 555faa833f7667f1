/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * What the verb families of packetscopectl share: the parsed command line, the verbs' entry
 * points, the typed reading of the daemon's replies (ctl-bus.c) and the output helpers
 * (ctl-output.c). The client only talks to the daemon over the bus.
 */

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <systemd/sd-bus.h>

#include "bus-names.h"
#include "format.h"
#include "rule.h"
#include "util.h"

/* Exit codes: 0 success, 1 the operation failed (bus error, daemon refused), 2 bad usage. */
#define EXIT_USAGE 2

#define TOP_DEFAULT         20u
#define TOP_MAX             PS_QUERY_LIMIT_MAX
#define OFFSET_MAX          (PS_QUERY_WINDOW_MAX - 1) /* offset + limit stay within the window */
#define MONITOR_TOP_DEFAULT 10u
#define INTERVAL_DEFAULT    (1 * USEC_PER_SEC)
#define INTERVAL_MIN        (100 * UINT64_C(1000))
#define INTERVAL_MAX        (3600 * USEC_PER_SEC)
/* A rule file or import document: read whole, so that the daemon's own limit is what it says. */
#define INPUT_MAX           (16u * 1024 * 1024)

typedef enum JsonMode {
        JSON_OFF,
        JSON_PRETTY,
        JSON_SHORT,
} JsonMode;

/* Verb-specific options, as bits, so that each verb states which ones it accepts. */
typedef enum OptionIndex {
        OPT_INDEX_TOP,
        OPT_INDEX_OFFSET,
        OPT_INDEX_SORT,
        OPT_INDEX_PROTOCOL,
        OPT_INDEX_ADDRESS,
        OPT_INDEX_PORT,
        OPT_INDEX_LINK,
        OPT_INDEX_FAMILY,
        OPT_INDEX_STATE,
        OPT_INDEX_TYPE,
        OPT_INDEX_MODE,
        OPT_INDEX_INTERVAL,
        OPT_INDEX_COUNT,
        OPT_INDEX_ENSURE,
        OPT_INDEX_REPLACE,
        OPT_INDEX_CONFIRM,
        OPT_INDEX_YES,
        OPT_INDEX_JSON_OUTPUT,
        OPT_INDEX_FRESH,
        OPT_INDEX_DUPLICATES,
        OPT_INDEX_FOR,
        OPT_INDEX_REASON,
        OPT_INDEX_ORIGIN,
        /* Then the rule field options: the fields of the rule table (rule.h) with an option. */
        _OPT_INDEX_RULE_FIRST,
} OptionIndex;

#define OPT_BIT(n) (UINT64_C(1) << (n))
#define OPT_TOP         OPT_BIT(OPT_INDEX_TOP)
#define OPT_OFFSET      OPT_BIT(OPT_INDEX_OFFSET)
#define OPT_SORT        OPT_BIT(OPT_INDEX_SORT)
#define OPT_PROTOCOL    OPT_BIT(OPT_INDEX_PROTOCOL)
#define OPT_ADDRESS     OPT_BIT(OPT_INDEX_ADDRESS)
#define OPT_PORT        OPT_BIT(OPT_INDEX_PORT)
#define OPT_LINK        OPT_BIT(OPT_INDEX_LINK)
#define OPT_FAMILY      OPT_BIT(OPT_INDEX_FAMILY)
#define OPT_STATE       OPT_BIT(OPT_INDEX_STATE)
#define OPT_TYPE        OPT_BIT(OPT_INDEX_TYPE)
#define OPT_MODE        OPT_BIT(OPT_INDEX_MODE)
#define OPT_INTERVAL    OPT_BIT(OPT_INDEX_INTERVAL)
#define OPT_COUNT       OPT_BIT(OPT_INDEX_COUNT)
#define OPT_ENSURE      OPT_BIT(OPT_INDEX_ENSURE)
#define OPT_REPLACE     OPT_BIT(OPT_INDEX_REPLACE)
#define OPT_CONFIRM     OPT_BIT(OPT_INDEX_CONFIRM)
#define OPT_YES         OPT_BIT(OPT_INDEX_YES)
#define OPT_JSON_OUTPUT OPT_BIT(OPT_INDEX_JSON_OUTPUT)
#define OPT_FRESH       OPT_BIT(OPT_INDEX_FRESH)
#define OPT_DUPLICATES  OPT_BIT(OPT_INDEX_DUPLICATES)
#define OPT_FOR         OPT_BIT(OPT_INDEX_FOR)
#define OPT_REASON      OPT_BIT(OPT_INDEX_REASON)
#define OPT_ORIGIN      OPT_BIT(OPT_INDEX_ORIGIN)

typedef struct Arguments {
        JsonMode json;
        bool json_explicit;     /* --json=MODE: the output mode, whatever else --json means */
        const char *json_next;  /* the word after a bare --json: the rule, in the old spelling */
        const char *rule_text;  /* --rule JSON */
        const char *rule_file;  /* --rule-file FILE */
        bool legend;
        bool ask_password;
        bool pager;             /* --no-pager turns it off */
        const char *color;      /* --color=auto|always|never */
        uint64_t given;         /* OPT_* bits seen on the command line */
        uint64_t top;
        uint64_t offset;
        const char *sort;
        char protocol[16];
        const char *address;
        uint64_t port;
        const char *link;
        const char *family;
        const char *state;
        uint64_t icmp_type;
        const char *mode;
        const char *duplicates;  /* import: keep (the default, with a warning) or skip */
        uint64_t interval_usec;
        uint64_t count;
        json_t *fields;         /* the rule field options, as rule keys and JSON values */
        json_t *rule;           /* the rule of add/update/test: --json JSON with the fields on top */
        uint32_t filter_id;
        uint64_t confirm_sec;
        uint64_t for_usec;      /* ban --for: 0 until unbanned */
        const char *reason;     /* ban --reason */
        const char *origin;     /* bans --origin */
} Arguments;

extern Arguments arg;

/* packetscopectl.c */
int usage_error(const char *format, ...) __attribute__((format(printf, 1, 2)));
int parse_choice(const char *name, const char *value, const char *const *choices, const char **ret);
int parse_protocol(const char *value, char *buf, size_t size);

/* ---- ctl-bus.c: calls, errors, and typed reading of a{sv} replies ---- */

/* A failed bus call: the daemon's own error name and text, which say what was wrong. */
int bus_error(const char *what, const sd_bus_error *error, int r);
/* A method call on the daemon. A failure is reported in the daemon's words, unless the caller
 * looks at it first: then error is filled in and nothing is printed. */
int bus_call(sd_bus *bus, const char *path, const char *interface, const char *method,
             sd_bus_error *error, sd_bus_message **ret, const char *types, ...);

typedef enum BusFieldKind {
        BUS_FIELD_U64,    /* uint64_t: any integer type, a negative value reads 0 */
        BUS_FIELD_I64,    /* int64_t: any integer type */
        BUS_FIELD_DOUBLE, /* double: 'd' */
        BUS_FIELD_STRING, /* const char *, valid as long as the message: 's', 'o', 'g' */
        BUS_FIELD_BOOL,   /* bool: 'b' */
        BUS_FIELD_CUSTOM, /* read() takes the variant's content, of signature contents */
} BusFieldKind;

typedef struct BusField {
        const char *key;
        BusFieldKind kind;
        size_t offset;
        /* BUS_FIELD_CUSTOM: reads the variant's content; 1 when stored, 0 when skipped. */
        int (*read)(sd_bus_message *m, const char *contents, void *field);
} BusField;

/* How one a{sv} maps onto a struct: bit i of the uint64_t at seen_offset says fields[i] came. */
typedef struct BusDict {
        const BusField *fields;
        size_t n_fields;
        size_t seen_offset;
} BusDict;

#define BUS_DICT(f, type) \
        { .fields = (f), .n_fields = ELEMENTSOF(f), .seen_offset = offsetof(type, seen) }
#define BUS_SEEN(s, i) (((s)->seen & (UINT64_C(1) << (i))) != 0)

/* An entry of a{sv} that no field of the table names; the variant is next in m. */
typedef int (*BusUnknownFn)(sd_bus_message *m, const char *key, void *userdata);

/* One a{sv} into ret (its fields keep what they held unless the dictionary has them). A value of
 * another type than its field's is skipped, as is an unknown key unless unknown() takes it. */
int bus_read_dict(sd_bus_message *m, const BusDict *d, void *ret, BusUnknownFn unknown,
                  void *userdata);
/* For a BUS_FIELD_CUSTOM reader: enters the array of the variant if its signature is the one
 * expected, or skips the value. 1 when entered, 0 when skipped. */
int bus_enter_array(sd_bus_message *m, const char *contents, const char *signature);
/* aa{sv} into a new array of rows of row_size bytes, each starting as a copy of initial. */
int bus_read_rows(sd_bus_message *m, const BusDict *d, size_t row_size, const void *initial,
                  void **ret_rows, size_t *ret_n);

/* The next value of m (of any type) as JSON, for --json output: dictionaries become objects with
 * their keys as text, other arrays and structs arrays, variants their content. */
int json_from_bus(sd_bus_message *m, json_t **ret);
/* The whole of a reply (its first value), from its start, as JSON. */
int json_from_reply(sd_bus_message *m, const char *what, json_t **ret);

/* The reply (from its start) printed as JSON, for --json. */
int print_reply_json(sd_bus_message *reply, const char *what);

/* Replies kept together, for rows whose strings live in them. */
typedef struct BusReplies {
        sd_bus_message **replies;
        size_t n;
} BusReplies;

void bus_replies_done(BusReplies *l);
/* Appends reply (the list takes the reference on success). */
int bus_replies_push(BusReplies *l, sd_bus_message *reply);

int call_get_all(sd_bus *bus, const char *path, const char *interface, bool missing_ok,
                 sd_bus_message **ret);

/* ---- ctl-output.c ---- */
int print_json(const json_t *j);
/* Whether a verb that prints JSON only on request was asked for it (--json or --json-output). */
bool json_output(void);
/* The JSON key of a bus dictionary key: times gain their unit (first_seen_usec). */
const char *json_key_with_unit(const char *key);
/* "Label: value" lines with the labels right-aligned, as hostnamectl prints them. */
Table *fields_new(void);
int field_add(Table *t, const char *label, const char *format, ...)
        __attribute__((format(printf, 3, 4)));
int field_add_u64(Table *t, bool present, const char *label, uint64_t value);
/* The legend under a list: "No …" alone, or an empty line and "N things tail." */
void print_count_legend(size_t n, const char *none, const char *singular, const char *plural,
                        const char *tail);
/* Aligns the columns of mask (bit i: column i) to the right. */
void table_align_right(Table *t, uint32_t mask);
void format_icmp_type(char *buf, size_t size, bool ipv6, unsigned type);
void format_timestamp(char *buf, size_t size, uint64_t usec);
size_t output_columns(void);
char *truncate_text(const char *s, size_t width);
/* A table as wide as the terminal at most: columns with a priority go first (table.h). */
void table_fit(Table *t);

typedef enum Color {
        COLOR_RED,      /* drops, resets, what went wrong */
        COLOR_GREEN,    /* established, passed */
        COLOR_GREY,     /* disabled */
} Color;

/* --color, NO_COLOR and whether standard output is a terminal, decided once. */
bool colors_enabled(void);
const char *color_on(Color c);
const char *color_off(void);
int table_add_colored(Table *t, Color c, const char *text);

/* The pager for the verbs that print much, on a terminal only. */
void pager_open(void);
void pager_close(void);

/* ---- ctl-agent.c: pkttyagent around a call that changes something ---- */
int polkit_agent_open(void);
void polkit_agent_close(void);

/* ---- ctl-monitor.c: GetStatistics for stats, status and monitor ---- */
#define N_PROTOCOL_COUNTERS 5 /* tcp, udp, icmp, icmpv6, other */

/* The keys of GetStatistics this client shows, in the order of its table: BUS_SEEN() bits. */
typedef enum StatisticsKey {
        STAT_PACKETS,
        STAT_BYTES,
        STAT_PASSED,
        STAT_DROPPED,
        STAT_MALFORMED,
        STAT_FRAGMENTS,
        STAT_VLAN,
        STAT_IPV4,
        STAT_IPV6,
        STAT_NON_IP,
        STAT_ICMP_ERRORS,
        STAT_FLOW_UPDATE_FAILURES,
        STAT_FLOWS,
        STAT_ICMP_ENTRIES,
        STAT_LINKS,
        STAT_RUN_TIME_NS,
        STAT_RUN_COUNT,
        STAT_PPS,
        STAT_BPS,
        STAT_PROTOCOL_PACKETS,  /* then _BYTES, and so on for each of N_PROTOCOL_COUNTERS */
        STAT_ICMP_TYPES = STAT_PROTOCOL_PACKETS + 2 * N_PROTOCOL_COUNTERS,
        STAT_ICMPV6_TYPES,
        _STAT_MAX,
} StatisticsKey;

/* The a{st} of packets per ICMP type, in the order the daemon sent them. */
typedef struct IcmpTypeCounts {
        uint8_t type[256];
        uint64_t packets[256];
        size_t n;
} IcmpTypeCounts;

typedef struct Statistics {
        uint64_t seen;
        uint64_t packets, bytes, passed, dropped, malformed, fragments, vlan, ipv4, ipv6, non_ip;
        uint64_t icmp_errors, flow_update_failures, flows, icmp_entries, links;
        uint64_t run_time_ns, run_count;
        double pps, bps;
        uint64_t protocol_packets[N_PROTOCOL_COUNTERS], protocol_bytes[N_PROTOCOL_COUNTERS];
        IcmpTypeCounts icmp_types, icmpv6_types;
        char **unknown;         /* key, value as JSON, key, …: what a newer daemon adds */
        size_t n_unknown;
} Statistics;

Statistics *statistics_free(Statistics *s);
static inline void statistics_freep(Statistics **s) {
        statistics_free(*s);
}
int statistics_read(sd_bus_message *reply, Statistics **ret);
int call_get_statistics(sd_bus *bus, sd_bus_message **ret);
int fields_add_traffic(Table *t, const Statistics *s);

/* ---- ctl-connections.c ---- */

/* A row of Connections.List, Connections.ListIcmp or Filters.Test: the keys of both kinds. */
typedef struct ConnectionRow {
        uint64_t seen;
        const char *family, *protocol, *src, *dst, *state, *link;
        uint64_t ip_protocol, sport, dport, packets, bytes, last_seen, tcp_flags;
        double pps, bps;
        uint64_t type, code;
        bool error;
        const char *inner_protocol, *inner_src, *inner_dst;
        uint64_t inner_ip_protocol, inner_sport, inner_dport;
        uint64_t rank_age_usec; /* only on rows the daemon's ranked view chose */
} ConnectionRow;

int connection_rows_read(sd_bus_message *reply, ConnectionRow **ret, size_t *ret_n);
bool connection_row_is_icmp(const ConnectionRow *row);
int new_list_call(sd_bus *bus, bool icmp, uint32_t default_limit, sd_bus_message **ret);
int render_connections(FILE *f, const ConnectionRow *rows, size_t n, uint64_t now, bool header);
int render_icmp(FILE *f, const ConnectionRow *rows, size_t n, uint64_t now, bool header);

/* ---- ctl-rule-options.c: a rule from --json and the field options, to a{sv} ---- */
size_t n_rule_options(void);
const char *rule_option_name(size_t i);
bool rule_option_has_value(size_t i);
int rule_option_parse(size_t i, const char *value);
#define OPT_RULE_FIELDS (~(OPT_BIT(_OPT_INDEX_RULE_FIRST) - 1))
int rule_check(const json_t *rule, char **ret_error);
int append_rule(sd_bus_message *m, const json_t *rule, bool skip_read_only);
int read_input(const char *name, char **ret);
int build_rule(const char *verb, const char *text, bool from_file);

/* ---- the verbs ---- */
int verb_status(sd_bus *bus, char **args, int n_args);
int verb_attach(sd_bus *bus, char **args, int n_args);
int verb_detach(sd_bus *bus, char **args, int n_args);
int verb_connections(sd_bus *bus, char **args, int n_args);
int verb_icmp(sd_bus *bus, char **args, int n_args);
int verb_stats(sd_bus *bus, char **args, int n_args);
int verb_monitor(sd_bus *bus, char **args, int n_args);
int verb_filter_list(sd_bus *bus, char **args, int n_args);
int verb_filter_show(sd_bus *bus, char **args, int n_args);
int verb_filter_add(sd_bus *bus, char **args, int n_args);
int verb_filter_update(sd_bus *bus, char **args, int n_args);
int verb_filter_delete(sd_bus *bus, char **args, int n_args);
int verb_filter_enable(sd_bus *bus, char **args, int n_args);
int verb_filter_disable(sd_bus *bus, char **args, int n_args);
int verb_filter_import(sd_bus *bus, char **args, int n_args);
int verb_filter_export(sd_bus *bus, char **args, int n_args);
int verb_filter_test(sd_bus *bus, char **args, int n_args);
int verb_filter_apply(sd_bus *bus, char **args, int n_args);
int verb_filter_confirm(sd_bus *bus, char **args, int n_args);
int verb_filter_rollback(sd_bus *bus, char **args, int n_args);

/* ctl-ai.c: packetscopectl [OPTIONS] ai VERB [ARGS] [OPTIONS]; the whole command line. */
int ctl_ai_main(int argc, char *argv[]);
int verb_health(sd_bus *bus, char **args, int n_args);
/* ctl-health.c: the words after "health", checked before anything is sent. */
int health_check_args(char **args, int n_args);
/* ctl-bans.c */
int verb_ban(sd_bus *bus, char **args, int n_args);
int verb_unban(sd_bus *bus, char **args, int n_args);
int verb_bans(sd_bus *bus, char **args, int n_args);
int verb_allowlist(sd_bus *bus, char **args, int n_args);
int verb_autoban(sd_bus *bus, char **args, int n_args);
int verb_panic(sd_bus *bus, char **args, int n_args);
