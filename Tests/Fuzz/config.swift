// libFuzzer target: the YAML configuration loader (`ForwarderPlan.make` with `--config`).
// The input is the YAML text; a line "#@flows" splits off the text every named flow file gets
// (without it, each gets "actions=normal").
import ShuntForwarder

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzConfig(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let all = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    var yaml = all
    var flows = "actions=normal\n"
    if let r = all.range(of: "\n#@flows\n") {
        yaml = String(all[..<r.lowerBound])
        flows = String(all[r.upperBound...])
    }
    let config = NamedText(path: "fuzz/config.yaml", text: yaml)
    var request = ForwarderRequest()
    request.configFile = config
    for (name, path) in ForwarderPlan.filesIncluded(by: config) {
        request.includedFiles[name] = NamedText(path: path, text: flows)
    }
    _ = try? ForwarderPlan.make(request)
    return 0
}
