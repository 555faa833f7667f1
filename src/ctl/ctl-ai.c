/* SPDX-License-Identifier: MIT */
/* packetscopectl ai …: the AI filter assistant (org.packetscope.Guarder1.AI and its jobs). */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <time.h>

#include "packetscopectl.h"

typedef struct AiArgs {
        json_t *settings;    /* ai config */
        json_t *options;     /* ai generate/analyze */
        uint64_t shadow_sec, confirm_sec;
        bool apply, wait;
} AiArgs;

/* "7" or a job's object path. */
static int job_path(const char *s, char **ret) {
        uint32_t id;

        if (strncmp(s, PS_OBJECT_AI_JOBS "/", strlen(PS_OBJECT_AI_JOBS "/")) == 0)
                return (*ret = strdup(s)) ? 0 : -ENOMEM;
        if (safe_atou32(s, &id) < 0 || id == 0)
                return usage_error("invalid job '%s'; accepted: a job number (see 'ai jobs') or its "
                            "object path", s);
        return asprintf(ret, PS_OBJECT_AI_JOBS "/%u", id) < 0 ? -ENOMEM : 0;
}

static int get_string(sd_bus *bus, const char *path, const char *iface, const char *prop,
                      char **ret) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        int r;

        r = sd_bus_get_property_string(bus, PS_BUS_NAME, path, iface, prop, &error, ret);
        return r < 0 ? bus_error(prop, &error, r) : 0;
}

static int get_json(sd_bus *bus, const char *path, const char *iface, const char *prop,
                    const char *type, json_t **ret) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        r = sd_bus_get_property(bus, PS_BUS_NAME, path, iface, prop, &error, &reply, type);
        if (r < 0)
                return bus_error(prop, &error, r);
        return json_from_reply(reply, prop, ret);
}

/* Every property of an object as one JSON object (GetAll). */
static int get_all(sd_bus *bus, const char *path, const char *iface, json_t **ret) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        r = sd_bus_call_method(bus, PS_BUS_NAME, path, PS_IFACE_PROPERTIES, "GetAll", &error,
                               &reply, "s", iface);
        if (r < 0)
                return bus_error("GetAll", &error, r);
        return json_from_reply(reply, "GetAll", ret);
}

static const char *jstr(json_t *o, const char *key) {
        json_t *v = json_object_get(o, key);

        return json_is_string(v) ? json_string_value(v) : "";
}

static int ai_show_config(sd_bus *bus) {
        _cleanup_json_ json_t *o = NULL;
        int r;

        r = get_all(bus, PS_OBJECT_AI, PS_IFACE_AI, &o);
        if (r < 0)
                return r;
        if (arg.json != JSON_OFF)
                return print_json(o);
        printf("Endpoint:        %s\n", jstr(o, "Endpoint"));
        printf("Model:           %s\n", jstr(o, "Model"));
        printf("Temperature:     %.2f\n", json_number_value(json_object_get(o, "Temperature")));
        printf("Max tokens:      %" JSON_INTEGER_FORMAT "\n", json_integer_value(json_object_get(o, "MaxTokens")));
        printf("Timeout:         %" JSON_INTEGER_FORMAT " s\n", json_integer_value(json_object_get(o, "Timeout")));
        printf("Response format: %s\n", jstr(o, "ResponseFormat"));
        printf("Debug:           %s\n", json_is_true(json_object_get(o, "Debug")) ? "yes" : "no");
        printf("API key:         %s%s%s\n", json_is_true(json_object_get(o, "ApiKeySet")) ? "set" : "not set",
               *jstr(o, "ApiKeySource") ? ", from " : "", jstr(o, "ApiKeySource"));
        printf("Busy:            %s\n", json_is_true(json_object_get(o, "Busy")) ? "yes" : "no");
        printf("Jobs:            %zu\n", json_array_size(json_object_get(o, "Jobs")));
        return 0;
}

/* Appends a JSON object's members as an a{sv}: strings, booleans, integers (u) and reals. */
static int append_dict(sd_bus_message *m, json_t *o) {
        const char *k;
        json_t *v;
        int r;

        r = sd_bus_message_open_container(m, 'a', "{sv}");
        json_object_foreach(o, k, v) {
                if (r < 0)
                        break;
                if (json_is_string(v))
                        r = sd_bus_message_append(m, "{sv}", k, "s", json_string_value(v));
                else if (json_is_boolean(v))
                        r = sd_bus_message_append(m, "{sv}", k, "b", json_is_true(v));
                else if (json_is_integer(v))
                        r = sd_bus_message_append(m, "{sv}", k, "u", (uint32_t) json_integer_value(v));
                else
                        r = sd_bus_message_append(m, "{sv}", k, "d", json_number_value(v));
        }
        return r < 0 ? r : sd_bus_message_close_container(m);
}

static int call_dict(sd_bus *bus, const char *method, json_t *o, char **ret_path) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        const char *p;
        int r;

        r = sd_bus_message_new_method_call(bus, &m, PS_BUS_NAME, PS_OBJECT_AI, PS_IFACE_AI, method);
        if (r >= 0)
                r = append_dict(m, o);
        if (r < 0)
                return bus_error(method, NULL, r);
        r = sd_bus_call(bus, m, 0, &error, &reply);
        if (r < 0)
                return bus_error(method, &error, r);
        if (!ret_path)
                return 0;
        r = sd_bus_message_read(reply, "o", &p);
        if (r < 0)
                return bus_error(method, NULL, r);
        return (*ret_path = strdup(p)) ? 0 : -ENOMEM;
}

static int ai_print_job(sd_bus *bus, const char *path) {
        _cleanup_json_ json_t *o = NULL;
        json_t *f, *s;
        size_t i, accepted = 0;
        char when[64];
        int r;

        r = get_all(bus, path, PS_IFACE_AI_JOB, &o);
        if (r < 0)
                return r;
        if (arg.json != JSON_OFF)
                return print_json(o);
        f = json_object_get(o, "Filters");
        json_array_foreach(f, i, s)
                accepted += streq(jstr(s, "verdict"), "accepted");
        format_timestamp(when, sizeof when, (uint64_t) json_integer_value(json_object_get(o, "Created")));
        printf("Job:         %s\n", path);
        printf("State:       %s (%s, %s)\n", jstr(o, "State"), jstr(o, "Kind"), jstr(o, "AnalyzeType"));
        printf("Created:     %s\n", when);
        if (*jstr(o, "Model"))
                printf("Model:       %s, %" JSON_INTEGER_FORMAT " tokens\n", jstr(o, "Model"),
                       json_integer_value(json_object_get(o, "TokensUsed")));
        if (*jstr(o, "Error"))
                printf("Error:       %s\n", jstr(o, "Error"));
        if (*jstr(o, "Analysis"))
                printf("\nAnalysis:\n  %s\n", jstr(o, "Analysis"));
        s = json_object_get(o, "Suggestions");
        if (json_array_size(s) > 0) {
                json_t *e;

                printf("\nSuggestions:\n");
                json_array_foreach(s, i, e)
                        printf("  - %s\n", json_string_value(e));
        }
        if (json_array_size(f) > 0) {
                printf("\nRules: %zu proposed, %zu accepted%s\n", json_array_size(f), accepted,
                       streq(jstr(o, "ShadowState"), "running") ? " (in shadow now)" : "");
                json_array_foreach(f, i, s) {
                        bool ok = streq(jstr(s, "verdict"), "accepted");

                        printf("  #%-3zu %-8s %s\n", i, ok ? "accepted" : "rejected", jstr(s, "rule"));
                        if (!ok)
                                printf("        why: %s\n", jstr(s, "reason"));
                        if (json_object_get(s, "shadow_packets"))
                                printf("        shadow: %" JSON_INTEGER_FORMAT " packets, %"
                                       JSON_INTEGER_FORMAT " bytes, %" JSON_INTEGER_FORMAT
                                       " flows would have been dropped%s\n",
                                       json_integer_value(json_object_get(s, "shadow_packets")),
                                       json_integer_value(json_object_get(s, "shadow_bytes")),
                                       json_integer_value(json_object_get(s, "shadow_flows")),
                                       json_is_true(json_object_get(s, "shadow_management"))
                                       ? ", SOME FROM A MANAGEMENT ADDRESS" : "");
                }
        }
        if (*jstr(o, "Transaction"))
                printf("\nApplied as %s\n", jstr(o, "Transaction"));
        return 0;
}

static int ai_jobs(sd_bus *bus) {
        _cleanup_json_ json_t *jobs = NULL;
        json_t *p;
        size_t i;
        int r;

        r = get_json(bus, PS_OBJECT_AI, PS_IFACE_AI, "Jobs", "ao", &jobs);
        if (r < 0)
                return r;
        if (arg.json == JSON_OFF && arg.legend)
                printf("%-5s %-10s %-9s %-12s %-8s %s\n", "JOB", "STATE", "KIND", "TYPE", "RULES",
                       "ERROR");
        json_array_foreach(jobs, i, p) {
                _cleanup_json_ json_t *o = NULL;
                const char *path = json_string_value(p), *slash = strrchr(path, '/');
                size_t n_ok = 0, k;
                json_t *f;
                char rules[32];

                r = get_all(bus, path, PS_IFACE_AI_JOB, &o);
                if (r < 0)
                        return r;
                if (arg.json != JSON_OFF) {
                        r = print_json(o);
                        if (r < 0)
                                return r;
                        continue;
                }
                json_array_foreach(json_object_get(o, "Filters"), k, f)
                        n_ok += streq(jstr(f, "verdict"), "accepted");
                snprintf(rules, sizeof rules, "%zu/%zu", n_ok,
                         json_array_size(json_object_get(o, "Filters")));
                printf("%-5s %-10s %-9s %-12s %-8s %.60s\n", slash ? slash + 1 : path,
                       jstr(o, "State"), jstr(o, "Kind"), jstr(o, "AnalyzeType"), rules,
                       jstr(o, "Error"));
        }
        return 0;
}

/* Waits (polling, this is the client) until the job's property leaves the given values. */
static int wait_prop(sd_bus *bus, const char *path, const char *prop, const char *const *busy,
                     uint64_t max_usec) {
        uint64_t end = now_usec(CLOCK_MONOTONIC) + max_usec;

        for (;;) {
                _cleanup_free_ char *v = NULL;
                bool waiting = false;
                int r;

                r = get_string(bus, path, PS_IFACE_AI_JOB, prop, &v);
                if (r < 0)
                        return r;
                for (size_t i = 0; busy[i]; i++)
                        waiting = waiting || streq(v, busy[i]);
                if (!waiting)
                        return 0;
                if (now_usec(CLOCK_MONOTONIC) > end)
                        return usage_error("%s is still %s; see 'packetscopectl ai show'", path, v);
                /* The bus connection's own wait: a fifth of a second, or sooner on traffic. */
                (void) sd_bus_wait(bus, 200 * 1000);
                while (sd_bus_process(bus, NULL) > 0)
                        ;
        }
}

static int ai_shadow(sd_bus *bus, const char *path, uint64_t seconds) {
        static const char *const running[] = { "running", NULL };
        int r;

        r = bus_call(bus, path, PS_IFACE_AI_JOB, "Shadow", NULL, NULL, "u", (uint32_t) seconds);
        if (r < 0)
                return r;
        if (arg.json == JSON_OFF)
                printf("The accepted rules count in shadow for %" PRIu64 " s...\n", seconds);
        r = wait_prop(bus, path, "ShadowState", running, (seconds + 30) * USEC_PER_SEC);
        return r < 0 ? r : ai_print_job(bus, path);
}

static int ai_apply(sd_bus *bus, const char *path, uint64_t seconds) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *t;
        int r;

        r = bus_call(bus, path, PS_IFACE_AI_JOB, "Apply", NULL, &reply, "u", (uint32_t) seconds);
        if (r < 0)
                return r;
        r = sd_bus_message_read(reply, "o", &t);
        if (r < 0)
                return bus_error("Apply", NULL, r);
        printf("Applied the accepted rules as %s; they roll back in %" PRIu64 " s unless "
               "confirmed:\n  busctl call %s %s %s Confirm\n", t, seconds, PS_BUS_NAME, t,
               PS_IFACE_TRANSACTION);
        return 0;
}

static int read_key_file(const char *path, char **ret) {
        _cleanup_free_ char *text = NULL;
        FILE *f = fopen(path, "re");
        size_t n;

        if (!f)
                return usage_error("cannot read the key file %s: %s", path, strerror(errno));
        text = calloc(1, 4098);
        if (!text) {
                fclose(f);
                return -ENOMEM;
        }
        n = fread(text, 1, 4097, f);
        fclose(f);
        text[n] = '\0';
        text[strcspn(text, "\r\n")] = '\0';
        if (!*text)
                return usage_error("the key file %s is empty", path);
        *ret = TAKE_PTR(text);
        return 0;
}

static int parse_ai_args(int argc, char *argv[], AiArgs *a) {
        enum { O_ENDPOINT = 0x100, O_MODEL, O_TEMP, O_TOKENS, O_TIMEOUT, O_DEBUG, O_FORMAT,
               O_KEY_FILE, O_CLEAR_KEY, O_TYPE, O_PROMPT, O_NO_TCP, O_NO_ICMP, O_NO_STATS,
               O_PROTECT, O_SHADOW, O_APPLY, O_CONFIRM, O_NO_WAIT, O_JSON, O_NO_ASK, O_NO_LEGEND };
        static const struct option opts[] = {
                { "endpoint", required_argument, NULL, O_ENDPOINT },
                { "model", required_argument, NULL, O_MODEL },
                { "temperature", required_argument, NULL, O_TEMP },
                { "max-tokens", required_argument, NULL, O_TOKENS },
                { "timeout", required_argument, NULL, O_TIMEOUT },
                { "debug", required_argument, NULL, O_DEBUG },
                { "response-format", required_argument, NULL, O_FORMAT },
                { "key-file", required_argument, NULL, O_KEY_FILE },
                { "clear-key", no_argument, NULL, O_CLEAR_KEY },
                { "type", required_argument, NULL, O_TYPE },
                { "prompt", required_argument, NULL, O_PROMPT },
                { "no-tcp", no_argument, NULL, O_NO_TCP },
                { "no-icmp", no_argument, NULL, O_NO_ICMP },
                { "no-stats", no_argument, NULL, O_NO_STATS },
                { "protect", required_argument, NULL, O_PROTECT },
                { "shadow", required_argument, NULL, O_SHADOW },
                { "apply", no_argument, NULL, O_APPLY },
                { "confirm", required_argument, NULL, O_CONFIRM },
                { "no-wait", no_argument, NULL, O_NO_WAIT },
                { "json", optional_argument, NULL, O_JSON },
                { "no-ask-password", no_argument, NULL, O_NO_ASK },
                { "no-legend", no_argument, NULL, O_NO_LEGEND },
                {}
        };
        int c;

        a->wait = true;
        opterr = 0;
        optind = 0; /* glibc: start over */
        while ((c = getopt_long(argc, argv, ":", opts, NULL)) >= 0) {
                uint64_t u;
                int r = 0;

                switch (c) {
                case O_ENDPOINT:
                        r = json_object_set_new(a->settings, "endpoint", json_string(optarg));
                        break;
                case O_MODEL:
                        r = json_object_set_new(a->settings, "model", json_string(optarg));
                        break;
                case O_TEMP: {
                        char *end = NULL;
                        double d;

                        errno = 0;
                        d = strtod(optarg, &end);
                        if (errno || end == optarg || *end)
                                return usage_error("invalid --temperature '%s'; accepted: 0 to 2", optarg);
                        r = json_object_set_new(a->settings, "temperature", json_real(d));
                        break;
                }
                case O_TOKENS:
                case O_TIMEOUT:
                case O_SHADOW:
                case O_CONFIRM:
                        if (safe_atou64(optarg, &u) < 0 || u == 0 || u > UINT32_MAX)
                                return usage_error("invalid --%s '%s'; accepted: a positive integer",
                                            c == O_TOKENS ? "max-tokens" : c == O_TIMEOUT ? "timeout" :
                                            c == O_SHADOW ? "shadow" : "confirm", optarg);
                        if (c == O_TOKENS)
                                r = json_object_set_new(a->settings, "max_tokens", json_integer((json_int_t) u));
                        else if (c == O_TIMEOUT)
                                r = json_object_set_new(a->settings, "timeout", json_integer((json_int_t) u));
                        else if (c == O_SHADOW)
                                a->shadow_sec = u;
                        else
                                a->confirm_sec = u;
                        break;
                case O_DEBUG: {
                        int b = parse_boolean(optarg);

                        if (b < 0)
                                return usage_error("invalid --debug '%s'; accepted: yes or no", optarg);
                        r = json_object_set_new(a->settings, "debug", json_boolean(b));
                        break;
                }
                case O_FORMAT:
                        r = json_object_set_new(a->settings, "response_format", json_string(optarg));
                        break;
                case O_KEY_FILE: {
                        _cleanup_free_ char *key = NULL;

                        r = read_key_file(optarg, &key);
                        if (r < 0)
                                return r;
                        r = json_object_set_new(a->settings, "api_key", json_string(key));
                        explicit_bzero(key, strlen(key));
                        break;
                }
                case O_CLEAR_KEY:
                        r = json_object_set_new(a->settings, "api_key", json_string(""));
                        break;
                case O_TYPE:
                        r = json_object_set_new(a->options, "analyze_type", json_string(optarg));
                        break;
                case O_PROMPT:
                        r = json_object_set_new(a->options, "custom_prompt", json_string(optarg));
                        break;
                case O_NO_TCP:
                        r = json_object_set_new(a->options, "include_tcp", json_false());
                        break;
                case O_NO_ICMP:
                        r = json_object_set_new(a->options, "include_icmp", json_false());
                        break;
                case O_NO_STATS:
                        r = json_object_set_new(a->options, "include_stats", json_false());
                        break;
                case O_PROTECT:
                        r = json_object_set_new(a->options, "protect_address", json_string(optarg));
                        break;
                case O_APPLY:
                        a->apply = true;
                        break;
                case O_NO_WAIT:
                        a->wait = false;
                        break;
                case O_JSON:
                        arg.json = optarg && streq(optarg, "short") ? JSON_SHORT :
                                   optarg && streq(optarg, "off") ? JSON_OFF : JSON_PRETTY;
                        break;
                case O_NO_ASK:
                        arg.ask_password = false;
                        break;
                case O_NO_LEGEND:
                        arg.legend = false;
                        break;
                case ':':
                        return usage_error("option '%s' needs a value", argv[optind - 1]);
                default:
                        return usage_error("unknown option '%s' for 'ai'; see packetscopectl(1)",
                                    argv[optind - 1]);
                }
                if (r < 0)
                        return -ENOMEM;
        }
        return 0;
}

/* The client's own address as the server sees it, for the policy check: $SSH_CONNECTION. */
static void protect_ssh_client(json_t *options) {
        const char *ssh = getenv("SSH_CONNECTION");
        char addr[64];
        size_t n;

        if (!ssh || json_object_get(options, "protect_address"))
                return;
        n = strcspn(ssh, " ");
        if (n == 0 || n >= sizeof addr)
                return;
        memcpy(addr, ssh, n);
        addr[n] = '\0';
        (void) json_object_set_new(options, "protect_address", json_string(addr));
}

int ctl_ai_main(int argc, char *argv[]) {
        static const char *const running[] = { "queued", "running", NULL };
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_free_ char *path = NULL;
        AiArgs a = { .settings = json_object(), .options = json_object() };
        const char *verb;
        char **args;
        int n, r;

        if (!a.settings || !a.options) {
                r = -ENOMEM;
                goto finish;
        }
        r = parse_ai_args(argc, argv, &a);
        if (r < 0)
                goto finish;
        /* argv[optind] is "ai". */
        args = argv + optind + 1;
        n = argc - optind - 1;
        verb = n > 0 ? args[0] : "config";
        args++;
        n = n > 0 ? n - 1 : 0;

        r = sd_bus_open_system(&bus);
        if (r < 0) {
                fprintf(stderr, "packetscopectl: cannot connect to the system bus: %s\n", strerror(-r));
                r = -EIO;
                goto finish;
        }
        (void) sd_bus_set_allow_interactive_authorization(bus, arg.ask_password);

        if (streq(verb, "config") && n == 0) {
                r = json_object_size(a.settings) > 0 ? call_dict(bus, "SetConfig", a.settings, NULL) : 0;
                if (r >= 0)
                        r = ai_show_config(bus);
        } else if ((streq(verb, "generate") || streq(verb, "analyze")) && n == 0) {
                protect_ssh_client(a.options);
                r = call_dict(bus, streq(verb, "generate") ? "Generate" : "Analyze", a.options, &path);
                if (r >= 0 && !a.wait) {
                        puts(path);
                        goto finish;
                }
                if (r >= 0)
                        r = wait_prop(bus, path, "State", running, 3700 * USEC_PER_SEC);
                if (r >= 0)
                        r = ai_print_job(bus, path);
                if (r >= 0 && a.shadow_sec)
                        r = ai_shadow(bus, path, a.shadow_sec);
                if (r >= 0 && a.apply)
                        r = ai_apply(bus, path, a.confirm_sec ? a.confirm_sec : 60);
        } else if (streq(verb, "jobs") && n == 0)
                r = ai_jobs(bus);
        else if (n == 1 && (streq(verb, "show") || streq(verb, "cancel") || streq(verb, "delete") ||
                            streq(verb, "apply"))) {
                r = job_path(args[0], &path);
                if (r >= 0 && streq(verb, "show"))
                        r = ai_print_job(bus, path);
                else if (r >= 0 && streq(verb, "apply"))
                        r = ai_apply(bus, path, a.confirm_sec ? a.confirm_sec : 60);
                else if (r >= 0)
                        r = bus_call(bus, path, PS_IFACE_AI_JOB, streq(verb, "cancel") ? "Cancel" : "Delete",
                                     NULL, NULL, "");
        } else if (streq(verb, "shadow") && n == 2) {
                uint64_t s;

                r = job_path(args[0], &path);
                if (r >= 0 && (safe_atou64(args[1], &s) < 0 || s == 0 || s > PS_AI_SHADOW_MAX_SEC))
                        r = usage_error("invalid seconds '%s'; accepted: 1 to %u", args[1], PS_AI_SHADOW_MAX_SEC);
                if (r >= 0)
                        r = ai_shadow(bus, path, s);
        } else
                r = usage_error("unknown or incomplete command 'ai %s'; accepted: ai config [OPTIONS], "
                         "ai generate, ai analyze, ai jobs, ai show JOB, ai shadow JOB SECONDS, "
                         "ai apply JOB --confirm S, ai cancel JOB, ai delete JOB", verb);
finish:
        json_decref(a.settings);
        json_decref(a.options);
        if (r == -ENOMEM)
                fputs("packetscopectl: out of memory\n", stderr);
        return r == -EINVAL ? EXIT_USAGE : r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
