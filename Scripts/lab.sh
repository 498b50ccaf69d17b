#!/usr/bin/env bash
# The three-namespace lab: gen -- fwd -- sink, joined by two veth pairs.
#
#   [PREFIXgen] gen0 <-veth-> fwd0 [PREFIXfwd] fwd1 <-veth-> sink0 [PREFIXsink]
#
# Source this file, then: lab_up PREFIX [--monitor-ports N] ... lab_down PREFIX. A thin front for
# `shunt lab` (the LabTopology that shunt bench and the tests build too): 10.203.0.1/24 on gen0,
# 10.203.0.2/24 on sink0, IPv6 off, GRO on fwd0; fwd has no addresses. TX checksum offload stays
# on: Shunt completes offloaded checksums itself. The shunt binary is $SHUNT (or $shunt), else
# the release build, else the debug build of this checkout.
set -u

lab_shunt() {
    local root
    root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
    local candidate
    for candidate in "${SHUNT:-}" "${shunt:-}" "$root/.build/release/shunt" "$root/.build/debug/shunt"; do
        [[ -n $candidate && -x $candidate ]] && { echo "$candidate"; return 0; }
    done
    echo "lab.sh: no shunt binary (set SHUNT, or run swift build)" >&2
    return 1
}

lab_up() {
    local p=$1 bin
    shift
    bin=$(lab_shunt) || return 1
    "$bin" lab up --prefix "$p" "$@"
}

lab_down() {
    local p=$1 bin
    shift
    bin=$(lab_shunt) || return 1
    "$bin" lab down --prefix "$p" "$@"
}
