/* SPDX-License-Identifier: MIT */
#pragma once

#include <assert.h>
#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define USEC_PER_SEC  UINT64_C(1000000)
#define NSEC_PER_USEC UINT64_C(1000)
#define NSEC_PER_SEC  UINT64_C(1000000000)
#define USEC_INFINITY UINT64_MAX

#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _cleanup_free_ _cleanup_(freep)
#define _cleanup_close_ _cleanup_(closep)
#define _unused_ __attribute__((unused))
#define _printf_(a, b) __attribute__((format(printf, a, b)))

static inline void freep(void *p) {
        free(*(void **) p);
}

static inline void closep(int *fd) {
        if (*fd >= 0) {
                int saved = errno;
                close(*fd);
                errno = saved;
        }
}

static inline void *mfree(void *p) {
        free(p);
        return NULL;
}

static inline int safe_close(int fd) {
        if (fd >= 0)
                close(fd);
        return -1;
}

static inline bool streq(const char *a, const char *b) {
        return strcmp(a, b) == 0;
}

static inline bool streq_ptr(const char *a, const char *b) {
        if (!a || !b)
                return a == b;
        return streq(a, b);
}

static inline bool endswith(const char *s, const char *suffix) {
        size_t n = strlen(s), k = strlen(suffix);

        return n >= k && memcmp(s + n - k, suffix, k) == 0;
}

static inline const char *strna(const char *s) {
        return s ? s : "n/a";
}

static inline const char *strempty(const char *s) {
        return s ? s : "";
}

/* Hands over ownership: returns *p and sets it to NULL. */
#define TAKE_PTR(p) ({ __typeof__(p) _t = (p); (p) = NULL; _t; })
#define TAKE_FD(fd) ({ int _t = (fd); (fd) = -1; _t; })

/*
 * Replaces *ret_error (if ret_error is not NULL) with a formatted message and returns r; when
 * there is no memory for the message, *ret_error is NULL and the result -ENOMEM. The one way an
 * error text is built, so that no out-pointer is ever left undefined.
 */
int error_setf(char **ret_error, int r, const char *fmt, ...) _printf_(3, 4);

uint64_t now_usec(int clock);

/* A CLOCK_MONOTONIC ns stamp (as the BPF maps keep them) as CLOCK_REALTIME µs; 0 stays 0. The
 * offset between the clocks is checked by realtime_offset_update(), once per poll tick, and
 * changes only when the wall clock was stepped, so that a stamp converts the same every time. */
uint64_t mono_to_realtime_usec(uint64_t mono_ns);
void realtime_offset_update(void);
uint64_t now_nsec(int clock);

/* Strict number parsing: the whole string, no sign surprises, no overflow. */
int safe_atou64(const char *s, uint64_t *ret);
int safe_atou32(const char *s, uint32_t *ret);

/* systemd-style time spans: "1s", "500ms", "2min 30s", "1h"; a plain number is seconds. */
int parse_time_span(const char *s, uint64_t *ret_usec);

/* "yes"/"no"/"true"/"false"/"1"/"0"/"on"/"off". Returns 1, 0 or -EINVAL. */
int parse_boolean(const char *s);

bool string_is_valid_utf8(const char *s, size_t max_len);

/* fsyncs the directory that holds path, so that a rename or unlink in it is durable. */
int fsync_parent_dir(const char *path);

/* Writes data to path atomically and durably: a temp file beside it, fsync, rename, fsync of
 * the directory. On failure the file is as it was (the temp file is removed), except when only
 * the last fsync failed: then the new content is in place but may not survive a crash. */
/* Writes all of data, or fails with -errno (EINTR is retried). */
int write_all(int fd, const void *data, size_t size);
/* A memfd holding data at offset 0, sealed against every change (write, shrink, grow, more
 * seals): what a method that takes a file descriptor can trust not to change under it.
 * Returns the descriptor (close-on-exec) or -errno. */
int memfd_new_sealed(const char *name, const void *data, size_t size);
int write_file_atomic(const char *path, const void *data, size_t size, unsigned mode);
/* Whether name is one write_file_atomic() writes before its rename (NAME.tmpXXXXXX). */
bool is_atomic_temp_name(const char *name);
/* Removes from dir the files a write cut short left (is_atomic_temp_name()), calling removed()
 * for each; how many, or -errno when dir cannot be read. Only while no writer can be at work. */
int remove_atomic_temp_files(const char *dir, void (*removed)(const char *name, void *userdata),
                             void *userdata);

/* Reads a whole file (at most max_size bytes) into a NUL-terminated buffer. */
int read_file_full(const char *path, size_t max_size, char **ret, size_t *ret_size);

/* Renames a corrupt file to <path>.corrupt so that it is kept for a look and not read again;
 * returns -EBADMSG with *ret_error saying why and where it went. */
int file_set_aside(const char *path, const char *why, char **ret_error);

/* Reads a JSON file of at most max_size bytes; one too large (`too_large` says how) or not
 * JSON is set aside as with file_set_aside(). -ENOENT when there is none. */
int json_read_file(const char *path, size_t max_size, const char *too_large, json_t **ret,
                   char **ret_error);

/* The longest interface name the kernel takes (IFNAMSIZ - 1). */
#define IFNAME_MAX 15

/* An interface name as the kernel accepts it: 1-15 bytes, not "." or "..", no '/', ':' or
 * white space (and, here, no control characters). '.', '-', '_', '@' are all fine. */
bool ifname_valid(const char *s);

/* The name of a link's pin directory. bpffs refuses names with a '.' (every VLAN
 * sub-interface has one), so '.', '%' and bytes outside printable ASCII are written %xx
 * (lower-case hex); other names stay as they are, which is also how the first layout named
 * them. -EINVAL for a name that is no interface name. */
int ifname_to_pin_name(const char *ifname, char **ret);
/* The reverse: -EINVAL unless pin is exactly what ifname_to_pin_name() makes of some name. */
int pin_name_to_ifname(const char *pin, char **ret);

char *strjoin_path(const char *a, const char *b);
int mkdir_p(const char *path, unsigned mode);

#include <dirent.h>
static inline void closedirp(DIR **d) {
        if (*d)
                closedir(*d);
}
