// SPDX-License-Identifier: GPL-2.0
/* Receiver core: counts every frame on the interface, and for frames carrying a shunt_probe
 * adds (now - sent) to a latency histogram; then drops the frame. Runs where the frame arrives,
 * so the measurement has no ring or scheduling delay of its own beyond NAPI. */
#include "compiler.h"
#include "shunt_abi.h"
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct shunt_sink_counters);
} sink_counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SHUNT_LAT_BUCKETS);
	__type(key, __u32);
	__type(value, __u64);
} sink_latency SEC(".maps");

static __always_inline __u32 log2_u64(__u64 v)
{
	__u32 r = 0;
	if (v >> 32) { v >>= 32; r += 32; }
	if (v >> 16) { v >>= 16; r += 16; }
	if (v >> 8) { v >>= 8; r += 8; }
	if (v >> 4) { v >>= 4; r += 4; }
	if (v >> 2) { v >>= 2; r += 2; }
	if (v >> 1) { r += 1; }
	return r;
}

SEC("xdp")
int xdp_sink(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 key = 0;
	struct shunt_sink_counters *c = bpf_map_lookup_elem(&sink_counters, &key);
	if (!c)
		return XDP_DROP;
	c->packets++;
	c->bytes += data_end - data;

	/* The probe follows UDP over IPv4 without options (SHUNT_PROBE_OFFSET) or over IPv6
	 * without extension headers (SHUNT_PROBE_OFFSET_IPV6). */
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > data_end)
		return XDP_DROP;
	struct shunt_probe *probe;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);
		if ((void *)(ip + 1) > data_end || ip->ihl != 5 || ip->protocol != IPPROTO_UDP)
			return XDP_DROP;
		probe = data + SHUNT_PROBE_OFFSET;
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);
		if ((void *)(ip6 + 1) > data_end || ip6->nexthdr != IPPROTO_UDP)
			return XDP_DROP;
		probe = data + SHUNT_PROBE_OFFSET_IPV6;
	} else {
		return XDP_DROP;
	}
	if ((void *)(probe + 1) > data_end || probe->magic != bpf_htons(SHUNT_PROBE_MAGIC))
		return XDP_DROP;

	/* Sequences are 32-bit on the wire: compare them as serial numbers (RFC 1982) against the
	 * highest seen on this CPU, whose extended 64-bit value (+1) max_seq keeps. */
	__u32 seq = probe->sequence;
	if (c->probes++ == 0) {
		c->max_seq = (__u64)seq + 1;
	} else {
		__s32 ahead = (__s32)(seq - (__u32)(c->max_seq - 1));
		if (ahead > 0)
			c->max_seq += (__u64)ahead;
		else
			c->reordered++;
	}
	__u64 now = bpf_ktime_get_ns();
	__u64 us = now > probe->sent_ns ? (now - probe->sent_ns) / 1000 : 0;
	__u32 bucket;
	if (us < SHUNT_LAT_LINEAR_US) {
		bucket = us;
	} else {
		/* us >= SHUNT_LAT_LINEAR_US = 2^12: bucket LINEAR + k holds [2^(12+k), 2^(13+k)) us */
		bucket = SHUNT_LAT_LINEAR_US + log2_u64(us) - 12;
		if (bucket >= SHUNT_LAT_BUCKETS)
			bucket = SHUNT_LAT_BUCKETS - 1;
	}
	__u64 *slot = bpf_map_lookup_elem(&sink_latency, &bucket);
	if (slot)
		(*slot)++;
	return XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";
