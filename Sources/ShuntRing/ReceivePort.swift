import CShunt
import Glibc
import ShuntSystem

/// Setup steps shared by `RingPort` (RX and TX ring) and `ReceivePort` (RX ring only).
enum RingSocketSetup {
    /// Runs one setup step, turning a system error into the typed error of that step.
    static func step<T>(_ what: String, interface name: String, _ body: () throws(SystemError) -> T) throws(RingSetupError) -> T {
        do { return try body() } catch {
            if error.errno == EPERM || error.errno == EACCES { throw .permission("opening an AF_PACKET socket") }
            throw .system(step: what, interface: name, error)
        }
    }

    static func openSocket(interface name: String) throws(RingSetupError) -> PacketSocket {
        do throws(SystemError) { return try PacketSocket() } catch {
            if error.errno == EPERM || error.errno == EACCES { throw .permission("opening an AF_PACKET socket") }
            if error.errno == EMFILE || error.errno == ENFILE { throw .outOfFileDescriptors(interface: name, error) }
            throw .system(step: "socket", interface: name, error)
        }
    }

    /// PACKET_RX_RING with `geometry`, retried with half the blocks while the kernel answers
    /// ENOMEM; returns the geometry the kernel accepted. PACKET_VERSION must be set already.
    static func requestReceiveRing(fd: Int32, version: RingVersion, geometry: RingGeometry, interface name: String) throws(RingSetupError) -> RingGeometry {
        var rxGeometry = geometry
        while true {
            var req = tpacket_req3()
            req.tp_block_size = UInt32(rxGeometry.blockSize)
            req.tp_block_nr = UInt32(rxGeometry.blockCount)
            req.tp_frame_size = UInt32(rxGeometry.frameSize)
            req.tp_frame_nr = UInt32(rxGeometry.frameCount)
            req.tp_retire_blk_tov = version == .v3 ? UInt32(rxGeometry.blockTimeoutMs) : 0
            do throws(SystemError) {
                if version == .v3 {
                    try Sys.setsockopt(fd, level: SOL_PACKET, name: PACKET_RX_RING, value: req)
                } else {
                    var req2 = tpacket_req()
                    req2.tp_block_size = req.tp_block_size
                    req2.tp_block_nr = req.tp_block_nr
                    req2.tp_frame_size = req.tp_frame_size
                    req2.tp_frame_nr = req.tp_frame_nr
                    try Sys.setsockopt(fd, level: SOL_PACKET, name: PACKET_RX_RING, value: req2)
                }
                return rxGeometry
            } catch where error.errno == ENOMEM {
                guard let smaller = rxGeometry.shrunk() else { throw .system(step: "PACKET_RX_RING", interface: name, error) }
                rxGeometry = smaller
            } catch {
                throw .system(step: "PACKET_RX_RING", interface: name, error)
            }
        }
    }

    /// PACKET_STATISTICS since the last read (which resets them); (0, 0) if the call fails.
    static func takeKernelStatistics(fd: Int32, version: RingVersion) -> (offered: UInt64, ringFull: UInt64) {
        var st = tpacket_stats_v3()
        do {
            if version == .v3 {
                try Sys.getsockopt(fd, level: SOL_PACKET, name: PACKET_STATISTICS, into: &st)
            } else {
                var st2 = tpacket_stats()
                try Sys.getsockopt(fd, level: SOL_PACKET, name: PACKET_STATISTICS, into: &st2)
                st.tp_packets = st2.tp_packets
                st.tp_drops = st2.tp_drops
            }
        } catch {
            return (0, 0)
        }
        return (UInt64(st.tp_packets), UInt64(st.tp_drops))
    }
}

/// A receive-only socket on one interface: an RX ring and no TX ring (for `shunt sink`, which
/// never sends). Frames the host itself sends out of the interface are not delivered
/// (PACKET_IGNORE_OUTGOING).
///
/// Setup: version, ignore outgoing, RX ring (halved on ENOMEM), mmap, bind. The socket binds
/// last, so it sees nothing before its ring exists.
public final class ReceivePort {
    public let interface: InterfaceInfo
    public let version: RingVersion
    /// The geometry the kernel accepted (it may have fewer blocks than asked for).
    public let geometry: RingGeometry
    public let socket: PacketSocket
    let region: MappedRegion
    public var rx: RxRing

    public var fd: Int32 { socket.fd }

    public init(interface: InterfaceInfo, version: RingVersion, geometry: RingGeometry) throws(RingSetupError) {
        let name = interface.name
        do throws(RingGeometry.Invalid) { try geometry.validate(for: version, rx: true) } catch {
            throw .invalidGeometry("RX", error)
        }
        guard interface.isUp else { throw .interfaceDown(name) }
        let socket = try RingSocketSetup.openSocket(interface: name)
        let fd = socket.fd
        try RingSocketSetup.step("PACKET_VERSION", interface: name) { () throws(SystemError) in
            try Sys.setsockopt(fd, level: SOL_PACKET, name: PACKET_VERSION, value: version.kernelValue)
        }
        try RingSocketSetup.step("PACKET_IGNORE_OUTGOING", interface: name) { () throws(SystemError) in
            try Sys.setsockopt(fd, level: SOL_PACKET, name: PACKET_IGNORE_OUTGOING, value: Int32(1))
        }
        let accepted = try RingSocketSetup.requestReceiveRing(fd: fd, version: version, geometry: geometry, interface: name)
        let region: MappedRegion
        do throws(SystemError) {
            region = try MappedRegion(fd: fd, length: accepted.byteCount)
        } catch {
            throw .system(step: "mmap", interface: name, error)
        }
        try RingSocketSetup.step("bind", interface: name) { () throws(SystemError) in
            try Sys.bindPacket(fd, ifindex: interface.index, protocol: UInt16(ETH_P_ALL))
        }
        self.interface = interface
        self.version = version
        self.geometry = accepted
        rx = RxRing(version: version, geometry: accepted, base: region.withUnsafeMutableBytes { $0.baseAddress! })
        self.socket = socket
        self.region = region
    }

    /// PACKET_STATISTICS since the last call: frames the kernel offered this socket, and how many
    /// of them found the RX ring full (dropped). Reading resets the kernel's counters.
    public func takeKernelStatistics() -> (offered: UInt64, ringFull: UInt64) {
        RingSocketSetup.takeKernelStatistics(fd: fd, version: version)
    }
}
