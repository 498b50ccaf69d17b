import CShunt
import Glibc
import ShuntSystem

/// Why an AF_XDP socket could not be set up, said so that the user knows what to change.
public enum XSKSetupError: Error, CustomStringConvertible {
    /// socket(AF_XDP) refused: the kernel was built without CONFIG_XDP_SOCKETS, or a policy forbids it.
    case unsupported(SystemError)
    /// The interface has fewer queues than asked for.
    case noSuchQueue(interface: String, queue: UInt32, queues: Int)
    /// Another AF_XDP socket is bound to that queue.
    case queueBusy(interface: String, queue: UInt32)
    case permission
    case system(step: String, interface: String, SystemError)

    public var description: String {
        switch self {
        case .unsupported(let e):
            "AF_XDP sockets are not available in this kernel (\(e))"
        case .noSuchQueue(let n, let q, let queues):
            "'\(n)' has \(queues) transmit queue(s), so no queue \(q) to bind an AF_XDP socket to; use fewer threads, or recreate a veth with `numtxqueues N numrxqueues N`"
        case .queueBusy(let n, let q):
            "queue \(q) of '\(n)' already has an AF_XDP socket (another generator or program is bound to it)"
        case .permission:
            "an AF_XDP socket needs CAP_NET_RAW (and CAP_NET_ADMIN for the UMEM); run shunt as root"
        case .system(let step, let n, let err):
            "setting up an AF_XDP socket on '\(n)' failed at \(step): \(err)"
        }
    }
}

/// How an AF_XDP socket moves frames: zero-copy (the driver reads the UMEM) or copy (the
/// kernel builds an skb per frame: every veth, and drivers without zero-copy support).
public enum XSKBindMode: String, Sendable {
    case zeroCopy = "zero-copy"
    case copy
}

/// A transmit-only AF_XDP socket on one queue of an interface: a UMEM of fixed-size frames,
/// a TX ring of descriptors into it and the completion ring that hands frames back.
///
/// Use: `claim()` a free UMEM frame (with its slot number, so that a caller can keep what it
/// wrote there and rewrite only what changes), write it, `commit(length:)`; once per batch
/// `flush()` publishes the descriptors and, as the need-wakeup flag asks, wakes the kernel.
/// Frames come back through the completion ring once sent; `claim()` recycles them.
///
/// The rings are shared with the kernel: the producer and consumer words are read with acquire
/// and written with release ordering (cshunt_*), as the AF_XDP ring protocol requires.
/// Not thread-safe: one sending thread owns a transmitter.
public final class XSKTransmitter {
    public let interface: InterfaceInfo
    public let queue: UInt32
    public let mode: XSKBindMode
    /// Frames in the UMEM and bytes per frame (the largest frame it can send).
    public let frameCount: Int
    public let frameSize: Int

    private let fd: Int32
    private let umem: UnsafeMutableRawPointer
    private let umemLength: Int
    private let tx: MappedRing
    private let completion: MappedRing

    /// Free UMEM frame numbers (a stack), refilled from the completion ring.
    private let freeFrames: UnsafeMutablePointer<UInt32>
    private var freeCount: Int
    /// The TX ring's producer as this side knows it (published by flush), and the last
    /// consumer value read from the kernel.
    private var txProducer: UInt32
    private var txConsumerSeen: UInt32
    private var claimedFrame: UInt32?
    private var published: UInt32

    /// One mapped ring: its producer, consumer and flags words and its entries.
    private struct MappedRing {
        let base: UnsafeMutableRawPointer
        let length: Int
        let producer: UnsafeMutableRawPointer
        let consumer: UnsafeMutableRawPointer
        let flags: UnsafeMutableRawPointer
        let entries: UnsafeMutableRawPointer
        let size: UInt32

        init(fd: Int32, offsets: xdp_ring_offset, size: UInt32, entrySize: Int, pageOffset: Int64) throws(SystemError) {
            length = Int(offsets.desc) + Int(size) * entrySize
            base = try Sys.mmapShared(fd: fd, length: length, offset: pageOffset)
            producer = base + Int(offsets.producer)
            consumer = base + Int(offsets.consumer)
            flags = base + Int(offsets.flags)
            entries = base + Int(offsets.desc)
            self.size = size
        }
    }

    /// Ring sizes (powers of two). The TX ring holds a few batches; the UMEM and the completion
    /// ring hold every frame in flight (the kernel completes a copy-mode frame only when its skb
    /// is freed, which on a veth is after the peer took it).
    public static let defaultFrameCount = 4096
    static let txRingSize: UInt32 = 2048
    static let fillRingSize: UInt32 = 64

    /// The number of transmit queues of an interface, from sysfs (1 where sysfs does not say).
    public static func transmitQueueCount(_ name: String) -> Int {
        let entries = (try? Sys.directoryEntries("/sys/class/net/\(name)/queues")) ?? []
        return max(1, entries.filter { $0.hasPrefix("tx-") }.count)
    }

    /// Opens, registers the UMEM, maps the rings and binds to `queue` of `interface`: zero-copy
    /// first unless `forceCopy`, copy mode where the driver does not offer it.
    public init(interface: InterfaceInfo, queue: UInt32, frameSize: Int = 2048, frameCount: Int = defaultFrameCount,
                forceCopy: Bool = false) throws(XSKSetupError) {
        precondition(frameSize == 2048 || frameSize == 4096, "AF_XDP aligned chunks: 2048 or 4096 bytes")
        precondition(frameCount > 0 && frameCount & (frameCount - 1) == 0, "a power of two")
        let name = interface.name
        let queues = Self.transmitQueueCount(name)
        guard Int(queue) < queues else { throw .noSuchQueue(interface: name, queue: queue, queues: queues) }
        func step<T>(_ what: String, _ body: () throws(SystemError) -> T) throws(XSKSetupError) -> T {
            try Self.step(what, interface: name, body)
        }
        let fd: Int32
        do throws(SystemError) { fd = try Sys.socket(domain: AF_XDP, type: Int32(SOCK_RAW.rawValue), protocol: 0) } catch {
            if error.errno == EPERM || error.errno == EACCES { throw .permission }
            throw .unsupported(error)
        }
        var cleanup: [() -> Void] = [{ Sys.close(fd) }]
        let umemLength = frameSize * frameCount
        let umem: UnsafeMutableRawPointer, tx: MappedRing, completion: MappedRing, mode: XSKBindMode
        do throws(XSKSetupError) {
            umem = try step("UMEM allocation") { () throws(SystemError) in try Sys.mmapAnonymous(length: umemLength) }
            cleanup.append { Sys.munmap(umem, length: umemLength) }
            (tx, completion) = try Self.mapRings(fd: fd, umem: umem, umemLength: umemLength, frameSize: frameSize,
                                                 frameCount: frameCount, interface: name)
            let (txRing, completionRing) = (tx, completion)
            cleanup.append { Sys.munmap(txRing.base, length: txRing.length) }
            cleanup.append { Sys.munmap(completionRing.base, length: completionRing.length) }
            mode = try Self.bind(fd: fd, interface: interface, queue: queue, forceCopy: forceCopy)
        } catch {
            cleanup.reversed().forEach { $0() }
            throw error
        }
        self.fd = fd
        self.umem = umem
        self.umemLength = umemLength
        self.tx = tx
        self.completion = completion
        self.mode = mode
        self.interface = interface
        self.queue = queue
        self.frameSize = frameSize
        self.frameCount = frameCount
        freeFrames = .allocate(capacity: frameCount)
        for i in 0..<frameCount { freeFrames[i] = UInt32(frameCount - 1 - i) }
        freeCount = frameCount
        txProducer = cshunt_load_acquire_u32(tx.producer)
        txConsumerSeen = cshunt_load_acquire_u32(tx.consumer)
        published = txProducer
    }

    /// A setup step's system error as the setup error it means (no permission, or which step).
    static func step<T>(_ what: String, interface: String, _ body: () throws(SystemError) -> T) throws(XSKSetupError) -> T {
        do { return try body() } catch {
            if error.errno == EPERM || error.errno == EACCES { throw .permission }
            throw .system(step: what, interface: interface, error)
        }
    }

    /// Registers the UMEM and maps the TX and completion rings. On failure the caller unmaps
    /// the UMEM and closes the socket; a ring mapped here before the failure is unmapped here.
    private static func mapRings(fd: Int32, umem: UnsafeMutableRawPointer, umemLength: Int, frameSize: Int, frameCount: Int,
                                 interface name: String) throws(XSKSetupError) -> (tx: MappedRing, completion: MappedRing) {
        func step<T>(_ what: String, _ body: () throws(SystemError) -> T) throws(XSKSetupError) -> T {
            try Self.step(what, interface: name, body)
        }
        try step("XDP_UMEM_REG") { () throws(SystemError) in
            var reg = xdp_umem_reg()
            reg.addr = UInt64(UInt(bitPattern: umem))
            reg.len = UInt64(umemLength)
            reg.chunk_size = UInt32(frameSize)
            reg.headroom = 0
            try Sys.setsockopt(fd, level: SOL_XDP, name: XDP_UMEM_REG, value: reg)
        }
        // The kernel insists on a fill ring even for a socket that never receives (it is
        // never mapped or used).
        try step("XDP_UMEM_FILL_RING") { () throws(SystemError) in
            try Sys.setsockopt(fd, level: SOL_XDP, name: XDP_UMEM_FILL_RING, value: Self.fillRingSize)
        }
        try step("XDP_UMEM_COMPLETION_RING") { () throws(SystemError) in
            try Sys.setsockopt(fd, level: SOL_XDP, name: XDP_UMEM_COMPLETION_RING, value: UInt32(frameCount))
        }
        try step("XDP_TX_RING") { () throws(SystemError) in
            try Sys.setsockopt(fd, level: SOL_XDP, name: XDP_TX_RING, value: Self.txRingSize)
        }
        var offsets = xdp_mmap_offsets()
        try step("XDP_MMAP_OFFSETS") { () throws(SystemError) in
            try Sys.getsockopt(fd, level: SOL_XDP, name: XDP_MMAP_OFFSETS, into: &offsets)
        }
        let txRing = try step("mmap TX ring") { () throws(SystemError) in
            try MappedRing(fd: fd, offsets: offsets.tx, size: Self.txRingSize, entrySize: MemoryLayout<xdp_desc>.stride,
                           pageOffset: Int64(XDP_PGOFF_TX_RING))
        }
        do throws(XSKSetupError) {
            let completionRing = try step("mmap completion ring") { () throws(SystemError) in
                try MappedRing(fd: fd, offsets: offsets.cr, size: UInt32(frameCount), entrySize: 8,
                               pageOffset: Int64(bitPattern: XDP_UMEM_PGOFF_COMPLETION_RING))
            }
            return (txRing, completionRing)
        } catch {
            Sys.munmap(txRing.base, length: txRing.length)
            throw error
        }
    }

    /// Binds zero-copy where the driver offers it (unless `forceCopy`), copy mode otherwise.
    private static func bind(fd: Int32, interface: InterfaceInfo, queue: UInt32, forceCopy: Bool) throws(XSKSetupError) -> XSKBindMode {
        let name = interface.name
        func bind(_ flags: Int32) throws(SystemError) {
            try Sys.bindXDP(fd, ifindex: interface.index, queue: queue, flags: UInt16(flags | XDP_USE_NEED_WAKEUP))
        }
        func failure(_ error: SystemError, _ step: String) -> XSKSetupError {
            if error.errno == EBUSY { return .queueBusy(interface: name, queue: queue) }
            if error.errno == EPERM || error.errno == EACCES { return .permission }
            return .system(step: step, interface: name, error)
        }
        if !forceCopy {
            do throws(SystemError) {
                try bind(XDP_ZEROCOPY)
                return .zeroCopy
            } catch where error.errno == EOPNOTSUPP || error.errno == EINVAL || error.errno == EPROTONOSUPPORT {
                // No zero-copy in this driver (every veth): copy mode below.
            } catch {
                throw failure(error, "bind (zero-copy)")
            }
        }
        do throws(SystemError) { try bind(XDP_COPY) } catch { throw failure(error, "bind (copy mode)") }
        return .copy
    }

    deinit {
        Sys.munmap(completion.base, length: completion.length)
        Sys.munmap(tx.base, length: tx.length)
        Sys.close(fd)
        Sys.munmap(umem, length: umemLength)
        freeFrames.deallocate()
    }

    /// Frames handed to the kernel and not yet back through the completion ring.
    public var inFlight: Int { frameCount - freeCount - (claimedFrame == nil ? 0 : 1) }

    /// Takes back every frame the kernel has completed.
    private func reclaim() {
        let producer = cshunt_load_acquire_u32(completion.producer)
        var consumer = cshunt_load_acquire_u32(completion.consumer)
        guard producer != consumer else { return }
        let mask = completion.size - 1
        let addresses = completion.entries.assumingMemoryBound(to: UInt64.self)
        while consumer != producer {
            freeFrames[freeCount] = UInt32(addresses[Int(consumer & mask)] / UInt64(frameSize))
            freeCount += 1
            consumer &+= 1
        }
        cshunt_store_release_u32(completion.consumer, consumer)
    }

    /// The next free UMEM frame and its slot number (0..<frameCount), or nil when every frame
    /// is in flight or the TX ring is full. Do not keep the pointer past `commit`.
    @inline(__always)
    public func claim() -> (frame: UnsafeMutableRawPointer, slot: Int)? {
        if txProducer &- txConsumerSeen >= tx.size {
            txConsumerSeen = cshunt_load_acquire_u32(tx.consumer)
            if txProducer &- txConsumerSeen >= tx.size { return nil }
        }
        if freeCount == 0 {
            reclaim()
            if freeCount == 0 { return nil }
        }
        freeCount -= 1
        let frame = freeFrames[freeCount]
        claimedFrame = frame
        return (umem + Int(frame) * frameSize, Int(frame))
    }

    /// Queues the claimed frame, now holding `length` bytes, for transmission (sent at `flush`).
    @inline(__always)
    public func commit(length: Int) {
        guard let frame = claimedFrame else { preconditionFailure("commit without claim") }
        claimedFrame = nil
        let desc = tx.entries.assumingMemoryBound(to: xdp_desc.self) + Int(txProducer & (tx.size - 1))
        desc.pointee.addr = UInt64(frame) * UInt64(frameSize)
        desc.pointee.len = UInt32(length)
        desc.pointee.options = 0
        txProducer &+= 1
    }

    /// Publishes the committed descriptors and wakes the kernel when it asks to be woken (copy
    /// mode always does: it sends from the wake-up call, a bounded number of frames per call,
    /// so this keeps calling while the kernel makes progress). Returns whether the kernel
    /// took everything.
    @discardableResult
    public func flush() -> Bool {
        if published != txProducer {
            cshunt_store_release_u32(tx.producer, txProducer)
            published = txProducer
        }
        var consumer = cshunt_load_acquire_u32(tx.consumer)
        while consumer != txProducer {
            guard cshunt_load_acquire_u32(tx.flags) & UInt32(XDP_RING_NEED_WAKEUP) != 0 else { break }
            let before = consumer
            _ = try? Sys.kickXDPTransmit(fd)
            consumer = cshunt_load_acquire_u32(tx.consumer)
            if consumer == before { break }  // busy: the next flush tries again
        }
        txConsumerSeen = consumer
        reclaim()
        return consumer == txProducer
    }

    /// Sends what is still queued and waits (up to `timeoutNs`) for the kernel to complete
    /// every frame in flight; returns how many committed frames the kernel never took from the
    /// TX ring (0 when everything was sent). Those are discarded when the socket closes.
    public func drain(timeoutNs: UInt64) -> Int {
        let deadline = Sys.monotonicNanoseconds() + timeoutNs
        while true {
            let allTaken = flush()
            if allTaken && inFlight == 0 { return 0 }
            if Sys.monotonicNanoseconds() >= deadline { return Int(txProducer &- txConsumerSeen) }
            Sys.sleep(nanoseconds: 50_000)
        }
    }

    /// XDP_STATISTICS: descriptors the kernel rejected as invalid (a bad address or length).
    public func invalidDescriptors() -> UInt64 {
        var stats = xdp_statistics()
        guard (try? Sys.getsockopt(fd, level: SOL_XDP, name: XDP_STATISTICS, into: &stats)) != nil else { return 0 }
        return stats.tx_invalid_descs
    }
}
