#!/usr/bin/env bash
# group-bench.sh: what a 4-bucket select group costs against a plain output, in packets per
# second, on both datapaths, side by side.
#
#   [gen] gen0 <-veth-> fwd0 [fwd: shunt forward] fwd1 <-veth-> sink0 [sink: shunt sink, xdp engine]
#
# Forwarders (each `shunt forward --port fwd0 --port fwd1 --datapath DP --flows F`):
#   plain-DP    F: in_port=1,actions=mod_dl_dst:02:00:00:00:00:01,output:2
#   select4-DP  F: in_port=1,actions=group:1, with --groups G: group_id=1,type=select and four
#               buckets, bucket i: mod_dl_dst:02:00:00:00:00:0i,output:2 (weights 1)
# for DP in afpacket and xdp. The per-packet work is the same (one MAC rewrite and an output);
# what differs is the translation of each flow (the group's hash and choice) and, on xdp, how
# the flows' entries spread. `shunt gen` (--gen-engine, pump by default: in-kernel, enough to
# overload the XDP datapath) sends 64-byte frames of --flows UDP flows flat out for --seconds
# after a warm-up of 2000 frames at 10 kpps (every flow translated and cached); the sink's xdp
# engine counts what arrives. Generator on CPU 0, forwarder on CPU 1 (for xdp, fwd0's NAPI
# thread too, as in dvr-bench.sh). Repeats interleaved; medians with min-max, and each select4
# median as a ratio to its datapath's plain median.
#
# Run as root. Usage: Benchmarks/group-bench.sh [--repeats N] [--seconds S] [--flows N]
#   [--gen-engine ENGINE] [--shunt PATH] [--out DIR]
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REPEATS=3
SECONDS_PER_RUN=3
FLOWS=1024
GEN_ENGINE=pump
SHUNT=""
OUT=""
PREFIX="gb$$"
GEN_CPU=0
FWD_CPU=1
die() { echo "group-bench: $*" >&2; exit 2; }
log() { echo "[$(date +%H:%M:%S)] $*" >&2; }
while [[ $# -gt 0 ]]; do
    case $1 in
        --repeats) REPEATS=${2:?}; shift 2 ;;
        --seconds) SECONDS_PER_RUN=${2:?}; shift 2 ;;
        --flows) FLOWS=${2:?}; shift 2 ;;
        --gen-engine) GEN_ENGINE=${2:?}; shift 2 ;;
        --shunt) SHUNT=${2:?}; shift 2 ;;
        --out) OUT=${2:?}; shift 2 ;;
        -h|--help) sed -n '2,/^set -uo/p' "$0" | sed -e '/^set -uo/d' -e 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option: $1" ;;
    esac
done
[[ $EUID -eq 0 ]] || die "run as root"
[[ $(nproc) -ge 2 ]] || die "needs 2 CPUs (generator and forwarder apart)"
: "${SHUNT:=$ROOT/.build/release/shunt}"
[[ -x $SHUNT ]] || die "no shunt binary at $SHUNT (swift build -c release, or --shunt PATH)"
: "${OUT:=$ROOT/bench-results/group-bench-$(date +%Y%m%d-%H%M%S)}"
RAW=$OUT/raw
mkdir -p "$RAW" || die "cannot create $OUT"
GEN_NS=$PREFIX-gen FWD_NS=$PREFIX-fwd SINK_NS=$PREFIX-sink
FWD_PID="" SINK_PID=""

stop_pid() {
    local pid=$1
    [[ -z $pid ]] && return 0
    kill -INT "$pid" 2>/dev/null
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    return 0
}
cleanup() {
    stop_pid "$SINK_PID"; stop_pid "$FWD_PID"
    ip netns exec "$FWD_NS" sh -c "echo 0 > /sys/class/net/fwd0/threaded" 2>/dev/null
    "$SHUNT" lab down --prefix "$PREFIX-" >/dev/null 2>&1
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

"$SHUNT" lab up --prefix "$PREFIX-" >"$RAW/lab.out" 2>&1 || die "shunt lab up failed: $(cat "$RAW/lab.out")"
for pair in "$GEN_NS gen0" "$FWD_NS fwd0" "$FWD_NS fwd1" "$SINK_NS sink0"; do
    set -- $pair
    ip netns exec "$1" ethtool -K "$2" gro on >/dev/null || die "ethtool -K $2 gro on"
done
printf '%s\n' "in_port=1,actions=mod_dl_dst:02:00:00:00:00:01,output:2" >"$RAW/plain.flows"
printf '%s\n' "in_port=1,actions=group:1" >"$RAW/select4.flows"
printf '%s\n' "group_id=1,type=select,bucket=actions=mod_dl_dst:02:00:00:00:00:01,output:2,bucket=actions=mod_dl_dst:02:00:00:00:00:02,output:2,bucket=actions=mod_dl_dst:02:00:00:00:00:03,output:2,bucket=actions=mod_dl_dst:02:00:00:00:00:04,output:2" >"$RAW/select4.groups"

napi_pin() {
    ip netns exec "$FWD_NS" sh -c "echo 1 > /sys/class/net/fwd0/threaded" || return 1
    sleep 0.2
    local t
    for t in /proc/[0-9]*; do
        [[ $(cat "$t/comm" 2>/dev/null) == napi/fwd0-* ]] && taskset -pc "$FWD_CPU" "${t#/proc/}" >/dev/null
    done
    return 0
}

wait_ready() { for _ in $(seq 100); do grep -q '"type":"ready"' "$1" 2>/dev/null && return 0; sleep 0.1; done; return 1; }

trial() { # FORWARDER REPEAT
    local name=$1 repeat=$2 tag=$1-$2 kind=${1%-*} dp=${1##*-}
    local args=(--port fwd0 --port fwd1 --datapath "$dp" --flows "$RAW/$kind.flows" --no-control --json)
    [[ $kind == select4 ]] && args+=(--groups "$RAW/select4.groups")
    [[ $dp == xdp ]] && { args+=(--fix-peers); napi_pin || return 1; }
    ip netns exec "$FWD_NS" taskset -c "$FWD_CPU" "$SHUNT" forward "${args[@]}" >"$RAW/$tag.fwd.out" 2>"$RAW/$tag.fwd.err" &
    FWD_PID=$!
    wait_ready "$RAW/$tag.fwd.out" || { log "$name did not start: $(cat "$RAW/$tag.fwd.err")"; return 1; }
    ip netns exec "$GEN_NS" taskset -c "$GEN_CPU" "$SHUNT" gen --port gen0 --engine ring --flows "$FLOWS" \
        --count 2000 --rate 10000 >"$RAW/$tag.warmup.out" 2>&1 || { log "warm-up failed"; return 1; }
    sleep 0.3
    ip netns exec "$SINK_NS" "$SHUNT" sink --port sink0 --engine xdp --json >"$RAW/$tag.sink.out" 2>"$RAW/$tag.sink.err" &
    SINK_PID=$!
    wait_ready "$RAW/$tag.sink.out" || { log "sink did not start: $(cat "$RAW/$tag.sink.err")"; return 1; }
    ip netns exec "$GEN_NS" taskset -c "$GEN_CPU" "$SHUNT" gen --port gen0 --engine "$GEN_ENGINE" --flows "$FLOWS" \
        --duration "$SECONDS_PER_RUN" >"$RAW/$tag.gen.out" 2>"$RAW/$tag.gen.err" || { log "gen failed: $(cat "$RAW/$tag.gen.err")"; return 1; }
    sleep 0.5
    stop_pid "$SINK_PID"; SINK_PID=""
    stop_pid "$FWD_PID"; FWD_PID=""
    [[ $dp == xdp ]] && ip netns exec "$FWD_NS" sh -c "echo 0 > /sys/class/net/fwd0/threaded"
    python3 - "$name" "$RAW/$tag.gen.out" "$RAW/$tag.sink.out" >>"$RAW/trials.jsonl" <<'PY' || return 1
import json, sys
def final(path):
    last = {}
    for line in open(path):
        try:
            o = json.loads(line)
        except ValueError:
            continue
        if o.get("type") == "final":
            last = o
    return last
g, s = final(sys.argv[2]), final(sys.argv[3])
secs = g.get("duration_s") or 0
if not secs or s.get("received") is None:
    sys.exit(f"group-bench: {sys.argv[1]}: no final report")
print(json.dumps({"forwarder": sys.argv[1], "offered_pps": g.get("sent", 0) / secs, "delivered_pps": s["received"] / secs}))
PY
    log "$name: $(tail -1 "$RAW/trials.jsonl")"
}

FORWARDERS=(plain-afpacket select4-afpacket plain-xdp select4-xdp)
for r in $(seq "$REPEATS"); do
    for f in "${FORWARDERS[@]}"; do trial "$f" "$r" || exit 1; done
done
python3 - "$RAW/trials.jsonl" <<'PY' | tee "$OUT/results.md"
import json, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    t = json.loads(line)
    rows.setdefault(t["forwarder"], []).append(t)
med = {f: statistics.median(x["delivered_pps"] for x in v) for f, v in rows.items()}
print("| forwarder | median Mpps | min-max Mpps | ratio to plain (same datapath) | offered (median Mpps) |")
print("|---|---|---|---|---|")
for f, v in rows.items():
    d = [x["delivered_pps"] / 1e6 for x in v]
    base = med.get("plain-" + f.split("-")[-1])
    ratio = f"{med[f] / base:.2f}" if base else "-"
    offered = statistics.median(x["offered_pps"] for x in v) / 1e6
    print(f"| {f} | {med[f] / 1e6:.3f} | {min(d):.3f}-{max(d):.3f} | {ratio} | {offered:.3f} |")
PY
