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

/// The gateway's middleware on the immediate path: the same answers as on the asynchronous one,
/// and a request that starts immediately and then has to wait is still counted, limited, logged
/// and traced once.
@Suite struct ImmediatePathTests {
    /// Counts what reaches the store; `answersImmediately: false` behaves like a shared store.
    final class CountingStore: RateLimitStore {
        let inner: MemoryRateLimitStore
        let answersImmediately: Bool
        let acquisitions = Atomic<Int>(0)

        init(inner: MemoryRateLimitStore, answersImmediately: Bool) {
            self.inner = inner
            self.answersImmediately = answersImmediately
        }

        func acquire(key: String, policy: RateLimitPolicy, cost: Int) async -> RateLimitDecision {
            acquisitions.add(1, ordering: .relaxed)
            return inner.acquire(key: key, policy: policy, cost: cost)
        }

        func acquireImmediately(key: String, policy: RateLimitPolicy, cost: Int) -> RateLimitDecision? {
            guard answersImmediately else { return nil }
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
        let chain: MiddlewareChain
        let store: CountingStore
        let metrics: GatewayMetrics
        let logLines = LogLines()

        init(storeAnswersImmediately: Bool = true, burst: Int = 3) throws {
            let clock = ManualClock()
            store = CountingStore(inner: MemoryRateLimitStore(now: { clock.now }), answersImmediately: storeAnswersImmediately)
            metrics = GatewayMetrics()
            let lines = logLines
            let output = JSONLogHandler.LogOutput { bytes in lines.append(String(decoding: bytes, as: UTF8.self)) }
            let logger = Logger(label: "access") { JSONLogHandler(label: $0, output: output) }
            var router = Router()
            router.get("/fast", immediate: { _, context in
                HTTPResponse(status: .ok, text: "fast for \(context[GatewayClientKey.self]?.id ?? "nobody")")
            }) { _, _ in HTTPResponse(status: .ok, text: "fast, late") }
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
            chain = MiddlewareChain([
                RequestTraceMiddleware(),
                ClientAddressMiddleware(resolver: ClientAddressResolver(isTrustedProxy: { _ in false })),
                ObservabilityMiddleware(logger: logger, metrics: metrics, routedMethods: routes.routedMethods, routeTemplate: { method, path in
                    routes.match(method: method, path: path)?.template ?? "unmatched"
                }),
                AuthenticationMiddleware(authenticator: authenticator, publicPaths: []),
                RateLimitMiddleware(store: store, defaultPolicy: try RateLimitPolicy(requestsPerSecond: 1, burst: burst), policies: [:]),
            ], responder: router)
        }

        /// What the server does: the immediate attempt, then, if it had to wait, the asynchronous
        /// pass with the context the attempt left.
        func serve(_ path: String, key: String? = "web-key") async -> (response: HTTPResponse, immediate: Bool) {
            var headers: HTTPHeaders = [:]
            if let key { headers.add(name: "X-API-Key", value: key) }
            let request = HTTPRequest(method: .get, target: path, headers: headers)
            var context = RequestContext(remoteAddress: "10.0.0.1", connectionID: 1, receivedAtNanoseconds: 1)
            if let response = chain.respondImmediately(to: request, context: &context) { return (response, true) }
            return (await chain.respond(to: request, context: context), false)
        }

        func requestsCounted(route: String, status: Int) -> Int? {
            let exposition = String(decoding: metrics.exposition(), as: UTF8.self)
            let prefix = #"gateway_http_requests_total{method="GET",route="\#(route)",status="\#(status)"} "#
            return exposition.split(separator: "\n").first { $0.hasPrefix(prefix) }.flatMap { Int($0.dropFirst(prefix.count)) }
        }
    }

    @Test func aRequestThatHasToWaitSpendsOneTokenAndIsLoggedAndCountedOnce() async throws {
        let harness = try Harness()
        let (response, immediate) = await harness.serve("/slow")
        #expect(!immediate)
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

    @Test func immediateAnswersCarryEveryHeaderTheAsynchronousPathAdds() async throws {
        let harness = try Harness()
        let (fast, immediate) = await harness.serve("/fast")
        #expect(immediate)
        #expect(String(decoding: fast.body, as: UTF8.self) == "fast for web")
        #expect(fast.headers["RateLimit-Limit"] == "3")
        #expect(fast.headers["RateLimit-Remaining"] == "2")
        #expect(fast.headers["X-Request-Id"]?.utf8.count == 32)
        #expect(harness.requestsCounted(route: "/fast", status: 200) == 1)
        let record = try JSONParser.parse(try #require(harness.logLines.all.first))
        #expect(record["route"] == "/fast")
        #expect(record["upstreamCalls"] == 0)
    }

    @Test func refusalsAreImmediateAndTheSameAsBefore() async throws {
        let harness = try Harness(burst: 1)
        let (unauthenticated, immediateRefusal) = await harness.serve("/slow", key: "wrong")
        #expect(immediateRefusal)
        #expect(unauthenticated.status == .unauthorized)
        #expect(unauthenticated.headers["WWW-Authenticate"]?.hasPrefix("Bearer") == true)
        #expect(harness.requestsCounted(route: "/slow", status: 401) == 1)

        #expect(await harness.serve("/slow").response.status == .ok)
        let (limited, immediateLimit) = await harness.serve("/slow")
        #expect(immediateLimit)
        #expect(limited.status == .tooManyRequests)
        #expect(limited.headers["Retry-After"] == "1")
        #expect(limited.headers["RateLimit-Remaining"] == "0")
        #expect(harness.store.acquisitions.load(ordering: .relaxed) == 2)
    }

    @Test func aStoreThatMustWaitSendsRequestsDownTheAsynchronousPathWithoutSpendingTwice() async throws {
        let harness = try Harness(storeAnswersImmediately: false)
        let (response, immediate) = await harness.serve("/fast")
        #expect(!immediate)
        #expect(String(decoding: response.body, as: UTF8.self) == "fast, late")
        #expect(harness.store.acquisitions.load(ordering: .relaxed) == 1)
        #expect(response.headers["RateLimit-Remaining"] == "2")
    }
}
