import CShunt
import Foundation
import Glibc
import ShuntSystem
import ShuntTestSupport

/// A raw packet socket on one interface of a namespace, for sending and capturing test frames.
final class RawPort {
    let fd: Int32

    init(namespace: String, interface: String) throws {
        fd = try NetworkNamespace.run(in: namespace) {
            let fd = try Sys.socket(domain: AF_PACKET, type: Int32(SOCK_RAW.rawValue), protocol: Int32(UInt16(ETH_P_ALL).bigEndian))
            guard let index = Sys.interfaceIndex(interface) else { throw LabError.command("if_nametoindex \(interface)", "") }
            try Sys.bindPacket(fd, ifindex: index, protocol: UInt16(ETH_P_ALL))
            try Sys.setsockopt(fd, level: SOL_SOCKET, name: SO_RCVBUFFORCE, value: Int32(32 << 20))
            try Sys.setsockopt(fd, level: SOL_PACKET, name: PACKET_AUXDATA, value: Int32(1))
            return fd
        }
    }

    deinit { Sys.close(fd) }

    func send(_ frame: [UInt8]) throws {
        _ = try frame.withUnsafeBytes { try Sys.sendFrame(fd, $0) }
    }

    /// Receives test frames (others are ignored) until `count` arrived or `timeout` passed. The
    /// VLAN tag the receiving kernel strips is put back from PACKET_AUXDATA, so frames compare
    /// as they were on the wire.
    func receive(count: Int, timeout: Double) -> [[UInt8]] {
        receive(count: count, timeout: timeout) { TestFrame.identify($0) != nil }
    }

    /// Receives IPv4/UDP test frames (see `ipv4UDPFrame`), tagged or not.
    func receiveAny(count: Int = Int.max, timeout: Double) -> [[UInt8]] {
        receive(count: count, timeout: timeout) { f in
            let type = f.count > 16 && f[12] == 0x81 && f[13] == 0 ? (f[16], f[17]) : (f[12], f[13])
            return type == (0x08, 0x00) && udpSequence(f) != nil
        }
    }

    func receive(count: Int, timeout: Double, where accept: ([UInt8]) -> Bool) -> [[UInt8]] {
        var frames: [[UInt8]] = []
        let deadline = Date().addingTimeInterval(timeout)
        var buffer = [UInt8](repeating: 0, count: 65536)
        var control = [UInt8](repeating: 0, count: 256)
        var from = sockaddr_ll()
        while frames.count < count && Date() < deadline {
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&pfd, 1, 50) > 0 else { continue }
            let n: Int = buffer.withUnsafeMutableBytes { buf in
                control.withUnsafeMutableBytes { ctl in
                    withUnsafeMutablePointer(to: &from) { fromPtr in
                        var iov = iovec(iov_base: buf.baseAddress, iov_len: buf.count)
                        return withUnsafeMutablePointer(to: &iov) { iovPtr in
                            var msg = msghdr()
                            msg.msg_name = UnsafeMutableRawPointer(fromPtr)
                            msg.msg_namelen = socklen_t(MemoryLayout<sockaddr_ll>.size)
                            msg.msg_iov = iovPtr
                            msg.msg_iovlen = 1
                            msg.msg_control = ctl.baseAddress
                            msg.msg_controllen = ctl.count
                            let n = recvmsg(fd, &msg, Int32(MSG_DONTWAIT))
                            return n
                        }
                    }
                }
            }
            guard n > 0, from.sll_pkttype != UInt8(PACKET_OUTGOING) else { continue }
            var frame = Array(buffer[0..<n])
            if let (tci, tpid) = vlanFromAuxdata(control), frame.count >= 12 {
                frame.insert(contentsOf: [UInt8(tpid >> 8), UInt8(tpid & 0xFF), UInt8(tci >> 8), UInt8(tci & 0xFF)], at: 12)
            }
            if frame.count >= 14 && accept(frame) { frames.append(frame) }
        }
        return frames
    }

    private func vlanFromAuxdata(_ control: [UInt8]) -> (UInt16, UInt16)? {
        // One cmsghdr (16 bytes on 64-bit Linux) followed by struct tpacket_auxdata.
        control.withUnsafeBytes { c -> (UInt16, UInt16)? in
            let level = c.load(fromByteOffset: 8, as: Int32.self)
            let type = c.load(fromByteOffset: 12, as: Int32.self)
            guard level == SOL_PACKET, type == PACKET_AUXDATA else { return nil }
            let aux = c.loadUnaligned(fromByteOffset: 16, as: tpacket_auxdata.self)
            guard aux.tp_status & UInt32(TP_STATUS_VLAN_VALID) != 0 else { return nil }
            let tpid = aux.tp_status & UInt32(TP_STATUS_VLAN_TPID_VALID) != 0 ? aux.tp_vlan_tpid : 0x8100
            return (aux.tp_vlan_tci, tpid)
        }
    }
}

/// A UDP socket in a namespace (traffic from a real stack: checksum offload and all).
final class UDPEndpoint {
    let fd: Int32

    init(namespace: String, bind address: String, port: UInt16) throws {
        fd = try NetworkNamespace.run(in: namespace) {
            let fd = try Sys.socket(domain: AF_INET, type: Int32(SOCK_DGRAM.rawValue), protocol: 0)
            var sin = sockaddr_in()
            sin.sin_family = sa_family_t(AF_INET)
            sin.sin_port = port.bigEndian
            inet_pton(AF_INET, address, &sin.sin_addr)
            let rc = withUnsafePointer(to: &sin) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            if rc != 0 { throw LabError.command("bind \(address):\(port)", String(cString: strerror(errno))) }
            return fd
        }
    }

    deinit { Sys.close(fd) }

    func send(_ payload: [UInt8], to address: String, port: UInt16) -> Bool {
        var sin = sockaddr_in()
        sin.sin_family = sa_family_t(AF_INET)
        sin.sin_port = port.bigEndian
        inet_pton(AF_INET, address, &sin.sin_addr)
        let n = payload.withUnsafeBytes { p in
            withUnsafePointer(to: &sin) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    sendto(fd, p.baseAddress, p.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
        }
        return n == payload.count
    }

    func receive(timeout: Double) -> [UInt8]? {
        var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&pfd, 1, Int32(timeout * 1000)) > 0 else { return nil }
        var buffer = [UInt8](repeating: 0, count: 65536)
        let n = recv(fd, &buffer, buffer.count, 0)
        return n > 0 ? Array(buffer[0..<n]) : nil
    }
}
