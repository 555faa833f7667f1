/* SPDX-License-Identifier: (GPL-2.0-only OR MIT) */
/*
 * The ABI between the XDP program (guard.bpf.c) and the daemon: map keys, map values and the
 * counter layout. Fixed-width types only and no includes, so that both sides (the BPF target
 * and the host compiler) lay the structures out identically. Any change here is an ABI change:
 * bump PS_ABI_VERSION so that a daemon never adopts maps pinned by an incompatible program.
 */
#ifndef PACKETSCOPE_GUARD_H
#define PACKETSCOPE_GUARD_H

#define PS_ABI_VERSION 3

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

struct ps_flow_value {
        __u64 packets;     /* atomic */
        __u64 bytes;       /* atomic; frame length as seen by XDP */
        __u64 first_seen;  /* CLOCK_MONOTONIC (coarse) ns */
        __u64 last_seen;   /* CLOCK_MONOTONIC (coarse) ns */
        __u64 retransmits; /* atomic; TCP segments carrying data whose seq is not ahead */
        __u32 seq;         /* last TCP sequence number (host order) */
        __u32 ack;         /* last TCP acknowledgement number (host order) */
        __u32 max_seq_end; /* highest seq + payload length seen, for the retransmit estimate */
        __u16 window;      /* last TCP window (host order, unscaled) */
        __u16 ip_id;       /* last IPv4 identification (host order); 0 for IPv6 */
        __u8 ttl;          /* last TTL / hop limit */
        __u8 tcp_flags;    /* OR of every TCP flag byte seen */
        __u8 last_flags;   /* TCP flag byte of the last segment */
        __u8 state;        /* enum ps_flow_state */
        __u32 pad;
        struct ps_verdict_cache verdict;
};

/* ICMP and ICMPv6 traffic, one entry per (family, src, dst, type, code). */
struct ps_icmp_key {
        __u8 family;
        __u8 type;
        __u8 code;
        __u8 pad;
        __u32 src[4];
        __u32 dst[4];
};

struct ps_icmp_value {
        __u64 packets;    /* atomic */
        __u64 bytes;      /* atomic */
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

/* Global counters: one per-CPU array entry (key 0); the reader sums the CPUs. */
#define PS_ICMP_TYPES 256
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
         * dropped_deep_vlan. */
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
        __u64 icmp_type[PS_ICMP_TYPES];   /* ICMPv4 packets per type */
        __u64 icmpv6_type[PS_ICMP_TYPES]; /* ICMPv6 packets per type */
};

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

enum ps_attach_mode {
        PS_MODE_NATIVE = 1,
        PS_MODE_GENERIC = 2,
};

#endif
