import GatewayHTTP
import GatewayServer
import Testing

/// The order a `MiddlewareChain` runs its layers in, at every length its builder takes.
@Suite struct MiddlewareChainTests {
    /// Appends its name to `X-Path` on the way in (as a request header) and on the way out (on the
    /// response), so both orders can be read from the answer.
    struct Mark: HTTPMiddleware {
        let name: String

        nonisolated(nonsending) func handle<Next: HTTPResponder>(
            _ request: HTTPRequest, context: consuming RequestContext, next: Next
        ) async -> HTTPResponse {
            var request = request
            request.headers.replaceOrAdd(name: "X-Path", value: (request.headers["X-Path"] ?? "") + name)
            var response = await next.respond(to: request, context: consume context)
            response.headers.replaceOrAdd(name: "X-Out", value: (response.headers["X-Out"] ?? "") + name)
            return response
        }
    }

    /// Answers with the path the request took to reach it.
    struct Echo: HTTPResponder {
        nonisolated(nonsending) func respond(to request: HTTPRequest, context: consuming RequestContext) async -> HTTPResponse {
            HTTPResponse(status: .ok, text: request.headers["X-Path"] ?? "")
        }
    }

    static func run(_ chain: some HTTPResponder) async -> (inward: String, outward: String) {
        let response = await chain.respond(to: HTTPRequest(method: .get, target: "/"), context: RequestContext())
        return (String(decoding: response.body, as: UTF8.self), response.headers["X-Out"] ?? "")
    }

    @Test func theFirstListedRunsFirstAndSeesTheResponseLast() async {
        #expect(await Self.run(MiddlewareChain { Echo() }) == ("", ""))
        #expect(await Self.run(MiddlewareChain { Mark(name: "a"); Echo() }) == ("a", "a"))
        #expect(await Self.run(MiddlewareChain { Mark(name: "a"); Mark(name: "b"); Echo() }) == ("ab", "ba"))
        let seven = MiddlewareChain {
            Mark(name: "a")
            Mark(name: "b")
            Mark(name: "c")
            Mark(name: "d")
            Mark(name: "e")
            Mark(name: "f")
            Mark(name: "g")
            Echo()
        }
        #expect(await Self.run(seven) == ("abcdefg", "gfedcba"))
    }

    @Test func aChainBuiltBehindAClosureAnswersTheSame() async {
        // The way the gateway hands its chain to the server: called from where its type is known.
        let chain = MiddlewareChain { Mark(name: "x"); Mark(name: "y"); Echo() }
        let responder: any HTTPResponder = ClosureResponder { request, context in
            await chain.respond(to: request, context: consume context)
        }
        #expect(await Self.run(responder) == ("xy", "yx"))
    }
}
