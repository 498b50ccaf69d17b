import Glibc
import ShuntSystem
import Synchronization

/// The supervising side of a `shunt` command (docs/design/0018): its thread takes SIGINT and
/// SIGTERM synchronously, owns the one stop flag the worker threads poll, ends the run at its
/// deadline (--duration), says when a periodic report is due (--interval, --stats-interval),
/// and ends the child processes it started.
///
/// Create it first thing in `run()`, on the main thread, before any other thread exists: it
/// blocks SIGINT and SIGTERM, and threads created later inherit the mask, so the signals are
/// only ever taken by this thread's waits (`sigtimedwait`). A loop then reads:
///
///     supervisor.begin(duration: duration, reportEvery: interval)
///     while supervisor.wait(atMostNs: 1_000_000_000) {
///         housekeeping()
///         if supervisor.reportDue() { printStatistics() }
///     }
///
/// or `supervisor.run(tickNs:tick:report:)`, which is that loop. `isStopping` and
/// `requestStop()` may be used from any thread; everything else belongs to the thread that
/// created the supervisor.
public final class Supervisor: @unchecked Sendable {
    /// Why the run stops.
    public enum StopReason: Equatable, Sendable {
        /// SIGINT or SIGTERM.
        case signal(Int32)
        /// The deadline given to `begin` passed.
        case deadline
        /// `requestStop()`: the work is done, or a worker gave up.
        case requested
    }

    /// Thrown by `checkStop()` and `sleep(nanoseconds:)`, once per run: see `checkStop()`.
    public struct Stopped: Error, Equatable, Sendable {
        public let reason: StopReason
        public init(reason: StopReason) { self.reason = reason }
        /// The signal that stopped the run, if one did.
        public var signal: Int32? {
            if case .signal(let s) = reason { return s }
            return nil
        }
    }

    /// 0 while running; then the first reason: 1 requested, 2 deadline, 0x100 | signal.
    private let stopState = Atomic<UInt32>(0)
    /// Whether `checkStop` or `sleep` has thrown `Stopped` already.
    private var stopThrown = false
    /// When `begin` was called (creation until then): where `--duration` and reports count from.
    public private(set) var startNs: UInt64
    /// The run ends here (nil: no --duration).
    public private(set) var deadlineNs: UInt64?
    private var reportIntervalNs: UInt64?
    private var nextReportNs: UInt64?
    /// Where one-line messages about the children go (the command prefixes them with its name).
    let notes: (String) -> Void
    /// The children started with `spawn` and not reaped yet, with a label for messages.
    var children: [pid_t: String] = [:]

    /// Blocks SIGINT and SIGTERM in the calling thread and in every thread it creates later.
    /// `notes` receives the messages about child processes that had to be killed.
    public init(notes: @escaping (String) -> Void = { _ in }) {
        Sys.blockTerminationSignals()
        self.notes = notes
        startNs = Sys.monotonicNanoseconds()
    }

    /// Ends the children still running (see `stopAllChildren`).
    deinit {
        if !children.isEmpty { stopAllChildren() }
    }

    // MARK: the schedule

    /// Starts the clock of the run: it ends `duration` seconds from now (nil: at a signal or
    /// `requestStop()` only), and a report is due every `reportEvery` seconds (nil or 0: none).
    public func begin(duration: Double?, reportEvery interval: Double? = nil) {
        startNs = Sys.monotonicNanoseconds()
        deadlineNs = duration.map { startNs + UInt64($0 * 1e9) }
        reportIntervalNs = interval.flatMap { $0 > 0 ? UInt64($0 * 1e9) : nil }
        nextReportNs = reportIntervalNs.map { startNs + $0 }
    }

    /// The earliest of `now + atMostNs`, the deadline and the next report: when a loop that
    /// sleeps should wake up.
    public func nextWake(after now: UInt64, atMostNs: UInt64) -> UInt64 {
        var wake = atMostNs > UInt64.max - now ? UInt64.max : now + atMostNs
        if let deadlineNs { wake = min(wake, deadlineNs) }
        if let nextReportNs { wake = min(wake, nextReportNs) }
        return wake
    }

    /// Waits until `atMostNs` from now, the deadline or the next report, whichever comes first,
    /// or until SIGINT or SIGTERM. Returns false once the run is to stop (a signal came, the
    /// deadline has passed, or a stop was requested): the loop ends.
    public func wait(atMostNs: UInt64) -> Bool {
        let now = Sys.monotonicNanoseconds()
        guard check(deadlineAt: now) else { return false }
        let wake = nextWake(after: now, atMostNs: atMostNs)
        if let s = Sys.waitForTerminationSignal(timeoutNs: wake > now ? wake - now : 0) {
            stop(.signal(s))
            return false
        }
        return true
    }

    /// `wait` without waiting, for a thread that polls (a busy receive loop): takes a pending
    /// SIGINT or SIGTERM and checks the deadline against `now`. False once the run is to stop.
    public func check(at now: UInt64) -> Bool {
        if !isStopping, let s = Sys.waitForTerminationSignal(timeoutNs: 0) { stop(.signal(s)) }
        return check(deadlineAt: now)
    }

    private func check(deadlineAt now: UInt64) -> Bool {
        if isStopping { return false }
        if let deadlineNs, now >= deadlineNs {
            stop(.deadline)
            return false
        }
        return true
    }

    /// Whether a periodic report is due at `now`; if so, the next one is scheduled an interval
    /// later. Reports keep their phase; one that came more than an interval late is followed by
    /// the next an interval after it (the missed ones are skipped, not made up in a burst).
    public func reportDue(at now: UInt64 = Sys.monotonicNanoseconds()) -> Bool {
        guard let due = nextReportNs, let interval = reportIntervalNs, now >= due else { return false }
        nextReportNs = due + interval > now ? due + interval : now + interval
        return true
    }

    /// The supervise loop: waits (at most `tickNs` at a time), calls `tick` after every wait
    /// and `report` with the time when a report is due, until the run is to stop.
    public func run(tickNs: UInt64, tick: () -> Void = {}, report: (UInt64) -> Void = { _ in }) {
        while wait(atMostNs: tickNs) {
            tick()
            let now = Sys.monotonicNanoseconds()
            if reportDue(at: now) { report(now) }
        }
    }

    // MARK: the stop flag

    /// Whether the run is to stop. Any thread may read it (an acquiring load); worker threads
    /// poll it between batches.
    public var isStopping: Bool { stopState.load(ordering: .acquiring) != 0 }

    /// Asks the run to stop (from any thread). The first reason stays.
    public func requestStop() { stop(.requested) }

    /// Why the run stops, once it does.
    public var stopReason: StopReason? {
        switch stopState.load(ordering: .acquiring) {
        case 0: nil
        case 1: .requested
        case 2: .deadline
        case let v: .signal(Int32(v & 0xff))
        }
    }

    /// The signal that stopped the run, if one did.
    public var stopSignal: Int32? {
        if case .signal(let s) = stopReason { return s }
        return nil
    }

    private func stop(_ reason: StopReason) {
        let code: UInt32 = switch reason {
        case .requested: 1
        case .deadline: 2
        case .signal(let s): 0x100 | UInt32(s & 0xff)
        }
        _ = stopState.compareExchange(expected: 0, desired: code, ordering: .acquiringAndReleasing)
    }

    // MARK: for code that unwinds on a stop (`shunt bench`)

    /// Takes a pending SIGINT or SIGTERM and throws `Stopped` if the run is to stop. It throws
    /// once: the code that catches it cleans up with the same calls (which wait for children,
    /// run commands, sleep), and a second Ctrl-C must not cut that cleanup short.
    public func checkStop() throws(Stopped) {
        try sleep(nanoseconds: 0)
    }

    /// Sleeps for `nanoseconds`, ending early only to throw `Stopped` (once, as `checkStop`):
    /// signals that come after that are taken and ignored.
    public func sleep(nanoseconds: UInt64) throws(Stopped) {
        let end = Sys.monotonicNanoseconds() + nanoseconds
        while true {
            if let reason = stopReason, !stopThrown {
                stopThrown = true
                throw Stopped(reason: reason)
            }
            let now = Sys.monotonicNanoseconds()
            guard let s = Sys.waitForTerminationSignal(timeoutNs: end > now ? end - now : 0) else { return }
            stop(.signal(s))
        }
    }
}
