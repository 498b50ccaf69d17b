/* SPDX-License-Identifier: GPL-2.0 */
/*
 * parse.h: the flow key of a frame (struct shunt_flow_key): Ethernet, one VLAN tag, IPv4,
 * IPv6 with its extension headers, ARP and the L4 ports. Every read is bounds-checked first.
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
#ifndef __SHUNT_BPF_PARSE_H
#define __SHUNT_BPF_PARSE_H

#include "compiler.h"
#include "shunt_abi.h"
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

#endif /* __SHUNT_BPF_PARSE_H */
