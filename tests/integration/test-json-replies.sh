#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Every reply of every read method, and every object's properties, renders with
# `busctl --json=short` (as JSON) and with `gdbus call`, with every kind of object present:
# a guarded link with connection and ICMP entries, a rule, a pending transaction. A reply with
# a dictionary whose keys are not strings (a{yt}) makes busctl print nothing and exit 1.

set -u
. "$(dirname "$0")/lib.sh"

require_root
require ip dbus-daemon busctl gdbus jq timeout ping
[ -x "$PACKETSCOPED" ] || bail "no daemon at $PACKETSCOPED"

make_tmpdir T
bus_start "$T/bus"
daemon_start main || bail "the daemon did not start: $(daemon_log main)"
net_create A
attach "$A_IF" || bail "cannot attach to $A_IF"

FILTERS_PATH=$PS_PATH/filters
FILTERS=org.packetscope.Guarder1.Filters
LINK_PATH=$(busctl --system --json=short get-property "$PS_NAME" "$PS_PATH" "$PS_MANAGER" Links |
            jq -r '.data[0]')

# Entries of every kind: ICMP echo (and its row), a TCP connection.
must "pings from the namespace" test "$(ping_received "$A_NS" "$A_H4" 3)" = 3
must "a TCP exchange" tcp_exchange "$A_NS" "$A_H4" 1000
flows_at_least() {
        [ "$(list_flows | jq length)" -ge "$1" ] && [ "$(list_icmp | jq length)" -ge 1 ]
}
wait_until 20 flows_at_least 1
ok $? "the link has connection and ICMP entries to list" "$(list_flows)" "$(list_icmp)"

out=$(pscall "$FILTERS_PATH" "$FILTERS" Add 'a{sv}' 3 rule_type s tcp dst_port s 23 \
        comment s "telnet" 2>&1)
ok $? "a rule to list (Filters.Add)" "$out"
RULE_PATH=$(jq -r '.data[1]' <<<"$out")
out=$(rawcall "$FILTERS_PATH" "$FILTERS" Apply 'aa{sv}su' \
        '[[{"rule_type": ["s", "icmp"], "icmp_type": ["y", 8]}], "merge", 600]' 2>&1)
ok $? "a pending transaction (Filters.Apply, 600 s)" "$out"
TX_PATH=$(jq -r '.reply[0]' <<<"$out")
# Rolled back at exit with the daemon; nothing else depends on it.

# reply_renders DESCRIPTION OBJECT INTERFACE METHOD [SIGNATURE ARGS...]: busctl --json=short
# succeeds and prints one JSON value; gdbus call succeeds too.
reply_renders() {
        local desc=$1 path=$2 iface=$3 method=$4 out status gout gstatus
        shift 4
        out=$(timeout 30 busctl --system --json=short call "$PS_NAME" "$path" "$iface" "$method" \
                "$@" 2>&1)
        status=$?
        [ $status -eq 0 ] && jq -e 'has("type") and has("data")' <<<"$out" >/dev/null 2>&1
        ok $? "busctl --json=short: $desc" "exit $status" "$(head -c 2000 <<<"$out")"
        gout=$(timeout 30 gdbus call --system --dest "$PS_NAME" --object-path "$path" \
                --method "$iface.$method" "${GDBUS_ARGS[@]}" 2>&1)
        gstatus=$?
        [ $gstatus -eq 0 ] && [ "${gout:0:1}" = "(" ]
        ok $? "gdbus call: $desc" "exit $gstatus" "$(head -c 2000 <<<"$gout")"
}

GDBUS_ARGS=()
reply_renders "Manager.GetStatistics" "$PS_PATH" "$PS_MANAGER" GetStatistics
reply_renders "Manager.Describe" "$PS_PATH" "$PS_MANAGER" Describe
reply_renders "Link.GetStatistics" "$LINK_PATH" "$PS_LINK" GetStatistics
GDBUS_ARGS=("{'limit': <uint32 100>}")
reply_renders "Connections.List" "$PS_CONNS_PATH" "$PS_CONNS" List 'a{sv}' 1 limit u 100
reply_renders "Connections.ListIcmp" "$PS_CONNS_PATH" "$PS_CONNS" ListIcmp 'a{sv}' 1 limit u 100
GDBUS_ARGS=()
reply_renders "Filters.List" "$FILTERS_PATH" "$FILTERS" List
reply_renders "Filters.Export" "$FILTERS_PATH" "$FILTERS" Export
GDBUS_ARGS=(0 10)
reply_renders "Filters.ListRange" "$FILTERS_PATH" "$FILTERS" ListRange uu 0 10
GDBUS_ARGS=("{'rule_type': <'icmp'>}")
reply_renders "Filters.Test" "$FILTERS_PATH" "$FILTERS" Test 'a{sv}' 1 rule_type s icmp
GDBUS_ARGS=()
reply_renders "ObjectManager.GetManagedObjects" "$PS_PATH" org.freedesktop.DBus.ObjectManager \
        GetManagedObjects

# Every property of every interface of every object, with GetAll.
objects=$(busctl --system --json=short call "$PS_NAME" "$PS_PATH" \
        org.freedesktop.DBus.ObjectManager GetManagedObjects |
        jq -r '.data[0] | to_entries[] | .key as $p | .value | keys[] | "\($p) \(.)"')
for path in "$LINK_PATH" "$RULE_PATH" "$TX_PATH"; do
        grep -q "^$path " <<<"$objects"
        ok $? "GetManagedObjects lists $path" "$objects"
done
while read -r path iface; do
        case $iface in org.freedesktop.DBus.*) continue ;; esac
        GDBUS_ARGS=("$iface")
        reply_renders "Properties.GetAll($iface) of $path" "$path" \
                org.freedesktop.DBus.Properties GetAll s "$iface"
done <<<"$objects"

# The per-type counters themselves, as JSON: the three echo requests under the key "8".
out=$(busctl --system --json=short call "$PS_NAME" "$PS_PATH" "$PS_MANAGER" GetStatistics |
      jq -r '.data[0].icmp_types.data["8"]')
is "$out" 3 "busctl --json: icmp_types[\"8\"] is the three echo requests"

done_testing
