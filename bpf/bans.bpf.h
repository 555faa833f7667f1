/* SPDX-License-Identifier: GPL-2.0-only OR MIT */
/*
 * Bans and the auto-ban policies of guard.bpf.c (see guard.h, "Bans", for the ABI and
 * README.md for the reasoning and the approximations). Included once, by guard.bpf.c, after
 * its packet structures.
 *
 * Cost for a packet of a source that is not banned: two array lookups (ban_presence), and the
 * exact hash and the tries only when they may hold entries. The policies
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
        __uint(max_entries, 2); /* PS_BAN_PRESENCE_DAEMON, PS_BAN_PRESENCE_KERNEL */
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
 * could decide, program-internal. PS_URL_LINE_MAX bytes cover the longest
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

/* A ban found for a packet: drop it unless it is over. */
static __always_inline int ban_active(struct ps_ban *b, __u64 *now)
{
        if (!b->expires)
                return 1;
        if (!*now)
                *now = bpf_ktime_get_ns();
        return (__s64) (b->expires - *now) > 0;
}

/* What the ban check and the policies need of a packet, written once per packet into the
 * per-CPU ban_scratch: the global functions below read it there, which keeps the rest of the
 * program's stack and verification as they were. */
struct ban_args {
        __u32 src[4];
        __u32 dst[4];
        __u64 len;          /* frame length */
        __u64 now;          /* coarse CLOCK_MONOTONIC ns */
        __u32 seq;          /* TCP */
        __u32 payload_off;  /* TCP */
        __u32 payload_len;  /* TCP */
        __u16 sport;
        __u16 dport;
        __u8 family;
        __u8 proto;
        __u8 tcp_flags;
        __u8 allowlisted;   /* out of ps_ban_check() */
        __u32 ifindex;      /* the packet's ingress, for ban events */
};

/* What crossed a threshold, for ps_policy_fire(). */
struct fire_args {
        __u32 src[4];
        __u8 family;
        __u8 policy; /* enum ps_ban_policy */
        __u16 dport;
        __u32 value;
};

/* Scratch of ps_policy_fire(). */
struct fire_work {
        struct ps_ban ban;
        struct ps_ban_src_key key;
        struct ps_lpm6_key k6;
        struct ps_ban_offender off;
        __u32 kind;
        __u32 pad;
};

/* The arguments of the global functions below: in a per-CPU map rather than on a stack
 * that the rest of the program fills to its limit. */
struct ban_scratch {
        struct ban_args check;
        struct ps_lpm4_key k4;    /* trie keys, off the stack */
        struct ps_lpm6_key k6;
        struct ps_flow_key flow;  /* the packet's flow */
        struct ps_ban_src_key skey;
        struct ps_ban_src_state sinit;
        struct fire_args fire;    /* what ps_policy_fire() is to ban */
        struct ps_match m;        /* a dropped packet's, for its drop sample */
        struct fire_work work;
};

struct {
        __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
        __uint(max_entries, 1);
        __type(key, __u32);
        __type(value, struct ban_scratch);
} ban_scratch SEC(".maps");

/* The longest active CIDR ban covering the source: a prefix whose ban is over is stepped over
 * to the next shorter one that covers the source. */
static __always_inline struct ps_ban *cidr_lookup(struct ban_scratch *sc, __u64 *now)
{
        const struct ban_args *a = &sc->check;
        struct ps_ban *b;
        int v4 = a->family == PS_FAMILY_IPV4;

        sc->k4.prefixlen = 32;
        sc->k4.addr = a->src[0];
        sc->k6.prefixlen = 128;
        __builtin_memcpy(sc->k6.addr, a->src, sizeof(sc->k6.addr));
        for (int i = 0; i < PS_BAN_LPM_RETRIES; i++) {
                if (v4) {
                        b = bpf_map_lookup_elem(&ban_cidr4, &sc->k4);
                        ps_own_call_site(b);
                } else
                        b = bpf_map_lookup_elem(&ban_cidr6, &sc->k6);
                if (!b)
                        return NULL;
                if (ban_active(b, now))
                        return b;
                if (b->prefixlen == 0)
                        return NULL;
                /* An LPM key's bits past its prefix are ignored: only the length changes. */
                sc->k4.prefixlen = b->prefixlen - 1;
                sc->k6.prefixlen = b->prefixlen - 1;
        }
        return NULL;
}

/* Whether the allowlist covers the source. */
static __always_inline int allowlisted(struct ban_scratch *sc, const struct ps_ban_presence *pr)
{
        const struct ban_args *a = &sc->check;
        struct ps_allow *al;

        if (a->family == PS_FAMILY_IPV4) {
                if (!pr->allow4)
                        return 0;
                sc->k4.prefixlen = 32;
                sc->k4.addr = a->src[0];
                al = bpf_map_lookup_elem(&ban_allow4, &sc->k4);
        } else {
                if (!pr->allow6)
                        return 0;
                sc->k6.prefixlen = 128;
                __builtin_memcpy(sc->k6.addr, a->src, sizeof(sc->k6.addr));
                al = bpf_map_lookup_elem(&ban_allow6, &sc->k6);
        }
        if (!al)
                return 0;
        __sync_fetch_and_add(&al->hits, 1);
        return 1;
}

/* Whether a ban table may hold entries (guard.h, struct ps_ban_presence): the daemon counted
 * it non-empty, or the program inserted into it since the daemon last counted. */
static __always_inline int table_present(__u32 daemon, __u32 kernel, __u32 kernel_seen)
{
        return daemon || kernel != kernel_seen;
}

/*
 * The ban verdict for a source: 1 to drop (a ban covers it), 0 to go on; a->allowlisted set
 * when the allowlist covers it. The exact ban is looked up first: it is the longest prefix
 * there is. A global function: verified once, on its own.
 */
__noinline int ps_ban_check(void)
{
        __u32 zero = 0, one = PS_BAN_PRESENCE_KERNEL;
        struct ban_scratch *sc = bpf_map_lookup_elem(&ban_scratch, &zero);
        struct ps_ban_presence *pr = bpf_map_lookup_elem(&ban_presence, &zero);
        struct ps_ban_presence *pk = bpf_map_lookup_elem(&ban_presence, &one);
        struct ps_stats *st = bpf_map_lookup_elem(&stats, &zero);
        struct ban_args *a;
        struct ps_ban *b = NULL;
        __u64 now = 0;
        int cidr;

        if (!sc || !pr || !pk || !st)
                return 0;
        a = &sc->check;
        a->allowlisted = 0;
        if (allowlisted(sc, pr)) {
                a->allowlisted = 1;
                st->ban_allowlisted++;
                return 0;
        }
        if (a->family == PS_FAMILY_IPV4) {
                if (table_present(pr->exact4, pk->exact4, pr->kernel_exact4))
                        b = bpf_map_lookup_elem(&ban_v4, &a->src[0]);
                cidr = table_present(pr->cidr4, pk->cidr4, pr->kernel_cidr4);
        } else {
                if (table_present(pr->exact6, pk->exact6, pr->kernel_exact6))
                        b = bpf_map_lookup_elem(&ban_v6, a->src);
                cidr = table_present(pr->cidr6, pk->cidr6, pr->kernel_cidr6);
        }
        if (b && !ban_active(b, &now)) {
                st->ban_expired_seen++;
                b = NULL;
        }
        if (!b && cidr)
                b = cidr_lookup(sc, &now);
        if (!b)
                return 0;
        if (!now)
                now = bpf_ktime_get_ns();
        __sync_fetch_and_add(&b->packets, 1);
        __sync_fetch_and_add(&b->bytes, a->len);
        b->last_hit = now;
        return 1;
}

/*
 * Whether any table of the packet's family may hold an entry, from both ban_presence entries
 * (the same test as ps_ban_check()'s): the usual answer, no, costs two array reads here, in
 * the caller, and spares the packet the call and the lookups in it. Without an entry
 * (never, for an array of two) the answer is yes: the gate fails closed.
 */
static __always_inline int ban_tables_present(__u8 family)
{
        __u32 zero = 0, one = PS_BAN_PRESENCE_KERNEL;
        struct ps_ban_presence *pr = bpf_map_lookup_elem(&ban_presence, &zero);
        struct ps_ban_presence *pk = bpf_map_lookup_elem(&ban_presence, &one);

        if (!pr || !pk)
                return 1;
        if (family == PS_FAMILY_IPV4)
                return pr->allow4 || table_present(pr->exact4, pk->exact4, pr->kernel_exact4) ||
                       table_present(pr->cidr4, pk->cidr4, pr->kernel_cidr4);
        return pr->allow6 || table_present(pr->exact6, pk->exact6, pr->kernel_exact6) ||
               table_present(pr->cidr6, pk->cidr6, pr->kernel_cidr6);
}

/* Fills in the packet's ban_args (ban_scratch's check), which ps_ban_check() and the auto-ban
 * policies read; 0 without the scratch entry (never, for an array of one). */
static __always_inline int ban_args_fill(struct pkt *p, const struct tcp_seg *t, __u64 now)
{
        __u32 zero = 0;
        struct ban_scratch *sc = bpf_map_lookup_elem(&ban_scratch, &zero);
        struct ban_args *a;

        if (!sc)
                return 0;
        a = &sc->check;
        __builtin_memcpy(a->src, p->m.src, sizeof(a->src));
        __builtin_memcpy(a->dst, p->m.dst, sizeof(a->dst));
        a->len = p->len;
        a->now = now;
        a->seq = t->seq;
        a->payload_off = t->payload_off;
        a->payload_len = t->payload_len;
        a->sport = p->m.sport;
        a->dport = p->m.dport;
        a->family = p->m.family;
        a->proto = p->m.proto;
        a->tcp_flags = t->flags;
        a->allowlisted = 0;
        a->ifindex = p->ctx->ingress_ifindex;
        return 1;
}

/*
 * 1: a ban covers the source, drop it. Only while a ban or allowlist table of the packet's
 * family may hold an entry are the packet's ban_args filled in (*filled set) and
 * ps_ban_check() called; the policies fill them in themselves otherwise (ban_args_fill()), so
 * a packet that neither meets a table nor goes to the policies, most of them, copies nothing.
 */
static __always_inline int ban_check(struct pkt *p, const struct tcp_seg *t, __u64 now,
                                     int *filled)
{
        *filled = 0;
        if (!ban_tables_present(p->m.family) || !ban_args_fill(p, t, now))
                return 0;
        *filled = 1;
        return ps_ban_check();
}

/* ---- Auto-ban ---- */

/* The source address cut to prefixlen (0 or too long: the address itself). */
static __always_inline void src_key_of(__u8 family, const __u32 *src, __u8 prefixlen,
                                       struct ps_ban_src_key *k)
{
        __builtin_memset(k, 0, sizeof(*k));
        k->family = family;
        k->prefixlen = prefixlen;
        if (family == PS_FAMILY_IPV4) {
                if (prefixlen > 32 || prefixlen == 0)
                        k->prefixlen = 32;
                k->addr[0] = src[0];
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
                        k->addr[i] = src[i];
                else if (bits > 0)
                        k->addr[i] = src[i] & bpf_htonl(~(0xffffffffu >> bits));
        }
}

/* The policy's prefix for a family. */
static __always_inline __u8 policy_prefix(__u8 family, const struct ps_ban_policy_conf *pc)
{
        return family == PS_FAMILY_IPV4 ? pc->prefix4 : pc->prefix6;
}

/* The per-source state of the source cut to `prefixlen`, created on first sight; k and init
 * are scratch space (off the stack). */
static __always_inline struct ps_ban_src_state *src_state(__u8 family, const __u32 *src,
                                                          __u8 prefixlen, struct ps_stats *st,
                                                          struct ps_ban_src_key *k,
                                                          struct ps_ban_src_state *init)
{
        struct ps_ban_src_state *s;

        src_key_of(family, src, prefixlen, k);
        s = bpf_map_lookup_elem(&ban_sources, k);
        if (s)
                return s;
        __builtin_memset(init, 0, sizeof(*init));
        bpf_map_update_elem(&ban_sources, k, init, BPF_NOEXIST);
        s = bpf_map_lookup_elem(&ban_sources, k);
        if (!s)
                st->ban_sources_fail++;
        return s;
}

#define PS_FIRE_ENFORCE 1
#define PS_FIRE_REPORT 2
#define PS_BAN_SHADOW_QUIET_NS (60ULL * 1000000000ULL)
#define PS_BAN_MAX_NS (1ULL << 62) /* "until unbanned" that still adds to a clock */

/* a * b, or cap when that is more than cap. */
static __always_inline __u64 mul_capped(__u64 a, __u64 b, __u64 cap)
{
        if (b && a > cap / b)
                return cap;
        a *= b;
        return a > cap ? cap : a;
}

/* How long the n-th ban of a source lasts: ban_ns times repeat_factor^(n-1), at most
 * repeat_max_ns (or PS_BAN_MAX_NS). The power by squaring, six fixed steps for n - 1 < 64:
 * a loop over n would have the verifier walk every count. */
static __always_inline __u64 ban_length(const struct ps_ban_policy_conf *pc, __u32 offenses)
{
        __u64 max = pc->repeat_max_ns ? pc->repeat_max_ns : PS_BAN_MAX_NS;
        __u64 base = pc->repeat_factor, mult = 1;
        __u32 k = offenses > 1 ? offenses - 1 : 0;

        if (k > 63)
                k = 63;
        if (base > 1) {
#pragma unroll
                for (int bit = 0; bit < 6; bit++) {
                        if (k & (1u << bit))
                                mult = mul_capped(mult, base, max);
                        base = mul_capped(base, base, max);
                }
        }
        return mul_capped(pc->ban_ns, mult, max);
}

/*
 * Inserts the ban w->ban for w->key, or overwrites one that is over. Returns the event kind.
 * The program's count in ban_presence goes up after the insert (guard.h): from then on every
 * packet looks the table up, whatever the daemon last counted.
 */
static __always_inline __u32 ban_insert(struct ps_stats *st, struct fire_work *w)
{
        __u32 one = PS_BAN_PRESENCE_KERNEL;
        struct ps_ban_presence *pk = bpf_map_lookup_elem(&ban_presence, &one);
        struct ps_ban_src_key *k = &w->key;
        __u32 *count = NULL;
        long r;

        if (k->family == PS_FAMILY_IPV4 && k->prefixlen == 32) {
                r = bpf_map_update_elem(&ban_v4, &k->addr[0], &w->ban, BPF_NOEXIST);
                /* It exists and is over, or the packet would not have come this far. */
                if (r == -17 /* EEXIST */)
                        r = bpf_map_update_elem(&ban_v4, &k->addr[0], &w->ban, BPF_EXIST) ? r : 1;
                if (pk)
                        count = &pk->exact4;
        } else if (k->family == PS_FAMILY_IPV6 && k->prefixlen == 128) {
                r = bpf_map_update_elem(&ban_v6, k->addr, &w->ban, BPF_NOEXIST);
                if (r == -17)
                        r = bpf_map_update_elem(&ban_v6, k->addr, &w->ban, BPF_EXIST) ? r : 1;
                if (pk)
                        count = &pk->exact6;
        } else {
                w->k6.prefixlen = k->prefixlen;
                __builtin_memcpy(w->k6.addr, k->addr, sizeof(w->k6.addr));
                /* struct ps_lpm4_key is the first 8 bytes of the IPv6 one. */
                r = bpf_map_update_elem(k->family == PS_FAMILY_IPV4 ? (void *) &ban_cidr4 :
                                                                      (void *) &ban_cidr6,
                                        &w->k6, &w->ban, BPF_ANY);
                if (pk)
                        count = k->family == PS_FAMILY_IPV4 ? &pk->cidr4 : &pk->cidr6;
        }
        if (r >= 0 && count)
                __sync_fetch_and_add(count, 1);
        if (r < 0) {
                st->bans_full++;
                return PS_BAN_EVENT_FULL;
        }
        return r == 1 ? PS_BAN_EVENT_EXTENDED : PS_BAN_EVENT_BANNED;
}

/* Whether a report of the policy for the source in work.key is due: at most one per
 * `period` per source. The URL policy keeps no state of its own for a source: it is made
 * here. A source whose state cannot be had (the LRU is being flooded) is reported. */
static __always_inline int report_due(struct ban_scratch *scr, __u32 policy, __u64 period)
{
        struct fire_work *w = &scr->work;
        struct ps_ban_src_state *s = bpf_map_lookup_elem(&ban_sources, &w->key);
        __u64 *until;

        if (!s) {
                __builtin_memset(&scr->sinit, 0, sizeof(scr->sinit));
                bpf_map_update_elem(&ban_sources, &w->key, &scr->sinit, BPF_NOEXIST);
                s = bpf_map_lookup_elem(&ban_sources, &w->key);
                if (!s)
                        return 1;
        }
        until = &s->shadow_until[policy & 3];
        if ((__s64) (*until - w->ban.created) > 0)
                return 0;
        *until = w->ban.created + period;
        return 1;
}

/*
 * A policy's threshold was crossed (ban_scratch.fire): the ban it makes, in
 * ban_scratch.work, with the offense count and the length that repeat offenders get.
 * Returns PS_FIRE_ENFORCE when the ban is to be inserted (ps_policy_enforce()),
 * PS_FIRE_REPORT when it is only to be reported (count mode, and due), else 0.
 * ps_policy_fire(), ps_policy_enforce() and ps_ban_report() are three global functions,
 * each called by the program itself, because one doing all of it needs more stack than the
 * program leaves a callee.
 */
__noinline int ps_policy_fire(void)
{
        __u32 zero = 0;
        struct ban_scratch *scr = bpf_map_lookup_elem(&ban_scratch, &zero);
        struct ps_ban_config *c = bpf_map_lookup_elem(&ban_config, &zero);
        struct ps_ban_policy_conf *pc;
        struct ps_ban_offender *o;
        struct fire_work *w;
        __u32 policy;

        if (!scr || !c)
                return 0;
        policy = scr->fire.policy;
        if (policy >= _PS_BAN_POLICY_MAX)
                return 0;
        w = &scr->work;
        pc = &c->policy[policy];
        __builtin_memset(&w->ban, 0, sizeof(w->ban));
        w->kind = 0;
        w->ban.created = bpf_ktime_get_ns();
        src_key_of(scr->fire.family, scr->fire.src, policy_prefix(scr->fire.family, pc),
                   &w->key);
        o = bpf_map_lookup_elem(&ban_offenders, &w->key);
        w->ban.offenses = o ? o->offenses + 1 : 1;
        w->ban.expires = pc->ban_ns ? w->ban.created + ban_length(pc, w->ban.offenses) : 0;
        w->ban.origin = PS_BAN_ORIGIN_AUTO;
        w->ban.policy = policy;
        w->ban.prefixlen = w->key.prefixlen;
        w->ban.family = w->key.family;
        if (pc->mode == PS_BAN_MODE_ENFORCE)
                return PS_FIRE_ENFORCE;
        /* Count (shadow): reported at most once per ban length (or quiet period). */
        if (!report_due(scr, policy, pc->ban_ns ? pc->ban_ns : PS_BAN_SHADOW_QUIET_NS))
                return 0;
        w->kind = PS_BAN_EVENT_SHADOW;
        return PS_FIRE_REPORT;
}

/*
 * Enforces the ban ps_policy_fire() made: inserts it, remembers the offense. Returns 1 when
 * the source is banned (drop the packet), 0 when the table is full; work.kind is the event
 * to report (0: none, a full table is reported once per quiet period).
 */
__noinline int ps_policy_enforce(void)
{
        __u32 zero = 0;
        struct ban_scratch *scr = bpf_map_lookup_elem(&ban_scratch, &zero);
        struct ps_stats *st = bpf_map_lookup_elem(&stats, &zero);
        struct fire_work *w;
        __u32 policy;

        if (!scr || !st)
                return 0;
        w = &scr->work;
        policy = scr->fire.policy & 3;
        w->kind = ban_insert(st, w);
        if (w->kind == PS_BAN_EVENT_FULL) {
                if (!report_due(scr, policy, PS_BAN_SHADOW_QUIET_NS))
                        w->kind = 0;
                return 0;
        }
        w->off.last_ban = w->ban.created;
        w->off.offenses = w->ban.offenses;
        w->off.pad = 0;
        bpf_map_update_elem(&ban_offenders, &w->key, &w->off, BPF_ANY);
        st->policy_triggers[policy]++;
        return 1;
}

/* Reports ban_scratch.work's ban (work.kind) in ban_events. The packet that crossed a
 * threshold is reported by this event only, not by drop_events too. */
__noinline int ps_ban_report(void)
{
        __u32 zero = 0;
        struct ban_scratch *scr = bpf_map_lookup_elem(&ban_scratch, &zero);
        struct ps_stats *st = bpf_map_lookup_elem(&stats, &zero);
        struct ps_ban_event *e;
        struct fire_work *w;

        if (!scr || !st || !scr->work.kind)
                return 0;
        w = &scr->work;
        if (w->kind == PS_BAN_EVENT_SHADOW)
                st->policy_shadow[scr->fire.policy & 3]++;
        e = bpf_ringbuf_reserve(&ban_events, sizeof(*e), 0);
        if (!e) {
                st->ban_events_lost++;
                return 0;
        }
        e->time = w->ban.created;
        e->expires = w->ban.expires;
        __builtin_memcpy(e->addr, w->key.addr, sizeof(e->addr));
        e->family = w->key.family;
        e->prefixlen = w->key.prefixlen;
        e->policy = scr->fire.policy;
        e->kind = w->kind;
        e->offenses = w->ban.offenses;
        e->value = scr->fire.value;
        e->ifindex = scr->check.ifindex;
        e->dport = scr->fire.dport;
        e->pad = 0;
        e->pad2 = 0;
        bpf_ringbuf_submit(e, 0);
        return 0;
}

/* ---- The URL policy: a bounded prefix match of the request-target ---- */

struct url_work {
        __u8 buf[2 * PS_URL_BUF]; /* the request line so far; indices masked to fit */
        /* Where each step left off, read back from here: see url_forget(). */
        __u32 start;  /* offset of the request-target */
        __u32 tlen;   /* bytes of it in key.bytes */
        __u32 ended;  /* its end was seen (or PS_URL_PATTERN_MAX bytes of it) */
        __u32 cut;    /* the line ended inside the method */
        __u64 lengths; /* the pattern lengths worth looking up */
        __u32 wait;    /* the line is to be kept for the next segment */
        __u32 total;   /* bytes of it */
        struct ps_url_key key;
        struct url_pending pend;
        struct ps_flow_key flow; /* in: the flow, for a request line cut short */
};

struct {
        __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
        __uint(max_entries, 1);
        __type(key, __u32);
        __type(value, struct url_work);
} url_work SEC(".maps");

static __always_inline int url_target_end(__u8 c)
{
        return c == ' ' || c == '\r' || c == '\n';
}


/*
 * Each loop below can leave at any of its iterations, each with different constants in its
 * registers; carried on, those would make the verifier walk the loops after it once per exit
 * (beyond its limit). Positions go through the work area instead, and a compiler barrier
 * makes them be read back from there: to the verifier they are then one unknown value.
 */
#define url_forget() asm volatile("" ::: "memory")

/*
 * Matches the request line that starts this segment's payload (or continues the line cut
 * short in an earlier segment of the flow in url_work.flow) against the
 * patterns: method [A-Z]{1,16}, one SP, then the request-target compared byte for byte with
 * every pattern length that exists, longest first. Returns 1 on a match (ban_scratch.fire
 * then says what to ban), else 0; when the line ended before a pattern could be ruled out, it
 * is kept (PS_URL_LINE_MAX bytes at most) for the segment that continues it in sequence. A
 * global function: verified once, with a stack frame of its own.
 */
__noinline int ps_url_match(struct xdp_md *ctx)
{
        __u32 zero = 0, n = 0, take, total, s, tl, ended, wait = 0;
        __u32 payload_off;
        struct url_work *w = bpf_map_lookup_elem(&url_work, &zero);
        struct ps_ban_config *c = bpf_map_lookup_elem(&ban_config, &zero);
        struct ban_scratch *scr = bpf_map_lookup_elem(&ban_scratch, &zero);
        struct url_pending *pend;
        __u64 lengths;

        if (!w || !c || !scr)
                return 0;
        /* The packet's values are read where they are used, not kept across the calls:
         * the registers that survive a call are too few for them. */
        pend = bpf_map_lookup_elem(&url_pending, &w->flow);
        if (pend) {
                if (pend->next_seq == scr->check.seq && pend->len < PS_URL_LINE_MAX) {
                        __builtin_memcpy(w->buf, pend->line, PS_URL_BUF);
                        n = pend->len;
                }
                bpf_map_delete_elem(&url_pending, &w->flow);
        }
        n &= PS_URL_BUF - 1;
        payload_off = scr->check.payload_off;
        take = scr->check.payload_len;
        if (take > PS_URL_LINE_MAX - n)
                take = PS_URL_LINE_MAX - n;
        take &= PS_URL_BUF - 1;
        if (take == 0 || payload_off > PS_MAX_OFF)
                return 0;
        if (bpf_xdp_load_bytes(ctx, payload_off, &w->buf[n], take) < 0)
                return 0;
        total = n + take;

        /* The method: capitals up to the first SP. */
        w->start = 0;
        w->cut = 0;
        for (__u32 i = 0; i <= PS_URL_METHOD_MAX; i++) {
                __u8 ch;

                if (i >= total) {
                        w->cut = 1;
                        break;
                }
                ch = w->buf[i & (2 * PS_URL_BUF - 1)];
                if (ch == ' ') {
                        if (i == 0)
                                return 0;
                        w->start = i + 1;
                        break;
                }
                if (ch < 'A' || ch > 'Z')
                        return 0;
        }
        url_forget();
        if (!w->cut && w->start == 0)
                return 0; /* a token longer than any method */
        __builtin_memset(&w->key, 0, sizeof(w->key));
        w->tlen = 0;
        w->ended = 0;
        if (!w->cut) {
                s = w->start & (PS_URL_BUF - 1);
                /* The target: up to its end or PS_URL_PATTERN_MAX bytes. */
                for (__u32 j = 0; j < PS_URL_PATTERN_MAX; j++) {
                        __u8 ch;

                        if (s + j >= total)
                                break;
                        ch = w->buf[(s + j) & (2 * PS_URL_BUF - 1)];
                        if (url_target_end(ch)) {
                                w->ended = 1;
                                break;
                        }
                        w->key.bytes[j] = ch;
                        w->tlen = j + 1;
                }
                url_forget();
                if (w->tlen >= PS_URL_PATTERN_MAX)
                        w->ended = 1; /* every pattern can be decided */
        }
        url_forget();
        tl = w->tlen;
        ended = w->ended;
        lengths = c->url_lengths;

        /* Some pattern longer than what the line holds could still match it. */
        wait = !ended && tl < PS_URL_PATTERN_MAX && (lengths >> tl) != 0;
        /* The lengths to look up: those of patterns, no longer than the target. */
        w->lengths = tl >= PS_URL_PATTERN_MAX ? lengths : lengths & ((1ULL << tl) - 1);
        w->wait = wait;
        w->total = total;
        url_forget();
        lengths = w->lengths;
        /* Longest first; each step clears one more byte of the key. */
        for (__u32 len = PS_URL_PATTERN_MAX; len >= 1; len--) {
                struct ps_url_pattern *pat;

                if (len < PS_URL_PATTERN_MAX)
                        w->key.bytes[len & (PS_URL_PATTERN_MAX - 1)] = 0;
                if (!((lengths >> (len - 1)) & 1))
                        continue;
                w->key.len = len;
                pat = bpf_map_lookup_elem(&ban_url_patterns, &w->key);
                if (pat) {
                        __sync_fetch_and_add(&pat->hits, 1);
                        /* What ps_policy_fire() is to ban. */
                        __builtin_memcpy(scr->fire.src, scr->check.src, sizeof(scr->fire.src));
                        scr->fire.family = scr->check.family;
                        scr->fire.policy = PS_BAN_POLICY_URL;
                        scr->fire.dport = scr->check.dport;
                        scr->fire.value = len;
                        return 1;
                }
        }
        url_forget();
        if (!w->wait)
                return 0;
        w->pend.next_seq = scr->check.seq + scr->check.payload_len;
        w->pend.len = w->total;
        __builtin_memcpy(w->pend.line, w->buf, PS_URL_BUF);
        bpf_map_update_elem(&url_pending, &w->flow, &w->pend, BPF_ANY);
        return 0;
}

/* ---- The policies ---- */

static __always_inline int http_port(const struct ps_ban_config *c, __u16 port)
{
        for (int i = 0; i < PS_BAN_HTTP_PORTS_MAX; i++)
                if (i < c->n_http_ports && c->http_ports[i] == port)
                        return 1;
        return 0;
}

static __always_inline struct ps_ban_src_state *src_of(struct ban_scratch *scr,
                                                       struct ps_stats *st, __u8 prefix)
{
        return src_state(scr->check.family, scr->check.src, prefix, st, &scr->skey,
                         &scr->sinit);
}

/* A threshold was crossed: what ps_policy_fire() is to ban, in ban_scratch. Returns 1. */
static __always_inline int fire(struct ban_scratch *scr, __u32 policy, __u32 value)
{
        __builtin_memcpy(scr->fire.src, scr->check.src, sizeof(scr->fire.src));
        scr->fire.family = scr->check.family;
        scr->fire.policy = policy;
        scr->fire.dport = scr->check.dport;
        scr->fire.value = value;
        return 1;
}

#define PS_POLICY_FIRE 1
#define PS_POLICY_URL 2

/*
 * TCP connections counted toward their source's open ones, until their first FIN or RST
 * from it (program-internal; an LRU, so that a flood of SYNs never fills it for good).
 */
struct {
        __uint(type, BPF_MAP_TYPE_LRU_HASH);
        __uint(max_entries, 65536);
        __type(key, struct ps_flow_key);
        __type(value, __u8);
} ban_conns SEC(".maps");

/*
 * The auto-ban policies for the TCP or UDP packet in ban_scratch (ban_args_fill(), with
 * allowlisted set by ps_ban_check() when a table was there to look at). flow: 0 for a flow's
 * first packet, else 1 + its enum ps_flow_state. Returns
 * PS_POLICY_FIRE when a threshold was crossed (ban_scratch.fire says what to ban: the caller
 * calls ps_policy_fire()), PS_POLICY_URL when the URL patterns are to be looked at
 * (ps_url_match()), else 0. The calls are the caller's because the program leaves its
 * callees one stack frame only. A global function: verified once, on its own, and ordinary
 * packets leave it after the configuration's lookup.
 */
__noinline int ps_ban_policies(__u32 flow)
{
        __u32 zero = 0;
        struct ban_scratch *scr = bpf_map_lookup_elem(&ban_scratch, &zero);
        struct ps_ban_config *c = bpf_map_lookup_elem(&ban_config, &zero);
        struct ps_stats *st = bpf_map_lookup_elem(&stats, &zero);
        struct ps_ban_policy_conf *pc;
        struct ps_ban_src_state *s;
        struct ban_args *a;
        int tcp, fresh, conn = 0, url = 0;
        __u64 now;
        __u8 one = 1;

        if (!scr || !c || !st)
                return 0;
        a = &scr->check;
        if (a->allowlisted)
                return 0;
        now = a->now;
        tcp = a->proto == IPPROTO_TCP;
        /* A SYN that opens a connection: not a retransmission of one the flow has seen, but
         * maybe a new connection on the tuple of a closed one. */
        fresh = tcp && (a->tcp_flags & (PS_TCP_SYN | PS_TCP_ACK)) == PS_TCP_SYN &&
                (flow == 0 || flow == 1 + PS_STATE_FIN || flow == 1 + PS_STATE_RST);

        conn = tcp && c->policy[PS_BAN_POLICY_CONNECTIONS].mode != PS_BAN_MODE_OFF &&
               (fresh || (a->tcp_flags & (PS_TCP_FIN | PS_TCP_RST)));
        url = tcp && a->payload_len && c->policy[PS_BAN_POLICY_URL].mode != PS_BAN_MODE_OFF &&
              c->url_lengths && http_port(c, a->dport);
        if (conn || url) {
                __builtin_memset(&scr->flow, 0, sizeof(scr->flow));
                scr->flow.family = a->family;
                scr->flow.proto = a->proto;
                scr->flow.sport = a->sport;
                scr->flow.dport = a->dport;
                __builtin_memcpy(scr->flow.src, a->src, sizeof(scr->flow.src));
                __builtin_memcpy(scr->flow.dst, a->dst, sizeof(scr->flow.dst));
        }

        pc = &c->policy[PS_BAN_POLICY_CONNECTIONS];
        if (conn) {
                if (fresh) {
                        s = src_of(scr, st, policy_prefix(a->family, pc));
                        if (s) {
                                __s32 open;

                                if (pc->window_ns && s->conns > 0 &&
                                    now - s->conn_last > pc->window_ns)
                                        s->conns = 0;
                                s->conn_last = now;
                                /* The atomic add, then a read: fetching the result
                                 * atomically needs BPF v3 atomics. */
                                __sync_fetch_and_add(&s->conns, 1);
                                open = s->conns;
                                bpf_map_update_elem(&ban_conns, &scr->flow, &one, BPF_ANY);
                                if (open > (__s32) pc->threshold)
                                        return fire(scr, PS_BAN_POLICY_CONNECTIONS,
                                                    (__u32) open);
                        }
                } else if (bpf_map_delete_elem(&ban_conns, &scr->flow) == 0) {
                        /* The first FIN or RST of a counted connection. */
                        s = src_of(scr, st, policy_prefix(a->family, pc));
                        if (s && s->conns > 0)
                                __sync_fetch_and_add(&s->conns, -1);
                }
        }

        pc = &c->policy[PS_BAN_POLICY_SYN_RATE];
        if (fresh && pc->mode != PS_BAN_MODE_OFF && pc->threshold) {
                s = src_of(scr, st, policy_prefix(a->family, pc));
                if (s) {
                        __u64 T = 1000000000ULL / pc->threshold;
                        __u64 burst = pc->burst ? pc->burst : 1;
                        __u64 tat = s->syn_tat > now ? s->syn_tat : now;

                        /* GCRA: a SYN conforms while the theoretical arrival time runs at
                         * most burst - 1 intervals ahead of the clock. */
                        if (tat - now > (burst - 1) * T)
                                return fire(scr, PS_BAN_POLICY_SYN_RATE, (__u32) burst + 1);
                        s->syn_tat = tat + T;
                }
        }

        pc = &c->policy[PS_BAN_POLICY_PORT_SCAN];
        if ((fresh || (a->proto == IPPROTO_UDP && flow == 0)) &&
            pc->mode != PS_BAN_MODE_OFF && pc->threshold) {
                s = src_of(scr, st, policy_prefix(a->family, pc));
                if (s) {
                        /* One bit of a 256-bit set per port (multiplicative hash). */
                        __u32 h = ((__u32) a->dport * 2654435761u) >> 24;
                        __u64 bit = 1ULL << (h & 63);
                        __u32 word = (h >> 6) & 3;

                        if (pc->window_ns && s->scan_last && now - s->scan_last > pc->window_ns) {
                                s->scan_weight = 0;
                                s->scan_bits[0] = 0;
                                s->scan_bits[1] = 0;
                                s->scan_bits[2] = 0;
                                s->scan_bits[3] = 0;
                        }
                        if (!(s->scan_bits[word] & bit)) {
                                s->scan_bits[word] |= bit;
                                s->scan_weight += a->dport < 1024 ? 3 : 1;
                                s->scan_last = now;
                                if (s->scan_weight >= pc->threshold)
                                        return fire(scr, PS_BAN_POLICY_PORT_SCAN,
                                                    s->scan_weight);
                        }
                }
        }

        if (url) {
                struct url_work *w = bpf_map_lookup_elem(&url_work, &zero);

                if (!w)
                        return 0;
                __builtin_memcpy(&w->flow, &scr->flow, sizeof(w->flow));
                return PS_POLICY_URL;
        }
        return 0;
}

/* The policies for the packet in ban_scratch; 1: a policy banned its source, drop it. */
static __always_inline int ban_policies(struct xdp_md *ctx, __u32 flow)
{
        int r = ps_ban_policies(flow), drop = 0;

        if (r == PS_POLICY_URL)
                r = ps_url_match(ctx);
        if (r != PS_POLICY_FIRE)
                return 0;
        r = ps_policy_fire();
        if (r == PS_FIRE_ENFORCE)
                drop = ps_policy_enforce();
        if (r)
                ps_ban_report();
        return drop;
}

#endif
