#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Every mutating method of org.packetscope.Guarder1 is gated by its polkit action, against a
# private bus with the shipped bus policy, a real polkitd with the shipped actions, and the real
# daemon:
#   - the live introspection of every object (the manager, a link, the connections, the
#     filters, a filter and a pending transaction; plus the shipped XML) is walked and each
#     method is classified as one of the reads listed here or as a mutation with its action;
#     an unclassified method fails the test, and so does a mutation without a call recipe
#     below, so a method added without a polkit entry and a recipe here is caught;
#   - root is allowed and each mutation has its own effect (Confirm keeps the applied rule,
#     also past the deadline; Rollback brings the previous set back); uid 65534 without any
#     rule is refused by polkit and nothing changes; a rule that says no gives AccessDenied; a
#     user that a rule grants exactly manage-links may do what manage-links covers and nothing
#     else (also asked directly with pkcheck);
#   - reads are open to anyone: each answers uid 65534 with a reply of its documented signature;
#   - the lock-out guard (ManagementAddresses=) runs after polkit: a refused caller gets the
#     refusal, never WouldLockOut, and learns no management address or port; Test never
#     reports it;
#   - a polkitd that does not answer: reads keep being served, at most 64 checks wait, the rest
#     are refused at once, the waiting ones fail after the daemon's timeout, callers that hang
#     up are harmless, and no slot leaks (the cap holds exactly again afterwards);
#   - polkitd absent: AuthorizationFailed at once, reads still served, root still allowed;
#   - a check whose object went away meanwhile (a link detached, a filter deleted) still frees
#     its slot.

set -u
# shellcheck source=tests/integration/lib-system.sh
. "$(dirname "$0")/lib-system.sh"

require_root
require dbus-daemon gdbus busctl jq setpriv pkcheck useradd userdel ip /usr/bin/python3
[ -x /usr/lib/polkit-1/polkitd ] || skip_all "polkitd is not installed"
[ -x "$PACKETSCOPED" ] || bail "no daemon at $PACKETSCOPED (set PACKETSCOPED or BUILDDIR)"
[ -f "$SRCDIR/dbus/org.packetscope.Guarder1.conf" ] || bail "the project's bus policy is missing"
SHIPPED_XML=$SRCDIR/dbus/org.packetscope.Guarder1.xml
RULES_IN=$PS_TESTDIR/polkit-rules/50-packetscope-test.rules.in
[ -f "$RULES_IN" ] || bail "the polkit rules of this test are missing: $RULES_IN"

NOBODY=65534
CAP=64          # POLKIT_PENDING_MAX in the daemon
EXTRA=6         # calls beyond the cap in each burst

make_tmpdir T
bus_start "$T/bus"
sys_polkit_start "$T/polkit"
net_create A
IF=$A_IF
# Management addresses and ports for the lock-out guard: values that appear nowhere else in
# this test, so that finding one in an error text means the guard revealed it.
MGMT4=198.51.100.213
MGMT6=2001:db8:5c09::213
MGMT_PORT=6022
# A chat-completions server on loopback for the AI methods (tests/integration/ai-server.py).
mkdir -p "$T/ai"
echo good >"$T/ai/scenario"
/usr/bin/python3 "$PS_TESTDIR/ai-server.py" "$T/ai" 2>"$T/ai/log" &
defer "kill_wait $!"
wait_until 10 test -s "$T/ai/port" || bail "the AI test server did not start: $(cat "$T/ai/log")"
daemon_setup main
printf '[Filters]\nManagementAddresses=%s %s\nManagementPorts=22 %s\n' "$MGMT4" "$MGMT6" \
        "$MGMT_PORT" >>"${DAEMON_DIR[main]}/config/packetscope.conf"
printf '[AI]\nEndpoint=http://127.0.0.1:%s/v1/chat/completions\nTimeoutSec=60s\nMaxQueued=64\nMaxJobs=500\n' \
        "$(cat "$T/ai/port")" >>"${DAEMON_DIR[main]}/config/packetscope.conf"
daemon_start main || bail "the daemon did not start: $(daemon_log main)"
DAEMON_PID_MAIN=${DAEMON_PID[main]}
BPFFS=${DAEMON_BPFFS[main]}
STATE_FILE=${DAEMON_DIR[main]}/state/links.json
PANIC_FILE=${DAEMON_DIR[main]}/state/panic.json
FILTERS_FILE=${DAEMON_DIR[main]}/state/filters.json
DAEMON_LOG=${DAEMON_DIR[main]}/log

# A second unprivileged user, for the rules to name.
GRANTED=psk$$
useradd --system --no-create-home --home-dir / --shell /usr/sbin/nologin --user-group "$GRANTED" ||
        bail "useradd failed"
defer "userdel '$GRANTED'; groupdel '$GRANTED'"
GRANTED_UID=$(id -u "$GRANTED")
GRANTED_GID=$(id -g "$GRANTED")

# ---------------------------------------------------------------------------------------------
# Calling as someone

# ps_call WHO ARGS...: gdbus call to the daemon as WHO (root, nobody or granted); stdout and
# stderr together, the status of gdbus.
ps_call() {
        local who=$1
        shift
        case $who in
        root)
                gdbus call --system --dest "$PS_NAME" --timeout 40 "$@" 2>&1 ;;
        nobody)
                setpriv --reuid=$NOBODY --regid=$NOBODY --clear-groups env HOME=/ \
                        gdbus call --system --dest "$PS_NAME" --timeout 40 "$@" 2>&1 ;;
        granted)
                setpriv --reuid="$GRANTED_UID" --regid="$GRANTED_GID" --clear-groups env HOME=/ \
                        gdbus call --system --dest "$PS_NAME" --timeout 40 "$@" 2>&1 ;;
        esac
}

# The daemon's own answers to an unauthorized caller; dbus-daemon's "Rejected send message"
# (the bus policy refusing the call before polkit is asked) is not one of them.
DENIED_RE='org\.freedesktop\.DBus\.Error\.AccessDenied: polkit denies'
CHALLENGE_RE='org\.freedesktop\.DBus\.Error\.InteractiveAuthorizationRequired: .*needs interactive authentication'

is_polkit_refusal() {
        grep -Eq "$DENIED_RE|$CHALLENGE_RE" <<<"$1"
}

# ---------------------------------------------------------------------------------------------
# State: what a refused call must leave alone.

link_path() {
        echo "$PS_PATH/link/$1"
}

is_guarded() {
        sys_links | grep -qx "$(link_path "$IF")"
}

snapshot() {
        echo "links: $(sys_links | tr '\n' ' ')"
        echo "pins: $(cd "$BPFFS" 2>/dev/null && find . | sort | tr '\n' ' ')"
        echo "xdp: $(sys_xdp_prog_id "$IF")"
        echo "state: $(tr -d ' \n' <"$STATE_FILE" 2>/dev/null)"
        echo "objects: $(busctl --system tree --list "$PS_NAME" | tr '\n' ' ')"
        echo "filters: $(busctl --system call "$PS_NAME" "$PS_FILTERS_PATH" "$PS_FILTERS" Export 2>&1 |
                         tr -d ' \n')"
        echo "ai: $(ai_prop Model) $(ai_jobs_summary | tr '\n' ' ')"
        echo "thresholds: $(health_thresholds)"
        echo "panic: $(panic_prop) $(tr -d ' \n' <"$PANIC_FILE" 2>/dev/null)"
}

panic_prop() {
        busctl --system get-property "$PS_NAME" "$PS_PATH" "$PS_MANAGER" Panic 2>&1
}

health_thresholds() {
        busctl --system get-property "$PS_NAME" "$PS_PATH/health" org.packetscope.Guarder1.Health \
                Thresholds 2>&1
}

ensure_guarded() {
        is_guarded || ps_call root --object-path "$PS_PATH" \
                --method "$PS_MANAGER.AttachLink" "$IF" "" >/dev/null
        is_guarded
}

ensure_unguarded() {
        is_guarded && ps_call root --object-path "$PS_PATH" \
                --method "$PS_MANAGER.DetachLink" "$IF" >/dev/null
        ! is_guarded
}

# ---------------------------------------------------------------------------------------------
# Call recipes for the mutating methods: drv_pre_X establishes what the call needs (as root, in
# this shell: it may set variables), drv_args_X prints the gdbus arguments, drv_effect_X checks
# what a successful call did.

drv_pre_Manager.AttachLink() { ensure_unguarded; }
drv_args_Manager.AttachLink() {
        printf '%s\n' --object-path "$PS_PATH" --method "$PS_MANAGER.AttachLink" "$IF" ""
}
drv_effect_Manager.AttachLink() {
        is_guarded && [ -e "$BPFFS/$IF/link" ] && [ -n "$(sys_xdp_prog_id "$IF")" ]
}

drv_pre_Manager.DetachLink() { ensure_guarded; }
drv_args_Manager.DetachLink() {
        printf '%s\n' --object-path "$PS_PATH" --method "$PS_MANAGER.DetachLink" "$IF"
}
drv_effect_Manager.DetachLink() {
        ! is_guarded && [ ! -e "$BPFFS/$IF" ] && [ -z "$(sys_xdp_prog_id "$IF")" ]
}

# Reload: nothing in the files changes, so its one effect is the log line it writes.
reloads() {
        grep -c "Reloaded the configuration" "${DAEMON_DIR[main]}/log"
}
drv_pre_Manager.Reload() { RELOADS=$(reloads); }
drv_args_Manager.Reload() {
        printf '%s\n' --object-path "$PS_PATH" --method "$PS_MANAGER.Reload"
}
reloaded() {
        [ "$(reloads)" -gt "$RELOADS" ]
}
drv_effect_Manager.Reload() {
        wait_until 5 reloaded
}

# SetPanic: turned on from off; the property and the state file say so.
drv_pre_Manager.SetPanic() {
        ps_call root --object-path "$PS_PATH" --method "$PS_MANAGER.SetPanic" false >/dev/null
        [ "$(panic_prop)" = "b false" ]
}
drv_args_Manager.SetPanic() {
        printf '%s\n' --object-path "$PS_PATH" --method "$PS_MANAGER.SetPanic" true
}
drv_effect_Manager.SetPanic() {
        [ "$(panic_prop)" = "b true" ] && [ "$(jq .panic "$PANIC_FILE")" = true ]
}

# Filters: a rule that counts UDP to the discard port, harmless whoever adds it.
PS_FILTERS_PATH=$PS_PATH/filters
PS_FILTERS=org.packetscope.Guarder1.Filters
PS_FILTER=org.packetscope.Guarder1.Filter
PS_TRANSACTION=org.packetscope.Guarder1.Transaction
RULE="{'rule_type': <'udp'>, 'dst_port': <9>, 'action': <'count'>, 'comment': <'polkit test'>}"
RULE_JSON='{"rule_type": "udp", "dst_port": 9, "action": "count", "comment": "polkit import"}'

object_exists() {
        busctl --system tree --list "$PS_NAME" | grep -qx "$1"
}
filters_count() {
        busctl --system get-property "$PS_NAME" "$PS_FILTERS_PATH" "$PS_FILTERS" Count |
                awk '{print $2}'
}
transaction_path() {
        busctl --system tree --list "$PS_NAME" | grep "^$PS_FILTERS_PATH/transaction/" | head -n1
}
ensure_no_transaction() {
        local t
        t=$(transaction_path)
        [ -z "$t" ] || ps_call root --object-path "$t" --method "$PS_TRANSACTION.Rollback" >/dev/null
        [ -z "$(transaction_path)" ]
}
# A new rule, added by root: FILTER_PATH.
root_add_filter() {
        local out
        ensure_no_transaction
        out=$(ps_call root --object-path "$PS_FILTERS_PATH" --method "$PS_FILTERS.Add" "$RULE") ||
                return 1
        FILTER_PATH=$(sed -n "s/.*objectpath '\([^']*\)'.*/\1/p" <<<"$out")
        [ -n "$FILTER_PATH" ]
}
filter_prop() {
        busctl --system get-property "$PS_NAME" "$FILTER_PATH" "$PS_FILTER" "$1" | cut -d' ' -f2-
}
# A pending Apply of one rule commented APPLY_TAG (new each time), started by root with a
# window of SECONDS (default 120): TRANSACTION_PATH; COUNT0 is the count before it.
apply_n=0
root_apply() {
        ensure_no_transaction
        apply_n=$((apply_n + 1))
        APPLY_TAG="polkit apply $apply_n"
        COUNT0=$(filters_count)
        ps_call root --object-path "$PS_FILTERS_PATH" --method "$PS_FILTERS.Apply" \
                "[{'rule_type': <'udp'>, 'dst_port': <9>, 'action': <'count'>, 'comment': <'$APPLY_TAG'>}]" \
                merge "${1:-120}" >/dev/null
        TRANSACTION_PATH=$(transaction_path)
        [ -n "$TRANSACTION_PATH" ]
}
# How many rules of the live set, or of filters.json, carry the comment TAG.
live_with_comment() {
        busctl --system --json=short call "$PS_NAME" "$PS_FILTERS_PATH" "$PS_FILTERS" List |
                jq --arg c "$1" '[.data[0][] | select(.comment.data == $c)] | length'
}
saved_with_comment() {
        jq --arg c "$1" '[(.filters // .)[] | select(.comment == $c)] | length' "$FILTERS_FILE"
}

drv_pre_Filters.Add() { ensure_no_transaction; COUNT0=$(filters_count); }
drv_args_Filters.Add() {
        printf '%s\n' --object-path "$PS_FILTERS_PATH" --method "$PS_FILTERS.Add" "$RULE"
}
drv_effect_Filters.Add() { [ "$(filters_count)" -eq $((COUNT0 + 1)) ]; }

drv_pre_Filters.AddBatch() { drv_pre_Filters.Add; }
drv_args_Filters.AddBatch() {
        printf '%s\n' --object-path "$PS_FILTERS_PATH" --method "$PS_FILTERS.AddBatch" "[$RULE, $RULE]"
}
drv_effect_Filters.AddBatch() { [ "$(filters_count)" -eq $((COUNT0 + 2)) ]; }

drv_pre_Filters.Import() { drv_pre_Filters.Add; }
drv_args_Filters.Import() {
        printf '%s\n' --object-path "$PS_FILTERS_PATH" --method "$PS_FILTERS.Import" "$RULE_JSON" merge
}
drv_effect_Filters.Import() { drv_effect_Filters.Add; }

# The document on fd 7 of this shell, opened afresh for each call: gdbus passes its own fd 7
# for the handle 7, also when setpriv runs it as another user.
drv_pre_Filters.ImportFd() {
        drv_pre_Filters.Add
        printf '%s\n' "$RULE_JSON" >"$T/import-fd.json"
        exec 7<"$T/import-fd.json"
}
drv_args_Filters.ImportFd() {
        printf '%s\n' --object-path "$PS_FILTERS_PATH" --method "$PS_FILTERS.ImportFd" 7 merge
}
drv_effect_Filters.ImportFd() { drv_effect_Filters.Add; }

drv_pre_Filters.Apply() { drv_pre_Filters.Add; }
drv_args_Filters.Apply() {
        printf '%s\n' --object-path "$PS_FILTERS_PATH" --method "$PS_FILTERS.Apply" "[$RULE]" merge 120
}
drv_effect_Filters.Apply() {
        [ -n "$(transaction_path)" ] && [ "$(filters_count)" -eq $((COUNT0 + 1)) ]
}

drv_pre_Filter.Update() { root_add_filter; }
drv_args_Filter.Update() {
        printf '%s\n' --object-path "$FILTER_PATH" --method "$PS_FILTER.Update" "{'comment': <'updated'>}"
}
drv_effect_Filter.Update() { [ "$(filter_prop Comment)" = '"updated"' ]; }

drv_pre_Filter.Enable() {
        root_add_filter &&
                ps_call root --object-path "$FILTER_PATH" --method "$PS_FILTER.Disable" >/dev/null
}
drv_args_Filter.Enable() {
        printf '%s\n' --object-path "$FILTER_PATH" --method "$PS_FILTER.Enable"
}
drv_effect_Filter.Enable() { [ "$(filter_prop Enabled)" = true ]; }

drv_pre_Filter.Disable() { root_add_filter; }
drv_args_Filter.Disable() {
        printf '%s\n' --object-path "$FILTER_PATH" --method "$PS_FILTER.Disable"
}
drv_effect_Filter.Disable() { [ "$(filter_prop Enabled)" = false ]; }

drv_pre_Filter.Delete() { root_add_filter; }
drv_args_Filter.Delete() {
        printf '%s\n' --object-path "$FILTER_PATH" --method "$PS_FILTER.Delete"
}
drv_effect_Filter.Delete() { ! object_exists "$FILTER_PATH"; }

# Confirm keeps the applied rule and saves it; Rollback removes it at once and saves nothing:
# the two effects exclude each other, so swapped implementations fail both.
drv_pre_Transaction.Confirm() { root_apply; }
drv_args_Transaction.Confirm() {
        printf '%s\n' --object-path "$TRANSACTION_PATH" --method "$PS_TRANSACTION.Confirm"
}
drv_effect_Transaction.Confirm() {
        ! object_exists "$TRANSACTION_PATH" && [ "$(filters_count)" -eq $((COUNT0 + 1)) ] &&
                [ "$(live_with_comment "$APPLY_TAG")" = 1 ] &&
                [ "$(saved_with_comment "$APPLY_TAG")" = 1 ]
}

drv_pre_Transaction.Rollback() { root_apply; }
drv_args_Transaction.Rollback() {
        printf '%s\n' --object-path "$TRANSACTION_PATH" --method "$PS_TRANSACTION.Rollback"
}
drv_effect_Transaction.Rollback() {
        ! object_exists "$TRANSACTION_PATH" && [ "$(filters_count)" -eq "$COUNT0" ] &&
                [ "$(live_with_comment "$APPLY_TAG")" = 0 ] &&
                [ "$(saved_with_comment "$APPLY_TAG")" = 0 ]
}

# AI: jobs against the loopback server. A job in flight is only ever one that hangs on purpose
# (for Cancel), so the job list stays still while a refused call is checked.
PS_AI_PATH=$PS_PATH/ai
PS_AI=org.packetscope.Guarder1.AI
PS_AI_JOB=org.packetscope.Guarder1.AIJob
ai_prop() {
        busctl --system --json=short get-property "$PS_NAME" "$PS_AI_PATH" "$PS_AI" "$1" | jq -c .data
}
job_prop() {
        busctl --system --json=short get-property "$PS_NAME" "$1" "$PS_AI_JOB" "$2" | jq -r .data
}
job_ended() {
        case $(job_prop "$1" State) in done|failed|cancelled) return 0 ;; esac
        return 1
}
# Every job with its state, shadow and transaction, in one call.
ai_jobs_summary() {
        busctl --system --json=short call "$PS_NAME" "$PS_PATH" org.freedesktop.DBus.ObjectManager \
                GetManagedObjects |
                jq -r --arg i "$PS_AI_JOB" '.data[0] | to_entries[] | select(.value[$i]) |
                        "\(.key):\(.value[$i].State.data):\(.value[$i].ShadowState.data):\(.value[$i].Transaction.data)"'
}
# Ends whatever runs, as root.
ai_quiet() {
        local j
        for j in $(ai_jobs_summary | awk -F: '$2 == "queued" || $2 == "running" {print $1}'); do
                ps_call root --object-path "$j" --method "$PS_AI_JOB.Cancel" >/dev/null
        done
}
# A new job of root's that is done (the server answers two accepted rules): NEW_JOB.
root_done_job() {
        local out
        ai_quiet
        echo good >"$T/ai/scenario"
        out=$(ps_call root --object-path "$PS_AI_PATH" --method "$PS_AI.Generate" "{}") || return 1
        NEW_JOB=$(sed -n "s/.*objectpath '\([^']*\)'.*/\1/p" <<<"$out")
        [ -n "$NEW_JOB" ] && wait_until 20 job_ended "$NEW_JOB" &&
                [ "$(job_prop "$NEW_JOB" State)" = done ]
}
shadow_idle() {
        [ "$(job_prop "$SHADOW_JOB" ShadowState)" != running ]
}

ai_n=0
drv_pre_AI.SetConfig() { ai_n=$((ai_n + 1)); AI_MODEL="polkit-model-$ai_n"; }
drv_args_AI.SetConfig() {
        printf '%s\n' --object-path "$PS_AI_PATH" --method "$PS_AI.SetConfig" "{'model': <'$AI_MODEL'>}"
}
drv_effect_AI.SetConfig() { [ "$(ai_prop Model)" = "\"$AI_MODEL\"" ]; }

drv_pre_AI.Generate() { ai_quiet; echo good >"$T/ai/scenario"; JOBS0=$(ai_prop Jobs | jq length); }
drv_args_AI.Generate() {
        printf '%s\n' --object-path "$PS_AI_PATH" --method "$PS_AI.Generate" "{'analyze_type': <'security'>}"
}
drv_effect_AI.Generate() { [ "$(ai_prop Jobs | jq length)" -eq $((JOBS0 + 1)) ]; }

drv_pre_AI.Analyze() { drv_pre_AI.Generate; }
drv_args_AI.Analyze() {
        printf '%s\n' --object-path "$PS_AI_PATH" --method "$PS_AI.Analyze" "{}"
}
drv_effect_AI.Analyze() { drv_effect_AI.Generate; }

# Cancel: a job that hangs (the server never answers).
drv_pre_AIJob.Cancel() {
        local out
        ai_quiet
        echo hang >"$T/ai/scenario"
        out=$(ps_call root --object-path "$PS_AI_PATH" --method "$PS_AI.Generate" "{}")
        HANG_JOB=$(sed -n "s/.*objectpath '\([^']*\)'.*/\1/p" <<<"$out")
        wait_until 10 bash -c "[ \"\$(busctl --system get-property $PS_NAME $HANG_JOB $PS_AI_JOB State)\" = 's \"running\"' ]"
}
drv_args_AIJob.Cancel() {
        printf '%s\n' --object-path "$HANG_JOB" --method "$PS_AI_JOB.Cancel"
}
drv_effect_AIJob.Cancel() { [ "$(job_prop "$HANG_JOB" State)" = cancelled ]; }

drv_pre_AIJob.Shadow() { ai_quiet; ensure_no_transaction; wait_until 20 shadow_idle; }
drv_args_AIJob.Shadow() {
        printf '%s\n' --object-path "$SHADOW_JOB" --method "$PS_AI_JOB.Shadow" 3
}
drv_effect_AIJob.Shadow() { [ "$(job_prop "$SHADOW_JOB" ShadowState)" = running ]; }

# The job's accepted rules (one of the two: the other's source covers MGMT4).
drv_pre_AIJob.Apply() {
        drv_pre_AIJob.Shadow
        COUNT0=$(filters_count)
        ACCEPTED=$(busctl --system --json=short get-property "$PS_NAME" "$SHADOW_JOB" "$PS_AI_JOB" \
                   Filters | jq '[.data[] | select(.verdict.data == "accepted")] | length')
}
drv_args_AIJob.Apply() {
        printf '%s\n' --object-path "$SHADOW_JOB" --method "$PS_AI_JOB.Apply" 120
}
drv_effect_AIJob.Apply() {
        [ -n "$(transaction_path)" ] && [ "$ACCEPTED" -ge 1 ] &&
                [ "$(filters_count)" -eq $((COUNT0 + ACCEPTED)) ]
}

drv_pre_AIJob.Delete() { ensure_no_transaction; root_done_job && DEL_JOB=$NEW_JOB; }
drv_args_AIJob.Delete() {
        printf '%s\n' --object-path "$DEL_JOB" --method "$PS_AI_JOB.Delete"
}
drv_effect_AIJob.Delete() { ! object_exists "$DEL_JOB"; }

# Each call sets a CPU threshold that differs from the one before it.
drv_pre_Health.SetThresholds() {
        HEALTH_CPU=$(( $(busctl --system --json=short get-property "$PS_NAME" "$PS_PATH/health" \
                org.packetscope.Guarder1.Health Thresholds | jq -r '.data.cpu_percent.data | floor') % 90 + 5 ))
}
drv_args_Health.SetThresholds() {
        printf '%s\n' --object-path "$PS_PATH/health" \
                --method org.packetscope.Guarder1.Health.SetThresholds "{'cpu_percent': <$HEALTH_CPU.0>}"
}
drv_effect_Health.SetThresholds() {
        [ "$(busctl --system --json=short get-property "$PS_NAME" "$PS_PATH/health" \
                org.packetscope.Guarder1.Health Thresholds | jq -r '.data.cpu_percent.data')" = "$HEALTH_CPU" ]
}
# Bans: addresses of TEST-NET-1 nobody uses here, one per method, so that a refused call of one
# cannot be mistaken for the effect of another.
PS_BANS_PATH=$PS_PATH/bans
PS_BANS=org.packetscope.Guarder1.Bans
bans_get() {
        busctl --system --json=short call "$PS_NAME" "$PS_BANS_PATH" "$PS_BANS" Get s "$1" |
                jq -r '.data[0].banned.data'
}
root_ban() {
        ps_call root --object-path "$PS_BANS_PATH" --method "$PS_BANS.Ban" "$1" 0 'polkit test' \
                >/dev/null
        [ "$(bans_get "$1")" = true ]
}
root_unban() {
        [ "$(bans_get "$1")" = false ] ||
                ps_call root --object-path "$PS_BANS_PATH" --method "$PS_BANS.Unban" "$1" >/dev/null
        [ "$(bans_get "$1")" = false ]
}
allowlisted() {
        busctl --system --json=short get-property "$PS_NAME" "$PS_BANS_PATH" "$PS_BANS" Allowlist |
                jq -e --arg a "$1" '.data | index($a) != null' >/dev/null
}
scan_threshold() {
        busctl --system --json=short get-property "$PS_NAME" "$PS_BANS_PATH" "$PS_BANS" Policies |
                jq -r '.data["port-scan"].threshold.data'
}

drv_pre_Bans.Ban() { root_unban 192.0.2.51; }
drv_args_Bans.Ban() {
        printf '%s\n' --object-path "$PS_BANS_PATH" --method "$PS_BANS.Ban" 192.0.2.51 0 polkit
}
drv_effect_Bans.Ban() { [ "$(bans_get 192.0.2.51)" = true ]; }

drv_pre_Bans.BanBatch() { root_unban 192.0.2.52; }
drv_args_Bans.BanBatch() {
        printf '%s\n' --object-path "$PS_BANS_PATH" --method "$PS_BANS.BanBatch" \
                "[{'address': <'192.0.2.52'>}]"
}
drv_effect_Bans.BanBatch() { [ "$(bans_get 192.0.2.52)" = true ]; }

# The file on descriptor 7 of this shell, opened afresh for each call (Filters.ImportFd uses
# descriptor 7 too); gdbus passes it on.
drv_pre_Bans.BanFile() {
        root_unban 192.0.2.56
        printf '192.0.2.56 1h polkit test\n' >"$T/banfile.txt"
        exec 7<"$T/banfile.txt"
}
drv_args_Bans.BanFile() {
        printf '%s\n' --object-path "$PS_BANS_PATH" --method "$PS_BANS.BanFile" 7 import
}
drv_effect_Bans.BanFile() { [ "$(bans_get 192.0.2.56)" = true ]; }

drv_pre_Bans.Import() { root_unban 192.0.2.55; }
drv_args_Bans.Import() {
        printf '%s\n' --object-path "$PS_BANS_PATH" --method "$PS_BANS.Import" \
                '{"bans": [{"address": "192.0.2.55"}]}' merge
}
drv_effect_Bans.Import() { [ "$(bans_get 192.0.2.55)" = true ]; }

drv_pre_Bans.Unban() { root_ban 192.0.2.53; }
drv_args_Bans.Unban() {
        printf '%s\n' --object-path "$PS_BANS_PATH" --method "$PS_BANS.Unban" 192.0.2.53
}
drv_effect_Bans.Unban() { [ "$(bans_get 192.0.2.53)" = false ]; }

drv_pre_Bans.UnbanBatch() { root_ban 192.0.2.54; }
drv_args_Bans.UnbanBatch() {
        printf '%s\n' --object-path "$PS_BANS_PATH" --method "$PS_BANS.UnbanBatch" "['192.0.2.54']"
}
drv_effect_Bans.UnbanBatch() { [ "$(bans_get 192.0.2.54)" = false ]; }

drv_pre_Bans.AllowlistAdd() {
        ! allowlisted 192.0.2.56 || ps_call root --object-path "$PS_BANS_PATH" \
                --method "$PS_BANS.AllowlistRemove" 192.0.2.56 >/dev/null
        ! allowlisted 192.0.2.56
}
drv_args_Bans.AllowlistAdd() {
        printf '%s\n' --object-path "$PS_BANS_PATH" --method "$PS_BANS.AllowlistAdd" 192.0.2.56
}
drv_effect_Bans.AllowlistAdd() { allowlisted 192.0.2.56; }

drv_pre_Bans.AllowlistRemove() {
        allowlisted 192.0.2.57 || ps_call root --object-path "$PS_BANS_PATH" \
                --method "$PS_BANS.AllowlistAdd" 192.0.2.57 >/dev/null
        allowlisted 192.0.2.57
}
drv_args_Bans.AllowlistRemove() {
        printf '%s\n' --object-path "$PS_BANS_PATH" --method "$PS_BANS.AllowlistRemove" 192.0.2.57
}
drv_effect_Bans.AllowlistRemove() { ! allowlisted 192.0.2.57; }

drv_pre_Bans.SetPolicy() {
        ps_call root --object-path "$PS_BANS_PATH" --method "$PS_BANS.SetPolicy" port-scan \
                "{'threshold': <uint32 21>}" >/dev/null
        [ "$(scan_threshold)" = 21 ]
}
drv_args_Bans.SetPolicy() {
        printf '%s\n' --object-path "$PS_BANS_PATH" --method "$PS_BANS.SetPolicy" port-scan \
                "{'threshold': <uint32 30>}"
}
drv_effect_Bans.SetPolicy() { [ "$(scan_threshold)" = 30 ]; }

have_driver() {
        declare -F "drv_args_$1" >/dev/null
}

# ---------------------------------------------------------------------------------------------
# Classification. Reads: the explicit list below, the methods the man page says are open to
# every caller. Mutations: the polkit action of each, by short interface name (without
# org.packetscope.Guarder1.) and method. Anything else under org.packetscope.* fails the test
# until it is added here. Besides the members, one "interface NAME PATH" line for every
# interface of the shipped XML, with a live object that has it ("-": none).

classify() {
        /usr/bin/python3 - "$@" <<'EOF'
import subprocess, sys
import xml.etree.ElementTree as ET

bus_name, shipped = sys.argv[1], sys.argv[2]
READS = {"Manager.GetStatistics", "Manager.Describe", "Link.GetStatistics", "Connections.List",
         "Connections.ListIcmp", "Filters.List", "Filters.ListRange", "Filters.ListFd",
         "Filters.Export",
         "Filters.Test", "Health.ListAnomalies", "Bans.List", "Bans.Get", "Bans.Export",
         "Bans.History"}
ACTIONS = {
    "Manager.AttachLink": "manage-links",
    "Manager.DetachLink": "manage-links",
    "Manager.Reload": "configure",
    "Manager.SetPanic": "panic",
    "Filters.Add": "manage-filters",
    "Filters.AddBatch": "manage-filters",
    "Filters.Import": "manage-filters",
    "Filters.ImportFd": "manage-filters",
    "Filters.Apply": "manage-filters",
    "Transaction.Confirm": "manage-filters",
    "Transaction.Rollback": "manage-filters",
    "Filter.Update": "manage-filters",
    "Filter.Enable": "manage-filters",
    "Filter.Disable": "manage-filters",
    "Filter.Delete": "manage-filters",
    "Health.SetThresholds": "configure",
    "Bans.Ban": "manage-bans",
    "Bans.BanBatch": "manage-bans",
    "Bans.BanFile": "manage-bans",
    "Bans.Unban": "manage-bans",
    "Bans.UnbanBatch": "manage-bans",
    "Bans.Import": "manage-bans",
    "Bans.AllowlistAdd": "manage-bans",
    "Bans.AllowlistRemove": "manage-bans",
    "Bans.SetPolicy": "manage-bans",
    "AI.SetConfig": "configure-ai",
    "AI.Generate": "generate",
    "AI.Analyze": "generate",
    "AIJob.Cancel": "generate",
    "AIJob.Delete": "generate",
    "AIJob.Shadow": "manage-filters",
    "AIJob.Apply": "manage-filters",
}
PREFIX = "org.packetscope.Guarder1."

live_ifaces = {}
shipped_ifaces = set()
shipped_out = {}

def methods_of(xml_text, source, found):
    root = ET.fromstring(xml_text)
    for iface in root.iter("interface"):
        name = iface.get("name")
        if not name.startswith("org.packetscope."):
            continue
        if source != "-":
            live_ifaces.setdefault(name, source)
        else:
            shipped_ifaces.add(name)
        for m in iface.findall("method"):
            sig = "".join(a.get("type") for a in m.findall("arg")
                          if a.get("direction", "in") == "in")
            if source == "-":
                # The contract's reply signature, which the reads are checked against.
                shipped_out[(name, m.get("name"))] = "".join(
                    a.get("type") for a in m.findall("arg") if a.get("direction") == "out")
            found.setdefault((name, m.get("name"), "method"), (sig, source))
        for p in iface.findall("property"):
            if p.get("access") in ("write", "readwrite"):
                found.setdefault((name, p.get("name"), "property"), (p.get("type"), source))

found = {}
paths = subprocess.run(["busctl", "--system", "tree", "--list", bus_name], check=True,
                       capture_output=True, text=True).stdout.split()
for path in paths:
    out = subprocess.run(["busctl", "--system", "introspect", "--xml-interface", bus_name, path],
                         capture_output=True, text=True)
    if out.returncode == 0 and out.stdout.strip():
        methods_of(out.stdout, path, found)
with open(shipped) as f:
    methods_of(f.read(), "-", found)

for (iface, member, kind), (sig, source) in sorted(found.items()):
    short = iface[len(PREFIX):] if iface.startswith(PREFIX) else iface
    key = short + "." + member
    if kind == "property":
        cls = "UNCLASSIFIED"  # a writable property would bypass the per-method checks
    elif key in ACTIONS:
        cls = "org.packetscope.guarder1." + ACTIONS[key]
    elif key in READS:
        cls = "READ"
    else:
        cls = "UNCLASSIFIED"
    # The reply's signature as the contract says (the shipped XML), "?" when it has none.
    out = shipped_out.get((iface, member))
    print(kind, iface, key, sig or "-", source, cls, "?" if out is None else (out or "-"))
for name in sorted(shipped_ifaces):
    print("interface", name, live_ifaces.get(name, "-"))
EOF
}

# Every kind of object exists while the introspection is walked: a link, a filter, a pending
# transaction (the Apply adds the filter), a done AI job (SHADOW_JOB, for Shadow and Apply) and
# a ban.
root_done_job || bail "cannot create a done AI job: $(snapshot)"
SHADOW_JOB=$NEW_JOB
ensure_guarded && root_apply && root_ban 192.0.2.50 ||
        bail "cannot create a link, a transaction and a ban: $(snapshot)"
CLASSES=$(classify "$PS_NAME" "$SHIPPED_XML" 2>&1)
cls_status=$?
ensure_no_transaction
[ $cls_status -eq 0 ] || bail "introspection failed: $CLASSES"
diag "classified members:" "$CLASSES"

not_live=$(awk '$1 == "interface" && $3 == "-" {print $2}' <<<"$CLASSES")
[ -z "$not_live" ] && grep -q "^interface $PS_TRANSACTION $PS_FILTERS_PATH/transaction/" <<<"$CLASSES"
ok $? "every interface of the shipped XML was introspected on a live object" \
        "interfaces without a live object:" "$not_live" "$CLASSES"

unclassified=$(awk '$6 == "UNCLASSIFIED"' <<<"$CLASSES")
[ -z "$unclassified" ]
ok $? "every method of org.packetscope.* is a known read or has a polkit action" \
        "unclassified (add them to the table in this test and gate them with polkit):" \
        "$unclassified"

[ "$(awk '$3 == "Manager.AttachLink" && $5 == "/org/packetscope/Guarder1" {print $6}' \
       <<<"$CLASSES")" = org.packetscope.guarder1.manage-links ]
ok $? "the live object lists Manager.AttachLink" "$CLASSES"

# Every action the test expects must exist in the shipped policy.
missing=""
for a in $(awk '$1 == "method" && $6 ~ /^org\.packetscope\.guarder1\./ {print $6}' <<<"$CLASSES" |
           sort -u); do
        grep -q "<action id=\"$a\">" "$SRCDIR/polkit/org.packetscope.guarder1.policy" ||
                missing="$missing $a"
done
[ -z "$missing" ]
ok $? "the shipped polkit policy defines every action the methods use" "missing:$missing"

MUTATIONS=$(awk '$1 == "method" && $6 ~ /^org\.packetscope\.guarder1\./ {print $3, $6, $4, $5}' \
            <<<"$CLASSES")
READS=$(awk '$1 == "method" && $6 == "READ" && $5 != "-" {print $3, $7, $5}' <<<"$CLASSES")

no_recipe=""
while read -r key _; do
        [ -n "$key" ] && ! have_driver "$key" && no_recipe="$no_recipe $key"
done <<<"$MUTATIONS"
[ -z "$no_recipe" ]
ok $? "every mutating method has a call recipe in this test" \
        "without a recipe (add drv_pre_/drv_args_/drv_effect_ functions above):$no_recipe"

# ---------------------------------------------------------------------------------------------
# Reads are open: uid 65534 gets a reply, and of the signature the shipped XML gives (busctl
# prints it first), so that an error, a crash or an unknown method cannot pass for one.

# The arguments of each read, in busctl's syntax.
declare -A READ_ARGS=(
        [Manager.GetStatistics]=""
        [Manager.Describe]=""
        [Link.GetStatistics]=""
        [Connections.List]="a{sv} 1 limit u 10"
        [Connections.ListIcmp]="a{sv} 1 limit u 10"
        [Filters.List]=""
        [Filters.ListRange]="uu 0 10"
        [Filters.ListFd]=""
        [Filters.Export]=""
        [Filters.Test]="a{sv} 3 rule_type s udp dst_port u 9 action s count"
        [Health.ListAnomalies]="a{sv} 1 state s all"
        [Bans.List]="a{sv} 1 limit u 10"
        [Bans.Get]="s 192.0.2.1"
        [Bans.Export]=""
        [Bans.History]="a{sv} 1 limit u 10"
)
# Where no journal runs (this test logs to stderr), History answers that it has none.
declare -A READ_ERROR_OK=(
        [Bans.History]="$PS_ERR.NoJournal"
)

# nobody_busctl PATH INTERFACE METHOD [SIGNATURE ARGS...]: busctl call as uid 65534.
nobody_busctl() {
        setpriv --reuid=$NOBODY --regid=$NOBODY --clear-groups env HOME=/ \
                busctl --system --timeout=40 call "$PS_NAME" "$@" 2>&1
}

while read -r key outsig path; do
        [ -n "$key" ] || continue
        if [ -z "${READ_ARGS[$key]+set}" ]; then
                ok 1 "read $key on $path is open to uid $NOBODY" "no arguments for it in READ_ARGS"
                continue
        fi
        read -ra args <<<"${READ_ARGS[$key]}"
        out=$(nobody_busctl "$path" "org.packetscope.Guarder1.${key%.*}" "${key##*.}" "${args[@]}")
        status=$?
        if [ -n "${READ_ERROR_OK[$key]+set}" ] && [ $status -ne 0 ]; then
                # busctl prints the error text only; ask for the name through rawbus.py.
                out=$(setpriv --reuid=$NOBODY --regid=$NOBODY --clear-groups env HOME=/ \
                        "$PYTHON" "$PS_TESTDIR/rawbus.py" call "$PS_NAME" "$path" \
                        "org.packetscope.Guarder1.${key%.*}" "${key##*.}" 'a{sv}' '[{}]' 2>&1)
                grep -q "\"${READ_ERROR_OK[$key]}\"" <<<"$out"
                ok $? "read $key on $path answers uid $NOBODY with ${READ_ERROR_OK[$key]}" \
                        "$(head -c 600 <<<"$out")"
                continue
        fi
        [ $status -eq 0 ] && [ "${out%% *}" = "$outsig" ]
        ok $? "read $key on $path answers uid $NOBODY with a reply of signature $outsig" \
                "exit status $status" "$(head -c 600 <<<"$out")"
done <<<"$READS"

# default_args SIGNATURE: the simplest gdbus value of each type in it (empty containers), one
# per line; for calling a method that has no recipe.
default_args() {
        local sig=$1
        /usr/bin/python3 - "$sig" <<'EOF'
import sys
sig = sys.argv[1]
if sig == "-":
    sys.exit(0)
out, i = [], 0
while i < len(sig):
    c = sig[i]
    if c == "a":
        # skip the element type
        j, depth = i + 1, 0
        while True:
            if sig[j] in "({":
                depth += 1
            elif sig[j] in ")}":
                depth -= 1
            j += 1
            if depth == 0:
                break
        out.append("@" + sig[i:j] + " []" if sig[i + 1] != "{" else "@" + sig[i:j] + " {}")
        i = j
        continue
    out.append({"s": "''", "o": "@o '/'", "b": "false", "d": "0.0", "y": "@y 0", "n": "@n 0",
                "q": "@q 0", "i": "@i 0", "u": "@u 0", "x": "@x 0", "t": "@t 0",
                "h": "@h 0", "g": "@g ''", "v": "<0>"}.get(c, "''"))
    i += 1
print("\n".join(out))
EOF
}

# ---------------------------------------------------------------------------------------------
# Each mutation: root, then uid 65534 with no rule at all.

while read -r key action sig path; do
        [ -n "$key" ] || continue
        if ! have_driver "$key"; then
                # No recipe (which already failed above): still, an unprivileged call with the
                # simplest arguments must be refused by polkit; anything else fails too.
                mapfile -t args < <(default_args "$sig")
                [ "$path" = "-" ] && path=$PS_PATH
                out=$(ps_call nobody --object-path "$path" \
                        --method "org.packetscope.Guarder1.${key%.*}.${key##*.}" "${args[@]}")
                is_polkit_refusal "$out"
                ok $? "$key refused by polkit to uid $NOBODY (simplest arguments, no call recipe)" \
                        "$out"
                continue
        fi
        "drv_pre_$key"
        mapfile -t args < <("drv_args_$key")
        out=$(ps_call root "${args[@]}")
        status=$?
        [ $status -eq 0 ] && "drv_effect_$key"
        ok $? "$key as root is allowed and takes effect" "$out" "$(snapshot)"

        "drv_pre_$key"
        mapfile -t args < <("drv_args_$key")
        before=$(snapshot)
        out=$(ps_call nobody "${args[@]}")
        status=$?
        after=$(snapshot)
        [ $status -ne 0 ] && is_polkit_refusal "$out"
        ok $? "$key as uid $NOBODY without a rule is refused by polkit ($action)" "$out"
        [ "$before" = "$after" ]
        ok $? "$key refused to uid $NOBODY changed nothing" "before:" "$before" "after:" "$after"
done <<<"$MUTATIONS"

grep -q 'Refused .* polkit did not authorize' "$DAEMON_LOG"
ok $? "the daemon logs the refusals" "$(tail -n 20 "$DAEMON_LOG")"

# A confirmed transaction stays confirmed: its timer does not roll it back at the deadline.
root_apply 2
deadline=$(busctl --system get-property "$PS_NAME" "$TRANSACTION_PATH" "$PS_TRANSACTION" Deadline |
           awk '{print $2}')
out=$(ps_call root --object-path "$TRANSACTION_PATH" --method "$PS_TRANSACTION.Confirm")
# Nothing to wait for but the time itself: the deadline plus 1.5 s.
now=$(($(date +%s%N) / 1000))
[[ "$deadline" =~ ^[0-9]+$ ]] && [ "$deadline" -gt "$now" ] &&
        sleep "$(((deadline - now) / 1000000 + 2))"
[ "$(live_with_comment "$APPLY_TAG")" = 1 ] && [ "$(saved_with_comment "$APPLY_TAG")" = 1 ] &&
        [ "$(filters_count)" -eq $((COUNT0 + 1)) ]
ok $? "a transaction confirmed within its 2 s keeps its rule past the deadline" "$out" \
        "deadline $deadline" "$(snapshot)" "$(tail -n 5 "$DAEMON_LOG")"

# ---------------------------------------------------------------------------------------------
# The lock-out guard answers only callers that polkit authorized. A drop rule for all TCP would
# cut every management address off from every management port.

LOCK_RULE="{'rule_type': <'tcp'>, 'action': <'drop'>, 'comment': <'lock-out probe'>}"
LOCK_JSON='{"rule_type": "tcp", "action": "drop", "comment": "lock-out probe"}'
# What an error text must not reveal to a refused caller.
leaks() {
        grep -F -e WouldLockOut -e "$MGMT4" -e "$MGMT6" -e "$MGMT_PORT" -e "port 22" \
                -e anagement <<<"$1"
}

# lockout_refused DESCRIPTION GDBUS-ARGS...: uid 65534 is refused by polkit, learns nothing of
# the management addresses and ports, and nothing changes.
lockout_refused() {
        local desc=$1 out status before after leaked
        shift
        before=$(snapshot)
        out=$(ps_call nobody "$@")
        status=$?
        after=$(snapshot)
        leaked=$(leaks "$out")
        [ $status -ne 0 ] && is_polkit_refusal "$out" && [ -z "$leaked" ] && [ "$before" = "$after" ]
        ok $? "lock-out: $desc as uid $NOBODY: refused by polkit, the error names no management address or port" \
                "$out" "revealed: $leaked" "before:" "$before" "after:" "$after"
}

ensure_no_transaction
lockout_refused "Add of a rule that would lock out" \
        --object-path "$PS_FILTERS_PATH" --method "$PS_FILTERS.Add" "$LOCK_RULE"
lockout_refused "AddBatch of a rule that would lock out" \
        --object-path "$PS_FILTERS_PATH" --method "$PS_FILTERS.AddBatch" "[$LOCK_RULE]"
lockout_refused "Import of a rule that would lock out" \
        --object-path "$PS_FILTERS_PATH" --method "$PS_FILTERS.Import" "$LOCK_JSON" merge
lockout_refused "Apply of a rule that would lock out" \
        --object-path "$PS_FILTERS_PATH" --method "$PS_FILTERS.Apply" "[$LOCK_RULE]" merge 120

# A disabled drop rule passes the guard; enabling it would not.
out=$(ps_call root --object-path "$PS_FILTERS_PATH" --method "$PS_FILTERS.Add" \
        "{'rule_type': <'tcp'>, 'action': <'drop'>, 'enabled': <false>, 'comment': <'lock-out probe'>}")
LOCK_PATH=$(sed -n "s/.*objectpath '\([^']*\)'.*/\1/p" <<<"$out")
[ -n "$LOCK_PATH" ] || bail "root could not add a disabled drop rule: $out"
lockout_refused "Filter.Enable of a disabled rule that would lock out" \
        --object-path "$LOCK_PATH" --method "$PS_FILTER.Enable"
lockout_refused "Filter.Update enabling a rule that would lock out" \
        --object-path "$LOCK_PATH" --method "$PS_FILTER.Update" "{'enabled': <true>}"

# Test needs no authorization and never applies the guard: a reply, whoever asks.
for who in nobody root; do
        if [ $who = nobody ]; then
                out=$(nobody_busctl "$PS_FILTERS_PATH" "$PS_FILTERS" Test 'a{sv}' 2 rule_type s tcp \
                        action s drop)
        else
                out=$(busctl --system call "$PS_NAME" "$PS_FILTERS_PATH" "$PS_FILTERS" Test 'a{sv}' 2 \
                        rule_type s tcp action s drop 2>&1)
        fi
        status=$?
        [ $status -eq 0 ] && [ "${out%% *}" = 'aa{sv}' ] && [ -z "$(leaks "$out")" ]
        ok $? "lock-out: Test of a rule that would lock out, as $who: a reply, no lock-out hint" "$out"
done

# The guard itself, for root (authorized): it refuses and says why.
like "$(ps_call root --object-path "$PS_FILTERS_PATH" --method "$PS_FILTERS.Add" "$LOCK_RULE")" \
        "WouldLockOut: rule .*would drop new TCP traffic from the management address $MGMT4 to port 22" \
        "lock-out: Add as root is refused with WouldLockOut, naming the address and port"
like "$(ps_call root --object-path "$PS_FILTERS_PATH" --method "$PS_FILTERS.AddBatch" \
        "[$RULE, $LOCK_RULE]")" "WouldLockOut: rule #1 of the batch: .*$MGMT4" \
        "lock-out: AddBatch as root is refused with WouldLockOut, naming the rule of the batch"
like "$(ps_call root --object-path "$PS_FILTERS_PATH" --method "$PS_FILTERS.Import" "$LOCK_JSON" \
        merge)" "WouldLockOut: rule #0 of the import: .*$MGMT4" \
        "lock-out: Import as root is refused with WouldLockOut"
like "$(ps_call root --object-path "$PS_FILTERS_PATH" --method "$PS_FILTERS.Apply" "[$LOCK_RULE]" \
        merge 120)" "WouldLockOut: rule #0 of the batch: .*$MGMT4" \
        "lock-out: Apply as root is refused with WouldLockOut"
[ -z "$(transaction_path)" ]
ok $? "lock-out: the refused Apply left no transaction" "$(snapshot)"
like "$(ps_call root --object-path "$LOCK_PATH" --method "$PS_FILTER.Enable")" \
        "WouldLockOut: .*$MGMT4" "lock-out: Filter.Enable as root is refused with WouldLockOut"
[ "$(busctl --system get-property "$PS_NAME" "$LOCK_PATH" "$PS_FILTER" Enabled)" = "b false" ]
ok $? "lock-out: the refused Enable left the rule disabled"
out=$(ps_call root --object-path "$PS_FILTERS_PATH" --method "$PS_FILTERS.Add" \
        "{'rule_type': <'tcp'>, 'action': <'drop'>, 'force': <true>, 'comment': <'forced'>}")
ok $? "lock-out: Add as root with force is accepted" "$out"
FORCED_PATH=$(sed -n "s/.*objectpath '\([^']*\)'.*/\1/p" <<<"$out")
for p in "$FORCED_PATH" "$LOCK_PATH"; do
        [ -n "$p" ] && ps_call root --object-path "$p" --method "$PS_FILTER.Delete" >/dev/null
done

# ---------------------------------------------------------------------------------------------
# Rules: the granted user may manage links and nothing else of ours; nobody is told no outright.

sys_polkit_rule "$T/polkit" 50-packetscope-test.rules \
        "$(sed "s/@GRANTED_USER@/$GRANTED/g" "$RULES_IN")"

# A process of the granted user for pkcheck to ask about (a unix-process subject).
setpriv --reuid="$GRANTED_UID" --regid="$GRANTED_GID" --clear-groups sleep 120 &
GRANTED_SLEEPER=$!
defer "kill_wait $GRANTED_SLEEPER"
process_subject() {
        local pid=$1
        echo "$pid,$(awk '{print $22}' "/proc/$pid/stat"),$(stat -c %u "/proc/$pid")"
}
pk_allowed() {
        pkcheck --action-id "org.packetscope.guarder1.$1" --process "$(process_subject "$2")" \
                >/dev/null 2>&1
}

# polkitd picks up new rules on its own; wait for it rather than sleeping a fixed time.
wait_until 10 pk_allowed manage-links "$GRANTED_SLEEPER"
ok $? "pkcheck: the rule grants $GRANTED org.packetscope.guarder1.manage-links" \
        "$(cat "$T/polkit/polkitd.log")"
for a in manage-filters manage-bans configure-ai generate configure panic; do
        ! pk_allowed "$a" "$GRANTED_SLEEPER"
        ok $? "pkcheck: the rule does not grant $GRANTED org.packetscope.guarder1.$a"
done

while read -r key action sig path; do
        [ -n "$key" ] || continue
        if ! have_driver "$key"; then
                ok 1 "$key with rules" "no call recipe in this test"
                continue
        fi
        "drv_pre_$key"
        mapfile -t args < <("drv_args_$key")
        before=$(snapshot)
        out=$(ps_call nobody "${args[@]}")
        status=$?
        after=$(snapshot)
        [ $status -ne 0 ] && grep -Eq "$DENIED_RE '$action'" <<<"$out" && [ "$before" = "$after" ]
        ok $? "$key as uid $NOBODY whom a rule refuses: AccessDenied, nothing changed" \
                "$out" "before:" "$before" "after:" "$after"

        "drv_pre_$key"
        mapfile -t args < <("drv_args_$key")
        before=$(snapshot)
        out=$(ps_call granted "${args[@]}")
        status=$?
        if [ "$action" = org.packetscope.guarder1.manage-links ]; then
                [ $status -eq 0 ] && "drv_effect_$key"
                ok $? "$key as $GRANTED (granted manage-links) is allowed and takes effect" \
                        "$out" "$(snapshot)"
        else
                after=$(snapshot)
                [ $status -ne 0 ] && grep -Eq "$DENIED_RE '$action'" <<<"$out" &&
                        [ "$before" = "$after" ]
                ok $? "$key as $GRANTED (granted manage-links only) is refused ($action)" \
                        "$out" "before:" "$before" "after:" "$after"
        fi
done <<<"$MUTATIONS"

# ---------------------------------------------------------------------------------------------
# A polkitd that does not answer (stopped). The guard stays attached throughout: every call
# below is a DetachLink that must not happen.

ensure_guarded
GUARD_PROG=$(sys_xdp_prog_id "$IF")
fd_count() {
        find "/proc/$DAEMON_PID_MAIN/fd" -mindepth 1 | wc -l
}
FDS_BEFORE=$(fd_count)

# burst DIR N: N DetachLink calls as uid 65534, each its own connection, in the background; their
# PIDs in BURST_PIDS, their answers in DIR/<i>.out.
# burst DIR N [ARGS-FUNCTION]: N calls as uid 65534, each its own connection, in the background
# (a DetachLink of the guarded link, or the gdbus arguments ARGS-FUNCTION prints); their PIDs in
# BURST_PIDS, their answers in DIR/<i>.out.
burst_args_detach() {
        printf '%s\n' --object-path "$PS_PATH" --method "$PS_MANAGER.DetachLink" "$IF"
}
burst() {
        local dir=$1 n=$2 i args
        mapfile -t args < <("${3:-burst_args_detach}")
        mkdir -p "$dir"
        BURST_PIDS=()
        for ((i = 0; i < n; i++)); do
                # setpriv and env exec: the PID is gdbus's, so killing it hangs up.
                setpriv --reuid=$NOBODY --regid=$NOBODY --clear-groups env HOME=/ \
                        gdbus call --system --dest "$PS_NAME" --timeout 40 "${args[@]}" \
                        >"$dir/$i.out" 2>&1 &
                BURST_PIDS+=($!)
        done
}
count_matching() {
        grep -l -E "$2" "$1"/*.out 2>/dev/null | wc -l
}
# Kill up to N callers that are still waiting (their answer file is empty): they hang up before
# polkit answers.
hang_up() {
        local dir=$1 n=$2 i killed=0
        for ((i = 0; i < ${#BURST_PIDS[@]} && killed < n; i++)); do
                if [ ! -s "$dir/$i.out" ] && kill -KILL "${BURST_PIDS[$i]}" 2>/dev/null; then
                        echo "killed" >"$dir/$i.out"
                        killed=$((killed + 1))
                fi
        done
        echo "$killed"
}
wait_burst() {
        local p
        for p in "${BURST_PIDS[@]}"; do
                wait "$p" 2>/dev/null
        done
}

# limited_at_least DIR N: N of a burst's calls were refused at once, so the others are waiting.
LIMITED_RE='LimitsExceeded: [0-9]+ authorization checks are already in progress'
limited_at_least() {
        [ "$(count_matching "$1" "$LIMITED_RE")" -ge "$2" ]
}

# bash reports every caller killed below on stderr; that is expected here, so keep it quiet.
exec 4>&2 2>/dev/null
kill -STOP "$SYS_POLKIT_PID"
t0=$(sys_now_ms)
burst "$T/burst1" $((CAP + EXTRA))
wait_until 20 limited_at_least "$T/burst1" $EXTRA
sleep 0.5
limited=$(count_matching "$T/burst1" "$LIMITED_RE")
[ "$limited" -eq $EXTRA ]
ok $? "polkitd stopped: $((CAP + EXTRA)) concurrent calls, exactly $EXTRA refused at once (cap $CAP)" \
        "LimitsExceeded: $limited" "$(sort "$T"/burst1/*.out | uniq -c)"

t1=$(sys_now_ms)
out=$(ps_call nobody --object-path "$PS_PATH" --method "$PS_MANAGER.GetStatistics")
status=$?
t2=$(sys_now_ms)
[ $status -eq 0 ] && [ $((t2 - t1)) -lt 2000 ]
ok $? "reads are served while $CAP checks wait ($((t2 - t1)) ms)" "$out"

killed=$(hang_up "$T/burst1" 20)
[ "$killed" -eq 20 ]
ok $? "20 waiting callers hang up before polkit answers" "hung up: $killed"

# The daemon gives polkit 20 s; the callers wait 40 s.
wait_burst
t3=$(sys_now_ms)
failed=$(count_matching "$T/burst1" 'org\.packetscope\.Guarder1\.Error\.AuthorizationFailed')
[ "$failed" -eq $((CAP - killed)) ] && [ $((t3 - t0)) -ge 19000 ] && [ $((t3 - t0)) -lt 35000 ]
ok $? "the waiting checks end in AuthorizationFailed after the daemon's timeout ($((t3 - t0)) ms)" \
        "AuthorizationFailed: $failed of $((CAP - killed))" "$(sort "$T"/burst1/*.out | uniq -c)"

# The same again, with polkitd still stopped: if any slot of the first burst leaked (the callers
# that hung up included), more than EXTRA calls are refused now.
burst "$T/burst2" $((CAP + EXTRA))
wait_until 20 limited_at_least "$T/burst2" $EXTRA
sleep 0.5
limited=$(count_matching "$T/burst2" "$LIMITED_RE")
[ "$limited" -eq $EXTRA ]
ok $? "no slot leaked: again exactly $EXTRA of $((CAP + EXTRA)) refused at once" \
        "LimitsExceeded: $limited"

killed=$(hang_up "$T/burst2" 20)
kill -CONT "$SYS_POLKIT_PID"
wait_burst
refused=$(count_matching "$T/burst2" "$DENIED_RE")
[ "$refused" -eq $((CAP - killed)) ]
ok $? "polkitd resumed: the $((CAP - killed)) callers still waiting get polkit's answer (AccessDenied)" \
        "AccessDenied: $refused of $((CAP - killed))" "$(sort "$T"/burst2/*.out | uniq -c)"

[ "$(sys_xdp_prog_id "$IF")" = "$GUARD_PROG" ] && is_guarded
ok $? "none of the refused DetachLink calls detached anything" "$(snapshot)"

FDS_AFTER=$(fd_count)
[ "$FDS_AFTER" -le $((FDS_BEFORE + 2)) ]
ok $? "the daemon holds no extra file descriptors ($FDS_BEFORE before, $FDS_AFTER after)" \
        "$(ls -l "/proc/$DAEMON_PID_MAIN/fd")"

# ---------------------------------------------------------------------------------------------
# polkitd absent.

kill_wait "$SYS_POLKIT_PID"
wait_until 5 bash -c "! busctl --system status org.freedesktop.PolicyKit1"
t1=$(sys_now_ms)
out=$(ps_call nobody --object-path "$PS_PATH" --method "$PS_MANAGER.DetachLink" "$IF")
status=$?
t2=$(sys_now_ms)
[ $status -ne 0 ] && grep -q 'org\.packetscope\.Guarder1\.Error\.AuthorizationFailed' <<<"$out" &&
        [ $((t2 - t1)) -lt 3000 ] && is_guarded
ok $? "polkitd absent: AuthorizationFailed in $((t2 - t1)) ms, nothing changed" "$out"

out=$(ps_call nobody --object-path "$PS_PATH" --method "$PS_MANAGER.GetStatistics")
ok $? "polkitd absent: reads are still served" "$out"

out=$(ps_call root --object-path "$PS_PATH" --method "$PS_MANAGER.DetachLink" "$IF")
status=$?
[ $status -eq 0 ] && ! is_guarded
ok $? "polkitd absent: root may still detach (uid 0 needs no polkit)" "$out"

# ---------------------------------------------------------------------------------------------
# A check whose object went away while polkit was answering (root removed it meanwhile) must
# still release its slot, whether the method itself notices (a link detached meanwhile) or the
# object is gone before any method runs (a filter deleted meanwhile). Each case starts from a
# fresh daemon, since leaked slots would stay leaked: the first burst waits on a stopped polkitd,
# root removes the object, polkitd resumes; then, with the object back, a second burst must be
# capped exactly as before.

sys_polkit_start "$T/polkit"

vanish_link() {
        ps_call root --object-path "$PS_PATH" --method "$PS_MANAGER.DetachLink" "$IF" >/dev/null
}
vanish_filter() {
        ps_call root --object-path "$FILTER_PATH" --method "$PS_FILTER.Delete" >/dev/null
}
burst_args_filter() {
        printf '%s\n' --object-path "$FILTER_PATH" --method "$PS_FILTER.Disable"
}

# leak_case NAME DESCRIPTION RESTORE VANISH ARGS-FUNCTION
leak_case() {
        local name=$1 desc=$2 restore=$3 vanish=$4 args_fn=$5 limited answers
        daemon_stop main
        daemon_start main || bail "the daemon did not start again: $(daemon_log main)"
        DAEMON_PID_MAIN=${DAEMON_PID[main]}
        "$restore"
        kill -STOP "$SYS_POLKIT_PID"
        burst "$T/$name-1" $((CAP + EXTRA)) "$args_fn"
        wait_until 20 limited_at_least "$T/$name-1" $EXTRA
        "$vanish"
        kill -CONT "$SYS_POLKIT_PID"
        wait_burst
        answers=$(sort "$T/$name-1"/*.out | uniq -c)
        "$restore"
        kill -STOP "$SYS_POLKIT_PID"
        burst "$T/$name-2" $((CAP + EXTRA)) "$args_fn"
        wait_until 20 limited_at_least "$T/$name-2" $EXTRA
        sleep 0.5
        limited=$(count_matching "$T/$name-2" "$LIMITED_RE")
        kill -CONT "$SYS_POLKIT_PID"
        wait_burst
        [ "$limited" -eq $EXTRA ]
        ok $? "$desc: the checks release their slots" \
                "the next burst was refused at once $limited times of $((CAP + EXTRA)) (expected $EXTRA;" \
                "more means leaked slots: every later unprivileged call gets LimitsExceeded)" \
                "answers while the object went away:" "$answers" \
                "answers to the next burst:" "$(sort "$T/$name-2"/*.out | uniq -c)"
}

leak_case link-gone "a link detached while polkit answered" ensure_guarded vanish_link \
        burst_args_detach
leak_case filter-gone "a filter deleted while polkit answered" root_add_filter vanish_filter \
        burst_args_filter
exec 2>&4 4>&-

kill -0 "$DAEMON_PID_MAIN"
ok $? "the daemon is still running" "$(tail -n 20 "$DAEMON_LOG")"

done_testing
