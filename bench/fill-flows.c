/* SPDX-License-Identifier: MIT */
/*
 * Bench helper: fills a pinned packetscope flow table with N distinct flows, as if N remote
 * endpoints had talked to this host, so that the daemon's idle cost and query latency can be
 * measured on a full table. Usage: fill-flows PINNED_FLOWS_MAP N [AGE_SEC]
 * AGE_SEC stamps every flow as last seen that many seconds ago (default 0: now), so that a
 * table past IdleTimeoutSec= can be made at once to measure its expiry.
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
        unsigned long n, age = 0, done = 0;
        struct timespec ts;
        __u64 stamp;
        char *end;
        int fd;

        if (argc != 3 && argc != 4) {
                fprintf(stderr, "usage: %s PINNED_FLOWS_MAP N [AGE_SEC]\n", argv[0]);
                return 2;
        }
        errno = 0;
        n = strtoul(argv[2], &end, 10);
        if (errno || *end || n == 0 || n > 64ul * 1024 * 1024) {
                fprintf(stderr, "N must be 1 to 67108864, got '%s'\n", argv[2]);
                return 2;
        }
        if (argc == 4) {
                errno = 0;
                age = strtoul(argv[3], &end, 10);
                if (errno || *end || age > 86400) {
                        fprintf(stderr, "AGE_SEC must be 0 to 86400, got '%s'\n", argv[3]);
                        return 2;
                }
        }
        fd = bpf_obj_get(argv[1]);
        if (fd < 0) {
                fprintf(stderr, "cannot open %s: %s\n", argv[1], strerror(errno));
                return 1;
        }
        clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
        stamp = (__u64) ts.tv_sec * 1000000000ull + (__u64) ts.tv_nsec;
        if (age * 1000000000ull >= stamp) {
                fprintf(stderr, "the system has been up for less than %lu s\n", age);
                return 2;
        }
        stamp -= age * 1000000000ull;
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
                                .first_seen = stamp,
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
