/* SPDX-License-Identifier: MIT */
#include <jansson.h>
#include <stdio.h>
#include <sys/stat.h>

#include "state.h"
#include "util.h"

#define STATE_FILE "links.json"
#define STATE_MAX_BYTES (1024 * 1024)

const char *link_mode_request_to_string(LinkMode mode) {
        return mode == LINK_MODE_NATIVE ? "native" : mode == LINK_MODE_GENERIC ? "generic" : "auto";
}

void state_done(State *s) {
        for (size_t i = 0; i < s->n_links; i++)
                free(s->links[i].name);
        s->links = mfree(s->links);
        s->n_links = 0;
}

const StateLink *state_find(const State *s, const char *name) {
        for (size_t i = 0; i < s->n_links; i++)
                if (streq(s->links[i].name, name))
                        return &s->links[i];
        return NULL;
}

int state_add(State *s, const char *name, LinkMode mode) {
        StateLink *n;

        for (size_t i = 0; i < s->n_links; i++)
                if (streq(s->links[i].name, name)) {
                        s->links[i].mode = mode;
                        return 0;
                }
        n = realloc(s->links, (s->n_links + 1) * sizeof(StateLink));
        if (!n)
                return -ENOMEM;
        s->links = n;
        s->links[s->n_links].name = strdup(name);
        if (!s->links[s->n_links].name)
                return -ENOMEM;
        s->links[s->n_links++].mode = mode;
        return 0;
}

void state_remove(State *s, const char *name) {
        for (size_t i = 0; i < s->n_links; i++)
                if (streq(s->links[i].name, name)) {
                        free(s->links[i].name);
                        memmove(s->links + i, s->links + i + 1,
                                (s->n_links - i - 1) * sizeof(StateLink));
                        s->n_links--;
                        return;
                }
}

int state_load(const char *dir, State *ret, char **ret_error) {
        _cleanup_free_ char *path = strjoin_path(dir, STATE_FILE), *text = NULL;
        json_error_t jerr;
        json_t *root, *links;
        State s = {};
        size_t i;
        int r;

        if (!path)
                return -ENOMEM;
        r = read_file_full(path, STATE_MAX_BYTES, &text, NULL);
        if (r == -EFBIG)
                return file_set_aside(path, "larger than 1 MiB", ret_error);
        if (r < 0)
                return r;
        root = json_loads(text, 0, &jerr);
        if (!root) {
                char why[256];

                snprintf(why, sizeof why, "line %d: %s", jerr.line, jerr.text);
                return file_set_aside(path, why, ret_error);
        }
        links = json_object_get(root, "links");
        if (!json_is_array(links)) {
                json_decref(root);
                return file_set_aside(path, "no \"links\" array", ret_error);
        }
        for (i = 0; i < json_array_size(links); i++) {
                json_t *e = json_array_get(links, i); /* borrowed */
                const char *name = json_string_value(json_object_get(e, "name"));
                const char *mode_s = json_string_value(json_object_get(e, "mode"));
                LinkMode mode;

                if (!name || !*name || strlen(name) >= 16 || !mode_s ||
                    link_mode_from_string(mode_s, &mode) < 0) {
                        json_decref(root);
                        state_done(&s);
                        return file_set_aside(path, "a link entry lacks a valid name or mode",
                                              ret_error);
                }
                r = state_add(&s, name, mode);
                if (r < 0) {
                        json_decref(root);
                        state_done(&s);
                        return r;
                }
        }
        json_decref(root);
        *ret = s;
        return 0;
}

int state_save(const char *dir, const State *s) {
        _cleanup_free_ char *path = NULL, *text = NULL;
        json_t *root = json_object(), *links = json_array();
        int r;

        if (!root || !links) {
                json_decref(root);
                json_decref(links);
                return -ENOMEM;
        }
        json_object_set_new(root, "version", json_integer(1));
        for (size_t i = 0; i < s->n_links; i++) {
                json_t *e = json_pack("{s:s, s:s}", "name", s->links[i].name, "mode",
                                      link_mode_request_to_string(s->links[i].mode));

                if (e)
                        json_array_append_new(links, e); /* steals e */
        }
        json_object_set_new(root, "links", links); /* steals links */
        text = json_dumps(root, JSON_INDENT(2) | JSON_SORT_KEYS);
        json_decref(root);
        if (!text)
                return -ENOMEM;
        if (mkdir(dir, 0755) < 0 && errno != EEXIST)
                return -errno;
        path = strjoin_path(dir, STATE_FILE);
        if (!path)
                return -ENOMEM;
        r = write_file_atomic(path, text, strlen(text), 0644);
        return r;
}
