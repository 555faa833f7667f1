/* SPDX-License-Identifier: MIT */
/*
 * The rule of filter add, update and test: the JSON given with --json (or a file for apply), the
 * field options on top of it, checked here only as far as the a{sv} of the bus needs; the daemon
 * validates the rule itself and says what is wrong with it.
 */
#include <assert.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <strings.h>
#include <unistd.h>

#include "addr.h"
#include "packetscopectl.h"

/*
 * The rule field options are the fields of the rule table (rule.h) that name an option: --src-ip
 * sets src_ip. --protocol is left to the verb options, which share it with the queries. A value
 * is read by its field's bus type and range unless the field has a syntax of its own below; the
 * daemon validates the rule as a whole.
 */
typedef int (*RuleOptionParse)(const RuleField *d, const char *value);

static int rule_field_set(const RuleField *d, json_t *value) {
        assert(d);

        if (!value)
                return -ENOMEM;
        if (!arg.fields && !(arg.fields = json_object())) {
                json_decref(value);
                return -ENOMEM;
        }
        return json_object_set_new(arg.fields, d->key, value) < 0 ? -ENOMEM : 0; /* steals value */
}

static int parse_rule_choice(const RuleField *d, const char *value, const char *const *choices) {
        const char *choice;
        int r;

        r = parse_choice(d->option, value, choices, &choice);
        return r < 0 ? r : rule_field_set(d, json_string(choice));
}

static int parse_rule_type(const RuleField *d, const char *value) {
        const char *const types[] = {
                rule_type_to_string(RULE_BASIC), rule_type_to_string(RULE_TCP),
                rule_type_to_string(RULE_UDP), rule_type_to_string(RULE_ICMP), NULL,
        };

        return parse_rule_choice(d, value, types);
}

static int parse_rule_action(const RuleField *d, const char *value) {
        const char *const verdicts[] = {
                filter_verdict_to_string(FILTER_DROP), filter_verdict_to_string(FILTER_PASS),
                filter_verdict_to_string(FILTER_COUNT), NULL,
        };

        return parse_rule_choice(d, value, verdicts);
}

static int parse_rule_address(const RuleField *d, const char *value) {
        Cidr cidr;
        int r;

        if (!streq(value, "any") && !streq(value, "")) {
                r = cidr_parse(value, true, &cidr);
                if (r == -EADDRNOTAVAIL)
                        return usage_error("invalid value '%s' for --%s: bits are set beyond the "
                                           "prefix length; accepted: a network address such as "
                                           "10.0.0.0/8", value, d->option);
                if (r < 0)
                        return usage_error("invalid value '%s' for --%s; accepted: an IPv4 or IPv6 "
                                           "address or prefix (e.g. 192.0.2.7, 10.0.0.0/8, "
                                           "2001:db8::/32) or 'any'", value, d->option);
        }
        return rule_field_set(d, json_string(value));
}

/* A single port goes as a number, as in the Guarder's JSON; a range as its text. */
static int parse_rule_port(const RuleField *d, const char *value) {
        const char *dash = strchr(value, '-');
        uint32_t lo, hi;

        if (streq(value, "any"))
                return rule_field_set(d, json_string(value));
        if (!dash && safe_atou32(value, &lo) == 0 && lo <= 65535)
                return rule_field_set(d, json_integer(lo));
        if (dash && dash > value) {
                _cleanup_free_ char *first = strndup(value, (size_t) (dash - value));

                if (!first)
                        return -ENOMEM;
                if (safe_atou32(first, &lo) == 0 && safe_atou32(dash + 1, &hi) == 0 && lo <= hi &&
                    hi <= 65535)
                        return rule_field_set(d, json_string(value));
        }
        return usage_error("invalid value '%s' for --%s; accepted: a port 0-65535 (0 = any), a "
                           "range LO-HI with LO <= HI, or 'any'", value, d->option);
}

static int parse_rule_tcp_flags(const RuleField *d, const char *value) {
        static const char *const flag_names[] = {
                "fin", "syn", "rst", "psh", "ack", "urg", "ece", "cwr",
        };
        const char *p = value;
        unsigned flags = 0;
        uint32_t n;

        if (safe_atou32(value, &n) == 0 && n <= 255)
                return rule_field_set(d, json_integer(n));
        while (*p) {
                size_t l = strcspn(p, ",|+"), k;

                for (k = 0; k < ELEMENTSOF(flag_names); k++)
                        if (l == strlen(flag_names[k]) && strncasecmp(p, flag_names[k], l) == 0)
                                break;
                if (k == ELEMENTSOF(flag_names))
                        break;
                flags |= 1u << k; /* TCP_FLAG_FIN is bit 0, and so on in this order */
                p += l;
                if (*p && *++p == '\0')
                        break; /* a trailing separator */
        }
        if (*value && !*p && p[-1] != ',' && p[-1] != '|' && p[-1] != '+')
                return rule_field_set(d, json_integer(flags));
        return usage_error("invalid value '%s' for --%s; accepted: a number 0-255 or flag names "
                           "joined by ',' (fin, syn, rst, psh, ack, urg, ece, cwr), e.g. syn,ack",
                           value, d->option);
}

static int parse_rule_icmp(const RuleField *d, const char *value) {
        uint32_t n;

        if (streq(value, "any"))
                return rule_field_set(d, json_integer(ICMP_ANY));
        if (safe_atou32(value, &n) == 0 && n <= 255)
                return rule_field_set(d, json_integer(n));
        return usage_error("invalid value '%s' for --%s; accepted: a number 0-255, or 255 or "
                           "'any' for any", value, d->option);
}

/* The same names as --protocol, kept apart from it. */
static int parse_rule_protocol(const RuleField *d, const char *value) {
        char protocol[sizeof arg.protocol];
        int r;

        r = parse_protocol(value, protocol, sizeof protocol);
        return r < 0 ? r : rule_field_set(d, json_string(protocol));
}

static int parse_rule_timeout(const RuleField *d, const char *value) {
        uint64_t usec;

        if (parse_time_span(value, &usec) < 0 || usec % USEC_PER_SEC != 0 ||
            usec / USEC_PER_SEC > (uint64_t) d->max)
                return usage_error("invalid value '%s' for --%s; accepted: whole seconds from 0 "
                                   "(permanent) to %lld (366 days), e.g. 300, 5min, 2h", value,
                                   d->option, d->max);
        return rule_field_set(d, json_integer((json_int_t) (usec / USEC_PER_SEC)));
}

static int parse_rule_flag(const RuleField *d, const char *value) {
        return rule_field_set(d, json_true());
}

/* By the field's bus type: a boolean, an integer in the field's range, or text. */
static int parse_rule_value(const RuleField *d, const char *value) {
        bool negative = value[0] == '-';
        uint64_t u;
        int r;

        if (d->offset_has > 0) /* an address, and whether there is one */
                return parse_rule_address(d, value);
        if (d->bus_type == 'b') {
                r = parse_boolean(value);
                if (r < 0)
                        return usage_error("invalid value '%s' for --%s; accepted: yes or no (also "
                                           "true/false, on/off, 1/0)", value, d->option);
                return rule_field_set(d, json_boolean(r));
        }
        if (!strchr("ynqiuxt", d->bus_type))
                return rule_field_set(d, json_string(value));
        if (safe_atou64(negative ? value + 1 : value, &u) < 0 ||
            (negative ? d->min > 0 || u > (uint64_t) -(d->min + 1) + 1 : u > (uint64_t) d->max))
                return usage_error("invalid value '%s' for --%s; accepted: an integer from %lld to "
                                   "%lld", value, d->option, d->min, d->max);
        return rule_field_set(d, json_integer(negative ? -(json_int_t) u : (json_int_t) u));
}

/* The fields whose option takes more than their bus type says (names, "any", ranges, spans). */
static const struct {
        const char *key;
        RuleOptionParse parse;
} rule_option_syntax[] = {
        { "rule_type",      parse_rule_type },
        { "src_port",       parse_rule_port },
        { "dst_port",       parse_rule_port },
        { "tcp_flags",      parse_rule_tcp_flags },
        { "tcp_flags_mask", parse_rule_tcp_flags },
        { "icmp_type",      parse_rule_icmp },
        { "icmp_code",      parse_rule_icmp },
        { "inner_protocol", parse_rule_protocol },
        { "inner_src_port", parse_rule_port },
        { "inner_dst_port", parse_rule_port },
        { "action",         parse_rule_action },
        { "timeout",        parse_rule_timeout },
        { "force",          parse_rule_flag },
};

static RuleOptionParse rule_option_parser(const RuleField *d) {
        for (size_t i = 0; i < ELEMENTSOF(rule_option_syntax); i++)
                if (streq(d->key, rule_option_syntax[i].key))
                        return rule_option_syntax[i].parse;
        return parse_rule_value;
}

static bool rule_field_is_option(const RuleField *d) {
        return d->option && !streq(d->option, "protocol");
}

/* The i-th field that is a rule option. */
static const RuleField *rule_option(size_t i) {
        for (size_t k = 0; k < rule_fields_n; k++)
                if (rule_field_is_option(&rule_fields[k]) && i-- == 0)
                        return &rule_fields[k];
        assert(!"a rule option index past the last");
        return NULL;
}

size_t n_rule_options(void) {
        size_t n = 0;

        for (size_t k = 0; k < rule_fields_n; k++)
                n += rule_field_is_option(&rule_fields[k]);
        return n;
}

const char *rule_option_name(size_t i) {
        return rule_option(i)->option;
}

/* A flag says yes by being there; every other rule option takes a value. */
bool rule_option_has_value(size_t i) {
        return rule_option_parser(rule_option(i)) != parse_rule_flag;
}

int rule_option_parse(size_t i, const char *value) {
        const RuleField *d = rule_option(i);

        if (value && !string_is_valid_utf8(value, SIZE_MAX))
                return usage_error("the value of --%s is not UTF-8 text", d->option);
        return rule_option_parser(d)(d, value);
}

/* What an export adds to a rule and only Import understands: the id and what the daemon keeps
 * or counts. Apply takes rules to add, so these are left out of a file given to it. */
static bool rule_key_read_only(const char *key) {
        const RuleField *d = rule_field_by_key(key);

        /* Under either name (created or created_usec). */
        return streq(key, "path") || (d && !(d->flags & RULE_FIELD_INPUT));
}

/* A rule goes to the bus as a flat a{sv}: every value must be a string, a number, a boolean or
 * null (left out, as the Guarder left a null field alone). On failure *ret_error says why. */
int rule_check(const json_t *rule, char **ret_error) {
        const char *key;
        json_t *v;

        assert(rule);
        assert(ret_error);

        if (!json_is_object(rule))
                return error_setf(ret_error, -EINVAL, "a rule must be a JSON object, got %s",
                                  json_type_name(rule));
        json_object_foreach((json_t *) rule, key, v) {
                if (json_is_object(v) || json_is_array(v))
                        return error_setf(ret_error, -EINVAL, "field '%s' is %s; accepted: a "
                                          "string, a number or true/false", key, json_type_name(v));
                /* sd-bus strings end at the first NUL: refuse rather than cut. */
                if (json_is_string(v) && strlen(json_string_value(v)) != json_string_length(v))
                        return error_setf(ret_error, -EINVAL, "field '%s' contains a NUL character",
                                          key);
        }
        return 0;
}

/* The JSON types map one to one: string s, integer x, boolean b, fraction d (which the daemon
 * refuses with its own message); the daemon takes any integer type for a number field. */
int append_rule(sd_bus_message *m, const json_t *rule, bool skip_read_only) {
        const char *key;
        json_t *v;
        int r;

        assert(m);
        assert(rule);

        r = sd_bus_message_open_container(m, 'a', "{sv}");
        if (r < 0)
                return r;
        json_object_foreach((json_t *) rule, key, v) {
                if (skip_read_only && rule_key_read_only(key))
                        continue;
                switch (json_typeof(v)) {
                case JSON_STRING:
                        r = sd_bus_message_append(m, "{sv}", key, "s", json_string_value(v));
                        break;
                case JSON_INTEGER:
                        r = sd_bus_message_append(m, "{sv}", key, "x",
                                                  (int64_t) json_integer_value(v));
                        break;
                case JSON_REAL:
                        r = sd_bus_message_append(m, "{sv}", key, "d", json_real_value(v));
                        break;
                case JSON_TRUE:
                case JSON_FALSE:
                        r = sd_bus_message_append(m, "{sv}", key, "b", json_is_true(v));
                        break;
                case JSON_NULL:
                        r = 0;
                        break;
                default:
                        r = -EINVAL; /* rule_check() came first */
                }
                if (r < 0)
                        return r;
        }
        return sd_bus_message_close_container(m);
}

/* FILE, or "-" for standard input: at most INPUT_MAX bytes of UTF-8 text. Says what went
 * wrong itself. */
int read_input(const char *name, char **ret) {
        _cleanup_close_ int fd = -1;
        _cleanup_free_ char *buf = NULL;
        const char *shown, *q;
        size_t used = 0, alloc = 0;
        int in = STDIN_FILENO, r;

        assert(name);
        assert(ret);

        shown = streq(name, "-") ? "standard input" : name;
        if (!streq(name, "-")) {
                fd = open(name, O_RDONLY | O_CLOEXEC | O_NOCTTY);
                if (fd < 0) {
                        r = -errno;
                        fprintf(stderr, "packetscopectl: cannot open '%s': %s\n", name,
                                strerror(-r));
                        return r;
                }
                in = fd;
        }
        q = fd >= 0 ? "'" : ""; /* a file name is quoted, standard input is not */
        for (;;) {
                ssize_t n;

                if (alloc - used < 4096) {
                        size_t na = alloc ? MIN(alloc * 2, (size_t) INPUT_MAX + 4096) : 65536;
                        char *nb = realloc(buf, na);

                        if (!nb)
                                return -ENOMEM;
                        buf = nb;
                        alloc = na;
                }
                n = read(in, buf + used, alloc - used - 1);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        r = -errno;
                        fprintf(stderr, "packetscopectl: cannot read %s%s%s: %s\n", q, shown, q,
                                strerror(-r));
                        return r;
                }
                if (n == 0)
                        break;
                used += (size_t) n;
                if (used > INPUT_MAX) {
                        fprintf(stderr, "packetscopectl: %s%s%s is larger than %u MiB\n", q, shown,
                                q, INPUT_MAX / (1024 * 1024));
                        return -EFBIG;
                }
        }
        buf[used] = '\0';
        /* The text goes to the bus as a string: no NUL bytes, valid UTF-8. */
        if (strlen(buf) != used || !string_is_valid_utf8(buf, SIZE_MAX)) {
                fprintf(stderr, "packetscopectl: %s%s%s is not UTF-8 text\n", q, shown, q);
                return -EBADMSG;
        }
        *ret = TAKE_PTR(buf);
        return 0;
}

/* The rule of filter add/update/test: the --json text (or standard input for "-"; NULL when
 * there is none), then the field options on top of it, so that "--json '{...}' --force" works
 * as it reads. */
int build_rule(const char *verb, const char *text, bool from_file) {
        _cleanup_free_ char *input = NULL, *err = NULL;
        _cleanup_json_ json_t *rule = NULL;
        const char *key;
        json_t *value;
        int r;

        assert(verb);

        if (text && (from_file || streq(text, "-"))) {
                r = read_input(text, &input);
                if (r < 0)
                        return r;
                text = input;
        }
        if (text) {
                json_error_t jerr;

                rule = json_loads(text, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
                if (!rule)
                        return usage_error("the rule given with %s is not valid JSON: line %d "
                                           "column %d: %s", from_file ? "--rule-file" : "--rule",
                                           jerr.line, jerr.column, jerr.text);
                r = rule_check(rule, &err);
                if (r == -ENOMEM)
                        return r;
                if (r < 0)
                        return usage_error("the rule given with %s: %s",
                                           from_file ? "--rule-file" : "--rule", err);
        } else {
                if (!arg.fields)
                        return usage_error("'%s' needs a rule: --rule JSON, --rule-file FILE, or field options such "
                                           "as --rule-type=tcp --dst-port=23 (see --help)", verb);
                rule = json_object();
                if (!rule)
                        return -ENOMEM;
        }
        if ((arg.given & OPT_PROTOCOL) &&
            rule_field_set(rule_field_by_key("protocol"), json_string(arg.protocol)) < 0)
                return -ENOMEM;
        if (arg.fields)
                json_object_foreach(arg.fields, key, value)
                        if (json_object_set(rule, key, value) < 0) /* adds a reference */
                                return -ENOMEM;
        arg.rule = TAKE_PTR(rule);
        return 0;
}
