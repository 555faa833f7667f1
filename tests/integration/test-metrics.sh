#!/bin/bash
# SPDX-License-Identifier: MIT
#
# packetscope-metrics against the real daemon: socket-activated (systemd-socket-activate passes
# the listener) and run as an unprivileged user, it serves /metrics in a text promtool accepts;
# a real Prometheus on loopback scrapes it, and its query API returns the counters the bus
# reports (a rule's hits, a link's ICMP packets, the flow table's capacity); --textfile writes
# the same text atomically; the AI job families match the jobs the bus lists (one done, one
# failed, against the scripted local server ai-server.py); the ban families match the bans the
# test made (by origin, a full table's refusal, the pings a ban dropped).

set -u
. "$(dirname "$0")/lib.sh"

require_root
require ip dbus-daemon busctl jq timeout curl promtool prometheus systemd-socket-activate setpriv
[ -x "$PACKETSCOPED" ] || bail "no daemon at $PACKETSCOPED"
METRICS=${PACKETSCOPE_METRICS:-$BUILDDIR/src/packetscope-metrics}
[ -x "$METRICS" ] || bail "no exporter at $METRICS"

make_tmpdir T
bus_start "$T/bus"

# The scripted AI server, for one job that succeeds and one that fails.
mkdir -p "$T/srv"
"$PYTHON" "$PS_TESTDIR/ai-server.py" "$T/srv" 2>"$T/srv/log" &
SRV_PID=$!
defer "kill_wait $SRV_PID"
wait_until 10 test -s "$T/srv/port" || bail "the test server did not start: $(cat "$T/srv/log")"
daemon_setup main
cat >>"${DAEMON_DIR[main]}/config/packetscope.conf" <<EOF
[AI]
Endpoint=http://127.0.0.1:$(cat "$T/srv/port")/v1/chat/completions
TimeoutSec=10s
MaxRetries=0
[Bans]
MaxBansIPv4=1024
EOF
daemon_start main || bail "the daemon did not start: $(daemon_log main)"
net_create A
must "AttachLink $A_IF" attach "$A_IF" generic

# A rule that drops echo requests, and five of them.
out=$(pscall "$PS_PATH/filters" org.packetscope.Guarder1.Filters Add 'a{sv}' 3 \
        rule_type s icmp icmp_type y 8 comment s metrics)
ok $? "Filters.Add of a rule dropping echo requests" "$out"
RULE=$(jq -r '.data[0]' <<<"$out")
is "$(ping_received "$A_NS" "$A_H4" 5)" 0 "the rule drops all five pings"
rule_hits() {
        busctl --system --json=short get-property "$PS_NAME" "$PS_PATH/filters/$RULE" \
                org.packetscope.Guarder1.Filter Hits | jq -r .data
}
rule_hits_are() {
        [ "$(rule_hits)" = "$1" ]
}
wait_until 10 rule_hits_are 5
ok $? "Filter.Hits of rule $RULE is 5" "$(rule_hits)"

# Two AI jobs: "good" ends done, "e401" ends failed.
ai_job_state() {
        busctl --system --json=short get-property "$PS_NAME" "$1" \
                org.packetscope.Guarder1.AIJob State | jq -r .data
}
ai_job_ended() {
        local s
        s=$(ai_job_state "$1")
        [ "$s" = done ] || [ "$s" = failed ] || [ "$s" = cancelled ]
}
for scenario in good e401; do
        echo "$scenario" >"$T/srv/scenario"
        job=$(pscall "$PS_PATH/ai" org.packetscope.Guarder1.AI Generate 'a{sv}' 0 |
              jq -r '.data[0]')
        wait_until 30 ai_job_ended "$job"
        ok $? "the AI job of scenario $scenario ended ($(ai_job_state "$job"))"
done
AI_JOBS=$(busctl --system --json=short get-property "$PS_NAME" "$PS_PATH/ai" \
          org.packetscope.Guarder1.AI Jobs | jq -r '.data[]')
ai_count() {
        local n=0 j
        for j in $AI_JOBS; do
                [ "$(ai_job_state "$j")" = "$1" ] && n=$((n + 1))
        done
        echo "$n"
}
AI_TOKENS=0
for j in $AI_JOBS; do
        AI_TOKENS=$((AI_TOKENS + $(busctl --system --json=short get-property "$PS_NAME" "$j" \
                org.packetscope.Guarder1.AIJob TokensUsed | jq -r .data)))
done
is "$(ai_count done) $(ai_count failed)" "1 1" "the bus lists one done and one failed AI job"
# The server's "good" answer reports total_tokens 321; the 401 reports none.
is "$AI_TOKENS" 321 "the jobs' TokensUsed sum to the 321 tokens the server reported"

# Bans of each origin a caller can give: the peer (manual), one import, one AI range; then the
# IPv4 table (MaxBansIPv4=1024) filled with 1022 more manual bans, so that one more is refused.
BANS_PATH=$PS_PATH/bans
BANS=org.packetscope.Guarder1.Bans
out=$(pscall "$BANS_PATH" "$BANS" Ban sts "$A_N4" 600 metrics 2>&1)
ok $? "Bans.Ban of the peer $A_N4" "$out"
batch=$(jq -nc '[{address: ["s", "192.0.2.7"], origin: ["s", "import"]},
                 {address: ["s", "198.51.100.0/24"], origin: ["s", "ai"]}]
                + [range(0; 1022) | {address: ["s", "198.18.\(. / 256 | floor).\(. % 256)"]}]')
is "$(rawcall "$BANS_PATH" "$BANS" BanBatch 'aa{sv}' "[$batch]" | jq -c '.reply')" "[1024]" \
   "BanBatch of one import ban, one AI range and 1022 manual bans"
like "$(call_error "$BANS_PATH" "$BANS" Ban sts '["198.19.9.9", 0, ""]')" "^$PS_ERR\.BanTableFull: " \
     "one more ban is refused: the IPv4 table is full"
is "$(ping_received "$A_NS" "$A_H4" 3)" 0 "the ban drops the peer's three pings"
ban_drops() {
        stats_get "$PS_PATH/link/$A_IF" "$PS_LINK" | jq -r '.dropped_ban'
}
ban_drops_are() {
        [ "$(ban_drops)" = "$1" ]
}
wait_until 10 ban_drops_are 3
ok $? "the link's dropped_ban is 3" "$(ban_drops)"
CIDR_CAP=$(busctl --system --json=short get-property "$PS_NAME" "$BANS_PATH" "$BANS" CapacityCidr |
           jq -r .data)
# Two more manual bans in the IPv6 table: one for a second that expires, one unbanned.
out=$(pscall "$BANS_PATH" "$BANS" Ban sts 2001:db8::1 1 expires 2>&1)
ok $? "Bans.Ban of 2001:db8::1 for 1 s" "$out"
out=$(pscall "$BANS_PATH" "$BANS" Ban sts 2001:db8::2 600 lifted 2>&1 &&
      pscall "$BANS_PATH" "$BANS" Unban s 2001:db8::2 2>&1)
ok $? "Bans.Ban and Bans.Unban of 2001:db8::2" "$out"
ban_count_is() {
        [ "$(busctl --system --json=short get-property "$PS_NAME" "$BANS_PATH" "$BANS" Count |
             jq -r .data)" = "$1" ]
}
wait_until 15 ban_count_is 1025
ok $? "2001:db8::1 expired and was reaped: 1025 bans held"

# free_port: a loopback TCP port nothing listens on.
free_port() {
        local p
        for _ in $(seq 1 50); do
                p=$((20000 + RANDOM % 20000))
                ss -Htln "sport = :$p" | grep -q . || { echo "$p"; return 0; }
        done
        return 1
}

PORT=$(free_port) || bail "no free port"
systemd-socket-activate -l "127.0.0.1:$PORT" -E DBUS_SYSTEM_BUS_ADDRESS \
        setpriv --reuid=65534 --regid=65534 --clear-groups "$METRICS" >"$T/exporter.log" 2>&1 &
EXPORTER=$!
defer "kill_wait $EXPORTER"
wait_until 10 curl -sf "http://127.0.0.1:$PORT/metrics" -o /dev/null
ok $? "the exporter answers on 127.0.0.1:$PORT" "$(cat "$T/exporter.log")"
like "$(grep '^Uid:' "/proc/$EXPORTER/status")" '^Uid:[[:space:]]+65534[[:space:]]+65534' \
     "the exporter runs as uid 65534"

curl -sf -D "$T/headers" "http://127.0.0.1:$PORT/metrics" -o "$T/metrics.txt"
ok $? "GET /metrics"
like "$(cat "$T/headers")" '^Content-Type: text/plain; version=0.0.4' \
     "Content-Type is the text format 0.0.4"
check "promtool check metrics accepts the text" promtool check metrics <"$T/metrics.txt"
M=$(cat "$T/metrics.txt")
like "$M" '^packetscope_up 1$' "packetscope_up 1"
like "$M" "^packetscope_filter_hits_total\\{filter_id=\"$RULE\"\\} 5\$" \
     "packetscope_filter_hits_total of rule $RULE is 5"
like "$M" "^packetscope_packets_dropped_total\\{link=\"$A_IF\",reason=\"filter\"\\} 5\$" \
     "packetscope_packets_dropped_total{reason=filter} of $A_IF is 5"
like "$M" '^packetscope_flow_entries_capacity\{link="[^"]+"\} 65536$' \
     "the flow table's capacity is FlowTableSize= (65536)"
like "$M" '^packetscope_icmp_entries_capacity\{link="[^"]+"\} 8192$' \
     "the ICMP tables' capacity is twice IcmpTableSize= (one table a family of 4096)"
for state in done failed; do
        like "$M" "^packetscope_ai_jobs\\{state=\"$state\"\\} 1\$" \
             "packetscope_ai_jobs{state=$state} is 1, as on the bus"
done
like "$M" '^packetscope_ai_jobs\{state="running"\} 0$' "packetscope_ai_jobs{state=running} is 0"
like "$M" "^packetscope_ai_tokens_used $AI_TOKENS\$" \
     "packetscope_ai_tokens_used is the jobs' TokensUsed summed ($AI_TOKENS)"
like "$M" '^packetscope_health_memory_usage_ratio 0\.[0-9]+' "a health gauge is a ratio"
for o in manual:1023 import:1 ai:1 auto:0; do
        like "$M" "^packetscope_bans\\{origin=\"${o%%:*}\"\\} ${o#*:}\$" \
             "packetscope_bans{origin=${o%%:*}} is ${o#*:}"
done
# Made since the start: those held, the refused one not, and the two IPv6 bans that ended.
for o in manual:1025 import:1 ai:1; do
        like "$M" "^packetscope_bans_created_total\\{origin=\"${o%%:*}\"\\} ${o#*:}\$" \
             "packetscope_bans_created_total{origin=${o%%:*}} is ${o#*:}"
done
for p in connections syn-rate port-scan url; do
        like "$M" "^packetscope_bans_created_total\\{origin=\"auto\",policy=\"$p\"\\} 0\$" \
             "packetscope_bans_created_total{origin=auto,policy=$p} is 0"
done
for w in expired unbanned; do
        like "$M" "^packetscope_bans_removed_total\\{why=\"$w\"\\} 1\$" \
             "packetscope_bans_removed_total{why=$w} is 1"
done
like "$M" '^packetscope_ban_capacity\{table="ipv4"\} 1024$' \
     "packetscope_ban_capacity{table=ipv4} is MaxBansIPv4= (1024)"
like "$M" '^packetscope_ban_capacity\{table="ipv6"\} 262144$' \
     "packetscope_ban_capacity{table=ipv6} is the default MaxBansIPv6= (262144)"
like "$M" "^packetscope_ban_capacity\\{table=\"cidr\"\\} $CIDR_CAP\$" \
     "packetscope_ban_capacity{table=cidr} is CapacityCidr ($CIDR_CAP)"
like "$M" '^packetscope_ban_table_full_total\{origin="request"\} 1$' \
     "packetscope_ban_table_full_total{origin=request} is 1, the one refused ban"
like "$M" "^packetscope_packets_dropped_total\\{link=\"$A_IF\",reason=\"ban\"\\} 3\$" \
     "packetscope_packets_dropped_total{reason=ban} of $A_IF is 3"
like "$M" "^packetscope_ban_policy_triggers_total\\{link=\"$A_IF\",policy=\"syn-rate\",mode=\"enforce\"\\} 0\$" \
     "packetscope_ban_policy_triggers_total has the syn-rate policy (0: no policy is on)"
# No address in any label value.
if grep -Eq '"[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+"|"[0-9a-f:]*::[0-9a-f:]*"' <<<"$M"; then
        ok 1 "no label value is an address" "$(grep -E '[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+' <<<"$M")"
else
        ok 0 "no label value is an address"
fi
is "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/other")" 404 "GET /other is 404"
is "$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$PORT/metrics")" 405 \
   "POST /metrics is 405"

# A real Prometheus scraping it every second.
PPORT=$(free_port) || bail "no free port"
mkdir -p "$T/prom"
cat >"$T/prom/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: packetscope
    static_configs:
      - targets: ['127.0.0.1:$PORT']
EOF
chown -R 65534:65534 "$T/prom"
setpriv --reuid=65534 --regid=65534 --clear-groups prometheus \
        --config.file="$T/prom/prometheus.yml" --storage.tsdb.path="$T/prom/data" \
        --web.listen-address="127.0.0.1:$PPORT" >"$T/prom/log" 2>&1 &
PROM=$!
defer "kill_wait $PROM 20"

# query EXPR: the value of the first sample of an instant query, or nothing.
query() {
        curl -sf --data-urlencode "query=$1" "http://127.0.0.1:$PPORT/api/v1/query" |
                jq -r '.data.result[0].value[1] // empty'
}
query_is() {
        [ "$(query "$1")" = "$2" ]
}

wait_until 60 curl -sf "http://127.0.0.1:$PPORT/-/ready"
ok $? "Prometheus is ready on 127.0.0.1:$PPORT" "$(tail -n 5 "$T/prom/log")"
wait_until 60 query_is 'up{job="packetscope"}' 1
ok $? "Prometheus scrapes the exporter (up 1)" \
   "$(curl -s "http://127.0.0.1:$PPORT/api/v1/targets" | jq -c '.data.activeTargets[0] | {health, lastError}')"
hits=$(rule_hits)
is "$(query "packetscope_filter_hits_total{filter_id=\"$RULE\"}")" "$hits" \
   "the query API: packetscope_filter_hits_total of rule $RULE is Filter.Hits ($hits)"
icmp=$(stats_get "$PS_PATH/link/$A_IF" "$PS_LINK" | jq -r '.icmp_packets')
is "$(query "packetscope_protocol_packets_total{link=\"$A_IF\",protocol=\"icmp\"}")" "$icmp" \
   "the query API: packetscope_protocol_packets_total{protocol=icmp} is the link's icmp_packets ($icmp)"
cap=$(busctl --system --json=short get-property "$PS_NAME" "$PS_PATH" "$PS_MANAGER" FlowTableSize |
      jq -r .data)
is "$(query "packetscope_flow_entries_capacity{link=\"$A_IF\"}")" "$cap" \
   "the query API: packetscope_flow_entries_capacity is FlowTableSize ($cap)"

# --textfile: the same text, written atomically, nothing else left in the directory.
mkdir -p "$T/textfile"
chown 65534:65534 "$T/textfile"
setpriv --reuid=65534 --regid=65534 --clear-groups "$METRICS" --textfile "$T/textfile"
ok $? "--textfile as uid 65534"
is "$(ls "$T/textfile")" packetscope.prom "--textfile leaves packetscope.prom and nothing else"
check "promtool check metrics accepts the textfile" promtool check metrics <"$T/textfile/packetscope.prom"
like "$(cat "$T/textfile/packetscope.prom")" \
     "^packetscope_filter_hits_total\\{filter_id=\"$RULE\"\\} 5\$" "the textfile has the rule's hits"

# Without the daemon the exporter still answers, and says so.
daemon_stop main
like "$(curl -sf "http://127.0.0.1:$PORT/metrics")" '^packetscope_up 0$' \
     "with the daemon gone: packetscope_up 0"
done_testing
