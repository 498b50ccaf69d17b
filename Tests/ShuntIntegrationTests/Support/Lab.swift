import Foundation
import ShuntLab
import ShuntSystem
import ShuntTestSupport
import Testing

/// Whether this process may build namespaces and open packet sockets (root with the capabilities).
let canRunNetnsTests: Bool = {
    let c = Capabilities.current()
    let hasIP = FileManager.default.isExecutableFile(atPath: "/usr/bin/ip") || FileManager.default.isExecutableFile(atPath: "/sbin/ip")
    return c.has(Capabilities.netAdmin) && c.has(Capabilities.netRaw) && c.has(Capabilities.sysAdmin) && hasIP
}()
let netnsSkipReason: Comment = "netns integration tests need root (CAP_NET_ADMIN, CAP_NET_RAW, CAP_SYS_ADMIN) and iproute2; run `swift test` as root"

enum LabError: Error, CustomStringConvertible {
    case command(String, String)
    case timeout(String)
    var description: String {
        switch self {
        case .command(let c, let e): "`\(c)` failed: \(e)"
        case .timeout(let what): "timed out waiting for \(what)"
        }
    }
}

/// Namespaces joined by veths around one forwarder namespace (`LabTopology.star`), removed on
/// deinit (also when a test fails). Each side namespace `n` holds interface `n`0, whose peer in
/// `fwd` is `p`+index.
///
///     [side0] side0_0 <-> p0 [fwd] p1 <-> side1_0 [side1] ...
final class Lab {
    private static let counter = NSLock()
    nonisolated(unsafe) private static var next = 0

    let prefix: String
    let sides: [String]
    /// The lab as every other lab is described (Sources/ShuntLab).
    private let builder: LabBuilder
    /// Shared with every other lab, exclusive of flooding tests (see `TrafficGate`).
    private let traffic: TrafficGate.Hold
    var fwd: String { prefix + "fwd" }

    /// - Parameters:
    ///   - sides: names of the endpoint namespaces, in port order.
    ///   - namePrefix: every namespace's name starts with it (then the pid and a counter); by
    ///     default $SHUNT_TEST_NETNS_PREFIX, else "shuntt".
    ///   - queues: RX/TX queues of every veth (an AF_XDP generator binds one socket per queue).
    init(_ sides: [String] = ["gen", "sink"], mtu: Int? = nil, queues: Int = 1,
         namePrefix: String = testNamespacePrefix ?? "shuntt") throws {
        Self.counter.lock()
        Self.next += 1
        let n = Self.next
        Self.counter.unlock()
        prefix = "\(namePrefix)\(getpid())x\(n)-"
        self.sides = sides
        builder = LabBuilder(.star(prefix: prefix, sides: sides, mtu: mtu, queues: queues)) { try run($0) }
        traffic = TrafficGate.shared()  // every stored property is set: a throw below still runs deinit
        try builder.up()  // removes what it built when a step fails
    }

    deinit {
        builder.down()
        traffic.release()
    }

    func ns(_ side: String) -> String { prefix + side }
    func port(_ i: Int) -> String { "p\(i)" }
    func interface(_ side: String) -> String { side + "0" }

    func addAddress(_ side: String, _ cidr: String) throws {
        try run(["ip", "-n", ns(side), "addr", "add", cidr, "dev", interface(side)])
    }

    /// Packets the kernel counted as received on a side's interface.
    func rxPackets(_ side: String) throws -> UInt64 {
        try Self.linkCounter(ns(side), interface(side), "rx", "packets")
    }

    /// Packets the kernel dropped while transmitting on forwarder port `i` (for a veth: the
    /// peer's receive backlog was full, so the frame never reached the peer's counters).
    func portTxDropped(_ i: Int) throws -> UInt64 {
        try Self.linkCounter(fwd, port(i), "tx", "dropped")
    }

    static func linkCounter(_ namespace: String, _ interface: String, _ direction: String, _ counter: String) throws -> UInt64 {
        let out = try run(["ip", "-n", namespace, "-s", "-j", "link", "show", interface]).out
        let json = try JSONSerialization.jsonObject(with: Data(out.utf8)) as! [[String: Any]]
        let stats = json[0]["stats64"] as! [String: Any]
        return ((stats[direction] as! [String: Any])[counter] as? UInt64) ?? 0
    }
}
