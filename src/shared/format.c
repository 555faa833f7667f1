/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "format.h"

/* snprintf that never leaves the buffer unterminated and tolerates size 0. */
static char *buf_printf(char *buf, size_t size, const char *format, ...)
        __attribute__((format(printf, 3, 4)));
static char *buf_printf(char *buf, size_t size, const char *format, ...) {
        va_list ap;

        if (!buf || size == 0)
                return buf;
        va_start(ap, format);
        vsnprintf(buf, size, format, ap);
        va_end(ap);
        return buf;
}

char *format_bytes(char *buf, size_t size, uint64_t bytes) {
        static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
        uint64_t div = 1, tenths;
        size_t i = 0;

        if (bytes < 1024)
                return buf_printf(buf, size, "%" PRIu64 " B", bytes);

        while (i + 1 < sizeof units / sizeof units[0] && bytes / div >= 1024) {
                div *= 1024;
                i++;
        }
        /*
         * Integer arithmetic, so that UINT64_MAX is exact. Rounding to one decimal may reach 1024.0
         * of a unit ("1048575" would read "1024.0 KiB"); step up a unit then, as long as there is
         * one. (bytes % div) < 2^60, so the multiplication by 10 cannot overflow.
         */
        for (;;) {
                tenths = (bytes / div) * 10 + ((bytes % div) * 10 + div / 2) / div;
                if (tenths < 10240 || i + 1 >= sizeof units / sizeof units[0])
                        break;
                div *= 1024;
                i++;
        }
        return buf_printf(buf, size, "%" PRIu64 ".%" PRIu64 " %s", tenths / 10, tenths % 10,
                          units[i]);
}

/* Picks the largest scale step at which the value still shows as at least 1.0, and steps further
 * up when one-decimal rounding would print 1000.0 of a unit. */
static char *format_si(char *buf, size_t size, double v, const char *const *prefixes,
                       size_t n_prefixes, const char *unit, const char *sep) {
        size_t i = 0;

        while (i + 1 < n_prefixes && v >= 999.95) {
                v /= 1000.0;
                i++;
        }
        return buf_printf(buf, size, "%.1f%s%s%s", v, sep, prefixes[i], unit);
}

char *format_rate_bits(char *buf, size_t size, double bits_per_sec) {
        static const char *const prefixes[] = { "", "k", "M", "G", "T" };

        if (!isfinite(bits_per_sec) || bits_per_sec < 0)
                return buf_printf(buf, size, "n/a");
        if (bits_per_sec < 999.5)
                return buf_printf(buf, size, "%.0f bit/s", bits_per_sec);
        return format_si(buf, size, bits_per_sec / 1000.0, prefixes + 1, 4, "bit/s", " ");
}

char *format_rate_pps(char *buf, size_t size, double pps) {
        static const char *const prefixes[] = { "k", "M", "G" };

        if (!isfinite(pps) || pps < 0)
                return buf_printf(buf, size, "n/a");
        if (pps == 0)
                return buf_printf(buf, size, "0 pps");
        if (pps < 9.95)
                return buf_printf(buf, size, "%.1f pps", pps);
        if (pps < 999.5)
                return buf_printf(buf, size, "%.0f pps", pps);
        return format_si(buf, size, pps / 1000.0, prefixes, 3, " pps", "");
}

char *format_timespan(char *buf, size_t size, uint64_t usec) {
        static const struct {
                uint64_t usec;
                const char *suffix;
        } units[] = {
                { UINT64_C(86400000000), "d" },
                { UINT64_C(3600000000), "h" },
                { UINT64_C(60000000), "min" },
                { UINT64_C(1000000), "s" },
        };
        size_t i;

        /* The largest unit that fits, then the next one down when it is not zero. */
        for (i = 0; i < sizeof units / sizeof units[0] - 1 && usec < units[i].usec; i++)
                ;
        if (i + 1 < sizeof units / sizeof units[0] &&
            usec % units[i].usec / units[i + 1].usec > 0)
                return buf_printf(buf, size, "%" PRIu64 "%s %" PRIu64 "%s", usec / units[i].usec,
                                  units[i].suffix, usec % units[i].usec / units[i + 1].usec,
                                  units[i + 1].suffix);
        return buf_printf(buf, size, "%" PRIu64 "%s", usec / units[i].usec, units[i].suffix);
}

char *format_relative_time(char *buf, size_t size, uint64_t now_us, uint64_t then_us) {
        char span[FORMAT_RELATIVE_MAX];
        bool future = then_us > now_us;
        uint64_t delta = future ? then_us - now_us : now_us - then_us;

        if (then_us == 0)
                return buf_printf(buf, size, "never");
        if (delta < UINT64_C(1000000))
                return buf_printf(buf, size, "now");
        format_timespan(span, sizeof span, delta);
        return future ? buf_printf(buf, size, "in %s", span)
                      : buf_printf(buf, size, "%s ago", span);
}

char *format_tcp_flags(char *buf, size_t size, uint8_t flags) {
        static const char letters[8] = { 'F', 'S', 'R', 'P', 'A', 'U', 'E', 'C' };
        size_t n = 0;

        if (!buf || size == 0)
                return buf;
        if (flags == 0)
                return buf_printf(buf, size, "-");
        for (unsigned bit = 0; bit < 8 && n + 1 < size; bit++)
                if (flags & (1u << bit))
                        buf[n++] = letters[bit];
        buf[n] = '\0';
        return buf;
}

char *format_endpoint(char *buf, size_t size, const char *addr, uint16_t port) {
        if (!addr)
                addr = "-";
        if (strchr(addr, ':'))
                return buf_printf(buf, size, "[%s]:%u", addr, (unsigned) port);
        return buf_printf(buf, size, "%s:%u", addr, (unsigned) port);
}

struct Table {
        size_t n_columns;
        TableAlign align[TABLE_COLUMNS_MAX];
        unsigned priority[TABLE_COLUMNS_MAX]; /* 0: always shown; the highest goes first */
        size_t max_width;                     /* 0: no limit */
        char **cells; /* the headers first, then the rows, row-major */
        size_t n_cells;
        size_t allocated;
};

Table *table_free(Table *t) {
        if (!t)
                return NULL;
        for (size_t i = 0; i < t->n_cells; i++)
                free(t->cells[i]);
        free(t->cells);
        free(t);
        return NULL;
}

static int table_push(Table *t, char *owned) {
        if (t->n_cells >= TABLE_CELLS_MAX + t->n_columns) {
                free(owned);
                return -E2BIG;
        }
        if (t->n_cells == t->allocated) {
                size_t n = t->allocated ? t->allocated * 2 : 64;
                char **c = realloc(t->cells, n * sizeof(char *));

                if (!c) {
                        free(owned);
                        return -ENOMEM;
                }
                t->cells = c;
                t->allocated = n;
        }
        t->cells[t->n_cells++] = owned;
        return 0;
}

static int table_push_copy(Table *t, const char *text) {
        char *s = strdup(text ? text : "-");

        if (!s)
                return -ENOMEM;
        return table_push(t, s);
}

Table *table_new(const char *header, ...) {
        Table *t;
        va_list ap;

        if (!header)
                return NULL;
        t = calloc(1, sizeof *t);
        if (!t)
                return NULL;
        va_start(ap, header);
        for (const char *h = header; h; h = va_arg(ap, const char *)) {
                if (t->n_columns >= TABLE_COLUMNS_MAX || table_push_copy(t, h) < 0) {
                        va_end(ap);
                        return table_free(t);
                }
                t->n_columns++;
        }
        va_end(ap);
        return t;
}

int table_set_align(Table *t, size_t column, TableAlign align) {
        if (!t || column >= t->n_columns)
                return -EINVAL;
        if (align != TABLE_ALIGN_LEFT && align != TABLE_ALIGN_RIGHT)
                return -EINVAL;
        t->align[column] = align;
        return 0;
}

int table_set_priority(Table *t, size_t column, unsigned priority) {
        if (!t || column >= t->n_columns)
                return -EINVAL;
        t->priority[column] = priority;
        return 0;
}

void table_set_width(Table *t, size_t width) {
        if (t)
                t->max_width = width;
}

int table_add_cell(Table *t, const char *text) {
        if (!t)
                return -EINVAL;
        return table_push_copy(t, text);
}

int table_add_cellf(Table *t, const char *format, ...) {
        char *s = NULL;
        va_list ap;
        int r;

        if (!t || !format)
                return -EINVAL;
        va_start(ap, format);
        r = vasprintf(&s, format, ap);
        va_end(ap);
        if (r < 0)
                return -ENOMEM;
        return table_push(t, s);
}

size_t table_rows(const Table *t) {
        if (!t)
                return 0;
        return (t->n_cells - t->n_columns) / t->n_columns;
}

/* Display width in code points: UTF-8 continuation bytes don't advance the cursor, nor do the
 * colour sequences (ESC [ ... final byte) a cell may carry. Good enough for interface names and
 * addresses; no attempt at East Asian double-width cells. */
static size_t text_width(const char *s) {
        size_t w = 0;

        for (; *s; s++) {
                if (s[0] == '\033' && s[1] == '[') {
                        for (s += 2; *s && !(*s >= 0x40 && *s <= 0x7e); s++)
                                ;
                        if (!*s)
                                break;
                        continue;
                }
                if (((unsigned char) *s & 0xc0) != 0x80)
                        w++;
        }
        return w;
}

static const char *table_cell(const Table *t, size_t row, size_t column) {
        size_t i = row * t->n_columns + column;

        return i < t->n_cells ? t->cells[i] : "";
}

int table_print(const Table *t, FILE *f, bool header) {
        size_t width[TABLE_COLUMNS_MAX] = {};
        bool hidden[TABLE_COLUMNS_MAX] = {};
        size_t rows;

        if (!t || !f)
                return -EINVAL;
        /* Row 0 is the header; a partly filled last row counts and gets empty cells. */
        rows = (t->n_cells + t->n_columns - 1) / t->n_columns;
        for (size_t r = header ? 0 : 1; r < rows; r++)
                for (size_t c = 0; c < t->n_columns; c++) {
                        size_t w = text_width(table_cell(t, r, c));

                        if (w > width[c])
                                width[c] = w;
                }

        /* Too wide for max_width: columns go, the highest priority first (the rightmost of
         * equals), until the rest fits or only columns of priority 0 are left. */
        for (;;) {
                size_t total = 0, drop = SIZE_MAX;

                for (size_t c = 0; c < t->n_columns; c++) {
                        if (hidden[c])
                                continue;
                        total += width[c] + (total > 0 ? 2 : 0);
                        if (t->priority[c] > 0 &&
                            (drop == SIZE_MAX || t->priority[c] >= t->priority[drop]))
                                drop = c;
                }
                if (t->max_width == 0 || total <= t->max_width || drop == SIZE_MAX)
                        break;
                hidden[drop] = true;
        }

        for (size_t r = header ? 0 : 1; r < rows; r++) {
                /* Blanks are owed, not written, until some text follows them: so no line ends
                 * in blanks, whatever the alignment or empty cells at its end. */
                size_t owed = 0;
                bool first = true;

                for (size_t c = 0; c < t->n_columns; c++) {
                        const char *s = table_cell(t, r, c);

                        if (hidden[c])
                                continue;
                        if (!first)
                                owed += 2; /* column gap */
                        first = false;
                        size_t pad = width[c] - text_width(s);

                        if (t->align[c] == TABLE_ALIGN_RIGHT)
                                owed += pad;
                        if (*s) {
                                fprintf(f, "%*s%s", (int) owed, "", s);
                                owed = 0;
                        }
                        if (t->align[c] == TABLE_ALIGN_LEFT)
                                owed += pad;
                }
                fputc('\n', f);
        }
        return ferror(f) ? -EIO : 0;
}
