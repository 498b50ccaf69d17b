/// The flows `shunt gen` cycles through: ranges of IPv4 (or IPv6) source and destination
/// addresses and of UDP source and destination ports. An IPv6 range varies the last 32 bits of
/// the address; the first 96 are fixed (`ipv6`). Frame s uses flow s mod flowCount, and each field takes its
/// value from that index in mixed radix (source port fastest, then destination port, source
/// address, destination address), so a run covers every combination evenly. Pure logic.
public struct FlowSpace: Equatable, Sendable {
    /// A range of consecutive values: `first`, and how many (at least 1).
    public struct Range: Equatable, Sendable {
        public var first: UInt32
        public var count: UInt32
        public init(first: UInt32, count: UInt32) {
            precondition(count >= 1)
            self.first = first
            self.count = count
        }
        public var last: UInt32 { first &+ (count - 1) }
    }

    /// One flow's fields, host order.
    public struct Flow: Equatable, Sendable {
        public var sourceAddress: UInt32
        public var destinationAddress: UInt32
        public var sourcePort: UInt16
        public var destinationPort: UInt16

        @inlinable
        public init(sourceAddress: UInt32, destinationAddress: UInt32, sourcePort: UInt16, destinationPort: UInt16) {
            self.sourceAddress = sourceAddress
            self.destinationAddress = destinationAddress
            self.sourcePort = sourcePort
            self.destinationPort = destinationPort
        }
    }

    /// At most this many combinations: enough to spread over any RSS table or flow cache under
    /// test, small enough that a short run still covers them all.
    public static let maximumFlows: UInt64 = 1 << 20

    /// The first 96 bits (12 bytes) of the IPv6 source and destination addresses; nil: IPv4.
    public struct IPv6Prefixes: Equatable, Sendable {
        public var source: [UInt8]
        public var destination: [UInt8]
        public init(source: [UInt8], destination: [UInt8]) {
            precondition(source.count == 12 && destination.count == 12)
            self.source = source
            self.destination = destination
        }
    }

    /// IPv4 addresses, or with `ipv6` set the last 32 bits of IPv6 addresses.
    public var sourceAddresses: Range
    public var destinationAddresses: Range
    public var sourcePorts: Range
    public var destinationPorts: Range
    public var ipv6: IPv6Prefixes?

    public init(sourceAddresses: Range, destinationAddresses: Range, sourcePorts: Range, destinationPorts: Range) {
        self.sourceAddresses = sourceAddresses
        self.destinationAddresses = destinationAddresses
        self.sourcePorts = sourcePorts
        self.destinationPorts = destinationPorts
    }

    public var flowCount: UInt64 {
        UInt64(sourceAddresses.count) * UInt64(destinationAddresses.count) * UInt64(sourcePorts.count)
            * UInt64(destinationPorts.count)
    }

    /// The flow of the frame with sequence number `sequence`.
    @inlinable
    public func flow(forSequence sequence: UInt64) -> Flow {
        var i = sequence % flowCount
        let sp = i % UInt64(sourcePorts.count); i /= UInt64(sourcePorts.count)
        let dp = i % UInt64(destinationPorts.count); i /= UInt64(destinationPorts.count)
        let sa = i % UInt64(sourceAddresses.count); i /= UInt64(sourceAddresses.count)
        let da = i
        return Flow(sourceAddress: sourceAddresses.first &+ UInt32(sa),
                    destinationAddress: destinationAddresses.first &+ UInt32(da),
                    sourcePort: UInt16(truncatingIfNeeded: sourcePorts.first &+ UInt32(sp)),
                    destinationPort: UInt16(truncatingIfNeeded: destinationPorts.first &+ UInt32(dp)))
    }

    // MARK: parsing "A[-B]"

    public struct ParseError: Error, Equatable, CustomStringConvertible {
        public var description: String
    }

    /// "P" or "P-Q" with 0 <= P <= Q <= 65535.
    public static func parsePorts(_ text: String) throws(ParseError) -> Range {
        let (a, b) = try split(text)
        guard let first = UInt16(a), let last = b.map({ UInt16($0) }) ?? UInt16(a) else {
            throw ParseError(description: "not a port or port range (P or P-Q, 0-65535): \(text)")
        }
        guard first <= last else { throw ParseError(description: "reversed range \(text): the first port is above the last") }
        return Range(first: UInt32(first), count: UInt32(last - first) + 1)
    }

    /// "A" or "A-B" with dotted-quad IPv4 addresses, A <= B.
    public static func parseIPv4Addresses(_ text: String) throws(ParseError) -> Range {
        let (a, b) = try split(text)
        guard let first = parseIPv4(a), let last = b.map({ parseIPv4($0) }) ?? parseIPv4(a) else {
            throw ParseError(description: "not an IPv4 address or range (A or A-B): \(text)")
        }
        guard first <= last else { throw ParseError(description: "reversed range \(text): the first address is above the last") }
        guard UInt64(last - first) + 1 <= maximumFlows else {
            throw ParseError(description: "range \(text) has more than \(maximumFlows) addresses")
        }
        return Range(first: first, count: last - first + 1)
    }

    private static func split(_ text: String) throws(ParseError) -> (Substring, Substring?) {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count), !parts.contains(where: \.isEmpty) else {
            throw ParseError(description: "malformed range \(text) (expected A or A-B)")
        }
        return (parts[0], parts.count == 2 ? parts[1] : nil)
    }

    /// Dotted quad to host-order UInt32; nil when malformed.
    public static func parseIPv4<S: StringProtocol>(_ text: S) -> UInt32? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var value: UInt32 = 0
        for p in parts {
            guard (1...3).contains(p.count), p.allSatisfy(\.isASCII), let octet = UInt8(p) else { return nil }
            value = value << 8 | UInt32(octet)
        }
        return value
    }

    /// "A" or "A-B" with IPv6 addresses sharing their first 96 bits, A <= B: the 12-byte prefix
    /// and the range of the last 32 bits.
    public static func parseIPv6Addresses(_ text: String) throws(ParseError) -> (prefix: [UInt8], range: Range) {
        let (a, b) = try split(text)
        guard let first = parseIPv6(a), let last = b.map({ parseIPv6($0) }) ?? parseIPv6(a) else {
            throw ParseError(description: "not an IPv6 address or range (A or A-B): \(text)")
        }
        guard first.prefix(12) == last.prefix(12) else {
            throw ParseError(description: "range \(text) varies more than the last 32 bits of the address")
        }
        let low = { (x: [UInt8]) in x[12...].reduce(UInt32(0)) { $0 << 8 | UInt32($1) } }
        guard low(first) <= low(last) else { throw ParseError(description: "reversed range \(text): the first address is above the last") }
        guard UInt64(low(last) - low(first)) + 1 <= maximumFlows else {
            throw ParseError(description: "range \(text) has more than \(maximumFlows) addresses")
        }
        return (Array(first.prefix(12)), Range(first: low(first), count: low(last) - low(first) + 1))
    }

    /// An IPv6 address in text (RFC 4291 2.2: hex groups, one "::"; no embedded IPv4) to its 16
    /// bytes; nil when malformed.
    public static func parseIPv6<S: StringProtocol>(_ text: S) -> [UInt8]? {
        func groups(_ part: Substring) -> [UInt16]? {
            if part.isEmpty { return [] }
            var out: [UInt16] = []
            for g in part.split(separator: ":", omittingEmptySubsequences: false) {
                guard (1...4).contains(g.count), g.allSatisfy(\.isHexDigit), let v = UInt16(g, radix: 16) else { return nil }
                out.append(v)
            }
            return out
        }
        let s = Substring(text)
        var words: [UInt16]
        let colons = s.indices.filter { s[$0] == ":" && s.index(after: $0) < s.endIndex && s[s.index(after: $0)] == ":" }
        if let c = colons.first {
            let after = s.index(c, offsetBy: 2)
            guard colons.count == 1, let head = groups(s[..<c]), let tail = groups(s[after...]),
                  head.count + tail.count <= 7 else { return nil }
            words = head + Array(repeating: 0, count: 8 - head.count - tail.count) + tail
        } else {
            guard let all = groups(s), all.count == 8 else { return nil }
            words = all
        }
        return words.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xff)] }
    }

    public static func formatIPv4(_ address: UInt32) -> String {
        "\(address >> 24).\(address >> 16 & 0xff).\(address >> 8 & 0xff).\(address & 0xff)"
    }
}

/// The IPv4 header checksum of a template whose addresses change per frame: the one's
/// complement sum of the header without addresses and checksum is taken once, and each frame
/// adds its two addresses (as xdp_gen does with shunt_gen_config.ip_csum_base).
public struct IPv4ChecksumBase: Equatable, Sendable {
    /// The 32-bit one's complement sum (unfolded) of the header's 16-bit words other than the
    /// checksum and the addresses.
    public var sum: UInt32

    /// `header`: the 20-byte IPv4 header (its checksum and address fields are ignored).
    public init<C: Collection>(header: C) where C.Element == UInt8, C.Index == Int {
        let h = Array(header)
        precondition(h.count >= 20)
        var s: UInt32 = 0
        for i in stride(from: 0, to: 20, by: 2) where i != 10 && !(12..<20).contains(i) {
            s += UInt32(h[i]) << 8 | UInt32(h[i + 1])
        }
        sum = s
    }

    /// The checksum to store (host order value of the big-endian field).
    @inlinable
    public func checksum(source: UInt32, destination: UInt32) -> UInt16 {
        var s = UInt64(sum) + UInt64(source >> 16) + UInt64(source & 0xffff) + UInt64(destination >> 16)
            + UInt64(destination & 0xffff)
        s = (s & 0xffff) + (s >> 16)
        s = (s & 0xffff) + (s >> 16)
        return ~UInt16(truncatingIfNeeded: s)
    }
}
