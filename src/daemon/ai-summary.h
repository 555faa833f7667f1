/* SPDX-License-Identifier: MIT */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "guard-abi.h"
#include "rule.h"

/*
 * What goes to the model: a bounded, structured summary of the live tables, built entry by
 * entry (never from preformatted strings), and the chat-completions request around it.
 *
 * Caps (packetscope.conf(5), "[AI]"): the 25 flows with the most bytes and the 25 with the
 * highest rate, the 20 sources with the most flows (SYN-only flows counted), the 30 ICMP entries
 * with the most packets (errors first, with their inner tuples), 100 rules, comments cut to 200
 * characters, and the whole summary at most AI_SUMMARY_MAX_CHARS characters (lists are
 * shortened from their tails until it fits).
 */

#define AI_SUMMARY_TOP_FLOWS 25
/* Bans in each list of the bans section (include_bans). */
#define AI_SUMMARY_BANS_TOP 10
#define AI_SUMMARY_SOURCES 20
#define AI_SUMMARY_SOURCES_TRACKED 4096
#define AI_SUMMARY_ICMP 30
#define AI_SUMMARY_RULES 100
#define AI_SUMMARY_COMMENT_MAX 200
#define AI_SUMMARY_MAX_CHARS 16000
#define AI_PROMPT_MAX 2000 /* the caller's custom_prompt */

typedef enum AiAnalyzeType {
        AI_ANALYZE_SECURITY,
        AI_ANALYZE_PERFORMANCE,
        AI_ANALYZE_BALANCED,
        AI_ANALYZE_CUSTOM,
} AiAnalyzeType;

const char *ai_analyze_type_to_string(AiAnalyzeType t);
int ai_analyze_type_from_string(const char *s, AiAnalyzeType *ret);

typedef struct AiSummaryFlow {
        struct ps_flow_key key;
        struct ps_flow_value value;
        double rate_bps;
} AiSummaryFlow;

typedef struct AiSummarySource {
        uint8_t family;
        uint32_t addr[4];
        uint64_t flows, syn_only, packets, bytes;
        bool used;
} AiSummarySource;

typedef struct AiSummaryIcmp {
        struct ps_icmp_key key;
        struct ps_icmp_value value;
} AiSummaryIcmp;

typedef struct AiSummary {
        bool include_tcp, include_icmp, include_stats;
        uint64_t now_ns; /* CLOCK_MONOTONIC, for durations */

        AiSummaryFlow by_bytes[AI_SUMMARY_TOP_FLOWS], by_rate[AI_SUMMARY_TOP_FLOWS];
        size_t n_by_bytes, n_by_rate;
        AiSummarySource *sources; /* AI_SUMMARY_SOURCES_TRACKED slots, open addressing */
        uint64_t sources_untracked;
        AiSummaryIcmp icmp[AI_SUMMARY_ICMP];
        size_t n_icmp;

        uint64_t flows_seen, tcp_flows, udp_flows, other_flows, icmp_seen;
        uint64_t retransmits, flows_with_retransmits, syn_only_flows;
        struct ps_stats stats;
        bool have_stats;
        double pps, bps;
        json_t *rules; /* array */
        json_t *bans;  /* ban_store_summary(), when include_bans asked for it; owned */
        size_t rules_seen;
} AiSummary;

int ai_summary_init(AiSummary *s, bool include_tcp, bool include_icmp, bool include_stats,
                    uint64_t now_ns);
void ai_summary_done(AiSummary *s);
void ai_summary_add_flow(AiSummary *s, const struct ps_flow_key *k, const struct ps_flow_value *v);
void ai_summary_add_icmp(AiSummary *s, const struct ps_icmp_key *k, const struct ps_icmp_value *v);
void ai_summary_set_stats(AiSummary *s, const struct ps_stats *stats, double pps, double bps);
int ai_summary_add_rule(AiSummary *s, const Filter *f);
/* The bans section (ban_store_summary()); takes it over. */
void ai_summary_set_bans(AiSummary *s, json_t *bans);

/* The summary as a JSON document of at most AI_SUMMARY_MAX_CHARS characters, with '<' and '>'
 * escaped so that no string in it can close the data block it is sent in. */
int ai_summary_to_string(AiSummary *s, char **ret);

/* The request body for chat completions: model, the system prompt, the user message with the
 * summary as quoted data, temperature, max_tokens and the response_format for `format`. */
typedef struct AiRequestSpec {
        const char *model;
        double temperature;
        uint32_t max_tokens;
        int format; /* AiFormat: json_schema, json_object or none */
        AiAnalyzeType type;
        bool analysis_only;
        const char *custom_prompt; /* may be NULL */
        uint32_t max_rules;
} AiRequestSpec;

int ai_request_build(const AiRequestSpec *spec, const char *summary, char **ret_body,
                     char **ret_system_prompt);
