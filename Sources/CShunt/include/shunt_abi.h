/* SPDX-License-Identifier: Apache-2.0 */
/*
 * shunt_abi.h: the one ABI shared by the BPF programs in BPF/ and the Swift code.
 *
 * Included by BPF C (clang -target bpf) and by the CShunt module, so it may use only
 * <linux/types.h>. Numbers here are stable: a retired value becomes UNUSED, never reused.
 */
#ifndef __SHUNT_ABI_H
#define __SHUNT_ABI_H

#include <linux/types.h>

/* Why a received frame did not leave, or why one copy of it did not. Shown in statistics
 * under the names in ShuntCore/DropReason.swift (a test checks the two lists agree). */
enum shunt_drop_reason {
	SHUNT_DROP_NONE = 0,
	SHUNT_DROP_KERNEL_RING_FULL = 1,  /* PACKET_STATISTICS tp_drops: RX ring had no room */
	SHUNT_DROP_TX_RING_FULL = 2,      /* no free frame in the output TX ring */
	SHUNT_DROP_TOO_LARGE = 3,         /* frame longer than the RX snap or the TX frame */
	SHUNT_DROP_RUNT = 4,              /* shorter than an Ethernet header where one is needed */
	SHUNT_DROP_NO_OUTPUT = 5,         /* the pipeline chose no output (e.g. learned on in_port) */
	SHUNT_DROP_RING_UNREAD = 6,       /* in the RX ring when the forwarder stopped */
	SHUNT_DROP_TX_ERROR = 7,          /* the kernel rejected the frame (TP_STATUS_WRONG_FORMAT) */
	SHUNT_DROP_OUTGOING = 8,          /* a frame the host sent out of the port, not one it received */
	SHUNT_DROP__MAX
};

/* The traffic generator stamps this into the UDP payload of every frame it sends. It must fit
 * the smallest frame: a 60-byte frame (64 on the wire) has 60 - 42 = 18 bytes of UDP payload,
 * hence 16 bytes, a 32-bit sequence (the sink compares sequences modulo 2^32) and no stream id. */
struct shunt_probe {
	__u32 magic;      /* SHUNT_PROBE_MAGIC, network byte order */
	__u32 sequence;   /* sequence number, from 0, wrapping at 2^32 */
	__u64 sent_ns;    /* CLOCK_MONOTONIC at send (bpf_ktime_get_ns) */
};
#define SHUNT_PROBE_MAGIC 0x5348554eU /* "SHUN" */

/* Offset of struct shunt_probe in generated frames: Ethernet 14 + IPv4 20 + UDP 8. */
#define SHUNT_PROBE_OFFSET 42

/* Configuration of xdp_gen (read-only data, set before load). */
struct shunt_gen_config {
	__u32 stream;     /* reserved: not carried by the (16-byte) probe */
	__u32 flows;      /* UDP source ports cycle over this many values */
	__u16 base_sport; /* host byte order */
	__u16 pad;
};

/* The state of xdp_gen: the one element of its array map gen_state. Userspace writes the
 * pacing fields before the run; the program keeps the rest. The program is run by one thread at
 * a time (BPF_PROG_TEST_RUN), so plain updates are enough. */
struct shunt_gen_state {
	__u64 next_seq;       /* frames sent (XDP_TX) so far: the sequence of the next one */
	__u64 limit;          /* send at most this many frames, then drop (0: no limit) */
	__u64 interval_ns;    /* pacing: gap between frames, whole nanoseconds (with frac 0: flat out) */
	__u32 interval_frac;  /*         and its fraction, in units of 2^-32 ns */
	__u32 due_frac;       /* fraction of due_ns */
	__u64 due_ns;         /* when the next frame is due (0: at the first run) */
	__u64 max_lag_ns;     /* a frame more than this late moves the schedule up instead of bursting */
	__u64 lag_skips;      /* how often the schedule moved up */
	__u64 skipped_ns;     /* by how much in total */
	__u64 first_ns;       /* bpf_ktime_get_ns() of the first frame sent */
	__u64 last_ns;        /* and of the last */
};

/* The sink's latency histogram: 1 us buckets up to SHUNT_LAT_LINEAR_US, then one bucket per
 * power of two (log2 of microseconds) up to SHUNT_LAT_BUCKETS. */
#define SHUNT_LAT_LINEAR_US 4096
#define SHUNT_LAT_LOG_BUCKETS 24
#define SHUNT_LAT_BUCKETS (SHUNT_LAT_LINEAR_US + SHUNT_LAT_LOG_BUCKETS)

/* Per-CPU counters of xdp_sink. */
struct shunt_sink_counters {
	__u64 packets;
	__u64 bytes;
	__u64 probes;      /* packets that carried a struct shunt_probe */
	__u64 max_seq;     /* highest sequence number seen + 1, extended past 2^32 */
	__u64 reordered;   /* probes whose sequence was not above the highest seen on that CPU */
};

#endif /* __SHUNT_ABI_H */
