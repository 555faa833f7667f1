#!/bin/bash
# SPDX-License-Identifier: MIT
# The daemon's side of the ban benchmark, end to end over the bus (bench/ban-client):
#   - BanBatch: BANS IPv4 bans in calls of PER_CALL, from an empty table, in bans per second;
#     first the same calls each refused after it was read whole (ban-client floor): what the bus
#     and the reading of the message cost by themselves;
#   - Ban(): CALLS single calls one after the other with BANS held, round trip min/median/max;
#   - restart: the daemon stopped (SIGTERM: a clean stop folds a journal of 1 MiB or more into
#     the snapshot, and the log says how long that took) and started again with BANS + CALLS
#     bans held, the time its own log gives for the restore, the time until Count answers, and
#     the time of the walk of the pinned exact tables that follows from the daemon's loop;
#   - a journal to replay: BanBatch of JOURNAL bans again (the first of the table, extended),
#     which stay in bans.log, then the daemon killed (SIGKILL, as a crash leaves the journal: a
#     clean stop would fold it in) and started again, and the time its log gives for the restore;
#   - RSS with the table empty, full, and after the restart;
#   - BanFile: the daemon stopped, its state and pins removed, started again, and BANS IPv4 bans
#     made from the empty table through BanFile, PER_CALL ban lines in a sealed memfd a call,
#     in bans per second, beside BanBatch's.
# Every change is fsync'd before it is acknowledged, so the file system of the state directory
# (mktemp -d, $TMPDIR) counts: say which one when quoting the figures.
# Usage: bench/bench-bans-daemon.sh BUILD_DIR   (root; BANS=1000000 PER_CALL=100000 CALLS=200)
set -euo pipefail

build=${1:?usage: $0 BUILD_DIR}
build=$(cd "$build" && pwd)
bans=${BANS:-1000000}
per_call=${PER_CALL:-100000}
calls=${CALLS:-200}
dir=$(mktemp -d)
chmod 755 "$dir"
bpffs=/sys/fs/bpf/packetscope-bench-bans-$$
bus_pid='' daemon_pid=''

cleanup() {
        set +e
        bench_daemon_stop
        [ -n "$bus_pid" ] && kill "$bus_pid" 2>/dev/null && wait "$bus_pid" 2>/dev/null
        [ -n "${KEEP_LOG:-}" ] && cp "$dir/daemon.log" "$KEEP_LOG"
        rm -rf "$bpffs" "$dir"
}
trap cleanup EXIT
# shellcheck source=bench/lib-daemon.sh
. "$(dirname "$0")/lib-daemon.sh"

mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
bench_bus_start
mkdir -p "$dir/conf"
# Room for the batch and the single calls (the default is 1,000,000).
printf '[Bans]\nMaxBansIPv4=%s\n' "$(( bans + calls + 1024 ))" > "$dir/conf/packetscope.conf"
# Debug: the daemon logs how long it took to read and to apply each BanBatch.
bench_daemon_start "$build" --log-level debug

rss() { awk '/^VmRSS/ { print $2 }' "/proc/$daemon_pid/status"; }
# The daemon's CPU time so far (user + system) in ms: on a machine shared with other work the
# wall times above stretch, this does not (the compacting child's time is not in it).
cpu_ms() {
        awk -v hz="$(getconf CLK_TCK)" '{ printf "%d", ($14 + $15) * 1000 / hz }' "/proc/$daemon_pid/stat"
}
count() {
        busctl --system get-property org.packetscope.Guarder1 /org/packetscope/Guarder1/bans \
                org.packetscope.Guarder1.Bans Count | awk '{ print $2 }'
}

# The floor of an acknowledged change on this file system: a record appended and fdatasync'd.
read -r sync_min sync_median sync_max < <("$build/bench/ban-client" fsync "$dir/state" "$calls")
rss_empty=$(rss)
cpu0=$(cpu_ms)
# (A build whose ban-client has no floor mode prints n/a; so does one without BanFile below.)
read -r _ floor_s floor_rate < <("$build/bench/ban-client" floor "$bans" "$per_call" 2>/dev/null ||
                                 echo "- n/a n/a")
floor_cpu=$(( $(cpu_ms) - cpu0 ))
cpu0=$(cpu_ms)
read -r _ batch_s batch_rate < <("$build/bench/ban-client" batch "$bans" "$per_call")
rss_full=$(rss)
batch_cpu=$(( $(cpu_ms) - cpu0 ))
# The daemon's part of the batch: its own time to read the calls and to apply them (kernel,
# table, journal), summed over the calls.
read -r daemon_read_ms daemon_apply_ms < <(sed -n 's/.*BanBatch of [0-9]* bans: read in \([0-9]*\) ms, applied in \([0-9]*\) ms.*/\1 \2/p' \
        "$dir/daemon.log" | awk '{ r += $1; a += $2 } END { print r + 0, a + 0 }')
read -r ban_min ban_median ban_max < <("$build/bench/ban-client" single "$calls")
held=$(count)
journal_kb=$(du -k "$dir/state/bans.log" 2>/dev/null | cut -f1)
snapshot_kb=$(du -k "$dir/state/bans.snapshot" 2>/dev/null | cut -f1)

ts0=$(date +%s%N)
bench_daemon_stop
stop_ms=$(( ($(date +%s%N) - ts0) / 1000000 ))
stop_wrote=$(sed -n 's/.*Wrote \([0-9]*\) ban(s) to .* at the stop in \([0-9]*\) ms, the journal of \([0-9]*\) bytes.*/\1 bans in \2 ms (a journal of \3 bytes folded in)/p' \
             "$dir/daemon.log" | tail -n 1)
reconciles=$(grep -c 'Reconciled .* exact tables' "$dir/daemon.log" || true)
t0=$(date +%s%N)
bench_daemon_start "$build"
# The bus serves the daemon from one loop: Count answers once the restore is done.
held_after=$(count)
t1=$(date +%s%N)
restore_cpu=$(cpu_ms)
restored=$(sed -n 's/.*Restored \([0-9]*\) ban(s) from [^ ]* in \([0-9]*\) ms (\([^:]*\):.*/\1 bans in \2 ms (\3)/p' \
           "$dir/daemon.log" | tail -n 1)
# Then the exact tables are walked from the daemon's loop; the log says when that is done.
for _ in $(seq 1200); do
        [ "$(grep -c 'Reconciled .* exact tables' "$dir/daemon.log")" -gt "$reconciles" ] && break
        sleep 0.1
done
reconciled=$(sed -n 's/.*Reconciled \([0-9]*\) ban(s) with the kernel.s exact tables in \(.*\): \([0-9]*\) put.*/\2, \3 put in the kernel/p' \
             "$dir/daemon.log" | tail -n 1)
rss_after=$(rss)
peak_after=$(awk '/^VmHWM/ { print $2 }' "/proc/$daemon_pid/status")

# A journal of JOURNAL records over the snapshot, replayed by a second restart.
journal=${JOURNAL:-100000}
"$build/bench/ban-client" batch "$journal" "$journal" >/dev/null
journal2_kb=$(du -k "$dir/state/bans.log" 2>/dev/null | cut -f1)
# Killed, not stopped: a clean stop would fold the journal into the snapshot.
kill -KILL "$daemon_pid" 2>/dev/null
wait "$daemon_pid" 2>/dev/null || true
daemon_pid=
t2=$(date +%s%N)
bench_daemon_start "$build"
held_after2=$(count)
t3=$(date +%s%N)
restored2=$(sed -n 's/.*Restored \([0-9]*\) ban(s) from [^ ]* in \([0-9]*\) ms (\([^:]*\):.*/\1 bans in \2 ms (\3)/p' \
            "$dir/daemon.log" | tail -n 1)
restore2_cpu=$(cpu_ms)

# BanFile from an empty table, as BanBatch above: a fresh daemon without state or pins.
bench_daemon_stop
rm -rf "$dir/state" "$bpffs"
bench_daemon_start "$build" --log-level debug
cpu0=$(cpu_ms)
read -r _ file_s file_rate < <("$build/bench/ban-client" file "$bans" "$per_call" 2>/dev/null ||
                               echo "- n/a n/a")
file_cpu=$(( $(cpu_ms) - cpu0 ))
file_held=$(count)
read -r file_read_ms file_apply_ms < <(sed -n 's/.*BanFile of [0-9]* bans ([0-9]* bytes): read in \([0-9]*\) ms, applied in \([0-9]*\) ms.*/\1 \2/p' \
        "$dir/daemon.log" | awk '{ r += $1; a += $2 } END { print r + 0, a + 0 }')

printf 'load average %s; ' "$(cut -d' ' -f1-3 /proc/loadavg)"
printf 'state directory           %s (%s)\n' "$dir/state" "$(stat -f -c %T "$dir/state")"
printf 'append+fdatasync of a record, %s times   min %s ms, median %s ms, max %s ms\n' \
        "$calls" "$sync_min" "$sync_median" "$sync_max"
printf 'BanBatch, %s bans in calls of %s   %s s, %s bans/s   (goal >= 100,000/s)\n' \
        "$bans" "$per_call" "$batch_s" "$batch_rate"
printf '  the floor: the same calls refused once read   %s s, %s bans/s; the daemon'"'"'s CPU time %s ms\n' \
        "$floor_s" "$floor_rate" "$floor_cpu"
printf '  of which the daemon      reading the calls %s ms, applying them %s ms (%s bans/s)\n' \
        "$daemon_read_ms" "$daemon_apply_ms" \
        "$(awk -v n="$bans" -v ms=$((daemon_read_ms + daemon_apply_ms)) 'BEGIN { printf "%.0f", ms ? n * 1000 / ms : 0 }')"
printf '  the daemon'"'"'s CPU time   %s ms (%s bans per CPU second)\n' "$batch_cpu" \
        "$(awk -v n="$bans" -v ms="$batch_cpu" 'BEGIN { printf "%.0f", ms ? n * 1000 / ms : 0 }')"
printf 'Ban() with %s held, %s calls      min %s ms, median %s ms, max %s ms   (goal < 5 ms)\n' \
        "$bans" "$calls" "$ban_min" "$ban_median" "$ban_max"
printf 'held before the restart   %s bans (bans.snapshot %s KiB, bans.log %s KiB)\n' "$held" \
        "${snapshot_kb:-0}" "${journal_kb:-0}"
printf 'restart: the clean stop took %s ms; at the stop it wrote %s\n' "$stop_ms" \
        "${stop_wrote:-nothing (the journal was short)}"
printf 'restart: restored         %s   (goal < 1 s)\n' "$restored"
printf 'restart: start until Count answers   %s ms, Count %s; the daemon'"'"'s CPU time until then %s ms\n' \
        "$(( (t1 - t0) / 1000000 ))" "$held_after" "$restore_cpu"
printf 'restart: then the exact tables reconciled in %s; the daemon'"'"'s CPU time by then %s ms\n' \
        "${reconciled:-?}" "$(cpu_ms)"
printf 'RSS empty / %s bans / after the restart   %s KiB / %s KiB / %s KiB   (goal < 100 MB)\n' \
        "$bans" "$rss_empty" "$rss_full" "$rss_after"
printf 'RSS peak after the restart %s KiB\n' "$peak_after"
printf 'restart with a journal of %s records (bans.log %s KiB): restored %s\n' "$journal" \
        "${journal2_kb:-0}" "$restored2"
printf '  (the daemon killed with SIGKILL before: the journal is replayed, as after a crash)\n'
printf '  start until Count answers %s ms, Count %s; the daemon'"'"'s CPU time until then %s ms\n' \
        "$(( (t3 - t2) / 1000000 ))" "$held_after2" "$restore2_cpu"
printf 'BanFile, %s bans in files of %s lines   %s s, %s bans/s   (BanBatch above: %s bans/s)\n' \
        "$bans" "$per_call" "$file_s" "$file_rate" "$batch_rate"
[ "$file_rate" = n/a ] && exit 0 # a build without BanFile
printf '  of which the daemon      reading the files %s ms, applying them %s ms (%s bans/s); held %s\n' \
        "$file_read_ms" "$file_apply_ms" \
        "$(awk -v n="$bans" -v ms=$((file_read_ms + file_apply_ms)) 'BEGIN { printf "%.0f", ms ? n * 1000 / ms : 0 }')" \
        "$file_held"
printf '  the daemon'"'"'s CPU time   %s ms (%s bans per CPU second)\n' "$file_cpu" \
        "$(awk -v n="$bans" -v ms="$file_cpu" 'BEGIN { printf "%.0f", ms ? n * 1000 / ms : 0 }')"
