/* SPDX-License-Identifier: MIT */
/*
 * The rule journal (filters.log) read back: the header that ties it to its snapshot, add,
 * change and remove records, the same record replayed twice (a compaction that did not
 * finish), a record cut short at the end, and a damaged one in the middle.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "filters.h"
#include "state-journal.h"
#include "util.h"

static FilterStore *s;
static Filter **rules;
static size_t n;
static uint32_t next;
static size_t records, bad, first_bad;

static void setup(void) {
        cr_assert_eq(filter_store_new(&s), 0);
        s->journal_gen = 7;
        rules = calloc(1, sizeof(Filter *));
        n = 0;
        next = 1;
        records = bad = first_bad = 0;
}

static void teardown(void) {
        filter_list_free(rules, n);
        filter_store_free(s);
}

TestSuite(journal, .init = setup, .fini = teardown);

/* Replays text; what state_journal_replay_text() returned, *kept the bytes it kept. */
static int replay(const char *text, size_t *kept) {
        char *t = strdup(text);
        size_t size = strlen(text);
        int r;

        cr_assert_not_null(t);
        r = filter_store_replay_text(s, &rules, &n, &next, t, &size, &records, &bad, &first_bad);
        free(t);
        if (kept)
                *kept = size;
        return r;
}

#define RULE(id, slot, port, comment)                                                            \
        "{\"comment\":\"" comment "\",\"dst_port\":" #port ",\"id\":" #id                        \
        ",\"rule_type\":\"udp\",\"slot\":" #slot "}"

Test(journal, add_change_remove) {
        cr_assert_eq(replay("{\"journal\":7}\n"
                            "{\"add\":" RULE(1, 0, 53, "a") "}\n"
                            "{\"add\":" RULE(2, 1, 54, "b") "}\n"
                            "{\"add\":" RULE(3, 2, 55, "c") "}\n"
                            "{\"change\":" RULE(1, 0, 60, "a2") "}\n"
                            "{\"remove\":2}\n", NULL), 0);
        cr_assert_eq(bad, 0);
        cr_assert_eq(n, 2);
        cr_assert_eq(rules[0]->id, 1);
        cr_assert_str_eq(rules[0]->comment, "a2");
        cr_assert_eq(rules[0]->dst_port.lo, 60);
        cr_assert_eq(rules[1]->id, 3);
        cr_assert_eq(rules[1]->slot, 2);
        cr_assert_eq(next, 4);
        cr_assert_eq(s->slot_used[0], 1);
        cr_assert_eq(s->slot_used[1], 0); /* rule 2's, removed */
        cr_assert_eq(s->slot_used[2], 1);
}

Test(journal, replayed_twice_changes_nothing) {
        const char *text = "{\"journal\":7}\n"
                           "{\"add\":" RULE(1, 0, 53, "a") "}\n"
                           "{\"add\":" RULE(2, 1, 54, "b") "}\n"
                           "{\"remove\":1}\n";

        cr_assert_eq(replay(text, NULL), 0);
        cr_assert_eq(replay(text, NULL), 0);
        cr_assert_eq(bad, 0);
        cr_assert_eq(n, 1);
        cr_assert_eq(rules[0]->id, 2);
        cr_assert_eq(next, 3);
}

Test(journal, journal_of_another_snapshot_ignored) {
        cr_assert_eq(replay("{\"journal\":6}\n"
                            "{\"add\":" RULE(1, 0, 53, "a") "}\n", NULL), 0);
        cr_assert_eq(n, 0);
        cr_assert_eq(bad, 0);
        /* and one without a header at all */
        cr_assert_eq(replay("{\"add\":" RULE(1, 0, 53, "a") "}\n", NULL), 0);
        cr_assert_eq(n, 0);
}

Test(journal, torn_last_record_cut_off) {
        size_t kept;
        const char *whole = "{\"journal\":7}\n{\"add\":" RULE(5, 3, 53, "a") "}\n";
        char text[512];

        snprintf(text, sizeof text, "%s{\"add\":{\"comment\":\"b\",\"dst_po", whole);
        cr_assert_eq(replay(text, &kept), 1);
        cr_assert_eq(kept, strlen(whole));
        cr_assert_eq(bad, 0);
        cr_assert_eq(records, 2);
        cr_assert_eq(n, 1);
        cr_assert_eq(rules[0]->id, 5);
        cr_assert_eq(next, 6);
}

Test(journal, damaged_record_in_the_middle) {
        cr_assert_eq(replay("{\"journal\":7}\n"
                            "{\"add\":" RULE(1, 0, 53, "a") "}\n"
                            "{\"add\":{\"rule_ty\n"
                            "{\"add\":" RULE(2, 1, 54, "b") "}\n"
                            "{\"bogus\":1}\n", NULL), 0);
        cr_assert_eq(bad, 2);
        cr_assert_eq(first_bad, 3);
}

Test(journal, slot_of_another_rule_refused) {
        cr_assert_eq(replay("{\"journal\":7}\n"
                            "{\"add\":" RULE(1, 4, 53, "a") "}\n"
                            "{\"add\":" RULE(2, 4, 54, "b") "}\n"
                            "{\"add\":{\"id\":3,\"rule_type\":\"udp\"}}\n", NULL), 0);
        cr_assert_eq(bad, 2);
        cr_assert_eq(first_bad, 3);
        cr_assert_eq(n, 1);
}

/* ------------------------------------------------------------------------------------------ */
/* state_journal_flush() on a real directory; the snapshot writer counts its calls. */

static unsigned snapshots_written;
static int snapshot_fail;

static int write_test_snapshot(void *userdata, uint64_t *ret_size) {
        char *path = strjoin_path(userdata, "t.snapshot");
        int r;

        cr_assert_not_null(path);
        snapshots_written++;
        r = snapshot_fail ? snapshot_fail : write_file_atomic(path, "snapshot\n", 9, 0600);
        free(path);
        if (r >= 0)
                *ret_size = 9;
        return r;
}

static bool exists(const char *dir, const char *file) {
        char *p = strjoin_path(dir, file);
        bool r = access(p, F_OK) == 0;

        free(p);
        return r;
}

Test(flush, long_journal_folded_short_one_kept) {
        char dir[] = "/tmp/test-state-journal-XXXXXX";
        StateJournal j;
        char rec[64];

        cr_assert_not_null(mkdtemp(dir));
        state_journal_init(&j);
        j.state_dir = dir;
        j.snapshot = "t.snapshot";
        j.log = "t.log";
        j.log_new = "t.log.new";
        j.what = "test journal";
        j.write_snapshot = write_test_snapshot;
        j.userdata = dir;
        snapshots_written = 0;
        snapshot_fail = 0;
        cr_assert_eq(write_test_snapshot(dir, &j.snapshot_bytes), 0);
        snapshots_written = 0;

        /* Nothing appended: nothing to fold. */
        cr_assert_eq(state_journal_flush(&j, 0), 0);
        cr_assert_eq(snapshots_written, 0);

        memset(rec, 'r', sizeof rec);
        rec[sizeof rec - 1] = '\n';
        for (int i = 0; i < 4; i++)
                cr_assert_eq(state_journal_append(&j, rec, sizeof rec), 0);
        cr_assert_eq(j.log_bytes, 4 * sizeof rec);
        cr_assert(exists(dir, "t.log"));

        /* Shorter than asked: kept, no snapshot written. */
        cr_assert_eq(state_journal_flush(&j, 4 * sizeof rec + 1), 0);
        cr_assert_eq(snapshots_written, 0);
        cr_assert(exists(dir, "t.log"));

        /* A snapshot that cannot be written: the journal is kept, to be replayed. */
        snapshot_fail = -EIO;
        cr_assert_eq(state_journal_flush(&j, 4 * sizeof rec), -EIO);
        cr_assert(exists(dir, "t.log"));
        cr_assert_eq(j.log_bytes, 4 * sizeof rec);

        /* Long enough: one snapshot, and the journals go. */
        snapshot_fail = 0;
        snapshots_written = 0;
        j.to_new = true; /* as during a compaction: the second journal goes too */
        cr_assert_eq(state_journal_append(&j, rec, sizeof rec), 0);
        cr_assert(exists(dir, "t.log.new"));
        cr_assert_eq(state_journal_flush(&j, 4 * sizeof rec), 1);
        cr_assert_eq(snapshots_written, 1);
        cr_assert(!exists(dir, "t.log"));
        cr_assert(!exists(dir, "t.log.new"));
        cr_assert(exists(dir, "t.snapshot"));
        cr_assert_eq(j.log_bytes, 0);
        cr_assert_eq(j.snapshot_bytes, 9);
        cr_assert(!j.to_new);

        {
                char *p = strjoin_path(dir, "t.snapshot");

                (void) unlink(p);
                free(p);
        }
        (void) rmdir(dir);
}

static void count_removed(const char *name, void *userdata) {
        (void) name;
        (*(int *) userdata)++;
}

/* What a write cut short leaves (NAME.tmpXXXXXX) goes at start; every other file stays. */
Test(temp, leftovers_removed_others_kept) {
        char dir[] = "/tmp/ps-temp-XXXXXX";
        const char *gone[] = { "filters.json.tmpAb12Cd", "bans.db.tmp000000", "x.tmpZZZZZZ" };
        const char *kept[] = { "filters.json", "filters.json.tmp", "filters.json.prev.tmp",
                               "a.tmpAb12C", "a.tmpAb12C-", "a.tmpAb12Cde", ".tmpAb12Cd",
                               "filters.log" };
        char path[256];
        int called = 0;

        cr_assert_not_null(mkdtemp(dir));
        for (size_t i = 0; i < 3; i++) {
                snprintf(path, sizeof path, "%s/%s", dir, gone[i]);
                cr_assert_eq(write_file_atomic(path, "x", 1, 0600), 0);
        }
        for (size_t i = 0; i < 8; i++) {
                snprintf(path, sizeof path, "%s/%s", dir, kept[i]);
                cr_assert_eq(write_file_atomic(path, "x", 1, 0600), 0);
        }
        /* A directory of that shape is not a leftover of a write. */
        snprintf(path, sizeof path, "%s/d.tmpAAAAAA", dir);
        cr_assert_eq(mkdir(path, 0700), 0);
        cr_assert_eq(remove_atomic_temp_files(dir, count_removed, &called), 3);
        cr_assert_eq(called, 3);
        for (size_t i = 0; i < 3; i++) {
                snprintf(path, sizeof path, "%s/%s", dir, gone[i]);
                cr_assert_eq(access(path, F_OK), -1, "%s is still there", gone[i]);
        }
        for (size_t i = 0; i < 8; i++) {
                snprintf(path, sizeof path, "%s/%s", dir, kept[i]);
                cr_assert_eq(access(path, F_OK), 0, "%s was removed", kept[i]);
                cr_assert_eq(unlink(path), 0);
        }
        snprintf(path, sizeof path, "%s/d.tmpAAAAAA", dir);
        cr_assert_eq(rmdir(path), 0);
        cr_assert_eq(remove_atomic_temp_files(dir, NULL, NULL), 0);
        cr_assert_eq(rmdir(dir), 0);
        cr_assert_eq(remove_atomic_temp_files(dir, NULL, NULL), -ENOENT);
}
