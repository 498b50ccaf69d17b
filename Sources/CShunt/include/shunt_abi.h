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
	SHUNT_DROP_NO_MATCH = 9,          /* no flow in a table matched (an OpenFlow table miss) */
	SHUNT_DROP_FLOW_DROP = 10,        /* the matching flows chose to drop (`drop` or no output) */
	SHUNT_DROP_RESUBMIT_LIMIT = 11,   /* resubmit chain deeper than SHUNT_MAX_RESUBMITS (a loop) */
	SHUNT_DROP_TTL_EXPIRED = 12,      /* dec_ttl on a packet whose TTL / hop limit was 0 or 1 */
	/* VXLAN tunnel ports (docs/design/0011-vxlan-tunnel-ports.md) */
	SHUNT_DROP_TUNNEL_MTU = 13,       /* encapsulated frame would exceed the underlay MTU */
	SHUNT_DROP_TUNNEL_NO_NEIGHBOUR = 14, /* remote VTEP's next-hop MAC not resolved yet (ARP sent) */
	SHUNT_DROP_TUNNEL_VNI = 15,       /* VXLAN from a known remote with a VNI no tunnel port takes */
	SHUNT_DROP_TUNNEL_PORT = 16,      /* UDP to a local VTEP on a port no tunnel listens on */
	SHUNT_DROP_TUNNEL_REMOTE = 17,    /* VXLAN to a local VTEP from a source that is no tunnel's remote */
	SHUNT_DROP_TUNNEL_MALFORMED = 18, /* to a local VTEP but truncated, fragmented, bad lengths, no I flag */
	SHUNT_DROP_TUNNEL_NOT_VXLAN = 19, /* IPv4 to a local VTEP that is neither UDP nor answered (e.g. ICMP) */
	SHUNT_DROP_OUTPUT_DOWN = 20,      /* every output the flow chose is a port whose link is down */
	SHUNT_DROP_BOND_INACTIVE = 21,    /* arrived on an active-backup bond's backup member */
	SHUNT_DROP__MAX
};

/* The traffic generator stamps this into the UDP payload of every frame it sends. It must fit
 * the smallest frame: a 60-byte frame (64 on the wire) has 60 - 42 = 18 bytes of UDP payload,
 * hence 16 bytes: a 16-bit magic, a 16-bit stream id, a 32-bit sequence (the sink compares
 * sequences modulo 2^32) and the send time. magic and stream are in network byte order (they
 * identify the frame); sequence and sent_ns are in host byte order, since the generator and the
 * sink run on one host and one clock (sent_ns is meaningless elsewhere anyway). */
struct shunt_probe {
	__u16 magic;      /* SHUNT_PROBE_MAGIC, network byte order */
	__u16 stream;     /* stream id (shunt gen --stream), network byte order */
	__u32 sequence;   /* sequence number within the stream, from 0, wrapping at 2^32; host order */
	__u64 sent_ns;    /* CLOCK_MONOTONIC at send (bpf_ktime_get_ns); host order */
};
#define SHUNT_PROBE_MAGIC 0x5348U /* "SH" */

/* Offset of struct shunt_probe in generated frames: Ethernet 14 + IPv4 20 + UDP 8, or
 * Ethernet 14 + IPv6 40 + UDP 8 (so an IPv6 frame needs at least 62 + 16 = 78 bytes). */
#define SHUNT_PROBE_OFFSET 42
#define SHUNT_PROBE_OFFSET_IPV6 62

/* Configuration of xdp_gen (read-only data, set before load; one object per sending thread).
 * Frame s uses flow s % flows, each field taking its value from that index in mixed radix:
 * source port fastest, then destination port, source address, destination address. */
struct shunt_gen_config {
	__u32 stream;     /* stream id stamped into every probe (0-65535), host byte order */
	__u32 flows;      /* sport_count * dport_count * saddr_count * daddr_count (>= 1) */
	__u32 sport_first;  /* host byte order, like all the range fields */
	__u32 sport_count;
	__u32 dport_first;
	__u32 dport_count;
	__u32 saddr_first;  /* IPv4 address; IPv6: its last 32 bits (the template has the rest) */
	__u32 saddr_count;
	__u32 daddr_first;
	__u32 daddr_count;
	/* IPv4: one's complement sum (unfolded) of the template's IPv4 header words other than the
	 * checksum and the addresses: each frame adds its addresses and folds (no full recompute).
	 * IPv6: the sum, in memory order (16-bit loads as stored), of the pseudo-header, UDP header
	 * and payload of the template with the varying parts zero (last 32 bits of both addresses,
	 * ports, checksum, probe): each frame adds those and folds into the UDP checksum, which
	 * IPv6 requires. */
	__u32 ip_csum_base;
	__u32 ipv6;         /* 0: UDP/IPv4 frames; 1: UDP/IPv6 */
	/* Destination and source MAC, rewritten into every frame: with live frames the kernel
	 * recycles pages without restoring the template, so a forwarder's XDP that rewrote a MAC
	 * in place would otherwise change the generator's later frames. */
	__u8 eth[12];
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
	__u64 max_lag_ns;     /* a frame more than this late moves the schedule up; less late, it is
	                       * sent at once (catch-up), so the average rate holds */
	__u64 lag_skips;      /* how often the schedule moved up */
	__u64 skipped_ns;     /* by how much in total */
	__u64 first_ns;       /* bpf_ktime_get_ns() of the first frame sent */
	__u64 last_ns;        /* and of the last */
	__u64 max_lag_seen_ns; /* the latest a frame was sent (or skipped) after its due time */
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

/* ---- The flow cache: the XDP fast path (xdp_flowcache) and the Swift slow path ---- */

/* Ports are numbered from 1 in the order given (port 0 is never used), as OpenFlow ports. */
#define SHUNT_MAX_PORTS 64
/* Interfaces with an ifindex below this find their port number in an array; others in a hash. */
#define SHUNT_PORT_ARRAY_SIZE 65536
#define SHUNT_MAX_RESUBMITS 64
#define SHUNT_FLOW_MAX_ACTIONS 8

/* The exact-match key of one packet: what both datapaths extract from a frame, and the field
 * set the OpenFlow pipeline matches on (the pipeline masks it). Packet fields are in network
 * byte order, as on the wire (like OVS's struct flow); metadata (in_port, tun_id) in host
 * order. Every byte not set by the parser is zero, padding included, so the key can be hashed
 * and compared as bytes. */
struct shunt_flow_key {
	__u32 in_port;     /* Shunt port number, from 1 */
	__be16 vlan_tci;   /* TCI of the outer 802.1Q tag with SHUNT_VLAN_PRESENT set; 0 untagged */
	__be16 dl_type;    /* EtherType after the VLAN tag; 0x05ff for frames with an 802.3 length */
	__u8 dl_dst[6];
	__u8 dl_src[6];
	__u8 nw_proto;     /* IP protocol (IPv6: the first non-extension header); ARP: opcode low byte */
	__u8 nw_frag;      /* SHUNT_FRAG_* */
	__be16 tp_src;     /* TCP/UDP/SCTP source port; ICMP/ICMPv6 type in the low byte (as be16) */
	__be16 tp_dst;     /* TCP/UDP/SCTP destination port; ICMP/ICMPv6 code (as be16) */
	__u8 pad[6];
	__u64 tun_id;      /* tunnel id (VNI) the packet arrived with; 0 when not from a tunnel */
	__u8 nw_src[16];   /* IPv4 source (first 4 bytes, rest 0), IPv6 source, or ARP SPA */
	__u8 nw_dst[16];   /* IPv4 destination, IPv6 destination, or ARP TPA */
};
#define SHUNT_VLAN_PRESENT 0x1000  /* host order; the CFI bit position, as OVS's VLAN_CFI */
#define SHUNT_FRAG_ANY 0x01        /* nw_frag: an IP fragment */
#define SHUNT_FRAG_LATER 0x02      /*          not the first one (no L4 header: tp_* are 0) */
#define SHUNT_DL_TYPE_NONE 0x05ff  /* dl_type of frames with an 802.3 length, as OVS's FLOW_DL_TYPE_NONE */
/* Both key extractors look through at most this many IPv6 extension headers (hop-by-hop,
 * routing, destination options, fragment); a packet with more is malformed for both. */
#define SHUNT_IPV6_MAX_EXT_HDRS 4

/* One datapath action of a cached flow: the flat result of the OpenFlow pipeline. */
enum shunt_dp_action_kind {
	SHUNT_DPA_NONE = 0,
	SHUNT_DPA_OUTPUT = 1,        /* port: transmit a copy of the packet as it is now */
	SHUNT_DPA_SET_ETH_SRC = 2,   /* mac */
	SHUNT_DPA_SET_ETH_DST = 3,   /* mac */
	SHUNT_DPA_SET_VLAN = 4,      /* vid: set the VID of the tag, pushing an 802.1Q tag if none */
	SHUNT_DPA_POP_VLAN = 5,      /* remove the outer tag, if any */
	SHUNT_DPA_DEC_TTL = 6,       /* IPv4 TTL (checksum updated) or IPv6 hop limit; <= 1: drop */
	SHUNT_DPA_SET_TUNNEL = 7,    /* tun_id for the following outputs to tunnel ports */
};

struct shunt_dp_action {
	__u8 kind;       /* enum shunt_dp_action_kind */
	__u8 pad;
	__u16 vid;       /* SET_VLAN: VLAN id, host order */
	__u32 port;      /* OUTPUT: Shunt port number */
	union {
		__u8 mac[6];     /* SET_ETH_SRC / SET_ETH_DST */
		__u64 tun_id;    /* SET_TUNNEL, host order */
	};
};

/* The value of one flow cache entry. The slow path writes it whole; the fast path then only
 * updates the counters (atomically) and last_used_ns. An entry with n_actions == 0 drops with
 * drop_reason. An entry with SHUNT_CACHE_USERSPACE is one the kernel cannot execute (several
 * outputs, an action it lacks): the fast path passes its packets up without counting a miss. */
struct shunt_cache_entry {
	__u64 packets;
	__u64 bytes;
	__u64 last_used_ns;  /* bpf_ktime_get_ns() of the last hit; the install time until then */
	__u32 flags;         /* SHUNT_CACHE_* */
	__u8 n_actions;
	__u8 drop_reason;    /* enum shunt_drop_reason, when n_actions == 0 */
	__u16 install_tag;   /* set by the slow path per installation; the fast path ignores it */
	struct shunt_dp_action actions[SHUNT_FLOW_MAX_ACTIONS];
	/* Port mirroring in the kernel (docs/design/0012-port-mirroring.md): with mirror_group
	 * 1..SHUNT_MIRROR_GROUPS the frame leaves by a broadcast over that group's DEVMAP_HASH
	 * (the output port and the analysis ports) instead of tx_ports; bit s of mirror_sessions
	 * counts one copy for session slot s in mirror_stats. 0 and 0: no kernel copies. */
	__u32 mirror_group;
	__u32 mirror_pad;
	__u64 mirror_sessions;
};
#define SHUNT_CACHE_USERSPACE 0x1
/* Destination sets (output port + analysis ports) the fast path can broadcast to at once, and
 * the sessions it counts copies for. Flows beyond either limit stay in the slow path. */
#define SHUNT_MIRROR_GROUPS 8
#define SHUNT_MIRROR_SLOTS 64

/* Per-CPU copies the fast path made for one mirror session slot (array map mirror_stats);
 * `shunt ctl mirror list` adds them to the session's own counters. */
struct shunt_mirror_counters {
	__u64 selected;
	__u64 selected_bytes;
	__u64 mirrored;
	__u64 mirrored_bytes;
};

/* What the fast path did on one port, so `shunt forward`'s per-port statistics include the
 * packets the kernel forwarded or dropped without the slow path seeing them. */
struct shunt_port_counters {
	__u64 rx_packets;     /* cache hits that arrived on the port */
	__u64 rx_bytes;
	__u64 tx_packets;     /* redirected out of the port */
	__u64 tx_bytes;       /* as sent (after VLAN push/pop) */
	__u64 rx_drops[SHUNT_DROP__MAX]; /* hits dropped in the kernel, by reason */
	__u64 rx_decapsulated; /* underlay ports: VXLAN frames decapsulated into a tunnel port */
	__u64 tx_encapsulated; /* underlay ports: frames sent encapsulated for a tunnel port */
};

/* Per-CPU counters of xdp_flowcache (one element of its array map fastpath_stats). */
struct shunt_fastpath_stats {
	__u64 hits;            /* packets handled in the kernel from the cache */
	__u64 hit_bytes;
	__u64 misses;          /* no cache entry: passed up to the slow path (an upcall) */
	__u64 userspace;       /* cache entry says userspace: passed up, not a miss */
	__u64 malformed;       /* truncated or unparsable headers: passed up for the slow path to count */
	__u64 not_a_port;      /* arrived on an interface that is not a Shunt port: passed */
	__u64 redirect_errors; /* bpf_redirect_map refused the output port (no device in the DEVMAP) */
	__u64 drops[SHUNT_DROP__MAX]; /* packets dropped in the kernel, by reason */
	struct shunt_port_counters ports[SHUNT_MAX_PORTS + 1]; /* by Shunt port number */
};

/* ---- VXLAN tunnel ports (RFC 7348) ---- */

/* Outer Ethernet 14 + IPv4 20 + UDP 8 + VXLAN 8: what encapsulation adds in front of a frame. */
#define SHUNT_VXLAN_OVERHEAD 50
#define SHUNT_VXLAN_PORT 4789
#define SHUNT_VXLAN_FLAG_I 0x08
/* A tunnel port's VNI comes from the packet's tun_id (set_tunnel), as OVS's key=flow. */
#define SHUNT_TUNNEL_VNI_FLOW 0xffffffffU
#define SHUNT_TUNNEL_DF 0x1        /* shunt_tunnel_port.flags: set DF in the outer IPv4 header */
#define SHUNT_TUNNEL_UDP_CSUM 0x2  /*                          compute the outer UDP checksum */
#define SHUNT_TUNNEL_NEXT_HOP 0x4  /*                          dst_mac is resolved (fast path only) */

/* One tunnel port: output to port `port` encapsulates into VXLAN and sends on `underlay_port`.
 * Both datapaths read the same table (the XDP fast path as the array map tunnel_ports, by port
 * number), so for one packet they build the same outer header. The slow path resolves the
 * next hop (ARP) in its neighbour table and copies it into dst_mac for the fast path, with
 * SHUNT_TUNNEL_NEXT_HOP; without that flag the fast path passes the packet up. Addresses and
 * ports in network byte order (as written into the header); the rest host order. */
struct shunt_tunnel_port {
	__u32 port;          /* this tunnel's Shunt port number */
	__u32 underlay_port; /* the Shunt port whose rings carry the outer frames */
	__u32 vni;           /* fixed VNI (24 bits), or SHUNT_TUNNEL_VNI_FLOW */
	__be32 local_ip;     /* local VTEP: outer source, and the address decapsulation accepts */
	__be32 remote_ip;    /* remote VTEP: outer destination, and the only accepted outer source */
	__be16 dst_port;     /* UDP destination port: 4789 (IANA) or 8472 (Linux's old default) */
	__u16 src_port_min;  /* outer UDP source port from the inner flow hash, in [min, max) */
	__u16 src_port_max;
	__u8 ttl;
	__u8 flags;          /* SHUNT_TUNNEL_* */
	__u8 src_mac[6];     /* the underlay port's MAC */
	__u8 dst_mac[6];     /* the remote VTEP's next hop, when flags has SHUNT_TUNNEL_NEXT_HOP */
	__u32 underlay_mtu;  /* an outer IPv4 packet longer than this is dropped as TUNNEL_MTU */
};

/* Key of the fast path's tunnel_endpoints hash: which tunnel port takes a VXLAN frame that
 * arrived on `underlay_port`. A `vni=flow` tunnel is under vni = SHUNT_TUNNEL_VNI_FLOW, looked
 * up after the exact VNI (a fixed VNI wins, as in the slow path). The value is the port. */
struct shunt_tunnel_endpoint {
	__u32 underlay_port;
	__u32 vni;
	__be32 local_ip;
	__be32 remote_ip;
	__be16 dst_port;
	__u16 pad;
};

#endif /* __SHUNT_ABI_H */
