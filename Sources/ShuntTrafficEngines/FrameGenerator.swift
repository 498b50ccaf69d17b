import CShunt
import Foundation
import ShuntRing
import ShuntRuntime
import ShuntSystem
import ShuntTraffic

/// Where a user-space generator engine writes its frames: a ring of frame slots shared with
/// the kernel (a TPACKET TX ring, an AF_XDP UMEM). A slot keeps its bytes between uses, so the
/// generator rewrites only what changes per frame.
protocol FrameTransmitter: AnyObject {
    /// Slots are numbered 0..<slotCount.
    var slotCount: Int { get }
    /// The next free slot, or nil when all are in flight.
    func claimSlot() -> (frame: UnsafeMutableRawPointer, slot: Int)?
    /// Queues the claimed slot, holding `length` bytes.
    func commitSlot(length: Int)
    /// Hands everything queued to the kernel (one system call, or a few).
    func flushSlots()
    /// Sends what is queued and waits until the kernel has taken it (at the end of a run);
    /// returns how many committed frames it never took (they were not sent).
    func finish() -> Int
}

extension RingPort: FrameTransmitter {
    var slotCount: Int { tx.geometry.frameCount }
    func claimSlot() -> (frame: UnsafeMutableRawPointer, slot: Int)? {
        let slot = tx.nextFrameIndex
        return claimTransmitFrame().map { ($0, slot) }
    }
    func commitSlot(length: Int) { tx.commit(length: length) }
    func flushSlots() { tx.flush(fd: fd) }
    func finish() -> Int {
        tx.flush(fd: fd)
        return 0
    }
}

extension XSKTransmitter: FrameTransmitter {
    var slotCount: Int { frameCount }
    func claimSlot() -> (frame: UnsafeMutableRawPointer, slot: Int)? {
        if let slot = claim() { return slot }
        flush()  // frames queued but not yet taken, or completions not yet read
        return claim()
    }
    func commitSlot(length: Int) { commit(length: length) }
    func flushSlots() { flush() }
    func finish() -> Int { drain(timeoutNs: 1_000_000_000) }
}

/// The user-space generator engines (`shunt gen --engine ring|afxdp`): frames built in place in
/// the transmitter's slots and handed to the kernel in batches. Each sending thread runs one
/// FrameGenerator on its own transmitter (a TX ring, or an AF_XDP socket on its own queue).
///
/// Each frame is the template with its flow's addresses, ports and IPv4 checksum and a probe
/// (stream, sequence, send time). A slot holds the template it was last written with, so the
/// template is copied only when a slot changes template (the first lap, and IMIX). With --rate,
/// a `SendSchedule` says how many frames are due; whatever is due (up to a batch) is written
/// and sent at once, so a late thread catches up and the average rate holds.
struct FrameGenerator<Transmitter: FrameTransmitter> {
    struct Result {
        var sent: UInt64 = 0
        var firstNs: UInt64 = 0
        var lastNs: UInt64 = 0
        var ringFull: UInt64 = 0
        var lagSkips: UInt64 = 0
        var skippedNs: UInt64 = 0
        var maxLagSeenNs: UInt64 = 0
    }

    /// A template frame and the checksum base of its IPv4 header (its length differs per size).
    struct Template {
        var bytes: [UInt8]
        var checksumBase: IPv4ChecksumBase
        /// IPv6: the UDP checksum base (nil: IPv4).
        var udp6: UDP6ChecksumBase?
        init(_ spec: TestFrameSpec) {
            bytes = spec.bytes()
            checksumBase = IPv4ChecksumBase(header: bytes[14..<34])
            udp6 = spec.isIPv6 ? UDP6ChecksumBase(template: bytes) : nil
        }
    }

    let transmitter: Transmitter
    /// Frame templates sent in turn (one: a fixed size; several: a size mix such as IMIX).
    let templates: [Template]
    let flows: FlowSpace
    let stream: UInt16
    /// Frames to send at most (nil: no limit).
    let count: UInt64?
    let rate: Double?
    let maxLagNs: UInt64
    let batch = 64

    /// Runs until `count` frames, `deadline(firstNs)` (the deadline given the first frame's send
    /// time), or `stop()` returns true (checked per batch).
    func run(deadline: (UInt64) -> UInt64?, stop: () -> Bool) -> Result {
        var r = Result()
        var schedule = rate.map { SendSchedule(rate: $0, maxLagNs: maxLagNs) }
        var deadlineNs: UInt64? = nil
        var seq: UInt64 = 0
        // Which template each slot holds (-1: none yet). Allocated once, before the first frame.
        var slotTemplate = [Int32](repeating: -1, count: transmitter.slotCount)
        while !stop() {
            let now = Sys.monotonicNanoseconds()
            if let deadlineNs, now >= deadlineNs { break }
            var limit = batch
            if let count {
                if seq >= count { break }
                limit = Int(min(UInt64(limit), count - seq))
            }
            let due = schedule?.due(at: now, limit: limit) ?? limit
            if due == 0 { continue }  // spin: nothing due yet
            var written = 0
            for _ in 0..<due {
                guard let (frame, slot) = transmitter.claimSlot() else {
                    r.ringFull += 1
                    break
                }
                let which = Int(seq % UInt64(templates.count))
                let template = templates[which]
                let length = template.bytes.count
                if slotTemplate[slot] != Int32(which) {
                    template.bytes.withUnsafeBytes { frame.copyMemory(from: $0.baseAddress!, byteCount: length) }
                    slotTemplate[slot] = Int32(which)
                }
                let flow = flows.flow(forSequence: seq)
                if template.udp6 == nil {
                    TestFrameSpec.writeFlow(flow, checksumBase: template.checksumBase, into: frame)
                } else {
                    TestFrameSpec.writeFlowIPv6(flow, into: frame)
                }
                let stamp = Sys.monotonicNanoseconds()
                // struct shunt_probe: magic and stream in network order, the rest host order.
                let p = frame + (template.udp6 == nil ? Probe.offset : Probe.offsetIPv6)
                p.storeBytes(of: Probe.magic.bigEndian, as: UInt16.self)
                (p + 2).storeBytes(of: stream.bigEndian, as: UInt16.self)
                (p + 4).storeBytes(of: UInt32(truncatingIfNeeded: seq), as: UInt32.self)
                (p + 8).storeBytes(of: stamp, as: UInt64.self)
                template.udp6?.store(into: frame)  // IPv6: the UDP checksum covers the probe
                if r.sent == 0 {
                    r.firstNs = stamp
                    deadlineNs = deadline(stamp)
                }
                r.lastNs = stamp
                transmitter.commitSlot(length: length)
                seq += 1
                r.sent += 1
                written += 1
            }
            schedule?.sent(written)
            if written > 0 { transmitter.flushSlots() }
        }
        // `sent` counts what the interface took: frames still queued after the drain were not.
        r.sent -= UInt64(transmitter.finish())
        if let schedule {
            r.lagSkips = schedule.lagSkips
            r.skippedNs = schedule.skippedNs
            r.maxLagSeenNs = schedule.maxLagSeenNs
        }
        return r
    }
}

// MARK: the user-space engines (ring, afxdp)

extension Generator {
    /// `--engine ring`: one TPACKET TX ring per thread.
    func runRing(_ supervisor: Supervisor) throws(CommandFailure) -> [ThreadResult] {
        var frameSize = 2048
        while frameSize < settings.largestFrame + 128 { frameSize *= 2 }  // + the TPACKET_V2 header, aligned
        var ports: [RingPort] = []
        do throws(RingSetupError) {
            for _ in 0..<settings.threads {
                // A token RX ring: the generator never reads it.
                let rx = RingGeometry(blockSize: 4096, blockCount: 1, frameSize: 2048, blockTimeoutMs: 0)
                let tx = RingGeometry(blockSize: max(1 << 16, frameSize), blockCount: 16,
                                      frameSize: frameSize, blockTimeoutMs: 0)
                ports.append(try RingPort(interface: interface, config: RingPortConfig(version: .v2, rx: rx, tx: tx, qdiscBypass: true),
                                          fanout: nil))
            }
        } catch {
            throw CommandFailure(status: 2, "\(error)")
        }
        return try runGenerators(ports, supervisor)
    }

    /// One FrameGenerator per thread, each on its own transmitter (TX ring or AF_XDP socket).
    func runGenerators<T: FrameTransmitter>(_ transmitters: [T], _ supervisor: Supervisor) throws(CommandFailure) -> [ThreadResult] {
        let settings = self.settings
        let spec = settings.frame
        let templates = settings.sizes.map { s -> FrameGenerator<T>.Template in var t = spec; t.size = s; return .init(t) }
        let box = ResultsBox(count: settings.threads)
        var workers: [WorkerThread] = []
        for i in 0..<settings.threads {
            let share = settings.share(i)
            let generator = FrameGenerator(transmitter: transmitters[i], templates: templates, flows: spec.flows,
                                           stream: UInt16(settings.stream + i), count: share.limit, rate: share.rate,
                                           maxLagNs: settings.maxLagNs)
            do {
                workers.append(try WorkerThread(name: "shunt-gen-\(i)") {
                    let r = generator.run(deadline: { settings.deadline(first: $0) }) { supervisor.isStopping }
                    box.set(i, ThreadResult(sent: r.sent, firstNs: r.firstNs, lastNs: r.lastNs, lagSkips: r.lagSkips,
                                            skippedNs: r.skippedNs, maxLagSeenNs: r.maxLagSeenNs, ringFull: r.ringFull))
                })
            } catch {
                supervisor.requestStop()
                workers.forEach { $0.join() }
                throw CommandFailure(status: 1, "\(error)")
            }
        }
        Self.supervise(supervisor, done: { box.finished == settings.threads }, finished: { false })
        supervisor.requestStop()
        workers.forEach { $0.join() }
        withExtendedLifetime(transmitters) {}
        return box.results
    }
}

/// The ring threads' results, each written once by its thread before it ends.
private final class ResultsBox: @unchecked Sendable {
    private let lock = NSLock()
    private var values: [Generator.ThreadResult]
    private var done = 0

    init(count: Int) { values = Array(repeating: .init(), count: count) }

    func set(_ i: Int, _ r: Generator.ThreadResult) {
        lock.lock(); defer { lock.unlock() }
        values[i] = r
        done += 1
    }

    var finished: Int { lock.lock(); defer { lock.unlock() }; return done }
    var results: [Generator.ThreadResult] { lock.lock(); defer { lock.unlock() }; return values }
}
