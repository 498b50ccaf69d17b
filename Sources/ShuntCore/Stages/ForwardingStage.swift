/// A step of the per-batch pipeline: it reads the frames of a batch and writes a verdict for each.
///
/// The worker is generic over its stage, so the call is resolved at compile time: no dynamic
/// dispatch per packet. Later stages (flow tables, VXLAN, DVR, mirroring) conform to this
/// protocol and compose; the ring code does not change.
public protocol ForwardingStage {
    /// A short name used in statistics and `--mode`.
    static var name: String { get }
    /// Decides every frame in `batch`. `nowMs` is one monotonic clock reading per batch.
    mutating func process(_ batch: borrowing PacketBatch, nowMs: UInt64)
}
