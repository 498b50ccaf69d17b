/* SPDX-License-Identifier: GPL-2.0 */
/*
 * maps.h: every map of the flow cache fast path (xdp_flowcache), included at the top of the
 * program. Swift opens them by these names (Sources/ShuntBPF/FlowCacheMaps.swift and
 * TunnelMaps.swift), so a rename breaks the slow path.
 *
 * libbpf creates every map an object defines, used or not: only xdp_flowcache includes this
 * header. The single-purpose programs (xdp_gen, xdp_sink, xdp_redirect) define their few maps
 * at the top of their own file.
 */
#ifndef __SHUNT_BPF_MAPS_H
#define __SHUNT_BPF_MAPS_H

#include "compiler.h"
#include "shunt_abi.h"

/* ---- The flow cache and the ports ---- */

/* Resized from userspace (bpf_map__set_max_entries) before load. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct shunt_flow_key);
	__type(value, struct shunt_cache_entry);
} flow_cache SEC(".maps");

/* ifindex -> Shunt port number (from 1; 0: not a port), for ifindexes below
 * SHUNT_PORT_ARRAY_SIZE: an array lookup the verifier inlines, cheaper than a hash per packet. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SHUNT_PORT_ARRAY_SIZE);
	__type(key, __u32);
	__type(value, __u32);
} port_by_ifindex SEC(".maps");

/* ifindex -> Shunt port number, for larger ifindexes. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SHUNT_MAX_PORTS);
	__type(key, __u32);
	__type(value, __u32);
} port_of_ifindex SEC(".maps");

/* The Shunt port of interface `ifindex` (0 or NULL: not a port). */
static __always_inline __u32 *port_of(__u32 ifindex)
{
	return ifindex < SHUNT_PORT_ARRAY_SIZE ? bpf_map_lookup_elem(&port_by_ifindex, &ifindex)
					       : bpf_map_lookup_elem(&port_of_ifindex, &ifindex);
}

/* Shunt port number -> device, the targets of bpf_redirect_map. */
struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP);
	__uint(max_entries, SHUNT_MAX_PORTS + 1);
	__type(key, __u32);
	__type(value, struct bpf_devmap_val);
} tx_ports SEC(".maps");

/* The fast path's counters (counters.h). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct shunt_fastpath_stats);
} fastpath_stats SEC(".maps");

/* ---- Port mirroring (mirror.h) ---- */

/* docs/design/0012-port-mirroring.md: a cache entry with mirror_group g leaves by a broadcast
 * over mirror_group_g, which holds the flow's output port and the analysis ports (Shunt port ->
 * device, as tx_ports). bpf_redirect_map takes its map as a constant, hence one map per group
 * and a switch (mirror_redirect). */
#define MIRROR_GROUP_MAP(n)                                      \
	struct {                                                 \
		__uint(type, BPF_MAP_TYPE_DEVMAP_HASH);          \
		__uint(max_entries, SHUNT_MAX_PORTS + 1);        \
		__type(key, __u32);                              \
		__type(value, struct bpf_devmap_val);            \
	} mirror_group_##n SEC(".maps")
MIRROR_GROUP_MAP(1);
MIRROR_GROUP_MAP(2);
MIRROR_GROUP_MAP(3);
MIRROR_GROUP_MAP(4);
MIRROR_GROUP_MAP(5);
MIRROR_GROUP_MAP(6);
MIRROR_GROUP_MAP(7);
MIRROR_GROUP_MAP(8);
_Static_assert(SHUNT_MIRROR_GROUPS == 8, "one mirror_group_N map per group");

/* By mirror session slot: the copies made here (bit s of an entry's mirror_sessions). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SHUNT_MIRROR_SLOTS);
	__type(key, __u32);
	__type(value, struct shunt_mirror_counters);
} mirror_stats SEC(".maps");

/* ---- VXLAN tunnel ports (tunnel.h, docs/design/0013-vxlan-fast-path.md) ---- */

/* Tunnel port number -> its parameters; an entry whose `port` is not its index is no tunnel.
 * Written by the slow path at start; it rewrites dst_mac and SHUNT_TUNNEL_NEXT_HOP whenever
 * its neighbour table resolves, changes or ages the remote VTEP's next hop. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SHUNT_MAX_PORTS + 1);
	__type(key, __u32);
	__type(value, struct shunt_tunnel_port);
} tunnel_ports SEC(".maps");

/* Which tunnel port takes a VXLAN frame (see struct shunt_tunnel_endpoint). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SHUNT_MAX_PORTS);
	__type(key, struct shunt_tunnel_endpoint);
	__type(value, __u32);
} tunnel_endpoints SEC(".maps");

/* Port number -> 1 when tunnels use the port as their underlay. An array lookup, so ports
 * without tunnels pay no hash lookup for their UDP traffic. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SHUNT_MAX_PORTS + 1);
	__type(key, __u32);
	__type(value, __u32);
} underlay_ports SEC(".maps");

#endif /* __SHUNT_BPF_MAPS_H */
