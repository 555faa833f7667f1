/* SPDX-License-Identifier: MIT */
/*
 * The ban lines of Bans.BanFile read into requests (ban_store_parse_lines()): the words of a
 * line, what a duration becomes, the reason as the rest of the line, comments, blank lines
 * and line ends of either kind, errors that name their line, and the limit of bans in a file
 * counted in bans, not in lines. (The allowlist check is in test-bans-file.sh, on a daemon.)
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bans.h"

static BanStore *s;
static BanRequest *reqs;
static size_t n;
static char *err, *text;

static void setup(void) {
        cr_assert_eq(ban_store_new(&s), 0);
        reqs = NULL;
        n = 0;
        err = text = NULL;
}

static void teardown(void) {
        free(reqs);
        free(err);
        free(text);
        ban_store_free(s);
}

TestSuite(lines, .init = setup, .fini = teardown);

/* Parses a copy of t (kept until the teardown: the reasons point into it). */
static int parse(const char *t, BanOrigin origin) {
        free(text);
        text = strdup(t);
        cr_assert_not_null(text);
        free(reqs);
        reqs = NULL;
        free(err);
        err = NULL;
        return ban_store_parse_lines(s, text, strlen(t), origin, &reqs, &n, &err);
}

static void assert_cidr(const BanRequest *r, const char *want) {
        char buf[CIDR_STRING_MAX];

        cr_assert_str_eq(cidr_to_string(true, &r->cidr, buf), want);
}

Test(lines, words_durations_reasons) {
        cr_assert_eq(parse("# a comment\n"
                           "\n"
                           "192.0.2.1\n"
                           "198.51.100.0/24 12h\n"
                           "\t2001:db8::/48 0   scanner range, with  two spaces  \n"
                           "203.0.113.5 2min30s x\n"
                           "203.0.113.6 3600 plain seconds\n"
                           "203.0.113.7 500ms\n"
                           "   # an indented comment\n"
                           "203.0.113.8\t7d\tby tabs",
                           BAN_ORIGIN_AI), 0, "%s", err ? err : "");
        cr_assert_eq(n, 7);
        assert_cidr(&reqs[0], "192.0.2.1");
        cr_assert_eq(reqs[0].seconds, 0);
        cr_assert_null(reqs[0].reason);
        cr_assert_eq(reqs[0].origin, BAN_ORIGIN_AI);
        assert_cidr(&reqs[1], "198.51.100.0/24");
        cr_assert_eq(reqs[1].seconds, 12 * 3600);
        assert_cidr(&reqs[2], "2001:db8::/48");
        cr_assert_eq(reqs[2].seconds, 0);
        cr_assert_str_eq(reqs[2].reason, "scanner range, with  two spaces");
        cr_assert_eq(reqs[3].seconds, 150);
        cr_assert_str_eq(reqs[3].reason, "x");
        cr_assert_eq(reqs[4].seconds, 3600);
        cr_assert_str_eq(reqs[4].reason, "plain seconds");
        /* Half a second would be "until unbanned" if rounded down. */
        cr_assert_eq(reqs[5].seconds, 1);
        cr_assert_eq(reqs[6].seconds, 7 * 86400);
        cr_assert_str_eq(reqs[6].reason, "by tabs");
}

Test(lines, crlf_line_ends) {
        cr_assert_eq(parse("192.0.2.1 1h from windows\r\n192.0.2.2\r\n", BAN_ORIGIN_IMPORT), 0);
        cr_assert_eq(n, 2);
        cr_assert_str_eq(reqs[0].reason, "from windows");
        assert_cidr(&reqs[1], "192.0.2.2");
        cr_assert_eq(reqs[1].origin, BAN_ORIGIN_IMPORT);
}

Test(lines, nothing_but_comments) {
        cr_assert_eq(parse("\n# nothing\n\n", BAN_ORIGIN_IMPORT), 0);
        cr_assert_eq(n, 0);
        cr_assert_eq(parse("", BAN_ORIGIN_IMPORT), 0);
        cr_assert_eq(n, 0);
}

Test(lines, errors_name_their_line) {
        cr_assert_eq(parse("192.0.2.1\n\n# c\n192.0.2.300\n", BAN_ORIGIN_IMPORT), -EADDRNOTAVAIL);
        cr_assert_not_null(strstr(err, "line 4: '192.0.2.300' is not an address"), "%s", err);
        cr_assert_not_null(strstr(err, "accepted: ADDRESS[/PREFIX] [DURATION [REASON]]"));
        cr_assert_eq(parse("10.1.0.0/8\n", BAN_ORIGIN_IMPORT), -EADDRNOTAVAIL);
        cr_assert_not_null(strstr(err, "line 1: '10.1.0.0/8' has bits set past its prefix"));
        cr_assert_eq(parse("10.0.0.0/33\n", BAN_ORIGIN_IMPORT), -EADDRNOTAVAIL);
        cr_assert_not_null(strstr(err, "prefix length too long"));
        cr_assert_eq(parse("192.0.2.1\n192.0.2.2 soon\n", BAN_ORIGIN_IMPORT), -EINVAL);
        cr_assert_not_null(strstr(err, "line 2: 'soon' is not a ban duration"), "%s", err);
        cr_assert_eq(parse("192.0.2.2 3651d\n", BAN_ORIGIN_IMPORT), -EINVAL);
        cr_assert_not_null(strstr(err, "at most ten years"));
        cr_assert_eq(parse("192.0.2.2 3650d\n", BAN_ORIGIN_IMPORT), 0);
        cr_assert_eq(reqs[0].seconds, BAN_SECONDS_MAX);
        cr_assert_eq(parse("192.0.2.2 1h a\x01 b\n", BAN_ORIGIN_IMPORT), -EINVAL);
        cr_assert_not_null(strstr(err, "line 1: the reason must be"));
        cr_assert_eq(parse("192.0.2.2 1h \xff\xfe\n", BAN_ORIGIN_IMPORT), -EINVAL);
        cr_assert_not_null(strstr(err, "UTF-8"));
}

Test(lines, nul_byte_named) {
        static const char t[] = "192.0.2.1\n192.0.2.2 1h a\0b\n";

        free(text);
        text = malloc(sizeof t);
        cr_assert_not_null(text);
        memcpy(text, t, sizeof t);
        cr_assert_eq(ban_store_parse_lines(s, text, sizeof t - 1, BAN_ORIGIN_IMPORT, &reqs, &n,
                                           &err), -EINVAL);
        cr_assert_not_null(strstr(err, "line 2 holds a NUL byte"), "%s", err);
}

/* n_bans ban lines, then tail. */
static char *many(size_t n_bans, const char *tail) {
        size_t size = n_bans * 16 + strlen(tail) + 1, used = 0;
        char *t = malloc(size);

        cr_assert_not_null(t);
        for (size_t i = 0; i < n_bans; i++)
                used += (size_t) snprintf(t + used, size - used, "10.%zu.%zu.%zu\n",
                                          (i >> 16) & 255, (i >> 8) & 255, i & 255);
        strcpy(t + used, tail);
        return t;
}

Test(lines, limit_counts_bans_not_lines) {
        char *t = many(PS_BANS_BATCH_MAX, "# a comment after the last ban\n\n");

        cr_assert_eq(ban_store_parse_lines(s, t, strlen(t), BAN_ORIGIN_IMPORT, &reqs, &n, &err),
                     0, "%s", err ? err : "");
        cr_assert_eq(n, PS_BANS_BATCH_MAX);
        free(t);
        free(reqs);
        reqs = NULL;
        t = many(PS_BANS_BATCH_MAX, "# one more\n192.0.2.1\n");
        cr_assert_eq(ban_store_parse_lines(s, t, strlen(t), BAN_ORIGIN_IMPORT, &reqs, &n, &err),
                     -E2BIG);
        cr_assert_not_null(strstr(err, "line 1000002: more than 1000000 bans"), "%s", err);
        free(t);
}
