/* SPDX-License-Identifier: MIT */
/*
 * What the auto-ban policies keep in the state directory: the repeat offenders, bounded,
 * oldest forgotten first, and the policy settings changed over the bus.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "ban-policies.h"
#include "rule.h"
#include "util.h"

static char dir[] = "/tmp/test-ban-policies-XXXXXX";

static void setup(void) {
        cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void) {
        char cmd[128];

        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        cr_assert_eq(system(cmd), 0);
}

TestSuite(ban_policies, .init = setup, .fini = teardown);

static Cidr src(const char *s) {
        Cidr c;

        cr_assert_eq(cidr_parse(s, true, &c), 0, "%s", s);
        return c;
}

static void write_text(const char *file, const char *text) {
        char path[256];
        FILE *f;

        snprintf(path, sizeof path, "%s/%s", dir, file);
        f = fopen(path, "we");
        cr_assert_not_null(f);
        cr_assert_eq(fputs(text, f) >= 0, true);
        cr_assert_eq(fclose(f), 0);
}

static bool exists(const char *file) {
        char path[256];

        snprintf(path, sizeof path, "%s/%s", dir, file);
        return access(path, F_OK) == 0;
}

Test(ban_policies, offenders_oldest_forgotten_first) {
        BanOffenders o = {};
        Cidr a = src("192.0.2.1"), b = src("192.0.2.2"), c = src("2001:db8::/64");

        cr_assert_eq(ban_offenders_note(&o, &a, 1, 100, 2), 0);
        cr_assert_eq(ban_offenders_note(&o, &b, 1, 200, 2), 0);
        /* a again: it becomes the newest, with its new count. */
        cr_assert_eq(ban_offenders_note(&o, &a, 2, 300, 2), 0);
        cr_assert_eq(o.n, 2);
        cr_assert_eq(o.v[0].source.addr[0], b.addr[0]);
        cr_assert_eq(o.v[1].offenses, 2);
        cr_assert_eq(o.v[1].last_usec, 300);
        /* A third source: b, banned longest ago, goes. */
        cr_assert_eq(ban_offenders_note(&o, &c, 1, 400, 2), 0);
        cr_assert_eq(o.n, 2);
        cr_assert_eq(o.v[0].source.addr[0], a.addr[0]);
        cr_assert_eq(o.v[1].source.family, ADDR_FAMILY_IPV6);
        cr_assert_eq(o.v[1].source.prefixlen, 64);
        /* A lower count reported later (a kernel that forgot) does not lower it. */
        cr_assert_eq(ban_offenders_note(&o, &a, 1, 500, 2), 0);
        cr_assert_eq(o.v[1].offenses, 2);
        ban_offenders_done(&o);
}

Test(ban_policies, offenders_forgotten_after_their_time) {
        BanOffenders o = {};
        Cidr a = src("192.0.2.1"), b = src("192.0.2.2"), c = src("192.0.2.3");

        cr_assert_eq(ban_offenders_note(&o, &a, 3, 1000, 10), 0);
        cr_assert_eq(ban_offenders_note(&o, &b, 1, 5000, 10), 0);
        cr_assert_eq(ban_offenders_note(&o, &c, 2, 3000, 10), 0);
        /* Last banned before 3000: only a; c (3000 itself) stays. */
        cr_assert_eq(ban_offenders_forget(&o, 3000), 1);
        cr_assert_eq(o.n, 2);
        cr_assert_eq(o.v[0].source.addr[0], b.addr[0]);
        cr_assert_eq(o.v[1].source.addr[0], c.addr[0]);
        cr_assert_eq(o.v[1].offenses, 2);
        /* b is newer than c though noted before it: it outlives c. */
        cr_assert_eq(ban_offenders_forget(&o, 4000), 1);
        cr_assert_eq(o.n, 1);
        cr_assert_eq(o.v[0].source.addr[0], b.addr[0]);
        cr_assert_eq(ban_offenders_forget(&o, 4000), 0);
        cr_assert_eq(ban_offenders_forget(&o, 6000), 1);
        cr_assert_eq(o.n, 0);
        ban_offenders_done(&o);
}

Test(ban_policies, offenders_round_trip_keeps_the_newest) {
        BanOffenders o = {}, back = {};
        char *err = NULL;
        char a[32];

        for (unsigned i = 1; i <= 5; i++) {
                Cidr c;

                snprintf(a, sizeof a, "198.51.100.%u", i);
                c = src(a);
                cr_assert_eq(ban_offenders_note(&o, &c, i, 1000 * i, 10), 0);
        }
        cr_assert_eq(ban_offenders_save(dir, &o), 0);
        /* Read back with room for 3: the three newest (.3 .4 .5), oldest first. */
        cr_assert_eq(ban_offenders_load(dir, &back, 3, &err), 0);
        cr_assert_null(err);
        cr_assert_eq(back.n, 3);
        for (unsigned i = 0; i < 3; i++) {
                char got[CIDR_STRING_MAX];

                snprintf(a, sizeof a, "198.51.100.%u", i + 3);
                cr_assert_str_eq(cidr_to_string(true, &back.v[i].source, got), a);
                cr_assert_eq(back.v[i].offenses, i + 3);
                cr_assert_eq(back.v[i].last_usec, 1000 * (i + 3));
        }
        ban_offenders_done(&o);
        ban_offenders_done(&back);

        /* No file: no offenders, no error. */
        snprintf(a, sizeof a, "%s", BAN_OFFENDERS_FILE);
        {
                char path[256];

                snprintf(path, sizeof path, "%s/%s", dir, a);
                cr_assert_eq(unlink(path), 0);
        }
        cr_assert_eq(ban_offenders_load(dir, &back, 3, &err), 0);
        cr_assert_null(err);
        cr_assert_eq(back.n, 0);
}

Test(ban_policies, offenders_a_bad_entry_is_skipped) {
        BanOffenders o = {};
        char *err = NULL;

        write_text(BAN_OFFENDERS_FILE,
                   "{\"offenders\": [{\"source\": \"192.0.2.1\", \"offenses\": 2, \"last_usec\": 5},"
                   " {\"source\": \"not an address\", \"offenses\": 1, \"last_usec\": 6},"
                   " {\"source\": \"192.0.2.3\", \"offenses\": 0, \"last_usec\": 7},"
                   " {\"source\": \"192.0.2.4\", \"offenses\": 3, \"last_usec\": 8}]}");
        cr_assert_eq(ban_offenders_load(dir, &o, 100, &err), 0);
        cr_assert_not_null(err);
        cr_assert_eq(o.n, 2);
        cr_assert_eq(o.v[0].offenses, 2);
        cr_assert_eq(o.v[1].offenses, 3);
        free(err);
        ban_offenders_done(&o);
}

Test(ban_policies, policies_only_those_set_over_the_bus) {
        Config c, d;
        unsigned mask = 0;
        char *err = NULL;

        config_init(&c);
        c.ban_policy[PS_BAN_POLICY_URL].mode = PS_BAN_MODE_COUNT;
        c.ban_policy[PS_BAN_POLICY_SYN_RATE].threshold = 7;
        c.ban_policy[PS_BAN_POLICY_SYN_RATE].burst = 9;
        c.ban_policy[PS_BAN_POLICY_SYN_RATE].window_usec = 1500;
        cr_assert_eq(ban_policies_save(dir, &c, (1u << PS_BAN_POLICY_URL) |
                                               (1u << PS_BAN_POLICY_SYN_RATE)), 0);

        /* A configuration that says otherwise for every policy. */
        config_init(&d);
        for (unsigned i = 0; i < _PS_BAN_POLICY_MAX; i++) {
                d.ban_policy[i].mode = PS_BAN_MODE_OFF;
                d.ban_policy[i].threshold = 99;
        }
        cr_assert_eq(ban_policies_load(dir, &d, &mask, &err), 0);
        cr_assert_null(err);
        cr_assert_eq(mask, (1u << PS_BAN_POLICY_URL) | (1u << PS_BAN_POLICY_SYN_RATE));
        cr_assert_eq(d.ban_policy[PS_BAN_POLICY_URL].mode, PS_BAN_MODE_COUNT);
        cr_assert_eq(d.ban_policy[PS_BAN_POLICY_SYN_RATE].mode, PS_BAN_MODE_COUNT);
        cr_assert_eq(d.ban_policy[PS_BAN_POLICY_SYN_RATE].threshold, 7);
        cr_assert_eq(d.ban_policy[PS_BAN_POLICY_SYN_RATE].burst, 9);
        cr_assert_eq(d.ban_policy[PS_BAN_POLICY_SYN_RATE].window_usec, 1500);
        /* The others follow the configuration. */
        cr_assert_eq(d.ban_policy[PS_BAN_POLICY_CONNECTIONS].mode, PS_BAN_MODE_OFF);
        cr_assert_eq(d.ban_policy[PS_BAN_POLICY_CONNECTIONS].threshold, 99);
        cr_assert_eq(d.ban_policy[PS_BAN_POLICY_PORT_SCAN].threshold, 99);
}

Test(ban_policies, policies_a_damaged_file_changes_nothing) {
        Config c;
        unsigned mask = 0;
        char *err = NULL;

        config_init(&c);
        /* The first policy is fine, the second not: neither is taken. */
        write_text(BAN_POLICIES_FILE,
                   "{\"connections\": {\"mode\": \"off\", \"threshold\": 5, \"burst\": 0, "
                   "\"window_usec\": 0}, \"url\": {\"mode\": \"sometimes\", \"threshold\": 0, "
                   "\"burst\": 0, \"window_usec\": 0}}");
        cr_assert_lt(ban_policies_load(dir, &c, &mask, &err), 0);
        cr_assert_not_null(err);
        cr_assert_eq(mask, 0);
        cr_assert_eq(c.ban_policy[PS_BAN_POLICY_CONNECTIONS].mode, PS_BAN_MODE_ENFORCE);
        cr_assert_eq(c.ban_policy[PS_BAN_POLICY_CONNECTIONS].threshold, 100);
        free(err);

        /* Not JSON at all: set aside, so that the next start does not trip on it again. */
        err = NULL;
        write_text(BAN_POLICIES_FILE, "{not json");
        cr_assert_lt(ban_policies_load(dir, &c, &mask, &err), 0);
        cr_assert_not_null(err);
        cr_assert(!exists(BAN_POLICIES_FILE));
        cr_assert_eq(ban_policies_load(dir, &c, &mask, &err), 0); /* now: no file */
        free(err);
}
