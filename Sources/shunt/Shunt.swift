import ArgumentParser
import Glibc
import ShuntSystem

@main
struct Shunt: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "shunt",
        abstract: "A packet forwarder for Linux on AF_PACKET rings, with an XDP fast path.",
        version: "0.1.0",
        subcommands: [Forward.self, Ctl.self, Gen.self, Sink.self, XDPRedirect.self, Bench.self, PassBench.self, FastPathCost.self, Lab.self, Doctor.self]
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

/// The whole text of a file ("-" is standard input), or nil if it cannot be read as UTF-8.
func readTextFile(_ path: String) -> String? {
    guard let bytes = try? Sys.readWholeFile(path == "-" ? nil : path) else { return nil }
    return String(validating: bytes, as: UTF8.self)
}
