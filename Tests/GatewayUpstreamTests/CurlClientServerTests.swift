import GatewayTestSupport
import Glibc
import GatewayHTTP
import GatewayServer
@testable import GatewayUpstream
import Logging
import Synchronization
import Testing

/// CurlHTTPClient against the project's own HTTP server on a real socket.
@Suite struct CurlClientServerTests {
    /// `/hold` answers only once `release` is opened, so slow-upstream tests need no long sleeps
    /// and the server's graceful shutdown does not wait for them.
    static func upstreamRouter(release: Gate = Gate()) -> Router {
        var router = Router()
        router.get("/hold") { _, _ in
            await release.wait()
            return HTTPResponse(status: .ok, text: "released")
        }
        router.get("/json") { request, _ in
            var headers: HTTPHeaders = ["Content-Type": "application/json", "X-Upstream": "yes"]
            headers.add(name: "X-Multi", value: "one")
            headers.add(name: "X-Multi", value: "two")
            let seen = [
                "auth=\(request.headers["Authorization"] ?? "-")",
                "requestId=\(request.headers["X-Request-Id"] ?? "-")",
                "traceparent=\(request.headers["traceparent"] ?? "-")",
                "expect=\(request.headers["Expect"] ?? "-")",
            ].joined(separator: ";")
            return HTTPResponse(status: .ok, headers: headers, body: Array(#"{"seen":"\#(seen)"}"#.utf8))
        }
        router.post("/echo") { request, _ in
            HTTPResponse(status: .created, headers: ["X-Method": request.method.rawValue], body: request.body)
        }
        router.add(.put, "/echo") { request, _ in
            HTTPResponse(status: .ok, headers: ["X-Method": request.method.rawValue], body: request.body)
        }
        router.add(.delete, "/echo") { request, _ in
            HTTPResponse(status: .ok, headers: ["X-Method": request.method.rawValue], body: Array("\(request.body.count)".utf8))
        }
        router.get("/item/{id}") { _, context in
            HTTPResponse(status: .ok, text: "item \(context.pathParameters["id"] ?? "")")
        }
        router.get("/missing") { _, _ in HTTPResponse(status: .notFound, text: "no such execution") }
        router.get("/big/{bytes}") { _, context in
            let size = Int(context.pathParameters["bytes"] ?? "0") ?? 0
            return HTTPResponse(status: .ok, body: [UInt8](repeating: UInt8(ascii: "x"), count: size))
        }
        router.get("/limited") { _, _ in
            HTTPResponse(status: .tooManyRequests, headers: ["Retry-After": "7"], text: #"{"error":"slow down"}"#)
        }
        router.get("/echo-credential") { request, _ in
            let value = request.headers["Authorization"] ?? ""
            return HTTPResponse(status: .unauthorized, headers: ["X-Echo": value], text: "rejected: \(value)")
        }
        return router
    }

    /// Runs `body` with a started server and a client; both are always shut down.
    func withUpstream<T>(
        router: Router = upstreamRouter(),
        clientConfiguration: CurlHTTPClientConfiguration = CurlHTTPClientConfiguration(),
        clientLogger: Logger = Logger(label: "test.curl"),
        _ body: (_ client: CurlHTTPClient, _ base: String, _ server: HTTPServer) async throws -> T
    ) async throws -> T {
        var logger = Logger(label: "test.server")
        logger.logLevel = .critical
        let server = HTTPServer(
            configuration: HTTPServerConfiguration(host: "127.0.0.1", port: 0, workers: 1, injectsTransportFaults: true), responder: router,
            logger: logger)
        try server.start()
        let client = try CurlHTTPClient(configuration: clientConfiguration, logger: clientLogger)
        do {
            let result = try await body(client, "http://127.0.0.1:\(server.localPort)", server)
            client.shutdown()
            await server.shutdown()
            return result
        } catch {
            client.shutdown()
            await server.shutdown()
            throw error
        }
    }

    @Test func statusHeadersAndBodyRoundTrip() async throws {
        try await withUpstream { client, base, _ in
            let response = try await client.execute(
                UpstreamRequest(
                    url: "\(base)/json", headers: ["Authorization": "Bearer abc", "X-Request-Id": "req-9"]))
            #expect(response.status == 200)
            #expect(response.headers["Content-Type"] == "application/json")
            #expect(response.headers["x-upstream"] == "yes")
            #expect(response.headers.values(for: "X-Multi") == ["one", "two"])
            #expect(
                String(decoding: response.body, as: UTF8.self)
                    == #"{"seen":"auth=Bearer abc;requestId=req-9;traceparent=-;expect=-"}"#)
            #expect(response.durationNanoseconds > 0)
        }
    }

    @Test func requestBodiesAndMethods() async throws {
        try await withUpstream { client, base, _ in
            let payload = Array(#"{"filter":{"status":["Completed"]},"id":"ex_1"}"#.utf8)
            let post = try await client.execute(
                UpstreamRequest(method: .post, url: "\(base)/echo", headers: ["Content-Type": "application/json"], body: payload))
            #expect(post.status == 201)
            #expect(post.headers["X-Method"] == "POST")
            #expect(post.body == payload)

            let big = [UInt8]((0..<40_000).map { UInt8(truncatingIfNeeded: $0) })
            let put = try await client.execute(UpstreamRequest(method: .put, url: "\(base)/echo", body: big))
            #expect(put.headers["X-Method"] == "PUT")
            #expect(put.body == big)

            let emptyPost = try await client.execute(UpstreamRequest(method: .post, url: "\(base)/echo"))
            #expect(emptyPost.status == 201)
            #expect(emptyPost.body.isEmpty)

            let delete = try await client.execute(UpstreamRequest(method: .delete, url: "\(base)/echo"))
            #expect(delete.headers["X-Method"] == "DELETE")
            #expect(delete.body == Array("0".utf8))

            let head = try await client.execute(UpstreamRequest(method: .head, url: "\(base)/item/7"))
            #expect(head.status == 200)
            #expect(head.body.isEmpty)
        }
    }

    @Test func theClientReturnsEveryStatusAndTheEndpointThrowsNon2xx() async throws {
        try await withUpstream { client, base, _ in
            let response = try await client.execute(UpstreamRequest(url: "\(base)/missing"))
            #expect(response.status == 404)
            #expect(response.body == Array("no such execution".utf8))

            let endpoint = UpstreamEndpoint(name: "kapso", policy: UpstreamPolicy(), transport: client)
            await #expect(throws: UpstreamError.httpStatus(status: 404, body: Array("no such execution".utf8), retryAfterSeconds: nil)) {
                try await endpoint.execute(UpstreamRequest(url: "\(base)/missing"), options: makeOptions())
            }
        }
    }

    @Test func sequentialCallsReuseOneConnection() async throws {
        try await withUpstream { client, base, server in
            for index in 0..<20 {
                let response = try await client.execute(UpstreamRequest(url: "\(base)/item/\(index)"))
                #expect(response.body == Array("item \(index)".utf8))
            }
            #expect(client.clientStatistics().connectionsOpened == 1)
            #expect(server.counters.acceptedConnections == 1)
        }
    }

    @Test func sixtyFourConcurrentCallsAllComplete() async throws {
        try await withUpstream { client, base, _ in
            let bodies = try await withThrowingTaskGroup(of: (Int, [UInt8]).self) { group in
                for index in 0..<64 {
                    group.addTask {
                        let response = try await client.execute(UpstreamRequest(url: "\(base)/item/\(index)"))
                        return (index, response.body)
                    }
                }
                var bodies: [Int: [UInt8]] = [:]
                for try await (index, body) in group { bodies[index] = body }
                return bodies
            }
            #expect(bodies.count == 64)
            for (index, body) in bodies { #expect(body == Array("item \(index)".utf8)) }
            let statistics = client.clientStatistics()
            #expect(statistics.responsesReceived == 64)
            #expect(statistics.inFlight == 0)
            #expect((1...64).contains(statistics.connectionsOpened))
        }
    }

    @Test func aSlowHandlerHitsTheTimeout() async throws {
        let release = Gate()
        try await withUpstream(router: Self.upstreamRouter(release: release)) { client, base, _ in
            defer { release.open() }
            await #expect(throws: UpstreamError.timeout) {
                try await client.execute(UpstreamRequest(url: "\(base)/hold", timeoutNanoseconds: 200 * millisecond))
            }
            // The client is still usable afterwards.
            let response = try await client.execute(UpstreamRequest(url: "\(base)/item/after"))
            #expect(response.status == 200)
        }
    }

    @Test func cancellationAbortsAnInFlightRequest() async throws {
        let release = Gate()
        try await withUpstream(router: Self.upstreamRouter(release: release)) { client, base, _ in
            defer { release.open() }
            let task = Task { () async throws(UpstreamError) -> UpstreamResponse in
                try await client.execute(UpstreamRequest(url: "\(base)/hold"))
            }
            #expect(await waitUntil { client.clientStatistics().inFlight == 1 })
            task.cancel()
            let result = await task.result
            #expect(throws: UpstreamError.cancelled) { try result.get() }
            #expect(client.clientStatistics().transfersCancelled == 1)
        }
    }

    @Test func aStoppedServerGivesAConnectionError() async throws {
        var logger = Logger(label: "test.server")
        logger.logLevel = .critical
        let server = HTTPServer(
            configuration: HTTPServerConfiguration(host: "127.0.0.1", port: 0, workers: 1),
            responder: Self.upstreamRouter(), logger: logger)
        try server.start()
        var port = server.localPort
        await server.shutdown()
        // Tests running in parallel bind ephemeral ports too: hold the freed port (bound, not
        // listening, so connecting is refused) so that no other server can take it meanwhile.
        // When one already has, a fresh port bound the same way refuses connections just alike.
        let holder: Int32
        if let held = Self.bindWithoutListening(port: port) {
            holder = held
        } else {
            (holder, port) = try boundLoopbackSocket(listening: false)
        }
        defer { close(holder) }
        let client = try CurlHTTPClient()
        defer { client.shutdown() }
        await #expect {
            try await client.execute(UpstreamRequest(url: "http://127.0.0.1:\(port)/json"))
        } throws: { error in
            guard case .connection = error as? UpstreamError else { return false }
            return true
        }
    }

    /// A TCP socket bound to 127.0.0.1:`port` that never listens, or nil when the port is taken.
    static func bindWithoutListening(port: Int) -> Int32? {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { return nil }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else {
            close(descriptor)
            return nil
        }
        return descriptor
    }

    @Test func responseBodiesAreCapped() async throws {
        let configuration = CurlHTTPClientConfiguration(maxResponseBodyBytes: 1_000_000)
        try await withUpstream(clientConfiguration: configuration) { client, base, _ in
            await #expect(throws: UpstreamError.bodyTooLarge(limitBytes: 1_000_000)) {
                try await client.execute(UpstreamRequest(url: "\(base)/big/2000000"))
            }
            let exact = try await client.execute(UpstreamRequest(url: "\(base)/big/1000000"))
            #expect(exact.body.count == 1_000_000)
            // A per-request limit overrides the client's.
            await #expect(throws: UpstreamError.bodyTooLarge(limitBytes: 10)) {
                try await client.execute(UpstreamRequest(url: "\(base)/big/11", maxResponseBodyBytes: 10))
            }
        }
    }

    @Test func transportFaultsAreConnectionErrorsAndIdempotentCallsRecover() async throws {
        let calls = Mutex(0)
        var router = Router()
        router.get("/flaky") { _, _ in
            let call = calls.withLock { value -> Int in
                value += 1
                return value
            }
            var response = HTTPResponse(status: .ok, text: "0123456789")
            switch call {
            case 1: response.transportFault = .resetConnection
            case 2: response.transportFault = .truncateBody(afterBytes: 4)
            default: break
            }
            return response
        }
        try await withUpstream(router: router) { client, base, _ in
            for _ in 0..<2 {
                await #expect {
                    try await client.execute(UpstreamRequest(url: "\(base)/flaky"))
                } throws: { error in
                    guard case .connection = error as? UpstreamError else { return false }
                    return true
                }
            }
            calls.withLock { $0 = 0 }
            let endpoint = UpstreamEndpoint(
                // A deadline no loaded machine reaches: the test is about the retries, not the time.
                name: "kaizen", policy: UpstreamPolicy(timeout: .seconds(600), requestsPerSecond: nil, backoffBase: .nanoseconds(1 * millisecond)),
                transport: client)
            let response = try await endpoint.execute(UpstreamRequest(url: "\(base)/flaky"), options: makeOptions())
            #expect(response.body == Array("0123456789".utf8))
            #expect(endpoint.statistics().retries == 2)
        }
    }

    @Test func theEndpointSendsTraceHeadersAndHonoursRetryAfter() async throws {
        try await withUpstream { client, base, _ in
            let endpoint = UpstreamEndpoint(name: "kapso", policy: UpstreamPolicy(), transport: client)
            let options = UpstreamCallOptions(
                credentialKey: "k1", isIdempotent: true, requestId: "req-77",
                traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00")
            let response = try await endpoint.execute(UpstreamRequest(url: "\(base)/json"), options: options)
            #expect(
                String(decoding: response.body, as: UTF8.self)
                    == #"{"seen":"auth=-;requestId=req-77;traceparent=00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00;expect=-"}"#)

            await #expect(throws: UpstreamError.httpStatus(status: 429, body: Array(#"{"error":"slow down"}"#.utf8), retryAfterSeconds: 7)) {
                try await endpoint.execute(UpstreamRequest(url: "\(base)/limited"), options: options)
            }
            await #expect {
                try await endpoint.execute(UpstreamRequest(url: "\(base)/json"), options: options)
            } throws: { error in
                guard case .paused = error as? UpstreamError else { return false }
                return endpoint.retryAfterSeconds(for: error as! UpstreamError) == 7
            }
        }
    }

    @Test func nothingEmittedAroundAnEchoingServerContainsTheCredential() async throws {
        let credential = "b3sk_9d8c7b6a5f4e3d2c1b0a"
        let logs = LogCapture()
        try await withUpstream(clientLogger: logs.logger(label: "curl")) { client, base, _ in
            let endpoint = UpstreamEndpoint(
                name: "b3os", policy: UpstreamPolicy(), transport: client, logger: logs.logger())
            let request = UpstreamRequest(url: "\(base)/echo-credential", headers: ["Authorization": "Bearer \(credential)"])
            var thrown: UpstreamError?
            do throws(UpstreamError) {
                _ = try await endpoint.execute(request, options: makeOptions())
            } catch {
                thrown = error
            }
            let error = try #require(thrown)
            guard case .httpStatus(401, let body, _) = error else {
                Issue.record("expected 401, got \(error)")
                return
            }
            #expect(String(decoding: body, as: UTF8.self).contains(credential))  // the server did echo it
            #expect(!logs.all.isEmpty)
            for text in logs.all + [String(describing: error), String(reflecting: error), request.description] {
                #expect(!text.contains(credential), "leaked in: \(text)")
            }
        }
    }
}
