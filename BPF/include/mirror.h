/* SPDX-License-Identifier: GPL-2.0 */
/*
 * mirror.h: port mirroring in the fast path (docs/design/0012-port-mirroring.md). A mirrored
 * flow leaves by a broadcast over its group's DEVMAP_HASH (maps.h), and each copy is counted
 * in mirror_stats for its session slot.
 */
#ifndef __SHUNT_BPF_MIRROR_H
#define __SHUNT_BPF_MIRROR_H

#include "compiler.h"
#include "shunt_abi.h"
#include "maps.h"

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

#endif /* __SHUNT_BPF_MIRROR_H */
