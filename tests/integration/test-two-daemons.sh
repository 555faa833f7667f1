#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Two daemons side by side, each on its own private bus with its own bpffs root, state and
# configuration, each guarding its own veth: neither sees the other's links, pins or traffic,
# neither can take over the other's interface, and stopping one leaves the other working. On
# the way: the shipped bus policy (only root owns the name, anyone reads) and a second daemon
# on a bus whose name is taken.

set -u
. "$(dirname "$0")/lib.sh"

require_root
require ip dbus-daemon busctl jq timeout
[ -x "$PACKETSCOPED" ] || bail "no daemon at $PACKETSCOPED"

make_tmpdir T
bus_start "$T/bus1"
BUS1=$DBUS_SYSTEM_BUS_ADDRESS
daemon_start one || bail "daemon one did not start: $(daemon_log one)"
bus_start "$T/bus2"
BUS2=$DBUS_SYSTEM_BUS_ADDRESS
daemon_start two || bail "daemon two did not start: $(daemon_log two)"
net_create A
net_create B

on() {
        case $1 in
        one) export DBUS_SYSTEM_BUS_ADDRESS=$BUS1 ;;
        two) export DBUS_SYSTEM_BUS_ADDRESS=$BUS2 ;;
        esac
}
links() {
        busctl --system --json=short get-property "$PS_NAME" "$PS_PATH" "$PS_MANAGER" Links |
                jq -r '.data | join(" ")'
}
echo_requests_are() {
        [ "$(stats_get | jq -r '.icmp_types["8"] // 0')" = "$1" ]
}

isnt() {
        if [ "$1" != "$2" ]; then ok 0 "$3"; else ok 1 "$3" "both: '$1'"; fi
}
isnt "${DAEMON_PID[one]}" "${DAEMON_PID[two]}" "two daemon processes"
on one; p1=$(busctl --system --json=short call org.freedesktop.DBus /org/freedesktop/DBus \
        org.freedesktop.DBus GetConnectionUnixProcessID s "$PS_NAME" | jq -r '.data[0]')
on two; p2=$(busctl --system --json=short call org.freedesktop.DBus /org/freedesktop/DBus \
        org.freedesktop.DBus GetConnectionUnixProcessID s "$PS_NAME" | jq -r '.data[0]')
is "$p1 $p2" "${DAEMON_PID[one]} ${DAEMON_PID[two]}" "each bus has its own daemon as $PS_NAME"

on one; out=$(attach "$A_IF" generic 2>&1)
ok $? "daemon one attaches $A_IF" "$out" || bail "daemon one cannot attach: $out"
on two; out=$(attach "$B_IF" native 2>&1)
ok $? "daemon two attaches $B_IF" "$out" || bail "daemon two cannot attach: $out"
on one; is "$(links)" "$PS_PATH/link/$A_IF" "daemon one guards $A_IF only"
on two; is "$(links)" "$PS_PATH/link/$B_IF" "daemon two guards $B_IF only"
ok "$([ -e "${DAEMON_BPFFS[one]}/$A_IF/link" ] && [ ! -e "${DAEMON_BPFFS[one]}/$B_IF" ] &&
      echo 0 || echo 1)" "daemon one pinned under its own root only"
ok "$([ -e "${DAEMON_BPFFS[two]}/$B_IF/link" ] && [ ! -e "${DAEMON_BPFFS[two]}/$A_IF" ] &&
      echo 0 || echo 1)" "daemon two pinned under its own root only"
on one; is "$(pscall "$PS_PATH" "$PS_MANAGER" Describe | jq -r '.data[0] | fromjson | .config.bpffs_root')" \
        "${DAEMON_BPFFS[one]}" "daemon one describes its own bpffs root"

# The bus policy: only root may own the name; anyone may read. A second daemon on a bus whose
# name is taken gives up without touching anything.
# (A copy of rawbus.py in the test's own directory: the source tree may be unreadable to
# uid 65534, e.g. below /root.)
cp "$PS_TESTDIR/rawbus.py" "$T/rawbus.py"
chmod 644 "$T/rawbus.py"
as_nobody() {
        setpriv --reuid=65534 --regid=65534 --clear-groups env HOME=/ "$@"
}
if command -v setpriv >/dev/null; then
        on one
        out=$(as_nobody timeout 30 "$PYTHON" "$T/rawbus.py" call org.freedesktop.DBus \
                /org/freedesktop/DBus org.freedesktop.DBus RequestName su "[\"$PS_NAME\", 0]")
        like "$out" '"error": "org.freedesktop.DBus.Error.AccessDenied"' \
             "uid 65534 may not own $PS_NAME (bus policy)"
        out=$(as_nobody timeout 30 "$PYTHON" "$T/rawbus.py" call "$PS_NAME" "$PS_PATH" \
                "$PS_MANAGER" GetStatistics "" '[]')
        like "$out" '^\{"reply": ' "uid 65534 may call GetStatistics"
        out=$(as_nobody timeout 30 "$PYTHON" "$T/rawbus.py" call "$PS_NAME" \
                "$PS_CONNS_PATH" "$PS_CONNS" List 'a{sv}' '[{}]')
        like "$out" '^\{"reply": ' "uid 65534 may call Connections.List"
else
        skip "uid 65534 may not own $PS_NAME (bus policy)" "no setpriv"
        skip "uid 65534 may call GetStatistics" "no setpriv"
        skip "uid 65534 may call Connections.List" "no setpriv"
fi
on one
daemon_setup third
timeout 20 "$PACKETSCOPED" --bpffs-root "${DAEMON_BPFFS[third]}" \
        --state-dir "${DAEMON_DIR[third]}/state" --config-dir "${DAEMON_DIR[third]}/config" \
        --log-target stderr >"$T/third.log" 2>&1
status=$?
ok "$([ "$status" -ne 0 ] && [ "$status" -ne 124 ] && echo 0 || echo 1)" \
   "a second daemon on the same bus exits with an error (status $status)" "$(cat "$T/third.log")"
ok "$([ -e "${DAEMON_BPFFS[third]}" ] && echo 1 || echo 0)" "and creates nothing under its bpffs root"
check "daemon one still owns $PS_NAME on its bus" daemon_owns_name one

# Taking over the other's interface is refused and leaves its guard alone.
on two
out=$(call_error "$PS_PATH" "$PS_MANAGER" AttachLink ss "[\"$A_IF\", \"generic\"]")
like "$out" "^$PS_ERR\.(AlreadyGuarded|AttachFailed): " \
     "daemon two cannot attach to $A_IF, which daemon one guards"
is "$(links)" "$PS_PATH/link/$B_IF" "daemon two still guards $B_IF only"
is "$(ip -d -j link show "$A_IF" | jq -r '.[0].xdp.mode')" 2 "$A_IF keeps daemon one's generic program"

# Traffic on each veth is counted by its own daemon only.
is "$(ping_received "$A_NS" "$A_H4" 3)" 3 "3 echo requests in namespace A, 3 replies"
is "$(ping_received "$B_NS" "$B_H4" 6)" 6 "6 echo requests in namespace B, 6 replies"
is "$(udp_delivered "$A_NS" "$A_H4" 40100 2 10 41100)" 2 "2 UDP datagrams in A, 2 received"
is "$(udp_delivered "$B_NS" "$B_H4" 40200 5 10 41200)" 5 "5 UDP datagrams in B, 5 received"
on one; wait_until 10 stat_is .ipv4 5
S1=$(stats_get)
on two; wait_until 10 stat_is .ipv4 11
S2=$(stats_get)
is "$(jq -r '"\(.icmp_types["8"]) \(.udp_packets) \(.ipv4) \(.links)"' <<<"$S1")" "3 2 5 1" \
   "daemon one: 3 echo requests, 2 UDP, 5 IPv4 packets, 1 link"
is "$(jq -r '"\(.icmp_types["8"]) \(.udp_packets) \(.ipv4) \(.links)"' <<<"$S2")" "6 5 11 1" \
   "daemon two: 6 echo requests, 5 UDP, 11 IPv4 packets, 1 link"
flows_are() {
        [ "$(list_flows | jq length)" = "$1" ]
}
on one; wait_until 10 flows_are 1
is "$(list_flows | jq -r '.[] | "\(.src) \(.dport) \(.packets) \(.link)"')" \
   "$A_N4 40100 2 $A_IF" "daemon one lists only A's UDP flow"
on two; wait_until 10 flows_are 1
is "$(list_flows | jq -r '.[] | "\(.src) \(.dport) \(.packets) \(.link)"')" \
   "$B_N4 40200 5 $B_IF" "daemon two lists only B's UDP flow"

# Stopping one leaves the other answering and counting.
on one; busctl --system call "$PS_NAME" "$PS_PATH" "$PS_MANAGER" DetachLink s "$A_IF" >/dev/null
daemon_stop one
is "$?" 0 "daemon one exits 0"
on two
check "daemon two still owns its name" daemon_alive two
is "$(ping_received "$B_NS" "$B_H4" 2)" 2 "2 more echo requests in namespace B, 2 replies"
wait_until 10 echo_requests_are 8
is "$(stats_get | jq -r '.icmp_types["8"]')" 8 "daemon two counted them: 8 echo requests"
is "$(ip -d -j link show "$A_IF" | jq -r '.[0].xdp.mode // "none"')" none "$A_IF is unguarded now"
out=$(attach "$A_IF" generic 2>&1)
ok $? "daemon two may now attach $A_IF" "$out"
is "$(links | tr ' ' '\n' | sort | tr '\n' ' ')" \
   "$(printf '%s\n' "$PS_PATH/link/$A_IF" "$PS_PATH/link/$B_IF" | sort | tr '\n' ' ')" \
   "daemon two guards both"
daemon_stop two
is "$?" 0 "daemon two exits 0"

done_testing
