/* SPDX-License-Identifier: MIT */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "addr.h"
#include "conf.h"
#include "rule.h"

/*
 * What comes back from the model is untrusted input: the chat-completions reply is parsed with
 * jansson (a plain JSON reply or a streamed one, "data: {...}" lines), the model's text is
 * searched for the one JSON object asked for (code fences stripped, surrounding prose
 * skipped), its fields are checked and capped, and every proposed rule goes through the
 * validator of Filters.Add and then through the policy check below. Nothing here applies
 * anything.
 */

#define AI_ANALYSIS_MAX 8000          /* bytes of analysis kept */
#define AI_SUGGESTIONS_MAX 20         /* suggestions kept */
#define AI_SUGGESTION_MAX 500         /* bytes of each */
#define AI_PROPOSED_MAX 1000          /* proposed rules looked at; more are a failure */

typedef struct AiProposedRule {
        json_t *proposed;   /* what the model sent (owned) */
        Filter *rule;       /* the validated rule when accepted (owned), else NULL */
        bool accepted;
        char *reason;       /* why it was rejected */
        /* Shadow results */
        uint64_t shadow_packets, shadow_bytes, shadow_flows;
        bool shadow_management, shadow_done;
        uint32_t shadow_id;
} AiProposedRule;

typedef struct AiProposal {
        char *analysis;
        char **suggestions;
        size_t n_suggestions;
        AiProposedRule *rules;
        size_t n_rules;
        uint64_t tokens_used;
        char *model;
        char *finish_reason;
} AiProposal;

void ai_proposal_done(AiProposal *p);

/* Which step of the chat-completions reply failed: the message says what happened. */
typedef enum AiParseError {
        AI_PARSE_OK,
        AI_PARSE_NOT_JSON,
        AI_PARSE_API_ERROR,   /* {"error": ...} */
        AI_PARSE_REFUSAL,
        AI_PARSE_LENGTH,      /* finish_reason: length */
        AI_PARSE_NO_CONTENT,
        AI_PARSE_SCHEMA,      /* the model's JSON is not the shape asked for */
} AiParseError;

/*
 * Parses a whole reply body. On failure returns -EBADMSG with *ret_kind and a message; the
 * message quotes at most 200 bytes of what was received, escaped.
 */
int ai_response_parse(const char *body, size_t size, AiProposal *ret, AiParseError *ret_kind,
                      char **ret_error);

/* Parses the model's text (the message content) into analysis, suggestions and raw rules. */
int ai_content_parse(const char *content, AiProposal *p, char **ret_error);

/* The endpoint's own error message from an error reply body, if it has one (malloc'd). */
char *ai_response_error_message(const char *body, size_t size);

/* What the policy check protects and compares with. */
typedef struct AiPolicy {
        const Config *config;          /* ManagementAddresses=, ManagementPorts= */
        const Cidr *protect;           /* the caller's own addresses */
        size_t n_protect;
        Filter *const *existing;       /* the current rule set */
        size_t n_existing;
        uint32_t max_rules;
        bool analysis_only;            /* every rule is rejected */
} AiPolicy;

/* Gives every proposed rule its verdict. */
int ai_proposal_check(AiProposal *p, const AiPolicy *policy);

/* Whether a matches every packet b matches (the match fields, not the action). */
bool filter_covers(const Filter *a, const Filter *b);
