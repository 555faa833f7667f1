/* SPDX-License-Identifier: MIT */
#include "ai-bus.h"
#include "ai.h"
#include "bus-util.h"
#include "filter-transaction.h"
#include "log.h"
#include "polkit.h"
#include "transaction-bus.h"
#include "util.h"

/* --- org.packetscope.Guarder1.AI --- */

static int property_get_ai(sd_bus *bus, const char *path, const char *interface,
                           const char *property, sd_bus_message *reply, void *userdata,
                           sd_bus_error *error) {
        Manager *m = userdata;
        const AiConfig *c = &m->ai->config;

        if (streq(property, "Endpoint"))
                return sd_bus_message_append(reply, "s", c->endpoint);
        if (streq(property, "Model"))
                return sd_bus_message_append(reply, "s", c->model);
        if (streq(property, "Temperature"))
                return sd_bus_message_append(reply, "d", c->temperature);
        if (streq(property, "MaxTokens"))
                return sd_bus_message_append(reply, "u", c->max_tokens);
        if (streq(property, "Timeout"))
                return sd_bus_message_append(reply, "u", (uint32_t) (c->timeout_usec / USEC_PER_SEC));
        if (streq(property, "Debug"))
                return sd_bus_message_append(reply, "b", c->debug);
        if (streq(property, "ResponseFormat"))
                return sd_bus_message_append(reply, "s", ai_format_to_string(c->format));
        if (streq(property, "ApiKeySet"))
                return sd_bus_message_append(reply, "b", m->ai->key != NULL);
        if (streq(property, "ApiKeySource"))
                return sd_bus_message_append(reply, "s", strempty(m->ai->key_source));
        if (streq(property, "Busy"))
                return sd_bus_message_append(reply, "b", ai_busy(m->ai));
        return -ENOENT;
}

static int property_get_jobs(sd_bus *bus, const char *path, const char *interface,
                             const char *property, sd_bus_message *reply, void *userdata,
                             sd_bus_error *error) {
        Manager *m = userdata;
        int r;

        r = sd_bus_message_open_container(reply, 'a', "o");
        if (r < 0)
                return r;
        for (size_t i = 0; i < m->ai->n_jobs; i++) {
                r = sd_bus_message_append(reply, "o", m->ai->jobs[i]->path);
                if (r < 0)
                        return r;
        }
        return sd_bus_message_close_container(reply);
}

/* A failed domain call as a bus error: -errno to a name, the domain's message as the text. */
static int ai_bus_error(sd_bus_error *error, int r, const char *err) {
        const char *name = r == -EINVAL || r == -ERANGE ? SD_BUS_ERROR_INVALID_ARGS :
                           r == -EBUSY ? PS_ERROR_AI_BUSY :
                           r == -EALREADY || r == -ENOENT ? PS_ERROR_AI_JOB_STATE :
                           SD_BUS_ERROR_FAILED;

        if (r == -ENOMEM)
                return r;
        return sd_bus_error_setf(error, name, "%s", err ? err : strerror(-r));
}

static int method_set_config(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        _cleanup_json_ json_t *o = NULL;
        _cleanup_free_ char *err = NULL;
        Manager *m = userdata;
        int r;

        r = bus_read_settings_json(msg, &o, error);
        if (r < 0)
                return r;
        r = polkit_verify(msg, PS_POLKIT_CONFIGURE_AI, &m->polkit, error);
        if (r <= 0)
                return r < 0 ? r : 1;
        r = ai_set_config(m->ai, o, &err);
        if (r < 0)
                return ai_bus_error(error, r, err);
        log_struct_internal(LOG_NOTICE, 0, PS_MESSAGE_AI_JOB, NULL, "AI settings changed%s",
                            json_object_get(o, "api_key") ? " (the API key too)" : "");
        return sd_bus_reply_method_return(msg, NULL);
}

/* Generate/Analyze options; the caller's protect_address is a space-separated list. */
static int read_options(json_t *o, bool analysis_only, AiJobOptions *ret, sd_bus_error *error) {
        AiJobOptions opt = {
                .type = AI_ANALYZE_SECURITY,
                .analysis_only = analysis_only,
                .include_tcp = true,
                .include_icmp = true,
                .include_stats = true,
        };
        const char *k;
        json_t *v;

        json_object_foreach(o, k, v) {
                bool *flag = streq(k, "include_tcp") ? &opt.include_tcp :
                             streq(k, "include_icmp") ? &opt.include_icmp :
                             streq(k, "include_stats") ? &opt.include_stats :
                             streq(k, "include_bans") ? &opt.include_bans : NULL;

                if (flag) {
                        if (!json_is_boolean(v))
                                goto bad;
                        *flag = json_is_true(v);
                } else if (streq(k, "analyze_type")) {
                        if (!json_is_string(v) || ai_analyze_type_from_string(json_string_value(v),
                                                                             &opt.type) < 0) {
                                ai_job_options_done(&opt);
                                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                                         "invalid analyze_type; accepted: security, "
                                                         "performance, balanced, custom");
                        }
                } else if (streq(k, "custom_prompt")) {
                        if (!json_is_string(v) || json_string_length(v) > PS_AI_PROMPT_MAX ||
                            !string_is_valid_utf8(json_string_value(v), PS_AI_PROMPT_MAX)) {
                                ai_job_options_done(&opt);
                                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                                         "invalid custom_prompt; accepted: UTF-8 "
                                                         "text of at most %u bytes", PS_AI_PROMPT_MAX);
                        }
                        free(opt.custom_prompt);
                        opt.custom_prompt = strdup(json_string_value(v));
                        if (!opt.custom_prompt)
                                return -ENOMEM;
                } else if (streq(k, "protect_address")) {
                        _cleanup_free_ char *copy = NULL;
                        char *save = NULL, *w;

                        if (!json_is_string(v) || !(copy = strdup(json_string_value(v))))
                                goto bad;
                        opt.n_protect = 0;
                        for (w = strtok_r(copy, " ,", &save); w; w = strtok_r(NULL, " ,", &save))
                                if (opt.n_protect >= ELEMENTSOF(opt.protect) ||
                                    cidr_parse(w, false, &opt.protect[opt.n_protect++]) < 0) {
                                        ai_job_options_done(&opt);
                                        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                                                 "invalid protect_address '%.64s'; "
                                                                 "accepted: up to 8 addresses or "
                                                                 "CIDRs", w);
                                }
                } else {
                        ai_job_options_done(&opt);
                        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                                 "unknown option '%.64s'; known: analyze_type, "
                                                 "custom_prompt, include_tcp, include_icmp, "
                                                 "include_stats, include_bans, protect_address", k);
                }
                continue;
        bad:
                ai_job_options_done(&opt);
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "invalid %s: wrong type, got %s", k, json_type_name(v));
        }
        if (opt.type == AI_ANALYZE_CUSTOM && !opt.custom_prompt) {
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "analyze_type custom needs a custom_prompt");
        }
        *ret = opt;
        return 0;
}

static int submit(sd_bus_message *msg, Manager *m, bool analysis_only, sd_bus_error *error) {
        _cleanup_json_ json_t *o = NULL;
        _cleanup_free_ char *err = NULL;
        AiJobOptions opt = {};
        AiJob *j;
        int r;

        r = bus_read_settings_json(msg, &o, error);
        if (r < 0)
                return r;
        r = read_options(o, analysis_only, &opt, error);
        if (r < 0)
                return r;
        r = polkit_verify(msg, PS_POLKIT_GENERATE, &m->polkit, error);
        if (r <= 0) {
                ai_job_options_done(&opt);
                return r < 0 ? r : 1;
        }
        r = ai_submit(m->ai, &opt, &j, &err);
        ai_job_options_done(&opt);
        if (r < 0)
                return ai_bus_error(error, r, err);
        return sd_bus_reply_method_return(msg, "o", j->path);
}

static int method_generate(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        return submit(msg, userdata, false, error);
}

static int method_analyze(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        return submit(msg, userdata, true, error);
}

static const sd_bus_vtable ai_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Endpoint", "s", property_get_ai, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Model", "s", property_get_ai, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Temperature", "d", property_get_ai, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("MaxTokens", "u", property_get_ai, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Timeout", "u", property_get_ai, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Debug", "b", property_get_ai, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("ResponseFormat", "s", property_get_ai, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("ApiKeySet", "b", property_get_ai, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("ApiKeySource", "s", property_get_ai, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Busy", "b", property_get_ai, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Jobs", "ao", property_get_jobs, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_METHOD_WITH_ARGS("SetConfig", SD_BUS_ARGS("a{sv}", settings), SD_BUS_NO_RESULT,
                                method_set_config, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Generate", SD_BUS_ARGS("a{sv}", options), SD_BUS_RESULT("o", job),
                                method_generate, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Analyze", SD_BUS_ARGS("a{sv}", options), SD_BUS_RESULT("o", job),
                                method_analyze, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};

/* --- org.packetscope.Guarder1.AIJob --- */

static int job_find(sd_bus *bus, const char *path, const char *interface, void *userdata,
                    void **found, sd_bus_error *error) {
        Manager *m = userdata;
        AiJob *j = m->ai ? ai_find_job_path(m->ai, path) : NULL;

        if (!j)
                return 0;
        *found = j;
        return 1;
}

static char *job_path_at(void *userdata, size_t i) {
        Manager *m = userdata;

        return strdup(m->ai->jobs[i]->path);
}

static int job_enumerate(sd_bus *bus, const char *path, void *userdata, char ***nodes,
                         sd_bus_error *error) {
        Manager *m = userdata;

        return bus_node_list(m->ai ? m->ai->n_jobs : 0, job_path_at, m, nodes);
}

static int property_get_job(sd_bus *bus, const char *path, const char *interface,
                            const char *property, sd_bus_message *reply, void *userdata,
                            sd_bus_error *error) {
        AiJob *j = userdata;

        if (streq(property, "State"))
                return sd_bus_message_append(reply, "s", ai_job_state_to_string(j->state));
        if (streq(property, "Kind"))
                return sd_bus_message_append(reply, "s", j->options.analysis_only ? "analyze"
                                                                                  : "generate");
        if (streq(property, "AnalyzeType"))
                return sd_bus_message_append(reply, "s", ai_analyze_type_to_string(j->options.type));
        if (streq(property, "Created"))
                return sd_bus_message_append(reply, "t", j->created_usec);
        if (streq(property, "Finished"))
                return sd_bus_message_append(reply, "t", j->finished_usec);
        if (streq(property, "Analysis"))
                return sd_bus_message_append(reply, "s", strempty(j->result.analysis));
        if (streq(property, "TokensUsed"))
                return sd_bus_message_append(reply, "t", j->result.tokens_used);
        if (streq(property, "Model"))
                return sd_bus_message_append(reply, "s", strempty(j->result.model));
        if (streq(property, "Error"))
                return sd_bus_message_append(reply, "s", strempty(j->error));
        if (streq(property, "ShadowState"))
                return sd_bus_message_append(reply, "s", ai_shadow_state_to_string(j->shadow));
        if (streq(property, "ShadowUntil"))
                return sd_bus_message_append(reply, "t",
                                             j->shadow == AI_SHADOW_RUNNING ? j->shadow_until_usec : 0);
        if (streq(property, "Transaction"))
                return sd_bus_message_append(reply, "s", strempty(j->applied));
        return -ENOENT;
}

static int property_get_suggestions(sd_bus *bus, const char *path, const char *interface,
                                    const char *property, sd_bus_message *reply, void *userdata,
                                    sd_bus_error *error) {
        AiJob *j = userdata;
        int r;

        r = sd_bus_message_open_container(reply, 'a', "s");
        for (size_t i = 0; r >= 0 && i < j->result.n_suggestions; i++)
                r = sd_bus_message_append(reply, "s", j->result.suggestions[i]);
        return r < 0 ? r : sd_bus_message_close_container(reply);
}

#define RULE_TEXT_MAX 2000

static int append_rule(sd_bus_message *reply, size_t index, const AiProposedRule *pr) {
        _cleanup_json_ json_t *normal = NULL;
        _cleanup_free_ char *text = NULL;
        json_t *c;
        int r;

        if (pr->accepted && pr->rule) {
                normal = filter_to_json(pr->rule);
                if (normal) {
                        json_object_del(normal, "id");
                        json_object_del(normal, "hits");
                        json_object_del(normal, "bytes");
                        json_object_del(normal, "last_hit");
                        json_object_del(normal, "created");
                }
        }
        text = json_dumps(normal ? normal : pr->proposed, JSON_COMPACT | JSON_SORT_KEYS |
                          JSON_ENCODE_ANY);
        if (text && strlen(text) > RULE_TEXT_MAX)
                memcpy(text + RULE_TEXT_MAX - 3, "...", 4);
        r = sd_bus_message_open_container(reply, 'a', "{sv}");
        if (r < 0)
                return r;
        if ((r = bus_dict_u32(reply, "index", (uint32_t) index)) < 0 ||
            (r = bus_dict_string(reply, "verdict", pr->accepted ? "accepted" : "rejected")) < 0 ||
            (r = bus_dict_string(reply, "rule", strempty(text))) < 0)
                return r;
        if (!pr->accepted && (r = bus_dict_string(reply, "reason", strempty(pr->reason))) < 0)
                return r;
        if (pr->accepted && pr->rule) {
                if ((r = bus_dict_string(reply, "action", filter_verdict_to_string(pr->rule->action))) < 0 ||
                    (r = bus_dict_string(reply, "comment", strempty(pr->rule->comment))) < 0)
                        return r;
        } else if (json_is_string(c = json_object_get(pr->proposed, "comment")) &&
                   string_is_valid_utf8(json_string_value(c), FILTER_COMMENT_MAX)) {
                if ((r = bus_dict_string(reply, "comment", json_string_value(c))) < 0)
                        return r;
        }
        if (pr->shadow_done &&
            ((r = bus_dict_u64(reply, "shadow_packets", pr->shadow_packets)) < 0 ||
             (r = bus_dict_u64(reply, "shadow_bytes", pr->shadow_bytes)) < 0 ||
             (r = bus_dict_u64(reply, "shadow_flows", pr->shadow_flows)) < 0 ||
             (r = bus_dict_bool(reply, "shadow_management", pr->shadow_management)) < 0))
                return r;
        return sd_bus_message_close_container(reply);
}

static int property_get_filters(sd_bus *bus, const char *path, const char *interface,
                                const char *property, sd_bus_message *reply, void *userdata,
                                sd_bus_error *error) {
        AiJob *j = userdata;
        int r;

        r = sd_bus_message_open_container(reply, 'a', "a{sv}");
        for (size_t i = 0; r >= 0 && i < j->result.n_rules; i++)
                r = append_rule(reply, i, &j->result.rules[i]);
        return r < 0 ? r : sd_bus_message_close_container(reply);
}

/* Cancel() and Delete(): authorized with generate, then the job's own call. */
static int job_end(sd_bus_message *msg, AiJob *j, int (*act)(AiJob *j, char **ret_error),
                   sd_bus_error *error) {
        _cleanup_free_ char *err = NULL;
        Manager *m = j->ai->manager;
        int r;

        r = polkit_verify(msg, PS_POLKIT_GENERATE, &m->polkit, error);
        if (r <= 0)
                return r < 0 ? r : 1;
        r = act(j, &err);
        if (r < 0)
                return ai_bus_error(error, r, err);
        return sd_bus_reply_method_return(msg, NULL);
}

static int method_cancel(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        return job_end(msg, userdata, ai_job_cancel, error);
}

static int method_delete(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        return job_end(msg, userdata, ai_job_delete, error);
}

static int method_shadow(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        _cleanup_free_ char *err = NULL;
        AiJob *j = userdata;
        Manager *m = j->ai->manager;
        uint32_t seconds;
        int r;

        r = sd_bus_message_read(msg, "u", &seconds);
        if (r < 0)
                return r;
        if (seconds == 0 || seconds > PS_AI_SHADOW_MAX_SEC)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "invalid seconds %u; "
                                         "accepted: 1 to %u", seconds, PS_AI_SHADOW_MAX_SEC);
        r = polkit_verify(msg, PS_POLKIT_MANAGE_FILTERS, &m->polkit, error);
        if (r <= 0)
                return r < 0 ? r : 1;
        r = ai_job_shadow(j, seconds, &err);
        if (r < 0)
                return r == -EBUSY && (m->filters->transaction || m->filters->busy)
                               ? filters_bus_refuse_if_pending(m, error)
                               : ai_bus_error(error, r, err);
        return sd_bus_reply_method_return(msg, NULL);
}

static int method_apply(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        _cleanup_filter_list_ FilterList add = {};
        _cleanup_free_ char *err = NULL;
        AiJob *j = userdata;
        Manager *m = j->ai->manager;
        uint32_t seconds;
        int r;

        r = sd_bus_message_read(msg, "u", &seconds);
        if (r < 0)
                return r;
        if (seconds == 0 || seconds > PS_CONFIRM_MAX_SEC)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "invalid "
                                         "confirm_seconds %u; accepted: 1 to %u", seconds,
                                         PS_CONFIRM_MAX_SEC);
        r = ai_job_accepted_rules(j, &add, &err);
        if (r < 0)
                return ai_bus_error(error, r, err);
        r = filters_bus_refuse_if_pending(m, error);
        if (r >= 0)
                r = polkit_verify(msg, PS_POLKIT_MANAGE_FILTERS, &m->polkit, error);
        if (r > 0)
                r = filters_bus_check_lockout(m, &add, "AI job", error);
        if (r <= 0)
                return r < 0 ? r : 1;
        r = transaction_bus_begin(m, msg, &add, false, seconds, error);
        if (r >= 0 && m->filters->transaction)
                ai_job_set_applied(j, m->filters->transaction->path);
        return r;
}

static const sd_bus_vtable job_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("State", "s", property_get_job, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Kind", "s", property_get_job, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("AnalyzeType", "s", property_get_job, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Created", "t", property_get_job, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Finished", "t", property_get_job, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Analysis", "s", property_get_job, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Suggestions", "as", property_get_suggestions, 0,
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Filters", "aa{sv}", property_get_filters, 0,
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("TokensUsed", "t", property_get_job, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Model", "s", property_get_job, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Error", "s", property_get_job, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("ShadowState", "s", property_get_job, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("ShadowUntil", "t", property_get_job, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Transaction", "s", property_get_job, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_METHOD("Cancel", NULL, NULL, method_cancel, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Shadow", SD_BUS_ARGS("u", seconds), SD_BUS_NO_RESULT,
                                method_shadow, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Apply", SD_BUS_ARGS("u", confirm_seconds),
                                SD_BUS_RESULT("o", transaction), method_apply,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("Delete", NULL, NULL, method_delete, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_SIGNAL_WITH_ARGS("Finished", SD_BUS_ARGS("s", state, "s", error), 0),
        SD_BUS_VTABLE_END,
};

static void on_job(Ai *ai, AiJob *j, AiJobEvent event, void *userdata) {
        Manager *m = userdata;

        if (!m->bus)
                return;
        switch (event) {
        case AI_JOB_ADDED:
                (void) sd_bus_emit_object_added(m->bus, j->path);
                (void) sd_bus_emit_properties_changed(m->bus, PS_OBJECT_AI, PS_IFACE_AI, "Jobs", NULL);
                break;
        case AI_JOB_CHANGED:
                (void) sd_bus_emit_properties_changed_strv(m->bus, j->path, PS_IFACE_AI_JOB, NULL);
                break;
        case AI_JOB_FINISHED:
                (void) sd_bus_emit_properties_changed_strv(m->bus, j->path, PS_IFACE_AI_JOB, NULL);
                (void) sd_bus_emit_signal(m->bus, j->path, PS_IFACE_AI_JOB, "Finished", "ss",
                                          ai_job_state_to_string(j->state), strempty(j->error));
                break;
        case AI_JOB_REMOVING:
                (void) sd_bus_emit_object_removed(m->bus, j->path);
                (void) sd_bus_emit_properties_changed(m->bus, PS_OBJECT_AI, PS_IFACE_AI, "Jobs", NULL);
                break;
        }
}

static void on_changed(Ai *ai, void *userdata) {
        Manager *m = userdata;

        if (m->bus)
                (void) sd_bus_emit_properties_changed_strv(m->bus, PS_OBJECT_AI, PS_IFACE_AI, NULL);
}

int ai_bus_register(Manager *m) {
        int r;

        assert(m->ai);
        m->ai->on_job = on_job;
        m->ai->on_changed = on_changed;
        m->ai->userdata = m;
        r = sd_bus_add_object_vtable(m->bus, NULL, PS_OBJECT_AI, PS_IFACE_AI, ai_vtable, m);
        if (r < 0)
                return r;
        return bus_add_object_family(m->bus, PS_OBJECT_AI_JOBS, PS_IFACE_AI_JOB, job_vtable,
                                     job_find, job_enumerate, m);
}
