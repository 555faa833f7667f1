/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <systemd/sd-event.h>

/*
 * A table kept on disk as a snapshot plus an append-only journal of the changes since: each
 * change appends its records (one a line) and fdatasyncs them before it is acknowledged, so a
 * single change costs one small write instead of the whole table. When the journal has grown
 * past half the snapshot (and at least compact_min bytes), a forked child writes a new snapshot
 * from its copy of the memory while the loop goes on; the records that follow go to the second
 * journal (log_new), which replaces the first once the snapshot is in place. Replaying the
 * snapshot, then the journal, then the second journal gives the table: every record must be
 * idempotent, since a crash between the steps of a compaction replays records the snapshot
 * already holds.
 *
 * A journal may begin with a header (header_len bytes of header, when set): written whenever a
 * journal file is created (or found empty), so that a reader can tell what format it holds.
 */

typedef struct StateJournal StateJournal;

/* Writes the whole table as the snapshot (atomically); the size written in *ret_size. Called
 * in the compacting child too, so it must not change the table. */
typedef int (*state_journal_write_t)(void *userdata, uint64_t *ret_size);

/* One record (a line without its newline, NUL-terminated and writable). < 0: unreadable. */
typedef int (*state_journal_record_t)(void *userdata, char *line);

struct StateJournal {
        sd_event *event;
        const char *state_dir;
        const char *snapshot, *log, *log_new; /* names in state_dir */
        const char *what;                     /* "ban journal", for the messages */
        uint64_t compact_min;
        state_journal_write_t write_snapshot;
        void *userdata;
        uint8_t header[64]; /* written first into a journal file that is empty */
        size_t header_len;  /* 0 for none */

        /* Bytes appended since the last snapshot, and the size of that snapshot. */
        uint64_t log_bytes, log_bytes_at_fork, fork_usec, retry_at;
        uint64_t snapshot_bytes;
        bool to_new;
        pid_t compactor;
        int compactor_fd;
        sd_event_source *compact_source;
};

void state_journal_init(StateJournal *j);

/* Stops a compaction under way (the loop's thread only): its snapshot could otherwise land over
 * one written later. The journals it would have replaced are kept and replayed. */
void state_journal_stop(StateJournal *j);

/* After the snapshot was written whole: the journals it contains go. */
int state_journal_reset(StateJournal *j);

/* A clean stop: when the journals hold at least min_bytes, the snapshot is written now (a
 * compaction under way is stopped first) and the journals go, so that the next start reads the
 * snapshot alone instead of replaying them. Bounded by the table's size: one snapshot write.
 * 1 when it wrote one, 0 when the journals were shorter, < 0 when the write failed (then they
 * are kept and replayed). */
int state_journal_flush(StateJournal *j, uint64_t min_bytes);

/* Appends records durably, or not at all (a partial write is cut off again). -ENOENT when
 * there is no snapshot to append to: the caller writes the whole table instead. */
int state_journal_append(StateJournal *j, const void *p, size_t n);

/* Starts a compaction when the journal is due one (the loop's thread only, and only once the
 * records appended are in the table the child copies). */
void state_journal_compact_maybe(StateJournal *j);

/*
 * Replays one journal file, line by line, through cb. A last record without its newline was cut
 * short by a crash before it was acknowledged: it is ignored (with a warning) and cut off, so
 * that the next record starts on a line of its own. The records cb refuses are counted in
 * *ret_bad (and the first refused one's line number is in *ret_first_bad, 1-based). -ENOMEM from
 * cb ends the replay.
 */
int state_journal_replay(StateJournal *j, const char *file, size_t max_bytes,
                         state_journal_record_t cb, void *userdata, size_t *ret_records,
                         size_t *ret_bad, size_t *ret_first_bad);

/* Replays text (a journal's content) in place; *ret_size is cut to the whole records. Exposed
 * for the unit tests; returns 1 when a torn last record was cut off. */
int state_journal_replay_text(char *text, size_t *size, state_journal_record_t cb,
                              void *userdata, size_t *ret_records, size_t *ret_bad,
                              size_t *ret_first_bad);
