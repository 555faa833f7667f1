/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <systemd/sd-journal.h>

#include "log.h"
#include "util.h"

static LogTarget log_target = LOG_TARGET_AUTO;
static int log_max_level = LOG_INFO;
static bool journal_ok;

int log_parse_target(const char *s, LogTarget *ret) {
        if (streq(s, "auto"))
                *ret = LOG_TARGET_AUTO;
        else if (streq(s, "journal"))
                *ret = LOG_TARGET_JOURNAL;
        else if (streq(s, "stderr") || streq(s, "console"))
                *ret = LOG_TARGET_STDERR;
        else
                return -EINVAL;
        return 0;
}

int log_parse_level(const char *s, int *ret) {
        static const char *const names[] = {
                [LOG_EMERG] = "emerg", [LOG_ALERT] = "alert", [LOG_CRIT] = "crit",
                [LOG_ERR] = "err", [LOG_WARNING] = "warning", [LOG_NOTICE] = "notice",
                [LOG_INFO] = "info", [LOG_DEBUG] = "debug",
        };

        for (int i = 0; i < (int) ELEMENTSOF(names); i++)
                if (streq(s, names[i])) {
                        *ret = i;
                        return 0;
                }
        return -EINVAL;
}

/* stderr goes to the journal already (JOURNAL_STREAM matches it), or a journal socket exists. */
static bool journal_available(void) {
        const char *e = getenv("JOURNAL_STREAM");
        struct stat st;

        if (e) {
                unsigned long long dev, ino;

                if (sscanf(e, "%llu:%llu", &dev, &ino) == 2 && fstat(STDERR_FILENO, &st) >= 0 &&
                    st.st_dev == dev && st.st_ino == ino)
                        return true;
        }
        return access("/run/systemd/journal/socket", W_OK) >= 0;
}

void log_setup(LogTarget target, int max_level) {
        log_target = target;
        log_max_level = max_level;
        journal_ok = target == LOG_TARGET_JOURNAL ||
                     (target == LOG_TARGET_AUTO && journal_available());
}

int log_get_max_level(void) {
        return log_max_level;
}

bool log_to_journal(void) {
        return journal_ok;
}

static int log_structv(int level, int error, const char *message_id, const char *ifname,
                       const char *const *fields, const char *format, va_list ap) {
        _cleanup_free_ char *msg = NULL;
        int saved_errno = errno;
        int e = error < 0 ? -error : error;
        size_t n_fields = 0;

        if (level > log_max_level)
                return -e;

        /* %m in the format means the given error, as in systemd. */
        errno = e;
        if (vasprintf(&msg, format, ap) < 0)
                msg = NULL;
        if (!msg)
                return -e;
        while (fields && fields[n_fields])
                n_fields++;

        if (journal_ok) {
                _cleanup_free_ char *m = NULL, *mid = NULL, *ifn = NULL;
                _cleanup_free_ struct iovec *iov = calloc(6 + n_fields, sizeof(struct iovec));
                char f_prio[32], f_errno[32];
                int n = 0;

                if (!iov || asprintf(&m, "MESSAGE=%s", msg) < 0)
                        goto fallback;
                iov[n++] = (struct iovec) { m, strlen(m) };
                snprintf(f_prio, sizeof f_prio, "PRIORITY=%i", level);
                iov[n++] = (struct iovec) { f_prio, strlen(f_prio) };
                iov[n++] = (struct iovec) { (char *) "SYSLOG_IDENTIFIER=packetscoped", 30 };
                if (e > 0) {
                        snprintf(f_errno, sizeof f_errno, "ERRNO=%i", e);
                        iov[n++] = (struct iovec) { f_errno, strlen(f_errno) };
                }
                if (message_id && asprintf(&mid, "MESSAGE_ID=%s", message_id) >= 0)
                        iov[n++] = (struct iovec) { mid, strlen(mid) };
                if (ifname && asprintf(&ifn, "INTERFACE=%s", ifname) >= 0)
                        iov[n++] = (struct iovec) { ifn, strlen(ifn) };
                for (size_t i = 0; i < n_fields; i++)
                        iov[n++] = (struct iovec) { (char *) fields[i], strlen(fields[i]) };
                if (sd_journal_sendv(iov, n) >= 0)
                        goto done;
        }
fallback:
        fprintf(stderr, "%s%s%s\n", ifname ? ifname : "", ifname ? ": " : "", msg);
done:
        errno = saved_errno;
        return -e;
}

int log_struct_fields(int level, int error, const char *message_id, const char *ifname,
                      const char *const *fields, const char *format, ...) {
        va_list ap;
        int r;

        va_start(ap, format);
        r = log_structv(level, error, message_id, ifname, fields, format, ap);
        va_end(ap);
        return r;
}

int log_filter(int level, const char *message_id, uint32_t filter_id, const char *format, ...) {
        _cleanup_free_ char *msg = NULL;
        char field[32];
        const char *const fields[] = { field, NULL };
        va_list ap;
        int r;

        va_start(ap, format);
        r = vasprintf(&msg, format, ap);
        va_end(ap);
        if (r < 0)
                return -ENOMEM;
        snprintf(field, sizeof field, "FILTER_ID=%u", filter_id);
        return log_struct_fields(level, 0, message_id, NULL, fields, "%s", msg);
}
