public import GatewayEventLoop
import Synchronization

/// An in-process least-recently-used store bounded by bytes, with O(1) lookup, store, remove and eviction.
///
/// Recency is an intrusive doubly-linked list threaded through a slab of nodes by index (no per-entry
/// allocation beyond the key and value themselves; freed slots are reused), with a dictionary from key
/// to slot. One mutex guards it all; every operation holds it for a constant amount of work, except
/// `store`, which also evicts as many least recently used entries as the new one needs room for.
public final class MemoryLRUStore: CacheStore {
    /// Bookkeeping charged per entry on top of its key and value bytes.
    ///
    /// Counted from the layout on 64-bit Linux rather than measured with an allocator: a slab node is
    /// 72 bytes (key 16, value array reference 8, three UInt64 instants 24, cost 8, two links 16); the
    /// dictionary slot is 24 bytes (key 16, slot index 8) at ≤ 75% load, so ~32; the value's array
    /// header is 32 bytes. That is ~136 bytes before malloc's own rounding and the key's heap copy when it
    /// is longer than 15 UTF-8 bytes (both of which the key/value byte counts partly cover), so 128 is
    /// a fair, slightly generous round figure, not an exact one.
    public static let perEntryOverheadBytes = 128

    public let maxBytes: Int
    private let now: @Sendable () -> UInt64
    private let state: Mutex<LRUList>

    /// - Parameters:
    ///   - maxBytes: the budget for key bytes + value bytes + `perEntryOverheadBytes` per entry; a
    ///     negative budget is treated as zero (nothing is stored).
    ///   - now: monotonic nanoseconds; must be the same clock the entries' instants come from.
    public init(maxBytes: Int, now: @escaping @Sendable () -> UInt64 = monotonicNanoseconds) {
        self.maxBytes = max(0, maxBytes)
        self.now = now
        self.state = Mutex(LRUList())
    }

    /// The entry under `key` unless absent or at/after its `staleUntil` (such an entry is dropped now).
    /// A returned entry becomes the most recently used.
    public func lookup(_ key: String) -> CachedEntry? {
        let instant = now()
        return state.withLock { list in
            guard let slot = list.slotByKey[key] else {
                list.statistics.misses += 1
                return nil
            }
            if instant >= list.nodes[slot].entry.staleUntil {
                list.remove(slot: slot)
                list.statistics.expirations += 1
                list.statistics.misses += 1
                return nil
            }
            list.moveToFront(slot)
            list.statistics.hits += 1
            return list.nodes[slot].entry
        }
    }

    /// Stores `entry` as the most recently used, replacing any entry under `key`, then evicts least recently
    /// used entries until the budget holds. An entry whose cost alone exceeds `maxBytes`, or that is
    /// already past `staleUntil`, is not stored (and the entry it would have replaced is removed).
    public func store(_ key: String, entry: CachedEntry) {
        var entry = entry
        // A value built by appending (a response body read in chunks) can hold up to twice its
        // length in capacity; the budget bounds resident memory only if that slack is not kept.
        if entry.value.capacity - entry.value.count > max(64, entry.value.count / 32) {
            entry.value = Self.compacted(entry.value)
        }
        let cost = Self.cost(key: key, valueCount: entry.value.count)
        let instant = now()
        let maxBytes = self.maxBytes
        state.withLock { list in
            guard cost <= maxBytes, instant < entry.staleUntil else {
                if let slot = list.slotByKey[key] { list.remove(slot: slot) }
                if cost > maxBytes { list.statistics.oversizeRejections += 1 }
                return
            }
            if let slot = list.slotByKey[key] {
                list.bytesInUse += cost - list.nodes[slot].cost
                list.nodes[slot].entry = entry
                list.nodes[slot].cost = cost
                list.moveToFront(slot)
            } else {
                list.insertAtFront(key: key, entry: entry, cost: cost)
            }
            // Terminates before reaching the new entry: it is at the front and fits the budget alone.
            while list.bytesInUse > maxBytes {
                list.remove(slot: list.tail)
                list.statistics.evictions += 1
            }
        }
    }

    public func remove(_ key: String) {
        state.withLock { list in
            if let slot = list.slotByKey[key] { list.remove(slot: slot) }
        }
    }

    /// Drops every entry (a shared store's L1 when it can no longer trust what it holds).
    public func removeAll() {
        state.withLock { list in
            let statistics = list.statistics
            list = LRUList()
            list.statistics = statistics
        }
    }

    public func statistics() -> CacheStoreStatistics {
        state.withLock { list in
            var snapshot = list.statistics
            snapshot.entries = list.slotByKey.count
            snapshot.bytesInUse = list.bytesInUse
            return snapshot
        }
    }

    /// A copy whose capacity is its count (up to malloc's 16-byte rounding).
    static func compacted(_ bytes: [UInt8]) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: bytes.count) { buffer, initialized in
            initialized = buffer.initialize(fromContentsOf: bytes)
        }
    }

    /// Bytes charged for an entry: what `maxBytes` bounds.
    public static func cost(key: String, valueCount: Int) -> Int {
        key.utf8.count + valueCount + perEntryOverheadBytes
    }

    /// Keys from most to least recently used (tests check recency order through this).
    func keysByRecency() -> [String] {
        state.withLock { list in
            var keys: [String] = []
            var slot = list.head
            while slot != LRUList.none {
                keys.append(list.nodes[slot].key)
                slot = list.nodes[slot].next
            }
            return keys
        }
    }
}

/// The slab-backed recency list. `head` is the most recently used slot, `tail` the least.
struct LRUList: ~Copyable {
    static let none = -1

    struct Node {
        var key: String
        var entry: CachedEntry
        var cost: Int
        var previous: Int
        var next: Int
    }

    var nodes: [Node] = []
    var freeSlots: [Int] = []
    var slotByKey: [String: Int] = [:]
    var head = LRUList.none
    var tail = LRUList.none
    var bytesInUse = 0
    var statistics = CacheStoreStatistics()

    mutating func insertAtFront(key: String, entry: CachedEntry, cost: Int) {
        let node = Node(key: key, entry: entry, cost: cost, previous: LRUList.none, next: LRUList.none)
        let slot: Int
        if let reused = freeSlots.popLast() {
            slot = reused
            nodes[slot] = node
        } else {
            slot = nodes.count
            nodes.append(node)
        }
        slotByKey[key] = slot
        bytesInUse += cost
        linkAtFront(slot)
    }

    mutating func remove(slot: Int) {
        unlink(slot)
        slotByKey.removeValue(forKey: nodes[slot].key)
        bytesInUse -= nodes[slot].cost
        // Release the key and value now rather than when the slot is reused.
        nodes[slot].key = ""
        nodes[slot].entry.value = []
        nodes[slot].cost = 0
        freeSlots.append(slot)
    }

    mutating func moveToFront(_ slot: Int) {
        guard slot != head else { return }
        unlink(slot)
        linkAtFront(slot)
    }

    private mutating func linkAtFront(_ slot: Int) {
        nodes[slot].previous = LRUList.none
        nodes[slot].next = head
        if head != LRUList.none { nodes[head].previous = slot }
        head = slot
        if tail == LRUList.none { tail = slot }
    }

    private mutating func unlink(_ slot: Int) {
        let previous = nodes[slot].previous
        let next = nodes[slot].next
        if previous != LRUList.none { nodes[previous].next = next } else { head = next }
        if next != LRUList.none { nodes[next].previous = previous } else { tail = previous }
        nodes[slot].previous = LRUList.none
        nodes[slot].next = LRUList.none
    }
}

extension MemoryLRUStore {
    /// Walks the whole structure and describes the first inconsistency found, or returns `nil`:
    /// links agree both ways, every live slot is in the map and vice versa, and the byte count is the
    /// sum of the live entries' costs. O(n); for tests.
    func structuralProblem() -> String? {
        state.withLock { list in
            var visited = Set<Int>()
            var bytes = 0
            var previous = LRUList.none
            var slot = list.head
            while slot != LRUList.none {
                guard visited.insert(slot).inserted else { return "cycle at slot \(slot)" }
                let node = list.nodes[slot]
                guard node.previous == previous else { return "slot \(slot) has a wrong back link" }
                guard list.slotByKey[node.key] == slot else { return "slot \(slot) not mapped by its key" }
                guard node.cost == Self.cost(key: node.key, valueCount: node.entry.value.count) else {
                    return "slot \(slot) has a wrong cost"
                }
                bytes += node.cost
                previous = slot
                slot = node.next
            }
            if previous != list.tail { return "tail is not the last slot" }
            if visited.count != list.slotByKey.count { return "map holds \(list.slotByKey.count), list \(visited.count)" }
            if visited.count + list.freeSlots.count != list.nodes.count { return "slots leaked" }
            if bytes != list.bytesInUse { return "bytesInUse \(list.bytesInUse), entries add up to \(bytes)" }
            return nil
        }
    }
}
