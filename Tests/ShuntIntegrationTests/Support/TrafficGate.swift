import Foundation

/// Keeps flooding tests apart from tests that judge exact delivery. Suites run in parallel
/// (`.serialized` only orders the tests of one suite), and a flood on one veth can lose frames
/// of another test. CPU 1's receive backlog holds 1000 frames for every interface of every
/// namespace, and beyond that the kernel drops whatever arrives: one run of the bench tests
/// alone added about 113,000 drops to /proc/net/softnet_stat (the other suites added none).
/// `shunt bench`'s bridge and tc forwarders spread fwd0's receive work into that backlog with
/// RPS, the likely source; which trial dropped them was not isolated.
///
/// Every `Lab` enters shared for its lifetime; a test that floods enters exclusive, and then
/// runs with no `Lab` alive. Readers are not blocked by a waiting flood while any `Lab` is
/// alive (so a test holding two labs cannot deadlock); once none is, the flood goes first.
final class TrafficGate: @unchecked Sendable {
    static let gate = TrafficGate()
    private let condition = NSCondition()
    private var sharers = 0
    private var exclusiveHeld = false
    private var exclusiveWaiting = 0

    /// A hold to release exactly once (with `release()`), on any thread.
    struct Hold {
        fileprivate let exclusive: Bool
        func release() { TrafficGate.gate.leave(exclusive: exclusive) }
    }

    static func shared() -> Hold { gate.enter(exclusive: false) }
    static func exclusive() -> Hold { gate.enter(exclusive: true) }

    private func enter(exclusive: Bool) -> Hold {
        condition.lock()
        defer { condition.unlock() }
        if exclusive {
            exclusiveWaiting += 1
            while exclusiveHeld || sharers > 0 { condition.wait() }
            exclusiveWaiting -= 1
            exclusiveHeld = true
        } else {
            while exclusiveHeld || (exclusiveWaiting > 0 && sharers == 0) { condition.wait() }
            sharers += 1
        }
        return Hold(exclusive: exclusive)
    }

    private func leave(exclusive: Bool) {
        condition.lock()
        if exclusive { exclusiveHeld = false } else { sharers -= 1 }
        condition.broadcast()
        condition.unlock()
    }
}
