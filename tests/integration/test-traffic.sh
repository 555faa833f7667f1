#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Real traffic through a guarded veth, counted exactly. The XDP program sees what arrives on the
# host side, i.e. what the namespace sends:
#   - 5 IPv4 echo requests and 3 IPv6 echo requests (the replies leave the host: not seen);
#   - one TCP connection from the namespace: SYN, ACK, 1000 bytes, FIN, ACK of the peer's FIN;
#   - 7 UDP datagrams of 100 bytes from one socket, later 3 more from the same port;
#   - one UDP datagram from the host to a closed port in the namespace, whose ICMP port
#     unreachable (quoting it) comes back.
# Neighbour entries are static, so no ARP or neighbour discovery adds to the IPv4 counts; the
# kernel's own IPv6 chatter (MLD reports, DAD of the link-local address) still does, so IPv6
# totals are checked against the per-type counts rather than as constants.

set -u
. "$(dirname "$0")/lib.sh"

require_root
require ip dbus-daemon busctl jq timeout
[ -x "$PACKETSCOPED" ] || bail "no daemon at $PACKETSCOPED"

make_tmpdir T
bus_start "$T/bus"
# The entries must stay listed for as long as the test looks at them, however slow the
# machine: ClosedTimeoutSec= (30 s by default) would let the sweeper take the closed TCP
# connection meanwhile, IdleTimeoutSec= (5 min) the others.
daemon_setup main
printf 'IdleTimeoutSec=1h
ClosedTimeoutSec=1h
' >>"${DAEMON_DIR[main]}/config/packetscope.conf"
daemon_start main || bail "the daemon did not start: $(daemon_log main)"
net_create A

UDP_PORT=40007
UDP_SPORT=41007
CLOSED_PORT=40009
HOST_SPORT=42009
T0=$(($(date +%s%N) / 1000))

out=$(attach "$A_IF" generic 2>&1)
ok $? "AttachLink $A_IF generic" "$out" || bail "nothing to count without a guarded link: $out"
link_path=$(busctl --system --json=short get-property "$PS_NAME" "$PS_PATH" "$PS_MANAGER" Links |
            jq -r '.data[0]')
is "$link_path" "$PS_PATH/link/$A_IF" "Links lists the link object"
is "$(busctl --system get-property "$PS_NAME" "$link_path" "$PS_LINK" Mode)" 's "generic"' \
   "the link reports generic mode"

# The traffic, in a fixed order.
# A guarded link without rules passes everything: each exchange must complete, in full.
is "$(ping_received "$A_NS" "$A_H4" 5)" 5 "5 IPv4 echo requests from the namespace, 5 replies"
is "$(ping_received "$A_NS" "$A_H6" 3 -6)" 3 "3 IPv6 echo requests from the namespace, 3 replies"
TCP_PORT=$(tcp_exchange "$A_NS" "$A_H4" 1000)
ok $? "a TCP connection from the namespace carried 1000 bytes"
is "$(udp_delivered "$A_NS" "$A_H4" "$UDP_PORT" 7 100 "$UDP_SPORT")" 7 \
   "7 UDP datagrams from the namespace, 7 received on the host"
must "a UDP datagram to a closed port in the namespace" \
        traffic udp-send "$A_N4" "$CLOSED_PORT" 1 50 "$HOST_SPORT"

# IPv4 frames the namespace sent: 5 echo requests + 5 TCP segments + 7 UDP + 1 ICMP error.
wait_until 10 stat_is .ipv4 18
S=$(stats_get)
sv() { jq -r "$1 // \"missing\"" <<<"$S"; }

is "$(sv .ipv4)" 18 "ipv4 == 18 (5 echo requests, 5 TCP segments, 7 UDP, 1 ICMP error)"
is "$(sv '.icmp_types["8"]')" 5 "icmp_types[8] (echo request) == 5"
is "$(sv '.icmp_types["0"] // 0')" 0 "icmp_types[0] (echo reply) == 0: replies leave the host"
is "$(sv '.icmp_types["3"]')" 1 "icmp_types[3] (destination unreachable) == 1"
is "$(sv .icmp_errors)" 1 "icmp_errors == 1"
is "$(sv .icmp_packets)" 6 "icmp_packets == 6"
is "$(sv .icmp_bytes)" $((5 * 98 + 120)) "icmp_bytes == 5 x 98 + 120 (the error quotes 78 bytes)"
is "$(sv '.icmpv6_types["128"]')" 3 "icmpv6_types[128] (echo request) == 3"
is "$(sv '.icmpv6_types["129"] // 0')" 0 "icmpv6_types[129] (echo reply) == 0"
is "$(sv .tcp_packets)" 5 "tcp_packets == 5"
is "$(sv .tcp_bytes)" $((74 + 66 + 1066 + 66 + 66)) "tcp_bytes == 1338 (frame lengths)"
is "$(sv .udp_packets)" 7 "udp_packets == 7"
is "$(sv .udp_bytes)" $((7 * 142)) "udp_bytes == 7 x 142"
is "$(sv .other_packets)" 0 "other_packets == 0"
is "$(sv .non_ip)" 0 "non_ip == 0 (static neighbours: no ARP)"
ge "$(sv .ipv6)" 3 "ipv6 >= 3"
is "$(sv .ipv6)" "$(sv .icmpv6_packets)" "every IPv6 frame was ICMPv6 (echo, MLD, DAD)"
v6types=$(jq '[.icmpv6_types[]] | add' <<<"$S")
is "$v6types" "$(sv .icmpv6_packets)" "icmpv6_types add up to icmpv6_packets"
is "$(sv .packets)" $(($(sv .ipv4) + $(sv .ipv6) + $(sv .non_ip))) "packets == ipv4 + ipv6 + non_ip"
is "$(sv .passed)" "$(sv .packets)" "every packet passed"
is "$(sv .dropped)" 0 "dropped == 0"
is "$(sv .malformed)" 0 "malformed == 0"
is "$(sv .fragments)" 0 "fragments == 0"
is "$(sv .vlan)" 0 "vlan == 0"
is "$(sv .flow_update_failures)" 0 "flow_update_failures == 0"
is "$(sv .links)" 1 "links == 1"

# The connection table, through busctl --json. The poller publishes flows on its interval.
rows_nonempty() {
        [ "$(list_flows | jq length)" -ge 2 ]
}
wait_until 10 rows_nonempty
F=$(list_flows)
T1=$(($(date +%s%N) / 1000))
is "$(jq length <<<"$F")" 2 "List: exactly 2 flows (the TCP connection and the UDP socket)"

udp=$(jq -c --argjson p "$UDP_PORT" '[.[] | select(.protocol == "udp" and .dport == $p)]' <<<"$F")
is "$(jq length <<<"$udp")" 1 "one UDP flow to port $UDP_PORT"
udp=$(jq -c '.[0]' <<<"$udp")
is "$(jq -r '[.family, .ip_protocol, .src, .dst, .sport, .dport, .packets, .bytes, .state, .link] | join(" ")' <<<"$udp")" \
   "ipv4 17 $A_N4 $A_H4 $UDP_SPORT $UDP_PORT 7 994 none $A_IF" \
   "the UDP flow: family, protocol, addresses, ports, 7 packets, 994 bytes, state none, link"
is "$(jq -r '.ttl' <<<"$udp")" 64 "the UDP flow records the TTL"

tcp=$(jq -c --argjson p "$TCP_PORT" '[.[] | select(.protocol == "tcp" and .dport == $p)]' <<<"$F")
is "$(jq length <<<"$tcp")" 1 "one TCP flow to port $TCP_PORT"
tcp=$(jq -c '.[0]' <<<"$tcp")
is "$(jq -r '[.family, .ip_protocol, .src, .dst, .packets, .bytes] | join(" ")' <<<"$tcp")" \
   "ipv4 6 $A_N4 $A_H4 5 1338" "the TCP flow: addresses, 5 segments, 1338 bytes"
is "$(jq -r .tcp_flags <<<"$tcp")" $((0x01 | 0x02 | 0x08 | 0x10)) "tcp_flags == FIN|SYN|PSH|ACK"
is "$(jq -r .last_tcp_flags <<<"$tcp")" $((0x10)) "last_tcp_flags == ACK (of the peer's FIN)"
is "$(jq -r .state <<<"$tcp")" fin "state == fin"
is "$(jq -r .retransmits <<<"$tcp")" 0 "retransmits == 0"
jq_ok "first_seen <= last_seen, both within the test's wall-clock window" \
      '[.[] | .first_seen >= $a and .last_seen <= $b and .first_seen <= .last_seen] | all' "$F" \
      --argjson a "$((T0 - 2000000))" --argjson b "$((T1 + 2000000))"
# The kernel keeps monotonic times; the wall-clock times shown for an idle flow must not move
# (more than the conversion's rounding) from one call to the next.
F2=$(list_flows)
jq_ok "first_seen/last_seen of an idle flow agree within 1 ms in two List calls" \
      '[($a | sort_by(.sport)), (. | sort_by(.sport))] | transpose
       | map(((.[0].first_seen - .[1].first_seen) | fabs) <= 1000 and
             ((.[0].last_seen - .[1].last_seen) | fabs) <= 1000) | all' "$F2" --argjson a "$F"
jq_ok "pps and bps are positive" '[.[] | .pps > 0 and .bps > 0] | all' "$F"

# Queries narrow the table down.
is "$(list_flows '{"protocol": ["s", "udp"]}' | jq length)" 1 "query protocol=udp: 1 row"
is "$(list_flows "{\"port\": [\"q\", $UDP_SPORT]}" | jq -r '.[].sport')" "$UDP_SPORT" \
   "query port (source end): the UDP flow"
is "$(list_flows "{\"address\": [\"s\", \"$A_N4\"]}" | jq length)" 2 "query address=$A_N4: 2 rows"
is "$(list_flows "{\"address\": [\"s\", \"${A_N4%.*}.0/24\"]}" | jq length)" 2 "query address CIDR /24: 2 rows"
is "$(list_flows '{"address": ["s", "192.0.2.0/24"]}' | jq length)" 0 "query address elsewhere: 0 rows"
is "$(list_flows '{"family": ["s", "ipv6"]}' | jq length)" 0 "query family=ipv6: 0 rows"
is "$(list_flows '{"sort": ["s", "packets"]}' | jq -r '[.[].protocol] | join(",")')" "udp,tcp" \
   "sort=packets: the UDP flow (7) before the TCP flow (5)"
is "$(list_flows '{"sort": ["s", "bytes"]}' | jq -r '[.[].protocol] | join(",")')" "tcp,udp" \
   "sort=bytes: the TCP flow (1338) before the UDP flow (994)"
is "$(list_flows '{"limit": ["u", 1], "sort": ["s", "packets"]}' | jq -r '[.[].protocol] | join(",")')" \
   "udp" "limit=1: only the top row"
is "$(list_flows '{"limit": ["u", 1], "offset": ["u", 1], "sort": ["s", "packets"]}' |
      jq -r '[.[].protocol] | join(",")')" "tcp" "offset=1: the second row"
is "$(list_flows "{\"link\": [\"s\", \"$A_IF\"]}" | jq length)" 2 "query link=$A_IF: 2 rows"

# The ICMP table.
I=$(list_icmp)
echo4=$(jq -c --arg s "$A_N4" '[.[] | select(.family == "ipv4" and .type == 8 and .src == $s)]' <<<"$I")
is "$(jq -r '[.[] | .dst, .code, .packets, .bytes, .error] | join(" ")' <<<"$echo4")" \
   "$A_H4 0 5 490 false" "ICMP row: echo request $A_N4 -> $A_H4, 5 packets, 490 bytes, not an error"
echo6=$(jq -c --arg s "$A_N6" '[.[] | select(.family == "ipv6" and .type == 128 and .src == $s)]' <<<"$I")
is "$(jq -r '[.[] | .dst, .packets, .error] | join(" ")' <<<"$echo6")" "$A_H6 3 false" \
   "ICMPv6 row: echo request $A_N6 -> $A_H6, 3 packets"
err=$(jq -c '[.[] | select(.error)]' <<<"$I")
is "$(jq length <<<"$err")" 1 "exactly one ICMP error row"
is "$(jq -r '.[0] | [.family, .src, .dst, .type, .code, .packets, .bytes] | join(" ")' <<<"$err")" \
   "ipv4 $A_N4 $A_H4 3 3 1 120" "the error: port unreachable $A_N4 -> $A_H4, 1 packet, 120 bytes"
is "$(jq -r '.[0] | [.inner_family, .inner_protocol, .inner_ip_protocol, .inner_src, .inner_dst,
                     .inner_sport, .inner_dport] | join(" ")' <<<"$err")" \
   "ipv4 udp 17 $A_H4 $A_N4 $HOST_SPORT $CLOSED_PORT" \
   "the error quotes the datagram: udp $A_H4:$HOST_SPORT -> $A_N4:$CLOSED_PORT"
is "$(list_icmp '{"type": ["y", 3]}' | jq length)" 1 "ListIcmp type=3: 1 row"
is "$(list_icmp '{"family": ["s", "ipv4"]}' | jq length)" 2 "ListIcmp family=ipv4: 2 rows"

# The link's own statistics and properties agree with the manager's.
L=$(stats_get "$link_path" "$PS_LINK")
is "$(jq -r '[.ipv4, .tcp_packets, .udp_packets, .icmp_packets, .icmp_errors] | join(" ")' <<<"$L")" \
   "$(sv '[.ipv4, .tcp_packets, .udp_packets, .icmp_packets, .icmp_errors] | join(" ")')" \
   "Link.GetStatistics equals the manager's totals (one link)"
lp=$(busctl --system get-property "$PS_NAME" "$link_path" "$PS_LINK" Packets | awk '{print $2}')
ge "$lp" "$(sv .packets)" "the link's Packets property counts them"

# More datagrams from the same port land in the same flow.
is "$(udp_delivered "$A_NS" "$A_H4" "$UDP_PORT" 3 100 "$UDP_SPORT")" 3 \
   "3 more UDP datagrams from port $UDP_SPORT, 3 received"
udp_packets_are() {
        [ "$(list_flows '{"protocol": ["s", "udp"]}' | jq -r '.[0].packets')" = "$1" ]
}
wait_until 10 udp_packets_are 10
is "$(list_flows '{"protocol": ["s", "udp"]}' | jq -r '.[0] | "\(.packets) \(.bytes)"')" \
   "10 1420" "the UDP flow grew to 10 packets, 1420 bytes"
wait_until 10 stat_is .udp_packets 10
is "$(stat_of .udp_packets)" 10 "udp_packets == 10"

# Detach: the link object and its pins go away.
check "DetachLink $A_IF" busctl --system call "$PS_NAME" "$PS_PATH" "$PS_MANAGER" DetachLink s "$A_IF"
is "$(busctl --system --json=short get-property "$PS_NAME" "$PS_PATH" "$PS_MANAGER" Links |
      jq -c '.data')" "[]" "Links is empty after DetachLink"
ok "$([ -e "${DAEMON_BPFFS[main]}/$A_IF" ] && echo 1 || echo 0)" "the pins of $A_IF are gone" \
   "$(ls -la "${DAEMON_BPFFS[main]}" 2>&1)"
xdp=$(ip -d link show "$A_IF")
ok "$(grep -q 'xdp' <<<"$xdp" && echo 1 || echo 0)" "no XDP program on $A_IF any more" "$xdp"
daemon_stop main
is "$?" 0 "the daemon exits 0 on SIGTERM"

done_testing
