// SPDX-License-Identifier: GPL-2.0
/* xdp_flowcache: the kernel half of the flow cache (the fast path).
 *
 * For every frame: find the Shunt port of the ingress interface, extract the exact-match key
 * (struct shunt_flow_key), look it up in flow_cache and, on a hit, execute the entry's actions
 * and redirect the frame to the output port through the tx_ports DEVMAP. Everything else goes
 * up to the Swift slow path with XDP_PASS (a miss becomes an upcall there). VXLAN tunnel ports
 * (tunnel.h): frames for a tunnel on its underlay are looked up by their inner key and
 * stripped on a hit; an output to a tunnel port is encapsulated and sent on the underlay.
 *
 * The parser must produce byte-identical keys to ShuntCore/FlowKeyExtractor.swift; the rules
 * (a tested contract, see FlowKeyExtractor for the same list):
 *   - Ethernet (14 bytes), then at most one 802.1Q / 802.1ad tag: vlan_tci = TCI | PRESENT,
 *     dl_type = the EtherType after it. A second tag is not parsed (dl_type = its TPID).
 *   - EtherType < 0x600 (an 802.3 length): dl_type = SHUNT_DL_TYPE_NONE, nothing more.
 *   - IPv4: version 4, ihl >= 5, the header and tot_len (>= header) inside the frame. Options
 *     skipped. MF or offset: FRAG_ANY; offset != 0: FRAG_LATER and no L4.
 *   - IPv6: version 6, 40 + payload_len inside the frame; up to SHUNT_IPV6_MAX_EXT_HDRS
 *     hop-by-hop / routing / destination options / fragment headers (more is malformed).
 *     A fragment header sets FRAG_ANY; a non-zero offset FRAG_LATER, nw_proto = its next
 *     header, and no L4.
 *   - L4 inside the IP payload: TCP needs 20 bytes, UDP 8, SCTP 12, ICMP / ICMPv6 4.
 *   - ARP: the 8-byte fixed header; for Ethernet/IPv4 ARP (1, 0x0800, 6, 4) all 28 bytes, and
 *     nw_proto = opcode low byte, nw_src = SPA, nw_dst = TPA.
 *   Anything short of what a rule needs is malformed: counted, passed up (the slow path counts
 *   and handles it; the cache is never consulted for it).
 */
#include "compiler.h"
#include "shunt_abi.h"
#include "maps.h"
#include "tunnel.h"
#include <linux/if_ether.h>
#include <linux/in.h>

#ifndef ETH_P_8021AD
#define ETH_P_8021AD 0x88A8
#endif
#define NEXTHDR_HOP 0
#define NEXTHDR_ROUTING 43
#define NEXTHDR_FRAGMENT 44
#define NEXTHDR_DEST 60
#define PROTO_ICMPV6 58

/* XDP_REDIRECT, or XDP_PASS for a group that does not exist. A broadcast records the map
 * only: the copies are made after the program returns, from the frame as it is then. */
static __always_inline long mirror_redirect(__u32 group)
{
	switch (group) {
	case 1: return bpf_redirect_map(&mirror_group_1, 0, BPF_F_BROADCAST);
	case 2: return bpf_redirect_map(&mirror_group_2, 0, BPF_F_BROADCAST);
	case 3: return bpf_redirect_map(&mirror_group_3, 0, BPF_F_BROADCAST);
	case 4: return bpf_redirect_map(&mirror_group_4, 0, BPF_F_BROADCAST);
	case 5: return bpf_redirect_map(&mirror_group_5, 0, BPF_F_BROADCAST);
	case 6: return bpf_redirect_map(&mirror_group_6, 0, BPF_F_BROADCAST);
	case 7: return bpf_redirect_map(&mirror_group_7, 0, BPF_F_BROADCAST);
	case 8: return bpf_redirect_map(&mirror_group_8, 0, BPF_F_BROADCAST);
	default: return XDP_PASS;
	}
}

/* One copy of `len` bytes for each session slot in `sessions`. */
static __always_inline void count_mirrors(__u64 sessions, __u64 len)
{
	for (__u32 s = 0; s < SHUNT_MIRROR_SLOTS; s++) {
		if (!sessions)
			break;
		if (!(sessions & 1)) {
			sessions >>= 1;
			continue;
		}
		sessions >>= 1;
		__u32 slot = s;
		struct shunt_mirror_counters *c = bpf_map_lookup_elem(&mirror_stats, &slot);
		if (!c)
			continue;
		c->selected++;
		c->selected_bytes += len;
		c->mirrored++;
		c->mirrored_bytes += len;
	}
}

enum { PARSE_OK = 0, PARSE_MALFORMED = 1 };

static __always_inline int is_vlan_tpid(__be16 type)
{
	return type == bpf_htons(ETH_P_8021Q) || type == bpf_htons(ETH_P_8021AD);
}

/* L4 ports or ICMP type/code. `avail` is the number of IP payload bytes left at `pos`; the IP
 * parser has checked that they are all inside the frame. */
static __always_inline int parse_l4(void *pos, void *data_end, __u32 avail, __u8 proto, int v6,
				    struct shunt_flow_key *key)
{
	__u32 need;

	if (proto == IPPROTO_TCP)
		need = 20;
	else if (proto == IPPROTO_UDP)
		need = 8;
	else if (proto == IPPROTO_SCTP)
		need = 12;
	else if ((!v6 && proto == IPPROTO_ICMP) || (v6 && proto == PROTO_ICMPV6))
		need = 4;
	else
		return PARSE_OK;
	if (avail < need)
		return PARSE_MALFORMED;
	/* Implied by the check above and the IP length check, but the verifier does not track
	 * that: it needs this check, and barrier_var keeps clang from deleting it as redundant. */
	barrier_var(pos);
	if (pos + 4 > data_end)
		return PARSE_MALFORMED;
	if (need == 4) {
		__u8 *icmp = pos;
		key->tp_src = bpf_htons(icmp[0]);
		key->tp_dst = bpf_htons(icmp[1]);
	} else {
		__be16 *ports = pos;
		key->tp_src = ports[0];
		key->tp_dst = ports[1];
	}
	return PARSE_OK;
}

static __always_inline int parse_ipv4(void *l3, void *data_end, struct shunt_flow_key *key)
{
	__u8 *ip = l3;

	if (l3 + 20 > data_end)
		return PARSE_MALFORMED;
	if ((ip[0] >> 4) != 4)
		return PARSE_MALFORMED;
	__u32 hlen = (ip[0] & 0x0f) * 4;
	__u32 tot_len = bpf_ntohs(*(__be16 *)(ip + 2));
	if (hlen < 20 || tot_len < hlen)
		return PARSE_MALFORMED;
	if (l3 + tot_len > data_end)
		return PARSE_MALFORMED;
	key->nw_proto = ip[9];
	__builtin_memcpy(key->nw_src, ip + 12, 4);
	__builtin_memcpy(key->nw_dst, ip + 16, 4);
	__u16 frag = bpf_ntohs(*(__be16 *)(ip + 6));
	if (frag & 0x3fff) { /* MF or a fragment offset */
		key->nw_frag = SHUNT_FRAG_ANY;
		if (frag & 0x1fff) {
			key->nw_frag |= SHUNT_FRAG_LATER;
			return PARSE_OK;
		}
	}
	return parse_l4(l3 + hlen, data_end, tot_len - hlen, ip[9], 0, key);
}

static __always_inline int parse_ipv6(void *l3, void *data_end, struct shunt_flow_key *key)
{
	__u8 *ip = l3;

	if (l3 + 40 > data_end)
		return PARSE_MALFORMED;
	if ((ip[0] >> 4) != 6)
		return PARSE_MALFORMED;
	__u32 avail = bpf_ntohs(*(__be16 *)(ip + 4));
	if (l3 + 40 + avail > data_end)
		return PARSE_MALFORMED;
	__builtin_memcpy(key->nw_src, ip + 8, 16);
	__builtin_memcpy(key->nw_dst, ip + 24, 16);
	__u8 next = ip[6];
	void *pos = l3 + 40;

#pragma unroll
	for (int i = 0; i < SHUNT_IPV6_MAX_EXT_HDRS; i++) {
		if (next != NEXTHDR_HOP && next != NEXTHDR_ROUTING && next != NEXTHDR_DEST &&
		    next != NEXTHDR_FRAGMENT)
			break;
		if (avail < 8)
			return PARSE_MALFORMED;
		/* Implied by avail; kept for the verifier (see parse_l4). */
		barrier_var(pos);
		if (pos + 8 > data_end)
			return PARSE_MALFORMED;
		__u8 *ext = pos;
		__u32 len;
		if (next == NEXTHDR_FRAGMENT) {
			len = 8;
			key->nw_frag = SHUNT_FRAG_ANY;
			if (bpf_ntohs(*(__be16 *)(ext + 2)) & 0xfff8) {
				key->nw_frag |= SHUNT_FRAG_LATER;
				key->nw_proto = ext[0];
				return PARSE_OK;
			}
		} else {
			len = ((__u32)ext[1] + 1) * 8;
			if (avail < len)
				return PARSE_MALFORMED;
		}
		next = ext[0];
		pos += len;
		avail -= len;
	}
	if (next == NEXTHDR_HOP || next == NEXTHDR_ROUTING || next == NEXTHDR_DEST ||
	    next == NEXTHDR_FRAGMENT)
		return PARSE_MALFORMED; /* more extension headers than we look through */
	key->nw_proto = next;
	return parse_l4(pos, data_end, avail, next, 1, key);
}

static __always_inline int parse_arp(void *l3, void *data_end, struct shunt_flow_key *key)
{
	__u8 *arp = l3;

	if (l3 + 8 > data_end)
		return PARSE_MALFORMED;
	if (*(__be16 *)arp != bpf_htons(1) || *(__be16 *)(arp + 2) != bpf_htons(ETH_P_IP) ||
	    arp[4] != 6 || arp[5] != 4)
		return PARSE_OK;
	if (l3 + 28 > data_end)
		return PARSE_MALFORMED;
	key->nw_proto = arp[7];
	__builtin_memcpy(key->nw_src, arp + 14, 4);
	__builtin_memcpy(key->nw_dst, arp + 24, 4);
	return PARSE_OK;
}

/* Fills everything of `key` but in_port, which must be zeroed (with its padding) before. */
static __always_inline int parse_frame(void *data, void *data_end, struct shunt_flow_key *key)
{
	__u8 *eth = data;

	if (data + 14 > data_end)
		return PARSE_MALFORMED;
	__builtin_memcpy(key->dl_dst, eth, 6);
	__builtin_memcpy(key->dl_src, eth + 6, 6);
	__be16 type = *(__be16 *)(eth + 12);
	void *l3 = data + 14;
	if (is_vlan_tpid(type)) {
		if (data + 18 > data_end)
			return PARSE_MALFORMED;
		key->vlan_tci = *(__be16 *)(eth + 14) | bpf_htons(SHUNT_VLAN_PRESENT);
		type = *(__be16 *)(eth + 16);
		l3 = data + 18;
	}
	if (bpf_ntohs(type) < 0x600) {
		key->dl_type = bpf_htons(SHUNT_DL_TYPE_NONE);
		return PARSE_OK;
	}
	key->dl_type = type;
	if (type == bpf_htons(ETH_P_IP))
		return parse_ipv4(l3, data_end, key);
	if (type == bpf_htons(ETH_P_IPV6))
		return parse_ipv6(l3, data_end, key);
	if (type == bpf_htons(ETH_P_ARP))
		return parse_arp(l3, data_end, key);
	return PARSE_OK;
}

/* ---- Actions. Each reloads the packet pointers: bpf_xdp_adjust_head invalidates them. ---- */

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

static __always_inline void count_hit(struct shunt_cache_entry *e, struct shunt_fastpath_stats *st,
				      __u64 len)
{
	__sync_fetch_and_add(&e->packets, 1);
	__sync_fetch_and_add(&e->bytes, len);
	/* Coarse (jiffies) time is enough for idle expiry and costs far less per packet. Same
	 * clock as CLOCK_MONOTONIC, which the revalidator compares it with. */
	e->last_used_ns = bpf_ktime_get_coarse_ns();
	st->hits++;
	st->hit_bytes += len;
}

SEC("xdp")
int xdp_flowcache(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u64 len = data_end - data;
	__u32 zero = 0;

	struct shunt_fastpath_stats *st = bpf_map_lookup_elem(&fastpath_stats, &zero);
	if (!st)
		return XDP_PASS; /* cannot happen: a one-element array */

	__u32 ifindex = ctx->ingress_ifindex;
	__u32 *in_port = ifindex < SHUNT_PORT_ARRAY_SIZE ? bpf_map_lookup_elem(&port_by_ifindex, &ifindex)
							 : bpf_map_lookup_elem(&port_of_ifindex, &ifindex);
	if (!in_port || !*in_port) {
		st->not_a_port++;
		return XDP_PASS;
	}

	struct shunt_flow_key key;
	__builtin_memset(&key, 0, sizeof(key));
	key.in_port = *in_port;
	if (parse_frame(data, data_end, &key) != PARSE_OK) {
		st->malformed++;
		return XDP_PASS;
	}

	/* VXLAN for a tunnel port: look up the inner frame's key (in_port = the tunnel port,
	 * tun_id = the VNI) instead. The frame is only stripped on a hit: a miss goes up whole. */
	__u32 decap_underlay = 0;
	if (key.dl_type == bpf_htons(ETH_P_IP) && key.nw_proto == IPPROTO_UDP && !key.vlan_tci && !key.nw_frag &&
	    vxlan_is_underlay(key.in_port)) {
		__u32 vni = 0;
		__u32 tunnel_port = vxlan_decap_port(data, data_end, &key, &vni);
		if (tunnel_port) {
			decap_underlay = key.in_port;
			__builtin_memset(&key, 0, sizeof(key));
			key.in_port = tunnel_port;
			key.tun_id = vni;
			if (parse_frame(data + SHUNT_VXLAN_OVERHEAD, data_end, &key) != PARSE_OK) {
				st->malformed++;
				return XDP_PASS;
			}
			len -= SHUNT_VXLAN_OVERHEAD;
		}
	}

	struct shunt_cache_entry *e = bpf_map_lookup_elem(&flow_cache, &key);
	if (!e) {
		st->misses++;
		return XDP_PASS;
	}
	if (e->flags & SHUNT_CACHE_USERSPACE) {
		/* In use, even though the slow path forwards it: not idle. */
		e->last_used_ns = bpf_ktime_get_coarse_ns();
		st->userspace++;
		return XDP_PASS;
	}

	/* in_port comes from our own map: always 1..SHUNT_MAX_PORTS; the check is for the verifier. */
	__u32 in_index = key.in_port;
	if (in_index > SHUNT_MAX_PORTS)
		in_index = 0;
	struct shunt_port_counters *in_pc = &st->ports[in_index];

	__u32 n = e->n_actions;
	if (n == 0) {
		if (decap_underlay)
			vxlan_count_decap(st, decap_underlay, len);
		__u32 reason = e->drop_reason;
		if (reason >= SHUNT_DROP__MAX)
			reason = SHUNT_DROP_FLOW_DROP;
		count_hit(e, st, len);
		st->drops[reason]++;
		in_pc->rx_packets++;
		in_pc->rx_bytes += len;
		in_pc->rx_drops[reason]++;
		return XDP_DROP;
	}

	/* Decide everything before touching the frame, so a frame passed up is the one received. */
	__u32 out_port = executable_output(e, n);
	if (!out_port) { /* the slow path should have marked this entry USERSPACE */
		st->userspace++;
		return XDP_PASS;
	}
	/* An output to a tunnel port leaves through its underlay, once the slow path has resolved
	 * the remote's next hop; until then the slow path sends the packet, and its ARP resolves
	 * the next hop (so does a jumbo datagram whose outer UDP checksum is wanted). */
	const struct shunt_tunnel_port *tunnel = vxlan_tunnel(out_port);
	__u32 target = out_port;
	if (tunnel) {
		if (!(tunnel->flags & SHUNT_TUNNEL_NEXT_HOP) ||
		    ((tunnel->flags & SHUNT_TUNNEL_UDP_CSUM) && len + 16 + 4 > VXLAN_CSUM_MAX_BYTES)) {
			e->last_used_ns = bpf_ktime_get_coarse_ns();
			st->userspace++;
			return XDP_PASS;
		}
		/* Too large for the underlay: the slow path counts tunnel_mtu and answers a sender
		 * with DF. (A VLAN push may still make a frame too large: dropped below.) */
		if (len + SHUNT_VXLAN_OVERHEAD - 14 > tunnel->underlay_mtu) {
			e->last_used_ns = bpf_ktime_get_coarse_ns();
			st->userspace++;
			return XDP_PASS;
		}
		target = tunnel->underlay_port;
	}
	/* Choose the target first: bpf_redirect_map only records it (the frame leaves after the
	 * program returns, as modified by then), and returns XDP_PASS when the port has no device,
	 * so such a frame goes up unmodified for the slow path to output or count. */
	/* Mirrored flows (never with a tunnel on either side: the slow path keeps those) leave
	 * by a broadcast to the output port and the analysis ports. */
	__u32 mirror_group = e->mirror_group;
	__u64 mirror_sessions = e->mirror_sessions;
	long verdict = mirror_group && !tunnel && !decap_underlay ? mirror_redirect(mirror_group)
								   : bpf_redirect_map(&tx_ports, target, XDP_PASS);
	if (verdict != XDP_REDIRECT) {
		st->redirect_errors++;
		return XDP_PASS;
	}

	count_hit(e, st, len);
	in_pc->rx_packets++;
	in_pc->rx_bytes += len;
	__u64 tun_id = key.tun_id;
	if (decap_underlay) {
		vxlan_count_decap(st, decap_underlay, len);
		if (bpf_xdp_adjust_head(ctx, SHUNT_VXLAN_OVERHEAD)) {
			st->drops[SHUNT_DROP_TX_ERROR]++;
			in_pc->rx_drops[SHUNT_DROP_TX_ERROR]++;
			return XDP_DROP;
		}
	}
	for (__u32 i = 0; i < SHUNT_FLOW_MAX_ACTIONS - 1; i++) {
		if (i + 1 >= n)
			break;
		const struct shunt_dp_action *a = &e->actions[i];
		int rc = ACT_OK;
		switch (a->kind) {
		case SHUNT_DPA_SET_ETH_SRC:
			rc = act_set_mac(ctx, a, 6);
			break;
		case SHUNT_DPA_SET_ETH_DST:
			rc = act_set_mac(ctx, a, 0);
			break;
		case SHUNT_DPA_SET_VLAN:
			rc = act_set_vlan(ctx, a->vid);
			break;
		case SHUNT_DPA_POP_VLAN:
			rc = act_pop_vlan(ctx);
			break;
		case SHUNT_DPA_DEC_TTL:
			rc = act_dec_ttl(ctx);
			break;
		case SHUNT_DPA_SET_TUNNEL:
			tun_id = a->tun_id;
			break;
		default:
			/* Only if the entry was rewritten since executable_output() read it: skip. */
			break;
		}
		if (rc == ACT_TTL_EXPIRED) {
			st->drops[SHUNT_DROP_TTL_EXPIRED]++;
			in_pc->rx_drops[SHUNT_DROP_TTL_EXPIRED]++;
			return XDP_DROP;
		}
		if (rc != ACT_OK) {
			/* bpf_xdp_adjust_head refused (no headroom): the frame may be half-modified,
			 * so it cannot go up; the kernel refused to transmit it as modified. */
			st->drops[SHUNT_DROP_TX_ERROR]++;
			in_pc->rx_drops[SHUNT_DROP_TX_ERROR]++;
			return XDP_DROP;
		}
	}

	if (tunnel) {
		__u64 inner = (__u64)((long)ctx->data_end - (long)ctx->data);
		int rc = vxlan_encap(ctx, tunnel, tun_id, vxlan_flow_hash(&key));
		if (rc != VXLAN_ENCAP_OK) {
			__u32 reason = rc == VXLAN_ENCAP_MTU ? SHUNT_DROP_TUNNEL_MTU : SHUNT_DROP_TX_ERROR;
			st->drops[reason]++;
			in_pc->rx_drops[reason]++;
			return XDP_DROP;
		}
		vxlan_count_encap(st, out_port, tunnel->underlay_port, inner);
		return XDP_REDIRECT;
	}

	__u64 out_len = (__u64)((long)ctx->data_end - (long)ctx->data);
	__u32 out_index = out_port;
	if (out_index <= SHUNT_MAX_PORTS) {
		struct shunt_port_counters *out_pc = &st->ports[out_index];
		out_pc->tx_packets++;
		out_pc->tx_bytes += out_len;
	}
	/* Every copy is the frame as it leaves: egress copies after the edits, and ingress
	 * copies only of flows without edits (the slow path keeps the others). */
	if (mirror_group)
		count_mirrors(mirror_sessions, out_len);
	return XDP_REDIRECT;
}

char LICENSE[] SEC("license") = "GPL";
