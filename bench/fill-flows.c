/* SPDX-License-Identifier: MIT */
/*
 * Bench helper: fills a pinned packetscope flow table with N distinct flows, as if N remote
 * endpoints had talked to this host, so that the daemon's idle cost and query latency can be
 * measured on a full table. Usage: fill-flows PINNED_FLOWS_MAP N
 */
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <linux/types.h>

#include "guard.h"

#define CHUNK 8192u

int main(int argc, char *argv[]) {
        static struct ps_flow_key keys[CHUNK];
        static struct ps_flow_value values[CHUNK];
        unsigned long n, done = 0;
        struct timespec ts;
        char *end;
        int fd;

        if (argc != 3) {
                fprintf(stderr, "usage: %s PINNED_FLOWS_MAP N\n", argv[0]);
                return 2;
        }
        errno = 0;
        n = strtoul(argv[2], &end, 10);
        if (errno || *end || n == 0 || n > 64ul * 1024 * 1024) {
                fprintf(stderr, "N must be 1 to 67108864, got '%s'\n", argv[2]);
                return 2;
        }
        fd = bpf_obj_get(argv[1]);
        if (fd < 0) {
                fprintf(stderr, "cannot open %s: %s\n", argv[1], strerror(errno));
                return 1;
        }
        clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
        srand(42);
        while (done < n) {
                __u32 count = (__u32) (n - done < CHUNK ? n - done : CHUNK);
                LIBBPF_OPTS(bpf_map_batch_opts, opts);

                for (__u32 i = 0; i < count; i++) {
                        unsigned long id = done + i;

                        memset(&keys[i], 0, sizeof keys[i]);
                        keys[i].family = PS_FAMILY_IPV4;
                        keys[i].proto = (id & 1) ? 17 : 6;
                        keys[i].src[0] = htonl(0x0a000000u | (__u32) (id >> 4)); /* 10.x.y.z */
                        keys[i].dst[0] = htonl(0xc0000201u);                     /* 192.0.2.1 */
                        keys[i].sport = (__u16) (1024 + (id & 15) * 3000);
                        keys[i].dport = (id & 1) ? 53 : 443;
                        values[i] = (struct ps_flow_value) {
                                .packets = 1 + (__u64) (rand() % 1000),
                                .first_seen = (__u64) ts.tv_sec * 1000000000ull + (__u64) ts.tv_nsec,
                                .ttl = 64,
                                .state = (id & 1) ? PS_STATE_NONE : PS_STATE_ESTABLISHED,
                        };
                        values[i].bytes = values[i].packets * (64 + (__u64) (rand() % 1400));
                        values[i].last_seen = values[i].first_seen;
                }
                if (bpf_map_update_batch(fd, keys, values, &count, &opts) < 0) {
                        fprintf(stderr, "update_batch after %lu flows: %s\n", done, strerror(errno));
                        return 1;
                }
                done += count;
        }
        printf("%lu flows written\n", done);
        return 0;
}
