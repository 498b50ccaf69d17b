import Foundation

/// Tests that keep a CPU busy for seconds (`shunt bench`'s flat-out generator) and tests that
/// judge loss or pacing on a shared 2-core machine take this lock, so that they never overlap
/// (suites run in parallel; `.serialized` only orders the tests of one suite). Synchronous tests
/// only: the holder must release it on the thread that took it.
///
///     let traffic = ExclusiveTraffic.hold()
///     defer { traffic.release() }
struct ExclusiveTraffic {
    nonisolated(unsafe) private static let lock = NSLock()

    static func hold() -> ExclusiveTraffic {
        lock.lock()
        return ExclusiveTraffic()
    }

    func release() { Self.lock.unlock() }
}
