#!/usr/bin/env bash
# dvr-bench.sh: packets per second of Neutron DVR's east-west egress path on one compute host
# (the DVR reference's "Host 1, br-tun" flows), for three forwarders side by side.
#
#   [gen] gen0 <-veth-> fwd0 [fwd: the forwarder; VTEP 172.16.0.1 on fwd1] fwd1 <-veth-> sink0 [sink]
#
# The traffic is what router 1's Net2 port sends towards VM2 on host 2: 64-byte UDP frames
# (60 bytes without FCS) from fa:16:3e:69:b4:05 to fa:16:3e:51:99:b8, 10.0.1.5 -> 10.0.2.5.
# fwd0 is br-int's access port with tag 2. NORMAL floods the frame in VLAN 2 to the patch port to
# br-tun. br-tun sets the source MAC to host 1's DVR MAC fa:16:3f:fe:49:e9, strips the VLAN, sets
# VNI 0x3eb and sends the frame in VXLAN (UDP 4789) from 172.16.0.1 to host 2's VTEP 172.16.0.2
# out of the underlay fwd1. Its next hop is sink0's MAC, configured statically, so there is no ARP.
# The forwarders:
#   shunt     shunt forward --datapath xdp --config host1.yaml: two bridges, br-int (fwd0 tag 2,
#             patch-tun) and br-tun (patch-int, vxlan-host2 over fwd1), br-tun loaded with the
#             reference's flows. The YAML and the flow file are written to OUT/raw/.
#   shunt-ext the north-south external path of host 1 (issue 15): br-int (fwd0 as the fip
#             namespace's fg- port, tag 3) and br-ex (fwd1 as the external interface) joined by
#             the int-br-ex/phy-br-ex patch pair, br-ex with the lab's flat-network flows: the
#             frame is switched, not encapsulated, and leaves as it came.
#   redirect  shunt xdp-redirect fwd0 <-> fwd1: a bare XDP redirect of the untouched frame. It
#             does no DVR work; it is the ceiling of these two veths.
#   ovs       Open vSwitch's userspace datapath (datapath_type=netdev), started privately in fwd
#             (database, sockets, pids and logs in a temporary directory; stopped by PID). It has
#             the same br-int and br-tun, joined by patch ports, and a type=vxlan port
#             (key=flow, ofport 4). The VTEP address is on br-phy, which holds fwd1. OVS finds the
#             next hop through ovs/route/add and tnl/neigh/set.
# Each trial starts its forwarder afresh and sends a warm-up of 1000 frames at 10 kpps, so that
# flow caches and upcalls are done. Then `shunt gen` (CPU 0, --gen-engine, auto by default) sends
# flat out for --seconds while the sink counts. The result is frames counted at sink0 divided by
# the generator's seconds. Repeats are interleaved (A B C A B C ...). The table gives medians
# with min-max and each median's ratio to xdp-redirect's median. A result is marked † when the
# generator offered less than 1.1x what the forwarder delivered: the forwarder was not
# saturated, so the figure is a lower bound, and a ratio to a marked xdp-redirect says little.
# `shunt gen --engine auto` takes afxdp on kernels that refuse XDP live frames (it offered 0.9
# to 1.9 Mpps in the test runs); `--gen-engine pump` offered up to 2.5 Mpps.
# CPUs: the generator runs on CPU 0 and the forwarder on CPU 1, as in `shunt bench`. For shunt and
# redirect, fwd0 has threaded NAPI with its thread pinned to CPU 1, because their XDP programs run
# in fwd0's receive path. ovs-vswitchd is pinned to CPU 1. For ovs, fwd0's receive processing
# (the skb for OVS's AF_PACKET socket) stays on the generator's CPU, as in `shunt bench`, so the
# generator offers less in ovs trials (about 0.9 against 1.6 Mpps with afxdp in the test runs).
#
# Counting: the sink receives VXLAN frames. `shunt sink` looks for its probe at byte 42 of the
# frame, which here is the outer UDP payload (the VXLAN header); the probe is 50 bytes further in.
# So the sink counts these frames as `other`, not as probes. Its xdp engine still counts every
# frame that arrives in `received`, with a per-CPU counter in the kernel that drops the frame
# afterwards. That count is exact, costs no copy to user space and keeps up with the XDP
# forwarders, so it is the count used. Loss and latency are not measured. sink0's kernel rx
# counter (ip -s link) is recorded beside it in the JSON as a cross-check; in the test runs the
# two were equal. So are the TX drops of gen0 and fwd1: frames the veth dropped because fwd0's or
# sink0's receive ring was full, which shows where frames were lost. The sink starts after the
# warm-up and stops 0.5 s after the generator, so only trial frames are counted.
# Correctness: in the first repeat, each forwarder's frames are checked before its trial.
# tcpdump captures 50 frames on sink0 (sent at 1 kpps, no sink attached) and every frame must be
# right. For shunt and ovs that means: outer dst MAC sink0, IPv4 172.16.0.1 -> 172.16.0.2, UDP
# dst 4789, VXLAN VNI 0x3eb, inner dst fa:16:3e:51:99:b8, inner src fa:16:3f:fe:49:e9, inner
# ethertype IPv4 (no VLAN tag), inner 10.0.1.5 -> 10.0.2.5. For redirect it means the frame as
# sent. The script fails, naming the forwarder, when a check fails, when a forwarder does not
# start, or when a trial delivers nothing.
#
# Output in --out DIR (default bench-results/dvr-DATE): results.md (also printed), results.json
# (schema shunt-dvr-bench/1) and raw/ (every process's output, the configs, captures, OVS logs).
# Run as root. openvswitch-switch for ovs. Everything is removed at the end, also on failure
# and on Ctrl-C.
# Usage: Benchmarks/dvr-bench.sh [--repeats N] [--seconds S] [--out DIR] [--prefix P]
#        [--only shunt,redirect,ovs] [--gen-engine auto|xdp|afxdp|ring|pump] [--flows N]
#        [--no-build] [--shunt PATH]
#   --prefix P    namespaces P-gen, P-fwd, P-sink (default dvb<pid>)
#   --flows N     UDP source ports the generator cycles through (default 1: one VM-to-VM flow)
#   --shunt PATH  the shunt binary to use (implies --no-build)
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REPEATS=5
SECONDS_PER_RUN=5
OUT=""
PREFIX="dvb$$"
ONLY="shunt,shunt-ext,redirect,ovs"
GEN_ENGINE=auto
FLOWS=1
BUILD=1
SHUNT_OVERRIDE=""

die() { echo "dvr-bench: $*" >&2; exit 1; }
log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

while [[ $# -gt 0 ]]; do
    case $1 in
        --repeats) REPEATS=${2:?}; shift 2 ;;
        --seconds) SECONDS_PER_RUN=${2:?}; shift 2 ;;
        --out) OUT=${2:?}; shift 2 ;;
        --prefix) PREFIX=${2:?}; shift 2 ;;
        --only) ONLY=${2:?}; shift 2 ;;
        --gen-engine) GEN_ENGINE=${2:?}; shift 2 ;;
        --flows) FLOWS=${2:?}; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        --shunt) SHUNT_OVERRIDE=${2:?}; BUILD=0; shift 2 ;;
        -h|--help) sed -n '2,/^set -uo/p' "$0" | sed -e '/^set -uo/d' -e 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option: $1" ;;
    esac
done
[[ $REPEATS =~ ^[1-9][0-9]*$ ]] || die "--repeats must be a positive number"
[[ $SECONDS_PER_RUN =~ ^[1-9][0-9]*$ ]] || die "--seconds must be a positive whole number"
[[ $FLOWS =~ ^[1-9][0-9]*$ ]] || die "--flows must be a positive number"
[[ $PREFIX =~ ^[A-Za-z0-9_.-]{1,40}$ ]] || die "--prefix: letters, digits, '_', '.', '-' only (at most 40)"
case $GEN_ENGINE in auto|xdp|afxdp|ring|pump) ;; *) die "--gen-engine: auto, xdp, afxdp, ring or pump" ;; esac
IFS=, read -r -a FWDS <<<"$ONLY"
[[ ${#FWDS[@]} -ge 1 ]] || die "--only names no forwarder"
for f in "${FWDS[@]}"; do
    case $f in shunt|shunt-ext|redirect|ovs) ;; *) die "unknown forwarder in --only: '$f' (shunt, shunt-ext, redirect, ovs)" ;; esac
done
[[ $EUID -eq 0 ]] || die "run as root"
if [[ " ${FWDS[*]} " == *" ovs "* ]]; then
    command -v ovs-vswitchd >/dev/null && command -v ovsdb-server >/dev/null ||
        die "ovs-vswitchd not installed (Debian: apt-get install openvswitch-switch), or leave ovs out of --only"
    OVS_SCHEMA=/usr/share/openvswitch/vswitch.ovsschema
    [[ -f $OVS_SCHEMA ]] || die "$OVS_SCHEMA missing (Debian: openvswitch-common)"
fi
for tool in python3 tcpdump ethtool taskset; do command -v "$tool" >/dev/null || die "$tool not found"; done

SHUNT=${SHUNT_OVERRIDE:-$ROOT/.build/release/shunt}
if [[ $BUILD == 1 ]]; then
    (cd "$ROOT" && swift build -c release >&2) || die "swift build failed"
fi
[[ -x $SHUNT ]] || die "no shunt binary at $SHUNT"
: "${OUT:=$ROOT/bench-results/dvr-$(date +%Y%m%d-%H%M%S)}"
RAW=$OUT/raw
mkdir -p "$RAW" || die "cannot create $RAW"
TRIALS=$RAW/trials.jsonl
CHECKS=$RAW/checks.jsonl
: >"$TRIALS"
: >"$CHECKS"

GEN_NS=${PREFIX}-gen
FWD_NS=${PREFIX}-fwd
SINK_NS=${PREFIX}-sink
GEN_CPU=0
FWD_CPU=1

# The DVR traffic and the host's addresses (the reference's lab); exported for the frame check.
export ROUTER_NET2_MAC VM2_MAC DVR_MAC SRC_IP DST_IP LOCAL_VTEP REMOTE_VTEP VNI
ROUTER_NET2_MAC=fa:16:3e:69:b4:05
VM2_MAC=fa:16:3e:51:99:b8
DVR_MAC=fa:16:3f:fe:49:e9
SRC_IP=10.0.1.5
DST_IP=10.0.2.5
LOCAL_VTEP=172.16.0.1
REMOTE_VTEP=172.16.0.2
VNI=1003  # 0x3eb
FRAME=60  # 64 bytes on the wire

# Processes this script started, by PID; each is stopped by its PID and nothing else.
FWD_PID=""
SINK_PID=""
GEN_PID=""
DUMP_PID=""
OVSDIR=""
SCRATCH=""
NAPI_THREADED=0
LAB_UP=0

# Stops one process of ours: SIGTERM, up to 5 s, then SIGKILL.
stop_pid() {
    local pid=$1
    [[ -z $pid ]] && return 0
    kill -TERM "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    return 0
}

napi_threaded() {
    local on=$1
    ip netns exec "$FWD_NS" sh -c "echo $on > /sys/class/net/fwd0/threaded" || return 1
    NAPI_THREADED=$on
    [[ $on == 1 ]] || return 0
    sleep 0.2
    # Every napi/fwd0-* thread, as shunt bench does (one from an earlier trial may be reused).
    local pinned=0 t
    for t in /proc/[0-9]*; do
        [[ $(cat "$t/comm" 2>/dev/null) == napi/fwd0-* ]] || continue
        taskset -pc "$FWD_CPU" "${t#/proc/}" >/dev/null && pinned=$((pinned + 1))
    done
    [[ $pinned -gt 0 ]] || { log "no NAPI thread for fwd0 appeared"; return 1; }
}

ovs_env() { echo "OVS_RUNDIR=$OVSDIR" "OVS_LOGDIR=$OVSDIR" "OVS_DBDIR=$OVSDIR" "OVS_SYSCONFDIR=$OVSDIR"; }
vsctl() { ovs-vsctl --db="unix:$OVSDIR/db.sock" --timeout=30 "$@"; }
appctl() { ip netns exec "$FWD_NS" env $(ovs_env) ovs-appctl -t "$OVSDIR/vswitchd.ctl" "$@"; }

ovs_start() {
    OVSDIR=$SCRATCH/ovs
    mkdir "$OVSDIR" || return 1
    local env
    read -r -a env <<<"$(ovs_env)"
    ovsdb-tool create "$OVSDIR/conf.db" "$OVS_SCHEMA" || return 1
    ip netns exec "$FWD_NS" env "${env[@]}" ovsdb-server "$OVSDIR/conf.db" --remote="punix:$OVSDIR/db.sock" \
        --pidfile="$OVSDIR/ovsdb.pid" --unixctl="$OVSDIR/ovsdb.ctl" --log-file="$OVSDIR/ovsdb.log" --no-chdir --detach || return 1
    vsctl --no-wait init || return 1
    ip netns exec "$FWD_NS" env "${env[@]}" taskset -c "$FWD_CPU" ovs-vswitchd "unix:$OVSDIR/db.sock" \
        --pidfile="$OVSDIR/vswitchd.pid" --unixctl="$OVSDIR/vswitchd.ctl" --log-file="$OVSDIR/vswitchd.log" \
        --no-chdir --detach || return 1
    # The underlay: the VTEP address on br-phy's internal port, fwd1 in br-phy.
    vsctl add-br br-phy -- set bridge br-phy datapath_type=netdev || return 1
    vsctl add-port br-phy fwd1 || return 1
    ip -n "$FWD_NS" addr add "$LOCAL_VTEP/24" dev br-phy || return 1
    ip -n "$FWD_NS" link set br-phy up || return 1
    # br-int: the router's port (access, tag 2) and the patch to br-tun; NORMAL.
    vsctl add-br br-int -- set bridge br-int datapath_type=netdev fail-mode=secure || return 1
    vsctl add-port br-int fwd0 tag=2 -- set interface fwd0 ofport_request=3 || return 1
    vsctl add-port br-int patch-tun -- set interface patch-tun type=patch options:peer=patch-int ofport_request=6 || return 1
    # br-tun: the patch to br-int (1) and the tunnel to host 2 (4).
    vsctl add-br br-tun -- set bridge br-tun datapath_type=netdev fail-mode=secure || return 1
    vsctl add-port br-tun patch-int -- set interface patch-int type=patch options:peer=patch-tun ofport_request=1 || return 1
    vsctl add-port br-tun vxlan-host2 -- set interface vxlan-host2 type=vxlan ofport_request=4 \
        options:remote_ip="$REMOTE_VTEP" options:local_ip="$LOCAL_VTEP" options:key=flow options:dst_port=4789 || return 1
    local port want got
    for port in fwd0:3 patch-tun:6 patch-int:1 vxlan-host2:4; do
        want=${port##*:}
        got=$(vsctl get interface "${port%%:*}" ofport) || return 1
        [[ $got == "$want" ]] || { echo "ovs: ${port%%:*} got ofport $got, not $want" >&2; return 1; }
    done
    ovs-ofctl del-flows "unix:$OVSDIR/br-int.mgmt" || return 1
    ovs-ofctl add-flow "unix:$OVSDIR/br-int.mgmt" "priority=0,actions=NORMAL" || return 1
    # Shunt's br-int has no internal port; keep NORMAL from flooding to OVS's (a down tap).
    ovs-ofctl mod-port "unix:$OVSDIR/br-int.mgmt" br-int no-flood || return 1
    ovs-ofctl del-flows "unix:$OVSDIR/br-tun.mgmt" || return 1
    ovs-ofctl add-flows "unix:$OVSDIR/br-tun.mgmt" "$RAW/br-tun.flows" || return 1
    # OVS's own route and neighbour tables for the tunnel (as OVSInteropTests does).
    appctl ovs/route/add "$LOCAL_VTEP/24" br-phy >/dev/null 2>&1
    appctl tnl/neigh/set br-phy "$REMOTE_VTEP" "$SINK_MAC" >/dev/null || return 1
}

ovs_stop() {
    [[ -z $OVSDIR ]] && return 0
    local f
    for f in vswitchd ovsdb; do
        [[ -s $OVSDIR/$f.pid ]] && stop_pid "$(cat "$OVSDIR/$f.pid")"
    done
    # The netdev datapath's tap devices outlive ovs-vswitchd.
    for f in br-int br-tun br-phy; do ip -n "$FWD_NS" link del "$f" 2>/dev/null; done
    cp "$OVSDIR/vswitchd.log" "$RAW/${OVS_TAG:-ovs}.vswitchd.log" 2>/dev/null
    rm -rf "$OVSDIR"
    OVSDIR=""
}

# Waits for a {"type":"ready"} line from process $2 in file $1.
wait_ready() {
    local file=$1 pid=$2
    for _ in $(seq 400); do
        grep -q '"type":"ready"' "$file" 2>/dev/null && return 0
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}

forwarder_up() {
    local name=$1 tag=$2
    case $name in
        shunt)
            napi_threaded 1 || return 1
            # Not through a function: $! must be shunt's own PID (ip netns exec and taskset exec).
            ip netns exec "$FWD_NS" taskset -c "$FWD_CPU" "$SHUNT" forward --datapath xdp --config "$RAW/host1.yaml" \
                --workers 1 --fix-peers --control "$SCRATCH/$tag.ctl" --json >"$RAW/$tag.fwd.out" 2>"$RAW/$tag.fwd.err" &
            FWD_PID=$!
            wait_ready "$RAW/$tag.fwd.out" "$FWD_PID" || { log "shunt forward did not start: $(head -c 2000 "$RAW/$tag.fwd.err")"; return 1; }
            ;;
        shunt-ext)
            napi_threaded 1 || return 1
            ip netns exec "$FWD_NS" taskset -c "$FWD_CPU" "$SHUNT" forward --datapath xdp --config "$RAW/host1-ext.yaml" \
                --workers 1 --fix-peers --control "$SCRATCH/$tag.ctl" --json >"$RAW/$tag.fwd.out" 2>"$RAW/$tag.fwd.err" &
            FWD_PID=$!
            wait_ready "$RAW/$tag.fwd.out" "$FWD_PID" || { log "shunt forward did not start: $(head -c 2000 "$RAW/$tag.fwd.err")"; return 1; }
            ;;
        redirect)
            napi_threaded 1 || return 1
            ip netns exec "$FWD_NS" "$SHUNT" xdp-redirect --port fwd0 --port fwd1 >"$RAW/$tag.fwd.out" 2>"$RAW/$tag.fwd.err" &
            FWD_PID=$!
            wait_ready "$RAW/$tag.fwd.out" "$FWD_PID" || { log "shunt xdp-redirect did not start: $(head -c 2000 "$RAW/$tag.fwd.err")"; return 1; }
            ;;
        ovs)
            OVS_TAG=$tag
            ovs_start >>"$RAW/$tag.ovs-setup.log" 2>&1 || { log "ovs did not start: $(tail -5 "$RAW/$tag.ovs-setup.log")"; return 1; }
            ;;
    esac
}

# What the forwarder itself says, saved next to the trial (for reading the raw output later).
forwarder_report() {
    local name=$1 tag=$2
    case $name in
        shunt|shunt-ext)
            "$SHUNT" ctl --control "$SCRATCH/$tag.ctl" show --json >"$RAW/$tag.show.json" 2>&1
            "$SHUNT" ctl --control "$SCRATCH/$tag.ctl" dump-cache >"$RAW/$tag.dump-cache.txt" 2>&1
            ;;
        ovs)
            {
                echo "## br-int"; ovs-ofctl dump-flows "unix:$OVSDIR/br-int.mgmt"
                echo "## br-tun"; ovs-ofctl dump-flows "unix:$OVSDIR/br-tun.mgmt"
                echo "## datapath flows"; appctl dpctl/dump-flows
                echo "## ports"; appctl dpctl/show -s
            } >"$RAW/$tag.ovs-flows.txt" 2>&1
            ;;
    esac
    return 0
}

forwarder_down() {
    stop_pid "$FWD_PID"
    FWD_PID=""
    ovs_stop
    [[ $NAPI_THREADED == 1 ]] && napi_threaded 0
    return 0
}

cleanup() {
    stop_pid "$DUMP_PID"
    stop_pid "$GEN_PID"
    stop_pid "$SINK_PID"
    forwarder_down
    [[ $LAB_UP == 1 ]] && "$SHUNT" lab down --prefix "$PREFIX-" >/dev/null 2>&1
    [[ -n $SCRATCH ]] && rm -rf "$SCRATCH"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM
# Sockets and OVS's database live in a short private directory (unix socket paths are limited).
SCRATCH=$(mktemp -d "/tmp/$PREFIX.XXXXXX") || die "mktemp failed"

# shunt gen with the DVR frame; extra options follow.
gen() {
    local out=$1 err=$2 cpu=$3
    shift 3
    ip netns exec "$GEN_NS" taskset -c "$cpu" "$SHUNT" gen --port gen0 --engine "$GEN_ENGINE" --size "$FRAME" \
        --src-mac "$ROUTER_NET2_MAC" --dst-mac "$VM2_MAC" --src-ip "$SRC_IP" --dst-ip "$DST_IP" --flows "$FLOWS" \
        "$@" >"$out" 2>"$err" &
    GEN_PID=$!
    wait "$GEN_PID"
    local rc=$?
    GEN_PID=""
    return $rc
}

# Captures 50 frames on sink0 while 50 are sent at 1 kpps and checks every one.
check_frames() {
    local name=$1 tag=$2
    local pcap=$RAW/$tag.check.pcap
    ip netns exec "$SINK_NS" tcpdump -i sink0 -nn -U --immediate-mode -c 50 -w "$pcap" >"$RAW/$tag.tcpdump.out" 2>"$RAW/$tag.tcpdump.err" &
    DUMP_PID=$!
    for _ in $(seq 100); do grep -q "listening on" "$RAW/$tag.tcpdump.err" 2>/dev/null && break; sleep 0.05; done
    gen "$RAW/$tag.check-gen.out" "$RAW/$tag.check-gen.err" "$GEN_CPU" --count 50 --rate 1000 ||
        { log "shunt gen failed: $(cat "$RAW/$tag.check-gen.err")"; return 1; }
    for _ in $(seq 40); do kill -0 "$DUMP_PID" 2>/dev/null || break; sleep 0.05; done
    stop_pid "$DUMP_PID"
    DUMP_PID=""
    local mode=vxlan
    [[ $name == redirect || $name == shunt-ext ]] && mode=plain
    python3 - "$pcap" "$mode" "$name" "$SINK_MAC" >>"$CHECKS" <<'PY' || return 1
import json, os, struct, sys
path, mode, name, sink_mac = sys.argv[1:5]
E = os.environ
mac = lambda b: ":".join(f"{x:02x}" for x in b)
ip = lambda b: ".".join(map(str, b))
frames = []
with open(path, "rb") as f:
    data = f.read()
if len(data) >= 24:
    magic = struct.unpack("<I", data[:4])[0]
    endian = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    off = 24
    while off + 16 <= len(data):
        _, _, incl, _ = struct.unpack(endian + "IIII", data[off:off + 16])
        frames.append(data[off + 16:off + 16 + incl])
        off += 16 + incl

def inner(f):
    """The checked fields of an Ethernet/IPv4/UDP frame, as text."""
    d = {"dst_mac": mac(f[0:6]), "src_mac": mac(f[6:12]), "ethertype": f"0x{int.from_bytes(f[12:14], 'big'):04x}"}
    if d["ethertype"] == "0x0800":
        d.update(src_ip=ip(f[26:30]), dst_ip=ip(f[30:34]), proto=f[23])
    return d

want_inner = {"dst_mac": E["VM2_MAC"], "ethertype": "0x0800", "src_ip": E["SRC_IP"], "dst_ip": E["DST_IP"], "proto": 17}
bad = []
seen = None
for i, f in enumerate(frames):
    if mode == "plain":
        got = inner(f)
        want = dict(want_inner, src_mac=E["ROUTER_NET2_MAC"])
    else:
        outer = inner(f)
        got = {"outer_dst_mac": outer["dst_mac"], "outer_src_mac": outer["src_mac"], "outer_ethertype": outer["ethertype"],
               "outer_src_ip": outer.get("src_ip"), "outer_dst_ip": outer.get("dst_ip"), "outer_proto": outer.get("proto")}
        if outer["ethertype"] == "0x0800" and outer.get("proto") == 17 and len(f) >= 50 + 14:
            ihl = (f[14] & 0x0F) * 4
            udp = 14 + ihl
            got["udp_dst"] = int.from_bytes(f[udp + 2:udp + 4], "big")
            vx = udp + 8
            got["vxlan_flags"] = f"0x{f[vx]:02x}"
            got["vni"] = int.from_bytes(f[vx + 4:vx + 7], "big")
            got.update({"inner_" + k: v for k, v in inner(f[vx + 8:]).items()})
        want = {"outer_dst_mac": sink_mac, "outer_ethertype": "0x0800", "outer_src_ip": E["LOCAL_VTEP"],
                "outer_dst_ip": E["REMOTE_VTEP"], "outer_proto": 17, "udp_dst": 4789, "vxlan_flags": "0x08",
                "vni": int(E["VNI"]), "inner_src_mac": E["DVR_MAC"]}
        want.update({"inner_" + k: v for k, v in want_inner.items()})
    wrong = {k: [got.get(k), v] for k, v in want.items() if got.get(k) != v}
    if wrong:
        bad.append({"frame": i, "wrong": wrong})
    if seen is None:
        seen = got
ok = len(frames) >= 10 and not bad
print(json.dumps({"forwarder": name, "frames": len(frames), "ok": ok, "first_frame": seen, "bad": bad[:5]}, sort_keys=True))
if not ok:
    why = "fewer than 10 frames captured" if len(frames) < 10 else f"{len(bad)} of {len(frames)} frames wrong, first: {bad[0]}"
    print(f"dvr-bench: {name}: frames on sink0 are not right: {why}", file=sys.stderr)
    sys.exit(1)
print(f"{name}: {len(frames)} frames checked on sink0: {seen}", file=sys.stderr)
PY
}

# Kernel counters as "sink0_rx fwd1_tx_dropped gen0_tx_dropped": frames sink0 received, and frames the
# veths dropped on the way into sink0 and into fwd0 (the receiving end's ring was full).
link_counters() {
    local a b c
    a=$(ip -n "$SINK_NS" -s -j link show sink0) || a=null
    b=$(ip -n "$FWD_NS" -s -j link show fwd1) || b=null
    c=$(ip -n "$GEN_NS" -s -j link show gen0) || c=null
    python3 -c '
import json, sys
def get(text, d, k):
    try:
        return str(json.loads(text)[0]["stats64"][d][k])
    except Exception:
        return "-"
print(get(sys.argv[1], "rx", "packets"), get(sys.argv[2], "tx", "dropped"), get(sys.argv[3], "tx", "dropped"))' "$a" "$b" "$c"
}

# One trial: forwarder up, [check], warm-up, sink, generator flat out, sink down, forwarder down.
run_trial() {
    local name=$1 repeat=$2 tag=$3
    forwarder_up "$name" "$tag" || return 1
    if [[ $repeat == 1 ]]; then
        check_frames "$name" "$tag" || return 1
    fi
    gen "$RAW/$tag.warmup.out" "$RAW/$tag.warmup.err" "$GEN_CPU" --count 1000 --rate 10000 ||
        { log "shunt gen (warm-up) failed: $(cat "$RAW/$tag.warmup.err")"; return 1; }
    sleep 0.5
    ip netns exec "$SINK_NS" "$SHUNT" sink --port sink0 --engine xdp --json >"$RAW/$tag.sink.out" 2>"$RAW/$tag.sink.err" &
    SINK_PID=$!
    wait_ready "$RAW/$tag.sink.out" "$SINK_PID" || { log "shunt sink did not start: $(cat "$RAW/$tag.sink.err")"; return 1; }
    local before after
    before=$(link_counters)
    gen "$RAW/$tag.gen.out" "$RAW/$tag.gen.err" "$GEN_CPU" --duration "$SECONDS_PER_RUN" ||
        { log "shunt gen failed: $(cat "$RAW/$tag.gen.err")"; return 1; }
    sleep 0.5
    stop_pid "$SINK_PID"
    SINK_PID=""
    after=$(link_counters)
    forwarder_report "$name" "$tag"
    forwarder_down
    python3 - "$name" "$repeat" "$RAW/$tag.gen.out" "$RAW/$tag.sink.out" "$before" "$after" >>"$TRIALS" <<'PY' || return 1
import json, sys
name, repeat, gen_path, sink_path, before, after = sys.argv[1:7]
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
g, s = final(gen_path), final(sink_path)
secs = g.get("duration_s") or 0
received = s.get("received")
if not secs or received is None:
    print(f"dvr-bench: {name}: no final report from the generator or the sink ({gen_path}, {sink_path})", file=sys.stderr)
    sys.exit(1)
delta = [int(b) - int(a) if a.isdigit() and b.isdigit() else None for a, b in zip(before.split(), after.split())]
print(json.dumps({"forwarder": name, "repeat": int(repeat), "sent": g.get("sent"), "generator_s": secs,
                  "generator_engine": g.get("engine"), "offered_pps": g.get("sent", 0) / secs,
                  "received": received, "sink_probes": s.get("probes"), "sink0_rx_packets": delta[0],
                  "veth_drops": {"fwd1_to_sink0": delta[1], "gen0_to_fwd0": delta[2]},
                  "delivered_pps": received / secs}, sort_keys=True))
PY
}

# --- the lab -------------------------------------------------------------------------------------
log "lab ${PREFIX}-{gen,fwd,sink}; results in $OUT"
LAB_UP=1
"$SHUNT" lab up --prefix "$PREFIX-" >"$RAW/lab.out" 2>&1 || die "shunt lab up failed: $(cat "$RAW/lab.out")"
# XDP redirect into a veth needs GRO (or an XDP program) on the receiving end.
ip netns exec "$GEN_NS" ethtool -K gen0 gro on >/dev/null || die "ethtool gen0"
ip netns exec "$FWD_NS" ethtool -K fwd0 gro on >/dev/null || die "ethtool fwd0"
ip netns exec "$FWD_NS" ethtool -K fwd1 gro on >/dev/null || die "ethtool fwd1"
ip netns exec "$SINK_NS" ethtool -K sink0 gro on >/dev/null || die "ethtool sink0"
SINK_MAC=$(ip netns exec "$SINK_NS" cat /sys/class/net/sink0/address) || die "no sink0"

# Host 1's br-tun flows from the DVR lab (Scripts/dvr/host1-br-tun.flows): the reference's
# verbatim (port 1 = patch to br-int, 3 and 4 = VXLAN, 4 = to host 2) and the ingress side the
# lab adds. Port 3 (the network node) does not exist here: outputs to it go nowhere.
cp "$ROOT/Scripts/dvr/host1-br-tun.flows" "$RAW/br-tun.flows" || die "no Scripts/dvr/host1-br-tun.flows"
# Shunt's configuration of the same host: br-int and br-tun joined by patch ports; the underlay
# fwd1 is in no bridge; sink0's MAC is the static next hop towards host 2's VTEP.
cat >"$RAW/host1.yaml" <<EOF
bridges:
  - name: br-int
    ports:
      - {name: fwd0, ofport: 3, tag: 2}
      - {name: patch-tun, ofport: 6, type: patch, peer: patch-int}
  - name: br-tun
    flows: br-tun.flows
    ports:
      - {name: patch-int, ofport: 1, type: patch, peer: patch-tun}
      - {name: vxlan-host2, ofport: 4, type: vxlan, local: $LOCAL_VTEP, remote: $REMOTE_VTEP, dev: fwd1, vni: flow, dstport: 4789, remote_mac: $SINK_MAC}
EOF

# shunt-ext: the north-south external path of the DVR lab's host 1 instead (Scripts/dvr/
# host1-ns.yaml): fwd0 is the fip namespace's fg- port (br-int, the external network's local
# VLAN 3), NORMAL sends the frame over the int-br-ex/phy-br-ex patch pair to br-ex, which strips
# the VLAN (flat network) and switches it out of its external interface fwd1: the frame leaves
# as it came. The same generator frames, switched instead of routed into a tunnel.
cp "$ROOT/Scripts/dvr/host1-br-ex.flows" "$RAW/br-ex.flows" || die "no Scripts/dvr/host1-br-ex.flows"
cat >"$RAW/br-int-ext.flows" <<EOF
# Host 1's br-int flows for the link to br-ex (Scripts/dvr/host1-ns-br-int.flows), then NORMAL.
table=0,priority=3,in_port=int-br-ex,vlan_tci=0x0000/0x1fff actions=mod_vlan_vid:3,NORMAL
table=0,priority=2,in_port=int-br-ex actions=drop
table=0,priority=1 actions=NORMAL
EOF
cat >"$RAW/host1-ext.yaml" <<EOF
bridges:
  - name: br-int
    flows: br-int-ext.flows
    ports:
      - {name: fwd0, ofport: 15, tag: 3}
      - {name: int-br-ex, ofport: 20, trunks: [3], type: patch, peer: phy-br-ex}
  - name: br-ex
    flows: br-ex.flows
    ports:
      - {name: fwd1, ofport: 1}
      - {name: phy-br-ex, ofport: 2, type: patch, peer: int-br-ex}
EOF

# --- the trials ----------------------------------------------------------------------------------
START=$(date +%s)
for ((r = 1; r <= REPEATS; r++)); do
    for name in "${FWDS[@]}"; do
        tag="r$r-$name"
        run_trial "$name" "$r" "$tag" || die "$name failed in repeat $r (raw output in $RAW)"
        line=$(tail -1 "$TRIALS")
        read -r received pps offered drops < <(python3 -c 'import json,sys; t=json.loads(sys.argv[1]); print(t["received"], round(t["delivered_pps"]), round(t["offered_pps"]), t["veth_drops"]["gen0_to_fwd0"])' "$line")
        log "repeat $r $name: $pps pps delivered ($received frames; generator offered $offered pps; $drops dropped entering fwd0)"
        [[ $received -gt 0 ]] || die "$name forwarded nothing in repeat $r: 0 frames reached sink0 (raw output in $RAW/$tag.*)"
    done
done
WALL=$(($(date +%s) - START))

# --- results -------------------------------------------------------------------------------------
python3 - "$TRIALS" "$CHECKS" "$OUT" "$SHUNT" "$ROOT" "$REPEATS" "$SECONDS_PER_RUN" "$FLOWS" "$GEN_ENGINE" "$PREFIX" "$ONLY" "$WALL" <<'PY'
import hashlib, json, os, platform, statistics, subprocess, sys, time
trials_path, checks_path, out, shunt, root, repeats, seconds, flows, engine, prefix, only, wall = sys.argv[1:13]
trials = [json.loads(l) for l in open(trials_path) if l.strip()]
checks = [json.loads(l) for l in open(checks_path) if l.strip()]
order = only.split(",")
label = {"shunt": "shunt forward --datapath xdp (br-int + br-tun)",
         "shunt-ext": "shunt forward --datapath xdp, external path (br-int + br-ex)", "redirect": "xdp-redirect (ceiling)",
         "ovs": "Open vSwitch userspace (netdev)"}

def cmd(args):
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=10).stdout.strip()
    except Exception:
        return None

summary = []
for name in order:
    ts = [t for t in trials if t["forwarder"] == name]
    if not ts:
        continue
    v = [t["delivered_pps"] for t in ts]
    limited = sum(1 for t in ts if t["offered_pps"] < 1.1 * t["delivered_pps"])
    summary.append({"forwarder": name, "label": label[name], "repeats": len(ts),
                    "delivered_pps": {"median": statistics.median(v), "min": min(v), "max": max(v), "values": v},
                    "offered_pps_median": statistics.median(t["offered_pps"] for t in ts),
                    "generator_limited_repeats": limited})
base = next((s for s in summary if s["forwarder"] == "redirect"), None)
for s in summary:
    s["ratio_to_redirect"] = (s["delivered_pps"]["median"] / base["delivered_pps"]["median"]) if base else None

def cpu_model():
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return None
commit = cmd(["git", "-C", root, "rev-parse", "HEAD"])
dirty = cmd(["git", "-C", root, "status", "--porcelain"])
ovs = cmd(["ovs-vswitchd", "--version"])
manifest = {"date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "kernel": platform.release(), "cpu_model": cpu_model(),
            "cpus": os.cpu_count(), "generator_cpu": 0, "forwarder_cpu": 1, "shunt_binary": shunt,
            "shunt_binary_sha256": hashlib.sha256(open(shunt, "rb").read()).hexdigest(),
            "shunt_git_commit": commit, "shunt_git_dirty": bool(dirty) if dirty is not None else None,
            "ovs_version": ovs.splitlines()[0] if ovs else None, "wall_s": int(wall),
            "settings": {"repeats": int(repeats), "seconds": int(seconds), "flows": int(flows), "frame_size": 64,
                         "generator_engine": engine, "prefix": prefix, "forwarders": order},
            "traffic": {"src_mac": "fa:16:3e:69:b4:05", "dst_mac": "fa:16:3e:51:99:b8", "src_ip": "10.0.1.5",
                        "dst_ip": "10.0.2.5", "dvr_mac": "fa:16:3f:fe:49:e9", "vni": 1003,
                        "local_vtep": "172.16.0.1", "remote_vtep": "172.16.0.2", "vxlan_port": 4789}}
doc = {"schema": "shunt-dvr-bench/1", "manifest": manifest, "summary": summary, "checks": checks, "trials": trials}
with open(os.path.join(out, "results.json"), "w") as f:
    json.dump(doc, f, indent=1, sort_keys=True)
    f.write("\n")

engines = sorted({t.get("generator_engine") or "?" for t in trials})
lines = ["| forwarder | median Mpps | min-max Mpps | ratio to xdp-redirect | generator offered (median Mpps) |",
         "|---|---|---|---|---|"]
for s in summary:
    d = s["delivered_pps"]
    mark = " †" if s["generator_limited_repeats"] * 2 > s["repeats"] else ""
    ratio = f"{s['ratio_to_redirect']:.2f}" if s["ratio_to_redirect"] is not None else "–"
    lines.append(f"| {s['label']} | {d['median'] / 1e6:.3f}{mark} | {d['min'] / 1e6:.3f}-{d['max'] / 1e6:.3f} | {ratio} "
                 f"| {s['offered_pps_median'] / 1e6:.3f} |")
lines += ["",
          f"DVR east-west egress on host 1: 64 B UDP frames (10.0.1.5 -> 10.0.2.5) into br-int (tag 2), out of br-tun as VXLAN "
          f"(VNI 0x3eb, 172.16.0.1 -> 172.16.0.2, DVR source MAC); xdp-redirect forwards them untouched.",
          f"{repeats} interleaved repeats of {seconds} s; {flows} flow(s); generator engine {', '.join(engines)} on CPU 0, "
          f"forwarder on CPU 1; pps = frames counted at sink0 (xdp_sink) / generator seconds.",
          "† generator-limited in most repeats (it offered less than 1.1x what was delivered): a lower bound.",
          f"kernel {manifest['kernel']}, {manifest['cpu_model']}, {manifest['cpus']} CPUs; {manifest['ovs_version'] or 'no OVS'}; "
          f"shunt {(commit or '?')[:12]}{' (dirty)' if manifest['shunt_git_dirty'] else ''}."]
text = "\n".join(lines) + "\n"
with open(os.path.join(out, "results.md"), "w") as f:
    f.write(text)
print(text, end="")
PY
