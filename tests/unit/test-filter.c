/* SPDX-License-Identifier: MIT */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <stdio.h>

#include "conf.h"
#include "filter-compile.h"
#include "filters.h"
#include "rule.h"
#include "util.h"
#include "../bpf/filter-pkt.h"
#include "../common/ref-gen.h"
#include "../common/ref-filter.h"

#ifndef GUARDER_DIR
#define GUARDER_DIR "tests/guarder"
#endif

static int parse(const char *json, Filter *f, FilterParseFlags flags, char **err) {
        json_error_t je;
        json_t *o = json_loads(json, 0, &je);
        int r;

        cr_assert_not_null(o, "bad test JSON %s: %s", json, je.text);
        r = filter_from_json(f, o, flags, err);
        json_decref(o);
        return r;
}

static void expect_ok(const char *json, Filter *ret) {
        char *err = NULL;

        filter_init(ret);
        cr_assert_eq(parse(json, ret, 0, &err), 0, "%s rejected: %s", json, err ? err : "");
}

static void expect_bad(const char *json, const char *needle) {
        Filter f, before;
        char *err = NULL;

        filter_init(&f);
        before = f;
        cr_assert_eq(parse(json, &f, 0, &err), -EINVAL, "%s accepted", json);
        cr_assert_not_null(err);
        cr_assert(strstr(err, needle), "error for %s is '%s', lacks '%s'", json, err, needle);
        cr_assert_eq(memcmp(&f, &before, sizeof f), 0, "rule changed by a failed parse");
        free(err);
}

Test(filter, guarder_examples_all_parse) {
        static const char *const names[] = {
                "01-ping-request-disabled", "02-dest-unreachable", "03-source-quench",
                "04-dest-unreachable-inner-udp", "05-dns-errors", "06-udp-traceroute",
                "07-echo-request-all", "08-telnet", "09-rpc", "10-smb", "11-netbios", "12-mssql",
                "13-mysql", "14-rdp", "15-vnc", "16-ping-request", "17-syn-scan",
        };

        for (size_t i = 0; i < ELEMENTSOF(names); i++) {
                char path[512], *err = NULL;
                json_error_t je;
                json_t *o;
                Filter f;

                snprintf(path, sizeof path, "%s/%s.json", GUARDER_DIR, names[i]);
                o = json_load_file(path, 0, &je);
                cr_assert_not_null(o, "%s: %s", path, je.text);
                filter_init(&f);
                cr_assert_eq(filter_from_json(&f, o, 0, &err), 0, "%s: %s", path, err ? err : "");
                json_decref(o);
                filter_done(&f);
        }
}

Test(filter, guarder_defaults) {
        Filter f;

        /* The fifth example: no action, no enabled: drop and enabled. */
        expect_ok("{ \"rule_type\": \"icmp\", \"protocol\": \"icmp\", \"icmp_type\": 3, "
                  "\"inner_protocol\": \"udp\", \"inner_dst_ip\": \"\", \"comment\": \"x\" }", &f);
        cr_assert_eq(f.action, FILTER_DROP);
        cr_assert(f.enabled);
        cr_assert_eq(f.inner_protocol, IPPROTO_UDP);
        cr_assert_not(f.has_inner_dst);
        cr_assert_eq(f.icmp_code, ICMP_ANY);
        filter_done(&f);
        /* protocol follows rule_type */
        expect_ok("{ \"rule_type\": \"icmp\", \"icmp_type\": 8, \"icmp_code\": 0 }", &f);
        cr_assert_eq(f.protocol, IPPROTO_ICMP);
        cr_assert_eq(f.icmp_code, 0);
        filter_done(&f);
        expect_ok("{ \"rule_type\": \"tcp\", \"dst_port\": 23 }", &f);
        cr_assert_eq(f.protocol, IPPROTO_TCP);
        cr_assert_eq(f.dst_port.lo, 23);
        cr_assert_eq(f.dst_port.hi, 23);
        cr_assert(port_range_is_any(f.src_port));
        filter_done(&f);
        expect_ok("{}", &f);
        cr_assert_eq(f.protocol, PROTO_ANY);
        filter_done(&f);
        /* tcp_flags alone means "these flags set" */
        expect_ok("{ \"rule_type\": \"tcp\", \"tcp_flags\": 18 }", &f);
        cr_assert_eq(f.tcp_flags_mask, 18);
        filter_done(&f);
}

Test(filter, fields_good_values) {
        Filter f;

        expect_ok("{ \"protocol\": \"udp\", \"src_ip\": \"2001:db8::/32\", \"dst_ip\": \"any\", "
                  "\"src_port\": \"1024-65535\", \"dst_port\": \"53\", \"priority\": -5, "
                  "\"timeout\": 60, \"action\": \"count\", \"enabled\": 0 }", &f);
        cr_assert(f.has_src);
        cr_assert_eq(f.src.prefixlen, 32);
        cr_assert_not(f.has_dst);
        cr_assert_eq(f.src_port.lo, 1024);
        cr_assert_eq(f.src_port.hi, 65535);
        cr_assert_eq(f.dst_port.lo, 53);
        cr_assert_eq(f.priority, -5);
        cr_assert_eq(f.timeout_sec, 60);
        cr_assert_eq(f.action, FILTER_COUNT);
        cr_assert_not(f.enabled);
        filter_done(&f);
        expect_ok("{ \"protocol\": 47 }", &f);
        cr_assert_eq(f.protocol, 47);
        filter_done(&f);
        expect_ok("{ \"rule_type\": \"icmp\", \"protocol\": \"icmpv6\", \"icmp_type\": 1, "
                  "\"inner_protocol\": \"tcp\", \"inner_dst_port\": 443, "
                  "\"inner_src_ip\": \"2001:db8::1\" }", &f);
        cr_assert_eq(f.protocol, IPPROTO_ICMPV6);
        cr_assert_eq(f.inner_dst_port.lo, 443);
        filter_done(&f);
}

Test(filter, every_field_wrong_in_turn) {
        expect_bad("{ \"rule_type\": \"http\" }", "field 'rule_type': unknown value 'http'; accepted: basic, tcp, udp, icmp");
        expect_bad("{ \"rule_type\": 3 }", "field 'rule_type' is an integer");
        expect_bad("{ \"protocol\": \"tcpp\" }", "field 'protocol': unknown protocol 'tcpp'");
        expect_bad("{ \"protocol\": 256 }", "field 'protocol': 256 is out of range");
        expect_bad("{ \"protocol\": true }", "field 'protocol' is a boolean");
        expect_bad("{ \"src_ip\": \"10.0.0.0/33\" }", "field 'src_ip': bad prefix length");
        expect_bad("{ \"src_ip\": \"10.1.0.0/8\" }", "bits set beyond its prefix length");
        expect_bad("{ \"dst_ip\": \"example.org\" }", "field 'dst_ip': 'example.org' is not an address");
        expect_bad("{ \"dst_ip\": 7 }", "field 'dst_ip' is an integer");
        expect_bad("{ \"protocol\": \"tcp\", \"src_port\": 70000 }", "field 'src_port': 70000 is out of range");
        expect_bad("{ \"protocol\": \"tcp\", \"dst_port\": \"9000-8000\" }", "field 'dst_port': '9000-8000' is not a port or range");
        expect_bad("{ \"protocol\": \"tcp\", \"dst_port\": -1 }", "out of range");
        expect_bad("{ \"protocol\": \"tcp\", \"dst_port\": 1.5 }", "field 'dst_port' is a number with a fraction");
        expect_bad("{ \"dst_port\": 22 }", "need protocol tcp, udp");
        expect_bad("{ \"protocol\": \"tcp\", \"tcp_flags\": 300 }", "field 'tcp_flags': 300 is out of range");
        expect_bad("{ \"protocol\": \"tcp\", \"tcp_flags\": 3, \"tcp_flags_mask\": 1 }", "bits outside 'tcp_flags_mask'");
        expect_bad("{ \"protocol\": \"udp\", \"tcp_flags\": 2 }", "need protocol tcp");
        expect_bad("{ \"rule_type\": \"icmp\", \"icmp_type\": 256 }", "field 'icmp_type': 256 is out of range");
        expect_bad("{ \"rule_type\": \"icmp\", \"icmp_code\": \"x\" }", "field 'icmp_code': 'x' is not a number");
        expect_bad("{ \"protocol\": \"tcp\", \"icmp_type\": 8 }", "need protocol icmp or icmpv6");
        expect_bad("{ \"rule_type\": \"tcp\", \"protocol\": \"udp\" }", "must be tcp for rule_type tcp");
        expect_bad("{ \"rule_type\": \"icmp\", \"protocol\": \"tcp\" }", "must be icmp or icmpv6");
        expect_bad("{ \"rule_type\": \"icmp\", \"icmp_type\": 8, \"inner_protocol\": \"udp\" }", "need an ICMP error type");
        expect_bad("{ \"protocol\": \"udp\", \"inner_protocol\": \"udp\" }", "they need protocol icmp or icmpv6");
        expect_bad("{ \"rule_type\": \"icmp\", \"inner_dst_port\": 53 }", "need inner_protocol tcp, udp");
        expect_bad("{ \"rule_type\": \"icmp\", \"inner_src_ip\": \"::/200\" }", "field 'inner_src_ip': bad prefix length");
        expect_bad("{ \"rule_type\": \"icmp\", \"inner_protocol\": \"zzz\" }", "field 'inner_protocol': unknown protocol");
        expect_bad("{ \"action\": \"reject\" }", "field 'action': unknown value 'reject'; accepted: drop, pass, count");
        expect_bad("{ \"action\": 1 }", "field 'action' is an integer");
        expect_bad("{ \"enabled\": \"maybe\" }", "field 'enabled' is a string; accepted: true or false");
        expect_bad("{ \"comment\": 5 }", "field 'comment' is an integer; accepted: a string");
        expect_bad("{ \"priority\": 2000000 }", "field 'priority': 2000000 is out of range");
        expect_bad("{ \"timeout\": -1 }", "field 'timeout'");
        expect_bad("{ \"id\": 4 }", "field 'id' is assigned by the daemon");
        expect_bad("{ \"hits\": 4 }", "field 'hits' is read-only");
        expect_bad("{ \"colour\": \"red\" }", "unknown field 'colour'; accepted: rule_type");
        expect_bad("[1]", "a rule must be a JSON object, got an array");
        expect_bad("{ \"src_ip\": \"10.0.0.1\", \"dst_ip\": \"::1\" }", "different address families");
        expect_bad("{ \"protocol\": \"icmp\", \"src_ip\": \"::1\" }", "icmp is IPv4 only");
}

Test(filter, long_comment) {
        char *json = malloc(1200), *err = NULL;
        Filter f;

        strcpy(json, "{\"comment\": \"");
        memset(json + 13, 'a', 1100);
        strcpy(json + 1113, "\"}");
        filter_init(&f);
        cr_assert_eq(parse(json, &f, 0, &err), -EINVAL);
        cr_assert(strstr(err, "accepted: at most 1024"), "%s", err);
        free(err);
        free(json);
}

Test(filter, update_merges_and_keeps_id) {
        Filter f;
        char *err = NULL;

        expect_ok("{ \"rule_type\": \"tcp\", \"dst_port\": 23, \"comment\": \"telnet\" }", &f);
        f.id = 0;
        cr_assert_eq(parse("{\"id\": 0, \"action\": \"drop\", \"enabled\": false, \"comment\": "
                           "\"Temporarily disabled\"}", &f, FILTER_PARSE_UPDATE, &err), 0, "%s", err);
        cr_assert_not(f.enabled);
        cr_assert_str_eq(f.comment, "Temporarily disabled");
        cr_assert_eq(f.dst_port.lo, 23);
        cr_assert_eq(f.protocol, IPPROTO_TCP);
        cr_assert_eq(parse("{\"id\": 3}", &f, FILTER_PARSE_UPDATE, &err), -EINVAL);
        cr_assert(strstr(err, "cannot be changed"));
        free(err);
        filter_done(&f);
}

/* Every field a rule has, in the form an export writes it: what goes in must come out. */
static const char *const every_field[] = {
        "{\"id\": 12, \"rule_type\": \"icmp\", \"protocol\": \"icmp\", "
        "\"src_ip\": \"198.51.100.0/24\", \"dst_ip\": \"192.0.2.7\", \"icmp_type\": 3, "
        "\"icmp_code\": 3, \"inner_src_ip\": \"192.0.2.7\", "
        "\"inner_dst_ip\": \"198.51.100.0/25\", \"inner_protocol\": \"udp\", "
        "\"inner_src_port\": \"1024-2047\", \"inner_dst_port\": 53, \"action\": \"count\", "
        "\"enabled\": false, \"log\": false, \"comment\": \"dns errors \\u00e9\", "
        "\"priority\": -7, \"timeout_sec\": 30, \"expires_usec\": 1700000030000000, "
        "\"created_usec\": 1700000000000000, \"hits\": 0, \"bytes\": 0, \"last_hit_usec\": 0}",
        "{\"id\": 4000000000, \"rule_type\": \"tcp\", \"protocol\": \"tcp\", "
        "\"src_ip\": \"2001:db8:1::/48\", \"dst_ip\": \"2001:db8::1\", "
        "\"src_port\": \"1024-65535\", \"dst_port\": 22, \"tcp_flags\": 2, "
        "\"tcp_flags_mask\": 18, \"action\": \"pass\", \"enabled\": true, \"log\": true, "
        "\"comment\": \"\", \"priority\": 1000000, \"timeout_sec\": 0, \"expires_usec\": 0, "
        "\"created_usec\": 1, \"hits\": 0, \"bytes\": 0, \"last_hit_usec\": 0}",
        "{\"id\": 0, \"rule_type\": \"basic\", \"protocol\": \"gre\", "
        "\"dst_ip\": \"10.0.0.0/8\", \"action\": \"drop\", \"enabled\": true, \"log\": true, "
        "\"comment\": \"x\", \"priority\": -1000000, \"timeout_sec\": 31622400, "
        "\"expires_usec\": 1731622400000000, \"created_usec\": 1700000000000000, \"hits\": 0, "
        "\"bytes\": 0, \"last_hit_usec\": 0}",
        "{\"id\": 5, \"rule_type\": \"icmp\", \"protocol\": \"icmpv6\", \"icmp_type\": 1, "
        "\"icmp_code\": 4, \"inner_src_ip\": \"2001:db8::/64\", "
        "\"inner_dst_ip\": \"2001:db8:9::9\", \"inner_protocol\": \"tcp\", "
        "\"inner_src_port\": 33000, \"inner_dst_port\": \"8000-8999\", \"action\": \"drop\", "
        "\"enabled\": true, \"log\": false, \"comment\": \"\", \"priority\": 0, "
        "\"timeout_sec\": 0, \"expires_usec\": 0, \"created_usec\": 9, \"hits\": 0, "
        "\"bytes\": 0, \"last_hit_usec\": 0}",
};

/* Compares a rule's JSON with the document it came from: every key of `want` is in `got`
 * with an equal value, and `got` has no key `want` lacks when `exact`. */
static void expect_fields(const char *what, json_t *want, json_t *got, bool exact) {
        const char *key;
        json_t *v;

        json_object_foreach(want, key, v) {
                json_t *g = json_object_get(got, key);
                char *a = json_dumps(v, JSON_ENCODE_ANY), *b = g ? json_dumps(g, JSON_ENCODE_ANY) : NULL;

                cr_expect(g && json_equal(v, g), "%s: field '%s' went in as %s, came out as %s",
                          what, key, a, b ? b : "(missing)");
                free(a);
                free(b);
        }
        if (exact)
                json_object_foreach(got, key, v)
                        cr_expect_not_null(json_object_get(want, key), "%s: unexpected field '%s'",
                                           what, key);
}

Test(filter, json_round_trip) {
        for (size_t i = 0; i < ELEMENTSOF(every_field); i++) {
                json_error_t je;
                json_t *in = json_loads(every_field[i], 0, &je), *out;
                char *err = NULL;
                Filter f;

                cr_assert_not_null(in, "%s", je.text);
                filter_init(&f);
                cr_assert_eq(filter_from_json(&f, in, FILTER_PARSE_IMPORT, &err), 0, "%s: %s",
                             every_field[i], err ? err : "");
                out = filter_to_json(&f);
                expect_fields(every_field[i], in, out, true);
                json_decref(in);
                json_decref(out);
                filter_done(&f);
        }
}

/* The Guarder's own rules: each field it wrote reads back as written. */
Test(filter, guarder_examples_round_trip) {
        static const char *const names[] = {
                "01-ping-request-disabled", "02-dest-unreachable", "03-source-quench",
                "04-dest-unreachable-inner-udp", "05-dns-errors", "06-udp-traceroute",
                "07-echo-request-all", "08-telnet", "09-rpc", "10-smb", "11-netbios", "12-mssql",
                "13-mysql", "14-rdp", "15-vnc", "16-ping-request", "17-syn-scan",
        };

        for (size_t i = 0; i < ELEMENTSOF(names); i++) {
                char path[512], *err = NULL;
                json_error_t je;
                json_t *in, *out;
                Filter f;

                snprintf(path, sizeof path, "%s/%s.json", GUARDER_DIR, names[i]);
                in = json_load_file(path, 0, &je);
                cr_assert_not_null(in, "%s: %s", path, je.text);
                filter_init(&f);
                cr_assert_eq(filter_from_json(&f, in, 0, &err), 0, "%s: %s", path, err ? err : "");
                out = filter_to_json(&f);
                /* An empty address is any: left out of the output. */
                cr_expect_null(json_object_get(out, "inner_dst_ip"), "%s", path);
                (void) json_object_del(in, "inner_dst_ip");
                expect_fields(path, in, out, false);
                json_decref(in);
                json_decref(out);
                filter_done(&f);
        }
}

static const char *const wildcard_keys[] = {
        "src_ip", "dst_ip", "src_port", "dst_port", "tcp_flags", "tcp_flags_mask", "icmp_type",
        "icmp_code", "inner_src_ip", "inner_dst_ip", "inner_protocol", "inner_src_port",
        "inner_dst_port", "timeout", "expires", "created", "last_hit",
};

/* The defaults a Guarder rule leaves out, as the manual gives them. */
Test(filter, omitted_fields_read_back_as_documented) {
        json_t *in = json_loads("{\"rule_type\": \"udp\"}", 0, NULL), *out, *want;
        char *err = NULL;
        Filter f;

        filter_init(&f);
        cr_assert_eq(filter_from_json(&f, in, 0, &err), 0, "%s", err ? err : "");
        out = filter_to_json(&f);
        want = json_loads("{\"rule_type\": \"udp\", \"protocol\": \"udp\", \"action\": "
                          "\"drop\", \"enabled\": true, \"log\": true, \"comment\": \"\", "
                          "\"priority\": 0, \"timeout_sec\": 0, \"expires_usec\": 0}", 0, NULL);
        cr_assert_not_null(want);
        expect_fields("defaults", want, out, false);
        /* What matches anything is left out, not spelled. */
        for (size_t i = 0; i < ELEMENTSOF(wildcard_keys); i++)
                cr_expect_null(json_object_get(out, wildcard_keys[i]), "defaults: '%s' is there",
                               wildcard_keys[i]);
        json_decref(in);
        json_decref(out);
        json_decref(want);
        filter_done(&f);
}

Test(filter, port_blocks_cover_exactly) {
        uint16_t v[40], m[40];

        srand(7);
        for (int t = 0; t < 2000; t++) {
                uint32_t a = (uint32_t) rand() % 65536, b = (uint32_t) rand() % 65536;
                PortRange r = { (uint16_t) MIN(a, b), (uint16_t) MAX(a, b) };
                size_t n = port_range_blocks(r, v, m, 40);

                cr_assert_leq(n, 32);
                /* Check a sample of ports in and around the range against the blocks. */
                for (int k = 0; k < 64; k++) {
                        uint32_t p = (uint32_t) rand() % 65536;
                        bool in = p >= r.lo && p <= r.hi, hit = false;

                        if (k == 0) p = r.lo, in = true;
                        if (k == 1) p = r.hi, in = true;
                        for (size_t i = 0; i < n; i++)
                                if ((p & m[i]) == v[i])
                                        hit = true;
                        cr_assert_eq(in, hit, "port %u, range %u-%u", p, r.lo, r.hi);
                }
        }
        cr_assert_eq(port_range_blocks((PortRange) { 0, 65535 }, v, m, 40), 1);
        cr_assert_eq(m[0], 0);
        /* 8000-8063, 8064-8191, 8192-8703, 8704-8959, 8960-8991, 8992-8999 */
        cr_assert_eq(port_range_blocks((PortRange) { 8000, 8999 }, v, m, 40), 6);
        cr_assert_eq(v[2], 8192);
        cr_assert_eq(m[2], (uint16_t) ~511);
}

/* --- compiled tuple-space lookup, simulated in C, against the reference matcher --- */

static int cmp_key(const void *a, const void *b) {
        return memcmp(a, &((const FilterEntry *) b)->key, sizeof(struct ps_filter_key));
}

static void tss_classify(const FilterSet *s, const struct ps_match *p, uint64_t *ret_rank,
                         uint32_t *ret_slot, uint32_t *ret_count_slot) {
        uint64_t best = 0, cbest = 0;
        uint32_t slot = UINT32_MAX, cslot = UINT32_MAX;

        for (uint32_t i = 0; i < s->n_shapes; i++) {
                struct ps_filter_key k = { .shape = i };
                const uint8_t *pm = (const uint8_t *) p, *mm = (const uint8_t *) &s->masks[i];
                uint8_t *km = (uint8_t *) &k.match;
                const FilterEntry *e;

                for (size_t b = 0; b < sizeof(struct ps_match); b++)
                        km[b] = pm[b] & mm[b];
                e = bsearch(&k, s->entries, s->n_entries, sizeof(FilterEntry), cmp_key);
                if (!e)
                        continue;
                if (e->value.rank > best) {
                        best = e->value.rank;
                        slot = e->value.slot;
                }
                if (e->value.count_rank > cbest) {
                        cbest = e->value.count_rank;
                        cslot = e->value.count_slot;
                }
        }
        *ret_rank = best;
        *ret_slot = slot;
        *ret_count_slot = cbest > best ? cslot : UINT32_MAX;
}

Test(filter, compiled_set_agrees_with_reference) {
        struct ref_rng g = { 12345 };
        unsigned disagreements = 0, cases = 0, drops = 0;

        for (int round = 0; round < 200; round++) {
                struct ref_rule rr[40];
                Filter *ptrs[40];
                size_t n = 1 + ref_rnd(&g, 40);
                FilterSet set;
                char *err = NULL;
                int r;

                for (size_t i = 0; i < n; i++) {
                        ref_random_rule(&g, &rr[i], (uint32_t) i);
                        ptrs[i] = ref_filter(&rr[i]);
                }
                /* over the shape limit: fewer rules, as a user would have to */
                while ((r = filter_compile(ptrs, n, &set, &err)) == -E2BIG && n > 1) {
                        free(err);
                        err = NULL;
                        filter_free(ptrs[--n]);
                }
                cr_assert_eq(r, 0, "%s", err ? err : "");
                for (int k = 0; k < 100; k++) {
                        const struct ref_rule *d, *c;
                        struct ref_pkt p;
                        struct ps_match m;
                        uint64_t rank;
                        uint32_t slot, cslot;

                        ref_random_pkt(&g, &p);
                        m = ref_to_match(&p);
                        ref_classify(rr, n, &p, &d, &c);
                        tss_classify(&set, &m, &rank, &slot, &cslot);
                        cases++;
                        drops += d && d->action == REF_DROP;
                        if ((d ? d->id : UINT32_MAX) != slot || (c ? c->id : UINT32_MAX) != cslot)
                                disagreements++;
                }
                filter_set_done(&set);
                for (size_t i = 0; i < n; i++)
                        filter_free(ptrs[i]);
        }
        cr_assert_eq(cases, 20000);
        cr_assert_gt(drops, 2000, "only %u of %u cases drop", drops, cases);
        cr_assert_eq(disagreements, 0, "%u of %u cases disagree", disagreements, cases);
}

/* Which packets look a shape up (its classes) and which key it is looked up with: what the
 * daemon writes into the bank for the kernel to skip on. One rule per set, exact answers. */
Test(filter, shape_classes_and_short_keys) {
        static const struct {
                const char *json;
                uint8_t classes;
                bool key4;
        } cases[] = {
                { "{\"protocol\": \"tcp\", \"dst_port\": 22}", PS_CLASS_V4_TCP | PS_CLASS_V6_TCP, true },
                { "{\"src_ip\": \"192.0.2.0/24\"}", PS_CLASS_V4, true },
                { "{\"src_ip\": \"2001:db8::/32\", \"protocol\": \"udp\"}", PS_CLASS_V6_UDP, true },
                { "{\"dst_ip\": \"2001:db8::/33\"}", PS_CLASS_V6, false },
                { "{\"rule_type\": \"icmp\", \"icmp_type\": 8}", PS_CLASS_V4_ICMP, true },
                { "{\"protocol\": \"icmpv6\", \"icmp_type\": 128}", PS_CLASS_V6_ICMP, true },
                { "{\"protocol\": \"gre\"}", PS_CLASS_V4_OTHER | PS_CLASS_V6_OTHER, true },
                { "{\"dst_ip\": \"2001:db8::1\", \"protocol\": \"sctp\"}", PS_CLASS_V6_OTHER, false },
                { "{\"protocol\": \"icmpv6\", \"icmp_type\": 1, \"inner_protocol\": \"udp\", "
                  "\"inner_dst_ip\": \"2001:db8:ff::/64\"}", PS_CLASS_V6_ICMP, false },
                { "{\"rule_type\": \"icmp\", \"icmp_type\": 3, \"inner_protocol\": \"udp\", "
                  "\"inner_src_ip\": \"198.51.100.0/24\"}", PS_CLASS_V4_ICMP, true },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                Filter f, *fp = &f;
                FilterSet set;
                char *err = NULL;

                expect_ok(cases[i].json, &f);
                cr_assert_eq(filter_compile(&fp, 1, &set, &err), 0, "%s: %s", cases[i].json,
                             err ? err : "");
                cr_assert_eq(set.n_shapes, 1);
                cr_assert_eq(set.n_entries, 1);
                cr_assert_eq(filter_entry_classes(&set.masks[0], &set.entries[0].key.match),
                             cases[i].classes, "%s: classes %#x, want %#x", cases[i].json,
                             filter_entry_classes(&set.masks[0], &set.entries[0].key.match),
                             cases[i].classes);
                cr_assert_eq(filter_mask_key4(&set.masks[0]), cases[i].key4, "%s", cases[i].json);
                filter_set_done(&set);
                filter_done(&f);
        }
}

/* On random sets: every entry a packet finds is in a shape whose classes hold the packet's
 * class (a skipped shape never held its verdict), and a short-key shape loses nothing of its
 * keys (address words 1-3 are zero in all of them). */
Test(filter, shape_classes_cover_every_hit) {
        struct ref_rng g = { 4711 };
        unsigned hits = 0, short_hits = 0, v6_short_hits = 0;

        for (int round = 0; round < 200; round++) {
                struct ref_rule rr[40];
                Filter *ptrs[40];
                size_t n = 1 + ref_rnd(&g, 40);
                uint8_t classes[PS_FILTER_MAX_SHAPES] = { 0 };
                FilterSet set;
                char *err = NULL;
                int r;

                for (size_t i = 0; i < n; i++) {
                        ref_random_rule(&g, &rr[i], (uint32_t) i);
                        ptrs[i] = ref_filter(&rr[i]);
                }
                while ((r = filter_compile(ptrs, n, &set, &err)) == -E2BIG && n > 1) {
                        free(err);
                        err = NULL;
                        filter_free(ptrs[--n]);
                }
                cr_assert_eq(r, 0, "%s", err ? err : "");
                for (size_t e = 0; e < set.n_entries; e++) {
                        const FilterEntry *x = &set.entries[e];
                        const struct ps_match *k = &x->key.match;

                        classes[x->key.shape] |= filter_entry_classes(&set.masks[x->key.shape], k);
                        if (filter_mask_key4(&set.masks[x->key.shape]))
                                for (int w = 1; w < 4; w++)
                                        cr_assert_eq(k->src[w] | k->dst[w] | k->inner_src[w] |
                                                     k->inner_dst[w], 0);
                }
                for (int t = 0; t < 100; t++) {
                        struct ref_pkt p;
                        struct ps_match m;
                        uint8_t class;

                        ref_random_pkt(&g, &p);
                        m = ref_to_match(&p);
                        class = ps_filter_class(m.family, m.proto);
                        cr_assert_neq(class, 0);
                        for (size_t e = 0; e < set.n_entries; e++) {
                                const FilterEntry *x = &set.entries[e];
                                const uint8_t *pm = (const uint8_t *) &m;
                                const uint8_t *mm = (const uint8_t *) &set.masks[x->key.shape];
                                const uint8_t *km = (const uint8_t *) &x->key.match;
                                bool hit = true;

                                for (size_t b = 0; b < sizeof m && hit; b++)
                                        hit = (pm[b] & mm[b]) == km[b];
                                if (!hit)
                                        continue;
                                hits++;
                                if (filter_mask_key4(&set.masks[x->key.shape])) {
                                        short_hits++;
                                        v6_short_hits += m.family == PS_FAMILY_IPV6;
                                }
                                cr_assert(classes[x->key.shape] & class,
                                          "round %d: a packet of class %#x hits shape %u of "
                                          "classes %#x", round, class, x->key.shape,
                                          classes[x->key.shape]);
                        }
                }
                filter_set_done(&set);
                for (size_t i = 0; i < n; i++)
                        filter_free(ptrs[i]);
        }
        /* The sets must hit both kinds of shapes, and IPv6 packets short-key ones. */
        cr_assert_gt(hits - short_hits, 500, "%u hits of full-key shapes", hits - short_hits);
        cr_assert_gt(short_hits, 500, "%u hits of short-key shapes", short_hits);
        cr_assert_gt(v6_short_hits, 100, "%u IPv6 hits of short-key shapes", v6_short_hits);
}

/* --- one rule at a time: the index the daemon keeps, against the reference matcher --- */

/* What the kernel would find with the index's entries: as tss_classify(). */
static void index_classify(const FilterIndex *ix, const struct ps_match *p, uint32_t *ret_slot,
                           uint32_t *ret_count_slot) {
        uint64_t best = 0, cbest = 0;
        uint32_t slot = UINT32_MAX, cslot = UINT32_MAX;

        for (uint32_t i = 0; i < ix->n_shapes; i++) {
                struct ps_filter_key k = { .shape = i };
                const uint8_t *pm = (const uint8_t *) p, *mm = (const uint8_t *) &ix->masks[i];
                uint8_t *km = (uint8_t *) &k.match;
                struct ps_filter_value v;

                for (size_t b = 0; b < sizeof(struct ps_match); b++)
                        km[b] = pm[b] & mm[b];
                if (!filter_index_value(ix, &k, &v))
                        continue;
                if (v.rank > best) {
                        best = v.rank;
                        slot = v.slot;
                }
                if (v.count_rank > cbest) {
                        cbest = v.count_rank;
                        cslot = v.count_slot;
                }
        }
        *ret_slot = slot;
        *ret_count_slot = cbest > best ? cslot : UINT32_MAX;
}

#define INDEX_RULES_MAX 48

/* Random adds, removals and updates, one rule at a time, each checked on random packets
 * against the reference matcher over the list as it then is, and the index's entry count
 * against a compile of that list from scratch. */
Test(filter, single_changes_agree_with_reference) {
        struct ref_rng g = { 2024 };
        unsigned cases = 0, disagreements = 0, drops = 0, ops[3] = {};

        for (int round = 0; round < 40; round++) {
                struct ref_rule rr[INDEX_RULES_MAX];
                Filter *ptrs[INDEX_RULES_MAX];
                size_t n = ref_rnd(&g, 24);
                uint32_t next_id = 0;
                FilterIndex ix;
                FilterSet set;
                char *err = NULL;
                int r;

                n = ref_random_indexed(&g, rr, ptrs, n, &next_id, &set, &ix);
                filter_set_done(&set);

                for (int op = 0; op < 25; op++) {
                        int kind = (int) ref_rnd(&g, 3);
                        FilterDelta d = {};
                        size_t i = n ? ref_rnd(&g, (uint32_t) n) : 0;

                        if (kind == 0 || n == 0) {
                                if (n == INDEX_RULES_MAX)
                                        continue;
                                ref_random_rule(&g, &rr[n], next_id++);
                                ptrs[n] = ref_filter(&rr[n]);
                                r = filter_index_add(&ix, ptrs[n], &d, &err);
                                if (r == -E2BIG) { /* one shape too many: refused whole */
                                        free(err);
                                        err = NULL;
                                        filter_free(ptrs[n]);
                                        filter_delta_done(&d);
                                        continue;
                                }
                                cr_assert_eq(r, 0, "add: %d %s", r, err ? err : "");
                                n++;
                                ops[0]++;
                        } else if (kind == 1) {
                                cr_assert_eq(filter_index_remove(&ix, ptrs[i], &d), 0);
                                filter_free(ptrs[i]);
                                memmove(ptrs + i, ptrs + i + 1, (n - i - 1) * sizeof(Filter *));
                                memmove(rr + i, rr + i + 1, (n - i - 1) * sizeof(rr[0]));
                                n--;
                                ops[1]++;
                        } else {
                                /* Update: other fields, the same id, age and slot. */
                                struct ref_rule nr;
                                Filter *nf;

                                ref_random_rule(&g, &nr, rr[i].id);
                                nr.created = rr[i].created;
                                nf = ref_filter(&nr);
                                cr_assert_eq(filter_index_remove(&ix, ptrs[i], &d), 0);
                                r = filter_index_add(&ix, nf, &d, &err);
                                if (r == -E2BIG) {
                                        free(err);
                                        err = NULL;
                                        filter_free(nf);
                                        cr_assert_eq(filter_index_add(&ix, ptrs[i], &d, NULL), 0);
                                        filter_delta_done(&d);
                                        continue;
                                }
                                cr_assert_eq(r, 0, "update: %d %s", r, err ? err : "");
                                filter_free(ptrs[i]);
                                ptrs[i] = nf;
                                rr[i] = nr;
                                ops[2]++;
                        }
                        filter_delta_done(&d);

                        cr_assert_eq(filter_compile(ptrs, n, &set, &err), 0, "%s", err ? err : "");
                        cr_assert_eq(ix.n_entries, set.n_entries, "round %d op %d", round, op);
                        filter_set_done(&set);
                        for (int k = 0; k < 30; k++) {
                                const struct ref_rule *dr, *cr;
                                struct ref_pkt p;
                                struct ps_match m;
                                uint32_t slot, cslot;

                                ref_random_pkt(&g, &p);
                                m = ref_to_match(&p);
                                ref_classify(rr, n, &p, &dr, &cr);
                                index_classify(&ix, &m, &slot, &cslot);
                                cases++;
                                drops += dr && dr->action == REF_DROP;
                                if ((dr ? dr->id : UINT32_MAX) != slot ||
                                    (cr ? cr->id : UINT32_MAX) != cslot)
                                        disagreements++;
                        }
                }
                filter_index_done(&ix);
                for (size_t i = 0; i < n; i++)
                        filter_free(ptrs[i]);
        }
        cr_assert_gt(ops[0], 200, "%u adds", ops[0]);
        cr_assert_gt(ops[1], 200, "%u removals", ops[1]);
        cr_assert_gt(ops[2], 200, "%u updates", ops[2]);
        cr_assert_gt(cases, 25000, "%u cases", cases);
        cr_assert_gt(drops, cases / 10, "only %u of %u cases drop", drops, cases);
        cr_assert_eq(disagreements, 0, "%u of %u cases disagree", disagreements, cases);
}

/* Rules added at the same place again and again (the newest of one priority, the case of
 * every Add) use up the rank gap slowly: thousands fit before the whole set must be
 * compiled again, and then the index says so (-ERANGE) instead of misordering them. */
Test(filter, ranks_between_neighbours_last) {
        Filter *f = NULL;
        FilterIndex ix;
        FilterSet set;
        char *err = NULL;
        unsigned added = 0;
        int r = 0;

        cr_assert_eq(filter_compile_indexed(NULL, 0, &set, &ix, &err), 0);
        filter_set_done(&set);
        for (uint32_t id = 0; id < 100000; id++) {
                FilterDelta d = {};

                f = filter_new();
                cr_assert_not_null(f);
                f->id = f->slot = id;
                f->created_usec = 1000 + id;
                f->protocol = IPPROTO_TCP;
                f->dst_port = (PortRange) { (uint16_t) (1 + id % 60000), (uint16_t) (1 + id % 60000) };
                r = filter_index_add(&ix, f, &d, &err);
                filter_delta_done(&d);
                filter_free(f);
                if (r < 0)
                        break;
                added++;
        }
        /* 64-bit ranks, a gap shrinking by 1/1024 per rule: about 40,000 at the bottom of an
         * empty set, then no rank is left and the index says so. */
        cr_assert_gt(added, 30000, "only %u rules added in a row", added);
        cr_assert_lt(added, 100000);
        cr_assert_eq(r, -ERANGE, "%d", r);
        /* Every rank stays strictly ordered. */
        for (size_t i = 1; i < ix.n_order; i++)
                cr_assert_gt(ix.order[i - 1].rank, ix.order[i].rank);
        filter_index_done(&ix);
}

Test(filter, limits_are_named) {
        Filter f, *p = &f;
        FilterSet set;
        char *err = NULL;

        filter_init(&f);
        f.protocol = IPPROTO_TCP;
        f.src_port = (PortRange) { 1, 65534 };
        f.dst_port = (PortRange) { 1, 65534 };
        f.id = 9;
        cr_assert_eq(filter_compile(&p, 1, &set, &err), -E2BIG);
        /* 30 source blocks x 30 destination blocks: far more shapes than allowed */
        cr_assert(strstr(err, "rule 9 needs one more distinct rule shape"), "%s", err);
        free(err);
}

/* "log": one line of the field table gives a rule field its JSON key, its bus property, its
 * client option, its default, its checks and its place in an Update's PropertiesChanged. */
Test(filter, log_field) {
        const RuleField *d = rule_field_by_key("log");
        char **props = rule_changing_properties();
        bool changes = false;
        Filter f, g;
        json_t *out;

        cr_assert_not_null(d);
        cr_assert_eq(d, rule_field_by_property("Log"));
        cr_assert_eq(d, rule_field_by_option("log"));
        cr_assert_eq(d->bus_type, 'b');
        for (size_t i = 0; props[i]; i++)
                changes = changes || strcmp(props[i], "Log") == 0;
        cr_assert(changes, "an Update announces Log in PropertiesChanged");
        cr_assert(strstr(rule_known_fields(), "enabled, log, comment"),
                  "known fields: %s", rule_known_fields());

        /* Omitted: true, so that the drops of every rule are logged as before. */
        expect_ok("{\"rule_type\": \"tcp\", \"dst_port\": 23}", &f);
        cr_assert(f.log);
        out = filter_to_json(&f);
        cr_assert(json_is_true(json_object_get(out, "log")));
        json_decref(out);

        /* Update turns it off and keeps the rest. */
        cr_assert_eq(parse("{\"log\": false}", &f, FILTER_PARSE_UPDATE, NULL), 0);
        cr_assert_not(f.log);
        cr_assert_eq(f.dst_port.lo, 23);
        out = filter_to_json(&f);
        cr_assert(json_is_false(json_object_get(out, "log")));
        json_decref(out);
        filter_done(&f);

        /* The boolean forms every boolean field takes, and the same message for a wrong type. */
        expect_ok("{\"rule_type\": \"udp\", \"log\": \"no\"}", &g);
        cr_assert_not(g.log);
        filter_done(&g);
        expect_ok("{\"rule_type\": \"udp\", \"log\": 0}", &g);
        cr_assert_not(g.log);
        filter_done(&g);
        expect_bad("{\"log\": \"sometimes\"}", "field 'log' is a string; accepted: true or false");
        expect_bad("{\"log\": [true]}", "field 'log' is an array; accepted: true or false");
}

/* A fresh install: no ManagementAddresses=, ManagementPorts= the SSH port. */
Test(filter, lockout_without_management_addresses) {
        static const struct {
                const char *json;
                bool refused;
        } cases[] = {
                { "{\"rule_type\": \"tcp\", \"dst_port\": 22}", true },
                { "{\"rule_type\": \"tcp\", \"dst_port\": \"20-30\"}", true },
                { "{\"rule_type\": \"tcp\"}", true },
                { "{\"rule_type\": \"basic\", \"src_ip\": \"192.0.2.0/24\"}", true },
                { "{\"rule_type\": \"tcp\", \"src_ip\": \"2001:db8::/32\", \"dst_port\": 22}", true },
                { "{\"rule_type\": \"tcp\", \"tcp_flags\": 2, \"tcp_flags_mask\": 2}", true },
                { "{\"rule_type\": \"tcp\", \"dst_port\": 23}", false },
                { "{\"rule_type\": \"tcp\", \"src_port\": 22}", false },
                { "{\"rule_type\": \"udp\", \"dst_port\": 22}", false },
                { "{\"rule_type\": \"icmp\"}", false },
                { "{\"rule_type\": \"tcp\", \"dst_port\": 22, \"action\": \"pass\"}", false },
                { "{\"rule_type\": \"tcp\", \"dst_port\": 22, \"enabled\": false}", false },
                { "{\"rule_type\": \"tcp\", \"dst_port\": 22, \"force\": true}", false },
        };
        Config c;

        config_init(&c);
        cr_assert_eq(c.n_management, 0);
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                Filter f;
                char *err = NULL;
                int r;

                expect_ok(cases[i].json, &f);
                r = filter_check_lockout(&c, &f, &err);
                cr_assert_eq(r, cases[i].refused ? -EPERM : 0, "%s: %d", cases[i].json, r);
                if (cases[i].refused)
                        cr_assert(strstr(err, "to the management port 22"), "%s: %s",
                                  cases[i].json, err);
                free(err);
        }
        /* With management addresses, only they are protected. */
        cr_assert_eq(config_parse(&c, "[Filters]\nManagementAddresses=198.51.100.7\n", "m.conf",
                                  NULL), 0);
        {
                Filter f;
                char *err = NULL;

                expect_ok("{\"rule_type\": \"tcp\", \"src_ip\": \"192.0.2.0/24\"}", &f);
                cr_assert_eq(filter_check_lockout(&c, &f, &err), 0, "%s", err ? err : "");
                expect_ok("{\"rule_type\": \"tcp\", \"dst_port\": 22}", &f);
                cr_assert_eq(filter_check_lockout(&c, &f, &err), -EPERM);
                cr_assert(strstr(err, "198.51.100.7"), "%s", err);
                free(err);
        }
}

/* Every spelling of "any" and the old names of the times read as before, and print the one
 * shape; the bus a{sv} (ports as strings, 255, "any", "") comes to the same shape. */
Test(filter, old_spellings_and_bus_rows_print_one_shape) {
        static const char *const old_export =
                "{\"id\": 7, \"rule_type\": \"udp\", \"protocol\": \"udp\", \"src_ip\": \"\", "
                "\"dst_ip\": \"any\", \"src_port\": 0, \"dst_port\": \"8000-8999\", "
                "\"tcp_flags\": 0, \"tcp_flags_mask\": 0, \"icmp_type\": 255, \"icmp_code\": 255, "
                "\"inner_src_ip\": null, \"inner_protocol\": \"\", \"inner_src_port\": \"any\", "
                "\"inner_dst_port\": \"\", \"comment\": \"\\u00fcber\", \"timeout\": 60, "
                "\"expires\": 1700000060000000, \"created\": 1700000000000000, \"hits\": 3, "
                "\"bytes\": 9, \"last_hit\": 5}";
        static const char *const bus_row =
                "{\"id\": 7, \"path\": \"/org/packetscope/Guarder1/filter/7\", \"rule_type\": "
                "\"udp\", \"protocol\": \"udp\", \"src_ip\": \"\", \"dst_ip\": \"\", "
                "\"src_port\": \"any\", \"dst_port\": \"8000-8999\", \"tcp_flags\": 0, "
                "\"tcp_flags_mask\": 0, \"icmp_type\": 255, \"icmp_code\": 255, "
                "\"inner_src_ip\": \"\", \"inner_dst_ip\": \"\", \"inner_protocol\": \"any\", "
                "\"inner_src_port\": \"any\", \"inner_dst_port\": \"any\", \"action\": \"drop\", "
                "\"enabled\": true, \"log\": true, \"comment\": \"\\u00fcber\", \"priority\": 0, "
                "\"timeout\": 60, \"expires\": 1700000060000000, \"created\": 1700000000000000, "
                "\"hits\": 0, \"bytes\": 0, \"last_hit\": 0}";
        /* Written by hand from the manual's JSON OUTPUT section. */
        static const char *const want =
                "{\"action\":\"drop\",\"comment\":\"\\u00FCber\",\"created_usec\":"
                "1700000000000000,\"dst_port\":\"8000-8999\",\"enabled\":true,"
                "\"expires_usec\":1700000060000000,\"id\":7,\"log\":true,\"priority\":0,"
                "\"protocol\":\"udp\",\"rule_type\":\"udp\",\"timeout_sec\":60}";
        json_t *in = json_loads(old_export, 0, NULL), *row = json_loads(bus_row, 0, NULL), *out;
        char *err = NULL, *text;
        Filter f;

        cr_assert_not_null(in);
        cr_assert_not_null(row);
        filter_init(&f);
        cr_assert_eq(filter_from_json(&f, in, FILTER_PARSE_IMPORT, &err), 0, "%s", err ? err : "");
        out = filter_to_json(&f);
        /* The counters of an export are not read back: a fresh rule has none. */
        cr_assert_eq(json_integer_value(json_object_get(out, "hits")), 0);
        (void) json_object_del(out, "hits");
        (void) json_object_del(out, "bytes");
        (void) json_object_del(out, "last_hit_usec");
        text = json_dumps(out, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII);
        cr_expect_str_eq(text, want);
        free(text);
        json_decref(out);
        filter_done(&f);

        cr_assert_eq(filter_json_from_bus(row, &out, &err), 0, "%s", err ? err : "");
        cr_expect_str_eq(json_string_value(json_object_get(out, "path")),
                         "/org/packetscope/Guarder1/filter/7");
        cr_expect_eq(json_integer_value(json_object_get(out, "last_hit_usec")), 0);
        (void) json_object_del(out, "path");
        (void) json_object_del(out, "hits");
        (void) json_object_del(out, "bytes");
        (void) json_object_del(out, "last_hit_usec");
        text = json_dumps(out, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII);
        cr_expect_str_eq(text, want);
        free(text);
        json_decref(out);

        /* null sets a field back to any in an update. */
        filter_init(&f);
        cr_assert_eq(filter_from_json(&f, in, FILTER_PARSE_IMPORT, &err), 0);
        json_decref(in);
        in = json_loads("{\"dst_port\": null}", 0, NULL);
        cr_assert_eq(filter_from_json(&f, in, FILTER_PARSE_UPDATE, &err), 0, "%s", err ? err : "");
        cr_expect(port_range_is_any(f.dst_port));
        filter_done(&f);
        json_decref(in);
        json_decref(row);
}

/* The stored text kept with a rule: shared by an unchanged copy, never handed out once a field
 * it was made of changed (an update works on a copy), untouched by the counters. */
Test(filter, stored_text_follows_the_fields) {
        _cleanup_free_ char *err = NULL;
        json_t *in = json_loads("{\"rule_type\": \"udp\", \"src_ip\": \"192.0.2.7\", "
                                "\"dst_port\": 53, \"comment\": \"dns\"}", 0, NULL);
        json_t *up;
        Filter f, copy, other;

        filter_init(&f);
        cr_assert_eq(filter_from_json(&f, in, FILTER_PARSE_IMPORT, &err), 0, "%s", err ? err : "");
        cr_expect_null(filter_text_get(&f), "no text before one is set");
        cr_assert_eq(filter_text_set(&f, "{\"x\":1}"), 0);
        cr_expect_str_eq(filter_text_get(&f), "{\"x\":1}");

        f.hits = 5;
        f.bytes = 500;
        f.last_hit_usec = 42;
        cr_expect_str_eq(filter_text_get(&f), "{\"x\":1}", "counters do not count");

        cr_assert_eq(filter_copy(&copy, &f), 0);
        cr_expect_str_eq(filter_text_get(&copy), "{\"x\":1}", "an unchanged copy shares it");
        copy.slot = 7;
        cr_expect_null(filter_text_get(&copy), "a new slot");
        cr_expect_str_eq(filter_text_get(&f), "{\"x\":1}", "the original keeps it");
        filter_done(&copy);

        cr_assert_eq(filter_copy(&copy, &f), 0);
        up = json_loads("{\"dst_port\": 54}", 0, NULL);
        cr_assert_eq(filter_from_json(&copy, up, FILTER_PARSE_UPDATE, &err), 0);
        json_decref(up);
        cr_expect_null(filter_text_get(&copy), "an updated port");
        filter_done(&copy);

        cr_assert_eq(filter_copy(&copy, &f), 0);
        up = json_loads("{\"comment\": \"dns2\"}", 0, NULL);
        cr_assert_eq(filter_from_json(&copy, up, FILTER_PARSE_UPDATE, &err), 0);
        json_decref(up);
        cr_expect_null(filter_text_get(&copy), "an updated comment");
        filter_done(&copy);

        cr_assert_eq(filter_copy(&other, &f), 0);
        other.enabled = !other.enabled;
        cr_expect_null(filter_text_get(&other), "enabled changed");
        filter_done(&other);

        cr_expect_str_eq(filter_text_get(&f), "{\"x\":1}");
        filter_done(&f);
        json_decref(in);
}

/* ListFd's values: a string's quotes, backslashes and control bytes escaped, UTF-8 kept,
 * integers of either sign, booleans; the document must stay valid JSON whatever a comment holds. */
Test(filter, list_fd_values) {
        _cleanup_(text_buf_done) TextBuf b = {}, u = {};
        _cleanup_json_ json_t *doc = NULL;
        Filter f;

        text_buf_puts(&b, "[");
        text_buf_put_json_string(&b, "q\"b\\s\x01\x1f \xc3\xa9");
        text_buf_puts(&b, ",");
        text_buf_put_i64(&b, INT64_MIN);
        text_buf_puts(&b, ",");
        text_buf_put_i64(&b, 0);
        filter_init(&f);
        f.priority = -7;
        for (size_t i = 0; i < rule_fields_n; i++)
                if (rule_fields[i].flags & RULE_FIELD_OUTPUT) {
                        text_buf_puts(&b, ",");
                        rule_field_put_json(&b, &rule_fields[i], &f);
                }
        text_buf_puts(&b, "]");
        filter_done(&f);
        cr_assert(!b.oom);
        cr_assert(strncmp(b.data, "[\"q\\\"b\\\\s\\u0001\\u001F \xc3\xa9\",-9223372036854775808,0,",
                          strlen("[\"q\\\"b\\\\s\\u0001\\u001F \xc3\xa9\",-9223372036854775808,0,")) == 0,
                  "%s", b.data);
        doc = json_loads(b.data, 0, NULL);
        cr_assert(doc, "not JSON: %s", b.data);
        cr_assert_str_eq(json_string_value(json_array_get(doc, 0)), "q\"b\\s\x01\x1f \xc3\xa9");
        cr_assert_eq(json_integer_value(json_array_get(doc, 1)), INT64_MIN);
        cr_assert(strstr(b.data, ",-7,"), "priority -7 missing: %s", b.data);
        text_buf_put_u64(&u, UINT64_MAX);
        cr_assert_str_eq(u.data, "18446744073709551615");
}

/* filters.json's writer puts each field with rule_field_put_json_typed() where it used to dump
 * rule_field_to_json() with jansson: for rules of every shape, and comments holding every
 * escape jansson writes, the bytes must be json_dumps()'s, or files written before and after
 * would differ and a round trip through the file would change the rule. */
Test(filter, typed_values_are_json_dumps_bytes) {
        static const char *const rules[] = {
                "{\"rule_type\": \"tcp\", \"src_ip\": \"192.0.2.0/24\", \"dst_port\": 22}",
                "{\"rule_type\": \"udp\", \"dst_port\": \"8000-8999\", \"src_port\": 53, "
                "\"priority\": -7, \"action\": \"pass\", \"enabled\": false}",
                "{\"rule_type\": \"icmp\", \"icmp_type\": 8, \"icmp_code\": 0, \"log\": false, "
                "\"comment\": \"tab\\there\\nnew \\\"q\\\" \\\\ \\b\\f\\r \\u0001\\u001a\\u007f \\u00e9\"}",
                "{\"rule_type\": \"tcp\", \"tcp_flags\": 2, \"tcp_flags_mask\": 18, "
                "\"dst_ip\": \"2001:db8::/64\", \"timeout\": 60}",
                "{\"rule_type\": \"basic\", \"src_ip\": \"198.51.100.7\"}",
        };

        for (size_t k = 0; k < ELEMENTSOF(rules); k++) {
                _cleanup_json_ json_t *in = json_loads(rules[k], 0, NULL);
                char *err = NULL;
                Filter f;

                cr_assert_not_null(in, "%s", rules[k]);
                filter_init(&f);
                cr_assert_eq(filter_from_json(&f, in, 0, &err), 0, "%s: %s", rules[k],
                             err ? err : "");
                f.id = 4000000000u;
                f.created_usec = 1700000000000000;
                for (size_t i = 0; i < rule_fields_n; i++) {
                        const RuleField *d = &rule_fields[i];
                        _cleanup_(text_buf_done) TextBuf b = {};
                        _cleanup_json_ json_t *a = NULL;
                        char *want;

                        if (!(d->flags & RULE_FIELD_OUTPUT))
                                continue;
                        a = json_array();
                        cr_assert_eq(json_array_append_new(a, rule_field_to_json(d, &f)), 0);
                        want = json_dumps(a, JSON_COMPACT);
                        cr_assert_not_null(want);
                        text_buf_puts(&b, "[");
                        rule_field_put_json_typed(&b, d, &f);
                        text_buf_puts(&b, "]");
                        cr_assert(!b.oom);
                        cr_expect_str_eq(b.data, want, "rule %zu, field %s", k, d->key);
                        free(want);
                }
                filter_done(&f);
        }
}
