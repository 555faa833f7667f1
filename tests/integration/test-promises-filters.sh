#!/bin/bash
# SPDX-License-Identifier: MIT
#
# What org.packetscope.Guarder1(5) promises about the filters and no other test checks:
#   - the lock-out guard: with ManagementAddresses= and ManagementPorts= set, every method that
#     adds or changes an enabled drop rule refuses one that would drop TCP (a SYN or an ACK)
#     from a management address to a management port with WouldLockOut, and changes nothing;
#     rules that would not (another port, another address, UDP, pass, count, disabled, RST
#     only) are taken; force passes the guard for that call, and the forced rule really drops;
#   - Reloaded instead of per-rule signals past 1,000 rules added and removed in one change,
#     and not at 1,000;
#   - Dropped for UDP and TCP over IPv4 and UDP over IPv6, with the rule, link, protocol,
#     addresses and ports; at most 20 samples per second per CPU while the rule's hits stay
#     exact; drop_events_lost when the samples find the ring buffer full.

set -u
. "$(dirname "$0")/lib-promises.sh"

require_root
require ip dbus-daemon busctl jq timeout
[ -x "$PACKETSCOPED" ] || bail "no daemon at $PACKETSCOPED"

make_tmpdir T
bus_start "$T/bus"
net_create A
daemon_setup main
STATE=${DAEMON_DIR[main]}/state
FJ=$STATE/filters.json
cat >>"${DAEMON_DIR[main]}/config/packetscope.conf" <<-EOF
	[Filters]
	ManagementAddresses=$A_N4 $A_N6
	ManagementPorts=22 2222
	EOF
daemon_start main || bail "the daemon did not start: $(daemon_log main)"
out=$(attach "$A_IF" generic 2>&1) || bail "AttachLink $A_IF failed: $out"
NET=${A_N4%.*}.0/24
WLO="^$PS_ERR\.WouldLockOut: "

craft_ns() {
        timeout 60 ip netns exec "$A_NS" "$PYTHON" "$PS_TESTDIR/craft.py" "$@"
}

rules() {
        pscall "$PS_FILTERS_PATH" "$PS_FILTERS" List | jq -c '[.data[0][] | map_values(.data)]'
}

count() {
        busctl --system get-property "$PS_NAME" "$PS_FILTERS_PATH" "$PS_FILTERS" Count |
                cut -d' ' -f2
}

hits() {
        rules | jq -r --argjson id "$1" '[.[] | select(.id == $id) | .hits] | first // "none"'
}

hits_are() {
        [ "$(hits "$1")" = "$2" ]
}

# add RULE-A{SV}-JSON: Filters.Add; "OK <id>" or the error.
add() {
        rawcall "$PS_FILTERS_PATH" "$PS_FILTERS" Add 'a{sv}' "[$1]" |
                jq -r 'if .error then "\(.error): \(.message)" else "OK \(.reply[0])" end'
}

fj_sum() {
        if [ -e "$FJ" ]; then sha256sum <"$FJ" | cut -d' ' -f1; else echo "no file"; fi
}

# ---------------------------------------------------------------------------------------------
# The lock-out guard

S='"s"'
refused() { # DESCRIPTION RULE
        like "$(add "$2")" "$WLO" "refused with WouldLockOut: $1"
}
taken() { # DESCRIPTION RULE
        like "$(add "$2")" "^OK [0-9]+\$" "taken: $1"
}
FJ0=$(fj_sum)
refused "TCP to port 22 from anyone" "{\"rule_type\": [$S, \"tcp\"], \"dst_port\": [\"q\", 22]}"
refused "TCP to 2222 (the second management port) from $A_N4" \
        "{\"rule_type\": [$S, \"tcp\"], \"dst_port\": [\"q\", 2222], \"src_ip\": [$S, \"$A_N4\"]}"
refused "all TCP from $NET, which holds $A_N4" \
        "{\"rule_type\": [$S, \"tcp\"], \"src_ip\": [$S, \"$NET\"]}"
refused "TCP to 22 from $A_N6 (an IPv6 management address)" \
        "{\"rule_type\": [$S, \"tcp\"], \"dst_port\": [\"q\", 22], \"src_ip\": [$S, \"$A_N6\"]}"
refused "every protocol from $A_N4" "{\"src_ip\": [$S, \"$A_N4\"]}"
refused "SYN to 22 (new connections)" \
        "{\"rule_type\": [$S, \"tcp\"], \"dst_port\": [\"q\", 22], \"tcp_flags\": [\"y\", 2]}"
refused "ACK to 22 (established connections)" \
        "{\"rule_type\": [$S, \"tcp\"], \"dst_port\": [\"q\", 22], \"tcp_flags\": [\"y\", 16]}"
refused "TCP to ports 1-1000" "{\"rule_type\": [$S, \"tcp\"], \"dst_port\": [$S, \"1-1000\"]}"
is "$(count)" 0 "after the refusals: Count is still 0"
is "$(fj_sum)" "$FJ0" "after the refusals: filters.json unchanged"

taken "TCP to port 23" "{\"rule_type\": [$S, \"tcp\"], \"dst_port\": [\"q\", 23]}"
taken "TCP to 22 from 198.51.100.0/24 (no management address)" \
      "{\"rule_type\": [$S, \"tcp\"], \"dst_port\": [\"q\", 22], \"src_ip\": [$S, \"198.51.100.0/24\"]}"
taken "UDP to 22" "{\"rule_type\": [$S, \"udp\"], \"dst_port\": [\"q\", 22]}"
taken "a pass rule for TCP to 22" \
      "{\"rule_type\": [$S, \"tcp\"], \"dst_port\": [\"q\", 22], \"action\": [$S, \"pass\"]}"
taken "a count rule for TCP to 22" \
      "{\"rule_type\": [$S, \"tcp\"], \"dst_port\": [\"q\", 22], \"action\": [$S, \"count\"]}"
taken "RST only, to 22 (neither a SYN nor an ACK)" \
      "{\"rule_type\": [$S, \"tcp\"], \"dst_port\": [\"q\", 22], \"tcp_flags\": [\"y\", 4]}"
out=$(add "{\"rule_type\": [$S, \"tcp\"], \"dst_port\": [\"q\", 22], \"enabled\": [\"b\", false]}")
like "$out" "^OK [0-9]+\$" "taken: a disabled drop rule for TCP to 22"
DISABLED=${out#OK }
P23=$(rules | jq -r '[.[] | select(.dst_port == "23")][0].id')
is "$(count)" 7 "Count is 7"

FJ1=$(fj_sum)
LIST1=$(rules | jq -c 'map(del(.hits, .bytes, .last_hit))')
like "$(call_error "$PS_FILTERS_PATH/$DISABLED" "$PS_FILTER" Enable '' '[]')" "$WLO" \
     "Filter.Enable of the disabled rule: WouldLockOut"
like "$(call_error "$PS_FILTERS_PATH/$P23" "$PS_FILTER" Update 'a{sv}' '[{"dst_port": ["q", 22]}]')" \
     "$WLO" "Filter.Update of the port-23 rule to port 22: WouldLockOut"
like "$(call_error "$PS_FILTERS_PATH" "$PS_FILTERS" AddBatch 'aa{sv}' \
        '[[{"rule_type": ["s", "udp"], "dst_port": ["q", 53]}, {"rule_type": ["s", "tcp"], "dst_port": ["q", 2222]}]]')" \
     "$WLO" "AddBatch with one such rule among others: WouldLockOut"
like "$(call_error "$PS_FILTERS_PATH" "$PS_FILTERS" Import ss \
        '["[{\"rule_type\": \"tcp\", \"dst_port\": 22}]", "merge"]')" "$WLO" "Import: WouldLockOut"
like "$(call_error "$PS_FILTERS_PATH" "$PS_FILTERS" Apply 'aa{sv}su' \
        '[[{"rule_type": ["s", "tcp"], "dst_port": ["q", 22]}], "replace", 30]')" "$WLO" \
     "Apply: WouldLockOut"
is "$(busctl --system tree --list "$PS_NAME" | grep -c /transaction/)" 0 \
   "  ... and no transaction was created"
is "$(rules | jq -c 'map(del(.hits, .bytes, .last_hit))')" "$LIST1" \
   "after the refused changes: List as before"
is "$(fj_sum)" "$FJ1" "after the refused changes: filters.json unchanged"

# force: for this call only, and the rule then does what it says.
timeout 200 "$PYTHON" "$PS_TESTDIR/craft.py" tcp-listen "$A_H4" 190 "$T/tcp.ready" 2222 2223 \
        >"$T/tcp.counts" &
TCP_PID=$!
defer '[ -z "$TCP_PID" ] || kill_wait "$TCP_PID"'
wait_until 10 test -e "$T/tcp.ready" || bail "the TCP listeners did not start"
is "$(craft_ns connect "$A_H4" 2222 0.7 1)" connected "before: TCP to 2222 connects"
out=$(add "{\"rule_type\": [$S, \"tcp\"], \"dst_port\": [\"q\", 2222], \"src_ip\": [$S, \"$A_N4\"], \"force\": [\"b\", true]}")
like "$out" "^OK [0-9]+\$" "the same rule with force=true: taken"
FORCED=${out#OK }
jq_ok "the stored rule has no force field" \
      '.[] | select(.id == $id) | has("force") | not' "$(rules)" --argjson id "$FORCED"
is "$(craft_ns connect "$A_H4" 2222 0.7 1)" timeout "the forced rule drops TCP from $A_N4 to 2222"
is "$(craft_ns connect "$A_H4" 2223 0.7 1)" connected "TCP to 2223 still connects"
out=$(call_error "$PS_FILTERS_PATH/$P23" "$PS_FILTER" Update 'a{sv}' \
        '[{"dst_port": ["q", 22], "force": ["b", true]}]')
is "$out" OK "Filter.Update to port 22 with force=true: taken"
like "$(call_error "$PS_FILTERS_PATH/$P23" "$PS_FILTER" Update 'a{sv}' '[{"comment": ["s", "x"]}]')" \
     "$WLO" "a later Update of that rule without force: WouldLockOut (force is not stored)"
daemon_stop main
daemon_start main || bail "the daemon did not start again: $(daemon_log main)"
is "$(count)" 8 "restarted: the forced rules are loaded from filters.json (Count 8)"
is "$(craft_ns connect "$A_H4" 2222 0.7 1)" timeout "restarted: still dropped"
kill_wait "$TCP_PID"
TCP_PID=

# ---------------------------------------------------------------------------------------------
# Reloaded past 1,000 changed rules

import() { # MODE JSON
        busctl --system --json=short call "$PS_NAME" "$PS_FILTERS_PATH" "$PS_FILTERS" Import ss \
                "$2" "$1" >/dev/null
}
udp_rules() { # N FIRST-PORT
        jq -nc --argjson n "$1" --argjson p "$2" \
                '[range($n) | {rule_type: "udp", dst_port: ($p + .), comment: "bulk"}]'
}
import replace '[]'
monitor_on
import replace "$(udp_rules 1000 10000)"
ok $? "Import of 1000 rules"
wait_until 30 signal_count_ge FilterAdded 1000
is "$(signal_count FilterAdded)" 1000 "1000 added: one FilterAdded each"
import replace '[]'
wait_until 30 signal_count_ge FilterRemoved 1000
is "$(signal_count FilterRemoved)" 1000 "1000 removed: one FilterRemoved each"
import replace "$(udp_rules 1001 20000)"
ok $? "Import of 1001 rules"
wait_until 30 signal_count_ge Reloaded 1
is "$(signal_count Reloaded)" 1 "1001 added: one Reloaded"
is "$(signal_count Reloaded '. == [1001, 0]')" 1 "  ... Reloaded(1001, 0)"
import replace "$(udp_rules 1 30000)"
wait_until 30 signal_count_ge Reloaded 2
is "$(signal_count Reloaded '. == [1, 1001]')" 1 "1 added and 1001 removed: Reloaded(1, 1001)"
import replace "$(udp_rules 600 40000)"
import replace "$(udp_rules 401 50000)"
wait_until 30 signal_count_ge Reloaded 3
is "$(signal_count Reloaded '. == [401, 600]')" 1 \
   "401 added and 600 removed (1001 in all): Reloaded(401, 600)"
sleep 0.5 # the signals of the last change have been sent: the monitor has them all
monitor_off
is "$(signal_count FilterAdded)" $((1000 + 600)) \
   "no FilterAdded beyond the 1000 and the 600 of the changes under the limit"
is "$(signal_count FilterRemoved)" $((1000 + 1)) \
   "no FilterRemoved beyond the 1000 and the 1 of the change under the limit"
is "$(jq -s '[.[] | select(.type == "signal" and .member == "InterfacesAdded" and
        (.payload.data[0] | startswith("/org/packetscope/Guarder1/filters/")))] | length' \
        "$T/mon.json")" $((1000 + 600)) "InterfacesAdded for rules only with the per-rule signals"

# ---------------------------------------------------------------------------------------------
# Dropped: UDP, TCP, IPv6, with their ports; the rate limit; drop_events_lost

PU=43001 PT=43002 PU6=43003 PR=43004 PL=43005 SPORT=44001
import replace "[
  {\"rule_type\": \"udp\", \"dst_port\": $PU, \"src_ip\": \"$A_N4\"},
  {\"rule_type\": \"tcp\", \"dst_port\": $PT},
  {\"rule_type\": \"udp\", \"dst_port\": $PU6, \"src_ip\": \"$A_N6\"},
  {\"rule_type\": \"udp\", \"dst_port\": $PR},
  {\"rule_type\": \"udp\", \"dst_port\": $PL}]"
ok $? "five drop rules" || bail "Import failed"
read -r ID_U ID_T ID_6 ID_R ID_L <<<"$(rules | jq -r 'sort_by(.dst_port) | map(.id | tostring) | join(" ")')"
monitor_on
traffic_ns "$A_NS" udp-send "$A_H4" "$PU" 3 32 "$SPORT"
want="[$ID_U,\"$A_IF\",\"udp\",\"$A_N4\",\"$A_H4\",$SPORT,$PU]"
wait_until 10 signal_count_ge Dropped 3 ". == $want"
is "$(signal_count Dropped ". == $want")" 3 "3 UDP datagrams dropped: 3 Dropped $want"
is "$(craft_ns connect "$A_H4" "$PT" 0.7 1)" timeout "a TCP connect to $PT times out"
wait_until 10 signal_count_ge Dropped 1 ".[0] == $ID_T"
is "$(signal_count Dropped ".[0] == $ID_T")" 1 "one SYN dropped: one Dropped for rule $ID_T"
jq_ok "  ... with link, protocol tcp, the addresses, an ephemeral source port and port $PT" \
      "[.[] | select(.type == \"signal\" and .member == \"Dropped\") | .payload.data
        | select(.[0] == $ID_T)][0] | .[1] == \"$A_IF\" and .[2] == \"tcp\" and
        .[3] == \"$A_N4\" and .[4] == \"$A_H4\" and .[5] >= 1024 and .[6] == $PT" \
      "$(jq -s . "$T/mon.json")"
traffic_ns "$A_NS" udp-send "$A_H6" "$PU6" 2 32 "$SPORT"
want="[$ID_6,\"$A_IF\",\"udp\",\"$A_N6\",\"$A_H6\",$SPORT,$PU6]"
wait_until 10 signal_count_ge Dropped 2 ". == $want"
is "$(signal_count Dropped ". == $want")" 2 "2 UDP datagrams over IPv6 dropped: 2 Dropped $want"

# A burst: every packet counted, at most 20 samples per second per CPU. The budget is per CPU
# and second for all rules together: the drops above may have spent part of this second's, so
# the burst starts in a second of its own (more than one second after the last drop).
CPUS=$(($(sed 's/.*-//' /sys/devices/system/cpu/possible) + 1))
sleep 1.2
b0=$(date +%s%N)
traffic_ns "$A_NS" udp-send "$A_H4" "$PR" 400 32 "$SPORT"
b1=$(date +%s%N)
wait_until 10 hits_are "$ID_R" 400
is "$(hits "$ID_R")" 400 "a burst of 400 datagrams: the rule's hits are exactly 400"
# The daemon reads the ring buffer as samples come: wait for the first 20, then give it a
# moment for any beyond them (which must not exceed the limit).
wait_until 20 signal_count_ge Dropped 20 ".[0] == $ID_R"
sleep 2
n=$(signal_count Dropped ".[0] == $ID_R")
windows=$(((b1 / 1000000000) - (b0 / 1000000000) + 1))
ok "$([ "$n" -ge 20 ] && [ "$n" -le $((20 * CPUS * windows)) ] && echo 0 || echo 1)" \
   "Dropped samples of the burst: $n, between 20 and 20 x $CPUS CPUs x $windows second(s)"
monitor_off

# With the daemon stopped (SIGSTOP) nobody empties the ring buffer: a steady stream of drops
# fills it, and the samples that find it full are counted.
LOST0=$(stat_of .drop_events_lost)
D0=$(stat_of .dropped)
kill -STOP "${DAEMON_PID[main]}"
defer "kill -CONT ${DAEMON_PID[main]}"
# 50 a second for 45 s: more samples than 64 KiB holds even at 20 a second on one CPU.
craft_ns udp-stream "$A_H4" 2250 0.02 "$PL"
kill -CONT "${DAEMON_PID[main]}"
wait_until 10 hits_are "$ID_L" 2250
is "$(hits "$ID_L")" 2250 "2250 datagrams dropped while the daemon was stopped: hits exact"
lost_grew() {
        [ "$(stat_of .drop_events_lost)" -gt "$LOST0" ]
}
wait_until 10 lost_grew
ok $? "drop_events_lost grew: $LOST0 before, $(stat_of .drop_events_lost) after"
is "$(($(stat_of .dropped) - D0))" 2250 "the dropped counter grew by exactly 2250"
check "the daemon is alive and answers" daemon_alive main

done_testing
