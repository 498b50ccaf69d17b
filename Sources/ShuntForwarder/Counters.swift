import CShunt
import ShuntCore

/// Per-port counters of one worker. One writer (the worker); readers load them relaxed.
///
/// Layout of each port's slice: rx packets, rx bytes, tx packets, tx bytes, the tunnel and local
/// counts, then one slot per drop reason for the receive direction and one per reason for the
/// transmit direction. Tunnel ports have slices too (after the interfaces).
public final class WorkerCounters: @unchecked Sendable {
    public enum Field: Int {
        case rxPackets = 0, rxBytes, txPackets, txBytes
        /// Underlay ports: frames decapsulated (they continue as rx of a tunnel port) and frames
        /// sent encapsulated for a tunnel port (counted as its tx).
        case rxDecapsulated, txEncapsulated
        /// Frames Shunt itself took (ARP for a local VTEP, or from a remote one) or sent (ARP).
        case rxLocal, txLocal
    }
    static let fieldCount = 8
    static let rxDropBase = fieldCount
    static let txDropBase = fieldCount + DropReason.slotCount
    static let stride = fieldCount + 2 * DropReason.slotCount

    /// One row per port (a port's single writer is the worker, so rows are not writers here).
    let block: CounterBlock
    public var portCount: Int { block.rows }

    init(portCount: Int) { block = CounterBlock(rows: portCount, columns: Self.stride) }

    @inline(__always) func add(_ port: Int, _ field: Field, _ n: UInt64) { block.add(port, field.rawValue, n) }

    @inline(__always) func addRxDrop(_ port: Int, _ reason: DropReason, _ n: UInt64 = 1) {
        block.add(port, Self.rxDropBase + Int(reason.rawValue), n)
    }

    @inline(__always) func addTxDrop(_ port: Int, _ reason: DropReason, _ n: UInt64 = 1) {
        block.add(port, Self.txDropBase + Int(reason.rawValue), n)
    }

    func snapshot(port: Int) -> PortCounters {
        func word(_ column: Int) -> UInt64 { block.value(port, column) }
        var c = PortCounters()
        c.rxPackets = word(Field.rxPackets.rawValue)
        c.rxBytes = word(Field.rxBytes.rawValue)
        c.txPackets = word(Field.txPackets.rawValue)
        c.txBytes = word(Field.txBytes.rawValue)
        c.rxDecapsulated = word(Field.rxDecapsulated.rawValue)
        c.txEncapsulated = word(Field.txEncapsulated.rawValue)
        c.rxLocal = word(Field.rxLocal.rawValue)
        c.txLocal = word(Field.txLocal.rawValue)
        for r in DropReason.allCases {
            c.rxDrops[r] = word(Self.rxDropBase + Int(r.rawValue))
            c.txDrops[r] = word(Self.txDropBase + Int(r.rawValue))
        }
        return c
    }
}

/// A snapshot of one port's counters (of one worker, or summed over workers).
public struct PortCounters: Sendable, Equatable {
    public var rxPackets: UInt64 = 0
    public var rxBytes: UInt64 = 0
    public var txPackets: UInt64 = 0
    public var txBytes: UInt64 = 0
    /// Underlay ports: frames received that were decapsulated into a tunnel port, and frames sent
    /// encapsulated for one. Not in rx/tx drops: the tunnel port counts them as its rx/tx.
    public var rxDecapsulated: UInt64 = 0
    public var txEncapsulated: UInt64 = 0
    /// Frames Shunt took for itself (ARP to or from a VTEP) and sent itself (ARP).
    public var rxLocal: UInt64 = 0
    public var txLocal: UInt64 = 0
    /// Frames received on this port that went nowhere, by reason (kernel ring drops included).
    public var rxDrops: [DropReason: UInt64] = [:]
    /// Copies meant to leave through this port that could not, by reason.
    public var txDrops: [DropReason: UInt64] = [:]
    /// PACKET_STATISTICS: frames the kernel offered this port's sockets (ring-full ones included).
    public var kernelOffered: UInt64 = 0

    public init() {}

    public var rxDropTotal: UInt64 { rxDrops.values.reduce(0, +) }
    public var txDropTotal: UInt64 { txDrops.values.reduce(0, +) }

    public static func + (a: PortCounters, b: PortCounters) -> PortCounters {
        var c = a
        c.rxPackets += b.rxPackets
        c.rxBytes += b.rxBytes
        c.txPackets += b.txPackets
        c.txBytes += b.txBytes
        c.rxDecapsulated += b.rxDecapsulated
        c.txEncapsulated += b.txEncapsulated
        c.rxLocal += b.rxLocal
        c.txLocal += b.txLocal
        c.kernelOffered += b.kernelOffered
        c.rxDrops.merge(b.rxDrops, uniquingKeysWith: +)
        c.txDrops.merge(b.txDrops, uniquingKeysWith: +)
        return c
    }
}
