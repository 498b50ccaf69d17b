/// Finds where a request ends while its bytes arrive: at the `}` that closes its first `{`
/// (outside strings), so the server can answer without waiting for the end of the stream, and
/// can tell at the first byte that is not blank that what comes is not a JSON object.
///
/// It only frames; `JSONDecoder` judges the object. Brackets are counted together (`{` and `[`
/// open, `}` and `]` close): a mismatch ends the frame early and the decoder reports it.
struct RequestFramer {
    enum Status: Equatable {
        /// No end yet (or nothing but blanks so far).
        case incomplete
        /// The object is `bytes[..<end]`; what follows is not part of the request.
        case complete(end: Int)
        /// The first byte that is not blank does not open an object.
        case notAnObject
    }

    private(set) var bytes: [UInt8] = []
    /// Whether the opening `{` has come.
    private(set) var started = false
    private var scanned = 0
    private var depth = 0
    private var inString = false
    private var escaped = false
    private var status = Status.incomplete

    /// Adds the next bytes of the stream and says whether the request is complete. Once it is
    /// complete (or not an object), further bytes are ignored.
    mutating func append(_ chunk: UnsafeRawBufferPointer) -> Status {
        guard status == .incomplete else { return status }
        bytes.append(contentsOf: chunk)
        while scanned < bytes.count {
            let byte = bytes[scanned]
            scanned += 1
            if !started {
                switch byte {
                case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\r"), UInt8(ascii: "\n"): continue
                case UInt8(ascii: "{"): started = true; depth = 1; continue
                default: status = .notAnObject; return status
                }
            }
            if inString {
                if escaped { escaped = false } else if byte == UInt8(ascii: "\\") { escaped = true } else if byte == UInt8(ascii: "\"") { inString = false }
                continue
            }
            switch byte {
            case UInt8(ascii: "\""): inString = true
            case UInt8(ascii: "{"), UInt8(ascii: "["): depth += 1
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                depth -= 1
                if depth == 0 { status = .complete(end: scanned); return status }
            default: break
            }
        }
        return status
    }

    /// Whether only blanks (or nothing) have come.
    var isBlank: Bool { !started && status == .incomplete }
}
