import CLibbpf
import CShunt
import Glibc
import ShuntCore
import ShuntSystem

/// The kernel half of the flow cache: the loaded `xdp_flowcache` program and its maps.
///
/// The slow path installs an entry per exact key (`FlowKey`) it has handled; the program then
/// executes the entry's actions on later packets of that key in the kernel. The class owns the
/// BPF object; no pointer into its memory leaves it. Map operations are system calls: call them
/// from the control side, never per packet.
///
/// Maps (see BPF/include/maps.h): `flow_cache` (key → entry), `port_of_ifindex`
/// (ifindex → Shunt port), `tx_ports` (DEVMAP, Shunt port → device), `fastpath_stats`.
public final class FlowCacheProgram {
    public static let programName = "xdp_flowcache"
    public static let defaultMaxEntries: UInt32 = 65536

    /// The capacity of `flow_cache`.
    public let maxEntries: UInt32
    /// The program's descriptor, for attaching elsewhere or BPF_PROG_TEST_RUN.
    public let programFD: Int32

    private let object: BPFObject
    private let cacheFD: Int32
    private let portsFD: Int32
    private let portArrayFD: Int32
    private let txPortsFD: Int32
    private let statsFD: Int32
    /// VXLAN tunnel ports (TunnelMaps.swift).
    let tunnelPortsFD: Int32
    let tunnelEndpointsFD: Int32
    let underlayPortsFD: Int32
    /// Port mirroring: `mirror_group_1...SHUNT_MIRROR_GROUPS` (index 0 is group 1), `mirror_stats`.
    private let mirrorGroupFDs: [Int32]
    private let mirrorStatsFD: Int32
    /// What `setPort` gave each port, for filling mirror groups.
    private var ifindexOfPort: [UInt32: Int32] = [:]
    /// What each mirror group holds now (Shunt port numbers).
    private var mirrorGroupPorts: [[UInt32]] = Array(repeating: [], count: Int(SHUNT_MIRROR_GROUPS))

    private static let keySize = MemoryLayout<shunt_flow_key>.size
    private static let valueSize = MemoryLayout<shunt_cache_entry>.size

    /// Opens `xdp_flowcache`, sizes its cache to `maxEntries` and loads it into the kernel.
    /// The hash map is preallocated: about 300 bytes of kernel memory per entry.
    public init(maxEntries: UInt32 = FlowCacheProgram.defaultMaxEntries) throws {
        precondition(maxEntries > 0, "a flow cache needs room for at least one entry")
        self.maxEntries = maxEntries
        object = try BPFObject(embedded: Self.programName) { obj in
            try obj.setMaxEntries(maxEntries, of: "flow_cache")
        }
        programFD = try object.programFD(Self.programName)
        cacheFD = try object.mapFD("flow_cache")
        portsFD = try object.mapFD("port_of_ifindex")
        portArrayFD = try object.mapFD("port_by_ifindex")
        txPortsFD = try object.mapFD("tx_ports")
        statsFD = try object.mapFD("fastpath_stats")
        tunnelPortsFD = try object.mapFD("tunnel_ports")
        tunnelEndpointsFD = try object.mapFD("tunnel_endpoints")
        underlayPortsFD = try object.mapFD("underlay_ports")
        var groups: [Int32] = []
        for g in 1...Int(SHUNT_MIRROR_GROUPS) { groups.append(try object.mapFD("mirror_group_\(g)")) }
        mirrorGroupFDs = groups
        mirrorStatsFD = try object.mapFD("mirror_stats")
    }

    // MARK: Attaching and ports

    /// Attaches the program to the XDP hook of `ifindex` in native (driver) mode, or in generic
    /// mode when the driver has no native XDP (EOPNOTSUPP); the attachment's `mode` says which.
    /// Other failures (e.g. another program already attached: EBUSY / EEXIST) are thrown as they
    /// are. Detached when the attachment is released (or the process exits).
    public func attach(ifindex: Int32) throws -> XDPAttachment {
        do {
            return try object.attachXDP(program: Self.programName, ifindex: ifindex, mode: .native)
        } catch BPFError.libbpf(_, let e) where e == EOPNOTSUPP {
            return try object.attachXDP(program: Self.programName, ifindex: ifindex, mode: .generic)
        }
    }

    /// Makes `ifindex` Shunt port `number` (from 1 to SHUNT_MAX_PORTS): frames arriving on it
    /// get in_port = `number`, and OUTPUT to `number` redirects to it.
    public func setPort(number: UInt32, ifindex: Int32) throws {
        precondition(number >= 1 && number <= UInt32(SHUNT_MAX_PORTS), "Shunt ports are numbered 1...\(SHUNT_MAX_PORTS)")
        var key = UInt32(bitPattern: ifindex)
        var port = number
        if key < UInt32(SHUNT_PORT_ARRAY_SIZE) {
            try Self.check(bpf_map_update_elem(portArrayFD, &key, &port, UInt64(BPF_ANY)), "port_by_ifindex[\(ifindex)] = \(number)")
        } else {
            try Self.check(bpf_map_update_elem(portsFD, &key, &port, UInt64(BPF_ANY)), "port_of_ifindex[\(ifindex)] = \(number)")
        }
        // struct bpf_devmap_val: the ifindex, then the fd of a devmap egress program (none: -1).
        var value: (UInt32, Int32) = (UInt32(bitPattern: ifindex), -1)
        var n = number
        try Self.check(bpf_map_update_elem(txPortsFD, &n, &value, UInt64(BPF_ANY)), "tx_ports[\(number)] = ifindex \(ifindex)")
        ifindexOfPort[number] = ifindex
    }

    /// Undoes `setPort`: frames from `ifindex` count as not_a_port, outputs to `number` go up.
    public func removePort(number: UInt32, ifindex: Int32) throws {
        var key = UInt32(bitPattern: ifindex)
        if key < UInt32(SHUNT_PORT_ARRAY_SIZE) {
            var none: UInt32 = 0
            try Self.check(bpf_map_update_elem(portArrayFD, &key, &none, UInt64(BPF_ANY)), "port_by_ifindex[\(ifindex)] = 0")
        } else {
            try Self.checkDelete(bpf_map_delete_elem(portsFD, &key), "port_of_ifindex[\(ifindex)]")
        }
        var n = number
        try Self.checkDelete(bpf_map_delete_elem(txPortsFD, &n), "tx_ports[\(number)]")
    }

    // MARK: Port mirroring

    /// Makes mirror group `group` (1...SHUNT_MIRROR_GROUPS) broadcast to exactly `ports` (Shunt
    /// port numbers given to `setPort`). Call it only while no installed entry uses the group.
    public func setMirrorGroup(_ group: UInt32, ports: [UInt32]) throws(BPFError) {
        precondition(group >= 1 && group <= UInt32(SHUNT_MIRROR_GROUPS), "mirror groups are 1...\(SHUNT_MIRROR_GROUPS)")
        let fd = mirrorGroupFDs[Int(group) - 1]
        for old in mirrorGroupPorts[Int(group) - 1] where !ports.contains(old) {
            var k = old
            try Self.checkDelete(bpf_map_delete_elem(fd, &k), "mirror_group_\(group)[\(old)]")
        }
        mirrorGroupPorts[Int(group) - 1] = []
        for p in ports {
            guard let ifindex = ifindexOfPort[p] else { throw BPFError.libbpf(step: "mirror group port \(p)", errno: ENODEV) }
            var k = p
            var value: (UInt32, Int32) = (UInt32(bitPattern: ifindex), -1)
            try Self.check(bpf_map_update_elem(fd, &k, &value, UInt64(BPF_ANY)), "mirror_group_\(group)[\(p)] = ifindex \(ifindex)")
            mirrorGroupPorts[Int(group) - 1].append(p)
        }
    }

    /// The copies the fast path made for mirror session slot `slot`, summed over CPUs.
    public func mirrorCounters(slot: Int) throws -> shunt_mirror_counters {
        let perCPU = try BPFMap.lookupPerCPU(fd: mirrorStatsFD, key: UInt32(slot), as: shunt_mirror_counters.self)
        var t = shunt_mirror_counters()
        for c in perCPU {
            t.selected &+= c.selected
            t.selected_bytes &+= c.selected_bytes
            t.mirrored &+= c.mirrored
            t.mirrored_bytes &+= c.mirrored_bytes
        }
        return t
    }

    // MARK: Entries

    /// Installs (or replaces) the entry for `key`. Throws `BPFError.cacheFull` when the cache
    /// holds `maxEntries` other entries.
    public func install(key: FlowKey, entry: shunt_cache_entry) throws(BPFError) {
        var k = key.raw
        var v = entry
        let rc = bpf_map_update_elem(cacheFD, &k, &v, UInt64(BPF_ANY))
        if rc != 0 {
            let e = errno
            if e == E2BIG || e == ENOSPC { throw BPFError.cacheFull(maxEntries: maxEntries) }
            throw BPFError.libbpf(step: "installing a flow cache entry", errno: e)
        }
    }

    /// Removes the entry for `key`; false when there was none.
    @discardableResult
    public func remove(key: FlowKey) throws(BPFError) -> Bool {
        var k = key.raw
        if bpf_map_delete_elem(cacheFD, &k) == 0 { return true }
        let e = errno
        if e == ENOENT { return false }
        throw BPFError.libbpf(step: "removing a flow cache entry", errno: e)
    }

    /// The entry for `key`, counters as of now; nil when there is none.
    public func lookup(key: FlowKey) throws(BPFError) -> shunt_cache_entry? {
        var k = key.raw
        var v = shunt_cache_entry()
        if bpf_map_lookup_elem(cacheFD, &k, &v) == 0 { return v }
        let e = errno
        if e == ENOENT { return nil }
        throw BPFError.libbpf(step: "looking up a flow cache entry", errno: e)
    }

    /// Calls `body` for every entry, a chunk of entries at a time (BPF_MAP_LOOKUP_BATCH; on
    /// kernels without it, BPF_MAP_GET_NEXT_KEY). `body` may remove or replace entries,
    /// including the one it is given. An entry installed or removed by someone else during the
    /// walk may or may not be seen; no entry is seen twice.
    public func forEachEntry(_ body: (FlowKey, shunt_cache_entry) throws -> Void) throws {
        if try !forEachEntryBatched(body) {
            try forEachEntryByKey(body)
        }
    }

    /// `forEachEntry` as on kernels without BPF_MAP_LOOKUP_BATCH (for tests).
    func forEachEntryWithoutBatch(_ body: (FlowKey, shunt_cache_entry) throws -> Void) throws {
        try forEachEntryByKey(body)
    }

    /// The number of entries: a walk over the whole map (the kernel keeps no count we can read).
    public var count: Int {
        get throws {
            var n = 0
            try forEachEntry { _, _ in n += 1 }
            return n
        }
    }

    /// Removes every entry.
    public func removeAll() throws {
        try forEachEntry { key, _ in try remove(key: key) }
    }

    /// The fast path's counters, summed over CPUs.
    public func stats() throws -> shunt_fastpath_stats {
        let perCPU = try BPFMap.lookupPerCPU(fd: statsFD, key: 0, as: shunt_fastpath_stats.self)
        var total = shunt_fastpath_stats()
        // Every field is a __u64 counter: add them word by word.
        withUnsafeMutableBytes(of: &total) { t in
            for cpu in perCPU {
                withUnsafeBytes(of: cpu) { c in
                    for i in stride(from: 0, to: t.count, by: 8) {
                        let sum = t.load(fromByteOffset: i, as: UInt64.self) &+ c.load(fromByteOffset: i, as: UInt64.self)
                        t.storeBytes(of: sum, toByteOffset: i, as: UInt64.self)
                    }
                }
            }
        }
        return total
    }

    // MARK: Building entries

    /// Whether the kernel executes `actions` itself: none (a drop), or at most
    /// SHUNT_FLOW_MAX_ACTIONS with exactly one OUTPUT, last. Anything else the fast path passes
    /// up to the slow path (entries get SHUNT_CACHE_USERSPACE). An output to a port above
    /// `portLimit` (a tunnel port) is executable only if its bit is set in `tunnelPorts` (bit n
    /// for port n): the tunnels the fast path encapsulates for.
    public static func kernelCanExecute(_ actions: [DatapathAction], portLimit: UInt32 = .max,
                                        tunnelPorts: UInt64 = 0) -> Bool {
        if actions.isEmpty { return true }
        guard actions.count <= Int(SHUNT_FLOW_MAX_ACTIONS) else { return false }
        var outputs = 0
        for a in actions {
            switch a {
            case .output(let port):
                if port > portLimit && (port >= 64 || tunnelPorts & (1 << UInt64(port)) == 0) { return false }
                outputs += 1
            case .setEthSrc, .setEthDst, .setVLAN, .popVLAN, .decTTL, .setTunnel: break
            }
        }
        guard outputs == 1, case .output = actions.last! else { return false }
        return true
    }

    /// A cache entry for `actions` with zero counters and last_used_ns = `now` (the install time,
    /// CLOCK_MONOTONIC like bpf_ktime_get_ns). No actions means drop, counted under
    /// `dropReason`. When the kernel cannot execute `actions`, SHUNT_CACHE_USERSPACE is added to
    /// `flags`, and only the first SHUNT_FLOW_MAX_ACTIONS actions are stored: the slow path
    /// keeps the full list.
    public static func entry(
        actions: [DatapathAction],
        dropReason: DropReason = .flowDrop,
        flags: UInt32 = 0,
        now: UInt64 = Sys.monotonicNanoseconds(),
        portLimit: UInt32 = .max,
        tunnelPorts: UInt64 = 0,
        mirrorGroup: UInt32 = 0,
        mirrorSessions: UInt64 = 0
    ) -> shunt_cache_entry {
        var e = shunt_cache_entry()
        e.last_used_ns = now
        e.flags = flags
        e.mirror_group = mirrorGroup
        e.mirror_sessions = mirrorSessions
        if !kernelCanExecute(actions, portLimit: portLimit, tunnelPorts: tunnelPorts) { e.flags |= UInt32(SHUNT_CACHE_USERSPACE) }
        let stored = min(actions.count, Int(SHUNT_FLOW_MAX_ACTIONS))
        e.n_actions = UInt8(stored)
        if actions.isEmpty { e.drop_reason = dropReason.rawValue }
        withUnsafeMutableBytes(of: &e.actions) { slots in
            for i in 0..<stored {
                slots.storeBytes(of: actions[i].abi, toByteOffset: i * MemoryLayout<shunt_dp_action>.stride, as: shunt_dp_action.self)
            }
        }
        return e
    }

    /// The actions stored in `entry`, decoded (unknown kinds are skipped).
    public static func actions(of entry: shunt_cache_entry) -> [DatapathAction] {
        let n = min(Int(entry.n_actions), Int(SHUNT_FLOW_MAX_ACTIONS))
        return withUnsafeBytes(of: entry.actions) { slots in
            (0..<n).compactMap {
                DatapathAction(abi: slots.load(fromByteOffset: $0 * MemoryLayout<shunt_dp_action>.stride, as: shunt_dp_action.self))
            }
        }
    }

    // MARK: Private

    /// Returns false when the kernel has no batch lookup for hash maps (before Linux 5.6).
    private func forEachEntryBatched(_ body: (FlowKey, shunt_cache_entry) throws -> Void) throws -> Bool {
        var chunk = 256
        // The batch token is opaque (a bucket index for hash maps); a key's size is plenty.
        let inToken = UnsafeMutableRawPointer.allocate(byteCount: Self.keySize, alignment: 8)
        let outToken = UnsafeMutableRawPointer.allocate(byteCount: Self.keySize, alignment: 8)
        defer {
            inToken.deallocate()
            outToken.deallocate()
        }
        var keys = [shunt_flow_key](repeating: shunt_flow_key(), count: chunk)
        var values = [shunt_cache_entry](repeating: shunt_cache_entry(), count: chunk)
        var opts = bpf_map_batch_opts()
        opts.sz = MemoryLayout<bpf_map_batch_opts>.size
        var first = true
        while true {
            var n = UInt32(chunk)
            let rc = keys.withUnsafeMutableBytes { k in
                values.withUnsafeMutableBytes { v in
                    bpf_map_lookup_batch(cacheFD, first ? nil : inToken, outToken, k.baseAddress, v.baseAddress, &n, &opts)
                }
            }
            let e: Int32 = rc == 0 ? 0 : errno
            if e == ENOSPC && n == 0 {
                // One hash bucket holds more entries than a chunk: retry from the same place.
                chunk *= 2
                keys = [shunt_flow_key](repeating: shunt_flow_key(), count: chunk)
                values = [shunt_cache_entry](repeating: shunt_cache_entry(), count: chunk)
                continue
            }
            if first && (e == EINVAL || e == EOPNOTSUPP || e == 524 /* ENOTSUPP */) { return false }
            if e != 0 && e != ENOENT { throw BPFError.libbpf(step: "BPF_MAP_LOOKUP_BATCH on flow_cache", errno: e) }
            for i in 0..<Int(n) { try body(FlowKey(raw: keys[i]), values[i]) }
            if e == ENOENT { return true }  // past the last bucket
            inToken.copyMemory(from: outToken, byteCount: Self.keySize)
            first = false
        }
    }

    /// The fallback walk: collect the keys first (a key deleted under BPF_MAP_GET_NEXT_KEY makes
    /// the kernel start over, so repeats are skipped), then look each one up.
    private func forEachEntryByKey(_ body: (FlowKey, shunt_cache_entry) throws -> Void) throws {
        var seen = Set<FlowKey>()
        var order: [FlowKey] = []
        var current = shunt_flow_key()
        var next = shunt_flow_key()
        var hasCurrent = false
        // Each step either finds a new key or repeats one; bound the repeats.
        var steps = 0
        let maxSteps = 4 * Int(maxEntries) + 16
        while steps < maxSteps {
            steps += 1
            let rc = hasCurrent ? bpf_map_get_next_key(cacheFD, &current, &next) : bpf_map_get_next_key(cacheFD, nil, &next)
            if rc != 0 {
                let e = errno
                if e == ENOENT { break }
                throw BPFError.libbpf(step: "BPF_MAP_GET_NEXT_KEY on flow_cache", errno: e)
            }
            let key = FlowKey(raw: next)
            if seen.insert(key).inserted { order.append(key) }
            current = next
            hasCurrent = true
        }
        for key in order {
            if let value = try lookup(key: key) { try body(key, value) }
        }
    }

    /// `step` is built only after errno is read: building a string may change errno.
    private static func check(_ rc: Int32, _ step: @autoclosure () -> String) throws(BPFError) {
        guard rc != 0 else { return }
        let e = errno
        throw BPFError.libbpf(step: step(), errno: e)
    }

    private static func checkDelete(_ rc: Int32, _ step: @autoclosure () -> String) throws(BPFError) {
        guard rc != 0 else { return }
        let e = errno
        if e != ENOENT { throw BPFError.libbpf(step: "deleting \(step())", errno: e) }
    }
}

extension shunt_fastpath_stats {
    /// The packets dropped in the kernel for `reason`.
    public func dropCount(_ reason: DropReason) -> UInt64 {
        withUnsafeBytes(of: self.drops) { $0.load(fromByteOffset: Int(reason.rawValue) * 8, as: UInt64.self) }
    }
}

/// The flow cache map as the kernel datapath (Sources/ShuntForwarder/KernelDatapath.swift)
/// uses it: `FlowCacheProgram` in the forwarder, a dictionary in its unit tests. A lookup or
/// removal of a key that is not there is nil / false, never an error: any error is a real
/// failure the caller must count and retry.
public protocol FlowCacheMap: AnyObject {
    func install(key: FlowKey, entry: shunt_cache_entry) throws(BPFError)
    func remove(key: FlowKey) throws(BPFError) -> Bool
    func lookup(key: FlowKey) throws(BPFError) -> shunt_cache_entry?
    /// Every entry; `body` must not touch the map.
    func forEachEntry(_ body: (FlowKey, shunt_cache_entry) throws -> Void) throws
    func setMirrorGroup(_ group: UInt32, ports: [UInt32]) throws(BPFError)
}

extension FlowCacheProgram: FlowCacheMap {}
