/* SPDX-License-Identifier: GPL-2.0 */
/*
 * counters.h: the fast path's own counters, struct shunt_fastpath_stats (one per CPU, the
 * array map fastpath_stats): hits, misses and the other reasons a frame goes up, drops by
 * reason, and per Shunt port what arrived, left, was dropped, decapsulated or encapsulated;
 * and the counters of a cache entry. Every way a frame ends is one helper here, so each is
 * counted the same way wherever it happens: drop(), pass_up(), pass_userspace().
 */
#ifndef __SHUNT_BPF_COUNTERS_H
#define __SHUNT_BPF_COUNTERS_H

#include "compiler.h"
#include "shunt_abi.h"

/* The counters of input port `port`. Ports come from our own map, always 1..SHUNT_MAX_PORTS;
 * the check is for the verifier. */
static __always_inline struct shunt_port_counters *port_counters(struct shunt_fastpath_stats *st, __u32 port)
{
	if (port > SHUNT_MAX_PORTS)
		port = 0;
	return &st->ports[port];
}

/* A frame passed up to the slow path unmodified, counted in `*counter` (a field of the stats). */
static __always_inline int pass_up(__u64 *counter)
{
	(*counter)++;
	return XDP_PASS;
}

/* A frame of an entry the slow path executes, passed up: the entry is in use all the same,
 * so it is not idle. */
static __always_inline int pass_userspace(struct shunt_fastpath_stats *st, struct shunt_cache_entry *e)
{
	e->last_used_ns = bpf_ktime_get_coarse_ns();
	st->userspace++;
	return XDP_PASS;
}

/* A received frame dropped in the kernel for `reason` (< SHUNT_DROP__MAX), counted overall and
 * on its input port. */
static __always_inline int drop(struct shunt_fastpath_stats *st, struct shunt_port_counters *in_pc, __u32 reason)
{
	st->drops[reason]++;
	in_pc->rx_drops[reason]++;
	return XDP_DROP;
}

/* A cache hit of `len` bytes: the entry's counters and the overall hits. */
static __always_inline void count_hit(struct shunt_cache_entry *e, struct shunt_fastpath_stats *st, __u64 len)
{
	__sync_fetch_and_add(&e->packets, 1);
	__sync_fetch_and_add(&e->bytes, len);
	/* Coarse (jiffies) time is enough for idle expiry and costs far less per packet. Same
	 * clock as CLOCK_MONOTONIC, which the revalidator compares it with. */
	e->last_used_ns = bpf_ktime_get_coarse_ns();
	st->hits++;
	st->hit_bytes += len;
}

/* A hit received on the port of `in_pc`. */
static __always_inline void count_rx(struct shunt_port_counters *in_pc, __u64 len)
{
	in_pc->rx_packets++;
	in_pc->rx_bytes += len;
}

/* A frame of `len` bytes (as sent) redirected out of `port`. */
static __always_inline void count_tx(struct shunt_fastpath_stats *st, __u32 port, __u64 len)
{
	if (port <= SHUNT_MAX_PORTS) {
		st->ports[port].tx_packets++;
		st->ports[port].tx_bytes += len;
	}
}

/* A frame decapsulated on `underlay`: counted there as received (all of its bytes) and as
 * decapsulated, as the slow path counts it; its inner frame counts on the tunnel port. */
static __always_inline void count_decap(struct shunt_fastpath_stats *st, __u32 underlay, __u64 inner_len)
{
	if (underlay > SHUNT_MAX_PORTS)
		return;
	struct shunt_port_counters *pc = &st->ports[underlay];
	pc->rx_packets++;
	pc->rx_bytes += inner_len + SHUNT_VXLAN_OVERHEAD;
	pc->rx_decapsulated++;
}

/* A frame sent encapsulated: the tunnel port's tx (inner bytes), the underlay's encapsulated. */
static __always_inline void count_encap(struct shunt_fastpath_stats *st, __u32 tunnel_port, __u32 underlay,
					__u64 inner_len)
{
	count_tx(st, tunnel_port, inner_len);
	if (underlay <= SHUNT_MAX_PORTS)
		st->ports[underlay].tx_encapsulated++;
}

#endif /* __SHUNT_BPF_COUNTERS_H */
