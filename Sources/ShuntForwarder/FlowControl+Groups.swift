import ShuntControl
import ShuntPipeline

/// `shunt ctl add-group | add-groups | mod-group | del-groups | dump-groups | dump-group-stats`,
/// as ovs-ofctl's group commands.
extension FlowControl {
    func groupCommand(_ request: ControlRequest, datapath: FlowDatapath, bridge: Int) -> ControlResponse {
        let ports = datapath.layout.bridges[bridge].portNames
        switch request.command {
        case "add-group", "mod-group":
            guard request.arguments.count == 1 else {
                return .failure("\(request.command) takes one group, e.g. 'group_id=1,type=select,bucket=output:2,bucket=output:3'")
            }
            let replace = request.command == "mod-group"
            return edit(datapath) { (tables) throws(FlowEditError) in
                var group = try parse { () throws(FlowParseError) in try GroupSyntax.parseGroup(request.arguments[0][...], ports: ports) }
                group.bridge = UInt16(bridge)
                do {
                    let ids = try tables.addGroup(group, replace: replace)
                    return ("\(replace ? "modified" : "added") group \(group.id)\n", ids)
                } catch { throw FlowEditError("\(error)") }
            }
        case "add-groups":
            guard request.arguments.count == 1 else { return .failure("add-groups takes the text of a group file") }
            return edit(datapath) { (tables) throws(FlowEditError) in
                let groups = try parse { () throws(FlowParseError) in try GroupSyntax.parseGroupFile(request.arguments[0], ports: ports) }
                var ids: [UInt32] = []
                for var group in groups {
                    group.bridge = UInt16(bridge)
                    do { ids += try tables.addGroup(group, replace: false) } catch { throw FlowEditError("group \(group.id): \(error)") }
                }
                return ("added \(groups.count) group\(groups.count == 1 ? "" : "s")\n", ids)
            }
        case "del-groups":
            guard request.arguments.count <= 1 else { return .failure("del-groups takes at most one 'group_id=N'") }
            return edit(datapath) { (tables) throws(FlowEditError) in
                let id = try parse { () throws(FlowParseError) in try GroupSyntax.parseGroupID((request.arguments.first ?? "")[...]) }
                let removed = tables.deleteGroups(bridge: UInt16(bridge), id: id)
                var text = "deleted \(removed.groups.count) group\(removed.groups.count == 1 ? "" : "s")"
                if !removed.flows.isEmpty {
                    text += " and the \(removed.flows.count) flow\(removed.flows.count == 1 ? "" : "s") using them"
                }
                return (text + "\n", [])
            }
        case "dump-groups", "dump-group-stats":
            forwarder.creditKernelCounters()
            let (pipeline, _) = datapath.currentPipeline()
            let status = GroupDumpStatus(groups: datapath.dumpGroups(bridge: bridge).map { g, counters in
                GroupDumpStatus.Group(
                    groupID: g.id, type: g.type.rawValue, group: GroupSyntax.format(g, ports: ports),
                    packetCount: counters[0].packets, byteCount: counters[0].bytes,
                    buckets: g.buckets.enumerated().map { i, b in
                        GroupDumpStatus.Bucket(bucketID: b.id, weight: b.weight,
                                               watchPort: b.watchPort.map { ports.name(of: $0) ?? "\($0)" },
                                               live: pipeline.isLive(b, bridge: bridge),
                                               packetCount: counters[1 + i].packets, byteCount: counters[1 + i].bytes)
                    })
            })
            let stats = request.command == "dump-group-stats"
            return .success(request.json ? StatusJSON.encode(status) + "\n" : (stats ? status.statsText : status.text))
        default:
            return .failure("unknown command '\(request.command)'")
        }
    }
}

/// `shunt ctl dump-groups` / `dump-group-stats`.
public struct GroupDumpStatus: Codable, Equatable, Sendable {
    public var groups: [Group]

    public struct Group: Codable, Equatable, Sendable {
        public var groupID: UInt32
        public var type: String
        /// In ovs-ofctl syntax; parses back with add-group.
        public var group: String
        public var packetCount: UInt64
        public var byteCount: UInt64
        public var buckets: [Bucket]

        enum CodingKeys: String, CodingKey {
            case groupID = "group_id", type, group, packetCount = "packet_count", byteCount = "byte_count", buckets
        }
    }

    public struct Bucket: Codable, Equatable, Sendable {
        public var bucketID: UInt32
        public var weight: UInt16
        public var watchPort: String?
        /// Whether the bucket may be chosen now (its watch port is up).
        public var live: Bool
        public var packetCount: UInt64
        public var byteCount: UInt64

        enum CodingKeys: String, CodingKey {
            case bucketID = "bucket_id", weight, watchPort = "watch_port", live, packetCount = "packet_count",
                 byteCount = "byte_count"
        }
    }

    /// As ovs-ofctl dump-groups: one line per group.
    public var text: String { groups.map { " \($0.group)\n" }.joined() }

    /// As ovs-ofctl dump-group-stats, plus each bucket's liveness.
    public var statsText: String {
        groups.map { g in
            " group_id=\(g.groupID),packet_count=\(g.packetCount),byte_count=\(g.byteCount),"
                + g.buckets.map { b in
                    "bucket\(b.bucketID):packet_count=\(b.packetCount),byte_count=\(b.byteCount)\(b.live ? "" : ",down")"
                }.joined(separator: ",") + "\n"
        }.joined()
    }
}
