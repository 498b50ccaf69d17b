#!/usr/bin/env bash
# The whole test suite: unit tests, BPF program tests (BPF_PROG_TEST_RUN) and the netns
# integration tests on real veths (these need root; without it they are skipped with a reason).
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ $(id -u) -eq 0 ]]; then Scripts/install-deps.sh; fi
# Namespaces of an earlier run that was killed before its cleanup: tests name theirs
# PREFIX<pid>x<n>-... or PREFIX<pid>-..., PREFIX being $SHUNT_TEST_NETNS_PREFIX (default shuntt).
prefix=${SHUNT_TEST_NETNS_PREFIX:-shuntt}
for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -F "$prefix" || true); do
    [[ $ns == "$prefix"* ]] || continue
    pid=${ns#"$prefix"}; pid=${pid%%[x-]*}
    [[ $pid =~ ^[0-9]+$ ]] || continue
    kill -0 "$pid" 2>/dev/null || ip netns del "$ns" 2>/dev/null || true
done
swift build --build-tests
# The log is kept so that a failing run ends with its failures (CI shows only the tail).
log=$(mktemp /tmp/shunt-test-log.XXXXXX)
trap 'rm -f "$log"' EXIT
set +e
swift test --skip-build "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# Skipped tests and why (e.g. the live-frames generator engine on a kernel that refuses live
# frames), then swift test's closing line again, so that the log still ends with it.
skips=$(grep -E '^. Test .* skipped' "$log" || true)
if [[ -n $skips ]]; then
    echo "=== skipped: $(wc -l <<<"$skips") test(s) ==="
    echo "$skips"
    grep -E 'Test run with [0-9]+ tests' "$log" | tail -1
fi
# The allocation gate (README, "Allocation gate"): a worker pass of each engine, release build,
# must not allocate. It opens packet sockets, so it needs root like the netns tests.
if [[ $(id -u) -eq 0 ]]; then
    echo "=== allocation gate: swift package benchmark thresholds check ==="
    gate=0
    swift package --disable-sandbox benchmark thresholds check --no-progress || gate=$?
    if [[ $gate -ne 0 ]]; then
        echo "=== allocation gate failed (exit $gate): a worker pass allocated; see the table above ==="
        [[ $status -ne 0 ]] || status=$gate
    fi
else
    echo "=== allocation gate skipped: it needs root (CAP_NET_RAW) ==="
fi
if [[ $status -ne 0 ]]; then
    echo "=== failures (also above, in order) ==="
    grep -E -A4 'recorded an issue|Fatal error|Program crashed|error: ' "$log" | grep -v '^◇' | head -120
fi
exit "$status"
