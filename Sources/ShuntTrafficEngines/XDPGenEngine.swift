import CShunt
import Glibc
import ShuntBPF
import ShuntRuntime
import ShuntSystem
import ShuntTraffic

// The xdp engine of `shunt gen`: one template frame run through xdp_gen with BPF_PROG_TEST_RUN
// and BPF_F_TEST_XDP_LIVE_FRAMES, one xdp_gen object (config, state) per thread.

extension Generator {
    func runXDP(_ supervisor: Supervisor) throws(CommandFailure) -> [ThreadResult] {
        let (objects, runs) = try loadXDPRuns(supervisor)
        // Each thread sits in BPF_PROG_TEST_RUN (xdp_gen paces inside the kernel); this one
        // watches the clock, the counts and the termination signals, and ends the runs with
        // SIGUSR1 (a thread that reached its own limit or deadline alone: `GenRun.stop()`; all
        // of them: `supervisor.requestStop()`). --duration counts from each thread's first frame
        // (first_ns, CLOCK_MONOTONIC like ours), so that the time the kernel takes to start the
        // test run is not taken from the sending time.
        var workers: [WorkerThread] = []
        for (i, run) in runs.enumerated() {
            do { workers.append(try WorkerThread(name: "shunt-gen-\(i)") { run.send() }) } catch {
                supervisor.requestStop()
                Self.stopAndJoin(runs, workers)
                throw CommandFailure(status: 1, "\(error)")
            }
        }
        Self.supervise(supervisor, done: { runs.allSatisfy(\.done) }) {
            let now = Sys.monotonicNanoseconds()
            for run in runs where !run.stopped {
                guard let s = try? run.state(), s.next_seq > 0 else { continue }
                if let limit = run.limit, s.next_seq >= limit { run.stop() }
                if let deadline = settings.deadline(first: s.first_ns), now >= deadline { run.stop() }
            }
            return runs.allSatisfy(\.stopped)
        }
        supervisor.requestStop()
        Self.stopAndJoin(runs, workers)
        if let error = runs.lazy.compactMap(\.error).first { throw CommandFailure(status: 1, "\(error)") }
        var results: [ThreadResult] = []
        for run in runs {
            guard let s = try? run.state() else { throw CommandFailure(status: 1, "reading the state failed") }
            results.append(ThreadResult(sent: s.next_seq, firstNs: s.first_ns, lastNs: s.last_ns, lagSkips: s.lag_skips,
                                        skippedNs: s.skipped_ns, maxLagSeenNs: s.max_lag_seen_ns))
        }
        withExtendedLifetime(objects) {}
        return results
    }

    /// One xdp_gen object per thread, its state set to the thread's share. Status 2 on failure.
    private func loadXDPRuns(_ supervisor: Supervisor) throws(CommandFailure) -> ([BPFObject], [GenRun]) {
        var objects: [BPFObject] = []
        var runs: [GenRun] = []
        let spec = settings.frame
        do {
            try Sys.installInterruptHandler(signal: SIGUSR1)
            for i in 0..<settings.threads {
                let object = try BPFObject(embedded: "xdp_gen") {
                    try $0.setReadOnlyData(spec.genConfig(stream: UInt16(settings.stream + i)))
                }
                let share = settings.share(i)
                let state = settings.initialGenState(share)
                let run = GenRun(programFD: try object.programFD("xdp_gen"), stateFD: try object.mapFD("gen_state"),
                                 frame: spec.bytes(), ifindex: interface.index, batchSize: settings.batchSize, limit: share.limit,
                                 supervisor: supervisor)
                try BPFMap.update(fd: run.stateFD, key: 0, value: state)
                objects.append(object)
                runs.append(run)
            }
        } catch {
            throw CommandFailure(status: 2, "\(error)")
        }
        return (objects, runs)
    }

    /// Waits until every sender is done, a termination signal comes, or `finished()` says so,
    /// then returns (the caller stops the senders: `supervisor.requestStop()`).
    static func supervise(_ supervisor: Supervisor, done: () -> Bool, finished: () -> Bool) {
        while !done() {
            guard supervisor.wait(atMostNs: 1_000_000) else { return }
            if finished() { return }
        }
    }

    private static func stopAndJoin(_ runs: [GenRun], _ workers: [WorkerThread]) {
        for (run, worker) in zip(runs, workers) {
            while !run.done {
                worker.interrupt(signal: SIGUSR1)
                Sys.sleep(nanoseconds: 1_000_000)
            }
            worker.join()
        }
    }
}

/// One sending thread's side: BPF_PROG_TEST_RUN calls with live frames, as long as the kernel
/// allows (2^31 - 1 runs of xdp_gen each), until this run or the whole generator is stopped. A
/// call interrupted by the stop signal fails with EINTR; the counts are in the gen_state map,
/// not in the call's result.
private final class GenRun: @unchecked Sendable {
    let programFD: Int32
    let stateFD: Int32
    let frame: [UInt8]
    let ifindex: Int32
    let batchSize: UInt32
    let limit: UInt64?
    let supervisor: Supervisor
    private let flags = UnsafeMutablePointer<UInt32>.allocate(capacity: 2)  // [stop this run, done]
    private(set) var error: Error?  // written by the sender, read after done

    init(programFD: Int32, stateFD: Int32, frame: [UInt8], ifindex: Int32, batchSize: UInt32, limit: UInt64?,
         supervisor: Supervisor) {
        self.programFD = programFD
        self.stateFD = stateFD
        self.frame = frame
        self.ifindex = ifindex
        self.batchSize = batchSize
        self.limit = limit
        self.supervisor = supervisor
        flags.initialize(repeating: 0, count: 2)
    }

    deinit { flags.deallocate() }

    var done: Bool { cshunt_load_acquire_u32(flags + 1) != 0 }
    var stopped: Bool { cshunt_load_acquire_u32(flags) != 0 || supervisor.isStopping }
    func stop() { cshunt_store_release_u32(flags, 1) }

    func state() throws -> shunt_gen_state {
        try BPFMap.lookup(fd: stateFD, key: 0, as: shunt_gen_state.self)
    }

    func send() {
        while !stopped {
            do {
                try ProgramTestRun.xdpLiveFrames(programFD: programFD, packet: frame, ifindex: ifindex,
                                                 repeat: UInt32(Int32.max), batchSize: batchSize)
            } catch BPFError.libbpf(_, let e) where e == EINTR {
                continue
            } catch {
                self.error = error
                break
            }
        }
        cshunt_store_release_u32(flags + 1, 1)
    }
}
