import CShunt
import Glibc

/// The one syscall gateway: every libc call Shunt makes goes through here.
///
/// Each wrapper is `@inline(never)` so that no retain or release runs between the call and
/// the read of `errno`. `EINTR` is retried; `EAGAIN` becomes `.wouldBlock` where the caller
/// asked for non-blocking behaviour; `EBADF` and `EFAULT` mean a bug in Shunt and trap.
public enum Sys {
    @inline(__always)
    static func check(_ rc: Int32, _ call: StaticString) throws(SystemError) -> Int32 {
        if rc >= 0 { return rc }
        let err = Glibc.errno
        precondition(err != EBADF && err != EFAULT, "\(call) failed with \(err): a Shunt bug")
        throw SystemError(errno: err, call: "\(call)")
    }

    @inline(never)
    static func retrying(_ call: StaticString, _ body: () -> Int32) throws(SystemError) -> Int32 {
        while true {
            let rc = body()
            if rc >= 0 { return rc }
            if Glibc.errno == EINTR { continue }
            return try check(rc, call)
        }
    }

    // MARK: descriptors

    @inline(never)
    public static func socket(domain: Int32, type: Int32, protocol proto: Int32) throws(SystemError) -> Int32 {
        try check(Glibc.socket(domain, type, proto), "socket")
    }

    @inline(never)
    public static func close(_ fd: Int32) {
        // EINTR on close is not retried: the descriptor is gone either way on Linux.
        _ = Glibc.close(fd)
    }

    @inline(never)
    public static func open(_ path: String, flags: Int32) throws(SystemError) -> Int32 {
        try retrying("open") { Glibc.open(path, flags) }
    }

    /// Opens (creating with `mode` when `flags` has O_CREAT) a file.
    @inline(never)
    public static func open(_ path: String, flags: Int32, mode: mode_t) throws(SystemError) -> Int32 {
        try retrying("open") { Glibc.open(path, flags, mode) }
    }

    /// Writes all of `bytes` (a regular file: short writes only on EINTR or a full disk).
    @inline(never)
    public static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) throws(SystemError) {
        var done = 0
        while done < bytes.count {
            let n = try retrying("write") { Int32(Glibc.write(fd, bytes.baseAddress! + done, bytes.count - done)) }
            done += Int(n)
        }
    }

    // MARK: socket options

    @inline(never)
    public static func setsockopt<T>(_ fd: Int32, level: Int32, name: Int32, value: T) throws(SystemError) {
        var v = value
        let rc = withUnsafePointer(to: &v) {
            Glibc.setsockopt(fd, level, name, $0, socklen_t(MemoryLayout<T>.size))
        }
        _ = try check(rc, "setsockopt")
    }

    @inline(never)
    public static func getsockopt<T>(_ fd: Int32, level: Int32, name: Int32, into value: inout T) throws(SystemError) {
        var len = socklen_t(MemoryLayout<T>.size)
        let rc = withUnsafeMutablePointer(to: &value) { Glibc.getsockopt(fd, level, name, $0, &len) }
        _ = try check(rc, "getsockopt")
    }

    @inline(never)
    public static func bindPacket(_ fd: Int32, ifindex: Int32, protocol proto: UInt16) throws(SystemError) {
        var sll = sockaddr_ll()
        sll.sll_family = UInt16(AF_PACKET)
        sll.sll_protocol = proto.bigEndian
        sll.sll_ifindex = ifindex
        let rc = withUnsafePointer(to: &sll) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.bind(fd, $0, socklen_t(MemoryLayout<sockaddr_ll>.size))
            }
        }
        _ = try check(rc, "bind")
    }

    // MARK: memory maps

    @inline(never)
    public static func mmapShared(fd: Int32, length: Int) throws(SystemError) -> UnsafeMutableRawPointer {
        let p = Glibc.mmap(nil, length, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0)
        if p == MAP_FAILED || p == nil { throw SystemError(errno: Glibc.errno, call: "mmap") }
        return p!
    }

    /// Maps `length` bytes of `fd` at the kernel-defined `offset` (AF_XDP rings: each ring is
    /// selected by its page offset, XDP_PGOFF_TX_RING and the like).
    @inline(never)
    public static func mmapShared(fd: Int32, length: Int, offset: Int64) throws(SystemError) -> UnsafeMutableRawPointer {
        let p = Glibc.mmap(nil, length, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, off_t(offset))
        if p == MAP_FAILED || p == nil { throw SystemError(errno: Glibc.errno, call: "mmap") }
        return p!
    }

    /// Page-aligned private memory, populated (an AF_XDP UMEM).
    @inline(never)
    public static func mmapAnonymous(length: Int) throws(SystemError) -> UnsafeMutableRawPointer {
        let p = Glibc.mmap(nil, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0)
        if p == MAP_FAILED || p == nil { throw SystemError(errno: Glibc.errno, call: "mmap") }
        return p!
    }

    @inline(never)
    public static func munmap(_ p: UnsafeMutableRawPointer, length: Int) {
        _ = Glibc.munmap(p, length)
    }

    // MARK: data path

    /// Asks the kernel to transmit every TX ring frame marked SEND_REQUEST. One call per batch.
    @inline(never)
    public static func kickTransmit(_ fd: Int32) throws(SystemError) -> IOResult<Int> {
        while true {
            let rc = Glibc.send(fd, nil, 0, Int32(MSG_DONTWAIT))
            if rc >= 0 { return .processed(rc) }
            switch Glibc.errno {
            case EINTR: continue
            case EAGAIN, ENOBUFS: return .wouldBlock
            default: _ = try check(Int32(rc), "send")
            }
        }
    }

    /// Binds an AF_XDP socket to one queue of an interface. `flags`: XDP_COPY, XDP_ZEROCOPY,
    /// XDP_USE_NEED_WAKEUP.
    @inline(never)
    public static func bindXDP(_ fd: Int32, ifindex: Int32, queue: UInt32, flags: UInt16) throws(SystemError) {
        var sxdp = sockaddr_xdp()
        sxdp.sxdp_family = UInt16(AF_XDP)
        sxdp.sxdp_flags = flags
        sxdp.sxdp_ifindex = UInt32(bitPattern: ifindex)
        sxdp.sxdp_queue_id = queue
        let rc = withUnsafePointer(to: &sxdp) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.bind(fd, $0, socklen_t(MemoryLayout<sockaddr_xdp>.size))
            }
        }
        _ = try check(rc, "bind")
    }

    /// Wakes an AF_XDP socket's transmit path (copy mode sends only from this call). The kernel
    /// answers EAGAIN, EBUSY or ENOBUFS when it could not take everything now: `.wouldBlock`.
    @inline(never)
    public static func kickXDPTransmit(_ fd: Int32) throws(SystemError) -> IOResult<Int> {
        while true {
            let rc = Glibc.sendto(fd, nil, 0, Int32(MSG_DONTWAIT), nil, 0)
            if rc >= 0 { return .processed(rc) }
            switch Glibc.errno {
            case EINTR: continue
            case EAGAIN, EBUSY, ENOBUFS: return .wouldBlock
            default: _ = try check(Int32(rc), "sendto")
            }
        }
    }

    /// Waits for any descriptor to become readable; returns how many are (0 on timeout or signal).
    @inline(never)
    public static func poll(_ fds: UnsafeMutablePointer<pollfd>, count: Int, timeoutMs: Int32) throws(SystemError) -> Int {
        let rc = Glibc.poll(fds, nfds_t(count), timeoutMs)
        if rc < 0 && Glibc.errno == EINTR { return 0 }
        return Int(try check(rc, "poll"))
    }

    @inline(never)
    public static func sendFrame(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) throws(SystemError) -> Int {
        Int(try retrying("send") { Int32(Glibc.send(fd, bytes.baseAddress, bytes.count, 0)) })
    }

    // MARK: UNIX stream sockets (the control channel)

    /// Two connected sockets (socketpair(2)), close-on-exec. The control server uses one as a
    /// wake-up line: shutting down the write side of one end makes the other end readable for good.
    @inline(never)
    public static func socketPair(domain: Int32, type: Int32) throws(SystemError) -> (Int32, Int32) {
        var fds: (Int32, Int32) = (-1, -1)
        let rc = withUnsafeMutablePointer(to: &fds) {
            $0.withMemoryRebound(to: Int32.self, capacity: 2) { Glibc.socketpair(domain, type | Int32(SOCK_CLOEXEC.rawValue), 0, $0) }
        }
        _ = try check(rc, "socketpair")
        return fds
    }

    /// Binds an AF_UNIX socket to a file system path (at most `unixPathCapacity - 1` bytes, no
    /// NUL; otherwise ENAMETOOLONG).
    @inline(never)
    public static func bindUnix(_ fd: Int32, path: String) throws(SystemError) {
        guard var addr = unixAddress(path) else { throw SystemError(errno: ENAMETOOLONG, call: "bind") }
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        _ = try check(rc, "bind")
    }

    /// Connects an AF_UNIX stream socket to a path. Blocking: waits at most SO_SNDTIMEO when
    /// the listener's backlog is full, then fails with EAGAIN. EINTR is not retried.
    @inline(never)
    public static func connectUnix(_ fd: Int32, path: String) throws(SystemError) {
        guard var addr = unixAddress(path) else { throw SystemError(errno: ENAMETOOLONG, call: "connect") }
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        _ = try check(rc, "connect")
    }

    /// The size of `sockaddr_un.sun_path`: a path must be shorter (it is stored NUL-terminated).
    public static let unixPathCapacity = MemoryLayout.size(ofValue: sockaddr_un().sun_path)

    private static func unixAddress(_ path: String) -> sockaddr_un? {
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard !bytes.isEmpty, bytes.count < unixPathCapacity, !bytes.contains(0) else { return nil }
        withUnsafeMutableBytes(of: &addr.sun_path) { dst in
            dst.copyBytes(from: bytes)
        }
        return addr
    }

    // MARK: TCP (the metrics endpoint)

    /// Binds an AF_INET socket to `address` (host order; 0 for any) and `port` (0: the kernel
    /// picks one, see `boundInetPort`), with SO_REUSEADDR so a restart can take the port at once.
    @inline(never)
    public static func bindInet(_ fd: Int32, address: UInt32, port: UInt16) throws(SystemError) {
        try setsockopt(fd, level: SOL_SOCKET, name: SO_REUSEADDR, value: Int32(1))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = port.bigEndian
        addr.sin_addr.s_addr = address.bigEndian
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        _ = try check(rc, "bind")
    }

    /// The port an AF_INET socket is bound to (getsockname).
    @inline(never)
    public static func boundInetPort(_ fd: Int32) throws(SystemError) -> UInt16 {
        var addr = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let rc = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.getsockname(fd, $0, &length) }
        }
        _ = try check(rc, "getsockname")
        return UInt16(bigEndian: addr.sin_port)
    }

    @inline(never)
    public static func listen(_ fd: Int32, backlog: Int32) throws(SystemError) {
        _ = try check(Glibc.listen(fd, backlog), "listen")
    }

    /// Accepts one connection (accept4, close-on-exec); `.wouldBlock` when the listening socket is
    /// non-blocking and nobody is waiting (any more).
    @inline(never)
    public static func accept(_ fd: Int32) throws(SystemError) -> IOResult<Int32> {
        while true {
            let rc = cshunt_accept_cloexec(fd)
            if rc >= 0 { return .processed(rc) }
            switch Glibc.errno {
            case EINTR, ECONNABORTED: continue
            case EAGAIN: return .wouldBlock
            default: _ = try check(rc, "accept4")
            }
        }
    }

    /// Receives whatever bytes are ready on a stream socket without blocking (0: end of stream).
    @inline(never)
    public static func receive(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer) throws(SystemError) -> IOResult<Int> {
        while true {
            let rc = Glibc.recv(fd, buffer.baseAddress, buffer.count, Int32(MSG_DONTWAIT))
            if rc >= 0 { return .processed(rc) }
            switch Glibc.errno {
            case EINTR: continue
            case EAGAIN: return .wouldBlock
            default: _ = try check(Int32(rc), "recv")
            }
        }
    }

    /// sendmmsg(2), non-blocking: how many of `count` messages from `messages` the kernel took
    /// (each copied into its own skb), or `.wouldBlock` when the socket's send buffer is full.
    @inline(__always)
    public static func sendMessages(_ fd: Int32, _ messages: UnsafeMutablePointer<cshunt_mmsghdr>, count: Int) throws(SystemError) -> IOResult<Int> {
        while true {
            let rc = cshunt_sendmmsg(fd, messages, UInt32(count), Int32(MSG_DONTWAIT))
            if rc >= 0 { return .processed(Int(rc)) }
            switch Glibc.errno {
            case EINTR: continue
            case EAGAIN, ENOBUFS: return .wouldBlock
            default: _ = try check(rc, "sendmmsg")
            }
        }
    }

    /// Sends as many bytes as the socket takes now without blocking, and without SIGPIPE when the
    /// peer has gone (that is EPIPE instead).
    @inline(never)
    public static func send(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) throws(SystemError) -> IOResult<Int> {
        while true {
            let rc = Glibc.send(fd, bytes.baseAddress, bytes.count, Int32(MSG_DONTWAIT) | Int32(MSG_NOSIGNAL))
            if rc >= 0 { return .processed(rc) }
            switch Glibc.errno {
            case EINTR: continue
            case EAGAIN: return .wouldBlock
            default: _ = try check(Int32(rc), "send")
            }
        }
    }

    /// shutdown(2): `SHUT_RD`, `SHUT_WR` or `SHUT_RDWR`.
    @inline(never)
    public static func shutdown(_ fd: Int32, how: Int32) throws(SystemError) {
        _ = try check(Glibc.shutdown(fd, how), "shutdown")
    }

    /// The pid of the process on the other end of a connected AF_UNIX socket (SO_PEERCRED): for
    /// a client, the process that called listen(). Nil if the kernel does not say.
    @inline(never)
    public static func peerProcessID(_ fd: Int32) -> Int32? {
        var pid: Int32 = 0
        return cshunt_peer_pid(fd, &pid) == 0 && pid > 0 ? pid : nil
    }

    // MARK: files

    /// lstat(2) of `path`: what kind of file it is and which inode (ENOENT when there is none).
    @inline(never)
    public static func fileStatus(_ path: String) throws(SystemError) -> FileStatus {
        var st = stat()
        _ = try check(Glibc.lstat(path, &st), "lstat")
        return FileStatus(mode: st.st_mode, device: UInt64(st.st_dev), inode: UInt64(st.st_ino))
    }

    @inline(never)
    public static func mkdir(_ path: String, mode: mode_t) throws(SystemError) {
        _ = try check(Glibc.mkdir(path, mode), "mkdir")
    }

    @inline(never)
    public static func chmod(_ path: String, mode: mode_t) throws(SystemError) {
        _ = try retrying("chmod") { Glibc.chmod(path, mode) }
    }

    @inline(never)
    public static func unlink(_ path: String) throws(SystemError) {
        _ = try check(Glibc.unlink(path), "unlink")
    }

    // MARK: resource limits

    /// Which soft limit `softLimit` reads.
    public enum Limit: Sendable { case openFiles, addressSpace }

    /// The process's soft limit (getrlimit): nil when unlimited or unreadable.
    @inline(never)
    public static func softLimit(_ which: Limit) -> UInt64? {
        var r = rlimit()
        let resource = switch which {
        case .openFiles: __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
        case .addressSpace: __rlimit_resource_t(RLIMIT_AS.rawValue)
        }
        // RLIM_INFINITY is all ones (its C macro does not import).
        guard getrlimit(resource, &r) == 0, r.rlim_cur != rlim_t.max else { return nil }
        return UInt64(r.rlim_cur)
    }

    // MARK: interfaces

    @inline(never)
    public static func interfaceIndex(_ name: String) -> Int32? {
        let idx = if_nametoindex(name)
        return idx == 0 ? nil : Int32(idx)
    }

    @inline(never)
    public static func interfaceMTU(_ name: String, using sock: Int32) throws(SystemError) -> Int {
        var mtu: Int32 = 0
        _ = try check(cshunt_if_mtu(sock, name, &mtu), "ioctl(SIOCGIFMTU)")
        return Int(mtu)
    }

    /// The interface's hardware address (six bytes, first octet first, in the low 48 bits).
    @inline(never)
    public static func interfaceHardwareAddress(_ name: String, using sock: Int32) throws(SystemError) -> UInt64 {
        var bytes: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) = (0, 0, 0, 0, 0, 0)
        _ = try withUnsafeMutableBytes(of: &bytes) { (raw) throws(SystemError) -> Int32 in
            try check(cshunt_if_hwaddr(sock, name, raw.baseAddress!.assumingMemoryBound(to: UInt8.self)), "ioctl(SIOCGIFHWADDR)")
        }
        return withUnsafeBytes(of: bytes) { $0.reduce(UInt64(0)) { $0 << 8 | UInt64($1) } }
    }

    @inline(never)
    public static func interfaceFlags(_ name: String, using sock: Int32) throws(SystemError) -> Int32 {
        var flags: Int32 = 0
        _ = try check(cshunt_if_flags(sock, name, &flags), "ioctl(SIOCGIFFLAGS)")
        return flags
    }

    /// Reads one `struct ethtool_value` setting (`command` is e.g. `ETHTOOL_GGRO`) of the
    /// interface `name` in the network namespace `sock` was created in.
    @inline(never)
    public static func ethtoolValue(
        _ command: UInt32, interface name: String, using sock: Int32
    ) throws(SystemError) -> UInt32 {
        var value: UInt32 = 0
        _ = try check(cshunt_ethtool_get_value(sock, name, command, &value), "ioctl(SIOCETHTOOL)")
        return value
    }

    /// Writes one `struct ethtool_value` setting (`command` is e.g. `ETHTOOL_SGRO`).
    @inline(never)
    public static func setEthtoolValue(
        _ command: UInt32, _ value: UInt32, interface name: String, using sock: Int32
    ) throws(SystemError) {
        _ = try check(cshunt_ethtool_set_value(sock, name, command, value), "ioctl(SIOCETHTOOL)")
    }

    // MARK: netlink

    /// Binds a netlink socket to a port id the kernel chooses, with no multicast groups.
    @inline(never)
    public static func bindNetlink(_ fd: Int32, groups: UInt32 = 0) throws(SystemError) {
        var address = sockaddr_nl()
        address.nl_family = sa_family_t(AF_NETLINK)
        address.nl_groups = groups
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.bind(fd, $0, socklen_t(MemoryLayout<sockaddr_nl>.size))
            }
        }
        _ = try check(rc, "bind(netlink)")
    }

    /// Sends one netlink datagram to the kernel (the socket's default destination).
    @inline(never)
    public static func sendNetlink(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) throws(SystemError) {
        let sent = try retrying("send(netlink)") { Int32(Glibc.send(fd, bytes.baseAddress, bytes.count, 0)) }
        if Int(sent) != bytes.count { throw SystemError(errno: EMSGSIZE, call: "send(netlink)") }
    }

    /// Receives one netlink datagram and returns its full length, which is larger than
    /// `buffer.count` if it did not fit (MSG_TRUNC). Blocks up to the socket's SO_RCVTIMEO;
    /// running out of time throws EAGAIN.
    @inline(never)
    public static func receiveNetlink(
        _ fd: Int32, into buffer: UnsafeMutableRawBufferPointer, wait: Bool = true
    ) throws(SystemError) -> Int {
        let flags = Int32(MSG_TRUNC) | (wait ? 0 : Int32(MSG_DONTWAIT))
        return Int(try retrying("recv(netlink)") { Int32(Glibc.recv(fd, buffer.baseAddress, buffer.count, flags)) })
    }

    // MARK: files

    /// The names in a directory, without "." and "..".
    @inline(never)
    public static func directoryEntries(_ path: String) throws(SystemError) -> [String] {
        guard let dir = opendir(path) else { throw SystemError(errno: Glibc.errno, call: "opendir") }
        defer { closedir(dir) }
        var names: [String] = []
        while true {
            Glibc.errno = 0
            guard let entry = readdir(dir) else {
                if Glibc.errno != 0 { throw SystemError(errno: Glibc.errno, call: "readdir") }
                return names
            }
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
    }

    // MARK: namespaces, threads, signals, time

    @inline(never)
    public static func enterNetworkNamespace(fd: Int32) throws(SystemError) {
        _ = try check(cshunt_setns_net(fd), "setns")
    }

    @inline(never)
    public static func monotonicNanoseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    /// Wall-clock time (CLOCK_REALTIME), for capture file timestamps.
    @inline(never)
    public static func realtimeNanoseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    /// Reads a whole file (nil: standard input).
    public static func readWholeFile(_ path: String?) throws(SystemError) -> [UInt8] {
        let fd = try path.map { (p) throws(SystemError) -> Int32 in try open(p, flags: O_RDONLY | O_CLOEXEC) } ?? 0
        defer { if path != nil { close(fd) } }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = try retrying("read") { Int32(chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }) }
            if n == 0 { break }
            bytes.append(contentsOf: chunk[0..<Int(n)])
        }
        return bytes
    }

    /// Sleeps the calling thread (interrupted sleeps are not resumed: callers loop anyway).
    @inline(never)
    public static func sleep(nanoseconds ns: UInt64) {
        var ts = timespec(tv_sec: Int(ns / 1_000_000_000), tv_nsec: Int(ns % 1_000_000_000))
        nanosleep(&ts, nil)
    }

    /// Makes `signal` (e.g. SIGUSR1) do nothing but interrupt the system call the receiving
    /// thread is blocked in, which then fails with EINTR. See `WorkerThread.interrupt`.
    ///
    /// Also unblocks `signal` in the calling thread, and so in the threads it creates afterwards:
    /// the signal mask survives exec, and a parent may start shunt with it blocked (Swift
    /// Testing's worker threads block most signals), which would leave the signal pending and
    /// the system call uninterrupted.
    @inline(never)
    public static func installInterruptHandler(signal: Int32) throws(SystemError) {
        _ = try check(cshunt_install_interrupt_handler(signal), "sigaction")
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, signal)
        let rc = pthread_sigmask(SIG_UNBLOCK, &set, nil)
        if rc != 0 { throw SystemError(errno: rc, call: "pthread_sigmask") }
    }

    /// Blocks SIGINT and SIGTERM in the calling thread (and every thread it creates later).
    @inline(never)
    public static func blockTerminationSignals() {
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGINT)
        sigaddset(&set, SIGTERM)
        pthread_sigmask(SIG_BLOCK, &set, nil)
    }

    /// Waits up to `timeoutNs` for SIGINT or SIGTERM (which must be blocked); returns the signal or nil.
    @inline(never)
    public static func waitForTerminationSignal(timeoutNs: UInt64) -> Int32? {
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGINT)
        sigaddset(&set, SIGTERM)
        var ts = timespec(tv_sec: Int(timeoutNs / 1_000_000_000), tv_nsec: Int(timeoutNs % 1_000_000_000))
        let rc = sigtimedwait(&set, nil, &ts)
        return rc > 0 ? rc : nil
    }

    /// This process's ID.
    @inline(never)
    public static func processID() -> pid_t { getpid() }

    /// The effective user ID (0: root).
    @inline(never)
    public static func effectiveUserID() -> uid_t { geteuid() }

    /// `name` as the shell would find it: a path with a slash as it is, else the first
    /// executable file of that name on $PATH (default /usr/sbin:/usr/bin:/sbin:/bin); nil if none.
    public static func findExecutable(_ name: String) -> String? {
        if name.contains("/") { return access(name, X_OK) == 0 ? name : nil }
        let path = getenv("PATH").map { String(cString: $0) } ?? "/usr/sbin:/usr/bin:/sbin:/bin"
        for dir in path.split(separator: ":") where !dir.isEmpty {
            let candidate = "\(dir)/\(name)"
            if access(candidate, X_OK) == 0 { return candidate }
        }
        return nil
    }

    /// The CPUs online now (`sysconf(_SC_NPROCESSORS_ONLN)`).
    @inline(never)
    public static func onlineCPUCount() -> Int { Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))) }

    @inline(never)
    public static func effectiveCapabilities() -> UInt64? {
        guard let f = fopen("/proc/self/status", "r") else { return nil }
        defer { fclose(f) }
        var line = [CChar](repeating: 0, count: 256)
        while fgets(&line, Int32(line.count), f) != nil {
            let s = String(decoding: line.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
            if s.hasPrefix("CapEff:") {
                return UInt64(s.dropFirst(7).trimmingCharacters(), radix: 16)
            }
        }
        return nil
    }
}

/// What `Sys.fileStatus` reports about a path (the path itself, not what a symlink points to).
public struct FileStatus: Equatable, Sendable {
    /// `st_mode`: the file type (S_IFMT bits) and the permission bits.
    public let mode: mode_t
    public let device: UInt64
    public let inode: UInt64

    public var isSocket: Bool { mode & S_IFMT == S_IFSOCK }
    public var isDirectory: Bool { mode & S_IFMT == S_IFDIR }
    /// The permission bits, e.g. 0o600.
    public var permissions: mode_t { mode & 0o7777 }
}

extension Substring {
    func trimmingCharacters() -> String {
        String(self.drop(while: { $0 == " " || $0 == "\t" }).prefix(while: { !$0.isWhitespace }))
    }
}
