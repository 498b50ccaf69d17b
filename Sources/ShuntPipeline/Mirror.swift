import ShuntCore

// Port mirroring (SPAN): what a mirror session is, how it is written, and how it is checked.
// Pure: no I/O. The forwarder turns a resolved `MirrorSession` into copies
// (docs/design/0012-port-mirroring.md).

/// Which of a source port's traffic a session copies.
public enum MirrorDirection: String, Sendable, CaseIterable {
    /// Frames received on the port (as they arrived).
    case ingress = "in"
    /// Frames sent out of the port (as they leave, after the flow's edits).
    case egress = "out"
    case both

    public var ingress: Bool { self != .egress }
    public var egress: Bool { self != .ingress }
}

/// Where a session's copies go, as written (`to=`): a port name (an interface: SPAN; a VXLAN
/// tunnel port: remote mirroring with that tunnel's VNI) or a pcapng file.
public enum MirrorTarget: Equatable, Sendable, CustomStringConvertible {
    case port(String)
    case pcap(path: String)

    public var description: String {
        switch self {
        case .port(let name): name
        case .pcap(let path): "pcap:\(path)"
        }
    }
}

/// A mirror session as the user wrote it (`--mirror`, `mirrors:` in --config, `shunt ctl mirror add`).
public struct MirrorSpec: Equatable, Sendable {
    public var name: String
    public var sources: [String]
    public var direction: MirrorDirection = .both
    public var target: MirrorTarget
    /// Copy 1 in `sample` selected packets (1: every one).
    public var sample: UInt32 = 1
    /// Copies are cut to this many bytes; nil keeps whole frames.
    public var snaplen: UInt32?
    /// Flow-syntax match fields (`tcp,tp_dst=80`); nil selects every packet of the sources.
    public var match: String?

    public init(name: String, sources: [String], direction: MirrorDirection = .both, target: MirrorTarget,
                sample: UInt32 = 1, snaplen: UInt32? = nil, match: String? = nil) {
        self.name = name
        self.sources = sources
        self.direction = direction
        self.target = target
        self.sample = sample
        self.snaplen = snaplen
        self.match = match
    }

    /// The smallest snap length: an Ethernet header.
    public static let minimumSnaplen: UInt32 = 14
    public static let keys = ["src", "dir", "to", "sample", "snaplen", "match"]

    /// `NAME,src=PORT[+PORT...][,dir=in|out|both],to=PORT|pcap:FILE[,sample=N][,snaplen=N][,match=FLOWMATCH]`.
    /// `match=` takes the rest of the text (flow matches contain commas), so it comes last.
    public static func parse(_ text: String) throws(MirrorSpecError) -> MirrorSpec {
        var rest = Substring(text)
        var matchText: String? = nil
        if let r = rest.firstRange(of: ",match=") {
            matchText = String(rest[r.upperBound...])
            rest = rest[..<r.lowerBound]
        }
        let parts = rest.split(separator: ",", omittingEmptySubsequences: false)
        guard let first = parts.first, !first.isEmpty, !first.contains("=") else {
            throw MirrorSpecError("a mirror starts with its name: NAME,src=PORT,to=PORT|pcap:FILE (got '\(text)')")
        }
        let name = String(first)
        var fields: [String: String] = [:]
        for part in parts.dropFirst() {
            guard let eq = part.firstIndex(of: "=") else {
                throw MirrorSpecError("mirror \(name): '\(part)' is not KEY=VALUE (keys: \(keys.joined(separator: ", ")))")
            }
            let key = String(part[..<eq])
            guard fields[key] == nil else { throw MirrorSpecError("mirror \(name): \(key) is given twice") }
            fields[key] = String(part[part.index(after: eq)...])
        }
        if let matchText { fields["match"] = matchText }
        return try make(name: name, fields: fields)
    }

    /// From key/value pairs (the YAML form uses the same keys; `src` may also be a list joined by '+').
    public static func make(name: String, fields: [String: String]) throws(MirrorSpecError) -> MirrorSpec {
        guard !name.isEmpty, !name.contains(where: { $0 == "," || $0 == "=" || $0 == " " }) else {
            throw MirrorSpecError("mirror name '\(name)' must be non-empty, without ',', '=' or spaces")
        }
        if let key = fields.keys.sorted().first(where: { !keys.contains($0) }) {
            throw MirrorSpecError("mirror \(name): unknown key '\(key)' (keys: \(keys.joined(separator: ", ")))")
        }
        guard let src = fields["src"], !src.isEmpty else {
            throw MirrorSpecError("mirror \(name): src=PORT[+PORT...] is missing (which ports to copy)")
        }
        let sources = src.split(separator: "+", omittingEmptySubsequences: false).map(String.init)
        if sources.contains(where: \.isEmpty) { throw MirrorSpecError("mirror \(name): src has an empty port name: '\(src)'") }
        guard let to = fields["to"], !to.isEmpty else {
            throw MirrorSpecError("mirror \(name): to=PORT|pcap:FILE is missing (where the copies go)")
        }
        let target: MirrorTarget
        if to.hasPrefix("pcap:") {
            let path = String(to.dropFirst(5))
            guard !path.isEmpty else { throw MirrorSpecError("mirror \(name): to=pcap:FILE needs a file name") }
            target = .pcap(path: path)
        } else {
            target = .port(to)
        }
        var spec = MirrorSpec(name: name, sources: sources, target: target)
        if let dir = fields["dir"] {
            guard let d = MirrorDirection(rawValue: dir) else {
                throw MirrorSpecError("mirror \(name): dir must be in, out or both, got '\(dir)'")
            }
            spec.direction = d
        }
        if let sample = fields["sample"] {
            guard let n = UInt32(sample) else {
                throw MirrorSpecError("mirror \(name): sample must be a whole number N (copy 1 in N), got '\(sample)'")
            }
            guard n >= 1 else { throw MirrorSpecError("mirror \(name): sample must be 1 or more (copy 1 in N), got 0") }
            spec.sample = n
        }
        if let snaplen = fields["snaplen"] {
            guard let n = UInt32(snaplen) else {
                throw MirrorSpecError("mirror \(name): snaplen must be a number of bytes, got '\(snaplen)'")
            }
            guard n >= minimumSnaplen else {
                throw MirrorSpecError("mirror \(name): snaplen must be at least \(minimumSnaplen) bytes (an Ethernet header), got \(n)")
            }
            spec.snaplen = n
        }
        if let match = fields["match"] {
            guard !match.isEmpty else { throw MirrorSpecError("mirror \(name): match= is empty (leave it out to copy everything)") }
            spec.match = match
        }
        return spec
    }

    /// The text form, which `parse` reads back.
    public var text: String {
        var parts = [name, "src=" + sources.joined(separator: "+")]
        if direction != .both { parts.append("dir=\(direction.rawValue)") }
        parts.append("to=\(target)")
        if sample != 1 { parts.append("sample=\(sample)") }
        if let snaplen { parts.append("snaplen=\(snaplen)") }
        if let match { parts.append("match=\(match)") }
        return parts.joined(separator: ",")
    }
}

/// A mirror session that was refused; nothing was applied.
public struct MirrorSpecError: Error, Equatable, Sendable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// A session checked against the forwarder's ports: numbers instead of names.
public struct MirrorSession: Equatable, Sendable {
    public enum Output: Equatable, Sendable {
        /// A port number (from 1): an interface (SPAN) or a tunnel port (remote mirroring).
        case port(UInt32)
        case pcap(path: String)
    }

    public let spec: MirrorSpec
    /// Source port numbers (from 1), in the order given.
    public let sources: [UInt32]
    public let output: Output
    public let match: FlowMatch?

    public var name: String { spec.name }
    public var direction: MirrorDirection { spec.direction }
    public var sample: UInt32 { spec.sample }
    /// 0: whole frames.
    public var snaplen: UInt32 { spec.snaplen ?? 0 }

    /// Resolves port names, parses the match. Every mistake is one line naming the session.
    public static func resolve(_ spec: MirrorSpec, ports: PortNames) throws(MirrorSpecError) -> MirrorSession {
        let known = ports.names.joined(separator: ", ")
        var sources: [UInt32] = []
        for name in spec.sources {
            guard let n = ports.number(of: name[...]) else {
                throw MirrorSpecError("mirror \(spec.name): unknown source port '\(name)' (ports: \(known))")
            }
            guard !sources.contains(n) else { throw MirrorSpecError("mirror \(spec.name): source port '\(name)' is given twice") }
            sources.append(n)
        }
        let output: Output
        switch spec.target {
        case .port(let name):
            guard let n = ports.number(of: name[...]) else {
                throw MirrorSpecError("mirror \(spec.name): unknown output port '\(name)' (ports: \(known))")
            }
            guard !sources.contains(n) else {
                throw MirrorSpecError("mirror \(spec.name): output port '\(name)' is also one of its sources; a mirror's output cannot be mirrored by it")
            }
            output = .port(n)
        case .pcap(let path):
            output = .pcap(path: path)
        }
        var match: FlowMatch? = nil
        if let text = spec.match {
            let parsed: (table: UInt8?, priority: UInt16?, match: FlowMatch)
            do throws(FlowParseError) {
                parsed = try FlowSyntax.parseMatch(text[...], ports: ports)
            } catch {
                throw MirrorSpecError("mirror \(spec.name): match '\(text)': \(error.reason)")
            }
            guard parsed.table == nil, parsed.priority == nil else {
                throw MirrorSpecError("mirror \(spec.name): match takes match fields only, not table= or priority=")
            }
            match = parsed.match
        }
        return MirrorSession(spec: spec, sources: sources, output: output, match: match)
    }

    /// Whether the session copies this packet received on `inPort` (from 1), by its key.
    @inline(__always)
    public func selectsIngress(key: FlowKey, inPort: UInt32) -> Bool {
        spec.direction.ingress && sources.contains(inPort) && (match?.matches(key) ?? true)
    }

    /// Whether the session copies this packet (of key `key`) when it leaves on `outPort`.
    @inline(__always)
    public func selectsEgress(key: FlowKey, outPort: UInt32) -> Bool {
        spec.direction.egress && sources.contains(outPort) && (match?.matches(key) ?? true)
    }

    /// Whether any packet of the flow `key` with these datapath actions is copied (the XDP
    /// fast path leaves such flows to the slow path, which makes the copies).
    public func selects(flow key: FlowKey, actions: [DatapathAction]) -> Bool {
        if selectsIngress(key: key, inPort: key.inPort) { return true }
        for case .output(let p) in actions where selectsEgress(key: key, outPort: p) { return true }
        return false
    }
}

/// All sessions of a forwarder: names are unique; checked all together so a list is applied
/// whole or not at all.
public enum MirrorSessions {
    public static func resolveAll(_ specs: [MirrorSpec], ports: PortNames,
                                  existing: [MirrorSession] = []) throws(MirrorSpecError) -> [MirrorSession] {
        var names = Set(existing.map(\.name))
        var out: [MirrorSession] = []
        for spec in specs {
            guard names.insert(spec.name).inserted else {
                throw MirrorSpecError("mirror \(spec.name): a mirror of that name exists already")
            }
            out.append(try MirrorSession.resolve(spec, ports: ports))
        }
        var files = Set<String>()
        for s in existing {
            if case .pcap(let p) = s.output { files.insert(p) }
        }
        for s in out {
            if case .pcap(let p) = s.output, !files.insert(p).inserted {
                throw MirrorSpecError("mirror \(s.name): pcap file \(p) is the output of another mirror")
            }
        }
        return out
    }
}
