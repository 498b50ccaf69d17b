import ShuntCore

/// `ovs-ofctl` flow syntax both ways, so users can bring the flows they already have.
public enum FlowSyntax {
    /// Parses one add-flow line (`table=1,priority=3,arp,dl_vlan=1 actions=drop`).
    public static func parseFlow(_ text: Substring, ports: PortNames) throws(FlowParseError) -> FlowRule {
        let parser = FlowTextParser(text: text, ports: ports, isFlow: true)
        let parsed = try parser.parse()
        guard let actions = parsed.actions else {
            throw parser.fail(parser.endOfContent, "missing 'actions=' (every flow needs actions, e.g. 'actions=drop')")
        }
        return FlowRule(
            table: parsed.table ?? 0, priority: parsed.priority ?? FlowRule.defaultPriority, match: parsed.match,
            actions: actions, cookie: parsed.cookie ?? 0)
    }

    /// For del-flows: a nil table means every table, a nil priority the default (for --strict).
    public static func parseMatch(
        _ text: Substring, ports: PortNames
    ) throws(FlowParseError) -> (table: UInt8?, priority: UInt16?, match: FlowMatch) {
        let parsed = try FlowTextParser(text: text, ports: ports, isFlow: false).parse()
        return (parsed.table, parsed.priority, parsed.match)
    }

    /// One flow a line, `#` comments; all or nothing, so a typo never leaves a bridge half configured.
    public static func parseFlowFile(_ text: String, ports: PortNames) throws(FlowParseError) -> [FlowRule] {
        try parseLines(text) { (line) throws(FlowParseError) in try parseFlow(line, ports: ports) }
    }

    /// Each non-blank line of `text` (without its `#` comment) through `parse`; an error gets
    /// its line number.
    static func parseLines<T>(_ text: String, _ parse: (Substring) throws(FlowParseError) -> T) throws(FlowParseError) -> [T] {
        var out: [T] = []
        var lineNumber = 0
        for line in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline) {
            lineNumber += 1
            var content = line
            if let hash = content.firstIndex(of: "#") { content = content[..<hash] }
            if trimmed(content).isEmpty { continue }
            do throws(FlowParseError) {
                out.append(try parse(content))
            } catch {
                var located = error
                located.line = lineNumber
                throw located
            }
        }
        return out
    }
}

// MARK: - The parser

/// Separates match fields (and the match from `actions=`), as ovs-ofctl's key-value scanner does.
private func isSeparator(_ c: Character) -> Bool { c == "," || c == " " || c == "\t" || c.isNewline }

private func isBlank(_ c: Character) -> Bool { c == " " || c == "\t" || c.isNewline }

func trimmed(_ s: Substring) -> Substring {
    guard let first = s.firstIndex(where: { !isBlank($0) }), let last = s.lastIndex(where: { !isBlank($0) }) else {
        return s[s.endIndex...]
    }
    return s[first...last]
}

private let ethIPv4: UInt16 = 0x0800
private let ethARP: UInt16 = 0x0806
private let ethRARP: UInt16 = 0x8035
private let ethIPv6: UInt16 = 0x86dd
private let maxPortNumber: UInt64 = 0xffff_feff  // above are OpenFlow's reserved ports

/// The parts of a match a field sets; a part set twice is a duplicate field.
private enum MatchPart: Hashable {
    case table, priority, cookie, inPort, dlSrc, dlDst, vlanVID, vlanPCP, dlType, nwProto, nwSrc, nwDst
    case tpSrc, tpDst, tunID
}

/// What a field needs dl_type / nw_proto to be, checked once the whole match is read.
private enum Prerequisite {
    case ipv4OrARP, arp, ipv6, ipOrARP, transport, icmp
}

private enum NumberText {
    case value(UInt64), overflow, invalid

    /// Decimal, or hexadecimal with 0x, as ovs-ofctl reads numbers.
    init(_ s: Substring) {
        var digits = s.utf8[...]
        var radix: UInt64 = 10
        if s.hasPrefix("0x") || s.hasPrefix("0X") {
            digits = digits.dropFirst(2)
            radix = 16
        }
        guard !digits.isEmpty else {
            self = .invalid
            return
        }
        var v: UInt64 = 0
        for c in digits {
            guard let d = hexDigit(c), d < radix else {
                self = .invalid
                return
            }
            let (m, o1) = v.multipliedReportingOverflow(by: radix)
            let (a, o2) = m.addingReportingOverflow(d)
            if o1 || o2 {
                self = .overflow
                return
            }
            v = a
        }
        self = .value(v)
    }
}

private func hexDigit(_ c: UInt8) -> UInt64? {
    switch c {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): UInt64(c - UInt8(ascii: "0"))
    case UInt8(ascii: "a")...UInt8(ascii: "f"): UInt64(c - UInt8(ascii: "a") + 10)
    case UInt8(ascii: "A")...UInt8(ascii: "F"): UInt64(c - UInt8(ascii: "A") + 10)
    default: nil
    }
}

private func parseMAC(_ s: Substring) -> MACAddress? {
    let parts = s.split(separator: ":", omittingEmptySubsequences: false)
    guard parts.count == 6 else { return nil }
    var v: UInt64 = 0
    for part in parts {
        guard part.utf8.count == 2 else { return nil }
        for c in part.utf8 {
            guard let d = hexDigit(c) else { return nil }
            v = v << 4 | d
        }
    }
    return MACAddress(value: v)
}

private func parseIPv4(_ s: Substring) -> UInt32? {
    guard s.utf8.allSatisfy({ $0 == UInt8(ascii: ".") || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) })
    else { return nil }
    return IPv4Text.parse(s)
}

private func parseIPv6(_ s: Substring) -> [UInt8]? {
    guard s.utf8.allSatisfy({ $0 == UInt8(ascii: ":") || hexDigit($0) != nil }) else { return nil }
    return IPv6Text.parse(s)
}

/// Splits `value/mask`; the mask and its position are nil without a slash.
private func splitMask(_ s: Substring) -> (value: Substring, mask: Substring?, maskAt: Substring.Index) {
    guard let slash = s.firstIndex(of: "/") else { return (s, nil, s.endIndex) }
    let maskAt = s.index(after: slash)
    return (s[..<slash], s[maskAt...], maskAt)
}

private struct MatchBuilder {
    var key = FlowKey()
    var mask = FlowKey()
    var table: UInt8?
    var priority: UInt16?
    var cookie: UInt64?
    var owners: [MatchPart: Substring] = [:]
    var needs: [(field: Substring, at: Substring.Index, need: Prerequisite)] = []

    /// Matches `field` against `value` under `mask`.
    mutating func set<Value>(_ field: WritableKeyPath<FlowKey, Value>, _ value: Value, mask: Value) {
        key[keyPath: field] = value
        self.mask[keyPath: field] = mask
    }
}

struct FlowTextParser {
    let text: Substring
    let ports: PortNames
    /// add-flow text (actions required, cookie allowed) rather than a del-flows match.
    let isFlow: Bool

    struct Parsed {
        var table: UInt8?
        var priority: UInt16?
        var cookie: UInt64?
        var match: FlowMatch
        var actions: [FlowAction]?
    }

    func column(_ i: Substring.Index) -> Int { text.distance(from: text.startIndex, to: i) + 1 }

    func fail(_ at: Substring.Index, _ reason: String) -> FlowParseError {
        FlowParseError(line: nil, column: column(at), reason: reason)
    }

    /// Just past the last non-blank character: where something missing was expected.
    var endOfContent: Substring.Index {
        guard let last = text.lastIndex(where: { !isBlank($0) }) else { return text.startIndex }
        return text.index(after: last)
    }

    func parse() throws(FlowParseError) -> Parsed {
        var b = MatchBuilder()
        var actions: [FlowAction]?
        var i = text.startIndex
        let end = text.endIndex
        while true {
            while i < end, isSeparator(text[i]) { i = text.index(after: i) }
            if i == end { break }
            let nameAt = i
            while i < end, text[i] != "=", !isSeparator(text[i]) { i = text.index(after: i) }
            let name = text[nameAt..<i]
            guard i < end, text[i] == "=" else {
                try bareWord(name, at: nameAt, &b)
                continue
            }
            i = text.index(after: i)
            if name == "actions" {
                guard isFlow else { throw fail(nameAt, "a del-flows match takes no 'actions='") }
                actions = try parseActions(text[i...], at: i)
                break
            }
            let valueAt = i
            while i < end, !isSeparator(text[i]) { i = text.index(after: i) }
            let value = text[valueAt..<i]
            guard !value.isEmpty else { throw fail(nameAt, "missing value after '\(name)='") }
            try field(name, value, nameAt: nameAt, valueAt: valueAt, &b)
        }
        try checkPrerequisites(b)
        return Parsed(
            table: b.table, priority: b.priority, cookie: b.cookie, match: FlowMatch(key: b.key, mask: b.mask),
            actions: actions)
    }

    // MARK: Match fields

    private func claim(_ parts: [MatchPart], by name: Substring, at: Substring.Index, _ b: inout MatchBuilder)
        throws(FlowParseError)
    {
        for part in parts {
            if let owner = b.owners[part] {
                if owner == name { throw fail(at, "duplicate field '\(name)'") }
                throw fail(at, "duplicate field: '\(name)' sets what '\(owner)' already set")
            }
        }
        for part in parts { b.owners[part] = name }
    }

    /// A word without `=`: a protocol shorthand (`ip`, `tcp`, `arp`...) or a mistake.
    private func bareWord(_ name: Substring, at: Substring.Index, _ b: inout MatchBuilder) throws(FlowParseError) {
        if let s = Self.shorthands[name] {
            try claim(s.nwProto == nil ? [.dlType] : [.dlType, .nwProto], by: name, at: at, &b)
            b.key.dlType = s.dlType
            b.mask.dlType = 0xffff
            if let proto = s.nwProto {
                b.key.nwProto = proto
                b.mask.nwProto = 0xff
            }
            return
        }
        if name == "actions" { throw fail(at, "missing '=' after 'actions'") }
        if Self.valuedFields.contains(name) { throw fail(at, "missing value for '\(name)' (write '\(name)=...')") }
        throw fail(at, "unknown field '\(name)'")
    }

    private static let shorthands: [Substring: (dlType: UInt16, nwProto: UInt8?)] = [
        "ip": (ethIPv4, nil), "ipv6": (ethIPv6, nil), "arp": (ethARP, nil), "rarp": (ethRARP, nil),
        "tcp": (ethIPv4, 6), "udp": (ethIPv4, 17), "icmp": (ethIPv4, 1), "sctp": (ethIPv4, 132),
        "tcp6": (ethIPv6, 6), "udp6": (ethIPv6, 17), "icmp6": (ethIPv6, 58), "icmpv6": (ethIPv6, 58),
        "sctp6": (ethIPv6, 132),
    ]

    private static let valuedFields: Set<Substring> = [
        "table", "priority", "cookie", "in_port", "dl_src", "dl_dst", "dl_vlan", "dl_vlan_pcp", "vlan_tci",
        "dl_type", "nw_proto", "arp_op", "nw_src", "nw_dst", "arp_spa", "arp_tpa", "ipv6_src", "ipv6_dst",
        "tp_src", "tp_dst", "icmp_type", "icmp_code", "icmpv6_type", "icmpv6_code", "tun_id",
    ]

    /// One `name=value` of a match, with where its name and its value start (for error columns).
    private struct FieldText {
        let name: Substring
        let value: Substring
        let nameAt: Substring.Index
        let valueAt: Substring.Index
    }

    /// A `name=value` field, handed to the group of fields its name belongs to.
    private func field(
        _ name: Substring, _ value: Substring, nameAt: Substring.Index, valueAt: Substring.Index,
        _ b: inout MatchBuilder
    ) throws(FlowParseError) {
        let f = FieldText(name: name, value: value, nameAt: nameAt, valueAt: valueAt)
        if try flowField(f, &b) { return }
        if try ethernetField(f, &b) { return }
        if try networkField(f, &b) { return }
        if try transportField(f, &b) { return }
        if Self.shorthands[name] != nil {
            throw fail(nameAt, "'\(name)' takes no value")
        }
        throw fail(nameAt, "unknown field '\(name)'")
    }

    /// Claims `parts` for field `f` (see `claim(_:by:at:_:)`).
    private func claim(_ parts: [MatchPart], _ f: FieldText, _ b: inout MatchBuilder) throws(FlowParseError) {
        try claim(parts, by: f.name, at: f.nameAt, &b)
    }

    /// The field's value as a number in `range`; messages name the field.
    private func number(_ f: FieldText, in range: ClosedRange<UInt64>) throws(FlowParseError) -> UInt64 {
        try number(f.value, at: f.valueAt, field: String(f.name), in: range)
    }

    /// The field's `value[/mask]` as numbers up to `max`.
    private func maskedNumber(_ f: FieldText, max: UInt64) throws(FlowParseError) -> (UInt64, UInt64) {
        try maskedNumber(f.value, at: f.valueAt, field: String(f.name), max: max)
    }

    /// table, priority, cookie (where the flow goes, rather than what it matches), in_port and
    /// tun_id; false for any other name.
    private func flowField(_ f: FieldText, _ b: inout MatchBuilder) throws(FlowParseError) -> Bool {
        switch f.name {
        case "table":
            try claim([.table], f, &b)
            b.table = UInt8(try number(f, in: 0...254))
        case "priority":
            try claim([.priority], f, &b)
            b.priority = UInt16(try number(f, in: 0...65535))
        case "cookie":
            guard isFlow else { throw fail(f.nameAt, "a del-flows match does not select by cookie") }
            try claim([.cookie], f, &b)
            if f.value.contains("/") { throw fail(f.valueAt, "cookie masks are not supported in add-flow") }
            b.cookie = try number(f, in: 0...UInt64.max)
        case "in_port":
            try claim([.inPort], f, &b)
            b.set(\.inPort, try port(f.value, at: f.valueAt), mask: .max)
        case "tun_id":
            try claim([.tunID], f, &b)
            let (v, m) = try maskedNumber(f, max: .max)
            b.set(\.tunID, v & m, mask: m)
        default:
            return false
        }
        return true
    }

    /// dl_src, dl_dst, the VLAN fields and dl_type; false for any other name.
    private func ethernetField(_ f: FieldText, _ b: inout MatchBuilder) throws(FlowParseError) -> Bool {
        switch f.name {
        case "dl_src", "dl_dst":
            let isSource = f.name == "dl_src"
            try claim([isSource ? .dlSrc : .dlDst], f, &b)
            let (v, m) = try maskedMAC(f.value, at: f.valueAt)
            b.set(isSource ? \.dlSrc : \.dlDst, v, mask: m)
        case "dl_vlan":
            try vlanID(f, &b)
        case "dl_vlan_pcp":
            try claim([.vlanPCP], f, &b)
            let pcp = UInt16(try number(f, in: 0...7))
            b.key.vlanTCI |= FlowKey.vlanPresent | pcp << 13
            b.mask.vlanTCI |= 0xf000
        case "vlan_tci":
            try claim([.vlanVID, .vlanPCP], f, &b)
            let (v, m) = try maskedNumber(f, max: 0xffff)
            b.set(\.vlanTCI, UInt16(v & m), mask: UInt16(m))
        case "dl_type":
            try claim([.dlType], f, &b)
            b.set(\.dlType, UInt16(try number(f, in: 0...0xffff)), mask: 0xffff)
        default:
            return false
        }
        return true
    }

    /// dl_vlan: a VLAN ID, or 0xffff for frames without an 802.1Q header.
    private func vlanID(_ f: FieldText, _ b: inout MatchBuilder) throws(FlowParseError) {
        guard case .value(let vid) = NumberText(f.value), vid <= 0x0fff || vid == 0xffff else {
            if case .invalid = NumberText(f.value) { throw fail(f.valueAt, "dl_vlan: '\(f.value)' is not a number") }
            throw fail(f.valueAt, "dl_vlan \(f.value) is out of range (0 to 4095, or 0xffff for untagged)")
        }
        if vid == 0xffff {
            // OVS semantics: no 802.1Q header at all, so it also fixes the PCP.
            try claim([.vlanVID, .vlanPCP], f, &b)
            b.mask.vlanTCI |= 0x1fff
        } else {
            try claim([.vlanVID], f, &b)
            b.key.vlanTCI |= FlowKey.vlanPresent | UInt16(vid)
            b.mask.vlanTCI |= 0x1fff
        }
    }

    /// nw_proto (arp_op), the IPv4 (and ARP) addresses and the IPv6 addresses; false for any
    /// other name.
    private func networkField(_ f: FieldText, _ b: inout MatchBuilder) throws(FlowParseError) -> Bool {
        switch f.name {
        case "nw_proto", "arp_op":
            try claim([.nwProto], f, &b)
            b.set(\.nwProto, UInt8(try number(f, in: 0...255)), mask: 0xff)
            b.needs.append((f.name, f.nameAt, f.name == "arp_op" ? .arp : .ipOrARP))
        case "nw_src", "nw_dst", "arp_spa", "arp_tpa":
            let isSource = f.name == "nw_src" || f.name == "arp_spa"
            try claim([isSource ? .nwSrc : .nwDst], f, &b)
            let (v, m) = try maskedIPv4(f.value, at: f.valueAt)
            b.set(isSource ? \.nwSrcIPv4 : \.nwDstIPv4, v, mask: m)
            b.needs.append((f.name, f.nameAt, f.name.hasPrefix("arp") ? .arp : .ipv4OrARP))
        case "ipv6_src", "ipv6_dst":
            let isSource = f.name == "ipv6_src"
            try claim([isSource ? .nwSrc : .nwDst], f, &b)
            let (v, m) = try maskedIPv6(f.value, at: f.valueAt)
            b.set(isSource ? \.nwSrcBytes : \.nwDstBytes, v, mask: m)
            b.needs.append((f.name, f.nameAt, .ipv6))
        default:
            return false
        }
        return true
    }

    /// tp_src, tp_dst and the ICMP type and code (which OVS keeps where the ports go); false for
    /// any other name.
    private func transportField(_ f: FieldText, _ b: inout MatchBuilder) throws(FlowParseError) -> Bool {
        switch f.name {
        case "tp_src", "tp_dst":
            let isSource = f.name == "tp_src"
            try claim([isSource ? .tpSrc : .tpDst], f, &b)
            let (v, m) = try maskedNumber(f, max: 0xffff)
            b.set(isSource ? \.tpSrc : \.tpDst, UInt16(v & m), mask: UInt16(m))
            b.needs.append((f.name, f.nameAt, .transport))
        case "icmp_type", "icmp_code", "icmpv6_type", "icmpv6_code":
            let isType = f.name.hasSuffix("_type")
            try claim([isType ? .tpSrc : .tpDst], f, &b)
            b.set(isType ? \.tpSrc : \.tpDst, UInt16(try number(f, in: 0...255)), mask: 0xffff)
            b.needs.append((f.name, f.nameAt, .icmp))
        default:
            return false
        }
        return true
    }

    private func checkPrerequisites(_ b: MatchBuilder) throws(FlowParseError) {
        let dlType: UInt16? = b.mask.dlType == 0xffff ? b.key.dlType : nil
        let nwProto: UInt8? = b.mask.nwProto == 0xff ? b.key.nwProto : nil
        let isIPv4 = dlType == ethIPv4
        let isIPv6 = dlType == ethIPv6
        let isARP = dlType == ethARP || dlType == ethRARP
        for (field, at, need) in b.needs {
            switch need {
            case .ipv4OrARP where !(isIPv4 || isARP):
                throw fail(at, "\(field) requires dl_type=ip or arp (add 'ip,')")
            case .arp where !isARP:
                throw fail(at, "\(field) requires dl_type=arp (add 'arp,')")
            case .ipv6 where !isIPv6:
                throw fail(at, "\(field) requires dl_type=ipv6 (add 'ipv6,')")
            case .ipOrARP where !(isIPv4 || isIPv6 || isARP):
                throw fail(at, "\(field) requires dl_type=ip, ipv6 or arp (add 'ip,')")
            case .transport where !((isIPv4 || isIPv6) && [6, 17, 132].contains(nwProto)):
                throw fail(at, "\(field) requires nw_proto=tcp, udp or sctp (add 'tcp,' or 'udp,')")
            case .icmp where !((isIPv4 && nwProto == 1) || (isIPv6 && nwProto == 58)):
                throw fail(at, "\(field) requires icmp or icmp6 (add 'icmp,')")
            default: continue
            }
        }
    }

    // MARK: Values

    func number(
        _ s: Substring, at: Substring.Index, field: String, in range: ClosedRange<UInt64>
    ) throws(FlowParseError) -> UInt64 {
        switch NumberText(s) {
        case .value(let v) where range.contains(v): return v
        case .invalid: throw fail(at, "\(field): '\(s)' is not a number")
        default: throw fail(at, "\(field) \(s) is out of range (\(range.lowerBound) to \(range.upperBound))")
        }
    }

    private func maskedNumber(
        _ s: Substring, at: Substring.Index, field: String, max: UInt64
    ) throws(FlowParseError) -> (UInt64, UInt64) {
        let (valueText, maskText, maskAt) = splitMask(s)
        let v = try number(valueText, at: at, field: field, in: 0...max)
        guard let maskText else { return (v, max) }
        let m = try number(maskText, at: maskAt, field: "\(field) mask", in: 0...max)
        return (v & m, m)
    }

    private func maskedMAC(_ s: Substring, at: Substring.Index) throws(FlowParseError) -> (MACAddress, MACAddress) {
        let (valueText, maskText, maskAt) = splitMask(s)
        guard let v = parseMAC(valueText) else { throw fail(at, "'\(valueText)' is not a MAC address") }
        guard let maskText else { return (v, MACAddress(value: .max)) }
        guard let m = parseMAC(maskText) else { throw fail(maskAt, "'\(maskText)' is not a MAC address mask") }
        return (MACAddress(value: v.value & m.value), m)
    }

    private func maskedIPv4(_ s: Substring, at: Substring.Index) throws(FlowParseError) -> (UInt32, UInt32) {
        let (valueText, maskText, maskAt) = splitMask(s)
        guard let v = parseIPv4(valueText) else { throw fail(at, "'\(valueText)' is not an IPv4 address") }
        guard let maskText else { return (v, .max) }
        let m: UInt32
        if maskText.contains(".") {
            guard let netmask = parseIPv4(maskText) else { throw fail(maskAt, "'\(maskText)' is not an IPv4 netmask") }
            m = netmask
        } else {
            let length = try prefixLength(maskText, at: maskAt, max: 32)
            m = length == 0 ? 0 : UInt32.max << (32 - length)
        }
        return (v & m, m)
    }

    private func maskedIPv6(_ s: Substring, at: Substring.Index) throws(FlowParseError) -> ([UInt8], [UInt8]) {
        let (valueText, maskText, maskAt) = splitMask(s)
        guard let v = parseIPv6(valueText) else { throw fail(at, "'\(valueText)' is not an IPv6 address") }
        guard let maskText else { return (v, Array(repeating: 0xff, count: 16)) }
        let m: [UInt8]
        if maskText.contains(":") {
            guard let netmask = parseIPv6(maskText) else { throw fail(maskAt, "'\(maskText)' is not an IPv6 mask") }
            m = netmask
        } else {
            let length = try prefixLength(maskText, at: maskAt, max: 128)
            m = (0..<16).map { i in
                let bits = min(max(length - 8 * i, 0), 8)
                return bits == 0 ? 0 : UInt8(0xff) << (8 - bits)
            }
        }
        return (zip(v, m).map { $0 & $1 }, m)
    }

    private func prefixLength(_ s: Substring, at: Substring.Index, max: Int) throws(FlowParseError) -> Int {
        guard !s.isEmpty else { throw fail(at, "missing prefix length after '/'") }
        guard s.utf8.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }) else {
            throw fail(at, "'\(s)' is not a prefix length or a netmask")
        }
        guard case .value(let v) = NumberText(s), v <= UInt64(max) else {
            throw fail(at, "prefix length \(s) is out of range (0 to \(max))")
        }
        return Int(v)
    }

    /// A port number (which need not exist yet) or the name of an existing port.
    func port(_ s: Substring, at: Substring.Index) throws(FlowParseError) -> UInt32 {
        if let first = s.utf8.first, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(first) {
            switch NumberText(s) {
            case .value(let v) where (1...maxPortNumber).contains(v): return UInt32(v)
            case .invalid: break
            default: throw fail(at, "port \(s) is out of range (1 to \(maxPortNumber))")
            }
        }
        if let n = ports.number(of: s) { return n }
        throw fail(at, "unknown port name '\(s)'")
    }

    // MARK: Actions

    func parseActions(_ s: Substring, at: Substring.Index) throws(FlowParseError) -> [FlowAction] {
        // Parentheses first, so the error points at the culprit rather than at a token cut in two.
        var opens: [Substring.Index] = []
        for i in s.indices {
            if s[i] == "(" {
                opens.append(i)
            } else if s[i] == ")" {
                guard opens.popLast() != nil else { throw fail(i, "unbalanced parenthesis: ')' has no matching '('") }
            }
        }
        if let open = opens.last { throw fail(open, "unbalanced parenthesis: '(' is never closed") }

        var pieces: [Substring] = []
        var depth = 0
        var start = s.startIndex
        for i in s.indices {
            switch s[i] {
            case "(": depth += 1
            case ")": depth -= 1
            case "," where depth == 0:
                pieces.append(s[start..<i])
                start = s.index(after: i)
            default: break
            }
        }
        pieces.append(s[start...])
        if pieces.count == 1 && trimmed(pieces[0]).isEmpty {
            throw fail(at, "empty action list (write 'actions=drop' to drop)")
        }

        var actions: [FlowAction] = []
        var dropAt: Substring.Index?
        for piece in pieces {
            let t = trimmed(piece)
            guard !t.isEmpty else { throw fail(piece.startIndex, "empty action (a ',' too many)") }
            var level = 0
            for i in t.indices {
                if t[i] == "(" { level += 1 } else if t[i] == ")" { level -= 1 }
                if level == 0 && isBlank(t[i]) { throw fail(i, "missing ',' between actions") }
            }
            if t == "drop" {
                dropAt = t.startIndex
                continue
            }
            actions.append(try action(t))
        }
        if let dropAt, pieces.count > 1 { throw fail(dropAt, "'drop' must be the only action") }
        return actions
    }

    /// An action as written: its name and its argument, after ':' or in parentheses.
    private struct ActionText {
        var name: Substring
        var argument: Substring?
        var inParentheses = false
    }

    /// Splits `name:ARG` or `name(ARG)`; nothing may follow the closing parenthesis.
    private func split(action t: Substring) throws(FlowParseError) -> ActionText {
        guard let k = t.firstIndex(where: { $0 == ":" || $0 == "(" }) else { return ActionText(name: t) }
        let after = t.index(after: k)
        if t[k] == ":" { return ActionText(name: t[..<k], argument: t[after...]) }
        var level = 0
        var close = k
        for i in t[k...].indices {
            if t[i] == "(" { level += 1 } else if t[i] == ")" { level -= 1 }
            if level == 0 {
                close = i
                break
            }
        }
        let next = t.index(after: close)
        if next < t.endIndex { throw fail(next, "unexpected text after ')'") }
        return ActionText(name: t[..<k], argument: t[after..<close], inParentheses: true)
    }

    private func noArgument(_ a: ActionText) throws(FlowParseError) {
        if a.argument != nil { throw fail(a.name.startIndex, "'\(a.name)' takes no argument") }
    }

    /// The `:VALUE` an action needs.
    private func requiredArgument(_ a: ActionText) throws(FlowParseError) -> Substring {
        guard let argument = a.argument, !argument.isEmpty else {
            throw fail(a.name.startIndex, "'\(a.name)' needs an argument (\(a.name):VALUE)")
        }
        if a.inParentheses { throw fail(a.name.startIndex, "'\(a.name)' takes ':VALUE', not parentheses") }
        return argument
    }

    private func action(_ t: Substring) throws(FlowParseError) -> FlowAction {
        let a = try split(action: t)
        let name = a.name
        switch name {
        case "output":
            let arg = try requiredArgument(a)
            switch arg.lowercased() {
            case "normal": return .normal
            case "in_port": return .inPort
            default: return .output(try port(arg, at: arg.startIndex))
            }
        case "resubmit":
            return try resubmit(a.argument, inParentheses: a.inParentheses, at: name.startIndex)
        case "mod_dl_src", "mod_dl_dst":
            let arg = try requiredArgument(a)
            guard let mac = parseMAC(arg) else { throw fail(arg.startIndex, "'\(arg)' is not a MAC address") }
            return name == "mod_dl_src" ? .setEthSrc(mac) : .setEthDst(mac)
        case "mod_vlan_vid":
            let arg = try requiredArgument(a)
            return .setVLANVID(UInt16(try number(arg, at: arg.startIndex, field: "mod_vlan_vid", in: 0...4095)))
        case "strip_vlan":
            try noArgument(a)
            return .stripVLAN
        case "dec_ttl":
            try noArgument(a)
            return .decTTL
        case "set_tunnel", "set_tunnel64":
            let arg = try requiredArgument(a)
            return .setTunnel(try number(arg, at: arg.startIndex, field: String(name), in: 0...UInt64.max))
        case "group":
            let arg = try requiredArgument(a)
            return .group(UInt32(try number(arg, at: arg.startIndex, field: "group", in: 0...UInt64(FlowGroup.maxID))))
        case "drop":
            throw fail(name.startIndex, "'drop' takes no argument")
        default:
            return try keywordOrPort(t, a)
        }
    }

    /// NORMAL and IN_PORT in any case, or a bare port number or name, as in `actions=2`.
    private func keywordOrPort(_ t: Substring, _ a: ActionText) throws(FlowParseError) -> FlowAction {
        switch a.name.lowercased() {
        case "normal":
            try noArgument(a)
            return .normal
        case "in_port":
            try noArgument(a)
            return .inPort
        default:
            break
        }
        guard a.argument == nil else { throw fail(a.name.startIndex, "unknown action '\(a.name)'") }
        if let first = t.utf8.first, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(first) {
            return .output(try port(t, at: t.startIndex))
        }
        if let n = ports.number(of: t) { return .output(n) }
        throw fail(t.startIndex, "unknown action '\(t)' (nor is it a port name)")
    }

    private func resubmit(
        _ argument: Substring?, inParentheses: Bool, at: Substring.Index
    ) throws(FlowParseError) -> FlowAction {
        guard let argument else { throw fail(at, "resubmit needs a port or a table, as in resubmit(,1)") }
        if !inParentheses {
            guard !argument.isEmpty else { throw fail(at, "resubmit needs a port or a table, as in resubmit(,1)") }
            return .resubmit(port: try port(argument, at: argument.startIndex), table: nil)
        }
        let parts = argument.split(separator: ",", omittingEmptySubsequences: false)
        guard parts.count <= 2 else {
            throw fail(parts[2].startIndex, "resubmit takes (PORT,TABLE), not more")
        }
        let portText = trimmed(parts[0])
        let tableText = parts.count == 2 ? trimmed(parts[1]) : argument[argument.endIndex...]
        var port: UInt32?
        if !portText.isEmpty && portText.lowercased() != "in_port" {
            port = try self.port(portText, at: portText.startIndex)
        }
        var table: UInt8?
        if !tableText.isEmpty {
            table = UInt8(try number(tableText, at: tableText.startIndex, field: "resubmit table", in: 0...254))
        }
        if port == nil && table == nil { throw fail(at, "resubmit needs a port or a table, as in resubmit(,1)") }
        return .resubmit(port: port, table: table)
    }
}
