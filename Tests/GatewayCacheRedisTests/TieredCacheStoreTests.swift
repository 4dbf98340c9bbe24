@testable import GatewayCache
import GatewayEventLoop
@testable import GatewayRedis
import GatewayTestSupport
import Synchronization
import Testing

/// One "replica": its own event loop, Redis client, L1 and response cache, sharing a test's
/// redis-server with the others.
struct Replica {
    let loop: EventLoop
    let client: RedisClient
    let store: TieredCacheStore
    let cache: ResponseCache

    /// Generous deadlines unless a test is about them: a loaded 2-core machine must not turn a slow
    /// reply into a fallback the test did not ask for.
    static func make(
        _ server: RedisServer,
        keyPrefix: String = "t:",
        commandTimeout: Duration = .seconds(10),
        lockTTL: Duration = SharedCacheSettings.defaultLockTTL,
        maximumLockWait: Duration = SharedCacheSettings.defaultLockTTL,
        now: @escaping @Sendable () -> UInt64 = monotonicNanoseconds,
        beforeWaiting: @escaping @Sendable () async -> Void = {},
        beforeSubmitting: @escaping @Sendable () -> Void = {}
    ) throws -> Replica {
        let loop = try EventLoop(name: "cache-replica")
        try loop.start()
        let configuration = RedisClientConfiguration(
            endpoint: try RedisEndpoint(url: server.url()), commandTimeout: commandTimeout, connectTimeout: .seconds(10),
            reconnectBackoff: RedisBackoff(base: .milliseconds(5), maximum: .milliseconds(100)))
        let client = RedisClient(
            configuration: configuration, loop: loop, random: { UInt64.random(in: 0...$0) }, extraSetup: [],
            beforeSubmitting: beforeSubmitting)
        let store = TieredCacheStore(
            l1: MemoryLRUStore(maxBytes: 1 << 20, now: now), redis: client,
            settings: SharedCacheSettings(keyPrefix: keyPrefix, lockTTL: lockTTL, maximumLockWait: maximumLockWait),
            listenerConfiguration: nil, now: now, beforeWaiting: beforeWaiting)
        return Replica(loop: loop, client: client, store: store, cache: ResponseCache(store: store, now: now))
    }

    var shared: SharedCacheStatistics { store.sharedStatistics() }

    func waitUntilTracking() async -> Bool {
        await waitUntil { store.sharedStatistics().invalidationConnected }
    }

    func shutdown() async {
        await store.shutdown()
        await client.shutdown()
        loop.stop()
        await loop.waitUntilStopped()
    }
}

func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

func entry(_ text: String, at instant: UInt64 = monotonicNanoseconds(), freshFor: UInt64 = 60_000_000_000, staleFor: UInt64 = 120_000_000_000) -> CachedEntry {
    CachedEntry(value: bytes(text), storedAt: instant, freshUntil: instant + freshFor, staleUntil: instant + staleFor)
}

/// Retries `body` until it returns true, for up to `seconds`: for waiting until Redis is back,
/// where each try is itself bounded by the command deadline.
func eventually(seconds: Int = 30, _ body: () async -> Bool) async -> Bool {
    let deadline = ContinuousClock.now + .seconds(seconds)
    while ContinuousClock.now < deadline {
        if await body() { return true }
        try? await Task.sleep(for: .milliseconds(5))
    }
    return await body()
}

@Suite(.enabled(if: RedisServer.shouldRun, Comment(rawValue: RedisServer.skipMessage)))
struct TieredCacheStoreTests {
    @Test func oneRedisKeyPerEntryWithItsTTLAtTheEndOfTheStaleWindow() async throws {
        let server = try await RedisServer.start()
        let replica = try Replica.make(server)
        let instant = monotonicNanoseconds()
        let small = CachedEntry(value: bytes("{\"id\":\"e1\"}"), storedAt: instant, freshUntil: instant + 30_000_000_000, staleUntil: instant + 90_000_000_000)
        await replica.store.store("kaizen abc /executions/e1", entry: small)
        let large = Array(String(repeating: "{\"status\":\"finished\"},", count: 200).utf8)
        // Windows measured from the store itself: on a loaded machine the first store may take seconds.
        let largeStoredAt = monotonicNanoseconds()
        await replica.store.store("kaizen abc /executions", entry: CachedEntry(value: large, storedAt: largeStoredAt, freshUntil: largeStoredAt + 10_000_000_000, staleUntil: largeStoredAt + 20_000_000_000))

        let ttl = try await replica.client.send(["PTTL", "t:c:kaizen abc /executions/e1"])
        let afterTTL = monotonicNanoseconds()
        guard case .integer(let milliseconds) = ttl, milliseconds > 0 else { Issue.record("PTTL answered \(ttl)"); return }
        // At most the stale window, and at least what is left of it when PTTL answered (to
        // Redis's millisecond), however long a loaded machine took between the two.
        #expect(milliseconds <= 90_000)
        #expect(UInt64(milliseconds) * 1_000_000 + 1_000_000 >= small.staleUntil - afterTTL)
        guard case .integer(let largeTTL) = try await replica.client.send(["PTTL", "t:c:kaizen abc /executions"]) else { Issue.record("no TTL"); return }
        #expect(largeTTL > 0 && largeTTL <= 20_000)
        guard case .integer(let storedLength) = try await replica.client.send(["STRLEN", "t:c:kaizen abc /executions"]) else { Issue.record("no STRLEN"); return }
        #expect(storedLength < large.count / 4)
        // Nothing else: no index keys, and every key has a TTL.
        guard case .array(let keys) = try await replica.client.send(["KEYS", "*"]) else { Issue.record("no KEYS"); return }
        #expect(Set(keys.compactMap(\.text)) == ["t:c:kaizen abc /executions/e1", "t:c:kaizen abc /executions"])
        #expect(replica.shared.l2Stores == 2)

        await replica.shutdown()
        await server.kill()
    }

    @Test func anotherReplicaReadsTheEntryWithItsWindowsAndKeepsItInL1() async throws {
        let server = try await RedisServer.start()
        let writer = try Replica.make(server)
        let reader = try Replica.make(server)
        #expect(await reader.waitUntilTracking())
        let written = monotonicNanoseconds()
        let large = String(repeating: "x", count: 5000)
        await writer.store.store("k", entry: entry("value", at: written, freshFor: 30_000_000_000, staleFor: 90_000_000_000))
        await writer.store.store("big", entry: entry(large, at: written))
        // The reports of both writes reach the reader too; a copy read before its report arrives
        // is dropped by it (one more read from Redis, never a stale one), so read once they are in.
        #expect(await waitUntil { reader.shared.invalidationReports == 2 })

        let read = try #require(await reader.store.lookup("k"))
        #expect(read.value == bytes("value"))
        let afterRead = monotonicNanoseconds()
        // The windows survive the trip to within Redis's millisecond TTL. Both round trips are
        // bracketed by this process's clock (`written` before the SET, `afterRead` after the
        // reply), so the bounds hold however slowly a loaded machine schedules the test.
        let rounding: UInt64 = 2_000_000
        #expect(read.storedAt + rounding >= written && read.storedAt <= afterRead)
        #expect(read.freshUntil - read.storedAt <= 30_000_000_000 && read.freshUntil - read.storedAt > 29_000_000_000)
        #expect(read.staleUntil + rounding >= written + 90_000_000_000 && read.staleUntil <= afterRead + 90_000_000_000)
        #expect(await reader.store.lookup("big")?.value == bytes(large))
        #expect(reader.shared.l2Hits == 2)
        // Filled into L1: an immediate hit now, with no further L2 read.
        #expect(reader.store.l1.lookup("k")?.value == bytes("value"))
        _ = await reader.store.lookup("k")
        #expect(reader.shared.l2Hits == 2)

        await writer.shutdown()
        await reader.shutdown()
        await server.kill()
    }

    @Test func keysAreKeptExactlySoNoCredentialReadsAnothersEntry() async throws {
        let server = try await RedisServer.start()
        let first = try Replica.make(server)
        let second = try Replica.make(server)
        await first.store.store("kapso identity-A GET /runs", entry: entry("tenant A"))
        #expect(await second.store.lookup("kapso identity-B GET /runs") == nil)
        #expect(await second.store.lookup("kapso identity-A GET /runs")?.value == bytes("tenant A"))
        #expect(await second.store.lookup("kapso identity-a GET /runs") == nil)
        await first.shutdown()
        await second.shutdown()
        await server.kill()
    }

    /// Whatever is under an entry key is input: a truncated, corrupted or foreign value is a miss.
    @Test func damagedEntriesInRedisAreMisses() async throws {
        let server = try await RedisServer.start()
        let writer = try Replica.make(server)
        let reader = try Replica.make(server)
        await writer.store.store("k", entry: entry("{\"id\":\"e1\"}"))
        guard case .bulk(let envelope) = try await writer.client.send(["GET", "t:c:k"]) else { Issue.record("no envelope"); return }
        #expect(await reader.store.lookup("k")?.value == bytes("{\"id\":\"e1\"}"))

        var damaged: [[UInt8]] = (0..<envelope.count).map { Array(envelope.prefix($0)) }
        for index in envelope.indices {
            var corrupted = envelope
            corrupted[index] ^= 0x5A
            damaged.append(corrupted)
        }
        damaged.append(bytes("not an envelope at all"))
        for value in damaged {
            let reply = try await writer.client.send([bytes("SET"), bytes("t:c:damaged"), value, bytes("PX"), bytes("60000")])
            #expect(reply == .status("OK"))
            #expect(await reader.store.lookup("damaged") == nil)
        }
        // A key of another type under the prefix is a miss too.
        _ = try await writer.client.send(["DEL", "t:c:damaged"])
        _ = try await writer.client.send(["RPUSH", "t:c:damaged", "x"])
        #expect(await reader.store.lookup("damaged") == nil)
        #expect(reader.shared.l2Corrupt == damaged.count)
        await writer.shutdown()
        await reader.shutdown()
        await server.kill()
    }

    /// The bound: an L1 entry another replica overwrote in Redis is dropped when Redis's
    /// invalidation report reaches this replica, one push on the listener's connection after the
    /// write. The replica's own writes keep its own L1 entry.
    @Test func anotherReplicasWriteDropsTheL1CopyButOwnWritesDoNot() async throws {
        let server = try await RedisServer.start()
        let first = try Replica.make(server)
        let second = try Replica.make(server)
        #expect(await first.waitUntilTracking())
        #expect(await second.waitUntilTracking())

        await first.store.store("k", entry: entry("v1"))
        // Every write under the prefix is reported to every replica, this one included. A copy read
        // before the report arrives is dropped by it (one more read from Redis, never a stale
        // one), so the test reads once the report is in.
        #expect(await waitUntil { second.shared.invalidationReports == 1 })
        #expect(await second.store.lookup("k")?.value == bytes("v1"))
        #expect(second.store.l1.lookup("k")?.value == bytes("v1"))

        await first.store.store("k", entry: entry("v2"))
        #expect(await waitUntil { second.store.l1.lookup("k") == nil })
        #expect(await second.store.lookup("k")?.value == bytes("v2"))
        #expect(second.shared.invalidationReports >= 2)

        // The writer's own reports (two writes) arrive and leave its L1 entry alone.
        #expect(await waitUntil { first.shared.ownWriteReports == 2 })
        #expect(first.store.l1.lookup("k")?.value == bytes("v2"))
        #expect(first.shared.invalidationReports == 0)

        // A delete by anyone (here: straight in Redis) drops both copies.
        _ = try await first.client.send(["DEL", "t:c:k"])
        #expect(await waitUntil {
            first.store.l1.lookup("k") == nil
                && second.store.l1.lookup("k") == nil
        })
        await first.shutdown()
        await second.shutdown()
        await server.kill()
    }

    /// N replicas with M concurrent misses each for one key: exactly one load. The load holds on
    /// until every other replica is waiting for its lock, so the test covers the wait (not an L2
    /// hit of a load that had already finished).
    @Test func concurrentMissesOnThreeReplicasMakeOneLoad() async throws {
        let server = try await RedisServer.start()
        let replicaCount = 3
        let missesPerReplica = 100
        let replicas = try (0..<replicaCount).map { _ in try Replica.make(server) }
        for replica in replicas { #expect(await replica.waitUntilTracking()) }
        let loads = Counter()
        let loadsWaitedFor = Counter()

        let results = try await withThrowingTaskGroup(of: CacheResult.self) { group in
            for replica in replicas {
                for _ in 0..<missesPerReplica {
                    group.addTask {
                        try await replica.cache.fetch(key: "kaizen id /executions/e1", staleIfErrorNanoseconds: 60_000_000_000) {
                            loads.increment()
                            let othersWaiting = await waitUntil(seconds: 30) {
                                replicas.filter { $0.shared.lockWaits == 1 }.count == replicaCount - 1
                            }
                            if othersWaiting { loadsWaitedFor.increment() }
                            return CacheLoad(value: bytes("the one answer"), ttlNanoseconds: 60_000_000_000)
                        }
                    }
                }
            }
            var results: [CacheResult] = []
            for try await result in group { results.append(result) }
            return results
        }
        #expect(loads.count == 1)
        #expect(loadsWaitedFor.count == 1)
        #expect(results.count == replicaCount * missesPerReplica)
        #expect(results.allSatisfy { $0.value == bytes("the one answer") })
        #expect(results.filter { $0.outcome == .miss }.count == 1)
        // Every other caller waited for that load, except those a loaded machine started only after
        // it had finished: they find the answer cached.
        #expect(results.allSatisfy { [.miss, .coalesced, .hit].contains($0.outcome) })
        #expect(results.filter { $0.outcome == .coalesced }.count >= replicaCount - 1)
        #expect(replicas.map(\.shared.loadsCoalescedAcrossReplicas).reduce(0, +) == replicaCount - 1)
        // The holder releases its lock once its callers have their answer.
        #expect(await eventually { (try? await replicas[0].client.send(["EXISTS", "t:l:kaizen id /executions/e1"])) == .integer(0) })
        for replica in replicas { await replica.shutdown() }
        await server.kill()
    }

    /// A holder that died keeps the others waiting only until its lock's PX ends; then one of them
    /// takes the lock and loads. The lock's PX is cut short only once the replica is seen waiting,
    /// so that however slow the machine, the test covers the wait and not a lock already gone.
    @Test func aDeadHoldersLockLapsesAndAnotherReplicaLoads() async throws {
        let server = try await RedisServer.start()
        let replica = try Replica.make(server, maximumLockWait: .seconds(120))
        #expect(try await replica.client.send(["SET", "t:l:k", "dead-holder", "NX", "PX", "60000"]) == .status("OK"))
        let loads = Counter()
        let fetch = Task {
            try await replica.cache.fetch(key: "k", staleIfErrorNanoseconds: 0) {
                loads.increment()
                return CacheLoad(value: bytes("taken over"), ttlNanoseconds: 60_000_000_000)
            }
        }
        #expect(await waitUntil(seconds: 30) { replica.shared.lockWaits == 1 })
        #expect(loads.count == 0)
        #expect(try await replica.client.send(["PEXPIRE", "t:l:k", "1"]) == .integer(1))
        let result = try await fetch.value
        #expect(result.value == bytes("taken over"))
        #expect(result.outcome == .miss)
        #expect(loads.count == 1)
        #expect(replica.shared.lockWaits == 1)
        // Released once the callers have their answer.
        #expect(await eventually { (try? await replica.client.send(["GET", "t:l:k"])) == .null })
        await replica.shutdown()
        await server.kill()
    }

    /// A load waiting out another replica's lock, whose read misses the entry and whose report of
    /// that entry then lands before the load waits, is woken by that report at once. (It used to
    /// begin waiting only after the report had found no one to wake, and slept the poll interval in
    /// force: up to 64 ms more on every such coalesced miss.)
    @Test(.timeLimit(.minutes(1)))
    func aReportLandingBetweenTheMissAndTheWaitWakesTheLoadAtOnce() async throws {
        let server = try await RedisServer.start()
        let writer = try Replica.make(server)
        final class Gap: Sendable {
            let misses = Counter()
            let reader = Mutex<TieredCacheStore?>(nil)
            let reportedAt = Mutex<ContinuousClock.Instant?>(nil)
            let nextCommandAt = Mutex<ContinuousClock.Instant?>(nil)
        }
        let gap = Gap()
        // Polls wait 2, 4, 8, 16, 32, then 64 ms: the sixth miss is the one with the most to lose.
        let reader = try Replica.make(server, beforeWaiting: {
            guard gap.misses.increment() == 6, let reader = gap.reader.withLock({ $0 }) else { return }
            await writer.store.store("k", entry: entry("loaded elsewhere"))
            _ = await waitUntil(seconds: 30) { reader.sharedStatistics().invalidationReports == 1 }
            gap.reportedAt.withLock { $0 = .now }
        }, beforeSubmitting: {
            // The load's next command after its wait (the lock again), timed from the report.
            guard gap.reportedAt.withLock({ $0 }) != nil else { return }
            gap.nextCommandAt.withLock { if $0 == nil { $0 = .now } }
        })
        gap.reader.withLock { $0 = reader.store }
        #expect(await reader.waitUntilTracking())
        #expect(try await writer.client.send(["SET", "t:l:k", "other-holder", "NX", "PX", "60000"]) == .status("OK"))

        let permit = await reader.store.beginLoad("k")
        guard case .loadedElsewhere(let loaded) = permit else {
            Issue.record("expected the other replica's entry, got \(permit)")
            return
        }
        #expect(loaded.value == bytes("loaded elsewhere"))
        #expect(reader.shared.invalidationReports == 1)
        let reportedAt = try #require(gap.reportedAt.withLock { $0 })
        let nextCommandAt = try #require(gap.nextCommandAt.withLock { $0 })
        // Nothing but this task's own steps in between: a wait on the 64 ms poll could not be shorter.
        #expect(nextCommandAt - reportedAt < .milliseconds(64))
        await writer.shutdown()
        await reader.shutdown()
        await server.kill()
    }

    /// A lock that outlives the longest wait: the replica stops waiting and loads itself.
    @Test func aWaitLongerThanTheMaximumEndsInALocalLoad() async throws {
        let server = try await RedisServer.start()
        let replica = try Replica.make(server, maximumLockWait: .milliseconds(200))
        #expect(try await replica.client.send(["SET", "t:l:k", "slow-holder", "NX", "PX", "60000"]) == .status("OK"))
        let result = try await replica.cache.fetch(key: "k", staleIfErrorNanoseconds: 0) {
            CacheLoad(value: bytes("loaded after waiting"), ttlNanoseconds: 60_000_000_000)
        }
        #expect(result.value == bytes("loaded after waiting"))
        #expect(replica.shared.lockWaits == 1 && replica.shared.loadsCoalescedAcrossReplicas == 0)
        // Not its lock: left to its holder.
        #expect(try await replica.client.send(["GET", "t:l:k"]) == .bulk(bytes("slow-holder")))
        await replica.shutdown()
        await server.kill()
    }

    /// Reports may have been missed while the listener's connection was down: all of L1 goes when
    /// it is lost and again when it is back.
    @Test func losingTheInvalidationConnectionDropsL1() async throws {
        let server = try await RedisServer.start()
        let replica = try Replica.make(server)
        #expect(await replica.waitUntilTracking())
        let flushesBefore = replica.shared.l1Flushes
        await replica.store.store("k", entry: entry("v"))
        #expect(replica.store.l1.lookup("k") != nil)
        #expect(try await replica.client.send(["CLIENT", "KILL", "TYPE", "pubsub"]) == .integer(1))
        #expect(await waitUntil { replica.shared.l1Flushes >= flushesBefore + 2 && replica.shared.invalidationConnected })
        #expect(replica.store.l1.lookup("k") == nil)
        // Still in L2, and kept in L1 again once read.
        #expect(await replica.store.lookup("k")?.value == bytes("v"))
        #expect(replica.store.l1.lookup("k")?.value == bytes("v"))
        await replica.shutdown()
        await server.kill()
    }

    /// Redis gone: loads and hits go on from L1 with stale-if-error, no caller sees an error; when
    /// Redis is back (same port, empty), the replicas share again by themselves.
    @Test func withRedisDownTheCacheRunsOnL1AndSharesAgainWhenItReturns() async throws {
        let server = try await RedisServer.start()
        let clock = ManualClock(1_000_000_000)
        let first = try Replica.make(server, commandTimeout: .milliseconds(500), now: clock.now)
        let second = try Replica.make(server, commandTimeout: .milliseconds(500), now: clock.now)
        #expect(await first.waitUntilTracking())
        await server.kill()

        let loaded = try await first.cache.fetch(key: "k", staleIfErrorNanoseconds: 60_000_000_000) {
            CacheLoad(value: bytes("loaded without Redis"), ttlNanoseconds: 1_000_000_000)
        }
        #expect(loaded.outcome == .miss)
        #expect(try await first.cache.fetch(key: "k", staleIfErrorNanoseconds: 60_000_000_000) { throw Failure() }.outcome == .hit)
        clock.advance(by: 2_000_000_000)
        let stale = try await first.cache.fetch(key: "k", staleIfErrorNanoseconds: 60_000_000_000) { throw Failure() }
        #expect(stale.outcome == .stale(.loadFailed))
        #expect(stale.value == bytes("loaded without Redis"))
        #expect(first.shared.l2Errors > 0)
        #expect(await waitUntil { !first.shared.invalidationConnected })

        try await server.start()
        #expect(await first.waitUntilTracking())
        #expect(await second.waitUntilTracking())
        // Shared again: an entry one replica stores is the other's L2 hit.
        #expect(await eventually {
            await first.store.store("after", entry: entry("shared again", at: clock.current))
            return await second.store.lookup("after")?.value == bytes("shared again")
        })
        await first.shutdown()
        await second.shutdown()
        await server.kill()
    }

    /// A Redis that stops answering (DEBUG SLEEP) costs each call at most its deadline: the fetch is
    /// answered by a local load long before Redis wakes up. Redis sleeps a minute and is killed
    /// once the fetch is answered, so that a loaded machine's scheduling delays (seconds, when
    /// every suite runs at once) cannot be mistaken for waiting on Redis.
    @Test func aHungRedisCostsAtMostTheDeadline() async throws {
        let server = try await RedisServer.start()
        let replica = try Replica.make(server, commandTimeout: .milliseconds(100))
        let sleeper = try Replica.make(server)
        #expect(await replica.waitUntilTracking())
        let sleeping = Task { try? await sleeper.client.send(["DEBUG", "SLEEP", "60"], timeout: .seconds(120)) }
        // DEBUG SLEEP has started once a PING times out.
        #expect(await eventually {
            do {
                _ = try await replica.client.send(["PING"])
                return false
            } catch {
                return (error as? RedisError) == .timeout
            }
        })
        let started = ContinuousClock.now
        let result = try await replica.cache.fetch(key: "k", staleIfErrorNanoseconds: 0) {
            CacheLoad(value: bytes("local"), ttlNanoseconds: 1_000_000_000)
        }
        #expect(result.value == bytes("local"))
        #expect(ContinuousClock.now - started < .seconds(30))
        await server.kill()
        _ = await sleeping.value
        await replica.shutdown()
        await sleeper.shutdown()
    }
}

struct Failure: Error {}
