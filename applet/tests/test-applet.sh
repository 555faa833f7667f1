#!/bin/bash
# SPDX-License-Identifier: MIT
#
# packetscope-applet against the real daemon, headless: a private session bus (this script runs
# itself again under dbus-run-session) for the tray item and AT-SPI, Xvfb for GTK, and the
# integration tests' private system bus with a real polkitd and the daemon guarding a veth:
#   - a StatusNotifierWatcher written for the test (sni-watcher.py) records the applet's
#     registration and follows its IconName, Status and Title (the tooltip text): guarding
#     with one link, dropping now while a rule drops pings, back to guarding 10 s after the
#     last drop, daemon gone when it stops, guarding again when it is back;
#   - the window, driven through AT-SPI (window.py, dogtail): a link's row with its exact
#     totals, a TCP connection on the connections page, the dropped pings' source on the drops
#     page, a rule's switch turned off and the daemon's Enabled property read back, the
#     pings that rule dropped answered again;
#   - keyboard navigation (the Rules page and the rule dialog by their mnemonics, the focus
#     in the dialog's first field) and an accessible name on every control of the window and
#     the dialog;
#   - a rule added through the dialog (first with a port the daemon refuses: its message is
#     shown in the dialog and nothing is added), changed, and deleted, each read back from
#     the daemon; its TCP flags (SYN set, ACK clear) as tcp_flags and tcp_flags_mask; a rule
#     added on trial (Filters.Apply): the countdown, Roll back and Confirm;
#   - Unban behind a confirm dialog showing the ban's address, origin and reason; the health
#     thresholds changed in their dialog; AI jobs cancelled while the model hangs, and
#     deleted;
#   - panic mode entered and left through confirm dialogs: the banner, the tray's panic icon,
#     the pings it drops, the daemon's Panic property;
#   - the same switch, the dialog's Add and its Delete, a ban, panic mode and an AI job in the
#     applet of a user polkit refuses (its own session bus, no authentication agent, the
#     German catalogue): the window says so in German, and the daemon's state is unchanged;
#   - notifications (notify-server.py records them): none while they are off (the default);
#     switched on, a drop and then the daemon gone give exactly two, the second held back to
#     the end of the interval (--notify-interval=4); a ban is one, a batch of 50 bans two (the
#     last summing up the 48 between), an anomaly one, and none once switched off;
#   - nothing guarded: the link detached, the tray says so;
#   - screenshots of the screen in each state, kept in the build directory and checked not
#     blank.

set -u
if [ -z "${PS_APPLET_SESSION:-}" ]; then
        command -v dbus-run-session >/dev/null 2>&1 || { echo "1..0 # SKIP dbus-run-session is not installed"; exit 0; }
        # The session's services (the AT-SPI registry says hello on its stdout) write to
        # stderr; the TAP stream goes through descriptor 3, back to stdout below.
        exec 3>&1 1>&2
        PS_APPLET_SESSION=1 exec dbus-run-session -- "$0" "$@"
fi
exec 1>&3 3>&-

# shellcheck source=tests/integration/lib-system.sh
. "${SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/integration/lib-system.sh"

require_root
require Xvfb import identify jq busctl ip ping xdotool /usr/bin/python3
[ -x /usr/lib/polkit-1/polkitd ] || skip_all "polkitd is not installed"
[ -x "$PACKETSCOPED" ] || bail "no daemon at $PACKETSCOPED (set PACKETSCOPED or BUILDDIR)"
APPLET=${PACKETSCOPE_APPLET:-$BUILDDIR/applet/packetscope-applet}
[ -x "$APPLET" ] || bail "no applet at $APPLET (set PACKETSCOPE_APPLET or BUILDDIR)"
/usr/bin/python3 -c 'import gi, dogtail' 2>/dev/null || skip_all "python3-gi or python3-dogtail is missing"
APPLET_TESTS=$SRCDIR/applet/tests
SHOTS=$BUILDDIR/applet/tests/screenshots
rm -rf "$SHOTS"
mkdir -p "$SHOTS"

FILTERS_PATH=$PS_PATH/filters
FILTERS=org.packetscope.Guarder1.Filters
FILTER=org.packetscope.Guarder1.Filter

make_tmpdir T
export DOGTAIL_DIR=$T/dogtail
mkdir -p "$DOGTAIL_DIR"

# --- the display: Xvfb on a free display number it chooses itself
Xvfb -displayfd 5 -screen 0 1024x768x24 -nolisten tcp 5>"$T/display" 2>"$T/xvfb.log" &
XVFB_PID=$!
defer "kill_wait $XVFB_PID"
wait_until 30 test -s "$T/display" || bail "Xvfb did not start: $(cat "$T/xvfb.log")"
export DISPLAY=:$(cat "$T/display")

# --- the system side
bus_start "$T/bus"
sys_polkit_start "$T/polkit"
net_create A
# The AI's model: the integration tests' chat-completions server on 127.0.0.1, its answer
# scripted ("good": an analysis, two suggestions, two rules).
mkdir -p "$T/srv"
echo good >"$T/srv/scenario"
"$PYTHON" "$PS_TESTDIR/ai-server.py" "$T/srv" 2>"$T/srv/log" &
SRV_PID=$!
defer "kill_wait $SRV_PID"
wait_until 10 test -s "$T/srv/port" || bail "the AI test server did not start: $(cat "$T/srv/log")"
daemon_setup main
# A health sample every 2 s: the anomaly the test opens and ends is seen within seconds. The
# other thresholds out of reach, so that the load of a busy machine opens no anomaly of its
# own (each would be a notification once they are on).
printf '[AI]\nEndpoint=http://127.0.0.1:%s/v1/chat/completions\nTimeoutSec=10s\nMaxRetries=1\n[Health]\nHealthIntervalSec=2s\nCPUThresholdPercent=100\nPressureThresholdPercent=99\nPressureTriggers=no\nDiskIOThresholdMBps=1000000\n' \
        "$(cat "$T/srv/port")" >>"${DAEMON_DIR[main]}/config/packetscope.conf"
daemon_start main || bail "the daemon did not start: $(daemon_log main)"
attach "$A_IF" || bail "AttachLink $A_IF failed: $(daemon_log main)"

# --- the tray host and the applet
/usr/bin/python3 "$APPLET_TESTS/sni-watcher.py" "$T/sni.json" 2>"$T/sni.log" &
SNI_PID=$!
defer "kill_wait $SNI_PID"
sni_has() {
        jq -e "$1" "$T/sni.json" >/dev/null 2>&1
}
wait_until 30 sni_has '.owner' || bail "the watcher did not own its name: $(cat "$T/sni.log")"
/usr/bin/python3 "$APPLET_TESTS/notify-server.py" "$T/notes.json" 2>"$T/notes.log" &
NOTES_PID=$!
defer "kill_wait $NOTES_PID"
notes() {
        jq -c "$1" "$T/notes.json" 2>/dev/null
}
notes_owned() {
        [ "$(notes .owner)" = true ]
}
wait_until 30 notes_owned ||
        bail "the notification server did not own its name: $(cat "$T/notes.log")"

NOTIFY_INTERVAL=4
PACKETSCOPE_APPLET_ICONDIR=$SRCDIR/applet/icons PACKETSCOPE_APPLET_LOCALEDIR=$BUILDDIR/po \
        "$APPLET" --notify-interval=$NOTIFY_INTERVAL >"$T/applet.log" 2>&1 &
APPLET_PID=$!
defer "kill_wait $APPLET_PID"

sni_state() {
        jq -c '{r: .registrations, alive, icon: .props.IconName, status: .props.Status,
                title: .props.Title}' "$T/sni.json" 2>/dev/null
}
# expect_tray ICON STATUS TITLE-REGEX DESCRIPTION: waits (60 s) for the item to show them.
expect_tray() {
        local f=".alive and .props.IconName == \"$1\" and .props.Status == \"$2\" and
                 (.props.Title | test(\"$3\"))"
        wait_until 60 sni_has "$f"
        ok $? "$4" "item: $(sni_state)" "applet: $(tail -n 5 "$T/applet.log")"
}

# screenshot NAME [DISPLAY]
screenshot() {
        local f=$SHOTS/$1.png colours
        DISPLAY=${2:-$DISPLAY} import -window root "$f" 2>>"$T/import.log"
        colours=$(identify -format '%k' "$f" 2>/dev/null)
        # A blank (or all-black) screen has one colour; the window alone has dozens.
        ok "$([ "${colours:-0}" -ge 16 ] && echo 0 || echo 1)" \
           "screenshot $1 is not blank ($colours colours)" "$(tail -n 3 "$T/import.log")"
}

# How long each AT-SPI session took, kept beside the screenshots.
TIMES=$SHOTS/window-times.log
win() {
        local t r
        t=$(sys_now_ms)
        timeout 90 /usr/bin/python3 "$APPLET_TESTS/window.py" "$@" 2>>"$T/window.log"
        r=$?
        echo "$(($(sys_now_ms) - t)) ms: $*" >>"$TIMES"
        return $r
}

wait_until 60 sni_has '.registrations >= 1 and .alive'
ok $? "the applet registers its item with the StatusNotifierWatcher" "$(cat "$T/sni.json")"
like "$(jq -r .path "$T/sni.json")" "^/" "it registers an object path"
expect_tray packetscope-guarding Active "^packetscope: Guarding\\\\. 1 link guarded, " \
        "one link guarded: icon guarding, status Active, the title says 1 link guarded"

# --- drops: an ICMP echo rule, pings from the namespace
out=$(pscall "$FILTERS_PATH" "$FILTERS" Add 'a{sv}' 3 rule_type s icmp icmp_type y 8 \
        comment s "applet test")
ok $? "a rule dropping pings is added" "$out"
RID=$(jq -r '.data[0]' <<<"$out")
ping_ns() {
        in_ns "$A_NS" ping -n -q -c "$1" -i 0.2 -W 1 "$A_H4" 2>/dev/null |
                sed -n 's/.* \([0-9]\+\) received.*/\1/p'
}
is "$(ping_ns 5)" 0 "the rule drops the 5 pings"
expect_tray packetscope-dropping NeedsAttention "^packetscope: Dropping packets\\\\. " \
        "drops: icon dropping now, status NeedsAttention"
# --- the window
"$APPLET" --open-window >>"$T/applet.log" 2>&1
ok $? "packetscope-applet --open-window reaches the running applet"
got=$(win text "^Link $A_IF: .*; [0-9]+ packets, 5 dropped$" 60 :: \
        text "^Rates of $A_IF over the last 5 minutes: at most [0-9]+ packets/s$")
ok $? "the window's link row shows the link with exactly 5 dropped, and its sparkline" "$got" \
   "$(tail -n 3 "$T/window.log")"
screenshot window-links
# The connections page: one TCP connection from the namespace, its row by the ports it used.
TCP_PORT=$(tcp_exchange "$A_NS" "$A_H4" 3000)
ok $? "a TCP connection from the namespace carries 3000 bytes" "port: $TCP_PORT"
# The drops page: the samples of the Dropped signal, by source (ICMP: no port).
got=$(win page Connections :: text "^$A_H4:$TCP_PORT\$" 60 :: page "Recent drops" :: \
        text "^$A_N4\$" 30 :: page Rules :: \
        text "^drop icmp type 8 from any to any — applet test$" 30 :: rule "$RID")
ok $? "the connections page lists the connection by its local address and port $A_H4:$TCP_PORT," \
   "the recent drops page the pings' source $A_N4, the Rules page the rule as the daemon" \
   "describes it" "$got" "$(tail -n 3 "$T/window.log")"
is "$(tail -n 1 <<<"$got")" on "rule $RID's switch is on"
screenshot window-rules
# The state lasts 10 s after the last drop, then returns by itself.
expect_tray packetscope-guarding Active "^packetscope: Guarding\\\\. " \
        "10 s without drops: icon guarding again"
is "$(notes '.notes | length')" 0 "notifications are off by default: none for the drops"
win toggle "$RID" >/dev/null
ok $? "rule $RID's switch is clicked" "$(tail -n 3 "$T/window.log")"
rule_enabled() {
        busctl --system get-property "$PS_NAME" "$FILTERS_PATH/$RID" "$FILTER" Enabled
}
rule_is_off() {
        [ "$(rule_enabled)" = "b false" ]
}
switch_is_off() {
        [ "$(win rule "$RID")" = off ]
}
wait_until 30 rule_is_off
is "$(rule_enabled)" "b false" "the daemon's rule $RID is disabled"
wait_until 30 switch_is_off
ok $? "the switch stays off (the daemon's state read back)" "$(tail -n 3 "$T/window.log")"
is "$(ping_ns 3)" 3 "the disabled rule drops nothing: 3 pings answered"
screenshot window-rule-off

# --- the keyboard, the names, and the rule dialog
rules_json() {
        pscall "$FILTERS_PATH" "$FILTERS" List
}
# rule_field COMMENT FIELD: the field of the daemon's rule with that comment ("" if none)
rule_field() {
        rules_json | jq -r --arg c "$1" --arg f "$2" \
                '[.data[0][] | select(.comment.data == $c) | .[$f].data | tostring] | join(" ")'
}
n_rules() {
        rules_json | jq '.data[0] | length'
}
N_RULES=$(n_rules)
got=$(win page Rules :: click "Add rule…" :: unnamed :: keyboard "Add rule…" Protocol \
        "Source address" "Source port" "Destination address" "Destination port" "ICMP type" \
        Priority "Log drops" Comment Add Cancel :: click Cancel :: gone "^New rule$")
ok $? "every control of the window and the rule dialog has an accessible name and takes the" \
   "focus, and the dialog's fields and buttons have mnemonics" "$got" \
   "$(tail -n 3 "$T/window.log")"
got=$(win click "Add rule…" :: set Protocol udp :: set "Destination port" 70000 :: \
        set Comment "applet dialog" :: \
        click Add :: text "field 'dst_port': .*70000")
ok $? "a port the daemon refuses: its message is shown in the dialog" "$got" \
   "$(tail -n 3 "$T/window.log")" "$(tail -n 3 "$T/applet.log")"
screenshot dialog-refused
is "$(n_rules)" "$N_RULES" "nothing was added"
win set "Destination port" 5353 :: click Add :: gone "^New rule$" >/dev/null
ok $? "the corrected rule is added and the dialog closes" "$(tail -n 3 "$T/window.log")"
is "$(rule_field "applet dialog" protocol) $(rule_field "applet dialog" dst_port)" "udp 5353" \
   "the daemon has the rule: udp to port 5353"
NEW=$(rule_field "applet dialog" id)
win click "Edit rule $NEW" :: set "Destination port" 5354 :: set Comment "applet edit" :: \
        click Save :: gone "^Rule $NEW\$" >/dev/null
ok $? "rule $NEW is changed in its dialog" "$(tail -n 3 "$T/window.log")"
is "$(rule_field "applet edit" id) $(rule_field "applet edit" dst_port)" "$NEW 5354" \
   "the daemon's rule $NEW has the new port and comment"
win click "Edit rule $NEW" :: click Delete :: gone "^Rule $NEW\$" :: gone "^Edit rule $NEW\$" \
        >/dev/null
ok $? "rule $NEW is deleted from its dialog and leaves the list" "$(tail -n 3 "$T/window.log")"
is "$(rule_field "applet edit" id)" "" "the daemon has no rule $NEW any more"

# The fields of an ICMP error rule, its priority, timeout and logging: port unreachable
# quoting a UDP datagram to port 53, not logged, read back from the daemon field by field.
win click "Add rule…" :: set Protocol icmp :: set "ICMP type" 3 :: set "ICMP code" 3 :: \
        set "Quoted protocol" udp :: set "Quoted destination address" 192.0.2.53 :: \
        set "Quoted destination port" 53 :: set Priority 7 :: set "Timeout in seconds" 900 :: \
        click "Log drops" :: set Comment "applet icmp error" :: click Add :: \
        gone "^New rule$" >/dev/null
ok $? "an ICMP error rule is added through the dialog" "$(tail -n 3 "$T/window.log")" \
   "$(tail -n 3 "$T/applet.log")"
got=""
for f in icmp_type icmp_code inner_protocol inner_dst_ip inner_dst_port priority timeout log; do
        got="$got $f=$(rule_field "applet icmp error" $f)"
done
is "$got" " icmp_type=3 icmp_code=3 inner_protocol=udp inner_dst_ip=192.0.2.53 inner_dst_port=53 priority=7 timeout=900 log=false" \
   "the daemon has its ICMP type and code, the quoted datagram, priority 7, timeout 900 s, not logged"
ICMPERR=$(rule_field "applet icmp error" id)
win click "Edit rule $ICMPERR" :: set Priority "" :: set "Timeout in seconds" "" :: \
        click "Log drops" :: click Save :: gone "^Rule $ICMPERR\$" >/dev/null
ok $? "rule $ICMPERR's priority and timeout emptied and logging switched on in its dialog" \
   "$(tail -n 3 "$T/window.log")"
is "$(rule_field "applet icmp error" priority) $(rule_field "applet icmp error" timeout) $(rule_field "applet icmp error" log)" \
   "0 0 true" "the daemon's rule $ICMPERR has priority 0, no timeout and is logged"
pscall "$FILTERS_PATH/$ICMPERR" "$FILTER" Delete >/dev/null
ok $? "rule $ICMPERR is deleted again"

# The TCP flags: SYN set and ACK clear (a connection's first segment) are flags 2, mask 18;
# ACK unmarked again in the rule's dialog leaves flags 2, mask 2.
win click "Add rule…" :: set Protocol tcp :: set "Destination port" 8080 :: click "SYN set" :: \
        click "ACK clear" :: set Comment "applet syn" :: click Add :: gone "^New rule$" >/dev/null
ok $? "a rule with TCP flags is added through the dialog" "$(tail -n 3 "$T/window.log")" \
   "$(tail -n 3 "$T/applet.log")"
is "$(rule_field "applet syn" tcp_flags) $(rule_field "applet syn" tcp_flags_mask)" "2 18" \
   "the daemon's rule has tcp_flags 2 (SYN) and tcp_flags_mask 18 (SYN, ACK)"
SYNRULE=$(rule_field "applet syn" id)
win click "Edit rule $SYNRULE" :: click "ACK clear" :: click Save :: gone "^Rule $SYNRULE\$" \
        >/dev/null
ok $? "rule $SYNRULE's ACK unmarked in its dialog" "$(tail -n 3 "$T/window.log")"
is "$(rule_field "applet syn" tcp_flags) $(rule_field "applet syn" tcp_flags_mask)" "2 2" \
   "the daemon's rule $SYNRULE has tcp_flags 2 and tcp_flags_mask 2: SYN set, ACK not looked at"
pscall "$FILTERS_PATH/$SYNRULE" "$FILTER" Delete >/dev/null
ok $? "rule $SYNRULE is deleted again"

# --- on trial: Filters.Apply, the countdown, Roll back, and Confirm
trial() {
        win click "Add rule…" :: set Protocol tcp :: set "Destination port" 7 :: \
                set Comment "$1" :: click "Roll back unless confirmed within" :: click Add :: \
                text "^Rolls back in [0-9]+ seconds unless confirmed$"
}
got=$(trial "applet trial")
ok $? "a rule added on trial shows the countdown" "$got" "$(tail -n 3 "$T/window.log")"
is "$(rule_field "applet trial" dst_port)" 7 "the daemon applied it"
screenshot window-countdown
win click "Roll back" :: text "^The applied rules were rolled back$" :: \
        gone "^Rolls back in" >/dev/null
ok $? "Roll back: the window says so and the countdown goes" "$(tail -n 3 "$T/window.log")"
is "$(rule_field "applet trial" dst_port)" "" "the daemon rolled the rule back"
got=$(trial "applet kept")
ok $? "a second trial shows the countdown" "$got" "$(tail -n 3 "$T/window.log")"
win click Confirm :: text "^The applied rules were confirmed and are kept$" :: \
        gone "^Rolls back in" >/dev/null
ok $? "Confirm: the window says so and the countdown goes" "$(tail -n 3 "$T/window.log")"
KEPT=$(rule_field "applet kept" id)
is "$(rule_field "applet kept" dst_port)" 7 "the daemon kept the confirmed rule $KEPT"
N_RULES=$(n_rules)

# --- bans by the keyboard alone: real key presses (xdotool, through the X server's XTEST, the
# way a keyboard's reach GTK) into the window on the Bans page, the dialog's fields filled by
# typing, Tab between controls, Enter and space to activate; the daemon's table read back
# with packetscopectl.
BANS_PATH=$PS_PATH/bans
BANS=org.packetscope.Guarder1.Bans
BAN_ADDR=198.51.100.77
ctl() {
        timeout 30 "$PACKETSCOPECTL" --no-ask-password "$@"
}
# ban_of ADDRESS: the daemon's row of that ban ({} if none) as packetscopectl lists it
ban_of() {
        ctl --json=short bans list |
                jq -c --arg a "$1" '[.[] | select(.address == $a)] | .[0] // {} |
                                    {address, origin, reason, created, until}'
}
# xkeys DISPLAY TITLE-REGEX KEY...: the keyboard focus to that window (what a window manager
# does when it is clicked or raised), then the keys pressed, one at a time
xkeys() {
        local d=$1 title=$2 wid
        shift 2
        wid=$(DISPLAY=$d timeout 30 xdotool search --sync --onlyvisible --name "$title" |
                head -n 1)
        [ -n "$wid" ] || return 1
        DISPLAY=$d xdotool windowfocus --sync "$wid" || return 1
        DISPLAY=$d xdotool key --delay 80 "$@"
}
# xtype DISPLAY TEXT: typed into the focused control
xtype() {
        DISPLAY=$1 xdotool type --delay 40 "$2"
}
got=$(win page Bans :: text "^0 bans held$" 30)
ok $? "the daemon has the Bans interface: the window shows the Bans page, with no bans held" \
   "$got" "$(tail -n 3 "$T/window.log")"
# Alt+N shows the Bans page with the focus on its tab; Tab reaches "Ban an address…" (the page's
# first control), Enter opens the dialog with the focus in its Address field.
xkeys "$DISPLAY" '^packetscope$' alt+n Tab Return &&
        xkeys "$DISPLAY" '^New ban$' ctrl+a
ok $? "Alt+N, Tab, Enter: the ban dialog opens" "$(tail -n 3 "$T/applet.log")"
xtype "$DISPLAY" "$BAN_ADDR" && xkeys "$DISPLAY" '^New ban$' Tab ctrl+a &&
        xtype "$DISPLAY" 30 && xkeys "$DISPLAY" '^New ban$' Tab && xtype "$DISPLAY" "by keyboard" &&
        xkeys "$DISPLAY" '^New ban$' Return
ok $? "the address, 30 minutes and a reason typed, Enter pressed"
ban_is() {
        [ "$(ban_of "$BAN_ADDR" | jq -r .reason)" = "$1" ]
}
wait_until 30 ban_is "by keyboard"
row=$(ban_of "$BAN_ADDR")
is "$(jq -c '{address, origin, reason, minutes: ((.until - .created) / 60000000 | round)}' \
        <<<"$row")" \
   "{\"address\":\"$BAN_ADDR\",\"origin\":\"manual\",\"reason\":\"by keyboard\",\"minutes\":30}" \
   "packetscopectl lists the ban as typed: $BAN_ADDR, manual, 'by keyboard', for 30 minutes"
got=$(win gone "^New ban$" :: text "^$BAN_ADDR\$" 30 :: text "^by keyboard\$" :: \
        text "^1 ban held$" 30)
ok $? "the dialog closed and the Bans page lists the ban (from the Banned signal)" "$got" \
   "$(tail -n 3 "$T/window.log")"
screenshot window-bans
# Unban: Alt+N, Tab past "Ban an address…" and the Unban button (not focusable while nothing
# is selected) into the list, space selects the ban under the cursor, Shift+Tab back to
# Unban, space presses it.
xkeys "$DISPLAY" '^packetscope$' alt+n Tab Tab space shift+Tab space
ok $? "Alt+N, Tab, Tab, space, Shift+Tab, space: the ban selected and Unban pressed"
got=$(win text "^Address: $BAN_ADDR\$" 30 :: text "^Origin: manual\$" :: \
        text "^Reason: by keyboard\$" :: text "^Lift this ban now\?\$")
ok $? "Unban asks first, showing the ban's address, origin and reason" "$got" \
   "$(tail -n 3 "$T/window.log")"
is "$(ban_of "$BAN_ADDR" | jq -r .address)" "$BAN_ADDR" "asked, not yet lifted: the ban is held"
screenshot dialog-unban
xkeys "$DISPLAY" '^Unban$' alt+u
ok $? "Alt+U in the dialog confirms"
ban_gone() {
        [ "$(ban_of "$BAN_ADDR")" = '{"address":null,"origin":null,"reason":null,"created":null,"until":null}' ]
}
wait_until 30 ban_gone
ok $? "packetscopectl lists no ban of $BAN_ADDR any more" "$(ban_of "$BAN_ADDR")"
got=$(win gone "^$BAN_ADDR\$" 30 :: text "^0 bans held$" 30)
ok $? "the window's list lost it (the Unbanned signal)" "$got" "$(tail -n 3 "$T/window.log")"

# The allowlist view follows the Allowlist property (its PropertiesChanged).
ALLOW_ADDR=203.0.113.9
pscall "$BANS_PATH" "$BANS" AllowlistAdd s "$ALLOW_ADDR" >/dev/null
ok $? "Bans.AllowlistAdd $ALLOW_ADDR"
got=$(win text "^$ALLOW_ADDR\$" 30)
ok $? "the Bans page's allowlist shows $ALLOW_ADDR" "$got" "$(tail -n 3 "$T/window.log")"
pscall "$BANS_PATH" "$BANS" AllowlistRemove s "$ALLOW_ADDR" >/dev/null
ok $? "Bans.AllowlistRemove $ALLOW_ADDR"
got=$(win gone "^$ALLOW_ADDR\$" 30)
ok $? "and no longer once it is removed" "$got" "$(tail -n 3 "$T/window.log")"

# --- health: the page the Health interface brings, its figures, and an anomaly opened by a
# threshold every machine crosses (memory over 1 %) and ended when the threshold is put back
HEALTH_PATH=$PS_PATH/health
HEALTH=org.packetscope.Guarder1.Health
threshold_of() {
        busctl --system --json=short get-property "$PS_NAME" "$HEALTH_PATH" "$HEALTH" Thresholds |
                jq -r --arg k "$1" '.data[$k].data'
}
memory_anomalies() {
        pscall "$HEALTH_PATH" "$HEALTH" ListAnomalies 'a{sv}' 1 state s open |
                jq '[.data[0][] | select(.kind.data == "memory")] | length'
}
memory_anomalies_are() {
        [ "$(memory_anomalies)" = "$1" ]
}
got=$(win page Health :: text "^CPU in use: [0-9]+\.[0-9] %$" 30 :: \
        text "^Memory in use: [0-9]+\.[0-9] %$" :: text "^[0-9]+ open anomal(y|ies)$")
ok $? "the daemon has the Health interface: the window's Health page shows CPU, memory and" \
   "the open anomalies" "$got" "$(tail -n 3 "$T/window.log")"
MEM_THRESHOLD=$(threshold_of memory_percent)
MIN_DURATION=$(threshold_of min_duration_usec)
set_thresholds() {
        pscall "$HEALTH_PATH" "$HEALTH" SetThresholds 'a{sv}' 2 memory_percent d "$1" \
                min_duration_usec t "$2" >/dev/null
}
set_thresholds 1 0
ok $? "Health.SetThresholds memory_percent=1 min_duration_usec=0"
wait_until 60 memory_anomalies_are 1
ok $? "the daemon opened a memory anomaly" "$(memory_anomalies)"
got=$(win text "^memory\$" 30 :: text "^1\.0 %\$")
ok $? "the Health page lists it (AnomalyStarted): kind memory, threshold 1.0 %" "$got" \
   "$(tail -n 3 "$T/window.log")"
screenshot window-health
set_thresholds "$MEM_THRESHOLD" "$MIN_DURATION"
ok $? "the thresholds are put back: memory_percent=$MEM_THRESHOLD min_duration_usec=$MIN_DURATION"
wait_until 60 memory_anomalies_are 0
ok $? "the daemon ended the memory anomaly" "$(memory_anomalies)"
got=$(win gone "^memory\$" 30)
ok $? "the Health page no longer lists it (AnomalyEnded)" "$got" "$(tail -n 3 "$T/window.log")"
is "$(notes '.notes | length')" 0 "notifications off: none for the ban nor the anomaly either"
# The thresholds dialog: a value that is no number is refused in the dialog; the CPU threshold
# and the minimum duration changed there are the daemon's, read back from Thresholds.
got=$(win click "Thresholds…" :: text "^Health thresholds$" 30 :: set "Memory threshold" lots :: \
        click Set :: text "^Not a number: memory_percent$" 30 :: \
        set "Memory threshold" "$MEM_THRESHOLD" :: set "CPU threshold" 99.5 :: \
        set "Minimum duration" 30 :: click Set :: gone "^Health thresholds$" 30)
ok $? "Thresholds…: a field that is not a number is refused in the dialog, then CPU 99.5 % and \
30 s are set" "$got" "$(tail -n 3 "$T/window.log")" "$(tail -n 3 "$T/applet.log")"
is "$(threshold_of cpu_percent) $(threshold_of memory_percent) $(threshold_of min_duration_usec)" \
   "99.5 $MEM_THRESHOLD 30000000" \
   "the daemon's thresholds: cpu_percent 99.5, memory_percent unchanged, min_duration_usec 30 s"
pscall "$HEALTH_PATH" "$HEALTH" SetThresholds 'a{sv}' 2 cpu_percent d 100 \
        min_duration_usec t "$MIN_DURATION" >/dev/null
ok $? "the thresholds are put back: cpu_percent=100 min_duration_usec=$MIN_DURATION"

# --- AI: a job generated from a prompt, its analysis and suggestions read, its rules applied
# on trial (the countdown) and rolled back, each step read back from the daemon
AI_PATH=$PS_PATH/ai
AI=org.packetscope.Guarder1.AI
ai_jobs() {
        busctl --system --json=short get-property "$PS_NAME" "$AI_PATH" "$AI" Jobs | jq -c '.data'
}
is "$(ai_jobs)" "[]" "the daemon has no AI job yet"
got=$(win page AI :: set Prompt "which hosts probe telnet" :: click Generate :: \
        text "^Job [0-9]+: done, 2 rules proposed$" 60 :: \
        text "^Two hosts probe Telnet; SSDP floods from one network\\.$" :: \
        text "^• Close Telnet" :: text "Rate-limit SSDP$")
ok $? "AI: a prompt typed, Generate clicked; the job is shown done with its analysis, two" \
   "suggestions and two rules" "$got" "$(tail -n 3 "$T/window.log")" "$(tail -n 3 "$T/applet.log")"
JOB=$(ai_jobs | jq -r '.[0]')
is "$(busctl --system --json=short get-property "$PS_NAME" "$JOB" "${AI}Job" State | jq -r .data)" \
   done "the daemon's job $JOB is done"
grep -q "which hosts probe telnet" "$T/srv/requests.jsonl"
ok $? "the prompt reached the model"
screenshot window-ai
got=$(win click "Apply on trial" :: text "^Rolls back in [0-9]+ seconds unless confirmed$" 30)
ok $? "Apply on trial: the countdown shows" "$got" "$(tail -n 3 "$T/window.log")"
is "$(rule_field "Block Telnet" dst_port)" 23 "the daemon applied the job's rule 'Block Telnet'"
win click "Roll back" :: gone "^Rolls back in" 30 >/dev/null
ok $? "Roll back: the countdown goes" "$(tail -n 3 "$T/window.log")"
is "$(rule_field "Block Telnet" dst_port)" "" "the daemon rolled the job's rules back"
win click "Delete job" :: gone "^Job $(basename "$JOB"): " 30 >/dev/null
ok $? "Delete job: the finished job leaves the page" "$(tail -n 3 "$T/window.log")"
is "$(ai_jobs)" "[]" "the daemon forgot job $JOB"
# A job the model never answers (the server holds the request): cancelled while it runs.
echo hang >"$T/srv/scenario"
got=$(win click Generate :: text "^Job [0-9]+: (queued|running), 0 rules proposed$" 30 :: \
        click "Cancel job" :: \
        text "^Job [0-9]+: cancelled, 0 rules proposed; error: cancelled on request$" 30)
ok $? "a job the model does not answer is shown running, and Cancel job cancels it" "$got" \
   "$(tail -n 3 "$T/window.log")" "$(tail -n 3 "$T/applet.log")"
JOB=$(ai_jobs | jq -r '.[0]')
is "$(busctl --system --json=short get-property "$PS_NAME" "$JOB" "${AI}Job" State | jq -r .data)" \
   cancelled "the daemon's job $JOB is cancelled"
win click "Delete job" :: gone "^Job $(basename "$JOB"): " 30 >/dev/null
ok $? "Delete job: the cancelled job leaves the page" "$(tail -n 3 "$T/window.log")"
is "$(ai_jobs)" "[]" "the daemon has no AI job left"
echo good >"$T/srv/scenario"

# Every control of the three pages and of the ban dialog: a name, the focus, the mnemonics.
got=$(win page Bans :: unnamed :: keyboard "Ban an address…" Unban :: \
        click "Ban an address…" :: unnamed :: \
        keyboard "Address to ban" "Minutes banned" Reason Ban Cancel :: click Cancel :: \
        gone "^New ban$" :: page Health :: unnamed :: keyboard :: page AI :: unnamed :: \
        keyboard Prompt Generate Shadow "Apply on trial" "Cancel job" "Delete job" :: \
        page Links :: unnamed :: keyboard "Enter panic mode…")
ok $? "every control of the Bans, Health, AI and Links pages and of the ban dialog has an \
accessible name and takes the focus, and their buttons and fields have mnemonics" "$got" \
   "$(tail -n 3 "$T/window.log")"

# --- panic mode: entered from the window behind a confirm dialog, shown by a banner and by
# the tray, and left the same way; each step read back from the daemon's Panic property
panic_is() {
        [ "$(busctl --system get-property "$PS_NAME" "$PS_PATH" "$PS_MANAGER" Panic)" = "b $1" ]
}
panic_is false
ok $? "the daemon is not in panic mode"
got=$(win page Links :: click "Enter panic mode…" :: text "^Enter panic mode now\?\$" 30)
ok $? "Enter panic mode… asks first" "$got" "$(tail -n 3 "$T/window.log")"
panic_is false
ok $? "asked, not yet done: the daemon is not in panic mode"
got=$(win click "Enter panic mode" :: gone "^Enter panic mode now" 30 :: \
        text "^Panic mode: all traffic except management is dropped\$" 30)
ok $? "confirmed: the dialog closes and the window shows the panic banner" "$got" \
   "$(tail -n 3 "$T/window.log")" "$(tail -n 3 "$T/applet.log")"
wait_until 30 panic_is true
ok $? "the daemon is in panic mode"
expect_tray packetscope-panic NeedsAttention "^packetscope: Panic mode\\\\. 1 link guarded, " \
        "panic mode: icon panic, status NeedsAttention, the title says panic mode"
is "$(ping_ns 3)" 0 "panic mode drops the 3 pings (no rule does)"
screenshot window-panic
got=$(win click "Leave panic mode…" :: text "^Leave panic mode now\?\$" 30 :: \
        click "Leave panic mode" :: gone "^Panic mode: all traffic" 30)
ok $? "Leave panic mode… asks, and confirmed the banner goes" "$got" \
   "$(tail -n 3 "$T/window.log")"
wait_until 30 panic_is false
ok $? "the daemon left panic mode"
expect_tray packetscope-guarding Active "^packetscope: Guarding\\\\. " \
        "panic mode left: icon guarding again"
is "$(ping_ns 3)" 3 "3 pings answered again"

# --- a user polkit refuses: its own session bus, display and applet. Not root's display: the
# user's AT-SPI bus launcher would announce itself on that display's root window, where
# root's AT-SPI clients would then look.
require setpriv useradd userdel
Xvfb -displayfd 5 -screen 0 1024x768x24 -nolisten tcp 5>"$T/udisplay" 2>"$T/uxvfb.log" &
UXVFB_PID=$!
defer "kill_wait $UXVFB_PID"
wait_until 30 test -s "$T/udisplay" || bail "the user's Xvfb did not start: $(cat "$T/uxvfb.log")"
UDISPLAY=:$(cat "$T/udisplay")
PSUSER=psa$$
useradd --system --no-create-home --home-dir / --shell /usr/sbin/nologin --user-group "$PSUSER" ||
        bail "useradd failed"
defer "userdel '$PSUSER'; groupdel '$PSUSER'"
# Whatever still runs as that user at the end (its session bus may have started the AT-SPI
# bus launcher) was started by this test: stopped by PID before the user is deleted.
defer 'for p in $(ps -o pid= -u "$PSUSER"); do kill "$p"; done; sleep 0.5;
       for p in $(ps -o pid= -u "$PSUSER"); do kill -KILL "$p"; done'
UHOME=$T/home-$PSUSER
mkdir -p "$UHOME/run" "$UHOME/dogtail"
chown -R "$PSUSER:$PSUSER" "$UHOME"
chmod 700 "$UHOME/run"
# as_user COMMAND...: replaces the calling (sub)shell, so that "as_user ... &" leaves the
# command's own PID in $!; call it in a subshell otherwise.
as_user() {
        exec setpriv --reuid="$PSUSER" --regid="$PSUSER" --clear-groups \
                env -i HOME="$UHOME" PATH="$PATH" DISPLAY="$UDISPLAY" XDG_RUNTIME_DIR="$UHOME/run" \
                GSETTINGS_BACKEND=memory DOGTAIL_DIR="$UHOME/dogtail" \
                DBUS_SESSION_BUS_ADDRESS="${USESSION:-}" \
                DBUS_SYSTEM_BUS_ADDRESS="$DBUS_SYSTEM_BUS_ADDRESS" "$@"
}
as_user dbus-daemon --session --nofork --print-address=1 >"$T/usession" 2>"$T/usession.log" &
USESSION_PID=$!
defer "kill_wait $USESSION_PID"
wait_until 30 test -s "$T/usession" || bail "the user's session bus did not start: $(cat "$T/usession.log")"
USESSION=$(head -n 1 "$T/usession")
as_user env PACKETSCOPE_APPLET_ICONDIR="$SRCDIR/applet/icons" \
        PACKETSCOPE_APPLET_LOCALEDIR="$BUILDDIR/po" LC_ALL=C.UTF-8 LANGUAGE=de \
        "$APPLET" --open-window >"$T/uapplet.log" 2>&1 &
UAPPLET_PID=$!
defer "kill_wait $UAPPLET_PID"
uwin() {
        local t r
        t=$(sys_now_ms)
        (as_user env PS_WINDOW_LANG=de timeout 90 /usr/bin/python3 "$APPLET_TESTS/window.py" "$@") \
                2>>"$T/uwindow.log"
        r=$?
        echo "$(($(sys_now_ms) - t)) ms: (as $PSUSER) $*" >>"$TIMES"
        return $r
}
uswitch_is_off() {
        [ "$(uwin rule "$RID")" = off ]
}
uwin page Regeln >/dev/null
wait_until 60 uswitch_is_off
ok $? "as $PSUSER: rule $RID's switch shows it off" "$(tail -n 3 "$T/uwindow.log")"
got=$(uwin toggle "$RID" :: text "^Nicht berechtigt, Regel $RID zu ändern: " 60)
ok $? "as $PSUSER: the switch is clicked and the window says, in German, that the change was" \
   "not authorized" "$got" "$(tail -n 3 "$T/uwindow.log")" "$(tail -n 5 "$T/uapplet.log")"
wait_until 30 uswitch_is_off
ok $? "as $PSUSER: the switch returns to off" "$(tail -n 3 "$T/uwindow.log")"
is "$(rule_enabled)" "b false" "the daemon's rule $RID is still disabled"
got=$(uwin click "Regel $KEPT bearbeiten" :: click Löschen :: text "^Nicht berechtigt: " 60 :: \
        click Abbrechen :: click "Regel hinzufügen…" :: set Protokoll udp :: \
        set Kommentar "applet refused" :: click Hinzufügen :: text "^Nicht berechtigt: " 60)
ok $? "as $PSUSER: Delete and Add in the rule dialog say the change was not authorized" "$got" \
   "$(tail -n 3 "$T/uwindow.log")" "$(tail -n 5 "$T/uapplet.log")"
screenshot window-denied "$UDISPLAY"
# The keyboard in the refused user's window: a ban asked for the same way is refused, the
# dialog says so in German and stays open, and the daemon has no such ban.
uwin click Abbrechen :: gone "^Neue Regel$" >/dev/null
ok $? "as $PSUSER: the refused rule dialog is closed" "$(tail -n 3 "$T/uwindow.log")"
xkeys "$UDISPLAY" '^packetscope$' alt+p Tab Return && xkeys "$UDISPLAY" '^Neue Sperre$' ctrl+a &&
        xtype "$UDISPLAY" "$BAN_ADDR" && xkeys "$UDISPLAY" '^Neue Sperre$' Return
ok $? "as $PSUSER: Alt+P, Tab, Enter, the address typed, Enter"
got=$(uwin text "^Nicht berechtigt: " 60 :: text "^Neue Sperre$")
ok $? "as $PSUSER: the ban dialog says, in German, that the ban was not authorized, and stays" \
   "open" "$got" "$(tail -n 3 "$T/uwindow.log")" "$(tail -n 5 "$T/uapplet.log")"

uwin click Abbrechen :: gone "^Neue Sperre$" >/dev/null
ok $? "as $PSUSER: the refused ban dialog is closed" "$(tail -n 3 "$T/uwindow.log")"
# Panic mode and an AI job, refused the same way: the window says so, the daemon is unchanged.
got=$(uwin page Schnittstellen :: click "Panikmodus einschalten…" :: \
        click "Panikmodus einschalten" :: text "^Nicht berechtigt: " 60 :: \
        text "^Panikmodus jetzt einschalten\?$")
ok $? "as $PSUSER: panic mode confirmed in its dialog is not authorized, said in German, and \
the dialog stays open" "$got" "$(tail -n 3 "$T/uwindow.log")" "$(tail -n 5 "$T/uapplet.log")"
screenshot dialog-panic-denied "$UDISPLAY"
uwin click Abbrechen :: gone "^Panikmodus jetzt einschalten" >/dev/null
ok $? "as $PSUSER: the refused panic dialog is closed" "$(tail -n 3 "$T/uwindow.log")"
panic_is false
ok $? "the daemon is not in panic mode"
got=$(uwin page KI :: set Frage "refused" :: click Generieren :: text "^Nicht berechtigt: " 60)
ok $? "as $PSUSER: Generate on the AI page says, in German, that it was not authorized" \
   "$got" "$(tail -n 3 "$T/uwindow.log")" "$(tail -n 5 "$T/uapplet.log")"
is "$(ai_jobs)" "[]" "the daemon has no AI job"

is "$(n_rules) $(rule_field "applet kept" id) $(rule_field "applet refused" id)" "$N_RULES $KEPT " \
   "the daemon's rules are unchanged: rule $KEPT is there, nothing was added"
ban_gone
ok $? "and it holds no ban of $BAN_ADDR" "$(ban_of "$BAN_ADDR")"
kill_wait "$UAPPLET_PID"

# --- notifications, switched on in the running applet: a drop, then the daemon gone within
# the interval, are two notifications, the second one at the end of the interval
"$APPLET" --notify >>"$T/applet.log" 2>&1
ok $? "packetscope-applet --notify reaches the running applet"
pscall "$FILTERS_PATH/$RID" "$FILTER" Enable >/dev/null
ok $? "rule $RID is enabled again"
ping_ns 1 >/dev/null
has_note() {
        [ "$(notes ".notes | length")" -ge "$1" ]
}
wait_until 30 has_note 1
like "$(notes '.notes[0] | [.summary, .body, .icon]')" \
     "^\\[\"Packets dropped\",\"Rule $RID dropped icmp from $A_N4 to $A_H4 on $A_IF( \\(and [0-9]+ more events?\\))?\",\"packetscope-dropping\"\\]$" \
     "switched on: a drop is notified, with its rule, addresses and link"

# --- the daemon gone and back
monotonic_ms() {
        /usr/bin/python3 -c 'import time; print(int(time.monotonic() * 1000))'
}
STOP_MS=$(monotonic_ms)
daemon_stop main
ok $? "the daemon stops cleanly"
wait_until $((NOTIFY_INTERVAL + 30)) has_note 2
is "$(notes '[.notes[] | .summary]')" '["Packets dropped","No connection to the daemon"]' \
   "the daemon gone is the second notification"
# The server's clock is CLOCK_MONOTONIC too. Its receipt of each call lags the applet's
# sending by a scheduling delay, hence 500 ms of slack on the interval.
first=$(notes '.notes[0].time * 1000 | floor')
gap=$(notes '(.notes[1].time - .notes[0].time) * 1000 | floor')
ok "$([ $((STOP_MS - first)) -lt $((NOTIFY_INTERVAL * 1000 - 500)) ] && echo 0 || echo 1)" \
   "the daemon stopped within the interval: $((STOP_MS - first)) ms after the first notification"
ok "$([ "${gap:-0}" -ge $((NOTIFY_INTERVAL * 1000 - 500)) ] && echo 0 || echo 1)" \
   "its notification waited for the end of the interval: ${gap} ms after the first" \
   "(${NOTIFY_INTERVAL} s)"
expect_tray packetscope-gone NeedsAttention "^packetscope: No connection to the daemon\\\\. " \
        "daemon stopped: icon daemon gone, status NeedsAttention"
got=$(win text "^No connection to the daemon: " 30)
ok $? "the window says there is no connection to the daemon" "$got"
screenshot window-gone
daemon_start main || bail "the daemon did not start again: $(daemon_log main)"
expect_tray packetscope-guarding Active "^packetscope: Guarding\\\\. 1 link guarded, " \
        "daemon back with its link: icon guarding again"
# --- nothing guarded: the daemon runs, no link attached
pscall "$PS_PATH" "$PS_MANAGER" DetachLink s "$A_IF" >/dev/null
ok $? "the link is detached"
expect_tray packetscope-idle Active "^packetscope: Nothing guarded\\\\. No link is guarded$" \
        "no link attached: icon nothing guarded, status Active"
got=$(win text "^Nothing guarded: No link is guarded$" 30)
ok $? "the window says nothing is guarded" "$got"
screenshot window-idle
is "$(jq -r .registrations "$T/sni.json")" 1 "the item stayed registered once throughout"
is "$(jq -c '[.icons[]] | unique' "$T/sni.json")" \
   '["packetscope-dropping","packetscope-gone","packetscope-guarding","packetscope-idle","packetscope-panic"]' \
   "the item showed exactly the icons guarding, dropping, gone, nothing guarded and panic"
is "$(notes '.notes | length')" 2 "no notification beyond those two"

# --- notifications of bans and anomalies, through the same gate (one per interval): a ban is
# one notification; 50 bans at once are two, the first at once and the last at the end of the
# interval summing up the 48 between; an anomaly is one; switched off, none
# The gate is open: the daemon-gone notification is more than an interval old.
pscall "$BANS_PATH" "$BANS" Ban sts 192.0.2.201 600 "probing telnet" >/dev/null
ok $? "Bans.Ban 192.0.2.201 for 10 minutes"
wait_until 30 has_note 3
is "$(notes '.notes[2] | [.summary, .icon]')" '["Address banned","packetscope-dropping"]' \
   "the ban is notified"
like "$(notes '.notes[2].body')" \
     '^"192\.0\.2\.201 banned until [0-9]{4}-[0-9]{2}-[0-9]{2} [0-9:]{8} \(manual\): probing telnet"$' \
     "with its address, end, origin and reason"
sleep $((NOTIFY_INTERVAL + 1))
BATCH=$(for i in $(seq 1 50); do
        printf '{"address":["s","198.51.100.%d"],"reason":["s","burst"]},' "$i"
done)
is "$(rawcall "$BANS_PATH" "$BANS" BanBatch 'aa{sv}' "[[${BATCH%,}]]" | jq -c .reply)" "[50]" \
   "Bans.BanBatch of 50 addresses"
wait_until $((NOTIFY_INTERVAL + 30)) has_note 5
is "$(notes '[.notes[3:][] | .summary]')" '["Address banned","Address banned"]' \
   "the 50 bans are two notifications"
like "$(notes '.notes[3].body')" '^"198\.51\.100\.1 banned until .* \(manual\): burst"$' \
     "the first ban at once"
like "$(notes '.notes[4].body')" \
     '^"198\.51\.100\.50 banned until .* \(manual\): burst \(and 48 more events\)"$' \
     "the last one at the end of the interval, with the 48 between summed up"
gap=$(notes '(.notes[4].time - .notes[3].time) * 1000 | floor')
ok "$([ "${gap:-0}" -ge $((NOTIFY_INTERVAL * 1000 - 500)) ] && echo 0 || echo 1)" \
   "the second came ${gap} ms after the first (interval ${NOTIFY_INTERVAL} s)"
sleep $((NOTIFY_INTERVAL + 1))
set_thresholds 1 0
ok $? "Health.SetThresholds memory_percent=1 min_duration_usec=0"
wait_until 60 has_note 6
is "$(notes '.notes[5] | .summary')" '"Health anomaly"' "the anomaly is notified"
like "$(notes '.notes[5].body')" '^"memory at [0-9]+\.[0-9] %, over its threshold of 1\.0 %"$' \
     "with its kind, reading and threshold"
set_thresholds "$MEM_THRESHOLD" "$MIN_DURATION"
ok $? "the thresholds are put back"
wait_until 60 memory_anomalies_are 0
ok $? "the daemon ended the memory anomaly" "$(memory_anomalies)"
"$APPLET" --no-notify >>"$T/applet.log" 2>&1
ok $? "packetscope-applet --no-notify reaches the running applet"
pscall "$BANS_PATH" "$BANS" Ban sts 192.0.2.202 600 "after off" >/dev/null
ok $? "Bans.Ban 192.0.2.202 with notifications switched off"
got=$(win page Bans :: text "^192\.0\.2\.202\$" 30)
ok $? "the window lists the ban (the Banned signal reached the applet)" "$got" \
   "$(tail -n 3 "$T/window.log")"
sleep $((NOTIFY_INTERVAL + 1))
is "$(notes '.notes | length')" 6 "switched off: no notification for it, even after the interval" \
   "$(notes '.notes[6:]')"
screenshot window-bans-notified

kill -0 "$APPLET_PID" 2>/dev/null
ok $? "the applet is still running" "$(tail -n 5 "$T/applet.log")"

done_testing
