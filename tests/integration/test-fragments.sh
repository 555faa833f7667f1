#!/bin/bash
# SPDX-License-Identifier: MIT
#
# No rule is skipped because of how a packet is cut, against real traffic through a guarded
# veth: crafted frames sent with scapy from inside the namespace (fragments.py), a listener on
# the host side. With a drop rule on tcp/23:
#   - a SYN split so that its first fragment holds 8, 16 or 24 bytes of the TCP header gets no
#     SYN-ACK, and each is counted as a tiny fragment, both fragments dropped;
#   - a SYN behind 7, 1 + 7 or 12 Destination Options headers gets no SYN-ACK (the rule
#     decides), and behind 20 none either (LongHeaderChains=drop);
#   - the same kinds to a port no rule covers do get their SYN-ACK (the host accepts them, so
#     the checks above are about the guard), except the tiny fragments, dropped by policy.
# With a drop rule on udp 0-1023, a 1,000-byte datagram to a port no rule covers, sent in
# fragments, arrives whole. Then TinyFragments=pass and LongHeaderChains=pass after a restart.

set -u
. "$(dirname "$0")/lib.sh"

require_root
require ip dbus-daemon busctl jq timeout
[ -x "$PACKETSCOPED" ] || bail "no daemon at $PACKETSCOPED"
"$PYTHON" -c 'import scapy.all' 2>/dev/null || bail "scapy is not importable from $PYTHON"

FILTERS_PATH=$PS_PATH/filters
FILTERS=org.packetscope.Guarder1.Filters
BLOCKED=23
OPEN=2323
UDP_OPEN=5000

make_tmpdir T
bus_start "$T/bus"
daemon_start main || bail "the daemon did not start: $(daemon_log main)"
net_create A
out=$(attach "$A_IF" generic 2>&1) || bail "AttachLink $A_IF failed: $out"

frag_ns() {
        timeout 60 ip netns exec "$A_NS" "$PYTHON" "$PS_TESTDIR/fragments.py" "$@"
}

# probes FAMILY DPORT KIND...: {"KIND": "synack"|"none"} for SYNs from the namespace.
probes() {
        local fam=$1 port=$2 src dst
        shift 2
        if [ "$fam" = 4 ]; then src=$A_N4 dst=$A_H4; else src=$A_N6 dst=$A_H6; fi
        frag_ns syn-probes "$A_PEER" "$A_NMAC" "$A_HMAC" "$src" "$dst" "$port" "$@"
}

# listen_start: TCP listeners on the host side, on both ports and both families.
listen_start() {
        rm -f "$T/listen4.ready" "$T/listen6.ready"
        timeout 120 "$PYTHON" "$PS_TESTDIR/fragments.py" listen "$A_H4" 100 "$T/listen4.ready" \
                $BLOCKED $OPEN >"$T/listen4.out" 2>&1 &
        L4_PID=$!
        defer "kill_wait $L4_PID"
        timeout 120 "$PYTHON" "$PS_TESTDIR/fragments.py" listen "$A_H6" 100 "$T/listen6.ready" \
                $BLOCKED $OPEN >"$T/listen6.out" 2>&1 &
        L6_PID=$!
        defer "kill_wait $L6_PID"
        wait_until 20 test -e "$T/listen4.ready" -a -e "$T/listen6.ready" ||
                bail "the listeners did not start: $(cat "$T/listen4.out" "$T/listen6.out")"
}

# udp_whole PORT: a 1,000-byte datagram in fragments from the namespace; echoes the size the
# host's socket received (0: nothing).
udp_whole() {
        local pid
        rm -f "$T/udp.ready"
        timeout 30 "$PYTHON" "$PS_TESTDIR/fragments.py" udp-recv "$A_H4" "$1" 5 "$T/udp.ready" \
                >"$T/udp.out" 2>&1 &
        pid=$!
        wait_until 10 test -e "$T/udp.ready" || { kill_wait "$pid"; echo "no listener"; return; }
        frag_ns udp-frags "$A_PEER" "$A_NMAC" "$A_HMAC" "$A_N4" "$A_H4" "$1" 1000 >/dev/null
        wait "$pid"
        cat "$T/udp.out"
}

import_rules() {
        busctl --system --json=short call "$PS_NAME" "$FILTERS_PATH" "$FILTERS" Import ss \
                "$1" replace >/dev/null
}

# expect_stat KEY VALUE DESCRIPTION: waits for the daemon's next polls to show it.
expect_stat() {
        wait_until 10 stat_is ".$1" "$2"
        is "$(stat_of ".$1")" "$2" "$3"
}

listen_start
out=$(import_rules "[{\"rule_type\": \"tcp\", \"dst_port\": $BLOCKED},
                     {\"rule_type\": \"udp\", \"dst_port\": \"0-1023\"}]" 2>&1)
ok $? "Import: drop tcp/$BLOCKED, drop udp 0-1023" "$out" || bail "no rules, nothing to test"

# ---------------------------------------------------------------------------------------------
# The controls: what the host accepts when no rule stands in the way.
got=$(probes 4 $OPEN plain whole)
is "$got" '{"plain": "synack", "whole": "synack"}' \
   "SYNs to tcp/$OPEN, whole and fragmented after the TCP header, get their SYN-ACK"
got=$(probes 6 $OPEN plain dst7 hbh7 dst12)
is "$got" '{"dst12": "synack", "dst7": "synack", "hbh7": "synack", "plain": "synack"}' \
   "SYNs to tcp/$OPEN behind 0, 7, 1 + 7 and 12 extension headers get their SYN-ACK"

# ---------------------------------------------------------------------------------------------
# Tiny first fragments
got=$(probes 4 $BLOCKED plain frag8 frag16 frag24 whole)
is "$got" '{"frag16": "none", "frag24": "none", "frag8": "none", "plain": "none", "whole": "none"}' \
   "SYNs to tcp/$BLOCKED: whole, tiny-fragmented (8, 16, 24 bytes of TCP) and fragmented after the header: no SYN-ACK"
expect_stat tiny_fragments 3 "tiny_fragments == 3"
expect_stat dropped_tiny_fragments 6 "dropped_tiny_fragments == 6 (both fragments of each)"
got=$(probes 4 $OPEN frag8)
is "$got" '{"frag8": "none"}' "a tiny-fragmented SYN to tcp/$OPEN: dropped too (TinyFragments=drop)"
expect_stat tiny_fragments 4 "tiny_fragments == 4"
expect_stat dropped_tiny_fragments 8 "dropped_tiny_fragments == 8"

# ---------------------------------------------------------------------------------------------
# Long IPv6 extension chains
got=$(probes 6 $BLOCKED dst7 hbh7 dst12 dst20)
is "$got" '{"dst12": "none", "dst20": "none", "dst7": "none", "hbh7": "none"}' \
   "SYNs to tcp/$BLOCKED behind 7, 1 + 7, 12 and 20 extension headers: no SYN-ACK"
expect_stat long_chains 1 "long_chains == 1 (20 headers; 16 are walked)"
expect_stat dropped_long_chains 1 "dropped_long_chains == 1"
# Rule drops: the whole SYN and the one fragmented after its header (2 frames), 3 chains.
expect_stat dropped_filter 6 "dropped_filter == 6"

# ---------------------------------------------------------------------------------------------
# Port rules and later fragments
is "$(udp_whole $UDP_OPEN)" 1000 \
   "a 1,000-byte UDP datagram to $UDP_OPEN in fragments arrives whole despite the 0-1023 rule"
is "$(udp_whole 53)" 0 "the same to udp/53 does not arrive"
expect_stat dropped_filter 8 "dropped_filter == 8 (both fragments to udp/53 as well)"

s=$(stats_get)
is "$(jq '.dropped' <<<"$s")" \
   "$(jq '.dropped_filter + .dropped_tiny_fragments + .dropped_long_chains + .dropped_deep_vlan' <<<"$s")" \
   "every drop has its reason"

# ---------------------------------------------------------------------------------------------
# The policies set to pass: after a restart, the adopted program follows the new settings.
cat >>"${DAEMON_DIR[main]}/config/packetscope.conf" <<EOF
[Filters]
TinyFragments=pass
LongHeaderChains=pass
EOF
daemon_stop main
daemon_start main || bail "the daemon did not restart: $(daemon_log main)"
is "$(pscall "$PS_PATH" "$PS_MANAGER" Describe | jq -r '.data[0]' |
      jq -r '.config.tiny_fragments + " " + .config.long_header_chains')" "pass pass" \
   "Describe shows TinyFragments=pass LongHeaderChains=pass"
got=$(probes 4 $OPEN frag8)
is "$got" '{"frag8": "synack"}' "TinyFragments=pass: a tiny-fragmented SYN to tcp/$OPEN gets through"
got=$(probes 6 $OPEN dst20)
is "$got" '{"dst20": "synack"}' "LongHeaderChains=pass: a SYN behind 20 headers gets through"
expect_stat long_chains 2 "long_chains == 2"
expect_stat dropped_long_chains 1 "dropped_long_chains still 1"
expect_stat tiny_fragments 5 "tiny_fragments == 5"
expect_stat dropped_tiny_fragments 8 "dropped_tiny_fragments still 8"

done_testing
