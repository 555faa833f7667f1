# SPDX-License-Identifier: MIT
# shellcheck shell=bash
# Variables set here are used by the scripts that source this file: SC2034 does not apply.
# shellcheck disable=SC2034
#
# Shared helpers of the integration tests: TAP output, a cleanup stack run on exit, a private
# system bus carrying the shipped policy, the real daemon with its own state, configuration
# and bpffs root, a network namespace with a veth pair per test, bounded traffic, and bus
# calls with their JSON read back.
#
# Every resource a helper creates is pushed on the cleanup stack as it is created, so the EXIT
# trap undoes exactly what exists, in reverse order, whichever assertion failed. Processes
# are stopped by the PID this shell recorded, never by name.

SRCDIR=${SRCDIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
BUILDDIR=${BUILDDIR:-$SRCDIR/build}
PACKETSCOPED=${PACKETSCOPED:-$BUILDDIR/src/packetscoped}
PACKETSCOPECTL=${PACKETSCOPECTL:-$BUILDDIR/src/packetscopectl}
PS_TESTDIR=$SRCDIR/tests/integration
# The distribution's interpreter: the helpers use its standard library only.
PYTHON=${PYTHON:-$(command -v /usr/bin/python3 || command -v python3)}
export SRCDIR BUILDDIR PACKETSCOPED PACKETSCOPECTL

# Names the tests use.
PS_NAME=org.packetscope.Guarder1
PS_PATH=/org/packetscope/Guarder1
PS_MANAGER=org.packetscope.Guarder1.Manager
PS_LINK=org.packetscope.Guarder1.Link
PS_CONNS_PATH=$PS_PATH/connections
PS_CONNS=org.packetscope.Guarder1.Connections
PS_ERR=org.packetscope.Guarder1.Error
INVALID_ARGS=org.freedesktop.DBus.Error.InvalidArgs

# ---------------------------------------------------------------------------------------------
# TAP

tap_n=0
tap_failed=0

# ok STATUS DESCRIPTION [DIAGNOSTIC...]: STATUS 0 passes; diagnostics are shown on failure.
ok() {
        local status=$1 desc=$2 line
        shift 2
        tap_n=$((tap_n + 1))
        if [ "$status" -eq 0 ]; then
                echo "ok $tap_n - $desc"
                return 0
        fi
        echo "not ok $tap_n - $desc"
        tap_failed=$((tap_failed + 1))
        for line in "$@"; do
                printf '%s\n' "$line" | sed 's/^/#   /'
        done
        return 1
}

# check DESCRIPTION COMMAND...: passes when COMMAND succeeds; its output explains a failure.
check() {
        local desc=$1 out status
        shift
        out=$("$@" 2>&1)
        status=$?
        ok "$status" "$desc" "$out"
}

# is GOT WANT DESCRIPTION: string equality.
is() {
        if [ "$1" = "$2" ]; then
                ok 0 "$3"
        else
                ok 1 "$3" "got:  '$1'" "want: '$2'"
        fi
}

# ge GOT MIN DESCRIPTION: integer GOT >= MIN.
ge() {
        if [[ "$1" =~ ^[0-9]+$ ]] && [ "$1" -ge "$2" ]; then
                ok 0 "$3"
        else
                ok 1 "$3" "got:  '$1'" "want: at least $2"
        fi
}

# like TEXT REGEX DESCRIPTION: TEXT matches the extended REGEX.
like() {
        if grep -Eq -- "$2" <<<"$1"; then
                ok 0 "$3"
        else
                ok 1 "$3" "text: $1" "does not match: $2"
        fi
}

# jq_ok DESCRIPTION FILTER JSON [JQ-ARGS...]: passes when FILTER yields true on JSON.
jq_ok() {
        local desc=$1 filter=$2 json=$3
        shift 3
        jq -e "$@" "$filter" <<<"$json" >/dev/null 2>&1
        ok $? "$desc" "$json"
}

skip() {
        tap_n=$((tap_n + 1))
        echo "ok $tap_n - $1 # SKIP $2"
}

diag() {
        printf '%s\n' "$*" | sed 's/^/# /'
}

skip_all() {
        echo "1..0 # SKIP $*"
        exit 0
}

bail() {
        echo "Bail out! $*"
        exit 1
}

# done_testing: the plan goes last, so a script that dies half-way has no plan and fails.
done_testing() {
        echo "1..$tap_n"
        [ "$tap_failed" -eq 0 ]
        exit
}

require_root() {
        [ "$(id -u)" -eq 0 ] || skip_all "needs root (XDP, bpffs, network namespaces)"
}

require() {
        local c
        for c in "$@"; do
                command -v "$c" >/dev/null 2>&1 || skip_all "'$c' is not installed"
        done
}

# wait_until SECONDS COMMAND...: polls every 0.1 s; false when the time ran out.
wait_until() {
        local deadline=$(($(date +%s%N) + $1 * 1000000000))
        shift
        until "$@" >/dev/null 2>&1; do
                [ "$(date +%s%N)" -lt "$deadline" ] || return 1
                sleep 0.1
        done
}

# ---------------------------------------------------------------------------------------------
# Cleanup stack

ps_cleanup_stack=()

# defer COMMAND-STRING: evaluated at exit, last deferred first.
defer() {
        ps_cleanup_stack+=("$1")
}

ps_run_cleanup() {
        local i status=$?
        trap - EXIT INT TERM
        for ((i = ${#ps_cleanup_stack[@]} - 1; i >= 0; i--)); do
                eval "${ps_cleanup_stack[i]}" >/dev/null 2>&1 || true
        done
        exit "$status"
}
trap ps_run_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# kill_wait PID [SECONDS]: TERM, then KILL after SECONDS (default 10); reaps when it is ours.
kill_wait() {
        local pid=$1 t=${2:-10}
        kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }
        kill -TERM "$pid" 2>/dev/null
        if ! wait_until "$t" bash -c "! kill -0 $pid 2>/dev/null || \
                        grep -q '^State:.*Z' /proc/$pid/status"; then
                kill -KILL "$pid" 2>/dev/null
        fi
        wait "$pid" 2>/dev/null
}

# make_tmpdir VAR: a temporary directory removed at exit, reachable by other users (the bus
# socket lives in it).
make_tmpdir() {
        local d
        d=$(mktemp -d "${TMPDIR:-/tmp}/packetscope-it.XXXXXX") || bail "mktemp failed"
        chmod 755 "$d"
        defer "rm -rf '$d'"
        printf -v "$1" '%s' "$d"
}

# ---------------------------------------------------------------------------------------------
# A private system bus

# bus_start DIR: a dbus-daemon of type system on DIR/system_bus_socket with the shipped policy
# (and polkit's, when installed); exports DBUS_SYSTEM_BUS_ADDRESS. BUS_PID is its PID.
bus_start() {
        local dir=$1 i
        mkdir -p "$dir/system.d"
        chmod 755 "$dir"
        cp "$SRCDIR/dbus/org.packetscope.Guarder1.conf" "$dir/system.d/"
        # A trimmed copy of the distribution's system.conf: same default-deny policy, our
        # socket, no <user> switch, no activation helper.
        local polkit_conf=/usr/share/dbus-1/system.d/org.freedesktop.PolicyKit1.conf include=
        [ -f "$polkit_conf" ] && include="<include>$polkit_conf</include>"
        cat >"$dir/bus.conf" <<-EOF
	<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
	 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
	<busconfig>
	  <type>system</type>
	  <listen>unix:path=$dir/system_bus_socket</listen>
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
	    <allow send_destination="org.freedesktop.DBus"
	           send_interface="org.freedesktop.DBus"/>
	    <allow send_destination="org.freedesktop.DBus"
	           send_interface="org.freedesktop.DBus.Introspectable"/>
	    <allow send_destination="org.freedesktop.DBus"
	           send_interface="org.freedesktop.DBus.Properties"/>
	    <deny send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"
	          send_member="UpdateActivationEnvironment"/>
	  </policy>
	  <policy user="root">
	    <allow send_destination="org.freedesktop.DBus"
	           send_interface="org.freedesktop.DBus.Monitoring"/>
	  </policy>
	  $include
	  <includedir>$dir/system.d</includedir>
	</busconfig>
	EOF
        dbus-daemon --config-file="$dir/bus.conf" --nofork --nopidfile \
                --print-address=1 >"$dir/address" 2>"$dir/bus.log" &
        BUS_PID=$!
        defer "kill_wait $BUS_PID"
        export DBUS_SYSTEM_BUS_ADDRESS=unix:path=$dir/system_bus_socket
        wait_until 10 test -S "$dir/system_bus_socket" ||
                bail "dbus-daemon did not come up: $(cat "$dir/bus.log")"
        wait_until 10 busctl --system status org.freedesktop.DBus ||
                bail "the private bus does not answer: $(cat "$dir/bus.log")"
}

# ---------------------------------------------------------------------------------------------
# The daemon

# DAEMON_WRAP[NAME], when set, is a command (words without blanks of their own) that runs the
# daemon by exec'ing its arguments, so that the PID stays the daemon's: nsenter into a network
# namespace of the test, say, or unshare with a mount namespace of its own.
declare -A DAEMON_PID DAEMON_BPFFS DAEMON_DIR DAEMON_WRAP

# daemon_setup NAME: its directories, configuration and bpffs root (not started). The bpffs
# root is removed at exit, which also detaches whatever a test left attached there.
daemon_setup() {
        local name=$1 d=$T/daemon-$1
        mkdir -p "$d/state" "$d/config"
        # No ManagementPorts: the tests drop TCP broadly, and the lock-out guard that would
        # refuse it on port 22 is tested where it is configured (test-management-ports).
        cat >"$d/config/packetscope.conf" <<-EOF
		[Filters]
		ManagementPorts=
		[Guard]
		FlowTableSize=65536
		IcmpTableSize=4096
		PollIntervalSec=200ms
		EOF
        DAEMON_DIR[$name]=$d
        DAEMON_BPFFS[$name]=/sys/fs/bpf/packetscope-test-$$-$name
        defer "rm -rf '${DAEMON_BPFFS[$name]}'"
}

# daemon_start NAME [ARGS...]: starts it on the current bus (DBUS_SYSTEM_BUS_ADDRESS) and waits
# (at most 10 s) for its name; false if it died or never appeared. Its log is
# $T/daemon-NAME/log (appended across restarts).
daemon_start() {
        local name=$1 d pid
        shift
        [ -n "${DAEMON_DIR[$name]:-}" ] || daemon_setup "$name"
        d=${DAEMON_DIR[$name]}
        echo "--- start $(date +%T.%N)" >>"$d/log"
        # shellcheck disable=SC2086 # the wrapper's words, split on purpose
        ${DAEMON_WRAP[$name]:-} \
                "$PACKETSCOPED" --bpffs-root "${DAEMON_BPFFS[$name]}" --state-dir "$d/state" \
                --config-dir "$d/config" --log-target stderr --log-level debug "$@" \
                >>"$d/log" 2>&1 &
        pid=$!
        DAEMON_PID[$name]=$pid
        defer "kill_wait $pid"
        # Its name on the bus, from the daemon itself (a second daemon on another bus must
        # not satisfy the wait).
        wait_until 10 daemon_owns_name "$name" || return 1
}

daemon_owns_name() {
        local pid
        kill -0 "${DAEMON_PID[$1]}" 2>/dev/null || return 1
        pid=$(busctl --system --json=short call org.freedesktop.DBus /org/freedesktop/DBus \
                org.freedesktop.DBus GetConnectionUnixProcessID s "$PS_NAME" 2>/dev/null |
                jq -r '.data[0]') || return 1
        [ "$pid" = "${DAEMON_PID[$1]}" ]
}

# daemon_stop NAME: SIGTERM, wait (10 s, then SIGKILL); returns its exit status (call it in this
# shell, not in $(...): only the parent can reap it).
daemon_stop() {
        local pid=${DAEMON_PID[$1]} i
        kill -TERM "$pid" 2>/dev/null
        for ((i = 0; i < 100; i++)); do
                kill -0 "$pid" 2>/dev/null || break
                sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
                kill -KILL "$pid" 2>/dev/null
        fi
        wait "$pid"
}

# stored_rules STATE-DIR: the rules a start would read there, as a JSON array: filters.json with
# the records of filters.log and filters.log.new replayed over it (those of a journal whose
# header names another snapshot are ignored); see packetscoped(8), FILES.
stored_rules() {
        cat "$1/filters.log" "$1/filters.log.new" 2>/dev/null |
                jq -cn --slurpfile snap "$1/filters.json" '
                reduce inputs as $r ({gen: ($snap[0].journal // 0), skip: true,
                                      f: $snap[0].filters};
                        if $r.journal != null then .skip = ($r.journal != .gen)
                        elif .skip then .
                        elif $r.remove != null then .f |= map(select(.id != $r.remove))
                        else ($r.add // $r.change) as $x |
                                if any(.f[]; .id == $x.id)
                                then .f |= map(if .id == $x.id then $x else . end)
                                else .f += [$x] end
                        end) | .f'
}

daemon_alive() {
        kill -0 "${DAEMON_PID[$1]}" 2>/dev/null && daemon_owns_name "$1"
}

daemon_log() {
        tail -n "${2:-40}" "${DAEMON_DIR[$1]}/log"
}

# ---------------------------------------------------------------------------------------------
# Bus calls

# pscall OBJECT INTERFACE METHOD [SIGNATURE ARGS...]: busctl call, JSON on stdout; on error
# the bus error (name and text) on stderr and false.
pscall() {
        local path=$1 iface=$2 method=$3
        shift 3
        busctl --system --json=short call "$PS_NAME" "$path" "$iface" "$method" "$@"
}

# rawcall OBJECT INTERFACE METHOD SIGNATURE ARGS-JSON: the call through rawbus.py (see there);
# its JSON result on stdout.
rawcall() {
        timeout 60 "$PYTHON" "$PS_TESTDIR/rawbus.py" call "$PS_NAME" "$@"
}

# call_error OBJECT INTERFACE METHOD SIGNATURE ARGS-JSON: "NAME: text" of the bus error the
# call got; "OK" when it succeeded, "DISCONNECTED" when the bus dropped the caller.
call_error() {
        rawcall "$@" | jq -r 'if .error then "\(.error): \(.message)"
                              elif .disconnected then "DISCONNECTED" else "OK" end'
}

# stats_get [OBJECT INTERFACE]: GetStatistics() of the manager (or a link) as a plain JSON
# object.
# shellcheck disable=SC2120
stats_get() {
        rawcall "${1:-$PS_PATH}" "${2:-$PS_MANAGER}" GetStatistics "" '[]' |
                jq -c '.reply[0] | map_values(.[1])'
}

# stat_of KEY: one counter of GetStatistics (jq path below the object, e.g. '.icmp_types["8"]').
stat_of() {
        stats_get | jq -r "$1 // 0"
}

# stat_is FILTER VALUE: one statistic equals VALUE (for wait_until).
stat_is() {
        [ "$(stat_of "$1")" = "$2" ]
}

# list_flows [QUERY-JSON]: Connections.List with a query given as {"key": ["sig", value]}
# (default: limit 1000), as a JSON array of plain row objects.
list_flows() {
        pscall_query List "${1:-}"
}

list_icmp() {
        pscall_query ListIcmp "${1:-}"
}

pscall_query() {
        local method=$1 query=${2:-'{"limit": ["u", 1000]}'} args
        # busctl wants "a{sv} N key sig value ..." as separate words.
        mapfile -t args < <(jq -r \
                'to_entries | length, (.[] | .key, .value[0], (.value[1] | tostring))' \
                <<<"$query")
        pscall "$PS_CONNS_PATH" "$PS_CONNS" "$method" 'a{sv}' "${args[@]}" |
                jq -c '[.data[0][] | map_values(.data)]'
}

# attach IFNAME [MODE]: AttachLink as root; registers a DetachLink at exit.
attach() {
        defer "DBUS_SYSTEM_BUS_ADDRESS='$DBUS_SYSTEM_BUS_ADDRESS' \
                busctl --system call $PS_NAME $PS_PATH $PS_MANAGER DetachLink s '$1'"
        pscall "$PS_PATH" "$PS_MANAGER" AttachLink ss "$1" "${2:-generic}" >/dev/null
}

# ---------------------------------------------------------------------------------------------
# Network namespace + veth

# net_create KEY: a namespace and a veth pair with unused addresses. Sets KEY_NS, KEY_IF (host
# side), KEY_PEER (namespace side), KEY_H4/KEY_N4 (host/namespace IPv4), KEY_H6/KEY_N6 (IPv6),
# KEY_HMAC/KEY_NMAC. Neighbours are static on both sides, so no ARP or neighbour discovery
# frames add to what the tests count.
net_create() {
        local key=$1 tag ns ifh ifn x y h4 n4 h6 n6 hmac nmac
        tag=$(printf '%04x' $((RANDOM % 65536)))
        ns=ps-it-$$-$key
        ifh=psi$tag$key
        ifn=psn$tag$key
        [ ${#ifh} -le 15 ] || bail "interface name $ifh too long"
        # A /24 nobody here uses yet (nor a route to it), chosen at random.
        for _ in $(seq 50); do
                x=$((RANDOM % 200 + 20))
                y=$((RANDOM % 254 + 1))
                ip -o route show to match "10.$x.$y.1" | grep -q "10\.$x\.$y\." || break
        done
        h4=10.$x.$y.1
        n4=10.$x.$y.2
        h6=$(printf 'fd70:7363:%x:%x::1' "$x" "$y")
        n6=$(printf 'fd70:7363:%x:%x::2' "$x" "$y")
        ip netns add "$ns" || bail "ip netns add $ns failed"
        defer "ip netns del '$ns'"
        ip link add "$ifh" type veth peer name "$ifn" netns "$ns" || bail "veth $ifh failed"
        defer "ip link del '$ifh'"
        # No router solicitations or other autoconfiguration chatter on either side.
        sysctl -qw "net.ipv6.conf.$ifh.accept_ra=0" "net.ipv6.conf.$ifh.router_solicitations=0" \
                "net.ipv6.conf.$ifh.autoconf=0"
        ip netns exec "$ns" sysctl -qw "net.ipv6.conf.$ifn.accept_ra=0" \
                "net.ipv6.conf.$ifn.router_solicitations=0" "net.ipv6.conf.$ifn.autoconf=0"
        ip addr add "$h4/24" dev "$ifh"
        ip addr add "$h6/64" dev "$ifh" nodad
        ip -n "$ns" addr add "$n4/24" dev "$ifn"
        ip -n "$ns" addr add "$n6/64" dev "$ifn" nodad
        ip link set "$ifh" up
        ip -n "$ns" link set lo up
        ip -n "$ns" link set "$ifn" up
        hmac=$(cat "/sys/class/net/$ifh/address")
        nmac=$(ip netns exec "$ns" cat "/sys/class/net/$ifn/address")
        ip neigh replace "$n4" lladdr "$nmac" dev "$ifh" nud permanent
        ip neigh replace "$n6" lladdr "$nmac" dev "$ifh" nud permanent
        ip -n "$ns" neigh replace "$h4" lladdr "$hmac" dev "$ifn" nud permanent
        ip -n "$ns" neigh replace "$h6" lladdr "$hmac" dev "$ifn" nud permanent
        printf -v "${key}_NS" '%s' "$ns"
        printf -v "${key}_IF" '%s' "$ifh"
        printf -v "${key}_PEER" '%s' "$ifn"
        printf -v "${key}_H4" '%s' "$h4"
        printf -v "${key}_N4" '%s' "$n4"
        printf -v "${key}_H6" '%s' "$h6"
        printf -v "${key}_N6" '%s' "$n6"
        printf -v "${key}_HMAC" '%s' "$hmac"
        printf -v "${key}_NMAC" '%s' "$nmac"
        # The link is up once both ends are; IPv6 needs nothing more (nodad).
        wait_until 10 bash -c "ip -o link show '$ifh' | grep -q 'LOWER_UP'" ||
                bail "veth $ifh did not come up"
}

# in_ns NS COMMAND...: COMMAND inside the namespace, bounded to 30 s.
in_ns() {
        local ns=$1
        shift
        timeout 30 ip netns exec "$ns" "$@"
}

# traffic ARGS...: tests/integration/traffic.py, bounded to 30 s.
traffic() {
        timeout 30 "$PYTHON" "$PS_TESTDIR/traffic.py" "$@"
}

traffic_ns() {
        local ns=$1
        shift
        timeout 30 ip netns exec "$ns" "$PYTHON" "$PS_TESTDIR/traffic.py" "$@"
}

# tcp_exchange NS SERVER-ADDR NBYTES: a listener on the host side, one connection from the
# namespace sending NBYTES; echoes the server's port. False when it did not complete.
tcp_exchange() {
        local ns=$1 addr=$2 n=$3 pf spid port got
        pf=$(mktemp -u "$T/port.XXXXXX")
        traffic tcp-server "$addr" "$pf" >"$pf.got" &
        spid=$!
        if ! wait_until 10 test -s "$pf"; then
                kill_wait "$spid"
                return 1
        fi
        port=$(cat "$pf")
        traffic_ns "$ns" tcp-client "$addr" "$port" "$n" || { kill_wait "$spid"; return 1; }
        wait "$spid" || return 1
        got=$(cat "$pf.got")
        [ "$got" = "$n" ] || return 1
        echo "$port"
}

# udp_recv_start ADDR PORT:WANT...: traffic.py udp-recv on ADDR (this side) in the background,
# for UDP_RECV_PID; returns once its sockets are bound. udp_recv_result echoes its
# {"PORT": received}.
udp_recv_start() {
        local addr=$1
        shift
        rm -f "$T/udp-recv.ready"
        timeout 150 "$PYTHON" "$PS_TESTDIR/traffic.py" udp-recv "$addr" "$T/udp-recv.ready" 60 \
                "$@" >"$T/udp-recv.out" 2>&1 &
        UDP_RECV_PID=$!
        wait_until 20 test -e "$T/udp-recv.ready" || { kill_wait "$UDP_RECV_PID"; return 1; }
}

udp_recv_result() {
        wait "$UDP_RECV_PID"
        cat "$T/udp-recv.out"
}

# udp_delivered NS DST DPORT COUNT SIZE [SPORT]: COUNT datagrams of SIZE bytes from the
# namespace (from SPORT) to a socket on DST:DPORT on this side; echoes how many that socket
# received ("no listener" when it could not bind). What a user relies on is that they arrive,
# not that sendto returned.
udp_delivered() {
        local ns=$1 dst=$2 dport=$3 n=$4 size=$5 sport=${6:-}
        udp_recv_start "$dst" "$dport:$n" || { echo "no listener"; return 1; }
        traffic_ns "$ns" udp-send "$dst" "$dport" "$n" "$size" ${sport:+"$sport"}
        udp_recv_result >"$T/udp-recv.json"
        jq -r --arg p "$dport" '.[$p]' "$T/udp-recv.json" 2>/dev/null || cat "$T/udp-recv.json"
}

# ping_received NS ADDR COUNT [PING-ARGS...]: COUNT echo requests from the namespace (0.2 s
# apart unless PING-ARGS say otherwise); echoes how many replies came back, from ping's own
# summary. (ping exits 0 as soon as one reply came back: its status proves little.)
ping_received() {
        local ns=$1 addr=$2 n=$3
        shift 3
        in_ns "$ns" ping -n -q -c "$n" -i 0.2 -W 2 "$@" "$addr" 2>&1 |
                sed -n 's/.* \([0-9]\+\) received.*/\1/p'
}

# must DESCRIPTION COMMAND...: a step the checks after it depend on (sending traffic, say). It
# adds no check of its own when it works, since its success says nothing about the daemon; a
# failure is reported (and fails the test), so that the checks after it are not a mystery.
must() {
        local desc=$1 out
        shift
        out=$("$@" 2>&1) && return 0
        ok 1 "$desc" "$out"
}
