import ShuntCore

/// How a check came out. A problem keeps Shunt from working as asked here (it refuses to start,
/// or frames vanish); a warning is a slower path, a trap for other tools, or something doctor
/// could not tell.
public enum CheckStatus: String, Sendable, Equatable, CaseIterable {
    case ok
    case warning
    case problem
}

/// One line of `shunt doctor`: a named check, the port it concerns (nil for the whole host or
/// namespace), what was found, and the command that fixes it (nil when no command does).
public struct Check: Sendable, Equatable {
    /// Stable names: capabilities, port, xdp_native, xdp_redirect, offloads, vxlan_mtu, vxlan_port,
    /// bridge_netfilter, bpffs, xdp_live_frames, af_xdp, cpus.
    public var name: String
    public var port: String?
    public var status: CheckStatus
    public var detail: String
    public var fix: String?

    public init(_ name: String, port: String? = nil, _ status: CheckStatus, _ detail: String, fix: String? = nil) {
        (self.name, self.port, self.status, self.detail, self.fix) = (name, port, status, detail, fix)
    }
}

/// Every check of one run, and how to print them.
public struct DoctorReport: Sendable, Equatable {
    public var checks: [Check]

    public init(checks: [Check]) { self.checks = checks }

    public var problems: Int { checks.count { $0.status == .problem } }
    public var warnings: Int { checks.count { $0.status == .warning } }
    /// No problems (warnings allowed): `shunt doctor` exits 0.
    public var isReady: Bool { problems == 0 }

    /// One line per check ("problem  xdp_redirect p0: ..."), its fix indented below it, and a
    /// last line with the counts.
    public var text: String {
        var out = ""
        for c in checks {
            let status = c.status.rawValue.padding(toLength: 9)
            out += status + c.name + (c.port.map { " " + $0 } ?? "") + ": " + c.detail + "\n"
            if let fix = c.fix { out += String(repeating: " ", count: 9) + fix + "\n" }
        }
        let counts = "\(problems) problem\(problems == 1 ? "" : "s"), \(warnings) warning\(warnings == 1 ? "" : "s")"
        return out + (isReady ? "ready (\(counts))" : "not ready (\(counts))") + "\n"
    }

    /// One JSON line, keys sorted: {"checks":[{"detail","fix","name","port","status"}],
    /// "problems","ready","warnings"}; `port` and `fix` are null when absent.
    public var json: String {
        let items = checks.map { c in
            "{\"detail\":\(JSONText.string(c.detail)),\"fix\":\(c.fix.map(JSONText.string) ?? "null"),"
                + "\"name\":\(JSONText.string(c.name)),\"port\":\(c.port.map(JSONText.string) ?? "null"),"
                + "\"status\":\"\(c.status.rawValue)\"}"
        }
        return "{\"checks\":[" + items.joined(separator: ",") + "],\"problems\":\(problems),\"ready\":\(isReady),"
            + "\"warnings\":\(warnings)}"
    }
}

extension String {
    func padding(toLength length: Int) -> String {
        count >= length ? self + " " : self + String(repeating: " ", count: length - count)
    }
}
