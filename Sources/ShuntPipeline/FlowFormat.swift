import ShuntCore

// Printing flows the way `ovs-ofctl dump-flows` does (lib/match.c's field order), so that users
// can diff Shunt's tables against an Open vSwitch bridge and feed the text back to add-flow.

extension FlowSyntax {
    /// dump-flows text to diff against OVS; without stats, add-flow text that parses back to `rule`.
    public static func format(
        _ rule: FlowRule, ports: PortNames, stats: (packets: UInt64, bytes: UInt64)? = nil
    ) -> String {
        var match: [String] = []
        if rule.priority != FlowRule.defaultPriority { match.append("priority=\(rule.priority)") }
        match += matchFields(rule.match)
        var out: String
        if let stats {
            out = "cookie=0x\(String(rule.cookie, radix: 16)), table=\(rule.table), "
            out += "n_packets=\(stats.packets), n_bytes=\(stats.bytes), "
            if !match.isEmpty { out += match.joined(separator: ",") + " " }
        } else {
            var head: [String] = []
            if rule.cookie != 0 { head.append("cookie=0x\(String(rule.cookie, radix: 16))") }
            head.append("table=\(rule.table)")
            out = (head + match).joined(separator: ",") + " "
        }
        return out + "actions=" + format(actions: rule.actions)
    }

    /// The match fields alone, comma-separated ("" for a match-everything flow).
    public static func format(_ match: FlowMatch) -> String { matchFields(match).joined(separator: ",") }

    /// An action list as after `actions=`; the empty list is `drop`.
    public static func format(actions: [FlowAction]) -> String {
        guard !actions.isEmpty else { return "drop" }
        return actions.map { action in
            switch action {
            case .output(let port): "output:\(port)"
            case .inPort: "IN_PORT"
            case .normal: "NORMAL"
            case .resubmit(let port?, .none): "resubmit:\(port)"
            case .resubmit(let port, let table):
                "resubmit(\(port.map { String($0) } ?? ""),\(table.map { String($0) } ?? ""))"
            case .setEthSrc(let mac): "mod_dl_src:\(mac)"
            case .setEthDst(let mac): "mod_dl_dst:\(mac)"
            case .setVLANVID(let vid): "mod_vlan_vid:\(vid)"
            case .stripVLAN: "strip_vlan"
            case .decTTL: "dec_ttl"
            case .setTunnel(let id): (id > UInt32.max ? "set_tunnel64:" : "set_tunnel:") + alternateHex(id)
            case .group(let id): "group:\(id)"
            }
        }.joined(separator: ",")
    }

    // The fields in ovs-ofctl's order: protocol shorthand, tunnel, in_port, VLAN, Ethernet,
    // dl_type, addresses, protocol, transport ports.
    static func matchFields(_ match: FlowMatch) -> [String] {
        let k = match.key
        let m = match.mask
        var out: [String] = []
        let shorthand = protocolShorthand(k, m)
        if let word = shorthand.word { out.append(word) }
        if m.tunID != 0 {
            out.append(m.tunID == .max ? "tun_id=\(alternateHex(k.tunID))"
                : "tun_id=\(alternateHex(k.tunID))/\(alternateHex(m.tunID))")
        }
        if m.inPort != 0 { out.append("in_port=\(k.inPort)") }
        out += vlanFields(k, m)
        for (name, value, mask) in [("dl_src", k.dlSrc, m.dlSrc), ("dl_dst", k.dlDst, m.dlDst)] where mask.value != 0 {
            out.append(mask.value == 0xffff_ffff_ffff ? "\(name)=\(value)" : "\(name)=\(value)/\(mask)")
        }
        if shorthand.word == nil && m.dlType != 0 { out.append("dl_type=\(hex4(k.dlType))") }
        out += addressFields(k, m)
        if !shorthand.includesProtocol && m.nwProto != 0 {
            let isARP = k.dlType == 0x0806 || k.dlType == 0x8035
            out.append(isARP ? "arp_op=\(k.nwProto)" : "nw_proto=\(k.nwProto)")
        }
        out += transportFields(k, m)
        return out
    }

    /// `ip`, `tcp6`, `arp`...: the word for a matched dl_type (and nw_proto, when one names
    /// both); nil when the dl_type has no word or is not matched.
    private static func protocolShorthand(_ k: FlowKey, _ m: FlowKey) -> (word: String?, includesProtocol: Bool) {
        guard m.dlType != 0 else { return (nil, false) }
        let proto: UInt8? = m.nwProto != 0 ? k.nwProto : nil
        let names: [UInt8: String]
        let plain: String
        switch k.dlType {
        case 0x0800: (names, plain) = ([1: "icmp", 6: "tcp", 17: "udp", 132: "sctp"], "ip")
        case 0x86dd: (names, plain) = ([58: "icmp6", 6: "tcp6", 17: "udp6", 132: "sctp6"], "ipv6")
        case 0x0806: return ("arp", false)
        case 0x8035: return ("rarp", false)
        default: return (nil, false)
        }
        if let proto, let name = names[proto] { return (name, true) }
        return (plain, false)
    }

    /// dl_vlan and dl_vlan_pcp where they say it all, else vlan_tci with its mask.
    private static func vlanFields(_ k: FlowKey, _ m: FlowKey) -> [String] {
        guard m.vlanTCI != 0 else { return [] }
        let vidMask = m.vlanTCI & 0x0fff
        let pcpMask = m.vlanTCI & 0xe000
        let tagged = m.vlanTCI & FlowKey.vlanPresent != 0 && k.vlanTCI & FlowKey.vlanPresent != 0
        if tagged && (vidMask == 0 || vidMask == 0x0fff) && (pcpMask == 0 || pcpMask == 0xe000)
            && (vidMask != 0 || pcpMask != 0)
        {
            var out: [String] = []
            if vidMask != 0 { out.append("dl_vlan=\(k.vlanTCI & 0x0fff)") }
            if pcpMask != 0 { out.append("dl_vlan_pcp=\(k.vlanTCI >> 13)") }
            return out
        }
        if m.vlanTCI == 0xffff { return ["vlan_tci=\(hex4(k.vlanTCI))"] }
        return ["vlan_tci=\(hex4(k.vlanTCI))/\(hex4(m.vlanTCI))"]
    }

    /// ipv6_src/ipv6_dst for IPv6, arp_spa/arp_tpa for ARP, nw_src/nw_dst otherwise.
    private static func addressFields(_ k: FlowKey, _ m: FlowKey) -> [String] {
        var out: [String] = []
        if k.dlType == 0x86dd {
            let addresses = [("ipv6_src", k.nwSrcBytes, m.nwSrcBytes), ("ipv6_dst", k.nwDstBytes, m.nwDstBytes)]
            for (name, value, mask) in addresses where mask.contains(where: { $0 != 0 }) {
                out.append("\(name)=\(IPv6Text.format(value))\(ipv6MaskSuffix(mask))")
            }
            return out
        }
        let isARP = k.dlType == 0x0806 || k.dlType == 0x8035
        let names = isARP ? ("arp_spa", "arp_tpa") : ("nw_src", "nw_dst")
        for (name, value, mask) in [(names.0, k.nwSrcIPv4, m.nwSrcIPv4), (names.1, k.nwDstIPv4, m.nwDstIPv4)]
        where mask != 0 {
            out.append("\(name)=\(IPv4Text.format(value))\(ipv4MaskSuffix(mask))")
        }
        return out
    }

    /// tp_src/tp_dst, or icmp_type/icmp_code for ICMP and ICMPv6.
    private static func transportFields(_ k: FlowKey, _ m: FlowKey) -> [String] {
        let isICMP = (k.dlType == 0x0800 && k.nwProto == 1) || (k.dlType == 0x86dd && k.nwProto == 58)
        let ports = isICMP ? ("icmp_type", "icmp_code") : ("tp_src", "tp_dst")
        return [(ports.0, k.tpSrc, m.tpSrc), (ports.1, k.tpDst, m.tpDst)].filter { $0.2 != 0 }.map { name, value, mask in
            mask == 0xffff ? "\(name)=\(value)" : "\(name)=0x\(String(value, radix: 16))/0x\(String(mask, radix: 16))"
        }
    }
}

/// C's `%#x`, as OVS prints tun_id and set_tunnel: "0" for zero, else 0x-prefixed.
private func alternateHex(_ v: UInt64) -> String { v == 0 ? "0" : "0x" + String(v, radix: 16) }

/// `0x%04x`.
private func hex4(_ v: UInt16) -> String {
    let digits = String(v, radix: 16)
    return "0x" + String(repeating: "0", count: 4 - digits.count) + digits
}

private func ipv4MaskSuffix(_ mask: UInt32) -> String {
    if mask == .max { return "" }
    let length = mask.nonzeroBitCount
    if mask == UInt32.max << (32 - length) { return "/\(length)" }
    return "/" + IPv4Text.format(mask)
}

private func ipv6MaskSuffix(_ mask: [UInt8]) -> String {
    if mask.allSatisfy({ $0 == 0xff }) { return "" }
    var length = 0
    for byte in mask {
        if byte == 0xff {
            length += 8
            continue
        }
        length += byte.leadingZeroBitCount == 0 ? (~byte).leadingZeroBitCount : 0
        break
    }
    let cidr = (0..<16).map { i -> UInt8 in
        let bits = min(max(length - 8 * i, 0), 8)
        return bits == 0 ? 0 : UInt8(0xff) << (8 - bits)
    }
    return cidr == mask ? "/\(length)" : "/" + IPv6Text.format(mask)
}
