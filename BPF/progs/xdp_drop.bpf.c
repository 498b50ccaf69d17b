// SPDX-License-Identifier: GPL-2.0
/* Drops every frame. The live-frames probe runs it once (BPF_PROG_TEST_RUN with
 * BPF_F_TEST_XDP_LIVE_FRAMES): whether the kernel accepts the call decides which generator
 * engine `shunt gen --engine auto` picks, and nothing leaves any interface while it asks. */
#include "compiler.h"

SEC("xdp")
int xdp_drop(struct xdp_md *ctx)
{
	return XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";
