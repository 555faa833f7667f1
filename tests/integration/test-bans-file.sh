#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Bans.BanFile: a file of ban lines handed over as a file descriptor, and packetscopectl bans
# import FILE, which uses it for such files (a JSON document still goes to Import):
#   - the lines (comments, blank lines, address or CIDR, duration, reason with spaces) become
#     bans with those durations and reasons, origin import by default or the one asked; the
#     count replied is the count of bans; an exact ban of the file drops real traffic;
#   - standard input (a pipe) is passed as a sealed memfd by the client;
#   - a bad line refuses the whole file with an error naming the line and what is accepted;
#   - a ban covering an allowlisted address refuses the whole file with Error.Allowlisted,
#     naming the line;
#   - a descriptor that is not a regular file (a pipe, a directory) is refused with
#     Error.NotARegularFile; a file over 64 MiB, or of more than 1,000,000 bans, with
#     Error.LimitExceeded;
#   - an unprivileged caller is refused and nothing is banned (the bus policy or polkit; the
#     polkit side of it is in test-polkit.sh).

set -u
# shellcheck source=tests/integration/lib-promises.sh
. "$(dirname "$0")/lib-promises.sh"

require_root
require ip dbus-daemon busctl gdbus jq timeout ping setpriv truncate
[ -x "$PACKETSCOPED" ] || bail "no daemon at $PACKETSCOPED"

PS_BANS_PATH=$PS_PATH/bans
PS_BANS=org.packetscope.Guarder1.Bans
NOBODY=$(id -u nobody)

ctl() {
        timeout 30 "$PACKETSCOPECTL" --no-ask-password "$@"
}

# bans_json: Bans.List as plain row objects.
bans_json() {
        pscall "$PS_BANS_PATH" "$PS_BANS" List 'a{sv}' 0 | jq -c '[.data[0][] | map_values(.data)]'
}
ban_count() {
        busctl --system get-property "$PS_NAME" "$PS_BANS_PATH" "$PS_BANS" Count | cut -d' ' -f2
}

# ban_file FD ORIGIN: BanFile with descriptor FD of this shell (gdbus passes it on); the reply
# or the error, with its name, on stdout.
ban_file() {
        timeout 60 gdbus call --system --dest "$PS_NAME" --object-path "$PS_BANS_PATH" \
                --method "$PS_BANS.BanFile" "$1" "$2" 2>&1
}

make_tmpdir T
bus_start "$T/bus"
daemon_setup main
daemon_start main || bail "the daemon did not start: $(daemon_log main)"
net_create A
out=$(attach "$A_IF" generic 2>&1) || bail "attach failed: $out $(daemon_log main 30)"

is "$(ping_received "$A_NS" "$A_H4" 2)" 2 "before any ban, 2 of 2 IPv4 pings come back"

# ---------------------------------------------------------------------------------------------
# A file of lines through the client

cat >"$T/bans.txt" <<EOF
# Bans for the test: address [duration [reason]]

$A_N4 1h scanner seen in the logs
198.51.100.0/24
	2001:db8::7   0   kept until unbanned, with  spaces inside   
203.0.113.9 90s
203.0.113.10 2min30s x
EOF
out=$(ctl bans import "$T/bans.txt" 2>&1)
is "$out" "5 bans imported." "bans import of a file of 5 ban lines says 5"
rows=$(bans_json)
is "$(jq length <<<"$rows")" 5 "5 bans are held"
jq_ok "every ban of the file has origin import" 'all(.[]; .origin == "import")' "$rows"
jq_ok "the reason is the rest of the line, without the spaces around it" \
        "(.[] | select(.address == \"$A_N4\") | .reason) == \"scanner seen in the logs\" and
         (.[] | select(.address == \"2001:db8::7\") | .reason) == \"kept until unbanned, with  spaces inside\"" \
        "$rows"
now=$(date +%s)
jq_ok "no duration and 0 mean until unbanned; 1h, 90s and 2min30s end that much later" \
        "(.[] | select(.address == \"198.51.100.0/24\") | .until) == 0 and
         (.[] | select(.address == \"2001:db8::7\") | .until) == 0 and
         ((.[] | select(.address == \"$A_N4\") | .until / 1000000) - $now | . > 3590 and . < 3610) and
         ((.[] | select(.address == \"203.0.113.9\") | .until / 1000000) - $now | . > 80 and . < 100) and
         ((.[] | select(.address == \"203.0.113.10\") | .until / 1000000) - $now | . > 140 and . < 160)" \
        "$rows"
is "$(ping_received "$A_NS" "$A_H4" 2)" 0 "the exact ban from the file drops the pings"

out=$(ctl bans import "$T/bans.txt" 2>&1)
is "$out" "5 bans imported." "the same file again: 5 bans (extended, not doubled)"
is "$(ban_count)" 5 "still 5 bans held"
jq_ok "the bans of the file imported twice count 2 offenses" \
        "(.[] | select(.address == \"$A_N4\") | .offenses) == 2" "$(bans_json)"

printf '192.0.2.200 10min from a pipe\n' | ctl bans import - >"$T/out" 2>&1
is "$(cat "$T/out")" "1 bans imported." "ban lines from standard input (a pipe) go through a memfd"
jq_ok "the ban from standard input is held with its reason" \
        '[.[] | select(.address == "192.0.2.200" and .reason == "from a pipe")] | length == 1' \
        "$(bans_json)"
printf '{"bans": [{"address": "192.0.2.201"}]}\n' >"$T/bans.json"
is "$(ctl bans import "$T/bans.json" 2>&1)" "1 bans imported." "a JSON document still goes to Import"
like "$(ctl bans import --replace "$T/bans.txt" 2>&1)" "--replace takes a JSON export document" \
     "--replace with a file of lines is refused by the client, saying why"
is "$(ban_count)" 7 "7 bans held"

# ---------------------------------------------------------------------------------------------
# The origin, through the bus

printf '192.0.2.210\n' >"$T/one.txt"
out=$(ban_file 7 manual 7<"$T/one.txt")
is "$out" "(uint32 1,)" "BanFile(fd, 'manual') replies the count, 1"
jq_ok "its ban has origin manual" \
        '(.[] | select(.address == "192.0.2.210") | .origin) == "manual"' "$(bans_json)"
printf '192.0.2.211 1h\n' >"$T/one.txt"
is "$(ban_file 7 ai 7<"$T/one.txt")" "(uint32 1,)" "BanFile(fd, 'ai')"
jq_ok "its ban has origin ai" \
        '(.[] | select(.address == "192.0.2.211") | .origin) == "ai"' "$(bans_json)"
like "$(ban_file 7 auto:url 7<"$T/one.txt")" \
     "InvalidArgs: origin 'auto:url'; accepted: manual, import, ai" \
     "an origin a caller may not claim is refused, naming those accepted"
printf '\n# nothing but a comment\n' >"$T/empty.txt"
is "$(ban_file 7 '' 7<"$T/empty.txt")" "(uint32 0,)" "a file without a ban line bans nothing: 0"
held=$(ban_count)

# ---------------------------------------------------------------------------------------------
# Bad lines: the whole file is refused, the line named

bad() {
        # bad NAME LINES...: the file of those lines, as BanFile sees it
        local name=$1
        shift
        printf '%s\n' "$@" >"$T/$name.txt"
        ban_file 7 import 7<"$T/$name.txt"
}
like "$(bad addr 192.0.2.220 '# comment' 300.1.2.3 192.0.2.221)" \
     "$PS_ERR\.InvalidAddress: line 3: '300.1.2.3' is not an address or CIDR; accepted: ADDRESS" \
     "a line whose address is not one: InvalidAddress naming line 3 and the line format"
like "$(bad hostbits 10.0.0.1/8)" "$PS_ERR\.InvalidAddress: line 1: .*past its prefix" \
     "host bits past the prefix: InvalidAddress naming line 1"
like "$(bad span 192.0.2.220 '192.0.2.221 3fortnights reason')" \
     "InvalidArgs: line 2: '3fortnights' is not a ban duration; accepted: .*0 for until unbanned" \
     "a duration that is not one: InvalidArgs naming line 2 and what is accepted"
like "$(bad long '192.0.2.222 20000d')" "InvalidArgs: line 1: '20000d' .*at most ten years" \
     "a duration over ten years is refused"
printf '192.0.2.223 1h bad\001reason\n' >"$T/ctrl.txt"
like "$(ban_file 7 import 7<"$T/ctrl.txt")" \
     "InvalidArgs: line 1: the reason must be at most 256 bytes of UTF-8 without control" \
     "a reason with a control character is refused"
like "$(bad reason "192.0.2.224 1h $(printf 'r%.0s' $(seq 300))")" \
     "InvalidArgs: line 1: the reason must be at most 256 bytes" "a reason over 256 bytes is refused"
printf '192.0.2.225\n192.0.2.226 1h a\000b\n' >"$T/nul.txt"
like "$(ban_file 7 import 7<"$T/nul.txt")" "InvalidArgs: line 2 holds a NUL byte" \
     "a NUL byte is refused, naming its line"
is "$(ban_count)" "$held" "no refused file banned anything, not even its good lines"
is "$(bans_json | jq '[.[] | select(.address | startswith("192.0.2.22"))] | length')" 0 \
   "none of the good lines before or after a bad one is held"

# ---------------------------------------------------------------------------------------------
# The allowlist

check "allowlist add 192.0.2.230" ctl allowlist add 192.0.2.230
like "$(bad allow 192.0.2.231 192.0.2.224/29 192.0.2.232)" \
     "$PS_ERR\.Allowlisted: line 2: 192\.0\.2\.224/29 is not banned: it overlaps 192\.0\.2\.230" \
     "a range covering an allowlisted address refuses the file with Allowlisted, naming line 2"
like "$(ctl bans import "$T/allow.txt" 2>&1)" "line 2: .*allowlist" \
     "packetscopectl bans import says the same"
is "$(ban_count)" "$held" "nothing of that file was banned"
check "allowlist remove 192.0.2.230" ctl allowlist remove 192.0.2.230

# ---------------------------------------------------------------------------------------------
# Not a regular file; too big

like "$(ban_file 7 import 7< <(printf '192.0.2.240\n'))" \
     "$PS_ERR\.NotARegularFile: the file descriptor is a pipe; accepted: a regular file or a memfd" \
     "a pipe is refused with NotARegularFile"
like "$(ban_file 7 import 7<"$T")" "$PS_ERR\.NotARegularFile: the file descriptor is a directory" \
     "a directory is refused with NotARegularFile"
truncate -s $((64 * 1024 * 1024 + 1)) "$T/big.txt"
like "$(ban_file 7 import 7<"$T/big.txt")" \
     "$PS_ERR\.LimitExceeded: the file has 67108865 bytes; at most 67108864" \
     "a file over 64 MiB is refused with LimitExceeded"
awk 'BEGIN { for (i = 0; i <= 1000000; i++)
                     printf "10.%d.%d.%d\n", i / 65536 % 256, i / 256 % 256, i % 256 }' >"$T/many.txt"
like "$(ban_file 7 import 7<"$T/many.txt")" \
     "$PS_ERR\.LimitExceeded: line 1000001: more than 1000000 bans in one file" \
     "a file of 1,000,001 bans is refused with LimitExceeded, naming the line past the limit"
is "$(ban_count)" "$held" "nothing was banned by them"

# ---------------------------------------------------------------------------------------------
# An unprivileged caller

# nobody_ban_file FILE: BanFile of FILE called as uid $NOBODY; the reply or the error.
nobody_ban_file() {
        setpriv --reuid="$NOBODY" --regid="$NOBODY" --clear-groups env HOME=/ \
                timeout 60 gdbus call --system --dest "$PS_NAME" --object-path "$PS_BANS_PATH" \
                --method "$PS_BANS.BanFile" 7 import 7<"$1" 2>&1
}
printf '192.0.2.250\n' >"$T/nobody.txt"
like "$(nobody_ban_file "$T/nobody.txt")" \
     "AccessDenied|AuthorizationFailed|InteractiveAuthorizationRequired" \
     "BanFile from nobody is refused"
is "$(bans_json | jq '[.[] | select(.address == "192.0.2.250")] | length')" 0 \
   "and 192.0.2.250 is not banned"
# Authorization comes before the file is read: a file the daemon would refuse once read (here
# a line that is no address) gets nobody AccessDenied, not the verdict on its content.
printf 'not-an-address\n' >"$T/nobody-bad.txt"
like "$(nobody_ban_file "$T/nobody-bad.txt")" \
     "AccessDenied|AuthorizationFailed|InteractiveAuthorizationRequired" \
     "a bad file from nobody is refused for who sent it, before it is read"
check "the daemon is still up" daemon_alive main

done_testing
