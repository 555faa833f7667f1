/* SPDX-License-Identifier: MIT */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-bus.h>

#include "addr.h"
#include "util.h"

/*
 * A filter rule, with the Guarder's field names so that its JSON translates one to one.
 *
 * Every field is described once, in the table of rule.c (RuleField): its key in JSON and in the
 * bus a{sv}, its Filter property, its client option, its bus type, its default and its parse
 * and format functions. The JSON reader and writer, the a{sv} writer, the Filter properties and
 * their PropertiesChanged, the list of known fields and the defaults all walk that table.
 * Validation goes through JSON in every case (a bus a{sv} is turned into a JSON object first),
 * so the bus, Import and the rule files share one set of checks and one set of messages.
 */

typedef enum RuleType {
        RULE_BASIC,
        RULE_TCP,
        RULE_UDP,
        RULE_ICMP,
} RuleType;

/* What a matching rule does with the packet: the same values as enum ps_filter_action. */
typedef enum FilterVerdict {
        FILTER_DROP = 1,
        FILTER_PASS = 2,
        FILTER_COUNT = 3,
} FilterVerdict;

typedef struct PortRange {
        uint16_t lo, hi; /* 0-65535 is "any" */
} PortRange;

#define PROTO_ANY (-1)
#define ICMP_ANY 255

typedef struct FilterStore FilterStore;

typedef struct FilterText FilterText;

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
        FilterVerdict action;
        bool enabled;
        bool log;   /* its sampled drops go to the journal and the Dropped signal */
        bool force; /* asked to override the lock-out guard; not stored */
        char *comment;
        int32_t priority;
        uint64_t timeout_sec;   /* 0: permanent */
        uint64_t expires_usec;  /* CLOCK_REALTIME; 0: permanent */
        uint64_t created_usec;  /* CLOCK_REALTIME */
        uint32_t slot;          /* kernel counter slot */
        FilterStore *store;     /* the store holding it, for the counters; not owned */
        FilterText *text;       /* its stored form, shared by its copies (filter_text_get) */
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
/* A new rule holding the defaults. */
Filter *filter_new(void);
int filter_copy(Filter *dst, const Filter *src);

/*
 * The daemon keeps each rule's stored text (one element of filters.json) with the rule, so that
 * a change of one rule among 100,000 writes the file without serialising the 99,999 others
 * again. filter_text_get() returns it only while every field it was made from still holds the
 * value it had (a changed copy gets NULL); counters and `store` do not count.
 */
const char *filter_text_get(const Filter *f);
int filter_text_set(Filter *f, const char *text);
static inline void filter_freep(Filter **f) {
        filter_free(*f);
}
#define _cleanup_filter_ _cleanup_(filter_freep)

/* An owned array of owned rules. */
typedef struct FilterList {
        Filter **rules;
        size_t n;
} FilterList;

void filter_list_free(Filter **rules, size_t n);
void filter_list_done(FilterList *l);
/* Appends f (ownership passes to the list on success). */
int filter_list_push(FilterList *l, Filter *f);
#define _cleanup_filter_list_ _cleanup_(filter_list_done)

#define _cleanup_json_ _cleanup_(json_decrefp)

/*
 * Reads fields from a JSON object into f (which holds the defaults, or the current rule for an
 * update). Unknown keys, wrong types and bad values are errors naming the field, the value and
 * what is accepted; on error f is unchanged.
 */
int filter_from_json(Filter *f, json_t *obj, FilterParseFlags flags, char **ret_error);
/*
 * Every field, including the read-only ones, in the one JSON shape of a rule: a field that
 * matches anything (protocol, addresses, ports, ICMP type/code, TCP flags with mask 0) is left
 * out; a single port is a number and a range the string "LO-HI"; times are *_usec and the
 * timeout *_sec. Export, the rules file and the client's --json all print this shape.
 */
json_t *filter_to_json(const Filter *f);
/*
 * A rule as the bus carries it (a{sv} made into a JSON object) in the shape of
 * filter_to_json(): keys that are no rule field (path, or what a newer daemon adds) stay as they
 * are. On a value it cannot read, -EINVAL with a message.
 */
int filter_json_from_bus(const json_t *dict, json_t **ret, char **ret_error);
/* "an object", "a string", ...: how an error names what it got instead. */
const char *json_type_name(const json_t *v);
/* Every field as a{sv} entries, with the object path after the id: opens and closes the
 * "a{sv}" container itself. */
int filter_append_bus_dict(sd_bus_message *m, const Filter *f, const char *path);
/* rules[0..n) as columns (a{sv}: each rule dictionary key to an array of its values, in the
 * rules' order): what Filters.ListRange answers. */
int filters_append_bus_columns(sd_bus_message *m, Filter *const *rules, size_t n);

const char *filter_verdict_to_string(FilterVerdict a);

/* One line for people and the journal: "drop tcp * -> 192.0.2.1/32:22 flags S/SA \"ssh\"". */
int filter_summary(const Filter *f, char **ret);
const char *rule_type_to_string(RuleType t);
/* "23", "8000-8999" or "any" into buf. */
const char *port_range_to_string(PortRange r, char buf[static 16]);
int port_range_parse(const char *s, PortRange *ret);
static inline bool port_range_is_any(PortRange r) {
        return r.lo == 0 && r.hi == 65535;
}
/* "192.0.2.1", "10.0.0.0/8", or "" for no address. */
#define CIDR_STRING_MAX (ADDR_STRLEN + 8)
const char *cidr_to_string(bool has, const Cidr *c, char buf[static CIDR_STRING_MAX]);

/* --- the field table --- */

typedef enum RuleFieldFlags {
        RULE_FIELD_INPUT = 1 << 0,     /* accepted from a caller (Add, Update, Test, Apply) */
        RULE_FIELD_OUTPUT = 1 << 1,    /* in JSON and a{sv} output */
        RULE_FIELD_IMPORT = 1 << 2,    /* accepted from an export (Import, the rules file) */
        RULE_FIELD_CHANGES = 1 << 3,   /* its property changes with Update: PropertiesChanged */
        RULE_FIELD_COUNTER = 1 << 4,   /* read from the kernel: a property that is fetched */
} RuleFieldFlags;

/* A field's value in its bus type; `s` for 's', `i` for signed, `u` for unsigned and 'b'. */
typedef struct RuleValue {
        const char *s;
        int64_t i;
        uint64_t u;
        char buf[CIDR_STRING_MAX];
} RuleValue;

typedef struct RuleParse RuleParse;
typedef struct RuleField RuleField;

struct RuleField {
        const char *key;      /* JSON and a{sv} key */
        const char *property; /* org.packetscope.Guarder1.Filter property; NULL: none */
        const char *option;   /* packetscopectl option (--OPTION=VALUE); NULL: none */
        char bus_type;        /* D-Bus type of the a{sv} value and of the property */
        RuleFieldFlags flags;
        size_t offset;        /* the Filter member */
        size_t offset_has;    /* for addresses: the bool saying there is one */
        long long min, max;   /* for integers */
        long long def;        /* default of integers, verdicts and booleans */
        /* Reads a JSON value into f; -EINVAL with a message naming the field on error. */
        int (*parse)(const RuleField *d, Filter *f, json_t *v, RuleParse *p, char **ret_error);
        /* Formats the field of f in its bus type. */
        void (*format)(const RuleField *d, const Filter *f, RuleValue *v);
        /* Writes the default into f. */
        void (*init)(const RuleField *d, Filter *f);
        /* JSON output when it differs from the bus value (ports: a number or "LO-HI");
         * NULL: from format. */
        json_t *(*to_json)(const RuleField *d, const Filter *f);
        /* JSON key when it differs from the a{sv} key: times and durations say their unit
         * (created_usec, timeout_sec). Input accepts both; NULL: the same as key. */
        const char *json_key;
};

extern const RuleField rule_fields[];
extern const size_t rule_fields_n;

const RuleField *rule_field_by_key(const char *key);
const RuleField *rule_field_by_property(const char *property);
const RuleField *rule_field_by_option(const char *option);

/* The field as a JSON value (new reference) or appended to m as its bus type. */
json_t *rule_field_to_json(const RuleField *d, const Filter *f);
/* Whether the field of f matches anything, and so is left out of JSON. */
bool rule_field_is_wildcard(const RuleField *d, const Filter *f);
static inline const char *rule_field_json_key(const RuleField *d) {
        return d->json_key ? d->json_key : d->key;
}
int rule_field_append(sd_bus_message *m, const RuleField *d, const Filter *f);
/* A growing text buffer for large documents: stdio's per-call cost was most of ListFd's time
 * at 100,000 rules. `oom` is set once an append failed; later appends do nothing. */
typedef struct TextBuf {
        char *data;
        size_t size, allocated;
        bool oom;
} TextBuf;

void text_buf_put(TextBuf *b, const char *s, size_t n);
static inline void text_buf_puts(TextBuf *b, const char *s) {
        text_buf_put(b, s, strlen(s));
}
void text_buf_put_u64(TextBuf *b, uint64_t v);
void text_buf_put_i64(TextBuf *b, int64_t v);
/* A JSON string, quotes included. */
void text_buf_put_json_string(TextBuf *b, const char *s);
static inline void text_buf_done(TextBuf *b) {
        free(b->data);
        *b = (TextBuf) {};
}

/* The field's bus value as one JSON scalar (a string, a number, true or false): the values of
 * Filters.ListFd()'s rows. */
void rule_field_put_json(TextBuf *b, const RuleField *d, const Filter *f);
/* The same value as rule_field_to_json() gives, written as json_dumps() would write it (a
 * single port a number): the stored rules of filters.json, without a tree per rule. */
void rule_field_put_json_typed(TextBuf *b, const RuleField *d, const Filter *f);

/* "rule_type, protocol, …, force": what a caller may set, for error messages. */
const char *rule_known_fields(void);
/* The properties that change with an Update, NULL-terminated (static). */
char **rule_changing_properties(void);
