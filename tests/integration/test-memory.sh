#!/bin/bash
# SPDX-License-Identifier: MIT
#
# The kernel memory of each guarded interface: Link.KernelMemory and Describe's
# kernel_memory_bytes equal the sum of what the kernel charges for the interface's pinned maps
# (bpftool's bytes_memlock, read from the pins by another tool), the formula of
# packetscoped(8) MEMORY predicts the connection table's share, and the default table size
# fits a small VM.

set -u
. "$(dirname "$0")/lib.sh"

require_root
require ip dbus-daemon busctl jq timeout bpftool
[ -x "$PACKETSCOPED" ] || bail "no daemon at $PACKETSCOPED"

make_tmpdir T
bus_start "$T/bus"
net_create A
net_create B

memlock() {
        bpftool -j map show pinned "$1" | jq -r .bytes_memlock
}
link_prop() {
        busctl --system --json=short get-property "$PS_NAME" "$PS_PATH/link/$1" "$PS_LINK" "$2" |
                jq -r .data
}
pins_memlock() {
        local root=$1 ifname=$2 sum=0 m v
        for m in flows icmp_flows icmp4_flows stats icmp_stats meta; do
                v=$(memlock "$root/$ifname/$m")
                [[ "$v" =~ ^[0-9]+$ ]] || { echo "no memlock for $m"; return 1; }
                sum=$((sum + v))
        done
        echo "$sum"
}

# The test's sizes: 65536 connections, 4096 ICMP entries.
daemon_start main || bail "the daemon did not start: $(daemon_log main)"
attach "$A_IF" || bail "cannot attach to $A_IF"
ROOT=${DAEMON_BPFFS[main]}
want=$(pins_memlock "$ROOT" "$A_IF")
got=$(link_prop "$A_IF" KernelMemory)
is "$got" "$want" "Link.KernelMemory is the sum of bpftool's bytes_memlock of the six maps ($want)"
desc=$(busctl --system --json=short call "$PS_NAME" "$PS_PATH" "$PS_MANAGER" Describe | jq -r '.data[0]')
is "$(jq -r --arg n "$A_IF" '.links[] | select(.name == $n) | .kernel_memory_bytes' <<<"$desc")" \
        "$want" "Describe: kernel_memory_bytes of the link is the same"
is "$(link_prop "$A_IF" FlowTableSize)/$(link_prop "$A_IF" IcmpTableSize)" 65536/4096 \
        "Link.FlowTableSize/IcmpTableSize: 65536/4096"

# packetscoped(8): an entry costs 48 + key + value (each rounded up to 8 bytes), plus 16 bytes
# of bucket per power of two above the table size; the connection key is 40 bytes and its
# value 72. Within 1% (the map's own header, the kernel's build).
flows=$(memlock "$ROOT/$A_IF/flows")
formula=$((65536 * (48 + 40 + 72) + 65536 * 16))
diff=$((flows > formula ? flows - formula : formula - flows))
[ $((diff * 100)) -le "$formula" ]
ok $? "the connection table takes $flows bytes; the man page's formula says $formula"
icmp4=$(memlock "$ROOT/$A_IF/icmp4_flows")
formula=$((4096 * (48 + 16 + 88) + 4096 * 16))
diff=$((icmp4 > formula ? icmp4 - formula : formula - icmp4))
[ $((diff * 100)) -le "$formula" ]
ok $? "the ICMP (IPv4) table takes $icmp4 bytes; the man page's 168 bytes an entry say $formula"
daemon_stop main

# The default: no FlowTableSize= in the configuration.
daemon_setup dflt
printf '[Filters]\nManagementPorts=\n[Guard]\nIcmpTableSize=4096\n' \
        >"${DAEMON_DIR[dflt]}/config/packetscope.conf"
daemon_start dflt || bail "the daemon did not start: $(daemon_log dflt)"
attach "$B_IF" || bail "cannot attach to $B_IF"
is "$(link_prop "$B_IF" FlowTableSize)" 131072 "the default FlowTableSize= is 131072"
got=$(link_prop "$B_IF" KernelMemory)
want=$(pins_memlock "${DAEMON_BPFFS[dflt]}" "$B_IF")
is "$got" "$want" "its KernelMemory is bpftool's figure ($want bytes)"
[ "$got" -le $((32 * 1024 * 1024)) ]
ok $? "an interface with the default connection table holds at most 32 MiB ($((got / 1048576)) MiB)"

done_testing
