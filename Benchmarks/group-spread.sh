#!/usr/bin/env bash
# group-spread.sh: how a select group spreads flows on the wire. 10,000 UDP flows (each sent
# twice, 10 kpps) from gen into `group:1` (two buckets: output to p1 -> a0 and p2 -> b0) over
# weights 1:1 and 1:3, both datapaths, in fresh namespaces P-{fwd,gen,a,b}. Prints one SPREAD
# line per run: received at a and b (shunt sink, ring engine), the expected count at a, the
# fast-path hits and the group's bucket counters (dump-group-stats).
# Run as root. Usage: Benchmarks/group-spread.sh [SHUNT-BINARY] (default .build/release/shunt)
set -u
S=${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.build/release/shunt}
[[ -x $S ]] || { echo "group-spread: no shunt binary at $S" >&2; exit 2; }
P=spr$$
W=$(mktemp -d)
down() { for ns in fwd gen a b; do ip netns del $P-$ns 2>/dev/null; done; }
trap 'down; rm -rf "$W"' EXIT
for dp in afpacket xdp; do
  for w in "1 1" "1 3"; do
    set -- $w
    down
    ip netns add $P-fwd; ip netns exec $P-fwd sysctl -qw net.ipv6.conf.all.disable_ipv6=1
    i=0
    for side in gen a b; do
      ip netns add $P-$side; ip netns exec $P-$side sysctl -qw net.ipv6.conf.all.disable_ipv6=1
      ip link add p$i netns $P-fwd type veth peer name ${side}0 netns $P-$side
      ip -n $P-fwd link set p$i up; ip -n $P-$side link set ${side}0 up; i=$((i+1))
    done
    echo "group_id=1,type=select,bucket=weight:$1,actions=output:2,bucket=weight:$2,actions=output:3" > $W/groups
    echo "in_port=1,actions=group:1" > $W/flows
    extra=(); [[ $dp == xdp ]] && extra=(--fix-peers)
    ip netns exec $P-fwd $S forward --port p0 --port p1 --port p2 --groups $W/groups --flows $W/flows --datapath $dp "${extra[@]}" --control $W/ctl > $W/fwd.out 2>&1 &
    FP=$!
    ip netns exec $P-a $S sink --port a0 --engine ring --json > $W/a.out 2>&1 &
    AP=$!
    ip netns exec $P-b $S sink --port b0 --engine ring --json > $W/b.out 2>&1 &
    BP=$!
    sleep 2
    ip netns exec $P-gen $S gen --port gen0 --engine ring --flows 10000 --count 20000 --rate 10000 > $W/gen.out 2>&1
    sleep 1
    stats=$($S ctl --control $W/ctl dump-group-stats)
    hits=$($S ctl --control $W/ctl show --json | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["total"]["fast_path_hits"])')
    kill -INT $AP $BP; sleep 0.5; kill -INT $FP; wait $FP 2>/dev/null
    a=$(python3 -c 'import json,sys
for l in open(sys.argv[1]):
    if "\"final\"" in l: print(json.loads(l)["received"])' $W/a.out)
    b=$(python3 -c 'import json,sys
for l in open(sys.argv[1]):
    if "\"final\"" in l: print(json.loads(l)["received"])' $W/b.out)
    echo "SPREAD datapath=$dp weights=$1:$2 a=$a b=$b fast_path_hits=$hits expected_a=$((20000 * $1 / ($1 + $2))) | $stats"
  done
done
