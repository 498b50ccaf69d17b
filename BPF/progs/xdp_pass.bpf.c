// SPDX-License-Identifier: GPL-2.0
/* Passes every frame to the stack. Loaded on a veth whose peer is the target of XDP redirects:
 * a veth delivers redirected frames only when its peer runs an XDP program (or has GRO on). */
#include "compiler.h"

SEC("xdp")
int xdp_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
