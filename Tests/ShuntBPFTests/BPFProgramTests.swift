import CShunt
import Testing
import ShuntBPF
import ShuntSystem

let canLoadBPF: Bool = {
    let c = Capabilities.current()
    return (c.has(Capabilities.bpf) || c.has(Capabilities.sysAdmin)) && c.has(Capabilities.netAdmin)
}()

@Suite(.enabled(if: canLoadBPF, "loading BPF programs needs CAP_BPF (or CAP_SYS_ADMIN) and CAP_NET_ADMIN: run the tests as root"))
struct BPFProgramTests {
    @Test func everyEmbeddedObjectDecodesAsELF() throws {
        for name in EmbeddedBPF.all.keys {
            let elf = try EmbeddedBPF.object(name)
            #expect(Array(elf.prefix(4)) == [0x7F, 0x45, 0x4C, 0x46], "\(name)")
        }
    }

    @Test func xdpPassPassesFramesUnchanged() throws {
        let obj = try BPFObject(embedded: "xdp_pass")
        let frame = (0..<64).map { UInt8($0) }
        let r = try ProgramTestRun.xdp(programFD: try obj.programFD("xdp_pass"), packet: frame)
        #expect(r.returnValue == 2)  // XDP_PASS
        #expect(r.output == frame)
    }

    @Test func sinkCountsProbesAndDropsEverything() throws {
        let obj = try BPFObject(embedded: "xdp_sink")
        let prog = try obj.programFD("xdp_sink")
        var probe = [UInt8](repeating: 0, count: 90)
        probe[12] = 0x08; probe[13] = 0x00; probe[14] = 0x45; probe[23] = 17  // IPv4, UDP
        withUnsafeBytes(of: UInt16(SHUNT_PROBE_MAGIC).bigEndian) { probe.replaceSubrange(42..<44, with: $0) }
        let notProbe = [UInt8](repeating: 0xEE, count: 60)
        let truncated = Array(probe.prefix(20))
        for frame in [probe, probe, notProbe, truncated] {
            let r = try ProgramTestRun.xdp(programFD: prog, packet: frame)
            #expect(r.returnValue == 1)  // XDP_DROP
        }
        let perCPU = try BPFMap.lookupPerCPU(fd: try obj.mapFD("sink_counters"), key: 0, as: shunt_sink_counters.self)
        #expect(perCPU.reduce(0) { $0 + $1.packets } == 4)
        #expect(perCPU.reduce(0) { $0 + $1.probes } == 2)
        #expect(perCPU.reduce(0) { $0 + $1.bytes } == 90 + 90 + 60 + 20)
    }

    /// xdp_gen writes the probe as struct shunt_probe says: magic and stream in network order,
    /// then the sequence and the send time in host order, at SHUNT_PROBE_OFFSET.
    @Test func genStampsMagicStreamSequenceAndTime() throws {
        var config = shunt_gen_config()
        config.stream = 0x1234
        config.flows = 1
        config.base_sport = 1024
        let obj = try BPFObject(embedded: "xdp_gen") { try $0.setReadOnlyData(config) }
        let prog = try obj.programFD("xdp_gen")
        let frame = [UInt8](repeating: 0, count: 60)
        var stamps: [UInt64] = []
        for expected in UInt32(0)..<3 {
            let r = try ProgramTestRun.xdp(programFD: prog, packet: frame)
            #expect(r.returnValue == 3)  // XDP_TX
            let out = r.output
            #expect(out.count == 60)
            #expect(Array(out[42..<44]) == [0x53, 0x48])  // "SH"
            #expect(Array(out[44..<46]) == [0x12, 0x34])
            let sequence = out[46..<50].withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) }
            #expect(sequence == expected)
            stamps.append(out[50..<58].withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
        }
        #expect(stamps[0] > 0 && stamps[0] <= stamps[1] && stamps[1] <= stamps[2])
        #expect(MemoryLayout<shunt_probe>.size == 16 && MemoryLayout<shunt_probe>.offset(of: \.stream) == 2)
    }

    /// xdp_gen writes the MACs from its read-only config into every frame (the Linux bridge drops
    /// frames with an all-zero source MAC, which is what a folded read of the config gave).
    @Test func genWritesTheConfiguredMACs() throws {
        var config = shunt_gen_config()
        config.flows = 1
        config.base_sport = 1024
        let macs: [UInt8] = [0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01]
        withUnsafeMutableBytes(of: &config.eth) { $0.copyBytes(from: macs) }
        let obj = try BPFObject(embedded: "xdp_gen") { try $0.setReadOnlyData(config) }
        let r = try ProgramTestRun.xdp(programFD: try obj.programFD("xdp_gen"), packet: [UInt8](repeating: 0, count: 60))
        #expect(r.returnValue == 3)  // XDP_TX
        #expect(Array(r.output[0..<12]) == macs)
    }
}
