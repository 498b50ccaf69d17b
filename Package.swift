// swift-tools-version: 6.1
// Shunt: a packet forwarder for Linux on AF_PACKET rings with an XDP fast path.
import PackageDescription

// Release builds of the packet-path modules skip the runtime exclusivity checks on class
// properties (debug builds, which the tests use, keep them): on the flow worker's path they were
// a quarter of the instructions per packet (callgrind, docs/benchmarks.md, issue 12).
let packetPath: [SwiftSetting] = [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]

let package = Package(
    name: "Shunt",
    products: [
        .executable(name: "shunt", targets: ["shunt"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
        // The configuration file (`shunt forward --config`, YAML).
        .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
        // The allocation gate over worker passes (Benchmarks/WorkerPass, `swift package benchmark`).
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        // Kernel ABI shims: macros and layouts Swift cannot import, plus the ABI header shared with BPF/.
        .target(
            name: "CShunt",
            cSettings: [.define("_GNU_SOURCE")]
        ),
        // libbpf, found through pkg-config (Debian: libbpf-dev).
        .systemLibrary(
            name: "CLibbpf",
            pkgConfig: "libbpf",
            providers: [.apt(["libbpf-dev", "libelf-dev"])]
        ),
        // The only Swift module that makes system calls.
        .target(name: "ShuntSystem", dependencies: ["CShunt"]),
        // Pure packet logic: batches, forwarding stages, MAC learning, checksums. No syscalls.
        .target(name: "ShuntCore", dependencies: ["CShunt"], swiftSettings: packetPath),
        // TPACKET ring mechanics: geometry, RX walkers, TX ring, socket setup.
        .target(name: "ShuntRing", dependencies: ["CShunt", "ShuntSystem", "ShuntCore"], swiftSettings: packetPath),
        // The Swift face of libbpf, with the BPF objects compiled from BPF/ embedded.
        .target(
            name: "ShuntBPF",
            dependencies: ["CLibbpf", "CShunt", "ShuntSystem", "ShuntCore"],
            plugins: ["BPFCompiler"]
        ),
        // Test traffic for `shunt gen` / `shunt sink`: the template frame, pacing, the latency
        // histograms (the XDP sink's buckets and the HDR recorder). Pure logic, no syscalls.
        .target(
            name: "ShuntTraffic",
            dependencies: ["CShunt", "ShuntCore", .product(name: "Histogram", package: "hdrhistogram-swift")]
        ),
        // The OpenFlow-style pipeline: flow syntax (ovs-ofctl), tuple-space classifier, translation
        // of a packet's key into a flat datapath action list. Pure logic, no syscalls.
        .target(name: "ShuntPipeline", dependencies: ["ShuntCore", "CShunt"], swiftSettings: packetPath),
        // Network-namespace labs (namespaces, veth pairs, addresses) described once, built by `shunt lab`,
        // the bench and the tests.
        .target(name: "ShuntLab", dependencies: ["ShuntSystem"]),
        // The commands' process runtime: the Supervisor (termination signals, the stop flag, deadline,
        // periodic reports, child processes), through Sys.
        .target(name: "ShuntRuntime", dependencies: ["ShuntSystem"]),
        // The engines of `shunt gen` and `shunt sink`: everything that sends and receives test traffic
        // (xdp_gen live frames, AF_XDP, TX rings, the in-kernel pump; xdp_sink, the RX ring sink), through Sys.
        .target(
            name: "ShuntTrafficEngines",
            dependencies: ["CShunt", "ShuntSystem", "ShuntCore", "ShuntRing", "ShuntBPF", "ShuntTraffic", "ShuntRuntime"]
        ),
        // `shunt bench`'s run: the lab namespaces, the forwarders, the trials as child processes (shunt gen,
        // shunt sink), the cleanup and the results files, through Sys and the Supervisor.
        .target(name: "ShuntBenchRunner", dependencies: ["ShuntBench", "ShuntSystem", "ShuntRuntime", "ShuntLab"]),
        // The control socket (`shunt forward --control`) and its client (`shunt ctl`).
        .target(name: "ShuntControl", dependencies: ["ShuntSystem"]),
        // `shunt bench`'s pure side: the zero-loss search, statistics over repeats, the results
        // JSON, the Markdown table and the SVG charts. No syscalls.
        .target(name: "ShuntBench"),
        // `shunt doctor`: reads the host's and the ports' settings (XDPPeers' readiness, offloads,
        // vxlan devices, bridge netfilter, bpffs, the generator's engines) and judges them; the
        // judging (`Diagnosis`) is pure and unit-tested.
        .target(
            name: "ShuntDoctor",
            dependencies: ["ShuntSystem", "ShuntCore", "ShuntBPF", "ShuntRuntime", "ShuntTrafficEngines"]
        ),
        // Wiring: the checked plan (flags and the YAML configuration), ports, engines, worker
        // threads, statistics, lifecycle.
        .target(
            name: "ShuntForwarder",
            dependencies: ["ShuntSystem", "ShuntCore", "ShuntRing", "ShuntBPF", "ShuntPipeline", "ShuntControl", "ShuntTraffic",
                           .product(name: "Yams", package: "Yams")],
            swiftSettings: packetPath
        ),
        .executableTarget(
            name: "shunt",
            dependencies: [
                "ShuntForwarder", "ShuntBPF", "ShuntSystem", "ShuntRing", "ShuntCore", "ShuntTraffic", "CShunt", "ShuntPipeline",
                "ShuntControl", "ShuntBench", "ShuntRuntime", "ShuntTrafficEngines",
                "ShuntBenchRunner", "ShuntLab", "ShuntDoctor",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // The allocation gate: one worker pass per engine and ring version, malloc-counted
        // (`swift package benchmark`, Thresholds/).
        .executableTarget(
            name: "WorkerPass",
            dependencies: ["ShuntForwarder", "ShuntRing", .product(name: "Benchmark", package: "benchmark")],
            path: "Benchmarks/WorkerPass",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        // The C TPACKET forwarder `shunt bench` runs as c-tpacket: the reference Shunt's ring mode
        // must match (issue 14). Built next to shunt; -O2 in every configuration, since a slow
        // reference would flatter Shunt.
        .executableTarget(
            name: "tpacket-fwd",
            path: "Benchmarks/tpacket-fwd",
            cSettings: [.unsafeFlags(["-O2"])]
        ),
        // Compiles BPF/progs/*.bpf.c with the toolchain's clang and embeds the objects as Swift.
        .plugin(name: "BPFCompiler", capability: .buildTool()),

        // Helpers the test targets share (a library target: a test target cannot depend on
        // another): the seeded generator, test frames, child processes.
        .target(name: "ShuntTestSupport", dependencies: ["ShuntSystem"], path: "Tests/ShuntTestSupport"),
        .testTarget(name: "ShuntCoreTests", dependencies: ["ShuntCore", "ShuntTestSupport"]),
        .testTarget(name: "ShuntSystemTests", dependencies: ["ShuntSystem", "ShuntTestSupport"]),
        .testTarget(name: "ShuntRuntimeTests", dependencies: ["ShuntRuntime", "ShuntSystem"]),
        .testTarget(name: "ShuntRingTests", dependencies: ["ShuntRing", "CShunt"]),
        .testTarget(name: "ShuntBPFTests", dependencies: ["ShuntBPF", "ShuntSystem", "ShuntCore", "ShuntTraffic", "ShuntTestSupport", "ShuntPipeline"]),
        .testTarget(name: "ShuntPipelineTests", dependencies: ["ShuntPipeline", "ShuntCore", "ShuntTestSupport"]),
        .testTarget(name: "ShuntControlTests", dependencies: ["ShuntControl", "ShuntSystem"]),
        .testTarget(name: "ShuntTrafficTests", dependencies: ["ShuntTraffic", "CShunt", "ShuntTestSupport"]),
        .testTarget(name: "ShuntBenchTests", dependencies: ["ShuntBench"]),
        .testTarget(name: "ShuntLabTests", dependencies: ["ShuntLab"]),
        .testTarget(name: "ShuntDoctorTests", dependencies: ["ShuntDoctor", "ShuntSystem"]),
        .testTarget(name: "ShuntForwarderTests", dependencies: ["ShuntForwarder", "ShuntBPF", "ShuntCore", "ShuntPipeline", "ShuntRing", "CShunt"]),
        .testTarget(
            name: "ShuntIntegrationTests",
            // tpacket-fwd: built (not linked) with the tests, which run it.
            dependencies: ["shunt", "tpacket-fwd", "ShuntSystem", "ShuntCore", "ShuntTestSupport", "ShuntLab"]
        ),
    ]
)

