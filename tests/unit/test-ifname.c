/* SPDX-License-Identifier: MIT */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

Test(ifname, valid_names) {
        cr_assert(ifname_valid("eth0"));
        cr_assert(ifname_valid("br-lan"));
        cr_assert(ifname_valid("eth0.100"));
        cr_assert(ifname_valid("x_y@z-0.1234567")); /* 15 bytes */
        cr_assert(ifname_valid("ps-\xc3\xa9"));
}

Test(ifname, invalid_names) {
        cr_assert_not(ifname_valid(""));
        cr_assert_not(ifname_valid("."));
        cr_assert_not(ifname_valid(".."));
        cr_assert_not(ifname_valid("0123456789abcdef")); /* 16 bytes */
        cr_assert_not(ifname_valid("a/b"));
        cr_assert_not(ifname_valid("a:b"));
        cr_assert_not(ifname_valid("a b"));
        cr_assert_not(ifname_valid("a\tb"));
        cr_assert_not(ifname_valid("a\x7f"));
        cr_assert_not(ifname_valid("a\xa0"));
}

static void assert_pin_name(const char *ifname, const char *want) {
        char *pin = NULL, *back = NULL;

        cr_assert_eq(ifname_to_pin_name(ifname, &pin), 0, "%s", ifname);
        cr_assert_str_eq(pin, want);
        cr_assert_eq(pin_name_to_ifname(pin, &back), 0, "%s", pin);
        cr_assert_str_eq(back, ifname);
        free(pin);
        free(back);
}

Test(ifname, pin_names) {
        assert_pin_name("eth0", "eth0");
        assert_pin_name("br-lan", "br-lan");
        assert_pin_name("eth0.100", "eth0%2e100");
        assert_pin_name("x_y@z-0.1234567", "x_y@z-0%2e1234567");
        assert_pin_name("50%", "50%25");
        assert_pin_name("ps-\xc3\xa9", "ps-%c3%a9");
}

Test(ifname, pin_names_refused) {
        char *s = (char *) 0x1;

        cr_assert_eq(ifname_to_pin_name("a/b", &s), -EINVAL);
        cr_assert_eq(s, (char *) 0x1, "written on failure");
        /* Not the one spelling the daemon makes: a directory of the first layout, or none. */
        cr_assert_eq(pin_name_to_ifname("50%", &s), -EINVAL);
        cr_assert_eq(pin_name_to_ifname("a%2", &s), -EINVAL);
        cr_assert_eq(pin_name_to_ifname("a%2E100", &s), -EINVAL);
        cr_assert_eq(pin_name_to_ifname("%41", &s), -EINVAL);
        cr_assert_eq(pin_name_to_ifname("ps-\xc3\xa9", &s), -EINVAL);
        cr_assert_eq(pin_name_to_ifname(":filters", &s), -EINVAL);
        cr_assert_eq(pin_name_to_ifname("0123456789abcdef", &s), -EINVAL);
        cr_assert_eq(s, (char *) 0x1, "written on failure");
}
