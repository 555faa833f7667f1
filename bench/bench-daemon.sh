#!/bin/bash
# SPDX-License-Identifier: MIT
# The daemon's side of the benchmark: with 1,000,000 flows in the table, how much memory and
# CPU the idle daemon uses, and how long a top-20 query takes end to end through the client;
# then, with RULES rules, whether a large import blocks the daemon's loop (bench-loop).
# Usage: bench/bench-daemon.sh BUILD_DIR
#        (root; IDLE_SECONDS=60 FLOWS=1000000 QUERIES=20 RULES=100000; 0 skips a part)
set -euo pipefail

build=${1:?usage: $0 BUILD_DIR}
build=$(cd "$build" && pwd)
idle=${IDLE_SECONDS:-60}
flows=${FLOWS:-1000000}
queries=${QUERIES:-20}
rules=${RULES:-100000}
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

flows_part() {
        "$build/bench/fill-flows" "$bpffs/$veth/flows" "$flows" >/dev/null

        ticks=$(getconf CLK_TCK)
        cpu() { awk '{ print $14 + $15 }' "/proc/$daemon_pid/stat"; }
        # Let the first sweep slices and the allocation settle before measuring.
        sleep 2
        c0=$(cpu); t0=$(date +%s%N)
        sleep "$idle"
        c1=$(cpu); t1=$(date +%s%N)
        rss_kb=$(awk '/^VmRSS/ { print $2 }' "/proc/$daemon_pid/status")
        hwm_kb=$(awk '/^VmHWM/ { print $2 }' "/proc/$daemon_pid/status")
        cpu_pct=$(awk -v c=$((c1 - c0)) -v hz="$ticks" -v ns=$((t1 - t0)) \
                'BEGIN { printf "%.3f", 100 * (c / hz) / (ns / 1e9) }')

        # top-20 through the client, QUERIES times: "median max" in microseconds.
        top20() {
                local lat=() s e
                for _ in $(seq "$queries"); do
                        s=$(date +%s%N)
                        "$build/src/packetscopectl" connections --top 20 --json "$@" >/dev/null
                        e=$(date +%s%N)
                        lat+=($(( (e - s) / 1000 )))
                done
                printf '%s\n' "${lat[@]}" | sort -n |
                        awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)], a[NR] }'
}
ms() { awk -v u="$1" 'BEGIN { printf "%.1f", u / 1000 }'; }

# The ranked view answers once an expiry pass has covered the whole table (SweepPeriodSec=,
# 120 s by default on a full table); wait for it, bounded.
ranked_age=
for _ in $(seq 300); do
        ranked_age=$("$build/src/packetscopectl" connections --top 1 --json |
                     python3 -c 'import json,sys; r=json.load(sys.stdin); print(r[0].get("rank_age_usec", "") if r else "")')
        [ -n "$ranked_age" ] && break
        sleep 1
done
read -r whole_median_us whole_max_us < <(top20 --fresh)
read -r median_us max_us < <(top20)
rows=$("$build/src/packetscopectl" connections --top 20 --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
count=$(busctl --system get-property org.packetscope.Guarder1 /org/packetscope/Guarder1/connections \
        org.packetscope.Guarder1.Connections Count | awk '{ print $2 }')
rss_after_kb=$(awk '/^VmRSS/ { print $2 }' "/proc/$daemon_pid/status")

printf 'flows in table            %s (Count property: %s)\n' "$flows" "$count"
printf 'idle CPU over %ss         %s%% of one core   (goal < 1%%)\n' "$idle" "$cpu_pct"
printf 'RSS idle / peak           %s KiB / %s KiB   (goal < 50 MB)\n' "$rss_kb" "$hwm_kb"
printf 'RSS after the queries     %s KiB\n' "$rss_after_kb"
printf 'top-20, whole table (--fresh, %s runs)   median %s ms, max %s ms\n' \
        "$queries" "$(ms "$whole_median_us")" "$(ms "$whole_max_us")"
if [ -n "$ranked_age" ]; then
        printf 'top-20, ranked view (%s runs)          median %s ms, max %s ms, %s rows   (goal < 100 ms)\n' \
                "$queries" "$(ms "$median_us")" "$(ms "$max_us")" "$rows"
        printf 'ranked view age when first seen        %s s\n' \
                "$(awk -v u="$ranked_age" 'BEGIN { printf "%.1f", u / 1e6 }')"
else
        printf 'top-20, ranked view                    not ready within 300 s (no complete sweep pass)\n'
fi
}

[ "$flows" -gt 0 ] && flows_part
if [ "$rules" -gt 0 ]; then
        "$build/bench/bench-loop" "$rules"
        printf 'filters.json               %s bytes\n' "$(stat -c %s "$dir/state/filters.json")"
fi
printf 'load average after         %s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
