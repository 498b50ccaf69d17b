/* SPDX-License-Identifier: Apache-2.0 */
#ifndef _GNU_SOURCE
#error "CShunt needs _GNU_SOURCE (setns); Package.swift defines it"
#endif
#include "CShunt.h"
#include <pthread.h>
#include <signal.h>

/* Layout assumptions the Swift ring code makes. */
_Static_assert(sizeof(struct tpacket3_hdr) == 48, "tpacket3_hdr layout");
_Static_assert(sizeof(struct tpacket2_hdr) == 32, "tpacket2_hdr layout");
_Static_assert(offsetof(struct tpacket3_hdr, tp_status) == 20, "tpacket3 tp_status");
_Static_assert(offsetof(struct tpacket2_hdr, tp_status) == 0, "tpacket2 tp_status");
_Static_assert(sizeof(struct shunt_probe) == 16 && SHUNT_PROBE_OFFSET + 16 <= 60, "probe layout: fits a 60-byte frame");
_Static_assert(SHUNT_PROBE_OFFSET_IPV6 == 14 + 40 + 8, "IPv6 probe offset: Ethernet, IPv6, UDP");
_Static_assert(offsetof(struct shunt_probe, stream) == 2 && offsetof(struct shunt_probe, sequence) == 4 &&
               offsetof(struct shunt_probe, sent_ns) == 8, "probe layout: magic, stream, sequence, sent_ns");
_Static_assert(sizeof(struct tpacket_req3) == 28, "tpacket_req3 layout");
_Static_assert(sizeof(struct shunt_flow_key) == 72 && offsetof(struct shunt_flow_key, tun_id) == 32, "flow key layout");
_Static_assert(sizeof(struct shunt_dp_action) == 16, "datapath action layout");
_Static_assert(sizeof(struct shunt_cache_entry) == 176, "cache entry layout");
_Static_assert(sizeof(struct shunt_mirror_counters) == 32, "mirror counters layout");
_Static_assert(sizeof(struct shunt_tunnel_port) == 44 && offsetof(struct shunt_tunnel_port, src_mac) == 28 &&
               offsetof(struct shunt_tunnel_port, dst_mac) == 34 && offsetof(struct shunt_tunnel_port, underlay_mtu) == 40,
               "tunnel port layout");
_Static_assert(sizeof(struct shunt_tunnel_endpoint) == 20, "tunnel endpoint layout (a hash key: no implicit padding)");

/* Netlink headers the Swift code writes and reads as raw bytes (NetlinkRequest, NetlinkMessage). */
_Static_assert(sizeof(struct nlmsghdr) == 16 && NLMSG_HDRLEN == 16, "nlmsghdr layout");
_Static_assert(sizeof(struct nlattr) == 4 && NLA_HDRLEN == 4, "nlattr layout");
_Static_assert(NLA_ALIGNTO == 4 && NLMSG_ALIGNTO == 4, "netlink alignment (netlinkAlign in Netlink.swift)");
_Static_assert(sizeof(struct genlmsghdr) == 4, "genlmsghdr layout");
_Static_assert(sizeof(struct ifinfomsg) == 16, "ifinfomsg layout");
_Static_assert(sizeof(struct nlmsgerr) == 20, "nlmsgerr layout");
_Static_assert(sizeof(struct ethtool_value) == 8, "ethtool_value layout");

/* The netdev family values copied into CShunt.h, checked where the host has the real header. */
#if __has_include(<linux/netdev.h>)
#include <linux/netdev.h>
_Static_assert(CSHUNT_NETDEV_FAMILY_VERSION == NETDEV_FAMILY_VERSION, "netdev version");
_Static_assert(CSHUNT_NETDEV_CMD_DEV_GET == NETDEV_CMD_DEV_GET, "NETDEV_CMD_DEV_GET");
_Static_assert(CSHUNT_NETDEV_A_DEV_IFINDEX == NETDEV_A_DEV_IFINDEX, "NETDEV_A_DEV_IFINDEX");
_Static_assert(CSHUNT_NETDEV_A_DEV_XDP_FEATURES == NETDEV_A_DEV_XDP_FEATURES, "NETDEV_A_DEV_XDP_FEATURES");
_Static_assert(CSHUNT_NETDEV_XDP_ACT_BASIC == NETDEV_XDP_ACT_BASIC, "NETDEV_XDP_ACT_BASIC");
_Static_assert(CSHUNT_NETDEV_XDP_ACT_REDIRECT == NETDEV_XDP_ACT_REDIRECT, "NETDEV_XDP_ACT_REDIRECT");
_Static_assert(CSHUNT_NETDEV_XDP_ACT_NDO_XMIT == NETDEV_XDP_ACT_NDO_XMIT, "NETDEV_XDP_ACT_NDO_XMIT");
_Static_assert(CSHUNT_NETDEV_XDP_ACT_XSK_ZEROCOPY == NETDEV_XDP_ACT_XSK_ZEROCOPY, "NETDEV_XDP_ACT_XSK_ZEROCOPY");
_Static_assert(CSHUNT_NETDEV_XDP_ACT_HW_OFFLOAD == NETDEV_XDP_ACT_HW_OFFLOAD, "NETDEV_XDP_ACT_HW_OFFLOAD");
_Static_assert(CSHUNT_NETDEV_XDP_ACT_RX_SG == NETDEV_XDP_ACT_RX_SG, "NETDEV_XDP_ACT_RX_SG");
_Static_assert(CSHUNT_NETDEV_XDP_ACT_NDO_XMIT_SG == NETDEV_XDP_ACT_NDO_XMIT_SG, "NETDEV_XDP_ACT_NDO_XMIT_SG");
#endif

int cshunt_setns_net(int fd) { return setns(fd, CLONE_NEWNET); }
int cshunt_set_thread_name(const char *name) { return pthread_setname_np(pthread_self(), name); }

int cshunt_peer_pid(int fd, int *pid) {
	struct ucred cred;
	socklen_t len = sizeof(cred);
	int rc = getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len);
	if (rc == 0) *pid = cred.pid;
	return rc;
}

int cshunt_accept_cloexec(int fd) { return accept4(fd, NULL, NULL, SOCK_CLOEXEC); }

_Static_assert(sizeof(struct cshunt_mmsghdr) == sizeof(struct mmsghdr), "mmsghdr layout");
_Static_assert(offsetof(struct cshunt_mmsghdr, msg_len) == offsetof(struct mmsghdr, msg_len), "mmsghdr msg_len");
int cshunt_sendmmsg(int fd, struct cshunt_mmsghdr *messages, unsigned int count, int flags)
{
    return sendmmsg(fd, (struct mmsghdr *)messages, count, flags);
}

static void cshunt_interrupt_handler(int sig) { (void)sig; }
int cshunt_install_interrupt_handler(int sig) {
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = cshunt_interrupt_handler;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0; /* no SA_RESTART */
	return sigaction(sig, &sa, NULL);
}
