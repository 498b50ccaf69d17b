#!/usr/bin/env bash
# Installs the Debian packages Shunt builds and tests with, only those that are missing.
# Usage: Scripts/install-deps.sh [--bench]   (--bench adds the peers the benchmark compares against)
set -euo pipefail
# openvswitch-switch: the VXLAN interop tests run OVS's userspace datapath as a peer; tshark
# reads back the mirror tests' pcapng files; tcpdump is Scripts/mirror-lab.sh's capture.
# nftables: the NAT of the DVR north-south lab's router, fip and snat namespaces (nft).
packages=(libbpf-dev libelf-dev pkg-config iproute2 ethtool iputils-ping util-linux gcc libc6-dev openvswitch-switch tshark curl
          tcpdump nftables)
if [[ "${1:-}" == "--bench" ]]; then
    packages+=(dpdk-dev coreutils jq)
fi
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "installing: ${missing[*]}"
    if [[ $(id -u) -ne 0 ]]; then echo "Scripts/install-deps.sh: run as root to install packages" >&2; exit 1; fi
    apt-get update -qq
    # tshark's wireshark-common asks whether non-root users may capture: answer no, never prompt.
    echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
