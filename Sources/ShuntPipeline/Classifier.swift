import ShuntCore

// Flow tables and the tuple-space classifier.
//
// FlowTables is the control plane's editable value: rules keyed by (table, priority, match), so
// add-flow replaces an identical rule and strict del-flows is one lookup. It knows nothing about
// lookups. A Pipeline snapshot compiles it into a Classifier, rebuilt whole (O(rules)) at each
// publication; the control plane batches edits (a flow file is one snapshot).
//
// The Classifier is tuple-space search, as OVS's classifier and dpcls: per table, one hash table
// ("subtable") per distinct mask, mapping the masked key to the best rule of that exact match.
// Subtables are sorted by the highest priority they hold, so a lookup stops as soon as the match
// found so far outranks every remaining subtable, and a lookup costs one hash probe per subtable
// visited, whatever the number of rules. All subtables' slots live in two flat arrays, so a
// lookup allocates nothing.
//
// Ties: two rules of equal priority in different subtables that both match a packet are
// resolved in subtable order (priority, then the mask's words compared as unsigned integers), so
// the result depends only on the rule set, never on insertion order or hashing. Rules with the
// same table, priority and match are one rule (add-flow replaces).

/// A rule as installed, with the counter slot the datapaths credit its packets and bytes to.
public struct FlowEntry: Hashable, Sendable {
    /// Below `FlowTables.maxRules`, so the datapaths can index a fixed counter array with it.
    public let id: UInt32
    public let rule: FlowRule

    public init(id: UInt32, rule: FlowRule) {
        self.id = id
        self.rule = rule
    }
}

public enum FlowTableError: Error, Equatable, Sendable, CustomStringConvertible {
    case full(maxRules: Int)
    case groupExists(UInt32)
    case noSuchGroup(UInt32)
    case groupLoop(UInt32)

    public var description: String {
        switch self {
        case .full(let maxRules): "the flow tables are full (\(maxRules) rules and group counters): delete flows or groups first"
        case .groupExists(let id): "group \(id) exists already (replace it with mod-group)"
        case .noSuchGroup(let id): "group \(id) does not exist (add it first with add-group)"
        case .groupLoop(let id): "group \(id) would reach itself through its buckets' group actions"
        }
    }
}

/// A group in the tables, with the ids of its counters (shared with the rules' id space, so the
/// datapaths credit groups and buckets as they credit rules).
public struct GroupEntry: Sendable, Hashable {
    public let group: FlowGroup
    /// The group's counter, then one per bucket in order.
    public let counterIDs: [UInt32]
}

/// The tables as a value, so the control plane edits a copy and publishes it as a `Pipeline`.
public struct FlowTables: Sendable {
    private struct Identity: Hashable {
        var bridge: UInt16
        var table: UInt8
        var priority: UInt16
        var match: FlowMatch
    }

    /// How many rules may be live at once (the size of the datapaths' counter arrays).
    public let maxRules: Int
    /// Counts the edits that changed something, so a snapshot tells which state it shows.
    public private(set) var generation: UInt64 = 0

    private var byIdentity: [Identity: FlowEntry] = [:]
    private var identityByID: [UInt32: Identity] = [:]
    private var nextFreshID: UInt32 = 0
    private var freedIDs: [UInt32] = []
    private var freedHead = 0

    public init(maxRules: Int = 65536) {
        precondition(maxRules >= 1 && maxRules <= Int(Int32.max), "maxRules must be in 1...\(Int32.max)")
        self.maxRules = maxRules
    }

    public var count: Int { byIdentity.count }
    public var isEmpty: Bool { byIdentity.isEmpty }

    private var groupsByKey: [UInt64: GroupEntry] = [:]

    @inline(__always) static func groupKey(bridge: UInt16, id: UInt32) -> UInt64 { UInt64(bridge) << 32 | UInt64(id) }

    /// The groups of every bridge, by bridge then id.
    public var groups: [GroupEntry] {
        groupsByKey.values.sorted { ($0.group.bridge, $0.group.id) < ($1.group.bridge, $1.group.id) }
    }

    public func group(bridge: UInt16, id: UInt32) -> GroupEntry? { groupsByKey[Self.groupKey(bridge: bridge, id: id)] }

    /// `add-group` (`replace` false: the id must be free) or `mod-group` (`replace` true: it
    /// must exist). Every group its buckets name must exist, and none may lead back to it.
    /// Returns the group's counter ids (all fresh: the caller zeroes them).
    @discardableResult
    public mutating func addGroup(_ group: FlowGroup, replace: Bool) throws(FlowTableError) -> [UInt32] {
        let key = Self.groupKey(bridge: group.bridge, id: group.id)
        let old = groupsByKey[key]
        if replace && old == nil { throw .noSuchGroup(group.id) }
        if !replace && old != nil { throw .groupExists(group.id) }
        for bucket in group.buckets {
            for case .group(let next) in bucket.actions {
                if next == group.id || reaches(from: next, to: group.id, bridge: group.bridge) { throw .groupLoop(group.id) }
                if groupsByKey[Self.groupKey(bridge: group.bridge, id: next)] == nil { throw .noSuchGroup(next) }
            }
        }
        var ids: [UInt32] = []
        for _ in 0...group.buckets.count {
            guard let id = allocateID() else {
                freedIDs.append(contentsOf: ids)
                throw .full(maxRules: maxRules)
            }
            ids.append(id)
        }
        if let old { freedIDs.append(contentsOf: old.counterIDs) }
        groupsByKey[key] = GroupEntry(group: group, counterIDs: ids)
        generation += 1
        return ids
    }

    /// Whether group `from`'s buckets lead to group `to` (through group actions).
    private func reaches(from: UInt32, to: UInt32, bridge: UInt16) -> Bool {
        var seen: Set<UInt32> = []
        var todo = [from]
        while let g = todo.popLast() {
            guard seen.insert(g).inserted, let entry = groupsByKey[Self.groupKey(bridge: bridge, id: g)] else { continue }
            for bucket in entry.group.buckets {
                for case .group(let next) in bucket.actions {
                    if next == to { return true }
                    todo.append(next)
                }
            }
        }
        return false
    }

    /// `del-groups [group_id=N]`: the group (or every group of the bridge) and, as in OVS, the
    /// flows whose actions use a deleted group. Returns the groups and the flows removed.
    @discardableResult
    public mutating func deleteGroups(bridge: UInt16, id: UInt32?) -> (groups: [GroupEntry], flows: [FlowEntry]) {
        let doomed = groupsByKey.values.filter { $0.group.bridge == bridge && (id == nil || $0.group.id == id) }
        guard !doomed.isEmpty else { return ([], []) }
        var ids = Set(doomed.map(\.group.id))
        // Groups whose buckets use a deleted group go too (their actions would dangle).
        var grew = true
        while grew {
            grew = false
            for e in groupsByKey.values where e.group.bridge == bridge && !ids.contains(e.group.id) {
                if e.group.buckets.contains(where: { $0.actions.contains { if case .group(let g) = $0 { ids.contains(g) } else { false } } }) {
                    ids.insert(e.group.id)
                    grew = true
                }
            }
        }
        let removedGroups = groupsByKey.values.filter { $0.group.bridge == bridge && ids.contains($0.group.id) }
        for e in removedGroups {
            groupsByKey[Self.groupKey(bridge: bridge, id: e.group.id)] = nil
            freedIDs.append(contentsOf: e.counterIDs)
        }
        let flows = byIdentity.values.filter { entry in
            entry.rule.bridge == bridge
                && entry.rule.actions.contains { if case .group(let g) = $0 { ids.contains(g) } else { false } }
        }
        remove(flows)
        generation += 1
        return (removedGroups.sorted { $0.group.id < $1.group.id }, Self.dumpOrder(flows))
    }

    /// Installs or replaces (same table, priority, match: same id); the caller zeroes the id's counters.
    @discardableResult
    public mutating func add(_ rule: FlowRule) throws(FlowTableError) -> FlowEntry {
        for case .group(let g) in rule.actions where groupsByKey[Self.groupKey(bridge: rule.bridge, id: g)] == nil {
            throw .noSuchGroup(g)
        }
        let identity = Identity(bridge: rule.bridge, table: rule.table, priority: rule.priority, match: rule.match)
        if let old = byIdentity[identity] {
            let entry = FlowEntry(id: old.id, rule: rule)
            byIdentity[identity] = entry
            generation += 1
            return entry
        }
        guard let id = allocateID() else { throw .full(maxRules: maxRules) }
        let entry = FlowEntry(id: id, rule: rule)
        byIdentity[identity] = entry
        identityByID[id] = identity
        generation += 1
        return entry
    }

    /// `ovs-ofctl del-flows [--strict] BRIDGE`; returns the removed rules so their counters can be read out.
    // A nil table means every table. Non-strict: every rule whose match is at least as specific
    // as `match`, at any priority. Strict: exactly this match and priority (nil: the default).
    @discardableResult
    public mutating func delete(bridge: UInt16 = 0, table: UInt8?, match: FlowMatch, strict: Bool,
                                priority: UInt16? = nil) -> [FlowEntry]
    {
        var removed: [FlowEntry] = []
        if strict {
            let priority = priority ?? FlowRule.defaultPriority
            for t in table.map({ $0...$0 }) ?? 0...255 {
                if let entry = byIdentity[Identity(bridge: bridge, table: t, priority: priority, match: match)] {
                    removed.append(entry)
                }
            }
        } else {
            removed = byIdentity.values.filter {
                $0.rule.bridge == bridge && (table == nil || $0.rule.table == table)
                    && $0.rule.match.isAtLeastAsSpecific(as: match)
            }
        }
        guard !removed.isEmpty else { return [] }
        remove(removed)
        generation += 1
        return Self.dumpOrder(removed)
    }

    /// Takes rules out and frees their ids (the caller moves the generation).
    private mutating func remove(_ entries: [FlowEntry]) {
        for entry in entries {
            let rule = entry.rule
            byIdentity[Identity(bridge: rule.bridge, table: rule.table, priority: rule.priority, match: rule.match)] = nil
            identityByID[entry.id] = nil
            freedIDs.append(entry.id)
        }
    }

    /// Every rule in dump-flows order: bridge, table, then priority (highest first), then id.
    public var entries: [FlowEntry] { Self.dumpOrder(Array(byIdentity.values)) }

    public var rules: [FlowRule] { entries.map(\.rule) }

    public func entry(id: UInt32) -> FlowEntry? { identityByID[id].flatMap { byIdentity[$0] } }

    private static func dumpOrder(_ entries: [FlowEntry]) -> [FlowEntry] {
        entries.sorted { a, b in
            if a.rule.bridge != b.rule.bridge { return a.rule.bridge < b.rule.bridge }
            if a.rule.table != b.rule.table { return a.rule.table < b.rule.table }
            if a.rule.priority != b.rule.priority { return a.rule.priority > b.rule.priority }
            return a.id < b.id
        }
    }

    // Fresh ids first, then the oldest freed one, so a slot is reused as late as possible
    // (snapshots and cache entries still in flight may credit an id for a while).
    private mutating func allocateID() -> UInt32? {
        if Int(nextFreshID) < maxRules {
            defer { nextFreshID += 1 }
            return nextFreshID
        }
        guard freedHead < freedIDs.count else { return nil }
        let id = freedIDs[freedHead]
        freedHead += 1
        if freedHead >= 64 && freedHead * 2 >= freedIDs.count {
            freedIDs.removeFirst(freedHead)
            freedHead = 0
        }
        return id
    }
}

/// What one classifier lookup found and what it looked at, for tests and diagnostics.
public struct ClassifierLookup: Equatable, Sendable {
    public var ruleID: UInt32?
    public var priority: UInt16?
    /// The union of the masks of the subtables probed.
    public var dependencies: FlowKey
    /// Hash tables probed: the cost of the lookup.
    public var subtablesProbed: Int
}

/// The compiled, read-only lookup structure of one Pipeline snapshot (see the top of this file).
struct Classifier: Sendable {
    struct Subtable: Sendable {
        let mask: FlowKey
        let maxPriority: UInt16
        let slotBase: Int
        let slotMask: Int
    }

    struct Rule: Sendable {
        let id: UInt32
        let priority: UInt16
        let actions: [FlowAction]
    }

    let rules: [Rule]
    let subtables: [Subtable]
    /// Table t of bridge b (index b << 8 | t) has the subtables
    /// `subtables[tableBounds[index]..<tableBounds[index + 1]]`.
    let tableBounds: [Int]
    /// Open addressing with linear probing, at most half full; a slot rule of -1 is empty.
    let slotKeys: [FlowKey]
    let slotRules: [Int32]

    /// The table index of table `table` of bridge `bridge`.
    @inline(__always) static func index(bridge: Int, table: UInt8) -> Int { bridge << 8 | Int(table) }

    init(_ entries: [FlowEntry], bridgeCount: Int = 1) {
        precondition(entries.count < Int(Int32.max))
        let bridgeCount = max(bridgeCount, Int(entries.map(\.rule.bridge).max() ?? 0) + 1)
        var rules: [Rule] = []
        rules.reserveCapacity(entries.count)
        var groups: [Int: [FlowKey: [(key: FlowKey, rule: Int)]]] = [:]
        for entry in entries {
            var mask = entry.rule.match.mask
            // A later fragment has no L4 header (tp_src/tp_dst are 0 in its key): a rule on ports
            // must not match it, so it implicitly requires the "later fragment" bit to be clear.
            if mask.tpSrc != 0 || mask.tpDst != 0 { mask.nwFrag |= FlowKey.fragLater }
            groups[Self.index(bridge: Int(entry.rule.bridge), table: entry.rule.table), default: [:]][mask, default: []].append(
                (entry.rule.match.key.masked(by: mask), rules.count))
            rules.append(Rule(id: entry.id, priority: entry.rule.priority, actions: entry.rule.actions))
        }

        var subtables: [Subtable] = []
        var tableBounds = [0]
        var slotKeys: [FlowKey] = []
        var slotRules: [Int32] = []
        for table in 0..<(bridgeCount << 8) {
            defer { tableBounds.append(subtables.count) }
            guard let byMask = groups[table] else { continue }
            let ordered = byMask.map { mask, members in
                (mask: mask, members: members, maxPriority: members.map { rules[$0.rule].priority }.max()!)
            }.sorted { a, b in
                a.maxPriority != b.maxPriority ? a.maxPriority > b.maxPriority : Self.wordsLess(a.mask, b.mask)
            }
            for group in ordered {
                var capacity = 2
                while capacity < group.members.count * 2 { capacity <<= 1 }
                let base = slotKeys.count
                slotKeys.append(contentsOf: repeatElement(FlowKey(), count: capacity))
                slotRules.append(contentsOf: repeatElement(-1, count: capacity))
                for (key, rule) in group.members {
                    var i = Int(truncatingIfNeeded: key.hash64) & (capacity - 1)
                    while true {
                        let held = Int(slotRules[base + i])
                        if held < 0 {
                            slotKeys[base + i] = key
                            slotRules[base + i] = Int32(rule)
                            break
                        }
                        if slotKeys[base + i] == key {
                            // The same match at another priority: only the higher one can win.
                            let (a, b) = (rules[rule], rules[held])
                            if a.priority > b.priority || (a.priority == b.priority && a.id < b.id) {
                                slotRules[base + i] = Int32(rule)
                            }
                            break
                        }
                        i = (i + 1) & (capacity - 1)
                    }
                }
                subtables.append(
                    Subtable(mask: group.mask, maxPriority: group.maxPriority, slotBase: base, slotMask: capacity - 1))
            }
        }
        self.rules = rules
        self.subtables = subtables
        self.tableBounds = tableBounds
        self.slotKeys = slotKeys
        self.slotRules = slotRules
    }

    private static func wordsLess(_ a: FlowKey, _ b: FlowKey) -> Bool {
        for i in 0..<FlowKey.wordCount where a.word(i) != b.word(i) { return a.word(i) < b.word(i) }
        return false
    }

    /// Index in `rules` of the best rule, or -1; ORs the probed masks into `dependencies` for the megaflow.
    func lookup(_ key: FlowKey, table: Int, dependencies: inout FlowKey, probes: inout Int) -> Int {
        var best = -1
        var bestPriority = -1
        guard table + 1 < tableBounds.count else { return -1 }
        var s = tableBounds[table]
        let end = tableBounds[table + 1]
        while s < end {
            let sub = subtables[s]
            if Int(sub.maxPriority) <= bestPriority { break }
            probes += 1
            dependencies = dependencies.union(sub.mask)
            let masked = key.masked(by: sub.mask)
            var i = Int(truncatingIfNeeded: masked.hash64) & sub.slotMask
            while true {
                let rule = Int(slotRules[sub.slotBase + i])
                if rule < 0 { break }
                if slotKeys[sub.slotBase + i] == masked {
                    let priority = Int(rules[rule].priority)
                    if priority > bestPriority {
                        best = rule
                        bestPriority = priority
                    }
                    break
                }
                i = (i + 1) & sub.slotMask
            }
            s += 1
        }
        return best
    }

    func subtableCount(table: Int) -> Int {
        table + 1 < tableBounds.count ? tableBounds[table + 1] - tableBounds[table] : 0
    }
}
