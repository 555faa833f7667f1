/* SPDX-License-Identifier: MIT */
/*
 * The bus side of bench-bans-daemon.sh: bans made through org.packetscope.Guarder1.Bans as a
 * client makes them, timed from before the call is sent to after its reply is read.
 *
 *   ban-client batch COUNT PER_CALL   BanBatch of COUNT IPv4 /32s from 16.0.0.0 up, PER_CALL
 *                                     bans a call; prints "COUNT SECONDS BANS_PER_SECOND"
 *   ban-client floor COUNT PER_CALL   the same calls, each with one more entry, without an
 *                                     address, at its end: the daemon reads the whole call and
 *                                     refuses it (InvalidArgs), nothing is banned. The cost of
 *                                     the bus and of reading the message, without the checks,
 *                                     the kernel and the journal; prints as batch does
 *   ban-client file COUNT PER_CALL    the same bans through BanFile: PER_CALL ban lines a call
 *                                     ("ADDRESS" each), written into a sealed memfd whose
 *                                     descriptor is the call; prints as batch does
 *   ban-client single CALLS           CALLS Ban() calls one after the other, each of a new
 *                                     address from 100.64.0.0 up; prints "MIN MEDIAN MAX" in ms
 *   ban-client fsync DIR CALLS        the floor of one acknowledged change there: CALLS appends
 *                                     of a 160-byte record to a file in DIR, each followed by
 *                                     fdatasync(); prints "MIN MEDIAN MAX" in ms (no bus)
 *
 * The bus is the system bus (DBUS_SYSTEM_BUS_ADDRESS). Exits 1 on the first failed call.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <systemd/sd-bus.h>
#include <time.h>
#include <unistd.h>

#define DEST "org.packetscope.Guarder1"
#define BANS_PATH "/org/packetscope/Guarder1/bans"
#define BANS_IFACE "org.packetscope.Guarder1.Bans"
#define CALL_TIMEOUT_USEC (300ull * 1000 * 1000)

static double now_s(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static void addr4(uint32_t base, uint32_t i, char buf[INET_ADDRSTRLEN]) {
        uint32_t a = htonl(base + i);

        inet_ntop(AF_INET, &a, buf, INET_ADDRSTRLEN);
}

static int cmp_double(const void *a, const void *b) {
        double x = *(const double *) a, y = *(const double *) b;

        return x < y ? -1 : x > y;
}

static int parse_count(const char *s, unsigned long *ret) {
        char *end;

        errno = 0;
        *ret = strtoul(s, &end, 10);
        return errno != 0 || end == s || *end || *ret == 0 ? -EINVAL : 0;
}

static int fail(const char *what, int r, const sd_bus_error *e) {
        fprintf(stderr, "ban-client: %s: %s\n", what,
                e && sd_bus_error_is_set(e) ? e->message : strerror(-r));
        return 1;
}

static int batch(sd_bus *bus, unsigned long count, unsigned long per_call, bool floor) {
        double t0 = now_s(), t;
        unsigned long done = 0;

        while (done < count) {
                sd_bus_error e = SD_BUS_ERROR_NULL;
                sd_bus_message *m = NULL, *reply = NULL;
                unsigned long n = count - done < per_call ? count - done : per_call;
                char a[INET_ADDRSTRLEN];
                int r;

                r = sd_bus_message_new_method_call(bus, &m, DEST, BANS_PATH, BANS_IFACE,
                                                   "BanBatch");
                if (r >= 0)
                        r = sd_bus_message_open_container(m, 'a', "a{sv}");
                for (unsigned long i = 0; r >= 0 && i < n; i++) {
                        addr4(0x10000000u, (uint32_t) (done + i), a);
                        r = sd_bus_message_append(m, "a{sv}", 1, "address", "s", a);
                }
                if (r >= 0 && floor)
                        r = sd_bus_message_append(m, "a{sv}", 0);
                if (r >= 0)
                        r = sd_bus_message_close_container(m);
                if (r >= 0)
                        r = sd_bus_call(bus, m, CALL_TIMEOUT_USEC, &e, &reply);
                sd_bus_message_unref(m);
                sd_bus_message_unref(reply);
                if (floor) {
                        /* Refused as it should be, after the whole call was read. */
                        if (r >= 0 || !sd_bus_error_has_name(&e, SD_BUS_ERROR_INVALID_ARGS) ||
                            !strstr(e.message, "has no address")) {
                                int k = fail("BanBatch (floor)", r < 0 ? r : -EBADMSG, &e);

                                sd_bus_error_free(&e);
                                return k;
                        }
                        sd_bus_error_free(&e);
                        r = 0;
                }
                if (r < 0) {
                        int k = fail("BanBatch", r, &e);

                        sd_bus_error_free(&e);
                        return k;
                }
                done += n;
        }
        t = now_s() - t0;
        printf("%lu %.3f %.0f\n", count, t, (double) count / t);
        return 0;
}

/* The lines of one call in a sealed memfd, as packetscopectl bans import passes standard
 * input; built inside the timed loop, as batch() builds its message. */
static int lines_memfd(unsigned long first, unsigned long n, char **buf, size_t *alloc) {
        size_t used = 0;
        int fd;

        if (*alloc < n * (INET_ADDRSTRLEN + 1)) {
                char *nb = realloc(*buf, n * (INET_ADDRSTRLEN + 1));

                if (!nb)
                        return -ENOMEM;
                *buf = nb;
                *alloc = n * (INET_ADDRSTRLEN + 1);
        }
        for (unsigned long i = 0; i < n; i++) {
                addr4(0x10000000u, (uint32_t) (first + i), *buf + used);
                used += strlen(*buf + used);
                (*buf)[used++] = '\n';
        }
        fd = memfd_create("ban-client", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (fd < 0)
                return -errno;
        for (size_t off = 0; off < used;) {
                ssize_t k = write(fd, *buf + off, used - off);

                if (k < 0) {
                        int r = -errno;

                        close(fd);
                        return r;
                }
                off += (size_t) k;
        }
        if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0) {
                int r = -errno;

                close(fd);
                return r;
        }
        return fd;
}

static int file_calls(sd_bus *bus, unsigned long count, unsigned long per_call) {
        double t0 = now_s(), t;
        unsigned long done = 0;
        size_t alloc = 0;
        char *buf = NULL;

        while (done < count) {
                sd_bus_error e = SD_BUS_ERROR_NULL;
                sd_bus_message *reply = NULL;
                unsigned long n = count - done < per_call ? count - done : per_call;
                uint32_t got = 0;
                int fd, r;

                fd = lines_memfd(done, n, &buf, &alloc);
                if (fd < 0) {
                        free(buf);
                        return fail("memfd", fd, NULL);
                }
                r = sd_bus_call_method(bus, DEST, BANS_PATH, BANS_IFACE, "BanFile", &e, &reply,
                                       "hs", fd, "manual");
                close(fd);
                if (r >= 0)
                        r = sd_bus_message_read(reply, "u", &got);
                sd_bus_message_unref(reply);
                if (r >= 0 && got != n)
                        r = -EBADMSG;
                if (r < 0) {
                        int k = fail("BanFile", r, &e);

                        sd_bus_error_free(&e);
                        free(buf);
                        return k;
                }
                done += n;
        }
        t = now_s() - t0;
        free(buf);
        printf("%lu %.3f %.0f\n", count, t, (double) count / t);
        return 0;
}

static void print_latency(double *lat, unsigned long n) {
        qsort(lat, n, sizeof(double), cmp_double);
        printf("%.3f %.3f %.3f\n", lat[0], lat[n / 2], lat[n - 1]);
}

static int single(sd_bus *bus, unsigned long calls) {
        double *lat = calloc(calls, sizeof(double));

        if (!lat)
                return fail("calloc", -ENOMEM, NULL);
        for (unsigned long i = 0; i < calls; i++) {
                sd_bus_error e = SD_BUS_ERROR_NULL;
                sd_bus_message *reply = NULL;
                char a[INET_ADDRSTRLEN];
                double t0;
                int r;

                addr4(0x64400000u, (uint32_t) i, a);
                t0 = now_s();
                r = sd_bus_call_method(bus, DEST, BANS_PATH, BANS_IFACE, "Ban", &e, &reply,
                                       "sts", a, (uint64_t) 0, "bench");
                lat[i] = (now_s() - t0) * 1e3;
                sd_bus_message_unref(reply);
                if (r < 0) {
                        int k = fail("Ban", r, &e);

                        sd_bus_error_free(&e);
                        free(lat);
                        return k;
                }
        }
        print_latency(lat, calls);
        free(lat);
        return 0;
}

static int fsync_floor(const char *dir, unsigned long calls) {
        char path[4096], rec[160];
        double *lat = calloc(calls, sizeof(double));
        int fd;

        if (!lat)
                return fail("calloc", -ENOMEM, NULL);
        if (snprintf(path, sizeof path, "%s/fsync-floor.%d", dir, (int) getpid()) >= (int) sizeof path)
                return fail("path", -ENAMETOOLONG, NULL);
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0600);
        if (fd < 0) {
                free(lat);
                return fail(path, -errno, NULL);
        }
        memset(rec, 'x', sizeof rec);
        rec[sizeof rec - 1] = '\n';
        for (unsigned long i = 0; i < calls; i++) {
                double t0 = now_s();

                if (write(fd, rec, sizeof rec) != (ssize_t) sizeof rec || fdatasync(fd) < 0) {
                        int r = -errno;

                        close(fd);
                        unlink(path);
                        free(lat);
                        return fail("append", r, NULL);
                }
                lat[i] = (now_s() - t0) * 1e3;
        }
        close(fd);
        unlink(path);
        print_latency(lat, calls);
        free(lat);
        return 0;
}

int main(int argc, char **argv) {
        unsigned long a = 0, b = 0;
        sd_bus *bus = NULL;
        int r;

        if (argc == 4 && strcmp(argv[1], "fsync") == 0)
                return parse_count(argv[3], &a) < 0 ? 2 : fsync_floor(argv[2], a) ? 1 : 0;
        bool batched = argc > 1 && (strcmp(argv[1], "batch") == 0 || strcmp(argv[1], "floor") == 0 ||
                                    strcmp(argv[1], "file") == 0);

        if (argc < 3 || parse_count(argv[2], &a) < 0 ||
            (batched && (argc != 4 || parse_count(argv[3], &b) < 0)) ||
            (strcmp(argv[1], "single") == 0 && argc != 3) ||
            (!batched && strcmp(argv[1], "single") != 0)) {
                fprintf(stderr, "usage: ban-client batch|floor|file COUNT PER_CALL | single CALLS | "
                        "fsync DIR CALLS\n");
                return 2;
        }
        r = sd_bus_open_system(&bus);
        if (r < 0)
                return fail("cannot connect to the system bus", r, NULL);
        if (strcmp(argv[1], "file") == 0)
                r = file_calls(bus, a, b);
        else
                r = batched ? batch(bus, a, b, strcmp(argv[1], "floor") == 0) : single(bus, a);
        sd_bus_flush_close_unref(bus);
        return r;
}
