#!/usr/bin/env bash
# failover.sh: how many frames a group loses when one of its ports fails under load.
#
#   [P-gen] gen0 <-> p0 [P-fwd: shunt forward, group:1 over p1 and p2] p1 <-> a0 [P-a: shunt sink]
#                                                                        p2 <-> b0 [P-b: shunt sink]
#
# Per trial (fresh namespaces each time): `shunt forward --port p0 --port p1 --port p2 --groups G
# --flows F --datapath DP`, G being `group_id=1,type=TYPE,bucket=watch_port:2,actions=output:2,
# bucket=watch_port:3,actions=output:3` and F `in_port=1,actions=group:1`. `shunt gen` (ring
# engine) sends 16 UDP flows at --rate for 4 s; after 1.5 s the event happens:
#   down  ip -n P-a link set a0 down   (p1 loses carrier)
#   del   ip -n P-fwd link del p1      (p1 and a0 are gone; the sink on a0 stops by itself)
# lost = sent - (received at a0 + received at b0): the frames handed to p1 between the event
# and the forwarder's re-translation (the kernel drops them in the dead veth). It is also given
# in milliseconds of traffic (lost / rate). With --type select only the flows on p1 move.
# Prints one RESULT line per trial and a table (median and max per datapath and event).
#
# Run as root. Usage: Benchmarks/failover.sh [--rate PPS] [--datapath afpacket|xdp|both]
#   [--event down|del|both] [--type fast_failover|select] [--repeats N] [--shunt PATH] [--prefix P]
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RATE=100000
DATAPATH=both
EVENT=both
TYPE=fast_failover
REPEATS=3
SHUNT=""
PREFIX="fo$$"
die() { echo "failover: $*" >&2; exit 2; }
while [[ $# -gt 0 ]]; do
    case $1 in
        --rate) RATE=${2:?}; shift 2 ;;
        --datapath) DATAPATH=${2:?}; shift 2 ;;
        --event) EVENT=${2:?}; shift 2 ;;
        --type) TYPE=${2:?}; shift 2 ;;
        --repeats) REPEATS=${2:?}; shift 2 ;;
        --shunt) SHUNT=${2:?}; shift 2 ;;
        --prefix) PREFIX=${2:?}; shift 2 ;;
        -h|--help) sed -n '2,/^set -uo/p' "$0" | sed -e '/^set -uo/d' -e 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option: $1" ;;
    esac
done
[[ $EUID -eq 0 ]] || die "run as root"
[[ $RATE =~ ^[1-9][0-9]*$ && $RATE -le 1000000 ]] || die "--rate must be 1..1000000"
[[ $REPEATS =~ ^[1-9][0-9]*$ ]] || die "--repeats must be a positive number"
case $DATAPATH in afpacket|xdp) DPS=("$DATAPATH") ;; both) DPS=(afpacket xdp) ;; *) die "--datapath afpacket|xdp|both" ;; esac
case $EVENT in down|del) EVENTS=("$EVENT") ;; both) EVENTS=(down del) ;; *) die "--event down|del|both" ;; esac
case $TYPE in fast_failover|select) ;; *) die "--type fast_failover|select" ;; esac
[[ $PREFIX =~ ^[A-Za-z0-9_]{1,20}$ ]] || die "--prefix: 1-20 letters, digits or _"
: "${SHUNT:=$ROOT/.build/release/shunt}"
[[ -x $SHUNT ]] || die "no shunt binary at $SHUNT (swift build -c release, or --shunt PATH)"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/failover.XXXXXX")
PIDS=()

down_lab() {
    for pid in "${PIDS[@]}"; do kill -INT "$pid" 2>/dev/null; done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    PIDS=()
    for ns in fwd gen a b; do ip netns del "$PREFIX-$ns" 2>/dev/null; done
}
trap 'down_lab; rm -rf "$WORK"' EXIT
trap 'exit 130' INT TERM

up_lab() {
    local i=0 side
    ip netns add "$PREFIX-fwd" || return 1
    ip netns exec "$PREFIX-fwd" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
    for side in gen a b; do
        ip netns add "$PREFIX-$side" || return 1
        ip netns exec "$PREFIX-$side" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
        ip link add "p$i" netns "$PREFIX-fwd" type veth peer name "${side}0" netns "$PREFIX-$side" || return 1
        ip -n "$PREFIX-fwd" link set "p$i" up
        ip -n "$PREFIX-$side" link set "${side}0" up
        i=$((i + 1))
    done
}

# The "received" of a shunt sink's final JSON line (0 if none).
received() { python3 -c 'import json,sys
for l in open(sys.argv[1]):
    if l.startswith("{") and "\"final\"" in l: print(json.loads(l)["received"]); break
else: print(0)' "$1"; }

trial() { # DATAPATH EVENT N -> one RESULT line
    local dp=$1 event=$2 n=$3 dir=$WORK/$1-$2-$3
    mkdir -p "$dir"
    up_lab || { echo "failover: cannot build the lab" >&2; return 1; }
    echo "group_id=1,type=$TYPE,bucket=watch_port:2,actions=output:2,bucket=watch_port:3,actions=output:3" >"$dir/groups"
    echo "in_port=1,actions=group:1" >"$dir/flows"
    local extra=()
    [[ $dp == xdp ]] && extra=(--fix-peers)
    ip netns exec "$PREFIX-fwd" "$SHUNT" forward --port p0 --port p1 --port p2 --groups "$dir/groups" --flows "$dir/flows" \
        --datapath "$dp" "${extra[@]}" --control "$dir/ctl" --json >"$dir/fwd.out" 2>"$dir/fwd.err" &
    PIDS+=($!)
    ip netns exec "$PREFIX-a" "$SHUNT" sink --port a0 --engine ring --json >"$dir/a.out" 2>"$dir/a.err" &
    PIDS+=($!)
    ip netns exec "$PREFIX-b" "$SHUNT" sink --port b0 --engine ring --json >"$dir/b.out" 2>"$dir/b.err" &
    PIDS+=($!)
    for _ in $(seq 100); do
        grep -q '"type":"ready"' "$dir/fwd.out" 2>/dev/null && grep -q '"type":"ready"' "$dir/a.out" 2>/dev/null \
            && grep -q '"type":"ready"' "$dir/b.out" 2>/dev/null && break
        sleep 0.1
    done
    grep -q '"type":"ready"' "$dir/fwd.out" || { echo "failover: shunt forward did not start: $(cat "$dir/fwd.err")" >&2; down_lab; return 1; }
    ip netns exec "$PREFIX-gen" "$SHUNT" gen --port gen0 --engine ring --flows 16 --rate "$RATE" --duration 4 \
        >"$dir/gen.out" 2>"$dir/gen.err" &
    local gen=$!
    sleep 1.5
    if [[ $event == down ]]; then ip -n "$PREFIX-a" link set a0 down; else ip -n "$PREFIX-fwd" link del p1; fi
    wait "$gen"
    sleep 0.5
    down_lab
    local sent a b lost
    sent=$(python3 -c 'import json,sys; print([json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")][-1]["sent"])' "$dir/gen.out")
    a=$(received "$dir/a.out")
    b=$(received "$dir/b.out")
    lost=$((sent - a - b))
    echo "RESULT datapath=$dp event=$event type=$TYPE repeat=$n rate=$RATE sent=$sent a=$a b=$b lost=$lost lost_ms=$(python3 -c "print(round($lost * 1000 / $RATE, 2))")" \
        | tee -a "$WORK/results"
}

for n in $(seq "$REPEATS"); do
    for dp in "${DPS[@]}"; do
        for event in "${EVENTS[@]}"; do
            trial "$dp" "$event" "$n" || exit 1
        done
    done
done
python3 -c '
import sys, statistics
rows = {}
for line in sys.stdin:
    f = dict(kv.split("=", 1) for kv in line.split()[1:])
    rows.setdefault((f["datapath"], f["event"]), []).append((int(f["lost"]), float(f["lost_ms"])))
print("| datapath | event | trials | lost frames (median, max) | lost ms of traffic (median, max) |")
print("|---|---|---|---|---|")
for (dp, ev), v in rows.items():
    lost = [x[0] for x in v]; ms = [x[1] for x in v]
    print(f"| {dp} | {ev} | {len(v)} | {statistics.median(lost):g}, {max(lost)} | {statistics.median(ms):g}, {max(ms)} |")
' <"$WORK/results"
