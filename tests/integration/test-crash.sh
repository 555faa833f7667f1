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

is "$(udp_delivered "$A_NS" "$A_H4" "$UDP_PORT" 5 100 "$UDP_SPORT")" 5 \
   "5 UDP datagrams from the namespace before the crash, 5 received"
wait_until 10 at_least udp_flow_packets 5
UDP_BEFORE=$(udp_flow_packets)
is "$UDP_BEFORE" 5 "the UDP flow has 5 packets"
P0=$(link_packets)

# Echo requests from the namespace in rounds of $ROUND, 10 ms apart, until told to stop (at
# most $MAX_ROUNDS rounds): the traffic goes on for as long as the kill and the restart take,
# however slow the machine, and every round ends with its last reply (or ping's timeout), so
# the totals of the rounds are exact.
ROUND=20
MAX_ROUNDS=150
ping_rounds() {
        local i end=$((SECONDS + 120))
        for ((i = 0; i < MAX_ROUNDS && SECONDS < end; i++)); do
                [ -e "$T/ping.stop" ] && break
                in_ns "$A_NS" ping -n -q -c $ROUND -i 0.01 -W 2 "$A_H4" 2>&1 |
                        grep -E '^[0-9]+ packets transmitted'
        done
}
rounds_done() {
        grep -c 'packets transmitted' "$T/ping.out"
}
rounds_since() {
        [ "$(rounds_done)" -ge $(($1 + $2)) ]
}
rm -f "$T/ping.stop"
ping_rounds >"$T/ping.out" &
PING_PID=$!
defer "touch '$T/ping.stop'; kill_wait $PING_PID"
wait_until 20 at_least echo_packets 40
E1=$(echo_packets)
P1=$(link_packets)
OLD_PID=${DAEMON_PID[main]}
kill -KILL "$OLD_PID"
wait "$OLD_PID" 2>/dev/null
T_KILL=$(sys_now_ms)
R_KILL=$(rounds_done)
diag "killed after $R_KILL rounds, with $E1 echo requests counted"

is "$(sys_xdp_prog_id "$A_IF")" "$PROG" "after SIGKILL the same XDP program is still attached"
check "the pins are still there" test -e "$PINS/link" -a -e "$PINS/stats" -a -e "$PINS/flows"

# Two whole rounds with no daemon at all (the checks below count them).
wait_until 60 rounds_since "$R_KILL" 2 ||
        ok 1 "two rounds of $ROUND echo requests go out while no daemon runs" "$(cat "$T/ping.out")"

daemon_start main
ok $? "a new daemon starts ($(($(sys_now_ms) - T_KILL)) ms after the kill)" "$(daemon_log main)"
wait_until 5 guarded
ok $? "it adopted the guard of $A_IF" "$(sys_links)" "$(daemon_log main)"
like "$(cat "$LOG")" "Adopted the pinned guard of $A_IF" "the adoption is logged"
is "$(sys_xdp_prog_id "$A_IF")" "$PROG" "the program is the same one (no reattach)"

touch "$T/ping.stop"
wait "$PING_PID"
SENT=$(awk '{ n += $1 } END { print n + 0 }' "$T/ping.out")
ANSWERED=$(awk '{ n += $4 } END { print n + 0 }' "$T/ping.out")
is "$ANSWERED" "$SENT" "every echo request was answered, before, during and after the crash ($SENT)" \
   "$(cat "$T/ping.out")"
ok "$([ "$SENT" -ge $((E1 + 2 * ROUND)) ] && echo 0 || echo 1)" \
   "$SENT echo requests in all: more than the $E1 counted before the kill"

# The pings sent while no daemon ran were counted by the program all the same.
wait_until 10 at_least echo_packets "$SENT"
E2=$(echo_packets)
is "$E2" "$SENT" "the ICMP table has all $SENT echo requests (not only the $E1 seen before the kill)"
wait_until 10 at_least link_packets $((P0 + SENT))
P2=$(link_packets)
ge "$P2" $((P0 + SENT)) "Link.Packets continues: $P0 before the pings, $P1 at the kill, $P2 now"
S=$(stats_get)
ge "$(jq -r '.packets // 0' <<<"$S")" "$P2" "GetStatistics counts them too"
is "$(jq -r '.icmp_types["8"] // 0' <<<"$S")" "$SENT" "GetStatistics: icmp_types[8] == $SENT"

is "$(udp_flow_packets)" 5 "the UDP flow survived the crash with its 5 packets"
is "$(udp_delivered "$A_NS" "$A_H4" "$UDP_PORT" 3 100 "$UDP_SPORT")" 3 \
   "3 more UDP datagrams on the same flow, 3 received"
wait_until 10 at_least udp_flow_packets 8
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

is "$(ping_received "$A_NS" "$A_H4" 3 -i 0.1)" 3 "3 echo requests after all that, 3 replies"
wait_until 10 at_least echo_packets $((SENT + 3))
is "$(echo_packets)" $((SENT + 3)) "the ICMP table has $((SENT + 3)) echo requests: still counted"

daemon_alive main
ok $? "the daemon is still serving"

done_testing
