import CLibbpf
import Glibc
import ShuntSystem

public enum BPFError: Error, CustomStringConvertible, Equatable {
    case noSuchProgram(String)
    case corruptObject(String)
    case libbpf(step: String, errno: Int32)
    case missingMap(String)
    /// The flow cache map has no room for another entry (the kernel's E2BIG / ENOSPC).
    case cacheFull(maxEntries: UInt32)
    /// Another XDP program is attached to the interface; Shunt never replaces one.
    case xdpOccupied(interface: String, occupant: XDPOccupant)

    public var description: String {
        switch self {
        case .noSuchProgram(let n): "no embedded BPF program named \(n)"
        case .corruptObject(let n): "embedded BPF object \(n) does not decode"
        case .libbpf(let step, let e):
            "\(step): \(String(cString: strerror(e)))" + (e == EPERM ? " (loading BPF needs CAP_BPF and CAP_NET_ADMIN: run as root)" : "")
        case .missingMap(let n): "the BPF object has no map named \(n)"
        case .cacheFull(let n): "the flow cache is full (\(n) entries)"
        case .xdpOccupied(let interface, let o): o.explanation(interface: interface)
        }
    }
}

/// A loaded BPF object (libbpf's bpf_object), owning its programs and maps.
///
/// libbpf reads the ELF buffer until load, so the object keeps its bytes for its lifetime.
public final class BPFObject {
    let handle: OpaquePointer
    private let elf: UnsafeMutableRawBufferPointer
    public let name: String

    /// Opens an embedded object; `configure` may set read-only data (`const volatile` globals)
    /// through `setReadOnlyData` before the kernel verifies and loads it.
    public init(embedded name: String, configure: (BPFObject) throws -> Void = { _ in }) throws {
        Self.routeLibbpfLogs()
        let bytes = try EmbeddedBPF.object(name)
        let elf = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes.count, alignment: 8)
        elf.copyBytes(from: bytes)
        self.elf = elf
        self.name = name
        var opts = bpf_object_open_opts()
        opts.sz = MemoryLayout<bpf_object_open_opts>.size
        guard let h = name.withCString({ cname -> OpaquePointer? in
            opts.object_name = cname
            return bpf_object__open_mem(elf.baseAddress, elf.count, &opts)
        }) else {
            let e = errno
            elf.deallocate()
            throw BPFError.libbpf(step: "bpf_object__open_mem(\(name))", errno: e)
        }
        handle = h
        do {
            try configure(self)
            let rc = bpf_object__load(handle)
            if rc != 0 { throw BPFError.libbpf(step: "loading \(name) into the kernel", errno: -rc) }
        } catch {
            bpf_object__close(handle)
            elf.deallocate()
            throw error
        }
    }

    deinit {
        bpf_object__close(handle)
        elf.deallocate()
    }

    /// Overwrites the start of the object's .rodata (before load) with `value`.
    public func setReadOnlyData<T>(_ value: T) throws {
        guard let map = bpf_object__find_map_by_name(handle, ".rodata") else { throw BPFError.missingMap(".rodata") }
        var size = 0
        guard let p = bpf_map__initial_value(map, &size), size >= MemoryLayout<T>.size else {
            throw BPFError.missingMap(".rodata")
        }
        UnsafeMutableRawPointer(mutating: p).storeBytes(of: value, as: T.self)
    }

    /// Sets the capacity of `map` (before load, from `configure`).
    public func setMaxEntries(_ count: UInt32, of map: String) throws {
        guard let m = bpf_object__find_map_by_name(handle, map) else { throw BPFError.missingMap(map) }
        let rc = bpf_map__set_max_entries(m, count)
        if rc != 0 { throw BPFError.libbpf(step: "bpf_map__set_max_entries(\(map), \(count))", errno: -rc) }
    }

    /// The file descriptor of program `program`.
    public func programFD(_ program: String) throws -> Int32 {
        guard let prog = bpf_object__find_program_by_name(handle, program) else { throw BPFError.noSuchProgram(program) }
        return bpf_program__fd(prog)
    }

    public func mapFD(_ map: String) throws -> Int32 {
        guard let m = bpf_object__find_map_by_name(handle, map) else { throw BPFError.missingMap(map) }
        return bpf_map__fd(m)
    }

    /// Attaches `program` to the XDP hook of `ifindex` through a bpf_link: the attachment goes
    /// away with the link, also when the process dies.
    public func attachXDP(program: String, ifindex: Int32) throws -> XDPAttachment {
        guard let prog = bpf_object__find_program_by_name(handle, program) else { throw BPFError.noSuchProgram(program) }
        guard let link = bpf_program__attach_xdp(prog, ifindex) else {
            let e = errno
            if e == EBUSY || e == EEXIST, let occupant = XDPOccupant.query(ifindex: ifindex) {
                throw BPFError.xdpOccupied(interface: Self.interfaceName(ifindex), occupant: occupant)
            }
            throw BPFError.libbpf(step: "attaching \(program) to XDP of ifindex \(ifindex)", errno: e)
        }
        return XDPAttachment(link: .libbpf(link), mode: nil, owner: self)
    }

    /// Attaches `program` to the XDP hook of `ifindex` in the given mode, through a bpf_link
    /// (BPF_LINK_CREATE with XDP_FLAGS_DRV_MODE or XDP_FLAGS_SKB_MODE): fails instead of
    /// silently choosing another mode.
    public func attachXDP(program: String, ifindex: Int32, mode: XDPMode) throws -> XDPAttachment {
        let fd = try programFD(program)
        var opts = bpf_link_create_opts()
        opts.sz = MemoryLayout<bpf_link_create_opts>.size
        opts.flags = mode.flags
        let rc = bpf_link_create(fd, ifindex, BPF_XDP, &opts)
        if rc < 0 {
            if -rc == EBUSY || -rc == EEXIST, let occupant = XDPOccupant.query(ifindex: ifindex) {
                throw BPFError.xdpOccupied(interface: Self.interfaceName(ifindex), occupant: occupant)
            }
            throw BPFError.libbpf(step: "attaching \(program) to XDP of ifindex \(ifindex) (\(mode))", errno: -rc)
        }
        return XDPAttachment(link: .fd(rc), mode: mode, owner: self)
    }

    static func interfaceName(_ ifindex: Int32) -> String {
        var name = [CChar](repeating: 0, count: Int(IF_NAMESIZE) + 1)
        guard if_indextoname(UInt32(bitPattern: ifindex), &name) != nil else { return "ifindex \(ifindex)" }
        return String(cString: name)
    }

    nonisolated(unsafe) private static var logsRouted = false
    private static func routeLibbpfLogs() {
        guard !logsRouted else { return }
        logsRouted = true
        // Verifier logs only matter when a load fails, and that error is reported on its own;
        // SHUNT_BPF_DEBUG=1 shows libbpf's messages on stderr.
        if getenv("SHUNT_BPF_DEBUG") == nil {
            _ = libbpf_set_print(nil)
        }
    }
}

/// Where an XDP program runs on an interface.
public enum XDPMode: Sendable, CustomStringConvertible {
    /// In the driver (XDP_FLAGS_DRV_MODE): veth and most NICs; needed for cheap redirects.
    case native
    /// On the skb, after the driver (XDP_FLAGS_SKB_MODE): works everywhere, slower.
    case generic

    var flags: UInt32 {
        switch self {
        case .native: UInt32(XDP_FLAGS_DRV_MODE)
        case .generic: UInt32(XDP_FLAGS_SKB_MODE)
        }
    }

    public var description: String {
        switch self {
        case .native: "native"
        case .generic: "generic"
        }
    }
}

/// A program attached to an interface's XDP hook. Detached when released.
public final class XDPAttachment {
    enum Link {
        case libbpf(OpaquePointer)
        case fd(Int32)
    }
    private let link: Link
    private let owner: BPFObject
    /// The mode asked for; nil when the kernel chose (native when the driver supports it).
    public let mode: XDPMode?

    init(link: Link, mode: XDPMode?, owner: BPFObject) {
        self.link = link
        self.mode = mode
        self.owner = owner
    }

    deinit {
        switch link {
        case .libbpf(let l): bpf_link__destroy(l)
        case .fd(let fd): Sys.close(fd)  // an unpinned link detaches with its last descriptor
        }
    }
}

/// BPF_PROG_TEST_RUN of an XDP program.
public enum ProgramTestRun {
    public struct Result {
        public var returnValue: UInt32
        public var output: [UInt8]
        public var durationNs: UInt32
    }

    /// Runs `programFD` once over `packet` and returns its verdict and the resulting frame.
    /// The kernel runs it as if the frame came in on the loopback device of the caller's network
    /// namespace (`ingress_ifindex` = lo), and refuses frames shorter than 14 bytes (EINVAL).
    /// With `repeat` > 1 the kernel runs it that many times in a row and `durationNs` is the
    /// mean per run (the program's own cost, with the test harness's: measure an empty program
    /// the same way to subtract it).
    public static func xdp(programFD: Int32, packet: [UInt8], repeat count: UInt32 = 1) throws -> Result {
        var out = [UInt8](repeating: 0, count: packet.count + 512)
        var opts = bpf_test_run_opts()
        opts.sz = MemoryLayout<bpf_test_run_opts>.size
        opts.repeat = Int32(bitPattern: count)
        let rc: Int32 = packet.withUnsafeBytes { input in
            out.withUnsafeMutableBytes { output in
                opts.data_in = input.baseAddress
                opts.data_size_in = UInt32(input.count)
                opts.data_out = output.baseAddress
                opts.data_size_out = UInt32(output.count)
                return bpf_prog_test_run_opts(programFD, &opts)
            }
        }
        if rc != 0 { throw BPFError.libbpf(step: "BPF_PROG_TEST_RUN", errno: -rc) }
        return Result(returnValue: opts.retval, output: Array(out.prefix(Int(opts.data_size_out))), durationNs: opts.duration)
    }

    /// Sends `repeat` copies of `packet` through `programFD` as live frames (XDP_TX goes out of
    /// `ifindex`, in the caller's network namespace). Returns when they have all been processed.
    public static func xdpLiveFrames(programFD: Int32, packet: [UInt8], ifindex: Int32, repeat count: UInt32, batchSize: UInt32 = 64) throws {
        var ctx = xdp_md()
        ctx.data_end = UInt32(packet.count)
        ctx.ingress_ifindex = UInt32(ifindex)
        var opts = bpf_test_run_opts()
        opts.sz = MemoryLayout<bpf_test_run_opts>.size
        opts.repeat = Int32(bitPattern: count)
        opts.flags = UInt32(BPF_F_TEST_XDP_LIVE_FRAMES)
        opts.batch_size = batchSize
        let rc: Int32 = packet.withUnsafeBytes { input in
            withUnsafeMutablePointer(to: &ctx) { c in
                opts.data_in = input.baseAddress
                opts.data_size_in = UInt32(input.count)
                opts.ctx_in = UnsafeRawPointer(c)
                opts.ctx_size_in = UInt32(MemoryLayout<xdp_md>.size)
                return bpf_prog_test_run_opts(programFD, &opts)
            }
        }
        if rc != 0 { throw BPFError.libbpf(step: "BPF_PROG_TEST_RUN (live frames)", errno: -rc) }
    }
}

/// The XDP program already attached to an interface, as the kernel reports it.
public struct XDPOccupant: Sendable, Equatable {
    public var programID: UInt32
    /// The program's name (up to 15 characters, as the kernel keeps it); empty if unknown.
    public var programName: String
    /// Attached through a bpf_link, which a process holds (it goes when that process ends):
    /// `ip link set ... xdp off` cannot remove it.
    public var throughLink: Bool

    /// What occupies `ifindex`'s XDP hook, or nil when nothing does (or the query failed).
    public static func query(ifindex: Int32) -> XDPOccupant? {
        var opts = bpf_xdp_query_opts()
        opts.sz = MemoryLayout<bpf_xdp_query_opts>.size
        guard bpf_xdp_query(ifindex, 0, &opts) == 0, opts.prog_id != 0 else { return nil }
        var occupant = XDPOccupant(programID: opts.prog_id, programName: "", throughLink: false)
        let fd = bpf_prog_get_fd_by_id(opts.prog_id)
        if fd >= 0 {
            defer { close(fd) }
            var info = bpf_prog_info()
            var length = UInt32(MemoryLayout<bpf_prog_info>.size)
            if bpf_obj_get_info_by_fd(fd, &info, &length) == 0 {
                occupant.programName = withUnsafeBytes(of: info.name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            }
        }
        occupant.throughLink = Self.linkHolds(programID: opts.prog_id)
        return occupant
    }

    /// Whether some bpf_link holds the program (links are listed by id; few exist).
    private static func linkHolds(programID: UInt32) -> Bool {
        var id: UInt32 = 0
        while bpf_link_get_next_id(id, &id) == 0 {
            let fd = bpf_link_get_fd_by_id(id)
            guard fd >= 0 else { continue }
            defer { close(fd) }
            var info = bpf_link_info()
            var length = UInt32(MemoryLayout<bpf_link_info>.size)
            if bpf_obj_get_info_by_fd(fd, &info, &length) == 0 && info.prog_id == programID { return true }
        }
        return false
    }

    /// One line: who is there and how to free the hook.
    func explanation(interface: String) -> String {
        let who = "XDP program \(programName.isEmpty ? "" : "'\(programName)' ")(id \(programID))"
        let fix = throughLink
            ? "it is held by a bpf_link of another process (`bpftool link show` names it with its pid): stop that process"
            : "remove it with `ip link set dev \(interface) xdp off` if nothing needs it"
        return "\(interface) already has \(who); shunt does not replace another program: \(fix); or do without XDP (shunt forward --datapath afpacket, shunt sink --engine ring)"
    }
}
