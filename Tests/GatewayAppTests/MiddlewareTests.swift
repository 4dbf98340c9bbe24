import Foundation
import ExecutionsAPI
import GatewayApp
import GatewayCrypto
import GatewayEventLoop
import GatewayHTTP
import GatewayJSON
import GatewayProviders
import GatewayRateLimit
import GatewayServer
import GatewayTestSupport
import Logging
import Synchronization
import Testing

/// A clock tests move by hand.
final class ManualClock: Sendable {
    private let nanoseconds = Atomic<UInt64>(1_000_000_000)
    var now: UInt64 { nanoseconds.load(ordering: .relaxed) }
    func advance(by delta: UInt64) { nanoseconds.add(delta, ordering: .relaxed) }
}

@Suite struct AuthenticationTests {
    let web = GatewayClient(id: "web", allowedProviders: ["kaizen"], upstreamCredentials: [:])
    let batch = GatewayClient(id: "batch", allowedProviders: nil, upstreamCredentials: [:])

    func chain(mode: ClientAuthenticator.Mode = .apiKey) -> some HTTPResponder {
        let authenticator = ClientAuthenticator(mode: mode, clients: [
            ClientCredentialRecord(client: web, keyDigest: SHA256.hash(Array("web-key".utf8))),
            ClientCredentialRecord(client: batch, keyDigest: SHA256.hash(Array("batch-key".utf8))),
        ])
        var router = Router()
        router.get("/whoami") { _, context in HTTPResponse(status: .ok, text: context[GatewayClientKey.self]?.id ?? "none") }
        router.get("/healthz") { _, _ in HTTPResponse(status: .ok, text: "ok") }
        return MiddlewareChain {
            RequestTraceMiddleware()
            AuthenticationMiddleware(authenticator: authenticator, publicPaths: ["/healthz"])
            router
        }
    }

    func get(_ path: String, _ headers: HTTPHeaders = [:], mode: ClientAuthenticator.Mode = .apiKey) async -> HTTPResponse {
        await chain(mode: mode).respond(to: HTTPRequest(method: .get, target: path, headers: headers), context: RequestContext())
    }

    @Test func acceptsBearerAndApiKeyHeaders() async {
        #expect(String(decoding: await get("/whoami", ["Authorization": "Bearer web-key"]).body, as: UTF8.self) == "web")
        #expect(String(decoding: await get("/whoami", ["authorization": "bearer  batch-key"]).body, as: UTF8.self) == "batch")
        #expect(String(decoding: await get("/whoami", ["X-API-Key": "batch-key"]).body, as: UTF8.self) == "batch")
    }

    @Test(arguments: [
        [:], ["Authorization": "Bearer nope"], ["Authorization": "Basic d2ViLWtleQ=="], ["X-API-Key": ""],
        ["Authorization": "Bearer"], ["X-API-Key": "web-key2"], ["Authorization": "Bearer web-ke"],
    ] as [HTTPHeaders])
    func refusesMissingOrUnknownKeysWith401(_ headers: HTTPHeaders) async throws {
        let response = await get("/whoami", headers)
        #expect(response.status == .unauthorized)
        #expect(response.headers["WWW-Authenticate"]?.hasPrefix("Bearer") == true)
        #expect(response.headers["Content-Type"] == "application/problem+json")
        let problem = try JSONParser.parse(response.body)
        #expect(problem["status"] == 401)
        #expect(problem["requestId"]?.stringValue == response.headers["X-Request-Id"])
    }

    @Test func aMatchedKeyIsRememberedAndNothingElseIs() {
        let authenticator = ClientAuthenticator(mode: .apiKey, clients: [
            ClientCredentialRecord(client: web, keyDigest: SHA256.hash(Array("web-key".utf8))),
            ClientCredentialRecord(client: batch, keyDigest: SHA256.hash(Array("batch-key".utf8))),
        ])
        for attempt in 0..<1_000 {
            #expect(authenticator.authenticate(["X-API-Key": "guess-\(attempt)"]) == .failure(.unknownKey))
        }
        #expect(authenticator.rememberedKeys == 0, "a wrong key is never remembered")
        for _ in 0..<3 {
            #expect(authenticator.authenticate(["Authorization": "Bearer web-key"]) == .success(web))
            #expect(authenticator.authenticate(["X-API-Key": "batch-key"]) == .success(batch))
        }
        #expect(authenticator.rememberedKeys == 2)
        // Other spellings of a key are accepted and never remembered: however many a caller sends,
        // the table keeps one entry per client and header.
        var spellings = [" batch-key\t", "batch-key ", "\tbatch-key"].map { HTTPHeaders([("X-API-Key", $0)]) }
        for scheme in ["bearer", "BEARER", "Bearer", "bEaReR"] {
            for (before, after) in [("", " "), ("  ", ""), ("\t", "\t"), (" ", "")] {
                spellings.append(["Authorization": before + scheme + " " + before + "batch-key" + after])
            }
        }
        for headers in spellings {
            #expect(authenticator.authenticate(headers) == .success(batch), "\(headers)")
        }
        #expect(authenticator.rememberedKeys == 2)
        #expect(authenticator.authenticate(["Authorization": "Bearer batch-key"]) == .success(batch))
        #expect(authenticator.authenticate(["Authorization": "Bearer batch-key"]) == .success(batch))
        #expect(authenticator.rememberedKeys == 3, "the canonical Authorization spelling is the client's second entry")
        // A remembered key's prefix, extension or other case is still no key.
        for wrong in ["web-ke", "web-key2", "WEB-KEY", "web-key "] {
            #expect(authenticator.authenticate(["Authorization": "Bearer \(wrong)x"]) == .failure(.unknownKey))
            #expect(authenticator.authenticate(["X-API-Key": wrong + "!"]) == .failure(.unknownKey))
        }
        #expect(authenticator.authenticate(["Authorization": "Bearerweb-key"]) == .failure(.malformedAuthorization))
        #expect(authenticator.authenticate(["Authorization": "Bearer\u{301} web-key"]) == .failure(.malformedAuthorization))
        #expect(authenticator.authenticate(["Authorization": "Basic web-key"]) == .failure(.malformedAuthorization))
        #expect(authenticator.rememberedKeys == 3)
    }

    /// Keys are compared by bytes (their digest); a remembered key must not widen that to Unicode
    /// canonical equivalence, under which `é` and `e` + U+0301 are one string.
    @Test func aNonASCIIKeyIsNeverRememberedSoItsCanonicalTwinIsRefused() {
        let composed = "caf\u{E9}-key"
        let decomposed = "cafe\u{301}-key"
        let authenticator = ClientAuthenticator(mode: .apiKey, clients: [
            ClientCredentialRecord(client: web, keyDigest: SHA256.hash(Array(composed.utf8))),
        ])
        #expect(authenticator.authenticate(["X-API-Key": composed]) == .success(web))
        #expect(authenticator.authenticate(["X-API-Key": decomposed]) == .failure(.unknownKey))
        #expect(authenticator.authenticate(["X-API-Key": composed]) == .success(web))
        #expect(authenticator.rememberedKeys == 0)
    }

    @Test func operationalPathsAndModeNoneNeedNoKey() async {
        #expect(await get("/healthz").status == .ok)
        #expect(String(decoding: await get("/whoami", mode: .none).body, as: UTF8.self) == "anonymous")
    }
}

@Suite struct RateLimitMiddlewareTests {
    @Test func headersAreExactAndTheLimitHoldsAtTheBoundary() async throws {
        let clock = ManualClock()
        let store = MemoryRateLimitStore(now: { clock.now })
        let policy = try RateLimitPolicy(requestsPerSecond: 2, burst: 3)
        var router = Router()
        router.get("/x") { _, _ in HTTPResponse(status: .ok, text: "x") }
        let chain = MiddlewareChain {
            RequestTraceMiddleware()
            AuthenticationMiddleware(authenticator: ClientAuthenticator(mode: .none, clients: []), publicPaths: [])
            RateLimitMiddleware(store: store, defaultPolicy: policy, policies: [:])
            router
        }
        func call() async -> HTTPResponse {
            await chain.respond(to: HTTPRequest(method: .get, target: "/x"), context: RequestContext(remoteAddress: "10.0.0.1"))
        }
        for expectedRemaining in [2, 1, 0] {
            let response = await call()
            #expect(response.status == .ok)
            #expect(response.headers["RateLimit-Limit"] == "3")
            #expect(response.headers["RateLimit-Remaining"] == String(expectedRemaining))
        }
        let limited = await call()
        #expect(limited.status == .tooManyRequests)
        #expect(limited.headers["Retry-After"] == "1")
        #expect(limited.headers["RateLimit-Remaining"] == "0")
        #expect(limited.headers["RateLimit-Reset"] == "2")
        clock.advance(by: 499_999_999)
        #expect(await call().status == .tooManyRequests)
        clock.advance(by: 1)
        #expect(await call().status == .ok)
    }
}

@Suite struct UpstreamCallBudgetMiddlewareTests {
    /// The request bucket is generous; the call budget holds 5 calls and refills one a second.
    /// The handler spends `n` calls as the API would, and answers a refusal as the API does.
    @Test func theCallBudgetRefusesExactlyAtItsLimitAndItsRefusalCarriesItsOwnHeaders() async throws {
        let clock = ManualClock()
        let store = MemoryRateLimitStore(now: { clock.now })
        let directory = ClientDirectory(ClientDirectory.Entries(
            authenticator: ClientAuthenticator(mode: .none, clients: []),
            defaultPolicy: try RateLimitPolicy(requestsPerSecond: 100, burst: 100), policies: [:],
            upstreamCalls: UpstreamCallLimits(
                defaultPolicy: try RateLimitPolicy(requestsPerSecond: 1, burst: 5), policies: [:], maxCallsPerRequest: 10)
        ))
        var router = Router()
        router.get("/spend/{n}") { _, context in
            guard let budget = context[UpstreamCallBudgetKey.self], let count = Int(context.pathParameters["n"] ?? "") else {
                return HTTPResponse(status: .internalServerError, text: "no budget")
            }
            #expect(budget.maxCallsPerRequest == 10)
            var granted = 0
            for _ in 0..<count {
                if let refusal = await budget.charge() {
                    return Problem(
                        .rateLimited, status: .tooManyRequests, title: "Upstream call budget spent", detail: "spent",
                        retryAfterSeconds: refusal.retryAfterSeconds, callBudgetRefusal: refusal
                    ).response(requestID: "")
                }
                granted += 1
            }
            return HTTPResponse(status: .ok, text: String(granted))
        }
        let refusalsSeen = Atomic<Int>(0)
        let chain = MiddlewareChain {
            RequestTraceMiddleware()
            AuthenticationMiddleware(directory: directory, publicPaths: [])
            RateLimitMiddleware(store: store, directory: directory, onCallBudgetSpent: { client in
                #expect(client == "anonymous")
                refusalsSeen.add(1, ordering: .relaxed)
            })
            router
        }
        func spend(_ count: Int) async -> HTTPResponse {
            await chain.respond(to: HTTPRequest(method: .get, target: "/spend/\(count)"), context: RequestContext(remoteAddress: "10.0.0.1"))
        }

        #expect(String(decoding: await spend(3).body, as: UTF8.self) == "3")
        let last = await spend(2)
        #expect(String(decoding: last.body, as: UTF8.self) == "2")
        #expect(last.headers["RateLimit-Limit"] == "100")

        let refused = await spend(1)
        #expect(refused.status == .tooManyRequests)
        #expect(refused.headers["Retry-After"] == "1")
        #expect(refused.headers["RateLimit-Limit"] == "5")
        #expect(refused.headers["RateLimit-Remaining"] == "0")
        #expect(refused.headers["RateLimit-Reset"] == "5")
        #expect(refusalsSeen.load(ordering: .relaxed) == 1, "each refusal is reported, for gateway_upstream_call_budget_refused_total")

        clock.advance(by: 999_999_999)
        #expect(await spend(1).status == .tooManyRequests)
        clock.advance(by: 1)
        #expect(String(decoding: await spend(1).body, as: UTF8.self) == "1")
        #expect(await spend(1).status == .tooManyRequests)
    }
}

@Suite struct ClientAddressTests {
    let resolver = ClientAddressResolver(isTrustedProxy: { $0 == "127.0.0.1" || $0 == "10.0.0.5" })

    @Test func believesForwardedForOnlyFromTrustedProxies() {
        #expect(resolver.clientAddress(peer: "203.0.113.9", headers: ["X-Forwarded-For": "1.2.3.4"]) == "203.0.113.9")
        #expect(resolver.clientAddress(peer: "127.0.0.1", headers: ["X-Forwarded-For": "1.2.3.4"]) == "1.2.3.4")
        // A client-supplied first hop cannot hide the address the trusted proxy saw.
        #expect(resolver.clientAddress(peer: "127.0.0.1", headers: ["X-Forwarded-For": "6.6.6.6, 198.51.100.7, 10.0.0.5"]) == "198.51.100.7")
        #expect(resolver.clientAddress(peer: "127.0.0.1", headers: [:]) == "127.0.0.1")
        #expect(resolver.clientAddress(peer: "127.0.0.1", headers: ["X-Forwarded-For": "not an ip"]) == "127.0.0.1")
        #expect(resolver.clientAddress(peer: "127.0.0.1", headers: ["X-Forwarded-For": "2001:db8::1"]) == "2001:db8::1")
    }

    @Test func aPeerIsJudgedOnceWhileRememberedAndForwardedHopsEveryTime() {
        let judged = Mutex<[String]>([])
        let resolver = ClientAddressResolver(isTrustedProxy: { address in
            judged.withLock { $0.append(address) }
            return address == "127.0.0.1"
        })
        for _ in 0..<3 {
            #expect(resolver.clientAddress(peer: "127.0.0.1", headers: ["X-Forwarded-For": "1.2.3.4"]) == "1.2.3.4")
            #expect(resolver.clientAddress(peer: "203.0.113.9", headers: ["X-Forwarded-For": "1.2.3.4"]) == "203.0.113.9")
        }
        // Each peer once; the client-supplied hop is no peer and is judged on every request.
        #expect(judged.withLock { $0 } == ["127.0.0.1", "1.2.3.4", "203.0.113.9", "1.2.3.4", "1.2.3.4"])
    }

    @Test func manyDistinctPeersNeverChangeTheAnswers() {
        let resolver = ClientAddressResolver(isTrustedProxy: { $0.hasPrefix("10.0.") })
        for round in 0..<2 {
            for index in 0..<600 {
                let peer = "10.\(index % 2).\(index / 256).\(index % 256)"
                let expected = index % 2 == 0 ? "1.2.3.4" : peer
                #expect(resolver.clientAddress(peer: peer, headers: ["X-Forwarded-For": "1.2.3.4"]) == expected, "round \(round)")
            }
        }
    }
}

@Suite struct ObservabilityTests {
    @Test func accessLogIsOneJSONLinePerRequestWithClientAndRoute() async throws {
        let lines = Mutex<[String]>([])
        let output = JSONLogHandler.LogOutput { bytes in lines.withLock { $0.append(String(decoding: bytes, as: UTF8.self)) } }
        let logger = Logger(label: "access") { JSONLogHandler(label: $0, output: output) }
        let metrics = GatewayMetrics()
        var router = Router()
        router.get("/items/{id}") { _, _ in HTTPResponse(status: .ok, text: "x") }
        let routerCopy = router
        let chain = MiddlewareChain {
            RequestTraceMiddleware()
            ObservabilityMiddleware(logger: logger, metrics: metrics, routedMethods: routerCopy.routedMethods, routeTemplate: { method, path in
                routerCopy.match(method: method, path: path)?.template ?? "unmatched"
            })
            AuthenticationMiddleware(authenticator: ClientAuthenticator(mode: .none, clients: []), publicPaths: [])
            router
        }
        _ = await chain.respond(to: HTTPRequest(method: .get, target: "/items/42", headers: ["X-Request-Id": "abc-1"]), context: RequestContext())
        let line = try #require(lines.withLock { $0.first })
        let record = try JSONParser.parse(line)
        #expect(record["requestId"] == "abc-1")
        #expect(record["route"] == "/items/{id}")
        #expect(record["clientId"] == "anonymous")
        #expect(record["status"] == 200)
        #expect(line.hasSuffix("\n"))
        let exposition = String(decoding: metrics.exposition(), as: UTF8.self)
        #expect(exposition.contains(#"gateway_http_requests_total{method="GET",route="/items/{id}",status="200"} 1"#))
        #expect(exposition.contains("gateway_http_request_duration_seconds_bucket"))
    }

    @Test func latencyCountsFromWhenTheLoopLearnedOfTheRequestInFiftyMicrosecondSteps() async throws {
        let metrics = GatewayMetrics()
        var router = Router()
        router.get("/hit") { _, _ in HTTPResponse(status: .ok, text: "x") }
        let routerCopy = router
        let chain = MiddlewareChain {
            ObservabilityMiddleware(logger: Logger(label: "quiet") { _ in SwiftLogNoOpLogHandler() }, metrics: metrics,
                                    routedMethods: routerCopy.routedMethods, routeTemplate: { _, _ in "/hit" })
            router
        }
        // Read 30 ms before the chain ran (it waited behind other connections of its loop iteration).
        let context = RequestContext(receivedAtNanoseconds: monotonicNanoseconds() - 30_000_000)
        _ = await chain.respond(to: HTTPRequest(method: .get, target: "/hit"), context: context)
        let exposition = String(decoding: metrics.exposition(), as: UTF8.self)
        #expect(exposition.contains(#"gateway_http_request_duration_seconds_bucket{route="/hit",le="0.00005"} 0"#), "\(exposition)")
        #expect(exposition.contains(#"gateway_http_request_duration_seconds_bucket{route="/hit",le="0.025"} 0"#))
        #expect(exposition.contains(#"gateway_http_request_duration_seconds_bucket{route="/hit",le="0.05"} 1"#))
    }
}

@Suite struct JSONLogHandlerTests {
    func lines(_ body: (Logger) -> Void, level: Logger.Level = .info) -> [String] {
        let lines = Mutex<[String]>([])
        let output = JSONLogHandler.LogOutput { bytes in lines.withLock { $0.append(String(decoding: bytes, as: UTF8.self)) } }
        var logger = Logger(label: "test") { JSONLogHandler(label: $0, output: output) }
        logger.logLevel = level
        body(logger)
        return lines.withLock { $0 }
    }

    @Test func aRecordIsOneJSONObjectWithFixedFieldsFirstAndMetadataSorted() throws {
        var logger = Logger(label: "unused")
        let written = lines { base in
            logger = base
            logger[metadataKey: "component"] = "cache"
            logger.warning("evicted \"a\"\nb", metadata: [
                "zeta": "1", "alpha": .stringConvertible(42),
                "list": ["x", ["y"]], "nested": ["b": "2", "a": "1"],
            ])
        }
        let line = try #require(written.first)
        #expect(written.count == 1 && line.hasSuffix("}\n") && line.filter { $0 == "\n" }.count == 1)
        let record = try JSONParser.parse(Array(line.utf8))
        #expect(record["level"] == "warning" && record["logger"] == "test" && record["message"] == "evicted \"a\"\nb")
        #expect(record["component"] == "cache" && record["alpha"] == 42 && record["zeta"] == "1")
        #expect(record["list"]?.arrayValue?.count == 2)
        #expect(record["nested"]?["a"] == "1")
        let keys = ["\"time\"", "\"level\"", "\"logger\"", "\"message\"", "\"alpha\"", "\"component\"", "\"list\"", "\"nested\"", "\"zeta\""]
        let positions = keys.compactMap { line.range(of: $0)?.lowerBound }
        #expect(positions.count == keys.count && positions == positions.sorted(), "fixed fields first, then metadata by key")
    }

    /// The calendar part is computed once a second and reused: it must still be the current time.
    @Test func theTimeIsTheCurrentTimeOnConsecutiveLines() async throws {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        for _ in 0..<3 {
            let line = try #require(lines { $0.info("x") }.first)
            let time = try #require(try JSONParser.parse(Array(line.utf8))["time"]?.stringValue)
            let logged = try #require(formatter.date(from: time))
            #expect(abs(logged.timeIntervalSinceNow) < 2, "\(time)")
            try await Task.sleep(for: .milliseconds(600))
        }
    }

    /// Access lines skip swift-log's metadata; they must still be the line the generic path writes.
    @Test(arguments: [
        AccessLine(requestID: "req-1", method: "GET", route: "/executions", path: "/executions?q=\"x\"\n\u{7}é",
                   status: 200, bytes: 10_240, durationNanoseconds: 12_345_678, upstreamCalls: 0,
                   remoteAddress: "203.0.113.9", clientID: "web", cacheStatus: "executions-gateway; hit"),
        AccessLine(requestID: "", method: "DELETE", route: "unmatched", path: "/", status: 404, bytes: 0,
                   durationNanoseconds: 0, upstreamCalls: 12, remoteAddress: "::1", clientID: nil, cacheStatus: nil),
        AccessLine(requestID: "r", method: "GET", route: "/x", path: "/x", status: 429, bytes: Int.max,
                   durationNanoseconds: UInt64.max, upstreamCalls: -1, remoteAddress: "", clientID: "", cacheStatus: nil),
    ])
    func aDirectAccessLineIsTheGenericOneByteForByte(_ access: AccessLine) throws {
        let captured = Mutex<[String]>([])
        let output = JSONLogHandler.LogOutput { bytes in captured.withLock { $0.append(String(decoding: bytes, as: UTF8.self)) } }
        let handler = JSONLogHandler(label: "executions-gateway.access", output: output)
        #expect(handler.logAccess(access))
        Logger(label: "executions-gateway.access") { _ in handler }.info("request", metadata: access.metadata)
        let written = captured.withLock { $0 }
        try #require(written.count == 2)
        // The time differs (a later millisecond at most); everything after it must not.
        let withoutTime = written.map { line in line.drop { $0 != "," } }
        #expect(withoutTime[0] == withoutTime[1])
        #expect(written[0].hasPrefix("{\"time\":\"") && written[0].hasSuffix("}\n"))
        let fields = try JSONParser.parse(Array(written[0].utf8))
        #expect(fields["path"]?.stringValue == access.path)
        // Numbers are JSON numbers, not strings.
        #expect(fields["status"] == .integer(Int64(access.status)))
        #expect(fields["bytes"] == .integer(Int64(access.bytes)))
        #expect(fields["upstreamCalls"] == .integer(Int64(access.upstreamCalls)))
        let tenths = access.durationNanoseconds / 100_000
        #expect(written[0].contains(",\"durationMs\":\(tenths / 10).\(tenths % 10),"))
        #expect(fields["durationMs"]?.doubleValue != nil)
    }

    @Test func aHandlerWithItsOwnMetadataLeavesAccessLinesToTheGenericPath() {
        let captured = Mutex<[String]>([])
        let output = JSONLogHandler.LogOutput { bytes in captured.withLock { $0.append(String(decoding: bytes, as: UTF8.self)) } }
        var handler = JSONLogHandler(label: "a", output: output)
        handler[metadataKey: "replica"] = "r1"
        let access = AccessLine(requestID: "q", method: "GET", route: "/", path: "/", status: 200, bytes: 1,
                                durationNanoseconds: 1, upstreamCalls: 0, remoteAddress: "x", clientID: nil, cacheStatus: nil)
        #expect(!handler.logAccess(access))
        #expect(captured.withLock { $0.isEmpty })
    }

    @Test func theTimeIsRFC3339UTCWithMilliseconds() throws {
        let line = try #require(lines { $0.info("x") }.first)
        let time = try #require(try JSONParser.parse(Array(line.utf8))["time"]?.stringValue)
        #expect(time.utf8.count == 24)
        let shape = time.utf8.enumerated().allSatisfy { index, byte in
            switch index {
            case 4, 7: byte == UInt8(ascii: "-")
            case 10: byte == UInt8(ascii: "T")
            case 13, 16: byte == UInt8(ascii: ":")
            case 19: byte == UInt8(ascii: ".")
            case 23: byte == UInt8(ascii: "Z")
            default: (0x30...0x39).contains(byte)
            }
        }
        #expect(shape, "\(time)")
        #expect(time.hasPrefix("20"))
    }

    @Test func metadataNamedLikeAFixedFieldReplacesItInPlace() throws {
        let line = try #require(lines { $0.info("real", metadata: ["message": "override"]) }.first)
        #expect(try JSONParser.parse(Array(line.utf8))["message"] == "override")
        #expect(line.components(separatedBy: "\"message\"").count == 2, "no duplicate key")
    }

    @Test func recordsBelowTheLevelAreNotWritten() {
        #expect(lines({ $0.info("quiet") }, level: .warning).isEmpty)
    }
}

@Suite struct OperationalEndpointTests {
    @Test func readinessFailsWhileDrainingAndHealthStaysUp() async throws {
        let draining = Flag()
        var router = Router()
        OperationalEndpoints(
            metrics: GatewayMetrics(), isDraining: { draining.isSet }, refreshGauges: {}, openAPIDocument: Array("openapi: 3.1.0\n".utf8)
        ).register(on: &router)
        func status(_ path: String) async -> Int {
            await router.respond(to: HTTPRequest(method: .get, target: path), context: RequestContext()).status.code
        }
        #expect(await status("/readyz") == 200)
        #expect(await status("/healthz") == 200)
        draining.set()
        let response = await router.respond(to: HTTPRequest(method: .get, target: "/readyz"), context: RequestContext())
        #expect(response.status.code == 503)
        #expect(response.headers["Retry-After"] == "1")
        #expect(await status("/healthz") == 200)
        #expect(String(decoding: await router.respond(to: HTTPRequest(method: .get, target: "/openapi.yaml"), context: RequestContext()).body, as: UTF8.self) == "openapi: 3.1.0\n")
    }
}

/// Standard output's batching, with a capturing sink in its place.
@Suite struct LogOutputBatchingTests {
    static let line = AccessLine(
        requestID: "r", method: "GET", route: "/executions", path: "/executions", status: 200, bytes: 10,
        durationNanoseconds: 100_000, upstreamCalls: 0, remoteAddress: "10.0.0.1", clientID: nil, cacheStatus: nil
    )

    final class Captured: Sendable {
        let writes = Mutex<[String]>([])
        var all: [String] { writes.withLock { $0 } }
    }

    static func handler(_ captured: Captured) -> JSONLogHandler {
        let output = JSONLogHandler.LogOutput(batchesPerLoopIteration: true) { bytes in
            captured.writes.withLock { $0.append(String(decoding: bytes, as: UTF8.self)) }
        }
        return JSONLogHandler(label: "access", output: output)
    }

    static func runOnLoop(_ body: @escaping @Sendable () -> Void) async throws {
        let loop = try EventLoop(name: "log-test")
        try loop.start()
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            loop.execute {
                body()
                loop.execute { loop.runAtIterationEnd { loop.execute { done.resume() } } }
            }
        }
        loop.stop()
        await loop.waitUntilStopped()
    }

    @Test func linesLoggedInOneLoopIterationAreWrittenTogetherWhenItEnds() async throws {
        let captured = Captured()
        let handler = Self.handler(captured)
        try await Self.runOnLoop {
            for _ in 0..<3 { handler.logAccess(Self.line) }
            // Nothing is written before the iteration ends.
            #expect(captured.all.isEmpty)
        }
        let writes = captured.all
        #expect(writes.count == 1)
        let lines = writes.joined().split(separator: "\n")
        #expect(lines.count == 3 && lines.allSatisfy { $0.contains(#""requestId":"r""#) })
    }

    @Test func eachLoopBatchesItsOwnLinesAndWritesThemWhenItsIterationEnds() async throws {
        let captured = Captured()
        let handler = Self.handler(captured)
        let loops = try EventLoopGroup(count: 2, namePrefix: "log-test")
        await withTaskGroup(of: Void.self) { group in
            for (index, loop) in loops.loops.enumerated() {
                group.addTask {
                    await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
                        loop.execute {
                            var line = Self.line
                            line.requestID = "loop\(index)"
                            for _ in 0..<5 { handler.logAccess(line) }
                            loop.execute { loop.runAtIterationEnd { loop.execute { done.resume() } } }
                        }
                    }
                }
            }
        }
        await loops.shutdown()
        // One write per loop, each holding that loop's five lines and no other loop's.
        let writes = captured.all
        #expect(writes.count == 2)
        for write in writes {
            let lines = write.split(separator: "\n")
            #expect(lines.count == 5)
            #expect(write.contains(#""requestId":"loop0""#) != write.contains(#""requestId":"loop1""#))
        }
    }

    /// A value whose description logs, on the same loop, while its own line is being rendered.
    struct LoggingDescription: CustomStringConvertible, Sendable {
        let handler: JSONLogHandler
        var description: String {
            handler.logAccess(LogOutputBatchingTests.line)
            return "outer value"
        }
    }

    @Test func aLineLoggedWhileAnotherIsRenderedIsNotLost() async throws {
        let captured = Captured()
        let handler = Self.handler(captured)
        try await Self.runOnLoop {
            let logger = Logger(label: "nested") { _ in handler }
            logger.info("outer", metadata: ["value": .stringConvertible(LoggingDescription(handler: handler))])
            handler.logAccess(Self.line)
        }
        let lines = captured.all.joined().split(separator: "\n")
        #expect(lines.count == 3)
        #expect(lines.filter { $0.contains(#""requestId":"r""#) }.count == 2)
        #expect(lines.contains { $0.contains(#""value":"outer value""#) })
    }

    @Test func linesFromOtherThreadsAreWrittenAtOnce() {
        let captured = Captured()
        let handler = Self.handler(captured)
        handler.logAccess(Self.line)
        #expect(captured.all.count == 1)
        handler.logAccess(Self.line)
        #expect(captured.all.count == 2)
    }

    @Test func aLongIterationWritesEveryBatchLimitWithoutWaitingForItsEnd() async throws {
        let captured = Captured()
        let handler = Self.handler(captured)
        let lineBytes = Mutex(0)
        try await Self.runOnLoop {
            var written = 0
            while captured.all.isEmpty {
                handler.logAccess(Self.line)
                written += 1
                #expect(written < 10_000)
            }
            lineBytes.withLock { $0 = captured.all.joined().utf8.count / written }
        }
        let writes = captured.all
        #expect(writes.count == 1)
        #expect(writes[0].utf8.count >= 64 * 1024 && writes[0].utf8.count < 64 * 1024 + 2 * lineBytes.withLock { $0 })
    }
}
