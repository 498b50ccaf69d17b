import Glibc
import ShuntRuntime
import ShuntSystem
import Testing

/// The supervisor's schedule, stop flag and children, on the real clock (short intervals).
@Suite("Supervisor")
struct SupervisorTests {
    @Test func theDeadlineEndsTheWaits() {
        let supervisor = Supervisor()
        supervisor.begin(duration: 0.05)
        var waits = 0
        while supervisor.wait(atMostNs: .max) { waits += 1 }  // no overflow: the deadline bounds it
        let elapsed = Sys.monotonicNanoseconds() - supervisor.startNs
        #expect(elapsed >= 50_000_000)
        #expect(elapsed < 1_000_000_000, "a wait stops at the deadline, not after its own timeout")
        #expect(waits <= 1)
        #expect(supervisor.stopReason == .deadline)
        #expect(supervisor.isStopping)
        #expect(supervisor.stopSignal == nil)
    }

    @Test func reportsComeAtTheIntervalWithoutBursts() {
        let supervisor = Supervisor()
        supervisor.begin(duration: 0.3, reportEvery: 0.05)
        var reports: [UInt64] = []
        var ticks = 0
        supervisor.run(tickNs: 1_000_000_000, tick: { ticks += 1 }) { reports.append($0) }
        #expect((4...6).contains(reports.count), "\(reports.count) reports in 0.3 s at 0.05 s")
        #expect(ticks >= reports.count)
        for (a, b) in zip(reports, reports.dropFirst()) { #expect(b - a >= 40_000_000) }

        // Reports late by several intervals are not made up: the late one, then one an interval
        // after it (before, the sinks made one more at their next check, a statistics line
        // over about a millisecond).
        let late = Supervisor()
        late.begin(duration: nil, reportEvery: 0.01)
        Sys.sleep(nanoseconds: 50_000_000)
        let now = Sys.monotonicNanoseconds()
        #expect(late.reportDue(at: now))
        #expect(!late.reportDue(at: now + 9_000_000))
        #expect(late.nextWake(after: now, atMostNs: 1_000_000_000) == now + 10_000_000)
        #expect(late.reportDue(at: now + 10_000_000))
    }

    @Test func noReportsWithoutAnInterval() {
        let supervisor = Supervisor()
        supervisor.begin(duration: 0.02, reportEvery: 0)
        var reports = 0
        supervisor.run(tickNs: 1_000_000, report: { _ in reports += 1 })
        #expect(reports == 0)
    }

    @Test func aStopRequestedByAnotherThreadEndsTheWaitAndTheFirstReasonStays() throws {
        let supervisor = Supervisor()
        let worker = try WorkerThread(name: "stopper") {
            Sys.sleep(nanoseconds: 20_000_000)
            supervisor.requestStop()
        }
        let start = Sys.monotonicNanoseconds()
        while supervisor.wait(atMostNs: 1_000_000) {}
        worker.join()
        #expect(Sys.monotonicNanoseconds() - start < 1_000_000_000)
        #expect(supervisor.stopReason == .requested)
        supervisor.begin(duration: 0)
        #expect(!supervisor.wait(atMostNs: 0))
        #expect(supervisor.stopReason == .requested)
    }

    @Test func aSignalIsTheStopReasonAndIsThrownOnce() throws {
        let supervisor = Supervisor()
        // Only if SIGTERM is now blocked in this thread (else it would end the test process).
        var mask = sigset_t()
        pthread_sigmask(SIG_BLOCK, nil, &mask)
        try #require(sigismember(&mask, SIGTERM) == 1)
        pthread_kill(pthread_self(), SIGTERM)
        #expect(throws: Supervisor.Stopped(reason: .signal(SIGTERM))) { try supervisor.checkStop() }
        #expect(supervisor.stopSignal == SIGTERM)
        // Thrown once: the cleanup that follows sleeps and checks without being cut short.
        pthread_kill(pthread_self(), SIGTERM)
        let start = Sys.monotonicNanoseconds()
        try supervisor.sleep(nanoseconds: 20_000_000)
        try supervisor.checkStop()
        #expect(Sys.monotonicNanoseconds() - start >= 20_000_000)
        #expect(!supervisor.wait(atMostNs: 0))
    }

    @Test func childrenAreTrackedByPIDAndStopped() throws {
        var notes: [String] = []
        let supervisor = Supervisor { notes.append($0) }
        let done = try supervisor.spawn("/bin/true", [], label: "true", stdout: "/dev/null", stderr: "/dev/null")
        #expect(try supervisor.wait(for: done, timeout: 10) == .exited(0))
        #expect(supervisor.runningChildren[done] == nil)

        let sleeper = try supervisor.spawn("/bin/sleep", ["10"], label: "sleep 10", stdout: "/dev/null", stderr: "/dev/null")
        #expect(supervisor.runningChildren[sleeper] == "sleep 10")
        #expect(supervisor.exited(sleeper) == nil)
        #expect(supervisor.stop(sleeper, timeout: 5) == .signaled(SIGTERM))
        #expect(supervisor.runningChildren.isEmpty)

        // A child that ignores the signal is killed after the timeout, with a note.
        let stubborn = try supervisor.spawn("/bin/sh", ["-c", "trap '' TERM; sleep 10"], label: "stubborn",
                                            stdout: "/dev/null", stderr: "/dev/null")
        Sys.sleep(nanoseconds: 100_000_000)  // the trap is set
        #expect(supervisor.stop(stubborn, timeout: 0.1) == .signaled(SIGKILL))
        #expect(notes.count == 1 && notes[0].contains("stubborn") && notes[0].contains("SIGKILL"))
    }
}
