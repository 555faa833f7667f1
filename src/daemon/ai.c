/* SPDX-License-Identifier: MIT */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>

#include "ai.h"
#include "filter-compile.h"
#include "filters.h"
#include "flow-table.h"
#include "log.h"
#include "manager.h"
#include "util.h"

#define AI_DEBUG_TEXT_MAX (64 * 1024) /* of a request or reply in the debug output */

static const char *const job_states[] = {
        [AI_JOB_QUEUED] = "queued",
        [AI_JOB_RUNNING] = "running",
        [AI_JOB_DONE] = "done",
        [AI_JOB_FAILED] = "failed",
        [AI_JOB_CANCELLED] = "cancelled",
};

const char *ai_job_state_to_string(AiJobState s) {
        return s < ELEMENTSOF(job_states) ? job_states[s] : "unknown";
}

static int job_state_from_string(const char *s, AiJobState *ret) {
        for (size_t i = 0; i < ELEMENTSOF(job_states); i++)
                if (streq(s, job_states[i])) {
                        *ret = (AiJobState) i;
                        return 0;
                }
        return -EINVAL;
}

const char *ai_shadow_state_to_string(AiShadowState s) {
        return s == AI_SHADOW_RUNNING ? "running" : s == AI_SHADOW_DONE ? "done" : "";
}

void ai_job_options_done(AiJobOptions *o) {
        if (o)
                o->custom_prompt = mfree(o->custom_prompt);
}

char *ai_endpoint_redacted(const char *url) {
        const char *host = strstr(url, "://"), *at, *end;
        _cleanup_free_ char *out = NULL;

        if (!host)
                return strndup(url, strcspn(url, "?#"));
        host += 3;
        end = host + strcspn(host, "/?#");
        /* user:password@host: the credentials go. */
        at = memchr(host, '@', (size_t) (end - host));
        if (asprintf(&out, "%.*s%.*s", (int) (host - url), url,
                     (int) strcspn(at ? at + 1 : host, "?#"), at ? at + 1 : host) < 0)
                return NULL;
        return TAKE_PTR(out);
}

static bool ai_debug_on(const Ai *ai) {
        return ai->config.debug;
}

/* The debug output: never the key (it is only ever in a header, which is never shown). */
static void ai_debug(const Ai *ai, const char *what, const char *text) {
        if (!ai_debug_on(ai))
                return;
        log_info("AI debug: %s: %.*s%s", what, AI_DEBUG_TEXT_MAX, text,
                 strlen(text) > AI_DEBUG_TEXT_MAX ? "..." : "");
}

static char *state_path(Ai *ai, const char *name) {
        return strjoin_path(ai->manager->state_dir, name);
}

/* --- settings and the key --- */

static int key_check(const char *k) {
        size_t l = strlen(k);

        if (l == 0 || l > AI_KEY_MAX)
                return -EINVAL;
        for (size_t i = 0; i < l; i++)
                if ((unsigned char) k[i] <= ' ' || (unsigned char) k[i] >= 0x7f)
                        return -EINVAL;
        return 0;
}

/* A key file: the first line, trimmed. `private` files must not be readable by others. */
static int key_read(const char *path, bool private, char **ret) {
        _cleanup_free_ char *text = NULL;
        struct stat st;
        size_t l;
        int r;

        if (stat(path, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return -EBADF;
        if (private && (st.st_mode & 0077))
                return -EPERM;
        r = read_file_full(path, AI_KEY_MAX + 2, &text, NULL);
        if (r < 0)
                return r;
        text[strcspn(text, "\r\n")] = '\0';
        l = strlen(text);
        while (l > 0 && (text[l - 1] == ' ' || text[l - 1] == '\t'))
                text[--l] = '\0';
        if (key_check(text) < 0) {
                explicit_bzero(text, strlen(text));
                return -EINVAL;
        }
        *ret = TAKE_PTR(text);
        return 0;
}

/* The key lives in pages of its own that are left out of core dumps (MADV_DONTDUMP) and
 * wiped before they are unmapped; `key` (malloc'd) is wiped and freed. */
static void key_set(Ai *ai, char *key, const char *source) {
        if (ai->key) {
                explicit_bzero(ai->key, ai->key_size);
                munmap(ai->key, ai->key_size);
                ai->key = NULL;
        }
        ai->key_source = NULL;
        if (!key)
                return;
        ai->key_size = (strlen(key) + 1 + 4095) & ~(size_t) 4095;
        ai->key = mmap(NULL, ai->key_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (ai->key == MAP_FAILED)
                ai->key = NULL;
        else {
                (void) madvise(ai->key, ai->key_size, MADV_DONTDUMP);
                memcpy(ai->key, key, strlen(key) + 1);
                ai->key_source = source;
        }
        explicit_bzero(key, strlen(key));
        free(key);
}

/* In order: the key stored by SetConfig, the credential, ApiKeyFile=, $OPENAI_API_KEY. */
static void ai_load_key(Ai *ai) {
        _cleanup_free_ char *stored = state_path(ai, AI_KEY_FILE);
        const char *creds = getenv("CREDENTIALS_DIRECTORY"), *env = getenv("OPENAI_API_KEY");
        char *key = NULL;
        int r;

        if (stored && key_read(stored, true, &key) >= 0) {
                key_set(ai, key, "SetConfig");
                return;
        }
        if (creds && *creds) {
                _cleanup_free_ char *p = strjoin_path(creds, AI_CREDENTIAL);

                if (p && key_read(p, false, &key) >= 0) {
                        key_set(ai, key, "credential");
                        return;
                }
        }
        if (ai->config.key_file[0]) {
                r = key_read(ai->config.key_file, true, &key);
                if (r >= 0) {
                        key_set(ai, key, "ApiKeyFile=");
                        return;
                }
                log_warning_errno(r, "Not reading the API key from ApiKeyFile=%s: %s",
                                  ai->config.key_file,
                                  r == -EPERM ? "the file is readable by group or others (chmod 600)"
                                              : strerror(-r));
        }
        if (env && key_check(env) >= 0) {
                key = strdup(env);
                if (key) {
                        key_set(ai, key, "environment");
                        return;
                }
        }
        key_set(ai, NULL, NULL);
}

/* Settings of a JSON object (SetConfig's keys) onto c: all or nothing. */
static int settings_apply(AiConfig *c, json_t *o, char **ret_error) {
        AiConfig n = *c;
        const char *k;
        json_t *v;

        json_object_foreach(o, k, v) {
                if (streq(k, "endpoint")) {
                        if (!json_is_string(v) || ai_config_set_endpoint(&n, json_string_value(v)) < 0)
                                return error_setf(ret_error, -EINVAL, "invalid endpoint; accepted: an "
                                                  "http:// or https:// URL of at most %u characters",
                                                  AI_ENDPOINT_MAX);
                } else if (streq(k, "model")) {
                        if (!json_is_string(v) || ai_config_set_model(&n, json_string_value(v)) < 0)
                                return error_setf(ret_error, -EINVAL, "invalid model; accepted: 1-%u "
                                                  "printable characters", AI_MODEL_MAX);
                } else if (streq(k, "temperature")) {
                        if (!json_is_number(v) || ai_config_set_temperature(&n, json_number_value(v)) < 0)
                                return error_setf(ret_error, -EINVAL, "invalid temperature; "
                                                  "accepted: a number from 0 to 2");
                } else if (streq(k, "max_tokens")) {
                        if (!json_is_integer(v) || json_integer_value(v) < 0 ||
                            ai_config_set_max_tokens(&n, (uint64_t) json_integer_value(v)) < 0)
                                return error_setf(ret_error, -EINVAL, "invalid max_tokens; accepted: "
                                                  "16 to %u", AI_MAX_TOKENS_MAX);
                } else if (streq(k, "timeout")) {
                        if (!json_is_integer(v) || json_integer_value(v) < 0 ||
                            ai_config_set_timeout(&n, (uint64_t) json_integer_value(v) * USEC_PER_SEC) < 0)
                                return error_setf(ret_error, -EINVAL, "invalid timeout; accepted: "
                                                  "1 to 3600 seconds");
                } else if (streq(k, "debug")) {
                        if (!json_is_boolean(v))
                                return error_setf(ret_error, -EINVAL, "invalid debug; accepted: a boolean");
                        n.debug = json_is_true(v);
                } else if (streq(k, "response_format")) {
                        if (!json_is_string(v) || ai_format_from_string(json_string_value(v), &n.format) < 0)
                                return error_setf(ret_error, -EINVAL, "invalid response_format; "
                                                  "accepted: auto, json_schema, json_object, none");
                } else
                        return error_setf(ret_error, -EINVAL, "unknown setting '%.64s'; known: "
                                          "endpoint, model, temperature, max_tokens, timeout, "
                                          "debug, response_format, api_key", k);
        }
        *c = n;
        return 0;
}

static void ai_load_settings(Ai *ai) {
        _cleanup_free_ char *path = state_path(ai, AI_SETTINGS_FILE), *err = NULL;
        const char *e;
        int r;

        ai->config = ai->manager->config.ai;
        /* The environment, as the Guarder read it, over the file. */
        if ((e = getenv("OPENAI_ENDPOINT")) && *e && ai_config_set_endpoint(&ai->config, e) < 0)
                log_warning("Ignoring $OPENAI_ENDPOINT: not an http:// or https:// URL");
        if ((e = getenv("OPENAI_MODEL")) && *e && ai_config_set_model(&ai->config, e) < 0)
                log_warning("Ignoring $OPENAI_MODEL: not a model name");
        if ((e = getenv("AI_DEBUG")) && *e) {
                r = parse_boolean(e);
                if (r >= 0)
                        ai->config.debug = r;
        }
        if (!path)
                return;
        json_decref(ai->overrides);
        ai->overrides = NULL;
        r = json_read_file(path, 64 * 1024, "the AI settings are larger than 64 KiB",
                           &ai->overrides, &err);
        if (r == -ENOENT)
                return;
        if (r < 0) {
                log_struct_internal(LOG_ERR, r, PS_MESSAGE_STATE_CORRUPT, NULL,
                                    "%s; the AI settings of packetscope.conf apply",
                                    err ? err : strerror(-r));
                return;
        }
        if (!json_is_object(ai->overrides) ||
            settings_apply(&ai->config, ai->overrides, &err) < 0) {
                log_warning("Ignoring %s: %s", path, err ? err : "not a JSON object");
                json_decref(ai->overrides);
                ai->overrides = NULL;
        }
}

static int write_json_file(const char *path, json_t *o, unsigned mode) {
        _cleanup_free_ char *text = json_dumps(o, JSON_INDENT(2) | JSON_SORT_KEYS);

        if (!text)
                return -ENOMEM;
        return write_file_atomic(path, text, strlen(text), mode);
}

int ai_set_config(Ai *ai, json_t *changes, char **ret_error) {
        _cleanup_json_ json_t *merged = NULL;
        _cleanup_free_ char *path = NULL, *key_path = NULL;
        json_t *key;
        AiConfig n = ai->config;
        int r;

        assert(ai);
        assert(changes);
        key = json_object_get(changes, "api_key");
        if (key && (!json_is_string(key) ||
                    (json_string_length(key) > 0 && key_check(json_string_value(key)) < 0)))
                /* The value is never repeated in a message. */
                return error_setf(ret_error, -EINVAL, "invalid api_key; accepted: 1-%u printable "
                                  "characters without blanks, or \"\" to remove the stored key",
                                  AI_KEY_MAX);
        merged = ai->overrides ? json_deep_copy(ai->overrides) : json_object();
        if (!merged)
                return -ENOMEM;
        {
                _cleanup_json_ json_t *rest = json_deep_copy(changes);

                if (!rest)
                        return -ENOMEM;
                json_object_del(rest, "api_key");
                r = settings_apply(&n, rest, ret_error);
                if (r < 0)
                        return r;
                json_object_update(merged, rest);
        }
        path = state_path(ai, AI_SETTINGS_FILE);
        key_path = state_path(ai, AI_KEY_FILE);
        if (!path || !key_path)
                return -ENOMEM;
        if (key) {
                if (json_string_length(key) > 0) {
                        _cleanup_free_ char *line = NULL;

                        if (asprintf(&line, "%s\n", json_string_value(key)) < 0)
                                return -ENOMEM;
                        r = write_file_atomic(key_path, line, strlen(line), 0600);
                        explicit_bzero(line, strlen(line));
                        if (r < 0)
                                return error_setf(ret_error, r, "cannot store the API key in the "
                                                  "state directory: %s", strerror(-r));
                } else if (unlink(key_path) < 0 && errno != ENOENT)
                        return error_setf(ret_error, -errno, "cannot remove the stored API key: %s",
                                          strerror(errno));
        }
        r = write_json_file(path, merged, 0600);
        if (r < 0)
                return error_setf(ret_error, r, "cannot store the AI settings: %s", strerror(-r));
        json_decref(ai->overrides);
        ai->overrides = TAKE_PTR(merged);
        ai->config = n;
        if (key)
                ai_load_key(ai);
        if (ai->on_changed)
                ai->on_changed(ai, ai->userdata);
        return 0;
}

/* --- jobs: persistence --- */

static json_t *job_to_json(const AiJob *j) {
        json_t *o, *sugg, *rules;

        o = json_pack("{s:I, s:s, s:s, s:I, s:I, s:s?, s:s?, s:I, s:s?, s:s?}",
                      "id", (json_int_t) j->id,
                      "kind", j->options.analysis_only ? "analyze" : "generate",
                      "state", ai_job_state_to_string(j->state),
                      "created", (json_int_t) j->created_usec,
                      "finished", (json_int_t) j->finished_usec,
                      "analysis", j->result.analysis,
                      "model", j->result.model,
                      "tokens_used", (json_int_t) j->result.tokens_used,
                      "error", j->error,
                      "analyze_type", ai_analyze_type_to_string(j->options.type));
        sugg = json_array();
        rules = json_array();
        if (!o || !sugg || !rules) {
                json_decref(o);
                json_decref(sugg);
                json_decref(rules);
                return NULL;
        }
        for (size_t i = 0; i < j->result.n_suggestions; i++)
                json_array_append_new(sugg, json_string(j->result.suggestions[i]));
        for (size_t i = 0; i < j->result.n_rules; i++) {
                const AiProposedRule *r = &j->result.rules[i];
                json_t *e = json_pack("{s:O, s:s, s:s?}", "proposed", r->proposed,
                                      "verdict", r->accepted ? "accepted" : "rejected",
                                      "reason", r->reason);

                if (e && r->shadow_done)
                        json_object_update_new(e, json_pack("{s:I, s:I, s:I, s:b}",
                                "shadow_packets", (json_int_t) r->shadow_packets,
                                "shadow_bytes", (json_int_t) r->shadow_bytes,
                                "shadow_flows", (json_int_t) r->shadow_flows,
                                "shadow_management", r->shadow_management));
                json_array_append_new(rules, e);
        }
        json_object_set_new(o, "suggestions", sugg);
        json_object_set_new(o, "filters", rules);
        if (j->shadow == AI_SHADOW_DONE)
                json_object_set_new(o, "shadow_seconds", json_integer(j->shadow_seconds));
        return o;
}

static void ai_save_jobs(Ai *ai) {
        _cleanup_json_ json_t *a = json_array();
        _cleanup_free_ char *path = state_path(ai, AI_JOBS_FILE);
        int r;

        if (!a || !path)
                return;
        for (size_t i = 0; i < ai->n_jobs; i++) {
                AiJob *j = ai->jobs[i];

                /* Finished jobs only: one in flight is lost with the daemon anyway. */
                if (j->state < AI_JOB_DONE)
                        continue;
                json_array_append_new(a, job_to_json(j));
        }
        r = write_json_file(path, a, 0600);
        if (r < 0)
                log_warning_errno(r, "Cannot save the AI jobs to %s: %m", path);
}

static char *job_path(uint32_t id) {
        char *p;

        if (asprintf(&p, PS_OBJECT_AI_JOBS "/%u", id) < 0)
                return NULL;
        return p;
}

static AiJob *job_new(Ai *ai, uint32_t id) {
        AiJob *j = calloc(1, sizeof(AiJob));

        if (!j)
                return NULL;
        j->ai = ai;
        j->id = id;
        j->path = job_path(id);
        if (!j->path) {
                free(j);
                return NULL;
        }
        return j;
}

static AiJob *job_free(AiJob *j) {
        if (!j)
                return NULL;
        if (j->request)
                ai_http_cancel(j->request);
        sd_event_source_disable_unref(j->retry_timer);
        sd_event_source_disable_unref(j->shadow_timer);
        ai_proposal_done(&j->result);
        ai_job_options_done(&j->options);
        free(j->error);
        free(j->body);
        free(j->applied);
        free(j->path);
        free(j);
        return NULL;
}

static int job_from_json(Ai *ai, json_t *o, AiJob **ret) {
        AiJob *j;
        json_t *v, *rules;
        uint64_t id;

        v = json_object_get(o, "id");
        if (!json_is_integer(v) || json_integer_value(v) <= 0 || json_integer_value(v) > UINT32_MAX)
                return -EINVAL;
        id = (uint64_t) json_integer_value(v);
        j = job_new(ai, (uint32_t) id);
        if (!j)
                return -ENOMEM;
        if (!json_is_string(json_object_get(o, "state")) ||
            job_state_from_string(json_string_value(json_object_get(o, "state")), &j->state) < 0 ||
            j->state < AI_JOB_DONE)
                goto bad;
        j->options.analysis_only = json_is_string(json_object_get(o, "kind")) &&
                                   streq(json_string_value(json_object_get(o, "kind")), "analyze");
        if (json_is_string(json_object_get(o, "analyze_type")))
                (void) ai_analyze_type_from_string(json_string_value(json_object_get(o, "analyze_type")),
                                                   &j->options.type);
        j->created_usec = (uint64_t) json_integer_value(json_object_get(o, "created"));
        j->finished_usec = (uint64_t) json_integer_value(json_object_get(o, "finished"));
        j->result.tokens_used = (uint64_t) json_integer_value(json_object_get(o, "tokens_used"));
        if (json_is_string(v = json_object_get(o, "analysis")))
                j->result.analysis = strndup(json_string_value(v), AI_ANALYSIS_MAX);
        if (json_is_string(v = json_object_get(o, "model")))
                j->result.model = strndup(json_string_value(v), AI_MODEL_MAX);
        if (json_is_string(v = json_object_get(o, "error")))
                j->error = strndup(json_string_value(v), 4096);
        v = json_object_get(o, "suggestions");
        j->result.suggestions = calloc(MIN(json_array_size(v), (size_t) AI_SUGGESTIONS_MAX) + 1,
                                       sizeof(char *));
        if (!j->result.suggestions)
                goto bad;
        for (size_t i = 0; i < json_array_size(v) && i < AI_SUGGESTIONS_MAX; i++)
                if (json_is_string(json_array_get(v, i)))
                        j->result.suggestions[j->result.n_suggestions++] =
                                strndup(json_string_value(json_array_get(v, i)), AI_SUGGESTION_MAX);
        rules = json_object_get(o, "filters");
        j->result.rules = calloc(MIN(json_array_size(rules), (size_t) AI_PROPOSED_MAX) + 1,
                                 sizeof(AiProposedRule));
        if (!j->result.rules)
                goto bad;
        for (size_t i = 0; i < json_array_size(rules) && i < AI_PROPOSED_MAX; i++) {
                json_t *e = json_array_get(rules, i);
                AiProposedRule *r = &j->result.rules[j->result.n_rules++];
                json_t *reason = json_object_get(e, "reason");

                r->proposed = json_incref(json_object_get(e, "proposed"));
                r->accepted = json_is_string(json_object_get(e, "verdict")) &&
                              streq(json_string_value(json_object_get(e, "verdict")), "accepted");
                if (json_is_string(reason))
                        r->reason = strndup(json_string_value(reason), 1024);
                if (json_is_integer(json_object_get(e, "shadow_packets"))) {
                        r->shadow_done = true;
                        r->shadow_packets = (uint64_t) json_integer_value(json_object_get(e, "shadow_packets"));
                        r->shadow_bytes = (uint64_t) json_integer_value(json_object_get(e, "shadow_bytes"));
                        r->shadow_flows = (uint64_t) json_integer_value(json_object_get(e, "shadow_flows"));
                        r->shadow_management = json_is_true(json_object_get(e, "shadow_management"));
                        j->shadow = AI_SHADOW_DONE;
                }
                /* An accepted rule is read again through the validator: the file is input too. */
                if (r->accepted) {
                        _cleanup_free_ char *err = NULL;

                        r->rule = filter_new();
                        if (!r->rule || !r->proposed ||
                            filter_from_json(r->rule, r->proposed, 0, &err) < 0) {
                                r->rule = filter_free(r->rule);
                                r->accepted = false;
                                free(r->reason);
                                r->reason = strdup("no longer valid when read back");
                        }
                }
        }
        if (json_is_integer(json_object_get(o, "shadow_seconds")))
                j->shadow_seconds = (uint32_t) json_integer_value(json_object_get(o, "shadow_seconds"));
        *ret = j;
        return 0;
bad:
        job_free(j);
        return -EINVAL;
}

static void ai_load_jobs(Ai *ai) {
        _cleanup_free_ char *path = state_path(ai, AI_JOBS_FILE), *err = NULL;
        _cleanup_json_ json_t *a = NULL;
        int r;

        if (!path)
                return;
        r = json_read_file(path, 64 * 1024 * 1024, "the AI jobs are larger than 64 MiB", &a, &err);
        if (r == -ENOENT)
                return;
        if (r < 0 || !json_is_array(a)) {
                log_struct_internal(LOG_ERR, r, PS_MESSAGE_STATE_CORRUPT, NULL,
                                    "%s; starting without the kept AI jobs",
                                    err ? err : "the AI jobs file is not a JSON array");
                return;
        }
        ai->jobs = calloc(json_array_size(a) + 1, sizeof(AiJob *));
        if (!ai->jobs)
                return;
        for (size_t i = 0; i < json_array_size(a) && ai->n_jobs < ai->config.max_jobs; i++) {
                AiJob *j = NULL;

                if (job_from_json(ai, json_array_get(a, i), &j) < 0) {
                        log_warning("Skipping AI job #%zu of %s: not a finished job", i, path);
                        continue;
                }
                if (ai_find_job(ai, j->id)) {
                        job_free(j);
                        continue;
                }
                ai->jobs[ai->n_jobs++] = j;
                ai->next_id = MAX(ai->next_id, j->id);
        }
}

/* --- jobs: running --- */

static void job_notify(AiJob *j, AiJobEvent e) {
        if (j->ai->on_job)
                j->ai->on_job(j->ai, j, e, j->ai->userdata);
}

static void ai_notify_changed(Ai *ai) {
        if (ai->on_changed)
                ai->on_changed(ai, ai->userdata);
}

static void ai_schedule(Ai *ai);

/* Finished jobs beyond MaxJobs=, oldest first. */
static void ai_trim(Ai *ai) {
        size_t finished = 0;

        for (size_t i = 0; i < ai->n_jobs; i++)
                finished += ai->jobs[i]->state >= AI_JOB_DONE;
        for (size_t i = 0; i < ai->n_jobs && finished > ai->config.max_jobs;) {
                AiJob *j = ai->jobs[i];

                if (j->state < AI_JOB_DONE || j->shadow == AI_SHADOW_RUNNING) {
                        i++;
                        continue;
                }
                job_notify(j, AI_JOB_REMOVING);
                memmove(ai->jobs + i, ai->jobs + i + 1, (ai->n_jobs - i - 1) * sizeof(AiJob *));
                ai->n_jobs--;
                job_free(j);
                finished--;
        }
}

static void job_finish(AiJob *j, AiJobState state, const char *error) {
        Ai *ai = j->ai;
        bool was_running = j->state == AI_JOB_RUNNING;

        j->request = NULL; /* freed by the HTTP side after its callback, or cancelled */
        j->retry_timer = sd_event_source_disable_unref(j->retry_timer);
        j->body = mfree(j->body);
        j->state = state;
        j->finished_usec = now_usec(CLOCK_REALTIME);
        free(j->error);
        j->error = error ? strdup(error) : NULL;
        if (was_running)
                ai->running--;
        if (state == AI_JOB_FAILED)
                log_struct_internal(LOG_WARNING, 0, PS_MESSAGE_AI_JOB, NULL, "AI job %u failed: %s",
                                    j->id, error ? error : "");
        else {
                size_t accepted = 0;

                for (size_t i = 0; i < j->result.n_rules; i++)
                        accepted += j->result.rules[i].accepted;
                log_struct_internal(LOG_INFO, 0, PS_MESSAGE_AI_JOB, NULL,
                                    "AI job %u %s: %zu rules proposed, %zu accepted, %" PRIu64
                                    " tokens", j->id, ai_job_state_to_string(state),
                                    j->result.n_rules, accepted, j->result.tokens_used);
        }
        job_notify(j, AI_JOB_FINISHED);
        ai_trim(ai);
        ai_save_jobs(ai);
        ai_notify_changed(ai);
        ai_schedule(ai);
}

static int job_send(AiJob *j);

static int on_retry(sd_event_source *s, uint64_t usec, void *userdata) {
        AiJob *j = userdata;
        int r;

        j->retry_timer = sd_event_source_disable_unref(j->retry_timer);
        r = job_send(j);
        if (r < 0)
                job_finish(j, AI_JOB_FAILED, "cannot start the request again");
        return 0;
}

static bool status_retryable(long status) {
        return status == 408 || status == 429 || status >= 500;
}

static bool outcome_retryable(AiHttpOutcome o) {
        return o == AI_HTTP_REFUSED || o == AI_HTTP_CONNECT;
}

/* The server does not take this response_format: 400/422 naming it. */
static bool format_refused(const AiHttpResult *res) {
        return (res->status == 400 || res->status == 422) &&
               (strstr(res->body, "response_format") || strstr(res->body, "json_schema"));
}

static void job_complete(AiJob *j, const AiHttpResult *res) {
        Ai *ai = j->ai;
        _cleanup_free_ char *err = NULL, *msg = NULL, *where = ai_endpoint_redacted(ai->config.endpoint);
        AiParseError kind;
        int r;

        if (ai_debug_on(ai)) {
                _cleanup_free_ char *head = NULL;

                if (asprintf(&head, "reply (attempt %u): %s, HTTP %ld, %zu bytes", j->attempts,
                             ai_http_outcome_to_string(res->outcome), res->status,
                             res->body_size) >= 0)
                        ai_debug(ai, head, res->body);
        }
        if (res->outcome == AI_HTTP_OK && format_refused(res) && j->format != AI_FORMAT_NONE &&
            ai->config.format == AI_FORMAT_AUTO) {
                j->format = j->format == AI_FORMAT_AUTO || j->format == AI_FORMAT_JSON_SCHEMA
                            ? AI_FORMAT_JSON_OBJECT : AI_FORMAT_NONE;
                ai_debug(ai, "parse", j->format == AI_FORMAT_JSON_OBJECT
                         ? "the endpoint refused json_schema; trying json_object"
                         : "the endpoint refused json_object; trying plain text");
                j->attempts--; /* not a failure of the endpoint */
                if (job_send(j) < 0)
                        job_finish(j, AI_JOB_FAILED, "cannot start the request again");
                return;
        }
        if ((res->outcome != AI_HTTP_OK && outcome_retryable(res->outcome)) ||
            (res->outcome == AI_HTTP_OK && status_retryable(res->status))) {
                if (j->attempts <= ai->config.max_retries &&
                    res->retry_after_usec <= AI_RETRY_AFTER_MAX_SEC * USEC_PER_SEC) {
                        uint64_t delay = res->retry_after_usec ? res->retry_after_usec
                                                              : (USEC_PER_SEC << (j->attempts - 1));

                        log_debug("AI job %u: attempt %u failed (%s, HTTP %ld); again in %" PRIu64
                                  " ms", j->id, j->attempts, ai_http_outcome_to_string(res->outcome),
                                  res->status, delay / 1000);
                        r = sd_event_add_time_relative(ai->manager->event, &j->retry_timer,
                                                       CLOCK_MONOTONIC, delay, 0, on_retry, j);
                        if (r >= 0)
                                return;
                }
        }
        switch (res->outcome) {
        case AI_HTTP_OK:
                break;
        case AI_HTTP_TIMEOUT:
                (void) error_setf(&msg, 0, "timeout: no complete answer from %s within %" PRIu64 " s "
                                "(TimeoutSec=)", strna(where), ai->config.timeout_usec / USEC_PER_SEC);
                break;
        case AI_HTTP_TOO_LARGE:
                (void) error_setf(&msg, 0, "the reply from %s was too large: more than %" PRIu64
                                " bytes (MaxResponseBytes=)", strna(where),
                                ai->config.max_response_bytes);
                break;
        default:
                (void) error_setf(&msg, 0, "%s: %s (%s)%s", ai_http_outcome_to_string(res->outcome),
                                strna(where), res->detail,
                                j->attempts > 1 ? ", after every retry" : "");
        }
        if (res->outcome != AI_HTTP_OK) {
                job_finish(j, AI_JOB_FAILED, msg ? msg : "the request failed");
                return;
        }
        if (res->status < 200 || res->status >= 300) {
                _cleanup_free_ char *m = ai_response_error_message(res->body, res->body_size);

                (void) error_setf(&msg, 0, "HTTP %ld from %s: %s%s", res->status, strna(where),
                                m ? m : "(no error message)",
                                status_retryable(res->status) && j->attempts > 1
                                ? " (after every retry)" : "");
                job_finish(j, AI_JOB_FAILED, msg ? msg : "HTTP error");
                return;
        }
        ai_proposal_done(&j->result);
        r = ai_response_parse(res->body, res->body_size, &j->result, &kind, &err);
        if (r < 0) {
                ai_debug(ai, "parse", err ? err : "failed");
                job_finish(j, AI_JOB_FAILED, err ? err : "cannot parse the reply");
                return;
        }
        {
                Manager *m = ai->manager;
                AiPolicy pol = {
                        .config = &m->config,
                        .protect = j->options.protect,
                        .n_protect = j->options.n_protect,
                        .existing = m->filters->rules,
                        .n_existing = m->filters->n_rules,
                        .max_rules = ai->config.max_rules,
                        .analysis_only = j->options.analysis_only,
                };

                r = ai_proposal_check(&j->result, &pol);
                if (r < 0) {
                        job_finish(j, AI_JOB_FAILED, "out of memory checking the rules");
                        return;
                }
        }
        if (ai_debug_on(ai))
                for (size_t i = 0; i < j->result.n_rules; i++) {
                        char line[64];

                        snprintf(line, sizeof line, "rule #%zu", i);
                        ai_debug(ai, line, j->result.rules[i].accepted ? "accepted"
                                                                        : j->result.rules[i].reason);
                }
        if (!j->result.model)
                j->result.model = strdup(ai->config.model);
        job_finish(j, AI_JOB_DONE, NULL);
}

static void on_http_done(AiHttpRequest *req, const AiHttpResult *res, void *userdata) {
        AiJob *j = userdata;

        j->request = NULL;
        job_complete(j, res);
}

static int summary_flow(Link *l, const void *k, const void *v, void *userdata) {
        ai_summary_add_flow(userdata, k, v);
        return 0;
}

static int summary_icmp(Link *l, const void *k, const void *v, void *userdata) {
        ai_summary_add_icmp(userdata, k, v);
        return 0;
}

static int job_build(AiJob *j, char **ret_body) {
        Ai *ai = j->ai;
        Manager *m = ai->manager;
        _cleanup_(ai_summary_done) AiSummary s = {};
        _cleanup_free_ char *summary = NULL, *system = NULL;
        struct ps_stats total;
        double pps, bps;
        int r;

        r = ai_summary_init(&s, j->options.include_tcp, j->options.include_icmp,
                            j->options.include_stats, now_nsec(CLOCK_MONOTONIC));
        if (r < 0)
                return r;
        for (size_t i = 0; i < m->n_links; i++) {
                Link *l = m->links[i];

                (void) flow_table_foreach(l, FLOW_TABLE_CONNECTIONS, summary_flow, &s);
                (void) flow_table_foreach(l, FLOW_TABLE_ICMP, summary_icmp, &s);
        }
        manager_totals(m, &total, &pps, &bps, NULL, NULL);
        ai_summary_set_stats(&s, &total, pps, bps);
        if (j->options.include_bans && m->bans) {
                json_t *bans = ban_store_summary(m->bans, AI_SUMMARY_BANS_TOP);

                if (!bans)
                        return -ENOMEM;
                ai_summary_set_bans(&s, bans);
        }
        for (size_t i = 0; i < m->filters->n_rules; i++) {
                const Filter *f = m->filters->rules[i];

                if (f->comment && strncmp(f->comment, AI_SHADOW_COMMENT, strlen(AI_SHADOW_COMMENT)) == 0)
                        continue;
                r = ai_summary_add_rule(&s, f);
                if (r < 0)
                        return r;
        }
        r = ai_summary_to_string(&s, &summary);
        if (r < 0)
                return r;
        r = ai_request_build(&(AiRequestSpec) {
                        .model = ai->config.model,
                        .temperature = ai->config.temperature,
                        .max_tokens = ai->config.max_tokens,
                        .format = j->format,
                        .type = j->options.type,
                        .analysis_only = j->options.analysis_only,
                        .custom_prompt = j->options.custom_prompt,
                        .max_rules = ai->config.max_rules,
                }, summary, ret_body, &system);
        if (r < 0)
                return r;
        if (ai_debug_on(ai)) {
                _cleanup_free_ char *where = ai_endpoint_redacted(ai->config.endpoint), *params = NULL;

                if (asprintf(&params, "job %u, endpoint %s, model %s, temperature %.2f, max_tokens "
                             "%u, timeout %" PRIu64 " s, response_format %s, summary %zu characters",
                             j->id, strna(where), ai->config.model, ai->config.temperature,
                             ai->config.max_tokens, ai->config.timeout_usec / USEC_PER_SEC,
                             ai_format_to_string(j->format), strlen(summary)) >= 0)
                        ai_debug(ai, "request parameters", params);
                ai_debug(ai, "system prompt", system);
                ai_debug(ai, "request body", *ret_body);
        }
        return 0;
}

static int job_send(AiJob *j) {
        Ai *ai = j->ai;
        _cleanup_free_ char *auth = NULL;
        int r;

        free(j->body);
        j->body = NULL;
        r = job_build(j, &j->body);
        if (r < 0)
                return r;
        if (ai->key) {
                /* Azure OpenAI deployment URLs (…?api-version=) take the key as api-key. */
                r = asprintf(&auth, strstr(ai->config.endpoint, "api-version=") ? "api-key: %s"
                                                                              : "Authorization: Bearer %s",
                             ai->key);
                if (r < 0)
                        return -ENOMEM;
        }
        j->attempts++;
        r = ai_http_post(ai->http, ai->config.endpoint, auth, j->body, ai->config.timeout_usec,
                         (size_t) ai->config.max_response_bytes, on_http_done, j, &j->request);
        if (auth)
                explicit_bzero(auth, strlen(auth));
        return r;
}

static void ai_schedule(Ai *ai) {
        for (size_t i = 0; i < ai->n_jobs && ai->running < ai->config.max_running; i++) {
                AiJob *j = ai->jobs[i];
                int r;

                if (j->state != AI_JOB_QUEUED)
                        continue;
                j->state = AI_JOB_RUNNING;
                j->format = ai->config.format;
                ai->running++;
                r = job_send(j);
                if (r < 0) {
                        job_finish(j, AI_JOB_FAILED, r == -ENOMEM ? "out of memory"
                                   : "cannot start the request (bad endpoint URL?)");
                        return; /* job_finish scheduled again */
                }
                job_notify(j, AI_JOB_CHANGED);
                ai_notify_changed(ai);
        }
}

int ai_submit(Ai *ai, AiJobOptions *options, AiJob **ret, char **ret_error) {
        AiJob **n, *j;
        size_t queued = 0;

        assert(ai);
        assert(options);
        for (size_t i = 0; i < ai->n_jobs; i++)
                queued += ai->jobs[i]->state == AI_JOB_QUEUED;
        if (queued >= ai->config.max_queued + (ai->running < ai->config.max_running ? 1u : 0u))
                return error_setf(ret_error, -EBUSY, "%zu AI jobs are already queued (MaxQueued=%u); "
                                  "wait for them or cancel one", queued, ai->config.max_queued);
        n = realloc(ai->jobs, (ai->n_jobs + 1) * sizeof(AiJob *));
        if (!n)
                return -ENOMEM;
        ai->jobs = n;
        j = job_new(ai, ai->next_id + 1);
        if (!j)
                return -ENOMEM;
        ai->next_id++;
        j->options = *options;
        *options = (AiJobOptions) {};
        j->created_usec = now_usec(CLOCK_REALTIME);
        j->state = AI_JOB_QUEUED;
        ai->jobs[ai->n_jobs++] = j;
        log_struct_internal(LOG_INFO, 0, PS_MESSAGE_AI_JOB, NULL, "AI job %u queued (%s, %s)",
                            j->id, j->options.analysis_only ? "analysis" : "rules",
                            ai_analyze_type_to_string(j->options.type));
        job_notify(j, AI_JOB_ADDED);
        ai_schedule(ai);
        ai_notify_changed(ai);
        if (ret)
                *ret = j;
        return 0;
}

AiJob *ai_find_job(Ai *ai, uint32_t id) {
        for (size_t i = 0; i < ai->n_jobs; i++)
                if (ai->jobs[i]->id == id)
                        return ai->jobs[i];
        return NULL;
}

AiJob *ai_find_job_path(Ai *ai, const char *path) {
        const char *prefix = PS_OBJECT_AI_JOBS "/";
        uint32_t id;

        if (strncmp(path, prefix, strlen(prefix)) != 0 || safe_atou32(path + strlen(prefix), &id) < 0)
                return NULL;
        return ai_find_job(ai, id);
}

bool ai_busy(const Ai *ai) {
        return ai && ai->running > 0;
}

int ai_job_cancel(AiJob *j, char **ret_error) {
        assert(j);
        if (j->state >= AI_JOB_DONE)
                return error_setf(ret_error, -EALREADY, "AI job %u has already ended (%s)", j->id,
                                  ai_job_state_to_string(j->state));
        if (j->request) {
                ai_http_cancel(j->request);
                j->request = NULL;
        }
        job_finish(j, AI_JOB_CANCELLED, "cancelled on request");
        return 0;
}

/* --- shadow --- */

static int shadow_remove_rules(Ai *ai, AiJob *j) {
        _cleanup_filter_list_ FilterList keep = {};
        _cleanup_free_ char *err = NULL;
        FilterStore *s = ai->manager->filters;
        int r;

        r = filter_store_snapshot(s, &keep.rules, &keep.n);
        if (r < 0)
                return r;
        for (size_t i = 0; i < keep.n;) {
                bool ours = false;

                for (size_t k = 0; k < j->result.n_rules; k++)
                        if (j->result.rules[k].shadow_id && j->result.rules[k].shadow_id == keep.rules[i]->id)
                                ours = true;
                if (!ours) {
                        i++;
                        continue;
                }
                filter_free(keep.rules[i]);
                memmove(keep.rules + i, keep.rules + i + 1, (keep.n - i - 1) * sizeof(Filter *));
                keep.n--;
        }
        r = filter_store_replace(s, keep.rules, keep.n, true, &err);
        if (r < 0) {
                log_warning("Cannot remove the shadow rules of AI job %u: %s", j->id,
                            err ? err : strerror(-r));
                return r;
        }
        keep = (FilterList) {}; /* the store's now */
        return 0;
}

typedef struct ShadowWalk {
        AiJob *job;
        const Config *config;
} ShadowWalk;

static bool from_protected(const AiJob *j, const Config *c, uint8_t family, const uint32_t a[4]) {
        for (uint32_t i = 0; i < c->n_management; i++)
                if (cidr_contains(&c->management[i], family, a))
                        return true;
        for (size_t i = 0; i < j->options.n_protect; i++)
                if (cidr_contains(&j->options.protect[i], family, a))
                        return true;
        return false;
}

static int shadow_visit(Link *l, const void *key, const void *value, void *userdata,
                        bool icmp) {
        ShadowWalk *w = userdata;
        AiJob *j = w->job;
        struct ps_match pkt;
        uint64_t last_seen;
        uint8_t family;
        const uint32_t *src;

        if (icmp) {
                const struct ps_icmp_key *k = key;
                const struct ps_icmp_value *v = value;

                icmp_entry_to_match(k, v, &pkt);
                last_seen = v->last_seen;
                family = k->family;
                src = k->src;
        } else {
                const struct ps_flow_key *k = key;
                const struct ps_flow_value *v = value;

                flow_entry_to_match(k, v, &pkt);
                last_seen = v->last_seen;
                family = k->family;
                src = k->src;
        }
        if (last_seen < j->shadow_start_ns)
                return 0;
        for (size_t i = 0; i < j->result.n_rules; i++) {
                AiProposedRule *r = &j->result.rules[i];

                if (!r->accepted || !r->rule || !filter_match(r->rule, &pkt))
                        continue;
                r->shadow_flows++;
                if (from_protected(j, w->config, family, src))
                        r->shadow_management = true;
        }
        return 0;
}

static int shadow_visit_flow(Link *l, const void *k, const void *v, void *userdata) {
        return shadow_visit(l, k, v, userdata, false);
}

static int shadow_visit_icmp(Link *l, const void *k, const void *v, void *userdata) {
        return shadow_visit(l, k, v, userdata, true);
}

static void shadow_end(AiJob *j) {
        Ai *ai = j->ai;
        Manager *m = ai->manager;
        ShadowWalk w = { .job = j, .config = &m->config };

        for (size_t i = 0; i < j->result.n_rules; i++) {
                AiProposedRule *r = &j->result.rules[i];
                Filter *f;

                if (!r->shadow_id)
                        continue;
                f = filter_store_find(m->filters, r->shadow_id);
                if (f && filter_store_read_counter(m->filters, f) >= 0) {
                        r->shadow_packets = f->hits;
                        r->shadow_bytes = f->bytes;
                }
                r->shadow_flows = 0;
                r->shadow_management = false;
        }
        for (size_t i = 0; i < m->n_links; i++) {
                (void) flow_table_foreach(m->links[i], FLOW_TABLE_CONNECTIONS, shadow_visit_flow, &w);
                (void) flow_table_foreach(m->links[i], FLOW_TABLE_ICMP, shadow_visit_icmp, &w);
        }
        (void) shadow_remove_rules(ai, j);
        for (size_t i = 0; i < j->result.n_rules; i++) {
                AiProposedRule *r = &j->result.rules[i];

                if (!r->accepted)
                        continue;
                r->shadow_done = true;
                r->shadow_id = 0;
                log_struct_internal(LOG_INFO, 0, PS_MESSAGE_AI_JOB, NULL,
                                    "AI job %u shadow, rule #%zu: %" PRIu64 " packets, %" PRIu64
                                    " bytes, %" PRIu64 " flows would have been dropped%s", j->id,
                                    i, r->shadow_packets, r->shadow_bytes, r->shadow_flows,
                                    r->shadow_management ? ", some from a management address" : "");
        }
        j->shadow = AI_SHADOW_DONE;
        j->shadow_timer = sd_event_source_disable_unref(j->shadow_timer);
        ai_save_jobs(ai);
        job_notify(j, AI_JOB_CHANGED);
}

static int on_shadow_end(sd_event_source *s, uint64_t usec, void *userdata) {
        AiJob *j = userdata;

        /* The shadow rules cannot be taken out while an import is applied: a second later. */
        if (j->ai->manager->filters->busy) {
                (void) sd_event_source_set_time_relative(s, USEC_PER_SEC);
                (void) sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
                return 0;
        }
        shadow_end(j);
        return 0;
}

int ai_job_shadow(AiJob *j, uint32_t seconds, char **ret_error) {
        _cleanup_filter_list_ FilterList add = {};
        _cleanup_free_ uint32_t *ids = NULL;
        Ai *ai = j->ai;
        Manager *m = ai->manager;
        int r;

        if (j->state != AI_JOB_DONE)
                return error_setf(ret_error, -EINVAL, "AI job %u is %s; only a done job has rules "
                                  "to shadow", j->id, ai_job_state_to_string(j->state));
        if (j->shadow == AI_SHADOW_RUNNING)
                return error_setf(ret_error, -EBUSY, "AI job %u is already in shadow", j->id);
        if (seconds == 0 || seconds > AI_SHADOW_MAX_SEC)
                return error_setf(ret_error, -ERANGE, "invalid seconds %u; accepted: 1 to %u",
                                  seconds, AI_SHADOW_MAX_SEC);
        if (m->filters->transaction)
                return error_setf(ret_error, -EBUSY, "a confirm-or-rollback transaction is "
                                  "pending; confirm or roll it back first");
        for (size_t i = 0; i < j->result.n_rules; i++) {
                AiProposedRule *pr = &j->result.rules[i];
                _cleanup_filter_ Filter *f = NULL;
                _cleanup_free_ char *comment = NULL;

                if (!pr->accepted || !pr->rule)
                        continue;
                f = filter_new();
                if (!f || filter_copy(f, pr->rule) < 0)
                        return -ENOMEM;
                f->id = UINT32_MAX;
                f->action = FILTER_COUNT;
                f->enabled = true;
                f->timeout_sec = 0;
                f->expires_usec = 0;
                if (asprintf(&comment, AI_SHADOW_COMMENT "job %u rule #%zu", j->id, i) < 0)
                        return -ENOMEM;
                free(f->comment);
                f->comment = TAKE_PTR(comment);
                r = filter_list_push(&add, f);
                if (r < 0)
                        return r;
                f = NULL;
        }
        if (add.n == 0)
                return error_setf(ret_error, -ENOENT, "AI job %u has no accepted rules", j->id);
        ids = calloc(add.n, sizeof(uint32_t));
        if (!ids)
                return -ENOMEM;
        /* Not saved: a daemon that dies meanwhile comes back without the shadow rules. */
        r = filter_store_commit(m->filters, &add, false, false, ids, ret_error);
        if (r < 0)
                return r;
        for (size_t i = 0, k = 0; i < j->result.n_rules; i++) {
                AiProposedRule *pr = &j->result.rules[i];

                pr->shadow_done = false;
                pr->shadow_packets = pr->shadow_bytes = pr->shadow_flows = 0;
                pr->shadow_management = false;
                if (pr->accepted && pr->rule)
                        pr->shadow_id = ids[k++];
        }
        j->shadow = AI_SHADOW_RUNNING;
        j->shadow_seconds = seconds;
        j->shadow_start_ns = now_nsec(CLOCK_MONOTONIC);
        j->shadow_until_usec = now_usec(CLOCK_REALTIME) + (uint64_t) seconds * USEC_PER_SEC;
        r = sd_event_add_time_relative(m->event, &j->shadow_timer, CLOCK_MONOTONIC,
                                       (uint64_t) seconds * USEC_PER_SEC, 0, on_shadow_end, j);
        if (r < 0) {
                (void) shadow_remove_rules(ai, j);
                j->shadow = AI_SHADOW_NONE;
                return r;
        }
        log_struct_internal(LOG_NOTICE, 0, PS_MESSAGE_AI_JOB, NULL,
                            "AI job %u: %zu accepted rules counting in shadow for %u s", j->id,
                            add.n, seconds);
        job_notify(j, AI_JOB_CHANGED);
        return 0;
}

int ai_job_accepted_rules(AiJob *j, FilterList *ret, char **ret_error) {
        _cleanup_filter_list_ FilterList list = {};
        int r;

        if (j->state != AI_JOB_DONE)
                return error_setf(ret_error, -EINVAL, "AI job %u is %s; only a done job has rules "
                                  "to apply", j->id, ai_job_state_to_string(j->state));
        for (size_t i = 0; i < j->result.n_rules; i++) {
                _cleanup_filter_ Filter *f = NULL;

                if (!j->result.rules[i].accepted || !j->result.rules[i].rule)
                        continue;
                f = filter_new();
                if (!f || filter_copy(f, j->result.rules[i].rule) < 0)
                        return -ENOMEM;
                f->id = UINT32_MAX;
                r = filter_list_push(&list, f);
                if (r < 0)
                        return r;
                f = NULL;
        }
        if (list.n == 0)
                return error_setf(ret_error, -ENOENT, "AI job %u has no accepted rules", j->id);
        *ret = list;
        list = (FilterList) {};
        return 0;
}

void ai_job_set_applied(AiJob *j, const char *transaction) {
        free(j->applied);
        j->applied = transaction ? strdup(transaction) : NULL;
        log_struct_internal(LOG_NOTICE, 0, PS_MESSAGE_AI_JOB, NULL,
                            "AI job %u: accepted rules applied as transaction %s", j->id,
                            strna(transaction));
        job_notify(j, AI_JOB_CHANGED);
}

int ai_job_delete(AiJob *j, char **ret_error) {
        Ai *ai = j->ai;

        if (j->state < AI_JOB_DONE)
                return error_setf(ret_error, -EBUSY, "AI job %u is %s; cancel it first", j->id,
                                  ai_job_state_to_string(j->state));
        if (j->shadow == AI_SHADOW_RUNNING) {
                j->shadow_timer = sd_event_source_disable_unref(j->shadow_timer);
                (void) shadow_remove_rules(ai, j);
        }
        for (size_t i = 0; i < ai->n_jobs; i++)
                if (ai->jobs[i] == j) {
                        job_notify(j, AI_JOB_REMOVING);
                        memmove(ai->jobs + i, ai->jobs + i + 1, (ai->n_jobs - i - 1) * sizeof(AiJob *));
                        ai->n_jobs--;
                        job_free(j);
                        break;
                }
        ai_save_jobs(ai);
        return 0;
}

/* --- life --- */

/* Shadow rules a daemon left behind when it stopped in the middle of one. */
static void ai_remove_stale_shadow_rules(Ai *ai) {
        _cleanup_filter_list_ FilterList keep = {};
        _cleanup_free_ char *err = NULL;
        FilterStore *s = ai->manager->filters;
        size_t before;

        if (filter_store_snapshot(s, &keep.rules, &keep.n) < 0)
                return;
        before = keep.n;
        for (size_t i = 0; i < keep.n;) {
                const char *c = keep.rules[i]->comment;

                if (keep.rules[i]->action == FILTER_COUNT && c &&
                    strncmp(c, AI_SHADOW_COMMENT, strlen(AI_SHADOW_COMMENT)) == 0) {
                        filter_free(keep.rules[i]);
                        memmove(keep.rules + i, keep.rules + i + 1, (keep.n - i - 1) * sizeof(Filter *));
                        keep.n--;
                } else
                        i++;
        }
        if (keep.n == before)
                return;
        if (filter_store_replace(s, keep.rules, keep.n, true, &err) < 0) {
                log_warning("Cannot remove stale AI shadow rules: %s", strna(err));
                return;
        }
        keep = (FilterList) {};
        log_notice("Removed %zu AI shadow rules left by a daemon that stopped during a shadow",
                   before - keep.n);
}

int ai_new(Manager *m, Ai **ret) {
        Ai *ai;

        assert(m);
        assert(ret);
        ai = calloc(1, sizeof(Ai));
        if (!ai)
                return -ENOMEM;
        ai->manager = m;
        ai->config = m->config.ai;
        *ret = ai;
        return 0;
}

int ai_start(Ai *ai) {
        int r;

        assert(ai);
        r = ai_http_new(ai->manager->event, &ai->http);
        if (r < 0)
                return r;
        ai_load_settings(ai);
        ai_load_key(ai);
        ai_load_jobs(ai);
        ai_remove_stale_shadow_rules(ai);
        log_debug("AI client: endpoint set, model %s, key %s", ai->config.model,
                  ai->key ? ai->key_source : "not set");
        return 0;
}

Ai *ai_free(Ai *ai) {
        if (!ai)
                return NULL;
        /* A job in flight when the daemon stops ends failed, and is kept so. */
        for (size_t i = 0; i < ai->n_jobs; i++) {
                AiJob *j = ai->jobs[i];

                if (j->state < AI_JOB_DONE) {
                        if (j->request)
                                ai_http_cancel(j->request);
                        j->request = NULL;
                        j->state = AI_JOB_FAILED;
                        j->finished_usec = now_usec(CLOCK_REALTIME);
                        free(j->error);
                        j->error = strdup("the daemon stopped before the job ended");
                }
                if (j->shadow == AI_SHADOW_RUNNING) {
                        j->shadow_timer = sd_event_source_disable_unref(j->shadow_timer);
                        (void) shadow_remove_rules(ai, j);
                        j->shadow = AI_SHADOW_NONE;
                }
        }
        if (ai->http && ai->n_jobs > 0)
                ai_save_jobs(ai);
        for (size_t i = 0; i < ai->n_jobs; i++)
                job_free(ai->jobs[i]);
        free(ai->jobs);
        ai->http = ai_http_free(ai->http);
        key_set(ai, NULL, NULL);
        json_decref(ai->overrides);
        free(ai);
        return NULL;
}
