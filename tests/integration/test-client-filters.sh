#!/bin/bash
# SPDX-License-Identifier: MIT
#
# packetscopectl's filter commands against the real daemon and real traffic: the Guarder's own
# rule files added as they stand, list/show/update/enable/disable/delete, export and import
# round trips, bad input (exit status and message), a dry run over a real TCP flow, a drop rule
# enforced by XDP on real UDP datagrams, and apply's confirm-or-rollback with and without a
# terminal.

set -u
. "$(dirname "$0")/lib.sh"

require_root
require ip dbus-daemon busctl jq timeout
[ -x "$PACKETSCOPED" ] || bail "no daemon at $PACKETSCOPED"
[ -x "$PACKETSCOPECTL" ] || bail "no client at $PACKETSCOPECTL"

GUARDER=$SRCDIR/tests/guarder

make_tmpdir T
bus_start "$T/bus"
daemon_start main || bail "the daemon did not start: $(daemon_log main)"
net_create A
attach "$A_IF" generic || bail "cannot guard $A_IF: $(daemon_log main)"

# ctl ARGS...: the client, bounded; stdout in $OUT, stderr in $ERR, status returned. Standard
# input is $CTL_STDIN (default /dev/null: not a terminal, whoever runs the test).
ctl() {
        timeout 30 "$PACKETSCOPECTL" --no-ask-password "$@" <"${CTL_STDIN:-/dev/null}" \
                >"$T/out" 2>"$T/err"
        local status=$?
        OUT=$(cat "$T/out")
        ERR=$(cat "$T/err")
        return "$status"
}

# exits WANT DESCRIPTION: the status of the command just run ($?) is WANT; stderr explains.
exits() {
        local status=$? want=$1 desc=$2
        if [ "$status" -eq "$want" ]; then
                ok 0 "$desc"
        else
                ok 1 "$desc" "exit status $status, want $want" "stderr: $ERR" "stdout: $OUT"
        fi
}

# unlike TEXT REGEX DESCRIPTION: TEXT does not match the extended REGEX.
unlike() {
        ! grep -Eq -- "$2" <<<"$1"
        ok $? "$3" "text: $1"
}

# rules: filter list --json, without what traffic and time change.
rules() {
        timeout 30 "$PACKETSCOPECTL" filter list --json=short </dev/null |
                jq -c 'map(del(.hits, .bytes, .last_hit_usec)) | sort_by(.id)'
}

rules_are() {
        [ "$(rules)" = "$1" ]
}

# ---------------------------------------------------------------------------------------------
# A real TCP flow to port 23, made before any rule could drop it: one connection attempt from
# the namespace to the closed port on the host side (a SYN, answered by a RST).
in_ns "$A_NS" bash -c "exec 3<>/dev/tcp/$A_H4/23" >/dev/null 2>&1
has_telnet_flow() {
        list_flows | jq -e --arg s "$A_N4" \
                'any(.[]; .protocol == "tcp" and .dport == 23 and .src == $s)' >/dev/null
}
wait_until 10 has_telnet_flow
ok $? "a TCP connection attempt to port 23 is tracked"
is "$(ping_received "$A_NS" "$A_H4" 2)" 2 "2 echo requests from the namespace, 2 replies"
has_pings() {
        list_icmp | jq -e --arg s "$A_N4" 'any(.[]; .type == 8 and .src == $s and .packets == 2)' \
                >/dev/null
}
wait_until 10 has_pings
ok $? "the echo requests are tracked"

# ---------------------------------------------------------------------------------------------
# The Guarder's README examples, each added as it stands.
files=("$GUARDER"/[0-9][0-9]-*.json)
# The checks below know these files by position (a precondition, not a check of the client).
[ "${#files[@]}" -eq 17 ] || bail "expected the Guarder's 17 example rules, found ${#files[@]}"
id=0
for f in "${files[@]}"; do
        ctl filter add --rule-file "$f"
        exits 0 "filter add --rule-file $(basename "$f")"
        is "$OUT" "Added filter $id ($PS_PATH/filters/$id)" "it prints the id $id and the path"
        id=$((id + 1))
done

ctl filter list --json=short
exits 0 "filter list --json"
L=$OUT
is "$(jq length <<<"$L")" "${#files[@]}" "filter list --json lists every rule"
# The rule's JSON: what matches anything is left out, times say their unit.
is "$(jq -c '[.[0] | keys_unsorted[]]' <<<"$L")" \
   '["id","path","rule_type","protocol","icmp_type","icmp_code","action","enabled","log","comment","priority","timeout_sec","expires_usec","created_usec","hits","bytes","last_hit_usec"]' \
   "its rows have the keys of a rule that sets protocol, ICMP type and code"
# Every field each file sets comes back as set, ports as numbers; "" (any address) is left out.
jq_ok "each rule has the fields its file gave (in file order)" \
      '$files[0] as $files | [range(0; $files | length) as $i | $files[$i] | to_entries[] |
        . as $e | $list[$i] as $rule |
        if $e.value == "" then ($rule | has($e.key) | not)
        else $rule[$e.key] == $e.value end] | all' \
      "$L" --slurpfile files <(jq -s . "${files[@]}") --argjson list "$L"
jq_ok "filter list --json: the telnet rule has dst_port 23, action drop, protocol tcp" \
      '.[7] | .id == 7 and .dst_port == 23 and .action == "drop" and .protocol == "tcp" and
       .rule_type == "tcp" and .enabled and (has("src_port") | not) and (has("src_ip") | not)' "$L"
jq_ok "the 5th example (no action, no enabled) is a drop rule, enabled" \
      '.[4] | .action == "drop" and .enabled == true and .icmp_type == 3 and
       (has("icmp_code") | not) and .inner_protocol == "udp" and (has("inner_dst_ip") | not)' "$L"
jq_ok "the 1st example is disabled, type 8 code 0" \
      '.[0] | .enabled == false and .icmp_type == 8 and .icmp_code == 0' "$L"
jq_ok "the SYN-scan example has tcp_flags 2 and mask 2" \
      '.[16] | .tcp_flags == 2 and .tcp_flags_mask == 2 and .protocol == "tcp"' "$L"
jq_ok "rules start with no hits and were created just now" \
      'all(.[]; .hits == 0 and .bytes == 0 and .last_hit_usec == 0 and .created_usec > 0)' "$L"

ctl filter list
exits 0 "filter list"
like "$OUT" "^ID +ACTION +PROTO +SOURCE +DESTINATION +MATCH +HITS +BYTES +LAST HIT +EXPIRES +EN +COMMENT$" \
     "filter list has its columns"
like "$OUT" "^ +7 +drop +tcp +\* +\*:23 +- +0 +0 B +never +- +yes +Block Telnet \(insecure remote access\)$" \
     "filter list shows the telnet rule"
like "$OUT" "^ +0 +drop +icmp +\* +\* +echo-request \(8\), code 0 +0 +0 B +never +- +no +Block all ICMP ping" \
     "filter list shows the disabled ping rule with its type and code"
like "$OUT" "^ +4 +drop +icmp +\* +\* +dest-unreachable \(3\), inner udp +0 " \
     "filter list summarizes the inner protocol"
like "$OUT" "^16 +drop +tcp +\* +\* +flags S/S " "filter list shows TCP flags as flags/mask"
like "$OUT" "^17 filters listed\.$" "filter list ends with the count"
list_out=$OUT
ctl filter
is "$OUT" "$list_out" "'filter' alone lists the rules"
# Comments are cut to what the terminal (here $COLUMNS) leaves, but never below 16 columns.
COLUMNS=130 ctl filter list
like "$OUT" "^ +7 +drop .* yes +Block Telnet \(insec…$" "with 130 columns, long comments are cut to fit"
is "$(jq -R length <<<"$OUT" | sort -n | tail -1)" 130 "with 130 columns, no line is longer"
COLUMNS=80 ctl filter list
is "$(jq -R 'select(length > 80)' <<<"$OUT")" "" "with 80 columns, no line is longer"
is "$(head -1 <<<"$OUT" | tr -s ' ')" "ID ACTION PROTO SOURCE DESTINATION MATCH" \
   "with 80 columns the expiry (no rule has one), bytes, last hit, hits, EN and, as a comment would get less than 16 characters, the comment are left out"
COLUMNS=100 ctl filter list
is "$(head -1 <<<"$OUT" | tr -s ' ')" "ID ACTION PROTO SOURCE DESTINATION MATCH HITS EN COMMENT" \
   "with 100 columns only the bytes and the last hit are left out"
like "$OUT" "^ +7 +drop .* 0 +yes +Block Telnet \(i…$" "and the comments keep 16 characters"
is "$(jq -R length <<<"$OUT" | sort -n | tail -1)" 100 "with 100 columns, the longest line is 100 wide"
# Colour: drop actions red, disabled rules grey; only on a terminal, or with --color=always;
# never with NO_COLOR.
ctl filter list --color=always
like "$OUT" $'^ +7 +\e\\[0;1;31mdrop\e\\[0m +tcp ' "--color=always: drop in red"
like "$OUT" $'^ +0 +\e\\[0;1;31mdrop\e\\[0m .* \e\\[0;38;5;245mno\e\\[0m +Block all ICMP' \
     "--color=always: a disabled rule's EN in grey"
is "$(head -1 <<<"$OUT" | tr -s ' ')" "ID ACTION PROTO SOURCE DESTINATION MATCH HITS BYTES LAST HIT EXPIRES EN COMMENT" \
   "the colour sequences take no width: nothing is left out for them"
ctl filter list
is "$(grep -c $'\e' <<<"$OUT")" 0 "not a terminal: no colour"
tty_list() {
        timeout 30 script -qec "$1" /dev/null </dev/null >"$T/tty" 2>&1
        OUT=$(tr -d '\r' <"$T/tty")
}
tty_list "env PACKETSCOPE_PAGER=cat '$PACKETSCOPECTL' filter list"
like "$OUT" $'\e\\[0;1;31mdrop' "on a terminal: colour"
tty_list "env PACKETSCOPE_PAGER=cat NO_COLOR=1 '$PACKETSCOPECTL' filter list"
is "$(grep -c $'\e' <<<"$OUT")" 0 "on a terminal with NO_COLOR: no colour"
like "$OUT" "^ +7 +drop +tcp " "and the same table"
tty_list "env PACKETSCOPE_PAGER=cat '$PACKETSCOPECTL' filter list --color=never"
is "$(grep -c $'\e' <<<"$OUT")" 0 "--color=never: no colour"
ctl filter show 7
exits 0 "filter show 7"
like "$OUT" "Destination port: +23$" "filter show prints the destination port"
like "$OUT" "Object path: +$PS_PATH/filters/7$" "filter show prints the object path"
like "$OUT" "Comment: +Block Telnet" "filter show prints the comment"
ctl filter show 7 --json=short
jq_ok "filter show --json is the rule's List row" '. == $row' "$OUT" \
      --argjson row "$(jq -c '.[7]' <<<"$L")"
ctl filter show 99
exits 1 "filter show of a rule that does not exist fails"
is "$ERR" "packetscopectl: no filter 99; see packetscopectl filter list" "it names the id"

# ---------------------------------------------------------------------------------------------
# Changes: enable, the Guarder's PUT body as an update, disable, field options, delete.
ctl filter enable 0
exits 0 "filter enable 0"
ctl filter show 0 --json=short
jq_ok "rule 0 is enabled" '.enabled == true' "$OUT"
ctl filter update 0 --rule "$(cat "$GUARDER/update-disable.json")"
exits 0 "filter update 0 --rule \"\$(cat update-disable.json)\""
ctl filter show 0 --json=short
jq_ok "the update disabled rule 0 and set its comment, the rest unchanged" \
      '.enabled == false and .action == "drop" and .comment == "Temporarily disabled" and
       .icmp_type == 8 and .icmp_code == 0' "$OUT"
is "$(busctl --system get-property "$PS_NAME" "$PS_PATH/filters/0" org.packetscope.Guarder1.Filter Enabled)" \
   "b false" "the Filter object agrees: Enabled false"
ctl filter update 1 --rule-file "$GUARDER/update-disable.json"
exits 1 "the same body (id 0) on rule 1 fails"
like "$ERR" "^packetscopectl: .*'id'" "the daemon says the id cannot change"
unlike "$ERR" "InvalidFilter|org\.packetscope" "no bus error name in the message"

ctl filter disable 7
exits 0 "filter disable 7"
ctl filter list
like "$OUT" "^ +7 +drop +tcp .* no +Block Telnet" "filter list shows rule 7 disabled"
ctl filter enable 7
exits 0 "filter enable 7"
ctl filter list --json=short
jq_ok "rule 7 is enabled again" '.[] | select(.id == 7) | .enabled' "$OUT"

ctl filter update 8 --comment "RPC, changed" --priority -5 --dst-port 130-140
exits 0 "filter update 8 with field options"
ctl filter show 8 --json=short
jq_ok "rule 8 has the new comment, priority and port range" \
      '.comment == "RPC, changed" and .priority == -5 and .dst_port == "130-140" and
       .rule_type == "tcp" and .action == "drop"' "$OUT"

ctl filter delete 16
exits 0 "filter delete 16"
ctl filter list --json=short
jq_ok "rule 16 is gone, 16 rules left" 'length == 16 and all(.[]; .id != 16)' "$OUT"
ctl filter delete 16
exits 1 "deleting it again fails"
is "$ERR" "packetscopectl: no filter 16; see packetscopectl filter list" \
   "delete: the same words as show"
ctl filter enable 16
exits 1 "enabling a deleted rule fails"
is "$ERR" "packetscopectl: no filter 16; see packetscopectl filter list" \
   "enable: the same words as show and delete"

# ---------------------------------------------------------------------------------------------
# Export, then import --replace: the same rules.
ctl filter export
exits 0 "filter export"
printf '%s\n' "$OUT" >"$T/export.json"
jq_ok "filter export prints a JSON array of the 16 rules" 'type == "array" and length == 16' "$OUT"
jq_ok "the export has the Guarder's field names and numeric ports" \
      '.[] | select(.id == 7) | .dst_port == 23 and .rule_type == "tcp" and .action == "drop"' "$OUT"
before=$(rules)
ctl filter import --replace "$T/export.json"
exits 0 "filter import --replace of the export"
is "$OUT" "Replaced the rule set with 16 rules: $(jq -r '[.[].id | tostring] | join(" ")' "$T/export.json")." \
   "it says what it did and prints the ids, which a replace keeps"
after=$(rules)
strip='map(del(.created_usec))'
is "$(jq -c "$strip" <<<"$after")" "$(jq -c "$strip" <<<"$before")" \
   "the rules after the round trip equal those before (created aside)"
ctl filter export
strip='map(del(.created_usec, .hits, .bytes, .last_hit_usec))'
is "$(jq -c "$strip" <<<"$OUT")" "$(jq -c "$strip" "$T/export.json")" \
   "exporting again gives the same document (created and counters aside)"
CTL_STDIN=$GUARDER/08-telnet.json ctl filter import -
exits 0 "filter import - (standard input) merges one rule"
like "$OUT" "^Added 1 rule: [0-9]+\.$" "it says what it added"
new=$(sed -n 's/^Added 1 rule: \([0-9]*\)\.$/\1/p' <<<"$OUT")
jq_ok "it got a new id" '. >= 17' "$new"
is "$ERR" "packetscopectl: warning: rule $new is an exact duplicate of rule 7 (kept; --duplicates=skip leaves such rules out)" \
   "it warns that the rule repeats rule 7 exactly"
set_before_skip=$(rules)
CTL_STDIN=$GUARDER/08-telnet.json ctl filter import --duplicates=skip -
exits 0 "filter import --duplicates=skip of the same rule"
is "$OUT" "Added no rules (every rule was a duplicate)." "it says it added nothing"
is "$ERR" "packetscopectl: skipped a rule that is an exact duplicate of rule 7" "it says what it skipped"
is "$(rules)" "$set_before_skip" "the set is unchanged"
ctl filter import --json=short "$GUARDER/09-rpc.json"
jq_ok "filter import --json prints the ids as a JSON array" 'type == "array" and length == 1' "$OUT"
new2=$(jq '.[0]' <<<"$OUT")
ctl filter delete "$new" && ctl filter delete "$new2"
exits 0 "the merged rules are deleted again"
is "$(rules)" "$after" "the set is back to the imported one"

# ---------------------------------------------------------------------------------------------
# Bad input: nothing changes, the exit status and the message say what was wrong.
set_now=$(rules)
ctl filter add --rule '{"rule_type": "tcp", "dst_port": 23, "colour": "red"}'
exits 1 "an unknown field is refused by the daemon (exit 1)"
like "$ERR" "^packetscopectl: unknown field 'colour'; accepted: rule_type" \
     "it names the field and what is accepted, without the bus error's name"
ctl filter add --rule '{"rule_type": "tcp", "dst_port": 70000}'
exits 1 "dst_port 70000 in JSON is refused by the daemon (exit 1)"
is "$ERR" "packetscopectl: field 'dst_port': 70000 is out of range; accepted: 0-65535 (0 = any) or a range \"LO-HI\"" \
     "it prints the daemon's range"
ctl filter add --rule-type tcp --dst-port 70000
exits 2 "--dst-port 70000 is a usage error (exit 2)"
like "$ERR" "invalid value '70000' for --dst-port; accepted: a port 0-65535" \
     "it names the option, the value and what is accepted"
ctl filter add --rule '{"rule_type": tcp}'
exits 2 "malformed JSON in --json is a usage error (exit 2)"
like "$ERR" "not valid JSON: line 1 column [0-9]+" "it says where"
ctl filter add --rule '{"rule_type": "tcp", "dst_port": {"from": 1}}'
exits 2 "a nested value is a usage error (exit 2)"
like "$ERR" "field 'dst_port' is an object" "it names the key"
ctl filter add --rule '[{"rule_type": "tcp"}]'
exits 2 "an array where one rule belongs is a usage error"
ctl filter add --rule '{"rule_type": "tcp", "dst_port": 1.5}'
exits 1 "a port with a fraction is refused by the daemon"
like "$ERR" "^packetscopectl: field 'dst_port'" "it names the field"
ctl filter import "$T/no-such-file.json"
exits 1 "filter import of a missing file fails (exit 1)"
like "$ERR" "cannot open '$T/no-such-file.json': No such file or directory" "it names the file"
printf '[{"rule_type": "udp",]\n' >"$T/broken.json"
ctl filter import "$T/broken.json"
exits 1 "filter import of malformed JSON fails (exit 1)"
like "$ERR" "^packetscopectl: the import is not valid JSON: line 1 column [0-9]+" \
     "the daemon's message says where"
ctl filter apply "$T/broken.json" --confirm 5
exits 1 "filter apply of malformed JSON fails (exit 1)"
like "$ERR" "is not valid JSON: line 1 column [0-9]+" "it says where"
ctl filter apply "$T/no-such-file.json" --confirm 5
exits 1 "filter apply of a missing file fails (exit 1)"
ctl filter apply "$T/export.json"
exits 2 "filter apply without --confirm is a usage error"
like "$ERR" "needs --confirm" "it says what is missing"
ctl filter apply "$T/export.json" --confirm 3601
exits 2 "--confirm 3601 is a usage error"
like "$ERR" "accepted: an integer from 1 to 3600" "it gives the range"
ctl filter show seven
exits 2 "a filter id that is not a number is a usage error"
ctl filter frobnicate
exits 2 "an unknown filter command is a usage error"
ctl filter list --dst-port 23
exits 2 "a field option on filter list is a usage error"
like "$ERR" "option --dst-port does not apply to 'filter list'" "it names the option"
ctl filter add
exits 2 "filter add without a rule is a usage error"
is "$(rules)" "$set_now" "none of the bad input changed the rules"

# ---------------------------------------------------------------------------------------------
# A dry run over the tracked flows: the TCP attempt to port 23 made at the start.
ctl filter test --dst-port 23 --rule-type tcp
exits 0 "filter test --dst-port 23 --rule-type tcp"
like "$OUT" "^PROTO +SOURCE +DESTINATION +STATE +FLAGS +PACKETS +BYTES +PPS +RATE +LAST +LINK" \
     "it prints the connections table"
like "$OUT" "^tcp +$A_N4:[0-9]+ +$A_H4:23 +syn +S +[0-9]+ .* $A_IF\$" \
     "it lists the flow to port 23"
ctl filter test --dst-port 23 --rule-type tcp --json=short
exits 0 "filter test --json=short"
jq_ok "the JSON rows hold the flow to port 23, and only flows to port 23" \
      'length >= 1 and all(.[]; .protocol == "tcp" and .dport == 23) and
       any(.[]; .src == $s and .dst == $d)' "$OUT" --arg s "$A_N4" --arg d "$A_H4"
ctl filter test --rule '{"rule_type": "tcp", "dst_port": 23}' --json=short
jq_ok "filter test --rule RULE gives the same rows" 'any(.[]; .dport == 23 and .src == $s)' \
      "$OUT" --arg s "$A_N4"
ctl filter test --rule-type icmp --icmp-type 8
exits 0 "filter test --rule-type icmp --icmp-type 8"
like "$OUT" "^TYPE +CODE +SOURCE +DESTINATION +PACKETS +BYTES +LAST +LINK +QUOTED" \
     "ICMP matches come in the icmp table"
like "$OUT" "^echo-request \(8\) +0 +$A_N4 +$A_H4 +2 " "it lists the echo requests"
CTL_STDIN=$GUARDER/16-ping-request.json ctl filter test --rule-file - --json
jq_ok "filter test --rule-file - reads the rule from standard input; --json alone prints JSON" \
      'length >= 1 and all(.[]; .type == 8 and .code == 0)' "$OUT"
ctl filter test --rule-type tcp --dst-port 24
exits 0 "filter test of a rule nothing matches"
like "$OUT" "No tracked connection or ICMP entry matches the rule" "it says so"
# The old spellings still work, with a warning on stderr.
ctl filter test --json '{"rule_type": "tcp", "dst_port": 24}'
exits 0 "filter test --json RULE (the old spelling)"
is "$ERR" "packetscopectl: warning: '--json RULE' is deprecated; give the rule with --rule JSON or --rule-file FILE (--json selects JSON output)" \
   "it warns that --json RULE is deprecated"
like "$OUT" "No tracked connection or ICMP entry matches the rule" "and prints the table, not JSON"
ctl filter test --rule-type tcp --dst-port 24 --json-output
exits 0 "filter test --json-output (the old spelling)"
is "$ERR" "packetscopectl: warning: --json-output is deprecated; use --json" "it warns"
is "$OUT" "[]" "and prints JSON (one line: the output is not a terminal)"
ctl filter list --rule '{"rule_type": "tcp"}'
exits 2 "--rule with filter list is a usage error"
like "$ERR" "option --rule does not apply to 'filter list'" "it names the option"
ctl filter add --rule '{"rule_type": "tcp"}' --rule-file "$GUARDER/08-telnet.json"
exits 2 "--rule and --rule-file together are a usage error"

# ---------------------------------------------------------------------------------------------
# Enforcement: a drop rule for UDP port 5555 stops datagrams from the namespace in XDP; 5556
# still gets through. Listeners on the host side count what reaches them.
ctl filter add --rule-type udp --dst-port 5555 --comment "drop UDP 5555" --json=short
exits 0 "filter add --rule-type udp --dst-port 5555"
DROP_ID=$(jq -r .id <<<"$OUT")
jq_ok "--json prints the id and the path" '.path == $p' "$OUT" \
      --arg p "$PS_PATH/filters/$DROP_ID"
# One listener for both ports; the datagrams to 5555 go first, so once all those to 5556 have
# arrived, any of 5555's that got through would have arrived too.
SENT=5
udp_recv_start "$A_H4" 5555:0 5556:$SENT || bail "the UDP listener did not start"
must "$SENT datagrams of 60 bytes to port 5555" traffic_ns "$A_NS" udp-send "$A_H4" 5555 "$SENT" 60
must "$SENT datagrams of 60 bytes to port 5556" traffic_ns "$A_NS" udp-send "$A_H4" 5556 "$SENT" 60
udp_recv_result >"$T/got"
is "$(jq -r '.["5555"]' "$T/got")" 0 "the listener on port 5555 got nothing: XDP dropped it all"
is "$(jq -r '.["5556"]' "$T/got")" "$SENT" "the listener on port 5556 got all $SENT"
ctl filter list --json=short
jq_ok "the drop rule counted $SENT hits of 102 bytes each, and a last hit" \
      '.[] | select(.id == $id) | .hits == $n and .bytes == $n * 102 and .last_hit_usec > 0' \
      "$OUT" --argjson id "$DROP_ID" --argjson n "$SENT"
jq_ok "no other rule counted anything" 'all(.[] | select(.id != $id); .hits == 0)' "$OUT" \
      --argjson id "$DROP_ID"
ctl filter list
like "$OUT" "^ *$DROP_ID +drop +udp +\* +\*:5555 +- +$SENT +510 B +(now|[0-9]+s ago) +- +yes +drop UDP 5555$" \
     "filter list shows the hits, the bytes and the last hit, and no expiry"
like "$OUT" "^ID +ACTION +PROTO +SOURCE +DESTINATION +MATCH +HITS +BYTES +LAST HIT +EXPIRES +EN +COMMENT$" \
     "filter list has an EXPIRES column"
ctl filter add --rule-type udp --dst-port 6001 --action count --timeout 10min --comment "timed" --json=short
TIMED_ID=$(jq -r .id <<<"$OUT")
ctl filter list
like "$OUT" "^ *$TIMED_ID +count +udp +\* +\*:6001 +- +0 +0 B +never +in (9min [0-9]+s|10min) +yes +timed$" \
     "filter list shows when a timed rule expires, in one time-span style"
ctl filter show "$TIMED_ID"
like "$OUT" "Timeout: +10min, expires .* \(in (9min [0-9]+s|10min)\)$" "filter show too"
ctl filter delete "$TIMED_ID"
exits 0 "the timed rule is deleted"

# ---------------------------------------------------------------------------------------------
# apply: without a terminal and without --yes, the rules roll back at the deadline.
before=$(rules)
printf '[{"rule_type": "udp", "dst_port": 7777, "comment": "applied, unconfirmed"}]\n' >"$T/apply.json"
t0=$(date +%s%N)
ctl filter apply "$T/apply.json" --confirm 3
exits 0 "filter apply --confirm 3 with standard input not a terminal"
like "$OUT" "^Applied 1 rule \(merge\) as $PS_PATH/filters/transaction/[0-9]+\.$" \
     "it prints the transaction"
like "$OUT" "They roll back at .* \(in 3s\) unless confirmed" "it prints the deadline"
like "$ERR" "not a terminal.*" "it says it does not confirm"
TX=$(grep -Eo "$PS_PATH/filters/transaction/[0-9]+" <<<"$OUT" | head -1)
is "$(tail -n 1 <<<"$ERR")" "  packetscopectl filter confirm ${TX##*/}" "it says how to confirm"
is "$(busctl --system get-property "$PS_NAME" "$TX" org.packetscope.Guarder1.Transaction Deadline >/dev/null 2>&1 && echo pending)" \
   pending "the transaction is pending"
ctl filter list --json=short
jq_ok "meanwhile the applied rule is in the set" 'any(.[]; .comment == "applied, unconfirmed")' "$OUT"
wait_until 30 rules_are "$before"
ok $? "the set rolls back to what it was" "$(rules)"
elapsed_ms=$((($(date +%s%N) - t0) / 1000000))
# Not before the deadline (3 s after the call, which came after t0); by the deadline plus a
# slack generous enough for a loaded machine.
if [ "$elapsed_ms" -ge 3000 ] && [ "$elapsed_ms" -le 20000 ]; then
        ok 0 "it rolled back at the deadline, 3 s after the call ($elapsed_ms ms)"
else
        ok 1 "it rolled back at the deadline, 3 s after the call" "took $elapsed_ms ms"
fi

# filter rollback and filter confirm end a pending apply from another command.
ctl filter apply "$T/apply.json" --confirm 120
exits 0 "filter apply --confirm 120"
TX=$(grep -Eo "$PS_PATH/filters/transaction/[0-9]+" <<<"$OUT" | head -1)
ctl filter rollback
exits 0 "filter rollback (the pending transaction)"
is "$OUT" "Rolled back: the previous rules are back." "it says the rules rolled back"
is "$(rules)" "$before" "the set is as before at once"
ctl filter rollback
exits 1 "filter rollback with nothing pending fails"
is "$ERR" "packetscopectl: no transaction is pending; see packetscopectl filter apply" \
   "it says nothing is pending"
ctl filter apply "$T/apply.json" --confirm 120
TX=$(grep -Eo "$PS_PATH/filters/transaction/[0-9]+" <<<"$OUT" | head -1)
ctl filter confirm "${TX##*/}"
exits 0 "filter confirm ${TX##*/}"
is "$OUT" "Confirmed: the new rules are kept." "it says the rules are kept"
ctl filter confirm "${TX##*/}" --json=short
exits 1 "confirming it again fails"
is "$ERR" "packetscopectl: transaction ${TX##*/} is not pending (it was confirmed or rolled back already)" \
   "it says the transaction is over"
ctl filter list --json=short
APPLIED_ID=$(jq '.[] | select(.comment == "applied, unconfirmed") | .id' <<<"$OUT")
is "$(wc -w <<<"$APPLIED_ID")" 1 "the confirmed rule is in the set once"
ctl filter delete "$APPLIED_ID"
is "$(rules)" "$before" "deleted again"

# With --yes it is confirmed at once and stays after the deadline.
ctl filter apply "$T/apply.json" --confirm 3 --yes
exits 0 "filter apply --confirm 3 --yes"
like "$OUT" "Confirmed: the new rules are kept\." "it says the rules are kept"
sleep 4
ctl filter list --json=short
jq_ok "past the deadline the applied rule is still there" \
      '[.[] | select(.comment == "applied, unconfirmed")] | length == 1' "$OUT"
APPLIED_ID=$(jq '.[] | select(.comment == "applied, unconfirmed") | .id' <<<"$OUT")
ctl filter delete "$APPLIED_ID"
exits 0 "the applied rule can be deleted"

# apply --replace of an export: the fields only Import takes are left out, the same rules
# come back (with new ids).
ctl filter export
printf '%s\n' "$OUT" >"$T/export2.json"
ctl filter apply "$T/export2.json" --replace --confirm 3 --yes --json=short
exits 0 "filter apply --replace --yes of an export"
jq_ok "--json prints the transaction, its deadline and confirmed: true" \
      '(.transaction | startswith($p)) and .deadline_usec > 0 and .confirmed == true' "$OUT" \
      --arg p "$PS_PATH/filters/transaction/"
ctl filter export
strip='map(del(.id, .created_usec, .expires_usec, .hits, .bytes, .last_hit_usec)) | sort_by(.comment)'
is "$(jq -c "$strip" <<<"$OUT")" "$(jq -c "$strip" "$T/export2.json")" \
   "the set holds the same rules as before"

# On a terminal: "y" keeps the rules at once, "n" rolls back at once, no answer rolls back at
# the deadline. script(1) gives the client a terminal.
if command -v script >/dev/null 2>&1; then
        tty_apply() {
                local input=$1 confirm=$2
                shift 2
                ( eval "$input" ) | timeout 30 script -qec \
                        "'$PACKETSCOPECTL' --no-ask-password filter apply '$T/apply.json' --confirm $confirm $*" \
                        /dev/null >"$T/tty" 2>&1
                local status=$?
                OUT=$(tr -d '\r' <"$T/tty")
                ERR=$OUT
                return "$status"
        }
        before=$(rules)
        t0=$(date +%s%N)
        tty_apply "printf 'y\n'" 20
        exits 0 "on a terminal, answering y"
        like "$OUT" "Keep the new rules\? \[y/N\] \(rolling back in 20s\)" "it asks, with the time left"
        like "$OUT" "Confirmed: the new rules are kept\." "it confirms"
        elapsed_ms=$((($(date +%s%N) - t0) / 1000000))
        ok "$([ "$elapsed_ms" -lt 10000 ] && echo 0 || echo 1)" "at once ($elapsed_ms ms), not at the deadline"
        ctl filter list --json=short
        jq_ok "the applied rule stays" 'any(.[]; .comment == "applied, unconfirmed")' "$OUT"
        APPLIED_ID=$(jq '.[] | select(.comment == "applied, unconfirmed") | .id' <<<"$OUT")
        ctl filter delete "$APPLIED_ID"
        is "$(rules)" "$before" "deleted again"

        t0=$(date +%s%N)
        tty_apply "printf 'n\n'" 20
        exits 1 "on a terminal, answering n (exit 1: not kept)"
        like "$OUT" "Rolled back: the previous rules are back\." "it rolls back"
        elapsed_ms=$((($(date +%s%N) - t0) / 1000000))
        ok "$([ "$elapsed_ms" -lt 10000 ] && echo 0 || echo 1)" "at once ($elapsed_ms ms)"
        is "$(rules)" "$before" "the set is as before"

        t0=$(date +%s%N)
        tty_apply "sleep 5" 2
        exits 1 "on a terminal, no answer (exit 1: not kept)"
        like "$OUT" "rolling back in 2s" "it asked"
        like "$OUT" $'\e\\[KKeep the new rules\\? \\[y/N\\] \\(rolling back in 1s\\)' \
             "the prompt counts down in place"
        like "$OUT" "(No answer in time|rolled back)" "it says it rolled back"
        elapsed_ms=$((($(date +%s%N) - t0) / 1000000))
        ok "$([ "$elapsed_ms" -ge 2000 ] && echo 0 || echo 1)" "not before the deadline ($elapsed_ms ms)"
        is "$(rules)" "$before" "the set is as before"
else
        skip "apply on a terminal" "script(1) is not installed"
fi

# ---------------------------------------------------------------------------------------------
# One shape of a rule: add -> show --json -> list --json -> export -> import into a fresh
# daemon -> show --json give the same JSON (jq -S), and it is the shape the manual gives. The
# third rule is written with every old spelling of "any"; the path is where a rule lives on the
# bus, not one of its fields, so the export has none.
shape_rules=(
        '{"rule_type": "tcp", "src_ip": "198.51.100.0/24", "src_port": 1234, "dst_port": "8000-8999", "comment": "Prüfung — ✓ 検査"}'
        '{"rule_type": "icmp", "protocol": "icmp", "dst_ip": "192.0.2.0/24", "icmp_type": 3, "icmp_code": 3, "action": "count", "comment": "port unreachable"}'
        '{"rule_type": "basic", "protocol": "any", "src_ip": "", "dst_ip": "203.0.113.7", "src_port": 0, "dst_port": "any", "icmp_type": 255, "inner_protocol": "", "comment": "any protocol"}'
)
# Written from packetscopectl(1) JSON OUTPUT, without id, path and created_usec.
shape_want=(
        '{"action":"drop","bytes":0,"comment":"Prüfung — ✓ 検査","dst_port":"8000-8999","enabled":true,"expires_usec":0,"hits":0,"last_hit_usec":0,"log":true,"priority":0,"protocol":"tcp","rule_type":"tcp","src_ip":"198.51.100.0/24","src_port":1234,"timeout_sec":0}'
        '{"action":"count","bytes":0,"comment":"port unreachable","dst_ip":"192.0.2.0/24","enabled":true,"expires_usec":0,"hits":0,"icmp_code":3,"icmp_type":3,"last_hit_usec":0,"log":true,"priority":0,"protocol":"icmp","rule_type":"icmp","timeout_sec":0}'
        '{"action":"drop","bytes":0,"comment":"any protocol","dst_ip":"203.0.113.7","enabled":true,"expires_usec":0,"hits":0,"last_hit_usec":0,"log":true,"priority":0,"rule_type":"basic","timeout_sec":0}'
)
shape_ids=()
declare -A shape_show
for i in "${!shape_rules[@]}"; do
        ctl filter add --rule "${shape_rules[$i]}" --json=short
        exits 0 "shape: add rule $i"
        id=$(jq '.id' <<<"$OUT")
        shape_ids+=("$id")
        ctl filter show "$id" --json=short
        shape_show[$id]=$(jq -S -c . <<<"$OUT")
        is "$(jq -S -c 'del(.id, .path, .created_usec)' <<<"$OUT")" "$(jq -S -c . <<<"${shape_want[$i]}")" \
           "shape: show --json of rule $i is the documented shape"
        is "$(jq -r '.path' <<<"$OUT")" "$PS_PATH/filters/$id" "shape: and carries its path"
        ctl filter list --json=short
        is "$(jq -S -c --argjson id "$id" '.[] | select(.id == $id)' <<<"$OUT")" "${shape_show[$id]}" \
           "shape: list --json prints rule $i as show does"
done
ctl filter export
ids_json=$(printf '%s\n' "${shape_ids[@]}" | jq -s -c .)
jq -c --argjson ids "$ids_json" '[.[] | select(.id as $i | $ids | index($i))]' <<<"$OUT" >"$T/shape.json"
for id in "${shape_ids[@]}"; do
        is "$(jq -S -c --argjson id "$id" '.[] | select(.id == $id)' "$T/shape.json")" \
           "$(jq -S -c 'del(.path)' <<<"${shape_show[$id]}")" \
           "shape: export prints rule $id as show does (without the path)"
done
daemon_stop main
daemon_start fresh || bail "the fresh daemon did not start: $(daemon_log fresh)"
ctl filter list --json=short
is "$OUT" "[]" "shape: the fresh daemon has no rules"
ctl filter import --replace "$T/shape.json"
exits 0 "shape: the export imports into the fresh daemon"
for id in "${shape_ids[@]}"; do
        ctl filter show "$id" --json=short
        is "$(jq -S -c . <<<"$OUT")" "${shape_show[$id]}" \
           "shape: after import, show --json of rule $id is what it was"
done

done_testing
