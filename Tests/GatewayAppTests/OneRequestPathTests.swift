import ExecutionsAPI
import GatewayApp
import GatewayCrypto
import GatewayHTTP
import GatewayJSON
import GatewayRateLimit
import GatewayServer
import Logging
import Synchronization
import Testing

/// The gateway's middleware on its one request path: what needs no waiting (a page-cache hit, a
/// `401`, a `429`, a `404`) is answered on the event loop without suspending, and every answer,
/// waiting or not, carries what each layer adds, spends one token and is logged once.
@Suite struct OneRequestPathTests {
    /// Counts what reaches the store; `suspends` makes it wait like a shared store does.
    final class CountingStore: RateLimitStore {
        let inner: MemoryRateLimitStore
        let suspends: Bool
        let acquisitions = Atomic<Int>(0)

        init(inner: MemoryRateLimitStore, suspends: Bool) {
            self.inner = inner
            self.suspends = suspends
        }

        nonisolated(nonsending) func acquire(key: String, policy: RateLimitPolicy, cost: Int) async -> RateLimitDecision {
            if suspends { await Task.yield() }
            acquisitions.add(1, ordering: .relaxed)
            return inner.acquire(key: key, policy: policy, cost: cost)
        }
    }

    final class LogLines: Sendable {
        let lines = Mutex<[String]>([])
        func append(_ line: String) { lines.withLock { $0.append(line) } }
        var all: [String] { lines.withLock { $0 } }
    }

    struct Harness {
        let chain: any HTTPResponder
        let store: CountingStore
        let metrics: GatewayMetrics
        let logLines = LogLines()

        init(storeSuspends: Bool = false, burst: Int = 3) throws {
            let clock = ManualClock()
            store = CountingStore(inner: MemoryRateLimitStore(now: { clock.now }), suspends: storeSuspends)
            metrics = GatewayMetrics()
            let lines = logLines
            let output = JSONLogHandler.LogOutput { bytes in lines.append(String(decoding: bytes, as: UTF8.self)) }
            let logger = Logger(label: "access") { JSONLogHandler(label: $0, output: output) }
            var router = Router()
            router.get("/fast") { _, context in
                HTTPResponse(status: .ok, text: "fast for \(context[GatewayClientKey.self]?.id ?? "nobody")")
            }
            router.get("/slow") { _, context in
                await Task.yield()
                return HTTPResponse(status: .ok, text: "slow for \(context[GatewayClientKey.self]?.id ?? "nobody")")
            }
            let routes = router
            let authenticator = ClientAuthenticator(mode: .apiKey, clients: [
                ClientCredentialRecord(
                    client: GatewayClient(id: "web", allowedProviders: nil, upstreamCredentials: [:]),
                    keyDigest: SHA256.hash(Array("web-key".utf8))
                ),
            ])
            let store = store, metrics = metrics
            chain = try MiddlewareChain {
                RequestTraceMiddleware()
                ClientAddressMiddleware(resolver: ClientAddressResolver(isTrustedProxy: { _ in false }))
                ObservabilityMiddleware(logger: logger, metrics: metrics, routedMethods: routes.routedMethods, routeTemplate: { method, path in
                    routes.match(method: method, path: path)?.template ?? "unmatched"
                })
                AuthenticationMiddleware(authenticator: authenticator, publicPaths: [])
                RateLimitMiddleware(store: store, defaultPolicy: try RateLimitPolicy(requestsPerSecond: 1, burst: burst), policies: [:])
                router
            }
        }

        func serve(_ path: String, key: String? = "web-key") async -> HTTPResponse {
            var headers: HTTPHeaders = [:]
            if let key { headers.add(name: "X-API-Key", value: key) }
            let request = HTTPRequest(method: .get, target: path, headers: headers)
            let context = RequestContext(remoteAddress: "10.0.0.1", connectionID: 1, receivedAtNanoseconds: 1)
            return await chain.respond(to: request, context: context)
        }

        func requestsCounted(route: String, status: Int) -> Int? {
            let exposition = String(decoding: metrics.exposition(), as: UTF8.self)
            let prefix = #"gateway_http_requests_total{method="GET",route="\#(route)",status="\#(status)"} "#
            return exposition.split(separator: "\n").first { $0.hasPrefix(prefix) }.flatMap { Int($0.dropFirst(prefix.count)) }
        }
    }

    @Test func aRequestThatHasToWaitSpendsOneTokenAndIsLoggedAndCountedOnce() async throws {
        let harness = try Harness()
        let response = await harness.serve("/slow")
        #expect(String(decoding: response.body, as: UTF8.self) == "slow for web")
        #expect(harness.store.acquisitions.load(ordering: .relaxed) == 1)
        #expect(response.headers["RateLimit-Remaining"] == "2")
        #expect(harness.requestsCounted(route: "/slow", status: 200) == 1)
        let lines = harness.logLines.all
        #expect(lines.count == 1)
        let record = try JSONParser.parse(try #require(lines.first))
        #expect(record["requestId"]?.stringValue == response.headers["X-Request-Id"])
        #expect(record["clientId"] == "web")
    }

    @Test func answersWithoutWaitingCarryEveryHeaderAndAreLogged() async throws {
        let harness = try Harness()
        let fast = await harness.serve("/fast")
        #expect(String(decoding: fast.body, as: UTF8.self) == "fast for web")
        #expect(fast.headers["RateLimit-Limit"] == "3")
        #expect(fast.headers["RateLimit-Remaining"] == "2")
        #expect(fast.headers["X-Request-Id"]?.utf8.count == 32)
        #expect(harness.requestsCounted(route: "/fast", status: 200) == 1)
        let record = try JSONParser.parse(try #require(harness.logLines.all.first))
        #expect(record["route"] == "/fast")
        #expect(record["upstreamCalls"] == 0)
    }

    @Test func refusalsCarryTheirHeadersAndAreCounted() async throws {
        let harness = try Harness(burst: 1)
        let unauthenticated = await harness.serve("/slow", key: "wrong")
        #expect(unauthenticated.status == .unauthorized)
        #expect(unauthenticated.headers["WWW-Authenticate"]?.hasPrefix("Bearer") == true)
        #expect(harness.requestsCounted(route: "/slow", status: 401) == 1)

        #expect(await harness.serve("/slow").status == .ok)
        let limited = await harness.serve("/slow")
        #expect(limited.status == .tooManyRequests)
        #expect(limited.headers["Retry-After"] == "1")
        #expect(limited.headers["RateLimit-Remaining"] == "0")
        #expect(harness.store.acquisitions.load(ordering: .relaxed) == 2)
    }

    @Test func aStoreThatSuspendsDecidesOnceAndTheAnswerCarriesItsHeaders() async throws {
        let harness = try Harness(storeSuspends: true)
        let response = await harness.serve("/fast")
        #expect(String(decoding: response.body, as: UTF8.self) == "fast for web")
        #expect(harness.store.acquisitions.load(ordering: .relaxed) == 1)
        #expect(response.headers["RateLimit-Remaining"] == "2")
    }

    // MARK: - On the event loop, through the whole gateway

    /// How the server answered `request`: whether it was ready before the request's task was
    /// created (nothing suspended, nothing enqueued) and its status.
    func served(
        _ harness: GatewayHarness, _ target: String, key: String? = GatewayHarness.webKey
    ) async throws -> (answer: GatewayHarness.Answer, withoutSuspending: Bool) {
        let counters = harness.runtime.server.counters
        let before = (counters.responsesWithoutSuspending, counters.responsesAfterSuspending)
        let answer = try await harness.get(target, key: key)
        let after = (counters.responsesWithoutSuspending, counters.responsesAfterSuspending)
        #expect(after.0 - before.0 + after.1 - before.1 == 1, "one response for \(target)")
        return (answer, after.0 == before.0 + 1)
    }

    @Test func cacheHitsAndRefusalsAreAnsweredOnTheLoopWithoutSuspending() async throws {
        // Pages stay fresh however slow the machine: the second request must be a hit.
        let harness = try await GatewayHarness { $0.cache.listTTL = .seconds(600) }
        defer { Task { await harness.stop() } }

        let built = try await served(harness, "/executions?limit=5")
        #expect(built.answer.headers["Cache-Status"] == "ExecutionsGateway; fwd=miss")
        #expect(!built.withoutSuspending, "a page built from the providers waits for them")

        let hit = try await served(harness, "/executions?limit=5")
        #expect(hit.answer.headers["Cache-Status"] == "ExecutionsGateway; hit")
        #expect(hit.answer.body == built.answer.body || hit.answer.ids == built.answer.ids)
        #expect(hit.withoutSuspending, "a page-cache hit")

        let unauthenticated = try await served(harness, "/executions?limit=5", key: "not-a-key")
        #expect(unauthenticated.answer.status == 401)
        #expect(unauthenticated.withoutSuspending, "an authentication refusal")

        let notFound = try await served(harness, "/nowhere")
        #expect(notFound.answer.status == 404)
        #expect(notFound.withoutSuspending, "a 404")

        let invalid = try await served(harness, "/executions?limit=0")
        #expect(invalid.answer.status == 400)
        #expect(invalid.withoutSuspending, "an invalid query")

        // `batch` may make 2 requests at once, then 1 a second: a few quick ones reach its limit.
        var limited: (answer: GatewayHarness.Answer, withoutSuspending: Bool)?
        for _ in 0..<20 where limited == nil {
            let attempt = try await served(harness, "/nowhere", key: GatewayHarness.batchKey)
            if attempt.answer.status == 429 { limited = attempt }
        }
        let refusal = try #require(limited)
        #expect(refusal.answer.headers["Retry-After"] != nil)
        #expect(refusal.withoutSuspending, "a rate-limit refusal")
    }
}
