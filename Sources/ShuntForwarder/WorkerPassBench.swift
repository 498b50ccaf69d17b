import ShuntCore
import ShuntPipeline
import ShuntRing
import ShuntTraffic

/// One worker of an engine over two detached ports (`RingPort(detached:)`), driven one pass at
/// a time: a burst of 64-byte UDP frames of one flow is delivered on p0, the worker forwards it
/// to p1, and p1's TX ring is completed as the kernel would. The allocation gate
/// (Benchmarks/WorkerPass) and the instruction counts (`shunt pass-bench` under callgrind)
/// measure `run()`.
public final class WorkerPassBench {
    public enum Engine: String, CaseIterable, Sendable {
        /// `--mode xconnect`.
        case xconnect
        /// `--mode normal`, the destination learned on p1.
        case normal
        /// `--mode flows` on the afpacket datapath, `in_port=p0,actions=mod_dl_dst:...,output:p1`,
        /// every frame an exact-match cache hit after the first pass.
        case flows
    }

    public let engine: Engine
    public let framesPerPass: Int
    private let ports: [RingPort]
    private let counters: WorkerCounters
    private let burst: [[UInt8]]
    private var batch = PacketBatch(capacity: maxBurst)
    private let passOnce: (inout PacketBatch) -> Int

    static let sourceMAC: [UInt8] = [0x02, 0, 0, 0, 0, 0x01]
    static let destinationMAC: [UInt8] = [0x02, 0, 0, 0, 0, 0x02]
    /// What the flows engine's rule writes into the destination.
    public static let rewrittenMAC: [UInt8] = [0x02, 0, 0, 0, 0, 0x99]

    public init(engine: Engine, framesPerPass: Int = 32, ring: RingVersion = .v3, transmit: TransmitMethod = .copy) throws {
        precondition((1...maxBurst).contains(framesPerPass), "framesPerPass must be in 1...\(maxBurst)")
        self.engine = engine
        self.framesPerPass = framesPerPass
        let config = RingPortConfig(version: ring, transmit: transmit)
        let ports = [try RingPort(detached: "p0", config: config), try RingPort(detached: "p1", config: config)]
        self.ports = ports
        burst = Array(repeating: Self.udpFrame(source: Self.sourceMAC, destination: Self.destinationMAC), count: framesPerPass)
        let idle = IdlePolicy(busyPollMicroseconds: 0)
        switch engine {
        case .xconnect:
            let worker = Worker(index: 0, ports: ports, stage: CrossConnect(), idle: idle)
            counters = worker.counters
            passOnce = { worker.pass(&$0) }
        case .normal:
            let worker = Worker(index: 0, ports: ports, stage: LearningSwitch(table: MACLearningTable()), idle: idle)
            counters = worker.counters
            passOnce = { worker.pass(&$0) }
        case .flows:
            let names = PortNames(["p0", "p1"])
            var tables = FlowTables()
            let mac = Self.rewrittenMAC.withUnsafeBytes { MACAddress(loading: $0.baseAddress!) }.description
            _ = try tables.add(try FlowSyntax.parseFlow("in_port=p0,actions=mod_dl_dst:\(mac),output:p1", ports: names))
            let datapath = FlowDatapath(config: FlowDatapathConfig(), ports: ["p0", "p1"], tables: tables, writers: 2,
                                        macTable: MACLearningTable(), kernel: nil)
            let worker = FlowWorker(index: 0, ports: ports, datapath: datapath, idle: idle)
            counters = worker.counters
            passOnce = { worker.pass(&$0) }
        }
        if engine == .normal {
            // p1 answers once, so that NORMAL knows where the destination is.
            let reply = Self.udpFrame(source: Self.destinationMAC, destination: Self.sourceMAC)
            guard ports[1].deliver([reply]) else { preconditionFailure("an empty ring refused a frame") }
            _ = passOnce(&batch)
            ports[0].completeTransmitted()
        }
    }

    /// One burst in, one pass, the burst's frames completed on p1; returns the frames the pass
    /// took from the RX ring.
    @inline(never)
    public func run() -> Int {
        guard ports[0].deliver(burst) else { preconditionFailure("the worker did not give its RX ring back") }
        let n = passOnce(&batch)
        ports[1].completeTransmitted()
        return n
    }

    /// The counters of p0 (0) or p1 (1) so far.
    public func portCounters(_ port: Int) -> PortCounters { counters.snapshot(port: port) }

    /// The last frame the worker wrote on p1's TX ring.
    public func lastTransmittedFrame() -> [UInt8] { ports[1].lastQueuedFrame() }

    /// The generator's frame (`TestFrameSpec`: Ethernet, IPv4 with its checksum, UDP): 60 bytes,
    /// 64 on the wire with the FCS.
    static func udpFrame(source: [UInt8], destination: [UInt8]) -> [UInt8] {
        var spec = TestFrameSpec(size: 60)
        spec.sourceMAC = source
        spec.destinationMAC = destination
        return spec.bytes()
    }
}
