import CShunt
import ShuntRing
import ShuntSystem
import ShuntTraffic

/// `shunt gen --engine ring`: frames built in user space and sent through a TPACKET TX ring
/// with qdisc bypass. It works on any interface (no XDP, no GRO needed on the peer); it is
/// slower than the XDP engine and its pacing is a user-space busy loop.
///
/// Each frame is the template with the UDP source port of its flow and a probe (stream,
/// sequence, send time) written in place in the ring. With --rate, frames are due on a fixed
/// schedule from the first one (start + i / rate); a frame is written when it is due, and
/// whatever is due is sent in one batch. A schedule that falls behind by more than `maxLagNs`
/// moves up rather than sending a burst.
struct RingGenerator {
    struct Result {
        var sent: UInt64 = 0
        var firstNs: UInt64 = 0
        var lastNs: UInt64 = 0
        var ringFull: UInt64 = 0
        var lagSkips: UInt64 = 0
    }

    let port: RingPort
    /// Frame templates sent in turn (one: a fixed size; several: a size mix such as IMIX).
    let templates: [[UInt8]]
    let flows: Int
    let baseSourcePort: UInt16
    let stream: UInt16
    let count: UInt64?
    let rate: Double?
    let maxLagNs: UInt64
    let batch = 64

    /// Runs until `count` frames, `deadlineNs`, or `stop()` returns true (checked per batch).
    func run(deadlineNs: UInt64?, stop: () -> Bool) -> Result {
        var r = Result()
        let intervalNs = rate.map { 1e9 / $0 }
        var scheduleStart: Double = 0
        var scheduled: UInt64 = 0  // frames due so far on the current schedule
        var seq: UInt64 = 0
        while !stop() {
            let now = Sys.monotonicNanoseconds()
            if let deadlineNs, now >= deadlineNs { break }
            if let count, seq >= count { break }
            var due = batch
            if let intervalNs {
                if scheduled == 0 && seq == 0 { scheduleStart = Double(now) }
                let elapsed = Double(now) - scheduleStart
                let dueTotal = UInt64(max(0, elapsed / intervalNs)) + 1
                if dueTotal <= scheduled { continue }  // spin: nothing due yet
                var behind = dueTotal - scheduled
                if Double(behind - 1) * intervalNs > Double(maxLagNs) {
                    // Behind (the CPU was elsewhere): restart the schedule from now.
                    r.lagSkips += 1
                    scheduleStart = Double(now)
                    scheduled = 0
                    behind = 1
                }
                due = min(batch, Int(behind))
            }
            if let count { due = min(due, Int(count - seq)) }
            var written = 0
            for _ in 0..<due {
                guard let frame = port.claimTransmitFrame() else {
                    r.ringFull += 1
                    break
                }
                let template = templates[Int(seq % UInt64(templates.count))]
                let length = template.count
                template.withUnsafeBytes { frame.copyMemory(from: $0.baseAddress!, byteCount: length) }
                let sport = baseSourcePort &+ UInt16(truncatingIfNeeded: Int(seq % UInt64(flows)))
                (frame + 34).storeBytes(of: sport.bigEndian, as: UInt16.self)
                let stamp = Sys.monotonicNanoseconds()
                // struct shunt_probe: magic and stream in network order, the rest host order.
                let p = frame + Probe.offset
                p.storeBytes(of: Probe.magic.bigEndian, as: UInt16.self)
                (p + 2).storeBytes(of: stream.bigEndian, as: UInt16.self)
                (p + 4).storeBytes(of: UInt32(truncatingIfNeeded: seq), as: UInt32.self)
                (p + 8).storeBytes(of: stamp, as: UInt64.self)
                if r.sent == 0 { r.firstNs = stamp }
                r.lastNs = stamp
                port.tx.commit(length: length)
                seq += 1
                r.sent += 1
                written += 1
            }
            if rate != nil { scheduled += UInt64(written) }
            if written > 0 { port.tx.flush(fd: port.fd) }
        }
        port.tx.flush(fd: port.fd)
        return r
    }
}
