/* SPDX-License-Identifier: MIT */
/*
 * packetscopectl: the command-line client of packetscoped. It only ever talks to the daemon over
 * the system bus (org.packetscope.Guarder1), so every mutating call goes through the daemon's
 * polkit checks; it never opens the pinned BPF maps itself. This file holds the command line:
 * the options, the verb table and the help; the verbs live in ctl-*.c, one file per family.
 */
#include <assert.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <strings.h>

#include "addr.h"
#include "packetscopectl.h"
#include "proto.h"

Arguments arg = {
        .legend = true,
        .ask_password = true,
        .pager = true,
        .color = "auto",
        .mode = "auto",
        .interval_usec = INTERVAL_DEFAULT,
};

int usage_error(const char *format, ...) {
        va_list ap;

        assert(format);

        fputs("packetscopectl: ", stderr);
        va_start(ap, format);
        vfprintf(stderr, format, ap);
        va_end(ap);
        fputs("\nTry 'packetscopectl --help' for more information.\n", stderr);
        return -EINVAL;
}

/* What a verb's arguments are, for checking them before anything is sent. */
typedef enum VerbArg {
        VERB_ARG_NONE,
        VERB_ARG_IFACE,
        VERB_ARG_FILTER_ID,
        VERB_ARG_FILE,
        VERB_ARG_TRANSACTION,
        VERB_ARG_HEALTH, /* history, or set KEY=VALUE... */
        VERB_ARG_ADDRESS,
} VerbArg;

typedef struct Verb {
        const char *name;
        int min_args;
        int max_args;
        uint64_t options;
        VerbArg args;
        bool rule; /* takes a rule: --json JSON and the field options */
        int (*run)(sd_bus *bus, char **args, int n_args);
        bool mutates; /* changes something: polkit may ask for a password */
        bool pages;   /* may print much: through the pager on a terminal */
} Verb;

#define QUERY_COMMON (OPT_TOP | OPT_OFFSET | OPT_SORT | OPT_ADDRESS | OPT_LINK | OPT_FAMILY)
/* The rule field options, and --protocol, which sets the rule's protocol. */
#define RULE_OPTIONS (OPT_RULE_FIELDS | OPT_PROTOCOL)

static const Verb verbs[] = {
        { "status", 0, 0, 0, VERB_ARG_NONE, false, verb_status, false, true },
        { "attach", 1, 1, OPT_MODE | OPT_ENSURE, VERB_ARG_IFACE, false, verb_attach, true },
        { "detach", 1, 1, OPT_ENSURE, VERB_ARG_IFACE, false, verb_detach, true },
        { "connections", 0, 0, QUERY_COMMON | OPT_PROTOCOL | OPT_PORT | OPT_STATE | OPT_FRESH,
          VERB_ARG_NONE, false, verb_connections, false, true },
        { "icmp", 0, 0, QUERY_COMMON | OPT_TYPE, VERB_ARG_NONE, false, verb_icmp, false, true },
        { "stats", 0, 0, 0, VERB_ARG_NONE, false, verb_stats, false, true },
        { "monitor", 0, 0, OPT_INTERVAL | OPT_COUNT | OPT_TOP, VERB_ARG_NONE, false, verb_monitor },
        { "filter", 0, 0, 0, VERB_ARG_NONE, false, NULL }, /* one of filter_verbs */
        /* health, health history, health set KEY=VALUE…: the words are checked by the verb */
        { "health", 0, 16, 0, VERB_ARG_HEALTH, false, verb_health, false, true },
        { "ban", 1, 1, OPT_FOR | OPT_REASON, VERB_ARG_ADDRESS, false, verb_ban, true },
        { "unban", 1, 1, 0, VERB_ARG_ADDRESS, false, verb_unban, true },
        { "bans", 0, 2, OPT_TOP | OPT_OFFSET | OPT_ADDRESS | OPT_ORIGIN | OPT_REPLACE,
          VERB_ARG_NONE, false, verb_bans, false, true },
        { "allowlist", 0, 2, 0, VERB_ARG_NONE, false, verb_allowlist },
        { "autoban", 0, 8, 0, VERB_ARG_NONE, false, verb_autoban },
        { "panic", 0, 1, 0, VERB_ARG_NONE, false, verb_panic },
};

/* "filter COMMAND": the word after "filter " is what the command line says. */
static const Verb filter_verbs[] = {
        { "filter list", 0, 0, 0, VERB_ARG_NONE, false, verb_filter_list, false, true },
        { "filter show", 1, 1, 0, VERB_ARG_FILTER_ID, false, verb_filter_show, false, true },
        { "filter add", 0, 0, RULE_OPTIONS | OPT_JSON_OUTPUT, VERB_ARG_NONE, true,
          verb_filter_add, true },
        { "filter update", 1, 1, RULE_OPTIONS, VERB_ARG_FILTER_ID, true, verb_filter_update, true },
        { "filter delete", 1, 1, 0, VERB_ARG_FILTER_ID, false, verb_filter_delete, true },
        { "filter enable", 1, 1, 0, VERB_ARG_FILTER_ID, false, verb_filter_enable, true },
        { "filter disable", 1, 1, 0, VERB_ARG_FILTER_ID, false, verb_filter_disable, true },
        { "filter import", 1, 1, OPT_REPLACE | OPT_DUPLICATES, VERB_ARG_FILE, false, verb_filter_import, true },
        { "filter export", 0, 0, 0, VERB_ARG_NONE, false, verb_filter_export, false, true },
        { "filter test", 0, 0, RULE_OPTIONS | OPT_JSON_OUTPUT, VERB_ARG_NONE, true,
          verb_filter_test, false, true },
        { "filter apply", 1, 1, OPT_REPLACE | OPT_CONFIRM | OPT_YES, VERB_ARG_FILE, false,
          verb_filter_apply, true },
        { "filter confirm", 0, 1, 0, VERB_ARG_TRANSACTION, false, verb_filter_confirm, true },
        { "filter rollback", 0, 1, 0, VERB_ARG_TRANSACTION, false, verb_filter_rollback, true },
};

#define FILTER_PREFIX "filter "

static void help(void) {
        printf("packetscopectl [OPTIONS...] COMMAND ...\n\n"
               "Query and control the packetscope network guard.\n\n"
               "Commands:\n"
               "  status                   Show the daemon, its links and traffic totals (default)\n"
               "  attach IFACE             Guard an interface\n"
               "  detach IFACE             Stop guarding an interface\n"
               "  connections              List tracked TCP/UDP/other flows\n"
               "  icmp                     List tracked ICMP/ICMPv6 traffic\n"
               "  stats                    Show all counters\n"
               "  monitor                  Show live totals and the fastest flows\n"
               "  health                   Show CPU, memory, disk, pressure and open anomalies\n"
               "  health history           List the open and recent anomalies\n"
               "  health set KEY=VALUE...  Change thresholds: cpu_percent, memory_percent,\n"
               "                           disk_mbps, pressure_percent, min_duration\n\n"
               "Filter commands:\n"
               "  filter list              List the filter rules (default)\n"
               "  filter show ID           Show every field of one rule\n"
               "  filter add RULE          Add a rule\n"
               "  filter update ID RULE    Change the given fields of a rule\n"
               "  filter delete ID         Remove a rule\n"
               "  filter enable ID         Let a rule take part again\n"
               "  filter disable ID        Keep a rule, but let it match nothing\n"
               "  filter import FILE       Add (or with --replace, set) the rules of a JSON file\n"
               "  filter export            Print every rule as JSON\n"
               "  filter test RULE         Show the tracked traffic a rule would match\n"
               "  filter apply FILE --confirm=SECONDS\n"
               "                           Apply rules that roll back unless confirmed\n"
               "  filter confirm [ID]      Keep the rules of the pending apply\n"
               "  filter rollback [ID]     Roll the pending apply back now\n"
               "  RULE is --rule JSON or --rule-file FILE (- for standard input) and/or the\n"
               "  rule field options below\n\n"
               "  ai config [--endpoint=URL] [--model=M] [--temperature=T] [--max-tokens=N]\n"
               "            [--timeout=S] [--debug=yes|no] [--key-file=F] [--clear-key]\n"
               "                           Show or change the AI assistant's settings\n"
               "  ai generate [--type=security|performance|balanced|custom] [--prompt=TEXT]\n"
               "              [--shadow=S] [--apply --confirm=S] [--no-wait]\n"
               "                           Have the model analyse the traffic and propose rules\n"
               "  ai analyze [...]         The analysis only\n"
               "  ai jobs | show JOB | shadow JOB SECONDS | apply JOB --confirm=S |\n"
               "  ai cancel JOB | delete JOB\n\n"
               "Ban commands:\n"
               "  ban ADDRESS[/LEN]        Drop every packet from it (--for, --reason)\n"
               "  unban ADDRESS[/LEN]      Lift a ban\n"
               "  bans [list]              List the bans (--origin, --address, --top, --offset)\n"
               "  bans get ADDRESS         Which ban covers an address, and the allowlist\n"
               "  bans import FILE         Add the bans of a file of ban lines, or of a JSON export\n"
               "                           (with --replace, set them; JSON only)\n"
               "  bans export              Print every ban as JSON\n"
               "  bans history             Bans, unbans and expiries from the journal\n"
               "  allowlist [list]         Addresses never banned\n"
               "  allowlist add|remove ADDRESS[/LEN]\n"
               "  autoban [status]         The automatic ban policies\n"
               "  autoban set POLICY KEY=VALUE...\n"
               "                           mode=off|count|enforce, threshold=, burst=, window=\n"
               "  autoban shadow POLICY on|off\n"
               "                           Report only (count), or ban (enforce)\n\n"
               "Panic mode:\n"
               "  panic on                 Drop all received traffic on every guarded link but\n"
               "                           management traffic (ManagementAddresses=/Ports=)\n"
               "  panic off                End it\n"
               "  panic [status]           Print on or off\n\n"
               "Options:\n"
               "  -h --help                Show this help\n"
               "     --version             Show the version\n"
               "     --json[=pretty|short|off]\n"
               "                           Print JSON; alone: pretty on a terminal, else short\n"
               "     --no-legend           Leave out column headers and footers\n"
               "     --no-pager            Don't pipe long output into a pager\n"
               "     --color=auto|always|never\n"
               "                           Colour states and drops (auto: on a terminal,\n"
               "                           unless $NO_COLOR is set)\n"
               "     --no-ask-password     Don't start a polkit agent to ask for a password\n"
               "     --mode=auto|native|generic\n"
               "                           XDP mode for attach (default: auto)\n"
               "     --ensure              attach: already guarded is success;\n"
               "                           detach: not guarded is success\n"
               "     --top=N               Rows to show, 1-%u (default: %u; monitor: %u)\n"
               "     --offset=N            Skip the first N rows\n"
               "     --sort=bytes|packets|last_seen|first_seen|rate\n"
               "                           Order of the rows\n"
               "     --protocol=PROTO      tcp, udp, icmp, icmpv6, sctp, gre, esp, ah, udplite\n"
               "                           or a number 0-255 (filters: also 'any')\n"
               "     --address=ADDR[/LEN]  Either end in this address or prefix\n"
               "     --port=N              Either port equal to N\n"
               "     --link=IFACE          Only this guarded interface\n"
               "     --family=ipv4|ipv6    Only this address family\n"
               "     --state=STATE         TCP state: none, syn, established, fin, rst\n"
               "     --type=N              ICMP type 0-255 (icmp)\n"
               "     --interval=SPAN       Monitor refresh, e.g. 1, 2s, 500ms (default: 1s)\n"
               "     --count=N             Monitor frames to show, then exit\n\n"
               "Rules (filter add, update, test):\n"
               "     --rule=JSON           The rule as a JSON object\n"
               "     --rule-file=FILE      The rule from a file (- for standard input)\n"
               "  and the rule field options, each one of the rule's JSON fields:\n"
               "     --rule-type=basic|tcp|udp|icmp\n"
               "     --src-ip=, --dst-ip=ADDR[/LEN]|any\n"
               "     --src-port=, --dst-port=N|LO-HI|any\n"
               "     --tcp-flags=, --tcp-flags-mask=N|FLAG,...  (fin, syn, rst, psh, ack, urg,\n"
               "                           ece, cwr)\n"
               "     --icmp-type=, --icmp-code=N|any\n"
               "     --inner-src-ip=, --inner-dst-ip=, --inner-protocol=,\n"
               "     --inner-src-port=, --inner-dst-port=   The datagram an ICMP error quotes\n"
               "     --action=drop|pass|count\n"
               "     --enabled=yes|no\n"
               "     --comment=TEXT\n"
               "     --priority=N          -%d to %d\n"
               "     --timeout=SPAN        Remove the rule after this long (plain: seconds)\n"
               "     --force               Pass the lock-out guard\n"

               "     --replace             import, apply: the rules become the whole set\n"
               "     --duplicates=keep|skip\n"
               "                           import: keep (with a warning) or leave out rules\n"
               "                           that exactly repeat one already there\n"
               "     --confirm=SECONDS     apply: roll back unless confirmed in time (1-%u)\n"
               "     --yes                 apply: confirm at once\n"
               "     --for=SPAN            ban: how long, e.g. 90s, 15min, 1h, 2d (default: until\n"
               "                           unbanned)\n"
               "     --reason=TEXT         ban: why, kept with the ban and in the journal\n"
               "     --origin=ORIGIN       bans: manual, import, ai, auto or auto:POLICY\n\n"
               "See the packetscopectl(1) man page for details.\n",
               TOP_MAX, TOP_DEFAULT, MONITOR_TOP_DEFAULT, FILTER_PRIORITY_MAX, FILTER_PRIORITY_MAX,
               PS_CONFIRM_MAX_SEC);
}

int parse_choice(const char *name, const char *value, const char *const *choices, const char **ret) {
        _cleanup_free_ char *list = NULL;
        size_t len = 0;

        assert(name);
        assert(value);
        assert(choices);
        assert(ret);

        for (size_t i = 0; choices[i]; i++) {
                if (streq(value, choices[i])) {
                        *ret = choices[i];
                        return 0;
                }
                len += strlen(choices[i]) + 2;
        }
        list = calloc(1, len + 1);
        if (!list)
                return -ENOMEM;
        for (size_t i = 0, at = 0; choices[i]; i++) {
                /* Sized above: every choice plus ", ". */
                int n = snprintf(list + at, len + 1 - at, "%s%s", i > 0 ? ", " : "", choices[i]);

                if (n < 0)
                        return -EINVAL;
                at += (size_t) n;
        }
        return usage_error("invalid value '%s' for --%s; accepted: %s", value, name, list);
}

/* The protocol as the daemon spells it, into buf: a name, a number 0-255, or "any". */
int parse_protocol(const char *value, char *buf, size_t size) {
        static const char *const names[] = {
                "tcp", "udp", "icmp", "icmpv6", "sctp", "gre", "esp", "ah", "udplite",
        };
        uint32_t n;

        assert(value);
        assert(buf);

        for (size_t i = 0; i < ELEMENTSOF(names); i++)
                if (strcasecmp(value, names[i]) == 0) {
                        snprintf(buf, size, "%s", names[i]);
                        return 0;
                }
        if (safe_atou32(value, &n) == 0 && n <= 255) {
                snprintf(buf, size, "%u", (unsigned) n);
                return 0;
        }
        /* A rule may match any protocol; whether the verb takes "any" is checked with it. */
        if (strcasecmp(value, "any") == 0) {
                snprintf(buf, size, "any");
                return 0;
        }
        return usage_error("invalid value '%s' for --protocol; accepted: tcp, udp, icmp, icmpv6, "
                           "sctp, gre, esp, ah, udplite or an IP protocol number 0-255", value);
}

/* A verb option's value: the kind says how it is read and where it goes. */
typedef enum OptionKind {
        OPTION_FLAG,    /* no value: arg.given says it all */
        OPTION_UINT,    /* an integer from min to max into the uint64_t at target */
        OPTION_CHOICE,  /* one of choices into the const char * at target */
        OPTION_PARSE,   /* parse(value) */
} OptionKind;

typedef struct VerbOption {
        const char *name;
        OptionKind kind;
        void *target;
        uint64_t min, max;
        const char *const *choices;
        int (*parse)(const char *value);
} VerbOption;

static int parse_protocol_option(const char *value) {
        return parse_protocol(value, arg.protocol, sizeof arg.protocol);
}

static int parse_address(const char *value) {
        Cidr cidr;

        if (cidr_parse(value, false, &cidr) < 0)
                return usage_error("invalid value '%s' for --address; accepted: an IPv4 or IPv6 "
                                   "address or prefix, e.g. 192.0.2.7, 10.0.0.0/8, 2001:db8::/32",
                                   value);
        arg.address = value;
        return 0;
}

static int parse_link(const char *value) {
        if (!ifname_valid(value))
                return usage_error("invalid value '%s' for --link; accepted: an interface name of "
                                   "1-15 characters", value);
        arg.link = value;
        return 0;
}

/* The connection states as the daemon names them. */
static int parse_state(const char *value) {
        const char *states[FLOW_STATE_RST + 2] = {};

        for (uint8_t i = FLOW_STATE_NONE; i <= FLOW_STATE_RST; i++)
                states[i] = flow_state_to_string(i);
        return parse_choice("state", value, states, &arg.state);
}

static int parse_interval(const char *value) {
        uint64_t usec;

        if (parse_time_span(value, &usec) < 0 || usec < INTERVAL_MIN || usec > INTERVAL_MAX)
                return usage_error("invalid value '%s' for --interval; accepted: a time span from "
                                   "100ms to 1h, e.g. 1, 2s, 500ms", value);
        arg.interval_usec = usec;
        return 0;
}

static int parse_for(const char *value) {
        uint64_t usec;

        if (parse_time_span(value, &usec) < 0 || usec / USEC_PER_SEC > PS_BAN_SECONDS_MAX)
                return usage_error("invalid value '%s' for --for; accepted: a time span up to ten "
                                   "years in systemd's syntax, e.g. 90s, 15min, 1h, 2d", value);
        arg.for_usec = usec;
        return 0;
}

static int parse_reason(const char *value) {
        arg.reason = value;
        return 0;
}

static const char *const sorts[] = { "bytes", "packets", "last_seen", "first_seen", "rate", NULL };
static const char *const families[] = { "ipv4", "ipv6", NULL };
static const char *const duplicates[] = { "keep", "skip", NULL };
static const char *const modes[] = { "auto", "native", "generic", "drv", "skb", NULL };
static const char *const origins[] = { "manual", "import", "ai", "auto", "auto:connections",
                                       "auto:syn-rate", "auto:port-scan", "auto:url", NULL };

static const VerbOption verb_options[_OPT_INDEX_RULE_FIRST] = {
        [OPT_INDEX_TOP]         = { "top", OPTION_UINT, &arg.top, 1, TOP_MAX },
        [OPT_INDEX_OFFSET]      = { "offset", OPTION_UINT, &arg.offset, 0, OFFSET_MAX },
        [OPT_INDEX_SORT]        = { "sort", OPTION_CHOICE, &arg.sort, .choices = sorts },
        [OPT_INDEX_PROTOCOL]    = { "protocol", OPTION_PARSE, .parse = parse_protocol_option },
        [OPT_INDEX_ADDRESS]     = { "address", OPTION_PARSE, .parse = parse_address },
        [OPT_INDEX_PORT]        = { "port", OPTION_UINT, &arg.port, 0, 65535 },
        [OPT_INDEX_LINK]        = { "link", OPTION_PARSE, .parse = parse_link },
        [OPT_INDEX_FAMILY]      = { "family", OPTION_CHOICE, &arg.family, .choices = families },
        [OPT_INDEX_STATE]       = { "state", OPTION_PARSE, .parse = parse_state },
        [OPT_INDEX_TYPE]        = { "type", OPTION_UINT, &arg.icmp_type, 0, 255 },
        [OPT_INDEX_MODE]        = { "mode", OPTION_CHOICE, &arg.mode, .choices = modes },
        [OPT_INDEX_INTERVAL]    = { "interval", OPTION_PARSE, .parse = parse_interval },
        [OPT_INDEX_COUNT]       = { "count", OPTION_UINT, &arg.count, 1, UINT64_MAX },
        [OPT_INDEX_ENSURE]      = { "ensure", OPTION_FLAG },
        [OPT_INDEX_REPLACE]     = { "replace", OPTION_FLAG },
        [OPT_INDEX_CONFIRM]     = { "confirm", OPTION_UINT, &arg.confirm_sec, 1, PS_CONFIRM_MAX_SEC },
        [OPT_INDEX_YES]         = { "yes", OPTION_FLAG },
        [OPT_INDEX_JSON_OUTPUT] = { "json-output", OPTION_FLAG },
        [OPT_INDEX_FRESH]       = { "fresh", OPTION_FLAG },
        [OPT_INDEX_DUPLICATES]  = { "duplicates", OPTION_CHOICE, &arg.duplicates,
                                    .choices = duplicates },
        [OPT_INDEX_FOR]         = { "for", OPTION_PARSE, .parse = parse_for },
        [OPT_INDEX_REASON]      = { "reason", OPTION_PARSE, .parse = parse_reason },
        [OPT_INDEX_ORIGIN]      = { "origin", OPTION_CHOICE, &arg.origin, .choices = origins },
};

/* The verb options, then the rule field options: bit i of arg.given is option i. */
static size_t n_options(void) {
        return _OPT_INDEX_RULE_FIRST + n_rule_options();
}

static const char *option_name(size_t i) {
        assert(i < n_options());
        return i < _OPT_INDEX_RULE_FIRST ? verb_options[i].name
                                         : rule_option_name(i - _OPT_INDEX_RULE_FIRST);
}

static bool option_has_value(size_t i) {
        assert(i < n_options());
        return i < _OPT_INDEX_RULE_FIRST ? verb_options[i].kind != OPTION_FLAG
                                         : rule_option_has_value(i - _OPT_INDEX_RULE_FIRST);
}

static int parse_option(size_t i, const char *value) {
        const VerbOption *o;
        uint64_t v;

        assert(i < n_options());

        arg.given |= OPT_BIT(i);
        if (i >= _OPT_INDEX_RULE_FIRST)
                return rule_option_parse(i - _OPT_INDEX_RULE_FIRST, value);
        o = &verb_options[i];
        switch (o->kind) {
        case OPTION_UINT:
                if (safe_atou64(value, &v) < 0 || v < o->min || v > o->max)
                        return usage_error("invalid value '%s' for --%s; accepted: an integer "
                                           "from %" PRIu64 " to %" PRIu64, value, o->name, o->min,
                                           o->max);
                *(uint64_t *) o->target = v;
                return 0;
        case OPTION_CHOICE:
                return parse_choice(o->name, value, o->choices, o->target);
        case OPTION_PARSE:
                return o->parse(value);
        default:
                return 0;
        }
}

/* A bare --json, as systemd's tools read -j: pretty for a person, one line for a program. */
static JsonMode json_mode_auto(void) {
        return isatty(STDOUT_FILENO) ? JSON_PRETTY : JSON_SHORT;
}

static int parse_json_option(int argc, char *argv[]) {
        static const char *const json_modes[] = { "pretty", "short", "off", NULL };
        const char *mode;
        int r;

        if (optarg) {
                r = parse_choice("json", optarg, json_modes, &mode);
                if (r < 0)
                        return r;
                arg.json_explicit = true;
                arg.json = streq(mode, "short") ? JSON_SHORT
                           : streq(mode, "off") ? JSON_OFF : JSON_PRETTY;
                return 0;
        }
        /* "--json JSON" was how a rule was given before --rule: which word follows is
         * remembered, main() decides once the verb is known (options and words may come in any
         * order). */
        arg.json_next = optind < argc ? argv[optind] : NULL;
        if (!arg.json_explicit)
                arg.json = json_mode_auto();
        return 0;
}

static int parse_argv(int argc, char *argv[]) {
        enum {
                ARG_VERSION = 0x100,
                ARG_JSON,
                ARG_NO_LEGEND,
                ARG_NO_ASK_PASSWORD,
                ARG_RULE,
                ARG_RULE_FILE,
                ARG_NO_PAGER,
                ARG_COLOR,
                ARG_FIRST_OPTION, /* then one per option, in OptionIndex order */
        };
        static const struct option fixed[] = {
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                { "json", optional_argument, NULL, ARG_JSON },
                { "no-legend", no_argument, NULL, ARG_NO_LEGEND },
                { "no-ask-password", no_argument, NULL, ARG_NO_ASK_PASSWORD },
                { "rule", required_argument, NULL, ARG_RULE },
                { "rule-file", required_argument, NULL, ARG_RULE_FILE },
                { "no-pager", no_argument, NULL, ARG_NO_PAGER },
                { "color", required_argument, NULL, ARG_COLOR },
        };
        struct option options[ELEMENTSOF(fixed) + 64 + 1] = {};
        size_t k = 0;
        int c, r;

        assert(n_options() <= 64); /* one bit each in arg.given */
        for (; k < ELEMENTSOF(fixed); k++)
                options[k] = fixed[k];
        for (size_t i = 0; i < n_options(); i++)
                options[k++] = (struct option) {
                        option_name(i), option_has_value(i) ? required_argument : no_argument,
                        NULL, ARG_FIRST_OPTION + (int) i,
                };

        /* "+" would stop at the verb; options may follow it (connections --top 5), so permute. */
        opterr = 0;
        while ((c = getopt_long(argc, argv, ":h", options, NULL)) >= 0) {
                switch (c) {
                case 'h':
                        help();
                        return 0;
                case ARG_VERSION:
                        printf("packetscopectl %s\n", PACKETSCOPE_VERSION);
                        return 0;
                case ARG_JSON:
                        r = parse_json_option(argc, argv);
                        break;
                case ARG_NO_LEGEND:
                        arg.legend = false;
                        r = 0;
                        break;
                case ARG_NO_ASK_PASSWORD:
                        arg.ask_password = false;
                        r = 0;
                        break;
                case ARG_NO_PAGER:
                        arg.pager = false;
                        r = 0;
                        break;
                case ARG_COLOR: {
                        static const char *const color_modes[] = { "auto", "always", "never", NULL };

                        r = parse_choice("color", optarg, color_modes, &arg.color);
                        break;
                }
                case ARG_RULE:
                case ARG_RULE_FILE:
                        if (arg.rule_text || arg.rule_file)
                                return usage_error("give the rule once: --rule JSON or "
                                                   "--rule-file FILE");
                        if (c == ARG_RULE)
                                arg.rule_text = optarg;
                        else
                                arg.rule_file = optarg;
                        r = 0;
                        break;
                case ':':
                        return usage_error("option '%s' needs a value", argv[optind - 1]);
                case '?':
                        if (optopt)
                                return usage_error("unknown option '-%c'", optopt);
                        return usage_error("unknown option '%s'", argv[optind - 1]);
                default:
                        if (c < ARG_FIRST_OPTION || (size_t) (c - ARG_FIRST_OPTION) >= n_options())
                                return -EINVAL;
                        r = parse_option((size_t) (c - ARG_FIRST_OPTION), optarg);
                }
                if (r < 0)
                        return r;
        }
        return 1;
}

static int check_verb_options(const Verb *verb) {
        uint64_t extra = arg.given & ~verb->options;

        for (size_t i = 0; i < n_options(); i++) {
                char accepted[256] = "";

                if (!(extra & OPT_BIT(i)))
                        continue;
                for (size_t k = 0; k < ELEMENTSOF(verbs) + ELEMENTSOF(filter_verbs); k++) {
                        const Verb *v = k < ELEMENTSOF(verbs) ? &verbs[k]
                                                              : &filter_verbs[k - ELEMENTSOF(verbs)];

                        if (v->options & OPT_BIT(i)) {
                                if (accepted[0])
                                        strncat(accepted, ", ", sizeof accepted - strlen(accepted) - 1);
                                strncat(accepted, v->name, sizeof accepted - strlen(accepted) - 1);
                        }
                }
                return usage_error("option --%s does not apply to '%s'; it is accepted by: %s",
                                   option_name(i), verb->name, accepted);
        }
        /* "any" is a rule's wildcard, not something a query can ask for. */
        if ((arg.given & OPT_PROTOCOL) && streq(arg.protocol, "any") && !verb->rule)
                return usage_error("invalid value 'any' for --protocol with '%s'; accepted: tcp, "
                                   "udp, icmp, icmpv6, sctp, gre, esp, ah, udplite or an IP "
                                   "protocol number 0-255", verb->name);
        return 0;
}

static const Verb *verb_find(const Verb *table, size_t n, const char *name, size_t skip) {
        for (size_t i = 0; i < n; i++)
                if (streq(name, table[i].name + skip))
                        return &table[i];
        return NULL;
}

static const char *verb_arg_name(VerbArg a) {
        switch (a) {
        case VERB_ARG_IFACE: return "an interface name";
        case VERB_ARG_FILTER_ID: return "a filter id";
        case VERB_ARG_FILE: return "a file name (or - for standard input)";
        case VERB_ARG_TRANSACTION: return "at most a transaction id";
        case VERB_ARG_HEALTH: return "history, or set and KEY=VALUE words";
        case VERB_ARG_ADDRESS: return "an address or CIDR";
        default: return "nothing";
        }
}

/* Checks the words after the verb; the JSON of a rule verb is taken out of them first. */
static int check_verb_args(const Verb *verb, char **args, int *n_args, const char **ret_rule) {
        const char *rule = NULL;
        uint32_t id;

        if (verb->rule && arg.json_next && !arg.rule_text && !arg.rule_file)
                for (int i = 0; i < *n_args; i++)
                        if (args[i] == arg.json_next) {
                                rule = args[i];
                                memmove(args + i, args + i + 1, (size_t) (*n_args - i - 1) * sizeof(char *));
                                (*n_args)--;
                                fputs("packetscopectl: warning: '--json RULE' is deprecated; give "
                                      "the rule with --rule JSON or --rule-file FILE (--json "
                                      "selects JSON output)\n", stderr);
                                /* Unless a mode was given with "=", a bare --json that brought
                                 * the rule says nothing about the output. */
                                if (!arg.json_explicit)
                                        arg.json = JSON_OFF;
                                break;
                        }
        if (!verb->rule && (arg.rule_text || arg.rule_file))
                return usage_error("option --%s does not apply to '%s'; it is accepted by: "
                                   "filter add, filter update, filter test",
                                   arg.rule_text ? "rule" : "rule-file", verb->name);
        if (arg.rule_text)
                rule = arg.rule_text;
        if (*n_args < verb->min_args || *n_args > verb->max_args) {
                if (verb->max_args == 0)
                        return usage_error("'%s' takes no arguments, got '%s'", verb->name, args[0]);
                if (*n_args < verb->min_args)
                        return usage_error("'%s' needs %s", verb->name, verb_arg_name(verb->args));
                return usage_error("'%s' takes %s, got %d arguments", verb->name,
                                   verb_arg_name(verb->args), *n_args);
        }
        switch (verb->args) {
        case VERB_ARG_IFACE:
                if (!ifname_valid(args[0]))
                        return usage_error("invalid interface name '%s'; accepted: 1-15 characters "
                                           "without '/', ':' or blanks", args[0]);
                break;
        case VERB_ARG_FILTER_ID:
                if (safe_atou32(args[0], &id) < 0)
                        return usage_error("invalid filter id '%s'; accepted: a number 0-%" PRIu32
                                           " (see 'filter list')", args[0], UINT32_MAX);
                arg.filter_id = id;
                break;
        case VERB_ARG_HEALTH:
                if (health_check_args(args, *n_args) < 0)
                        return -EINVAL;
                break;
        default:
                break;
        }
        if ((verb->options & OPT_CONFIRM) && !(arg.given & OPT_CONFIRM))
                return usage_error("'%s' needs --confirm=SECONDS (1-%u): how long until the rules "
                                   "roll back unless confirmed", verb->name, PS_CONFIRM_MAX_SEC);
        *ret_rule = rule;
        return 0;
}

int main(int argc, char *argv[]) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        const Verb *verb = NULL;
        const char *name, *rule_text = NULL;
        char **args;
        int n_args, r;

        /* "ai" has options of its own (ctl-ai.c). */
        for (int i = 1; i < argc; i++)
                if (argv[i][0] != '-') {
                        if (streq(argv[i], "ai"))
                                return ctl_ai_main(argc, argv);
                        break;
                }

        r = parse_argv(argc, argv);
        if (r <= 0) {
                json_decref(arg.fields);
                return r < 0 ? EXIT_USAGE : EXIT_SUCCESS;
        }

        name = optind < argc ? argv[optind] : "status";
        args = optind < argc ? argv + optind + 1 : argv + argc;
        n_args = optind < argc ? argc - optind - 1 : 0;
        verb = verb_find(verbs, ELEMENTSOF(verbs), name, 0);
        if (!verb) {
                usage_error("unknown command '%s'; accepted: status, attach, detach, connections, "
                            "icmp, stats, monitor, filter, ai, health, ban, unban, bans, "
                            "allowlist, autoban", name);
                r = -EINVAL;
                goto finish;
        }
        if (!verb->run) {
                /* "filter" alone lists the rules. */
                name = n_args > 0 ? args[0] : "list";
                verb = verb_find(filter_verbs, ELEMENTSOF(filter_verbs), name, strlen(FILTER_PREFIX));
                if (!verb) {
                        usage_error("unknown command 'filter %s'; accepted: filter list, show, add, "
                                    "update, delete, enable, disable, import, export, test, apply, "
                                    "confirm, rollback",
                                    name);
                        r = -EINVAL;
                        goto finish;
                }
                if (n_args > 0) {
                        args++;
                        n_args--;
                }
        }
        r = check_verb_args(verb, args, &n_args, &rule_text);
        if (r >= 0)
                r = check_verb_options(verb);
        if (r >= 0 && (arg.given & OPT_JSON_OUTPUT)) {
                fputs("packetscopectl: warning: --json-output is deprecated; use --json\n", stderr);
                if (!arg.json_explicit)
                        arg.json = json_mode_auto();
        }
        if (r >= 0 && verb->rule)
                r = build_rule(verb->name, arg.rule_file ?: rule_text, arg.rule_file != NULL);
        if (r < 0)
                goto finish;

        r = sd_bus_open_system(&bus);
        if (r < 0) {
                fprintf(stderr, "packetscopectl: cannot connect to the system bus: %s\n",
                        strerror(-r));
                r = -EIO;
                goto finish;
        }
        /* polkit may ask the user (through an agent) for the mutating calls. */
        (void) sd_bus_set_allow_interactive_authorization(bus, arg.ask_password);

        /* "health set" changes the thresholds; "health" and "health history" only read. */
        /* Of the verbs with subcommands, these words change something. */
        if (verb->mutates ||
            (verb->run == verb_health && n_args > 0 && streq(args[0], "set")) ||
            ((verb->run == verb_bans || verb->run == verb_allowlist ||
              verb->run == verb_autoban) && n_args > 0 &&
             (streq(args[0], "import") || streq(args[0], "add") || streq(args[0], "remove") ||
              streq(args[0], "set") || streq(args[0], "shadow"))) ||
            (verb->run == verb_panic && n_args > 0 && !streq(args[0], "status"))) {
                r = polkit_agent_open();
                if (r < 0)
                        fprintf(stderr, "packetscopectl: cannot start the polkit agent: %s\n",
                                strerror(-r));
        }
        if (verb->pages)
                pager_open();
        r = verb->run(bus, args, n_args);
        polkit_agent_close();
        if (r == -ENOMEM)
                fputs("packetscopectl: out of memory\n", stderr);
        else if (r == -E2BIG) /* only a table past its cap returns it, and says nothing */
                fprintf(stderr, "packetscopectl: the output has more than %u table cells; use "
                        "--json\n", TABLE_CELLS_MAX);
        else if (r == -EIO && ferror(stdout))
                fputs("packetscopectl: cannot write the output\n", stderr);
        if (fflush(stdout) != 0 && r >= 0) {
                fprintf(stderr, "packetscopectl: cannot write the output: %s\n", strerror(errno));
                r = -EIO;
        }
        pager_close();
        json_decref(arg.fields);
        json_decref(arg.rule);
        return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;

finish:
        /* Only what was wrong on the command line is a usage error. */
        json_decref(arg.fields);
        json_decref(arg.rule);
        if (r == -ENOMEM)
                fputs("packetscopectl: out of memory\n", stderr);
        return r == -EINVAL ? EXIT_USAGE : EXIT_FAILURE;
}
