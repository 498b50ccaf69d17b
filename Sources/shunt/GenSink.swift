import ArgumentParser

struct Gen: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Send test traffic (placeholder, see issue 3).", shouldDisplay: false)
    func run() throws {}
}

struct Sink: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Receive and measure test traffic (placeholder).", shouldDisplay: false)
    func run() throws {}
}
