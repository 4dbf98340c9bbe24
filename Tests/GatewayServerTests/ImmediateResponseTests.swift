import GatewayHTTP
import GatewayServer
import GatewayTestSupport
import Synchronization
import Testing

/// Requests a responder can answer without waiting are answered on the loop, with no task; the
/// others fall back to `respond` with what the first attempt decided.
@Suite struct ImmediateResponseTests {
    /// Answers `/now/...` immediately, `/later/...` only asynchronously; counts both paths and
    /// records in the context that the immediate attempt ran.
    final class CountingResponder: HTTPResponder {
        let immediateCalls = Atomic<Int>(0)
        let asyncCalls = Atomic<Int>(0)

        enum AttemptKey: RequestContextKey { typealias Value = String }

        func respondImmediately(to request: HTTPRequest, context: inout RequestContext) -> HTTPResponse? {
            immediateCalls.add(1, ordering: .relaxed)
            context[AttemptKey.self] = "tried \(request.path)"
            guard request.path.hasPrefix("/now/") else { return nil }
            return HTTPResponse(status: .ok, text: "now \(request.path.dropFirst(5))")
        }

        func respond(to request: HTTPRequest, context: RequestContext) async -> HTTPResponse {
            asyncCalls.add(1, ordering: .relaxed)
            await Task.yield()
            return HTTPResponse(status: .ok, text: "later \(request.path.dropFirst(7)) after \(context[AttemptKey.self] ?? "nothing")")
        }
    }

    @Test func immediateAnswersSkipTheAsynchronousPath() async throws {
        let responder = CountingResponder()
        try await withServer(responder: responder) { server in
            let client = try RawClient(port: server.localPort)
            for index in 0..<3 {
                try await client.send("GET /now/\(index) HTTP/1.1\r\nHost: x\r\n\r\n")
                #expect(await client.readResponse()?.text == "now \(index)")
            }
        }
        #expect(responder.immediateCalls.load(ordering: .relaxed) == 3)
        #expect(responder.asyncCalls.load(ordering: .relaxed) == 0)
    }

    @Test func aResponderThatMustWaitGetsTheContextItsImmediateAttemptRecorded() async throws {
        let responder = CountingResponder()
        try await withServer(responder: responder) { server in
            let client = try RawClient(port: server.localPort)
            try await client.send("GET /later/1 HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(await client.readResponse()?.text == "later 1 after tried /later/1")
        }
        #expect(responder.immediateCalls.load(ordering: .relaxed) == 1)
        #expect(responder.asyncCalls.load(ordering: .relaxed) == 1)
    }

    /// Thousands of immediate answers from one read must not nest one call per request (the stack
    /// would overflow) and must keep their order, also when mixed with answers that wait.
    @Test func thousandsOfPipelinedImmediateRequestsAreAnsweredInOrder() async throws {
        let responder = CountingResponder()
        try await withServer(responder: responder) { server in
            let client = try RawClient(port: server.localPort, receiveTimeoutSeconds: 20)
            var requests = ""
            var expected: [String] = []
            for index in 0..<3_000 {
                if index % 1_000 == 500 {
                    requests += "GET /later/\(index) HTTP/1.1\r\nHost: x\r\n\r\n"
                    expected.append("later \(index) after tried /later/\(index)")
                } else {
                    requests += "GET /now/\(index) HTTP/1.1\r\nHost: x\r\n\r\n"
                    expected.append("now \(index)")
                }
            }
            try await client.send(requests + "GET /now/end HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            let (bytes, end) = await client.readUntilClose()
            #expect(TestResponse.parseAll(bytes).map(\.text) == expected + ["now end"])
            #expect(end == .closed)
        }
    }

    @Test func routerAnswersRoutingErrorsAndImmediateRoutesWithoutATask() {
        var router = Router()
        router.get("/fast/{id}", immediate: { _, context in
            HTTPResponse(status: .ok, text: "fast \(context.pathParameters["id"] ?? "") via \(context.routeTemplate ?? "")")
        }) { _, _ in HTTPResponse(status: .ok, text: "slow") }
        router.get("/slow") { _, _ in HTTPResponse(status: .ok, text: "slow") }

        func immediate(_ method: HTTPMethod, _ target: String) -> HTTPResponse? {
            var context = RequestContext()
            return router.respondImmediately(to: HTTPRequest(method: method, target: target), context: &context)
        }
        #expect(immediate(.get, "/fast/7").map { String(decoding: $0.body, as: UTF8.self) } == "fast 7 via /fast/{id}")
        #expect(immediate(.head, "/fast/7")?.status == .ok)
        #expect(immediate(.get, "/slow") == nil)
        #expect(immediate(.get, "/nowhere")?.status == .notFound)
        #expect(immediate(.post, "/slow")?.status == .methodNotAllowed)
        #expect(immediate(.post, "/slow")?.headers["Allow"] == "GET, HEAD")
    }

    @Test func aCustomNotFoundHandlerIsNotBypassed() async {
        var router = Router()
        router.setNotFoundHandler { _, _ in HTTPResponse(status: .notFound, text: "custom") }
        var context = RequestContext()
        #expect(router.respondImmediately(to: HTTPRequest(method: .get, target: "/x"), context: &context) == nil)
        let response = await router.respond(to: HTTPRequest(method: .get, target: "/x"), context: context)
        #expect(String(decoding: response.body, as: UTF8.self) == "custom")
    }

    @Test func aMiddlewareWithoutAnImmediatePathSendsEveryRequestDownTheAsynchronousOne() async {
        struct Tagging: HTTPMiddleware {
            func handle(_ request: HTTPRequest, context: RequestContext, next: any HTTPResponder) async -> HTTPResponse {
                var response = await next.respond(to: request, context: context)
                response.headers.add(name: "X-Tagged", value: "yes")
                return response
            }
        }
        var router = Router()
        router.get("/fast", immediate: { _, _ in HTTPResponse(status: .ok, text: "fast") }) { _, _ in
            HTTPResponse(status: .ok, text: "async")
        }
        let chain = MiddlewareChain([RequestTraceMiddleware(), Tagging()], responder: router)
        var context = RequestContext()
        let request = HTTPRequest(method: .get, target: "/fast")
        #expect(chain.respondImmediately(to: request, context: &context) == nil)
        let chosen = context[RequestTraceKey.self]
        #expect(chosen != nil)
        let response = await chain.respond(to: request, context: context)
        #expect(response.headers["X-Tagged"] == "yes")
        // The trace the immediate attempt chose is the one the response carries.
        #expect(response.headers["X-Request-Id"] == chosen?.requestID)
    }
}
