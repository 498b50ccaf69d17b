/// A network-namespace lab: namespaces joined by veth pairs, with addresses, MTUs, queue counts
/// and per-interface settings. The one description every lab is built from: `shunt lab`
/// (and Scripts/lab.sh on it), `shunt bench`, the benchmarks' scripts and the integration tests.
///
/// A topology is plain data; `upCommands` and `downCommands` are the `ip`/`sysctl`/`ethtool`
/// command lines that build and remove it (unit-tested, and run by `LabBuilder`).
public struct LabTopology: Sendable, Equatable {
    /// One veth pair: `a` in namespace `aNamespace`, `b` in `bNamespace` (names without the prefix).
    public struct Link: Sendable, Equatable {
        public var aNamespace: String
        public var a: String
        public var bNamespace: String
        public var b: String
        /// An address (CIDR) for `a`, or nil.
        public var aAddress: String?
        public var bAddress: String?
        public var mtu: Int?
        /// RX and TX queues of both ends (1: the veth default).
        public var queues = 1
        /// GRO on `a` / `b`: a veth end that receives XDP-redirected or XDP_TX frames needs NAPI.
        public var aGRO = false
        public var bGRO = false

        /// `NS:IF[@CIDR]=NS:IF[@CIDR]`, e.g. `c1:c1u@192.168.41.1/24=srv:s1`; a failure says what is wrong.
        public static func parse(_ text: String) -> Result<Link, LabSpecError> {
            let ends = text.split(separator: "=", omittingEmptySubsequences: false)
            guard ends.count == 2 else { return .failure(LabSpecError("'\(text)': want NS:IF[@CIDR]=NS:IF[@CIDR]")) }
            var parsed: [(ns: String, dev: String, address: String?)] = []
            for end in ends {
                let at = end.split(separator: "@", maxSplits: 1, omittingEmptySubsequences: false)
                let names = at[0].split(separator: ":", omittingEmptySubsequences: false)
                guard names.count == 2, names.allSatisfy({ !$0.isEmpty && $0.count <= 15 && $0.allSatisfy(Self.nameCharacter) }) else {
                    return .failure(LabSpecError("'\(end)': want NS:IF, each 1 to 15 letters, digits, '-', '_' or '.'"))
                }
                let address = at.count == 2 ? String(at[1]) : nil
                if let address, !Self.isCIDR(address) { return .failure(LabSpecError("'\(address)' is not an IPv4 address with a /prefix")) }
                parsed.append((String(names[0]), String(names[1]), address))
            }
            return .success(Link(parsed[0].ns, parsed[0].dev, parsed[1].ns, parsed[1].dev,
                                 aAddress: parsed[0].address, bAddress: parsed[1].address))
        }

        static func nameCharacter(_ c: Character) -> Bool { c.isASCII && (c.isLetter || c.isNumber || "-_.".contains(c)) }

        static func isCIDR(_ s: String) -> Bool {
            let parts = s.split(separator: "/", omittingEmptySubsequences: false)
            guard parts.count == 2, let bits = Int(parts[1]), (0...32).contains(bits) else { return false }
            let octets = parts[0].split(separator: ".", omittingEmptySubsequences: false)
            return octets.count == 4 && octets.allSatisfy { Int($0).map { (0...255).contains($0) } ?? false }
        }

        public init(_ aNamespace: String, _ a: String, _ bNamespace: String, _ b: String,
                    aAddress: String? = nil, bAddress: String? = nil, mtu: Int? = nil, queues: Int = 1) {
            (self.aNamespace, self.a, self.bNamespace, self.b) = (aNamespace, a, bNamespace, b)
            (self.aAddress, self.bAddress, self.mtu, self.queues) = (aAddress, bAddress, mtu, queues)
        }
    }

    /// Every namespace's name starts with it.
    public var prefix: String
    /// Namespace names without the prefix, in creation order.
    public var namespaces: [String]
    public var links: [Link]
    /// No IPv6 autoconfiguration chatter in measurements and captures.
    public var disableIPv6 = true

    public init(prefix: String, namespaces: [String], links: [Link]) {
        self.prefix = prefix
        self.namespaces = namespaces
        self.links = links
    }

    /// The benchmarks' lab: `[gen] gen0 <-> fwd0 [fwd] fwd1 <-> sink0 [sink]`, 10.203.0.1/24 on
    /// gen0 and 10.203.0.2/24 on sink0; with `monitorPorts` N, analysis ports fwd2... in fwd
    /// whose far ends mon0... sit in a `mon` namespace (GRO on, for the fast path's copies).
    /// GRO is on at fwd0: xdp_gen's XDP_TX frames reach it only through its NAPI.
    public static func genFwdSink(prefix: String, monitorPorts: Int = 0) -> LabTopology {
        var gen = Link("gen", "gen0", "fwd", "fwd0", aAddress: "10.203.0.1/24")
        gen.bGRO = true
        var links = [gen, Link("fwd", "fwd1", "sink", "sink0", bAddress: "10.203.0.2/24")]
        for i in 0..<monitorPorts {
            var mon = Link("fwd", "fwd\(2 + i)", "mon", "mon\(i)")
            mon.bGRO = true
            links.append(mon)
        }
        return LabTopology(prefix: prefix, namespaces: ["gen", "fwd", "sink"] + (monitorPorts > 0 ? ["mon"] : []), links: links)
    }

    /// The integration tests' star: a `fwd` namespace, and per side namespace `s` an interface
    /// `s0` whose peer in fwd is `p0`, `p1`, ... in order.
    public static func star(prefix: String, sides: [String], mtu: Int? = nil, queues: Int = 1) -> LabTopology {
        LabTopology(prefix: prefix, namespaces: ["fwd"] + sides, links: sides.enumerated().map { i, side in
            Link(side, "\(side)0", "fwd", "p\(i)", mtu: mtu, queues: queues)
        })
    }

    /// A lab of the given links (`LabTopology.Link.parse`), its namespaces in order of first mention.
    public static func links(prefix: String, _ links: [Link]) -> LabTopology {
        var namespaces: [String] = []
        for l in links {
            for ns in [l.aNamespace, l.bNamespace] where !namespaces.contains(ns) { namespaces.append(ns) }
        }
        return LabTopology(prefix: prefix, namespaces: namespaces, links: links)
    }

    public func namespace(_ name: String) -> String { prefix + name }

    /// The command lines that build the lab, in order.
    public func upCommands() -> [[String]] {
        var out: [[String]] = []
        for ns in namespaces {
            out.append(["ip", "netns", "add", namespace(ns)])
            out.append(["ip", "-n", namespace(ns), "link", "set", "lo", "up"])
            // -e: a kernel booted without IPv6 has no such key, which is fine here.
            if disableIPv6 { out.append(["ip", "netns", "exec", namespace(ns), "sysctl", "-qew", "net.ipv6.conf.all.disable_ipv6=1"]) }
        }
        for link in links { out += commands(link) }
        return out
    }

    private func commands(_ l: Link) -> [[String]] {
        let q = l.queues == 1 ? [] : ["numtxqueues", "\(l.queues)", "numrxqueues", "\(l.queues)"]
        var out = [["ip", "link", "add", l.a, "netns", namespace(l.aNamespace)] + q
            + ["type", "veth", "peer", "name", l.b, "netns", namespace(l.bNamespace)] + q]
        for (ns, dev, address, gro) in [(l.aNamespace, l.a, l.aAddress, l.aGRO), (l.bNamespace, l.b, l.bAddress, l.bGRO)] {
            if let mtu = l.mtu { out.append(["ip", "-n", namespace(ns), "link", "set", dev, "mtu", "\(mtu)"]) }
            if let address { out.append(["ip", "-n", namespace(ns), "addr", "add", address, "dev", dev]) }
            out.append(["ip", "-n", namespace(ns), "link", "set", dev, "up"])
            if gro { out.append(["ip", "netns", "exec", namespace(ns), "ethtool", "-K", dev, "gro", "on"]) }
        }
        return out
    }

    /// The command lines that remove the lab (the veths go with their namespaces).
    public func downCommands() -> [[String]] { namespaces.map { ["ip", "netns", "del", namespace($0)] } }
}

/// A lab description that does not parse: one line saying why.
public struct LabSpecError: Error, CustomStringConvertible, Equatable, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
