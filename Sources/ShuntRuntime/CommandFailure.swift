/// Why a command cannot go on: one line for the user and the exit status (2: it could not
/// start, say a missing interface; 1: it failed while running). The command prints the line as
/// "shunt CMD: message" on stderr and exits with the status.
public struct CommandFailure: Error, CustomStringConvertible, Equatable, Sendable {
    public let status: Int32
    public let message: String

    public init(status: Int32, _ message: String) {
        self.status = status
        self.message = message
    }

    public var description: String { message }
}
