import GatewayTestSupport
import Synchronization
import Testing
@testable import GatewayCache

/// A store that coordinates loads the way a shared store does, scripted by the test.
private final class CoordinatingStore: CacheStore {
    let memory: MemoryLRUStore
    let permit: LoadPermit
    let ended = Mutex<[(String, SharedLoadLock)]>([])

    init(memory: MemoryLRUStore, permit: LoadPermit) {
        self.memory = memory
        self.permit = permit
    }

    func lookup(_ key: String) async -> CachedEntry? { memory.lookup(key) }
    func store(_ key: String, entry: CachedEntry) async { memory.store(key, entry: entry) }
    func remove(_ key: String) async { memory.remove(key) }
    func statistics() async -> CacheStoreStatistics { memory.statistics() }
    func beginLoad(_ key: String) async -> LoadPermit { permit }
    func endLoad(_ key: String, lock: SharedLoadLock) async { ended.withLock { $0.append((key, lock)) } }
}

@Suite struct SharedLoadCoordinationTests {
    let clock = ManualClock(1_000)

    @Test func anEntryLoadedElsewhereIsServedAsCoalescedWithoutLoading() async throws {
        let elsewhere = CachedEntry(value: Array("from another replica".utf8), storedAt: 900, freshUntil: 5_000, staleUntil: 9_000)
        let store = CoordinatingStore(memory: MemoryLRUStore(maxBytes: 1 << 20, now: clock.now), permit: .loadedElsewhere(elsewhere))
        let cache = ResponseCache(store: store, now: clock.now)
        let calls = Counter()
        let result = try await cache.fetch(key: "k", staleIfErrorNanoseconds: 0) {
            calls.increment()
            return CacheLoad(value: [], ttlNanoseconds: 1)
        }
        #expect(calls.count == 0)
        #expect(result.outcome == .coalesced)
        #expect(result.value == elsewhere.value && result.freshUntil == 5_000 && result.ageNanoseconds == 100)
        let statistics = await cache.statistics()
        #expect(statistics.misses == 0 && statistics.coalescedWaiters == 1)
        #expect(store.ended.withLock { $0.isEmpty })
    }

    @Test func aBypassingCallerLoadsWithoutAskingOtherProcesses() async throws {
        let elsewhere = CachedEntry(value: Array("stored before the request".utf8), storedAt: 900, freshUntil: 5_000, staleUntil: 9_000)
        let store = CoordinatingStore(memory: MemoryLRUStore(maxBytes: 1 << 20, now: clock.now), permit: .loadedElsewhere(elsewhere))
        let cache = ResponseCache(store: store, now: clock.now)
        let result = try await cache.fetch(key: "k", staleIfErrorNanoseconds: 0, bypassCache: true) {
            CacheLoad(value: Array("fresh from upstream".utf8), ttlNanoseconds: 10)
        }
        #expect(result.outcome == .miss && result.value == Array("fresh from upstream".utf8))
    }

    @Test func theLockIsReleasedAfterTheLoadStoredItsEntryOrFailed() async throws {
        let lock = SharedLoadLock(token: Array("token".utf8))
        let store = CoordinatingStore(memory: MemoryLRUStore(maxBytes: 1 << 20, now: clock.now), permit: .load(lock: lock))
        let cache = ResponseCache(store: store, now: clock.now)
        let loaded = try await cache.fetch(key: "k", staleIfErrorNanoseconds: 0) { CacheLoad(value: [1], ttlNanoseconds: 10) }
        #expect(loaded.outcome == .miss)
        #expect(await waitUntil { store.ended.withLock { $0.count == 1 } })
        #expect(store.memory.lookup("k")?.value == [1])

        await #expect(throws: LoadFailure(tag: 1)) {
            try await cache.fetch(key: "other", staleIfErrorNanoseconds: 0) { throw LoadFailure(tag: 1) }
        }
        #expect(await waitUntil { store.ended.withLock { $0.count == 2 } })
        #expect(store.ended.withLock { $0.map(\.0) == ["k", "other"] && $0.allSatisfy { $0.1 == lock } })
    }
}
