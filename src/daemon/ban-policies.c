/* SPDX-License-Identifier: MIT */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ban-policies.h"
#include "bans.h"
#include "util.h"

#define POLICIES_FILE_MAX_BYTES (64u * 1024)
/* An offender is at most about 120 bytes of JSON. */
#define OFFENDER_JSON_MAX 128u

static char *path_in(const char *dir, const char *file) {
        return strjoin_path(dir, file);
}

/* Writes a JSON document to a file of dir, atomically. */
static int save_json(const char *dir, const char *file, json_t *root) {
        _cleanup_free_ char *path = path_in(dir, file), *text = NULL;

        if (!path || !root)
                return -ENOMEM;
        text = json_dumps(root, JSON_INDENT(1) | JSON_SORT_KEYS);
        if (!text)
                return -ENOMEM;
        return write_file_atomic(path, text, strlen(text), 0600);
}

int ban_policies_save(const char *dir, const Config *c, unsigned mask) {
        json_t *root = json_object(), *p;
        int r = root ? 0 : -ENOMEM;

        for (unsigned i = 0; i < _PS_BAN_POLICY_MAX && r == 0; i++) {
                const BanPolicyConf *pc = &c->ban_policy[i];

                if (!(mask & (1u << i)))
                        continue;
                p = json_pack("{s:s, s:I, s:I, s:I}", "mode", ban_mode_to_string(pc->mode),
                              "threshold", (json_int_t) pc->threshold,
                              "burst", (json_int_t) pc->burst,
                              "window_usec", (json_int_t) pc->window_usec);
                if (!p || json_object_set_new(root, ban_policy_to_string(i), p) < 0)
                        r = -ENOMEM;
        }
        if (r == 0)
                r = save_json(dir, BAN_POLICIES_FILE, root);
        json_decref(root);
        return r;
}

/* A number of a stored entry, within [min, max]. */
static int get_u64(json_t *o, const char *key, uint64_t min, uint64_t max, uint64_t *ret) {
        json_t *v = json_object_get(o, key);

        if (!json_is_integer(v) || json_integer_value(v) < 0 ||
            (uint64_t) json_integer_value(v) < min || (uint64_t) json_integer_value(v) > max)
                return -EINVAL;
        *ret = (uint64_t) json_integer_value(v);
        return 0;
}

int ban_policies_load(const char *dir, Config *c, unsigned *ret_mask, char **ret_error) {
        _cleanup_free_ char *path = path_in(dir, BAN_POLICIES_FILE);
        BanPolicyConf read[_PS_BAN_POLICY_MAX];
        bool have[_PS_BAN_POLICY_MAX] = {};
        json_t *root = NULL;
        int r;

        if (!path)
                return -ENOMEM;
        r = json_read_file(path, POLICIES_FILE_MAX_BYTES, "larger than 64 KiB", &root, ret_error);
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return r;
        r = json_is_object(root) ? 0 : -EINVAL;
        for (unsigned i = 0; i < _PS_BAN_POLICY_MAX && r == 0; i++) {
                json_t *p = json_object_get(root, ban_policy_to_string(i));
                uint64_t threshold, burst, window;
                const char *mode;

                if (!p)
                        continue;
                read[i] = c->ban_policy[i];
                mode = json_string_value(json_object_get(p, "mode"));
                if (!json_is_object(p) || !mode || ban_mode_from_string(mode, &read[i].mode) < 0 ||
                    get_u64(p, "threshold", 0, 1000000, &threshold) < 0 ||
                    get_u64(p, "burst", 0, 1000000, &burst) < 0 ||
                    get_u64(p, "window_usec", 0, 86400 * USEC_PER_SEC, &window) < 0) {
                        r = error_setf(ret_error, -EBADMSG, "%s: the policy '%s' is not one "
                                       "this daemon writes; the [Bans] settings apply", path,
                                       ban_policy_to_string(i));
                        break;
                }
                read[i].threshold = (uint32_t) threshold;
                read[i].burst = (uint32_t) burst;
                read[i].window_usec = window;
                have[i] = true;
        }
        if (r == -EINVAL)
                r = error_setf(ret_error, -EBADMSG, "%s is not a JSON object; the [Bans] "
                               "settings apply", path);
        json_decref(root);
        if (r < 0)
                return r;
        for (unsigned i = 0; i < _PS_BAN_POLICY_MAX; i++)
                if (have[i]) {
                        c->ban_policy[i] = read[i];
                        *ret_mask |= 1u << i;
                }
        return 0;
}

static bool same_source(const Cidr *a, const Cidr *b) {
        return a->family == b->family && a->prefixlen == b->prefixlen &&
               memcmp(a->addr, b->addr, sizeof a->addr) == 0;
}

int ban_offenders_note(BanOffenders *o, const Cidr *source, uint32_t offenses, uint64_t usec,
                       size_t max) {
        BanOffender n = { .source = *source, .offenses = offenses, .last_usec = usec };

        if (max == 0)
                return 0;
        /* The list stays oldest first: this one moves to the end. Linear: a ban is rare next
         * to the packets, and the list is bounded. */
        for (size_t i = 0; i < o->n; i++)
                if (same_source(&o->v[i].source, source)) {
                        n.offenses = MAX(offenses, o->v[i].offenses);
                        memmove(&o->v[i], &o->v[i + 1], (o->n - i - 1) * sizeof *o->v);
                        o->n--;
                        break;
                }
        if (o->n >= max) {
                size_t drop = o->n - max + 1;

                memmove(o->v, o->v + drop, (o->n - drop) * sizeof *o->v);
                o->n -= drop;
        }
        if (o->n == o->n_alloc) {
                size_t na = MAX(o->n_alloc * 2, (size_t) 64);
                BanOffender *v = reallocarray(o->v, na, sizeof *v);

                if (!v)
                        return -ENOMEM;
                o->v = v;
                o->n_alloc = na;
        }
        o->v[o->n++] = n;
        return 0;
}

size_t ban_offenders_forget(BanOffenders *o, uint64_t usec) {
        size_t k = 0;

        /* Not by position: a note may carry an older time than the one before it. */
        for (size_t i = 0; i < o->n; i++)
                if (o->v[i].last_usec >= usec)
                        o->v[k++] = o->v[i];
        k = o->n - k;
        o->n -= k;
        return k;
}

int ban_offenders_save(const char *dir, const BanOffenders *o) {
        json_t *list = json_array(), *root = json_pack("{s:o}", "offenders", list);
        int r = root ? 0 : -ENOMEM;

        for (size_t i = 0; i < o->n && r == 0; i++) {
                char a[CIDR_STRING_MAX];

                if (json_array_append_new(list, json_pack("{s:s, s:I, s:I}", "source",
                                                          cidr_to_string(true, &o->v[i].source, a),
                                                          "offenses", (json_int_t) o->v[i].offenses,
                                                          "last_usec",
                                                          (json_int_t) o->v[i].last_usec)) < 0)
                        r = -ENOMEM;
        }
        if (r == 0)
                r = save_json(dir, BAN_OFFENDERS_FILE, root);
        json_decref(root);
        return r;
}

int ban_offenders_load(const char *dir, BanOffenders *o, size_t max, char **ret_error) {
        _cleanup_free_ char *path = path_in(dir, BAN_OFFENDERS_FILE);
        json_t *root = NULL, *list;
        size_t n, first;
        int r;

        if (!path)
                return -ENOMEM;
        r = json_read_file(path, (max + 1) * OFFENDER_JSON_MAX + 64, "larger than "
                           "MaxRememberedOffenders= offenders can be", &root, ret_error);
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return r;
        list = json_object_get(root, "offenders");
        if (!json_is_array(list)) {
                json_decref(root);
                return error_setf(ret_error, -EBADMSG, "%s has no \"offenders\" list", path);
        }
        /* The file is oldest first: the newest max of it are kept. */
        n = json_array_size(list);
        first = n > max ? n - max : 0;
        for (size_t i = first; i < n; i++) {
                json_t *e = json_array_get(list, i);
                const char *s = json_string_value(json_object_get(e, "source"));
                uint64_t offenses, usec;
                Cidr c;

                if (!s || cidr_parse(s, true, &c) < 0 ||
                    get_u64(e, "offenses", 1, UINT32_MAX, &offenses) < 0 ||
                    get_u64(e, "last_usec", 0, UINT64_MAX >> 1, &usec) < 0) {
                        r = error_setf(ret_error, -EBADMSG, "%s: offender #%zu is not one this "
                                       "daemon writes; the rest are kept", path, i);
                        continue;
                }
                if (ban_offenders_note(o, &c, (uint32_t) offenses, usec, max) < 0) {
                        r = -ENOMEM;
                        break;
                }
        }
        json_decref(root);
        return r == -ENOMEM ? r : 0;
}

void ban_offenders_done(BanOffenders *o) {
        free(o->v);
        *o = (BanOffenders) {};
}
