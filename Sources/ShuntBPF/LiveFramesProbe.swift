import CShunt
import Glibc

/// Whether this kernel runs BPF_PROG_TEST_RUN with BPF_F_TEST_XDP_LIVE_FRAMES, the fastest way
/// to inject frames (the xdp engine of `shunt gen`). Kernels can refuse it (EPERM was seen on
/// Linux 6.18 with every capability; hardened and older kernels refuse it too), so every user
/// of live frames asks this first: the generator's engine choice and the tests' skips.
public enum LiveFrames {
    public enum Support: Equatable, Sendable {
        case allowed
        /// The kernel refused the call (or could not load the probe program) with this errno.
        case refused(errno: Int32)

        public var isAllowed: Bool { self == .allowed }

        /// "EPERM", "EINVAL", ... (the number where the name is not known here).
        public var errnoName: String {
            guard case .refused(let e) = self else { return "" }
            let names: [Int32: String] = [
                EPERM: "EPERM", EACCES: "EACCES", EINVAL: "EINVAL", ENOTSUP: "EOPNOTSUPP", ENOSYS: "ENOSYS",
                E2BIG: "E2BIG", ENXIO: "ENXIO", ENODEV: "ENODEV",
            ]
            return names[e] ?? "errno \(e)"
        }
    }

    /// Runs xdp_drop once on one live frame with `ifindex` as its ingress interface (nothing is
    /// sent: the program drops it). Costs one program load and one test run.
    public static func probe(ifindex: Int32) -> Support {
        do {
            let object = try BPFObject(embedded: "xdp_drop")
            let frame = [UInt8](repeating: 0, count: 60)
            try ProgramTestRun.xdpLiveFrames(programFD: try object.programFD("xdp_drop"), packet: frame, ifindex: ifindex,
                                             repeat: 1, batchSize: 1)
            withExtendedLifetime(object) {}
            return .allowed
        } catch BPFError.libbpf(_, let e) {
            return .refused(errno: e)
        } catch {
            return .refused(errno: EINVAL)
        }
    }
}
