/* SPDX-License-Identifier: GPL-2.0 */
/*
 * tunnel.h: VXLAN encapsulation and decapsulation for xdp_flowcache (the fast path of
 * tunnel ports, docs/design/0013-vxlan-fast-path.md); its maps are in maps.h.
 *
 * The outer header must be byte for byte what ShuntCore's VXLAN.writeOuterHeader writes for
 * the same packet (a BPF_PROG_TEST_RUN test compares them). The one field that differs by
 * design is the IPv4 identification of frames without DF: random here, a per-worker counter
 * in Swift (with DF it is 0 in both).
 */
#ifndef __SHUNT_BPF_TUNNEL_H
#define __SHUNT_BPF_TUNNEL_H

#include "compiler.h"
#include "shunt_abi.h"
#include "maps.h"
#include <linux/if_ether.h>
#include <linux/in.h>

enum { VXLAN_ENCAP_OK = 0, VXLAN_ENCAP_FAILED = 1, VXLAN_ENCAP_MTU = 2 };

/* The outer UDP checksum covers the whole inner frame: at most this many bytes of UDP datagram
 * are summed; a longer one (jumbo frames) is left to the slow path. */
#define VXLAN_CSUM_MAX_BYTES 9216

/* The one's complement sum of the frame from `offset` (even) to its end, in 16-bit words as
 * loaded (host order; folded and stored the same way it is the network-order checksum,
 * RFC 1071). A global function: the verifier checks its loop once, not on every path. */
__noinline int vxlan_sum_from(struct xdp_md *ctx, __u32 offset)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 sum = 0;

	if (offset > 64)
		return 0;
	__u8 *p = data + offset;
	for (int i = 0; i < VXLAN_CSUM_MAX_BYTES / 2; i++) {
		if ((void *)(p + 2) > data_end)
			break;
		sum += *(__u16 *)p;
		p += 2;
	}
	if ((void *)(p + 1) <= data_end)
		sum += *p; /* an odd last byte: the high byte of a word padded with zero */
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (int)sum;
}

static __always_inline int vxlan_is_underlay(__u32 port)
{
	__u32 *flag = bpf_map_lookup_elem(&underlay_ports, &port);
	return flag && *flag;
}

/* FlowKey.hash64 of ShuntCore (a multiply-xor over the key's nine 64-bit words, loaded in host
 * order), folded to 32 bits as the slow path folds it for the source port. */
static __always_inline __u32 vxlan_flow_hash(const struct shunt_flow_key *key)
{
	const __u64 *w = (const __u64 *)key;
	__u64 h = 0x9E3779B97F4A7C15ULL;

#pragma unroll
	for (int i = 0; i < (int)(sizeof(*key) / 8); i++) {
		h = (h ^ w[i]) * 0xFF51AFD7ED558CCDULL;
		h ^= h >> 32;
	}
	return (__u32)(h ^ (h >> 32));
}

/* VXLAN.sourcePort: the hash spread over [min, max) by a multiply-shift. */
static __always_inline __u16 vxlan_source_port(__u32 hash, __u16 min, __u16 max)
{
	if (max <= min)
		return min;
	__u32 h = hash ^ (hash << 16);
	return (__u16)((((__u64)h * (__u32)(max - min)) >> 32) + min);
}

/* The tunnel port that takes this frame, 0 if none. `outer` is the frame's key, already known
 * to be untagged, unfragmented IPv4/UDP on an underlay port. Only the plain layout is taken
 * here (IHL 5, no bytes after the UDP datagram, I flag set); everything else, and every frame
 * no tunnel takes, goes on as an ordinary frame: it misses the cache (the slow path installs
 * no entry for frames to a VTEP) and goes up to be decapsulated or counted there. */
static __always_inline __u32 vxlan_decap_port(void *data, void *data_end, const struct shunt_flow_key *outer,
					      __u32 *vni)
{
	__u8 *ip = data + 14;

	if (data + SHUNT_VXLAN_OVERHEAD + 14 > data_end)
		return 0;
	if (ip[0] != 0x45)
		return 0;
	__u32 total = bpf_ntohs(*(__be16 *)(ip + 2));
	if (14 + total != (__u32)(data_end - data))
		return 0;
	__u8 *udp = ip + 20;
	if (bpf_ntohs(*(__be16 *)(udp + 4)) != total - 20)
		return 0;
	__u8 *vx = udp + 8;
	if (!(vx[0] & SHUNT_VXLAN_FLAG_I))
		return 0;

	struct shunt_tunnel_endpoint ep;
	__builtin_memset(&ep, 0, sizeof(ep));
	ep.underlay_port = outer->in_port;
	ep.vni = ((__u32)vx[4] << 16) | ((__u32)vx[5] << 8) | vx[6];
	__builtin_memcpy(&ep.local_ip, outer->nw_dst, 4);
	__builtin_memcpy(&ep.remote_ip, outer->nw_src, 4);
	ep.dst_port = outer->tp_dst;
	*vni = ep.vni;
	__u32 *port = bpf_map_lookup_elem(&tunnel_endpoints, &ep);
	if (!port) {
		ep.vni = SHUNT_TUNNEL_VNI_FLOW;
		port = bpf_map_lookup_elem(&tunnel_endpoints, &ep);
	}
	return port ? *port : 0;
}

/* VXLAN for a tunnel port: 1 when a tunnel takes the frame, and then `key` (of the outer frame)
 * is reset for the inner frame's (in_port = the tunnel port, tun_id = the VNI; parse_frame at
 * SHUNT_VXLAN_OVERHEAD fills in the rest) and `*underlay` is the port it arrived on. 0 for
 * every other frame, whose key and `*underlay` are left alone. The frame is not stripped
 * (vxlan_strip does that on a cache hit: a miss goes up whole). */
static __always_inline int vxlan_inner_key(void *data, void *data_end, struct shunt_flow_key *key, __u32 *underlay)
{
	if (key->dl_type != bpf_htons(ETH_P_IP) || key->nw_proto != IPPROTO_UDP || key->vlan_tci || key->nw_frag ||
	    !vxlan_is_underlay(key->in_port))
		return 0;
	__u32 vni = 0;
	__u32 tunnel_port = vxlan_decap_port(data, data_end, key, &vni);
	if (!tunnel_port)
		return 0;
	*underlay = key->in_port;
	__builtin_memset(key, 0, sizeof(*key));
	key->in_port = tunnel_port;
	key->tun_id = vni;
	return 1;
}

/* Removes the outer headers of a frame vxlan_inner_key took: 0, or bpf_xdp_adjust_head's error. */
static __always_inline long vxlan_strip(struct xdp_md *ctx)
{
	return bpf_xdp_adjust_head(ctx, SHUNT_VXLAN_OVERHEAD);
}

/* The tunnel behind output port `port`, or NULL when it is no tunnel port. */
static __always_inline const struct shunt_tunnel_port *vxlan_tunnel(__u32 port)
{
	if (port == 0 || port > SHUNT_MAX_PORTS)
		return 0;
	const struct shunt_tunnel_port *t = bpf_map_lookup_elem(&tunnel_ports, &port);
	if (!t || t->port != port)
		return 0;
	return t;
}

/* Whether the fast path sends an inner frame of `len` bytes through `t` now. It leaves through
 * the underlay once the slow path has resolved the remote's next hop; until then the slow path
 * sends the packet, and its ARP resolves the next hop (so does a jumbo datagram whose outer UDP
 * checksum is wanted). A frame too large for the underlay goes up too: the slow path counts
 * tunnel_mtu and answers a sender with DF. (A VLAN push may still make a frame too large:
 * vxlan_encap checks again.) */
static __always_inline int vxlan_can_send(const struct shunt_tunnel_port *t, __u64 len)
{
	if (!(t->flags & SHUNT_TUNNEL_NEXT_HOP) ||
	    ((t->flags & SHUNT_TUNNEL_UDP_CSUM) && len + 16 + 4 > VXLAN_CSUM_MAX_BYTES))
		return 0;
	return len + SHUNT_VXLAN_OVERHEAD - 14 <= t->underlay_mtu;
}

/* Puts the outer header in front of the frame (VXLAN.writeOuterHeader). `hash` is
 * vxlan_flow_hash of the packet's key; `tun_id` the tun_id in effect at the output. */
static __always_inline int vxlan_encap(struct xdp_md *ctx, const struct shunt_tunnel_port *t, __u64 tun_id,
				       __u32 hash)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 inner = data_end - data;

	/* The outer IPv4 packet is the inner frame plus 36 bytes. */
	if (inner + SHUNT_VXLAN_OVERHEAD - 14 > t->underlay_mtu)
		return VXLAN_ENCAP_MTU;
	__u32 local = bpf_ntohl(t->local_ip);
	__u32 remote = bpf_ntohl(t->remote_ip);
	__u16 dst_port = t->dst_port;
	__u16 sport = vxlan_source_port(hash, t->src_port_min, t->src_port_max);
	__u32 vni = t->vni == SHUNT_TUNNEL_VNI_FLOW ? (__u32)tun_id : t->vni;
	vni &= 0xffffff;
	int df = t->flags & SHUNT_TUNNEL_DF;
	__u16 ttl_proto = ((__u16)t->ttl << 8) | IPPROTO_UDP;

	if (bpf_xdp_adjust_head(ctx, -SHUNT_VXLAN_OVERHEAD))
		return VXLAN_ENCAP_FAILED;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	if (data + SHUNT_VXLAN_OVERHEAD > data_end)
		return VXLAN_ENCAP_FAILED;

	/* `t` is a map value: still valid after bpf_xdp_adjust_head, which moves only the packet. */
	__builtin_memcpy(data, t->dst_mac, 6);
	__builtin_memcpy(data + 6, t->src_mac, 6);
	/* 16-bit stores from here: the outer IPv4 header is only 2-byte aligned. */
	__u16 *w = data;
	w[6] = bpf_htons(ETH_P_IP);

	__u16 tot_len = (__u16)(inner + SHUNT_VXLAN_OVERHEAD - 14);
	__u16 id = df ? 0 : (__u16)bpf_get_prandom_u32();
	__u16 frag = df ? 0x4000 : 0;
	__u32 sum = 0x4500 + tot_len + id + frag + ttl_proto + (local >> 16) + (local & 0xffff) + (remote >> 16) +
		    (remote & 0xffff);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	w[7] = bpf_htons(0x4500);
	w[8] = bpf_htons(tot_len);
	w[9] = bpf_htons(id);
	w[10] = bpf_htons(frag);
	w[11] = bpf_htons(ttl_proto);
	w[12] = bpf_htons((__u16)~sum);
	w[13] = bpf_htons(local >> 16);
	w[14] = bpf_htons(local & 0xffff);
	w[15] = bpf_htons(remote >> 16);
	w[16] = bpf_htons(remote & 0xffff);

	w[17] = bpf_htons(sport);
	w[18] = dst_port;
	w[19] = bpf_htons((__u16)(inner + 16));
	w[20] = 0; /* UDP checksum: zero over IPv4 unless the tunnel asks for it */

	w[21] = bpf_htons(SHUNT_VXLAN_FLAG_I << 8);
	w[22] = 0;
	w[23] = bpf_htons(vni >> 8);
	w[24] = bpf_htons((vni & 0xff) << 8);

	if (t->flags & SHUNT_TUNNEL_UDP_CSUM) {
		/* Pseudo-header (addresses, protocol, UDP length) plus the datagram, all as loaded. */
		__u32 sum = (__u32)w[13] + w[14] + w[15] + w[16] + bpf_htons(IPPROTO_UDP) + w[19];
		sum += (__u32)vxlan_sum_from(ctx, 34);
		sum = (sum & 0xffff) + (sum >> 16);
		sum = (sum & 0xffff) + (sum >> 16);
		__u16 check = (__u16)~sum;
		data = (void *)(long)ctx->data;
		data_end = (void *)(long)ctx->data_end;
		if (data + SHUNT_VXLAN_OVERHEAD > data_end)
			return VXLAN_ENCAP_FAILED;
		((__u16 *)data)[20] = check ? check : 0xffff;
	}
	return VXLAN_ENCAP_OK;
}

#endif /* __SHUNT_BPF_TUNNEL_H */
