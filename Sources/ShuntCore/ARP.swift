import CShunt

/// An Ethernet/IPv4 ARP message (RFC 826), as the VTEP side of a tunnel needs it: answering
/// requests for the local VTEP address and resolving the remote VTEP's MAC.
public struct ARPMessage: Equatable, Sendable {
    public enum Operation: UInt16, Sendable { case request = 1, reply = 2 }

    public var operation: Operation
    public var senderMAC: MACAddress
    public var senderIP: IPv4Address
    public var targetMAC: MACAddress
    public var targetIP: IPv4Address

    /// An Ethernet header and the 28-byte ARP body.
    public static let frameLength = 42

    public init(operation: Operation, senderMAC: MACAddress, senderIP: IPv4Address, targetMAC: MACAddress,
                targetIP: IPv4Address) {
        self.operation = operation
        self.senderMAC = senderMAC
        self.senderIP = senderIP
        self.targetMAC = targetMAC
        self.targetIP = targetIP
    }

    /// Parses an untagged Ethernet frame; nil unless it is Ethernet/IPv4 ARP request or reply.
    public init?(frame p: UnsafeRawPointer, length: Int) {
        guard length >= Self.frameLength,
              UInt16(bigEndian: (p + 12).loadUnaligned(as: UInt16.self)) == 0x0806 else { return nil }
        let a = p + 14
        guard UInt16(bigEndian: a.loadUnaligned(as: UInt16.self)) == 1,  // Ethernet
              UInt16(bigEndian: (a + 2).loadUnaligned(as: UInt16.self)) == 0x0800,
              a.load(fromByteOffset: 4, as: UInt8.self) == 6, a.load(fromByteOffset: 5, as: UInt8.self) == 4,
              let op = Operation(rawValue: UInt16(bigEndian: (a + 6).loadUnaligned(as: UInt16.self)))
        else { return nil }
        operation = op
        senderMAC = MACAddress(loading: a + 8)
        senderIP = IPv4Address(loading: a + 14)
        targetMAC = MACAddress(loading: a + 18)
        targetIP = IPv4Address(loading: a + 24)
    }

    /// A request from `mac`/`ip` for `target`, broadcast.
    public static func request(from mac: MACAddress, ip: IPv4Address, for target: IPv4Address) -> ARPMessage {
        ARPMessage(operation: .request, senderMAC: mac, senderIP: ip, targetMAC: MACAddress(value: 0), targetIP: target)
    }

    /// The reply to this request from the owner of its target address, `mac`.
    public func reply(from mac: MACAddress) -> ARPMessage {
        ARPMessage(operation: .reply, senderMAC: mac, senderIP: targetIP, targetMAC: senderMAC, targetIP: senderIP)
    }

    /// Writes the frame (42 bytes) at `p`: requests to the broadcast address, replies to the
    /// requester. The kernel pads short frames on devices that need it.
    public func write(to p: UnsafeMutableRawPointer) {
        let ethDestination = operation == .request ? MACAddress(value: 0xFFFF_FFFF_FFFF) : targetMAC
        FrameRewrite.store(ethDestination, at: p)
        FrameRewrite.store(senderMAC, at: p + 6)
        (p + 12).storeBytes(of: UInt16(0x0806).bigEndian, as: UInt16.self)
        let a = p + 14
        a.storeBytes(of: UInt16(1).bigEndian, as: UInt16.self)
        (a + 2).storeBytes(of: UInt16(0x0800).bigEndian, as: UInt16.self)
        a.storeBytes(of: 6, toByteOffset: 4, as: UInt8.self)
        a.storeBytes(of: 4, toByteOffset: 5, as: UInt8.self)
        (a + 6).storeBytes(of: operation.rawValue.bigEndian, as: UInt16.self)
        FrameRewrite.store(senderMAC, at: a + 8)
        senderIP.store(to: a + 14)
        FrameRewrite.store(targetMAC, at: a + 18)
        targetIP.store(to: a + 24)
    }
}

/// The next-hop MACs of the remote VTEPs, shared by every worker without locks.
///
/// The set of addresses is fixed at start (the tunnels' remotes), so each has a slot found once
/// at configuration; per packet a worker reads its slot with two relaxed loads. An entry learned
/// by ARP is *reachable* for `reachableMs` after its last confirmation, then *stale*: still used,
/// while the worker that sees it stale asks again (at most once per `retryMs` per slot); after
/// `expireMs` without confirmation it is gone and packets to it drop as `tunnel_no_neighbour`.
/// Static entries never age. Writers race benignly: the last confirmation wins.
public final class NeighbourTable: @unchecked Sendable {
    public enum State: Equatable, Sendable { case unresolved, reachable, stale }

    public let addresses: [IPv4Address]
    public let reachableMs: UInt64
    public let expireMs: UInt64
    public let retryMs: UInt64
    /// Per slot: MAC | valid bit 48 | static bit 49; confirmation time (ms); last request time (ms).
    private let words: UnsafeMutablePointer<UInt64>
    private static let stride = 3
    private static let valid: UInt64 = 1 << 48
    private static let permanent: UInt64 = 1 << 49

    public init(addresses: [IPv4Address], reachableMs: UInt64 = 30_000, expireMs: UInt64 = 120_000, retryMs: UInt64 = 1000) {
        var unique: [IPv4Address] = []
        for a in addresses where !unique.contains(a) { unique.append(a) }
        self.addresses = unique
        self.reachableMs = reachableMs
        self.expireMs = max(expireMs, reachableMs)
        self.retryMs = retryMs
        words = .allocate(capacity: max(1, unique.count) * Self.stride)
        words.initialize(repeating: 0, count: max(1, unique.count) * Self.stride)
    }

    deinit { words.deallocate() }

    public func slot(of address: IPv4Address) -> Int? { addresses.firstIndex(of: address) }

    /// A MAC that never ages (static configuration).
    public func setStatic(_ mac: MACAddress, slot: Int) {
        cshunt_store_relaxed_u64(words + slot * Self.stride, mac.value | Self.valid | Self.permanent)
    }

    /// An ARP message from `address` said it is at `mac`.
    public func confirm(_ address: IPv4Address, mac: MACAddress, nowMs: UInt64) {
        guard let s = slot(of: address) else { return }
        let p = words + s * Self.stride
        if cshunt_load_relaxed_u64(p) & Self.permanent != 0 { return }
        cshunt_store_relaxed_u64(p + 1, nowMs)
        cshunt_store_relaxed_u64(p, mac.value | Self.valid)
    }

    /// The slot's MAC if it may be used now, and its state.
    @inlinable
    public func lookup(slot: Int, nowMs: UInt64) -> (mac: MACAddress?, state: State) {
        let (word, confirmed) = load(slot)
        guard word & (1 << 48) != 0 else { return (nil, .unresolved) }
        let mac = MACAddress(value: word)
        if word & (1 << 49) != 0 { return (mac, .reachable) }
        let age = nowMs &- confirmed
        if nowMs < confirmed || age < reachableMs { return (mac, .reachable) }
        return age < expireMs ? (mac, .stale) : (nil, .unresolved)
    }

    /// Whether the caller should send an ARP request for the slot now (it is not reachable and
    /// no request went out in the last `retryMs`); if so, records the request.
    public func takeRequest(slot: Int, nowMs: UInt64) -> Bool {
        let p = words + slot * Self.stride + 2
        let last = cshunt_load_relaxed_u64(p)
        if last != 0 && nowMs &- last < retryMs { return false }
        cshunt_store_relaxed_u64(p, nowMs == 0 ? 1 : nowMs)
        return true
    }

    @usableFromInline
    func load(_ slot: Int) -> (UInt64, UInt64) {
        let p = words + slot * Self.stride
        return (cshunt_load_relaxed_u64(p), cshunt_load_relaxed_u64(p + 1))
    }
}
