#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Offline checks of the shipped systemd files, as configured by the build:
#   - systemd-analyze verify of packetscope.service and of packetscope@.service (through an
#     instance) with their commands pointed at the built binaries: any diagnostic fails;
#   - systemd-analyze security --offline: packetscope.service exposure at most 3.0, the
#     exporter's services (packetscope-metrics*.service) at most 1.5;
#   - the D-Bus activation file and the daemon's unit agree (bus name, SystemdService=, Exec=);
#   - the message catalog parses and explains every MESSAGE_ID the daemon logs;
#   - a daemon whose bus policy is not installed says so, and where it belongs.
# systemd-analyze leaves files under /run/systemd; it runs in a private mount namespace with
# its own /run.

set -u
# shellcheck source=tests/integration/lib-system.sh
. "$(dirname "$0")/lib-system.sh"

require_root
require systemd-analyze journalctl unshare dbus-daemon busctl meson /usr/bin/python3
UNITS=$BUILDDIR/systemd
[ -f "$UNITS/packetscope.service" ] && [ -f "$UNITS/packetscope@.service" ] ||
        bail "no configured units in $UNITS (set BUILDDIR)"
[ -x "$PACKETSCOPED" ] || bail "no daemon at $PACKETSCOPED"
[ -x "$PACKETSCOPECTL" ] || bail "no client at $PACKETSCOPECTL"
MAX_EXPOSURE=3.0

make_tmpdir T
mkdir -p "$T/units"

# Where the build installs the binaries, from its options (not from the units): prefix,
# sbindir and bindir, the last two made absolute.
read -r SBIN BIN < <(meson introspect "$BUILDDIR" --buildoptions | /usr/bin/python3 -c '
import json, os, sys
o = {x["name"]: x["value"] for x in json.load(sys.stdin)}
print(*(os.path.join(o["prefix"], o[d]) for d in ("sbindir", "bindir")))')
[ -n "$BIN" ] || bail "cannot read the build options of $BUILDDIR"
is "$(sed -n 's/^ExecStart=//p' "$UNITS/packetscope.service")" "$SBIN/packetscoped" \
        "packetscope.service runs the daemon where it is installed ($SBIN)"
is "$(sed -n 's/^Exec\(Start\|Stop\)=\([^ ]*\) .*/\1 \2/p' "$UNITS/packetscope@.service" | tr '\n' ' ')" \
        "Start $BIN/packetscopectl Stop $BIN/packetscopectl " \
        "packetscope@.service runs the installed client on start and stop ($BIN)"

# For systemd-analyze verify, the configured paths become the build's binaries.
METRICS=${PACKETSCOPE_METRICS:-$BUILDDIR/src/packetscope-metrics}
for u in packetscope.service packetscope@.service packetscope-bpffs.service \
         packetscope-metrics.service packetscope-metrics.socket \
         packetscope-metrics-textfile.service packetscope-metrics-textfile.timer; do
        sed -e "s#^\\(Exec[A-Za-z]*=[-+!:@]*\\)/[^ ]*/packetscoped\\b#\\1$PACKETSCOPED#" \
            -e "s#^\\(Exec[A-Za-z]*=[-+!:@]*\\)/[^ ]*/packetscopectl\\b#\\1$PACKETSCOPECTL#" \
            -e "s#^\\(Exec[A-Za-z]*=[-+!:@]*\\)/[^ ]*/packetscope-metrics\\b#\\1$METRICS#" \
            "$UNITS/$u" >"$T/units/$u"
done

# in_private_run COMMAND...: in a mount namespace of its own, with a fresh /run.
in_private_run() {
        unshare --mount --propagation private sh -c 'mount -t tmpfs tmpfs /run && exec "$@"' sh "$@"
}

for u in packetscope.service packetscope@eth0.service packetscope-bpffs.service \
         packetscope-metrics.service packetscope-metrics.socket \
         packetscope-metrics-textfile.service packetscope-metrics-textfile.timer; do
        out=$(cd "$T/units" && in_private_run systemd-analyze verify --man=no "$T/units/$u" 2>&1)
        status=$?
        [ $status -eq 0 ] && [ -z "$out" ]
        ok $? "systemd-analyze verify $u: clean" "exit status $status" "$out"
done

out=$(cd "$T/units" && in_private_run systemd-analyze security --offline=true --no-pager \
        "$T/units/packetscope.service" 2>&1)
level=$(sed -n 's/.*Overall exposure level for packetscope\.service: \([0-9.]*\).*/\1/p' <<<"$out")
[ -n "$level" ] && awk -v l="$level" -v m="$MAX_EXPOSURE" 'BEGIN { exit !(l <= m) }'
ok $? "systemd-analyze security: packetscope.service exposure ${level:-?} <= $MAX_EXPOSURE" \
        "$(grep -E '^✗' <<<"$out" | head -n 40)" "$(tail -n 2 <<<"$out")"
# The exporter holds no privilege at all: its limit is lower.
for u in packetscope-metrics.service packetscope-metrics-textfile.service; do
        out=$(cd "$T/units" && in_private_run systemd-analyze security --offline=true --no-pager \
                "$T/units/$u" 2>&1)
        level=$(sed -n "s/.*Overall exposure level for ${u//./\\.}: \\([0-9.]*\\).*/\\1/p" <<<"$out")
        [ -n "$level" ] && awk -v l="$level" 'BEGIN { exit !(l <= 1.5) }'
        ok $? "systemd-analyze security: $u exposure ${level:-?} <= 1.5" \
           "$(grep -E '^✗' <<<"$out" | head -n 40)" "$(tail -n 2 <<<"$out")"
done
out=$(cd "$T/units" && in_private_run systemd-analyze security --offline=true --no-pager \
        "$T/units/packetscope@eth0.service" 2>&1)
diag "packetscope@.service: $(grep 'Overall exposure level' <<<"$out")"

# ---------------------------------------------------------------------------------------------
# The activation file, as the build configures it.

ACT=$BUILDDIR/dbus/org.packetscope.Guarder1.service
check "the build configures the activation file" test -f "$ACT"
act() {
        sed -n "s/^$1=//p" "$ACT"
}
bus_name=$(sed -n 's/^BusName=//p' "$UNITS/packetscope.service")
is "$(act Name)" "$bus_name" "the activation file names the unit's BusName= ($bus_name)"
is "$(act SystemdService)" packetscope.service "D-Bus activation goes through packetscope.service"
is "$(act Exec)" "$(sed -n 's/^ExecStart=//p' "$UNITS/packetscope.service")" \
        "its Exec= is the unit's ExecStart="
is "$(act User)" root "it runs as root (only root may own the name)"

# ---------------------------------------------------------------------------------------------
# The catalog: parsed by journalctl into a private root, one entry per MESSAGE_ID of log.h.

CAT=$T/catalog-root
mkdir -p "$CAT/usr/lib/systemd/catalog" "$CAT/var/lib/systemd/catalog"
cp "$SRCDIR/systemd/packetscope.catalog" "$CAT/usr/lib/systemd/catalog/"
out=$(journalctl --root="$CAT" --update-catalog 2>&1)
status=$?
[ $status -eq 0 ] && [ -z "$out" ]
ok $? "journalctl --update-catalog parses packetscope.catalog" "$out"
listed=$(journalctl --root="$CAT" --list-catalog 2>&1)
missing=""
for id in $(sed -n 's/^#define PS_MESSAGE_[A-Z_]* *"\([0-9a-f]\{32\}\)".*/\1/p' "$SRCDIR/src/shared/log.h"); do
        grep -q "^$id packetscope: " <<<"$listed" || missing="$missing $id"
done
[ -z "$missing" ] && [ -n "$listed" ]
ok $? "the catalog explains every MESSAGE_ID the daemon logs" "missing:$missing" "$listed"

# ---------------------------------------------------------------------------------------------
# Without its bus policy the daemon cannot own its name (the system bus denies owning by
# default): it must say which file is missing and where dbus-daemon reads it, and touch nothing.

bus_start "$T/bus"
rm "$T/bus/system.d/org.packetscope.Guarder1.conf"
busctl --system call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus ReloadConfig ||
        bail "the private bus did not reload its configuration"
BPFFS=/sys/fs/bpf/packetscope-test-$$-nopolicy
defer "rm -rf '$BPFFS'"
mkdir -p "$T/nopolicy/state" "$T/nopolicy/config"
out=$(timeout 20 "$PACKETSCOPED" --bpffs-root "$BPFFS" --state-dir "$T/nopolicy/state" \
        --config-dir "$T/nopolicy/config" --log-target stderr 2>&1)
status=$?
[ $status -ne 0 ] && [ $status -ne 124 ]
ok $? "without the bus policy the daemon exits with an error (status $status)" "$out"
like "$out" "Failed to acquire the bus name org\.packetscope\.Guarder1: Permission denied" \
        "it says the bus refused the name"
like "$out" "org\.packetscope\.Guarder1\.conf must be installed in /usr/share/dbus-1/system\.d \(or /etc/dbus-1/system\.d\) and dbus reloaded" \
        "it names the missing policy file and where dbus-daemon reads it"
check "it created no pin directory" test ! -e "$BPFFS"

done_testing
