// libFuzzer target: `FlowKeyExtractor.extract` on arbitrary frames. The frame is copied into a
// buffer of exactly its length, so AddressSanitizer reports any read past its end.
// First byte: bit 0 = the ring stripped a VLAN tag (its TCI in the next two bytes).
import ShuntCore

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzFlowKey(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size >= 1 else { return 0 }
    var offset = 1
    var tci: UInt16? = nil
    if data[0] & 1 != 0 {
        guard size >= 3 else { return 0 }
        tci = UInt16(data[1]) << 8 | UInt16(data[2])
        offset = 3
    }
    let length = size - offset
    let frame = UnsafeMutableRawPointer.allocate(byteCount: max(length, 1), alignment: 1)
    defer { frame.deallocate() }
    frame.copyMemory(from: data + offset, byteCount: length)
    var key = FlowKey()
    let ok = FlowKeyExtractor.extract(frame: frame, length: length, inPort: 7, strippedVLANTCI: tci, into: &key)
    var again = FlowKey()
    let ok2 = FlowKeyExtractor.extract(frame: frame, length: length, inPort: 7, strippedVLANTCI: tci, into: &again)
    guard ok == ok2, key == again else { fatalError("extract is not deterministic") }
    return 0
}
