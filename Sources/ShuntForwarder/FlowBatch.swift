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
    /// The missing flows, by their first frame (an index into the arrays above), in arrival order.
    let missedFlows: UnsafeMutablePointer<Int>
    /// Per frame: the next frame of the same missing flow, or -1 (a chain from `missedFlows`).
    let nextOfFlow: UnsafeMutablePointer<Int>
    /// Per missing flow's first frame: the last frame of its chain so far.
    private let lastOfFlow: UnsafeMutablePointer<Int>
    /// Open addressing by key hash over the missing flows' first frames (-1: empty); twice the
    /// burst, so a probe ends quickly.
    private let flowTable: UnsafeMutablePointer<Int>
    private let flowTableMask: Int
    /// Per missing flow: its entry in `flowTable`, to empty after the burst.
    private let tableSlotOfFlow: UnsafeMutablePointer<Int>
    private(set) var count = 0
    private(set) var missedFlowCount = 0

    init(capacity: Int = maxBurst) {
        self.capacity = capacity
        packets = .allocate(capacity: capacity)
        keys = .allocate(capacity: capacity)
        keys.initialize(repeating: FlowKey(), count: capacity)
        hashes = .allocate(capacity: capacity)
        inPorts = .allocate(capacity: capacity)
        installable = .allocate(capacity: capacity)
        missedFlows = .allocate(capacity: capacity)
        nextOfFlow = .allocate(capacity: capacity)
        lastOfFlow = .allocate(capacity: capacity)
        var tableSize = 1
        while tableSize < capacity * 2 { tableSize <<= 1 }
        flowTableMask = tableSize - 1
        flowTable = .allocate(capacity: tableSize)
        flowTable.initialize(repeating: -1, count: tableSize)
        tableSlotOfFlow = .allocate(capacity: capacity)
    }

    deinit {
        packets.deallocate()
        keys.deallocate()
        hashes.deallocate()
        inPorts.deallocate()
        installable.deallocate()
        missedFlows.deallocate()
        nextOfFlow.deallocate()
        lastOfFlow.deallocate()
        flowTable.deallocate()
        tableSlotOfFlow.deallocate()
    }

    @inline(__always)
    func append(_ packet: PacketDescriptor, inPort: Int, key: FlowKey, installable canInstall: Bool) {
        let i = count
        assert(i < capacity, "a burst stages at most one frame per frame received")
        (packets + i).initialize(to: packet)
        keys[i] = key
        hashes[i] = key.hash64
        inPorts[i] = inPort
        installable[i] = canInstall
        count = i + 1
    }

    /// Records a cache miss of frame `i`: a new missing flow, or the next frame of one.
    @inline(__always)
    func addMiss(_ i: Int) {
        nextOfFlow[i] = -1
        var probe = Int(truncatingIfNeeded: hashes[i]) & flowTableMask
        while true {
            let first = flowTable[probe]
            if first < 0 {
                flowTable[probe] = i
                lastOfFlow[i] = i
                tableSlotOfFlow[missedFlowCount] = probe
                missedFlows[missedFlowCount] = i
                missedFlowCount += 1
                return
            }
            if hashes[first] == hashes[i] && keys[first] == keys[i] {
                nextOfFlow[lastOfFlow[first]] = i
                lastOfFlow[first] = i
                return
            }
            probe = (probe + 1) & flowTableMask
        }
    }

    @inline(__always)
    func removeAll() {
        for f in 0..<missedFlowCount { flowTable[tableSlotOfFlow[f]] = -1 }
        count = 0
        missedFlowCount = 0
    }
}
