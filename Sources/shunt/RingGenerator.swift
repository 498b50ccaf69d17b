import CShunt
import ShuntRing
import ShuntSystem
import ShuntTraffic

/// `shunt gen --engine ring`: frames built in user space and sent through a TPACKET TX ring
/// with qdisc bypass. It works on any interface (no XDP, no GRO needed on the peer); it is
/// slower than the XDP engine and its pacing is a user-space busy loop. Each sending thread runs
/// one RingGenerator on its own ring.
///
/// Each frame is the template with its flow's addresses, ports and IPv4 checksum and a probe
/// (stream, sequence, send time) written in place in the ring. With --rate, a `SendSchedule`
/// says how many frames are due; whatever is due (up to a batch) is written and sent at once,
/// so a late thread catches up and the average rate holds.
struct RingGenerator {
    struct Result {
        var sent: UInt64 = 0
        var firstNs: UInt64 = 0
        var lastNs: UInt64 = 0
        var ringFull: UInt64 = 0
        var lagSkips: UInt64 = 0
        var skippedNs: UInt64 = 0
        var maxLagSeenNs: UInt64 = 0
    }

    let port: RingPort
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
                guard let frame = port.claimTransmitFrame() else {
                    r.ringFull += 1
                    break
                }
                let template = templates[Int(seq % UInt64(templates.count))]
                let length = template.bytes.count
                template.bytes.withUnsafeBytes { frame.copyMemory(from: $0.baseAddress!, byteCount: length) }
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
                port.tx.commit(length: length)
                seq += 1
                r.sent += 1
                written += 1
            }
            schedule?.sent(written)
            if written > 0 { port.tx.flush(fd: port.fd) }
        }
        port.tx.flush(fd: port.fd)
        if let schedule {
            r.lagSkips = schedule.lagSkips
            r.skippedNs = schedule.skippedNs
            r.maxLagSeenNs = schedule.maxLagSeenNs
        }
        return r
    }
}
