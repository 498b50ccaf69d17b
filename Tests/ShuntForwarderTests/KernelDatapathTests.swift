import CShunt
import Glibc
import ShuntBPF
import ShuntCore
import ShuntPipeline
import Testing

@testable import ShuntForwarder

final class TestClock: @unchecked Sendable {
    var ns: UInt64 = 5_000_000_000
    func advance(ms: UInt64) { ns += ms * 1_000_000 }
}

/// A kernel datapath over a map in memory: ports 1 and 2 are interfaces, 3 a tunnel port.
struct KernelFixture {
    let map = FakeFlowCacheMap()
    let clock = TestClock()
    let rules = RuleCounters(writers: 2, maxRules: 16)
    let kernel: KernelDatapath
    static let basis = TranslationBasis(flows: 1, macChanges: 1, mirrors: 1)

    init(budget: Int = 1000, cacheSize: Int = 100, idleMs: UInt64 = 1000) {
        var config = FlowDatapathConfig()
        config.upcallBudgetPerSecond = budget
        config.cacheSize = cacheSize
        config.idleTimeoutMs = idleMs
        let clock = self.clock
        kernel = KernelDatapath(map: map, mirrors: MirrorRegistry(portCount: 3), ruleCounters: rules, counterRow: 1,
                                config: config, portLimit: 2, tunnelPorts: 0, clock: { clock.ns })
    }

    func key(_ n: UInt32) -> FlowKey {
        var k = FlowKey()
        k.inPort = 1
        k.dlType = 0x0800
        k.nwSrcIPv4 = n
        return k
    }

    func plan(_ key: FlowKey, _ actions: [DatapathAction] = [.output(2)], rule: UInt32 = 3) -> InstallPlan {
        let t = Translation(actions: actions, dropReason: actions.isEmpty ? .flowDrop : nil, dependencies: FlowKey(),
                            ruleIDs: [rule], usedNormal: false)
        return kernel.plan(key, t, mirrors: nil, basis: Self.basis)
    }

    func install(_ key: FlowKey, _ actions: [DatapathAction] = [.output(2)], rule: UInt32 = 3) -> InstallOutcome {
        kernel.install(plan(key, actions, rule: rule), translateNs: 0) { true }
    }

    var counters: KernelPathCounters { kernel.counters().0 }

    /// Re-translates every entry to `actions` under `rule`.
    func revalidate(to actions: [DatapathAction], rule: UInt32) {
        kernel.revalidate(select: { _ in true }) { plan($0, actions, rule: rule) }
    }

    func sweep() { kernel.sweep(expire: true) { plan($0) } }
}

@Suite("Kernel datapath: installs, revalidation and expiry over a map")
struct KernelDatapathTests {
    @Test func installsWithinTheBudgetAndCountsTheRestAsLostUpcalls() {
        let f = KernelFixture(budget: 2)
        #expect(f.install(f.key(1)) == .installed)
        #expect(f.install(f.key(2)) == .installed)
        #expect(f.install(f.key(3)) == .overBudget)
        #expect(f.install(f.key(1)) == .alreadyInstalled)
        #expect(f.counters.upcalls == 2 && f.counters.lostUpcalls == 1)
        f.clock.advance(ms: 500)  // one token back at 2 a second
        #expect(f.install(f.key(3)) == .installed)
        #expect(f.map.entries.count == 3)
    }

    @Test func aFullCacheRefusesAndCounts() {
        let f = KernelFixture(cacheSize: 2)
        #expect(f.install(f.key(1)) == .installed && f.install(f.key(2)) == .installed)
        #expect(f.install(f.key(3)) == .cacheFull)
        #expect(f.counters.cacheFull == 1 && f.counters.lostUpcalls == 1)
        #expect(f.map.entries[f.key(3)] == nil)
    }

    @Test func aStalePlanIsNotInstalled() {
        let f = KernelFixture()
        #expect(f.kernel.install(f.plan(f.key(1)), translateNs: 0) { false } == .stale)
        #expect(f.map.entries.isEmpty && f.kernel.installed(f.key(1)) == nil && f.counters.lostUpcalls == 0)
    }

    @Test func aRefusedInstallIsCountedAndNotRemembered() {
        let f = KernelFixture()
        f.map.installError = EPERM
        #expect(f.install(f.key(1)) == .failed)
        #expect(f.counters.installErrors == 1 && f.counters.lostUpcalls == 1)
        #expect(f.kernel.installed(f.key(1)) == nil)
        f.map.installError = nil
        #expect(f.install(f.key(1)) == .installed)
    }

    /// The plan decides once whether the kernel runs the actions; the entry follows it.
    @Test func thePlanDecidesWhatTheKernelExecutes() {
        let f = KernelFixture()
        let cases: [([DatapathAction], Bool)] = [
            ([.output(2)], true), ([], true), ([.decTTL, .output(1)], true),
            ([.output(1), .output(2)], false),  // two copies: the slow path makes them
            ([.output(3)], false),  // a tunnel port the kernel does not encapsulate for
        ]
        for (i, (actions, executes)) in cases.enumerated() {
            let key = f.key(UInt32(i + 1))
            #expect(f.plan(key, actions).kernelExecutes == executes, "\(actions)")
            #expect(f.install(key, actions) == .installed)
            let userspace = f.map.entries[key]!.flags & UInt32(SHUNT_CACHE_USERSPACE) != 0
            #expect(userspace == !executes, "\(actions)")
        }
    }

    /// The bug this type fixed: a lookup error used to read as "entry gone", so an entry still
    /// in the kernel lost its bookkeeping and was never expired.
    @Test func aLookupErrorKeepsTheEntryAndItStillExpires() {
        let f = KernelFixture(idleMs: 1000)
        #expect(f.install(f.key(1)) == .installed)
        f.map.walkFails = true
        f.map.lookupError = EIO
        f.clock.advance(ms: 2000)
        f.sweep()
        #expect(f.kernel.installed(f.key(1)) != nil, "a failed read forgot an entry the kernel still holds")
        #expect(f.counters.mapErrors == 2 && f.counters.expirations == 0)
        f.map.walkFails = false
        f.map.lookupError = nil
        f.sweep()
        #expect(f.kernel.installed(f.key(1)) == nil && f.map.entries.isEmpty && f.counters.expirations == 1)
    }

    @Test func anEntryTheKernelNoLongerHasIsForgotten() {
        let f = KernelFixture()
        #expect(f.install(f.key(1)) == .installed)
        f.map.entries.removeAll()
        f.sweep()
        #expect(f.kernel.installed(f.key(1)) == nil && f.counters.mapErrors == 0 && f.counters.expirations == 0)
    }

    @Test func aFailedRemovalIsRetriedOnTheNextSweep() {
        let f = KernelFixture(idleMs: 1000)
        #expect(f.install(f.key(1)) == .installed)
        f.clock.advance(ms: 1500)
        f.map.removeError = EBUSY
        f.sweep()
        #expect(f.kernel.installed(f.key(1)) != nil && f.counters.expirations == 0 && f.counters.mapErrors == 1)
        f.map.removeError = nil
        f.sweep()
        #expect(f.kernel.installed(f.key(1)) == nil && f.map.entries.isEmpty && f.counters.expirations == 1)
    }

    @Test func activeEntriesStayAndTheirCountsAreCreditedOnce() {
        let f = KernelFixture(idleMs: 1000)
        #expect(f.install(f.key(1), rule: 5) == .installed)
        f.clock.advance(ms: 800)
        f.map.hit(f.key(1), packets: 3, bytes: 300, nowNs: f.clock.ns)
        f.clock.advance(ms: 800)  // 1.6 s since the install, 0.8 s since the last hit
        f.sweep()
        f.sweep()
        #expect(f.rules.read(5) == (3, 300))
        #expect(f.kernel.installed(f.key(1)) != nil)
        f.map.hit(f.key(1), packets: 2, bytes: 200, nowNs: f.clock.ns)
        f.kernel.creditCounters()
        #expect(f.rules.read(5) == (5, 500))
    }

    @Test func revalidationReplacesChangedEntriesAndCreditsTheOldOnes() {
        let f = KernelFixture()
        #expect(f.install(f.key(1), [.output(2)], rule: 3) == .installed)
        #expect(f.install(f.key(2), [.output(1)], rule: 4) == .installed)
        let oldTag = f.map.entries[f.key(1)]!.install_tag
        f.map.hit(f.key(1), packets: 7, bytes: 700, nowNs: f.clock.ns)
        f.revalidate(to: [.output(1)], rule: 4)
        let e = f.map.entries[f.key(1)]!
        #expect(FlowCacheProgram.actions(of: e) == [.output(1)] && e.install_tag != oldTag)
        #expect(f.rules.read(3) == (7, 700) && f.rules.read(4) == (0, 0))
        #expect(f.counters.revalidations == 2 && f.counters.revalidationChanges == 1)
    }

    @Test func aRefusedReplacementRemovesTheOldEntry() {
        let f = KernelFixture()
        #expect(f.install(f.key(1)) == .installed)
        f.map.installError = EPERM
        f.revalidate(to: [.output(1)], rule: 4)
        #expect(f.map.entries.isEmpty && f.kernel.installed(f.key(1)) == nil && !f.kernel.needsRepair)
    }

    /// When neither the new entry nor the removal of the old one goes in, the kernel still runs
    /// the old translation: the key is kept for repair until a later pass succeeds.
    @Test func anEntryStuckOnAnOldTranslationIsRepaired() {
        let f = KernelFixture()
        #expect(f.install(f.key(1)) == .installed)
        f.map.installError = EPERM
        f.map.removeError = EIO
        f.revalidate(to: [.output(1)], rule: 4)
        #expect(f.kernel.needsRepair && f.counters.mapErrors == 1)
        f.map.installError = nil
        f.map.removeError = nil
        f.kernel.revalidate(select: { _ in false }) { f.plan($0, [.output(1)], rule: 4) }
        #expect(!f.kernel.needsRepair)
        #expect(FlowCacheProgram.actions(of: f.map.entries[f.key(1)]!) == [.output(1)])
        #expect(f.kernel.installed(f.key(1))?.translation.ruleIDs == [4])
    }

    /// A replacement that fails through credits the old entry's packets once, and a key marked
    /// for repair stops asking for passes once its entry is gone.
    @Test func aStuckEntryIsCreditedOnceAndForgottenWhenGone() {
        let f = KernelFixture()
        #expect(f.install(f.key(1), rule: 3) == .installed)
        f.map.hit(f.key(1), packets: 5, bytes: 500, nowNs: f.clock.ns)
        f.map.installError = EPERM
        f.map.removeError = EIO
        f.revalidate(to: [.output(1)], rule: 4)
        #expect(f.rules.read(3) == (5, 500) && f.kernel.needsRepair)
        f.kernel.creditCounters()
        f.sweep()
        #expect(f.rules.read(3) == (5, 500), "the same packets were credited twice")
        f.map.removeError = nil
        f.map.entries.removeAll()  // the kernel lost it (or an operator removed it)
        f.sweep()
        #expect(!f.kernel.needsRepair && f.kernel.installed(f.key(1)) == nil)
    }
}
