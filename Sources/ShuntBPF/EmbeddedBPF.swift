import Foundation

/// The BPF objects compiled from BPF/progs by the BPFCompiler plugin, embedded in the binary.
/// Each generated file adds one `static let <program>: String` (base64 of the ELF object).
public enum EmbeddedBPF {
    /// Every embedded program, by the name of its source file (without .bpf.c).
    public static var all: [String: String] {
        [
            "xdp_pass": xdp_pass, "xdp_gen": xdp_gen, "xdp_sink": xdp_sink,
            "xdp_flowcache": xdp_flowcache, "xdp_redirect": xdp_redirect, "xdp_drop": xdp_drop,
        ]
    }

    /// The ELF object of `name`, decoded.
    public static func object(_ name: String) throws(BPFError) -> [UInt8] {
        guard let encoded = all[name] else { throw .noSuchProgram(name) }
        guard let data = Data(base64Encoded: encoded) else { throw .corruptObject(name) }
        return [UInt8](data)
    }
}
