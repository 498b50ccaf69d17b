import Foundation
import ShuntTestSupport
import Testing

/// Which `shunt gen` engines this kernel allows, asked once per test run through
/// `shunt gen --list-engines` (the same probe the generator's `--engine auto` makes): the one
/// place the tests learn whether XDP live frames are refused.
enum GeneratorEngines {
    struct Probe {
        var liveFramesAllowed = false
        var liveFramesReason = "not probed (the netns tests cannot run here)"
        var afxdpAvailable = false
        var auto = "ring"
    }

    static let probe: Probe = {
        guard canRunNetnsTests, let result = try? run([shuntExecutable, "gen", "--list-engines"], check: false),
              result.status == 0,
              let object = try? JSONSerialization.jsonObject(with: Data(result.out.utf8)) as? [String: Any]
        else { return Probe() }
        var p = Probe()
        let xdp = object["xdp"] as? [String: Any] ?? [:]
        p.liveFramesAllowed = xdp["available"] as? Bool ?? false
        p.liveFramesReason = xdp["reason"] as? String ?? ""
        p.afxdpAvailable = (object["afxdp"] as? [String: Any])?["available"] as? Bool ?? false
        p.auto = object["auto"] as? String ?? "ring"
        return p
    }()

    static var liveFramesAllowed: Bool { probe.liveFramesAllowed }
    static var liveFramesSkipReason: Comment {
        Comment(rawValue: "the xdp engine needs XDP live frames: \(probe.liveFramesReason)")
    }

    /// Every engine that can run here, fastest first (parameterized tests run each).
    static var runnable: [String] {
        (probe.liveFramesAllowed ? ["xdp"] : []) + (probe.afxdpAvailable ? ["afxdp"] : []) + ["ring"]
    }
}
