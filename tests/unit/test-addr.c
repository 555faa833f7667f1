/* SPDX-License-Identifier: MIT */
#include <arpa/inet.h>
#include <criterion/criterion.h>

#include "addr.h"
#include "util.h"

Test(addr, parse_ipv4_bare) {
        Cidr c;

        cr_assert_eq(cidr_parse("192.0.2.7", true, &c), 0);
        cr_assert_eq(c.family, ADDR_FAMILY_IPV4);
        cr_assert_eq(c.prefixlen, 32);
        cr_assert_eq(c.addr[0], htonl(0xc0000207));
}

Test(addr, parse_ipv6_prefix) {
        Cidr c;
        uint32_t in[4], out[4];

        cr_assert_eq(cidr_parse("2001:db8::/32", true, &c), 0);
        cr_assert_eq(c.family, ADDR_FAMILY_IPV6);
        cr_assert_eq(c.prefixlen, 32);
        inet_pton(AF_INET6, "2001:db8:1::5", in);
        inet_pton(AF_INET6, "2001:db9::5", out);
        cr_assert(cidr_contains(&c, ADDR_FAMILY_IPV6, in));
        cr_assert_not(cidr_contains(&c, ADDR_FAMILY_IPV6, out));
        cr_assert_not(cidr_contains(&c, ADDR_FAMILY_IPV4, in));
}

Test(addr, bad_prefixes) {
        Cidr c;

        cr_assert_eq(cidr_parse("10.0.0.0/33", true, &c), -ERANGE);
        cr_assert_eq(cidr_parse("::/129", true, &c), -ERANGE);
        cr_assert_eq(cidr_parse("10.0.0.0/", true, &c), -ERANGE);
        cr_assert_eq(cidr_parse("10.0.0.0/-1", true, &c), -ERANGE);
        cr_assert_eq(cidr_parse("10.0.0.0/8x", true, &c), -ERANGE);
        cr_assert_eq(cidr_parse("10.0.0.0/ 8", true, &c), -ERANGE);
}

Test(addr, bad_addresses) {
        Cidr c;

        cr_assert_eq(cidr_parse("", true, &c), -EINVAL);
        cr_assert_eq(cidr_parse("300.1.1.1", true, &c), -EINVAL);
        cr_assert_eq(cidr_parse("example.org", true, &c), -EINVAL);
        cr_assert_eq(cidr_parse(NULL, true, &c), -EINVAL);
        /* Longer than any address: refused before copying. */
        char big[200];
        memset(big, '1', sizeof big - 1);
        big[sizeof big - 1] = '\0';
        cr_assert_eq(cidr_parse(big, true, &c), -EINVAL);
}

Test(addr, host_bits) {
        Cidr c;
        uint32_t a[4] = {};

        cr_assert_eq(cidr_parse("10.1.2.3/8", true, &c), -EADDRNOTAVAIL);
        cr_assert_eq(cidr_parse("10.1.2.3/8", false, &c), 0);
        cr_assert_eq(c.addr[0], htonl(0x0a000000));
        inet_pton(AF_INET, "10.255.0.1", a);
        cr_assert(cidr_contains(&c, ADDR_FAMILY_IPV4, a));
        inet_pton(AF_INET, "11.0.0.1", a);
        cr_assert_not(cidr_contains(&c, ADDR_FAMILY_IPV4, a));
}

Test(addr, odd_prefix_lengths) {
        Cidr c;
        uint32_t a[4] = {};

        cr_assert_eq(cidr_parse("192.0.2.128/25", true, &c), 0);
        inet_pton(AF_INET, "192.0.2.200", a);
        cr_assert(cidr_contains(&c, ADDR_FAMILY_IPV4, a));
        inet_pton(AF_INET, "192.0.2.127", a);
        cr_assert_not(cidr_contains(&c, ADDR_FAMILY_IPV4, a));
        cr_assert_eq(cidr_parse("0.0.0.0/0", true, &c), 0);
        cr_assert(cidr_contains(&c, ADDR_FAMILY_IPV4, a));
}

Test(addr, to_string_round_trip) {
        char buf[ADDR_STRLEN];
        Cidr c;

        cr_assert_eq(cidr_parse("2001:db8::1", true, &c), 0);
        cr_assert_str_eq(addr_to_string(c.family, c.addr, buf), "2001:db8::1");
        cr_assert_eq(cidr_parse("10.213.0.2", true, &c), 0);
        cr_assert_str_eq(addr_to_string(c.family, c.addr, buf), "10.213.0.2");
}

Test(addr, families) {
        uint8_t f;

        cr_assert_eq(family_from_string("ipv4", &f), 0);
        cr_assert_eq(f, 4);
        cr_assert_eq(family_from_string("ipv6", &f), 0);
        cr_assert_eq(f, 6);
        cr_assert_eq(family_from_string("ipx", &f), -EINVAL);
        cr_assert_str_eq(family_to_string(6), "ipv6");
}

Test(util, time_spans) {
        uint64_t u;

        cr_assert_eq(parse_time_span("1s", &u), 0);
        cr_assert_eq(u, USEC_PER_SEC);
        cr_assert_eq(parse_time_span("500ms", &u), 0);
        cr_assert_eq(u, 500000);
        cr_assert_eq(parse_time_span("2min 30s", &u), 0);
        cr_assert_eq(u, 150 * USEC_PER_SEC);
        cr_assert_eq(parse_time_span("5", &u), 0);
        cr_assert_eq(u, 5 * USEC_PER_SEC);
        cr_assert_eq(parse_time_span("1h", &u), 0);
        cr_assert_eq(u, 3600 * USEC_PER_SEC);
        cr_assert_lt(parse_time_span("", &u), 0);
        cr_assert_lt(parse_time_span("s", &u), 0);
        cr_assert_lt(parse_time_span("5 parsecs", &u), 0);
        cr_assert_lt(parse_time_span("-1s", &u), 0);
        cr_assert_eq(parse_time_span("99999999999999999999s", &u), -ERANGE);
}

Test(util, safe_atou) {
        uint64_t v;
        uint32_t w;

        cr_assert_eq(safe_atou64("18446744073709551615", &v), 0);
        cr_assert_eq(v, UINT64_MAX);
        cr_assert_eq(safe_atou64("18446744073709551616", &v), -ERANGE);
        cr_assert_eq(safe_atou64("-1", &v), -EINVAL);
        cr_assert_eq(safe_atou64(" 1", &v), -EINVAL);
        cr_assert_eq(safe_atou64("1x", &v), -EINVAL);
        cr_assert_eq(safe_atou32("4294967296", &w), -ERANGE);
}

Test(util, utf8) {
        cr_assert(string_is_valid_utf8("héllo", 100));
        cr_assert_not(string_is_valid_utf8("\xff\xfe", 100));
        cr_assert_not(string_is_valid_utf8("\xc0\xaf", 100)); /* overlong '/' */
        cr_assert_not(string_is_valid_utf8("\xed\xa0\x80", 100)); /* surrogate */
        cr_assert_not(string_is_valid_utf8("abcdef", 3));
}
