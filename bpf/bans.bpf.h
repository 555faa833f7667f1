/* SPDX-License-Identifier: GPL-2.0-only OR MIT */
/*
 * Bans and the auto-ban policies of guard.bpf.c (see guard.h, "Bans", for the ABI and
 * README.md for the reasoning and the approximations). Included once, by guard.bpf.c, after
 * its packet structures.
 *
 * Cost for a packet of a source that is not banned: one array lookup (ban_presence), one
 * hash lookup (ban_v4 or ban_v6), and the tries only when they hold entries. The policies
 * look at TCP SYN, FIN and RST segments, the first packet of a UDP flow and the payload of
 * segments to the HTTP ports; every other packet leaves after one array lookup (ban_config).
 */
#ifndef PACKETSCOPE_BANS_BPF_H
#define PACKETSCOPE_BANS_BPF_H

/* Shared by every link's program: the daemon creates and pins them in <bpffs-root>/:bans. */
struct {
        __uint(type, BPF_MAP_TYPE_HASH);
        __uint(max_entries, PS_BANS_V4_DEFAULT); /* the daemon's map sets the size */
        __uint(map_flags, BPF_F_NO_PREALLOC);
        __type(key, __u32);
        __type(value, struct ps_ban);
} ban_v4 SEC(".maps");

struct {
        __uint(type, BPF_MAP_TYPE_HASH);
        __uint(max_entries, PS_BANS_V6_DEFAULT);
        __uint(map_flags, BPF_F_NO_PREALLOC);
        __type(key, struct ps_ban6_key);
        __type(value, struct ps_ban);
} ban_v6 SEC(".maps");

struct {
        __uint(type, BPF_MAP_TYPE_LPM_TRIE);
        __uint(max_entries, PS_BANS_CIDR_MAX);
        __uint(map_flags, BPF_F_NO_PREALLOC);
        __type(key, struct ps_lpm4_key);
        __type(value, struct ps_ban);
} ban_cidr4 SEC(".maps");

struct {
        __uint(type, BPF_MAP_TYPE_LPM_TRIE);
        __uint(max_entries, PS_BANS_CIDR_MAX);
        __uint(map_flags, BPF_F_NO_PREALLOC);
        __type(key, struct ps_lpm6_key);
        __type(value, struct ps_ban);
} ban_cidr6 SEC(".maps");

struct {
        __uint(type, BPF_MAP_TYPE_LPM_TRIE);
        __uint(max_entries, PS_BANS_ALLOW_MAX);
        __uint(map_flags, BPF_F_NO_PREALLOC);
        __type(key, struct ps_lpm4_key);
        __type(value, struct ps_allow);
} ban_allow4 SEC(".maps");

struct {
        __uint(type, BPF_MAP_TYPE_LPM_TRIE);
        __uint(max_entries, PS_BANS_ALLOW_MAX);
        __uint(map_flags, BPF_F_NO_PREALLOC);
        __type(key, struct ps_lpm6_key);
        __type(value, struct ps_allow);
} ban_allow6 SEC(".maps");

struct {
        __uint(type, BPF_MAP_TYPE_ARRAY);
        __uint(max_entries, 1);
        __type(key, __u32);
        __type(value, struct ps_ban_presence);
} ban_presence SEC(".maps");

struct {
        __uint(type, BPF_MAP_TYPE_ARRAY);
        __uint(max_entries, 1);
        __type(key, __u32);
        __type(value, struct ps_ban_config);
} ban_config SEC(".maps");

struct {
        __uint(type, BPF_MAP_TYPE_LRU_HASH);
        __uint(max_entries, PS_BANS_OFFENDERS);
        __type(key, struct ps_ban_src_key);
        __type(value, struct ps_ban_offender);
} ban_offenders SEC(".maps");

struct {
        __uint(type, BPF_MAP_TYPE_LRU_HASH);
        __uint(max_entries, PS_BANS_SOURCES);
        __type(key, struct ps_ban_src_key);
        __type(value, struct ps_ban_src_state);
} ban_sources SEC(".maps");

struct {
        __uint(type, BPF_MAP_TYPE_HASH);
        __uint(max_entries, PS_URL_PATTERNS_MAX);
        __type(key, struct ps_url_key);
        __type(value, struct ps_url_pattern);
} ban_url_patterns SEC(".maps");

struct {
        __uint(type, BPF_MAP_TYPE_RINGBUF);
        __uint(max_entries, PS_BANS_EVENTS_RING);
} ban_events SEC(".maps");

/*
 * The request line bytes so far of a flow whose first segment ended before the URL policy
 * could decide (PS_FLOW_URL_PENDING), program-internal. PS_URL_LINE_MAX bytes cover the longest
 * method, its space and the longest pattern.
 */
#define PS_URL_LINE_MAX (PS_URL_METHOD_MAX + 1 + PS_URL_PATTERN_MAX)
#define PS_URL_BUF 128 /* a power of two above PS_URL_LINE_MAX: indices are masked with it */

struct url_pending {
        __u32 next_seq; /* the sequence number the continuation must carry */
        __u32 len;
        __u8 line[PS_URL_BUF];
};

struct {
        __uint(type, BPF_MAP_TYPE_LRU_HASH);
        __uint(max_entries, 16384);
        __type(key, struct ps_flow_key);
        __type(value, struct url_pending);
} url_pending SEC(".maps");

/* Per-CPU scratch of the URL matcher: too large for the stack. */
struct url_scratch {
        struct url_pending line; /* the request line being looked at */
        struct ps_url_key key;
};

struct {
        __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
        __uint(max_entries, 1);
        __type(key, __u32);
        __type(value, struct url_scratch);
} url_scratch SEC(".maps");

/* A ban found for a packet: drop it unless it is over. */
static __always_inline int ban_active(struct ps_ban *b, __u64 *now)
{
        if (!b->expires)
                return 1;
        if (!*now)
                *now = bpf_ktime_get_ns();
        return (__s64) (b->expires - *now) > 0;
}

static __always_inline void ban_hit(struct ps_ban *b, const struct pkt *p, __u64 *now)
{
        if (!*now)
                *now = bpf_ktime_get_ns();
        __sync_fetch_and_add(&b->packets, 1);
        __sync_fetch_and_add(&b->bytes, p->len);
        b->last_hit = *now;
}

/* The longest active CIDR ban covering the source: a prefix that is over is stepped over to
 * the next shorter one that covers it. */
static __always_inline struct ps_ban *cidr_lookup(const struct pkt *p, __u64 *now)
{
        struct ps_lpm6_key k6;
        struct ps_lpm4_key k4;
        struct ps_ban *b;
        int v4 = p->m.family == PS_FAMILY_IPV4;

        k4.prefixlen = 32;
        k4.addr = p->m.src[0];
        k6.prefixlen = 128;
        __builtin_memcpy(k6.addr, p->m.src, sizeof(k6.addr));
#pragma unroll
        for (int i = 0; i < PS_BAN_LPM_RETRIES; i++) {
                b = v4 ? bpf_map_lookup_elem(&ban_cidr4, &k4) :
                         bpf_map_lookup_elem(&ban_cidr6, &k6);
                if (!b)
                        return NULL;
                if (ban_active(b, now))
                        return b;
                if (b->prefixlen == 0)
                        return NULL;
                /* An LPM key's bits past its prefix are ignored: only the length changes. */
                k4.prefixlen = b->prefixlen - 1;
                k6.prefixlen = b->prefixlen - 1;
        }
        return NULL;
}

/* Whether the allowlist covers the source. */
static __always_inline int allowlisted(const struct pkt *p, const struct ps_ban_presence *pr)
{
        struct ps_allow *a;

        if (p->m.family == PS_FAMILY_IPV4) {
                struct ps_lpm4_key k = { .prefixlen = 32, .addr = p->m.src[0] };

                if (!pr->allow4)
                        return 0;
                a = bpf_map_lookup_elem(&ban_allow4, &k);
        } else {
                struct ps_lpm6_key k = { .prefixlen = 128 };

                if (!pr->allow6)
                        return 0;
                __builtin_memcpy(k.addr, p->m.src, sizeof(k.addr));
                a = bpf_map_lookup_elem(&ban_allow6, &k);
        }
        if (!a)
                return 0;
        __sync_fetch_and_add(&a->hits, 1);
        return 1;
}

/*
 * The ban verdict for the packet's source: 1 to drop it (a ban covers it), 0 to go on; sets
 * p->allowlisted. The exact ban is looked up first: it is the longest prefix there is.
 */
static __always_inline int ban_check(struct pkt *p)
{
        __u32 zero = 0;
        struct ps_ban_presence *pr = bpf_map_lookup_elem(&ban_presence, &zero);
        struct ps_ban *b;
        __u64 now = 0;
        int cidr;

        if (!pr)
                return 0;
        if (allowlisted(p, pr)) {
                p->allowlisted = 1;
                p->st->ban_allowlisted++;
                return 0;
        }
        if (p->m.family == PS_FAMILY_IPV4) {
                b = bpf_map_lookup_elem(&ban_v4, &p->m.src[0]);
                cidr = pr->cidr4;
        } else {
                b = bpf_map_lookup_elem(&ban_v6, p->m.src);
                cidr = pr->cidr6;
        }
        if (b && !ban_active(b, &now)) {
                p->st->ban_expired_seen++;
                b = NULL;
        }
        if (!b && cidr)
                b = cidr_lookup(p, &now);
        if (!b)
                return 0;
        ban_hit(b, p, &now);
        return 1;
}

/* ---- Auto-ban ---- */

static __always_inline void src_key_of(const struct pkt *p, __u8 prefixlen,
                                       struct ps_ban_src_key *k)
{
        __builtin_memset(k, 0, sizeof(*k));
        k->family = p->m.family;
        k->prefixlen = prefixlen;
        if (p->m.family == PS_FAMILY_IPV4) {
                if (prefixlen > 32 || prefixlen == 0)
                        k->prefixlen = 32;
                k->addr[0] = p->m.src[0];
                if (k->prefixlen < 32)
                        k->addr[0] &= bpf_htonl(~(0xffffffffu >> k->prefixlen));
                return;
        }
        if (prefixlen > 128 || prefixlen == 0)
                k->prefixlen = 128;
#pragma unroll
        for (int i = 0; i < 4; i++) {
                int bits = (int) k->prefixlen - i * 32;

                if (bits >= 32)
                        k->addr[i] = p->m.src[i];
                else if (bits > 0)
                        k->addr[i] = p->m.src[i] & bpf_htonl(~(0xffffffffu >> bits));
        }
}

/* The policy's prefix for this packet's family. */
static __always_inline __u8 policy_prefix(const struct pkt *p, const struct ps_ban_policy_conf *pc)
{
        return p->m.family == PS_FAMILY_IPV4 ? pc->prefix4 : pc->prefix6;
}

/* The per-source state of the source cut to `prefixlen`, created on first sight. */
static __always_inline struct ps_ban_src_state *src_state(struct pkt *p, __u8 prefixlen)
{
        struct ps_ban_src_key k;
        struct ps_ban_src_state *s, init = {};

        src_key_of(p, prefixlen, &k);
        s = bpf_map_lookup_elem(&ban_sources, &k);
        if (s)
                return s;
        bpf_map_update_elem(&ban_sources, &k, &init, BPF_NOEXIST);
        s = bpf_map_lookup_elem(&ban_sources, &k);
        if (!s)
                p->st->ban_sources_fail++;
        return s;
}

#define PS_BAN_SHADOW_QUIET_NS (60ULL * 1000000000ULL)
#define PS_BAN_MAX_NS (1ULL << 62) /* "forever" that still adds to a clock */

/* How long the n-th ban of a source lasts. */
static __always_inline __u64 ban_length(const struct ps_ban_policy_conf *pc, __u32 offenses)
{
        __u64 d = pc->ban_ns;

        if (pc->repeat_factor > 1) {
                for (__u32 i = 1; i < offenses && i < 64; i++) {
                        if (d > PS_BAN_MAX_NS / pc->repeat_factor) {
                                d = PS_BAN_MAX_NS;
                                break;
                        }
                        d *= pc->repeat_factor;
                        if (pc->repeat_max_ns && d >= pc->repeat_max_ns)
                                break;
                }
        }
        if (pc->repeat_max_ns && d > pc->repeat_max_ns)
                d = pc->repeat_max_ns;
        return d;
}

static __always_inline void ban_event(const struct pkt *p, const struct ps_ban_src_key *k,
                                      __u32 policy, __u32 kind, __u64 now, __u64 expires,
                                      __u32 offenses, __u32 value)
{
        struct ps_ban_event *e = bpf_ringbuf_reserve(&ban_events, sizeof(*e), 0);

        if (!e) {
                p->st->ban_events_lost++;
                return;
        }
        e->time = now;
        e->expires = expires;
        __builtin_memcpy(e->addr, k->addr, sizeof(e->addr));
        e->family = k->family;
        e->prefixlen = k->prefixlen;
        e->policy = policy;
        e->kind = kind;
        e->offenses = offenses;
        e->value = value;
        e->ifindex = p->ctx->ingress_ifindex;
        e->dport = p->m.dport;
        e->pad = 0;
        e->pad2 = 0;
        bpf_ringbuf_submit(e, 0);
}

/* Inserts the ban, or overwrites one that is over. Returns the event kind. */
static __always_inline __u32 ban_insert(struct pkt *p, const struct ps_ban_src_key *k,
                                        const struct ps_ban *v)
{
        __u32 zero = 0;
        int full = k->family == PS_FAMILY_IPV4 ? k->prefixlen == 32 : k->prefixlen == 128;
        void *map;
        long r;

        if (full) {
                map = k->family == PS_FAMILY_IPV4 ? (void *) &ban_v4 : (void *) &ban_v6;
                r = bpf_map_update_elem(map, k->addr, v, BPF_NOEXIST);
                if (r == -17 /* EEXIST: over, or it would not have come this far */)
                        r = bpf_map_update_elem(map, k->addr, v, BPF_EXIST) ? r : 1;
        } else {
                struct ps_lpm6_key k6 = { .prefixlen = k->prefixlen };
                struct ps_lpm4_key k4 = { .prefixlen = k->prefixlen, .addr = k->addr[0] };
                struct ps_ban_presence *pr = bpf_map_lookup_elem(&ban_presence, &zero);

                __builtin_memcpy(k6.addr, k->addr, sizeof(k6.addr));
                /* A trie entry is overwritten in place (no NOEXIST step: a shorter active
                 * prefix covering the source would have dropped it already). */
                r = k->family == PS_FAMILY_IPV4 ?
                            bpf_map_update_elem(&ban_cidr4, &k4, v, BPF_ANY) :
                            bpf_map_update_elem(&ban_cidr6, &k6, v, BPF_ANY);
                if (r == 0 && pr) {
                        if (k->family == PS_FAMILY_IPV4)
                                __sync_fetch_and_add(&pr->cidr4, 1);
                        else
                                __sync_fetch_and_add(&pr->cidr6, 1);
                }
        }
        if (r < 0) {
                p->st->bans_full++;
                return PS_BAN_EVENT_FULL;
        }
        return r == 1 ? PS_BAN_EVENT_EXTENDED : PS_BAN_EVENT_BANNED;
}

/*
 * A policy's threshold was crossed by this packet. Enforce: ban the source (cut to the
 * policy's prefix), remember the offense, report it; returns 1 to drop the packet. Count:
 * report once per quiet period; returns 0. `s` is the source's state (for the quiet period),
 * may be NULL.
 */
static __always_inline int policy_fire(struct pkt *p, const struct ps_ban_policy_conf *pc,
                                       __u32 policy, struct ps_ban_src_state *s, __u32 value)
{
        struct ps_ban_src_key k;
        struct ps_ban_offender *o, onew = {};
        struct ps_ban v = {};
        __u64 now = bpf_ktime_get_ns();
        __u32 kind, offenses = 1;

        src_key_of(p, policy_prefix(p, pc), &k);
        o = bpf_map_lookup_elem(&ban_offenders, &k);
        if (o)
                offenses = o->offenses + 1;
        if (pc->mode != PS_BAN_MODE_ENFORCE) {
                if (s && policy < _PS_BAN_POLICY_MAX) {
                        if ((__s64) (s->shadow_until[policy] - now) > 0)
                                return 0;
                        s->shadow_until[policy] =
                                now + (pc->ban_ns ? pc->ban_ns : PS_BAN_SHADOW_QUIET_NS);
                }
                if (policy < _PS_BAN_POLICY_MAX)
                        p->st->policy_shadow[policy]++;
                ban_event(p, &k, policy, PS_BAN_EVENT_SHADOW, now,
                          pc->ban_ns ? now + ban_length(pc, offenses) : 0, offenses, value);
                return 0;
        }
        v.created = now;
        v.expires = pc->ban_ns ? now + ban_length(pc, offenses) : 0;
        v.offenses = offenses;
        v.origin = PS_BAN_ORIGIN_AUTO;
        v.policy = policy;
        v.prefixlen = k.prefixlen;
        v.family = k.family;
        kind = ban_insert(p, &k, &v);
        if (kind == PS_BAN_EVENT_FULL) {
                /* Reported once per quiet period, not for every packet while full. */
                if (s && policy < _PS_BAN_POLICY_MAX) {
                        if ((__s64) (s->shadow_until[policy] - now) > 0)
                                return 0;
                        s->shadow_until[policy] = now + PS_BAN_SHADOW_QUIET_NS;
                }
                ban_event(p, &k, policy, kind, now, v.expires, offenses, value);
                return 0;
        }
        onew.last_ban = now;
        onew.offenses = offenses;
        bpf_map_update_elem(&ban_offenders, &k, &onew, BPF_ANY);
        if (policy < _PS_BAN_POLICY_MAX)
                p->st->policy_triggers[policy]++;
        ban_event(p, &k, policy, kind, now, v.expires, offenses, value);
        return 1;
}

#endif
