/* SPDX-License-Identifier: MIT */
/*
 * What the guard's XDP program costs per packet, measured with BPF_PROG_TEST_RUN next to two
 * references loaded in the same process and run interleaved with it, round after round:
 *   - bare: a program that bumps one per-CPU counter and passes (bench/bare.bpf.c), the floor;
 *   - flow floor: parse to the ports and one per-CPU LRU update with the coarse clock
 *     (bench/flowmin.bpf.c), the least a connection-tracking guard can do, its table filled
 *     with the same flows as the guard's;
 *   - xdp-filter: Debian's xdp-tools filter in allow-all mode with empty maps, a small real
 *     program that parses the same headers and does its lookups.
 * The guard is loaded as the daemon loads it (1,048,576 flow slots) and its flow table is first
 * filled with --flows distinct entries, so its lookups run against a big table.
 *
 * Two kinds of measurement:
 *   - hot: one packet repeated --repeat times per round, in HOT_SLICES runs taken in turn with
 *     the other programs' runs; this thread's CPU time per packet. BPF_PROG_RUN repeats the
 *     same frame, so the flow entry stays in cache: the best case.
 *   - table: N different packets whose flows are among the prefilled ones (spread over the
 *     table), taken in turn, one repetition per run, 100,000 runs (or N if more); the kernel's
 *     own time per run, averaged (the syscall and frame setup are left out; the kernel's timer
 *     reads around one repetition are in, for every program alike: compare differences).
 *     With 100,000 packets the flow entries no longer fit the CPU caches.
 * Medians, minimums and maximums over --rounds rounds. Needs root. Not a test: numbers depend on the machine.
 *
 * Usage: bench-xdp [--json] [--verbose] [--rounds N] [--repeat N] [--flows N]
 *                  [--xdp-filter PATH]
 * --verbose prints every round's figures to stderr.
 */
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <getopt.h>
#include <glob.h>
#include <sched.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "classify.h"
#include "guard.h"
#include "guard.skel.h"
#include "bare.skel.h"
#include "flowmin.h"
#include "flowmin.skel.h"
#include "guard-stage1.skel.h"
#include "guard-stage2.skel.h"
#include "guard-stage3.skel.h"
#include "packet.h"

#define FLOW_TABLE_SIZE 1048576u
/* A hot run of --repeat repetitions is made of this many slices, every program's slices taken
 * in turn: on a VM whose CPU speed changes by a third from one second to the next, a whole run
 * per program let one program's run fall in a slow spell and the next one's in a fast one, and
 * their ratio moved by as much from round to round; taken slice by slice in turn, every
 * program sees the same spells. */
#define HOT_SLICES 10u
#define FILL_CHUNK 8192u
#define XDP_FILTER_PROG "xdpfilt_alw_all"

/* The prefilled flows all go to BENCH_DST: half UDP to port 53, half TCP to port 80, from the
 * benchmarking range 198.18.0.0/15 (RFC 2544), the source port telling apart more than 131,072
 * sources. */
#define BENCH_DST "192.0.2.1"

/* The guard cut short after a stage (PS_BENCH_STAGE): parsing and its counters; + the allowlist
 * and ban check; + the flow (or ICMP) table lookup and classification (for a known flow under
 * an unchanged rule set: its cached verdict). The whole guard adds the table update or insert
 * to the last. */
enum { PROG_GUARD, PROG_FLOWMIN, PROG_BARE, PROG_XDP_FILTER, PROG_PARSE, PROG_BANS, PROG_CLASSIFY,
       N_PROGS };
static const char *const prog_label[N_PROGS] = { "guard", "flow-floor", "bare", "xdp-filter",
                                                 "parse", "+bans", "+classify" };

struct options {
        bool json;
        bool verbose;
        unsigned rounds;
        unsigned repeat;
        unsigned flows;
        const char *xdp_filter;
};

static int prog_fd[N_PROGS] = { -1, -1, -1, -1, -1, -1, -1 };

static int fail(const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        fputs("bench-xdp: ", stderr);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
        va_end(ap);
        return 1;
}

static int libbpf_quiet(enum libbpf_print_level level, const char *fmt, va_list ap) {
        /* xdp-filter's object carries sections libbpf does not know (libxdp metadata): only
         * real problems are worth showing. */
        if (level != LIBBPF_WARN)
                return 0;
        return vfprintf(stderr, fmt, ap);
}

/* This thread's CPU time: unlike wall time it leaves out the stretches in which other tasks ran
 * (the kernel lets them in between repetitions), and unlike the kernel's per-run figure it is
 * not rounded down to whole nanoseconds. */
static double cpu_ns(void) {
        struct timespec ts;

        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
        return (double) ts.tv_sec * 1e9 + (double) ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
        double x = *(const double *) a, y = *(const double *) b;

        return x < y ? -1 : x > y;
}

/* The median, minimum and maximum of n figures (sorts them). */
static void spread_of(double *v, unsigned n, double *ret_med, double *ret_min, double *ret_max) {
        qsort(v, n, sizeof(*v), cmp_double);
        *ret_med = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
        *ret_min = v[0];
        *ret_max = v[n - 1];
}

/* Entry i of the prefilled table; bench packets address entries the same way. */
static void bench_flow(unsigned i, uint32_t *ret_src, uint16_t *ret_sport, uint8_t *ret_proto,
                       uint16_t *ret_dport) {
        unsigned j = i >> 1;

        *ret_proto = i & 1 ? IPPROTO_TCP : IPPROTO_UDP;
        *ret_dport = i & 1 ? 80 : 53;
        *ret_src = htonl(0xc6120000u + (j & 0x1ffff)); /* 198.18.0.0/15 */
        *ret_sport = (uint16_t) (1024 + (j >> 17));
}

/* The filter state the daemon leaves with no rule loaded (filter_kernel_load() of an empty
 * set): generation 1, bank 0 (no shape), verdicts cacheable. A known flow then takes its cached
 * verdict, as on a guarded link; the map's zero would make every packet classify. */
static int empty_rule_set(int state_fd) {
        uint32_t zero = 0, state = (1u << PS_FILTER_STATE_GEN_SHIFT) | PS_FILTER_STATE_CACHEABLE;

        return bpf_map_update_elem(state_fd, &zero, &state, BPF_ANY) < 0 ? -errno : 0;
}

static int fill_flows(int fd, unsigned n) {
        static struct ps_flow_key keys[FILL_CHUNK];
        static struct ps_flow_value values[FILL_CHUNK];
        struct timespec ts;
        uint32_t dst;
        unsigned done = 0;

        clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
        inet_pton(AF_INET, BENCH_DST, &dst);
        while (done < n) {
                uint32_t count = n - done < FILL_CHUNK ? n - done : FILL_CHUNK;
                LIBBPF_OPTS(bpf_map_batch_opts, opts);

                for (uint32_t c = 0; c < count; c++) {
                        struct ps_flow_key *k = &keys[c];
                        struct ps_flow_value *v = &values[c];

                        memset(k, 0, sizeof(*k));
                        memset(v, 0, sizeof(*v));
                        k->family = PS_FAMILY_IPV4;
                        bench_flow(done + c, &k->src[0], &k->sport, &k->proto, &k->dport);
                        k->dst[0] = dst;
                        v->packets = 1;
                        v->bytes = 64;
                        v->first_seen = v->last_seen =
                                (uint64_t) ts.tv_sec * 1000000000ull + (uint64_t) ts.tv_nsec;
                        v->ttl = 64;
                }
                if (bpf_map_update_batch(fd, keys, values, &count, &opts) < 0)
                        return -errno;
                done += count;
        }
        return 0;
}

/* The same flows in the flow floor's table: per-CPU values, one per possible CPU. */
static int fill_flowmin(int fd, unsigned n) {
        static struct flowmin_key keys[FILL_CHUNK];
        int ncpus = libbpf_num_possible_cpus();
        struct flowmin_value *values;
        struct timespec ts;
        uint32_t dst;
        unsigned done = 0;

        if (ncpus <= 0)
                return ncpus < 0 ? ncpus : -EINVAL;
        values = calloc((size_t) FILL_CHUNK * (size_t) ncpus, sizeof(*values));
        if (!values)
                return -ENOMEM;
        clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
        inet_pton(AF_INET, BENCH_DST, &dst);
        while (done < n) {
                uint32_t count = n - done < FILL_CHUNK ? n - done : FILL_CHUNK;
                LIBBPF_OPTS(bpf_map_batch_opts, opts);

                for (uint32_t c = 0; c < count; c++) {
                        struct flowmin_key *k = &keys[c];
                        struct flowmin_value *v = &values[(size_t) c * (size_t) ncpus];
                        uint8_t proto;

                        memset(k, 0, sizeof(*k));
                        k->family = FLOWMIN_IPV4;
                        bench_flow(done + c, &k->src[0], &k->sport, &proto, &k->dport);
                        k->proto = proto;
                        k->dst[0] = dst;
                        v->packets = 1;
                        v->bytes = 64;
                        v->first_seen = v->last_seen =
                                (uint64_t) ts.tv_sec * 1000000000ull + (uint64_t) ts.tv_nsec;
                }
                if (bpf_map_update_batch(fd, keys, values, &count, &opts) < 0) {
                        int e = -errno;

                        free(values);
                        return e;
                }
                done += count;
        }
        free(values);
        return 0;
}

static long count_entries(int fd) {
        static struct ps_flow_key keys[FILL_CHUNK];
        static struct ps_flow_value values[FILL_CHUNK];
        struct ps_flow_key out;
        void *in = NULL;
        long total = 0;

        for (;;) {
                uint32_t count = FILL_CHUNK;
                LIBBPF_OPTS(bpf_map_batch_opts, opts);
                int r = bpf_map_lookup_batch(fd, in, &out, keys, values, &count, &opts);

                if (r < 0 && errno != ENOENT)
                        return -errno;
                total += count;
                if (r < 0)
                        return total;
                in = &out;
        }
}

/* ---- the packets ---- */

enum { PKT_UDP4, PKT_SYN4, PKT_ICMP4, PKT_UDP6, PKT_ICMP4_ERR, N_PKTS };
static const char *const pkt_names[N_PKTS] = { "udp4", "syn4", "icmp4", "udp6", "icmp4-err" };

/* An IPv4 UDP datagram or TCP SYN from a (network order) to BENCH_DST. */
static void build_v4_packet(struct pkt *p, uint32_t a, uint16_t sport, uint8_t proto,
                            uint16_t dport) {
        char src[INET_ADDRSTRLEN];

        inet_ntop(AF_INET, &a, src, sizeof(src));
        pkt_init(p);
        pkt_eth(p, 0x0800, 0, NULL);
        pkt_ipv4(p, src, BENCH_DST, proto, &(struct ip4_opts) { .ttl = 57, .id = 1 });
        if (proto == IPPROTO_UDP)
                pkt_udp(p, sport, dport, 22, 0);
        else
                pkt_tcp(p, &(struct tcp_opts) { .sport = sport, .dport = dport, .seq = 1,
                                                .flags = TCP_SYN, .window = 64240 });
        pkt_finish(p, 64);
}

static void build_flow_packet(struct pkt *p, unsigned entry) {
        uint32_t a;
        uint16_t sport, dport;
        uint8_t proto;

        bench_flow(entry, &a, &sport, &proto, &dport);
        build_v4_packet(p, a, sport, proto, dport);
}

static void build_packet(struct pkt *p, int kind) {
        switch (kind) {
        case PKT_UDP4:
                build_flow_packet(p, 0);
                break;
        case PKT_SYN4:
                build_flow_packet(p, 1);
                break;
        case PKT_ICMP4:
                pkt_init(p);
                pkt_eth(p, 0x0800, 0, NULL);
                pkt_ipv4(p, "198.18.0.1", BENCH_DST, IPPROTO_ICMP,
                         &(struct ip4_opts) { .ttl = 57 });
                pkt_icmp(p, 8, 0, 0x00010001);
                pkt_finish(p, 64);
                break;
        case PKT_UDP6:
                pkt_init(p);
                pkt_eth(p, 0x86dd, 0, NULL);
                pkt_ipv6(p, "2001:db8::1", "2001:db8::2", IPPROTO_UDP, 57, 0);
                pkt_udp(p, 1024, 53, 2, 0);
                pkt_finish(p, 64);
                break;
        case PKT_ICMP4_ERR:
                pkt_init(p);
                pkt_eth(p, 0x0800, 0, NULL);
                pkt_ipv4(p, "198.18.0.1", BENCH_DST, IPPROTO_ICMP,
                         &(struct ip4_opts) { .ttl = 57 });
                pkt_icmp(p, 3, 3, 0);
                pkt_quote_begin(p);
                pkt_ipv4(p, BENCH_DST, "198.18.0.2", IPPROTO_UDP,
                         &(struct ip4_opts) { .ttl = 64, .tot_len = 60 });
                pkt_udp(p, 40000, 53, 0, 40);
                pkt_finish(p, 64);
                break;
        }
}

/* ---- running ---- */

static int test_run(int fd, const struct pkt *p, unsigned repeat, double *ret_cpu_ns,
                    uint64_t *ret_kernel_ns) {
        LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = p->data, .data_size_in = (uint32_t) p->len,
                    .repeat = (int) repeat);
        double t0 = cpu_ns();
        int r = bpf_prog_test_run_opts(fd, &o);

        if (r < 0)
                return r;
        if (o.retval != 2 /* XDP_PASS */)
                return -EPROTO;
        *ret_cpu_ns = cpu_ns() - t0;
        /* o.duration is the kernel's mean per repetition, in whole ns. Runs with more than one
         * repetition also swap the program into the XDP dispatcher and out again, waiting for
         * RCU each time: wall time per run means little, hence CPU and kernel time. */
        *ret_kernel_ns = (uint64_t) o.duration * repeat;
        return 0;
}

struct result {
        const char *mode;
        const char *packet;
        unsigned spread;    /* distinct packets (1 in hot mode) */
        double ns[N_PROGS]; /* median ns per packet; < 0: not measured (no xdp-filter) */
        double lo[N_PROGS]; /* the fastest round */
        double hi[N_PROGS]; /* the slowest round */
        double kern[N_PROGS]; /* hot mode: the kernel's median figure, < 0 when not measured */
};

static int measure_hot(const struct options *o, struct result *res) {
        struct pkt pkts[N_PKTS];
        double *v = calloc((size_t) N_PKTS * N_PROGS * o->rounds, sizeof(double));
        double *kv = calloc((size_t) N_PKTS * N_PROGS * o->rounds, sizeof(double));

        if (!v || !kv) {
                free(v);
                free(kv);
                return -ENOMEM;
        }
        for (int k = 0; k < N_PKTS; k++)
                build_packet(&pkts[k], k);
        for (unsigned r = 0; r < o->rounds; r++)
                for (int k = 0; k < N_PKTS; k++) {
                        unsigned slice = o->repeat / HOT_SLICES;
                        double cpu_sum[N_PROGS] = { 0 };
                        uint64_t kern_sum[N_PROGS] = { 0 };

                        /* Slice after slice, every program in turn, a different one first
                         * each time: no program always runs right after the same one. */
                        for (unsigned s = 0; s < HOT_SLICES; s++)
                                for (int i = 0; i < N_PROGS; i++) {
                                        int p = (int) ((r + s + (unsigned) i) % N_PROGS);
                                        double cpu;
                                        uint64_t kern;
                                        int e;

                                        if (prog_fd[p] < 0)
                                                continue;
                                        e = test_run(prog_fd[p], &pkts[k], slice, &cpu, &kern);
                                        if (e < 0) {
                                                free(v);
                                                free(kv);
                                                return e;
                                        }
                                        cpu_sum[p] += cpu;
                                        kern_sum[p] += kern;
                                }
                        for (int p = 0; p < N_PROGS; p++) {
                                double n = (double) slice * HOT_SLICES;

                                if (prog_fd[p] < 0)
                                        continue;
                                v[((size_t) k * N_PROGS + (size_t) p) * o->rounds + r] =
                                        cpu_sum[p] / n;
                                kv[((size_t) k * N_PROGS + (size_t) p) * o->rounds + r] =
                                        (double) kern_sum[p] / n;
                                if (o->verbose)
                                        fprintf(stderr, "round %u hot %s %s: %.1f ns "
                                                "(kernel %.0f)\n", r, pkt_names[k],
                                                prog_label[p], cpu_sum[p] / n,
                                                (double) kern_sum[p] / n);
                        }
                }
        for (int k = 0; k < N_PKTS; k++) {
                res[k] = (struct result) { .mode = "hot", .packet = pkt_names[k], .spread = 1 };
                for (int p = 0; p < N_PROGS; p++) {
                        double lo, hi;

                        res[k].ns[p] = res[k].lo[p] = res[k].hi[p] = res[k].kern[p] = -1;
                        if (prog_fd[p] < 0)
                                continue;
                        spread_of(&v[((size_t) k * N_PROGS + (size_t) p) * o->rounds],
                                  o->rounds, &res[k].ns[p], &res[k].lo[p], &res[k].hi[p]);
                        spread_of(&kv[((size_t) k * N_PROGS + (size_t) p) * o->rounds],
                                  o->rounds, &res[k].kern[p], &lo, &hi);
                }
        }
        free(v);
        free(kv);
        return 0;
}

/*
 * `spread` packets of `kind` (udp4 or syn4), each addressing a different prefilled flow (entries
 * 2j for UDP, 2j+1 for TCP, j spread evenly over the table), run once each, in turn, for
 * TABLE_RUNS runs per program and round. One repetition per run on purpose: with more, every
 * run makes the kernel swap the program into the XDP dispatcher and back, two RCU grace
 * periods (milliseconds) per run. The price is that each figure includes the kernel's timer
 * reads around a single repetition, the same for the three programs. Each packet is built
 * just before its run; building is not measured, the kernel's time is.
 */
#define TABLE_RUNS 100000u

/*
 * A spoofed SYN flood: every packet a TCP SYN to port 80 from a source no packet came from
 * before (100.64.0.0/10 address by address, then the next source port), so each one pays the
 * allowlist and ban check, classification and a flow insert into the full table (which evicts
 * the least recently used entry). Packet `n` of round `round`: every program sees the same
 * sources, each new to its own table.
 */
static void build_flood_packet(struct pkt *p, unsigned round, unsigned n) {
        uint64_t i = (uint64_t) round * TABLE_RUNS + n;

        build_v4_packet(p, htonl(0x64400000u + (uint32_t) (i & 0x3fffff)),
                        (uint16_t) (1024 + (i >> 22)), IPPROTO_TCP, 80);
}

/* spread 0: the SYN flood (build_flood_packet()), TABLE_RUNS packets per program and round;
 * round_base: the first round's number there (another flood, other sources). */
static int measure_table(const struct options *o, int kind, unsigned spread, unsigned round_base,
                         struct result *res) {
        double *v = calloc((size_t) N_PROGS * o->rounds, sizeof(double));
        unsigned pairs = o->flows / 2 ? o->flows / 2 : 1;
        unsigned runs = spread > TABLE_RUNS ? spread : TABLE_RUNS;
        struct pkt pkt;

        if (!v)
                return -ENOMEM;
        for (unsigned r = 0; r < o->rounds; r++)
                for (int i = 0; i < N_PROGS; i++) {
                        int p = (int) ((r + (unsigned) i) % N_PROGS);
                        uint64_t total = 0;

                        if (prog_fd[p] < 0)
                                continue;
                        for (unsigned n = 0; n < runs; n++) {
                                double cpu;
                                uint64_t kern;
                                int e;

                                if (spread) {
                                        unsigned j = (unsigned) ((uint64_t) (n % spread) * pairs /
                                                                 spread);

                                        build_flow_packet(&pkt, 2 * j + (kind == PKT_SYN4));
                                } else
                                        build_flood_packet(&pkt, round_base + r, n);
                                e = test_run(prog_fd[p], &pkt, 1, &cpu, &kern);
                                if (e < 0) {
                                        free(v);
                                        return e;
                                }
                                total += kern;
                        }
                        v[(size_t) p * o->rounds + r] = (double) total / runs;
                        if (o->verbose)
                                fprintf(stderr, "round %u table %s x%u %s: %.1f ns\n", r,
                                        pkt_names[kind], spread, prog_label[p],
                                        (double) total / runs);
                }
        *res = (struct result) { .mode = spread ? "table" : "flood", .packet = pkt_names[kind],
                                 .spread = spread ? spread : runs };
        for (int p = 0; p < N_PROGS; p++) {
                res->ns[p] = res->lo[p] = res->hi[p] = res->kern[p] = -1;
                if (prog_fd[p] >= 0)
                        spread_of(&v[(size_t) p * o->rounds], o->rounds, &res->ns[p], &res->lo[p],
                                  &res->hi[p]);
        }
        free(v);
        return 0;
}

/*
 * The auto-ban policies as the daemon configures them by default (packetscope.conf(5)):
 * connections (100, window 60 s) and URL patterns enforced, the SYN rate (50/s, burst 100) and
 * port scans (weight 21, window 3 s) counted, sources as /32 and /64, bans of an hour growing
 * twofold up to a week; HTTP on ports 80 and 8080. In a spoofed flood no source crosses a
 * threshold: each SYN pays the policies' per-source state (ban_sources) and nothing more.
 */
static int policies_on(struct bpf_map *config) {
        struct ps_ban_config c = { .http_ports = { 80, 8080 }, .n_http_ports = 2 };
        static const struct { uint32_t mode, threshold, burst; uint64_t window_ns; } d[] = {
                [PS_BAN_POLICY_CONNECTIONS] = { PS_BAN_MODE_ENFORCE, 100, 0, 60000000000ull },
                [PS_BAN_POLICY_SYN_RATE] = { PS_BAN_MODE_COUNT, 50, 100, 0 },
                [PS_BAN_POLICY_PORT_SCAN] = { PS_BAN_MODE_COUNT, 21, 0, 3000000000ull },
                [PS_BAN_POLICY_URL] = { PS_BAN_MODE_ENFORCE, 0, 0, 0 },
        };
        uint32_t zero = 0;

        for (int i = 0; i < _PS_BAN_POLICY_MAX; i++)
                c.policy[i] = (struct ps_ban_policy_conf) {
                        .mode = d[i].mode, .threshold = d[i].threshold, .burst = d[i].burst,
                        .prefix4 = 32, .prefix6 = 64, .window_ns = d[i].window_ns,
                        .ban_ns = 3600000000000ull, .repeat_factor = 2,
                        .repeat_max_ns = 7 * 86400000000000ull,
                };
        /* The patterns themselves are never reached: no SYN carries a request line. */
        c.url_lengths = (1u << 4) | (1u << 5) | (1u << 6) | (1u << 8);
        return bpf_map_update_elem(bpf_map__fd(config), &zero, &c, BPF_ANY) < 0 ? -errno : 0;
}

/* ---- output ---- */

static bool have(const struct result *r, int p) {
        return r->ns[p] >= 0;
}

/* The load average now, "1 5 15" minutes, for the header: a busy machine explains wide spreads. */
static void loadavg(char *buf, size_t size) {
        FILE *f = fopen("/proc/loadavg", "re");
        double l1, l5, l15;

        if (f && fscanf(f, "%lf %lf %lf", &l1, &l5, &l15) == 3)
                snprintf(buf, size, "%.2f %.2f %.2f", l1, l5, l15);
        else
                snprintf(buf, size, "unknown");
        if (f)
                fclose(f);
}

static void print_text(const struct options *o, const struct result *res, size_t n,
                       const char *xdp_filter, long entries, const char *load_before) {
        char load_after[64];
        struct utsname u;

        uname(&u);
        loadavg(load_after, sizeof(load_after));
        printf("XDP per-packet cost under BPF_PROG_TEST_RUN: ns per packet, median of %u rounds "
               "[fastest-slowest round]\n", o->rounds);
        printf("kernel %s, %ld CPUs; load average before %s, after %s\n", u.release,
               sysconf(_SC_NPROCESSORS_ONLN), load_before, load_after);
        printf("guard flow table: %ld of %u entries (the flow floor's: the same flows); "
               "xdp-filter: %s\n", entries, FLOW_TABLE_SIZE, xdp_filter ? xdp_filter : "not found");
        printf("hot: one packet, %u repetitions per run, CPU time; a round's run made of %u "
               "slices, taken in turn with the other programs'; table: N packets in turn, "
               "one repetition per run, %u runs, kernel time\n\n", o->repeat, HOT_SLICES,
               TABLE_RUNS);
        printf("%-6s %-10s %6s %22s %22s %20s %22s %12s %12s\n", "mode", "packet", "N", "guard",
               "flow floor", "bare", "xdp-filter", "guard/floor", "guard/xdp-f");
        for (size_t i = 0; i < n; i++) {
                const struct result *r = &res[i];
                char cell[N_PROGS][48];

                for (int p = 0; p < N_PROGS; p++)
                        if (have(r, p))
                                snprintf(cell[p], sizeof(cell[p]), "%.1f [%.1f-%.1f]", r->ns[p],
                                         r->lo[p], r->hi[p]);
                        else
                                snprintf(cell[p], sizeof(cell[p]), "-");
                printf("%-6s %-10s %6u %22s %22s %20s %22s", r->mode, r->packet, r->spread,
                       cell[PROG_GUARD], cell[PROG_FLOWMIN], cell[PROG_BARE],
                       cell[PROG_XDP_FILTER]);
                if (have(r, PROG_FLOWMIN))
                        printf(" %12.2f", r->ns[PROG_GUARD] / r->ns[PROG_FLOWMIN]);
                else
                        printf(" %12s", "-");
                if (have(r, PROG_XDP_FILTER))
                        printf(" %12.2f", r->ns[PROG_GUARD] / r->ns[PROG_XDP_FILTER]);
                else
                        printf(" %12s", "-");
                putchar('\n');
        }

        /* Each stage's price is the difference between neighbouring columns, measured in the
         * same rounds. */
        printf("\nper stage: the guard cut short after each stage (medians, ns per packet; "
               "in brackets what the stage adds)\n");
        printf("%-6s %-10s %6s %8s %16s %16s %19s %8s\n", "mode", "packet", "N", "parse",
               "+bans", "+classify", "+flow update=guard", "bare");
        for (size_t i = 0; i < n; i++) {
                const struct result *r = &res[i];
                char cell[3][32];
                static const int col[3] = { PROG_BANS, PROG_CLASSIFY, PROG_GUARD };
                int prev = PROG_PARSE;

                for (int c = 0; c < 3; c++) {
                        snprintf(cell[c], sizeof(cell[c]), "%.1f [%+.1f]", r->ns[col[c]],
                                 r->ns[col[c]] - r->ns[prev]);
                        prev = col[c];
                }
                printf("%-6s %-10s %6u %8.1f %16s %16s %19s %8.1f\n", r->mode, r->packet,
                       r->spread, r->ns[PROG_PARSE], cell[0], cell[1], cell[2], r->ns[PROG_BARE]);
        }

        for (size_t i = 0; i < n; i++)
                if (!strcmp(res[i].mode, "flood"))
                        printf("\nSYN flood%s, every packet from a new source, Mpps per core "
                               "(1000 / kernel ns per packet): guard %.2f, flow floor %.2f, "
                               "xdp-filter %.2f, bare %.2f\n",
                               strcmp(res[i].packet, "syn4") ? ", the default auto-ban policies on"
                                                             : "",
                               1e3 / res[i].ns[PROG_GUARD],
                               1e3 / res[i].ns[PROG_FLOWMIN],
                               have(&res[i], PROG_XDP_FILTER) ? 1e3 / res[i].ns[PROG_XDP_FILTER] : 0,
                               1e3 / res[i].ns[PROG_BARE]);

        /* CPU time includes what the kernel's own figure leaves out (each run's swap into the
         * XDP dispatcher and back, spread over its repetitions, and the interrupts that hit
         * it); the kernel's is whole ns per repetition. Both, side by side. */
        printf("\nhot, the kernel's own duration per repetition (medians, whole ns) against CPU "
               "time\n%-10s %16s %16s %16s %16s %12s %12s\n", "packet", "guard", "flow floor",
               "bare", "xdp-filter", "guard/xdp-f", "by CPU time");
        for (size_t i = 0; i < n; i++) {
                const struct result *r = &res[i];
                char cell[4][32];

                if (r->kern[PROG_GUARD] < 0)
                        continue;
                for (int p = 0; p < 4; p++)
                        if (r->kern[p] >= 0)
                                snprintf(cell[p], sizeof(cell[p]), "%.0f (cpu %.1f)", r->kern[p],
                                         r->ns[p]);
                        else
                                snprintf(cell[p], sizeof(cell[p]), "-");
                printf("%-10s %16s %16s %16s %16s", r->packet, cell[PROG_GUARD],
                       cell[PROG_FLOWMIN], cell[PROG_BARE], cell[PROG_XDP_FILTER]);
                if (have(r, PROG_XDP_FILTER) && r->kern[PROG_XDP_FILTER] > 0)
                        printf(" %12.2f %12.2f\n", r->kern[PROG_GUARD] / r->kern[PROG_XDP_FILTER],
                               r->ns[PROG_GUARD] / r->ns[PROG_XDP_FILTER]);
                else
                        printf(" %12s %12s\n", "-", "-");
        }
}

static void json_string(const char *s) {
        putchar('"');
        for (; s && *s; s++) {
                if (*s == '"' || *s == '\\')
                        putchar('\\');
                putchar(*s);
        }
        putchar('"');
}

static void print_json(const struct options *o, const struct result *res, size_t n,
                       const char *xdp_filter, long entries, const char *load_before) {
        static const char *const key[N_PROGS] = { "guard", "flow_floor", "bare", "xdp_filter",
                                                  "stage_parse", "stage_bans", "stage_flow" };
        char load_after[64];
        struct utsname u;

        uname(&u);
        loadavg(load_after, sizeof(load_after));
        printf("{\"kernel\":");
        json_string(u.release);
        printf(",\"cpus\":%ld,\"load_before\":", sysconf(_SC_NPROCESSORS_ONLN));
        json_string(load_before);
        printf(",\"load_after\":");
        json_string(load_after);
        printf(",\"rounds\":%u,\"repeat\":%u,\"table_runs\":%u,\"flow_table_size\":%u,"
               "\"flow_entries\":%ld,\"xdp_filter\":", o->rounds, o->repeat, TABLE_RUNS,
               FLOW_TABLE_SIZE, entries);
        if (xdp_filter)
                json_string(xdp_filter);
        else
                fputs("null", stdout);
        printf(",\"results\":[");
        for (size_t i = 0; i < n; i++) {
                const struct result *r = &res[i];

                printf("%s{\"mode\":\"%s\",\"packet\":\"%s\",\"packets\":%u", i ? "," : "",
                       r->mode, r->packet, r->spread);
                for (int p = 0; p < N_PROGS; p++)
                        if (have(r, p))
                                printf(",\"%s_ns\":%.2f,\"%s_min_ns\":%.2f,\"%s_max_ns\":%.2f",
                                       key[p], r->ns[p], key[p], r->lo[p], key[p], r->hi[p]);
                for (int p = 0; p < N_PROGS; p++)
                        if (r->kern[p] >= 0)
                                printf(",\"%s_kernel_ns\":%.2f", key[p], r->kern[p]);
                        else
                                printf(",\"%s_kernel_ns\":null", key[p]);
                printf(",\"guard_over_bare\":%.3f", r->ns[PROG_GUARD] / r->ns[PROG_BARE]);
                if (have(r, PROG_FLOWMIN))
                        printf(",\"guard_over_flow_floor\":%.3f",
                               r->ns[PROG_GUARD] / r->ns[PROG_FLOWMIN]);
                if (have(r, PROG_XDP_FILTER))
                        printf(",\"guard_over_xdp_filter\":%.3f",
                               r->ns[PROG_GUARD] / r->ns[PROG_XDP_FILTER]);
                else
                        printf(",\"guard_over_xdp_filter\":null");
                putchar('}');
        }
        printf("]}\n");
}

/* ---- setup ---- */

static char *find_xdp_filter(void) {
        glob_t g;
        char *path = NULL;

        /* Debian installs libxdp's program objects under the multiarch library directory. */
        if (glob("/usr/lib/*/bpf/" XDP_FILTER_PROG ".o", 0, NULL, &g) == 0) {
                path = strdup(g.gl_pathv[0]);
                globfree(&g);
        } else if (access("/usr/lib/bpf/" XDP_FILTER_PROG ".o", R_OK) == 0)
                path = strdup("/usr/lib/bpf/" XDP_FILTER_PROG ".o");
        return path;
}

static int parse_uint(const char *arg, const char *what, unsigned min, unsigned max,
                      unsigned *ret) {
        char *end;
        unsigned long v;

        errno = 0;
        v = strtoul(arg, &end, 10);
        if (errno || end == arg || *end || v < min || v > max)
                return fail("%s must be %u to %u, got '%s'", what, min, max, arg);
        *ret = (unsigned) v;
        return 0;
}

static void usage(FILE *f) {
        fprintf(f, "usage: bench-xdp [--json] [--verbose] [--rounds N] [--repeat N] [--flows N] "
                   "[--xdp-filter PATH]\n");
}

int main(int argc, char *argv[]) {
        static const struct option longopts[] = {
                { "json", no_argument, NULL, 'j' },
                { "verbose", no_argument, NULL, 'v' },
                { "rounds", required_argument, NULL, 'r' },
                { "repeat", required_argument, NULL, 'n' },
                { "flows", required_argument, NULL, 'f' },
                { "xdp-filter", required_argument, NULL, 'x' },
                { "help", no_argument, NULL, 'h' },
                {}
        };
        static const unsigned spreads[] = { 1000, 100000 };
        struct options o = { .rounds = 7, .repeat = 2000000, .flows = 1000000 };
        struct result res[N_PKTS + 2 * 2 + 2];
        struct guard_bpf *guard = NULL;
        struct guard_stage1_bpf *stage1 = NULL;
        struct guard_stage2_bpf *stage2 = NULL;
        struct guard_stage3_bpf *stage3 = NULL;
        struct bare_bpf *bare = NULL;
        struct flowmin_bpf *flowmin = NULL;
        char load_before[64];
        struct bpf_object *xf = NULL;
        char *xf_path = NULL;
        size_t n_res = 0;
        long entries = 0;
        cpu_set_t cpus;
        int c, r, ret = 1;

        while ((c = getopt_long(argc, argv, "h", longopts, NULL)) >= 0)
                switch (c) {
                case 'j':
                        o.json = true;
                        break;
                case 'v':
                        o.verbose = true;
                        break;
                case 'r':
                        if (parse_uint(optarg, "--rounds", 1, 1000, &o.rounds))
                                return 2;
                        break;
                case 'n':
                        if (parse_uint(optarg, "--repeat", 1000, 100000000, &o.repeat))
                                return 2;
                        break;
                case 'f':
                        if (parse_uint(optarg, "--flows", 0, 1000000, &o.flows))
                                return 2;
                        break;
                case 'x':
                        o.xdp_filter = optarg;
                        break;
                case 'h':
                        usage(stdout);
                        return 0;
                default:
                        usage(stderr);
                        return 2;
                }
        if (optind != argc) {
                usage(stderr);
                return 2;
        }

        libbpf_set_print(libbpf_quiet);
        loadavg(load_before, sizeof(load_before));

        /* One CPU for the whole run: test runs execute on the caller's CPU, and the guard's
         * per-CPU counters and LRU lists then stay on one CPU too. */
        CPU_ZERO(&cpus);
        CPU_SET(sched_getcpu() < 0 ? 0 : sched_getcpu(), &cpus);
        (void) sched_setaffinity(0, sizeof(cpus), &cpus);

        guard = guard_bpf__open();
        if (!guard) {
                fail("cannot open the guard program: %s", strerror(errno));
                goto out;
        }
        bpf_map__set_max_entries(guard->maps.flows, FLOW_TABLE_SIZE);
        r = guard_bpf__load(guard);
        if (r < 0) {
                fail("cannot load the guard program: %s (root needed)", strerror(-r));
                goto out;
        }
        prog_fd[PROG_GUARD] = bpf_program__fd(guard->progs.xdp_guard);
        r = empty_rule_set(bpf_map__fd(guard->maps.filter_state));
        if (r < 0) {
                fail("cannot set the guard's filter state: %s", strerror(-r));
                goto out;
        }

        /* The stage variants, loaded like the guard: the same table size, the same flows. */
#define LOAD_STAGE(var, n, id)                                                                 \
        do {                                                                                   \
                var = guard_stage##n##_bpf__open();                                            \
                if (!var) {                                                                    \
                        fail("cannot open stage %d: %s", n, strerror(errno));                  \
                        goto out;                                                              \
                }                                                                              \
                bpf_map__set_max_entries(var->maps.flows, FLOW_TABLE_SIZE);                    \
                r = guard_stage##n##_bpf__load(var);                                           \
                if (r < 0) {                                                                   \
                        fail("cannot load stage %d: %s", n, strerror(-r));                     \
                        goto out;                                                              \
                }                                                                              \
                prog_fd[id] = bpf_program__fd(var->progs.xdp_guard);                           \
                if ((r = empty_rule_set(bpf_map__fd(var->maps.filter_state))) < 0) {           \
                        fail("cannot set stage %d's filter state: %s", n, strerror(-r));       \
                        goto out;                                                              \
                }                                                                              \
                if (o.flows && (r = fill_flows(bpf_map__fd(var->maps.flows), o.flows)) < 0) {  \
                        fail("cannot fill stage %d's flow table: %s", n, strerror(-r));        \
                        goto out;                                                              \
                }                                                                              \
        } while (0)
        LOAD_STAGE(stage1, 1, PROG_PARSE);
        LOAD_STAGE(stage2, 2, PROG_BANS);
        LOAD_STAGE(stage3, 3, PROG_CLASSIFY);
#undef LOAD_STAGE

        bare = bare_bpf__open_and_load();
        if (!bare) {
                fail("cannot load the bare program: %s", strerror(errno));
                goto out;
        }
        prog_fd[PROG_BARE] = bpf_program__fd(bare->progs.xdp_bare);

        flowmin = flowmin_bpf__open_and_load();
        if (!flowmin) {
                fail("cannot load the flow floor program: %s", strerror(errno));
                goto out;
        }
        prog_fd[PROG_FLOWMIN] = bpf_program__fd(flowmin->progs.xdp_flowmin);

        xf_path = o.xdp_filter ? strdup(o.xdp_filter) : find_xdp_filter();
        if (xf_path) {
                struct bpf_program *prog;

                xf = bpf_object__open_file(xf_path, NULL);
                if (!xf) {
                        fail("cannot open %s: %s", xf_path, strerror(errno));
                        goto out;
                }
                /* Its maps ask to be pinned by name in /sys/fs/bpf: neither reuse a running
                 * xdp-filter's maps nor leave pins behind. */
                {
                        struct bpf_map *m;

                        bpf_object__for_each_map(m, xf)
                                bpf_map__set_pin_path(m, NULL);
                }
                r = bpf_object__load(xf);
                prog = bpf_object__find_program_by_name(xf, XDP_FILTER_PROG);
                if (r < 0 || !prog) {
                        fail("cannot load %s from %s: %s", XDP_FILTER_PROG, xf_path,
                             r < 0 ? strerror(-r) : "no such program");
                        goto out;
                }
                prog_fd[PROG_XDP_FILTER] = bpf_program__fd(prog);
        } else
                fprintf(stderr, "bench-xdp: %s.o not found (apt install xdp-tools); its column "
                                "stays empty\n", XDP_FILTER_PROG);

        if (o.flows) {
                r = fill_flows(bpf_map__fd(guard->maps.flows), o.flows);
                if (r < 0) {
                        fail("cannot fill the flow table: %s", strerror(-r));
                        goto out;
                }
                r = fill_flowmin(bpf_map__fd(flowmin->maps.flowmin_flows), o.flows);
                if (r < 0) {
                        fail("cannot fill the flow floor's table: %s", strerror(-r));
                        goto out;
                }
        }
        entries = count_entries(bpf_map__fd(guard->maps.flows));

        r = measure_hot(&o, res);
        if (r < 0) {
                fail("test run failed: %s", strerror(-r));
                goto out;
        }
        n_res = N_PKTS;
        if (o.flows)
                for (size_t s = 0; s < sizeof(spreads) / sizeof(spreads[0]); s++) {
                        if (spreads[s] > o.flows / 2)
                                continue;
                        for (int kind = PKT_UDP4; kind <= PKT_SYN4; kind++) {
                                r = measure_table(&o, kind, spreads[s], 0, &res[n_res]);
                                if (r < 0) {
                                        fail("test run failed: %s", strerror(-r));
                                        goto out;
                                }
                                n_res++;
                        }
                }
        if (o.flows) {
                r = measure_table(&o, PKT_SYN4, 0, 0, &res[n_res]);
                if (r < 0) {
                        fail("test run failed: %s", strerror(-r));
                        goto out;
                }
                n_res++;
                /* The same flood again, from other sources, with the policies on in the
                 * programs that reach them (the guard, and the stage that classifies). */
                if ((r = policies_on(guard->maps.ban_config)) < 0 ||
                    (r = policies_on(stage3->maps.ban_config)) < 0) {
                        fail("cannot turn the policies on: %s", strerror(-r));
                        goto out;
                }
                r = measure_table(&o, PKT_SYN4, 0, o.rounds, &res[n_res]);
                if (r < 0) {
                        fail("test run failed: %s", strerror(-r));
                        goto out;
                }
                res[n_res].packet = "syn4+pol";
                n_res++;
        }

        if (o.json)
                print_json(&o, res, n_res, xf_path, entries, load_before);
        else
                print_text(&o, res, n_res, xf_path, entries, load_before);
        ret = 0;
out:
        bpf_object__close(xf);
        flowmin_bpf__destroy(flowmin);
        bare_bpf__destroy(bare);
        guard_stage3_bpf__destroy(stage3);
        guard_stage2_bpf__destroy(stage2);
        guard_stage1_bpf__destroy(stage1);
        guard_bpf__destroy(guard);
        free(xf_path);
        return ret;
}
