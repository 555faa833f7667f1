/* SPDX-License-Identifier: MIT */
/*
 * Where a top-N query's time goes, phase by phase, without the cost of starting a process:
 * each round opens a new bus connection as packetscopectl does (connect, authentication,
 * Hello), calls Connections.List with {limit: LIMIT} (and fresh=true with --fresh), reads the
 * rows and closes. The daemon's loop thread's CPU time around each call comes from
 * /proc/PID/schedstat (nanoseconds), so what the daemon spends building the reply shows apart
 * from the bus daemon's relaying and the wait for a CPU.
 * Usage: bench-list DAEMON_PID [ROUNDS [LIMIT]] [--fresh]   (ROUNDS 20, LIMIT 20)
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-bus.h>
#include <time.h>

#include "bus-names.h"

enum { CONNECT, CALL, DAEMON_CPU, READ, TOTAL, _PHASE_MAX };

static const char *const phase_names[_PHASE_MAX] = {
        [CONNECT] = "connect, authenticate, Hello",
        [CALL] = "List call, request to reply",
        [DAEMON_CPU] = "  of which the daemon's CPU",
        [READ] = "reading the rows",
        [TOTAL] = "whole round (no process start)",
};

static int64_t mono_ns(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Time the thread has run on a CPU, in ns: the first field of schedstat. */
static int64_t thread_cpu_ns(const char *schedstat) {
        unsigned long long run = 0;
        FILE *f = fopen(schedstat, "re");

        if (!f)
                return -1;
        if (fscanf(f, "%llu", &run) != 1)
                run = 0;
        fclose(f);
        return (int64_t) run;
}

static int by_value(const void *a, const void *b) {
        int64_t x = *(const int64_t *) a, y = *(const int64_t *) b;

        return (x > y) - (x < y);
}

/* Rows in the reply, and the rank_age_usec of the first (-1 when absent). */
static int read_rows(sd_bus_message *reply, unsigned *ret_rows, int64_t *ret_age) {
        unsigned rows = 0;
        int64_t age = -1;
        int r;

        r = sd_bus_message_enter_container(reply, 'a', "a{sv}");
        while (r >= 0 && (r = sd_bus_message_enter_container(reply, 'a', "{sv}")) > 0) {
                while ((r = sd_bus_message_enter_container(reply, 'e', "sv")) > 0) {
                        const char *key;
                        uint64_t u;

                        r = sd_bus_message_read(reply, "s", &key);
                        if (r >= 0 && rows == 0 && strcmp(key, "rank_age_usec") == 0) {
                                r = sd_bus_message_read(reply, "v", "t", &u);
                                age = (int64_t) u;
                        } else if (r >= 0)
                                r = sd_bus_message_skip(reply, "v");
                        if (r >= 0)
                                r = sd_bus_message_exit_container(reply);
                        if (r < 0)
                                return r;
                }
                if (r >= 0)
                        r = sd_bus_message_exit_container(reply);
                rows++;
        }
        if (r < 0)
                return r;
        *ret_rows = rows;
        *ret_age = age;
        return sd_bus_message_exit_container(reply);
}

static int one_round(const char *schedstat, uint32_t limit, bool fresh, int64_t t[_PHASE_MAX],
                     unsigned *ret_rows, int64_t *ret_age) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *m = NULL, *reply = NULL;
        sd_bus *bus = NULL;
        const char *unique;
        int64_t t0, t1, t2, t3, c0, c1;
        int r;

        t0 = mono_ns();
        r = sd_bus_open_system(&bus);
        if (r >= 0)
                r = sd_bus_get_unique_name(bus, &unique); /* waits for Hello's reply */
        t1 = mono_ns();
        if (r >= 0)
                r = sd_bus_message_new_method_call(bus, &m, PS_BUS_NAME, PS_OBJECT_CONNECTIONS,
                                                   PS_IFACE_CONNECTIONS, "List");
        if (r >= 0)
                r = fresh ? sd_bus_message_append(m, "a{sv}", 2, "limit", "u", limit, "fresh",
                                                  "b", 1)
                          : sd_bus_message_append(m, "a{sv}", 1, "limit", "u", limit);
        c0 = thread_cpu_ns(schedstat);
        if (r >= 0)
                r = sd_bus_call(bus, m, 0, &error, &reply);
        c1 = thread_cpu_ns(schedstat);
        t2 = mono_ns();
        if (r >= 0)
                r = read_rows(reply, ret_rows, ret_age);
        t3 = mono_ns();
        if (r < 0)
                fprintf(stderr, "bench-list: %s\n", error.message ?: strerror(-r));
        sd_bus_error_free(&error);
        sd_bus_message_unref(reply);
        sd_bus_message_unref(m);
        sd_bus_flush_close_unref(bus);
        t[CONNECT] = t1 - t0;
        t[CALL] = t2 - t1;
        t[DAEMON_CPU] = c0 < 0 || c1 < 0 ? 0 : c1 - c0;
        t[READ] = t3 - t2;
        t[TOTAL] = mono_ns() - t0;
        return r;
}

int main(int argc, char **argv) {
        unsigned rounds = 20, rows = 0, args = 0;
        uint32_t limit = 20;
        bool fresh = false;
        char schedstat[64];
        int64_t *t[_PHASE_MAX], *age;
        long pid = 0;

        for (int i = 1; i < argc; i++) {
                unsigned long v = strtoul(argv[i], NULL, 10);

                if (strcmp(argv[i], "--fresh") == 0)
                        fresh = true;
                else if (args == 0)
                        pid = (long) v, args++;
                else if (args == 1)
                        rounds = (unsigned) v, args++;
                else
                        limit = (uint32_t) v, args++;
        }
        if (pid <= 0 || rounds == 0 || limit == 0) {
                fprintf(stderr, "usage: bench-list DAEMON_PID [ROUNDS [LIMIT]] [--fresh]\n");
                return 2;
        }
        snprintf(schedstat, sizeof schedstat, "/proc/%ld/schedstat", pid);
        age = calloc(rounds, sizeof *age);
        if (!age)
                return 1;
        for (int p = 0; p < _PHASE_MAX; p++) {
                t[p] = calloc(rounds, sizeof *t[p]);
                if (!t[p])
                        return 1;
        }
        for (unsigned i = 0; i < rounds; i++) {
                int64_t one[_PHASE_MAX];

                if (one_round(schedstat, limit, fresh, one, &rows, &age[i]) < 0)
                        return 1;
                for (int p = 0; p < _PHASE_MAX; p++)
                        t[p][i] = one[p];
        }
        printf("List {limit %u%s}, %u rounds, %u rows: ms, min / median / max\n", limit,
               fresh ? ", fresh" : "", rounds, rows);
        for (int p = 0; p < _PHASE_MAX; p++) {
                qsort(t[p], rounds, sizeof *t[p], by_value);
                printf("  %-34s %8.2f %8.2f %8.2f\n", phase_names[p], t[p][0] / 1e6,
                       t[p][(rounds - 1) / 2] / 1e6, t[p][rounds - 1] / 1e6);
        }
        qsort(age, rounds, sizeof *age, by_value);
        if (age[0] >= 0)
                printf("  %-34s %8.1f %8.1f %8.1f\n", "rank_age_usec of the rows, in s",
                       age[0] / 1e6, age[(rounds - 1) / 2] / 1e6, age[rounds - 1] / 1e6);
        else
                printf("  rows without rank_age_usec: read from the whole table\n");
        return 0;
}
