/* SPDX-License-Identifier: MIT */
#include <criterion/criterion.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <string.h>

#include "list-doc.h"

/* Every cell as jansson reads the same text: what packetscopectl used before this reader. */
static void agree_with_jansson(const char *text) {
        char error[256] = "";
        json_error_t jerr;
        json_t *doc = json_loads(text, 0, &jerr), *columns, *rows;
        ListDoc d;

        cr_assert_not_null(doc, "jansson: %s", jerr.text);
        cr_assert_eq(list_doc_parse(text, strlen(text), &d, error, sizeof error), 0, "%s", error);
        columns = json_object_get(doc, "columns");
        rows = json_object_get(doc, "rows");
        cr_assert_eq(d.n_columns, json_array_size(columns));
        cr_assert_eq(d.n_rows, json_array_size(rows));
        for (size_t c = 0; c < d.n_columns; c++)
                cr_assert_str_eq(d.columns[c], json_string_value(json_array_get(columns, c)));
        for (size_t k = 0; k < d.n_rows; k++)
                for (size_t c = 0; c < d.n_columns; c++) {
                        json_t *j = json_array_get(json_array_get(rows, k), c);
                        const ListCell *v = list_doc_cell(&d, k, c);

                        switch (v->type) {
                        case LIST_CELL_STRING:
                                cr_assert(json_is_string(j), "row %zu column %zu", k, c);
                                cr_assert_eq(json_string_length(j), strlen(v->s));
                                cr_assert_eq(memcmp(json_string_value(j), v->s, strlen(v->s)), 0,
                                             "row %zu column %zu: '%s'", k, c, v->s);
                                break;
                        case LIST_CELL_INTEGER:
                                cr_assert(json_is_integer(j), "row %zu column %zu", k, c);
                                cr_assert_eq(json_integer_value(j), v->i);
                                break;
                        case LIST_CELL_REAL:
                                cr_assert(json_is_real(j), "row %zu column %zu", k, c);
                                cr_assert_eq(json_real_value(j), v->d);
                                break;
                        case LIST_CELL_BOOL:
                                cr_assert(json_is_boolean(j), "row %zu column %zu", k, c);
                                cr_assert_eq(json_is_true(j), v->b);
                                break;
                        default:
                                cr_assert(json_is_null(j), "row %zu column %zu", k, c);
                        }
                }
        list_doc_done(&d);
        json_decref(doc);
}

Test(list_doc, reads_what_jansson_reads) {
        /* As the daemon writes it: compact, the fields of the rule table. */
        agree_with_jansson(
                "{\"columns\":[\"id\",\"rule_type\",\"src_ip\",\"dst_port\",\"enabled\","
                "\"priority\",\"comment\",\"hits\"],\"rows\":["
                "[1,\"tcp\",\"100.64.0.1\",\"22\",true,0,\"\",0],"
                "[2,\"udp\",\"2001:db8::/64\",\"1000-2000\",false,-5,"
                "\"quote \\\" back \\\\ slash \\/ tab \\t nl \\n cr \\r bs \\b ff \\f\","
                "9223372036854775807],"
                "[3,\"any\",\"\",\"any\",true,-9223372036854775808,"
                "\"\\u00e9t\\u00C9 \\u20ac \\ud83d\\ude00 caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\",0]"
                "]}\n");
        /* Whitespace anywhere JSON allows it, members in another order, one not read, reals. */
        agree_with_jansson(" {\n \"other\" : [ { \"a\" : [ 1 , 2.5e3 , null ] } , \"x\" ] ,\n"
                           " \"rows\" : [ [ 1.5 , null , -0 ] , [ 0 , true , 1E-2 ] ] ,\n"
                           " \"columns\" : [ \"a\" , \"b\" , \"c\" ] }\n");
        agree_with_jansson("{\"columns\":[],\"rows\":[]}");
        agree_with_jansson("{\"columns\":[\"a\"],\"rows\":[]}");
}

Test(list_doc, cells_typed) {
        const char *text = "{\"columns\":[\"id\",\"c\"],\"rows\":[[7,\"x\\u0041\"],[8,null]]}";
        char error[256] = "";
        ListDoc d;

        cr_assert_eq(list_doc_parse(text, strlen(text), &d, error, sizeof error), 0, "%s", error);
        cr_assert_eq(d.n_rows, 2);
        cr_assert_eq(list_doc_cell(&d, 0, 0)->type, LIST_CELL_INTEGER);
        cr_assert_eq(list_doc_cell(&d, 1, 0)->i, 8);
        cr_assert_str_eq(list_doc_cell(&d, 0, 1)->s, "xA");
        cr_assert_eq(list_doc_cell(&d, 1, 1)->type, LIST_CELL_NULL);
        list_doc_done(&d);
        list_doc_done(&d); /* done twice is harmless */
}

/* Each bad document is refused with a message that names the place and what was wrong. */
static void refused(const char *text, size_t size, const char *why) {
        char error[256] = "";
        ListDoc d = { .n_rows = 99 };

        cr_assert_eq(list_doc_parse(text, size, &d, error, sizeof error), -EBADMSG,
                     "accepted: %.80s", text);
        cr_assert_not_null(strstr(error, why), "'%s' does not say '%s'", error, why);
        cr_assert_not_null(strstr(error, "at byte "), "'%s' names no place", error);
        cr_assert_eq(d.n_rows, 0, "a refused document left rows behind");
        cr_assert_null(d.text);
}

#define REFUSED(text, why) refused(text, strlen(text), why)

Test(list_doc, bad_documents_named) {
        refused("{\"columns\":[],\0\"rows\":[]}", 25, "a NUL byte");
        REFUSED("", "the document is not an object");
        REFUSED("[]", "the document is not an object");
        REFUSED("{\"columns\":[\"a\"]}", "no \"columns\" and \"rows\" arrays");
        REFUSED("{\"columns\":[\"a\"],\"rows\":[[1],[1,2]]}", "row 1 has 2 values, row 0 has 1");
        REFUSED("{\"rows\":[[1,2]],\"columns\":[\"a\"]}", "the rows have 2 values, the columns are 1");
        REFUSED("{\"columns\":[\"a\"],\"rows\":[[[1]]]}", "row 0, value 0: a nested array");
        REFUSED("{\"columns\":[\"a\"],\"rows\":[[{}]]}", "a nested array or object");
        REFUSED("{\"columns\":[\"a\"],\"rows\":[1]}", "row 0 is not an array");
        REFUSED("{\"columns\":[1],\"rows\":[]}", "column 0 is not a string");
        REFUSED("{\"columns\":{},\"rows\":[]}", "\"columns\" is not an array");
        REFUSED("{\"columns\":[],\"columns\":[],\"rows\":[]}", "\"columns\" twice");
        REFUSED("{\"columns\":[\"a\"],\"rows\":[[\"\\x\"]]}", "an invalid escape");
        REFUSED("{\"columns\":[\"a\"],\"rows\":[[\"\\u12\"]]}", "four hex digits");
        REFUSED("{\"columns\":[\"a\"],\"rows\":[[\"\\ud800\"]]}", "without its low one");
        REFUSED("{\"columns\":[\"a\"],\"rows\":[[\"\\udc00\"]]}", "without its high one");
        REFUSED("{\"columns\":[\"a\"],\"rows\":[[\"\\u0000\"]]}", "\\u0000");
        REFUSED("{\"columns\":[\"a\"],\"rows\":[[\"a\tb\"]]}", "a control character (0x09)");
        REFUSED("{\"columns\":[\"a\"],\"rows\":[[\"\xc3\"]]}", "not UTF-8");
        REFUSED("{\"columns\":[\"a\"],\"rows\":[[\"\xed\xa0\x80\"]]}", "not UTF-8");
        REFUSED("{\"columns\":[\"a\"],\"rows\":[[\"\xc0\xaf\"]]}", "not UTF-8");
        REFUSED("{\"columns\":[\"a\"],\"rows\":[[\"abc", "ends inside a string");
        REFUSED("{\"columns\":[\"a\"],\"rows\":[[9223372036854775808]]}", "out of the range");
        REFUSED("{\"columns\":[\"a\"],\"rows\":[[1e999]]}", "a real number out of range");
        REFUSED("{\"columns\":[\"a\"],\"rows\":[[01]]}", "',' or ']' expected in row 0");
        REFUSED("{\"columns\":[\"a\"],\"rows\":[[1.]]}", "no digit after its point");
        REFUSED("{\"columns\":[\"a\"],\"rows\":[[tru]]}", "a value expected");
        REFUSED("{\"columns\":[\"a\"],\"rows\":[[1]]} x", "text after the document");
        REFUSED("{\"columns\":[\"a\"],\"rows\":[[1]],}", "a string expected");
        REFUSED("{\"columns\" [\"a\"],\"rows\":[]}", "':' expected");
        REFUSED("{\"columns\":[\"a\"],\"rows\":[[1]]", "',' or '}' expected");
}

Test(list_doc, nesting_bounded) {
        char text[512] = "{\"x\":";
        size_t n = strlen(text);

        for (int i = 0; i < 100; i++)
                text[n++] = '[';
        text[n] = '\0';
        REFUSED(text, "nested deeper than 64");
}
