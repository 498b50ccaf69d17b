// libFuzzer target: parsing a frame into an `ARPMessage` and writing the reply (exact-length
// buffers, AddressSanitizer); the written frames must parse back to the same message.
import ShuntCore

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzARP(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let frame = UnsafeMutableRawPointer.allocate(byteCount: max(size, 1), alignment: 1)
    defer { frame.deallocate() }
    frame.copyMemory(from: data, byteCount: size)
    guard let message = ARPMessage(frame: frame, length: size) else { return 0 }
    let out = UnsafeMutableRawPointer.allocate(byteCount: ARPMessage.frameLength, alignment: 1)
    defer { out.deallocate() }
    for m in [message, message.reply(from: MACAddress(value: 0x02_AA_BB_CC_DD_EE)),
              ARPMessage.request(from: message.senderMAC, ip: message.senderIP, for: message.targetIP)] {
        m.write(to: out)
        guard ARPMessage(frame: out, length: ARPMessage.frameLength) == m else { fatalError("\(m) does not parse back") }
    }
    return 0
}
