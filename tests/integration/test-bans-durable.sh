#!/bin/bash
# SPDX-License-Identifier: MIT
#
# An acknowledged ban is durable, with the real daemon on a private bus. The state directory is
# a small tmpfs of this test, reached through the daemon's state path (a symlink):
#   - with the tmpfs full, Ban and Unban answer StateNotWritable naming the cause, and the
#     kernel's ban map is as it was (bpftool reads the pinned map);
#   - with the state directory removed, Ban answers StateNotWritable; once it is back the next
#     ban writes the whole table again, so that a restart keeps every acknowledged ban;
#   - a journal of the text format (before the binary records) is replayed once, exactly (reason,
#     offenses, origin; a record cut short at its end ignored) and replaced by a snapshot;
#   - a binary journal record cut short (a crash while it was written, never acknowledged) is
#     ignored with a warning at the next start and cut off, the records before it count, and
#     the next ban is recorded after it (it survives another restart); a record changed on
#     disk before the end stops the replay there, the file is kept as bans.log.corrupt and the
#     bans the kernel still holds are taken over;
#   - a BanBatch of 40,000 bans grows the journal past its compaction threshold: the journal is
#     folded into the snapshot (bans.snapshot) in the background and a restart restores every
#     ban;
#   - a journal of more than 1 MiB (20,000 bans extended) is folded into the snapshot by the
#     clean stop that follows, and the start replays no journal;
#   - across that restart (stop, restore of 40,008 bans, start) a banned source pings every
#     20 ms through a guarded veth and not one ping comes back: the pinned maps keep enforcing
#     while the daemon is down and while it restores;
#   - a bans.json written by an older version (and no snapshot) is read once, its bans are
#     restored into the kernel, and it is replaced by bans.snapshot; the bans only the kernel
#     held are taken over once the bus answers, and kept across another restart;
#   - a BanBatch that does not fit the table (MaxBansIPv4=50000) is refused as a whole with
#     BanTableFull: none of its bans is in the kernel, the count is unchanged.

set -u
# shellcheck source=tests/integration/lib-promises.sh
. "$(dirname "$0")/lib-promises.sh"

require_root
require dbus-daemon busctl jq timeout mount umount bpftool ip ping od
[ -x "$PACKETSCOPED" ] || bail "no daemon at $PACKETSCOPED"

PS_BANS_PATH=$PS_PATH/bans
PS_BANS=org.packetscope.Guarder1.Bans
NOT_WRITABLE=$PS_ERR.StateNotWritable
A=198.51.100.1 # banned while the directory is writable, unbanned only at the end
B=198.51.100.2 # refused while the tmpfs is full, banned once there is room
C=198.51.100.3 # refused while the directory is gone, banned once it is back
D=198.51.100.4 # banned after the start that found the cut record

make_tmpdir T
mkdir "$T/fs"
mount -t tmpfs -o size=24m,mode=0755 "ps-test-$$" "$T/fs" || bail "cannot mount a tmpfs"
defer "umount -l '$T/fs'"
STATE_REAL=$T/fs/state
mkdir "$STATE_REAL"
bus_start "$T/bus"
daemon_setup main
printf '[Bans]\nMaxBansIPv4=50000\n' >>"${DAEMON_DIR[main]}/config/packetscope.conf"
STATE=${DAEMON_DIR[main]}/state
LOG=${DAEMON_DIR[main]}/log
rmdir "$STATE" && ln -s "$STATE_REAL" "$STATE"
daemon_start main || bail "the daemon did not start: $(daemon_log main)"
PIN=${DAEMON_BPFFS[main]}/:bans/ban_v4

ban() {
        call_error "$PS_BANS_PATH" "$PS_BANS" Ban sts "[\"$1\", 0, \"durable test\"]"
}
unban() {
        call_error "$PS_BANS_PATH" "$PS_BANS" Unban s "[\"$1\"]"
}
# in_kernel ADDRESS: yes when the pinned IPv4 ban map holds it.
in_kernel() {
        local bytes
        IFS=. read -ra bytes <<<"$1"
        if bpftool map lookup pinned "$PIN" key "${bytes[@]}" >/dev/null 2>&1; then
                echo yes
        else
                echo no
        fi
}
addresses() {
        pscall "$PS_BANS_PATH" "$PS_BANS" List 'a{sv}' 0 |
                jq -c '[.data[0][] | .address.data] | sort'
}
count() {
        busctl --system get-property "$PS_NAME" "$PS_BANS_PATH" "$PS_BANS" Count | cut -d' ' -f2
}

is "$(ban $A)" OK "Ban of $A on a writable directory"
is "$(in_kernel $A)" yes "$A is in the kernel's map"

# ---------------------------------------------------------------------------------------------
# Full

dd if=/dev/zero of="$T/fs/filler" bs=64k 2>/dev/null # until the tmpfs is full
like "$(ban $B)" "^$NOT_WRITABLE: the bans cannot be written to $STATE/bans.snapshot: No space left on device; nothing was banned" \
     "full: Ban answers StateNotWritable naming the cause"
is "$(in_kernel $B)" no "full: the refused ban is not in the kernel"
like "$(unban $A)" "^$NOT_WRITABLE: .*No space left on device; nothing was unbanned" \
     "full: Unban answers StateNotWritable"
is "$(in_kernel $A)" yes "full: the refused unban left $A in the kernel"
is "$(addresses)" "[\"$A\"]" "full: the table holds exactly $A"
rm -f "$T/fs/filler"
is "$(ban $B)" OK "with room again, Ban of $B works"
is "$(in_kernel $B)" yes "$B is in the kernel's map"

# ---------------------------------------------------------------------------------------------
# Removed

rm -rf "$STATE_REAL"
like "$(ban $C)" "^$NOT_WRITABLE: the bans cannot be written to $STATE/bans.snapshot: No such file or directory" \
     "removed: Ban answers StateNotWritable"
is "$(in_kernel $C)" no "removed: the refused ban is not in the kernel"
mkdir "$STATE_REAL"
is "$(ban $C)" OK "with the directory back, Ban of $C works"
[ -s "$STATE_REAL/bans.snapshot" ]
ok $? "and bans.snapshot was written again"
daemon_stop main
daemon_start main || bail "the daemon did not restart: $(daemon_log main)"
is "$(addresses)" "[\"$A\",\"$B\",\"$C\"]" "after a restart: exactly the acknowledged bans"

# ---------------------------------------------------------------------------------------------
# A journal of the text format (before the binary records), ending in a record cut short

daemon_stop main
cat >"$STATE_REAL/bans.log" <<TEXT
+{"address": "198.51.100.98", "id": 76, "origin": "manual", "created": 1764547200000000, "expires": 0, "offenses": 1, "reason": "unbanned next"}
+{"address": "$D", "id": 77, "origin": "import", "created": 1764547200000000, "expires": 0, "offenses": 4, "reason": "from the text journal"}
-198.51.100.98
TEXT
printf '+{"address": "198.51.100.99", "id": 78, "origin": "manual", "crea' >>"$STATE_REAL/bans.log"
daemon_start main || bail "the daemon did not start over a text journal: $(daemon_log main)"
is "$(addresses)" "[\"$A\",\"$B\",\"$C\",\"$D\"]" \
   "a text journal: its records replayed over the snapshot, the one cut short ignored"
is "$(pscall "$PS_BANS_PATH" "$PS_BANS" Get s "$D" | jq -c '.data[0].ban.data | {r: .reason.data, o: .offenses.data, g: .origin.data}')" \
   '{"r":"from the text journal","o":4,"g":"import"}' "$D is restored with its reason, offenses and origin"
like "$(grep -c 'bans.log ends in a record cut short' "$LOG")" '^[1-9]' "the log warns about the cut record"
is "$([ -e "$STATE_REAL/bans.log" ] && echo kept || echo gone)" gone \
   "the text journal was replaced by a snapshot"
like "$(grep -c 'Replaced the ban journal' "$LOG")" '^[1-9]' "and the log says so"

# ---------------------------------------------------------------------------------------------
# A binary record cut short (a crash while it was written, never acknowledged)

F=198.51.100.6
G=198.51.100.7
is "$(ban $F)" OK "Ban of $F"
is "$(head -c 8 "$STATE_REAL/bans.log")" PSBANLG "bans.log is a journal of binary records"
daemon_stop main
size=$(stat -c %s "$STATE_REAL/bans.log")
# The first 40 bytes of the record of F again: a head cut short.
tail -c +17 "$STATE_REAL/bans.log" | head -c 40 >"$T/cut"
cat "$T/cut" >>"$STATE_REAL/bans.log"
daemon_start main || bail "the daemon did not start over a cut record: $(daemon_log main)"
is "$(addresses)" "[\"$A\",\"$B\",\"$C\",\"$D\",\"$F\"]" \
   "a cut binary record: ignored, the records before it count"
like "$(grep -c 'bans.log ends in a record cut short (40 bytes)' "$LOG")" '^[1-9]' \
     "and the log warns about it"
is "$(stat -c %s "$STATE_REAL/bans.log")" "$size" "the cut record was cut off the file"
is "$(ban $G)" OK "Ban of $G after the cut record"
daemon_stop main
daemon_start main || bail "the daemon did not restart: $(daemon_log main)"
is "$(addresses)" "[\"$A\",\"$B\",\"$C\",\"$D\",\"$F\",\"$G\"]" \
   "after another restart $G is there: it was recorded after the cut"

# A record changed on disk before the end (not a crash: a bad disk or an edit)
daemon_stop main
# A byte of F's address, in the first record after the 16-byte header; G's record follows.
printf '\xff' | dd of="$STATE_REAL/bans.log" bs=1 seek=$((16 + 30)) conv=notrunc 2>/dev/null
daemon_start main || bail "the daemon did not start over a changed record: $(daemon_log main)"
like "$(grep -c 'bans.log cannot be read from byte 16 ' "$LOG")" '^[1-9]' \
     "a changed record: the replay stops there and says so"
is "$([ -s "$STATE_REAL/bans.log.corrupt" ] && echo kept)" kept "the journal is kept as bans.log.corrupt"
# F and G stayed in the pinned tables: taken over once the exact tables are walked.
all_six() { [ "$(addresses)" = "[\"$A\",\"$B\",\"$C\",\"$D\",\"$F\",\"$G\"]" ]; }
wait_until 60 all_six
ok $? "the bans the kernel still held are taken over: none is lost" "$(addresses)"
rm -f "$STATE_REAL/bans.log.corrupt"

# ---------------------------------------------------------------------------------------------
# Compaction

net_create N
out=$(attach "$N_IF" generic 2>&1) || bail "attach failed: $out $(daemon_log main 30)"
is "$(ping_received "$N_NS" "$N_H4" 2)" 2 "before its ban, pings from $N_N4 come back"
is "$(ban "$N_N4")" OK "Ban of $N_N4, the pinging source"

# Each with a reason of 64 bytes, so that the 40,000 records pass the 4 MiB of the threshold.
batch=$(jq -nc '[range(0; 40000) | {address: ["s", "10.77.\(. / 256 | floor).\(. % 256)"],
                                    reason: ["s", "batch of the compaction test, reason of sixty-four bytes, ok"]}]')
printf '[%s]' "$batch" >"$T/batch.json"
is "$(rawcall "$PS_BANS_PATH" "$PS_BANS" BanBatch 'aa{sv}' "@$T/batch.json" | jq -c '.reply')" \
   "[40000]" "BanBatch of 40,000 bans"
# The journal passed 4 MiB: a child writes the snapshot, then bans.log starts over. The
# snapshot's header holds its number of bans at byte 16 (packetscoped(8), FILES).
snapshot_bans() {
        od -An -tu8 -j16 -N8 "$STATE_REAL/bans.snapshot" 2>/dev/null | tr -d ' '
}
compacted() {
        [ "$(snapshot_bans)" = 40007 ] &&
                [ ! -e "$STATE_REAL/bans.log.new" ] &&
                [ "$(stat -c %s "$STATE_REAL/bans.log" 2>/dev/null || echo 0)" -lt 1048576 ]
}
wait_until 60 compacted
ok $? "the journal was compacted into bans.snapshot" \
   "$(ls -l "$STATE_REAL"; daemon_log main 5)"
is "$(ban 198.51.100.5)" OK "a ban after the compaction"
# A journal of more than 1 MiB, short of the next compaction (20,000 of the bans extended): the
# clean stop below folds it into the snapshot, and the start replays no journal.
batch=$(jq -nc '[range(0; 20000) | {address: ["s", "10.77.\(. / 256 | floor).\(. % 256)"],
                                    reason: ["s", "batch of the stop test, a reason of sixty-four bytes, ok ok ok"]}]')
printf '[%s]' "$batch" >"$T/batch3.json"
is "$(rawcall "$PS_BANS_PATH" "$PS_BANS" BanBatch 'aa{sv}' "@$T/batch3.json" | jq -c '.reply')" \
   "[20000]" "BanBatch extending 20,000 of them"
ge "$(stat -c %s "$STATE_REAL/bans.log" 2>/dev/null || echo 0)" 1048576 \
   "the journal holds more than 1 MiB"
# Pings every 20 ms for 8 s, across the stop, the restore and the start.
in_ns "$N_NS" ping -n -q -c 400 -i 0.02 -W 1 "$N_H4" >"$T/ping.out" 2>&1 &
ping_pid=$!
sleep 0.5
daemon_stop main
daemon_start main || bail "the daemon did not restart: $(daemon_log main)"
kill -0 "$ping_pid" 2>/dev/null
ok $? "the daemon was back while the pings were still being sent"
wait "$ping_pid"
is "$(sed -n 's/^\([0-9]*\) packets transmitted, \([0-9]*\) received.*/\1 \2/p' "$T/ping.out")" \
   "400 0" "400 pings across the stop and the restore: not one came back"
is "$(count)" 40008 "after a restart all 40,008 bans are there"
like "$(grep -o 'Restored [0-9]* ban(s)' "$LOG" | tail -n 1)" '^Restored 40008 ban' \
     "the daemon's log says it restored them"
grep -q 'Wrote 40008 ban(s) to .* at the stop' "$LOG"
ok $? "the clean stop wrote the snapshot, the journal folded in" "$(tail -n 5 "$LOG")"
like "$(grep -o 'Restored [0-9]* ban(s) .*' "$LOG" | tail -n 1)" ', 0 journal record\(s\) replayed' \
     "and the start replayed no journal record"
is "$(in_kernel 10.77.156.63)" yes "the last ban of the batch is in the kernel"
batch=$(jq -nc '[range(0; 10000) | {address: ["s", "10.78.\(. / 256 | floor).\(. % 256)"]}]')
printf '[%s]' "$batch" >"$T/batch2.json"
like "$(call_error "$PS_BANS_PATH" "$PS_BANS" BanBatch 'aa{sv}' "@$T/batch2.json")" \
     "^$PS_ERR\.BanTableFull: .*MaxBansIPv4" "a BanBatch past MaxBansIPv4 is refused with BanTableFull"
is "$(count)" 40008 "and the count is unchanged"
is "$(in_kernel 10.78.0.0)/$(in_kernel 10.78.39.15)" no/no \
   "none of the refused batch is in the kernel (its first and its last ban)"

# ---------------------------------------------------------------------------------------------
# bans.json from an older version

E=198.51.100.66
daemon_stop main
rm -f "$STATE_REAL/bans.snapshot" "$STATE_REAL/bans.log" "$STATE_REAL/bans.log.new"
cat >"$STATE_REAL/bans.json" <<JSON
{"version": 1, "allowlist": [],
"bans": [
{"address": "$E", "id": 90001, "origin": "manual", "created": 1764547200000000, "expires": 0, "offenses": 2, "reason": "from bans.json"}
]}
JSON
daemon_start main || bail "the daemon did not start with a bans.json: $(daemon_log main)"
is "$(pscall "$PS_BANS_PATH" "$PS_BANS" Get s "$E" | jq -c '.data[0].ban.data | {a: .address.data, r: .reason.data, o: .offenses.data}')" \
   "{\"a\":\"$E\",\"r\":\"from bans.json\",\"o\":2}" "the ban of bans.json is restored with its reason and offenses"
is "$(in_kernel $E)" yes "and put into the kernel"
is "$([ -e "$STATE_REAL/bans.json" ] && echo kept || echo gone)/$([ -s "$STATE_REAL/bans.snapshot" ] && echo written)" \
   gone/written "bans.json was replaced by bans.snapshot"
# The exact tables are reconciled once the bus answers: the 40,008 bans only the kernel holds
# now are taken over (and journaled) then.
reconciled() { [ "$(count)" = 40009 ]; }
wait_until 60 reconciled
ok $? "the 40,008 bans only the kernel held are taken over: 40,009" "$(count)"
daemon_stop main
daemon_start main || bail "the daemon did not restart: $(daemon_log main)"
is "$(count)" 40009 "after another restart, from the snapshot: 40,009 bans"

UNBANS=("$A" "$B" "$C" "$D" "$F" "$G" 198.51.100.5 "$N_N4" "$E")
for a in "${UNBANS[@]}"; do unban "$a" >/dev/null; done

done_testing
