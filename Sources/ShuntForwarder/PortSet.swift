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
        var rings: [[RingPort]] = Array(repeating: [], count: plan.workers)
        do throws(RingSetupError) {
            for info in interfaces {
                var group: UInt16? = nil
                for w in 0..<plan.workers {
                    let fanout: (mode: FanoutMode, group: UInt16?)? = plan.workers > 1 ? (plan.fanout, group) : nil
                    let port = try RingPort(interface: info, config: plan.ring, fanout: fanout)
                    if plan.workers > 1 && group == nil {
                        do throws(SystemError) { group = try port.fanoutGroupID() } catch {
                            throw .system(step: "reading the fanout group", interface: info.name, error)
                        }
                    }
                    rings[w].append(port)
                }
            }
        } catch { throw .setup(error) }
        return PortSet(interfaces: interfaces, rings: rings)
    }

    /// Every interface exists, is up, and its largest frame fits a ring frame.
    private static func lookUp(_ plan: ForwarderPlan) throws(ForwarderError) -> [InterfaceInfo] {
        let maxFrame = min(plan.ring.rx.maxFrameLength(for: plan.ring.version, rx: true),
                           plan.ring.tx.maxFrameLength(for: plan.ring.version, rx: false))
        var infos: [InterfaceInfo] = []
        for name in plan.ports {
            let info: InterfaceInfo
            do throws(RingSetupError) { info = try InterfaceInfo.lookup(name) } catch { throw .setup(error) }
            guard info.isUp else { throw .setup(.interfaceDown(name)) }
            if info.mtu + 18 > maxFrame {
                throw .setup(.frameTooSmallForMTU(interface: name, mtu: info.mtu, maxFrame: maxFrame))
            }
            infos.append(info)
        }
        return infos
    }
}
