#!/usr/bin/env bash
# mirror-lab.sh: the classic mirrored-port experiment (OVS + Linux VXLAN), with Shunt in place
# of the OVS bridge.
#
#   [c1] vx0 10.41.0.1 (VNI 4100, dstport 4789) over c1u 192.168.41.1 --veth-- s1 [srv: shunt] s2 --veth-- c2u 192.168.42.1 over vx0 10.41.0.2 [c2]
#                                                                              s3 --veth-- cap0 [cap]
#
# Each client has a Linux VXLAN interface point-to-point to the test server, where Shunt
# terminates both tunnels (tunnel ports vxc1 and vxc2, VTEPs 192.168.41.254 and 192.168.42.254)
# and joins them with NORMAL. A mirror session copies client 1's port (vxc1, both directions) to
# s3 (added live after a warm-up ping); the capture namespace records what arrives on cap0 with
# tcpdump. s3 is also a bridge port, so NORMAL floods broadcasts (ARP) to it as well.
# One run pings c1 -> c2 and prints what each side saw: the ping, the capture, Shunt's counters.
#
# Run as root. Usage: Scripts/mirror-lab.sh [--shunt PATH] [--count N] [--keep]
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SHUNT=$ROOT/.build/debug/shunt
COUNT=10
KEEP=0
die() { echo "mirror-lab: $*" >&2; exit 1; }
while [[ $# -gt 0 ]]; do
    case $1 in
        --shunt) SHUNT=${2:?}; shift 2 ;;
        --count) COUNT=${2:?}; shift 2 ;;
        --keep) KEEP=1; shift ;;
        -h|--help) sed -n '2,/^set -uo/p' "$0" | sed -e '/^set -uo/d' -e 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option: $1" ;;
    esac
done
[[ $EUID -eq 0 ]] || die "run as root"
[[ -x $SHUNT ]] || die "no shunt binary at $SHUNT (swift build, or --shunt PATH)"
command -v tcpdump >/dev/null || die "tcpdump is needed in the capture namespace (Debian: tcpdump)"

P="ml$$"
WORK=$(mktemp -d /tmp/shunt-mirror-lab.XXXXXX)
FWD_PID="" DUMP_PID=""
cleanup() {
    [[ -n $DUMP_PID ]] && kill "$DUMP_PID" 2>/dev/null
    [[ -n $FWD_PID ]] && kill "$FWD_PID" 2>/dev/null
    wait 2>/dev/null
    for ns in c1 c2 srv cap; do ip netns del "$P$ns" 2>/dev/null; done
    [[ $KEEP == 1 ]] && echo "files kept in $WORK" || rm -rf "$WORK"
}
trap cleanup EXIT
inns() { local ns=$1; shift; ip netns exec "$P$ns" "$@"; }

for ns in c1 c2 srv cap; do
    ip netns add "$P$ns" || die "ip netns add failed"
    inns "$ns" ip link set lo up
    inns "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
done
ip link add c1u netns "${P}c1" type veth peer name s1 netns "${P}srv"
ip link add c2u netns "${P}c2" type veth peer name s2 netns "${P}srv"
ip link add cap0 netns "${P}cap" type veth peer name s3 netns "${P}srv"
for i in 1 2; do
    inns "c$i" ip addr add "192.168.4$i.1/24" dev "c${i}u"
    inns "c$i" ip link set "c${i}u" up
    # Always dstport 4789: without it Linux uses 8472.
    inns "c$i" ip link add vx0 type vxlan id 4100 dstport 4789 local "192.168.4$i.1" remote "192.168.4$i.254" dev "c${i}u"
    inns "c$i" ip addr add "10.41.0.$i/24" dev vx0
    inns "c$i" ip link set vx0 up
    inns srv ip link set "s$i" up
done
inns srv ip link set s3 up
inns cap ip link set cap0 up

# Not through inns: $! must be tcpdump's own PID (ip netns exec execs it).
ip netns exec "${P}cap" tcpdump -i cap0 -w "$WORK/cap.pcap" -U >/dev/null 2>"$WORK/tcpdump.err" &
DUMP_PID=$!
# Not through inns: $! must be shunt's own PID.
ip netns exec "${P}srv" "$SHUNT" forward --port s1 --port s2 --port s3 \
    --vxlan vxc1,local=192.168.41.254,remote=192.168.41.1,dev=s1,vni=4100 \
    --vxlan vxc2,local=192.168.42.254,remote=192.168.42.1,dev=s2,vni=4100 \
    --control "$WORK/shunt.ctl" --json >"$WORK/shunt.out" 2>"$WORK/shunt.err" &
FWD_PID=$!
for _ in $(seq 100); do grep -q '"type":"ready"' "$WORK/shunt.out" 2>/dev/null && break; sleep 0.05; done
grep -q '"type":"ready"' "$WORK/shunt.out" || die "shunt did not start: $(cat "$WORK/shunt.err")"
sleep 0.5
# Warm up: the VTEPs' and the clients' ARP (the first ping waits for both), then mirror client
# 1's port live.
inns c1 ping -c 2 -i 0.5 -W 3 10.41.0.2 >/dev/null || echo "mirror-lab: warm-up ping failed" >&2
"$SHUNT" ctl --control "$WORK/shunt.ctl" mirror add client1,src=vxc1,to=s3 >/dev/null || die "mirror add failed"
sleep 0.2

echo "== client 1: ping -c $COUNT 10.41.0.2 (client 2, through Shunt)"
inns c1 ping -c "$COUNT" -i 0.2 -W 2 10.41.0.2 | tail -2
echo
echo "== Shunt: mirror sessions"
"$SHUNT" ctl --control "$WORK/shunt.ctl" mirror list
sleep 0.5
# TERM, not INT: background jobs of a script ignore SIGINT.
kill -TERM "$FWD_PID"; wait "$FWD_PID" 2>/dev/null; FWD_PID=""
kill -TERM "$DUMP_PID"; wait "$DUMP_PID" 2>/dev/null; DUMP_PID=""
echo
echo "== capture namespace: what arrived on cap0"
echo "echo requests: $(tcpdump -r "$WORK/cap.pcap" -n 'icmp[icmptype] == icmp-echo' 2>/dev/null | wc -l)," \
     "echo replies: $(tcpdump -r "$WORK/cap.pcap" -n 'icmp[icmptype] == icmp-echoreply' 2>/dev/null | wc -l)," \
     "ARP: $(tcpdump -r "$WORK/cap.pcap" -n arp 2>/dev/null | wc -l)," \
     "all: $(tcpdump -r "$WORK/cap.pcap" -n 2>/dev/null | wc -l)"
tcpdump -r "$WORK/cap.pcap" -n -e 2>/dev/null | head -6
echo
echo "== Shunt's final port counters"
grep '"type":"final"' "$WORK/shunt.out" | python3 -c '
import json, sys
for p in json.load(sys.stdin)["ports"]:
    print("  %s: rx %d, tx %d" % (p["port"], p.get("rx_packets", 0), p.get("tx_packets", 0)))'
