import CShunt
import Glibc

/// An owned AF_PACKET socket. Closed when the owner goes away.
public struct PacketSocket: ~Copyable {
    public let fd: Int32

    /// Opens a raw packet socket that receives nothing until it is bound.
    public init() throws(SystemError) {
        // Protocol 0: no frames are queued before the rings exist and the socket is bound.
        fd = try Sys.socket(domain: AF_PACKET, type: Int32(SOCK_RAW.rawValue), protocol: 0)
    }

    deinit { Sys.close(fd) }
}

/// An owned datagram socket used only for interface ioctls (ethtool, SIOCGIF*). It acts on the
/// interfaces of the network namespace it was created in, whatever thread later uses it.
public struct InterfaceControlSocket: ~Copyable {
    public let fd: Int32

    public init() throws(SystemError) {
        let type = Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
        fd = try Sys.socket(domain: AF_INET, type: type, protocol: 0)
    }

    deinit { Sys.close(fd) }
}

/// An owned shared mapping of ring memory. Unmapped when the owner goes away.
public struct MappedRegion: ~Copyable {
    @usableFromInline let base: UnsafeMutableRawPointer
    public let length: Int

    public init(fd: Int32, length: Int) throws(SystemError) {
        base = try Sys.mmapShared(fd: fd, length: length)
        self.length = length
    }

    /// Private memory laid out as ring memory, for rings no kernel writes (benchmarks).
    public init(anonymousLength length: Int) throws(SystemError) {
        base = try Sys.mmapAnonymous(length: length)
        self.length = length
    }

    /// Lends the mapped bytes. Do not let the pointer escape the closure.
    @inlinable
    public func withUnsafeMutableBytes<R>(_ body: (UnsafeMutableRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeMutableRawBufferPointer(start: base, count: length))
    }

    deinit { Sys.munmap(base, length: length) }
}

/// Linux capabilities Shunt needs, read from /proc/self/status (uid 0 is not enough by itself).
public struct Capabilities: Sendable {
    public static let netAdmin = 12
    public static let netRaw = 13
    public static let sysAdmin = 21
    public static let bpf = 39

    public let effective: UInt64

    public static func current() -> Capabilities {
        Capabilities(effective: Sys.effectiveCapabilities() ?? 0)
    }

    public func has(_ cap: Int) -> Bool { effective & (1 << UInt64(cap)) != 0 }
}

/// A started thread running one closure. `join()` waits for it.
public final class WorkerThread: @unchecked Sendable {
    private var handle = pthread_t()
    private let body: () -> Void
    private let name: String

    public init(name: String, _ body: @escaping () -> Void) throws(SystemError) {
        self.body = body
        self.name = String(name.prefix(15))
        let unmanaged = Unmanaged.passRetained(self)
        let rc = pthread_create(&handle, nil, { arg in
            let thread = Unmanaged<WorkerThread>.fromOpaque(arg!).takeRetainedValue()
            _ = cshunt_set_thread_name(thread.name)
            thread.body()
            return nil
        }, unmanaged.toOpaque())
        if rc != 0 {
            unmanaged.release()
            throw SystemError(errno: rc, call: "pthread_create")
        }
    }

    public func join() { pthread_join(handle, nil) }

    /// Sends `signal` to this thread (pthread_kill); with `Sys.installInterruptHandler` it breaks
    /// the thread out of a blocking system call. Only before `join()`.
    public func interrupt(signal: Int32) { _ = pthread_kill(handle, signal) }
}

/// A network namespace by name (`ip netns add NAME` keeps it at /run/netns/NAME).
public enum NetworkNamespace {
    /// Runs `body` with only the calling thread switched into the namespace, then switches back.
    /// Sockets created inside stay in that namespace after the switch back.
    public static func run<R>(in name: String, _ body: () throws -> R) throws -> R {
        let target = try Sys.open("/run/netns/\(name)", flags: O_RDONLY | O_CLOEXEC)
        defer { Sys.close(target) }
        let original = try Sys.open("/proc/thread-self/ns/net", flags: O_RDONLY | O_CLOEXEC)
        defer { Sys.close(original) }
        try Sys.enterNetworkNamespace(fd: target)
        defer { try? Sys.enterNetworkNamespace(fd: original) }
        return try body()
    }
}
