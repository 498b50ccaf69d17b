import CShunt
import Glibc
import ShuntCore
import ShuntSystem

/// How a port's frames are handed to the kernel.
public enum TransmitMethod: String, CaseIterable, Sendable {
    /// PACKET_TX_RING: frames are written into the mapped ring and one send() hands them all
    /// over; the kernel builds each skb around the ring's page instead of copying the payload.
    case ring
    /// sendmmsg(2) from a staging area: one call per batch, the kernel copies each frame into a
    /// new skb. Cheaper for small frames on veths, which copy a ring-backed skb once more
    /// (skb_copy_ubufs) and complete it back to the ring (docs/design/0027).
    case copy
}

/// A port's transmit side: fixed-size frames, claimed in order, each written once.
///
/// Fill: `claim()` the next frame, write the packet, `commit(length:)`; once per batch `flush()`
/// gives the kernel every committed frame in one system call. With `.ring` a frame is reusable
/// when the kernel sets it back to TP_STATUS_AVAILABLE after the packet has left; with `.copy`
/// the staging area is reused once a flush has sent everything in it.
public struct TxRing {
    public let version: RingVersion
    public let geometry: RingGeometry
    public let method: TransmitMethod
    @usableFromInline let base: UnsafeMutableRawPointer
    @usableFromInline let statusOffset: Int
    @usableFromInline let dataOffset: Int
    /// `.copy`: one message per staging frame, each with its one iovec, built once.
    @usableFromInline let messages: UnsafeMutablePointer<cshunt_mmsghdr>?
    /// Longest frame this port accepts: the ring frame and the device MTU both bound it.
    public let maxFrameLength: Int
    @usableFromInline var next = 0
    /// `.copy`: the first staged frame the kernel has not taken yet.
    @usableFromInline var head = 0
    /// The frame committed last (tests read it back).
    @usableFromInline var lastCommitted = 0
    public var pending = 0
    /// `.copy`: the last flush left frames staged (a full send buffer, a port that is down).
    /// Claims then do not flush again until the end of the pass (one failing call per pass, not
    /// one per frame).
    public var stalled = false
    /// `.copy`: frames the kernel refused outright (EMSGSIZE, EINVAL: sendmmsg ignores
    /// PACKET_LOSS), skipped so they do not block the frames behind them. Read and reset with
    /// `takeRejected()`.
    @usableFromInline var rejected: (frames: UInt64, bytes: UInt64) = (0, 0)
    /// Detached rings only: the first queued frame not yet marked sent (`completeQueued()`).
    var completed = 0

    /// A TX ring in the socket's mapping at `base`.
    public init(version: RingVersion, geometry: RingGeometry, base: UnsafeMutableRawPointer, mtu: Int) {
        self.init(version: version, geometry: geometry, method: .ring, base: base, messages: nil, mtu: mtu)
    }

    /// A staging area for `.copy` in `staging` (`stagingBytes(for:)` long, owned by the caller):
    /// the frames, then an iovec and a message per frame.
    public init(copyingFrom staging: UnsafeMutableRawPointer, version: RingVersion, geometry: RingGeometry, mtu: Int) {
        let frames = geometry.frameCount
        let vectors = (staging + geometry.byteCount).bindMemory(to: iovec.self, capacity: frames)
        let messages = (staging + geometry.byteCount + frames * MemoryLayout<iovec>.stride)
            .bindMemory(to: cshunt_mmsghdr.self, capacity: frames)
        for i in 0..<frames {
            vectors[i] = iovec(iov_base: staging + i * geometry.frameSize + version.txDataOffset, iov_len: 0)
            var m = cshunt_mmsghdr()
            m.msg_hdr.msg_iov = vectors + i
            m.msg_hdr.msg_iovlen = 1
            messages[i] = m
        }
        self.init(version: version, geometry: geometry, method: .copy, base: staging, messages: messages, mtu: mtu)
    }

    private init(version: RingVersion, geometry: RingGeometry, method: TransmitMethod, base: UnsafeMutableRawPointer,
                 messages: UnsafeMutablePointer<cshunt_mmsghdr>?, mtu: Int) {
        self.version = version
        self.geometry = geometry
        self.method = method
        self.base = base
        self.messages = messages
        statusOffset = version == .v3 ? Int(CSHUNT_V3_STATUS_OFFSET) : Int(CSHUNT_V2_STATUS_OFFSET)
        dataOffset = version.txDataOffset
        maxFrameLength = min(geometry.frameSize - version.txDataOffset, Self.longestFrame(mtu: mtu))
    }

    /// Frames (and their bytes) the kernel refused since the last call.
    public mutating func takeRejected() -> (frames: UInt64, bytes: UInt64) {
        defer { rejected = (0, 0) }
        return rejected
    }

    /// Bytes of the staging area `.copy` needs for `geometry`.
    public static func stagingBytes(for geometry: RingGeometry) -> Int {
        let bytes = geometry.byteCount + geometry.frameCount * (MemoryLayout<iovec>.stride + MemoryLayout<cshunt_mmsghdr>.stride)
        return (bytes + 4095) & ~4095
    }

    /// The longest frame an interface of `mtu` takes: tpacket_snd accepts up to the MTU plus
    /// the link header and one VLAN tag.
    public static func longestFrame(mtu: Int) -> Int { mtu + 14 + 4 }

    /// The data area of the next free frame, or nil when the ring is full.
    @inlinable
    public mutating func claim() -> UnsafeMutableRawPointer? {
        let frame = base + next * geometry.frameSize
        switch method {
        case .ring:
            let status = cshunt_load_acquire_u32(frame + statusOffset)
            guard status & UInt32(TP_STATUS_SEND_REQUEST | TP_STATUS_SENDING) == 0 else { return nil }
        case .copy:
            guard next < geometry.frameCount else { return nil }
        }
        return frame + dataOffset
    }

    /// The ring frame number `claim()` returns next (frames are claimed in ring order).
    @inlinable
    public var nextFrameIndex: Int { next }

    /// Marks the claimed frame, now holding `length` bytes, for transmission.
    @inlinable
    public mutating func commit(length: Int) {
        lastCommitted = next
        switch method {
        case .ring:
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
        case .copy:
            messages.unsafelyUnwrapped[next].msg_hdr.msg_iov.pointee.iov_len = length
            next += 1
        }
        pending += 1
    }

    /// Transmits everything committed since the last flush: one system call (`.copy`: one per
    /// 1024 frames).
    public mutating func flush(fd: Int32) {
        guard pending > 0 else { return }
        switch method {
        case .ring:
            // EAGAIN/ENOBUFS leave frames marked; the next flush sends them. A port that went down
            // keeps its frames until the ring is full, and further frames are counted tx_ring_full.
            _ = try? Sys.kickTransmit(fd)
            pending = 0
        case .copy:
            // What the kernel does not take now (a full send buffer, a port that went down) stays
            // staged for the next flush; once the staging area is full, further frames are
            // counted tx_ring_full, as with the ring.
            let messages = messages.unsafelyUnwrapped
            while pending > 0 {
                let result: IOResult<Int>
                do throws(SystemError) {
                    result = try Sys.sendMessages(fd, messages + head, count: min(pending, 1024))
                } catch where error.errno == ENETDOWN || error.errno == ENXIO || error.errno == ENODEV {
                    break  // the port is down or gone: keep the frames for when it is back
                } catch {
                    // The frame at `head` itself was refused (sendmmsg reports an error only when
                    // the first message fails): skip it, counted, and go on with the rest.
                    rejected.frames &+= 1
                    rejected.bytes &+= UInt64(messages[head].msg_hdr.msg_iov.pointee.iov_len)
                    head += 1
                    pending -= 1
                    continue
                }
                guard case .processed(let sent) = result, sent > 0 else { break }
                head += sent
                pending -= sent
            }
            stalled = pending > 0
            if pending == 0 {
                head = 0
                next = 0
            }
        }
    }
}
