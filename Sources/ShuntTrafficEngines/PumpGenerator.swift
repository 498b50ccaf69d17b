import CShunt
import Glibc
import ShuntBPF
import ShuntRing
import ShuntRuntime
import ShuntSystem
import ShuntTraffic

/// `shunt gen --engine pump`: frames generated inside the kernel without live frames
/// (docs/design/0015-in-kernel-pump.md). A veth pair of its own (pump A <-> pump B, created here,
/// deleted at the end) carries a few circulating frames: xdp_pump on pump B stamps each due
/// frame with xdp_gen's schedule and broadcasts it to the generator port and round the loop
/// again; xdp_pump_bounce on pump A sends everything back. The frames are injected once from
/// user space (an AF_PACKET socket on pump A), so the pump runs in the veths' NAPI on the CPU
/// this command runs on. Its counts (gen_state) are as exact as xdp_gen's: a frame is counted
/// when it is handed to the generator port.
extension Generator {
    /// The pump's result, and how often it was given new frames because its circulation had
    /// stopped (`pump_reinjections` in the report).
    func runPump(_ supervisor: Supervisor) throws(CommandFailure) -> (results: [ThreadResult], reinjections: Int) {
        let pair: PumpPair
        do { pair = try PumpPair.create() } catch { throw CommandFailure(status: 2, "--engine pump: \(error)") }
        defer { pair.delete() }
        let pump = try startPump(pair)
        let watch = watchPump(pump, pair, supervisor)
        try? BPFMap.update(fd: pump.controlFD, key: 0, value: UInt32(1))
        Sys.sleep(nanoseconds: 20_000_000)  // the frames in flight finish their lap and are dropped
        pump.detach()
        if watch.neverStarted {
            throw CommandFailure(status: 1, "--engine pump: no frame went round the pump's veth pair in 1 s (\(watch.reinjections) re-injections)")
        }
        guard let s = pump.state() else { throw CommandFailure(status: 1, "reading the state failed") }
        return ([ThreadResult(sent: s.next_seq, firstNs: s.first_ns, lastNs: s.last_ns, lagSkips: s.lag_skips,
                              skippedNs: s.skipped_ns, maxLagSeenNs: s.max_lag_seen_ns)], watch.reinjections)
    }

    /// xdp_gen's object with the pump's maps set, its programs attached to the pair, and the
    /// first frames injected. Status 2 on failure.
    private func startPump(_ pair: PumpPair) throws(CommandFailure) -> Pump {
        let spec = settings.frame
        do {
            let object = try BPFObject(embedded: "xdp_gen") { try $0.setReadOnlyData(spec.genConfig(stream: UInt16(settings.stream))) }
            let pump = Pump(object: object, stateFD: try object.mapFD("gen_state"), controlFD: try object.mapFD("pump_control"))
            try BPFMap.update(fd: pump.stateFD, key: 0, value: settings.initialGenState(settings.share(0)))
            let ports = try object.mapFD("pump_ports")
            try BPFMap.update(fd: ports, key: UInt32(interface.index), value: UInt32(interface.index))
            try BPFMap.update(fd: ports, key: UInt32(pair.b), value: UInt32(pair.b))
            try BPFMap.update(fd: try object.mapFD("pump_loop"), key: 0, value: UInt32(pair.b))
            try BPFMap.update(fd: pump.controlFD, key: 0, value: UInt32(0))
            pump.attachments.append(try object.attachXDP(program: "xdp_pump_bounce", ifindex: pair.a))
            pump.attachments.append(try object.attachXDP(program: "xdp_pump", ifindex: pair.b))
            try pair.setUp()
            pair.waitForCarrier(timeoutNs: 1_000_000_000)
            // The pump takes only frames that carry the probe magic (nothing else the stack sends).
            var frame = spec.bytes()
            let offset = spec.isIPv6 ? Probe.offsetIPv6 : Probe.offset
            frame[offset] = UInt8(Probe.magic >> 8)
            frame[offset + 1] = UInt8(Probe.magic & 0xff)
            try pair.inject(frame: frame, count: Self.pumpFrames)
            pump.template = frame
            return pump
        } catch {
            throw CommandFailure(status: 2, "--engine pump: \(error)")
        }
    }

    /// Runs until the limit, the deadline or a stop. Watchdog: the circulating frames can be
    /// lost (a veth ring that was full, the links still coming up when they were injected). A
    /// pump that owes frames but has sent none for a while gets a new set; after a second of
    /// that with nothing sent at all it gives up (`neverStarted`).
    private func watchPump(_ pump: Pump, _ pair: PumpPair, _ supervisor: Supervisor) -> (reinjections: Int, neverStarted: Bool) {
        let stallNs = max(50_000_000, settings.rate.map { UInt64(3e9 / $0) } ?? 0)
        var lastSeq: UInt64 = 0
        var lastProgress = Sys.monotonicNanoseconds()
        let started = lastProgress
        var reinjections = 0
        while supervisor.wait(atMostNs: 1_000_000) {
            guard let s = pump.state() else { continue }
            let now = Sys.monotonicNanoseconds()
            if let limit = settings.share(0).limit, s.next_seq >= limit { break }
            if s.next_seq > 0, let deadline = settings.deadline(first: s.first_ns), now >= deadline { break }
            if s.next_seq != lastSeq {
                lastSeq = s.next_seq
                lastProgress = now
            } else if now - lastProgress > stallNs {
                if s.next_seq == 0 && now - started > 1_000_000_000 { return (reinjections, true) }
                try? pair.inject(frame: pump.template, count: Self.pumpFrames)
                reinjections += 1
                lastProgress = now
            }
        }
        return (reinjections, false)
    }
}

/// xdp_gen loaded for the pump, its state and control maps, and its two attachments.
private final class Pump {
    let object: BPFObject
    let stateFD: Int32
    let controlFD: Int32
    var attachments: [XDPAttachment] = []
    /// The frame injected (with the probe magic), for re-injections.
    var template: [UInt8] = []

    init(object: BPFObject, stateFD: Int32, controlFD: Int32) {
        self.object = object
        self.stateFD = stateFD
        self.controlFD = controlFD
    }

    func state() -> shunt_gen_state? { try? BPFMap.lookup(fd: stateFD, key: 0, as: shunt_gen_state.self) }

    func detach() { attachments.removeAll() }
}

/// The pump's veth pair: `shpmp<pid>a` <-> `shpmp<pid>b` in the current namespace. Pairs left by
/// a generator that was killed are removed when the next pump starts.
struct PumpPair {
    let a: Int32
    let b: Int32
    let nameA: String
    let nameB: String

    static func create() throws -> PumpPair {
        var netlink = try NetlinkSocket(.route)
        // Leftovers of killed pumps (their pid is gone).
        for name in (try? Sys.directoryEntries("/sys/class/net")) ?? [] where name.hasPrefix("shpmp") && name.hasSuffix("a") {
            guard let pid = Int32(name.dropFirst(5).dropLast()), pid > 0, !Sys.processExists(pid),
                  let index = Sys.interfaceIndex(name) else { continue }
            try? netlink.deleteLink(index: index)
        }
        let a = "shpmp\(Sys.processID())a", b = "shpmp\(Sys.processID())b"
        try netlink.createVethPair(name: a, peer: b)
        guard let ia = Sys.interfaceIndex(a), let ib = Sys.interfaceIndex(b) else {
            throw SystemError(errno: ENODEV, call: "the pump's veth pair")
        }
        return PumpPair(a: ia, b: ib, nameA: a, nameB: b)
    }

    func setUp() throws {
        // No IPv6 on the pump's veths: nothing but the injected frames should go round.
        for name in [nameA, nameB] {
            if let fd = try? Sys.open("/proc/sys/net/ipv6/conf/\(name)/disable_ipv6", flags: O_WRONLY) {
                _ = try? "1".utf8CString.withUnsafeBytes { try Sys.writeAll(fd, UnsafeRawBufferPointer(rebasing: $0.dropLast())) }
                Sys.close(fd)
            }
        }
        var netlink = try NetlinkSocket(.route)
        try netlink.setLinkUp(index: a)
        try netlink.setLinkUp(index: b)
    }

    /// Sends `count` copies of `frame` out of pump A; they arrive at pump B's XDP program.
    func inject(frame: [UInt8], count: Int) throws {
        let socket = try PacketSocket()
        try Sys.bindPacket(socket.fd, ifindex: a, protocol: 0)  // protocol 0: send only
        for _ in 0..<count {
            _ = try frame.withUnsafeBytes { try Sys.sendFrame(socket.fd, $0) }
        }
    }

    /// Waits until both ends report carrier (frames sent before that are lost).
    func waitForCarrier(timeoutNs: UInt64) {
        let deadline = Sys.monotonicNanoseconds() + timeoutNs
        let names = [nameA, nameB]
        while Sys.monotonicNanoseconds() < deadline {
            let up = names.allSatisfy { (try? Sys.readWholeFile("/sys/class/net/\($0)/carrier")).map { $0.first == UInt8(ascii: "1") } ?? false }
            if up { return }
            Sys.sleep(nanoseconds: 1_000_000)
        }
    }

    func delete() {
        guard var netlink = try? NetlinkSocket(.route) else { return }
        try? netlink.deleteLink(index: a)
    }
}
