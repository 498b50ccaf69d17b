/// Every frame received on a port leaves on its partner: ports are paired 0<->1, 2<->3, ...
/// (DPDK testpmd's io mode). Frames are forwarded as bytes, whatever they contain.
public struct CrossConnect: ForwardingStage {
    public static let name = "xconnect"

    public init() {}

    @inlinable
    public mutating func process(_ batch: borrowing PacketBatch, nowMs: UInt64) {
        for i in 0..<batch.count {
            batch.setVerdict(i, .output(batch.packet(i).inPort ^ 1))
        }
    }
}
