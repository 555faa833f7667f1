/* SPDX-License-Identifier: MIT */
#include <bpf/bpf.h>
#include <jansson.h>
#include <stdio.h>

#include "ban-maps.h"
#include "bpf-maps.h"
#include "guard-abi.h"
#include "log.h"
#include "panic.h"
#include "state.h"
#include "util.h"

#define PANIC_FILE "panic.json"

/* The program's map names are the pin names. */
static const BpfMapSpec panic_map_specs[] = {
        { "panic", BPF_MAP_TYPE_ARRAY, 4, sizeof(struct ps_panic), 1, 0 },
        { "panic_addr4", BPF_MAP_TYPE_LPM_TRIE, sizeof(struct ps_lpm4_key), 4, PS_PANIC_ADDR_MAX,
          BPF_F_NO_PREALLOC },
        { "panic_addr6", BPF_MAP_TYPE_LPM_TRIE, sizeof(struct ps_lpm6_key), 4, PS_PANIC_ADDR_MAX,
          BPF_F_NO_PREALLOC },
};

static int *panic_fd(Panic *p, size_t i) {
        int *fds[] = { &p->conf_fd, &p->addr4_fd, &p->addr6_fd };

        return fds[i];
}

static int panic_read_kernel(Panic *p, struct ps_panic *ret) {
        uint32_t zero = 0;

        return bpf_map_lookup_elem(p->conf_fd, &zero, ret) < 0 ? -errno : 0;
}

static int panic_write_flag(Panic *p, bool on) {
        struct ps_panic v;
        uint32_t zero = 0;
        int r;

        r = panic_read_kernel(p, &v);
        if (r < 0)
                return r;
        v.on = on;
        return bpf_map_update_elem(p->conf_fd, &zero, &v, BPF_ANY) < 0 ? -errno : 0;
}

/* Empties a trie: the keys are gathered first, since deleting while walking skips some. */
static int trie_clear(int fd, size_t key_size) {
        uint8_t keys[PS_PANIC_ADDR_MAX][sizeof(struct ps_lpm6_key)];
        uint8_t next[sizeof(struct ps_lpm6_key)];
        void *prev = NULL;
        size_t n = 0;

        while (n < PS_PANIC_ADDR_MAX && bpf_map_get_next_key(fd, prev, next) == 0) {
                memcpy(keys[n], next, key_size);
                prev = keys[n++];
        }
        for (size_t i = 0; i < n; i++)
                if (bpf_map_delete_elem(fd, keys[i]) < 0 && errno != ENOENT)
                        return -errno;
        return 0;
}

int panic_apply_config(Panic *p, const Config *c) {
        struct ps_panic v = {};
        uint32_t zero = 0;
        int r;

        assert(p);
        assert(c);
        r = panic_read_kernel(p, &v);
        if (r < 0)
                return r;
        v.n_ports = MIN(c->n_management_ports, (uint32_t) PS_PANIC_PORTS_MAX);
        memset(v.ports, 0, sizeof v.ports);
        for (uint32_t i = 0; i < v.n_ports; i++)
                v.ports[i] = c->management_ports[i];
        if (bpf_map_update_elem(p->conf_fd, &zero, &v, BPF_ANY) < 0)
                return -errno;
        if ((r = trie_clear(p->addr4_fd, sizeof(struct ps_lpm4_key))) < 0 ||
            (r = trie_clear(p->addr6_fd, sizeof(struct ps_lpm6_key))) < 0)
                return r;
        for (uint32_t i = 0; i < c->n_management && i < PS_PANIC_ADDR_MAX; i++) {
                const Cidr *a = &c->management[i];
                uint32_t addr[4], len = a->prefixlen;

                memcpy(addr, a->addr, sizeof addr);
                ban_addr_mask(a->family, addr, a->prefixlen);
                if (a->family == ADDR_FAMILY_IPV4) {
                        struct ps_lpm4_key k = { a->prefixlen, addr[0] };

                        r = bpf_map_update_elem(p->addr4_fd, &k, &len, BPF_ANY);
                } else {
                        struct ps_lpm6_key k = { .prefixlen = a->prefixlen };

                        memcpy(k.addr, addr, sizeof k.addr);
                        r = bpf_map_update_elem(p->addr6_fd, &k, &len, BPF_ANY);
                }
                if (r < 0)
                        return -errno;
        }
        return 0;
}

/* panic.json: 1 on, 0 off, -ENOENT without a file (or a corrupt one, set aside). */
static int panic_load_file(const char *dir, char **ret_error) {
        _cleanup_free_ char *path = strjoin_path(dir, PANIC_FILE);
        json_t *root, *on;
        int r;

        if (!path)
                return -ENOMEM;
        r = json_read_file(path, 4096, "larger than 4 KiB", &root, ret_error);
        if (r < 0)
                return r;
        on = json_object_get(root, "panic"); /* borrowed */
        r = json_is_boolean(on) ? json_is_true(on) : -EBADMSG;
        json_decref(root);
        if (r == -EBADMSG)
                return file_set_aside(path, "no boolean \"panic\"", ret_error);
        return r;
}

static int panic_save_file(Panic *p, bool on, char **ret_error) {
        char text[64];

        snprintf(text, sizeof text, "{\n  \"panic\": %s,\n  \"version\": 1\n}", on ? "true" : "false");
        return state_write_file(p->state_dir, PANIC_FILE, text, ret_error);
}

int panic_start(Panic *p, const char *state_dir, const char *bpffs_root, const Config *c,
                char **ret_error) {
        _cleanup_free_ char *dir = NULL, *err = NULL;
        struct ps_panic v;
        int r, stored;

        assert(p);
        assert(state_dir);
        assert(bpffs_root);
        *p = PANIC_INIT;
        p->state_dir = strdup(state_dir);
        dir = strjoin_path(bpffs_root, PS_PANIC_PIN_DIR);
        if (!p->state_dir || !dir)
                return -ENOMEM;
        r = mkdir_p(dir, 0700);
        if (r < 0)
                return error_setf(ret_error, r, "cannot create %s: %s (is bpffs mounted?)", dir,
                                  strerror(-r));
        for (size_t i = 0; i < ELEMENTSOF(panic_map_specs); i++) {
                int fd = bpf_map_pin_or_create(dir, &panic_map_specs[i]);

                if (fd < 0)
                        return error_setf(ret_error, fd, "cannot open or create the map %s/%s: %s",
                                          dir, panic_map_specs[i].name, strerror(-fd));
                *panic_fd(p, i) = fd;
        }
        r = panic_apply_config(p, c);
        if (r < 0)
                return error_setf(ret_error, r, "cannot write the management ports and "
                                  "addresses into %s: %s", dir, strerror(-r));
        r = panic_read_kernel(p, &v);
        if (r < 0)
                return error_setf(ret_error, r, "cannot read %s/panic: %s", dir, strerror(-r));
        stored = panic_load_file(state_dir, &err);
        if (stored < 0 && stored != -ENOENT && stored != -EBADMSG)
                return error_setf(ret_error, stored, "cannot read %s/%s: %s", state_dir,
                                  PANIC_FILE, err ? err : strerror(-stored));
        if (stored >= 0) {
                p->on = stored;
        } else {
                /* No file (a first start, or it was lost): what is enforced stays, and is
                 * recorded so that a reboot keeps it too. */
                p->on = v.on;
                if (stored == -EBADMSG)
                        log_struct_internal(LOG_ERR, stored, PS_MESSAGE_STATE_CORRUPT, NULL,
                                            "%s; panic mode stays as pinned: %s", err,
                                            p->on ? "on" : "off");
                if (p->on)
                        (void) panic_save_file(p, true, NULL);
        }
        if (!!v.on != p->on) {
                r = panic_write_flag(p, p->on);
                if (r < 0)
                        return error_setf(ret_error, r, "cannot write %s/panic: %s", dir,
                                          strerror(-r));
        }
        return 0;
}

void panic_done(Panic *p) {
        if (!p)
                return;
        for (size_t i = 0; i < ELEMENTSOF(panic_map_specs); i++)
                *panic_fd(p, i) = safe_close(*panic_fd(p, i));
        p->state_dir = mfree(p->state_dir);
}

int panic_set(Panic *p, bool on, char **ret_error) {
        int r;

        assert(p);
        r = panic_write_flag(p, on);
        if (r < 0)
                return error_setf(ret_error, r, "cannot write the panic flag into the kernel: %s",
                                  strerror(-r));
        r = panic_save_file(p, on, ret_error);
        if (r < 0) {
                /* Not stored, not made: a restart would bring back the other setting. */
                (void) panic_write_flag(p, p->on);
                return r;
        }
        p->on = on;
        return 0;
}
