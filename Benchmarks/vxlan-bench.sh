#!/usr/bin/env bash
# vxlan-bench.sh: encapsulating forward rate (frames per second into a VXLAN tunnel), Shunt
# against the Linux kernel's vxlan device and Open vSwitch's userspace datapath, side by side.
#
#   [gen ns] gen0 <-veth-> fwd0 [fwd ns: the forwarder, VTEP 192.0.2.1 on fwd1] fwd1 <-veth-> sink0 [sink ns]
#
# The generator (`shunt gen`, XDP live frames, flat out, pinned to CPU 0) sends UDP frames of
# one inner size into fwd0 for --seconds; the forwarder (pinned to CPU 1) encapsulates each
# into VXLAN (VNI 4100, dstport 4789) towards the remote VTEP 192.0.2.2 (sink0's MAC as the
# static next hop, so no ARP is involved) and sends it out of fwd1; `shunt sink` (xdp engine)
# counts every frame arriving on sink0. The rate is frames received / generator seconds.
#   shunt-xdp       shunt forward --datapath xdp: the XDP fast path encapsulates cached flows;
#                   threaded NAPI on fwd0, its thread pinned to CPU 1 (as `shunt bench`)
#   shunt-afpacket  shunt forward --datapath afpacket: the Swift worker encapsulates
#   kernel-vxlan    bridge br0 over fwd0 and a vxlan device (dev fwd1), RPS of fwd0 to CPU 1
#   ovs             ovs-vswitchd (pinned to CPU 1), datapath_type=netdev: br-int (fwd0, a
#                   type=vxlan port) and br-phy (fwd1, the VTEP address on its internal port)
# Inner frames: 64 B and 1450 B on the wire (60 and 1446 bytes without FCS; the outer frame is
# 50 bytes longer, within fwd1's 1500 MTU). Repeats are interleaved (A B C D A B C D ...);
# medians with min-max. With the defaults a run takes about 4 minutes.
#
# Run as root on a quiet machine. openvswitch-switch for the ovs case (skipped if absent).
# Usage: Benchmarks/vxlan-bench.sh [--repeats N] [--seconds S] [--flows N] [--forwarders a,b]
#        [--out DIR] [--no-build]
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REPEATS=3
SECONDS_PER_RUN=5
FLOWS=64
OUT=""
BUILD=1
FORWARDERS="shunt-xdp,shunt-afpacket,kernel-vxlan,ovs"
SIZES="64 1450"

die() { echo "vxlan-bench: $*" >&2; exit 1; }
log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

while [[ $# -gt 0 ]]; do
    case $1 in
        --repeats) REPEATS=${2:?}; shift 2 ;;
        --seconds) SECONDS_PER_RUN=${2:?}; shift 2 ;;
        --flows) FLOWS=${2:?}; shift 2 ;;
        --out) OUT=${2:?}; shift 2 ;;
        --forwarders) FORWARDERS=${2:?}; shift 2 ;;
        --sizes) SIZES=${2:?}; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        -h|--help) sed -n '2,/^set -uo/p' "$0" | sed -e '/^set -uo/d' -e 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option: $1" ;;
    esac
done
[[ $EUID -eq 0 ]] || die "run as root"
[[ $REPEATS =~ ^[0-9]+$ && $REPEATS -ge 1 ]] || die "--repeats must be a positive number"
[[ $SECONDS_PER_RUN =~ ^[0-9]+$ && $SECONDS_PER_RUN -ge 1 ]] || die "--seconds must be a positive number"
IFS=, read -r -a FWDS <<<"$FORWARDERS"
for f in "${FWDS[@]}"; do
    case $f in shunt-xdp|shunt-afpacket|kernel-vxlan|ovs) ;; *) die "unknown forwarder: $f" ;; esac
done
if [[ " ${FWDS[*]} " == *" ovs "* ]] && ! command -v ovs-vswitchd >/dev/null; then
    log "ovs-vswitchd not installed (Debian: openvswitch-switch): skipping the ovs forwarder"
    FWDS=("${FWDS[@]/ovs}")
fi

SHUNT=$ROOT/.build/release/shunt
if [[ $BUILD == 1 ]]; then
    (cd "$ROOT" && swift build -c release >&2) || die "swift build failed"
fi
[[ -x $SHUNT ]] || die "no shunt binary at $SHUNT"
: "${OUT:=$ROOT/bench-results/vxlan-$(date +%Y%m%d-%H%M%S)}"
RAW=$OUT/raw
mkdir -p "$RAW"

# shellcheck source=../Scripts/lab.sh
source "$ROOT/Scripts/lab.sh"
PREFIX="vxb$$"
OVSDIR=""
FWD_PID=""
SINK_PID=""
inns() { local ns=$1; shift; ip netns exec "$PREFIX$ns" "$@"; }

forwarder_down() {
    if [[ -n $FWD_PID ]]; then
        kill -TERM "$FWD_PID" 2>/dev/null
        wait "$FWD_PID" 2>/dev/null
        FWD_PID=""
    fi
    ovs_stop
    # OVS's netdev bridges leave their tap devices behind.
    local dev
    for dev in br0 br-int br-phy; do inns fwd ip link del "$dev" 2>/dev/null; done
    inns fwd ip link del vxlan0 2>/dev/null
    inns fwd ip addr flush dev fwd1 2>/dev/null
    inns fwd ip neigh flush dev fwd1 2>/dev/null
    inns fwd sh -c 'echo 0 > /sys/class/net/fwd0/threaded; echo 0 > /sys/class/net/fwd0/queues/rx-0/rps_cpus' 2>/dev/null
    return 0
}
cleanup() {
    [[ -n $SINK_PID ]] && kill "$SINK_PID" 2>/dev/null
    forwarder_down
    lab_down "$PREFIX"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

log "lab ${PREFIX}{gen,fwd,sink}; results in $OUT"
lab_up "$PREFIX" || die "lab_up failed"
# XDP redirect into a veth needs GRO (or XDP) on the receiving end.
inns gen ethtool -K gen0 gro on >/dev/null
inns fwd ethtool -K fwd0 gro on >/dev/null
inns sink ethtool -K sink0 gro on >/dev/null
SINK_MAC=$(inns sink cat /sys/class/net/sink0/address)
FWD1_MAC=$(inns fwd cat /sys/class/net/fwd1/address)
inns sink ip addr add 192.0.2.2/24 dev sink0

pin_napi() {
    inns fwd sh -c 'echo 1 > /sys/class/net/fwd0/threaded' || return 1
    sleep 0.2
    local pinned=0 t
    for t in /proc/[0-9]*; do
        [[ $(cat "$t/comm" 2>/dev/null) == napi/fwd0-* ]] || continue
        taskset -pc 1 "${t#/proc/}" >/dev/null && pinned=$((pinned + 1))
    done
    [[ $pinned -gt 0 ]]
}

ovs_start() {
    OVSDIR=$(mktemp -d /tmp/shunt-vxovs.XXXXXX)
    local env=(env "OVS_RUNDIR=$OVSDIR" "OVS_LOGDIR=$OVSDIR" "OVS_DBDIR=$OVSDIR" "OVS_SYSCONFDIR=$OVSDIR")
    ovsdb-tool create "$OVSDIR/conf.db" /usr/share/openvswitch/vswitch.ovsschema || return 1
    inns fwd "${env[@]}" ovsdb-server "$OVSDIR/conf.db" --remote="punix:$OVSDIR/db.sock" --pidfile="$OVSDIR/ovsdb.pid" \
        --unixctl="$OVSDIR/ovsdb.ctl" --log-file="$OVSDIR/ovsdb.log" --detach || return 1
    ovs-vsctl --db="unix:$OVSDIR/db.sock" --no-wait init || return 1
    inns fwd "${env[@]}" taskset -c 1 ovs-vswitchd "unix:$OVSDIR/db.sock" --pidfile="$OVSDIR/vswitchd.pid" \
        --unixctl="$OVSDIR/vswitchd.ctl" --log-file="$OVSDIR/vswitchd.log" --detach || return 1
    local v="ovs-vsctl --db=unix:$OVSDIR/db.sock --timeout=30"
    $v add-br br-phy -- set bridge br-phy datapath_type=netdev || return 1
    $v add-port br-phy fwd1 || return 1
    inns fwd ip addr add 192.0.2.1/24 dev br-phy || return 1
    inns fwd ip link set br-phy up || return 1
    $v add-br br-int -- set bridge br-int datapath_type=netdev fail-mode=secure || return 1
    $v add-port br-int fwd0 -- set interface fwd0 ofport_request=1 || return 1
    $v add-port br-int vxlan0 -- set interface vxlan0 type=vxlan ofport_request=2 options:remote_ip=192.0.2.2 \
        options:local_ip=192.0.2.1 options:key=4100 options:dst_port=4789 || return 1
    ovs-ofctl del-flows "unix:$OVSDIR/br-int.mgmt" || return 1
    ovs-ofctl add-flow "unix:$OVSDIR/br-int.mgmt" "in_port=1,actions=output:2" || return 1
    local a=(inns fwd "${env[@]}" ovs-appctl -t "$OVSDIR/vswitchd.ctl")
    "${a[@]}" ovs/route/add 192.0.2.0/24 br-phy >/dev/null 2>&1
    "${a[@]}" tnl/neigh/set br-phy 192.0.2.2 "$SINK_MAC" >/dev/null || return 1
}
ovs_stop() {
    [[ -z $OVSDIR ]] && return 0
    local f
    for f in vswitchd ovsdb; do
        [[ -f $OVSDIR/$f.pid ]] && kill "$(cat "$OVSDIR/$f.pid")" 2>/dev/null
    done
    sleep 0.3
    cp "$OVSDIR"/*.log "$RAW/" 2>/dev/null
    rm -rf "$OVSDIR"
    OVSDIR=""
}

forwarder_up() {
    local name=$1 tag=$2
    case $name in
        shunt-xdp|shunt-afpacket)
            local dp=${name#shunt-}
            printf '%s\n' 'table=0,priority=1,in_port=fwd0,actions=output:vx1' >"$RAW/flows.txt"
            local extra=()
            [[ $dp == xdp ]] && extra=(--fix-peers)
            # Not through inns: $! must be shunt's own PID.
            ip netns exec "${PREFIX}fwd" taskset -c 1 "$SHUNT" forward --port fwd0 --port fwd1 --workers 1 \
                --vxlan "vx1,local=192.0.2.1,remote=192.0.2.2,dev=fwd1,vni=4100,df,remote_mac=$SINK_MAC" \
                --flows "$RAW/flows.txt" --datapath "$dp" "${extra[@]}" --no-control --json \
                >"$RAW/$tag.fwd.out" 2>"$RAW/$tag.fwd.err" &
            FWD_PID=$!
            for _ in $(seq 200); do grep -q '"type":"ready"' "$RAW/$tag.fwd.out" 2>/dev/null && break; sleep 0.05; done
            grep -q '"type":"ready"' "$RAW/$tag.fwd.out" || { log "$name did not start: $(cat "$RAW/$tag.fwd.err")"; return 1; }
            if [[ $dp == xdp ]]; then pin_napi || { log "no NAPI thread for fwd0"; return 1; }; fi
            ;;
        kernel-vxlan)
            inns fwd ip addr add 192.0.2.1/24 dev fwd1 || return 1
            inns fwd ip neigh replace 192.0.2.2 lladdr "$SINK_MAC" dev fwd1 nud permanent || return 1
            inns fwd ip link add vxlan0 type vxlan id 4100 dstport 4789 local 192.0.2.1 remote 192.0.2.2 dev fwd1 \
                nolearning df set || return 1
            inns fwd ip link add br0 type bridge || return 1
            inns fwd ip link set fwd0 master br0 || return 1
            inns fwd ip link set vxlan0 master br0 || return 1
            inns fwd ip link set vxlan0 up || return 1
            inns fwd ip link set br0 up || return 1
            inns fwd sh -c 'echo 2 > /sys/class/net/fwd0/queues/rx-0/rps_cpus' || return 1
            sleep 0.2
            ;;
        ovs) ovs_start >>"$RAW/$tag.ovs.log" 2>&1 || { log "ovs did not start (see $RAW/$tag.ovs.log)"; return 1; } ;;
    esac
}

# Prints "pps received sent" for one run.
run_one() {
    local name=$1 size=$2 tag=$3
    forwarder_up "$name" "$tag" || { forwarder_down; return 1; }
    ip netns exec "${PREFIX}sink" "$SHUNT" sink --port sink0 --json >"$RAW/$tag.sink.out" 2>"$RAW/$tag.sink.err" &
    SINK_PID=$!
    for _ in $(seq 200); do grep -q '"type":"ready"' "$RAW/$tag.sink.out" 2>/dev/null && break; sleep 0.05; done
    # Warm-up: the first frames of each flow go through the slow path (and any resolution).
    ip netns exec "${PREFIX}gen" "$SHUNT" gen --port gen0 --size "$((size - 4))" --flows "$FLOWS" --count 2000 --rate 20000 \
        >/dev/null 2>&1
    sleep 0.3
    ip netns exec "${PREFIX}gen" taskset -c 0 "$SHUNT" gen --port gen0 --size "$((size - 4))" --flows "$FLOWS" \
        --duration "$SECONDS_PER_RUN" >"$RAW/$tag.gen.out" 2>"$RAW/$tag.gen.err"
    sleep 0.3
    kill -TERM "$SINK_PID"
    wait "$SINK_PID" 2>/dev/null
    SINK_PID=""
    forwarder_down
    python3 - "$RAW/$tag.gen.out" "$RAW/$tag.sink.out" <<'PY'
import json, sys
def final(path):
    last = None
    for line in open(path):
        try:
            o = json.loads(line)
        except ValueError:
            continue
        if o.get("type") == "final":
            last = o
    return last or {}
g, s = final(sys.argv[1]), final(sys.argv[2])
seconds = g.get("duration_s") or 0
received = s.get("received", 0)  # every frame, probe or not (the probes are inside the tunnel)
print(f"{received / seconds if seconds else 0:.0f} {received} {g.get('sent', 0)}")
PY
}

declare -A RESULTS
for ((r = 1; r <= REPEATS; r++)); do
    for size in $SIZES; do
        for name in "${FWDS[@]}"; do
            [[ -z $name ]] && continue
            out=$(run_one "$name" "$size" "r$r-$name-${size}B") || { log "$name ${size}B failed (see $RAW)"; continue; }
            read -r pps received sent <<<"$out"
            log "repeat $r ${size}B $name: $pps pps ($received of $sent frames)"
            RESULTS[$name,$size]+="$pps "
        done
    done
done

{
    echo "| forwarder | inner frame | encapsulated pps (median) | min | max |"
    echo "|---|---|---|---|---|"
    for size in $SIZES; do
        for name in "${FWDS[@]}"; do
            [[ -z $name || -z ${RESULTS[$name,$size]:-} ]] && continue
            python3 -c 'import sys,statistics; v=sorted(map(float,sys.argv[3].split())); print(f"| {sys.argv[1]} | {sys.argv[2]} B | {statistics.median(v):.0f} | {v[0]:.0f} | {v[-1]:.0f} |")' \
                "$name" "$size" "${RESULTS[$name,$size]}"
        done
    done
    echo
    echo "Inner UDP frames of $FLOWS flows, flat out from one generator thread (CPU 0) for ${SECONDS_PER_RUN}s, forwarder on CPU 1;"
    echo "pps = VXLAN frames counted on sink0 / generator seconds; $REPEATS interleaved repeats."
    echo "kernel $(uname -r), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) CPUs;"
    echo "$(ovs-vswitchd --version 2>/dev/null | head -1)."
} | tee "$OUT/results.md"
