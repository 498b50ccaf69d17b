import CShunt
import Glibc
import ShuntCore
import ShuntPipeline
import ShuntSystem
import Synchronization

// Port mirroring at run time: the published set of sessions the workers read, each session's
// counters, and the pcapng writer (docs/design/0012-port-mirroring.md).

/// Why a mirror copy was not made (counted per session under `drops`).
enum MirrorDrop: Int, CaseIterable {
    /// The output port's TX ring had no free frame.
    case txRingFull
    /// The copy does not fit the output (TX frame, capture slot, or the tunnel's underlay MTU).
    case tooLarge
    /// The pcapng writer's queue for this worker was full.
    case queueFull
    /// Remote mirroring: the remote VTEP's MAC is not resolved yet.
    case tunnelNoNeighbour
    /// The output cannot take copies any more (the capture file could not be written).
    case outputDown

    var name: String {
        switch self {
        case .txRingFull: "tx_ring_full"
        case .tooLarge: "too_large"
        case .queueFull: "queue_full"
        case .tunnelNoNeighbour: "tunnel_no_neighbour"
        case .outputDown: "output_down"
        }
    }
}

/// One session's counters, a row per worker (one writer each), summed on read. The identity
/// selected = mirrored + sampled_out + dropped holds for packets and, counting the bytes cut by
/// the snap length, selected_bytes = mirrored_bytes + truncated_bytes + sampled_out_bytes + dropped_bytes.
final class MirrorCounters: @unchecked Sendable {
    enum Field: Int, CaseIterable {
        case selected, selectedBytes
        /// Copies made; bytes as copied (after truncation).
        case mirrored, mirroredBytes
        /// Left out by 1-in-N sampling.
        case sampledOut, sampledOutBytes
        /// Of the mirrored copies, those cut by the snap length; bytes cut off.
        case truncated, truncatedBytes
        case dropped, droppedBytes
        // Per reason, packets (in MirrorDrop order).
        case dropTxRingFull, dropTooLarge, dropQueueFull, dropTunnelNoNeighbour, dropOutputDown
        /// The worker's position in its 1-in-N cycle (a state, not a count).
        case sampleTick

        var jsonName: String {
            switch self {
            case .selected: "selected"
            case .selectedBytes: "selected_bytes"
            case .mirrored: "mirrored"
            case .mirroredBytes: "mirrored_bytes"
            case .sampledOut: "sampled_out"
            case .sampledOutBytes: "sampled_out_bytes"
            case .truncated: "truncated"
            case .truncatedBytes: "truncated_bytes"
            case .dropped: "dropped"
            case .droppedBytes: "dropped_bytes"
            default: ""
            }
        }

        static let reported: [Field] = [.selected, .selectedBytes, .mirrored, .mirroredBytes, .sampledOut,
                                        .sampledOutBytes, .truncated, .truncatedBytes, .dropped, .droppedBytes]
    }

    /// One row per worker.
    private let block: CounterBlock

    init(rows: Int) { block = CounterBlock(rows: rows, columns: Field.allCases.count) }

    @inline(__always) func add(_ row: Int, _ f: Field, _ n: UInt64 = 1) { block.add(row, f.rawValue, n) }

    @inline(__always) func value(_ row: Int, _ f: Field) -> UInt64 { block.value(row, f.rawValue) }

    @inline(__always) func set(_ row: Int, _ f: Field, _ v: UInt64) { block.set(row, f.rawValue, v) }

    func read(_ f: Field) -> UInt64 { block.sum(f.rawValue) }

    static func field(_ drop: MirrorDrop) -> Field {
        switch drop {
        case .txRingFull: .dropTxRingFull
        case .tooLarge: .dropTooLarge
        case .queueFull: .dropQueueFull
        case .tunnelNoNeighbour: .dropTunnelNoNeighbour
        case .outputDown: .dropOutputDown
        }
    }
}

/// A single-producer (one worker), single-consumer (the writer thread) queue of ready-made
/// pcapng enhanced packet blocks in fixed slots; a full queue refuses, it never blocks.
final class CaptureQueue: @unchecked Sendable {
    let slotCount: Int
    let slotSize: Int
    /// Largest captured length a slot holds.
    let maxCaptured: Int
    private let slots: UnsafeMutableRawPointer
    /// The slots' memory (about 8 MB): mapped on its own, so that it goes back to the system when
    /// the session ends. From malloc, a freed block of this size stayed in the heap and the
    /// forwarder's RSS stepped up by it once sessions came and went (the soak saw 6-8 MB).
    private let region: MappedRegion
    /// head: slots written (producer); tail: slots consumed (consumer). Each on its own line.
    private let words: UnsafeMutablePointer<UInt64>

    init(slotCount: Int, maxCaptured: Int) throws(SystemError) {
        self.slotCount = slotCount
        self.maxCaptured = maxCaptured
        slotSize = (8 + PcapNG.enhancedPacketLength(captured: maxCaptured) + 63) & ~63
        region = try MappedRegion(anonymousLength: (slotCount * slotSize + 4095) & ~4095)
        slots = region.withUnsafeMutableBytes { $0.baseAddress! }
        words = .allocate(capacity: 16)
        words.initialize(repeating: 0, count: 16)
    }

    deinit {
        words.deallocate()
    }

    /// Producer: queues one block; false when the queue is full.
    @inline(__always)
    func push(interface: UInt32, data: UnsafeRawPointer, captured: Int, originalLength: Int,
              direction: PcapNG.Direction, timestampNs: UInt64) -> Bool {
        let head = cshunt_load_relaxed_u64(words)
        let tail = cshunt_load_acquire_u64(words + 8)
        guard head &- tail < UInt64(slotCount) else { return false }
        let slot = slots + Int(head % UInt64(slotCount)) * slotSize
        slot.storeBytes(of: UInt32(PcapNG.enhancedPacketLength(captured: captured)), as: UInt32.self)
        PcapNG.writeEnhancedPacket(to: slot + 8, interface: interface, timestampNs: timestampNs, data: data,
                                   captured: captured, originalLength: originalLength, direction: direction)
        cshunt_store_release_u64(words, head &+ 1)
        return true
    }

    /// Consumer: hands each queued block to `body`, then frees the slots. Returns how many.
    func drain(_ body: (UnsafeRawBufferPointer) -> Void) -> Int {
        let tail = cshunt_load_relaxed_u64(words + 8)
        let head = cshunt_load_acquire_u64(words)
        var t = tail
        while t != head {
            let slot = slots + Int(t % UInt64(slotCount)) * slotSize
            let length = Int(slot.load(as: UInt32.self))
            body(UnsafeRawBufferPointer(start: slot + 8, count: length))
            t &+= 1
        }
        cshunt_store_release_u64(words + 8, head)
        return Int(head &- tail)
    }
}

/// A pcapng file fed by one `CaptureQueue` per worker and written by its own thread, so a slow
/// disk costs copies (counted as queue_full), never forwarding.
final class PcapSink: @unchecked Sendable {
    let path: String
    let queues: [CaptureQueue]
    private let fd: Int32
    private let stopFlag = StopFlag()
    /// Set when a write failed: the workers count further copies as output_down.
    let broken = StopFlag()
    private var thread: WorkerThread?
    private let buffer: UnsafeMutableRawPointer
    private let bufferSize = 1 << 20
    private var buffered = 0

    /// Creates (truncates) the file and writes the section and interface headers.
    init(path: String, interfaces: [(name: String, snaplen: UInt32)], workers: Int, maxCaptured: Int) throws(SystemError) {
        var queues: [CaptureQueue] = []
        for _ in 0..<workers { queues.append(try CaptureQueue(slotCount: 4096, maxCaptured: maxCaptured)) }
        let fd = try Sys.open(path, flags: O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode: 0o644)
        var header = PcapNG.sectionHeader()
        for i in interfaces { header += PcapNG.interfaceDescription(name: i.name, snaplen: i.snaplen) }
        let failure = header.withUnsafeBytes { raw -> SystemError? in
            do throws(SystemError) {
                try Sys.writeAll(fd, raw)
                return nil
            } catch {
                return error
            }
        }
        if let failure {
            Sys.close(fd)
            throw failure
        }
        self.path = path
        self.fd = fd
        self.queues = queues
        buffer = .allocate(byteCount: 1 << 20, alignment: 64)
    }

    deinit { buffer.deallocate() }

    func start() throws(SystemError) {
        thread = try WorkerThread(name: "shunt-pcap") { [self] in run() }
    }

    /// Writes what is queued, closes the file. The workers must no longer push.
    func stop() {
        stopFlag.set()
        thread?.join()
        thread = nil
    }

    private func run() {
        while !stopFlag.isSet {
            if drainAll() == 0 { Sys.sleep(nanoseconds: 1_000_000) }
        }
        _ = drainAll()
        Sys.close(fd)
    }

    private func drainAll() -> Int {
        var n = 0
        for q in queues {
            n += q.drain { block in
                if buffered + block.count > bufferSize { flush() }
                (buffer + buffered).copyMemory(from: block.baseAddress!, byteCount: block.count)
                buffered += block.count
            }
        }
        flush()
        return n
    }

    private func flush() {
        guard buffered > 0 else { return }
        if !broken.isSet {
            do throws(SystemError) {
                try Sys.writeAll(fd, UnsafeRawBufferPointer(start: buffer, count: buffered))
            } catch {
                broken.set()
            }
        }
        buffered = 0
    }
}

/// One session as the workers execute it.
final class MirrorSessionRuntime: @unchecked Sendable {
    enum Sink {
        /// An interface, by 0-based index: copies go into its TX ring.
        case port(Int)
        /// A tunnel port, by index among the tunnels: copies are VXLAN-encapsulated.
        case tunnel(Int)
        case pcap(PcapSink)
    }

    let session: MirrorSession
    let sink: Sink
    let counters: MirrorCounters
    /// By 0-based port index: the pcapng interface id of that source.
    let captureInterface: [UInt32]
    /// Its slot in the XDP fast path's mirror_stats (0..<SHUNT_MIRROR_SLOTS), and the slot's
    /// counts when the session started (a slot is reused); nil: the kernel makes no copies for it.
    let kernelSlot: Int?
    let kernelBase: shunt_mirror_counters

    init(session: MirrorSession, sink: Sink, workers: Int, portCount: Int, kernelSlot: Int? = nil,
         kernelBase: shunt_mirror_counters = shunt_mirror_counters()) {
        self.session = session
        self.sink = sink
        self.kernelSlot = kernelSlot
        self.kernelBase = kernelBase
        counters = MirrorCounters(rows: workers)
        var ids = [UInt32](repeating: 0, count: portCount)
        for (i, p) in session.sources.enumerated() where Int(p) <= portCount { ids[Int(p) - 1] = UInt32(i) }
        captureInterface = ids
    }
}

/// The sessions at one moment, indexed by port for the workers. Immutable: edits publish a new one.
final class MirrorTable: @unchecked Sendable {
    let sessions: [MirrorSessionRuntime]
    /// By 0-based port index: the sessions copying that port's received / sent frames.
    let ingress: [[MirrorSessionRuntime]]
    let egress: [[MirrorSessionRuntime]]
    let isEmpty: Bool

    init(sessions: [MirrorSessionRuntime], portCount: Int) {
        self.sessions = sessions
        isEmpty = sessions.isEmpty
        var ingress = [[MirrorSessionRuntime]](repeating: [], count: portCount)
        var egress = ingress
        for s in sessions {
            for p in s.session.sources where Int(p) <= portCount {
                if s.session.direction.ingress { ingress[Int(p) - 1].append(s) }
                if s.session.direction.egress { egress[Int(p) - 1].append(s) }
            }
        }
        self.ingress = ingress
        self.egress = egress
    }

    /// Whether some session copies packets of this flow.
    func selects(flow key: FlowKey, actions: [DatapathAction]) -> Bool {
        sessions.contains { $0.session.selects(flow: key, actions: actions) }
    }

    /// Who copies the packets of this flow on the XDP datapath. The kernel does it when every
    /// session that selects the flow makes exactly one whole-frame, unsampled copy to an
    /// interface (SPAN), ingress copies only of flows that do not edit the frame (a broadcast
    /// sends one frame, after the edits), the flow has one output and no tunnel port on either
    /// side, and no two copies (or a copy and the output) go to one port. Ports above
    /// `portLimit` are tunnel ports.
    func kernelPlan(flow key: FlowKey, actions: [DatapathAction], portLimit: UInt32) -> KernelMirrorPlan {
        var outputs: [UInt32] = []
        var edits = false
        for a in actions {
            switch a {
            case .output(let p): outputs.append(p)
            case .setTunnel: break
            case .setEthSrc, .setEthDst, .setVLAN, .popVLAN, .decTTL: edits = true
            }
        }
        var selected = false
        var kernel = true
        var ports: [UInt32] = []
        var slots: UInt64 = 0
        for s in sessions {
            let ingress = s.session.selectsIngress(key: key, inPort: key.inPort)
            let egress = outputs.filter { s.session.selectsEgress(key: key, outPort: $0) }.count
            guard ingress || egress > 0 else { continue }
            selected = true
            guard case .port(let index) = s.sink, let slot = s.kernelSlot, s.session.sample == 1,
                  s.session.snaplen == 0, (ingress ? 1 : 0) + egress == 1, !(ingress && edits)
            else {
                kernel = false
                continue
            }
            ports.append(UInt32(index + 1))
            slots |= 1 << UInt64(slot)
        }
        guard selected else { return .none }
        guard kernel, outputs.count == 1, key.inPort <= portLimit, outputs[0] <= portLimit else { return .userspace }
        let all = outputs + ports
        guard Set(all).count == all.count else { return .userspace }
        return .kernel(ports: all.sorted(), sessions: slots)
    }
}

/// How the XDP datapath treats a flow's mirror copies.
enum KernelMirrorPlan: Equatable {
    /// No session selects the flow.
    case none
    /// The entry is marked SHUNT_CACHE_USERSPACE: the Swift worker forwards and copies.
    case userspace
    /// The kernel broadcasts the frame to `ports` (the output and the analysis ports, sorted)
    /// and counts one copy for each session slot in `sessions`.
    case kernel(ports: [UInt32], sessions: UInt64)
}

/// Where the workers, the revalidator and the control socket find the current sessions:
/// copy-on-write publication as for flow edits; readers load one generation word per pass.
public final class MirrorRegistry: @unchecked Sendable {
    private let table: Mutex<MirrorTable>
    private let generationWord: UnsafeMutablePointer<UInt64>

    init(portCount: Int) {
        table = Mutex(MirrorTable(sessions: [], portCount: portCount))
        generationWord = .allocate(capacity: 1)
        generationWord.initialize(to: 1)
    }

    deinit { generationWord.deallocate() }

    @inline(__always) public var generation: UInt64 { cshunt_load_acquire_u64(generationWord) }

    func current() -> (table: MirrorTable, generation: UInt64) {
        table.withLock { ($0, cshunt_load_relaxed_u64(generationWord)) }
    }

    /// Replaces the table with what `edit` returns (under the lock, so edits do not interleave).
    func edit<E: Error>(_ edit: (MirrorTable) throws(E) -> MirrorTable) throws(E) {
        try table.withLock { (t) throws(E) in
            t = try edit(t)
            cshunt_store_release_u64(generationWord, cshunt_load_relaxed_u64(generationWord) &+ 1)
        }
    }

    func selects(flow key: FlowKey, actions: [DatapathAction]) -> Bool {
        table.withLock { $0.isEmpty ? false : $0.selects(flow: key, actions: actions) }
    }

}
