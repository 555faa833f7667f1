/* SPDX-License-Identifier: MIT */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "addr.h"
#include "util.h"

static void mask_words(uint32_t out[4], const uint32_t in[4], unsigned prefixlen) {
        uint8_t *o = (uint8_t *) out;
        const uint8_t *i = (const uint8_t *) in;

        for (unsigned b = 0; b < 16; b++) {
                unsigned bits = prefixlen > b * 8 ? MIN(prefixlen - b * 8, 8u) : 0;
                uint8_t m = bits == 0 ? 0 : (uint8_t) (0xff << (8 - bits));

                o[b] = i[b] & m;
        }
}

int cidr_parse(const char *s, bool strict, Cidr *ret) {
        char buf[ADDR_STRLEN + 8];
        const char *slash;
        uint32_t addr[4] = {};
        uint32_t masked[4];
        unsigned maxlen, prefixlen;
        uint8_t family;

        if (!s || strlen(s) >= sizeof buf)
                return -EINVAL;
        memcpy(buf, s, strlen(s) + 1); /* length checked above */
        slash = strchr(buf, '/');
        if (slash)
                buf[slash - buf] = '\0';

        if (inet_pton(AF_INET, buf, addr) == 1) {
                family = ADDR_FAMILY_IPV4;
                maxlen = 32;
        } else if (inet_pton(AF_INET6, buf, addr) == 1) {
                family = ADDR_FAMILY_IPV6;
                maxlen = 128;
        } else
                return -EINVAL;

        prefixlen = maxlen;
        if (slash) {
                uint32_t p;

                if (safe_atou32(slash + 1, &p) < 0 || p > maxlen)
                        return -ERANGE;
                prefixlen = p;
        }

        mask_words(masked, addr, prefixlen);
        if (strict && memcmp(masked, addr, sizeof addr) != 0)
                return -EADDRNOTAVAIL;

        *ret = (Cidr) { .family = family, .prefixlen = (uint8_t) prefixlen };
        memcpy(ret->addr, masked, sizeof masked);
        return 0;
}

bool cidr_contains(const Cidr *c, uint8_t family, const uint32_t addr[4]) {
        uint32_t masked[4];

        if (c->family != family)
                return false;
        mask_words(masked, addr, c->prefixlen);
        return memcmp(masked, c->addr, family == ADDR_FAMILY_IPV4 ? 4 : 16) == 0;
}

const char *addr_to_string(uint8_t family, const uint32_t addr[4], char buf[static ADDR_STRLEN]) {
        if (!inet_ntop(family == ADDR_FAMILY_IPV6 ? AF_INET6 : AF_INET, addr, buf, ADDR_STRLEN))
                snprintf(buf, ADDR_STRLEN, "?");
        return buf;
}

const char *family_to_string(uint8_t family) {
        return family == ADDR_FAMILY_IPV4 ? "ipv4" : family == ADDR_FAMILY_IPV6 ? "ipv6" : "unknown";
}

int family_from_string(const char *s, uint8_t *ret) {
        if (streq(s, "ipv4") || streq(s, "inet") || streq(s, "4"))
                *ret = ADDR_FAMILY_IPV4;
        else if (streq(s, "ipv6") || streq(s, "inet6") || streq(s, "6"))
                *ret = ADDR_FAMILY_IPV6;
        else
                return -EINVAL;
        return 0;
}
