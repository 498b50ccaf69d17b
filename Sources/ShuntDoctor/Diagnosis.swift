import ShuntSystem

/// Turns `DoctorFacts` into checks: the decisions of `shunt doctor`, without system calls.
/// This file holds the per-port checks; Diagnosis+Host.swift the host and namespace ones.
public enum Diagnosis {
    /// Every check, in the order `shunt doctor` prints them.
    public static func report(_ facts: DoctorFacts) -> DoctorReport {
        var checks = [capabilities(facts)]
        for port in facts.ports {
            checks += [self.port(port, facts.namespace), xdpNative(port, facts.namespace), xdpRedirect(port),
                       offloads(port, facts.namespace)]
        }
        checks += vxlanMTU(facts.ports, facts.namespace)
        checks += vxlanPorts(facts)
        checks += [bridgeNetfilter(facts), bpffs(facts.mounts)]
        if let engines = facts.engines { checks += self.engines(engines, facts) }
        checks.append(cpus(facts))
        return DoctorReport(checks: checks)
    }

    // MARK: ports

    /// The port and its peer: up, MTU, driver.
    static func port(_ p: PortFacts, _ here: String?) -> Check {
        let what = "\(p.driver ?? "unknown driver"), \(p.isUp ? "up" : "down"), MTU \(p.mtu)"
        guard p.isUp else {
            return Check("port", port: p.name, .problem, "\(what): shunt forward refuses a port that is down",
                         fix: Shell.run("ip link set \(p.name) up", in: here))
        }
        guard let peer = p.peer else {
            let note = p.isVeth ? "; its veth peer cannot be read (\(p.peerError ?? "unknown")), so its checks are left out" : ""
            return Check("port", port: p.name, .ok, what + note)
        }
        let peerText = "peer \(peer.name)\(Shell.namespaceNote(peer.namespace)), \(peer.isUp ? "up" : "down")"
            + (peer.mtu.map { ", MTU \($0)" } ?? "")
        guard peer.isUp else {
            return Check("port", port: p.name, .problem,
                         "\(what); \(peerText): nothing arrives on \(p.name), and frames sent out of it are lost",
                         fix: Shell.run("ip link set \(peer.name) up", in: peer.namespace))
        }
        return Check("port", port: p.name, .ok, "\(what); \(peerText)")
    }

    /// Whether the driver runs XDP itself (native) or shunt falls back to generic mode.
    static func xdpNative(_ p: PortFacts, _ here: String?) -> Check {
        let driver = driverPhrase(p)
        if p.hasXDP {
            let what = "XDP program \(p.xdpProgram.map { $0 + " " } ?? "")is already attached to \(p.name): shunt forward --datapath xdp, shunt xdp-redirect and shunt sink's xdp engine cannot attach theirs while it is there"
            guard !p.xdpProgramThroughLink else {
                return Check("xdp_native", port: p.name, .warning,
                             "\(what); a bpf_link of another process holds it (`bpftool link show` names the pid): it goes when that process ends")
            }
            return Check("xdp_native", port: p.name, .warning, "\(what); remove it if nothing needs it",
                         fix: Shell.run("ip link set dev \(p.name) xdp off", in: here))
        }
        if let error = p.featuresError {
            return Check("xdp_native", port: p.name, .warning, "could not read the xdp-features of \(p.name): \(error)")
        }
        guard let features = p.xdpFeatures else {
            return Check("xdp_native", port: p.name, .warning,
                         "this kernel does not report xdp-features (Linux 6.3 and later do), so whether \(driver) runs XDP natively is unknown; shunt forward --datapath xdp tries native mode, then generic")
        }
        if features.contains(.basic) {
            return Check("xdp_native", port: p.name, .ok, "native XDP in \(driver): shunt forward --datapath xdp attaches in driver mode")
        }
        return Check("xdp_native", port: p.name, .warning,
                     "\(driver) has no native XDP: shunt forward --datapath xdp attaches in generic (skb) mode, which is slower; no setting changes that")
    }

    /// Whether frames an XDP program redirects into the port arrive (for a veth: the peer's NAPI).
    static func xdpRedirect(_ p: PortFacts) -> Check {
        guard p.isVeth else { return deviceRedirect(p) }
        guard let peer = p.peer else { return unreadPeerRedirect(p) }
        let state = "its veth peer \(peer.name)\(Shell.namespaceNote(peer.namespace)) is \(peer.isUp ? "up" : "down"), GRO \(peer.gro ? "on" : "off"), \(peer.hasXDP ? "an XDP program attached" : "no XDP program")"
        let ready = p.acceptsRedirect ?? (peer.isUp && (peer.gro || peer.hasXDP))
        let gro = { (on: Bool) in Shell.run("ethtool -K \(peer.name) gro \(on ? "on" : "off")", in: peer.namespace) }
        if ready {
            let judged = p.acceptsRedirect == nil ? " (judged from the peer: this kernel does not report xdp-features)" : ""
            return Check("xdp_redirect", port: p.name, .ok,
                         "redirects into \(p.name) arrive: \(state), so it has a NAPI ring to take them\(judged)")
        }
        if !peer.isUp {
            let up = Shell.run("ip link set \(peer.name) up", in: peer.namespace)
            return Check("xdp_redirect", port: p.name, .problem,
                         "redirects into \(p.name) are dropped: \(state); bring it up, then set GRO (again: the veth reads the peer's GRO only while the peer is up)",
                         fix: peer.gro ? "\(up) && \(gro(false)) && \(gro(true))" : "\(up) && \(gro(true))")
        }
        if !peer.gro && !peer.hasXDP {
            return Check("xdp_redirect", port: p.name, .problem,
                         "redirects into \(p.name) are dropped silently: \(state), so it has no NAPI ring to take them (shunt forward --datapath xdp refuses \(p.name) without --fix-peers; frames of shunt xdp-redirect and of shunt gen's xdp and pump engines vanish)",
                         fix: gro(true))
        }
        return Check("xdp_redirect", port: p.name, .problem,
                     "redirects into \(p.name) are dropped although \(state): the veth read the peer's state while it was down, or the peer has more TX queues than \(p.name) has RX queues; switching GRO off and on makes the veth read it again",
                     fix: "\(gro(false)) && \(gro(true))")
    }

    /// "the veth driver", or "the driver of eth1" when its name is unknown.
    static func driverPhrase(_ p: PortFacts) -> String { p.driver.map { "the \($0) driver" } ?? "the driver of \(p.name)" }

    /// Why the kernel's answer (NDO_XMIT) is unknown.
    static func featuresUnknown(_ p: PortFacts) -> String {
        p.featuresError.map { "its xdp-features could not be read (\($0))" } ?? "this kernel does not report xdp-features"
    }

    /// A veth whose peer could not be read (a namespace without a name under /run/netns, or no
    /// permission to enter it): only the veth's own bit is known.
    static func unreadPeerRedirect(_ p: PortFacts) -> Check {
        let why = "its veth peer cannot be read (\(p.peerError ?? "not found"))"
        switch p.acceptsRedirect {
        case true?:
            return Check("xdp_redirect", port: p.name, .ok, "redirects into \(p.name) arrive (the veth advertises ndo_xdp_xmit); \(why)")
        case false?:
            return Check("xdp_redirect", port: p.name, .problem,
                         "redirects into \(p.name) are dropped: the veth does not advertise ndo_xdp_xmit and \(why), so doctor cannot name the fix: turn GRO on for the peer (ethtool -K PEER gro on, in its namespace) or attach an XDP program to it")
        case nil:
            return Check("xdp_redirect", port: p.name, .warning,
                         "cannot tell whether redirects into \(p.name) arrive: \(featuresUnknown(p)), and \(why)")
        }
    }

    /// A device other than a veth: the driver's ndo_xdp_xmit decides.
    static func deviceRedirect(_ p: PortFacts) -> Check {
        let driver = driverPhrase(p)
        switch p.acceptsRedirect {
        case true?:
            return Check("xdp_redirect", port: p.name, .ok, "redirects into \(p.name) arrive (\(driver) advertises ndo_xdp_xmit)")
        case false?:
            return Check("xdp_redirect", port: p.name, .problem,
                         "\(driver) does not take redirected frames (no ndo_xdp_xmit): shunt forward --datapath xdp refuses \(p.name); use --datapath afpacket for it")
        case nil:
            return Check("xdp_redirect", port: p.name, .warning,
                         "cannot tell whether redirects into \(p.name) arrive: \(featuresUnknown(p))")
        }
    }

    /// Offloads that keep flows in the slow path or make frames the rings drop: receive
    /// coalescing on the port, TX checksum offload and TSO on a veth peer (the sender).
    static func offloads(_ p: PortFacts, _ here: String?) -> Check {
        var issues: [String] = [], fixes: [String] = [], fine: [String] = []
        if let o = p.offloads {
            let merging = [("gro", o.gro), ("lro", o.lro)].filter(\.1).map(\.0)
            if merging.isEmpty { fine.append("\(p.name) GRO and LRO off") } else {
                issues.append("\(merging.map { $0.uppercased() }.joined(separator: " and ")) on \(p.name) merges received TCP segments into frames of up to 64 KiB before the forwarder sees them: the afpacket datapath (and the XDP datapath's slow path) drops those larger than a ring frame as too_large (keep GRO on only where a peer sends into \(p.name) by XDP: shunt gen's xdp or pump engine)")
                fixes.append(Shell.run("ethtool -K \(p.name) " + merging.map { "\($0) off" }.joined(separator: " "), in: here))
            }
        } else {
            fine.append("the offloads of \(p.name) could not be read")
        }
        if p.isVeth && p.peer == nil {
            let why = "the offloads of its veth peer, the sender, cannot be read (\(p.peerError ?? "not found"))"
            return offloadCheck(p.name, issues + [why], fixes, fine)
        }
        if let peer = p.peer {
            guard let o = peer.offloads else {
                let why = "the offloads of its peer \(peer.name) could not be read"
                return offloadCheck(p.name, issues + [why], fixes, fine)
            }
            var off: [String] = []
            if o.txChecksum {
                issues.append("its veth peer \(peer.name) has TX checksum offload on: frames its stack sends carry unfinished checksums (CHECKSUM_PARTIAL), which the XDP fast path cannot complete, so their flows stay in the slow path (checksum_pending)")
                off.append("tx off")
            }
            if o.tso {
                issues.append("\(peer.name) has TSO on: its TCP frames reach \(p.name) as single frames of up to 64 KiB, which the afpacket datapath drops as too_large (an XDP program on \(p.name) turns TSO off on \(peer.name) while attached)")
                off.append("tso off")
            }
            if off.isEmpty { fine.append("peer \(peer.name) TX checksum offload and TSO off") } else {
                fixes.append(Shell.run("ethtool -K \(peer.name) " + off.joined(separator: " "), in: peer.namespace))
            }
        }
        return offloadCheck(p.name, issues, fixes, fine)
    }

    static func offloadCheck(_ port: String, _ issues: [String], _ fixes: [String], _ fine: [String]) -> Check {
        guard !issues.isEmpty else {
            return Check("offloads", port: port, .ok, "no offload keeps flows in the slow path: " + fine.joined(separator: "; "))
        }
        return Check("offloads", port: port, .warning, issues.joined(separator: "; "),
                     fix: fixes.isEmpty ? nil : fixes.joined(separator: " && "))
    }

    /// VXLAN adds 50 bytes (IPv4 outer headers): an underlay carries the other ports' full-size
    /// frames only with an MTU 50 above theirs. Per port when several are given.
    static func vxlanMTU(_ ports: [PortFacts], _ here: String?) -> [Check] {
        guard ports.count >= 2 else { return [] }
        func needed(_ i: Int) -> Int { ports.indices.filter { $0 != i }.map { ports[$0].mtu }.max()! + VXLANOverhead.ipv4 }
        let underlays = ports.indices.filter { ports[$0].mtu >= needed($0) }
        return ports.indices.map { i in
            let p = ports[i], need = needed(i)
            if p.mtu >= need {
                return Check("vxlan_mtu", port: p.name, .ok,
                             "MTU \(p.mtu) leaves room for VXLAN: as an underlay, \(p.name) carries the other ports' full-size frames (it needs \(need))")
            }
            if let u = underlays.first {
                return Check("vxlan_mtu", port: p.name, .ok,
                             "MTU \(p.mtu) is too small to carry the others' frames in VXLAN (\(need) needed), but \(ports[u].name) can be the underlay (MTU \(ports[u].mtu))")
            }
            var fix = Shell.run("ip link set \(p.name) mtu \(need)", in: here)
            if let peer = p.peer { fix += " && " + Shell.run("ip link set \(peer.name) mtu \(need)", in: peer.namespace) }
            return Check("vxlan_mtu", port: p.name, .warning,
                         "MTU \(p.mtu) leaves no room for VXLAN's \(VXLANOverhead.ipv4) bytes: as a tunnel's underlay, \(p.name) needs MTU \(need) for the others' full-size frames; larger ones are dropped as tunnel_mtu (IPv4 with DF is answered with ICMP fragmentation needed). Raise it on the underlay (and its peer), or lower the other ports' MTU by \(VXLANOverhead.ipv4)",
                         fix: fix)
        }
    }
}

/// Outer header bytes VXLAN adds to a frame.
enum VXLANOverhead {
    /// Ethernet 14 + IPv4 20 + UDP 8 + VXLAN 8.
    static let ipv4 = 50
}

/// Fix commands as a user types them in a shell.
enum Shell {
    /// `command` as run in the named namespace (`ip netns exec NS ...`), or as it is.
    static func run(_ command: String, in namespace: String?) -> String {
        namespace.map { "ip netns exec \(quote($0)) \(command)" } ?? command
    }

    /// " (namespace NS)" or "".
    static func namespaceNote(_ namespace: String?) -> String { namespace.map { " (namespace \($0))" } ?? "" }

    /// `arg` as one shell word: as it is when it has only safe characters, else single-quoted.
    static func quote(_ arg: String) -> String {
        let safe = !arg.isEmpty && arg.unicodeScalars.allSatisfy {
            $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || "-_./:=,@%+".unicodeScalars.contains($0))
        }
        return safe ? arg : "'" + arg.replacingAll("'", with: "'\\''") + "'"
    }
}

extension String {
    func replacingAll(_ target: Character, with replacement: String) -> String {
        var out = ""
        for c in self { if c == target { out += replacement } else { out.append(c) } }
        return out
    }
}
