/* SPDX-License-Identifier: MIT */
/*
 * The connections query (Connections.Query / QueryIcmp): an a{sv} built from the fuzzer's bytes,
 * read by the daemon's own reader, then used on flow and ICMP entries made from the remaining
 * bytes. A refused query must carry a named bus error (never a bare errno, which the client sees
 * as a generic failure); an accepted one must be inside its documented bounds.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus-util.h"
#include "query.h"

#include "fuzz-util.h"

#define CHECK(x) do { if (!(x)) { fprintf(stderr, "invariant failed: %s\n", #x); abort(); } } while (0)

static const char *const keys[] = {
        "limit", "offset", "sort", "protocol", "family", "address", "port", "state", "type", "link",
};
static const char *const words[] = {
        "bytes", "packets", "last_seen", "first_seen", "rate", "tcp", "udp", "icmp", "icmpv6",
        "sctp", "ipv4", "ipv6", "192.0.2.0/24", "2001:db8::/32", "10.0.0.1", "::", "0.0.0.0/0",
        "none", "syn", "established", "fin", "rst", "ps0", "", "255", "1.2.3.4/33",
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        FuzzReader rd = { data, size };
        sd_bus_error error = SD_BUS_ERROR_NULL;
        QueryKind kind = fuzz_u8(&rd) & 1 ? QUERY_ICMP : QUERY_FLOWS;
        sd_bus_message *m;
        Query q;
        int r;

        m = fuzz_build_dict(&rd, keys, sizeof keys / sizeof keys[0], words,
                            sizeof words / sizeof words[0]);
        if (!m)
                return 0;
        query_init(&q, kind);
        r = bus_read_query(m, &q, &error);
        if (r < 0) {
                CHECK(r == -ENOMEM || sd_bus_error_is_set(&error));
                if (sd_bus_error_is_set(&error)) {
                        CHECK(strcmp(error.name, SD_BUS_ERROR_INVALID_ARGS) == 0);
                        CHECK(error.message && error.message[0] != '\0');
                }
        } else {
                struct ps_flow_key fk = {};
                struct ps_flow_value fv = {};
                struct ps_icmp_key ik = {};
                struct ps_icmp_value iv = {};
                TopN t;

                CHECK(q.limit >= 1 && q.limit <= QUERY_LIMIT_MAX);
                CHECK((uint64_t) q.offset + q.limit <= QUERY_WINDOW_MAX);
                CHECK(kind != QUERY_ICMP || q.sort != QUERY_SORT_RATE);

                /* The query on entries taken from the rest of the bytes. */
                memcpy(&fk, rd.data, rd.size < sizeof fk ? rd.size : sizeof fk);
                memcpy(&fv, rd.data, rd.size < sizeof fv ? rd.size : sizeof fv);
                memcpy(&ik, rd.data, rd.size < sizeof ik ? rd.size : sizeof ik);
                memcpy(&iv, rd.data, rd.size < sizeof iv ? rd.size : sizeof iv);
                (void) query_match_flow(&q, &fk, &fv);
                (void) query_match_icmp(&q, &ik);
                CHECK(topn_init(&t, q.limit < 16 ? q.limit : 16) == 0);
                for (int i = 0; i < 32; i++) {
                        TopEntry e = { .link_index = (uint32_t) i };

                        e.metric = kind == QUERY_ICMP ? query_icmp_metric(&q, &iv, fv.last_seen + i)
                                                      : query_flow_metric(&q, &fv, fv.last_seen + i);
                        fv.packets += (uint64_t) i * 7;
                        iv.packets += (uint64_t) i * 3;
                        if (topn_wants(&t, e.metric))
                                topn_push(&t, &e);
                }
                topn_sort(&t);
                CHECK(t.size <= t.capacity);
                for (size_t i = 1; i < t.size; i++)
                        CHECK(t.heap[i - 1].metric >= t.heap[i].metric);
                topn_done(&t);
        }
        query_done(&q);
        sd_bus_error_free(&error);
        sd_bus_message_unref(m);
        return 0;
}
