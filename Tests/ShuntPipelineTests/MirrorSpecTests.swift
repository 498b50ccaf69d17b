import ShuntCore
import Testing

@testable import ShuntPipeline

@Suite struct MirrorSpecTests {
    let ports = PortNames(["p1", "p2", "p3", "vx1"])

    @Test func fullSpecParsesAndPrintsBack() throws {
        let text = "m1,src=p1+p2,dir=in,to=pcap:/tmp/m.pcapng,sample=100,snaplen=128,match=tcp,tp_dst=80"
        let spec = try MirrorSpec.parse(text)
        #expect(spec.name == "m1")
        #expect(spec.sources == ["p1", "p2"])
        #expect(spec.direction == .ingress)
        #expect(spec.target == .pcap(path: "/tmp/m.pcapng"))
        #expect(spec.sample == 100)
        #expect(spec.snaplen == 128)
        #expect(spec.match == "tcp,tp_dst=80")
        #expect(spec.text == text)
        #expect(try MirrorSpec.parse(spec.text) == spec)
    }

    @Test func defaultsAreBothDirectionsEveryPacketWholeFrames() throws {
        let spec = try MirrorSpec.parse("span,src=p1,to=p3")
        #expect(spec.direction == .both && spec.sample == 1 && spec.snaplen == nil && spec.match == nil)
        #expect(spec.target == .port("p3"))
        let s = try MirrorSession.resolve(spec, ports: ports)
        #expect(s.sources == [1] && s.output == .port(3) && s.snaplen == 0 && s.match == nil)
    }

    @Test(arguments: [
        ("m1,src=p1,to=p3,snaplen=13", "snaplen must be at least 14"),
        ("m1,src=p1,to=p3,sample=0", "sample must be 1 or more"),
        ("m1,src=p1,to=p3,dir=sideways", "dir must be in, out or both"),
        ("m1,to=p3", "src=PORT[+PORT...] is missing"),
        ("m1,src=p1", "to=PORT|pcap:FILE is missing"),
        ("m1,src=p1,to=p3,colour=red", "unknown key 'colour'"),
        ("src=p1,to=p3", "starts with its name"),
        ("m1,src=p1,to=p3,src=p2", "src is given twice"),
        ("m1,src=p1,to=pcap:", "needs a file name"),
    ])
    func badTextIsRefusedWithAClearReason(text: String, reason: String) {
        let error = #expect(throws: MirrorSpecError.self) { try MirrorSpec.parse(text) }
        #expect(error?.description.contains(reason) == true, "\(error?.description ?? "no error")")
    }

    @Test(arguments: [
        ("m1,src=p1+p3,to=p3", "output port 'p3' is also one of its sources"),
        ("m1,src=p9,to=p3", "unknown source port 'p9'"),
        ("m1,src=p1,to=eth7", "unknown output port 'eth7'"),
        ("m1,src=p1+p1,to=p3", "given twice"),
        ("m1,src=p1,to=p3,match=tcp,tp_dst=http", "match 'tcp,tp_dst=http'"),
        ("m1,src=p1,to=p3,match=table=1,tcp", "match fields only"),
    ])
    func badSessionsAreRefusedAgainstThePorts(text: String, reason: String) throws {
        let spec = try MirrorSpec.parse(text)
        let error = #expect(throws: MirrorSpecError.self) { try MirrorSession.resolve(spec, ports: ports) }
        let message = error?.description ?? "no error"
        #expect(message.contains(reason) && message.hasPrefix("mirror m1: "), "\(message)")
    }

    @Test func namesAndCaptureFilesAreUniqueAcrossSessions() throws {
        let a = try MirrorSpec.parse("a,src=p1,to=p3")
        let existing = try MirrorSessions.resolveAll([a], ports: ports)
        #expect(throws: MirrorSpecError.self) { try MirrorSessions.resolveAll([a], ports: ports, existing: existing) }
        let f1 = try MirrorSpec.parse("f1,src=p1,to=pcap:/tmp/x")
        let f2 = try MirrorSpec.parse("f2,src=p2,to=pcap:/tmp/x")
        #expect(throws: MirrorSpecError.self) { try MirrorSessions.resolveAll([f1, f2], ports: ports) }
    }

    @Test func selectionFollowsDirectionPortsAndMatch() throws {
        let s = try MirrorSession.resolve(try MirrorSpec.parse("m,src=p1,dir=in,to=p3,match=udp"), ports: ports)
        var udp = FlowKey()
        udp.inPort = 1
        udp.dlType = 0x0800
        udp.nwProto = 17
        var tcp = udp
        tcp.nwProto = 6
        #expect(s.selectsIngress(key: udp, inPort: 1))
        #expect(!s.selectsIngress(key: tcp, inPort: 1))
        #expect(!s.selectsIngress(key: udp, inPort: 2))
        #expect(!s.selectsEgress(key: udp, outPort: 1))  // dir=in
        #expect(s.selects(flow: udp, actions: [.output(2)]))

        let out = try MirrorSession.resolve(try MirrorSpec.parse("o,src=p2,dir=out,to=p3"), ports: ports)
        var fromP1 = FlowKey()
        fromP1.inPort = 1
        #expect(out.selects(flow: fromP1, actions: [.setVLAN(5), .output(2)]))
        #expect(!out.selects(flow: fromP1, actions: [.output(4)]))
        var fromP2 = FlowKey()
        fromP2.inPort = 2
        #expect(!out.selects(flow: fromP2, actions: [.output(1)]))
    }
}
