import Glibc
import ShuntCore
import ShuntRing
import ShuntRuntime
import ShuntSystem
import ShuntTraffic

/// What the ring engine of `shunt sink` receives on, and how.
public struct RingSinkSettings: Sendable {
    /// The interface to receive on.
    public var port: String
    /// v2 hands each frame over at once; v3 fills blocks.
    public var version: RingVersion
    /// RX ring blocks (of the default block size).
    public var blockCount: Int
    /// v3: milliseconds before a partly filled block is handed over (default 1).
    public var blockTimeoutMs: Int?
    /// Keep polling the ring this long after the last frame before sleeping in poll(2).
    public var busyPollNs: UInt64

    public init(port: String, version: RingVersion = .v2, blockCount: Int = 256, blockTimeoutMs: Int? = nil,
                busyPollNs: UInt64 = 200_000) {
        self.port = port
        self.version = version
        self.blockCount = blockCount
        self.blockTimeoutMs = blockTimeoutMs
        self.busyPollNs = busyPollNs
    }
}

/// The ring engine of `shunt sink`: one thread reads a receive-only TPACKET ring and accounts
/// every frame (`SinkAccounting`).
///
/// The loop is the forwarder workers' idea (busy-poll, then sleep in poll(2)), written small for
/// one ring: take a batch, read CLOCK_MONOTONIC once for the whole batch (the receive time of
/// its frames; `shunt gen` stamps the same clock on the same host), account each frame, hand the
/// ring memory back. With nothing for `busyPollNs` it sleeps in poll(2), at most 50 ms so that a
/// stop request is seen. Every millisecond of work (and after each sleep) it asks the
/// supervisor about SIGINT/SIGTERM, the deadline and the statistics interval. Nothing
/// allocates per frame.
public final class RingSink {
    public let port: ReceivePort
    private let busyPollNs: UInt64
    private(set) var accounting = SinkAccounting()
    /// Frames the kernel could not put in the full ring (PACKET_STATISTICS tp_drops), so far.
    private(set) var ringDropped: UInt64 = 0
    private var batch = PacketBatch(capacity: maxBurst)
    private var seenTooLarge: UInt64 = 0
    private var seenTooLargeBytes: UInt64 = 0

    private static let checkNs: UInt64 = 1_000_000
    private static let sleepMs: Int32 = 50
    /// After a stop, frames already in the ring are still read, for at most this long.
    private static let drainNs: UInt64 = 100_000_000

    /// Opens the ring on the port (errors: no such interface, ring setup).
    public init(_ settings: RingSinkSettings) throws(RingSetupError) {
        var geometry = RingGeometry.defaultRX(settings.version)
        geometry.blockCount = settings.blockCount
        if settings.version == .v3 { geometry.blockTimeoutMs = settings.blockTimeoutMs ?? 1 }
        let info = try InterfaceInfo.lookup(settings.port)
        port = try ReceivePort(interface: info, version: settings.version, geometry: geometry)
        busyPollNs = settings.busyPollNs
    }

    /// Receives until the supervisor says to stop (SIGINT/SIGTERM, the deadline given to its
    /// `begin`), with a statistics line for `stats` whenever a report is due; then the final report.
    public func run(_ supervisor: Supervisor, stats: (SinkInterval) -> Void) -> SinkReport {
        let start = supervisor.startNs
        var last = (time: start, received: UInt64(0), bytes: UInt64(0))
        receive(supervisor) { now in
            let a = accounting
            stats(SinkInterval(
                elapsedSeconds: Double(now - start) / 1e9, intervalSeconds: Double(now - last.time) / 1e9,
                intervalReceived: a.received - last.received, intervalBytes: a.bytes - last.bytes,
                received: a.received, bytes: a.bytes, sequences: a.streams.snapshot().total, ringDropped: ringDropped))
            last = (now, a.received, a.bytes)
        }
        return report(durationNs: Sys.monotonicNanoseconds() - start)
    }

    /// The final report from the accounting.
    private func report(durationNs: UInt64) -> SinkReport {
        let a = accounting
        let table = a.streams.snapshot()
        var report = SinkReport(engine: .ring, port: port.interface.name, latencyJSON: a.latency.summary().json,
                                latencyText: a.latency.summary().text)
        report.ring = port.version.rawValue
        report.blockTimeoutMs = port.version == .v3 ? port.geometry.blockTimeoutMs : nil
        report.received = a.received
        report.bytes = a.bytes
        report.probes = a.probes
        report.other = a.other
        report.sequences = table.total
        report.streams = table.streams.sorted { $0.key < $1.key }.map { (stream: $0.key, stats: $0.value) }
        report.untracked = table.untrackedPackets
        report.durationSeconds = Double(durationNs) / 1e9
        if let first = a.firstReceivedNanoseconds, let last = a.lastReceivedNanoseconds, last > first {
            report.activeSeconds = Double(last - first) / 1e9
            report.activePPS = Double(a.received - 1) / report.activeSeconds
        }
        report.ringDropped = ringDropped
        return report
    }

    /// The receive loop; calls `stats` with the current time when a report is due (the
    /// kernel's drop count is read just before).
    private func receive(_ supervisor: Supervisor, stats: (UInt64) -> Void) {
        var pollSet = pollfd(fd: port.fd, events: Int16(POLLIN), revents: 0)
        let start = Sys.monotonicNanoseconds()
        var nextCheck = start + Self.checkNs
        var lastWork = start
        while true {
            let n = pass()
            let now = Sys.monotonicNanoseconds()
            if n > 0 { lastWork = now }
            if now >= nextCheck {
                guard supervisor.check(at: now) else { break }
                if supervisor.reportDue(at: now) {
                    takeKernelDrops()
                    stats(now)
                }
                nextCheck = now + Self.checkNs
            }
            if n > 0 || now &- lastWork < busyPollNs || port.rx.hasReadyFrames() { continue }
            // Sleep until a frame comes, but not past the deadline or the next statistics.
            let wakeAt = supervisor.nextWake(after: now, atMostNs: UInt64(Self.sleepMs) * 1_000_000)
            let timeoutMs = Int32(wakeAt > now ? (wakeAt - now + 999_999) / 1_000_000 : 0)
            _ = withUnsafeMutablePointer(to: &pollSet) { try? Sys.poll($0, count: 1, timeoutMs: timeoutMs) }
            lastWork = Sys.monotonicNanoseconds()
            nextCheck = lastWork  // check right away: the sleep may have been long
        }
        let stop = Sys.monotonicNanoseconds()
        while pass() > 0 && Sys.monotonicNanoseconds() &- stop < Self.drainNs {}
        takeKernelDrops()
    }

    /// One batch from the ring; returns how many frames it held.
    @inline(__always)
    private func pass() -> Int {
        let n = port.rx.fill(&batch, port: 0)
        let counters = port.rx.counters
        if n > 0 || counters.tooLarge != seenTooLarge {
            let now = Sys.monotonicNanoseconds()
            for i in 0..<n {
                let p = batch.packet(i)
                accounting.record(
                    frame: UnsafeRawBufferPointer(start: p.data, count: Int(p.capturedLength)),
                    length: Int(p.wireLength), receivedNanoseconds: now)
            }
            // Frames longer than a ring frame are not handed over whole: received, as other.
            if counters.tooLarge != seenTooLarge {
                accounting.recordOther(count: counters.tooLarge - seenTooLarge,
                                       bytes: counters.tooLargeBytes - seenTooLargeBytes, receivedNanoseconds: now)
                seenTooLarge = counters.tooLarge
                seenTooLargeBytes = counters.tooLargeBytes
            }
        }
        port.rx.releaseConsumed()
        batch.removeAll()
        return n
    }

    private func takeKernelDrops() {
        ringDropped &+= port.takeKernelStatistics().ringFull
    }
}
