#!/usr/bin/env bash
# libFuzzer targets (Tests/Fuzz/*.swift), built apart from the normal build and tests:
#   Scripts/fuzz.sh --list
#   Scripts/fuzz.sh TARGET [--seconds N] [-- LIBFUZZER-FLAGS...]
#   Scripts/fuzz.sh all [--seconds N]
# The package's library modules are built with AddressSanitizer, libFuzzer's coverage and
# -enable-testing in their own scratch directory (.build/fuzz), then each target is linked
# from its file and the objects of the modules it needs with `swiftc -sanitize=fuzzer,address`.
# A run fuzzes a scratch copy of Tests/Fuzz/corpus/TARGET (the repository's seeds stay as they
# are) for N seconds (default 60) at nice 10 and prints libFuzzer's final statistics; a crash
# input is left in .build/fuzz/findings/TARGET/ and the script exits non-zero.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
scratch=$root/.build/fuzz
debug=$scratch/debug

targets=(flows config control flowkey underlay arp pcapng)
# The package modules each target links (their objects, dependencies included).
modules_for() {
    case $1 in
        flows) echo "ShuntPipeline ShuntCore CShunt" ;;
        config) echo "ShuntForwarder ShuntControl ShuntPipeline ShuntBPF ShuntRing ShuntCore ShuntSystem CShunt Yams CYaml" ;;
        control) echo "ShuntControl ShuntSystem CShunt" ;;
        flowkey | underlay | arp | pcapng) echo "ShuntCore CShunt" ;;
        *) return 1 ;;
    esac
}

usage() { sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }

seconds=60
target=
extra=()
while (($#)); do
    case $1 in
        --list) printf '%s\n' "${targets[@]}"; exit 0 ;;
        --seconds) seconds=$2; shift 2 ;;
        --) shift; extra=("$@"); break ;;
        -h | --help) usage ;;
        *) [[ -z $target ]] || usage; target=$1; shift ;;
    esac
done
[[ -n $target ]] || usage

build_modules() {
    echo "== building the modules with -sanitize=fuzzer,address (scratch $scratch)" >&2
    nice -n 10 swift build --scratch-path "$scratch" --target ShuntForwarder \
        -Xswiftc -sanitize=fuzzer,address -Xswiftc -enable-testing \
        -Xcc -fsanitize=fuzzer-no-link,address >&2
}

build_target() {
    local t=$1 objects=() m
    for m in $(modules_for "$t"); do mapfile -t -O "${#objects[@]}" objects < <(find "$debug/$m.build" -name '*.o'); done
    local libs=()
    [[ $t == config ]] && libs=(-lbpf -lelf -lz)
    mkdir -p "$scratch/bin"
    echo "== linking $t" >&2
    nice -n 10 swiftc -sanitize=fuzzer,address -parse-as-library -enable-testing -g \
        -module-name "Fuzz_$t" -I "$debug/Modules" \
        -Xcc -fmodule-map-file="$debug/CShunt.build/module.modulemap" \
        -Xcc -fmodule-map-file="$root/Sources/CLibbpf/module.modulemap" \
        -Xcc -I"$root/Sources/CShunt/include" \
        -Xcc -fmodule-map-file="$scratch/checkouts/Yams/Sources/CYaml/include/module.modulemap" \
        -use-ld=lld \
        "$root/Tests/Fuzz/$t.swift" "${objects[@]}" "${libs[@]}" -o "$scratch/bin/$t"
}

run_target() {
    local t=$1
    local corpus=$scratch/run/$t findings=$scratch/findings/$t log
    rm -rf "$corpus"
    mkdir -p "$corpus" "$findings"
    cp "$root/Tests/Fuzz/corpus/$t"/* "$corpus/" 2>/dev/null || true
    log=$scratch/run/$t.log
    echo "== fuzzing $t for ${seconds}s (corpus: a copy of Tests/Fuzz/corpus/$t; findings: $findings)" >&2
    set +e
    # SWIFT_BACKTRACE: the runtime's backtracer, run under ASan after a Swift trap, reports
    # a bogus overflow of its own; the trap message and libFuzzer's stack are enough.
    SWIFT_BACKTRACE=enable=no nice -n 10 "$scratch/bin/$t" "$corpus" -max_total_time="$seconds" -print_final_stats=1 \
        -artifact_prefix="$findings/" "${extra[@]}" >"$log" 2>&1
    local status=$?
    set -e
    # The last status line (executions, cov, ft, exec/s) and the final statistics.
    grep -E '^#[0-9]+' "$log" | tail -1
    grep -E '^stat::' "$log"
    if ((status != 0)); then
        echo "== $t: libFuzzer exited $status; the report:" >&2
        grep -E 'ERROR|Fatal error|SUMMARY|Test unit written|artifact' "$log" | head -20 >&2
        echo "== full log: $log" >&2
    fi
    return $status
}

build_modules
if [[ $target == all ]]; then
    failed=0
    for t in "${targets[@]}"; do
        build_target "$t"
        run_target "$t" || failed=1
    done
    exit $failed
fi
modules_for "$target" >/dev/null || { echo "unknown target $target (--list)" >&2; exit 2; }
build_target "$target"
run_target "$target"
