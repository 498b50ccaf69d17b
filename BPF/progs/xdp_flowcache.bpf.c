// SPDX-License-Identifier: GPL-2.0
/* xdp_flowcache: the kernel half of the flow cache (the fast path).
 *
 * For every frame: find the Shunt port of the ingress interface, extract the exact-match key
 * (struct shunt_flow_key), look it up in flow_cache and, on a hit, execute the entry's actions
 * and redirect the frame to the output port through the tx_ports DEVMAP. Everything else goes
 * up to the Swift slow path with XDP_PASS (a miss becomes an upcall there). VXLAN tunnel ports
 * (tunnel.h): frames for a tunnel on its underlay are looked up by their inner key and
 * stripped on a hit; an output to a tunnel port is encapsulated and sent on the underlay.
 * The key must be byte for byte the slow path's: the rules are in parse.h.
 */
#include "compiler.h"
#include "shunt_abi.h"
#include "maps.h"
#include "parse.h"
#include "actions.h"
#include "tunnel.h"
#include "mirror.h"
#include "counters.h"

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
	if (!in_port || !*in_port)
		return pass_up(&st->not_a_port);

	struct shunt_flow_key key;
	__builtin_memset(&key, 0, sizeof(key));
	key.in_port = *in_port;
	if (parse_frame(data, data_end, &key) != PARSE_OK)
		return pass_up(&st->malformed);

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
			if (parse_frame(data + SHUNT_VXLAN_OVERHEAD, data_end, &key) != PARSE_OK)
				return pass_up(&st->malformed);
			len -= SHUNT_VXLAN_OVERHEAD;
		}
	}

	struct shunt_cache_entry *e = bpf_map_lookup_elem(&flow_cache, &key);
	if (!e)
		return pass_up(&st->misses);
	if (e->flags & SHUNT_CACHE_USERSPACE)
		return pass_userspace(st, e);
	struct shunt_port_counters *in_pc = port_counters(st, key.in_port);

	__u32 n = e->n_actions;
	if (n == 0) {
		if (decap_underlay)
			count_decap(st, decap_underlay, len);
		__u32 reason = e->drop_reason;
		if (reason >= SHUNT_DROP__MAX)
			reason = SHUNT_DROP_FLOW_DROP;
		count_hit(e, st, len);
		count_rx(in_pc, len);
		return drop(st, in_pc, reason);
	}

	/* Decide everything before touching the frame, so a frame passed up is the one received. */
	__u32 out_port = executable_output(e, n);
	if (!out_port) /* the slow path should have marked this entry USERSPACE */
		return pass_up(&st->userspace);
	/* An output to a tunnel port leaves through its underlay, once the slow path has resolved
	 * the remote's next hop; until then the slow path sends the packet, and its ARP resolves
	 * the next hop (so does a jumbo datagram whose outer UDP checksum is wanted). */
	const struct shunt_tunnel_port *tunnel = vxlan_tunnel(out_port);
	__u32 target = out_port;
	if (tunnel) {
		if (!(tunnel->flags & SHUNT_TUNNEL_NEXT_HOP) ||
		    ((tunnel->flags & SHUNT_TUNNEL_UDP_CSUM) && len + 16 + 4 > VXLAN_CSUM_MAX_BYTES))
			return pass_userspace(st, e);
		/* Too large for the underlay: the slow path counts tunnel_mtu and answers a sender
		 * with DF. (A VLAN push may still make a frame too large: dropped below.) */
		if (len + SHUNT_VXLAN_OVERHEAD - 14 > tunnel->underlay_mtu)
			return pass_userspace(st, e);
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
	if (verdict != XDP_REDIRECT)
		return pass_up(&st->redirect_errors);

	count_hit(e, st, len);
	count_rx(in_pc, len);
	__u64 tun_id = key.tun_id;
	if (decap_underlay) {
		count_decap(st, decap_underlay, len);
		if (bpf_xdp_adjust_head(ctx, SHUNT_VXLAN_OVERHEAD))
			return drop(st, in_pc, SHUNT_DROP_TX_ERROR);
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
		if (rc == ACT_TTL_EXPIRED)
			return drop(st, in_pc, SHUNT_DROP_TTL_EXPIRED);
		/* bpf_xdp_adjust_head refused (no headroom): the frame may be half-modified, so it
		 * cannot go up; the kernel refused to transmit it as modified. */
		if (rc != ACT_OK)
			return drop(st, in_pc, SHUNT_DROP_TX_ERROR);
	}

	if (tunnel) {
		__u64 inner = (__u64)((long)ctx->data_end - (long)ctx->data);
		int rc = vxlan_encap(ctx, tunnel, tun_id, vxlan_flow_hash(&key));
		if (rc != VXLAN_ENCAP_OK)
			return drop(st, in_pc, rc == VXLAN_ENCAP_MTU ? SHUNT_DROP_TUNNEL_MTU : SHUNT_DROP_TX_ERROR);
		count_encap(st, out_port, tunnel->underlay_port, inner);
		return XDP_REDIRECT;
	}

	__u64 out_len = (__u64)((long)ctx->data_end - (long)ctx->data);
	count_tx(st, out_port, out_len);
	/* Every copy is the frame as it leaves: egress copies after the edits, and ingress
	 * copies only of flows without edits (the slow path keeps the others). */
	if (mirror_group)
		count_mirrors(mirror_sessions, out_len);
	return XDP_REDIRECT;
}

char LICENSE[] SEC("license") = "GPL";
