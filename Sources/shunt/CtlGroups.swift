import ArgumentParser
import ShuntControl

// `shunt ctl` group commands, as ovs-ofctl's add-group, mod-group, del-groups, dump-groups and
// dump-group-stats.

extension Ctl {
    static let groupSyntax = """
        A group is one argument in ovs-ofctl syntax: group_id=N,type=all|select|indirect|fast_failover, \
        for select optionally selection_method=hash,fields(FIELD,...) (default: eth_type, ip_src, \
        ip_dst, ip_proto, tp_src, tp_dst), then buckets: \
        bucket=[bucket_id:N,][weight:W,][watch_port:PORT,]actions=ACTIONS. A bucket's actions run \
        to the next bucket=. Flows use a group with the action group:N.
        """

    struct AddGroup: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "add-group",
            abstract: "Add one group (ovs-ofctl syntax).",
            discussion: """
                \(Ctl.groupSyntax)

                Examples:
                  shunt ctl add-group 'group_id=1,type=select,bucket=weight:1,actions=output:2,bucket=weight:3,actions=output:3'
                  shunt ctl add-group 'group_id=2,type=fast_failover,bucket=watch_port:2,actions=output:2,bucket=watch_port:3,actions=output:3'
                  shunt ctl add-flow 'in_port=1,actions=group:1'
                """
        )

        @OptionGroup var control: ControlOptions

        @Argument(help: ArgumentHelp("The group.", valueName: "GROUP"))
        var group: String

        func run() throws { try control.run(ControlRequest(command: "add-group", arguments: [group])) }
    }

    struct AddGroups: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "add-groups",
            abstract: "Add the groups in a file, one per line, all or none.",
            discussion: "FILE holds one group per line (# comments), or - for standard input.\n\n\(Ctl.groupSyntax)"
        )

        @OptionGroup var control: ControlOptions

        @Argument(help: ArgumentHelp("The group file, or - for standard input.", valueName: "FILE"))
        var file: String

        func run() throws {
            try control.run(ControlRequest(command: "add-groups", arguments: [try AddFlows.readText(file)]))
        }
    }

    struct ModGroup: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "mod-group",
            abstract: "Replace a group's type and buckets (its counters start again from zero).",
            discussion: "\(Ctl.groupSyntax)\n\nExample: shunt ctl mod-group 'group_id=1,type=select,bucket=output:2'"
        )

        @OptionGroup var control: ControlOptions

        @Argument(help: ArgumentHelp("The group.", valueName: "GROUP"))
        var group: String

        func run() throws { try control.run(ControlRequest(command: "mod-group", arguments: [group])) }
    }

    struct DelGroups: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "del-groups",
            abstract: "Delete a group, or every group, and the flows that use them.",
            discussion: """
                As ovs-ofctl del-groups: the flows whose actions name a deleted group are deleted \
                too (and groups whose buckets name it).

                Examples:
                  shunt ctl del-groups group_id=1
                  shunt ctl del-groups
                """
        )

        @OptionGroup var control: ControlOptions

        @Argument(help: ArgumentHelp("group_id=N (default: every group).", valueName: "GROUP"))
        var group: String?

        func run() throws {
            try control.run(ControlRequest(command: "del-groups", arguments: group.map { [$0] } ?? []))
        }
    }

    struct DumpGroups: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "dump-groups",
            abstract: "Print the groups (in add-group syntax).",
            discussion: "Example: shunt ctl dump-groups --json"
        )

        @OptionGroup var control: ControlOptions

        @Flag(help: "Print JSON (with the counters and each bucket's liveness).")
        var json = false

        func run() throws { try control.run(ControlRequest(command: "dump-groups", json: json)) }
    }

    struct DumpGroupStats: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "dump-group-stats",
            abstract: "Print each group's and each bucket's packet and byte counts.",
            discussion: """
                As ovs-ofctl dump-group-stats; a bucket whose watch port is down is marked ',down'.

                Example: shunt ctl dump-group-stats
                """
        )

        @OptionGroup var control: ControlOptions

        @Flag(help: "Print JSON.")
        var json = false

        func run() throws { try control.run(ControlRequest(command: "dump-group-stats", json: json)) }
    }
}
