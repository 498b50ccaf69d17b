import Foundation
import PackagePlugin

/// Compiles every BPF/progs/*.bpf.c with the toolchain's clang (-target bpf) and embeds each
/// object, base64-encoded, in a generated Swift file of the target. So `swift build` is the one
/// build command, and the binary carries the programs it loads: no paths to find at run time.
@main
struct BPFCompiler: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        let root = context.package.directoryURL
        let bpf = root.appending(path: "BPF")
        let script = bpf.appending(path: "build-object.sh")
        let clang = try context.tool(named: "clang").url
        let fm = FileManager.default
        let programs = try fm.contentsOfDirectory(atPath: bpf.appending(path: "progs").path)
            .filter { $0.hasSuffix(".bpf.c") }
            .sorted()
        var headers = try fm.contentsOfDirectory(atPath: bpf.appending(path: "include").path)
            .filter { $0.hasSuffix(".h") }
            .map { bpf.appending(path: "include").appending(path: $0) }
        headers.append(root.appending(path: "Sources/CShunt/include/shunt_abi.h"))
        return programs.map { file in
            let name = String(file.dropLast(".bpf.c".count))
            let source = bpf.appending(path: "progs").appending(path: file)
            let output = context.pluginWorkDirectoryURL.appending(path: "BPFObject_\(name).swift")
            return .buildCommand(
                displayName: "Compiling BPF program \(file)",
                executable: URL(fileURLWithPath: "/bin/sh"),
                arguments: [script.path, clang.path, source.path, output.path, name, root.path],
                inputFiles: [source, script] + headers,
                outputFiles: [output]
            )
        }
    }
}
