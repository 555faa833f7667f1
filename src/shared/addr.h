/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Families as stored in the BPF maps (guard.h): 4 and 6. */
#define ADDR_FAMILY_IPV4 4
#define ADDR_FAMILY_IPV6 6

/* An address or prefix, network byte order, IPv4 in word 0 (the map layout). */
typedef struct Cidr {
        uint8_t family;
        uint8_t prefixlen;
        uint32_t addr[4];
} Cidr;

#define ADDR_STRLEN 46 /* INET6_ADDRSTRLEN */

/* "192.0.2.1", "2001:db8::1", "10.0.0.0/8", "2001:db8::/32"; a bare address is a full prefix.
 * Host bits beyond the prefix are an error (-EINVAL) when strict, masked off otherwise. */
int cidr_parse(const char *s, bool strict, Cidr *ret);
bool cidr_contains(const Cidr *c, uint8_t family, const uint32_t addr[4]);
/* Writes the textual address into buf (ADDR_STRLEN bytes). */
const char *addr_to_string(uint8_t family, const uint32_t addr[4], char buf[static ADDR_STRLEN]);
const char *family_to_string(uint8_t family);
int family_from_string(const char *s, uint8_t *ret);
