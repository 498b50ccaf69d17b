import CShunt
import ShuntRing
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
