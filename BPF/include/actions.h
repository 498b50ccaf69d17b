/* SPDX-License-Identifier: GPL-2.0 */
/*
 * actions.h: the datapath actions of a cache entry (struct shunt_dp_action, the flat result of
 * the OpenFlow pipeline) that the kernel executes: MAC rewrites, VLAN set/push and pop, TTL
 * decrement; which entries it can execute at all (executable_output), and the loop that runs
 * them (execute_actions). Each action reloads the packet pointers: bpf_xdp_adjust_head
 * invalidates them.
 */
#ifndef __SHUNT_BPF_ACTIONS_H
#define __SHUNT_BPF_ACTIONS_H

#include "compiler.h"
#include "shunt_abi.h"
#include "parse.h"
#include <linux/if_ether.h>

enum { ACT_OK = 0, ACT_FAILED = 1, ACT_TTL_EXPIRED = 2 };

static __always_inline int act_set_mac(struct xdp_md *ctx, const struct shunt_dp_action *a,
				       int offset)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;

	if (data + 14 > data_end)
		return ACT_FAILED;
	/* 16-bit moves keep every packet access aligned to NET_IP_ALIGN on strict architectures. */
	__u16 *dst = data + offset;
	const __u16 *src = (const __u16 *)a->mac;
	dst[0] = src[0];
	dst[1] = src[1];
	dst[2] = src[2];
	return ACT_OK;
}

static __always_inline int act_set_vlan(struct xdp_md *ctx, __u16 vid)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;

	if (data + 14 > data_end)
		return ACT_FAILED;
	if (is_vlan_tpid(*(__be16 *)(data + 12))) {
		if (data + 18 > data_end)
			return ACT_FAILED;
		__be16 *tci = data + 14;
		/* Keep PCP and DEI, replace the VID. */
		*tci = (*tci & bpf_htons(0xf000)) | bpf_htons(vid & 0x0fff);
		return ACT_OK;
	}
	if (bpf_xdp_adjust_head(ctx, -4))
		return ACT_FAILED;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	if (data + 18 > data_end)
		return ACT_FAILED;
	/* Move the MACs 4 bytes to the front; ascending order is safe for this overlap. The old
	 * EtherType is already where it belongs, after the new tag. */
	__u16 *w = data;
	w[0] = w[2];
	w[1] = w[3];
	w[2] = w[4];
	w[3] = w[5];
	w[4] = w[6];
	w[5] = w[7];
	w[6] = bpf_htons(ETH_P_8021Q);
	w[7] = bpf_htons(vid & 0x0fff);
	return ACT_OK;
}

static __always_inline int act_pop_vlan(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;

	if (data + 14 > data_end)
		return ACT_FAILED;
	if (!is_vlan_tpid(*(__be16 *)(data + 12)))
		return ACT_OK;
	if (data + 18 > data_end)
		return ACT_FAILED;
	/* Move the MACs 4 bytes back over the tag; descending order is safe for this overlap. */
	__u16 *w = data;
	w[7] = w[5];
	w[6] = w[4];
	w[5] = w[3];
	w[4] = w[2];
	w[3] = w[1];
	w[2] = w[0];
	if (bpf_xdp_adjust_head(ctx, 4))
		return ACT_FAILED;
	return ACT_OK;
}

/* IPv4 TTL with the header checksum updated as in RFC 1624 eqn. 3, or the IPv6 hop limit.
 * Other frames are left alone (OVS treats dec_ttl on non-IP as a no-op as well). */
static __always_inline int act_dec_ttl(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u8 *l3;
	__be16 type;

	if (data + 18 > data_end) /* a frame we parsed as IP is longer than this */
		return ACT_OK;
	type = *(__be16 *)(data + 12);
	l3 = data + 14;
	if (is_vlan_tpid(type)) {
		type = *(__be16 *)(data + 16);
		l3 = data + 18;
	}
	if (type == bpf_htons(ETH_P_IP)) {
		if ((void *)(l3 + 20) > data_end)
			return ACT_OK;
		if (l3[8] <= 1)
			return ACT_TTL_EXPIRED;
		__be16 *word = (__be16 *)(l3 + 8); /* TTL and protocol */
		__be16 *check = (__be16 *)(l3 + 10);
		__u32 old = bpf_ntohs(*word);
		__u32 new = old - 0x100;
		__u32 sum = (~(__u32)bpf_ntohs(*check) & 0xffff) + (~old & 0xffff) + new;
		sum = (sum & 0xffff) + (sum >> 16);
		sum = (sum & 0xffff) + (sum >> 16);
		*word = bpf_htons((__u16)new);
		*check = bpf_htons((__u16)~sum);
	} else if (type == bpf_htons(ETH_P_IPV6)) {
		if ((void *)(l3 + 40) > data_end)
			return ACT_OK;
		if (l3[7] <= 1)
			return ACT_TTL_EXPIRED;
		l3[7]--;
	}
	return ACT_OK;
}

/* The output port when the kernel can execute `e`: at most SHUNT_FLOW_MAX_ACTIONS actions,
 * exactly one OUTPUT and it is the last, none it lacks (unknown kinds). 0 otherwise. */
static __always_inline __u32 executable_output(const struct shunt_cache_entry *e, __u32 n)
{
	if (n > SHUNT_FLOW_MAX_ACTIONS)
		return 0;
	for (__u32 i = 0; i < SHUNT_FLOW_MAX_ACTIONS; i++) {
		if (i >= n)
			break;
		switch (e->actions[i].kind) {
		case SHUNT_DPA_OUTPUT:
			if (i + 1 != n)
				return 0;
			return e->actions[i].port;
		case SHUNT_DPA_SET_ETH_SRC:
		case SHUNT_DPA_SET_ETH_DST:
		case SHUNT_DPA_SET_VLAN:
		case SHUNT_DPA_POP_VLAN:
		case SHUNT_DPA_DEC_TTL:
		case SHUNT_DPA_SET_TUNNEL:
			break;
		default:
			return 0;
		}
	}
	return 0;
}

/* One action before the output. SET_TUNNEL only sets `*tun_id`, the tun_id the output uses. */
static __always_inline int execute_action(struct xdp_md *ctx, const struct shunt_dp_action *a, __u64 *tun_id)
{
	switch (a->kind) {
	case SHUNT_DPA_SET_ETH_SRC:
		return act_set_mac(ctx, a, 6);
	case SHUNT_DPA_SET_ETH_DST:
		return act_set_mac(ctx, a, 0);
	case SHUNT_DPA_SET_VLAN:
		return act_set_vlan(ctx, a->vid);
	case SHUNT_DPA_POP_VLAN:
		return act_pop_vlan(ctx);
	case SHUNT_DPA_DEC_TTL:
		return act_dec_ttl(ctx);
	case SHUNT_DPA_SET_TUNNEL:
		*tun_id = a->tun_id;
		return ACT_OK;
	default:
		/* Only if the entry was rewritten since executable_output() read it: skip. */
		return ACT_OK;
	}
}

/* The `n` actions of `e` but the last (the output, see executable_output), in order, on the
 * frame in ctx. Stops at the first that fails: ACT_TTL_EXPIRED, or ACT_FAILED when
 * bpf_xdp_adjust_head refused (no headroom) and the frame may be half-modified. */
static __always_inline int execute_actions(struct xdp_md *ctx, const struct shunt_cache_entry *e, __u32 n,
					   __u64 *tun_id)
{
	for (__u32 i = 0; i < SHUNT_FLOW_MAX_ACTIONS - 1; i++) {
		if (i + 1 >= n)
			break;
		int rc = execute_action(ctx, &e->actions[i], tun_id);
		if (rc != ACT_OK)
			return rc;
	}
	return ACT_OK;
}

#endif /* __SHUNT_BPF_ACTIONS_H */
