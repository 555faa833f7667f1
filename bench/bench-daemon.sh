#!/bin/bash
# SPDX-License-Identifier: MIT
# The daemon's side of the benchmark: with 1,000,000 flows in the table, how much memory and
# CPU the idle daemon uses, and how long a top-20 query takes end to end through the client and
# phase by phase (bench-list); then, with RULES rules, whether a large import blocks the
# daemon's loop (bench-loop). Every figure sampled more than once is given as min/median/max.
# Usage: bench/bench-daemon.sh BUILD_DIR
#        (root; IDLE_SECONDS=60 FLOWS=1000000 QUERIES=20 EXPIRY_SECONDS=30 RULES=100000;
#        0 skips a part: QUERIES=0 EXPIRY_SECONDS=0 RULES=0 leaves the idle figures alone, about
#        70 s instead of 4 min)
set -euo pipefail

build=${1:?usage: $0 BUILD_DIR}
build=$(cd "$build" && pwd)
idle=${IDLE_SECONDS:-60}
flows=${FLOWS:-1000000}
queries=${QUERIES:-20}
rules=${RULES:-100000}
expiry=${EXPIRY_SECONDS:-30}
ns=psb-$$
veth=psb$$
dir=$(mktemp -d)
chmod 755 "$dir"
bpffs=/sys/fs/bpf/packetscope-bench-$$
bus_pid= daemon_pid=

cleanup() {
        set +e
        if [ -n "$daemon_pid" ]; then
                busctl --system call org.packetscope.Guarder1 /org/packetscope/Guarder1 \
                        org.packetscope.Guarder1.Manager DetachLink s "$veth" >/dev/null 2>&1
                kill "$daemon_pid" 2>/dev/null; wait "$daemon_pid" 2>/dev/null
        fi
        [ -n "$bus_pid" ] && kill "$bus_pid" 2>/dev/null && wait "$bus_pid" 2>/dev/null
        rm -rf "$bpffs"
        ip link del "$veth" 2>/dev/null
        ip netns del "$ns" 2>/dev/null
        rm -rf "$dir"
}
trap cleanup EXIT
# shellcheck source=bench/lib-daemon.sh
. "$(dirname "$0")/lib-daemon.sh"

mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf

bench_bus_start

ip netns add "$ns"
ip link add "$veth" type veth peer name "${veth}p" netns "$ns"
ip link set "$veth" up
ip -n "$ns" link set "${veth}p" up

mkdir -p "$dir/conf" "$dir/state"
printf '[Guard]\nFlowTableSize=%s\n[Filters]\nManagementPorts=\n' "$(( flows > 1048576 ? flows : 1048576 ))" > "$dir/conf/packetscope.conf"
bench_daemon_start "$build"
busctl --system call org.packetscope.Guarder1 /org/packetscope/Guarder1 \
        org.packetscope.Guarder1.Manager AttachLink ss "$veth" generic >/dev/null
printf 'load average before        %s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"

# min / median / max of the numbers on stdin, one a line, divided by $1, with $2 decimals.
mmm() {
        sort -n | awk -v d="$1" -v p="$2" '{ a[NR] = $1 / d }
                END { if (NR) printf "min %.*f, median %.*f, max %.*f", p, a[1], p, a[int((NR + 1) / 2)], p, a[NR] }'
}

# The client's wall time, QUERIES rounds; each round runs the four commands in turn, so that
# they share whatever load the machine has. Microseconds one a line into $dir/t-NAME. Timed
# with bash's own clock, so that no other process runs inside an interval, except for "dated",
# timed between two `date` runs as this script did before (the second date's start lies inside
# the interval).
time_client() {
        local ctl=$build/src/packetscopectl s e
        for _ in $(seq "$queries"); do
                s=${EPOCHREALTIME/./}; "$ctl" --version >/dev/null; e=${EPOCHREALTIME/./}
                echo $((e - s)) >> "$dir/t-floor"
                s=${EPOCHREALTIME/./}; "$ctl" connections --top 20 --json >/dev/null; e=${EPOCHREALTIME/./}
                echo $((e - s)) >> "$dir/t-view"
                s=$(date +%s%N); "$ctl" connections --top 20 --json >/dev/null; e=$(date +%s%N)
                echo $(( (e - s) / 1000 )) >> "$dir/t-dated"
                s=${EPOCHREALTIME/./}; "$ctl" connections --top 20 --json --fresh >/dev/null; e=${EPOCHREALTIME/./}
                echo $((e - s)) >> "$dir/t-fresh"
        done
}

flows_part() {
        local fill_s fill_e i c0 c1 c_prev c_now t0 t1 rss ranked_age first_age
        local cpu_sec=() rss_kb=()

        fill_s=${EPOCHREALTIME/./}
        "$build/bench/fill-flows" "$bpffs/$veth/flows" "$flows" >/dev/null
        fill_e=${EPOCHREALTIME/./}
        sched() { read -r c _ < "/proc/$daemon_pid/schedstat"; echo "$c"; }

        # Idle: the daemon's loop thread's CPU time (schedstat, ns) and RSS every second. Each
        # second holds one poll tick, that is one sweep slice: the CPU of the busiest second
        # bounds how long a slice keeps the loop.
        sleep 2
        c0=$(sched); t0=${EPOCHREALTIME/./}; c_prev=$c0
        for ((i = 0; i < idle; i++)); do
                sleep 1
                c_now=$(sched)
                cpu_sec+=($((c_now - c_prev)))
                c_prev=$c_now
                read -r _ rss _ < <(grep '^VmRSS' "/proc/$daemon_pid/status")
                rss_kb+=("$rss")
        done
        c1=$(sched); t1=${EPOCHREALTIME/./}
        hwm_kb=$(awk '/^VmHWM/ { print $2 }' "/proc/$daemon_pid/status")

        # The ranked view answers once a sweep pass has covered the whole table (SweepPeriodSec=,
        # 120 s by default on a full table); wait for it, bounded (QUERIES=0: not at all).
        ranked_age=
        for _ in $(seq "$(( queries > 0 ? 300 : 0 ))"); do
                ranked_age=$("$build/src/packetscopectl" connections --top 1 --json |
                             python3 -c 'import json,sys; r=json.load(sys.stdin); print(r[0].get("rank_age_usec", "") if r else "")')
                [ -n "$ranked_age" ] && break
                sleep 1
        done
        first_age=$(( ${EPOCHREALTIME/./} - fill_e ))

        printf 'flows in table            %s (filled in %.1f s)\n' "$flows" \
                "$(awk -v u=$((fill_e - fill_s)) 'BEGIN { print u / 1e6 }')"
        printf 'idle CPU over %ss          %s%% of one core   (goal < 1%%)\n' "$idle" \
                "$(awk -v c=$((c1 - c0)) -v w=$((t1 - t0)) 'BEGIN { printf "%.3f", 100 * c / (w * 1000) }')"
        printf '  per second (one poll tick, one sweep slice), ms of CPU   %s\n' \
                "$(printf '%s\n' "${cpu_sec[@]}" | mmm 1000000 2)"
        printf 'RSS idle, sampled every second   %s KiB; peak %s KiB   (goal < 50 MB)\n' \
                "$(printf '%s\n' "${rss_kb[@]}" | mmm 1 0)" "$hwm_kb"
        # The ranked view and the queries need a complete sweep pass (up to SweepPeriodSec=).
        [ "$queries" -gt 0 ] || return 0
        if [ -z "$ranked_age" ]; then
                printf 'top-20, ranked view       not ready within 300 s (no complete sweep pass)\n'
                return 0
        fi
        printf 'ranked view first seen    %.1f s after the fill, its pass begun %.1f s before\n' \
                "$(awk -v u="$first_age" 'BEGIN { print u / 1e6 }')" \
                "$(awk -v u="$ranked_age" 'BEGIN { print u / 1e6 }')"

        time_client
        printf 'ms end to end through the client, %s rounds (load average %s):\n' "$queries" \
                "$(cut -d' ' -f1-3 /proc/loadavg)"
        printf '  process start-up floor (packetscopectl --version)     %s\n' "$(mmm 1000 1 < "$dir/t-floor")"
        printf '  top-20, ranked view (connections --top 20 --json)      %s   (goal: median < 100)\n' \
                "$(mmm 1000 1 < "$dir/t-view")"
        printf '  the same, timed between two date runs (the old way)   %s\n' "$(mmm 1000 1 < "$dir/t-dated")"
        printf '  top-20, whole table (--fresh)                          %s\n' "$(mmm 1000 1 < "$dir/t-fresh")"
        printf 'phase by phase, in one process (bench-list):\n'
        "$build/bench/bench-list" "$daemon_pid" "$queries" 20
        "$build/bench/bench-list" "$daemon_pid" 5 20 --fresh
        printf 'rows                      %s\n' "$("$build/src/packetscopectl" connections --top 20 --json |
                python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')"
        printf 'Count property            %s\n' "$(busctl --system get-property org.packetscope.Guarder1 \
                /org/packetscope/Guarder1/connections org.packetscope.Guarder1.Connections Count |
                awk '{ print $2 }')"
        printf 'RSS after the queries     %s KiB\n' "$(awk '/^VmRSS/ { print $2 }' "/proc/$daemon_pid/status")"
}

# Every flow stamped as last seen 400 s ago, past the default IdleTimeoutSec= (300 s): the
# sweep finds each slice expired and deletes what its bound lets it. The loop thread's CPU per
# second over EXPIRY_SECONDS, then the query's phases while the expiry goes on.
expiry_part() {
        local c_prev c_now i cpu_sec=()

        "$build/bench/fill-flows" "$bpffs/$veth/flows" "$flows" 400 >/dev/null
        read -r c_prev _ < "/proc/$daemon_pid/schedstat"
        for ((i = 0; i < expiry; i++)); do
                sleep 1
                read -r c_now _ < "/proc/$daemon_pid/schedstat"
                cpu_sec+=($((c_now - c_prev)))
                c_prev=$c_now
        done
        printf '%s flows expired at once: per second (one poll, one slice), ms of CPU over %s s   %s\n' \
                "$flows" "$expiry" "$(printf '%s\n' "${cpu_sec[@]}" | mmm 1000000 2)"
        printf 'while they expire, phase by phase (bench-list):\n'
        "$build/bench/bench-list" "$daemon_pid" "$queries" 20
}

[ "$flows" -gt 0 ] && flows_part
[ "$flows" -gt 0 ] && [ "$expiry" -gt 0 ] && expiry_part
if [ "$rules" -gt 0 ]; then
        "$build/bench/bench-loop" "$rules"
        printf 'filters.json               %s bytes\n' "$(stat -c %s "$dir/state/filters.json")"
        # The floor under one journaled change: a 200-byte append and fdatasync(2) on the
        # state directory's file system, 21 times in one process.
        python3 - "$dir/state/fdatasync-floor" <<'EOF'
import os, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
t = []
for _ in range(21):
    t0 = time.monotonic()
    os.write(fd, b"x" * 199 + b"\n")
    os.fdatasync(fd)
    t.append((time.monotonic() - t0) * 1000)
os.close(fd)
os.unlink(sys.argv[1])
t.sort()
print("append + fdatasync of 200 B  min/median/max %.2f / %.2f / %.2f ms" % (t[0], t[10], t[-1]))
EOF
fi
printf 'load average after         %s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
