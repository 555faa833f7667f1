/* SPDX-License-Identifier: MIT */
/* The ban verbs: ban, unban, bans (list, get, import, export, history) and allowlist. */
#include <fcntl.h>
#include <inttypes.h>
#include <sys/stat.h>
#include <unistd.h>

#include "packetscopectl.h"

/* A row of Bans.List (and the "ban" of Bans.Get). */
typedef struct BanRow {
        uint64_t seen;
        const char *address, *origin, *reason;
        uint64_t id, created, until, offenses, packets, bytes, last_hit;
} BanRow;

static const BusField ban_fields[] = {
        { "address", BUS_FIELD_STRING, offsetof(BanRow, address) },
        { "origin", BUS_FIELD_STRING, offsetof(BanRow, origin) },
        { "reason", BUS_FIELD_STRING, offsetof(BanRow, reason) },
        { "id", BUS_FIELD_U64, offsetof(BanRow, id) },
        { "created", BUS_FIELD_U64, offsetof(BanRow, created) },
        { "until", BUS_FIELD_U64, offsetof(BanRow, until) },
        { "offenses", BUS_FIELD_U64, offsetof(BanRow, offenses) },
        { "packets", BUS_FIELD_U64, offsetof(BanRow, packets) },
        { "bytes", BUS_FIELD_U64, offsetof(BanRow, bytes) },
        { "last_hit", BUS_FIELD_U64, offsetof(BanRow, last_hit) },
};
static const BusDict ban_dict = BUS_DICT(ban_fields, BanRow);

int verb_ban(sd_bus *bus, char **args, int n_args) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        uint64_t seconds = arg.for_usec / USEC_PER_SEC;
        const char *path;
        int r;

        /* A span under a second would be "until unbanned" to the daemon: round it up. */
        if (arg.for_usec > 0 && seconds == 0)
                seconds = 1;
        r = bus_call(bus, PS_OBJECT_BANS, PS_IFACE_BANS, "Ban", NULL, &reply, "sts", args[0],
                     seconds, arg.reason ? arg.reason : "");
        if (r < 0)
                return r;
        if (arg.json != JSON_OFF)
                return print_reply_json(reply, "Ban");
        r = sd_bus_message_read(reply, "o", &path);
        if (r < 0)
                return bus_error("reading the Ban reply", NULL, r);
        printf("%s\n", path);
        return 0;
}

int verb_unban(sd_bus *bus, char **args, int n_args) {
        return bus_call(bus, PS_OBJECT_BANS, PS_IFACE_BANS, "Unban", NULL, NULL, "s", args[0]);
}

static int render_bans(const BanRow *rows, size_t n) {
        _cleanup_table_ Table *t = table_new("ADDRESS", "ORIGIN", "UNTIL", "OFFENSES", "PACKETS",
                                             "REASON", NULL);
        uint64_t now = now_usec(CLOCK_REALTIME);
        int r;

        if (!t)
                return -ENOMEM;
        table_align_right(t, (1u << 3) | (1u << 4));
        for (size_t i = 0; i < n; i++) {
                char until[FORMAT_RELATIVE_MAX];

                if (rows[i].until == 0)
                        snprintf(until, sizeof until, "unbanned");
                else
                        format_relative_time(until, sizeof until, now, rows[i].until);
                if ((r = table_add_cell(t, rows[i].address)) < 0 ||
                    (r = table_add_cell(t, rows[i].origin)) < 0 ||
                    (r = table_add_cell(t, until)) < 0 ||
                    (r = table_add_cellf(t, "%" PRIu64, rows[i].offenses)) < 0 ||
                    (r = table_add_cellf(t, "%" PRIu64, rows[i].packets)) < 0 ||
                    (r = table_add_cell(t, rows[i].reason && *rows[i].reason ? rows[i].reason
                                                                             : NULL)) < 0)
                        return r;
        }
        if (n > 0) {
                r = table_print(t, stdout, arg.legend);
                if (r < 0)
                        return r;
        }
        print_count_legend(n, "No bans.", "ban", "bans", "listed");
        return 0;
}

static int bans_list(sd_bus *bus) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *call = NULL, *reply = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_free_ BanRow *rows = NULL;
        size_t n;
        int r;

        r = sd_bus_message_new_method_call(bus, &call, PS_BUS_NAME, PS_OBJECT_BANS, PS_IFACE_BANS,
                                           "List");
        if (r >= 0)
                r = sd_bus_message_open_container(call, 'a', "{sv}");
        if (r >= 0)
                r = sd_bus_message_append(call, "{sv}", "limit", "u",
                                          (uint32_t) ((arg.given & OPT_TOP) ? arg.top
                                                                            : PS_BANS_LIST_MAX));
        if (r >= 0 && (arg.given & OPT_OFFSET))
                r = sd_bus_message_append(call, "{sv}", "offset", "u", (uint32_t) arg.offset);
        if (r >= 0 && arg.origin)
                r = sd_bus_message_append(call, "{sv}", "origin", "s", arg.origin);
        if (r >= 0 && arg.address)
                r = sd_bus_message_append(call, "{sv}", "address", "s", arg.address);
        if (r >= 0)
                r = sd_bus_message_close_container(call);
        if (r < 0)
                return bus_error("building the List call", NULL, r);
        r = sd_bus_call(bus, call, 0, &error, &reply);
        if (r < 0) {
                r = bus_error("List", &error, r);
                sd_bus_error_free(&error);
                return r;
        }
        if (arg.json != JSON_OFF)
                return print_reply_json(reply, "List");
        r = bus_read_rows(reply, &ban_dict, sizeof(BanRow), &(BanRow) {}, (void **) &rows, &n);
        if (r < 0)
                return bus_error("reading the bans", NULL, r);
        return render_bans(rows, n);
}

static int bans_get(sd_bus *bus, const char *address) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        r = bus_call(bus, PS_OBJECT_BANS, PS_IFACE_BANS, "Get", NULL, &reply, "s", address);
        if (r < 0)
                return r;
        return print_reply_json(reply, "Get");
}

/* Whether the text starts, after white space, as a JSON document does: then it is an export
 * document for Import; otherwise ban lines for BanFile. */
static bool looks_like_json(const char *p, size_t n) {
        for (size_t i = 0; i < n; i++) {
                if (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n')
                        continue;
                return p[i] == '{' || p[i] == '[';
        }
        return false;
}

/* Ban lines through BanFile: the file itself crosses the bus, as a descriptor. */
static int bans_import_lines(sd_bus *bus, int fd) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        uint32_t n;
        int r;

        if (arg.given & OPT_REPLACE)
                return usage_error("--replace takes a JSON export document; a file of ban lines "
                                   "is added to the bans held");
        r = bus_call(bus, PS_OBJECT_BANS, PS_IFACE_BANS, "BanFile", NULL, &reply, "hs", fd,
                     "import");
        if (r < 0)
                return r;
        r = sd_bus_message_read(reply, "u", &n);
        if (r < 0)
                return bus_error("reading the BanFile reply", NULL, r);
        printf("%" PRIu32 " bans imported.\n", n);
        return 0;
}

static int bans_import_json(sd_bus *bus, const char *text) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        uint32_t n;
        int r;

        r = bus_call(bus, PS_OBJECT_BANS, PS_IFACE_BANS, "Import", NULL, &reply, "ss", text,
                     (arg.given & OPT_REPLACE) ? "replace" : "merge");
        if (r < 0)
                return r;
        r = sd_bus_message_read(reply, "u", &n);
        if (r < 0)
                return bus_error("reading the Import reply", NULL, r);
        printf("%" PRIu32 " bans imported.\n", n);
        return 0;
}

/* A JSON export document goes to Import; ban lines (one a line: ADDRESS [DURATION [REASON]])
 * to BanFile, which takes the open file: a regular file as it is, standard input copied into a
 * sealed memfd. */
static int bans_import(sd_bus *bus, const char *file) {
        _cleanup_free_ char *text = NULL;
        _cleanup_close_ int fd = -1, mfd = -1;
        char head[4096];
        struct stat st;
        ssize_t k;
        int r;

        if (streq(file, "-")) {
                r = read_input(file, &text);
                if (r < 0)
                        return r;
                if (looks_like_json(text, strlen(text)))
                        return bans_import_json(bus, text);
                mfd = memfd_new_sealed("packetscopectl-bans", text, strlen(text));
                if (mfd < 0) {
                        fprintf(stderr, "packetscopectl: cannot put standard input in a memfd: "
                                "%s\n", strerror(-mfd));
                        return mfd;
                }
                return bans_import_lines(bus, mfd);
        }
        fd = open(file, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0 || fstat(fd, &st) < 0) {
                r = -errno;
                fprintf(stderr, "packetscopectl: cannot open '%s': %s\n", file, strerror(-r));
                return r;
        }
        if (!S_ISREG(st.st_mode)) {
                /* A pipe or a device: read as standard input is. */
                r = read_input(file, &text);
                if (r < 0)
                        return r;
                if (looks_like_json(text, strlen(text)))
                        return bans_import_json(bus, text);
                mfd = memfd_new_sealed("packetscopectl-bans", text, strlen(text));
                if (mfd < 0) {
                        fprintf(stderr, "packetscopectl: cannot put '%s' in a memfd: %s\n",
                                file, strerror(-mfd));
                        return mfd;
                }
                return bans_import_lines(bus, mfd);
        }
        do
                k = pread(fd, head, sizeof head, 0);
        while (k < 0 && errno == EINTR);
        if (k < 0) {
                r = -errno;
                fprintf(stderr, "packetscopectl: cannot read '%s': %s\n", file, strerror(-r));
                return r;
        }
        if (!looks_like_json(head, (size_t) k))
                return bans_import_lines(bus, fd);
        r = read_input(file, &text);
        if (r < 0)
                return r;
        return bans_import_json(bus, text);
}

static int bans_export(sd_bus *bus) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *text;
        int r;

        r = bus_call(bus, PS_OBJECT_BANS, PS_IFACE_BANS, "Export", NULL, &reply, NULL);
        if (r < 0)
                return r;
        r = sd_bus_message_read(reply, "s", &text);
        if (r < 0)
                return bus_error("reading the Export reply", NULL, r);
        fputs(text, stdout);
        if (!*text || text[strlen(text) - 1] != '\n')
                fputc('\n', stdout);
        return 0;
}

typedef struct HistoryRow {
        uint64_t seen;
        uint64_t time;
        const char *event, *address, *origin, *reason, *until, *message;
} HistoryRow;

static const BusField history_fields[] = {
        { "time", BUS_FIELD_U64, offsetof(HistoryRow, time) },
        { "event", BUS_FIELD_STRING, offsetof(HistoryRow, event) },
        { "address", BUS_FIELD_STRING, offsetof(HistoryRow, address) },
        { "origin", BUS_FIELD_STRING, offsetof(HistoryRow, origin) },
        { "reason", BUS_FIELD_STRING, offsetof(HistoryRow, reason) },
        { "until", BUS_FIELD_STRING, offsetof(HistoryRow, until) },
        { "message", BUS_FIELD_STRING, offsetof(HistoryRow, message) },
};
static const BusDict history_dict = BUS_DICT(history_fields, HistoryRow);

static int bans_history(sd_bus *bus) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *call = NULL, *reply = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_free_ HistoryRow *rows = NULL;
        _cleanup_table_ Table *t = NULL;
        size_t n;
        int r;

        r = sd_bus_message_new_method_call(bus, &call, PS_BUS_NAME, PS_OBJECT_BANS, PS_IFACE_BANS,
                                           "History");
        if (r >= 0)
                r = sd_bus_message_open_container(call, 'a', "{sv}");
        if (r >= 0 && (arg.given & OPT_TOP))
                r = sd_bus_message_append(call, "{sv}", "limit", "u", (uint32_t) arg.top);
        if (r >= 0 && arg.address)
                r = sd_bus_message_append(call, "{sv}", "address", "s", arg.address);
        if (r >= 0)
                r = sd_bus_message_close_container(call);
        if (r < 0)
                return bus_error("building the History call", NULL, r);
        r = sd_bus_call(bus, call, 0, &error, &reply);
        if (r < 0) {
                r = bus_error("History", &error, r);
                sd_bus_error_free(&error);
                return r;
        }
        if (arg.json != JSON_OFF)
                return print_reply_json(reply, "History");
        r = bus_read_rows(reply, &history_dict, sizeof(HistoryRow), &(HistoryRow) {},
                          (void **) &rows, &n);
        if (r < 0)
                return bus_error("reading the history", NULL, r);
        t = table_new("TIME", "EVENT", "ADDRESS", "ORIGIN", "UNTIL", "REASON", NULL);
        if (!t)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                char when[64];

                format_timestamp(when, sizeof when, rows[i].time);
                if ((r = table_add_cell(t, when)) < 0 || (r = table_add_cell(t, rows[i].event)) < 0 ||
                    (r = table_add_cell(t, rows[i].address)) < 0 ||
                    (r = table_add_cell(t, rows[i].origin)) < 0 ||
                    (r = table_add_cell(t, rows[i].until)) < 0 ||
                    (r = table_add_cell(t, rows[i].reason && *rows[i].reason ? rows[i].reason
                                                                             : NULL)) < 0)
                        return r;
        }
        if (n > 0) {
                r = table_print(t, stdout, arg.legend);
                if (r < 0)
                        return r;
        }
        print_count_legend(n, "No ban history.", "event", "events", "listed, newest first");
        return 0;
}

int verb_bans(sd_bus *bus, char **args, int n_args) {
        const char *sub = n_args > 0 ? args[0] : "list";
        int want = streq(sub, "import") || streq(sub, "get") ? 2 : 1;

        if (!streq(sub, "list") && !streq(sub, "get") && !streq(sub, "import") &&
            !streq(sub, "export") && !streq(sub, "history"))
                return usage_error("unknown command 'bans %s'; accepted: bans list, get ADDRESS, "
                                   "import FILE, export, history", sub);
        if (n_args > 0 && n_args != want)
                return usage_error("'bans %s' takes %s", sub,
                                   want == 2 ? (streq(sub, "get") ? "an address" : "a file name")
                                             : "no arguments");
        if (streq(sub, "get"))
                return bans_get(bus, args[1]);
        if (streq(sub, "import"))
                return bans_import(bus, args[1]);
        if (streq(sub, "export"))
                return bans_export(bus);
        if (streq(sub, "history"))
                return bans_history(bus);
        return bans_list(bus);
}

int verb_allowlist(sd_bus *bus, char **args, int n_args) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *sub = n_args > 0 ? args[0] : "list";
        size_t n = 0;
        int r;

        if (streq(sub, "add") || streq(sub, "remove")) {
                if (n_args != 2)
                        return usage_error("'allowlist %s' takes an address or CIDR", sub);
                return bus_call(bus, PS_OBJECT_BANS, PS_IFACE_BANS,
                                streq(sub, "add") ? "AllowlistAdd" : "AllowlistRemove", NULL, NULL,
                                "s", args[1]);
        }
        if (!streq(sub, "list") || n_args > 1)
                return usage_error("unknown command 'allowlist %s'; accepted: allowlist add "
                                   "ADDRESS, remove ADDRESS, list", sub);
        r = sd_bus_get_property(bus, PS_BUS_NAME, PS_OBJECT_BANS, PS_IFACE_BANS, "Allowlist", NULL,
                                &reply, "as");
        if (r < 0)
                return bus_error("reading the allowlist", NULL, r);
        if (arg.json != JSON_OFF)
                return print_reply_json(reply, "Allowlist");
        r = sd_bus_message_enter_container(reply, 'a', "s");
        for (const char *s; r >= 0 && (r = sd_bus_message_read(reply, "s", &s)) > 0; n++)
                printf("%s\n", s);
        if (r < 0)
                return bus_error("reading the allowlist", NULL, r);
        print_count_legend(n, "The allowlist is empty.", "entry", "entries", "listed");
        return 0;
}

/* autoban set POLICY key=value...: the a{sv} of SetPolicy from the words. */
static int append_policy_setting(sd_bus_message *m, const char *word) {
        const char *eq = strchr(word, '=');
        _cleanup_free_ char *key = NULL;
        uint64_t usec;
        uint32_t n;

        if (!eq)
                return usage_error("'%s' is not KEY=VALUE; keys: mode, threshold, burst, window",
                                   word);
        key = strndup(word, (size_t) (eq - word));
        if (!key)
                return -ENOMEM;
        eq++;
        if (streq(key, "mode"))
                return sd_bus_message_append(m, "{sv}", "mode", "s", eq);
        if (streq(key, "threshold") || streq(key, "burst")) {
                if (safe_atou32(eq, &n) < 0)
                        return usage_error("invalid %s '%s'; accepted: a number", key, eq);
                return sd_bus_message_append(m, "{sv}", key, "u", n);
        }
        if (streq(key, "window")) {
                if (parse_time_span(eq, &usec) < 0)
                        return usage_error("invalid window '%s'; accepted: a time span, e.g. 3s, "
                                           "500ms, 1min", eq);
                return sd_bus_message_append(m, "{sv}", "window_usec", "t", usec);
        }
        return usage_error("unknown policy key '%s'; accepted: mode, threshold, burst, window",
                           key);
}

static int autoban_set(sd_bus *bus, const char *policy, char **words, int n) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *call = NULL, *reply = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        int r;

        r = sd_bus_message_new_method_call(bus, &call, PS_BUS_NAME, PS_OBJECT_BANS, PS_IFACE_BANS,
                                           "SetPolicy");
        if (r >= 0)
                r = sd_bus_message_append(call, "s", policy);
        if (r >= 0)
                r = sd_bus_message_open_container(call, 'a', "{sv}");
        for (int i = 0; i < n && r >= 0; i++)
                r = append_policy_setting(call, words[i]);
        if (r == -EINVAL)
                return r;
        if (r >= 0)
                r = sd_bus_message_close_container(call);
        if (r < 0)
                return bus_error("building the SetPolicy call", NULL, r);
        r = sd_bus_call(bus, call, 0, &error, &reply);
        if (r < 0) {
                r = bus_error("SetPolicy", &error, r);
                sd_bus_error_free(&error);
        }
        return r;
}

typedef struct PolicyRow {
        uint64_t seen;
        const char *mode;
        uint64_t threshold, burst, window_usec, duration_usec;
} PolicyRow;

static const BusField policy_fields[] = {
        { "mode", BUS_FIELD_STRING, offsetof(PolicyRow, mode) },
        { "threshold", BUS_FIELD_U64, offsetof(PolicyRow, threshold) },
        { "burst", BUS_FIELD_U64, offsetof(PolicyRow, burst) },
        { "window_usec", BUS_FIELD_U64, offsetof(PolicyRow, window_usec) },
        { "duration_usec", BUS_FIELD_U64, offsetof(PolicyRow, duration_usec) },
};
static const BusDict policy_dict = BUS_DICT(policy_fields, PolicyRow);

static int autoban_status(sd_bus *bus) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_table_ Table *t = NULL;
        int r;

        r = sd_bus_get_property(bus, PS_BUS_NAME, PS_OBJECT_BANS, PS_IFACE_BANS, "Policies", NULL,
                                &reply, "a{sa{sv}}");
        if (r < 0)
                return bus_error("reading the policies", NULL, r);
        if (arg.json != JSON_OFF)
                return print_reply_json(reply, "Policies");
        t = table_new("POLICY", "MODE", "THRESHOLD", "BURST", "WINDOW", "BAN", NULL);
        if (!t)
                return -ENOMEM;
        table_align_right(t, (1u << 2) | (1u << 3));
        r = sd_bus_message_enter_container(reply, 'a', "{sa{sv}}");
        while (r >= 0 && (r = sd_bus_message_enter_container(reply, 'e', "sa{sv}")) > 0) {
                PolicyRow p = {};
                const char *name;

                r = sd_bus_message_read(reply, "s", &name);
                if (r >= 0)
                        r = bus_read_dict(reply, &policy_dict, &p, NULL, NULL);
                if (r >= 0)
                        r = sd_bus_message_exit_container(reply);
                if (r < 0)
                        break;
                if ((r = table_add_cell(t, name)) < 0 || (r = table_add_cell(t, p.mode)) < 0 ||
                    (r = table_add_cellf(t, "%" PRIu64, p.threshold)) < 0 ||
                    (r = table_add_cellf(t, "%" PRIu64, p.burst)) < 0 ||
                    (r = table_add_cellf(t, "%" PRIu64 "ms", p.window_usec / 1000)) < 0 ||
                    (r = table_add_cellf(t, "%" PRIu64 "s", p.duration_usec / USEC_PER_SEC)) < 0)
                        return r;
        }
        if (r < 0)
                return bus_error("reading the policies", NULL, r);
        return table_print(t, stdout, arg.legend);
}

int verb_autoban(sd_bus *bus, char **args, int n_args) {
        const char *sub = n_args > 0 ? args[0] : "status";

        if (streq(sub, "status") && n_args <= 1)
                return autoban_status(bus);
        if (streq(sub, "set") && n_args >= 3)
                return autoban_set(bus, args[1], args + 2, n_args - 2);
        if (streq(sub, "shadow") && n_args == 3) {
                char mode[32];
                char *w[] = { mode };
                int b = parse_boolean(args[2]);

                if (b < 0)
                        return usage_error("'autoban shadow %s' takes on or off", args[1]);
                snprintf(mode, sizeof mode, "mode=%s", b ? "count" : "enforce");
                return autoban_set(bus, args[1], w, 1);
        }
        return usage_error("unknown command 'autoban %s'; accepted: autoban status, set POLICY "
                           "KEY=VALUE..., shadow POLICY on|off", sub);
}
