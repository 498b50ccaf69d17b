import CShunt
import Glibc
import ShuntBPF
import ShuntCore

/// A flow cache map in memory, with the kernel map's contract (ENOENT is nil / false, a full
/// map refuses new keys) and failures a test can switch on.
final class FakeFlowCacheMap: FlowCacheMap {
    var entries: [FlowKey: shunt_cache_entry] = [:]
    var capacity = Int.max
    /// While set, the operation fails with this errno.
    var lookupError: Int32?
    var removeError: Int32?
    var installError: Int32?
    var walkFails = false
    private(set) var mirrorGroups: [UInt32: [UInt32]] = [:]

    func install(key: FlowKey, entry: shunt_cache_entry) throws(BPFError) {
        if let e = installError { throw .libbpf(step: "fake install", errno: e) }
        if entries[key] == nil && entries.count >= capacity { throw .cacheFull(maxEntries: UInt32(capacity)) }
        entries[key] = entry
    }

    func remove(key: FlowKey) throws(BPFError) -> Bool {
        if let e = removeError { throw .libbpf(step: "fake remove", errno: e) }
        return entries.removeValue(forKey: key) != nil
    }

    func lookup(key: FlowKey) throws(BPFError) -> shunt_cache_entry? {
        if let e = lookupError { throw .libbpf(step: "fake lookup", errno: e) }
        return entries[key]
    }

    func forEachEntry(_ body: (FlowKey, shunt_cache_entry) throws -> Void) throws {
        if walkFails { throw BPFError.libbpf(step: "fake walk", errno: EIO) }
        for (k, v) in entries { try body(k, v) }
    }

    func setMirrorGroup(_ group: UInt32, ports: [UInt32]) throws(BPFError) { mirrorGroups[group] = ports }

    /// What the kernel program does on a hit: counts and stamps the entry.
    func hit(_ key: FlowKey, packets: UInt64 = 1, bytes: UInt64 = 100, nowNs: UInt64) {
        guard var e = entries[key] else { return }
        e.packets &+= packets
        e.bytes &+= bytes
        e.last_used_ns = nowNs
        entries[key] = e
    }
}
