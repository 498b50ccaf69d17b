// libFuzzer target: VXLAN decapsulation on an underlay port (`UnderlayClassifier.classify`),
// then what the worker does with each verdict: the inner frame's key, the ARP reply, the echo
// reply. Frames are copied into buffers of exactly their length (AddressSanitizer).
import ShuntCore

let local = IPv4Address(value: 0xAC10_0001)  // 172.16.0.1
let classifier = UnderlayClassifier(tunnels: [
    TunnelPort(name: "vx-a", port: 3, underlayPort: 1, local: local, remote: IPv4Address(value: 0xAC10_0002), vni: nil),
    TunnelPort(name: "vx-b", port: 4, underlayPort: 1, local: local, remote: IPv4Address(value: 0xAC10_0003), vni: 100),
    TunnelPort(name: "vx-c", port: 5, underlayPort: 1, local: local, remote: IPv4Address(value: 0xAC10_0003), vni: nil),
])
let mac = MACAddress(value: 0x02_00_00_00_00_01)

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzUnderlay(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let frame = UnsafeMutableRawPointer.allocate(byteCount: max(size, 1), alignment: 1)
    defer { frame.deallocate() }
    frame.copyMemory(from: data, byteCount: size)
    switch classifier.classify(frame, length: size) {
    case .decapsulate(let tunnel, _, let innerOffset, let innerLength):
        guard tunnel < classifier.tunnels.count, innerOffset >= 0, innerLength >= 14, innerOffset + innerLength <= size else {
            fatalError("decapsulate: inner \(innerOffset)+\(innerLength) of \(size)")
        }
        let inner = UnsafeMutableRawPointer.allocate(byteCount: innerLength, alignment: 1)
        defer { inner.deallocate() }
        inner.copyMemory(from: frame + innerOffset, byteCount: innerLength)
        var key = FlowKey()
        _ = FlowKeyExtractor.extract(frame: inner, length: innerLength, inPort: 3, strippedVLANTCI: nil, into: &key)
    case .arp(let message):
        let out = UnsafeMutableRawPointer.allocate(byteCount: ARPMessage.frameLength, alignment: 1)
        defer { out.deallocate() }
        let reply = message.reply(from: mac)
        reply.write(to: out)
        guard ARPMessage(frame: out, length: ARPMessage.frameLength) == reply else { fatalError("ARP reply does not parse back") }
    case .echoRequest:
        let capacity = 2048
        let out = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 1)
        defer { out.deallocate() }
        let n = ICMPEcho.writeReply(to: frame, from: mac, into: out, capacity: capacity)
        guard n == 0 || n <= size else { fatalError("echo reply of \(n) bytes for a request of \(size)") }
    case .pass, .drop:
        break
    }
    return 0
}
