import CShunt
import Glibc
import Testing
@testable import ShuntSystem

/// A netlink message as the kernel would write it: nlmsghdr, then `body`, padded to 4 bytes.
func netlinkMessage(type: Int32, flags: Int32 = 0, sequence: UInt32, body: [UInt8] = []) -> [UInt8] {
    var header = nlmsghdr()
    header.nlmsg_len = UInt32(16 + body.count)
    header.nlmsg_type = UInt16(type)
    header.nlmsg_flags = UInt16(flags)
    header.nlmsg_seq = sequence
    var out = withUnsafeBytes(of: header) { Array($0) } + body
    out += [UInt8](repeating: 0, count: netlinkAlign(out.count) - out.count)
    return out
}

func attribute(_ type: Int, _ payload: [UInt8]) -> [UInt8] {
    let length = UInt16(4 + payload.count)
    var out = withUnsafeBytes(of: length) { Array($0) } + withUnsafeBytes(of: UInt16(type)) { Array($0) } + payload
    out += [UInt8](repeating: 0, count: netlinkAlign(out.count) - out.count)
    return out
}

func bytes<T: BitwiseCopyable>(of value: T) -> [UInt8] { withUnsafeBytes(of: value) { Array($0) } }

func collect(_ datagrams: [[UInt8]], sequence: UInt32) throws(SystemError) -> NetlinkReplyCollector {
    var collector = NetlinkReplyCollector(sequence: sequence, summary: "TEST request")
    for datagram in datagrams {
        let result: Result<Void, SystemError> = datagram.withUnsafeBytes { raw in
            Result { () throws(SystemError) in try collector.consume(raw) }
        }
        try result.get()
    }
    return collector
}

@Suite("Netlink requests and replies (no kernel)")
struct NetlinkTests {
    @Test func requestHasHeaderLengthSequenceAndPaddedAttributes() throws {
        var request = NetlinkRequest(type: UInt16(RTM_GETLINK), summary: "RTM_GETLINK \"ab\"")
        var info = ifinfomsg()
        info.ifi_index = 7
        request.appendHeader(info)
        request.addAttribute(UInt16(IFLA_IFNAME), string: "ab")       // 4 + 3 bytes, padded to 8
        request.addAttribute(UInt16(IFLA_EXT_MASK), UInt32(0x0102_0304))
        let datagram = request.encoded(sequence: 42)

        #expect(datagram.count == 16 + 16 + 8 + 8)
        let header = datagram.withUnsafeBytes { $0.loadUnaligned(as: nlmsghdr.self) }
        #expect(header.nlmsg_len == UInt32(datagram.count))
        #expect(header.nlmsg_type == UInt16(RTM_GETLINK))
        #expect(header.nlmsg_flags == UInt16(NLM_F_REQUEST | NLM_F_ACK))
        #expect(header.nlmsg_seq == 42)
        #expect(Array(datagram[32..<40]) == [7, 0, UInt8(IFLA_IFNAME), 0, 0x61, 0x62, 0, 0])
        #expect(Array(datagram[40..<48]) == [8, 0, UInt8(IFLA_EXT_MASK), 0, 4, 3, 2, 1])
        #expect(!request.isDump)
    }

    @Test func dumpRequestAsksForNoAck() {
        let request = NetlinkRequest(type: UInt16(RTM_GETLINK), flags: UInt16(NLM_F_DUMP), summary: "dump")
        let header = request.encoded(sequence: 1).withUnsafeBytes { $0.loadUnaligned(as: nlmsghdr.self) }
        #expect(request.isDump)
        #expect(header.nlmsg_flags == UInt16(NLM_F_REQUEST | NLM_F_DUMP))
    }

    @Test func nestedAttributeCoversItsChildrenAndParsesBack() throws {
        var request = NetlinkRequest(type: 100, summary: "nested")
        request.addNested(5) { inner in
            inner.addAttribute(1, string: "veth")
            inner.addAttribute(2, UInt16(9))
        }
        request.addAttribute(6, UInt64(0xAABB))
        let datagram = request.encoded(sequence: 1)
        let message = NetlinkMessage(type: 100, flags: 0, payload: Array(datagram[16...]))
        let attributes = message.attributes(afterHeaderOf: 0)

        let nest = try #require(attributes[5])
        #expect(nest.isNested)
        #expect(nest.payload.count == 12 + 8)
        #expect(nest.nested[1]?.string == "veth")
        #expect(nest.nested[2]?.u16 == 9)
        #expect(nest.nested[2]?.u32 == nil, "a reader checks the payload's size")
        #expect(attributes[6]?.u64 == 0xAABB)
        #expect(attributes[7] == nil)
        #expect(attributes.map(\.type) == [5, 6])
    }

    @Test func malformedAttributeEndsTheRun() {
        let good = attribute(1, [1, 0, 0, 0])
        let bad: [UInt8] = [200, 0, 2, 0, 9, 9, 9, 9]  // claims 200 bytes
        let message = NetlinkMessage(type: 0, flags: 0, payload: good + bad + attribute(3, [3]))
        #expect(message.attributes(afterHeaderOf: 0).map(\.type) == [1])
    }

    @Test func multipartDumpEndsAtDoneAndSkipsOtherSequences() throws {
        let multi = Int32(NLM_F_MULTI)
        let first = netlinkMessage(type: Int32(RTM_NEWLINK), flags: multi, sequence: 5, body: [1, 2, 3, 4])
            + netlinkMessage(type: Int32(RTM_NEWLINK), flags: multi, sequence: 4, body: [9, 9, 9, 9])
            + netlinkMessage(type: Int32(RTM_NEWLINK), flags: multi, sequence: 5, body: [5, 6, 7])
        var collector = try collect([first], sequence: 5)
        #expect(!collector.isComplete)
        #expect(collector.messages.map(\.payload) == [[1, 2, 3, 4], [5, 6, 7]], "nlmsg_len bounds the payload, not the padding")

        collector = try collect([first, netlinkMessage(type: NLMSG_DONE, flags: multi, sequence: 5, body: bytes(of: Int32(0)))], sequence: 5)
        #expect(collector.isComplete)
        #expect(collector.messages.count == 2)
    }

    @Test func ackEndsAnExchange() throws {
        let reply = netlinkMessage(type: Int32(RTM_NEWLINK), sequence: 9, body: [0, 0, 0, 0])
        let ack = netlinkMessage(type: NLMSG_ERROR, sequence: 9, body: bytes(of: Int32(0)) + [UInt8](repeating: 0, count: 16))
        let collector = try collect([reply, ack], sequence: 9)
        #expect(collector.isComplete)
        #expect(collector.messages.count == 1)
    }

    @Test func errorBecomesSystemErrorWithTheKernelsMessage() {
        // NETLINK_CAP_ACK: the errno and the request's bare header; NETLINK_EXT_ACK: then TLVs.
        let body = bytes(of: Int32(-ENODEV)) + [UInt8](repeating: 0, count: 16)
            + attribute(Int(NLMSGERR_ATTR_MSG.rawValue), Array("no such thing".utf8) + [0])
        let error = netlinkMessage(
            type: NLMSG_ERROR, flags: Int32(NLM_F_CAPPED | NLM_F_ACK_TLVS), sequence: 3, body: body)
        #expect(throws: SystemError(errno: ENODEV, call: "TEST request (no such thing)")) {
            _ = try collect([error], sequence: 3)
        }
        let plain = netlinkMessage(type: NLMSG_ERROR, sequence: 3, body: bytes(of: Int32(-EPERM)) + [UInt8](repeating: 0, count: 16))
        #expect(throws: SystemError(errno: EPERM, call: "TEST request")) { _ = try collect([plain], sequence: 3) }
    }

    @Test func dumpErrorInDoneIsThrown() {
        let done = netlinkMessage(type: NLMSG_DONE, flags: Int32(NLM_F_MULTI), sequence: 2, body: bytes(of: Int32(-EMSGSIZE)))
        #expect(throws: SystemError(errno: EMSGSIZE, call: "TEST request")) { _ = try collect([done], sequence: 2) }
    }

    @Test func badMessageLengthIsAProtocolError() {
        var message = netlinkMessage(type: Int32(RTM_NEWLINK), sequence: 1, body: [0, 0, 0, 0])
        message[0] = 200  // longer than the datagram
        let tooLong = #expect(throws: SystemError.self) { _ = try collect([message], sequence: 1) }
        #expect(tooLong?.errno == EPROTO)
        let truncated = #expect(throws: SystemError.self) { _ = try collect([Array(message[0..<10])], sequence: 1) }
        #expect(truncated?.errno == EPROTO)
    }

    @Test(arguments: ["", "a/b", "with space", "sixteen-chars-xx", "a:b", ".."])
    func invalidInterfaceNamesAreRejectedBeforeAskingTheKernel(name: String) {
        #expect(throws: SystemError(errno: EINVAL, call: "interface name \"\(name)\"")) {
            _ = try XDPPeers.readiness(of: name)
        }
    }
}
