#!/bin/bash
# SPDX-License-Identifier: MIT
#
# What `systemctl status packetscope` shows: the daemon's STATUS= stays current. Links,
# rules and drops per second, sent at once when a link or a rule comes or goes, and as the
# drop rate changes, at a low rate. NOTIFY_SOCKET is a socket of the test
# (journal-sink.py reads the same KEY=VALUE datagrams sd_notify sends).

set -u
. "$(dirname "$0")/lib.sh"

require_root
require ip dbus-daemon busctl jq timeout ping
[ -x "$PACKETSCOPED" ] || bail "no daemon at $PACKETSCOPED"

make_tmpdir T
bus_start "$T/bus"
net_create A
NOTES=$T/notify.jsonl
: >"$NOTES"
"$PYTHON" "$PS_TESTDIR/journal-sink.py" "$T/notify" "$NOTES" 300 2>"$T/notify.err" &
SINK=$!
defer "kill_wait $SINK"
wait_until 10 test -S "$T/notify" || bail "the notify socket did not appear"
export NOTIFY_SOCKET=$T/notify
daemon_start main || bail "the daemon did not start: $(daemon_log main)"
unset NOTIFY_SOCKET

FILTERS_PATH=$PS_PATH/filters
FILTERS=org.packetscope.Guarder1.Filters

last_status() {
        jq -r 'select(.STATUS) | .STATUS' "$NOTES" | tail -n 1
}
status_is() {
        [ "$(last_status)" = "$1" ]
}
status_like() {
        grep -Eq -- "$1" <<<"$(last_status)"
}

ready() {
        [ "$(jq -r 'select(.READY) | .READY' "$NOTES")" = 1 ]
}
wait_until 10 ready
ok $? "READY=1" "$(cat "$NOTES")"
wait_until 10 status_is "Guarding 0 links, 0 rules, 0 drops/s"
ok $? "STATUS=Guarding 0 links, 0 rules, 0 drops/s" "$(last_status)"

attach "$A_IF" || bail "cannot attach to $A_IF"
# Sent with the change, not at the next poll: well within the poll interval (200 ms) on an
# idle machine, within 5 s on any.
wait_until 5 status_is "Guarding 1 link ($A_IF), 0 rules, 0 drops/s"
ok $? "after AttachLink: Guarding 1 link ($A_IF), 0 rules, 0 drops/s" "$(last_status)"

out=$(pscall "$FILTERS_PATH" "$FILTERS" Add 'a{sv}' 2 rule_type s icmp icmp_type y 8 2>&1)
ok $? "a rule dropping echo requests" "$out"
wait_until 5 status_is "Guarding 1 link ($A_IF), 1 rule, 0 drops/s"
ok $? "after Filters.Add: 1 rule (singular)" "$(last_status)"

# 150 echo requests over 3 s, every one dropped: the rate shows, then goes back to 0.
in_ns "$A_NS" ping -n -q -c 150 -i 0.02 -W 1 "$A_H4" >/dev/null 2>&1 &
PING=$!
defer "kill_wait $PING"
wait_until 10 status_like "^Guarding 1 link \($A_IF\), 1 rule, [1-9][0-9]* drops/s\$"
ok $? "while the pings are dropped: a drop rate above 0" "$(jq -r '.STATUS // empty' "$NOTES")"
wait "$PING"
wait_until 20 status_is "Guarding 1 link ($A_IF), 1 rule, 0 drops/s"
ok $? "after them: 0 drops/s again" "$(jq -r '.STATUS // empty' "$NOTES")"
# A low rate: drops starting and stopping are sent at once, a nonzero rate that changes at most
# every 5 s, so the whole dropping spell (about 3 s of it) brings no more than a handful.
n=$(jq -r 'select(.STATUS) | .STATUS' "$NOTES" | grep -c ' [1-9][0-9]* drops/s$')
[ "$n" -ge 1 ] && [ "$n" -le 3 ]
ok $? "the drop rate alone was sent $n times (1 to 3)" "$(jq -r '.STATUS // empty' "$NOTES")"

out=$(pscall "$FILTERS_PATH" "$FILTERS" Add 'a{sv}' 2 rule_type s icmp icmp_type y 13 2>&1)
wait_until 5 status_is "Guarding 1 link ($A_IF), 2 rules, 0 drops/s"
ok $? "a second rule: 2 rules" "$(last_status)" "$out"
out=$(pscall "$PS_PATH" "$PS_MANAGER" DetachLink s "$A_IF" 2>&1)
wait_until 5 status_is "Guarding 0 links, 2 rules, 0 drops/s"
ok $? "after DetachLink: Guarding 0 links" "$(last_status)" "$out"

daemon_stop main
wait_until 5 grep -q '"STOPPING": "1"' "$NOTES"
ok $? "STOPPING=1 at exit" "$(tail -n 3 "$NOTES")"

done_testing
