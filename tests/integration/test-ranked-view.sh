#!/bin/bash
# SPDX-License-Identifier: MIT
#
# The ranked view that answers top-N connection queries on big tables (packetscoped(8), "TOP-N
# QUERIES"). RankedViewMinFlows=1 makes a handful of flows count as big; a sweep pass every
# 5 s (SweepPeriodSec= is the pass length on a full table, PollIntervalSec= one step) leaves a
# window in which traffic changes the counters but not the candidates:
#   - rows from the view carry rank_age_usec, rows of a whole read (fresh, a filter, ICMP) do not;
#   - the view ranks by live counters: a flow pushed to the top since the pass comes first, with
#     its new packet count;
#   - its answer equals the whole read's (fresh=true) while every flow is a candidate;
#   - RankedViewMinFlows=0 turns it off;
#   - a bad `fresh` gets InvalidArgs naming the type accepted.

set -u
. "$(dirname "$0")/lib.sh"

require_root
require ip dbus-daemon busctl jq timeout
[ -x "$PACKETSCOPED" ] || bail "no daemon at $PACKETSCOPED"

make_tmpdir T
bus_start "$T/bus"
daemon_setup main
sed -i 's/^PollIntervalSec=.*/PollIntervalSec=5s/' "${DAEMON_DIR[main]}/config/packetscope.conf"
printf 'IdleTimeoutSec=1h\nRankedViewMinFlows=1\n' >>"${DAEMON_DIR[main]}/config/packetscope.conf"
daemon_start main || bail "the daemon did not start: $(daemon_log main)"
net_create A
out=$(attach "$A_IF" generic 2>&1)
ok $? "AttachLink $A_IF generic" "$out" || bail "no guarded link: $out"

# Five UDP flows from five source ports, 1 to 5 datagrams each: flow i has i packets.
for i in 1 2 3 4 5; do
        traffic_ns "$A_NS" udp-send "$A_H4" 40100 "$i" 64 $((41100 + i)) >/dev/null ||
                bail "udp-send from port $((41100 + i)) failed"
done

top_ports() { jq -r '[.[] | "\(.sport):\(.packets)"] | join(" ")' <<<"$1"; }
ranked_query='{"sort": ["s", "packets"], "limit": ["u", 5], "protocol": ["s", "udp"]}'
view_query='{"sort": ["s", "packets"], "limit": ["u", 5]}'

# Wait for a pass that saw all five (the view answers only after a complete pass).
have_view() {
        local rows
        rows=$(list_flows "$view_query") || return 1
        [ "$(jq '[.[] | select(.rank_age_usec != null)] | length' <<<"$rows")" = 5 ]
}
wait_until 20 have_view
ok $? "after a sweep pass the view answers sort=packets with 5 rows carrying rank_age_usec" \
   "$(list_flows "$view_query")"
rows=$(list_flows "$view_query")
is "$(top_ports "$rows")" "41105:5 41104:4 41103:3 41102:2 41101:1" \
   "ranked by packets: 5, 4, 3, 2, 1"
fresh=$(list_flows '{"sort": ["s", "packets"], "limit": ["u", 5], "fresh": ["b", "true"]}')
is "$(top_ports "$fresh")" "$(top_ports "$rows")" "the whole read (fresh=true) gives the same rows"
is "$(jq '[.[] | select(.rank_age_usec != null)] | length' <<<"$fresh")" 0 \
   "rows of the whole read carry no rank_age_usec"
filtered=$(list_flows "$ranked_query")
is "$(jq '[.[] | select(.rank_age_usec != null)] | length' <<<"$filtered")" 0 \
   "a query with a filter (protocol) reads the whole table: no rank_age_usec"

# Live counters: 10 more datagrams on the flow with 1 puts it first. Retried when a pass ran
# in between (its age then restarts), since only a query inside the same pass shows that the
# counters are read live rather than copied by the pass.
live=fail sent=1
for attempt in 1 2 3 4; do
        age0=$(jq '.[0].rank_age_usec' <<<"$(list_flows "$view_query")")
        traffic_ns "$A_NS" udp-send "$A_H4" 40100 10 64 41101 >/dev/null
        sent=$((sent + 10))
        rows=$(list_flows "$view_query")
        age1=$(jq '.[0].rank_age_usec' <<<"$rows")
        if [ "$age1" -ge "$age0" ]; then
                live=$(top_ports "$rows")
                break
        fi
        diag "a sweep pass ran during attempt $attempt (rank age $age0 us, then $age1 us); again"
done
is "$live" "41101:$sent 41105:5 41104:4 41103:3 41102:2" \
   "within one pass, the flow given 10 more datagrams ranks first with its live count ($sent)"
ge "$age1" 1 "rank_age_usec says how old the ranking is (${age1} us)"

out=$(call_error "$PS_CONNS_PATH" "$PS_CONNS" List 'a{sv}' '[{"fresh": ["s", "yes"]}]')
like "$out" "^$INVALID_ARGS: .*'fresh'.*a boolean \\(b\\)" \
     "fresh given as a string: InvalidArgs naming the type accepted"

# RankedViewMinFlows=0: the view is off, every query reads the whole table.
daemon_stop main
sed -i 's/^RankedViewMinFlows=.*/RankedViewMinFlows=0/' "${DAEMON_DIR[main]}/config/packetscope.conf"
daemon_start main || bail "the daemon did not restart: $(daemon_log main)"
sleep 11 # two passes at least
rows=$(list_flows "$view_query")
is "$(jq '[.[] | select(.rank_age_usec != null)] | length' <<<"$rows")" 0 \
   "RankedViewMinFlows=0: no row comes from the view"
is "$(top_ports "$rows")" "41101:$sent 41105:5 41104:4 41103:3 41102:2" \
   "and the whole read ranks the same flows"

done_testing
