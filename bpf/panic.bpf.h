/* SPDX-License-Identifier: GPL-2.0-only OR MIT */
/*
 * Panic mode of guard.bpf.c (guard.h, "Panic mode"; README.md, "Panic mode"): the flag and the
 * management ports in panic[0], the management addresses in two tries of their own. Included
 * once, by guard.bpf.c, after its packet structures.
 */
#ifndef PACKETSCOPE_PANIC_BPF_H
#define PACKETSCOPE_PANIC_BPF_H

/* Shared by every link's program: the daemon creates and pins them in <bpffs-root>/:panic. */
struct {
        __uint(type, BPF_MAP_TYPE_ARRAY);
        __uint(max_entries, 1);
        __type(key, __u32);
        __type(value, struct ps_panic);
} panic SEC(".maps");

/* ManagementAddresses=; the value is the prefix length, for the daemon. */
struct {
        __uint(type, BPF_MAP_TYPE_LPM_TRIE);
        __uint(max_entries, PS_PANIC_ADDR_MAX);
        __uint(map_flags, BPF_F_NO_PREALLOC);
        __type(key, struct ps_lpm4_key);
        __type(value, __u32);
} panic_addr4 SEC(".maps");

struct {
        __uint(type, BPF_MAP_TYPE_LPM_TRIE);
        __uint(max_entries, PS_PANIC_ADDR_MAX);
        __uint(map_flags, BPF_F_NO_PREALLOC);
        __type(key, struct ps_lpm6_key);
        __type(value, __u32);
} panic_addr6 SEC(".maps");

/* The trie key, off the stack: the program's frames leave its callees little room. */
struct {
        __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
        __uint(max_entries, 1);
        __type(key, __u32);
        __type(value, struct ps_lpm6_key);
} panic_scratch SEC(".maps");

/* What ps_panic_pass() may rely on in the match. */
#define PS_PANIC_L4 1     /* the transport header was read: ports, TCP flags, ICMP type */
#define PS_PANIC_QUOTE 2  /* an ICMP error whose quoted ports were read */
#define PS_PANIC_ONLINK 4 /* hop limit 255: sent on this link (RFC 4861) */

static __always_inline int panic_on(void)
{
        __u32 zero = 0;
        struct ps_panic *pn = bpf_map_lookup_elem(&panic, &zero);

        return pn && pn->on;
}

/*
 * 1 when panic mode lets this IP packet on to bans and rules, 0 to drop it. A global function:
 * verified once, on its own, and only packets that arrive in panic mode pay for the call.
 */
__noinline int ps_panic_pass(struct ps_match *m, __u32 what)
{
        __u32 zero = 0;
        struct ps_panic *pn = bpf_map_lookup_elem(&panic, &zero);
        struct ps_lpm6_key *k = bpf_map_lookup_elem(&panic_scratch, &zero);
        int tcp, quote, reply;
        __u32 n;

        if (!m || !pn || !k)
                return 0;
        k->prefixlen = m->family == PS_FAMILY_IPV4 ? 32 : 128;
        __builtin_memcpy(k->addr, m->src, sizeof(k->addr));
        /* struct ps_lpm4_key is the first 8 bytes of the IPv6 one. */
        if (m->family == PS_FAMILY_IPV4) {
                if (bpf_map_lookup_elem(&panic_addr4, k))
                        return 1;
        } else if (bpf_map_lookup_elem(&panic_addr6, k)) {
                return 1;
        }
        if ((what & PS_PANIC_L4) && (what & PS_PANIC_ONLINK) && m->family == PS_FAMILY_IPV6 &&
            m->proto == IPPROTO_ICMPV6 && m->icmp_type >= 133 && m->icmp_type <= 136)
                return 1;
        tcp = (what & PS_PANIC_L4) && m->proto == IPPROTO_TCP;
        quote = (what & PS_PANIC_QUOTE) && m->inner_proto == IPPROTO_TCP;
        if (!tcp && !quote)
                return 0;
        reply = !!(m->tcp_flags & (PS_TCP_ACK | PS_TCP_RST));
        n = pn->n_ports;
        for (int i = 0; i < PS_PANIC_PORTS_MAX; i++) {
                __u16 port;

                if (i >= n)
                        break;
                port = pn->ports[i];
                if (tcp && (m->dport == port || (reply && m->sport == port)))
                        return 1;
                if (quote && (m->inner_sport == port || m->inner_dport == port))
                        return 1;
        }
        return 0;
}

#endif
