/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tpacket-fwd: the reference that Shunt's ring mode is measured against (issue 14).
 *
 * A minimal forwarder between two interfaces on plain AF_PACKET rings: one socket per
 * interface with an RX ring and a TX ring in one mapping (the geometry and socket options of
 * Shunt's defaults, Sources/ShuntRing/RingGeometry.swift and RingPort.swift), one thread that
 * busy-polls both RX rings, copies every received frame into the other port's TX ring and
 * kicks that ring with one send() per batch. A batch is one RX block (TPACKET_V3) or up to 64
 * frames (TPACKET_V2); the RX memory goes back to the kernel after the send.
 *
 * Usage: tpacket-fwd [--ring v3|v2] IF_A IF_B
 * Prints "forwarding IF_A <-> IF_B" once the rings are set up, and one line of counts when
 * stopped with SIGINT or SIGTERM. Exit status: 0, or 2 when setup fails.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef PACKET_IGNORE_OUTGOING
#define PACKET_IGNORE_OUTGOING 23
#endif

/* Shunt's default rings (RingGeometry.defaultRX / defaultTX). */
enum {
	RX_BLOCK_SIZE = 1 << 16,
	RX_BLOCK_COUNT = 64,
	RX_FRAME_SIZE = 2048,
	RX_FRAME_COUNT = RX_BLOCK_SIZE / RX_FRAME_SIZE * RX_BLOCK_COUNT,
	RX_BLOCK_TIMEOUT_MS = 1,
	TX_BLOCK_SIZE = 1 << 16,
	TX_BLOCK_COUNT = 32,
	TX_FRAME_SIZE = 2048,
	TX_FRAME_COUNT = TX_BLOCK_SIZE / TX_FRAME_SIZE * TX_BLOCK_COUNT,
	V2_BATCH = 64,
	/* A frame may carry one VLAN tag beyond the MTU and link header (tpacket_snd's limit). */
	LINK_OVERHEAD = 14 + 4,
};

struct port {
	const char *name;
	int fd;
	uint8_t *rx_ring;
	uint8_t *tx_ring;
	unsigned rx_next;    /* the next RX block (V3) or frame (V2) to read */
	unsigned tx_next;    /* the next TX frame to fill */
	unsigned tx_pending; /* frames marked for sending since the last send() */
	uint32_t tx_max_len; /* the longest frame both the TX frame and the MTU take */
	uint64_t rx, tx;
};

static int ring_version = TPACKET_V3;
/* Where a TX frame's status word and data are: they differ between V2 and V3 headers. */
static size_t tx_status_offset, tx_data_offset;
static uint64_t tx_ring_full, too_large;
static volatile sig_atomic_t stop_requested;

static void request_stop(int signo) {
	(void)signo;
	stop_requested = 1;
}

/* The ring status words are shared with the kernel: acquire on read, release on hand-over. */
static inline uint32_t load_acquire(const void *p) {
	return __atomic_load_n((const uint32_t *)p, __ATOMIC_ACQUIRE);
}
static inline void store_release(void *p, uint32_t v) {
	__atomic_store_n((uint32_t *)p, v, __ATOMIC_RELEASE);
}

static inline void flush_tx(struct port *out) {
	if (out->tx_pending == 0)
		return;
	/* EAGAIN or ENOBUFS leave the frames marked: the next send() takes them. */
	(void)send(out->fd, NULL, 0, MSG_DONTWAIT);
	out->tx_pending = 0;
}

/* The data area of the next free TX frame, or NULL when the ring is still full after one send(). */
static inline uint8_t *claim_tx(struct port *out) {
	uint8_t *frame = out->tx_ring + (size_t)out->tx_next * TX_FRAME_SIZE;
	const uint32_t busy = TP_STATUS_SEND_REQUEST | TP_STATUS_SENDING;
	if (load_acquire(frame + tx_status_offset) & busy) {
		if (out->tx_pending == 0)
			return NULL;
		flush_tx(out);
		if (load_acquire(frame + tx_status_offset) & busy)
			return NULL;
	}
	return frame + tx_data_offset;
}

static inline void commit_tx(struct port *out, uint32_t len) {
	uint8_t *frame = out->tx_ring + (size_t)out->tx_next * TX_FRAME_SIZE;
	if (ring_version == TPACKET_V3) {
		struct tpacket3_hdr *h = (struct tpacket3_hdr *)frame;
		h->tp_next_offset = 0; /* the kernel refuses a V3 TX frame with any other */
		h->tp_len = len;
		h->tp_snaplen = len;
		store_release(&h->tp_status, TP_STATUS_SEND_REQUEST);
	} else {
		struct tpacket2_hdr *h = (struct tpacket2_hdr *)frame;
		h->tp_len = len;
		h->tp_snaplen = len;
		store_release(&h->tp_status, TP_STATUS_SEND_REQUEST);
	}
	if (++out->tx_next == TX_FRAME_COUNT)
		out->tx_next = 0;
	out->tx_pending++;
	out->tx++;
}

/* Copies one received frame into out's TX ring; a VLAN tag the kernel moved into the ring
 * header goes back into the frame, as Shunt does. */
static inline void forward_frame(struct port *out, const uint8_t *data, uint32_t snaplen, uint32_t len,
				 uint32_t status, uint16_t tci, uint16_t tpid) {
	const int tagged = (status & TP_STATUS_VLAN_VALID) != 0;
	const uint32_t out_len = len + (tagged ? 4 : 0);
	if (snaplen < len || out_len > out->tx_max_len) {
		too_large++;
		return;
	}
	uint8_t *dst = claim_tx(out);
	if (!dst) {
		tx_ring_full++;
		return;
	}
	if (tagged) {
		const uint16_t tag[2] = {htons((status & TP_STATUS_VLAN_TPID_VALID) ? tpid : ETH_P_8021Q), htons(tci)};
		memcpy(dst, data, 12);
		memcpy(dst + 12, tag, 4);
		memcpy(dst + 16, data + 12, len - 12);
	} else {
		memcpy(dst, data, len);
	}
	commit_tx(out, out_len);
}

/* One ready V3 block of `in`, if there is one: every frame to `out`, one send(), then the
 * block goes back to the kernel. */
static inline void forward_block_v3(struct port *in, struct port *out) {
	struct tpacket_block_desc *block = (struct tpacket_block_desc *)(in->rx_ring + (size_t)in->rx_next * RX_BLOCK_SIZE);
	if (!(load_acquire(&block->hdr.bh1.block_status) & TP_STATUS_USER))
		return;
	const uint32_t count = block->hdr.bh1.num_pkts;
	const uint8_t *p = (const uint8_t *)block + block->hdr.bh1.offset_to_first_pkt;
	for (uint32_t i = 0; i < count; i++) {
		const struct tpacket3_hdr *h = (const struct tpacket3_hdr *)p;
		forward_frame(out, p + h->tp_mac, h->tp_snaplen, h->tp_len, h->tp_status,
			      (uint16_t)h->hv1.tp_vlan_tci, h->hv1.tp_vlan_tpid);
		p += h->tp_next_offset;
	}
	in->rx += count;
	flush_tx(out);
	store_release(&block->hdr.bh1.block_status, TP_STATUS_KERNEL);
	if (++in->rx_next == RX_BLOCK_COUNT)
		in->rx_next = 0;
}

/* Up to V2_BATCH ready V2 frames of `in`: each to `out`, one send(), then the frames go back. */
static inline void forward_frames_v2(struct port *in, struct port *out) {
	const unsigned first = in->rx_next;
	unsigned n = 0;
	while (n < V2_BATCH) {
		struct tpacket2_hdr *h = (struct tpacket2_hdr *)(in->rx_ring + (size_t)in->rx_next * RX_FRAME_SIZE);
		const uint32_t status = load_acquire(&h->tp_status);
		if (!(status & TP_STATUS_USER))
			break;
		forward_frame(out, (const uint8_t *)h + h->tp_mac, h->tp_snaplen, h->tp_len, status,
			      h->tp_vlan_tci, h->tp_vlan_tpid);
		n++;
		if (++in->rx_next == RX_FRAME_COUNT)
			in->rx_next = 0;
	}
	if (n == 0)
		return;
	in->rx += n;
	flush_tx(out);
	unsigned f = first;
	for (unsigned i = 0; i < n; i++) {
		store_release(in->rx_ring + (size_t)f * RX_FRAME_SIZE, TP_STATUS_KERNEL);
		if (++f == RX_FRAME_COUNT)
			f = 0;
	}
}

static void fail_setup(const struct port *p, const char *step) {
	fprintf(stderr, "tpacket-fwd: setting up '%s' failed at %s: %s\n", p->name, step, strerror(errno));
	exit(2);
}

static void set_option(const struct port *p, int name, const void *value, socklen_t size, const char *step) {
	if (setsockopt(p->fd, SOL_PACKET, name, value, size) != 0)
		fail_setup(p, step);
}

/* The socket, options, rings, mapping and binding of one port, in Shunt's order; exits 2 on failure. */
static void open_port(struct port *p, const char *name) {
	p->name = name;
	const unsigned ifindex = if_nametoindex(name);
	if (strlen(name) >= IFNAMSIZ || ifindex == 0) {
		fprintf(stderr, "tpacket-fwd: no interface named '%s' in this network namespace (see `ip link show`)\n", name);
		exit(2);
	}
	p->fd = socket(AF_PACKET, SOCK_RAW, 0); /* protocol 0: nothing arrives before bind */
	if (p->fd < 0) {
		if (errno == EPERM || errno == EACCES) {
			fprintf(stderr, "tpacket-fwd: opening an AF_PACKET socket needs CAP_NET_RAW; run as root\n");
			exit(2);
		}
		fail_setup(p, "socket");
	}
	struct ifreq ifr;
	memset(&ifr, 0, sizeof ifr);
	memcpy(ifr.ifr_name, name, strlen(name));
	if (ioctl(p->fd, SIOCGIFFLAGS, &ifr) != 0)
		fail_setup(p, "SIOCGIFFLAGS");
	if (!(ifr.ifr_flags & IFF_UP)) {
		fprintf(stderr, "tpacket-fwd: interface '%s' is down; bring it up with `ip link set %s up`\n", name, name);
		exit(2);
	}
	if (ioctl(p->fd, SIOCGIFMTU, &ifr) != 0)
		fail_setup(p, "SIOCGIFMTU");
	const uint32_t by_frame = TX_FRAME_SIZE - (uint32_t)tx_data_offset;
	const uint32_t by_mtu = (uint32_t)ifr.ifr_mtu + LINK_OVERHEAD;
	p->tx_max_len = by_frame < by_mtu ? by_frame : by_mtu;

	const int one = 1;
	set_option(p, PACKET_VERSION, &ring_version, sizeof ring_version, "PACKET_VERSION");
	/* A frame the kernel rejects is skipped instead of stalling the TX ring. */
	set_option(p, PACKET_LOSS, &one, sizeof one, "PACKET_LOSS");
	set_option(p, PACKET_QDISC_BYPASS, &one, sizeof one, "PACKET_QDISC_BYPASS");
	/* Only what arrives is forwarded, never what this socket sends. */
	set_option(p, PACKET_IGNORE_OUTGOING, &one, sizeof one, "PACKET_IGNORE_OUTGOING");
	if (ring_version == TPACKET_V3) {
		struct tpacket_req3 rx = {
			.tp_block_size = RX_BLOCK_SIZE, .tp_block_nr = RX_BLOCK_COUNT,
			.tp_frame_size = RX_FRAME_SIZE, .tp_frame_nr = RX_FRAME_COUNT,
			.tp_retire_blk_tov = RX_BLOCK_TIMEOUT_MS,
		};
		struct tpacket_req3 tx = {
			.tp_block_size = TX_BLOCK_SIZE, .tp_block_nr = TX_BLOCK_COUNT,
			.tp_frame_size = TX_FRAME_SIZE, .tp_frame_nr = TX_FRAME_COUNT,
		};
		set_option(p, PACKET_RX_RING, &rx, sizeof rx, "PACKET_RX_RING");
		set_option(p, PACKET_TX_RING, &tx, sizeof tx, "PACKET_TX_RING");
	} else {
		struct tpacket_req rx = {
			.tp_block_size = RX_BLOCK_SIZE, .tp_block_nr = RX_BLOCK_COUNT,
			.tp_frame_size = RX_FRAME_SIZE, .tp_frame_nr = RX_FRAME_COUNT,
		};
		struct tpacket_req tx = {
			.tp_block_size = TX_BLOCK_SIZE, .tp_block_nr = TX_BLOCK_COUNT,
			.tp_frame_size = TX_FRAME_SIZE, .tp_frame_nr = TX_FRAME_COUNT,
		};
		set_option(p, PACKET_RX_RING, &rx, sizeof rx, "PACKET_RX_RING");
		set_option(p, PACKET_TX_RING, &tx, sizeof tx, "PACKET_TX_RING");
	}
	const size_t rx_bytes = (size_t)RX_BLOCK_SIZE * RX_BLOCK_COUNT, tx_bytes = (size_t)TX_BLOCK_SIZE * TX_BLOCK_COUNT;
	void *map = mmap(NULL, rx_bytes + tx_bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, p->fd, 0);
	if (map == MAP_FAILED)
		fail_setup(p, "mmap");
	p->rx_ring = map;
	p->tx_ring = (uint8_t *)map + rx_bytes;
	struct sockaddr_ll sll = {.sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL), .sll_ifindex = (int)ifindex};
	if (bind(p->fd, (struct sockaddr *)&sll, sizeof sll) != 0)
		fail_setup(p, "bind");
}

/* PACKET_STATISTICS tp_drops: frames that found the RX ring full (0 if unreadable). */
static uint64_t kernel_drops(const struct port *p) {
	struct tpacket_stats_v3 st;
	socklen_t len = ring_version == TPACKET_V3 ? sizeof(struct tpacket_stats_v3) : sizeof(struct tpacket_stats);
	memset(&st, 0, sizeof st);
	if (getsockopt(p->fd, SOL_PACKET, PACKET_STATISTICS, &st, &len) != 0)
		return 0;
	return st.tp_drops;
}

static void usage(void) {
	fprintf(stderr, "usage: tpacket-fwd [--ring v3|v2] IF_A IF_B\n");
	exit(2);
}

int main(int argc, char **argv) {
	int arg = 1;
	if (arg < argc && strcmp(argv[arg], "--ring") == 0) {
		if (arg + 1 >= argc)
			usage();
		if (strcmp(argv[arg + 1], "v3") == 0)
			ring_version = TPACKET_V3;
		else if (strcmp(argv[arg + 1], "v2") == 0)
			ring_version = TPACKET_V2;
		else
			usage();
		arg += 2;
	}
	if (argc - arg != 2 || strcmp(argv[arg], argv[arg + 1]) == 0)
		usage();
	if (ring_version == TPACKET_V3) {
		tx_status_offset = offsetof(struct tpacket3_hdr, tp_status);
		tx_data_offset = TPACKET_ALIGN(sizeof(struct tpacket3_hdr));
	} else {
		tx_status_offset = offsetof(struct tpacket2_hdr, tp_status);
		tx_data_offset = TPACKET_ALIGN(sizeof(struct tpacket2_hdr));
	}

	/* Installed before the rings exist, so a stop that comes during setup is not lost. */
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = request_stop;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	struct port a, b;
	memset(&a, 0, sizeof a);
	memset(&b, 0, sizeof b);
	open_port(&a, argv[arg]);
	open_port(&b, argv[arg + 1]);
	printf("forwarding %s <-> %s\n", a.name, b.name);
	fflush(stdout);

	if (ring_version == TPACKET_V3) {
		while (!stop_requested) {
			forward_block_v3(&a, &b);
			forward_block_v3(&b, &a);
		}
	} else {
		while (!stop_requested) {
			forward_frames_v2(&a, &b);
			forward_frames_v2(&b, &a);
		}
	}

	printf("rx_a=%llu rx_b=%llu tx_a=%llu tx_b=%llu tx_ring_full=%llu too_large=%llu kernel_drops=%llu\n",
	       (unsigned long long)a.rx, (unsigned long long)b.rx, (unsigned long long)a.tx, (unsigned long long)b.tx,
	       (unsigned long long)tx_ring_full, (unsigned long long)too_large,
	       (unsigned long long)(kernel_drops(&a) + kernel_drops(&b)));
	return 0;
}
