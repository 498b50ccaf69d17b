import CShunt
import Testing
import ShuntBPF
import ShuntSystem
import ShuntTraffic

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
        var config = TestFrameSpec(size: 60).genConfig(stream: 0x1234)
        config.eth = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        let obj = try BPFObject(embedded: "xdp_gen") { try $0.setReadOnlyData(config) }
        let prog = try obj.programFD("xdp_gen")
        let frame = [UInt8](repeating: 0, count: 60)
        var stamps: [UInt64] = []
        for expected in UInt32(0)..<3 {
            let r = try ProgramTestRun.xdp(programFD: prog, packet: frame)
            #expect(r.returnValue == 3)  // XDP_TX
            let out = r.output
            #expect(out.count == 60)
            #expect(Array(out[26..<34]) == [10, 203, 0, 1, 10, 203, 0, 2] && Array(out[34..<38]) == [4, 0, 0, 9])
            #expect(Array(out[42..<44]) == [0x53, 0x48])  // "SH"
            #expect(Array(out[44..<46]) == [0x12, 0x34])
            let sequence = out[46..<50].withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) }
            #expect(sequence == expected)
            stamps.append(out[50..<58].withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
        }
        #expect(stamps[0] > 0 && stamps[0] <= stamps[1] && stamps[1] <= stamps[2])
        #expect(MemoryLayout<shunt_probe>.size == 16 && MemoryLayout<shunt_probe>.offset(of: \.stream) == 2)
    }

    /// xdp_pump (the in-kernel pump): a frame with the probe magic that is due is stamped and
    /// broadcast (XDP_REDIRECT) and counted; a frame without the magic (anything else the stack
    /// sends on the pump's veths) is dropped uncounted; once pump_control is set, every frame
    /// is dropped and the pump stops.
    @Test func pumpSendsOnlyItsOwnFramesAndStopsOnControl() throws {
        let spec = TestFrameSpec(size: 60)
        let obj = try BPFObject(embedded: "xdp_gen") { try $0.setReadOnlyData(spec.genConfig(stream: 7)) }
        let prog = try obj.programFD("xdp_pump")
        var frame = spec.bytes()
        frame[Probe.offset] = UInt8(Probe.magic >> 8)
        frame[Probe.offset + 1] = UInt8(Probe.magic & 0xff)
        for expected in UInt32(0)..<2 {
            let r = try ProgramTestRun.xdp(programFD: prog, packet: frame)
            #expect(r.returnValue == 4)  // XDP_REDIRECT (broadcast to pump_ports)
            let sequence = r.output[46..<50].withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) }
            #expect(sequence == expected && Array(r.output[44..<46]) == [0, 7])
        }
        let stranger = try ProgramTestRun.xdp(programFD: prog, packet: spec.bytes())  // no magic
        #expect(stranger.returnValue == 1)  // XDP_DROP
        let state = try BPFMap.lookup(fd: try obj.mapFD("gen_state"), key: 0, as: shunt_gen_state.self)
        #expect(state.next_seq == 2)
        try BPFMap.update(fd: try obj.mapFD("pump_control"), key: 0, value: UInt32(1))
        #expect(try ProgramTestRun.xdp(programFD: prog, packet: frame).returnValue == 1)
        #expect(try BPFMap.lookup(fd: try obj.mapFD("gen_state"), key: 0, as: shunt_gen_state.self).next_seq == 2)
        #expect(try ProgramTestRun.xdp(programFD: try obj.programFD("xdp_pump_bounce"), packet: frame).returnValue == 3)
    }

    /// xdp_gen over ranges: frame s carries flow s mod F (FlowSpace's mixed radix, as the ring
    /// engine writes it) with a valid IPv4 header checksum, fixed up per frame.
    @Test func genCyclesTheFlowsWithValidChecksums() throws {
        var spec = TestFrameSpec(size: 64)
        spec.flows = FlowSpace(sourceAddresses: .init(first: 0x0A00_00FE, count: 3), destinationAddresses: .init(first: 0xC0A8_0001, count: 2),
                               sourcePorts: .init(first: 5000, count: 2), destinationPorts: .init(first: 53, count: 2))
        let obj = try BPFObject(embedded: "xdp_gen") { try $0.setReadOnlyData(spec.genConfig(stream: 1)) }
        let prog = try obj.programFD("xdp_gen")
        let template = spec.bytes()
        for seq in UInt64(0)..<30 {
            let out = try ProgramTestRun.xdp(programFD: prog, packet: template).output
            var expected = template
            expected.withUnsafeMutableBytes {
                TestFrameSpec.writeFlow(spec.flows.flow(forSequence: seq), checksumBase: spec.checksumBase, into: $0.baseAddress!)
            }
            #expect(Array(out[0..<42]) == Array(expected[0..<42]), "seq \(seq)")
            #expect(TestFrameSpec.internetChecksum(out[14..<34]) == 0, "seq \(seq)")
        }
    }

    /// xdp_gen for IPv6: the probe at byte 62, the flow's last 32 address bits and ports, and a
    /// UDP checksum that verifies over the pseudo-header (RFC 8200 8.1), for every frame.
    @Test func genIPv6FramesCarryAValidUDPChecksum() throws {
        var spec = TestFrameSpec(size: 81)
        let src = try FlowSpace.parseIPv6Addresses("fd00:203::fffe:fffe-fd00:203::ffff:1")
        let dst = try FlowSpace.parseIPv6Addresses("fd00:203::2")
        spec.flows = FlowSpace(sourceAddresses: src.range, destinationAddresses: dst.range,
                               sourcePorts: .init(first: 1024, count: 3), destinationPorts: .init(first: 9, count: 1))
        spec.flows.ipv6 = .init(source: src.prefix, destination: dst.prefix)
        let obj = try BPFObject(embedded: "xdp_gen") { try $0.setReadOnlyData(spec.genConfig(stream: 0x0506)) }
        let prog = try obj.programFD("xdp_gen")
        let template = spec.bytes()
        for seq in UInt64(0)..<24 {
            let out = try ProgramTestRun.xdp(programFD: prog, packet: template).output
            let flow = spec.flows.flow(forSequence: seq)
            #expect(out.count == 81 && Array(out[62..<66]) == [0x53, 0x48, 0x05, 0x06])
            #expect(out[66..<70].withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) } == UInt32(seq))
            #expect(Array(out[34..<38]) == withUnsafeBytes(of: flow.sourceAddress.bigEndian, Array.init))
            #expect(Array(out[54..<56]) == withUnsafeBytes(of: flow.sourcePort.bigEndian, Array.init))
            let udp = Array(out[54...])
            let pseudo = Array(out[22..<54]) + [0, 0, 0, UInt8(udp.count), 0, 0, 0, 17]
            #expect(TestFrameSpec.internetChecksum(pseudo + udp + [0]) == 0, "seq \(seq)")
            #expect(out[60] != 0 || out[61] != 0)
        }
    }

    /// xdp_sink finds the probe of an IPv6 frame at byte 62 (and not of IPv6 without UDP).
    @Test func sinkCountsIPv6Probes() throws {
        let obj = try BPFObject(embedded: "xdp_sink")
        let prog = try obj.programFD("xdp_sink")
        var spec = TestFrameSpec(size: 78)
        spec.flows.ipv6 = .init(source: [0xfd] + [UInt8](repeating: 0, count: 11), destination: [0xfd] + [UInt8](repeating: 0, count: 11))
        var frame = spec.bytes()
        Probe(stream: 1, sequence: 0, sentNanoseconds: 1).write(into: &frame, at: Probe.offsetIPv6)
        var notUDP = frame
        notUDP[20] = 6
        for f in [frame, notUDP, Array(frame.prefix(70))] {
            #expect(try ProgramTestRun.xdp(programFD: prog, packet: f).returnValue == 1)
        }
        let perCPU = try BPFMap.lookupPerCPU(fd: try obj.mapFD("sink_counters"), key: 0, as: shunt_sink_counters.self)
        #expect(perCPU.reduce(0) { $0 + $1.packets } == 3)
        #expect(perCPU.reduce(0) { $0 + $1.probes } == 1)
    }
}
