import CShunt
import ShuntTestSupport
import Testing
@testable import ShuntCore

/// Runs `FrameRewrite.write` on a frame as a ring would hold it (tag stripped into metadata when
/// `strippedTag` is given).
func rewrite(_ frame: [UInt8], strippedTag: UInt16? = nil, edits: FrameEdits, capacity: Int = 2048) -> [UInt8] {
    var input = frame
    var out = [UInt8](repeating: 0, count: capacity)
    let n = input.withUnsafeMutableBytes { raw in
        out.withUnsafeMutableBytes { dst in
            var p = PacketDescriptor(data: raw.baseAddress!, capturedLength: UInt32(raw.count), wireLength: UInt32(raw.count), inPort: 0)
            if let t = strippedTag {
                p.vlanTCI = t
                p.vlanTPID = 0x8100
                p.flags.insert(.hasVLANTag)
            }
            return FrameRewrite.write(p, edits: edits, to: dst.baseAddress!, capacity: capacity)
        }
    }
    return Array(out[0..<n])
}

@Suite struct FrameRewriteTests {
    @Test func setsMACsWithoutTouchingTheRest() {
        let f = udp4Frame(payload: Array(0..<30))
        var e = FrameEdits()
        e.ethSrc = MACAddress("02:aa:bb:cc:dd:ee")
        e.ethDst = MACAddress("ff:ff:ff:ff:ff:ff")
        let out = rewrite(f, edits: e)
        #expect(out[0..<6] == [0xff, 0xff, 0xff, 0xff, 0xff, 0xff])
        #expect(out[6..<12] == [0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee])
        #expect(out[12...] == f[12...])
    }

    @Test func pushesSetsAndPopsVLANTags() {
        let f = udp4Frame(payload: Array(0..<30))
        var push = FrameEdits()
        push.vlan = .set(5)
        let pushed = rewrite(f, edits: push)
        #expect(pushed.count == f.count + 4)
        #expect(pushed[12..<16] == [0x81, 0x00, 0x00, 0x05])
        #expect(Array(pushed[16...]) == Array(f[12...]))
        // A tag the kernel stripped: PCP and DEI are kept, the VID changes.
        var set = FrameEdits()
        set.vlan = .set(0x123)
        let changed = rewrite(f, strippedTag: 0xB00A, edits: set)
        #expect(changed[12..<16] == [0x81, 0x00, 0xB1, 0x23])
        // Kept as received when untouched; popped on request, in metadata or in the frame.
        #expect(rewrite(f, strippedTag: 0x000A, edits: FrameEdits())[12..<16] == [0x81, 0x00, 0x00, 0x0A])
        var pop = FrameEdits()
        pop.vlan = .pop
        #expect(rewrite(f, strippedTag: 0x000A, edits: pop) == f)
        #expect(rewrite(pushed, edits: pop) == f)
    }

    @Test func decrementsTTLWithAValidChecksum() {
        for ttl: UInt8 in [2, 64, 128, 255] {
            var f = udp4Frame(payload: Array(0..<20))
            f[14 + 8] = ttl
            f[24] = 0; f[25] = 0
            let sum = f.withUnsafeBytes { Checksum.finish(Checksum.sum($0.baseAddress! + 14, count: 20)) }
            f[24] = UInt8(sum >> 8); f[25] = UInt8(sum & 0xFF)
            var e = FrameEdits()
            e.ttlDecrements = 1
            e.vlan = .set(7)
            let out = rewrite(f, edits: e)
            #expect(out[18 + 8] == ttl - 1)
            #expect(out.ipv4ChecksumIsValid(at: 18), "TTL \(ttl)")
        }
        var v6 = tcp6Frame(payload: [1, 2, 3])
        v6[14 + 7] = 9
        var e = FrameEdits()
        e.ttlDecrements = 2
        #expect(rewrite(v6, edits: e)[14 + 7] == 7)
    }

    @Test func refusesWhatDoesNotFit() {
        let f = udp4Frame(payload: Array(repeating: 1, count: 100))
        var e = FrameEdits()
        e.vlan = .set(1)
        #expect(rewrite(f, edits: e, capacity: f.count + 3).isEmpty)
        #expect(rewrite(f, edits: e, capacity: f.count + 4).count == f.count + 4)
    }

    @Test func readsTTL() {
        var input = udp4Frame(payload: [])
        let ttl = input.withUnsafeMutableBytes { raw in
            FrameRewrite.ttl(of: PacketDescriptor(data: raw.baseAddress!, capturedLength: UInt32(raw.count), wireLength: UInt32(raw.count), inPort: 0))
        }
        #expect(ttl == 64)
    }
}

@Suite struct ExactMatchCacheTests {
    func key(_ n: UInt32) -> FlowKey {
        var k = FlowKey()
        k.inPort = 1
        k.tpSrc = UInt16(n & 0xffff)
        k.nwSrcIPv4 = n
        return k
    }

    @Test func hitsOnlyInItsGeneration() {
        let c = ExactMatchCache(capacity: 64)
        let k = key(7)
        let slot = c.insert(k, hash: k.hash64, generation: 1, nowMs: 5, actions: [.setEthSrc(MACAddress(value: 1)), .output(2)],
                            ruleIDs: [3, 4], dropReason: nil, flags: [.usedNormal])
        #expect(slot != nil)
        #expect(c.lookup(k, hash: k.hash64, generation: 1) == slot)
        #expect(c.lookup(k, hash: k.hash64, generation: 2) == nil)
        #expect(c.lookup(key(8), hash: key(8).hash64, generation: 1) == nil)
        let s = slot!
        #expect(c.actionCount(s) == 2 && DatapathAction(abi: c.action(s, 1)) == .output(2))
        #expect(c.ruleCount(s) == 2 && c.ruleID(s, 1) == 4)
        #expect(c.flags(s).contains(.usedNormal))
        c.recordHit(s, bytes: 100, nowMs: 9)
        let entries = c.entries(generation: 1)
        #expect(entries.count == 1 && entries[0].packets == 1 && entries[0].bytes == 100 && entries[0].lastUsedMs == 9)
    }

    @Test func replacesWithinABucketAndRefusesOversizedResults() {
        let c = ExactMatchCache(capacity: 2)  // one bucket of two slots
        for n in 0..<5 {
            _ = c.insert(key(UInt32(n)), hash: key(UInt32(n)).hash64, generation: 1, nowMs: UInt64(n), actions: [.output(1)],
                         ruleIDs: [], dropReason: nil, flags: [])
        }
        // The two most recent translations survive.
        #expect(c.lookup(key(4), hash: key(4).hash64, generation: 1) != nil)
        #expect(c.lookup(key(3), hash: key(3).hash64, generation: 1) != nil)
        #expect(c.lookup(key(0), hash: key(0).hash64, generation: 1) == nil)
        let tooMany = Array(repeating: DatapathAction.output(1), count: ExactMatchCache.maxActions + 1)
        #expect(c.insert(key(9), hash: key(9).hash64, generation: 1, nowMs: 0, actions: tooMany, ruleIDs: [],
                         dropReason: nil, flags: []) == nil)
    }

    /// A thousand flows that differ only in their UDP source port all stay cached in 8192 slots:
    /// the hash must spread them over the buckets.
    @Test func distinctFlowsStayResident() {
        let c = ExactMatchCache(capacity: 8192)
        var keys: [FlowKey] = []
        for port in 1024..<2024 {
            var k = FlowKey()
            k.inPort = 1
            k.dlType = 0x0800
            k.nwProto = 17
            k.nwSrcIPv4 = 0x0ACB_0001
            k.nwDstIPv4 = 0x0ACB_0002
            k.tpSrc = UInt16(port)
            k.tpDst = 9
            keys.append(k)
            _ = c.insert(k, hash: k.hash64, generation: 1, nowMs: UInt64(port), actions: [.output(2)], ruleIDs: [], dropReason: nil, flags: [])
        }
        let resident = keys.filter { c.lookup($0, hash: $0.hash64, generation: 1) != nil }.count
        #expect(resident >= 990, "only \(resident) of 1000 flows stayed in the cache")
    }
}
