/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bans-bus.h"
#include "bans-journal.h"
#include "bans.h"
#include "bus-util.h"
#include "log.h"
#include "polkit.h"
#include "util.h"

/*
 * org.packetscope.Guarder1.Bans: decode, authorize (manage-bans), call the ban store, encode.
 * Bans are rows (List), not objects: a million objects would make every ObjectManager client
 * walk a million paths. Ban() answers with /org/packetscope/Guarder1/bans/<id>, an object
 * resolved on demand whose properties describe that one ban; only a small table
 * (PS_SMALL_SET_MAX) is enumerated.
 */

static int bans_bus_error(sd_bus_error *error, int r, const char *err) {
        const char *msg = err ? err : strerror(-r);

        switch (r) {
        case -EINVAL:
        case -EEXIST:
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "%s", msg);
        case -EADDRNOTAVAIL:
                return sd_bus_error_setf(error, PS_ERROR_INVALID_ADDRESS, "%s", msg);
        case -EPERM:
                return sd_bus_error_setf(error, PS_ERROR_ALLOWLISTED, "%s", msg);
        case -ENOSPC:
                return sd_bus_error_setf(error, PS_ERROR_BAN_TABLE_FULL, "%s", msg);
        case -ENOENT:
                return sd_bus_error_setf(error, PS_ERROR_NO_SUCH_BAN, "%s", msg);
        case -EROFS:
                return sd_bus_error_setf(error, PS_ERROR_STATE_NOT_WRITABLE, "%s", msg);
        case -E2BIG:
        case -EMSGSIZE:
                return sd_bus_error_setf(error, PS_ERROR_LIMIT_EXCEEDED, "%s", msg);
        case -ENOMEDIUM:
                return sd_bus_error_setf(error, PS_ERROR_NO_JOURNAL, "%s", msg);
        default:
                return sd_bus_error_set_errnof(error, r, "%s", msg);
        }
}

/* An address or CIDR from the bus; `what` names it in the message ("address #3 of the batch"). */
static int parse_address(const char *s, const char *what, Cidr *ret, sd_bus_error *error) {
        int r = cidr_parse(s, true, ret);

        if (r == -ERANGE)
                return sd_bus_error_setf(error, PS_ERROR_INVALID_ADDRESS,
                                         "%s '%.64s' has a prefix length too long; accepted: 0-32 "
                                         "for IPv4, 0-128 for IPv6", what, s);
        if (r == -EADDRNOTAVAIL)
                return sd_bus_error_setf(error, PS_ERROR_INVALID_ADDRESS,
                                         "%s '%.64s' has bits set past its prefix; write the "
                                         "network address (e.g. 198.51.100.0/24)", what, s);
        if (r < 0)
                return sd_bus_error_setf(error, PS_ERROR_INVALID_ADDRESS,
                                         "%s '%.64s' is not an address or CIDR; accepted: an IPv4 "
                                         "or IPv6 address, optionally /prefix (192.0.2.1, "
                                         "198.51.100.0/24, 2001:db8::/48)", what, s);
        return 0;
}

static char *ban_bus_path(uint32_t id) {
        char *p;

        if (asprintf(&p, PS_OBJECT_BANS "/%u", id) < 0)
                return NULL;
        return p;
}

/* A ban as a{sv}: the row of List and the answer of Get. */
static int append_ban(sd_bus_message *m, BanStore *s, const Ban *b) {
        char a[CIDR_STRING_MAX], o[32];
        BanCounters c;
        int r;

        (void) ban_store_counters(s, b, &c);
        r = sd_bus_message_open_container(m, 'a', "{sv}");
        if (r < 0)
                return r;
        if ((r = bus_dict_string(m, "address", cidr_to_string(true, &b->cidr, a))) < 0 ||
            (r = bus_dict_u32(m, "id", b->id)) < 0 ||
            (r = bus_dict_string(m, "origin", ban_origin_to_string(b, o, sizeof o))) < 0 ||
            (r = bus_dict_string(m, "reason", b->reason ? b->reason : "")) < 0 ||
            (r = bus_dict_u64(m, "created", b->created_usec)) < 0 ||
            (r = bus_dict_u64(m, "until", b->expires_usec)) < 0 ||
            (r = bus_dict_u32(m, "offenses", b->offenses)) < 0 ||
            (r = bus_dict_u64(m, "packets", c.packets)) < 0 ||
            (r = bus_dict_u64(m, "bytes", c.bytes)) < 0 ||
            (r = bus_dict_u64(m, "last_hit", c.last_hit_usec)) < 0)
                return r;
        return sd_bus_message_close_container(m);
}

/* ------------------------------------------------------------------------------------------ */
/* Changes */

static int method_ban(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        _cleanup_free_ char *err = NULL, *path = NULL;
        Manager *m = userdata;
        const char *address, *reason;
        BanRequest req = { .origin = BAN_ORIGIN_MANUAL };
        const Ban *b;
        int r;

        r = sd_bus_message_read(msg, "sts", &address, &req.seconds, &reason);
        if (r < 0)
                return r;
        r = parse_address(address, "address", &req.cidr, error);
        if (r < 0)
                return r;
        if (req.seconds > BAN_SECONDS_MAX)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "%llu seconds is too long; accepted: 0 (until unbanned) "
                                         "to %llu (ten years)",
                                         (unsigned long long) req.seconds,
                                         (unsigned long long) BAN_SECONDS_MAX);
        req.reason = reason;
        r = polkit_verify(msg, PS_POLKIT_MANAGE_BANS, &m->polkit, error);
        if (r <= 0)
                return r < 0 ? r : 1;
        r = ban_store_ban(m->bans, &req, &b, &err);
        if (r < 0)
                return bans_bus_error(error, r, err);
        path = ban_bus_path(b->id);
        if (!path)
                return -ENOMEM;
        return sd_bus_reply_method_return(msg, "o", path);
}

struct batch_entry {
        BanRequest *req;
        size_t idx;
        bool have_address;
};

static int read_batch_entry(const char *key, const BusValue *v, void *userdata,
                            sd_bus_error *error) {
        struct batch_entry *e = userdata;
        char what[48];

        if (streq(key, "address") && v->type == 's') {
                e->have_address = true;
                /* The name of the entry is put together only for an error: per entry of a
                 * batch of 100,000 it was a good part of reading the call. */
                if (cidr_parse(v->s, true, &e->req->cidr) >= 0)
                        return 0;
                snprintf(what, sizeof what, "ban #%zu of the batch:", e->idx);
                return parse_address(v->s, what, &e->req->cidr, error);
        }
        if (streq(key, "seconds") && strchr("ut", v->type)) {
                e->req->seconds = v->u;
                return 0;
        }
        if (streq(key, "reason") && v->type == 's') {
                e->req->reason = v->s;
                return 0;
        }
        snprintf(what, sizeof what, "ban #%zu of the batch:", e->idx);
        if (streq(key, "origin") && v->type == 's') {
                if (streq(v->s, "manual") || streq(v->s, "import") || streq(v->s, "ai")) {
                        uint8_t p;

                        return ban_origin_from_string(v->s, &e->req->origin, &p);
                }
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "%s origin '%.32s'; accepted: manual, import, ai", what,
                                         v->s);
        }
        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                 "%s unknown key '%.64s' (or wrong type); accepted: address (s), "
                                 "seconds (t or u), reason (s), origin (s)", what, key);
}

static const BusDictSpec batch_spec = {
        .types = "sut",
        .what = "key",
        .expected = "accepted: address (s), seconds (t or u), reason (s), origin (s)",
};

static int method_ban_batch(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        _cleanup_free_ BanRequest *reqs = NULL;
        _cleanup_free_ char *err = NULL;
        uint64_t t_start = now_usec(CLOCK_MONOTONIC), t_read;
        Manager *m = userdata;
        size_t n = 0, alloc = 0;
        int r;

        r = sd_bus_message_enter_container(msg, 'a', "a{sv}");
        if (r < 0)
                return r;
        for (;;) {
                struct batch_entry e = { .idx = n };

                r = sd_bus_message_at_end(msg, false);
                if (r < 0)
                        return r;
                if (r > 0)
                        break;
                if (n >= PS_BANS_BATCH_MAX)
                        return sd_bus_error_setf(error, PS_ERROR_LIMIT_EXCEEDED,
                                                 "more than %u bans in one call",
                                                 PS_BANS_BATCH_MAX);
                if (n == alloc) {
                        BanRequest *nr = realloc(reqs, (alloc = MAX(alloc * 2, (size_t) 256)) *
                                                                sizeof(BanRequest));

                        if (!nr)
                                return -ENOMEM;
                        reqs = nr;
                }
                reqs[n] = (BanRequest) { .origin = BAN_ORIGIN_MANUAL };
                e.req = &reqs[n];
                r = bus_read_dict(msg, &batch_spec, read_batch_entry, &e, error);
                if (r < 0)
                        return r;
                if (!e.have_address)
                        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                                 "ban #%zu of the batch has no address", n);
                n++;
        }
        r = sd_bus_message_exit_container(msg);
        if (r < 0)
                return r;
        r = polkit_verify(msg, PS_POLKIT_MANAGE_BANS, &m->polkit, error);
        if (r <= 0)
                return r < 0 ? r : 1;
        t_read = now_usec(CLOCK_MONOTONIC);
        r = ban_store_ban_batch(m->bans, reqs, n, &err);
        if (r < 0)
                return bans_bus_error(error, r, err);
        log_debug("BanBatch of %zu bans: read in %llu ms, applied in %llu ms", n,
                  (unsigned long long) (t_read - t_start) / 1000,
                  (unsigned long long) (now_usec(CLOCK_MONOTONIC) - t_read) / 1000);
        return sd_bus_reply_method_return(msg, "u", (uint32_t) n);
}

static const char *file_kind(mode_t mode) {
        switch (mode & S_IFMT) {
        case S_IFIFO:
                return "pipe";
        case S_IFSOCK:
                return "socket";
        case S_IFDIR:
                return "directory";
        case S_IFCHR:
                return "character device";
        case S_IFBLK:
                return "block device";
        default:
                return "special file";
        }
}

/* The file of a BanFile call, whole and NUL-terminated: a regular file or a memfd of at most
 * PS_BANS_FILE_MAX_BYTES, read with pread() from its start (the caller's offset is neither used
 * nor moved). A file is read in one go: a bounded read of a local file, as the snapshot is. */
static int read_ban_file(int fd, char **ret, size_t *ret_size, sd_bus_error *error) {
        _cleanup_free_ char *text = NULL;
        struct stat st;
        size_t size = 0, want;

        if (fstat(fd, &st) < 0)
                return sd_bus_error_set_errnof(error, errno,
                                               "cannot look at the file descriptor: %s",
                                               strerror(errno));
        if (!S_ISREG(st.st_mode))
                return sd_bus_error_setf(error, PS_ERROR_NOT_REGULAR_FILE,
                                         "the file descriptor is a %s; accepted: a regular file "
                                         "or a memfd, open for reading",
                                         file_kind(st.st_mode));
        if (st.st_size > (off_t) PS_BANS_FILE_MAX_BYTES)
                return sd_bus_error_setf(error, PS_ERROR_LIMIT_EXCEEDED,
                                         "the file has %lld bytes; at most %u are read (split it, "
                                         "or use BanBatch)", (long long) st.st_size,
                                         PS_BANS_FILE_MAX_BYTES);
        want = (size_t) st.st_size;
        text = malloc(want + 2);
        if (!text)
                return -ENOMEM;
        /* One byte more than fstat() said: a file that grows while it is read is refused. */
        while (size <= want) {
                ssize_t k = pread(fd, text + size, want + 1 - size, (off_t) size);

                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                                 "cannot read the file: %s; accepted: a regular "
                                                 "file or a memfd, open for reading",
                                                 strerror(errno));
                if (k == 0)
                        break;
                size += (size_t) k;
        }
        if (size > want)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "the file grew while it was read; pass a sealed memfd, or "
                                         "a file that nothing writes meanwhile");
        text[size] = '\0';
        *ret = TAKE_PTR(text);
        *ret_size = size;
        return 0;
}

static int method_ban_file(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        _cleanup_free_ BanRequest *reqs = NULL;
        _cleanup_free_ char *err = NULL, *text = NULL;
        uint64_t t_start = now_usec(CLOCK_MONOTONIC), t_read;
        BanOrigin origin = BAN_ORIGIN_IMPORT;
        Manager *m = userdata;
        const char *o;
        size_t n = 0, size = 0;
        uint8_t policy;
        int fd, r;

        r = sd_bus_message_read(msg, "hs", &fd, &o);
        if (r < 0)
                return r;
        if (!streq(o, "") && ((!streq(o, "manual") && !streq(o, "import") && !streq(o, "ai")) ||
                              ban_origin_from_string(o, &origin, &policy) < 0))
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "origin '%.32s'; accepted: manual, import, ai (empty: "
                                         "import)", o);
        /* Asked before the file is read: up to 64 MiB read and parsed is work that only a
         * caller who may ban gets the daemon to do. */
        r = polkit_verify(msg, PS_POLKIT_MANAGE_BANS, &m->polkit, error);
        if (r <= 0)
                return r < 0 ? r : 1;
        r = read_ban_file(fd, &text, &size, error);
        if (r < 0)
                return r;
        r = ban_store_parse_lines(m->bans, text, size, origin, &reqs, &n, &err);
        if (r < 0)
                return bans_bus_error(error, r, err);
        t_read = now_usec(CLOCK_MONOTONIC);
        r = ban_store_ban_batch(m->bans, reqs, n, &err);
        if (r < 0)
                return bans_bus_error(error, r, err);
        log_debug("BanFile of %zu bans (%zu bytes): read in %llu ms, applied in %llu ms", n, size,
                  (unsigned long long) (t_read - t_start) / 1000,
                  (unsigned long long) (now_usec(CLOCK_MONOTONIC) - t_read) / 1000);
        return sd_bus_reply_method_return(msg, "u", (uint32_t) n);
}

static int method_unban(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        _cleanup_free_ char *err = NULL;
        Manager *m = userdata;
        const char *address;
        Cidr c;
        int r;

        r = sd_bus_message_read(msg, "s", &address);
        if (r < 0)
                return r;
        r = parse_address(address, "address", &c, error);
        if (r < 0)
                return r;
        r = polkit_verify(msg, PS_POLKIT_MANAGE_BANS, &m->polkit, error);
        if (r <= 0)
                return r < 0 ? r : 1;
        r = ban_store_unban(m->bans, &c, &err);
        if (r < 0)
                return bans_bus_error(error, r, err);
        return sd_bus_reply_method_return(msg, NULL);
}

static int method_unban_batch(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        _cleanup_free_ char *err = NULL;
        _cleanup_free_ Cidr *cs = NULL;
        Manager *m = userdata;
        size_t n = 0, alloc = 0;
        int r;

        r = sd_bus_message_enter_container(msg, 'a', "s");
        if (r < 0)
                return r;
        for (;;) {
                const char *a;
                char what[48];

                r = sd_bus_message_read(msg, "s", &a);
                if (r < 0)
                        return r;
                if (r == 0)
                        break;
                if (n >= PS_BANS_BATCH_MAX)
                        return sd_bus_error_setf(error, PS_ERROR_LIMIT_EXCEEDED,
                                                 "more than %u addresses in one call",
                                                 PS_BANS_BATCH_MAX);
                if (n == alloc) {
                        Cidr *nc = realloc(cs, (alloc = MAX(alloc * 2, (size_t) 256)) * sizeof(Cidr));

                        if (!nc)
                                return -ENOMEM;
                        cs = nc;
                }
                snprintf(what, sizeof what, "address #%zu of the batch,", n);
                r = parse_address(a, what, &cs[n], error);
                if (r < 0)
                        return r;
                n++;
        }
        r = sd_bus_message_exit_container(msg);
        if (r < 0)
                return r;
        r = polkit_verify(msg, PS_POLKIT_MANAGE_BANS, &m->polkit, error);
        if (r <= 0)
                return r < 0 ? r : 1;
        r = ban_store_unban_batch(m->bans, cs, n, &err);
        if (r < 0)
                return bans_bus_error(error, r, err);
        return sd_bus_reply_method_return(msg, NULL);
}

static int method_import(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        _cleanup_free_ BanRequest *reqs = NULL;
        _cleanup_free_ char *err = NULL;
        Manager *m = userdata;
        const char *text, *mode;
        json_t *doc = NULL;
        bool replace;
        size_t n = 0;
        int r;

        r = sd_bus_message_read(msg, "ss", &text, &mode);
        if (r < 0)
                return r;
        if (streq(mode, "merge") || streq(mode, ""))
                replace = false;
        else if (streq(mode, "replace"))
                replace = true;
        else
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "invalid mode '%.32s'; accepted: merge, replace", mode);
        r = ban_parse_import(text, &reqs, &n, &doc, &err);
        if (r < 0)
                return bans_bus_error(error, r, err);
        r = polkit_verify(msg, PS_POLKIT_MANAGE_BANS, &m->polkit, error);
        if (r <= 0) {
                json_decref(doc);
                return r < 0 ? r : 1;
        }
        r = replace ? ban_store_replace_all(m->bans, reqs, n, &err)
                    : ban_store_ban_batch(m->bans, reqs, n, &err);
        json_decref(doc);
        if (r < 0)
                return bans_bus_error(error, r, err);
        return sd_bus_reply_method_return(msg, "u", (uint32_t) n);
}

static int method_allowlist_change(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        _cleanup_free_ char *err = NULL;
        Manager *m = userdata;
        bool add = streq(sd_bus_message_get_member(msg), "AllowlistAdd");
        const char *address;
        Cidr c;
        int r;

        r = sd_bus_message_read(msg, "s", &address);
        if (r < 0)
                return r;
        r = parse_address(address, "address", &c, error);
        if (r < 0)
                return r;
        r = polkit_verify(msg, PS_POLKIT_MANAGE_BANS, &m->polkit, error);
        if (r <= 0)
                return r < 0 ? r : 1;
        r = add ? ban_store_allowlist_add(m->bans, &c, &err)
                : ban_store_allowlist_remove(m->bans, &c, &err);
        if (r == -ENOENT)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "%s", err ? err : "");
        if (r == -EEXIST)
                return sd_bus_error_setf(error, PS_ERROR_ALLOWLISTED, "%s", err ? err : "");
        if (r < 0)
                return bans_bus_error(error, r, err);
        (void) sd_bus_emit_properties_changed(m->bus, PS_OBJECT_BANS, PS_IFACE_BANS, "Allowlist",
                                              NULL);
        return sd_bus_reply_method_return(msg, NULL);
}

/* ------------------------------------------------------------------------------------------ */
/* Policies */

static int policy_from_name(const char *name) {
        for (unsigned i = 0; i < _PS_BAN_POLICY_MAX; i++)
                if (streq(name, ban_policy_to_string(i)))
                        return (int) i;
        return -EINVAL;
}

static int read_policy_entry(const char *key, const BusValue *v, void *userdata,
                             sd_bus_error *error) {
        BanPolicyConf *p = userdata;

        if (streq(key, "mode") && v->type == 's') {
                if (ban_mode_from_string(v->s, &p->mode) < 0)
                        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                                 "mode '%.32s'; accepted: off, count (shadow), "
                                                 "enforce", v->s);
                return 0;
        }
        if (streq(key, "threshold") && v->type == 'u') {
                if (v->u < 1 || v->u > 1000000)
                        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                                 "threshold %llu; accepted: 1 to 1000000",
                                                 (unsigned long long) v->u);
                p->threshold = (uint32_t) v->u;
                return 0;
        }
        if (streq(key, "burst") && v->type == 'u') {
                if (v->u < 1 || v->u > 1000000)
                        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                                 "burst %llu; accepted: 1 to 1000000",
                                                 (unsigned long long) v->u);
                p->burst = (uint32_t) v->u;
                return 0;
        }
        if (streq(key, "window_usec") && v->type == 't') {
                if (v->u < 1000 || v->u > 86400 * USEC_PER_SEC)
                        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                                 "window_usec %llu; accepted: 1000 (1 ms) to "
                                                 "86400000000 (1 d)", (unsigned long long) v->u);
                p->window_usec = v->u;
                return 0;
        }
        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                 "unknown policy key '%.64s' (or wrong type); accepted: mode (s), "
                                 "threshold (u), burst (u), window_usec (t)", key);
}

static const BusDictSpec policy_spec = {
        .types = "sut",
        .what = "policy key",
        .expected = "accepted: mode (s), threshold (u), burst (u), window_usec (t)",
};

static int method_set_policy(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        _cleanup_free_ char *err = NULL;
        Manager *m = userdata;
        const char *name;
        BanPolicyConf p;
        int idx, r;

        r = sd_bus_message_read(msg, "s", &name);
        if (r < 0)
                return r;
        idx = policy_from_name(name);
        if (idx < 0)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "no policy '%.32s'; accepted: connections, syn-rate, "
                                         "port-scan, url", name);
        p = m->config.ban_policy[idx];
        r = bus_read_dict(msg, &policy_spec, read_policy_entry, &p, error);
        if (r < 0)
                return r;
        r = polkit_verify(msg, PS_POLKIT_MANAGE_BANS, &m->polkit, error);
        if (r <= 0)
                return r < 0 ? r : 1;
        r = ban_store_set_policy(m->bans, (unsigned) idx, &p, &err);
        if (r < 0)
                return bans_bus_error(error, r, err);
        log_struct_internal(LOG_NOTICE, 0, NULL, NULL,
                            "Auto-ban policy %s set to %s, threshold %u, burst %u, window %llu ms",
                            name, ban_mode_to_string(p.mode), p.threshold, p.burst,
                            (unsigned long long) (p.window_usec / 1000));
        (void) sd_bus_emit_properties_changed(m->bus, PS_OBJECT_BANS, PS_IFACE_BANS, "Policies",
                                              NULL);
        return sd_bus_reply_method_return(msg, NULL);
}

static int property_get_policies(sd_bus *bus, const char *path, const char *interface,
                                 const char *property, sd_bus_message *reply, void *userdata,
                                 sd_bus_error *error) {
        Manager *m = userdata;
        const Config *c = &m->config;
        int r;

        r = sd_bus_message_open_container(reply, 'a', "{sa{sv}}");
        for (unsigned i = 0; i < _PS_BAN_POLICY_MAX && r >= 0; i++) {
                const BanPolicyConf *p = &c->ban_policy[i];

                r = sd_bus_message_open_container(reply, 'e', "sa{sv}");
                if (r >= 0)
                        r = sd_bus_message_append(reply, "s", ban_policy_to_string(i));
                if (r >= 0)
                        r = sd_bus_message_open_container(reply, 'a', "{sv}");
                if (r >= 0)
                        r = bus_dict_string(reply, "mode", ban_mode_to_string(p->mode));
                if (r >= 0)
                        r = bus_dict_u32(reply, "threshold", p->threshold);
                if (r >= 0)
                        r = bus_dict_u32(reply, "burst", p->burst);
                if (r >= 0)
                        r = bus_dict_u64(reply, "window_usec", p->window_usec);
                if (r >= 0)
                        r = bus_dict_u64(reply, "duration_usec", c->ban_duration_usec);
                if (r >= 0)
                        r = bus_dict_u8(reply, "prefix4", c->ban_prefix4);
                if (r >= 0)
                        r = bus_dict_u8(reply, "prefix6", c->ban_prefix6);
                if (r >= 0 && i == PS_BAN_POLICY_URL) {
                        r = sd_bus_message_open_container(reply, 'e', "sv");
                        if (r >= 0)
                                r = sd_bus_message_append(reply, "s", "patterns");
                        if (r >= 0)
                                r = sd_bus_message_open_container(reply, 'v', "as");
                        if (r >= 0)
                                r = sd_bus_message_open_container(reply, 'a', "s");
                        for (uint32_t k = 0; k < c->n_url_patterns && r >= 0; k++)
                                r = sd_bus_message_append(reply, "s", c->url_patterns[k]);
                        for (int close = 0; close < 3 && r >= 0; close++)
                                r = sd_bus_message_close_container(reply);
                }
                if (r >= 0)
                        r = sd_bus_message_close_container(reply);
                if (r >= 0)
                        r = sd_bus_message_close_container(reply);
        }
        if (r < 0)
                return r;
        return sd_bus_message_close_container(reply);
}

/* ------------------------------------------------------------------------------------------ */
/* Reads */

typedef enum BanSort {
        BAN_SORT_CREATED,
        BAN_SORT_UNTIL,
        BAN_SORT_ADDRESS,
        BAN_SORT_PACKETS,
} BanSort;

typedef struct BanQuery {
        uint32_t limit, offset;
        BanSort sort;
        bool has_origin;
        uint8_t origin, policy;
        bool has_address;
        Cidr address;
        int active; /* -1 any, 1 in force, 0 expired and not yet reaped */
} BanQuery;

static int read_query_entry(const char *key, const BusValue *v, void *userdata,
                            sd_bus_error *error) {
        BanQuery *q = userdata;

        if (streq(key, "limit") && v->type == 'u') {
                if (v->u < 1 || v->u > PS_BANS_LIST_MAX)
                        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                                 "limit %llu; accepted: 1 to %u",
                                                 (unsigned long long) v->u, PS_BANS_LIST_MAX);
                q->limit = (uint32_t) v->u;
                return 0;
        }
        if (streq(key, "offset") && v->type == 'u') {
                q->offset = (uint32_t) v->u;
                return 0;
        }
        if (streq(key, "origin") && v->type == 's') {
                BanOrigin o;

                if (ban_origin_from_string(v->s, &o, &q->policy) < 0 && !streq(v->s, "auto"))
                        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                                 "origin '%.32s'; accepted: manual, import, ai, "
                                                 "auto, auto:POLICY", v->s);
                q->has_origin = true;
                q->origin = streq(v->s, "auto") ? BAN_ORIGIN_AUTO : (uint8_t) o;
                if (streq(v->s, "auto"))
                        q->policy = UINT8_MAX; /* any policy */
                return 0;
        }
        if (streq(key, "address") && v->type == 's') {
                q->has_address = true;
                return parse_address(v->s, "query address", &q->address, error);
        }
        if (streq(key, "active") && v->type == 'b') {
                q->active = v->u ? 1 : 0;
                return 0;
        }
        if (streq(key, "sort") && v->type == 's') {
                if (streq(v->s, "created"))
                        q->sort = BAN_SORT_CREATED;
                else if (streq(v->s, "until"))
                        q->sort = BAN_SORT_UNTIL;
                else if (streq(v->s, "address"))
                        q->sort = BAN_SORT_ADDRESS;
                else if (streq(v->s, "packets"))
                        q->sort = BAN_SORT_PACKETS;
                else
                        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                                 "sort '%.32s'; accepted: created, until, "
                                                 "address, packets", v->s);
                return 0;
        }
        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                 "unknown query key '%.64s' (or wrong type); accepted: limit (u), "
                                 "offset (u), origin (s), address (s), active (b), sort (s)", key);
}

static const BusDictSpec query_spec = {
        .types = "usb",
        .what = "query key",
        .expected = "accepted: limit (u), offset (u), origin (s), address (s), active (b), "
                    "sort (s)",
};

/* The address query matches a ban that covers it or lies inside it. */
static bool ban_matches(const BanQuery *q, const Ban *b, uint64_t now) {
        if (q->has_origin && (b->origin != q->origin ||
                              (q->origin == BAN_ORIGIN_AUTO && q->policy != UINT8_MAX &&
                               b->policy != q->policy)))
                return false;
        if (q->has_address) {
                const Cidr *a = &q->address, *c = &b->cidr;

                if (a->family != c->family)
                        return false;
                if (!(c->prefixlen <= a->prefixlen ? cidr_contains(c, a->family, a->addr)
                                                   : cidr_contains(a, c->family, c->addr)))
                        return false;
        }
        if (q->active >= 0 && (b->expires_usec == 0 || b->expires_usec > now) != (q->active == 1))
                return false;
        return true;
}

struct sort_item {
        const Ban *b;
        uint64_t packets;
};

static int cmp_created(const void *x, const void *y) {
        const struct sort_item *a = x, *b = y;

        if (a->b->created_usec != b->b->created_usec)
                return a->b->created_usec < b->b->created_usec ? -1 : 1;
        return a->b->id < b->b->id ? -1 : a->b->id > b->b->id;
}

static int cmp_until(const void *x, const void *y) {
        const struct sort_item *a = x, *b = y;
        /* Until unbanned (0) sorts last. */
        uint64_t ua = a->b->expires_usec ? a->b->expires_usec : UINT64_MAX;
        uint64_t ub = b->b->expires_usec ? b->b->expires_usec : UINT64_MAX;

        if (ua != ub)
                return ua < ub ? -1 : 1;
        return cmp_created(x, y);
}

static int cmp_address(const void *x, const void *y) {
        const struct sort_item *a = x, *b = y;
        int r;

        if (a->b->cidr.family != b->b->cidr.family)
                return a->b->cidr.family < b->b->cidr.family ? -1 : 1;
        r = memcmp(a->b->cidr.addr, b->b->cidr.addr, sizeof a->b->cidr.addr);
        if (r != 0)
                return r;
        return a->b->cidr.prefixlen < b->b->cidr.prefixlen ? -1 :
               a->b->cidr.prefixlen > b->b->cidr.prefixlen;
}

static int cmp_packets(const void *x, const void *y) {
        const struct sort_item *a = x, *b = y;

        if (a->packets != b->packets)
                return a->packets > b->packets ? -1 : 1; /* most first */
        return cmp_created(x, y);
}

static int method_list(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_free_ struct sort_item *items = NULL;
        BanQuery q = { .limit = PS_QUERY_LIMIT_DEFAULT, .active = -1 };
        Manager *m = userdata;
        size_t n = 0, total = ban_store_count(m->bans);
        uint64_t now = now_usec(CLOCK_REALTIME);
        int r;

        r = bus_read_dict(msg, &query_spec, read_query_entry, &q, error);
        if (r < 0)
                return r;
        items = calloc(total + 1, sizeof(struct sort_item));
        if (!items)
                return -ENOMEM;
        for (size_t i = 0; i < total; i++) {
                const Ban *b = ban_store_at(m->bans, i);

                if (!ban_matches(&q, b, now))
                        continue;
                items[n].b = b;
                if (q.sort == BAN_SORT_PACKETS) {
                        BanCounters c;

                        (void) ban_store_counters(m->bans, b, &c);
                        items[n].packets = c.packets;
                }
                n++;
        }
        qsort(items, n, sizeof(struct sort_item),
              q.sort == BAN_SORT_UNTIL ? cmp_until : q.sort == BAN_SORT_ADDRESS ? cmp_address :
              q.sort == BAN_SORT_PACKETS ? cmp_packets : cmp_created);
        r = bus_reply_open(msg, 'a', "a{sv}", &reply);
        if (r < 0)
                return r;
        for (size_t i = q.offset; i < n && i < (size_t) q.offset + q.limit; i++) {
                r = append_ban(reply, m->bans, items[i].b);
                if (r < 0)
                        return r;
        }
        return bus_reply_close_send(reply);
}

static int method_get(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        char a[CIDR_STRING_MAX];
        Manager *m = userdata;
        const char *address;
        const Cidr *allowed;
        const Ban *b;
        Cidr c;
        int r;

        r = sd_bus_message_read(msg, "s", &address);
        if (r < 0)
                return r;
        r = parse_address(address, "address", &c, error);
        if (r < 0)
                return r;
        b = ban_store_find(m->bans, &c);
        if (!b)
                b = ban_store_covering(m->bans, c.family, c.addr);
        if (b && b->cidr.prefixlen > c.prefixlen)
                b = NULL; /* a ban inside the range does not cover all of it */
        allowed = ban_store_allowlisted(m->bans, &c);
        r = bus_reply_open(msg, 'a', "{sv}", &reply);
        if (r < 0)
                return r;
        if ((r = bus_dict_bool(reply, "banned", !!b)) < 0 ||
            (r = bus_dict_bool(reply, "allowlisted", !!allowed)) < 0 ||
            (r = bus_dict_string(reply, "allowlist_entry", allowed ? cidr_to_string(true, allowed, a)
                                                                   : "")) < 0)
                return r;
        if (b) {
                r = sd_bus_message_open_container(reply, 'e', "sv");
                if (r >= 0)
                        r = sd_bus_message_append(reply, "s", "ban");
                if (r >= 0)
                        r = sd_bus_message_open_container(reply, 'v', "a{sv}");
                if (r >= 0)
                        r = append_ban(reply, m->bans, b);
                if (r >= 0)
                        r = sd_bus_message_close_container(reply);
                if (r >= 0)
                        r = sd_bus_message_close_container(reply);
                if (r < 0)
                        return r;
        }
        return bus_reply_close_send(reply);
}

static int method_export(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        _cleanup_free_ char *text = NULL;
        Manager *m = userdata;
        json_t *doc;

        doc = ban_store_export(m->bans);
        if (!doc)
                return -ENOMEM;
        text = json_dumps(doc, ban_store_count(m->bans) <= PS_SMALL_SET_MAX ? JSON_INDENT(2)
                                                                             : JSON_COMPACT);
        json_decref(doc);
        if (!text)
                return -ENOMEM;
        if (strlen(text) > PS_EXPORT_MAX_BYTES)
                return sd_bus_error_setf(error, PS_ERROR_LIMIT_EXCEEDED,
                                         "the export would be %zu bytes; one bus message carries "
                                         "at most %u: use List(limit, offset) page by page",
                                         strlen(text), PS_EXPORT_MAX_BYTES);
        return sd_bus_reply_method_return(msg, "s", text);
}

static int read_history_entry(const char *key, const BusValue *v, void *userdata,
                              sd_bus_error *error) {
        BanHistoryQuery *q = userdata;

        if (streq(key, "limit") && v->type == 'u') {
                if (v->u < 1 || v->u > PS_BANS_HISTORY_MAX)
                        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                                 "limit %llu; accepted: 1 to %u",
                                                 (unsigned long long) v->u, PS_BANS_HISTORY_MAX);
                q->limit = (uint32_t) v->u;
                return 0;
        }
        if (streq(key, "since") && v->type == 't') {
                q->since_usec = v->u;
                return 0;
        }
        if (streq(key, "address") && v->type == 's') {
                q->address = v->s;
                return 0;
        }
        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                 "unknown query key '%.64s' (or wrong type); accepted: limit (u), "
                                 "since (t, CLOCK_REALTIME µs), address (s)", key);
}

static const BusDictSpec history_spec = {
        .types = "ust",
        .what = "query key",
        .expected = "accepted: limit (u), since (t), address (s)",
};

static int method_history(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        BanHistoryQuery q = { .limit = PS_QUERY_LIMIT_DEFAULT };
        _cleanup_free_ char *err = NULL;
        BanHistoryEntry *e = NULL;
        size_t n = 0;
        int r;

        r = bus_read_dict(msg, &history_spec, read_history_entry, &q, error);
        if (r < 0)
                return r;
        r = bans_history(&q, &e, &n, &err);
        if (r < 0)
                return bans_bus_error(error, r, err);
        r = bus_reply_open(msg, 'a', "a{sv}", &reply);
        for (size_t i = 0; i < n && r >= 0; i++) {
                r = sd_bus_message_open_container(reply, 'a', "{sv}");
                if (r >= 0)
                        r = bus_dict_u64(reply, "time", e[i].time_usec);
                if (r >= 0)
                        r = bus_dict_string(reply, "event", e[i].event);
                if (r >= 0)
                        r = bus_dict_string(reply, "address", e[i].address ? e[i].address : "");
                if (r >= 0)
                        r = bus_dict_string(reply, "origin", e[i].origin ? e[i].origin : "");
                if (r >= 0)
                        r = bus_dict_string(reply, "reason", e[i].reason ? e[i].reason : "");
                if (r >= 0)
                        r = bus_dict_string(reply, "until", e[i].until ? e[i].until : "");
                if (r >= 0)
                        r = bus_dict_string(reply, "policy", e[i].policy ? e[i].policy : "");
                if (r >= 0)
                        r = bus_dict_u32(reply, "offenses", e[i].offenses);
                if (r >= 0)
                        r = bus_dict_string(reply, "message", e[i].message ? e[i].message : "");
                if (r >= 0)
                        r = sd_bus_message_close_container(reply);
        }
        bans_history_free(e, n);
        if (r < 0)
                return r;
        return bus_reply_close_send(reply);
}

static int property_get_count(sd_bus *bus, const char *path, const char *interface,
                              const char *property, sd_bus_message *reply, void *userdata,
                              sd_bus_error *error) {
        Manager *m = userdata;
        BanStoreInfo i;

        ban_store_info(m->bans, &i);
        if (streq(property, "Count"))
                return sd_bus_message_append(reply, "u", (uint32_t) i.n_bans);
        if (streq(property, "CapacityIPv4"))
                return sd_bus_message_append(reply, "u", i.capacity4);
        if (streq(property, "CapacityIPv6"))
                return sd_bus_message_append(reply, "u", i.capacity6);
        if (streq(property, "RefusedTableFull"))
                return sd_bus_message_append(reply, "t", i.n_refused_full);
        return sd_bus_message_append(reply, "u", i.capacity_cidr);
}

static int property_get_count_by_origin(sd_bus *bus, const char *path, const char *interface,
                                        const char *property, sd_bus_message *reply,
                                        void *userdata, sd_bus_error *error) {
        static const char *const names[_BAN_ORIGIN_MAX] = {
                [BAN_ORIGIN_MANUAL] = "manual", [BAN_ORIGIN_AUTO] = "auto",
                [BAN_ORIGIN_IMPORT] = "import", [BAN_ORIGIN_AI] = "ai",
        };
        Manager *m = userdata;
        size_t n[_BAN_ORIGIN_MAX];
        int r;

        ban_store_count_origins(m->bans, n);
        r = sd_bus_message_open_container(reply, 'a', "{sv}");
        for (size_t i = 0; i < _BAN_ORIGIN_MAX && r >= 0; i++)
                if (names[i])
                        r = bus_dict_u32(reply, names[i], (uint32_t) n[i]);
        if (r < 0)
                return r;
        return sd_bus_message_close_container(reply);
}

static int property_get_totals(sd_bus *bus, const char *path, const char *interface,
                               const char *property, sd_bus_message *reply, void *userdata,
                               sd_bus_error *error) {
        static const char *const names[_BAN_ORIGIN_MAX] = {
                [BAN_ORIGIN_MANUAL] = "created.manual", [BAN_ORIGIN_IMPORT] = "created.import",
                [BAN_ORIGIN_AI] = "created.ai",
        };
        Manager *m = userdata;
        BanTotals t;
        int r;

        ban_store_totals(m->bans, &t);
        r = sd_bus_message_open_container(reply, 'a', "{st}");
        for (size_t i = 0; i < _BAN_ORIGIN_MAX && r >= 0; i++)
                if (names[i])
                        r = sd_bus_message_append(reply, "{st}", names[i], t.created[i]);
        for (unsigned p = 0; p < _PS_BAN_POLICY_MAX && r >= 0; p++) {
                char key[48];

                snprintf(key, sizeof key, "created.auto:%s", ban_policy_to_string(p));
                r = sd_bus_message_append(reply, "{st}", key, t.created_auto[p]);
        }
        if (r >= 0)
                r = sd_bus_message_append(reply, "{st}{st}", "expired", t.expired, "unbanned",
                                          t.unbanned);
        if (r < 0)
                return r;
        return sd_bus_message_close_container(reply);
}

static int property_get_allowlist(sd_bus *bus, const char *path, const char *interface,
                                  const char *property, sd_bus_message *reply, void *userdata,
                                  sd_bus_error *error) {
        Manager *m = userdata;
        const Cidr *list;
        size_t n = ban_store_allowlist(m->bans, &list);
        char a[CIDR_STRING_MAX];
        int r;

        r = sd_bus_message_open_container(reply, 'a', "s");
        for (size_t i = 0; i < n && r >= 0; i++)
                r = sd_bus_message_append(reply, "s", cidr_to_string(true, &list[i], a));
        for (uint32_t i = 0; i < m->config.n_management && r >= 0; i++)
                r = sd_bus_message_append(reply, "s", cidr_to_string(true, &m->config.management[i], a));
        for (uint32_t i = 0; i < m->config.n_bans_allowlist && r >= 0; i++)
                r = sd_bus_message_append(reply, "s",
                                          cidr_to_string(true, &m->config.bans_allowlist[i], a));
        if (r < 0)
                return r;
        return sd_bus_message_close_container(reply);
}

static const sd_bus_vtable bans_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Count", "u", property_get_count, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("CapacityIPv4", "u", property_get_count, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("CapacityIPv6", "u", property_get_count, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("CapacityCidr", "u", property_get_count, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("CountByOrigin", "a{sv}", property_get_count_by_origin, 0, 0),
        SD_BUS_PROPERTY("RefusedTableFull", "t", property_get_count, 0, 0),
        SD_BUS_PROPERTY("Totals", "a{st}", property_get_totals, 0, 0),
        SD_BUS_PROPERTY("Allowlist", "as", property_get_allowlist, 0,
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Policies", "a{sa{sv}}", property_get_policies, 0,
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_METHOD_WITH_ARGS("Ban", SD_BUS_ARGS("s", address, "t", seconds, "s", reason),
                                SD_BUS_RESULT("o", ban), method_ban, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("BanBatch", SD_BUS_ARGS("aa{sv}", bans), SD_BUS_RESULT("u", count),
                                method_ban_batch, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("BanFile", SD_BUS_ARGS("h", fd, "s", origin),
                                SD_BUS_RESULT("u", count), method_ban_file,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Unban", SD_BUS_ARGS("s", address), SD_BUS_NO_RESULT,
                                method_unban, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("UnbanBatch", SD_BUS_ARGS("as", addresses), SD_BUS_NO_RESULT,
                                method_unban_batch, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("List", SD_BUS_ARGS("a{sv}", query), SD_BUS_RESULT("aa{sv}", bans),
                                method_list, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Get", SD_BUS_ARGS("s", address), SD_BUS_RESULT("a{sv}", verdict),
                                method_get, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Import", SD_BUS_ARGS("s", json, "s", mode),
                                SD_BUS_RESULT("u", count), method_import,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Export", SD_BUS_NO_ARGS, SD_BUS_RESULT("s", json), method_export,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("AllowlistAdd", SD_BUS_ARGS("s", address), SD_BUS_NO_RESULT,
                                method_allowlist_change, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("AllowlistRemove", SD_BUS_ARGS("s", address), SD_BUS_NO_RESULT,
                                method_allowlist_change, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("SetPolicy", SD_BUS_ARGS("s", name, "a{sv}", settings),
                                SD_BUS_NO_RESULT, method_set_policy, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("History", SD_BUS_ARGS("a{sv}", query),
                                SD_BUS_RESULT("aa{sv}", events), method_history,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_SIGNAL_WITH_ARGS("Banned", SD_BUS_ARGS("s", address, "s", origin, "s", reason,
                                                      "t", until), 0),
        SD_BUS_SIGNAL_WITH_ARGS("Unbanned", SD_BUS_ARGS("s", address, "s", why), 0),
        SD_BUS_SIGNAL_WITH_ARGS("PolicyTriggered", SD_BUS_ARGS("s", policy, "s", address,
                                                               "b", shadow, "u", value), 0),
        SD_BUS_VTABLE_END,
};

/* ------------------------------------------------------------------------------------------ */
/* One ban as an object, resolved on demand */

static int ban_find(sd_bus *bus, const char *path, const char *interface, void *userdata,
                    void **found, sd_bus_error *error) {
        Manager *m = userdata;
        const char *p = path + strlen(PS_OBJECT_BANS "/");
        uint32_t id;

        if (strncmp(path, PS_OBJECT_BANS "/", strlen(PS_OBJECT_BANS "/")) != 0 ||
            safe_atou32(p, &id) < 0 || !ban_store_find_id(m->bans, id))
                return 0;
        *found = m;
        return 1;
}

static int property_get_ban(sd_bus *bus, const char *path, const char *interface,
                            const char *property, sd_bus_message *reply, void *userdata,
                            sd_bus_error *error) {
        Manager *m = userdata;
        char a[CIDR_STRING_MAX], o[32];
        uint32_t id = 0;
        const Ban *b;
        BanCounters c;

        (void) safe_atou32(path + strlen(PS_OBJECT_BANS "/"), &id);
        b = ban_store_find_id(m->bans, id);
        if (!b)
                return sd_bus_error_setf(error, PS_ERROR_NO_SUCH_BAN, "ban %u is gone", id);
        (void) ban_store_counters(m->bans, b, &c);
        if (streq(property, "Address"))
                return sd_bus_message_append(reply, "s", cidr_to_string(true, &b->cidr, a));
        if (streq(property, "Origin"))
                return sd_bus_message_append(reply, "s", ban_origin_to_string(b, o, sizeof o));
        if (streq(property, "Reason"))
                return sd_bus_message_append(reply, "s", b->reason ? b->reason : "");
        if (streq(property, "Created"))
                return sd_bus_message_append(reply, "t", b->created_usec);
        if (streq(property, "Until"))
                return sd_bus_message_append(reply, "t", b->expires_usec);
        if (streq(property, "Offenses"))
                return sd_bus_message_append(reply, "u", b->offenses);
        if (streq(property, "Packets"))
                return sd_bus_message_append(reply, "t", c.packets);
        if (streq(property, "Bytes"))
                return sd_bus_message_append(reply, "t", c.bytes);
        return sd_bus_message_append(reply, "t", c.last_hit_usec);
}

static const sd_bus_vtable ban_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Address", "s", property_get_ban, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Origin", "s", property_get_ban, 0, 0),
        SD_BUS_PROPERTY("Reason", "s", property_get_ban, 0, 0),
        SD_BUS_PROPERTY("Created", "t", property_get_ban, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Until", "t", property_get_ban, 0, 0),
        SD_BUS_PROPERTY("Offenses", "u", property_get_ban, 0, 0),
        SD_BUS_PROPERTY("Packets", "t", property_get_ban, 0, 0),
        SD_BUS_PROPERTY("Bytes", "t", property_get_ban, 0, 0),
        SD_BUS_PROPERTY("LastHit", "t", property_get_ban, 0, 0),
        SD_BUS_VTABLE_END,
};

static char *ban_path_at(void *userdata, size_t i) {
        Manager *m = userdata;

        return ban_bus_path(ban_store_at(m->bans, i)->id);
}

/* Up to PS_SMALL_SET_MAX bans are listed as objects (for introspecting tools); past that none
 * are, and List() pages through them. */
static int ban_enumerate(sd_bus *bus, const char *path, void *userdata, char ***ret,
                         sd_bus_error *error) {
        Manager *m = userdata;
        size_t n = ban_store_count(m->bans);

        return bus_node_list(n <= PS_SMALL_SET_MAX ? n : 0, ban_path_at, m, ret);
}

/* ------------------------------------------------------------------------------------------ */
/* Changes to signals and the journal */

static void on_banned(BanStore *s, const Ban *b, void *userdata) {
        Manager *m = userdata;
        char a[CIDR_STRING_MAX], o[32];

        bans_log_banned(b, b->offenses > 1);
        if (!m->bus)
                return;
        (void) sd_bus_emit_signal(m->bus, PS_OBJECT_BANS, PS_IFACE_BANS, "Banned", "ssst",
                                  cidr_to_string(true, &b->cidr, a), ban_origin_to_string(b, o, sizeof o),
                                  b->reason ? b->reason : "", b->expires_usec);
}

static void on_unbanned(BanStore *s, const Ban *b, BanEnd why, void *userdata) {
        Manager *m = userdata;
        char a[CIDR_STRING_MAX];

        bans_log_unbanned(b, why);
        if (!m->bus)
                return;
        (void) sd_bus_emit_signal(m->bus, PS_OBJECT_BANS, PS_IFACE_BANS, "Unbanned", "ss",
                                  cidr_to_string(true, &b->cidr, a),
                                  why == BAN_END_EXPIRED ? "expired" : "manual");
}

static void on_batch(BanStore *s, size_t n_banned, size_t n_unbanned, BanEnd why,
                     void *userdata) {
        if (n_banned > 0)
                log_struct_internal(LOG_NOTICE, 0, PS_MESSAGE_BAN, NULL,
                                    "%zu bans made or extended in one batch (told as one record "
                                    "rather than one per ban; Bans.List has them)", n_banned);
        if (n_unbanned > 0)
                log_struct_internal(LOG_NOTICE, 0, why == BAN_END_EXPIRED ? PS_MESSAGE_BAN_EXPIRED
                                                                          : PS_MESSAGE_UNBAN,
                                    NULL, "%zu bans %s at once", n_unbanned,
                                    why == BAN_END_EXPIRED ? "expired" : "lifted");
}

static void on_policy(BanStore *s, const char *policy, const char *address, bool shadow,
                      uint32_t value, uint32_t offenses, uint64_t until_usec, void *userdata) {
        Manager *m = userdata;

        bans_log_policy(policy, address, shadow, value, offenses, until_usec);
        if (m->bus)
                (void) sd_bus_emit_signal(m->bus, PS_OBJECT_BANS, PS_IFACE_BANS,
                                          "PolicyTriggered", "ssbu", policy, address, shadow,
                                          value);
}

static void on_count_changed(BanStore *s, void *userdata) {
        Manager *m = userdata;

        if (m->bus)
                (void) sd_bus_emit_properties_changed(m->bus, PS_OBJECT_BANS, PS_IFACE_BANS,
                                                      "Count", NULL);
}

/* Bans and Ban share the node /bans (as Filters and Filter do): both are fallbacks. */
static int bans_find(sd_bus *bus, const char *path, const char *interface, void *userdata,
                     void **found, sd_bus_error *error) {
        if (!streq(path, PS_OBJECT_BANS))
                return 0;
        *found = userdata;
        return 1;
}

int bans_bus_register(Manager *m) {
        int r;

        ban_store_set_callbacks(m->bans, &(BanCallbacks) {
                .banned = on_banned,
                .unbanned = on_unbanned,
                .batch = on_batch,
                .policy = on_policy,
                .changed = on_count_changed,
                .userdata = m,
        });
        r = sd_bus_add_fallback_vtable(m->bus, NULL, PS_OBJECT_BANS, PS_IFACE_BANS, bans_vtable,
                                       bans_find, m);
        if (r < 0)
                return r;
        return bus_add_object_family(m->bus, PS_OBJECT_BANS, PS_IFACE_BAN, ban_vtable, ban_find,
                                     ban_enumerate, m);
}
