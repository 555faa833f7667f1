/* SPDX-License-Identifier: MIT */
/*
 * packetscope.conf(5): the parser on arbitrary text. It must never crash or leak, and what it
 * reports must hold: on success every setting is inside its documented range; on failure the
 * configuration is untouched and the message names the file and line.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"

#define CHECK(x) do { if (!(x)) { fprintf(stderr, "invariant failed: %s\n", #x); abort(); } } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char *text, *err = NULL;
        Config c, before;
        int r;

        if (size > 64 * 1024)
                return 0;
        text = malloc(size + 1);
        if (!text)
                abort();
        memcpy(text, data, size);
        text[size] = '\0';

        config_init(&c);
        before = c;
        r = config_parse(&c, text, "fuzz.conf", &err);
        if (r < 0) {
                CHECK(r == -EINVAL || r == -ENOMEM);
                if (r == -EINVAL) {
                        CHECK(err != NULL);
                        CHECK(strncmp(err, "fuzz.conf:", strlen("fuzz.conf:")) == 0);
                }
                CHECK(memcmp(&c, &before, sizeof c) == 0);
        } else {
                CHECK(r == 0);
                CHECK(c.flow_table_size >= CONFIG_FLOW_TABLE_MIN &&
                      c.flow_table_size <= CONFIG_FLOW_TABLE_MAX);
                CHECK(c.icmp_table_size >= CONFIG_ICMP_TABLE_MIN &&
                      c.icmp_table_size <= CONFIG_ICMP_TABLE_MAX);
                CHECK(c.max_links >= 1 && c.max_links <= 4096);
                CHECK(c.poll_interval_usec >= 100000 && c.poll_interval_usec <= 3600000000ull);
                CHECK(c.n_management <= CONFIG_MANAGEMENT_MAX);
                CHECK(c.n_management_ports <= CONFIG_MANAGEMENT_MAX);
                for (uint32_t i = 0; i < c.n_management; i++)
                        CHECK((c.management[i].family == ADDR_FAMILY_IPV4 && c.management[i].prefixlen <= 32) ||
                              (c.management[i].family == ADDR_FAMILY_IPV6 && c.management[i].prefixlen <= 128));
        }
        free(err);
        free(text);
        return 0;
}
