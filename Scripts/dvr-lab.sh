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
# Namespaces (P-host1 P-host2 P-fabric P-vm1 P-vm2 P-router1 P-router2), the forwarders and the
# captures (stopped by their PIDs) and the work dir (${TMPDIR:-/tmp}/shunt-dvr-lab.P: logs,
# pcaps) are removed at the end, on failure and on interrupt, unless --keep and the lab came up
# (the script then prints how to remove it: --down P).
#
# Run as root. Usage: Scripts/dvr-lab.sh [--prefix P] [--datapath afpacket|xdp] [--keep]
#                     [--shunt PATH] [--count N] [--udp N]
#                     Scripts/dvr-lab.sh --down P
#   --prefix: namespace names start with P- (default dvr).
#   --shunt: the binary (default .build/release/shunt if present, else .build/debug/shunt).
#   --down P: stop the forwarders a kept lab of prefix P runs and remove its namespaces.
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
        -h|--help) sed -n '2,/^set -uo/p' "$0" | sed -e '/^set -uo/d' -e 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option: $1 (see --help)" ;;
    esac
done

NAMES=(host1 host2 fabric vm1 vm2 router1 router2)
valid_prefix() { [[ $1 =~ ^[A-Za-z0-9][A-Za-z0-9_.-]{0,23}$ ]]; }
workdir() { echo "${TMPDIR:-/tmp}/shunt-dvr-lab.$1"; }
ctl_path() { echo "/run/shunt/$1-host$2.ctl"; }
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
    rm -f "$(ctl_path "$p" 1)" "$(ctl_path "$p" 2)"
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

# Namespaces and veth pairs (with the VM and router addresses), IPv6 off and lo up in each.
LINKS=(--link "host1:eth1=fabric:h1" --link "host2:eth1=fabric:h2"
       --link "vm1:eth0@$VM1_IP/24=host1:tap-vm1" --link "vm2:eth0@$VM2_IP/24=host2:tap-vm2")
for i in 1 2; do
    LINKS+=(--link "router$i:$NET1_QR@$NET1_GW/24=host$i:qr1" --link "router$i:$NET2_QR@$NET2_GW/24=host$i:qr2")
done
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

# --- The switches --------------------------------------------------------------------------------
ctl() { local host=$1; shift; "$SHUNT" ctl --control "$(ctl_path "$P" "$host")" "$@"; }
fwd_args=(--datapath "$DATAPATH")
[[ $DATAPATH == xdp ]] && fwd_args+=(--fix-peers)
for i in 1 2; do
    # Not through inns: $! must be shunt's own PID (ip netns exec execs it).
    ip netns exec "$P-host$i" "$SHUNT" forward --config "$DVR/host$i.yaml" "${fwd_args[@]}" \
        --control "$(ctl_path "$P" "$i")" --json >"$WORK/shunt-host$i.out" 2>"$WORK/shunt-host$i.err" &
    FWD_PIDS+=($!)
    echo "$! --control $(ctl_path "$P" "$i")" >>"$WORK/pids"
done
for i in 1 2; do
    for _ in $(seq 200); do
        ctl "$i" show >/dev/null 2>&1 && break
        kill -0 "${FWD_PIDS[$((i - 1))]}" 2>/dev/null || break
        sleep 0.1
    done
    ctl "$i" show >"$WORK/show-host$i.txt" 2>&1 \
        || die "the forwarder of host $i did not start: $(tail -3 "$WORK/shunt-host$i.err")"
done
LAB_UP=1

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
# ping's summary: "N packets transmitted, M received, ..." -> "N M".
ping_counts() { awk '/packets transmitted/ { print $1, $4; found = 1 } END { if (!found) print 0, 0 }' "$1"; }
echo "== VM1 -> VM2: ping -c $COUNT $VM2_IP"
inns vm1 ping -c "$COUNT" -i 0.2 -W 2 "$VM2_IP" >"$WORK/ping12.txt" 2>&1
tail -2 "$WORK/ping12.txt"
echo "== VM2 -> VM1: ping -c $COUNT $VM1_IP"
inns vm2 ping -c "$COUNT" -i 0.2 -W 2 "$VM1_IP" >"$WORK/ping21.txt" 2>&1
tail -2 "$WORK/ping21.txt"
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

echo
[[ $DATAPATH == xdp ]] || H1_FAST=n/a H2_FAST=n/a
PINGS="$((P12_RX + P21_RX))/$((P12_TX + P21_TX))"
RESULT="RESULT pings=$PINGS udp=${UDP_ARRIVED:-0}/$UDP_COUNT udp_back=${UDP_BACK:-0}/$UDP_COUNT"
RESULT+=" h1_inner_src=$H1_INNER h2_inner_src=$H2_INNER vni_to_vm2=$VNI_TO_VM2 vni_to_vm1=$VNI_TO_VM1"
RESULT+=" vm2_sees_src=$VM2_SEES gw_arp_on_underlay=$GW_ARP h1_fastpath=$H1_FAST h2_fastpath=$H2_FAST"
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
if ((${#failed[@]})); then
    echo "dvr-lab: FAILED: $(printf '%s; ' "${failed[@]}" | sed 's/; $//')" >&2
    [[ $KEEP == 1 ]] || echo "dvr-lab: (--keep leaves the lab, logs and captures in $WORK for a look)" >&2
    exit 1
fi
echo "dvr-lab: all checks hold"
exit 0
