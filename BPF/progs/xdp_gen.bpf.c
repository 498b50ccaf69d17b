// SPDX-License-Identifier: GPL-2.0
/* Traffic generator core, run through BPF_PROG_TEST_RUN with BPF_F_TEST_XDP_LIVE_FRAMES: the
 * kernel runs it over one template frame again and again, and XDP_TX sends each result out of
 * the ingress interface given in the test context. Each frame gets a sequence number, a send
 * timestamp and a UDP source port chosen among `flows` values. */
#include "compiler.h"
#include "shunt_abi.h"
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>

const volatile struct shunt_gen_config gen_config = { .stream = 0, .flows = 1, .base_sport = 1024 };

struct gen_state {
	__u64 next_seq; /* frames stamped so far */
	__u64 sent;     /* unused */
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct gen_state);
} gen_state_map SEC(".maps");

SEC("xdp")
int xdp_gen(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 key = 0;
	struct gen_state *st = bpf_map_lookup_elem(&gen_state_map, &key);
	if (!st)
		return XDP_ABORTED;
	if (data + SHUNT_PROBE_OFFSET + sizeof(struct shunt_probe) > data_end)
		return XDP_ABORTED;

	__u64 seq = __sync_fetch_and_add(&st->next_seq, 1);
	struct udphdr *udp = data + sizeof(struct ethhdr) + sizeof(struct iphdr);
	__u32 flows = gen_config.flows ? gen_config.flows : 1;
	udp->source = bpf_htons(gen_config.base_sport + (__u16)(seq % flows));
	udp->check = 0; /* IPv4: a zero UDP checksum means "none" */

	struct shunt_probe *probe = data + SHUNT_PROBE_OFFSET;
	probe->magic = bpf_htonl(SHUNT_PROBE_MAGIC);
	probe->sequence = (__u32)seq;
	probe->sent_ns = bpf_ktime_get_ns();
	return XDP_TX;
}

char LICENSE[] SEC("license") = "GPL";
