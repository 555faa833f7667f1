#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Crashes and damaged state, with the real daemon on a private bus and a guarded veth:
#   - SIGKILL in the middle of bounded traffic: the XDP program stays attached (its link is
#     pinned), the traffic sent while no daemon runs is still counted, and a new daemon adopts
#     the guard with its counters and its flow and ICMP tables continuing where they were;
#   - a links.json that is garbage, or cut short: the daemon starts anyway, says the file is
#     corrupt, keeps it as links.json.corrupt, still adopts the pinned guard and writes a good
#     links.json again.

set -u
# shellcheck source=tests/integration/lib-system.sh
. "$(dirname "$0")/lib-system.sh"

require_root
require ip dbus-daemon busctl jq timeout ping
[ -x "$PACKETSCOPED" ] || bail "no daemon at $PACKETSCOPED (set PACKETSCOPED or BUILDDIR)"

PINGS=200
UDP_PORT=40017
UDP_SPORT=41017

make_tmpdir T
bus_start "$T/bus"
daemon_start main || bail "the daemon did not start: $(daemon_log main)"
net_create A
STATE=${DAEMON_DIR[main]}/state
LOG=${DAEMON_DIR[main]}/log
PINS=${DAEMON_BPFFS[main]}/$A_IF
LINK_PATH=$PS_PATH/link/$A_IF

out=$(attach "$A_IF" 2>&1)
ok $? "AttachLink $A_IF" "$out"
PROG=$(sys_xdp_prog_id "$A_IF")
[ -n "$PROG" ]
ok $? "XDP program $PROG attached to $A_IF" "$(ip -d link show dev "$A_IF")"

link_packets() {
        busctl --system get-property "$PS_NAME" "$LINK_PATH" "$PS_LINK" Packets 2>/dev/null |
                awk '{print $2}'
}
# Packets of the ICMP echo requests from the namespace, as the ICMP table has them.
echo_packets() {
        list_icmp | jq -r --arg s "$A_N4" '[.[] | select(.src == $s and .type == 8) | .packets] | add // 0'
}
# Packets of our UDP flow (the namespace's fixed source port to UDP_PORT).
udp_flow_packets() {
        list_flows | jq -r --arg s "$A_N4" --argjson sp $UDP_SPORT --argjson dp $UDP_PORT \
                '[.[] | select(.src == $s and .sport == $sp and .dport == $dp) | .packets] | add // 0'
}
guarded() {
        sys_links | grep -qx "$LINK_PATH"
}
at_least() {
        local v
        v=$("$1")
        [[ "$v" =~ ^[0-9]+$ ]] && [ "$v" -ge "$2" ]
}

# ---------------------------------------------------------------------------------------------
# SIGKILL mid-traffic

check "5 UDP datagrams from the namespace before the crash" \
        traffic_ns "$A_NS" udp-send "$A_H4" "$UDP_PORT" 5 100 "$UDP_SPORT"
wait_until 10 at_least udp_flow_packets 5
UDP_BEFORE=$(udp_flow_packets)
is "$UDP_BEFORE" 5 "the UDP flow has 5 packets"
P0=$(link_packets)

# 200 echo requests, 10 ms apart (about 2 s), from the namespace; the kill lands in the middle.
in_ns "$A_NS" ping -c $PINGS -i 0.01 -W 1 -q "$A_H4" >"$T/ping.out" 2>&1 &
PING_PID=$!
defer "kill_wait $PING_PID"
wait_until 10 at_least echo_packets 40
P1=$(link_packets)
E1=$(echo_packets)
OLD_PID=${DAEMON_PID[main]}
kill -KILL "$OLD_PID"
wait "$OLD_PID" 2>/dev/null
T_KILL=$(sys_now_ms)
ping_running=0
kill -0 "$PING_PID" 2>/dev/null && ping_running=1
[ $ping_running -eq 1 ] && [ "$E1" -lt $PINGS ]
ok $? "the daemon was killed mid-traffic ($E1 of $PINGS echo requests counted by then)" \
        "ping still running: $ping_running"

is "$(sys_xdp_prog_id "$A_IF")" "$PROG" "after SIGKILL the same XDP program is still attached"
check "the pins are still there" test -e "$PINS/link" -a -e "$PINS/stats" -a -e "$PINS/flows"

wait "$PING_PID"
ok $? "all $PINGS echo requests were answered while no daemon ran" "$(cat "$T/ping.out")"

daemon_start main
ok $? "a new daemon starts ($(($(sys_now_ms) - T_KILL)) ms after the kill)" "$(daemon_log main)"
wait_until 5 guarded
ok $? "it adopted the guard of $A_IF" "$(sys_links)" "$(daemon_log main)"
like "$(cat "$LOG")" "Adopted the pinned guard of $A_IF" "the adoption is logged"
is "$(sys_xdp_prog_id "$A_IF")" "$PROG" "the program is the same one (no reattach)"

# The pings sent while no daemon ran were counted by the program all the same.
wait_until 5 at_least echo_packets $PINGS
E2=$(echo_packets)
is "$E2" "$PINGS" "the ICMP table has all $PINGS echo requests (not only the $E1 seen before the kill)"
wait_until 5 at_least link_packets $((P1 + 1))
P2=$(link_packets)
ge "$P2" $((P0 + PINGS)) "Link.Packets continues: $P0 before the pings, $P1 at the kill, $P2 now"
S=$(stats_get)
ge "$(jq -r '.packets // 0' <<<"$S")" "$P2" "GetStatistics counts them too"
ge "$(jq -r '.icmp_types["8"] // 0' <<<"$S")" $PINGS "GetStatistics: icmp_types[8] >= $PINGS"

is "$(udp_flow_packets)" 5 "the UDP flow survived the crash with its 5 packets"
check "3 more UDP datagrams on the same flow" \
        traffic_ns "$A_NS" udp-send "$A_H4" "$UDP_PORT" 3 100 "$UDP_SPORT"
wait_until 5 at_least udp_flow_packets 8
is "$(udp_flow_packets)" 8 "the flow continues: 8 packets"

# ---------------------------------------------------------------------------------------------
# Damaged links.json

check "links.json lists $A_IF" jq -e --arg i "$A_IF" '.links | any(.name == $i)' "$STATE/links.json"

# corrupt_and_restart WHAT CONTENT-FILE: stop the daemon, put CONTENT-FILE in place of
# links.json, start it again and check what it did.
corrupt_and_restart() {
        local what=$1 content=$2 lines
        daemon_stop main
        is "$(sys_xdp_prog_id "$A_IF")" "$PROG" "$what: the guard stays attached while the daemon is down"
        cp "$content" "$STATE/links.json"
        rm -f "$STATE/links.json.corrupt"
        lines=$(wc -l <"$LOG")
        daemon_start main
        ok $? "$what: the daemon starts" "$(daemon_log main)"
        like "$(tail -n +"$((lines + 1))" "$LOG")" "links\.json is corrupt .*kept as .*links\.json\.corrupt" \
                "$what: the corrupt file is reported"
        cmp -s "$content" "$STATE/links.json.corrupt"
        ok $? "$what: it is kept as links.json.corrupt, unchanged"
        wait_until 5 guarded
        ok $? "$what: the pinned guard is adopted" "$(sys_links)"
        is "$(sys_xdp_prog_id "$A_IF")" "$PROG" "$what: same program, never detached"
        wait_until 5 jq -e --arg i "$A_IF" '.links | any(.name == $i)' "$STATE/links.json"
        ok $? "$what: a good links.json listing $A_IF is written again" \
                "$(cat "$STATE/links.json" 2>&1)"
}

printf 'this is not JSON {{{\n\0\1\2 garbage' >"$T/garbage.json"
corrupt_and_restart "garbage links.json" "$T/garbage.json"

size=$(stat -c %s "$STATE/links.json")
head -c $((size / 2)) "$STATE/links.json" >"$T/truncated.json"
corrupt_and_restart "truncated links.json" "$T/truncated.json"

check "traffic is still counted after all that" in_ns "$A_NS" ping -c 3 -i 0.1 -W 1 -q "$A_H4"
wait_until 5 at_least echo_packets $((PINGS + 3))
is "$(echo_packets)" $((PINGS + 3)) "the ICMP table has $((PINGS + 3)) echo requests"

daemon_alive main
ok $? "the daemon is still serving"

done_testing
