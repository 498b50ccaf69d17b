// libFuzzer target: the control protocol's request framer and decoder (internal API, through
// `@testable import`: the modules are built with -enable-testing for fuzzing).
@testable import ShuntControl

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzControl(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    // What decodes must encode and decode back to itself.
    if let request = try? WireCoding.decode(ControlRequest.self, from: bytes) {
        let again = try? WireCoding.decode(ControlRequest.self, from: WireCoding.encode(request))
        guard again == request else { fatalError("request round trip: \(request) came back as \(String(describing: again))") }
    }
    // Frame the same bytes in one go and in chunks (the first byte picks the chunk size): the
    // status must not depend on how the stream was cut.
    var whole = RequestFramer()
    let one = bytes.withUnsafeBytes { whole.append($0) }
    let chunk = Int(bytes.first ?? 1) % 17 + 1
    var pieces = RequestFramer()
    var status = RequestFramer.Status.incomplete
    var at = 0
    while at < bytes.count {
        let end = min(at + chunk, bytes.count)
        status = bytes[at..<end].withUnsafeBytes { pieces.append($0) }
        at = end
    }
    if bytes.isEmpty { status = one }
    guard status == one else { fatalError("framer: \(one) whole, \(status) in chunks of \(chunk)") }
    if case .complete(let end) = one {
        guard end >= 1, end <= bytes.count, bytes[end - 1] == UInt8(ascii: "}") || bytes[end - 1] == UInt8(ascii: "]") else {
            fatalError("framer: end \(end) of \(bytes.count)")
        }
        _ = try? WireCoding.decode(ControlRequest.self, from: Array(bytes[..<end]))
    }
    return 0
}
