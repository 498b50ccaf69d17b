#!/usr/bin/env bash
# mirror-bench.sh: what port mirroring costs the forwarded traffic: forwarded pps with 0, 1 and
# 2 mirror sessions, side by side in one run.
#
#   [gen] gen0 <-veth-> fwd0 [fwd: shunt forward] fwd1 <-veth-> sink0 [sink]
#                                                 fwd2 <-veth-> mon0  [mon: the analysis port]
#
# `shunt gen` sends 60-byte frames flat out for --seconds; the forwarded rate is what sink0's
# kernel counted (ip -s link) divided by the time. The table is in_port=1 -> output:2.
#   0 sessions: no --mirror
#   1 session:  --mirror rx,src=fwd0,dir=in,to=fwd2            (SPAN of the ingress)
#   2 sessions: + --mirror tx,src=fwd1,dir=out,to=fwd2         (and of the egress: 2 copies/packet)
# For each datapath (--datapaths, default afpacket,xdp), repeats are interleaved (0 1 2 0 1 2 ...);
# the table shows medians with min-max. The default run (3 repeats, 5 s) takes under 5 minutes.
#
# Run as root. Usage: Benchmarks/mirror-bench.sh [--repeats N] [--seconds S] [--datapaths LIST] [--out DIR] [--no-build] [--shunt PATH]
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REPEATS=3
SECONDS_PER_RUN=5
DATAPATHS="afpacket,xdp"
OUT=""
BUILD=1
SHUNT_OVERRIDE=""
die() { echo "mirror-bench: $*" >&2; exit 1; }
log() { echo "[$(date +%H:%M:%S)] $*" >&2; }
while [[ $# -gt 0 ]]; do
    case $1 in
        --repeats) REPEATS=${2:?}; shift 2 ;;
        --seconds) SECONDS_PER_RUN=${2:?}; shift 2 ;;
        --datapaths) DATAPATHS=${2:?}; shift 2 ;;
        --out) OUT=${2:?}; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        --shunt) SHUNT_OVERRIDE=${2:?}; BUILD=0; shift 2 ;;
        -h|--help) sed -n '2,/^set -uo/p' "$0" | sed -e '/^set -uo/d' -e 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option: $1" ;;
    esac
done
[[ $EUID -eq 0 ]] || die "run as root"
[[ $REPEATS =~ ^[1-9][0-9]*$ ]] || die "--repeats must be a positive number"
SHUNT=${SHUNT_OVERRIDE:-$ROOT/.build/release/shunt}
if [[ $BUILD == 1 ]]; then
    (cd "$ROOT" && swift build -c release >&2) || die "swift build failed"
fi
[[ -x $SHUNT ]] || die "no shunt binary at $SHUNT"
: "${OUT:=$ROOT/bench-results/mirror-$(date +%Y%m%d-%H%M%S)}"
RAW=$OUT/raw
mkdir -p "$RAW"

# shellcheck source=../Scripts/lab.sh
source "$ROOT/Scripts/lab.sh"
PREFIX="mib$$"
FWD_PID=""
cleanup() {
    [[ -n $FWD_PID ]] && kill "$FWD_PID" 2>/dev/null
    lab_down "$PREFIX"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM
inns() { local ns=$1; shift; ip netns exec "$PREFIX$ns" "$@"; }

lab_up "$PREFIX" --monitor-ports 1 || die "lab_up failed"
for pair in gen:gen0 fwd:fwd0 fwd:fwd1 fwd:fwd2 sink:sink0 mon:mon0; do
    inns "${pair%%:*}" ethtool -K "${pair##*:}" gro on >/dev/null 2>&1
done
printf '%s\n' 'table=0,priority=1,in_port=1,actions=output:2' >"$RAW/flows.txt"

sink_rx() { inns sink ip -s -j link show sink0 | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["stats64"]["rx"]["packets"])'; }

run_one() {
    local dp=$1 sessions=$2 tag=$3
    local mirrors=()
    ((sessions >= 1)) && mirrors+=(--mirror rx,src=fwd0,dir=in,to=fwd2)
    ((sessions >= 2)) && mirrors+=(--mirror tx,src=fwd1,dir=out,to=fwd2)
    local extra=()
    [[ $dp == xdp ]] && extra+=(--fix-peers)
    ip netns exec "${PREFIX}fwd" taskset -c 1 "$SHUNT" forward --port fwd0 --port fwd1 --port fwd2 --flows "$RAW/flows.txt" \
        --datapath "$dp" "${extra[@]}" "${mirrors[@]}" --control "$RAW/$tag.ctl" --json \
        >"$RAW/$tag.fwd.out" 2>"$RAW/$tag.fwd.err" &
    FWD_PID=$!
    for _ in $(seq 100); do grep -q '"type":"ready"' "$RAW/$tag.fwd.out" 2>/dev/null && break; sleep 0.05; done
    grep -q '"type":"ready"' "$RAW/$tag.fwd.out" || die "shunt did not start: $(cat "$RAW/$tag.fwd.err")"
    sleep 0.3
    local before after t0 t1
    before=$(sink_rx)
    t0=$(date +%s.%N)
    ip netns exec "${PREFIX}gen" taskset -c 0 "$SHUNT" gen --port gen0 --size 60 --duration "$SECONDS_PER_RUN" \
        >"$RAW/$tag.gen.out" 2>"$RAW/$tag.gen.err" || die "shunt gen failed: $(cat "$RAW/$tag.gen.err")"
    t1=$(date +%s.%N)
    sleep 0.2
    after=$(sink_rx)
    "$SHUNT" ctl --control "$RAW/$tag.ctl" mirror list --json >"$RAW/$tag.mirrors.json" 2>/dev/null
    kill -TERM "$FWD_PID"
    wait "$FWD_PID" 2>/dev/null
    FWD_PID=""
    python3 -c 'import sys; print(f"{(int(sys.argv[2]) - int(sys.argv[1])) / (float(sys.argv[4]) - float(sys.argv[3])):.0f}")' \
        "$before" "$after" "$t0" "$t1"
}

IFS=, read -r -a DPS <<<"$DATAPATHS"
declare -A RESULTS
log "lab ${PREFIX}{gen,fwd,sink,mon}; results in $OUT"
for ((r = 1; r <= REPEATS; r++)); do
    for dp in "${DPS[@]}"; do
        for s in 0 1 2; do
            pps=$(run_one "$dp" "$s" "r$r-$dp-$s") || die "run failed"
            log "repeat $r $dp, $s session(s): $pps pps forwarded"
            RESULTS[$dp-$s]+="$pps "
        done
    done
done

{
    echo "| datapath | 0 sessions (pps, median [min-max]) | 1 session | 2 sessions |"
    echo "|---|---|---|---|"
    for dp in "${DPS[@]}"; do
        python3 - "$dp" "${RESULTS[$dp-0]}" "${RESULTS[$dp-1]}" "${RESULTS[$dp-2]}" <<'PY'
import statistics, sys
cells = []
for v in sys.argv[2:]:
    xs = sorted(map(float, v.split()))
    cells.append(f"{statistics.median(xs):,.0f} [{xs[0]:,.0f}-{xs[-1]:,.0f}]")
print(f"| {sys.argv[1]} | " + " | ".join(cells) + " |")
PY
    done
    echo
    echo "60-byte frames, one worker (CPU 1), generator on CPU 0, $SECONDS_PER_RUN s per run, $REPEATS interleaved repeats."
    echo "Sessions: 1 = SPAN of fwd0's ingress to fwd2; 2 = plus fwd1's egress to fwd2. On xdp, mirrored flows run in the slow path."
} | tee "$OUT/summary.md"
