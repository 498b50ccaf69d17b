import Foundation
import ShuntBench
import Testing

/// A synthetic forwarder: loses nothing up to `threshold` pps, and above it loses the excess.
/// The generator reaches at most `generatorCeiling` pps.
struct SyntheticForwarder {
    var threshold: Double
    var generatorCeiling: Double = .infinity

    func trial(asked: Double?, seconds: Double = 2) -> Trial {
        let offered = min(asked ?? generatorCeiling, generatorCeiling)
        let sent = UInt64(offered * seconds)
        let received = offered <= threshold ? sent : UInt64(threshold * seconds)
        return Trial(askedPPS: asked, sent: sent, received: received, offeredPPS: offered, generatorSeconds: seconds)
    }
}

func search(_ f: SyntheticForwarder, steps: Int, tolerance: Double = 0) -> ZeroLossSearch {
    let overload = f.trial(asked: nil)
    var s = ZeroLossSearch(upperPPS: ZeroLossSearch.upperBound(overload: overload), steps: steps, lossTolerancePercent: tolerance)
    while let rate = s.nextRate { s.record(f.trial(asked: rate)) }
    return s
}

@Suite struct ZeroLossSearchTests {
    @Test func convergesOnTheThresholdFromBelow() {
        let f = SyntheticForwarder(threshold: 512_345, generatorCeiling: 2_000_000)
        let s = search(f, steps: 12)
        #expect(s.stepsDone == 12)
        #expect(s.resultPPS <= 512_345)
        // 12 steps over 0 .. 1.1 x 512345: within 1.1 x 512345 / 2^11 of the threshold.
        let bound: Double = 512_345 - 1.1 * 512_345 / 2048 - 1
        #expect(s.resultPPS > bound)
        #expect(!s.resultIsGeneratorLimited)
    }

    @Test func moreStepsNeverMoveAwayFromTheThreshold() {
        let f = SyntheticForwarder(threshold: 300_000, generatorCeiling: 1_000_000)
        let errors = [3, 5, 7, 9].map { 300_000 - search(f, steps: $0).resultPPS }
        #expect(errors.allSatisfy { $0 >= 0 })
        #expect(errors == errors.sorted(by: >))
    }

    @Test func aForwarderThatKeepsUpPassesAtTheTopInOneStep() {
        let f = SyntheticForwarder(threshold: 5_000_000, generatorCeiling: 1_000_000)
        let s = search(f, steps: 7)
        #expect(s.stepsDone == 1)
        #expect(s.resultPPS == 1_000_000)
    }

    @Test func theResultIsTheOfferedRateNotTheAskedOne() {
        // The generator tops out at 400 kpps; everything it sends gets through.
        let f = SyntheticForwarder(threshold: 1_000_000, generatorCeiling: 400_000)
        var s = ZeroLossSearch(upperPPS: 800_000, steps: 3, lossTolerancePercent: 0)
        while let rate = s.nextRate { s.record(f.trial(asked: rate)) }
        #expect(s.resultPPS == 400_000)
        #expect(s.resultIsGeneratorLimited)
    }

    @Test func toleranceLetsSmallLossPass() {
        let t = Trial(askedPPS: 1000, sent: 100_000, received: 99_990, offeredPPS: 1000, generatorSeconds: 100)
        #expect(t.lossPercent == 0.01)
        #expect(!ZeroLossSearch(upperPPS: 1000, steps: 1, lossTolerancePercent: 0).passes(t))
        #expect(ZeroLossSearch(upperPPS: 1000, steps: 1, lossTolerancePercent: 0.01).passes(t))
    }

    @Test func nothingPassesGivesZero() {
        let s = search(SyntheticForwarder(threshold: 0, generatorCeiling: 1_000_000), steps: 5)
        #expect(s.resultPPS == 0)
        #expect(s.best == nil)
    }

    @Test func stopsBelowTheMinimumRate() {
        var s = ZeroLossSearch(upperPPS: 3000, steps: 10, lossTolerancePercent: 0)
        var asked: [Double] = []
        while let rate = s.nextRate {
            asked.append(rate)
            s.record(Trial(askedPPS: rate, sent: 100, received: 50, offeredPPS: rate, generatorSeconds: 1))
        }
        #expect(asked == [3000, 1500])
    }

    @Test func upperBoundIsTheOfferedRateCappedByWhatWasDelivered() {
        let dropping = Trial(askedPPS: nil, sent: 2_000_000, received: 500_000, offeredPPS: 1_000_000, generatorSeconds: 2)
        #expect(abs(ZeroLossSearch.upperBound(overload: dropping) - 275_000) < 1e-6)
        let keepingUp = Trial(askedPPS: nil, sent: 2_000_000, received: 2_000_000, offeredPPS: 1_000_000, generatorSeconds: 2)
        #expect(ZeroLossSearch.upperBound(overload: keepingUp) == 1_000_000)
        #expect(keepingUp.overloadIsGeneratorLimited && !dropping.overloadIsGeneratorLimited)
    }
}

@Suite struct StatisticsTests {
    @Test func medianMinMax() {
        let odd = Spread([5, 1, 3])!
        #expect(odd.median == 3 && odd.min == 1 && odd.max == 5 && odd.values == [5, 1, 3])
        let even = Spread([4, 1, 3, 2])!
        #expect(even.median == 2.5 && even.min == 1 && even.max == 4)
        #expect(Spread([]) == nil)
    }

    @Test func repeatsAreInterleaved() {
        let order = RunOrder.interleaved(forwarders: ["a", "b", "c"], repeats: 2)
        #expect(order.map(\.forwarder) == ["a", "b", "c", "a", "b", "c"])
        #expect(order.map(\.repeatIndex) == [1, 1, 1, 2, 2, 2])
    }

    @Test func progressClock() {
        let clock = ProgressClock(total: 10)
        #expect(clock.text(done: 0, elapsedSeconds: 5) == "elapsed 5s")
        #expect(clock.text(done: 2, elapsedSeconds: 60) == "elapsed 1m00s, ETA 4m00s")
        #expect(ProgressClock.duration(3725) == "1h02m")
    }
}

@Suite struct SettingsTests {
    @Test func defaultsAreValid() {
        #expect(BenchSettings().problem() == nil)
    }

    @Test func badInputIsNamed() {
        func problem(_ change: (inout BenchSettings) -> Void) -> String {
            var s = BenchSettings()
            change(&s)
            return s.problem() ?? "none"
        }
        #expect(problem { $0.forwarders = ["shunt", "nosuch"] }.hasPrefix("unknown forwarder \"nosuch\""))
        #expect(problem { $0.frameSizes = [63] }.contains("outside 64...1518"))
        #expect(problem { $0.frameSizes = [9000] }.contains("outside 64...1518"))
        #expect(problem { $0.repeats = 0 } == "--repeats must be at least 1")
        #expect(problem { $0.trialSeconds = 0 } == "--trial-seconds must be more than 0")
        #expect(problem { $0.trialSeconds = -1 } == "--trial-seconds must be more than 0")
        #expect(problem { $0.latencyFractions = [0] }.contains("outside (0, 1]"))
        #expect(problem { $0.latencyFractions = [1.5] }.contains("outside (0, 1]"))
        #expect(problem { $0.latencyFractions = [1] } == "none")
        #expect(problem { $0.lossTolerancePercent = 100 }.hasPrefix("--loss-tolerance"))
        #expect(problem { $0.lossTolerancePercent = -0.1 }.hasPrefix("--loss-tolerance"))
        #expect(problem { $0.flows = [0] }.contains("flow count 0"))
    }

    @Test func mirrorForwardersRunOnlyWhenNamed() {
        let mirrors = ForwarderInfo.all.filter { $0.mirrorSessions > 0 }.map(\.name)
        #expect(mirrors == ["shunt-mirror1", "shunt-mirror2", "shunt-xdp-mirror1", "shunt-xdp-mirror2"])
        #expect(ForwarderInfo.defaultSet.map(\.name) == ["shunt", "shunt-v3", "shunt-xdp", "shunt-flows", "xdp-redirect",
                                                        "c-tpacket", "c-tpacket-v2", "bridge", "tc-mirred", "testpmd", "ovs"])
        #expect(ForwarderInfo.named("shunt-xdp-mirror2")?.mirrorSessions == 2)
        var s = BenchSettings()
        s.forwarders = ["shunt-flows", "shunt-mirror1"]
        #expect(s.problem() == nil)
    }

    /// `NAME@base` runs a shunt forwarder with the --baseline binary; other forwarders have no baseline.
    @Test func baselineForwardersAreShuntOnesAndNeedABinary() {
        let base = ForwarderInfo.named("shunt-mirror1@base")
        #expect(base?.kind == "shunt-mirror1" && base?.isBaseline == true && base?.mirrorSessions == 1)
        #expect(ForwarderInfo.named("xdp-redirect@base")?.kind == "xdp-redirect")
        #expect(ForwarderInfo.named("bridge@base") == nil && ForwarderInfo.named("shunt@base@base") == nil)
        var s = BenchSettings()
        s.forwarders = ["shunt-flows", "shunt-flows@base"]
        #expect(s.problem() == "shunt-flows@base runs the --baseline binary: give --baseline PATH")
        s.baseline = "/usr/local/bin/shunt-old"
        #expect(s.problem() == nil)
        s.forwarders = ["ovs@base"]
        #expect(s.problem()?.hasPrefix("unknown forwarder \"ovs@base\"") == true)
    }

    @Test func everyForwarderWithAToolNamesItsPackage() {
        for f in ForwarderInfo.all where !f.tools.isEmpty { #expect(f.package != nil, "\(f.name)") }
        #expect(ForwarderInfo.named("testpmd")?.tools == ["dpdk-testpmd"])
        #expect(ForwarderInfo.named("ovs")?.package == "openvswitch-switch")
        // The C reference is built with shunt, not installed: no PATH tool, no package.
        #expect(ForwarderInfo.named("c-tpacket")?.builtWithShunt == "tpacket-fwd" && ForwarderInfo.named("c-tpacket")?.tools == [])
        #expect(ForwarderInfo.named("c-tpacket-v2")?.builtWithShunt == "tpacket-fwd")
        #expect(ForwarderInfo.named("c-tpacket@base") == nil)
    }
}
