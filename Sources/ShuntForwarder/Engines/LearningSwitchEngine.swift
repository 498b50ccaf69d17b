import ShuntCore

/// `--mode normal`: a MAC-learning switch over all ports (Open vSwitch's NORMAL), one table
/// shared by the workers.
enum LearningSwitchEngine: ForwardingEngine {
    static let mode = ForwardingMode.normal

    static func build(_ plan: ForwarderPlan, ports: PortSet) throws(ForwarderError) -> EngineParts {
        let table = MACLearningTable(capacity: plan.macTableSize, agingMs: plan.macAgingMs)
        var parts = EngineParts(workers: (0..<plan.workers).map {
            Worker(index: $0, ports: ports.rings[$0], stage: LearningSwitch(table: table), idle: plan.idle)
        })
        parts.macTable = table
        return parts
    }
}
