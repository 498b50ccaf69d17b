import CLibbpf
import Glibc

/// Reads and writes BPF map elements by file descriptor.
public enum BPFMap {
    /// Sums a per-CPU array element of `T` across CPUs with `combine`.
    public static func lookupPerCPU<T>(fd: Int32, key: UInt32, as: T.Type) throws -> [T] {
        let cpus = Int(libbpf_num_possible_cpus())
        let stride = (MemoryLayout<T>.size + 7) & ~7
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: stride * cpus, alignment: 8)
        defer { buffer.deallocate() }
        var k = key
        let rc = bpf_map_lookup_elem(fd, &k, buffer)
        if rc != 0 { throw BPFError.libbpf(step: "bpf_map_lookup_elem", errno: errno) }
        return (0..<cpus).map { buffer.load(fromByteOffset: $0 * stride, as: T.self) }
    }

    public static func lookup<T>(fd: Int32, key: UInt32, as: T.Type) throws -> T {
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: MemoryLayout<T>.size, alignment: 8)
        defer { buffer.deallocate() }
        var k = key
        let rc = bpf_map_lookup_elem(fd, &k, buffer)
        if rc != 0 { throw BPFError.libbpf(step: "bpf_map_lookup_elem", errno: errno) }
        return buffer.load(as: T.self)
    }
}

extension BPFMap {
    /// Writes element `key` of a (non-per-CPU) map.
    public static func update<T>(fd: Int32, key: UInt32, value: T) throws {
        var k = key
        let rc = withUnsafeBytes(of: value) { bytes in
            bpf_map_update_elem(fd, &k, bytes.baseAddress, UInt64(BPF_ANY))
        }
        if rc != 0 { throw BPFError.libbpf(step: "bpf_map_update_elem", errno: errno) }
    }
}
