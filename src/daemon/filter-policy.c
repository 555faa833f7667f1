/* SPDX-License-Identifier: MIT */
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <time.h>

#include "bus-names.h"
#include "filters.h"
#include "proto.h"
#include "util.h"

/* The source port of the probe packets: any unprivileged port stands for a client. */
#define LOCKOUT_PROBE_SPORT 50000

/* Does f drop a TCP packet (SYN, then ACK) from src to port? The local address is unknown
 * here: the rule's own is assumed. */
static int lockout_probe(const Filter *f, const Cidr *src, uint16_t port) {
        for (int k = 0; k < 2; k++) {
                struct ps_match pkt = {
                        .family = src->family,
                        .proto = IPPROTO_TCP,
                        .sport = LOCKOUT_PROBE_SPORT,
                        .dport = port,
                        .tcp_flags = k == 0 ? TCP_FLAG_SYN : TCP_FLAG_ACK,
                };

                memcpy(pkt.src, src->addr, sizeof pkt.src);
                if (f->has_dst)
                        memcpy(pkt.dst, f->dst.addr, sizeof pkt.dst);
                if (filter_match(f, &pkt))
                        return k;
        }
        return -1;
}

int filter_check_lockout(const Config *c, const Filter *f, char **ret_error) {
        char id[16] = "(new)";

        assert(c);
        assert(f);
        if (f->force || !f->enabled || f->action != FILTER_DROP)
                return 0;
        if (f->id != UINT32_MAX)
                snprintf(id, sizeof id, "%u", f->id);
        /* Checked against a new connection (SYN) and an established one (ACK) from each
         * management address to each management port. */
        for (uint32_t a = 0; a < c->n_management; a++)
                for (uint32_t p = 0; p < c->n_management_ports; p++) {
                        char buf[ADDR_STRLEN];
                        int k = lockout_probe(f, &c->management[a], c->management_ports[p]);

                        if (k < 0)
                                continue;
                        return error_setf(ret_error, -EPERM,
                                "rule %s would drop %s traffic from the management "
                                "address %s to port %u (ManagementAddresses= in "
                                "packetscope.conf); add \"force\": true to apply it anyway",
                                id, k == 0 ? "new TCP" : "TCP",
                                addr_to_string(c->management[a].family,
                                               c->management[a].addr, buf),
                                c->management_ports[p]);
                }
        if (c->n_management > 0)
                return 0;
        /* No management addresses: the ports are protected from everywhere, so that a fresh
         * install (ManagementPorts= defaults to the SSH port) cannot cut its own SSH session.
         * The probe comes from the rule's own source, or from anywhere. */
        for (int fam = 0; fam < 2; fam++)
                for (uint32_t p = 0; p < c->n_management_ports; p++) {
                        Cidr src = { .family = fam == 0 ? ADDR_FAMILY_IPV4 : ADDR_FAMILY_IPV6 };
                        int k;

                        if (f->has_src) {
                                if (f->src.family != src.family)
                                        continue;
                                src = f->src;
                        }
                        k = lockout_probe(f, &src, c->management_ports[p]);
                        if (k < 0)
                                continue;
                        return error_setf(ret_error, -EPERM,
                                "rule %s would drop %s traffic to the management port %u "
                                "(ManagementPorts= in packetscope.conf, the SSH port unless "
                                "set; ManagementAddresses= narrows it to the addresses you "
                                "manage from); add \"force\": true to apply it anyway",
                                id, k == 0 ? "new TCP" : "TCP", c->management_ports[p]);
                }
        return 0;
}

static int filter_parse_import_limit(const char *text, size_t max, bool keep_ids,
                                     FilterList *ret, char **ret_error) {
        _cleanup_filter_list_ FilterList rules = {};
        _cleanup_json_ json_t *root = NULL;
        json_error_t jerr;
        json_t *list;
        size_t count;
        uint64_t now = now_usec(CLOCK_REALTIME);
        int r;

        assert(text);
        assert(ret);
        if (strlen(text) > max)
                return error_setf(ret_error, -EMSGSIZE, "the import is %zu bytes; accepted: at most "
                                  "%zu (split it, or use ImportFd)", strlen(text), max);
        root = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
        if (!root)
                return error_setf(ret_error, -EINVAL, "the import is not valid JSON: line %d "
                                  "column %d: %s", jerr.line, jerr.column, jerr.text);
        list = json_is_object(root) && json_object_get(root, "filters") ?
               json_object_get(root, "filters") : root;
        if (!json_is_array(list) && !json_is_object(list))
                return error_setf(ret_error, -EINVAL, "the import must be a rule object, an array "
                                  "of rules or {\"filters\": [...]}");
        count = json_is_array(list) ? json_array_size(list) : 1;
        if (count > PS_FILTER_MAX_RULES)
                return error_setf(ret_error, -E2BIG, "the import holds %zu rules; accepted: at "
                                  "most %u", count, PS_FILTER_MAX_RULES);
        rules.rules = calloc(count + 1, sizeof(Filter *));
        if (!rules.rules)
                return -ENOMEM;
        for (size_t i = 0; i < count; i++) {
                json_t *o = json_is_array(list) ? json_array_get(list, i) : list; /* borrowed */
                _cleanup_filter_ Filter *f = filter_new();
                _cleanup_free_ char *err = NULL;

                if (!f)
                        return -ENOMEM;
                r = filter_from_json(f, o, FILTER_PARSE_IMPORT, &err);
                if (r == -EINVAL)
                        return error_setf(ret_error, -EINVAL, "rule #%zu of the import: %s", i,
                                          err ? err : strerror(-r));
                if (r < 0)
                        return r;
                if (!keep_ids)
                        f->id = UINT32_MAX;
                /* Its time is over: importing it would only make it live again. */
                if (f->expires_usec && f->expires_usec <= now)
                        continue;
                rules.rules[rules.n++] = TAKE_PTR(f);
        }
        *ret = rules;
        rules = (FilterList) {};
        return 0;
}

int filter_parse_import(const char *text, bool keep_ids, FilterList *ret, char **ret_error) {
        return filter_parse_import_limit(text, PS_IMPORT_MAX_BYTES, keep_ids, ret, ret_error);
}

static const char *file_type_name(mode_t mode) {
        return S_ISDIR(mode) ? "a directory" : S_ISFIFO(mode) ? "a pipe" :
               S_ISSOCK(mode) ? "a socket" : S_ISCHR(mode) ? "a character device" :
               S_ISBLK(mode) ? "a block device" : "neither";
}

int filter_import_fd_check(int fd, char **ret_error) {
        struct stat st;
        int flags;

        if (fstat(fd, &st) < 0)
                return error_setf(ret_error, -EBADF, "cannot read the import's file descriptor: "
                                  "%s", strerror(errno));
        if (!S_ISREG(st.st_mode))
                return error_setf(ret_error, -EBADF, "the import's file descriptor is %s; "
                                  "accepted: a regular file or a memfd open for reading",
                                  file_type_name(st.st_mode));
        flags = fcntl(fd, F_GETFL);
        if (flags < 0 || (flags & O_PATH) || (flags & O_ACCMODE) == O_WRONLY)
                return error_setf(ret_error, -EBADF, "the import's file descriptor is not open "
                                  "for reading; accepted: a regular file or a memfd open for "
                                  "reading");
        if (st.st_size > PS_IMPORT_FD_MAX_BYTES)
                return error_setf(ret_error, -EFBIG, "the import is %lld bytes; accepted: at "
                                  "most %u", (long long) st.st_size, PS_IMPORT_FD_MAX_BYTES);
        return 0;
}

int filter_parse_import_fd(int fd, bool keep_ids, FilterList *ret, char **ret_error) {
        _cleanup_free_ char *text = NULL;
        size_t size = 0;
        const char *nul;
        int r;

        r = filter_import_fd_check(fd, ret_error);
        if (r < 0)
                return r;
        /* One byte more than accepted: a file that grew past the bound is seen to. */
        text = malloc(PS_IMPORT_FD_MAX_BYTES + 2);
        if (!text)
                return -ENOMEM;
        while (size <= PS_IMPORT_FD_MAX_BYTES) {
                ssize_t n = pread(fd, text + size, PS_IMPORT_FD_MAX_BYTES + 1 - size, (off_t) size);

                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return error_setf(ret_error, -EBADF, "cannot read the import's file "
                                          "descriptor: %s", strerror(errno));
                if (n == 0)
                        break;
                size += (size_t) n;
        }
        if (size > PS_IMPORT_FD_MAX_BYTES)
                return error_setf(ret_error, -EFBIG, "the import is more than %u bytes; "
                                  "accepted: at most %u", PS_IMPORT_FD_MAX_BYTES,
                                  PS_IMPORT_FD_MAX_BYTES);
        nul = memchr(text, '\0', size);
        if (nul)
                return error_setf(ret_error, -EINVAL, "the import is not valid JSON: a NUL byte "
                                  "at byte offset %zu", (size_t) (nul - text));
        text[size] = '\0';
        return filter_parse_import_limit(text, PS_IMPORT_FD_MAX_BYTES, keep_ids, ret, ret_error);
}
