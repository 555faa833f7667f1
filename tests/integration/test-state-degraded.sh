#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Never fewer rules shown than enforced, with the real daemon on a private bus, a guarded veth
# and real traffic. Between runs of the daemon (the pins stay) the rule files are damaged:
#   - filters.json corrupt: it is set aside and the previous generation, filters.json.prev,
#     is loaded; the list and the kernel then hold that set, and the journal says what was set
#     aside and what was recovered;
#   - filters.json and filters.json.prev both corrupt: the kernel keeps enforcing its set and the
#     daemon says it is degraded (Filters.Degraded, Describe, packetscopectl status, the
#     journal); Describe lists the kernel's rules as opaque entries with their hits; drop
#     samples name an unlisted rule, never "filter 4294967295"; Add is refused, and an Import
#     (replace) of an empty set clears the kernel's rules and ends it.

set -u
# shellcheck source=tests/integration/lib-system.sh
. "$(dirname "$0")/lib-system.sh"
# shellcheck source=tests/integration/lib-filters.sh
. "$(dirname "$0")/lib-filters.sh"

require_root
require ip dbus-daemon busctl jq timeout
[ -x "$PACKETSCOPED" ] || bail "no daemon at $PACKETSCOPED (set PACKETSCOPED or BUILDDIR)"

FILTERS_PATH=$PS_PATH/filters
FILTERS=org.packetscope.Guarder1.Filters
P1=40131
P2=40132

make_tmpdir T
bus_start "$T/bus"
daemon_start main || bail "the daemon did not start: $(daemon_log main)"
STATE=${DAEMON_DIR[main]}/state
LOG=${DAEMON_DIR[main]}/log
net_create A
check "AttachLink $A_IF" attach "$A_IF"

add_udp_drop() {
        call_error "$FILTERS_PATH" "$FILTERS" Add 'a{sv}' \
                "[{\"rule_type\": [\"s\", \"udp\"], \"dst_port\": [\"q\", $1], \"comment\": [\"s\", \"$2\"]}]"
}
comments() {
        pscall "$FILTERS_PATH" "$FILTERS" List | jq -c '[.data[0][] | .comment.data] | sort'
}
degraded() {
        busctl --system get-property "$PS_NAME" "$FILTERS_PATH" "$FILTERS" Degraded
}
describe() {
        pscall "$PS_PATH" "$PS_MANAGER" Describe | jq -c '.data[0] | fromjson | .filters'
}
restart() {
        daemon_stop main
        daemon_start main || bail "the daemon did not come back: $(daemon_log main)"
}

is "$(add_udp_drop $P1 first)" OK "Add of the first rule (udp/$P1)"
# Through an Import (merge), which writes filters.json whole: the set of the first rule alone
# becomes filters.json.prev. (A second Add would be a record in filters.log.)
is "$(call_error "$FILTERS_PATH" "$FILTERS" Import ss "[\"[{\\\"rule_type\\\": \\\"udp\\\", \\\"dst_port\\\": $P2, \\\"comment\\\": \\\"second\\\"}]\", \"merge\"]")" \
   OK "Import (merge) of the second rule (udp/$P2)"
is "$(udp_arrived $P1) $(udp_arrived $P2)" "0 0" "both are enforced"

# ---------------------------------------------------------------------------------------------
# filters.json corrupt: the generation before it (the first rule alone) comes back.

daemon_stop main
echo '{"version": 1, "filters": [{"rule_ty' >"$STATE/filters.json"
daemon_start main || bail "the daemon did not start on a corrupt filters.json: $(daemon_log main)"
is "$(comments)" '["first"]' "corrupt filters.json: the previous generation is listed"
is "$(udp_arrived $P2) $(udp_arrived $P1)" "3 0" \
   "and it is what the kernel enforces (udp/$P2 arrives, udp/$P1 is dropped)"
ok "$([ -e "$STATE/filters.json.corrupt" ] && echo 0 || echo 1)" \
   "the corrupt file is kept as filters.json.corrupt"
like "$(grep -c "filters.json is corrupt .*; kept as $STATE/filters.json.corrupt; recovered 1 rule(s) from $STATE/filters.json.prev" "$LOG")" \
     '^[1-9]' "the journal names what was set aside and what was recovered"
is "$(degraded)" 's ""' "not degraded"

# ---------------------------------------------------------------------------------------------
# Both corrupt: degraded, the kernel's rule still enforced and shown as it is there.

daemon_stop main
echo 'garbage' >"$STATE/filters.json"
echo 'garbage' >"$STATE/filters.json.prev"
daemon_start main || bail "the daemon did not start with no readable rules: $(daemon_log main)"
like "$(degraded)" '^s ".*filters.json is corrupt.*the kernel enforces 1 rule\(s\) no file lists"$' \
     "Filters.Degraded says why"
is "$(busctl --system get-property "$PS_NAME" "$FILTERS_PATH" "$FILTERS" Count)" "u 0" \
   "Count is 0: no rule is listed"
is "$(udp_arrived $P1)" 0 "the kernel still drops udp/$P1"
# 3 drops before the restart with the first corrupt file, 3 after it, 3 now: the slot kept
# counting across all of it.
d=$(describe)
like "$(jq -r .degraded <<<"$d")" "the kernel enforces 1 rule" "Describe says it is degraded"
is "$(jq -c '[.kernel_rules_count, (.kernel_rules | map({action, entries, hits}))]' <<<"$d")" \
   '[1,[{"action":"drop","entries":1,"hits":9}]]' \
   "Describe lists the kernel's rule: a drop, 1 classifier entry, 9 hits"
like "$("$PACKETSCOPECTL" status 2>&1)" "Degraded: .*the kernel enforces 1 rule" \
     "packetscopectl status shows it"
like "$("$PACKETSCOPECTL" status --json 2>&1 | jq -r .degraded)" "the kernel enforces 1 rule" \
     "and so does its JSON"
like "$(grep -c "Degraded: .*Import with mode 'replace'" "$LOG")" '^[1-9]' \
     "the journal says it and how to end it"
wait_until 10 grep -q "by an unlisted rule of the kernel's set (counter slot" "$LOG"
ok $? "a drop sample names an unlisted rule of the kernel's set"
is "$(grep -c "filter 4294967295" "$LOG")" 0 "no message names filter 4294967295"
like "$(add_udp_drop 40139 more)" \
     "^$PS_ERR\.FilterUpdateFailed: the rule set is degraded .*Import a whole set with mode 'replace'" \
     "Add is refused while the kernel's set is not listed"

out=$(call_error "$FILTERS_PATH" "$FILTERS" Import ss '["[]", "replace"]')
is "$out" OK "Import of an empty set (replace) clears it"
is "$(degraded)" 's ""' "no longer degraded"
is "$(udp_arrived $P1)" 3 "udp/$P1 arrives: the kernel's rule is gone"
restart
is "$(degraded) $(comments)" 's "" []' "after a restart: not degraded, no rules"
alive "at the end"

done_testing
