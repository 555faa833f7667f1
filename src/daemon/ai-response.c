/* SPDX-License-Identifier: MIT */
#include <ctype.h>
#include <stdio.h>

#include "ai-response.h"
#include "filters.h"
#include "util.h"

void ai_proposal_done(AiProposal *p) {
        if (!p)
                return;
        free(p->analysis);
        for (size_t i = 0; i < p->n_suggestions; i++)
                free(p->suggestions[i]);
        free(p->suggestions);
        for (size_t i = 0; i < p->n_rules; i++) {
                json_decref(p->rules[i].proposed);
                filter_free(p->rules[i].rule);
                free(p->rules[i].reason);
        }
        free(p->rules);
        free(p->model);
        free(p->finish_reason);
        *p = (AiProposal) {};
}

/* At most max bytes of untrusted text, cut at a character boundary, for a message. */
static char *quote_excerpt(const char *s, size_t len, size_t max) {
        size_t n = 0;
        char *out = malloc(max * 4 + 4);

        if (!out)
                return NULL;
        for (size_t i = 0; i < len && i < max; i++) {
                unsigned char c = (unsigned char) s[i];

                if (c >= 0x20 && c < 0x7f && c != '\\')
                        out[n++] = (char) c;
                else
                        n += (size_t) snprintf(out + n, 5, "\\x%02x", c);
        }
        if (len > max) {
                memcpy(out + n, "...", 3);
                n += 3;
        }
        out[n] = '\0';
        return out;
}

/* A string cut to max bytes at a UTF-8 character boundary; NULL when s is not valid UTF-8. */
static char *strdup_capped(const char *s, size_t max) {
        size_t l = strlen(s);

        if (l > max) {
                l = max;
                while (l > 0 && ((unsigned char) s[l] & 0xc0) == 0x80)
                        l--;
        }
        return strndup(s, l);
}

char *ai_response_error_message(const char *body, size_t size) {
        _cleanup_json_ json_t *root = json_loadb(body, size, 0, NULL);
        json_t *e, *msg;

        if (!root)
                return NULL;
        e = json_object_get(root, "error");
        /* OpenAI and most: {"error": {"message": …}}; some servers: {"error": "…"}. */
        msg = json_is_object(e) ? json_object_get(e, "message") : e;
        if (!json_is_string(msg))
                msg = json_object_get(root, "message");
        if (!json_is_string(msg))
                return NULL;
        return quote_excerpt(json_string_value(msg), json_string_length(msg), 300);
}

/* "```json\n{…}\n```" → "{…}"; else the text from its first '{' to its last '}'. */
static char *extract_object(const char *content) {
        const char *start = strchr(content, '{'), *end = strrchr(content, '}');
        const char *fence = strstr(content, "```");

        if (fence) {
                const char *body = strchr(fence + 3, '\n'), *close;

                if (body && (close = strstr(body, "```")) && memchr(body, '{', (size_t) (close - body))) {
                        start = memchr(body, '{', (size_t) (close - body));
                        end = close;
                        while (end > start && *end != '}')
                                end--;
                }
        }
        if (!start || !end || end < start)
                return NULL;
        return strndup(start, (size_t) (end - start) + 1);
}

int ai_content_parse(const char *content, AiProposal *p, char **ret_error) {
        _cleanup_json_ json_t *root = NULL;
        _cleanup_free_ char *text = NULL;
        json_t *analysis, *suggestions, *filters;
        json_error_t jerr;

        assert(content);
        assert(p);
        root = json_loads(content, JSON_REJECT_DUPLICATES, NULL);
        if (!json_is_object(root)) {
                json_decref(root);
                root = NULL;
                text = extract_object(content);
                if (!text) {
                        _cleanup_free_ char *q = quote_excerpt(content, strlen(content), 200);

                        return error_setf(ret_error, -EBADMSG, "the model's answer holds no JSON "
                                          "object: \"%s\"", q ? q : "");
                }
                root = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
                if (!root)
                        return error_setf(ret_error, -EBADMSG, "the model's answer is not valid "
                                          "JSON: %s at line %d column %d", jerr.text, jerr.line,
                                          jerr.column);
                if (!json_is_object(root))
                        return error_setf(ret_error, -EBADMSG, "the model's answer is not a JSON "
                                          "object");
        }
        analysis = json_object_get(root, "analysis");
        suggestions = json_object_get(root, "suggestions");
        filters = json_object_get(root, "filters");
        if (!json_is_string(analysis))
                return error_setf(ret_error, -EBADMSG, "the model's answer does not follow the "
                                  "schema: \"analysis\" must be a string, got %s",
                                  analysis ? json_type_name(analysis) : "nothing");
        if (suggestions && !json_is_array(suggestions) && !json_is_null(suggestions))
                return error_setf(ret_error, -EBADMSG, "the model's answer does not follow the "
                                  "schema: \"suggestions\" must be an array of strings, got %s",
                                  json_type_name(suggestions));
        if (filters && !json_is_array(filters) && !json_is_null(filters))
                return error_setf(ret_error, -EBADMSG, "the model's answer does not follow the "
                                  "schema: \"filters\" must be an array of rules, got %s",
                                  json_type_name(filters));
        if (json_array_size(filters) > AI_PROPOSED_MAX)
                return error_setf(ret_error, -EBADMSG, "the model proposed %zu rules; at most %u "
                                  "are looked at", json_array_size(filters), AI_PROPOSED_MAX);
        for (size_t i = 0; i < json_array_size(suggestions); i++)
                if (!json_is_string(json_array_get(suggestions, i)))
                        return error_setf(ret_error, -EBADMSG, "the model's answer does not follow "
                                          "the schema: suggestion #%zu is %s, not a string", i,
                                          json_type_name(json_array_get(suggestions, i)));

        p->analysis = strdup_capped(json_string_value(analysis), AI_ANALYSIS_MAX);
        if (!p->analysis)
                return -ENOMEM;
        p->n_suggestions = 0;
        p->suggestions = calloc(MIN(json_array_size(suggestions), (size_t) AI_SUGGESTIONS_MAX) + 1,
                                sizeof(char *));
        if (!p->suggestions)
                return -ENOMEM;
        for (size_t i = 0; i < json_array_size(suggestions) && i < AI_SUGGESTIONS_MAX; i++) {
                p->suggestions[i] = strdup_capped(json_string_value(json_array_get(suggestions, i)),
                                                  AI_SUGGESTION_MAX);
                if (!p->suggestions[i])
                        return -ENOMEM;
                p->n_suggestions++;
        }
        p->rules = calloc(json_array_size(filters) + 1, sizeof(AiProposedRule));
        if (!p->rules)
                return -ENOMEM;
        for (size_t i = 0; i < json_array_size(filters); i++) {
                /* json_array_get borrows; the proposal keeps its own reference. */
                p->rules[i].proposed = json_incref(json_array_get(filters, i));
                p->n_rules++;
        }
        return 0;
}

/* A streamed reply ("data: {chunk}" lines, "data: [DONE]"): the content deltas joined. */
static int parse_sse(const char *body, size_t size, json_t **ret_message, char **ret_finish,
                     json_t **ret_usage, char **ret_model, char **ret_error) {
        _cleanup_free_ char *copy = strndup(body, size), *content = NULL, *refusal = NULL;
        _cleanup_free_ char *finish = NULL, *model = NULL;
        _cleanup_json_ json_t *usage = NULL;
        size_t n_content = 0;
        char *line, *save = NULL;
        bool done = false;

        if (!copy)
                return -ENOMEM;
        content = strdup("");
        if (!content)
                return -ENOMEM;
        for (line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                _cleanup_json_ json_t *chunk = NULL;
                json_t *choice, *delta, *piece;
                char *data;

                line[strcspn(line, "\r")] = '\0';
                if (strncmp(line, "data:", 5) != 0)
                        continue; /* event:, id:, comments */
                data = line + 5 + strspn(line + 5, " ");
                if (streq(data, "[DONE]")) {
                        done = true;
                        break;
                }
                chunk = json_loads(data, 0, NULL);
                if (!json_is_object(chunk))
                        return error_setf(ret_error, -EBADMSG, "a streamed chunk is not JSON");
                if (json_object_get(chunk, "error")) {
                        _cleanup_free_ char *m = ai_response_error_message(data, strlen(data));

                        return error_setf(ret_error, -EPROTO, "the endpoint reported an error in "
                                          "its stream: %s", m ? m : "(no message)");
                }
                if (json_is_string(json_object_get(chunk, "model")) && !model)
                        model = strdup(json_string_value(json_object_get(chunk, "model")));
                if (json_is_object(json_object_get(chunk, "usage"))) {
                        json_decref(usage);
                        usage = json_incref(json_object_get(chunk, "usage"));
                }
                choice = json_array_get(json_object_get(chunk, "choices"), 0);
                delta = json_object_get(choice, "delta");
                piece = json_object_get(delta, "content");
                if (json_is_string(piece)) {
                        size_t l = json_string_length(piece);
                        char *c;

                        if (n_content + l > 16 * 1024 * 1024)
                                return error_setf(ret_error, -EBADMSG, "the streamed reply is too long");
                        c = realloc(content, n_content + l + 1);
                        if (!c)
                                return -ENOMEM;
                        content = c;
                        memcpy(content + n_content, json_string_value(piece), l);
                        n_content += l;
                        content[n_content] = '\0';
                }
                piece = json_object_get(delta, "refusal");
                if (json_is_string(piece) && !refusal)
                        refusal = strdup(json_string_value(piece));
                if (json_is_string(json_object_get(choice, "finish_reason"))) {
                        free(finish);
                        finish = strdup(json_string_value(json_object_get(choice, "finish_reason")));
                }
        }
        if (!done && !finish)
                return error_setf(ret_error, -EBADMSG, "the streamed reply ended before its end "
                                  "(no finish_reason, no [DONE]): truncated");
        *ret_message = json_pack("{s:s, s:s?}", "content", content, "refusal", refusal);
        if (!*ret_message)
                return -ENOMEM;
        *ret_finish = TAKE_PTR(finish);
        *ret_usage = TAKE_PTR(usage);
        *ret_model = TAKE_PTR(model);
        return 0;
}

#define FAIL(kind_, ...) ({ if (ret_kind) *ret_kind = (kind_); error_setf(ret_error, -EBADMSG, __VA_ARGS__); })

int ai_response_parse(const char *body, size_t size, AiProposal *ret, AiParseError *ret_kind,
                      char **ret_error) {
        _cleanup_json_ json_t *root = NULL, *message = NULL, *usage = NULL;
        _cleanup_free_ char *finish = NULL, *model = NULL, *err = NULL;
        AiProposal p = {};
        json_t *choice, *content, *refusal;
        const char *start = body;
        int r;

        assert(body);
        assert(ret);
        if (ret_kind)
                *ret_kind = AI_PARSE_OK;
        while ((size_t) (start - body) < size && isspace((unsigned char) *start))
                start++;
        if ((size_t) (start - body) + 5 <= size && strncmp(start, "data:", 5) == 0) {
                r = parse_sse(body, size, &message, &finish, &usage, &model, &err);
                if (r == -ENOMEM)
                        return r;
                if (r < 0)
                        return FAIL(r == -EPROTO ? AI_PARSE_API_ERROR : AI_PARSE_NOT_JSON, "%s", err);
        } else {
                json_error_t jerr;

                root = json_loadb(body, size, 0, &jerr);
                if (!root) {
                        _cleanup_free_ char *q = quote_excerpt(body, size, 200);

                        return FAIL(AI_PARSE_NOT_JSON, "the reply is not JSON (%s at byte %d): "
                                    "\"%s\"", jerr.text, jerr.position, q ? q : "");
                }
                if (!json_is_object(root))
                        return FAIL(AI_PARSE_NOT_JSON, "the reply is JSON but not an object");
                if (json_object_get(root, "error")) {
                        _cleanup_free_ char *m = ai_response_error_message(body, size);

                        return FAIL(AI_PARSE_API_ERROR, "the endpoint answered with an error: %s",
                                    m ? m : "(no message)");
                }
                choice = json_array_get(json_object_get(root, "choices"), 0);
                if (!json_is_object(choice))
                        return FAIL(AI_PARSE_NO_CONTENT, "the reply has no choices[0]: not a "
                                    "chat-completions answer");
                message = json_incref(json_object_get(choice, "message"));
                if (json_is_string(json_object_get(choice, "finish_reason")))
                        finish = strdup(json_string_value(json_object_get(choice, "finish_reason")));
                usage = json_incref(json_object_get(root, "usage"));
                if (json_is_string(json_object_get(root, "model")))
                        model = strdup(json_string_value(json_object_get(root, "model")));
        }

        refusal = json_object_get(message, "refusal");
        if (json_is_string(refusal) && json_string_length(refusal) > 0) {
                _cleanup_free_ char *q = quote_excerpt(json_string_value(refusal),
                                                       json_string_length(refusal), 200);

                return FAIL(AI_PARSE_REFUSAL, "the model refused: \"%s\"", q ? q : "");
        }
        if (finish && streq(finish, "length"))
                return FAIL(AI_PARSE_LENGTH, "the answer was cut off at the token limit "
                            "(finish_reason: length); raise MaxTokens= or ask for less");
        if (finish && streq(finish, "content_filter"))
                return FAIL(AI_PARSE_REFUSAL, "the endpoint withheld the answer "
                            "(finish_reason: content_filter)");
        content = json_object_get(message, "content");
        if (!json_is_string(content) || json_string_length(content) == 0)
                return FAIL(AI_PARSE_NO_CONTENT, "the reply has no message content");
        if (strlen(json_string_value(content)) != json_string_length(content))
                return FAIL(AI_PARSE_SCHEMA, "the model's answer contains a NUL character");

        r = ai_content_parse(json_string_value(content), &p, &err);
        if (r == -ENOMEM) {
                ai_proposal_done(&p);
                return r;
        }
        if (r < 0) {
                ai_proposal_done(&p);
                return FAIL(AI_PARSE_SCHEMA, "%s", err);
        }
        if (json_is_integer(json_object_get(usage, "total_tokens")) &&
            json_integer_value(json_object_get(usage, "total_tokens")) >= 0)
                p.tokens_used = (uint64_t) json_integer_value(json_object_get(usage, "total_tokens"));
        if (model && string_is_valid_utf8(model, AI_MODEL_MAX))
                p.model = strdup_capped(model, AI_MODEL_MAX);
        p.finish_reason = TAKE_PTR(finish);
        *ret = p;
        return 0;
}

/* --- the policy check --- */

static bool cidr_covers(bool a_has, const Cidr *a, bool b_has, const Cidr *b) {
        if (!a_has || a->prefixlen == 0)
                return !a_has || !b_has || a->family == b->family;
        if (!b_has || a->family != b->family || a->prefixlen > b->prefixlen)
                return false;
        return cidr_contains(a, b->family, b->addr);
}

static bool range_covers(PortRange a, PortRange b) {
        return a.lo <= b.lo && b.hi <= a.hi;
}

static bool proto_covers(int a, int b) {
        return a == PROTO_ANY || a == b;
}

bool filter_covers(const Filter *a, const Filter *b) {
        assert(a);
        assert(b);
        return proto_covers(a->protocol, b->protocol) &&
               cidr_covers(a->has_src, &a->src, b->has_src, &b->src) &&
               cidr_covers(a->has_dst, &a->dst, b->has_dst, &b->dst) &&
               range_covers(a->src_port, b->src_port) &&
               range_covers(a->dst_port, b->dst_port) &&
               (a->tcp_flags_mask & b->tcp_flags_mask) == a->tcp_flags_mask &&
               (a->tcp_flags & a->tcp_flags_mask) == (b->tcp_flags & a->tcp_flags_mask) &&
               (a->icmp_type == ICMP_ANY || a->icmp_type == b->icmp_type) &&
               (a->icmp_code == ICMP_ANY || a->icmp_code == b->icmp_code) &&
               cidr_covers(a->has_inner_src, &a->inner_src, b->has_inner_src, &b->inner_src) &&
               cidr_covers(a->has_inner_dst, &a->inner_dst, b->has_inner_dst, &b->inner_dst) &&
               proto_covers(a->inner_protocol, b->inner_protocol) &&
               range_covers(a->inner_src_port, b->inner_src_port) &&
               range_covers(a->inner_dst_port, b->inner_dst_port);
}

static bool addr_any(bool has, const Cidr *c) {
        return !has || c->prefixlen == 0;
}

/* A drop of everything, or of every packet of a protocol, whatever its addresses say. */
static const char *too_broad(const Filter *f) {
        if (!addr_any(f->has_src, &f->src) || !addr_any(f->has_dst, &f->dst))
                return NULL;
        if (f->protocol == PROTO_ANY)
                return "it would drop all traffic (any address, any protocol)";
        if ((f->protocol == 6 || f->protocol == 17) && port_range_is_any(f->src_port) &&
            port_range_is_any(f->dst_port))
                return f->protocol == 6 ? "it would drop TCP to and from every port of every "
                                          "address (a flags match is no restriction: SYN alone is "
                                          "every new connection)"
                                        : "it would drop UDP to and from every port of every address";
        if ((f->protocol == 1 || f->protocol == 58) && f->icmp_type == ICMP_ANY)
                return "it would drop every ICMP message of every address";
        return NULL;
}

/* A drop whose source names a protected address, or that cuts a protected address off from
 * a management port. */
static int check_protected(const Filter *f, const AiPolicy *pol, char **ret_error) {
        const Config *c = pol->config;
        char buf[ADDR_STRLEN];
        int r;

        for (size_t i = 0; i < c->n_management + pol->n_protect; i++) {
                const Cidr *a = i < c->n_management ? &c->management[i]
                                                    : &pol->protect[i - c->n_management];

                if (f->has_src && f->src.prefixlen > 0 && f->src.family == a->family &&
                    (cidr_contains(&f->src, a->family, a->addr) ||
                     (a->prefixlen < f->src.prefixlen && cidr_contains(a, f->src.family, f->src.addr))))
                        return error_setf(ret_error, -EPERM, "its source %s covers the %s %s",
                                          "address", i < c->n_management ? "management address"
                                                                         : "caller's own address",
                                          addr_to_string(a->family, a->addr, buf));
        }
        r = filter_check_lockout(c, f, ret_error);
        if (r < 0)
                return r;
        if (pol->n_protect > 0) {
                /* The caller's addresses as management addresses, for the same probe. */
                Config *probe = malloc(sizeof(Config));

                if (!probe)
                        return -ENOMEM;
                *probe = *c;
                probe->n_management = 0;
                for (size_t i = 0; i < pol->n_protect && i < CONFIG_MANAGEMENT_MAX; i++)
                        probe->management[probe->n_management++] = pol->protect[i];
                r = filter_check_lockout(probe, f, ret_error);
                free(probe);
                if (r < 0)
                        return r;
        }
        return 0;
}

static bool same_match(const Filter *a, const Filter *b) {
        return filter_covers(a, b) && filter_covers(b, a);
}

int ai_proposal_check(AiProposal *p, const AiPolicy *pol) {
        uint32_t accepted = 0;

        assert(p);
        assert(pol);
        for (size_t i = 0; i < p->n_rules; i++) {
                AiProposedRule *pr = &p->rules[i];
                _cleanup_filter_ Filter *f = NULL;
                _cleanup_free_ char *err = NULL;
                const char *why;
                int r;

                pr->accepted = false;
                pr->reason = mfree(pr->reason);
                pr->rule = filter_free(pr->rule);
                if (pol->analysis_only) {
                        pr->reason = strdup("an analysis proposes no rules");
                        goto next;
                }
                if (!json_is_object(pr->proposed)) {
                        r = error_setf(&pr->reason, -EINVAL, "not a rule object but %s",
                                       json_type_name(pr->proposed));
                        goto next;
                }
                if (json_object_get(pr->proposed, "force")) {
                        pr->reason = strdup("\"force\" is not accepted from a model");
                        goto next;
                }
                f = filter_new();
                if (!f)
                        return -ENOMEM;
                /* The validator of Filters.Add. */
                r = filter_from_json(f, pr->proposed, 0, &err);
                if (r == -ENOMEM)
                        return r;
                if (r < 0) {
                        pr->reason = strdup(err ? err : "invalid rule");
                        goto next;
                }
                if (accepted >= pol->max_rules) {
                        r = error_setf(&pr->reason, -E2BIG, "more than %u rules proposed "
                                       "(MaxRules=)", pol->max_rules);
                        goto next;
                }
                if (f->action == FILTER_DROP && (why = too_broad(f))) {
                        pr->reason = strdup(why);
                        goto next;
                }
                if (f->action == FILTER_DROP) {
                        r = check_protected(f, pol, &err);
                        if (r == -ENOMEM)
                                return r;
                        if (r < 0) {
                                pr->reason = TAKE_PTR(err);
                                goto next;
                        }
                }
                for (size_t j = 0; j < pol->n_existing && !pr->reason; j++) {
                        const Filter *e = pol->existing[j];

                        if (same_match(f, e) && e->action == f->action)
                                r = error_setf(&pr->reason, -EEXIST, "it duplicates rule %u",
                                               e->id);
                        else if (f->action == FILTER_DROP && e->action == FILTER_PASS &&
                                 e->enabled && f->priority >= e->priority && filter_covers(f, e))
                                r = error_setf(&pr->reason, -EEXIST, "it would shadow pass rule "
                                               "%u", e->id);
                }
                for (size_t j = 0; j < i && !pr->reason; j++)
                        if (p->rules[j].accepted && same_match(f, p->rules[j].rule) &&
                            f->action == p->rules[j].rule->action)
                                r = error_setf(&pr->reason, -EEXIST, "it duplicates proposed "
                                               "rule #%zu", j);
                if (pr->reason)
                        goto next;
                pr->accepted = true;
                pr->rule = TAKE_PTR(f);
                accepted++;
                continue;
        next:
                if (!pr->reason)
                        return -ENOMEM;
        }
        return 0;
}
