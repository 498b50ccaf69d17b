#!/usr/bin/env bash
# gen-rate-bench.sh: does `shunt gen --rate R` hold R, measured at the receiver?
#
#   [gen ns] gen0 <-veth-> fwd0 [fwd ns: shunt sink --engine ring]
#
# For each engine this kernel allows (xdp, afxdp, ring; asked with `shunt gen --list-engines`,
# or --engines) and each asked rate ("max": flat out, no --rate), `shunt gen` sends 60-byte frames for
# --seconds S on CPU 0 and `shunt sink --engine ring` (TPACKET_V2, per-frame timestamps) counts
# them on CPU 1. The receiver's rate is active_pps: frames received over the time from the first
# to the last arrival. Reported per trial: asked, sent, received, lost, receiver rate and its
# error against the asked rate (target: within 1 %), the generator's own rate and its lag skips.
# `--sink xdp` counts in the kernel instead (xdp_sink: up to ~13 Mpps, for the XDP engine's high
# rates); it has no sequence accounting, so lost is sent - probes, and the receiver's rate is
# its active_pps (probes over the span of 1 ms samples that saw traffic).
# Repeats are interleaved (every rate of every engine, then again); the table gives each trial.
#
# Run as root from the repository, after `swift build -c release`.
# Usage: Benchmarks/gen-rate-bench.sh [--rates 1000,10000,...] [--seconds S] [--repeats N]
#                                     [--engines xdp,afxdp,ring] [--sink ring|xdp] [--shunt PATH]
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RATES=1000,10000,100000,500000,1000000,max
SECONDS_PER_TRIAL=3
REPEATS=3
ENGINES=
SINK=ring
SHUNT=$ROOT/.build/release/shunt

die() { echo "gen-rate-bench: $*" >&2; exit 2; }
while [[ $# -gt 0 ]]; do
    case $1 in
        --rates) RATES=${2:?}; shift 2 ;;
        --seconds) SECONDS_PER_TRIAL=${2:?}; shift 2 ;;
        --repeats) REPEATS=${2:?}; shift 2 ;;
        --engines) ENGINES=${2:?}; shift 2 ;;
        --sink) SINK=${2:?}; shift 2 ;;
        --shunt) SHUNT=${2:?}; shift 2 ;;
        -h|--help) sed -n '2,/^set -uo/p' "$0" | sed -e '/^set -uo/d' -e 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option: $1" ;;
    esac
done
[[ $(id -u) -eq 0 ]] || die "run as root (it creates network namespaces)"
[[ -x $SHUNT ]] || die "no shunt binary at $SHUNT (swift build -c release)"
command -v jq >/dev/null || die "needs jq (Debian package jq)"
[[ $REPEATS =~ ^[1-9][0-9]*$ ]] || die "--repeats must be a positive integer"
[[ $SINK == ring || $SINK == xdp ]] || die "--sink is ring or xdp"

source "$ROOT/Scripts/lab.sh"
P="shuntr$$-"
sink_pid=""
cleanup() {
    [[ -n $sink_pid ]] && kill "$sink_pid" 2>/dev/null && wait "$sink_pid" 2>/dev/null
    lab_down "$P"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
lab_up "$P"
# XDP_TX frames from xdp_gen reach fwd0 only with GRO on (or an XDP program) there.
ip netns exec "${P}fwd" ethtool -K fwd0 gro on >/dev/null

if [[ -z $ENGINES ]]; then
    engines_json=$(ip netns exec "${P}gen" "$SHUNT" gen --list-engines --port gen0) || die "shunt gen --list-engines failed"
    ENGINES=$(jq -r '[(if .xdp.available then "xdp" else empty end), (if .afxdp.available then "afxdp" else empty end), "ring"] | join(",")' <<<"$engines_json")
    echo "engines this kernel allows: $ENGINES ($(jq -r '.xdp.reason // "live frames allowed"' <<<"$engines_json"))"
fi

out=$(mktemp -d)
echo "sink: $SINK"
echo "| engine | asked pps | sent | received | lost | receiver pps | error | generator pps | lag skips |"
echo "|---|---|---|---|---|---|---|---|---|"
IFS=, read -r -a rates <<<"$RATES"
IFS=, read -r -a engines <<<"$ENGINES"
for ((r = 1; r <= REPEATS; r++)); do
    for engine in "${engines[@]}"; do
        for rate in "${rates[@]}"; do
            ip netns exec "${P}fwd" taskset -c 1 "$SHUNT" sink --port fwd0 --engine "$SINK" --json >"$out/sink.json" 2>"$out/sink.err" &
            sink_pid=$!
            sleep 0.5
            pacing=(--rate "$rate"); [[ $rate == max ]] && pacing=()
            if ! ip netns exec "${P}gen" taskset -c 0 "$SHUNT" gen --port gen0 --engine "$engine" --size 60 \
                "${pacing[@]}" --duration "$SECONDS_PER_TRIAL" >"$out/gen.json" 2>"$out/gen.err"; then
                kill -INT "$sink_pid"; wait "$sink_pid"; sink_pid=""
                printf '| %s | %s | refused: %s | | | | | | |\n' "$engine" "$rate" "$(tail -1 "$out/gen.err")"
                continue
            fi
            sleep 0.3
            kill -INT "$sink_pid"; wait "$sink_pid"; sink_pid=""
            g=$(tail -1 "$out/gen.json"); s=$(tail -1 "$out/sink.json")
            sent=$(jq .sent <<<"$g"); gpps=$(jq .pps <<<"$g"); skips=$(jq .lag_skips <<<"$g")
            if [[ $SINK == ring ]]; then
                received=$(jq .received <<<"$s"); lost=$(jq .lost <<<"$s")
            else
                received=$(jq .probes <<<"$s"); lost=$((sent - received))
            fi
            rpps=$(jq .active_pps <<<"$s")
            if [[ $rate == max ]]; then
                err="–"; skips="–"
            else
                err=$(jq -n --argjson a "$rate" --argjson m "$rpps" '(($m - $a) / $a * 100 * 1000 | round) / 1000' | xargs printf '%+.3f %%')
            fi
            printf '| %s | %s | %s | %s | %s | %.1f | %s | %.1f | %s |\n' \
                "$engine" "$rate" "$sent" "$received" "$lost" "$rpps" "$err" "$gpps" "$skips"
        done
    done
done
rm -rf "$out"
