#!/bin/bash
# SPDX-License-Identifier: MIT
#
# packetscopectl against the real daemon and real traffic: every verb, human output with its
# columns, --json parsed and compared with what the bus itself says, filters, and errors (in
# words for people on stderr, the same from every verb, and a non-zero exit status).

set -u
. "$(dirname "$0")/lib.sh"

require_root
require ip dbus-daemon busctl jq timeout script
[ -x "$PACKETSCOPED" ] || bail "no daemon at $PACKETSCOPED"
[ -x "$PACKETSCOPECTL" ] || bail "no client at $PACKETSCOPECTL"

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
defer "DBUS_SYSTEM_BUS_ADDRESS='$DBUS_SYSTEM_BUS_ADDRESS' \
        busctl --system call $PS_NAME $PS_PATH $PS_MANAGER DetachLink s '$A_IF'"

# ctl ARGS...: the client, bounded; stdout in $OUT, stderr in $ERR, status returned.
ctl() {
        timeout 30 "$PACKETSCOPECTL" --no-ask-password "$@" >"$T/out" 2>"$T/err"
        local status=$?
        OUT=$(cat "$T/out")
        ERR=$(cat "$T/err")
        return "$status"
}

ctl attach --mode=generic "$A_IF"
ok $? "packetscopectl attach --mode=generic $A_IF" "$ERR" ||
        bail "nothing to test without a guarded link: $ERR"
is "$OUT" "$PS_PATH/link/$A_IF" "attach prints the link object"

UDP_PORT=40301
UDP_SPORT=41301
CLOSED_PORT=40302
HOST_SPORT=42302
is "$(ping_received "$A_NS" "$A_H4" 4)" 4 "4 echo requests from the namespace, 4 replies"
TCP_PORT=$(tcp_exchange "$A_NS" "$A_H4" 500)
ok $? "a TCP connection carrying 500 bytes"
is "$(udp_delivered "$A_NS" "$A_H4" "$UDP_PORT" 3 20 "$UDP_SPORT")" 3 \
   "3 UDP datagrams of 20 bytes, 3 received"
must "a UDP datagram to a closed port in the namespace" \
        traffic udp-send "$A_N4" "$CLOSED_PORT" 1 50 "$HOST_SPORT"
# 4 echo requests + 5 TCP segments + 3 UDP + 1 ICMP error.
wait_until 10 stat_is .ipv4 13
flows_are() {
        [ "$(list_flows | jq length)" = "$1" ]
}
wait_until 10 flows_are 2

# status
ctl status
ok $? "status exits 0" "$ERR"
like "$OUT" "Version: +[0-9]" "status shows the version"
like "$OUT" "Links: +1" "status shows 1 link"
like "$OUT" "LINK +IFINDEX +MODE +ATTACHED +PROGRAM +PACKETS +DROPPED +RATE +FLOWS +MEMORY" \
     "status has the link table's columns"
like "$OUT" "^$A_IF +$(cat "/sys/class/net/$A_IF/ifindex") +generic " "status lists $A_IF, its ifindex and mode"
# 65536 connections (72-byte values) and 4096 entries in each ICMP table (lib.sh): 12.4 MiB in
# the kernel.
like "$OUT" "^$A_IF .* 12\.[0-9] MiB\$" "status shows the kernel memory of $A_IF's maps"
ctl status --json=short
ok $? "status --json exits 0" "$ERR"
jq_ok "status --json: the link, its mode, and the IPv4 count" \
      '.links[0].name == $i and .links[0].mode == "generic" and .statistics.ipv4 == 13' "$OUT" \
      --arg i "$A_IF"
jq_ok "status --json: the link's path and rates under the keys the rest of the JSON uses" \
      '.links[0].path == $p and (.links[0] | has("pps") and has("bps") and
       (has("object_path") or has("packets_per_second") or has("bits_per_second") | not))' \
      "$OUT" --arg p "$PS_PATH/link/$A_IF"

# connections
ctl connections
ok $? "connections exits 0" "$ERR"
like "$OUT" "^PROTO +SOURCE +DESTINATION +STATE +FLAGS +PACKETS +BYTES +PPS +RATE +LAST +LINK" \
     "connections has its columns"
like "$OUT" "^udp +$A_N4:$UDP_SPORT +$A_H4:$UDP_PORT +- +- +3 +186 B .* $A_IF\$" \
     "connections shows the UDP flow: 3 packets, 186 B"
like "$OUT" "^tcp +$A_N4:[0-9]+ +$A_H4:$TCP_PORT +fin +FSPA +5 +838 B " \
     "connections shows the TCP flow: fin, flags FSPA, 5 packets, 838 B"
like "$OUT" "2 connections listed" "connections ends with its count"
ctl connections --json=short
ok $? "connections --json exits 0" "$ERR"
J=$OUT
B=$(list_flows)
# The same keys, the times named with their unit (the bus keeps first_seen and last_seen).
is "$(jq -c '[.[0] | keys[]] | sort' <<<"$J")" \
   "$(jq -c '[.[0] | keys[] | if . == "first_seen" or . == "last_seen" then . + "_usec" else . end] | sort' <<<"$B")" \
   "connections --json rows have the keys of the bus rows, first_seen_usec and last_seen_usec"
# Rates and the wall-clock times are computed per call; the rest must be identical.
strip='[.[] | del(.pps, .bps, .first_seen, .last_seen, .first_seen_usec, .last_seen_usec)] | sort_by(.protocol)'
is "$(jq -c "$strip" <<<"$J")" "$(jq -c "$strip" <<<"$B")" \
   "connections --json equals Connections.List (rates and times aside)"
# A flow's first_seen is a fact about the past: it reads the same in two calls some poll ticks
# (200 ms here) apart.
first_seen_of() {
        jq -c '[.[] | {protocol, sport, dport, first_seen_usec}] | sort_by(.protocol)'
}
F1=$(first_seen_of <<<"$J")
sleep 0.7
ctl connections --json=short
is "$(first_seen_of <<<"$OUT")" "$F1" "first_seen_usec does not move between two calls"
jq_ok "connections --json: the UDP flow has 3 packets and 186 bytes" \
      '[.[] | select(.protocol == "udp" and .sport == $s and .dport == $d and
                     .packets == 3 and .bytes == 186)] | length == 1' \
      "$J" --argjson s "$UDP_SPORT" --argjson d "$UDP_PORT"
ctl connections --json=short --protocol udp --port "$UDP_PORT"
jq_ok "connections --protocol udp --port $UDP_PORT: exactly the UDP flow" \
      'length == 1 and .[0].protocol == "udp" and .[0].dport == $d' "$OUT" --argjson d "$UDP_PORT"
ctl connections --json=short --top 1 --sort packets
jq_ok "connections --top 1 --sort packets: only the TCP flow (5 > 3)" \
      'length == 1 and .[0].protocol == "tcp"' "$OUT"
ctl connections --json=short --address "${A_N4%.*}.0/24"
jq_ok "connections --address ${A_N4%.*}.0/24: both flows" 'length == 2' "$OUT"
ctl connections --json=short --family ipv6
jq_ok "connections --family ipv6: none" 'length == 0' "$OUT"
ctl connections --offset 5
ok $? "connections --offset 5 (past the end) exits 0" "$ERR"
is "$OUT" "No connections listed (2 tracked)." "an empty page still shows the count"
ctl connections --json=short --state fin
jq_ok "connections --state fin: the TCP flow" 'length == 1 and .[0].state == "fin"' "$OUT"

# icmp
ctl icmp
ok $? "icmp exits 0" "$ERR"
like "$OUT" "^TYPE +CODE +SOURCE +DESTINATION +PACKETS +BYTES +LAST +LINK +QUOTED" "icmp has its columns"
like "$OUT" "^echo-request \(8\) +0 +$A_N4 +$A_H4 +4 +392 B " "icmp shows the 4 echo requests"
like "$OUT" "dest-unreachable \(3\) +3 +$A_N4 +$A_H4 +1 +120 B .* udp $A_H4:$HOST_SPORT -> $A_N4:$CLOSED_PORT\$" \
     "icmp shows the port unreachable and the datagram it quotes"
ctl icmp --json=short
ok $? "icmp --json exits 0" "$ERR"
jq_ok "icmp --json: the error row with its inner tuple" \
      '[.[] | select(.error and .type == 3 and .code == 3 and .inner_protocol == "udp"
                     and .inner_src == $hs and .inner_dst == $ns and .inner_sport == $sp
                     and .inner_dport == $dp)] | length == 1' "$OUT" \
      --arg hs "$A_H4" --arg ns "$A_N4" --argjson sp "$HOST_SPORT" --argjson dp "$CLOSED_PORT"
# IPv4 only: the kernel's own IPv6 chatter (MLD) may add a packet between the two calls.
v4='[.[] | select(.family == "ipv4") | del(.first_seen, .last_seen, .first_seen_usec, .last_seen_usec, .type_name)] | sort_by(.type, .src, .dst)'
is "$(jq -c "$v4" <<<"$OUT")" "$(list_icmp | jq -c "$v4")" \
   "icmp --json equals Connections.ListIcmp (IPv4 rows, times and type names aside)"
is "$(jq -c '[.[] | select(.family == "ipv4") | [.type, .type_name]] | unique' <<<"$OUT")" \
   '[[3,"dest-unreachable"],[8,"echo-request"]]' "icmp --json carries the type names the table shows"

# The terminal: tables fit COLUMNS by leaving out columns in a fixed order; the pager comes
# only on a terminal. (Colour is tested with the filters, which have drop rules to colour.)
ctl connections
WIDE=$(awk '{ print length }' <<<"$OUT" | sort -n | tail -1)
COLUMNS=80 ctl connections
is "$(head -1 <<<"$OUT" | tr -s ' ')" "PROTO SOURCE DESTINATION STATE PACKETS BYTES LINK" \
   "at 80 columns the flags, the rates and the last-seen time are left out, in that order (the full table is $WIDE wide)"
is "$(awk 'length > 80' <<<"$OUT")" "" "at 80 columns no line is longer"
COLUMNS=40 ctl connections
ok $? "connections at 40 columns exits 0" "$ERR"
is "$(head -1 <<<"$OUT" | tr -s ' ')" "PROTO SOURCE DESTINATION STATE PACKETS BYTES" \
   "at 40 columns only the columns that always stay"
ctl status
is "$(grep -c $'\e' <<<"$OUT")" 0 "not a terminal: no colour sequences"
# tty_ctl ARGS...: a command on a terminal (script(1)); what the terminal shows in $OUT.
tty_ctl() {
        local cmd
        printf -v cmd '%q ' "$@"
        timeout 30 script -qec "$cmd" /dev/null </dev/null >"$T/tty" 2>&1
        OUT=$(tr -d '\r' <"$T/tty")
}
tty_ctl env PACKETSCOPE_PAGER='sed s/^/paged:/' "$PACKETSCOPECTL" status
like "$OUT" "^paged: *Version: " "on a terminal the output goes through PACKETSCOPE_PAGER"
tty_ctl env PACKETSCOPE_PAGER='sed s/^/paged:/' "$PACKETSCOPECTL" --no-pager status
like "$OUT" "^ *Version: " "--no-pager: straight to the terminal"
is "$(grep -c '^paged:' <<<"$OUT")" 0 "--no-pager: nothing went through the pager"
PACKETSCOPE_PAGER='sed s/^/paged:/' ctl status
is "$(grep -c '^paged:' <<<"$OUT")" 0 "not a terminal: no pager"
tty_ctl env -u PACKETSCOPE_PAGER PAGER= "$PACKETSCOPECTL" status
like "$OUT" "^ *Version: " "an empty PAGER turns the pager off"
tty_ctl env -u PACKETSCOPE_PAGER -u PAGER PATH=/nonexistent "$PACKETSCOPECTL" status
like "$OUT" "^ *Version: " "with neither less nor more to be found, the output still arrives"

# stats
ctl stats
ok $? "stats exits 0" "$ERR"
like "$OUT" "IPv4: +13$" "stats shows IPv4: 13"
like "$OUT" "ICMP errors: +1$" "stats shows 1 ICMP error"
like "$OUT" "^udp +3 +186 B" "stats shows udp 3 packets 186 B"
like "$OUT" "^echo-request \(8\) +4$" "stats shows 4 echo requests"
ctl stats --json=short
ok $? "stats --json exits 0" "$ERR"
S=$(stats_get)
k='{ipv4, tcp_packets, tcp_bytes, udp_packets, udp_bytes, icmp_packets, icmp_errors, icmp_types}'
is "$(jq -c "$k" <<<"$OUT")" "$(jq -c "$k" <<<"$S")" "stats --json equals Manager.GetStatistics"
jq_ok "stats --json: icmp_types {3: 1, 8: 4}" '.icmp_types == {"3": 1, "8": 4}' "$OUT"

# monitor: two frames, then exit.
ctl monitor --interval 200ms --count 2
ok $? "monitor --count 2 exits 0" "$ERR"
is "$(grep -c '^packetscope monitor' <<<"$OUT")" 2 "monitor drew two frames"
like "$OUT" "^udp +$A_N4:$UDP_SPORT +$A_H4:$UDP_PORT " "monitor shows the UDP flow"
# The totals' rate and the per-protocol rates come from one window: with echo requests
# flowing (5 a second), a frame's packet rate is the sum of its protocols' rates.
in_ns "$A_NS" ping -n -q -c 20 -i 0.2 "$A_H4" >/dev/null 2>&1 &
PING_PID=$!
ctl monitor --interval 1s --count 3
wait "$PING_PID"
FRAME=$(awk '/^packetscope monitor/ { n++ } n == 3' <<<"$OUT")
TOTAL=$(sed -n 's/^ *Packets: *[0-9]* (\([0-9.]*\) pps)$/\1/p' <<<"$FRAME")
SUM=$(awk '$1 ~ /^(tcp|udp|icmp|icmpv6|other)$/ && $6 == "pps" { s += $5 } END { printf "%.1f", s }' \
      <<<"$FRAME")
awk -v t="$TOTAL" -v s="$SUM" 'BEGIN { exit !(t >= 3 && t - s <= 0.3 && s - t <= 0.3) }'
ok $? "monitor: the packet rate ($TOTAL pps) is the sum of the protocols' ($SUM pps)" "$FRAME"

# Errors: in words for people, the same from every verb, no bus error names; non-zero exit.
ctl detach nosuch0
status=$?
ok "$([ "$status" -ne 0 ] && echo 0 || echo 1)" "detach of an unguarded interface fails (exit $status)"
is "$ERR" "packetscopectl: 'nosuch0' is not guarded; see packetscopectl status" \
   "detach: it says the interface is not guarded and where to look"
ctl attach "$A_IF"
status=$?
ok "$([ "$status" -ne 0 ] && echo 0 || echo 1)" "attach of a guarded interface fails (exit $status)"
is "$ERR" "packetscopectl: '$A_IF' is already guarded by this daemon" \
   "attach: it says the interface is already guarded"
ctl attach --ensure --json=short "$A_IF"
ok $? "attach --ensure of a guarded interface succeeds" "$ERR"
is "$OUT" "{\"link\":\"$A_IF\",\"path\":\"$PS_PATH/link/$A_IF\"}" \
   "attach --json: the link and its path, under the key every object path has"
ctl connections --link nosuch0
status=$?
ok "$([ "$status" -ne 0 ] && echo 0 || echo 1)" "connections --link of an unguarded link fails (exit $status)"
is "$ERR" "packetscopectl: 'nosuch0' is not guarded; see packetscopectl status" \
   "connections --link: the same words as detach"
ctl connections --address 10.0.0.0/33
status=$?
ok "$([ "$status" -ne 0 ] && echo 0 || echo 1)" "connections --address 10.0.0.0/33 fails (exit $status)"
like "$ERR" "10\.0\.0\.0/33" "it names the bad value"
ctl frobnicate
status=$?
ok "$([ "$status" -ne 0 ] && echo 0 || echo 1)" "an unknown verb fails (exit $status)"

ctl detach "$A_IF"
ok $? "detach $A_IF" "$ERR"
ctl status --json=short
jq_ok "status --json lists no links after detach" '.links == []' "$OUT"
ctl detach --ensure "$A_IF"
ok $? "detach --ensure of an unguarded interface succeeds" "$ERR"

# No daemon at all.
daemon_stop main
is "$?" 0 "the daemon exits 0 on SIGTERM"
ctl status
status=$?
ok "$([ "$status" -ne 0 ] && echo 0 || echo 1)" "status without a daemon fails (exit $status)"
is "$ERR" "packetscopectl: packetscoped is not running: systemctl start packetscope@IFACE" \
   "status: it says the daemon is not running and how to start it"
ctl filter delete 3
is "$?" 1 "filter delete without a daemon fails (exit 1)"
is "$ERR" "packetscopectl: packetscoped is not running: systemctl start packetscope@IFACE" \
   "filter delete: the same words"
ctl connections
is "$ERR" "packetscopectl: packetscoped is not running: systemctl start packetscope@IFACE" \
   "connections: the same words"

done_testing
