#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Any interface name the kernel accepts can be guarded: a '-' (br-lan), a '.' (the name of a
# VLAN sub-interface, which bpffs refuses as a directory name), the longest legal name with
# '@', '_', '-' and '.', and a name outside ASCII. Through the bus and through the client; the
# pins sit in escaped directories, real traffic is counted on each, a restarted daemon adopts
# them all, and pins of the first layout (directories named after the interface as it is) are
# moved and adopted. The daemon runs in a network namespace of this test, so the names can be
# exactly these without meeting anyone else's interfaces.

set -u
. "$(dirname "$0")/lib.sh"

require_root
require ip dbus-daemon busctl jq timeout nsenter ping
[ -x "$PACKETSCOPED" ] || bail "no daemon at $PACKETSCOPED"
[ -x "$PACKETSCOPECTL" ] || bail "no client at $PACKETSCOPECTL"

make_tmpdir T
bus_start "$T/bus"

DNS=ps-it-$$-ifd # the daemon's namespace
PNS=ps-it-$$-ifp # the peers
ip netns add "$DNS" || bail "ip netns add $DNS failed"
defer "ip netns del '$DNS'"
ip netns add "$PNS" || bail "ip netns add $PNS failed"
defer "ip netns del '$PNS'"
ip -n "$DNS" link set lo up
ip -n "$PNS" link set lo up

DASH=br-lan
DOT=a.100
LONGEST=x_y@z-0.1234567
UTF=ps-é
NAMES=("$DASH" "$DOT" "$LONGEST" "$UTF")
# The pin directory each name gets: '.' and bytes outside ASCII written %xx.
declare -A PIN=([$DASH]=br-lan [$DOT]=a%2e100 [$LONGEST]=x_y@z-0%2e1234567 [$UTF]=ps-%c3%a9)
declare -A ADDR
i=0
for n in "${NAMES[@]}"; do
        i=$((i + 1))
        ip -n "$DNS" link add "$n" type veth peer name "peer$i" netns "$PNS" ||
                bail "veth '$n' failed"
        ip -n "$DNS" addr add "10.77.$i.1/24" dev "$n"
        ip -n "$PNS" addr add "10.77.$i.2/24" dev "peer$i"
        ip -n "$DNS" link set "$n" up
        ip -n "$PNS" link set "peer$i" up
        ADDR[$n]=10.77.$i.1
done
is "${#LONGEST}" 15 "the longest name has IFNAMSIZ-1 = 15 bytes"

daemon_setup main
DAEMON_WRAP[main]="nsenter --net=/run/netns/$DNS"
daemon_start main || bail "the daemon did not start: $(daemon_log main)"
ROOT=${DAEMON_BPFFS[main]}

ctl() {
        timeout 30 "$PACKETSCOPECTL" --no-ask-password "$@" 2>&1
}
link_path() {
        # sd_bus_path_encode: every byte but [A-Za-z0-9] as _xx.
        printf '%s/link/' "$PS_PATH"
        printf '%s' "$1" | od -An -v -tx1 | tr -s ' \n' '  ' | tr ' ' '\n' | sed '/^$/d' |
                while read -r h; do
                        c=$(printf "\\x$h")
                        if [[ "$c" =~ ^[A-Za-z0-9]$ ]]; then printf '%s' "$c"; else printf '_%s' "$h"; fi
                done
}
prop() {
        busctl --system --json=short get-property "$PS_NAME" "$(link_path "$1")" "$PS_LINK" "$2" |
                jq -r .data
}
links() {
        busctl --system --json=short get-property "$PS_NAME" "$PS_PATH" "$PS_MANAGER" Links |
                jq -r '.data | sort | join(" ")'
}
want_links() {
        local n
        for n in "${NAMES[@]}"; do link_path "$n"; echo; done | sort | paste -sd' '
}
pinned() {
        [ -e "$ROOT/$1/link" ] && [ -e "$ROOT/$1/flows" ] && [ -e "$ROOT/$1/meta" ]
}
xdp_on() {
        ip -n "$DNS" -d -j link show dev "$1" | jq -e '.[0].xdp.prog.id // .[0].xdp.attached' \
                >/dev/null
}
packets_at_least() {
        local p
        p=$(prop "$1" Packets)
        [ -n "$p" ] && [ "$p" -ge "$2" ]
}

# The first two through the bus, the other two through the client.
for n in "$DASH" "$DOT"; do
        out=$(pscall "$PS_PATH" "$PS_MANAGER" AttachLink ss "$n" generic 2>&1)
        is "$(jq -r '.data[0]' <<<"$out" 2>/dev/null || echo "$out")" "$(link_path "$n")" \
                "AttachLink '$n' over the bus: the link's object path"
done
for n in "$LONGEST" "$UTF"; do
        out=$(ctl attach --mode=generic "$n")
        ok $? "packetscopectl attach '$n'" "$out"
done
for n in "${NAMES[@]}"; do
        pinned "${PIN[$n]}" && xdp_on "$n"
        ok $? "'$n': XDP attached, pins in $ROOT/${PIN[$n]}" "$(ls -la "$ROOT" 2>&1)"
        is "$(prop "$n" Name)" "$n" "'$n': Link.Name at its object path"
done
is "$(links)" "$(want_links)" "Links lists the four objects"
out=$(ctl status)
ok $? "packetscopectl status" "$out"
for n in "${NAMES[@]}"; do
        grep -qF -- "$n" <<<"$out"
        ok $? "packetscopectl status shows '$n'" "$out"
done

# Real traffic on each: five echo requests, each answered and counted by that link's program.
for n in "${NAMES[@]}"; do
        is "$(ping_received "$PNS" "${ADDR[$n]}" 5)" 5 "'$n': 5 pings from the peer answered"
        wait_until 10 packets_at_least "$n" 5
        ok $? "'$n': Link.Packets counts them (got $(prop "$n" Packets))"
done

# A restart adopts every one of them from its escaped directory.
daemon_stop main
for n in "${NAMES[@]}"; do
        xdp_on "$n"
        ok $? "'$n' stays guarded while no daemon runs"
done
# The first layout named the directory after the interface as it is. Only the name outside
# ASCII is spelled differently now ('.' never got that far): put its pins back there.
mv "$ROOT/${PIN[$UTF]}" "$ROOT/$UTF" || bail "cannot move the pins to the first layout"
daemon_start main || bail "the daemon did not restart: $(daemon_log main)"
wait_until 10 test "$(links)" = "$(want_links)"
ok $? "the restarted daemon adopts all four" "$(links)" "$(daemon_log main 20)"
pinned "${PIN[$UTF]}" && [ ! -e "$ROOT/$UTF" ]
ok $? "pins of the first layout for '$UTF' are moved to ${PIN[$UTF]}" "$(ls -la "$ROOT" 2>&1)"
grep -q "Moved the pins of $UTF from $ROOT/$UTF to $ROOT/${PIN[$UTF]}" "${DAEMON_DIR[main]}/log"
ok $? "the move is logged" "$(daemon_log main 20)"
for n in "${NAMES[@]}"; do
        p=$(prop "$n" Packets)
        ge "$p" 5 "'$n': the adopted counters continue (Packets $p)"
done

# Detach: through the client for two, the bus for the others; nothing stays behind.
for n in "$DASH" "$UTF"; do
        out=$(ctl detach "$n")
        ok $? "packetscopectl detach '$n'" "$out"
done
for n in "$DOT" "$LONGEST"; do
        out=$(pscall "$PS_PATH" "$PS_MANAGER" DetachLink s "$n" 2>&1)
        ok $? "DetachLink '$n' over the bus" "$out"
done
for n in "${NAMES[@]}"; do
        ! xdp_on "$n" && [ ! -e "$ROOT/${PIN[$n]}" ]
        ok $? "'$n': detached, its pin directory gone" "$(ls -la "$ROOT" 2>&1)"
done
is "$(links)" "" "Links is empty"

# What is no interface name is refused before anything is tried, saying what is accepted.
for bad in "a/b" "a:b" "a b" "0123456789abcdef" "." ".."; do
        like "$(call_error "$PS_PATH" "$PS_MANAGER" AttachLink ss "[\"$bad\", \"\"]")" \
                "^$INVALID_ARGS: invalid interface name '.*'; accepted: 1-15 bytes" \
                "AttachLink '$bad': InvalidArgs"
done

done_testing
