#!/usr/bin/env bash
# Instructions per frame of one worker pass (WorkerPassBench.run: the burst delivered, the
# worker's pass, the TX ring completed) for each engine and ring version, counted by callgrind:
# a regression figure that the machine's noise does not move. Run as root (the harness opens an
# unbound packet socket) after `swift build -c release`.
# Usage: Benchmarks/pass-instructions.sh [SHUNT_BINARY] [PASSES]
set -euo pipefail
shunt=${1:-.build/release/shunt}
passes=${2:-2000}
frames=32
command -v valgrind >/dev/null || { echo "pass-instructions.sh: valgrind is not installed (apt-get install valgrind)" >&2; exit 2; }
[[ -x $shunt ]] || { echo "pass-instructions.sh: $shunt not found; run swift build -c release" >&2; exit 2; }
out=$(mktemp -d /tmp/shunt-pass-instructions.XXXXXX)
trap 'rm -rf "$out"' EXIT
# Debian 12's valgrind cannot read the DWARF 5 the toolchain writes: a copy without debug
# information (the symbol table, which callgrind needs, stays).
objcopy --strip-debug "$shunt" "$out/shunt"
echo "| engine | ring | tx | instructions per frame |"
echo "|---|---|---|---|"
for engine in xconnect normal flows; do
    for ring in v2 v3; do for tx in copy ring; do
        file=$out/$engine-$ring-$tx.out
        valgrind --tool=callgrind --callgrind-out-file="$file" --collect-atstart=no \
            --toggle-collect='*WorkerPassBenchC3run*' \
            "$out/shunt" pass-bench --engine "$engine" --ring "$ring" --tx "$tx" --passes "$passes" --frames "$frames" \
            >"$out/$engine-$ring-$tx.log" 2>&1 || { cat "$out/$engine-$ring-$tx.log" >&2; exit 1; }
        total=$(awk '/^totals:/ {print $2}' "$file")
        # The 4 warm-up passes run before the timed ones and are counted too.
        awk -v t="$total" -v n=$(( (passes + 4) * frames )) -v e="$engine" -v r="$ring" -v x="$tx" \
            'BEGIN { printf "| %s | %s | %s | %.0f |\n", e, r, x, t / n }'
    done; done
done
