#!/usr/bin/env bash
# The main demo, from a fresh Debian machine (as root): installs what is missing, builds in
# release mode (BPF objects included), builds the gen -- fwd -- sink lab, runs `shunt forward`
# in fwd between its two veths, sends traffic through it with `shunt gen`, prints what arrived;
# then the same with flow tables on the XDP datapath (the fast path forwards in the kernel,
# `shunt ctl` shows the tables and the cache); and removes the lab (also on Ctrl-C or failure).
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $(id -u) -eq 0 ]] || { echo "demo: run as root (it creates network namespaces)" >&2; exit 1; }
Scripts/install-deps.sh
swift build -c release
shunt=$(swift build -c release --show-bin-path)/shunt
source Scripts/lab.sh
P="shuntdemo$$-"
fwd_pid=""; sink_pid=""
cleanup() {
    [[ -n $fwd_pid ]] && kill "$fwd_pid" 2>/dev/null || true
    [[ -n $sink_pid ]] && kill "$sink_pid" 2>/dev/null || true
    wait 2>/dev/null || true
    lab_down "$P"
}
trap cleanup EXIT INT TERM
lab_up "$P"
# Frames the generator injects with XDP (its xdp engine, where the kernel allows live frames)
# reach fwd0 only if fwd0 runs NAPI (GRO on); the afxdp and ring engines need nothing.
ip netns exec "${P}fwd" ethtool -K fwd0 gro on >/dev/null
out=$(mktemp -d)
echo "== lab: ${P}gen [gen0] -- [fwd0] ${P}fwd [fwd1] -- [sink0] ${P}sink"
ip netns exec "${P}sink" "$shunt" sink --port sink0 --json >"$out/sink.json" &
sink_pid=$!
ip netns exec "${P}fwd" "$shunt" forward --port fwd0 --port fwd1 --stats-interval 1 >"$out/fwd.txt" &
fwd_pid=$!
sleep 1
echo "== sending 64-byte frames for 3 s as fast as the generator can"
ip netns exec "${P}gen" "$shunt" gen --port gen0 --size 60 --duration 3 | tail -1
sleep 0.5
kill -INT "$fwd_pid"; wait "$fwd_pid" || true; fwd_pid=""
kill -INT "$sink_pid"; wait "$sink_pid" || true; sink_pid=""
echo "== shunt forward (per-second lines, then the final statistics)"
cat "$out/fwd.txt"
echo "== the sink"
tail -1 "$out/sink.json"
# Nothing lost unaccounted: what the forwarder says it sent out of fwd1 is what the sink counted.
tx=$(awk '/^final statistics/ { final = 1 } final && $1 == "fwd1:" { for (i = 1; i <= NF; i++) if ($i == "tx") { print $(i + 1); exit } }' "$out/fwd.txt")
received=$(tail -1 "$out/sink.json" | sed -E 's/.*"received":([0-9]+).*/\1/')
if [[ -n $tx && $tx == "$received" ]]; then
    echo "== check: the sink received $received frames, the forwarder's tx out of fwd1: equal"
else
    echo "== check FAILED: the forwarder sent ${tx:-?} frames out of fwd1, the sink received ${received:-?}" >&2
    exit 1
fi
echo
echo "== flow tables on the XDP datapath: the first packet of a flow goes up to the Swift slow path,"
echo "   the rest are forwarded by the XDP fast path from the cache entry the slow path installed"
cat >"$out/flows.txt" <<'FLOWS'
# in_port 1 (fwd0) -> rewrite the destination MAC, out of port 2 (fwd1)
table=0,priority=10,in_port=1,actions=mod_dl_dst:02:00:00:00:5e:01,output:2
table=0,priority=10,in_port=2,actions=output:1
FLOWS
ctl="$out/shunt.ctl"
ip netns exec "${P}sink" "$shunt" sink --port sink0 --json >"$out/sink.json" &
sink_pid=$!
ip netns exec "${P}fwd" "$shunt" forward --port fwd0 --port fwd1 --flows "$out/flows.txt" --datapath xdp \
    --fix-peers --control "$ctl" >"$out/fwd.txt" 2>&1 &
fwd_pid=$!
sleep 1
ip netns exec "${P}gen" "$shunt" gen --port gen0 --size 60 --flows 4 --duration 2 | tail -1
echo "== shunt ctl dump-flows"
"$shunt" ctl --control "$ctl" dump-flows
echo "== shunt ctl show"
"$shunt" ctl --control "$ctl" show
echo "== shunt ctl dump-cache"
"$shunt" ctl --control "$ctl" dump-cache
kill -INT "$fwd_pid"; wait "$fwd_pid" || true; fwd_pid=""
kill -INT "$sink_pid"; wait "$sink_pid" || true; sink_pid=""
echo "== the sink"
tail -1 "$out/sink.json"
rm -rf "$out"
