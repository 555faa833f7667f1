/* SPDX-License-Identifier: MIT */
/*
 * The reader of Filters.ListFd()'s document (src/shared/list-doc.c), which packetscopectl uses
 * instead of jansson for speed: any bytes, as a client would find them in the descriptor. A
 * refusal has a message naming the offset; an accepted document has as many cells as rows
 * times columns, every string inside the reader's copy, and jansson accepts the same bytes with
 * the same columns and the same number of rows.
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "list-doc.h"

#define CHECK(x) do { if (!(x)) { fprintf(stderr, "invariant failed: %s\n", #x); abort(); } } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char error[256] = "";
        ListDoc d = {};
        json_error_t je;
        json_t *o, *cols, *rows;
        size_t text_len;
        int r;

        r = list_doc_parse((const char *) data, size, &d, error, sizeof error);
        if (r < 0) {
                CHECK(r == -EBADMSG || r == -ENOMEM);
                CHECK(r == -ENOMEM || strstr(error, "offset") || strstr(error, "byte"));
                CHECK(!d.cells && !d.columns && !d.text);
                return 0;
        }
        text_len = size;
        for (size_t i = 0; i < d.n_columns; i++)
                CHECK(d.columns[i] >= d.text && d.columns[i] <= d.text + text_len);
        for (size_t row = 0; row < d.n_rows; row++)
                for (size_t c = 0; c < d.n_columns; c++) {
                        const ListCell *cell = list_doc_cell(&d, row, c);

                        CHECK(cell->type <= LIST_CELL_BOOL);
                        if (cell->type == LIST_CELL_STRING)
                                CHECK(cell->s >= d.text && cell->s <= d.text + text_len);
                }
        /* What the reader accepts is JSON, read the same way. */
        o = json_loadb((const char *) data, size, JSON_DECODE_ANY, &je);
        CHECK(o);
        cols = json_object_get(o, "columns");
        rows = json_object_get(o, "rows");
        CHECK(json_array_size(cols) == d.n_columns);
        CHECK(json_array_size(rows) == d.n_rows);
        for (size_t i = 0; i < d.n_columns; i++)
                CHECK(json_is_string(json_array_get(cols, i)) &&
                      !strcmp(json_string_value(json_array_get(cols, i)), d.columns[i]));
        json_decref(o);
        list_doc_done(&d);
        return 0;
}
