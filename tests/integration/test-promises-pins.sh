#!/bin/bash
# SPDX-License-Identifier: MIT
#
# What packetscoped(8), PINNING AND LIFETIME, promises about the pins and links.json, checked
# where no other test does:
#   - a pinned program from another build of the same ABI (its metadata says so) is replaced
#     in place: a new program id in the same kernel link, counters and AttachedSince continue,
#     and a drop rule keeps dropping through the restart (the guard never lapses);
#   - stale pins are removed with LINK_GONE: maps of another ABI version, a missing map pin, a
#     missing link pin, an interface index that now carries another name (which also detaches
#     the program from the renamed interface); links.json then has the interface attached
#     afresh, with counters from zero, if it exists;
#   - an interface that vanishes: LINK_GONE, pins and bus object gone, still in links.json;
#     when it returns the daemon guards it again at its next poll;
#   - pins cleared while no daemon runs (a reboot): the interface is attached again from
#     links.json, in the mode recorded there.

set -u
. "$(dirname "$0")/lib-promises.sh"

require_root
require ip dbus-daemon busctl jq timeout ping bpftool unshare
[ -x "$PACKETSCOPED" ] || bail "no daemon at $PACKETSCOPED"

make_tmpdir T
bus_start "$T/bus"
journal_start
net_create A
daemon_setup main
daemon_start main || bail "the daemon did not start: $(daemon_log main)"
ROOT=${DAEMON_BPFFS[main]}
STATE=${DAEMON_DIR[main]}/state
out=$(attach "$A_IF" generic 2>&1) || bail "AttachLink $A_IF failed: $out"

link_prop() {
        busctl --system get-property "$PS_NAME" "$PS_PATH/link/$A_IF" "$PS_LINK" "$1" |
                cut -d' ' -f2-
}
links() {
        busctl --system --json=short get-property "$PS_NAME" "$PS_PATH" "$PS_MANAGER" Links |
                jq -r '.data | join(" ")'
}
guarded() {
        [ "$(links)" = "$PS_PATH/link/$A_IF" ]
}
unguarded() {
        [ -z "$(links)" ]
}
xdp_prog_id() {
        ip -d link show dev "$1" 2>/dev/null | sed -n 's/.*prog\/xdp id \([0-9]*\).*/\1/p' |
                head -n1
}
xdp_mode() {
        ip -d -j link show dev "$1" | jq -r '.[0].xdp.mode // "none"'
}
kernel_link_id() {
        bpftool -j link show pinned "$ROOT/$A_IF/link" | jq -r '.id'
}
pinned() {
        local p
        for p in link prog flows icmp_flows icmp4_flows stats icmp_stats meta; do
                [ -e "$ROOT/$A_IF/$p" ] || return 1
        done
}
echo_requests() {
        stats_get | jq -r '.icmp_types["8"] // 0'
}
echo_requests_are() {
        [ "$(echo_requests)" = "$1" ]
}
listed() {
        jq -e --arg i "$A_IF" '.links | any(.name == $i)' "$STATE/links.json" >/dev/null
}
# The pinned metadata (struct ps_meta, 40 bytes): abi_version at 0, build_id at 32.
meta_bytes() {
        bpftool -j map lookup pinned "$ROOT/$A_IF/meta" key 0 0 0 0 |
                jq -r '.value | map(ltrimstr("0x")) | join(" ")'
}
# meta_patch OFFSET HEX...: overwrites bytes of the pinned metadata, as another build would
# have written them.
meta_patch() {
        local off=$1 b i
        shift
        read -ra b <<<"$(meta_bytes)"
        [ "${#b[@]}" -eq 40 ] || return 1
        for ((i = 0; i < $#; i++)); do
                b[off + i]=${*:i+1:1}
        done
        bpftool map update pinned "$ROOT/$A_IF/meta" key 0 0 0 0 value hex "${b[@]}"
}
# since_mark: the journal entries from now on, for gone_logged and attached_logged.
since_mark() {
        MARK=$(wc -l <"$JOURNAL")
}
logged() { # MESSAGE-ID
        tail -n +$((MARK + 1)) "$JOURNAL" |
                jq -s --arg id "$1" --arg i "$A_IF" \
                        '[.[] | select(.MESSAGE_ID == $id and .INTERFACE == $i)] | length'
}
# attached_logged: an ATTACHED entry for the interface since the mark that gives its ifindex,
# the mode in use and the program id, as they are now.
attached_logged() {
        local want
        want="Guarding $A_IF (ifindex $(cat "/sys/class/net/$A_IF/ifindex"), generic mode, program id $(link_prop ProgramId))"
        tail -n +$((MARK + 1)) "$JOURNAL" |
                jq -e -s --arg id "$MSG_ATTACHED" --arg i "$A_IF" --arg m "$want" \
                        'any(.[]; .MESSAGE_ID == $id and .INTERFACE == $i and
                             (.MESSAGE == $m or (.MESSAGE | startswith($m + ", asked by uid 0 "))))' \
                        >/dev/null
}
recent_log() {
        tail -n +$((MARK + 1)) "$JOURNAL" | jq -c '{MESSAGE_ID, INTERFACE, MESSAGE}' | tail -n 8
}

check "the pins of $A_IF are complete" pinned
check "links.json lists $A_IF" listed

# ---------------------------------------------------------------------------------------------
# A program from another build of the same ABI

PD=45001
out=$(busctl --system call "$PS_NAME" "$PS_FILTERS_PATH" "$PS_FILTERS" Import ss \
        "[{\"rule_type\": \"udp\", \"dst_port\": $PD}]" replace 2>&1)
ok $? "a drop rule for UDP to $PD" "$out"
DROP_ID=$(pscall "$PS_FILTERS_PATH" "$PS_FILTERS" List | jq -r '.data[0][0].id.data')
is "$(ping_received "$A_NS" "$A_H4" 3)" 3 "3 echo requests answered"
wait_until 10 echo_requests_are 3
is "$(echo_requests)" 3 "3 echo requests counted"
PROG0=$(link_prop ProgramId)
SINCE0=$(link_prop AttachedSince)
LINK0=$(kernel_link_id)
is "$(xdp_prog_id "$A_IF")" "$PROG0" "Link.ProgramId is the program the kernel runs ($PROG0)"
META0=$(meta_bytes)
BUILD0=$(cut -d' ' -f33-40 <<<"$META0")
daemon_stop main
is "$?" 0 "the daemon exits 0"
check "another build's metadata written over the pinned one" meta_patch 32 de ad be ef 01 02 03 04

# UDP to the dropped port all through the restart: not one datagram may get through.
rm -f "$T/udp.ready" "$T/udp.done"
timeout 60 "$PYTHON" "$PS_TESTDIR/craft.py" udp-recv "$A_H4" 50 "$T/udp.ready" "$T/udp.done" \
        "$PD" >"$T/udp.out" &
RECV=$!
defer "kill_wait $RECV"
wait_until 10 test -e "$T/udp.ready" || bail "no UDP listener"
timeout 60 ip netns exec "$A_NS" "$PYTHON" "$PS_TESTDIR/craft.py" udp-stream "$A_H4" 300 0.01 \
        "$PD" &
STREAM=$!
since_mark
daemon_start main || bail "the daemon did not start: $(daemon_log main)"
wait "$STREAM"
touch "$T/udp.done"
wait "$RECV"
is "$(jq -r --arg p "$PD" '.[$p]' "$T/udp.out")" 0 \
   "300 datagrams to $PD during the restart: none arrived"
hits300() {
        [ "$(pscall "$PS_FILTERS_PATH" "$PS_FILTERS" List |
                jq -r --argjson id "$DROP_ID" '.data[0][] | select(.id.data == $id) | .hits.data')" = 300 ]
}
wait_until 10 hits300
ok $? "the drop rule counted all 300"
check "the guard was adopted" guarded
is "$(logged "$MSG_ADOPTED")" 1 "one ADOPTED message for $A_IF" "$(recent_log)"
like "$(tail -n +$((MARK + 1)) "$JOURNAL" | jq -r "select(.MESSAGE_ID == \"$MSG_ADOPTED\") | .MESSAGE")" \
     "replaced in place" "it says the program of the other build was replaced in place"
PROG1=$(link_prop ProgramId)
ok "$([ -n "$PROG1" ] && [ "$PROG1" != "$PROG0" ] && echo 0 || echo 1)" \
   "a new program id ($PROG0 before, $PROG1 now)"
is "$(xdp_prog_id "$A_IF")" "$PROG1" "the kernel runs the new program"
is "$(kernel_link_id)" "$LINK0" "in the same kernel link ($LINK0): updated in place, not re-attached"
is "$(link_prop AttachedSince)" "$SINCE0" "AttachedSince continues"
is "$(echo_requests)" 3 "the counters continue (3 echo requests)"
is "$(cut -d' ' -f33-40 <<<"$(meta_bytes)")" "$BUILD0" "the metadata carries this build's id again"
is "$(ping_received "$A_NS" "$A_H4" 2)" 2 "2 more echo requests answered"
wait_until 10 echo_requests_are 5
is "$(echo_requests)" 5 "5 counted"
daemon_stop main
since_mark
daemon_start main || bail "the daemon did not start: $(daemon_log main)"
is "$(link_prop ProgramId)" "$PROG1" "restarted with the same build: the program stays"
like "$(tail -n +$((MARK + 1)) "$JOURNAL" | jq -r "select(.MESSAGE_ID == \"$MSG_ADOPTED\") | .MESSAGE")" \
     "counters continue\$" "  ... and the adoption says nothing was replaced"

# ---------------------------------------------------------------------------------------------
# Stale pins

# stale WHAT COMMAND...: with the daemon stopped, COMMAND spoils the pins; a new daemon must
# remove them (LINK_GONE) and attach afresh, as links.json lists the interface.
stale() {
        local what=$1 st
        shift
        daemon_stop main
        "$@"
        st=$?
        ok $st "$what: done with the daemon stopped"
        since_mark
        daemon_start main || bail "the daemon did not start: $(daemon_log main)"
        wait_until 10 guarded
        n=$(logged "$MSG_LINK_GONE")
        ok "$([ "$n" = 1 ] && echo 0 || echo 1)" "$what: stale pins removed with LINK_GONE" \
           "$n LINK_GONE entries; the journal since the restart:" "$(recent_log)"
        check "$what: ATTACHED with ifindex, mode and program id: attached afresh from links.json" \
              attached_logged
        is "$(logged "$MSG_ADOPTED")" 0 "$what: not adopted"
        check "$what: guarded" guarded
        check "$what: the pins are complete again" pinned
        is "$(xdp_prog_id "$A_IF")" "$(link_prop ProgramId)" \
           "$what: the kernel runs the new guard's program"
        is "$(echo_requests)" 0 "$what: counters from zero"
        is "$(link_prop Mode)" '"generic"' "$what: in the recorded mode, generic"
}
stale "maps of another ABI version" meta_patch 0 fe ff ff 7f
stale "the flows pin missing" rm "$ROOT/$A_IF/flows"
stale "the link pin missing" rm "$ROOT/$A_IF/link"

# The interface index now carries another name.
RENAMED=psx${A_IF#psi}
daemon_stop main
ip link set "$A_IF" down && ip link set "$A_IF" name "$RENAMED" && ip link set "$RENAMED" up
ok $? "$A_IF renamed to $RENAMED with the daemon stopped"
defer "ip link del '$RENAMED'"
PROG_R=$(xdp_prog_id "$RENAMED")
ok "$([ -n "$PROG_R" ] && echo 0 || echo 1)" "the guard's program is still attached to $RENAMED"
since_mark
daemon_start main || bail "the daemon did not start: $(daemon_log main)"
is "$(logged "$MSG_LINK_GONE")" 1 "renamed: LINK_GONE for $A_IF" "$(recent_log)"
ok "$([ -e "$ROOT/$A_IF" ] && echo 1 || echo 0)" "renamed: the pins are removed"
is "$(xdp_prog_id "$RENAMED")" "" "renamed: the program is detached from $RENAMED"
check "renamed: nothing guarded ($A_IF does not exist)" unguarded
check "renamed: links.json still lists $A_IF" listed
ip link set "$RENAMED" down && ip link set "$RENAMED" name "$A_IF" && ip link set "$A_IF" up
ok $? "renamed back to $A_IF"
wait_until 10 guarded
ok $? "$A_IF exists again: guarded again at a poll"
check "  ... with an ATTACHED message giving ifindex, mode and program id" attached_logged

# ---------------------------------------------------------------------------------------------
# An interface that vanishes and returns, with the daemon running

since_mark
ip link del "$A_IF"
ok $? "$A_IF deleted"
wait_until 10 unguarded
ok $? "the daemon noticed: no longer guarded" "$(links)"
is "$(logged "$MSG_LINK_GONE")" 1 "LINK_GONE for $A_IF" "$(recent_log)"
ok "$([ -e "$ROOT/$A_IF" ] && echo 1 || echo 0)" "its pins are removed"
ok "$(busctl --system introspect "$PS_NAME" "$PS_PATH/link/$A_IF" >/dev/null 2>&1 && echo 1 || echo 0)" \
   "its bus object is gone"
check "links.json still lists it" listed
# The same veth pair again, with its addresses and static neighbours.
ip link add "$A_IF" type veth peer name "$A_PEER" netns "$A_NS" &&
        ip addr add "$A_H4/24" dev "$A_IF" && ip addr add "$A_H6/64" dev "$A_IF" nodad &&
        ip -n "$A_NS" addr add "$A_N4/24" dev "$A_PEER" &&
        ip -n "$A_NS" addr add "$A_N6/64" dev "$A_PEER" nodad &&
        ip link set "$A_IF" up && ip -n "$A_NS" link set "$A_PEER" up
ok $? "$A_IF created again"
HMAC=$(cat "/sys/class/net/$A_IF/address")
NMAC=$(ip netns exec "$A_NS" cat "/sys/class/net/$A_PEER/address")
ip neigh replace "$A_N4" lladdr "$NMAC" dev "$A_IF" nud permanent
ip -n "$A_NS" neigh replace "$A_H4" lladdr "$HMAC" dev "$A_PEER" nud permanent
wait_until 10 guarded
ok $? "guarded again at a poll"
check "  ... with an ATTACHED message giving ifindex, mode and program id" attached_logged
check "  ... and complete pins" pinned
is "$(link_prop Mode)" '"generic"' "  ... in the recorded mode"
is "$(echo_requests)" 0 "  ... with fresh tables"
wait_until 10 bash -c "ip -o link show '$A_IF' | grep -q LOWER_UP"
is "$(ping_received "$A_NS" "$A_H4" 2)" 2 "2 echo requests answered"
wait_until 10 echo_requests_are 2
is "$(echo_requests)" 2 "  ... and counted by the new guard"

# ---------------------------------------------------------------------------------------------
# Pins cleared while no daemon runs

daemon_stop main
rm -rf "${ROOT:?}/$A_IF"
is "$(xdp_mode "$A_IF")" none "pins removed with the daemon stopped: the kernel detached the program"
since_mark
daemon_start main || bail "the daemon did not start: $(daemon_log main)"
wait_until 10 guarded
ok $? "the new daemon guards $A_IF again from links.json"
check "  ... with an ATTACHED message giving ifindex, mode and program id" attached_logged
is "$(xdp_mode "$A_IF")" 2 "  ... in generic mode, as recorded"
check "  ... with complete pins" pinned

done_testing
