/* SPDX-License-Identifier: MIT */
/*
 * What a ban lookup costs per packet as the ban tables grow. BPF_PROG_TEST_RUN of the guard as
 * it is built (its own skeleton, one instance per table below, each with maps of its own), next
 * to bare XDP (bench/bare.bpf.c, the floor) and Debian's xdp-filter in allow-all mode, all
 * loaded in this process and run interleaved round after round, pinned to one CPU:
 *
 *   exact-1      one exact IPv4 ban
 *   exact-1M     1,000,000 exact IPv4 bans (the hash table holds 1,048,576)
 *   cidr-1/8/32  prefix bans of 1, 8 and 32 distinct prefix lengths (256 prefixes per length,
 *                the packet's source covered at every length), no exact ban
 *
 * Two 64-byte UDP frames: "banned" from 10.0.0.1 (in every table: the guard drops it) and
 * "clean" from 198.18.0.5 (in none: the common case, the guard passes it). The return code of
 * every run is checked, so a table that does not do what it should stops the bench.
 * Per packet: this thread's CPU time over --repeat repetitions; min/median/max over the rounds.
 *
 * Usage: bench-bans [--rounds N (5)] [--repeat N (100000)] [--xdp-filter PATH]   (root)
 */
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <getopt.h>
#include <glob.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bare.skel.h"
#include "guard.h"
#include "guard.skel.h"
#include "packet.h"

#define XDP_FILTER_PROG "xdpfilt_alw_all"
#define EXACT_MANY 1000000u
#define PER_LENGTH 256u

enum { T_EXACT1, T_EXACT1M, T_CIDR1, T_CIDR8, T_CIDR32, N_GUARDS };
enum { P_BARE = N_GUARDS, P_XDP_FILTER, N_PROGS };
static const char *const label[N_PROGS] = { "exact-1", "exact-1M", "cidr-1", "cidr-8",
                                             "cidr-32", "bare", "xdp-filter" };
enum { K_BANNED, K_CLEAN, N_KINDS };
static const char *const kind_label[N_KINDS] = { "banned", "clean" };

static double thread_ns(void) {
        struct timespec ts;

        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
        return (double) ts.tv_sec * 1e9 + (double) ts.tv_nsec;
}

static int by_value(const void *a, const void *b) {
        double x = *(const double *) a, y = *(const double *) b;

        return x < y ? -1 : x > y;
}

/* Tells the program which ban tables to look up, as the daemon's ban_maps_update_presence()
 * does after filling them. */
static int mark_present(struct guard_bpf *g, const struct ps_ban_presence *pr) {
        uint32_t key = PS_BAN_PRESENCE_DAEMON;

        return bpf_map_update_elem(bpf_map__fd(g->maps.ban_presence), &key, pr, BPF_ANY) < 0
               ? -errno : 0;
}

static int put_exact(int fd, uint32_t addr_be) {
        struct ps_ban v = { .id = 1, .offenses = 1, .prefixlen = 32, .family = PS_FAMILY_IPV4 };

        return bpf_map_update_elem(fd, &addr_be, &v, BPF_ANY) < 0 ? -errno : 0;
}

/* 1,000,000 addresses from 16.0.0.0 up, and the banned source: BPF_MAP_BATCH-sized batches. */
static int fill_exact(int fd, unsigned n, uint32_t banned_be) {
        enum { CHUNK = 8192 };
        static uint32_t keys[CHUNK];
        static struct ps_ban values[CHUNK];
        int r = put_exact(fd, banned_be);

        for (unsigned done = 0; r >= 0 && done < n;) {
                LIBBPF_OPTS(bpf_map_batch_opts, o, .elem_flags = BPF_ANY);
                uint32_t k = n - done < CHUNK ? n - done : CHUNK;

                for (uint32_t i = 0; i < k; i++) {
                        keys[i] = htonl(0x10000000u + done + i);
                        values[i] = (struct ps_ban) { .id = 2 + done + i, .offenses = 1,
                                                      .prefixlen = 32, .family = PS_FAMILY_IPV4 };
                }
                if (bpf_map_update_batch(fd, keys, values, &k, &o) < 0)
                        r = -errno;
                done += k;
        }
        return r;
}

/* `lengths` distinct prefix lengths spread over 1..32 (the longest 32 only with all 32), each
 * with PER_LENGTH prefixes: the banned source's own and others below 128.0.0.0. */
static int fill_cidr(struct guard_bpf *g, unsigned lengths, uint32_t banned) {
        int fd = bpf_map__fd(g->maps.ban_cidr4);

        for (unsigned i = 0; i < lengths; i++) {
                unsigned len = lengths == 1 ? 24 : 32 - i * (32 / lengths);

                for (unsigned j = 0; j < PER_LENGTH; j++) {
                        uint32_t mask = len == 32 ? ~0u : ~(~0u >> len);
                        uint32_t a = j == 0 ? banned : (banned ^ (j * 0x01010101u)) & 0x7fffffffu;
                        struct ps_lpm4_key k = { .prefixlen = len, .addr = htonl(a & mask) };
                        struct ps_ban v = { .id = 3, .offenses = 1, .prefixlen = (uint8_t) len,
                                            .family = PS_FAMILY_IPV4 };

                        if (bpf_map_update_elem(fd, &k, &v, BPF_ANY) < 0)
                                return -errno;
                }
        }
        return mark_present(g, &(struct ps_ban_presence) { .cidr4 = 1 });
}

static void frame(struct pkt *p, const char *src) {
        pkt_init(p);
        pkt_eth(p, 0x0800, 0, NULL);
        pkt_ipv4(p, src, "198.51.100.1", 17, &(struct ip4_opts) { .ttl = 57, .id = 1 });
        pkt_udp(p, 40000, 53, 22, 0);
        pkt_finish(p, 64);
}

/* ns per packet; -EPROTO when the verdict is not the expected one. */
static int run(int fd, const struct pkt *p, unsigned repeat, int want, double *ret_ns) {
        LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = p->data, .data_size_in = (uint32_t) p->len,
                    .repeat = (int) repeat);
        double t0 = thread_ns();

        if (bpf_prog_test_run_opts(fd, &o) < 0)
                return -errno;
        *ret_ns = (thread_ns() - t0) / repeat;
        return want < 0 || (int) o.retval == want ? 0 : -EPROTO;
}

static struct guard_bpf *guard_load(uint32_t ban_slots) {
        struct guard_bpf *g = guard_bpf__open();

        if (!g)
                return NULL;
        /* Small tables where this bench does not look, so that seven instances fit. */
        bpf_map__set_max_entries(g->maps.flows, 4096);
        bpf_map__set_max_entries(g->maps.ban_v4, ban_slots);
        bpf_map__set_max_entries(g->maps.ban_v6, 1024);
        if (guard_bpf__load(g) < 0) {
                guard_bpf__destroy(g);
                return NULL;
        }
        return g;
}

int main(int argc, char **argv) {
        static const struct option opts[] = {
                { "rounds", required_argument, NULL, 'r' },
                { "repeat", required_argument, NULL, 'n' },
                { "xdp-filter", required_argument, NULL, 'x' },
                {}
        };
        unsigned rounds = 5, repeat = 100000;
        const char *xf_path = NULL;
        struct guard_bpf *g[N_GUARDS] = {};
        struct bare_bpf *bare = NULL;
        struct bpf_object *xf = NULL;
        int fd[N_PROGS], c, r = 1;
        double *v = NULL;
        struct pkt pk[N_KINDS];
        uint32_t banned;
        glob_t gl = {};
        cpu_set_t cpus;

        while ((c = getopt_long(argc, argv, "", opts, NULL)) >= 0) {
                char *end;
                unsigned long x;

                if (c == 'x') {
                        xf_path = optarg;
                        continue;
                }
                if (c != 'r' && c != 'n')
                        return 2;
                errno = 0;
                x = strtoul(optarg, &end, 10);
                if (errno || *end || x == 0 || x > 100000000) {
                        fprintf(stderr, "bench-bans: bad number '%s'\n", optarg);
                        return 2;
                }
                if (c == 'r')
                        rounds = (unsigned) x;
                else
                        repeat = (unsigned) x;
        }
        libbpf_set_print(NULL);
        CPU_ZERO(&cpus);
        CPU_SET(sched_getcpu() < 0 ? 0 : sched_getcpu(), &cpus);
        (void) sched_setaffinity(0, sizeof(cpus), &cpus);
        inet_pton(AF_INET, "10.0.0.1", &banned);
        frame(&pk[K_BANNED], "10.0.0.1");
        frame(&pk[K_CLEAN], "198.18.0.5");

        for (int i = 0; i < N_PROGS; i++)
                fd[i] = -1;
        for (int i = 0; i < N_GUARDS; i++) {
                g[i] = guard_load(i == T_EXACT1M ? 1048576 : 1024);
                if (!g[i]) {
                        fprintf(stderr, "bench-bans: cannot load the guard (root needed)\n");
                        goto out;
                }
                fd[i] = bpf_program__fd(g[i]->progs.xdp_guard);
        }
        if (put_exact(bpf_map__fd(g[T_EXACT1]->maps.ban_v4), banned) < 0 ||
            fill_exact(bpf_map__fd(g[T_EXACT1M]->maps.ban_v4), EXACT_MANY, banned) < 0 ||
            mark_present(g[T_EXACT1], &(struct ps_ban_presence) { .exact4 = 1 }) < 0 ||
            mark_present(g[T_EXACT1M], &(struct ps_ban_presence) { .exact4 = 1 }) < 0 ||
            fill_cidr(g[T_CIDR1], 1, ntohl(banned)) < 0 ||
            fill_cidr(g[T_CIDR8], 8, ntohl(banned)) < 0 ||
            fill_cidr(g[T_CIDR32], 32, ntohl(banned)) < 0) {
                fprintf(stderr, "bench-bans: cannot fill the ban tables: %m\n");
                goto out;
        }
        bare = bare_bpf__open_and_load();
        if (!bare) {
                fprintf(stderr, "bench-bans: cannot load the bare program\n");
                goto out;
        }
        fd[P_BARE] = bpf_program__fd(bare->progs.xdp_bare);
        if (!xf_path && glob("/usr/lib/*/bpf/" XDP_FILTER_PROG ".o", 0, NULL, &gl) == 0)
                xf_path = gl.gl_pathv[0];
        if (xf_path) {
                struct bpf_program *prog;
                struct bpf_map *m;

                xf = bpf_object__open_file(xf_path, NULL);
                if (xf) {
                        bpf_object__for_each_map(m, xf)
                                bpf_map__set_pin_path(m, NULL);
                        prog = bpf_object__find_program_by_name(xf, XDP_FILTER_PROG);
                        if (bpf_object__load(xf) == 0 && prog)
                                fd[P_XDP_FILTER] = bpf_program__fd(prog);
                }
        }

        v = calloc((size_t) N_PROGS * N_KINDS * rounds, sizeof(double));
        if (!v)
                goto out;
        for (unsigned round = 0; round < rounds; round++)
                for (int k = 0; k < N_KINDS; k++)
                        for (int i = 0; i < N_PROGS; i++) {
                                /* The guard drops the banned frame and passes the clean one;
                                 * the references pass both. */
                                int want = i < N_GUARDS && k == K_BANNED ? XDP_DROP : XDP_PASS;
                                double *slot = &v[((size_t) i * N_KINDS + k) * rounds + round];

                                if (fd[i] < 0)
                                        continue;
                                c = run(fd[i], &pk[k], repeat, want, slot);
                                if (c < 0) {
                                        fprintf(stderr, "bench-bans: %s on the %s frame: %s\n",
                                                label[i], kind_label[k],
                                                c == -EPROTO ? "unexpected verdict"
                                                             : strerror(-c));
                                        goto out;
                                }
                        }

        printf("Ban lookup cost under BPF_PROG_TEST_RUN, ns per 64-byte frame, median (min-max) "
               "of %u rounds of %u repetitions\n", rounds, repeat);
        printf("%-11s %-24s %-24s\n", "program", "banned (10.0.0.1)", "clean (198.18.0.5)");
        for (int i = 0; i < N_PROGS; i++) {
                printf("%-11s", label[i]);
                for (int k = 0; k < N_KINDS; k++) {
                        double *s = &v[((size_t) i * N_KINDS + k) * rounds];
                        char cell[64];

                        if (fd[i] < 0) {
                                printf(" %-24s", "-");
                                continue;
                        }
                        qsort(s, rounds, sizeof(double), by_value);
                        snprintf(cell, sizeof cell, "%.1f (%.1f-%.1f)", s[rounds / 2], s[0],
                                 s[rounds - 1]);
                        printf(" %-24s", cell);
                }
                printf("\n");
        }
        for (int k = 0; k < N_KINDS; k++) {
                double *a = &v[((size_t) T_EXACT1 * N_KINDS + k) * rounds];
                double *b = &v[((size_t) T_EXACT1M * N_KINDS + k) * rounds];

                printf("exact-1M / exact-1, %s frame: %.2f   (goal <= 1.2)\n", kind_label[k],
                       b[rounds / 2] / a[rounds / 2]);
        }
        r = 0;
out:
        free(v);
        bpf_object__close(xf);
        bare_bpf__destroy(bare);
        for (int i = 0; i < N_GUARDS; i++)
                guard_bpf__destroy(g[i]);
        globfree(&gl);
        return r;
}
