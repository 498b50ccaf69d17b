import Foundation
import ShuntTestSupport
import Testing

@testable import ShuntBPF

/// Faults a user meets: each one refused or reported with what to do, and nothing left behind.
@Suite("Faults", .serialized, .enabled(if: canRunNetnsTests, netnsSkipReason))
struct FaultTests {
    /// Another program on a port's XDP hook is never replaced: the forwarder refuses to start,
    /// names the program and says how to free the hook; the other program keeps running.
    @Test func anotherXDPProgramOnAPortIsNamedNotReplaced() throws {
        let lab = try Lab()
        let other = try ShuntCommandProcess(namespace: lab.fwd, arguments: [
            "xdp-redirect", "--port", lab.port(0), "--port", lab.port(1)])
        let r = try run(["ip", "netns", "exec", lab.fwd, shuntExecutable, "forward", "--port", lab.port(0),
                         "--port", lab.port(1), "--datapath", "xdp", "--fix-peers", "--no-control", "--duration", "1"],
                        check: false)
        let still = try run(["ip", "-n", lab.fwd, "-d", "link", "show", lab.port(0)]).out
        _ = try other.stop()
        #expect(r.status == 2, "\(r)")
        #expect(r.err.contains("p0 already has XDP program 'xdp_redirect' (id "), "\(r.err)")
        #expect(r.err.contains("held by a bpf_link of another process") && r.err.contains("--datapath afpacket"), "\(r.err)")
        #expect(still.contains("xdp_redirect") || still.contains("prog/xdp"), "the other program must stay: \(still)")
        let after = try run(["ip", "-n", lab.fwd, "-d", "link", "show", lab.port(0)]).out
        #expect(!after.contains("prog/xdp"), "\(after)")
    }

    /// The same for a program attached over netlink (`ip link set ... xdp obj ...`), whose fix is
    /// `ip link set ... xdp off`.
    @Test func aNetlinkAttachedProgramGetsTheIPLinkFix() {
        let o = XDPOccupant(programID: 42, programName: "xdp_prog", throughLink: false)
        #expect(o.explanation(interface: "eth0")
            == "eth0 already has XDP program 'xdp_prog' (id 42); shunt does not replace another program: remove it with `ip link set dev eth0 xdp off` if nothing needs it; or do without XDP (shunt forward --datapath afpacket, shunt sink --engine ring)")
    }

    /// Rings larger than the machine can hold: a message and exit 2, not the OOM killer.
    @Test func ringsTooLargeForMemoryAreRefused() throws {
        let lab = try Lab()
        let r = try run(["ip", "netns", "exec", lab.fwd, shuntExecutable, "forward", "--port", lab.port(0), "--port",
                         lab.port(1), "--block-size", "4194304", "--block-count", "200000", "--no-control", "--duration", "1"],
                        check: false)
        #expect(r.status == 2 && r.err.contains("the rings would take") && r.err.contains("lower --block-count"), "\(r)")
    }

    /// Ring setup failures other than memory, injected with resource limits: no file
    /// descriptor for a port's socket (`ulimit -n`), and the rings' mapping refused by the
    /// address-space limit (`ulimit -v`). Each is one line naming the port, the limit and what
    /// to change, exit 2, and on the XDP datapath no program left attached.
    @Test(arguments: ["afpacket", "xdp"])
    func ringSetupFailuresSayWhatToChange(datapath: String) throws {
        let lab = try Lab()
        let base = [shuntExecutable, "forward", "--port", lab.port(0), "--port", lab.port(1), "--no-control",
                    "--duration", "1", "--datapath", datapath] + (datapath == "xdp" ? ["--fix-peers"] : [])
        let files = try run(["ip", "netns", "exec", lab.fwd, "prlimit", "--nofile=4"] + base, check: false)
        #expect(files.status == 2, "\(files)")
        #expect(files.err.contains("opening a socket for '\(lab.port(0))'") || files.err.contains("opening a socket for '\(lab.port(1))'"),
                "\(files.err)")
        #expect(files.err.contains("Too many open files") && files.err.contains("(`ulimit -n`, now 4)"), "\(files.err)")
        // 8192 blocks of 64 KiB: 512 MiB of RX ring per port, past a 700 MB address space.
        let mapping = try run(["ip", "netns", "exec", lab.fwd, "prlimit", "--as=700000000"] + base + ["--block-count", "8192"],
                              check: false)
        #expect(mapping.status == 2, "\(mapping)")
        #expect(mapping.err.contains("mapping the rings of '") && mapping.err.contains("(514 MiB) failed")
                && mapping.err.contains("`ulimit -v`, now 683593 kB") && mapping.err.contains("lower --block-count"),
                "\(mapping.err)")
        for port in [lab.port(0), lab.port(1)] {
            let link = try run(["ip", "-n", lab.fwd, "-d", "link", "show", port]).out
            #expect(!link.contains("prog/xdp"), "\(link)")
        }
    }

    /// Nothing of Shunt needs bpffs: the XDP datapath runs where /sys/fs/bpf is not mounted (as
    /// inside `ip netns exec`, which mounts a fresh sysfs).
    @Test func theXDPDatapathNeedsNoBPFFS() throws {
        let lab = try Lab()
        let fs = try run(["ip", "netns", "exec", lab.fwd, "stat", "-f", "-c", "%T", "/sys/fs/bpf"], check: false)
        #expect(!fs.out.contains("bpf_fs"), "bpffs is mounted here: \(fs.out)")
        let fwd = try ForwarderProcess(namespace: lab.fwd, arguments: ["--port", lab.port(0), "--port", lab.port(1),
                                                                        "--datapath", "xdp", "--fix-peers"])
        let gen = try RawPort(namespace: lab.ns("gen"), interface: lab.interface("gen"))
        let sink = try RawPort(namespace: lab.ns("sink"), interface: lab.interface("sink"))
        for i in 0..<20 { try gen.send(ipv4UDPFrame(dst: macB, src: macA, sequence: UInt32(i))) }
        #expect(sink.receiveAny(count: 20, timeout: 3).count == 20)
        _ = try fwd.stop()
    }

    /// An output port's MTU lowered while forwarding: larger frames are counted as too_large on
    /// that port (the kernel would skip them silently), smaller ones keep flowing, and the
    /// forwarder says what changed.
    @Test(arguments: ["xconnect", "flows"])
    func aLoweredMTUIsFollowedAndCounted(mode: String) throws {
        let lab = try Lab()
        let fwd = try ForwarderProcess(namespace: lab.fwd, arguments: ["--port", lab.port(0), "--port", lab.port(1),
                                                                        "--mode", mode])
        let gen = try RawPort(namespace: lab.ns("gen"), interface: lab.interface("gen"))
        let sink = try RawPort(namespace: lab.ns("sink"), interface: lab.interface("sink"))
        for i in 0..<20 { try gen.send(ipv4UDPFrame(dst: macB, src: macA, sequence: UInt32(i), size: 1400)) }
        #expect(sink.receiveAny(count: 20, timeout: 3).count == 20)
        try run(["ip", "-n", lab.fwd, "link", "set", lab.port(1), "mtu", "1000"])
        Thread.sleep(forTimeInterval: 1.5)  // the forwarder looks once a second
        for i in 0..<30 { try gen.send(ipv4UDPFrame(dst: macB, src: macA, sequence: UInt32(100 + i), size: 1400)) }
        for i in 0..<10 { try gen.send(ipv4UDPFrame(dst: macB, src: macA, sequence: UInt32(200 + i), size: 500)) }
        let after = sink.receiveAny(count: 40, timeout: 3)
        let stderr = fwd.stderr
        let stats = try fwd.stop()
        #expect(after.count == 10 && after.allSatisfy { $0.count < 600 }, "only the small frames pass: \(after.count)")
        #expect(stats.drop(lab.port(1), "tx_drops", "too_large") == 30, "\(stats.ports[lab.port(1)] ?? [:])")
        #expect(stats.value(lab.port(0), "rx_packets") == 60 && stats.value(lab.port(1), "tx_packets") == 30)
        #expect(stderr.contains("port p1: MTU changed from 1500 to 1000; frames over 1018 bytes are dropped as too_large"),
                "\(stderr)")
    }

    /// The sink's port deleted under traffic: the sink says so, stops, and reports what it
    /// received (exit 1), on both engines, instead of waiting for a Ctrl-C.
    @Test(arguments: ["ring", "xdp"])
    func theSinksPortRemovedUnderTraffic(engine: String) throws {
        let lab = try Lab(["gen"])
        try run(["ip", "netns", "exec", lab.fwd, "ethtool", "-K", lab.port(0), "gro", "on"])
        let sink = try SpawnedProcess(["timeout", "-s", "KILL", "20", "ip", "netns", "exec", lab.fwd, shuntExecutable, "sink",
                                       "--port", lab.port(0), "--engine", engine, "--json"])
        Thread.sleep(forTimeInterval: 0.5)
        let gen = try SpawnedProcess(["timeout", "-s", "KILL", "20", "ip", "netns", "exec", lab.ns("gen"), shuntExecutable,
                                      "gen", "--port", lab.interface("gen"), "--rate", "2000", "--duration", "3", "--engine", "ring"])
        Thread.sleep(forTimeInterval: 1.0)
        try run(["ip", "-n", lab.fwd, "link", "del", lab.port(0)])
        let status = sink.wait(timeout: 10)
        _ = gen.wait(timeout: 10)
        #expect(status == 1, "sink exit status \(status): \(sink.stderr)")
        #expect(sink.stderr.contains("shunt sink: port p0 disappeared (deleted, or moved to another namespace); stopping with what was received"),
                "\(sink.stderr)")
        let final = try #require(sink.stdout.split(separator: "\n").last { $0.contains("\"type\":\"final\"") }, "\(sink.stdout)")
        let report = try JSONSerialization.jsonObject(with: Data(final.utf8)) as! [String: Any]
        #expect(jsonNumber(report, "received") >= 1000, "about a second of 2 kpps arrived before the port went: \(report)")
    }
}
