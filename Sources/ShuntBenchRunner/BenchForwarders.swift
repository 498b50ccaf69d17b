import Foundation
import Glibc
import ShuntBench
import ShuntSystem

// The forwarders `shunt bench` runs in the fwd namespace between fwd0 and fwd1, one small type
// each: start (ready to forward when it returns) and stop (the namespace as it was before).

/// What a forwarder needs from the run.
struct BenchContext {
    let runtime: BenchRuntime
    let lab: BenchLab
    let shunt: String
    /// The binary `NAME@base` forwarders run.
    let baseline: String?
    let generatorCPU: Int
    let forwarderCPU: Int
    let raw: String
    let pinning: Bool
    let console: BenchConsole

    /// argv running `command` in `namespace`, pinned to `cpu` when taskset is there.
    func inNamespace(_ namespace: String, cpu: Int?, _ command: [String]) -> [String] {
        var argv = ["ip", "netns", "exec", namespace]
        if let cpu, pinning { argv += ["taskset", "-c", "\(cpu)"] }
        return argv + command
    }

    /// RPS on fwd0's receive queue to the forwarder CPU: for the forwarders that run inside the
    /// kernel's receive path (bridge, tc), so that they forward on the same CPU as the others
    /// while the generator CPU takes the frames off the veth.
    func setRPS(on: Bool) throws {
        let mask = on ? String(1 << forwarderCPU, radix: 16) : "0"
        try lab.writeInFwd(runtime, "/sys/class/net/fwd0/queues/rx-0/rps_cpus", mask)
    }

    /// Threaded NAPI on fwd0, its kernel threads pinned to the forwarder CPU: the XDP programs run
    /// in fwd0's receive processing, which otherwise shares the generator CPU's softirq. Every
    /// thread named napi/fwd0-* is pinned (a thread from an earlier repeat may be reused, so "the
    /// new ones" is not enough); on a benchmark machine those are this lab's.
    func threadedNAPI(on: Bool) throws {
        try lab.writeInFwd(runtime, "/sys/class/net/fwd0/threaded", on ? "1" : "0")
        guard on, pinning else { return }
        try runtime.pause(0.1)
        var pinned = 0
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] where Int(entry) != nil {
            guard let comm = try? String(contentsOfFile: "/proc/\(entry)/comm", encoding: .utf8),
                  comm.hasPrefix("napi/fwd0-") else { continue }
            try runtime.run(["taskset", "-pc", "\(forwarderCPU)", entry])
            pinned += 1
        }
        if pinned == 0 { throw BenchFailure("no NAPI thread for fwd0 appeared after enabling threaded NAPI") }
    }
}

protocol BenchForwarder: AnyObject {
    var name: String { get }
    func start(_ c: BenchContext, tag: String) throws
    /// Never throws: also used in cleanup. Problems are printed.
    func stop(_ c: BenchContext)
    /// The mirror sessions' counters summed, for forwarders that mirror; nil otherwise or when
    /// they cannot be read.
    func mirrorCounters(_ c: BenchContext) -> BenchMirrorCounts?
}

extension BenchForwarder {
    func mirrorCounters(_ c: BenchContext) -> BenchMirrorCounts? { nil }
}

/// Totals over a forwarder's mirror sessions (`shunt ctl mirror list --json`).
struct BenchMirrorCounts {
    var mirrored: UInt64
    /// Of `mirrored`, the copies the XDP fast path made; nil on the afpacket datapath.
    var fastPath: UInt64?
    var dropped: UInt64

    /// The counts from `earlier` to this reading.
    func since(_ earlier: BenchMirrorCounts) -> BenchMirrorCounts {
        BenchMirrorCounts(mirrored: mirrored &- earlier.mirrored,
                       fastPath: fastPath.flatMap { now in earlier.fastPath.map { now &- $0 } },
                       dropped: dropped &- earlier.dropped)
    }
}

func makeForwarder(_ name: String) -> BenchForwarder {
    switch name {
    case "bridge": BridgeForwarder()
    case "tc-mirred": TCMirredForwarder()
    case "testpmd": TestpmdForwarder()
    case "c-tpacket": CTPacketForwarder(name: name, ring: "v3")
    case "c-tpacket-v2": CTPacketForwarder(name: name, ring: "v2")
    case "ovs": OVSForwarder()
    default: ShuntProcessForwarder(name: name)  // shunt, shunt-v3, shunt-xdp, shunt-flows, the mirror ones, xdp-redirect
    }
}

/// shunt, shunt-v3, shunt-xdp, shunt-flows, the mirror forwarders and xdp-redirect: one shunt process.
final class ShuntProcessForwarder: BenchForwarder {
    let name: String
    private var pid: pid_t?
    private var threaded = false
    /// The control socket, for the mirror forwarders' counters.
    private var control: String?

    init(name: String) { self.name = name }

    /// The SPAN sessions of a mirror forwarder with `count` sessions, each to its own analysis
    /// port: a session's copies of every forwarded frame go to a port no other copy uses, which
    /// the XDP fast path needs to copy in the kernel (one broadcast reaches each port once), and
    /// each monitor port then takes one copy per frame, the load sink0 takes.
    static func mirrorSessions(_ count: Int) -> [String] {
        ["span-in,src=fwd0,dir=in,to=\(BenchLab.analysisPort(0))",
         "span-out,src=fwd1,dir=out,to=\(BenchLab.analysisPort(1))"].prefix(count).map { $0 }
    }

    /// The forwarder without `@base`, and the binary it runs.
    private var kind: String { ForwarderInfo.named(name)?.kind ?? name }
    private func binary(_ c: BenchContext) -> String {
        ForwarderInfo.named(name)?.isBaseline == true ? (c.baseline ?? c.shunt) : c.shunt
    }

    func start(_ c: BenchContext, tag: String) throws {
        let sessions = ForwarderInfo.named(name)?.mirrorSessions ?? 0
        // The analysis ports come after fwd0 and fwd1, which stay ports 1 and 2 of the flow tables.
        var command = [binary(c), "forward", "--port", "fwd0", "--port", "fwd1"]
            + (0..<sessions).flatMap { ["--port", BenchLab.analysisPort($0)] } + ["--workers", "1", "--json"]
        var cpu: Int? = c.forwarderCPU
        let control = "\(c.runtime.scratch)/\(tag).ctl"
        switch kind {
        case "shunt":
            command += ["--no-control"]
        case "shunt-v3":
            command += ["--no-control", "--ring-version", "v3", "--tx", "ring"]
        case "shunt-xdp":
            // Every frame after a flow's first is a hit in the kernel flow cache.
            let flows = "\(c.raw)/\(name).flows"
            try ("table=0,priority=10,in_port=1,actions=mod_dl_dst:02:00:00:00:5e:01,output:2\n"
                + "table=0,priority=10,in_port=2,actions=output:1\n").write(toFile: flows, atomically: true, encoding: .utf8)
            command += ["--flows", flows, "--datapath", "xdp", "--fix-peers", "--control", control]
            try c.threadedNAPI(on: true)
            threaded = true
        case "shunt-flows", "shunt-mirror1", "shunt-mirror2":
            // A 1000-flow table: 998 nw_dst/32 rules the traffic never matches, plus the two in_port rules.
            let flows = "\(c.raw)/\(name).flows"
            var text = (0..<998).map { "table=0,priority=100,ip,nw_dst=10.99.\($0 / 250).\($0 % 250 + 1),actions=drop" }
            text += ["table=0,priority=10,in_port=1,actions=output:2", "table=0,priority=10,in_port=2,actions=output:1"]
            try (text.joined(separator: "\n") + "\n").write(toFile: flows, atomically: true, encoding: .utf8)
            command += ["--flows", flows, "--datapath", "afpacket", "--control", control]
            command += Self.mirrorSessions(sessions).flatMap { ["--mirror", $0] }
        case "shunt-xdp-mirror1", "shunt-xdp-mirror2":
            // shunt-xdp's table without its MAC rewrite: the fast path copies a frame in the kernel
            // only as it leaves, so an ingress session (span-in) stays there only for a flow that
            // does not edit the frame (docs/design/0012). The rewrite alone is a 6-byte store.
            let flows = "\(c.raw)/\(name).flows"
            try ("table=0,priority=10,in_port=1,actions=output:2\n"
                + "table=0,priority=10,in_port=2,actions=output:1\n").write(toFile: flows, atomically: true, encoding: .utf8)
            command += ["--flows", flows, "--datapath", "xdp", "--fix-peers", "--control", control]
            command += Self.mirrorSessions(sessions).flatMap { ["--mirror", $0] }
            try c.threadedNAPI(on: true)
            threaded = true
        case "xdp-redirect":
            command = [binary(c), "xdp-redirect", "--port", "fwd0", "--port", "fwd1"]
            cpu = nil  // no process work: the program runs in fwd0's NAPI thread
            try c.threadedNAPI(on: true)
            threaded = true
        default:
            throw BenchFailure("no such shunt forwarder: \(name)")
        }
        let out = "\(c.raw)/\(tag).fwd.out", err = "\(c.raw)/\(tag).fwd.err"
        let pid = try c.runtime.start(c.inNamespace(c.lab.fwd, cpu: cpu, command), stdout: out, stderr: err)
        self.pid = pid
        try c.runtime.waitForLine(out, containing: "\"type\":\"ready\"", pid: pid, timeout: 20, what: name, errorFile: err)
        if sessions > 0 { self.control = control }
    }

    func mirrorCounters(_ c: BenchContext) -> BenchMirrorCounts? {
        guard let control,
              let r = try? c.runtime.run([binary(c), "ctl", "--control", control, "mirror", "list", "--json"], check: false, timeout: 10),
              r.status == 0,
              let o = (try? JSONSerialization.jsonObject(with: Data(r.out.utf8))) as? [String: Any],
              let sessions = o["mirrors"] as? [[String: Any]]
        else { return nil }
        func sum(_ key: String) -> UInt64 { sessions.reduce(0) { $0 &+ ((($1[key] as? NSNumber)?.uint64Value) ?? 0) } }
        return BenchMirrorCounts(mirrored: sum("mirrored"), fastPath: name.contains("xdp") ? sum("fast_path_mirrored") : nil,
                              dropped: sum("dropped"))
    }

    func stop(_ c: BenchContext) {
        if let pid {
            let exit = c.runtime.stop(pid)
            if exit.status != 0 { c.console.note("\(name) exited with status \(exit.status)") }
        }
        pid = nil
        control = nil
        if threaded {
            _ = try? c.threadedNAPI(on: false)
            threaded = false
        }
    }
}

/// The Linux bridge br0 over fwd0 and fwd1, netfilter calls off, RPS to the forwarder CPU.
final class BridgeForwarder: BenchForwarder {
    let name = "bridge"
    private var up = false

    func start(_ c: BenchContext, tag: String) throws {
        let rt = c.runtime, fwd = c.lab.fwd
        up = true
        try rt.run(["ip", "-n", fwd, "link", "add", "br0", "type", "bridge"])
        try rt.run(["ip", "-n", fwd, "link", "set", "fwd0", "master", "br0"])
        try rt.run(["ip", "-n", fwd, "link", "set", "fwd1", "master", "br0"])
        try rt.run(["ip", "-n", fwd, "link", "set", "br0", "up"])
        // The knobs exist only with br_netfilter loaded (without it the bridge calls no netfilter).
        if FileManager.default.fileExists(atPath: "/proc/sys/net/bridge/bridge-nf-call-iptables") {
            for t in ["iptables", "ip6tables", "arptables"] {
                try c.lab.writeInFwd(rt, "/proc/sys/net/bridge/bridge-nf-call-\(t)", "0")
            }
        }
        try c.setRPS(on: true)
        try rt.pause(0.2)  // STP is off: the ports forward at once; let the links settle
    }

    func stop(_ c: BenchContext) {
        guard up else { return }
        _ = try? c.setRPS(on: false)
        _ = try? c.runtime.run(["ip", "-n", c.lab.fwd, "link", "del", "br0"], check: false)
        up = false
    }
}

/// tc: an ingress qdisc on fwd0 with one filter matching every frame, whose action is mirred egress
/// redirect to fwd1. The filter is u32 with an all-zero mask: cls_u32 is in nearly every kernel
/// (this machine's has no cls_matchall or cls_flower), and one zero-mask key costs next to nothing.
final class TCMirredForwarder: BenchForwarder {
    let name = "tc-mirred"
    private var up = false

    func start(_ c: BenchContext, tag: String) throws {
        let rt = c.runtime
        up = true
        try rt.run(c.inNamespace(c.lab.fwd, cpu: nil, ["tc", "qdisc", "add", "dev", "fwd0", "ingress"]))
        try rt.run(c.inNamespace(c.lab.fwd, cpu: nil, ["tc", "filter", "add", "dev", "fwd0", "ingress", "protocol", "all",
                                                       "u32", "match", "u32", "0", "0",
                                                       "action", "mirred", "egress", "redirect", "dev", "fwd1"]))
        try c.setRPS(on: true)
    }

    func stop(_ c: BenchContext) {
        guard up else { return }
        _ = try? c.setRPS(on: false)
        _ = try? c.runtime.run(c.inNamespace(c.lab.fwd, cpu: nil, ["tc", "qdisc", "del", "dev", "fwd0", "ingress"]), check: false)
        up = false
    }
}

/// dpdk-testpmd, io forwarding on one lcore (the forwarder CPU), two net_af_packet vdevs with
/// qdisc bypass, no hugepages and no shared config (nothing left in /var/run/dpdk).
final class TestpmdForwarder: BenchForwarder {
    let name = "testpmd"
    private var pid: pid_t?
    /// EAL's runtime directory /var/run/dpdk/PREFIX exists even with --no-shconf: ours, removed at stop.
    static let filePrefix = "shuntb\(Sys.processID())"

    func start(_ c: BenchContext, tag: String) throws {
        var command = ["dpdk-testpmd", "-l", "\(c.generatorCPU),\(c.forwarderCPU)", "--no-huge", "-m", "128", "--no-pci",
                       "--no-shconf", "--no-telemetry", "--file-prefix=\(Self.filePrefix)",
                       "--vdev=net_af_packet0,iface=fwd0,qdisc_bypass=1", "--vdev=net_af_packet1,iface=fwd1,qdisc_bypass=1",
                       "--", "--forward-mode=io", "--nb-cores=1", "--total-num-mbufs=8192", "--stats-period=3600"]
        // Line-buffered output, so that the ready line reaches the file while it runs.
        if BenchRuntime.which("stdbuf") != nil { command = ["stdbuf", "-oL", "-eL"] + command }
        let out = "\(c.raw)/\(tag).fwd.out", err = "\(c.raw)/\(tag).fwd.err"
        let pid = try c.runtime.start(c.inNamespace(c.lab.fwd, cpu: nil, command), stdout: out, stderr: err)
        self.pid = pid
        try c.runtime.waitForLine(out, containing: "start packet forwarding", pid: pid, timeout: 60, what: "testpmd", errorFile: err)
        let text = (try? String(contentsOfFile: out, encoding: .utf8)) ?? ""
        if !text.contains("ports=2") { throw BenchFailure("testpmd did not find both ports (see \(out))") }
    }

    func stop(_ c: BenchContext) {
        if let pid {
            let exit = c.runtime.stop(pid, signal: SIGINT, timeout: 15)
            if exit.status != 0 { c.console.note("testpmd exited with status \(exit.status)") }
        }
        pid = nil
        try? FileManager.default.removeItem(atPath: "/var/run/dpdk/\(Self.filePrefix)")
    }
}

/// Where SwiftPM puts an executable of this package that it builds with `shunt`: shunt's directory.
func pathBesideShunt(_ executable: String, shunt: String) -> String {
    URL(fileURLWithPath: shunt).deletingLastPathComponent().appendingPathComponent(executable).path
}

/// Benchmarks/tpacket-fwd, the C forwarder on TPACKET rings that shunt's ring mode is held to
/// (issue 14): run from the shunt binary's directory, pinned to the forwarder CPU, stopped with
/// SIGINT, after which it prints its counts into its output under raw/.
final class CTPacketForwarder: BenchForwarder {
    let name: String
    /// tpacket-fwd --ring: v3 or v2.
    private let ring: String
    private var pid: pid_t?

    init(name: String, ring: String) {
        self.name = name
        self.ring = ring
    }

    func start(_ c: BenchContext, tag: String) throws {
        let binary = pathBesideShunt(ForwarderInfo.named(name)?.builtWithShunt ?? "tpacket-fwd", shunt: c.shunt)
        guard FileManager.default.isExecutableFile(atPath: binary) else {
            throw BenchFailure("\(binary) is missing (swift build -c release builds it next to shunt)")
        }
        let out = "\(c.raw)/\(tag).fwd.out", err = "\(c.raw)/\(tag).fwd.err"
        let pid = try c.runtime.start(c.inNamespace(c.lab.fwd, cpu: c.forwarderCPU, [binary, "--ring", ring, "fwd0", "fwd1"]),
                                      stdout: out, stderr: err)
        self.pid = pid
        try c.runtime.waitForLine(out, containing: "forwarding fwd0 <-> fwd1", pid: pid, timeout: 20, what: name, errorFile: err)
    }

    func stop(_ c: BenchContext) {
        if let pid {
            let exit = c.runtime.stop(pid, signal: SIGINT)
            if exit.status != 0 { c.console.note("\(name) exited with status \(exit.status)") }
        }
        pid = nil
    }
}

/// Open vSwitch's userspace datapath, private: ovsdb-server and ovs-vswitchd started in the
/// foreground (their PIDs are ours) with database, sockets and logs in a temporary directory.
/// Bridge ovsbr0 with datapath_type=netdev; fwd0 and fwd1 are "system" ports (AF_PACKET sockets,
/// the same class of kernel interface as testpmd's net_af_packet and shunt's rings); one flow
/// in_port=1 -> output:2.
final class OVSForwarder: BenchForwarder {
    let name = "ovs"
    private var server: pid_t?
    private var vswitchd: pid_t?
    private var dir: String?

    func start(_ c: BenchContext, tag: String) throws {
        let rt = c.runtime
        let dir = "\(rt.scratch)/ovs-\(tag)"
        self.dir = dir
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let env = ["OVS_RUNDIR=\(dir)", "OVS_LOGDIR=\(dir)", "OVS_DBDIR=\(dir)", "OVS_SYSCONFDIR=\(dir)"]
        let schema = ["/usr/share/openvswitch/vswitch.ovsschema", "/usr/local/share/openvswitch/vswitch.ovsschema"]
            .first { FileManager.default.fileExists(atPath: $0) }
        guard let schema else { throw BenchFailure("ovs: vswitch.ovsschema not found (Debian package: openvswitch-common)") }
        try rt.run(["ovsdb-tool", "create", "\(dir)/conf.db", schema], environment: env)
        let db = "unix:\(dir)/db.sock"
        server = try rt.start(["ovsdb-server", "\(dir)/conf.db", "--remote=punix:\(dir)/db.sock", "--unixctl=\(dir)/ovsdb.ctl",
                               "--log-file=\(dir)/ovsdb.log", "--no-chdir"],
                              stdout: "\(c.raw)/\(tag).ovsdb.out", stderr: "\(c.raw)/\(tag).ovsdb.err", environment: env)
        try waitForSocket("\(dir)/db.sock", c)
        try rt.run(["ovs-vsctl", "--db=\(db)", "--no-wait", "init"], environment: env)
        vswitchd = try rt.start(c.inNamespace(c.lab.fwd, cpu: c.forwarderCPU, [
            "ovs-vswitchd", db, "--unixctl=\(dir)/vswitchd.ctl", "--log-file=\(dir)/vswitchd.log", "--no-chdir",
        ]), stdout: "\(c.raw)/\(tag).fwd.out", stderr: "\(c.raw)/\(tag).fwd.err", environment: env)
        try waitForSocket("\(dir)/vswitchd.ctl", c)
        let vsctl = ["ovs-vsctl", "--db=\(db)", "--timeout=30"]
        try rt.run(vsctl + ["add-br", "ovsbr0", "--", "set", "bridge", "ovsbr0", "datapath_type=netdev", "fail-mode=secure"], environment: env)
        try rt.run(vsctl + ["add-port", "ovsbr0", "fwd0", "--", "set", "interface", "fwd0", "ofport_request=1"], environment: env)
        try rt.run(vsctl + ["add-port", "ovsbr0", "fwd1", "--", "set", "interface", "fwd1", "ofport_request=2"], environment: env)
        try rt.run(["ovs-ofctl", "del-flows", "unix:\(dir)/ovsbr0.mgmt"], environment: env)
        try rt.run(["ovs-ofctl", "add-flow", "unix:\(dir)/ovsbr0.mgmt", "in_port=1,actions=output:2"], environment: env)
        try rt.run(["ovs-ofctl", "add-flow", "unix:\(dir)/ovsbr0.mgmt", "in_port=2,actions=output:1"], environment: env)
    }

    private func waitForSocket(_ path: String, _ c: BenchContext) throws {
        for _ in 0..<500 {
            if FileManager.default.fileExists(atPath: path) { return }
            if let s = server, c.runtime.exited(s) != nil { throw BenchFailure("ovsdb-server exited") }
            if let v = vswitchd, c.runtime.exited(v) != nil { throw BenchFailure("ovs-vswitchd exited") }
            try c.runtime.pause(0.02)
        }
        throw BenchFailure("ovs: \(path) did not appear in 10 s")
    }

    func stop(_ c: BenchContext) {
        if let vswitchd { c.runtime.stop(vswitchd) }
        if let server { c.runtime.stop(server) }
        vswitchd = nil
        server = nil
        // The netdev datapath's tap device for the bridge outlives a killed ovs-vswitchd.
        _ = try? c.runtime.run(["ip", "-n", c.lab.fwd, "link", "del", "ovsbr0"], check: false)
        if let dir {
            // Keep the logs with the raw output.
            for log in ["ovsdb.log", "vswitchd.log"] {
                _ = try? FileManager.default.copyItem(atPath: "\(dir)/\(log)", toPath: "\(c.raw)/\(URL(fileURLWithPath: dir).lastPathComponent)-\(log)")
            }
            try? FileManager.default.removeItem(atPath: dir)
        }
        dir = nil
    }
}
