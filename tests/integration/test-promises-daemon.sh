#!/bin/bash
# SPDX-License-Identifier: MIT
#
# What packetscoped(8) and packetscope.conf(5) promise about the daemon's life, checked where
# nothing else does:
#   - a configuration error: exit status 1 before anything else happens, the CONFIG_ERROR
#     message id in the journal with the file, the line, what is wrong and what is accepted;
#     the guards already pinned stay attached;
#   - idle expiry on a real table: with IdleTimeoutSec=20s, ClosedTimeoutSec=8s and
#     SweepPeriodSec=2s, a closed TCP connection goes first, idle UDP and ICMP entries between
#     20 s and 20 s + SweepPeriodSec after their last packet (with slack for a loaded
#     machine), a flow that keeps receiving stays, and the entry counts follow; the timeouts
#     are long so that a slow machine cannot expire an entry before it is first looked at;
#   - a confirm-or-rollback change pending at a clean SIGTERM is rolled back before the exit
#     (org.packetscope.Guarder1(5), TRANSACTION OBJECTS).

set -u
. "$(dirname "$0")/lib-promises.sh"

require_root
require ip dbus-daemon busctl jq timeout ping unshare
[ -x "$PACKETSCOPED" ] || bail "no daemon at $PACKETSCOPED"

make_tmpdir T
bus_start "$T/bus"
journal_start
net_create A
daemon_setup main
CONF=${DAEMON_DIR[main]}/config/packetscope.conf
ROOT=${DAEMON_BPFFS[main]}
cat >"$CONF" <<-EOF
	[Guard]
	FlowTableSize=65536
	IcmpTableSize=4096
	PollIntervalSec=200ms
	IdleTimeoutSec=20s
	ClosedTimeoutSec=8s
	SweepPeriodSec=2s
	EOF

xdp_prog_id() {
        ip -d link show dev "$1" | sed -n 's/.*prog\/xdp id \([0-9]*\).*/\1/p' | head -n1
}

ms_now() {
        echo $(($(date +%s%N) / 1000000))
}

# ---------------------------------------------------------------------------------------------
# A configuration error

daemon_start main || bail "the daemon did not start: $(daemon_log main)"
out=$(attach "$A_IF" generic 2>&1) || bail "AttachLink $A_IF failed: $out"
PROG=$(xdp_prog_id "$A_IF")
daemon_stop main
is "$?" 0 "a good configuration: the daemon ran and exits 0 on SIGTERM"

# start_bad: runs the daemon on the configuration as it is now; its exit status, bounded.
start_bad() {
        timeout 30 "$PACKETSCOPED" --bpffs-root "$ROOT" --state-dir "${DAEMON_DIR[main]}/state" \
                --config-dir "${DAEMON_DIR[main]}/config" >"$T/bad.out" 2>&1
}

cp "$CONF" "$T/good.conf"
sed -i 's/^FlowTableSize=.*/FlowTableSize=512/' "$CONF"
before=$(wc -l <"$JOURNAL")
start_bad
is "$?" 1 "FlowTableSize=512 (line 2): the daemon exits with status 1"
want="Refusing to start: $CONF:2: invalid FlowTableSize='512'; accepted: an integer from 1024 to 67108864"
cond=".MESSAGE_ID == \"$MSG_CONFIG_ERROR\""
is "$(tail -n +$((before + 1)) "$JOURNAL" | jq -s "[.[] | select($cond)] | length")" 1 \
   "one journal entry with MESSAGE_ID=$MSG_CONFIG_ERROR (CONFIG_ERROR)" "$(cat "$JOURNAL")"
is "$(tail -n +$((before + 1)) "$JOURNAL" | jq -r "select($cond) | .MESSAGE")" "$want" \
   "its MESSAGE names the file, the line, the value and what is accepted"
is "$(tail -n +$((before + 1)) "$JOURNAL" | jq -s '[.[] | select(.MESSAGE_ID == "8a1f2d6c4b7e4e0f9a35c2d1e6b70a01")] | length')" 0 \
   "no STARTED message: it refused before doing anything"
ok "$(busctl --system status "$PS_NAME" >/dev/null 2>&1 && echo 1 || echo 0)" \
   "the bus name was never taken"
is "$(xdp_prog_id "$A_IF")" "$PROG" \
   "the guard pinned before stays attached (program $PROG)"
check "its pins stay" test -e "$ROOT/$A_IF/link" -a -e "$ROOT/$A_IF/flows"

# The same error without a journal: one line on standard error.
timeout 30 "$PS_REAL_DAEMON" --bpffs-root "$ROOT" \
        --state-dir "${DAEMON_DIR[main]}/state" --config-dir "${DAEMON_DIR[main]}/config" \
        --log-target stderr >"$T/bad.out" 2>&1
is "$?" 1 "--log-target=stderr: exit status 1 too"
is "$(grep -c "^$want\$" "$T/bad.out")" 1 "the same message on standard error" "$(cat "$T/bad.out")"

# In a drop-in, with the file and line of the drop-in; a setting outside its section.
cp "$T/good.conf" "$CONF"
mkdir -p "${DAEMON_DIR[main]}/config/packetscope.conf.d"
DROPIN=${DAEMON_DIR[main]}/config/packetscope.conf.d/50-local.conf
printf '# local\n[Guard]\n\nIdleTimeoutSec=0\n' >"$DROPIN"
before=$(wc -l <"$JOURNAL")
start_bad
is "$?" 1 "IdleTimeoutSec=0 in a drop-in: exit status 1"
like "$(tail -n +$((before + 1)) "$JOURNAL" | jq -r "select($cond) | .MESSAGE")" \
     "^Refusing to start: $DROPIN:4: invalid IdleTimeoutSec='0'; accepted: " \
     "CONFIG_ERROR names the drop-in and its line 4"
printf 'MaxLinks=3\n' >"$DROPIN"
before=$(wc -l <"$JOURNAL")
start_bad
is "$?" 1 "a setting before any section: exit status 1"
like "$(tail -n +$((before + 1)) "$JOURNAL" | jq -r "select($cond) | .MESSAGE")" \
     "^Refusing to start: $DROPIN:1: " "CONFIG_ERROR names the drop-in and line 1"
rm -f "$DROPIN"

# ---------------------------------------------------------------------------------------------
# Idle expiry on a real table

daemon_start main || bail "the daemon did not start again: $(daemon_log main)"
is "$(busctl --system --json=short get-property "$PS_NAME" "$PS_PATH" "$PS_MANAGER" Links |
        jq -r '.data[0]')" "$PS_PATH/link/$A_IF" "restarted with the good configuration: $A_IF adopted"

UPORT=41001 KPORT=41002
flows_json() {
        list_flows '{"limit": ["u", 1000]}'
}
has_flow() { # PROTO DPORT
        flows_json | jq -e --arg p "$1" --argjson d "$2" \
                'any(.[]; .protocol == $p and .dport == $d and .src != "")' >/dev/null
}
no_flow() {
        ! has_flow "$@"
}
has_echo() {
        list_icmp | jq -e --arg s "$A_N4" 'any(.[]; .src == $s and .type == 8)' >/dev/null
}
no_echo() {
        ! has_echo
}

# One UDP flow, one ping, then one closed TCP connection (FIN both ways). Each time is taken
# before the traffic (what "not before" is measured from: the last packet came later) and
# after it (what "within" is measured from: the last packet came earlier).
u0=$(ms_now)
got=$(udp_delivered "$A_NS" "$A_H4" "$UPORT" 3 64)
u1=$(ms_now)
is "$got" 3 "3 UDP datagrams to $UPORT arrived"
check "the UDP flow to $UPORT is in the table" has_flow udp "$UPORT"
i0=$(ms_now)
is "$(ping_received "$A_NS" "$A_H4" 1)" 1 "one echo request answered"
i1=$(ms_now)
check "the echo request is in the ICMP table" has_echo
t0=$(ms_now)
TPORT=$(tcp_exchange "$A_NS" "$A_H4" 1000) || ok 1 "a TCP exchange from the namespace"
check "the closed TCP connection to $TPORT is in the table" has_flow tcp "$TPORT"

# A flow that keeps receiving: one datagram about every 2 s, 15 in all, from one source port.
keep() {
        local _
        for _ in $(seq 15); do
                traffic_ns "$A_NS" udp-send "$A_H4" "$KPORT" 1 32 41003 || return 1
                sleep 2
        done
}
keep &
KEEP_PID=$!
defer "kill_wait $KEEP_PID"

# Slack for a loaded machine: the sweep runs from the daemon's poll timer and each check is a
# List call; 10 s on top of IdleTimeoutSec + SweepPeriodSec.
wait_until 60 no_flow tcp "$TPORT"
st=$? now=$(ms_now)
ok $st "the closed TCP connection expired ($((now - t0)) ms after the exchange began)"
ok "$([ $((now - t0)) -ge 8000 ] && echo 0 || echo 1)" "not before ClosedTimeoutSec=8s"
check "when it went, the idle UDP flow (IdleTimeoutSec=20s, $((now - u1)) ms idle) was still there" \
      has_flow udp "$UPORT"
wait_until 60 no_flow udp "$UPORT"
st=$? now=$(ms_now)
ok $st "the idle UDP flow expired ($((now - u0)) ms after the first datagram was sent)"
ok "$([ $((now - u0)) -ge 20000 ] && echo 0 || echo 1)" "not before IdleTimeoutSec=20s"
ok "$([ $((now - u1)) -le 32000 ] && echo 0 || echo 1)" \
   "within IdleTimeoutSec + SweepPeriodSec of the last one, with slack ($((now - u1)) ms)"
wait_until 60 no_echo
st=$? now=$(ms_now)
ok $st "the idle ICMP entry expired ($((now - i0)) ms after the echo request was sent)"
ok "$([ $((now - i0)) -ge 20000 ] && [ $((now - i1)) -le 32000 ] && echo 0 || echo 1)" \
   "between 20 s and 20 s + SweepPeriodSec, with slack ($((now - i1)) ms after the reply)"
check "the flow that kept receiving is still there" has_flow udp "$KPORT"
counts_are() {
        [ "$(stat_of .flows)" = 1 ] && [ "$(stat_of .icmp_entries)" = 0 ]
}
wait_until 20 counts_are
ok $? "the entry counts follow: flows 1 (the refreshed one), icmp_entries 0" "$(stats_get)"
wait "$KEEP_PID"
ok $? "15 datagrams to $KPORT sent, about 2 s apart"
is "$(flows_json | jq -r --argjson d "$KPORT" '[.[] | select(.dport == $d) | .packets] | add')" 15 \
   "its entry counted all 15: a refreshed entry was never expired"

# ---------------------------------------------------------------------------------------------
# A pending transaction at a clean SIGTERM

FJ=${DAEMON_DIR[main]}/state/filters.json
out=$(busctl --system --json=short call "$PS_NAME" "$PS_FILTERS_PATH" "$PS_FILTERS" Import ss \
        '[{"rule_type": "udp", "dst_port": 9, "comment": "confirmed"}]' replace)
ok $? "a confirmed set: one rule" "$out"
LIST0=$(pscall "$PS_FILTERS_PATH" "$PS_FILTERS" List | jq -c '[.data[0][] | map_values(.data) | del(.hits, .bytes, .last_hit)]')
FJ0=$(jq -cS .filters "$FJ")
out=$(rawcall "$PS_FILTERS_PATH" "$PS_FILTERS" Apply 'aa{sv}su' \
        '[[{"rule_type": ["s", "icmp"], "icmp_type": ["y", 8], "comment": ["s", "pending"]}], "replace", 120]')
TPATH=$(jq -r '.reply[0] // empty' <<<"$out")
like "$TPATH" "^$PS_FILTERS_PATH/transaction/[0-9]+\$" "Apply(replace, 120 s) is pending" "$out"
is "$(ping_received "$A_NS" "$A_H4" 2)" 0 "pending: the applied rule drops echo requests"
before=$(wc -l <"$JOURNAL")
daemon_stop main
is "$?" 0 "SIGTERM with the transaction pending: exit status 0"
is "$(tail -n +$((before + 1)) "$JOURNAL" | jq -s "[.[] | select(.MESSAGE_ID == \"$MSG_ROLLBACK\")] | length")" 1 \
   "the ROLLBACK message was logged on the way out" \
   "$(tail -n +$((before + 1)) "$JOURNAL" | jq -c '{MESSAGE_ID, MESSAGE}')"
is "$(ping_received "$A_NS" "$A_H4" 3)" 3 \
   "no daemon: the kernel has the previous set again (echo requests answered)"
is "$(jq -cS .filters "$FJ")" "$FJ0" "filters.json holds the confirmed set"
daemon_start main || bail "the daemon did not start again: $(daemon_log main)"
is "$(pscall "$PS_FILTERS_PATH" "$PS_FILTERS" List | jq -c '[.data[0][] | map_values(.data) | del(.hits, .bytes, .last_hit)]')" \
   "$LIST0" "restarted: the confirmed set, as before the Apply"
is "$(ping_received "$A_NS" "$A_H4" 2)" 2 "restarted: echo requests answered"

done_testing
