#!/usr/bin/env bash
# The three-namespace lab: gen -- fwd -- sink, joined by two veth pairs.
#
#   [PREFIXgen] gen0 <-veth-> fwd0 [PREFIXfwd] fwd1 <-veth-> sink0 [PREFIXsink]
#
# Source this file, then: lab_up PREFIX ... lab_down PREFIX. Endpoints get 10.203.0.1/24 (gen0)
# and 10.203.0.2/24 (sink0); fwd has no addresses. TX checksum offload stays on: Shunt completes
# offloaded checksums itself.
set -u

lab_up() {
    local p=$1
    lab_down "$p" 2>/dev/null || true
    ip netns add "${p}gen"
    ip netns add "${p}fwd"
    ip netns add "${p}sink"
    ip link add gen0 netns "${p}gen" type veth peer name fwd0 netns "${p}fwd"
    ip link add fwd1 netns "${p}fwd" type veth peer name sink0 netns "${p}sink"
    ip -n "${p}gen" addr add 10.203.0.1/24 dev gen0
    ip -n "${p}sink" addr add 10.203.0.2/24 dev sink0
    local ns dev
    for ns in gen fwd sink; do ip -n "${p}${ns}" link set lo up; done
    ip -n "${p}gen" link set gen0 up
    ip -n "${p}fwd" link set fwd0 up
    ip -n "${p}fwd" link set fwd1 up
    ip -n "${p}sink" link set sink0 up
    # No IPv6 autoconfiguration chatter in measurements.
    for ns in gen fwd sink; do
        ip netns exec "${p}${ns}" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 2>/dev/null || true
    done
}

lab_down() {
    local p=$1 ns
    for ns in gen fwd sink; do
        ip netns del "${p}${ns}" 2>/dev/null || true
    done
}
