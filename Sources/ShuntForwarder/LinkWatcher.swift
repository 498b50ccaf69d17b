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
    /// Per port: its state and its ifindex now (a deleted port that came back has a new one);
    /// the log lines not yet taken; ports that came back and are not reopened yet.
    private struct Shared {
        var states: [State]
        var indexes: [Int32]
        var notices: [String] = []
        var reappeared: [(port: Int, ifindex: Int32)] = []
        /// Ports that came back and are not reopened yet: they stay down (deleted) till then.
        var reopening: Set<Int> = []
    }
    private let state: Mutex<Shared>
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
        state = Mutex(Shared(states: Array(repeating: .up, count: interfaces.count), indexes: interfaces.map(\.index)))
        try resync()
    }

    /// Each port's state now, by port index.
    var states: [State] { state.withLock { $0.states } }

    /// Each port's ifindex now.
    var indexes: [Int32] { state.withLock { $0.indexes } }

    /// Deleted ports that exist again under their name (their new ifindex), since the last call.
    func takeReappeared() -> [(port: Int, ifindex: Int32)] {
        state.withLock { s in defer { s.reappeared.removeAll() }; return s.reappeared }
    }

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
        var fresh: [Int: State] = [:]
        let indexes = self.indexes
        for (i, info) in interfaces.enumerated() {
            do throws(SystemError) {
                // By ifindex only: a renamed port is still the same device (as the
                // notifications see it).
                fresh[i] = Self.state(flags: try queries.link(index: indexes[i]).flags)
            } catch {
                guard error.errno == ENODEV else { throw error }
                // Gone; back already under its name? Down until the forwarder reopens it.
                if let again = try? queries.link(named: info.name) { reappear(i, ifindex: again.index) }
                fresh[i] = .deleted
            }
        }
        apply(fresh)
    }

    /// The forwarder reopened `port` on its new ifindex: its state follows that device now.
    /// (Called from the forwarder's housekeeping thread, beside this watcher's own.)
    func reopened(_ port: Int) {
        var probe = try? NetlinkSocket(.route, timeoutSeconds: 2)
        let flags = try? probe?.link(index: indexes[port]).flags
        state.withLock { _ = $0.reopening.remove(port) }
        apply([port: flags.map(Self.state(flags:)) ?? .deleted])
    }

    private func reappear(_ port: Int, ifindex: Int32) {
        state.withLock { s in
            s.indexes[port] = ifindex
            s.reappeared.append((port, ifindex))
            s.reopening.insert(port)
        }
    }

    /// Merges the ports' new states; logs and reports a change.
    private func apply(_ updates: [Int: State]) {
        let down: Set<UInt32>? = state.withLock { s in
            var changed = false
            for (i, new) in updates.sorted(by: { $0.key < $1.key }) where s.states[i] != new && !s.reopening.contains(i) {
                let old = s.states[i]
                s.states[i] = new
                changed = true
                if old == .deleted && new != .deleted { continue }  // the forwarder says it reopened the port
                s.notices.append("port \(interfaces[i].name): link \(new == .up ? "up" : new.rawValue)"
                                 + (new == .up ? "" : "; flows stop sending to it (output_down when nothing else is left), group buckets and bonds watching it choose others"))
            }
            return changed ? Self.downPorts(s.states) : nil
        }
        if let down { onChange(down) }
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
            var updates: [Int: State] = [:]
            let indexes = self.indexes
            for message in batch.messages {
                // AF_BRIDGE messages (a port leaving a Linux bridge) are about bridge membership.
                guard message.type == UInt16(RTM_NEWLINK) || message.type == UInt16(RTM_DELLINK),
                      let info = message.header(ifinfomsg.self), info.ifi_family == UInt8(AF_UNSPEC) else { continue }
                if let i = indexes.firstIndex(of: info.ifi_index) {
                    updates[i] = message.type == UInt16(RTM_DELLINK) ? .deleted : Self.state(flags: info.ifi_flags)
                } else if message.type == UInt16(RTM_NEWLINK),
                          let name = message.attributes(afterHeaderOf: MemoryLayout<ifinfomsg>.size)[UInt16(IFLA_IFNAME)]?.string,
                          let i = interfaces.firstIndex(where: { $0.name == name }), states[i] == .deleted,
                          updates[i] == nil || updates[i] == .deleted {
                    // A deleted port created again: down until the forwarder has reopened it.
                    reappear(i, ifindex: info.ifi_index)
                }
            }
            if !updates.isEmpty { apply(updates) }
        }
    }
}
