import CShunt
import Glibc

// A small netlink layer: an owned socket, request building and reply parsing. Requests and
// replies are byte arrays; unsafe pointers appear only inside the functions that fill or read
// them. Every request is acknowledged (NLM_F_ACK) or is a dump, so each exchange has a definite
// end: an NLMSG_ERROR (0 for the ack, else the errno) or NLMSG_DONE.

/// A netlink protocol (the third argument of `socket(AF_NETLINK, ...)`).
public struct NetlinkProtocol: Sendable, Equatable {
    public let rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }

    /// `NETLINK_ROUTE`: links, addresses, namespace ids.
    public static let route = NetlinkProtocol(rawValue: NETLINK_ROUTE)
    /// `NETLINK_GENERIC`: generic netlink families such as `nlctrl` and `netdev`.
    public static let generic = NetlinkProtocol(rawValue: NETLINK_GENERIC)
}

/// Netlink aligns messages and attributes to 4 bytes (`NLMSG_ALIGNTO`, `NLA_ALIGNTO`).
@inline(__always)
func netlinkAlign(_ n: Int) -> Int { (n + 3) & ~3 }

/// An owned netlink socket in the network namespace of the thread that created it. Closed when
/// the owner goes away. One request at a time: `transact` sends it and returns its replies.
public struct NetlinkSocket: ~Copyable {
    public let fd: Int32
    public let netlinkProtocol: NetlinkProtocol
    private var sequence: UInt32
    /// One datagram at a time; a larger one fails with EMSGSIZE instead of being cut short.
    private var receiveBuffer: [UInt8]

    public static let receiveBufferSize = 64 * 1024

    /// Opens and binds a socket; replies that take longer than `timeoutSeconds` fail with EAGAIN.
    ///
    /// - Parameter groups: multicast groups to join (e.g. RTMGRP_LINK), read with `notifications`.
    public init(_ netlinkProtocol: NetlinkProtocol, timeoutSeconds: Int = 5, groups: UInt32 = 0) throws(SystemError) {
        let type = Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
        let fd = try Sys.socket(domain: AF_NETLINK, type: type, protocol: netlinkProtocol.rawValue)
        do throws(SystemError) {
            let timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
            try Sys.setsockopt(fd, level: SOL_SOCKET, name: SO_RCVTIMEO, value: timeout)
            // Errors then carry the kernel's explanation (extended ack) instead of a copy of the
            // request. Both are optional: an older kernel just sends plain errors.
            try? Sys.setsockopt(fd, level: SOL_NETLINK, name: NETLINK_EXT_ACK, value: Int32(1))
            try? Sys.setsockopt(fd, level: SOL_NETLINK, name: NETLINK_CAP_ACK, value: Int32(1))
            try Sys.bindNetlink(fd, groups: groups)
        } catch {
            Sys.close(fd)
            throw error
        }
        self.fd = fd
        self.netlinkProtocol = netlinkProtocol
        // Any start will do: replies are matched by sequence number, so a fresh start makes a
        // stray reply to an earlier socket with the same port id unlikely to match.
        sequence = UInt32(truncatingIfNeeded: Sys.monotonicNanoseconds())
        receiveBuffer = [UInt8](repeating: 0, count: Self.receiveBufferSize)
    }

    deinit { Sys.close(fd) }

    /// Sends `request` and returns the data messages answering it, in order, without the final
    /// ack or NLMSG_DONE. A negative errno from the kernel is thrown as a `SystemError` whose
    /// `call` names the request (and adds the kernel's extended-ack message if there is one).
    public mutating func transact(_ request: NetlinkRequest) throws(SystemError) -> [NetlinkMessage] {
        sequence &+= 1
        let fd = self.fd
        let summary = request.summary
        let datagram = request.encoded(sequence: sequence)
        try Self.lend(datagram) { (bytes) throws(SystemError) in
            try Self.naming(summary) { () throws(SystemError) in try Sys.sendNetlink(fd, bytes) }
        }

        var collector = NetlinkReplyCollector(sequence: sequence, summary: summary)
        while !collector.isComplete {
            try Self.lend(&receiveBuffer) { (buffer) throws(SystemError) in
                let length = try Self.naming(summary) { () throws(SystemError) in
                    try Sys.receiveNetlink(fd, into: buffer)
                }
                guard length <= buffer.count else {
                    throw SystemError(errno: EMSGSIZE, call: "\(summary) (a reply of \(length) bytes)")
                }
                try collector.consume(UnsafeRawBufferPointer(rebasing: buffer[..<length]))
            }
        }
        return collector.messages
    }

    /// The multicast messages (of the groups joined at init) that arrive within `timeoutMs`:
    /// one datagram's worth, or none. `overrun` says the kernel dropped some (ENOBUFS): the
    /// caller must read the state afresh.
    public mutating func notifications(timeoutMs: Int32) throws(SystemError) -> (messages: [NetlinkMessage], overrun: Bool) {
        var poll = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard try Sys.poll(&poll, count: 1, timeoutMs: timeoutMs) > 0 else { return ([], false) }
        let fd = self.fd
        var messages: [NetlinkMessage] = []
        var overrun = false
        try Self.lend(&receiveBuffer) { (buffer) throws(SystemError) in
            let length: Int
            do throws(SystemError) {
                length = try Sys.receiveNetlink(fd, into: buffer, wait: false)
            } catch {
                if error.errno == ENOBUFS { overrun = true; return }
                if error.errno == EAGAIN || error.errno == EWOULDBLOCK { return }
                throw error
            }
            let datagram = UnsafeRawBufferPointer(rebasing: buffer[..<min(length, buffer.count)])
            let headerSize = MemoryLayout<nlmsghdr>.size
            var offset = 0
            while datagram.count - offset >= headerSize {
                let header = datagram.loadUnaligned(fromByteOffset: offset, as: nlmsghdr.self)
                let size = Int(header.nlmsg_len)
                guard size >= headerSize, size <= datagram.count - offset else { break }
                messages.append(NetlinkMessage(type: header.nlmsg_type, flags: header.nlmsg_flags,
                                               payload: Array(datagram[(offset + headerSize)..<(offset + size)])))
                offset += min(netlinkAlign(size), datagram.count - offset)
            }
        }
        return (messages, overrun)
    }

    /// Adds the request to a send or receive error ("recv(netlink) for RTM_GETLINK ...").
    private static func naming<R>(_ summary: String, _ body: () throws(SystemError) -> R) throws(SystemError) -> R {
        do throws(SystemError) {
            return try body()
        } catch {
            throw SystemError(errno: error.errno, call: "\(error.call) for \(summary)")
        }
    }

    /// `Array.withUnsafeBytes` with a typed error. Do not let the pointer escape `body`.
    private static func lend(
        _ bytes: [UInt8], _ body: (UnsafeRawBufferPointer) throws(SystemError) -> Void
    ) throws(SystemError) {
        let result: Result<Void, SystemError> = bytes.withUnsafeBytes { raw in
            Result { () throws(SystemError) in try body(raw) }
        }
        try result.get()
    }

    /// `Array.withUnsafeMutableBytes` with a typed error. Do not let the pointer escape `body`.
    private static func lend(
        _ bytes: inout [UInt8], _ body: (UnsafeMutableRawBufferPointer) throws(SystemError) -> Void
    ) throws(SystemError) {
        let result: Result<Void, SystemError> = bytes.withUnsafeMutableBytes { raw in
            Result { () throws(SystemError) in try body(raw) }
        }
        try result.get()
    }
}

// MARK: requests

/// One netlink request under construction: the `nlmsghdr`, an optional family header (such as
/// `ifinfomsg` or `genlmsghdr`), then attributes, each padded to 4 bytes. Requests are small;
/// growing one past `maximumSize` is a Shunt bug and traps.
public struct NetlinkRequest: Sendable {
    public static let maximumSize = 8192

    /// What is asked, for error messages (e.g. `RTM_GETLINK "eth0"`).
    public let summary: String
    /// NLM_F_DUMP: answered by many messages, then NLMSG_DONE. Other requests ask for an ack.
    public let isDump: Bool
    private(set) var bytes: [UInt8] = []

    /// - Parameters:
    ///   - type: the message type (`RTM_GETLINK`, or a generic netlink family id).
    ///   - flags: besides NLM_F_REQUEST, which is always set (NLM_F_DUMP for a dump).
    public init(type: UInt16, flags: UInt16 = 0, summary: String) {
        self.summary = summary
        let dump = UInt16(NLM_F_DUMP)
        isDump = flags & dump == dump
        var header = nlmsghdr()
        header.nlmsg_type = type
        header.nlmsg_flags = UInt16(NLM_F_REQUEST) | flags | (isDump ? 0 : UInt16(NLM_F_ACK))
        bytes.reserveCapacity(128)
        append(header)
    }

    /// Appends a family header such as `ifinfomsg`, `rtgenmsg` or `genlmsghdr`, padded to 4 bytes.
    public mutating func appendHeader<T: BitwiseCopyable>(_ header: T) {
        append(header)
    }

    /// Appends an attribute whose payload is the bytes of a fixed-width integer in host order.
    public mutating func addAttribute<T: FixedWidthInteger & BitwiseCopyable>(_ type: UInt16, _ value: T) {
        withUnsafeBytes(of: value) { addAttribute(type, bytes: $0) }
    }

    /// Appends a NUL-terminated string attribute (NLA_NUL_STRING / NLA_STRING).
    public mutating func addAttribute(_ type: UInt16, string: String) {
        var payload = Array(string.utf8)
        payload.append(0)
        payload.withUnsafeBytes { addAttribute(type, bytes: $0) }
    }

    /// Appends an attribute with raw payload bytes.
    public mutating func addAttribute(_ type: UInt16, bytes payload: UnsafeRawBufferPointer) {
        let length = MemoryLayout<nlattr>.size + payload.count
        precondition(length <= Int(UInt16.max), "netlink attribute too long")
        append(nlattr(nla_len: UInt16(length), nla_type: type))
        bytes.append(contentsOf: payload)
        pad()
    }

    /// Appends a nested attribute (NLA_F_NESTED) holding the attributes `body` adds.
    public mutating func addNested(_ type: UInt16, _ body: (inout NetlinkRequest) -> Void) {
        let start = bytes.count
        append(nlattr(nla_len: 0, nla_type: type | UInt16(NLA_F_NESTED)))
        body(&self)
        let length = bytes.count - start
        precondition(length <= Int(UInt16.max), "netlink attribute too long")
        bytes.withUnsafeMutableBytes { $0.storeBytes(of: UInt16(length), toByteOffset: start, as: UInt16.self) }
    }

    /// The datagram to send: the bytes with `nlmsg_len` and `nlmsg_seq` filled in.
    func encoded(sequence: UInt32) -> [UInt8] {
        var out = bytes
        let length = UInt32(out.count)
        out.withUnsafeMutableBytes {
            $0.storeBytes(of: length, toByteOffset: 0, as: UInt32.self)
            $0.storeBytes(of: sequence, toByteOffset: 8, as: UInt32.self)
        }
        return out
    }

    private mutating func append<T: BitwiseCopyable>(_ value: T) {
        withUnsafeBytes(of: value) { bytes.append(contentsOf: $0) }
        pad()
    }

    private mutating func pad() {
        bytes.append(contentsOf: repeatElement(0, count: netlinkAlign(bytes.count) - bytes.count))
        precondition(bytes.count <= Self.maximumSize, "netlink request larger than \(Self.maximumSize) bytes")
    }
}

// MARK: replies

/// One reply message: its type and flags, and the bytes after its `nlmsghdr`.
public struct NetlinkMessage: Sendable {
    public let type: UInt16
    public let flags: UInt16
    /// A family header (for example `ifinfomsg`), then attributes.
    public let payload: [UInt8]

    public init(type: UInt16, flags: UInt16, payload: [UInt8]) {
        self.type = type
        self.flags = flags
        self.payload = payload
    }

    /// The family header at the start of the payload, or nil if the payload is shorter.
    public func header<T: BitwiseCopyable>(_: T.Type) -> T? {
        guard payload.count >= MemoryLayout<T>.size else { return nil }
        return payload.withUnsafeBytes { $0.loadUnaligned(as: T.self) }
    }

    /// The attributes after a family header of `headerSize` bytes (padded to 4).
    public func attributes(afterHeaderOf headerSize: Int) -> NetlinkAttributes {
        let start = min(netlinkAlign(headerSize), payload.count)
        return NetlinkAttributes(payload[start...])
    }
}

/// A run of attributes, read lazily. A malformed attribute ends the run.
public struct NetlinkAttributes: Sendable, Sequence {
    let bytes: ArraySlice<UInt8>

    public init(_ bytes: ArraySlice<UInt8>) { self.bytes = bytes }

    /// The first attribute of `type` (with the NLA_F_NESTED and NLA_F_NET_BYTEORDER bits ignored).
    public subscript(type: UInt16) -> NetlinkAttribute? { first { $0.type == type } }

    public func makeIterator() -> Iterator { Iterator(rest: bytes) }

    public struct Iterator: IteratorProtocol {
        var rest: ArraySlice<UInt8>

        public mutating func next() -> NetlinkAttribute? {
            let headerSize = MemoryLayout<nlattr>.size
            guard rest.count >= headerSize else { return nil }
            let header = rest.withUnsafeBytes { $0.loadUnaligned(as: nlattr.self) }
            let length = Int(header.nla_len)
            guard length >= headerSize, length <= rest.count else {
                rest = rest[rest.endIndex...]
                return nil
            }
            let start = rest.startIndex
            let payload = rest[(start + headerSize)..<(start + length)]
            let attribute = NetlinkAttribute(rawType: header.nla_type, payload: payload)
            rest = rest[(start + Swift.min(netlinkAlign(length), rest.count))...]
            return attribute
        }
    }
}

/// One attribute: its type and payload, with typed readers that check the payload's size.
public struct NetlinkAttribute: Sendable {
    /// The type without the NLA_F_NESTED and NLA_F_NET_BYTEORDER bits.
    public let type: UInt16
    public let isNested: Bool
    public let payload: ArraySlice<UInt8>

    init(rawType: UInt16, payload: ArraySlice<UInt8>) {
        let flags = UInt16(NLA_F_NESTED) | UInt16(NLA_F_NET_BYTEORDER)
        type = rawType & ~flags
        isNested = rawType & UInt16(NLA_F_NESTED) != 0
        self.payload = payload
    }

    public var u8: UInt8? { integer() }
    public var u16: UInt16? { integer() }
    public var u32: UInt32? { integer() }
    public var s32: Int32? { integer() }
    public var u64: UInt64? { integer() }

    /// The payload up to its first NUL, as UTF-8.
    public var string: String? {
        String(decoding: payload.prefix(while: { $0 != 0 }), as: UTF8.self)
    }

    /// The attributes inside a nested attribute.
    public var nested: NetlinkAttributes { NetlinkAttributes(payload) }

    private func integer<T: FixedWidthInteger & BitwiseCopyable>() -> T? {
        guard payload.count == MemoryLayout<T>.size else { return nil }
        return payload.withUnsafeBytes { $0.loadUnaligned(as: T.self) }
    }
}

/// Collects the replies to one request from the datagrams that arrive, until the exchange ends.
struct NetlinkReplyCollector {
    /// A runaway dump ends with ENOBUFS rather than filling memory.
    static let maximumMessages = 65_536

    let sequence: UInt32
    let summary: String
    private(set) var messages: [NetlinkMessage] = []
    private(set) var isComplete = false

    init(sequence: UInt32, summary: String) {
        self.sequence = sequence
        self.summary = summary
    }

    /// Reads every message of one datagram. Messages for other sequence numbers are skipped.
    mutating func consume(_ datagram: UnsafeRawBufferPointer) throws(SystemError) {
        let headerSize = MemoryLayout<nlmsghdr>.size
        var offset = 0
        while !isComplete && offset < datagram.count {
            guard datagram.count - offset >= headerSize else { throw malformed("a truncated message header") }
            let header = datagram.loadUnaligned(fromByteOffset: offset, as: nlmsghdr.self)
            let length = Int(header.nlmsg_len)
            guard length >= headerSize, length <= datagram.count - offset else {
                throw malformed("a message length of \(length)")
            }
            let body = UnsafeRawBufferPointer(rebasing: datagram[(offset + headerSize)..<(offset + length)])
            offset += min(netlinkAlign(length), datagram.count - offset)
            guard header.nlmsg_seq == sequence else { continue }
            try take(header, body)
        }
    }

    private mutating func take(_ header: nlmsghdr, _ body: UnsafeRawBufferPointer) throws(SystemError) {
        switch Int32(header.nlmsg_type) {
        case NLMSG_NOOP:
            return
        case NLMSG_ERROR:
            guard body.count >= MemoryLayout<Int32>.size else { throw malformed("a short NLMSG_ERROR") }
            let error = body.loadUnaligned(as: Int32.self)
            if error == 0 {
                isComplete = true  // the ack
                return
            }
            throw SystemError(errno: -error, call: describe(extendedAckMessage(header, body)))
        case NLMSG_DONE:
            // A dump that failed part-way reports the errno in NLMSG_DONE's payload.
            if body.count >= MemoryLayout<Int32>.size {
                let error = body.loadUnaligned(as: Int32.self)
                if error < 0 { throw SystemError(errno: -error, call: describe(nil)) }
            }
            isComplete = true
        case NLMSG_OVERRUN:
            throw SystemError(errno: ENOBUFS, call: describe("overrun"))
        default:
            if header.nlmsg_flags & UInt16(NLM_F_DUMP_INTR) != 0 {
                // The set changed while the kernel walked it: the caller may ask again.
                throw SystemError(errno: EAGAIN, call: describe("dump interrupted"))
            }
            guard messages.count < Self.maximumMessages else {
                throw SystemError(errno: ENOBUFS, call: describe("more than \(Self.maximumMessages) replies"))
            }
            messages.append(NetlinkMessage(type: header.nlmsg_type, flags: header.nlmsg_flags, payload: Array(body)))
        }
    }

    /// NLMSGERR_ATTR_MSG from an error's extended-ack attributes, if the kernel sent one.
    private func extendedAckMessage(_ header: nlmsghdr, _ body: UnsafeRawBufferPointer) -> String? {
        guard header.nlmsg_flags & UInt16(NLM_F_ACK_TLVS) != 0 else { return nil }
        // struct nlmsgerr: the errno, then the request's header, and its payload unless capped.
        let requestHeaderOffset = MemoryLayout<Int32>.size
        guard body.count >= MemoryLayout<nlmsgerr>.size else { return nil }
        var start = MemoryLayout<nlmsgerr>.size
        if header.nlmsg_flags & UInt16(NLM_F_CAPPED) == 0 {
            let request = body.loadUnaligned(fromByteOffset: requestHeaderOffset, as: nlmsghdr.self)
            start = requestHeaderOffset + netlinkAlign(Int(request.nlmsg_len))
        }
        guard start < body.count else { return nil }
        let attributes = NetlinkAttributes(ArraySlice(body[start...]))
        return attributes[UInt16(NLMSGERR_ATTR_MSG.rawValue)]?.string
    }

    private func describe(_ detail: String?) -> String {
        guard let detail, !detail.isEmpty else { return summary }
        return "\(summary) (\(detail))"
    }

    private func malformed(_ what: String) -> SystemError {
        SystemError(errno: EPROTO, call: describe("malformed reply: \(what)"))
    }
}

// MARK: queries

/// What RTM_GETLINK says about one interface: the attributes Shunt reads.
public struct LinkDescription: Sendable, Equatable {
    public let index: Int32
    public let name: String
    /// ifi_flags: IFF_UP, IFF_RUNNING, ...
    public let flags: UInt32
    /// IFLA_LINKINFO / IFLA_INFO_KIND: the driver kind ("veth", "bridge", ...); nil for devices
    /// not made through rtnetlink (loopback, physical NICs).
    public let kind: String?
    /// IFLA_LINK: the ifindex of the device this one is linked to (a veth's peer), if reported.
    public let link: Int32?
    /// IFLA_LINK_NETNSID: the namespace of `link` as an nsid of the asking socket's namespace,
    /// present only when that is another namespace.
    public let linkNamespaceID: Int32?
    /// IFLA_XDP / IFLA_XDP_ATTACHED is not XDP_ATTACHED_NONE: some XDP program is attached.
    public let hasXDP: Bool

    /// IFF_UP: administratively up.
    public var isUp: Bool { flags & UInt32(IFF_UP) != 0 }
}

extension NetlinkSocket {
    /// RTM_GETLINK for the interface called `name`. A missing one fails with ENODEV.
    public mutating func link(named name: String) throws(SystemError) -> LinkDescription {
        try getLink(index: 0, name: name, summary: "RTM_GETLINK \"\(name)\"")
    }

    /// RTM_GETLINK for the interface with `index`. A missing one fails with ENODEV.
    public mutating func link(index: Int32) throws(SystemError) -> LinkDescription {
        try getLink(index: index, name: nil, summary: "RTM_GETLINK ifindex \(index)")
    }

    private mutating func getLink(index: Int32, name: String?, summary: String) throws(SystemError) -> LinkDescription {
        precondition(netlinkProtocol == .route, "RTM_GETLINK needs a NETLINK_ROUTE socket")
        var request = NetlinkRequest(type: UInt16(RTM_GETLINK), summary: summary)
        var header = ifinfomsg()
        header.ifi_family = UInt8(AF_UNSPEC)
        header.ifi_index = index
        request.appendHeader(header)
        if let name { request.addAttribute(UInt16(IFLA_IFNAME), string: name) }
        request.addAttribute(UInt16(IFLA_EXT_MASK), UInt32(RTEXT_FILTER_SKIP_STATS))
        let replies = try transact(request)
        guard let reply = replies.first(where: { $0.type == UInt16(RTM_NEWLINK) }),
              let info = reply.header(ifinfomsg.self)
        else { throw SystemError(errno: EPROTO, call: "\(summary) (no RTM_NEWLINK in the reply)") }

        let attributes = reply.attributes(afterHeaderOf: MemoryLayout<ifinfomsg>.size)
        let kind = attributes[UInt16(IFLA_LINKINFO)]?.nested[UInt16(IFLA_INFO_KIND)]?.string
        var hasXDP = false
        if let xdp = attributes[UInt16(IFLA_XDP)]?.nested {
            let attached = xdp[UInt16(IFLA_XDP_ATTACHED)]?.u8 ?? UInt8(XDP_ATTACHED_NONE)
            hasXDP = attached != UInt8(XDP_ATTACHED_NONE) || (xdp[UInt16(IFLA_XDP_PROG_ID)]?.u32 ?? 0) != 0
        }
        return LinkDescription(
            index: info.ifi_index,
            name: attributes[UInt16(IFLA_IFNAME)]?.string ?? name ?? "",
            flags: info.ifi_flags,
            kind: kind,
            link: attributes[UInt16(IFLA_LINK)]?.u32.map { Int32(bitPattern: $0) },
            linkNamespaceID: attributes[UInt16(IFLA_LINK_NETNSID)]?.s32,
            hasXDP: hasXDP
        )
    }

    /// RTM_GETNSID: the id the socket's namespace has given the namespace open as `fd`
    /// (a /run/netns/NAME or /proc/PID/ns/net descriptor), or nil if it has given none.
    public mutating func namespaceID(of fd: Int32) throws(SystemError) -> Int32? {
        precondition(netlinkProtocol == .route, "RTM_GETNSID needs a NETLINK_ROUTE socket")
        var request = NetlinkRequest(type: UInt16(RTM_GETNSID), summary: "RTM_GETNSID fd \(fd)")
        var header = rtgenmsg()
        header.rtgen_family = UInt8(AF_UNSPEC)
        request.appendHeader(header)
        request.addAttribute(UInt16(NETNSA_FD), UInt32(bitPattern: fd))
        let replies = try transact(request)
        guard let reply = replies.first(where: { $0.type == UInt16(RTM_NEWNSID) }) else { return nil }
        guard let id = reply.attributes(afterHeaderOf: MemoryLayout<rtgenmsg>.size)[UInt16(NETNSA_NSID)]?.s32,
              id >= 0  // NETNSA_NSID_NOT_ASSIGNED is -1
        else { return nil }
        return id
    }

    /// CTRL_CMD_GETFAMILY: the message type of the generic netlink family `name`, or nil if the
    /// kernel has no such family.
    public mutating func genericFamilyID(named name: String) throws(SystemError) -> UInt16? {
        precondition(netlinkProtocol == .generic, "CTRL_CMD_GETFAMILY needs a NETLINK_GENERIC socket")
        var request = NetlinkRequest(type: UInt16(GENL_ID_CTRL), summary: "CTRL_CMD_GETFAMILY \"\(name)\"")
        request.appendHeader(genlmsghdr(cmd: UInt8(CTRL_CMD_GETFAMILY), version: 1, reserved: 0))
        request.addAttribute(UInt16(CTRL_ATTR_FAMILY_NAME), string: name)
        let replies: [NetlinkMessage]
        do throws(SystemError) {
            replies = try transact(request)
        } catch where error.errno == ENOENT {
            return nil
        }
        return replies.first?.attributes(afterHeaderOf: MemoryLayout<genlmsghdr>.size)[UInt16(CTRL_ATTR_FAMILY_ID)]?.u16
    }
}
