#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The control channel between `shunt ctl` (the client) and `shunt forward` (the server).
///
/// Wire format, version 1. The transport is a UNIX stream socket (by default
/// `ControlPaths.defaultControlPath`, mode 0600: root only), one request per connection:
///
/// 1. The client connects and writes one JSON object, followed by a newline, then shuts down
///    its write side (end of request):
///
///        {"arguments":[],"command":"dump-flows","flags":[],"json":false,"version":1}
///
///    - `version`: the protocol version, 1. A server refuses versions it does not speak.
///    - `command`: the `shunt ctl` subcommand: `add-flow`, `add-flows`, `del-flows`,
///      `dump-flows`, `show`, `dump-cache`, `mirror-add`, `mirror-del`, `mirror-list` (the
///      handler decides which it knows).
///    - `arguments`: the command's positional arguments, as given (`add-flows` sends the whole
///      file as one argument).
///    - `flags`: the command's boolean options, without dashes, e.g. `["strict"]` for
///      `del-flows --strict`.
///    - `json`: whether `output` should be JSON text rather than text for people.
///
///    Missing `version`, `arguments`, `flags` and `json` default to 1, `[]`, `[]` and false, so
///    `echo '{"command":"show"}' | socat - UNIX-CONNECT:/run/shunt/shunt.ctl` works.
///    A request is at most `ControlProtocol.maxRequestBytes` (16 MiB).
///    Keys are written sorted; readers must not depend on the order.
///
/// 2. The server reads until the `}` that closes the request's object (so a client that does
///    not shut down its side is answered too; what follows the object is read and dropped),
///    within a time limit (5 s by default, from connecting), writes one JSON object followed by
///    a newline, shuts down its side, and closes the connection once the client has closed
///    its side (or the time to take the answer, 5 s by default, is up):
///
///        {"exit_code":0,"ok":true,"output":"table=0, priority=10, ...\n","version":1}
///        {"error":"no such table: 300","exit_code":2,"ok":false,"output":"","version":1}
///
///    - `ok`: whether the command succeeded.
///    - `output`: what `shunt ctl` prints on standard output (text, or JSON text with `json`).
///    - `error`: present when `ok` is false: the one-line message `shunt ctl` prints on
///      standard error.
///    - `exit_code`: the exit code of `shunt ctl`: 0 success, 2 bad input or a failed command,
///      1 when the server is too busy to take the request.
///
///    A request the server cannot take gets an error response of its own, as soon as the
///    server can tell: a stream whose first byte that is not blank is not `{` ("malformed
///    request: not a JSON object; ..."), one larger than the limit ("request too large: ..."),
///    one that ends inside its object, lacks `command`, has a field of the wrong type or
///    another `version`, one not complete in time ("timed out after ... ms waiting for ..."),
///    and a connection over the server's limit of open ones ("too many control connections:
///    ...", exit code 1). After an error answer the server reads and drops what the client
///    still sends, until the client ends its side or the time to take the answer is up, so the
///    client can still read the answer (a refused connection is closed at once: `ControlClient`
///    takes the answer line even if the connection is reset after it).
///
/// A connection that closes without sending anything gets no response (that is how a starting
/// server tests whether another one is still alive on the path).
public enum ControlProtocol {
    /// The protocol version this code speaks.
    public static let version = 1
    /// The largest request a server accepts, in bytes (`add-flows` sends whole flow files).
    public static let maxRequestBytes = 16 << 20
    /// The largest response a client accepts, in bytes (a guard against garbage, not a budget).
    public static let maxResponseBytes = 256 << 20
}

/// Where the control socket lives.
public enum ControlPaths {
    /// The control socket of `shunt forward --control` and `shunt ctl --control` by default.
    public static let defaultControlPath = "/run/shunt/shunt.ctl"
}

/// One command for the forwarder.
public struct ControlRequest: Codable, Sendable, Equatable {
    public var version: Int
    public var command: String
    public var arguments: [String]
    public var flags: [String]
    public var json: Bool
    /// The bridge a flow command is for (`shunt ctl --bridge NAME`); nil: the first bridge.
    public var bridge: String?

    public init(command: String, arguments: [String] = [], flags: [String] = [], json: Bool = false,
                bridge: String? = nil, version: Int = ControlProtocol.version) {
        self.version = version
        self.command = command
        self.arguments = arguments
        self.flags = flags
        self.json = json
        self.bridge = bridge
    }

    private enum CodingKeys: String, CodingKey {
        case version, command, arguments, flags, json, bridge
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        version = try c.decodeIfPresent(Int.self, forKey: .version) ?? ControlProtocol.version
        command = try c.decode(String.self, forKey: .command)
        arguments = try c.decodeIfPresent([String].self, forKey: .arguments) ?? []
        flags = try c.decodeIfPresent([String].self, forKey: .flags) ?? []
        json = try c.decodeIfPresent(Bool.self, forKey: .json) ?? false
        bridge = try c.decodeIfPresent(String.self, forKey: .bridge)
    }
}

/// The forwarder's answer to one `ControlRequest`.
public struct ControlResponse: Codable, Sendable, Equatable {
    public var version: Int
    public var ok: Bool
    public var output: String
    public var error: String?
    public var exitCode: Int32

    public init(ok: Bool, output: String = "", error: String? = nil, exitCode: Int32,
                version: Int = ControlProtocol.version) {
        self.version = version
        self.ok = ok
        self.output = output
        self.error = error
        self.exitCode = exitCode
    }

    /// The command succeeded; `output` goes to standard output.
    public static func success(_ output: String) -> ControlResponse {
        ControlResponse(ok: true, output: output, exitCode: 0)
    }

    /// The command failed; `message` (one line) goes to standard error.
    public static func failure(_ message: String, exitCode: Int32 = 2) -> ControlResponse {
        ControlResponse(ok: false, error: message, exitCode: exitCode)
    }

    private enum CodingKeys: String, CodingKey {
        case version, ok, output, error
        case exitCode = "exit_code"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        version = try c.decodeIfPresent(Int.self, forKey: .version) ?? ControlProtocol.version
        ok = try c.decode(Bool.self, forKey: .ok)
        output = try c.decodeIfPresent(String.self, forKey: .output) ?? ""
        error = try c.decodeIfPresent(String.self, forKey: .error)
        exitCode = try c.decodeIfPresent(Int32.self, forKey: .exitCode) ?? (ok ? 0 : 2)
    }
}

/// What the server calls for each request, on the server's thread, one request at a time.
///
/// It cannot throw: a failed command is a `ControlResponse.failure`. It should return quickly:
/// clients wait in line behind it.
public protocol ControlHandler: Sendable {
    func handle(_ request: ControlRequest) -> ControlResponse
}

/// The one encoding of both messages: one JSON object on one line.
enum WireCoding {
    static func encode<T: Encodable>(_ value: T) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        do {
            var bytes = [UInt8](try encoder.encode(value))
            bytes.append(UInt8(ascii: "\n"))
            return bytes
        } catch {
            // Both messages are strings, integers and bools: encoding them cannot fail.
            preconditionFailure("encoding a control message failed: \(error)")
        }
    }

    static func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8]) throws -> T {
        try JSONDecoder().decode(type, from: Data(bytes))
    }
}
