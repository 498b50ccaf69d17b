import ShuntSystem

/// xdp_redirect attached to port pairs: the reference forwarder of the benchmarks (`shunt
/// xdp-redirect`). Each frame goes, untouched, to the partner of the port it came in on (ports
/// 1<->2, 3<->4, in the order given) through a DEVMAP. Detached by `detach()` or when released.
public final class XDPRedirectPairs {
    public enum SetupError: Error, CustomStringConvertible {
        case noSuchInterface(String)
        case bpf(Error)

        public var description: String {
            switch self {
            case .noSuchInterface(let name): "no interface named '\(name)'"
            case .bpf(let error): "\(error)"
            }
        }
    }

    private let object: BPFObject
    private var attachments: [XDPAttachment] = []

    /// Finds every port (an even number), loads xdp_redirect, fills its maps and attaches it to
    /// each port.
    public init(ports: [String]) throws(SetupError) {
        var indexes: [Int32] = []
        for p in ports {
            guard let i = Sys.interfaceIndex(p) else { throw .noSuchInterface(p) }
            indexes.append(i)
        }
        do {
            object = try BPFObject(embedded: "xdp_redirect")
            let partners = try object.mapFD("partner_of")
            let out = try object.mapFD("out_ports")
            for (i, ifindex) in indexes.enumerated() {
                try BPFMap.update(fd: out, key: UInt32(i), value: UInt32(ifindex))
                try BPFMap.update(fd: partners, key: UInt32(ifindex), value: UInt32(i ^ 1))
            }
            for ifindex in indexes {
                attachments.append(try object.attachXDP(program: "xdp_redirect", ifindex: ifindex))
            }
        } catch {
            throw .bpf(error)
        }
    }

    /// Detaches the program from every port.
    public func detach() {
        attachments.removeAll()
    }
}
