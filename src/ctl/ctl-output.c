/* SPDX-License-Identifier: MIT */
/*
 * What every verb prints with: JSON in the mode --json asked for, "Label: value" tables, ICMP
 * type names, timestamps, text cut to the terminal's width, colour and the pager.
 */
#include <assert.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "packetscopectl.h"
#include "proto.h"

int print_json(const json_t *j) {
        size_t flags = arg.json == JSON_SHORT ? JSON_COMPACT : JSON_INDENT(2);

        assert(j);

        if (json_dumpf(j, stdout, flags | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY) < 0)
                return -EIO;
        fputc('\n', stdout);
        return 0;
}

bool json_output(void) {
        return arg.json != JSON_OFF;
}

const char *json_key_with_unit(const char *key) {
        /* The bus keeps its keys (the applet and other clients read them); the client's JSON
         * names the unit of every time, as the rule's created_usec and timeout_sec do. */
        static const char *const renames[][2] = {
                { "first_seen", "first_seen_usec" },
                { "last_seen", "last_seen_usec" },
                { "attached_since", "attached_since_usec" },
        };

        assert(key);
        for (size_t i = 0; i < ELEMENTSOF(renames); i++)
                if (streq(key, renames[i][0]))
                        return renames[i][1];
        return key;
}

Table *fields_new(void) {
        Table *t = table_new("FIELD", "VALUE", NULL);

        if (t)
                table_align_right(t, 1u << 0);
        return t;
}

int field_add(Table *t, const char *label, const char *format, ...) {
        _cleanup_free_ char *value = NULL;
        va_list ap;
        int r;

        assert(t);
        assert(label);
        assert(format);

        va_start(ap, format);
        r = vasprintf(&value, format, ap);
        va_end(ap);
        if (r < 0) {
                value = NULL; /* vasprintf() leaves it undefined */
                return -ENOMEM;
        }
        r = table_add_cellf(t, "%s:", label);
        if (r < 0)
                return r;
        return table_add_cell(t, value);
}

void print_count_legend(size_t n, const char *none, const char *singular, const char *plural,
                        const char *tail) {
        assert(none);
        assert(singular);
        assert(plural);
        assert(tail);

        if (!arg.legend)
                return;
        if (n == 0)
                puts(none);
        else
                printf("\n%zu %s %s.\n", n, n == 1 ? singular : plural, tail);
}

void table_align_right(Table *t, uint32_t mask) {
        assert(t);

        for (size_t c = 0; c < 32; c++)
                if (mask & (UINT32_C(1) << c))
                        table_set_align(t, c, TABLE_ALIGN_RIGHT);
}

/* A counter an older daemon does not report is left out rather than shown as 0. */
int field_add_u64(Table *t, bool present, const char *label, uint64_t value) {
        assert(label);

        if (!present)
                return 0;
        return field_add(t, label, "%" PRIu64, value);
}

void format_icmp_type(char *buf, size_t size, bool ipv6, unsigned type) {
        const char *name = icmp_type_name(ipv6, type);

        assert(buf);

        if (name)
                snprintf(buf, size, "%s (%u)", name, type);
        else
                snprintf(buf, size, "%u", type);
}

void format_timestamp(char *buf, size_t size, uint64_t usec) {
        time_t t = (time_t) (usec / USEC_PER_SEC);
        struct tm tm;

        assert(buf);

        if (usec == 0 || !localtime_r(&t, &tm) || strftime(buf, size, "%Y-%m-%d %H:%M:%S %Z", &tm) == 0)
                snprintf(buf, size, "n/a");
}

/* The width of the terminal, or 0 (no limit) when the output goes elsewhere and $COLUMNS
 * says nothing. */
size_t output_columns(void) {
        struct winsize ws = {};
        const char *e = getenv("COLUMNS");
        uint32_t c;

        if (e && safe_atou32(e, &c) == 0 && c > 0)
                return c;
        if (isatty(STDOUT_FILENO) && ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
                return ws.ws_col;
        return 0;
}

/* At most width code points of s, the last of them "…" when it was cut. */
char *truncate_text(const char *s, size_t width) {
        size_t n = 0, cut = 0;
        char *out;

        assert(s);

        for (size_t i = 0; s[i]; i++)
                if (((unsigned char) s[i] & 0xc0) != 0x80 && n++ == width - 1)
                        cut = i; /* where the code point that the ellipsis replaces starts */
        if (n <= width || width < 1)
                return strdup(s);
        out = malloc(cut + 4);
        if (!out)
                return NULL;
        memcpy(out, s, cut);
        memcpy(out + cut, "\xe2\x80\xa6", 4); /* U+2026, one column, and the NUL */
        return out;
}

/* ---- colour ---- */

static int colors = -1; /* decided once, before a pager takes standard output */

bool colors_enabled(void) {
        const char *term = getenv("TERM");

        if (colors < 0) {
                if (streq_ptr(arg.color, "always"))
                        colors = 1;
                else if (streq_ptr(arg.color, "never"))
                        colors = 0;
                else /* auto: a terminal that can, and no NO_COLOR (https://no-color.org) */
                        colors = isatty(STDOUT_FILENO) && !getenv("NO_COLOR") &&
                                 !streq_ptr(term, "dumb");
        }
        return colors > 0;
}

const char *color_on(Color c) {
        static const char *const codes[] = {
                [COLOR_RED] = "\033[0;1;31m",
                [COLOR_GREEN] = "\033[0;1;32m",
                [COLOR_GREY] = "\033[0;38;5;245m",
        };

        return colors_enabled() && (size_t) c < ELEMENTSOF(codes) ? codes[c] : "";
}

const char *color_off(void) {
        return colors_enabled() ? "\033[0m" : "";
}

int table_add_colored(Table *t, Color c, const char *text) {
        assert(t);

        if (!colors_enabled() || !text)
                return table_add_cell(t, text);
        return table_add_cellf(t, "%s%s%s", color_on(c), text, color_off());
}

void table_fit(Table *t) {
        table_set_width(t, output_columns());
}

/* ---- pager ---- */

static pid_t pager_pid;

/* As systemd does: long output goes through less (or PACKETSCOPE_PAGER, or PAGER) when standard
 * output is a terminal; "cat" or an empty value turns it off, as does --no-pager. */
void pager_open(void) {
        const char *pager = getenv("PACKETSCOPE_PAGER");
        bool chosen;
        struct winsize ws = {};
        int fds[2];
        pid_t pid;

        if (!arg.pager || pager_pid > 0 || !isatty(STDOUT_FILENO))
                return;
        if (!pager)
                pager = getenv("PAGER");
        chosen = pager;
        if (pager && (!*pager || streq(pager, "cat")))
                return;
        /* Decided while standard output still is the terminal. */
        (void) colors_enabled();
        if (!getenv("COLUMNS") && ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) {
                char c[16];

                snprintf(c, sizeof c, "%u", (unsigned) ws.ws_col);
                (void) setenv("COLUMNS", c, 0);
        }
        fflush(stdout);
        if (pipe2(fds, O_CLOEXEC) < 0)
                return;
        pid = fork();
        if (pid < 0) {
                safe_close(fds[0]);
                safe_close(fds[1]);
                return;
        }
        if (pid == 0) {
                if (dup2(fds[0], STDIN_FILENO) < 0)
                        _exit(EXIT_FAILURE);
                /* Quit when it fits one screen, raw colours, no line wrapping, keep the screen,
                 * and quit on ^C: systemd's choice for less. */
                (void) setenv("LESS", "FRSXMK", 0);
                (void) setenv("LESSCHARSET", "utf-8", 0);
                if (chosen) {
                        execl("/bin/sh", "sh", "-c", pager, (char *) NULL);
                        _exit(EXIT_FAILURE);
                }
                execlp("less", "less", (char *) NULL);
                execlp("more", "more", (char *) NULL);
                /* Neither installed: pass the output through, so that none of it is lost. */
                for (;;) {
                        char buf[4096];
                        ssize_t n = read(STDIN_FILENO, buf, sizeof buf);

                        if (n < 0 && errno == EINTR)
                                continue;
                        if (n <= 0 || fwrite(buf, 1, (size_t) n, stdout) != (size_t) n)
                                _exit(fflush(stdout) == 0 && n == 0 ? EXIT_SUCCESS : EXIT_FAILURE);
                }
        }
        if (dup2(fds[1], STDOUT_FILENO) < 0) {
                safe_close(fds[0]);
                safe_close(fds[1]);
                (void) kill(pid, SIGTERM);
                (void) waitpid(pid, NULL, 0);
                return;
        }
        safe_close(fds[0]);
        safe_close(fds[1]);
        pager_pid = pid;
}

void pager_close(void) {
        if (pager_pid <= 0)
                return;
        fflush(stdout);
        /* The pager sees the end of its input once our end of the pipe is closed. */
        (void) close(STDOUT_FILENO);
        while (waitpid(pager_pid, NULL, 0) < 0 && errno == EINTR)
                ;
        pager_pid = 0;
}
