import ExecutionsAPI
import GatewayApp
import GatewayConfig
import GatewayCrypto
import GatewayEventLoop
import GatewayHTTP
import GatewayRateLimit
import GatewayServer
import GatewayTestSupport
import Logging
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Metric labels from bounded sets only.
@Suite struct BoundedLabelTests {
    @Test func unroutedMethodsAreOTHERAndUnnamedStatusesAreTheirClass() async throws {
        let metrics = GatewayMetrics()
        var logger = Logger(label: "access")
        logger.logLevel = .critical
        var router = Router()
        router.get("/items/{id}") { _, _ in HTTPResponse(status: .ok, text: "x") }
        router.get("/odd") { _, _ in HTTPResponse(status: HTTPStatus(code: 299), text: "x") }
        let routes = router
        let chain = MiddlewareChain {
            ObservabilityMiddleware(logger: logger, metrics: metrics, routedMethods: routes.routedMethods, routeTemplate: { method, path in
                routes.match(method: method == .head ? .get : method, path: path)?.template ?? "unmatched"
            })
            router
        }
        for index in 0..<50 {
            _ = await chain.respond(to: HTTPRequest(method: HTTPMethod("M\(index)X"), target: "/items/\(index)"), context: RequestContext())
            _ = await chain.respond(to: HTTPRequest(method: .get, target: "/items/\(index)"), context: RequestContext())
            _ = await chain.respond(to: HTTPRequest(method: .get, target: "/odd"), context: RequestContext())
        }
        _ = await chain.respond(to: HTTPRequest(method: .head, target: "/items/1"), context: RequestContext())
        let exposition = String(decoding: metrics.exposition(), as: UTF8.self)
        let series = exposition.split(separator: "\n").filter { $0.hasPrefix("gateway_http_requests_total{") }.sorted()
        #expect(series == [
            #"gateway_http_requests_total{method="GET",route="/items/{id}",status="200"} 50"#,
            #"gateway_http_requests_total{method="GET",route="/odd",status="2xx"} 50"#,
            #"gateway_http_requests_total{method="HEAD",route="/items/{id}",status="200"} 1"#,
            #"gateway_http_requests_total{method="OTHER",route="unmatched",status="501"} 50"#,
        ])
    }
}

/// Requests refused before authentication spend a per-address budget.
@Suite struct UnauthenticatedLimitTests {
    static let web = GatewayClient(id: "web", allowedProviders: nil, upstreamCredentials: [:])

    static func chain(limited: Flag = Flag()) throws -> some HTTPResponder {
        let authenticator = ClientAuthenticator(mode: .apiKey, clients: [
            ClientCredentialRecord(client: web, keyDigest: SHA256.hash(Array("web-key".utf8))),
        ])
        // The clock never moves: no token comes back during the test, however slow the machine.
        let limiter = UnauthenticatedLimiter(policy: try RateLimitPolicy(requestsPerSecond: 1, burst: 2), now: { 1_000_000_000 },
                                             onLimited: { limited.set() })
        var router = Router()
        router.get("/whoami") { _, context in HTTPResponse(status: .ok, text: context[GatewayClientKey.self]?.id ?? "none") }
        return MiddlewareChain {
            RequestTraceMiddleware()
            ClientAddressMiddleware(resolver: ClientAddressResolver(isTrustedProxy: { $0 == "10.0.0.1" }))
            AuthenticationMiddleware(authenticator: authenticator, publicPaths: [], unauthenticatedLimiter: limiter)
            router
        }
    }

    static func get(_ chain: some HTTPResponder, from peer: String, _ headers: HTTPHeaders = [:]) async -> HTTPResponse {
        await chain.respond(to: HTTPRequest(method: .get, target: "/whoami", headers: headers), context: RequestContext(remoteAddress: peer))
    }

    @Test func pastTheBudgetAnAddressGets429WithTheUsualHeaders() async throws {
        let limited = Flag()
        let chain = try Self.chain(limited: limited)
        #expect(await Self.get(chain, from: "192.0.2.7").status.code == 401)
        #expect(await Self.get(chain, from: "192.0.2.7", ["X-API-Key": "guess"]).status.code == 401)
        let refused = await Self.get(chain, from: "192.0.2.7")
        #expect(refused.status.code == 429)
        #expect(refused.headers["RateLimit-Limit"] == "2")
        #expect(refused.headers["RateLimit-Remaining"] == "0")
        #expect(refused.headers["Retry-After"] == "1")
        #expect(refused.headers["Content-Type"] == "application/problem+json")
        #expect(limited.isSet)
        // Other addresses have their own budget, and a valid key is never refused by this one.
        #expect(await Self.get(chain, from: "192.0.2.8").status.code == 401)
        #expect(String(decoding: await Self.get(chain, from: "192.0.2.7", ["X-API-Key": "web-key"]).body, as: UTF8.self) == "web")
    }

    @Test func behindATrustedProxyTheForwardedAddressIsWhatIsLimited() async throws {
        let chain = try Self.chain()
        for _ in 0..<2 {
            #expect(await Self.get(chain, from: "10.0.0.1", ["X-Forwarded-For": "198.51.100.1"]).status.code == 401)
        }
        #expect(await Self.get(chain, from: "10.0.0.1", ["X-Forwarded-For": "198.51.100.1"]).status.code == 429)
        // Another client behind the same proxy is not affected.
        #expect(await Self.get(chain, from: "10.0.0.1", ["X-Forwarded-For": "198.51.100.2"]).status.code == 401)
    }
}

/// Response heads stay within nginx's default `proxy_buffer_size`.
@Suite struct ResponseHeadBudgetTests {
    static func head(cursorBytes: Int) async throws -> (head: String, body: String) {
        var router = Router()
        router.get("/page") { _, _ in
            let cursor = String(repeating: "c", count: cursorBytes)
            var response = HTTPResponse(status: .ok, headers: [
                "Content-Type": "application/json", "Cache-Control": "private",
                "ETag": "W/\"i24EHGzmer1RIcLsC5YxqTMR\"", "Cache-Status": "ExecutionsGateway; fwd=miss",
                "Vary": "Authorization, X-API-Key", "Link": "</executions?cursor=\(cursor)>; rel=\"next\"",
            ], text: "{\"page\":{\"nextCursor\":\"\(cursor)\"}}")
            response.headers.add(name: "RateLimit-Limit", value: "40")
            return response
        }
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let server = HTTPServer(
            configuration: HTTPServerConfiguration(host: "127.0.0.1", port: 0, workers: 1),
            responder: MiddlewareChain {
                ResponseHeadBudgetMiddleware()
                RequestTraceMiddleware()
                router
            },
            logger: logger
        )
        try server.start()
        let client = try RawClient(port: server.localPort)
        try await client.send("GET /page HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Request-Id: \(String(repeating: "r", count: 128))\r\n\r\n")
        let bytes = await client.readUntilClose().bytes
        // Ends the server's lingering close at once.
        client.shutdownWrite()
        await server.shutdown()
        let text = String(decoding: bytes, as: UTF8.self)
        let parts = text.components(separatedBy: "\r\n\r\n")
        return (parts.first.map { $0 + "\r\n\r\n" } ?? "", parts.dropFirst().joined())
    }

    @Test func aWorstCaseCursorLeavesLinkOutAndTheHeadWithinFourKiB() async throws {
        // About the largest cursor the gateway issues (12,288 characters).
        let (head, body) = try await Self.head(cursorBytes: 12_000)
        #expect(head.utf8.count <= 4096)
        #expect(!head.lowercased().contains("\r\nlink:"))
        #expect(body.contains(String(repeating: "c", count: 12_000)), "the body still carries the cursor")
    }

    @Test func aCursorThatFitsKeepsItsLinkAndTheHeadStillFits() async throws {
        for cursorBytes in [100, 3_000] {
            let (head, _) = try await Self.head(cursorBytes: cursorBytes)
            #expect(head.contains("Link: </executions?cursor="))
            #expect(head.utf8.count <= 4096, "\(cursorBytes)-byte cursor: \(head.utf8.count)-byte head")
        }
    }
}

/// The log writer's thread wakes at most once per gather interval, however often lines arrive:
/// waking it once per loop iteration cost a futex wake and two context switches each time.
@Suite struct LogWriterGatheringTests {
    @Test func linesArrivingEvery20MicrosecondsWakeTheWriterAtMostOncePerMillisecond() async throws {
        let devNull = open("/dev/null", O_WRONLY)
        try #require(devNull >= 0)
        defer { close(devNull) }
        let writer = DescriptorLogWriter(descriptor: devNull, gatherInterval: .milliseconds(1))
        let line = Array("{\"msg\":\"request\"}\n".utf8)
        let started = ContinuousClock.now
        await onOwnThread { () -> Void in
            for _ in 0..<2_000 {
                writer.enqueue(line)
                sleepThread(nanoseconds: 20_000)
            }
        }
        let elapsed = ContinuousClock.now - started
        while !writer.isIdle { try await Task.sleep(for: .milliseconds(1)) }
        // Each wake-up writes, then pauses a millisecond before it can wake again; without the
        // pause every enqueue that found the buffer empty woke it (about 2,000 here).
        let bound = Int(elapsed / .milliseconds(1)) + 2
        #expect(writer.writeWakeUps >= 1)
        #expect(writer.writeWakeUps <= bound, "\(writer.writeWakeUps) wake-ups in \(elapsed)")
    }
}

/// Log output never blocks the loop: a stalled descriptor drops lines and counts them.
@Suite struct StalledLogOutputTests {
    @Test func aPipeNobodyReadsDropsAndCountsLinesWhileTheGatewayKeepsAnswering() async throws {
        var ends: [Int32] = [0, 0]
        try #require(pipe(&ends) == 0)
        let output = JSONLogHandler.LogOutput(descriptor: ends[1], maxBufferedBytes: 8_192)
        let accessLogger = Logger(label: "access") { JSONLogHandler(label: $0, output: output) }
        var quiet = Logger(label: "gateway")
        quiet.logLevel = .critical
        var server = ServerSettings()
        server.port = 0
        server.workers = 1
        let runtime = try GatewayRuntime(
            configuration: GatewayConfiguration(
                server: server,
                auth: AuthSettings(mode: .none, cursorSecret: "stalled-log-test-secret"),
                providers: [ProviderSettings(name: "kaizen", type: .kaizen, baseURL: "http://127.0.0.1:9", credential: "unused")]
            ),
            logger: quiet, accessLogger: accessLogger
        )
        try runtime.start()
        // About 150 KB of access lines: twice what the pipe (64 KiB) and the writer's buffer hold.
        let client = try RawClient(port: runtime.port)
        let responses = await client.roundTrips(Array(repeating: "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", count: 600))
        #expect(responses.count == 600 && responses.allSatisfy { $0?.status == 200 })
        #expect(await waitUntil { output.droppedLines > 0 })
        let scrape = await client.roundTrips(["GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"]).first ?? nil
        let lines = (scrape?.text ?? "").split(separator: "\n")
        let dropped: Substring? = lines.first { $0.hasPrefix("gateway_log_lines_dropped_total") }
        let droppedValue: Double = dropped.flatMap { $0.split(separator: " ").last }.flatMap { Double($0) } ?? 0
        #expect(droppedValue > 0, "exported: \(dropped ?? "nothing")")
        await runtime.shutdown()

        // Unblock the writer thread, let it finish, then close both ends (in that order: closing
        // the read end first would make the writer's pending write raise SIGPIPE).
        let readEnd = ends[0]
        let reader = Task { await onOwnThread { () -> Void in
            var buffer = [UInt8](repeating: 0, count: 65_536)
            while buffer.withUnsafeMutableBytes({ read(readEnd, $0.baseAddress, $0.count) }) > 0 {}
        } }
        await output.waitUntilWritten(timeout: .seconds(30))
        close(ends[1])
        await reader.value
        close(ends[0])
    }
}
