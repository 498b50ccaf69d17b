import ArgumentParser
import ShuntBPF
import ShuntRuntime

/// The reference forwarder for benchmarks: a bare XDP redirect between port pairs.
struct XDPRedirect: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "xdp-redirect",
        abstract: "Forward between port pairs with a bare XDP redirect (the kernel's ceiling; a benchmark reference).",
        discussion: """
            Attaches xdp_redirect to every port: each frame goes, untouched, to the partner of \
            the port it came in on (1<->2, 3<->4), through a DEVMAP. No parsing, no flow table, \
            no statistics: this is what `shunt bench` and Benchmarks/ compare Shunt's XDP fast \
            path against. A veth delivers redirected frames only when its peer has GRO enabled \
            or runs an XDP program. Prints {"type":"ready"} when attached; runs until --duration, \
            SIGINT or SIGTERM.
            """
    )

    @Option(name: .customLong("port"), help: ArgumentHelp("An interface (repeat; an even number).", valueName: "IF"))
    var ports: [String] = []

    @Option(help: "Stop after S seconds.")
    var duration: Double?

    func validate() throws {
        if ports.count < 2 || ports.count % 2 != 0 || ports.count > 64 {
            throw ValidationError("give an even number of ports (2 to 64): --port A --port B")
        }
    }

    func run() throws {
        let supervisor = Supervisor()
        let redirect: XDPRedirectPairs
        do throws(XDPRedirectPairs.SetupError) { redirect = try XDPRedirectPairs(ports: ports) } catch {
            printError("shunt xdp-redirect: \(error)")
            throw ExitCode(2)
        }
        emitLine("{\"type\":\"ready\",\"ports\":[\(ports.map { "\"\($0)\"" }.joined(separator: ","))]}")
        supervisor.begin(duration: duration)
        supervisor.run(tickNs: 1_000_000_000)
        redirect.detach()
        emitLine("{\"type\":\"final\"}")
    }
}
