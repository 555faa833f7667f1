# SPDX-License-Identifier: MIT
# shellcheck shell=bash
#
# Helpers for the system-level integration tests (polkit, crash recovery, the systemd units):
# TAP output, a cleanup stack run on exit, a private system bus, a real polkitd with private
# action and rule directories, the daemon with private pin and state directories, and a
# booted container. Everything a test starts or creates is registered with sys_defer, so the
# EXIT trap removes it in reverse order, whatever happened.
#
# Function names carry a sys_ prefix so that this file can be sourced next to lib.sh.

SRCDIR=${SRCDIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
BUILDDIR=${BUILDDIR:-$SRCDIR/build}
PACKETSCOPED=${PACKETSCOPED:-$BUILDDIR/src/packetscoped}
PACKETSCOPECTL=${PACKETSCOPECTL:-$BUILDDIR/src/packetscopectl}
export SRCDIR BUILDDIR PACKETSCOPED PACKETSCOPECTL

PS_BUS_NAME=org.packetscope.Guarder1
PS_ROOT_PATH=/org/packetscope/Guarder1
PS_MANAGER_IFACE=org.packetscope.Guarder1.Manager
PS_LINK_IFACE=org.packetscope.Guarder1.Link

# ---------------------------------------------------------------------------------------------
# TAP

sys_tap_n=0
sys_tap_failed=0
sys_tap_planned=0

sys_plan() {
        sys_tap_planned=$1
        echo "1..$1"
}

# sys_ok OK DESCRIPTION [DIAGNOSTIC...]: OK is 0 for a pass (a shell status), anything else fails.
sys_ok() {
        local status=$1 desc=$2
        shift 2
        sys_tap_n=$((sys_tap_n + 1))
        if [ "$status" -eq 0 ]; then
                echo "ok $sys_tap_n - $desc"
        else
                echo "not ok $sys_tap_n - $desc"
                sys_tap_failed=$((sys_tap_failed + 1))
                local line
                for line in "$@"; do
                        printf '%s\n' "$line" | sed 's/^/# /'
                done
        fi
}

# sys_check DESCRIPTION COMMAND...: runs COMMAND, passes when it succeeds; its output becomes
# the diagnostic of a failure.
sys_check() {
        local desc=$1 out status
        shift
        out=$("$@" 2>&1)
        status=$?
        sys_ok "$status" "$desc" "$out"
}

sys_skip() {
        sys_tap_n=$((sys_tap_n + 1))
        echo "ok $sys_tap_n - $1 # SKIP $2"
}

sys_diag() {
        printf '%s\n' "$@" | sed 's/^/# /'
}

# The whole test cannot run here (a tool is missing): TAP's skip-all plan, exit 77 for meson.
sys_skip_all() {
        echo "1..0 # SKIP $*"
        exit 77
}

sys_bail() {
        echo "Bail out! $*"
        exit 1
}

# Called last: the number of results must match the plan.
sys_done() {
        if [ "$sys_tap_n" -ne "$sys_tap_planned" ]; then
                sys_diag "planned $sys_tap_planned tests but ran $sys_tap_n"
                exit 1
        fi
        [ "$sys_tap_failed" -eq 0 ] || exit 1
        exit 0
}

# ---------------------------------------------------------------------------------------------
# Cleanup: a stack of shell snippets, run in reverse order from the EXIT trap.

sys_cleanups=()

sys_defer() {
        sys_cleanups+=("$1")
}

sys_run_cleanups() {
        local i
        trap - EXIT INT TERM
        for ((i = ${#sys_cleanups[@]} - 1; i >= 0; i--)); do
                eval "${sys_cleanups[$i]}" >/dev/null 2>&1 || true
        done
        sys_cleanups=()
}

# exit (not return) from the signal traps so that the EXIT trap runs the cleanups once.
trap 'sys_run_cleanups' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Kill one process we started, by PID, and reap it; TERM first, KILL after 5 s.
sys_kill_pid() {
        local pid=$1 i
        [ -n "$pid" ] || return 0
        kill -TERM "$pid" 2>/dev/null || return 0
        for ((i = 0; i < 50; i++)); do
                kill -0 "$pid" 2>/dev/null || break
                sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
        return 0
}

# sys_tmpdir VAR [NAME]: a temp dir that other users can traverse (polkitd and the
# unprivileged callers need the bus socket inside it), stored in VAR, removed on exit. Not
# through $(...): the cleanup must be registered in this shell.
sys_tmpdir() {
        local d
        d=$(mktemp -d "${TMPDIR:-/tmp}/packetscope-${2:-test}.XXXXXX") || sys_bail "mktemp failed"
        chmod 755 "$d"
        sys_defer "rm -rf '$d'"
        printf -v "$1" '%s' "$d"
}

# sys_wait_until SECONDS COMMAND...: polls every 0.1 s until COMMAND succeeds.
sys_wait_until() {
        local limit=$1 i
        shift
        for ((i = 0; i < limit * 10; i++)); do
                "$@" >/dev/null 2>&1 && return 0
                sleep 0.1
        done
        return 1
}

sys_now_ms() {
        local t
        t=$(date +%s%N)
        echo $((t / 1000000))
}

sys_require() {
        local t
        for t in "$@"; do
                command -v "$t" >/dev/null 2>&1 || sys_skip_all "$t is not installed"
        done
}

sys_require_root() {
        [ "$(id -u)" -eq 0 ] || sys_skip_all "needs root (bpf, netns, a private polkitd)"
}

# ---------------------------------------------------------------------------------------------
# A private system bus. sys_bus_start DIR [POLICY_FILE...]: the default deny policy of the
# system bus plus the given policy files (copied into DIR/system.d); exports
# DBUS_SYSTEM_BUS_ADDRESS and sets SYS_BUS_PID.

sys_bus_start() {
        local dir=$1 f i
        shift
        mkdir -p "$dir/system.d" "$dir/services"
        for f in "$@"; do
                cp "$f" "$dir/system.d/" || sys_bail "cannot copy bus policy $f"
        done
        cat >"$dir/bus.conf" <<EOF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <auth>EXTERNAL</auth>
  <listen>unix:path=$dir/system_bus_socket</listen>
  <servicedir>$dir/services</servicedir>
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
    <allow send_destination="org.freedesktop.DBus"
           send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus"
           send_interface="org.freedesktop.DBus.Properties"/>
    <deny send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"
          send_member="UpdateActivationEnvironment"/>
  </policy>
  <includedir>$dir/system.d</includedir>
</busconfig>
EOF
        dbus-daemon --config-file="$dir/bus.conf" --nofork --nopidfile \
                >"$dir/bus.log" 2>&1 </dev/null &
        SYS_BUS_PID=$!
        sys_defer "sys_kill_pid $SYS_BUS_PID"
        export DBUS_SYSTEM_BUS_ADDRESS="unix:path=$dir/system_bus_socket"
        for ((i = 0; i < 100; i++)); do
                [ -S "$dir/system_bus_socket" ] && busctl --system status org.freedesktop.DBus \
                        >/dev/null 2>&1 && return 0
                kill -0 "$SYS_BUS_PID" 2>/dev/null || break
                sleep 0.1
        done
        sys_bail "the private dbus-daemon did not come up: $(cat "$dir/bus.log")"
}

sys_name_has_owner() {
        busctl --system call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus \
                NameHasOwner s "$1" 2>/dev/null | grep -qx 'b true'
}

# ---------------------------------------------------------------------------------------------
# A real polkitd on the private bus. sys_polkit_start DIR: DIR/actions holds the project's
# .policy, DIR/rules.d the rules (made polkitd:root 0700 here); both are bind-mounted over the
# fixed paths in a private mount namespace. Sets SYS_POLKIT_PID.

sys_polkit_start() {
        local dir=$1
        mkdir -p "$dir/actions" "$dir/rules.d"
        cp "$SRCDIR/polkit/org.packetscope.guarder1.policy" "$dir/actions/" ||
                sys_bail "cannot copy the polkit policy"
        chmod 755 "$dir/actions"
        chmod 644 "$dir/actions/"*
        chown polkitd:root "$dir/rules.d"
        chmod 700 "$dir/rules.d"
        # The policy check of the action file happens at load: make its errors visible.
        unshare --mount --propagation private sh -c '
                mount --bind "$1/actions" /usr/share/polkit-1/actions &&
                mount --bind "$1/rules.d" /etc/polkit-1/rules.d &&
                exec /usr/lib/polkit-1/polkitd --no-debug' sh "$dir" \
                >"$dir/polkitd.log" 2>&1 </dev/null &
        SYS_POLKIT_PID=$!
        sys_defer "kill -CONT $SYS_POLKIT_PID; sys_kill_pid $SYS_POLKIT_PID"
        sys_wait_until 15 sys_name_has_owner org.freedesktop.PolicyKit1 ||
                sys_bail "polkitd did not appear on the bus: $(cat "$dir/polkitd.log")"
}

# sys_polkit_rule DIR NAME TEXT: installs a rules file readable by polkitd; polkitd re-reads
# the directory on change, so wait a moment (or check with pkcheck) before relying on it.
sys_polkit_rule() {
        local dir=$1 name=$2 text=$3
        printf '%s\n' "$text" >"$dir/rules.d/$name"
        chown polkitd:root "$dir/rules.d/$name"
        chmod 644 "$dir/rules.d/$name"
}

# ---------------------------------------------------------------------------------------------
# The daemon. sys_daemon_start DIR: pins under SYS_BPFFS_ROOT (set by the caller, or a fresh
# directory under /sys/fs/bpf), state in DIR/state, config in DIR/conf, stderr to DIR/daemon.log
# (appended, so restarts keep one log). Sets SYS_DAEMON_PID.

sys_daemon_start() {
        local dir=$1
        if [ -z "${SYS_BPFFS_ROOT:-}" ]; then
                SYS_BPFFS_ROOT=/sys/fs/bpf/packetscope-test-$$
                # Unpinning everything detaches whatever a failed test left attached.
                sys_defer "rm -rf '$SYS_BPFFS_ROOT'"
        fi
        mkdir -p "$dir/state" "$dir/conf"
        "$PACKETSCOPED" --bpffs-root="$SYS_BPFFS_ROOT" --state-dir="$dir/state" \
                --config-dir="$dir/conf" --log-target=stderr "${@:2}" \
                >>"$dir/daemon.log" 2>&1 </dev/null &
        SYS_DAEMON_PID=$!
        sys_defer "sys_kill_pid $SYS_DAEMON_PID"
        if ! sys_wait_until 15 sys_name_has_owner "$PS_BUS_NAME"; then
                sys_diag "daemon log:" "$(cat "$dir/daemon.log")"
                return 1
        fi
}

sys_daemon_stop() {
        sys_kill_pid "$SYS_DAEMON_PID"
        SYS_DAEMON_PID=
}

# The object paths in the Links property, one per line.
sys_links() {
        busctl --system get-property "$PS_BUS_NAME" "$PS_ROOT_PATH" "$PS_MANAGER_IFACE" Links |
                sed 's/^ao [0-9]*//' | tr ' ' '\n' | tr -d '"' | sed '/^$/d'
}

# A property of a link object, value only.
sys_link_prop() {
        local ifname=$1 prop=$2
        busctl --system get-property "$PS_BUS_NAME" "$PS_ROOT_PATH/link/$ifname" "$PS_LINK_IFACE" \
                "$prop" | awk '{print $2}'
}

# The XDP program id attached to IFNAME (in namespace NS if given), empty when none.
sys_xdp_prog_id() {
        local ifname=$1 ns=${2:-}
        if [ -n "$ns" ]; then
                ip -n "$ns" -d link show dev "$ifname"
        else
                ip -d link show dev "$ifname"
        fi 2>/dev/null | sed -n 's/.*prog\/xdp id \([0-9]*\).*/\1/p' | head -n1
}

# ---------------------------------------------------------------------------------------------
# A veth pair: IF in this namespace with ADDR_A, its peer in a new namespace NS with ADDR_B
# (/24 addresses). Removing the namespace removes the pair.

sys_veth_netns() {
        local ns=$1 ifname=$2 peer=$3 addr_a=$4 addr_b=$5
        ip netns add "$ns" || sys_bail "cannot create netns $ns"
        sys_defer "ip link del '$ifname'; ip netns del '$ns'"
        ip link add "$ifname" type veth peer name "$peer" netns "$ns" ||
                sys_bail "cannot create veth $ifname"
        ip addr add "$addr_a/24" dev "$ifname"
        ip link set "$ifname" up
        ip -n "$ns" addr add "$addr_b/24" dev "$peer"
        ip -n "$ns" link set "$peer" up
        ip -n "$ns" link set lo up
}

# ---------------------------------------------------------------------------------------------
# Cgroups: a dedicated cgroup for the calling shell in the hierarchies nspawn uses (the unified
# one and the named systemd one on a hybrid host, the root on a pure cgroup2 host), so that
# nspawn's cgroups do not land at the root. sys_cgroup_leave moves the shell back to where it
# was and removes NAME's tree depth-first (nspawn leaves sub-cgroups behind).

sys_cgroup_bases() {
        if [ -d /sys/fs/cgroup/unified ] || [ -d /sys/fs/cgroup/systemd ]; then
                local h
                for h in unified systemd; do
                        [ -d "/sys/fs/cgroup/$h" ] && echo "/sys/fs/cgroup/$h"
                done
        elif [ -f /sys/fs/cgroup/cgroup.controllers ]; then
                echo /sys/fs/cgroup
        fi
}

# Where this shell is now in BASE's hierarchy (from /proc/self/cgroup).
sys_cgroup_current() {
        case $1 in
        */systemd) sed -n 's/^[0-9]*:name=systemd://p' /proc/$$/cgroup ;;
        *) sed -n 's/^0:://p' /proc/$$/cgroup ;;
        esac
}

sys_cgroup_enter() {
        local name=$1 base cur
        SYS_CGROUP_ORIGIN=()
        for base in $(sys_cgroup_bases); do
                cur=$(sys_cgroup_current "$base")
                SYS_CGROUP_ORIGIN+=("$base${cur%/}")
                mkdir -p "$base/$name" || return 1
                echo $$ >"$base/$name/cgroup.procs" || return 1
        done
}

sys_cgroup_leave() {
        local name=$1 base origin
        for origin in "${SYS_CGROUP_ORIGIN[@]}"; do
                echo $$ >"$origin/cgroup.procs" 2>/dev/null
        done
        for base in $(sys_cgroup_bases); do
                [ -d "$base/$name" ] && find "$base/$name" -depth -type d -exec rmdir {} \; 2>/dev/null
        done
        return 0
}

# ---------------------------------------------------------------------------------------------
# A booted container: the host's own root, read-only under a tmpfs overlay, with its own network
# namespace and an empty /sys/fs/bpf, the BPF syscalls allowed. sys_container_boot DIR NAME
# STAGE [KERNEL_ARGS...]: STAGE is bound read-only at /opt/stage; KERNEL_ARGS go to the
# container's systemd (systemd.mask=... for host services that should not run). Sets
# SYS_NSPAWN_PID and SYS_CT_LEADER (the container's PID 1 as seen from here).

sys_container_boot() {
        local dir=$1 name=$2 stage=$3 i
        shift 3
        mkdir -p "$dir/root"
        sys_cgroup_enter "$name" || return 1
        sys_defer "sys_cgroup_leave '$name'"
        # A non-recursive bind of / (nspawn refuses -D /), and a tmpfs on /run so that nspawn's
        # own runtime files stay in this mount namespace.
        unshare --mount --propagation private sh -c '
                root=$1 name=$2 stage=$3
                shift 3
                mount --bind / "$root" && mount -t tmpfs tmpfs /run &&
                exec systemd-nspawn -D "$root" --volatile=overlay --machine="$name" \
                        --register=no --keep-unit --link-journal=no --private-network \
                        --capability=CAP_BPF,CAP_PERFMON,CAP_NET_ADMIN \
                        --system-call-filter="bpf perf_event_open" \
                        --tmpfs=/sys/fs/bpf --bind-ro="$stage":/opt/stage \
                        --console=pipe -b "$@"' sh "$dir/root" "$name" "$stage" "$@" \
                </dev/null >"$dir/console.log" 2>&1 &
        SYS_NSPAWN_PID=$!
        sys_defer "sys_container_stop"
        SYS_CT_LEADER=
        for ((i = 0; i < 100; i++)); do
                SYS_CT_LEADER=$(ps -o pid= --ppid "$SYS_NSPAWN_PID" 2>/dev/null | head -n1 | tr -d ' ')
                [ -n "$SYS_CT_LEADER" ] && break
                kill -0 "$SYS_NSPAWN_PID" 2>/dev/null || break
                sleep 0.1
        done
        [ -n "$SYS_CT_LEADER" ] || return 1
        # "degraded" is fine: a host unit that does not belong in a container may have failed.
        # Until the container's manager listens, systemctl cannot connect at all: retry.
        for ((i = 0; i < 300; i++)); do
                timeout 60 nsenter -t "$SYS_CT_LEADER" -a systemctl is-system-running --wait \
                        >"$dir/boot-state" 2>&1
                grep -Eqx 'running|degraded' "$dir/boot-state" && return 0
                grep -q 'Failed to connect' "$dir/boot-state" || return 1
                kill -0 "$SYS_NSPAWN_PID" 2>/dev/null || return 1
                sleep 0.1
        done
        return 1
}

# Runs a command inside the container with a clean environment.
sys_in_ct() {
        nsenter -t "$SYS_CT_LEADER" -a env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
                SYSTEMD_PAGER= SYSTEMD_COLORS=0 "$@"
}

# TERM asks the container to power off; a second TERM makes nspawn kill it at once.
sys_container_stop() {
        local i
        [ -n "${SYS_NSPAWN_PID:-}" ] || return 0
        kill -TERM "$SYS_NSPAWN_PID" 2>/dev/null
        for ((i = 0; i < 100; i++)); do
                kill -0 "$SYS_NSPAWN_PID" 2>/dev/null || break
                sleep 0.1
        done
        if kill -0 "$SYS_NSPAWN_PID" 2>/dev/null; then
                kill -TERM "$SYS_NSPAWN_PID" 2>/dev/null
                sleep 1
        fi
        sys_kill_pid "$SYS_NSPAWN_PID"
        wait "$SYS_NSPAWN_PID" 2>/dev/null
        SYS_NSPAWN_PID=
}
