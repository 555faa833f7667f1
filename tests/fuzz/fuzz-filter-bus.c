/* SPDX-License-Identifier: MIT */
/*
 * A rule as the bus carries it (Filters.Add, Filter.Update, Test): an a{sv} built from the
 * fuzzer's bytes (every variant type, known and unknown keys), read by the daemon's a{sv}
 * reader into JSON and validated as Add and Update validate it. A refusal must carry one of
 * the error names org.packetscope.Guarder1(5) documents for bad rule input (InvalidArgs for a
 * value of another D-Bus type, InvalidFilter for a bad value) with a message, never a bare
 * errno or another name (NaN once gave NoMemory); what is accepted must survive the round trip
 * through filters.json.
 */
#include <jansson.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus-names.h"
#include "bus-util.h"
#include "rule.h"

#include "fuzz-util.h"

#define CHECK(x) do { if (!(x)) { fprintf(stderr, "invariant failed: %s\n", #x); abort(); } } while (0)

static const char *const keys[] = {
        "rule_type", "protocol", "src_ip", "dst_ip", "src_port", "dst_port", "tcp_flags",
        "tcp_flags_mask", "icmp_type", "icmp_code", "inner_src_ip", "inner_dst_ip",
        "inner_protocol", "inner_src_port", "inner_dst_port", "action", "enabled", "comment",
        "priority", "timeout", "force", "id", "created", "expires", "hits", "bytes", "last_hit",
};
static const char *const words[] = {
        "basic", "tcp", "udp", "icmp", "icmpv6", "any", "", "drop", "pass", "count", "23",
        "8000-8999", "0-1023", "65535", "1-0", "192.0.2.0/24", "2001:db8::/32", "10.0.0.1",
        "::ffff:1.2.3.4", "0.0.0.0/0", "1.2.3.4/33", "udplite", "sctp", "255", "-1",
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A refusal as the caller sees it: a documented name and a message. Not even -ENOMEM is let
 * through bare: under the fuzzer an allocation does not fail (the sanitizer aborts first), so a
 * bare -ENOMEM is a bug dressed as one (jansson's json_real() returns NULL for NaN). */
static void check_refusal(int r, const sd_bus_error *error) {
        CHECK(r < 0);
        CHECK(sd_bus_error_is_set(error));
        CHECK(sd_bus_error_has_name(error, SD_BUS_ERROR_INVALID_ARGS) ||
              sd_bus_error_has_name(error, PS_ERROR_INVALID_FILTER));
        CHECK(error->message && error->message[0] != '\0');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        FuzzReader rd = { data, size };
        sd_bus_error error = SD_BUS_ERROR_NULL;
        bool update = fuzz_u8(&rd) & 1;
        sd_bus_message *m;
        json_t *o = NULL;
        char *err = NULL;
        Filter f;
        int r;

        m = fuzz_build_dict(&rd, keys, sizeof keys / sizeof keys[0], words,
                            sizeof words / sizeof words[0]);
        if (!m)
                return 0;
        if (!update) {
                /* Add's own reader, error names included. */
                Filter *added = NULL;

                r = bus_read_rule(m, &added, &error);
                if (r < 0)
                        check_refusal(r, &error);
                else
                        filter_free(added);
                sd_bus_error_free(&error);
                CHECK(sd_bus_message_rewind(m, true) >= 0);
        }
        r = bus_read_dict_json(m, &o, &error);
        if (r < 0) {
                check_refusal(r, &error);
                goto out;
        }
        CHECK(json_is_object(o));

        filter_init(&f);
        if (update) {
                json_t *base = json_pack("{s:s, s:s, s:s}", "rule_type", "udp", "dst_port",
                                         "53", "dst_ip", "2001:db8::/32");

                CHECK(filter_from_json(&f, base, 0, &err) == 0);
                json_decref(base);
                f.id = 0;
        }
        r = filter_from_json(&f, o, update ? FILTER_PARSE_UPDATE : 0, &err);
        if (r < 0) {
                CHECK(err != NULL && err[0] != '\0');
                /* As Update answers it. */
                check_refusal(filters_bus_error(&error, r, err), &error);
        } else {
                json_t *a = filter_to_json(&f), *b;
                char *err2 = NULL;
                Filter g;

                CHECK(a != NULL);
                filter_init(&g);
                CHECK(filter_from_json(&g, a, FILTER_PARSE_IMPORT, &err2) == 0);
                b = filter_to_json(&g);
                CHECK(json_equal(a, b));
                json_decref(a);
                json_decref(b);
                filter_done(&g);
                free(err2);
        }
        filter_done(&f);
out:
        free(err);
        json_decref(o);
        sd_bus_error_free(&error);
        sd_bus_message_unref(m);
        return 0;
}
