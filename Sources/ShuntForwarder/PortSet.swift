import ShuntRing
import ShuntSystem

/// A plan's interfaces, looked up and checked against the system, with a ring on each for every
/// worker; per interface, the workers' sockets form one fanout group. Nothing is left open when
/// `open` throws.
struct PortSet {
    let interfaces: [InterfaceInfo]
    /// Per worker: its ring on every interface, in port order.
    let rings: [[RingPort]]

    static func open(_ plan: ForwarderPlan) throws(ForwarderError) -> PortSet {
        let interfaces = try lookUp(plan)
        try checkMemory(plan, interfaces: interfaces.count, available: availableMemory())
        var rings: [[RingPort]] = Array(repeating: [], count: plan.workers)
        do throws(RingSetupError) {
            for info in interfaces {
                for (w, port) in try openRings(info, plan).enumerated() { rings[w].append(port) }
            }
        } catch { throw .setup(error) }
        return PortSet(interfaces: interfaces, rings: rings)
    }

    /// One ring per worker on `info`, the workers' sockets in one fanout group (at start, and
    /// for a port reopened on an interface that came back).
    static func openRings(_ info: InterfaceInfo, _ plan: ForwarderPlan) throws(RingSetupError) -> [RingPort] {
        var rings: [RingPort] = []
        var group: UInt16? = nil
        for _ in 0..<plan.workers {
            let fanout: (mode: FanoutMode, group: UInt16?)? = plan.workers > 1 ? (plan.fanout, group) : nil
            let port = try RingPort(interface: info, config: plan.ring, fanout: fanout)
            if plan.workers > 1 && group == nil {
                do throws(SystemError) { group = try port.fanoutGroupID() } catch {
                    throw .system(step: "reading the fanout group", interface: info.name, error)
                }
            }
            rings.append(port)
        }
        return rings
    }

    /// The interface's largest frame fits a ring frame.
    static func checkFrameSize(_ info: InterfaceInfo, _ plan: ForwarderPlan) throws(RingSetupError) {
        let maxFrame = min(plan.ring.rx.maxFrameLength(for: plan.ring.version, rx: true),
                           plan.ring.tx.maxFrameLength(for: plan.ring.version, rx: false))
        if TxRing.longestFrame(mtu: info.mtu) > maxFrame { throw .frameTooSmallForMTU(interface: info.name, mtu: info.mtu, maxFrame: maxFrame) }
    }

    /// The rings' memory (pinned kernel pages, one RX and one TX ring per worker and interface)
    /// must stay under half of what the machine has available: asking for more gets the process
    /// killed by the OOM killer while the kernel allocates, instead of a message.
    static func checkMemory(_ plan: ForwarderPlan, interfaces: Int, available: UInt64?) throws(ForwarderError) {
        guard let available else { return }
        let perSocket = UInt64(plan.ring.rx.byteCount + plan.ring.tx.byteCount)
        let sockets = UInt64(plan.workers * interfaces)
        let (total, overflow) = perSocket.multipliedReportingOverflow(by: sockets)
        guard overflow || total > available / 2 else { return }
        func mib(_ b: UInt64) -> String { "\(b >> 20) MiB" }
        throw .ringMemory("the rings would take \(overflow ? "more than 16 EiB" : mib(total)) (\(sockets) sockets of \(mib(perSocket)): --block-size \(plan.ring.rx.blockSize) x --block-count \(plan.ring.rx.blockCount) for RX, plus TX), more than half of the \(mib(available)) this machine has available; lower --block-count or --block-size")
    }

    /// MemAvailable from /proc/meminfo, in bytes; nil when it cannot be read.
    static func availableMemory() -> UInt64? {
        guard let bytes = try? Sys.readWholeFile("/proc/meminfo") else { return nil }
        for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n") where line.hasPrefix("MemAvailable:") {
            let fields = line.split(separator: " ")
            guard fields.count >= 2, let kib = UInt64(fields[1]) else { return nil }
            return kib * 1024
        }
        return nil
    }

    /// Every interface exists, is up, and its largest frame fits a ring frame.
    private static func lookUp(_ plan: ForwarderPlan) throws(ForwarderError) -> [InterfaceInfo] {
        var infos: [InterfaceInfo] = []
        for name in plan.ports {
            do throws(RingSetupError) {
                let info = try InterfaceInfo.lookup(name)
                guard info.isUp else { throw .interfaceDown(name) }
                try checkFrameSize(info, plan)
                infos.append(info)
            } catch { throw .setup(error) }
        }
        return infos
    }
}
