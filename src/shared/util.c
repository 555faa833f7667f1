/* SPDX-License-Identifier: MIT */
#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>

#include "util.h"

int error_setf(char **ret_error, int r, const char *fmt, ...) {
        va_list ap;
        char *s;
        int k;

        assert(fmt);
        if (!ret_error)
                return r;
        va_start(ap, fmt);
        k = vasprintf(&s, fmt, ap);
        va_end(ap);
        free(*ret_error);
        *ret_error = k < 0 ? NULL : s;
        return k < 0 ? -ENOMEM : r;
}

uint64_t now_nsec(int clock) {
        struct timespec ts;

        if (clock_gettime(clock, &ts) < 0)
                return 0;
        return (uint64_t) ts.tv_sec * NSEC_PER_SEC + (uint64_t) ts.tv_nsec;
}

/* CLOCK_REALTIME − CLOCK_MONOTONIC in µs, taken once per poll tick: converting every stamp of
 * a reply with the same offset keeps first_seen <= last_seen after rounding. */
static int64_t realtime_offset_usec;

/* Reading the two clocks one after the other gives an offset that differs by a microsecond or
 * so each time; taken anew on every tick, a flow's first_seen would move between two calls.
 * The offset is kept until the clocks really moved apart (the wall clock was set or stepped). */
#define REALTIME_STEP_USEC (500 * INT64_C(1000))

void realtime_offset_update(void) {
        int64_t o = (int64_t) now_usec(CLOCK_REALTIME) -
                    (int64_t) (now_nsec(CLOCK_MONOTONIC) / NSEC_PER_USEC);

        if (realtime_offset_usec == 0 || o - realtime_offset_usec > REALTIME_STEP_USEC ||
            realtime_offset_usec - o > REALTIME_STEP_USEC)
                realtime_offset_usec = o;
}

uint64_t mono_to_realtime_usec(uint64_t mono_ns) {
        int64_t r;

        if (mono_ns == 0)
                return 0;
        if (realtime_offset_usec == 0)
                realtime_offset_update();
        r = (int64_t) (mono_ns / NSEC_PER_USEC) + realtime_offset_usec;
        return r > 0 ? (uint64_t) r : 0;
}

uint64_t now_usec(int clock) {
        return now_nsec(clock) / NSEC_PER_USEC;
}

int safe_atou64(const char *s, uint64_t *ret) {
        unsigned long long v;
        char *end = NULL;

        if (!s || !*s)
                return -EINVAL;
        /* strtoull accepts leading blanks and a minus sign; we don't. */
        if (!isdigit((unsigned char) s[0]))
                return -EINVAL;
        errno = 0;
        v = strtoull(s, &end, 10);
        if (errno == ERANGE)
                return -ERANGE;
        if (errno != 0 || !end || *end != '\0')
                return -EINVAL;
        *ret = (uint64_t) v;
        return 0;
}

int safe_atou32(const char *s, uint32_t *ret) {
        uint64_t v;
        int r;

        r = safe_atou64(s, &v);
        if (r < 0)
                return r;
        if (v > UINT32_MAX)
                return -ERANGE;
        *ret = (uint32_t) v;
        return 0;
}

static const struct {
        const char *suffix;
        uint64_t usec;
} time_units[] = {
        /* Longest suffixes first so that "ms" is not read as "m" + "s". */
        { "usec", 1 },
        { "us", 1 },
        { "msec", 1000 },
        { "ms", 1000 },
        { "seconds", USEC_PER_SEC },
        { "second", USEC_PER_SEC },
        { "sec", USEC_PER_SEC },
        { "s", USEC_PER_SEC },
        { "minutes", 60 * USEC_PER_SEC },
        { "minute", 60 * USEC_PER_SEC },
        { "min", 60 * USEC_PER_SEC },
        { "m", 60 * USEC_PER_SEC },
        { "hours", 3600 * USEC_PER_SEC },
        { "hour", 3600 * USEC_PER_SEC },
        { "hr", 3600 * USEC_PER_SEC },
        { "h", 3600 * USEC_PER_SEC },
        { "days", 86400 * USEC_PER_SEC },
        { "day", 86400 * USEC_PER_SEC },
        { "d", 86400 * USEC_PER_SEC },
};

int parse_time_span(const char *s, uint64_t *ret_usec) {
        uint64_t total = 0;
        bool any = false;
        const char *p = s;

        if (!s)
                return -EINVAL;
        for (;;) {
                uint64_t n = 0, unit = USEC_PER_SEC;
                size_t k;
                bool digits = false;

                while (*p == ' ' || *p == '\t')
                        p++;
                if (*p == '\0')
                        break;
                while (isdigit((unsigned char) *p)) {
                        if (n > (UINT64_MAX - 9) / 10)
                                return -ERANGE;
                        n = n * 10 + (uint64_t) (*p - '0');
                        p++;
                        digits = true;
                }
                if (!digits)
                        return -EINVAL;
                while (*p == ' ')
                        p++;
                for (k = 0; k < ELEMENTSOF(time_units); k++) {
                        size_t l = strlen(time_units[k].suffix);

                        if (strncmp(p, time_units[k].suffix, l) == 0 &&
                            !isalpha((unsigned char) p[l])) {
                                unit = time_units[k].usec;
                                p += l;
                                break;
                        }
                }
                if (k == ELEMENTSOF(time_units) && isalpha((unsigned char) *p))
                        return -EINVAL;
                if (n > UINT64_MAX / unit || total > UINT64_MAX - n * unit)
                        return -ERANGE;
                total += n * unit;
                any = true;
        }
        if (!any)
                return -EINVAL;
        *ret_usec = total;
        return 0;
}

int parse_boolean(const char *s) {
        static const char *const yes[] = { "1", "yes", "y", "true", "t", "on" };
        static const char *const no[] = { "0", "no", "n", "false", "f", "off" };

        for (size_t i = 0; i < ELEMENTSOF(yes); i++)
                if (strcasecmp(s, yes[i]) == 0)
                        return 1;
        for (size_t i = 0; i < ELEMENTSOF(no); i++)
                if (strcasecmp(s, no[i]) == 0)
                        return 0;
        return -EINVAL;
}

bool string_is_valid_utf8(const char *s, size_t max_len) {
        const unsigned char *p = (const unsigned char *) s;
        size_t n = 0;

        while (*p) {
                unsigned len, cp;

                if (++n > max_len)
                        return false;
                if (*p < 0x80) {
                        p++;
                        continue;
                } else if ((*p & 0xe0) == 0xc0) {
                        len = 2;
                        cp = *p & 0x1f;
                } else if ((*p & 0xf0) == 0xe0) {
                        len = 3;
                        cp = *p & 0x0f;
                } else if ((*p & 0xf8) == 0xf0) {
                        len = 4;
                        cp = *p & 0x07;
                } else
                        return false;
                for (unsigned i = 1; i < len; i++) {
                        if ((p[i] & 0xc0) != 0x80)
                                return false;
                        cp = (cp << 6) | (p[i] & 0x3f);
                }
                /* Overlong forms, surrogates and values past U+10FFFF are invalid. */
                if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) ||
                    (len == 4 && cp < 0x10000) || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
                        return false;
                p += len;
        }
        return true;
}

int fsync_parent_dir(const char *path) {
        _cleanup_free_ char *dir = NULL;
        _cleanup_close_ int fd = -1;
        char *slash;

        assert(path);
        dir = strdup(path);
        if (!dir)
                return -ENOMEM;
        slash = strrchr(dir, '/');
        if (!slash)
                fd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        else {
                if (slash == dir)
                        slash[1] = '\0';
                else
                        *slash = '\0';
                fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        }
        if (fd < 0)
                return -errno;
        return fsync(fd) < 0 ? -errno : 0;
}

int write_all(int fd, const void *data, size_t size) {
        const char *p = data;

        while (size > 0) {
                ssize_t n = write(fd, p, size);

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                p += n;
                size -= (size_t) n;
        }
        return 0;
}

int memfd_new_sealed(const char *name, const void *data, size_t size) {
        _cleanup_close_ int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
        int r;

        if (fd < 0)
                return -errno;
        r = write_all(fd, data, size);
        if (r < 0)
                return r;
        /* Nobody may change it once it is sent, not even its writer. */
        if (fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0)
                return -errno;
        if (lseek(fd, 0, SEEK_SET) < 0)
                return -errno;
        return TAKE_FD(fd);
}

int write_file_atomic(const char *path, const void *data, size_t size, unsigned mode) {
        _cleanup_free_ char *tmp = NULL;
        _cleanup_close_ int fd = -1;
        int r;

        if (asprintf(&tmp, "%s.tmpXXXXXX", path) < 0)
                return -ENOMEM;
        fd = mkostemp(tmp, O_CLOEXEC);
        if (fd < 0)
                return -errno;
        if (fchmod(fd, mode) < 0)
                goto fail;
        r = write_all(fd, data, size);
        if (r < 0) {
                errno = -r;
                goto fail;
        }
        if (fsync(fd) < 0)
                goto fail;
        if (rename(tmp, path) < 0)
                goto fail;
        /* The rename is durable only once the directory that holds the name is. */
        return fsync_parent_dir(path);
fail:
        r = -errno;
        (void) unlink(tmp);
        return r;
}

bool is_atomic_temp_name(const char *name) {
        size_t n = strlen(name);

        /* NAME.tmpXXXXXX: mkostemp() put six characters of [A-Za-z0-9] there. */
        if (n <= 10 || memcmp(name + n - 10, ".tmp", 4) != 0)
                return false;
        for (size_t i = n - 6; i < n; i++)
                if (!isalnum((unsigned char) name[i]))
                        return false;
        return true;
}

int remove_atomic_temp_files(const char *dir, void (*removed)(const char *name, void *userdata),
                             void *userdata) {
        DIR *d = opendir(dir);
        struct dirent *de;
        int n = 0;

        if (!d)
                return -errno;
        while ((de = readdir(d))) {
                if (de->d_type != DT_REG && de->d_type != DT_UNKNOWN)
                        continue;
                if (!is_atomic_temp_name(de->d_name))
                        continue;
                if (unlinkat(dirfd(d), de->d_name, 0) < 0)
                        continue;
                n++;
                if (removed)
                        removed(de->d_name, userdata);
        }
        closedir(d);
        return n;
}

int read_file_full(const char *path, size_t max_size, char **ret, size_t *ret_size) {
        _cleanup_close_ int fd = -1;
        _cleanup_free_ char *buf = NULL;
        size_t used = 0, alloc = 0;

        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        for (;;) {
                ssize_t n;

                if (alloc - used < 4096) {
                        size_t na = alloc ? alloc * 2 : 8192;
                        char *nb;

                        if (alloc > max_size + 1)
                                return -EFBIG;
                        nb = realloc(buf, na);
                        if (!nb)
                                return -ENOMEM;
                        buf = nb;
                        alloc = na;
                }
                n = read(fd, buf + used, alloc - used - 1);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        break;
                used += (size_t) n;
                if (used > max_size)
                        return -EFBIG;
        }
        buf[used] = '\0';
        *ret = TAKE_PTR(buf);
        if (ret_size)
                *ret_size = used;
        return 0;
}

char *strjoin_path(const char *a, const char *b) {
        char *s;

        if (asprintf(&s, "%s/%s", a, b) < 0)
                return NULL;
        return s;
}

int mkdir_p(const char *path, unsigned mode) {
        _cleanup_free_ char *copy = strdup(path);

        if (!copy)
                return -ENOMEM;
        for (char *p = copy + 1; *p; p++) {
                if (*p != '/')
                        continue;
                *p = '\0';
                if (mkdir(copy, mode) < 0 && errno != EEXIST)
                        return -errno;
                *p = '/';
        }
        if (mkdir(copy, mode) < 0 && errno != EEXIST)
                return -errno;
        return 0;
}

int file_set_aside(const char *path, const char *why, char **ret_error) {
        _cleanup_free_ char *aside = NULL;

        assert(path);
        assert(why);
        if (asprintf(&aside, "%s.corrupt", path) < 0)
                return -ENOMEM;
        if (rename(path, aside) < 0)
                return error_setf(ret_error, -EBADMSG, "%s is corrupt (%s) and cannot be moved "
                                  "aside: %s", path, why, strerror(errno));
        return error_setf(ret_error, -EBADMSG, "%s is corrupt (%s); kept as %s", path, why, aside);
}

int json_read_file(const char *path, size_t max_size, const char *too_large, json_t **ret,
                   char **ret_error) {
        _cleanup_free_ char *text = NULL;
        json_error_t jerr;
        json_t *root;
        int r;

        assert(path);
        assert(too_large);
        assert(ret);
        r = read_file_full(path, max_size, &text, NULL);
        if (r == -EFBIG)
                return file_set_aside(path, too_large, ret_error);
        if (r < 0)
                return r;
        root = json_loads(text, 0, &jerr);
        if (!root) {
                char why[256];

                snprintf(why, sizeof why, "line %d: %s", jerr.line, jerr.text);
                return file_set_aside(path, why, ret_error);
        }
        *ret = root;
        return 0;
}

bool ifname_valid(const char *s) {
        size_t l;

        assert(s);
        l = strlen(s);
        if (l == 0 || l > IFNAME_MAX || streq(s, ".") || streq(s, ".."))
                return false;
        /* The kernel's dev_valid_name(): no '/', ':' or white space (its isspace() includes
         * 0xa0). Control characters are refused here as well: a name is shown to people. */
        for (; *s; s++) {
                unsigned char c = (unsigned char) *s;

                if (c == '/' || c == ':' || c <= ' ' || c == 0x7f || c == 0xa0)
                        return false;
        }
        return true;
}

/* Kept as they are: what bpffs and a shell take without quoting, '.' and '%' aside. */
static bool pin_char_plain(unsigned char c) {
        return c > ' ' && c < 0x7f && c != '.' && c != '%' && c != '/';
}

int ifname_to_pin_name(const char *ifname, char **ret) {
        static const char hex[] = "0123456789abcdef";
        char *s, *p;

        assert(ifname);
        assert(ret);
        if (!ifname_valid(ifname))
                return -EINVAL;
        s = p = malloc(strlen(ifname) * 3 + 1);
        if (!s)
                return -ENOMEM;
        for (const unsigned char *c = (const unsigned char *) ifname; *c; c++) {
                if (pin_char_plain(*c)) {
                        *p++ = (char) *c;
                        continue;
                }
                *p++ = '%';
                *p++ = hex[*c >> 4];
                *p++ = hex[*c & 15];
        }
        *p = '\0';
        *ret = s;
        return 0;
}

static int unhex(char c) {
        return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

int pin_name_to_ifname(const char *pin, char **ret) {
        _cleanup_free_ char *s = NULL, *again = NULL;
        char *p;
        int r;

        assert(pin);
        assert(ret);
        s = p = malloc(strlen(pin) + 1);
        if (!s)
                return -ENOMEM;
        for (const char *c = pin; *c; c++) {
                int hi, lo;

                if (*c != '%') {
                        *p++ = *c;
                        continue;
                }
                hi = unhex(c[1]);
                lo = hi < 0 ? -1 : unhex(c[2]);
                if (lo < 0)
                        return -EINVAL;
                *p++ = (char) (hi << 4 | lo);
                c += 2;
        }
        *p = '\0';
        /* Only the one spelling ifname_to_pin_name() makes: anything else is a name of the
         * first layout, or no interface name at all. */
        r = ifname_to_pin_name(s, &again);
        if (r < 0)
                return r;
        if (!streq(again, pin))
                return -EINVAL;
        *ret = TAKE_PTR(s);
        return 0;
}
