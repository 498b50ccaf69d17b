/// Copies a received frame to `destination` exactly as it was on the wire: the VLAN tag that the
/// kernel moved into ring metadata goes back in after the MAC addresses, and a checksum left to
/// offload by the sending stack is completed. Returns the bytes written (`packet.outputLength`).
@inlinable
public func copyFrameForTransmit(_ packet: PacketDescriptor, to destination: UnsafeMutableRawPointer) -> Int {
    let length = Int(packet.capturedLength)
    var written = length
    if packet.flags.contains(.hasVLANTag) && length >= 12 {
        destination.copyMemory(from: packet.data, byteCount: 12)
        let tpid = packet.vlanTPID == 0 ? 0x8100 : packet.vlanTPID
        (destination + 12).storeBytes(of: tpid.bigEndian, as: UInt16.self)
        (destination + 14).storeBytes(of: packet.vlanTCI.bigEndian, as: UInt16.self)
        (destination + 16).copyMemory(from: packet.data + 12, byteCount: length - 12)
        written += 4
    } else {
        destination.copyMemory(from: packet.data, byteCount: length)
    }
    if packet.flags.contains(.checksumNotReady) {
        Checksum.completeTransportChecksum(frame: UnsafeMutableRawBufferPointer(start: destination, count: written))
    }
    return written
}
