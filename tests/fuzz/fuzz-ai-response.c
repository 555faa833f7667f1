/* SPDX-License-Identifier: MIT */
/*
 * A chat-completions reply as the daemon receives it from an endpoint it does not control: the
 * parser (plain JSON, streamed "data:" lines, code fences, prose around the object) and the
 * policy check over whatever rules come out. Properties a user relies on:
 *   - nothing crashes, leaks or reads out of bounds (ASan/UBSan);
 *   - a failure always has a message, a success has an analysis within its cap;
 *   - no accepted rule is a drop of all traffic, and at most MaxRules are accepted.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ai-response.h"
#include "conf.h"

#define CHECK(x) do { if (!(x)) { fprintf(stderr, "invariant failed: %s\n", #x); abort(); } } while (0)
#define MAX_RULES 5

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static Config config;
        static bool init;
        AiProposal p = {};
        AiParseError kind;
        char *err = NULL;
        uint32_t accepted = 0;
        int r;

        if (!init) {
                char *e = NULL;

                config_init(&config);
                CHECK(config_parse(&config, "[Filters]\nManagementAddresses=192.0.2.10 2001:db8::10\n",
                                   "fuzz.conf", &e) == 0);
                init = true;
        }
        r = ai_response_parse((const char *) data, size, &p, &kind, &err);
        if (r < 0) {
                CHECK(r == -EBADMSG || r == -ENOMEM);
                CHECK(r == -ENOMEM || (err && *err));
                free(err);
                return 0;
        }
        CHECK(p.analysis && strlen(p.analysis) <= AI_ANALYSIS_MAX);
        CHECK(p.n_suggestions <= AI_SUGGESTIONS_MAX);
        r = ai_proposal_check(&p, &(AiPolicy) { .config = &config, .max_rules = MAX_RULES });
        CHECK(r == 0 || r == -ENOMEM);
        for (size_t i = 0; r == 0 && i < p.n_rules; i++) {
                const AiProposedRule *pr = &p.rules[i];

                CHECK(pr->accepted == (pr->rule != NULL));
                CHECK(pr->accepted || pr->reason);
                if (!pr->accepted)
                        continue;
                accepted++;
                CHECK(!(pr->rule->action == FILTER_DROP && !pr->rule->has_src && !pr->rule->has_dst &&
                        pr->rule->protocol == PROTO_ANY));
        }
        CHECK(accepted <= MAX_RULES);
        ai_proposal_done(&p);
        return 0;
}
