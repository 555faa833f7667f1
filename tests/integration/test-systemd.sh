#!/bin/bash
# SPDX-License-Identifier: MIT
#
# The project installed the way README.md's Install section says, under a real, booted systemd:
# the host's root booted as a container (its own network namespace and bpffs), where
# `meson install -C BUILDDIR` runs as root with nothing done for it afterwards. Checks what a
# user relies on:
#   - every file is where the system's own services read it: dbus-daemon (policy, activation),
#     polkitd (actions), journald (catalog), systemd (units) — and each of them has read it;
#   - systemctl start/stop packetscope@IF, the bus name owned by the unit's daemon, a busctl
#     call, D-Bus activation of packetscope.service;
#   - journalctl -u 'packetscope*' with the daemon's messages and their catalog text;
#   - a restart that never unguards the interface, and a SIGKILLed daemon restarted by systemd
#     with the guard and its counters intact;
#   - the README's removal commands leave none of the installed files behind.

set -u
# shellcheck source=tests/integration/lib-system.sh
. "$(dirname "$0")/lib-system.sh"

require_root
require systemd-nspawn nsenter unshare meson ninja ip ping findmnt jq /usr/bin/python3
[ -f "$BUILDDIR/build.ninja" ] || bail "no build directory at $BUILDDIR (set BUILDDIR)"

T0=$(sys_now_ms)
NAME=ps-ci-$$
NS=pssd-$$
IF=ps0
PEER=ps0p
ADDR=10.231.3.1
PEER_ADDR=10.231.3.2
PINS=/sys/fs/bpf/packetscope/$IF
msg_id() {
        sed -n "s/^#define $1 *\"\\([0-9a-f]*\\)\".*/\\1/p" "$SRCDIR/src/shared/log.h"
}
MSG_ATTACHED=$(msg_id PS_MESSAGE_ATTACHED)
MSG_ADOPTED=$(msg_id PS_MESSAGE_ADOPTED)
[ -n "$MSG_ATTACHED" ] && [ -n "$MSG_ADOPTED" ] || bail "cannot read the message ids from log.h"

# Where Debian's dbus-daemon, polkitd, journald and systemd read them: fixed paths, not the
# build's idea of them. Units and the catalog may sit under /lib or /usr/lib (merged /usr).
POLICY=/usr/share/dbus-1/system.d/org.packetscope.Guarder1.conf
ACTIVATION=/usr/share/dbus-1/system-services/org.packetscope.Guarder1.service
ACTIONS=/usr/share/polkit-1/actions/org.packetscope.guarder1.policy
CATALOG_DIRS="/usr/lib/systemd/catalog /lib/systemd/catalog"
UNIT_DIRS="/usr/lib/systemd/system /lib/systemd/system"
UNITS="packetscope.service packetscope@.service packetscope-bpffs.service"

make_tmpdir T
mkdir -p "$T/stage"

# ---------------------------------------------------------------------------------------------
# Boot. Host services that have no business here are masked. The source and build trees are
# seen at the same paths inside (writable there, untouched here).

sys_ct_share "$SRCDIR" && sys_ct_share "$BUILDDIR" || bail "cannot share $SRCDIR and $BUILDDIR"
sys_ct_boot_checked "$T/ct" "$NAME" "$T/stage"

# A host with packetscope installed booted its copy too: remove it inside (the host keeps it),
# so that every file found below was put there by the install under test.
# shellcheck disable=SC2046 # one path per word, on purpose
leftovers=$(sys_in_ct sh -c '
        for f in "$@" /usr/local/sbin/packetscoped /usr/local/bin/packetscopectl \
                 /usr/sbin/packetscoped /usr/bin/packetscopectl; do
                [ -e "$f" ] && echo "$f"
        done' sh "$POLICY" "$ACTIVATION" "$ACTIONS" \
        $(for d in $UNIT_DIRS; do for u in $UNITS; do echo "$d/$u"; done; done) \
        $(for d in $CATALOG_DIRS; do echo "$d/packetscope.catalog"; done))
if [ -n "$leftovers" ]; then
        diag "the host has packetscope installed; removed inside the container:" $leftovers
        sys_in_ct sh -c 'systemctl stop "packetscope@*.service" packetscope.service
                         rm -f "$@"; rm -rf /var/lib/packetscope /sys/fs/bpf/packetscope
                         systemctl daemon-reload; journalctl --update-catalog
                         systemctl reload dbus' sh $leftovers >/dev/null 2>&1
fi

# ---------------------------------------------------------------------------------------------
# Install: README.md's command, as root, on the tree the suite has just built (hence
# --no-rebuild). Nothing else: no links, no reloads, no catalog update by the test.

t=$(sys_now_ms)
sys_in_ct meson install -C "$BUILDDIR" --no-rebuild >"$T/install.log" 2>&1
ok $? "meson install -C BUILDDIR, as root in the container ($(($(sys_now_ms) - t)) ms)" \
        "$(tail -n 30 "$T/install.log")"

in_ct_file() {
        sys_in_ct test -f "$1"
}
first_in() {
        local name=$1 d
        shift
        for d in "$@"; do
                in_ct_file "$d/$name" && { echo "$d/$name"; return 0; }
        done
        return 1
}

missing=""
for f in "$POLICY" "$ACTIVATION" "$ACTIONS"; do
        in_ct_file "$f" || missing="$missing $f"
done
# shellcheck disable=SC2086
for u in $UNITS; do
        first_in "$u" $UNIT_DIRS >/dev/null || missing="$missing $u (in $UNIT_DIRS)"
done
# shellcheck disable=SC2086
first_in packetscope.catalog $CATALOG_DIRS >/dev/null ||
        missing="$missing packetscope.catalog (in $CATALOG_DIRS)"
[ -z "$missing" ]
ok $? "installed where dbus-daemon, polkitd, journald and systemd read them" "missing:$missing" \
        "$(grep -E '^Installing' "$T/install.log")"

# Each service has read its file, with nothing done by hand: systemd loaded the units from
# there, the bus lists the name as activatable, polkitd knows the actions, the journal's
# catalog database explains the messages.
loaded=$(sys_in_ct systemctl show -p LoadState -p FragmentPath packetscope.service "packetscope@$IF.service")
fragments=$(sed -n 's/^FragmentPath=//p' <<<"$loaded" | sort -u)
[ "$(grep -cx 'LoadState=loaded' <<<"$loaded")" -eq 2 ] &&
        grep -Eqx '(/usr)?/lib/systemd/system/packetscope\.service' <<<"$fragments" &&
        grep -Eqx '(/usr)?/lib/systemd/system/packetscope@\.service' <<<"$fragments"
ok $? "systemd loaded packetscope.service and packetscope@.service from its unit directory" "$loaded"

out=$(sys_in_ct busctl list --activatable --no-legend 2>&1)
grep -q "^$PS_NAME " <<<"$out"
ok $? "dbus-daemon lists $PS_NAME as activatable" "$out"

out=$(sys_in_ct pkaction --action-id org.packetscope.guarder1.manage-links --verbose 2>&1)
grep -q 'implicit active: *auth_admin_keep' <<<"$out"
ok $? "polkitd knows the action org.packetscope.guarder1.manage-links" "$out"

out=$(sys_in_ct journalctl --list-catalog 2>&1)
grep -q "^$MSG_ATTACHED packetscope: packetscope guards @INTERFACE@\$" <<<"$out"
ok $? "the journal's catalog database has packetscope's entries (journalctl --list-catalog)" \
        "$(grep packetscope <<<"$out")"

# The binaries the units run are the ones installed.
exec_start=$(sys_in_ct systemctl show -p ExecStart --value packetscope.service |
             sed -n 's/.*path=\([^ ;]*\).*/\1/p')
VERSION=$(meson introspect "$BUILDDIR" --projectinfo | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["version"])')
out=$([ -n "$exec_start" ] && sys_in_ct "$exec_start" --version 2>&1)
grep -qw -- "$VERSION" <<<"$out"
ok $? "packetscope.service runs the installed daemon ($exec_start, version $VERSION)" "$out"

# The interface: ps0 in the container, its peer in a namespace of ours for the traffic.
ip netns add "$NS" || bail "cannot create netns $NS"
defer "ip netns del '$NS'"
ip -n "$NS" link add "$PEER" type veth peer name "$IF" netns "$SYS_CT_LEADER" ||
        bail "cannot create the veth pair"
ip -n "$NS" addr add "$PEER_ADDR/24" dev "$PEER"
ip -n "$NS" link set "$PEER" up
sys_in_ct ip addr add "$ADDR/24" dev "$IF"
sys_in_ct ip link set "$IF" up

bus_call() {
        sys_in_ct busctl call "$PS_NAME" "$PS_PATH" "$PS_MANAGER" "$@"
}
links() {
        sys_in_ct busctl get-property "$PS_NAME" "$PS_PATH" "$PS_MANAGER" Links
}
link_packets() {
        sys_in_ct busctl get-property "$PS_NAME" "$PS_PATH/link/$IF" "$PS_LINK" Packets |
                awk '{print $2}'
}
# packets_at_least N: the daemon's cached Link.Packets has reached N (it reads the counters
# once per poll interval).
packets_at_least() {
        local p
        p=$(link_packets)
        [ -n "$p" ] && [ "$p" -ge "$1" ]
}
xdp_id() {
        nsenter -t "$SYS_CT_LEADER" -n ip -d link show dev "$IF" 2>/dev/null |
                sed -n 's/.*prog\/xdp id \([0-9]*\).*/\1/p' | head -n1
}
main_pid() {
        sys_in_ct systemctl show -p MainPID --value packetscope.service
}
unit_state() {
        sys_in_ct systemctl is-active "$1"
}
guarded() {
        links | grep -q "\"$PS_PATH/link/$IF\""
}
# Journal entries of the daemon's unit as one JSON object per line.
journal_has() {
        local id=$1
        sys_in_ct journalctl -u packetscope.service -o json --no-pager |
                /usr/bin/python3 -c '
import json, sys
want_id, want_if = sys.argv[1], sys.argv[2]
for line in sys.stdin:
    e = json.loads(line)
    if (e.get("MESSAGE_ID") == want_id and e.get("INTERFACE") == want_if
            and e.get("_SYSTEMD_UNIT") == "packetscope.service"):
        sys.exit(0)
sys.exit(1)' "$id" "$IF"
}

# ---------------------------------------------------------------------------------------------
# systemctl start packetscope@ps0, the first command after the install. The container has no
# bpffs (an empty tmpfs at /sys/fs/bpf), as containers often do: packetscope-bpffs.service must
# provide one, or pinning fails.

# The health monitor samples every second here, so that an anomaly opens and closes within the
# test's time (the default is 10 s).
sys_in_ct sh -c 'mkdir -p /etc/packetscope/packetscope.conf.d &&
        printf "[Health]\nHealthIntervalSec=1\n" >/etc/packetscope/packetscope.conf.d/50-ci.conf'

t=$(sys_now_ms)
out=$(sys_in_ct timeout 60 systemctl start "packetscope@$IF.service" 2>&1)
status=$?
INSTANCE_OK=0
if [ $status -eq 0 ] && [ "$(unit_state "packetscope@$IF.service")" = active ]; then
        INSTANCE_OK=1
fi
pid=$(main_pid)
fs="no daemon"
[ "$pid" != 0 ] && fs=$(sys_in_ct nsenter -t "$pid" -m stat -f -c %T /sys/fs/bpf 2>&1)
[ $INSTANCE_OK -eq 1 ]
ok $? "systemctl start packetscope@$IF: active ($(($(sys_now_ms) - t)) ms)" "$out" \
        "$(sys_in_ct systemctl status --no-pager "packetscope@$IF.service" packetscope.service 2>&1 | head -n 30)" \
        "$(sys_in_ct journalctl -u 'packetscope*' --no-pager 2>&1 | tail -n 20)"
if [ $INSTANCE_OK -eq 0 ]; then
        # Guard it directly so that the daemon's unit can still be checked below.
        sys_in_ct mount -t bpf bpf /sys/fs/bpf 2>/dev/null
        sys_in_ct systemctl reset-failed packetscope.service
        sys_in_ct timeout 30 systemctl restart packetscope.service
        bus_call AttachLink ss "$IF" "" >/dev/null 2>&1
fi

is "$fs" bpf_fs "the daemon has a bpffs where the container had none (packetscope-bpffs.service)"

# The name is owned, by the unit's main process.
pid=$(main_pid)
owner_pid=$(sys_in_ct busctl call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus \
                GetConnectionUnixProcessID s "$PS_NAME" 2>&1 | awk '{print $2}')
[ "$pid" != 0 ] && [ "$owner_pid" = "$pid" ]
ok $? "$PS_NAME is owned by packetscope.service's main process (PID $pid)" "owner: $owner_pid"

out=$(sys_in_ct busctl get-property "$PS_NAME" "$PS_PATH/link/$IF" "$PS_LINK" Name 2>&1)
is "$out" "s \"$IF\"" "busctl get-property $PS_PATH/link/$IF Link Name"

guarded && [ -n "$(xdp_id)" ] && sys_in_ct test -e "$PINS/link"
ok $? "the Links property lists $IF, XDP is attached, the pins exist" "$(links 2>&1)" \
        "$(sys_in_ct ls -R /sys/fs/bpf 2>&1)"

# root's PATH on Debian, where a default install puts the client.
out=$(sys_in_ct env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        packetscopectl status 2>&1)
status=$?
[ $status -eq 0 ] && grep -qw "$IF" <<<"$out"
ok $? "packetscopectl status (from PATH) shows $IF" "$out"

# The health monitor inside the unit's sandbox: /proc/meminfo and /proc/stat are readable
# (ProcSubset=all), so the figures are real ones.
health_mem() {
        sys_in_ct busctl get-property "$PS_NAME" "$PS_PATH/health" org.packetscope.Guarder1.Health \
                MemoryPercent | awk '{ print $2 }'
}
mem=$(health_mem)
awk -v m="$mem" 'BEGIN { exit !(m > 0 && m < 100) }'
ok $? "Health.MemoryPercent in the sandboxed daemon is a share ($mem)" \
   "$(sys_in_ct busctl introspect "$PS_NAME" "$PS_PATH/health" 2>&1 | head -n 20)"

# The exporter: its socket started, a request activates the service as its unprivileged user.
out=$(sys_in_ct timeout 30 systemctl start packetscope-metrics.socket 2>&1)
ok $? "systemctl start packetscope-metrics.socket" "$out"
out=$(sys_in_ct timeout 30 curl -sf http://127.0.0.1:9747/metrics 2>&1)
grep -q '^packetscope_up 1$' <<<"$out" && grep -q "^packetscope_packets_total{link=\"$IF\"} " <<<"$out"
ok $? "curl 127.0.0.1:9747/metrics: packetscope_up 1 and the counters of $IF" "$(head -n 20 <<<"$out")" \
   "$(sys_in_ct journalctl -u dbus.service -u 'packetscope-metrics*' --no-pager 2>&1 | tail -n 20)"
uid=$(sys_in_ct sh -c 'p=$(systemctl show -p MainPID --value packetscope-metrics.service);
        awk "/^Uid:/ { print \$2 }" /proc/$p/status' 2>&1)
user=$(sys_in_ct id -un "$uid" 2>&1)
[ -n "$uid" ] && [ "$uid" != 0 ] && [ "$user" = packetscope-metrics ]
ok $? "packetscope-metrics.service runs as the user of sysusers.d/packetscope.conf ($user, uid $uid)"
sys_in_ct systemctl stop packetscope-metrics.socket packetscope-metrics.service >/dev/null 2>&1

wait_until 10 journal_has "$MSG_ATTACHED"
ok $? "journalctl -u packetscope has the attach message (MESSAGE_ID=$MSG_ATTACHED, INTERFACE=$IF)" \
        "$(sys_in_ct journalctl -u packetscope.service -o verbose --no-pager | tail -n 40)"

# What a user reads: the message itself and, under it, the catalog's explanation.
out=$(sys_in_ct journalctl -u 'packetscope*' -x --no-pager 2>&1)
grep -q "packetscoped\[[0-9]*\]: Guarding $IF (ifindex " <<<"$out" &&
        grep -q "Subject: packetscope guards $IF\$" <<<"$out" &&
        grep -q "The XDP program now inspects every frame that arrives on $IF" <<<"$out"
ok $? "journalctl -u 'packetscope*' -x shows the daemon's message with its catalog text" \
        "$(tail -n 30 <<<"$out")"

# Bans.History reads the ban records back from the container's journal with sd-journal,
# from inside the unit's sandbox.
HIST=192.0.2.77
ct_ctl() {
        sys_in_ct env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
                packetscopectl --no-ask-password --no-pager "$@"
}
out=$(ct_ctl ban "$HIST" --reason ct-history 2>&1) && out=$(ct_ctl unban "$HIST" 2>&1)
ok $? "packetscopectl ban $HIST, then unban it, in the container" "$out"
history_has() {
        ct_ctl bans history --address "$HIST" 2>/dev/null |
                grep -Eq "$1"
}
wait_until 10 history_has " unban +${HIST//./\\.} "
ok $? "packetscopectl bans history has the unban of $HIST" \
   "$(ct_ctl bans history 2>&1 | tail -n 10)"
history_has " ban +${HIST//./\\.} +manual .*ct-history"
ok $? "and its ban, with the origin and the reason" \
   "$(ct_ctl bans history 2>&1 | tail -n 10)"

# ---------------------------------------------------------------------------------------------
# systemctl stop packetscope@ps0

if [ $INSTANCE_OK -eq 1 ]; then
        out=$(sys_in_ct timeout 30 systemctl stop "packetscope@$IF.service" 2>&1)
        status=$?
        [ $status -eq 0 ] && ! guarded && [ -z "$(xdp_id)" ] && ! sys_in_ct test -e "$PINS"
        ok $? "systemctl stop packetscope@$IF: detached, Links empty, pins gone" "$out" \
                "$(links 2>&1)" "$(sys_in_ct ls -R /sys/fs/bpf 2>&1)"
else
        ok 1 "systemctl stop packetscope@$IF detaches" "the instance did not start"
        bus_call DetachLink s "$IF" >/dev/null 2>&1
fi

# ---------------------------------------------------------------------------------------------
# Names with '-' and '.' through the template unit (it passes the instance on as it is, %i):
# a veth pair inside the container named like a bridge and a VLAN sub-interface. STATUS= of
# the daemon lists them; systemctl reload re-reads the configuration.

DASH=br-lan
DOT=br-lan.100
sys_in_ct ip link add "$DASH" type veth peer name "$DOT" &&
        sys_in_ct ip link set "$DASH" up && sys_in_ct ip link set "$DOT" up ||
        bail "cannot create the veth pair $DASH/$DOT in the container"
for n in "$DASH" "$DOT"; do
        out=$(sys_in_ct timeout 60 systemctl start "packetscope@$n.service" 2>&1)
        status=$?
        [ $status -eq 0 ] && [ "$(unit_state "packetscope@$n.service")" = active ]
        ok $? "systemctl start packetscope@$n: active" "$out" \
                "$(sys_in_ct journalctl -u "packetscope@$n.service" --no-pager 2>&1 | tail -n 10)"
done
out=$(links 2>&1)
grep -q "\"$PS_PATH/link/br_2dlan\"" <<<"$out" && grep -q "\"$PS_PATH/link/br_2dlan_2e100\"" <<<"$out" &&
        sys_in_ct test -e /sys/fs/bpf/packetscope/br-lan/link &&
        sys_in_ct test -e /sys/fs/bpf/packetscope/br-lan%2e100/link
ok $? "both are guarded: Links lists them, pins in br-lan/ and br-lan%2e100/" "$out" \
        "$(sys_in_ct ls /sys/fs/bpf/packetscope 2>&1)"
status_text() {
        sys_in_ct systemctl show -p StatusText --value packetscope.service
}
status_text_is() {
        [ "$(status_text)" = "$1" ]
}
wait_until 10 status_text_is "Guarding 2 links ($DASH, $DOT), 0 rules, 0 drops/s"
ok $? "systemctl show -p StatusText: Guarding 2 links ($DASH, $DOT), 0 rules, 0 drops/s" \
        "$(status_text)"
pid=$(main_pid)
out=$(sys_in_ct timeout 30 systemctl reload packetscope.service 2>&1)
status=$?
reloaded() {
        sys_in_ct journalctl -u packetscope.service --no-pager -o cat |
                grep -q "^Reloaded the configuration from /etc/packetscope: no changes"
}
[ $status -eq 0 ] && wait_until 10 reloaded && [ "$(main_pid)" = "$pid" ] &&
        [ "$(unit_state packetscope.service)" = active ]
ok $? "systemctl reload packetscope: the same daemon logs that it reloaded" "$out" \
        "$(sys_in_ct journalctl -u packetscope.service --no-pager 2>&1 | tail -n 5)"
for n in "$DASH" "$DOT"; do
        sys_in_ct timeout 30 systemctl stop "packetscope@$n.service"
done
out=$(links 2>&1)
! grep -q br_2dlan <<<"$out" && ! sys_in_ct test -e /sys/fs/bpf/packetscope/br-lan &&
        ! sys_in_ct test -e /sys/fs/bpf/packetscope/br-lan%2e100
ok $? "systemctl stop of both detaches them and removes their pins" "$out"
sys_in_ct ip link del "$DASH"

# ---------------------------------------------------------------------------------------------
# D-Bus activation

sys_in_ct systemctl stop packetscope.service
before=$(unit_state packetscope.service)
out=$(sys_in_ct timeout 30 busctl call "$PS_NAME" "$PS_PATH" "$PS_MANAGER" GetStatistics 2>&1)
status=$?
after=$(unit_state packetscope.service)
[ "$before" != active ] && [ $status -eq 0 ] && [ "$after" = active ]
ok $? "D-Bus activation: a call starts the stopped packetscope.service" \
        "before: $before, after: $after" "$out"

# ---------------------------------------------------------------------------------------------
# An anomaly outlives the daemon that saw it: opened and closed through `packetscopectl health
# set` (memory over 1 %, then over 100 %), it is read back from the journal after the restart
# below, where the new daemon holds none.
ctl() {
        sys_in_ct env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
                packetscopectl "$@"
}
# memory_anomaly SOURCE: the newest closed memory anomaly ListAnomalies gives from SOURCE
# (daemon or journal), as {id, started, ended, peak, threshold}; the peak to two decimals, as
# the journal records keep it.
memory_anomaly() {
        sys_in_ct busctl --json=short call "$PS_NAME" "$PS_PATH/health" \
                org.packetscope.Guarder1.Health ListAnomalies 'a{sv}' 2 state s closed kind s memory |
                jq -c --arg src "$1" '[.data[0][] | select(.source.data == $src)
                        | {id: .id.data, started: .started.data, ended: .ended.data,
                           peak: (.peak.data * 100 | round / 100),
                           threshold: .threshold.data}] | first // empty'
}
t=$(sys_now_ms)
out=$(ctl health set min_duration=0 memory_percent=1 2>&1)
memory_open() {
        sys_in_ct busctl --json=short call "$PS_NAME" "$PS_PATH/health" \
                org.packetscope.Guarder1.Health ListAnomalies 'a{sv}' 2 state s open kind s memory |
                jq -e '.data[0] | length == 1' >/dev/null
}
wait_until 15 memory_open
out="$out$(ctl health set memory_percent=100 2>&1)"
memory_closed() {
        [ -n "$(memory_anomaly daemon)" ]
}
wait_until 15 memory_closed
ANOMALY=$(memory_anomaly daemon)
[ -n "$ANOMALY" ] && [ "$(jq -r .threshold <<<"$ANOMALY")" = 1 ]
ok $? "health set memory_percent=1, then 100: a memory anomaly opened and closed ($(($(sys_now_ms) - t)) ms)" \
        "$out" "$ANOMALY" "$(ctl health history 2>&1 | head -n 10)"

# A restart never leaves the interface unguarded. Guard it again (through the instance unit when
# it works), then poll XDP on the interface every few milliseconds across the restart.

if [ $INSTANCE_OK -eq 1 ]; then
        sys_in_ct timeout 30 systemctl start "packetscope@$IF.service"
else
        bus_call AttachLink ss "$IF" "" >/dev/null 2>&1
fi
PROG=$(xdp_id)
PID1=$(main_pid)
POLL=$T/poll
(
        while [ ! -e "$POLL.stop" ]; do
                if [ -n "$(xdp_id)" ]; then echo y; else echo n; fi
        done >"$POLL"
) &
POLLER=$!
defer "touch '$POLL.stop'; kill_wait $POLLER"
# Some polls before the restart and after it: the window of interest is the restart itself.
wait_until 10 test "$(wc -l <"$POLL" 2>/dev/null || echo 0)" -ge 5
out=$(sys_in_ct timeout 30 systemctl restart packetscope.service 2>&1)
status=$?
n=$(wc -l <"$POLL")
wait_until 10 test "$(wc -l <"$POLL")" -ge $((n + 5))
touch "$POLL.stop"
wait "$POLLER" 2>/dev/null
PID2=$(main_pid)
polls=$(wc -l <"$POLL")
absent=$(grep -c n "$POLL")
[ $status -eq 0 ] && [ -n "$PROG" ] && [ "$PID1" != "$PID2" ] && [ "$polls" -gt 10 ] &&
        [ "$absent" -eq 0 ] && [ "$(xdp_id)" = "$PROG" ]
ok $? "systemctl restart packetscope: XDP on $IF never absent ($polls polls, $absent without)" \
        "$out" "MainPID $PID1 -> $PID2, program $PROG -> $(xdp_id)"

wait_until 10 guarded
ok $? "the restarted daemon adopted the guard (Links lists $IF)" "$(links 2>&1)"

wait_until 10 journal_has "$MSG_ADOPTED"
ok $? "the adoption is in the journal (MESSAGE_ID=$MSG_ADOPTED, INTERFACE=$IF)" \
        "$(sys_in_ct journalctl -u packetscope.service --no-pager | tail -n 20)"

# The restarted daemon holds no anomaly; ListAnomalies and `health history` read it back from
# the journal with the figures the first daemon gave.
from_journal=$(memory_anomaly journal)
[ -n "$ANOMALY" ] && [ "$from_journal" = "$ANOMALY" ]
ok $? "after the restart ListAnomalies gives the anomaly back from the journal, the same figures" \
        "before: $ANOMALY" "after: $from_journal" \
        "$(sys_in_ct journalctl -u packetscope.service -o verbose --no-pager \
                MESSAGE_ID="$(msg_id PS_MESSAGE_ANOMALY_ENDED)" 2>&1 | tail -n 30)"
out=$(ctl health history 2>&1)
grep -Eq "^ *$(jq -r .id <<<"$ANOMALY" 2>/dev/null) +memory " <<<"$out"
ok $? "packetscopectl health history lists it" "$out"

# Bans.History reads the journal through the same reader: a ban and its unban, newest first.
sys_in_ct busctl call "$PS_NAME" "$PS_PATH/bans" org.packetscope.Guarder1.Bans Ban sts \
        192.0.2.99 600 history >/dev/null 2>&1
sys_in_ct busctl call "$PS_NAME" "$PS_PATH/bans" org.packetscope.Guarder1.Bans Unban s \
        192.0.2.99 >/dev/null 2>&1
ban_events() {
        sys_in_ct busctl --json=short call "$PS_NAME" "$PS_PATH/bans" org.packetscope.Guarder1.Bans \
                History 'a{sv}' 1 address s 192.0.2.99 |
                jq -r '[.data[0][] | "\(.event.data):\(.reason.data)"] | join(" ")'
}
ban_events_are() {
        [ "$(ban_events)" = "$1" ]
}
wait_until 10 ban_events_are "unban: ban:history"
ok $? "Bans.History reads the ban and the unban back from the journal" "$(ban_events 2>&1)"

# ---------------------------------------------------------------------------------------------
# SIGKILL: systemd restarts the daemon (Restart=on-failure); the guard stays and counts on.
# The cached Link.Packets is waited for, not slept for: 50 echo requests must show up in it.

out=$(ip netns exec "$NS" ping -c 50 -i 0.01 -W 1 "$ADDR" 2>&1)
like "$out" "50 packets transmitted, 50 received" "50 echo requests from the peer are answered"
wait_until 20 packets_at_least 50
ok $? "Link.Packets counts them (at least 50 within 20 s; got $(link_packets))"
P1=$(link_packets)
PID1=$(main_pid)
sys_in_ct systemctl kill -s KILL packetscope.service
t=$(sys_now_ms)
wait_until 10 test "$(main_pid)" != "$PID1"
prog_during=$(xdp_id)
# Traffic while no daemon runs (RestartSec=1s): the program counts it.
out=$(ip netns exec "$NS" ping -c 30 -i 0.01 -W 1 "$ADDR" 2>&1)
like "$out" "30 packets transmitted, 30 received" "30 echo requests answered while the daemon is down"
restarted() {
        local p
        p=$(main_pid)
        [ "$p" != 0 ] && [ "$p" != "$PID1" ] && [ "$(unit_state packetscope.service)" = active ]
}
wait_until 20 restarted
status=$?
PID2=$(main_pid)
[ -n "$PROG" ] && [ "$prog_during" = "$PROG" ]
ok $? "after SIGKILL the program stays attached to $IF" "program before $PROG, after the kill: $prog_during"
[ $status -eq 0 ]
ok $? "systemd restarts the killed daemon ($(($(sys_now_ms) - t)) ms; MainPID $PID1 -> $PID2)" \
        "$(sys_in_ct systemctl status --no-pager packetscope.service 2>&1 | head -n 20)"
wait_until 10 guarded
[ -n "$P1" ] && wait_until 20 packets_at_least $((P1 + 30))
ok $? "counters continue across the kill (Packets $P1 before, $(link_packets) after 30 more pings)"

# ---------------------------------------------------------------------------------------------
# Finally the instance stop after a restart still detaches (the daemon it talks to is new).

if [ $INSTANCE_OK -eq 1 ]; then
        sys_in_ct timeout 30 systemctl stop "packetscope@$IF.service"
        ! guarded && [ -z "$(xdp_id)" ]
        ok $? "systemctl stop packetscope@$IF after the restarts detaches" "$(links 2>&1)"
else
        ok 1 "systemctl stop packetscope@$IF after the restarts detaches" "the instance did not start"
fi

# ---------------------------------------------------------------------------------------------
# Removal, with README.md's commands. Every file the install put in place is gone afterwards.

installed=$(sys_in_ct sed -n 's#^\(/.*\)#\1#p' "$BUILDDIR/meson-logs/install-log.txt")
sys_in_ct sh -c '
        builddir=$1
        systemctl stop "packetscope@*.service" packetscope.service
        ninja -C "$builddir" uninstall
        rm -rf /var/lib/packetscope /sys/fs/bpf/packetscope
        systemctl daemon-reload
        journalctl --update-catalog' sh "$BUILDDIR" >"$T/uninstall.log" 2>&1
status=$?
left=$(for f in $installed; do sys_in_ct test -e "$f" && echo "$f"; done)
load=$(sys_in_ct systemctl show -p LoadState --value packetscope.service)
[ $status -eq 0 ] && [ -n "$installed" ] && [ -z "$left" ] && [ "$load" = not-found ] &&
        [ -z "$(xdp_id)" ] && ! sys_in_ct test -e /var/lib/packetscope
ok $? "the README's removal leaves none of the $(wc -w <<<"$installed") installed files, no unit, no state" \
        "left: $left" "packetscope.service: $load" "$(tail -n 20 "$T/uninstall.log")"

diag "total $(($(sys_now_ms) - T0)) ms"
done_testing
