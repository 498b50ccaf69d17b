import CShunt
import Glibc
@testable import ShuntBPF
import ShuntCore
import ShuntPipeline
import ShuntSystem
import ShuntTestSupport
import Testing

/// A select group in the XDP fast path, through BPF_PROG_TEST_RUN: the translation chooses the
/// bucket (docs/design/0025-groups-and-link-state.md) and the kernel executes the entry. For
/// 400 flows the frame the program leaves for redirect is byte for byte the one the Swift path
/// would send (the chosen bucket's MAC), and the kernel's per-port counters agree with the
/// buckets the Swift translation chose.
@Suite(.enabled(if: canLoadBPF, "loading BPF programs needs CAP_BPF (or CAP_SYS_ADMIN) and CAP_NET_ADMIN: run the tests as root"))
struct GroupFastPathTests {
    /// Frames arrive on lo, which is Shunt port 7; the buckets output to ports 2-5, all lo.
    static let inPort: UInt32 = 7

    @Test func selectedFlowsRunInTheKernelAsTheSwiftPathChoseThem() throws {
        let cache = try FlowCacheProgram(maxEntries: 1024)
        let lo = try #require(Sys.interfaceIndex("lo"))
        for p: UInt32 in [2, 3, 4, 5, Self.inPort] { try cache.setPort(number: p, ifindex: lo) }
        let names = PortNames(["p1", "p2", "p3", "p4", "p5", "p6", "p7"])
        var tables = FlowTables()
        let buckets = (0..<4).map { i in "bucket=weight:\(i + 1),actions=mod_dl_dst:02:00:00:00:00:0\(i + 2),output:\(i + 2)" }
        try tables.addGroup(GroupSyntax.parseGroup("group_id=1,type=select,\(buckets.joined(separator: ","))"[...], ports: names),
                            replace: false)
        try tables.add(FlowSyntax.parseFlow("in_port=7,actions=group:1"[...], ports: names))
        let pipeline = Pipeline(tables, ports: names)

        var expectedPerPort: [UInt32: UInt64] = [:]
        for i in 0..<400 {
            let udp = TestFrame.udp(UInt16(1024 + i), 5001, payload: [UInt8(i & 0xff), 1, 2, 3])
            let frame = TestFrame.ethernet(type: 0x0800, payload: TestFrame.ipv4(src: [10, 0, UInt8(i >> 8), UInt8(i & 0xff)], proto: 17, payload: udp))
            var key = FlowKey()
            let ok = frame.withUnsafeBytes {
                FlowKeyExtractor.extract(frame: $0.baseAddress!, length: $0.count, inPort: Self.inPort, strippedVLANTCI: nil, into: &key)
            }
            #expect(ok)
            var normal = NoNormalSwitch()
            let t = pipeline.translate(key, normal: &normal)
            guard case .output(let port)? = t.actions.last, case .setEthDst(let mac)? = t.actions.first else {
                Issue.record("flow \(i): \(t.actions)")
                continue
            }
            expectedPerPort[port, default: 0] += 1
            try cache.install(key: key, entry: FlowCacheProgram.entry(actions: t.actions))
            let r = try ProgramTestRun.xdp(programFD: cache.programFD, packet: frame)
            #expect(r.returnValue == XDP.redirect, "flow \(i)")
            // What the Swift path writes: the frame with the bucket's destination MAC.
            var sent = frame
            for j in 0..<6 { sent[j] = UInt8(truncatingIfNeeded: mac.value >> UInt64(40 - 8 * j)) }
            #expect(r.output == sent, "flow \(i): the kernel's frame differs from the slow path's")
            #expect(UInt32(sent[5]) == port, "flow \(i): bucket MAC and port disagree")
        }
        let stats = try cache.stats()
        #expect(stats.hits == 400)
        for port: UInt32 in [2, 3, 4, 5] {
            let sent = withUnsafeBytes(of: stats.ports) {
                $0.loadUnaligned(fromByteOffset: Int(port) * MemoryLayout<shunt_port_counters>.stride, as: shunt_port_counters.self)
            }.tx_packets
            #expect(sent == expectedPerPort[port, default: 0], "port \(port)")
        }
        // Weights 1:2:3:4 over 400 flows: every bucket took some.
        #expect(expectedPerPort.count == 4, "\(expectedPerPort)")
    }
}

/// NORMAL is not used by these flows.
private struct NoNormalSwitch: NormalSwitch {
    mutating func normal(key: FlowKey, bridge: Int, vlan: UInt16) -> NormalResult { .drop }
}
