/* SPDX-License-Identifier: MIT */
/*
 * Rule JSON, as Add/Update/Import and filters.json read it: the validator on arbitrary text, and
 * for what it accepts, two properties a user relies on:
 *   - what is stored comes back the same: filter_to_json() read back with the import flags gives
 *     the same rule (filters.json and Export/Import are that round trip);
 *   - the compiled classifier decides as the rules say: every tuple gets, from the compiled
 *     entries looked up the way the XDP program looks them up (classify.bpf.h), the same deciding
 *     rule and count rule as the plain reference matcher.
 * The first byte chooses the mode (update of a rule, or an import document), the rest is JSON;
 * after the JSON's NUL, the bytes are packet tuples.
 */
#include <jansson.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "filter-compile.h"
#include "rule.h"

#include "fuzz-util.h"

#define CHECK(x) do { if (!(x)) { fprintf(stderr, "invariant failed: %s\n", #x); abort(); } } while (0)
#define MAX_RULES 16
#define MAX_TUPLES 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static json_t *dump(const Filter *f) {
        json_t *o = filter_to_json(f);

        CHECK(o != NULL);
        return o;
}

/* The same rule after filter_to_json() and back: what filters.json and Export/Import do. */
static void check_round_trip(const Filter *f) {
        json_t *a = dump(f), *b;
        char *err = NULL;
        Filter g;
        int r;

        filter_init(&g);
        r = filter_from_json(&g, a, FILTER_PARSE_IMPORT, &err);
        if (r < 0) {
                char *text = json_dumps(a, JSON_SORT_KEYS);

                fprintf(stderr, "an exported rule is refused on import: %s\n%s\n", err, text);
                abort();
        }
        b = dump(&g);
        if (!json_equal(a, b)) {
                char *ta = json_dumps(a, JSON_SORT_KEYS), *tb = json_dumps(b, JSON_SORT_KEYS);

                fprintf(stderr, "the round trip changed the rule:\n%s\n%s\n", ta, tb);
                abort();
        }
        json_decref(a);
        json_decref(b);
        filter_done(&g);
        free(err);
}

/* A tuple near one of the rules (most fields copied from it, the rest from the bytes), so that
 * matches are common enough to compare anything. */
static void make_tuple(FuzzReader *rd, Filter *const *rules, size_t n, struct ps_match *p) {
        const Filter *f = rules[fuzz_u8(rd) % n];
        uint8_t pick = fuzz_u8(rd);
        const Cidr *c = f->has_src ? &f->src : f->has_dst ? &f->dst : NULL;

        memset(p, 0, sizeof *p);
        for (size_t i = 0; i < sizeof *p && rd->size > 0; i++)
                if (fuzz_u8(rd) & 1) /* sparse: most bytes stay zero */
                        ((uint8_t *) p)[i] = fuzz_u8(rd);
        p->pad = 0;
        p->family = c ? (c->family == ADDR_FAMILY_IPV6 ? 6 : 4) : (pick & 1 ? 6 : 4);
        if (pick & 2 && f->protocol != PROTO_ANY)
                p->proto = (uint8_t) f->protocol;
        if (pick & 4) {
                p->sport = f->src_port.lo;
                p->dport = (pick & 8) ? f->dst_port.hi : f->dst_port.lo;
        }
        if (pick & 16) {
                if (f->has_src)
                        memcpy(p->src, f->src.addr, sizeof p->src);
                if (f->has_dst)
                        memcpy(p->dst, f->dst.addr, sizeof p->dst);
        }
        if (pick & 32) {
                p->icmp_type = f->icmp_type;
                p->icmp_code = f->icmp_code;
                p->tcp_flags = f->tcp_flags;
                if (f->inner_protocol != PROTO_ANY)
                        p->inner_proto = (uint8_t) f->inner_protocol;
        }
        if (p->family == 4) /* IPv4 lives in word 0; the program leaves the others zero */
                p->src[1] = p->src[2] = p->src[3] = p->dst[1] = p->dst[2] = p->dst[3] =
                p->inner_src[1] = p->inner_src[2] = p->inner_src[3] =
                p->inner_dst[1] = p->inner_dst[2] = p->inner_dst[3] = 0;
}

/* The XDP program's lookup (classify.bpf.h), over the entries of one bank. */
static void classify(const FilterSet *set, const struct ps_match *pkt, uint32_t *ret_action,
                     uint32_t *ret_slot, bool *ret_has_count, uint32_t *ret_count_slot) {
        uint64_t best = 0, cbest = 0; /* ranks are 64-bit (struct ps_filter_value) */
        uint32_t action = 0, slot = 0, count_slot = 0;

        for (size_t e = 0; e < set->n_entries; e++) {
                const FilterEntry *x = &set->entries[e];
                const struct ps_match *m = &set->masks[x->key.shape];
                /* Every field of struct ps_match is 32 bits or narrower: compared as words of 32
                 * (an entry is only 4-byte aligned). */
                const uint32_t *a = (const uint32_t *) pkt, *mk = (const uint32_t *) m;
                const uint32_t *k = (const uint32_t *) &x->key.match;
                bool hit = true;

                CHECK(x->key.shape < set->n_shapes);
                if (pkt->family == 4 &&
                    (m->src[1] | m->src[2] | m->src[3] | m->dst[1] | m->dst[2] | m->dst[3]))
                        continue;
                for (size_t w = 0; w < sizeof *pkt / 4; w++)
                        if ((a[w] & mk[w]) != k[w])
                                hit = false;
                if (!hit)
                        continue;
                if (x->value.rank > best) {
                        best = x->value.rank;
                        action = x->value.action;
                        slot = x->value.slot;
                }
                if (x->value.count_rank > cbest) {
                        cbest = x->value.count_rank;
                        count_slot = x->value.count_slot;
                }
        }
        *ret_action = action;
        *ret_slot = slot;
        *ret_has_count = cbest > best;
        *ret_count_slot = count_slot;
}

static void check_classifier(Filter **rules, size_t n, FuzzReader *rd) {
        char *err = NULL;
        FilterSet set;
        int r;

        r = filter_compile(rules, n, &set, &err);
        if (r < 0) {
                /* Only limits may refuse a valid set, and they are named. */
                CHECK(r == -E2BIG || r == -ENOSPC || r == -ENOMEM || r == -EINVAL);
                CHECK(r == -ENOMEM || err != NULL);
                free(err);
                return;
        }
        CHECK(set.n_shapes <= PS_FILTER_MAX_SHAPES);
        for (size_t t = 0; t < MAX_TUPLES && rd->size > 0; t++) {
                const Filter *decider, *count;
                struct ps_match pkt;
                uint32_t action, slot, count_slot;
                bool has_count;

                make_tuple(rd, rules, n, &pkt);
                filter_classify_reference(rules, n, &pkt, &decider, &count);
                classify(&set, &pkt, &action, &slot, &has_count, &count_slot);
                if (!decider) {
                        CHECK(action == 0);
                } else {
                        CHECK(action == (uint32_t) decider->action);
                        CHECK(slot == decider->slot);
                }
                CHECK(has_count == (count != NULL));
                if (count)
                        CHECK(count_slot == count->slot);
        }
        filter_set_done(&set);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        FuzzReader rd;
        Filter *rules[MAX_RULES] = {};
        json_error_t jerr;
        json_t *doc, *o;
        size_t n = 0, count, text_len;
        char *text, *err = NULL;
        uint8_t mode;
        int r;

        if (size < 1)
                return 0;
        mode = data[0];
        text_len = strnlen((const char *) data + 1, size - 1);
        text = strndup((const char *) data + 1, text_len);
        if (!text)
                abort();
        rd = (FuzzReader) { data + 1 + text_len, size - 1 - text_len };
        doc = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
        free(text);
        if (!doc)
                return 0;

        if (mode & 1) {
                /* Update: the fields given change a valid rule; on error nothing changes. */
                Filter f;
                json_t *before, *after;

                filter_init(&f);
                o = json_pack("{s:s, s:i, s:s, s:s}", "rule_type", "tcp", "dst_port", 23,
                              "src_ip", "192.0.2.0/24", "comment", "base");
                CHECK(filter_from_json(&f, o, 0, &err) == 0);
                json_decref(o);
                f.id = 7;
                before = dump(&f);
                r = filter_from_json(&f, doc, FILTER_PARSE_UPDATE, &err);
                after = dump(&f);
                if (r < 0) {
                        CHECK(err != NULL || r == -ENOMEM);
                        CHECK(json_equal(before, after));
                } else {
                        CHECK(f.id == 7);
                        check_round_trip(&f);
                }
                json_decref(before);
                json_decref(after);
                filter_done(&f);
                goto out;
        }

        /* An import document: one rule or an array of them. */
        count = json_is_array(doc) ? json_array_size(doc) : 1;
        if (count > MAX_RULES)
                count = MAX_RULES;
        for (size_t i = 0; i < count; i++) {
                Filter *f;

                o = json_is_array(doc) ? json_array_get(doc, i) : doc; /* borrowed */
                f = calloc(1, sizeof *f);
                CHECK(f != NULL);
                filter_init(f);
                free(err);
                err = NULL;
                r = filter_from_json(f, o, (mode & 2) ? FILTER_PARSE_IMPORT : 0, &err);
                if (r < 0) {
                        CHECK(err != NULL || r == -ENOMEM);
                        filter_free(f);
                        continue;
                }
                check_round_trip(f);
                /* What the store assigns. */
                f->id = (uint32_t) n;
                f->slot = (uint32_t) n;
                f->created_usec = n + 1;
                rules[n++] = f;
        }
        if (n > 0)
                check_classifier(rules, n, &rd);
        for (size_t i = 0; i < n; i++)
                filter_free(rules[i]);
out:
        free(err);
        json_decref(doc);
        return 0;
}
