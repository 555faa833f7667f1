/* SPDX-License-Identifier: MIT */
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "bus-names.h"
#include "format.h"
#include "proto.h"
#include "rule.h"

/* What one parse has seen so far, for the defaults and checks that follow other fields. */
struct RuleParse {
        FilterParseFlags flags;
        const Filter *orig;
        uint64_t given; /* bit i: rule_fields[i] was in the object */
        bool expires_given;
        uint64_t expires;
};

#define FIELD(f, d, type) ((type *) ((char *) (f) + (d)->offset))
#define CFIELD(f, d, type) ((const type *) ((const char *) (f) + (d)->offset))
#define FAIL(err, ...) error_setf((err), -EINVAL, __VA_ARGS__)

static const char *const rule_type_names[] = {
        [RULE_BASIC] = "basic", [RULE_TCP] = "tcp", [RULE_UDP] = "udp", [RULE_ICMP] = "icmp",
};

const char *rule_type_to_string(RuleType t) {
        return t < ELEMENTSOF(rule_type_names) ? rule_type_names[t] : "basic";
}

const char *filter_verdict_to_string(FilterVerdict a) {
        return a == FILTER_PASS ? "pass" : a == FILTER_COUNT ? "count" : "drop";
}

int port_range_parse(const char *s, PortRange *ret) {
        const char *dash;
        uint32_t lo, hi;

        assert(s);
        assert(ret);
        if (streq(s, "any") || streq(s, "") || streq(s, "0")) {
                *ret = (PortRange) { 0, 65535 };
                return 0;
        }
        dash = strchr(s, '-');
        if (!dash) {
                if (safe_atou32(s, &lo) < 0 || lo > 65535)
                        return -EINVAL;
                *ret = (PortRange) { (uint16_t) lo, (uint16_t) lo };
                return 0;
        }
        {
                char a[8];
                size_t n = (size_t) (dash - s);

                if (n == 0 || n >= sizeof a)
                        return -EINVAL;
                memcpy(a, s, n);
                a[n] = '\0';
                if (safe_atou32(a, &lo) < 0 || safe_atou32(dash + 1, &hi) < 0 || lo > 65535 ||
                    hi > 65535 || lo > hi)
                        return -EINVAL;
        }
        *ret = (PortRange) { (uint16_t) lo, (uint16_t) hi };
        return 0;
}

const char *port_range_to_string(PortRange r, char buf[static 16]) {
        if (port_range_is_any(r))
                return "any";
        if (r.lo == r.hi)
                snprintf(buf, 16, "%u", r.lo);
        else
                snprintf(buf, 16, "%u-%u", r.lo, r.hi);
        return buf;
}

const char *cidr_to_string(bool has, const Cidr *c, char buf[static CIDR_STRING_MAX]) {
        char a[ADDR_STRLEN];

        if (!has)
                return "";
        addr_to_string(c->family, c->addr, a);
        if (c->prefixlen == (c->family == ADDR_FAMILY_IPV4 ? 32 : 128))
                snprintf(buf, CIDR_STRING_MAX, "%s", a);
        else
                snprintf(buf, CIDR_STRING_MAX, "%s/%u", a, c->prefixlen);
        return buf;
}

const char *json_type_name(const json_t *v) {
        assert(v);

        switch (json_typeof(v)) {
        case JSON_OBJECT: return "an object";
        case JSON_ARRAY: return "an array";
        case JSON_STRING: return "a string";
        case JSON_INTEGER: return "an integer";
        case JSON_REAL: return "a number with a fraction";
        case JSON_TRUE: case JSON_FALSE: return "a boolean";
        default: return "null";
        }
}

/* --- value readers: 0, or -EINVAL with "field 'x': …; accepted: …" --- */

static int read_int(const char *key, json_t *v, long long min, long long max, long long *ret,
                    char **err) {
        long long n;

        if (json_is_integer(v))
                n = json_integer_value(v);
        else if (json_is_string(v)) {
                uint64_t u;
                const char *s = json_string_value(v);
                bool neg = s[0] == '-';

                if (safe_atou64(neg ? s + 1 : s, &u) < 0 || u > (uint64_t) INT64_MAX)
                        return FAIL(err, "field '%s': '%.32s' is not a number; accepted: an "
                                    "integer from %lld to %lld", key, s, min, max);
                n = neg ? -(long long) u : (long long) u;
        } else
                return FAIL(err, "field '%s' is %s; accepted: an integer from %lld to %lld", key,
                            json_type_name(v), min, max);
        if (n < min || n > max)
                return FAIL(err, "field '%s': %lld is out of range; accepted: %lld to %lld", key,
                            n, min, max);
        *ret = n;
        return 0;
}

static int read_bool(const char *key, json_t *v, bool *ret, char **err) {
        if (json_is_boolean(v)) {
                *ret = json_is_true(v);
                return 0;
        }
        if (json_is_integer(v) && (json_integer_value(v) == 0 || json_integer_value(v) == 1)) {
                *ret = json_integer_value(v) == 1;
                return 0;
        }
        if (json_is_string(v) && parse_boolean(json_string_value(v)) >= 0) {
                *ret = parse_boolean(json_string_value(v)) == 1;
                return 0;
        }
        return FAIL(err, "field '%s' is %s; accepted: true or false", key, json_type_name(v));
}

/* --- the field kinds: parse, format, default --- */

static int parse_rule_type(const RuleField *d, Filter *f, json_t *v, RuleParse *p, char **err) {
        if (!json_is_string(v))
                return FAIL(err, "field 'rule_type' is %s; accepted: basic, tcp, udp, icmp",
                            json_type_name(v));
        for (size_t i = 0; i < ELEMENTSOF(rule_type_names); i++)
                if (streq(json_string_value(v), rule_type_names[i])) {
                        f->rule_type = (RuleType) i;
                        return 0;
                }
        return FAIL(err, "field 'rule_type': unknown value '%.32s'; accepted: basic, tcp, udp, "
                    "icmp", json_string_value(v));
}

static void format_rule_type(const RuleField *d, const Filter *f, RuleValue *v) {
        v->s = rule_type_to_string(f->rule_type);
}

static int parse_protocol(const RuleField *d, Filter *f, json_t *v, RuleParse *p, char **err) {
        int *ret = FIELD(f, d, int);
        uint8_t n;

        if (json_is_integer(v)) {
                long long x = json_integer_value(v);

                if (x < 0 || x > 255)
                        return FAIL(err, "field '%s': %lld is out of range; accepted: tcp, udp, "
                                    "icmp, icmpv6, any or an IP protocol number 0-255", d->key, x);
                *ret = (int) x;
                return 0;
        }
        if (!json_is_string(v))
                return FAIL(err, "field '%s' is %s; accepted: tcp, udp, icmp, icmpv6, any or an IP "
                            "protocol number 0-255", d->key, json_type_name(v));
        if (streq(json_string_value(v), "any") || streq(json_string_value(v), "")) {
                *ret = PROTO_ANY;
                return 0;
        }
        if (protocol_from_string(json_string_value(v), &n) < 0)
                return FAIL(err, "field '%s': unknown protocol '%.32s'; accepted: tcp, udp, icmp, "
                            "icmpv6, sctp, gre, esp, ah, any or a number 0-255", d->key,
                            json_string_value(v));
        *ret = n;
        return 0;
}

static void format_protocol(const RuleField *d, const Filter *f, RuleValue *v) {
        int p = *CFIELD(f, d, int);

        v->s = p == PROTO_ANY ? "any" : protocol_to_string((uint8_t) p, v->buf);
}

static void init_protocol(const RuleField *d, Filter *f) {
        *FIELD(f, d, int) = PROTO_ANY;
}

static int parse_cidr(const RuleField *d, Filter *f, json_t *v, RuleParse *p, char **err) {
        bool *has = (bool *) ((char *) f + d->offset_has);
        const char *s;
        int r;

        if (json_is_null(v)) {
                *has = false;
                return 0;
        }
        if (!json_is_string(v))
                return FAIL(err, "field '%s' is %s; accepted: an IPv4 or IPv6 address or CIDR, or "
                            "\"\"/\"any\" for any", d->key, json_type_name(v));
        s = json_string_value(v);
        if (streq(s, "") || streq(s, "any")) {
                *has = false;
                return 0;
        }
        r = cidr_parse(s, true, FIELD(f, d, Cidr));
        if (r == -ERANGE)
                return FAIL(err, "field '%s': bad prefix length in '%.64s'; accepted: /0-/32 for "
                            "IPv4, /0-/128 for IPv6", d->key, s);
        if (r == -EADDRNOTAVAIL)
                return FAIL(err, "field '%s': '%.64s' has bits set beyond its prefix length; "
                            "accepted: a network address such as 10.0.0.0/8", d->key, s);
        if (r < 0)
                return FAIL(err, "field '%s': '%.64s' is not an address; accepted: an IPv4 or "
                            "IPv6 address or CIDR (e.g. 192.0.2.0/24, 2001:db8::/32), or \"\"/"
                            "\"any\"", d->key, s);
        *has = true;
        return 0;
}

static void format_cidr(const RuleField *d, const Filter *f, RuleValue *v) {
        const bool *has = (const bool *) ((const char *) f + d->offset_has);

        v->s = cidr_to_string(*has, CFIELD(f, d, Cidr), v->buf);
}

static int parse_ports(const RuleField *d, Filter *f, json_t *v, RuleParse *p, char **err) {
        PortRange *ret = FIELD(f, d, PortRange);

        if (json_is_integer(v)) {
                long long n = json_integer_value(v);

                if (n < 0 || n > 65535)
                        return FAIL(err, "field '%s': %lld is out of range; accepted: 0-65535 (0 "
                                    "= any) or a range \"LO-HI\"", d->key, n);
                *ret = n == 0 ? (PortRange) { 0, 65535 } : (PortRange) { (uint16_t) n, (uint16_t) n };
                return 0;
        }
        if (json_is_string(v) && port_range_parse(json_string_value(v), ret) == 0)
                return 0;
        if (json_is_string(v))
                return FAIL(err, "field '%s': '%.32s' is not a port or range; accepted: 0-65535 "
                            "(0 = any), \"LO-HI\" with LO <= HI, or \"any\"", d->key,
                            json_string_value(v));
        return FAIL(err, "field '%s' is %s; accepted: a port 0-65535 or a range \"LO-HI\"", d->key,
                    json_type_name(v));
}

static void format_ports(const RuleField *d, const Filter *f, RuleValue *v) {
        v->s = port_range_to_string(*CFIELD(f, d, PortRange), v->buf);
}

static void init_ports(const RuleField *d, Filter *f) {
        *FIELD(f, d, PortRange) = (PortRange) { 0, 65535 };
}

/* In JSON a port is a number, as the Guarder wrote it, and only a range is a string "LO-HI",
 * as the option and the property spell it (any is left out, see rule_field_is_wildcard()).
 * Port 0 itself stays the string "0-0": the number 0 is read back as any. */
static json_t *ports_json(const RuleField *d, const Filter *f) {
        PortRange r = *CFIELD(f, d, PortRange);
        char buf[16];

        if (r.lo == r.hi && r.lo != 0)
                return json_integer(r.lo);
        if (r.lo == 0 && r.hi == 0)
                return json_string("0-0");
        return json_string(port_range_to_string(r, buf));
}

static int parse_u8(const RuleField *d, Filter *f, json_t *v, RuleParse *p, char **err) {
        long long x;
        int r = read_int(d->key, v, d->min, d->max, &x, err);

        if (r == 0)
                *FIELD(f, d, uint8_t) = (uint8_t) x;
        return r;
}

static void format_u8(const RuleField *d, const Filter *f, RuleValue *v) {
        v->u = *CFIELD(f, d, uint8_t);
}

static void init_u8(const RuleField *d, Filter *f) {
        *FIELD(f, d, uint8_t) = (uint8_t) d->def;
}

static int parse_i32(const RuleField *d, Filter *f, json_t *v, RuleParse *p, char **err) {
        long long x;
        int r = read_int(d->key, v, d->min, d->max, &x, err);

        if (r == 0)
                *FIELD(f, d, int32_t) = (int32_t) x;
        return r;
}

static void format_i32(const RuleField *d, const Filter *f, RuleValue *v) {
        v->i = *CFIELD(f, d, int32_t);
}

static void format_u32(const RuleField *d, const Filter *f, RuleValue *v) {
        v->u = *CFIELD(f, d, uint32_t);
}

static void format_u64(const RuleField *d, const Filter *f, RuleValue *v) {
        v->u = *CFIELD(f, d, uint64_t);
}

static int parse_verdict(const RuleField *d, Filter *f, json_t *v, RuleParse *p, char **err) {
        const char *s = json_is_string(v) ? json_string_value(v) : NULL;

        if (!s)
                return FAIL(err, "field 'action' is %s; accepted: drop, pass, count",
                            json_type_name(v));
        if (streq(s, "drop"))
                f->action = FILTER_DROP;
        else if (streq(s, "pass"))
                f->action = FILTER_PASS;
        else if (streq(s, "count"))
                f->action = FILTER_COUNT;
        else
                return FAIL(err, "field 'action': unknown value '%.32s'; accepted: drop, pass, "
                            "count", s);
        return 0;
}

static void format_verdict(const RuleField *d, const Filter *f, RuleValue *v) {
        v->s = filter_verdict_to_string(f->action);
}

static void init_verdict(const RuleField *d, Filter *f) {
        f->action = (FilterVerdict) d->def;
}

static int parse_bool(const RuleField *d, Filter *f, json_t *v, RuleParse *p, char **err) {
        return read_bool(d->key, v, FIELD(f, d, bool), err);
}

static void format_bool(const RuleField *d, const Filter *f, RuleValue *v) {
        v->u = *CFIELD(f, d, bool);
}

static void init_bool(const RuleField *d, Filter *f) {
        *FIELD(f, d, bool) = d->def;
}

static int parse_comment(const RuleField *d, Filter *f, json_t *v, RuleParse *p, char **err) {
        char *s, **ret = FIELD(f, d, char *);

        if (!json_is_string(v))
                return FAIL(err, "field '%s' is %s; accepted: a string", d->key, json_type_name(v));
        if (json_string_length(v) > (size_t) d->max)
                return FAIL(err, "field '%s' is %zu bytes long; accepted: at most %lld", d->key,
                            json_string_length(v), d->max);
        if (strlen(json_string_value(v)) != json_string_length(v))
                return FAIL(err, "field '%s' contains a NUL byte", d->key);
        s = strdup(json_string_value(v));
        if (!s)
                return -ENOMEM;
        free(*ret);
        *ret = s;
        return 0;
}

static void format_comment(const RuleField *d, const Filter *f, RuleValue *v) {
        const char *s = *CFIELD(f, d, char *);

        v->s = s ? s : "";
}

static int parse_timeout(const RuleField *d, Filter *f, json_t *v, RuleParse *p, char **err) {
        long long x;
        int r = read_int(d->key, v, d->min, d->max, &x, err);

        if (r < 0)
                return r;
        f->timeout_sec = (uint64_t) x;
        f->expires_usec = 0; /* recomputed by the store from now */
        return 0;
}

static int parse_id(const RuleField *d, Filter *f, json_t *v, RuleParse *p, char **err) {
        long long x;
        int r = read_int(d->key, v, 0, UINT32_MAX, &x, err);

        if (r < 0)
                return r;
        if (p->flags & FILTER_PARSE_IMPORT)
                f->id = (uint32_t) x;
        else if ((p->flags & FILTER_PARSE_UPDATE) && (uint32_t) x != p->orig->id)
                return FAIL(err, "field 'id' is %lld but this is rule %u; the id cannot be "
                            "changed", x, p->orig->id);
        else if (!(p->flags & (FILTER_PARSE_UPDATE | FILTER_PARSE_IMPORT)))
                return FAIL(err, "field 'id' is assigned by the daemon; leave it out when adding "
                            "a rule");
        return 0;
}

static void init_u32(const RuleField *d, Filter *f) {
        *FIELD(f, d, uint32_t) = (uint32_t) d->def;
}

/* created and expires: the times of an export; read-only anywhere else. */
static int parse_time(const RuleField *d, Filter *f, json_t *v, RuleParse *p, char **err) {
        long long x;
        int r;

        if (!(p->flags & FILTER_PARSE_IMPORT))
                return FAIL(err, "field '%s' is read-only", d->key);
        r = read_int(d->key, v, 0, INT64_MAX, &x, err);
        if (r < 0)
                return r;
        if (d->offset == offsetof(Filter, expires_usec)) {
                /* Applied last: whatever the key order, an exported expiry survives. */
                p->expires = (uint64_t) x;
                p->expires_given = true;
        } else
                *FIELD(f, d, uint64_t) = (uint64_t) x;
        return 0;
}

/* The kernel's counters: read-only, and ignored in an export read back. */
static int parse_counter(const RuleField *d, Filter *f, json_t *v, RuleParse *p, char **err) {
        if (!(p->flags & FILTER_PARSE_IMPORT))
                return FAIL(err, "field '%s' is read-only", d->key);
        return 0;
}

#define IN RULE_FIELD_INPUT
#define OUT RULE_FIELD_OUTPUT
#define CHG RULE_FIELD_CHANGES
#define M(member) .offset = offsetof(Filter, member)
#define CIDR(member, has) M(member), .offset_has = offsetof(Filter, has), .parse = parse_cidr, \
        .format = format_cidr
#define PROTO(member) M(member), .parse = parse_protocol, .format = format_protocol, \
        .init = init_protocol
#define PORTS(member) M(member), .parse = parse_ports, .format = format_ports, .init = init_ports, \
        .to_json = ports_json
#define U8(member, d) M(member), .min = 0, .max = 255, .def = (d), .parse = parse_u8, \
        .format = format_u8, .init = init_u8

/* One line per field, in the order of the JSON, the a{sv} and the properties. */
const RuleField rule_fields[] = {
        { "id", "Id", NULL, 'u', OUT | RULE_FIELD_IMPORT, M(id), .def = UINT32_MAX,
          .parse = parse_id, .format = format_u32, .init = init_u32 },
        { "rule_type", "RuleType", "rule-type", 's', IN | OUT | CHG, M(rule_type),
          .parse = parse_rule_type, .format = format_rule_type },
        { "protocol", "Protocol", "protocol", 's', IN | OUT | CHG, PROTO(protocol) },
        { "src_ip", "SrcIp", "src-ip", 's', IN | OUT | CHG, CIDR(src, has_src) },
        { "dst_ip", "DstIp", "dst-ip", 's', IN | OUT | CHG, CIDR(dst, has_dst) },
        { "src_port", "SrcPort", "src-port", 's', IN | OUT | CHG, PORTS(src_port) },
        { "dst_port", "DstPort", "dst-port", 's', IN | OUT | CHG, PORTS(dst_port) },
        { "tcp_flags", "TcpFlags", "tcp-flags", 'y', IN | OUT | CHG, U8(tcp_flags, 0) },
        { "tcp_flags_mask", "TcpFlagsMask", "tcp-flags-mask", 'y', IN | OUT | CHG,
          U8(tcp_flags_mask, 0) },
        { "icmp_type", "IcmpType", "icmp-type", 'y', IN | OUT | CHG, U8(icmp_type, ICMP_ANY) },
        { "icmp_code", "IcmpCode", "icmp-code", 'y', IN | OUT | CHG, U8(icmp_code, ICMP_ANY) },
        { "inner_src_ip", "InnerSrcIp", "inner-src-ip", 's', IN | OUT | CHG,
          CIDR(inner_src, has_inner_src) },
        { "inner_dst_ip", "InnerDstIp", "inner-dst-ip", 's', IN | OUT | CHG,
          CIDR(inner_dst, has_inner_dst) },
        { "inner_protocol", "InnerProtocol", "inner-protocol", 's', IN | OUT | CHG,
          PROTO(inner_protocol) },
        { "inner_src_port", "InnerSrcPort", "inner-src-port", 's', IN | OUT | CHG,
          PORTS(inner_src_port) },
        { "inner_dst_port", "InnerDstPort", "inner-dst-port", 's', IN | OUT | CHG,
          PORTS(inner_dst_port) },
        /* The Guarder's rules were all blocking rules: an omitted action means drop. */
        { "action", "Action", "action", 's', IN | OUT | CHG, M(action), .def = FILTER_DROP,
          .parse = parse_verdict, .format = format_verdict, .init = init_verdict },
        { "enabled", "Enabled", "enabled", 'b', IN | OUT | CHG, M(enabled), .def = true,
          .parse = parse_bool, .format = format_bool, .init = init_bool },
        { "log", "Log", "log", 'b', IN | OUT | CHG, M(log), .def = true, .parse = parse_bool,
          .format = format_bool, .init = init_bool },
        { "comment", "Comment", "comment", 's', IN | OUT | CHG, M(comment),
          .max = FILTER_COMMENT_MAX, .parse = parse_comment, .format = format_comment },
        { "priority", "Priority", "priority", 'i', IN | OUT | CHG, M(priority),
          .min = FILTER_PRIORITY_MIN, .max = FILTER_PRIORITY_MAX, .parse = parse_i32,
          .format = format_i32 },
        { "timeout", "Timeout", "timeout", 't', IN | OUT | CHG, M(timeout_sec), .min = 0,
          .max = FILTER_TIMEOUT_MAX, .parse = parse_timeout, .format = format_u64,
          .json_key = "timeout_sec" },
        { "expires", "Expires", NULL, 't', OUT | RULE_FIELD_IMPORT | CHG, M(expires_usec),
          .parse = parse_time, .format = format_u64, .json_key = "expires_usec" },
        { "created", "Created", NULL, 't', OUT | RULE_FIELD_IMPORT, M(created_usec),
          .parse = parse_time, .format = format_u64, .json_key = "created_usec" },
        { "hits", "Hits", NULL, 't', OUT | RULE_FIELD_COUNTER, M(hits), .parse = parse_counter,
          .format = format_u64 },
        { "bytes", "Bytes", NULL, 't', OUT | RULE_FIELD_COUNTER, M(bytes),
          .parse = parse_counter, .format = format_u64 },
        { "last_hit", "LastHit", NULL, 't', OUT | RULE_FIELD_COUNTER, M(last_hit_usec),
          .parse = parse_counter, .format = format_u64, .json_key = "last_hit_usec" },
        { "force", NULL, "force", 'b', IN, M(force), .parse = parse_bool, .format = format_bool },
};

const size_t rule_fields_n = ELEMENTSOF(rule_fields);

/* The parse state keeps one bit per field. */
_Static_assert(ELEMENTSOF(rule_fields) <= 64, "RuleParse.given has 64 bits");

/* Every spelling of every field (the a{sv} key and the JSON key), sorted: a rule's keys are
 * looked up by binary search, a few comparisons each instead of a walk of the table (an import
 * of 100,000 rules looks up every key of every rule). */
typedef struct FieldName {
        const char *name;
        size_t index;
} FieldName;

static FieldName field_names[2 * ELEMENTSOF(rule_fields)];
static size_t field_names_n;
static pthread_once_t field_names_once = PTHREAD_ONCE_INIT;

static int cmp_field_name(const void *a, const void *b) {
        return strcmp(((const FieldName *) a)->name, ((const FieldName *) b)->name);
}

static void field_names_init(void) {
        size_t n = 0;

        for (size_t i = 0; i < ELEMENTSOF(rule_fields); i++) {
                field_names[n++] = (FieldName) { rule_fields[i].key, i };
                if (rule_fields[i].json_key)
                        field_names[n++] = (FieldName) { rule_fields[i].json_key, i };
        }
        qsort(field_names, n, sizeof(FieldName), cmp_field_name);
        field_names_n = n;
}

/* By the a{sv} key or the JSON key: both spellings are read. */
static size_t field_index(const char *key) {
        const FieldName k = { key, 0 }, *found;

        (void) pthread_once(&field_names_once, field_names_init);
        found = bsearch(&k, field_names, field_names_n, sizeof(FieldName), cmp_field_name);
        return found ? found->index : SIZE_MAX;
}

const RuleField *rule_field_by_key(const char *key) {
        size_t i;

        assert(key);
        i = field_index(key);
        return i == SIZE_MAX ? NULL : &rule_fields[i];
}

const RuleField *rule_field_by_property(const char *property) {
        assert(property);
        for (size_t i = 0; i < ELEMENTSOF(rule_fields); i++)
                if (rule_fields[i].property && streq(rule_fields[i].property, property))
                        return &rule_fields[i];
        return NULL;
}

const RuleField *rule_field_by_option(const char *option) {
        assert(option);
        for (size_t i = 0; i < ELEMENTSOF(rule_fields); i++)
                if (rule_fields[i].option && streq(rule_fields[i].option, option))
                        return &rule_fields[i];
        return NULL;
}

const char *rule_known_fields(void) {
        static char buf[1024];

        if (!buf[0])
                for (size_t i = 0, n = 0; i < ELEMENTSOF(rule_fields); i++) {
                        if (!(rule_fields[i].flags & RULE_FIELD_INPUT))
                                continue;
                        n += (size_t) snprintf(buf + n, sizeof buf - n, "%s%s", n ? ", " : "",
                                               rule_fields[i].key);
                        assert(n < sizeof buf);
                }
        return buf;
}

char **rule_changing_properties(void) {
        static const char *props[ELEMENTSOF(rule_fields) + 1];

        if (!props[0])
                for (size_t i = 0, n = 0; i < ELEMENTSOF(rule_fields); i++)
                        if (rule_fields[i].flags & RULE_FIELD_CHANGES)
                                props[n++] = rule_fields[i].property;
        return (char **) props;
}

void filter_init(Filter *f) {
        assert(f);
        *f = (Filter) {
                .slot = UINT32_MAX, /* assigned by the store */
        };
        for (size_t i = 0; i < ELEMENTSOF(rule_fields); i++)
                if (rule_fields[i].init)
                        rule_fields[i].init(&rule_fields[i], f);
}

struct FilterText {
        unsigned n_ref;
        Filter key;    /* the rule it was made of, as filter_text_key() leaves it */
        char *comment; /* and its comment */
        char text[];
};

static void filter_text_unref(FilterText *t) {
        if (t && --t->n_ref == 0) {
                free(t->comment);
                free(t);
        }
}

/* The fields the stored text is made of: not the pointers, counters or `force`. A byte
 * compare: padding that differs only costs a new text. */
static void filter_text_key(const Filter *f, Filter *ret) {
        memcpy(ret, f, sizeof(Filter));
        ret->comment = NULL;
        ret->store = NULL;
        ret->text = NULL;
        ret->force = false;
        ret->hits = ret->bytes = ret->last_hit_usec = 0;
}

const char *filter_text_get(const Filter *f) {
        Filter key;

        assert(f);
        if (!f->text)
                return NULL;
        filter_text_key(f, &key);
        if (memcmp(&key, &f->text->key, sizeof(Filter)) != 0 ||
            !streq(strempty(f->comment), strempty(f->text->comment)))
                return NULL;
        return f->text->text;
}

int filter_text_set(Filter *f, const char *text) {
        size_t len;
        FilterText *t;

        assert(f);
        assert(text);
        len = strlen(text);
        t = malloc(sizeof(FilterText) + len + 1);
        if (!t)
                return -ENOMEM;
        t->n_ref = 1;
        t->comment = NULL;
        if (f->comment) {
                t->comment = strdup(f->comment);
                if (!t->comment) {
                        free(t);
                        return -ENOMEM;
                }
        }
        filter_text_key(f, &t->key);
        memcpy(t->text, text, len + 1);
        filter_text_unref(f->text);
        f->text = t;
        return 0;
}

void filter_done(Filter *f) {
        assert(f);
        f->comment = mfree(f->comment);
        filter_text_unref(f->text);
        f->text = NULL;
}

Filter *filter_free(Filter *f) {
        if (f) {
                filter_done(f);
                free(f);
        }
        return NULL;
}

Filter *filter_new(void) {
        Filter *f = malloc(sizeof(Filter));

        if (f)
                filter_init(f);
        return f;
}

int filter_copy(Filter *dst, const Filter *src) {
        assert(dst);
        assert(src);
        *dst = *src;
        dst->comment = NULL;
        dst->text = NULL;
        if (src->comment) {
                dst->comment = strdup(src->comment);
                if (!dst->comment)
                        return -ENOMEM;
        }
        dst->text = src->text;
        if (dst->text)
                dst->text->n_ref++;
        return 0;
}

void filter_list_free(Filter **rules, size_t n) {
        for (size_t i = 0; i < n; i++)
                filter_free(rules[i]);
        free(rules);
}

void filter_list_done(FilterList *l) {
        assert(l);
        filter_list_free(l->rules, l->n);
        *l = (FilterList) {};
}

int filter_list_push(FilterList *l, Filter *f) {
        Filter **a;

        assert(l);
        assert(f);
        a = realloc(l->rules, (l->n + 1) * sizeof(Filter *));
        if (!a)
                return -ENOMEM;
        a[l->n++] = f;
        l->rules = a;
        return 0;
}

static int protocol_for_rule_type(RuleType t) {
        switch (t) {
        case RULE_TCP: return IPPROTO_TCP;
        case RULE_UDP: return IPPROTO_UDP;
        case RULE_ICMP: return IPPROTO_ICMP;
        default: return PROTO_ANY;
        }
}

static uint8_t cidr_family(bool has, const Cidr *c) {
        return has ? c->family : 0;
}

static bool is_icmp(int protocol) {
        return protocol == IPPROTO_ICMP || protocol == IPPROTO_ICMPV6;
}

static bool has_ports(int protocol) {
        return protocol != PROTO_ANY && protocol_has_ports((unsigned) protocol);
}

/* Cross-field rules, once every field is in. */
static int filter_check(Filter *f, char **err) {
        uint8_t fam = 0, a;

        switch (f->rule_type) {
        case RULE_TCP:
                if (f->protocol != IPPROTO_TCP)
                        return FAIL(err, "field 'protocol' must be tcp for rule_type tcp");
                break;
        case RULE_UDP:
                if (f->protocol != IPPROTO_UDP)
                        return FAIL(err, "field 'protocol' must be udp for rule_type udp");
                break;
        case RULE_ICMP:
                if (!is_icmp(f->protocol))
                        return FAIL(err, "field 'protocol' must be icmp or icmpv6 for rule_type icmp");
                break;
        default:
                break;
        }

        /* One address family per rule. */
        a = cidr_family(f->has_src, &f->src);
        if (a)
                fam = a;
        a = cidr_family(f->has_dst, &f->dst);
        if (a && fam && a != fam)
                return FAIL(err, "fields 'src_ip' and 'dst_ip' are of different address families");
        if (a)
                fam = a;
        if (f->protocol == IPPROTO_ICMP && fam == ADDR_FAMILY_IPV6)
                return FAIL(err, "protocol icmp is IPv4 only; use icmpv6 with IPv6 addresses");
        if (f->protocol == IPPROTO_ICMPV6 && fam == ADDR_FAMILY_IPV4)
                return FAIL(err, "protocol icmpv6 is IPv6 only; use icmp with IPv4 addresses");

        if ((!port_range_is_any(f->src_port) || !port_range_is_any(f->dst_port)) &&
            !has_ports(f->protocol))
                return FAIL(err, "fields 'src_port'/'dst_port' need protocol tcp, udp, sctp or "
                            "udplite");
        if (f->tcp_flags & ~f->tcp_flags_mask)
                return FAIL(err, "field 'tcp_flags' (%u) has bits outside 'tcp_flags_mask' (%u); "
                            "accepted: flags that are a subset of the mask", f->tcp_flags,
                            f->tcp_flags_mask);
        if (f->tcp_flags_mask && f->protocol != IPPROTO_TCP)
                return FAIL(err, "fields 'tcp_flags'/'tcp_flags_mask' need protocol tcp");
        if ((f->icmp_type != ICMP_ANY || f->icmp_code != ICMP_ANY) && !is_icmp(f->protocol))
                return FAIL(err, "fields 'icmp_type'/'icmp_code' need protocol icmp or icmpv6");

        if (f->has_inner_src || f->has_inner_dst || f->inner_protocol != PROTO_ANY ||
            !port_range_is_any(f->inner_src_port) || !port_range_is_any(f->inner_dst_port)) {
                if (!is_icmp(f->protocol))
                        return FAIL(err, "the inner_* fields match the header an ICMP error "
                                    "quotes; they need protocol icmp or icmpv6");
                if (f->icmp_type != ICMP_ANY &&
                    !icmp_type_is_error((unsigned) f->protocol, f->icmp_type))
                        return FAIL(err, "the inner_* fields need an ICMP error type (icmp 3, 4, "
                                    "5, 11, 12; icmpv6 1-4) or icmp_type 255; got %u",
                                    f->icmp_type);
                if ((!port_range_is_any(f->inner_src_port) || !port_range_is_any(f->inner_dst_port)) &&
                    !has_ports(f->inner_protocol))
                        return FAIL(err, "fields 'inner_src_port'/'inner_dst_port' need "
                                    "inner_protocol tcp, udp, sctp or udplite");
                a = cidr_family(f->has_inner_src, &f->inner_src);
                if (a && cidr_family(f->has_inner_dst, &f->inner_dst) &&
                    a != f->inner_dst.family)
                        return FAIL(err, "fields 'inner_src_ip' and 'inner_dst_ip' are of "
                                    "different address families");
        }
        return 0;
}

/* null is the field's default: "any" for what matches, the way the Guarder left a field out;
 * an update can so set a field back to any. */
static int field_parse(const RuleField *d, Filter *f, json_t *v, RuleParse *p, char **err) {
        if (json_is_null(v) && d->init && (d->flags & RULE_FIELD_INPUT)) {
                d->init(d, f);
                return 0;
        }
        return d->parse(d, f, v, p, err);
}

/* The fields whose defaults follow others, by their place in the table (looked up once). */
static size_t given_protocol, given_rule_type, given_tcp_flags, given_tcp_flags_mask;
static pthread_once_t given_once = PTHREAD_ONCE_INIT;

static void given_init(void) {
        given_protocol = field_index("protocol");
        given_rule_type = field_index("rule_type");
        given_tcp_flags = field_index("tcp_flags");
        given_tcp_flags_mask = field_index("tcp_flags_mask");
        assert(given_protocol < 64 && given_rule_type < 64 && given_tcp_flags < 64 &&
               given_tcp_flags_mask < 64);
}

#define GIVEN(p, i) (!!((p)->given & (UINT64_C(1) << (i))))

int filter_from_json(Filter *f, json_t *obj, FilterParseFlags flags, char **ret_error) {
        Filter n;
        RuleParse p = { .flags = flags, .orig = f };
        const char *key;
        json_t *v;
        int r;

        assert(f);
        if (!json_is_object(obj))
                return FAIL(ret_error, "a rule must be a JSON object, got %s", json_type_name(obj));

        r = filter_copy(&n, f);
        if (r < 0)
                return r;

        json_object_foreach(obj, key, v) {
                size_t i = field_index(key);

                if (i == SIZE_MAX) {
                        r = FAIL(ret_error, "unknown field '%.64s'; accepted: %s", key,
                                 rule_known_fields());
                        goto fail;
                }
                r = field_parse(&rule_fields[i], &n, v, &p, ret_error);
                if (r < 0)
                        goto fail;
                p.given |= UINT64_C(1) << i;
        }

        if (p.expires_given)
                n.expires_usec = n.timeout_sec ? p.expires : 0;

        /* Defaults that follow other fields, as in the Guarder. */
        (void) pthread_once(&given_once, given_init);
        if (!GIVEN(&p, given_protocol) &&
            (!(flags & FILTER_PARSE_UPDATE) || GIVEN(&p, given_rule_type)))
                n.protocol = protocol_for_rule_type(n.rule_type);
        if (GIVEN(&p, given_tcp_flags) && !GIVEN(&p, given_tcp_flags_mask) &&
            !(flags & FILTER_PARSE_UPDATE))
                n.tcp_flags_mask = n.tcp_flags; /* "these flags set" */

        r = filter_check(&n, ret_error);
        if (r < 0)
                goto fail;
        filter_done(f);
        *f = n;
        return 0;
fail:
        filter_done(&n);
        return r;
}

static void field_value(const RuleField *d, const Filter *f, RuleValue *v) {
        *v = (RuleValue) {};
        d->format(d, f, v);
}

bool rule_field_is_wildcard(const RuleField *d, const Filter *f) {
        assert(d);
        assert(f);
        if (d->parse == parse_ports)
                return port_range_is_any(*CFIELD(f, d, PortRange));
        if (d->parse == parse_protocol)
                return *CFIELD(f, d, int) == PROTO_ANY;
        if (d->parse == parse_cidr)
                return !*(const bool *) ((const char *) f + d->offset_has);
        if (d->offset == offsetof(Filter, icmp_type) || d->offset == offsetof(Filter, icmp_code))
                return *CFIELD(f, d, uint8_t) == ICMP_ANY;
        /* Flags and mask come as a pair: no mask, no check. */
        if (d->offset == offsetof(Filter, tcp_flags) || d->offset == offsetof(Filter, tcp_flags_mask))
                return f->tcp_flags_mask == 0;
        return false;
}

json_t *rule_field_to_json(const RuleField *d, const Filter *f) {
        RuleValue v;

        assert(d);
        assert(f);
        if (d->to_json)
                return d->to_json(d, f);
        field_value(d, f, &v);
        switch (d->bus_type) {
        case 's': return json_string(v.s);
        case 'b': return json_boolean(v.u);
        case 'i': case 'n': case 'x': return json_integer((json_int_t) v.i);
        default: return json_integer((json_int_t) v.u);
        }
}

int rule_field_append(sd_bus_message *m, const RuleField *d, const Filter *f) {
        RuleValue v;

        assert(m);
        assert(d);
        assert(f);
        field_value(d, f, &v);
        switch (d->bus_type) {
        case 's': return sd_bus_message_append_basic(m, 's', v.s);
        case 'b': { int b = !!v.u; return sd_bus_message_append_basic(m, 'b', &b); }
        case 'y': { uint8_t x = (uint8_t) v.u; return sd_bus_message_append_basic(m, 'y', &x); }
        case 'q': { uint16_t x = (uint16_t) v.u; return sd_bus_message_append_basic(m, 'q', &x); }
        case 'u': { uint32_t x = (uint32_t) v.u; return sd_bus_message_append_basic(m, 'u', &x); }
        case 'i': { int32_t x = (int32_t) v.i; return sd_bus_message_append_basic(m, 'i', &x); }
        case 'x': return sd_bus_message_append_basic(m, 'x', &v.i);
        default: return sd_bus_message_append_basic(m, 't', &v.u);
        }
}

void text_buf_put(TextBuf *b, const char *s, size_t n) {
        if (b->oom)
                return;
        if (b->allocated - b->size < n + 1) {
                size_t want = MAX(b->allocated * 2, b->size + n + 1);
                char *p = realloc(b->data, MAX(want, (size_t) 65536));

                if (!p) {
                        b->oom = true;
                        return;
                }
                b->data = p;
                b->allocated = MAX(want, (size_t) 65536);
        }
        memcpy(b->data + b->size, s, n);
        b->size += n;
        b->data[b->size] = '\0';
}

void text_buf_put_u64(TextBuf *b, uint64_t v) {
        char digits[20], *p = digits + sizeof digits;

        do {
                *--p = (char) ('0' + v % 10);
                v /= 10;
        } while (v > 0);
        text_buf_put(b, p, (size_t) (digits + sizeof digits - p));
}

void text_buf_put_i64(TextBuf *b, int64_t v) {
        if (v < 0) {
                text_buf_put(b, "-", 1);
                text_buf_put_u64(b, (uint64_t) -(v + 1) + 1);
        } else
                text_buf_put_u64(b, (uint64_t) v);
}

void text_buf_put_json_string(TextBuf *b, const char *s) {
        const char *run = s;

        text_buf_put(b, "\"", 1);
        /* Runs of plain bytes in one copy; UTF-8 as it is: input is checked to be UTF-8. */
        for (const char *p = s; *p; p++) {
                unsigned char c = (unsigned char) *p;
                char esc[8];

                if (c != '"' && c != '\\' && c >= 0x20)
                        continue;
                text_buf_put(b, run, (size_t) (p - run));
                /* The escapes jansson's json_dumps() writes, so that a file written here is
                 * byte for byte what it wrote before (filters.json). */
                esc[0] = '\\';
                esc[1] = c == '"' || c == '\\' ? (char) c : c == '\b' ? 'b' : c == '\f' ? 'f' :
                         c == '\n' ? 'n' : c == '\r' ? 'r' : c == '\t' ? 't' : 0;
                if (esc[1])
                        text_buf_put(b, esc, 2);
                else {
                        snprintf(esc, sizeof esc, "\\u%04X", c);
                        text_buf_put(b, esc, 6);
                }
                run = p + 1;
        }
        text_buf_put(b, run, strlen(run));
        text_buf_put(b, "\"", 1);
}

void rule_field_put_json(TextBuf *b, const RuleField *d, const Filter *f) {
        RuleValue v;

        assert(b);
        assert(d);
        assert(f);
        field_value(d, f, &v);
        switch (d->bus_type) {
        case 's': text_buf_put_json_string(b, v.s ? v.s : ""); break;
        case 'b': text_buf_puts(b, v.u ? "true" : "false"); break;
        case 'y': text_buf_put_u64(b, (uint8_t) v.u); break;
        case 'q': text_buf_put_u64(b, (uint16_t) v.u); break;
        case 'u': text_buf_put_u64(b, (uint32_t) v.u); break;
        case 'i': text_buf_put_i64(b, (int32_t) v.i); break;
        case 'x': text_buf_put_i64(b, v.i); break;
        default: text_buf_put_u64(b, v.u); break;
        }
}

void rule_field_put_json_typed(TextBuf *b, const RuleField *d, const Filter *f) {
        RuleValue v;

        assert(b);
        assert(d);
        assert(f);
        /* The ports as ports_json() gives them: one port a number, a range a string. */
        if (d->to_json == ports_json) {
                PortRange r = *CFIELD(f, d, PortRange);
                char buf[16];

                if (r.lo == r.hi && r.lo != 0)
                        text_buf_put_u64(b, r.lo);
                else
                        text_buf_put_json_string(b, r.lo == 0 && r.hi == 0 ? "0-0" :
                                                    port_range_to_string(r, buf));
                return;
        }
        assert(!d->to_json);
        field_value(d, f, &v);
        switch (d->bus_type) {
        case 's': text_buf_put_json_string(b, v.s ? v.s : ""); break;
        case 'b': text_buf_puts(b, v.u ? "true" : "false"); break;
        case 'i': case 'n': case 'x': text_buf_put_i64(b, v.i); break;
        /* json_integer() takes a signed 64-bit value. */
        default: text_buf_put_i64(b, (int64_t) v.u); break;
        }
}

json_t *filter_to_json(const Filter *f) {
        _cleanup_json_ json_t *o = json_object();

        assert(f);
        if (!o)
                return NULL;
        for (size_t i = 0; i < ELEMENTSOF(rule_fields); i++) {
                const RuleField *d = &rule_fields[i];

                if (!(d->flags & RULE_FIELD_OUTPUT) || rule_field_is_wildcard(d, f))
                        continue;
                /* json_object_set_new steals the value, and fails on NULL. */
                if (json_object_set_new(o, rule_field_json_key(d), rule_field_to_json(d, f)) < 0)
                        return NULL;
        }
        return TAKE_PTR(o);
}

int filter_json_from_bus(const json_t *dict, json_t **ret, char **ret_error) {
        _cleanup_json_ json_t *o = NULL;
        Filter f;
        RuleParse p = { .orig = &f };
        const char *key;
        json_t *v;
        int r = 0;

        assert(dict);
        assert(ret);
        if (!json_is_object(dict))
                return FAIL(ret_error, "a rule must be a JSON object, got %s", json_type_name(dict));
        o = json_object();
        if (!o)
                return -ENOMEM;
        filter_init(&f);
        /* First every field a caller can set, into one rule: the TCP flags need their mask. */
        json_object_foreach((json_t *) dict, key, v) {
                const RuleField *d = rule_field_by_key(key);

                if (d && (d->flags & RULE_FIELD_INPUT)) {
                        r = field_parse(d, &f, v, &p, ret_error);
                        if (r < 0)
                                goto out;
                }
        }
        /* Then in the order they came: the daemon's times and counters as they are, under
         * their JSON names; keys that are no field (path) unchanged. */
        json_object_foreach((json_t *) dict, key, v) {
                const RuleField *d = rule_field_by_key(key);
                json_t *j;

                if (!d)
                        j = json_incref(v);
                else if (!(d->flags & RULE_FIELD_INPUT))
                        j = json_incref(v);
                else if (rule_field_is_wildcard(d, &f))
                        continue;
                else
                        j = rule_field_to_json(d, &f);
                /* Steals j, and fails on NULL. */
                if (json_object_set_new(o, d ? rule_field_json_key(d) : key, j) < 0) {
                        r = -ENOMEM;
                        goto out;
                }
        }
        *ret = TAKE_PTR(o);
out:
        filter_done(&f);
        return r;
}

int filter_append_bus_dict(sd_bus_message *m, const Filter *f, const char *path) {
        int r;

        assert(m);
        assert(f);
        assert(path);
        r = sd_bus_message_open_container(m, 'a', "{sv}");
        if (r < 0)
                return r;
        for (size_t i = 0; i < ELEMENTSOF(rule_fields); i++) {
                const RuleField *d = &rule_fields[i];
                char sig[2] = { d->bus_type, '\0' };

                if (!(d->flags & RULE_FIELD_OUTPUT))
                        continue;
                if ((r = sd_bus_message_open_container(m, 'e', "sv")) < 0 ||
                    (r = sd_bus_message_append_basic(m, 's', d->key)) < 0 ||
                    (r = sd_bus_message_open_container(m, 'v', sig)) < 0 ||
                    (r = rule_field_append(m, d, f)) < 0 ||
                    (r = sd_bus_message_close_container(m)) < 0 ||
                    (r = sd_bus_message_close_container(m)) < 0)
                        return r;
                if (d->offset == offsetof(Filter, id)) {
                        r = sd_bus_message_append(m, "{sv}", "path", "o", path);
                        if (r < 0)
                                return r;
                }
        }
        return sd_bus_message_close_container(m);
}

/* One column: the field's value of every rule, as an array of the field's bus type. A fixed-size
 * type goes in with one copy from buf (n * 8 bytes); a string or a boolean (which sd-bus does not
 * take as an array in one piece) is appended one at a time. */
static int append_bus_column(sd_bus_message *m, const RuleField *d, Filter *const *rules,
                             size_t n, void *buf) {
        char sig[3] = { 'a', d->bus_type, '\0' };
        size_t width;
        int r;

        r = sd_bus_message_open_container(m, 'v', sig);
        if (r < 0)
                return r;
        switch (d->bus_type) {
        case 'y': width = 1; break;
        case 'q': width = 2; break;
        case 'u': case 'i': width = 4; break;
        case 'x': case 't': width = 8; break;
        default: width = 0; break;
        }
        if (width == 0) {
                r = sd_bus_message_open_container(m, 'a', sig + 1);
                for (size_t i = 0; r >= 0 && i < n; i++)
                        r = rule_field_append(m, d, rules[i]);
                if (r >= 0)
                        r = sd_bus_message_close_container(m);
        } else {
                for (size_t i = 0; i < n; i++) {
                        RuleValue v;

                        field_value(d, rules[i], &v);
                        switch (d->bus_type) {
                        case 'y': ((uint8_t *) buf)[i] = (uint8_t) v.u; break;
                        case 'q': ((uint16_t *) buf)[i] = (uint16_t) v.u; break;
                        case 'u': ((uint32_t *) buf)[i] = (uint32_t) v.u; break;
                        case 'i': ((int32_t *) buf)[i] = (int32_t) v.i; break;
                        case 'x': ((int64_t *) buf)[i] = v.i; break;
                        default: ((uint64_t *) buf)[i] = v.u; break;
                        }
                }
                r = sd_bus_message_append_array(m, d->bus_type, buf, n * width);
        }
        if (r < 0)
                return r;
        return sd_bus_message_close_container(m);
}

int filters_append_bus_columns(sd_bus_message *m, Filter *const *rules, size_t n) {
        _cleanup_free_ void *buf = NULL;
        int r;

        assert(m);
        assert(rules || n == 0);
        buf = malloc(MAX(n, (size_t) 1) * sizeof(uint64_t));
        if (!buf)
                return -ENOMEM;
        r = sd_bus_message_open_container(m, 'a', "{sv}");
        if (r < 0)
                return r;
        for (size_t i = 0; i < ELEMENTSOF(rule_fields); i++) {
                const RuleField *d = &rule_fields[i];

                if (!(d->flags & RULE_FIELD_OUTPUT))
                        continue;
                if ((r = sd_bus_message_open_container(m, 'e', "sv")) < 0 ||
                    (r = sd_bus_message_append_basic(m, 's', d->key)) < 0 ||
                    (r = append_bus_column(m, d, rules, n, buf)) < 0 ||
                    (r = sd_bus_message_close_container(m)) < 0)
                        return r;
                if (d->offset != offsetof(Filter, id))
                        continue;
                /* The object paths beside the ids, where a rule dictionary has "path". */
                if ((r = sd_bus_message_open_container(m, 'e', "sv")) < 0 ||
                    (r = sd_bus_message_append_basic(m, 's', "path")) < 0 ||
                    (r = sd_bus_message_open_container(m, 'v', "ao")) < 0 ||
                    (r = sd_bus_message_open_container(m, 'a', "o")) < 0)
                        return r;
                for (size_t j = 0; j < n; j++) {
                        char path[sizeof(PS_OBJECT_FILTERS "/") + 10];

                        snprintf(path, sizeof path, PS_OBJECT_FILTERS "/%" PRIu32, rules[j]->id);
                        r = sd_bus_message_append_basic(m, 'o', path);
                        if (r < 0)
                                return r;
                }
                if ((r = sd_bus_message_close_container(m)) < 0 ||
                    (r = sd_bus_message_close_container(m)) < 0 ||
                    (r = sd_bus_message_close_container(m)) < 0)
                        return r;
        }
        return sd_bus_message_close_container(m);
}

/* "1.2.3.0/24:22" or "*" (any address, any port); a port range as "lo-hi". */
static void summary_endpoint(FILE *f, bool has, const Cidr *c, const PortRange *p, bool ports) {
        char buf[ADDR_STRLEN];
        bool any_port = !ports || (p->lo == 0 && p->hi == 65535);

        if (has)
                fprintf(f, "%s/%u", addr_to_string(c->family, c->addr, buf), c->prefixlen);
        else
                fputs("*", f);
        if (any_port)
                return;
        if (p->lo == p->hi)
                fprintf(f, ":%u", p->lo);
        else
                fprintf(f, ":%u-%u", p->lo, p->hi);
}

int filter_summary(const Filter *f, char **ret) {
        _cleanup_free_ char *text = NULL;
        size_t size = 0;
        char pbuf[4];
        bool ports, icmp;
        FILE *out;

        assert(f);
        assert(ret);
        ports = f->protocol == IPPROTO_TCP || f->protocol == IPPROTO_UDP;
        icmp = f->protocol == IPPROTO_ICMP || f->protocol == IPPROTO_ICMPV6;
        out = open_memstream(&text, &size);
        if (!out)
                return -ENOMEM;
        fprintf(out, "%s %s ", filter_verdict_to_string(f->action),
                f->protocol == PROTO_ANY ? "ip" : protocol_to_string((uint8_t) f->protocol, pbuf));
        summary_endpoint(out, f->has_src, &f->src, &f->src_port, ports);
        fputs(" -> ", out);
        summary_endpoint(out, f->has_dst, &f->dst, &f->dst_port, ports);
        if (f->tcp_flags_mask) {
                char fl[FORMAT_TCP_FLAGS_MAX], ms[FORMAT_TCP_FLAGS_MAX];

                fprintf(out, " flags %s/%s", format_tcp_flags(fl, sizeof fl, f->tcp_flags),
                        format_tcp_flags(ms, sizeof ms, f->tcp_flags_mask));
        }
        if (icmp && f->icmp_type != ICMP_ANY) {
                const char *name = icmp_type_name(f->protocol == IPPROTO_ICMPV6, f->icmp_type);

                fprintf(out, " type %u%s%s%s", f->icmp_type, name ? " (" : "", name ? name : "",
                        name ? ")" : "");
        }
        if (icmp && f->icmp_code != ICMP_ANY)
                fprintf(out, " code %u", f->icmp_code);
        if (f->inner_protocol != PROTO_ANY)
                fprintf(out, " inner %s", protocol_to_string((uint8_t) f->inner_protocol, pbuf));
        if (f->comment && *f->comment)
                fprintf(out, " \"%s\"", f->comment);
        if (fclose(out) != 0)
                return -ENOMEM;
        *ret = TAKE_PTR(text);
        return 0;
}
