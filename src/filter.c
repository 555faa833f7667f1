/* SPDX-License-Identifier: MIT */
#include <netinet/in.h>
#include <stdio.h>

#include "filter.h"
#include "query.h"
#include "util.h"

void filter_init(Filter *f) {
        *f = (Filter) {
                .id = UINT32_MAX,   /* assigned by the store */
                .slot = UINT32_MAX, /* assigned by the store */
                .rule_type = RULE_BASIC,
                .protocol = PROTO_ANY,
                .src_port = { 0, 65535 },
                .dst_port = { 0, 65535 },
                .icmp_type = ICMP_ANY,
                .icmp_code = ICMP_ANY,
                .inner_protocol = PROTO_ANY,
                .inner_src_port = { 0, 65535 },
                .inner_dst_port = { 0, 65535 },
                /* The Guarder's rules were all blocking rules: an omitted action means drop. */
                .action = FILTER_DROP,
                .enabled = true,
        };
}

void filter_done(Filter *f) {
        f->comment = mfree(f->comment);
}

Filter *filter_free(Filter *f) {
        if (f) {
                filter_done(f);
                free(f);
        }
        return NULL;
}

int filter_copy(Filter *dst, const Filter *src) {
        *dst = *src;
        dst->comment = NULL;
        if (src->comment) {
                dst->comment = strdup(src->comment);
                if (!dst->comment)
                        return -ENOMEM;
        }
        return 0;
}

static const char *const rule_type_names[] = {
        [RULE_BASIC] = "basic", [RULE_TCP] = "tcp", [RULE_UDP] = "udp", [RULE_ICMP] = "icmp",
};

const char *rule_type_to_string(RuleType t) {
        return t < ELEMENTSOF(rule_type_names) ? rule_type_names[t] : "basic";
}

const char *filter_action_to_string(FilterAction a) {
        return a == FILTER_PASS ? "pass" : a == FILTER_COUNT ? "count" : "drop";
}

int port_range_parse(const char *s, PortRange *ret) {
        const char *dash;
        uint32_t lo, hi;

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

/* --- field readers: each returns 0 or -EINVAL with *err set to "field 'x': …; accepted: …" --- */

#define FAIL(err, ...) ({ asprintf((err), __VA_ARGS__); -EINVAL; })

static const char *json_type_name(const json_t *v) {
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

static int read_protocol(const char *key, json_t *v, int *ret, char **err) {
        uint8_t p;

        if (json_is_integer(v)) {
                long long n = json_integer_value(v);

                if (n < 0 || n > 255)
                        return FAIL(err, "field '%s': %lld is out of range; accepted: tcp, udp, "
                                    "icmp, icmpv6, any or an IP protocol number 0-255", key, n);
                *ret = (int) n;
                return 0;
        }
        if (!json_is_string(v))
                return FAIL(err, "field '%s' is %s; accepted: tcp, udp, icmp, icmpv6, any or an IP "
                            "protocol number 0-255", key, json_type_name(v));
        if (streq(json_string_value(v), "any") || streq(json_string_value(v), "")) {
                *ret = PROTO_ANY;
                return 0;
        }
        if (protocol_from_string(json_string_value(v), &p) < 0)
                return FAIL(err, "field '%s': unknown protocol '%.32s'; accepted: tcp, udp, icmp, "
                            "icmpv6, sctp, gre, esp, ah, any or a number 0-255", key,
                            json_string_value(v));
        *ret = p;
        return 0;
}

static int read_cidr(const char *key, json_t *v, bool *ret_has, Cidr *ret, char **err) {
        const char *s;
        int r;

        if (json_is_null(v)) {
                *ret_has = false;
                return 0;
        }
        if (!json_is_string(v))
                return FAIL(err, "field '%s' is %s; accepted: an IPv4 or IPv6 address or CIDR, or "
                            "\"\"/\"any\" for any", key, json_type_name(v));
        s = json_string_value(v);
        if (streq(s, "") || streq(s, "any")) {
                *ret_has = false;
                return 0;
        }
        r = cidr_parse(s, true, ret);
        if (r == -ERANGE)
                return FAIL(err, "field '%s': bad prefix length in '%.64s'; accepted: /0-/32 for "
                            "IPv4, /0-/128 for IPv6", key, s);
        if (r == -EADDRNOTAVAIL)
                return FAIL(err, "field '%s': '%.64s' has bits set beyond its prefix length; "
                            "accepted: a network address such as 10.0.0.0/8", key, s);
        if (r < 0)
                return FAIL(err, "field '%s': '%.64s' is not an address; accepted: an IPv4 or "
                            "IPv6 address or CIDR (e.g. 192.0.2.0/24, 2001:db8::/32), or \"\"/"
                            "\"any\"", key, s);
        *ret_has = true;
        return 0;
}

static int read_ports(const char *key, json_t *v, PortRange *ret, char **err) {
        if (json_is_integer(v)) {
                long long n = json_integer_value(v);

                if (n < 0 || n > 65535)
                        return FAIL(err, "field '%s': %lld is out of range; accepted: 0-65535 (0 "
                                    "= any) or a range \"LO-HI\"", key, n);
                *ret = n == 0 ? (PortRange) { 0, 65535 } : (PortRange) { (uint16_t) n, (uint16_t) n };
                return 0;
        }
        if (json_is_string(v) && port_range_parse(json_string_value(v), ret) == 0)
                return 0;
        if (json_is_string(v))
                return FAIL(err, "field '%s': '%.32s' is not a port or range; accepted: 0-65535 "
                            "(0 = any), \"LO-HI\" with LO <= HI, or \"any\"", key,
                            json_string_value(v));
        return FAIL(err, "field '%s' is %s; accepted: a port 0-65535 or a range \"LO-HI\"", key,
                    json_type_name(v));
}

static int read_string(const char *key, json_t *v, size_t max, char **ret, char **err) {
        char *s;

        if (!json_is_string(v))
                return FAIL(err, "field '%s' is %s; accepted: a string", key, json_type_name(v));
        if (json_string_length(v) > max)
                return FAIL(err, "field '%s' is %zu bytes long; accepted: at most %zu", key,
                            json_string_length(v), max);
        if (strlen(json_string_value(v)) != json_string_length(v))
                return FAIL(err, "field '%s' contains a NUL byte", key);
        s = strdup(json_string_value(v));
        if (!s)
                return -ENOMEM;
        free(*ret);
        *ret = s;
        return 0;
}

static bool is_icmp_error(int protocol, uint8_t type) {
        if (protocol == IPPROTO_ICMP)
                return type == 3 || type == 4 || type == 5 || type == 11 || type == 12;
        if (protocol == IPPROTO_ICMPV6)
                return type >= 1 && type <= 4;
        return false;
}

static bool proto_has_ports(int p) {
        return p == IPPROTO_TCP || p == IPPROTO_UDP || p == IPPROTO_SCTP || p == IPPROTO_UDPLITE;
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
                if (f->protocol != IPPROTO_ICMP && f->protocol != IPPROTO_ICMPV6)
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
            !proto_has_ports(f->protocol))
                return FAIL(err, "fields 'src_port'/'dst_port' need protocol tcp, udp, sctp or "
                            "udplite");
        if (f->tcp_flags & ~f->tcp_flags_mask)
                return FAIL(err, "field 'tcp_flags' (%u) has bits outside 'tcp_flags_mask' (%u); "
                            "accepted: flags that are a subset of the mask", f->tcp_flags,
                            f->tcp_flags_mask);
        if (f->tcp_flags_mask && f->protocol != IPPROTO_TCP)
                return FAIL(err, "fields 'tcp_flags'/'tcp_flags_mask' need protocol tcp");
        if ((f->icmp_type != ICMP_ANY || f->icmp_code != ICMP_ANY) &&
            f->protocol != IPPROTO_ICMP && f->protocol != IPPROTO_ICMPV6)
                return FAIL(err, "fields 'icmp_type'/'icmp_code' need protocol icmp or icmpv6");

        if (f->has_inner_src || f->has_inner_dst || f->inner_protocol != PROTO_ANY ||
            !port_range_is_any(f->inner_src_port) || !port_range_is_any(f->inner_dst_port)) {
                if (f->protocol != IPPROTO_ICMP && f->protocol != IPPROTO_ICMPV6)
                        return FAIL(err, "the inner_* fields match the header an ICMP error "
                                    "quotes; they need protocol icmp or icmpv6");
                if (f->icmp_type != ICMP_ANY && !is_icmp_error(f->protocol, f->icmp_type))
                        return FAIL(err, "the inner_* fields need an ICMP error type (icmp 3, 4, "
                                    "5, 11, 12; icmpv6 1-4) or icmp_type 255; got %u",
                                    f->icmp_type);
                if ((!port_range_is_any(f->inner_src_port) || !port_range_is_any(f->inner_dst_port)) &&
                    !proto_has_ports(f->inner_protocol))
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

static const char *const known_fields =
        "rule_type, protocol, src_ip, dst_ip, src_port, dst_port, tcp_flags, tcp_flags_mask, "
        "icmp_type, icmp_code, inner_src_ip, inner_dst_ip, inner_protocol, inner_src_port, "
        "inner_dst_port, action, enabled, comment, priority, timeout, force";

int filter_from_json(Filter *f, json_t *obj, FilterParseFlags flags, char **ret_error) {
        Filter n;
        const char *key;
        json_t *v;
        bool protocol_given = false, mask_given = false, flags_given = false;
        bool expires_given = false;
        uint64_t expires = 0;
        long long x;
        int r;

        if (!json_is_object(obj))
                return FAIL(ret_error, "a rule must be a JSON object, got %s", json_type_name(obj));

        r = filter_copy(&n, f);
        if (r < 0)
                return r;

        json_object_foreach(obj, key, v) {
                r = 0;
                if (streq(key, "rule_type")) {
                        size_t i;

                        if (!json_is_string(v)) {
                                r = FAIL(ret_error, "field 'rule_type' is %s; accepted: basic, tcp, "
                                         "udp, icmp", json_type_name(v));
                                goto fail;
                        }
                        for (i = 0; i < ELEMENTSOF(rule_type_names); i++)
                                if (streq(json_string_value(v), rule_type_names[i]))
                                        break;
                        if (i == ELEMENTSOF(rule_type_names)) {
                                r = FAIL(ret_error, "field 'rule_type': unknown value '%.32s'; "
                                         "accepted: basic, tcp, udp, icmp", json_string_value(v));
                                goto fail;
                        }
                        n.rule_type = (RuleType) i;
                } else if (streq(key, "protocol")) {
                        r = read_protocol(key, v, &n.protocol, ret_error);
                        protocol_given = true;
                } else if (streq(key, "src_ip"))
                        r = read_cidr(key, v, &n.has_src, &n.src, ret_error);
                else if (streq(key, "dst_ip"))
                        r = read_cidr(key, v, &n.has_dst, &n.dst, ret_error);
                else if (streq(key, "src_port"))
                        r = read_ports(key, v, &n.src_port, ret_error);
                else if (streq(key, "dst_port"))
                        r = read_ports(key, v, &n.dst_port, ret_error);
                else if (streq(key, "tcp_flags")) {
                        r = read_int(key, v, 0, 255, &x, ret_error);
                        n.tcp_flags = (uint8_t) x;
                        flags_given = true;
                } else if (streq(key, "tcp_flags_mask")) {
                        r = read_int(key, v, 0, 255, &x, ret_error);
                        n.tcp_flags_mask = (uint8_t) x;
                        mask_given = true;
                } else if (streq(key, "icmp_type")) {
                        r = read_int(key, v, 0, 255, &x, ret_error);
                        n.icmp_type = (uint8_t) x;
                } else if (streq(key, "icmp_code")) {
                        r = read_int(key, v, 0, 255, &x, ret_error);
                        n.icmp_code = (uint8_t) x;
                } else if (streq(key, "inner_src_ip"))
                        r = read_cidr(key, v, &n.has_inner_src, &n.inner_src, ret_error);
                else if (streq(key, "inner_dst_ip"))
                        r = read_cidr(key, v, &n.has_inner_dst, &n.inner_dst, ret_error);
                else if (streq(key, "inner_protocol"))
                        r = read_protocol(key, v, &n.inner_protocol, ret_error);
                else if (streq(key, "inner_src_port"))
                        r = read_ports(key, v, &n.inner_src_port, ret_error);
                else if (streq(key, "inner_dst_port"))
                        r = read_ports(key, v, &n.inner_dst_port, ret_error);
                else if (streq(key, "action")) {
                        const char *s = json_is_string(v) ? json_string_value(v) : NULL;

                        if (s && streq(s, "drop"))
                                n.action = FILTER_DROP;
                        else if (s && streq(s, "pass"))
                                n.action = FILTER_PASS;
                        else if (s && streq(s, "count"))
                                n.action = FILTER_COUNT;
                        else if (s)
                                r = FAIL(ret_error, "field 'action': unknown value '%.32s'; "
                                         "accepted: drop, pass, count", s);
                        else
                                r = FAIL(ret_error, "field 'action' is %s; accepted: drop, pass, "
                                         "count", json_type_name(v));
                } else if (streq(key, "enabled"))
                        r = read_bool(key, v, &n.enabled, ret_error);
                else if (streq(key, "force"))
                        r = read_bool(key, v, &n.force, ret_error);
                else if (streq(key, "comment"))
                        r = read_string(key, v, FILTER_COMMENT_MAX, &n.comment, ret_error);
                else if (streq(key, "priority")) {
                        r = read_int(key, v, FILTER_PRIORITY_MIN, FILTER_PRIORITY_MAX, &x, ret_error);
                        n.priority = (int32_t) x;
                } else if (streq(key, "timeout")) {
                        r = read_int(key, v, 0, FILTER_TIMEOUT_MAX, &x, ret_error);
                        n.timeout_sec = (uint64_t) x;
                        n.expires_usec = 0; /* recomputed by the store from now */
                } else if (streq(key, "id")) {
                        r = read_int(key, v, 0, UINT32_MAX, &x, ret_error);
                        if (r == 0 && (flags & FILTER_PARSE_IMPORT))
                                n.id = (uint32_t) x;
                        else if (r == 0 && (flags & FILTER_PARSE_UPDATE) && (uint32_t) x != f->id)
                                r = FAIL(ret_error, "field 'id' is %lld but this is rule %u; the "
                                         "id cannot be changed", x, f->id);
                        else if (r == 0 && !(flags & (FILTER_PARSE_UPDATE | FILTER_PARSE_IMPORT)))
                                r = FAIL(ret_error, "field 'id' is assigned by the daemon; leave "
                                         "it out when adding a rule");
                } else if ((flags & FILTER_PARSE_IMPORT) &&
                           (streq(key, "created") || streq(key, "expires"))) {
                        r = read_int(key, v, 0, INT64_MAX, &x, ret_error);
                        if (r == 0 && streq(key, "created"))
                                n.created_usec = (uint64_t) x;
                        else if (r == 0) {
                                expires = (uint64_t) x;
                                expires_given = true;
                        }
                } else if (streq(key, "hits") || streq(key, "bytes") || streq(key, "last_hit") ||
                           streq(key, "created") || streq(key, "expires")) {
                        if (!(flags & FILTER_PARSE_IMPORT))
                                r = FAIL(ret_error, "field '%s' is read-only", key);
                } else
                        r = FAIL(ret_error, "unknown field '%.64s'; accepted: %s", key, known_fields);
                if (r < 0)
                        goto fail;
        }

        if (expires_given) /* whatever the key order, an exported expiry survives the import */
                n.expires_usec = n.timeout_sec ? expires : 0;

        /* Defaults that follow other fields, as in the Guarder. */
        if (!protocol_given && (!(flags & FILTER_PARSE_UPDATE) || json_object_get(obj, "rule_type")))
                n.protocol = protocol_for_rule_type(n.rule_type);
        if (flags_given && !mask_given && !(flags & FILTER_PARSE_UPDATE))
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

static json_t *cidr_json(bool has, const Cidr *c) {
        char buf[ADDR_STRLEN], out[ADDR_STRLEN + 8];
        unsigned full = c->family == ADDR_FAMILY_IPV4 ? 32 : 128;

        if (!has)
                return json_string("");
        addr_to_string(c->family, c->addr, buf);
        if (c->prefixlen == full)
                return json_string(buf);
        snprintf(out, sizeof out, "%s/%u", buf, c->prefixlen);
        return json_string(out);
}

static json_t *ports_json(PortRange r) {
        char buf[16];

        if (port_range_is_any(r))
                return json_integer(0);
        if (r.lo == r.hi)
                return json_integer(r.lo);
        return json_string(port_range_to_string(r, buf));
}

static json_t *protocol_json(int p) {
        char buf[4];

        if (p == PROTO_ANY)
                return json_string("any");
        return json_string(protocol_to_string((uint8_t) p, buf));
}

json_t *filter_to_json(const Filter *f) {
        json_t *o = json_object();

        if (!o)
                return NULL;
        /* json_object_set_new steals each value. */
        json_object_set_new(o, "id", json_integer(f->id));
        json_object_set_new(o, "rule_type", json_string(rule_type_to_string(f->rule_type)));
        json_object_set_new(o, "protocol", protocol_json(f->protocol));
        json_object_set_new(o, "src_ip", cidr_json(f->has_src, &f->src));
        json_object_set_new(o, "dst_ip", cidr_json(f->has_dst, &f->dst));
        json_object_set_new(o, "src_port", ports_json(f->src_port));
        json_object_set_new(o, "dst_port", ports_json(f->dst_port));
        json_object_set_new(o, "tcp_flags", json_integer(f->tcp_flags));
        json_object_set_new(o, "tcp_flags_mask", json_integer(f->tcp_flags_mask));
        json_object_set_new(o, "icmp_type", json_integer(f->icmp_type));
        json_object_set_new(o, "icmp_code", json_integer(f->icmp_code));
        json_object_set_new(o, "inner_src_ip", cidr_json(f->has_inner_src, &f->inner_src));
        json_object_set_new(o, "inner_dst_ip", cidr_json(f->has_inner_dst, &f->inner_dst));
        json_object_set_new(o, "inner_protocol", protocol_json(f->inner_protocol));
        json_object_set_new(o, "inner_src_port", ports_json(f->inner_src_port));
        json_object_set_new(o, "inner_dst_port", ports_json(f->inner_dst_port));
        json_object_set_new(o, "action", json_string(filter_action_to_string(f->action)));
        json_object_set_new(o, "enabled", json_boolean(f->enabled));
        json_object_set_new(o, "comment", json_string(f->comment ? f->comment : ""));
        json_object_set_new(o, "priority", json_integer(f->priority));
        json_object_set_new(o, "timeout", json_integer((json_int_t) f->timeout_sec));
        json_object_set_new(o, "expires", json_integer((json_int_t) f->expires_usec));
        json_object_set_new(o, "created", json_integer((json_int_t) f->created_usec));
        json_object_set_new(o, "hits", json_integer((json_int_t) f->hits));
        json_object_set_new(o, "bytes", json_integer((json_int_t) f->bytes));
        json_object_set_new(o, "last_hit", json_integer((json_int_t) f->last_hit_usec));
        return o;
}
