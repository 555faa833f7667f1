/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stdint.h>

/*
 * Names of what the packet parser sees — IP protocols, TCP flags, connection states, ICMP
 * types — shared by the daemon (queries, rules, the lock-out probe) and the client (tables).
 */

/* TCP flag bits as on the wire (and in ps_match.tcp_flags / ps_flow_value.tcp_flags). */
#define TCP_FLAG_FIN 0x01u
#define TCP_FLAG_SYN 0x02u
#define TCP_FLAG_RST 0x04u
#define TCP_FLAG_PSH 0x08u
#define TCP_FLAG_ACK 0x10u
#define TCP_FLAG_URG 0x20u
#define TCP_FLAG_ECE 0x40u
#define TCP_FLAG_CWR 0x80u

/* The connection states of ps_flow_value.state (bpf/guard.h PS_STATE_*). */
#define FLOW_STATE_NONE 0
#define FLOW_STATE_SYN 1
#define FLOW_STATE_ESTABLISHED 2
#define FLOW_STATE_FIN 3
#define FLOW_STATE_RST 4

#define PROTOCOL_STRING_MAX 8 /* "udplite" or "255" */

/* "tcp", "udp", "icmp", "icmpv6", "sctp", "gre", "esp", "ah", "udplite" (any case) or 0-255. */
int protocol_from_string(const char *s, uint8_t *ret);
/* The name, or the number in decimal in buf. */
const char *protocol_to_string(uint8_t proto, char buf[static 4]);
/* Whether the protocol has ports the parser reads: tcp, udp, sctp, udplite. */
bool protocol_has_ports(unsigned proto);
/* The ICMP or ICMPv6 types that quote the offending packet's header (errors). */
bool icmp_type_is_error(unsigned proto, unsigned type);

/* "none", "syn", "established", "fin", "rst"; "unknown" for anything else. */
const char *flow_state_to_string(uint8_t state);
int flow_state_from_string(const char *s, uint8_t *ret);

/* "echo-request", "dest-unreachable", …; NULL when the type has no name. */
const char *icmp_type_name(bool ipv6, unsigned type);
