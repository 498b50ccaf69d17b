import ArgumentParser
import Foundation
import Glibc
import ShuntControl
import ShuntSystem

// `shunt ctl`: commands for a running `shunt forward`, sent over its control socket (in the way
// ovs-ofctl talks to ovs-vswitchd). Each subcommand is one request; the forwarder does the work
// and the answer is printed: output on stdout, or `shunt ctl: <message>` on stderr.
// Exit codes: 0 done, 2 bad input or a failed command, 1 the forwarder could not be reached.

struct Ctl: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ctl",
        abstract: "Control a running shunt forwarder through its control socket.",
        discussion: """
            Each subcommand is sent to the forwarder listening on --control (default \
            \(ControlPaths.defaultControlPath); `shunt forward --control PATH` chooses it). The \
            socket is root only. Exit code 0 on success, 2 for bad input or a failed command, 1 \
            when no forwarder could be reached.

            Examples:
              shunt ctl add-flow 'table=0,priority=10,in_port=1,actions=output:2'
              shunt ctl --control /run/shunt/lab.ctl dump-flows
              shunt ctl --bridge br-tun dump-flows
              shunt ctl trace 'in_port=tap-vm1,icmp,dl_src=fa:16:3e:da:75:6d,nw_src=10.0.1.5,nw_dst=10.0.2.5'
            """,
        subcommands: [AddFlow.self, AddFlows.self, DelFlows.self, DumpFlows.self, Show.self, DumpCache.self, Trace.self,
                      FDBShow.self, Mirror.self, AddGroup.self, AddGroups.self, ModGroup.self, DelGroups.self,
                      DumpGroups.self, DumpGroupStats.self]
    )

    @OptionGroup var control: ControlOptions
}

/// The option every `shunt ctl` subcommand takes.
struct ControlOptions: ParsableArguments {
    @Option(name: .customLong("control"),
            help: ArgumentHelp("The forwarder's control socket.", valueName: "PATH"))
    var path: String = ControlPaths.defaultControlPath

    @Option(help: ArgumentHelp("Give up after this many seconds.", valueName: "S"))
    var timeout: Int = 10

    @Option(help: ArgumentHelp("The bridge add-flow(s), del-flows, dump-flows and trace are for, as ovs-ofctl's BRIDGE argument (default: the first bridge).", valueName: "NAME"))
    var bridge: String?

    func validate() throws {
        if timeout < 1 { throw ValidationError("--timeout must be at least 1 second") }
    }

    /// Sends one request, prints the answer, and ends the process with the answer's exit code.
    func run(_ request: ControlRequest) throws {
        var request = request
        request.bridge = bridge
        let response: ControlResponse
        do {
            response = try ControlClient.send(request, to: path, timeoutSeconds: timeout)
        } catch {
            printError("shunt ctl: \(error)")
            // Too large is bad input (split the file); everything else is the channel.
            if case .requestTooLarge = error { throw ExitCode(2) }
            throw ExitCode(1)
        }
        if !response.output.isEmpty {
            print(response.output, terminator: response.output.hasSuffix("\n") ? "" : "\n")
        }
        if !response.ok {
            printError("shunt ctl: \(response.error ?? "\(request.command) failed")")
            throw ExitCode(response.exitCode == 0 ? 2 : response.exitCode)
        }
        if response.exitCode != 0 { throw ExitCode(response.exitCode) }
    }
}

extension Ctl {
    struct AddFlow: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "add-flow",
            abstract: "Add one flow (ovs-ofctl syntax).",
            discussion: """
                FLOW is one argument: quote it. As ovs-ofctl add-flow.

                Example: shunt ctl add-flow 'table=0,priority=10,in_port=1,actions=output:2'
                """
        )

        @OptionGroup var control: ControlOptions

        @Argument(help: ArgumentHelp("The flow, e.g. 'table=0,priority=10,in_port=1,actions=output:2'.",
                                     valueName: "FLOW"))
        var flow: String

        func run() throws {
            try control.run(ControlRequest(command: "add-flow", arguments: [flow]))
        }
    }

    struct AddFlows: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "add-flows",
            abstract: "Add the flows in a file, one per line, all or none.",
            discussion: """
                FILE holds one flow per line in ovs-ofctl syntax, as for ovs-ofctl add-flows; - \
                reads standard input. The whole file goes to the forwarder in one request, which \
                adds every flow or, if one is wrong, none. At most \(ControlProtocol.maxRequestBytes >> 20) MiB.

                Examples:
                  shunt ctl add-flows flows.txt
                  printf 'in_port=1,actions=output:2\\n' | shunt ctl add-flows -
                """
        )

        @OptionGroup var control: ControlOptions

        @Argument(help: ArgumentHelp("The flow file, or - for standard input.", valueName: "FILE"))
        var file: String

        func run() throws {
            try control.run(ControlRequest(command: "add-flows", arguments: [try Self.readText(file)]))
        }

        /// The file's text (or standard input's for "-"); a message and exit 2 when it cannot be
        /// read or is not UTF-8.
        static func readText(_ file: String) throws -> String {
            let data: Data
            do {
                data = try read(file)
            } catch {
                printError("shunt ctl: cannot read \(file == "-" ? "standard input" : file): \(error)")
                throw ExitCode(2)
            }
            guard let text = String(data: data, encoding: .utf8) else {
                printError("shunt ctl: \(file == "-" ? "standard input" : file) is not UTF-8 text")
                throw ExitCode(2)
            }
            return text
        }

        /// The whole file, or standard input for "-". Errors name the cause (errno text).
        static func read(_ file: String) throws -> Data {
            if file == "-" { return try FileHandle.standardInput.readToEnd() ?? Data() }
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: file, isDirectory: &isDirectory), isDirectory.boolValue {
                throw ValidationError("it is a directory")
            }
            let fd = try Sys.open(file, flags: O_RDONLY | O_CLOEXEC)
            return try FileHandle(fileDescriptor: fd, closeOnDealloc: true).readToEnd() ?? Data()
        }
    }

    struct DelFlows: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "del-flows",
            abstract: "Delete the flows that match (all flows without MATCH).",
            discussion: """
                As ovs-ofctl del-flows: without --strict, deletes every flow that MATCH covers \
                (fields left out match anything); with --strict, only the flow with exactly this \
                match and priority.

                Examples:
                  shunt ctl del-flows 'table=0,in_port=1'
                  shunt ctl del-flows --strict 'table=0,priority=10,in_port=1'
                """
        )

        @OptionGroup var control: ControlOptions

        @Flag(help: "Match priority and fields exactly.")
        var strict = false

        @Argument(help: ArgumentHelp("Which flows, in ovs-ofctl match syntax (default: all).", valueName: "MATCH"))
        var match: String?

        func run() throws {
            try control.run(ControlRequest(command: "del-flows", arguments: match.map { [$0] } ?? [],
                                           flags: strict ? ["strict"] : []))
        }
    }

    struct DumpFlows: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "dump-flows",
            abstract: "Print the flow tables with their counters.",
            discussion: "Example: shunt ctl dump-flows --json"
        )

        @OptionGroup var control: ControlOptions

        @Flag(help: "Print JSON.")
        var json = false

        func run() throws {
            try control.run(ControlRequest(command: "dump-flows", json: json))
        }
    }

    struct Trace: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "trace",
            abstract: "Show how a packet would be forwarded: every bridge, table and rule it meets.",
            discussion: """
                As ovs-appctl ofproto/trace. PACKET is a flow match that describes the packet \
                (fields left out are zero) and must give in_port, a port of --bridge (default: \
                the first bridge). Prints the rules hit in every table of every bridge the packet \
                crosses (patch ports included), NORMAL's decisions, the final datapath actions, and \
                whether the XDP fast path can hold the result as one cache entry, or why not. The \
                MAC table is read, not changed.

                Examples:
                  shunt ctl trace 'in_port=p1,dl_dst=02:00:00:00:00:02'
                  shunt ctl --bridge br-int trace --json 'in_port=tap-vm1,icmp,dl_src=fa:16:3e:da:75:6d,dl_dst=fa:16:3e:66:13:af,nw_src=10.0.1.5,nw_dst=10.0.2.5'
                """
        )

        @OptionGroup var control: ControlOptions

        @Flag(help: "Print JSON.")
        var json = false

        @Argument(help: ArgumentHelp("The packet, in flow match syntax.", valueName: "PACKET"))
        var packet: String

        func run() throws {
            try control.run(ControlRequest(command: "trace", arguments: [packet], json: json))
        }
    }

    struct FDBShow: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "fdb-show",
            abstract: "Print the MAC addresses NORMAL learned on a bridge, per VLAN.",
            discussion: "As ovs-appctl fdb/show: port (OpenFlow number and name), VLAN, MAC, seconds since last seen.\n\nExample: shunt ctl --bridge br-int fdb-show"
        )

        @OptionGroup var control: ControlOptions

        @Flag(help: "Print JSON.")
        var json = false

        func run() throws {
            try control.run(ControlRequest(command: "fdb-show", json: json))
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "show",
            abstract: "Print the forwarder's ports, workers and configuration.",
            discussion: "Example: shunt ctl show"
        )

        @OptionGroup var control: ControlOptions

        @Flag(help: "Print JSON.")
        var json = false

        func run() throws {
            try control.run(ControlRequest(command: "show", json: json))
        }
    }

    struct DumpCache: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "dump-cache",
            abstract: "Print the datapath flow cache: the entries and their actions.",
            discussion: "Example: shunt ctl dump-cache --control /run/shunt/lab.ctl"
        )

        @OptionGroup var control: ControlOptions

        @Flag(help: "Print JSON.")
        var json = false

        func run() throws {
            try control.run(ControlRequest(command: "dump-cache", json: json))
        }
    }

    struct Mirror: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "mirror",
            abstract: "Add, remove and list mirror sessions (port mirroring, SPAN).",
            discussion: """
                A session copies the traffic of source ports (received: dir=in, sent: dir=out, or \
                both) to a port, a pcapng file or a VXLAN tunnel port, optionally only packets \
                matching a flow match, 1 in N of them, cut to a snap length. Changes apply to \
                cached flows too (within 100 ms).

                Examples:
                  shunt ctl mirror add 'm1,src=p1,to=p3'
                  shunt ctl mirror add 'cap,src=p1+p2,dir=in,to=pcap:/tmp/p.pcapng,snaplen=128,match=tcp,tp_dst=80'
                  shunt ctl mirror list --json
                  shunt ctl mirror del m1
                """,
            subcommands: [Add.self, Del.self, List.self]
        )

        struct Add: ParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Add mirror sessions (all or none).",
                discussion: "SPEC: NAME,src=PORT[+PORT...][,dir=in|out|both],to=PORT|pcap:FILE|TUNNELPORT[,sample=N][,snaplen=N][,match=FLOWMATCH] (match= last: it takes the rest)."
            )

            @OptionGroup var control: ControlOptions

            @Argument(help: ArgumentHelp("A session, e.g. 'm1,src=p1,to=p3'.", valueName: "SPEC"))
            var specs: [String]

            func run() throws {
                try control.run(ControlRequest(command: "mirror-add", arguments: specs))
            }
        }

        struct Del: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Remove a mirror session (its capture file is completed).")

            @OptionGroup var control: ControlOptions

            @Argument(help: ArgumentHelp("The session's name.", valueName: "NAME"))
            var name: String

            func run() throws {
                try control.run(ControlRequest(command: "mirror-del", arguments: [name]))
            }
        }

        struct List: ParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "List mirror sessions with their counters.",
                discussion: "JSON keys per session: name, sources, direction, output, output_type, sample, snaplen, match, selected, mirrored, sampled_out, truncated, dropped (packets), their _bytes, and drops by reason."
            )

            @OptionGroup var control: ControlOptions

            @Flag(help: "Print JSON.")
            var json = false

            func run() throws {
                try control.run(ControlRequest(command: "mirror-list", json: json))
            }
        }
    }
}
