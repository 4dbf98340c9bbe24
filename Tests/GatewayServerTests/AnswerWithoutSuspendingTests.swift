import GatewayHTTP
import GatewayServer
import GatewayTestSupport
import Synchronization
import Testing

/// Every request takes one path, an immediate task on the connection's loop: an answer that needs
/// no waiting is ready before that task's creation returns (the server counts it as answered without
/// suspending), through any number of middleware; one that waits suspends and is answered later.
@Suite struct AnswerWithoutSuspendingTests {
    /// Answers `/now/...` without waiting, `/later/...` after a real suspension.
    struct NowOrLaterResponder: HTTPResponder {
        nonisolated(nonsending) func respond(to request: HTTPRequest, context: consuming RequestContext) async -> HTTPResponse {
            if request.path.hasPrefix("/later/") {
                await Task.yield()
                return HTTPResponse(status: .ok, text: "later \(request.path.dropFirst(7))")
            }
            return HTTPResponse(status: .ok, text: "now \(request.path.dropFirst(5))")
        }
    }

    /// Adds a header on the way out, as most of the gateway's middleware does.
    struct Tagging: HTTPMiddleware {
        nonisolated(nonsending) func handle<Next: HTTPResponder>(_ request: HTTPRequest, context: consuming RequestContext, next: Next) async -> HTTPResponse {
            var response = await next.respond(to: request, context: consume context)
            response.headers.add(name: "X-Tagged", value: "yes")
            return response
        }
    }

    @Test func answersThatNeedNoWaitingAreReadyBeforeTheRequestsTaskIsCreated() async throws {
        try await withServer(responder: NowOrLaterResponder()) { server in
            let client = try RawClient(port: server.localPort)
            for index in 0..<3 {
                try await client.send("GET /now/\(index) HTTP/1.1\r\nHost: x\r\n\r\n")
                #expect(await client.readResponse()?.text == "now \(index)")
            }
            #expect(server.counters.responsesWithoutSuspending == 3)
            #expect(server.counters.responsesAfterSuspending == 0)
            try await client.send("GET /later/1 HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(await client.readResponse()?.text == "later 1")
            #expect(server.counters.responsesWithoutSuspending == 3)
            #expect(server.counters.responsesAfterSuspending == 1)
        }
    }

    /// Middleware, the router's own answers (404, 405, 501) and handlers: each call down the
    /// chain runs on the loop (`nonisolated(nonsending)`), so none of them costs a hop.
    @Test func aChainOfMiddlewareAndRoutingAnswersWithoutSuspending() async throws {
        var router = Router()
        router.get("/items/{id}") { _, context in
            HTTPResponse(status: .ok, text: "item \(context.pathParameters["id"] ?? "")")
        }
        router.get("/slow") { _, _ in
            await Task.yield()
            return HTTPResponse(status: .ok, text: "slow")
        }
        let chain = MiddlewareChain {
            RequestTraceMiddleware()
            Tagging()
            router
        }
        try await withServer(responder: chain) { server in
            let client = try RawClient(port: server.localPort)
            let targets = [("GET", "/items/7", 200), ("GET", "/nowhere", 404), ("POST", "/items/7", 405), ("BREW", "/items/7", 501)]
            for (method, target, status) in targets {
                try await client.send("\(method) \(target) HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
                let response = await client.readResponse()
                #expect(response?.status == status)
                #expect(response?.header("X-Tagged") == "yes")
                #expect(response?.header("X-Request-Id")?.utf8.count == 32)
            }
            #expect(server.counters.responsesWithoutSuspending == targets.count)
            #expect(server.counters.responsesAfterSuspending == 0)
            try await client.send("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(await client.readResponse()?.text == "slow")
            #expect(server.counters.responsesAfterSuspending == 1)
        }
    }

    /// Thousands of answers without suspending from one read must not nest one call per request
    /// (the stack would overflow) and must keep their order, also when mixed with answers that wait.
    @Test func thousandsOfPipelinedRequestsAreAnsweredInOrder() async throws {
        try await withServer(responder: NowOrLaterResponder()) { server in
            let client = try RawClient(port: server.localPort, receiveTimeoutSeconds: 20)
            var requests = ""
            var expected: [String] = []
            for index in 0..<3_000 {
                if index % 1_000 == 500 {
                    requests += "GET /later/\(index) HTTP/1.1\r\nHost: x\r\n\r\n"
                    expected.append("later \(index)")
                } else {
                    requests += "GET /now/\(index) HTTP/1.1\r\nHost: x\r\n\r\n"
                    expected.append("now \(index)")
                }
            }
            try await client.send(requests + "GET /now/end HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            let (bytes, end) = await client.readUntilClose()
            #expect(TestResponse.parseAll(bytes).map(\.text) == expected + ["now end"])
            #expect(end == .closed)
            #expect(server.counters.responsesAfterSuspending == 3)
            #expect(server.counters.responsesWithoutSuspending == 2_998)
        }
    }
}
