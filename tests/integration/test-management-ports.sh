#!/bin/bash
# SPDX-License-Identifier: MIT
#
# The lock-out guard on a fresh install: with no [Filters] section at all, ManagementPorts=
# is the SSH server's port (22 when its configuration names none) and protected from every
# address, so `packetscopectl filter add --rule-type=tcp --dst-port=22` is refused and
# `--force` gets past it. With `Port 2222` in sshd_config that port is protected instead.
# Each daemon sees an /etc/ssh of the test's making: /etc is an overlay in a mount namespace
# of the daemon's own.

set -u
. "$(dirname "$0")/lib.sh"

require_root
require dbus-daemon busctl jq timeout unshare
[ -x "$PACKETSCOPED" ] || bail "no daemon at $PACKETSCOPED"
[ -x "$PACKETSCOPECTL" ] || bail "no client at $PACKETSCOPECTL"

make_tmpdir T
bus_start "$T/bus"

# The wrapper: an overlay over /etc whose ssh/ holds only $T/ssh-NAME/*, then the daemon.
cat >"$T/with-ssh" <<'EOF'
#!/bin/sh
set -e
dir=$1
shift
mkdir -p "$dir/upper" "$dir/work"
mount -t overlay overlay -o "lowerdir=/etc,upperdir=$dir/upper,workdir=$dir/work" /etc
rm -rf /etc/ssh
cp -r "$dir/ssh" /etc/ssh
exec "$@"
EOF
chmod +x "$T/with-ssh"

# fresh NAME SSHD-CONFIG-TEXT: a daemon with the configuration of a fresh install (the test's
# table sizes only, no [Filters]) and that sshd_config ("" for none).
fresh() {
        local name=$1 sshd=$2
        daemon_setup "$name"
        printf '[Guard]\nFlowTableSize=65536\nIcmpTableSize=4096\n' \
                >"${DAEMON_DIR[$name]}/config/packetscope.conf"
        mkdir -p "$T/ssh-$name/ssh"
        [ -z "$sshd" ] || printf '%s\n' "$sshd" >"$T/ssh-$name/ssh/sshd_config"
        DAEMON_WRAP[$name]="unshare -m --propagation private $T/with-ssh $T/ssh-$name"
        daemon_start "$name" || bail "the daemon did not start: $(daemon_log "$name")"
}

ctl() {
        timeout 30 "$PACKETSCOPECTL" --no-ask-password "$@" 2>&1
}
rule_count() {
        busctl --system --json=short call "$PS_NAME" "$PS_PATH/filters" \
                org.packetscope.Guarder1.Filters List | jq '.data[0] | length'
}

# 1. No sshd configuration: port 22.
fresh default ""
out=$(ctl filter add --rule-type=tcp --dst-port=22)
status=$?
[ $status -ne 0 ]
ok $? "filter add --rule-type=tcp --dst-port=22 on a fresh install is refused (exit $status)" "$out"
like "$out" "would drop new TCP traffic to the management port 22 .*force" \
        "the refusal names the management port and the way past it"
is "$(rule_count)" 0 "no rule was added"
out=$(ctl filter add --rule-type=tcp --tcp-flags=syn --tcp-flags-mask=syn)
[ $? -ne 0 ] && grep -q "management port 22" <<<"$out"
ok $? "a rule dropping every TCP SYN is refused as well" "$out"
out=$(ctl filter add --rule-type=tcp --dst-port=23)
ok $? "a rule for port 23 is accepted" "$out"
out=$(ctl filter add --rule-type=tcp --dst-port=22 --force)
ok $? "filter add --rule-type=tcp --dst-port=22 --force is accepted" "$out"
is "$(rule_count)" 2 "two rules now"
grep -q "lock-out guard protects" "${DAEMON_DIR[default]}/log"
[ $? -ne 0 ]
ok $? "without an sshd port, no port read from sshd_config is logged" "$(daemon_log default 10)"
daemon_stop default

# 2. sshd listens on 2222 (and 22 is no management port then).
fresh sshd "$(printf '# Port 22\nPort 2222\n')"
out=$(ctl filter add --rule-type=tcp --dst-port=2222)
[ $? -ne 0 ] && grep -q "management port 2222" <<<"$out"
ok $? "with 'Port 2222' in sshd_config, a drop of port 2222 is refused" "$out"
grep -q "protects the 1 port of the SSH server's configuration in /etc/ssh (first 2222)" \
        "${DAEMON_DIR[sshd]}/log"
ok $? "the daemon logs the port it read" "$(daemon_log sshd 10)"
out=$(ctl filter add --rule-type=tcp --dst-port=22)
ok $? "and a drop of port 22 is accepted" "$out"
daemon_stop sshd

done_testing
