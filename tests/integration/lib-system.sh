# SPDX-License-Identifier: MIT
# shellcheck shell=bash
#
# Helpers of the system-level integration tests (polkit, crash recovery, the systemd units), on
# top of lib.sh (TAP, the cleanup stack, the private bus, the daemon, namespaces): a real
# polkitd with private action and rule directories, the XDP program id of an interface, and a
# booted container with its own cgroup. Everything started or created here is pushed on
# lib.sh's cleanup stack as it is created.

# shellcheck source=tests/integration/lib.sh
declare -F done_testing >/dev/null || . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

sys_now_ms() {
        local t
        t=$(date +%s%N)
        echo $((t / 1000000))
}

sys_name_has_owner() {
        busctl --system call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus \
                NameHasOwner s "$1" 2>/dev/null | grep -qx 'b true'
}

# The object paths in the manager's Links property, one per line.
sys_links() {
        busctl --system get-property "$PS_NAME" "$PS_PATH" "$PS_MANAGER" Links |
                sed 's/^ao [0-9]*//' | tr ' ' '\n' | tr -d '"' | sed '/^$/d'
}

# The id of the XDP program attached to IFNAME (in namespace NS if given); empty when none.
sys_xdp_prog_id() {
        local ifname=$1 ns=${2:-}
        if [ -n "$ns" ]; then
                ip -n "$ns" -d link show dev "$ifname"
        else
                ip -d link show dev "$ifname"
        fi 2>/dev/null | sed -n 's/.*prog\/xdp id \([0-9]*\).*/\1/p' | head -n1
}

# ---------------------------------------------------------------------------------------------
# A real polkitd on the private bus (bus_start includes polkit's bus policy when polkitd is
# installed). sys_polkit_start DIR: DIR/actions gets the project's .policy, DIR/rules.d holds
# the rules (polkitd:root, 0700, as polkitd insists); both are bind-mounted over polkit's fixed
# directories in a private mount namespace. Sets SYS_POLKIT_PID.

sys_polkit_start() {
        local dir=$1
        mkdir -p "$dir/actions" "$dir/rules.d"
        cp "$SRCDIR/polkit/org.packetscope.guarder1.policy" "$dir/actions/" ||
                bail "cannot copy the polkit policy"
        chmod 755 "$dir" "$dir/actions"
        chmod 644 "$dir/actions/"*
        chown polkitd:root "$dir/rules.d"
        chmod 700 "$dir/rules.d"
        unshare --mount --propagation private sh -c '
                mount --bind "$1/actions" /usr/share/polkit-1/actions &&
                mount --bind "$1/rules.d" /etc/polkit-1/rules.d &&
                exec /usr/lib/polkit-1/polkitd --no-debug' sh "$dir" \
                >>"$dir/polkitd.log" 2>&1 </dev/null &
        SYS_POLKIT_PID=$!
        # A stopped polkitd (tests stop it on purpose) must be continued to hear TERM.
        defer "kill -CONT $SYS_POLKIT_PID; kill_wait $SYS_POLKIT_PID"
        wait_until 15 sys_name_has_owner org.freedesktop.PolicyKit1 ||
                bail "polkitd did not appear on the bus: $(cat "$dir/polkitd.log")"
}

# sys_polkit_rule DIR NAME TEXT: installs a rules file readable by polkitd. polkitd notices new
# rules by itself, a moment later: check with pkcheck before relying on it.
sys_polkit_rule() {
        local dir=$1 name=$2 text=$3
        printf '%s\n' "$text" >"$dir/rules.d/$name"
        chown polkitd:root "$dir/rules.d/$name"
        chmod 644 "$dir/rules.d/$name"
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
# SYS_NSPAWN_PID and SYS_CT_LEADER (the container's PID 1 as seen from here). Further nspawn
# options may be put in the array SYS_NSPAWN_ARGS first (sys_ct_share does).

SYS_NSPAWN_ARGS=()

# sys_ct_share DIR: makes the host's DIR visible at the same path in the container booted next,
# writable there and unchanged here. A directory on the root file system is already there (the
# container's root is the host's, under a tmpfs overlay); one on another mount gets an overlay of
# its own, with a temporary upper layer that nspawn removes at shutdown.
sys_ct_share() {
        local dir
        dir=$(realpath "$1") || return 1
        [ "$(findmnt -n -o TARGET --target "$dir")" = / ] && return 0
        SYS_NSPAWN_ARGS+=("--overlay=${dir//:/\\:}::${dir//:/\\:}")
}

sys_container_boot() {
        local dir=$1 name=$2 stage=$3 i pid
        shift 3
        mkdir -p "$dir/root"
        sys_cgroup_enter "$name" || return 1
        defer "sys_cgroup_leave '$name'"
        # A non-recursive bind of / (nspawn refuses -D /), and a tmpfs on /run so that nspawn's
        # own runtime files stay in this mount namespace.
        unshare --mount --propagation private sh -c '
                root=$1
                shift
                mount --bind / "$root" && mount -t tmpfs tmpfs /run && exec "$@"' sh "$dir/root" \
                systemd-nspawn -D "$dir/root" --volatile=overlay --machine="$name" \
                        --register=no --keep-unit --link-journal=no --private-network \
                        --capability=CAP_BPF,CAP_PERFMON,CAP_NET_ADMIN \
                        --system-call-filter="bpf perf_event_open" \
                        --tmpfs=/sys/fs/bpf --bind-ro="$stage":/opt/stage \
                        "${SYS_NSPAWN_ARGS[@]}" --console=pipe -b "$@" \
                </dev/null >"$dir/console.log" 2>&1 &
        SYS_NSPAWN_PID=$!
        defer "sys_container_stop"
        # The leader is nspawn's child in a PID namespace of its own (nspawn's short-lived
        # intermediate child is not).
        SYS_CT_LEADER=
        for ((i = 0; i < 100; i++)); do
                for pid in $(ps -o pid= --ppid "$SYS_NSPAWN_PID" 2>/dev/null); do
                        if [ "$(readlink "/proc/$pid/ns/pid" 2>/dev/null)" != "$(readlink /proc/self/ns/pid)" ] &&
                           [ -n "$(readlink "/proc/$pid/ns/pid" 2>/dev/null)" ]; then
                                SYS_CT_LEADER=$pid
                                break
                        fi
                done
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
        kill_wait "$SYS_NSPAWN_PID" 5
        SYS_NSPAWN_PID=
}

# sys_ct_boot_checked DIR NAME STAGE: sys_container_boot with the host services that have no
# business in a test container masked, as one check ("the container boots"); bails out when no
# container came up.
sys_ct_boot_checked() {
        local masks=() u t
        for u in postgresql.service apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer \
                 e2scrub_all.timer e2scrub_reap.service fstrim.timer man-db.timer logrotate.timer \
                 systemd-timesyncd.service systemd-pstore.service getty@tty1.service; do
                masks+=("systemd.mask=$u")
        done
        t=$(sys_now_ms)
        sys_container_boot "$1" "$2" "$3" "${masks[@]}"
        ok $? "the container boots ($(($(sys_now_ms) - t)) ms)" \
                "$(cat "$1/boot-state" 2>/dev/null)" "$(tail -n 30 "$1/console.log")"
        [ -n "$SYS_CT_LEADER" ] || bail "no container"
}
