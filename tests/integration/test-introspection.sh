#!/bin/bash
# SPDX-License-Identifier: MIT
#
# The shipped dbus/org.packetscope.Guarder1.xml is the contract: compare it with the live
# introspection of every object of a running daemon (manager, a link, the connections, the
# filters, a filter, a pending transaction, the bans and a ban), interfaces, methods and their
# arguments, properties with type, access and change signalling, and signals. Any mismatch
# fails.

set -u
. "$(dirname "$0")/lib.sh"

require_root
require ip dbus-daemon busctl jq timeout
[ -x "$PACKETSCOPED" ] || bail "no daemon at $PACKETSCOPED"

make_tmpdir T
bus_start "$T/bus"
daemon_start main || bail "the daemon did not start: $(daemon_log main)"
net_create A

# Objects that exist only when there is something: a link, a filter rule, a transaction.
out=$(attach "$A_IF" generic 2>&1)
ok $? "AttachLink $A_IF (a Link object)" "$out"
out=$(rawcall "$PS_PATH/filters" org.packetscope.Guarder1.Filters Import ss \
        '["[{\"rule_type\": \"tcp\", \"dst_port\": 23, \"comment\": \"introspection test\"}]", "merge"]')
ok $? "Filters.Import of one rule (a Filter object)" "$out"
rule_id=$(jq -r '.reply[0][0] // empty' <<<"$out")
out=$(rawcall "$PS_PATH/filters" org.packetscope.Guarder1.Filters Apply 'aa{sv}su' \
        '[[{"rule_type": ["s", "tcp"], "dst_port": ["q", 24]}], "merge", 120]')
ok $? "Filters.Apply with a confirmation window (a Transaction object)" "$out"
transaction=$(jq -r '.reply[0] // empty' <<<"$out")
if [ -n "$transaction" ]; then
        defer "DBUS_SYSTEM_BUS_ADDRESS='$DBUS_SYSTEM_BUS_ADDRESS' busctl --system call $PS_NAME \
                '$transaction' org.packetscope.Guarder1.Transaction Rollback"
fi

# An AI job (an AIJob object): against a closed port on loopback, so it fails at once and
# stays listed; no request leaves the machine.
out=$(rawcall "$PS_PATH/ai" org.packetscope.Guarder1.AI SetConfig 'a{sv}' \
        '[{"endpoint": ["s", "http://127.0.0.1:9/v1/chat/completions"]}]')
ok $? "AI.SetConfig to a closed loopback port" "$out"
out=$(rawcall "$PS_PATH/ai" org.packetscope.Guarder1.AI Analyze 'a{sv}' '[{}]')
ok $? "AI.Analyze (an AIJob object)" "$out"
ai_job=$(jq -r '.reply[0] // empty' <<<"$out")
out=$(rawcall "$PS_PATH/bans" org.packetscope.Guarder1.Bans Ban sts '["192.0.2.99", 0, "introspection test"]')
ok $? "Bans.Ban of one address (a Ban object)" "$out"
ban=$(jq -r '.reply[0] // empty' <<<"$out")

XML=$SRCDIR/dbus/org.packetscope.Guarder1.xml
check "the shipped XML is well-formed" "$PYTHON" -c "import sys, xml.etree.ElementTree as E; E.parse(sys.argv[1])" "$XML"

# The objects this test made, which the walk must reach (the manager, the connections and the
# filters exist always; a rule is named by the id Import returned).
expected=("$PS_PATH/link/$A_IF" "$PS_CONNS_PATH" "$PS_PATH/filters" "$PS_PATH/filters/${rule_id:-none}"
          "$PS_PATH/health" \
          "$PS_PATH/bans" "${ban:-$PS_PATH/bans/none}")
[ -n "$transaction" ] && expected+=("$transaction")
expected+=("$PS_PATH/ai" "${ai_job:-$PS_PATH/ai/jobs/none}")
results=$(timeout 120 "$PYTHON" "$PS_TESTDIR/introspect-compare.py" "$XML" "$PS_NAME" "$PS_PATH" \
        "${expected[@]}" 2>&1)
# Its own failure (not a check of the daemon: the checks are the lines it prints).
[ $? -eq 0 ] || ok 1 "the comparison ran" "$results"
while IFS= read -r line; do
        jq -e . >/dev/null 2>&1 <<<"$line" || continue
        ok "$(jq -r 'if .ok then 0 else 1 end' <<<"$line")" "$(jq -r .name <<<"$line")" \
           "$(jq -r .diag <<<"$line")"
done <<<"$results"

# The standard interfaces a GDBus client relies on.
root_ifaces=$(busctl --system introspect --xml-interface "$PS_NAME" "$PS_PATH")
like "$root_ifaces" 'interface name="org.freedesktop.DBus.ObjectManager"' \
     "$PS_PATH implements org.freedesktop.DBus.ObjectManager"
managed=$(busctl --system --json=short call "$PS_NAME" "$PS_PATH" org.freedesktop.DBus.ObjectManager \
          GetManagedObjects | jq -r '.data[0] | keys[]')
like "$managed" "^$PS_PATH/link/$A_IF\$" "GetManagedObjects lists the link object"

if [ -n "$transaction" ]; then
        check "Rollback of the transaction" busctl --system call "$PS_NAME" "$transaction" \
                org.packetscope.Guarder1.Transaction Rollback
fi
daemon_stop main
is "$?" 0 "the daemon exits 0 on SIGTERM"

done_testing
