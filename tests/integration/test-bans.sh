#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Manual bans against real traffic through a guarded veth, with the journal records they leave:
#   - an exact IPv4 and an exact IPv6 ban drop the namespace's pings, each counted on its ban;
#     unbanning lets them through again;
#   - CIDR bans (v4 /24, v6 /64) drop the whole range; of two bans covering one address the
#     longer decides, and lifting the shorter one does not unban it; Get() names the ban;
#   - the allowlist: a ban covering an allowlisted address is refused with Error.Allowlisted;
#   - bad input gets named errors and changes nothing;
#   - a ban --for 2s lets traffic through after 2 s with the daemon stopped, and the restarted
#     daemon records the expiry; ban_presence tells the program to look the exact table up
#     while the ban lasts, and no longer once it is reaped;
#   - a restart keeps every ban (the pinned maps drop while the daemon is down) with its reason;
#   - a state directory that cannot be written refuses the ban (StateNotWritable) and leaves
#     the kernel as it was;
#   - a full table (MaxBansIPv4=1024) refuses ban 1025 with Error.BanTableFull.

set -u
# shellcheck source=tests/integration/lib-promises.sh
. "$(dirname "$0")/lib-promises.sh"

require_root
require ip dbus-daemon busctl jq timeout ping bpftool
[ -x "$PACKETSCOPED" ] || bail "no daemon at $PACKETSCOPED"

PS_BANS_PATH=$PS_PATH/bans
PS_BANS=org.packetscope.Guarder1.Bans
MSG_BAN=8a1f2d6c4b7e4e0f9a35c2d1e6b70b01
MSG_UNBAN=8a1f2d6c4b7e4e0f9a35c2d1e6b70b02
MSG_EXPIRED=8a1f2d6c4b7e4e0f9a35c2d1e6b70b03

ctl() {
        timeout 30 "$PACKETSCOPECTL" --no-ask-password "$@"
}

# bans_json [QUERY...]: Bans.List as plain row objects.
bans_json() {
        pscall "$PS_BANS_PATH" "$PS_BANS" List 'a{sv}' 0 | jq -c '[.data[0][] | map_values(.data)]'
}

ban_packets() {
        bans_json | jq -r --arg a "$1" '.[] | select(.address == $a) | .packets'
}

# exact_present: the daemon's count of the exact IPv4 table in the pinned ban_presence (entry 0,
# bytes 16-19: struct ps_ban_presence in bpf/guard.h), 0 or not; while it is 0 (and the program
# has inserted no ban since) packets skip the table.
exact_present() {
        bpftool -j map lookup pinned "${DAEMON_BPFFS[main]}/:bans/ban_presence" key 0 0 0 0 |
                jq -r '[.value[16:20][] | ltrimstr("0x") | tonumber] | add'
}
exact_absent() {
        [ "$(exact_present)" = 0 ]
}

make_tmpdir T
bus_start "$T/bus"
journal_start
daemon_setup main
daemon_start main || bail "the daemon did not start: $(daemon_log main)"
net_create A
out=$(attach "$A_IF" generic 2>&1) || bail "attach failed: $out $(daemon_log main 30)"
NET4=${A_N4%.*}.0/24
NET6=${A_N6%::*}::/64

is "$(ping_received "$A_NS" "$A_H4" 3)" 3 "before any ban, 3 of 3 IPv4 pings come back"

# ---------------------------------------------------------------------------------------------
# Exact bans, v4 and v6

out=$(ctl ban "$A_N4" --reason "test exact v4" 2>&1)
like "$out" "^$PS_BANS_PATH/[0-9]+$" "packetscopectl ban prints the ban's object path"
is "$(busctl --system get-property "$PS_NAME" "$out" org.packetscope.Guarder1.Ban Address 2>&1)" \
   "s \"$A_N4\"" "the ban object names its address"
is "$(ping_received "$A_NS" "$A_H4" 3)" 0 "an exact IPv4 ban drops all 3 pings"
is "$(ban_packets "$A_N4")" 3 "the ban counted the 3 packets it dropped"
wait_until 10 journal_has ".MESSAGE_ID == \"$MSG_BAN\" and .ADDRESS == \"$A_N4\""
jq_ok "the journal has the ban with ADDRESS=, ORIGIN=manual, REASON=, UNTIL=never" \
        "[.[] | select(.MESSAGE_ID == \"$MSG_BAN\" and .ADDRESS == \"$A_N4\" and
                       .ORIGIN == \"manual\" and .REASON == \"test exact v4\" and
                       .UNTIL == \"never\" and .OFFENSES == \"1\")] | length == 1" \
        "$(jq -s . "$JOURNAL")"
check "packetscopectl unban" ctl unban "$A_N4"
is "$(ping_received "$A_NS" "$A_H4" 3)" 3 "after unban, 3 of 3 pings come back"
wait_until 10 journal_has ".MESSAGE_ID == \"$MSG_UNBAN\" and .ADDRESS == \"$A_N4\""
ok $? "the journal has the unban" "$(journal_show 'true')"

check "ban the IPv6 address" ctl ban "$A_N6"
is "$(ping_received "$A_NS" "$A_H6" 3 -6)" 0 "an exact IPv6 ban drops all 3 pings"
is "$(ban_packets "$A_N6")" 3 "the IPv6 ban counted 3 packets"
is "$(ping_received "$A_NS" "$A_H4" 2)" 2 "IPv4 from the same host still passes"
check "unban the IPv6 address" ctl unban "$A_N6"
is "$(ping_received "$A_NS" "$A_H6" 2 -6)" 2 "after unban IPv6 pings come back"

# ---------------------------------------------------------------------------------------------
# CIDR bans; the longer of two covering bans decides

check "ban $NET4" ctl ban "$NET4" --reason range
is "$(ping_received "$A_NS" "$A_H4" 2)" 0 "a /24 ban drops its range"
is "$(ban_packets "$NET4")" 2 "the /24 ban counted the 2 packets"
get=$(pscall "$PS_BANS_PATH" "$PS_BANS" Get s "$A_N4" | jq -c '.data[0] | map_values(.data)')
jq_ok "Get($A_N4) names the /24 ban that covers it" \
        ".banned == true and .allowlisted == false and (.ban | map_values(.data)).address == \"$NET4\"" \
        "$get"
check "ban $A_N4 inside it for an hour" ctl ban "$A_N4" --for 1h
check "unban $NET4" ctl unban "$NET4"
is "$(ping_received "$A_NS" "$A_H4" 2)" 0 "lifting the /24 does not unban $A_N4: its own ban holds"
check "unban $A_N4" ctl unban "$A_N4"
is "$(ping_received "$A_NS" "$A_H4" 2)" 2 "with both lifted, pings pass"

check "ban $NET6" ctl ban "$NET6"
is "$(ping_received "$A_NS" "$A_H6" 2 -6)" 0 "a /64 ban drops its IPv6 range"
check "unban $NET6" ctl unban "$NET6"
is "$(ping_received "$A_NS" "$A_H6" 2 -6)" 2 "after unban the /64 passes"

# ---------------------------------------------------------------------------------------------
# The allowlist and bad input

check "allowlist add $A_N4" ctl allowlist add "$A_N4"
err=$(call_error "$PS_BANS_PATH" "$PS_BANS" Ban sts "[\"$NET4\", 0, \"\"]")
like "$err" "^$PS_ERR\.Allowlisted: .*$A_N4.*allowlist" \
     "a ban covering an allowlisted address is refused with Error.Allowlisted, naming it"
is "$(ping_received "$A_NS" "$A_H4" 2)" 2 "and nothing was banned"
check "allowlist remove $A_N4" ctl allowlist remove "$A_N4"
jq_ok "the allowlist is empty again" \
        '.data == []' "$(busctl --system --json=short get-property "$PS_NAME" "$PS_BANS_PATH" "$PS_BANS" Allowlist)"

like "$(call_error "$PS_BANS_PATH" "$PS_BANS" Ban sts '["300.1.2.3", 0, ""]')" \
     "^$PS_ERR\.InvalidAddress: .*not an address" "Ban of a non-address: InvalidAddress"
like "$(call_error "$PS_BANS_PATH" "$PS_BANS" Ban sts '["10.0.0.0/33", 0, ""]')" \
     "^$PS_ERR\.InvalidAddress: .*prefix length too long" "a prefix too long: InvalidAddress"
like "$(call_error "$PS_BANS_PATH" "$PS_BANS" Ban sts '["10.0.0.1/8", 0, ""]')" \
     "^$PS_ERR\.InvalidAddress: .*past its prefix" "host bits past the prefix: InvalidAddress"
like "$(call_error "$PS_BANS_PATH" "$PS_BANS" Ban sts '["10.9.9.9", 18446744073709551615, ""]')" \
     "InvalidArgs: .*too long" "a duration that overflows: InvalidArgs saying the maximum"
like "$(call_error "$PS_BANS_PATH" "$PS_BANS" Unban s '["10.9.9.9"]')" \
     "^$PS_ERR\.NoSuchBan: " "Unban of an address not banned: NoSuchBan"
like "$(ctl ban "$A_N4" --for 3fortnights 2>&1)" "invalid value .* for --for" \
     "the client refuses a duration it cannot read"
is "$(bans_json | jq length)" 0 "no bad request left a ban behind"
check "the daemon is still up" daemon_alive main

# ---------------------------------------------------------------------------------------------
# Expiry in the kernel with the daemon stopped, then a restart that keeps every ban

check "ban $A_N4 --for 2s" ctl ban "$A_N4" --for 2s --reason short
# Read at once: the ban ends in 2 s, and the running daemon reaps it then.
ge "$(exact_present)" 1 "ban_presence tells the program to look the exact IPv4 table up"
check "ban $NET6 until unbanned" ctl ban "$NET6" --reason "kept across restarts"
is "$(ping_received "$A_NS" "$A_H4" 1)" 0 "the 2 s ban drops at once"
T_BAN=$(date +%s%N)
daemon_stop main
ok $? "the daemon stopped cleanly"
# The pinned maps go on enforcing while the daemon is gone.
is "$(ping_received "$A_NS" "$A_H6" 2 -6)" 0 "with the daemon stopped the /64 ban still drops"
while [ $(($(date +%s%N) - T_BAN)) -lt 2300000000 ]; do sleep 0.1; done
is "$(ping_received "$A_NS" "$A_H4" 2)" 2 "2 s later, with the daemon still stopped, pings pass"

daemon_start main || bail "the daemon did not restart: $(daemon_log main)"
rows=$(bans_json)
jq_ok "after the restart the /64 ban is listed with its reason, the expired one is gone" \
        "length == 1 and .[0].address == \"$NET6\" and .[0].reason == \"kept across restarts\"" \
        "$rows"
wait_until 10 journal_has ".MESSAGE_ID == \"$MSG_EXPIRED\" and .ADDRESS == \"$A_N4\"" ||
        ok 1 "the expiry is in the journal" "$(journal_show 'true')"
wait_until 10 exact_absent
ok $? "the last exact ban reaped, ban_presence says the exact IPv4 table is empty" \
   "$(bpftool -j map lookup pinned "${DAEMON_BPFFS[main]}/:bans/ban_presence" key 0 0 0 0)"
is "$(ping_received "$A_NS" "$A_H6" 2 -6)" 0 "the /64 still drops after the restart"
check "unban $NET6" ctl unban "$NET6"

# ---------------------------------------------------------------------------------------------
# A state directory that cannot be written

# The state directory becomes a tmpfs of its own (with the same files) to be made read-only.
STATE=${DAEMON_DIR[main]}/state
daemon_stop main
cp -a "$STATE" "$T/state.saved"
mount -t tmpfs -o size=4m tmpfs "$STATE" && defer "umount -l '$STATE'"
cp -a "$T/state.saved/." "$STATE/"
daemon_start main || bail "the daemon did not restart: $(daemon_log main)"
mount -o remount,ro "$STATE"
like "$(call_error "$PS_BANS_PATH" "$PS_BANS" Ban sts "[\"$A_N4\", 0, \"\"]")" \
     "^$PS_ERR\.StateNotWritable: " "a ban that cannot be written is refused with StateNotWritable"
is "$(ping_received "$A_NS" "$A_H4" 2)" 2 "and the kernel was put back: pings pass"
is "$(bans_json | jq length)" 0 "and the table holds no such ban"
mount -o remount,rw "$STATE"

# ---------------------------------------------------------------------------------------------
# A full table

daemon_setup full
printf '[Bans]\nMaxBansIPv4=1024\n' >>"${DAEMON_DIR[full]}/config/packetscope.conf"
daemon_stop main
daemon_start full || bail "the second daemon did not start: $(daemon_log full)"
is "$(busctl --system get-property "$PS_NAME" "$PS_BANS_PATH" "$PS_BANS" CapacityIPv4)" "u 1024" \
   "CapacityIPv4 reports MaxBansIPv4="
batch=$(jq -nc '[range(0; 1024) | {address: ["s", "198.18.\(. / 256 | floor).\(. % 256)"]}]')
is "$(rawcall "$PS_BANS_PATH" "$PS_BANS" BanBatch 'aa{sv}' "[$batch]" | jq -c '.reply')" "[1024]" \
   "BanBatch of 1024 bans fills the table"
like "$(call_error "$PS_BANS_PATH" "$PS_BANS" Ban sts '["198.18.9.9", 0, ""]')" \
     "^$PS_ERR\.BanTableFull: .*MaxBansIPv4" "ban 1025 is refused with BanTableFull, naming the setting"
is "$(busctl --system get-property "$PS_NAME" "$PS_BANS_PATH" "$PS_BANS" Count)" "u 1024" \
   "the table still holds 1024 bans"
grep -q "80% full" "${DAEMON_DIR[full]}/log" || journal_has '.MESSAGE_ID == "8a1f2d6c4b7e4e0f9a35c2d1e6b70b05"'
ok $? "a warning was logged at 80 %" "$(daemon_log full 5)"

done_testing
