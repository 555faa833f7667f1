#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Acknowledged means durable, with the real daemon on a private bus, a guarded veth and real
# traffic. The state directory lives on a small tmpfs this test mounts, and is made read-only,
# full and removed under the running daemon:
#   - Add, a 100,000-rule Import (replace), AttachLink and DetachLink each answer
#     org.packetscope.Guarder1.Error.StateNotWritable naming the file and the cause; the kernel
#     is unchanged (the refused rule drops nothing, the refused link has no program, the link a
#     refused detach kept still counts), the lists are unchanged, and the journal says it;
#   - once the directory is writable again the next call works;
#   - after a restart the rules and links are exactly the acknowledged ones;
#   - replacement at full size: 100,000 rules replaced by 100,000 others and by themselves
#     (counter slots of removed rules are reused), with the time of each printed.

set -u
# shellcheck source=tests/integration/lib-system.sh
. "$(dirname "$0")/lib-system.sh"
# shellcheck source=tests/integration/lib-filters.sh
. "$(dirname "$0")/lib-filters.sh"

require_root
require ip dbus-daemon busctl jq timeout mount umount
[ -x "$PACKETSCOPED" ] || bail "no daemon at $PACKETSCOPED (set PACKETSCOPED or BUILDDIR)"

FILTERS_PATH=$PS_PATH/filters
FILTERS=org.packetscope.Guarder1.Filters
FILTER=org.packetscope.Guarder1.Filter
NOT_WRITABLE=$PS_ERR.StateNotWritable
P1=40121 # dropped by the rule every check keeps
P2=40122 # the refused rules' port
P3=40123 # the rules that were acknowledged after the directory came back

make_tmpdir T
# The state directory: a directory on a tmpfs of our own, reached through the daemon's usual
# state path (a symlink), so that it can be removed while the daemon runs.
mkdir "$T/fs"
mount -t tmpfs -o size=128m,mode=0755 "ps-test-$$" "$T/fs" || bail "cannot mount a tmpfs"
defer "umount -l '$T/fs'"
STATE_REAL=$T/fs/state
mkdir "$STATE_REAL"
bus_start "$T/bus"
daemon_setup main
STATE=${DAEMON_DIR[main]}/state
LOG=${DAEMON_DIR[main]}/log
rmdir "$STATE" && ln -s "$STATE_REAL" "$STATE"
daemon_start main || bail "the daemon did not start: $(daemon_log main)"
net_create A
net_create B

check "AttachLink $A_IF" attach "$A_IF"

count() {
        busctl --system --timeout=150 get-property "$PS_NAME" "$FILTERS_PATH" "$FILTERS" Count |
                cut -d' ' -f2
}
add_udp_drop() {
        call_error "$FILTERS_PATH" "$FILTERS" Add 'a{sv}' \
                "[{\"rule_type\": [\"s\", \"udp\"], \"dst_port\": [\"q\", $1], \"comment\": [\"s\", \"$2\"]}]"
}
guarded() {
        sys_links | grep -qx "$PS_PATH/link/$1"
}
comments() {
        pscall "$FILTERS_PATH" "$FILTERS" List | jq -c '[.data[0][] | .comment.data] | sort'
}

is "$(add_udp_drop $P1 keep)" OK "Add of a udp/$P1 drop rule on a writable directory"
is "$(udp_arrived $P1)" 0 "udp/$P1 is dropped"

# ---------------------------------------------------------------------------------------------
# Read-only

mount -o remount,ro "$T/fs" || bail "cannot make the tmpfs read-only"
out=$(add_udp_drop $P2 refused-ro)
# One Add appends a record to filters.log (made now: the first Add wrote filters.json whole).
is "$out" "$NOT_WRITABLE: cannot write $STATE/filters.log: Read-only file system; the change was not made" \
   "read-only: Add answers StateNotWritable naming the file and the cause"
is "$(count)" 1 "read-only: Count is still 1"
is "$(udp_arrived $P2)" 3 "read-only: the refused rule is not enforced (udp/$P2 arrives)"
is "$(udp_arrived $P1)" 0 "read-only: the acknowledged rule still is"
like "$(grep -c "Cannot write $STATE/filters.log: Read-only file system" "$LOG")" '^[1-9]' \
     "read-only: the journal says which file and why"
# A Delete and a Disable of the kept rule: the list goes back as it was, rule and place.
KEEP_ID=$(pscall "$FILTERS_PATH" "$FILTERS" List | jq -r '.data[0][0].id.data')
out=$(call_error "$FILTERS_PATH/$KEEP_ID" "$FILTER" Delete '' '[]')
is "$out" "$NOT_WRITABLE: cannot write $STATE/filters.log: Read-only file system; the change was not made" \
   "read-only: Delete answers StateNotWritable"
out=$(call_error "$FILTERS_PATH/$KEEP_ID" "$FILTER" Disable '' '[]')
is "$out" "$NOT_WRITABLE: cannot write $STATE/filters.log: Read-only file system; the change was not made" \
   "read-only: Disable answers StateNotWritable"
is "$(pscall "$FILTERS_PATH" "$FILTERS" List |
      jq -c '[.data[0][] | [.id.data, .comment.data, .enabled.data]]')" "[[$KEEP_ID,\"keep\",true]]" \
   "read-only: after the refused Delete and Disable the list is as it was"
is "$(udp_arrived $P1)" 0 "read-only: and the kept rule still drops udp/$P1"
out=$(call_error "$PS_PATH" "$PS_MANAGER" AttachLink ss "[\"$B_IF\", \"generic\"]")
is "$out" "$NOT_WRITABLE: cannot write $STATE/links.json: Read-only file system; the change was not made" \
   "read-only: AttachLink answers StateNotWritable"
is "$(sys_xdp_prog_id "$B_IF")" "" "read-only: no program is left on $B_IF"
ok "$(guarded "$B_IF" && echo 1 || echo 0)" "read-only: $B_IF is not in Links"
out=$(call_error "$PS_PATH" "$PS_MANAGER" DetachLink s "[\"$A_IF\"]")
like "$out" "^$NOT_WRITABLE: cannot write $STATE/links.json: Read-only file system" \
     "read-only: DetachLink answers StateNotWritable"
ok "$(guarded "$A_IF" && [ -n "$(sys_xdp_prog_id "$A_IF")" ] && echo 0 || echo 1)" \
   "read-only: $A_IF is still guarded, its program attached"
is "$(udp_arrived $P1)" 0 "read-only: and still drops udp/$P1"

mount -o remount,rw "$T/fs" || bail "cannot make the tmpfs writable again"
is "$(add_udp_drop $P3 after-ro)" OK "writable again: the next Add works"
is "$(count)" 2 "writable again: Count is 2"

# ---------------------------------------------------------------------------------------------
# Full

# The set written whole again (its export imported in its place): filters.json holds both rules
# and filters.log is gone, so that the next Add must allocate a block for a new one. (A record
# that fits in the last block of an existing journal is stored, full or not.)
out=$(busctl --system --json=short call "$PS_NAME" "$FILTERS_PATH" "$FILTERS" Export |
        jq -r '.data[0]')
busctl --system call "$PS_NAME" "$FILTERS_PATH" "$FILTERS" Import ss "$out" replace >/dev/null
ok $? "the set of two rules imported in its own place"
ok "$([ ! -e "$STATE/filters.log" ] && [ "$(jq '.filters | length' "$STATE/filters.json")" = 2 ] &&
      echo 0 || echo 1)" "filters.json holds both rules, filters.log is gone" "$(ls -l "$STATE")"
dd if=/dev/zero of="$T/fs/filler" bs=64k 2>/dev/null
out=$(add_udp_drop $P2 refused-full)
is "$out" "$NOT_WRITABLE: cannot write $STATE/filters.log: No space left on device; the change was not made" \
   "full: Add answers StateNotWritable"
is "$(count)" 2 "full: Count is still 2"
is "$(udp_arrived $P2)" 3 "full: the refused rule is not enforced"

# 100,000 rules, one of which would drop udp/P2 from the namespace.
gen_rules() { # PATH SECOND-OCTET PORT: an Import (replace) argument file
        "$PYTHON" - "$A_N4" "$1" "$2" "$3" <<'EOF'
import json, sys
n4, path, octet, port = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
rules = [{"rule_type": "tcp", "src_ip": "100.%d.%d.%d" % (octet + (i >> 16), i >> 8 & 255, i & 255),
          "dst_port": 22 + i % 1000} for i in range(100000)]
rules[50000] = {"rule_type": "udp", "src_ip": n4, "dst_port": port, "comment": "the middle"}
with open(path, "w") as f:
    json.dump([json.dumps(rules, separators=(",", ":")), "replace"], f)
EOF
}
gen_rules "$T/set-a.json" 64 $P2
gen_rules "$T/set-b.json" 96 $P3
import() { # FILE: the Import call through craft.py, {"ms":, "result":}
        timeout 160 "$PYTHON" "$PS_TESTDIR/craft.py" timed-call "$PS_NAME" "$FILTERS_PATH" \
                "$FILTERS" Import ss "@$1"
}
out=$(import "$T/set-a.json")
is "$(jq -r '.result.error' <<<"$out")" "$NOT_WRITABLE" \
   "full: an Import (replace) of 100,000 rules answers StateNotWritable" "$(head -c 600 <<<"$out")"
like "$(jq -r '.result.message' <<<"$out")" "No space left on device" "full: and says why"
alive "after the refused import"
is "$(count)" 2 "full: Count is still 2"
is "$(udp_arrived $P2)" 3 "full: none of the refused 100,000 rules is enforced (udp/$P2 arrives)"
is "$(udp_arrived $P1)" 0 "full: the old set still is (udp/$P1 dropped)"

rm -f "$T/fs/filler"
is "$(add_udp_drop $((P3 + 1)) after-full)" OK "space again: the next Add works"
is "$(count)" 3 "space again: Count is 3"

# ---------------------------------------------------------------------------------------------
# Vanished

mkdir "$T/saved"
mv "$STATE_REAL"/* "$T/saved/"
rmdir "$STATE_REAL"
out=$(add_udp_drop $P2 refused-gone)
is "$out" "$NOT_WRITABLE: cannot write $STATE/filters.json: No such file or directory; the change was not made" \
   "vanished: Add answers StateNotWritable"
out=$(call_error "$PS_PATH" "$PS_MANAGER" AttachLink ss "[\"$B_IF\", \"generic\"]")
like "$out" "^$NOT_WRITABLE: cannot write $STATE/links.json: No such file or directory" \
     "vanished: AttachLink answers StateNotWritable"
is "$(sys_xdp_prog_id "$B_IF")" "" "vanished: no program is left on $B_IF"
is "$(count)" 3 "vanished: Count is still 3"
is "$(udp_arrived $P2)" 3 "vanished: the refused rule is not enforced"
ok "$([ -e "$STATE_REAL" ] && echo 1 || echo 0)" "vanished: the daemon did not make the directory again"
mkdir "$STATE_REAL"
mv "$T/saved"/* "$STATE_REAL/"

# ---------------------------------------------------------------------------------------------
# A restart brings back exactly what was acknowledged.

daemon_stop main
daemon_start main || bail "the daemon did not come back: $(daemon_log main)"
is "$(comments)" '["after-full","after-ro","keep"]' \
   "restarted: the acknowledged rules, none of the refused ones"
is "$(sys_links | tr '\n' ' ')" "$PS_PATH/link/$A_IF " "restarted: $A_IF is guarded, $B_IF is not"
is "$(udp_arrived $P2)" 3 "restarted: udp/$P2 arrives"
is "$(udp_arrived $P1)" 0 "restarted: udp/$P1 is dropped"

# ---------------------------------------------------------------------------------------------
# Replacement at full size: 100,000 by 100,000 others, then by the same JSON again.

# The kernel's part of the last change (compile excluded): Describe's last_apply_usec.
apply_ms() {
        pscall "$PS_PATH" "$PS_MANAGER" Describe |
                jq -r '.data[0] | fromjson | .filters.last_apply_usec / 1000 | floor'
}
hits_of_middle() {
        local id
        id=$(rawcall "$FILTERS_PATH" "$FILTERS" ListRange uu '[50000, 1]' | jq -r '.reply[0].id[1][0]')
        busctl --system get-property "$PS_NAME" "$FILTERS_PATH/$id" org.packetscope.Guarder1.Filter Hits
}
out=$(import "$T/set-a.json")
ok "$(jq -e '.result.reply' <<<"$out" >/dev/null && echo 0 || echo 1)" \
   "Import (replace) of 100,000 rules (set A)" "$(head -c 600 <<<"$out")"
diag "100,000 rules replaced 3 in $(jq -r .ms <<<"$out") ms (kernel load $(apply_ms) ms)"
is "$(udp_arrived $P2)" 0 "set A drops udp/$P2"
out=$(import "$T/set-b.json")
ok "$(jq -e '.result.reply' <<<"$out" >/dev/null && echo 0 || echo 1)" \
   "100,000 rules (set A) replaced by 100,000 others (set B)" "$(head -c 600 <<<"$out")"
diag "100,000 rules replaced 100,000 others in $(jq -r .ms <<<"$out") ms (kernel load $(apply_ms) ms)"
is "$(count)" 100000 "Count is 100000"
is "$(udp_arrived $P2)" 3 "set A is gone (udp/$P2 arrives)"
is "$(udp_arrived $P3)" 0 "set B drops udp/$P3"
is "$(hits_of_middle)" "t 3" "the rule that dropped them counts exactly 3 hits"
out=$(import "$T/set-b.json")
ok "$(jq -e '.result.reply' <<<"$out" >/dev/null && echo 0 || echo 1)" \
   "100,000 rules (set B) replaced by themselves" "$(head -c 600 <<<"$out")"
diag "100,000 rules replaced by the same 100,000 in $(jq -r .ms <<<"$out") ms (kernel load $(apply_ms) ms)"
is "$(count)" 100000 "Count is 100000"
is "$(hits_of_middle)" "t 0" "the new copy of the middle rule starts from 0 hits"
is "$(udp_arrived $P3)" 0 "the same set drops udp/$P3"
is "$(hits_of_middle)" "t 3" "and counts exactly those 3"
alive "at the end"

done_testing
