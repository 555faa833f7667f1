/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "state-journal.h"
#include "util.h"

void state_journal_init(StateJournal *j) {
        *j = (StateJournal) { .compactor_fd = -1 };
}

static char *journal_path(StateJournal *j, const char *file) {
        return strjoin_path(j->state_dir, file);
}

void state_journal_stop(StateJournal *j) {
        if (j->compactor <= 0)
                return;
        (void) kill(j->compactor, SIGKILL);
        (void) waitpid(j->compactor, NULL, 0);
        j->compactor = 0;
        j->compact_source = sd_event_source_disable_unref(j->compact_source);
        if (j->compactor_fd >= 0)
                close(j->compactor_fd);
        j->compactor_fd = -1;
        /* The snapshot may or may not have been renamed; the second journal keeps taking the
         * records, and both journals are replayed. */
}

int state_journal_reset(StateJournal *j) {
        _cleanup_free_ char *log = journal_path(j, j->log), *log_new = journal_path(j, j->log_new);
        int r;

        if (!log || !log_new)
                return -ENOMEM;
        /* What the journals held is in the snapshot now; replayed on top of it after a crash
         * right here, they give the same table. */
        if ((unlink(log) < 0 && errno != ENOENT) || (unlink(log_new) < 0 && errno != ENOENT))
                return -errno;
        r = fsync_parent_dir(log);
        if (r < 0)
                return r;
        j->log_bytes = j->retry_at = 0;
        j->to_new = false;
        return 0;
}

int state_journal_flush(StateJournal *j, uint64_t min_bytes) {
        uint64_t size = 0;
        int r;

        if (!j->write_snapshot || j->log_bytes == 0 || j->log_bytes < min_bytes)
                return 0;
        /* Its snapshot would be older than this one. */
        state_journal_stop(j);
        r = j->write_snapshot(j->userdata, &size);
        if (r < 0)
                return r;
        j->snapshot_bytes = size;
        r = state_journal_reset(j);
        return r < 0 ? r : 1;
}

/* The file is opened per call: an open writable file would keep its file system from going
 * read-only. */
int state_journal_append(StateJournal *j, const void *p, size_t n) {
        _cleanup_free_ char *path = NULL, *snapshot = NULL;
        _cleanup_close_ int fd = -1;
        bool created = false;
        struct stat st;
        int r;

        if (n == 0)
                return 0;
        snapshot = journal_path(j, j->snapshot);
        path = journal_path(j, j->to_new ? j->log_new : j->log);
        if (!snapshot || !path)
                return -ENOMEM;
        /* Without its snapshot the journal restores nothing: it was removed under us (or never
         * written). The caller writes the whole table instead. */
        if (access(snapshot, F_OK) < 0)
                return -errno;
        fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
        if (fd < 0 && errno == ENOENT) {
                fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
                created = true;
        }
        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0)
                return -errno;
        /* A new journal, or one whose header was cut short by a crash and cut off. */
        r = st.st_size == 0 ? write_all(fd, j->header, j->header_len) : 0;
        if (r >= 0)
                r = write_all(fd, p, n);
        if (r >= 0 && fdatasync(fd) < 0)
                r = -errno;
        if (r >= 0 && created)
                r = fsync_parent_dir(path);
        if (r < 0) {
                /* Not acknowledged, so not replayed either. */
                (void) ftruncate(fd, st.st_size);
                if (created)
                        (void) unlink(path);
                return r;
        }
        j->log_bytes += n + (st.st_size == 0 ? j->header_len : 0);
        return 0;
}

static uint64_t compact_due(StateJournal *j) {
        return MAX(j->compact_min, j->snapshot_bytes / 2);
}

static int on_compacted(sd_event_source *src, int fd, uint32_t revents, void *userdata) {
        _cleanup_free_ char *log = NULL, *log_new = NULL;
        StateJournal *j = userdata;
        uint64_t t_end = now_usec(CLOCK_MONOTONIC);
        uint64_t size = 0;
        int status = 0, r;

        if (read(fd, &size, sizeof size) != (ssize_t) sizeof size)
                size = 0;
        (void) waitpid(j->compactor, &status, 0);
        j->compactor = 0;
        j->compact_source = sd_event_source_disable_unref(j->compact_source);
        close(j->compactor_fd);
        j->compactor_fd = -1;
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || size == 0) {
                log_warning("Compacting %s/%s into %s failed (%s); the journal is kept and "
                            "replayed, compaction is tried again later", j->state_dir, j->log,
                            j->snapshot,
                            WIFEXITED(status) ? strerror(WEXITSTATUS(status))
                                              : "the writer was killed");
                j->retry_at = j->log_bytes + compact_due(j);
                return 0;
        }
        log = journal_path(j, j->log);
        log_new = journal_path(j, j->log_new);
        if (!log || !log_new)
                return 0;
        /* What came after the fork replaces what the snapshot now holds. */
        r = rename(log_new, log) < 0 ? -errno : 0;
        if (r == -ENOENT)
                r = unlink(log) < 0 && errno != ENOENT ? -errno : 0;
        if (r >= 0)
                r = fsync_parent_dir(log);
        if (r < 0) {
                log_warning_errno(r, "Cannot replace %s: %m; both journals are kept and replayed",
                                  log);
                return 0;
        }
        j->snapshot_bytes = size;
        j->log_bytes -= MIN(j->log_bytes, j->log_bytes_at_fork);
        j->retry_at = 0;
        j->to_new = false;
        log_debug("Compacted the %s into %s/%s (%llu bytes) in %llu ms", j->what, j->state_dir,
                  j->snapshot, (unsigned long long) size,
                  (unsigned long long) (t_end - j->fork_usec) / 1000);
        return 0;
}

void state_journal_compact_maybe(StateJournal *j) {
        int pipefd[2];
        pid_t pid, parent;

        if (!j->event || j->compactor > 0 || j->log_bytes < compact_due(j) ||
            j->log_bytes < j->retry_at)
                return;
        if (pipe2(pipefd, O_CLOEXEC) < 0)
                return;
        parent = getpid();
        pid = fork();
        if (pid < 0) {
                log_warning_errno(-errno, "Cannot fork to compact the %s: %m", j->what);
                close(pipefd[0]);
                close(pipefd[1]);
                return;
        }
        if (pid == 0) {
                uint64_t size = 0;
                int r;

                /* A daemon killed meanwhile must not have its snapshot land under the next
                 * one, after that one wrote its own. */
                if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
                        _exit(ECHILD);

                /* Nothing of the daemon's stays open here: the bus connection held by a child
                 * would keep the daemon's name owned after it exits, so that a restart could
                 * not take it. */
                if (pipefd[1] > 3)
                        (void) close_range(3, (unsigned) pipefd[1] - 1, 0);
                (void) close_range((unsigned) pipefd[1] + 1, ~0u, 0);
                r = j->write_snapshot(j->userdata, &size);
                if (r < 0)
                        size = 0;
                (void) write(pipefd[1], &size, sizeof size);
                _exit(r >= 0 ? 0 : -r);
        }
        close(pipefd[1]);
        if (sd_event_add_io(j->event, &j->compact_source, pipefd[0], EPOLLIN | EPOLLHUP,
                            on_compacted, j) < 0) {
                (void) kill(pid, SIGKILL);
                (void) waitpid(pid, NULL, 0);
                close(pipefd[0]);
                return;
        }
        j->compactor = pid;
        j->compactor_fd = pipefd[0];
        j->log_bytes_at_fork = j->log_bytes;
        j->fork_usec = now_usec(CLOCK_MONOTONIC);
        j->to_new = true;
}

int state_journal_replay_text(char *text, size_t *size, state_journal_record_t cb,
                              void *userdata, size_t *ret_records, size_t *ret_bad,
                              size_t *ret_first_bad) {
        size_t lineno = 0;
        char *line, *next;
        int r, torn = 0;

        for (line = text; line < text + *size; line = next) {
                next = memchr(line, '\n', (size_t) (text + *size - line));
                if (!next) {
                        *size = (size_t) (line - text);
                        torn = 1;
                        break;
                }
                *next++ = '\0';
                lineno++;
                r = cb(userdata, line);
                if (r == -ENOMEM)
                        return r;
                if (r < 0) {
                        if ((*ret_bad)++ == 0 && ret_first_bad)
                                *ret_first_bad = lineno;
                } else
                        (*ret_records)++;
        }
        return torn;
}

int state_journal_replay(StateJournal *j, const char *file, size_t max_bytes,
                         state_journal_record_t cb, void *userdata, size_t *ret_records,
                         size_t *ret_bad, size_t *ret_first_bad) {
        _cleanup_free_ char *path = journal_path(j, file), *text = NULL;
        size_t size = 0, whole;
        int r;

        if (!path)
                return -ENOMEM;
        r = read_file_full(path, max_bytes, &text, &size);
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return r;
        whole = size;
        r = state_journal_replay_text(text, &whole, cb, userdata, ret_records, ret_bad,
                                      ret_first_bad);
        if (r < 0)
                return r;
        if (r > 0) {
                log_warning("%s ends in a record cut short (%zu bytes, no newline), written by a "
                            "change that was never acknowledged; ignored", path, size - whole);
                if (truncate(path, (off_t) whole) < 0)
                        log_warning_errno(-errno, "Cannot cut %s short: %m", path);
        }
        j->log_bytes += whole;
        return 0;
}
