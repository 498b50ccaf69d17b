#!/usr/bin/env bash
# flow-setup-bench.sh: flow setups per second through the slow path, Shunt against Open vSwitch's
# userspace datapath, side by side on veths.
#
#   [gen ns] gen0 <-veth-> fwd0 [fwd ns: the forwarder] fwd1 <-veth-> sink0 [sink ns]
#
# The generator (`shunt gen`, XDP live frames, flat out) sends frames of --flows distinct UDP
# flows (source ports 1024...), round after round: every flow is new until the forwarder has set
# it up, so the forwarder spends the run on misses. A setup is one exact-match datapath entry
# created by the slow path:
#   shunt-xdp       shunt forward --datapath xdp: installs in the kernel flow cache (upcalls)
#   shunt-afpacket  shunt forward --datapath afpacket: pipeline runs into the worker's
#                   exact-match cache (translations)
#   ovs             ovs-vswitchd, datapath_type=netdev (AF_PACKET ports), megaflows disabled
#                   (`upcall/disable-megaflows`) so each flow is its own datapath flow: entries
#                   counted by `dpctl/show`
# The table is the same for all: in_port=1 -> output:2, in_port=2 -> output:1. Shunt runs with
# --upcall-budget and --cache-size above the flow count, so neither limits it. The count is
# polled as fast as the control commands answer (about every 50 ms); the rate is the slope from
# the last poll under 5 % of the flows to the first at 95 % (or over the whole run when 95 % is
# not reached). Repeats are interleaved (A B C A B C); medians with min-max.
#
# --baseline PATH adds shunt-xdp@base and shunt-afpacket@base: the same runs with another shunt
# binary (say a release build of the previous commit), interleaved with the others, for a
# before/after figure from one run.
#
# Run as root. Needs openvswitch-switch for the ovs forwarder (skipped with a message if absent).
# Usage: Benchmarks/flow-setup-bench.sh [--repeats N] [--flows N] [--seconds S] [--out DIR] [--no-build]
#                                       [--forwarders LIST] [--baseline PATH]
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REPEATS=3
FLOWS=50000
SECONDS_PER_RUN=4
OUT=""
BUILD=1
FORWARDERS="shunt-xdp,shunt-afpacket,ovs"
BASELINE=""

die() { echo "flow-setup-bench: $*" >&2; exit 1; }
log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

while [[ $# -gt 0 ]]; do
    case $1 in
        --repeats) REPEATS=${2:?}; shift 2 ;;
        --flows) FLOWS=${2:?}; shift 2 ;;
        --seconds) SECONDS_PER_RUN=${2:?}; shift 2 ;;
        --out) OUT=${2:?}; shift 2 ;;
        --forwarders) FORWARDERS=${2:?}; shift 2 ;;
        --baseline) BASELINE=${2:?}; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        -h|--help) sed -n '2,/^set -uo/p' "$0" | sed -e '/^set -uo/d' -e 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option: $1" ;;
    esac
done
[[ $EUID -eq 0 ]] || die "run as root"
[[ $FLOWS =~ ^[0-9]+$ && $FLOWS -ge 100 && $FLOWS -le 60000 ]] || die "--flows must be 100..60000"
IFS=, read -r -a FWDS <<<"$FORWARDERS"
if [[ -n $BASELINE ]]; then
    [[ -x $BASELINE ]] || die "--baseline: no executable at $BASELINE"
    for name in "${FWDS[@]}"; do
        [[ $name == shunt-* ]] && FWDS+=("$name@base")
    done
fi
if [[ " ${FWDS[*]} " == *" ovs "* ]] && ! command -v ovs-vswitchd >/dev/null; then
    log "ovs-vswitchd not installed (Debian: openvswitch-switch): skipping the ovs forwarder"
    FWDS=("${FWDS[@]/ovs}")
fi

SHUNT=$ROOT/.build-bench/release/shunt
if [[ $BUILD == 1 ]]; then
    (cd "$ROOT" && swift build -c release --scratch-path .build-bench >&2) || die "swift build failed"
fi
[[ -x $SHUNT ]] || die "no shunt binary at $SHUNT"
: "${OUT:=$ROOT/bench-results/flow-setup-$(date +%Y%m%d-%H%M%S)}"
RAW=$OUT/raw
mkdir -p "$RAW"

# shellcheck source=../Scripts/lab.sh
source "$ROOT/Scripts/lab.sh"
PREFIX="fsb$$"
OVSDIR=""
FWD_PID=""
cleanup() {
    [[ -n $FWD_PID ]] && kill "$FWD_PID" 2>/dev/null
    ovs_stop
    lab_down "$PREFIX"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM
inns() { local ns=$1; shift; ip netns exec "$PREFIX$ns" "$@"; }

ovs_start() {
    OVSDIR=$(mktemp -d /tmp/shunt-ovs.XXXXXX)
    ovsdb-tool create "$OVSDIR/conf.db" /usr/share/openvswitch/vswitch.ovsschema || return 1
    export OVS_RUNDIR=$OVSDIR OVS_LOGDIR=$OVSDIR OVS_DBDIR=$OVSDIR OVS_SYSCONFDIR=$OVSDIR
    inns fwd ovsdb-server "$OVSDIR/conf.db" --remote="punix:$OVSDIR/db.sock" --pidfile="$OVSDIR/ovsdb.pid" \
        --unixctl="$OVSDIR/ovsdb.ctl" --log-file="$OVSDIR/ovsdb.log" --detach || return 1
    ovs-vsctl --db="unix:$OVSDIR/db.sock" --no-wait init || return 1
    inns fwd ovs-vswitchd "unix:$OVSDIR/db.sock" --pidfile="$OVSDIR/vswitchd.pid" --unixctl="$OVSDIR/vswitchd.ctl" \
        --log-file="$OVSDIR/vswitchd.log" --detach || return 1
    local v="ovs-vsctl --db=unix:$OVSDIR/db.sock"
    $v add-br br0 -- set bridge br0 datapath_type=netdev fail-mode=secure \
        -- set open_vswitch . other_config:flow-limit=$((FLOWS * 4)) || return 1
    $v add-port br0 fwd0 -- set interface fwd0 ofport_request=1 || return 1
    $v add-port br0 fwd1 -- set interface fwd1 ofport_request=2 || return 1
    ovs-ofctl del-flows "unix:$OVSDIR/br0.mgmt" || return 1
    ovs-ofctl add-flow "unix:$OVSDIR/br0.mgmt" "in_port=1,actions=output:2" || return 1
    ovs-ofctl add-flow "unix:$OVSDIR/br0.mgmt" "in_port=2,actions=output:1" || return 1
    ovs-appctl -t "$OVSDIR/vswitchd.ctl" upcall/disable-megaflows >/dev/null || return 1
}
ovs_stop() {
    [[ -z $OVSDIR ]] && return
    local f
    for f in vswitchd ovsdb; do
        [[ -f $OVSDIR/$f.pid ]] && kill "$(cat "$OVSDIR/$f.pid")" 2>/dev/null
    done
    sleep 0.3
    cp "$OVSDIR"/*.log "$RAW/" 2>/dev/null
    rm -rf "$OVSDIR"
    OVSDIR=""
}
ovs_flows() { ovs-appctl -t "$OVSDIR/vswitchd.ctl" dpctl/show netdev@ovs-netdev 2>>"$RAW/ovs-appctl.err" | tee -a "$RAW/ovs-dpctl.out" | awk '/flows:/ {print $2; exit}'; }

log "lab ${PREFIX}{gen,fwd,sink}; results in $OUT"
lab_up "$PREFIX" || die "lab_up failed"
inns fwd ethtool -K fwd0 gro on >/dev/null
inns sink ethtool -K sink0 gro on >/dev/null
inns gen ethtool -K gen0 gro on >/dev/null

run_one() {
    local name=${1%@base} tag=$2 count bin=$SHUNT
    [[ $1 == *@base ]] && bin=$BASELINE
    case $name in
        shunt-xdp|shunt-afpacket)
            local dp=${name#shunt-}
            printf '%s\n' 'table=0,priority=1,in_port=1,actions=output:2' 'table=0,priority=1,in_port=2,actions=output:1' >"$RAW/flows.txt"
            # Not through inns: $! must be shunt's own PID, not a subshell's.
            ip netns exec "${PREFIX}fwd" taskset -c 1 "$bin" forward --port fwd0 --port fwd1 --flows "$RAW/flows.txt" --datapath "$dp" \
                --upcall-budget 100000000 --cache-size $((FLOWS * 2)) --control "$RAW/$tag.ctl" --json \
                >"$RAW/$tag.fwd.out" 2>"$RAW/$tag.fwd.err" &
            FWD_PID=$!
            for _ in $(seq 100); do grep -q '"type":"ready"' "$RAW/$tag.fwd.out" 2>/dev/null && break; sleep 0.05; done
            grep -q '"type":"ready"' "$RAW/$tag.fwd.out" || die "$name did not start: $(cat "$RAW/$tag.fwd.err")"
            ;;
        ovs) ovs_start || die "ovs did not start (see $RAW)" ;;
    esac
    count_now() {
        case $name in
            shunt-xdp) "$bin" ctl --control "$RAW/$tag.ctl" show --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["datapaths"]["xdp"]["upcalls"])' ;;
            shunt-afpacket) "$bin" ctl --control "$RAW/$tag.ctl" show --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["datapaths"]["userspace"]["upcalls"])' ;;
            ovs) ovs_flows ;;
        esac
    }
    sleep 0.3
    ip netns exec "${PREFIX}gen" taskset -c 0 "$SHUNT" gen --port gen0 --size 60 --flows "$FLOWS" --duration "$SECONDS_PER_RUN" \
        >"$RAW/$tag.gen.out" 2>"$RAW/$tag.gen.err" &
    local gen=$! t0
    t0=$(date +%s.%N)
    echo "0 0" >"$RAW/$tag.samples"
    while kill -0 $gen 2>/dev/null; do
        count=$(count_now)
        echo "$(echo "$(date +%s.%N) - $t0" | bc) ${count:-0}" >>"$RAW/$tag.samples"
        sleep 0.03
    done
    wait $gen
    count=$(count_now)
    echo "$(echo "$(date +%s.%N) - $t0" | bc) ${count:-0}" >>"$RAW/$tag.samples"
    case $name in
        shunt-*)
            kill -TERM "$FWD_PID"
            wait "$FWD_PID" 2>/dev/null
            kill -0 "$FWD_PID" 2>/dev/null && die "$name (pid $FWD_PID) did not stop"
            FWD_PID=""
            ;;
        ovs) ovs_stop ;;
    esac
    python3 - "$RAW/$tag.samples" "$FLOWS" <<'PY'
import sys
samples = [tuple(map(float, l.split())) for l in open(sys.argv[1]) if l.strip()]
n = float(sys.argv[2])
# From the last sample under 5 % to the first at 95 % or more (the whole run if never reached):
# setups completed between two polls make this a slight underestimate.
lo = [s for s in samples if s[1] < 0.05 * n][-1] if samples[0][1] < 0.05 * n else samples[0]
hi = next((s for s in samples if s[1] >= 0.95 * n and s[0] > lo[0]), samples[-1])
rate = (hi[1] - lo[1]) / (hi[0] - lo[0]) if hi[0] > lo[0] else 0.0
print(f"{rate:.0f} {int(samples[-1][1])}")
PY
}

declare -A RESULTS TOTALS
for ((r = 1; r <= REPEATS; r++)); do
    for name in "${FWDS[@]}"; do
        [[ -z $name ]] && continue
        out=$(run_one "$name" "r$r-${name/@/-}") || die "$name failed"
        read -r rate total <<<"$out"
        log "repeat $r $name: $rate setups/s ($total flows set up)"
        RESULTS[$name]+="$rate "
        TOTALS[$name]+="$total "
    done
done

{
    echo "| forwarder | flow setups/s (median) | min | max | setups per run (median) |"
    echo "|---|---|---|---|---|"
    for name in "${FWDS[@]}"; do
        [[ -z $name ]] && continue
        python3 -c 'import sys,statistics; v=sorted(map(float,sys.argv[2].split())); t=statistics.median(map(float,sys.argv[3].split())); print(f"| {sys.argv[1]} | {statistics.median(v):.0f} | {v[0]:.0f} | {v[-1]:.0f} | {t:.0f} |")' "$name" "${RESULTS[$name]}" "${TOTALS[$name]}"
    done
    echo
    echo "More setups than flows offered means flows were set up again: the afpacket datapath's"
    echo "per-worker exact-match cache (8192 entries) cannot hold them all, so it re-runs the pipeline."
    echo
    echo "Flows offered: $FLOWS distinct UDP flows, 60-byte frames, ${SECONDS_PER_RUN}s per run, $REPEATS interleaved repeats;"
    echo "kernel $(uname -r), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) CPUs;"
    echo "$(ovs-vswitchd --version 2>/dev/null | head -1)."
    [[ -n $BASELINE ]] && echo "@base rows: $BASELINE ($("$BASELINE" --version 2>/dev/null || echo "version unknown"))."
} | tee "$OUT/results.md"
