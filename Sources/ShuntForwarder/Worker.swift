import CShunt
import Glibc
import ShuntCore
import ShuntRing
import ShuntSystem

/// How a worker waits when its rings are empty.
public struct IdlePolicy: Sendable {
    /// Keep polling the rings this long after the last frame before sleeping in poll(2):
    /// a frame that comes within it is picked up with no wake-up delay.
    public var busyPollMicroseconds: UInt64
    /// Longest single sleep; bounds how long a stop request waits.
    public var sleepMilliseconds: Int32 = 50

    public init(busyPollMicroseconds: UInt64) { self.busyPollMicroseconds = busyPollMicroseconds }
}

/// Type-erased handle for starting and stopping workers of any stage (dispatch once per thread).
protocol WorkerLoop: AnyObject, Sendable {
    var index: Int { get }
    var counters: WorkerCounters { get }
    var ports: [RingPort] { get }
    func run(stop: StopFlag)
}

/// The poll loop every engine shares: `pass` moves what the rings hold and returns how many
/// frames it took; when nothing comes for the busy-poll time, sleep in poll(2). After a stop,
/// forward what the kernel already handed over (what arrives later counts as ring_unread).
@inline(__always)
func runPollLoop(ports: [RingPort], idle: IdlePolicy, stop: StopFlag, pass: () -> Int) {
    let portCount = ports.count
    let pollSet = UnsafeMutablePointer<pollfd>.allocate(capacity: portCount)
    defer { pollSet.deallocate() }
    for (i, port) in ports.enumerated() {
        pollSet[i] = pollfd(fd: port.fd, events: Int16(POLLIN), revents: 0)
    }
    let busyPollNs = idle.busyPollMicroseconds * 1000
    var lastWork = Sys.monotonicNanoseconds()
    while !stop.isSet {
        if pass() > 0 {
            lastWork = Sys.monotonicNanoseconds()
            continue
        }
        let now = Sys.monotonicNanoseconds()
        if now &- lastWork < busyPollNs { continue }
        if ports.contains(where: { $0.rx.hasReadyFrames() }) { continue }
        // A reopened port has a new socket.
        for (i, port) in ports.enumerated() { pollSet[i].fd = port.fd }
        _ = try? Sys.poll(pollSet, count: portCount, timeoutMs: idle.sleepMilliseconds)
        for i in 0..<portCount where pollSet[i].revents & Int16(POLLERR) != 0 {
            // A socket error (ENETDOWN: the port's device was deleted) stays pending, and poll
            // would return at once forever: reading it clears it.
            var error: Int32 = 0
            try? Sys.getsockopt(pollSet[i].fd, level: SOL_SOCKET, name: SO_ERROR, into: &error)
        }
        lastWork = Sys.monotonicNanoseconds()
    }
    while pass() > 0 {}
}

/// One send() (or sendmmsg()) per port that has frames queued: the end of every pass. Frames the
/// kernel refused were counted as sent at commit: they move to tx_error.
@inline(__always)
func flushTransmitRings(_ ports: [RingPort], _ counters: WorkerCounters) {
    for (p, port) in ports.enumerated() {
        if port.tx.pending > 0 {
            port.tx.stalled = false
            port.tx.flush(fd: port.fd)
        }
        // Also refusals found by a flush inside a claim earlier in the pass.
        let rejected = port.tx.takeRejected()
        if rejected.frames > 0 {
            counters.add(p, .txPackets, 0 &- rejected.frames)
            counters.add(p, .txBytes, 0 &- rejected.bytes)
            counters.addTxDrop(p, .txError, rejected.frames)
        }
    }
}

/// Turns the RX walkers' own counts (frames too large for the ring, frames the host sent) into
/// counted drops of the worker.
struct WalkerDropAccounting {
    private var seenTooLarge: [UInt64]
    private var seenOutgoing: [UInt64]

    init(portCount: Int) {
        seenTooLarge = Array(repeating: 0, count: portCount)
        seenOutgoing = Array(repeating: 0, count: portCount)
    }

    @inline(__always)
    mutating func account(_ p: Int, _ port: RingPort, _ counters: WorkerCounters) {
        let c = port.rx.counters
        if c.tooLarge != seenTooLarge[p] {
            let d = c.tooLarge - seenTooLarge[p]
            counters.add(p, .rxPackets, d)
            counters.addRxDrop(p, .tooLarge, d)
            seenTooLarge[p] = c.tooLarge
        }
        if c.outgoing != seenOutgoing[p] {
            let d = c.outgoing - seenOutgoing[p]
            counters.add(p, .rxPackets, d)
            counters.addRxDrop(p, .outgoing, d)
            seenOutgoing[p] = c.outgoing
        }
    }
}

/// A stop request visible to every worker.
public final class StopFlag: @unchecked Sendable {
    private let word = UnsafeMutablePointer<UInt32>.allocate(capacity: 1)
    public init() { word.initialize(to: 0) }
    deinit { word.deallocate() }
    public func set() { cshunt_store_release_u32(word, 1) }
    public var isSet: Bool { cshunt_load_acquire_u32(word) != 0 }
    public func clear() { cshunt_store_release_u32(word, 0) }
}

/// One forwarding thread: its own RX and TX ring on every port, and its own pipeline stage.
///
/// The loop (a DPDK-style poll loop): for each port, take a batch from its RX ring, let the
/// stage decide every frame, copy each frame once from the RX ring into the chosen TX rings,
/// give the RX memory back; then one send() per port that has frames queued. Generic over the
/// stage, so per-packet calls are static; nothing allocates after start.
final class Worker<Stage: ForwardingStage>: WorkerLoop, @unchecked Sendable {
    let index: Int
    let ports: [RingPort]
    let counters: WorkerCounters
    var stage: Stage
    let idle: IdlePolicy
    private var walkerDrops: WalkerDropAccounting

    init(index: Int, ports: [RingPort], stage: Stage, idle: IdlePolicy) {
        self.index = index
        self.ports = ports
        self.stage = stage
        self.idle = idle
        counters = WorkerCounters(portCount: ports.count)
        walkerDrops = WalkerDropAccounting(portCount: ports.count)
    }

    func run(stop: StopFlag) {
        var batch = PacketBatch(capacity: maxBurst)
        runPollLoop(ports: ports, idle: idle, stop: stop) { pass(&batch) }
    }

    /// One round over every port; returns the frames taken from the RX rings.
    @inline(__always)
    func pass(_ batch: inout PacketBatch) -> Int {
        var moved = 0
        let nowMs = Sys.monotonicNanoseconds() / 1_000_000
        for p in 0..<ports.count {
            let port = ports[p]
            let n = port.rx.fill(&batch, port: UInt16(p))
            walkerDrops.account(p, port, counters)
            if n > 0 {
                stage.process(batch, nowMs: nowMs)
                transmit(batch)
                moved += n
            }
            port.rx.releaseConsumed()
            batch.removeAll()
        }
        flushTransmitRings(ports, counters)
        return moved
    }

    @inline(__always)
    private func transmit(_ batch: borrowing PacketBatch) {
        var rxBytes: UInt64 = 0
        let inPort = Int(batch.packet(0).inPort)
        for i in 0..<batch.count {
            let packet = batch.packet(i)
            rxBytes &+= UInt64(packet.outputLength)
            let verdict = batch.verdict(i)
            switch verdict.kind {
            case .output:
                let out = Int(verdict.port)
                if out < ports.count {
                    emit(packet, to: out)
                } else {
                    counters.addRxDrop(inPort, .noOutput)
                }
            case .flood:
                var copies = 0
                for out in 0..<ports.count where out != Int(verdict.port) {
                    emit(packet, to: out)
                    copies += 1
                }
                if copies == 0 { counters.addRxDrop(inPort, .noOutput) }
            case .drop:
                counters.addRxDrop(inPort, verdict.reason ?? .noOutput)
            }
        }
        counters.add(inPort, .rxPackets, UInt64(batch.count))
        counters.add(inPort, .rxBytes, rxBytes)
    }

    @inline(__always)
    private func emit(_ packet: PacketDescriptor, to out: Int) {
        let port = ports[out]
        let length = packet.outputLength
        if length < 14 {
            counters.addTxDrop(out, .runt)
            return
        }
        if length > port.maxTransmitLength {
            counters.addTxDrop(out, .tooLarge)
            return
        }
        guard let frame = port.claimTransmitFrame() else {
            counters.addTxDrop(out, .txRingFull)
            return
        }
        let written = copyFrameForTransmit(packet, to: frame)
        port.tx.commit(length: written)
        counters.add(out, .txPackets, 1)
        counters.add(out, .txBytes, UInt64(written))
    }
}
