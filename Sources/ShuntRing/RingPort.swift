import CShunt
import Glibc
import ShuntCore
import ShuntSystem
import Synchronization

/// How PACKET_FANOUT spreads a port's frames over the workers' sockets.
public enum FanoutMode: String, CaseIterable, Sendable {
    /// By flow hash (symmetric): a flow stays on one worker, so its order is kept.
    case hash
    /// Round robin: even spread, no flow order across workers.
    case lb
    /// By the CPU that received the frame (on a veth, the sender's CPU).
    case cpu
    /// By the skb queue mapping (multi-queue devices).
    case qm

    var kernelValue: UInt32 {
        switch self {
        case .hash: UInt32(PACKET_FANOUT_HASH)
        case .lb: UInt32(PACKET_FANOUT_LB)
        case .cpu: UInt32(PACKET_FANOUT_CPU)
        case .qm: UInt32(PACKET_FANOUT_QM)
        }
    }
}

/// What a port's socket is built with.
public struct RingPortConfig: Sendable {
    public var version: RingVersion
    public var rx: RingGeometry
    public var tx: RingGeometry
    /// PACKET_QDISC_BYPASS: frames go straight to the driver (faster; tc and other packet
    /// sockets on the port do not see them).
    public var qdiscBypass: Bool
    /// How frames are handed to the kernel: a TX ring, or sendmmsg from a staging area of the
    /// `tx` geometry.
    public var transmit: TransmitMethod

    public init(version: RingVersion = .v3, rx: RingGeometry? = nil, tx: RingGeometry? = nil, qdiscBypass: Bool = true,
                transmit: TransmitMethod = .ring) {
        self.version = version
        self.rx = rx ?? .defaultRX(version)
        self.tx = tx ?? .defaultTX
        self.qdiscBypass = qdiscBypass
        self.transmit = transmit
    }
}

/// A setup step that failed, said so that the user knows what to change.
public enum RingSetupError: Error, CustomStringConvertible {
    case noSuchInterface(String)
    case interfaceDown(String)
    case frameTooSmallForMTU(interface: String, mtu: Int, maxFrame: Int)
    case permission(String)
    case invalidGeometry(String, RingGeometry.Invalid)
    case system(step: String, interface: String, SystemError)
    /// socket() refused for want of file descriptors (EMFILE, ENFILE).
    case outOfFileDescriptors(interface: String, SystemError)
    /// mmap of the rings refused (ENOMEM: the address-space limit or the memory map count).
    case mappingRefused(interface: String, bytes: Int, SystemError)

    public var description: String {
        switch self {
        case .noSuchInterface(let n):
            "no interface named '\(n)' in this network namespace; check `ip link show` (inside a namespace: `ip netns exec NS shunt ...`)"
        case .interfaceDown(let n):
            "interface '\(n)' is down; bring it up with `ip link set \(n) up`"
        case .frameTooSmallForMTU(let n, let mtu, let maxFrame):
            "MTU \(mtu) of '\(n)' needs frames of \(TxRing.longestFrame(mtu: mtu)) bytes but the rings carry at most \(maxFrame); raise --frame-size (and --block-size) or lower the MTU with `ip link set \(n) mtu \(maxFrame - 18)`"
        case .permission(let what):
            "\(what) needs CAP_NET_RAW (and CAP_NET_ADMIN); run shunt as root, e.g. `sudo shunt ...`"
        case .invalidGeometry(let which, let why):
            "invalid \(which) ring: \(why)"
        case .system(let step, let n, let err):
            "setting up '\(n)' failed at \(step): \(err)"
        case .outOfFileDescriptors(let n, let err) where err.errno == ENFILE:
            "opening a socket for '\(n)' failed: \(err); the whole system is out of file descriptors: raise fs.file-max (`sysctl -w fs.file-max=N`) or close what holds them"
        case .outOfFileDescriptors(let n, let err):
            "opening a socket for '\(n)' failed: \(err); shunt needs a socket per port and worker (and a few more): raise the open-file limit (`ulimit -n`, now \(Self.openFileLimit())) or use fewer --workers"
        case .mappingRefused(let n, let bytes, let err):
            "mapping the rings of '\(n)' (\(bytes >> 20) MiB) failed: \(err); the process's address-space limit (`ulimit -v`, now \(Self.addressSpaceLimit())) or the system's memory is too small for them: lower --block-count, --block-size or --tx-frames, or raise the limit"
        }
    }
}

extension RingSetupError {
    static func openFileLimit() -> String { Sys.softLimit(.openFiles).map { "\($0)" } ?? "unlimited" }
    static func addressSpaceLimit() -> String { Sys.softLimit(.addressSpace).map { "\($0 >> 10) kB" } ?? "unlimited" }
}

/// Facts about an interface, read once at setup.
public struct InterfaceInfo: Sendable {
    public let name: String
    public let index: Int32
    public let mtu: Int
    public let isUp: Bool
    /// The hardware address, in the low 48 bits (0 for interfaces without one).
    public let hardwareAddress: UInt64

    /// The interface's MTU now (SIOCGIFMTU on a throwaway UDP socket, which receives nothing).
    public static func currentMTU(_ name: String) throws(SystemError) -> Int {
        let fd = try Sys.socket(domain: AF_INET, type: Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), protocol: 0)
        defer { Sys.close(fd) }
        return try Sys.interfaceMTU(name, using: fd)
    }

    public static func lookup(_ name: String) throws(RingSetupError) -> InterfaceInfo {
        guard name.utf8.count < IFNAMSIZ, let index = Sys.interfaceIndex(name) else { throw .noSuchInterface(name) }
        do {
            let probe = try PacketSocket()
            let mtu = try Sys.interfaceMTU(name, using: probe.fd)
            let flags = try Sys.interfaceFlags(name, using: probe.fd)
            let mac = try Sys.interfaceHardwareAddress(name, using: probe.fd)
            return InterfaceInfo(name: name, index: index, mtu: mtu, isUp: flags & Int32(IFF_UP) != 0, hardwareAddress: mac)
        } catch let e where e.errno == EPERM || e.errno == EACCES {
            throw .permission("opening an AF_PACKET socket")
        } catch {
            throw .system(step: "interface query", interface: name, error)
        }
    }
}

/// One worker's socket on one port: an RX ring and a TX ring in one mapping.
///
/// Setup is linear (as netsniff-ng and VPP do it): version, loss, qdisc bypass, ignore
/// outgoing, RX ring, TX ring, mmap, bind, fanout. Each step throws a typed error. A ring the
/// kernel cannot allocate (ENOMEM) is retried with half the blocks.
public final class RingPort {
    public private(set) var interface: InterfaceInfo
    public private(set) var config: RingPortConfig
    public private(set) var socket: PacketSocket
    var region: MappedRegion
    /// `.copy`: the staging area the TX frames are written to (the socket has no TX ring).
    var staging: MappedRegion?
    public var rx: RxRing
    public var tx: TxRing
    /// Held while `adopt` swaps the socket and rings, and by other threads that use the socket
    /// (statistics): the owning worker reads them without it.
    private let identity = Mutex(())
    /// The longest frame the interface takes now: its MTU can change while forwarding, and the
    /// kernel silently skips a TX ring frame over it (PACKET_LOSS), so outputs check this first.
    private let transmitLimit: UnsafeMutablePointer<UInt64>

    public var fd: Int32 { socket.fd }

    /// The longest frame to write for this port now (`tx.maxFrameLength`, lowered when the
    /// interface's MTU went down after start).
    @inline(__always) public var maxTransmitLength: Int {
        min(tx.maxFrameLength, Int(truncatingIfNeeded: cshunt_load_relaxed_u64(transmitLimit)))
    }

    /// Records the interface's MTU now (any thread; the worker sees it at its next output).
    public func updateMTU(_ mtu: Int) {
        cshunt_store_relaxed_u64(transmitLimit, UInt64(max(0, TxRing.longestFrame(mtu: mtu))))
    }

    deinit { transmitLimit.deallocate() }

    /// - Parameter fanoutGroup: join this PACKET_FANOUT group id; with `.some(nil)` create a new
    ///   unique group (read it back with `fanoutGroupID`); with nil join none.
    public init(interface: InterfaceInfo, config: RingPortConfig, fanout: (mode: FanoutMode, group: UInt16?)?) throws(RingSetupError) {
        self.interface = interface
        let name = interface.name
        func step<T>(_ what: String, _ body: () throws(SystemError) -> T) throws(RingSetupError) -> T {
            try RingSocketSetup.step(what, interface: name, body)
        }
        let socket = try RingSocketSetup.openSocket(interface: name)
        let fd = socket.fd
        try step("PACKET_VERSION") { () throws(SystemError) in
            try Sys.setsockopt(fd, level: SOL_PACKET, name: PACKET_VERSION, value: config.version.kernelValue)
        }
        // With loss allowed, a frame the kernel rejects is skipped instead of stalling the TX ring.
        try step("PACKET_LOSS") { () throws(SystemError) in
            try Sys.setsockopt(fd, level: SOL_PACKET, name: PACKET_LOSS, value: Int32(1))
        }
        if config.qdiscBypass {
            try step("PACKET_QDISC_BYPASS") { () throws(SystemError) in
                try Sys.setsockopt(fd, level: SOL_PACKET, name: PACKET_QDISC_BYPASS, value: Int32(1))
            }
        }
        // A forwarder forwards what arrives on a port, never what leaves it.
        try step("PACKET_IGNORE_OUTGOING") { () throws(SystemError) in
            try Sys.setsockopt(fd, level: SOL_PACKET, name: PACKET_IGNORE_OUTGOING, value: Int32(1))
        }
        let rxGeometry = try RingSocketSetup.requestReceiveRing(fd: fd, version: config.version, geometry: config.rx, interface: name)
        let txGeometry = config.tx
        let txRingBytes = config.transmit == .ring ? txGeometry.byteCount : 0
        if config.transmit == .ring { try step("PACKET_TX_RING") { () throws(SystemError) in
            if config.version == .v3 {
                var req = tpacket_req3()
                req.tp_block_size = UInt32(txGeometry.blockSize)
                req.tp_block_nr = UInt32(txGeometry.blockCount)
                req.tp_frame_size = UInt32(txGeometry.frameSize)
                req.tp_frame_nr = UInt32(txGeometry.frameCount)
                req.tp_retire_blk_tov = 0  // a V3 TX ring must have no timeout (else EINVAL)
                try Sys.setsockopt(fd, level: SOL_PACKET, name: PACKET_TX_RING, value: req)
            } else {
                var req = tpacket_req()
                req.tp_block_size = UInt32(txGeometry.blockSize)
                req.tp_block_nr = UInt32(txGeometry.blockCount)
                req.tp_frame_size = UInt32(txGeometry.frameSize)
                req.tp_frame_nr = UInt32(txGeometry.frameCount)
                try Sys.setsockopt(fd, level: SOL_PACKET, name: PACKET_TX_RING, value: req)
            }
        } }
        let region: MappedRegion
        do throws(SystemError) {
            region = try MappedRegion(fd: fd, length: rxGeometry.byteCount + txRingBytes)
        } catch {
            if error.errno == ENOMEM {
                throw .mappingRefused(interface: name, bytes: rxGeometry.byteCount + txGeometry.byteCount, error)
            }
            throw .system(step: "mmap", interface: name, error)
        }
        let staging = try Self.stagingArea(config, interface: name)
        try step("bind") { () throws(SystemError) in
            try Sys.bindPacket(fd, ifindex: interface.index, protocol: UInt16(ETH_P_ALL))
        }
        if let fanout {
            try step("PACKET_FANOUT") { () throws(SystemError) in
                let flags: UInt32 = fanout.group == nil ? UInt32(PACKET_FANOUT_FLAG_UNIQUEID) : 0
                let arg = UInt32(fanout.group ?? 0) | (fanout.mode.kernelValue | flags) << 16
                try Sys.setsockopt(fd, level: SOL_PACKET, name: PACKET_FANOUT, value: arg)
            }
        }
        var effective = config
        effective.rx = rxGeometry
        self.config = effective
        let (rxBase, txBase) = region.withUnsafeMutableBytes { ($0.baseAddress!, $0.baseAddress! + rxGeometry.byteCount) }
        rx = RxRing(version: config.version, geometry: rxGeometry, base: rxBase)
        tx = Self.transmitSide(config, geometry: txGeometry, ringBase: txBase, staging: staging, mtu: interface.mtu)
        transmitLimit = .allocate(capacity: 1)
        transmitLimit.initialize(to: UInt64(TxRing.longestFrame(mtu: interface.mtu)))
        self.socket = socket
        self.region = region
        self.staging = staging
    }

    /// `.copy`'s staging area for the TX frames, nil with `.ring`.
    private static func stagingArea(_ config: RingPortConfig, interface: String) throws(RingSetupError) -> MappedRegion? {
        guard config.transmit == .copy else { return nil }
        let bytes = TxRing.stagingBytes(for: config.tx)
        do throws(SystemError) { return try MappedRegion(anonymousLength: bytes) } catch {
            if error.errno == ENOMEM { throw .mappingRefused(interface: interface, bytes: bytes, error) }
            throw .system(step: "mmap (TX staging)", interface: interface, error)
        }
    }

    /// The TX side `config` asks for: the ring in the socket's mapping, or the staging area.
    private static func transmitSide(_ config: RingPortConfig, geometry: RingGeometry, ringBase: UnsafeMutableRawPointer,
                                     staging: borrowing MappedRegion?, mtu: Int) -> TxRing {
        switch staging {
        case .some(let area):
            let base = area.withUnsafeMutableBytes { $0.baseAddress! }
            return TxRing(copyingFrom: base, version: config.version, geometry: geometry, mtu: mtu)
        case .none:
            return TxRing(version: config.version, geometry: geometry, base: ringBase, mtu: mtu)
        }
    }

    /// A port whose rings are ordinary memory and whose socket is bound to nothing: the kernel
    /// never writes its RX ring and sends nothing from its TX ring. `DetachedRings` fills and
    /// drains them the way the kernel would, so that a worker's pass can be measured alone.
    public init(detached name: String, mtu: Int = 1500, config: RingPortConfig) throws(RingSetupError) {
        interface = InterfaceInfo(name: name, index: 0, mtu: mtu, isUp: true, hardwareAddress: 0)
        self.config = config
        do throws(SystemError) {
            socket = try PacketSocket()
            region = try MappedRegion(anonymousLength: config.rx.byteCount + config.tx.byteCount)
        } catch {
            throw .system(step: "detached ring memory", interface: name, error)
        }
        staging = try Self.stagingArea(config, interface: name)
        let (rxBase, txBase) = region.withUnsafeMutableBytes { ($0.baseAddress!, $0.baseAddress! + config.rx.byteCount) }
        rx = RxRing(version: config.version, geometry: config.rx, base: rxBase)
        tx = Self.transmitSide(config, geometry: config.tx, ringBase: txBase, staging: staging, mtu: mtu)
        transmitLimit = .allocate(capacity: 1)
        transmitLimit.initialize(to: UInt64(TxRing.longestFrame(mtu: mtu)))
    }

    /// Takes `other`'s interface, socket and rings (a port reopened on an interface that came
    /// back), leaving this port's old ones in `other`, which closes them when it goes. Only the
    /// thread that owns this port (its worker) may call it; the MTU limit stays this port's.
    public func adopt(_ other: RingPort) {
        identity.withLock { _ in
            swap(&socket, &other.socket)
            swap(&region, &other.region)
            swap(&staging, &other.staging)
            swap(&rx, &other.rx)
            swap(&tx, &other.tx)
            swap(&interface, &other.interface)
            swap(&config, &other.config)
        }
    }

    /// The PACKET_FANOUT group id this socket is in.
    public func fanoutGroupID() throws(SystemError) -> UInt16 {
        var v: UInt32 = 0
        try Sys.getsockopt(fd, level: SOL_PACKET, name: PACKET_FANOUT, into: &v)
        return UInt16(truncatingIfNeeded: v)
    }

    /// PACKET_STATISTICS since the last call: frames the kernel offered this socket, and how many
    /// of them found the RX ring full. Reading resets the kernel's counters.
    public func takeKernelStatistics() -> (offered: UInt64, ringFull: UInt64) {
        identity.withLock { _ in RingSocketSetup.takeKernelStatistics(fd: socket.fd, version: config.version) }
    }
}

extension RingPort {
    /// A free TX frame, or nil when the ring is full even after handing the kernel what is
    /// queued (frames it has sent become free again).
    @inline(__always)
    public func claimTransmitFrame() -> UnsafeMutableRawPointer? {
        if let frame = tx.claim() { return frame }
        guard tx.pending > 0, !tx.stalled else { return nil }
        tx.flush(fd: fd)
        return tx.claim()
    }
}
