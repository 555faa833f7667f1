/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "list-doc.h"

/* Members other than columns and rows are skipped, nested up to this depth. */
#define LIST_DOC_DEPTH_MAX 64

typedef struct Reader {
        char *start, *p; /* the copy, NUL-terminated: *p == '\0' is its end */
        char *error;
        size_t error_size;
        const char **columns;
        size_t n_columns, alloc_columns;
        ListCell *cells;
        size_t n_cells, alloc_cells;
        size_t n_rows, row_width;
        bool have_columns, have_rows;
} Reader;

static int fail(Reader *r, const char *fmt, ...) {
        va_list ap;
        int n;

        if (!r->error || r->error_size == 0)
                return -EBADMSG;
        n = snprintf(r->error, r->error_size, "at byte %zu: ", (size_t) (r->p - r->start));
        if (n >= 0 && (size_t) n < r->error_size) {
                va_start(ap, fmt);
                (void) vsnprintf(r->error + n, r->error_size - (size_t) n, fmt, ap);
                va_end(ap);
        }
        return -EBADMSG;
}

static void skip_ws(Reader *r) {
        while (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r')
                r->p++;
}

static bool is_digit(char c) {
        return c >= '0' && c <= '9';
}

/* The length of the well-formed UTF-8 sequence at s (not ASCII), 0 when it is not one. */
static size_t utf8_length(const unsigned char *s) {
        uint32_t cp;
        size_t n;

        if (s[0] >= 0xC2 && s[0] <= 0xDF) {
                n = 2;
                cp = s[0] & 0x1F;
        } else if (s[0] >= 0xE0 && s[0] <= 0xEF) {
                n = 3;
                cp = s[0] & 0x0F;
        } else if (s[0] >= 0xF0 && s[0] <= 0xF4) {
                n = 4;
                cp = s[0] & 0x07;
        } else
                return 0;
        /* The NUL at the end is no continuation byte: a sequence cut short stops there. */
        for (size_t i = 1; i < n; i++) {
                if ((s[i] & 0xC0) != 0x80)
                        return 0;
                cp = cp << 6 | (s[i] & 0x3F);
        }
        if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
            (cp >= 0xD800 && cp <= 0xDFFF))
                return 0;
        return n;
}

static char *put_utf8(char *w, uint32_t cp) {
        if (cp < 0x80)
                *w++ = (char) cp;
        else if (cp < 0x800) {
                *w++ = (char) (0xC0 | cp >> 6);
                *w++ = (char) (0x80 | (cp & 0x3F));
        } else if (cp < 0x10000) {
                *w++ = (char) (0xE0 | cp >> 12);
                *w++ = (char) (0x80 | (cp >> 6 & 0x3F));
                *w++ = (char) (0x80 | (cp & 0x3F));
        } else {
                *w++ = (char) (0xF0 | cp >> 18);
                *w++ = (char) (0x80 | (cp >> 12 & 0x3F));
                *w++ = (char) (0x80 | (cp >> 6 & 0x3F));
                *w++ = (char) (0x80 | (cp & 0x3F));
        }
        return w;
}

/* Four hex digits at r->p (after "\u"). */
static int read_hex4(Reader *r, uint32_t *ret) {
        uint32_t v = 0;

        for (int i = 0; i < 4; i++) {
                char c = r->p[i];

                v <<= 4;
                if (is_digit(c))
                        v |= (uint32_t) (c - '0');
                else if (c >= 'a' && c <= 'f')
                        v |= (uint32_t) (c - 'a' + 10);
                else if (c >= 'A' && c <= 'F')
                        v |= (uint32_t) (c - 'A' + 10);
                else
                        return fail(r, "\\u needs four hex digits");
        }
        r->p += 4;
        *ret = v;
        return 0;
}

/* The string at r->p (its opening quote), unescaped in place; *ret points at it. Unescaped
 * text is never longer than its escapes, so the writer never passes the reader. */
static int read_string(Reader *r, const char **ret) {
        char *s, *w;
        int k;

        if (*r->p != '"')
                return fail(r, "a string expected");
        s = w = ++r->p;
        for (;;) {
                unsigned char c = (unsigned char) *r->p;
                uint32_t cp, lo;
                size_t n;

                if (c == '"')
                        break;
                if (c == '\0')
                        return fail(r, "the text ends inside a string");
                if (c < 0x20)
                        return fail(r, "a control character (0x%02x) inside a string", c);
                if (c >= 0x80) {
                        n = utf8_length((const unsigned char *) r->p);
                        if (n == 0)
                                return fail(r, "a string that is not UTF-8");
                        memmove(w, r->p, n);
                        w += n;
                        r->p += n;
                        continue;
                }
                if (c != '\\') {
                        *w++ = (char) c;
                        r->p++;
                        continue;
                }
                c = (unsigned char) *++r->p;
                r->p++;
                switch (c) {
                case '"': case '\\': case '/': *w++ = (char) c; break;
                case 'b': *w++ = '\b'; break;
                case 'f': *w++ = '\f'; break;
                case 'n': *w++ = '\n'; break;
                case 'r': *w++ = '\r'; break;
                case 't': *w++ = '\t'; break;
                case 'u':
                        k = read_hex4(r, &cp);
                        if (k < 0)
                                return k;
                        if (cp >= 0xD800 && cp <= 0xDBFF) {
                                if (r->p[0] != '\\' || r->p[1] != 'u')
                                        return fail(r, "a high surrogate without its low one");
                                r->p += 2;
                                k = read_hex4(r, &lo);
                                if (k < 0)
                                        return k;
                                if (lo < 0xDC00 || lo > 0xDFFF)
                                        return fail(r, "a high surrogate without its low one");
                                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                        } else if (cp >= 0xDC00 && cp <= 0xDFFF)
                                return fail(r, "a low surrogate without its high one");
                        if (cp == 0)
                                return fail(r, "\\u0000 inside a string");
                        w = put_utf8(w, cp);
                        break;
                default:
                        r->p--;
                        return fail(r, "an invalid escape; accepted: \\\" \\\\ \\/ \\b \\f \\n "
                                       "\\r \\t \\uXXXX");
                }
        }
        r->p++;
        *w = '\0'; /* at most where the closing quote was */
        *ret = s;
        return 0;
}

static int read_number(Reader *r, ListCell *ret) {
        static locale_t c_locale;
        char *q = r->p, *e;
        bool real = false;

        if (*q == '-')
                q++;
        if (*q == '0')
                q++;
        else if (*q >= '1' && *q <= '9')
                while (is_digit(*q))
                        q++;
        else
                return fail(r, "a value expected; accepted: a string, a number, true, false, "
                               "null");
        if (*q == '.') {
                real = true;
                if (!is_digit(*++q))
                        return fail(r, "a number with no digit after its point");
                while (is_digit(*q))
                        q++;
        }
        if (*q == 'e' || *q == 'E') {
                real = true;
                q++;
                if (*q == '+' || *q == '-')
                        q++;
                if (!is_digit(*q))
                        return fail(r, "a number with no digit in its exponent");
                while (is_digit(*q))
                        q++;
        }
        if (!real) {
                /* The digits the grammar took, and no more (strtoll() would read "01"). */
                bool negative = *r->p == '-';
                uint64_t v = 0, limit = negative ? (uint64_t) INT64_MAX + 1 : INT64_MAX;

                for (const char *d = r->p + negative; d < q; d++) {
                        if (v > (limit - (uint64_t) (*d - '0')) / 10)
                                return fail(r, "an integer out of the range of a 64-bit signed "
                                               "one");
                        v = v * 10 + (uint64_t) (*d - '0');
                }
                *ret = (ListCell) { .type = LIST_CELL_INTEGER,
                                    .i = !negative ? (int64_t) v :
                                         v == limit ? INT64_MIN : -(int64_t) v };
        } else {
                double d;

                /* The point is '.' whatever the client's locale. */
                if (!c_locale)
                        c_locale = newlocale(LC_NUMERIC_MASK, "C", (locale_t) 0);
                if (!c_locale)
                        return -ENOMEM;
                d = strtod_l(r->p, &e, c_locale);
                if (e != q || !isfinite(d))
                        return fail(r, "a real number out of range");
                *ret = (ListCell) { .type = LIST_CELL_REAL, .d = d };
        }
        r->p = q;
        return 0;
}

static int read_scalar(Reader *r, ListCell *ret) {
        if (*r->p == '"') {
                *ret = (ListCell) { .type = LIST_CELL_STRING };
                return read_string(r, &ret->s);
        }
        if (strncmp(r->p, "true", 4) == 0 || strncmp(r->p, "null", 4) == 0) {
                *ret = r->p[0] == 't' ? (ListCell) { .type = LIST_CELL_BOOL, .b = true }
                                      : (ListCell) { .type = LIST_CELL_NULL };
                r->p += 4;
                return 0;
        }
        if (strncmp(r->p, "false", 5) == 0) {
                *ret = (ListCell) { .type = LIST_CELL_BOOL, .b = false };
                r->p += 5;
                return 0;
        }
        return read_number(r, ret);
}

/* Any value, read and dropped: members this reader does not use. */
static int skip_value(Reader *r, unsigned depth) {
        bool object;
        ListCell dropped;
        const char *key;
        int k;

        skip_ws(r);
        if (*r->p != '[' && *r->p != '{')
                return read_scalar(r, &dropped);
        if (depth >= LIST_DOC_DEPTH_MAX)
                return fail(r, "values nested deeper than %d", LIST_DOC_DEPTH_MAX);
        object = *r->p++ == '{';
        skip_ws(r);
        if (*r->p == (object ? '}' : ']')) {
                r->p++;
                return 0;
        }
        for (;;) {
                skip_ws(r);
                if (object) {
                        k = read_string(r, &key);
                        if (k < 0)
                                return k;
                        skip_ws(r);
                        if (*r->p != ':')
                                return fail(r, "':' expected after a member's name");
                        r->p++;
                }
                k = skip_value(r, depth + 1);
                if (k < 0)
                        return k;
                skip_ws(r);
                if (*r->p == ',') {
                        r->p++;
                        continue;
                }
                if (*r->p == (object ? '}' : ']')) {
                        r->p++;
                        return 0;
                }
                return fail(r, "',' or '%c' expected", object ? '}' : ']');
        }
}

/* After an array's '[' (checked by the caller): true, with the ']' read, when it is empty. */
static bool array_empty(Reader *r) {
        r->p++;
        skip_ws(r);
        if (*r->p != ']')
                return false;
        r->p++;
        return true;
}

/* After an array's element: 1 past a ',' (another element follows), 0 past the closing ']',
 * -1 at anything else (the caller names what it was reading). */
static int array_next(Reader *r) {
        skip_ws(r);
        if (*r->p == ',') {
                r->p++;
                return 1;
        }
        if (*r->p == ']') {
                r->p++;
                return 0;
        }
        return -1;
}

static int read_columns(Reader *r) {
        int k;

        if (*r->p != '[')
                return fail(r, "\"columns\" is not an array");
        if (array_empty(r))
                return 0;
        for (;;) {
                skip_ws(r);
                if (r->n_columns == r->alloc_columns) {
                        size_t alloc = r->alloc_columns ? r->alloc_columns * 2 : 32;
                        const char **c = reallocarray(r->columns, alloc, sizeof *c);

                        if (!c)
                                return -ENOMEM;
                        r->columns = c;
                        r->alloc_columns = alloc;
                }
                if (*r->p != '"')
                        return fail(r, "column %zu is not a string", r->n_columns);
                k = read_string(r, &r->columns[r->n_columns]);
                if (k < 0)
                        return k;
                r->n_columns++;
                k = array_next(r);
                if (k > 0)
                        continue;
                if (k == 0)
                        return 0;
                return fail(r, "',' or ']' expected in \"columns\"");
        }
}

static int push_cell(Reader *r, ListCell **ret) {
        if (r->n_cells == r->alloc_cells) {
                size_t alloc = r->alloc_cells ? r->alloc_cells * 2 : 4096;
                ListCell *c = reallocarray(r->cells, alloc, sizeof *c);

                if (!c)
                        return -ENOMEM;
                r->cells = c;
                r->alloc_cells = alloc;
        }
        *ret = &r->cells[r->n_cells++];
        return 0;
}

static int read_row(Reader *r) {
        size_t width = 0;
        ListCell *cell;
        int k;

        if (*r->p != '[')
                return fail(r, "row %zu is not an array", r->n_rows);
        if (!array_empty(r))
                for (;;) {
                        skip_ws(r);
                        if (*r->p == '[' || *r->p == '{')
                                return fail(r, "row %zu, value %zu: a nested array or object; "
                                            "accepted: a string, a number, true, false, null",
                                            r->n_rows, width);
                        k = push_cell(r, &cell);
                        if (k < 0)
                                return k;
                        k = read_scalar(r, cell);
                        if (k < 0)
                                return k;
                        width++;
                        k = array_next(r);
                        if (k > 0)
                                continue;
                        if (k == 0)
                                break;
                        return fail(r, "',' or ']' expected in row %zu", r->n_rows);
                }
        if (r->n_rows == 0)
                r->row_width = width;
        else if (width != r->row_width)
                return fail(r, "row %zu has %zu values, row 0 has %zu", r->n_rows, width,
                            r->row_width);
        r->n_rows++;
        return 0;
}

static int read_rows(Reader *r) {
        int k;

        if (*r->p != '[')
                return fail(r, "\"rows\" is not an array");
        if (array_empty(r))
                return 0;
        for (;;) {
                skip_ws(r);
                k = read_row(r);
                if (k < 0)
                        return k;
                k = array_next(r);
                if (k > 0)
                        continue;
                if (k == 0)
                        return 0;
                return fail(r, "',' or ']' expected in \"rows\"");
        }
}

static int read_document(Reader *r) {
        const char *key;
        int k;

        skip_ws(r);
        if (*r->p != '{')
                return fail(r, "the document is not an object");
        r->p++;
        skip_ws(r);
        if (*r->p != '}')
                for (;;) {
                        skip_ws(r);
                        k = read_string(r, &key);
                        if (k < 0)
                                return k;
                        skip_ws(r);
                        if (*r->p != ':')
                                return fail(r, "':' expected after a member's name");
                        r->p++;
                        skip_ws(r);
                        if (strcmp(key, "columns") == 0 && !r->have_columns) {
                                r->have_columns = true;
                                k = read_columns(r);
                        } else if (strcmp(key, "rows") == 0 && !r->have_rows) {
                                r->have_rows = true;
                                k = read_rows(r);
                        } else if (strcmp(key, "columns") == 0 || strcmp(key, "rows") == 0)
                                return fail(r, "\"%s\" twice", key);
                        else
                                k = skip_value(r, 1);
                        if (k < 0)
                                return k;
                        skip_ws(r);
                        if (*r->p == ',') {
                                r->p++;
                                continue;
                        }
                        if (*r->p == '}')
                                break;
                        return fail(r, "',' or '}' expected");
                }
        r->p++;
        skip_ws(r);
        if (*r->p != '\0')
                return fail(r, "text after the document");
        if (!r->have_columns || !r->have_rows)
                return fail(r, "no \"columns\" and \"rows\" arrays");
        if (r->n_rows > 0 && r->row_width != r->n_columns)
                return fail(r, "the rows have %zu values, the columns are %zu", r->row_width,
                            r->n_columns);
        return 0;
}

int list_doc_parse(const char *data, size_t size, ListDoc *ret, char *error, size_t error_size) {
        Reader r = { .error = error, .error_size = error_size };
        const char *nul;
        int k;

        *ret = (ListDoc) {};
        nul = memchr(data, '\0', size);
        if (nul) {
                if (error && error_size > 0)
                        (void) snprintf(error, error_size, "at byte %zu: a NUL byte",
                                        (size_t) (nul - data));
                return -EBADMSG;
        }
        r.start = r.p = malloc(size + 1);
        if (!r.start)
                return -ENOMEM;
        memcpy(r.start, data, size);
        r.start[size] = '\0';
        k = read_document(&r);
        if (k < 0) {
                free(r.start);
                free(r.columns);
                free(r.cells);
                return k;
        }
        *ret = (ListDoc) { .text = r.start, .columns = r.columns, .n_columns = r.n_columns,
                           .cells = r.cells, .n_rows = r.n_rows };
        return 0;
}

void list_doc_done(ListDoc *d) {
        if (!d)
                return;
        free(d->text);
        free(d->columns);
        free(d->cells);
        *d = (ListDoc) {};
}
