# SPDX-License-Identifier: MIT
# shellcheck shell=bash disable=SC2154,SC2034 # dir and bpffs are the caller's; so are the PIDs
# Sourced by the daemon benchmarks: a private system bus and the daemon on it, in $dir (set by
# the caller, mode 755), with the pins under $bpffs. Sets bus_pid and daemon_pid.

bench_bus_start() {
        cat > "$dir/bus.conf" <<CONF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=$dir/bus</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/><allow own="*"/><allow send_destination="*"/><allow receive_sender="*"/>
  </policy>
</busconfig>
CONF
        dbus-daemon --config-file="$dir/bus.conf" --nofork --nopidfile 2>/dev/null &
        bus_pid=$!
        export DBUS_SYSTEM_BUS_ADDRESS=unix:path=$dir/bus
        for _ in $(seq 50); do [ -S "$dir/bus" ] && break; sleep 0.1; done
}

# bench_daemon_start BUILD [ARGS...]: the daemon with $dir/conf and $dir/state, its log appended to
# $dir/daemon.log; returns once its name is on the bus (at most 60 s).
bench_daemon_start() {
        mkdir -p "$dir/conf" "$dir/state"
        "$1/src/packetscoped" --bpffs-root "$bpffs" --state-dir "$dir/state" \
                --config-dir "$dir/conf" --log-target stderr "${@:2}" 2>>"$dir/daemon.log" &
        daemon_pid=$!
        for _ in $(seq 600); do
                busctl --system status org.packetscope.Guarder1 >/dev/null 2>&1 && return 0
                sleep 0.1
        done
        echo "the daemon did not come up: $(tail -n 5 "$dir/daemon.log")" >&2
        return 1
}

bench_daemon_stop() {
        [ -n "$daemon_pid" ] || return 0
        kill "$daemon_pid" 2>/dev/null
        wait "$daemon_pid" 2>/dev/null
        daemon_pid=
}
