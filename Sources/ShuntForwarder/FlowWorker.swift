import CShunt
import ShuntBPF
import ShuntCore
import ShuntPipeline
import ShuntRing
import ShuntSystem
import Synchronization

/// Counters of one worker's flow path: one writer (the worker), relaxed loads by readers.
final class FlowPathCounters: @unchecked Sendable {
    enum Field: Int, CaseIterable {
        /// Packets that went through the Swift flow path (all of them on the afpacket datapath;
        /// those the kernel passed up on the XDP datapath).
        case packets
        /// Of those, found in the worker's exact-match cache.
        case exactMatchHits
        /// Pipeline translations (exact-match cache misses).
        case translations
        /// Time spent translating.
        case translationNs
        /// Times the exact-match cache was invalidated by a flow or MAC-table change.
        case invalidations
        /// Entries of the exact-match cache valid now (a level, not a count).
        case cacheEntries
        /// XDP datapath: packets kept in the slow path because their checksum was left to
        /// offload (the fast path could not complete it).
        case checksumPending
        /// Time spent setting flows up: translation, and on the XDP datapath the kernel install
        /// (the sum of the setup-time histogram).
        case setupNs
    }

    /// Upper bounds of the flow setup-time histogram's buckets, in nanoseconds; one more bucket
    /// counts what is above the last.
    static let setupBucketBoundsNs: [UInt64] = [5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
                                                 1_000_000, 2_500_000, 10_000_000]

    private let block = CounterBlock(rows: 1, columns: Field.allCases.count)
    /// Setups per bucket of `setupBucketBoundsNs` (not cumulative).
    private let setupBuckets = CounterBlock(rows: 1, columns: setupBucketBoundsNs.count + 1)

    func recordSetup(ns: UInt64) {
        var b = 0
        while b < Self.setupBucketBoundsNs.count && ns > Self.setupBucketBoundsNs[b] { b += 1 }
        setupBuckets.add(0, b, 1)
        add(.setupNs, ns)
    }

    /// Setups per bucket (the last one: above every bound).
    func setupHistogram() -> [UInt64] { (0...Self.setupBucketBoundsNs.count).map { setupBuckets.value(0, $0) } }

    @inline(__always) func add(_ f: Field, _ n: UInt64 = 1) { block.add(0, f.rawValue, n) }

    @inline(__always) func set(_ f: Field, _ v: UInt64) { block.set(0, f.rawValue, v) }

    func read(_ f: Field) -> UInt64 { block.value(0, f.rawValue) }
}

/// The flow-table engine: each received frame's key is looked up in the worker's exact-match
/// cache; a miss runs the OpenFlow pipeline (and, on the XDP datapath, installs the result in
/// the kernel cache so the rest of the flow stays there); then the frame's flat action list is
/// executed, each output being one copy into that port's TX ring with the edits so far.
final class FlowWorker: WorkerLoop, @unchecked Sendable {
    let index: Int
    let ports: [RingPort]
    let counters: WorkerCounters
    let flowCounters = FlowPathCounters()
    let idle: IdlePolicy
    let datapath: FlowDatapath
    let installsInKernel: Bool
    let emc: ExactMatchCache
    /// VXLAN tunnel ports (numbered after the interfaces), nil when there are none.
    let tunnels: TunnelRuntime?
    /// Port mirroring (FlowWorker+Mirror.swift).
    let mirrors: MirrorWorkerState
    /// The IPv4 identification of outer headers without DF (with DF it is 0): one counter for
    /// forwarded and remote-mirror copies, which leave with the same addresses and protocol
    /// (FlowWorker+Encapsulation.swift). Worker i starts 1024 * i further on, so that workers
    /// sending to one VTEP do not hand out the same values side by side (64 workers at most).
    var outerIdentification: UInt16
    private var walkerDrops: WalkerDropAccounting
    private var pipeline: Pipeline
    private var pipelineGeneration: UInt64
    private var macChanges: UInt64
    /// The exact-match cache generation: moves with the pipeline and the MAC table.
    private var cacheGeneration: UInt64 = 1
    private var normal: LearningNormalSwitch
    /// The burst being forwarded: keys, lookups, compacted misses.
    private let flows = FlowBatch()
    /// Translations too long for the exact-match cache are executed from here.
    private let scratch: UnsafeMutablePointer<shunt_dp_action>
    private let scratchCapacity = 1024
    /// Re-translate NORMAL results this often (refreshes MAC learning of cached flows).
    private let normalRefreshMs: UInt64 = 1000
    /// `shunt ctl dump-cache` asks the worker for a copy of its cache (the worker owns it).
    private let dumpRequested = StopFlag()
    /// Rings for ports that were reopened (an interface deleted and created again), waiting
    /// for this worker to adopt them at its next pass.
    /// Guarded by `replacementsLock` (RingPort is not Sendable, so not a Mutex's value).
    private var replacements: [(port: Int, ring: RingPort)] = []
    private let replacementsLock = Mutex(())
    private let replacementsPending = StopFlag()
    private let dumpResult = Mutex<[ExactMatchCache.Entry]?>(nil)

    init(index: Int, ports: [RingPort], datapath: FlowDatapath, idle: IdlePolicy, tunnels: TunnelRuntime? = nil) {
        self.index = index
        self.ports = ports
        self.idle = idle
        self.datapath = datapath
        self.tunnels = tunnels
        installsInKernel = datapath.kernel != nil
        counters = WorkerCounters(portCount: ports.count + (tunnels?.tunnels.count ?? 0))
        walkerDrops = WalkerDropAccounting(portCount: ports.count)
        emc = ExactMatchCache(capacity: datapath.config.exactMatchCacheSize)
        (pipeline, pipelineGeneration) = datapath.currentPipeline()
        macChanges = datapath.macTable.changeCount
        normal = LearningNormalSwitch(table: datapath.macTable, nowMs: 0)
        mirrors = MirrorWorkerState(registry: datapath.mirrors)
        scratch = .allocate(capacity: scratchCapacity)
        scratch.initialize(repeating: shunt_dp_action(), count: scratchCapacity)
        outerIdentification = UInt16(truncatingIfNeeded: index << 10)
    }

    deinit { scratch.deallocate() }

    func run(stop: StopFlag) {
        var batch = PacketBatch(capacity: maxBurst)
        if index == 0 { resolveTunnelsAtStart() }
        runPollLoop(ports: ports, idle: idle, stop: stop) { pass(&batch) }
    }

    /// One round over every port; returns the frames taken from the RX rings.
    @inline(__always)
    func pass(_ batch: inout PacketBatch) -> Int {
        refreshGeneration()
        if dumpRequested.isSet { answerDump() }
        if replacementsPending.isSet { adoptReplacements() }
        if index == 0, let tunnels, tunnels.refreshWanted.load(ordering: .relaxed) != 0 { refreshStaleNeighbours(tunnels) }
        var moved = 0
        let nowMs = Sys.monotonicNanoseconds() / 1_000_000
        for p in 0..<ports.count {
            let port = ports[p]
            let n = port.rx.fill(&batch, port: UInt16(p))
            walkerDrops.account(p, port, counters)
            if n > 0 {
                var rxBytes: UInt64 = 0
                flows.removeAll()
                for i in 0..<n {
                    let packet = batch.packet(i)
                    rxBytes &+= UInt64(packet.outputLength)
                    classify(packet, inPort: p, nowMs: nowMs)
                }
                forwardBurst(nowMs: nowMs)
                counters.add(p, .rxPackets, UInt64(n))
                counters.add(p, .rxBytes, rxBytes)
                flowCounters.add(.packets, UInt64(n))
                moved += n
            }
            port.rx.releaseConsumed()
            batch.removeAll()
        }
        flushTransmitRings(ports, counters)
        return moved
    }

    /// Picks up a new pipeline or MAC-table state: every cached translation becomes stale.
    @inline(__always)
    private func refreshGeneration() {
        let g = datapath.generation
        let m = datapath.macTable.changeCount
        // New mirror sessions change which flows the kernel may keep (and their cached flags).
        let mirrorsMoved = mirrors.refresh(datapath.mirrors)
        guard g != pipelineGeneration || m != macChanges || mirrorsMoved else { return }
        if g != pipelineGeneration {
            (pipeline, pipelineGeneration) = datapath.currentPipeline()
        }
        macChanges = m
        cacheGeneration &+= 1
        flowCounters.set(.cacheEntries, 0)
        flowCounters.add(.invalidations)
    }

    /// Hands this worker a new ring for port `port` (any thread); the worker adopts it at its
    /// next pass (within its poll timeout), and the old ring is closed then.
    func offerReplacement(port: Int, ring: RingPort) {
        replacementsLock.withLock { _ in replacements.append((port, ring)) }
        replacementsPending.set()
    }

    /// Whether rings offered to this worker are not adopted yet.
    var hasPendingReplacements: Bool { replacementsPending.isSet }

    @inline(never)
    private func adoptReplacements() {
        var taken: [(port: Int, ring: RingPort)] = []
        replacementsLock.withLock { _ in swap(&taken, &replacements) }
        for r in taken where r.port < ports.count {
            ports[r.port].adopt(r.ring)  // r.ring now holds the old socket and rings
        }
        taken.removeAll()  // closes the old sockets and rings
        replacementsLock.withLock { _ in if replacements.isEmpty { replacementsPending.clear() } }
    }

    @inline(never)
    private func answerDump() {
        let entries = emc.entries(generation: cacheGeneration)
        dumpResult.withLock { $0 = entries }
        dumpRequested.clear()
    }

    /// A copy of the worker's exact-match cache, or nil if the worker did not answer in time.
    func dumpCache(timeoutMs: UInt64 = 1000) -> [ExactMatchCache.Entry]? {
        dumpResult.withLock { $0 = nil }
        dumpRequested.set()
        let deadline = Sys.monotonicNanoseconds() + timeoutMs * 1_000_000
        while Sys.monotonicNanoseconds() < deadline {
            if let r = dumpResult.withLock({ $0 }) { return r }
            Sys.sleep(nanoseconds: 2_000_000)
        }
        return nil
    }

    /// First pass over a received frame: what the underlay's tunnels consume (VXLAN of a local
    /// VTEP is decapsulated, ARP and echo for the VTEPs answered, bad tunnel frames dropped) is
    /// handled here; every frame to forward goes into `flows` with its key.
    @inline(__always)
    private func classify(_ packet: PacketDescriptor, inPort p: Int, nowMs: UInt64) {
        guard packet.capturedLength >= 14 else {
            counters.addRxDrop(p, .runt)
            return
        }
        // An underlay port: VXLAN and ARP for the local VTEPs are the tunnels'; the rest is an
        // ordinary frame of the port. A tag the kernel stripped means a VLAN the tunnels are not on.
        if let tunnels, let classifier = tunnels.classifiers[p], !packet.flags.contains(.hasVLANTag) {
            switch classifier.classify(UnsafeRawPointer(packet.data), length: Int(packet.capturedLength)) {
            case .pass:
                break
            case .drop(let reason):
                counters.addRxDrop(p, reason)
                return
            case .arp(let message):
                counters.add(p, .rxLocal, 1)
                answerARP(message, underlay: p, classifier: classifier, tunnels: tunnels, nowMs: nowMs)
                return
            case .echoRequest:
                counters.add(p, .rxLocal, 1)
                answerEcho(packet, on: p, mac: tunnels.interfaceMACs[p])
                return
            case .decapsulate(let t, let vni, let offset, let length):
                counters.add(p, .rxDecapsulated, 1)
                let tp = tunnels.tunnelIndex(underlay: p, classifierIndex: t) + tunnels.firstPortIndex
                // A frame a local stack sent with checksum offload may have left the inner L4
                // checksum to complete; recomputing it on output is right either way.
                let inner = PacketDescriptor(data: packet.data + offset, capturedLength: UInt32(length),
                                             wireLength: UInt32(length),
                                             flags: packet.flags.intersection(.checksumNotReady), inPort: UInt16(tp))
                counters.add(tp, .rxPackets, 1)
                counters.add(tp, .rxBytes, UInt64(length))
                guard length >= 14 else {
                    counters.addRxDrop(tp, .runt)
                    return
                }
                stage(inner, inPort: tp, tunnelID: UInt64(vni))
                return
            }
        }
        stage(packet, inPort: p, tunnelID: 0)
    }

    /// ARP to or from a VTEP on underlay port `p`: learn the remote's MAC, answer for a local address.
    @inline(never)
    private func answerARP(_ m: ARPMessage, underlay p: Int, classifier: UnderlayClassifier, tunnels: TunnelRuntime,
                           nowMs: UInt64) {
        if classifier.isRemote(m.senderIP) && !m.senderMAC.isMulticast {
            tunnels.neighbours.confirm(m.senderIP, mac: m.senderMAC, nowMs: nowMs)
        }
        if m.operation == .request && classifier.isLocal(m.targetIP) && m.senderIP != m.targetIP {
            sendARP(m.reply(from: tunnels.interfaceMACs[p]), on: p)
        }
    }

    @inline(never)
    private func answerEcho(_ request: PacketDescriptor, on p: Int, mac: MACAddress) {
        guard let frame = ports[p].claimTransmitFrame() else {
            counters.addTxDrop(p, .txRingFull)
            return
        }
        let n = ICMPEcho.writeReply(to: UnsafeRawPointer(request.data), from: mac, into: frame,
                                    capacity: ports[p].maxTransmitLength)
        guard n > 0 else {
            counters.addTxDrop(p, .tooLarge)
            return
        }
        ports[p].tx.commit(length: n)
        counters.add(p, .txLocal, 1)
    }

    /// ICMP fragmentation needed for a packet a tunnel could not carry (counted as tx_local).
    @inline(never)
    private func answerTooBig(_ packet: PacketDescriptor, on p: Int, mtu: Int) {
        guard let frame = ports[p].claimTransmitFrame() else {
            counters.addTxDrop(p, .txRingFull)
            return
        }
        let n = ICMPFragmentationNeeded.write(replyTo: UnsafeRawPointer(packet.data), length: Int(packet.capturedLength),
                                              mtu: mtu, into: frame, capacity: ports[p].maxTransmitLength)
        guard n > 0 else { return }  // none due: the claimed frame stays free
        ports[p].tx.commit(length: n)
        counters.add(p, .txLocal, 1)
    }

    func sendARP(_ m: ARPMessage, on p: Int) {
        guard let frame = ports[p].claimTransmitFrame() else {
            counters.addTxDrop(p, .txRingFull)
            return
        }
        m.write(to: frame)
        ports[p].tx.commit(length: ARPMessage.frameLength)
        counters.add(p, .txLocal, 1)
    }

    /// Extracts the key of a frame to forward (as received, or as decapsulated from a tunnel;
    /// `p` is an interface, or a tunnel port after them) into the burst.
    @inline(__always)
    private func stage(_ packet: PacketDescriptor, inPort p: Int, tunnelID: UInt64) {
        var key = FlowKey()
        let wellFormed = FlowKeyExtractor.extract(
            frame: packet.data, length: Int(packet.capturedLength), inPort: UInt32(p + 1),
            strippedVLANTCI: packet.flags.contains(.hasVLANTag) ? packet.vlanTCI : nil, into: &key)
        key.tunID = tunnelID
        // A local stack left the checksum to offload (CHECKSUM_PARTIAL). Only the slow path can
        // complete it: XDP does not see that state and would send the frame as it is. So such a
        // flow is not installed in the kernel, and its packets stay here.
        // Only TCP, UDP and SCTP checksums are ever left to offload: on anything else (ICMP, ARP)
        // the mark concerns a header that is gone, e.g. the outer UDP of a decapsulated frame.
        let checksumPending = packet.flags.contains(.checksumNotReady)
            && (key.dlType == 0x0800 || key.dlType == 0x86DD) && (key.nwProto == 6 || key.nwProto == 17 || key.nwProto == 132)
        if installsInKernel && checksumPending { flowCounters.add(.checksumPending) }
        // Decapsulated frames too: the fast path decapsulates and looks up the inner key.
        flows.append(packet, inPort: p, key: key, installable: installsInKernel && wellFormed && !checksumPending)
    }

    /// Second and third passes over the burst: exact-match lookups, hits forwarded at once (no
    /// insert happens before they run, so their cache slots stay theirs), then each distinct
    /// missing flow translated once and its frames forwarded. A flow's frames keep their order;
    /// missed flows go after the hits of the burst, as in OVS.
    @inline(__always)
    private func forwardBurst(nowMs: UInt64) {
        for i in 0..<flows.count {
            if let slot = emc.lookup(flows.keys[i], hash: flows.hashes[i], generation: cacheGeneration),
               !(emc.flags(slot).contains(.usedNormal) && nowMs &- emc.translatedMs(slot) >= normalRefreshMs) {
                forwardHit(i, slot: slot, nowMs: nowMs)
            } else {
                flows.addMiss(i)
            }
        }
        if flows.missedFlowCount > 0 { forwardMisses(nowMs: nowMs) }
    }

    @inline(__always)
    private func forwardHit(_ i: Int, slot: Int, nowMs: UInt64) {
        let packet = flows.packets[i], p = flows.inPorts[i]
        let key = flows.keys[i], hash = flows.hashes[i]
        if mirrors.active { mirrorIngress(packet, inPort: p, key: key, hash: hash, nowMs: nowMs) }
        let bytes = UInt64(packet.outputLength)
        flowCounters.add(.exactMatchHits)
        emc.recordHit(slot, bytes: bytes, nowMs: nowMs)
        // On the XDP datapath a packet of a flow the kernel can execute reaches here only if
        // it was in flight during the install, or the kernel entry expired or was refused.
        let f = emc.flags(slot)
        if flows.installable[i] && (!f.contains(.inKernel) || f.contains(.kernelExecutable))
            && emc.takeRetry(slot, nowMs: nowMs) {
            retryInstall(slot: slot)
        }
        for r in 0..<emc.ruleCount(slot) {
            datapath.ruleCounters.add(row: index, rule: emc.ruleID(slot, r), bytes: bytes)
        }
        let n = emc.actionCount(slot)
        let reason = emc.dropReason(slot)
        emc.withActions(slot) {
            execute($0, count: n, dropReason: reason, packet: packet, inPort: p, key: key, hash: hash, nowMs: nowMs)
        }
    }

    /// The misses of the burst: one translation (an upcall) per distinct key, then that key's
    /// frames forwarded from the cache slot it went into, before the next insert can reuse it.
    @inline(never)
    private func forwardMisses(nowMs: UInt64) {
        for f in 0..<flows.missedFlowCount {
            var i = flows.missedFlows[f]
            let (slot, translation) = translateMiss(i, nowMs: nowMs)
            let actionCount: Int
            if slot == nil {
                actionCount = min(translation.actions.count, scratchCapacity)
                for a in 0..<actionCount { scratch[a] = translation.actions[a].abi }
            } else {
                actionCount = 0
            }
            while i >= 0 {
                let packet = flows.packets[i], p = flows.inPorts[i]
                let key = flows.keys[i], hash = flows.hashes[i]
                if mirrors.active { mirrorIngress(packet, inPort: p, key: key, hash: hash, nowMs: nowMs) }
                let bytes = UInt64(packet.outputLength)
                for id in translation.ruleIDs {
                    datapath.ruleCounters.add(row: index, rule: id, bytes: bytes)
                }
                if let slot {
                    emc.recordHit(slot, bytes: bytes, nowMs: nowMs)
                    let n = emc.actionCount(slot)
                    emc.withActions(slot) {
                        execute($0, count: n, dropReason: translation.dropReason, packet: packet, inPort: p, key: key,
                                hash: hash, nowMs: nowMs)
                    }
                } else {
                    execute(UnsafePointer(scratch), count: actionCount, dropReason: translation.dropReason, packet: packet,
                            inPort: p, key: key, hash: hash, nowMs: nowMs)
                }
                i = flows.nextOfFlow[i]
            }
        }
    }

    /// Runs the pipeline for frame `i`'s key, offers the result to the kernel cache (XDP
    /// datapath), and stores it in the exact-match cache; the slot is nil when the translation
    /// does not fit there.
    private func translateMiss(_ i: Int, nowMs: UInt64) -> (slot: Int?, translation: Translation) {
        let key = flows.keys[i]
        let t0 = Sys.monotonicNanoseconds()
        normal.nowMs = nowMs
        let translation = pipeline.translate(key, normal: &normal)
        let translateNs = Sys.monotonicNanoseconds() &- t0
        flowCounters.add(.translations)
        flowCounters.add(.translationNs, translateNs)
        var flags: ExactMatchCache.Flags = translation.usedNormal ? [.usedNormal] : []
        // The kernel passes malformed frames up without a lookup: no entry for their keys.
        if flows.installable[i], let kernel = datapath.kernel {
            let plan = kernel.plan(key, translation, mirrors: mirrors.active ? mirrors.table : nil, basis: basis)
            // A flow whose copies the kernel cannot make stays in the slow path, which makes them.
            if plan.kernelExecutes { flags.insert(.kernelExecutable) }
            switch datapath.install(plan, translateNs: translateNs) {
            case .installed, .alreadyInstalled: flags.insert(.inKernel)
            // Counted as lost upcalls by the datapath; a stale one is simply not installed.
            case .overBudget, .cacheFull, .failed, .stale: break
            }
        }
        flowCounters.recordSetup(ns: Sys.monotonicNanoseconds() &- t0)
        let slot = emc.insert(key, hash: flows.hashes[i], generation: cacheGeneration, nowMs: nowMs,
                              actions: translation.actions, ruleIDs: translation.ruleIDs,
                              dropReason: translation.dropReason, flags: flags)
        flowCounters.set(.cacheEntries, UInt64(emc.liveEntries))
        return (slot, translation)
    }

    /// A cached flow that could not be installed earlier (over budget): try again.
    private func retryInstall(slot: Int) {
        guard let kernel = datapath.kernel else { return }
        let key = emc.key(slot)
        var actions: [DatapathAction] = []
        for i in 0..<emc.actionCount(slot) {
            if let a = DatapathAction(abi: emc.action(slot, i)) { actions.append(a) }
        }
        let translation = Translation(actions: actions, dropReason: emc.dropReason(slot), dependencies: FlowKey(),
                                      ruleIDs: (0..<emc.ruleCount(slot)).map { emc.ruleID(slot, $0) },
                                      usedNormal: emc.flags(slot).contains(.usedNormal))
        let plan = kernel.plan(key, translation, mirrors: mirrors.active ? mirrors.table : nil, basis: basis)
        switch datapath.install(plan, translateNs: 0) {
        case .installed, .alreadyInstalled: emc.setFlags(slot, emc.flags(slot).union(.inKernel))
        case .overBudget, .cacheFull, .failed, .stale: break
        }
    }

    /// The state this worker's translations come from.
    private var basis: TranslationBasis {
        TranslationBasis(flows: pipelineGeneration, macChanges: macChanges, mirrors: mirrors.generation)
    }

    /// Executes a flat action list on one received frame.
    @inline(__always)
    private func execute(_ actions: UnsafePointer<shunt_dp_action>, count: Int, dropReason: DropReason?,
                         packet: PacketDescriptor, inPort p: Int, key: FlowKey, hash: UInt64, nowMs: UInt64) {
        var edits = FrameEdits()
        // A decapsulated packet keeps its VNI for `vni=flow` outputs unless set_tunnel changes it (as OVS).
        edits.tunnelID = key.tunID
        var outputs = 0
        var reason = dropReason ?? .flowDrop
        for i in 0..<count {
            let a = actions[i]
            switch UInt32(a.kind) {
            case SHUNT_DPA_OUTPUT.rawValue:
                let out = Int(a.port) - 1
                if out >= 0 && out < ports.count {
                    emit(packet, edits: edits, to: out)
                    outputs += 1
                } else if let tunnels, out >= ports.count && out - ports.count < tunnels.tunnels.count {
                    emitEncapsulated(packet, edits: edits, tunnel: out - ports.count, tunnels: tunnels, hash: hash, inPort: p,
                                     nowMs: nowMs)
                    outputs += 1
                } else {
                    reason = .noOutput
                }
            case SHUNT_DPA_SET_ETH_SRC.rawValue:
                edits.ethSrc = withUnsafeBytes(of: a.mac) { MACAddress(loading: $0.baseAddress!) }
            case SHUNT_DPA_SET_ETH_DST.rawValue:
                edits.ethDst = withUnsafeBytes(of: a.mac) { MACAddress(loading: $0.baseAddress!) }
            case SHUNT_DPA_SET_VLAN.rawValue:
                // After a pop, a new 802.1Q tag (PCP 0), as the pipeline and the fast path do.
                switch edits.vlan {
                case .pop, .push: edits.vlan = .push(a.vid)
                case .keep, .set: edits.vlan = .set(a.vid)
                }
            case SHUNT_DPA_POP_VLAN.rawValue:
                edits.vlan = .pop
            case SHUNT_DPA_DEC_TTL.rawValue:
                if let ttl = FrameRewrite.ttl(of: packet) {
                    if Int(ttl) <= Int(edits.ttlDecrements) + 1 {
                        if outputs == 0 { counters.addRxDrop(p, .ttlExpired) }
                        return
                    }
                    edits.ttlDecrements += 1
                }
            case SHUNT_DPA_SET_TUNNEL.rawValue:
                edits.tunnelID = a.tun_id
            default:
                break
            }
        }
        if outputs == 0 { counters.addRxDrop(p, reason) }
    }

    /// One copy out of tunnel port `t`: the frame with its edits behind a VXLAN header, on the
    /// underlay port's TX ring. Drops count against the tunnel port's tx.
    @inline(__always)
    private func emitEncapsulated(_ packet: PacketDescriptor, edits: FrameEdits, tunnel t: Int, tunnels: TunnelRuntime,
                                  hash: UInt64, inPort p: Int, nowMs: UInt64) {
        let tp = tunnels.firstPortIndex + t
        switch encapsulate(.rewritten(packet, edits), tunnel: t, tunnels: tunnels, tunnelID: edits.tunnelID, hash: hash,
                           nowMs: nowMs) {
        case .sent(let inner, let length):
            if mirrors.active { mirrorEgress(inner, length: length, outPort: tp) }
            counters.add(tp, .txPackets, 1)
            counters.add(tp, .txBytes, UInt64(length))
            counters.add(Int(tunnels.tunnels[t].underlayPort) - 1, .txEncapsulated, 1)
        case .noNeighbour:
            counters.addTxDrop(tp, .tunnelNoNeighbour)
        case .txRingFull:
            counters.addTxDrop(tp, .txRingFull)
        case .tooLarge:
            counters.addTxDrop(tp, .tunnelMTU)
            // An IPv4 sender with DF learns the path MTU (inner IP packets up to the underlay's
            // MTU - 50), as from Linux's bridged vxlan. Only towards an interface port.
            if p < ports.count && !packet.flags.contains(.hasVLANTag) {
                answerTooBig(packet, on: p, mtu: tunnels.underlayMTUs[t] - VXLAN.overhead)
            }
        }
    }

    @inline(__always)
    private func emit(_ packet: PacketDescriptor, edits: FrameEdits, to out: Int) {
        let port = ports[out]
        guard let frame = port.claimTransmitFrame() else {
            counters.addTxDrop(out, .txRingFull)
            return
        }
        let written = FrameRewrite.write(packet, edits: edits, to: frame, capacity: port.maxTransmitLength)
        guard written > 0 else {
            counters.addTxDrop(out, .tooLarge)
            return
        }
        port.tx.commit(length: written)
        if mirrors.active { mirrorEgress(frame, length: written, outPort: out) }
        counters.add(out, .txPackets, 1)
        counters.add(out, .txBytes, UInt64(written))
    }
}
