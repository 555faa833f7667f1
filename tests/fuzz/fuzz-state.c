/* SPDX-License-Identifier: MIT */
/*
 * The state files a daemon reads when it starts: links.json (state_load) and filters.json
 * (filter_store_start, which reads the file, compiles the rules and puts them in the kernel).
 * The first byte chooses the file, the rest is its content. Either the file is taken whole, and
 * what was taken is written back and reads back the same, or it is refused: moved aside to
 * *.corrupt with a reason, and nothing of it is taken.
 *
 * Runs as root in a mount namespace of its own: the state directory is a tmpfs and the bpffs
 * holding the filter maps is a private instance, so nothing outlives the process.
 */
#include <jansson.h>
#include <sched.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "filters.h"
#include "log.h"
#include "manager.h"
#include "state.h"

#define CHECK(x) do { if (!(x)) { fprintf(stderr, "invariant failed: %s\n", #x); abort(); } } while (0)

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char state_dir[] = "/tmp/ps-fuzz-state-XXXXXX";
static char bpffs_dir[] = "/tmp/ps-fuzz-bpffs-XXXXXX";
static char path[256], aside[256];

static void cleanup(void) {
        (void) umount2(state_dir, MNT_DETACH);
        (void) umount2(bpffs_dir, MNT_DETACH);
        (void) rmdir(state_dir);
        (void) rmdir(bpffs_dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
        if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
                perror("a private mount namespace (needs root)");
                exit(1);
        }
        if (!mkdtemp(state_dir) || !mkdtemp(bpffs_dir)) {
                perror("mkdtemp");
                exit(1);
        }
        atexit(cleanup);
        if (mount("ps-fuzz", state_dir, "tmpfs", 0, "size=64m") < 0 ||
            mount("ps-fuzz", bpffs_dir, "bpf", 0, NULL) < 0) {
                perror("mount");
                exit(1);
        }
        log_setup(LOG_TARGET_STDERR, LOG_EMERG); /* a corrupt file is logged on every run */
        return 0;
}

static void write_file(const char *name, const uint8_t *data, size_t size) {
        FILE *f;

        snprintf(path, sizeof path, "%s/%s", state_dir, name);
        snprintf(aside, sizeof aside, "%s.corrupt", path);
        (void) unlink(aside);
        f = fopen(path, "we");
        CHECK(f != NULL);
        CHECK(fwrite(data, 1, size, f) == size);
        CHECK(fclose(f) == 0);
}

static void fuzz_links(const uint8_t *data, size_t size) {
        char *err = NULL;
        State s = {}, t = {};
        int r;

        write_file("links.json", data, size);
        r = state_load(state_dir, &s, &err);
        if (r == -EBADMSG) {
                CHECK(err != NULL);
                CHECK(access(path, F_OK) < 0 && access(aside, F_OK) == 0);
                free(err);
                return;
        }
        CHECK(r == 0 || r == -ENOMEM);
        if (r < 0)
                return;
        CHECK(access(aside, F_OK) < 0);
        for (size_t i = 0; i < s.n_links; i++) {
                CHECK(s.links[i].name && s.links[i].name[0] && strlen(s.links[i].name) < 16);
                CHECK(s.links[i].mode == LINK_MODE_AUTO || s.links[i].mode == LINK_MODE_NATIVE ||
                      s.links[i].mode == LINK_MODE_GENERIC);
                for (size_t k = 0; k < i; k++)
                        CHECK(strcmp(s.links[i].name, s.links[k].name) != 0);
        }
        /* What was taken is what a save and a restart bring back. */
        CHECK(state_save(state_dir, &s, NULL) == 0);
        CHECK(state_load(state_dir, &t, &err) == 0);
        CHECK(t.n_links == s.n_links);
        for (size_t i = 0; i < s.n_links; i++) {
                CHECK(strcmp(s.links[i].name, t.links[i].name) == 0);
                CHECK(s.links[i].mode == t.links[i].mode);
        }
        state_done(&s);
        state_done(&t);
}

static json_t *rules_json(FilterStore *s) {
        json_t *a = json_array();

        CHECK(a != NULL);
        for (size_t i = 0; i < s->n_rules; i++) {
                json_t *o = filter_to_json(s->rules[i]);

                CHECK(o != NULL);
                json_object_set_new(o, "slot", json_integer(s->rules[i]->slot));
                CHECK(json_array_append_new(a, o) == 0);
        }
        return a;
}

static int start_store(Manager *m, FilterStore **ret, char **err) {
        int r;

        CHECK(filter_store_new(ret) == 0);
        m->filters = *ret;
        r = filter_store_start(*ret, NULL, m->state_dir, m->bpffs_root, err);
        return r;
}

static void fuzz_filters(const uint8_t *data, size_t size) {
        Manager m = { .state_dir = state_dir, .bpffs_root = bpffs_dir };
        FilterStore *s = NULL, *t = NULL;
        char *err = NULL;
        int r;

        config_init(&m.config);
        /* filters.json alone: a previous generation left by an earlier input would be
         * recovered from when this one is refused (packetscoped(8), FILES). */
        {
                char prev[300];

                snprintf(prev, sizeof prev, "%s/filters.json.prev", state_dir);
                (void) unlink(prev);
        }
        write_file("filters.json", data, size);
        r = start_store(&m, &s, &err);
        if (r < 0) {
                /* A set the file holds but the classifier cannot take: said in words. */
                CHECK(err != NULL);
                goto out;
        }
        if (access(aside, F_OK) == 0) {
                /* Refused as corrupt: nothing of it is in the list. */
                CHECK(access(path, F_OK) < 0);
                CHECK(s->n_rules == 0);
                goto out;
        }
        if (s->n_rules > 0) {
                /* Taken: written back, and a restart brings back the same rules. */
                json_t *a = rules_json(s), *b;

                CHECK(access(path, F_OK) == 0);
                CHECK(start_store(&m, &t, &err) == 0);
                CHECK(access(aside, F_OK) < 0);
                b = rules_json(t);
                if (!json_equal(a, b)) {
                        char *ta = json_dumps(a, JSON_SORT_KEYS), *tb = json_dumps(b, JSON_SORT_KEYS);

                        fprintf(stderr, "filters.json did not read back the same:\n%s\n%s\n", ta, tb);
                        abort();
                }
                json_decref(a);
                json_decref(b);
        }
out:
        filter_store_free(t);
        filter_store_free(s);
        free(err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size < 1)
                return 0;
        if (data[0] & 1)
                fuzz_filters(data + 1, size - 1);
        else
                fuzz_links(data + 1, size - 1);
        return 0;
}
