#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Attach, detach and re-attach; every refusal with its error name; the pins under the bpffs
# root appear on attach and go on detach; the guard outlives the daemon (it keeps counting
# while no daemon runs), and a new daemon on the same bpffs root adopts it with its counters.

set -u
. "$(dirname "$0")/lib.sh"

require_root
require ip dbus-daemon busctl jq timeout
[ -x "$PACKETSCOPED" ] || bail "no daemon at $PACKETSCOPED"

make_tmpdir T
bus_start "$T/bus"
daemon_setup main
# Two links at most, so that the third attach meets the limit.
echo "MaxLinks=2" >>"${DAEMON_DIR[main]}/config/packetscope.conf"
daemon_start main || bail "the daemon did not start: $(daemon_log main)"
net_create A
ROOT=${DAEMON_BPFFS[main]}

# A second veth whose name needs escaping in an object path, a third one for the link limit,
# and a bridge (a device without native XDP support).
tag=$(printf '%04x' $((RANDOM % 65536)))
DASH=ps-d$tag
DUMMY=psy$tag
ip link add "$DASH" type veth peer name "psq$tag" || bail "veth $DASH failed"
defer "ip link del '$DASH'"
THIRD=psr$tag
ip link add "$THIRD" type veth peer name "psw$tag" || bail "veth $THIRD failed"
defer "ip link del '$THIRD'"
# Without either kind of device, the native-mode refusal is skipped.
if ip link add "$DUMMY" type bridge 2>/dev/null || ip link add "$DUMMY" type ifb 2>/dev/null; then
        defer "ip link del '$DUMMY'"
        ip link set "$DUMMY" up
else
        DUMMY=
fi
ip link set "$DASH" up
ip link set "$THIRD" up
defer "busctl --system call $PS_NAME $PS_PATH $PS_MANAGER DetachLink s '$A_IF'"
defer "busctl --system call $PS_NAME $PS_PATH $PS_MANAGER DetachLink s '$DASH'"
defer "busctl --system call $PS_NAME $PS_PATH $PS_MANAGER DetachLink s '$THIRD'"
[ -n "$DUMMY" ] && defer "busctl --system call $PS_NAME $PS_PATH $PS_MANAGER DetachLink s '$DUMMY'"

mgr() {
        local method=$1 sig=$2 json=$3
        call_error "$PS_PATH" "$PS_MANAGER" "$method" "$sig" "$json"
}
links() {
        busctl --system --json=short get-property "$PS_NAME" "$PS_PATH" "$PS_MANAGER" Links |
                jq -r '.data | join(" ")'
}
xdp_of() {
        ip -d -j link show "$1" | jq -r '.[0].xdp.mode // "none"'
}
pinned() {
        [ -e "$ROOT/$1/link" ] && [ -e "$ROOT/$1/prog" ] && [ -e "$ROOT/$1/flows" ] &&
                [ -e "$ROOT/$1/stats" ]
}
link_prop() {
        busctl --system get-property "$PS_NAME" "$PS_PATH/link/$1" "$PS_LINK" "$2" |
                cut -d' ' -f2-
}

echo_requests() {
        stats_get | jq -r '.icmp_types["8"] // 0'
}
echo_requests_are() {
        [ "$(echo_requests)" = "$1" ]
}

# Refusals before anything is attached.
like "$(mgr AttachLink ss '["psnone'$tag'", "generic"]')" \
     "^$PS_ERR\.NoSuchInterface: .*psnone$tag" "AttachLink of an unknown interface: NoSuchInterface"
like "$(mgr AttachLink ss "[\"$A_IF\", \"turbo\"]")" \
     "^$INVALID_ARGS: .*'turbo'.*accepted: auto, native, generic" \
     "AttachLink with mode 'turbo': InvalidArgs naming what is accepted"
like "$(mgr AttachLink ss '["", "generic"]')" "^$INVALID_ARGS: .*interface name" \
     "AttachLink with an empty name: InvalidArgs"
like "$(mgr AttachLink ss '["a/b", "generic"]')" "^$INVALID_ARGS: .*interface name" \
     "AttachLink with a '/' in the name: InvalidArgs"
like "$(mgr AttachLink ss '["0123456789abcdef", "generic"]')" "^$INVALID_ARGS: .*interface name" \
     "AttachLink with a 16-byte name: InvalidArgs"
like "$(mgr DetachLink s "[\"$A_IF\"]")" "^$PS_ERR\.NoSuchLink: .*$A_IF" \
     "DetachLink of an unguarded interface: NoSuchLink"
is "$(links)" "" "no links yet"
ok "$(pinned "$A_IF" && echo 1 || echo 0)" "nothing pinned for $A_IF before AttachLink"

# Attach.
out=$(mgr AttachLink ss "[\"$A_IF\", \"generic\"]")
is "$out" OK "AttachLink $A_IF generic" || bail "nothing to test without a guarded link: $out"
is "$(links)" "$PS_PATH/link/$A_IF" "Links lists $PS_PATH/link/$A_IF"
check "pins under the bpffs root after attach" pinned "$A_IF"
is "$(xdp_of "$A_IF")" 2 "the kernel reports a generic XDP attachment on $A_IF"
is "$(link_prop "$A_IF" Name)" "\"$A_IF\"" "Link.Name"
is "$(link_prop "$A_IF" Ifindex)" "$(cat "/sys/class/net/$A_IF/ifindex")" "Link.Ifindex"
is "$(ping_received "$A_NS" "$A_H4" 2)" 2 "2 echo requests from the namespace, 2 replies"
wait_until 10 echo_requests_are 2
is "$(echo_requests)" 2 "2 echo requests counted"
like "$(mgr AttachLink ss "[\"$A_IF\", \"generic\"]")" "^$PS_ERR\.AlreadyGuarded: .*$A_IF" \
     "AttachLink again: AlreadyGuarded"
like "$(mgr AttachLink ss "[\"$A_IF\", \"native\"]")" "^$PS_ERR\.AlreadyGuarded: " \
     "AttachLink again in another mode: AlreadyGuarded"

# Object path encoding of a name with '-'.
out=$(rawcall "$PS_PATH" "$PS_MANAGER" AttachLink ss "[\"$DASH\", \"generic\"]")
is "$(jq -r '.reply[0]' <<<"$out")" "$PS_PATH/link/ps_2dd$tag" \
   "AttachLink $DASH returns the escaped path .../link/ps_2dd$tag"
is "$(link_prop "ps_2dd$tag" Name)" "\"$DASH\"" "that object is $DASH"

# The limit, then a native attach where the driver cannot do it.
like "$(mgr AttachLink ss "[\"$THIRD\", \"generic\"]")" "^$PS_ERR\.LimitExceeded: " \
     "a third AttachLink with MaxLinks=2: LimitExceeded"
is "$(mgr DetachLink s "[\"$DASH\"]")" OK "DetachLink $DASH"
ok "$([ -e "$ROOT/$DASH" ] && echo 1 || echo 0)" "the pins of $DASH are gone"
if [ -n "$DUMMY" ]; then
        like "$(mgr AttachLink ss "[\"$DUMMY\", \"native\"]")" "^$PS_ERR\.AttachFailed: " \
             "native XDP on a device without driver support: AttachFailed"
        ok "$([ -e "$ROOT/$DUMMY" ] && echo 1 || echo 0)" "a failed attach leaves no pins behind"
else
        skip "native XDP on a device without driver support: AttachFailed" "no bridge or ifb"
        skip "a failed attach leaves no pins behind" "no bridge or ifb"
fi
is "$(links)" "$PS_PATH/link/$A_IF" "only $A_IF is guarded"

# Detach, re-attach in native mode.
is "$(mgr DetachLink s "[\"$A_IF\"]")" OK "DetachLink $A_IF"
ok "$([ -e "$ROOT/$A_IF" ] && echo 1 || echo 0)" "the pins of $A_IF are gone" "$(ls -la "$ROOT")"
is "$(xdp_of "$A_IF")" none "no XDP program on $A_IF after DetachLink"
like "$(mgr DetachLink s "[\"$A_IF\"]")" "^$PS_ERR\.NoSuchLink: " "DetachLink twice: NoSuchLink"
is "$(mgr AttachLink ss "[\"$A_IF\", \"native\"]")" OK "re-attach $A_IF in native mode"
is "$(link_prop "$A_IF" Mode)" '"native"' "Link.Mode is native"
is "$(xdp_of "$A_IF")" 1 "the kernel reports a driver-mode XDP attachment"
check "pins again after the re-attach" pinned "$A_IF"
is "$(echo_requests)" 0 "the re-attached link starts from zero (the 2 earlier requests are gone)"
is "$(ping_received "$A_NS" "$A_H4" 4)" 4 "4 echo requests from the namespace, 4 replies"
wait_until 10 echo_requests_are 4
is "$(echo_requests)" 4 "4 echo requests counted"
since=$(link_prop "$A_IF" AttachedSince)
progid=$(link_prop "$A_IF" ProgramId)

# The daemon goes away; the guard stays and keeps counting.
daemon_stop main
is "$?" 0 "the daemon exits 0 on SIGTERM"
check "the pins survive the daemon" pinned "$A_IF"
is "$(xdp_of "$A_IF")" 1 "XDP stays attached without a daemon"
is "$(ping_received "$A_NS" "$A_H4" 3)" 3 "3 echo requests while no daemon runs, 3 replies"

# A new daemon adopts the link and its counters.
daemon_start main
ok $? "a new daemon starts on the same bpffs root" "$(daemon_log main)"
is "$(links)" "$PS_PATH/link/$A_IF" "it adopted $A_IF"
is "$(link_prop "$A_IF" Mode)" '"native"' "in native mode"
is "$(link_prop "$A_IF" AttachedSince)" "$since" "AttachedSince is the original attach time"
is "$(link_prop "$A_IF" ProgramId)" "$progid" "the same program (same build) kept running"
wait_until 10 echo_requests_are 7
is "$(echo_requests)" 7 "counters continue: 4 + 3 echo requests, none lost while it was down"
is "$(list_icmp '{"type": ["y", 8]}' | jq -r '.[0].packets')" 7 \
   "the ICMP table continues too: one echo row of 7 packets"
like "$(mgr AttachLink ss "[\"$A_IF\", \"generic\"]")" "^$PS_ERR\.AlreadyGuarded: " \
     "an adopted link is guarded: AlreadyGuarded"
is "$(mgr DetachLink s "[\"$A_IF\"]")" OK "DetachLink of the adopted link"
ok "$([ -e "$ROOT/$A_IF" ] && echo 1 || echo 0)" "its pins are gone"
is "$(xdp_of "$A_IF")" none "and so is its XDP program"

# A restart after an explicit detach brings nothing back.
daemon_stop main
is "$?" 0 "the daemon exits 0 again"
daemon_start main
ok $? "a third daemon starts" "$(daemon_log main)"
is "$(links)" "" "nothing is adopted after an explicit detach"
is "$(xdp_of "$A_IF")" none "nothing is attached"
daemon_stop main
is "$?" 0 "the third daemon exits 0"

done_testing
