#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Offline checks of the shipped systemd files, as configured by the build:
#   - systemd-analyze verify of packetscope.service and of packetscope@.service (through an
#     instance) with their commands pointed at the built binaries: any diagnostic fails;
#   - systemd-analyze security --offline: packetscope.service exposure at most 3.0;
#   - the D-Bus activation file and the daemon's unit agree (bus name, SystemdService=, Exec=);
#   - the message catalog parses and explains every MESSAGE_ID the daemon logs.
# systemd-analyze leaves files under /run/systemd; it runs in a private mount namespace with
# its own /run.

set -u
# shellcheck source=tests/integration/lib-system.sh
. "$(dirname "$0")/lib-system.sh"

require_root
require systemd-analyze journalctl unshare
UNITS=$BUILDDIR/systemd
[ -f "$UNITS/packetscope.service" ] && [ -f "$UNITS/packetscope@.service" ] ||
        bail "no configured units in $UNITS (set BUILDDIR)"
[ -x "$PACKETSCOPED" ] || bail "no daemon at $PACKETSCOPED"
[ -x "$PACKETSCOPECTL" ] || bail "no client at $PACKETSCOPECTL"
MAX_EXPOSURE=3.0

make_tmpdir T
mkdir -p "$T/units"
# The configured paths (under the install prefix) become the build's binaries.
for u in packetscope.service packetscope@.service packetscope-bpffs.service; do
        sed -e "s#^\\(Exec[A-Za-z]*=[-+!:@]*\\)/[^ ]*/packetscoped\\b#\\1$PACKETSCOPED#" \
            -e "s#^\\(Exec[A-Za-z]*=[-+!:@]*\\)/[^ ]*/packetscopectl\\b#\\1$PACKETSCOPECTL#" \
            "$UNITS/$u" >"$T/units/$u"
done
grep -q "^ExecStart=$PACKETSCOPED\$" "$T/units/packetscope.service"
ok $? "packetscope.service runs the daemon (ExecStart= points at sbindir)" \
        "$(grep '^Exec' "$UNITS/packetscope.service")"
grep -q "^ExecStart=$PACKETSCOPECTL " "$T/units/packetscope@.service" &&
        grep -q "^ExecStop=$PACKETSCOPECTL " "$T/units/packetscope@.service"
ok $? "packetscope@.service runs the client on start and stop" \
        "$(grep '^Exec' "$UNITS/packetscope@.service")"

# in_private_run COMMAND...: in a mount namespace of its own, with a fresh /run.
in_private_run() {
        unshare --mount --propagation private sh -c 'mount -t tmpfs tmpfs /run && exec "$@"' sh "$@"
}

for u in packetscope.service packetscope@eth0.service packetscope-bpffs.service; do
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

done_testing
