#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Panic mode with real traffic through a netns + veth pair, the real daemon and client:
#   - packetscopectl panic on: pings and a TCP connection to another port no longer get
#     through; a connection to the management port (a listener on this side) still works, and
#     so does one this side opens to the management port of a listener in the namespace (its
#     replies come from that port); every drop counts in dropped_panic, on the manager and the
#     link; the Panic property says true and changed with PropertiesChanged; the journal has a
#     PANIC=1 record with the caller; status and panic status say so;
#   - a daemon restart keeps it on (while the daemon is down too: the flag is pinned), and so
#     does a "reboot" (the pins gone, only the state directory left); panic.json wins over the
#     pinned flag at start; a corrupt one is set aside and the pinned flag kept;
#   - a state directory that cannot be written refuses the change with StateNotWritable and
#     the kernel keeps what it had;
#   - packetscopectl panic off: the traffic passes again, PANIC=0 is logged.

set -u
. "$(dirname "$0")/lib-promises.sh"

require_root
require ip dbus-daemon busctl jq timeout ping mount
[ -x "$PACKETSCOPED" ] || bail "no daemon at $PACKETSCOPED"
[ -x "$PACKETSCOPECTL" ] || bail "no client at $PACKETSCOPECTL"

make_tmpdir T
bus_start "$T/bus"
journal_start
net_create A
# A management port of this test's own, on this test's own addresses.
MGMT_PORT=$((30000 + $$ % 20000))
daemon_setup main
printf '[Filters]\nManagementPorts=%s\n' "$MGMT_PORT" >>"${DAEMON_DIR[main]}/config/packetscope.conf"
STATE=${DAEMON_DIR[main]}/state
# A tmpfs of its own, so that it can be made read-only later (before the daemon starts: it
# runs in a mount namespace of its own).
mount -t tmpfs -o size=4m tmpfs "$STATE" && defer "umount -l '$STATE'"
daemon_start main || bail "the daemon did not start: $(daemon_log main)"
attach "$A_IF" || bail "cannot attach to $A_IF"
MSG_PANIC=$(sed -n 's/^#define PS_MESSAGE_PANIC *"\([0-9a-f]*\)".*/\1/p' "$SRCDIR/src/shared/log.h")
MSG_CORRUPT=$(sed -n 's/^#define PS_MESSAGE_STATE_CORRUPT *"\([0-9a-f]*\)".*/\1/p' \
        "$SRCDIR/src/shared/log.h")

ctl() {
        timeout 30 "$PACKETSCOPECTL" --no-ask-password "$@" 2>&1
}
panic_prop() {
        busctl --system get-property "$PS_NAME" "$PS_PATH" "$PS_MANAGER" Panic 2>&1
}
# tcp_to ADDR PORT [SERVER-NS]: one connection from the other side to a listener on
# ADDR:PORT (PORT 0: any), 1000 bytes; true when the listener got them all.
tcp_to() {
        local addr=$1 port=$2 ns=${3:-} pf spid ok=1
        pf=$(mktemp -u "$T/port.XXXXXX")
        if [ -n "$ns" ]; then
                in_ns "$ns" "$PYTHON" "$PS_TESTDIR/traffic.py" tcp-server "$addr" "$pf" "$port" \
                        >"$pf.got" 2>/dev/null &
        else
                traffic tcp-server "$addr" "$pf" "$port" >"$pf.got" 2>/dev/null &
        fi
        spid=$!
        wait_until 10 test -s "$pf" || { kill_wait "$spid"; return 1; }
        if [ -n "$ns" ]; then
                timeout 4 "$PYTHON" "$PS_TESTDIR/traffic.py" tcp-client "$addr" "$(cat "$pf")" \
                        1000 >/dev/null 2>&1 && ok=0
        else
                timeout 4 ip netns exec "$A_NS" "$PYTHON" "$PS_TESTDIR/traffic.py" tcp-client \
                        "$addr" "$(cat "$pf")" 1000 >/dev/null 2>&1 && ok=0
        fi
        kill_wait "$spid"
        [ $ok -eq 0 ] && [ "$(cat "$pf.got")" = 1000 ]
}
dropped_panic() {
        stat_of .dropped_panic
}
# A poll interval is 200 ms: the counters the bus shows are that old at most. At least: the
# namespace's own MLD reports (hop limit 1, not on-link discovery) may be dropped with them.
settled() {
        [ "$(dropped_panic)" -ge "$1" ]
}

# ---------------------------------------------------------------------------------------------
is "$(panic_prop)" "b false" "Panic is false at first"
is "$(ctl panic status)" "off" "packetscopectl panic status: off"
is "$(ping_received "$A_NS" "$A_H4" 3)" 3 "before panic mode: 3 of 3 pings answered"

monitor_on
out=$(ctl panic on)
ok $? "packetscopectl panic on" "$out"
is "$(panic_prop)" "b true" "Panic is true"
wait_until 5 signal_count_ge PropertiesChanged 1 \
        '.[0] == "org.packetscope.Guarder1.Manager" and .[1].Panic.data == true'
ok $? "PropertiesChanged announces Panic true" "$(tail -n 3 "$T/mon.json")"
monitor_off
is "$(jq -c . "$STATE/panic.json")" '{"panic":true,"version":1}' "panic.json records it"
is "$(ctl panic status)" "on" "packetscopectl panic status: on"
is "$(pscall "$PS_PATH" "$PS_MANAGER" Describe | jq -r '.data[0]' | jq .panic)" true \
        "Describe says \"panic\": true"
is "$(ctl --json=short panic status)" '{"panic":true}' "panic status --json"
like "$(ctl status)" "Panic mode: *on" "packetscopectl status shows panic mode"
cond=".MESSAGE_ID == \"$MSG_PANIC\" and .PANIC == \"1\" and .CALLER_UID == \"0\" and
      (.CALLER_PID | test(\"^[1-9][0-9]*$\")) and (.MESSAGE | test(\"asked by uid 0 \"))"
wait_until 10 journal_has "$cond"
ok $? "the journal records panic mode on with PANIC=1 and the caller" "$(journal_show \
        ".MESSAGE_ID == \"$MSG_PANIC\"")"
out=$(ctl panic on)
ok $? "panic on again is no error" "$out"
is "$(journal_count ".MESSAGE_ID == \"$MSG_PANIC\" and .PANIC == \"1\"")" 1 \
        "and logs nothing more: nothing changed"

base=$(dropped_panic)
is "$(ping_received "$A_NS" "$A_H4" 3)" 0 "in panic mode: no ping answered"
wait_until 5 settled $((base + 3))
ok $? "the 3 echo requests count in dropped_panic" "$(stats_get)"
base=$(dropped_panic)
! tcp_to "$A_H4" 0
ok $? "a TCP connection to another port does not get through"
wait_until 5 bash -c "[ \"\$(DBUS_SYSTEM_BUS_ADDRESS='$DBUS_SYSTEM_BUS_ADDRESS' \
        busctl --system --json=short call $PS_NAME $PS_PATH $PS_MANAGER GetStatistics |
        jq '.data[0].dropped_panic.data')\" -gt $base ]"
ok $? "its SYNs count in dropped_panic" "$(stats_get)"
tcp_to "$A_H4" "$MGMT_PORT"
ok $? "a TCP connection to the management port $MGMT_PORT works"
tcp_to "$A_N4" "$MGMT_PORT" "$A_NS"
ok $? "a connection this side opens to port $MGMT_PORT in the namespace works (its replies pass)"
tcp_to "$A_H6" "$MGMT_PORT"
ok $? "the same over IPv6"
s=$(stats_get)
jq -e '.dropped == .dropped_panic + .dropped_filter + .dropped_tiny_fragments +
       .dropped_long_chains + .dropped_deep_vlan' <<<"$s" >/dev/null
ok $? "dropped is the sum of its reasons, dropped_panic among them" "$s"
LINK_PATH=$(busctl --system --json=short get-property "$PS_NAME" "$PS_PATH" "$PS_MANAGER" Links |
        jq -r '.data[0]')
link=$(stats_get "$LINK_PATH" org.packetscope.Guarder1.Link)
[ "$(jq .dropped_panic <<<"$s")" -gt 5 ] &&
        [ "$(jq .dropped_panic <<<"$link")" = "$(jq .dropped_panic <<<"$s")" ]
ok $? "Link.GetStatistics has the same dropped_panic (one link)" "$link" "$s"

# ---------------------------------------------------------------------------------------------
# Restart, daemon down, reboot.
daemon_stop main
is "$(ping_received "$A_NS" "$A_H4" 2)" 0 "with the daemon stopped, panic mode holds (pinned)"
daemon_start main || bail "the daemon did not restart: $(daemon_log main)"
is "$(panic_prop)" "b true" "after a restart Panic is still true"
is "$(ping_received "$A_NS" "$A_H4" 2)" 0 "and pings still go unanswered"
tcp_to "$A_H4" "$MGMT_PORT"
ok $? "and the management port still works"

daemon_stop main
rm -rf "${DAEMON_BPFFS[main]}"
is "$(ping_received "$A_NS" "$A_H4" 2)" 2 "the pins removed (as by a reboot): nothing guards"
daemon_start main || bail "the daemon did not start after the pins went: $(daemon_log main)"
wait_until 10 bash -c "[ -e '${DAEMON_BPFFS[main]}/$A_IF/link' ]"
ok $? "the daemon guards $A_IF again from links.json" "$(daemon_log main 10)"
is "$(panic_prop)" "b true" "and panic mode is on again from panic.json"
is "$(ping_received "$A_NS" "$A_H4" 2)" 0 "pings go unanswered again"

# The panic maps' pins removed under a guarded link: the restarted daemon makes new ones, and
# the adopted program, which still holds the old ones, is replaced by one that obeys them.
# (The old maps still say on; the file says off, so only the new maps let pings through.)
daemon_stop main
rm -rf "${DAEMON_BPFFS[main]}/:panic"
printf '{"panic": false, "version": 1}\n' >"$STATE/panic.json"
daemon_start main || bail "the daemon did not restart: $(daemon_log main)"
is "$(panic_prop)" "b false" "the panic maps made anew, off as panic.json says"
is "$(ping_received "$A_NS" "$A_H4" 2)" 2 "and the adopted program of $A_IF obeys the new maps"
out=$(ctl panic on)
ok $? "panic on again" "$out"
is "$(ping_received "$A_NS" "$A_H4" 2)" 0 "pings go unanswered again"

# A corrupt panic.json is set aside; the pinned flag stays and is recorded again.
daemon_stop main
printf '{"panic": maybe\n' >"$STATE/panic.json"
daemon_start main || bail "the daemon did not restart: $(daemon_log main)"
is "$(panic_prop)" "b true" "a corrupt panic.json: the pinned flag (on) stays"
[ -e "$STATE/panic.json.corrupt" ] && [ "$(jq .panic "$STATE/panic.json")" = true ]
ok $? "the corrupt file is kept as panic.json.corrupt and the flag recorded again" \
        "$(ls "$STATE")"
wait_until 10 journal_has ".MESSAGE_ID == \"$MSG_CORRUPT\" and (.MESSAGE | test(\"panic.json\"))"
ok $? "and the journal says so (STATE_CORRUPT)" "$(journal_show ".MESSAGE_ID == \"$MSG_CORRUPT\"")"

# The state file wins over the pinned flag.
daemon_stop main
printf '{"panic": false, "version": 1}\n' >"$STATE/panic.json"
daemon_start main || bail "the daemon did not restart: $(daemon_log main)"
is "$(panic_prop)" "b false" "panic.json saying false wins over the pinned flag at start"
is "$(ping_received "$A_NS" "$A_H4" 2)" 2 "and pings are answered"
out=$(ctl panic on)
ok $? "panic on again" "$out"

# ---------------------------------------------------------------------------------------------
# A change that cannot be stored is not made.
mount -o remount,ro "$STATE"
like "$(call_error "$PS_PATH" "$PS_MANAGER" SetPanic b '[false]')" "^$PS_ERR\.StateNotWritable: " \
        "SetPanic(false) with a read-only state directory: StateNotWritable"
is "$(panic_prop)" "b true" "Panic stays true"
is "$(ping_received "$A_NS" "$A_H4" 2)" 0 "and the kernel still drops"
mount -o remount,rw "$STATE"

out=$(ctl panic off)
ok $? "packetscopectl panic off" "$out"
is "$(panic_prop)" "b false" "Panic is false"
is "$(jq -c . "$STATE/panic.json")" '{"panic":false,"version":1}' "panic.json records it"
is "$(ping_received "$A_NS" "$A_H4" 3)" 3 "pings are answered again"
tcp_to "$A_H4" 0
ok $? "a TCP connection to another port works again"
wait_until 10 journal_has ".MESSAGE_ID == \"$MSG_PANIC\" and .PANIC == \"0\" and .CALLER_UID == \"0\""
ok $? "the journal records panic mode off with PANIC=0 and the caller" \
        "$(journal_show ".MESSAGE_ID == \"$MSG_PANIC\"")"
out=$(ctl panic sideways)
[ $? -ne 0 ] && grep -q "accepted: panic on, panic off, panic status" <<<"$out"
ok $? "an unknown word is refused and the accepted ones named" "$out"

done_testing
