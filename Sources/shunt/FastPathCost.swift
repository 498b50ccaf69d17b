import ArgumentParser
import CShunt
import ShuntBPF
import ShuntCore
import ShuntSystem

/// What the XDP fast path costs per frame, stage by stage: BPF_PROG_TEST_RUN (plain, not live)
/// runs each case `--repeat` times on one CPU and reports the mean. The cases add one stage
/// each (an empty program, the port lookup and parse with a miss, a hit on a drop entry, a hit
/// that outputs, with a MAC rewrite, VXLAN encapsulation, the DVR chain), so the differences
/// between them are the stages' costs; xdp_redirect is the bare redirect the issue measures
/// against.
struct FastPathCost: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fastpath-cost",
        abstract: "Measure the XDP fast path's cost per frame by stage (BPF_PROG_TEST_RUN).",
        discussion: """
            Loads xdp_pass, xdp_redirect and xdp_flowcache (not attached anywhere), installs \
            cache entries for a 64-byte UDP frame and runs each case --repeat times through \
            BPF_PROG_TEST_RUN in plain mode; the kernel reports the mean time per run. Frames \
            come in on lo (the test run's device), which is port 1, also the output port and \
            the tunnel's underlay. Prints one line per case and --rounds medians. Needs root (CAP_BPF, \
            CAP_NET_ADMIN). No traffic is sent.
            """
    )

    @Option(help: "Runs per measurement (BPF_PROG_TEST_RUN repeat).")
    var `repeat`: UInt32 = 1_000_000

    @Option(help: "Measurements per case, interleaved; the median is printed.")
    var rounds: Int = 5

    @Flag(help: "Print JSON (one object per case).")
    var json = false

    struct Case {
        let name: String
        let what: String
        let programFD: Int32
        let frame: [UInt8]
        let expect: UInt32
        /// The program changes the frame so that a second run of it is another case (the test
        /// run does not restore the frame between repeats): measured one run per call instead.
        var mutates = false
    }

    func run() throws {
        let lo = UInt32(bitPattern: Sys.interfaceIndex("lo") ?? 1)
        let cases: [Case]
        let objects: (BPFObject, BPFObject, FlowCacheProgram)
        do {
            let pass = try BPFObject(embedded: "xdp_pass")
            let redirect = try BPFObject(embedded: "xdp_redirect")
            try BPFMap.update(fd: try redirect.mapFD("out_ports"), key: UInt32(0), value: lo)
            try BPFMap.update(fd: try redirect.mapFD("partner_of"), key: lo, value: UInt32(0))
            let cache = try FlowCacheProgram(maxEntries: 1024)
            objects = (pass, redirect, cache)
            cases = try Self.cases(pass: pass, redirect: redirect, cache: cache, lo: Int32(bitPattern: lo))
        } catch {
            printError("shunt fastpath-cost: \(error)")
            throw ExitCode(2)
        }
        var samples = Array(repeating: [Double](), count: cases.count)
        // One-run calls carry the harness's per-call cost (its clock reads): the empty program
        // measured the same way is subtracted, as the median of `singleRuns` calls.
        let singleRuns = 20_000
        var singleBaseline = 0.0
        if cases.contains(where: \.mutates) {
            singleBaseline = try Self.medianOfSingleRuns(cases[0], count: singleRuns)
        }
        for _ in 0..<max(1, rounds) {
            for (i, c) in cases.enumerated() {
                if c.mutates {
                    samples[i].append(try Self.medianOfSingleRuns(c, count: singleRuns) - singleBaseline + (samples[0].last ?? 0))
                    continue
                }
                let r: ProgramTestRun.Result
                do { r = try ProgramTestRun.xdp(programFD: c.programFD, packet: c.frame, repeat: `repeat`) } catch {
                    printError("shunt fastpath-cost: \(c.name): \(error)")
                    throw ExitCode(2)
                }
                guard r.returnValue == c.expect else {
                    let st = try? objects.2.stats()
                    let why = st.map { "misses \($0.misses), userspace \($0.userspace), malformed \($0.malformed), not_a_port \($0.not_a_port), redirect_errors \($0.redirect_errors)" } ?? ""
                    printError("shunt fastpath-cost: \(c.name) returned verdict \(r.returnValue), expected \(c.expect): the case is not what it claims (\(why))")
                    throw ExitCode(1)
                }
                samples[i].append(Double(r.durationNs))
            }
        }
        withExtendedLifetime(objects) {}
        for (i, c) in cases.enumerated() {
            let sorted = samples[i].sorted()
            let median = sorted[sorted.count / 2]
            if json {
                emitLine("{\"case\":\"\(c.name)\",\"ns_per_run\":\(median),\"min\":\(sorted.first!),\"max\":\(sorted.last!)}")
            } else {
                emitLine("\(c.name.padding(toLength: 16, withPad: " ", startingAt: 0)) \(String(Int(median)).leftPad(4)) ns  (\(Int(sorted.first!))-\(Int(sorted.last!)))  \(c.what)")
            }
        }
    }

    /// The median duration of `count` one-run calls (each on a fresh copy of the frame).
    static func medianOfSingleRuns(_ c: Case, count: Int) throws -> Double {
        var d: [UInt32] = []
        d.reserveCapacity(count)
        for _ in 0..<count {
            let r: ProgramTestRun.Result
            do { r = try ProgramTestRun.xdp(programFD: c.programFD, packet: c.frame) } catch {
                printError("shunt fastpath-cost: \(c.name): \(error)")
                throw ExitCode(2)
            }
            guard r.returnValue == c.expect else {
                printError("shunt fastpath-cost: \(c.name) returned verdict \(r.returnValue), expected \(c.expect)")
                throw ExitCode(1)
            }
            d.append(r.durationNs)
        }
        d.sort()
        return Double(d[d.count / 2])
    }

    static func cases(pass: BPFObject, redirect: BPFObject, cache: FlowCacheProgram, lo: Int32) throws -> [Case] {
        // lo is the only device a test run needs: it is the input port and, as the kernel maps
        // one device to one port, the output port too (a redirect is only recorded here).
        let inPort: UInt32 = 1, outPort: UInt32 = 1, tunnelPort: UInt32 = 3
        try cache.setPort(number: inPort, ifindex: lo)
        // The rewrite writes the MAC the frame already has: the frame (and so its key) stays
        // the same from one repeat to the next, and the write costs what any write costs.
        let sameDestination = MACAddress(value: 0x02_00_00_00_00_02)
        let mac = MACAddress(value: 0x02_00_00_00_00_99)
        // A tunnel port over the output port, its next hop known: encapsulation in the kernel.
        var t = TunnelPort(name: "vx", port: tunnelPort, underlayPort: outPort, local: IPv4Address("192.0.2.1")!,
                           remote: IPv4Address("192.0.2.2")!, vni: nil)
        t.remoteMAC = MACAddress(value: 0x02_00_00_00_02_02)
        var abi = t.abi(sourceMAC: MACAddress(value: 0x02_00_00_00_01_01))
        abi.underlay_mtu = 1500
        withUnsafeMutableBytes(of: &abi.dst_mac) { b in
            for j in 0..<6 { b[j] = UInt8(truncatingIfNeeded: 0x02_00_00_00_02_02 >> UInt64(40 - 8 * j)) }
        }
        abi.flags |= UInt8(SHUNT_TUNNEL_NEXT_HOP)
        try cache.addTunnel(abi)
        let tunnels: UInt64 = 1 << UInt64(tunnelPort)

        func udp(sourcePort: UInt16, vlan: UInt16? = nil) -> [UInt8] {
            var f: [UInt8] = [0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01]
            if let vlan { f += [0x81, 0x00, UInt8(vlan >> 8), UInt8(vlan & 0xff)] }
            f += [0x08, 0x00]
            var ip: [UInt8] = [0x45, 0, 0, 46, 0, 0, 0x40, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]
            let sum = ip.withUnsafeBytes { Checksum.finish(Checksum.sum($0.baseAddress!, count: $0.count)) }
            ip[10] = UInt8(sum >> 8)
            ip[11] = UInt8(sum & 0xff)
            f += ip + [UInt8(sourcePort >> 8), UInt8(sourcePort & 0xff), 0x08, 0x00, 0, 26, 0, 0]
            return f + [UInt8](repeating: 0, count: max(0, 60 + (vlan == nil ? 0 : 4) - f.count))
        }
        func install(_ frame: [UInt8], _ actions: [DatapathAction]) throws {
            var key = FlowKey()
            let ok = frame.withUnsafeBytes {
                FlowKeyExtractor.extract(frame: $0.baseAddress!, length: $0.count, inPort: inPort, strippedVLANTCI: nil, into: &key)
            }
            precondition(ok, "a benchmark frame does not parse")
            try cache.install(key: key, entry: FlowCacheProgram.entry(actions: actions, tunnelPorts: tunnels))
        }
        // One flow per case: each frame differs in its UDP source port.
        let miss = udp(sourcePort: 1000), dropHit = udp(sourcePort: 1001), output = udp(sourcePort: 1002)
        let rewrite = udp(sourcePort: 1003), encap = udp(sourcePort: 1004), dvr = udp(sourcePort: 1005, vlan: 10)
        try install(dropHit, [])
        try install(output, [.output(outPort)])
        try install(rewrite, [.setEthDst(sameDestination), .output(outPort)])
        try install(encap, [.setTunnel(4100), .output(tunnelPort)])
        try install(dvr, [.popVLAN, .setEthSrc(mac), .setTunnel(4100), .output(tunnelPort)])

        let flowcache = cache.programFD
        let drop: UInt32 = 1, passUp: UInt32 = 2, redirected: UInt32 = 4
        return [
            Case(name: "xdp_pass", what: "an empty program: the test run's own cost", programFD: try pass.programFD("xdp_pass"), frame: miss, expect: passUp),
            Case(name: "xdp_redirect", what: "the bare redirect (one hash lookup, a DEVMAP redirect)", programFD: try redirect.programFD("xdp_redirect"), frame: miss, expect: redirected),
            Case(name: "miss", what: "port lookup, parse, key, a cache lookup that misses", programFD: flowcache, frame: miss, expect: passUp),
            Case(name: "hit-drop", what: "+ a hit: entry and port counters, drop", programFD: flowcache, frame: dropHit, expect: drop),
            Case(name: "hit-output", what: "+ output: choose the port, redirect, tx counters", programFD: flowcache, frame: output, expect: redirected),
            Case(name: "mod_dl_dst", what: "+ set the destination MAC (the issue's mod_dl_dst + output)", programFD: flowcache, frame: rewrite, expect: redirected),
            Case(name: "vxlan-encap", what: "set_tunnel + output to a tunnel port: 50 bytes of headers", programFD: flowcache, frame: encap, expect: redirected, mutates: true),
            Case(name: "dvr-chain", what: "strip VLAN + mod_dl_src + set VNI + encapsulate", programFD: flowcache, frame: dvr, expect: redirected, mutates: true),
        ]
    }
}

extension String {
    func leftPad(_ width: Int) -> String { count >= width ? self : String(repeating: " ", count: width - count) + self }
}
