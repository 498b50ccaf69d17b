import CShunt
import ShuntCore
import ShuntSystem

/// A mapped TX ring of fixed-size frames (TPACKET_V2 frames, or V3 with the same semantics).
///
/// Fill: `claim()` the next frame, write the packet, `commit(length:)`; once per batch `flush()`
/// asks the kernel (one send() call) to transmit every committed frame. A frame is reusable when
/// the kernel sets it back to TP_STATUS_AVAILABLE after the packet has left.
public struct TxRing {
    public let version: RingVersion
    public let geometry: RingGeometry
    @usableFromInline let base: UnsafeMutableRawPointer
    @usableFromInline let statusOffset: Int
    @usableFromInline let dataOffset: Int
    /// Longest frame this port accepts: the ring frame and the device MTU both bound it.
    public let maxFrameLength: Int
    @usableFromInline var next = 0
    public var pending = 0
    /// Detached rings only: the first queued frame not yet marked sent (`completeQueued()`).
    var completed = 0

    public init(version: RingVersion, geometry: RingGeometry, base: UnsafeMutableRawPointer, mtu: Int) {
        self.version = version
        self.geometry = geometry
        self.base = base
        statusOffset = version == .v3 ? Int(CSHUNT_V3_STATUS_OFFSET) : Int(CSHUNT_V2_STATUS_OFFSET)
        dataOffset = version.txDataOffset
        maxFrameLength = min(geometry.frameSize - version.txDataOffset, Self.longestFrame(mtu: mtu))
    }

    /// The longest frame an interface of `mtu` takes: tpacket_snd accepts up to the MTU plus
    /// the link header and one VLAN tag.
    public static func longestFrame(mtu: Int) -> Int { mtu + 14 + 4 }

    /// The data area of the next free frame, or nil when the ring is full.
    @inlinable
    public mutating func claim() -> UnsafeMutableRawPointer? {
        let frame = base + next * geometry.frameSize
        let status = cshunt_load_acquire_u32(frame + statusOffset)
        guard status & UInt32(TP_STATUS_SEND_REQUEST | TP_STATUS_SENDING) == 0 else { return nil }
        return frame + dataOffset
    }

    /// The ring frame number `claim()` returns next (frames are claimed in ring order).
    @inlinable
    public var nextFrameIndex: Int { next }

    /// Marks the claimed frame, now holding `length` bytes, for transmission.
    @inlinable
    public mutating func commit(length: Int) {
        let frame = base + next * geometry.frameSize
        switch version {
        case .v3:
            let h = frame.assumingMemoryBound(to: tpacket3_hdr.self)
            h.pointee.tp_next_offset = 0
            h.pointee.tp_len = UInt32(length)
            h.pointee.tp_snaplen = UInt32(length)
        case .v2:
            let h = frame.assumingMemoryBound(to: tpacket2_hdr.self)
            h.pointee.tp_len = UInt32(length)
            h.pointee.tp_snaplen = UInt32(length)
        }
        cshunt_store_release_u32(frame + statusOffset, UInt32(TP_STATUS_SEND_REQUEST))
        next = next + 1 == geometry.frameCount ? 0 : next + 1
        pending += 1
    }

    /// Transmits everything committed since the last flush: one system call.
    public mutating func flush(fd: Int32) {
        guard pending > 0 else { return }
        // EAGAIN/ENOBUFS leave frames marked; the next flush sends them. A port that went down
        // keeps its frames until the ring is full, and further frames are counted tx_ring_full.
        _ = try? Sys.kickTransmit(fd)
        pending = 0
    }
}
