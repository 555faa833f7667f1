/* SPDX-License-Identifier: MIT */
#include <jansson.h>
#include <stdio.h>
#include <sys/stat.h>

#include "log.h"
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
        _cleanup_free_ char *path = strjoin_path(dir, STATE_FILE);
        json_t *root, *links;
        State s = {};
        size_t i;
        int r;

        assert(dir);
        assert(ret);
        if (!path)
                return -ENOMEM;
        r = json_read_file(path, STATE_MAX_BYTES, "larger than 1 MiB", &root, ret_error);
        if (r < 0)
                return r;
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

int state_save(const char *dir, const State *s, char **ret_error) {
        _cleanup_free_ char *text = NULL;
        json_t *root = json_object(), *links = json_array();

        assert(dir);
        assert(s);
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
        return state_write_file(dir, STATE_FILE, text, ret_error);
}

int state_write_file(const char *dir, const char *file, const char *text, char **ret_error) {
        _cleanup_free_ char *path = strjoin_path(dir, file);
        int r;

        assert(dir);
        assert(file);
        assert(text);
        if (!path)
                return -ENOMEM;
        r = write_file_atomic(path, text, strlen(text), 0644);
        if (r >= 0)
                return 0;
        /* The callers undo the change that needed it (or, at start, go on without it). */
        log_struct_internal(LOG_ERR, r, PS_MESSAGE_STATE_NOT_WRITABLE, NULL,
                            "Cannot write %s: %s", path, strerror(-r));
        return error_setf(ret_error, -EROFS, "cannot write %s: %s; the change was not made",
                          path, strerror(-r));
}
