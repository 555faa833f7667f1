/* SPDX-License-Identifier: (GPL-2.0-only OR MIT) */
/*
 * The ABI between the XDP program (guard.bpf.c) and the daemon: map keys, map values and the
 * counter layout. Fixed-width types only and no includes, so that both sides (the BPF target
 * and the host compiler) lay the structures out identically. Any change here is an ABI change:
 * bump PS_ABI_VERSION so that a daemon never adopts maps pinned by an incompatible program.
 */
#ifndef PACKETSCOPE_GUARD_H
#define PACKETSCOPE_GUARD_H

#define PS_ABI_VERSION 9

/* Address families as stored in keys (not AF_*: the BPF side has no libc). */
#define PS_FAMILY_IPV4 4
#define PS_FAMILY_IPV6 6

/* Flow state derived from the TCP flags of the ingress direction. */
enum ps_flow_state {
        PS_STATE_NONE = 0,        /* UDP, or TCP with no flag of interest yet */
        PS_STATE_SYN = 1,         /* SYN seen, no ACK without SYN yet */
        PS_STATE_ESTABLISHED = 2, /* an ACK without SYN was seen */
        PS_STATE_FIN = 3,         /* FIN seen */
        PS_STATE_RST = 4,         /* RST seen */
};

/* Protocol buckets of the global counters. */
enum ps_proto_bucket {
        PS_PROTO_TCP = 0,
        PS_PROTO_UDP = 1,
        PS_PROTO_ICMP = 2,
        PS_PROTO_ICMPV6 = 3,
        PS_PROTO_OTHER = 4, /* other IP protocols and non-IP frames (ARP, LLDP...) */
        _PS_PROTO_MAX = 5,
};

/*
 * The filter verdict of a flow or ICMP entry, valid while filter_state still equals `state`
 * (no rule change since) and that set is flow-cacheable (classify.h).
 */
struct ps_verdict_cache {
        __u32 state;
        __u16 flags;  /* PS_VERDICT_VALID | PS_VERDICT_COUNT */
        __u16 action; /* enum ps_filter_action */
        __u32 slot;
        __u32 count_slot;
};

#define PS_VERDICT_VALID 1
#define PS_VERDICT_COUNT 2

/*
 * A flow, in the ingress orientation: src is the remote end, dst the local one. An egress
 * program finds the same entry by swapping its tuple. IPv4 addresses sit in word 0, the other
 * words zero. Addresses are in network byte order, ports in host byte order.
 */
struct ps_flow_key {
        __u8 family;
        __u8 proto;
        __u16 pad;
        __u16 sport;
        __u16 dport;
        __u32 src[4];
        __u32 dst[4];
};

/*
 * 72 bytes (80 before): what a packet reads or writes comes first, in 64 bytes, the verdict
 * it reads first of all; first_seen, written once, last. A UDP packet touches the first 44
 * bytes, a TCP segment the first 64. The counters are plain additions, not atomics: RSS hands
 * a flow's packets to one CPU, and an increment is lost only when two CPUs update the same
 * flow in the same instant (the per-CPU stats stay exact whatever the CPUs do).
 */
struct ps_flow_value {
        struct ps_verdict_cache verdict;
        __u64 packets;     /* racy, see above */
        __u64 bytes;       /* racy; frame length as seen by XDP */
        __u64 last_seen;   /* CLOCK_MONOTONIC (coarse) ns */
        __u16 ip_id;       /* last IPv4 identification (host order); 0 for IPv6 */
        __u8 ttl;          /* last TTL / hop limit */
        __u8 state;        /* enum ps_flow_state */
        __u8 tcp_flags;    /* OR of every TCP flag byte seen */
        __u8 last_flags;   /* TCP flag byte of the last segment */
        __u16 window;      /* last TCP window (host order, unscaled) */
        __u32 seq;         /* last TCP sequence number (host order) */
        __u32 ack;         /* last TCP acknowledgement number (host order) */
        __u32 max_seq_end; /* highest seq + payload length seen, for the retransmit estimate */
        __u32 retransmits; /* racy; TCP segments carrying data whose seq is not ahead */
        __u64 first_seen;  /* CLOCK_MONOTONIC (coarse) ns */
};

/*
 * ICMP and ICMPv6 traffic, one entry per (family, src, dst, type, code): the key of the ICMPv6
 * table icmp_flows, and the form in which the daemon hands on the entries of both tables.
 */
struct ps_icmp_key {
        __u8 family;
        __u8 type;
        __u8 code;
        __u8 pad;
        __u32 src[4];
        __u32 dst[4];
};

/*
 * The key of the ICMP (IPv4) table icmp4_flows: 12 bytes that every message hashes and
 * compares whole, where the 36 of struct ps_icmp_key cost it about 18 ns more a message.
 */
struct ps_icmp4_key {
        __u8 type;
        __u8 code;
        __u16 pad;
        __u32 src;
        __u32 dst;
};

/* The counters are plain additions, racy as a flow entry's (struct ps_flow_value): RSS
 * hashes a message by its addresses, so one pair's messages reach one CPU. */
struct ps_icmp_value {
        __u64 packets;    /* racy, see above */
        __u64 bytes;      /* racy */
        __u64 first_seen; /* CLOCK_MONOTONIC (coarse) ns */
        __u64 last_seen;
        /* The quoted header of the last error message seen (is_error set), else zero. */
        __u8 is_error;
        __u8 inner_family;
        __u8 inner_proto;
        __u8 pad;
        __u16 inner_sport; /* host order; 0 when the quote is too short to hold ports */
        __u16 inner_dport;
        __u32 inner_src[4];
        __u32 inner_dst[4];
        struct ps_verdict_cache verdict; /* for messages that are not errors */
};

/* ICMP and ICMPv6 messages per type: the per-CPU array icmp_stats (key 0), apart from the
 * other counters so that only ICMP packets touch it and the stats entry every packet touches
 * stays 384 bytes instead of 4,480. */
#define PS_ICMP_TYPES 256
struct ps_icmp_stats {
        __u64 icmp_type[PS_ICMP_TYPES];   /* ICMPv4 packets per type */
        __u64 icmpv6_type[PS_ICMP_TYPES]; /* ICMPv6 packets per type */
};

/*
 * Global counters: one per-CPU array entry (key 0) of the stats map, which holds the struct up
 * to `icmp` (PS_STATS_MAP_SIZE bytes); the reader sums the CPUs, and the daemon sums the
 * icmp_stats map into `icmp`.
 */
struct ps_stats {
        __u64 packets;   /* every frame the program saw */
        __u64 bytes;
        __u64 passed;    /* returned XDP_PASS */
        __u64 dropped;   /* returned XDP_DROP, any reason */
        __u64 malformed; /* truncated or inconsistent headers: counted and passed */
        __u64 fragments; /* IPv4/IPv6 non-first fragments (no ports) */
        __u64 vlan;      /* frames carrying at least one VLAN tag */
        __u64 ipv4;
        __u64 ipv6;
        __u64 non_ip;
        __u64 icmp_errors;      /* ICMP/ICMPv6 error messages (with an inner header) */
        __u64 flow_update_fail; /* a flow or ICMP entry could not be created */
        __u64 dropped_filter;   /* dropped by a filter rule */
        __u64 drop_events_lost; /* drop samples the ring buffer had no room for */
        /* Packets the parser cannot fully classify (packetscoped(8), "Packets the parser
         * cannot classify"): how many were seen, and how many their policy dropped.
         * dropped = dropped_filter + dropped_tiny_fragments + dropped_long_chains +
         * dropped_deep_vlan + dropped_ban + dropped_autoban. */
        __u64 tiny_fragments;     /* first fragments without the whole transport header (or,
                                   * IPv6, the whole header chain) */
        __u64 long_chains;        /* IPv6 extension chains longer than PS_IPV6_MAX_EXT */
        __u64 deep_vlan;          /* VLAN stacks deeper than PS_VLAN_MAX tags */
        __u64 fragments_followed; /* non-first fragments given their first fragment's verdict */
        __u64 fragments_orphan;   /* non-first fragments whose first was not seen: classified
                                   * without ports */
        __u64 dropped_tiny_fragments; /* tiny first fragments and their later fragments */
        __u64 dropped_long_chains;    /* long chains (and later fragments of one) */
        __u64 dropped_deep_vlan;
        __u64 proto_packets[_PS_PROTO_MAX];
        __u64 proto_bytes[_PS_PROTO_MAX];
        /* Bans (bans below). dropped also counts dropped_ban + dropped_autoban. */
        __u64 dropped_ban;      /* packets whose source a ban covered */
        __u64 dropped_autoban;  /* packets a policy dropped as it banned (the crossing one,
                                 * and every segment carrying a banned URL) */
        __u64 ban_allowlisted;  /* packets whose source is on the allowlist (bans skipped) */
        __u64 ban_expired_seen; /* packets that found only an expired ban (passed) */
        __u64 bans_full;        /* auto-bans the table had no room for */
        __u64 ban_events_lost;  /* ban events the ring buffer had no room for */
        __u64 ban_sources_fail; /* per-source policy state that could not be created */
        __u64 policy_triggers[4]; /* per enum ps_ban_policy: bans made (enforce) */
        __u64 policy_shadow[4];   /* per enum ps_ban_policy: would-be bans (mode count) */
        /* Panic mode (below). dropped also counts dropped_panic. */
        __u64 dropped_panic;    /* packets panic mode dropped */
        /* Not in the stats map: the sum of icmp_stats. */
        struct ps_icmp_stats icmp;
};

#define PS_STATS_MAP_SIZE __builtin_offsetof(struct ps_stats, icmp)

/*
 * Written by the daemon at attach time into the pinned "meta" map (key 0), read back when a
 * new daemon adopts a pinned program: which ABI the maps follow and how it was attached.
 */
struct ps_meta {
        __u32 abi_version;   /* PS_ABI_VERSION of the program that created the maps */
        __u32 mode;          /* enum ps_attach_mode */
        __u64 attached_since; /* CLOCK_REALTIME µs */
        __u32 ifindex;
        __u32 flow_table_size;
        __u32 icmp_table_size;
        __u32 policy;        /* PS_POLICY_* bits; 0 (also when unset) drops what cannot be
                              * classified: the program fails closed */
        __u64 build_id;      /* hash of the program object: a different build gets swapped in */
};

/* ps_meta.policy: packets the parser cannot fully classify are dropped unless their bit is set
 * (packetscope.conf: TinyFragments=pass, LongHeaderChains=pass). The daemon writes it at
 * attach and adoption time; the program reads it only for such packets. */
#define PS_POLICY_PASS_TINY_FRAGMENTS 1u
#define PS_POLICY_PASS_LONG_CHAINS 2u /* IPv6 extension chains and VLAN stacks */

/* The parser's bounds: longer chains are decided by the LongHeaderChains policy. */
#define PS_IPV6_MAX_EXT 16 /* IPv6 extension headers walked */
#define PS_VLAN_MAX 8      /* VLAN tags walked */

/*
 * The verdict of a fragmented datagram's first fragment, for its later fragments (which carry
 * no ports): one entry per (family, source, destination, protocol, identification), kept for
 * the kernel's reassembly timeout (30 s IPv4, 60 s IPv6) in an LRU table of
 * PS_FRAG_TABLE_SIZE entries per interface. Program-internal: the daemon never reads it.
 */
#define PS_FRAG_TABLE_SIZE 8192
#define PS_FRAG_TIMEOUT4_NS (30ULL * 1000000000ULL)
#define PS_FRAG_TIMEOUT6_NS (60ULL * 1000000000ULL)

struct ps_frag_key {
        __u8 family;
        __u8 proto;   /* IPv4 only; 0 for IPv6 (RFC 8200 reassembles without it) */
        __u16 pad;
        __u32 id;     /* IPv4 identification (16 bits) or IPv6 fragment identification, host order */
        __u32 src[4];
        __u32 dst[4];
};

/* Why a packet was dropped, when no rule did it. */
enum ps_policy_reason {
        PS_REASON_RULE = 0, /* a filter rule, or no drop */
        PS_REASON_TINY_FRAGMENT = 1,
        PS_REASON_LONG_CHAIN = 2,
        PS_REASON_DEEP_VLAN = 3,
        PS_REASON_BAN = 4,     /* the source is banned */
        PS_REASON_AUTOBAN = 5, /* a policy banned the source on this packet */
        PS_REASON_PANIC = 6,   /* panic mode: not management traffic */
};

struct ps_frag_value {
        __u64 expires;   /* CLOCK_MONOTONIC (coarse) ns */
        __u32 action;    /* enum ps_filter_action */
        __u32 slot;
        __u32 count_slot;
        __u8 has_count;
        __u8 reason;     /* enum ps_policy_reason */
        __u16 pad;
};

/*
 * Bans: sources whose every packet is dropped, before filter classification. Shared by the
 * programs of every link and pinned by the daemon under <bpffs-root>/:bans/ (PS_BANS_PIN_DIR),
 * so that a daemon restart or crash never unbans anyone. Per packet (IPv4 and IPv6 source):
 *
 *   1. the allowlist (LPM tries ban_allow4/ban_allow6), only when ban_presence says it is not
 *      empty: a hit passes the packet on to the filters, no ban and no policy applies;
 *   2. the exact ban (hash ban_v4: key the __u32 address; ban_v6: struct ps_ban6_key): one
 *      lookup per packet, whatever the number of bans, only when ban_presence says the table
 *      may hold entries;
 *   3. the CIDR bans (LPM tries ban_cidr4/ban_cidr6), only when ban_presence says there are
 *      any (or the exact ban found had expired): the longest prefix covering the source wins.
 *
 * A ban whose expires is not 0 and lies at or before bpf_ktime_get_ns() (CLOCK_MONOTONIC) is
 * over: it no longer drops, even while the daemon is down, and a shorter prefix covering the
 * same address is looked up instead (up to PS_BAN_LPM_RETRIES times). The daemon reaps
 * expired entries. An exact ban is a /32 or /128 in the hash, never in the tries: the daemon
 * inserts a /32 or /128 given to it into ban_v4 / ban_v6.
 */
#define PS_BANS_PIN_DIR ":bans" /* ':' never appears in an interface name */

/* Capacities: the exact tables are sized from the configuration before the maps are created
 * (these are the defaults); the rest are fixed. */
#define PS_BANS_V4_DEFAULT 1000000
#define PS_BANS_V6_DEFAULT 262144
#define PS_BANS_CIDR_MAX 65536      /* per family */
#define PS_BANS_ALLOW_MAX 4096      /* per family */
#define PS_BANS_SOURCES 131072      /* per-source policy state (LRU), both families */
#define PS_BANS_OFFENDERS 65536     /* repeat offenders the kernel remembers (LRU) */
#define PS_BANS_EVENTS_RING (256 * 1024)
#define PS_BAN_LPM_RETRIES 4        /* expired prefixes stepped over per packet */

/* Keys. Addresses in network byte order. */
struct ps_ban6_key {
        __u32 addr[4];
};

/* LPM trie keys (BPF_MAP_TYPE_LPM_TRIE: prefixlen first, in bits). Address bits past the
 * prefix must be zero in keys the daemon inserts. */
struct ps_lpm4_key {
        __u32 prefixlen;
        __u32 addr;
};

struct ps_lpm6_key {
        __u32 prefixlen;
        __u32 addr[4];
};

enum ps_ban_origin {
        PS_BAN_ORIGIN_MANUAL = 1,
        PS_BAN_ORIGIN_AUTO = 2,   /* made by a policy in the kernel; policy says which */
        PS_BAN_ORIGIN_IMPORT = 3,
        PS_BAN_ORIGIN_AI = 4,
};

/* The value of every ban table (ban_v4, ban_v6, ban_cidr4, ban_cidr6). */
struct ps_ban {
        __u64 expires;   /* CLOCK_MONOTONIC ns (bpf_ktime_get_ns); 0: until unbanned */
        __u64 created;   /* CLOCK_MONOTONIC ns */
        __u64 packets;   /* atomic: packets dropped by this ban */
        __u64 bytes;     /* atomic: their frame bytes */
        __u64 last_hit;  /* CLOCK_MONOTONIC ns of the last packet dropped (0: none) */
        __u32 id;        /* the daemon's ban id; 0 for a kernel-made ban it has not recorded */
        __u32 offenses;  /* how many times this source has been banned, this ban included */
        __u8 origin;     /* enum ps_ban_origin */
        __u8 policy;     /* enum ps_ban_policy, for PS_BAN_ORIGIN_AUTO */
        __u8 prefixlen;  /* 32 / 128 for exact bans; the trie key's prefixlen otherwise */
        __u8 family;     /* PS_FAMILY_IPV4 / PS_FAMILY_IPV6 */
        __u32 pad;
};

/* The value of the allowlist tries (ban_allow4, ban_allow6). */
struct ps_allow {
        __u64 hits;      /* atomic: packets that found their source allowlisted */
        __u32 id;        /* the daemon's own, free to use */
        __u32 prefixlen;
};

/*
 * ban_presence: which ban tables hold entries, so that a packet looks up only those (an empty
 * table still costs a lookup, and the exact hashes hundreds of ns over many sources). Two
 * entries, each written by one side only:
 *
 *   [PS_BAN_PRESENCE_DAEMON] written by the daemon: non-zero cidr4 ... exact6 when it counted
 *      that table non-empty (or is about to insert into it); kernel_* the values of the
 *      kernel's entry it had read before counting;
 *   [PS_BAN_PRESENCE_KERNEL] written by the program: cidr4/cidr6/exact4/exact6 count the bans
 *      the policies inserted (atomically, after the insert); allow4/allow6 and kernel_* stay 0.
 *
 * A table is looked up when the daemon's count is non-zero or the kernel's count differs from
 * the daemon's kernel_* copy. The daemon clears a count only after reading the kernel's entry
 * and then finding the table empty, so a ban the kernel inserts after that count makes the two
 * differ: no moment exists at which a ban in a table is skipped.
 */
#define PS_BAN_PRESENCE_DAEMON 0
#define PS_BAN_PRESENCE_KERNEL 1
struct ps_ban_presence {
        __u32 cidr4;
        __u32 cidr6;
        __u32 allow4;
        __u32 allow6;
        __u32 exact4;
        __u32 exact6;
        __u32 kernel_cidr4;
        __u32 kernel_cidr6;
        __u32 kernel_exact4;
        __u32 kernel_exact6;
};

/*
 * Auto-ban policies, decided in the kernel per source (the source address cut to the policy's
 * prefix4 / prefix6: a /64 keeps one IPv6 host from dodging by rotating addresses). On the
 * packet that crosses a threshold, a policy in mode enforce inserts a ban (exact hash for a
 * full-length prefix, the trie otherwise; BPF_NOEXIST, or the expiry extended if one exists),
 * drops that packet and emits a ps_ban_event; in mode count (shadow) it only emits the event
 * (at most once per source per ban_ns, or per 60 s for a ban_ns of 0).
 */
enum ps_ban_policy {
        PS_BAN_POLICY_CONNECTIONS = 0, /* concurrently open TCP connections per source */
        PS_BAN_POLICY_SYN_RATE = 1,    /* new TCP connections per second, token bucket */
        PS_BAN_POLICY_PORT_SCAN = 2,   /* scanlogd weighting of distinct destination ports */
        PS_BAN_POLICY_URL = 3,         /* plain-HTTP request-target starting with a pattern */
        _PS_BAN_POLICY_MAX = 4,
};

enum ps_ban_mode {
        PS_BAN_MODE_OFF = 0,
        PS_BAN_MODE_COUNT = 1,   /* shadow: event only, no ban, no drop */
        PS_BAN_MODE_ENFORCE = 2,
};

/*
 * threshold, per policy:
 *   CONNECTIONS: the most open connections allowed; the SYN that makes threshold + 1 bans.
 *                A flow counts from its first SYN (no ACK) to its first FIN or RST from the
 *                source; window_ns: a source with no new SYN for that long starts again at 0
 *                (flows evicted or closed from our side leave no trace at ingress).
 *   SYN_RATE:    threshold SYNs per second sustained, burst SYNs at once (GCRA): the SYN
 *                beyond the burst bans.
 *   PORT_SCAN:   the weight that bans: a new destination port below 1024 weighs 3, others 1
 *                (TCP SYNs and the first packet of a UDP flow); a gap longer than window_ns
 *                between two new ports starts again at 0. The reached weight >= threshold bans.
 *   URL:         unused (any match bans).
 */
struct ps_ban_policy_conf {
        __u32 mode;        /* enum ps_ban_mode */
        __u32 threshold;
        __u32 burst;       /* SYN_RATE only */
        __u8 prefix4;      /* aggregation, 1..32 (32: the address itself) */
        __u8 prefix6;      /* 1..128 */
        __u16 pad;
        __u64 window_ns;   /* CONNECTIONS, PORT_SCAN: see above */
        __u64 ban_ns;      /* ban length; 0: until unbanned */
        /* Repeat offenders: the n-th ban of a source lasts ban_ns * repeat_factor^(n-1), at
         * most repeat_max_ns (0: no bound). repeat_factor 0 or 1: no growth. */
        __u32 repeat_factor;
        __u32 pad2;
        __u64 repeat_max_ns;
};

#define PS_BAN_HTTP_PORTS_MAX 8
#define PS_URL_PATTERN_MAX 64  /* bytes of one pattern (M) */
#define PS_URL_PATTERNS_MAX 256 /* patterns (N) */
#define PS_URL_METHOD_MAX 16   /* bytes of a method token [A-Z] before its SP */

/* ban_config[0], written by the daemon. */
struct ps_ban_config {
        struct ps_ban_policy_conf policy[_PS_BAN_POLICY_MAX];
        __u16 http_ports[PS_BAN_HTTP_PORTS_MAX]; /* host order; the URL policy looks at TCP
                                                  * payload to these */
        __u32 n_http_ports;
        __u32 pad;
        __u64 url_lengths; /* bit L-1 set: some pattern is L bytes long (1 <= L <= 64) */
};

/* ban_url_patterns: one entry per pattern; bytes past len are zero. Matching is a prefix
 * match of the request-target (origin-form), case-sensitive, byte for byte. */
struct ps_url_key {
        __u32 len;
        __u8 bytes[PS_URL_PATTERN_MAX];
};

struct ps_url_pattern {
        __u64 hits; /* atomic: request lines that matched it */
        __u32 id;   /* the daemon's own */
        __u32 pad;
};

/* A source (address cut to a prefix) as the policy state and the offender table key it. */
struct ps_ban_src_key {
        __u8 family;
        __u8 prefixlen;
        __u16 pad;
        __u32 addr[4]; /* IPv4 in word 0; bits past prefixlen zero */
};

/* ban_offenders (LRU): how often a source was banned, for repeat-offender growth. The kernel
 * bumps it on every auto-ban; the daemon seeds it from its state at start and may bump it
 * for manual bans. */
struct ps_ban_offender {
        __u64 last_ban;  /* CLOCK_MONOTONIC ns */
        __u32 offenses;
        __u32 pad;
};

/* ban_sources (LRU, program-internal: the daemon never needs to read it). */
struct ps_ban_src_state {
        __s32 conns;        /* open connections (CONNECTIONS) */
        __u32 scan_weight;  /* PORT_SCAN */
        __u64 conn_last;    /* last counted SYN, ns */
        __u64 syn_tat;      /* GCRA theoretical arrival time, ns (SYN_RATE) */
        __u64 scan_last;    /* last new port, ns */
        __u64 scan_bits[4]; /* 256-bit set of destination ports seen (hashed) */
        __u64 shadow_until[_PS_BAN_POLICY_MAX]; /* no second shadow event before this */
};

/* ban_events (ring buffer): what the policies did. */
enum ps_ban_event_kind {
        PS_BAN_EVENT_BANNED = 1,   /* a new ban was inserted */
        PS_BAN_EVENT_EXTENDED = 2, /* the source was banned already (expired or shorter):
                                    * its ban was overwritten with the new expiry */
        PS_BAN_EVENT_SHADOW = 3,   /* mode count: it would have been banned */
        PS_BAN_EVENT_FULL = 4,     /* the table had no room: not banned (bans_full) */
};

struct ps_ban_event {
        __u64 time;      /* CLOCK_MONOTONIC ns */
        __u64 expires;   /* the ban's expires (0: until unbanned) */
        __u32 addr[4];   /* the banned source or prefix; IPv4 in word 0 */
        __u8 family;
        __u8 prefixlen;
        __u8 policy;     /* enum ps_ban_policy */
        __u8 kind;       /* enum ps_ban_event_kind */
        __u32 offenses;  /* this ban included */
        __u32 value;     /* what crossed the threshold: connections, SYNs in the burst,
                          * scan weight, the pattern's length */
        __u32 ifindex;
        __u16 dport;     /* the destination port of the packet that crossed it */
        __u16 pad;
        __u32 pad2;
};

/* A ban drop is sampled like a filter drop, through drop_events (classify.h), with this slot. */
#define PS_DROP_SLOT_BAN 0xffffffffu

/*
 * Panic mode: while panic[0].on is set, the program of every link drops every received frame
 * right after parsing it, before bans and rules, except
 *   - IPv4/IPv6 packets whose source lies in panic_addr4 / panic_addr6 (ManagementAddresses=);
 *   - TCP segments to a port of panic[0].ports (ManagementPorts=);
 *   - TCP segments from such a port carrying ACK or RST: the replies to a connection this host
 *     opened to a management port elsewhere (a SYN without ACK from it opens nothing here);
 *   - ICMP/ICMPv6 errors quoting a TCP header with such a port (path MTU of those sessions);
 *   - ARP, and ICMPv6 router and neighbour discovery (types 133-136) with hop limit 255 (on-link
 *     only, RFC 4861): without them the host loses its neighbours and the sessions with them.
 * What passes goes on through bans and rules as usual. Frames the parser gives up on are
 * dropped. The maps are shared by every link and pinned by the daemon under
 * <bpffs-root>/:panic/ (PS_PANIC_PIN_DIR). Cost while off: one array lookup per frame.
 */
#define PS_PANIC_PIN_DIR ":panic"
#define PS_PANIC_PORTS_MAX 64  /* ports in panic[0] */
#define PS_PANIC_ADDR_MAX 64   /* prefixes per family in panic_addr4 / panic_addr6 */

struct ps_panic {
        __u32 on;
        __u32 n_ports;
        __u16 ports[PS_PANIC_PORTS_MAX]; /* host order */
};

enum ps_attach_mode {
        PS_MODE_NATIVE = 1,
        PS_MODE_GENERIC = 2,
};

#endif
