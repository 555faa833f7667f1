#!/bin/bash
# SPDX-License-Identifier: MIT
#
# The Debian package, the way an administrator meets it: built with dpkg-buildpackage from a copy
# of the source tree (the tree itself stays clean), checked with lintian, installed with dpkg -i
# in a booted container (the host's root under a tmpfs overlay, its own network namespace and an
# empty /sys/fs/bpf), then:
#   - every file where the system reads it, each service has read it, no guard started by itself;
#   - systemctl start packetscope@IF with no other step: the interface is guarded and counts;
#   - dpkg --purge removes the package, its state and its pins, and nothing it does not own.

set -u
# shellcheck source=tests/integration/lib-system.sh
. "$(dirname "$0")/lib-system.sh"

require_root
require dpkg-buildpackage dh fakeroot lintian systemd-nspawn nsenter unshare ip ping tar
[ -f "$SRCDIR/debian/control" ] || bail "no debian/ in $SRCDIR"

T0=$(sys_now_ms)
NAME=ps-deb-$$
NS=psdb-$$
IF=ps0
PEER=ps0p
ADDR=10.231.4.1
PEER_ADDR=10.231.4.2

make_tmpdir T
mkdir -p "$T/src" "$T/stage"

# ---------------------------------------------------------------------------------------------
# Build from a copy: dpkg-buildpackage writes ../*.deb and debian/ build files. The copy holds
# what the suite builds, tracked files and new ones alike, without build directories.

if git -C "$SRCDIR" rev-parse --git-dir >/dev/null 2>&1; then
        git -C "$SRCDIR" ls-files -z --cached --others --exclude-standard |
                tar -C "$SRCDIR" --null -T - --ignore-failed-read -cf - | tar -C "$T/src" -xf -
else
        tar -C "$SRCDIR" --exclude='./build*' --exclude='./obj-*' -cf - . | tar -C "$T/src" -xf -
fi
[ -f "$T/src/debian/rules" ] || bail "cannot copy the source tree"

# The suite runs the unit tests already (nocheck); two jobs, as the machine may be shared.
t=$(sys_now_ms)
(cd "$T/src" && DEB_BUILD_OPTIONS="nocheck parallel=2" dpkg-buildpackage -us -uc -b) \
        >"$T/build.log" 2>&1
status=$?
DEB=$(ls "$T"/packetscope_*_*.deb 2>/dev/null | head -n1)
APPLET_DEB=$(ls "$T"/packetscope-applet_*_*.deb 2>/dev/null | head -n1)
[ $status -eq 0 ] && [ -n "$DEB" ] && [ -n "$APPLET_DEB" ]
ok $? "dpkg-buildpackage -us -uc -b builds $(basename "${DEB:-the package}") and" \
   "$(basename "${APPLET_DEB:-the applet package}") ($(($(sys_now_ms) - t)) ms)" \
        "$(tail -n 30 "$T/build.log")"
[ -n "$DEB" ] || bail "no package to install"
cp "$DEB" "$T/stage/"
DEB_IN=/opt/stage/$(basename "$DEB")

# lintian reads the package while the container boots and installs it.
lintian --no-tag-display-limit "$DEB" ${APPLET_DEB:+"$APPLET_DEB"} >"$T/lintian.log" 2>&1 &
LINTIAN=$!
defer "kill_wait $LINTIAN"

# What the package must hold, where Debian's systemd, dbus-daemon, polkitd and journald read
# it: fixed paths, not the build's idea of them.
contents=$(dpkg-deb -c "$DEB" | awk '{print $6}' | sed 's#^\./#/#')
missing=""
for f in /usr/sbin/packetscoped /usr/bin/packetscopectl \
         /lib/systemd/system/packetscope.service /lib/systemd/system/packetscope@.service \
         /lib/systemd/system/packetscope-bpffs.service \
         /usr/share/dbus-1/system.d/org.packetscope.Guarder1.conf \
         /usr/share/dbus-1/system-services/org.packetscope.Guarder1.service \
         /usr/share/polkit-1/actions/org.packetscope.guarder1.policy \
         /usr/lib/systemd/catalog/packetscope.catalog \
         /usr/share/man/man8/packetscoped.8.gz /usr/share/man/man1/packetscopectl.1.gz \
         /usr/share/man/man5/packetscope.conf.5.gz /usr/share/man/man5/org.packetscope.Guarder1.5.gz \
         /usr/share/doc/packetscope/copyright; do
        grep -qx -- "$f" <<<"$contents" || missing="$missing $f"
done
[ -z "$missing" ]
ok $? "the package holds the daemon, client, units, bus policy and activation, polkit actions, catalog, man pages" \
        "missing:$missing" "$contents"

# The desktop applet is a package of its own: the server package holds none of it and needs
# no GTK; the applet's package holds the program, its desktop files, icons, catalogue and page.
stray=$(grep -E 'applet|/icons/|/locale/|/xdg/' <<<"$contents")
depends=$(dpkg-deb -f "$DEB" Depends)
[ -z "$stray" ] && ! grep -qE 'libgtk|libayatana|libnotify' <<<"$depends"
ok $? "the server package holds nothing of the applet and depends on no GTK library" \
        "stray: $stray" "Depends: $depends"
APPLET_FILES="/etc/xdg/autostart/org.packetscope.Applet.desktop
/usr/bin/packetscope-applet
/usr/share/applications/org.packetscope.Applet.desktop
/usr/share/doc/packetscope-applet/changelog.gz
/usr/share/doc/packetscope-applet/copyright
/usr/share/icons/hicolor/scalable/apps/org.packetscope.Applet.svg
/usr/share/icons/hicolor/scalable/status/packetscope-dropping.svg
/usr/share/icons/hicolor/scalable/status/packetscope-gone.svg
/usr/share/icons/hicolor/scalable/status/packetscope-guarding.svg
/usr/share/icons/hicolor/scalable/status/packetscope-idle.svg
/usr/share/icons/hicolor/scalable/status/packetscope-panic.svg
/usr/share/icons/hicolor/symbolic/status/packetscope-dropping-symbolic.svg
/usr/share/icons/hicolor/symbolic/status/packetscope-gone-symbolic.svg
/usr/share/icons/hicolor/symbolic/status/packetscope-guarding-symbolic.svg
/usr/share/icons/hicolor/symbolic/status/packetscope-idle-symbolic.svg
/usr/share/icons/hicolor/symbolic/status/packetscope-panic-symbolic.svg
/usr/share/locale/de/LC_MESSAGES/packetscope-applet.mo
/usr/share/man/man1/packetscope-applet.1.gz"
if [ -n "$APPLET_DEB" ]; then
        applet_contents=$(dpkg-deb -c "$APPLET_DEB" | awk '$6 !~ /\/$/ {print $6}' |
                sed 's#^\./#/#' | LC_ALL=C sort)
        is "$applet_contents" "$(LC_ALL=C sort <<<"$APPLET_FILES")" \
           "the applet package holds exactly the applet, its desktop and autostart files, icons," \
           "German catalogue, manual page and documentation"
        applet_depends=$(dpkg-deb -f "$APPLET_DEB" Depends)
        like "$applet_depends" "(^|, )packetscope \\(= [^)]+\\)(,|$)" \
             "the applet package depends on the server package of its version"
        like "$applet_depends" "libgtk-3-0" "and on GTK 3 (its shared libraries, found by dh_shlibdeps)"
fi

# ---------------------------------------------------------------------------------------------
# Boot, and install it as an administrator would.

sys_ct_boot_checked "$T/ct" "$NAME" "$T/stage"

# A host with packetscope installed booted it too: start from a system without it.
if sys_in_ct dpkg-query -W -f='${Status}' packetscope 2>/dev/null | grep -q installed; then
        diag "the host has the packetscope package; purging it inside the container first"
        sys_in_ct env DEBIAN_FRONTEND=noninteractive dpkg --purge packetscope >/dev/null 2>&1
fi
sys_in_ct test -e /usr/sbin/packetscoped && bail "the container has /usr/sbin/packetscoped before the install"
# An image built by Docker carries a policy-rc.d that forbids maintainer scripts to start or stop
# any service; a server has none, and the package's scripts are what is tested here.
if sys_in_ct test -e /usr/sbin/policy-rc.d; then
        diag "removing the host image's /usr/sbin/policy-rc.d inside the container"
        sys_in_ct rm -f /usr/sbin/policy-rc.d
fi
# man-db's trigger re-indexes every manual page on the machine (20 s and more here); its own
# switch turns that off. It has nothing to do with the package under test.
sys_in_ct rm -f /var/lib/man-db/auto-update

t=$(sys_now_ms)
sys_in_ct env DEBIAN_FRONTEND=noninteractive dpkg -i "$DEB_IN" >"$T/install.log" 2>&1
status=$?
pkg=$(sys_in_ct dpkg-query -W -f='${Status} ${Version}' packetscope 2>&1)
[ $status -eq 0 ] && grep -q '^install ok installed ' <<<"$pkg"
ok $? "dpkg -i $(basename "$DEB") ($(($(sys_now_ms) - t)) ms): $pkg" \
        "$(tail -n 30 "$T/install.log")"

# Each service has read its file, through the package's own maintainer scripts and the
# triggers of systemd and dbus: nothing is done by hand here.
out=$(sys_in_ct busctl list --activatable --no-legend 2>&1)
grep -q "^$PS_NAME " <<<"$out"
ok $? "dbus-daemon lists $PS_NAME as activatable" "$out"
out=$(sys_in_ct pkaction --action-id org.packetscope.guarder1.manage-filters --verbose 2>&1)
grep -q 'implicit active: *auth_admin_keep' <<<"$out"
ok $? "polkitd knows the action org.packetscope.guarder1.manage-filters" "$out"
out=$(sys_in_ct id packetscope-metrics 2>&1)
ok $? "the package created the exporter's user packetscope-metrics (sysusers.d)" "$out"
out=$(sys_in_ct journalctl --list-catalog 2>&1)
grep -q "^8a1f2d6c4b7e4e0f9a35c2d1e6b70a03 packetscope: packetscope guards @INTERFACE@\$" <<<"$out"
ok $? "the journal's catalog database has packetscope's entries (systemd's trigger ran)" \
        "$(grep packetscope <<<"$out")"

enabled=$(sys_in_ct systemctl is-enabled packetscope.service 2>&1)
active=$(sys_in_ct systemctl is-active packetscope.service 2>&1)
instances=$(sys_in_ct systemctl list-units --all --no-legend --plain 'packetscope@*' 2>&1)
[ "$enabled" = enabled ] && [ "$active" = active ] && [ -z "$instances" ]
ok $? "packetscope.service is enabled and running; no packetscope@ instance was started" \
        "is-enabled: $enabled, is-active: $active" "instances: $instances" \
        "$(sys_in_ct systemctl status --no-pager packetscope.service 2>&1 | head -n 20)" \
        "$(tail -n 20 "$T/install.log")"

# ---------------------------------------------------------------------------------------------
# The interface, then the one command.

ip netns add "$NS" || bail "cannot create netns $NS"
defer "ip netns del '$NS'"
ip -n "$NS" link add "$PEER" type veth peer name "$IF" netns "$SYS_CT_LEADER" ||
        bail "cannot create the veth pair"
ip -n "$NS" addr add "$PEER_ADDR/24" dev "$PEER"
ip -n "$NS" link set "$PEER" up
sys_in_ct ip addr add "$ADDR/24" dev "$IF"
sys_in_ct ip link set "$IF" up

xdp_id() {
        nsenter -t "$SYS_CT_LEADER" -n ip -d link show dev "$IF" 2>/dev/null |
                sed -n 's/.*prog\/xdp id \([0-9]*\).*/\1/p' | head -n1
}
link_packets() {
        sys_in_ct busctl get-property "$PS_NAME" "$PS_PATH/link/$IF" "$PS_LINK" Packets 2>/dev/null |
                awk '{print $2}'
}
packets_at_least() {
        local p
        p=$(link_packets)
        [ -n "$p" ] && [ "$p" -ge "$1" ]
}

[ -z "$(xdp_id)" ]
ok $? "installing guards nothing: no XDP program on $IF"

t=$(sys_now_ms)
out=$(sys_in_ct timeout 60 systemctl start "packetscope@$IF.service" 2>&1)
status=$?
state=$(sys_in_ct systemctl is-active "packetscope@$IF.service")
[ $status -eq 0 ] && [ "$state" = active ] && [ -n "$(xdp_id)" ]
ok $? "systemctl start packetscope@$IF: active, XDP attached ($(($(sys_now_ms) - t)) ms)" "$out" \
        "$(sys_in_ct systemctl status --no-pager "packetscope@$IF.service" packetscope.service 2>&1 | head -n 30)" \
        "$(sys_in_ct journalctl -u 'packetscope*' --no-pager 2>&1 | tail -n 20)"

out=$(ip netns exec "$NS" ping -c 20 -i 0.01 -W 1 "$ADDR" 2>&1)
like "$out" "20 packets transmitted, 20 received" "20 echo requests from the peer are answered"
wait_until 20 packets_at_least 20
ok $? "the guard counts them (Link.Packets at least 20 within 20 s; got $(link_packets))"

out=$(sys_in_ct packetscopectl status 2>&1)
grep -qw "$IF" <<<"$out"
ok $? "packetscopectl status shows $IF" "$out"

out=$(sys_in_ct systemctl enable "packetscope@$IF.service" 2>&1)
enabled_links=$(sys_in_ct find /etc/systemd/system -name "packetscope@$IF.service" -type l)
[ -n "$enabled_links" ]
ok $? "systemctl enable packetscope@$IF links it into the boot" "$out"

# ---------------------------------------------------------------------------------------------
# Purge. Things the package does not own stay: a pin directory of another program in bpffs, and
# a file the administrator put in /etc/packetscope.

sys_in_ct mkdir -p /sys/fs/bpf/packetscope-neighbour /etc/packetscope
sys_in_ct sh -c 'printf "[Guard]\nPollIntervalSec=1s\n" >/etc/packetscope/packetscope.conf'
before=$(sys_in_ct sh -c 'ls -d /var/lib/packetscope /sys/fs/bpf/packetscope 2>&1')
[ "$(wc -l <<<"$before")" -eq 2 ] && ! grep -q 'No such' <<<"$before"
ok $? "before the purge: state in /var/lib/packetscope, pins in /sys/fs/bpf/packetscope" "$before"

t=$(sys_now_ms)
sys_in_ct env DEBIAN_FRONTEND=noninteractive dpkg --purge packetscope >"$T/purge.log" 2>&1
status=$?
pkg=$(sys_in_ct dpkg-query -W -f='${Status}' packetscope 2>&1)
[ $status -eq 0 ] && ! grep -q 'installed' <<<"$pkg"
ok $? "dpkg --purge packetscope ($(($(sys_now_ms) - t)) ms)" "status: $pkg" "$(tail -n 30 "$T/purge.log")"

left=""
for f in /var/lib/packetscope /sys/fs/bpf/packetscope /usr/sbin/packetscoped /usr/bin/packetscopectl \
         /lib/systemd/system/packetscope.service /usr/share/dbus-1/system.d/org.packetscope.Guarder1.conf \
         $enabled_links; do
        sys_in_ct test -e "$f" && left="$left $f"
done
load=$(sys_in_ct systemctl show -p LoadState --value packetscope.service "packetscope@$IF.service" | sed "/^$/d" | sort -u)
[ -z "$left" ] && [ -z "$(xdp_id)" ] && [ "$load" = not-found ]
ok $? "after the purge: no state, no pins, no XDP on $IF, no files, no units, no enablement links" "left:$left" \
        "XDP: $(xdp_id)" "units: $load" "$(tail -n 20 "$T/purge.log")" \
        "$(sys_in_ct journalctl -u 'packetscope*' --no-pager 2>&1 | tail -n 20)"

sys_in_ct test -d /sys/fs/bpf/packetscope-neighbour &&
        sys_in_ct grep -qx 'PollIntervalSec=1s' /etc/packetscope/packetscope.conf
ok $? "the purge leaves what it does not own (another pin directory, the administrator's config)"

# ---------------------------------------------------------------------------------------------
# lintian: no error. Warnings are listed, not failed.

wait "$LINTIAN"
status=$?
errors=$(grep -c '^E: ' "$T/lintian.log")
[ $status -eq 0 ] && [ "$errors" -eq 0 ] && ! grep -q '^internal error\|^Traceback' "$T/lintian.log"
ok $? "lintian: no error ($(grep -c '^W: ' "$T/lintian.log") warnings)" "$(cat "$T/lintian.log")"
grep '^[WI]: ' "$T/lintian.log" | while read -r line; do diag "lintian $line"; done

diag "total $(($(sys_now_ms) - T0)) ms"
done_testing
