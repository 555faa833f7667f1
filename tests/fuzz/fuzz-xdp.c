/* SPDX-License-Identifier: MIT */
/*
 * The packet parser: the XDP program as the daemon embeds it (the same skeleton), with a rule set
 * compiled by the daemon's compiler, run under BPF_PROG_TEST_RUN on the fuzzer's bytes as one
 * frame. The kernel's verifier already proves that the program cannot read out of bounds; what
 * this checks is what the program promises about every frame:
 *   - the run succeeds for every frame the kernel accepts (14 bytes and more);
 *   - the frame comes back unmodified and the verdict is XDP_PASS or XDP_DROP;
 *   - the frame is counted once: packets +1, bytes +len, passed or dropped +1 as the verdict
 *     says, exactly one protocol bucket +1;
 *   - every drop is attributed: dropped = dropped_filter + the drops of each policy reason, and
 *     a drop by a rule is a hit of a drop rule (the hits of the drop rules' counter slots grow by
 *     exactly dropped_filter).
 * Needs root (CAP_BPF, CAP_NET_ADMIN).
 */
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <jansson.h>
#include <linux/bpf.h>
#include <stddef.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "filter-compile.h"
#include "filters.h"
#include "guard.h"
#include "guard.skel.h"

#define CHECK(x) do { if (!(x)) { fprintf(stderr, "invariant failed (frame %d of the input): %s\n", \
                                            frame_index, #x); abort(); } } while (0)
#define FRAME_MAX 3000

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/*
 * Each kind of rule the classifier knows, on addresses and ports the seed frames use (the
 * documentation prefixes, tcp/23 and friends): drops, a pass that beats a drop, a count shadow,
 * ports, ranges, flags, ICMP types, an ICMP error's quote, IPv6 prefixes short and long.
 */
static const char *const rule_text[] = {
        "{\"rule_type\": \"tcp\", \"dst_port\": 23}",
        "{\"rule_type\": \"tcp\", \"dst_port\": 23, \"src_ip\": \"192.0.2.128/25\", \"action\": \"pass\", \"priority\": 10}",
        "{\"rule_type\": \"tcp\", \"dst_port\": 22, \"action\": \"count\"}",
        "{\"rule_type\": \"udp\", \"dst_port\": \"8000-8999\"}",
        "{\"rule_type\": \"udp\", \"dst_port\": 53, \"dst_ip\": \"2001:db8::/32\"}",
        "{\"rule_type\": \"basic\", \"protocol\": \"any\", \"src_ip\": \"203.0.113.0/24\"}",
        "{\"rule_type\": \"tcp\", \"dst_port\": 25, \"tcp_flags\": 2, \"tcp_flags_mask\": 18}",
        "{\"rule_type\": \"icmp\", \"protocol\": \"icmp\", \"icmp_type\": 3, \"inner_protocol\": \"udp\"}",
        "{\"rule_type\": \"icmp\", \"protocol\": \"icmpv6\", \"icmp_type\": 128}",
        "{\"rule_type\": \"basic\", \"protocol\": \"any\", \"src_ip\": \"2001:db8:bad::/64\"}",
        "{\"rule_type\": \"icmp\", \"protocol\": \"icmp\", \"icmp_type\": 8, \"action\": \"count\"}",
        "{\"rule_type\": \"basic\", \"protocol\": 47}",
};
#define N_RULES (sizeof rule_text / sizeof rule_text[0])

/*
 * The counters a drop is attributed to: a rule, or one documented policy reason each. A new
 * reason is one line here (and in bpf/guard.h's comment on `dropped`).
 */
static const struct {
        const char *name;
        size_t offset;
} drop_reasons[] = {
        { "dropped_filter", offsetof(struct ps_stats, dropped_filter) },
#ifdef PS_POLICY_PASS_TINY_FRAGMENTS
        { "dropped_tiny_fragments", offsetof(struct ps_stats, dropped_tiny_fragments) },
        { "dropped_long_chains", offsetof(struct ps_stats, dropped_long_chains) },
        { "dropped_deep_vlan", offsetof(struct ps_stats, dropped_deep_vlan) },
#endif
#ifdef PS_PANIC_PIN_DIR
        { "dropped_panic", offsetof(struct ps_stats, dropped_panic) },
#endif
};

/*
 * libFuzzer sees the coverage of this process only, not of the BPF program. What the program did
 * with a frame is told by its counters: every counter that moved, the verdict and the rule
 * slots hit, and their combination, become extra coverage features, so that a frame taking a
 * new path through the parser is kept.
 */
#define FEATURES 4096
__attribute__((section("__libfuzzer_extra_counters"), used))
static uint8_t features[FEATURES];

static struct guard_bpf *skel;
static int frame_index; /* of the input's frames, for the messages */
static Filter *rules[N_RULES];
static int ncpus, prog_fd, stats_fd, counters_fd;
static struct ps_stats *per_cpu;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
        uint32_t state = 0;
        char *err = NULL;
        FilterSet set;

        ncpus = libbpf_num_possible_cpus();
        CHECK(ncpus > 0);
        per_cpu = calloc((size_t) ncpus, sizeof(struct ps_stats));
        CHECK(per_cpu != NULL);
        skel = guard_bpf__open();
        if (!skel) {
                perror("cannot open the XDP program's skeleton");
                exit(1);
        }
        /* Small tables: a fuzzing run creates entries without end, and a full LRU table is a
         * case worth running into too. */
        bpf_map__set_max_entries(skel->maps.flows, 4096);
        bpf_map__set_max_entries(skel->maps.icmp_flows, 1024);
        bpf_map__set_max_entries(skel->maps.icmp4_flows, 1024);
        if (guard_bpf__load(skel) < 0) {
                fprintf(stderr, "cannot load the XDP program (root needed)\n");
                exit(1);
        }
        for (size_t i = 0; i < N_RULES; i++) {
                json_error_t jerr;
                json_t *o = json_loads(rule_text[i], 0, &jerr);

                CHECK(o != NULL);
                rules[i] = calloc(1, sizeof(Filter));
                CHECK(rules[i] != NULL);
                filter_init(rules[i]);
                if (filter_from_json(rules[i], o, 0, &err) < 0) {
                        fprintf(stderr, "rule %zu: %s\n", i, err);
                        exit(1);
                }
                json_decref(o);
                rules[i]->id = (uint32_t) i;
                rules[i]->slot = (uint32_t) i;
                rules[i]->created_usec = i + 1;
        }
        CHECK(filter_compile(rules, N_RULES, &set, &err) == 0);
        CHECK(filter_kernel_load(bpf_map__fd(skel->maps.filter_state),
                                 bpf_map__fd(skel->maps.filter_banks),
                                 bpf_map__fd(skel->maps.filter_rules),
                                 bpf_map__fd(skel->maps.filter_rules4),
                                        bpf_map__fd(skel->maps.filter_gates), &state, &set) == 0);
        filter_set_done(&set);
        prog_fd = bpf_program__fd(skel->progs.xdp_guard);
        stats_fd = bpf_map__fd(skel->maps.stats);
        counters_fd = bpf_map__fd(skel->maps.filter_counters);
        return 0;
}

static void stats_read(struct ps_stats *sum) {
        uint32_t zero = 0;

        CHECK(bpf_map_lookup_elem(stats_fd, &zero, per_cpu) == 0);
        memset(sum, 0, sizeof *sum);
        /* struct ps_stats is made of __u64 only: summed word by word. */
        for (int c = 0; c < ncpus; c++)
                for (size_t w = 0; w < PS_STATS_MAP_SIZE / 8; w++)
                        ((uint64_t *) sum)[w] +=
                                ((uint64_t *) ((uint8_t *) per_cpu + c * PS_STATS_MAP_SIZE))[w];
}

/* The hits of every rule's slot into hits[]; returns the sum over the drop rules. */
static uint64_t rule_hits(uint64_t hits[N_RULES]) {
        struct ps_filter_counter c[ncpus];
        uint64_t h = 0;

        for (uint32_t i = 0; i < N_RULES; i++) {
                hits[i] = 0;
                CHECK(bpf_map_lookup_elem(counters_fd, &i, c) == 0);
                for (int k = 0; k < ncpus; k++)
                        hits[i] += c[k].hits;
                if (rules[i]->action == FILTER_DROP)
                        h += hits[i];
        }
        return h;
}

static void record_features(const struct ps_stats *before, const struct ps_stats *after,
                            const uint64_t *hits_before, const uint64_t *hits_after,
                            uint32_t verdict) {
        const size_t words = sizeof(struct ps_stats) / 8;
        uint64_t combo = verdict;

        for (size_t w = 0; w < words; w++)
                if (((const uint64_t *) after)[w] != ((const uint64_t *) before)[w]) {
                        features[w % (FEATURES / 2)]++;
                        combo = combo * 1000003 + w;
                }
        for (size_t i = 0; i < N_RULES; i++)
                if (hits_after[i] != hits_before[i]) {
                        features[(words + i) % (FEATURES / 2)]++;
                        combo = combo * 1000003 + 100000 + i;
                }
        features[FEATURES / 2 + combo % (FEATURES / 2)]++;
}

#define DELTA(field) (after.field - before.field)

static void run_frame(const uint8_t *data, size_t size) {
        static uint8_t out[FRAME_MAX + 512];
        struct ps_stats before, after;
        uint64_t hits_before[N_RULES], hits_after[N_RULES];
        uint64_t drops_before, drops_after, buckets = 0, reasons = 0;
        int r;

        LIBBPF_OPTS(bpf_test_run_opts, o,
                    .data_in = data,
                    .data_size_in = (uint32_t) size,
                    .data_out = out,
                    .data_size_out = sizeof out,
                    .repeat = 1);

        stats_read(&before);
        drops_before = rule_hits(hits_before);
        r = bpf_prog_test_run_opts(prog_fd, &o);
        if (size < 14) {
                /* Shorter than an Ethernet header: the kernel refuses to run it at all. */
                CHECK(r < 0);
                return;
        }
        if (r < 0) {
                fprintf(stderr, "BPF_PROG_TEST_RUN failed on a %zu-byte frame: %s\n", size,
                        strerror(-r));
                abort();
        }
        CHECK(o.retval == XDP_PASS || o.retval == XDP_DROP);
        CHECK(o.data_size_out == size);
        CHECK(memcmp(out, data, size) == 0);

        stats_read(&after);
        drops_after = rule_hits(hits_after);
        record_features(&before, &after, hits_before, hits_after, o.retval);
        CHECK(DELTA(packets) == 1);
        CHECK(DELTA(bytes) == size);
        CHECK(DELTA(passed) == (o.retval == XDP_PASS));
        CHECK(DELTA(dropped) == (o.retval == XDP_DROP));
        for (int b = 0; b < _PS_PROTO_MAX; b++)
                buckets += DELTA(proto_packets[b]);
        CHECK(buckets == 1);
        CHECK(DELTA(malformed) <= 1);
        CHECK(DELTA(ipv4) + DELTA(ipv6) + DELTA(non_ip) <= 1);

        for (size_t i = 0; i < sizeof drop_reasons / sizeof drop_reasons[0]; i++) {
                uint64_t d = *(const uint64_t *) ((const uint8_t *) &after + drop_reasons[i].offset) -
                             *(const uint64_t *) ((const uint8_t *) &before + drop_reasons[i].offset);

                CHECK(d <= 1);
                reasons += d;
        }
        if (reasons != DELTA(dropped)) {
                fprintf(stderr, "a drop without a reason: dropped +%llu, reasons +%llu\n",
                        (unsigned long long) DELTA(dropped), (unsigned long long) reasons);
                abort();
        }
        if (drops_after - drops_before != DELTA(dropped_filter)) {
                fprintf(stderr, "dropped_filter +%llu but the drop rules' hits +%llu\n",
                        (unsigned long long) DELTA(dropped_filter),
                        (unsigned long long) (drops_after - drops_before));
                for (size_t i = 0; i < N_RULES; i++)
                        if (hits_after[i] != hits_before[i])
                                fprintf(stderr, "  rule %zu (%s) +%llu: %s\n", i,
                                        filter_verdict_to_string(rules[i]->action),
                                        (unsigned long long) (hits_after[i] - hits_before[i]),
                                        rule_text[i]);
                fprintf(stderr, "  frame %d of the input (%zu bytes), verdict %s\n", frame_index,
                        size, o.retval == XDP_DROP ? "XDP_DROP" : "XDP_PASS");
                abort();
        }
}

/*
 * An input is up to MAX_FRAMES frames separated by FRAME_SEPARATOR, run in order: what the
 * program remembers between frames (flows, the verdicts of first fragments) is part of what is
 * fuzzed, and a failure found that way comes with the frames that lead to it.
 */
#define FRAME_SEPARATOR "-PS-"
#define MAX_FRAMES 8

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        const size_t sep = strlen(FRAME_SEPARATOR);

#ifdef PS_POLICY_PASS_TINY_FRAGMENTS
        {
                /* The policies for what the parser cannot classify whole (packetscope.conf:
                 * TinyFragments=, LongHeaderChains=) come from the input's length, so that
                 * every seed runs under each of them as the fuzzer grows and cuts it. */
                struct ps_meta meta = {
                        .abi_version = PS_ABI_VERSION,
                        .policy = (uint32_t) (size % 4),
                };
                uint32_t zero = 0;

                CHECK(bpf_map_update_elem(bpf_map__fd(skel->maps.meta), &zero, &meta, BPF_ANY) == 0);
        }
#endif

        for (frame_index = 0; frame_index < MAX_FRAMES && size > 0; frame_index++) {
                const uint8_t *end = memmem(data, size, FRAME_SEPARATOR, sep);
                size_t len = end ? (size_t) (end - data) : size;

                if (len <= FRAME_MAX)
                        run_frame(data, len);
                if (!end)
                        break;
                data = end + sep;
                size -= len + sep;
        }
        return 0;
}
