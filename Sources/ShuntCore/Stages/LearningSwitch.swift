/// A MAC-learning switch over any number of ports, like Open vSwitch's NORMAL action: learn each
/// unicast source MAC on its port, send known unicast to its port, flood broadcast, multicast
/// and unknown unicast to every other port, and never send a frame back where it came from.
/// The decision is `MACLearningTable.switchFrame`, which the flow pipeline's NORMAL runs too.
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
            let decision = table.switchFrame(
                source: MACAddress(loading: p.data + 6), destination: MACAddress(loading: p.data), inPort: p.inPort,
                nowMs: nowMs)
            switch decision {
            case .port(let port): batch.setVerdict(i, .output(port))
            case .flood: batch.setVerdict(i, .flood(except: p.inPort))
            case .ingress: batch.setVerdict(i, .drop(.noOutput))
            }
        }
    }
}
