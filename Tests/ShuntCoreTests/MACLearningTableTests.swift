import Testing
@testable import ShuntCore

@Suite struct MACLearningTableTests {
    let a = MACAddress("02:00:00:00:00:0a")!
    let b = MACAddress("02:00:00:00:00:0b")!

    @Test func learnsAndLooksUp() {
        let t = MACLearningTable(capacity: 64, agingMs: 10_000)
        #expect(t.lookup(a, nowMs: 1) == nil)
        t.learn(a, port: 2, nowMs: 1)
        t.learn(b, port: 0, nowMs: 1)
        #expect(t.lookup(a, nowMs: 2) == 2)
        #expect(t.lookup(b, nowMs: 2) == 0)
    }

    /// The switching decision shared by the `normal` stage and the pipeline's NORMAL.
    @Test func switchFrameLearnsThenDecides() {
        let t = MACLearningTable(capacity: 64, agingMs: 10_000)
        let broadcast = MACAddress(value: 0xffff_ffff_ffff)
        #expect(t.switchFrame(source: a, destination: b, inPort: 1, nowMs: 1) == .flood)  // b unknown
        #expect(t.switchFrame(source: b, destination: broadcast, inPort: 3, nowMs: 1) == .flood)
        #expect(t.switchFrame(source: b, destination: a, inPort: 3, nowMs: 1) == .port(1))
        #expect(t.switchFrame(source: b, destination: a, inPort: 1, nowMs: 1) == .ingress)  // b moves to 1
        #expect(t.lookup(b, nowMs: 1) == 1)
        // Without learning, or without an ingress index, nothing is learned; a destination is
        // then never on the ingress port.
        let c = MACAddress("02:00:00:00:00:0c")!
        #expect(t.switchFrame(source: c, destination: a, inPort: 2, learns: false, nowMs: 1) == .port(1))
        #expect(t.switchFrame(source: c, destination: a, inPort: nil, nowMs: 1) == .port(1))
        #expect(t.lookup(c, nowMs: 1) == nil)
        // A multicast source is never learned; an aged-out destination floods.
        let group = MACAddress("01:00:5e:00:00:01")!
        #expect(t.switchFrame(source: group, destination: a, inPort: 0, nowMs: 1) == .port(1))
        #expect(t.lookup(group, nowMs: 1) == nil)
        #expect(t.switchFrame(source: c, destination: a, inPort: 0, nowMs: 20_000) == .flood)
    }

    @Test func entriesAgeOutUnlessRefreshed() {
        let t = MACLearningTable(capacity: 64, agingMs: 1000)
        t.learn(a, port: 1, nowMs: 5000)
        t.learn(b, port: 1, nowMs: 5000)
        t.learn(b, port: 1, nowMs: 5900)  // not refreshed: under the 1 s refresh step
        t.learn(b, port: 1, nowMs: 6001)  // refreshed
        #expect(t.lookup(a, nowMs: 5999) == 1)
        #expect(t.lookup(a, nowMs: 6000) == nil)
        #expect(t.lookup(b, nowMs: 6500) == 1)
        #expect(t.sweep(nowMs: 6500) == 1)
        #expect(t.entries(nowMs: 6500).map(\.mac) == [b])
    }

    @Test func stationMoveRepointsTheEntry() {
        let t = MACLearningTable(capacity: 64, agingMs: 10_000)
        t.learn(a, port: 1, nowMs: 1)
        t.learn(a, port: 3, nowMs: 2)
        #expect(t.lookup(a, nowMs: 3) == 3)
        #expect(t.entries(nowMs: 3).count == 1)
    }

    @Test func fullTableEvictsTheStalestEntry() {
        let t = MACLearningTable(capacity: 8, agingMs: 100_000)  // one bucket of eight ways
        #expect(t.bucketCount == 1)
        for i in 0..<8 { t.learn(MACAddress(value: 0x0200_0000_0100 + UInt64(i)), port: 1, nowMs: 10 + UInt64(i)) }
        t.learn(a, port: 2, nowMs: 100)
        #expect(t.lookup(a, nowMs: 100) == 2)
        #expect(t.lookup(MACAddress(value: 0x0200_0000_0100), nowMs: 100) == nil)  // the oldest went
        #expect(t.lookup(MACAddress(value: 0x0200_0000_0101), nowMs: 100) == 1)
    }

    @Test func macParsingAndFormatting() {
        #expect(a.description == "02:00:00:00:00:0a")
        #expect(MACAddress("ff:ff:ff:ff:ff:ff")!.isMulticast)
        #expect(!a.isMulticast)
        #expect(MACAddress("01:00:5e:00:00:01")!.isMulticast)
        #expect(MACAddress("02:00:00:00:00") == nil)
        #expect(MACAddress("zz:00:00:00:00:00") == nil)
    }
}
