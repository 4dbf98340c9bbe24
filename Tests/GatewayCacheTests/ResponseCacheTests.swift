import GatewayTestSupport
import Synchronization
import Testing
@testable import GatewayCache

@Suite struct ResponseCacheTests {
    let clock = ManualClock(1_000)
    let store: MemoryLRUStore
    let cache: ResponseCache

    init() {
        store = MemoryLRUStore(maxBytes: 1 << 20, now: clock.now)
        cache = ResponseCache(store: store, now: clock.now)
    }

    func value(_ text: String, ttl: UInt64, calls: Counter? = nil) -> @Sendable () async throws -> CacheLoad {
        { calls?.increment(); return CacheLoad(value: bytes(text), ttlNanoseconds: ttl) }
    }

    func failing(_ tag: Int, calls: Counter? = nil) -> @Sendable () async throws -> CacheLoad {
        { calls?.increment(); throw LoadFailure(tag: tag) }
    }

    @Test func freshUntilExactlyTheTTL() async throws {
        let calls = Counter()
        let first = try await cache.fetch(key: "k", staleIfErrorNanoseconds: 0, load: value("one", ttl: 100, calls: calls))
        #expect(first.outcome == .miss && first.value == bytes("one") && first.ageNanoseconds == 0)

        clock.advance(by: 99)
        let cached = try await cache.fetch(key: "k", staleIfErrorNanoseconds: 0, load: value("two", ttl: 100, calls: calls))
        #expect(cached.outcome == .hit && cached.value == bytes("one") && cached.ageNanoseconds == 99)

        clock.advance(by: 1)
        let reloaded = try await cache.fetch(key: "k", staleIfErrorNanoseconds: 0, load: value("two", ttl: 100, calls: calls))
        #expect(reloaded.outcome == .miss && reloaded.value == bytes("two"))
        #expect(calls.count == 2)
        let statistics = await cache.statistics()
        #expect(statistics.hits == 1 && statistics.misses == 2 && statistics.entries == 1)
    }

    @Test func everyResultSaysUntilWhenItsValueIsFresh() async throws {
        let miss = try await cache.fetch(key: "k", staleIfErrorNanoseconds: 50, load: value("v", ttl: 100))
        #expect(miss.outcome == .miss && miss.freshUntil == 1_100)
        clock.advance(by: 40)
        let hit = try await cache.fetch(key: "k", staleIfErrorNanoseconds: 50, load: value("w", ttl: 100))
        #expect(hit.outcome == .hit && hit.freshUntil == 1_100)
        clock.advance(by: 70)
        let stale = try await cache.fetch(key: "k", staleIfErrorNanoseconds: 50, load: failing(1))
        #expect(stale.outcome == .stale(.loadFailed) && stale.freshUntil == 1_100, "in the past: derived data may not be kept")
        let skipped = try #require(await cache.staleValue(key: "k"))
        #expect(skipped.outcome == .stale(.loadSkipped) && skipped.freshUntil == 1_100)
        let reloaded = try await cache.fetch(key: "k", staleIfErrorNanoseconds: 50, load: value("x", ttl: 100))
        #expect(reloaded.outcome == .miss && reloaded.freshUntil == 1_210)
    }

    @Test func theLoaderChoosesEachValuesTTL() async throws {
        _ = try await cache.fetch(key: "short", staleIfErrorNanoseconds: 0, load: value("s", ttl: 10))
        _ = try await cache.fetch(key: "long", staleIfErrorNanoseconds: 0, load: value("l", ttl: 1_000))
        clock.advance(by: 500)
        #expect(try await cache.fetch(key: "short", staleIfErrorNanoseconds: 0, load: value("s2", ttl: 10)).outcome == .miss)
        #expect(try await cache.fetch(key: "long", staleIfErrorNanoseconds: 0, load: value("l2", ttl: 10)).outcome == .hit)
    }

    @Test func aZeroTTLValueIsNeverFreshButServesStale() async throws {
        _ = try await cache.fetch(key: "k", staleIfErrorNanoseconds: 50, load: value("v", ttl: 0))
        let failed = try await cache.fetch(key: "k", staleIfErrorNanoseconds: 50, load: failing(1))
        #expect(failed.outcome == .stale(.loadFailed) && failed.value == bytes("v"))
    }

    @Test func bypassSkipsAFreshEntryAndAnyStaleFallback() async throws {
        let calls = Counter()
        _ = try await cache.fetch(key: "k", staleIfErrorNanoseconds: 1_000, load: value("old", ttl: 100, calls: calls))
        let bypassed = try await cache.fetch(
            key: "k", staleIfErrorNanoseconds: 1_000, bypassCache: true, load: value("new", ttl: 100, calls: calls))
        #expect(bypassed.outcome == .miss && bypassed.value == bytes("new") && calls.count == 2)
        // The bypassing load refreshed the entry for everyone else.
        #expect(try await cache.fetch(key: "k", staleIfErrorNanoseconds: 0, load: failing(0)).value == bytes("new"))

        await #expect(throws: LoadFailure(tag: 7)) {
            try await cache.fetch(key: "k", staleIfErrorNanoseconds: 1_000, bypassCache: true, load: failing(7))
        }
    }

    @Test func staleIsServedOnlyInsideItsWindow() async throws {
        // Fresh for [1000, 1100), servable after a failure for [1100, 1150).
        _ = try await cache.fetch(key: "k", staleIfErrorNanoseconds: 50, load: value("v", ttl: 100))

        clock.set(1_100)
        let stale = try await cache.fetch(key: "k", staleIfErrorNanoseconds: 50, load: failing(1))
        #expect(stale.outcome == .stale(.loadFailed))
        #expect(stale.value == bytes("v") && stale.ageNanoseconds == 100)
        #expect((stale.staleCause as? LoadFailure) == LoadFailure(tag: 1))

        clock.set(1_149)
        #expect(try await cache.fetch(key: "k", staleIfErrorNanoseconds: 50, load: failing(2)).outcome == .stale(.loadFailed))

        clock.set(1_150)
        await #expect(throws: LoadFailure(tag: 3)) {
            try await cache.fetch(key: "k", staleIfErrorNanoseconds: 50, load: failing(3))
        }
        #expect(await cache.statistics().staleServes == 2)
    }

    @Test func theWindowIsJudgedWhenTheLoadFailsNotWhenItStarts() async throws {
        _ = try await cache.fetch(key: "k", staleIfErrorNanoseconds: 50, load: value("v", ttl: 100))
        let clock = self.clock
        clock.set(1_120)
        let slowFailureInside: @Sendable () async throws -> CacheLoad = {
            clock.set(1_149)
            throw LoadFailure(tag: 1)
        }
        #expect(try await cache.fetch(key: "k", staleIfErrorNanoseconds: 50, load: slowFailureInside).outcome == .stale(.loadFailed))

        let slowFailurePast: @Sendable () async throws -> CacheLoad = {
            clock.set(1_150)
            throw LoadFailure(tag: 2)
        }
        await #expect(throws: LoadFailure(tag: 2)) {
            try await cache.fetch(key: "k", staleIfErrorNanoseconds: 50, load: slowFailurePast)
        }
    }

    @Test func staleValueServesWithoutLoading() async throws {
        #expect(await cache.staleValue(key: "k") == nil)
        _ = try await cache.fetch(key: "k", staleIfErrorNanoseconds: 50, load: value("v", ttl: 100))
        #expect(await cache.staleValue(key: "k")?.outcome == .hit)
        clock.set(1_100)
        let stale = await cache.staleValue(key: "k")
        #expect(stale?.outcome == .stale(.loadSkipped) && stale?.value == bytes("v") && stale?.ageNanoseconds == 100)
        clock.set(1_150)
        #expect(await cache.staleValue(key: "k") == nil)
        let statistics = await cache.statistics()
        #expect(statistics.hits == 1 && statistics.staleServes == 1)
    }

    @Test func aThousandConcurrentMissesMakeOneLoad() async throws {
        let calls = Counter()
        let gate = Gate()
        let cache = self.cache
        let load: @Sendable () async throws -> CacheLoad = {
            calls.increment()
            await gate.wait()
            return CacheLoad(value: bytes("shared"), ttlNanoseconds: 1_000)
        }
        let outcomes = try await withThrowingTaskGroup(of: CacheResult.self) { group in
            for _ in 0..<1_000 {
                group.addTask { try await cache.fetch(key: "k", staleIfErrorNanoseconds: 0, load: load) }
            }
            let allJoined = await yieldUntil { await cache.statistics().coalescedWaiters == 999 }
            #expect(allJoined)
            gate.open()
            return try await group.reduce(into: [CacheResult]()) { $0.append($1) }
        }
        #expect(calls.count == 1)
        #expect(outcomes.count == 1_000)
        #expect(outcomes.allSatisfy { $0.value == bytes("shared") })
        #expect(outcomes.filter { $0.outcome == .miss }.count == 1)
        #expect(outcomes.filter { $0.outcome == .coalesced }.count == 999)
        let statistics = await cache.statistics()
        #expect(statistics.misses == 1 && statistics.coalescedWaiters == 999 && statistics.hits == 0)
    }

    /// A load that stores its entry and releases its waiters between another caller's miss and that
    /// caller's registration among the loads in flight serves that caller too. (It found no load in
    /// flight and started its own: a second upstream call for a key just stored.)
    @Test(.timeLimit(.minutes(1)))
    func aLoadEndingBetweenACallersMissAndItsRegistrationServesThatCaller() async throws {
        final class CacheBox: Sendable {
            let cache = Mutex<ResponseCache?>(nil)
            let firstResult = Mutex<CacheResult?>(nil)
            let ranOnce = Atomic<Bool>(false)
        }
        let box = CacheBox()
        let calls = Counter()
        let load = value("stored", ttl: 1_000, calls: calls)
        let cache = ResponseCache(store: store, now: clock.now, beforeRegistering: {
            // In the late caller's gap, once: another caller's whole fetch, its load storing the key.
            guard !box.ranOnce.exchange(true, ordering: .relaxed), let cache = box.cache.withLock({ $0 }) else { return }
            let first = try? await cache.fetch(key: "k", staleIfErrorNanoseconds: 0, load: load)
            box.firstResult.withLock { $0 = first }
        })
        box.cache.withLock { $0 = cache }

        let late = try await cache.fetch(key: "k", staleIfErrorNanoseconds: 0, load: value("again", ttl: 1_000, calls: calls))
        let first = try #require(box.firstResult.withLock { $0 })
        #expect(first.outcome == .miss && first.value == bytes("stored"))
        #expect(calls.count == 1, "one upstream load for the miss")
        #expect(late.outcome == .hit && late.value == bytes("stored"))
        let statistics = await cache.statistics()
        #expect(statistics.misses == 1 && statistics.hits == 1 && statistics.coalescedWaiters == 0)
    }

    /// The second look at the store is for that gap alone: a miss during which no load ended costs
    /// one lookup, not two (a second one would be a Redis round trip for a shared store).
    @Test func aMissDuringWhichNoLoadEndedLooksTheStoreUpOnce() async throws {
        final class LookupCountingStore: CacheStore {
            let inner: MemoryLRUStore
            let lookups = Atomic<Int>(0)
            init(_ inner: MemoryLRUStore) { self.inner = inner }
            nonisolated(nonsending) func lookup(_ key: String) async -> CachedEntry? {
                lookups.add(1, ordering: .relaxed)
                return await inner.lookup(key)
            }
            func store(_ key: String, entry: CachedEntry) async { await inner.store(key, entry: entry) }
            func remove(_ key: String) async { await inner.remove(key) }
            func statistics() async -> CacheStoreStatistics { await inner.statistics() }
        }
        let counting = LookupCountingStore(store)
        let cache = ResponseCache(store: counting, now: clock.now)
        let calls = Counter()
        let result = try await cache.fetch(key: "k", staleIfErrorNanoseconds: 0, load: value("v", ttl: 1_000, calls: calls))
        #expect(result.outcome == .miss && calls.count == 1)
        #expect(counting.lookups.load(ordering: .relaxed) == 1)
    }

    @Test func aFailedLoadReachesEveryWaiter() async throws {
        let calls = Counter()
        let gate = Gate()
        let cache = self.cache
        let load: @Sendable () async throws -> CacheLoad = {
            calls.increment()
            await gate.wait()
            throw LoadFailure(tag: 42)
        }
        let errors = await withTaskGroup(of: (any Error)?.self) { group in
            for _ in 0..<100 {
                group.addTask {
                    do {
                        _ = try await cache.fetch(key: "k", staleIfErrorNanoseconds: 1_000, load: load)
                        return nil
                    } catch {
                        return error
                    }
                }
            }
            #expect(await yieldUntil { await cache.statistics().coalescedWaiters == 99 })
            gate.open()
            return await group.reduce(into: [(any Error)?]()) { $0.append($1) }
        }
        #expect(calls.count == 1)
        #expect(errors.count == 100)
        #expect(errors.allSatisfy { ($0 as? LoadFailure) == LoadFailure(tag: 42) })
        // Nothing was cached, so the next caller loads again.
        #expect(try await cache.fetch(key: "k", staleIfErrorNanoseconds: 0, load: value("v", ttl: 1)).outcome == .miss)
    }

    @Test func coalescedWaitersFallBackToStaleIndividually() async throws {
        _ = try await cache.fetch(key: "k", staleIfErrorNanoseconds: 1_000, load: value("old", ttl: 10))
        clock.advance(by: 10)
        let gate = Gate()
        let cache = self.cache
        let load: @Sendable () async throws -> CacheLoad = {
            await gate.wait()
            throw LoadFailure(tag: 5)
        }
        let normal = Task { try await cache.fetch(key: "k", staleIfErrorNanoseconds: 1_000, load: load) }
        #expect(await yieldUntil { await cache.statistics().misses == 2 })
        let bypassing = Task { try await cache.fetch(key: "k", staleIfErrorNanoseconds: 1_000, bypassCache: true, load: load) }
        #expect(await yieldUntil { await cache.statistics().coalescedWaiters == 1 })
        gate.open()
        #expect(try await normal.value.outcome == .stale(.loadFailed))
        await #expect(throws: LoadFailure(tag: 5)) { try await bypassing.value }
    }

    @Test func aCancelledWaiterLeavesTheLoadRunningForOthers() async throws {
        let calls = Counter()
        let gate = Gate()
        let cache = self.cache
        let load: @Sendable () async throws -> CacheLoad = {
            calls.increment()
            await gate.wait()
            return CacheLoad(value: bytes("done"), ttlNanoseconds: 1_000)
        }
        let starterFinished = Counter()
        let starter = Task {
            defer { starterFinished.increment() }
            return try await cache.fetch(key: "k", staleIfErrorNanoseconds: 0, load: load)
        }
        #expect(await yieldUntil { calls.count == 1 })
        let joiner = Task { try await cache.fetch(key: "k", staleIfErrorNanoseconds: 0, load: load) }
        #expect(await yieldUntil { await cache.statistics().coalescedWaiters == 1 })

        starter.cancel()
        // The cancelled caller is released while the load is still blocked.
        #expect(await yieldUntil { starterFinished.count == 1 })
        gate.open()
        await #expect(throws: CancellationError.self) { try await starter.value }
        let joined = try await joiner.value
        #expect(joined.value == bytes("done") && joined.outcome == .coalesced)
        #expect(calls.count == 1)
        #expect(try await cache.fetch(key: "k", staleIfErrorNanoseconds: 0, load: failing(0)).outcome == .hit)
    }

    @Test func aLoadWhoseLastWaiterLeavesIsCancelled() async throws {
        let calls = Counter()
        let loadSawCancellation = Flag()
        let cache = self.cache
        let load: @Sendable () async throws -> CacheLoad = {
            calls.increment()
            // Stands for an upstream transfer: it ends only when cancelled.
            while !Task.isCancelled { try? await Task.sleep(for: .milliseconds(1)) }
            loadSawCancellation.set()
            throw CancellationError()
        }
        let first = Task { try await cache.fetch(key: "k", staleIfErrorNanoseconds: 0, load: load) }
        #expect(await yieldUntil { calls.count == 1 })
        let second = Task { try await cache.fetch(key: "k", staleIfErrorNanoseconds: 0, load: load) }
        #expect(await yieldUntil { await cache.statistics().coalescedWaiters == 1 })

        first.cancel()
        await #expect(throws: CancellationError.self) { try await first.value }
        // One caller still waits: the load goes on.
        #expect(!loadSawCancellation.isSet)
        second.cancel()
        await #expect(throws: CancellationError.self) { try await second.value }
        #expect(await waitUntil { loadSawCancellation.isSet })

        // A caller arriving afterwards starts a load of its own and gets its value.
        let fresh = try await cache.fetch(key: "k", staleIfErrorNanoseconds: 0, load: value("again", ttl: 1_000, calls: calls))
        #expect(fresh.value == bytes("again") && fresh.outcome == .miss)
        #expect(calls.count == 2)
    }

    @Test func anAbandonedLoadFinishingLateDoesNotAnswerTheNextLoadsWaiters() async throws {
        let gate = Gate()
        let cache = self.cache
        let abandoned = Task {
            try await cache.fetch(key: "k", staleIfErrorNanoseconds: 0) {
                await gate.wait()  // ignores cancellation, like a transfer that is already complete
                return CacheLoad(value: bytes("old"), ttlNanoseconds: 0)
            }
        }
        #expect(await yieldUntil { await cache.statistics().misses == 1 })
        abandoned.cancel()
        await #expect(throws: CancellationError.self) { try await abandoned.value }

        let nextGate = Gate()
        let next = Task {
            try await cache.fetch(key: "k", staleIfErrorNanoseconds: 0) {
                await nextGate.wait()
                return CacheLoad(value: bytes("new"), ttlNanoseconds: 1_000)
            }
        }
        #expect(await yieldUntil { await cache.statistics().misses == 2 })
        gate.open()  // the abandoned load ends first: its result must not reach `next`
        nextGate.open()
        let result = try await next.value
        #expect(result.value == bytes("new") && result.outcome == .miss)
        // Nor does it overwrite what the newer load stored.
        #expect(try await cache.fetch(key: "k", staleIfErrorNanoseconds: 0, load: failing(0)).value == bytes("new"))
    }

    @Test func aCallerCancelledBeforeItArrivesStartsNoLoad() async {
        let calls = Counter()
        let cache = self.cache
        let task = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return try await cache.fetch(key: "k", staleIfErrorNanoseconds: 0, load: value("v", ttl: 1, calls: calls))
        }
        await #expect(throws: CancellationError.self) { try await task.value }
        #expect(calls.count == 0)
    }

    @Test func concurrentMixedWorkloadKeepsAccountingExact() async throws {
        let store = MemoryLRUStore(maxBytes: 8_000, now: clock.now)
        let cache = ResponseCache(store: store, now: clock.now)
        let clock = self.clock
        let served = Counter()
        await withTaskGroup(of: Void.self) { group in
            for worker in 0..<8 {
                group.addTask {
                    var random = SplitMix64(seed: UInt64(worker) &+ 100)
                    for _ in 0..<1_000 {
                        let key = "k\(random.next() % 40)"
                        let size = Int(random.next() % 600)
                        let fails = random.next() % 5 == 0
                        if random.next() % 10 == 0 { clock.advance(by: random.next() % 20) }
                        if random.next() % 20 == 0 { store.remove(key) }
                        let load: @Sendable () async throws -> CacheLoad = {
                            await Task.yield()
                            if fails { throw LoadFailure(tag: 0) }
                            return CacheLoad(value: [UInt8](repeating: 9, count: size), ttlNanoseconds: 30)
                        }
                        if let result = try? await cache.fetch(key: key, staleIfErrorNanoseconds: 30, load: load) {
                            #expect(result.value.allSatisfy { $0 == 9 })
                        }
                        served.increment()
                    }
                }
            }
        }
        #expect(store.structuralProblem() == nil)
        let statistics = await cache.statistics()
        // Every fetch was exactly one of: fresh hit, load started, load joined.
        #expect(statistics.hits + statistics.misses + statistics.coalescedWaiters == served.count)
        #expect(statistics.bytesInUse <= 8_000)
        #expect(statistics.entries == store.keysByRecency().count)
        #expect(statistics.evictions > 0)
    }
}
