/* SPDX-License-Identifier: MIT */
#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/vfs.h>

#include "health.h"
#include "log.h"
#include "util.h"

#ifndef CGROUP2_SUPER_MAGIC
#define CGROUP2_SUPER_MAGIC 0x63677270
#endif

#define PROC_FILE_MAX (256u * 1024) /* /proc/stat on a many-CPU host stays well below */
#define CGROUP_DEPTH_MAX 6

/* One process as sampled: cumulative counters, so the next sample gives rates. */
typedef struct ProcSample {
        int pid;
        char comm[16];
        uint64_t cpu_ticks, rss_bytes, read_bytes, write_bytes;
        double cpu_percent, read_bps, write_bps;
} ProcSample;

typedef struct UnitSample {
        char *path; /* below the cgroup root: the key between samples */
        const char *name; /* its last component, in path */
        uint64_t usage_usec, memory_bytes, read_bytes, write_bytes;
        double cpu_percent, read_bps, write_bps;
} UnitSample;

typedef struct KindState {
        uint64_t above_since, below_since; /* CLOCK_MONOTONIC µs; 0: not in that state */
        Anomaly *open;
} KindState;

struct Health {
        sd_event *event;
        HealthConfig config;
        health_links_t links;
        health_event_t on_event;
        void *userdata;

        sd_event_source *timer;
        PressureSource pressure_source;
        int psi_fd[_PRESSURE_MAX];
        sd_event_source *psi_source[_PRESSURE_MAX];
        uint64_t psi_fired_usec[_PRESSURE_MAX]; /* CLOCK_MONOTONIC of the last trigger */
        /* The stall total and when it was read, at the last event or sample: what confirms
         * an event (the kernel also reports one right after a trigger is armed). */
        uint64_t psi_total[_PRESSURE_MAX], psi_total_usec[_PRESSURE_MAX];
        bool psi_present[_PRESSURE_MAX];

        HealthFigures figures;

        /* Cumulative counters of the previous sample. */
        uint64_t last_sample_usec; /* CLOCK_MONOTONIC */
        uint64_t cpu_total, cpu_busy;
        uint64_t disk_read_sectors, disk_write_sectors;
        bool have_prev;
        long ticks_per_sec;
        uint64_t page_size;

        /* The processes and units of the last read of them, and when it was (CLOCK_MONOTONIC
         * µs; 0: none kept). */
        uint64_t consumers_usec;
        ProcSample *procs;
        size_t n_procs;
        UnitSample *units;
        size_t n_units;
        char *cgroup_root;

        HealthLinkRate links_now[HEALTH_LINKS_MAX];
        unsigned n_links_now;

        KindState kinds[_HEALTH_KIND_MAX];
        Anomaly *history; /* ring of closed anomalies */
        unsigned history_start, n_history;
        uint32_t next_id;
};

static const char *const kind_names[_HEALTH_KIND_MAX] = {
        [HEALTH_CPU] = "cpu",
        [HEALTH_MEMORY] = "memory",
        [HEALTH_DISK] = "disk",
        [HEALTH_CPU_PRESSURE] = "cpu-pressure",
        [HEALTH_MEMORY_PRESSURE] = "memory-pressure",
        [HEALTH_IO_PRESSURE] = "io-pressure",
};

static const char *const resource_names[_PRESSURE_MAX] = {
        [PRESSURE_CPU] = "cpu",
        [PRESSURE_MEMORY] = "memory",
        [PRESSURE_IO] = "io",
};

const char *health_kind_to_string(HealthKind k) {
        return k < _HEALTH_KIND_MAX ? kind_names[k] : NULL;
}

const char *pressure_resource_to_string(PressureResource r) {
        return r < _PRESSURE_MAX ? resource_names[r] : NULL;
}

const char *pressure_source_to_string(PressureSource s) {
        switch (s) {
        case PRESSURE_SOURCE_TRIGGERS:
                return "triggers";
        case PRESSURE_SOURCE_SAMPLER:
                return "sampler";
        default:
                return "none";
        }
}

/* "some avg10=1.00 avg60=0.50 avg300=0.10 total=123\nfull avg10=…": the avg10/avg60 of both. */
int pressure_parse(const char *text, PressureValues *ret) {
        PressureValues v = { .present = true };
        bool some = false;

        assert(text);
        assert(ret);
        for (const char *line = text; line && *line; line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
                unsigned long long total = 0;
                double a10, a60, a300;
                char kind[5];

                if (sscanf(line, "%4s avg10=%lf avg60=%lf avg300=%lf total=%llu", kind, &a10, &a60,
                           &a300, &total) < 3)
                        continue;
                if (streq(kind, "some")) {
                        v.some_avg10 = a10;
                        v.some_avg60 = a60;
                        v.some_total_usec = total;
                        some = true;
                } else if (streq(kind, "full")) {
                        v.full_avg10 = a10;
                        v.full_avg60 = a60;
                }
        }
        if (!some)
                return -EBADMSG;
        *ret = v;
        return 0;
}

/* --- pressure triggers --- */

static void health_sample(Health *h, bool tick);

static int read_pressure(PressureResource res, PressureValues *ret);

/* An event counts when the stall grew by the threshold's share of the time since the last look
 * (after a long quiet spell that share is diluted, and the next event, one window later,
 * confirms it). */
static void psi_confirm(Health *h, PressureResource r, uint64_t now) {
        PressureValues v;
        uint64_t dt = now - h->psi_total_usec[r];

        if (read_pressure(r, &v) < 0)
                return;
        if (h->psi_total_usec[r] != 0 && dt > 0 && v.some_total_usec >= h->psi_total[r] &&
            (double) (v.some_total_usec - h->psi_total[r]) / (double) dt * 100.0 >=
            h->config.pressure_percent)
                h->psi_fired_usec[r] = now;
        h->psi_total[r] = v.some_total_usec;
        h->psi_total_usec[r] = now;
}

static int on_psi(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Health *h = userdata;
        uint64_t now = now_usec(CLOCK_MONOTONIC);

        for (unsigned r = 0; r < _PRESSURE_MAX; r++)
                if (h->psi_source[r] == s && (revents & EPOLLPRI))
                        psi_confirm(h, r, now);
        if (revents & EPOLLERR) {
                /* The file went away under us (it does not, short of a kernel bug): the
                 * sampler still reads avg10. */
                (void) sd_event_source_set_enabled(s, SD_EVENT_OFF);
                return 0;
        }
        /* Look now rather than at the next tick, but not more than once a second: a trigger
         * fires at most once per window anyway. */
        if (now - h->last_sample_usec >= USEC_PER_SEC)
                health_sample(h, false);
        return 0;
}

static void health_psi_close(Health *h) {
        for (unsigned r = 0; r < _PRESSURE_MAX; r++) {
                h->psi_source[r] = sd_event_source_disable_unref(h->psi_source[r]);
                h->psi_fd[r] = safe_close(h->psi_fd[r]);
        }
}

/* One trigger per resource: "some <stall µs> <window µs>" on the pressure file, then POLLPRI
 * when the stall within a window passes the threshold. A kernel without PSI, or one that
 * refuses the trigger (older kernels without CAP_SYS_RESOURCE, a sandbox), leaves the sampler
 * to read avg10 every interval. */
static int health_psi_open(Health *h) {
        uint64_t stall = (uint64_t) (h->config.pressure_percent / 100.0 * HEALTH_PSI_WINDOW_USEC);
        int r = 0;

        health_psi_close(h);
        h->pressure_source = PRESSURE_SOURCE_NONE;
        for (unsigned i = 0; i < _PRESSURE_MAX; i++) {
                _cleanup_free_ char *path = NULL;

                if (asprintf(&path, "/proc/pressure/%s", resource_names[i]) < 0)
                        return -ENOMEM;
                h->psi_present[i] = access(path, R_OK) >= 0;
                if (h->psi_present[i])
                        h->pressure_source = PRESSURE_SOURCE_SAMPLER;
        }
        if (h->pressure_source == PRESSURE_SOURCE_NONE || !h->config.pressure_triggers)
                return 0;

        stall = MAX(stall, (uint64_t) 1);
        for (unsigned i = 0; i < _PRESSURE_MAX; i++) {
                _cleanup_free_ char *path = NULL;
                char trigger[64];
                int fd, n;

                if (asprintf(&path, "/proc/pressure/%s", resource_names[i]) < 0)
                        return -ENOMEM;
                /* The kernel drops the written buffer's last byte: end it with a NUL. */
                n = snprintf(trigger, sizeof(trigger), "some %llu %llu", (unsigned long long) stall,
                             (unsigned long long) HEALTH_PSI_WINDOW_USEC);
                fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
                if (fd < 0) {
                        r = -errno;
                        break;
                }
                if (write(fd, trigger, (size_t) n + 1) < 0) {
                        r = -errno;
                        close(fd);
                        break;
                }
                h->psi_fd[i] = fd;
                r = sd_event_add_io(h->event, &h->psi_source[i], fd, EPOLLPRI, on_psi, h);
                if (r < 0)
                        break;
        }
        if (r < 0) {
                log_struct_internal(LOG_NOTICE, r, NULL, NULL,
                                    "The kernel refuses pressure triggers (%m); pressure is read "
                                    "every %llu ms by the sampler instead",
                                    (unsigned long long) (h->config.interval_usec / 1000));
                health_psi_close(h);
                return 0;
        }
        h->pressure_source = PRESSURE_SOURCE_TRIGGERS;
        return 0;
}

/* --- the sampler's readers, which do not log --- */

static int read_proc_stat(uint64_t *ret_total, uint64_t *ret_busy) {
        _cleanup_free_ char *text = NULL;
        unsigned long long v[10] = {};
        uint64_t total = 0;
        int r, n;

        r = read_file_full("/proc/stat", PROC_FILE_MAX, &text, NULL);
        if (r < 0)
                return r;
        n = sscanf(text, "cpu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1],
                   &v[2], &v[3], &v[4], &v[5], &v[6], &v[7], &v[8], &v[9]);
        if (n < 4)
                return -EBADMSG;
        /* guest and guest_nice (8, 9) are already inside user and nice. */
        for (int i = 0; i < MIN(n, 8); i++)
                total += v[i];
        *ret_total = total;
        *ret_busy = total - v[3] - (n > 4 ? v[4] : 0); /* idle, iowait */
        return 0;
}

static int read_meminfo(double *ret_percent) {
        _cleanup_free_ char *text = NULL;
        unsigned long long total = 0, avail = 0;
        const char *p;
        int r;

        r = read_file_full("/proc/meminfo", PROC_FILE_MAX, &text, NULL);
        if (r < 0)
                return r;
        p = strstr(text, "MemTotal:");
        if (!p || sscanf(p, "MemTotal: %llu", &total) != 1 || total == 0)
                return -EBADMSG;
        p = strstr(text, "MemAvailable:");
        if (!p || sscanf(p, "MemAvailable: %llu", &avail) != 1)
                return -EBADMSG;
        *ret_percent = avail >= total ? 0 : 100.0 * (double) (total - avail) / (double) total;
        return 0;
}

/* Whole physical disks only (those with a device behind them in /sys/block): partitions,
 * device-mapper and loop devices would count the same bytes twice. */
static bool disk_is_physical(const char *name) {
        _cleanup_free_ char *path = NULL;

        if (strchr(name, '/') || asprintf(&path, "/sys/block/%s/device", name) < 0)
                return false;
        return access(path, F_OK) >= 0;
}

static int read_diskstats(uint64_t *ret_read, uint64_t *ret_write) {
        _cleanup_free_ char *text = NULL;
        uint64_t rd = 0, wr = 0;
        char *save = NULL;
        int r;

        r = read_file_full("/proc/diskstats", PROC_FILE_MAX, &text, NULL);
        if (r < 0)
                return r;
        for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                unsigned long long rs, ws, x;
                char name[64];

                if (sscanf(line, " %llu %llu %63s %llu %llu %llu %llu %llu %llu %llu", &x, &x, name,
                           &x, &x, &rs, &x, &x, &x, &ws) != 10)
                        continue;
                if (!disk_is_physical(name))
                        continue;
                rd += rs;
                wr += ws;
        }
        *ret_read = rd;
        *ret_write = wr;
        return 0;
}

static int read_pressure(PressureResource res, PressureValues *ret) {
        _cleanup_free_ char *text = NULL, *path = NULL;
        int r;

        if (asprintf(&path, "/proc/pressure/%s", resource_names[res]) < 0)
                return -ENOMEM;
        r = read_file_full(path, 4096, &text, NULL);
        if (r < 0)
                return r;
        return pressure_parse(text, ret);
}

/* "key value" lines (cpu.stat) or "key=value" words (io.stat): the sum of every `key`. */
static uint64_t sum_key(const char *text, const char *key, char sep) {
        size_t l = strlen(key);
        uint64_t sum = 0;

        for (const char *p = text; (p = strstr(p, key)); p += l) {
                unsigned long long v;

                if (p != text && !isspace((unsigned char) p[-1]))
                        continue;
                if (p[l] != sep)
                        continue;
                if (sscanf(p + l + 1, "%llu", &v) == 1)
                        sum += v;
        }
        return sum;
}

static int proc_sample_cmp(const void *a, const void *b) {
        const ProcSample *x = a, *y = b;

        return (x->pid > y->pid) - (x->pid < y->pid);
}

static int read_process(int pid, const Health *h, ProcSample *ret) {
        _cleanup_free_ char *stat = NULL, *io = NULL;
        char path[64];
        unsigned long long utime, stime;
        long long rss;
        const char *open_paren, *close_paren;
        int r;

        snprintf(path, sizeof(path), "/proc/%d/stat", pid);
        r = read_file_full(path, 4096, &stat, NULL);
        if (r < 0)
                return r;
        open_paren = strchr(stat, '(');
        close_paren = strrchr(stat, ')');
        if (!open_paren || !close_paren || close_paren < open_paren || close_paren[1] == '\0')
                return -EBADMSG;
        /* After the comm: state(3) … utime(14) stime(15) … rss(24). */
        if (sscanf(close_paren + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu "
                   "%*d %*d %*d %*d %*d %*d %*u %*u %lld", &utime, &stime, &rss) != 3)
                return -EBADMSG;
        *ret = (ProcSample) {
                .pid = pid,
                .cpu_ticks = utime + stime,
                .rss_bytes = rss > 0 ? (uint64_t) rss * h->page_size : 0,
        };
        snprintf(ret->comm, sizeof(ret->comm), "%.*s",
                 (int) MIN((size_t) (close_paren - open_paren - 1), sizeof(ret->comm) - 1),
                 open_paren + 1);
        snprintf(path, sizeof(path), "/proc/%d/io", pid);
        /* Not readable for every process in every sandbox: then I/O is simply unknown. */
        if (read_file_full(path, 4096, &io, NULL) >= 0) {
                const char *p = strstr(io, "\nread_bytes:");
                unsigned long long v;

                if (p && sscanf(p, "\nread_bytes: %llu", &v) == 1)
                        ret->read_bytes = v;
                p = strstr(io, "\nwrite_bytes:");
                if (p && sscanf(p, "\nwrite_bytes: %llu", &v) == 1)
                        ret->write_bytes = v;
        }
        return 0;
}

static void sample_processes(Health *h, double dt_sec) {
        _cleanup_(closedirp) DIR *d = opendir("/proc");
        ProcSample *next = NULL;
        size_t n = 0, cap = 0;
        struct dirent *de;

        if (!d)
                return;
        while ((de = readdir(d)) && n < HEALTH_PROCS_MAX) {
                uint32_t pid;
                ProcSample s, *prev;

                if (!isdigit((unsigned char) de->d_name[0]) || safe_atou32(de->d_name, &pid) < 0)
                        continue;
                if (read_process((int) pid, h, &s) < 0)
                        continue; /* gone meanwhile */
                if (n == cap) {
                        size_t c = MAX(cap * 2, (size_t) 256);
                        ProcSample *t = realloc(next, c * sizeof(ProcSample));

                        if (!t)
                                break;
                        next = t;
                        cap = c;
                }
                prev = h->have_prev && dt_sec > 0 && h->n_procs > 0
                       ? bsearch(&s, h->procs, h->n_procs, sizeof(ProcSample), proc_sample_cmp)
                       : NULL;
                if (prev && s.cpu_ticks >= prev->cpu_ticks) {
                        s.cpu_percent = 100.0 * (double) (s.cpu_ticks - prev->cpu_ticks) /
                                        (double) h->ticks_per_sec / dt_sec;
                        if (s.read_bytes >= prev->read_bytes)
                                s.read_bps = (double) (s.read_bytes - prev->read_bytes) / dt_sec;
                        if (s.write_bytes >= prev->write_bytes)
                                s.write_bps = (double) (s.write_bytes - prev->write_bytes) / dt_sec;
                }
                next[n++] = s;
        }
        if (n > 0)
                qsort(next, n, sizeof(ProcSample), proc_sample_cmp);
        free(h->procs);
        h->procs = next;
        h->n_procs = n;
}

static int unit_sample_cmp(const void *a, const void *b) {
        return strcmp(((const UnitSample *) a)->path, ((const UnitSample *) b)->path);
}

static void unit_samples_free(UnitSample *u, size_t n) {
        for (size_t i = 0; i < n; i++)
                free(u[i].path);
        free(u);
}

typedef struct UnitWalk {
        UnitSample *list;
        size_t n, cap;
} UnitWalk;

static void read_unit(const char *root, const char *rel, UnitWalk *w) {
        _cleanup_free_ char *dir = strjoin_path(root, rel), *cpu = NULL, *mem = NULL, *io = NULL;
        _cleanup_free_ char *p1 = NULL, *p2 = NULL, *p3 = NULL;
        UnitSample u = {};

        if (!dir || w->n >= HEALTH_UNITS_MAX)
                return;
        p1 = strjoin_path(dir, "cpu.stat");
        p2 = strjoin_path(dir, "memory.current");
        p3 = strjoin_path(dir, "io.stat");
        if (!p1 || !p2 || !p3)
                return;
        if (read_file_full(p1, 4096, &cpu, NULL) < 0)
                return;
        u.usage_usec = sum_key(cpu, "usage_usec", ' ');
        /* Only where the controllers are enabled (not on a hybrid hierarchy's unified tree). */
        if (read_file_full(p2, 64, &mem, NULL) >= 0) {
                unsigned long long v;

                if (sscanf(mem, "%llu", &v) == 1)
                        u.memory_bytes = v;
        }
        if (read_file_full(p3, 64 * 1024, &io, NULL) >= 0) {
                u.read_bytes = sum_key(io, "rbytes", '=');
                u.write_bytes = sum_key(io, "wbytes", '=');
        }
        if (w->n == w->cap) {
                size_t c = MAX(w->cap * 2, (size_t) 64);
                UnitSample *t = realloc(w->list, c * sizeof(UnitSample));

                if (!t)
                        return;
                w->list = t;
                w->cap = c;
        }
        u.path = strdup(rel);
        if (!u.path)
                return;
        u.name = strrchr(u.path, '/') ? strrchr(u.path, '/') + 1 : u.path;
        w->list[w->n++] = u;
}

static bool name_is_unit(const char *s) {
        size_t l = strlen(s);

        return (l > 8 && streq(s + l - 8, ".service")) || (l > 6 && streq(s + l - 6, ".scope"));
}

/* Services and scopes anywhere in the tree (system.slice, user slices, nested slices); what
 * runs inside a unit counts for the unit, so the walk does not go below one. */
static void walk_units(const char *root, const char *rel, int depth, UnitWalk *w) {
        _cleanup_free_ char *dir = strjoin_path(root, rel);
        _cleanup_(closedirp) DIR *d = NULL;
        struct dirent *de;

        if (!dir || depth > CGROUP_DEPTH_MAX)
                return;
        d = opendir(dir);
        if (!d)
                return;
        while ((de = readdir(d)) && w->n < HEALTH_UNITS_MAX) {
                _cleanup_free_ char *sub = NULL;

                if (de->d_type != DT_DIR || de->d_name[0] == '.')
                        continue;
                sub = *rel ? strjoin_path(rel, de->d_name) : strdup(de->d_name);
                if (!sub)
                        return;
                if (name_is_unit(de->d_name))
                        read_unit(root, sub, w);
                else
                        walk_units(root, sub, depth + 1, w);
        }
}

static void sample_units(Health *h, double dt_sec) {
        UnitWalk w = {};

        if (!h->cgroup_root)
                return;
        walk_units(h->cgroup_root, "", 0, &w);
        if (w.n > 0)
                qsort(w.list, w.n, sizeof(UnitSample), unit_sample_cmp);
        for (size_t i = 0; i < w.n && h->have_prev && dt_sec > 0 && h->n_units > 0; i++) {
                UnitSample *u = &w.list[i];
                const UnitSample *prev = bsearch(u, h->units, h->n_units, sizeof(UnitSample),
                                                 unit_sample_cmp);

                if (!prev)
                        continue;
                if (u->usage_usec >= prev->usage_usec)
                        u->cpu_percent = (double) (u->usage_usec - prev->usage_usec) /
                                         (dt_sec * (double) USEC_PER_SEC) * 100.0;
                if (u->read_bytes >= prev->read_bytes)
                        u->read_bps = (double) (u->read_bytes - prev->read_bytes) / dt_sec;
                if (u->write_bytes >= prev->write_bytes)
                        u->write_bps = (double) (u->write_bytes - prev->write_bytes) / dt_sec;
        }
        unit_samples_free(h->units, h->n_units);
        h->units = w.list;
        h->n_units = w.n;
}

static void sample_links(Health *h, double dt_sec) {
        HealthLinkRate next[HEALTH_LINKS_MAX];
        unsigned n = h->links ? h->links(next, HEALTH_LINKS_MAX, h->userdata) : 0;

        for (unsigned i = 0; i < n; i++) {
                next[i].rx_bps = next[i].tx_bps = 0;
                for (unsigned j = 0; j < h->n_links_now && dt_sec > 0; j++) {
                        const HealthLinkRate *p = &h->links_now[j];

                        if (!streq(p->name, next[i].name))
                                continue;
                        if (next[i].rx_bytes >= p->rx_bytes)
                                next[i].rx_bps = (double) (next[i].rx_bytes - p->rx_bytes) * 8 / dt_sec;
                        if (next[i].tx_bytes >= p->tx_bytes)
                                next[i].tx_bps = (double) (next[i].tx_bytes - p->tx_bytes) * 8 / dt_sec;
                }
        }
        memcpy(h->links_now, next, n * sizeof(HealthLinkRate));
        h->n_links_now = n;
}

/* The unified (v2) hierarchy: /sys/fs/cgroup itself, or its "unified" mount on a hybrid host. */
static char *cgroup_root_find(void) {
        static const char *const candidates[] = { "/sys/fs/cgroup", "/sys/fs/cgroup/unified" };
        struct statfs fs;

        for (size_t i = 0; i < ELEMENTSOF(candidates); i++)
                if (statfs(candidates[i], &fs) >= 0 && fs.f_type == CGROUP2_SUPER_MAGIC)
                        return strdup(candidates[i]);
        return NULL;
}

/* --- anomalies --- */

/* What ranks consumers for a kind: CPU time, memory or I/O. */
typedef enum Rank { RANK_CPU, RANK_MEMORY, RANK_IO } Rank;

static Rank kind_rank(HealthKind k) {
        switch (k) {
        case HEALTH_MEMORY:
        case HEALTH_MEMORY_PRESSURE:
                return RANK_MEMORY;
        case HEALTH_DISK:
        case HEALTH_IO_PRESSURE:
                return RANK_IO;
        default:
                return RANK_CPU;
        }
}

static double proc_score(const HealthProcess *p, Rank r) {
        return r == RANK_CPU ? p->cpu_percent
             : r == RANK_MEMORY ? (double) p->rss_bytes : p->read_bps + p->write_bps;
}

static double unit_score(const HealthUnit *u, Rank r) {
        return r == RANK_CPU ? u->cpu_percent
             : r == RANK_MEMORY ? (double) u->memory_bytes : u->read_bps + u->write_bps;
}

/*
 * Offers one consumer to a top list of at most HEALTH_TOP_MAX, ordered by score: a consumer
 * already listed (same key) keeps the sample where it scored highest. So a list fed every
 * sample while an anomaly lasts names the biggest consumers of the whole anomaly, also one that
 * has ended before the anomaly does.
 */
#define TOP_OFFER(list, n, item, score_fn, same, rank)                                       \
        do {                                                                                 \
                double _s = score_fn(&(item), rank);                                         \
                unsigned _j = (n);                                                           \
                if (_s <= 0)                                                                 \
                        break;                                                               \
                for (unsigned _k = 0; _k < (n); _k++)                                        \
                        if (same(&(list)[_k], &(item))) {                                    \
                                _j = _k;                                                     \
                                break;                                                       \
                        }                                                                    \
                if (_j < (n)) {                                                              \
                        if (score_fn(&(list)[_j], rank) >= _s)                               \
                                break;                                                       \
                } else if ((n) < HEALTH_TOP_MAX)                                             \
                        _j = (n)++;                                                          \
                else if (score_fn(&(list)[(n) - 1], rank) < _s)                              \
                        _j = (n) - 1;                                                        \
                else                                                                         \
                        break;                                                               \
                (list)[_j] = (item);                                                         \
                for (; _j > 0 && score_fn(&(list)[_j - 1], rank) < _s; _j--) {               \
                        __typeof__((list)[0]) _t = (list)[_j - 1];                           \
                        (list)[_j - 1] = (list)[_j];                                         \
                        (list)[_j] = _t;                                                     \
                }                                                                            \
        } while (0)

static bool same_process(const HealthProcess *a, const HealthProcess *b) {
        return a->pid == b->pid && streq(a->comm, b->comm);
}

static bool same_unit(const HealthUnit *a, const HealthUnit *b) {
        return streq(a->name, b->name);
}

static void anomaly_record_consumers(Health *h, Anomaly *a) {
        Rank rank = kind_rank(a->kind);

        for (size_t i = 0; i < h->n_procs; i++) {
                const ProcSample *p = &h->procs[i];
                HealthProcess hp = {
                        .pid = p->pid, .cpu_percent = p->cpu_percent, .rss_bytes = p->rss_bytes,
                        .read_bps = p->read_bps, .write_bps = p->write_bps,
                };

                memcpy(hp.comm, p->comm, sizeof(hp.comm));
                TOP_OFFER(a->processes, a->n_processes, hp, proc_score, same_process, rank);
        }
        for (size_t i = 0; i < h->n_units; i++) {
                const UnitSample *u = &h->units[i];
                HealthUnit hu = {
                        .cpu_percent = u->cpu_percent, .memory_bytes = u->memory_bytes,
                        .read_bps = u->read_bps, .write_bps = u->write_bps,
                };

                snprintf(hu.name, sizeof(hu.name), "%s", u->name);
                TOP_OFFER(a->units, a->n_units, hu, unit_score, same_unit, rank);
        }
        /* The links as they are at the worst moment. */
        if (a->value >= a->peak) {
                memcpy(a->links, h->links_now, h->n_links_now * sizeof(HealthLinkRate));
                a->n_links = h->n_links_now;
        }
}

static double kind_threshold(const Health *h, HealthKind k) {
        switch (k) {
        case HEALTH_CPU:
                return h->config.cpu_percent;
        case HEALTH_MEMORY:
                return h->config.memory_percent;
        case HEALTH_DISK:
                return h->config.disk_mbps;
        default:
                return h->config.pressure_percent;
        }
}

static void anomaly_log(const Anomaly *a, bool started) {
        char id[32], kind[48], value[48], threshold[48], proc[64] = "", unit[160] = "";
        char started_at[48], ended_at[48], last[48];
        const char *fields[10];
        unsigned n = 0;

        /* ANOMALY_STARTED_USEC= names the anomaly across restarts (ids start again at 1) and
         * lets the end record alone give the whole closed anomaly back (health-journal.c). */
        snprintf(started_at, sizeof(started_at), "ANOMALY_STARTED_USEC=%llu",
                 (unsigned long long) a->started_usec);
        snprintf(ended_at, sizeof(ended_at), "ANOMALY_ENDED_USEC=%llu",
                 (unsigned long long) a->ended_usec);
        snprintf(last, sizeof(last), "HEALTH_LAST_VALUE=%.2f", a->value);
        snprintf(id, sizeof(id), "ANOMALY_ID=%u", a->id);
        snprintf(kind, sizeof(kind), "HEALTH_KIND=%s", kind_names[a->kind]);
        snprintf(value, sizeof(value), "HEALTH_VALUE=%.2f", started ? a->value : a->peak);
        snprintf(threshold, sizeof(threshold), "HEALTH_THRESHOLD=%.2f", a->threshold);
        fields[n++] = id;
        fields[n++] = kind;
        fields[n++] = value;
        fields[n++] = threshold;
        fields[n++] = started_at;
        if (!started) {
                fields[n++] = ended_at;
                fields[n++] = last;
        }
        if (a->n_processes > 0) {
                snprintf(proc, sizeof(proc), "TOP_PROCESS=%s[%d]", a->processes[0].comm,
                         a->processes[0].pid);
                fields[n++] = proc;
        }
        if (a->n_units > 0) {
                snprintf(unit, sizeof(unit), "TOP_UNIT=%s", a->units[0].name);
                fields[n++] = unit;
        }
        fields[n] = NULL;
        if (started)
                log_struct_fields(LOG_WARNING, 0, PS_MESSAGE_ANOMALY_STARTED, NULL, fields,
                                  "Health anomaly %u: %s at %.1f, over its threshold %.1f; top "
                                  "process %s, top unit %s", a->id, kind_names[a->kind], a->value,
                                  a->threshold, a->n_processes ? proc + 12 : "n/a",
                                  a->n_units ? unit + 9 : "n/a");
        else
                log_struct_fields(LOG_NOTICE, 0, PS_MESSAGE_ANOMALY_ENDED, NULL, fields,
                                  "Health anomaly %u ended: %s back under %.1f after %.0f s "
                                  "(peak %.1f)", a->id, kind_names[a->kind], a->threshold,
                                  (double) (a->ended_usec - a->started_usec) / USEC_PER_SEC,
                                  a->peak);
}

static void anomaly_open(Health *h, HealthKind k, double value) {
        Anomaly *a = calloc(1, sizeof(Anomaly));

        if (!a)
                return; /* tried again at the next sample */
        *a = (Anomaly) {
                .id = ++h->next_id,
                .kind = k,
                .value = value,
                .peak = value,
                .threshold = kind_threshold(h, k),
                .started_usec = now_usec(CLOCK_REALTIME),
        };
        anomaly_record_consumers(h, a);
        h->kinds[k].open = a;
        anomaly_log(a, true);
        if (h->on_event)
                h->on_event(h, HEALTH_ANOMALY_STARTED, a, h->userdata);
}

static void anomaly_close(Health *h, HealthKind k) {
        Anomaly *a = TAKE_PTR(h->kinds[k].open);
        unsigned slot;

        a->ended_usec = now_usec(CLOCK_REALTIME);
        if (h->n_history < HEALTH_HISTORY_MAX)
                slot = (h->history_start + h->n_history++) % HEALTH_HISTORY_MAX;
        else {
                slot = h->history_start;
                h->history_start = (h->history_start + 1) % HEALTH_HISTORY_MAX;
        }
        h->history[slot] = *a;
        anomaly_log(a, false);
        if (h->on_event)
                h->on_event(h, HEALTH_ANOMALY_ENDED, &h->history[slot], h->userdata);
        free(a);
}

static void health_evaluate(Health *h, HealthKind k, double value, bool above, uint64_t now) {
        KindState *s = &h->kinds[k];

        if (above) {
                s->below_since = 0;
                if (s->above_since == 0)
                        s->above_since = now;
                if (s->open) {
                        s->open->value = value;
                        s->open->peak = MAX(s->open->peak, value);
                        anomaly_record_consumers(h, s->open);
                } else if (now - s->above_since >= h->config.min_duration_usec)
                        anomaly_open(h, k, value);
                return;
        }
        s->above_since = 0;
        if (!s->open)
                return;
        s->open->value = value;
        if (s->below_since == 0)
                s->below_since = now;
        if (now - s->below_since >= h->config.min_duration_usec)
                anomaly_close(h, k);
}

/* Which readings of the figures just read are over their threshold. */
static void health_over(const Health *h, uint64_t now, bool ret_above[static _HEALTH_KIND_MAX]) {
        const HealthFigures *f = &h->figures;

        ret_above[HEALTH_CPU] = f->cpu_percent > h->config.cpu_percent;
        ret_above[HEALTH_MEMORY] = f->memory_percent > h->config.memory_percent;
        ret_above[HEALTH_DISK] = f->disk_read_mbps + f->disk_write_mbps > h->config.disk_mbps;
        for (unsigned r = 0; r < _PRESSURE_MAX; r++) {
                /* A trigger that fired within the last window counts as over the threshold
                 * even while avg10, a ten-second average, is still catching up. */
                bool fired = h->pressure_source == PRESSURE_SOURCE_TRIGGERS &&
                             h->psi_fired_usec[r] != 0 &&
                             now - h->psi_fired_usec[r] <= HEALTH_PSI_WINDOW_USEC + USEC_PER_SEC;

                ret_above[HEALTH_CPU_PRESSURE + r] =
                        f->pressure[r].present &&
                        (fired || f->pressure[r].some_avg10 > h->config.pressure_percent);
        }
}

/*
 * Processes and units serve only to name an anomaly's biggest consumers, and reading them is
 * most of a sample's cost (two files per process, three per unit): they are read while a
 * reading is over its threshold or an anomaly is open, and at most once per HealthIntervalSec=
 * or MinimumDurationSec=, whichever is shorter (a pressure trigger's sample in between, up to
 * one a second under load, offers the last read). The first sample over reads them (none are
 * kept before), and an anomaly opens MinimumDurationSec= later, so the sample that opens it
 * either reads them again, with rates against that first read, or comes after a read that
 * did. With MinimumDurationSec= shorter than HealthIntervalSec= an anomaly can open at the
 * first sample over (at once with 0), so then they are read whatever the readings.
 */
static bool health_wants_consumers(const Health *h, const bool above[static _HEALTH_KIND_MAX]) {
        if (h->config.min_duration_usec < h->config.interval_usec)
                return true;
        for (unsigned k = 0; k < _HEALTH_KIND_MAX; k++)
                if (above[k] || h->kinds[k].open)
                        return true;
        return false;
}

/* Between spells of reading them: the next read starts without rates, not with rates over
 * the whole gap. */
static void health_drop_consumers(Health *h) {
        h->consumers_usec = 0;
        h->procs = mfree(h->procs);
        h->n_procs = 0;
        unit_samples_free(h->units, h->n_units);
        h->units = NULL;
        h->n_units = 0;
}

/* One look at the machine: the figures, then every kind against its threshold. `tick`: the
 * regular timer (which alone announces the figures, so that they change at most once per
 * interval), or a pressure trigger. */
static void health_sample(Health *h, bool tick) {
        uint64_t now = now_usec(CLOCK_MONOTONIC), total = 0, busy = 0, rd = 0, wr = 0;
        double dt = h->have_prev ? (double) (now - h->last_sample_usec) / USEC_PER_SEC : 0;
        HealthFigures *f = &h->figures;
        bool have_cpu, have_disk, above[_HEALTH_KIND_MAX];

        have_cpu = read_proc_stat(&total, &busy) >= 0;
        if (have_cpu && h->have_prev && total > h->cpu_total && busy >= h->cpu_busy)
                f->cpu_percent = 100.0 * (double) (busy - h->cpu_busy) /
                                 (double) (total - h->cpu_total);
        (void) read_meminfo(&f->memory_percent);
        have_disk = read_diskstats(&rd, &wr) >= 0;
        if (have_disk && h->have_prev && dt > 0 && rd >= h->disk_read_sectors &&
            wr >= h->disk_write_sectors) {
                /* Sectors of /proc/diskstats are 512 bytes whatever the device's own size. */
                f->disk_read_mbps = (double) (rd - h->disk_read_sectors) * 512 / 1e6 / dt;
                f->disk_write_mbps = (double) (wr - h->disk_write_sectors) * 512 / 1e6 / dt;
        }
        for (unsigned r = 0; r < _PRESSURE_MAX; r++) {
                if (!h->psi_present[r] || read_pressure(r, &f->pressure[r]) < 0) {
                        f->pressure[r] = (PressureValues) {};
                        continue;
                }
                /* The baseline a trigger event is confirmed against, kept within a window. */
                if (now - h->psi_total_usec[r] >= HEALTH_PSI_WINDOW_USEC) {
                        h->psi_total[r] = f->pressure[r].some_total_usec;
                        h->psi_total_usec[r] = now;
                }
        }
        health_over(h, now, above);
        if (!health_wants_consumers(h, above))
                health_drop_consumers(h);
        else if (h->consumers_usec == 0 ||
                 now - h->consumers_usec >= MIN(h->config.interval_usec,
                                                h->config.min_duration_usec)) {
                double since = h->consumers_usec == 0 ? 0 :
                               (double) (now - h->consumers_usec) / USEC_PER_SEC;

                sample_processes(h, since);
                sample_units(h, since);
                h->consumers_usec = now;
        }
        sample_links(h, dt);

        if (have_cpu) {
                h->cpu_total = total;
                h->cpu_busy = busy;
        }
        if (have_disk) {
                h->disk_read_sectors = rd;
                h->disk_write_sectors = wr;
        }
        bool first = !h->have_prev;
        h->have_prev = true;
        h->last_sample_usec = now;
        if (first)
                return; /* rates need two samples */

        health_evaluate(h, HEALTH_CPU, f->cpu_percent, above[HEALTH_CPU], now);
        health_evaluate(h, HEALTH_MEMORY, f->memory_percent, above[HEALTH_MEMORY], now);
        health_evaluate(h, HEALTH_DISK, f->disk_read_mbps + f->disk_write_mbps,
                        above[HEALTH_DISK], now);
        for (unsigned r = 0; r < _PRESSURE_MAX; r++)
                if (f->pressure[r].present)
                        health_evaluate(h, HEALTH_CPU_PRESSURE + r, f->pressure[r].some_avg10,
                                        above[HEALTH_CPU_PRESSURE + r], now);
        if (tick && h->on_event)
                h->on_event(h, HEALTH_SAMPLED, NULL, h->userdata);
}

static int on_tick(sd_event_source *s, uint64_t usec, void *userdata) {
        Health *h = userdata;
        int r;

        health_sample(h, true);
        r = sd_event_source_set_time_relative(s, h->config.interval_usec);
        if (r < 0)
                return r;
        return sd_event_source_set_enabled(s, SD_EVENT_ON);
}

int health_new(Health **ret, sd_event *event, const HealthConfig *config, health_links_t links,
               health_event_t on_event, void *userdata) {
        _cleanup_(health_freep) Health *h = NULL;
        int r;

        assert(ret);
        assert(event);
        assert(config);
        h = calloc(1, sizeof(Health));
        if (!h)
                return -ENOMEM;
        for (unsigned i = 0; i < _PRESSURE_MAX; i++)
                h->psi_fd[i] = -1;
        h->event = sd_event_ref(event);
        h->config = *config;
        h->links = links;
        h->on_event = on_event;
        h->userdata = userdata;
        h->ticks_per_sec = sysconf(_SC_CLK_TCK);
        h->page_size = (uint64_t) sysconf(_SC_PAGESIZE);
        if (h->ticks_per_sec <= 0)
                h->ticks_per_sec = 100;
        h->history = calloc(HEALTH_HISTORY_MAX, sizeof(Anomaly));
        if (!h->history)
                return -ENOMEM;
        h->cgroup_root = cgroup_root_find();

        r = health_psi_open(h);
        if (r < 0)
                return r;
        health_sample(h, false); /* the baseline for the first rates */
        r = sd_event_add_time_relative(event, &h->timer, CLOCK_MONOTONIC, h->config.interval_usec,
                                       10 * 1000, on_tick, h);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(h);
        return 0;
}

Health *health_free(Health *h) {
        if (!h)
                return NULL;
        health_psi_close(h);
        sd_event_source_disable_unref(h->timer);
        for (unsigned k = 0; k < _HEALTH_KIND_MAX; k++)
                free(h->kinds[k].open);
        free(h->history);
        free(h->procs);
        unit_samples_free(h->units, h->n_units);
        free(h->cgroup_root);
        sd_event_unref(h->event);
        free(h);
        return NULL;
}

const HealthFigures *health_figures(const Health *h) {
        return &h->figures;
}

const HealthConfig *health_config(const Health *h) {
        return &h->config;
}

PressureSource health_pressure_source(const Health *h) {
        return h->pressure_source;
}

int health_set_config(Health *h, const HealthConfig *c) {
        bool rearm = c->pressure_percent != h->config.pressure_percent;
        int r = 0;

        assert(h);
        assert(c);
        /* Open anomalies keep the threshold they were opened against; the next samples judge
         * them by the new one. */
        h->config.cpu_percent = c->cpu_percent;
        h->config.memory_percent = c->memory_percent;
        h->config.disk_mbps = c->disk_mbps;
        h->config.pressure_percent = c->pressure_percent;
        h->config.min_duration_usec = c->min_duration_usec;
        if (rearm)
                r = health_psi_open(h);
        if (h->on_event)
                h->on_event(h, HEALTH_THRESHOLDS_CHANGED, NULL, h->userdata);
        return r;
}

unsigned health_n_anomalies(const Health *h) {
        unsigned n = h->n_history;

        for (unsigned k = 0; k < _HEALTH_KIND_MAX; k++)
                n += !!h->kinds[k].open;
        return n;
}

const Anomaly *health_anomaly_at(const Health *h, unsigned i) {
        const Anomaly *open[_HEALTH_KIND_MAX];
        unsigned n_open = 0;

        for (unsigned k = 0; k < _HEALTH_KIND_MAX; k++)
                if (h->kinds[k].open)
                        open[n_open++] = h->kinds[k].open;
        if (i < n_open) {
                /* Oldest first: ids grow with time. */
                for (unsigned a = 1; a < n_open; a++)
                        for (unsigned b = a; b > 0 && open[b - 1]->id > open[b]->id; b--) {
                                const Anomaly *t = open[b];
                                open[b] = open[b - 1];
                                open[b - 1] = t;
                        }
                return open[i];
        }
        i -= n_open;
        if (i >= h->n_history)
                return NULL;
        return &h->history[(h->history_start + h->n_history - 1 - i) % HEALTH_HISTORY_MAX];
}
