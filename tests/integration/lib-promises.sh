# SPDX-License-Identifier: MIT
# shellcheck shell=bash
# Variables set here are used by the scripts that source this file: SC2034 does not apply.
# shellcheck disable=SC2034
#
# Helpers of the test-promises-*.sh scripts (what the manual pages promise), on top of lib.sh:
# a stand-in for the journal that records the daemon's structured entries, and the bus signals
# a monitor saw.

# shellcheck source=tests/integration/lib.sh
declare -F done_testing >/dev/null || . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PS_FILTERS_PATH=$PS_PATH/filters
PS_FILTERS=org.packetscope.Guarder1.Filters
PS_FILTER=org.packetscope.Guarder1.Filter

# The message ids of packetscoped(8), LOGGING.
MSG_CONFIG_ERROR=8a1f2d6c4b7e4e0f9a35c2d1e6b70a06
MSG_ATTACHED=8a1f2d6c4b7e4e0f9a35c2d1e6b70a03
MSG_ADOPTED=8a1f2d6c4b7e4e0f9a35c2d1e6b70a05
MSG_LINK_GONE=8a1f2d6c4b7e4e0f9a35c2d1e6b70a08
MSG_ROLLBACK=8a1f2d6c4b7e4e0f9a35c2d1e6b70a0e

# journal_start: a socket that takes journald's place for the daemons started from now on.
# They run in a private mount namespace where /run/systemd/journal is a directory of the
# test's with that socket in it, and log with --log-target=journal; every entry lands in
# $JOURNAL as a JSON object per line. (The wrapper execs, so the PID lib.sh records is the
# daemon's.)
journal_start() {
        local real=$PACKETSCOPED pid
        PS_REAL_DAEMON=$real
        mkdir -p "$T/journal"
        chmod 755 "$T/journal"
        JOURNAL=$T/journal.jsonl
        : >"$JOURNAL"
        "$PYTHON" "$PS_TESTDIR/journal-sink.py" "$T/journal/socket" "$JOURNAL" 600 \
                2>"$T/journal.err" &
        pid=$!
        defer "kill_wait $pid"
        wait_until 10 test -S "$T/journal/socket" || bail "the journal stand-in did not start"
        cat >"$T/journaled-daemon" <<-EOF
		#!/bin/sh
		# the daemon, with /run/systemd/journal replaced by the test's socket
		exec unshare -m --propagation private sh -c '
		        mount -t tmpfs none /run/systemd &&
		        mkdir -p /run/systemd/journal &&
		        mount --bind "\$0" /run/systemd/journal &&
		        exec "\$@" --log-target=journal' "$T/journal" "$real" "\$@"
		EOF
        chmod +x "$T/journaled-daemon"
        PACKETSCOPED=$T/journaled-daemon
}

# journal_count JQ-CONDITION: how many recorded entries satisfy it (e.g.
# '.MESSAGE_ID == "..." and .INTERFACE == "eth0"').
journal_count() {
        jq -s "[.[] | select($1)] | length" "$JOURNAL" 2>/dev/null || echo 0
}

journal_has() {
        [ "$(journal_count "$1")" -ge 1 ]
}

# journal_show JQ-CONDITION: those entries, for a diagnostic.
journal_show() {
        jq -c "select($1) | {MESSAGE_ID, PRIORITY, INTERFACE, MESSAGE}" "$JOURNAL" 2>/dev/null |
                tail -n 10
}

# monitor_on / monitor_off: every message to or from the daemon while it runs, in $T/mon.json.
MON_PID=
defer '[ -z "$MON_PID" ] || kill_wait "$MON_PID"'
monitor_on() {
        rm -f "$T/mon.json" "$T/mon.err"
        timeout 300 busctl --system monitor --json=short "$PS_NAME" >"$T/mon.json" \
                2>"$T/mon.err" &
        MON_PID=$!
        # busctl says it is monitoring on stderr once the bus accepted it as a monitor.
        wait_until 5 grep -q . "$T/mon.err"
        sleep 0.3
}

monitor_off() {
        kill_wait "$MON_PID"
        MON_PID=
}

# signal_count MEMBER [JQ-CONDITION-ON-PAYLOAD]: signals MEMBER the monitor saw so far whose
# payload (.payload.data, an array) satisfies the condition.
signal_count() {
        jq -s --arg m "$1" "[.[] | select(.type == \"signal\" and .member == \$m)
                | .payload.data | select(${2:-true})] | length" "$T/mon.json" 2>/dev/null ||
                echo 0
}

signal_count_ge() {
        [ "$(signal_count "$1" "${3:-true}")" -ge "$2" ]
}
