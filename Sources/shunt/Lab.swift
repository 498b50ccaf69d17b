import ArgumentParser
import ShuntLab
import ShuntSystem

/// `shunt lab up|down|show`: the benchmarks' namespace lab, for shell users (Scripts/lab.sh
/// wraps it); the same `LabTopology` shunt bench and the tests build.
struct Lab: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Build or remove the gen -- fwd -- sink namespace lab.",
        discussion: """
            [PREFIXgen] gen0 <-veth-> fwd0 [PREFIXfwd] fwd1 <-veth-> sink0 [PREFIXsink], with \
            10.203.0.1/24 on gen0 and 10.203.0.2/24 on sink0, IPv6 off, GRO on fwd0; \
            --monitor-ports N adds fwd2... in fwd whose peers mon0... sit in PREFIXmon. --link \
            builds any other lab of veth pairs instead (give the same --link list to down). \
            `up` removes a lab of the same prefix first; `show` prints the commands without \
            running them. Needs root.

            Example: shunt lab up --prefix demo- && ip netns exec demo-fwd shunt forward --port fwd0 --port fwd1
            """,
        subcommands: [Up.self, Down.self, Show.self]
    )

    struct Options: ParsableArguments {
        @Option(help: ArgumentHelp("Prefix of every namespace name.", valueName: "PREFIX"))
        var prefix: String

        @Option(help: "Analysis ports fwd2... with peers mon0... in PREFIXmon (0-4).")
        var monitorPorts = 0

        @Option(name: .customLong("link"), help: ArgumentHelp("Instead of the gen -- fwd -- sink lab, a veth pair (repeat): NS:IF[@CIDR]=NS:IF[@CIDR], e.g. c1:c1u@192.168.41.1/24=srv:s1. The namespaces are those the links name.", valueName: "SPEC"))
        var links: [String] = []

        func validate() throws {
            for text in links {
                if case .failure(let e) = LabTopology.Link.parse(text) { throw ValidationError("--link: \(e)") }
            }
            if !links.isEmpty && monitorPorts > 0 { throw ValidationError("--monitor-ports is for the gen -- fwd -- sink lab; drop it or --link") }
            guard !prefix.isEmpty, prefix.count <= 64, prefix.allSatisfy({ $0.isLetter || $0.isNumber || "-_.".contains($0) }) else {
                throw ValidationError("--prefix: 1 to 64 letters, digits, '-', '_' or '.'")
            }
            guard (0...4).contains(monitorPorts) else { throw ValidationError("--monitor-ports must be 0 to 4") }
        }

        var topology: LabTopology {
            guard !links.isEmpty else { return .genFwdSink(prefix: prefix, monitorPorts: monitorPorts) }
            return .links(prefix: prefix, links.compactMap { try? LabTopology.Link.parse($0).get() })
        }
    }

    struct Up: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Build the lab (removing one of the same prefix first).")
        @OptionGroup var options: Options

        func run() throws {
            let builder = LabBuilder(options.topology)
            builder.down()
            do { try builder.up() } catch {
                printError("shunt lab: \(error)")
                throw ExitCode(2)
            }
        }
    }

    struct Down: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove the lab's namespaces (and with them its veths).")
        @OptionGroup var options: Options

        /// The monitor namespace goes too, whatever --monitor-ports says.
        func run() throws {
            LabBuilder(options.links.isEmpty ? .genFwdSink(prefix: options.prefix, monitorPorts: 1) : options.topology).down()
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print the commands that build the lab, one per line.")
        @OptionGroup var options: Options

        func run() throws {
            for command in options.topology.upCommands() { emitLine(command.joined(separator: " ")) }
        }
    }
}
