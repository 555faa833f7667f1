/* SPDX-License-Identifier: GPL-2.0-only OR MIT */
/*
 * The coarse monotonic clock for the XDP programs (the guard's, and the flow floor of
 * bench-xdp), read once per jiffy and CPU. Included by one program's source only.
 */
#ifndef PACKETSCOPE_CLOCK_BPF_H
#define PACKETSCOPE_CLOCK_BPF_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

/*
 * The coarse clock as this CPU last read it, and the jiffy it read it in (coarse_now()). Not
 * pinned: a program swapped in starts without it and reads the clock on its first packet.
 */
struct ps_clock_cache {
        __u64 jiffies;
        __u64 ns;
};

struct {
        __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
        __uint(max_entries, 1);
        __type(key, __u32);
        __type(value, struct ps_clock_cache);
} clock_cache SEC(".maps");

/*
 * CLOCK_MONOTONIC_COARSE in ns, what bpf_ktime_get_coarse_ns() returns, read once per jiffy
 * and CPU. The coarse clock only moves at the tick, when jiffies move; bpf_jiffies64() is a
 * load that the verifier inlines, while the clock is a helper call that cost about 20 ns a
 * packet (a tenth of the whole program's cost, under the return-thunk mitigations of the
 * benchmark's CPUs). What it may cost in accuracy: the tick moves jiffies before it advances
 * the clock, and a packet another CPU handles in between keeps the clock of the tick before
 * for the rest of the jiffy: a stamp is then one tick older than the coarse clock's.
 */
static __always_inline __u64 coarse_now(void)
{
        __u32 zero = 0;
        struct ps_clock_cache *c = bpf_map_lookup_elem(&clock_cache, &zero);
        __u64 j = bpf_jiffies64();

        if (!c)
                return bpf_ktime_get_coarse_ns();
        if (c->jiffies != j) {
                c->ns = bpf_ktime_get_coarse_ns();
                c->jiffies = j;
        }
        return c->ns;
}

#endif
