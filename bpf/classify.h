/* SPDX-License-Identifier: (GPL-2.0-only OR MIT) */
/*
 * The classifier's half of the kernel/user ABI (see guard.h for the rest): tuple-space search.
 *
 * Every rule is compiled by the daemon into one or more (mask, key) pairs: the mask says which
 * bits of the packet tuple the rule looks at (its "shape": address prefix lengths, exact or
 * wildcard protocol, port prefix blocks of a range, the TCP flag mask, ICMP fields), the key is
 * the rule's values under that mask. Pairs with the same mask share one shape. Per packet, the
 * program masks its tuple with each shape in turn and does one hash lookup per shape: the cost
 * follows the number of distinct shapes (at most PS_FILTER_MAX_SHAPES), never the number of
 * rules. Shapes whose entries cannot match the packet's family and protocol are skipped
 * (ps_filter_bank.classes), and shapes without IPv6 address words 1-3 are looked up under a
 * short key in a map of their own (struct ps_filter_key4). A hit tells the best rule of that
 * (shape, key) already resolved by the daemon; the best over all shapes (the highest rank)
 * decides.
 *
 * Atomic updates: two banks. A whole new set goes into the inactive bank (entries in both
 * maps, shapes), then the daemon flips `filter_state` (one 4-byte value: generation << 2 |
 * cacheable << 1 | bank). A packet reads the state once and sees one whole bank. The bank just
 * left keeps its entries until the next whole set, which clears it before filling it again: a
 * packet still reading it never sees it half gone. A change of one rule is written into the
 * active bank entry by entry, in an order that lets every packet see the set before or the
 * set after, then the generation goes up (bpf/README.md, "Changing one rule").
 */
#ifndef PACKETSCOPE_CLASSIFY_H
#define PACKETSCOPE_CLASSIFY_H

/* The flow verdict cache: when no shape of the active set looks at the TCP flags, everything a
 * rule can match on is fixed for a flow (family, protocol, addresses, ports), so the verdict of
 * its first packet holds for the next ones until the set changes; the flow entry keeps it.
 * The daemon sets this bit of filter_state for such sets. */
#define PS_FILTER_STATE_BANK 1u
#define PS_FILTER_STATE_CACHEABLE 2u
#define PS_FILTER_STATE_GEN_SHIFT 2

#define PS_FILTER_MAX_SHAPES 32
#define PS_FILTER_MAX_RULES 100000   /* rules a set may hold */
#define PS_FILTER_SLOTS 131072       /* per-rule counter slots (> max rules: freed slots rest) */
#define PS_FILTER_MAX_ENTRIES 262144 /* (shape, key) entries per bank */

enum ps_filter_action {
        PS_ACTION_NONE = 0,
        PS_ACTION_DROP = 1,
        PS_ACTION_PASS = 2,
        PS_ACTION_COUNT = 3, /* shadow: counts the packets it would decide, never decides */
};

/* The packet tuple as the classifier sees it; also the layout of masks and keys. Addresses in
 * network byte order, IPv4 in word 0; ports in host order. Fields a packet lacks are zero. */
struct ps_match {
        __u8 family;      /* PS_FAMILY_IPV4 / PS_FAMILY_IPV6 */
        __u8 proto;       /* IP protocol of the outer packet */
        __u8 icmp_type;   /* ICMP / ICMPv6 */
        __u8 icmp_code;
        __u8 tcp_flags;   /* TCP flag byte (FIN 1, SYN 2, RST 4, PSH 8, ACK 16, URG 32, ...) */
        __u8 inner_proto; /* protocol of the header an ICMP error quotes */
        __u16 pad;
        __u16 sport;
        __u16 dport;
        __u16 inner_sport;
        __u16 inner_dport;
        __u32 src[4];
        __u32 dst[4];
        __u32 inner_src[4];
        __u32 inner_dst[4];
};

struct ps_filter_key {
        __u32 shape;  /* bank * PS_FILTER_MAX_SHAPES + shape index */
        __u32 pad;
        struct ps_match match; /* the rule's values, already masked */
};

/* The key of filter_rules4: struct ps_match without address words 1-3. A shape whose mask
 * looks at word 0 of the addresses at most (IPv4 addresses, IPv6 prefixes up to /32, no
 * address at all) zeroes words 1-3 of every key, so this key is the same key, 52 bytes
 * shorter: hashing and comparing it is what a lookup mostly costs. It holds the entries of
 * such shapes whatever their family, and a packet of either family looks them up with it. */
struct ps_match4 {
        __u8 family;
        __u8 proto;
        __u8 icmp_type;
        __u8 icmp_code;
        __u8 tcp_flags;
        __u8 inner_proto;
        __u16 pad;
        __u16 sport;
        __u16 dport;
        __u16 inner_sport;
        __u16 inner_dport;
        __u32 src;        /* word 0 of struct ps_match's */
        __u32 dst;
        __u32 inner_src;
        __u32 inner_dst;
};

struct ps_filter_key4 {
        __u32 shape; /* as in struct ps_filter_key */
        struct ps_match4 match;
};

_Static_assert(sizeof(struct ps_match4) == 32, "struct ps_match4 is 32 bytes");
_Static_assert(sizeof(struct ps_filter_key4) == 36, "struct ps_filter_key4 is 36 bytes");

/* The best rules for one (shape, key); ranks order rules: higher wins (priority, then age).
 * Ranks are sparse 64-bit numbers, so that a new rule can be ranked between two others without
 * renumbering the set (see filter-compile.c). */
struct ps_filter_value {
        __u64 rank;        /* 0: no deciding rule here */
        __u64 count_rank;  /* 0: no count rule here */
        __u32 slot;        /* counter slot of the deciding rule */
        __u32 action;      /* enum ps_filter_action of the deciding rule */
        __u32 count_slot;
        __u32 pad;
};

/* ps_filter_bank.flags[shape] */
#define PS_SHAPE_KEY4 1 /* its entries are in filter_rules4 (see struct ps_match4) */
/* Gates (filter_gates, below): the shape is looked up only when the gate of its kind lets the
 * packet through. A shape gets the gates of the fields its mask covers whole:
 *   GATE_DPORT  the destination port (all 16 bits): the port's word has the shape's bit;
 *   GATE_TYPE   the ICMP type (all 8 bits): the type's word has the shape's bit;
 *   GATE_SRC24  the top 24 bits of source address word 0, and not word 1 whole (IPv4 /24 to
 *               /32, IPv6 /24 to /63): key ps_gate_key24(), those 24 bits;
 *   GATE_SRC64  source address words 0 and 1 (IPv6 /64 and longer): key ps_gate_key64(), a
 *               24-bit hash of them.
 * A source key has one bit in a bitmap of 2^24 (any source-gated shape has an entry with that
 * key) and, when that bit is set, the shape's bit in a bucket of 2^20 (ps_gate_bucket()):
 * the first is exact for IPv4, the second tells the shapes apart. Two keys may share a bucket
 * (and two IPv6 /64s a key), which costs a lookup, never a verdict. */
#define PS_SHAPE_GATE_DPORT 2
#define PS_SHAPE_GATE_TYPE 4
#define PS_SHAPE_GATE_SRC24 8
#define PS_SHAPE_GATE_SRC64 16
#define PS_SHAPE_GATES (PS_SHAPE_GATE_DPORT | PS_SHAPE_GATE_TYPE | PS_SHAPE_GATE_SRC24 | \
                        PS_SHAPE_GATE_SRC64)

/* filter_gates: an array of 64-bit words (an array map's elements are 8-byte aligned, and the
 * daemon writes whole loads through a mapping of it), one region per bank at
 * bank * PS_GATE_BANK_WORDS: a word per destination port and per ICMP type (the low 32 bits:
 * one per shape), the source key bitmap, then the source buckets, two 32-bit shape masks to a
 * word. A bit is set when some entry of the shape has that value under its mask; a packet
 * whose value lacks the shape's bit cannot match any entry of it, and skips its lookup. Whole
 * loads compute the region exactly (in the inactive bank, before the flip); a single change
 * sets the bits of the entries it writes before writing them and never clears one, like the
 * classes. */
#define PS_GATE_TYPE_OFF 65536u                   /* after one word per destination port */
#define PS_GATE_KEYS_OFF (PS_GATE_TYPE_OFF + 256u) /* after one word per ICMP type */
#define PS_GATE_KEY_BITS 24                       /* 2^24 source keys: a bit each */
#define PS_GATE_BUCKETS_OFF (PS_GATE_KEYS_OFF + (1u << (PS_GATE_KEY_BITS - 6)))
#define PS_GATE_BUCKET_BITS 20                    /* 2^20 buckets: 32 shape bits each */
#define PS_GATE_BANK_WORDS (PS_GATE_BUCKETS_OFF + (1u << (PS_GATE_BUCKET_BITS - 1)))

/* The key of GATE_SRC24: the first three bytes of source address word 0 (network order, as
 * in struct ps_match). */
static inline __u32 ps_gate_key24(__u32 w0)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        w0 = ((w0 & 0xff) << 24) | ((w0 & 0xff00) << 8) | ((w0 >> 8) & 0xff00) | (w0 >> 24);
#endif
        return w0 >> 8;
}

/* The key of GATE_SRC64: a hash of source address words 0 and 1 to 24 bits. */
static inline __u32 ps_gate_key64(__u32 w0, __u32 w1)
{
        __u32 h = (w0 * 0x9e3779b1u) ^ w1;

        h *= 0x85ebca77u;
        h ^= h >> 15;
        return h & ((1u << PS_GATE_KEY_BITS) - 1);
}

/* The bucket of a source key. */
static inline __u32 ps_gate_bucket(__u32 key)
{
        return (key * 0x9e3779b1u) >> (32 - PS_GATE_BUCKET_BITS);
}

/* A packet's class: its family crossed with its protocol (ICMP for IPv4, ICMPv6 for IPv6).
 * ps_filter_bank.classes[shape] has the bit of every class an entry of the shape can match;
 * a packet whose class bit a shape lacks skips that shape's lookup. */
#define PS_CLASS_V4_TCP 0x01
#define PS_CLASS_V4_UDP 0x02
#define PS_CLASS_V4_ICMP 0x04
#define PS_CLASS_V4_OTHER 0x08
#define PS_CLASS_V6_TCP 0x10
#define PS_CLASS_V6_UDP 0x20
#define PS_CLASS_V6_ICMP 0x40
#define PS_CLASS_V6_OTHER 0x80
#define PS_CLASS_V4 0x0f
#define PS_CLASS_V6 0xf0

/* The class bit of a packet (family: PS_FAMILY_IPV4 4, PS_FAMILY_IPV6 6, guard.h); 0 for a
 * family the classifier does not know. */
static inline __u8 ps_filter_class(__u8 family, __u8 proto)
{
        __u8 c;

        if (proto == 6)
                c = PS_CLASS_V4_TCP;
        else if (proto == 17)
                c = PS_CLASS_V4_UDP;
        else if (proto == (family == 6 ? 58 : 1))
                c = PS_CLASS_V4_ICMP;
        else
                c = PS_CLASS_V4_OTHER;
        if (family == 4)
                return c;
        if (family == 6)
                return (__u8) (c << 4);
        return 0;
}

/* filter_banks[bank]: the shapes of that bank. */
struct ps_filter_bank {
        __u32 n_shapes;
        __u32 pad;
        struct ps_match masks[PS_FILTER_MAX_SHAPES];
        __u8 flags[PS_FILTER_MAX_SHAPES];   /* PS_SHAPE_* */
        __u8 classes[PS_FILTER_MAX_SHAPES]; /* PS_CLASS_* */
        /* The same by shape bits (bit i: shape i), which the daemon derives from flags and
         * classes whenever it writes the bank (filter_bank_derive()): a packet ANDs them into
         * the set of shapes it looks up, and visits only those. */
        __u32 class_shapes[8]; /* [bit of the class]: the shapes with that class */
        __u32 gate_shapes[4];  /* [PS_GATE_KIND_*]: the shapes with that gate */
};

#define PS_GATE_KIND_DPORT 0
#define PS_GATE_KIND_TYPE 1
#define PS_GATE_KIND_SRC24 2
#define PS_GATE_KIND_SRC64 3

/* Per-CPU counters of one rule (filter_counters[slot]). */
struct ps_filter_counter {
        __u64 hits;
        __u64 bytes;
        __u64 last_hit; /* CLOCK_MONOTONIC (coarse) ns */
};

/* A sampled drop, sent through the drop_events ring buffer to the daemon (journal + the
 * Filters.Dropped signal). At most PS_DROP_EVENTS_PER_SEC per CPU per second. */
#define PS_DROP_EVENTS_PER_SEC 20
#define PS_DROP_EVENTS_RING (64 * 1024)

struct ps_drop_event {
        __u64 time;    /* CLOCK_MONOTONIC (coarse) ns */
        __u32 slot;    /* counter slot of the rule that dropped it */
        __u32 ifindex; /* the interface it arrived on */
        struct ps_match match;
};

struct ps_drop_budget {
        __u64 window; /* the second (coarse ns / 1e9) the count is for */
        __u32 count;
        __u32 pad;
};

#endif
