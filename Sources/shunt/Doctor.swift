import ArgumentParser
import ShuntDoctor
import ShuntRuntime

/// `shunt doctor`: checks this host and namespace for the traps of the README (veth peers
/// without NAPI, offloads that keep flows in the slow path, bridge netfilter, the VXLAN port,
/// bpffs, XDP live frames, ...) and prints each finding with the command that fixes it.
struct Doctor: ParsableCommand {
    static let name = "doctor"
    static let configuration = CommandConfiguration(
        abstract: "Check this host and the given ports for what keeps Shunt slow or broken, each finding with the command that fixes it.",
        discussion: """
            Run it where the forwarder will run (e.g. ip netns exec NS shunt doctor --port p0 \
            --port p1). Checks: capabilities; per port its link and veth peer, native XDP, \
            whether XDP redirects into it arrive (a veth's peer needs GRO or an XDP program), \
            offloads that keep flows in the slow path (TX checksum offload and TSO on a veth \
            peer, GRO and LRO on the port); with several ports the MTU headroom for VXLAN; the \
            UDP port of kernel vxlan devices here (4789 against Linux's default 8472); bridge \
            netfilter; bpffs at /sys/fs/bpf; XDP live frames, AF_XDP and the engine shunt gen \
            --engine auto takes; CPUs against --workers.

            One line per check (ok, warning or problem) with the fix command indented below it; \
            --json prints {"checks":[{"name","port","status","detail","fix"}],"problems",\
            "ready","warnings"} on one line. No setting is changed. Exit status: 0 when no check \
            found a problem (warnings allowed), 1 when one did, 2 for bad usage (an unknown \
            interface, say).
            """
    )

    @Option(name: .customLong("port"), help: ArgumentHelp("An interface to check (repeat).", valueName: "IF"))
    var ports: [String] = []

    @Option(help: ArgumentHelp("The workers you mean to start, checked against the CPUs.", valueName: "N"))
    var workers: Int?

    @Flag(help: "Print the checks as one JSON line.")
    var json = false

    func validate() throws {
        if let workers, !(1...64).contains(workers) { throw usage("--workers must be between 1 and 64, got \(workers)") }
        var seen: Set<String> = []
        for port in ports where !seen.insert(port).inserted { throw usage("'\(port)' is given twice") }
    }

    /// One line on stderr and exit status 2, as for an unknown interface.
    func usage(_ message: String) -> ExitCode {
        printError("shunt \(Self.name): \(message)")
        return ExitCode(2)
    }

    func run() throws {
        let facts: DoctorFacts
        do throws(CommandFailure) {
            facts = try DoctorProbe.gather(DoctorSettings(ports: ports, workers: workers, commandLine: CommandLine.arguments))
        } catch {
            printError("shunt doctor: \(error.message)")
            throw ExitCode(error.status)
        }
        let report = Diagnosis.report(facts)
        if json {
            emitLine(report.json)
        } else {
            print(report.text, terminator: "")
        }
        if !report.isReady { throw ExitCode(1) }
    }
}
