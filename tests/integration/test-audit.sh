#!/bin/bash
# SPDX-License-Identifier: MIT
#
# The journal as an audit trail: every change carries who asked for it (CALLER_UID=,
# CALLER_PID= of the sender polkit checked) and what a rule matches (its summary, not only
# its id), with plurals right; a sampled ICMP drop names its type and code, not ports; a
# reload names its caller too.
# The entries are caught by journal-sink.py in journald's place.

set -u
. "$(dirname "$0")/lib-promises.sh"

require_root
require ip dbus-daemon busctl jq timeout ping
[ -x "$PACKETSCOPED" ] || bail "no daemon at $PACKETSCOPED"

make_tmpdir T
bus_start "$T/bus"
journal_start
daemon_start main || bail "the daemon did not start: $(daemon_log main)"
net_create A

MSG_FILTERS_CHANGED=$(sed -n 's/^#define PS_MESSAGE_FILTERS_CHANGED *"\([0-9a-f]*\)".*/\1/p' \
        "$SRCDIR/src/shared/log.h")
MSG_DETACHED=$(sed -n 's/^#define PS_MESSAGE_DETACHED *"\([0-9a-f]*\)".*/\1/p' "$SRCDIR/src/shared/log.h")
MSG_DROPPED=$(sed -n 's/^#define PS_MESSAGE_PACKET_DROPPED *"\([0-9a-f]*\)".*/\1/p' \
        "$SRCDIR/src/shared/log.h")

# audited JQ-CONDITION DESCRIPTION: one entry matches, and it names root as the caller with a
# PID.
audited() {
        local cond="$1 and .CALLER_UID == \"0\" and (.CALLER_PID | test(\"^[1-9][0-9]*$\"))"
        wait_until 10 journal_has "$cond"
        ok $? "$2" "$(journal_show "$1")" "$(jq -c "select($1)" "$JOURNAL" | tail -n 2)"
}

attach "$A_IF" || bail "cannot attach to $A_IF"
audited ".MESSAGE_ID == \"$MSG_ATTACHED\" and .INTERFACE == \"$A_IF\" and
         (.MESSAGE | test(\"asked by uid 0 \\\\(pid [0-9]+\\\\)$\"))" \
        "AttachLink: ATTACHED names uid 0 and its PID"

out=$(pscall "$PS_FILTERS_PATH" "$PS_FILTERS" Add 'a{sv}' 3 rule_type s tcp dst_port s 23 \
        comment s telnet 2>&1)
ok $? "Filters.Add of a telnet rule" "$out"
audited ".MESSAGE_ID == \"$MSG_FILTERS_CHANGED\" and .FILTER_ID == \"0\" and
         .MESSAGE == \"Filter 0 added (drop) by uid 0 (pid \\(.CALLER_PID)): drop tcp * -> *:23 \\\"telnet\\\"\"" \
        "Filters.Add: the rule's summary, FILTER_ID=0, CALLER_UID=0, CALLER_PID="

out=$(rawcall "$PS_FILTERS_PATH" "$PS_FILTERS" Import ss \
        '["[{\"rule_type\": \"udp\", \"dst_port\": 9, \"action\": \"pass\"}]", "merge"]' 2>&1)
ok $? "Filters.Import of one rule" "$out"
audited ".MESSAGE_ID == \"$MSG_FILTERS_CHANGED\" and (.MESSAGE | startswith(\"Imported 1 filter (\"))" \
        "Import: 'Imported 1 filter' (singular), with the caller"

out=$(pscall "$PS_FILTERS_PATH/0" "$PS_FILTER" Delete 2>&1)
ok $? "Filter.Delete of rule 0" "$out"
audited ".MESSAGE_ID == \"$MSG_FILTERS_CHANGED\" and .FILTER_ID == \"0\" and
         (.MESSAGE | test(\"^Filter 0 deleted by uid 0 .*: drop tcp \\\\* -> \\\\*:23\"))" \
        "Filter.Delete: what the deleted rule matched, with the caller"

MSG_RELOADED=$(sed -n 's/^#define PS_MESSAGE_RELOADED *"\([0-9a-f]*\)".*/\1/p' "$SRCDIR/src/shared/log.h")
out=$(pscall "$PS_PATH" "$PS_MANAGER" Reload 2>&1)
ok $? "Manager.Reload" "$out"
audited ".MESSAGE_ID == \"$MSG_RELOADED\" and
         (.MESSAGE | test(\"; asked by uid 0 \\\\(pid [0-9]+\\\\)$\"))" \
        "Reload: RELOADED names uid 0 and its PID"

# A sampled ICMP drop: type and code, no ports.
out=$(pscall "$PS_FILTERS_PATH" "$PS_FILTERS" Add 'a{sv}' 2 rule_type s icmp icmp_type y 8 2>&1)
ok $? "a rule dropping echo requests" "$out"
must "pings from the namespace (dropped)" test "$(ping_received "$A_NS" "$A_H4" 3)" = 0
drop=".MESSAGE_ID == \"$MSG_DROPPED\" and .PROTOCOL == \"icmp\""
wait_until 10 journal_has "$drop"
ok $? "the drop is sampled to the journal" "$(journal_show "$drop")"
jq -e -s "[.[] | select($drop)][0] | .ICMP_TYPE == \"8\" and .ICMP_CODE == \"0\" and
          (has(\"SPORT\") | not) and (has(\"DPORT\") | not) and
          (.MESSAGE | test(\"^Dropped icmp $A_N4 -> $A_H4 type 8 .*code 0 on $A_IF by filter 2\"))" \
        "$JOURNAL" >/dev/null
ok $? "an ICMP drop shows ICMP_TYPE=8, ICMP_CODE=0 and no ports" "$(jq -c "select($drop)" "$JOURNAL" | head -n 1)"

out=$(pscall "$PS_PATH" "$PS_MANAGER" DetachLink s "$A_IF" 2>&1)
audited ".MESSAGE_ID == \"$MSG_DETACHED\" and .INTERFACE == \"$A_IF\"" \
        "DetachLink: DETACHED with the caller"

done_testing
