import GatewayHTTP
import GatewayServer
import Synchronization
import Testing

/// Request ids and W3C trace context as `RequestTraceMiddleware` assigns them.
@Suite struct RequestTraceTests {
    final class SeenTrace: Sendable {
        let trace = Mutex<RequestTrace?>(nil)
    }

    /// Runs `headers` through the middleware; answers with the trace the handler saw and the
    /// response's `X-Request-Id`.
    static func trace(_ headers: HTTPHeaders) async -> (trace: RequestTrace?, echoed: String?) {
        let seen = SeenTrace()
        var router = Router()
        router.get("/t") { _, context in
            seen.trace.withLock { $0 = context[RequestTraceKey.self] }
            return HTTPResponse(status: .ok)
        }
        let chain = MiddlewareChain {
            RequestTraceMiddleware()
            router
        }
        let response = await chain.respond(to: HTTPRequest(method: .get, target: "/t", headers: headers), context: RequestContext())
        return (seen.trace.withLock { $0 }, response.headers["X-Request-Id"])
    }

    static func isLowerHex(_ text: String, count: Int) -> Bool {
        text.utf8.count == count && text.utf8.allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }
    }

    @Test func aRequestWithoutIdsGetsNewOnes() async throws {
        let (first, echoed) = await Self.trace([:])
        let trace = try #require(first)
        #expect(Self.isLowerHex(trace.requestID, count: 32))
        #expect(echoed == trace.requestID)
        #expect(Self.isLowerHex(trace.traceID, count: 32) && Self.isLowerHex(trace.spanID, count: 16))
        #expect(trace.traceparent == "00-\(trace.traceID)-\(trace.spanID)-00")
        #expect(!trace.sampled)
        let second = try #require(await Self.trace([:]).trace)
        #expect(second.requestID != trace.requestID && second.traceID != trace.traceID && second.spanID != trace.spanID)
    }

    @Test func aReasonableRequestIdIsKeptAndAnUnreasonableOneReplaced() async {
        #expect(await Self.trace(["X-Request-Id": "abc-1.x_y:z"]).echoed == "abc-1.x_y:z")
        let replaced = await Self.trace(["X-Request-Id": "has space"]).echoed
        #expect(replaced.map { Self.isLowerHex($0, count: 32) } == true)
        #expect(await Self.trace(["X-Request-Id": String(repeating: "a", count: 129)]).echoed?.utf8.count == 32)
        // The first field decides, as a header lookup would: a bad first id is replaced, not skipped.
        var twice = HTTPHeaders()
        twice.add(name: "x-request-id", value: "bad id")
        twice.add(name: "X-Request-Id", value: "good-id")
        #expect(await Self.trace(twice).echoed != "good-id")
    }

    @Test func aValidTraceparentIsContinuedWithANewSpan() async throws {
        let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        let trace = try #require(await Self.trace(["traceparent": parent]).trace)
        #expect(trace.traceID == "4bf92f3577b34da6a3ce929d0e0e4736")
        #expect(trace.sampled)
        #expect(trace.spanID != "00f067aa0ba902b7" && Self.isLowerHex(trace.spanID, count: 16))
        #expect(trace.traceparent == "00-4bf92f3577b34da6a3ce929d0e0e4736-\(trace.spanID)-01")
    }

    @Test(arguments: [
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",   // unknown version
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",   // all-zero trace id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",   // all-zero parent span
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",   // uppercase
        "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",    // short trace id
        "garbage",
    ])
    func anInvalidTraceparentStartsANewTrace(value: String) async throws {
        let trace = try #require(await Self.trace(["traceparent": value]).trace)
        #expect(trace.traceID != "4bf92f3577b34da6a3ce929d0e0e4736" && Self.isLowerHex(trace.traceID, count: 32))
        #expect(trace.traceparent.hasSuffix("-00"))
    }
}
