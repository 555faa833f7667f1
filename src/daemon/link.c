/* SPDX-License-Identifier: MIT */
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <dirent.h>
#include <fcntl.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <stdio.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>

#include "guard.skel.h"
#include "link.h"
#include "util.h"

static const char *const pin_names[] = { "link", "prog", "flows", "icmp_flows", "icmp4_flows",
                                         "stats", "icmp_stats", "meta" };

static void link_measure_memory(Link *l);

int link_mode_from_string(const char *s, LinkMode *ret) {
        if (streq(s, "auto") || streq(s, ""))
                *ret = LINK_MODE_AUTO;
        else if (streq(s, "native") || streq(s, "drv"))
                *ret = LINK_MODE_NATIVE;
        else if (streq(s, "generic") || streq(s, "skb"))
                *ret = LINK_MODE_GENERIC;
        else
                return -EINVAL;
        return 0;
}

const char *link_mode_to_string(uint32_t ps_mode) {
        return ps_mode == PS_MODE_NATIVE ? "native" : ps_mode == PS_MODE_GENERIC ? "generic" : "unknown";
}

/* Identifies this build of the XDP program: FNV-1a over the embedded object. */
static uint64_t program_build_id(void) {
        static uint64_t id = 0;
        const uint8_t *p;
        size_t n;

        if (id != 0)
                return id;
        p = guard_bpf__elf_bytes(&n);
        id = UINT64_C(0xcbf29ce484222325);
        for (size_t i = 0; i < n; i++) {
                id ^= p[i];
                id *= UINT64_C(0x100000001b3);
        }
        return id;
}

/* Every link's program classifies with the one rule set of the manager. */
static int link_share_filter_maps(const LinkSetup *setup, struct guard_bpf *skel) {
        int state, banks, rules, rules4, gates, counters, events, r;

        r = filter_store_fds(setup->filters, &state, &banks, &rules, &rules4, &gates, &counters,
                             &events);
        if (r < 0)
                return r;
        if ((r = bpf_map__reuse_fd(skel->maps.filter_state, state)) < 0 ||
            (r = bpf_map__reuse_fd(skel->maps.filter_banks, banks)) < 0 ||
            (r = bpf_map__reuse_fd(skel->maps.filter_rules, rules)) < 0 ||
            (r = bpf_map__reuse_fd(skel->maps.filter_rules4, rules4)) < 0 ||
            (r = bpf_map__reuse_fd(skel->maps.filter_gates, gates)) < 0 ||
            (r = bpf_map__reuse_fd(skel->maps.filter_counters, counters)) < 0 ||
            (r = bpf_map__reuse_fd(skel->maps.drop_events, events)) < 0)
                return r;
        return 0;
}

/* Every link's program enforces the one set of bans (and feeds the one set of policy state). */
static int link_share_ban_maps(const LinkSetup *setup, struct guard_bpf *skel) {
        const BanMaps *b = setup->bans;
        int r;

        if (!b)
                return 0;
        if ((r = bpf_map__reuse_fd(skel->maps.ban_v4, b->v4_fd)) < 0 ||
            (r = bpf_map__reuse_fd(skel->maps.ban_v6, b->v6_fd)) < 0 ||
            (r = bpf_map__reuse_fd(skel->maps.ban_cidr4, b->cidr4_fd)) < 0 ||
            (r = bpf_map__reuse_fd(skel->maps.ban_cidr6, b->cidr6_fd)) < 0 ||
            (r = bpf_map__reuse_fd(skel->maps.ban_allow4, b->allow4_fd)) < 0 ||
            (r = bpf_map__reuse_fd(skel->maps.ban_allow6, b->allow6_fd)) < 0 ||
            (r = bpf_map__reuse_fd(skel->maps.ban_presence, b->presence_fd)) < 0 ||
            (r = bpf_map__reuse_fd(skel->maps.ban_config, b->config_fd)) < 0 ||
            (r = bpf_map__reuse_fd(skel->maps.ban_offenders, b->offenders_fd)) < 0 ||
            (r = bpf_map__reuse_fd(skel->maps.ban_sources, b->sources_fd)) < 0 ||
            (r = bpf_map__reuse_fd(skel->maps.ban_url_patterns, b->patterns_fd)) < 0 ||
            (r = bpf_map__reuse_fd(skel->maps.ban_events, b->events_fd)) < 0)
                return r;
        return 0;
}

/* Every link's program obeys the one panic flag. */
static int link_share_panic_maps(const LinkSetup *setup, struct guard_bpf *skel) {
        const Panic *p = setup->panic;
        int r;

        if (!p)
                return 0;
        if ((r = bpf_map__reuse_fd(skel->maps.panic, p->conf_fd)) < 0 ||
            (r = bpf_map__reuse_fd(skel->maps.panic_addr4, p->addr4_fd)) < 0 ||
            (r = bpf_map__reuse_fd(skel->maps.panic_addr6, p->addr6_fd)) < 0)
                return r;
        return 0;
}

static Link *link_new(const LinkSetup *setup, const char *ifname) {
        _cleanup_free_ char *pin_name = NULL;
        Link *l = calloc(1, sizeof(Link));

        if (!l)
                return NULL;
        l->setup = *setup;
        l->link_fd = l->prog_fd = l->flows_fd = l->icmp_fd = l->icmp4_fd = l->stats_fd =
                l->icmp_stats_fd = l->meta_fd = -1;
        l->name = strdup(ifname);
        if (ifname_to_pin_name(ifname, &pin_name) < 0)
                return link_free(l);
        l->pin_dir = strjoin_path(setup->bpffs_root, pin_name);
        if (!l->name || !l->pin_dir ||
            sd_bus_path_encode(PS_OBJECT_LINKS, ifname, &l->object_path) < 0 ||
            bpf_map_sweeper_init(&l->flow_sweeper, sizeof(struct ps_flow_key),
                              sizeof(struct ps_flow_value)) < 0 ||
            bpf_map_sweeper_init(&l->icmp_sweeper, sizeof(struct ps_icmp_key),
                              sizeof(struct ps_icmp_value)) < 0 ||
            bpf_map_sweeper_init(&l->icmp4_sweeper, sizeof(struct ps_icmp4_key),
                              sizeof(struct ps_icmp_value)) < 0 ||
            flow_rank_init(&l->flow_rank) < 0)
                return link_free(l);
        return l;
}

Link *link_free(Link *l) {
        if (!l)
                return NULL;
        safe_close(l->link_fd);
        safe_close(l->prog_fd);
        safe_close(l->flows_fd);
        safe_close(l->icmp_fd);
        safe_close(l->icmp4_fd);
        safe_close(l->stats_fd);
        safe_close(l->icmp_stats_fd);
        safe_close(l->meta_fd);
        bpf_map_sweeper_done(&l->flow_sweeper);
        bpf_map_sweeper_done(&l->icmp_sweeper);
        bpf_map_sweeper_done(&l->icmp4_sweeper);
        flow_rank_done(&l->flow_rank);
        free(l->name);
        free(l->pin_dir);
        free(l->object_path);
        free(l);
        return NULL;
}

static void unpin_all(const char *dir) {
        for (size_t i = 0; i < ELEMENTSOF(pin_names); i++) {
                _cleanup_free_ char *p = strjoin_path(dir, pin_names[i]);

                if (p)
                        (void) unlink(p);
        }
        (void) rmdir(dir);
}

void link_detach(Link *l) {
        /* Unpin the link first: once its last reference (our fd) closes, the kernel detaches. */
        unpin_all(l->pin_dir);
        l->link_fd = safe_close(l->link_fd);
}

/* Why pinning may fail, for the error message: only when the root is not on a bpffs is
 * mounting one the answer. */
static const char *bpffs_hint(const char *root) {
        _cleanup_free_ char *parent = strdup(root);
        struct statfs sfs;
        char *slash;

        if (!parent)
                return "";
        /* The root itself may not exist yet: what counts is the file system it lands on. */
        while (statfs(parent, &sfs) < 0 && (slash = strrchr(parent, '/')) && slash != parent)
                *slash = '\0';
        if (statfs(parent, &sfs) == 0 && sfs.f_type != BPF_FS_MAGIC)
                return " (it is not on a BPF file system: mount one with "
                       "'mount -t bpf bpf /sys/fs/bpf')";
        return "";
}

static int pin_fd(int fd, const char *dir, const char *name) {
        _cleanup_free_ char *p = strjoin_path(dir, name);

        if (!p)
                return -ENOMEM;
        if (bpf_obj_pin(fd, p) < 0)
                return -errno;
        return 0;
}

static int query_mode(int ifindex, uint32_t *ret) {
        LIBBPF_OPTS(bpf_xdp_query_opts, q);

        if (bpf_xdp_query(ifindex, 0, &q) < 0)
                return -errno;
        if (q.attach_mode == XDP_ATTACHED_DRV || q.attach_mode == XDP_ATTACHED_HW)
                *ret = PS_MODE_NATIVE;
        else if (q.attach_mode == XDP_ATTACHED_SKB)
                *ret = PS_MODE_GENERIC;
        else if (q.attach_mode == XDP_ATTACHED_MULTI)
                *ret = q.drv_prog_id ? PS_MODE_NATIVE : PS_MODE_GENERIC;
        else
                return -ENOENT;
        return 0;
}

static int link_fill_ids(Link *l) {
        struct bpf_link_info info = {};
        uint32_t len = sizeof info;

        if (bpf_obj_get_info_by_fd(l->link_fd, &info, &len) < 0)
                return -errno;
        l->prog_id = info.prog_id;
        if (info.type == BPF_LINK_TYPE_XDP && info.xdp.ifindex == 0)
                return -ENOLINK; /* the interface went away: the kernel detached it */
        if (info.type == BPF_LINK_TYPE_XDP)
                l->ifindex = (int) info.xdp.ifindex;
        return 0;
}

int link_attach(const LinkSetup *setup, const char *ifname, LinkMode mode, Link **ret, char **ret_error) {
        struct guard_bpf *skel = NULL;
        Link *l = NULL;
        struct ps_meta meta = {};
        uint32_t zero = 0, flags;
        struct stat st;
        int ifindex, r;

        assert(setup);
        assert(ifname);
        assert(ret);
        ifindex = (int) if_nametoindex(ifname);
        if (ifindex <= 0) {
                return error_setf(ret_error, -ENODEV, "no network interface '%s' exists", ifname);
        }

        l = link_new(setup, ifname);
        if (!l)
                return -ENOMEM;
        l->ifindex = ifindex;
        if (stat(l->pin_dir, &st) == 0) {
                (void) error_setf(ret_error, 0,
                                  "'%s' is already guarded (pins exist in %s)", ifname,
                                  l->pin_dir);
                r = -EEXIST;
                goto fail;
        }

        skel = guard_bpf__open();
        if (!skel) {
                r = -errno;
                (void) error_setf(ret_error, 0, "cannot open the XDP program: %s", strerror(-r));
                goto fail;
        }
        l->flow_table_size = setup->config->flow_table_size;
        l->icmp_table_size = setup->config->icmp_table_size;
        bpf_map__set_max_entries(skel->maps.flows, l->flow_table_size);
        bpf_map__set_max_entries(skel->maps.icmp_flows, l->icmp_table_size);
        bpf_map__set_max_entries(skel->maps.icmp4_flows, l->icmp_table_size);
        r = link_share_filter_maps(setup, skel);
        if (r < 0) {
                (void) error_setf(ret_error, 0, "cannot share the filter maps: %s", strerror(-r));
                goto fail;
        }
        r = link_share_ban_maps(setup, skel);
        if (r < 0) {
                (void) error_setf(ret_error, 0, "cannot share the ban maps: %s", strerror(-r));
                goto fail;
        }
        r = link_share_panic_maps(setup, skel);
        if (r < 0) {
                (void) error_setf(ret_error, 0, "cannot share the panic maps: %s", strerror(-r));
                goto fail;
        }
        r = guard_bpf__load(skel);
        if (r < 0) {
                (void) error_setf(ret_error, 0, "cannot load the XDP program: %s", strerror(-r));
                goto fail;
        }

        flags = mode == LINK_MODE_NATIVE ? XDP_FLAGS_DRV_MODE :
                mode == LINK_MODE_GENERIC ? XDP_FLAGS_SKB_MODE : 0;
        {
                LIBBPF_OPTS(bpf_link_create_opts, opts, .flags = flags);

                l->link_fd = bpf_link_create(bpf_program__fd(skel->progs.xdp_guard), ifindex,
                                             BPF_XDP, &opts);
        }
        if (l->link_fd < 0) {
                r = -errno;
                if (r == -EBUSY || r == -EEXIST) {
                        (void) error_setf(ret_error, 0,
                                          "another XDP program is attached to '%s'; detach it "
                                          "first (ip link set dev %s xdp off)", ifname, ifname);
                        r = -EBUSY; /* -EEXIST means "our pins exist" to the caller */
                }
                else if (mode == LINK_MODE_NATIVE && (r == -EOPNOTSUPP || r == -EINVAL))
                        (void) error_setf(ret_error, 0,
                                          "the driver of '%s' has no native XDP support; use "
                                          "mode 'generic' or 'auto'", ifname);
                else
                        (void) error_setf(ret_error, 0,
                                          "cannot attach to '%s': %s", ifname, strerror(-r));
                goto fail;
        }
        r = query_mode(ifindex, &l->mode);
        if (r < 0)
                l->mode = mode == LINK_MODE_GENERIC ? PS_MODE_GENERIC : PS_MODE_NATIVE;
        l->attached_since_usec = now_usec(CLOCK_REALTIME);

        meta = (struct ps_meta) {
                .abi_version = PS_ABI_VERSION,
                .mode = l->mode,
                .attached_since = l->attached_since_usec,
                .ifindex = (uint32_t) ifindex,
                .flow_table_size = l->flow_table_size,
                .icmp_table_size = l->icmp_table_size,
                .policy = setup->config->parse_policy,
                .build_id = program_build_id(),
        };
        if (bpf_map_update_elem(bpf_map__fd(skel->maps.meta), &zero, &meta, BPF_ANY) < 0) {
                r = -errno;
                (void) error_setf(ret_error, 0, "cannot write the meta map: %s", strerror(-r));
                goto fail;
        }

        l->prog_fd = dup(bpf_program__fd(skel->progs.xdp_guard));
        l->flows_fd = dup(bpf_map__fd(skel->maps.flows));
        l->icmp_fd = dup(bpf_map__fd(skel->maps.icmp_flows));
        l->icmp4_fd = dup(bpf_map__fd(skel->maps.icmp4_flows));
        l->stats_fd = dup(bpf_map__fd(skel->maps.stats));
        l->icmp_stats_fd = dup(bpf_map__fd(skel->maps.icmp_stats));
        l->meta_fd = dup(bpf_map__fd(skel->maps.meta));
        if (l->prog_fd < 0 || l->flows_fd < 0 || l->icmp_fd < 0 || l->icmp4_fd < 0 ||
            l->stats_fd < 0 || l->icmp_stats_fd < 0 || l->meta_fd < 0) {
                r = -errno;
                (void) error_setf(ret_error, 0, "cannot duplicate descriptors: %s", strerror(-r));
                goto fail;
        }
        guard_bpf__destroy(skel);
        skel = NULL;

        r = mkdir_p(l->pin_dir, 0700);
        if (r < 0) {
                (void) error_setf(ret_error, 0, "cannot create the pin directory %s: %s%s",
                                  l->pin_dir, strerror(-r), bpffs_hint(setup->bpffs_root));
                goto fail;
        }
        /* The maps first and the link last: a link pin is what marks a complete set. */
        if ((r = pin_fd(l->flows_fd, l->pin_dir, "flows")) < 0 ||
            (r = pin_fd(l->icmp_fd, l->pin_dir, "icmp_flows")) < 0 ||
            (r = pin_fd(l->icmp4_fd, l->pin_dir, "icmp4_flows")) < 0 ||
            (r = pin_fd(l->stats_fd, l->pin_dir, "stats")) < 0 ||
            (r = pin_fd(l->icmp_stats_fd, l->pin_dir, "icmp_stats")) < 0 ||
            (r = pin_fd(l->meta_fd, l->pin_dir, "meta")) < 0 ||
            (r = pin_fd(l->prog_fd, l->pin_dir, "prog")) < 0 ||
            (r = pin_fd(l->link_fd, l->pin_dir, "link")) < 0) {
                (void) error_setf(ret_error, 0,
                                  "cannot pin under %s: %s%s", l->pin_dir, strerror(-r),
                                  bpffs_hint(setup->bpffs_root));
                unpin_all(l->pin_dir);
                goto fail;
        }
        (void) link_fill_ids(l);
        link_measure_memory(l);
        *ret = l;
        return 0;

fail:
        guard_bpf__destroy(skel);
        link_free(l); /* closing the link fd detaches */
        return r;
}

/*
 * The pinned program comes from another build of the same ABI: load this build's program over
 * the very same maps and swap it into the link atomically (bpf_link_update), so that packets
 * never go unguarded and counters and flows continue.
 */
static int link_upgrade_program(Link *l, struct ps_meta *meta, char **ret_error) {
        struct guard_bpf *skel;
        _cleanup_free_ char *prog_pin = strjoin_path(l->pin_dir, "prog");
        uint32_t zero = 0;
        int r, new_fd;

        if (!prog_pin)
                return -ENOMEM;
        skel = guard_bpf__open();
        if (!skel)
                return -errno;
        bpf_map__set_max_entries(skel->maps.flows, l->flow_table_size);
        bpf_map__set_max_entries(skel->maps.icmp_flows, l->icmp_table_size);
        bpf_map__set_max_entries(skel->maps.icmp4_flows, l->icmp_table_size);
        if ((r = bpf_map__reuse_fd(skel->maps.flows, l->flows_fd)) < 0 ||
            (r = bpf_map__reuse_fd(skel->maps.icmp_flows, l->icmp_fd)) < 0 ||
            (r = bpf_map__reuse_fd(skel->maps.icmp4_flows, l->icmp4_fd)) < 0 ||
            (r = bpf_map__reuse_fd(skel->maps.stats, l->stats_fd)) < 0 ||
            (r = bpf_map__reuse_fd(skel->maps.icmp_stats, l->icmp_stats_fd)) < 0 ||
            (r = bpf_map__reuse_fd(skel->maps.meta, l->meta_fd)) < 0 ||
            (r = link_share_filter_maps(&l->setup, skel)) < 0 ||
            (r = link_share_ban_maps(&l->setup, skel)) < 0 ||
            (r = link_share_panic_maps(&l->setup, skel)) < 0 ||
            (r = guard_bpf__load(skel)) < 0) {
                (void) error_setf(ret_error, 0,
                                  "cannot load this build's program over the pinned maps of "
                                  "%s: %s", l->name, strerror(-r));
                goto finish;
        }
        new_fd = bpf_program__fd(skel->progs.xdp_guard);
        if (bpf_link_update(l->link_fd, new_fd, NULL) < 0) {
                r = -errno;
                (void) error_setf(ret_error, 0,
                                  "cannot swap the program of %s: %s", l->name, strerror(-r));
                goto finish;
        }
        (void) unlink(prog_pin);
        if (bpf_obj_pin(new_fd, prog_pin) < 0) {
                r = -errno;
                (void) error_setf(ret_error, 0,
                                  "swapped the program of %s but cannot pin it: %s", l->name,
                                  strerror(-r));
                goto finish;
        }
        safe_close(l->prog_fd);
        l->prog_fd = dup(new_fd);
        meta->build_id = program_build_id();
        (void) bpf_map_update_elem(l->meta_fd, &zero, meta, BPF_ANY);
        (void) link_fill_ids(l);
        r = 1;
finish:
        guard_bpf__destroy(skel);
        return r;
}

/* Whether the pinned program uses the panic maps of this daemon: they were made anew since
 * it was loaded (their pins removed), it would obey a flag nobody sets any more. */
static bool link_misses_panic_maps(const Link *l) {
        struct bpf_prog_info info = {};
        struct bpf_map_info map = {};
        uint32_t ids[64], len = sizeof info, map_len = sizeof map;

        if (!l->setup.panic || l->prog_fd < 0 ||
            bpf_obj_get_info_by_fd(l->setup.panic->conf_fd, &map, &map_len) < 0)
                return false;
        info.nr_map_ids = ELEMENTSOF(ids);
        info.map_ids = (uint64_t) (uintptr_t) ids;
        if (bpf_obj_get_info_by_fd(l->prog_fd, &info, &len) < 0)
                return false;
        for (uint32_t i = 0; i < MIN(info.nr_map_ids, (uint32_t) ELEMENTSOF(ids)); i++)
                if (ids[i] == map.id)
                        return false;
        return true;
}

static int open_pin(const char *dir, const char *name) {
        _cleanup_free_ char *p = strjoin_path(dir, name);
        int fd;

        if (!p)
                return -ENOMEM;
        fd = bpf_obj_get(p);
        return fd < 0 ? -errno : fd;
}

int link_adopt(const LinkSetup *setup, const char *ifname, Link **ret, char **ret_error) {
        Link *l = NULL;
        struct ps_meta meta = {};
        struct bpf_map_info info = {};
        uint32_t zero = 0, len = sizeof info;
        char name[IF_NAMESIZE] = "";
        int r;

        assert(setup);
        assert(ifname);
        assert(ret);
        l = link_new(setup, ifname);
        if (!l)
                return -ENOMEM;

        l->link_fd = open_pin(l->pin_dir, "link");
        if (l->link_fd < 0) {
                (void) error_setf(ret_error, 0, "no pinned link in %s: %s", l->pin_dir,
                                  strerror(-l->link_fd));
                /* The other pins are stale without it: reported as such, not as a failure. */
                r = -ESTALE;
                goto stale;
        }
        r = link_fill_ids(l);
        if (r == -ENOLINK) {
                (void) error_setf(ret_error, 0,
                                  "the interface of %s went away; removing the stale pins",
                                  l->pin_dir);
                goto stale;
        }
        if (r < 0) {
                (void) error_setf(ret_error, 0,
                                  "cannot query the pinned link in %s: %s", l->pin_dir,
                                  strerror(-r));
                goto fail;
        }
        if (!if_indextoname((unsigned) l->ifindex, name) || !streq(name, ifname)) {
                (void) error_setf(ret_error, 0,
                                  "the pins in %s belong to ifindex %d, now named '%s'; removing "
                                  "them", l->pin_dir, l->ifindex, name[0] ? name : "(none)");
                r = -ESTALE;
                goto stale;
        }

        l->flows_fd = open_pin(l->pin_dir, "flows");
        l->icmp_fd = open_pin(l->pin_dir, "icmp_flows");
        l->icmp4_fd = open_pin(l->pin_dir, "icmp4_flows");
        l->stats_fd = open_pin(l->pin_dir, "stats");
        l->icmp_stats_fd = open_pin(l->pin_dir, "icmp_stats");
        l->meta_fd = open_pin(l->pin_dir, "meta");
        /* From the pin, not by id: opening a program by id needs CAP_SYS_ADMIN. */
        l->prog_fd = open_pin(l->pin_dir, "prog");
        if (l->flows_fd < 0 || l->icmp_fd < 0 || l->stats_fd < 0 || l->meta_fd < 0) {
                (void) error_setf(ret_error, 0, "incomplete pins in %s", l->pin_dir);
                r = -ESTALE;
                goto stale;
        }
        /* The ABI first: pins of an older program lack icmp_stats or icmp4_flows, and that
         * is what the version says, not an incomplete set. */
        if (bpf_map_lookup_elem(l->meta_fd, &zero, &meta) < 0 ||
            meta.abi_version != PS_ABI_VERSION) {
                (void) error_setf(ret_error, 0,
                                  "the pins in %s were made by ABI version %u, this daemon "
                                  "speaks %u; removing them", l->pin_dir, meta.abi_version, PS_ABI_VERSION);
                r = -ESTALE;
                goto stale;
        }
        if (l->icmp_stats_fd < 0 || l->icmp4_fd < 0) {
                (void) error_setf(ret_error, 0, "incomplete pins in %s", l->pin_dir);
                r = -ESTALE;
                goto stale;
        }
        if (bpf_obj_get_info_by_fd(l->flows_fd, &info, &len) == 0)
                l->flow_table_size = info.max_entries;
        len = sizeof info;
        memset(&info, 0, sizeof info);
        if (bpf_obj_get_info_by_fd(l->icmp_fd, &info, &len) == 0)
                l->icmp_table_size = info.max_entries;
        l->mode = meta.mode;
        l->attached_since_usec = meta.attached_since;
        /* The program reads the policy for packets it cannot classify whole: this daemon's
         * configuration holds from now on. */
        if (meta.policy != setup->config->parse_policy) {
                meta.policy = setup->config->parse_policy;
                if (bpf_map_update_elem(l->meta_fd, &zero, &meta, BPF_ANY) < 0) {
                        r = -errno;
                        (void) error_setf(ret_error, 0, "cannot write the policy into the meta "
                                          "map of %s: %s", l->pin_dir, strerror(-r));
                        goto fail;
                }
        }
        if (meta.build_id != program_build_id() || link_misses_panic_maps(l)) {
                r = link_upgrade_program(l, &meta, ret_error);
                if (r < 0)
                        goto fail; /* the old program keeps running; pins untouched */
                l->upgraded = true;
        }
        link_measure_memory(l);
        *ret = l;
        return 0;

stale:
        if (r >= 0)
                r = -ESTALE;
        l->link_fd = safe_close(l->link_fd);
        unpin_all(l->pin_dir);
fail:
        link_free(l);
        return r;
}

int bpf_fd_memlock(int fd, uint64_t *ret) {
        _cleanup_free_ char *text = NULL;
        char path[64];
        const char *p;
        int r;

        assert(ret);
        snprintf(path, sizeof path, "/proc/self/fdinfo/%d", fd);
        r = read_file_full(path, 64 * 1024, &text, NULL);
        if (r < 0)
                return r;
        p = strstr(text, "\nmemlock:");
        if (!p)
                return -ENODATA;
        p += strlen("\nmemlock:");
        while (*p == ' ' || *p == '\t')
                p++;
        {
                _cleanup_free_ char *num = strndup(p, strcspn(p, "\n"));

                if (!num)
                        return -ENOMEM;
                return safe_atou64(num, ret);
        }
}

/* What the maps of this link hold in the kernel: the connection and both ICMP tables
 * (preallocated in full), the counters and the meta map. Read once: preallocated maps do not
 * grow. */
static void link_measure_memory(Link *l) {
        const int fds[] = { l->flows_fd, l->icmp_fd, l->icmp4_fd, l->stats_fd, l->icmp_stats_fd,
                            l->meta_fd };

        l->kernel_memory = 0;
        for (size_t i = 0; i < ELEMENTSOF(fds); i++) {
                uint64_t b;

                if (fds[i] >= 0 && bpf_fd_memlock(fds[i], &b) >= 0)
                        l->kernel_memory += b;
        }
}

void ps_stats_add(struct ps_stats *sum, const struct ps_stats *s) {
        uint64_t *a = (uint64_t *) sum;
        const uint64_t *b = (const uint64_t *) s;

        /* struct ps_stats is made of __u64 fields only (guard.h). */
        for (size_t i = 0; i < sizeof(struct ps_stats) / sizeof(uint64_t); i++)
                a[i] += b[i];
}

/* Adds one CPU's value of the stats map (struct ps_stats up to icmp, __u64 words only) or of
 * icmp_stats. */
static void words_add(uint64_t *sum, const uint64_t *v, size_t size) {
        for (size_t i = 0; i < size / sizeof(uint64_t); i++)
                sum[i] += v[i];
}

static void stats_add(void *sum, const void *cpu_value) {
        words_add(sum, cpu_value, PS_STATS_MAP_SIZE);
}

static void icmp_stats_add(void *sum, const void *cpu_value) {
        words_add(sum, cpu_value, sizeof(struct ps_icmp_stats));
}

int link_read_stats(Link *l, struct ps_stats *ret) {
        struct ps_stats sum = {};
        uint32_t zero = 0;
        int r;

        assert(l);
        assert(ret);
        r = bpf_map_sum_percpu(l->stats_fd, &zero, PS_STATS_MAP_SIZE, stats_add, &sum);
        if (r < 0)
                return r;
        r = bpf_map_sum_percpu(l->icmp_stats_fd, &zero, sizeof(struct ps_icmp_stats),
                               icmp_stats_add, &sum.icmp);
        if (r < 0)
                return r;
        *ret = sum;
        return 0;
}

int link_program_stats(Link *l, uint64_t *ret_run_time_ns, uint64_t *ret_run_count) {
        struct bpf_prog_info info = {};
        uint32_t len = sizeof info;

        assert(l);
        assert(ret_run_time_ns);
        assert(ret_run_count);
        if (l->prog_fd < 0 || bpf_obj_get_info_by_fd(l->prog_fd, &info, &len) < 0)
                return -errno ? -errno : -EBADF;
        *ret_run_time_ns = info.run_time_ns;
        *ret_run_count = info.run_cnt;
        return 0;
}

int link_poll(Link *l, uint64_t now_ns) {
        struct ps_stats s;
        int r;

        assert(l);
        r = link_fill_ids(l);
        if (r == -ENOLINK)
                return r;
        r = link_read_stats(l, &s);
        if (r < 0)
                return r;
        l->prev = l->stats;
        l->prev_time_ns = l->stats_time_ns;
        l->stats = s;
        l->stats_time_ns = now_ns;
        if (l->prev_time_ns > 0 && now_ns > l->prev_time_ns) {
                double dt = (double) (now_ns - l->prev_time_ns) / 1e9;

                l->pps = (double) (s.packets - l->prev.packets) / dt;
                l->bps = (double) (s.bytes - l->prev.bytes) * 8.0 / dt;
        }
        return 0;
}
