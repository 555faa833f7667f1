#!/bin/bash
# SPDX-License-Identifier: MIT
#
# packetscopectl and polkit on a terminal: an unprivileged user whom polkit asks to authenticate
# (auth_self) gets pkttyagent's password prompt on the terminal the client runs on (a pty made
# by script(1)); a wrong password typed into it is refused cleanly and nothing changes. With
# --no-ask-password, or without a terminal, no agent starts and the client says the call needs
# authentication, in words rather than a bus error name.

set -u
# shellcheck source=tests/integration/lib-system.sh
. "$(dirname "$0")/lib-system.sh"

require_root
require dbus-daemon busctl jq setpriv script pkttyagent useradd userdel mkfifo
[ -x /usr/lib/polkit-1/polkitd ] || skip_all "polkitd is not installed"
[ -x "$PACKETSCOPED" ] || bail "no daemon at $PACKETSCOPED"
[ -x "$PACKETSCOPECTL" ] || bail "no client at $PACKETSCOPECTL"

make_tmpdir T
bus_start "$T/bus"
sys_polkit_start "$T/polkit"
daemon_setup main
daemon_start main || bail "the daemon did not start: $(daemon_log main)"

# unlike TEXT REGEX DESCRIPTION: TEXT does not match REGEX.
unlike() {
        ! grep -Eq -- "$2" <<<"$1"
        ok $? "$3" "text: $1"
}

# has_line TEXT LINE DESCRIPTION: LINE is one of TEXT's lines, exactly.
has_line() {
        grep -Fxq -- "$2" <<<"$1"
        ok $? "$3" "text: $1" "no line: $2"
}

ASKED=psa$$
useradd --system --no-create-home --home-dir / --shell /usr/sbin/nologin --user-group "$ASKED" ||
        bail "useradd failed"
defer "userdel '$ASKED'; groupdel '$ASKED'"
ASKED_UID=$(id -u "$ASKED")
ASKED_GID=$(id -g "$ASKED")
sys_polkit_rule "$T/polkit" 50-packetscope-ask.rules "// SPDX-License-Identifier: MIT
polkit.addRule(function(action, subject) {
        if (action.id.indexOf('org.packetscope.') == 0 && subject.user == '$ASKED')
                return polkit.Result.AUTH_SELF;
        return polkit.Result.NOT_HANDLED;
});"
# polkitd reads new rules a moment later: wait until it challenges the user.
rule_seen() {
        setpriv --reuid="$ASKED_UID" --regid="$ASKED_GID" --clear-groups sh -c \
                'exec pkcheck --action-id org.packetscope.guarder1.manage-filters --process $$' \
                2>&1 | grep -q authentication
}
wait_until 15 rule_seen || diag "pkcheck never reported the challenge; going on"

rules_count() {
        busctl --system --json=short get-property "$PS_NAME" "$PS_PATH/filters" \
                org.packetscope.Guarder1.Filters Count 2>/dev/null | jq -r .data
}
BEFORE=$(rules_count)
is "$BEFORE" 0 "no rules before the calls"

AS_USER=(setpriv --reuid="$ASKED_UID" --regid="$ASKED_GID" --clear-groups env HOME=/
         "DBUS_SYSTEM_BUS_ADDRESS=$DBUS_SYSTEM_BUS_ADDRESS" LC_ALL=C.UTF-8)
ADD=(filter add --rule-type=udp --dst-port=9 --action=count)

# On a terminal: the prompt comes, a wrong password is typed, the call is refused.
mkfifo "$T/keys"
chmod 666 "$T/keys"
printf -v cmd '%q ' "${AS_USER[@]}" "$PACKETSCOPECTL" "${ADD[@]}"
timeout 60 script -q -e -f -c "$cmd; echo \"client-status=\$?\"" "$T/typescript" \
        <"$T/keys" >/dev/null 2>&1 &
SCRIPT_PID=$!
defer "kill_wait $SCRIPT_PID"
exec 7>"$T/keys"
prompted() {
        grep -q 'Password:' "$T/typescript"
}
wait_until 30 prompted
ok $? "a password prompt appears on the terminal" "$(cat "$T/typescript")"
printf 'not-the-password\r' >&7
wait_until 40 grep -q 'client-status=' "$T/typescript"
exec 7>&-
wait "$SCRIPT_PID"
TS=$(tr -d '\r' <"$T/typescript" | sed 's/\x1b\[[0-9;]*m//g')
like "$TS" "AUTHENTICATING FOR org\.packetscope\.guarder1\.manage-filters" \
     "the prompt names the polkit action"
like "$TS" "Authenticating as: .*$ASKED|Authenticating as: $ASKED" "the prompt is for the user itself"
like "$TS" "AUTHENTICATION FAILED" "the agent reports the wrong password"
has_line "$TS" "packetscopectl: not allowed: org.packetscope.guarder1.manage-filters is refused to this user by polkit" \
         "the client says the change was not allowed"
unlike "$TS" "org\.freedesktop\.DBus\.Error|InteractiveAuthorizationRequired" \
       "no bus error name in what the user sees"
like "$TS" "client-status=1" "the client exits 1"
is "$(rules_count)" 0 "no rule was added"

# --no-ask-password on a terminal: no agent, no prompt.
: >"$T/typescript"
printf -v cmd '%q ' "${AS_USER[@]}" "$PACKETSCOPECTL" --no-ask-password "${ADD[@]}"
timeout 60 script -q -e -f -c "$cmd; echo \"client-status=\$?\"" "$T/typescript" \
        </dev/null >/dev/null 2>&1
TS=$(tr -d '\r' <"$T/typescript" | sed 's/\x1b\[[0-9;]*m//g')
unlike "$TS" "AUTHENTICATING|Password:" "--no-ask-password: no agent, no prompt"
has_line "$TS" "packetscopectl: not allowed: org.packetscope.guarder1.manage-filters needs authentication, and --no-ask-password was given" \
         "--no-ask-password: the client says authentication was needed and not asked for"
like "$TS" "client-status=1" "--no-ask-password: the client exits 1"

# Not on a terminal: no agent either, the same words.
"${AS_USER[@]}" "$PACKETSCOPECTL" "${ADD[@]}" </dev/null >"$T/out" 2>"$T/err"
is $? 1 "without a terminal: the client exits 1"
ERR=$(cat "$T/err")
unlike "$ERR" "AUTHENTICATING|Password:" "without a terminal: no agent, no prompt"
is "$ERR" "packetscopectl: not allowed: org.packetscope.guarder1.manage-filters needs authentication, and no password could be asked (not on a terminal, or no polkit agent)" \
   "without a terminal: the client says authentication was needed"
is "$(rules_count)" 0 "still no rule"

done_testing
