// SPDX-License-Identifier: GPL-2.0
/* The kernel's ceiling for forwarding between veths: every frame is redirected, untouched, to
 * the partner of the port it arrived on (ports paired 1<->2, 3<->4 as in xconnect). No parsing,
 * no lookup beyond the DEVMAP. Used by benchmarks as the reference for the XDP fast path. */
#include "compiler.h"

/* ifindex -> DEVMAP slot of the partner port. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u32);
} partner_of SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u32);
} out_ports SEC(".maps");

SEC("xdp")
int xdp_redirect(struct xdp_md *ctx)
{
	__u32 ifindex = ctx->ingress_ifindex;
	__u32 *slot = bpf_map_lookup_elem(&partner_of, &ifindex);

	if (!slot)
		return XDP_PASS;
	return bpf_redirect_map(&out_ports, *slot, XDP_PASS);
}

char LICENSE[] SEC("license") = "GPL";
