import GatewayTestSupport
import Testing
@testable import GatewayCache

@Suite struct MemoryLRUStoreTests {
    static let overhead = MemoryLRUStore.perEntryOverheadBytes

    func entry(_ value: [UInt8], staleUntil: UInt64 = .max) -> CachedEntry {
        CachedEntry(value: value, storedAt: 0, freshUntil: min(staleUntil, 500), staleUntil: staleUntil)
    }

    @Test func storesValuesWithoutTheirSpareCapacity() throws {
        let store = MemoryLRUStore(maxBytes: 1 << 20)
        var grown: [UInt8] = []
        grown.reserveCapacity(64 << 10)
        grown.append(contentsOf: (0..<10_000).map { UInt8(truncatingIfNeeded: $0) })
        store.store("k", entry: entry(grown))
        let stored = try #require(store.lookup("k"))
        #expect(stored.value == grown)
        #expect(stored.value.capacity < grown.count + 64, "the budget counts bytes that are really kept")
        #expect(store.statistics().bytesInUse == MemoryLRUStore.cost(key: "k", valueCount: 10_000))
    }

    @Test func dropsAnEntryExactlyAtItsStaleUntil() {
        let clock = ManualClock(0)
        let store = MemoryLRUStore(maxBytes: 10_000, now: clock.now)
        store.store("k", entry: entry(bytes("v"), staleUntil: 500))
        clock.set(499)
        #expect(store.lookup("k")?.value == bytes("v"))
        clock.set(500)
        #expect(store.lookup("k") == nil)
        let statistics = store.statistics()
        #expect(statistics.expirations == 1)
        #expect(statistics.hits == 1 && statistics.misses == 1)
        #expect(statistics.entries == 0 && statistics.bytesInUse == 0)
    }

    @Test func refusesToStoreAnEntryAlreadyPastItsWindow() {
        let clock = ManualClock(500)
        let store = MemoryLRUStore(maxBytes: 10_000, now: clock.now)
        store.store("k", entry: entry(bytes("old")))
        store.store("k", entry: entry(bytes("dead"), staleUntil: 500))
        #expect(store.lookup("k") == nil)
        #expect(store.statistics().bytesInUse == 0)
    }

    @Test func evictsTheLeastRecentlyUsed() {
        // Room for exactly three entries of a one-byte key and a ten-byte value.
        let entryCost = MemoryLRUStore.cost(key: "a", valueCount: 10)
        let store = MemoryLRUStore(maxBytes: entryCost * 3, now: ManualClock().now)
        for key in ["a", "b", "c"] { store.store(key, entry: entry([UInt8](repeating: 1, count: 10))) }
        #expect(store.keysByRecency() == ["c", "b", "a"])
        #expect(store.lookup("a") != nil)
        #expect(store.keysByRecency() == ["a", "c", "b"])
        store.store("d", entry: entry([UInt8](repeating: 2, count: 10)))
        #expect(store.keysByRecency() == ["d", "a", "c"])
        #expect(store.lookup("b") == nil)
        // Re-storing an existing key refreshes it too.
        store.store("c", entry: entry([UInt8](repeating: 3, count: 10)))
        store.store("e", entry: entry([UInt8](repeating: 4, count: 10)))
        #expect(store.keysByRecency() == ["e", "c", "d"])
        let statistics = store.statistics()
        #expect(statistics.evictions == 2)
        #expect(statistics.entries == 3)
        #expect(statistics.bytesInUse == entryCost * 3)
        #expect(store.structuralProblem() == nil)
    }

    @Test func oneLargeEntryEvictsAsManyAsItNeeds() {
        let small = MemoryLRUStore.cost(key: "a", valueCount: 0)
        let store = MemoryLRUStore(maxBytes: small * 4, now: ManualClock().now)
        for key in ["a", "b", "c", "d"] { store.store(key, entry: entry([])) }
        // Needs the room of three small entries (plus its own overhead slot).
        store.store("z", entry: entry([UInt8](repeating: 0, count: small * 2)))
        #expect(store.keysByRecency() == ["z", "d"])
        #expect(store.statistics().evictions == 3)
        #expect(store.structuralProblem() == nil)
    }

    @Test func rejectsAnEntryLargerThanTheBudget() {
        let maxBytes = 1_000
        let store = MemoryLRUStore(maxBytes: maxBytes, now: ManualClock().now)
        let fitting = maxBytes - Self.overhead - 1  // one-byte key
        store.store("k", entry: entry([UInt8](repeating: 7, count: fitting)))
        #expect(store.statistics().bytesInUse == maxBytes)
        store.store("other", entry: entry([UInt8](repeating: 1, count: 1)))
        #expect(store.keysByRecency() == ["other"])

        store.store("k", entry: entry([UInt8](repeating: 7, count: fitting)))
        store.store("k", entry: entry([UInt8](repeating: 8, count: fitting + 1)))
        // The oversize value is refused and the value it was meant to replace is gone, not kept stale.
        #expect(store.lookup("k") == nil)
        let statistics = store.statistics()
        #expect(statistics.oversizeRejections == 1)
        #expect(statistics.entries == 0)
        #expect(statistics.bytesInUse == 0)
    }

    @Test func aZeroBudgetStoresNothing() {
        let store = MemoryLRUStore(maxBytes: -5, now: ManualClock().now)
        store.store("k", entry: entry([]))
        #expect(store.lookup("k") == nil)
        #expect(store.maxBytes == 0)
    }

    @Test func replacingAdjustsBytesAndRemoveFreesThem() {
        let store = MemoryLRUStore(maxBytes: 100_000, now: ManualClock().now)
        store.store("key", entry: entry([UInt8](repeating: 0, count: 100)))
        store.store("key", entry: entry([UInt8](repeating: 0, count: 40)))
        #expect(store.statistics().bytesInUse == MemoryLRUStore.cost(key: "key", valueCount: 40))
        #expect(store.lookup("key")?.value.count == 40)
        store.remove("key")
        store.remove("absent")
        #expect(store.statistics().bytesInUse == 0)
        #expect(store.statistics().entries == 0)
        // Non-ASCII keys are charged by UTF-8 bytes.
        store.store("ключ", entry: entry([]))
        #expect(store.statistics().bytesInUse == 8 + Self.overhead)
    }

    @Test func slabNodeFitsTheDocumentedOverhead() {
        // The overhead constant's derivation assumes a 72-byte node; keep the two honest together.
        #expect(MemoryLayout<LRUList.Node>.stride <= 72)
    }

    /// A random workload checked step by step against a plain array-based LRU.
    @Test(arguments: [1, 2, 3, 4] as [UInt64])
    func agreesWithAReferenceModel(seed: UInt64) {
        var random = SplitMix64(seed: seed)
        let clock = ManualClock(0)
        let maxBytes = 2_000
        let store = MemoryLRUStore(maxBytes: maxBytes, now: clock.now)
        var model = ReferenceLRU(maxBytes: maxBytes)
        let keys = (0..<24).map { "key-\($0)" + String(repeating: "x", count: $0 % 5) }

        for step in 0..<5_000 {
            let key = keys[Int(random.next() % UInt64(keys.count))]
            switch random.next() % 10 {
            case 0...3:
                // Mostly small values, some large enough to evict several entries or be refused outright.
                let size = Int(random.next() % (random.next() % 10 == 0 ? 2_000 : 300))
                let value = [UInt8](repeating: UInt8(truncatingIfNeeded: random.next()), count: size)
                let staleUntil = clock.current + random.next() % 400
                let newEntry = CachedEntry(value: value, storedAt: clock.current, freshUntil: clock.current, staleUntil: staleUntil)
                store.store(key, entry: newEntry)
                model.store(key, entry: newEntry, now: clock.current)
            case 4...7:
                let found = store.lookup(key)
                let expected = model.lookup(key, now: clock.current)
                #expect(found == expected, "lookup of \(key) at step \(step)")
            case 8:
                store.remove(key)
                model.remove(key)
            default:
                clock.advance(by: random.next() % 60)
            }
            #expect(store.keysByRecency() == model.entries.map(\.key), "order at step \(step)")
            let statistics = store.statistics()
            #expect(statistics == model.statistics, "statistics at step \(step)")
            #expect(statistics.bytesInUse <= maxBytes)
            if statistics != model.statistics { break }
        }
        #expect(store.structuralProblem() == nil)
        // The workload must actually have exercised every path it is meant to check.
        let statistics = store.statistics()
        #expect(statistics.evictions > 0 && statistics.expirations > 0 && statistics.oversizeRejections > 0)
        #expect(statistics.hits > 0 && statistics.misses > 0)
    }

    @Test func concurrentUseKeepsTheStructureConsistent() async {
        let store = MemoryLRUStore(maxBytes: 20_000, now: ManualClock().now)
        await withTaskGroup(of: Void.self) { group in
            for worker in 0..<8 {
                group.addTask {
                    var random = SplitMix64(seed: UInt64(worker))
                    for _ in 0..<5_000 {
                        let key = "k\(random.next() % 64)"
                        switch random.next() % 3 {
                        case 0:
                            let value = [UInt8](repeating: 1, count: Int(random.next() % 500))
                            store.store(key, entry: CachedEntry(value: value, storedAt: 0, freshUntil: 0, staleUntil: .max))
                        case 1: _ = store.lookup(key)
                        default: store.remove(key)
                        }
                    }
                }
            }
        }
        #expect(store.structuralProblem() == nil)
        let statistics = store.statistics()
        #expect(statistics.bytesInUse <= 20_000)
        #expect(statistics.entries == store.keysByRecency().count)
    }
}

/// The obvious O(n) LRU: entries most recently used first.
struct ReferenceLRU {
    let maxBytes: Int
    var entries: [(key: String, entry: CachedEntry)] = []
    var statistics = CacheStoreStatistics()

    init(maxBytes: Int) { self.maxBytes = maxBytes }

    func cost(_ key: String, _ entry: CachedEntry) -> Int {
        key.utf8.count + entry.value.count + MemoryLRUStore.perEntryOverheadBytes
    }

    mutating func lookup(_ key: String, now: UInt64) -> CachedEntry? {
        guard let index = entries.firstIndex(where: { $0.key == key }) else {
            statistics.misses += 1
            return nil
        }
        let found = entries.remove(at: index)
        if now >= found.entry.staleUntil {
            statistics.expirations += 1
            statistics.misses += 1
            refreshTotals()
            return nil
        }
        entries.insert(found, at: 0)
        statistics.hits += 1
        return found.entry
    }

    mutating func store(_ key: String, entry: CachedEntry, now: UInt64) {
        entries.removeAll { $0.key == key }
        if cost(key, entry) > maxBytes {
            statistics.oversizeRejections += 1
        } else if now < entry.staleUntil {
            entries.insert((key, entry), at: 0)
            while entries.reduce(0, { $0 + cost($1.key, $1.entry) }) > maxBytes {
                entries.removeLast()
                statistics.evictions += 1
            }
        }
        refreshTotals()
    }

    mutating func remove(_ key: String) {
        entries.removeAll { $0.key == key }
        refreshTotals()
    }

    private mutating func refreshTotals() {
        statistics.entries = entries.count
        statistics.bytesInUse = entries.reduce(0) { $0 + cost($1.key, $1.entry) }
    }
}
