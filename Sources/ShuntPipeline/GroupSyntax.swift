import ShuntCore

/// `ovs-ofctl` group syntax both ways:
/// `group_id=1,type=select,selection_method=hash,fields(ip_src,ip_dst),bucket=weight:1,actions=output:2,bucket=weight:3,actions=output:3`.
/// A bucket is `bucket=[bucket_id:N,][weight:N,][watch_port:PORT,]actions=ACTIONS`, or its
/// actions alone (`bucket=output:2`); its actions run to the next `bucket=`.
public enum GroupSyntax {
    /// Parses one add-group or mod-group line.
    public static func parseGroup(_ text: Substring, ports: PortNames) throws(FlowParseError) -> FlowGroup {
        try GroupTextParser(text: text, ports: ports).parseGroup()
    }

    /// One group a line, `#` comments; all or nothing.
    public static func parseGroupFile(_ text: String, ports: PortNames) throws(FlowParseError) -> [FlowGroup] {
        try FlowSyntax.parseLines(text) { (line) throws(FlowParseError) in try parseGroup(line, ports: ports) }
    }

    /// del-groups' argument: `group_id=N`, or nothing / `group_id=all` for every group (nil).
    public static func parseGroupID(_ text: Substring) throws(FlowParseError) -> UInt32? {
        let t = trimmed(text)
        if t.isEmpty { return nil }
        guard t.hasPrefix("group_id=") else {
            throw FlowParseError(column: 1, reason: "expected 'group_id=N' (or nothing, or group_id=all, for every group)")
        }
        let value = t.dropFirst("group_id=".count)
        if value == "all" { return nil }
        let parser = FlowTextParser(text: text, ports: PortNames([]), isFlow: false)
        return UInt32(try parser.number(value, at: value.startIndex, field: "group_id", in: 0...UInt64(FlowGroup.maxID)))
    }

    /// A group as `ovs-ofctl dump-groups` prints it (without the leading space).
    public static func format(_ g: FlowGroup, ports: PortNames) -> String {
        var out = "group_id=\(g.id),type=\(g.type.rawValue)"
        if g.type == .select {
            out += ",selection_method=hash,fields(\(g.hashedFields.map(\.rawValue).joined(separator: ",")))"
        }
        for b in g.buckets {
            out += ",bucket=bucket_id:\(b.id)"
            if g.type == .select { out += ",weight:\(b.weight)" }
            if let w = b.watchPort { out += ",watch_port:\(ports.name(of: w) ?? String(w))" }
            out += ",actions=" + FlowSyntax.format(actions: b.actions)
        }
        return out
    }
}

struct GroupTextParser {
    let text: Substring
    let ports: PortNames

    /// The flow parser over the same text, so its errors point into this line.
    var flowParser: FlowTextParser { FlowTextParser(text: text, ports: ports, isFlow: true) }

    func fail(_ at: Substring.Index, _ reason: String) -> FlowParseError { flowParser.fail(at, reason) }

    /// The comma-separated pieces at parenthesis depth 0.
    func pieces() throws(FlowParseError) -> [Substring] {
        var out: [Substring] = []
        var depth = 0
        var start = text.startIndex
        for i in text.indices {
            switch text[i] {
            case "(": depth += 1
            case ")":
                depth -= 1
                if depth < 0 { throw fail(i, "unbalanced parenthesis: ')' has no matching '('") }
            case "," where depth == 0:
                out.append(text[start..<i])
                start = text.index(after: i)
            default: break
            }
        }
        if depth > 0 { throw fail(start, "unbalanced parenthesis: '(' is never closed") }
        out.append(text[start...])
        return out.map { trimmed($0) }
    }

    /// What the group line says outside its buckets.
    struct Header {
        var id: UInt32?
        var type: GroupType?
        var fields: [GroupHashField] = []
        var fieldsAt: Substring.Index?
    }

    func parseGroup() throws(FlowParseError) -> FlowGroup {
        var header = Header()
        var buckets: [GroupBucket] = []
        let all = try pieces()
        var i = 0
        while i < all.count {
            let piece = all[i]
            i += 1
            if piece.isEmpty { throw fail(piece.startIndex, "empty field (a ',' too many)") }
            if piece.hasPrefix("bucket=") {
                var bucketPieces = [piece.dropFirst("bucket=".count)]
                while i < all.count, !all[i].hasPrefix("bucket=") {
                    bucketPieces.append(all[i])
                    i += 1
                }
                buckets.append(try bucket(bucketPieces, position: buckets.count))
            } else {
                try headerField(piece, &header)
            }
        }
        return try checked(header, buckets)
    }

    /// One of group_id=, type=, selection_method=, fields(...).
    private func headerField(_ piece: Substring, _ h: inout Header) throws(FlowParseError) {
        if piece.hasPrefix("fields(") || piece.hasPrefix("fields=") {
            h.fieldsAt = piece.startIndex
            let body = piece.hasPrefix("fields(") ? piece.dropFirst("fields(".count).dropLast() : piece.dropFirst("fields=".count)
            if piece.hasPrefix("fields("), piece.last != ")" { throw fail(piece.startIndex, "fields(...) must end with ')'") }
            for name in body.split(separator: ",") {
                let n = trimmed(name)
                guard let f = GroupHashField.named(n) else {
                    throw fail(n.startIndex, "unknown hash field '\(n)' (fields: \(GroupHashField.allCases.map(\.rawValue).joined(separator: ", ")))")
                }
                if !h.fields.contains(f) { h.fields.append(f) }
            }
            if h.fields.isEmpty { throw fail(piece.startIndex, "fields() names no field") }
            return
        }
        guard let eq = piece.firstIndex(of: "=") else {
            throw fail(piece.startIndex, "unknown group field '\(piece)' (group_id=, type=, selection_method=, fields(...), bucket=)")
        }
        let name = piece[..<eq]
        let value = piece[piece.index(after: eq)...]
        guard !value.isEmpty else { throw fail(piece.startIndex, "missing value after '\(name)='") }
        switch name {
        case "group_id":
            h.id = UInt32(try flowParser.number(value, at: value.startIndex, field: "group_id", in: 0...UInt64(FlowGroup.maxID)))
        case "type":
            guard let t = GroupType(rawValue: String(value)) else {
                throw fail(value.startIndex, "unknown group type '\(value)' (all, select, indirect, fast_failover)")
            }
            h.type = t
        case "selection_method":
            guard value == "hash" else {
                throw fail(value.startIndex, "selection_method=\(value) is not supported: use hash (with fields(...) or the default 5-tuple)")
            }
        case "selection_method_param":
            throw fail(piece.startIndex, "selection_method_param is not supported")
        default:
            throw fail(piece.startIndex, "unknown group field '\(name)' (group_id=, type=, selection_method=, fields(...), bucket=)")
        }
    }

    /// The group, once what its type needs is there.
    private func checked(_ h: Header, _ buckets: [GroupBucket]) throws(FlowParseError) -> FlowGroup {
        guard let id = h.id else { throw fail(text.startIndex, "missing 'group_id=N'") }
        guard let type = h.type else { throw fail(text.startIndex, "missing 'type=' (all, select, indirect or fast_failover)") }
        if !h.fields.isEmpty && type != .select, let at = h.fieldsAt {
            throw fail(at, "fields(...) is for type=select groups")
        }
        if type == .indirect && buckets.count != 1 {
            throw fail(text.startIndex, "an indirect group has exactly one bucket, not \(buckets.count)")
        }
        var ids = Set<UInt32>()
        for b in buckets where !ids.insert(b.id).inserted {
            throw fail(text.startIndex, "two buckets have bucket_id \(b.id)")
        }
        for b in buckets {
            if type == .fastFailover && b.watchPort == nil {
                throw fail(text.startIndex, "every bucket of a fast_failover group needs watch_port (bucket \(b.id) has none)")
            }
            if b.weight != 1 && type != .select {
                throw fail(text.startIndex, "weight is for type=select groups (bucket \(b.id))")
            }
            // dec_ttl is a datapath action, not a field the next bucket gets back as it was.
            if type == .all && b.actions.contains(.decTTL) {
                throw fail(text.startIndex, "dec_ttl in a bucket of an all group would reach the copies of the buckets after it (bucket \(b.id)); decrement in the flow before group:N")
            }
        }
        return FlowGroup(id: id, type: type, fields: h.fields, buckets: buckets)
    }

    /// One bucket from its pieces (the first with `bucket=` removed).
    func bucket(_ pieces: [Substring], position: Int) throws(FlowParseError) -> GroupBucket {
        let p = flowParser
        var b = GroupBucket(id: UInt32(position), actions: [])
        var k = 0
        while k < pieces.count {
            let piece = pieces[k]
            if piece.hasPrefix("actions=") {
                let first = piece.dropFirst("actions=".count)
                let end = pieces.last!.endIndex
                b.actions = try p.parseActions(text[first.startIndex..<end], at: first.startIndex)
                return b
            }
            if let colon = piece.firstIndex(of: ":"), !piece.contains("("),
               ["bucket_id", "weight", "watch_port", "watch_group"].contains(piece[..<colon]) {
                let name = piece[..<colon]
                let value = piece[piece.index(after: colon)...]
                guard !value.isEmpty else { throw fail(piece.startIndex, "missing value after '\(name):'") }
                switch name {
                case "bucket_id":
                    b.id = UInt32(try p.number(value, at: value.startIndex, field: "bucket_id", in: 0...0xffff_ff00))
                case "weight":
                    b.weight = UInt16(try p.number(value, at: value.startIndex, field: "weight", in: 0...0xffff))
                case "watch_port":
                    b.watchPort = try p.port(value, at: value.startIndex)
                default:
                    throw fail(piece.startIndex, "watch_group is not supported (watch a port with watch_port)")
                }
                k += 1
                continue
            }
            // The bucket's actions without 'actions=' (ovs-ofctl accepts them so too).
            b.actions = try p.parseActions(text[piece.startIndex..<pieces.last!.endIndex], at: piece.startIndex)
            return b
        }
        throw fail(pieces.last?.endIndex ?? text.endIndex, "bucket \(b.id) has no actions (write actions=drop for none)")
    }
}
