/* SPDX-License-Identifier: MIT */
/* A reference rule as the daemon reads it: its JSON (Import's form, which takes id and
 * created, so that ages can tie) through filter_from_json(); the slot is the id. For the
 * Criterion tests that compare the compiler and the kernel with the reference matcher. */
#pragma once

#include <criterion/criterion.h>
#include <jansson.h>
#include <stdlib.h>

#include "filter-compile.h"
#include "ref-gen.h"
#include "rule.h"

static inline Filter *ref_filter(const struct ref_rule *rr) {
        char text[1024], *err = NULL;
        json_error_t je;
        Filter *f;
        json_t *o;

        ref_rule_json(rr, text, sizeof text);
        o = json_loads(text, 0, &je);
        cr_assert_not_null(o, "%s: %s", text, je.text);
        f = calloc(1, sizeof(Filter));
        cr_assert_not_null(f);
        filter_init(f);
        cr_assert_eq(filter_from_json(f, o, FILTER_PARSE_IMPORT, &err), 0,
                     "the documented rule %s is refused: %s", text, err ? err : "");
        json_decref(o);
        f->slot = f->id;
        return f;
}

/* n random rules (ids from *next_id on) compiled with their index; a set over a limit loses its
 * last rules until it compiles, as a user would have to: returns how many are left. */
static inline size_t ref_random_indexed(struct ref_rng *g, struct ref_rule *rr, Filter **ptrs,
                                        size_t n, uint32_t *next_id, FilterSet *set,
                                        FilterIndex *ix) {
        char *err = NULL;
        int r;

        for (size_t i = 0; i < n; i++) {
                ref_random_rule(g, &rr[i], (*next_id)++);
                ptrs[i] = ref_filter(&rr[i]);
        }
        while ((r = filter_compile_indexed(ptrs, n, set, ix, &err)) == -E2BIG && n > 0) {
                free(err);
                err = NULL;
                filter_free(ptrs[--n]);
        }
        cr_assert_eq(r, 0, "%s", err ? err : "");
        return n;
}
