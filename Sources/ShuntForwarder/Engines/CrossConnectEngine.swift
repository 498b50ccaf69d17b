import ShuntCore

/// `--mode xconnect`: port pairs 1<->2, 3<->4, ...; every frame leaves on its port's partner.
enum CrossConnectEngine: ForwardingEngine {
    static let mode = ForwardingMode.xconnect

    static func build(_ plan: ForwarderPlan, ports: PortSet) throws(ForwarderError) -> EngineParts {
        EngineParts(workers: (0..<plan.workers).map {
            Worker(index: $0, ports: ports.rings[$0], stage: CrossConnect(), idle: plan.idle)
        })
    }
}
