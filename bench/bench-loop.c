/* SPDX-License-Identifier: MIT */
/*
 * Does a large rule change block the daemon's loop? Imports RULES rules (mode replace) on one
 * bus connection while another reads the Filters.Count property every 10 ms, and prints the
 * distribution of those reads' latencies; then walks the set with ListRange, page by page, and
 * times one Add with the set held; then, side by side in rounds, Import against ImportFd (the
 * same document, through a sealed memfd) with the same Count reads, and the ListRange walk with
 * every field read against ListFd with its document parsed. Run against a daemon on the bus
 * that DBUS_SYSTEM_BUS_ADDRESS names (bench-daemon.sh starts one).
 * Usage: bench-loop [RULES]   (default 100000)
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <systemd/sd-bus.h>
#include <time.h>
#include <unistd.h>

#define _cleanup_free_ __attribute__((cleanup(freep)))

static void freep(void *p) {
        free(*(void **) p);
}

#include "bus-names.h"
#include "list-doc.h"

#define PROBE_PERIOD_USEC 10000
#define PROBE_MAX 100000
#define CALL_TIMEOUT_USEC (120ULL * 1000000)

static uint64_t now_us(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000 + (uint64_t) ts.tv_nsec / 1000;
}

/* The integration test's mix of five shapes, one rule a line's worth of JSON. */
static char *make_rules(unsigned n) {
        static const unsigned ports[] = { 22, 25, 53, 80, 110, 123, 143, 161, 389, 443, 445, 465,
                                          587, 636, 993, 995, 1433, 1521, 3306, 3389, 5432, 5900,
                                          6379, 8080, 8443 };
        size_t cap = (size_t) n * 96 + 16, len = 0;
        char *s = malloc(cap);

        if (!s)
                return NULL;
        s[len++] = '[';
        for (unsigned i = 0; i < n; i++) {
                unsigned k = i % 5, m = i / 5, port = ports[m % 25];
                int w;

                if (k == 0)
                        w = snprintf(s + len, cap - len,
                                     "{\"rule_type\":\"tcp\",\"src_ip\":\"100.%u.%u.%u\","
                                     "\"dst_port\":%u}", 64 + (m >> 16), m >> 8 & 255, m & 255,
                                     port);
                else if (k == 1)
                        w = snprintf(s + len, cap - len,
                                     "{\"rule_type\":\"udp\",\"src_ip\":\"100.%u.%u.0/24\","
                                     "\"dst_port\":%u}", 128 + (m >> 8), m & 255, port);
                else if (k == 2)
                        w = snprintf(s + len, cap - len,
                                     "{\"rule_type\":\"tcp\",\"src_ip\":\"2001:db8:%x::%x\","
                                     "\"dst_port\":%u}", m >> 16, m & 0xffff, port);
                else if (k == 3)
                        w = snprintf(s + len, cap - len,
                                     "{\"rule_type\":\"icmp\",\"src_ip\":\"198.18.%u.%u\","
                                     "\"icmp_type\":8}", m >> 8 & 255, m & 255);
                else
                        w = snprintf(s + len, cap - len,
                                     "{\"src_ip\":\"198.19.%u.%u\",\"action\":\"drop\"}",
                                     m >> 8 & 255, m & 255);
                if (w < 0 || (size_t) w >= cap - len - 2) {
                        free(s);
                        return NULL;
                }
                len += (size_t) w;
                s[len++] = i + 1 < n ? ',' : ']';
        }
        if (n == 0)
                s[len++] = ']';
        s[len] = '\0';
        return s;
}

static int list_fd_parse(sd_bus *bus, unsigned *ret, size_t *ret_bytes, uint64_t *ret_parse_us);

struct import {
        const char *json;
        bool fd;   /* ImportFd with a sealed memfd, not Import with a string */
        bool list; /* no import: ListFd and its document parsed, for the Count reads meanwhile */
        unsigned rows;
        size_t bytes;
        uint64_t parse_us; /* of the ListFd: list_doc_parse() alone */
        uint64_t start_us, end_us;
        uint32_t first_id;
        unsigned ids;
        int r;
        atomic_bool done;
};

static void *import_thread(void *userdata) {
        struct import *im = userdata;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        sd_bus_message *m = NULL;
        sd_bus *bus = NULL;
        const void *ids;
        size_t size = 0;
        int r;

        int fd = -1;

        r = sd_bus_open_system(&bus);
        if (r >= 0 && im->list) {
                im->start_us = now_us();
                im->r = list_fd_parse(bus, &im->rows, &im->bytes, &im->parse_us);
                im->end_us = now_us();
                sd_bus_flush_close_unref(bus);
                atomic_store(&im->done, true);
                return NULL;
        }
        if (r >= 0)
                r = sd_bus_message_new_method_call(bus, &m, PS_BUS_NAME, PS_OBJECT_FILTERS,
                                                   PS_IFACE_FILTERS, im->fd ? "ImportFd" : "Import");
        im->start_us = now_us();
        /* The memfd is written and sealed inside the timed span: it is part of the call's cost. */
        if (r >= 0 && im->fd) {
                size_t len = strlen(im->json);

                fd = memfd_create("bench-loop", MFD_CLOEXEC | MFD_ALLOW_SEALING);
                if (fd < 0 || write(fd, im->json, len) != (ssize_t) len ||
                    fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW |
                                           F_SEAL_SEAL) < 0)
                        r = -errno;
                if (r >= 0)
                        r = sd_bus_message_append(m, "hs", fd, "replace");
        } else if (r >= 0)
                r = sd_bus_message_append(m, "ss", im->json, "replace");
        if (r >= 0)
                r = sd_bus_call(bus, m, CALL_TIMEOUT_USEC, &error, &reply);
        im->end_us = now_us();
        if (r >= 0)
                r = sd_bus_message_read_array(reply, 'u', &ids, &size);
        if (r < 0)
                fprintf(stderr, "bench-loop: %s: %s\n", im->fd ? "ImportFd" : "Import",
                        error.message ? error.message : strerror(-r));
        if (fd >= 0)
                close(fd);
        im->ids = (unsigned) (size / sizeof(uint32_t));
        if (im->ids > 0)
                im->first_id = *(const uint32_t *) ids;
        im->r = r;
        sd_bus_error_free(&error);
        sd_bus_message_unref(reply);
        sd_bus_message_unref(m);
        sd_bus_flush_close_unref(bus);
        atomic_store(&im->done, true);
        return NULL;
}

static int get_count(sd_bus *bus, uint32_t *ret) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        int r;

        r = sd_bus_get_property_trivial(bus, PS_BUS_NAME, PS_OBJECT_FILTERS, PS_IFACE_FILTERS,
                                        "Count", &error, 'u', ret);
        sd_bus_error_free(&error);
        return r;
}

/* The daemon's CPU time so far, user and system, in ms: on a loaded machine the wall time of
 * a phase says more about the neighbours than about the daemon. */
static pid_t daemon_pid;

static double daemon_cpu_ms(void) {
        char path[64], buf[1024], *p;
        unsigned long utime = 0, stime = 0;
        FILE *f;

        snprintf(path, sizeof path, "/proc/%d/stat", (int) daemon_pid);
        f = fopen(path, "re");
        if (!f)
                return 0;
        p = fgets(buf, sizeof buf, f) ? strrchr(buf, ')') : NULL;
        fclose(f);
        /* After the name: state, then fields 4..13, then utime (14) and stime (15). */
        if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime,
                         &stime) != 2)
                return 0;
        return (double) (utime + stime) * 1000.0 / (double) sysconf(_SC_CLK_TCK);
}

/* The bus daemon's CPU time so far, in ms, as daemon_cpu_ms() reads the daemon's: what relaying
 * the replies costs. 0 when its PID is unknown. */
static pid_t bus_pid;

static double bus_cpu_ms(void) {
        pid_t saved = daemon_pid;
        double v;

        if (bus_pid <= 0)
                return 0;
        daemon_pid = bus_pid;
        v = daemon_cpu_ms();
        daemon_pid = saved;
        return v;
}

/* This process's CPU time so far, in ms. */
static double self_cpu_ms(void) {
        struct timespec ts;

        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
        return (double) ts.tv_sec * 1000.0 + (double) ts.tv_nsec / 1e6;
}

static int cmp_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;

        return x < y ? -1 : x > y;
}

static double ms(uint64_t us) {
        return (double) us / 1000.0;
}

/* One ListRange page read as a client reads it: every column, every value (a fixed-size
 * column in one piece, a string column value by value). How many rules it held. */
static int read_page(sd_bus_message *reply, unsigned *ret) {
        unsigned n = 0;
        int r;

        r = sd_bus_message_enter_container(reply, 'a', "{sv}");
        while (r >= 0 && (r = sd_bus_message_enter_container(reply, 'e', "sv")) > 0) {
                const char *key, *contents;
                unsigned k = 0;
                char type;

                if ((r = sd_bus_message_read_basic(reply, 's', &key)) < 0 ||
                    (r = sd_bus_message_peek_type(reply, &type, &contents)) < 0 ||
                    (r = sd_bus_message_enter_container(reply, 'v', contents)) < 0)
                        break;
                if (contents[1] == 's' || contents[1] == 'o') {
                        const char *v;

                        r = sd_bus_message_enter_container(reply, 'a', contents + 1);
                        while (r >= 0 && (r = sd_bus_message_read_basic(reply, contents[1], &v)) > 0)
                                k++;
                        if (r >= 0)
                                r = sd_bus_message_exit_container(reply);
                } else {
                        const void *p;
                        size_t size;

                        r = sd_bus_message_read_array(reply, contents[1], &p, &size);
                        if (strcmp(key, "id") == 0)
                                k = (unsigned) (size / sizeof(uint32_t));
                }
                if (r < 0 || (r = sd_bus_message_exit_container(reply)) < 0 ||
                    (r = sd_bus_message_exit_container(reply)) < 0)
                        break;
                if (strcmp(key, "id") == 0)
                        n = k;
        }
        *ret = n;
        return r;
}

/* Every rule, PAGE at a time, every value read: how many came back. */
static int walk(sd_bus *bus, uint32_t page, unsigned *ret) {
        unsigned total = 0;

        for (uint32_t offset = 0;; offset += page) {
                sd_bus_error error = SD_BUS_ERROR_NULL;
                sd_bus_message *reply = NULL;
                unsigned n = 0;
                int r;

                r = sd_bus_call_method(bus, PS_BUS_NAME, PS_OBJECT_FILTERS, PS_IFACE_FILTERS,
                                       "ListRange", &error, &reply, "uu", offset, page);
                if (r < 0) {
                        fprintf(stderr, "bench-loop: ListRange: %s\n",
                                error.message ? error.message : strerror(-r));
                        sd_bus_error_free(&error);
                        return r;
                }
                r = read_page(reply, &n);
                sd_bus_message_unref(reply);
                if (r < 0)
                        return r;
                total += n;
                if (n < page)
                        break;
        }
        *ret = total;
        return 0;
}

/* Delete-and-Add pairs timed with the set held. */
#define PAIRS 21

/* Deletes rule `id` and adds one: the set may be full. */
static int delete_add_one(sd_bus *bus, uint32_t id, uint64_t *ret_del_us, uint64_t *ret_us) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        _cleanup_free_ char *path = NULL;
        uint64_t t0 = now_us();
        int r;

        if (asprintf(&path, "%s/%u", PS_OBJECT_FILTERS, id) < 0)
                return -ENOMEM;
        r = sd_bus_call_method(bus, PS_BUS_NAME, path, PS_IFACE_FILTER, "Delete", &error, NULL,
                               "");
        *ret_del_us = now_us() - t0;
        if (r < 0) {
                fprintf(stderr, "bench-loop: Delete: %s\n",
                        error.message ? error.message : strerror(-r));
                sd_bus_error_free(&error);
                return r;
        }
        t0 = now_us();
        r = sd_bus_call_method(bus, PS_BUS_NAME, PS_OBJECT_FILTERS, PS_IFACE_FILTERS, "Add",
                               &error, &reply, "a{sv}", 3, "rule_type", "s", "udp", "src_ip",
                               "s", "203.0.113.7", "dst_port", "q", (uint16_t) 4242);
        *ret_us = now_us() - t0;
        if (r < 0)
                fprintf(stderr, "bench-loop: Add: %s\n",
                        error.message ? error.message : strerror(-r));
        sd_bus_error_free(&error);
        sd_bus_message_unref(reply);
        return r;
}

/* One import on its own connection while this one reads Count every 10 ms: the reads'
 * latencies sorted into lat (at most PROBE_MAX), their number in *ret_n. */
static int import_probed(sd_bus *bus, struct import *im, uint64_t *lat, unsigned *ret_n) {
        pthread_t thread;
        uint64_t next;
        uint32_t count;
        unsigned n = 0;
        int r;

        atomic_store(&im->done, false);
        if (pthread_create(&thread, NULL, import_thread, im) != 0)
                return -EAGAIN;
        next = now_us();
        while (!atomic_load(&im->done) && n < PROBE_MAX) {
                uint64_t s = now_us();

                r = get_count(bus, &count);
                if (r < 0) {
                        fprintf(stderr, "bench-loop: Get(Count): %s\n", strerror(-r));
                        break;
                }
                lat[n++] = now_us() - s;
                next += PROBE_PERIOD_USEC;
                s = now_us();
                if (next > s) {
                        struct timespec ts = { 0, (long) (next - s) * 1000 };

                        nanosleep(&ts, NULL);
                } else
                        next = s;
        }
        pthread_join(thread, NULL);
        if (im->r < 0 || n == 0)
                return im->r < 0 ? im->r : -EIO;
        qsort(lat, n, sizeof lat[0], cmp_u64);
        *ret_n = n;
        return 0;
}

/* ListFd, its document mapped and read as packetscopectl reads it (list-doc.h): how many
 * rows. */
static int list_fd_parse(sd_bus *bus, unsigned *ret, size_t *ret_bytes, uint64_t *ret_parse_us) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        ListDoc doc = {};
        char why[256] = "";
        struct stat st;
        void *p;
        int fd, r;

        r = sd_bus_call_method(bus, PS_BUS_NAME, PS_OBJECT_FILTERS, PS_IFACE_FILTERS, "ListFd",
                               &error, &reply, "");
        if (r >= 0)
                r = sd_bus_message_read(reply, "h", &fd);
        if (r >= 0 && fstat(fd, &st) < 0)
                r = -errno;
        if (r >= 0) {
                p = mmap(NULL, (size_t) st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
                if (p == MAP_FAILED)
                        r = -errno;
                else {
                        uint64_t t0 = now_us();

                        r = list_doc_parse(p, (size_t) st.st_size, &doc, why, sizeof why);
                        *ret_parse_us = now_us() - t0;
                        munmap(p, (size_t) st.st_size);
                }
        }
        if (r < 0)
                fprintf(stderr, "bench-loop: ListFd: %s\n",
                        error.message ? error.message : why[0] ? why : strerror(-r));
        else {
                *ret = (unsigned) doc.n_rows;
                *ret_bytes = (size_t) st.st_size;
        }
        list_doc_done(&doc);
        sd_bus_error_free(&error);
        sd_bus_message_unref(reply);
        return r;
}

#define FD_ROUNDS 3

static void print_mmm(const char *what, uint64_t *v, unsigned n) {
        qsort(v, n, sizeof v[0], cmp_u64);
        printf("%s %.1f / %.1f / %.1f ms", what, ms(v[0]), ms(v[n / 2]), ms(v[n - 1]));
}

/* Import against ImportFd and the read walk against ListFd, alternated FD_ROUNDS times. */
static int fd_rounds(sd_bus *bus, struct import *im, unsigned n_rules, uint64_t *lat) {
        uint64_t wall[2][FD_ROUNDS], stall[2][FD_ROUNDS], p99[2][FD_ROUNDS], cpu[2][FD_ROUNDS];
        uint64_t list[2][FD_ROUNDS], list_cpu[2][FD_ROUNDS], list_stall[FD_ROUNDS];
        uint64_t parse[FD_ROUNDS];
        struct import lf = { .list = true };
        unsigned rows[2] = {}, n;
        size_t bytes = 0;
        int r;

        for (unsigned k = 0; k < FD_ROUNDS; k++)
                for (unsigned f = 0; f < 2; f++) {
                        double c = daemon_cpu_ms();
                        uint64_t t0;

                        im->fd = f;
                        r = import_probed(bus, im, lat, &n);
                        if (r < 0)
                                return r;
                        wall[f][k] = im->end_us - im->start_us;
                        stall[f][k] = lat[n - 1];
                        p99[f][k] = lat[(size_t) ((n - 1) * 0.99)];
                        cpu[f][k] = (uint64_t) ((daemon_cpu_ms() - c) * 1000);

                        c = daemon_cpu_ms();
                        t0 = now_us();
                        if (f) {
                                r = import_probed(bus, &lf, lat, &n);
                                rows[f] = lf.rows;
                                bytes = lf.bytes;
                                list[f][k] = lf.end_us - lf.start_us;
                                parse[k] = lf.parse_us;
                                list_stall[k] = r >= 0 ? lat[n - 1] : 0;
                        } else {
                                r = walk(bus, PS_FILTERS_LIST_MAX, &rows[f]);
                                list[f][k] = now_us() - t0;
                        }
                        list_cpu[f][k] = (uint64_t) ((daemon_cpu_ms() - c) * 1000);
                        if (r < 0)
                                return r;
                }
        printf("fd: %u rules, %u rounds alternated, each figure min / median / max\n", n_rules,
               FD_ROUNDS);
        for (unsigned f = 0; f < 2; f++) {
                printf("fd: %-8s (replace)", f ? "ImportFd" : "Import");
                print_mmm("  end to end", wall[f], FD_ROUNDS);
                print_mmm(";  the daemon's CPU", cpu[f], FD_ROUNDS);
                print_mmm(";  slowest Count read", stall[f], FD_ROUNDS);
                print_mmm(";  p99", p99[f], FD_ROUNDS);
                putchar('\n');
        }
        printf("fd: %-36s", "ListRange walk, every value read");
        print_mmm("", list[0], FD_ROUNDS);
        print_mmm(";  the daemon's CPU", list_cpu[0], FD_ROUNDS);
        printf(";  %u rules\n", rows[0]);
        printf("fd: %-36s", "ListFd, the document parsed (list-doc)");
        print_mmm("", list[1], FD_ROUNDS);
        print_mmm(";  the daemon's CPU", list_cpu[1], FD_ROUNDS);
        print_mmm(";  slowest Count read meanwhile", list_stall, FD_ROUNDS);
        printf(";  %u rules, %zu bytes\n", rows[1], bytes);
        print_mmm("fd:   of the ListFd: list_doc_parse() alone", parse, FD_ROUNDS);
        putchar('\n');
        return 0;
}

int main(int argc, char **argv) {
        unsigned n_rules = argc > 1 ? (unsigned) strtoul(argv[1], NULL, 10) : 100000;
        static uint64_t lat[PROBE_MAX];
        struct import im = {};
        uint64_t add_us, del_us, t0, walk_us, pair_del[PAIRS], pair_add[PAIRS];
        double cpu, bus_cpu, self_cpu;
        unsigned n = 0, over50 = 0, walked = 0;
        sd_bus *bus = NULL;
        uint32_t count;
        int r;

        im.json = make_rules(n_rules);
        if (!im.json)
                return 1;
        r = sd_bus_open_system(&bus);
        if (r >= 0)
                r = sd_bus_set_method_call_timeout(bus, CALL_TIMEOUT_USEC);
        if (r < 0 || get_count(bus, &count) < 0) {
                fprintf(stderr, "bench-loop: no daemon on the bus\n");
                return 1;
        }
        {
                sd_bus_creds *creds = NULL;

                if (sd_bus_get_name_creds(bus, PS_BUS_NAME, SD_BUS_CREDS_PID, &creds) >= 0)
                        (void) sd_bus_creds_get_pid(creds, &daemon_pid);
                creds = sd_bus_creds_unref(creds);
                /* dbus-daemon answers for its own name with its own PID. */
                if (sd_bus_get_name_creds(bus, "org.freedesktop.DBus", SD_BUS_CREDS_PID,
                                          &creds) >= 0)
                        (void) sd_bus_creds_get_pid(creds, &bus_pid);
                sd_bus_creds_unref(creds);
        }
        cpu = daemon_cpu_ms();
        if (import_probed(bus, &im, lat, &n) < 0)
                return 1;
        for (unsigned i = 0; i < n; i++)
                over50 += lat[i] >= 50000;
        printf("import of %u rules (replace)     %.1f ms end to end (the daemon's CPU: %.0f ms), "
               "%u ids returned   (goal < 1000 ms)\n", n_rules, ms(im.end_us - im.start_us),
               daemon_cpu_ms() - cpu, im.ids);
        printf("Count reads meanwhile, every 10 ms  %u: median %.2f ms, p99 %.2f ms, max %.2f ms, "
               "%u at 50 ms or more   (goal every one < 50 ms)\n",
               n, ms(lat[n / 2]), ms(lat[(size_t) ((n - 1) * 0.99)]), ms(lat[n - 1]), over50);

        cpu = daemon_cpu_ms();
        bus_cpu = bus_cpu_ms();
        self_cpu = self_cpu_ms();
        t0 = now_us();
        r = walk(bus, PS_FILTERS_LIST_MAX, &walked);
        walk_us = now_us() - t0;
        if (r < 0)
                return 1;
        printf("ListRange walk, pages of %u        %.1f ms for %u rules (the daemon's CPU: %.0f ms)"
               "   (goal < 1000 ms)\n", PS_FILTERS_LIST_MAX, ms(walk_us), walked,
               daemon_cpu_ms() - cpu);
        /* Where the rest goes: the bus daemon relays every reply, this client reads it. */
        printf("  the same walk: the bus daemon's CPU %.0f ms, this client's CPU %.0f ms\n",
               bus_cpu_ms() - bus_cpu, self_cpu_ms() - self_cpu);
        cpu = daemon_cpu_ms();

        /* One pair alone says little on a shared machine: PAIRS of them, each deleting one more
         * imported rule and adding one, as min / median / max. */
        for (unsigned k = 0; k < PAIRS; k++) {
                if (delete_add_one(bus, im.first_id + k, &del_us, &add_us) < 0)
                        return 1;
                pair_del[k] = del_us;
                pair_add[k] = add_us;
        }
        cpu = (daemon_cpu_ms() - cpu) / PAIRS;
        qsort(pair_del, PAIRS, sizeof pair_del[0], cmp_u64);
        qsort(pair_add, PAIRS, sizeof pair_add[0], cmp_u64);
        printf("one Delete, then one Add, with %u rules held   %.2f ms, %.2f ms (medians of %u; the "
               "daemon's CPU for both: %.1f ms)   (goal < 10 ms)\n", walked,
               ms(pair_del[PAIRS / 2]), ms(pair_add[PAIRS / 2]), PAIRS, cpu);
        printf("  Delete min/median/max  %.2f / %.2f / %.2f ms;  Add min/median/max  %.2f / %.2f / "
               "%.2f ms\n", ms(pair_del[0]), ms(pair_del[PAIRS / 2]), ms(pair_del[PAIRS - 1]),
               ms(pair_add[0]), ms(pair_add[PAIRS / 2]), ms(pair_add[PAIRS - 1]));
        if (fd_rounds(bus, &im, n_rules, lat) < 0)
                return 1;
        sd_bus_flush_close_unref(bus);
        free((char *) im.json);
        return 0;
}
