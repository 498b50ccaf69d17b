/* SPDX-License-Identifier: Apache-2.0 */
/*
 * CShunt: what Swift cannot import by itself from the Linux headers, and nothing else.
 *
 * - Glibc's module does not export linux/if_packet.h (tpacket_req3, TPACKET_V3, PACKET_*,
 *   sockaddr_ll) or setns/CLONE_NEWNET; including them here makes them importable.
 * - TPACKET_ALIGN is a function-like macro: wrapped as a function.
 * - Ring status words are shared with the kernel: they need acquire/release ordering,
 *   which Swift has no operator for on raw memory. Each accessor below is one such word.
 * - struct ifreq is a union Swift handles badly: the interface queries are tiny functions.
 * - struct ucred (SO_PEERCRED) and accept4 need _GNU_SOURCE too: wrapped in shims.c.
 * - Glibc's module does not export the netlink uapi (linux/netlink.h, rtnetlink.h, genetlink.h,
 *   if_link.h, net_namespace.h) or linux/ethtool.h: included here for their constants and
 *   header structs. SIOCETHTOOL passes a pointer through the ifreq union: tiny functions again.
 * - uapi linux/netdev.h (Linux 6.3) is newer than the build host's headers may be: the few
 *   values Shunt uses are copied below, and shims.c checks them against the real header.
 * - linux/if_xdp.h (AF_XDP sockets: sockaddr_xdp, xdp_umem_reg, ring offsets, descriptors) is
 *   not in Glibc's module either: included for the generator's AF_XDP engine.
 * Delete a shim when Swift can express it directly.
 */
#ifndef CSHUNT_H
#define CSHUNT_H

#include <stdint.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/ioctl.h>
#include <net/if.h>
#include <linux/if_packet.h>
#include <linux/if_ether.h>
#include <linux/sockios.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/genetlink.h>
#include <linux/if_link.h>
#include <linux/net_namespace.h>
#include <linux/ethtool.h>
#include <linux/if_xdp.h>
#include <sched.h>
#include "shunt_abi.h"

#ifndef PACKET_IGNORE_OUTGOING
#define PACKET_IGNORE_OUTGOING 23
#endif

static inline uint32_t cshunt_tpacket_align(uint32_t x) { return TPACKET_ALIGN(x); }

/* Acquire/release access to a 32-bit word shared with the kernel or other threads. */
static inline uint32_t cshunt_load_acquire_u32(const void *p) {
	return __atomic_load_n((const uint32_t *)p, __ATOMIC_ACQUIRE);
}
static inline void cshunt_store_release_u32(void *p, uint32_t v) {
	__atomic_store_n((uint32_t *)p, v, __ATOMIC_RELEASE);
}

/* Relaxed 64-bit words: counters with one writer, and the lock-free MAC table. */
static inline uint64_t cshunt_load_relaxed_u64(const void *p) {
	return __atomic_load_n((const uint64_t *)p, __ATOMIC_RELAXED);
}
static inline void cshunt_store_relaxed_u64(void *p, uint64_t v) {
	__atomic_store_n((uint64_t *)p, v, __ATOMIC_RELAXED);
}
static inline uint64_t cshunt_load_acquire_u64(const void *p) {
	return __atomic_load_n((const uint64_t *)p, __ATOMIC_ACQUIRE);
}
static inline void cshunt_store_release_u64(void *p, uint64_t v) {
	__atomic_store_n((uint64_t *)p, v, __ATOMIC_RELEASE);
}
static inline int cshunt_cas_u64(void *p, uint64_t expected, uint64_t desired) {
	return __atomic_compare_exchange_n((uint64_t *)p, &expected, desired, 0,
					   __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}

/* ---- TPACKET_V3 RX block and packet headers ---- */
static inline uint32_t cshunt_v3_block_status(const void *block) {
	return cshunt_load_acquire_u32(&((const struct tpacket_block_desc *)block)->hdr.bh1.block_status);
}
static inline void cshunt_v3_block_release(void *block) {
	cshunt_store_release_u32(&((struct tpacket_block_desc *)block)->hdr.bh1.block_status, TP_STATUS_KERNEL);
}
static inline uint32_t cshunt_v3_block_num_pkts(const void *block) {
	return ((const struct tpacket_block_desc *)block)->hdr.bh1.num_pkts;
}
static inline uint32_t cshunt_v3_block_first_offset(const void *block) {
	return ((const struct tpacket_block_desc *)block)->hdr.bh1.offset_to_first_pkt;
}

/* ---- TX/RX frame status words (V2 and V3 frames keep tp_status at different offsets) ---- */
enum { CSHUNT_V2_STATUS_OFFSET = offsetof(struct tpacket2_hdr, tp_status),
       CSHUNT_V3_STATUS_OFFSET = offsetof(struct tpacket3_hdr, tp_status) };

/* ---- Process and interface helpers (called only from ShuntSystem's syscall gateway) ---- */
/* setns needs _GNU_SOURCE, which importing modules do not see: defined in shims.c. */
int cshunt_setns_net(int fd);
/* pthread_setname_np also needs _GNU_SOURCE. */
int cshunt_set_thread_name(const char *name);
/* Installs a handler that does nothing for `sig`, without SA_RESTART: the signal then only
 * interrupts the system call a thread is blocked in (EINTR). */
int cshunt_install_interrupt_handler(int sig);
/* struct ucred (SO_PEERCRED) is only declared with _GNU_SOURCE: the pid of the process on the
 * other end of a connected AF_UNIX socket. Returns 0 or -1 with errno. */
int cshunt_peer_pid(int fd, int *pid);
/* accept4(fd, NULL, NULL, SOCK_CLOEXEC): accept4 is only declared with _GNU_SOURCE. */
int cshunt_accept_cloexec(int fd);

/* sendmmsg(2) and struct mmsghdr are only declared with _GNU_SOURCE: the same layout under our
 * name (checked in shims.c), and the call. */
struct cshunt_mmsghdr {
    struct msghdr msg_hdr;
    unsigned int msg_len;
};
int cshunt_sendmmsg(int fd, struct cshunt_mmsghdr *messages, unsigned int count, int flags);

static inline int cshunt_if_mtu(int sock, const char *name, int *mtu) {
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
	int rc = ioctl(sock, SIOCGIFMTU, &ifr);
	if (rc == 0) *mtu = ifr.ifr_mtu;
	return rc;
}
static inline int cshunt_if_flags(int sock, const char *name, int *flags) {
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
	int rc = ioctl(sock, SIOCGIFFLAGS, &ifr);
	if (rc == 0) *flags = ifr.ifr_flags;
	return rc;
}
static inline int cshunt_if_hwaddr(int sock, const char *name, uint8_t out[6]) {
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
	int rc = ioctl(sock, SIOCGIFHWADDR, &ifr);
	if (rc == 0) memcpy(out, ifr.ifr_hwaddr.sa_data, 6);
	return rc;
}

/* ---- ethtool (SIOCETHTOOL with a struct ethtool_value, e.g. ETHTOOL_GGRO / ETHTOOL_SGRO) ---- */
static inline int cshunt_ethtool_get_value(int sock, const char *name, uint32_t cmd, uint32_t *value) {
	struct ethtool_value ev = { .cmd = cmd, .data = 0 };
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
	ifr.ifr_data = (void *)&ev;
	int rc = ioctl(sock, SIOCETHTOOL, &ifr);
	if (rc == 0) *value = ev.data;
	return rc;
}
static inline int cshunt_ethtool_set_value(int sock, const char *name, uint32_t cmd, uint32_t value) {
	struct ethtool_value ev = { .cmd = cmd, .data = value };
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
	ifr.ifr_data = (void *)&ev;
	return ioctl(sock, SIOCETHTOOL, &ifr);
}

/* ---- The generic netlink family "netdev" (uapi linux/netdev.h, Linux 6.3+) ---- */
#define CSHUNT_NETDEV_FAMILY_NAME "netdev"
enum {
	CSHUNT_NETDEV_FAMILY_VERSION = 1,        /* NETDEV_FAMILY_VERSION */
	CSHUNT_NETDEV_CMD_DEV_GET = 1,           /* NETDEV_CMD_DEV_GET */
	CSHUNT_NETDEV_A_DEV_IFINDEX = 1,         /* NETDEV_A_DEV_IFINDEX (u32) */
	CSHUNT_NETDEV_A_DEV_XDP_FEATURES = 3,    /* NETDEV_A_DEV_XDP_FEATURES (u64, enum netdev_xdp_act) */
};
/* enum netdev_xdp_act: bits of NETDEV_A_DEV_XDP_FEATURES. */
enum {
	CSHUNT_NETDEV_XDP_ACT_BASIC = 1,         /* XDP_ABORTED, XDP_DROP, XDP_PASS, XDP_TX */
	CSHUNT_NETDEV_XDP_ACT_REDIRECT = 2,      /* XDP_REDIRECT out of the device */
	CSHUNT_NETDEV_XDP_ACT_NDO_XMIT = 4,      /* ndo_xdp_xmit: frames may be redirected into it */
	CSHUNT_NETDEV_XDP_ACT_XSK_ZEROCOPY = 8,
	CSHUNT_NETDEV_XDP_ACT_HW_OFFLOAD = 16,
	CSHUNT_NETDEV_XDP_ACT_RX_SG = 32,
	CSHUNT_NETDEV_XDP_ACT_NDO_XMIT_SG = 64,
};

#endif /* CSHUNT_H */
