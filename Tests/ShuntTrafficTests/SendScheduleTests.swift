import ShuntTraffic
import Testing

/// The pacing arithmetic of `shunt gen --rate`: FrameInterval (xdp_gen's fixed point) and
/// SendSchedule (the ring engine's schedule), over given times: no clock, no timing.
@Suite struct SendScheduleTests {
    @Test func frameIntervalIsExactForWholeNanoseconds() {
        let i = FrameInterval(rate: 10_000)
        #expect(i.nanoseconds == 100_000 && i.fraction == 0)
        #expect(i.nanoseconds(forFrames: 20_000) == 2_000_000_000)
        #expect(i.frames(within: 99_999) == 0 && i.frames(within: 100_000) == 1 && i.frames(within: 2_000_000_000) == 20_000)
    }

    /// 3 pps: 333333333.33.. ns, the fraction in 2^-32 ns; k intervals add up without drift.
    @Test func frameIntervalKeepsTheFraction() {
        let i = FrameInterval(rate: 3)
        #expect(i.nanoseconds == 333_333_333)
        #expect(abs(Int(i.fraction) - 1_431_655_765) < 1000)  // 2^32 / 3, to Double's precision at 3e8
        #expect(i.nanoseconds(forFrames: 3) == 999_999_999 || i.nanoseconds(forFrames: 3) == 1_000_000_000)
        // a day at 3 pps is 259200 frames: off by less than 10 ns
        let day = i.nanoseconds(forFrames: 259_200)
        #expect(day >= 86_399_999_999_990 && day <= 86_400_000_000_001, "\(day)")
        #expect(i.frames(within: i.nanoseconds(forFrames: 1000)) == 1000)
        #expect(i.frames(within: i.nanoseconds(forFrames: 1000) - 1) == 999)
    }

    @Test func frameIntervalAtTheExtremes() {
        #expect(FrameInterval(rate: 1e9).nanoseconds == 1 && FrameInterval(rate: 1e9).fraction == 0)
        #expect(FrameInterval(rate: 2e9).asNanoseconds == 0.5)  // beyond any engine's ceiling, still exact
        let slow = FrameInterval(rate: 0.5)
        #expect(slow.nanoseconds == 2_000_000_000 && slow.fraction == 0)
        // 7 Mpps: 142.857142.. ns
        let fast = FrameInterval(rate: 7e6)
        #expect(fast.nanoseconds == 142 && abs(fast.asNanoseconds - 1e9 / 7e6) < 1e-9)
        #expect(fast.nanoseconds(forFrames: 7_000_000) == 1_000_000_000 || fast.nanoseconds(forFrames: 7_000_000) == 999_999_999)
    }

    /// Frame k is due at start + k x interval; nothing before, one at a time when on time.
    @Test func framesComeDueOnSchedule() {
        var s = SendSchedule(rate: 1000, maxLagNs: 10_000_000)  // 1 ms apart
        #expect(s.due(at: 5_000_000, limit: 64) == 1)  // the first starts the schedule
        s.sent(1)
        #expect(s.due(at: 5_000_001, limit: 64) == 0)
        #expect(s.due(at: 5_999_999, limit: 64) == 0)
        #expect(s.due(at: 6_000_000, limit: 64) == 1)
        s.sent(1)
        #expect(s.due(at: 6_500_000, limit: 64) == 0)
        #expect(s.due(at: 7_000_000, limit: 64) == 1)
        s.sent(1)
        #expect(s.lagSkips == 0 && s.maxLagSeenNs == 0)
    }

    /// Late by less than maxLag: every frame due goes at once (up to the limit per call), and
    /// the schedule stays where it was, so the average rate holds.
    @Test func aLateSenderCatchesUp() {
        var s = SendSchedule(rate: 1000, maxLagNs: 10_000_000)
        #expect(s.due(at: 0, limit: 64) == 1)
        s.sent(1)
        // 5.5 ms later: frames 1..5 are due (at 1, 2, 3, 4, 5 ms)
        #expect(s.due(at: 5_500_000, limit: 64) == 5)
        #expect(s.maxLagSeenNs == 4_500_000)
        #expect(s.due(at: 5_500_000, limit: 2) == 2)  // a smaller batch: in turns
        s.sent(2)
        #expect(s.due(at: 5_500_000, limit: 64) == 3)
        s.sent(3)
        #expect(s.due(at: 5_600_000, limit: 64) == 0)
        #expect(s.due(at: 6_000_000, limit: 64) == 1)  // back on the original schedule
        #expect(s.lagSkips == 0)
        // 1000 frames over 999 ms of schedule, whatever the hiccups
        s.sent(1)
        var t: UInt64 = 6_000_000
        var sent: UInt64 = 7
        while sent < 1000 {
            t += 3_700_000  // coarse steps: always late, never by more than maxLag
            let n = s.due(at: t, limit: Int(min(64, 1000 - sent)))
            s.sent(n)
            sent += UInt64(n)
        }
        #expect(sent == 1000 && t >= 999_000_000 && t < 999_000_000 + 3_700_000)
        #expect(s.lagSkips == 0)
    }

    /// Later than maxLag: the schedule moves up to now (a lag skip); the frames not sent are
    /// gone, the lag is reported.
    @Test func tooLateSkipsAhead() {
        var s = SendSchedule(rate: 1000, maxLagNs: 50_000)
        #expect(s.due(at: 0, limit: 64) == 1)
        s.sent(1)
        #expect(s.due(at: 1_040_000, limit: 64) == 1)  // 40 us late: sent
        s.sent(1)
        #expect(s.due(at: 10_000_000, limit: 64) == 1)  // 8 ms late: skip, one frame now
        s.sent(1)
        #expect(s.lagSkips == 1 && s.skippedNs == 8_000_000 && s.maxLagSeenNs == 8_000_000)
        #expect(s.startNs == 10_000_000)
        #expect(s.due(at: 10_999_999, limit: 64) == 0 && s.due(at: 11_000_000, limit: 64) == 1)
    }

    /// The limit (the batch, or what is left of --count) bounds each answer; a zero limit
    /// answers zero without starting the schedule.
    @Test func limitsBoundWhatIsDue() {
        var s = SendSchedule(rate: 1e6, maxLagNs: 1_000_000_000)
        #expect(s.due(at: 100, limit: 0) == 0 && s.startNs == nil)
        #expect(s.due(at: 100, limit: 1) == 1)
        s.sent(1)
        #expect(s.due(at: 100 + 500_000, limit: 64) == 64)  // 500 due
        #expect(s.due(at: 100 + 500_000, limit: 3) == 3)
        s.sent(3)
        #expect(s.due(at: 100 + 500_000, limit: 1000) == 497)
    }
}
