import Foundation
import ShuntTestSupport
import Testing

/// `shunt doctor` in the forwarder namespace of a real lab: a misconfigured one gets its
/// findings with their fix commands and exit 1, a good one exit 0 without problems.
@Suite("shunt doctor", .serialized, .enabled(if: canRunNetnsTests, netnsSkipReason))
struct DoctorTests {
    func doctor(_ lab: Lab, _ args: [String]) throws -> (status: Int32, out: String, err: String) {
        try run(["timeout", "-s", "KILL", "30", "ip", "netns", "exec", lab.fwd, shuntExecutable, "doctor"] + args, check: false)
    }

    /// The checks of a `--json` run, keyed "name port" (or "name" without a port).
    func checks(_ out: String) throws -> [String: [String: Any]] {
        let object = try #require(try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any])
        let list = try #require(object["checks"] as? [[String: Any]])
        var byKey: [String: [String: Any]] = [:]
        for c in list {
            let name = c["name"] as? String ?? "?"
            byKey[(c["port"] as? String).map { "\(name) \($0)" } ?? name] = c
        }
        return byKey
    }

    /// Turns bridge netfilter on in the lab's forwarder namespace; nil when br_netfilter cannot
    /// be loaded here (then that part of the test is skipped, with a message).
    func bridgeNetfilterOn(_ lab: Lab) -> Bool {
        let key = "/proc/sys/net/bridge/bridge-nf-call-iptables"
        if !FileManager.default.fileExists(atPath: key) { _ = try? run(["modprobe", "br_netfilter"], check: false) }
        guard FileManager.default.fileExists(atPath: key),
              (try? run(["ip", "netns", "exec", lab.fwd, "sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=1"]))?.status == 0
        else {
            print("DoctorTests: br_netfilter cannot be loaded here (no \(key) after modprobe): the bridge netfilter part is skipped")
            return false
        }
        return true
    }

    /// Peers with GRO off, no XDP program and TX checksum offload on (the veth defaults), a
    /// kernel vxlan device on Linux's default port 8472, bridge netfilter on.
    @Test func misconfiguredLabGetsEveryFindingWithItsFix() throws {
        let lab = try Lab()
        try run(["ip", "-n", lab.fwd, "link", "add", "vx0", "type", "vxlan", "id", "42", "dev", "p1",
                 "local", "192.0.2.1", "remote", "192.0.2.2"])
        let netfilter = bridgeNetfilterOn(lab)
        let (gen, sink) = (lab.ns("gen"), lab.ns("sink"))

        let text = try doctor(lab, ["--port", "p0", "--port", "p1"])
        #expect(text.status == 1, "\(text.err)")
        let lines = text.out.split(separator: "\n").map(String.init)
        func fixLine(after prefix: String) -> String? {
            guard let i = lines.firstIndex(where: { $0.hasPrefix(prefix) }), i + 1 < lines.count else { return nil }
            return lines[i + 1].trimmingCharacters(in: .whitespaces)
        }
        #expect(fixLine(after: "problem  xdp_redirect p0:") == "ip netns exec \(gen) ethtool -K gen0 gro on", "\(text.out)")
        #expect(fixLine(after: "problem  xdp_redirect p1:") == "ip netns exec \(sink) ethtool -K sink0 gro on", "\(text.out)")
        #expect(fixLine(after: "warning  offloads p0:") == "ip netns exec \(gen) ethtool -K gen0 tx off tso off", "\(text.out)")
        #expect(lines.last?.hasPrefix("not ready (2 problems") == true, "\(text.out)")

        let json = try doctor(lab, ["--port", "p0", "--port", "p1", "--json"])
        #expect(json.status == 1)
        let c = try checks(json.out)
        let redirect = try #require(c["xdp_redirect p0"])
        #expect(redirect["status"] as? String == "problem")
        #expect((redirect["detail"] as? String)?.contains("GRO off, no XDP program") == true, "\(redirect)")
        #expect(c["offloads p1"]?["status"] as? String == "warning")
        #expect((c["offloads p1"]?["detail"] as? String)?.contains("TX checksum offload on") == true)
        let vxlan = try #require(c["vxlan_port vx0"])
        #expect(vxlan["status"] as? String == "warning" && (vxlan["detail"] as? String)?.contains("8472") == true)
        #expect((vxlan["fix"] as? String)?.contains("ip netns exec \(lab.fwd) ip link add vx0 type vxlan id 42 local 192.0.2.1 remote 192.0.2.2 dev p1 dstport 4789") == true,
                "\(vxlan)")
        if netfilter {
            let bridge = try #require(c["bridge_netfilter"])
            #expect(bridge["status"] as? String == "warning")
            #expect((bridge["fix"] as? String)?.hasPrefix("ip netns exec \(lab.fwd) sysctl -w net.bridge.bridge-nf-call-iptables=0") == true,
                    "\(bridge)")
        }
    }

    /// GRO on the peers, their TX offloads off, bridge netfilter off: ready, no problem.
    @Test func goodLabIsReady() throws {
        let lab = try Lab()
        for side in ["gen", "sink"] {
            try run(["ip", "netns", "exec", lab.ns(side), "ethtool", "-K", lab.interface(side), "gro", "on", "tx", "off", "tso", "off"])
        }
        if FileManager.default.fileExists(atPath: "/proc/sys/net/bridge/bridge-nf-call-iptables") {
            try run(["ip", "netns", "exec", lab.fwd, "sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=0",
                     "net.bridge.bridge-nf-call-ip6tables=0", "net.bridge.bridge-nf-call-arptables=0"])
        }
        let json = try doctor(lab, ["--port", "p0", "--port", "p1", "--workers", "1", "--json"])
        #expect(json.status == 0, "\(json.out) \(json.err)")
        let c = try checks(json.out)
        #expect(c.values.allSatisfy { $0["status"] as? String != "problem" }, "\(json.out)")
        for key in ["xdp_redirect p0", "xdp_redirect p1", "offloads p0", "offloads p1", "port p0", "vxlan_port", "capabilities", "cpus"] {
            #expect(c[key]?["status"] as? String == "ok", "\(key): \(c[key] ?? [:])")
        }
        let text = try doctor(lab, ["--port", "p0", "--port", "p1"])
        #expect(text.status == 0 && text.out.hasSuffix("\n") && text.out.contains("\nready (0 problems"), "\(text.out)")
        #expect(!text.out.contains("problem "), "\(text.out)")
    }

    @Test func badUsageIsOneLineAndExit2() throws {
        let lab = try Lab(["gen"])
        for (args, message) in [(["--port", "p0", "--port", "nosuch9"], "no interface named 'nosuch9'"),
                                (["--port", "p0", "--port", "p0"], "'p0' is given twice"),
                                (["--workers", "0"], "--workers must be between 1 and 64")] {
            let r = try doctor(lab, args)
            let lines = r.err.split(separator: "\n")
            #expect(r.status == 2 && r.out.isEmpty, "\(args): \(r)")
            #expect(lines.count == 1 && lines.first?.hasPrefix("shunt doctor: ") == true && r.err.contains(message), "\(r.err)")
        }
    }
}
