/// A MAC-learning switch over any number of ports, like Open vSwitch's NORMAL action: learn each
/// unicast source MAC on its port, send known unicast to its port, flood broadcast, multicast
/// and unknown unicast to every other port, and never send a frame back where it came from.
public struct LearningSwitch: ForwardingStage {
    public static let name = "normal"

    public let table: MACLearningTable

    public init(table: MACLearningTable) { self.table = table }

    @inlinable
    public mutating func process(_ batch: borrowing PacketBatch, nowMs: UInt64) {
        for i in 0..<batch.count {
            let p = batch.packet(i)
            guard p.capturedLength >= 14 else {
                batch.setVerdict(i, .drop(.runt))
                continue
            }
            let dst = MACAddress(loading: p.data)
            let src = MACAddress(loading: p.data + 6)
            if !src.isMulticast {
                table.learn(src, port: p.inPort, nowMs: nowMs)
            }
            if dst.isMulticast {
                batch.setVerdict(i, .flood(except: p.inPort))
            } else if let port = table.lookup(dst, nowMs: nowMs) {
                batch.setVerdict(i, port == p.inPort ? .drop(.noOutput) : .output(port))
            } else {
                batch.setVerdict(i, .flood(except: p.inPort))
            }
        }
    }
}
