#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Bad input over the bus: every refusal carries the right error name and a text that says what
# was wrong and what is accepted; oversized and invalid messages are refused without harm; and
# after all of it the same daemon process still answers correctly.
#
# The calls go through rawbus.py, which reports the error name (busctl prints only the text),
# sends strings larger than a command line may carry, and sends bytes that are not UTF-8.

set -u
. "$(dirname "$0")/lib.sh"

require_root
require ip dbus-daemon busctl jq timeout
[ -x "$PACKETSCOPED" ] || bail "no daemon at $PACKETSCOPED"

make_tmpdir T
bus_start "$T/bus"
daemon_start main || bail "the daemon did not start: $(daemon_log main)"
net_create A
out=$(attach "$A_IF" generic 2>&1) || bail "AttachLink failed: $out"
PID=${DAEMON_PID[main]}

list() {
        call_error "$PS_CONNS_PATH" "$PS_CONNS" List 'a{sv}' "[$1]"
}
list_icmp_err() {
        call_error "$PS_CONNS_PATH" "$PS_CONNS" ListIcmp 'a{sv}' "[$1]"
}
IA="^$INVALID_ARGS: "
SORTS="accepted: bytes, packets, last_seen, first_seen, rate"
PREFIXES="accepted: 0-32 for IPv4, 0-128 for IPv6"

# Query keys and value types.
like "$(list '{"colour": ["s", "red"]}')" \
     "${IA}unknown query key 'colour'; accepted: limit, offset, sort" \
     "unknown query key: InvalidArgs listing the accepted keys"
like "$(list_icmp_err '{"port": ["q", 53]}')" "${IA}unknown query key 'port'; accepted: .*type" \
     "ListIcmp refuses 'port' (a connection key) and lists its own keys"
like "$(list '{"limit": ["s", "10"]}')" \
     "${IA}query key 'limit' has D-Bus type 's'; expected an unsigned integer" \
     "limit as a string: InvalidArgs naming the type expected"
like "$(list '{"limit": ["d", 10.0]}')" "${IA}query key 'limit' has D-Bus type 'd'" \
     "limit as a double: InvalidArgs"
like "$(list '{"limit": ["i", -5]}')" "${IA}query key 'limit' out of range; accepted: 1 to [0-9]+" \
     "limit -5: InvalidArgs with the accepted range"
like "$(list '{"sort": ["u", 1]}')" "${IA}query key 'sort' has D-Bus type 'u'; expected a string" \
     "sort as a number: InvalidArgs"
like "$(list '{"port": ["s", "http"]}')" \
     "${IA}query key 'port' has D-Bus type 's'; expected a port number" \
     "port as a string: InvalidArgs"
like "$(list '{"address": ["u", 10]}')" "${IA}query key 'address' has D-Bus type 'u'" \
     "address as a number: InvalidArgs"
like "$(list '{"limit": ["v", ["u", 5]]}')" "${IA}query key 'limit' has D-Bus type 'v'" \
     "limit as a nested variant: InvalidArgs"

# Values out of range.
like "$(list '{"limit": ["u", 0]}')" "${IA}query key 'limit' out of range; accepted: 1 to [0-9]+" \
     "limit 0: InvalidArgs with the accepted range"
like "$(list '{"limit": ["u", 1000000000]}')" \
     "${IA}query key 'limit' out of range; accepted: 1 to [0-9]+" \
     "limit 1000000000: InvalidArgs with the accepted range"
like "$(list '{"offset": ["u", 4294967295]}')" \
     "${IA}query key 'offset' out of range; accepted: 0 to [0-9]+" \
     "offset 4294967295: InvalidArgs"
like "$(list '{"sort": ["s", "size"]}')" \
     "${IA}query key 'sort' has unknown value 'size'; ${SORTS}" \
     "sort 'size': InvalidArgs listing the orders"
like "$(list '{"protocol": ["s", "tcpp"]}')" \
     "${IA}query key 'protocol' has unknown value 'tcpp'; accepted: tcp, udp" \
     "protocol 'tcpp': InvalidArgs listing the protocols"
like "$(list '{"family": ["s", "ipv5"]}')" \
     "${IA}query key 'family' has unknown value 'ipv5'; accepted: ipv4, ipv6" \
     "family 'ipv5': InvalidArgs"
like "$(list '{"address": ["s", "10.0.0.0/33"]}')" \
     "${IA}query key 'address' has a bad prefix length in '10.0.0.0/33'; ${PREFIXES}" \
     "address 10.0.0.0/33: InvalidArgs naming the prefix lengths accepted"
like "$(list '{"address": ["s", "2001:db8::/129"]}')" \
     "${IA}query key 'address' has a bad prefix length" \
     "address 2001:db8::/129: InvalidArgs"
like "$(list '{"address": ["s", "10.0.0.256"]}')" \
     "${IA}query key 'address' is not an address or CIDR: '10.0.0.256'; accepted: " \
     "address 10.0.0.256: InvalidArgs with examples"
like "$(list '{"address": ["s", "10.0.0.0/"]}')" "${IA}query key 'address' " \
     "address with an empty prefix: InvalidArgs"
like "$(list '{"link": ["s", "nosuch0"]}')" \
     "^$PS_ERR\.NoSuchLink: query key 'link': 'nosuch0' is not guarded" \
     "link that is not guarded: NoSuchLink"

# Wrong signatures, objects and members.
like "$(call_error "$PS_CONNS_PATH" "$PS_CONNS" List s '["limit"]')" "^$INVALID_ARGS: " \
     "List with signature 's': InvalidArgs"
like "$(call_error "$PS_CONNS_PATH" "$PS_CONNS" List '' '[]')" "^$INVALID_ARGS: " \
     "List without its argument: InvalidArgs"
like "$(call_error "$PS_PATH" "$PS_MANAGER" AttachLink s "[\"$A_IF\"]")" "^$INVALID_ARGS: " \
     "AttachLink with one argument: InvalidArgs"
like "$(call_error "$PS_PATH" "$PS_MANAGER" Explode '' '[]')" \
     "^org\.freedesktop\.DBus\.Error\.Unknown(Method|Object)" \
     "an unknown method: UnknownMethod"
like "$(call_error "$PS_PATH/link/nosuch0" "$PS_LINK" GetStatistics '' '[]')" \
     "^org\.freedesktop\.DBus\.Error\.Unknown(Object|Method)" "an unknown link object: UnknownObject"

# Oversized strings: refused, and the reply does not echo a megabyte back.
MIB='{"repeat": "a", "count": 1048576}'
out=$(call_error "$PS_PATH" "$PS_MANAGER" AttachLink ss "[$MIB, \"generic\"]")
like "$out" "^$INVALID_ARGS: invalid interface name 'a+'; accepted: " "a 1 MiB interface name: InvalidArgs"
ok "$([ ${#out} -lt 400 ] && echo 0 || echo 1)" "its error text is short (${#out} bytes)"
out=$(call_error "$PS_PATH" "$PS_MANAGER" AttachLink ss "[\"$A_IF\", $MIB]")
like "$out" "^$INVALID_ARGS: invalid mode " "a 1 MiB mode: InvalidArgs"
ok "$([ ${#out} -lt 400 ] && echo 0 || echo 1)" "its error text is short (${#out} bytes)"
out=$(list "{\"address\": [\"s\", $MIB]}")
like "$out" "${IA}query key 'address' is not an address or CIDR" "a 1 MiB address: InvalidArgs"
ok "$([ ${#out} -lt 400 ] && echo 0 || echo 1)" "its error text is short (${#out} bytes)"
out=$(call_error "$PS_CONNS_PATH" "$PS_CONNS" List 'a{sv}' "[[[$MIB, [\"u\", 1]]]]")
like "$out" "${IA}unknown query key 'a+'" "a 1 MiB query key: InvalidArgs"
ok "$([ ${#out} -lt 400 ] && echo 0 || echo 1)" "its error text is short (${#out} bytes)"
out=$(call_error "$PS_PATH" "$PS_MANAGER" DetachLink s "[$MIB]")
like "$out" "^($PS_ERR\.NoSuchLink|$INVALID_ARGS): " "DetachLink of a 1 MiB name: refused"
ok "$([ ${#out} -lt 400 ] && echo 0 || echo 1)" "its error text is short (${#out} bytes)"

# Many keys: answered (the last value of a repeated key counts, or it is refused), quickly.
# The time is the daemon's: from the call's sending to its reply (not the client's start-up).
jq -nc '[[range(20000) | ["limit", ["u", 5]]]]' >"$T/many.json"
res=$(timeout 120 "$PYTHON" "$PS_TESTDIR/craft.py" timed-call "$PS_NAME" "$PS_CONNS_PATH" \
        "$PS_CONNS" List 'a{sv}' "@$T/many.json")
out=$(jq -r '.result | if .error then "\(.error): \(.message)" else "OK" end' <<<"$res")
ms=$(jq -r '.ms | floor' <<<"$res")
like "$out" "^(OK|$INVALID_ARGS: .*)$" "a query of 20000 keys gets an answer ($out)"
ok "$([[ "$ms" =~ ^[0-9]+$ ]] && [ "$ms" -lt 5000 ] && echo 0 || echo 1)" "within 5 s (${ms} ms)" "$res"

# Not UTF-8. dbus-daemon validates strings and drops such a sender before the daemon sees the
# message, so what the caller gets back is the bus's doing, not ours, and is not checked. What
# is ours: the daemon survives whatever reaches it and nothing it holds changes (the checks
# below).
call_error "$PS_PATH" "$PS_MANAGER" AttachLink ss '[{"hex": "7073ff fe30"}, "generic"]' >/dev/null 2>&1
list '{"address": ["s", {"hex": "31302ec0af"}]}' >/dev/null 2>&1
call_error "$PS_CONNS_PATH" "$PS_CONNS" List 'a{sv}' '[[[{"hex": "6c696d6974ff"}, ["u", 1]]]]' \
        >/dev/null 2>&1

# Every rule field against every D-Bus type it does not take, through Add (one connection, so
# that 308 calls take seconds): the documented error name each time, and the value as it was
# sent. A double (NaN and the infinities too), a signature, an array, a dictionary or a nested
# variant is InvalidArgs naming the field, the type and the value;
# integers outside every field's range are InvalidFilter with the value printed as sent
# (UINT64_MAX as unsigned, not as INT64_MAX).
"$PYTHON" - "$PS_NAME" "$PS_TESTDIR" >"$T/types.out" 2>&1 <<'EOF2'
import math, os, sys
sys.path.insert(0, sys.argv[2])
import rawbus

IA = "org.freedesktop.DBus.Error.InvalidArgs"
IF = "org.packetscope.Guarder1.Error.InvalidFilter"
fields = ["rule_type", "protocol", "src_ip", "dst_ip", "src_port", "dst_port", "tcp_flags",
          "tcp_flags_mask", "icmp_type", "icmp_code", "inner_src_ip", "inner_dst_ip",
          "inner_protocol", "inner_src_port", "inner_dst_port", "action", "enabled", "log",
          "comment", "priority", "timeout", "force"]
# Fields that take integers: an integer out of range is reported with its value.
numeric = {"protocol", "src_port", "dst_port", "tcp_flags", "tcp_flags_mask", "icmp_type",
           "icmp_code", "inner_protocol", "inner_src_port", "inner_dst_port", "priority",
           "timeout"}
accepted = "accepted: a string, a boolean or an integer"
cases = [  # (D-Bus type, value, expected name, text the message must hold for every field)
    ("d", 1.5, IA, "has D-Bus type 'd' (value 1.5); " + accepted),
    ("d", 80.0, IA, "has D-Bus type 'd' (value 80); " + accepted),
    ("d", math.nan, IA, "has D-Bus type 'd' (value NaN); " + accepted),
    ("d", math.inf, IA, "has D-Bus type 'd' (value +infinity); " + accepted),
    ("d", -math.inf, IA, "has D-Bus type 'd' (value -infinity); " + accepted),
    ("d", 1e300, IA, "has D-Bus type 'd' (value 1e+300); " + accepted),
    ("g", "s", IA, "has D-Bus type 'g' (value 's'); " + accepted),
    ("ay", [1, 2], IA, "has D-Bus type 'ay'; " + accepted),
    ("as", ["tcp"], IA, "has D-Bus type 'as'; " + accepted),
    ("a{sv}", {"a": ["u", 1]}, IA, "has D-Bus type 'a{sv}'; " + accepted),
    ("v", ["s", "tcp"], IA, "has D-Bus type 'v'; " + accepted),
    ("t", 2**64 - 1, IF, ""),
    ("t", 2**63, IF, ""),
    ("x", -2**63, IF, ""),
]
conn = rawbus.Connection(os.environ["DBUS_SYSTEM_BUS_ADDRESS"])
for f in fields:
    for t, v, want, text in cases:
        r = conn.call(sys.argv[1], "/org/packetscope/Guarder1/filters",
                      "org.packetscope.Guarder1.Filters", "Add", "a{sv}", [{f: [t, v]}])
        name, msg = r.get("error", "OK"), r.get("message", "")
        need = "field '%s' %s" % (f, text) if text else ""
        if t == "t" and f in numeric:
            need = "%d is out of range" % v
        if t == "x" and f in numeric:
            need = "%d is out of range" % v
        good = name == want and need in msg and "9223372036854775807 " not in msg.replace(
            "-9223372036854775808", "")
        print("%d %s as %s %r: %s" % (0 if good else 1, f, t, v, want))
        if not good:
            print("#   got: %s: %s" % (name, msg))
            print("#   want: %s with '%s'" % (want, need))
EOF2
n_types=0
while IFS= read -r line; do
        case $line in
        "#"*) echo "$line" ;;
        [01]\ *) ok "${line%% *}" "${line#* }"; n_types=$((n_types + 1)) ;;
        *) ok 1 "the type table ran" "$line" ;;
        esac
done <"$T/types.out"
is "$n_types" 308 "308 field and type cases were sent"

# The same daemon, still answering, still right.
is "$(kill -0 "$PID" 2>/dev/null && echo alive)" alive "the daemon process (PID $PID) is still running"
check "it still owns $PS_NAME" daemon_owns_name main
out=$(call_error "$PS_CONNS_PATH" "$PS_CONNS" List 'a{sv}' '[{"limit": ["u", 5]}]')
is "$out" OK "a correct List still succeeds"
is "$(stat_of .links)" 1 "GetStatistics still answers: 1 link"
is "$(ping_received "$A_NS" "$A_H4" 2)" 2 "2 echo requests after all that, 2 replies"
wait_until 10 stat_is '.icmp_types["8"]' 2
is "$(stat_of '.icmp_types["8"]')" 2 "and the guard still counts: 2 echo requests"
is "$(busctl --system get-property "$PS_NAME" "$PS_PATH" "$PS_MANAGER" Links)" \
   "ao 1 \"$PS_PATH/link/$A_IF\"" "the link is still guarded"
daemon_stop main
is "$?" 0 "the daemon exits 0 on SIGTERM"

done_testing
