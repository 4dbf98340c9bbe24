import GatewayEventLoop
import GatewayHTTP
import GatewayRateLimit
import GatewayRedis
import GatewayReplicas
import GatewayTestSupport
import GatewayUpstream
import Synchronization
import Testing

/// Three "replicas" (each its own client, loop and registry) against one redis-server.
struct ReplicaSet {
    let harnesses: [RedisHarness]
    let registries: [ReplicaRegistry]

    static func make(
        count: Int, url: String, prefix: String, commandTimeout: Duration = .seconds(60), stallTimeout: Duration = .seconds(1)
    ) async throws -> ReplicaSet {
        var harnesses: [RedisHarness] = []
        var registries: [ReplicaRegistry] = []
        for index in 0..<count {
            let harness = try RedisHarness.make(url: url, commandTimeout: commandTimeout, stallTimeout: stallTimeout)
            harnesses.append(harness)
            registries.append(ReplicaRegistry(client: harness.client, keyPrefix: prefix, replicaID: "replica-\(index)"))
        }
        // Until every replica has counted all of them (a beat on a loaded machine may fail; with
        // every test running at once, the whole suite's work shares this window).
        _ = try await eventually(seconds: 120) { () async throws -> Bool in
            for registry in registries { _ = await registry.beat() }
            guard registries.allSatisfy({ $0.replicaCount == count }) else { throw RedisError.timeout }
            return true
        }
        return ReplicaSet(harnesses: harnesses, registries: registries)
    }

    /// The first replica's limit store, counting in `fallbacks` each decision its local fallback takes.
    func limitStore(countingFallbacksIn fallbacks: Counter) -> SharedRateLimitStore {
        SharedRateLimitStore(
            client: harnesses[0].client, keyPrefix: "t:", registry: registries[0], onFallback: { fallbacks.increment() })
    }

    func shutdown() async {
        for harness in harnesses { await harness.shutdown() }
    }
}

@Suite(.enabled(if: RedisServer.shouldRun, Comment(rawValue: RedisServer.skipMessage)))
struct SharedLimitsTests {
    @Test("Replicas count each other through their heartbeats")
    func heartbeatsCountReplicas() async throws {
        let server = try await RedisServer.start()
        let replicas = try await ReplicaSet.make(count: 3, url: server.url(), prefix: "t:")
        #expect(replicas.registries.map(\.replicaCount) == [3, 3, 3])
        await replicas.shutdown()
    }

    @Test("A bucket shared by three replicas admits exactly its burst, whichever replica is asked, and a refusal takes nothing")
    func sharedBucketIsExact() async throws {
        let server = try await RedisServer.start()
        let replicas = try await ReplicaSet.make(count: 3, url: server.url(), prefix: "t:")
        let stores = zip(replicas.harnesses, replicas.registries).map { harness, registry in
            SharedRateLimitStore(client: harness.client, keyPrefix: "t:", registry: registry)
        }
        // 1 request a minute refills too slowly to matter within the test.
        let policy = try RateLimitPolicy(requestsPerSecond: 1.0 / 60, burst: 30)
        let decisions = await withTaskGroup(of: RateLimitDecision.self) { group in
            for attempt in 0..<90 {
                let store = stores[attempt % 3]
                group.addTask { await store.acquire(key: "client:web", policy: policy) }
            }
            return await group.reduce(into: []) { $0.append($1) }
        }
        #expect(decisions.filter(\.allowed).count == 30)
        let refused = decisions.filter { !$0.allowed }
        #expect(refused.allSatisfy { $0.remaining == 0 && $0.retryAfterSeconds.map { $0 >= 59 && $0 <= 60 } == true })
        // A cost above what is left is refused and leaves the bucket as it was: a cost-1 request
        // after it still sees the same state.
        let other = try RateLimitPolicy(requestsPerSecond: 1.0 / 60, burst: 5)
        for _ in 0..<3 { #expect(await stores[0].acquire(key: "client:api", policy: other).allowed) }
        let tooBig = await stores[1].acquire(key: "client:api", policy: other, cost: 3)
        #expect(!tooBig.allowed && tooBig.remaining == 2)
        let fits = await stores[2].acquire(key: "client:api", policy: other, cost: 2)
        #expect(fits.allowed && fits.remaining == 0)
        // Headers agree across replicas (same shared state, Redis's clock).
        let a = await stores[0].acquire(key: "client:api", policy: other)
        let b = await stores[1].acquire(key: "client:api", policy: other)
        #expect(a.limit == b.limit && a.remaining == b.remaining && a.retryAfterSeconds == b.retryAfterSeconds)
        await replicas.shutdown()
    }

    @Test("With Redis gone, each replica limits alone at 1/N; after a restart that lost the functions, the shared bucket is back")
    func fallbackAndRecovery() async throws {
        let server = try await RedisServer.start()
        let replicas = try await ReplicaSet.make(count: 3, url: server.url(), prefix: "t:", commandTimeout: .milliseconds(200))
        let fallbacks = Counter()
        let store = replicas.limitStore(countingFallbacksIn: fallbacks)
        let policy = try RateLimitPolicy(requestsPerSecond: 1.0 / 60, burst: 30)
        #expect(await store.acquire(key: "k", policy: policy).allowed)
        #expect(fallbacks.count == 0)

        await server.kill()
        var admitted = 0
        for _ in 0..<30 where await store.acquire(key: "k", policy: policy).allowed { admitted += 1 }
        // 30 / 3 replicas = 10 on this one alone (its own bucket, starting full).
        #expect(admitted == 10)
        #expect(fallbacks.count == 30)

        try await server.start()
        // Each try while the client reconnects is decided locally (a fallback); the first one
        // Redis answers is the shared bucket, fresh after the restart.
        var attempt = 0
        let decision = try await eventually { () async throws -> RateLimitDecision in
            attempt += 1
            let before = fallbacks.count
            let decision = await store.acquire(key: "fresh-\(attempt)", policy: policy)
            guard fallbacks.count == before else { throw RedisError.timeout }
            return decision
        }
        #expect(decision.allowed && decision.remaining == 29)
        // The other client reconnects on its own schedule (it may be backing off).
        let functions = try await eventually { try await replicas.harnesses[1].client.send(["FUNCTION", "LIST", "LIBRARYNAME", "eg_gcra_v2"]) }
        #expect(functions != .array([]), "the function was loaded again after the restart")
        await replicas.shutdown()
    }

    @Test("Decisions asked on one event loop in one turn go to Redis as one call, taken in order and exactly")
    func decisionsOfOneLoopTurnShareOneCall() async throws {
        let server = try await RedisServer.start()
        let replicas = try await ReplicaSet.make(count: 1, url: server.url(), prefix: "t:")
        let store = SharedRateLimitStore(client: replicas.harnesses[0].client, keyPrefix: "t:", registry: replicas.registries[0])
        let policy = try RateLimitPolicy(requestsPerSecond: 1.0 / 60, burst: 5)
        let other = try RateLimitPolicy(requestsPerSecond: 1.0 / 60, burst: 100)
        // The function is loaded first, so that the calls counted below are the decisions' own.
        #expect(await store.acquire(key: "warm", policy: other).allowed)
        _ = try await replicas.harnesses[0].client.send(["CONFIG", "RESETSTAT"])

        let loop = try EventLoop(name: "requests")
        try loop.start()
        let (answers, answered) = AsyncStream<(String, Bool)>.makeStream()
        // 12 requests of one client and 3 of another arrive in the same turn of the loop, as the
        // requests of 15 connections that were readable together would.
        loop.execute {
            for index in 0..<15 {
                let key = index < 12 ? "busy" : "quiet"
                Task.immediate(executorPreference: loop) {
                    let decision = await store.acquire(key: key, policy: key == "busy" ? policy : other)
                    answered.yield((key, decision.allowed))
                }
            }
        }
        var taken: [String: [Bool]] = [:]
        for await (key, allowed) in answers {
            taken[key, default: []].append(allowed)
            if taken.values.map(\.count).reduce(0, +) == 15 { break }
        }
        #expect(taken["busy"]?.filter { $0 }.count == 5, "exactly the burst, in one call as in twelve")
        #expect(taken["busy"]?.count == 12)
        #expect(taken["quiet"] == [true, true, true])
        let stats = try await replicas.harnesses[0].client.send(["INFO", "commandstats"]).text ?? ""
        #expect(stats.contains("cmdstat_fcall:calls=1,"), "\(stats)")
        loop.stop()
        await loop.waitUntilStopped()
        await replicas.shutdown()
    }

    @Test("A decision past the deadline on a connection that still answers is Redis's own: never also decided locally")
    func aLateDecisionIsAwaitedNotTakenTwice() async throws {
        let server = try await RedisServer.start()
        // A stall bound no pause here comes near: only the deadline could hand the decision to the fallback.
        let replicas = try await ReplicaSet.make(
            count: 2, url: server.url(), prefix: "t:", commandTimeout: .milliseconds(50), stallTimeout: .seconds(120))
        let fallbacks = Counter()
        let store = replicas.limitStore(countingFallbacksIn: fallbacks)
        let policy = try RateLimitPolicy(requestsPerSecond: 1.0 / 60, burst: 2)
        #expect(await store.acquire(key: "late", policy: policy).remaining == 1)
        let late = try await heldInRedisPastItsDeadline(pausedBy: replicas.harnesses[1].client) {
            await store.acquire(key: "late", policy: policy)
        }
        // The shared bucket's answer (its limit, not this replica's share of 1), and nothing local.
        #expect(late.allowed && late.limit == 2 && late.remaining == 0)
        #expect(fallbacks.count == 0)
        // Counted once, in Redis: the bucket is now empty for every replica.
        #expect(await store.acquire(key: "late", policy: policy).allowed == false)
        await replicas.shutdown()
    }

    @Test("A Redis that stops answering costs a decision at most its deadline plus the stall bound: then the local fallback decides")
    func aStalledRedisFallsBackAfterTheStallBound() async throws {
        let server = try await RedisServer.start()
        let replicas = try await ReplicaSet.make(
            count: 2, url: server.url(), prefix: "t:", commandTimeout: .milliseconds(150), stallTimeout: .milliseconds(300))
        let fallbacks = Counter()
        let store = replicas.limitStore(countingFallbacksIn: fallbacks)
        let policy = try RateLimitPolicy(requestsPerSecond: 1.0 / 60, burst: 30)
        #expect(await store.acquire(key: "slow", policy: policy).allowed)
        // Every command from now on waits 20 s in Redis.
        #expect(try await replicas.harnesses[1].client.send(["CLIENT", "PAUSE", "20000", "ALL"]) == .status("OK"))
        let started = ContinuousClock.now
        let decision = await store.acquire(key: "slow", policy: policy)
        let elapsed = ContinuousClock.now - started
        // This replica's share of the bucket: 30 over the 2 replicas its heartbeats counted.
        #expect(decision.allowed && decision.limit == 15)
        #expect(fallbacks.count == 1)
        #expect(elapsed >= .milliseconds(440) && elapsed < .seconds(10), "\(elapsed)")
        _ = try? await replicas.harnesses[1].client.send(["CLIENT", "UNPAUSE"])
        await replicas.shutdown()
    }
}

/// Counts what reaches "the provider"; answers 200, or 429 with Retry-After when told.
final class CountingTransport: UpstreamTransport {
    let calls = Atomic<Int>(0)
    let retryAfterSeconds = Atomic<Int>(0)

    func execute(_ request: UpstreamRequest) async throws(UpstreamError) -> UpstreamResponse {
        calls.add(1, ordering: .relaxed)
        let retryAfter = retryAfterSeconds.load(ordering: .relaxed)
        if retryAfter > 0 {
            var headers = HTTPHeaders()
            headers.add(name: "Retry-After", value: String(retryAfter))
            return UpstreamResponse(status: 429, headers: headers)
        }
        return UpstreamResponse(status: 200, body: Array("{}".utf8))
    }
}

@Suite(.enabled(if: RedisServer.shouldRun, Comment(rawValue: RedisServer.skipMessage)))
struct SharedCallBudgetTests {
    static func endpoints(_ replicas: ReplicaSet, transport: CountingTransport, policy: UpstreamPolicy) -> [UpstreamEndpoint] {
        zip(replicas.harnesses, replicas.registries).map { harness, registry in
            UpstreamEndpoint(
                name: "kapso", policy: policy, transport: transport,
                sharedBudget: RedisCallBudget(client: harness.client, keyPrefix: "t:", registry: registry))
        }
    }

    static func call(_ endpoint: UpstreamEndpoint, deadlineAfter wait: Duration) async -> Result<UpstreamResponse, UpstreamError> {
        let options = UpstreamCallOptions(
            credentialKey: "key-1", isIdempotent: true, requestId: "r", traceparent: "00-0-0-00",
            deadlineNanoseconds: monotonicNanoseconds().addingClamped(wait.saturatingNanoseconds))
        do throws(UpstreamError) {
            return .success(try await endpoint.execute(UpstreamRequest(url: "http://127.0.0.1:1/x"), options: options))
        } catch {
            return .failure(error)
        }
    }

    @Test("Three replicas together send a provider no more than its per-minute budget")
    func minuteBudgetIsGlobal() async throws {
        let server = try await RedisServer.start()
        let replicas = try await ReplicaSet.make(count: 3, url: server.url(), prefix: "t:")
        let transport = CountingTransport()
        let policy = UpstreamPolicy(requestsPerSecond: 1000, burst: 100, requestsPerMinute: 10)
        let endpoints = Self.endpoints(replicas, transport: transport, policy: policy)
        let results = await withTaskGroup(of: Result<UpstreamResponse, UpstreamError>.self) { group in
            for attempt in 0..<30 {
                let endpoint = endpoints[attempt % 3]
                group.addTask { await Self.call(endpoint, deadlineAfter: .seconds(2)) }
            }
            return await group.reduce(into: []) { $0.append($1) }
        }
        #expect(transport.calls.load(ordering: .relaxed) == 10)
        let refusals = results.compactMap { result -> UpstreamError? in if case .failure(let error) = result { error } else { nil } }
        #expect(refusals.count == 20)
        #expect(refusals.allSatisfy { if case .minuteBudgetSpent = $0 { true } else { false } }, "\(refusals)")
        // What is left this minute, as the shared budget counts it, reaches every replica that calls.
        #expect(endpoints.contains { $0.callsLeftThisMinute() == 0 })
        await replicas.shutdown()
    }

    @Test("The per-second budget spaces calls across replicas")
    func perSecondPacingIsGlobal() async throws {
        let server = try await RedisServer.start()
        let replicas = try await ReplicaSet.make(count: 3, url: server.url(), prefix: "t:")
        let transport = CountingTransport()
        // 20 a second, no burst beyond one: 12 calls need at least 11 intervals = 550 ms.
        let endpoints = Self.endpoints(replicas, transport: transport, policy: UpstreamPolicy(requestsPerSecond: 20, burst: 1))
        let start = ContinuousClock.now
        await withTaskGroup(of: Void.self) { group in
            for attempt in 0..<12 {
                let endpoint = endpoints[attempt % 3]
                group.addTask { _ = await Self.call(endpoint, deadlineAfter: .seconds(10)) }
            }
        }
        let elapsed = ContinuousClock.now - start
        #expect(transport.calls.load(ordering: .relaxed) == 12)
        #expect(elapsed >= .milliseconds(540), "\(elapsed)")
        await replicas.shutdown()
    }

    @Test("One replica's upstream Retry-After pauses the credential on every replica")
    func pauseIsShared() async throws {
        let server = try await RedisServer.start()
        let replicas = try await ReplicaSet.make(count: 3, url: server.url(), prefix: "t:")
        let transport = CountingTransport()
        let endpoints = Self.endpoints(replicas, transport: transport, policy: UpstreamPolicy(requestsPerSecond: 1000, burst: 10))
        transport.retryAfterSeconds.store(60, ordering: .relaxed)
        let first = await Self.call(endpoints[0], deadlineAfter: .seconds(5))
        guard case .failure(.httpStatus(429, _, 60)) = first else {
            Issue.record("expected the upstream's 429, got \(first)")
            await replicas.shutdown()
            return
        }
        transport.retryAfterSeconds.store(0, ordering: .relaxed)
        for endpoint in endpoints[1...] {
            let result = await Self.call(endpoint, deadlineAfter: .seconds(5))
            guard case .failure(.paused) = result else {
                Issue.record("expected a pause on the other replica, got \(result)")
                continue
            }
            #expect(endpoint.pausedUntil(credentialKey: "key-1") != nil)
        }
        #expect(transport.calls.load(ordering: .relaxed) == 1)
        await replicas.shutdown()
    }

    @Test("Without Redis, each replica paces alone at its share of the per-minute budget")
    func fallbackPacesAtShare() async throws {
        let server = try await RedisServer.start()
        let replicas = try await ReplicaSet.make(count: 3, url: server.url(), prefix: "t:", commandTimeout: .milliseconds(200))
        let transport = CountingTransport()
        let endpoints = Self.endpoints(
            replicas, transport: transport, policy: UpstreamPolicy(requestsPerSecond: 1000, burst: 100, requestsPerMinute: 30))
        await server.kill()
        var sent = 0
        for _ in 0..<20 {
            if case .success = await Self.call(endpoints[0], deadlineAfter: .seconds(1)) { sent += 1 }
        }
        #expect(sent == 10, "30 a minute over 3 replicas")
        await replicas.shutdown()
    }
}
