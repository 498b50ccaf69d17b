#!/usr/bin/env bash
# dvr-lab.sh: the OpenStack DVR east-west lab of the reference page (neutron-dvr.md), with Shunt
# as the Open vSwitch of both compute hosts; builds it, proves it, prints one RESULT line.
#
#   [P-vm1] eth0 10.0.1.5 --- tap-vm1 [P-host1: shunt, br-int + br-tun] qr1 --- qr-ddbdc784-d7 10.0.1.1 [P-router1]
#                                                                       qr2 --- qr-001d0ed9-01 10.0.2.1 [P-router1]
#                                     eth1 (VTEP 172.16.0.1, held by Shunt) --- h1 [P-fabric: br0] h2 --- eth1 (VTEP 172.16.0.2) [P-host2: shunt]
#   [P-vm2] eth0 10.0.2.5 --- tap-vm2 [P-host2] qr1/qr2 --- the same two router ports in [P-router2]
#
# Each host runs `shunt forward --config Scripts/dvr/hostN.yaml` (bridges br-int and br-tun joined
# by patch ports, the flows of Scripts/dvr/hostN-br-*.flows: the reference's flows verbatim plus
# what a working host also needs) with its control socket at /run/shunt/P-hostN.ctl, on the
# --datapath given (xdp adds --fix-peers: GRO on the veth peers XDP redirects into). The routers
# are Linux namespaces with the same ports, IPs and MACs on both hosts, IP forwarding on, and the
# static neighbours Neutron pre-populates. VM1 (fa:16:3e:da:75:6d) and VM2 (fa:16:3e:51:99:b8)
# use their router as gateway. The network node (VTEP 172.16.0.3) is referenced, not built.
# VM and router ports have MTU 1450 (Neutron's VXLAN networks) and TX checksum offload off,
# so their frames leave with complete checksums and can stay in the XDP fast path.
#
# One run: captures start (tcpdump -U in P-fabric on h1 and h2, inbound only: what each host put
# on the underlay; and in P-vm2 on eth0); ping VM1 -> VM2 and VM2 -> VM1 (--count each, from
# cold: the first request makes VM1 ARP for its gateway and goes up to both slow paths; Shunt
# resolved the remote VTEPs when it started); a UDP exchange VM1 -> VM2 (--udp datagrams, echoed back by VM2; the first
# alone until its echo is back, so that every hop has set the flow up, then at most 32 in
# flight), with each forwarder's fast-path counters (`shunt ctl show --json`) read before and
# after it. The report shows each host (shunt ctl show, the flows of br-int and br-tun that
# carried packets, shunt ctl trace of the routed frames both ways and of VM1's ARP for its
# gateway) and what the hosts put on the underlay; the captures are read with tshark.
# RESULT keys: pings (echo replies/requests, both directions), udp (datagrams that reached
# VM2/sent), udp_back (echoes back at VM1/sent), h1_inner_src / h2_inner_src (inner source MACs of
# the VXLAN frames host 1 / host 2 sent: their DVR MACs), vni_to_vm2 / vni_to_vm1 (the VNI of the
# VXLAN frames whose inner destination is VM2 / VM1), vm2_sees_src (source MAC of the echo
# requests VM2 received: its gateway's), gw_arp_on_underlay (ARP requests for 10.0.1.1 or
# 10.0.2.1 on the underlay, outer or inside VXLAN), h1_fastpath / h2_fastpath (XDP fast-path
# hits / (hits + packets passed to the slow path) on that host during the UDP phase; n/a on
# afpacket), datapath, seconds. Several values of one key are joined with '+', none is 'none'.
# Exit 0 only when every check holds: all pings answered, every UDP datagram there and back,
# h1_inner_src fa:16:3f:fe:49:e9, h2_inner_src fa:16:3f:72:3f:a7, vni_to_vm2 0x3eb, vni_to_vm1
# 0x3e9, vm2_sees_src fa:16:3e:69:b4:05, gw_arp_on_underlay 0, and on xdp both hit ratios >= 99%;
# otherwise exit 1 after a line naming the failed checks. Exit 2: bad usage, or the lab could
# not be built or started.
#
# --north-south adds the north-south half of the reference page (issue 15), on the same run:
#
#   [P-ext] eth0 172.24.4.1 --- e0 [P-fabric: br1, the external network physnet1, flat] e1/e2/e3 --- eth2 of host1/host2/net
#   [P-net: shunt, br-int + br-tun + br-ex] eth1 (VTEP 172.16.0.3) --- h3 [P-fabric: br0]
#       sg1 --- sg-7d2f9c11-40 10.0.1.6 fa:16:3e:9f:55:67 [P-snat] qg-2b8e44a0-c3 172.24.4.4 --- qg1 [P-net]
#   [P-fip1] fg-4c2e5a17-9b 172.24.4.6 --- fg1 [P-host1]; fpr-6a3e1b2c-d 169.254.31.29/31 --- rfp-6a3e1b2c-d .28/31 [P-router1]
#   [P-vm3] eth0 10.0.1.4 fa:16:3e:da:e3:6e --- tap-vm3 [P-host2] (Net1, no floating IP)
#
# Every Shunt node then runs Scripts/dvr/host1-ns.yaml, host2-ns.yaml or net.yaml: br-ex, the
# provider bridge (eth2 and phy-br-ex), linked to br-int's int-br-ex by a patch port pair, or
# with --ext-link veth by a veth pair of those names (both ends Shunt ports); the hosts get the
# north-south additions to their east-west flows (Scripts/dvr/hostN-ns-br-*.flows) through
# `shunt ctl add-flows`. NAT and policy routing are Linux's, as in Neutron: router 1 sends
# 10.0.1.5 to the fip namespace (rule "from 10.0.1.5 lookup 16") with SNAT/DNAT to the floating
# IP 172.24.4.5 (nft); the fip namespace proxy-ARPs for it on fg-; both routers send the rest of
# Net1 to the SNAT port 10.0.1.6 (rule "from 10.0.1.0/24"), the snat namespace SNATs it to
# 172.24.4.4. Before the east-west captures VM1 pings VM3 (Net1, switched), so that host 2
# learns VM1's MAC (see there why). After the east-west part, two phases with their own
# captures (the nodes' external ports e1/e2/e3 and the underlay ports in P-fabric, inbound;
# the outside's eth0; the ARP the fip and snat namespaces send): the outside pings the floating
# IP, VM1 pings the outside, a UDP exchange outside -> VM1; then VM3 pings the outside and a UDP
# exchange VM3 -> outside. Added RESULT keys: l2_ping (VM1 -> VM3), fip_ping (outside -> 172.24.4.5
# and VM1 -> outside), fip_udp / fip_udp_back, ext_sees_src (IPv4 sources the outside received
# in the floating-IP phase), fip_via (the Shunt nodes that put frames from 172.24.4.5 on the
# external network), proxy_arp_mac (sender MAC of the ARP replies for 172.24.4.5 the outside
# got), proxy_arp_from (the namespaces, fip1 or snat, that sent such replies), snat_ping,
# snat_udp / snat_udp_back, ext_sees_snat_src, snat_via, snat_tunnel_inner_src / snat_tunnel_vni
# (inner source MAC and VNI of VM3's frames host 2 tunnelled to the network node),
# h1_fip_fastpath / h2_snat_fastpath / net_fastpath (XDP hit ratio of host 1 during the
# floating-IP UDP phase, of host 2 and the network node during the SNAT one), ext_link. Checks:
# all answered and echoed, ext_sees_src 172.24.4.5, fip_via host1, proxy_arp_mac the fg- MAC
# fa:16:3e:3b:8e:21, proxy_arp_from fip1, ext_sees_snat_src 172.24.4.4, snat_via net,
# snat_tunnel_inner_src host 2's DVR MAC, snat_tunnel_vni 0x3e9, and on xdp the three ratios >= 99%.
#
# Namespaces (P-host1 P-host2 P-fabric P-vm1 P-vm2 P-router1 P-router2, with --north-south also
# P-net P-vm3 P-fip1 P-snat P-ext), the forwarders and the
# captures (stopped by their PIDs) and the work dir (${TMPDIR:-/tmp}/shunt-dvr-lab.P: logs,
# pcaps) are removed at the end, on failure and on interrupt, unless --keep and the lab came up
# (the script then prints how to remove it: --down P).
#
# Run as root. Usage: Scripts/dvr-lab.sh [--prefix P] [--datapath afpacket|xdp] [--keep]
#                     [--shunt PATH] [--count N] [--udp N] [--north-south [--ext-link patch|veth]]
#                     Scripts/dvr-lab.sh --down P
#   --prefix: namespace names start with P- (default dvr).
#   --shunt: the binary (default .build/release/shunt if present, else .build/debug/shunt).
#   --down P: stop the forwarders a kept lab of prefix P runs and remove its namespaces.
#   --north-south: add the network node, the external network, the floating IP and the SNAT.
#   --ext-link: how br-int and br-ex are joined (default patch).
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DVR=$ROOT/Scripts/dvr
SHUNT=""
DATAPATH=afpacket
P=dvr
KEEP=0
DOWN=""
COUNT=5
UDP_COUNT=2000
NORTH_SOUTH=0
EXT_LINK=patch
die() { echo "dvr-lab: $*" >&2; exit 2; }
while [[ $# -gt 0 ]]; do
    case $1 in
        --prefix) P=${2:?--prefix needs a value}; shift 2 ;;
        --datapath) DATAPATH=${2:?--datapath needs a value}; shift 2 ;;
        --shunt) SHUNT=${2:?--shunt needs a path}; shift 2 ;;
        --keep) KEEP=1; shift ;;
        --down) DOWN=${2:?--down needs the prefix}; shift 2 ;;
        --count) COUNT=${2:?}; shift 2 ;;
        --udp) UDP_COUNT=${2:?}; shift 2 ;;
        --north-south) NORTH_SOUTH=1; shift ;;
        --ext-link) EXT_LINK=${2:?--ext-link needs patch or veth}; shift 2 ;;
        -h|--help) sed -n '2,/^set -uo/p' "$0" | sed -e '/^set -uo/d' -e 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option: $1 (see --help)" ;;
    esac
done

# Every namespace either lab may have (--down removes those of a north-south lab too).
NAMES=(host1 host2 fabric vm1 vm2 router1 router2 net vm3 fip1 snat ext)
valid_prefix() { [[ $1 =~ ^[A-Za-z0-9][A-Za-z0-9_.-]{0,23}$ ]]; }
workdir() { echo "${TMPDIR:-/tmp}/shunt-dvr-lab.$1"; }
# A Shunt node by number (a compute host) or name (net): its namespace suffix.
node() { [[ $1 =~ ^[0-9]+$ ]] && echo "host$1" || echo "$1"; }
ctl_path() { echo "/run/shunt/$1-$(node "$2").ctl"; }
# Those of the lab's namespaces of prefix $1 that exist, on one line.
lab_namespaces() { ip netns list | awk '{print $1}' | grep -xF -f <(printf '%s\n' "${NAMES[@]/#/$1-}") | xargs; }

# Stops the processes a run recorded in WORK/pids ("PID what" lines), each by its PID and only
# if its command line is still the one recorded (a PID may have been reused since).
stop_recorded() {
    local file=$1 pid what
    [[ -f $file ]] || return 0
    while read -r pid what; do
        [[ $pid =~ ^[0-9]+$ ]] || continue
        [[ -r /proc/$pid/cmdline ]] || continue
        tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$what" || continue
        kill -TERM "$pid" 2>/dev/null || continue
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
        kill -KILL "$pid" 2>/dev/null
    done <"$file"
}

remove_lab() {
    local p=$1 ns
    stop_recorded "$(workdir "$p")/pids"
    for ns in "${NAMES[@]}"; do ip netns del "$p-$ns" 2>/dev/null; done
    rm -f "$(ctl_path "$p" 1)" "$(ctl_path "$p" 2)" "$(ctl_path "$p" net)"
    rm -rf "$(workdir "$p")"
}

if [[ -n $DOWN ]]; then
    valid_prefix "$DOWN" || die "--down: '$DOWN' is not a prefix this script makes"
    [[ $EUID -eq 0 ]] || die "run as root"
    remove_lab "$DOWN"
    left=$(lab_namespaces "$DOWN")
    [[ -z $left ]] || die "still there: $left"
    echo "dvr-lab: removed lab $DOWN"
    exit 0
fi

valid_prefix "$P" || die "--prefix: 1 to 24 letters, digits, '.', '_' or '-', not '$P'"
[[ $DATAPATH == afpacket || $DATAPATH == xdp ]] || die "--datapath is afpacket or xdp, not $DATAPATH"
[[ $COUNT =~ ^[1-9][0-9]*$ ]] || die "--count is a positive number, not $COUNT"
[[ $UDP_COUNT =~ ^[1-9][0-9]*$ ]] || die "--udp is a positive number, not $UDP_COUNT"
[[ $EXT_LINK == patch || $EXT_LINK == veth ]] || die "--ext-link is patch or veth, not $EXT_LINK"
[[ $EUID -eq 0 ]] || die "run as root"
if [[ -z $SHUNT ]]; then
    SHUNT=$ROOT/.build/debug/shunt
    [[ -x $ROOT/.build/release/shunt ]] && SHUNT=$ROOT/.build/release/shunt
fi
[[ -x $SHUNT ]] || die "no shunt binary at $SHUNT (swift build, or --shunt PATH)"
for tool in ip ethtool tcpdump tshark python3 ping; do
    command -v "$tool" >/dev/null || die "$tool not found (Scripts/install-deps.sh installs the Debian packages)"
done
for f in host1.yaml host2.yaml host1-br-int.flows host1-br-tun.flows host2-br-int.flows host2-br-tun.flows; do
    [[ -f $DVR/$f ]] || die "missing $DVR/$f"
done
NODES=(1 2)  # the Shunt nodes: compute hosts by number, the network node as net
if [[ $NORTH_SOUTH == 1 ]]; then
    NODES+=(net)
    command -v nft >/dev/null || die "nft not found (Scripts/install-deps.sh installs nftables)"
    for f in host1-ns.yaml host2-ns.yaml net.yaml host1-ns-br-int.flows host1-ns-br-tun.flows host2-ns-br-int.flows \
             host2-ns-br-tun.flows host1-br-ex.flows host2-br-ex.flows net-br-int.flows net-br-tun.flows net-br-ex.flows; do
        [[ -f $DVR/$f ]] || die "missing $DVR/$f"
    done
fi
existing=$(lab_namespaces "$P")
[[ -z $existing ]] || die "namespaces of prefix $P exist already ($existing); remove them with: bash Scripts/dvr-lab.sh --down $P"

WORK=$(workdir "$P")
rm -rf "$WORK"  # a stale dir of an earlier lab of this prefix whose namespaces are gone
mkdir -p "$WORK" /run/shunt || die "cannot create $WORK"
FWD_PIDS=() AUX_PIDS=()
LAB_UP=0
cleanup() {
    trap - EXIT INT TERM HUP
    local pid
    for pid in "${AUX_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
    if [[ $KEEP == 1 && $LAB_UP == 1 ]]; then
        ((${#AUX_PIDS[@]})) && wait "${AUX_PIDS[@]}" 2>/dev/null
        echo "kept: namespaces ${NAMES[*]/#/$P-}, forwarders (PIDs ${FWD_PIDS[*]:-none}), files in $WORK"
        echo "remove with: bash Scripts/dvr-lab.sh --down $P"
        return
    fi
    for pid in "${FWD_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
    for pid in "${FWD_PIDS[@]}" "${AUX_PIDS[@]}"; do
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
        kill -KILL "$pid" 2>/dev/null
    done
    wait 2>/dev/null
    remove_lab "$P"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP
inns() { local ns=$1; shift; ip netns exec "$P-$ns" "$@"; }
step() { "$@" >>"$WORK/build.log" 2>&1 || die "lab build failed at: $* ($(tail -1 "$WORK/build.log"))"; }

# --- The lab -----------------------------------------------------------------------------------
# Networks, as the reference has them.
NET1_GW=10.0.1.1 NET1_GW_MAC=fa:16:3e:66:13:af NET1_QR=qr-ddbdc784-d7
NET2_GW=10.0.2.1 NET2_GW_MAC=fa:16:3e:69:b4:05 NET2_QR=qr-001d0ed9-01
VM1_IP=10.0.1.5 VM1_MAC=fa:16:3e:da:75:6d
VM2_IP=10.0.2.5 VM2_MAC=fa:16:3e:51:99:b8
DVR_MAC1=fa:16:3f:fe:49:e9 DVR_MAC2=fa:16:3f:72:3f:a7
# What the routers know statically (Neutron pre-populates the ARP of every port of a subnet).
NET1_NEIGH=("$VM1_IP $VM1_MAC" "10.0.1.4 fa:16:3e:da:e3:6e" "10.0.1.6 fa:16:3e:9f:55:67" "10.0.1.7 fa:16:3e:14:b8:ec")
NET2_NEIGH=("$VM2_IP $VM2_MAC" "10.0.2.2 fa:16:3e:13:55:66" "10.0.2.3 fa:16:3e:a4:fc:98")
TENANT_MTU=1450
# North-south (--north-south): the external network (flat provider network physnet1), the
# outside's router, VM1's floating IP, host 1's fip namespace, the central SNAT namespace on the
# network node, VM3 (Net1, host 2, no floating IP). Device names as Neutron forms them (prefix
# and the port's UUID, 14 characters); the Shunt side of each veth has a short name (fg1, sg1, qg1).
EXT_IP=172.24.4.1 EXT_MAC=52:54:00:4a:18:01
FIP=172.24.4.5
FG_DEV=fg-4c2e5a17-9b FG_IP=172.24.4.6 FG_MAC=fa:16:3e:3b:8e:21
RFP_DEV=rfp-6a3e1b2c-d FPR_DEV=fpr-6a3e1b2c-d
SG_DEV=sg-7d2f9c11-40 SNAT_PORT_IP=10.0.1.6 SNAT_PORT_MAC=fa:16:3e:9f:55:67
QG_DEV=qg-2b8e44a0-c3 SNAT_EXT_IP=172.24.4.4 QG_MAC=fa:16:3e:0c:8a:51
VM3_IP=10.0.1.4 VM3_MAC=fa:16:3e:da:e3:6e
# The table and priority of the rule that sends a subnet's traffic to its SNAT port: Neutron's
# L3 agent numbers both after the subnet's gateway address as an integer (10.0.1.1).
SNAT_TABLE=167772417

# Namespaces and veth pairs (with the VM and router addresses), IPv6 off and lo up in each.
LINKS=(--link "host1:eth1=fabric:h1" --link "host2:eth1=fabric:h2"
       --link "vm1:eth0@$VM1_IP/24=host1:tap-vm1" --link "vm2:eth0@$VM2_IP/24=host2:tap-vm2")
for i in 1 2; do
    LINKS+=(--link "router$i:$NET1_QR@$NET1_GW/24=host$i:qr1" --link "router$i:$NET2_QR@$NET2_GW/24=host$i:qr2")
done
# North-south: the network node's underlay, every Shunt node's external interface eth2 on the
# external network (a second Linux bridge in P-fabric, with the outside P-ext), VM3 on host 2,
# host 1's fip namespace (fg- port on br-int, rfp-/fpr- veth to router 1), the snat namespace's
# sg- and qg- ports on the network node's br-int; with --ext-link veth also the int-br-ex /
# phy-br-ex veth pair inside each Shunt node.
if [[ $NORTH_SOUTH == 1 ]]; then
    LINKS+=(--link "net:eth1=fabric:h3" --link "host1:eth2=fabric:e1" --link "host2:eth2=fabric:e2" --link "net:eth2=fabric:e3"
            --link "ext:eth0@$EXT_IP/24=fabric:e0" --link "vm3:eth0@$VM3_IP/24=host2:tap-vm3"
            --link "fip1:$FG_DEV@$FG_IP/24=host1:fg1" --link "router1:$RFP_DEV@169.254.31.28/31=fip1:$FPR_DEV@169.254.31.29/31"
            --link "snat:$SG_DEV@$SNAT_PORT_IP/24=net:sg1" --link "snat:$QG_DEV@$SNAT_EXT_IP/24=net:qg1")
    if [[ $EXT_LINK == veth ]]; then
        for n in host1 host2 net; do LINKS+=(--link "$n:int-br-ex=$n:phy-br-ex"); done
    fi
fi
step "$SHUNT" lab up --prefix "$P-" "${LINKS[@]}"
# The fabric: one Linux bridge joining the hosts' underlays.
step inns fabric ip link add br0 type bridge
step inns fabric sysctl -qew net.ipv6.conf.br0.disable_ipv6=1
for h in h1 h2; do step inns fabric ip link set "$h" master br0; done
step inns fabric ip link set br0 up
# The VMs: the reference's MACs, Neutron's VXLAN MTU, the router as gateway. TX checksum
# offload off: a frame whose checksum a local stack left to offload cannot be forwarded by XDP
# (Shunt keeps such flows in its slow path, `checksum_pending`).
for i in 1 2; do
    mac_var=VM${i}_MAC gw_var=NET${i}_GW
    step inns "vm$i" ip link set eth0 address "${!mac_var}" mtu "$TENANT_MTU"
    step inns "vm$i" ip route add default via "${!gw_var}"
    step inns "vm$i" ethtool -K eth0 tx off
done
# The distributed router, the same on both hosts: ports with the gateway MACs, forwarding on,
# ARP answered only on the port that holds the address, permanent neighbours.
for i in 1 2; do
    step inns "router$i" sysctl -qw net.ipv4.ip_forward=1
    step inns "router$i" sysctl -qw net.ipv4.conf.all.arp_ignore=1
    for port in "$NET1_QR $NET1_GW_MAC" "$NET2_QR $NET2_GW_MAC"; do
        read -r dev mac <<<"$port"
        step inns "router$i" ip link set "$dev" address "$mac" mtu "$TENANT_MTU"
        step inns "router$i" ethtool -K "$dev" tx off
    done
    for n in "${NET1_NEIGH[@]}"; do
        read -r ip mac <<<"$n"; step inns "router$i" ip neigh replace "$ip" lladdr "$mac" dev "$NET1_QR" nud permanent
    done
    for n in "${NET2_NEIGH[@]}"; do
        read -r ip mac <<<"$n"; step inns "router$i" ip neigh replace "$ip" lladdr "$mac" dev "$NET2_QR" nud permanent
    done
    # The host ends of the tenant veths: the same MTU.
    for dev in qr1 qr2 "tap-vm$i"; do step inns "host$i" ip link set "$dev" mtu "$TENANT_MTU"; done
done
if [[ $NORTH_SOUTH == 1 ]]; then
    # The external network: a second Linux bridge in P-fabric, untagged (a flat network).
    step inns fabric ip link set h3 master br0
    step inns fabric ip link add br1 type bridge
    step inns fabric sysctl -qew net.ipv6.conf.br1.disable_ipv6=1
    for e in e0 e1 e2 e3; do step inns fabric ip link set "$e" master br1; done
    step inns fabric ip link set br1 up
    # Every namespace that routes: reverse-path filtering off (the routers' main tables have no
    # default route, the way back is in the policy tables), checksums complete on every frame
    # a stack sends towards Shunt (TX offload off, as for the VMs).
    # The outside: 172.24.4.1, a fixed MAC (the traces name it).
    step inns ext ip link set eth0 address "$EXT_MAC"
    step inns ext ethtool -K eth0 tx off
    # VM3: Net1 on host 2, no floating IP.
    step inns vm3 ip link set eth0 address "$VM3_MAC" mtu "$TENANT_MTU"
    step inns vm3 ip route add default via "$NET1_GW"
    step inns vm3 ethtool -K eth0 tx off
    step inns host2 ip link set tap-vm3 mtu "$TENANT_MTU"
    for r in router1 router2 fip1 snat; do
        step inns "$r" sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
    done
    # No ICMP redirects from the routers (Neutron turns them off too): router 2 sends VM3's
    # traffic back out of the port it came in on, to the SNAT port in the same subnet, and a
    # redirect would make VM3 send to 10.0.1.6 directly, with its own MAC and not through its
    # distributed router.
    for i in 1 2; do
        step inns "router$i" sysctl -qw net.ipv4.conf.all.send_redirects=0 net.ipv4.conf.default.send_redirects=0 \
            "net.ipv4.conf.$NET1_QR.send_redirects=0" "net.ipv4.conf.$NET2_QR.send_redirects=0"
    done
    # Both routers: Net1's traffic that no other rule routes (no floating IP) goes to the SNAT
    # port 10.0.1.6 (its MAC is among the static neighbours). The rule comes after the main
    # table (priority above 32766), so east-west traffic still takes the connected routes.
    for i in 1 2; do
        step inns "router$i" ip route add default via "$SNAT_PORT_IP" dev "$NET1_QR" table "$SNAT_TABLE"
        step inns "router$i" ip rule add from 10.0.1.0/24 lookup "$SNAT_TABLE" priority "$SNAT_TABLE"
    done
    # Router 1, VM1's floating IP: traffic from 10.0.1.5 goes to the fip namespace over rfp-
    # (table 16; the rule's priority is below the SNAT rule's, above the main table's), source
    # NAT to the floating IP on the way out, destination NAT back on the way in.
    step inns router1 ethtool -K "$RFP_DEV" tx off
    step inns router1 ip route add default via 169.254.31.29 dev "$RFP_DEV" table 16
    step inns router1 ip rule add from "$VM1_IP" lookup 16 priority 32768
    cat >"$WORK/router1.nft" <<EOF
table ip neutron-l3-fip {
    chain prerouting {
        type nat hook prerouting priority dstnat; policy accept;
        iifname "$RFP_DEV" ip daddr $FIP dnat to $VM1_IP
    }
    chain postrouting {
        type nat hook postrouting priority srcnat; policy accept;
        oifname "$RFP_DEV" ip saddr $VM1_IP snat to $FIP
    }
}
EOF
    step inns router1 nft -f "$WORK/router1.nft"
    # Host 1's fip namespace: fg- on the external network (br-int, the external VLAN), the
    # floating IP routed to router 1, proxy ARP for it on fg- (an entry for that one address;
    # no delay: the kernel otherwise holds proxied replies back up to proxy_delay), the outside
    # as default gateway.
    step inns fip1 ip link set "$FG_DEV" address "$FG_MAC"
    step inns fip1 ethtool -K "$FG_DEV" tx off
    step inns fip1 ethtool -K "$FPR_DEV" tx off
    step inns fip1 ip route add "$FIP/32" via 169.254.31.28 dev "$FPR_DEV"
    step inns fip1 ip route add default via "$EXT_IP" dev "$FG_DEV"
    step inns fip1 sysctl -qw "net.ipv4.neigh.$FG_DEV.proxy_delay=0"
    step inns fip1 ip neigh add proxy "$FIP" dev "$FG_DEV"
    # The snat namespace: sg- is Net1's SNAT port (10.0.1.6, the tenant MTU), qg- the router's
    # external address; Net1 leaves as 172.24.4.4.
    step inns snat ip link set "$SG_DEV" address "$SNAT_PORT_MAC" mtu "$TENANT_MTU"
    step inns snat ip link set "$QG_DEV" address "$QG_MAC"
    for dev in "$SG_DEV" "$QG_DEV"; do step inns snat ethtool -K "$dev" tx off; done
    step inns net ip link set sg1 mtu "$TENANT_MTU"
    step inns snat ip route add default via "$EXT_IP" dev "$QG_DEV"
    cat >"$WORK/snat.nft" <<EOF
table ip neutron-l3-snat {
    chain postrouting {
        type nat hook postrouting priority srcnat; policy accept;
        oifname "$QG_DEV" ip saddr 10.0.1.0/24 snat to $SNAT_EXT_IP
    }
}
EOF
    step inns snat nft -f "$WORK/snat.nft"
fi

# --- The switches --------------------------------------------------------------------------------
ctl() { local host=$1; shift; "$SHUNT" ctl --control "$(ctl_path "$P" "$host")" "$@"; }
fwd_args=(--datapath "$DATAPATH")
[[ $DATAPATH == xdp ]] && fwd_args+=(--fix-peers)
# The configuration of each node: hostN.yaml (east-west), or hostN-ns.yaml / net.yaml. With
# --ext-link veth, a copy of those (and the flows beside them) without the patch keys of the
# int-br-ex / phy-br-ex ports: the veth pair of that name is then an interface of each bridge.
CONF=$DVR
if [[ $NORTH_SOUTH == 1 && $EXT_LINK == veth ]]; then
    CONF=$WORK/config
    mkdir -p "$CONF" && cp "$DVR"/*.flows "$CONF"/ || die "cannot copy the configuration to $CONF"
    for f in host1-ns.yaml host2-ns.yaml net.yaml; do
        sed -E 's/, type: patch, peer: (int|phy)-br-ex//' "$DVR/$f" >"$CONF/$f"
    done
fi
config_of() {
    if [[ $NORTH_SOUTH == 0 ]]; then echo "$CONF/host$1.yaml"
    elif [[ $1 == net ]]; then echo "$CONF/net.yaml"
    else echo "$CONF/host$1-ns.yaml"; fi
}
for n in "${NODES[@]}"; do
    # Not through inns: $! must be shunt's own PID (ip netns exec execs it).
    ip netns exec "$P-$(node "$n")" "$SHUNT" forward --config "$(config_of "$n")" "${fwd_args[@]}" \
        --control "$(ctl_path "$P" "$n")" --json >"$WORK/shunt-$(node "$n").out" 2>"$WORK/shunt-$(node "$n").err" &
    FWD_PIDS+=($!)
    echo "$! --control $(ctl_path "$P" "$n")" >>"$WORK/pids"
done
for k in "${!NODES[@]}"; do
    n=${NODES[$k]}
    for _ in $(seq 200); do
        ctl "$n" show >/dev/null 2>&1 && break
        kill -0 "${FWD_PIDS[$k]}" 2>/dev/null || break
        sleep 0.1
    done
    ctl "$n" show >"$WORK/show-$(node "$n").txt" 2>&1 \
        || die "the forwarder of $(node "$n") did not start: $(tail -3 "$WORK/shunt-$(node "$n").err")"
done
LAB_UP=1
# North-south: the compute hosts' additions to their east-west flows (the provider bridge's
# int-br-ex flows, VM3, l2population of the new Net1 ports), added to the running bridges.
if [[ $NORTH_SOUTH == 1 ]]; then
    for i in 1 2; do
        for br in br-int br-tun; do
            ctl "$i" --bridge "$br" add-flows "$CONF/host$i-ns-$br.flows" >>"$WORK/build.log" 2>&1 \
                || die "adding $CONF/host$i-ns-$br.flows to host $i's $br failed: $(tail -1 "$WORK/build.log")"
        done
    done
fi

# ping_run FROM TO NAME: --count pings from namespace FROM to TO, the summary shown, the output
# kept in $WORK/NAME.txt; ping_counts of that file: "transmitted received".
ping_run() {
    inns "$1" ping -c "$COUNT" -i 0.2 -W 2 "$2" >"$WORK/$3.txt" 2>&1
    tail -2 "$WORK/$3.txt"
}
ping_counts() { awk '/packets transmitted/ { print $1, $4; found = 1 } END { if (!found) print 0, 0 }' "$1"; }

if [[ $NORTH_SOUTH == 1 ]]; then
    # Net1 switched across the tunnel (same subnet: no router), before the east-west captures
    # (the VMs' own MACs cross the underlay here): VM1's frames for VM3 reach host 2's br-int
    # NORMAL, which learns VM1's MAC on patch-tun in Net1's VLAN. Done first on
    # purpose: router 2's routed frames to VM1 also go through host 2's NORMAL, and as long
    # as VM1's MAC is unknown there (OVS never learns it from routed frames either: those are
    # output by table 1, not NORMAL) NORMAL floods them, now that VLAN 2 has VM3, to two ports,
    # tap-vm3 and patch-tun. A flood of two outputs is not an XDP cache entry (the slow path
    # makes the copies: `Fast path: not cacheable: 2 outputs`), so the east-west UDP phase
    # would stay in host 2's slow path.
    echo "== VM1 -> VM3 (Net1, switched): ping -c $COUNT $VM3_IP"
    # VM1 and VM3 know each other's MAC (permanent neighbours): no ARP, and no neighbour probe
    # between them later, during the east-west captures, whose inner source MACs must be
    # DVR MACs only.
    inns vm1 ip neigh replace "$VM3_IP" lladdr "$VM3_MAC" dev eth0 nud permanent
    inns vm3 ip neigh replace "$VM1_IP" lladdr "$VM1_MAC" dev eth0 nud permanent
    ping_run vm1 "$VM3_IP" ping13
    read -r P13_TX P13_RX < <(ping_counts "$WORK/ping13.txt")
fi

# --- Captures ------------------------------------------------------------------------------------
# Not through inns: $! must be tcpdump's own PID.
capture() {
    local ns=$1 dev=$2 name=$3; shift 3
    ip netns exec "$P-$ns" tcpdump -i "$dev" -n -U --immediate-mode -w "$WORK/$name.pcap" "$@" >/dev/null 2>"$WORK/tcpdump-$name.err" &
    AUX_PIDS+=($!)
    echo "$! $WORK/$name.pcap" >>"$WORK/pids"
}
capture fabric h1 h1 -Q in   # what host 1 puts on the underlay
capture fabric h2 h2 -Q in   # what host 2 puts on the underlay
capture vm2 eth0 vm2
for name in h1 h2 vm2; do
    for _ in $(seq 100); do grep -q "listening on" "$WORK/tcpdump-$name.err" 2>/dev/null && break; sleep 0.05; done
    grep -q "listening on" "$WORK/tcpdump-$name.err" || die "tcpdump ($name) did not start: $(cat "$WORK/tcpdump-$name.err")"
done
sleep 0.2

# --- Traffic -------------------------------------------------------------------------------------
echo "== VM1 -> VM2: ping -c $COUNT $VM2_IP"
ping_run vm1 "$VM2_IP" ping12
echo "== VM2 -> VM1: ping -c $COUNT $VM1_IP"
ping_run vm2 "$VM1_IP" ping21
read -r P12_TX P12_RX < <(ping_counts "$WORK/ping12.txt")
read -r P21_TX P21_RX < <(ping_counts "$WORK/ping21.txt")

# UDP: VM2 echoes every datagram back; VM1 sends numbered datagrams, the first alone (until its
# echo is back the forwarders' caches are being set up, and a burst would all go to the slow
# path), then at most 32 in flight (a window that stalls for a second gives its datagrams up as
# lost), and counts distinct echoes.
cat >"$WORK/udp.py" <<'EOF'
import select, socket, sys, time
mode, port = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
if mode == "echo":
    s.bind(("0.0.0.0", port))
    print("ready", flush=True)
    seen, total, deadline = set(), 0, time.monotonic() + 60
    s.settimeout(1.0)
    while time.monotonic() < deadline:
        try:
            data, peer = s.recvfrom(2048)
        except socket.timeout:
            if total: deadline = min(deadline, time.monotonic() + 2)  # 3 s quiet after traffic: done
            continue
        if data == b"stop": break
        total += 1
        seen.add(data[:8])
        s.sendto(data, peer)
    print("received=%d distinct=%d" % (total, len(seen)), flush=True)
else:
    dst, n = sys.argv[3], int(sys.argv[4])
    s.connect((dst, port))
    s.setblocking(False)
    pad = b"x" * 56
    sent, gone, echoed = 0, 0, set()
    last = last_echo = time.monotonic()
    while True:
        # One datagram alone until its echo is back (it sets the flow up on every hop), then
        # up to 32 in flight.
        while sent < n and sent - len(echoed) - gone < (32 if echoed else 1):
            try:
                s.send(b"%08d" % sent + pad); sent += 1
            except (BlockingIOError, ConnectionRefusedError):
                break
        ready, _, _ = select.select([s], [], [], 0.2)
        if ready:
            while True:
                try:
                    data = s.recv(2048)
                except (BlockingIOError, ConnectionRefusedError):
                    break
                if data[:8].isdigit() and int(data[:8]) < sent: echoed.add(int(data[:8]))
            last = last_echo = time.monotonic()
        elif time.monotonic() - last_echo > 5.0:
            break  # nothing comes back at all
        elif time.monotonic() - last > 1.0:
            if sent == n: break
            gone = sent - len(echoed); last = time.monotonic()
        if sent == n and len(echoed) == n: break
    s.send(b"stop")
    print("sent=%d echoed=%d" % (sent, len(echoed)), flush=True)
EOF
# Fast-path counters of a host's XDP datapath: "hits slow_path_packets", or "- -".
xdp_counts() {
    [[ $DATAPATH == xdp ]] || { echo "- -"; return; }
    ctl "$1" show --json 2>/dev/null | python3 -c '
import json, sys
x = json.load(sys.stdin).get("datapaths", {}).get("xdp")
print(x["fast_path_hits"], x["slow_path_packets"]) if x else print("- -")' 2>/dev/null || echo "- -"
}
read -r H1_HITS0 H1_SLOW0 < <(xdp_counts 1)
read -r H2_HITS0 H2_SLOW0 < <(xdp_counts 2)
echo "== UDP: $UDP_COUNT datagrams VM1 -> VM2:5001, echoed back"
ip netns exec "$P-vm2" python3 "$WORK/udp.py" echo 5001 >"$WORK/udp-echo.txt" 2>&1 &
ECHO_PID=$!
AUX_PIDS+=("$ECHO_PID")
for _ in $(seq 100); do grep -q ready "$WORK/udp-echo.txt" 2>/dev/null && break; sleep 0.05; done
inns vm1 python3 "$WORK/udp.py" send 5001 "$VM2_IP" "$UDP_COUNT" >"$WORK/udp-send.txt" 2>&1
wait "$ECHO_PID" 2>/dev/null
AUX_PIDS=("${AUX_PIDS[@]:0:${#AUX_PIDS[@]}-1}")  # the echo server has exited
read -r H1_HITS1 H1_SLOW1 < <(xdp_counts 1)
read -r H2_HITS1 H2_SLOW1 < <(xdp_counts 2)
UDP_SENT=$(sed -n 's/.*sent=\([0-9]*\).*/\1/p' "$WORK/udp-send.txt") UDP_BACK=$(sed -n 's/.*echoed=\([0-9]*\).*/\1/p' "$WORK/udp-send.txt")
UDP_ARRIVED=$(sed -n 's/.*distinct=\([0-9]*\).*/\1/p' "$WORK/udp-echo.txt")
echo "sent ${UDP_SENT:-?}, reached VM2 ${UDP_ARRIVED:-?}, echoed back ${UDP_BACK:-?}"
# Between two snapshots: "RATIO HITS SLOW", RATIO = hits/(hits + slow) in percent with one
# decimal; n/a without numbers.
ratio() {
    python3 -c '
import sys
try:
    h0, s0, h1, s1 = map(int, sys.argv[1:])
except ValueError:
    print("n/a - -"); sys.exit()
hits, slow = h1 - h0, s1 - s0
print("%s %d %d" % ("%.2f%%" % (100.0 * hits / (hits + slow)) if hits + slow > 0 else "n/a", hits, slow))' "$@"
}
read -r H1_FAST H1_HITS H1_SLOW < <(ratio "$H1_HITS0" "$H1_SLOW0" "$H1_HITS1" "$H1_SLOW1")
read -r H2_FAST H2_HITS H2_SLOW < <(ratio "$H2_HITS0" "$H2_SLOW0" "$H2_HITS1" "$H2_SLOW1")
if [[ $DATAPATH == xdp ]]; then
    echo "XDP during the UDP phase: host 1 $H1_HITS fast-path hits, $H1_SLOW slow-path packets ($H1_FAST);" \
         "host 2 $H2_HITS, $H2_SLOW ($H2_FAST)"
fi
sleep 0.3

# --- What the forwarders and the captures saw ------------------------------------------------------
# How each host forwards the east-west packets (shunt ctl trace, as ovs-appctl ofproto/trace):
# the routed frame leaving, the routed frame arriving, and a VM's ARP for its gateway.
TRACES=(
    "1 br-int in_port=qr2,icmp,dl_src=$NET2_GW_MAC,dl_dst=$VM2_MAC,nw_src=$VM1_IP,nw_dst=$VM2_IP"
    "2 br-tun in_port=vxlan-host1,tun_id=0x3eb,icmp,dl_src=$DVR_MAC1,dl_dst=$VM2_MAC,nw_src=$VM1_IP,nw_dst=$VM2_IP"
    "2 br-int in_port=qr1,icmp,dl_src=$NET1_GW_MAC,dl_dst=$VM1_MAC,nw_src=$VM2_IP,nw_dst=$VM1_IP"
    "1 br-tun in_port=vxlan-host2,tun_id=0x3e9,icmp,dl_src=$DVR_MAC2,dl_dst=$VM1_MAC,nw_src=$VM2_IP,nw_dst=$VM1_IP"
    "1 br-int in_port=tap-vm1,arp,dl_src=$VM1_MAC,dl_dst=ff:ff:ff:ff:ff:ff,arp_spa=$VM1_IP,arp_tpa=$NET1_GW"
)
for i in 1 2; do
    echo
    echo "== host $i: shunt ctl show"
    ctl "$i" show 2>&1 | sed 's/^/  /'
    ctl "$i" show --json >"$WORK/show-host$i.json" 2>&1
    for br in br-int br-tun; do
        ctl "$i" --bridge "$br" dump-flows >"$WORK/flows-host$i-$br.txt" 2>&1
        echo "  $br flows that carried packets:"
        grep -v 'n_packets=0,' "$WORK/flows-host$i-$br.txt" | sed -e 's/^ *cookie=0x0, //' -e 's/^/    /'
    done
done
for t in "${TRACES[@]}"; do
    read -r host br packet <<<"$t"
    echo
    echo "== host $host: shunt ctl --bridge $br trace '$packet'"
    ctl "$host" --bridge "$br" trace "$packet" 2>&1 | sed -e '/^Packet:/d' -e '/^$/d' -e 's/^/  /'
done
for pid in "${AUX_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
wait "${AUX_PIDS[@]}" 2>/dev/null
AUX_PIDS=()
# tshark FIELD... -Y FILTER on a capture, one line per frame; -E occurrence=l takes the last
# occurrence of a field: the inner frame's in a VXLAN packet.
fields() {
    local pcap=$1 filter=$2; shift 2
    local args=() f
    for f in "$@"; do args+=(-e "$f"); done
    tshark -r "$WORK/$pcap.pcap" -n -Y "$filter" -T fields -E occurrence=l "${args[@]}" 2>/dev/null
}
distinct() { local v; v=$(sort -u | grep -v '^$' | paste -sd+); echo "${v:-none}"; }
hexes() { local v; while read -r v; do [[ -n $v ]] && printf '0x%x\n' "$v"; done; }
H1_INNER=$(fields h1 "vxlan && ip.src == 172.16.0.1" eth.src | distinct)
H2_INNER=$(fields h2 "vxlan && ip.src == 172.16.0.2" eth.src | distinct)
VNI_TO_VM2=$(fields h1 "vxlan && ip.dst == $VM2_IP" vxlan.vni | hexes | distinct)
VNI_TO_VM1=$(fields h2 "vxlan && ip.dst == $VM1_IP" vxlan.vni | hexes | distinct)
VM2_SEES=$(fields vm2 "icmp.type == 8 && ip.src == $VM1_IP" eth.src | distinct)
GW_ARP_FILTER="arp.opcode == 1 && (arp.dst.proto_ipv4 == $NET1_GW || arp.dst.proto_ipv4 == $NET2_GW)"
GW_ARP=$(( $(fields h1 "$GW_ARP_FILTER" frame.number | grep -c .) + $(fields h2 "$GW_ARP_FILTER" frame.number | grep -c .) ))
echo
echo "== underlay (P-fabric): what each host sent, by kind"
for h in h1 h2; do
    echo "  from host ${h#h}: $(tshark -r "$WORK/$h.pcap" -n -T fields -e _ws.col.Protocol 2>/dev/null | sort | uniq -c | awk '{printf "%s %s, ", $1, $2}' | sed 's/, $//')"
done
tshark -r "$WORK/h1.pcap" -n -Y "vxlan && icmp" -V 2>/dev/null | awk 'NF == 0 { exit } 1' \
    | grep -E '^(Ethernet II|Internet Protocol|Virtual eXtensible)' | sed 's/^/  first ICMP from host 1: /'

# --- North-south (--north-south) -------------------------------------------------------------------
# Two phases on the running lab, each with its own captures: the floating IP (the outside pings
# 172.24.4.5, VM1 pings the outside, a UDP exchange from the outside to VM1), then the central
# SNAT (VM3 pings the outside, a UDP exchange from VM3 to the outside). Captured: what each
# Shunt node put on the external network (P-fabric's e1/e2/e3, inbound), what the outside
# received (P-ext eth0), the ARP the fip and snat namespaces sent (their fg-/qg- ports), and
# (SNAT phase) what host 2 and the network node put on the underlay.
if [[ $NORTH_SOUTH == 1 ]]; then
    wait_captures() {
        local name
        for name in "$@"; do
            for _ in $(seq 100); do grep -q "listening on" "$WORK/tcpdump-$name.err" 2>/dev/null && break; sleep 0.05; done
            grep -q "listening on" "$WORK/tcpdump-$name.err" || die "tcpdump ($name) did not start: $(cat "$WORK/tcpdump-$name.err")"
        done
        sleep 0.2
    }
    stop_captures() {
        local pid
        sleep 0.3
        for pid in "${AUX_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
        wait "${AUX_PIDS[@]}" 2>/dev/null
        AUX_PIDS=()
    }
    # One UDP exchange: udp.py's echo server in namespace $1 on port $4, its sender in $2 to $3,
    # N datagrams; prints "ARRIVED BACK" (distinct datagrams at the echo server, echoes back).
    udp_exchange() {
        local echo_ns=$1 send_ns=$2 dst=$3 port=$4 tag=$5 pid
        ip netns exec "$P-$echo_ns" python3 "$WORK/udp.py" echo "$port" >"$WORK/udp-$tag-echo.txt" 2>&1 &
        pid=$!
        AUX_PIDS+=("$pid")
        for _ in $(seq 100); do grep -q ready "$WORK/udp-$tag-echo.txt" 2>/dev/null && break; sleep 0.05; done
        inns "$send_ns" python3 "$WORK/udp.py" send "$port" "$dst" "$UDP_COUNT" >"$WORK/udp-$tag-send.txt" 2>&1
        wait "$pid" 2>/dev/null
        AUX_PIDS=("${AUX_PIDS[@]:0:${#AUX_PIDS[@]}-1}")
        echo "$(sed -n 's/.*distinct=\([0-9]*\).*/\1/p' "$WORK/udp-$tag-echo.txt") $(sed -n 's/.*echoed=\([0-9]*\).*/\1/p' "$WORK/udp-$tag-send.txt")"
    }
    # The Shunt node that put frames matching a filter on the external network, from one
    # phase's captures of e1 (host1), e2 (host2), e3 (net); several joined with '+'.
    ext_nodes() {
        local phase=$1 filter=$2 e out=()
        for e in 1 2 3; do
            [[ -n $(fields "$phase-e$e" "$filter" frame.number | head -1) ]] && out+=("$( ((e == 3)) && echo net || echo "host$e")")
        done
        local v; v=$(printf '%s\n' "${out[@]}" | grep -v '^$' | paste -sd+); echo "${v:-none}"
    }
    echo
    echo "== north-south: floating IP $FIP of VM1 (host 1), external link int-br-ex/phy-br-ex: $EXT_LINK pair"
    capture fabric e1 fip-e1 -Q in
    capture fabric e2 fip-e2 -Q in
    capture fabric e3 fip-e3 -Q in
    capture ext eth0 fip-ext -Q in
    capture fip1 "$FG_DEV" fip-fg -Q out arp
    capture snat "$QG_DEV" fip-qg -Q out arp
    wait_captures fip-e1 fip-e2 fip-e3 fip-ext fip-fg fip-qg
    echo "== outside -> VM1's floating IP: ping -c $COUNT $FIP"
    ping_run ext "$FIP" ping-fip-in
    echo "== VM1 -> outside: ping -c $COUNT $EXT_IP"
    ping_run vm1 "$EXT_IP" ping-fip-out
    read -r FI_TX FI_RX < <(ping_counts "$WORK/ping-fip-in.txt")
    read -r FO_TX FO_RX < <(ping_counts "$WORK/ping-fip-out.txt")
    echo "== UDP: $UDP_COUNT datagrams outside -> $FIP:5002 (VM1), echoed back"
    read -r N1_HITS0 N1_SLOW0 < <(xdp_counts 1)
    read -r FIP_UDP FIP_UDP_BACK < <(udp_exchange vm1 ext "$FIP" 5002 fip)
    read -r N1_HITS1 N1_SLOW1 < <(xdp_counts 1)
    echo "reached VM1 ${FIP_UDP:-?}, echoed back ${FIP_UDP_BACK:-?}"
    stop_captures

    echo
    echo "== north-south: VM3 ($VM3_IP, host 2, no floating IP) through the SNAT node"
    capture fabric e1 snat-e1 -Q in
    capture fabric e2 snat-e2 -Q in
    capture fabric e3 snat-e3 -Q in
    capture ext eth0 snat-ext -Q in
    capture fabric h2 snat-h2 -Q in
    capture fabric h3 snat-h3 -Q in
    wait_captures snat-e1 snat-e2 snat-e3 snat-ext snat-h2 snat-h3
    echo "== VM3 -> outside: ping -c $COUNT $EXT_IP"
    ping_run vm3 "$EXT_IP" ping-snat
    read -r SN_TX SN_RX < <(ping_counts "$WORK/ping-snat.txt")
    echo "== UDP: $UDP_COUNT datagrams VM3 -> $EXT_IP:5003 (outside), echoed back"
    read -r N2_HITS0 N2_SLOW0 < <(xdp_counts 2)
    read -r NN_HITS0 NN_SLOW0 < <(xdp_counts net)
    read -r SNAT_UDP SNAT_UDP_BACK < <(udp_exchange ext vm3 "$EXT_IP" 5003 snat)
    read -r N2_HITS1 N2_SLOW1 < <(xdp_counts 2)
    read -r NN_HITS1 NN_SLOW1 < <(xdp_counts net)
    echo "reached the outside ${SNAT_UDP:-?}, echoed back ${SNAT_UDP_BACK:-?}"
    stop_captures
    read -r H1_FIP_FAST H1_FIP_HITS H1_FIP_SLOW < <(ratio "$N1_HITS0" "$N1_SLOW0" "$N1_HITS1" "$N1_SLOW1")
    read -r H2_SNAT_FAST H2_SNAT_HITS H2_SNAT_SLOW < <(ratio "$N2_HITS0" "$N2_SLOW0" "$N2_HITS1" "$N2_SLOW1")
    read -r NET_FAST NET_HITS NET_SLOW < <(ratio "$NN_HITS0" "$NN_SLOW0" "$NN_HITS1" "$NN_SLOW1")
    if [[ $DATAPATH == xdp ]]; then
        echo "XDP during the UDP phases: host 1 (floating IP) $H1_FIP_HITS fast-path hits, $H1_FIP_SLOW slow-path packets" \
             "($H1_FIP_FAST); host 2 (to SNAT) $H2_SNAT_HITS, $H2_SNAT_SLOW ($H2_SNAT_FAST); network node $NET_HITS, $NET_SLOW ($NET_FAST)"
    else
        H1_FIP_FAST=n/a H2_SNAT_FAST=n/a NET_FAST=n/a
    fi

    # The network node, br-ex everywhere, and the north-south paths traced.
    echo
    echo "== network node: shunt ctl show"
    ctl net show 2>&1 | sed 's/^/  /'
    ctl net show --json >"$WORK/show-net.json" 2>&1
    for n in 1 2 net; do
        for br in br-int br-tun br-ex; do
            [[ $n != net && $br != br-ex ]] && continue  # the hosts' br-int and br-tun are above
            ctl "$n" --bridge "$br" dump-flows >"$WORK/flows-$(node "$n")-$br.txt" 2>&1
            echo "  $(node "$n") $br flows that carried packets:"
            grep -v 'n_packets=0,' "$WORK/flows-$(node "$n")-$br.txt" | sed -e 's/^ *cookie=0x0, //' -e 's/^/    /'
        done
    done
    NS_TRACES=(
        "1 br-ex in_port=eth2,icmp,dl_src=$EXT_MAC,dl_dst=$FG_MAC,nw_src=$EXT_IP,nw_dst=$FIP"
        "1 br-int in_port=fg1,icmp,dl_src=$FG_MAC,dl_dst=$EXT_MAC,nw_src=$FIP,nw_dst=$EXT_IP"
    )
    if [[ $EXT_LINK == veth ]]; then
        # With a veth pair each bridge's half is a translation (and a cache entry) of its own.
        NS_TRACES+=("1 br-int in_port=int-br-ex,icmp,dl_src=$EXT_MAC,dl_dst=$FG_MAC,nw_src=$EXT_IP,nw_dst=$FIP"
                    "1 br-ex in_port=phy-br-ex,dl_vlan=3,icmp,dl_src=$FG_MAC,dl_dst=$EXT_MAC,nw_src=$FIP,nw_dst=$EXT_IP")
    fi
    NS_TRACES+=(
        "2 br-int in_port=qr1,icmp,dl_src=$NET1_GW_MAC,dl_dst=$SNAT_PORT_MAC,nw_src=$VM3_IP,nw_dst=$EXT_IP"
        "net br-tun in_port=vxlan-host2,tun_id=0x3e9,icmp,dl_src=$DVR_MAC2,dl_dst=$SNAT_PORT_MAC,nw_src=$VM3_IP,nw_dst=$EXT_IP"
        "net br-int in_port=qg1,icmp,dl_src=$QG_MAC,dl_dst=$EXT_MAC,nw_src=$SNAT_EXT_IP,nw_dst=$EXT_IP"
        "net br-int in_port=sg1,icmp,dl_src=$SNAT_PORT_MAC,dl_dst=$VM3_MAC,nw_src=$EXT_IP,nw_dst=$VM3_IP"
    )
    for t in "${NS_TRACES[@]}"; do
        read -r n br packet <<<"$t"
        echo
        echo "== $(node "$n"): shunt ctl --bridge $br trace '$packet'"
        ctl "$n" --bridge "$br" trace "$packet" 2>&1 | sed -e '/^Packet:/d' -e '/^$/d' -e 's/^/  /'
    done

    FIP_PING="$((FI_RX + FO_RX))/$((FI_TX + FO_TX))"
    EXT_SEES=$(fields fip-ext "ip" ip.src | distinct)
    FIP_VIA=$(ext_nodes fip "ip.src == $FIP || arp.src.proto_ipv4 == $FIP")
    PROXY_ARP_MAC=$(fields fip-ext "arp.opcode == 2 && arp.src.proto_ipv4 == $FIP" arp.src.hw_mac | distinct)
    PROXY_ARP_FROM=$(for c in fg:fip1 qg:snat; do
        [[ -n $(fields "fip-${c%%:*}" "arp.opcode == 2 && arp.src.proto_ipv4 == $FIP" frame.number | head -1) ]] && echo "${c#*:}"
    done | distinct)
    EXT_SEES_SNAT=$(fields snat-ext "ip" ip.src | distinct)
    SNAT_VIA=$(ext_nodes snat "ip.src == $SNAT_EXT_IP")
    SNAT_INNER=$(fields snat-h2 "vxlan && ip.dst == 172.16.0.3 && ip.src == $VM3_IP" eth.src | distinct)
    SNAT_VNI=$(fields snat-h2 "vxlan && ip.dst == 172.16.0.3 && ip.src == $VM3_IP" vxlan.vni | hexes | distinct)
    echo
    echo "== external network (P-fabric br1): what each node sent, by kind"
    for ph in fip snat; do
        for e in 1 2 3; do
            echo "  $ph phase, from $( ((e == 3)) && echo "the network node" || echo "host $e"):" \
                "$(tshark -r "$WORK/$ph-e$e.pcap" -n -T fields -e _ws.col.Protocol 2>/dev/null | sort | uniq -c | awk '{printf "%s %s, ", $1, $2}' | sed 's/, $//')"
        done
    done
    tshark -r "$WORK/snat-h2.pcap" -n -Y "vxlan && ip.dst == 172.16.0.3 && icmp" -V 2>/dev/null | awk 'NF == 0 { exit } 1' \
        | grep -E '^(Ethernet II|Internet Protocol|Virtual eXtensible)' | sed 's/^/  first ICMP from host 2 to the network node: /'
fi

echo
[[ $DATAPATH == xdp ]] || H1_FAST=n/a H2_FAST=n/a
PINGS="$((P12_RX + P21_RX))/$((P12_TX + P21_TX))"
RESULT="RESULT pings=$PINGS udp=${UDP_ARRIVED:-0}/$UDP_COUNT udp_back=${UDP_BACK:-0}/$UDP_COUNT"
RESULT+=" h1_inner_src=$H1_INNER h2_inner_src=$H2_INNER vni_to_vm2=$VNI_TO_VM2 vni_to_vm1=$VNI_TO_VM1"
RESULT+=" vm2_sees_src=$VM2_SEES gw_arp_on_underlay=$GW_ARP h1_fastpath=$H1_FAST h2_fastpath=$H2_FAST"
if [[ $NORTH_SOUTH == 1 ]]; then
    RESULT+=" l2_ping=$P13_RX/$P13_TX fip_ping=$FIP_PING fip_udp=${FIP_UDP:-0}/$UDP_COUNT fip_udp_back=${FIP_UDP_BACK:-0}/$UDP_COUNT"
    RESULT+=" ext_sees_src=$EXT_SEES fip_via=$FIP_VIA proxy_arp_mac=$PROXY_ARP_MAC proxy_arp_from=$PROXY_ARP_FROM"
    RESULT+=" snat_ping=$SN_RX/$SN_TX snat_udp=${SNAT_UDP:-0}/$UDP_COUNT snat_udp_back=${SNAT_UDP_BACK:-0}/$UDP_COUNT"
    RESULT+=" ext_sees_snat_src=$EXT_SEES_SNAT snat_via=$SNAT_VIA snat_tunnel_inner_src=$SNAT_INNER snat_tunnel_vni=$SNAT_VNI"
    RESULT+=" h1_fip_fastpath=$H1_FIP_FAST h2_snat_fastpath=$H2_SNAT_FAST net_fastpath=$NET_FAST ext_link=$EXT_LINK"
fi
RESULT+=" datapath=$DATAPATH seconds=$SECONDS"
echo "$RESULT"

failed=()
[[ $P12_TX -eq $COUNT && $P12_RX -eq $COUNT && $P21_TX -eq $COUNT && $P21_RX -eq $COUNT ]] \
    || failed+=("pings: $PINGS answered, want all $((2 * COUNT))")
[[ ${UDP_ARRIVED:-0} -eq $UDP_COUNT && ${UDP_BACK:-0} -eq $UDP_COUNT ]] \
    || failed+=("udp: ${UDP_ARRIVED:-0} reached VM2 and ${UDP_BACK:-0} came back of $UDP_COUNT")
[[ $H1_INNER == "$DVR_MAC1" ]] || failed+=("h1_inner_src: $H1_INNER, want host 1's DVR MAC $DVR_MAC1")
[[ $H2_INNER == "$DVR_MAC2" ]] || failed+=("h2_inner_src: $H2_INNER, want host 2's DVR MAC $DVR_MAC2")
[[ $VNI_TO_VM2 == 0x3eb ]] || failed+=("vni_to_vm2: $VNI_TO_VM2, want Net2's 0x3eb")
[[ $VNI_TO_VM1 == 0x3e9 ]] || failed+=("vni_to_vm1: $VNI_TO_VM1, want Net1's 0x3e9")
[[ $VM2_SEES == "$NET2_GW_MAC" ]] || failed+=("vm2_sees_src: $VM2_SEES, want Net2's gateway MAC $NET2_GW_MAC")
[[ $GW_ARP -eq 0 ]] || failed+=("gw_arp_on_underlay: $GW_ARP ARP requests for a gateway IP left a host")
if [[ $DATAPATH == xdp ]]; then
    for h in 1 2; do
        v=H${h}_FAST
        python3 -c 'import sys; sys.exit(0 if sys.argv[1].endswith("%") and float(sys.argv[1][:-1]) >= 99.0 else 1)' "${!v}" \
            || failed+=("h${h}_fastpath: ${!v}, want at least 99%")
    done
fi
if [[ $NORTH_SOUTH == 1 ]]; then
    [[ $P13_TX -eq $COUNT && $P13_RX -eq $COUNT ]] || failed+=("l2_ping: $P13_RX/$P13_TX answered, want all $COUNT")
    [[ $FI_TX -eq $COUNT && $FI_RX -eq $COUNT && $FO_TX -eq $COUNT && $FO_RX -eq $COUNT ]] \
        || failed+=("fip_ping: $FIP_PING answered, want all $((2 * COUNT))")
    [[ ${FIP_UDP:-0} -eq $UDP_COUNT && ${FIP_UDP_BACK:-0} -eq $UDP_COUNT ]] \
        || failed+=("fip_udp: ${FIP_UDP:-0} reached VM1 and ${FIP_UDP_BACK:-0} came back of $UDP_COUNT")
    [[ $EXT_SEES == "$FIP" ]] || failed+=("ext_sees_src: $EXT_SEES, want the floating IP $FIP")
    [[ $FIP_VIA == host1 ]] || failed+=("fip_via: $FIP_VIA, want host1 (VM1's own host)")
    [[ $PROXY_ARP_MAC == "$FG_MAC" ]] || failed+=("proxy_arp_mac: $PROXY_ARP_MAC, want $FG_DEV's $FG_MAC")
    [[ $PROXY_ARP_FROM == fip1 ]] || failed+=("proxy_arp_from: $PROXY_ARP_FROM, want fip1")
    [[ $SN_TX -eq $COUNT && $SN_RX -eq $COUNT ]] || failed+=("snat_ping: $SN_RX/$SN_TX answered, want all $COUNT")
    [[ ${SNAT_UDP:-0} -eq $UDP_COUNT && ${SNAT_UDP_BACK:-0} -eq $UDP_COUNT ]] \
        || failed+=("snat_udp: ${SNAT_UDP:-0} reached the outside and ${SNAT_UDP_BACK:-0} came back of $UDP_COUNT")
    [[ $EXT_SEES_SNAT == "$SNAT_EXT_IP" ]] || failed+=("ext_sees_snat_src: $EXT_SEES_SNAT, want $SNAT_EXT_IP")
    [[ $SNAT_VIA == net ]] || failed+=("snat_via: $SNAT_VIA, want net (the network node)")
    [[ $SNAT_INNER == "$DVR_MAC2" ]] || failed+=("snat_tunnel_inner_src: $SNAT_INNER, want host 2's DVR MAC $DVR_MAC2")
    [[ $SNAT_VNI == 0x3e9 ]] || failed+=("snat_tunnel_vni: $SNAT_VNI, want Net1's 0x3e9")
    if [[ $DATAPATH == xdp ]]; then
        for v in H1_FIP_FAST:h1_fip_fastpath H2_SNAT_FAST:h2_snat_fastpath NET_FAST:net_fastpath; do
            var=${v%%:*}
            python3 -c 'import sys; sys.exit(0 if sys.argv[1].endswith("%") and float(sys.argv[1][:-1]) >= 99.0 else 1)' "${!var}" \
                || failed+=("${v#*:}: ${!var}, want at least 99%")
        done
    fi
fi
if ((${#failed[@]})); then
    echo "dvr-lab: FAILED: $(printf '%s; ' "${failed[@]}" | sed 's/; $//')" >&2
    [[ $KEEP == 1 ]] || echo "dvr-lab: (--keep leaves the lab, logs and captures in $WORK for a look)" >&2
    exit 1
fi
echo "dvr-lab: all checks hold"
exit 0
