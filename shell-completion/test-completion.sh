#!/bin/bash
# SPDX-License-Identifier: MIT
# The bash completion, run the way bash runs it: bash-completion's own _init_completion, words
# as a user types them, and the candidates compared with the exact expected lists. The rule ids
# and guarded links come from the daemon on the bus; without one, those complete to nothing
# (asserted too). TAP output.
set -u
SRCDIR=${SRCDIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
BC=/usr/share/bash-completion/bash_completion
n=0
failed=0
if [ ! -r "$BC" ]; then
        echo "1..1"
        echo "not ok 1 - bash-completion is installed ($BC is missing)"
        exit 1
fi
# shellcheck source=/dev/null
. "$BC"
# shellcheck source=shell-completion/bash/packetscopectl
. "$SRCDIR/shell-completion/bash/packetscopectl"
# No daemon: point the system bus at a socket nobody listens on.
export DBUS_SYSTEM_BUS_ADDRESS=unix:path=/nonexistent/packetscope-test-socket

# expect "WANT (sorted, space separated)" WORD...: the candidates for the last word.
expect() {
        local want=$1 got
        shift
        COMP_WORDS=(packetscopectl "$@")
        COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
        # What was typed: bash splits "--json=x" into "--json" "=" "x" without spaces.
        COMP_LINE=$(printf '%s' "${COMP_WORDS[*]}" | sed 's/ = /=/g; s/ =$/=/')
        COMP_POINT=${#COMP_LINE}
        COMPREPLY=()
        _packetscopectl packetscopectl "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
        got=$(printf '%s\n' "${COMPREPLY[@]}" | sed '/^$/d' | sort | tr '\n' ' ' | sed 's/ $//')
        n=$((n + 1))
        if [ "$got" = "$want" ]; then
                echo "ok $n - '${COMP_LINE}' completes to: $want"
        else
                echo "not ok $n - '${COMP_LINE}'"
                echo "#   got:  '$got'"
                echo "#   want: '$want'"
                failed=$((failed + 1))
        fi
}

expect "off on status" panic ""
expect "" panic on ""
expect "ai allowlist attach autoban ban bans connections detach filter health icmp monitor panic stats status unban" ""
expect "history set" health ""
expect "memory_percent= min_duration=" health set m
expect "connections" con
expect "--color --help --json --no-ask-password --no-legend --no-pager --version" --
expect "add apply confirm delete disable enable export import list rollback show test update" filter ""
expect "delete disable" filter d
expect "--mode" attach --m
expect "auto generic native" attach --mode ""
expect "--color --count --help --interval --json --no-ask-password --no-legend --no-pager --top --version" monitor --
expect "bytes first_seen last_seen packets rate" connections --sort ""
expect "established" connections --state est
expect "ipv4 ipv6" icmp --family ""
expect "count drop pass" filter add --action ""
expect "--rule --rule-file --rule-type" filter add --rule
expect "--rule-file" filter test --rule-f
expect "" filter add --rule ""
expect "keep skip" filter import --duplicates ""
expect "always auto never" status --color ""
expect "--color --duplicates --help --json --no-ask-password --no-legend --no-pager --replace --version" filter import --
expect "confirm" filter con
expect "rollback" filter ro
expect "--confirm" filter apply --con
expect "--replace" filter import --rep
expect "analyze apply cancel config delete generate jobs shadow show" ai ""
expect "balanced custom performance security" ai generate --type ""
expect "--key-file" ai config --key
expect "icmp icmpv6" filter add --protocol ic
expect "syn" filter add --tcp-flags sy
# bash splits "--json=" at the "=" (COMP_WORDBREAKS) before the function sees it.
expect "off pretty short" --json = ""
expect "short" --json = sh
expect "--for" ban --f
expect "--color --for --help --json --no-ask-password --no-legend --no-pager --reason --version" ban --
expect "90d 90h 90min 90s" ban --for 90
expect "export get history import list" bans ""
expect "--address --color --help --json --no-ask-password --no-legend --no-pager --offset --origin --top --version" bans --
expect "--replace" bans import --r
expect "auto:connections auto:port-scan auto:syn-rate auto:url" bans --origin auto:
expect "add list remove" allowlist ""
expect "set shadow status" autoban ""
expect "port-scan" autoban set po
expect "burst= mode= threshold= window=" autoban set syn-rate ""
expect "off on" autoban shadow url ""
expect "" unban ""
# Values after a value-taking option are not verbs: "--top 5" then the verb.
expect "connections" --top 5 con 2>/dev/null
# The kernel's interfaces for attach: lo is always there.
expect "lo" attach l
# Nothing from the bus when no daemon answers.
expect "" detach ""
expect "" filter show ""
expect "" connections --link ""

# With the daemon on a private bus: the guarded links and the rule ids it has, nothing else.
if [ -n "${PACKETSCOPED:-}" ]; then
        # shellcheck source=tests/integration/lib.sh
        . "$SRCDIR/tests/integration/lib.sh"
        tap_n=$n
        tap_failed=$failed
        require_root
        make_tmpdir T
        bus_start "$T/bus"
        daemon_start main || bail "the daemon did not start: $(daemon_log main)"
        net_create A
        attach "$A_IF" generic
        id1=$(busctl --system call "$PS_NAME" "$PS_PATH/filters" org.packetscope.Guarder1.Filters \
                Add 'a{sv}' 3 rule_type s tcp dst_port q 2323 action s drop | awk '{print $2}')
        id2=$(busctl --system call "$PS_NAME" "$PS_PATH/filters" org.packetscope.Guarder1.Filters \
                Add 'a{sv}' 3 rule_type s udp dst_port q 2324 action s drop | awk '{print $2}')
        busctl --system call "$PS_NAME" "$PS_PATH/bans" org.packetscope.Guarder1.Bans Ban sts \
                192.0.2.7 0 completion >/dev/null
        busctl --system call "$PS_NAME" "$PS_PATH/bans" org.packetscope.Guarder1.Bans Ban sts \
                2001:db8::/64 0 completion >/dev/null
        busctl --system call "$PS_NAME" "$PS_PATH/bans" org.packetscope.Guarder1.Bans \
                AllowlistAdd s 198.51.100.0/24 >/dev/null
        n=$tap_n
        failed=$tap_failed
        expect "192.0.2.7 2001:db8::/64" unban ""
        expect "192.0.2.7" bans get 19
        expect "198.51.100.0/24" allowlist remove ""
        expect "$A_IF" detach ""
        expect "$A_IF" connections --link ""
        expect "$(printf '%s\n' "$id1" "$id2" | sort | tr '\n' ' ' | sed 's/ $//')" filter delete ""
        expect "" filter show "$id1" ""
        tap_n=$n
        tap_failed=$failed
        done_testing
fi
echo "1..$n"
[ "$failed" -eq 0 ]
