#!/bin/bash
# SPDX-License-Identifier: MIT
#
# The Guarder's README examples (tests/guarder/NN-*.json, byte for byte as it printed them)
# loaded over the bus unchanged, each in a fresh rule set, and judged by real traffic from a
# network namespace to the host through a guarded veth. The XDP program sees what arrives on
# the host side, i.e. what the namespace sends. Every count is exact: rule hits equal the
# packets sent that the rule matches, the daemon's dropped counter grows by exactly those, and
# what the rule should not match arrives (ping replies, accepted connections, datagrams, ICMP
# errors seen by a raw socket on the host).
#
#   ping from the namespace             echo requests (type 8): 01 (disabled), 07, 16
#   UDP from the host to a closed port  the namespace's port unreachable (3/3 quoting UDP): 02, 04, 05
#   crafted ICMP errors (raw socket)    3/3 quoting TCP, 4 (source quench), 11 quoting UDP or TCP
#   TCP connects from the namespace     to listeners on the host: 08-15 (one port each), 17 (SYN)
#
# Then the Guarder's update (update-disable.json through Filter.Update), Enable, Disable and
# Delete, with the signals and the journal line of a sampled drop.

set -u
. "$(dirname "$0")/lib.sh"

require_root
require ip dbus-daemon busctl jq timeout ping
[ -x "$PACKETSCOPED" ] || bail "no daemon at $PACKETSCOPED"

GUARDER=$SRCDIR/tests/guarder
FILTERS_PATH=$PS_PATH/filters
FILTERS=org.packetscope.Guarder1.Filters
FILTER=org.packetscope.Guarder1.Filter

make_tmpdir T
bus_start "$T/bus"
daemon_start main || bail "the daemon did not start: $(daemon_log main)"
LOG=${DAEMON_DIR[main]}/log
net_create A
# Every port unreachable the test asks the namespace for is sent, however close together.
ip netns exec "$A_NS" sysctl -qw net.ipv4.icmp_ratelimit=0 || bail "cannot lift the ICMP rate limit"
out=$(attach "$A_IF" generic 2>&1) || bail "AttachLink $A_IF failed: $out"

# ---------------------------------------------------------------------------------------------
# Helpers

craft_ns() {
        timeout 60 ip netns exec "$A_NS" "$PYTHON" "$PS_TESTDIR/craft.py" "$@"
}

# load FILE: the file's JSON as the whole rule set (Import, mode replace, through busctl with
# the text unchanged); echoes the rule's id.
load() {
        local out
        out=$(busctl --system --json=short call "$PS_NAME" "$FILTERS_PATH" "$FILTERS" Import ss \
                "$(cat "$GUARDER/$1")" replace) || return 1
        jq -re '.data[0] | select(length == 1) | .[0]' <<<"$out"
}

# rules: Filters.List as an array of plain objects.
rules() {
        pscall "$FILTERS_PATH" "$FILTERS" List | jq -c '[.data[0][] | map_values(.data)]'
}

rule() {
        rules | jq -c --argjson id "$1" '.[] | select(.id == $id)'
}

hits() {
        rules | jq -r --argjson id "$1" '[.[] | select(.id == $id) | .hits] | first // "none"'
}

# ping_ns COUNT: echo requests from the namespace to the host; echoes the replies received.
ping_ns() {
        in_ns "$A_NS" ping -n -q -c "$1" -i 0.2 -W 1 "$A_H4" 2>/dev/null |
                sed -n 's/.* \([0-9]\+\) received.*/\1/p'
}

# connect_ns PORT [COUNT]: TCP connects from the namespace to the host listener; one word per
# attempt. 0.7 s per attempt stays below the first SYN retransmission (1 s), so a dropped
# connect costs exactly one SYN.
connect_ns() {
        craft_ns connect "$A_H4" "$1" 0.7 "${2:-1}"
}

# udp_ns COUNT PORT: datagrams from the namespace to a host listener; echoes how many arrived.
udp_ns() {
        local n=$1 port=$2 pid
        rm -f "$T/udp.ready" "$T/udp.done"
        timeout 90 "$PYTHON" "$PS_TESTDIR/craft.py" udp-recv "$A_H4" 60 "$T/udp.ready" \
                "$T/udp.done" "$port" >"$T/udp.out" &
        pid=$!
        wait_until 10 test -e "$T/udp.ready" || { kill_wait "$pid"; echo "no listener"; return; }
        craft_ns udp-stream "$A_H4" "$n" 0.002 "$port"
        touch "$T/udp.done"
        wait "$pid"
        jq -r --arg p "$port" '.[$p]' "$T/udp.out"
}

# icmp_capture COMMAND...: runs COMMAND while a raw socket on the host counts the ICMP messages
# from the namespace; echoes {"TYPE/CODE/INNER": count}.
icmp_capture() {
        local pid
        rm -f "$T/icmp.ready" "$T/icmp.done"
        timeout 90 "$PYTHON" "$PS_TESTDIR/craft.py" icmp-recv "$A_N4" 60 "$T/icmp.ready" \
                "$T/icmp.done" >"$T/icmp.out" &
        pid=$!
        wait_until 10 test -e "$T/icmp.ready" || { kill_wait "$pid"; echo '{}'; return; }
        "$@" >/dev/null 2>&1
        touch "$T/icmp.done"
        wait "$pid"
        cat "$T/icmp.out"
}

# The namespace's own port unreachables: COUNT datagrams from the host to a closed port there.
port_unreachables() {
        traffic udp-send "$A_N4" 33434 "$1" 20 42000
}

# crafted TYPE CODE INNER COUNT: ICMP errors made up in the namespace (raw socket).
crafted() {
        craft_ns icmp-error "$A_N4" "$A_H4" "$1" "$2" "$3" "$4"
}

# dropped_is, expect_dropped, alive, monitor_start/stop: shared with the other filter test.
. "$PS_TESTDIR/lib-filters.sh"

# signals MEMBER [ARGS-JSON]: how many signals MEMBER the monitor saw (with exactly these
# arguments; "other:ARGS-JSON" counts those with other arguments).
signals() {
        jq -s --arg m "$1" --arg a "${2:-}" '[.[] | select(.type == "signal" and .member == $m)
                | .payload.data | tojson | . as $s
                | select($a == "" or $s == $a or (($a | startswith("other:")) and $s != $a[6:]))]
                | length' "$T/mon.json" 2>/dev/null || echo "no monitor output"
}

# ---------------------------------------------------------------------------------------------
# Listeners on the host side of the veth: the Guarder's TCP ports and one it does not list.

TCP_PORTS=(23 135 445 139 1433 3306 3389 5900)
OPEN_PORT=8080
UDP_PORT=5353
# They run until the end of the test stops them (SIGTERM), at most 15 minutes: a fixed window
# shorter than the test is a failure waiting for a slow machine.
timeout 910 "$PYTHON" "$PS_TESTDIR/craft.py" tcp-listen "$A_H4" 900 "$T/tcp.ready" \
        "${TCP_PORTS[@]}" "$OPEN_PORT" >"$T/tcp.counts" &
TCP_PID=$!
defer '[ -z "$TCP_PID" ] || kill_wait "$TCP_PID"'
wait_until 10 test -e "$T/tcp.ready" || bail "the TCP listeners did not start"
declare -A ACCEPTED_WANT
for p in "${TCP_PORTS[@]}" "$OPEN_PORT"; do
        ACCEPTED_WANT[$p]=0
done

# ---------------------------------------------------------------------------------------------
# Without rules everything arrives: this is what makes "nothing arrived" below mean "dropped".

is "$(rules)" "[]" "no rules at the start"
D=$(stat_of .dropped)
is "$(ping_ns 3)" 3 "no rules: 3 pings from the namespace answered"
for p in "${TCP_PORTS[@]}" "$OPEN_PORT"; do
        is "$(connect_ns "$p")" connected "no rules: TCP connect to port $p"
        ACCEPTED_WANT[$p]=$((ACCEPTED_WANT[$p] + 1))
done
is "$(udp_ns 5 "$UDP_PORT")" 5 "no rules: 5 UDP datagrams arrive"
C=$(icmp_capture port_unreachables 3)
is "$(jq -r '."3/3/udp" // 0' <<<"$C")" 3 "no rules: 3 port unreachables (3/3 quoting UDP) reach the host"
C=$(icmp_capture crafted 3 3 tcp 2)
is "$(jq -r '."3/3/tcp" // 0' <<<"$C")" 2 "no rules: 2 crafted 3/3 quoting TCP reach the host"
C=$(icmp_capture crafted 4 0 udp 2)
is "$(jq -r '."4/0/udp" // 0' <<<"$C")" 2 "no rules: 2 crafted source quenches (4/0) reach the host"
C=$(icmp_capture crafted 11 0 udp 2)
is "$(jq -r '."11/0/udp" // 0' <<<"$C")" 2 "no rules: 2 crafted time exceeded quoting UDP reach the host"
C=$(icmp_capture crafted 11 0 tcp 2)
is "$(jq -r '."11/0/tcp" // 0' <<<"$C")" 2 "no rules: 2 crafted time exceeded quoting TCP reach the host"
expect_dropped "$D" 0 "no rules: nothing dropped"

# ---------------------------------------------------------------------------------------------
# 01: a disabled echo-request rule drops nothing.

ID=$(load 01-ping-request-disabled.json)
ok $? "01 imported (id $ID)" || bail "Import failed"
R=$(rule "$ID")
jq_ok "01 as stored: icmp, type 8 code 0, drop, disabled, the Guarder's comment" \
      '.rule_type == "icmp" and .protocol == "icmp" and .icmp_type == 8 and .icmp_code == 0 and
       .action == "drop" and .enabled == false and
       .comment == "Block all ICMP ping requests (Echo Request)"' "$R"
D=$(stat_of .dropped)
is "$(ping_ns 3)" 3 "01: 3 pings answered"
is "$(hits "$ID")" 0 "01: hits == 0"
expect_dropped "$D" 0 "01: nothing dropped"

# ---------------------------------------------------------------------------------------------
# 07: echo requests of any code are dropped; the drop is signalled and logged.

ID=$(load 07-echo-request-all.json)
ok $? "07 imported (id $ID)"
jq_ok "07 as stored: icmp type 8, any code, drop, enabled" \
      '.icmp_type == 8 and .icmp_code == 255 and .action == "drop" and .enabled' "$(rule "$ID")"
D=$(stat_of .dropped)
monitor_start
is "$(ping_ns 3)" 0 "07: none of 3 pings answered"
monitor_stop Dropped 3
is "$(hits "$ID")" 3 "07: hits == 3 (the echo requests)"
expect_dropped "$D" 3 "07: dropped grew by 3"
want="[$ID,\"$A_IF\",\"icmp\",\"$A_N4\",\"$A_H4\",0,0]"
is "$(signals Dropped "$want")" 3 "07: 3 Dropped signals $want"
is "$(signals Dropped "other:$want")" 0 "07: no other Dropped signal"
n=$(grep -cF "Dropped icmp $A_N4 -> $A_H4 type 8 (echo-request) code 0 on $A_IF by filter $ID (sampled)" "$LOG")
is "$n" 3 "07: the daemon logged 'Dropped icmp $A_N4 -> $A_H4 type 8 (echo-request) code 0 on $A_IF by filter $ID' 3 times"
is "$(connect_ns "$OPEN_PORT")" connected "07: TCP to $OPEN_PORT still connects"
ACCEPTED_WANT[$OPEN_PORT]=$((ACCEPTED_WANT[$OPEN_PORT] + 1))
is "$(udp_ns 5 "$UDP_PORT")" 5 "07: UDP still arrives (5 of 5)"
is "$(hits "$ID")" 3 "07: hits still 3"
expect_dropped "$D" 3 "07: nothing else dropped"

# ---------------------------------------------------------------------------------------------
# 16: rule_type icmp without a protocol: the protocol follows the type.

ID=$(load 16-ping-request.json)
ok $? "16 imported (id $ID)"
jq_ok "16 as stored: protocol icmp (from rule_type), type 8 code 0, drop" \
      '.rule_type == "icmp" and .protocol == "icmp" and .icmp_type == 8 and .icmp_code == 0 and
       .action == "drop" and .enabled' "$(rule "$ID")"
D=$(stat_of .dropped)
is "$(ping_ns 3)" 0 "16: none of 3 pings answered"
is "$(hits "$ID")" 3 "16: hits == 3"
is "$(udp_ns 5 "$UDP_PORT")" 5 "16: UDP still arrives"
expect_dropped "$D" 3 "16: dropped grew by 3"

# ---------------------------------------------------------------------------------------------
# 02: every destination unreachable, whatever it quotes.

ID=$(load 02-dest-unreachable.json)
ok $? "02 imported (id $ID)"
jq_ok "02 as stored: icmp type 3, any code, any inner protocol" \
      '.icmp_type == 3 and .icmp_code == 255 and .inner_protocol == "any"' "$(rule "$ID")"
D=$(stat_of .dropped)
C=$(icmp_capture port_unreachables 3)
is "$(jq -r '."3/3/udp" // 0' <<<"$C")" 0 "02: none of 3 real port unreachables (quoting UDP) arrives"
is "$(hits "$ID")" 3 "02: hits == 3"
C=$(icmp_capture crafted 3 3 tcp 2)
is "$(jq -r '."3/3/tcp" // 0' <<<"$C")" 0 "02: neither of 2 crafted 3/3 quoting TCP arrives"
is "$(hits "$ID")" 5 "02: hits == 5"
C=$(icmp_capture crafted 11 0 udp 1)
is "$(jq -r '."11/0/udp" // 0' <<<"$C")" 1 "02: a time exceeded (type 11) still arrives"
is "$(ping_ns 3)" 3 "02: pings still answered"
is "$(hits "$ID")" 5 "02: hits still 5"
expect_dropped "$D" 5 "02: dropped grew by 5"

# ---------------------------------------------------------------------------------------------
# 04 and 05: destination unreachable quoting UDP only (05 relies on the defaults: drop, enabled).

for f in 04-dest-unreachable-inner-udp.json 05-dns-errors.json; do
        n=${f%%-*}
        ID=$(load "$f")
        ok $? "$n imported (id $ID)"
        jq_ok "$n as stored: icmp type 3, inner udp, any inner address, drop, enabled" \
              '.icmp_type == 3 and .inner_protocol == "udp" and .inner_dst_ip == "" and
               .action == "drop" and .enabled' "$(rule "$ID")"
        D=$(stat_of .dropped)
        C=$(icmp_capture port_unreachables 3)
        is "$(jq -r '."3/3/udp" // 0' <<<"$C")" 0 \
           "$n: none of 3 real port unreachables (quoting UDP) arrives"
        is "$(hits "$ID")" 3 "$n: hits == 3"
        C=$(icmp_capture crafted 3 3 tcp 2)
        is "$(jq -r '."3/3/tcp" // 0' <<<"$C")" 2 "$n: both crafted 3/3 quoting TCP arrive"
        is "$(hits "$ID")" 3 "$n: hits still 3"
        expect_dropped "$D" 3 "$n: dropped grew by 3"
done

# ---------------------------------------------------------------------------------------------
# 03: source quench.

ID=$(load 03-source-quench.json)
ok $? "03 imported (id $ID)"
D=$(stat_of .dropped)
C=$(icmp_capture crafted 4 0 udp 2)
is "$(jq -r '."4/0/udp" // 0' <<<"$C")" 0 "03: neither of 2 crafted source quenches arrives"
is "$(hits "$ID")" 2 "03: hits == 2"
C=$(icmp_capture port_unreachables 2)
is "$(jq -r '."3/3/udp" // 0' <<<"$C")" 2 "03: port unreachables (type 3) still arrive"
is "$(hits "$ID")" 2 "03: hits still 2"
expect_dropped "$D" 2 "03: dropped grew by 2"

# ---------------------------------------------------------------------------------------------
# 06: time exceeded quoting UDP (traceroute), not quoting TCP.

ID=$(load 06-udp-traceroute.json)
ok $? "06 imported (id $ID)"
D=$(stat_of .dropped)
C=$(icmp_capture crafted 11 0 udp 2)
is "$(jq -r '."11/0/udp" // 0' <<<"$C")" 0 "06: neither of 2 time exceeded quoting UDP arrives"
is "$(hits "$ID")" 2 "06: hits == 2"
C=$(icmp_capture crafted 11 0 tcp 2)
is "$(jq -r '."11/0/tcp" // 0' <<<"$C")" 2 "06: both time exceeded quoting TCP arrive"
C=$(icmp_capture port_unreachables 2)
is "$(jq -r '."3/3/udp" // 0' <<<"$C")" 2 "06: port unreachables quoting UDP (type 3) arrive"
is "$(hits "$ID")" 2 "06: hits still 2"
expect_dropped "$D" 2 "06: dropped grew by 2"

# ---------------------------------------------------------------------------------------------
# 08-15: one TCP port each. A connect to it dies with its SYN; other ports connect.

i=0
for f in 08-telnet.json 09-rpc.json 10-smb.json 11-netbios.json 12-mssql.json 13-mysql.json \
         14-rdp.json 15-vnc.json; do
        n=${f%%-*}
        port=$(jq -r .dst_port "$GUARDER/$f")
        ID=$(load "$f")
        ok $? "$n imported (id $ID)"
        jq_ok "$n as stored: tcp, dst_port $port, drop" \
              '.protocol == "tcp" and .dst_port == $p and .action == "drop" and .enabled' \
              "$(rule "$ID")" --arg p "$port"
        D=$(stat_of .dropped)
        is "$(connect_ns "$port")" timeout "$n: TCP connect to port $port times out"
        is "$(hits "$ID")" 1 "$n: hits == 1 (the SYN)"
        other=${TCP_PORTS[$(((i + 1) % ${#TCP_PORTS[@]}))]}
        is "$(connect_ns "$OPEN_PORT") $(connect_ns "$other")" "connected connected" \
           "$n: ports $OPEN_PORT and $other still connect"
        ACCEPTED_WANT[$OPEN_PORT]=$((ACCEPTED_WANT[$OPEN_PORT] + 1))
        ACCEPTED_WANT[$other]=$((ACCEPTED_WANT[$other] + 1))
        is "$(hits "$ID")" 1 "$n: hits still 1"
        expect_dropped "$D" 1 "$n: dropped grew by 1"
        i=$((i + 1))
done

# ---------------------------------------------------------------------------------------------
# 17: SYN scan: every new connection dies; ICMP and UDP pass.

ID=$(load 17-syn-scan.json)
ok $? "17 imported (id $ID)"
jq_ok "17 as stored: tcp, flags 2 mask 2, drop" \
      '.protocol == "tcp" and .tcp_flags == 2 and .tcp_flags_mask == 2 and .action == "drop"' \
      "$(rule "$ID")"
D=$(stat_of .dropped)
is "$(connect_ns "$OPEN_PORT" 2)" "timeout timeout" "17: 2 connects to $OPEN_PORT time out"
is "$(connect_ns 23)" timeout "17: a connect to 23 times out"
is "$(hits "$ID")" 3 "17: hits == 3 (one SYN each)"
is "$(ping_ns 3)" 3 "17: pings answered"
is "$(udp_ns 5 "$UDP_PORT")" 5 "17: UDP arrives (5 of 5)"
is "$(hits "$ID")" 3 "17: hits still 3"
expect_dropped "$D" 3 "17: dropped grew by 3"

# ---------------------------------------------------------------------------------------------
# The Guarder's update (update-disable.json as Filter.Update), then Enable, Disable, Delete.

ID=$(load 07-echo-request-all.json)
ok $? "07 imported again (id $ID)"
RPATH=$FILTERS_PATH/$ID
is "$(ping_ns 3) $(hits "$ID")" "0 3" "07 again: pings dropped, hits == 3"
# a{sv} from the JSON: numbers as u, booleans as b, strings as s.
asv='with_entries(.value |= (if type == "boolean" then ["b", .]
                             elif type == "number" then ["u", .] else ["s", .] end))'
UPD=$(jq -c "$asv" "$GUARDER/update-disable.json")
guarder_id=$(jq -r .id "$GUARDER/update-disable.json")
wrong=$guarder_id
[ "$wrong" != "$ID" ] || wrong=$((ID + 1))
before=$(rule "$ID")
err=$(call_error "$RPATH" "$FILTER" Update 'a{sv}' \
        "[$(jq -c --argjson w "$wrong" '.id = ["u", $w]' <<<"$UPD")]")
like "$err" "^$PS_ERR\.InvalidFilter: field 'id' is $wrong but this is rule $ID" \
     "Update with the Guarder's id ($wrong) on rule $ID: InvalidFilter naming both ids"
# last_hit is the kernel's monotonic stamp converted per call: it may move by a microsecond.
is "$(rule "$ID" | jq -c 'del(.last_hit)')" "$(jq -c 'del(.last_hit)' <<<"$before")" \
   "the refused update changed nothing"
monitor_start
err=$(call_error "$RPATH" "$FILTER" Update 'a{sv}' \
        "[$(jq -c --argjson w "$ID" '.id = ["u", $w]' <<<"$UPD")]")
is "$err" OK "Update with update-disable.json (id $ID) succeeds"
jq_ok "after the update: disabled, the new comment, still drop, same match" \
      '.enabled == false and .comment == "Temporarily disabled" and .action == "drop" and
       .icmp_type == 8 and .hits == 3' "$(rule "$ID")"
is "$(busctl --system get-property "$PS_NAME" "$RPATH" "$FILTER" Enabled)" "b false" \
   "the rule object's Enabled is false"
is "$(ping_ns 3)" 3 "disabled: pings answered"
is "$(hits "$ID")" 3 "disabled: hits still 3 (counters survive the update)"
check "Enable()" busctl --system call "$PS_NAME" "$RPATH" "$FILTER" Enable
is "$(ping_ns 3) $(hits "$ID")" "0 6" "enabled: pings dropped, hits == 6"
check "Disable()" busctl --system call "$PS_NAME" "$RPATH" "$FILTER" Disable
is "$(ping_ns 3) $(hits "$ID")" "3 6" "disabled: pings answered, hits still 6"
check "Delete()" busctl --system call "$PS_NAME" "$RPATH" "$FILTER" Delete
monitor_stop FilterRemoved 1
is "$(rules)" "[]" "after Delete: no rules"
like "$(call_error "$RPATH" "$FILTER" Enable '' '[]')" "^org\.freedesktop\.DBus\.Error\.UnknownObject" \
     "the deleted rule's object is gone (UnknownObject)"
is "$(ping_ns 3)" 3 "after Delete: pings answered"
is "$(signals FilterChanged "[$ID,\"$RPATH\"]")" 3 \
   "FilterChanged($ID) for the update, Enable and Disable"
is "$(signals FilterRemoved "[$ID,\"$RPATH\"]")" 1 "FilterRemoved($ID) for Delete"
alive "after Delete"

# ---------------------------------------------------------------------------------------------
# What the listeners accepted: exactly the connects that were expected to pass.

kill_wait "$TCP_PID"
TCP_PID=
want=$(for p in "${!ACCEPTED_WANT[@]}"; do echo "\"$p\": ${ACCEPTED_WANT[$p]}"; done |
       paste -sd, | sed 's/^/{/; s/$/}/' | jq -cS .)
is "$(jq -cS . "$T/tcp.counts")" "$want" "the host accepted exactly the connections no rule dropped"
ok "$(daemon_alive main && echo 0 || echo 1)" "the daemon is still running and on the bus" \
   "$(daemon_log main 20)"
daemon_stop main
is "$?" 0 "the daemon exits 0 on SIGTERM"

done_testing
