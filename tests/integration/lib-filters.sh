# SPDX-License-Identifier: MIT
# Helpers of the filter tests (test-filters.sh, test-guarder-acceptance.sh), on top of lib.sh;
# they expect stat_is/stat_of, T, PS_NAME and the daemon named "main" from the test.

dropped_is() {
        stat_is .dropped "$1"
}

# poll_barrier: returns once the daemon's statistics were read after this call. The statistics
# the daemon serves are those of its last poll; a frame the guard counts as non_ip (nothing
# else in these tests is not IP: neighbours are static) sent now shows only in a poll made
# after it. Waits for the poll itself, however late a loaded machine makes it.
poll_barrier() {
        local n
        n=$(stat_of .non_ip)
        [[ "$n" =~ ^[0-9]+$ ]] || return 1
        timeout 30 ip netns exec "$A_NS" "$PYTHON" "$PS_TESTDIR/craft.py" eth-marker \
                "$A_PEER" "$A_NMAC" "$A_HMAC" || return 1
        wait_until 30 stat_is .non_ip $((n + 1))
}

# expect_dropped BEFORE N DESCRIPTION: the daemon's dropped counter grew by exactly N. Called
# once the traffic is over: after a poll that follows the call, nothing else may have come.
expect_dropped() {
        wait_until 10 dropped_is $(($1 + $2))
        poll_barrier || ok 1 "a poll of the statistics after '$3'" "$(stats_get)"
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

# udp_arrived PORT: of 3 datagrams from the namespace to PORT on this side, how many arrived.
# The listener stops once the sender is done, so a dropped port costs no wait for a timeout.
udp_arrived() {
        local pid
        rm -f "$T/udp.ready" "$T/udp.done"
        timeout 90 "$PYTHON" "$PS_TESTDIR/craft.py" udp-recv "$A_H4" 60 "$T/udp.ready" \
                "$T/udp.done" "$1" >"$T/udp.out" &
        pid=$!
        wait_until 10 test -e "$T/udp.ready" || { kill_wait "$pid"; echo "no listener"; return; }
        timeout 60 ip netns exec "$A_NS" "$PYTHON" "$PS_TESTDIR/craft.py" udp-stream "$A_H4" 3 \
                0.01 "$1"
        touch "$T/udp.done"
        wait "$pid"
        jq -r --arg p "$1" '.[$p]' "$T/udp.out"
}

monitor_start() {
        rm -f "$T/mon.json" "$T/mon.err"
        timeout 60 busctl --system monitor --json=short "$PS_NAME" >"$T/mon.json" 2>"$T/mon.err" &
        MON_PID=$!
        wait_until 5 grep -q . "$T/mon.err"
        sleep 0.3
}

# monitor_stop MEMBER COUNT: stops the monitor once it has seen COUNT signals MEMBER (at most
# 30 s); signals leave the daemon after the call that caused them has returned.
monitor_stop() {
        wait_until 30 monitor_saw "$1" "$2"
        kill_wait "$MON_PID"
        MON_PID=
}

monitor_saw() {
        [ "$(grep -c "\"type\":\"signal\".*\"member\":\"$1\"" "$T/mon.json")" -ge "$2" ]
}
# Evaluated at exit: a monitor still running then is stopped (only while it is ours).
MON_PID=
defer '[ -z "$MON_PID" ] || kill_wait "$MON_PID"'
