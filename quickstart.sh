#!/bin/bash
# SPDX-License-Identifier: MIT
#
# packetscope in two commands, on Debian 12, as root:
#
#   sudo ./quickstart.sh demo   install what is needed, build, and watch the guard at work on
#                               a demo network (a veth pair into a network namespace with
#                               bounded TCP, UDP and ICMP traffic); Ctrl-C removes everything
#   sudo ./quickstart.sh test   install what is needed, build, and run the whole test suite;
#                               the last line is "N passed, N failed"; a skip counts as a
#                               failure unless tests/run-suite allows it (never with CI=true)
#
# Environment:
#   DEMO_SECONDS=N             end the demo by itself after N seconds
#   QUICKSTART_NO_APT=1        skip apt-get (everything is installed already)
#   CI=true                    test: no skip is allowed (.ci/run sets it)

set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$REPO"

PACKAGES=(
        # build
        gcc gcc-multilib clang llvm pkg-config meson ninja-build
        libbpf-dev bpftool libsystemd-dev libjansson-dev libcurl4-openssl-dev libcriterion-dev
        libmicrohttpd-dev
        # run and test: the bus, polkit, XDP tools, containers for the unit tests
        dbus polkitd libglib2.0-bin xdp-tools systemd systemd-container util-linux passwd
        # networking and traffic; scapy crafts hostile frames (fragments, header chains)
        iproute2 iputils-ping netcat-openbsd python3 python3-scapy jq procps
        # the man page lint, load for the flake runs, libFuzzer's runtime for tests/fuzz
        groff stress-ng libclang-rt-14-dev
        # the exporter's test: promtool and a real Prometheus server; curl to fetch /metrics
        prometheus curl
        # the Debian package: dpkg-buildpackage, dh with meson, lintian; completion's home
        dpkg-dev debhelper fakeroot lintian bash-completion
        # the desktop applet (GTK 3, the tray, notifications, the generated bus client, its
        # message catalogue) and its headless test (a virtual X server, AT-SPI, real key
        # presses, screenshots)
        libgtk-3-dev libayatana-appindicator3-dev libnotify-dev libglib2.0-dev-bin gettext
        xvfb imagemagick python3-dogtail python3-gi gir1.2-atspi-2.0 at-spi2-core xdotool
)

die() {
        echo "quickstart: $*" >&2
        exit 1
}

usage() {
        echo "usage: sudo $0 demo|test" >&2
        exit 2
}

install_packages() {
        if [ "${QUICKSTART_NO_APT:-0}" = 1 ]; then
                echo "quickstart: QUICKSTART_NO_APT=1, not installing packages"
                return
        fi
        command -v apt-get >/dev/null || die "apt-get not found: this script is for Debian 12"
        echo "quickstart: installing build and test dependencies"
        apt-get update
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${PACKAGES[@]}"
}

# The daemon pins its programs and maps in bpffs; CI machines and containers may not have it.
mount_bpffs() {
        mkdir -p /sys/fs/bpf
        if [ "$(stat -f -c %T /sys/fs/bpf)" != bpf_fs ]; then
                echo "quickstart: mounting bpffs on /sys/fs/bpf"
                mount -t bpf bpf /sys/fs/bpf || die "cannot mount bpffs on /sys/fs/bpf"
        fi
}

build() {
        if [ -f build/build.ninja ]; then
                meson setup --reconfigure build >/dev/null
        else
                meson setup build
        fi
        meson compile -C build
}

# ---------------------------------------------------------------------------------------------
# demo

DEMO_NS=ps-demo-$$
DEMO_IF=psdemo$$
DEMO_IF=${DEMO_IF:0:12}
DEMO_PEER=${DEMO_IF}p
DEMO_ROOT=/sys/fs/bpf/packetscope-demo-$$
DEMO_TMP=
DEMO_BUS_PID=
DEMO_DAEMON_PID=
DEMO_TRAFFIC_PID=
DEMO_UNIT=
PYTHON=
CTL=$REPO/build/src/packetscopectl
DAEMON=$REPO/build/src/packetscoped

demo_cleanup() {
        local status=$?
        trap - EXIT INT TERM
        set +e
        echo
        echo "quickstart: cleaning up"
        if [ -n "$DEMO_TRAFFIC_PID" ]; then
                kill "$DEMO_TRAFFIC_PID" 2>/dev/null
                wait "$DEMO_TRAFFIC_PID" 2>/dev/null
        fi
        if [ -n "$DEMO_UNIT" ]; then
                systemctl stop "$DEMO_UNIT" 2>/dev/null
        elif [ -n "$DEMO_DAEMON_PID" ]; then
                "$CTL" detach --ensure "$DEMO_IF" >/dev/null 2>&1
                kill "$DEMO_DAEMON_PID" 2>/dev/null
                wait "$DEMO_DAEMON_PID" 2>/dev/null
        fi
        if [ -n "$DEMO_BUS_PID" ]; then
                kill "$DEMO_BUS_PID" 2>/dev/null
                wait "$DEMO_BUS_PID" 2>/dev/null
        fi
        ip link del "$DEMO_IF" 2>/dev/null
        ip netns del "$DEMO_NS" 2>/dev/null
        rm -rf "$DEMO_ROOT"
        [ -n "$DEMO_TMP" ] && rm -rf "$DEMO_TMP"
        exit "$status"
}

# A /24 no route on this machine uses yet.
pick_subnet() {
        local x
        for x in $(seq 213 250) $(seq 20 212); do
                if ! ip -o route show to match "10.$x.0.1" | grep -q "10\.$x\.0\."; then
                        echo "$x"
                        return
                fi
        done
        die "no free 10.x.0.0/24 subnet for the demo"
}

demo_network() {
        local x
        x=$(pick_subnet)
        DEMO_H4=10.$x.0.1
        DEMO_N4=10.$x.0.2
        DEMO_H6=fd70:7363:$x::1
        DEMO_N6=fd70:7363:$x::2
        ip netns add "$DEMO_NS"
        ip link add "$DEMO_IF" type veth peer name "$DEMO_PEER" netns "$DEMO_NS"
        ip addr add "$DEMO_H4/24" dev "$DEMO_IF"
        ip addr add "$DEMO_H6/64" dev "$DEMO_IF" nodad
        ip -n "$DEMO_NS" addr add "$DEMO_N4/24" dev "$DEMO_PEER"
        ip -n "$DEMO_NS" addr add "$DEMO_N6/64" dev "$DEMO_PEER" nodad
        ip link set "$DEMO_IF" up
        ip -n "$DEMO_NS" link set lo up
        ip -n "$DEMO_NS" link set "$DEMO_PEER" up
        echo "quickstart: demo network: $DEMO_IF ($DEMO_H4) <-> namespace $DEMO_NS ($DEMO_N4)"
}

# Bounded traffic from the namespace to the host side of the demo veth (and one datagram the
# other way, to draw an ICMP port unreachable): at most ITERATIONS rounds, one every 0.5 s.
demo_traffic() {
        local iterations=$1 i pf port traffic=$REPO/tests/integration/traffic.py
        # A lost ping or a refused datagram is part of the show, not a reason to stop.
        set +e
        for ((i = 0; i < iterations; i++)); do
                timeout 5 ip netns exec "$DEMO_NS" ping -c 1 -W 1 "$DEMO_H4" >/dev/null 2>&1
                timeout 5 ip netns exec "$DEMO_NS" ping -6 -c 1 -W 1 "$DEMO_H6" >/dev/null 2>&1
                if ((i % 4 == 0)); then
                        pf=$DEMO_TMP/port.$i
                        timeout 10 "$PYTHON" "$traffic" tcp-server "$DEMO_H4" "$pf" >/dev/null 2>&1 &
                        for _ in $(seq 50); do [ -s "$pf" ] && break; sleep 0.02; done
                        if [ -s "$pf" ]; then
                                port=$(cat "$pf")
                                timeout 10 ip netns exec "$DEMO_NS" "$PYTHON" "$traffic" \
                                        tcp-client "$DEMO_H4" "$port" $((4096 * (i % 7 + 1))) \
                                        >/dev/null 2>&1
                        fi
                        wait 2>/dev/null
                fi
                timeout 5 ip netns exec "$DEMO_NS" "$PYTHON" "$traffic" udp-send "$DEMO_H4" 5353 \
                        $((i % 5 + 1)) 200 45353 >/dev/null 2>&1
                if ((i % 10 == 0)); then
                        timeout 5 "$PYTHON" "$traffic" udp-send "$DEMO_N4" 33434 1 32 >/dev/null 2>&1
                fi
                sleep 0.5
        done
}

demo() {
        local seconds=${DEMO_SECONDS:-0} iterations count_args=() mode=auto
        [[ "$seconds" =~ ^[0-9]+$ ]] || die "DEMO_SECONDS must be a number of seconds"
        # Found only now: apt-get may just have installed it.
        PYTHON=$(command -v /usr/bin/python3 || command -v python3) || die "python3 is missing"
        trap demo_cleanup EXIT
        trap 'exit 130' INT
        trap 'exit 143' TERM
        DEMO_TMP=$(mktemp -d /tmp/packetscope-demo.XXXXXX)
        chmod 755 "$DEMO_TMP"
        demo_network

        if [ -d /run/systemd/system ] && systemctl cat packetscope@.service >/dev/null 2>&1; then
                # Installed units: the system bus and the real service.
                echo "quickstart: using the installed units (packetscope@$DEMO_IF.service)"
                CTL=$(command -v packetscopectl || echo "$CTL")
                DEMO_UNIT=packetscope@$DEMO_IF.service
                systemctl start "$DEMO_UNIT"
        else
                # No systemd (containers, CI) or not installed: a private bus and the daemon.
                echo "quickstart: starting a private D-Bus system bus and packetscoped"
                mkdir -p "$DEMO_TMP/bus/system.d" "$DEMO_TMP/state" "$DEMO_TMP/config"
                cp dbus/org.packetscope.Guarder1.conf "$DEMO_TMP/bus/system.d/"
                cat >"$DEMO_TMP/bus/bus.conf" <<-EOF
		<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
		 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
		<busconfig>
		  <type>system</type>
		  <listen>unix:path=$DEMO_TMP/bus/system_bus_socket</listen>
		  <auth>EXTERNAL</auth>
		  <policy context="default">
		    <allow user="*"/>
		    <deny own="*"/>
		    <deny send_type="method_call"/>
		    <allow send_type="signal"/>
		    <allow send_requested_reply="true" send_type="method_return"/>
		    <allow send_requested_reply="true" send_type="error"/>
		    <allow receive_type="method_call"/>
		    <allow receive_type="method_return"/>
		    <allow receive_type="error"/>
		    <allow receive_type="signal"/>
		    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
		    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
		  </policy>
		  <includedir>$DEMO_TMP/bus/system.d</includedir>
		</busconfig>
		EOF
                printf '[Guard]\nFlowTableSize=65536\nPollIntervalSec=500ms\n' \
                        >"$DEMO_TMP/config/packetscope.conf"
                # Their own sessions: Ctrl-C reaches this script and the monitor, and the
                # cleanup still finds the bus and the daemon there to detach properly.
                setsid dbus-daemon --config-file="$DEMO_TMP/bus/bus.conf" --nofork --nopidfile \
                        >"$DEMO_TMP/bus.log" 2>&1 &
                DEMO_BUS_PID=$!
                export DBUS_SYSTEM_BUS_ADDRESS=unix:path=$DEMO_TMP/bus/system_bus_socket
                for _ in $(seq 100); do [ -S "$DEMO_TMP/bus/system_bus_socket" ] && break; sleep 0.1; done
                setsid "$DAEMON" --bpffs-root "$DEMO_ROOT" --state-dir "$DEMO_TMP/state" \
                        --config-dir "$DEMO_TMP/config" --log-target stderr \
                        2>"$DEMO_TMP/daemon.log" &
                DEMO_DAEMON_PID=$!
                for _ in $(seq 100); do
                        busctl --system status org.packetscope.Guarder1 >/dev/null 2>&1 && break
                        kill -0 "$DEMO_DAEMON_PID" 2>/dev/null ||
                                die "packetscoped exited: $(cat "$DEMO_TMP/daemon.log")"
                        sleep 0.1
                done
                "$CTL" attach --mode="$mode" "$DEMO_IF" ||
                        die "attach failed: $(tail -n 20 "$DEMO_TMP/daemon.log")"
        fi

        if ((seconds > 0)); then
                iterations=$((seconds * 2))
                count_args=(--count "$seconds")
        else
                iterations=600
                echo "quickstart: traffic runs for about 5 minutes; Ctrl-C ends the demo"
        fi
        demo_traffic "$iterations" &
        DEMO_TRAFFIC_PID=$!
        sleep 1
        "$CTL" monitor --interval 1s "${count_args[@]}"
        echo
        "$CTL" connections --top 10
        echo
        "$CTL" icmp
}

# ---------------------------------------------------------------------------------------------

[ $# -eq 1 ] || usage
case $1 in
demo|test) ;;
*) usage ;;
esac
[ "$(id -u)" -eq 0 ] || die "run as root: sudo $0 $1"

install_packages
mount_bpffs

case $1 in
test)
        # The suite configures and builds build/ and build-san/ itself.
        exec tests/run-suite "$REPO"
        ;;
demo)
        build
        demo
        ;;
esac
