// SPDX-License-Identifier: GPL-2.0
/* Traffic generator core, run through BPF_PROG_TEST_RUN with BPF_F_TEST_XDP_LIVE_FRAMES: the
 * kernel runs it over one template frame again and again, and XDP_TX sends each result out of
 * the ingress interface given in the test context. Each frame sent gets the configured stream
 * id, a sequence number, a send timestamp, and the addresses and ports of its flow (sequence
 * modulo the flow count, in mixed radix over the configured ranges; see shunt_gen_config).
 *
 * Pacing happens here, per frame: with an interval set in gen_state, a run that comes before the
 * next frame is due returns XDP_DROP (the kernel recycles the frame; nothing is sent), so one
 * long test run spins on the schedule and frames leave evenly spaced. A late frame (the CPU was
 * busy elsewhere) goes at once, and so do the ones due after it: the schedule catches up, so the
 * average rate holds. Only a frame more than max_lag_ns late moves the schedule up instead
 * (counted in lag_skips), which bounds a catch-up burst. Userspace ends a run by signalling the
 * thread in the syscall. Each sending thread runs its own copy of this object (config, state).
 *
 * The same frame logic also drives the in-kernel pump (xdp_pump below), for kernels that refuse
 * live frames (docs/design/0015-in-kernel-pump.md). */
#include "compiler.h"
#include "shunt_abi.h"
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>

const volatile struct shunt_gen_config gen_config = {
	.flows = 1, .sport_first = 1024, .sport_count = 1, .dport_first = 9, .dport_count = 1,
	.saddr_count = 1, .daddr_count = 1,
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct shunt_gen_state);
} gen_state SEC(".maps");

static __always_inline void write_probe(struct shunt_probe *probe, __u64 seq, __u64 now)
{
	probe->magic = bpf_htons(SHUNT_PROBE_MAGIC);
	probe->stream = bpf_htons((__u16)gen_config.stream);
	probe->sequence = (__u32)seq;
	probe->sent_ns = now;
}

/* The 16-bit words at p, as loaded (memory order), added up: a one's complement sum does not
 * depend on byte order as long as the result is stored the same way (RFC 1071, 2.(B)). */
static __always_inline __u64 sum_words(const __u16 *p, int n)
{
	__u64 s = 0;
#pragma unroll
	for (int k = 0; k < n; k++)
		s += p[k];
	return s;
}

/* IPv6: the flow's addresses (last 32 bits) and ports, the probe at SHUNT_PROBE_OFFSET_IPV6,
 * and the UDP checksum (mandatory for IPv6) from the template's base sum plus what changed. */
static __always_inline int stamp_ipv6(void *data, void *data_end, __u64 seq, __u64 now, __u32 sport,
				      __u32 dport, __u32 saddr, __u32 daddr)
{
	struct ipv6hdr *ip6 = data + sizeof(struct ethhdr);
	struct udphdr *udp = (void *)(ip6 + 1);
	struct shunt_probe *probe = data + SHUNT_PROBE_OFFSET_IPV6;
	if ((void *)(probe + 1) > data_end)
		return XDP_ABORTED;
	ip6->saddr.in6_u.u6_addr32[3] = bpf_htonl(saddr);
	ip6->daddr.in6_u.u6_addr32[3] = bpf_htonl(daddr);
	udp->source = bpf_htons((__u16)sport);
	udp->dest = bpf_htons((__u16)dport);
	write_probe(probe, seq, now);
	__u64 sum = gen_config.ip_csum_base;
	sum += sum_words((const __u16 *)&ip6->saddr.in6_u.u6_addr32[3], 2);
	sum += sum_words((const __u16 *)&ip6->daddr.in6_u.u6_addr32[3], 2);
	sum += sum_words((const __u16 *)udp, 2);
	sum += sum_words((const __u16 *)probe, sizeof(*probe) / 2);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	__u16 check = (__u16)~sum;
	udp->check = check ? check : 0xffff; /* 0 would mean "no checksum", not allowed for IPv6 */
	return XDP_TX;
}

/* One frame of the schedule: XDP_TX when the frame in ctx is due and now stamped (flow, probe,
 * checksums), XDP_DROP when it is not due yet, XDP_ABORTED when it is too short. */
static __always_inline int stamp_due_frame(struct xdp_md *ctx, struct shunt_gen_state *st)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	if (data + SHUNT_PROBE_OFFSET + sizeof(struct shunt_probe) > data_end) /* also covers the headers */
		return XDP_ABORTED;

	__u64 now = bpf_ktime_get_ns();
	if (st->interval_ns | st->interval_frac) {
		if (st->due_ns == 0)
			st->due_ns = now;
		if (now < st->due_ns)
			return XDP_DROP;
		__u64 lag = now - st->due_ns;
		if (lag > st->max_lag_seen_ns)
			st->max_lag_seen_ns = lag;
		if (lag > st->max_lag_ns) {
			st->lag_skips++;
			st->skipped_ns += lag;
			st->due_ns = now;
			st->due_frac = 0;
		}
		__u32 frac = st->due_frac + st->interval_frac;
		st->due_ns += st->interval_ns + (frac < st->due_frac ? 1 : 0);
		st->due_frac = frac;
	}

	__u64 seq = st->next_seq++;
	if (seq == 0)
		st->first_ns = now;
	st->last_ns = now;

	/* Byte by byte through the volatile: __builtin_memcpy from a cast that drops volatile let
	 * clang fold the copy to the initializer's zeros (every frame left with zero MACs). */
	__u8 *mac = data;
#pragma unroll
	for (int i = 0; i < 12; i++)
		mac[i] = gen_config.eth[i];
	/* The flow of this frame; a zero count in a hand-made config counts as 1 (no division
	 * by zero). */
	__u32 flows = gen_config.flows ? gen_config.flows : 1;
	__u32 sport_count = gen_config.sport_count ? gen_config.sport_count : 1;
	__u32 dport_count = gen_config.dport_count ? gen_config.dport_count : 1;
	__u32 saddr_count = gen_config.saddr_count ? gen_config.saddr_count : 1;
	__u32 i = (__u32)(seq % flows);
	__u32 sport = gen_config.sport_first + i % sport_count;
	i /= sport_count;
	__u32 dport = gen_config.dport_first + i % dport_count;
	i /= dport_count;
	__u32 saddr = gen_config.saddr_first + i % saddr_count;
	__u32 daddr = gen_config.daddr_first + i / saddr_count;

	if (gen_config.ipv6)
		return stamp_ipv6(data, data_end, seq, now, sport, dport, saddr, daddr);

	struct iphdr *ip = data + sizeof(struct ethhdr);
	struct udphdr *udp = (void *)(ip + 1);
	udp->source = bpf_htons((__u16)sport);
	udp->dest = bpf_htons((__u16)dport);
	udp->check = 0; /* IPv4: a zero UDP checksum means "none" */
	ip->saddr = bpf_htonl(saddr);
	ip->daddr = bpf_htonl(daddr);
	__u64 sum = (__u64)gen_config.ip_csum_base + (saddr >> 16) + (saddr & 0xffff) + (daddr >> 16) +
		    (daddr & 0xffff);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	ip->check = bpf_htons((__u16)~sum);

	write_probe(data + SHUNT_PROBE_OFFSET, seq, now);
	return XDP_TX;
}

static __always_inline struct shunt_gen_state *state(void)
{
	__u32 key = 0;
	return bpf_map_lookup_elem(&gen_state, &key);
}

SEC("xdp")
int xdp_gen(struct xdp_md *ctx)
{
	struct shunt_gen_state *st = state();
	if (!st)
		return XDP_ABORTED;
	if (st->limit && st->next_seq >= st->limit)
		return XDP_DROP;
	return stamp_due_frame(ctx, st);
}

/* The in-kernel pump: a few frames circulate between the two ends of a veth pair (pump B runs
 * xdp_pump, pump A runs xdp_pump_bounce). On each lap xdp_pump applies the generator's schedule
 * to the frame: when one is due, it is stamped like an xdp_gen frame and broadcast to
 * pump_ports (the generator port, and pump B itself, whose peer sends it round again); when
 * none is due, the frame only goes round. Every broadcast is one frame sent (next_seq). The
 * frames stop circulating, and the pump with them, at the frame limit or when userspace sets
 * pump_control[0]. Everything runs in the veths' NAPI, on the CPU that injected the frames. */
struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP_HASH);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u32);
} pump_ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} pump_loop SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} pump_control SEC(".maps");

SEC("xdp")
int xdp_pump(struct xdp_md *ctx)
{
	__u32 key = 0;
	__u32 *stop = bpf_map_lookup_elem(&pump_control, &key);
	struct shunt_gen_state *st = state();
	if (!st || !stop || *stop)
		return XDP_DROP;
	if (st->limit && st->next_seq >= st->limit)
		return XDP_DROP;
	/* Only the injected frames go round (they carry the probe magic): anything else the stack
	 * sends on the pump's veths (IPv6 neighbour discovery, say) is dropped here. */
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct shunt_probe *probe = data + (gen_config.ipv6 ? SHUNT_PROBE_OFFSET_IPV6 : SHUNT_PROBE_OFFSET);
	if ((void *)(probe + 1) > data_end || probe->magic != bpf_htons(SHUNT_PROBE_MAGIC))
		return XDP_DROP;
	int verdict = stamp_due_frame(ctx, st);
	if (verdict == XDP_TX)
		return bpf_redirect_map(&pump_ports, 0, BPF_F_BROADCAST);
	if (verdict == XDP_DROP) /* not due yet: once more round the loop */
		return bpf_redirect_map(&pump_loop, 0, 0);
	return XDP_DROP;
}

SEC("xdp")
int xdp_pump_bounce(struct xdp_md *ctx)
{
	return XDP_TX;
}

char LICENSE[] SEC("license") = "GPL";
