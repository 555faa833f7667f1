# SPDX-License-Identifier: MIT
# Helpers of the filter tests (test-filters.sh, test-guarder-acceptance.sh), on top of lib.sh;
# they expect stat_is/stat_of, T, PS_NAME and the daemon named "main" from the test.

dropped_is() {
        stat_is .dropped "$1"
}

# expect_dropped BEFORE N DESCRIPTION: the daemon's dropped counter grew by exactly N.
expect_dropped() {
        wait_until 5 dropped_is $(($1 + $2))
        sleep 0.3 # one more poll: nothing else may follow
        is "$(stat_of .dropped)" $(($1 + $2)) "$3"
        alive "after '$3'"
}

# alive WHERE: a daemon that died takes every later check with it; stop at once and say so.
alive() {
        daemon_alive main && return 0
        ok 1 "the daemon is alive $1" \
           "process $(kill -0 "${DAEMON_PID[main]}" 2>/dev/null && echo alive || echo gone)" \
           "$(grep -v '^#' "${DAEMON_DIR[main]}/log" | tail -n 5)"
        bail "the daemon is gone ($1)"
}

monitor_start() {
        rm -f "$T/mon.json" "$T/mon.err"
        timeout 60 busctl --system monitor --json=short "$PS_NAME" >"$T/mon.json" 2>"$T/mon.err" &
        MON_PID=$!
        wait_until 5 grep -q . "$T/mon.err"
        sleep 0.3
}

monitor_stop() {
        sleep 0.3
        kill_wait "$MON_PID"
        MON_PID=
}
# Evaluated at exit: a monitor still running then is stopped (only while it is ours).
MON_PID=
defer '[ -z "$MON_PID" ] || kill_wait "$MON_PID"'
