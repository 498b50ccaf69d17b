// libFuzzer target: the flow parser (ovs-ofctl syntax) and its format-then-reparse round trip.
// Built by Scripts/fuzz.sh (swiftc -sanitize=fuzzer,address against the package's modules).
import ShuntPipeline

let ports = PortNames(numbered: [("p1", 1), ("p2", 2), ("qr1", 3), ("tap-vm1", 12), ("patch-tun", 6), ("vxlan-net", 40)])

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzFlows(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    guard let rules = try? FlowSyntax.parseFlowFile(text, ports: ports) else { return 0 }
    for rule in rules {
        let printed = FlowSyntax.format(rule, ports: ports)
        let again: FlowRule
        do { again = try FlowSyntax.parseFlow(Substring(printed), ports: ports) } catch {
            fatalError("round trip: \(printed.debugDescription) does not parse back: \(error)")
        }
        if again != rule {
            fatalError("round trip: \(printed.debugDescription) parses back to a different rule:\n\(rule)\n\(again)")
        }
    }
    return 0
}
