// SPDX-License-Identifier: GPL-2.0
/* Traffic generator core, run through BPF_PROG_TEST_RUN with BPF_F_TEST_XDP_LIVE_FRAMES: the
 * kernel runs it over one template frame again and again, and XDP_TX sends each result out of
 * the ingress interface given in the test context. Each frame sent gets the configured stream
 * id, a sequence number, a send timestamp and a UDP source port chosen among `flows` values.
 *
 * Pacing happens here, per frame: with an interval set in gen_state, a run that comes before the
 * next frame is due returns XDP_DROP (the kernel recycles the frame; nothing is sent), so one
 * long test run spins on the schedule and frames leave evenly spaced, not in bursts. A schedule
 * that falls more than max_lag_ns behind (the CPU was busy elsewhere) moves up rather than
 * catching up in a burst. Userspace ends a run by signalling the thread in the syscall. */
#include "compiler.h"
#include "shunt_abi.h"
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>

const volatile struct shunt_gen_config gen_config = { .stream = 0, .flows = 1, .base_sport = 1024 };

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct shunt_gen_state);
} gen_state SEC(".maps");

SEC("xdp")
int xdp_gen(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 key = 0;
	struct shunt_gen_state *st = bpf_map_lookup_elem(&gen_state, &key);
	if (!st)
		return XDP_ABORTED;
	if (data + SHUNT_PROBE_OFFSET + sizeof(struct shunt_probe) > data_end)
		return XDP_ABORTED;
	if (st->limit && st->next_seq >= st->limit)
		return XDP_DROP;

	__u64 now = bpf_ktime_get_ns();
	if (st->interval_ns | st->interval_frac) {
		if (st->due_ns == 0)
			st->due_ns = now;
		if (now < st->due_ns)
			return XDP_DROP;
		__u64 lag = now - st->due_ns;
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

	/* Byte by byte through the volatile object: a memcpy from a cast that drops `volatile`
	 * lets clang fold the read to the initializer (all zero MACs), whatever userspace set. */
#pragma unroll
	for (int i = 0; i < (int)sizeof(gen_config.eth); i++)
		((__u8 *)data)[i] = gen_config.eth[i];
	struct udphdr *udp = data + sizeof(struct ethhdr) + sizeof(struct iphdr);
	__u32 flows = gen_config.flows ? gen_config.flows : 1;
	udp->source = bpf_htons(gen_config.base_sport + (__u16)(seq % flows));
	udp->check = 0; /* IPv4: a zero UDP checksum means "none" */

	struct shunt_probe *probe = data + SHUNT_PROBE_OFFSET;
	probe->magic = bpf_htons(SHUNT_PROBE_MAGIC);
	probe->stream = bpf_htons((__u16)gen_config.stream);
	probe->sequence = (__u32)seq;
	probe->sent_ns = now;
	return XDP_TX;
}

char LICENSE[] SEC("license") = "GPL";
