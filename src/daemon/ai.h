/* SPDX-License-Identifier: MIT */
#pragma once

#include <jansson.h>
#include <systemd/sd-event.h>

#include "ai-http.h"
#include "ai-response.h"
#include "ai-summary.h"
#include "conf.h"

/*
 * The AI client: its settings (packetscope.conf [AI], the environment, AI.SetConfig), the API
 * key, and the jobs. A job summarises the live tables, sends them to a chat-completions
 * endpoint without blocking the loop (ai-http.c), parses and checks the answer
 * (ai-response.c) and keeps the result; the last MaxJobs= finished jobs are kept in
 * $STATE_DIRECTORY/ai-jobs.json. Nothing a job holds is enforced unless an administrator
 * shadows or applies it.
 */

typedef struct Manager Manager;
typedef struct Ai Ai;

typedef enum AiJobState {
        AI_JOB_QUEUED,
        AI_JOB_RUNNING,
        AI_JOB_DONE,
        AI_JOB_FAILED,
        AI_JOB_CANCELLED,
} AiJobState;

typedef enum AiJobEvent {
        AI_JOB_ADDED,
        AI_JOB_CHANGED,
        AI_JOB_FINISHED, /* reached done, failed or cancelled */
        AI_JOB_REMOVING, /* about to be freed; the object still exists */
} AiJobEvent;

typedef enum AiShadowState {
        AI_SHADOW_NONE,
        AI_SHADOW_RUNNING,
        AI_SHADOW_DONE,
} AiShadowState;

typedef struct AiJobOptions {
        AiAnalyzeType type;
        bool analysis_only;
        bool include_tcp, include_icmp, include_stats, include_bans;
        char *custom_prompt;
        Cidr protect[8]; /* the caller's own addresses (protect_address) */
        size_t n_protect;
} AiJobOptions;

typedef struct AiJob {
        Ai *ai;
        uint32_t id;
        char *path;
        AiJobState state;
        AiJobOptions options;
        uint64_t created_usec, finished_usec; /* CLOCK_REALTIME */
        AiProposal result;
        char *error;
        /* in flight */
        AiHttpRequest *request;
        sd_event_source *retry_timer;
        char *body;
        unsigned attempts;
        AiFormat format; /* the response_format being tried */
        /* shadow */
        AiShadowState shadow;
        uint64_t shadow_until_usec;   /* CLOCK_REALTIME */
        uint64_t shadow_start_ns;     /* CLOCK_MONOTONIC, as the flow table stamps */
        uint32_t shadow_seconds;
        sd_event_source *shadow_timer;
        char *applied; /* the transaction an Apply began */
} AiJob;

typedef void (*ai_job_event_t)(Ai *ai, AiJob *job, AiJobEvent event, void *userdata);
typedef void (*ai_changed_t)(Ai *ai, void *userdata);

struct Ai {
        Manager *manager; /* not owned */
        AiHttp *http;
        AiConfig config;       /* effective: file, then environment, then SetConfig */
        json_t *overrides;     /* what SetConfig stored (ai.json) */
        char *key;             /* never logged, never returned; in pages of its own */
        size_t key_size;
        const char *key_source;
        AiJob **jobs;          /* oldest first */
        size_t n_jobs;
        uint32_t next_id;
        unsigned running;
        ai_job_event_t on_job;
        ai_changed_t on_changed; /* Busy, ApiKeySet, the settings */
        void *userdata;
};

#define AI_KEY_MAX 4096
#define AI_SHADOW_MAX_SEC 3600u
#define AI_RETRY_AFTER_MAX_SEC 300u
#define AI_JOBS_FILE "ai-jobs.json"
#define AI_SETTINGS_FILE "ai.json"
#define AI_KEY_FILE "ai-api-key"
#define AI_CREDENTIAL "openai-api-key"
#define AI_SHADOW_COMMENT "ai-shadow "

int ai_new(Manager *m, Ai **ret);
Ai *ai_free(Ai *ai);
/* Reads the settings, the key and the kept jobs. */
int ai_start(Ai *ai);

bool ai_busy(const Ai *ai);

/* AI.SetConfig: `changes` holds the keys of the a{sv} (endpoint, model, temperature,
 * max_tokens, timeout, debug, response_format, api_key). Checked whole, then stored. */
int ai_set_config(Ai *ai, json_t *changes, char **ret_error);

/* Queues a job (options are taken over). -EBUSY: the queue is full. */
int ai_submit(Ai *ai, AiJobOptions *options, AiJob **ret, char **ret_error);
AiJob *ai_find_job(Ai *ai, uint32_t id);
AiJob *ai_find_job_path(Ai *ai, const char *path);
int ai_job_cancel(AiJob *job, char **ret_error);
int ai_job_delete(AiJob *job, char **ret_error);
int ai_job_shadow(AiJob *job, uint32_t seconds, char **ret_error);
/* Copies of the accepted rules, for Apply. */
int ai_job_accepted_rules(AiJob *job, FilterList *ret, char **ret_error);
void ai_job_set_applied(AiJob *job, const char *transaction);

const char *ai_job_state_to_string(AiJobState s);
const char *ai_shadow_state_to_string(AiShadowState s);
void ai_job_options_done(AiJobOptions *o);

/* The endpoint without its query and credentials, for messages. */
char *ai_endpoint_redacted(const char *url);
