#!/usr/bin/env bash
# forward-bench.sh: Shunt against DPDK testpmd and the Linux bridge, side by side, on veths.
#
#   [gen ns] gen0 <-veth-> fwd0 [fwd ns: the forwarder] fwd1 <-veth-> sink0 [sink ns]
#
# `shunt gen` sends from gen0 through XDP (xdp_gen, live frames), `shunt sink` counts and times
# the frames with XDP on sink0 (xdp_sink: one-way latency, send stamp to arrival, same clock).
# Each repeat runs every forwarder in turn (A B C D A B C D ...), and each forwarder runs:
#   (a) overload throughput: 64- and 1518-byte frames (60/1514 without FCS), generator flat out;
#       delivered pps = frames at the sink / the generator's sending time;
#   (b) zero-loss rate: bisection on the paced generator's rate (64-byte frames by default),
#       between 0 and 1.1 x this repeat's overload throughput; the result is the highest rate
#       offered (as measured at the generator) in a trial with loss <= --loss-tolerance;
#   (c) latency p50/p99 at 10 kpps and at half the zero-loss rate (64-byte frames).
# Reported: median and min/max over repeats. Results: OUT/results.json, OUT/results.md, and the
# raw output of every trial under OUT/raw.
#
# Forwarders: shunt (release build, 1 worker, TPACKET_V3), shunt-ll (--low-latency: TPACKET_V2),
# shunt-xdp (flow tables on the XDP datapath: in_port=1 -> mod_dl_dst + output:2, so every frame
# after the first is a kernel cache hit; fwd0 gets threaded NAPI pinned to the forwarder CPU so
# the XDP program runs there, not on the generator's CPU), shunt-flows (flow tables on the afpacket datapath with a
# 1000-flow table: 998 nw_dst/32 rules plus the two in_port rules), xdp-redirect (a bare XDP
# redirect, `shunt xdp-redirect`: the kernel's ceiling on veths; threaded NAPI as shunt-xdp),
# testpmd (dpdk-testpmd io forwarding, one core, net_af_packet on fwd0/fwd1, qdisc bypass),
# bridge (Linux bridge br0 over fwd0 and fwd1, bridge-nf-call-{ip,ip6,arp}tables=0 in the fwd ns).
#
# CPUs: the generator runs on CPU 0. It spins in the kernel, and fwd0's receive processing (veth
# NAPI, GRO, and for shunt and testpmd the copy into their AF_PACKET rings) runs in its softirq
# there too, as on a host whose NIC interrupts go to another core than the forwarder's. Shunt and
# testpmd's forwarding lcore run on CPU 1. The bridge forwards inside the receive processing, so
# by default fwd0 gets RPS to CPU 1 (--bridge-mode rps): CPU 0 still takes the frames off the veth
# (NAPI, GRO), CPU 1 runs the rest of the receive path, the bridge and the transmit, the same
# split as for shunt and testpmd. --bridge-mode softirq leaves everything in CPU 0's softirq,
# shared with the generator (which then slows down with it: results are lower bounds);
# --bridge-mode threaded gives fwd0 threaded NAPI with the thread pinned to CPU 1 (in a VM, the
# thread's wake-ups add tens of microseconds at low rates). The sink's XDP runs where the frame
# was sent into fwd1: on the forwarder's CPU.
#
# A result the generator could not push (overload: under 1 % lost; zero-loss: the top rate passed
# while the generator fell more than 2 % short of the asked rate) is marked generator-limited:
# a lower bound.
#
# Run as root. Needs: swift (to build shunt), iproute2, ethtool, taskset, jq, python3;
# dpdk-testpmd (Debian: dpdk-dev) for the testpmd forwarder.
#
# Usage: Benchmarks/forward-bench.sh [--repeats N] [--quick] [--forwarders shunt,shunt-ll,testpmd,bridge]
#                                    [--out DIR] [--loss-tolerance PCT] [--zero-loss-sizes 64,1518]
#                                    [--shunt PATH] [--no-build] [--bridge-mode rps|softirq|threaded]
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

REPEATS=""
QUICK=0
FORWARDERS="shunt,shunt-ll,testpmd,bridge"
OUT=""
LOSS_TOLERANCE=0      # percent of the frames sent
ZL_SIZES="64"
SHUNT=""
BUILD=1
BRIDGE_MODE=rps

usage() {
    sed -n '2,/^set -uo/p' "$0" | sed -e '/^set -uo/d' -e 's/^# \{0,1\}//'
    cat <<'EOF'
Options:
  --repeats N              repeats of the whole A B C D round (default 3; 2 with --quick)
  --quick                  short trials and a coarse search: a smoke run of a couple of minutes
  --forwarders LIST        comma-separated subset of: shunt,shunt-ll,shunt-xdp,shunt-flows,xdp-redirect,testpmd,bridge
  --out DIR                where to write results (default bench-results/forward-DATE)
  --loss-tolerance PCT     loss still counted as zero loss, in percent (default 0; e.g. 0.001)
  --zero-loss-sizes LIST   frame sizes for the zero-loss search (default 64; 64,1518 for both)
  --shunt PATH             use this shunt binary instead of building one
  --no-build               use .build-bench/release/shunt as it is
  --bridge-mode MODE       where the bridge forwards: rps (default: RPS from fwd0 to the forwarder
                           CPU), softirq (fwd0's softirq on the generator CPU), threaded (fwd0
                           threaded NAPI pinned to the forwarder CPU)
EOF
}

die() { echo "forward-bench: $*" >&2; exit 1; }
log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

while [[ $# -gt 0 ]]; do
    case $1 in
        --repeats) REPEATS=${2:?}; shift 2 ;;
        --quick) QUICK=1; shift ;;
        --forwarders) FORWARDERS=${2:?}; shift 2 ;;
        --out) OUT=${2:?}; shift 2 ;;
        --loss-tolerance) LOSS_TOLERANCE=${2:?}; shift 2 ;;
        --zero-loss-sizes) ZL_SIZES=${2:?}; shift 2 ;;
        --shunt) SHUNT=${2:?}; BUILD=0; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        --bridge-mode) BRIDGE_MODE=${2:?}; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown option: $1" ;;
    esac
done

if [[ $QUICK == 1 ]]; then
    : "${REPEATS:=2}"
    T_THROUGHPUT=1.5   # seconds of flat-out generation per overload trial
    T_SEARCH=1         # seconds per zero-loss trial
    SEARCH_STEPS=4     # bisection steps
    T_LATENCY=1        # seconds per latency trial
else
    : "${REPEATS:=3}"
    T_THROUGHPUT=5
    T_SEARCH=2
    SEARCH_STEPS=7
    T_LATENCY=3
fi
DRAIN=0.3              # after the generator stops, before the sink stops: rings drain
LOW_RATE=10000         # pps of the low-load latency trial

[[ $REPEATS =~ ^[1-9][0-9]*$ ]] || die "--repeats must be a positive integer"
[[ $LOSS_TOLERANCE =~ ^[0-9]*\.?[0-9]+$ ]] || die "--loss-tolerance must be a number (percent)"
IFS=, read -r -a FWDS <<<"$FORWARDERS"
for f in "${FWDS[@]}"; do
    case $f in shunt|shunt-ll|shunt-xdp|shunt-flows|xdp-redirect|testpmd|bridge) ;;
        *) die "unknown forwarder: $f (shunt, shunt-ll, shunt-xdp, shunt-flows, xdp-redirect, testpmd, bridge)" ;; esac
done
case $BRIDGE_MODE in rps|softirq|threaded) ;; *) die "--bridge-mode: rps, softirq or threaded" ;; esac
IFS=, read -r -a ZLS <<<"$ZL_SIZES"
for s in "${ZLS[@]}"; do [[ $s == 64 || $s == 1518 ]] || die "--zero-loss-sizes: 64 and/or 1518"; done

[[ $EUID -eq 0 ]] || die "run as root (namespaces, XDP, AF_PACKET)"
for tool in ip ethtool taskset jq python3 sysctl; do
    command -v "$tool" >/dev/null || die "$tool is needed"
done
if [[ " ${FWDS[*]} " == *" testpmd "* ]]; then
    command -v dpdk-testpmd >/dev/null || die "dpdk-testpmd is needed for the testpmd forwarder (Debian: dpdk-dev), or leave it out with --forwarders"
fi
NCPU=$(nproc)
GEN_CPU=0
FWD_CPU=$(( NCPU > 1 ? 1 : 0 ))

# ---- build ----------------------------------------------------------------------------------
if [[ -z $SHUNT ]]; then
    SHUNT=$ROOT/.build-bench/release/shunt
    if [[ $BUILD == 1 ]]; then
        log "building shunt (release, --scratch-path .build-bench)"
        (cd "$ROOT" && swift build -c release --scratch-path .build-bench >&2) || die "swift build failed"
    fi
fi
[[ -x $SHUNT ]] || die "no shunt binary at $SHUNT"

# ---- state and cleanup ----------------------------------------------------------------------
source "$ROOT/Scripts/lab.sh"
PREFIX="fb$$"
STAMP=$(date +%Y%m%d-%H%M%S)
: "${OUT:=$ROOT/bench-results/forward-$STAMP}"
mkdir -p "$OUT/raw" || die "cannot create $OUT"
OUT=$(cd "$OUT" && pwd)
RAW=$OUT/raw
TRIALS=$OUT/trials.jsonl
: >"$TRIALS"
PIDS=()                # every background process this script started and has not reaped
DPDK_PREFIX=""         # testpmd's --file-prefix while it runs
BRIDGE_UP=0
BRIDGE_THREADED=0
BRIDGE_RPS=0

# stop_pid PID SIGNAL TIMEOUT_S: signal, wait up to TIMEOUT_S, then SIGKILL; reaps the process.
stop_pid() {
    local pid=$1 sig=$2 timeout=$3 i
    kill -"$sig" "$pid" 2>/dev/null || true
    for ((i = 0; i < timeout * 20; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "pid $pid did not stop on SIG$sig: SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null
    local rc=$?
    local keep=() p
    for p in "${PIDS[@]}"; do [[ $p == "$pid" ]] || keep+=("$p"); done
    PIDS=("${keep[@]}")
    return $rc
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    local pid
    for pid in "${PIDS[@]}"; do stop_pid "$pid" TERM 3 || true; done
    [[ -n $DPDK_PREFIX ]] && rm -rf "/var/run/dpdk/$DPDK_PREFIX"
    lab_down "$PREFIX"
    if ip netns list | grep -q "^${PREFIX}"; then echo "forward-bench: namespaces ${PREFIX}* still present" >&2; fi
    exit $rc
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT
trap 'log "terminated"; exit 143' TERM

# start_bg OUT ERR CMD...: starts CMD in the background; its PID in $BG.
start_bg() {
    local out=$1 err=$2
    shift 2
    "$@" </dev/null >"$out" 2>"$err" &
    BG=$!
    PIDS+=("$BG")
}

# wait_line FILE REGEX PID TIMEOUT_S: until FILE has a line matching REGEX; fails if PID exits.
wait_line() {
    local file=$1 re=$2 pid=$3 timeout=$4 i
    for ((i = 0; i < timeout * 20; i++)); do
        grep -qE "$re" "$file" 2>/dev/null && return 0
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}

inns() { local ns=$1; shift; ip netns exec "$PREFIX$ns" "$@"; }

# ---- lab ------------------------------------------------------------------------------------
log "lab: namespaces ${PREFIX}gen ${PREFIX}fwd ${PREFIX}sink; results in $OUT"
lab_up "$PREFIX" || die "lab_up failed"
# XDP_TX from gen0 reaches fwd0 only through fwd0's NAPI: GRO on (no local UDP socket and no
# rx-udp-gro-forwarding, so GRO merges none of these frames). sink0 has xdp_sink attached during
# every trial, which puts it on the NAPI path already.
inns fwd ethtool -K fwd0 gro on >/dev/null || die "ethtool -K fwd0 gro on failed"
# The bridge must not call netfilter: the knobs are per namespace (absent if br_netfilter is not
# loaded, in which case the bridge does not call netfilter anyway).
BRIDGE_NF="br_netfilter not loaded"
if [[ -e /proc/sys/net/bridge/bridge-nf-call-iptables ]]; then
    for t in iptables ip6tables arptables; do
        inns fwd sysctl -qw "net.bridge.bridge-nf-call-$t=0" || die "cannot set bridge-nf-call-$t=0 in the fwd namespace"
    done
    BRIDGE_NF="bridge-nf-call-iptables=$(inns fwd sysctl -n net.bridge.bridge-nf-call-iptables) ip6tables=$(inns fwd sysctl -n net.bridge.bridge-nf-call-ip6tables) arptables=$(inns fwd sysctl -n net.bridge.bridge-nf-call-arptables) (fwd namespace)"
fi

# ---- forwarders -----------------------------------------------------------------------------
FWD_PID=""
# Threaded NAPI on fwd0 with its thread pinned to the forwarder CPU: the receive processing of
# fwd0 (and, for the XDP forwarders, their XDP program) runs there instead of in the generator
# CPU's softirq.
fwd0_threaded_napi_on() {
    local t pinned=0
    inns fwd sh -c 'echo 1 > /sys/class/net/fwd0/threaded' || die "cannot enable threaded NAPI on fwd0"
    BRIDGE_THREADED=1
    sleep 0.1
    # Pin every NAPI thread of fwd0: a thread from an earlier trial may be reused, so "the ones
    # that appeared now" is not enough (one left on the generator CPU halves both rates).
    for t in $(napi_threads); do
        taskset -pc "$FWD_CPU" "$t" >/dev/null || die "cannot pin NAPI thread $t"
        pinned=$((pinned + 1))
    done
    ((pinned > 0)) || die "no NAPI thread for fwd0 appeared"
}

fwd_start() {
    local name=$1 tag=$2
    case $name in
        shunt|shunt-ll)
            local extra=()
            [[ $name == shunt-ll ]] && extra=(--low-latency)
            start_bg "$RAW/$tag.fwd.out" "$RAW/$tag.fwd.err" \
                ip netns exec "${PREFIX}fwd" taskset -c "$FWD_CPU" "$SHUNT" forward --port fwd0 --port fwd1 --workers 1 "${extra[@]}" --json
            FWD_PID=$BG
            wait_line "$RAW/$tag.fwd.out" '"type":"ready"' "$FWD_PID" 10 || { cat "$RAW/$tag.fwd.err" >&2; die "$name did not start"; }
            ;;
        shunt-xdp|shunt-flows)
            local flows=$RAW/$name.flows
            if [[ $name == shunt-xdp ]]; then
                printf '%s\n' 'table=0,priority=10,in_port=1,actions=mod_dl_dst:02:00:00:00:5e:01,output:2' \
                    'table=0,priority=10,in_port=2,actions=output:1' >"$flows"
            else
                python3 -c 'for i in range(998): print(f"table=0,priority=100,ip,nw_dst=10.99.{i // 250}.{i % 250 + 1},actions=drop")' >"$flows"
                printf '%s\n' 'table=0,priority=10,in_port=1,actions=output:2' 'table=0,priority=10,in_port=2,actions=output:1' >>"$flows"
            fi
            local dp=afpacket extra=()
            [[ $name == shunt-xdp ]] && dp=xdp extra=(--fix-peers)
            # The XDP fast path runs in fwd0's receive processing: give it the forwarder CPU.
            [[ $name == shunt-xdp ]] && fwd0_threaded_napi_on
            start_bg "$RAW/$tag.fwd.out" "$RAW/$tag.fwd.err" \
                ip netns exec "${PREFIX}fwd" taskset -c "$FWD_CPU" "$SHUNT" forward --port fwd0 --port fwd1 --workers 1 \
                --flows "$flows" --datapath "$dp" "${extra[@]}" --control "$RAW/$tag.ctl" --json
            FWD_PID=$BG
            wait_line "$RAW/$tag.fwd.out" '"type":"ready"' "$FWD_PID" 10 || { cat "$RAW/$tag.fwd.err" >&2; die "$name did not start"; }
            ;;
        xdp-redirect)
            fwd0_threaded_napi_on
            start_bg "$RAW/$tag.fwd.out" "$RAW/$tag.fwd.err" \
                ip netns exec "${PREFIX}fwd" "$SHUNT" xdp-redirect --port fwd0 --port fwd1
            FWD_PID=$BG
            wait_line "$RAW/$tag.fwd.out" '"type":"ready"' "$FWD_PID" 10 || { cat "$RAW/$tag.fwd.err" >&2; die "$name did not start"; }
            ;;
        testpmd)
            DPDK_PREFIX="tpmd$$"
            start_bg "$RAW/$tag.fwd.out" "$RAW/$tag.fwd.err" \
                ip netns exec "${PREFIX}fwd" stdbuf -oL -eL dpdk-testpmd -l "$GEN_CPU,$FWD_CPU" --no-huge -m 128 --no-pci \
                --no-shconf --no-telemetry --file-prefix="$DPDK_PREFIX" \
                --vdev=net_af_packet0,iface=fwd0,qdisc_bypass=1 --vdev=net_af_packet1,iface=fwd1,qdisc_bypass=1 \
                -- --forward-mode=io --nb-cores=1 --total-num-mbufs=8192 --stats-period=3600
            FWD_PID=$BG
            wait_line "$RAW/$tag.fwd.out" 'start packet forwarding' "$FWD_PID" 30 || { tail -5 "$RAW/$tag.fwd.err" >&2; die "testpmd did not start"; }
            grep -q 'ports=2' "$RAW/$tag.fwd.out" || die "testpmd did not find both ports (see $RAW/$tag.fwd.out)"
            ;;
        bridge)
            inns fwd ip link add br0 type bridge || die "cannot create br0"
            BRIDGE_UP=1
            inns fwd ip link set fwd0 master br0 && inns fwd ip link set fwd1 master br0 \
                && inns fwd ip link set br0 up || die "cannot set up br0"
            # (STP is off: ports forward at once.)
            FWD_PID=""
            if [[ $BRIDGE_MODE == rps ]]; then
                inns fwd sh -c "echo $(printf '%x' $((1 << FWD_CPU))) > /sys/class/net/fwd0/queues/rx-0/rps_cpus" \
                    || die "cannot set RPS on fwd0"
                BRIDGE_RPS=1
            elif [[ $BRIDGE_MODE == threaded ]]; then
                fwd0_threaded_napi_on
            fi
            ;;
    esac
    sleep 0.2
}

fwd_stop() {
    local name=$1
    case $name in
        shunt|shunt-ll|shunt-xdp|shunt-flows|xdp-redirect)
            stop_pid "$FWD_PID" TERM 10 || log "$name exited with an error"
            if [[ $BRIDGE_THREADED == 1 ]]; then
                inns fwd sh -c 'echo 0 > /sys/class/net/fwd0/threaded'
                BRIDGE_THREADED=0
            fi
            ;;
        testpmd)
            stop_pid "$FWD_PID" INT 15 || log "testpmd exited with an error"
            rm -rf "/var/run/dpdk/$DPDK_PREFIX"
            DPDK_PREFIX=""
            ;;
        bridge)
            if [[ $BRIDGE_RPS == 1 ]]; then
                inns fwd sh -c 'echo 0 > /sys/class/net/fwd0/queues/rx-0/rps_cpus'
                BRIDGE_RPS=0
            fi
            if [[ $BRIDGE_THREADED == 1 ]]; then
                inns fwd sh -c 'echo 0 > /sys/class/net/fwd0/threaded'
                BRIDGE_THREADED=0
            fi
            inns fwd ip link del br0
            BRIDGE_UP=0
            ;;
    esac
    FWD_PID=""
}

# PIDs of the kernel's NAPI threads of interfaces named fwd0 (any namespace: compared before and
# after enabling to find ours).
napi_threads() { ps -eo pid=,comm= | awk '$2 ~ /^napi\/fwd0-/ { print $1 }'; }

# ---- one trial ------------------------------------------------------------------------------
# trial FORWARDER REPEAT TEST SIZE RATE|"" DURATION: sink on sink0, generator out of gen0, one
# JSON line appended to trials.jsonl; the same line is left in $TRIAL.
TRIAL_N=0
trial() {
    local fwd=$1 rep=$2 test=$3 size=$4 rate=$5 duration=$6
    TRIAL_N=$((TRIAL_N + 1))
    local tag
    tag=$(printf '%04d-%s-r%d-%s-%s' "$TRIAL_N" "$fwd" "$rep" "$test" "$size")
    local frame=$((size - 4))
    start_bg "$RAW/$tag.sink.out" "$RAW/$tag.sink.err" ip netns exec "${PREFIX}sink" "$SHUNT" sink --port sink0 --json
    local sink=$BG
    wait_line "$RAW/$tag.sink.out" '"type":"ready"' "$sink" 10 || { cat "$RAW/$tag.sink.err" >&2; die "sink did not start"; }
    local args=(--port gen0 --size "$frame" --flows 1 --duration "$duration")
    [[ -n $rate ]] && args+=(--rate "$rate")
    if ! inns gen taskset -c "$GEN_CPU" "$SHUNT" gen "${args[@]}" >"$RAW/$tag.gen.out" 2>"$RAW/$tag.gen.err"; then
        cat "$RAW/$tag.gen.err" >&2
        die "generator failed ($tag)"
    fi
    sleep "$DRAIN"
    stop_pid "$sink" TERM 10 || die "sink failed ($tag): $(cat "$RAW/$tag.sink.err")"
    local g s
    g=$(grep '"type":"final"' "$RAW/$tag.gen.out") || die "no generator result ($tag)"
    s=$(grep '"type":"final"' "$RAW/$tag.sink.out") || die "no sink result ($tag)"
    TRIAL=$(jq -cn --arg fwd "$fwd" --argjson rep "$rep" --arg test "$test" --argjson size "$size" \
        --arg rate "$rate" --arg tag "$tag" --argjson gen "$g" --argjson sink "$s" '
        ($gen.sent) as $sent | ($sink.probes) as $got |
        { forwarder: $fwd, repeat: $rep, test: $test, size: $size, tag: $tag,
          asked_pps: (if $rate == "" then null else ($rate | tonumber) end),
          sent: $sent, received: $got,
          lost: ([$sent - $got, 0] | max),
          loss_pct: (if $sent > 0 then ([$sent - $got, 0] | max) * 100 / $sent else 0 end),
          offered_pps: $gen.pps,
          delivered_pps: (if $gen.duration_s > 0 then $got / $gen.duration_s else 0 end),
          rate_reached: (if $rate == "" then null else $gen.rate_reached end),
          generator_limited: (if $rate == "" then ($sent > 0 and ($sent - $got) <= $sent * 0.01)
                              else ($gen.pps < $gen.rate * 0.98) end),
          sink_active_pps: $sink.active_pps, reordered: $sink.reordered,
          latency_us: $sink.latency_us, gen: $gen, sink: $sink }')
    echo "$TRIAL" >>"$TRIALS"
}

lossless() { # TRIAL json -> exit 0 when loss <= tolerance
    jq -e --argjson tol "$LOSS_TOLERANCE" '.sent > 0 and .loss_pct <= $tol' <<<"$1" >/dev/null
}

# ---- the rounds -----------------------------------------------------------------------------
START_EPOCH=$(date +%s)
for ((rep = 1; rep <= REPEATS; rep++)); do
    for fwd in "${FWDS[@]}"; do
        log "repeat $rep/$REPEATS: $fwd"
        fwd_start "$fwd" "$(printf 'r%d-%s' "$rep" "$fwd")"
        declare -A DELIVERED=()
        for size in 64 1518; do
            trial "$fwd" "$rep" overload "$size" "" "$T_THROUGHPUT"
            DELIVERED[$size]=$(jq -r '.delivered_pps' <<<"$TRIAL")
            log "  overload $size: $(jq -r '"offered \(.offered_pps|floor) pps, delivered \(.delivered_pps|floor) pps\(if .generator_limited then " (generator-limited)" else "" end)"' <<<"$TRIAL")"
        done
        declare -A ZERO_LOSS=()
        for size in "${ZLS[@]}"; do
            lo=0
            hi=$(awk -v d="${DELIVERED[$size]}" 'BEGIN { printf "%d", d * 1.1 }')
            best=0
            limited=false
            for ((step = 1; step <= SEARCH_STEPS; step++)); do
                mid=$(awk -v l="$lo" -v h="$hi" 'BEGIN { printf "%d", (l + h) / 2 }')
                ((mid < 1000)) && break
                trial "$fwd" "$rep" "zero-loss-step$step" "$size" "$mid" "$T_SEARCH"
                if lossless "$TRIAL"; then
                    # the rate that passed is the one offered (the generator may fall short)
                    lo=$mid
                    offered=$(jq -r '.offered_pps' <<<"$TRIAL")
                    verdict="pass at $(printf '%.0f' "$offered") pps"
                    if awk -v o="$offered" -v b="$best" 'BEGIN { exit !(o > b) }'; then
                        best=$offered
                        limited=$(jq -r '.generator_limited' <<<"$TRIAL")
                    fi
                    [[ $(jq -r '.generator_limited' <<<"$TRIAL") == true ]] && verdict+=", generator-limited"
                else
                    hi=$mid
                    verdict=fail
                fi
                log "  zero-loss $size: asked $mid pps: $verdict ($(jq -r '"lost \(.lost) of \(.sent)"' <<<"$TRIAL"))"
            done
            ZERO_LOSS[$size]=$best
            jq -cn --arg fwd "$fwd" --argjson rep "$rep" --argjson size "$size" --argjson pps "$best" \
                --argjson steps "$SEARCH_STEPS" --argjson limited "$limited" \
                '{forwarder: $fwd, repeat: $rep, test: "zero-loss", size: $size, zero_loss_pps: $pps, steps: $steps,
                  generator_limited: $limited}' >>"$TRIALS"
            log "  zero-loss $size: $(printf '%.0f' "$best") pps$([[ $limited == true ]] && echo ' (generator-limited)')"
        done
        trial "$fwd" "$rep" latency-low 64 "$LOW_RATE" "$T_LATENCY"
        log "  latency at $LOW_RATE pps: $(jq -r '"p50 \(.latency_us.p50) us, p99 \(.latency_us.p99) us, lost \(.lost)"' <<<"$TRIAL")"
        zl64=${ZERO_LOSS[64]:-0}
        half=$(awk -v z="$zl64" 'BEGIN { printf "%d", z / 2 }')
        if ((half >= 1000)); then
            trial "$fwd" "$rep" latency-half 64 "$half" "$T_LATENCY"
            log "  latency at $half pps: $(jq -r '"p50 \(.latency_us.p50) us, p99 \(.latency_us.p99) us, lost \(.lost)"' <<<"$TRIAL")"
        else
            log "  latency at half the zero-loss rate: skipped (no 64-byte zero-loss rate)"
        fi
        unset DELIVERED ZERO_LOSS
        fwd_stop "$fwd"
    done
done
END_EPOCH=$(date +%s)

# ---- environment and report -----------------------------------------------------------------
testpmd_version=null
if command -v dpkg-query >/dev/null && dpkg-query -W dpdk-dev >/dev/null 2>&1; then
    testpmd_version=$(dpkg-query -W -f '${Version}' dpdk-dev | jq -R .)
fi
META=$(jq -n \
    --arg date "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
    --arg kernel "$(uname -r)" \
    --arg kernel_full "$(uname -a)" \
    --arg cpu "$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')" \
    --argjson ncpu "$NCPU" \
    --arg shunt_version "$("$SHUNT" --version 2>/dev/null)" \
    --arg shunt_binary "$SHUNT" \
    --arg git_commit "$(git -C "$ROOT" rev-parse HEAD 2>/dev/null)" \
    --argjson git_dirty "$( [[ -n $(git -C "$ROOT" status --porcelain 2>/dev/null) ]] && echo true || echo false)" \
    --arg swift "$(swift --version 2>&1 | head -1)" \
    --argjson testpmd "$testpmd_version" \
    --arg iproute2 "$(ip -V 2>&1)" \
    --arg ethtool "$(ethtool --version 2>&1 | head -1)" \
    --arg bridge_nf "$BRIDGE_NF" \
    --arg bridge_napi "$(case $BRIDGE_MODE in
        rps) echo "RPS from fwd0 to CPU $FWD_CPU (--bridge-mode rps)" ;;
        softirq) echo "in fwd0's softirq on the generator CPU (--bridge-mode softirq)" ;;
        threaded) echo "fwd0 threaded NAPI, thread pinned to CPU $FWD_CPU (--bridge-mode threaded)" ;;
        esac)" \
    --argjson quick "$( ((QUICK)) && echo true || echo false)" \
    --argjson repeats "$REPEATS" \
    --arg forwarders "$FORWARDERS" \
    --argjson t_throughput "$T_THROUGHPUT" --argjson t_search "$T_SEARCH" \
    --argjson search_steps "$SEARCH_STEPS" --argjson t_latency "$T_LATENCY" \
    --argjson loss_tolerance_pct "$LOSS_TOLERANCE" --argjson low_rate "$LOW_RATE" \
    --argjson gen_cpu "$GEN_CPU" --argjson fwd_cpu "$FWD_CPU" \
    --argjson wall_s "$((END_EPOCH - START_EPOCH))" \
    '{date: $date, kernel: $kernel, uname: $kernel_full, cpu_model: $cpu, cpus: $ncpu,
      tools: {shunt: $shunt_version, shunt_binary: $shunt_binary, git_commit: $git_commit,
              git_dirty: $git_dirty, swift: $swift, "dpdk-dev (testpmd)": $testpmd,
              iproute2: $iproute2, ethtool: $ethtool},
      bridge_netfilter: $bridge_nf, bridge_napi: $bridge_napi, quick: $quick, repeats: $repeats, forwarders: ($forwarders | split(",")),
      trial_seconds: {overload: $t_throughput, zero_loss: $t_search, latency: $t_latency},
      zero_loss_search: {steps: $search_steps, loss_tolerance_pct: $loss_tolerance_pct,
                         range: "0 .. 1.1 x the same repeat overload throughput"},
      low_load_pps: $low_rate, cpus_used: {generator: $gen_cpu, forwarder: $fwd_cpu},
      wall_seconds: $wall_s}')

python3 - "$TRIALS" "$OUT" "$META" <<'PY'
import json, statistics, sys
trials_path, out, meta = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
rows = [json.loads(l) for l in open(trials_path) if l.strip()]
forwarders = meta["forwarders"]

def stat(values):
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "n": len(values), "values": values}

summary = {}
for f in forwarders:
    mine = [r for r in rows if r["forwarder"] == f]
    s = {}
    for size in (64, 1518):
        ov = [r for r in mine if r["test"] == "overload" and r["size"] == size]
        s[f"overload_{size}_delivered_pps"] = stat([r["delivered_pps"] for r in ov])
        s[f"overload_{size}_offered_pps"] = stat([r["offered_pps"] for r in ov])
        s[f"overload_{size}_generator_limited"] = sum(1 for r in ov if r["generator_limited"])
        zl = [r for r in mine if r["test"] == "zero-loss" and r["size"] == size]
        if zl:
            s[f"zero_loss_{size}_pps"] = stat([r["zero_loss_pps"] for r in zl])
            s[f"zero_loss_{size}_generator_limited"] = sum(1 for r in zl if r["generator_limited"])
    for test in ("latency-low", "latency-half"):
        t = [r for r in mine if r["test"] == test]
        key = test.replace("-", "_")
        s[f"{key}_offered_pps"] = stat([r["offered_pps"] for r in t])
        for q in ("p50", "p99", "p999", "max"):
            s[f"{key}_{q}_us"] = stat([r["latency_us"][q] for r in t])
        s[f"{key}_lost"] = stat([r["lost"] for r in t])
    summary[f] = s

result = {"meta": meta, "summary": summary, "trials": rows}
with open(f"{out}/results.json", "w") as fh:
    json.dump(result, fh, indent=1)

def mpps(st, limited=0):
    if not st:
        return "–"
    mark = " †" if limited else ""
    return f"{st['median']/1e6:.3f} ({st['min']/1e6:.3f}–{st['max']/1e6:.3f}){mark}"

def us(st):
    if not st:
        return "–"
    return f"{st['median']:g} ({st['min']:g}–{st['max']:g})"

lines = []
title = "Forwarding benchmark" + (" — QUICK SMOKE RUN (short trials, coarse search; not a measurement)" if meta["quick"] else "")
lines.append(f"# {title}\n")
lines.append(f"{meta['date']} · kernel {meta['kernel']} · {meta['cpu_model']} × {meta['cpus']} CPUs · "
             f"{meta['repeats']} interleaved repeats · median (min–max)\n")
lines.append("| forwarder | 64 B overload, Mpps delivered | 1518 B overload, Mpps delivered | " +
             " | ".join(f"{s} B zero-loss, Mpps" for s in (64, 1518) if any(f"zero_loss_{s}_pps" in summary[f] for f in forwarders)) +
             f" | p50 / p99 µs at {meta['low_load_pps']//1000} kpps | p50 / p99 µs at ½ zero-loss |")
zl_sizes = [s for s in (64, 1518) if any(f"zero_loss_{s}_pps" in summary[f] for f in forwarders)]
lines.append("|" + "---|" * (3 + len(zl_sizes) + 2))
for f in forwarders:
    s = summary[f]
    cells = [f, mpps(s["overload_64_delivered_pps"], s["overload_64_generator_limited"]),
             mpps(s["overload_1518_delivered_pps"], s["overload_1518_generator_limited"])]
    cells += [mpps(s.get(f"zero_loss_{z}_pps"), s.get(f"zero_loss_{z}_generator_limited", 0)) for z in zl_sizes]
    cells.append(f"{us(s['latency_low_p50_us'])} / {us(s['latency_low_p99_us'])}")
    half = s["latency_half_offered_pps"]
    cells.append(f"{us(s['latency_half_p50_us'])} / {us(s['latency_half_p99_us'])}" +
                 (f" at {half['median']/1e6:.3f} Mpps" if half else ""))
    lines.append("| " + " | ".join(cells) + " |")
lines.append("")
if any(v for f in forwarders for k, v in summary[f].items() if k.endswith("generator_limited")):
    lines.append("† generator-limited in at least one repeat: the forwarder kept up with all the generator "
                 "could send (overload: under 1 % lost; zero-loss: the generator fell short of the asked rate "
                 "by more than 2 % and nothing was lost), so the value is a lower bound.\n")
lines.append("Generator offered load in the overload trials (Mpps): " +
             ", ".join(f"{f} 64 B {mpps(summary[f]['overload_64_offered_pps'])}, 1518 B {mpps(summary[f]['overload_1518_offered_pps'])}" for f in forwarders) + ".\n")
lines.append("Notes: frames are 64/1518 bytes on the wire (60/1514 generated, without FCS). Delivered = "
             "frames counted by xdp_sink / the generator's sending time. Zero-loss: highest offered rate "
             f"with loss ≤ {meta['zero_loss_search']['loss_tolerance_pct']} % in a {meta['zero_loss_search']['steps']}-step bisection "
             f"({meta['trial_seconds']['zero_loss']} s trials). Latency: one-way, xdp_gen send stamp to xdp_sink arrival, "
             "values are histogram bucket lower bounds (1 µs buckets below 4096 µs, powers of two above). "
             f"Generator on CPU {meta['cpus_used']['generator']}, shunt/testpmd on CPU {meta['cpus_used']['forwarder']}; "
             "fwd0's receive softirq runs on the generator CPU. Bridge: " + meta["bridge_napi"] + "; " + meta["bridge_netfilter"] + ".")
lines.append("")
tools = meta["tools"]
lines.append(f"Tools: {tools['shunt']} ({tools['git_commit'][:12]}{' dirty' if tools['git_dirty'] else ''}), "
             f"{tools['swift']}, dpdk-dev {tools['dpdk-dev (testpmd)']}, {tools['iproute2']}.")
with open(f"{out}/results.md", "w") as fh:
    fh.write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
log "results: $OUT/results.json, $OUT/results.md"
