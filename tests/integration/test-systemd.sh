#!/bin/bash
# SPDX-License-Identifier: MIT
#
# The shipped units under a real, booted systemd: the host's root booted as a container with
# the project installed into it (meson install --destdir), its own network namespace and bpffs.
# Checks what a user of the four documented commands relies on:
#   systemctl start/stop packetscope@IF, D-Bus activation of packetscope.service,
#   journalctl -u packetscope (structured fields), a restart that never unguards the interface,
#   and a SIGKILLed daemon restarted by systemd with the guard and its counters intact.

set -u
# shellcheck source=tests/integration/lib-system.sh
. "$(dirname "$0")/lib-system.sh"

require_root
require systemd-nspawn nsenter unshare meson ip ping /usr/bin/python3
[ -d "$BUILDDIR" ] || bail "no build directory at $BUILDDIR (set BUILDDIR)"

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

make_tmpdir T

# ---------------------------------------------------------------------------------------------
# Stage the install. The units name binaries under the configured prefix; dbus-daemon and polkit
# only look under /usr/share, so a build with another prefix has its bus and polkit files linked
# there inside the container.

STAGE=$T/stage
if ! meson install -C "$BUILDDIR" --destdir "$STAGE" --no-rebuild --quiet >"$T/install.log" 2>&1; then
        bail "meson install failed: $(tail -n 20 "$T/install.log")"
fi
PREFIX=$(meson introspect "$BUILDDIR" --buildoptions |
         /usr/bin/python3 -c 'import json,sys; print([o["value"] for o in json.load(sys.stdin) if o["name"] == "prefix"][0])')

staged_missing=""
for f in packetscope.service packetscope@.service; do
        [ -n "$(find "$STAGE" -path "*/systemd/system/$f")" ] || staged_missing="$staged_missing $f"
done
for f in "dbus-1/system.d/org.packetscope.Guarder1.conf" \
         "dbus-1/system-services/org.packetscope.Guarder1.service" \
         "polkit-1/actions/org.packetscope.guarder1.policy"; do
        [ -f "$STAGE$PREFIX/share/$f" ] || staged_missing="$staged_missing $PREFIX/share/$f"
done
for f in "$PREFIX/sbin/packetscoped" "$PREFIX/bin/packetscopectl"; do
        [ -x "$STAGE$f" ] || staged_missing="$staged_missing $f"
done
[ -z "$staged_missing" ]
ok $? "meson install stages the units, bus policy, activation file, polkit policy and binaries" \
        "missing:$staged_missing" "$(cd "$STAGE" && find . -type f)"

# ---------------------------------------------------------------------------------------------
# Boot. Host services that have no business here are masked.

MASKS=()
for u in postgresql.service apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer \
         e2scrub_all.timer e2scrub_reap.service fstrim.timer man-db.timer logrotate.timer \
         systemd-timesyncd.service systemd-pstore.service getty@tty1.service; do
        MASKS+=("systemd.mask=$u")
done
t=$(sys_now_ms)
sys_container_boot "$T/ct" "$NAME" "$STAGE" "${MASKS[@]}"
ok $? "the container boots ($(($(sys_now_ms) - t)) ms)" \
        "$(cat "$T/ct/boot-state" 2>/dev/null)" "$(tail -n 30 "$T/ct/console.log")"
[ -n "$SYS_CT_LEADER" ] || bail "no container"

# Install: keep /lib -> usr/lib and friends as they are (merged /usr).
sys_in_ct sh -c '
        set -e
        tar -C /opt/stage -cf - . | tar -C / -xf - --keep-directory-symlink
        prefix=$1
        if [ "$prefix" != /usr ]; then
                for d in dbus-1/system.d dbus-1/system-services polkit-1/actions; do
                        [ -d "$prefix/share/$d" ] || continue
                        mkdir -p "/usr/share/$d"
                        ln -sf "$prefix/share/$d/"* "/usr/share/$d/"
                done
        fi
        systemctl daemon-reload
        # A host with packetscope installed booted its own copy: start from nothing.
        systemctl stop "packetscope@*.service" packetscope.service
        rm -rf /var/lib/packetscope /sys/fs/bpf/packetscope
        journalctl --update-catalog
        systemctl daemon-reload
        systemctl reload dbus' sh "$PREFIX" >"$T/install-ct.log" 2>&1
status=$?
load=$(sys_in_ct systemctl show -p LoadState,FragmentPath packetscope.service)
[ $status -eq 0 ] && grep -qx 'LoadState=loaded' <<<"$load"
ok $? "the staged install is in place, units loaded, dbus reloaded" \
        "$load" "$(cat "$T/install-ct.log")"

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
# The container has no bpffs (an empty tmpfs at /sys/fs/bpf), as containers often do: the daemon's
# unit must provide one to itself, or pinning fails.

sys_in_ct timeout 30 systemctl start packetscope.service >/dev/null 2>&1
state=$(unit_state packetscope.service)
pid=$(main_pid)
fs="no daemon"
[ "$pid" != 0 ] && fs=$(sys_in_ct nsenter -t "$pid" -m stat -f -c %T /sys/fs/bpf 2>&1)
[ "$state" = active ] && [ "$fs" = bpf_fs ]
ok $? "packetscope.service starts where no bpffs was mounted, and has one (packetscope-bpffs.service)" \
        "unit: $state; the daemon sees: $fs; the container sees: $(sys_in_ct stat -f -c %T /sys/fs/bpf)" \
        "$(sys_in_ct journalctl -u packetscope.service --no-pager | tail -n 8)"
if [ "$state" != active ] || [ "$fs" != bpf_fs ]; then
        # Carry on as on a host where systemd mounted bpffs at boot.
        sys_in_ct mount -t bpf bpf /sys/fs/bpf
        sys_in_ct systemctl reset-failed packetscope.service
        sys_in_ct timeout 30 systemctl restart packetscope.service
fi

# ---------------------------------------------------------------------------------------------
# systemctl start packetscope@ps0

t=$(sys_now_ms)
out=$(sys_in_ct timeout 30 systemctl start "packetscope@$IF.service" 2>&1)
status=$?
INSTANCE_OK=0
if [ $status -eq 0 ] && [ "$(unit_state "packetscope@$IF.service")" = active ]; then
        INSTANCE_OK=1
fi
why=""
if [ $INSTANCE_OK -eq 0 ] &&
   sys_in_ct systemctl show -p Result --value "packetscope@$IF.service" | grep -qx dependency; then
        why="a dependency failed: sys-subsystem-net-devices-$IF.device; systemd supports no device units where /sys is read-only (containers), so BindsTo= on it can never be met here"
fi
[ $INSTANCE_OK -eq 1 ]
ok $? "systemctl start packetscope@$IF: active ($(($(sys_now_ms) - t)) ms)" "$out" "$why" \
        "$(sys_in_ct systemctl status --no-pager "packetscope@$IF.service" packetscope.service 2>&1 | head -n 30)"
if [ $INSTANCE_OK -eq 0 ]; then
        # Guard it directly so that the daemon's unit can still be checked below.
        sys_in_ct systemctl start packetscope.service
        bus_call AttachLink ss "$IF" "" >/dev/null 2>&1
fi

guarded && [ -n "$(xdp_id)" ] && sys_in_ct test -e "$PINS/link"
ok $? "the Links property lists $IF, XDP is attached, the pins exist" "$(links 2>&1)" \
        "$(sys_in_ct ls -R /sys/fs/bpf 2>&1)"

out=$(sys_in_ct "$PREFIX/bin/packetscopectl" status 2>&1)
status=$?
[ $status -eq 0 ] && grep -qw "$IF" <<<"$out"
ok $? "packetscopectl status shows $IF" "$out"

wait_until 5 journal_has "$MSG_ATTACHED"
ok $? "journalctl -u packetscope has the attach message (MESSAGE_ID=$MSG_ATTACHED, INTERFACE=$IF)" \
        "$(sys_in_ct journalctl -u packetscope.service -o verbose --no-pager | tail -n 40)"

out=$(sys_in_ct journalctl -u packetscope.service -x --no-pager 2>&1)
grep -q "packetscope guards $IF" <<<"$out"
ok $? "the message catalog explains it (journalctl -x)" "$(tail -n 20 <<<"$out")"

# ---------------------------------------------------------------------------------------------
# systemctl stop packetscope@ps0

if [ $INSTANCE_OK -eq 1 ]; then
        out=$(sys_in_ct timeout 30 systemctl stop "packetscope@$IF.service" 2>&1)
        status=$?
        [ $status -eq 0 ] && ! guarded && [ -z "$(xdp_id)" ] && ! sys_in_ct test -e "$PINS"
        ok $? "systemctl stop packetscope@$IF: detached, Links empty, pins gone" "$out" \
                "$(links 2>&1)" "$(sys_in_ct ls -R /sys/fs/bpf 2>&1)"
else
        skip "systemctl stop packetscope@$IF detaches" "the instance did not start"
        bus_call DetachLink s "$IF" >/dev/null 2>&1
fi

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
sleep 0.3
out=$(sys_in_ct timeout 30 systemctl restart packetscope.service 2>&1)
status=$?
sleep 0.3
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

wait_until 5 journal_has "$MSG_ADOPTED"
ok $? "the adoption is in the journal (MESSAGE_ID=$MSG_ADOPTED, INTERFACE=$IF)" \
        "$(sys_in_ct journalctl -u packetscope.service --no-pager | tail -n 20)"

# ---------------------------------------------------------------------------------------------
# SIGKILL: systemd restarts the daemon (Restart=on-failure); the guard stays and counts on.

ip netns exec "$NS" ping -c 50 -i 0.01 -W 1 "$ADDR" >/dev/null 2>&1
sleep 1.2 # one poll interval, so the daemon has read the counters
P1=$(link_packets)
PID1=$(main_pid)
sys_in_ct systemctl kill -s KILL packetscope.service
t=$(sys_now_ms)
sleep 0.1
prog_during=$(xdp_id)
# Traffic while no daemon runs (RestartSec=1s): the program counts it.
ip netns exec "$NS" ping -c 30 -i 0.01 -W 1 "$ADDR" >/dev/null 2>&1
restarted() {
        local p
        p=$(main_pid)
        [ "$p" != 0 ] && [ "$p" != "$PID1" ] && [ "$(unit_state packetscope.service)" = active ]
}
wait_until 15 restarted
status=$?
PID2=$(main_pid)
[ "$prog_during" = "$PROG" ]
ok $? "after SIGKILL the program stays attached to $IF" "program before $PROG, after the kill: $prog_during"
[ $status -eq 0 ]
ok $? "systemd restarts the killed daemon ($(($(sys_now_ms) - t)) ms; MainPID $PID1 -> $PID2)" \
        "$(sys_in_ct systemctl status --no-pager packetscope.service 2>&1 | head -n 20)"
wait_until 10 guarded
sleep 1.2
P2=$(link_packets)
[ -n "$P1" ] && [ -n "$P2" ] && [ "$P1" -gt 0 ] && [ "$P2" -ge $((P1 + 30)) ]
ok $? "counters continue across the kill (Packets $P1 before, $P2 after 30 more pings)"

# ---------------------------------------------------------------------------------------------
# Finally the instance stop after a restart still detaches (the daemon it talks to is new).

if [ $INSTANCE_OK -eq 1 ]; then
        sys_in_ct timeout 30 systemctl stop "packetscope@$IF.service"
        ! guarded && [ -z "$(xdp_id)" ]
        ok $? "systemctl stop packetscope@$IF after the restarts detaches" "$(links 2>&1)"
else
        skip "systemctl stop packetscope@$IF after the restarts detaches" "the instance did not start"
fi

diag "total $(($(sys_now_ms) - T0)) ms"
done_testing
