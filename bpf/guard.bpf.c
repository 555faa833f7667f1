// SPDX-License-Identifier: GPL-2.0-only OR MIT
/*
 * packetscope's XDP program: parses each ingress frame once, classifies it against the filter
 * rules (classify.bpf.h), accounts it in the connection and ICMP tables and the per-CPU
 * counters, and passes or drops it. See guard.h and classify.h for the map ABI.
 *
 * Parsing works on offsets from the start of the frame. Every header is fetched through
 * pkt_ptr(), which checks it against two ends: the end of the frame (data_end, what the
 * verifier needs) and the end of the enclosing datagram (what the protocol allows: the IPv4
 * total length or the IPv6 payload length, so Ethernet padding is never read as payload).
 * A header that does not fit, or whose length fields contradict each other, makes the frame
 * malformed: it is counted and passed unclassified, and nothing read from it reaches a table.
 * That is safe only because the kernel drops such frames itself. A frame the kernel would
 * accept but the parser cannot fully classify is decided by a policy that fails closed
 * (packetscoped(8), "Packets the parser cannot classify"): a first fragment without the whole
 * transport header, an IPv6 extension chain longer than PS_IPV6_MAX_EXT, a VLAN stack deeper
 * than PS_VLAN_MAX. Non-first fragments take their first fragment's verdict (frag_verdicts);
 * without one they are classified without ports, and a rule that looks at ports never
 * matches them.
 *
 * Counting rules, so that the counters add up:
 * - every frame lands in exactly one proto bucket: the IP protocol once the IP header (and
 *   the IPv6 extension chain) is valid (TCP, UDP, ICMP for IPv4, ICMPv6 for IPv6, OTHER for
 *   the rest), OTHER before that;
 * - ipv4 / ipv6 / non_ip follow the EtherType after the VLAN tags; a frame too short for its
 *   Ethernet or VLAN header is only malformed;
 * - vlan counts frames whose outer EtherType is a VLAN TPID (802.1Q or 802.1ad);
 * - every frame is either passed or dropped (by a rule: dropped_filter; by a policy:
 *   dropped_tiny_fragments, dropped_long_chains, dropped_deep_vlan; by a ban: dropped_ban,
 *   or dropped_autoban for the packet on which an auto-ban policy banned its source; by panic
 *   mode: dropped_panic).
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <linux/icmp.h>
#include <linux/icmpv6.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "guard.h"
#include "classify.bpf.h"
#include "clock.bpf.h"

struct {
        __uint(type, BPF_MAP_TYPE_LRU_HASH);
        __uint(max_entries, 1048576); /* set from FlowTableSize= before load */
        __type(key, struct ps_flow_key);
        __type(value, struct ps_flow_value);
} flows SEC(".maps");

/* ICMPv6 messages; ICMP (IPv4) ones are in icmp4_flows, under a key a third the size. */
struct {
        __uint(type, BPF_MAP_TYPE_LRU_HASH);
        __uint(max_entries, 65536); /* set from IcmpTableSize= before load */
        __type(key, struct ps_icmp_key);
        __type(value, struct ps_icmp_value);
} icmp_flows SEC(".maps");

struct {
        __uint(type, BPF_MAP_TYPE_LRU_HASH);
        __uint(max_entries, 65536); /* set from IcmpTableSize= before load */
        __type(key, struct ps_icmp4_key);
        __type(value, struct ps_icmp_value);
} icmp4_flows SEC(".maps");

/* struct ps_stats without its last member, icmp: the per-type counts are icmp_stats. */
struct {
        __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
        __uint(max_entries, 1);
        __uint(key_size, sizeof(__u32));
        __uint(value_size, PS_STATS_MAP_SIZE);
} stats SEC(".maps");

struct {
        __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
        __uint(max_entries, 1);
        __type(key, __u32);
        __type(value, struct ps_icmp_stats);
} icmp_stats SEC(".maps");

/* The first fragments' verdicts, for the later fragments; see struct ps_frag_key. Not pinned:
 * the program holds it, and a program swapped in starts with an empty one (a later fragment
 * then is an orphan, decided as documented). */
struct {
        __uint(type, BPF_MAP_TYPE_LRU_HASH);
        __uint(max_entries, PS_FRAG_TABLE_SIZE);
        __type(key, struct ps_frag_key);
        __type(value, struct ps_frag_value);
} frag_verdicts SEC(".maps");

/* Written by the daemon only; see struct ps_meta. */
struct {
        __uint(type, BPF_MAP_TYPE_ARRAY);
        __uint(max_entries, 1);
        __type(key, __u32);
        __type(value, struct ps_meta);
} meta SEC(".maps");

/* Headers the uapi does not export. */
struct ps_vlan_hdr {
        __be16 tci;
        __be16 encap_proto;
};

struct ps_ipv6_frag_hdr {
        __u8 nexthdr;
        __u8 reserved;
        __be16 frag_off; /* offset in 8-byte units << 3 | M flag */
        __be32 identification;
};

#define PS_IP_MF 0x2000
#define PS_IP_OFFSET 0x1fff
#define PS_IP6_OFFSET 0xfff8

#define PS_TCP_FIN 0x01
#define PS_TCP_SYN 0x02
#define PS_TCP_RST 0x04
#define PS_TCP_ACK 0x10

/* What the IP parsers return besides 0 (parsed) and -1 (malformed: the kernel drops it too). */
#define PS_PARSE_TINY 1 /* a first fragment cut before the end of its headers */
#define PS_PARSE_LONG 2 /* an IPv6 extension chain longer than PS_IPV6_MAX_EXT */

/* Everything learnt about one frame while parsing it. */
struct pkt {
        struct xdp_md *ctx;
        void *data;
        void *data_end;
        struct ps_stats *st;
        __u64 len;    /* frame length: what the byte counters add */
        __u64 l3_end; /* offset of the end of the IP datagram (Ethernet padding excluded) */
        __u8 bucket;  /* enum ps_proto_bucket */
        __u8 ttl;     /* TTL / hop limit */
        __u16 ip_id;  /* IPv4 identification, host order */
        __u8 fragmented;     /* a fragment (first or not): length fields describe the datagram */
        __u8 later_fragment; /* a non-first fragment: no transport header here */
        __u8 inner_family;   /* family of the header an ICMP error quotes; 0: none read */
        __u8 l4less;         /* no transport header to classify: rules on one never match */
        __u8 reason;         /* enum ps_policy_reason of a drop no rule made */
        __u8 inner_ports;    /* the quoted header's ports were read */
        __u8 pad[2];
        __u32 frag_id;       /* IPv4 identification or IPv6 fragment identification */
        /* The tuple, filled in while parsing: the flow key's fields (family, protocol,
         * addresses, ports) and what the classifier looks at besides (TCP flags, ICMP type and
         * code, the quoted header). Fields a packet lacks stay zero. The classifier reads it
         * in place; the tables' keys are cut from it. */
        struct ps_match m;
};

/* What a TCP segment tells the flow table. */
struct tcp_seg {
        __u32 seq;
        __u32 ack;
        __u32 seq_end; /* seq + payload length + SYN + FIN */
        __u32 seg_len; /* payload length + SYN + FIN: 0 for a pure ACK */
        __u16 window;
        __u8 flags;
        __u8 pad;
        __u32 payload_off; /* offset of the payload in the frame */
        __u32 payload_len;
};

/* Offsets beyond this are never valid: it keeps every offset the verifier sees bounded. */
#define PS_MAX_OFF 0x3fff

/*
 * A pointer to `size` bytes at offset `off`, or NULL unless they lie inside both the frame and
 * `limit` (the end of the datagram). `size` is a constant at every call, so the verifier sees
 * a fixed-size range check against data_end.
 */
static __always_inline void *pkt_ptr(void *data, void *data_end, __u64 off, __u64 size,
                                     __u64 limit)
{
        void *ptr;

        if (off > PS_MAX_OFF || off + size > limit)
                return NULL;
        ptr = data + off;
        if (ptr + size > data_end)
                return NULL;
        return ptr;
}

static __always_inline void *hdr(const struct pkt *p, __u64 off, __u64 size, __u64 limit)
{
        return pkt_ptr(p->data, p->data_end, off, size, limit);
}

static __always_inline int is_vlan(__u16 proto)
{
        return proto == bpf_htons(ETH_P_8021Q) || proto == bpf_htons(ETH_P_8021AD);
}

/* A VLAN stack deeper than two tags: in, the offset and EtherType after the second tag; out,
 * after the last one. */
struct vlan_walk {
        __u64 off;
        __u64 len;
        __u16 proto;
        __u16 pad[3];
};

/*
 * Walks tags 3 to PS_VLAN_MAX. Linux strips any number of priority tags (VLAN id 0) and
 * delivers what is behind them, so a stack is walked to its end rather than taken for non-IP.
 * Returns 0, -1 when a tag does not fit, -2 when the stack goes on past PS_VLAN_MAX. A global
 * function: verified once, and only such rare frames pay for the call.
 */
__noinline int ps_skip_vlan(struct xdp_md *ctx, struct vlan_walk *w)
{
        void *data = (void *) (long) ctx->data;
        void *data_end = (void *) (long) ctx->data_end;
        __u64 o;
        __u16 proto;

        if (!w)
                return -1;
        o = w->off;
        proto = w->proto;
#pragma unroll
        for (int i = 2; i < PS_VLAN_MAX; i++) {
                struct ps_vlan_hdr *vh;

                if (!is_vlan(proto))
                        break;
                vh = pkt_ptr(data, data_end, o, sizeof(*vh), w->len);
                if (!vh)
                        return -1;
                proto = vh->encap_proto;
                o += sizeof(*vh);
        }
        if (is_vlan(proto))
                return -2;
        w->off = o;
        w->proto = proto;
        return 0;
}

/* Returns 0, -1 for a frame cut inside its Ethernet header or a tag, -2 for a VLAN stack
 * deeper than PS_VLAN_MAX. */
static __always_inline int parse_eth(struct pkt *p, __u64 *ret_off, __u16 *ret_proto)
{
        struct ethhdr *eth = hdr(p, 0, sizeof(*eth), p->len);
        __u64 off = sizeof(*eth);
        __u16 proto;

        if (!eth)
                return -1;
        proto = eth->h_proto;
        if (is_vlan(proto))
                p->st->vlan++;

        /* Two tags inline: 802.1ad outer + 802.1Q inner (QinQ), or one of either; deeper
         * stacks are walked by ps_skip_vlan(). */
#pragma unroll
        for (int i = 0; i < 2; i++) {
                struct ps_vlan_hdr *vh;

                if (!is_vlan(proto))
                        break;
                vh = hdr(p, off, sizeof(*vh), p->len);
                if (!vh)
                        return -1;
                proto = vh->encap_proto;
                off += sizeof(*vh);
        }
        if (is_vlan(proto)) {
                struct vlan_walk w = { .off = off, .len = p->len, .proto = proto };
                int r = ps_skip_vlan(p->ctx, &w);

                if (r < 0)
                        return r;
                off = w.off;
                proto = w.proto;
        }
        *ret_off = off;
        *ret_proto = proto;
        return 0;
}

static __always_inline int parse_ipv4(struct pkt *p, __u64 off, __u64 *ret_l4)
{
        struct iphdr *iph = hdr(p, off, sizeof(*iph), p->len);
        __u64 hlen, tot;
        __u16 frag;

        if (!iph || iph->version != 4 || iph->ihl < 5)
                return -1;
        hlen = iph->ihl * 4;
        tot = bpf_ntohs(iph->tot_len);
        /* The options lie between 20 and hlen, inside tot, inside the frame: no need to read
         * them, only to skip them. */
        if (tot < hlen || tot > p->len - off)
                return -1;
        p->l3_end = off + tot;
        p->m.family = PS_FAMILY_IPV4;
        p->m.proto = iph->protocol;
        p->m.src[0] = iph->saddr;
        p->m.dst[0] = iph->daddr;
        p->ttl = iph->ttl;
        p->ip_id = bpf_ntohs(iph->id);
        p->frag_id = p->ip_id;
        frag = bpf_ntohs(iph->frag_off);
        p->fragmented = (frag & (PS_IP_MF | PS_IP_OFFSET)) != 0;
        p->later_fragment = (frag & PS_IP_OFFSET) != 0;
        *ret_l4 = off + hlen;
        return 0;
}

static __always_inline int ipv6_is_ext(__u8 nh)
{
        return nh == IPPROTO_HOPOPTS || nh == IPPROTO_ROUTING || nh == IPPROTO_FRAGMENT ||
               nh == IPPROTO_DSTOPTS || nh == IPPROTO_AH;
}

/* An IPv6 extension header walk: in, where the chain starts; out, where it ends. */
struct ext_walk {
        __u64 off;        /* in: first header after the fixed one; out: the upper-layer header */
        __u64 limit;      /* end of the datagram (or of the quote) */
        __u8 nh;          /* in: the fixed header's next header; out: the upper-layer protocol
                           * (with -2, the header where the walk stopped) */
        __u8 fragmented;  /* out: a fragment header was crossed */
        __u8 pad[2];
        __u32 frag_id;    /* out: its identification (host order) */
};

/*
 * Walks the extension headers. Returns 0, 1 when a fragment header says this is a non-first
 * fragment (w->nh is then the fragment's protocol and w->off meaningless), -1 when a header
 * does not fit, or -2 when the chain is longer than PS_IPV6_MAX_EXT (w->nh is then the header
 * where the walk stopped). Ordinary packets leave the loop at its first test.
 *
 * A global function on purpose: the verifier checks it once, on its own, instead of once per
 * path that reaches it (each VLAN depth, outer and quoted header, and every way through the
 * loop multiplied by all that follows): inlined, it made the verifier's work 35 times larger.
 */
__noinline int ps_ipv6_skip_ext(struct xdp_md *ctx, struct ext_walk *w)
{
        void *data = (void *) (long) ctx->data;
        void *data_end = (void *) (long) ctx->data_end;
        __u64 o, limit;
        __u8 next;

        if (!w)
                return -1;
        o = w->off;
        limit = w->limit;
        next = w->nh;
#pragma unroll
        for (int i = 0; i < PS_IPV6_MAX_EXT; i++) {
                if (next == IPPROTO_FRAGMENT) {
                        struct ps_ipv6_frag_hdr *fh;

                        fh = pkt_ptr(data, data_end, o, sizeof(*fh), limit);
                        if (!fh)
                                return -1;
                        next = fh->nexthdr;
                        o += sizeof(*fh);
                        w->fragmented = 1;
                        w->frag_id = bpf_ntohl(fh->identification);
                        if (bpf_ntohs(fh->frag_off) & PS_IP6_OFFSET) {
                                w->nh = next;
                                return 1;
                        }
                } else if (next == IPPROTO_HOPOPTS || next == IPPROTO_ROUTING ||
                           next == IPPROTO_DSTOPTS || next == IPPROTO_AH) {
                        /* All four start with (next header, length); AH counts 4-byte words
                         * minus 2, the others 8-byte words minus 1. */
                        struct ipv6_opt_hdr *h = pkt_ptr(data, data_end, o, sizeof(*h), limit);
                        __u64 hlen;

                        if (!h)
                                return -1;
                        hlen = next == IPPROTO_AH ? (h->hdrlen + 2) * 4 : (h->hdrlen + 1) * 8;
                        if (o + hlen > limit)
                                return -1;
                        next = h->nexthdr;
                        o += hlen;
                } else {
                        break;
                }
        }
        if (ipv6_is_ext(next)) {
                w->nh = next;
                return -2;
        }
        w->off = o;
        w->nh = next;
        return 0;
}

static __always_inline int parse_ipv6(struct pkt *p, __u64 off, __u64 *ret_l4)
{
        struct ipv6hdr *ip6 = hdr(p, off, sizeof(*ip6), p->len);
        struct ext_walk w = {};
        __u64 plen;
        int r;

        if (!ip6 || ip6->version != 6)
                return -1;
        plen = bpf_ntohs(ip6->payload_len);
        off += sizeof(*ip6);
        if (plen > p->len - off)
                return -1;
        p->l3_end = off + plen;
        p->m.family = PS_FAMILY_IPV6;
        __builtin_memcpy(p->m.src, &ip6->saddr, sizeof(p->m.src));
        __builtin_memcpy(p->m.dst, &ip6->daddr, sizeof(p->m.dst));
        p->ttl = ip6->hop_limit;
        /* Most datagrams carry no extension header: their upper layer follows the fixed
         * header, and the walk (a call) would stop at its first test. */
        if (!ipv6_is_ext(ip6->nexthdr)) {
                p->m.proto = ip6->nexthdr;
                *ret_l4 = off;
                return 0;
        }
        w.off = off;
        w.limit = p->l3_end;
        w.nh = ip6->nexthdr;
        r = ps_ipv6_skip_ext(p->ctx, &w);
        p->fragmented = w.fragmented;
        p->frag_id = w.frag_id;
        if (r == -2) {
                /* Classified on what is known: the protocol is the header the walk stopped at. */
                p->m.proto = w.nh;
                return PS_PARSE_LONG;
        }
        if (r < 0)
                /* RFC 7112: a first fragment holds the whole header chain. One cut inside it
                 * is tiny; a datagram that is not a fragment is just truncated. */
                return w.fragmented ? PS_PARSE_TINY : -1;
        p->m.proto = w.nh;
        p->later_fragment = r == 1;
        *ret_l4 = w.off;
        return 0;
}

static __always_inline int parse_tcp(struct pkt *p, __u64 off, struct tcp_seg *t)
{
        struct tcphdr *th = hdr(p, off, sizeof(*th), p->l3_end);
        __u64 hlen, payload;

        if (!th || th->doff < 5)
                return -1;
        hlen = th->doff * 4;
        if (off + hlen > p->l3_end)
                return -1;
        p->m.sport = bpf_ntohs(th->source);
        p->m.dport = bpf_ntohs(th->dest);
        /* Byte 13 of the header is the flag byte (CWR ECE URG ACK PSH RST SYN FIN). */
        t->flags = ((__u8 *) th)[13];
        p->m.tcp_flags = t->flags;
        t->seq = bpf_ntohl(th->seq);
        t->ack = bpf_ntohl(th->ack_seq);
        t->window = bpf_ntohs(th->window);
        payload = p->l3_end - off - hlen;
        t->payload_off = off + hlen;
        t->payload_len = payload;
        t->seg_len = payload + !!(t->flags & PS_TCP_SYN) + !!(t->flags & PS_TCP_FIN);
        t->seq_end = t->seq + t->seg_len;
        return 0;
}

static __always_inline int parse_udp(struct pkt *p, __u64 off)
{
        struct udphdr *uh = hdr(p, off, sizeof(*uh), p->l3_end);
        __u64 ulen;

        if (!uh)
                return -1;
        /* A fragment's UDP length describes the whole datagram, not this piece of it. */
        ulen = bpf_ntohs(uh->len);
        if (!p->fragmented && (ulen < sizeof(*uh) || ulen > p->l3_end - off))
                return -1;
        p->m.sport = bpf_ntohs(uh->source);
        p->m.dport = bpf_ntohs(uh->dest);
        return 0;
}

/* SCTP and UDP-Lite start with their ports, as UDP does; rules may name them. */
static __always_inline int parse_ports(struct pkt *p, __u64 off)
{
        __be16 *ports = hdr(p, off, 2 * sizeof(*ports), p->l3_end);

        if (!ports)
                return -1;
        p->m.sport = bpf_ntohs(ports[0]);
        p->m.dport = bpf_ntohs(ports[1]);
        return 0;
}

/* The first four bytes of a quoted TCP or UDP header are its ports. A quote too short for
 * them leaves them zero: guard.h documents that, it is not malformed. */
static __always_inline void inner_ports(struct pkt *p, __u64 off)
{
        __be16 *ports;

        if (p->m.inner_proto != IPPROTO_TCP && p->m.inner_proto != IPPROTO_UDP)
                return;
        ports = hdr(p, off, 2 * sizeof(*ports), p->l3_end);
        if (!ports)
                return;
        p->m.inner_sport = bpf_ntohs(ports[0]);
        p->m.inner_dport = bpf_ntohs(ports[1]);
        p->inner_ports = 1;
}

/* The quoted datagram's header, or -1 (and nothing written) if the quote cannot hold it. */
static __always_inline int parse_inner_ipv4(struct pkt *p, __u64 off)
{
        struct iphdr *iph = hdr(p, off, sizeof(*iph), p->l3_end);
        __u64 hlen;

        if (!iph || iph->version != 4 || iph->ihl < 5)
                return -1;
        hlen = iph->ihl * 4;
        if (off + hlen > p->l3_end)
                return -1;
        p->inner_family = PS_FAMILY_IPV4;
        p->m.inner_proto = iph->protocol;
        p->m.inner_src[0] = iph->saddr;
        p->m.inner_dst[0] = iph->daddr;
        /* The quoted datagram's IHL is honoured: its ports follow its options. */
        if (!(bpf_ntohs(iph->frag_off) & PS_IP_OFFSET))
                inner_ports(p, off + hlen);
        return 0;
}

static __always_inline int parse_inner_ipv6(struct pkt *p, __u64 off)
{
        struct ipv6hdr *ip6 = hdr(p, off, sizeof(*ip6), p->l3_end);
        struct ext_walk w = {};
        int r;

        if (!ip6 || ip6->version != 6)
                return -1;
        p->inner_family = PS_FAMILY_IPV6;
        __builtin_memcpy(p->m.inner_src, &ip6->saddr, sizeof(p->m.inner_src));
        __builtin_memcpy(p->m.inner_dst, &ip6->daddr, sizeof(p->m.inner_dst));
        p->m.inner_proto = ip6->nexthdr;
        /* A quoted extension chain is walked like the outer one. If the quote ends inside it,
         * the first next-header value stays; a non-first fragment has its protocol but no
         * ports. */
        w.off = off + sizeof(*ip6);
        w.limit = p->l3_end;
        w.nh = ip6->nexthdr;
        r = ps_ipv6_skip_ext(p->ctx, &w);
        if (r >= 0)
                p->m.inner_proto = w.nh;
        if (r == 0)
                inner_ports(p, w.off);
        return 0;
}

static __always_inline int icmp_is_error(__u8 family, __u8 type)
{
        if (family == PS_FAMILY_IPV4)
                return type == ICMP_DEST_UNREACH || type == ICMP_SOURCE_QUENCH ||
                       type == ICMP_REDIRECT || type == ICMP_TIME_EXCEEDED ||
                       type == ICMP_PARAMETERPROB;
        return type == ICMPV6_DEST_UNREACH || type == ICMPV6_PKT_TOOBIG ||
               type == ICMPV6_TIME_EXCEED || type == ICMPV6_PARAMPROB;
}

/*
 * The flow entry of the packet's tuple, created on first sight. Every field is a plain store
 * or addition (guard.h, struct ps_flow_value): the counters (packets, bytes, retransmits) and
 * the OR of tcp_flags lose an update only when two CPUs handle packets of the same flow in the
 * same instant, which RSS, steering a flow to one queue, makes rare; an atomic addition cost
 * a locked instruction per counter and packet. The rest is last-writer-wins.
 */
/* Keeps a verdict reached by classification, if its rule set allows it to be reused. */
static __always_inline void verdict_store(struct ps_verdict_cache *c, const struct ps_verdict *vd)
{
        if (!(vd->state & PS_FILTER_STATE_CACHEABLE))
                return;
        c->state = vd->state;
        c->action = (__u16) vd->action;
        c->slot = vd->slot;
        c->count_slot = vd->count_slot;
        c->flags = PS_VERDICT_VALID | (vd->has_count ? PS_VERDICT_COUNT : 0);
}

/* The message's entry in its family's ICMP table; with init, created first if need be
 * (BPF_NOEXIST: when another CPU created it meanwhile, its stays). */
static __always_inline struct ps_icmp_value *icmp_entry(const struct pkt *p,
                                                        const struct ps_icmp_value *init)
{
        if (p->m.family == PS_FAMILY_IPV4) {
                struct ps_icmp4_key k4 = {
                        .type = p->m.icmp_type,
                        .code = p->m.icmp_code,
                        .src = p->m.src[0],
                        .dst = p->m.dst[0],
                };
                struct ps_icmp_value *v;

                if (init)
                        bpf_map_update_elem(&icmp4_flows, &k4, init, BPF_NOEXIST);
                v = bpf_map_lookup_elem(&icmp4_flows, &k4);
                ps_own_call_site(v);
                return v;
        } else {
                struct ps_icmp_key key;

                __builtin_memset(&key, 0, sizeof(key));
                key.family = p->m.family;
                key.type = p->m.icmp_type;
                key.code = p->m.icmp_code;
                __builtin_memcpy(key.src, p->m.src, sizeof(key.src));
                __builtin_memcpy(key.dst, p->m.dst, sizeof(key.dst));
                if (init)
                        bpf_map_update_elem(&icmp_flows, &key, init, BPF_NOEXIST);
                return bpf_map_lookup_elem(&icmp_flows, &key);
        }
}

static __always_inline void flow_key_of(const struct pkt *p, struct ps_flow_key *key)
{
        __builtin_memset(key, 0, sizeof(*key));
        key->family = p->m.family;
        key->proto = p->m.proto;
        key->sport = p->m.sport;
        key->dport = p->m.dport;
        __builtin_memcpy(key->src, p->m.src, sizeof(key->src));
        __builtin_memcpy(key->dst, p->m.dst, sizeof(key->dst));
}

/*
 * The flow entry of this packet (`v`: already looked up, or NULL to create it), accounted;
 * a verdict reached by classification under a cacheable rule set is kept in it for the
 * flow's next packets.
 */
static __always_inline void flow_account(struct pkt *p, const struct tcp_seg *t, __u64 now,
                                         struct ps_flow_value *v, const struct ps_verdict *vd,
                                         int store_verdict)
{
        struct ps_flow_key key;
        int fresh = 0;

        /* The key is only needed to create the entry: a known flow's was built by the caller. */
        if (!v) {
                flow_key_of(p, &key);
                /* The first segment seen sets the retransmission baseline: seq + length, which
                 * for a pure ACK is the next byte the remote end will send. */
                struct ps_flow_value init = {
                        .first_seen = now,
                        .max_seq_end = t ? t->seq_end : 0,
                };

                /* NOEXIST: when another CPU created the entry meanwhile, keep its. */
                fresh = bpf_map_update_elem(&flows, &key, &init, BPF_NOEXIST) == 0;
                v = bpf_map_lookup_elem(&flows, &key);
                if (!v) {
                        p->st->flow_update_fail++;
                        return;
                }
        }
        v->packets++;
        v->bytes += p->len;
        v->last_seen = now;
        v->ip_id = p->ip_id;
        v->ttl = p->ttl;
        if (store_verdict)
                verdict_store(&v->verdict, vd);
        if (!t)
                return;

        v->seq = t->seq;
        v->ack = t->ack;
        v->window = t->window;
        v->last_flags = t->flags;
        v->tcp_flags |= t->flags;

        /* RST ends a flow for good; FIN too, unless an RST follows. */
        if (t->flags & PS_TCP_RST)
                v->state = PS_STATE_RST;
        else if (v->state != PS_STATE_RST && v->state != PS_STATE_FIN) {
                if (t->flags & PS_TCP_FIN)
                        v->state = PS_STATE_FIN;
                else if ((t->flags & (PS_TCP_ACK | PS_TCP_SYN)) == PS_TCP_ACK)
                        v->state = PS_STATE_ESTABLISHED;
                else if (t->flags & PS_TCP_SYN)
                        v->state = PS_STATE_SYN;
        }

        /* Retransmission estimate: a segment that occupies sequence space (data, SYN or FIN)
         * but ends at or before the highest end seen repeats bytes already sent. Serial
         * arithmetic survives the wrap at 2^32. Pure ACKs neither count nor move the mark. */
        if (!fresh && t->seg_len) {
                if ((__s32) (t->seq_end - v->max_seq_end) <= 0)
                        v->retransmits++;
                else
                        v->max_seq_end = t->seq_end;
        }
}

static __always_inline void icmp_account(struct pkt *p, int is_error, __u64 now,
                                         struct ps_icmp_value *v, const struct ps_verdict *vd,
                                         int store_verdict)
{
        if (!v) {
                struct ps_icmp_value init = { .first_seen = now };

                v = icmp_entry(p, &init);
                if (!v) {
                        p->st->flow_update_fail++;
                        return;
                }
        }
        /* Plain additions, as in a flow entry (flow_account()): a locked addition per counter
         * and message cost more than the rest of the update. */
        v->packets++;
        v->bytes += p->len;
        v->last_seen = now;
        if (!is_error) {
                /* Only messages without a quote: an error's inner header varies per packet. */
                if (store_verdict)
                        verdict_store(&v->verdict, vd);
                return;
        }
        /* The last error's quote; all zero (inner_family 0) when it was too short. */
        v->is_error = 1;
        v->inner_family = p->inner_family;
        v->inner_proto = p->m.inner_proto;
        v->inner_sport = p->m.inner_sport;
        v->inner_dport = p->m.inner_dport;
        __builtin_memcpy(v->inner_src, p->m.inner_src, sizeof(v->inner_src));
        __builtin_memcpy(v->inner_dst, p->m.inner_dst, sizeof(v->inner_dst));
}

/*
 * The filter verdict for this packet (after parsing, before accounting), on the tuple parsing
 * filled in. The winning rule and, in shadow mode, the count rule that would have won are
 * counted.
 */
static __always_inline void decide(struct pkt *p, __u64 now, struct ps_verdict *v)
{
        if (v->action != PS_ACTION_NONE)
                rule_account(v->slot, p->len, now);
        if (v->has_count)
                rule_account(v->count_slot, p->len, now);
        if (v->action == PS_ACTION_DROP)
                drop_event(p->ctx, &p->m, v->slot, now, &p->st->drop_events_lost);
}

/* The verdict kept in a flow or ICMP entry, if the rule set is the one it was reached under. */
static __always_inline int cached_verdict(const struct ps_verdict_cache *c, struct ps_verdict *v)
{
        __u32 state;

        if (!c || !(c->flags & PS_VERDICT_VALID))
                return 0;
        state = filter_state_now();
        if (!(state & PS_FILTER_STATE_CACHEABLE) || c->state != state)
                return 0;
        v->action = c->action;
        v->slot = c->slot;
        v->count_slot = c->count_slot;
        v->has_count = !!(c->flags & PS_VERDICT_COUNT);
        v->state = state;
        return 1;
}

/*
 * ICMP and ICMPv6 share the 8-byte header layout (type, code, checksum, 4 more bytes), and
 * every message of either has at least those 8 bytes; errors quote the offending datagram
 * right after them. Returns -1 without those 8 bytes, 1 for an error whose quote is too short
 * for its IP header, 0 otherwise. The short quote makes the frame malformed, but the message
 * is still classified and accounted (is_error set, inner zero): it was received, and its
 * outer addresses are sound.
 */
static __always_inline int parse_icmp(struct pkt *p, __u64 off, int *ret_is_error)
{
        __u8 *h = hdr(p, off, 8, p->l3_end);
        struct ps_icmp_stats *types;
        __u32 zero = 0;
        int is_error, r = 0;

        if (!h)
                return -1;
        p->m.icmp_type = h[0];
        p->m.icmp_code = h[1];
        types = bpf_map_lookup_elem(&icmp_stats, &zero);
        if (types) {
                if (p->m.family == PS_FAMILY_IPV4)
                        types->icmp_type[p->m.icmp_type]++;
                else
                        types->icmpv6_type[p->m.icmp_type]++;
        }
        is_error = icmp_is_error(p->m.family, p->m.icmp_type);
        if (is_error) {
                p->st->icmp_errors++;
                if ((p->m.family == PS_FAMILY_IPV4 ? parse_inner_ipv4(p, off + 8) :
                                                     parse_inner_ipv6(p, off + 8)) < 0)
                        r = 1;
        }
        *ret_is_error = is_error;
        return r;
}

/* Whether the administrator lets packets of this kind pass (ps_meta.policy); read only for
 * packets the parser cannot fully classify. Without a meta entry: no. */
static __always_inline int policy_pass(__u32 bit)
{
        __u32 zero = 0;
        struct ps_meta *m = bpf_map_lookup_elem(&meta, &zero);

        return m && (m->policy & bit);
}

static __always_inline void frag_key_of(const struct pkt *p, struct ps_frag_key *key)
{
        __builtin_memset(key, 0, sizeof(*key));
        key->family = p->m.family;
        /* IPv4 reassembles per protocol too; IPv6 by addresses and identification only, and
         * its first fragment's protocol (past any header behind the fragment header) need not
         * be the next header the later fragments name. */
        key->proto = p->m.family == PS_FAMILY_IPV4 ? p->m.proto : 0;
        key->id = p->frag_id;
        __builtin_memcpy(key->src, p->m.src, sizeof(key->src));
        __builtin_memcpy(key->dst, p->m.dst, sizeof(key->dst));
}

/* A first fragment's verdict, for the later fragments of its datagram. */
static __always_inline void frag_remember(const struct pkt *p, __u64 now,
                                          const struct ps_verdict *v)
{
        struct ps_frag_key key;
        struct ps_frag_value val = {
                .expires = now + (p->m.family == PS_FAMILY_IPV4 ? PS_FRAG_TIMEOUT4_NS :
                                                                  PS_FRAG_TIMEOUT6_NS),
                .action = v->action,
                .slot = v->slot,
                .count_slot = v->count_slot,
                .has_count = !!v->has_count,
                .reason = p->reason,
        };

        frag_key_of(p, &key);
        bpf_map_update_elem(&frag_verdicts, &key, &val, BPF_ANY);
}

/* The verdict of this later fragment's first fragment, if it was seen and is not too old. */
static __always_inline int frag_follow(struct pkt *p, __u64 now, struct ps_verdict *v)
{
        struct ps_frag_key key;
        struct ps_frag_value *f;

        frag_key_of(p, &key);
        f = bpf_map_lookup_elem(&frag_verdicts, &key);
        if (!f || (__s64) (f->expires - now) <= 0)
                return 0;
        v->action = f->action;
        v->slot = f->slot;
        v->count_slot = f->count_slot;
        v->has_count = f->has_count;
        v->state = 0;
        p->reason = f->reason;
        return 1;
}

#include "bans.bpf.h"
#include "panic.bpf.h"

/*
 * Whether the auto-ban policies can have anything to say about this TCP or UDP packet (fv: its
 * flow entry, NULL for a new flow). They look at a flow's first packet, a SYN that opens a
 * connection, FIN and RST, and TCP payload (request lines); every other packet of a known
 * flow, most of them, skips the call and its three map lookups. The SYN test is
 * ps_ban_policies()'s own (`fresh`): a SYN without ACK on a flow that was closed (FIN or RST)
 * opens a new connection on its tuple; a retransmitted SYN, or a SYN-ACK, of a flow that is
 * still open counts nowhere.
 */
static __always_inline int policies_look_at(const struct pkt *p, const struct tcp_seg *t,
                                            const struct ps_flow_value *fv)
{
        if (!fv)
                return 1;
        if (p->bucket != PS_PROTO_TCP)
                return 0;
        if ((t->flags & (PS_TCP_FIN | PS_TCP_RST)) || t->payload_len)
                return 1;
        return (t->flags & (PS_TCP_SYN | PS_TCP_ACK)) == PS_TCP_SYN &&
               (fv->state == PS_STATE_FIN || fv->state == PS_STATE_RST);
}

/* Benchmark builds only (bench/meson.build): a nonzero PS_BENCH_STAGE ends handle_ip() after
 * that stage, so bench-xdp can price each one: 1 parsing and its counters, 2 + the allowlist
 * and ban check, 3 + the flow lookup and classification (or the flow's cached verdict),
 * without the flow update. The program the daemon loads is always whole (0). */
#ifndef PS_BENCH_STAGE
#define PS_BENCH_STAGE 0
#endif

/*
 * Parses, classifies and accounts one IP datagram at offset off; returns -1 if it is malformed
 * (then it is passed unclassified: a header we cannot read is a header no rule can match, and
 * the kernel drops such a datagram too; with one exception: an ICMP error with a short quote
 * is classified and accounted, yet malformed). *action is the verdict (enum ps_filter_action),
 * p->reason why, when no rule made it a drop. Parsing comes first and fills in the whole
 * tuple; then the one classification; then the accounting. One call site for each keeps the
 * program, its stack and the verifier's work small.
 *
 * What cannot be fully parsed yet would be accepted by the kernel: a first fragment without
 * its whole transport header or (IPv6) header chain, an IPv6 chain longer than the walk, a
 * non-first fragment. These are never tabled; the first two are dropped unless their policy
 * says pass, and are then classified without a transport header, as non-first fragments whose
 * first fragment was not seen are. A first fragment's verdict is kept for its later ones.
 */
static __always_inline int handle_ip(struct pkt *p, __u16 eth_proto, __u64 off, __u32 *action)
{
        struct tcp_seg seg = {};
        struct ps_flow_value *fv = NULL;
        struct ps_icmp_value *iv = NULL;
        struct ps_verdict v;
        int r, is_error = 0, short_quote = 0, flowed, hit = 0, ban_args = 0;
        __u64 l4 = 0;
        __u64 now;

        if (eth_proto == bpf_htons(ETH_P_IP)) {
                p->st->ipv4++;
                r = parse_ipv4(p, off, &l4);
        } else {
                p->st->ipv6++;
                r = parse_ipv6(p, off, &l4);
        }
        if (r < 0)
                return -1;

        if (p->m.proto == IPPROTO_TCP)
                p->bucket = PS_PROTO_TCP;
        else if (p->m.proto == IPPROTO_UDP)
                p->bucket = PS_PROTO_UDP;
        else if (p->m.proto == IPPROTO_ICMP && p->m.family == PS_FAMILY_IPV4)
                p->bucket = PS_PROTO_ICMP;
        else if (p->m.proto == IPPROTO_ICMPV6 && p->m.family == PS_FAMILY_IPV6)
                p->bucket = PS_PROTO_ICMPV6;

        /* A non-first fragment has no transport header: counted, not tabled (ports unknown). */
        if (r == 0) {
                if (p->later_fragment)
                        p->st->fragments++;
                else if (p->bucket == PS_PROTO_TCP)
                        r = parse_tcp(p, l4, &seg);
                else if (p->bucket == PS_PROTO_UDP)
                        r = parse_udp(p, l4);
                else if (p->bucket == PS_PROTO_ICMP || p->bucket == PS_PROTO_ICMPV6) {
                        r = parse_icmp(p, l4, &is_error);
                        if (r == 1) {
                                short_quote = 1;
                                r = 0;
                        }
                } else if (p->m.proto == IPPROTO_SCTP || p->m.proto == IPPROTO_UDPLITE)
                        r = parse_ports(p, l4);
                /* A first fragment cut inside its transport header is tiny (RFC 1858, 3128):
                 * the kernel reassembles it into a datagram no rule has seen whole. A datagram
                 * that is not a fragment is just truncated, and the kernel drops it. */
                if (r < 0) {
                        if (!p->fragmented)
                                return -1;
                        r = PS_PARSE_TINY;
                }
        }

        /* Panic mode: only management traffic goes on to bans and rules. */
        if (panic_on() &&
            !ps_panic_pass(&p->m, (r == 0 && !p->later_fragment ? PS_PANIC_L4 : 0) |
                                  (p->inner_ports ? PS_PANIC_QUOTE : 0) |
                                  (p->ttl == 255 ? PS_PANIC_ONLINK : 0))) {
                p->reason = PS_REASON_PANIC;
                *action = PS_ACTION_DROP;
                return 0;
        }

        /* The coarse clock (tick resolution), read once per jiffy and CPU (coarse_now()):
         * first and last seen need no better than ticks. */
        now = coarse_now();
        if (PS_BENCH_STAGE == 1)
                return 0;

        /* A banned source is dropped whatever it sends, before any rule is looked at. */
        if (ban_check(p, &seg, now, &ban_args)) {
                p->reason = PS_REASON_BAN;
                *action = PS_ACTION_DROP;
                drop_event(p->ctx, &p->m, PS_DROP_SLOT_BAN, now, &p->st->drop_events_lost);
                return 0;
        }
        if (PS_BENCH_STAGE == 2)
                return 0;

        if (r > 0 || p->later_fragment) {
                if (r == PS_PARSE_TINY) {
                        p->st->tiny_fragments++;
                        if (!policy_pass(PS_POLICY_PASS_TINY_FRAGMENTS))
                                p->reason = PS_REASON_TINY_FRAGMENT;
                } else if (r == PS_PARSE_LONG) {
                        p->st->long_chains++;
                        if (!policy_pass(PS_POLICY_PASS_LONG_CHAINS))
                                p->reason = PS_REASON_LONG_CHAIN;
                }
                p->l4less = 1;
                /* Whatever the first fragment got, its later fragments get. */
                if (r == 0 && frag_follow(p, now, &v)) {
                        p->st->fragments_followed++;
                        if (p->reason == PS_REASON_RULE)
                                decide(p, now, &v);
                        *action = v.action;
                        return 0;
                }
                if (r == 0)
                        p->st->fragments_orphan++;
                if (p->reason != PS_REASON_RULE) {
                        v.action = PS_ACTION_DROP;
                        v.slot = 0;
                        v.count_slot = 0;
                        v.has_count = 0;
                        v.state = 0;
                        *action = PS_ACTION_DROP;
                        if (p->fragmented && !p->later_fragment)
                                frag_remember(p, now, &v);
                        return 0;
                }
        }

        /* A packet of a known flow under an unchanged, flow-cacheable rule set takes the
         * flow's verdict: the classifier runs once per flow and rule set, not per packet. */
        flowed = !p->l4less && p->bucket != PS_PROTO_ICMP && p->bucket != PS_PROTO_ICMPV6;
        if (flowed) {
                struct ps_flow_key key;

                flow_key_of(p, &key);
                fv = bpf_map_lookup_elem(&flows, &key);
                /* The auto-ban policies see the packet before any rule: one that bans its
                 * source drops it. */
                if ((p->bucket == PS_PROTO_TCP || p->bucket == PS_PROTO_UDP) &&
                    policies_look_at(p, &seg, fv) &&
                    (ban_args || ban_args_fill(p, &seg, now)) &&
                    ban_policies(p->ctx, fv ? 1 + fv->state : 0)) {
                        /* Reported by its ban event (ban_events). */
                        p->reason = PS_REASON_AUTOBAN;
                        *action = PS_ACTION_DROP;
                        return 0;
                }
                hit = cached_verdict(fv ? &fv->verdict : NULL, &v);
        } else if (!p->l4less) {
                iv = icmp_entry(p, NULL);
                hit = !is_error && cached_verdict(iv ? &iv->verdict : NULL, &v);
        }
        if (!hit)
                classify(&p->m,
                         (p->l4less ? PS_CLS_NO_L4 : 0) |
                         (!p->inner_family ? PS_CLS_NO_QUOTE :
                          !p->inner_ports ? PS_CLS_NO_QPORTS : 0), &v);
        decide(p, now, &v);
        *action = v.action;
        if (PS_BENCH_STAGE == 3)
                return 0;
        if (p->fragmented && !p->later_fragment)
                frag_remember(p, now, &v);

        if (p->l4less)
                return 0;
        if (!flowed) {
                icmp_account(p, is_error, now, iv, &v, !hit);
                return short_quote ? -1 : 0;
        }
        /* TCP, UDP, and other IP protocols: one entry per address pair and protocol, ports 0
         * for those without. */
        flow_account(p, p->bucket == PS_PROTO_TCP ? &seg : NULL, now, fv, &v, !hit);
        return 0;
}

SEC("xdp")
int xdp_guard(struct xdp_md *ctx)
{
        __u32 zero = 0, action = PS_ACTION_NONE, verdict = XDP_PASS;
        __u64 off;
        struct pkt p;
        __u16 proto;
        int r, other = 0;

        __builtin_memset(&p, 0, sizeof(p));
        p.ctx = ctx;
        p.data = (void *) (long) ctx->data;
        p.data_end = (void *) (long) ctx->data_end;
        p.len = p.data_end - p.data;
        p.bucket = PS_PROTO_OTHER;
        p.st = bpf_map_lookup_elem(&stats, &zero);
        if (p.st) {
                p.st->packets++;
                p.st->bytes += p.len;
                r = parse_eth(&p, &off, &proto);
                if (r == -2) {
                        /* Deeper than the walk: what follows the tags is not known. */
                        p.st->deep_vlan++;
                        p.st->non_ip++;
                        other = 1;
                        if (!policy_pass(PS_POLICY_PASS_LONG_CHAINS)) {
                                p.reason = PS_REASON_DEEP_VLAN;
                                action = PS_ACTION_DROP;
                        }
                } else if (r < 0) {
                        p.st->malformed++;
                        other = 1;
                } else if (proto == bpf_htons(ETH_P_IP) || proto == bpf_htons(ETH_P_IPV6)) {
                        if (handle_ip(&p, proto, off, &action) < 0) {
                                p.st->malformed++;
                                other = 1;
                        }
                } else {
                        p.st->non_ip++;
                        other = proto != bpf_htons(ETH_P_ARP);
                }
                /* Panic mode drops what handle_ip() could not judge: frames the parser gave up
                 * on and frames that are neither IP nor ARP. */
                if (other && action != PS_ACTION_DROP && panic_on()) {
                        p.reason = PS_REASON_PANIC;
                        action = PS_ACTION_DROP;
                }
                if (p.bucket < _PS_PROTO_MAX) {
                        p.st->proto_packets[p.bucket]++;
                        p.st->proto_bytes[p.bucket] += p.len;
                }
                if (action == PS_ACTION_DROP) {
                        p.st->dropped++;
                        if (p.reason == PS_REASON_TINY_FRAGMENT)
                                p.st->dropped_tiny_fragments++;
                        else if (p.reason == PS_REASON_LONG_CHAIN)
                                p.st->dropped_long_chains++;
                        else if (p.reason == PS_REASON_DEEP_VLAN)
                                p.st->dropped_deep_vlan++;
                        else if (p.reason == PS_REASON_BAN)
                                p.st->dropped_ban++;
                        else if (p.reason == PS_REASON_AUTOBAN)
                                p.st->dropped_autoban++;
                        else if (p.reason == PS_REASON_PANIC)
                                p.st->dropped_panic++;
                        else
                                p.st->dropped_filter++;
                        verdict = XDP_DROP;
                } else {
                        p.st->passed++;
                }
        }
        return verdict;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
