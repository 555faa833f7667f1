/* SPDX-License-Identifier: MIT */
/*
 * What the filter classifier costs per packet as the rule set grows, and how long a big rule set
 * takes to apply. Same method as bench-xdp (read its comment and README.md): BPF_PROG_TEST_RUN
 * on crafted 64-byte frames, every program loaded in this process and run interleaved with the
 * others round after round, medians over the rounds, the whole run pinned to one CPU.
 *
 * Programs, all in every round:
 *   - the guard, as the daemon loads it, six times: with 0, 1, 100, 1,000, 10,000 and 100,000
 *     rules, each instance with its own filter maps filled by the daemon's own compiler
 *     (filter_compile) and loader (filter_kernel_load);
 *   - Debian's xdp-filter (xdpfilt_alw_all.o), six times, its maps holding the same port and
 *     address sets as far as it can express them (no prefixes, no ICMP: see fill_xdp_filter());
 *   - bare (bench/bare.bpf.c), the floor.
 *
 * The rule sets are generated from a fixed seed, like a real server's list: mostly IPv4 /32 and
 * /24 sources, some IPv6 /128 and /64 sources, TCP/UDP destination ports, and in every set of 100
 * rules or more the same few ICMP type rules and port ranges and one rule of each other kind, so
 * the shapes are the same from 100 rules on. All rules drop. The middle rule of each set is an
 * IPv4 /32 source: the match4 packet comes from it. The other packets match no rule, the common
 * case: the classifier looks up every shape (IPv4 packets skip the IPv6-only ones) and finds
 * nothing.
 *
 * Two kinds of measurement, as in bench-xdp:
 *   - hot: one packet repeated --repeat times per round, in HOT_SLICES runs taken in turn
 *     with the other programs' runs; this thread's CPU time per packet;
 *   - table: --runs packets from as many distinct sources (none matching), one repetition per
 *     run; the kernel's time per run. The classifier's hash buckets, the rule entries and the
 *     guard's flow entries then come from memory rather than from the CPU caches.
 * Then the time to apply 100,000 rules into fresh maps and to replace them by another 100,000.
 *
 * Usage: bench-filter [--json] [--verbose] [--rounds N] [--repeat N] [--runs N]
 *                     [--xdp-filter PATH]
 * Needs root. Not a test: numbers depend on the machine.
 */
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <getopt.h>
#include <glob.h>
#include <jansson.h>
#include <sched.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "filter-compile.h"
#include "rule.h"
#include "filters.h"
#include "guard.skel.h"
#include "bare.skel.h"
#include "packet.h"

#define XDP_FILTER_PROG "xdpfilt_alw_all"
/* A hot run in slices taken in turn with the other programs' (see bench-xdp's HOT_SLICES). */
#define HOT_SLICES 5u
#define N_SETS 6
#define BIG_SET (N_SETS - 1)
#define SEED 0x70616b7363ULL
#define BENCH_DST "192.0.2.1"

/* Room for the table mode's distinct flows, with slack: an LRU table evicts before it is full. */
#define GUARD_FLOWS 262144u
/* xdp-filter's address maps hold 10,000 entries as shipped; every instance gets room for the
 * biggest set, so that all six have the same bucket arrays, like the guard's rule maps. */
#define XF_HASH_SIZE 131072u
#define APPLY_REPS 3

static const unsigned set_rules[N_SETS] = { 0, 1, 100, 1000, 10000, 100000 };

/* ---- helpers, as in bench-xdp ---- */

static int fail(const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        fputs("bench-filter: ", stderr);
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

/* CPU time for the hot runs: see bench-xdp (other tasks and the dispatcher swaps left out). */
static double cpu_ns(void) {
        struct timespec ts;

        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
        return (double) ts.tv_sec * 1e9 + (double) ts.tv_nsec;
}

static double wall_ms(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec * 1e3 + (double) ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b) {
        double x = *(const double *) a, y = *(const double *) b;

        return x < y ? -1 : x > y;
}

static double median(double *v, unsigned n) {
        qsort(v, n, sizeof(*v), cmp_double);
        return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void print_json_string(const char *s) {
        putchar('"');
        for (; s && *s; s++) {
                if (*s == '"' || *s == '\\')
                        putchar('\\');
                putchar(*s);
        }
        putchar('"');
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

/* The 1, 5 and 15 minute load averages, as uptime shows them. */
static void read_loadavg(double ret[3]) {
        FILE *f = fopen("/proc/loadavg", "re");

        ret[0] = ret[1] = ret[2] = -1;
        if (!f)
                return;
        if (fscanf(f, "%lf %lf %lf", &ret[0], &ret[1], &ret[2]) != 3)
                ret[0] = ret[1] = ret[2] = -1;
        fclose(f);
}

/* ---- the rule sets ---- */

/* splitmix64: a fixed seed gives the same sets on every machine. */
static uint64_t rng_state;

static uint64_t rng_next(void) {
        uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);

        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        return z ^ (z >> 31);
}

static uint32_t rng_below(uint32_t n) {
        return (uint32_t) (((rng_next() >> 32) * (uint64_t) n) >> 32);
}

enum rule_kind { RK_PORT, RK_V4_HOST, RK_V4_NET, RK_V6_HOST, RK_V6_NET };

/* The random part of a set, per mille: a blocklist with some ports. */
static const struct {
        enum rule_kind kind;
        unsigned weight;
} mix[] = {
        { RK_V4_HOST, 500 }, { RK_V4_NET, 200 }, { RK_PORT, 120 },
        { RK_V6_HOST, 90 },  { RK_V6_NET, 90 },
};

/* The first rules of every set of 100 or more: the few ICMP types and ranges a server blocks,
 * then one rule of each kind of the mix, so that every such set has the same shapes. */
/* redirect, timestamp request and reply, address mask request */
static const uint8_t fixed_icmp_types[] = { 5, 13, 14, 17 };
static const struct {
        const char *type;
        const char *ports;
} fixed_ranges[] = {
        { "tcp", "6660-6669" }, { "udp", "27000-27015" }, { "tcp", "8000-8999" },
};

/* Rule sources avoid the packets' sources: 198.18.0.0/15 and 2001:db8::/32 (see below). */
static uint32_t random_v4(void) {
        uint32_t a;

        do
                a = 0x0b000000u + rng_below(0xc6000000u - 0x0b000000u); /* 11/8 to 197/8 */
        while ((a >> 24) == 127);
        return a;
}

static json_t *random_rule_json(enum rule_kind kind, uint32_t *ret_v4) {
        char buf[64];
        uint8_t a6[16];
        uint32_t a;

        switch (kind) {
        case RK_PORT: {
                /* Never 53 or 80: the benchmark's own traffic goes there. */
                uint32_t port;

                do
                        port = 1 + rng_below(65535);
                while (port == 53 || port == 80);
                return json_pack("{s:s, s:i}", "rule_type", rng_below(2) ? "tcp" : "udp",
                                 "dst_port", (int) port);
        }
        case RK_V4_HOST:
        case RK_V4_NET:
                a = random_v4();
                if (kind == RK_V4_NET)
                        a &= 0xffffff00u;
                if (ret_v4)
                        *ret_v4 = htonl(a);
                snprintf(buf, sizeof(buf), "%u.%u.%u.%u%s", a >> 24, (a >> 16) & 0xff,
                         (a >> 8) & 0xff, a & 0xff, kind == RK_V4_NET ? "/24" : "");
                return json_pack("{s:s}", "src_ip", buf);
        case RK_V6_HOST:
        case RK_V6_NET: {
                uint64_t hi = rng_next(), lo = kind == RK_V6_NET ? 0 : rng_next();
                size_t l;

                for (int i = 0; i < 8; i++) {
                        a6[i] = (uint8_t) (hi >> (56 - 8 * i));
                        a6[8 + i] = (uint8_t) (lo >> (56 - 8 * i));
                }
                a6[0] = 0x2a; /* 2a00::/8, away from 2001:db8::/32 */
                inet_ntop(AF_INET6, a6, buf, sizeof(buf));
                l = strlen(buf);
                snprintf(buf + l, sizeof(buf) - l, kind == RK_V6_NET ? "/64" : "");
                return json_pack("{s:s}", "src_ip", buf);
        }
        default:
                return NULL;
        }
}

static enum rule_kind random_kind(void) {
        uint32_t x = rng_below(1000);

        for (size_t i = 0; i < sizeof(mix) / sizeof(mix[0]); i++) {
                if (x < mix[i].weight)
                        return mix[i].kind;
                x -= mix[i].weight;
        }
        return mix[0].kind;
}

struct rule_set {
        Filter **rules;
        size_t n;
        uint32_t match_src; /* network order: the /32 the middle rule drops */
        unsigned n_shapes;
        unsigned n_v6_shapes; /* shapes of IPv6 prefixes longer than /32 */
        uint8_t classes[PS_FILTER_MAX_SHAPES]; /* PS_CLASS_*: as the daemon sets the bank's */
        uint8_t flags[PS_FILTER_MAX_SHAPES];   /* PS_SHAPE_*: the same */
        uint64_t *gates;                       /* a copy of the bank's gate words */
        size_t n_entries;
        /* what xdp-filter's maps hold of it */
        size_t xf_ports, xf_v4, xf_v6, xf_not_held;
};

static void rule_set_done(struct rule_set *s) {
        free(s->gates);
        s->gates = NULL;
        filter_list_free(s->rules, s->n);
        s->rules = NULL;
        s->n = 0;
}

static int rule_add(struct rule_set *s, json_t *o) {
        Filter *f;
        char *err = NULL;
        int r;

        if (!o)
                return -ENOMEM;
        f = malloc(sizeof(*f));
        if (!f) {
                json_decref(o);
                return -ENOMEM;
        }
        filter_init(f);
        r = filter_from_json(f, o, 0, &err);
        json_decref(o);
        if (r < 0) {
                fail("generated rule refused: %s", err ? err : strerror(-r));
                free(err);
                free(f);
                return r;
        }
        /* What the store assigns: ids, counter slots and creation times in list order. */
        f->id = f->slot = (uint32_t) s->n;
        f->created_usec = s->n + 1;
        s->rules[s->n++] = f;
        return 0;
}

static int rule_set_make(struct rule_set *s, size_t n, uint64_t seed) {
        int r = 0;

        memset(s, 0, sizeof(*s));
        s->rules = calloc(n + 1, sizeof(Filter *));
        if (!s->rules)
                return -ENOMEM;
        rng_state = seed;
        for (size_t i = 0; i < n && r >= 0; i++) {
                size_t j = i;

                if (i == n / 2) {
                        r = rule_add(s, random_rule_json(RK_V4_HOST, &s->match_src));
                        continue;
                }
                if (n >= 100 && j < sizeof(fixed_icmp_types)) {
                        r = rule_add(s, json_pack("{s:s, s:i}", "rule_type", "icmp",
                                                  "icmp_type", fixed_icmp_types[j]));
                        continue;
                }
                j -= sizeof(fixed_icmp_types);
                if (n >= 100 && j < sizeof(fixed_ranges) / sizeof(fixed_ranges[0])) {
                        r = rule_add(s, json_pack("{s:s, s:s}", "rule_type", fixed_ranges[j].type,
                                                  "dst_port", fixed_ranges[j].ports));
                        continue;
                }
                j -= sizeof(fixed_ranges) / sizeof(fixed_ranges[0]);
                if (n >= 100 && j < sizeof(mix) / sizeof(mix[0])) {
                        r = rule_add(s, random_rule_json(mix[j].kind, NULL));
                        continue;
                }
                r = rule_add(s, random_rule_json(random_kind(), NULL));
        }
        if (r < 0)
                rule_set_done(s);
        return r;
}

/* ---- xdp-filter ---- */

/*
 * xdp-filter's map ABI, read from its object (bpftool btf dump file, llvm-objdump -d):
 * filter_ports is a per-CPU array of u64 indexed by the port as the packet carries it (network
 * order), filter_ipv4 and filter_ipv6 per-CPU hashes of u64 keyed by the address; the low bits
 * of a value say what matches (source, destination, TCP, UDP), the bits from 6 up count hits.
 * In allow mode an entry drops. It matches exact ports and whole addresses, nothing else.
 */
#define XF_SRC 1u
#define XF_DST 2u
#define XF_TCP 4u
#define XF_UDP 8u

static int xf_put(int fd, const void *key, uint64_t flags, uint64_t *percpu, int ncpus) {
        for (int c = 0; c < ncpus; c++)
                percpu[c] = flags;
        return bpf_map_update_elem(fd, key, percpu, BPF_ANY) < 0 ? -errno : 0;
}

/*
 * Enters what xdp-filter can express of a set: destination port rules (a range port by port:
 * its port map is an array, so a range costs it nothing per packet) and full-length source
 * addresses. IPv4 /24 and IPv6 /64 prefixes and ICMP type rules have no equivalent there and
 * are left out (counted in xf_not_held).
 */
static int fill_xdp_filter(struct bpf_object *obj, struct rule_set *s) {
        int ports_fd = bpf_map__fd(bpf_object__find_map_by_name(obj, "filter_ports"));
        int v4_fd = bpf_map__fd(bpf_object__find_map_by_name(obj, "filter_ipv4"));
        int v6_fd = bpf_map__fd(bpf_object__find_map_by_name(obj, "filter_ipv6"));
        int ncpus = libbpf_num_possible_cpus();
        uint64_t *percpu, *ports;
        int r = 0;

        if (ports_fd < 0 || v4_fd < 0 || v6_fd < 0 || ncpus <= 0)
                return -ENOENT;
        percpu = calloc((size_t) ncpus, sizeof(uint64_t));
        ports = calloc(65536, sizeof(uint64_t));
        if (!percpu || !ports) {
                free(percpu);
                free(ports);
                return -ENOMEM;
        }
        for (size_t i = 0; i < s->n && r >= 0; i++) {
                const Filter *f = s->rules[i];
                bool port_rule = (f->protocol == IPPROTO_TCP || f->protocol == IPPROTO_UDP) &&
                                 !f->has_src && !f->has_dst && port_range_is_any(f->src_port) &&
                                 !port_range_is_any(f->dst_port) && !f->tcp_flags_mask;
                bool addr_rule = f->protocol == PROTO_ANY && f->has_src && !f->has_dst &&
                                 f->src.prefixlen == (f->src.family == PS_FAMILY_IPV4 ? 32 : 128);

                if (f->action != FILTER_DROP || (!port_rule && !addr_rule)) {
                        s->xf_not_held++;
                        continue;
                }
                if (port_rule) {
                        for (uint32_t p = f->dst_port.lo; p <= f->dst_port.hi; p++)
                                ports[p] |= XF_DST |
                                            (f->protocol == IPPROTO_TCP ? XF_TCP : XF_UDP);
                } else if (f->src.family == PS_FAMILY_IPV4) {
                        r = xf_put(v4_fd, &f->src.addr[0], XF_SRC, percpu, ncpus);
                        s->xf_v4++;
                } else {
                        r = xf_put(v6_fd, f->src.addr, XF_SRC, percpu, ncpus);
                        s->xf_v6++;
                }
        }
        for (uint32_t p = 0; p < 65536 && r >= 0; p++) {
                uint32_t key = htons((uint16_t) p);

                if (!ports[p])
                        continue;
                r = xf_put(ports_fd, &key, ports[p], percpu, ncpus);
                s->xf_ports++;
        }
        free(percpu);
        free(ports);
        return r;
}

static int load_xdp_filter(const char *path, struct bpf_object **ret, int *ret_fd) {
        struct bpf_object *obj = bpf_object__open_file(path, NULL);
        struct bpf_program *prog;
        struct bpf_map *m;
        int r;

        if (!obj)
                return -errno;
        /* Its maps ask to be pinned by name under /sys/fs/bpf, where libbpf would reuse maps
         * left by another loader (a real xdp-filter among them) and leave its own behind. Each
         * instance here needs maps of its own, and nothing may outlive the run. */
        bpf_object__for_each_map(m, obj)
                bpf_map__set_pin_path(m, NULL);
        bpf_map__set_max_entries(bpf_object__find_map_by_name(obj, "filter_ipv4"), XF_HASH_SIZE);
        bpf_map__set_max_entries(bpf_object__find_map_by_name(obj, "filter_ipv6"), XF_HASH_SIZE);
        r = bpf_object__load(obj);
        prog = bpf_object__find_program_by_name(obj, XDP_FILTER_PROG);
        if (r < 0 || !prog) {
                bpf_object__close(obj);
                return r < 0 ? r : -ENOENT;
        }
        *ret = obj;
        *ret_fd = bpf_program__fd(prog);
        return 0;
}

/* ---- the guard ---- */

/* --no-flow-cache: every packet goes through the classifier, as the first packet of each
 * flow (or every packet under a set that looks at TCP flags) does. */
static bool no_flow_cache;

static int load_rules(int state_fd, int banks_fd, int rules_fd, int rules4_fd, int gates_fd,
                      uint32_t *state, struct rule_set *s) {
        FilterSet set;
        char *err = NULL;
        int r;

        r = filter_compile(s->rules, s->n, &set, &err);
        if (r < 0) {
                fail("cannot compile %zu rules: %s", s->n, err ? err : strerror(-r));
                free(err);
                return r;
        }
        r = filter_kernel_load(state_fd, banks_fd, rules_fd, rules4_fd, gates_fd, state, &set);
        if (r == 0 && no_flow_cache) {
                uint32_t zero = 0;

                *state &= ~PS_FILTER_STATE_CACHEABLE;
                (void) bpf_map_update_elem(state_fd, &zero, state, BPF_ANY);
        }
        s->n_shapes = set.n_shapes;
        s->n_entries = set.n_entries;
        /* The classifier's own test: only IPv6 prefixes longer than /32 reach words 1-3. */
        s->n_v6_shapes = 0;
        for (unsigned i = 0; i < set.n_shapes; i++) {
                const struct ps_match *m = &set.masks[i];

                if (m->src[1] | m->src[2] | m->src[3] | m->dst[1] | m->dst[2] | m->dst[3])
                        s->n_v6_shapes++;
        }
        /* Which packets look each shape up (classify_shape() skips the others): the classes
         * and the gates, as the daemon's loader computes them. */
        memset(s->classes, 0, sizeof s->classes);
        for (unsigned i = 0; i < set.n_shapes; i++)
                s->flags[i] = filter_shape_flags(&set.masks[i]);
        free(s->gates);
        s->gates = calloc(PS_GATE_BANK_WORDS, sizeof(uint64_t));
        if (!s->gates && r == 0)
                r = -ENOMEM;
        for (size_t i = 0; s->gates && i < set.n_entries; i++) {
                const FilterEntry *e = &set.entries[i];
                FilterGateWord w[FILTER_GATE_WORDS_MAX];
                size_t n;

                s->classes[e->key.shape] |= filter_entry_classes(&set.masks[e->key.shape],
                                                                 &e->key.match);
                n = filter_gate_words(s->flags[e->key.shape], e->key.shape, &e->key.match, w);
                for (size_t j = 0; j < n; j++)
                        s->gates[w[j].index] |= w[j].bits;
        }
        filter_set_done(&set);
        return r;
}

static int load_guard(struct rule_set *s, struct guard_bpf **ret) {
        struct guard_bpf *g = guard_bpf__open();
        uint32_t state = 0;
        int r;

        if (!g)
                return -errno;
        bpf_map__set_max_entries(g->maps.flows, GUARD_FLOWS);
        bpf_map__set_max_entries(g->maps.icmp_flows, 4096);
        r = guard_bpf__load(g);
        if (r == 0)
                r = load_rules(bpf_map__fd(g->maps.filter_state), bpf_map__fd(g->maps.filter_banks),
                               bpf_map__fd(g->maps.filter_rules),
                               bpf_map__fd(g->maps.filter_rules4),
                               bpf_map__fd(g->maps.filter_gates), &state, s);
        if (r < 0) {
                guard_bpf__destroy(g);
                return r;
        }
        *ret = g;
        return 0;
}

/* ---- the programs and packets ---- */

enum prog_kind { PROG_GUARD, PROG_XDP_FILTER, PROG_BARE };
#define N_PROGS (2 * N_SETS + 1)

struct prog {
        enum prog_kind kind;
        unsigned set; /* index into set_rules (bare: the big set, for its match4 packet) */
        int fd;       /* < 0: not loaded (no xdp-filter) */
};

static struct prog progs[N_PROGS];

static const char *prog_name(const struct prog *p) {
        return p->kind == PROG_GUARD ? "guard" : p->kind == PROG_XDP_FILTER ? "xdp-filter" : "bare";
}

enum { PKT_UDP4, PKT_SYN4, PKT_ICMP4, PKT_UDP6, PKT_MATCH4, N_PKTS };
static const char *const pkt_names[N_PKTS] = { "udp4", "syn4", "icmp4", "udp6", "match4" };

/* Offsets of the source address in the frames below (Ethernet, then IPv4 or IPv6). */
#define SRC4_OFF (14 + 12)
#define SRC6_OFF (14 + 8)

static void build_packet(struct pkt *p, int kind, uint32_t match_src) {
        char src[INET_ADDRSTRLEN];

        pkt_init(p);
        switch (kind) {
        case PKT_UDP4:
        case PKT_MATCH4:
                if (kind == PKT_MATCH4)
                        inet_ntop(AF_INET, &match_src, src, sizeof(src));
                pkt_eth(p, 0x0800, 0, NULL);
                pkt_ipv4(p, kind == PKT_MATCH4 ? src : "198.18.0.1", BENCH_DST, IPPROTO_UDP,
                         &(struct ip4_opts) { .ttl = 57, .id = 1 });
                pkt_udp(p, 1024, 53, 22, 0);
                break;
        case PKT_SYN4:
                pkt_eth(p, 0x0800, 0, NULL);
                pkt_ipv4(p, "198.18.0.1", BENCH_DST, IPPROTO_TCP,
                         &(struct ip4_opts) { .ttl = 57, .id = 1 });
                pkt_tcp(p, &(struct tcp_opts) { .sport = 1024, .dport = 80, .seq = 1,
                                                .flags = TCP_SYN, .window = 64240 });
                break;
        case PKT_ICMP4:
                pkt_eth(p, 0x0800, 0, NULL);
                pkt_ipv4(p, "198.18.0.1", BENCH_DST, IPPROTO_ICMP,
                         &(struct ip4_opts) { .ttl = 57 });
                pkt_icmp(p, 8, 0, 0x00010001);
                break;
        case PKT_UDP6:
                pkt_eth(p, 0x86dd, 0, NULL);
                pkt_ipv6(p, "2001:db8::1", "2001:db8::2", IPPROTO_UDP, 57, 0);
                pkt_udp(p, 1024, 53, 2, 0);
                break;
        }
        pkt_finish(p, 64);
}

/* Sources of the table mode: 198.18.0.0/15 and 2001:db8::/96, no rule covers them. */
static void set_source(struct pkt *p, int kind, uint32_t j) {
        uint32_t a = kind == PKT_UDP6 ? htonl(j + 1) : htonl(0xc6120000u + j);

        memcpy(p->data + (kind == PKT_UDP6 ? SRC6_OFF + 12 : SRC4_OFF), &a, 4);
}

/* Sources of the flood mode: packet i is a SYN from 198.18.0.0/15 address by address, then
 * the next source port: a tuple no packet had before, so every one is a flow's first packet
 * and a flow insert (the table is an LRU: a full one evicts). */
#define TCP_SPORT4_OFF (14 + 20)

static void set_flood_source(struct pkt *p, uint64_t i) {
        uint32_t a = htonl(0xc6120000u + (uint32_t) (i & 0x1ffff));
        uint16_t port = htons((uint16_t) (1024 + (i >> 17)));

        memcpy(p->data + SRC4_OFF, &a, 4);
        memcpy(p->data + TCP_SPORT4_OFF, &port, 2);
}

static uint32_t expected(const struct prog *p, int kind) {
        if (p->kind != PROG_BARE && kind == PKT_MATCH4 && set_rules[p->set] > 0)
                return 1; /* XDP_DROP */
        return 2;         /* XDP_PASS */
}

static int test_run(const struct prog *p, const struct pkt *pkt, int kind, unsigned repeat,
                    double *ret_cpu_ns, uint64_t *ret_kernel_ns) {
        LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = pkt->data,
                    .data_size_in = (uint32_t) pkt->len, .repeat = (int) repeat);
        double t0 = cpu_ns();
        int r = bpf_prog_test_run_opts(p->fd, &o);

        if (r < 0)
                return r;
        *ret_cpu_ns = cpu_ns() - t0;
        if (o.retval != expected(p, kind)) {
                fail("%s with %u rules returned %u for %s, expected %u", prog_name(p),
                     set_rules[p->set], o.retval, pkt_names[kind], expected(p, kind));
                return -EPROTO;
        }
        /* Whole ns per repetition; see bench-xdp for why not wall time. */
        *ret_kernel_ns = (uint64_t) o.duration * repeat;
        return 0;
}

struct options {
        bool json;
        bool verbose;
        unsigned rounds;
        unsigned repeat;
        unsigned runs;
        const char *xdp_filter;
};

struct result {
        const char *mode;
        int kind;
        double guard[N_SETS];
        double xf[N_SETS]; /* < 0: not measured */
        double bare;
        /* the spread of the rounds */
        double guard_min[N_SETS], guard_max[N_SETS], xf_min[N_SETS], xf_max[N_SETS];
};

static void store_result(struct result *res, const struct options *o, const double *v) {
        for (int i = 0; i < N_PROGS; i++) {
                const struct prog *p = &progs[i];
                double *rounds = (double *) &v[(size_t) i * o->rounds];
                /* median() sorts: the first and the last round are then the fastest and the
                 * slowest. */
                double m = p->fd < 0 ? -1 : median(rounds, o->rounds);
                double lo = p->fd < 0 ? -1 : rounds[0];
                double hi = p->fd < 0 ? -1 : rounds[o->rounds - 1];

                if (p->kind == PROG_GUARD) {
                        res->guard[p->set] = m;
                        res->guard_min[p->set] = lo;
                        res->guard_max[p->set] = hi;
                } else if (p->kind == PROG_XDP_FILTER) {
                        res->xf[p->set] = m;
                        res->xf_min[p->set] = lo;
                        res->xf_max[p->set] = hi;
                } else
                        res->bare = m;
        }
}

static int measure_hot(const struct options *o, const struct rule_set *sets,
                       struct result *res) {
        static struct pkt pkts[N_PKTS][N_SETS];
        double *v = calloc((size_t) N_PKTS * N_PROGS * o->rounds, sizeof(double));

        if (!v)
                return -ENOMEM;
        for (int k = 0; k < N_PKTS; k++)
                for (int s = 0; s < N_SETS; s++)
                        /* The empty set has no middle rule: the 1-rule set's source, unmatched. */
                        build_packet(&pkts[k][s], k, sets[s].n ? sets[s].match_src :
                                                               sets[1].match_src);
        for (unsigned r = 0; r < o->rounds; r++)
                for (int k = 0; k < N_PKTS; k++) {
                        unsigned slice = o->repeat / HOT_SLICES;
                        double n = (double) slice * HOT_SLICES, cpu_sum[N_PROGS] = { 0 };
                        uint64_t kern_sum[N_PROGS] = { 0 };

                        /* Slice after slice, every program in turn (as bench-xdp), a different
                         * one first each time. */
                        for (unsigned s = 0; s < HOT_SLICES; s++)
                                for (int i = 0; i < N_PROGS; i++) {
                                        int pi = (int) ((r + s + (unsigned) i) % N_PROGS);
                                        const struct prog *p = &progs[pi];
                                        double cpu;
                                        uint64_t kern;
                                        int e;

                                        if (p->fd < 0)
                                                continue;
                                        e = test_run(p, &pkts[k][p->set], k, slice, &cpu, &kern);
                                        if (e < 0) {
                                                free(v);
                                                return e;
                                        }
                                        cpu_sum[pi] += cpu;
                                        kern_sum[pi] += kern;
                                }
                        for (int pi = 0; pi < N_PROGS; pi++) {
                                const struct prog *p = &progs[pi];

                                if (p->fd < 0)
                                        continue;
                                v[((size_t) k * N_PROGS + (size_t) pi) * o->rounds + r] =
                                        cpu_sum[pi] / n;
                                if (o->verbose)
                                        fprintf(stderr, "round %u hot %s %s/%u: %.1f ns "
                                                "(kernel %.0f)\n", r, pkt_names[k],
                                                prog_name(p), set_rules[p->set],
                                                cpu_sum[pi] / n, (double) kern_sum[pi] / n);
                        }
                }
        for (int k = 0; k < N_PKTS; k++) {
                res[k] = (struct result) { .mode = "hot", .kind = k };
                store_result(&res[k], o, &v[(size_t) k * N_PROGS * o->rounds]);
        }
        free(v);
        return 0;
}

/*
 * --runs packets of `kind` from as many sources, one repetition per run (see bench-xdp: runs
 * with more swap the program into the dispatcher, milliseconds each). A first pass, not
 * measured, creates the guards' flow entries, so that every round measures lookups.
 * flood: SYNs from sources no packet came from (set_flood_source()), no first pass: every
 * packet pays classification, the allowlist and ban check and a flow insert; every program
 * sees the same sources, each new to its own table.
 */
static int measure_table(const struct options *o, int kind, bool flood, struct result *res) {
        double *v = calloc((size_t) N_PROGS * o->rounds, sizeof(double));
        struct pkt pkt;
        double cpu;
        uint64_t kern;
        int e = 0;

        if (!v)
                return -ENOMEM;
        build_packet(&pkt, kind, 0);
        for (int i = 0; i < N_PROGS && e >= 0 && !flood; i++)
                for (unsigned n = 0; n < o->runs && e >= 0 && progs[i].kind == PROG_GUARD; n++) {
                        set_source(&pkt, kind, n);
                        e = test_run(&progs[i], &pkt, kind, 1, &cpu, &kern);
                }
        for (unsigned r = 0; r < o->rounds && e >= 0; r++)
                for (int i = 0; i < N_PROGS && e >= 0; i++) {
                        int pi = (int) ((r + (unsigned) i) % N_PROGS);
                        const struct prog *p = &progs[pi];
                        uint64_t total = 0;

                        if (p->fd < 0)
                                continue;
                        for (unsigned n = 0; n < o->runs && e >= 0; n++) {
                                if (flood)
                                        set_flood_source(&pkt, (uint64_t) r * o->runs + n);
                                else
                                        set_source(&pkt, kind, n);
                                e = test_run(p, &pkt, kind, 1, &cpu, &kern);
                                total += kern;
                        }
                        v[(size_t) pi * o->rounds + r] = (double) total / o->runs;
                        if (o->verbose)
                                fprintf(stderr, "round %u %s %s %s/%u: %.1f ns\n", r,
                                        flood ? "flood" : "table", pkt_names[kind],
                                        prog_name(p), set_rules[p->set],
                                        (double) total / o->runs);
                }
        if (e >= 0) {
                *res = (struct result) { .mode = flood ? "flood" : "table", .kind = kind };
                store_result(res, o, v);
        }
        free(v);
        return e;
}

/* ---- applying a big set ---- */

#define SINGLE_REPS 31

struct apply_result {
        size_t rules;
        /* one rule added, then deleted, with the set held: index + kernel, ms; min/median/max */
        double add_ms[3], delete_ms[3];
        double apply_compile, apply_load;   /* ms, into fresh maps */
        double first_compile, first_load;   /* replace, the other bank empty */
        double steady_compile, steady_load; /* replace, the other bank holds the set before */
};

static int clone_map(const struct bpf_map *m) {
        LIBBPF_OPTS(bpf_map_create_opts, o, .map_flags = bpf_map__map_flags(m));
        int fd = bpf_map_create(bpf_map__type(m), bpf_map__name(m), bpf_map__key_size(m),
                                bpf_map__value_size(m), bpf_map__max_entries(m), &o);

        return fd < 0 ? -errno : fd;
}

static int timed_load(int fds[5], uint32_t *state, struct rule_set *s, double *ret_compile,
                      double *ret_load) {
        FilterSet set;
        char *err = NULL;
        double t0 = wall_ms(), t1;
        int r;

        r = filter_compile(s->rules, s->n, &set, &err);
        if (r < 0) {
                fail("cannot compile %zu rules: %s", s->n, err ? err : strerror(-r));
                free(err);
                return r;
        }
        t1 = wall_ms();
        r = filter_kernel_load(fds[0], fds[1], fds[2], fds[3], fds[4], state, &set);
        *ret_load = wall_ms() - t1;
        *ret_compile = t1 - t0;
        filter_set_done(&set);
        return r;
}

static void spread(double *v, unsigned n, double ret[3]) {
        ret[1] = median(v, n); /* sorts */
        ret[0] = v[0];
        ret[2] = v[n - 1];
}

/*
 * One Delete and one Add with the set `s` held, as the daemon makes them: a rule of the set
 * out of the index the daemon keeps (filter_index_remove) and its entries out of the active
 * bank (filter_kernel_apply), then back in (filter_index_add, ranked between its neighbours).
 * As bench-loop: the set is full, so the Add comes after the Delete.
 */
static int measure_single(int fds[5], uint32_t *state, struct rule_set *s,
                          struct apply_result *res) {
        double add[SINGLE_REPS], del[SINGLE_REPS];
        uint64_t saved_rng = rng_state;
        FilterIndex ix;
        FilterSet set;
        char *err = NULL;
        int r;

        r = filter_compile_indexed(s->rules, s->n, &set, &ix, &err);
        if (r < 0) {
                fail("cannot compile %zu rules: %s", s->n, err ? err : strerror(-r));
                free(err);
                return r;
        }
        r = filter_kernel_load(fds[0], fds[1], fds[2], fds[3], fds[4], state, &set);
        filter_set_done(&set);
        rng_state = SEED ^ 0xadd;
        for (unsigned i = 0; i < SINGLE_REPS && r >= 0; i++) {
                const Filter *f = s->rules[rng_below((uint32_t) s->n)];
                FilterDelta d = {}, e = {};
                double t0, t1, t2;

                t0 = wall_ms();
                r = filter_index_remove(&ix, f, &d);
                if (r >= 0)
                        r = filter_kernel_apply(fds[0], fds[1], fds[2], fds[3], fds[4], state, &ix, &d);
                t1 = wall_ms();
                if (r >= 0)
                        r = filter_index_add(&ix, f, &e, &err);
                if (r >= 0)
                        r = filter_kernel_apply(fds[0], fds[1], fds[2], fds[3], fds[4], state, &ix, &e);
                t2 = wall_ms();
                del[i] = t1 - t0;
                add[i] = t2 - t1;
                filter_delta_done(&d);
                filter_delta_done(&e);
        }
        filter_index_done(&ix);
        rng_state = saved_rng;
        if (r < 0) {
                fail("one rule with %zu held: %s", s->n, err ? err : strerror(-r));
                free(err);
                return r;
        }
        spread(add, SINGLE_REPS, res->add_ms);
        spread(del, SINGLE_REPS, res->delete_ms);
        return 0;
}

/*
 * Fresh maps shaped like the guard's (the daemon's first start), then a, b, a, b: the first
 * replacement finds the other bank empty, the later ones first delete the set before last
 * from it (filter_kernel_load clears the bank it is about to fill): the steady state.
 */
static int measure_apply(const struct guard_bpf *ref, struct rule_set *a, struct rule_set *b,
                         struct apply_result *res) {
        double ac[APPLY_REPS], al[APPLY_REPS], fc[APPLY_REPS], fl[APPLY_REPS];
        double sc[2 * APPLY_REPS], sl[2 * APPLY_REPS];
        int r = 0;

        for (unsigned rep = 0; rep < APPLY_REPS && r >= 0; rep++) {
                int fds[5] = { clone_map(ref->maps.filter_state), clone_map(ref->maps.filter_banks),
                               clone_map(ref->maps.filter_rules),
                               clone_map(ref->maps.filter_rules4),
                               clone_map(ref->maps.filter_gates) };
                uint32_t state = 0;

                for (int i = 0; i < 5; i++)
                        if (fds[i] < 0)
                                r = fds[i];
                if (r >= 0)
                        r = timed_load(fds, &state, a, &ac[rep], &al[rep]);
                if (r >= 0)
                        r = timed_load(fds, &state, b, &fc[rep], &fl[rep]);
                if (r >= 0)
                        r = timed_load(fds, &state, a, &sc[2 * rep], &sl[2 * rep]);
                if (r >= 0)
                        r = timed_load(fds, &state, b, &sc[2 * rep + 1], &sl[2 * rep + 1]);
                if (r >= 0 && rep == 0)
                        r = measure_single(fds, &state, a, res);
                for (int i = 0; i < 5; i++)
                        if (fds[i] >= 0)
                                close(fds[i]);
        }
        if (r < 0)
                return r;
        res->rules = a->n;
        res->apply_compile = median(ac, APPLY_REPS);
        res->apply_load = median(al, APPLY_REPS);
        res->first_compile = median(fc, APPLY_REPS);
        res->first_load = median(fl, APPLY_REPS);
        res->steady_compile = median(sc, 2 * APPLY_REPS);
        res->steady_load = median(sl, 2 * APPLY_REPS);
        return 0;
}

/* ---- output ---- */

static double ratio_big_one(const struct result *r) {
        return r->guard[BIG_SET] / r->guard[1];
}

/* Hash lookups the classifier does for the hot packet of this kind with set s: the shapes
 * with an entry of the packet's family and protocol whose gates let it through. */
static unsigned lookups(const struct rule_set *s, int kind) {
        struct ps_match m = {
                .family = kind == PKT_UDP6 ? PS_FAMILY_IPV6 : PS_FAMILY_IPV4,
                .proto = kind == PKT_SYN4 ? IPPROTO_TCP : kind == PKT_ICMP4 ? IPPROTO_ICMP :
                                                                             IPPROTO_UDP,
        };
        uint8_t class = ps_filter_class(m.family, m.proto);
        unsigned n = 0;

        switch (kind) {
        case PKT_UDP6:
                inet_pton(AF_INET6, "2001:db8::1", m.src);
                m.sport = 1024;
                m.dport = 53;
                break;
        case PKT_ICMP4:
                inet_pton(AF_INET, "198.18.0.1", m.src);
                m.icmp_type = 8;
                break;
        default:
                if (kind == PKT_MATCH4)
                        m.src[0] = s->match_src;
                else
                        inet_pton(AF_INET, "198.18.0.1", m.src);
                m.sport = 1024;
                m.dport = kind == PKT_SYN4 ? 80 : 53;
                m.tcp_flags = kind == PKT_SYN4 ? 0x02 : 0;
                break;
        }
        for (unsigned i = 0; i < s->n_shapes; i++)
                n += (s->classes[i] & class) && s->gates &&
                     filter_gates_pass(s->flags[i], i, s->gates, &m);
        return n;
}

static void print_row(const char *label, const double *v, const char *fmt) {
        printf("  %-18s", label);
        for (int s = 0; s < N_SETS; s++)
                if (v[s] < 0)
                        printf(" %9s", "-");
                else
                        printf(fmt, v[s]);
        putchar('\n');
}

static void print_result(const struct result *r, const struct rule_set *sets) {
        double d[N_SETS], q[N_SETS], b[N_SETS];
        double ratio = ratio_big_one(r);
        unsigned l1 = lookups(&sets[1], r->kind), l2 = lookups(&sets[2], r->kind);

        for (int s = 0; s < N_SETS; s++) {
                b[s] = r->bare;
                d[s] = r->guard[s] - r->bare;
                q[s] = r->xf[s] < 0 ? -1 : r->guard[s] / r->xf[s];
        }
        printf("%s %s%s\n", r->mode, pkt_names[r->kind],
               r->kind == PKT_MATCH4 ? " (matches the middle rule; 0 rules: nothing to match)" :
               !strcmp(r->mode, "flood") ? " (matches no rule; every packet from a new source)" :
                                           " (matches no rule)");
        printf("  %-18s", "rules");
        for (int s = 0; s < N_SETS; s++)
                printf(" %9u", set_rules[s]);
        putchar('\n');
        print_row("guard", r->guard, " %9.1f");
        print_row("  min", r->guard_min, " %9.1f");
        print_row("  max", r->guard_max, " %9.1f");
        print_row("xdp-filter", r->xf, " %9.1f");
        print_row("  min", r->xf_min, " %9.1f");
        print_row("  max", r->xf_max, " %9.1f");
        print_row("bare", b, " %9.1f");
        print_row("guard - bare", d, " %9.1f");
        print_row("guard / xdp-filter", q, " %9.2f");
        printf("  guard %u ÷ 1 rule: %.2f (goal <= 1.25: %s", set_rules[BIG_SET], ratio,
               ratio <= 1.25 ? "met)" : "missed");
        if (ratio > 1.25)
                printf(" by %.0f%%)", (ratio / 1.25 - 1) * 100);
        if (!strcmp(r->mode, "flood") && r->guard[1] > 0 && r->guard[BIG_SET] > 0 && r->xf[BIG_SET] > 0)
                printf("\n  flood, Mpps per core: guard %.2f at 1 rule, %.2f at %u rules; "
                       "xdp-filter %.2f at %u", 1e3 / r->guard[1], 1e3 / r->guard[BIG_SET],
                       set_rules[BIG_SET], 1e3 / r->xf[BIG_SET], set_rules[BIG_SET]);
        printf("\n  shapes looked up %u -> %u (1 -> %u rules): %+.1f ns, %.1f per lookup; "
               "%u -> %u rules, same shapes: %+.1f ns, ratio %.2f\n\n", l1, l2, set_rules[2],
               r->guard[2] - r->guard[1],
               l2 > l1 ? (r->guard[2] - r->guard[1]) / (l2 - l1) : 0.0, set_rules[2],
               set_rules[BIG_SET], r->guard[BIG_SET] - r->guard[2],
               r->guard[BIG_SET] / r->guard[2]);
}

static void print_text(const struct options *o, const struct rule_set *sets,
                       const struct result *res, size_t n_res, const struct apply_result *ap,
                       const char *xf_path, const double load0[3], const double load1[3],
                       int cpu) {
        struct utsname u;

        uname(&u);
        printf("Filter classifier cost under BPF_PROG_TEST_RUN: median of %u rounds (min and "
               "max below it), ns per packet\n", o->rounds);
        printf("kernel %s, %ld CPUs, run pinned to CPU %d; load average %.2f %.2f %.2f at start, "
               "%.2f %.2f %.2f at end\n", u.release, sysconf(_SC_NPROCESSORS_ONLN), cpu,
               load0[0], load0[1], load0[2], load1[0], load1[1], load1[2]);
        printf("hot: one packet, %u repetitions per run, CPU time; table: %u packets from "
               "distinct sources, one repetition per run, kernel time; a hot run made of %u "
               "slices, taken in turn with the other programs'\n", o->repeat, o->runs,
               HOT_SLICES);
        printf("xdp-filter: %s\n\n", xf_path ? xf_path : "not found (apt install xdp-tools)");

        printf("rule sets (seed %#llx; all drop; the middle rule is an IPv4 /32)\n",
               (unsigned long long) SEED);
        printf("  %9s %7s %8s %9s   xdp-filter: %7s %7s %7s %9s\n", "rules", "shapes",
               "IPv6>/32", "entries", "ports", "ipv4", "ipv6", "not held");
        for (int s = 0; s < N_SETS; s++)
                printf("  %9u %7u %8u %9zu   %11s %7zu %7zu %7zu %9zu\n", set_rules[s],
                       sets[s].n_shapes, sets[s].n_v6_shapes, sets[s].n_entries, "",
                       sets[s].xf_ports, sets[s].xf_v4, sets[s].xf_v6, sets[s].xf_not_held);
        printf("  (IPv6>/32: shapes of IPv6 prefixes longer than /32, which IPv4 packets skip)\n");
        printf("  xdp-filter matches exact ports and whole addresses only: the IPv4 /24, IPv6 /64 "
               "and ICMP type rules\n  are not in its maps; port ranges are, port by port (its "
               "port map is an array indexed by port).\n\n");

        for (size_t i = 0; i < n_res; i++)
                print_result(&res[i], sets);

        printf("applying %zu rules (wall time, median of %u fresh starts): compile %.1f ms + "
               "load %.1f ms = %.1f ms (goal < 1 s: %s)\n", ap->rules, APPLY_REPS,
               ap->apply_compile, ap->apply_load, ap->apply_compile + ap->apply_load,
               ap->apply_compile + ap->apply_load < 1000 ? "met" : "missed");
        printf("replacing them by another %zu, other bank empty: compile %.1f ms + load %.1f ms = "
               "%.1f ms\n", ap->rules, ap->first_compile, ap->first_load,
               ap->first_compile + ap->first_load);
        printf("replacing them by another %zu, steady state (the set before last deleted from the "
               "bank first): compile %.1f ms + load %.1f ms = %.1f ms\n", ap->rules,
               ap->steady_compile, ap->steady_load, ap->steady_compile + ap->steady_load);
        printf("one rule deleted with %zu held, index + kernel (wall time, min/median/max of "
               "%u): %.3f / %.3f / %.3f ms\n", ap->rules, SINGLE_REPS, ap->delete_ms[0],
               ap->delete_ms[1], ap->delete_ms[2]);
        printf("that rule added back: %.3f / %.3f / %.3f ms (goal well < 5 ms: %s)\n",
               ap->add_ms[0], ap->add_ms[1], ap->add_ms[2], ap->add_ms[2] < 5 ? "met" : "missed");
}

static void print_json_array(const double *v) {
        putchar('[');
        for (int s = 0; s < N_SETS; s++) {
                if (v[s] < 0)
                        printf("%snull", s ? "," : "");
                else
                        printf("%s%.2f", s ? "," : "", v[s]);
        }
        putchar(']');
}

static void print_json(const struct options *o, const struct rule_set *sets,
                       const struct result *res, size_t n_res, const struct apply_result *ap,
                       const char *xf_path, const double load0[3], const double load1[3],
                       int cpu) {
        struct utsname u;

        uname(&u);
        printf("{\"kernel\":");
        print_json_string(u.release);
        printf(",\"cpus\":%ld,\"pinned_cpu\":%d,\"loadavg_start\":[%.2f,%.2f,%.2f],"
               "\"loadavg_end\":[%.2f,%.2f,%.2f],\"rounds\":%u,\"repeat\":%u,\"table_runs\":%u,"
               "\"seed\":%llu,\"xdp_filter\":", sysconf(_SC_NPROCESSORS_ONLN), cpu, load0[0],
               load0[1], load0[2], load1[0], load1[1], load1[2], o->rounds, o->repeat, o->runs,
               (unsigned long long) SEED);
        if (xf_path)
                print_json_string(xf_path);
        else
                fputs("null", stdout);
        printf(",\"sets\":[");
        for (int s = 0; s < N_SETS; s++)
                printf("%s{\"rules\":%u,\"shapes\":%u,\"shapes_ipv6_only\":%u,\"entries\":%zu,"
                       "\"xdp_filter_ports\":%zu,\"xdp_filter_ipv4\":%zu,\"xdp_filter_ipv6\":%zu,"
                       "\"xdp_filter_rules_not_held\":%zu}", s ? "," : "", set_rules[s],
                       sets[s].n_shapes, sets[s].n_v6_shapes, sets[s].n_entries,
                       sets[s].xf_ports, sets[s].xf_v4, sets[s].xf_v6, sets[s].xf_not_held);
        printf("],\"results\":[");
        for (size_t i = 0; i < n_res; i++) {
                const struct result *r = &res[i];
                double d[N_SETS], q[N_SETS];

                for (int s = 0; s < N_SETS; s++) {
                        d[s] = r->guard[s] - r->bare;
                        q[s] = r->xf[s] < 0 ? -1 : r->guard[s] / r->xf[s];
                }
                printf("%s{\"mode\":\"%s\",\"packet\":\"%s\",\"matches\":%s,\"guard_ns\":",
                       i ? "," : "", r->mode, pkt_names[r->kind],
                       r->kind == PKT_MATCH4 ? "true" : "false");
                print_json_array(r->guard);
                printf(",\"guard_min_ns\":");
                print_json_array(r->guard_min);
                printf(",\"guard_max_ns\":");
                print_json_array(r->guard_max);
                printf(",\"xdp_filter_ns\":");
                print_json_array(r->xf);
                printf(",\"xdp_filter_min_ns\":");
                print_json_array(r->xf_min);
                printf(",\"xdp_filter_max_ns\":");
                print_json_array(r->xf_max);
                printf(",\"bare_ns\":%.2f,\"guard_minus_bare_ns\":", r->bare);
                print_json_array(d);
                printf(",\"guard_over_xdp_filter\":");
                print_json_array(q);
                printf(",\"lookups\":[");
                for (int s = 0; s < N_SETS; s++)
                        printf("%s%u", s ? "," : "", lookups(&sets[s], r->kind));
                printf("],\"guard_big_over_one\":%.3f,\"guard_big_over_100\":%.3f}",
                       ratio_big_one(r), r->guard[BIG_SET] / r->guard[2]);
        }
        printf("],\"apply\":{\"rules\":%zu,\"apply_compile_ms\":%.2f,\"apply_load_ms\":%.2f,"
               "\"replace_first_compile_ms\":%.2f,\"replace_first_load_ms\":%.2f,"
               "\"replace_steady_compile_ms\":%.2f,\"replace_steady_load_ms\":%.2f,"
               "\"add_one_ms\":[%.3f,%.3f,%.3f],\"delete_one_ms\":[%.3f,%.3f,%.3f]}}\n",
               ap->rules, ap->apply_compile, ap->apply_load, ap->first_compile, ap->first_load,
               ap->steady_compile, ap->steady_load, ap->add_ms[0], ap->add_ms[1], ap->add_ms[2],
               ap->delete_ms[0], ap->delete_ms[1], ap->delete_ms[2]);
}

/* ---- main ---- */

static void usage(FILE *f) {
        fprintf(f, "usage: bench-filter [--json] [--verbose] [--rounds N] [--repeat N] "
                   "[--runs N] [--xdp-filter PATH] [--no-flow-cache]\n");
}

int main(int argc, char *argv[]) {
        static const struct option longopts[] = {
                { "json", no_argument, NULL, 'j' },
                { "verbose", no_argument, NULL, 'v' },
                { "rounds", required_argument, NULL, 'r' },
                { "repeat", required_argument, NULL, 'n' },
                { "runs", required_argument, NULL, 'u' },
                { "xdp-filter", required_argument, NULL, 'x' },
                { "no-flow-cache", no_argument, NULL, 'C' },
                { "help", no_argument, NULL, 'h' },
                {}
        };
        static const int table_kinds[] = { PKT_UDP4, PKT_UDP6 };
        struct options o = { .rounds = 7, .repeat = 1000000, .runs = 100000 };
        struct rule_set sets[N_SETS] = {}, other = {};
        struct guard_bpf *guards[N_SETS] = {};
        struct bpf_object *xfs[N_SETS] = {};
        struct bare_bpf *bare = NULL;
        struct result res[N_PKTS + 3];
        struct apply_result ap = {};
        double load0[3], load1[3];
        char *xf_path = NULL;
        size_t n_res = 0;
        cpu_set_t cpus;
        int c, cpu, r, ret = 1;

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
                case 'u':
                        if (parse_uint(optarg, "--runs", 0, 131072, &o.runs))
                                return 2;
                        break;
                case 'x':
                        o.xdp_filter = optarg;
                        break;
                case 'C':
                        no_flow_cache = true;
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

        read_loadavg(load0);
        libbpf_set_print(libbpf_quiet);

        /* One CPU for the whole run, as in bench-xdp. */
        cpu = sched_getcpu() < 0 ? 0 : sched_getcpu();
        CPU_ZERO(&cpus);
        CPU_SET(cpu, &cpus);
        (void) sched_setaffinity(0, sizeof(cpus), &cpus);

        for (int s = 0; s < N_SETS; s++) {
                r = rule_set_make(&sets[s], set_rules[s], SEED + set_rules[s]);
                if (r < 0) {
                        fail("cannot generate %u rules: %s", set_rules[s], strerror(-r));
                        goto out;
                }
        }
        /* The replacement of the big set: same mix, other addresses and ports. */
        r = rule_set_make(&other, set_rules[BIG_SET], ~SEED);
        if (r < 0) {
                fail("cannot generate the second big set: %s", strerror(-r));
                goto out;
        }

        xf_path = o.xdp_filter ? strdup(o.xdp_filter) : find_xdp_filter();
        if (!xf_path)
                fprintf(stderr, "bench-filter: %s.o not found (apt install xdp-tools); its rows "
                                "stay empty\n", XDP_FILTER_PROG);
        for (int s = 0; s < N_SETS; s++) {
                progs[s] = (struct prog) { .kind = PROG_GUARD, .set = (unsigned) s, .fd = -1 };
                progs[N_SETS + s] = (struct prog) { .kind = PROG_XDP_FILTER, .set = (unsigned) s,
                                                    .fd = -1 };
                r = load_guard(&sets[s], &guards[s]);
                if (r < 0) {
                        fail("cannot load the guard with %u rules: %s (root needed)",
                             set_rules[s], strerror(-r));
                        goto out;
                }
                progs[s].fd = bpf_program__fd(guards[s]->progs.xdp_guard);
                if (!xf_path)
                        continue;
                r = load_xdp_filter(xf_path, &xfs[s], &progs[N_SETS + s].fd);
                if (r < 0) {
                        fail("cannot load %s from %s: %s", XDP_FILTER_PROG, xf_path,
                             strerror(-r));
                        goto out;
                }
                r = fill_xdp_filter(xfs[s], &sets[s]);
                if (r < 0) {
                        fail("cannot fill xdp-filter's maps with %u rules: %s", set_rules[s],
                             strerror(-r));
                        goto out;
                }
        }
        bare = bare_bpf__open_and_load();
        if (!bare) {
                fail("cannot load the bare program: %s", strerror(errno));
                goto out;
        }
        progs[2 * N_SETS] = (struct prog) { .kind = PROG_BARE, .set = BIG_SET,
                                            .fd = bpf_program__fd(bare->progs.xdp_bare) };

        r = measure_hot(&o, sets, res);
        if (r < 0) {
                fail("test run failed: %s", strerror(-r));
                goto out;
        }
        n_res = N_PKTS;
        for (size_t k = 0; o.runs && k < sizeof(table_kinds) / sizeof(table_kinds[0]); k++) {
                r = measure_table(&o, table_kinds[k], false, &res[n_res]);
                if (r < 0) {
                        fail("test run failed: %s", strerror(-r));
                        goto out;
                }
                n_res++;
        }
        if (o.runs) {
                r = measure_table(&o, PKT_SYN4, true, &res[n_res]);
                if (r < 0) {
                        fail("test run failed: %s", strerror(-r));
                        goto out;
                }
                n_res++;
        }
        r = measure_apply(guards[0], &sets[BIG_SET], &other, &ap);
        if (r < 0) {
                fail("applying %u rules failed: %s", set_rules[BIG_SET], strerror(-r));
                goto out;
        }

        read_loadavg(load1);
        if (o.json)
                print_json(&o, sets, res, n_res, &ap, xf_path, load0, load1, cpu);
        else
                print_text(&o, sets, res, n_res, &ap, xf_path, load0, load1, cpu);
        ret = 0;
out:
        bare_bpf__destroy(bare);
        for (int s = 0; s < N_SETS; s++) {
                bpf_object__close(xfs[s]);
                guard_bpf__destroy(guards[s]);
                rule_set_done(&sets[s]);
        }
        rule_set_done(&other);
        free(xf_path);
        return ret;
}
