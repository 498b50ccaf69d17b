#!/usr/bin/env bash
# mirror-lab.sh: the classic mirrored-port experiment (OVS + Linux VXLAN), with Shunt in place
# of the OVS bridge; in variant ovs, Shunt remote-mirrors over VXLAN to an Open vSwitch.
#
#   [c1] vx0 10.41.0.1 (VNI 4100, dstport 4789) over c1u 192.168.41.1 --veth-- s1 [srv: shunt] s2 --veth-- c2u 192.168.42.1 over vx0 10.41.0.2 [c2]
#                                                                              s3
#     variant shunt: s3 --veth-- cap0 [cap]
#     variant ovs:   s3 (underlay of tunnel port vxm: VTEP 192.168.43.254, VNI 4200) --veth-- o1
#                    [ovs: br-phy 192.168.43.1 (o1) ; br-int: vxlan0 (key 4200) -> o2] o2 --veth-- cap0 [cap]
#
# Each client has a Linux VXLAN interface point-to-point to the test server, where Shunt
# terminates both tunnels (tunnel ports vxc1 and vxc2, VTEPs 192.168.41.254 and 192.168.42.254)
# and joins them with NORMAL. A mirror session copies client 1's port (vxc1, both directions);
# it is added live after a warm-up ping. The capture namespace records what arrives on cap0
# with tcpdump.
# - Variant shunt (default): the session copies to s3 (SPAN). s3 is also a bridge port, so
#   NORMAL floods broadcasts (ARP) to it as well.
# - Variant ovs: the session copies to tunnel port vxm (remote mirroring, VNI 4200, underlay
#   s3). Open vSwitch, run privately in namespace ovs (userspace datapath, datapath_type=netdev;
#   its database, sockets, pids and logs in the temp dir), holds the VTEP address on br-phy,
#   decapsulates on br-int's type=vxlan port and outputs to o2 by one flow. vxm is a bridge port
#   too, so NORMAL's floods (ARP) reach OVS and the capture as well. Needs openvswitch-switch.
# One run pings c1 -> c2 and c2 -> c1 (--count each) and prints what each side saw: the pings,
# the capture, Shunt's mirror and port counters, and (ovs) OVS's port and flow counters.
# A summary line for scripts follows the report, space-separated key=value:
#   RESULT variant=shunt|ovs count=N ping12_tx ping12_rx ping21_tx ping21_rx (echo requests sent
#   and replies received) cap_requests cap_replies cap_arp cap_all (what arrived on cap0)
#   mirror_selected mirror_mirrored mirror_dropped (the session's counters after the pings)
#   and for ovs: ovs_vxlan_rx ovs_cap_tx (br-int port counters) ovs_flow_packets (the flow's n_packets);
#   last, seconds (how long the run took so far, whole seconds).
# With every ping answered, cap_requests = cap_replies = 2*count.
# Namespaces, OVS (stopped by its PIDs) and the temp dir (under $TMPDIR, default /tmp) are
# removed at the end, on failure and on interrupt, unless --keep (the script then prints how to
# remove them).
#
# Run as root. Usage: Scripts/mirror-lab.sh [--variant shunt|ovs] [--shunt PATH] [--count N]
#                     [--prefix P] [--keep]
#   --prefix: namespace names start with it (default ml<pid>); names are PREFIX{c1,c2,srv,cap,ovs}.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SHUNT=$ROOT/.build/debug/shunt
VARIANT=shunt
COUNT=10
KEEP=0
P="ml$$"
die() { echo "mirror-lab: $*" >&2; exit 1; }
while [[ $# -gt 0 ]]; do
    case $1 in
        --variant) VARIANT=${2:?}; shift 2 ;;
        --shunt) SHUNT=${2:?}; shift 2 ;;
        --count) COUNT=${2:?}; shift 2 ;;
        --prefix) P=${2:?}; shift 2 ;;
        --keep) KEEP=1; shift ;;
        -h|--help) sed -n '2,/^set -uo/p' "$0" | sed -e '/^set -uo/d' -e 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option: $1" ;;
    esac
done
[[ $VARIANT == shunt || $VARIANT == ovs ]] || die "--variant is shunt or ovs, not $VARIANT"
[[ $COUNT =~ ^[1-9][0-9]*$ ]] || die "--count is a positive number, not $COUNT"
[[ $EUID -eq 0 ]] || die "run as root"
[[ -x $SHUNT ]] || die "no shunt binary at $SHUNT (swift build, or --shunt PATH)"
command -v tcpdump >/dev/null || die "tcpdump is needed in the capture namespace (Debian: tcpdump)"
OVS_SCHEMA=/usr/share/openvswitch/vswitch.ovsschema
if [[ $VARIANT == ovs ]]; then
    PATH=$PATH:/usr/sbin  # ovsdb-server and ovs-vswitchd live there
    for tool in ovsdb-tool ovsdb-server ovs-vswitchd ovs-vsctl ovs-ofctl ovs-appctl; do
        command -v "$tool" >/dev/null \
            || die "$tool not found: --variant ovs needs Open vSwitch (Debian: openvswitch-switch; Scripts/install-deps.sh installs it)"
    done
    [[ -f $OVS_SCHEMA ]] || die "no $OVS_SCHEMA: --variant ovs needs Open vSwitch (Debian: openvswitch-switch)"
fi

NAMESPACES=(c1 c2 srv cap)
[[ $VARIANT == ovs ]] && NAMESPACES+=(ovs)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/shunt-mirror-lab.XXXXXX")
OVSDIR=$WORK/ovs
FWD_PID="" DUMP_PID=""
ovs_pids() { local f; for f in "$OVSDIR"/vswitchd.pid "$OVSDIR"/ovsdb.pid; do [[ -s $f ]] && cat "$f"; done; }
cleanup() {
    trap - EXIT INT TERM HUP
    [[ -n $DUMP_PID ]] && kill "$DUMP_PID" 2>/dev/null
    [[ -n $FWD_PID ]] && kill "$FWD_PID" 2>/dev/null
    wait 2>/dev/null
    if [[ $KEEP == 1 ]]; then
        local pids
        pids=$(ovs_pids | xargs)
        echo "kept: namespaces ${NAMESPACES[*]/#/$P}, files in $WORK${pids:+, OVS PIDs $pids}"
        echo "remove with: ${pids:+kill $pids; }for ns in ${NAMESPACES[*]/#/$P}; do ip netns del \$ns; done; rm -rf $WORK"
        return
    fi
    # OVS by its own PIDs (vswitchd first, then its database), never by name.
    local pid
    for pid in $(ovs_pids); do
        kill -TERM "$pid" 2>/dev/null || continue
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
        kill -KILL "$pid" 2>/dev/null
    done
    for ns in "${NAMESPACES[@]}"; do ip netns del "$P$ns" 2>/dev/null; done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP
inns() { local ns=$1; shift; ip netns exec "$P$ns" "$@"; }

# The namespaces and veths, as every lab is described (shunt lab, docs/design/0020); the kernel
# VTEPs on the clients come after.
LINKS=(--link "c1:c1u@192.168.41.1/24=srv:s1" --link "c2:c2u@192.168.42.1/24=srv:s2")
if [[ $VARIANT == shunt ]]; then
    LINKS+=(--link "cap:cap0=srv:s3")
else
    LINKS+=(--link "ovs:o1=srv:s3" --link "cap:cap0=ovs:o2")
fi
"$SHUNT" lab up --prefix "$P" "${LINKS[@]}" || die "shunt lab up failed"
for i in 1 2; do
    # Always dstport 4789: without it Linux uses 8472.
    inns "c$i" ip link add vx0 type vxlan id 4100 dstport 4789 local "192.168.4$i.1" remote "192.168.4$i.254" dev "c${i}u"
    inns "c$i" ip addr add "10.41.0.$i/24" dev vx0
    inns "c$i" ip link set vx0 up
done

# Open vSwitch, private: its own database, sockets, pids and logs in $OVSDIR; bridges' management
# sockets there too (OVS_RUNDIR). br-phy holds the underlay (o1) and the VTEP address; br-int the
# type=vxlan port and o2, with one flow from the tunnel to o2 and nothing else (fail-mode=secure).
VSCTL=(ovs-vsctl "--db=unix:$OVSDIR/db.sock" --timeout=20)
ovs_start() {
    local env=(env "OVS_RUNDIR=$OVSDIR" "OVS_LOGDIR=$OVSDIR" "OVS_DBDIR=$OVSDIR" "OVS_SYSCONFDIR=$OVSDIR")
    mkdir "$OVSDIR" && ovsdb-tool create "$OVSDIR/conf.db" "$OVS_SCHEMA" || return 1
    inns ovs "${env[@]}" ovsdb-server "$OVSDIR/conf.db" --remote="punix:$OVSDIR/db.sock" --pidfile="$OVSDIR/ovsdb.pid" \
        --unixctl="$OVSDIR/ovsdb.ctl" --log-file="$OVSDIR/ovsdb.log" --detach || return 1
    "${VSCTL[@]}" --no-wait init || return 1
    inns ovs "${env[@]}" ovs-vswitchd "unix:$OVSDIR/db.sock" --pidfile="$OVSDIR/vswitchd.pid" \
        --unixctl="$OVSDIR/vswitchd.ctl" --log-file="$OVSDIR/vswitchd.log" --detach || return 1
    "${VSCTL[@]}" add-br br-phy -- set bridge br-phy datapath_type=netdev || return 1
    "${VSCTL[@]}" add-port br-phy o1 || return 1
    inns ovs ip addr add 192.168.43.1/24 dev br-phy || return 1
    inns ovs ip link set br-phy up || return 1
    "${VSCTL[@]}" add-br br-int -- set bridge br-int datapath_type=netdev fail-mode=secure || return 1
    "${VSCTL[@]}" add-port br-int vxlan0 -- set interface vxlan0 type=vxlan ofport_request=1 \
        options:remote_ip=192.168.43.254 options:local_ip=192.168.43.1 options:key=4200 options:dst_port=4789 || return 1
    "${VSCTL[@]}" add-port br-int o2 -- set interface o2 ofport_request=2 || return 1
    ovs-ofctl del-flows "unix:$OVSDIR/br-int.mgmt" || return 1
    ovs-ofctl add-flow "unix:$OVSDIR/br-int.mgmt" "in_port=vxlan0,tun_id=4200,actions=output:o2" || return 1
    # OVS routes tunnels by its own table, learned from the namespace's; added in case it lags.
    inns ovs "${env[@]}" ovs-appctl -t "$OVSDIR/vswitchd.ctl" ovs/route/add 192.168.43.0/24 br-phy >/dev/null 2>&1
    return 0
}
if [[ $VARIANT == ovs ]]; then
    ovs_start >"$WORK/ovs-start.log" 2>&1 || die "Open vSwitch did not start: $(tail -3 "$WORK/ovs-start.log")"
fi

# Not through inns: $! must be tcpdump's own PID (ip netns exec execs it). --immediate-mode: without
# it libpcap hands packets over when a ring block retires (up to a second later), and the last
# ones are lost when tcpdump is stopped.
ip netns exec "${P}cap" tcpdump -i cap0 -Q in -w "$WORK/cap.pcap" -U --immediate-mode >/dev/null 2>"$WORK/tcpdump.err" &
DUMP_PID=$!
args=(--port s1 --port s2 --port s3
      --vxlan vxc1,local=192.168.41.254,remote=192.168.41.1,dev=s1,vni=4100
      --vxlan vxc2,local=192.168.42.254,remote=192.168.42.1,dev=s2,vni=4100)
if [[ $VARIANT == ovs ]]; then
    args+=(--vxlan vxm,local=192.168.43.254,remote=192.168.43.1,dev=s3,vni=4200)
    MIRROR=client1,src=vxc1,to=vxm
else
    MIRROR=client1,src=vxc1,to=s3
fi
# Not through inns: $! must be shunt's own PID.
ip netns exec "${P}srv" "$SHUNT" forward "${args[@]}" --control "$WORK/shunt.ctl" --json \
    >"$WORK/shunt.out" 2>"$WORK/shunt.err" &
FWD_PID=$!
for _ in $(seq 100); do grep -q '"type":"ready"' "$WORK/shunt.out" 2>/dev/null && break; sleep 0.05; done
grep -q '"type":"ready"' "$WORK/shunt.out" || die "shunt did not start: $(cat "$WORK/shunt.err")"
ctl() { "$SHUNT" ctl --control "$WORK/shunt.ctl" "$@"; }
# tcpdump is ready once it has said so on stderr.
for _ in $(seq 100); do grep -q "listening on" "$WORK/tcpdump.err" 2>/dev/null && break; sleep 0.05; done
sleep 0.3
# Warm up: the VTEPs' and the clients' ARP (the first ping waits for both), then mirror client
# 1's port live.
inns c1 ping -c 2 -i 0.5 -W 3 10.41.0.2 >/dev/null || echo "mirror-lab: warm-up ping failed" >&2
if [[ $VARIANT == ovs ]]; then
    # The warm-up's ARP broadcasts, flooded to vxm, made Shunt resolve OVS's VTEP; wait until it is.
    neighbour() {
        ctl show --json | python3 -c '
import json, sys
print(next((p.get("neighbour", "") for p in json.load(sys.stdin)["ports"] if p["name"] == "vxm"), ""))'
    }
    for _ in $(seq 40); do [[ $(neighbour) == reachable ]] && break; sleep 0.1; done
    [[ $(neighbour) == reachable ]] || echo "mirror-lab: OVS's VTEP 192.168.43.1 not resolved yet" >&2
fi
ctl mirror add "$MIRROR" >/dev/null || die "mirror add failed"
sleep 0.2

# ping's summary: "N packets transmitted, M received, ..." -> "N M".
ping_counts() { awk '/packets transmitted/ { print $1, $4; found = 1 } END { if (!found) print 0, 0 }'; }
echo "== client 1: ping -c $COUNT 10.41.0.2 (client 2, through Shunt)"
inns c1 ping -c "$COUNT" -i 0.2 -W 2 10.41.0.2 >"$WORK/ping12.txt"
tail -2 "$WORK/ping12.txt"
echo "== client 2: ping -c $COUNT 10.41.0.1 (client 1, through Shunt)"
inns c2 ping -c "$COUNT" -i 0.2 -W 2 10.41.0.1 >"$WORK/ping21.txt"
tail -2 "$WORK/ping21.txt"
read -r PING12_TX PING12_RX < <(ping_counts <"$WORK/ping12.txt")
read -r PING21_TX PING21_RX < <(ping_counts <"$WORK/ping21.txt")
sleep 0.3
echo
echo "== Shunt: mirror sessions"
ctl mirror list
read -r M_SELECTED M_MIRRORED M_DROPPED < <(ctl mirror list --json | python3 -c '
import json, sys
m = next(m for m in json.load(sys.stdin)["mirrors"] if m["name"] == "client1")
print(m["selected"], m["mirrored"], m["dropped"])' || echo "- - -")

OVS_RESULT=""
if [[ $VARIANT == ovs ]]; then
    sleep 0.2
    echo
    echo "== Open vSwitch: br-int ports (ovs-ofctl dump-ports) and flow"
    ovs-ofctl --names dump-ports "unix:$OVSDIR/br-int.mgmt" >"$WORK/ovs-ports.txt" 2>&1
    # "port  vxlan0: rx pkts=N, ..." then "tx pkts=N, ...": one line per port.
    awk '/port /{ name = $2; sub(":", "", name); split($4, r, "[=,]") }
         /tx pkts/{ split($2, t, "[=,]"); printf "  %s: rx %s, tx %s\n", name, r[2], t[2] }' "$WORK/ovs-ports.txt" \
        | tee "$WORK/ovs-ports.short"
    ovs-ofctl --names dump-flows "unix:$OVSDIR/br-int.mgmt" 2>&1 | grep -v '^NXST\|^OFPST' | sed -e 's/^ */  /' \
        | tee "$WORK/ovs-flows.txt"
    # "  NAME: rx N, tx M" -> N (rx) or M (tx).
    port_stat() { awk -v p="$1:" -v f="$2" '$1 == p { v = (f == "rx" ? $3 : $5); sub(",", "", v); print v }' "$WORK/ovs-ports.short"; }
    FLOW_PACKETS=$(grep -o 'n_packets=[0-9]*' "$WORK/ovs-flows.txt" | head -1 | cut -d= -f2)
    OVS_RESULT=" ovs_vxlan_rx=$(port_stat vxlan0 rx) ovs_cap_tx=$(port_stat o2 tx) ovs_flow_packets=${FLOW_PACKETS:--}"
fi
sleep 0.3
# TERM, not INT: background jobs of a script ignore SIGINT.
kill -TERM "$FWD_PID"; wait "$FWD_PID" 2>/dev/null; FWD_PID=""
kill -TERM "$DUMP_PID"; wait "$DUMP_PID" 2>/dev/null; DUMP_PID=""
count() { tcpdump -r "$WORK/cap.pcap" -n "$@" 2>/dev/null | wc -l; }
CAP_REQ=$(count 'icmp[icmptype] == icmp-echo') CAP_REP=$(count 'icmp[icmptype] == icmp-echoreply')
CAP_ARP=$(count arp) CAP_ALL=$(count)
echo
echo "== capture namespace: what arrived on cap0"
echo "echo requests: $CAP_REQ, echo replies: $CAP_REP, ARP: $CAP_ARP, all: $CAP_ALL"
tcpdump -r "$WORK/cap.pcap" -n -e 2>/dev/null | head -6
echo
echo "== Shunt's final port counters"
grep '"type":"final"' "$WORK/shunt.out" | python3 -c '
import json, sys
for p in json.load(sys.stdin)["ports"]:
    print("  %s: rx %d, tx %d" % (p["port"], p.get("rx_packets", 0), p.get("tx_packets", 0)))'
echo
echo "RESULT variant=$VARIANT count=$COUNT ping12_tx=$PING12_TX ping12_rx=$PING12_RX ping21_tx=$PING21_TX" \
     "ping21_rx=$PING21_RX cap_requests=$CAP_REQ cap_replies=$CAP_REP cap_arp=$CAP_ARP cap_all=$CAP_ALL" \
     "mirror_selected=$M_SELECTED mirror_mirrored=$M_MIRRORED mirror_dropped=$M_DROPPED$OVS_RESULT seconds=$SECONDS"
