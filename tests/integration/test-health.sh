#!/bin/bash
# SPDX-License-Identifier: MIT
#
# The health monitor against real load, in bounded bursts:
#   - with pressure triggers (where the kernel offers them): a CPU burner with twice as many
#     workers as CPUs opens a cpu-pressure anomaly within seconds although the sampler runs only
#     every 30 minutes, so the trigger's event did it;
#   - with the sampler alone (PressureTriggers=no, every second): a CPU burner in a service
#     cgroup of its own opens a cpu anomaly naming the burner among the top processes and its
#     unit among the top units, and it closes once SetThresholds raises the threshold over
#     100 %; a memory toucher (3 % of the memory) opens a memory anomaly naming it, which
#     closes by itself when it exits; a file writer opens a disk anomaly naming it; pressure
#     is read from avg10;
#   - AnomalyStarted and AnomalyEnded reach the bus; packetscopectl shows and sets it all;
#     bad thresholds and queries are refused with InvalidArgs.

set -u
. "$(dirname "$0")/lib.sh"

require_root
require dbus-daemon busctl jq timeout
[ -x "$PACKETSCOPED" ] || bail "no daemon at $PACKETSCOPED"

HEALTH_PATH=$PS_PATH/health
HEALTH=org.packetscope.Guarder1.Health
NCPU=$(nproc)

make_tmpdir T
bus_start "$T/bus"

# health_prop NAME: a Health property's value as JSON.
health_prop() {
        busctl --system --json=short get-property "$PS_NAME" "$HEALTH_PATH" "$HEALTH" "$1" |
                jq -c '.data'
}

# anomalies [STATE]: ListAnomalies as plain JSON objects, the consumer lists plain as well.
anomalies() {
        pscall "$HEALTH_PATH" "$HEALTH" ListAnomalies 'a{sv}' 1 state s "${1:-all}" |
                jq -c '[.data[0][] | map_values(.data)
                        | .processes |= map(map_values(.data)) | .units |= map(map_values(.data))]'
}

# anomaly_has KIND JQ-CONDITION: an open anomaly of KIND satisfies the condition.
anomaly_has() {
        anomalies open | jq -e --arg k "$1" "any(.[]; .kind == \$k and ($2))" >/dev/null
}

# health_monitor_start: the Health signals into $T/mon.json from now on (the daemon may not be on
# the bus yet).
MON_PID=
defer '[ -z "$MON_PID" ] || kill_wait "$MON_PID"'
health_monitor_start() {
        [ -z "$MON_PID" ] || kill_wait "$MON_PID"
        rm -f "$T/mon.json" "$T/mon.err"
        timeout 150 busctl --system monitor --json=short \
                --match "type='signal',interface='$HEALTH'" >"$T/mon.json" 2>"$T/mon.err" &
        MON_PID=$!
        wait_until 5 grep -q . "$T/mon.err"
        sleep 0.3
}

# saw_signal MEMBER KIND: the monitor saw the signal MEMBER about an anomaly of KIND.
saw_signal() {
        grep "\"type\":\"signal\"" "$T/mon.json" | grep "\"member\":\"$1\"" | grep -q "\"$2\""
}

# set_health KEY=VALUE...: the [Health] section of the daemon's configuration.
set_health() {
        local conf=${DAEMON_DIR[main]}/config/packetscope.conf
        sed -i '/^\[Health\]/,$d' "$conf"
        printf '[Health]\n' >>"$conf"
        printf '%s\n' "$@" >>"$conf"
}

# Whether this kernel lets this process arm a trigger (PSI present, triggers allowed).
psi_triggers_offered() {
        "$PYTHON" -c '
import os
fd = os.open("/proc/pressure/cpu", os.O_RDWR | os.O_NONBLOCK)
os.write(fd, b"some 200000 2000000\0")' 2>/dev/null
}

# The unified cgroup hierarchy, where a service of our own holds the burner.
CGROOT=
for d in /sys/fs/cgroup /sys/fs/cgroup/unified; do
        [ "$(stat -f -c %T "$d" 2>/dev/null)" = cgroup2fs ] && { CGROOT=$d; break; }
done
UNIT=ps-burn-$$.service
SLICE=ps-health-$$.slice

# burner SECONDS WORKERS: WORKERS processes spinning on a CPU each, in $SLICE/$UNIT when there is
# a cgroup v2 tree (load.py nices itself up, so that it stands out on a busy machine).
# BURNERS lists their PIDs (as a JSON array).
burner() {
        local cg= i pids=()
        if [ -n "$CGROOT" ] && [ ! -d "$CGROOT/$SLICE/$UNIT" ]; then
                mkdir -p "$CGROOT/$SLICE/$UNIT" && defer "rmdir '$CGROOT/$SLICE/$UNIT' '$CGROOT/$SLICE'"
        fi
        [ -n "$CGROOT" ] && cg=$CGROOT/$SLICE/$UNIT
        for ((i = 0; i < $2; i++)); do
                CG=$cg bash -c '[ -z "$CG" ] || echo $$ >"$CG/cgroup.procs"
                        exec "$0" "$1" burn "$2"' "$PYTHON" "$PS_TESTDIR/load.py" "$1" &
                pids+=($!)
                defer "kill_wait $!"
        done
        BURNER_PIDS=("${pids[@]}")
        BURNERS=$(printf '%s\n' "${pids[@]}" | jq -sc .)
}

burner_stop() {
        local p
        for p in "${BURNER_PIDS[@]}"; do
                kill_wait "$p"
        done
}

# ---------------------------------------------------------------------------------------------
# Pressure triggers: an event opens the anomaly, not the sampler.

daemon_setup main
set_health HealthIntervalSec=30min MinimumDurationSec=0 CPUThresholdPercent=100 \
        MemoryThresholdPercent=100 DiskIOThresholdMBps=1000000 PressureThresholdPercent=10
daemon_start main || bail "the daemon did not start: $(daemon_log main)"

if [ ! -e /proc/pressure/cpu ]; then
        is "$(health_prop PressureSource)" '"none"' "no PSI in this kernel: PressureSource none"
        expect_source=none
elif psi_triggers_offered; then
        is "$(health_prop PressureSource)" '"triggers"' \
           "the kernel offers pressure triggers: PressureSource is triggers"
        expect_source=triggers
else
        is "$(health_prop PressureSource)" '"sampler"' \
           "the kernel refuses pressure triggers: PressureSource is sampler"
        expect_source=sampler
fi
diag "pressure path of this kernel: $expect_source"
is "$(health_prop IntervalUSec)" 1800000000 "IntervalUSec is HealthIntervalSec= (30min)"
is "$(health_prop Thresholds | jq -c 'map_values(.data)')" \
   '{"cpu_percent":100,"memory_percent":100,"disk_mbps":1000000,"pressure_percent":10,"min_duration_usec":0}' \
   "Thresholds are those of the [Health] section"

if [ "$expect_source" = triggers ]; then
        # The daemon's first sample only sets the baseline and the next is 30 min away: an
        # anomaly now can only come from a trigger's event. (On a busy machine the pressure may
        # be over 10 % already, and the event comes at once.)
        burner 8 $((2 * NCPU))
        wait_until 15 anomaly_has cpu-pressure '.threshold == 10'
        ok $? "a cpu-pressure anomaly opens within 15 s although the sampler runs every 30 min" \
           "$(daemon_log main 10)"
        burner_stop
fi
daemon_stop main

# ---------------------------------------------------------------------------------------------
# The sampler alone, every second.

set_health PressureTriggers=no HealthIntervalSec=1s MinimumDurationSec=2s CPUThresholdPercent=50 \
        MemoryThresholdPercent=100 DiskIOThresholdMBps=1000000 PressureThresholdPercent=10
health_monitor_start
daemon_start main || bail "the daemon did not start again: $(daemon_log main)"
if [ -e /proc/pressure/cpu ]; then
        is "$(health_prop PressureSource)" '"sampler"' "PressureTriggers=no: PressureSource is sampler"
        like "$(health_prop Pressure)" '"cpu.some.avg10":\{"type":"d"' "Pressure has cpu.some.avg10"
fi
# The figures change at most once per interval (1 s here): over 4 s, 2 to 5 PropertiesChanged.
timeout 4 busctl --system monitor --json=short \
        --match "type='signal',interface='org.freedesktop.DBus.Properties',path='$HEALTH_PATH'" \
        >"$T/props.json" 2>/dev/null
n=$(grep -c '"member":"PropertiesChanged"' "$T/props.json")
[ "$n" -ge 2 ] && [ "$n" -le 5 ]
ok $? "PropertiesChanged of Health: $n in 4 s at a 1 s interval" "$(head -c 600 "$T/props.json")"
mem=$(health_prop MemoryPercent)
awk -v m="$mem" 'BEGIN { exit !(m > 0 && m < 100) }'
ok $? "MemoryPercent is a share: $mem"

# Processes are read only while a reading is over its threshold or an anomaly is open: with
# every threshold out of reach, three samples open no /proc/PID/stat; with the memory
# threshold at 1 % they do (the figures' /proc/stat is read either way, so the trace saw the
# sampler at work).
# proc_opens SECONDS: the daemon's opens of /proc/stat and of /proc/PID/stat, as "N M".
proc_opens() {
        timeout "$1" strace -f -qq -e trace=openat -o "$T/opens" -p "${DAEMON_PID[main]}" \
                2>/dev/null
        printf '%s %s' "$(grep -c '"/proc/stat"' "$T/opens")" \
                "$(grep -cE '"/proc/[0-9]+/stat"' "$T/opens")"
}
no_open_anomaly() { [ "$(anomalies open | jq length)" = 0 ]; }
no_open_memory_anomaly() { ! anomaly_has memory true; }
if command -v strace >/dev/null; then
        "$PACKETSCOPECTL" health set cpu_percent=100 memory_percent=100 disk_mbps=1000000 \
                pressure_percent=99 >/dev/null 2>&1
        wait_until 10 no_open_anomaly
        ok $? "every threshold out of reach: no anomaly open" "$(anomalies open)"
        read -r figures procs <<<"$(proc_opens 3.5)"
        ge "$figures" 2 "the sampler read /proc/stat $figures times in 3.5 s"
        is "$procs" 0 "… and no /proc/PID/stat, with nothing over its threshold"
        "$PACKETSCOPECTL" health set memory_percent=1 >/dev/null 2>&1
        sleep 1.5
        read -r figures procs <<<"$(proc_opens 2.5)"
        ge "$procs" 1 "with memory over its 1 % threshold, it reads the processes ($procs stat files)"
        "$PACKETSCOPECTL" health set cpu_percent=50 memory_percent=100 pressure_percent=10 \
                >/dev/null 2>&1
        wait_until 10 no_open_memory_anomaly
        ok $? "thresholds back: the memory anomaly closed" "$(anomalies open)"
else
        skip "processes read only while a reading is over its threshold" "no strace"
fi

# CPU: the burner and its unit among the top consumers.
burner 10 "$NCPU"
wait_until 15 anomaly_has cpu ".threshold == 50 and any(.processes[]; .pid as \$p | $BURNERS | any(. == \$p))"
ok $? "a cpu anomaly opens with a burner ($BURNERS) among its top processes" "$(anomalies open)"
if [ -n "$CGROOT" ]; then
        wait_until 10 anomaly_has cpu "any(.units[]; .unit == \"$UNIT\")"
        ok $? "… and its unit $UNIT among the top units" "$(anomalies open | jq -c '.[].units')"
fi
out=$("$PACKETSCOPECTL" health 2>&1)
like "$out" '^ *[0-9]+ +cpu +.* open ' "packetscopectl health lists the open cpu anomaly"
like "$out" 'CPU: +[0-9.]+ % \(threshold 50 %\)' "packetscopectl health shows CPU and its threshold"
burner_stop
out=$("$PACKETSCOPECTL" health set cpu_percent=100 2>&1)
ok $? "packetscopectl health set cpu_percent=100" "$out"
is "$(health_prop Thresholds | jq -c '.cpu_percent.data')" 100 "Thresholds says cpu_percent 100"
wait_until 15 saw_signal AnomalyEnded cpu
ok $? "AnomalyEnded cpu once nothing can be over 100 % for 2 s" "$(anomalies all)"
jq_ok "ListAnomalies state=closed has it, with its end after its start" \
      'any(.[]; .kind == "cpu" and .ended > .started and (.open | not))' "$(anomalies closed)"
check "AnomalyStarted cpu was seen too" saw_signal AnomalyStarted cpu
# This daemon logs to stderr: the reply says the journal could not be read, instead of failing.
hist=$(pscall "$HEALTH_PATH" "$HEALTH" ListAnomalies 'a{sv}' 1 state s closed)
is "$(jq -r '.data[1].journal.data' <<<"$hist")" unavailable \
   "ListAnomalies' second value: journal unavailable (the daemon logs to stderr)"
like "$(jq -r '.data[1].reason.data' <<<"$hist")" 'logs to stderr' "... and its reason says so"
is "$(jq -r '[.data[0][].source.data] | unique | join(",")' <<<"$hist")" daemon \
   "every anomaly of that reply is one the daemon holds (source daemon)"
out=$("$PACKETSCOPECTL" health history 2>&1 >/dev/null)
like "$out" '^Only the anomalies the daemon holds: .*logs to stderr' \
     "packetscopectl health history says on stderr that the journal was not read"
kill_wait "$MON_PID"
MON_PID=

# Memory: a toucher of 3 % of the memory; once it holds it all, the threshold goes 70 % of the
# way from the level before to the level now, so that the toucher alone is what crosses it,
# and the anomaly can close although other processes on a shared machine may grow meanwhile.
mem_kb=$(awk '/^MemTotal:/ { print $2 }' /proc/meminfo)
base=$(health_prop MemoryPercent)
health_monitor_start
"$PYTHON" "$PS_TESTDIR/load.py" touch $((mem_kb * 3 / 100 * 1024)) 8 "$T/touched" &
TOUCHER=$!
defer "kill_wait $TOUCHER"
wait_until 90 test -e "$T/touched"
ok $? "the toucher holds $((mem_kb * 3 / 100 / 1024)) MiB"
sleep 1.5 # a sample after it
now=$(health_prop MemoryPercent)
threshold=$(awk -v b="$base" -v n="$now" 'BEGIN { printf "%.2f", b + 0.7 * (n - b) }')
diag "memory: $base % before, $now % with the toucher, threshold $threshold %"
out=$("$PACKETSCOPECTL" health set memory_percent="$threshold" 2>&1)
ok $? "packetscopectl health set memory_percent=$threshold" "$out"
wait_until 10 anomaly_has memory "any(.processes[]; .pid == $TOUCHER)"
ok $? "a memory anomaly opens with the toucher (pid $TOUCHER) among its top processes" \
   "$(anomalies open)"
kill_wait "$TOUCHER"
wait_until 20 saw_signal AnomalyEnded memory
ok $? "AnomalyEnded memory: it ends by itself once the toucher is gone" "$(anomalies all)"
check "AnomalyStarted memory was seen too" saw_signal AnomalyStarted memory
kill_wait "$MON_PID"
MON_PID=
jq_ok "the closed memory anomaly still names the toucher" \
      "any(.[]; .kind == \"memory\" and any(.processes[]; .pid == $TOUCHER))" "$(anomalies closed)"

# Disk: a writer syncing 4 MiB at a time at about 60 MB/s for 8 s; the threshold 20 MB/s.
"$PACKETSCOPECTL" health set disk_mbps=20 memory_percent=100 >/dev/null 2>&1
"$PYTHON" "$PS_TESTDIR/load.py" write "$T/disk-writer" 60 8 &
WRITER=$!
defer "kill_wait $WRITER"
wait_until 20 anomaly_has disk "any(.processes[]; .pid == $WRITER and .write_bytes_per_sec > 0)"
ok $? "a disk anomaly opens with the writer (pid $WRITER) among its top processes" \
   "$(anomalies open)"
kill_wait "$WRITER"

# The history, and refusals.
out=$("$PACKETSCOPECTL" health set load=5 2>&1)
is "$?" 2 "packetscopectl health set load=5 is a usage error (status 2)"
like "$out" "unknown threshold 'load'" "… which names the key" 
out=$("$PACKETSCOPECTL" health history 2>&1)
like "$out" '^ *[0-9]+ +memory +[^ ]+( ago)? +[^o ]' \
     "packetscopectl health history lists the closed memory anomaly"
is "$(call_error "$HEALTH_PATH" "$HEALTH" SetThresholds 'a{sv}' '[{"cpu_percent": ["d", 0.5]}]')" \
   "$INVALID_ARGS: 'cpu_percent' 0.5 is out of range; accepted: 1 to 100" \
   "SetThresholds refuses cpu_percent 0.5"
is "$(call_error "$HEALTH_PATH" "$HEALTH" SetThresholds 'a{sv}' '[{"load": ["d", 5]}]' | cut -d';' -f1)" \
   "$INVALID_ARGS: unknown threshold 'load'" "SetThresholds refuses an unknown key"
is "$(call_error "$HEALTH_PATH" "$HEALTH" ListAnomalies 'a{sv}' '[{"state": ["s", "maybe"]}]')" \
   "$INVALID_ARGS: invalid state 'maybe'; accepted: all, open, closed" \
   "ListAnomalies refuses state 'maybe'"
check "the daemon is alive" daemon_alive main
done_testing
