public import GatewayHTTP

/// Anything that turns a request into a response: a router, a middleware chain, a whole application.
///
/// The server starts each request as an immediate task on the connection's event loop
/// (`Task.immediate`, with the loop as executor preference): the task runs on the loop thread, inside
/// the call that starts it, until its first real suspension. `respond` and `handle` are
/// `nonisolated(nonsending)`, so a call down the chain runs on the caller's executor rather than
/// switching to the generic one: a responder that answers without waiting (a cache hit, a
/// rejection) has answered before the task's creation returns, with nothing enqueued; one that has
/// to wait (an upstream call, a shared store) suspends there and resumes on the loop.
///
/// Implement `respond` and `handle` as `nonisolated(nonsending)` too: a plain `async` witness runs
/// on the generic executor, and reaching it from the loop thread costs a trip through the loop's
/// queue on every request (`AnswerWithoutSuspendingTests` catches that for the server's own types,
/// `OneRequestPathTests` for the gateway's).
public protocol HTTPResponder: Sendable {
    nonisolated(nonsending) func respond(to request: HTTPRequest, context: consuming RequestContext) async -> HTTPResponse
}

/// A responder made from a closure.
public struct ClosureResponder: HTTPResponder {
    public typealias Body = nonisolated(nonsending) @Sendable (HTTPRequest, RequestContext) async -> HTTPResponse
    private let body: Body

    public init(_ body: @escaping Body) {
        self.body = body
    }

    public nonisolated(nonsending) func respond(to request: HTTPRequest, context: consuming RequestContext) async -> HTTPResponse {
        await body(request, context)
    }
}

/// A step in front of a responder: it may answer itself, or call `next` and adjust what comes back.
/// Pass the context on with `next.respond(to: request, context: consume context)` (see `RequestContext`).
public protocol HTTPMiddleware: Sendable {
    nonisolated(nonsending) func handle(_ request: HTTPRequest, context: consuming RequestContext, next: any HTTPResponder) async -> HTTPResponse
}

/// `middlewares[0]` runs first and sees the final response last.
public struct MiddlewareChain: HTTPResponder {
    private let responder: any HTTPResponder

    public init(_ middlewares: [any HTTPMiddleware], responder: any HTTPResponder) {
        var current = responder
        for middleware in middlewares.reversed() {
            current = Link(middleware: middleware, next: current)
        }
        self.responder = current
    }

    public nonisolated(nonsending) func respond(to request: HTTPRequest, context: consuming RequestContext) async -> HTTPResponse {
        await responder.respond(to: request, context: consume context)
    }

    private struct Link: HTTPResponder {
        let middleware: any HTTPMiddleware
        let next: any HTTPResponder

        nonisolated(nonsending) func respond(to request: HTTPRequest, context: consuming RequestContext) async -> HTTPResponse {
            await middleware.handle(request, context: consume context, next: next)
        }
    }
}
