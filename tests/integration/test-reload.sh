#!/bin/bash
# SPDX-License-Identifier: MIT
#
# packetscoped --check-config: exit status 0 or 1, and every problem of the main file and the
# drop-ins as FILE:LINE: MESSAGE. Manager.Reload() and SIGHUP (what ExecReload= sends): the
# settings that can change live take effect and are named, the table sizes are named as
# waiting for the next attach, and a configuration with problems changes nothing.

set -u
. "$(dirname "$0")/lib.sh"

require_root
require dbus-daemon busctl jq timeout
[ -x "$PACKETSCOPED" ] || bail "no daemon at $PACKETSCOPED"

make_tmpdir T

# --check-config, on a directory of its own.
C=$T/check
mkdir -p "$C/packetscope.conf.d"
printf '[Guard]\nFlowTableSize=65536\n[Filters]\nManagementPorts=22 2222\n' >"$C/packetscope.conf"
out=$("$PACKETSCOPED" --check-config --config-dir "$C" 2>&1)
status=$?
is "$status:$out" "0:" "--check-config of a good configuration: exit 0, nothing printed"
printf '[Guard]\nFlowTableSize=12\nPollIntervalSec=1s\nColour=red\n[Nope]\nX=1\n' \
        >"$C/packetscope.conf"
printf '[Filters]\n\nManagementPorts=70000\n' >"$C/packetscope.conf.d/50-local.conf"
printf 'garbage\n' >"$C/packetscope.conf.d/README"
out=$("$PACKETSCOPED" --check-config --config-dir "$C" 2>&1)
status=$?
is "$status" 1 "--check-config with problems: exit 1"
want="$C/packetscope.conf:2: invalid FlowTableSize='12'; accepted: an integer from 1024 to 67108864
$C/packetscope.conf:4: unknown key 'Colour' in [Guard]; known keys: FlowTableSize, IcmpTableSize, PollIntervalSec, IdleTimeoutSec, ClosedTimeoutSec, SweepPeriodSec, MaxLinks, RankedViewMinFlows
$C/packetscope.conf:5: unknown section [Nope]; known: [Guard], [Filters], [AI], [Health], [Bans]
$C/packetscope.conf.d/50-local.conf:3: invalid ManagementPorts='70000'; accepted: up to 64 space-separated TCP ports 1-65535 (default 22)"
is "$out" "$want" "--check-config prints every problem of the file and the drop-ins as FILE:LINE: MESSAGE"

# Reload.
bus_start "$T/bus"
daemon_setup main
CONF=${DAEMON_DIR[main]}/config/packetscope.conf
daemon_start main || bail "the daemon did not start: $(daemon_log main)"
net_create A
attach "$A_IF" || bail "cannot attach to $A_IF"

prop() {
        busctl --system --json=short get-property "$PS_NAME" "$PS_PATH" "$PS_MANAGER" "$1" |
                jq -r .data
}
link_table() {
        busctl --system --json=short get-property "$PS_NAME" "$PS_PATH/link/$A_IF" "$PS_LINK" \
                FlowTableSize | jq -r .data
}
reload() {
        busctl --system --json=short call "$PS_NAME" "$PS_PATH" "$PS_MANAGER" Reload 2>&1
}
is "$(prop PollIntervalUSec)" 200000 "PollIntervalUSec before: 200000"

out=$(reload)
is "$(jq -c .data <<<"$out" 2>/dev/null || echo "$out")" '[[],[]]' "Reload with nothing changed: nothing applied, nothing pending"

cat >"$CONF" <<-EOF
	[Filters]
	ManagementPorts=2222
	[Guard]
	FlowTableSize=131072
	IcmpTableSize=4096
	PollIntervalSec=500ms
	MaxLinks=3
	EOF
out=$(reload)
is "$(jq -c .data <<<"$out" 2>/dev/null || echo "$out")" \
   '[["MaxLinks=3","PollIntervalSec=0.5s","ManagementPorts=2222"],["FlowTableSize=131072"]]' \
   "Reload names what it applied and what waits for the next attach"
is "$(prop PollIntervalUSec)" 500000 "PollIntervalUSec after: 500000"
is "$(prop FlowTableSize)" 131072 "Manager.FlowTableSize (for new links): 131072"
is "$(link_table)" 65536 "the guarded link keeps its table (65536)"
out=$(call_error "$PS_PATH/filters" org.packetscope.Guarder1.Filters Add 'a{sv}' \
        '[{"rule_type": ["s", "tcp"], "dst_port": ["s", "2222"]}]')
like "$out" "^$PS_ERR\.WouldLockOut: .*management port 2222" \
        "the new ManagementPorts= holds at once: a drop of port 2222 is refused"
grep -q "Reloaded the configuration: FlowTableSize=131072 applies to interfaces attached from now on" \
        "${DAEMON_DIR[main]}/log"
ok $? "the log names what waits for the next attach" "$(daemon_log main 5)"

# A configuration with a problem: refused, nothing changes.
printf '[Guard]\nPollIntervalSec=2s\nFlowTableSize=5\n' >"$CONF"
out=$(call_error "$PS_PATH" "$PS_MANAGER" Reload "" '[]')
like "$out" "^$PS_ERR\.InvalidConfiguration: " "Reload of a bad configuration: InvalidConfiguration"
like "$out" "^$CONF:3: invalid FlowTableSize='5'; accepted: " "which names FILE:LINE of the problem"
is "$(prop PollIntervalUSec)" 500000 "and nothing changed (PollIntervalUSec 500000)"

# SIGHUP, as ExecReload= sends it.
printf '[Guard]\nFlowTableSize=131072\nPollIntervalSec=300ms\n' >"$CONF"
kill -HUP "${DAEMON_PID[main]}"
poll_is() {
        [ "$(prop PollIntervalUSec)" = 300000 ]
}
wait_until 10 poll_is
ok $? "SIGHUP reloads: PollIntervalUSec 300000" "$(daemon_log main 5)"
grep -Eq "Reloaded the configuration from .*: applied .*PollIntervalSec=0.3s, ManagementPorts=[0-9]" \
        "${DAEMON_DIR[main]}/log"
ok $? "and logs what it applied" "$(daemon_log main 5)"
daemon_alive main
ok $? "the daemon is still running after SIGHUP"

done_testing
