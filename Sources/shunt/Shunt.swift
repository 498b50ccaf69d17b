import ArgumentParser
import Glibc

@main
struct Shunt: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "shunt",
        abstract: "A packet forwarder for Linux on AF_PACKET rings, with an XDP fast path.",
        version: "0.1.0",
        subcommands: [Forward.self, Gen.self, Sink.self, Ctl.self]
    )
}

/// Writes one line to standard error, unbuffered.
func printError(_ message: String) {
    let line = message + "\n"
    _ = line.withCString { write(2, $0, strlen($0)) }
}

/// Writes one line to standard output at once (scripts and tests read it while shunt runs).
func emitLine(_ message: String) {
    let line = message + "\n"
    _ = line.withCString { write(1, $0, strlen($0)) }
}
