#!/bin/sh
# SPDX-License-Identifier: MIT
#
# Run by `meson install` after the files are in place: makes a real install usable at once.
#   - the exporter's system user is created (systemd-sysusers);
#   - the journal's message catalog is rebuilt, so `journalctl -x` explains packetscope's
#     messages (the catalog is read from a binary database, not from the .catalog files);
#   - where systemd is PID 1: the new units are loaded and dbus-daemon re-reads its policy and
#     activation files, so `systemctl start packetscope@IFACE` works with no other step.
# A staged install (DESTDIR set: packages, tests) touches nothing on this machine; a package
# does the same from its maintainer scripts. Failures here only warn: the files are installed.
#
# Usage: post-install.sh CATALOGDIR SYSUSERSDIR

catalogdir=$1
sysusersdir=$2

if [ -n "${DESTDIR:-}" ]; then
        exit 0
fi

if command -v systemd-sysusers >/dev/null 2>&1; then
        systemd-sysusers "$sysusersdir/packetscope.conf" ||
                echo "packetscope: 'systemd-sysusers' failed; run it to create packetscope-metrics" >&2
fi

if command -v journalctl >/dev/null 2>&1; then
        journalctl --update-catalog ||
                echo "packetscope: 'journalctl --update-catalog' failed; run it to index $catalogdir" >&2
fi

if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
        systemctl daemon-reload ||
                echo "packetscope: 'systemctl daemon-reload' failed; run it to load the units" >&2
        if systemctl -q is-active dbus.service; then
                systemctl reload dbus.service ||
                        echo "packetscope: 'systemctl reload dbus' failed; run it to load the bus policy" >&2
        fi
fi
exit 0
