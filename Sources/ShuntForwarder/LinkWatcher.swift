import CShunt
import Glibc
import ShuntRing
import ShuntSystem
import Synchronization

/// Follows the link state of the forwarder's interfaces from rtnetlink's link notifications
/// (RTMGRP_LINK), as ovs-vswitchd does: a port is down when it is administratively down, has
/// no carrier (a veth whose peer is down) or was deleted. Every change is handed to `onChange`
/// (the flow datapath re-translates, so groups choose other buckets and outputs to the port
/// drop as output_down) and leaves one line for the log. Its thread polls the socket every
/// 50 ms, so a change is seen within that plus one revalidator pass.
final class LinkWatcher: @unchecked Sendable {
    enum State: String, Sendable {
        case up
        /// IFF_UP is off.
        case adminDown = "down (administratively)"
        /// Up, but IFF_RUNNING is off: no carrier (a veth whose peer is down or gone).
        case noCarrier = "down (no carrier)"
        case deleted = "down (deleted)"
    }

    let interfaces: [InterfaceInfo]
    private let onChange: @Sendable (Set<UInt32>) -> Void
    private let state: Mutex<(states: [State], notices: [String])>
    /// Joined to RTMGRP_LINK: notifications only.
    private var events: NetlinkSocket
    /// Queries (RTM_GETLINK) on a socket of their own, so that waiting for an answer never
    /// swallows a notification.
    private var queries: NetlinkSocket
    /// The kernel dropped notifications (ENOBUFS) and a re-read has not succeeded yet.
    private var needsResync = false

    init(interfaces: [InterfaceInfo], onChange: @escaping @Sendable (Set<UInt32>) -> Void) throws(SystemError) {
        self.interfaces = interfaces
        self.onChange = onChange
        events = try NetlinkSocket(.route, timeoutSeconds: 2, groups: UInt32(RTMGRP_LINK))
        queries = try NetlinkSocket(.route, timeoutSeconds: 2)
        state = Mutex((Array(repeating: .up, count: interfaces.count), []))
        try resync()
    }

    /// Each port's state now, by port index.
    var states: [State] { state.withLock { $0.states } }

    /// The lines logged since the last call.
    func takeNotices() -> [String] { state.withLock { s in defer { s.notices.removeAll() }; return s.notices } }

    /// Datapath port numbers (from 1) of the ports that are down.
    private static func downPorts(_ states: [State]) -> Set<UInt32> {
        Set(states.enumerated().filter { $0.element != .up }.map { UInt32($0.offset + 1) })
    }

    private static func state(flags: UInt32) -> State {
        if flags & UInt32(IFF_UP) == 0 { return .adminDown }
        if flags & UInt32(IFF_RUNNING) == 0 { return .noCarrier }
        return .up
    }

    /// Reads every port's state afresh (at start, and after the kernel dropped notifications).
    private func resync() throws(SystemError) {
        var fresh: [State] = []
        for info in interfaces {
            do throws(SystemError) {
                // By ifindex only: a renamed port is still the same device (as the
                // notifications see it).
                fresh.append(Self.state(flags: try queries.link(index: info.index).flags))
            } catch {
                guard error.errno == ENODEV else { throw error }
                fresh.append(.deleted)
            }
        }
        apply(fresh)
    }

    private func apply(_ fresh: [State]) {
        let changed: Bool = state.withLock { s in
            guard fresh != s.states else { return false }
            for (i, (old, new)) in zip(s.states, fresh).enumerated() where old != new {
                s.notices.append("port \(interfaces[i].name): link \(new == .up ? "up" : new.rawValue)"
                                 + (new == .up ? "" : "; flows stop sending to it (output_down when nothing else is left), group buckets and bonds watching it choose others"))
            }
            s.states = fresh
            return true
        }
        if changed { onChange(Self.downPorts(fresh)) }
    }

    func run(stop: StopFlag) {
        while !stop.isSet {
            let batch: (messages: [NetlinkMessage], overrun: Bool)
            do throws(SystemError) {
                batch = try events.notifications(timeoutMs: 50)
            } catch {
                Sys.sleep(nanoseconds: 50_000_000)
                continue
            }
            if batch.overrun { needsResync = true }
            if needsResync {
                // Retried every pass until it works: the overrun is reported once.
                needsResync = (try? resync()) == nil
                continue
            }
            var fresh = states
            for message in batch.messages {
                // AF_BRIDGE messages (a port leaving a Linux bridge) are about bridge membership.
                guard message.type == UInt16(RTM_NEWLINK) || message.type == UInt16(RTM_DELLINK),
                      let info = message.header(ifinfomsg.self), info.ifi_family == UInt8(AF_UNSPEC),
                      let i = interfaces.firstIndex(where: { $0.index == info.ifi_index }) else { continue }
                fresh[i] = message.type == UInt16(RTM_DELLINK) ? .deleted : Self.state(flags: info.ifi_flags)
            }
            apply(fresh)
        }
    }
}
