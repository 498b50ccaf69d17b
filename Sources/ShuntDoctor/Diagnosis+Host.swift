import ShuntSystem

// The checks of the host and the namespace doctor runs in: capabilities, kernel vxlan devices,
// bridge netfilter, bpffs, the generator's engines, CPUs.
extension Diagnosis {
    /// CAP_NET_ADMIN (XDP attach, ethtool), CAP_NET_RAW (AF_PACKET) and CAP_BPF (program loads;
    /// CAP_SYS_ADMIN stands in for it) in the effective set.
    static func capabilities(_ facts: DoctorFacts) -> Check {
        let has = { (cap: Int) in facts.capabilities & (1 << UInt64(cap)) != 0 }
        let who = facts.userID == 0 ? "root" : "uid \(facts.userID)"
        var missing: [String] = []
        if !has(Capabilities.netAdmin) { missing.append("CAP_NET_ADMIN (attaching XDP, ethtool settings, namespaces)") }
        if !has(Capabilities.netRaw) { missing.append("CAP_NET_RAW (AF_PACKET rings)") }
        if !has(Capabilities.bpf) && !has(Capabilities.sysAdmin) { missing.append("CAP_BPF (loading BPF programs)") }
        guard !missing.isEmpty else {
            return Check("capabilities", .ok, "\(who) with CAP_NET_ADMIN, CAP_NET_RAW and CAP_BPF")
        }
        let detail = "\(who) without \(missing.joined(separator: ", ")): shunt forward, gen and sink cannot run, and checks below that need them may be incomplete"
        guard facts.userID != 0 else {
            return Check("capabilities", .problem, detail + "; root lacks them here because the bounding set does (a container or setpriv): start from a shell that has them")
        }
        let command = facts.commandLine.isEmpty ? "shunt doctor" : facts.commandLine.map(Shell.quote).joined(separator: " ")
        return Check("capabilities", .problem, detail, fix: "sudo \(command)")
    }

    /// Kernel vxlan devices and their UDP port: Linux takes 8472 unless told `dstport 4789`,
    /// while Shunt's --vxlan and Open vSwitch use 4789 (IANA).
    static func vxlanPorts(_ facts: DoctorFacts) -> [Check] {
        guard !facts.vxlanDevices.isEmpty else {
            return [Check("vxlan_port", .ok, "no kernel vxlan device in this namespace")]
        }
        return facts.vxlanDevices.map { d in
            let s = d.settings
            let what = "\(d.name) (\(s.external ? "external" : "VNI \(s.vni ?? 0)")\(d.underlay.map { ", dev \($0)" } ?? ""))"
            if s.dstport == VXLANPort.iana {
                return Check("vxlan_port", port: d.name, .ok, "\(what) uses UDP port 4789, as Shunt's --vxlan default and Open vSwitch do")
            }
            let why = s.dstport == VXLANPort.linuxDefault
                ? "UDP port 8472, Linux's default when `ip link add ... type vxlan` is given no dstport"
                : "UDP port \(s.dstport), neither 4789 nor Linux's default 8472"
            return Check("vxlan_port", port: d.name, .warning,
                         "\(what) uses \(why): Shunt's --vxlan (default dstport=4789) and Open vSwitch send to and listen on 4789, so neither side hears the other. The port cannot be changed in place: create the device again with dstport 4789 (its addresses must be added again), or give Shunt's tunnel dstport=\(s.dstport)",
                         fix: recreate(d, facts.namespace))
        }
    }

    /// `ip link del` and `ip link add` of the device with dstport 4789 and the settings read.
    static func recreate(_ d: VXLANDeviceFacts, _ here: String?) -> String {
        let s = d.settings
        var add = ["ip", "link", "add", d.name, "type", "vxlan"]
        add += s.external ? ["external"] : ["id", "\(s.vni ?? 0)"]
        if let local = s.local { add += ["local", local] }
        if let remote = s.remote {
            let multicast = remote.split(separator: ".").first.flatMap { Int($0) }.map { (224...239).contains($0) } ?? false
            add += [multicast ? "group" : "remote", remote]
        }
        if let underlay = d.underlay { add += ["dev", underlay] }
        if let ttl = s.ttl, ttl != 0 { add += ["ttl", "\(ttl)"] }
        add += ["dstport", "\(VXLANPort.iana)"]
        let up = ["ip", "link", "set", d.name] + (d.master.map { ["master", $0] } ?? []) + ["up"]
        return [["ip", "link", "del", d.name], add, up]
            .map { Shell.run($0.map(Shell.quote).joined(separator: " "), in: here) }.joined(separator: " && ")
    }

    /// br_netfilter makes Linux bridges run iptables on bridged frames (per namespace).
    static func bridgeNetfilter(_ facts: DoctorFacts) -> Check {
        guard let values = facts.bridgeNetfilter else {
            return Check("bridge_netfilter", .ok, "br_netfilter is not loaded: Linux bridges here do not call iptables")
        }
        let on = values.filter { $0.value != 0 }
        let bridges = facts.bridges.isEmpty ? "none now" : facts.bridges.joined(separator: ", ")
        guard !on.isEmpty else {
            return Check("bridge_netfilter", .ok, "br_netfilter is loaded and bridge-nf-call-* are 0 in this namespace: its Linux bridges (\(bridges)) do not call iptables")
        }
        let keys = on.map { "net.bridge.\($0.key)=\($0.value)" }
        return Check("bridge_netfilter", .warning,
                     "\(keys.joined(separator: ", ")): Linux bridges in this namespace (\(bridges)) pass bridged frames through iptables, which slows them (1.4 against 2.2 Mpps of 64-byte frames on the reference machine) and applies firewall rules to bridged traffic; Shunt itself is not affected, bridges in a lab and shunt bench's bridge forwarder are (the setting is per network namespace)",
                     fix: Shell.run("sysctl -w " + on.map { "net.bridge.\($0.key)=0" }.joined(separator: " "), in: facts.namespace))
    }

    /// bpffs at /sys/fs/bpf in this mount namespace.
    static func bpffs(_ mounts: String?) -> Check {
        guard let mounts else { return Check("bpffs", .warning, "/proc/self/mounts could not be read") }
        if MountTable(mounts).filesystem(at: "/sys/fs/bpf") == "bpf" {
            return Check("bpffs", .ok, "bpffs is mounted at /sys/fs/bpf")
        }
        return Check("bpffs", .warning,
                     "no bpffs at /sys/fs/bpf in this mount namespace (`ip netns exec` mounts a /sys of its own without one): Shunt pins nothing and does not need it, but objects pinned there by other tools (bpftool, xdp-loader) are not visible here",
                     fix: "mount -t bpf bpf /sys/fs/bpf")
    }

    /// XDP live frames (BPF_PROG_TEST_RUN with BPF_F_TEST_XDP_LIVE_FRAMES), AF_XDP, and the
    /// engine `shunt gen --engine auto` takes.
    static func engines(_ e: EngineFacts, _ facts: DoctorFacts) -> [Check] {
        if let error = e.probeError {
            let why = "the generator's engines could not be probed on \(e.port): \(error)"
            return [Check("xdp_live_frames", port: e.port, .warning, why), Check("af_xdp", port: e.port, .warning, why)]
        }
        let auto = "shunt gen --engine auto on \(e.port) uses the \(e.auto) engine"
        let live: Check
        if let refusal = e.liveFramesRefusal {
            let bpf = facts.capabilities & (1 << UInt64(Capabilities.bpf) | 1 << UInt64(Capabilities.sysAdmin)) != 0
            let caveat = bpf ? "" : " (this process lacks CAP_BPF, which may be the reason)"
            live = Check("xdp_live_frames", port: e.port, .warning,
                         "BPF_PROG_TEST_RUN with BPF_F_TEST_XDP_LIVE_FRAMES is refused by this kernel (\(refusal))\(caveat): \(auto) (where live frames are allowed the xdp engine injected 12-14 Mpps of 64-byte frames from one core into a veth on a machine of this kind, 2026-11-21; afxdp about 1; --engine pump about 2 without live frames)")
        } else {
            live = Check("xdp_live_frames", port: e.port, .ok,
                         "BPF_PROG_TEST_RUN with BPF_F_TEST_XDP_LIVE_FRAMES is allowed: \(auto) (frames up to 3408 bytes, no --imix)")
        }
        let afxdp = e.afxdp.map {
            Check("af_xdp", port: e.port, .ok, "an AF_XDP socket opens on \(e.port) (\($0))")
        } ?? Check("af_xdp", port: e.port, .warning,
                   "no AF_XDP socket on \(e.port): \(e.afxdpError ?? "unknown error"); shunt gen's afxdp engine cannot run there")
        return [live, afxdp]
    }

    /// CPUs online against the workers a forwarder would start.
    static func cpus(_ facts: DoctorFacts) -> Check {
        let c = facts.cpus
        guard let w = facts.workers else {
            return Check("cpus", .ok, "\(c) CPU\(c == 1 ? "" : "s") online: shunt forward runs at most one busy-polling worker per CPU well (--workers \(c)); a one-host benchmark also needs CPUs for shunt gen and shunt sink")
        }
        if w > c {
            let ports = facts.ports.map { "--port \(Shell.quote($0.name))" }.joined(separator: " ")
            return Check("cpus", .warning,
                         "--workers \(w) on \(c) CPU\(c == 1 ? "" : "s"): busy-polling workers would share CPUs and preempt each other",
                         fix: "shunt forward \(ports.isEmpty ? "" : ports + " ")--workers \(c)")
        }
        let rest = w == c && c > 1 ? "; none is left for shunt gen and shunt sink on the same host" : ""
        return Check("cpus", .ok, "--workers \(w) on \(c) CPU\(c == 1 ? "" : "s")\(rest)")
    }
}

/// VXLAN's UDP ports.
enum VXLANPort {
    /// IANA's port, OVS's and Shunt's default.
    static let iana: UInt16 = 4789
    /// What Linux's vxlan driver takes without `dstport`.
    static let linuxDefault: UInt16 = 8472
}

/// /proc/self/mounts: which filesystem a path sees.
public struct MountTable: Sendable {
    /// (mount point, filesystem type) in mount order.
    public let entries: [(point: String, type: String)]

    public init(_ text: String) {
        entries = text.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count >= 3 else { return nil }
            return (Self.unescape(String(fields[1])), String(fields[2]))
        }
    }

    /// The type of the filesystem that `path` is the root of: the last mount on `path` itself,
    /// unless a later mount on one of its parents (say a fresh /sys) hides it. nil if `path` is
    /// no mount point now.
    public func filesystem(at path: String) -> String? {
        var found: String?
        for (point, type) in entries {
            if point == path {
                found = type
            } else if Self.isAncestor(point, of: path) {
                found = nil
            }
        }
        return found
    }

    static func isAncestor(_ a: String, of path: String) -> Bool {
        a == "/" ? path != "/" : path.hasPrefix(a + "/")
    }

    /// Octal escapes of the mounts file (`\040` for a space).
    static func unescape(_ s: String) -> String {
        guard s.contains("\\") else { return s }
        var out = [UInt8](), bytes = Array(s.utf8), i = 0
        while i < bytes.count {
            if bytes[i] == UInt8(ascii: "\\"), i + 3 < bytes.count,
               let v = UInt8(String(decoding: bytes[(i + 1)...(i + 3)], as: UTF8.self), radix: 8) {
                out.append(v)
                i += 4
            } else {
                out.append(bytes[i])
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}
