/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * A reader of the document Filters.ListFd() writes, {"columns": [KEY, ...], "rows": [[VALUE,
 * ...], ...]} (other members skipped), without a JSON value allocated per cell: 100,000 rules
 * are 2.8 million cells, and allocating one each was most of what reading the document cost a
 * client. The cells of a row are strings, integers, reals, booleans or null (a nested array or
 * object is refused); strings point into the reader's own copy of the text, unescaped there.
 */
typedef enum ListCellType {
        LIST_CELL_NULL,
        LIST_CELL_STRING,
        LIST_CELL_INTEGER,
        LIST_CELL_REAL,
        LIST_CELL_BOOL,
} ListCellType;

typedef struct ListCell {
        union {
                const char *s;
                int64_t i;
                double d;
                bool b;
        };
        ListCellType type;
} ListCell;

typedef struct ListDoc {
        char *text; /* the copy the strings point into */
        const char **columns;
        size_t n_columns;
        ListCell *cells; /* n_rows rows of n_columns cells */
        size_t n_rows;
} ListDoc;

/* Reads size bytes of data (NUL bytes refused). -EBADMSG with a message naming the offset and
 * what was wrong in error (error_size bytes); -ENOMEM. On failure *ret is left empty. */
int list_doc_parse(const char *data, size_t size, ListDoc *ret, char *error, size_t error_size);
void list_doc_done(ListDoc *d);

static inline const ListCell *list_doc_cell(const ListDoc *d, size_t row, size_t column) {
        return &d->cells[row * d->n_columns + column];
}
