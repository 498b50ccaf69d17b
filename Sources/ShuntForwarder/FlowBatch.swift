import ShuntCore

/// One received burst as the flow worker's slow path sees it, in three passes (as OVS's
/// `dfc_processing` then `fast_path_processing`): keys are extracted for every frame, looked up
/// in the exact-match cache, and the misses compacted here so that each distinct missing flow is
/// translated once for all its frames in the burst.
///
/// Storage is allocated once per worker; a burst only writes into it (no per-packet allocation).
/// Descriptors point into the RX ring and are valid until the ring frames are released.
final class FlowBatch {
    let capacity: Int
    /// The frame to forward: as received, or the inner frame of a decapsulated one.
    let packets: UnsafeMutablePointer<PacketDescriptor>
    let keys: UnsafeMutablePointer<FlowKey>
    let hashes: UnsafeMutablePointer<UInt64>
    /// 0-based port index: an interface, or a tunnel port after them.
    let inPorts: UnsafeMutablePointer<Int>
    /// Whether the kernel cache may hold this frame's flow (well formed, checksum complete).
    let installable: UnsafeMutablePointer<Bool>
    /// Indices (into the arrays above) of the frames the exact-match cache missed, in arrival order.
    let misses: UnsafeMutablePointer<Int>
    /// Per miss: already forwarded with an earlier miss of the same key.
    let done: UnsafeMutablePointer<Bool>
    private(set) var count = 0
    private(set) var missCount = 0

    init(capacity: Int = maxBurst) {
        self.capacity = capacity
        packets = .allocate(capacity: capacity)
        keys = .allocate(capacity: capacity)
        keys.initialize(repeating: FlowKey(), count: capacity)
        hashes = .allocate(capacity: capacity)
        inPorts = .allocate(capacity: capacity)
        installable = .allocate(capacity: capacity)
        misses = .allocate(capacity: capacity)
        done = .allocate(capacity: capacity)
    }

    deinit {
        packets.deallocate()
        keys.deallocate()
        hashes.deallocate()
        inPorts.deallocate()
        installable.deallocate()
        misses.deallocate()
        done.deallocate()
    }

    @inline(__always)
    func append(_ packet: PacketDescriptor, inPort: Int, key: FlowKey, installable canInstall: Bool) {
        let i = count
        (packets + i).initialize(to: packet)
        keys[i] = key
        hashes[i] = key.hash64
        inPorts[i] = inPort
        installable[i] = canInstall
        count = i + 1
    }

    @inline(__always)
    func addMiss(_ index: Int) {
        misses[missCount] = index
        done[missCount] = false
        missCount += 1
    }

    /// Whether frames `a` and `b` are of one flow.
    @inline(__always)
    func sameFlow(_ a: Int, _ b: Int) -> Bool { hashes[a] == hashes[b] && keys[a] == keys[b] }

    @inline(__always)
    func removeAll() {
        count = 0
        missCount = 0
    }
}
