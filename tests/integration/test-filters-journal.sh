#!/bin/bash
# SPDX-License-Identifier: MIT
#
# A change of one rule is made durable by one record appended to filters.log, not by writing
# filters.json whole; with the real daemon on a private bus:
#   - 1,000 single changes (600 Add, 200 Disable, 100 Update, 100 Delete), then SIGKILL and a
#     restart: the list is exactly what was acknowledged (ids, order, enabled, comments);
#   - meanwhile the journal was compacted into filters.json, more than once, off the loop;
#   - a record cut short at the end (a crash while it was written) is ignored with a warning,
#     and the next record starts on a line of its own;
#   - a record that cannot be read in the middle of the journal: the journal is set aside and
#     the daemon says it is degraded, as for a corrupt filters.json, and stays so across a
#     restart until an Import (replace);
#   - Import (replace) writes filters.json whole and the journal goes.

set -u
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"

require_root
require dbus-daemon busctl jq
[ -x "$PACKETSCOPED" ] || bail "no daemon at $PACKETSCOPED (set PACKETSCOPED or BUILDDIR)"

FP=$PS_PATH/filters
FI=org.packetscope.Guarder1.Filters
RI=org.packetscope.Guarder1.Filter

make_tmpdir T
bus_start "$T/bus"
daemon_setup main
STATE=${DAEMON_DIR[main]}/state
LOG=${DAEMON_DIR[main]}/log
daemon_start main || bail "the daemon did not start: $(daemon_log main)"

add() { # PORT COMMENT: the new rule's id
        busctl --system --json=short call "$PS_NAME" "$FP" "$FI" Add 'a{sv}' 3 \
                rule_type s udp dst_port q "$1" comment s "$2" | jq -r '.data[0]'
}
# The list as a user sees it: id, enabled, comment, port, in the list's order.
listing() {
        busctl --system --json=short --timeout=60 call "$PS_NAME" "$FP" "$FI" List |
                jq -c '[.data[0][] | [.id.data, .enabled.data, .comment.data, .dst_port.data]]'
}
kill9() {
        local pid=${DAEMON_PID[main]}
        kill -KILL "$pid"
        wait "$pid" 2>/dev/null
}

t0=$(date +%s)
# Over one connection (rawbus.py batch): a process per call would take minutes.
batch() { # FILE: one result a line
        timeout 120 "$PYTHON" "$PS_TESTDIR/rawbus.py" batch "$PS_NAME" "$1"
}
for ((i = 0; i < 600; i++)); do
        printf '["%s","%s","Add","a{sv}",[{"rule_type":["s","udp"],"dst_port":["q",%d],"comment":["s","r%d"]}]]\n' \
                "$FP" "$FI" $((20000 + i)) "$i"
done >"$T/adds"
mapfile -t ids < <(batch "$T/adds" | jq -r '.reply[0] // "error"')
is "${#ids[@]} ${ids[0]} ${ids[1]} ${ids[599]} $(printf '%s\n' "${ids[@]}" | grep -c error)" \
   "600 0 1 599 0" "600 rules added one by one, ids 0 to 599"
# Disable the rules at 0, 3, 6, ... (200), update the comment of 1, 7, 13, ... (100), delete
# 2, 8, 14, ... (100): disjoint, so that what must be left is known without the daemon.
{
        for ((i = 0; i < 600; i += 3)); do
                printf '["%s/%s","%s","Disable","",[]]\n' "$FP" "${ids[i]}" "$RI"
        done
        for ((i = 1; i < 600; i += 6)); do
                printf '["%s/%s","%s","Update","a{sv}",[{"comment":["s","u%d"]}]]\n' "$FP" "${ids[i]}" "$RI" "$i"
        done
        for ((i = 2; i < 600; i += 6)); do
                printf '["%s/%s","%s","Delete","",[]]\n' "$FP" "${ids[i]}" "$RI"
        done
} >"$T/changes"
is "$(batch "$T/changes" | jq -s -c '[length, (map(select(.error)) | length)]')" "[400,0]" \
   "then 200 Disable, 100 Update and 100 Delete, one call each"
diag "1,000 single changes in $(($(date +%s) - t0)) s"

want=$(for ((i = 0; i < 600; i++)); do
        [ $((i % 6)) = 2 ] && continue
        c=r$i
        [ $((i % 6)) = 1 ] && c=u$i
        en=true
        [ $((i % 3)) = 0 ] && en=false
        printf '[%d,%s,"%s","%d"]\n' "$i" $en "$c" $((20000 + i))
done | jq -cs .)
is "$(listing)" "$want" "the list holds the 500 rules as changed, in the order they were added"

like "$(grep -c "Compacted the rule journal into $STATE/filters.json" "$LOG")" '^([2-9]|[1-9][0-9]+)$' \
     "the journal was compacted into filters.json more than once" "$(ls -l "$STATE")"
ok "$([ "$(jq '.filters | length' "$STATE/filters.json")" -gt 1 ] && echo 0 || echo 1)" \
   "filters.json holds more than the first rule (it was written by the compactions)"
ok "$([ "$(stat -c %s "$STATE/filters.log")" -lt 200000 ] && echo 0 || echo 1)" \
   "filters.log holds only the records since the last compaction" "$(ls -l "$STATE")"

kill9
daemon_start main || bail "the daemon did not come back after SIGKILL: $(daemon_log main)"
is "$(listing)" "$want" "after SIGKILL and a restart: exactly the acknowledged list"
like "$(grep -F "Restored 500 filter rule(s)" "$LOG" | tail -n 1)" "journal record" \
     "the daemon says it restored 500 rules with their journal"

# ---------------------------------------------------------------------------------------------
# A record cut short: the crash came while it was written, before it was acknowledged.

kill9
last=$STATE/filters.log
[ -e "$STATE/filters.log.new" ] && last=$STATE/filters.log.new
printf '{"add":{"comment":"torn","dst_port":30000,"id":9' >>"$last"
daemon_start main || bail "the daemon did not start with a torn record: $(daemon_log main)"
is "$(listing)" "$want" "a torn last record: ignored, the list is the acknowledged one"
like "$(grep -c "ends in a record cut short" "$LOG")" '^[1-9]' "and the log warns about it"
id=$(add 30001 after-torn)
is "$id" 600 "Add after the torn record: id 600"
kill9
daemon_start main || bail "the daemon did not come back: $(daemon_log main)"
want2=$(jq -c '. + [[600,true,"after-torn","30001"]]' <<<"$want")
is "$(listing)" "$want2" "after a restart rule 600 is there: it was recorded on a line of its own"

# ---------------------------------------------------------------------------------------------
# Import (replace) writes filters.json whole: the journal goes.

busctl --system call "$PS_NAME" "$FP" "$FI" Import ss \
        '[{"rule_type":"udp","dst_port":31000,"comment":"imported"}]' replace >/dev/null
ok $? "Import (replace) of one rule"
ok "$([ ! -e "$STATE/filters.log" ] && [ ! -e "$STATE/filters.log.new" ] && echo 0 || echo 1)" \
   "the journal is gone" "$(ls -l "$STATE")"
id=$(add 31001 after-import)
is "$(jq -c '[.filters[].comment]' "$STATE/filters.json") $(wc -l <"$STATE/filters.log")" \
   '["imported"] 2' "the next Add is one record (after the journal's header) in filters.log"

# ---------------------------------------------------------------------------------------------
# A damaged record in the middle: what follows it is unknown.

add 31002 third >/dev/null
kill9
sed -i '2s/.*/{"add":{"rule_ty/' "$STATE/filters.log"
daemon_start main || bail "the daemon did not start on a damaged journal: $(daemon_log main)"
ok "$([ -e "$STATE/filters.log.corrupt" ] && [ ! -e "$STATE/filters.log" ] && echo 0 || echo 1)" \
   "the damaged journal is kept as filters.log.corrupt" "$(ls -l "$STATE")"
like "$(grep -F "filters.log is corrupt (record 2:" "$LOG" | tail -n 1)" "Degraded: .*kept as $STATE/filters.log.corrupt" \
     "the daemon says the journal is corrupt, which record, and that it is degraded"
degraded() {
        busctl --system get-property "$PS_NAME" "$FP" "$FI" Degraded
}
like "$(degraded)" '^s ".*filters.log is corrupt.*the kernel enforces 3 rule\(s\) no file lists"$' \
     "Filters.Degraded says why"
kill9
daemon_start main || bail "the daemon did not start degraded: $(daemon_log main)"
like "$(degraded)" '^s "degraded since an earlier start: .*filters.log is corrupt.*the kernel enforces 3 rule\(s\) no file lists"$' \
     "after a restart it is still degraded: the kernel enforces what no file lists"
is "$(listing)" "[]" "and lists no rule rather than filters.json's older set"
is "$(busctl --system --json=short call "$PS_NAME" "$FP" "$FI" Import ss '[]' replace >/dev/null &&
      listing)" "[]" "Import (replace) ends it"
is "$(degraded) $([ -e "$STATE/filters.degraded" ] && echo marked || echo unmarked)" 's "" unmarked' \
   "no longer degraded, and the mark in the state directory is gone"
kill9
daemon_start main || bail "the daemon did not come back: $(daemon_log main)"
is "$(degraded) $(listing)" 's "" []' "after a restart: not degraded, no rules"

diag "this test took $(($(date +%s) - t0)) s"
done_testing
